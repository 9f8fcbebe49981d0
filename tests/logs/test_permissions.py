"""Permission errors checked against the file system: the pure parts (paths in error
lines, credentials from /proc/PID/status, mode bits against them)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ddx.logs.permissions import (
    Creds,
    access_problem,
    ancestors,
    denied_path,
    parse_creds,
    parse_names,
)


@pytest.mark.parametrize(("line", "path"), [
    ("2026-11-22 09:05:25,339 ERROR app[3947]: GET / failed: PermissionError: [Errno 13] Permission denied: "
     "'/srv/app/cache/.page_7.html.3947.tmp'", "/srv/app/cache/.page_7.html.3947.tmp"),
    ('2024/03/01 10:00:00 [crit] 12#12: *3 open() "/var/www/static/app.css" failed (13: Permission denied), '
     'client: 10.0.0.1, server: _, request: "GET /static/app.css HTTP/1.1", host: "example.org"',
     "/var/www/static/app.css"),
    ("PHP Warning:  file_put_contents(/var/www/storage/cache/ab12): failed to open stream: Permission denied "
     "in /var/www/app/Cache.php on line 40", "/var/www/storage/cache/ab12"),
    ("tar: /backup/db.tar: Permission denied", "/backup/db.tar"),
    ("EACCES: permission denied, open '/home/node/app/uploads/x.png'", "/home/node/app/uploads/x.png"),
    ('could not open "/var/lib/app/state/" (Permission denied)', "/var/lib/app/state"),
])
def test_the_path_nearest_the_error(line: str, path: str) -> None:
    assert denied_path(line) == path


@pytest.mark.parametrize("line", [
    "Permission denied (publickey).",  # no path
    "ERROR: request to http://backend//x failed",  # no permission error
    'upstream "/" answered 403 Permission denied',  # "/" alone is not a path to check
    "GET /index.html 200",
])
def test_no_path(line: str) -> None:
    assert denied_path(line) is None


def test_ancestors() -> None:
    assert ancestors("/a/b/c") == ["/", "/a", "/a/b"]
    assert ancestors("/x") == ["/"]


STATUS = """\
Name:\tpython3
Uid:\t65534\t65534\t65534\t65534
Gid:\t65534\t65534\t65534\t65534
Groups:\t33 100 \n"""


def test_parse_creds_takes_the_filesystem_ids_and_groups() -> None:
    assert parse_creds(STATUS) == Creds(65534, 65534, frozenset({33, 100}))
    fs = STATUS.replace("65534\t65534\t65534\t65534", "0\t0\t0\t1000", 1)
    assert parse_creds(fs).uid == 1000  # the fsuid (4th field) is what the kernel checks
    with pytest.raises(ValueError, match="Uid/Gid"):
        parse_creds("Name:\tx\n")


def test_parse_names() -> None:
    assert parse_names("root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/:/bin/false\nbad\n") == {
        0: "root", 65534: "nobody"}


@dataclass(frozen=True)
class St:
    mode: int
    uid: int = 0
    gid: int = 0


D = 0o040000
F = 0o100000
NOBODY = Creds(65534, 65534)
NAMES = {0: "root", 65534: "nobody"}


def _tree(cache: St, file: St | None = None) -> dict[str, St | None]:
    return {"/": St(D | 0o755), "/srv": St(D | 0o755), "/srv/cache": cache, "/srv/cache/page.html": file}


def test_a_folder_chowned_to_root_refuses_new_files() -> None:
    why = access_problem("/srv/cache/page.html", _tree(St(D | 0o755)), NOBODY, users=NAMES, groups=NAMES)
    assert why == "cannot create files in /srv/cache (owner root:root, mode 0755): no write permission"


def test_the_owner_group_or_other_bits_that_apply() -> None:
    assert access_problem("/srv/cache/page.html", _tree(St(D | 0o755, uid=65534)), NOBODY) is None
    in_www_data = Creds(65534, 65534, frozenset({33}))
    assert access_problem("/srv/cache/page.html", _tree(St(D | 0o775, gid=33)), in_www_data) is None
    assert access_problem("/srv/cache/page.html", _tree(St(D | 0o777)), NOBODY) is None
    # the owner's bits apply to the owner even when "other" would allow more
    assert access_problem("/srv/cache/page.html", _tree(St(D | 0o557, uid=65534)), NOBODY) is not None


def test_root_passes_every_check() -> None:
    assert access_problem("/srv/cache/page.html", _tree(St(D | 0o700, uid=1)), Creds(0, 0)) is None


def test_an_ancestor_without_search_permission() -> None:
    tree = _tree(St(D | 0o777), St(F | 0o666))
    tree["/srv"] = St(D | 0o750)
    why = access_problem("/srv/cache/page.html", tree, NOBODY, users=NAMES, groups=NAMES)
    assert why == "cannot enter /srv (owner root:root, mode 0750): no search (x) permission"


def test_an_existing_file_must_be_readable_and_writable() -> None:
    why = access_problem("/srv/cache/page.html", _tree(St(D | 0o777), St(F | 0o644)), NOBODY)
    assert why is not None and "no w permission" in why and "file /srv/cache/page.html" in why
    assert access_problem("/srv/cache/page.html", _tree(St(D | 0o755), St(F | 0o666)), NOBODY) is None


def test_unknown_when_a_folder_on_the_way_is_missing() -> None:
    tree = _tree(St(D | 0o755))
    tree["/srv"] = None
    assert access_problem("/srv/cache/page.html", tree, NOBODY) is None
    assert access_problem("/elsewhere/x", tree, NOBODY) is None  # not looked at
