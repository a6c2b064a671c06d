"""Scoped data tokens (pure)."""

from __future__ import annotations

import pytest

from flops_dataplane import data_tokens as dt


def claims(**over: object) -> dt.DataClaims:
    base: dict[str, object] = {"node": "n1", "sub": "user:alice", "ops": ("read",),
                               "tags": ("digits",), "exp": 100.0}
    base.update(over)
    return dt.DataClaims(**base)  # type: ignore[arg-type]


def test_roundtrip_and_scope() -> None:
    token = dt.issue("key", claims())
    got = dt.verify("key", token, node="n1", now=50.0)
    assert got == claims()
    assert got.allows("read", "digits")
    assert not got.allows("read", "other")
    assert not got.allows("write", "digits")
    assert got.visible_tags([]) == ["digits"]
    assert got.visible_tags(["digits", "x"]) == ["digits"]


@pytest.mark.parametrize(("key", "node", "now", "words"), [
    ("other-key", "n1", 50.0, "signature"),
    ("key", "n2", 50.0, "for node"),
    ("key", "n1", 101.0, "expired"),
])
def test_refusals(key: str, node: str, now: float, words: str) -> None:
    token = dt.issue("key", claims())
    with pytest.raises(dt.TokenRefused, match=words):
        dt.verify(key, token, node=node, now=now)


def test_tampered_claims_refused() -> None:
    token = dt.issue("key", claims())
    prefix, _body, mac = token.split(".")
    forged = dt.issue("attacker", claims(tags=("*",))).split(".")[1]
    with pytest.raises(dt.TokenRefused):
        dt.verify("key", f"{prefix}.{forged}.{mac}", node="n1", now=1.0)
    with pytest.raises(dt.TokenRefused, match="malformed"):
        dt.verify("key", "garbage", node="n1", now=1.0)
