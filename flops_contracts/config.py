"""Typed component configuration from environment variables or a JSON file.

Every FLOps component (learner, aggregator, builder, data server, ...) declares its settings as a
pydantic model and loads them with :func:`load_settings`. Values come from, in increasing priority:

1. the JSON object in the file named by ``FLOPS_CONFIG_FILE`` (if set);
2. environment variables ``FLOPS_<FIELD NAME IN UPPER CASE>``; structured fields (lists, objects)
   are given as JSON text.

No component ever reads positional command-line arguments for its configuration.
"""

from __future__ import annotations

import json
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from flops_contracts.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

ENV_PREFIX = "FLOPS_"
CONFIG_FILE_VAR = "FLOPS_CONFIG_FILE"


def _is_structured(annotation: Any) -> bool:
    """Return whether a field annotation needs JSON decoding from an environment string."""
    origin = typing.get_origin(annotation)
    if origin in (list, dict, tuple, set):
        return True
    if origin is not None:  # Optional[...] / unions
        return any(_is_structured(arg) for arg in typing.get_args(annotation) if arg is not None)
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def settings_to_env(settings: BaseModel, *, prefix: str = ENV_PREFIX) -> dict[str, str]:
    """Render ``settings`` as environment variables that :func:`load_settings` reads back.

    ``None`` values are left out so the receiving side uses its defaults.
    """
    env: dict[str, str] = {}
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        key = prefix + name.upper()
        env[key] = value if isinstance(value, str) else json.dumps(value)
    return env


def load_settings(
    model: type[M],
    *,
    environ: Mapping[str, str] | None = None,
    prefix: str = ENV_PREFIX,
) -> M:
    """Load settings of type ``model`` from a JSON file and environment variables.

    Parameters
    ----------
    model
        The pydantic settings class.
    environ
        Environment to read (default: ``os.environ``).
    prefix
        Variable prefix (default ``FLOPS_``).

    Raises
    ------
    ConfigError
        Naming every missing or invalid setting and the variable that sets it.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    config_file = env.get(CONFIG_FILE_VAR)
    if config_file:
        path = Path(config_file)
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read {CONFIG_FILE_VAR}={config_file}: {exc}") from None
        except ValueError as exc:
            raise ConfigError(f"{CONFIG_FILE_VAR}={config_file} is not valid JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{CONFIG_FILE_VAR}={config_file} must hold a JSON object")
        values.update(loaded)
    for name, field in model.model_fields.items():
        var = prefix + name.upper()
        if var not in env or (env[var] == "" and field.default is None):
            continue  # an empty optional setting is unset (compose files write ${X:-})
        raw = env[var]
        if _is_structured(field.annotation):
            try:
                values[name] = json.loads(raw)
            except ValueError as exc:
                raise ConfigError(f"{var} must be JSON ({exc})") from None
        else:
            values[name] = raw
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field_name = str(err["loc"][0]) if err["loc"] else ""
            where = prefix + field_name.upper() if field_name else "configuration"
            detail = ".".join(str(p) for p in err["loc"][1:])
            problems.append(f"{where}{'.' + detail if detail else ''}: {err['msg']}")
        raise ConfigError(
            f"invalid {model.__name__}: " + "; ".join(problems),
            details={"errors": problems},
        ) from None
