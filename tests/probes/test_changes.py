"""Change probe: the parsers on real formats (dpkg, apt, dnf, yum, git
reflog, systemctl), the alignment of errors with changes, and the probe on
fixture trees (``LiveHost(root=tmpdir)``) holding a package log, logs,
config files, a git checkout, a Capistrano release layout and deploy
markers written by the test with times relative to now."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ddx.host import LiveHost
from ddx.model import State
from ddx.probes.base import ProbeContext, registry
from ddx.probes.history.changes import (
    FINDINGS,
    Change,
    _dedupe_packages,
    align,
    parse_apt_history,
    parse_dnf_rpm_log,
    parse_dpkg_log,
    parse_git_reflog,
    parse_release_name,
    parse_systemctl_show,
    parse_yum_log,
    walk_configs,
)

UTC = dt.timezone.utc


def _utc(*args: int) -> float:
    return dt.datetime(*args, tzinfo=UTC).timestamp()


# --- parsers ---------------------------------------------------------------------------------

DPKG = """\
2026-11-22 05:30:01 startup archives unpack
2026-11-22 05:30:02 upgrade openssl:amd64 3.0.11-1~deb12u1 3.0.13-1~deb12u2
2026-11-22 05:30:02 status half-configured openssl:amd64 3.0.11-1~deb12u1
2026-11-22 05:30:03 install libfoo1:amd64 <none> 1.2-3
2026-11-22 05:30:04 remove libbar2:amd64 4.5-6 <none>
2026-11-22 05:30:05 purge libbar2:amd64 4.5-6 <none>
2026-11-22 05:30:06 configure openssl:amd64 3.0.13-1~deb12u2 <none>
2026-11-22 05:30:06 trigproc libc-bin:amd64 2.36-9+deb12u4 <none>
"""


def test_parse_dpkg_log():
    got = parse_dpkg_log(DPKG, UTC)
    assert [c.what for c in got] == [
        "upgrade openssl:amd64 3.0.11-1~deb12u1 -> 3.0.13-1~deb12u2",
        "install libfoo1:amd64 1.2-3",
        "remove libbar2:amd64 4.5-6",
    ]
    assert got[0].time == _utc(2026, 11, 22, 5, 30, 2) and got[0].kind == "package"
    berlin = dt.timezone(dt.timedelta(hours=1))
    assert parse_dpkg_log(DPKG, berlin)[0].time == _utc(2026, 11, 22, 4, 30, 2)


APT = """\

Start-Date: 2026-11-22  05:30:00
Commandline: apt-get upgrade -y
Requested-By: admin (1000)
Upgrade: openssl:amd64 (3.0.11-1~deb12u1, 3.0.13-1~deb12u2), libssl3:amd64 (3.0.11-1~deb12u1, 3.0.13-1~deb12u2)
Install: libfoo1:amd64 (1.2-3, automatic)
End-Date: 2026-11-22  05:30:09

Start-Date: 2026-11-22  05:40:00
Commandline: apt-get remove nginx
Remove: nginx:amd64 (1.22.1-9)
End-Date: 2026-11-22  05:40:03
"""


def test_parse_apt_history():
    got = parse_apt_history(APT, UTC)
    whats = [c.what.split(" (apt:")[0] for c in got]
    assert whats == [
        "upgrade openssl:amd64 3.0.11-1~deb12u1 -> 3.0.13-1~deb12u2",
        "upgrade libssl3:amd64 3.0.11-1~deb12u1 -> 3.0.13-1~deb12u2",
        "install libfoo1:amd64 1.2-3",
        "remove nginx:amd64 1.22.1-9",
    ]
    assert got[0].time == _utc(2026, 11, 22, 5, 30) and "apt-get upgrade -y" in got[0].what
    assert got[3].time == _utc(2026, 11, 22, 5, 40)


def test_dpkg_and_apt_history_of_the_same_run_are_listed_once():
    both = _dedupe_packages(parse_dpkg_log(DPKG, UTC) + parse_apt_history(APT, UTC))
    assert [(c.what.split(" (apt:")[0], c.source.rsplit("/", 1)[1]) for c in both] == [
        ("upgrade libssl3:amd64 3.0.11-1~deb12u1 -> 3.0.13-1~deb12u2", "history.log"),  # only in the history
        ("upgrade openssl:amd64 3.0.11-1~deb12u1 -> 3.0.13-1~deb12u2", "dpkg.log"),  # dpkg's exact time wins
        ("install libfoo1:amd64 1.2-3", "dpkg.log"),
        ("remove libbar2:amd64 4.5-6", "dpkg.log"),
        ("remove nginx:amd64 1.22.1-9", "history.log"),
    ]


def test_parse_rpm_logs():
    dnf = ("2026-11-22T05:30:01+0000 SUBDEBUG Upgrade: openssl-1:3.0.7-27.el9.x86_64\n"
           "2026-11-22T05:30:02+0000 SUBDEBUG Upgraded: openssl-1:3.0.7-25.el9.x86_64\n"
           "2026-11-22T06:30:03+0100 SUBDEBUG Installed: jq-1.6-15.el9.x86_64\n"
           "2026-11-22T05:30:04+0000 INFO --- logging initialized ---\n")
    got = parse_dnf_rpm_log(dnf, UTC)
    assert [(c.what, c.time) for c in got] == [
        ("upgrade openssl-1:3.0.7-27.el9.x86_64", _utc(2026, 11, 22, 5, 30, 1)),
        ("install jq-1.6-15.el9.x86_64", _utc(2026, 11, 22, 5, 30, 3)),
    ]
    yum = "Nov 22 05:30:01 Updated: openssl-1.0.2k-26.el7_9.x86_64\nNov 22 05:31:00 Erased: telnet\n"
    got = parse_yum_log(yum, UTC, _utc(2026, 11, 22, 6, 0))
    assert [(c.what, c.time) for c in got] == [
        ("upgrade openssl-1.0.2k-26.el7_9.x86_64", _utc(2026, 11, 22, 5, 30, 1)),
        ("remove telnet", _utc(2026, 11, 22, 5, 31)),
    ]


def test_parse_git_reflog_and_release_names():
    reflog = (
        "0000000000000000000000000000000000000000 1111111111111111111111111111111111111111 Deploy Bot "
        "<deploy@example.com> 1795300000 +0000\tclone: from git@example.com:shop.git\n"
        "1111111111111111111111111111111111111111 2222222222222222222222222222222222222222 Deploy Bot "
        "<deploy@example.com> 1795325529 +0100\tpull: Fast-forward\n"
    )
    assert parse_git_reflog(reflog) == (1795325529.0, "2222222222222222222222222222222222222222", "pull: Fast-forward")
    assert parse_git_reflog("garbage\n") is None
    assert parse_release_name("20261122053009") == _utc(2026, 11, 22, 5, 30, 9)
    assert parse_release_name("20261399999999") is None and parse_release_name("v1.2") is None


def test_parse_systemctl_show():
    text = ("Id=nginx.service\nActiveEnterTimestamp=Sun 2026-11-22 05:32:09 UTC\n\n"
            "Id=app.service\nActiveEnterTimestamp=Sun 2026-11-22 06:32:09 CET\n\n"
            "Id=never.service\nActiveEnterTimestamp=\n")
    cet = dt.timezone(dt.timedelta(hours=1))
    assert parse_systemctl_show(text, cet) == [
        ("nginx.service", _utc(2026, 11, 22, 5, 32, 9)),
        ("app.service", _utc(2026, 11, 22, 5, 32, 9)),
    ]


# --- alignment ------------------------------------------------------------------------------------

T0 = _utc(2026, 11, 22, 5, 0)
UPGRADE = Change("package", T0, "upgrade openssl:amd64 1 -> 2", "/var/log/dpkg.log")


def test_errors_that_began_after_a_change():
    (a,) = align([UPGRADE], {"econnrefused": ("logs.connection_refused", 1, [T0 + 180, T0 + 200, T0 + 900])},
                 after=1800, before=3600)
    assert a.change is UPGRADE and a.first_error == T0 + 180 and a.count_after == 3


def test_errors_that_were_there_before_did_not_begin_with_the_change():
    assert align([UPGRADE], {"econnrefused": ("logs.connection_refused", 1, [T0 - 600, T0 + 180])},
                 after=1800, before=3600) == []


def test_errors_long_after_the_change_or_too_few():
    assert align([UPGRADE], {"enospc": ("logs.enospc", 1, [T0 + 3 * 3600])}, after=1800, before=3600) == []
    assert align([UPGRADE], {"econnreset": ("net.connection_resets", 3, [T0 + 60, T0 + 70])},
                 after=1800, before=3600) == []


def test_a_log_tail_that_does_not_reach_back_cannot_tell():
    times = {"enospc": ("logs.enospc", 1, [T0 + 180])}
    assert align([UPGRADE], times, after=1800, before=3600, covered_from={"enospc": T0 - 600}) == []
    assert len(align([UPGRADE], times, after=1800, before=3600, covered_from={"enospc": T0 - 7200})) == 1


def test_the_closest_change_before_the_errors_is_named():
    config = Change("config", T0 + 600, "modified /etc/app.conf", "/etc/app.conf")
    (a,) = align([UPGRADE, config], {"enospc": ("logs.enospc", 1, [T0 + 700])}, after=1800, before=60)
    assert a.change is config


def test_errors_that_start_long_after_a_quiet_stretch_did_not_begin_with_the_change():
    # two errors a second for a minute once they start, after 40 clean seconds: the change did not start them
    burst = [T0 + 40 + i / 2 for i in range(120)]
    assert align([UPGRADE], {"enospc": ("logs.enospc", 1, burst)}, after=1800, before=3600) == []
    # the same burst right after the change (within the second a log stamp loses) did
    right_after = [T0 + 1 + i / 2 for i in range(120)]
    (a,) = align([UPGRADE], {"enospc": ("logs.enospc", 1, right_after)}, after=1800, before=3600)
    assert a.change is UPGRADE
    # rare errors: minutes of quiet say nothing (one every few minutes is what they do)
    rare = [T0 + 300 + 240 * i for i in range(6)]
    assert len(align([UPGRADE], {"enospc": ("logs.enospc", 1, rare)}, after=3600, before=3600)) == 1
    # one short burst two minutes later (a cron job reaching the changed code) gives no steady rate
    cron = [T0 + 120 + i / 10 for i in range(10)]
    assert len(align([UPGRADE], {"enospc": ("logs.enospc", 1, cron)}, after=1800, before=3600)) == 1


def test_a_later_change_explains_a_burst_an_earlier_one_cannot():
    setup = Change("config", T0, "modified /srv/app/nginx.conf", "/srv/app/nginx.conf")
    edit = Change("config", T0 + 30, "modified /srv/app/settings.json", "/srv/app/settings.json")
    burst = [T0 + 30.5 + i / 4 for i in range(60)]
    (a,) = align([setup, edit], {"econnrefused": ("logs.connection_refused", 1, burst)}, after=1800, before=3600)
    assert a.change is edit
    assert align([setup], {"econnrefused": ("logs.connection_refused", 1, burst)}, after=1800, before=3600) == []


# --- the probe on fixture trees ----------------------------------------------------------------


@pytest.fixture
def root() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="ddx-changes-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _write(path: Path, text: str, mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def _local(t: float, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return time.strftime(fmt, time.localtime(t))


def run_changes(root: Path, **options) -> dict[str, object]:
    spec = registry["changes"]
    opts = {**spec.options, "restarts": False, **options}  # the live host's systemd is not the fixture's
    ctx = ProbeContext(host=LiveHost(root=str(root)), config=opts, probe_name="changes")
    found = {f.id: f for f in spec.func(ctx)}
    assert set(found) <= set(FINDINGS)
    return found


def _old_etc(root: Path, now: float) -> None:
    old = now - 40 * 86400
    _write(root / "etc/nginx/nginx.conf", "worker_processes auto;\n", old)
    _write(root / "etc/app/app.yml", "db: db1\n", old)
    for d in ("etc/nginx", "etc/app", "etc"):
        os.utime(root / d, (old, old))


def test_upgrade_then_errors_three_minutes_later(root):
    now = time.time()
    up = now - 600
    _write(root / "var/log/dpkg.log",
           f"{_local(now - 86400 * 3)} upgrade zlib1g:amd64 1:1.2.13 1:1.2.13.dfsg-1\n"
           f"{_local(up)} upgrade libpq5:amd64 15.4-0+deb12u1 15.5-0+deb12u1\n"
           f"{_local(up)} status installed libpq5:amd64 15.5-0+deb12u1\n")
    _write(root / "var/log/syslog",
           f"{_local(up - 1200, '%b %d %H:%M:%S')} web1 app[42]: INFO served 120 requests\n"
           f"{_local(up + 180, '%b %d %H:%M:%S')} web1 app[42]: ERROR could not connect to server: "
           "Connection refused\n"
           f"{_local(up + 240, '%b %d %H:%M:%S')} web1 app[42]: ERROR could not connect to server: "
           "Connection refused\n")
    marker = _write(root / "srv/shop/DEPLOYED_AT", "v42\n", now - 300)
    _old_etc(root, now)
    found = run_changes(root, deploy_markers=["/srv/shop/DEPLOYED_AT"])

    pkg = found["change.recent_package_upgrade"]
    assert pkg.state is State.PRESENT
    (ev,) = pkg.evidence
    assert ev.count == 1 and "libpq5:amd64 15.4-0+deb12u1 -> 15.5-0+deb12u1" in ev.summary
    assert ev.value == pytest.approx(10, abs=0.5) and "zlib1g" not in " ".join(ev.samples)

    began = found["change.errors_began_after_change"]
    assert began.state is State.PRESENT
    assert "began 3 min after package change" in began.evidence[0].summary
    assert "logs.connection_refused" in began.evidence[0].summary and began.evidence[0].count == 2

    deploy = found["change.recent_deploy"]
    assert deploy.state is State.PRESENT and f"deploy marker /srv/shop/{marker.name}" in deploy.evidence[0].summary
    assert found["change.recent_config_change"].state is State.ABSENT
    # errors after an upgrade are not errors after a configuration edit
    by_config = found["change.errors_began_after_config_change"]
    assert by_config.state is State.ABSENT and "no configuration change" in by_config.evidence[0].summary


def test_errors_after_a_configuration_edit(root):
    """The settings gain an address nothing serves: refusals begin right after the edit. Errors
    after an edit that were already there before it do not count."""
    now = time.time()
    _old_etc(root, now)
    edit = now - 400
    _write(root / "etc/app/app.yml", "db: db1\ncache: [10.0.0.5:11211, 10.0.0.9:11211]\n", edit)
    _write(root / "var/log/syslog", "".join(
        f"{_local(t, '%b %d %H:%M:%S')} web1 app[42]: ERROR cache 10.0.0.9:11211: Connection refused\n"
        for t in (edit + 20, edit + 60, edit + 120)))
    found = run_changes(root)
    assert found["change.recent_config_change"].state is State.PRESENT
    by_config = found["change.errors_began_after_config_change"]
    assert by_config.state is State.PRESENT
    assert "after config change: modified /etc/app/app.yml" in by_config.evidence[0].summary
    assert found["change.errors_began_after_change"].state is State.PRESENT

    _write(root / "var/log/syslog", "".join(
        f"{_local(t, '%b %d %H:%M:%S')} web1 app[42]: ERROR cache 10.0.0.9:11211: Connection refused\n"
        for t in (edit - 900, edit - 600, edit + 20, edit + 60)))
    found = run_changes(root)
    by_config = found["change.errors_began_after_config_change"]
    assert by_config.state is State.ABSENT
    assert "1 configuration change(s)" in by_config.evidence[0].summary


def test_errors_already_there_before_the_upgrade(root):
    now = time.time()
    up = now - 600
    _write(root / "var/log/dpkg.log", f"{_local(up)} upgrade libpq5:amd64 15.4 15.5\n")
    _write(root / "var/log/syslog", "".join(
        f"{_local(t, '%b %d %H:%M:%S')} web1 app[42]: ERROR connect() failed (111: Connection refused)\n"
        for t in (up - 1500, up - 900, up + 180)))
    found = run_changes(root)
    assert found["change.recent_package_upgrade"].state is State.PRESENT
    began = found["change.errors_began_after_change"]
    assert began.state is State.ABSENT and "no error signature" in began.evidence[0].summary


def test_a_busy_log_whose_tail_starts_after_the_change_cannot_tell(root):
    now = time.time()
    up = now - 600
    _write(root / "var/log/dpkg.log", f"{_local(up)} upgrade libpq5:amd64 15.4 15.5\n")
    lines: list[tuple[float, str]] = []
    for t in range(int(up - 3700), int(now), 2):
        if t == int(up - 3700) + 400:
            lines.append((t, f"{_local(t, '%b %d %H:%M:%S')} web1 app[42]: ERROR Connection refused\n"))
        lines.append((t, f"{_local(t, '%b %d %H:%M:%S')} web1 app[42]: INFO served request id={t}\n"))
        if abs(t - (up + 180)) <= 1:
            lines.append((t, f"{_local(t, '%b %d %H:%M:%S')} web1 app[42]: ERROR Connection refused\n"))
    _write(root / "var/log/syslog", "".join(text for _, text in lines))
    # The whole log shows the errors were there 50 min before the upgrade...
    assert run_changes(root)["change.errors_began_after_change"].state is State.ABSENT
    # ...a tail from 5 min before the upgrade holds the new errors but not the old ones: it cannot tell
    # whether they began with the upgrade, so it does not say so.
    tail = sum(len(text) for t, text in lines if t >= up - 300)
    began = run_changes(root, log_max_bytes=tail)["change.errors_began_after_change"]
    assert began.state is State.ABSENT
    # The same tail with the old errors rotated away (a log that starts 5 min before): they began with it.
    _write(root / "var/log/syslog", "".join(text for t, text in lines if t >= up - 300))
    assert run_changes(root)["change.errors_began_after_change"].state is State.PRESENT


def test_no_change_at_all(root):
    now = time.time()
    _write(root / "var/log/dpkg.log", f"{_local(now - 5 * 86400)} upgrade libpq5:amd64 15.4 15.5\n")
    _old_etc(root, now)
    found = run_changes(root)
    assert found["change.recent_package_upgrade"].state is State.ABSENT
    assert found["change.recent_config_change"].state is State.ABSENT
    assert found["change.errors_began_after_change"].state is State.ABSENT
    assert found["change.errors_began_after_config_change"].state is State.ABSENT
    assert "change.recent_deploy" not in found  # no app directory or marker: unknown


def test_a_services_logs_pids_and_caches_beside_its_settings_are_not_config(root):
    now = time.time()
    old = now - 40 * 86400
    app = root / "srv/shop"
    _write(app / "settings.json", '{"cache": "10.0.0.5:11211"}\n', old)
    for rel in ("log/app.log", "logs/access.log", "app.log.1", "gunicorn.pid", "cache/page_1.html",
                "sessions/sess_01", "tmp/body/0001", ".settings.json.tmp", "events.out"):
        _write(app / rel, "x\n", now - 30)
    os.utime(app, (old, old))
    found = run_changes(root, config_paths=["/srv/shop"], log_paths=["/srv/shop/events.out"])
    assert found["change.recent_config_change"].state is State.ABSENT
    _write(app / "settings.json", '{"cache": "10.0.0.6:11211"}\n', now - 20)  # an edit is one
    f = run_changes(root, config_paths=["/srv/shop"], log_paths=["/srv/shop/events.out"])["change.recent_config_change"]
    assert f.state is State.PRESENT and f.evidence[0].count == 1 and "settings.json" in f.evidence[0].samples[0]


def test_without_package_logs_the_package_finding_stays_unknown(root):
    _old_etc(root, time.time())
    assert "change.recent_package_upgrade" not in run_changes(root)


def test_config_changes_ignore_list_and_removed_entries(root):
    now = time.time()
    _old_etc(root, now)
    _write(root / "etc/app/app.yml", "db: db2\n", now - 900)  # edited 15 min ago
    _write(root / "etc/mtab", "proc /proc proc rw 0 0\n", now - 60)  # rewritten by the system
    _write(root / "etc/ssl/certs/ca.pem", "x\n", now - 60)  # bulk directory
    (root / "etc/nginx/sites-enabled").mkdir()
    _write(root / "etc/nginx/sites-enabled/shop", "server {}\n", now - 40 * 86400)
    os.utime(root / "etc/nginx", (now - 40 * 86400, now - 40 * 86400))  # the directory is old
    os.unlink(root / "etc/nginx/sites-enabled/shop")  # a site disabled 2 min ago
    os.utime(root / "etc/nginx/sites-enabled", (now - 120, now - 120))
    found = run_changes(root)
    f = found["change.recent_config_change"]
    assert f.state is State.PRESENT
    samples = " | ".join(f.evidence[0].samples)
    assert "modified /etc/app/app.yml" in samples
    assert "entry removed or renamed in /etc/nginx/sites-enabled/" in samples
    assert "mtab" not in samples and "ssl/certs" not in samples
    assert f.evidence[0].count == 2


def test_container_runtime_files_do_not_count(root):
    now = time.time()
    _old_etc(root, now)
    for name in ("resolv.conf", "hosts", "hostname"):
        _write(root / "etc" / name, "x\n", now - 3600)  # written together at container start
    os.utime(root / "etc", (now - 3600, now - 3600))
    assert run_changes(root)["change.recent_config_change"].state is State.ABSENT
    _write(root / "etc/hosts", "10.0.0.9 db\n", now - 600)  # edited later by someone
    f = run_changes(root)["change.recent_config_change"]
    assert f.state is State.PRESENT and "modified /etc/hosts" in f.evidence[0].samples[0]


def test_walk_is_bounded(root):
    now = time.time()
    for i in range(50):
        _write(root / f"etc/many/f{i:02d}.conf", "x\n", now - 60)
    walk = walk_configs(LiveHost(root=str(root)), ["/etc"], cutoff=now - 3600, ignore=[], max_depth=6, max_files=20)
    assert walk.truncated and walk.looked <= 21 and len(walk.changed) < 20
    deep = root / "etc/a/b/c/d"
    _write(deep / "deep.conf", "x\n", now - 60)
    walk = walk_configs(LiveHost(root=str(root)), ["/etc/a"], cutoff=now - 3600, ignore=[], max_depth=2,
                        max_files=1000)
    assert walk.truncated and not any("deep.conf" in c.what for c in walk.changed)


def test_git_checkout_and_capistrano_release(root):
    now = time.time()
    head = "1" * 40
    new = "2" * 40
    _write(root / "srv/api/.git/logs/HEAD",
           f"{'0' * 40} {head} Deploy <d@example.com> {int(now - 86400 * 9)} +0000\tclone: from example\n"
           f"{head} {new} Deploy <d@example.com> {int(now - 420)} +0000\tpull: Fast-forward\n")
    _write(root / "srv/api/.git/HEAD", "ref: refs/heads/main\n")
    release = time.strftime("%Y%m%d%H%M%S", time.gmtime(now - 900))
    (root / f"var/www/shop/releases/{release}").mkdir(parents=True)
    os.symlink(f"releases/{release}", root / "var/www/shop/current")
    found = run_changes(root)
    f = found["change.recent_deploy"]
    assert f.state is State.PRESENT and f.evidence[0].count == 2
    samples = " | ".join(f.evidence[0].samples)
    assert f"git checkout /srv/api at {new[:12]}: pull: Fast-forward" in samples
    assert f"release /var/www/shop/current -> releases/{release}" in samples
    assert "7 min ago" in f.evidence[0].summary


def test_old_deploys_make_the_finding_absent(root):
    now = time.time()
    _write(root / "srv/api/.git/logs/HEAD",
           f"{'0' * 40} {'1' * 40} Deploy <d@example.com> {int(now - 86400 * 9)} +0000\tclone: from example\n")
    f = run_changes(root)["change.recent_deploy"]
    assert f.state is State.ABSENT and "9.0 days ago" in f.evidence[0].summary


def test_since_limits_what_counts(root):
    now = time.time()
    _write(root / "var/log/dpkg.log", f"{_local(now - 1200)} upgrade libpq5:amd64 15.4 15.5\n"
                                      f"{_local(now - 60)} install jq:amd64 <none> 1.6-2.1\n")
    f = run_changes(root, since=now - 300)["change.recent_package_upgrade"]
    assert f.state is State.PRESENT and f.evidence[0].count == 1 and "jq:amd64" in f.evidence[0].summary


FAKE_SYSTEMCTL = """#!/bin/sh
# Stands in for systemd's systemctl (not running in this test environment): prints what
# systemctl 252 prints for these two calls, from the file the test wrote.
case "$1" in
  list-units) printf 'nginx.service loaded active running A high performance web server\\n'
              printf 'ssh.service   loaded active running OpenBSD Secure Shell server\\n' ;;
  show) cat "$(dirname "$0")/show.txt" ;;
  *) exit 1 ;;
esac
"""


def test_service_restart_then_errors(root, monkeypatch):
    now = time.time()
    boot = now - 86400
    _write(root / "proc/stat", f"cpu  1 2 3 4\nbtime {int(boot)}\n")
    bindir = root / "bin"
    _write(bindir / "show.txt",
           f"Id=nginx.service\nActiveEnterTimestamp={_local(now - 300, '%a %Y-%m-%d %H:%M:%S %Z')}\n\n"
           f"Id=ssh.service\nActiveEnterTimestamp={_local(boot + 20, '%a %Y-%m-%d %H:%M:%S %Z')}\n")
    fake = _write(bindir / "systemctl", FAKE_SYSTEMCTL)
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    _write(root / "var/log/syslog", "".join(
        f"{_local(t, '%b %d %H:%M:%S')} web1 app[7]: ERROR upstream timed out (110: Connection timed out)\n"
        for t in (now - 240, now - 200)))
    found = run_changes(root, restarts=True)
    began = found["change.errors_began_after_change"]
    assert began.state is State.PRESENT
    assert "after restart change: service nginx.service (re)started" in began.evidence[0].summary
    from ddx.probes.history.changes import find_restarts
    from ddx.probes.parsers.logtime import local_zone

    restarts = find_restarts(LiveHost(root=str(root)), local_zone(), 300)
    assert [(c.what, c.time) for c in restarts] == [("service nginx.service (re)started", float(int(now - 300)))]


def test_errors_stamped_in_the_second_of_the_change_began_with_it():
    # the edit at .6 s, the log's whole-second stamp of the first error reads .0 of the same second
    edit = Change("config", T0 + 0.6, "modified /srv/app/app.json", "/srv/app/app.json")
    same_second = [T0 + i for i in range(0, 30)]
    (a,) = align([edit], {"econnrefused": ("logs.connection_refused", 1, same_second)}, after=1800, before=3600)
    assert a.change is edit and a.first_error == T0
    # a line two seconds before the change was there before it
    assert align([edit], {"econnrefused": ("logs.connection_refused", 1, [T0 - 2, *same_second])},
                 after=1800, before=3600) == []
