"""``flops`` loads a command's heavy libraries with that command, not with every command."""

from __future__ import annotations

import json
import subprocess
import sys


def test_the_command_line_imports_no_data_plane_or_container_libraries() -> None:
    heavy = ["pyarrow", "flops_dataplane.client", "docker",
             "flops_manager.adapters.docker_orchestrator"]
    code = ("import json, sys; import flops_manager.cli.main as m; m.build_parser(); "
            f"print(json.dumps([n for n in {heavy!r} if n in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_preflight_defaults_to_the_builders_base_image() -> None:
    from flops_manager.cli.main import build_parser

    args = build_parser().parse_args(["preflight"])
    assert args.image is None  # resolved when the check runs: FLOPS_BASE_IMAGE, else the default
