"""A real S3 API over HTTP on 127.0.0.1 (moto in server mode) for tests.

`MotoS3` runs moto's server in a thread of the test process; stopping and starting it again
keeps the stored objects (the backend lives in the process), which lets tests take S3 down in
the middle of an upload and bring it back.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import weakref

from moto.server import ThreadedMotoServer

from smelt.storage import uri as uris


def free_port() -> int:
    """An unused TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoS3:
    """moto's S3 server on 127.0.0.1:port, with the AWS variables pointing at it."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server: ThreadedMotoServer | None = None
        self._connections: weakref.WeakSet[socket.socket] = weakref.WeakSet()

    def env(self) -> dict[str, str]:
        """Variables a subprocess needs to talk to this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing-key-id",
            "AWS_SECRET_ACCESS_KEY": "testing-secret-key",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def start(self) -> MotoS3:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        self._track_connections()
        self._wait_listening()
        os.environ.update(self.env())
        uris.clear_cache()
        from smelt.storage import transfer

        transfer._client.cache_clear()
        return self

    def stop(self) -> None:
        """A real outage: the listening socket and every open keep-alive connection close, so
        clients fail at once instead of being served by connections that outlive the server."""
        if self._server is None:
            return
        http_server = self._server._server
        self._server.stop()
        self._server = None
        if http_server is not None:
            http_server.server_close()
        for conn in list(self._connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                conn.close()

    def outage(self, seconds: float) -> threading.Timer:
        """Stop now and start again `seconds` later, from a background thread (returned)."""
        self.stop()
        timer = threading.Timer(seconds, self.start)
        timer.daemon = True
        timer.start()
        return timer

    def _track_connections(self) -> None:
        """Remember each accepted connection (socketserver's `get_request`), for `stop`."""
        deadline = time.monotonic() + 10
        while getattr(self._server, "_server", None) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        http_server = self._server._server
        accept = http_server.get_request

        def get_request() -> tuple[socket.socket, object]:
            conn, address = accept()
            self._connections.add(conn)
            return conn, address

        http_server.get_request = get_request

    def create_bucket(self, name: str) -> str:
        """Create a bucket and return its `s3://` URI."""
        from smelt.storage.transfer import s3_client

        s3_client().create_bucket(Bucket=name)
        return f"s3://{name}"

    def _wait_listening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"moto server did not start on port {self.port}")
