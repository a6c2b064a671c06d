"""The amqtt fallback broker's policy: pure rules and the policy file the manager writes."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from flops_manager.adapters.amqtt_policy import (
    PolicyFile,
    empty_policy,
    login_entry,
    may,
    may_connect,
    password_digest,
    password_matches,
    topic_matches,
)
from flops_manager.adapters.file_broker_accounts import PolicyFileBrokerAccounts
from flops_manager.cli.broker import amqtt_config


@pytest.mark.parametrize(("topic_filter", "topic", "expected"), [
    ("flops/v1/projects/p1/learner/+/events", "flops/v1/projects/p1/learner/l-0/events", True),
    ("flops/v1/projects/p1/learner/+/events", "flops/v1/projects/p2/learner/l-0/events", False),
    ("flops/v1/projects/p1/learner/+/events", "flops/v1/projects/p1/learner/l-0/events/x",
     False),
    ("flops/v1/projects/p1/learner/+/events", "flops/v1/projects/p1/learner", False),
    ("flops/#", "flops", True),
    ("flops/#", "flops/a/b", True),
    ("flops/#", "other/a", False),
    # a subscription filter is covered only by a filter at least as wide
    ("flops/+/x", "flops/+/x", True),
    ("flops/p1/x", "flops/+/x", False),
    ("flops/+/x", "flops/#", False),
    ("#", "anything/at/all", True),
])
def test_topic_filters_match_like_mqtt(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected


def test_passwords_are_stored_salted_and_checked() -> None:
    stored = password_digest("s3cret", b"salt-bytes-12")
    assert "s3cret" not in stored
    assert password_matches(stored, "s3cret")
    assert not password_matches(stored, "s3cret ")
    assert password_digest("s3cret", b"other-salt-12") != stored
    for broken in ("", "plain", "pbkdf2_sha256$x$AAAA$AAAA", "pbkdf2_sha256$10$!!$AAAA"):
        assert not password_matches(broken, "s3cret")


def test_only_the_administrator_subscribes_and_others_publish_on_their_filters() -> None:
    policy = empty_policy()
    policy["logins"]["admin"] = login_entry("a", salt=b"0" * 12, admin=True)
    policy["logins"]["learner"] = login_entry("l", salt=b"1" * 12,
                                              publish=["flops/v1/projects/p1/learner/+/events"])
    own = "flops/v1/projects/p1/learner/x/events"
    assert may_connect(policy, "learner", "l") and may_connect(policy, "admin", "a")
    assert not may_connect(policy, "learner", "a")
    assert not may_connect(policy, None, None) and not may_connect(policy, "nobody", "l")
    assert may(policy, "learner", own, "publish")
    assert not may(policy, "learner", own.replace("p1", "p2"), "publish")
    assert not may(policy, "learner", own.replace("learner", "builder"), "publish")
    assert not may(policy, "learner", own, "subscribe")
    assert not may(policy, "learner", own, "receive")
    assert may(policy, "admin", "flops/#", "subscribe") and may(policy, "admin", own, "receive")
    assert not may(policy, None, own, "publish")


def test_the_accounts_write_what_the_broker_reads(tmp_path: Path) -> None:
    path = tmp_path / "broker" / "policy.json"
    accounts = PolicyFileBrokerAccounts(path)
    reader = PolicyFile(path)
    assert reader.current()["logins"] == {}  # no file yet: nobody
    accounts.add("fc-1", "pw-1", role="learners", topics=["flops/v1/projects/p1/learner/+/events"])
    assert may_connect(reader.current(), "fc-1", "pw-1")
    assert path.stat().st_mode & 0o777 == 0o600
    assert "pw-1" not in path.read_text()
    accounts.add("fc-2", "pw-2", role="aggregator", topics=["t/+"])
    accounts.remove(["fc-1", "never-existed"])
    current = reader.current()
    assert not may_connect(current, "fc-1", "pw-1")
    assert may(current, "fc-2", "t/x", "publish")
    assert json.loads(path.read_text())["logins"]["fc-2"]["role"] == "aggregator"


def test_concurrent_writers_lose_no_login(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    accounts = PolicyFileBrokerAccounts(path)

    def add(index: int) -> None:
        accounts.add(f"fc-{index}", f"pw-{index}", role="learners", topics=["t"])

    threads = [threading.Thread(target=add, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(PolicyFile(path).current()["logins"]) == sorted(f"fc-{i}" for i in range(16))


def test_the_amqtt_configuration_loads_both_plugins_on_loopback(tmp_path: Path) -> None:
    config = amqtt_config(1884, tmp_path / "policy.json")
    assert "bind: 127.0.0.1:1884" in config
    assert "AnonymousAuthPlugin" not in config
    assert config.count(f"policy_file: {json.dumps(str(tmp_path / 'policy.json'))}") == 2
    assert "flops_amqtt_policy.FlopsAuthPlugin" in config
    assert "flops_amqtt_policy.FlopsTopicPlugin" in config
