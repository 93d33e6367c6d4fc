"""Recipe meta: ``tests/<recipe>/recipe_meta.py``, read without executing it.

Only top-level assignments of literals are allowed (``NAME = <literal>``), so
a fleet file can never run code inside a sweep.  Every key, its type and its
default live in :data:`KEYS`.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CanonError

META_FILE = "recipe_meta.py"

RUNGS = ("install", "upgrade", "backup", "functional", "lint")
RUNG_ALIASES = {f"L{i}": name for i, name in enumerate(RUNGS, start=1)}


class MetaError(CanonError):
    """A recipe_meta.py that cannot be used; the message names file and line."""


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_opt_str(v: Any) -> bool:
    return v is None or isinstance(v, str)


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_pos_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _is_str_list(v: Any) -> bool:
    return isinstance(v, list | tuple) and all(isinstance(x, str) for x in v)


def _is_str_dict(v: Any) -> bool:
    return isinstance(v, dict) and all(
        isinstance(k, str) and isinstance(x, str) for k, x in v.items()
    )


def _is_secrets(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and _is_opt_str(x) for k, x in v.items())


def _is_expected_na(v: Any) -> bool:
    return _is_str_dict(v) and all(RUNG_ALIASES.get(k, k) in RUNGS for k in v)


def _is_probes(v: Any) -> bool:
    if not isinstance(v, list | tuple):
        return False
    for probe in v:
        if not isinstance(probe, dict) or len({"cmd", "http"} & probe.keys()) != 1:
            return False
        if not set(probe) <= {"cmd", "http", "retries", "interval_s", "timeout_s", "expect_status"}:
            return False
    return True


@dataclass(frozen=True)
class Key:
    type_name: str
    check: Callable[[Any], bool]
    default: Any
    doc: str


KEYS: dict[str, Key] = {
    "WARM_CANONICAL": Key("bool", _is_bool, False, "enrol the recipe in the weekly sweep"),
    "FIXTURE": Key("bool", _is_bool, False, "a test fixture: never enrolled"),
    "UPGRADE_BASE_VERSION": Key("str or None", _is_opt_str, None, "pin the L2 upgrade base"),
    "ALLOW_PRERELEASE": Key("bool", _is_bool, False, "prerelease tags count as releases"),
    "EXPECTED_NA": Key(
        "dict of rung -> reason", _is_expected_na, {}, f"rungs that do not apply: {RUNGS}"
    ),
    "DEPS": Key("list of str", _is_str_list, [], "recipes/services to provision first"),
    "SECRETS": Key(
        "dict of name -> generator or None",
        _is_secrets,
        {},
        "secrets; None lets the backend generate",
    ),
    "ENV_OVERLAY": Key("dict of str -> str", _is_str_dict, {}, "env values over .env.sample"),
    "INSTALL_STEPS": Key("list of str", _is_str_list, [], "commands run in the slot after deploy"),
    "READY_PROBES": Key(
        "list of {'cmd': ...} or {'http': ...} dicts", _is_probes, [], "readiness probes"
    ),
    "REQUIRES_TOOLS": Key("list of str", _is_str_list, [], "executables the tests need on PATH"),
    "DEPLOY_TIMEOUT_S": Key("positive int", _is_pos_int, 300, "deploy + probes deadline"),
    "COLD_TIMEOUT_S": Key("positive int", _is_pos_int, 1800, "whole cold run deadline"),
    "HOLD": Key(
        "str or None", _is_opt_str, None, "operator hold: the sweep skips, with this reason"
    ),
}


@dataclass(frozen=True)
class RecipeMeta:
    recipe: str
    path: Path
    values: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        if name in KEYS:
            return self.values.get(name, KEYS[name].default)
        raise AttributeError(name)

    @property
    def enrolled(self) -> bool:
        return bool(self.WARM_CANONICAL) and not self.FIXTURE

    @property
    def expected_na(self) -> dict[str, str]:
        return {RUNG_ALIASES.get(k, k): v for k, v in self.EXPECTED_NA.items()}


def _fail(path: Path, line: int, msg: str) -> MetaError:
    return MetaError(f"{path}:{line}: {msg}")


def parse_meta(source: str, path: Path) -> dict[str, Any]:
    """The key -> value map of a meta file's source; raises :class:`MetaError`."""
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as e:
        raise _fail(path, e.lineno or 0, f"syntax error: {e.msg}") from None
    values: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # docstring or a bare literal
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            continue
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        elif isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        else:
            raise _fail(
                path,
                node.lineno,
                f"only NAME = <literal> assignments are allowed, not {type(node).__name__}",
            )
        if len(targets) != 1 or not isinstance(targets[0], ast.Name):
            raise _fail(path, node.lineno, "assign one plain NAME at a time")
        name = targets[0].id
        if name not in KEYS:
            close = difflib.get_close_matches(name, KEYS, n=1)
            hint = f"; did you mean {close[0]}?" if close else f"; known keys: {', '.join(KEYS)}"
            raise _fail(path, node.lineno, f"unknown key {name}{hint}")
        try:
            val = ast.literal_eval(value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise _fail(
                path, node.lineno, f"{name} must be a literal value, not an expression"
            ) from None
        if not KEYS[name].check(val):
            raise _fail(path, node.lineno, f"{name} must be {KEYS[name].type_name}, got {val!r}")
        values[name] = val
    return values


def load_meta(recipe_dir: str | Path) -> RecipeMeta:
    """Read ``<recipe_dir>/recipe_meta.py``; the recipe name is the directory name."""
    recipe_dir = Path(recipe_dir)
    path = recipe_dir / META_FILE
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MetaError(f"{path}: missing; every fleet recipe needs a {META_FILE}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise MetaError(f"{path}: cannot read: {e}") from None
    return RecipeMeta(recipe_dir.name, path, parse_meta(source, path))
