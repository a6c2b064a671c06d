"""Events published in the background arrive in order, all of them, once closed."""

from __future__ import annotations

import threading
from pathlib import Path

from flops_contracts.events import Component, Event, EventType
from flops_messaging.background_publisher import BackgroundPublisher
from flops_messaging.factory import create_emitter
from flops_messaging.file_publisher import FilePublisher, read_events
from flops_messaging.publisher import EventPublisher


class Gate(EventPublisher):
    """Publishes only once released: shows that publish() does not wait for delivery."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.published: list[str] = []
        self.closed = False

    def publish(self, event: Event) -> bool:
        self.release.wait(10)
        self.published.append(event.event_id)
        return True

    def close(self) -> None:
        self.closed = True


class Broken(EventPublisher):
    def publish(self, event: Event) -> bool:
        raise RuntimeError("bug")


def event(n: int) -> Event:
    return Event("p", Component.LEARNER, "l0", EventType.PROGRESS, data={"n": n})


def test_publish_returns_before_delivery_and_close_delivers_everything_in_order() -> None:
    gate = Gate()
    publisher = BackgroundPublisher(gate)
    sent = [event(n) for n in range(20)]
    for item in sent:
        assert publisher.publish(item) is False  # queued, not confirmed
    assert gate.published == []  # nothing delivered while the inner publisher blocks
    gate.release.set()
    publisher.close()
    assert gate.published == [e.event_id for e in sent]
    assert gate.closed
    assert publisher.publish(event(99)) is False  # after close: dropped, no thread restarted
    assert len(gate.published) == len(sent)


def test_a_failing_inner_publisher_does_not_stop_the_thread_or_raise() -> None:
    publisher = BackgroundPublisher(Broken())
    publisher.publish(event(1))
    publisher.publish(event(2))
    publisher.close()


def test_close_gives_up_after_the_drain_timeout() -> None:
    gate = Gate()
    publisher = BackgroundPublisher(gate, drain_timeout_s=0.05)
    publisher.publish(event(1))
    publisher.close()  # the gate is never released: close returns anyway
    assert gate.closed
    gate.release.set()


def test_background_emitter_writes_the_file_on_close(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    emitter = create_emitter(f"file://{path}", project_id="p", component=Component.AGGREGATOR,
                             instance="classic", background=True)
    assert isinstance(emitter.publisher, BackgroundPublisher)
    assert isinstance(emitter.publisher.inner, FilePublisher)
    ids = [emitter.emit(EventType.ROUND_COMPLETED, round=n).event_id for n in range(5)]
    emitter.close()
    assert [e.event_id for e in read_events(path)] == ids
