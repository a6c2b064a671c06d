"""Stable ports: a name gets its port back while the port is free, a new one when not."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from flops_manager.port_book import PortBook, port_is_free


def test_ports_are_remembered_and_reused(tmp_path: Path) -> None:
    book = PortBook(tmp_path / "ports.json")
    first = book.port("mlflow")
    assert PortBook(tmp_path / "ports.json").port("mlflow") == first  # a later `flops up`
    assert book.port("manager") != first
    assert json.loads((tmp_path / "ports.json").read_text())["mlflow"] == first


def test_a_taken_port_is_replaced(tmp_path: Path) -> None:
    book = PortBook(tmp_path / "ports.json")
    first = book.port("broker")
    with socket.socket() as other:
        other.bind(("127.0.0.1", first))
        other.listen()
        assert not port_is_free(first)
        second = book.port("broker")
    assert second != first and book.port("broker") == second


def test_an_explicit_port_wins_and_is_remembered(tmp_path: Path) -> None:
    book = PortBook(tmp_path / "ports.json")
    assert book.port("manager", wanted=18080) == 18080
    assert PortBook(tmp_path / "ports.json").port("manager") == 18080
