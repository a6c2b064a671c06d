"""The event-publisher port."""

from __future__ import annotations

import abc

from flops_contracts.events import Event


class EventPublisher(abc.ABC):
    """Sends status events somewhere the manager (or a person) can read them.

    Constraints
    -----------
    ``publish`` MUST NOT raise on transport problems: a component's work must not fail because
    its status could not be reported. It returns whether delivery was confirmed instead.
    """

    @abc.abstractmethod
    def publish(self, event: Event) -> bool:
        """Publish ``event``; return ``True`` once delivery is confirmed."""

    def close(self) -> None:  # noqa: B027 - optional hook, default does nothing
        """Flush and release resources; the publisher is unusable afterwards."""

    def __enter__(self) -> EventPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
