"""A local container registry that answers the Docker Registry HTTP API v2 as Docker Hub does:
manifests only with a bearer token, tokens from a realm named in the 401 challenge, granted to
anyone (anonymous), but pulling a private repository with an anonymous token answers 401."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

MANIFEST_PATH = re.compile(r"^/v2/(.+)/manifests/([^/]+)$")


class FakeRegistry:
    """`public` and `private`: {repository: {tags}}; `host` is what image references use."""

    def __init__(self, public: dict[str, set[str]], private: dict[str, set[str]]) -> None:
        self.public, self.private = public, private
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True

    @property
    def host(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> FakeRegistry:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

            def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None):
                data = json.dumps(payload).encode()
                self.send_response(status)
                for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                url = urlsplit(self.path)
                if url.path == "/token":
                    scope = (parse_qs(url.query).get("scope") or [""])[0]
                    self._send(200, {"token": f"anonymous {scope}"})
                    return
                match = MANIFEST_PATH.match(url.path)
                if not match:
                    self._send(404, {"errors": [{"code": "NOT_FOUND"}]})
                    return
                repository, reference = match.groups()
                if not self.headers.get("Authorization", "").startswith("Bearer "):
                    challenge = (
                        f'Bearer realm="http://{registry.host}/token",service="fake-registry",'
                        f'scope="repository:{repository}:pull"'
                    )
                    self._send(
                        401, {"errors": [{"code": "UNAUTHORIZED"}]}, {"WWW-Authenticate": challenge}
                    )
                    return
                if repository in registry.private or repository not in registry.public:
                    self._send(401, {"errors": [{"code": "UNAUTHORIZED"}]})
                    return
                if reference not in registry.public[repository]:
                    self._send(404, {"errors": [{"code": "MANIFEST_UNKNOWN"}]})
                    return
                self._send(200, {"schemaVersion": 2, "manifests": []})

        return Handler
