"""Choose an event publisher from a URI (registry keyed by scheme)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import ParseResult, parse_qs, unquote, urlparse

from flops_contracts.errors import ConfigError
from flops_contracts.events import Component
from flops_messaging.background_publisher import BackgroundPublisher
from flops_messaging.emitter import EventEmitter
from flops_messaging.file_publisher import FilePublisher
from flops_messaging.log_publisher import LogPublisher
from flops_messaging.publisher import EventPublisher

Builder = Callable[[str, str, Component, str, Mapping[str, str]], EventPublisher]


def _log(uri: str, project_id: str, component: Component, instance: str,
         env: Mapping[str, str]) -> EventPublisher:
    return LogPublisher()


def _file(uri: str, project_id: str, component: Component, instance: str,
          env: Mapping[str, str]) -> EventPublisher:
    path = unquote(urlparse(uri).path)
    if not path or not path.startswith("/"):
        raise ConfigError(f"events URI {uri!r}: use an absolute path, e.g. file:///tmp/events.jsonl")
    return FilePublisher(Path(path))


DEFAULT_KEEPALIVE_S = 30
MAX_KEEPALIVE_S = 65535


def mqtt_keepalive(parsed: ParseResult, env: Mapping[str, str]) -> int:
    """The MQTT keepalive in seconds (URI ``?keepalive_s=N``, ``FLOPS_MQTT_KEEPALIVE_S``, 30).

    The broker publishes a component's last will at most 1.5 x keepalive after the component
    stopped answering, so the URI the manager hands to components bounds how late it learns of
    a dead one.

    Raises
    ------
    ConfigError
        For another query parameter or a keepalive that is not a whole number in 1..65535.
    """
    query = parse_qs(parsed.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"keepalive_s"})
    if unknown:
        raise ConfigError(f"events URI: unknown parameters {unknown}; only keepalive_s is known")
    raw = (query.get("keepalive_s") or [""])[-1] or env.get("FLOPS_MQTT_KEEPALIVE_S") or ""
    if not raw:
        return DEFAULT_KEEPALIVE_S
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_KEEPALIVE_S:
        raise ConfigError(f"MQTT keepalive {raw!r}: use whole seconds from 1 to {MAX_KEEPALIVE_S}")
    return int(raw)


def _mqtt(uri: str, project_id: str, component: Component, instance: str,
          env: Mapping[str, str]) -> EventPublisher:
    from flops_messaging.mqtt_publisher import MqttPublisher, MqttSettings

    parsed = urlparse(uri)
    if parsed.username or parsed.password:
        raise ConfigError(
            "events URI must not carry credentials; set FLOPS_MQTT_USERNAME and "
            "FLOPS_MQTT_PASSWORD instead"
        )
    if not parsed.hostname:
        raise ConfigError(f"events URI {uri!r} has no host, e.g. mqtt://127.0.0.1:1883")
    use_tls = parsed.scheme == "mqtts"
    settings = MqttSettings(
        host=parsed.hostname,
        port=parsed.port or (8883 if use_tls else 1883),
        use_tls=use_tls,
        ca_file=env.get("FLOPS_MQTT_CA_FILE") or None,
        username=env.get("FLOPS_MQTT_USERNAME") or None,
        password=env.get("FLOPS_MQTT_PASSWORD") or None,
        keepalive_s=mqtt_keepalive(parsed, env),
    )
    return MqttPublisher(settings, project_id=project_id, component=component, instance=instance)


_BUILDERS: dict[str, Builder] = {
    "": _log,
    "log": _log,
    "file": _file,
    "mqtt": _mqtt,
    "mqtts": _mqtt,
}


def create_emitter(
    uri: str | None,
    *,
    project_id: str,
    component: Component,
    instance: str,
    background: bool = False,
) -> EventEmitter:
    """Build the publisher for ``uri`` wrapped in an emitter with the same identity.

    With ``background``, events are published on a background thread
    (:class:`~flops_messaging.background_publisher.BackgroundPublisher`): for components whose
    work (a training round) must not wait for its own status reports.
    """
    publisher = create_publisher(uri, project_id=project_id, component=component,
                                 instance=instance)
    if background:
        publisher = BackgroundPublisher(publisher)
    return EventEmitter(publisher, project_id=project_id, component=component, instance=instance)


def create_publisher(
    uri: str | None,
    *,
    project_id: str,
    component: Component,
    instance: str,
    environ: Mapping[str, str] | None = None,
) -> EventPublisher:
    """Build the publisher for ``uri``.

    Parameters
    ----------
    uri
        ``mqtt://host:port``, ``mqtts://host:port`` (both with optional ``?keepalive_s=N``),
        ``file:///abs/path.jsonl``, ``log:`` or
        empty/``None`` (log only).
    project_id, component, instance
        Identity of the publishing component (used for the topic and the last will).
    environ
        Where MQTT credentials are read from (default ``os.environ``).

    Raises
    ------
    ConfigError
        For an unknown scheme (listing the supported ones) or a malformed URI.
    """
    text = (uri or "").strip()
    scheme = urlparse(text).scheme if text else ""
    if text == "log:":
        scheme = "log"
    builder = _BUILDERS.get(scheme)
    if builder is None:
        known = ", ".join(sorted(s for s in _BUILDERS if s))
        raise ConfigError(f"unsupported events URI scheme {scheme!r}; use one of: {known}")
    env = os.environ if environ is None else environ
    return builder(text, project_id, component, instance, env)
