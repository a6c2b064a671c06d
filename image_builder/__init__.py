"""The FLOps image builder: turn a user repository at one commit into a ready environment.

``build_environment(settings, emitter)`` clones the commit, checks the repository contract,
creates (or reuses from the cache) a virtual environment with the repository's dependencies over
a shared FLOps runtime layer, and smoke-checks the ModelManager inside it.
"""

from image_builder.builder import build_environment
from image_builder.outcome import BuildError, BuildResult, BuildStep, SourceError
from image_builder.settings import BuilderSettings

__all__ = [
    "BuildError",
    "BuildResult",
    "BuildStep",
    "BuilderSettings",
    "SourceError",
    "build_environment",
]
