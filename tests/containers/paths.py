"""Paths the container tests share (no fixtures: importable from conftest and helpers)."""

from __future__ import annotations

from pathlib import Path

MAIN = Path(__file__).resolve().parents[2]
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
"""The host's CA bundle (it holds the proxy's CA); mounted into builds when present."""
