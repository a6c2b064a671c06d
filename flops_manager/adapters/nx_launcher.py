"""Start and stop an embedded nx-27017 (MongoDB wire protocol on SQLite) server."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pymongo
from pymongo.errors import PyMongoError

from flops_contracts.errors import ConfigError
from flops_manager.local_processes import free_port
from flops_manager.ports.errors import BackendUnavailableError

log = logging.getLogger(__name__)


PORT_ATTEMPTS = 3


class EarlyExitError(BackendUnavailableError):
    """The server exited before it accepted connections (e.g. its port was taken)."""


def _executable() -> list[str]:
    found = shutil.which("nx-27017") or str(Path(sys.executable).with_name("nx-27017"))
    if not Path(found).exists():
        raise ConfigError("nx-27017 is not installed; pip install nx-27017 or set FLOPS_MONGO_URL")
    return [found]


class EmbeddedMongo:
    """An nx-27017 child process serving ``<data_dir>/db/flops.db`` on a loopback port.

    Parameters
    ----------
    data_dir
        FLOps data directory; the database file and logs go below it.
    port
        Port to listen on (default: a free one).
    start_timeout_s
        How long to wait until the server accepts connections.
    """

    def __init__(
        self, data_dir: str | Path, *, port: int | None = None, start_timeout_s: float = 20.0
    ) -> None:
        self.directory = Path(data_dir).expanduser() / "db"
        self.host = "127.0.0.1"
        self._pick_port = port is None
        """Whether the port is ours to choose (and to choose again if it was taken meanwhile)."""
        self.port = port or free_port()
        self.start_timeout_s = start_timeout_s
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Connection string for pymongo."""
        return f"mongodb://{self.host}:{self.port}"

    def start(self) -> str:
        """Start the server and wait until it answers ``ping``; return its URL.

        A port chosen here can be taken by another process between the choice and the
        server's bind; the server then exits at once, and it is started again on another
        free port (at most ``PORT_ATTEMPTS`` times).

        Raises
        ------
        BackendUnavailableError
            If it exits or does not answer within ``start_timeout_s``.
        """
        attempts_left = PORT_ATTEMPTS if self._pick_port else 1
        while True:
            attempts_left -= 1
            try:
                return self._start_once()
            except EarlyExitError:
                if attempts_left <= 0:
                    raise
            taken, self.port = self.port, free_port()
            log.warning("embedded database could not start on port %s; trying %s", taken,
                        self.port)

    def _start_once(self) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        argv = [
            *_executable(),
            "--db", str(self.directory / "flops.db"),
            "--host", self.host,
            "-p", str(self.port),
            "--log-file", str(self.directory / "nx-27017.log"),
            "--pid-file", str(self.directory / f"nx-27017-{self.port}.pid"),
        ]  # fmt: skip
        log.info("starting embedded database: %s", " ".join(argv))
        with open(self.directory / "nx-27017.out", "ab") as out:
            self._process = subprocess.Popen(  # noqa: S603 - argv built here, no shell
                argv, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ)
            )
        self._wait_ready()
        return self.url

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
            self.url, serverSelectionTimeoutMS=200, connectTimeoutMS=200
        )
        try:
            while time.monotonic() < deadline:
                if self._process is not None and self._process.poll() is not None:
                    raise EarlyExitError(
                        f"embedded database exited with code {self._process.returncode}; "
                        f"see {self.directory / 'nx-27017.out'}"
                    )
                try:
                    client.admin.command("ping")
                    return
                except PyMongoError:
                    time.sleep(0.05)
        finally:
            client.close()
        self.stop()
        raise BackendUnavailableError(
            f"embedded database did not accept connections on {self.url} within "
            f"{self.start_timeout_s:g} s"
        )

    def stop(self) -> None:
        """Terminate the server (kill it after 5 s)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
