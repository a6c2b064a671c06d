"""A cached environment's smoke report is reused; anything else runs the check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from image_builder.builder import cached_smoke


def test_smoke_report_is_reused_only_on_a_cache_hit(tmp_path: Path) -> None:
    calls: list[int] = []

    def run() -> dict[str, Any]:
        calls.append(1)
        return {"model_manager": "ModelManager", "parameters": [[[10, 64], "float64"]]}

    report = tmp_path / "smoke.json"
    first = cached_smoke(report, cache_hit=False, run=run)
    assert first["cached"] is False and report.is_file() and len(calls) == 1
    again = cached_smoke(report, cache_hit=True, run=run)
    assert again == {**first, "cached": True} and len(calls) == 1
    cached_smoke(report, cache_hit=False, run=run)  # a rebuilt environment is checked again
    assert len(calls) == 2
    report.write_text("{damaged")
    assert cached_smoke(report, cache_hit=True, run=run)["cached"] is False and len(calls) == 3
