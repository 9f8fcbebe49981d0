"""procs: parsers on real /proc samples, the rules on fixture process tables,
and the probe on real faults made by these tests (orphaned workers, zombies,
a pids cgroup at its limit, a crash-looping supervised service, a CPU hog)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ddx.config import Config
from ddx.errors import ConfigError
from ddx.host import BundleHost, LiveHost, RecordingHost, StatResult, build_bundle
from ddx.inventory.processes import read_proc_table
from ddx.model import Finding, State
from ddx.probes.base import ProbeContext, registry
from ddx.probes.parsers.proctable import (
    Proc,
    ProcTable,
    group_processes,
    normalise_cmdline,
    parse_cmdline,
    parse_cpu_times,
    parse_file_nr,
    parse_limits,
    parse_loadavg_tasks,
    parse_stat,
    parse_status,
    parse_uptime,
    program_of,
)
from ddx.probes.runner import run_probes
from ddx.probes.system.procchecks import (
    cgroup_child_names,
    child_changes,
    cpu_hogs,
    limit_uses,
    parse_listen_inodes,
    parse_pids_events,
    parse_pids_max,
    parse_systemctl_show,
    persistent_zombies,
    unit_loop_reason,
)
from ddx.probes.system.procs import _SHOW_PROPS, MAX_SAMPLES, procs
from ddx.probes.system.workers import (
    adopted,
    find_excess,
    find_managers,
    find_orphans,
    nginx_worker_processes,
    parse_pools,
    size_from_cmdline,
)

# --- samples taken from real /proc files -------------------------------------------------

STAT_CAT = (
    "9896 (cat) R 9893 9893 3738 0 -1 4194304 102 0 0 0 0 0 0 0 20 0 1 0 465882 3133440 407 "
    "18446744073709551615 94465957261312 94465957281193 140728569436064 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 "
    "94465957297200 94465957298816 94466341371904 140728569444892 140728569444912 140728569444912 "
    "140728569446379 0\n"
)
STAT_KTHREADD = (
    "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 3 0 0 20 0 1 0 0 0 0 18446744073709551615 0 0 0 0 0 0 0 "
    "2147483647 0 0 0 0 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
)
STATUS_BASH = """\
Name:\tbash
Umask:\t0022
State:\tS (sleeping)
Tgid:\t3738
Ngid:\t0
Pid:\t3738
PPid:\t3737
TracerPid:\t0
Uid:\t1000\t1000\t1000\t1000
Gid:\t1000\t1000\t1000\t1000
FDSize:\t256
Groups:\t
Kthread:\t0
VmRSS:\t    3328 kB
Threads:\t1
"""
LIMITS = """\
Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max stack size            8388608              unlimited            bytes     
Max processes             96365                96365                processes 
Max open files            20000                20000                files     
Max nice priority         0                    0                    
Max realtime timeout      unlimited            unlimited            us        
"""
PROC_STAT = """\
cpu  10358 0 3575 916068 232 0 44 19 0 0
cpu0 1835 0 1889 461300 13 0 12 8 0 0
cpu1 8522 0 1685 454768 219 0 32 11 0 0
intr 1 2 3
ctxt 123
btime 1795321960
processes 9000
"""


def test_parse_stat_real_and_awkward_comm() -> None:
    st = parse_stat(STAT_CAT)
    assert (st.pid, st.comm, st.state, st.ppid, st.pgid, st.sid) == (9896, "cat", "R", 9893, 9893, 3738)
    assert (st.threads, st.starttime, st.rss_pages) == (1, 465882, 407)
    assert not st.kernel_thread
    # comm may contain spaces and parentheses: fields are found from the last ')'.
    odd = parse_stat(STAT_CAT.replace("(cat)", "(my (odd) prog)"))
    assert odd.comm == "my (odd) prog" and odd.ppid == 9893
    assert parse_stat(STAT_KTHREADD).kernel_thread
    with pytest.raises(ValueError, match="/proc/PID/stat"):
        parse_stat("garbage")


def test_parse_status_limits_cmdline() -> None:
    s = parse_status(STATUS_BASH)
    assert (s.name, s.uid, s.fdsize, s.threads, s.kernel_thread) == ("bash", 1000, 256, 1, False)
    assert s.rss == 3328 * 1024  # VmRSS, in bytes
    assert parse_status("Name:\tkworker\nUid:\t0\t0\t0\t0\nPPid:\t2\n").rss is None  # no VmRSS line
    with pytest.raises(ValueError, match="Uid"):
        parse_status("Name:\tx\n")
    lim = parse_limits(LIMITS)
    assert lim["Max open files"].soft == 20000 and lim["Max processes"].hard == 96365
    assert lim["Max cpu time"].soft is None and lim["Max nice priority"].soft == 0
    # setproctitle and nginx pad the old argv area with NULs.
    assert parse_cmdline("nginx: worker process\0\0\0\0") == ("nginx: worker process",)
    assert parse_cmdline("/usr/bin/python3\0-m\0gunicorn\0") == ("/usr/bin/python3", "-m", "gunicorn")


def test_system_files() -> None:
    cpu = parse_cpu_times(PROC_STAT)
    assert cpu.ncpu == 2 and cpu.btime == 1795321960
    assert cpu.total == 10358 + 3575 + 916068 + 232 + 44 + 19 and cpu.idle == 916068 + 232
    assert parse_uptime("4658.83 9160.69\n") == 4658.83
    assert parse_file_nr("485\t0\t2466170\n") == (485, 2466170)
    assert parse_loadavg_tasks("0.29 0.15 0.05 1/87 8861\n") == 87


@pytest.mark.parametrize(
    ("argv", "program"),
    [
        (("gunicorn: master [app]",), "gunicorn"),
        (("gunicorn: worker [app]",), "gunicorn"),
        (("/usr/bin/python3", "/usr/local/bin/gunicorn", "-w", "4", "app:app"), "gunicorn"),
        (("python3", "-u", "-W", "ignore", "-m", "celery", "-A", "x", "worker"), "celery"),
        (("python3", "-mhttp.server"), "http.server"),
        (("python3", "-c", "print(1)"), "python3"),
        (("nginx: master process /usr/sbin/nginx -g daemon on; master_process on;",), "nginx"),
        (("nginx: worker process",), "nginx"),
        (("php-fpm: pool www",), "php-fpm"),
        (("postgres: 15/main: checkpointer",), "postgres"),
        (("/usr/lib/postgresql/15/bin/postgres", "-D", "/var/lib/postgresql/15/main"), "postgres"),
        (("puma: cluster worker 0: 812 [app]",), "puma"),
        (("-bash",), "bash"),
        (("/usr/bin/node", "--max-old-space-size=512", "/srv/app/server.js"), "server.js"),
        (("/usr/bin/python3", "/usr/lib/python3/dist-packages/gunicorn/__main__.py", "-w", "3"), "gunicorn"),
        ((), "kworker"),
    ],
)
def test_program_of(argv: tuple[str, ...], program: str) -> None:
    assert program_of(argv, "kworker") == program


def test_normalise_cmdline_names_an_interpreters_program_one_way() -> None:
    # gunicorn's in-place upgrade (USR2) re-executes `python3 -m gunicorn` as `python3 .../gunicorn/__main__.py`
    a = normalise_cmdline(("/usr/bin/python3", "-m", "gunicorn", "-w", "3", "app:app"))
    b = normalise_cmdline(("/usr/bin/python3", "/usr/lib/python3/dist-packages/gunicorn/__main__.py", "-w", "3",
                           "app:app"))
    c = normalise_cmdline(("/usr/bin/python3", "/usr/local/bin/gunicorn", "-w", "3", "app:app"))
    assert a == b == c == "python3 gunicorn -w N app:app"
    assert normalise_cmdline(("python3", "-c", "print(1)")) == "python3 -c print(N)"


def test_normalise_cmdline_merges_numbers_keeps_apps_apart() -> None:
    a = normalise_cmdline(("unicorn worker[0] -c /srv/a/unicorn.rb",))
    b = normalise_cmdline(("unicorn worker[3] -c /srv/a/unicorn.rb",))
    c = normalise_cmdline(("unicorn worker[3] -c /srv/b/unicorn.rb",))
    assert a == b != c
    assert normalise_cmdline(("/usr/sbin/apache2", "-k", "start")) == "apache2 -k start"
    assert normalise_cmdline((), "defunct") == "[defunct]"


# --- fixture process tables ----------------------------------------------------------------

HZ = 100
UPTIME = 100_000.0


@dataclass
class FP:
    """A fake process for fixture tables and bundles. ``start``: seconds after boot."""

    pid: int
    ppid: int
    argv: tuple[str, ...] = ()
    start: float = 1000.0
    uid: int = 0
    pgid: int | None = None
    sid: int | None = None
    state: str = "S"
    threads: int = 1
    cpu: tuple[int, ...] = (0,)  # utime at successive reads
    comm: str = ""
    fdsize: int = 64
    nproc: int | None = None
    kthread: bool = False

    def name(self) -> str:
        return self.comm or (program_of(self.argv) or "x")[:15]

    def stat(self, i: int = 0) -> str:
        flags = 0x00208040 if self.kthread else 0x00400100
        cpu = self.cpu[min(i, len(self.cpu) - 1)]
        pgid = self.pid if self.pgid is None else self.pgid
        sid = pgid if self.sid is None else self.sid
        return (
            f"{self.pid} ({self.name()}) {self.state} {self.ppid} {pgid} {sid} 0 -1 {flags} 0 0 0 0 "
            f"{cpu} 0 0 0 20 0 {self.threads} 0 {int(self.start * HZ)} 1000000 100 18446744073709551615 0 0\n"
        )

    def status(self) -> str:
        return (
            f"Name:\t{self.name()}\nPPid:\t{self.ppid}\nUid:\t{self.uid}\t{self.uid}\t{self.uid}\t{self.uid}\n"
            f"FDSize:\t{self.fdsize}\nKthread:\t{int(self.kthread)}\nThreads:\t{self.threads}\n"
        )

    def proc(self) -> Proc:
        return Proc.from_parts(parse_stat(self.stat()), parse_status(self.status()), self.argv)


def table(*fps: FP) -> ProcTable:
    return ProcTable({f.pid: f.proc() for f in fps}, UPTIME, HZ)


INIT = FP(1, 0, ("/sbin/init",), start=0.0)
KTHREADD = FP(2, 0, (), start=0.0, comm="kthreadd", kthread=True)


def gunicorn_deploy() -> list[FP]:
    """A deploy killed the old master (pid 200) with -9; its workers live on
    under init; the new master 210 runs 3 new workers."""
    return [
        INIT,
        KTHREADD,
        FP(201, 1, ("gunicorn: worker [app]",), start=1000, uid=33, pgid=200),
        FP(202, 1, ("gunicorn: worker [app]",), start=1000, uid=33, pgid=200),
        FP(203, 1, ("gunicorn: worker [app]",), start=1000, uid=33, pgid=200),
        FP(210, 1, ("gunicorn: master [app]",), start=90000, uid=33),
        FP(211, 210, ("gunicorn: worker [app]",), start=90001, uid=33, pgid=210),
        FP(212, 210, ("gunicorn: worker [app]",), start=90001, uid=33, pgid=210),
        FP(213, 210, ("gunicorn: worker [app]",), start=90001, uid=33, pgid=210),
    ]


def healthy_host() -> list[FP]:
    """Daemons under init, pre-fork servers at their size, and the look-alikes
    that must not count: sshd sessions that outlived an sshd restart, a queue
    consumer named 'worker' run by systemd, a shell script's subshells and
    pipeline, postgres with its helpers, one zombie."""
    return [
        INIT,
        KTHREADD,
        FP(30, 2, (), comm="kworker/0:1", kthread=True),
        FP(100, 1, ("nginx: master process /usr/sbin/nginx -g daemon on; master_process on;",), start=50),
        FP(101, 100, ("nginx: worker process",), start=51, uid=33, pgid=100),
        FP(102, 100, ("nginx: worker process",), start=51, uid=33, pgid=100),
        FP(103, 100, ("nginx: cache manager process",), start=51, uid=33, pgid=100),
        FP(200, 1, ("/usr/bin/python3", "/usr/bin/gunicorn", "-w", "3", "app:app"), start=60, uid=33),
        *(FP(p, 200, ("/usr/bin/python3", "/usr/bin/gunicorn", "-w", "3", "app:app"), start=61, uid=33, pgid=200)
          for p in (201, 202, 203)),
        FP(300, 1, ("sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups",), start=90000),
        FP(310, 1, ("sshd: alice [priv]",), start=500, pgid=310),
        FP(311, 310, ("sshd: alice@pts/0",), start=501, uid=1000, pgid=310),
        FP(320, 300, ("sshd: bob [priv]",), start=95000),
        FP(321, 320, ("sshd: bob@pts/1",), start=95001, uid=1001, pgid=320),
        FP(400, 1, ("/usr/bin/python3", "/usr/bin/celery", "-A", "proj", "worker", "--pool=solo"), start=70, uid=999),
        FP(401, 400, (), start=99000, uid=999, state="Z", comm="sh"),
        FP(500, 1, ("/usr/lib/postgresql/15/bin/postgres", "-D", "/var/lib/postgresql/15/main"), start=40, uid=106),
        FP(501, 500, ("postgres: 15/main: checkpointer",), start=41, uid=106, pgid=500),
        FP(502, 500, ("postgres: 15/main: walwriter",), start=41, uid=106, pgid=500),
        FP(600, 1, ("/bin/bash", "/opt/backup.sh"), start=99990),
        FP(601, 600, ("/bin/bash", "/opt/backup.sh"), start=99991, pgid=600),
        FP(602, 600, ("gzip", "-9"), start=99991, pgid=602),
        FP(603, 600, ("split", "-b", "1G"), start=99991, pgid=602),
        FP(700, 311, ("/usr/bin/python3", "/home/alice/tool.py"), start=99000, uid=1000, pgid=700, threads=12),
    ]


def test_managers_and_orphans_on_a_deploy() -> None:
    t = table(*gunicorn_deploy())
    managers = find_managers(t)
    assert [(m.proc.pid, [w.pid for w in m.workers]) for m in managers] == [(210, [211, 212, 213])]
    orphans = find_orphans(t, managers)
    assert [(o.proc.pid, o.manager.pid if o.manager else None) for o in orphans] == [(201, 210), (202, 210), (203, 210)]
    [(m, exc)] = find_excess(t, managers, orphans)
    assert exc is not None and (exc.count, exc.expected) == (6, 3)


def test_orphans_need_to_predate_the_manager_and_be_adopted() -> None:
    fps = gunicorn_deploy()
    # Old workers started *after* the master: not leftovers of an earlier master.
    later = [FP(f.pid, f.ppid, f.argv, start=95000, uid=f.uid, pgid=f.pgid) if f.pid in (201, 202, 203) else f
             for f in fps]
    t = table(*later)
    orph = [o for o in find_orphans(t, find_managers(t)) if o.manager is not None]
    assert orph == []
    # A different uid: another application's processes, not these workers.
    other = [FP(f.pid, f.ppid, f.argv, start=f.start, uid=1000, pgid=f.pgid) if f.pid in (201, 202, 203) else f
             for f in fps]
    t = table(*other)
    assert [o for o in find_orphans(t, find_managers(t)) if o.manager is not None] == []
    # An older single instance started by a supervisor, not adopted: another copy, not a leftover.
    sup = [
        INIT,
        FP(50, 1, ("/usr/bin/python3", "/usr/bin/supervisord", "-n"), start=10),
        FP(60, 50, ("/usr/sbin/apache2", "-k", "start"), start=100, uid=33, pgid=50),
        FP(70, 1, ("/usr/sbin/apache2", "-k", "start"), start=5000, uid=33),
        FP(71, 70, ("/usr/sbin/apache2", "-k", "start"), start=5001, uid=33, pgid=70),
    ]
    t = table(*sup)
    assert [m.proc.pid for m in find_managers(t)] == [70]
    assert find_orphans(t, find_managers(t)) == []
    # The same process adopted by init after its own manager died is a leftover.
    sup[2] = FP(60, 1, ("/usr/sbin/apache2", "-k", "start"), start=100, uid=33, pgid=55)
    t = table(*sup)
    assert [(o.proc.pid, o.manager.pid if o.manager else None) for o in find_orphans(t, find_managers(t))] == [(60, 70)]


def test_worker_of_a_dead_manager_but_not_a_daemon_named_worker() -> None:
    fps = [
        INIT,
        # php-fpm master 900 is gone: its pool workers are left under init, group leader dead.
        FP(901, 1, ("php-fpm: pool www",), start=100, uid=33, pgid=900),
        FP(902, 1, ("php-fpm: pool www",), start=100, uid=33, pgid=900),
        # a celery consumer run by systemd leads its own group: a normal daemon.
        FP(950, 1, ("/usr/bin/python3", "/usr/bin/celery", "-A", "proj", "worker"), start=100, pgid=950),
        # a worker-titled process whose group leader is alive and its parent: started normally.
        FP(960, 1, ("supervise-me",), start=100, pgid=960),
        FP(961, 960, ("queue worker 1",), start=100, pgid=960),
    ]
    t = table(*fps)
    orphans = find_orphans(t, find_managers(t))
    assert [(o.proc.pid, o.manager) for o in orphans] == [(901, None), (902, None)]
    assert "900" in orphans[0].reason


def test_adoption() -> None:
    t = table(*healthy_host())
    assert adopted(t, t.procs[310])  # ppid 1
    assert not adopted(t, t.procs[601])  # same group as its parent
    assert not adopted(t, t.procs[603])  # a pipeline: group of its sibling
    assert not adopted(t, t.procs[311])  # its parent leads its group
    t2 = table(INIT, FP(10, 1, ("subreaper",), pgid=10), FP(11, 10, ("w",), pgid=77))
    assert adopted(t2, t2.procs[11])  # group from a process that is gone


def test_healthy_table_has_no_orphans_or_excess() -> None:
    t = table(*healthy_host())
    managers = find_managers(t)
    assert {m.proc.pid for m in managers} == {100, 200, 500}  # not sshd, not the shell script
    assert find_orphans(t, managers) == []
    sizes = {100: (2, "worker_processes"), 200: size_from_cmdline(t.procs[200])}
    assert sizes[200] == (3, "gunicorn -w 3")
    assert all(exc is None for _, exc in find_excess(t, managers, [], sizes))  # type: ignore[arg-type]
    groups = group_processes(t)
    assert groups[0].count == 4 and groups[0].program == "gunicorn"
    assert all(g.program != "kworker/0:1" for g in groups)


def test_configured_sizes() -> None:
    def p(*argv: str) -> Proc:
        return FP(5, 1, argv).proc()

    assert size_from_cmdline(p("gunicorn", "--workers=8", "app:app")) == (8, "gunicorn --workers 8")
    assert size_from_cmdline(p("gunicorn", "-w4", "app:app")) == (4, "gunicorn -w 4")
    assert size_from_cmdline(p("uwsgi", "--ini", "a.ini", "--processes", "6")) == (6, "uwsgi --processes 6")
    assert size_from_cmdline(p("gunicorn: master [app]")) is None  # a title hides the flags
    assert size_from_cmdline(p("sleep", "-w", "3")) is None
    conf = "user www-data;\n# worker_processes 9;\nworker_processes  4;\nevents {}\n"
    assert nginx_worker_processes(conf, 2) == 4
    assert nginx_worker_processes("worker_processes auto;", 8) == 8
    assert nginx_worker_processes("events {}", 8) == 1


def test_configured_size_exceeded_by_live_children() -> None:
    fps = [INIT, FP(100, 1, ("nginx: master process /usr/sbin/nginx",), start=10)]
    fps += [FP(p, 100, ("nginx: worker process",), start=20, uid=33, pgid=100) for p in (101, 102)]
    fps += [FP(p, 100, ("nginx: worker process is shutting down",), start=15, uid=33, pgid=100) for p in (103, 104)]
    t = table(*fps)
    [(m, exc)] = find_excess(t, find_managers(t), [], {100: (2, "worker_processes in /etc/nginx/nginx.conf")})
    assert exc is not None and (exc.count, exc.expected) == (4, 2)


def test_parse_pools_errors_name_the_entry() -> None:
    pools = parse_pools([{"name": "app", "match": r"gunicorn: worker \[app\]", "expected": 8}])
    assert pools[0].expected == 8 and pools[0].pattern.search("gunicorn: worker [app]")
    for bad, msg in [
        ([{"match": "(", "expected": 1}], r"pools\[0\]: 'match' is not a valid regular expression"),
        ([{"match": "x"}], r"pools\[0\]: 'expected' must be a whole number"),
        ([{"match": "x", "expected": 1, "size": 2}], r"pools\[0\]: unknown key 'size'"),
        (["x"], r"pools\[0\]: expected a table"),
    ]:
        with pytest.raises(ValueError, match=msg):
            parse_pools(bad)


# --- checks on samples -------------------------------------------------------------------

SYSTEMCTL_SHOW = """\
Id=api.service
NRestarts=14
ActiveState=activating
SubState=auto-restart
Result=exit-code
ExecMainStartTimestampMonotonic=99990000000
ExecMainPID=0

Id=ssh.service
NRestarts=0
ActiveState=active
SubState=running
Result=success
ExecMainStartTimestampMonotonic=12000000
ExecMainPID=612

Id=worker.service
NRestarts=5
ActiveState=failed
SubState=failed
Result=start-limit-hit
ExecMainStartTimestampMonotonic=99000000000
ExecMainPID=0

Id=cron.service
NRestarts=1
ActiveState=active
SubState=running
Result=success
ExecMainStartTimestampMonotonic=2000000000
ExecMainPID=700

Id=queue.service
NRestarts=3
ActiveState=active
SubState=running
Result=success
ExecMainStartTimestampMonotonic=99700000000
ExecMainPID=800
"""


def test_systemd_loop_rule() -> None:
    units = {u["Id"]: u for u in parse_systemctl_show(SYSTEMCTL_SHOW)}
    now = int(UPTIME * 1e6)
    why = {k: unit_loop_reason(u, now, 2, 900.0) for k, u in units.items()}
    assert why["api.service"] and "auto-restart" in why["api.service"]
    assert why["worker.service"] and "start-limit-hit" in why["worker.service"]
    assert why["queue.service"] and "3 automatic restarts" in why["queue.service"]
    assert why["ssh.service"] is None
    assert why["cron.service"] is None  # one restart, long ago: history


def test_cgroup_and_limit_helpers() -> None:
    assert parse_pids_max("max\n") is None and parse_pids_max("512\n") == 512
    assert parse_pids_events("max 7\n") == 7 and parse_pids_events("max 0\nmax.imposed 3\n") == 0
    assert cgroup_child_names(
        ["cgroup.procs", "pids.max", "memory.high", "system.slice", "init.scope", "tasks", "docker", "io.stat"]
    ) == ["system.slice", "init.scope", "docker"]
    t = table(*healthy_host())
    uses = {u.name: u for u in limit_uses(120, 32768, 1000, t, {1000: (14, 700)})}
    assert uses["kernel.pid_max"].used == 120
    u = uses["RLIMIT_NPROC uid 1000"]  # 1 (sshd session) + 12 threads of tool.py
    assert (u.used, u.limit) == (13, 14) and u.percent > 90 and "/proc/700/limits" == u.source
    assert "RLIMIT_NPROC uid 0" not in uses  # root is not held to it


def test_zombies_that_stay_and_cpu_hogs() -> None:
    t = table(INIT, FP(10, 1, ("p",)), FP(11, 10, (), state="Z", comm="a"), FP(12, 10, (), state="Z", comm="b"))
    later = {11: parse_stat(FP(11, 10, (), state="Z", comm="a").stat())}  # 12 was reaped
    assert [z.pid for z in persistent_zombies(t, later)] == [11]
    assert [z.pid for z in persistent_zombies(t, None)] == [11, 12]

    spin = FP(20, 1, ("spin",), cpu=(0, 95))
    idle = FP(21, 1, ("idle",), cpu=(10, 12))
    t = table(INIT, spin, idle)
    later2 = {20: parse_stat(spin.stat(1)), 21: parse_stat(idle.stat(1))}
    before = parse_cpu_times("cpu  0 0 0 0 0 0 0 0\ncpu0 0\ncpu1 0\n")
    after = parse_cpu_times("cpu  90 0 10 100 0 0 0 0\ncpu0 0\ncpu1 0\n")  # 200 ticks = 1 s on 2 CPUs
    hogs, top = cpu_hogs(t, later2, before, after, 80.0, 50.0)
    assert [h.proc.pid for h in hogs] == [20] and round(hogs[0].core_percent) == 95
    assert [h.proc.pid for h in top] == [20, 21]
    # A restarted pid (other start time) is not the same process.
    later3 = {20: parse_stat(FP(20, 1, ("spin",), cpu=(95,), start=2000).stat())}
    assert cpu_hogs(t, later3, before, after, 80.0, 50.0) == ([], [])


# --- the probe on bundles (recorded or fixture hosts) ------------------------------------


def proc_files(fps: list[FP], reads: int = 1) -> tuple[dict[str, Any], dict[str, Any]]:
    files: dict[str, Any] = {}
    for f in fps:
        base = f"/proc/{f.pid}"
        files[f"{base}/stat"] = [f.stat(i) for i in range(reads)] if reads > 1 else f.stat()
        files[f"{base}/status"] = f.status()
        files[f"{base}/cmdline"] = "\0".join(f.argv) + ("\0" if f.argv else "")
        nproc = "unlimited" if f.nproc is None else str(f.nproc)
        files[f"{base}/limits"] = LIMITS.replace("96365                96365", f"{nproc:<20} {nproc:<20}")
    listdirs = {"/proc": sorted([str(f.pid) for f in fps] + ["self", "stat", "uptime"])}
    return files, listdirs


def run_bundle(
    tmp_path: Path,
    fps: list[FP],
    *,
    window: float = 0.0,
    extra_files: dict[str, Any] | None = None,
    listdirs: dict[str, Any] | None = None,
    commands: dict[tuple[str, ...], Any] | None = None,
    stats: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    proc_stat: list[str] | None = None,
    readlinks: dict[str, Any] | None = None,
) -> dict[str, Finding]:
    files, dirs = proc_files(fps, reads=2 if window else 1)
    files.update(
        {
            "/proc/uptime": f"{UPTIME} 1.0\n",
            "/proc/stat": proc_stat or PROC_STAT,
            "/proc/loadavg": f"0.1 0.1 0.1 1/{len(fps) + 40} 999\n",
            "/proc/sys/kernel/pid_max": "32768\n",
            "/proc/sys/kernel/threads-max": "63000\n",
            "/proc/mounts": "proc /proc proc rw 0 0\n",
        }
    )
    files.update(extra_files or {})
    dirs.update(listdirs or {})
    path = build_bundle(str(tmp_path / f"b{uuid.uuid4().hex[:6]}"), files=files, listdirs=dirs,
                        commands=commands, stats=stats, readlinks=readlinks)
    opts = {**registry["procs"].options, **(options or {})}
    return {f.id: f for f in procs(ProbeContext(BundleHost(path), opts, window, "procs"))}


def samples(f: Finding) -> str:
    return "\n".join(s for e in f.evidence for s in e.samples)


def test_probe_on_a_healthy_fixture_host(tmp_path: Path) -> None:
    got = run_bundle(tmp_path, healthy_host(), extra_files={"/etc/nginx/nginx.conf": "worker_processes 2;\n"})
    for fid in ("procs.orphaned_workers", "procs.count_excess", "procs.zombies", "procs.limit_near"):
        assert got[fid].state is State.ABSENT, (fid, got[fid])
    # Nothing to say about restarts without systemd, supervisors or a window: unknown, not absent.
    assert "procs.crash_loop" not in got and "procs.fork_failures" not in got
    assert "cpu.single_process_hog" not in got  # no window, no rate
    assert "gunicorn -w 3" in samples(got["procs.count_excess"])
    assert "worker_processes in /etc/nginx/nginx.conf" in samples(got["procs.count_excess"])
    text = samples(got["procs.count_excess"])
    assert "4 x python3 gunicorn -w N app:app (parents 200 x3, 1 x1; ages 27.8 h)" in text
    assert "nginx -g daemon on; master_process on; -> 2 worker(s), expected 2 (worker_processes in" in text


def test_probe_on_a_deploy_that_left_workers_behind(tmp_path: Path) -> None:
    got = run_bundle(tmp_path, gunicorn_deploy())
    orph = got["procs.orphaned_workers"]
    assert orph.state is State.PRESENT and orph.evidence[0].value == 3
    assert "pid 201 ppid 1 age 27.5 h gunicorn: worker [app] <- manager now pid 210 (age 2.8 h)" in samples(orph)
    exc = got["procs.count_excess"]
    assert exc.state is State.PRESENT and (exc.evidence[0].value, exc.evidence[0].threshold) == (6, 3)
    # With a configured pool the count is checked as given too.
    pool = {"pools": [{"name": "app", "match": r"^gunicorn: worker \[app\]", "expected": 6}]}
    got = run_bundle(tmp_path, gunicorn_deploy(), options=pool)
    assert "app: 6 processes" not in samples(got["procs.count_excess"])  # 6 of 6: fine on its own
    pool["pools"][0]["expected"] = 4
    got = run_bundle(tmp_path, gunicorn_deploy(), options=pool)
    assert "app: 6 processes, expected 4 (configured pool)" in samples(got["procs.count_excess"])
    # A pool at its size on a healthy host is listed among the groups checked.
    web = {"pools": [{"name": "web", "match": "^nginx: worker", "expected": 2}]}
    got = run_bundle(tmp_path, healthy_host(), options=web)
    assert got["procs.count_excess"].state is State.ABSENT
    assert "pool 'web' /^nginx: worker/: 2 of expected 2" in samples(got["procs.count_excess"])


def test_bad_pool_option_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[probe.procs\] pools\[0\]"):
        run_bundle(tmp_path, gunicorn_deploy(), options={"pools": [{"match": "[", "expected": 1}]})


def test_probe_limits_cgroups_and_fork_failures(tmp_path: Path) -> None:
    fps = healthy_host()
    fps = [FP(f.pid, f.ppid, f.argv, f.start, f.uid, f.pgid, f.sid, f.state, 95 if f.pid == 700 else f.threads,
              comm=f.comm, kthread=f.kthread, nproc=100 if f.uid == 1000 else None) for f in fps]
    cg = "/sys/fs/cgroup"
    files = {
        "/proc/mounts": f"proc /proc proc rw 0 0\ncgroup2 {cg} cgroup2 rw,nosuid 0 0\n",
        f"{cg}/cgroup.subtree_control": "cpu memory pids\n",
        f"{cg}/system.slice/cgroup.subtree_control": "memory pids\n",
        f"{cg}/system.slice/pids.max": "max\n",
        f"{cg}/system.slice/pids.current": "180\n",
        f"{cg}/system.slice/pids.events": "max 0\n",
        f"{cg}/system.slice/app.service/cgroup.subtree_control": "\n",
        f"{cg}/system.slice/app.service/pids.max": "100\n",
        f"{cg}/system.slice/app.service/pids.current": "97\n",
        f"{cg}/system.slice/app.service/pids.events": "max 12\n",
        f"{cg}/system.slice/ok.service/pids.max": "4915\n",
        f"{cg}/system.slice/ok.service/pids.current": "3\n",
        f"{cg}/system.slice/ok.service/pids.events": "max 0\n",
    }
    dirs = {
        cg: ["cgroup.controllers", "cgroup.procs", "cgroup.subtree_control", "init.scope", "system.slice"],
        f"{cg}/system.slice": ["app.service", "cgroup.procs", "ok.service", "pids.current", "pids.max"],
    }
    got = run_bundle(tmp_path, fps, extra_files=files, listdirs=dirs)
    lim = got["procs.limit_near"]
    assert lim.state is State.PRESENT
    text = samples(lim)
    assert "cgroup /system.slice/app.service pids.max: 97 of 100 (97%)" in text
    assert "RLIMIT_NPROC uid 1000: 96 of 100 (96%)" in text
    assert "ok.service" not in text
    fork = got["procs.fork_failures"]
    assert fork.state is State.PRESENT and fork.evidence[0].value == 12
    assert "cgroup /system.slice/app.service: 12 fork failure(s) at pids.max 100" in samples(fork)


def test_probe_systemd_crash_loop(tmp_path: Path) -> None:
    argv = ("systemctl", "show", "--no-pager", "-p", _SHOW_PROPS, "*.service")
    d = StatResult(0o40755, 0, 0, 0, 0.0, 0.0)
    got = run_bundle(tmp_path, healthy_host(), commands={argv: SYSTEMCTL_SHOW}, stats={"/run/systemd/system": d})
    loop = got["procs.crash_loop"]
    assert loop.state is State.PRESENT and loop.evidence[0].value == 3
    assert "api.service: dead, waiting for automatic restart #15" in samples(loop)
    healthy = "\n\n".join(b for b in SYSTEMCTL_SHOW.split("\n\n") if "ssh.service" in b or "cron.service" in b)
    got = run_bundle(tmp_path, healthy_host(), commands={argv: healthy}, stats={"/run/systemd/system": d})
    assert got["procs.crash_loop"].state is State.ABSENT
    assert "2 systemd services" in got["procs.crash_loop"].evidence[0].summary
    # systemctl failing leaves the finding unknown (nothing else to look at without a window).
    got = run_bundle(tmp_path, healthy_host(), commands={argv: (1, "")}, stats={"/run/systemd/system": d})
    assert "procs.crash_loop" not in got


def test_probe_supervised_service_restarting(tmp_path: Path) -> None:
    fps = [INIT, FP(50, 1, ("runsv", "api"), start=10), FP(51, 50, ("/srv/api/bin/api",), start=UPTIME - 3)]
    got = run_bundle(tmp_path, fps)
    loop = got["procs.crash_loop"]
    assert loop.state is State.PRESENT and "supervised child is 3 s old" in samples(loop)


def test_young_supervisor_with_a_restarted_child_is_a_crash_loop(tmp_path: Path) -> None:
    # runsv started 8 s ago; its service is 1 s old, started 7 s after it: restarted, not the first start.
    fps = [INIT, FP(50, 1, ("runsv", "api"), start=UPTIME - 8), FP(51, 50, ("/srv/api/bin/api",), start=UPTIME - 1)]
    loop = run_bundle(tmp_path, fps)["procs.crash_loop"]
    assert loop.state is State.PRESENT and "started 7 s after its supervisor" in samples(loop)
    # a supervisor and the service it started at once: nothing restarted yet
    fps[2] = FP(51, 50, ("/srv/api/bin/api",), start=UPTIME - 7.5)
    assert run_bundle(tmp_path, fps)["procs.crash_loop"].state is State.ABSENT


def test_child_changes() -> None:
    assert child_changes([frozenset({5}), frozenset({5}), frozenset(), frozenset({9})]) == ([5], [9])
    assert child_changes([frozenset({5}), frozenset({5})]) == ([], [])
    assert child_changes([frozenset({5})]) == ([], [])


def test_supervised_child_seen_dying_during_the_window(tmp_path: Path) -> None:
    fps = [INIT, FP(50, 1, ("runsv", "api"), start=10), FP(51, 50, ("/srv/api/bin/api",), start=10)]
    kids = ["51\n"] * 4 + [""] * 7  # the service exits while ddx watches; runsv waits before the next start
    got = run_bundle(tmp_path, fps, window=1.0, extra_files={"/proc/50/task/50/children": kids})
    loop = got["procs.crash_loop"]
    assert loop.state is State.PRESENT and "child 51 exited during the 1s window" in samples(loop)
    steady = run_bundle(tmp_path, fps, window=1.0, extra_files={"/proc/50/task/50/children": ["51\n"] * 11})
    assert steady["procs.crash_loop"].state is State.ABSENT


def test_probe_window_reads_zombies_and_hog(tmp_path: Path) -> None:
    fps = [INIT, FP(10, 1, ("/usr/bin/reaper-less", "--serve"), start=10, cpu=(100, 100))]
    fps += [FP(p, 10, (), state="Z", comm="job", start=50) for p in range(11, 17)]
    fps.append(FP(20, 1, ("/usr/bin/python3", "/srv/spin.py"), start=10, cpu=(500, 590)))
    stat2 = PROC_STAT.replace("cpu  10358 0 3575 916068", "cpu  10458 0 3575 916168")
    got = run_bundle(tmp_path, fps, window=1.0, proc_stat=[PROC_STAT, stat2])
    z = got["procs.zombies"]
    assert z.state is State.PRESENT and z.evidence[0].value == 6
    assert "parent pid 10 (/usr/bin/reaper-less --serve) has 6 zombie(s)" in samples(z)
    hog = got["cpu.single_process_hog"]
    assert hog.state is State.PRESENT and hog.evidence[0].value == 90.0
    assert "pid 20 ppid 1" in samples(hog)
    assert got["procs.crash_loop"].state is State.ABSENT  # looked (window), nothing restarted
    # ddx's own CPU time (other probes at work during the window) is never the host's hog.
    got = run_bundle(tmp_path, fps, window=1.0, proc_stat=[PROC_STAT, stat2], readlinks={"/proc/self": "20"})
    assert got["cpu.single_process_hog"].state is State.ABSENT


def test_vanished_and_unreadable_processes_are_skipped(tmp_path: Path) -> None:
    fps = gunicorn_deploy()
    files = {"/proc/202/stat": FileNotFoundError(2, "No such file or directory", "/proc/202/stat"),
             "/proc/212/cmdline": ProcessLookupError(3, "No such process")}
    got = run_bundle(tmp_path, fps, extra_files=files)
    orph = got["procs.orphaned_workers"]
    assert orph.state is State.PRESENT and orph.evidence[0].value == 2
    assert "2 exited during the scan" in orph.evidence[0].summary


# --- the probe on real processes -----------------------------------------------------------

FAKEAPP = """\
import os, sys, time
if sys.argv[1] == "manager":
    for _ in range(int(sys.argv[2])):
        if os.fork() == 0:
            os.execv(sys.executable, [sys.executable, __file__, "worker"])
    while True:
        time.sleep(60)
time.sleep(600)
"""


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            text = fh.read()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _pids_with(token: str) -> list[int]:
    out = []
    for n in os.listdir("/proc"):
        if n.isdigit() and token in _cmdline(int(n)):
            out.append(int(n))
    return sorted(out)


def _wait(cond: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class Procs:
    """Processes a test starts, all killed at teardown (those it spawned and
    anything whose command line holds the test's unique token)."""

    def __init__(self, tmp: Path) -> None:
        self.token = f"ddxt{uuid.uuid4().hex[:10]}"
        self.dir = tmp
        self.popen: list[subprocess.Popen[bytes]] = []

    def script(self, text: str, name: str) -> Path:
        p = self.dir / f"{name}_{self.token}.py"
        p.write_text(text)
        return p

    def start(self, argv: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        stdin, stdout = kw.pop("stdin", subprocess.DEVNULL), kw.pop("stdout", subprocess.DEVNULL)
        p = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=subprocess.DEVNULL, **kw)
        self.popen.append(p)
        return p

    def workers_of(self, pid: int) -> list[int]:
        kids = []
        for n in os.listdir("/proc"):
            f = _stat_fields(int(n)) if n.isdigit() else None
            if f and int(f[1]) == pid and _cmdline(int(n)).rstrip().endswith("worker"):
                kids.append(int(n))
        return sorted(kids)

    def manager(self, app: Path, n: int) -> tuple[subprocess.Popen[bytes], list[int]]:
        m = self.start([sys.executable, str(app), "manager", str(n)], start_new_session=True)
        kids = _wait(lambda: (k := self.workers_of(m.pid)) and len(k) == n and k, f"{n} workers of {m.pid}")
        return m, kids

    def cleanup(self) -> None:
        for pid in _pids_with(self.token):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in self.popen:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Procs]:
    ps = Procs(tmp_path)
    try:
        yield ps
    finally:
        ps.cleanup()


def run_live(options: dict[str, Any] | None = None, window: float = 0.2) -> dict[str, Finding]:
    config = Config(probes={"procs": options or {}})
    coll = run_probes(LiveHost(), config, only=["procs"], window=window)
    [res] = coll.results
    assert res.status == "ok", res
    return {f.id: f for f in coll.findings}


def named(f: Finding, pids: list[int]) -> bool:
    """Every pid is named in the evidence rows, or the evidence says it found
    more than it shows (processes of other test runs on this shared machine
    pushed ours out of the sample rows)."""
    text = samples(f)
    if all(f"pid {p} " in text for p in pids):
        return True
    ev = f.evidence[0]
    return ev.count is not None and ev.count > MAX_SAMPLES


def excess_named(f: Finding, row: str, manager: int) -> bool:
    """The excess row is shown, or (other groups pushed it out) the pure rules
    on this host's table find the same excess for ``manager``."""
    if row in samples(f):
        return True
    t = read_proc_table(LiveHost()).table
    managers = find_managers(t)
    found = [e for _, e in find_excess(t, managers, find_orphans(t, managers)) if e and e.manager]
    return any(e.manager.pid == manager and e.count == 6 for e in found if e.manager)


def _left_behind(live: Procs, n: int = 3) -> tuple[Path, list[int]]:
    """A manager with ``n`` workers, killed with SIGKILL: its workers live on."""
    app = live.script(FAKEAPP, "fakeapp")
    m1, old = live.manager(app, n)
    m1.kill()
    m1.wait(timeout=10)
    _wait(lambda: all((f := _stat_fields(p)) and int(f[1]) != m1.pid for p in old), "workers adopted")
    return app, old


def test_live_orphans_after_a_manager_restart(live: Procs) -> None:
    app, old = _left_behind(live)
    m2, new = live.manager(app, 3)
    got = run_live()
    orph = got["procs.orphaned_workers"]
    assert orph.state is State.PRESENT
    text = samples(orph)
    assert named(orph, old) and f"manager now pid {m2.pid}" in text
    for pid in new:
        assert f"pid {pid} " not in text
    exc = got["procs.count_excess"]
    assert exc.state is State.PRESENT
    row = f"{app.name} workers of {m2.pid}: 6 processes, expected 3 (manager {m2.pid}'s live children)"
    assert excess_named(exc, row, m2.pid)
    # The same through the pure rules on a table read from this host: exactly our old workers.
    t = read_proc_table(LiveHost()).table
    ours = [o for o in find_orphans(t, find_managers(t)) if live.token in " ".join(o.proc.argv)]
    assert sorted(o.proc.pid for o in ours) == old


def test_live_incident_recorded_and_replayed(live: Procs) -> None:
    """What the probe saw can be saved and replayed: same findings, same evidence."""
    app, old = _left_behind(live)
    live.manager(app, 3)
    rec = RecordingHost(LiveHost())
    first = run_probes(rec, Config(), only=["procs"], window=0.2)
    path = rec.save(str(live.dir / "incident.tar.gz"), first)
    again = run_probes(BundleHost(path), Config(), only=["procs"], window=0.2)
    assert [r.status for r in again.results] == ["ok"]
    assert [f.to_dict() for f in again.findings] == [f.to_dict() for f in first.findings]
    orph = {f.id: f for f in again.findings}["procs.orphaned_workers"]
    assert orph.state is State.PRESENT and named(orph, old)


def test_live_pool_configured(live: Procs) -> None:
    app, old = _left_behind(live)
    m2, new = live.manager(app, 3)
    pool = {"name": "fakeapp", "match": f"{app.name} worker$", "expected": 3}
    got = run_live({"pools": [pool]})
    exc = got["procs.count_excess"]
    assert exc.state is State.PRESENT
    assert "fakeapp: 6 processes, expected 3 (configured pool)" in samples(exc)
    pool["expected"] = 6  # the pool as configured holds all six: only the manager's own view flags it now
    got = run_live({"pools": [pool]})
    exc = got["procs.count_excess"]
    assert "fakeapp: 6 processes" not in samples(exc)
    assert excess_named(exc, f"workers of {m2.pid}: 6 processes", m2.pid)


def test_live_workers_of_a_dead_manager(live: Procs) -> None:
    app, old = _left_behind(live)
    got = run_live()
    orph = got["procs.orphaned_workers"]
    assert orph.state is State.PRESENT
    assert named(orph, old) and "process group leader" in samples(orph)


def test_live_healthy_manager_is_not_flagged(live: Procs) -> None:
    app = live.script(FAKEAPP, "fakeapp")
    m, kids = live.manager(app, 3)
    got = run_live()
    for fid in ("procs.orphaned_workers", "procs.count_excess"):
        f = got[fid]
        text = samples(f) if f.state is State.PRESENT else ""
        assert all(f"pid {p} " not in text for p in [m.pid, *kids]), (fid, text)
    # The manager is seen as one, at its size.
    t = read_proc_table(LiveHost()).table
    mine = [m2 for m2 in find_managers(t) if m2.proc.pid == m.pid]
    assert mine and [w.pid for w in mine[0].workers] == kids


ZOMBIE_MAKER = """\
import os, sys, time
for _ in range(int(sys.argv[1])):
    if os.fork() == 0:
        os._exit(0)
time.sleep(600)
"""


def test_live_zombies(live: Procs) -> None:
    script = live.script(ZOMBIE_MAKER, "zombies")
    parent = live.start([sys.executable, str(script), "7"])

    def zombies() -> int:
        n = 0
        for name in os.listdir("/proc"):
            f = _stat_fields(int(name)) if name.isdigit() else None
            if f and f[0] == "Z" and int(f[1]) == parent.pid:
                n += 1
        return n

    _wait(lambda: zombies() == 7, "7 zombies")
    got = run_live()
    z = got["procs.zombies"]
    assert z.state is State.PRESENT and z.evidence[0].value >= 7
    [line] = [r for r in z.evidence[0].samples if r.startswith(f"parent pid {parent.pid} (")]
    assert line.endswith("has 7 zombie(s)") and sys.executable in line


SUPERVISOR = """\
import subprocess, sys, time, threading
def keep(delay):
    time.sleep(delay)
    while True:
        subprocess.run([sys.executable, "-c", "import time; time.sleep(0.15); raise SystemExit(1)"])
for d in (0, 0.08):
    threading.Thread(target=keep, args=(d,), daemon=True).start()
time.sleep(600)
"""


def test_live_crash_looping_supervised_service(live: Procs) -> None:
    # A supervisor restarting a service that dies at once. It is named runsv the way runit's is:
    # python run through a link of that name, so its command line says runsv.
    runsv = live.dir / "runsv"
    runsv.symlink_to(sys.executable)
    script = live.script(SUPERVISOR, "svc")
    sup = live.start([str(runsv), str(script)])
    _wait(lambda: any(int(f[1]) == sup.pid for n in os.listdir("/proc") if n.isdigit()
                      and (f := _stat_fields(int(n)))), "a supervised child")
    got = run_live(window=0.6)
    loop = got["procs.crash_loop"]
    assert loop.state is State.PRESENT
    assert named(loop, [sup.pid]) and "replaced by" in samples(loop)


def test_live_cpu_hog(live: Procs) -> None:
    spin = live.start([sys.executable, "-c", f"# {live.token}\nwhile True: pass"])
    _wait(lambda: (f := _stat_fields(spin.pid)) and int(f[11]) + int(f[12]) > 5, "the spinner to spin")
    # This machine is shared with other test runs: ask for a third of a CPU, not most of the host.
    got = run_live({"hog_core_percent": 30.0, "hog_share_percent": 0.0}, window=0.5)
    hog = got["cpu.single_process_hog"]
    assert hog.state is State.PRESENT and named(hog, [spin.pid])


# A CPU-bound process; with "tcp" or "unix" it first listens on a socket of that kind, and
# with "fork" it listens, forks a child of the same program that closes the socket and spins
# (a PostgreSQL backend under its postmaster), and sleeps.
SPINNER = """\
import os, socket, sys, time
kind = sys.argv[1]
if kind == "tcp" or kind == "fork":
    s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
elif kind == "unix":
    s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[2]); s.listen(8)
if kind == "fork" and os.fork():
    time.sleep(3600)
if kind == "fork":
    s.close()
while True: pass
"""


def _spinning(pids: list[int]) -> None:
    _wait(lambda: all((f := _stat_fields(p)) and int(f[11]) + int(f[12]) > 5 for p in pids), "the spinners to spin")


def test_parse_listen_inodes_tcp_and_unix() -> None:
    tcp = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
           "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1\n"
           "   1: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 4343 1\n")
    unix = ("Num       RefCount Protocol Flags    Type St Inode Path\n"
            "0000000001: 00000002 00000000 00010000 0001 01 5151 /run/app.sock\n"
            "0000000002: 00000003 00000000 00000000 0001 03 5252 /run/app.sock\n")
    assert parse_listen_inodes(tcp, unix) == {4242, 5151}  # the established and connected ones are not
    assert parse_listen_inodes("garbage\n", "0000: x y zz\n") == set()


@pytest.mark.slow
def test_live_busy_cpu_outside_the_services(live: Procs, tmp_path: Path) -> None:
    """Spinners that accept no connections keep every CPU busy: present, and named.
    The same spinners holding listening sockets (TCP, unix, or a parent of the same
    program that does) are services at work: absent."""
    n = max(2, os.cpu_count() or 1)
    opts = {"outside_busy_percent": 60.0}
    jobs = [live.start([sys.executable, "-c", f"# {live.token}\n{SPINNER}", "none"]) for _ in range(n)]
    _spinning([p.pid for p in jobs])
    got = run_live(opts, window=0.5)["cpu.busy_outside_services"]
    assert got.state is State.PRESENT, got.evidence[0].summary
    text = samples(got)
    assert any(f"pid {p.pid} " in text and "serves nobody" in text for p in jobs)
    for p in jobs:
        p.kill()
        p.wait(timeout=10)
    for kind in ("tcp", "unix", "fork"):
        servers = [live.start([sys.executable, "-c", f"# {live.token}\n{SPINNER}", kind,
                               str(tmp_path / f"{kind}{i}.sock")]) for i in range(n)]
        spin = [p.pid for p in servers]
        if kind == "fork":  # the children spin, their parents hold the sockets
            spin = _wait(lambda: (kids := [int(c) for c in os.listdir("/proc") if c.isdigit()
                                           and (f := _stat_fields(int(c))) and int(f[1]) in spin])
                         and len(kids) == n and kids, "the forked children")
        _spinning(spin)
        got = run_live(opts, window=0.5)["cpu.busy_outside_services"]
        assert got.state is State.ABSENT, (kind, got.evidence[0].summary)
        assert any(f"pid {p} " in samples(got) for p in spin) and "accepts connections" in samples(got), kind
        for p in servers:
            p.kill()
            p.wait(timeout=10)


def _pids_hierarchy() -> tuple[str, bool] | None:
    with open("/proc/mounts") as fh:
        for line in fh:
            parts = line.split()
            if parts[2] == "cgroup" and "pids" in parts[3].split(","):
                return parts[1], False
            if parts[2] == "cgroup2":
                try:
                    with open(os.path.join(parts[1], "cgroup.subtree_control")) as sc:
                        if "pids" in sc.read().split():
                            return parts[1], True
                except OSError:
                    continue
    return None


FORKER = """\
import os, sys, time
sys.stdin.readline()  # moved into the cgroup
made = failed = 0
for _ in range(12):
    try:
        pid = os.fork()
    except OSError:
        failed += 1
        continue
    if pid == 0:
        time.sleep(600)
        os._exit(0)
    made += 1
print(made, failed, flush=True)
time.sleep(600)
"""


@pytest.mark.root
@pytest.mark.kernel_log  # the kernel logs "fork rejected by pids controller"
def test_live_pids_cgroup_at_its_limit(live: Procs) -> None:
    found = _pids_hierarchy()
    if found is None:
        pytest.skip("no pids cgroup controller usable here (cgroup v1 pids or v2 with pids enabled at the root)")
    root, _v2 = found
    cg = Path(root) / f"ddx-test-{live.token}"
    try:
        cg.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot create a cgroup under {root}: {exc}")
    try:
        (cg / "pids.max").write_text("5\n")
        script = live.script(FORKER, "forker")
        p = live.start([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        (cg / "cgroup.procs").write_text(f"{p.pid}\n")
        assert p.stdin is not None and p.stdout is not None
        p.stdin.write(b"go\n")
        p.stdin.flush()
        made, failed = map(int, p.stdout.readline().split())
        assert made == 4 and failed == 8  # the kernel refused 8 forks
        got = run_live()
        lim = got["procs.limit_near"]
        assert lim.state is State.PRESENT
        assert f"cgroup /{cg.name} pids.max: 5 of 5 (100%)" in samples(lim)
        fork = got["procs.fork_failures"]
        assert fork.state is State.PRESENT
        assert f"cgroup /{cg.name}: 8 fork failure(s) at pids.max 5" in samples(fork)
    finally:
        for _ in range(3):
            try:
                pids = [int(x) for x in (cg / "cgroup.procs").read_text().split()]
            except OSError:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            live.cleanup()
        _wait(lambda: not (cg / "cgroup.procs").read_text().split(), "the test cgroup to empty")
        cg.rmdir()


def test_live_probe_runs_cleanly_on_this_host() -> None:
    """Whatever else runs here, the probe finishes, and the pids it names exist or existed."""
    got = run_live()
    assert {"procs.orphaned_workers", "procs.count_excess", "procs.zombies", "procs.limit_near"} <= set(got)
    for f in got.values():
        assert f.source == "probe:procs" and f.evidence and f.evidence[0].summary


def test_probe_is_registered_with_its_findings() -> None:
    from ddx.probes import load_probes

    load_probes()
    spec = registry["procs"]
    assert set(spec.findings) == {
        "cpu.busy_outside_services",
        "cpu.single_process_hog",
        "procs.count_excess",
        "procs.crash_loop",
        "procs.fork_failures",
        "procs.limit_near",
        "procs.orphaned_workers",
        "procs.zombies",
    }
    assert "memory.process_rss_growing" not in spec.findings  # needs minutes of samples, not one window
    assert spec.options["pools"] == [] and spec.options["zombies_min"] == 5

