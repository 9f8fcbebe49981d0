"""The agent ``SshHost`` runs on a remote host for the time of one diagnosis.

It is sent over the SSH session's stdin to ``python3 -I -S -c BOOTSTRAP`` and
never written to the remote disk. Standard library only, Python 3.6+ (no
annotations): it runs on whatever python3 the remote host has.

Protocol: one JSON object a line. The agent first writes
``{"hello": 1, "hostname", "pid", "time", "python"}``, then answers each
request ``{"id": N, "op": ..., ...}`` with ``{"id": N, "ok": VALUE}`` or
``{"id": N, "error": TYPE, "errno", "message", "filename"}`` (the bundle error
encoding). Each request is handled by a daemon worker thread (a new one when
all are busy), so that one read hung in the kernel (a dead NFS mount) blocks
only itself: the local side stops waiting after its timeout. ``{"op": "cancel", "id": N}`` kills a command still running.
The agent reads only; it exits, killing the commands it started, as soon as
its stdin closes (the SSH session ended).

Connections: ``{"id": N, "op": "open", "host", "port"}`` (or ``"path"`` for a
Unix socket) connects from the remote host and answers N; then
``{"op": "send", "sock": N, "data": BASE64}`` and ``{"op": "close", "sock": N}``
go to it in order (no answer), and what it receives comes back as
``{"sock": N, "data": BASE64}``, then ``{"sock": N, "eof": true}``. This is how
ddx's network checks of the services there (an HTTP request, a TLS handshake,
memcached's stats) reach that host's 127.0.0.1 instead of this one's.

``read_bytes`` is also the reader ``LiveHost`` uses: one helper for both.
"""

import base64
import json
import os
import queue
import signal
import socket
import stat as stat_mod
import subprocess
import sys
import threading
import time

__all__ = ["read_bytes"]


def read_bytes(path, max_bytes, tail):
    """Read at most ``max_bytes``: the head, or with ``tail`` the end. A regular
    file is seeked, so a 10 GB log costs what a small one does; pseudo-files
    (size 0 in /proc) are streamed keeping only the last ``max_bytes``."""
    with open(path, "rb", buffering=0) as fh:
        st = os.fstat(fh.fileno())
        if not tail:
            chunks, left = [], max_bytes
            while left > 0:
                b = fh.read(min(left, 1 << 20))
                if not b:
                    break
                chunks.append(b)
                left -= len(b)
            return b"".join(chunks)
        if stat_mod.S_ISREG(st.st_mode) and st.st_size > 0:
            if st.st_size > max_bytes:
                fh.seek(st.st_size - max_bytes)
            data = bytearray()
            while len(data) < max_bytes + (1 << 16):  # the file may grow while we read
                b = fh.read(1 << 20)
                if not b:
                    break
                data += b
            return bytes(data[-max_bytes:]) if max_bytes else b""
        buf = bytearray()
        while True:
            b = fh.read(1 << 20)
            if not b:
                break
            buf += b
            if len(buf) > 2 * max_bytes + (1 << 20):
                del buf[: len(buf) - max_bytes]
        return bytes(buf[-max_bytes:]) if max_bytes else b""


# --- the agent ---------------------------------------------------------------------

MAX_OUTPUT = 16 << 20  # bytes of one command's stdout or stderr kept
BATCH_BYTES = 8 << 20  # a batch's answer stops after about this much text; the rest is asked for again
BATCH_OPS = ("read", "listdir", "stat", "readlink")
MAX_RECEIVED = 64 << 20  # bytes relayed back from one connection; past this it is closed
MAX_SOCKETS = 64  # connections open at once


class Agent(object):
    def __init__(self, inp, out):
        self.inp, self.out = inp, out
        self.wlock = threading.Lock()
        self.pending = []  # answers not yet written
        self.writing = False
        self.plock = threading.Lock()
        self.procs = {}  # request id -> Popen
        self.cancelled = set()
        self.jobs = queue.Queue()
        self.ilock = threading.Lock()
        self.idle = 0  # workers waiting for a job, or about to
        self.socks = {}  # connection id -> Relay

    def send(self, obj):
        """Queue one answer; the first thread to find nobody writing writes every
        answer queued meanwhile in one go (fewer writes and SSH packets)."""
        line = json.dumps(obj) + "\n"
        with self.wlock:
            self.pending.append(line)
            if self.writing:
                return
            self.writing = True
        while True:
            with self.wlock:
                if not self.pending:
                    self.writing = False
                    return
                data, self.pending = "".join(self.pending), []
            try:
                self.out.write(data.encode("utf-8"))
                self.out.flush()
            except (OSError, ValueError):
                self.quit()

    def quit(self):
        with self.plock:
            procs = list(self.procs.values())
        for p in procs:
            kill_group(p.pid)
        os._exit(0)

    def serve(self):
        self.send({"hello": 1, "hostname": socket.gethostname(), "pid": os.getpid(), "time": time.time(),
                   "python": "%d.%d" % sys.version_info[:2]})
        while True:
            line = self.inp.readline()
            if not line:
                self.quit()
            try:
                req = json.loads(line.decode("utf-8"))
            except ValueError:
                continue
            if req.get("op") == "cancel":
                self.cancel(req.get("id"))
                continue
            if req.get("op") in ("send", "close"):  # in order, never blocking this loop
                with self.plock:
                    relay = self.socks.get(req.get("sock"))
                if relay is not None:
                    relay.outbox.put(base64.b64decode(req["data"]) if req["op"] == "send" else None)
                continue
            self.dispatch(req)

    def dispatch(self, req):
        """Hand ``req`` to an idle worker, or to a new one when all are busy (a
        worker stuck in the kernel is never waited for)."""
        with self.ilock:
            spawn = self.idle == 0
            if not spawn:
                self.idle -= 1
        if spawn:
            t = threading.Thread(target=self.work, name="ddx-agent")
            t.daemon = True
            t.start()
        self.jobs.put(req)

    def work(self):
        while True:
            self.handle(self.jobs.get())
            with self.ilock:
                self.idle += 1

    def handle(self, req):
        rid = req.get("id")
        try:
            value = getattr(self, "op_" + str(req.get("op")))(rid, req)
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the caller
            self.send(error(rid, exc))
            return
        self.send({"id": rid, "ok": value})

    def op_read(self, rid, req):
        data = read_bytes(req["path"], int(req["max_bytes"]), bool(req["tail"]))
        return data.decode("utf-8", "replace")

    def op_listdir(self, rid, req):
        return sorted(os.listdir(req["path"]))

    def op_stat(self, rid, req):
        st = os.stat(req["path"])
        return [st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime, st.st_ctime, st.st_ino, st.st_nlink]

    def op_statvfs(self, rid, req):
        v = os.statvfs(req["path"])
        return [v.f_blocks * v.f_frsize, v.f_bavail * v.f_frsize, v.f_files, v.f_favail, bool(v.f_flag & os.ST_RDONLY)]

    def op_readlink(self, rid, req):
        return os.readlink(req["path"])

    def op_batch(self, rid, req):
        """Several calls of one kind, in order: each its value or its error, for
        the items done within ``timeout`` and ``BATCH_BYTES``; ``stopped`` says
        which limit ended it early ("time": the item after the last one is still
        running, abandoned with its thread)."""
        op = str(req["of"])
        if op not in BATCH_OPS:
            raise ValueError("cannot batch %s" % op)
        fn = getattr(self, "op_" + op)
        calls = list(req["calls"])
        done = []
        state = {"stop": False, "stopped": None}

        def go():
            size = 0
            for args in calls:
                if state["stop"]:
                    return
                try:
                    value = fn(rid, args)
                except Exception as exc:  # noqa: BLE001 - each item's failure is its answer
                    item = error(None, exc)
                    del item["id"]
                    done.append(item)
                    continue
                done.append({"ok": value})
                size += len(value) if isinstance(value, str) else 64
                if size > BATCH_BYTES:
                    state["stopped"] = "size"
                    return

        t = threading.Thread(target=go, name="ddx-agent-batch")
        t.daemon = True
        t.start()
        t.join(float(req["timeout"]))
        if t.is_alive():
            state["stop"], state["stopped"] = True, "time"
        return {"done": list(done), "stopped": state["stopped"]}

    def op_open(self, rid, req):
        timeout = float(req["timeout"])
        with self.plock:
            if len(self.socks) >= MAX_SOCKETS:
                raise OSError(24, "too many relayed connections open")
        try:
            if "path" in req:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(timeout)
                try:
                    sock.connect(str(req["path"]))
                except BaseException:
                    sock.close()
                    raise
            else:
                sock = socket.create_connection((str(req["host"]), int(req["port"])), timeout)
        except socket.timeout:  # Python < 3.10: not yet a TimeoutError
            raise TimeoutError("timed out")
        sock.settimeout(None)
        relay = Relay(self, rid, sock)
        with self.plock:
            self.socks[rid] = relay
        relay.start()
        return rid

    def op_time(self, rid, req):
        return time.time()

    def op_run(self, rid, req):
        env = dict(os.environ)
        env.update(req.get("env") or {})
        env["LC_ALL"] = env["LANG"] = "C"
        path = env.get("PATH", "/usr/bin:/bin").split(":")
        env["PATH"] = ":".join(path + [d for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin") if d not in path])
        with self.plock:
            if rid in self.cancelled:
                raise OSError(4, "cancelled")
            p = subprocess.Popen(list(req["argv"]), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, start_new_session=True, env=env)
            self.procs[rid] = p
        timeout = float(req["timeout"])
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(p.pid)
            p.kill()
            raise TimeoutError("did not finish within %.1fs (killed)" % timeout)
        finally:
            with self.plock:
                self.procs.pop(rid, None)
        return [p.returncode, out[-MAX_OUTPUT:].decode("utf-8", "replace"), err[-MAX_OUTPUT:].decode("utf-8", "replace")]

    def cancel(self, rid):
        with self.plock:
            self.cancelled.add(rid)
            p = self.procs.get(rid)
        if p is not None:
            kill_group(p.pid)


class Relay(object):
    """One connection made from here: bytes from ddx are sent in order by one
    thread, what comes back is passed on by another."""

    def __init__(self, agent, cid, sock):
        self.agent, self.cid, self.sock = agent, cid, sock
        self.outbox = queue.Queue()  # bytes to send; None: close

    def start(self):
        for target in (self.sending, self.receiving):
            t = threading.Thread(target=target, name="ddx-agent-relay")
            t.daemon = True
            t.start()

    def sending(self):
        while True:
            data = self.outbox.get()
            if data is None:
                break
            try:
                self.sock.sendall(data)
            except OSError:
                break
        self.finish()

    def receiving(self):
        got = 0
        try:
            while got <= MAX_RECEIVED:
                data = self.sock.recv(65536)
                if not data:
                    break
                got += len(data)
                self.agent.send({"sock": self.cid, "data": base64.b64encode(data).decode("ascii")})
        except OSError:
            pass
        self.agent.send({"sock": self.cid, "eof": True})
        self.finish()

    def finish(self):
        with self.agent.plock:
            self.agent.socks.pop(self.cid, None)
        self.outbox.put(None)  # the sending thread ends too
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def kill_group(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass


def error(rid, exc):
    out = {"id": rid, "error": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, OSError):
        if exc.errno is not None:
            out["errno"] = exc.errno
        if exc.filename is not None:
            out["filename"] = str(exc.filename)
        if exc.strerror:
            out["message"] = exc.strerror
    return out


def main():
    Agent(sys.stdin.buffer, sys.stdout.buffer).serve()


if __name__ == "__main__":
    main()
