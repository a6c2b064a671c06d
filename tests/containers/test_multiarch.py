"""Learner and aggregator images for linux/amd64 and linux/arm64 as one manifest list.

Real buildah builds the digits example for both platforms (arm64 under qemu-user-static
emulation, from the arm64 debootstrap base; both bases are one manifest list in the registry),
pushes one manifest list per role, and each platform's variant is pulled by digest and runs its
component's Python with the architecture proven inside (``uname -m``) and in the image config.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
import requests

from image_builder.outcome import ImageBuildResult
from image_builder.platforms import host_platform
from image_builder.registry_client import MANIFEST_TYPES, split_reference

from .conftest import PLATFORMS

# The arm64 build runs pip under emulation (~5-8 min on a quiet machine when its dependency
# layer is not cached yet; more under load); the fixture's time counts towards the first test.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(3600)]


def _manifest(ref: str) -> dict[str, Any]:
    host, path, tag = split_reference(ref)
    response = requests.get(f"http://{host}/v2/{path}/manifests/{tag}",
                            headers={"Accept": MANIFEST_TYPES}, timeout=30)
    response.raise_for_status()
    return dict(response.json())


def test_one_manifest_list_per_role_with_both_platforms(
        multiarch_build: ImageBuildResult) -> None:
    assert set(multiarch_build.images) == {"learner", "aggregator"}
    assert multiarch_build.platforms == tuple(PLATFORMS)
    variants = multiarch_build.details["variants"]
    for role, ref in multiarch_build.images.items():
        manifest = _manifest(ref)
        assert "manifest.list" in manifest["mediaType"] or "image.index" in manifest["mediaType"]
        listed = {f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
                  for m in manifest["manifests"]}
        assert set(listed) == set(PLATFORMS), manifest
        base = ref.rsplit(":", 1)[0]
        assert variants[role] == {plat: f"{base}@{digest}" for plat, digest in listed.items()}


@pytest.mark.parametrize("platform", list(PLATFORMS))
def test_each_variant_is_pulled_and_runs_its_component(
        multiarch_build: ImageBuildResult, platform: str) -> None:
    for role, module in (("learner", "learner_base"), ("aggregator", "aggregator")):
        ref = multiarch_build.details["variants"][role][platform]
        subprocess.run(["podman", "pull", "-q", "--tls-verify=false", ref], check=True,
                       capture_output=True, timeout=600)
        config = subprocess.run(["podman", "image", "inspect", "--format",
                                 "{{.Os}}/{{.Architecture}} {{json .Config.Cmd}}", ref],
                                check=True, capture_output=True, text=True).stdout.split()
        assert config == [platform, json.dumps(["python", "-m", module]).replace(" ", "")]
        script = (f"uname -m; python -c 'import platform, {module}, sklearn; "
                  "print(platform.machine())'; cat /opt/flops/venv/flops-packages.json")
        out = subprocess.run(["podman", "run", "--rm", "--entrypoint", "/bin/sh", ref, "-c",
                              script], capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        arch = out.stdout.split("\n", 2)
        assert arch[:2] == [PLATFORMS[platform]] * 2, out.stdout[:500]
        # each variant is pruned for its role; the emulated one trusts the native verification
        report = json.loads(arch[2])
        assert report["role"] == role and report["removed"], report
        assert report["verified"] is (platform == host_platform()), report
        # the emulated variant imported nothing under qemu: it pruned by the native probe
        native = platform == host_platform()
        assert report["probed"] == ("in this build" if native
                                    else "natively, handed to this emulated build"), report
        # the learner speaks Flower's protocol over grpcio without importing Flower
        loaded = set(report["probe"]["loaded"])
        assert ("flwr" in loaded) is (role == "aggregator") and "grpcio" in loaded, loaded
