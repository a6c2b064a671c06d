"""Validation of identifiers that end up in paths, MQTT topics, image tags or service names."""

from __future__ import annotations

import re

_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

MAX_IDENTIFIER_LENGTH = 63
MAX_TAG_LENGTH = 128


def is_identifier(value: str) -> bool:
    """Return whether ``value`` is a safe identifier.

    A safe identifier starts with a letter or digit, holds only letters, digits, ``_``, ``.`` and
    ``-``, contains no ``..`` and is at most 63 characters long. Such a value is safe as a file
    name, an MQTT topic level, a DNS-like service name part and an image tag component.
    """
    return bool(_IDENTIFIER.match(value)) and ".." not in value


def check_identifier(value: str, *, what: str) -> str:
    """Return ``value`` unchanged if it is a safe identifier, else raise ``ValueError``.

    Parameters
    ----------
    value
        The candidate identifier.
    what
        What the value names, used in the error message (e.g. ``"project id"``).
    """
    if not isinstance(value, str) or not is_identifier(value):
        raise ValueError(
            f"{what} {value!r} is invalid: use 1-{MAX_IDENTIFIER_LENGTH} characters from "
            "letters, digits, '_', '.', '-', starting with a letter or digit, without '..'"
        )
    return value


def check_data_tag(value: str) -> str:
    """Return ``value`` if it is a valid data tag, else raise ``ValueError``."""
    if not isinstance(value, str) or not _TAG.match(value) or ".." in value:
        raise ValueError(
            f"data tag {value!r} is invalid: use 1-{MAX_TAG_LENGTH} characters from letters, "
            "digits, '_', '.', '-', starting with a letter or digit, without '..'"
        )
    return value
