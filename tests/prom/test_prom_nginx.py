"""nginx-prometheus-exporter (Debian package) against a real nginx with stub_status, scraped
by a real Prometheus: nginx up, then stopped (nginx_up 0)."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from promstack import PromStack, free_port, missing_tools, wait_port  # noqa: E402
from test_prom_live import ddx  # noqa: E402

NGINX_EXPORTER = "/usr/bin/prometheus-nginx-exporter"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(missing_tools(NGINX_EXPORTER, NGINX)),
                       reason=f"needs {', '.join(missing_tools(NGINX_EXPORTER, NGINX))}"),
]


@pytest.fixture
def nginx_stack() -> Iterator[tuple[PromStack, str, object]]:
    with tempfile.TemporaryDirectory(prefix="ddx-prom-nginx-") as tmp:
        d = Path(tmp)
        (d / "logs").mkdir()
        port = free_port()
        (d / "nginx.conf").write_text(
            f"worker_processes 1; pid {d}/nginx.pid; error_log {d}/logs/error.log;\n"
            "events { worker_connections 64; }\n"
            f"http {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d};\n"
            f"uwsgi_temp_path {d}; scgi_temp_path {d};\n"
            f"server {{ listen 127.0.0.1:{port}; location /stub_status {{ stub_status; }} }} }}\n")
        stack = PromStack(d)
        try:
            nginx = stack.spawn("nginx", [NGINX, "-p", str(d), "-c", str(d / "nginx.conf"), "-g", "daemon off;"])
            wait_port(port, "nginx", nginx)
            eport = free_port()
            exporter = stack.spawn("nginx-exporter", [NGINX_EXPORTER,
                                                      f"-nginx.scrape-uri=http://127.0.0.1:{port}/stub_status",
                                                      f"-web.listen-address=127.0.0.1:{eport}"])
            wait_port(eport, "nginx exporter", exporter)
            address = f"127.0.0.1:{eport}"
            stack.target("nginx", address)
            stack.prometheus()
            stack.wait_until(f'count_over_time(nginx_up{{instance="{address}"}}[1m]) >= 3', "nginx_up scraped")
            yield stack, address, nginx
        finally:
            stack.close()


def test_nginx_up_then_stopped(nginx_stack: tuple[PromStack, str, object]) -> None:
    stack, address, nginx = nginx_stack

    def svc_down() -> dict[str, object]:
        r = ddx("diagnose", "--prometheus", stack.url, "--instance", address, "--window", "1m", "--json")
        assert r.returncode == 0, r.stderr
        return next(f for f in json.loads(r.stdout)["findings"] if f["id"] == "svc.down")

    assert svc_down()["state"] == "absent"
    stack.stop(nginx)  # type: ignore[arg-type]
    stack.wait_until(f'nginx_up{{instance="{address}"}} == 0 or up{{instance="{address}"}} == 0', "nginx gone",
                     timeout=30)
    down = svc_down()
    assert down["state"] == "present" and "nginx_up" in down["evidence"][0]["source"]  # type: ignore[index]
