"""Contracts shared by every FLOps component.

Pure data and validation only: project specs, status events, MQTT topic layout, identifiers,
component configuration loading and the error catalogue. Nothing here performs I/O beyond
reading environment variables and a configuration file that the caller names.
"""

from flops_contracts.errors import ConfigError, ContractError, ErrorCode, FlopsError
from flops_contracts.events import Component, Event, EventType
from flops_contracts.spec import ProjectSpec, TrainingSpec

__all__ = [
    "Component",
    "ConfigError",
    "ContractError",
    "ErrorCode",
    "Event",
    "EventType",
    "FlopsError",
    "ProjectSpec",
    "TrainingSpec",
]
