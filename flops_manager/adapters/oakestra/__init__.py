"""Oakestra backend of the Orchestrator port.

Register :func:`build_oakestra_orchestrator` for the ``oakestra`` and ``oakestra+https``
URI schemes. Pure parts: :mod:`.names`, :mod:`.addresses`, :mod:`.sla`, :mod:`.models`,
:mod:`.status`; I/O: :mod:`.client`, :mod:`.orchestrator`.
"""

from flops_manager.adapters.oakestra.settings import (
    OakestraSettings,
    build_oakestra_orchestrator,
    load_oakestra_settings,
)
from flops_manager.adapters.oakestra.versions import OakestraVersion

__all__ = [
    "OakestraSettings",
    "OakestraVersion",
    "build_oakestra_orchestrator",
    "load_oakestra_settings",
]
