"""The contract server answers the recorded request sequence like the real system manager."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.oakestra.contract_server import OakestraState, create_app
from tests.oakestra.test_recorded import load

SKIP = {12, 13, 14, 15, 16, 25, 34}  # cluster reports are internal; 308 is Flask's own


def _replace(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        for old, new in ids.items():
            value = value.replace(old, new)
        return value
    if isinstance(value, list):
        return [_replace(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _replace(v, ids) for k, v in value.items()}
    return value


def _shape(raw: str) -> tuple[bool, Any]:
    double = raw.lstrip().startswith('"')
    value = json.loads(raw) if raw.strip() else None
    if isinstance(value, str) and double:
        value = json.loads(value)
    if isinstance(value, list):
        return double, ("list", sorted(value[0]) if value and isinstance(value[0], dict) else [])
    if isinstance(value, dict):
        return double, ("dict", sorted(value))
    return double, value


@pytest.mark.parametrize("version", ["develop", "v0.4.400"])
def test_recorded_sequence(tmp_path, version):
    state = OakestraState(tmp_path, version="v0.4.411" if version == "develop" else "v0.4.400")
    state.add_cluster("clusterA")
    client = create_app(state).test_client()
    entries = load(version)
    ids: dict[str, str] = {}
    tokens: dict[str, str] = {}
    try:
        for n in sorted(entries):
            entry = entries[n]
            if n in SKIP:
                continue
            label = entry["label"]
            headers = {}
            if n == 4:
                pass
            elif n in (5, 6):
                headers["Authorization"] = "Bearer \xb7garbage"
            elif n in (8, 9):
                headers["Authorization"] = f"Bearer {tokens['refresh']}"
            elif tokens:
                headers["Authorization"] = f"Bearer {tokens['access']}"
            if n == 26:
                ids[entry["path"].rsplit("/", 1)[1]] = state.users["Admin"]["oid"]
            body = _replace(entry["request_body"], ids)
            answer = client.open(_replace(entry["path"], ids), method=entry["method"],
                                 json=body, headers=headers)
            raw = answer.get_data(as_text=True)
            assert answer.status_code == entry["status"], (n, label, raw)
            assert answer.content_type.split(";")[0] == entry["content_type"].split(";")[0], n
            if label == "login ok":
                login = json.loads(raw)
                tokens = {"access": login["token"], "refresh": login["refresh_token"]}
            if n in (1, 8):
                continue
            ours, theirs = _shape(raw), _shape(entry["raw_body"])
            assert ours[0] == theirs[0], (n, label, "double encoding differs")
            if isinstance(theirs[1], tuple) and theirs[1][0] == "dict":
                missing = set(theirs[1][1]) - set(ours[1][1])
                assert not missing - {"instance_list"}, (n, label, missing)
            else:
                assert type(ours[1]) is type(theirs[1]), (n, label)
            if n in (17, 47):
                recorded = json.loads(json.loads(entry["raw_body"]))
                mine = json.loads(json.loads(raw))
                for old, new in zip(recorded, mine, strict=True):
                    ids[old["applicationID"]] = new["applicationID"]
            if n == 27:
                ids[json.loads(entry["raw_body"])["job_id"]] = json.loads(raw)["job_id"]
            if n == 48:
                recorded = json.loads(json.loads(entry["raw_body"]))
                mine = json.loads(json.loads(raw))
                for old, new in zip(recorded, mine, strict=True):
                    ids[old["microserviceID"]] = new["microserviceID"]
    finally:
        state.close()
