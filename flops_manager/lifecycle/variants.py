"""Which platform variant of the learner image each learner runs (pure functions, no I/O).

The builder pushes one manifest list per role and reports each platform's image by digest
(``build["variants"]``: role -> platform -> ``host/path@sha256:...``). A learner runs:

1. the variant of the platform its node reports (``node_platforms[i]``; FLOps nodes report
   theirs, and an engine that pulls the manifest list by tag would pick the same one);
2. otherwise the spec's ``learner_platforms`` entry for it (learner ``i`` takes entry
   ``i`` modulo their number), e.g. one emulated arm64 learner next to native ones;
3. otherwise the manifest list itself (``""``: the engine picks its native platform).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from flops_manager.ports.errors import PermanentError


def learner_platforms(count: int, *, requested: Sequence[str],
                      node_platforms: Sequence[str | None] = ()) -> tuple[str, ...]:
    """Return the platform each of ``count`` learners runs (``""``: the engine's choice).

    Parameters
    ----------
    count
        Number of learners.
    requested
        The spec's ``learner_platforms`` (cycled over the learners; empty: none asked).
    node_platforms
        Platform reported by the node of learner ``i`` (``None`` or missing: not reported);
        a reported platform wins over the spec.
    """
    chosen = []
    for index in range(count):
        reported = node_platforms[index] if index < len(node_platforms) else None
        if reported:
            chosen.append(reported)
        elif requested:
            chosen.append(requested[index % len(requested)])
        else:
            chosen.append("")
    return tuple(chosen)


def variant_images(platforms: Sequence[str], variants: Mapping[str, str]) -> tuple[str, ...]:
    """Return the image of each learner: its platform's digest reference (``""``: default).

    Returns ``()`` when no learner asks for a platform (every learner runs the default image).

    Raises
    ------
    PermanentError
        If a learner needs a platform the build did not produce.
    """
    if not any(platforms):
        return ()
    images = []
    for index, plat in enumerate(platforms):
        if plat and plat not in variants:
            built = ", ".join(sorted(variants)) or "none"
            raise PermanentError(
                f"learner {index} needs the {plat} variant of the learner image, but the "
                f"build has {built}; add {plat} to the spec's platforms")
        images.append(variants[plat] if plat else "")
    return tuple(images)
