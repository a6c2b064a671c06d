"""The steps every image target shares: prepare, cache check, context, build, push.

A target (FL images, model image) describes *what* to build as an :class:`ImagePlan`;
:func:`build_and_push` renders the recipe, computes the tags, asks the registry whether every
image already exists for every platform with a digest FLOps recorded pushing (then nothing is
built; a tag with any other digest is rebuilt and pushed over), and otherwise builds all roles
from one Containerfile with ``buildah bud --layers`` (the roles share the dependency layers)
into manifest lists and pushes them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import secrets
import shutil
import tempfile
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

from flops_contracts.events import EventType
from flops_messaging import EventEmitter
from image_builder import containerfile as cf
from image_builder.build_context import (
    check_wheel_has,
    copy_payload,
    runtime_wheel,
    write_lines,
)
from image_builder.buildah import (
    BudOptions,
    Buildah,
    auth_file_content,
    credentials_from_auth_file,
    write_auth_file,
)
from image_builder.cache import CacheLayout
from image_builder.image_tags import TagInputs, image_name, image_tag, recipe_digest
from image_builder.outcome import BuildError, BuildStep
from image_builder.pins import extras_pins, merge_requirements, runtime_pins, runtime_roots
from image_builder.pip_config import PipBuildInputs, build_inputs
from image_builder.platforms import (
    emulation_error,
    host_platform,
    missing_emulation,
    needs_emulation,
    read_binfmt_handlers,
    requested_platforms,
)
from image_builder.registry_client import RegistryClient, digest_reference
from image_builder.runtime_layer import runtime_version
from image_builder.settings import BuilderSettings
from image_builder.steps import StepTimer


@dataclasses.dataclass(frozen=True)
class ImagePlan:
    """What a target wants built.

    Attributes
    ----------
    roles
        The images (one Containerfile stage each).
    payload
        Directory copied to ``payload_dir`` in the images.
    payload_dir
        Its place in the image.
    env
        Environment of every image.
    labels
        OCI labels of every image.
    user_requirements
        The user's (or model's) requirement lines.
    requirements_source
        Their file name, for messages.
    source_id
        Commit or model digest (first tag component).
    dependency_hash
        Hash of the dependency file (second tag component).
    source_slug
        Image path component naming the repository or model.
    extra_roots
        Requirements added to the runtime's roots (versions from the pins).
    """

    roles: tuple[cf.Role, ...]
    payload: Path
    payload_dir: str
    env: Mapping[str, str]
    labels: Mapping[str, str]
    user_requirements: tuple[str, ...]
    requirements_source: str
    source_id: str
    dependency_hash: str
    source_slug: str
    extra_roots: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class PushedImages:
    """Outcome of :func:`build_and_push`."""

    images: dict[str, str]
    cache_hit: bool
    platforms: tuple[str, ...]
    details: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class _Prepared:
    containerfile: str
    requirements: tuple[str, ...]
    constraints: tuple[str, ...]
    user_requirements: tuple[str, ...]
    wheel: Path
    refs: dict[str, str]
    tag: str
    runtime: str
    pip: PipBuildInputs


def build_log_path(settings: BuilderSettings) -> Path:
    """Return a new build log path under ``<cache_dir>/logs``."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"{settings.project_id}-{settings.target.value}-{stamp}-{secrets.token_hex(3)}.log"
    return CacheLayout(settings.cache_dir).root / "logs" / name


def _prepare(settings: BuilderSettings, plan: ImagePlan, cache: CacheLayout,
             emitter: EventEmitter) -> _Prepared:
    wheel = runtime_wheel(cache=cache, source=settings.runtime_source,
                          python=settings.python, timeout=settings.install_timeout_s)
    check_wheel_has(wheel, [role.module for role in plan.roles])
    runtime = runtime_version(settings.runtime_source)
    merged = merge_requirements(roots=(*runtime_roots(), *plan.extra_roots),
                                user=plan.user_requirements, pins=runtime_pins(),
                                source=plan.requirements_source, extra_pins=extras_pins())
    for note in merged.notes:
        emitter.emit(EventType.LOG, step=str(BuildStep.PREPARE), level="warning", message=note)
    pip = build_inputs(settings.effective_pip_config())
    # pip skips a configured local location that does not exist; a mount of it would fail
    pip = dataclasses.replace(pip, mounts=tuple(m for m in pip.mounts if m[0].is_dir()))
    recipe = cf.Recipe(
        base_image=settings.base_image, python=settings.python_in_image,
        wheel_name=wheel.name, payload_dir=plan.payload_dir, env=plan.env,
        labels={**plan.labels, "io.flops.runtime-version": runtime,
                "io.flops.dependency-hash": plan.dependency_hash},
        roles=plan.roles, install_tini=settings.install_tini,
        slim_runtime=settings.slim_runtime,
        pip_args=tuple(sorted(pip.build_args)),
    )
    text = cf.render_containerfile(recipe)
    # where pip installs from decides what is installed (e.g. CPU or CUDA wheels): in the tag
    pip_part = ["\n".join(f"{k}={v}" for k, v in sorted(pip.build_args.items()))]
    digest = recipe_digest(text, "\n".join(merged.requirements), "\n".join(merged.constraints),
                           *(pip_part if pip.build_args else []))
    tag = image_tag(TagInputs(plan.source_id, plan.dependency_hash, runtime, digest))
    refs = {
        role.name: image_name(registry=settings.registry, namespace=settings.image_namespace,
                              source=plan.source_slug, role=role.name) + f":{tag}"
        for role in plan.roles
    }
    return _Prepared(text, merged.requirements, merged.constraints, merged.user, wheel, refs,
                     tag, runtime, pip)


@contextlib.contextmanager
def _credentials(settings: BuilderSettings) -> Iterator[tuple[Path | None,
                                                                tuple[str, str] | None]]:
    """Yield ``(authfile, (user, password))`` for the registry; a private temp auth file."""
    if settings.registry_username is not None and settings.registry_password is not None:
        creds = (settings.registry_username, settings.registry_password.get_secret_value())
        with tempfile.TemporaryDirectory(prefix="flops-auth-") as tmp:
            path = write_auth_file(Path(tmp) / "auth.json",
                                   auth_file_content(settings.registry, *creds))
            yield path, creds
        return
    if settings.registry_auth_file is not None:
        path = settings.registry_auth_file.expanduser()
        yield path, credentials_from_auth_file(path, settings.registry)
        return
    yield None, None


Variants = dict[str, dict[str, str]]
"""Role -> platform -> digest reference of that platform's image (``host/path@sha256:...``)."""


def _variants(client: RegistryClient, refs: Mapping[str, str],
              pushed: Mapping[str, str] | None = None) -> Variants:
    """Return each role's platform variants as found in the registry (none: ``{}``).

    With ``pushed`` (role -> manifest list digest this build pushed), the variants of those
    lists, read by digest: what this build wrote, whatever the tags name meanwhile.
    """
    found: Variants = {}
    for role, ref in refs.items():
        digest = (pushed or {}).get(role)
        digests = (client.variants_at(ref, digest) if digest else client.variants(ref)) or {}
        found[role] = {plat: digest_reference(ref, digest)
                       for plat, digest in sorted(digests.items()) if digest}
    return found


def missing_platforms(found: Variants, platforms: tuple[str, ...],
                      trusted: Collection[str]) -> dict[str, list[str]]:
    """Return role -> requested platforms without a trusted image (empty lists: a full hit).

    An image counts only if its digest reference is in ``trusted`` (what FLOps recorded
    pushing): a tag someone else pushed, or re-pushed, is a miss, never a hit.
    """
    return {role: [p for p in platforms if variants.get(p) not in trusted]
            for role, variants in found.items()}


def untrusted_platforms(found: Variants, platforms: tuple[str, ...],
                        trusted: Collection[str]) -> dict[str, list[str]]:
    """Return role -> requested platforms whose tag exists with a digest FLOps did not record."""
    return {role: bad for role, variants in found.items()
            if (bad := [p for p in platforms if p in variants and variants[p] not in trusted])}


def build_and_push(settings: BuilderSettings, plan: ImagePlan, steps: StepTimer,
                   emitter: EventEmitter) -> PushedImages:
    """Return the images of ``plan`` in the registry, building and pushing them if needed.

    Raises
    ------
    BuildError
        If a platform needs missing emulation, or preparing, building or pushing fails
        (``details`` carry ``output_tail`` and ``log_file``).
    """
    cache = CacheLayout(settings.cache_dir)
    host = host_platform()
    platforms = requested_platforms(settings.platforms, host)
    log_path = build_log_path(settings)
    with steps.step(BuildStep.PREPARE) as info:
        prep = _prepare(settings, plan, cache, emitter)
        info.update(tag=prep.tag, images=prep.refs, runtime_version=prep.runtime,
                    platforms=list(platforms))
    details: dict[str, Any] = {"tag": prep.tag, "runtime_version": prep.runtime,
                               "dependency_hash": plan.dependency_hash}
    with _credentials(settings) as (authfile, creds):
        client = RegistryClient(tls_verify=settings.registry_tls_verify, credentials=creds)
        try:
            with steps.step(BuildStep.CACHE) as info:
                found = _variants(client, prep.refs)
                trusted = frozenset(settings.trusted_images)
                missing = missing_platforms(found, platforms, trusted)
                hit = not any(missing.values())
                info.update(cache_hit=hit, missing={r: m for r, m in missing.items() if m},
                            untrusted=untrusted_platforms(found, platforms, trusted))
            if not hit:
                lacking = missing_emulation(platforms, host,
                                            read_binfmt_handlers(settings.binfmt_dir))
                if lacking:
                    steps.current = BuildStep.BUILD
                    raise emulation_error(lacking, host)
                details["log_file"] = str(log_path)
                pushed = _build(settings, plan, prep, steps, platforms=platforms,
                                log_path=log_path, authfile=authfile)
                found = _variants(client, prep.refs, pushed)
        finally:
            client.close()
    details["variants"] = {role: {p: v[p] for p in platforms if p in v}
                           for role, v in found.items()}
    return PushedImages(dict(prep.refs), hit, platforms, details)


def _native_probe(buildah: Buildah, options: BudOptions, role: str, host: str,
                  scratch: Path) -> str:
    """Build ``role``'s pruning stage natively; return its probe answer as JSON.

    Emulated platforms prune by this answer instead of importing the role's modules under
    qemu (see ``image_builder.role_env``). The stage is the one the native image uses, so
    after a native build this is a layer-cache hit that only exports the report.
    """
    out = Path(tempfile.mkdtemp(prefix="decision-", dir=scratch))
    try:
        buildah.bud(dataclasses.replace(options, target=cf.decision_stage(role), manifest=None,
                                        platforms=(host,), output=out))
        report = json.loads((out / cf.PACKAGES_REPORT).read_text(encoding="utf-8"))
        return json.dumps(report["probe"], separators=(",", ":"), sort_keys=True)
    except (OSError, ValueError, KeyError) as exc:
        raise BuildError(f"reading the native {role} image's package report failed: {exc}",
                         step=BuildStep.BUILD) from None
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _build(settings: BuilderSettings, plan: ImagePlan, prep: _Prepared, steps: StepTimer, *,
           platforms: tuple[str, ...], log_path: Path, authfile: Path | None) -> dict[str, str]:
    """Build every role and push it; return role -> the pushed manifest list's digest."""
    buildah = Buildah(settings.buildah, log_path=log_path, timeout=settings.build_timeout_s)
    scratch = settings.scratch_dir()
    scratch.mkdir(parents=True, exist_ok=True)
    context = Path(tempfile.mkdtemp(prefix="image-context-", dir=scratch))
    suffix = secrets.token_hex(4)
    manifests = {role: f"localhost/flops-build/{role}:{prep.tag[:100]}-{suffix}"
                 for role in prep.refs}
    try:
        with steps.step(BuildStep.CONTEXT) as info:
            (context / "Containerfile").write_text(prep.containerfile, encoding="utf-8")
            write_lines(context / "deps" / "requirements.txt", prep.requirements)
            write_lines(context / "deps" / "constraints.txt", prep.constraints)
            write_lines(context / "deps" / "user-requirements.txt", prep.user_requirements)
            (context / "wheel").mkdir()
            shutil.copy2(prep.wheel, context / "wheel" / prep.wheel.name)
            copy_payload(plan.payload, context / "payload")
            info.update(log_file=str(log_path))
        ca_bundle = settings.extra_ca_bundle.expanduser() if settings.extra_ca_bundle else None
        host = host_platform()
        options = BudOptions(
            containerfile=context / "Containerfile", context=context, target="", manifest=None,
            platforms=(), ca_bundle=ca_bundle, tls_verify=settings.registry_tls_verify,
            authfile=authfile, mounts=prep.pip.mounts,
            build_args={**prep.pip.build_args, cf.BUILD_PLATFORM_ARG: host})
        emulated = tuple(needs_emulation(platforms, host))
        native = tuple(p for p in platforms if p not in emulated)
        for role in plan.roles:
            with steps.step(BuildStep.BUILD, label=f"build_{role.name}") as info:
                into = dataclasses.replace(options, target=role.name,
                                           manifest=manifests[role.name])
                if native:
                    buildah.bud(dataclasses.replace(into, platforms=native))
                if emulated:
                    args = dict(options.build_args)
                    # with the native platform requested its base has it too; an emulated-only
                    # build (e.g. an arm64-only base) probes under emulation
                    if role.prune and native:
                        args[cf.NATIVE_PROBE_ARG] = _native_probe(buildah, options, role.name,
                                                                  host, scratch)
                    buildah.bud(dataclasses.replace(into, platforms=emulated, build_args=args))
                info.update(role=role.name, native=list(native), emulated=list(emulated))
        with steps.step(BuildStep.PUSH) as info:
            pushed = {role_name: buildah.push(manifest=manifests[role_name], ref=ref,
                                              tls_verify=settings.registry_tls_verify,
                                              authfile=authfile)
                      for role_name, ref in prep.refs.items()}
            info.update(images=prep.refs, pushed=pushed)
        return pushed
    finally:
        for manifest in manifests.values():
            buildah.remove_manifest(manifest)
        shutil.rmtree(context, ignore_errors=True)
