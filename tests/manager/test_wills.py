"""A last will counts after a grace without a sign of life, for the connection that sent it."""

from __future__ import annotations

from typing import Any

from flops_contracts.events import Component, Event, EventType, connection_data
from flops_manager.lifecycle import planner, wills
from flops_manager.lifecycle.actions import Role
from flops_manager.lifecycle.state import Phase, Project

PID = "p0123456789abcdef"
REASON = "connection to the broker dropped without a goodbye"
GRACE = wills.Hearing(grace_s=5.0, since=0.0)
KEY = "aggregator/agg-0"


def training() -> Project:
    return Project(id=PID, owner="alice", spec={"post_training_steps": []},
                   repository={"url": "https://x/y"}, created_at=0, updated_at=0,
                   phase=Phase.TRAINING, phase_since=0)


def agg(event: EventType, ts: str = "2026-01-01T00:00:00Z", *, incarnation: str = "inc-a",
        component: Component = Component.AGGREGATOR, instance: str = "agg-0",
        **kw: Any) -> Event:
    return Event(project_id=PID, component=component, instance=instance, event=event,
                 timestamp=ts, incarnation=incarnation, **kw)


def will(connection: int, **kw: Any) -> Event:
    """The will of a connection: stamped when it opened, long before the later reports."""
    return agg(EventType.LOST, event_id=f"will-{connection}",
               data=connection_data(connection, reason=REASON), **kw)


def online(connection: int, **kw: Any) -> Event:
    return agg(EventType.ONLINE, "2026-01-01T00:00:00Z",
               data=connection_data(connection), **kw)


def reported(round_: int) -> Event:
    return agg(EventType.ROUND_COMPLETED, f"2026-01-01T00:01:0{round_}Z",
               data={"round": round_, "metrics": {"accuracy": 0.9}})


def apply(project: Project, *events: Event, now: float = 100.0) -> Project:
    for event in events:
        project = planner.plan_event(project, event, now=now).project
    return project


def after(project: Project, now: float, hearing: wills.Hearing = GRACE) -> Project:
    return planner.plan_wills(project, now=now, hearing=hearing).project


def at_round_2() -> Project:
    return apply(training(), online(1), agg(EventType.STARTED), reported(1), reported(2))


def test_will_without_a_sign_of_life_fails_the_project_after_the_grace() -> None:
    suspected = apply(at_round_2(), will(1), now=100.0)
    assert suspected.phase is Phase.TRAINING  # not yet: the grace runs
    assert wills.pending(suspected.components[KEY]) is not None
    assert after(suspected, 104.9) == suspected
    failed = after(suspected, 105.0)
    assert failed.phase is Phase.FAILED
    assert failed.last_error == f"aggregator 'agg-0' lost: {REASON}"
    entry = failed.components[KEY]
    assert entry["state"] == "lost" and wills.pending(entry) is None
    assert "inc-a" in entry["retired"]  # late events of the dead connection change nothing


def test_will_then_reconnect_within_the_grace_is_ignored() -> None:
    """A broker restart: the will of the dropped connection, then ``online`` of the next."""
    revived = apply(at_round_2(), will(1), online(2))
    assert wills.pending(revived.components[KEY]) is None
    assert after(revived, 1e6).phase is Phase.TRAINING
    assert apply(revived, reported(3)).round == 3


def test_any_later_report_of_the_incarnation_revokes_the_will() -> None:
    revived = apply(at_round_2(), will(1), reported(3))
    assert revived.round == 3 and wills.pending(revived.components[KEY]) is None
    assert after(revived, 1e6).phase is Phase.TRAINING


def test_will_of_an_earlier_connection_after_the_next_one_said_online_is_ignored() -> None:
    """A connection taken over by the reconnecting component: its will arrives late."""
    project = apply(at_round_2(), online(2))
    assert apply(project, will(1)) == project


def test_online_of_the_same_connection_does_not_revoke_its_will() -> None:
    suspected = apply(at_round_2(), will(1))
    assert apply(suspected, online(1)) == suspected


def test_will_of_a_retired_incarnation_is_ignored() -> None:
    replaced = apply(at_round_2(), online(1, incarnation="inc-b"))
    assert apply(replaced, will(1)) == replaced
    assert after(apply(replaced, will(5)), 1e6) == replaced


def test_will_after_the_component_completed_is_ignored() -> None:
    """A one-shot component stopped by the manager after it completed."""
    deploying = training().replace(phase=Phase.DEPLOYING)
    provider: dict[str, Any] = {"component": Component.MOCK_DATA_PROVIDER, "instance": "mdp-0"}
    done = apply(deploying, agg(EventType.ONLINE, data=connection_data(1), **provider),
                 agg(EventType.COMPLETED, "2026-01-01T00:02:00Z", **provider))
    provider_will = agg(EventType.LOST, data=connection_data(1, reason=REASON), **provider)
    assert apply(done, provider_will) == done


def test_grace_runs_only_while_the_manager_hears_the_broker() -> None:
    """The broker restarted: the manager heard the will, then lost the broker itself."""
    suspected = apply(at_round_2(), will(1), now=100.0)
    deaf = wills.Hearing(grace_s=5.0, since=None)
    assert after(suspected, 200.0, deaf) == suspected
    back = wills.Hearing(grace_s=5.0, since=198.0)  # grace counted from the reconnection
    assert after(suspected, 202.0, back) == suspected
    assert after(suspected, 203.0, back).phase is Phase.FAILED


def test_expired_will_of_an_optional_component_marks_it_lost_only() -> None:
    learner: dict[str, Any] = {"component": Component.LEARNER, "instance": "l-0"}
    project = apply(at_round_2(), agg(EventType.ONLINE, data=connection_data(1), **learner),
                    agg(EventType.LOST, data=connection_data(1, reason=REASON), **learner))
    expired = after(project, 1e6)
    assert expired.phase is Phase.TRAINING
    assert expired.components["learner/l-0"]["state"] == "lost"


def test_duplicated_will_keeps_its_first_arrival() -> None:
    suspected = apply(at_round_2(), will(1), now=100.0)
    assert apply(suspected, will(1), now=104.0) == suspected


def test_will_before_any_report_also_waits_for_the_grace() -> None:
    suspected = apply(training(), will(1), now=10.0)
    assert suspected.phase is Phase.TRAINING
    assert after(suspected, 15.0).last_error == f"aggregator 'agg-0' lost: {REASON}"


def test_online_does_not_make_earlier_created_events_stale() -> None:
    """A publisher connects on its first publish: ``online`` is newer than that event."""
    connected = agg(EventType.ONLINE, "2026-01-01T00:00:09Z", data=connection_data(1))
    first = agg(EventType.STARTED, "2026-01-01T00:00:01Z")
    assert apply(training().replace(phase=Phase.DEPLOYING), connected, first).phase is (
        Phase.TRAINING)


def test_will_stamped_before_a_restart_mark_is_ignored() -> None:
    """The stopped instance never reported: its incarnation is unknown, its will older."""
    building = training().replace(phase=Phase.BUILDING)
    key = f"builder/{PID}-builder-0"
    redone = planner.mark_restarted(building, Role.BUILDER, now=1767225600.0)
    builder: dict[str, Any] = {"component": Component.BUILDER, "instance": f"{PID}-builder-0"}
    old = agg(EventType.LOST, "2025-12-31T23:59:00Z", incarnation="inc-old",
              data=connection_data(1, reason=REASON), **builder)
    assert apply(redone, old) == redone
    new = agg(EventType.LOST, "2026-01-01T00:00:05Z", incarnation="inc-new",
              data=connection_data(1, reason=REASON), **builder)
    assert wills.pending(apply(redone, new).components[key]) is not None
