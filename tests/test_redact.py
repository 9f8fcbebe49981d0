"""Redaction on a corpus of secret formats (tests/data/secrets.yaml): every function that
hides secrets, on every entry; URLs with passwords holding @ and /; the time it takes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import DATA

from ddx.host.redact import (
    REDACTED,
    redact_cmdline,
    redact_cmdline_file,
    redact_output,
    redact_text,
)
from ddx.urls import mask_url, split_userinfo

CORPUS: list[dict[str, Any]] = yaml.safe_load((DATA / "secrets.yaml").read_text())
ARGV = [e for e in CORPUS if "argv" in e]


def _ids(entries: list[dict[str, Any]]) -> list[str]:
    return [" ".join(e["text"].split())[:50] for e in entries]


def _check(entry: dict[str, Any], out: str) -> None:
    for s in entry["secrets"]:
        assert s not in out, f"secret {s!r} left in {out!r}"
    for k in entry.get("keep", []):
        assert k in out, f"{k!r} lost from {out!r}"
    if entry["secrets"]:
        assert REDACTED in out


def test_the_corpus_covers_every_kind() -> None:
    text = "\n".join(e["text"] for e in CORPUS)
    for kind in ("SECRET_KEY_BASE", "sk_live_", "PRIVATE KEY-----", "<password>", "IDENTIFIED BY",
                 "Authorization: Token", "p@ss/w0rd@", "&password=", "with password"):
        assert kind in text, kind
    assert len(CORPUS) >= 80 and len(ARGV) >= 10


@pytest.mark.parametrize("entry", CORPUS, ids=_ids(CORPUS))
def test_redact_text(entry: dict[str, Any]) -> None:
    _check(entry, redact_text(entry["text"]))


@pytest.mark.parametrize("entry", CORPUS, ids=_ids(CORPUS))
def test_redact_output(entry: dict[str, Any]) -> None:
    _check(entry, redact_output(entry["text"]))


@pytest.mark.parametrize("entry", ARGV, ids=_ids(ARGV))
def test_redact_cmdline(entry: dict[str, Any]) -> None:
    out = redact_cmdline(entry["argv"])
    assert len(out) == len(entry["argv"]) and out[0] == entry["argv"][0]
    _check(entry, " ".join(out))


@pytest.mark.parametrize("entry", ARGV, ids=_ids(ARGV))
def test_redact_cmdline_file(entry: dict[str, Any]) -> None:
    """/proc/PID/cmdline as the kernel gives it (NUL-separated), and as a process that
    rewrote its title into one string shows it."""
    nul = redact_cmdline_file("\0".join(entry["argv"]) + "\0")
    assert nul.endswith("\0")
    _check(entry, nul.replace("\0", " "))
    _check(entry, redact_cmdline_file(" ".join(entry["argv"])))


def test_the_whole_corpus_as_one_file() -> None:
    """A config file or a log holds many formats one after the other."""
    out = redact_output("\n".join(e["text"].rstrip("\n") for e in CORPUS) + "\n")
    for e in CORPUS:
        for s in e["secrets"]:
            assert s not in out, s


@pytest.mark.parametrize("entry", CORPUS, ids=_ids(CORPUS))
def test_redaction_is_idempotent(entry: dict[str, Any]) -> None:
    once = redact_output(entry["text"])
    assert redact_output(once) == once


@pytest.mark.parametrize(("url", "user", "password", "rest"), [
    ("postgresql://app:p@ss/w0rd@db:5432/shop", "app", "p@ss/w0rd", "db:5432/shop"),
    ("mysql://root:a/b@c?d#e@db/shop", "root", "a/b@c?d#e", "db/shop"),
    ("redis://:s3cret@cache:6379/0", "", "s3cret", "cache:6379/0"),
    ("postgresql://app:p%40ss@db/shop", "app", "p%40ss", "db/shop"),
    ("mysql://root@localhost?socket=/run/my@sql.sock", "root", None, "localhost?socket=/run/my@sql.sock"),
    ("http://web:8080/users/@bob", None, None, "web:8080/users/@bob"),
    ("https://u:pa/ss@web/x", "u", "pa/ss", "web/x"),
    ("redis://cache:6379", None, None, "cache:6379"),
])
def test_split_userinfo(url: str, user: str | None, password: str | None, rest: str) -> None:
    u = split_userinfo(url)
    assert (u.user, u.password, u.rest) == (user, password, rest)
    if password is not None:
        assert password not in u.without_password()


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://app:p@ss/w0rd@db:5432/shop", "postgresql://app:***@db:5432/shop"),
    ("postgresql://app@db/shop?sslmode=require&password=x1y2", "postgresql://app@db/shop?sslmode=require&password=***"),
    ("https://api/x?access_token=abc&page=2", "https://api/x?access_token=***&page=2"),
    ("redis://:s3cret@cache:6379", "redis://:***@cache:6379"),
    ("http://web:8080/users/@bob", "http://web:8080/users/@bob"),
])
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown
    assert mask_url(shown) == shown


def test_database_targets_keep_the_whole_password_out_of_argv() -> None:
    """The password goes to the client's environment, all of it; the command line
    and the host name hold no part of it."""
    from ddx.probes.services.mysql import my_target_from_url
    from ddx.probes.services.postgres import pg_target_from_url

    pg = pg_target_from_url("postgresql://app:p@ss/w0rd@db.internal:5432/shop")
    assert pg.password == "p@ss/w0rd" and pg.local_port == 5432
    assert pg.conninfo.startswith("postgresql://app@db.internal:5432/shop?")
    assert "ss" not in pg.conninfo.split("@", 1)[0] and "w0rd" not in pg.conninfo and "w0rd" not in pg.name
    my = my_target_from_url("mysql://root:a/b@c@db.internal:3307/shop")
    assert my.password == "a/b@c"
    assert my.args == ("--no-defaults", "--protocol=TCP", "-h", "db.internal", "-P", "3307", "-u", "root", "-D", "shop")
    with pytest.raises(ValueError) as exc:
        pg_target_from_url("postgresql://app@db/shop?password=qs-S3cret")
    assert "qs-S3cret" not in str(exc.value)


def test_redaction_takes_linear_time_on_hostile_lines() -> None:
    """Long words next to the hint words (no backtracking blow-up): 4 MB in well under a second each."""
    hostile = [
        "a" * 1_000_000 + "://x",
        "password" * 200_000,
        "key=" + "k" * 1_000_000,
        ("SECRET_" * 100_000) + "=v",
        "<" + "password" * 100_000 + ">",
        "Authorization: " + "x" * 1_000_000,
    ]
    for text in hostile:
        t0 = time.monotonic()
        redact_output(text)
        assert time.monotonic() - t0 < 2.0, text[:30]


# --- a real client's command line --------------------------------------------------------------


def _client_seen(client: str, url: str, tmp_path: Path) -> tuple[list[str], dict[str, str], str]:
    """Run `ddx diagnose --only <probe> --target url` against a local socket that accepts the
    connection and never answers, and read the client's command line and environment in /proc
    (as `ps` and a local user would see them) while it waits. Returns (argv, environment, ddx's output)."""
    probe = {"psql": "postgres", "mysql": "mysql"}[client]
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        port = srv.getsockname()[1]
        cfg = tmp_path / "ddx.toml"
        cfg.write_text(f"[probe.{probe}]\ndiscover = false\n")
        proc = subprocess.Popen([sys.executable, "-m", "ddx", "diagnose", "--only", probe, "--config", str(cfg),
                                 "--target", url.format(port=port), "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
        seen: tuple[list[str], dict[str, str]] | None = None
        end = time.monotonic() + 20
        while seen is None and time.monotonic() < end and proc.poll() is None:
            for entry in os.listdir("/proc"):
                try:
                    with open(f"/proc/{entry}/cmdline", "rb") as fh:
                        argv = [a.decode() for a in fh.read().split(b"\0") if a]
                    if argv and os.path.basename(argv[0]) in (client, "mariadb") and f"{port}" in " ".join(argv):
                        with open(f"/proc/{entry}/environ", "rb") as fh:
                            env = dict(kv.decode().split("=", 1) for kv in fh.read().split(b"\0") if b"=" in kv)
                        seen = (argv, env)
                        break
                except (OSError, ValueError):
                    continue
            time.sleep(0.02)
        out, _ = proc.communicate(timeout=30)
    assert seen is not None, f"{client} was never seen running: {out}"
    return seen[0], seen[1], out


@pytest.mark.parametrize(("client", "url", "password", "env_name"), [
    ("psql", "postgresql://app:pX9q@Zk7v/W0rdK7@127.0.0.1:{port}/shop", "pX9q@Zk7v/W0rdK7", "PGPASSWORD"),
    ("mysql", "mysql://root:aQ5t/Bm8x@Cr4z@127.0.0.1:{port}/shop", "aQ5t/Bm8x@Cr4z", "MYSQL_PWD"),
])
def test_a_password_with_at_and_slash_reaches_only_the_clients_environment(
        client: str, url: str, password: str, env_name: str, tmp_path: Path) -> None:
    if not shutil.which(client):
        pytest.skip(f"{client} is not installed")
    argv, env, out = _client_seen(client, url, tmp_path)
    assert env.get(env_name) == password
    joined = " ".join(argv)
    for part in (password, *password.replace("@", "/").split("/")):
        assert part not in joined, (part, argv)
        assert part not in out, (part, out)
    assert "127.0.0.1" in joined  # the host is the host, not a piece of the password


@pytest.mark.parametrize("text", [
    "pid 300 node /srv/api/server.js --token=s3cr3tvalue: 1019 open fds",
    "connecting with password=hunter2x, retrying",
    "the password is Hunter2x; giving up",
])
def test_redacting_twice_keeps_the_punctuation_after_a_secret(text: str) -> None:
    """Samples are built from redacted parts and redacted again as a whole: the
    second pass must not eat the colon or comma that follows ``***``."""
    once = redact_output(text)
    assert "***" in once and redact_output(once) == once
