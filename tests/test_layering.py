"""The package's layering (README "Architecture"), enforced on every import statement of every module.

``_errors``, ``_config``, ``_scope``, ``_log``, ``_redact`` ← ``_model`` ← ``_delivery`` (generic: only the base layer) ← ``_sinks`` ← ``_otel`` ← ``_record`` ← ``_runtime`` ←
the outer ring (``__init__``, ``testing``, ``subjects``, ``cli``, ``_compat``, ``collector``, ``_cli``,
``sqlalchemy``, ``django``).
A module imports only from layers to its left or from its own package; outer-ring peers may import each
other, but only through public names (nobody outside ``collector`` imports ``collector._*``).
Every import counts: module level, inside functions, under ``TYPE_CHECKING``, relative or absolute.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import otel_commerce

PACKAGE = "otel_commerce"
ROOT = Path(otel_commerce.__file__).parent

LAYERS: list[set[str]] = [
    {"_errors", "_config", "_scope", "_log", "_redact"},
    {"_model"},
    {"_delivery"},
    {"_sinks"},
    {"_otel"},
    {"_record"},
    {"_runtime"},
    {"__init__", "testing", "subjects", "cli", "_compat", "collector", "_cli", "sqlalchemy", "django"},
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}
OUTER = len(LAYERS) - 1
#: packages whose private submodules only they themselves may import
SEALED = {"collector"}
#: the generic engine knows no event model: besides itself, only these
ONLY = {"_delivery": {"_errors", "_config", "_scope", "_log", "_redact"}}


def _module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def _imports(module: str, is_package: bool, source: str) -> Iterator[tuple[int, str]]:
    """``(line, absolute target)`` of every import of this package in ``source``."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.split(".")[0] != PACKAGE:
                continue
            if target == PACKAGE:  # `from . import _errors` names a module; `from .. import __version__` the root
                for alias in node.names:
                    sub = alias.name if (ROOT / alias.name).is_dir() or (ROOT / f"{alias.name}.py").exists() else ""
                    yield node.lineno, f"{PACKAGE}.{sub}" if sub else PACKAGE
            else:
                yield node.lineno, target


def _unit(module: str) -> str:
    """The layering unit of a module: its top-level name under the package (``__init__`` for the root)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def violations(module: str, is_package: bool, source: str) -> list[str]:
    own = _unit(module)
    if own not in RANK:
        return [f"{module}: no layer assigned to {own!r} (add it to LAYERS and the README)"]
    found = []
    for line, target in _imports(module, is_package, source):
        unit = _unit(target)
        if unit not in RANK:
            found.append(f"{module}:{line} imports {target}: no layer assigned to {unit!r}")
            continue
        parts = target.split(".")
        if unit in SEALED and unit != own and len(parts) > 2 and parts[2].startswith("_"):
            found.append(f"{module}:{line} imports {target}: use the public names of {PACKAGE}.{unit}")
        if own in ONLY and unit != own and unit not in ONLY[own]:
            found.append(f"{module}:{line} imports {target}: {own} may import only {sorted(ONLY[own])}")
            continue
        if unit == own or RANK[unit] < RANK[own] or RANK[unit] == RANK[own] in (0, OUTER):
            continue
        found.append(f"{module}:{line} imports {target} (layer {RANK[unit]}) from layer {RANK[own]}")
    return found


def test_every_module_imports_only_leftwards() -> None:
    modules = sorted(ROOT.rglob("*.py"))
    assert len(modules) > 40  # the walk really sees the package
    found = []
    for path in modules:
        module, is_package = _module_name(path)
        found += violations(module, is_package, path.read_text(encoding="utf-8"))
    assert found == []


def test_the_checker_catches_forbidden_imports() -> None:
    """Each violation the reshaping removed is still caught (so the test above can fail)."""
    cases = {
        ("otel_commerce._record._recorder", "from .._runtime import RUNTIME"): "layer 6",
        ("otel_commerce._otel._adapters", "def f():\n    from otel_commerce._runtime import RUNTIME"): "layer 6",
        ("otel_commerce._delivery._engine", "from .._model import apply_marketing"): "may import only",
        ("otel_commerce._sinks._jetstream", "from .._otel import current_ids"): "layer 4",
        ("otel_commerce._model._catalog", "from ..subjects import subject_for"): "layer 7",
        ("otel_commerce._cli._commands", "from ..collector._store import EventStore"): "public names",
        ("otel_commerce._model", "from .. import __version__"): "layer 7",
    }
    for (module, source), expected in cases.items():
        found = violations(module, module.count(".") == 1 and module.endswith("_model"), source)
        assert len(found) == 1 and expected in found[0], (module, source, found)
    assert violations("otel_commerce._sinks._jetstream", False, "from .._delivery import Sink") == []
    assert violations("otel_commerce._cli.demo", False, "from ..collector import EventStore\nimport otel_commerce") == []
