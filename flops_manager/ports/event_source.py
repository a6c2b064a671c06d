"""The EventSource port: something that delivers raw component messages to a handler."""

from __future__ import annotations

import abc
from collections.abc import Callable

MessageHandler = Callable[[str, bytes], object]
"""Called with (topic, payload) for every message, off the transport's own thread."""


class EventSource(abc.ABC):
    """A stream of raw event messages (MQTT in production)."""

    @abc.abstractmethod
    def start(self, handler: MessageHandler) -> None:
        """Start delivering messages to ``handler``."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop delivering and release the connection."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise ``BackendUnavailableError`` if not connected to the broker."""
