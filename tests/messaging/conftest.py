import pytest

from tests.support.mosquitto import MosquittoBroker


@pytest.fixture
def broker(tmp_path):
    b = MosquittoBroker(tmp_path / "mosquitto").start()
    yield b
    b.stop()
