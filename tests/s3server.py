"""A real S3 API over HTTP on 127.0.0.1 (moto in server mode) for tests.

`MotoS3` runs moto's server in a thread of the test process; stopping and starting it again
keeps the stored objects (the backend lives in the process), which lets tests take S3 down in
the middle of an upload and bring it back.
"""

from __future__ import annotations

import os
import socket
import time

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
        self._wait_listening()
        os.environ.update(self.env())
        uris.clear_cache()
        from smelt.storage import transfer

        transfer._client.cache_clear()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

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
