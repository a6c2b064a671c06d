"""Make a repository's modules importable the ways its own code imports them.

Repositories written for the original FLOps import their modules package-qualified
(``from my_repo.data_manager import DataManager``), with the repository's directory name as the
package. A build cache checks repositories out under a commit hash, so that name is found in
the code instead: an ``import A.B`` where ``A`` is not in the repository but ``B`` is a module
of its root makes ``A`` an alias package of the repository directory.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
import types
from pathlib import Path


def _imported_names(source: str) -> list[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:  # reported when the module is imported
        return []
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def package_aliases(repo_dir: Path) -> list[str]:
    """Return the top-level names the repository's root modules use for the repository itself.

    Pure apart from reading the ``*.py`` files at the root of ``repo_dir``.
    """
    local = {p.stem for p in repo_dir.glob("*.py")} | {
        p.name for p in repo_dir.iterdir() if p.is_dir() and (p / "__init__.py").is_file()
    }
    aliases: list[str] = []
    for path in sorted(repo_dir.glob("*.py")):
        for name in _imported_names(path.read_text(encoding="utf-8", errors="replace")):
            head, _, rest = name.partition(".")
            if rest and head not in local and rest.split(".")[0] in local \
                    and head not in aliases:
                aliases.append(head)
    return aliases


def register_aliases(repo_dir: Path) -> list[str]:
    """Register each alias of :func:`package_aliases` as a package over ``repo_dir``.

    A name that is already importable (an installed package) is left alone.
    """
    registered = []
    for name in package_aliases(repo_dir):
        if name in sys.modules or importlib.util.find_spec(name) is not None:
            continue
        package = types.ModuleType(name)
        package.__path__ = [str(repo_dir)]
        package.__file__ = None
        sys.modules[name] = package
        registered.append(name)
    return registered
