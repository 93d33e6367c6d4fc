"""Recipe meta: ``tests/<recipe>/recipe_meta.py``, read without executing it.

Only top-level assignments of literals are allowed (``NAME = <literal>``), so
a fleet file can never run code inside a sweep.  Every key, its type and its
default live in :data:`KEYS`.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict, TypeGuard, TypeVar

from canonlib.config import age_problem
from canonlib.errors import CanonError
from canonlib.files import FileProblem, read_small_file
from canonlib.recipe.hostaccess import host_access_problems

META_FILE = "recipe_meta.py"
META_CAP_BYTES = 256 * 1024  # a meta is a page of literals; anything bigger is a mistake
WEEK_S = 7 * 24 * 3600

RUNGS = ("install", "upgrade", "backup", "functional", "lint")
RUNG_ALIASES = {f"L{i}": name for i, name in enumerate(RUNGS, start=1)}


class MetaError(CanonError):
    """A recipe_meta.py that cannot be used; the message names file and line."""


# Each check is the one place a value read from a meta file gets its type (a TypeGuard).


def _is_str(v: object) -> TypeGuard[str]:
    return isinstance(v, str)


def _is_opt_str(v: object) -> TypeGuard[str | None]:
    return v is None or isinstance(v, str)


def _is_bool(v: object) -> TypeGuard[bool]:
    return isinstance(v, bool)


def _is_int(v: object, low: int, high: int) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def _is_number(v: object, low: float, high: float) -> TypeGuard[int | float]:
    # a float compares False with nan, and inf is above any high: both are refused here
    return isinstance(v, int | float) and not isinstance(v, bool) and low <= v <= high


def _is_seconds(v: object) -> TypeGuard[int]:
    return _is_int(v, 1, WEEK_S)


def _is_real(v: object) -> TypeGuard[int | float]:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_str_list(v: object) -> TypeGuard[list[str] | tuple[str, ...]]:
    return isinstance(v, list | tuple) and all(isinstance(x, str) for x in v)


def _is_str_dict(v: object) -> TypeGuard[dict[str, str]]:
    return isinstance(v, dict) and all(
        isinstance(k, str) and isinstance(x, str) for k, x in v.items()
    )


def _is_secrets(v: object) -> TypeGuard[dict[str, str | None]]:
    return isinstance(v, dict) and all(isinstance(k, str) and _is_opt_str(x) for k, x in v.items())


def _is_expected_na(v: object) -> TypeGuard[dict[str, str]]:
    return _is_str_dict(v) and all(RUNG_ALIASES.get(k, k) in RUNGS for k in v)


class Probe(TypedDict, total=False):
    """One of READY_PROBES: exactly one of ``cmd`` and ``http``, as :data:`PROBE_FIELDS` checks."""

    cmd: str | list[str] | tuple[str, ...]
    http: str
    retries: int
    interval_s: int | float
    timeout_s: int | float
    expect_status: int


PROBE_FIELDS: dict[str, Callable[[object], bool]] = {
    "cmd": lambda v: isinstance(v, str) and v.strip() != "" or _is_str_list(v) and len(v) > 0,
    "http": _is_str,
    "retries": lambda v: _is_int(v, 0, 10_000),
    "interval_s": lambda v: _is_number(v, 0, 3600),
    "timeout_s": lambda v: _is_number(v, 0.001, 24 * 3600),
    "expect_status": lambda v: _is_int(v, 100, 599),
}


def _is_probes(v: object) -> TypeGuard[list[Probe] | tuple[Probe, ...]]:
    if not isinstance(v, list | tuple):
        return False
    for probe in v:
        if not isinstance(probe, dict) or len({"cmd", "http"} & probe.keys()) != 1:
            return False
        if not set(probe) <= PROBE_FIELDS.keys():
            return False
        if not all(PROBE_FIELDS[k](x) for k, x in probe.items()):
            return False
    return True


def _host_access_problem(v: object) -> str | None:
    problems = host_access_problems(v) if isinstance(v, list | tuple) else []  # checked: a list
    return "; ".join(problems) if problems else None


def _age_problem(v: object) -> str | None:
    return age_problem(v) if isinstance(v, str) else None  # after the check: str or None


@dataclass(frozen=True)
class Key:
    type_name: str
    check: Callable[[object], bool]
    default: object  # when the file does not set it (what each key means: KEY_HELP)
    # after ``check``: what is wrong, in words
    problem: Callable[[object], str | None] | None = None


KEYS: dict[str, Key] = {
    "WARM_CANONICAL": Key("bool", _is_bool, False),
    "FIXTURE": Key("bool", _is_bool, False),
    "UPGRADE_BASE_VERSION": Key("str or None", _is_opt_str, None),
    "ALLOW_PRERELEASE": Key("bool", _is_bool, False),
    "EXPECTED_NA": Key("dict of rung -> reason", _is_expected_na, {}),
    "DEPS": Key("list of str", _is_str_list, []),
    "SECRETS": Key("dict of name -> generator or None", _is_secrets, {}),
    "ENV_OVERLAY": Key("dict of str -> str", _is_str_dict, {}),
    "INSTALL_STEPS": Key("list of str", _is_str_list, []),
    "READY_PROBES": Key(
        "list of {'cmd': ...} or {'http': ...} dicts (retries 0..10000, interval_s 0..3600, "
        "timeout_s up to 86400, expect_status 100..599)",
        _is_probes,
        [],
    ),
    "REQUIRES_TOOLS": Key("list of str", _is_str_list, []),
    "DEPLOY_TIMEOUT_S": Key(f"positive int (seconds, at most {WEEK_S})", _is_seconds, 300),
    "COLD_TIMEOUT_S": Key(f"positive int (seconds, at most {WEEK_S})", _is_seconds, 1800),
    "HOLD": Key("str or None", _is_opt_str, None),
    "HOST_ACCESS": Key(
        "list of str (host access items, as canon spells them)",
        _is_str_list,
        [],
        _host_access_problem,
    ),
    "MIN_RELEASE_AGE": Key(
        'str or None (a duration: "3d", "12h", "30m", "0")',
        _is_opt_str,
        None,
        _age_problem,
    ),
    "SERVER": Key("str or None", _is_opt_str, None),
}


T = TypeVar("T")


@dataclass(frozen=True)
class RecipeMeta:
    """A recipe's meta: ``values`` as :func:`parse_meta` read them, each key an attribute of
    its declared type (its default when the file does not set it)."""

    recipe: str
    path: Path
    values: dict[str, object] = field(default_factory=dict)

    def _get(self, name: str, check: Callable[[object], TypeGuard[T]]) -> T:
        """``name``'s value (or default), of the type ``check`` declares.  A value from a file
        passed its key's whole check already (:func:`parse_meta`); this is its type."""
        value = self.values.get(name, KEYS[name].default)
        if check(value):
            return value
        raise MetaError(f"{self.path}: {name} must be {KEYS[name].type_name}, got {_short(value)}")

    @property
    def WARM_CANONICAL(self) -> bool:
        return self._get("WARM_CANONICAL", _is_bool)

    @property
    def FIXTURE(self) -> bool:
        return self._get("FIXTURE", _is_bool)

    @property
    def UPGRADE_BASE_VERSION(self) -> str | None:
        return self._get("UPGRADE_BASE_VERSION", _is_opt_str)

    @property
    def ALLOW_PRERELEASE(self) -> bool:
        return self._get("ALLOW_PRERELEASE", _is_bool)

    @property
    def EXPECTED_NA(self) -> dict[str, str]:
        return self._get("EXPECTED_NA", _is_str_dict)

    @property
    def DEPS(self) -> Sequence[str]:
        return self._get("DEPS", _is_str_list)

    @property
    def SECRETS(self) -> dict[str, str | None]:
        return self._get("SECRETS", _is_secrets)

    @property
    def ENV_OVERLAY(self) -> dict[str, str]:
        return self._get("ENV_OVERLAY", _is_str_dict)

    @property
    def INSTALL_STEPS(self) -> Sequence[str]:
        return self._get("INSTALL_STEPS", _is_str_list)

    @property
    def READY_PROBES(self) -> Sequence[Probe]:
        return self._get("READY_PROBES", _is_probes)

    @property
    def REQUIRES_TOOLS(self) -> Sequence[str]:
        return self._get("REQUIRES_TOOLS", _is_str_list)

    @property
    def DEPLOY_TIMEOUT_S(self) -> float:
        return self._get("DEPLOY_TIMEOUT_S", _is_real)

    @property
    def COLD_TIMEOUT_S(self) -> float:
        return self._get("COLD_TIMEOUT_S", _is_real)

    @property
    def HOLD(self) -> str | None:
        return self._get("HOLD", _is_opt_str)

    @property
    def HOST_ACCESS(self) -> Sequence[str]:
        return self._get("HOST_ACCESS", _is_str_list)

    @property
    def MIN_RELEASE_AGE(self) -> str | None:
        return self._get("MIN_RELEASE_AGE", _is_opt_str)

    @property
    def SERVER(self) -> str | None:
        return self._get("SERVER", _is_opt_str)

    @property
    def enrolled(self) -> bool:
        return self.WARM_CANONICAL and not self.FIXTURE

    @property
    def expected_na(self) -> dict[str, str]:
        return {RUNG_ALIASES.get(k, k): v for k, v in self.EXPECTED_NA.items()}


def _fail(path: Path, line: int, msg: str) -> MetaError:
    return MetaError(f"{path}:{line}: {msg}")


def _short(value: object) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int too long to print
        return "a number too large"
    return text if len(text) <= 80 else text[:77] + "..."


def parse_meta(source: str, path: Path) -> dict[str, object]:
    """The key -> value map of a meta file's source; raises :class:`MetaError`."""
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as e:
        raise _fail(path, e.lineno or 0, f"syntax error: {e.msg}") from None
    values: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # docstring or a bare literal
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            continue
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            targets: list[ast.expr] = [node.target]
            value = node.value
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
            raise _fail(
                path, node.lineno, f"{name} must be {KEYS[name].type_name}, got {_short(val)}"
            )
        problem = KEYS[name].problem
        why = problem(val) if problem else None
        if why:
            raise _fail(path, node.lineno, f"{name}: {why}")
        values[name] = val
    return values


def load_meta(recipe_dir: str | Path) -> RecipeMeta:
    """Read ``<recipe_dir>/recipe_meta.py``; the recipe name is the directory name."""
    recipe_dir = Path(recipe_dir)
    path = recipe_dir / META_FILE
    try:
        source = read_small_file(path, META_CAP_BYTES).decode("utf-8")
    except FileNotFoundError:
        raise MetaError(f"{path}: missing; every fleet recipe needs a {META_FILE}") from None
    except FileProblem as e:
        raise MetaError(f"{path}: {e}; make it a plain file of NAME = <literal> lines") from None
    except UnicodeDecodeError as e:
        raise MetaError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    return RecipeMeta(recipe_dir.name, path, parse_meta(source, path))


# -- the key reference -------------------------------------------------------------
# Appended last so edits to the checks above rebase cleanly.  `canon meta keys`, the
# scaffold `canon init` writes and docs/reference/recipe-meta.md are all made from this.


@dataclass(frozen=True)
class KeyHelp:
    meaning: str
    example: str  # a line of Python source, as it would appear in recipe_meta.py


KEY_HELP: dict[str, KeyHelp] = {
    "WARM_CANONICAL": KeyHelp(
        "Enrol the recipe: the weekly sweep keeps a canonical (a warm deployment of its "
        "newest green release) for it. Without it the recipe is listed as excluded.",
        "WARM_CANONICAL = True",
    ),
    "FIXTURE": KeyHelp(
        "This directory is a test fixture, not a recipe to keep: never enrolled, whatever "
        "WARM_CANONICAL says.",
        "FIXTURE = True",
    ),
    "UPGRADE_BASE_VERSION": KeyHelp(
        "Pin the version the L2 upgrade rung upgrades from. Unset, the base is the "
        "canonical (or, when the canonical is the version under test, the newest older "
        "release). `canon pins` lists pins that now equal the canonical and can go.",
        'UPGRADE_BASE_VERSION = "1.10.0+1.29.0"',
    ),
    "ALLOW_PRERELEASE": KeyHelp(
        "Count prerelease tags (1.0.0-rc1) as releases when finding the newest release "
        "and the upgrade base.",
        "ALLOW_PRERELEASE = True",
    ),
    "EXPECTED_NA": KeyHelp(
        "Rungs that do not apply to this recipe, each with the reason; they count as "
        f"`skip`, not as failures. Rung names: {', '.join(RUNGS)} (or L1..L5).",
        'EXPECTED_NA = {"backup": "data is re-synced from the network, not restored"}',
    ),
    "DEPS": KeyHelp(
        "Services or recipes the slot needs provisioned before deploy (a database, say).",
        'DEPS = ["db"]',
    ),
    "SECRETS": KeyHelp(
        "Secrets to create in every slot: name -> generator (`hex:N`, `base64:N`, "
        "`alnum:N`) or None for the default (alnum:32). Existing secrets are kept on "
        "upgrade.",
        'SECRETS = {"db_password": "alnum:32", "jwt_secret": None}',
    ),
    "ENV_OVERLAY": KeyHelp(
        "Values set over the recipe's .env.sample in every slot.",
        'ENV_OVERLAY = {"LETS_ENCRYPT_ENV": "staging"}',
    ),
    "INSTALL_STEPS": KeyHelp(
        "Shell commands run in the slot after deploy, in order (seed data, run "
        "migrations); one failing fails the install.",
        "INSTALL_STEPS = ['echo seeded > \"$CANON_DATA_DIR/seed.txt\"']",
    ),
    "READY_PROBES": KeyHelp(
        "Checks that must pass before a slot counts as ready: each a dict with `cmd` "
        "(exit 0) or `http` (a URL), optional `retries`, `interval_s`, `timeout_s`, "
        "`expect_status`. All share the DEPLOY_TIMEOUT_S deadline.",
        'READY_PROBES = [{"cmd": "test -f \\"$CANON_DATA_DIR/seed.txt\\"", "retries": 3}]',
    ),
    "REQUIRES_TOOLS": KeyHelp(
        "Executables the recipe's tests need; `canon doctor` fails when one is missing "
        "from the timer's PATH.",
        'REQUIRES_TOOLS = ["curl", "jq"]',
    ),
    "DEPLOY_TIMEOUT_S": KeyHelp(
        "Seconds for deploy, install steps and ready probes together (also bounds each "
        "functional test run).",
        "DEPLOY_TIMEOUT_S = 600",
    ),
    "COLD_TIMEOUT_S": KeyHelp(
        "Seconds for the whole cold run of this recipe (the harness timeout in canon.toml "
        "applies when smaller); past it the run is FAIL (timeout).",
        "COLD_TIMEOUT_S = 3600",
    ),
    "HOLD": KeyHelp(
        "Operator hold: the sweep skips the recipe with this reason (label SKIP (held)) "
        "and the canonical stays. Remove the line to resume.",
        'HOLD = "1.15.3 migrations need a manual step"',
    ),
    "HOST_ACCESS": KeyHelp(
        "What the operator accepts that this recipe asks of the host (binds of host paths, "
        "the docker socket, privileged, cap_add, devices, security_opt, sysctls, host "
        "network/pid/ipc, ports in mode host). A release asking for more is not deployed: "
        "HELD (host access), its row naming each new item and the line to add here. A bind "
        "of canon's own state, evidence, keys, fleet or config is refused even when listed.",
        'HOST_ACCESS = ["bind:/var/run/docker.sock"]',
    ),
    "MIN_RELEASE_AGE": KeyHelp(
        "A release cooldown for this recipe: a tag canon's mirror first saw less than this "
        'long ago is SKIP (cooling) until then. Overrides [sweep] min_release_age; "0" '
        "turns it off.",
        'MIN_RELEASE_AGE = "7d"',
    ),
    "SERVER": KeyHelp(
        "Several servers (`backend.servers`): the server this recipe's canonical lives on. "
        "Without it a canonical stays where it is, and a new one goes to the server holding "
        "the fewest; set it to move the canonical on its next promote.",
        'SERVER = "canon-s2"',
    ),
}


def key_rows() -> list[dict[str, str]]:
    """One row per recipe_meta.py key: key, type, default, meaning, example."""
    return [
        {
            "key": name,
            "type": key.type_name,
            "default": repr(key.default),
            "meaning": KEY_HELP[name].meaning,
            "example": KEY_HELP[name].example,
        }
        for name, key in KEYS.items()
    ]
