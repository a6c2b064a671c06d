"""The project spec: what a user asks FLOps to do with their repository.

Every model rejects unknown fields and reports problems per field, so that the REST API, the CLI
and the runtimes give the same clear message for the same mistake.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from flops_contracts.errors import ErrorCode, FlopsError
from flops_contracts.ids import check_data_tag, check_identifier
from flops_contracts.strategy_spec import (
    StrategyName,
    parse_strategy_name,
    validate_strategy_params,
)

ConfigValue = bool | int | float | str
"""A value of a flat, Flower-style configuration dictionary."""

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
"""Integers Flower's config records and the project database (BSON) can hold."""
EXTRA_MAX_KEYS = 64
EXTRA_MAX_KEY_LENGTH = 128
EXTRA_MAX_STR_LENGTH = 4096

ExtraValue = (
    bool
    | Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
    | Annotated[float, Field(allow_inf_nan=False)]
    | Annotated[str, Field(max_length=EXTRA_MAX_STR_LENGTH)]
)
"""A value of ``learner_config.extra``: a scalar that survives JSON, BSON and Flower alike."""


def extra_key_problem(key: str) -> str | None:
    """Why ``key`` cannot be a key of ``learner_config.extra`` (``None`` if it can).

    Keys become field names of the stored project document: BSON refuses NUL, and MongoDB
    gives ``.`` and a leading ``$`` a meaning of their own.
    """
    if not key:
        return "keys must not be empty"
    if len(key) > EXTRA_MAX_KEY_LENGTH:
        return f"key {key[:20]!r}... is longer than {EXTRA_MAX_KEY_LENGTH} characters"
    if "\x00" in key:
        return f"key {key!r} contains a NUL character"
    if key.startswith("$"):
        return f"key {key!r} starts with '$'"
    if "." in key:
        return f"key {key!r} contains '.'; use '_' or '-' instead"
    return None


def extra_value_problem(key: str, value: object) -> str | None:
    """Why ``value`` cannot be the value of ``key`` in ``learner_config.extra``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        return f"{key!r}: integers must lie within the signed 64-bit range"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{key!r}: numbers must be finite"
    if isinstance(value, str) and len(value) > EXTRA_MAX_STR_LENGTH:
        return f"{key!r}: strings may hold at most {EXTRA_MAX_STR_LENGTH} characters"
    return None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TrainingMode(enum.StrEnum):
    """Classic FL (one aggregator) or hierarchical FL (a root and one aggregator per cluster)."""

    CLASSIC = "classic"
    HIERARCHICAL = "hierarchical"


class Platform(enum.StrEnum):
    """Target platforms for container images."""

    LINUX_AMD64 = "linux/amd64"
    LINUX_ARM64 = "linux/arm64"


class PostTrainingStep(enum.StrEnum):
    """Optional steps after training."""

    BUILD_IMAGE_FOR_TRAINED_MODEL = "build_image_for_trained_model"
    DEPLOY_TRAINED_MODEL_IMAGE = "deploy_trained_model_image"


class SelectionMode(enum.StrEnum):
    """Whether a larger or a smaller value of the selection metric is better."""

    MAX = "max"
    MIN = "min"


class StrategySpec(_Model):
    """An aggregation strategy by name plus its hyper-parameters."""

    name: StrategyName = StrategyName.FEDAVG
    params: dict[str, ConfigValue] = Field(default_factory=dict)

    @field_validator("name", mode="before")
    @classmethod
    def _known_name(cls, value: Any) -> StrategyName:
        return parse_strategy_name(str(value))

    @model_validator(mode="after")
    def _valid_params(self) -> Self:
        validated = validate_strategy_params(self.name, dict(self.params))
        if validated != self.params:
            object.__setattr__(self, "params", validated)
        return self


class LearnerConfigSpec(_Model):
    """Per-round configuration sent by the aggregator to every learner."""

    local_epochs: int = Field(1, ge=1, le=10_000)
    batch_size: int = Field(32, ge=1, le=1_000_000)
    learning_rate: float | None = Field(None, gt=0)
    extra: dict[str, ExtraValue] = Field(
        default_factory=dict,
        max_length=EXTRA_MAX_KEYS,
        description="additional keys passed unchanged to the ModelManager: at most "
        f"{EXTRA_MAX_KEYS} keys (1-{EXTRA_MAX_KEY_LENGTH} characters, no NUL, no '.', no leading "
        "'$') with a boolean, a 64-bit integer, a finite number or a string of at most "
        f"{EXTRA_MAX_STR_LENGTH} characters each",
    )

    @field_validator("extra", mode="before")
    @classmethod
    def _storable_values(cls, value: Any) -> Any:
        """Refuse values a plain type check would coerce (a huge integer into a float)."""
        if isinstance(value, Mapping):
            problems = [p for k, v in value.items() if (p := extra_value_problem(str(k), v))]
            if problems:
                raise ValueError("; ".join(problems))
        return value

    @field_validator("extra")
    @classmethod
    def _valid_keys(cls, value: dict[str, ConfigValue]) -> dict[str, ConfigValue]:
        problems = [p for p in map(extra_key_problem, value) if p]
        if problems:
            raise ValueError("; ".join(problems))
        reserved = {"local_epochs", "batch_size", "learning_rate", "server_round", "proximal_mu"}
        clash = sorted(reserved & set(value))
        if clash:
            raise ValueError(f"keys {clash} are reserved; set them as fields of learner_config")
        return value


class DifferentialPrivacySpec(_Model):
    """Central differential privacy through Flower's server-side DP wrappers."""

    clipping: str = Field("fixed", pattern="^(fixed|adaptive)$")
    noise_multiplier: float = Field(..., ge=0)
    clipping_norm: float = Field(1.0, gt=0, description="fixed clipping norm or initial norm")
    target_clipped_quantile: float = Field(0.5, gt=0, lt=1)
    clip_norm_lr: float = Field(0.2, gt=0)
    clipped_count_stddev: float | None = Field(
        None, gt=0, description="adaptive clipping: noise on the clipped count (default fit/20)"
    )


class TrainingSpec(_Model):
    """How training runs: mode, rounds, learners, strategy, timeouts."""

    mode: TrainingMode = TrainingMode.CLASSIC
    rounds: int = Field(3, ge=1, le=10_000, description="rounds (per cycle when hierarchical)")
    cycles: int | None = Field(None, ge=1, le=10_000, description="root rounds (hierarchical)")
    learners: int = Field(2, ge=1, le=10_000, description="learners to deploy (per cluster)")
    min_available_learners: int | None = Field(None, ge=1, le=10_000)
    min_fit_learners: int | None = Field(None, ge=1, le=10_000)
    min_evaluate_learners: int | None = Field(None, ge=1, le=10_000)
    fraction_fit: float = Field(1.0, gt=0, le=1)
    fraction_evaluate: float = Field(1.0, gt=0, le=1)
    strategy: StrategySpec = Field(default_factory=lambda: StrategySpec())
    learner_config: LearnerConfigSpec = Field(default_factory=lambda: LearnerConfigSpec())
    round_timeout_s: float = Field(600.0, gt=0, le=86_400)
    connect_timeout_s: float = Field(
        600.0, gt=0, le=86_400, description="how long the aggregator waits for learners to join"
    )
    clusters: list[str] | None = Field(
        None, description="hierarchical: cluster names to use (default: every active cluster)"
    )
    min_clusters: int = Field(
        1, ge=1, le=10_000, description="hierarchical: fewest clusters to continue"
    )
    selection_metric: str = Field("accuracy", pattern="^(accuracy|loss)$")
    selection_mode: SelectionMode | None = None
    differential_privacy: DifferentialPrivacySpec | None = None

    @field_validator("clusters")
    @classmethod
    def _valid_clusters(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("give at least one cluster name, or omit the field for all clusters")
        for name in value:
            check_identifier(name, what="cluster name")
        if len(set(value)) != len(value):
            raise ValueError("cluster names must be unique")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.mode is TrainingMode.HIERARCHICAL and self.cycles is None:
            raise ValueError("hierarchical training needs 'cycles' (root rounds), e.g. cycles: 2")
        if self.mode is TrainingMode.CLASSIC and self.cycles is not None:
            raise ValueError("'cycles' only applies to hierarchical training; remove it")
        if self.mode is TrainingMode.CLASSIC and self.clusters is not None:
            raise ValueError("'clusters' only applies to hierarchical training; remove it")
        available = self.min_available_learners or self.learners
        fit = self.min_fit_learners or available
        evaluate = self.min_evaluate_learners or fit
        if available > self.learners:
            raise ValueError(
                f"min_available_learners ({available}) exceeds learners ({self.learners})"
            )
        if fit > available:
            raise ValueError(
                f"min_fit_learners ({fit}) exceeds min_available_learners ({available})"
            )
        if evaluate > available:
            raise ValueError(
                f"min_evaluate_learners ({evaluate}) exceeds min_available_learners ({available})"
            )
        dp = self.differential_privacy
        if dp is not None and dp.clipping == "adaptive":
            stddev = dp.clipped_count_stddev or fit / 20
            if dp.noise_multiplier >= 2 * stddev:
                raise ValueError(
                    f"differential_privacy: noise_multiplier ({dp.noise_multiplier}) must be "
                    f"below 2 x clipped_count_stddev ({stddev}); raise clipped_count_stddev"
                )
        if self.clusters is not None and self.min_clusters > len(self.clusters):
            raise ValueError(
                f"min_clusters ({self.min_clusters}) exceeds the clusters named "
                f"({len(self.clusters)})"
            )
        return self

    @property
    def effective_min_available(self) -> int:
        """Learners that must be connected before training starts (per cluster)."""
        return self.min_available_learners or self.learners

    @property
    def effective_min_fit(self) -> int:
        """Fewest learners whose fit results a round needs."""
        return self.min_fit_learners or self.effective_min_available

    @property
    def effective_min_evaluate(self) -> int:
        """Fewest learners whose evaluation results a round needs."""
        return self.min_evaluate_learners or self.effective_min_fit

    @property
    def effective_selection_mode(self) -> SelectionMode:
        """Direction of the model-selection metric."""
        if self.selection_mode is not None:
            return self.selection_mode
        return SelectionMode.MIN if self.selection_metric == "loss" else SelectionMode.MAX


class ResourceSpec(_Model):
    """Resources requested for each FL component (learner, aggregator)."""

    memory_mb: int = Field(1024, ge=16, le=4_194_304)
    vcpus: float = Field(1.0, gt=0, le=1024)
    vgpus: int = Field(0, ge=0, le=64)
    storage_mb: int = Field(0, ge=0, le=1 << 30)


class Partitioner(enum.StrEnum):
    """How mock data is split among learners."""

    IID = "iid"
    DIRICHLET = "dirichlet"
    LABEL_SKEW = "label_skew"


class MockDataSpec(_Model):
    """Data the manager generates for the learners (a data server filled by the mock provider).

    Each learner gets one partition of ``dataset`` (with a held-out test split) under the
    project's first data tag (``mock`` when the project names none).
    """

    dataset: str = Field(
        "sklearn:digits", description="a scikit-learn bundled data set: sklearn:<name>"
    )
    partitioner: Partitioner = Partitioner.IID
    alpha: float = Field(0.5, gt=0, le=1000, description="Dirichlet concentration (non-IID)")
    labels_per_partition: int = Field(2, ge=1, le=1000, description="label_skew: labels each")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="random seed (numpy range)")
    test_fraction: float = Field(0.2, ge=0, lt=1, description="each learner's local test split")
    holdout_fraction: float = Field(
        0.0, ge=0, lt=1,
        description="rows no learner gets, to check the served model on unseen data",
    )

    @field_validator("dataset")
    @classmethod
    def _bundled_only(cls, value: str) -> str:
        name = value.removeprefix("sklearn:")
        if name not in MOCK_DATASETS:
            raise ValueError(
                f"unknown mock data set {value!r}; use one of "
                + ", ".join(f"sklearn:{n}" for n in MOCK_DATASETS)
                + " (bring other data with your own data server and data_tags)"
            )
        return f"sklearn:{name}"


MOCK_DATASETS = ("digits", "iris", "wine", "breast_cancer")
"""Data sets the manager can generate without downloading anything."""


class ModelSpec(_Model):
    """How the winning model is registered in MLflow."""

    registered_model_name: str | None = Field(
        None, description="MLflow registered model name (default: flops-<project name or id>)"
    )

    @field_validator("registered_model_name")
    @classmethod
    def _valid_name(cls, value: str | None) -> str | None:
        return None if value is None else check_identifier(value, what="registered_model_name")


class ProjectSpec(_Model):
    """Everything a project asks for, apart from where its repository is."""

    name: str | None = Field(None, description="human-readable project name")
    training: TrainingSpec = Field(default_factory=lambda: TrainingSpec())
    data_tags: list[str] = Field(default_factory=list)
    mock_data: MockDataSpec | None = Field(
        None, description="generate partitioned data for the learners (a data server per project)"
    )
    resources: ResourceSpec = Field(default_factory=lambda: ResourceSpec())
    platforms: list[Platform] = Field(default_factory=lambda: [Platform.LINUX_AMD64])
    learner_platforms: list[Platform] = Field(
        default_factory=list,
        description="platform variant each learner runs (learner i: entry i modulo their "
                    "number; each one of platforms); empty: the engine's native platform, or "
                    "the platform a learner's node reports",
    )
    post_training_steps: list[PostTrainingStep] = Field(default_factory=list)
    model: ModelSpec = Field(default_factory=lambda: ModelSpec())

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str | None) -> str | None:
        return None if value is None else check_identifier(value, what="project name")

    @field_validator("data_tags")
    @classmethod
    def _valid_tags(cls, value: list[str]) -> list[str]:
        for tag in value:
            check_data_tag(tag)
        if len(set(value)) != len(value):
            raise ValueError("data tags must be unique")
        return value

    @field_validator("platforms")
    @classmethod
    def _some_platform(cls, value: list[Platform]) -> list[Platform]:
        if not value:
            raise ValueError("name at least one platform, e.g. ['linux/amd64']")
        if len(set(value)) != len(value):
            raise ValueError("platforms must be unique")
        return value

    @model_validator(mode="after")
    def _learner_platforms_built(self) -> Self:
        unbuilt = sorted(set(self.learner_platforms) - set(self.platforms))
        if unbuilt:
            raise ValueError(f"learner_platforms: {', '.join(unbuilt)} not in platforms (only "
                             "the platforms listed there are built)")
        return self

    @model_validator(mode="after")
    def _post_training_order(self) -> Self:
        steps = set(self.post_training_steps)
        if (
            PostTrainingStep.DEPLOY_TRAINED_MODEL_IMAGE in steps
            and PostTrainingStep.BUILD_IMAGE_FOR_TRAINED_MODEL not in steps
        ):
            raise ValueError(
                "post_training_steps: 'deploy_trained_model_image' needs "
                "'build_image_for_trained_model' as well"
            )
        return self


def validation_messages(exc: ValidationError) -> dict[str, list[str]]:
    """Turn a pydantic error into ``{"dotted.field": [messages]}`` for users."""
    out: dict[str, list[str]] = {}
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "spec"
        msg = str(err["msg"]).removeprefix("Value error, ")
        out.setdefault(where, []).append(msg)
    return out


def parse_spec(data: Mapping[str, Any]) -> ProjectSpec:
    """Validate ``data`` into a :class:`ProjectSpec`.

    Raises
    ------
    FlopsError
        With code ``invalid_spec``; ``details["errors"]`` maps each field to its messages.
    """
    try:
        return ProjectSpec.model_validate(dict(data))
    except ValidationError as exc:
        errors = validation_messages(exc)
        summary = "; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items())
        raise FlopsError(
            f"invalid project spec: {summary}",
            code=ErrorCode.INVALID_SPEC,
            details={"errors": errors},
        ) from None
