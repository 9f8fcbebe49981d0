"""Services a supervisor runs are in the inventory even while they are down between two
crashes: runit and s6 run scripts, supervisord programs. The parsers are pure; the live
tests start a real runsv and a real supervisord on a crash-looping program."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ddx.host import LiveHost
from ddx.inventory import Inventory, build_inventory
from ddx.inventory.supervised import parse_run_script, parse_supervisord

CRASHER = "import sys, time; print('starting', flush=True); time.sleep(0.2); sys.exit(3)\n"


def test_run_script_gives_command_folder_environment_and_logs() -> None:
    text = ("#!/bin/sh\n# the shop's app\nexec 2>&1\ncd /srv/shop\nexport SHOP_CONFIG=/srv/shop/settings.json\n"
            "echo \"$(date) starting\" >> /srv/shop/log/run.log\n"
            "exec chpst -u shop -o 4096 env PORT=8000 /usr/bin/python3 app.py --workers 2 >> /srv/shop/log/app.log\n")
    argv, env, cwd, logs = parse_run_script(text, "/etc/sv/shop")
    assert argv == ["/usr/bin/python3", "app.py", "--workers", "2"]
    assert env == {"SHOP_CONFIG": "/srv/shop/settings.json", "PORT": "8000"}
    assert cwd == "/srv/shop"
    assert logs == ["/srv/shop/log/run.log", "/srv/shop/log/app.log"]


def test_run_script_relative_cd_and_nothing_to_run() -> None:
    argv, env, cwd, logs = parse_run_script("#!/bin/sh\ncd ../app\nsleep 1 > /dev/null\n", "/etc/sv/x")
    assert (argv, env, cwd, logs) == ([], {}, "/etc/sv/app", [])
    argv, *_ = parse_run_script("exec 'unterminated\n", "/s")  # a quoting error is read word by word
    assert argv == ["'unterminated"]


def test_supervisord_programs_and_includes() -> None:
    text = ("[supervisord]\nlogfile=/var/log/supervisor/supervisord.log ; its own\n\n"
            "[program:shop]\ncommand=/usr/bin/python3 /srv/shop/app.py --port 8000\n"
            "directory=/srv/shop\nenvironment=SHOP_CONFIG=\"/srv/shop/s.json\",MODE=\"prod\"\n"
            "stdout_logfile=/srv/shop/log/out.log ; a comment\nstderr_logfile=AUTO\n\n"
            "[include]\nfiles = conf.d/*.conf /etc/extra.conf\n")
    programs, includes = parse_supervisord(text)
    assert includes == ["conf.d/*.conf", "/etc/extra.conf"]
    assert len(programs) == 1 and programs[0]["name"] == "shop"
    assert programs[0]["command"] == "/usr/bin/python3 /srv/shop/app.py --port 8000"
    assert programs[0]["stdout_logfile"] == "/srv/shop/log/out.log" and programs[0]["directory"] == "/srv/shop"


def _stop(p: subprocess.Popen[bytes]) -> None:
    """Stop the supervisor and what it runs: supervisord stops its programs (each in a
    process group of its own) on SIGTERM; runsv's child shares its group."""
    p.terminate()
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait(timeout=10)


def _children(ppid: int) -> list[str]:
    """The names of the processes whose parent is ``ppid``."""
    out = []
    for d in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except (OSError, ValueError):
            continue
        name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
        if int(rest[1]) == ppid:
            out.append(name)
    return out


def _wait(cond: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not cond():  # type: ignore[operator]
        time.sleep(0.1)


def _service(inv: Inventory, name: str):  # type: ignore[no-untyped-def]
    found = [s for s in inv.services if s.name.startswith(name)]
    assert found, f"{name} not in the inventory: {[s.label for s in inv.services]}"
    return found[0]


@pytest.fixture
def crash_dir(tmp_path: Path) -> Iterator[Path]:
    app = tmp_path / "app"
    (app / "log").mkdir(parents=True)
    (app / "crasher.py").write_text(CRASHER)
    (app / "settings.json").write_text('{"log_file": "%s"}\n' % (app / "log" / "app.log"))
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.mark.skipif(shutil.which("runsv") is None, reason="runit is not installed")
def test_a_crash_looping_runit_service_is_in_the_inventory(crash_dir: Path) -> None:
    app, svc = crash_dir / "app", crash_dir / "sv" / "crashy"
    svc.mkdir(parents=True)
    run = svc / "run"
    run.write_text(f"#!/bin/sh\ncd {app}\nexport CRASHY_CONFIG={app}/settings.json\n"
                   f"exec {sys.executable} crasher.py >> {app}/log/stdout.log 2>&1\n")
    run.chmod(0o755)
    p = subprocess.Popen(["runsv", str(svc)], start_new_session=True, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        _wait(lambda: (app / "log" / "stdout.log").exists(), 10)
        inv = build_inventory(LiveHost())
        s = _service(inv, "crashy")
        assert s.pid == p.pid and s.unit == "runsv" and s.program == "crasher.py"
        assert s.cwd == str(app)
        assert str(app / "log" / "stdout.log") in [lg.path for lg in s.logs]
        assert [c.path for c in s.configs][:2] == [str(run), str(app / "settings.json")]
        assert str(app / "log" / "app.log") in [lg.path for lg in s.logs]  # named by its settings
    finally:
        _stop(p)


@pytest.mark.skipif(shutil.which("supervisord") is None, reason="supervisor is not installed")
def test_a_crash_looping_supervisord_program_is_in_the_inventory(crash_dir: Path) -> None:
    app = crash_dir / "app"
    conf = crash_dir / "supervisord.conf"
    (crash_dir / "conf.d").mkdir()
    conf.write_text(f"[supervisord]\nlogfile={crash_dir}/supervisord.log\npidfile={crash_dir}/supervisord.pid\n"
                    f"nodaemon=true\n[unix_http_server]\nfile={crash_dir}/supervisor.sock\n"
                    "[include]\nfiles = conf.d/*.conf\n")
    (crash_dir / "conf.d" / "crashy.conf").write_text(
        f"[program:crashy]\ncommand={sys.executable} crasher.py\ndirectory={app}\nstartretries=1000\n"
        f"startsecs=0\nautorestart=true\nstdout_logfile={app}/log/out.log\n"
        f"environment=CRASHY_CONFIG=\"{app}/settings.json\"\n"
        f"[program:steady]\ncommand=sleep 300\ndirectory={crash_dir}\n")
    p = subprocess.Popen(["supervisord", "-c", str(conf)], start_new_session=True, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        _wait(lambda: (app / "log" / "out.log").exists() and "sleep" in _children(p.pid), 15)
        inv = build_inventory(LiveHost())
        crashy, steady = _service(inv, "crashy"), _service(inv, "steady")
        assert crashy.unit == "supervisord" and crashy.cwd == str(app) and crashy.program == "crasher.py"
        assert str(app / "log" / "out.log") in [lg.path for lg in crashy.logs]
        assert str(app / "settings.json") in [c.path for c in crashy.configs]
        assert steady.program == "sleep" and len(steady.pids) == 2  # supervisord and its own child, not crashy's
    finally:
        _stop(p)
