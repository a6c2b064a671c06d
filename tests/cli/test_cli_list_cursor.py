"""`flops project list`: offset pages by default, keyset pages with --cursor."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from flops_manager.cli.project import _list


class FakeClient:
    """Records the query of each request and answers one page."""

    def __init__(self, page: dict[str, Any]) -> None:
        self.page = page
        self.params: list[dict[str, Any]] = []

    def request(self, method: str, path: str, *, params: dict[str, Any]) -> dict[str, Any]:
        self.params.append(params)
        return self.page


def listing(**given: Any) -> argparse.Namespace:
    return argparse.Namespace(**{"page": 1, "page_size": 20, "phase": None, "cursor": None,
                                 "json": False, **given})


def test_cursor_listing_sends_the_cursor_and_prints_the_next_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = FakeClient({"items": [], "page": None, "page_size": 5, "total": None,
                         "next_cursor": "abc"})
    assert _list(listing(cursor="xyz", page_size=5), client) == 0  # type: ignore[arg-type]
    assert client.params == [{"cursor": "xyz", "page_size": 5}]
    shown = capsys.readouterr().out
    assert "(0)" in shown and "flops project list --cursor abc" in shown


def test_default_listing_stays_an_offset_page_with_total(
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = FakeClient({"items": [], "page": 1, "page_size": 20, "total": 0,
                         "next_cursor": None})
    assert _list(listing(), client) == 0  # type: ignore[arg-type]
    assert client.params == [{"page": 1, "page_size": 20}]
    shown = capsys.readouterr().out
    assert "(0 of 0)" in shown and "--cursor" not in shown
