import pytest

from tests.fixtures.servers import MosquittoServer


@pytest.fixture
def broker(tmp_path):
    server = MosquittoServer(tmp_path / "mosquitto").start()
    yield server
    server.stop()
