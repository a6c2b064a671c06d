"""The embedded database (nx-27017): a port taken between choosing and binding is chosen again."""

from __future__ import annotations

import socket
from pathlib import Path

import pymongo
import pytest

from flops_manager import local_processes
from flops_manager.adapters import nx_launcher
from flops_manager.adapters.nx_launcher import EarlyExitError, EmbeddedMongo
from tests.fixtures.tools import require_module

pytestmark = pytest.mark.integration


def test_a_port_taken_meanwhile_is_replaced_by_another(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    require_module("nx_27017", "bash scripts/setup.sh dev")
    with socket.socket() as squatter:  # another process took the chosen port
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        offered = iter([taken])
        real_free_port = local_processes.free_port
        monkeypatch.setattr(nx_launcher, "free_port",
                            lambda host="127.0.0.1": next(offered, None) or real_free_port())
        database = EmbeddedMongo(tmp_path)
        assert database.port == taken
        try:
            url = database.start()
            assert database.port != taken
            client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
                url, serverSelectionTimeoutMS=3000)
            assert client.admin.command("ping")["ok"] == 1
            client.close()
        finally:
            database.stop()


def test_a_port_given_by_the_operator_is_not_replaced(tmp_path: Path) -> None:
    require_module("nx_27017", "bash scripts/setup.sh dev")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        database = EmbeddedMongo(tmp_path, port=taken, start_timeout_s=10)
        with pytest.raises(EarlyExitError, match="exited"):
            database.start()
        assert database.port == taken
