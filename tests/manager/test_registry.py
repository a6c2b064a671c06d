"""Backends chosen by URI scheme: each registry builds its own port type, or says what to set."""

from __future__ import annotations

import pytest

from flops_contracts.errors import ConfigError
from flops_manager import registry
from flops_manager.adapters.memory_orchestrator import MemoryOrchestrator
from flops_manager.adapters.memory_store import MemoryProjectStore
from flops_manager.settings import Settings


def test_memory_backends_are_built_by_scheme() -> None:
    settings = Settings(store_uri="memory://", orchestrator_uri="memory://")
    assert isinstance(registry.build_store(settings), MemoryProjectStore)
    assert isinstance(registry.build_orchestrator(settings), MemoryOrchestrator)


def test_every_shipped_scheme_is_listed() -> None:
    assert registry.store_registry().schemes() == ["memory", "mongodb"]
    assert registry.orchestrator_registry().schemes() == [
        "docker", "docker+unix", "local", "memory", "oakestra", "oakestra+https"]


def test_an_unknown_scheme_names_the_variable_and_the_choices() -> None:
    with pytest.raises(ConfigError) as caught:
        registry.orchestrator_registry().build("k8s://cluster", Settings())
    assert "FLOPS_ORCHESTRATOR_URI='k8s://cluster'" in str(caught.value)
    assert "local://" in str(caught.value) and "oakestra://" in str(caught.value)


def test_an_unset_uri_says_what_to_set() -> None:
    with pytest.raises(ConfigError, match="set FLOPS_MONGO_URL or FLOPS_STORE_URI"):
        registry.store_registry().build("", Settings())


def test_registries_are_independent_values() -> None:
    """No module-level singleton: registering on one registry does not change another."""
    mine = registry.store_registry()
    mine.register("custom", lambda uri, settings: MemoryProjectStore())
    assert "custom" in mine.schemes()
    assert "custom" not in registry.store_registry().schemes()
