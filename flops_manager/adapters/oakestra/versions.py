"""Oakestra versions this backend supports, and what each one honours."""

from __future__ import annotations

import dataclasses
import enum


class OakestraVersion(enum.StrEnum):
    """Root-orchestrator versions covered by the recorded contract."""

    V0_4_400 = "v0.4.400"
    """The FLOps-era baseline (tag v0.4.400, Python scheduler)."""
    V0_4_410 = "v0.4.410"
    """``main``: like v0.4.411 but the root scheduler ignores ``direct`` constraints."""
    V0_4_411 = "v0.4.411"
    """``develop`` (alpha-v0.4.411, Go scheduler honouring only ``direct``)."""


CURRENT = OakestraVersion.V0_4_411


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What the SLA generator may rely on for a version.

    Attributes
    ----------
    addons_constraint
        The schedulers evaluate ``{"type": "addons"}`` (v0.4.400 only, and only correctly with
        a single active cluster; see the reference §3.4).
    direct_constraint
        The root scheduler pins ``{"type": "direct", "cluster": ...}`` to that cluster.
    """

    addons_constraint: bool
    direct_constraint: bool


CAPABILITIES = {
    OakestraVersion.V0_4_400: Capabilities(addons_constraint=True, direct_constraint=True),
    OakestraVersion.V0_4_410: Capabilities(addons_constraint=False, direct_constraint=False),
    OakestraVersion.V0_4_411: Capabilities(addons_constraint=False, direct_constraint=True),
}
