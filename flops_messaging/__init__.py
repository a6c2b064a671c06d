"""Publishing FLOps status events: one interface, backends chosen by URI.

``create_publisher("mqtt://broker:1883", ...)`` publishes to MQTT with QoS 1 and waits for the
broker's acknowledgement; ``file:///path/events.jsonl`` appends JSON lines (used by local runs and
tests); an empty URI or ``log:`` only logs (components then work stand-alone).
``create_emitter(..., background=True)`` publishes from a background thread, in order (the
aggregator and the learners: a round never waits for its events); closing the emitter
publishes what is still queued.
"""

from flops_messaging.emitter import EventEmitter
from flops_messaging.factory import create_emitter, create_publisher
from flops_messaging.publisher import EventPublisher

__all__ = ["EventEmitter", "EventPublisher", "create_emitter", "create_publisher"]
