"""A webhook endpoint on loopback that keeps the JSON it is sent (the watch and
Alertmanager tests deliver real notifications to it)."""

from __future__ import annotations

import json
import threading
from typing import Any


class Receiver:
    """POSTs to ``url`` are answered 204 and their JSON bodies kept in ``got``, in order."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        got = self.got = []  # type: list[dict[str, Any]]

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
                got.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def kinds(self, incident_id: str) -> list[str]:
        """The kinds of the notifications received about one incident, in order."""
        return [m["kind"] for m in list(self.got) if m["incident"]["id"] == incident_id]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)
