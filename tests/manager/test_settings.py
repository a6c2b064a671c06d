"""Manager settings read from the environment: phase timeouts merge over the defaults."""

from __future__ import annotations

import pytest

from flops_contracts.errors import ConfigError
from flops_manager.lifecycle.state import Phase
from flops_manager.settings import DEFAULT_TIMEOUTS, TIMED_PHASES, load


def test_misspelt_phase_is_refused_naming_the_valid_phases() -> None:
    with pytest.raises(ConfigError) as caught:
        load({"FLOPS_PHASE_TIMEOUTS": '{"buildng": 60}'})
    message = caught.value.message
    assert "FLOPS_PHASE_TIMEOUTS" in message and "buildng" in message
    for phase in TIMED_PHASES:
        assert phase.value in message


def test_one_phase_overrides_and_the_others_keep_their_defaults() -> None:
    timeouts = load({"FLOPS_PHASE_TIMEOUTS": '{"building": 60}'}).phase_timeouts
    assert timeouts[Phase.BUILDING] == 60.0
    assert {p: t for p, t in timeouts.items() if p is not Phase.BUILDING} == {
        p: t for p, t in DEFAULT_TIMEOUTS.items() if p is not Phase.BUILDING
    }


def test_null_removes_a_limit_and_defaults_apply_when_unset() -> None:
    assert load({}).phase_timeouts == dict(DEFAULT_TIMEOUTS)
    timeouts = load({"FLOPS_PHASE_TIMEOUTS": '{"training": null}'}).phase_timeouts
    assert timeouts[Phase.TRAINING] is None and timeouts[Phase.BUILDING] == 3600.0


@pytest.mark.parametrize("raw", ['{"building": 0}', '{"completed": 5}', '[60]'])
def test_nonsense_is_refused(raw: str) -> None:
    with pytest.raises(ConfigError, match="FLOPS_PHASE_TIMEOUTS"):
        load({"FLOPS_PHASE_TIMEOUTS": raw})
