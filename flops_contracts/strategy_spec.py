"""Federated aggregation strategies a project may name, with validated hyper-parameters.

The aggregation math itself comes from Flower (see ``aggregator.strategies``); this module only
declares which strategies exist and which hyper-parameters each accepts, so that a spec can be
validated anywhere (API, CLI, runtime) without importing Flower.
"""

from __future__ import annotations

import enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class StrategyName(enum.StrEnum):
    """Strategies supported by FLOps (Flower implementations)."""

    FEDAVG = "FedAvg"
    FEDAVGM = "FedAvgM"
    FEDPROX = "FedProx"
    FEDADAM = "FedAdam"
    FEDYOGI = "FedYogi"
    FEDADAGRAD = "FedAdagrad"
    FEDMEDIAN = "FedMedian"
    FEDTRIMMEDAVG = "FedTrimmedAvg"
    KRUM = "Krum"


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FedAvgParams(_Params):
    """FedAvg has no hyper-parameters beyond the common sampling settings."""


class FedMedianParams(_Params):
    """FedMedian has no hyper-parameters beyond the common sampling settings."""


class FedAvgMParams(_Params):
    """FedAvg with server-side momentum."""

    server_learning_rate: float = Field(1.0, gt=0)
    server_momentum: float = Field(0.0, ge=0, lt=1)


class FedProxParams(_Params):
    """FedProx: the proximal term weight is sent to learners each round."""

    proximal_mu: float = Field(..., ge=0)


class FedOptParams(_Params):
    """Shared hyper-parameters of the adaptive optimisers (FedAdam, FedYogi, FedAdagrad)."""

    eta: float = Field(1e-1, gt=0, description="server-side learning rate")
    eta_l: float = Field(1e-1, gt=0, description="client-side learning rate")
    tau: float = Field(1e-9, gt=0, description="degree of adaptability")


class FedAdamParams(FedOptParams):
    """FedAdam hyper-parameters."""

    beta_1: float = Field(0.9, ge=0, lt=1)
    beta_2: float = Field(0.99, ge=0, lt=1)


class FedYogiParams(FedAdamParams):
    """FedYogi hyper-parameters (same shape as FedAdam)."""


class FedAdagradParams(FedOptParams):
    """FedAdagrad hyper-parameters."""


class FedTrimmedAvgParams(_Params):
    """FedTrimmedAvg: fraction cut off at each tail."""

    beta: float = Field(0.2, ge=0, lt=0.5)


class KrumParams(_Params):
    """Krum (and Multi-Krum when ``num_clients_to_keep`` > 0)."""

    num_malicious_clients: int = Field(0, ge=0, le=10_000)
    num_clients_to_keep: int = Field(0, ge=0, le=10_000)


PARAMS_BY_STRATEGY: dict[StrategyName, type[_Params]] = {
    StrategyName.FEDAVG: FedAvgParams,
    StrategyName.FEDAVGM: FedAvgMParams,
    StrategyName.FEDPROX: FedProxParams,
    StrategyName.FEDADAM: FedAdamParams,
    StrategyName.FEDYOGI: FedYogiParams,
    StrategyName.FEDADAGRAD: FedAdagradParams,
    StrategyName.FEDMEDIAN: FedMedianParams,
    StrategyName.FEDTRIMMEDAVG: FedTrimmedAvgParams,
    StrategyName.KRUM: KrumParams,
}


def parse_strategy_name(name: str) -> StrategyName:
    """Return the strategy called ``name`` (case-insensitive) or raise ``ValueError``."""
    for candidate in StrategyName:
        if candidate.value.lower() == str(name).lower():
            return candidate
    known = ", ".join(s.value for s in StrategyName)
    raise ValueError(f"unknown strategy {name!r}; choose one of: {known}")


def validate_strategy_params(name: StrategyName, params: dict[str, Any]) -> dict[str, Any]:
    """Validate ``params`` for strategy ``name`` and return them with defaults filled in.

    Raises
    ------
    ValueError
        With a message naming the strategy and each offending hyper-parameter.
    """
    model = PARAMS_BY_STRATEGY[name]
    try:
        return model(**params).model_dump()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'params'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ValueError(
            f"invalid hyper-parameters for strategy {name.value}: {problems}"
        ) from None
