"""``canon.toml`` and its environment overrides.

Found via ``canon --config F``, else ``$CANON_CONFIG``, else ``./canon.toml``.
``CCCI_REPO`` overrides the fleet root and ``CANON_STATE`` the state dir.
Relative paths are relative to the config file's directory.  A bad config is
one :class:`ConfigError` that lists every problem.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shlex
import string
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Required, TypedDict, TypeGuard, TypeVar

from canonlib import git
from canonlib.errors import UsageError
from canonlib.files import FileProblem, read_small_file
from canonlib.term import did_you_mean

DEFAULT_UPSTREAM = "https://git.coopcloud.tech/coop-cloud/{recipe}.git"
BACKENDS = ("local", "abra", "swarm")
CONFIG_CAP_BYTES = 1024 * 1024
WEEK_S = 7 * 24 * 3600
# (low, high) of every number in canon.toml; a value outside is a config error,
# not an overflow later
LIMITS: dict[str, tuple[float, float]] = {
    "harness.timeout_s": (1, WEEK_S),
    "sync.timeout_s": (1, 24 * 3600),
    "sync.parallel": (1, 256),
    "backend.parallel": (1, 256),
    "backend.per_server": (1, 64),
    "budget.disk_bytes": (1, 2**62),
}

EXAMPLE = """\
# canon.toml -- every key is optional except `fleet`
fleet = "fleet"                 # the operator's test tree: <fleet>/tests/<recipe>/recipe_meta.py
state_dir = "state"             # registry, mirrors, slots
evidence_dir = "evidence"       # evidence runs
upstream = "https://git.coopcloud.tech/coop-cloud/{recipe}.git"
# push = "ssh://git@ci.example.org/mirrors/{recipe}.git"   # optional CI mirror
# branch = "main"               # unset: main, else upstream's default branch (with a warning)

[backend]
kind = "local"                  # or "swarm" (docker stack deploy), "abra"
# context = "myserver"          # swarm: a docker context (default: the current one)
# servers = ["s1", "s2"]        # several servers: docker contexts (swarm) or abra servers
# per_server = 1                # several servers: cold runs at once on each
# parallel = 2                  # cold runs at once (default: per_server x servers; 1 for local)

[harness]
# command = ["canon", "harness"]      # default: the built-in harness
timeout_s = 3600                # at most 604800 (a week)

[sync]
parallel = 8
timeout_s = 120

[sweep]
min_release_age = "3d"          # a tag younger than this (since canon first saw it) waits

[budget]
disk_bytes = 10_000_000_000

# [recipes.nextcloud]
# upstream = "https://example.org/nextcloud.git"
# branch = "master"
"""


class ConfigError(UsageError):
    pass


class BackendTable(TypedDict, total=False):
    """``[backend]`` as written (``kind`` defaulted), every key canon reads checked for its type;
    a backend may read keys of its own, which stay in the table as they are."""

    kind: Required[str]
    servers: list[str]
    per_server: int
    parallel: int
    context: str
    abra: str
    docker: str
    helper_image: str
    warm: str
    domain: str
    instance: str
    timeout_s: int | float


# the keys of ``[backend]`` that are text (the others: servers, per_server, parallel, timeout_s)
BACKEND_TEXT = ("context", "abra", "docker", "helper_image", "warm", "domain", "instance")


_AGE = re.compile(r"(\d{1,7})\s*([dhms]?)")
_AGE_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1, "": 1}
MAX_AGE_S = 365 * 86400


def parse_age(text: str) -> int:
    """A duration as canon.toml and recipe_meta.py write it (``"3d"``, ``"12h"``, ``"30m"``,
    ``"90s"``, ``"0"``) in seconds; ValueError naming the form otherwise."""
    m = _AGE.fullmatch(text.strip().lower()) if isinstance(text, str) else None
    if not m:
        raise ValueError(f'{text!r} is not a duration; write it like "3d", "12h" or "30m"')
    seconds = int(m[1]) * _AGE_UNITS[m[2]]
    if seconds > MAX_AGE_S:
        raise ValueError(f"{text!r} is longer than a year")
    return seconds


def age_problem(text: str) -> str | None:
    try:
        parse_age(text)
    except ValueError as e:
        return str(e)
    return None


@dataclass(frozen=True)
class Config:
    path: Path | None
    fleet: Path
    state_dir: Path
    evidence_dir: Path
    upstream: str = DEFAULT_UPSTREAM
    push: str | None = None
    branch: str = "main"
    branch_set: bool = False  # `branch` given at the top level of canon.toml
    backend: BackendTable = field(default_factory=lambda: BackendTable(kind="local"))
    harness_command: list[str] = field(default_factory=list)
    harness_timeout_s: float = 3600.0
    sync_parallel: int = 8
    sync_timeout_s: float = 120.0
    cold_parallel: int = 1
    per_server: int = 1  # several servers: cold runs at once on each
    disk_budget_bytes: int = 10_000_000_000
    recipes: dict[str, dict[str, str]] = field(default_factory=dict)
    digest: str = ""
    log_path: Path | None = None  # the evidence log's repo; None: <state_dir>/log.git
    log_push: str | None = None
    log_origin: str = "canon.invalid/evidence-log"
    min_release_age_s: int = 0  # [sweep] min_release_age: 0 is no cooldown

    @property
    def log_repo(self) -> Path:
        return self.log_path or self.state_dir / "log.git"

    @property
    def db_path(self) -> Path:
        return self.state_dir / "canon.db"

    @property
    def mirrors_dir(self) -> Path:
        return self.state_dir / "mirrors"

    @property
    def slots_dir(self) -> Path:
        return self.state_dir / "slots"

    @property
    def runs_dir(self) -> Path:
        return self.state_dir / "runs"

    @property
    def lock_path(self) -> Path:
        return self.state_dir / "sweep.lock"

    @property
    def fleet_tests(self) -> Path:
        return self.fleet / "tests"

    def upstream_url(self, recipe: str) -> str:
        return self.recipes.get(recipe, {}).get("upstream") or self.upstream.format(recipe=recipe)

    def push_url(self, recipe: str) -> str | None:
        return self.push.format(recipe=recipe) if self.push else None

    def branch_for(self, recipe: str) -> str:
        return self.recipes.get(recipe, {}).get("branch") or self.branch

    def mirror_branch(self, recipe: str) -> str | None:
        """The branch canon.toml sets for ``recipe`` (honoured as is), or None when unset."""
        return self.branch_for(recipe) if self.branch_is_set(recipe) else None

    def branch_is_set(self, recipe: str) -> bool:
        """True when canon.toml names the branch: then it is honoured, never replaced by
        upstream's default branch (only an unset branch may follow upstream's default)."""
        return self.branch_set or bool(self.recipes.get(recipe, {}).get("branch"))

    def mirror_path(self, recipe: str) -> Path:
        return self.mirrors_dir / f"{recipe}.git"

    def child_env(self) -> dict[str, str]:
        """What a child process needs to find this same configuration."""
        env = {"CCCI_REPO": str(self.fleet), "CANON_STATE": str(self.state_dir)}
        if self.path:
            env["CANON_CONFIG"] = str(self.path)
        return env


def find_config_path(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    if explicit:
        return Path(explicit)
    if os.environ.get("CANON_CONFIG"):
        return Path(os.environ["CANON_CONFIG"])
    if Path("canon.toml").exists():
        return Path("canon.toml")
    return None


def resolve_path(value: str, base: Path | None = None, *, named: str | None = None) -> Path:
    """``value`` absolute (``~`` expanded, a relative one under ``base``, default the working
    directory) with its symlinks resolved; a symlink loop or an unknown ``~user`` is one
    :class:`ConfigError` line (exit 2) naming ``named`` (default the value)."""
    try:
        p = Path(value).expanduser()
        return (p if p.is_absolute() or base is None else base / p).resolve()
    except (RuntimeError, OSError) as e:  # RuntimeError: pathlib's symlink loop, no such ~user
        raise ConfigError(
            f"{named or value}: cannot resolve this path ({e}); fix it or the link"
        ) from None


def load_config(
    explicit: str | os.PathLike[str] | None = None, *, env_overrides: bool = True
) -> Config:
    """Load and check the configuration; raise :class:`ConfigError` naming every problem.

    ``env_overrides=False`` ignores CCCI_REPO / CANON_STATE (a proof's scratch config).
    Each table of canon.toml is read by its own function, in the order below, each
    returning its fields of :class:`Config` and adding what is wrong to one list.
    """
    env = EnvOverrides.read(os.environ if env_overrides else {})
    path, raw, blob = _read_file(find_config_path(explicit))
    base = path.parent if path else Path.cwd()
    problems = _Problems(unknown_keys(raw))
    paths = _paths(problems, raw, env)
    remote = _remote(problems, raw)
    backend = _backend(problems, raw)
    harness = _harness(problems, raw)
    sync = _sync(problems, raw)
    budget = _budget(problems, raw)
    log = _log(problems, raw)
    sweep = _sweep(problems, raw)
    recipes = _recipes(problems, raw)
    _dir_problems(problems, base, paths, env)
    problems.raise_any(path)
    digest = hashlib.sha256(blob + b"\0" + os.fsencode(env.digest_key())).hexdigest()
    fleet = resolve_path(paths["fleet"], base)
    state_dir = resolve_path(paths["state_dir"], base)
    evidence_dir = resolve_path(paths["evidence_dir"], base)
    log_path = resolve_path(log["log_path"], base) if log["log_path"] else None
    return Config(
        path=path,
        fleet=fleet,
        state_dir=state_dir,
        evidence_dir=evidence_dir,
        **remote,
        **backend,
        **harness,
        **sync,
        **budget,
        log_path=log_path,
        log_push=log["log_push"],
        log_origin=log["log_origin"],
        **sweep,
        **recipes,
        digest=digest,
    )


@dataclass(frozen=True)
class EnvOverrides:
    """``$CCCI_REPO`` (the fleet) and ``$CANON_STATE`` (the state dir); empty when unset."""

    fleet: str = ""
    state_dir: str = ""

    @classmethod
    def read(cls, environ: Mapping[str, str]) -> EnvOverrides:
        return cls(environ.get("CCCI_REPO", ""), environ.get("CANON_STATE", ""))

    def digest_key(self) -> str:
        """The overrides as the config's digest covers them."""
        return f"CCCI_REPO={self.fleet}|CANON_STATE={self.state_dir}"


Table = Mapping[str, object]
"""A TOML table as parsed: its keys are text, its values anything TOML holds."""


def _read_file(path: Path | None) -> tuple[Path | None, Table, bytes]:
    """(resolved path, parsed TOML, its bytes) of the config file; nothing when there is none."""
    if path is None:
        return None, {}, b""
    try:
        blob = read_small_file(path, CONFIG_CAP_BYTES)
        raw: Table = tomllib.loads(blob.decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} not found; create one (see `canon config example`) "
            "or point --config / $CANON_CONFIG at it"
        ) from None
    except FileProblem as e:
        raise ConfigError(
            f"config {path} {e}; point --config / $CANON_CONFIG at a canon.toml file"
        ) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return path.resolve(), raw, blob


T = TypeVar("T")
D = TypeVar("D")


class _Problems:
    """Every problem found in the configuration, and the typed reads that add to them."""

    def __init__(self, found: list[str]):
        self.found = found

    def add(self, *problems: str) -> None:
        self.found += problems

    def take(
        self,
        table: Table,
        key: str,
        types: type[T] | tuple[type[T], ...],
        default: D,
        where: str,
    ) -> T | D:
        """``table[key]`` when it has one of ``types``; else ``default`` (a problem if set)."""
        if key not in table:
            return default
        value = table[key]
        if not isinstance(value, types) or isinstance(value, bool) and bool not in _tuple(types):
            self.add(f"{where}{key} must be {_names(types)}, got {value!r}")
            return default
        return value

    def table(self, table: Table, key: str, where: str) -> Table:
        """:meth:`take` for a table (TOML's keys are always text)."""
        value: Table = self.take(table, key, dict, {}, where)
        return value

    def integer(self, table: Table, key: str, default: int, where: str) -> int:
        """:meth:`take` for a whole number, which must also lie within its :data:`LIMITS`."""
        value = self.take(table, key, int, default, where)
        return value if self._within(value, key, where) else default

    def number(self, table: Table, key: str, default: float, where: str) -> float:
        """:meth:`take` for a number, which must also lie within its :data:`LIMITS`."""
        value = self.take(table, key, (int, float), default, where)
        return value if self._within(value, key, where) else default

    def _within(self, value: float, key: str, where: str) -> bool:
        low, high = LIMITS[where + key]
        if not (isinstance(value, int) or math.isfinite(value)) or not low <= value <= high:
            self.add(f"{where}{key} must be between {low:g} and {high:g}, got {value!r}")
            return False
        return True

    def raise_any(self, path: Path | None) -> None:
        """One :class:`ConfigError` naming the file and every problem, when there is one."""
        where = str(path) if path else "configuration (no canon.toml found)"
        if len(self.found) == 1:
            raise ConfigError(f"{where}: {self.found[0]}")
        if self.found:
            listed = "\n  - ".join(self.found)
            raise ConfigError(f"{where}: {len(self.found)} problem(s):\n  - {listed}")


class _Paths(TypedDict):
    fleet: str
    state_dir: str
    evidence_dir: str


def _paths(problems: _Problems, raw: Table, env: EnvOverrides) -> _Paths:
    """``fleet``, ``state_dir``, ``evidence_dir`` as written (the env's overrides first)."""
    fleet = env.fleet or problems.take(raw, "fleet", str, None, "")
    if not fleet:
        problems.add("no fleet: set `fleet` in canon.toml or CCCI_REPO to the operator's test tree")
    return {
        "fleet": fleet or "",  # no fleet is a problem: never resolved
        "state_dir": env.state_dir or problems.take(raw, "state_dir", str, "state", ""),
        "evidence_dir": problems.take(raw, "evidence_dir", str, "evidence", ""),
    }


class _Remote(TypedDict):
    upstream: str
    push: str | None
    branch: str
    branch_set: bool


def _remote(problems: _Problems, raw: Table) -> _Remote:
    """``upstream``, ``push`` (URL templates) and ``branch``."""
    upstream = problems.take(raw, "upstream", str, DEFAULT_UPSTREAM, "")
    push = problems.take(raw, "push", str, None, "") or None
    for key, tmpl in (("upstream", upstream), ("push", push)):
        if tmpl:
            problems.add(*_template_problems(key, tmpl))
    branch = problems.take(raw, "branch", str, "main", "")
    problems.add(*_branch_problems("branch", branch))
    return {"upstream": upstream, "push": push, "branch": branch, "branch_set": "branch" in raw}


class _Backend(TypedDict):
    backend: BackendTable
    cold_parallel: int
    per_server: int


def _backend(problems: _Problems, raw: Table) -> _Backend:
    """``[backend]``: its table as written (``kind`` defaulted) and how many cold runs at once."""
    backend = dict(problems.table(raw, "backend", ""))
    backend.setdefault("kind", "local")
    if backend["kind"] not in BACKENDS:
        problems.add(
            f"backend.kind must be one of {', '.join(BACKENDS)}, got {backend['kind']!r}"
            + did_you_mean(str(backend["kind"]), BACKENDS)
        )
    servers = _str_list(backend.get("servers", []))
    if servers is None:
        problems.add("backend.servers must be a list of server names")
        backend["servers"] = servers = []
    twice = sorted({s for s in servers if servers.count(s) > 1})
    if twice:
        problems.add(f"backend.servers names {', '.join(twice)} more than once")
    if servers and backend.get("context") is not None and backend["kind"] == "swarm":
        problems.add("backend: set either context (one server) or servers (several), not both")
    per_server = problems.integer(backend, "per_server", 1, "backend.")
    default_parallel = (
        len(servers) * per_server if backend["kind"] in ("abra", "swarm") and servers else 1
    )
    cold_parallel = problems.integer(backend, "parallel", max(1, default_parallel), "backend.")
    for key in BACKEND_TEXT:  # what the backends read: of the type they read it as
        problems.take(backend, key, str, None, "backend.")
    problems.take(backend, "timeout_s", (int, float), None, "backend.")
    return {
        # a table with a problem is never used: the problem is raised first
        "backend": backend if _is_backend_table(backend) else BackendTable(kind="local"),
        "cold_parallel": cold_parallel,
        "per_server": per_server,
    }


def _is_backend_table(table: Mapping[str, object]) -> TypeGuard[BackendTable]:
    """Every key of :class:`BackendTable` that ``table`` has, of its declared type."""

    def has(key: str, *types: type) -> bool:
        value = table.get(key)
        return key not in table or isinstance(value, types) and not isinstance(value, bool)

    return (
        isinstance(table.get("kind"), str)
        and ("servers" not in table or _str_list(table["servers"]) is not None)
        and has("per_server", int)
        and has("parallel", int)
        and has("timeout_s", int, float)
        and all(has(key, str) for key in BACKEND_TEXT)
    )


def _str_list(value: object) -> list[str] | None:
    """``value`` when it is a list of strings, else None."""
    if not isinstance(value, list):
        return None
    words = [v for v in value if isinstance(v, str)]
    return words if len(words) == len(value) else None


class _Harness(TypedDict):
    harness_command: list[str]
    harness_timeout_s: float


def _harness(problems: _Problems, raw: Table) -> _Harness:
    """``[harness]``: the command (default: the built-in harness) and its timeout."""
    harness = problems.table(raw, "harness", "")
    written = problems.take(harness, "command", (str, list), None, "harness.")
    words: object = written
    if isinstance(written, str):
        try:
            words = shlex.split(written)
        except ValueError as e:
            problems.add(f"harness.command does not split like a shell line: {e}")
            words = None
    command = _str_list(words)
    if words is not None and not command:  # not all strings, or none at all
        problems.add("harness.command must be a non-empty string or list of strings")
    command = command or [sys.executable, "-m", "canonlib", "harness"]
    timeout = problems.number(harness, "timeout_s", 3600, "harness.")
    return {"harness_command": list(command), "harness_timeout_s": float(timeout)}


class _Sync(TypedDict):
    sync_parallel: int
    sync_timeout_s: float


def _sync(problems: _Problems, raw: Table) -> _Sync:
    """``[sync]``: how many mirrors sync at once, and each git command's timeout."""
    sync = problems.table(raw, "sync", "")
    parallel = problems.integer(sync, "parallel", 8, "sync.")
    timeout = problems.number(sync, "timeout_s", 120, "sync.")
    return {"sync_parallel": parallel, "sync_timeout_s": float(timeout)}


class _Budget(TypedDict):
    disk_budget_bytes: int


def _budget(problems: _Problems, raw: Table) -> _Budget:
    """``[budget]``: the disk budget."""
    budget = problems.table(raw, "budget", "")
    disk = problems.integer(budget, "disk_bytes", 10_000_000_000, "budget.")
    return {"disk_budget_bytes": disk}


class _Log(TypedDict):
    log_path: str | None  # as written: resolved once the config is good
    log_push: str | None
    log_origin: str


def _log(problems: _Problems, raw: Table) -> _Log:
    """``[log]``: the evidence log's repo (as written: resolved once the config is good), where
    it is pushed, and its origin (the checkpoints' first line)."""
    log = problems.table(raw, "log", "")
    log_path = problems.take(log, "path", str, None, "log.")
    log_push = problems.take(log, "push", str, None, "log.") or None
    log_origin = problems.take(log, "origin", str, "canon.invalid/evidence-log", "log.")
    if not log_origin or any(c.isspace() or c in "+" for c in log_origin):
        problems.add(f"log.origin must be one word without spaces or '+', got {log_origin!r}")
    return {"log_path": log_path, "log_push": log_push, "log_origin": log_origin}


class _Sweep(TypedDict):
    min_release_age_s: int


def _sweep(problems: _Problems, raw: Table) -> _Sweep:
    """``[sweep]``: the release cooldown."""
    sweep = problems.table(raw, "sweep", "")
    age = problems.take(sweep, "min_release_age", str, "0", "sweep.")
    try:
        return {"min_release_age_s": parse_age(age)}
    except ValueError as e:
        problems.add(f"sweep.min_release_age: {e}")
        return {"min_release_age_s": 0}


class _Recipes(TypedDict):
    recipes: dict[str, dict[str, str]]


def _recipes(problems: _Problems, raw: Table) -> _Recipes:
    """``[recipes.<name>]``: each recipe's own upstream and branch."""
    recipes: dict[str, dict[str, str]] = {}
    for name, table in problems.table(raw, "recipes", "").items():
        try:
            git.check_recipe_name(name)
        except git.InvalidRef as e:
            problems.add(f"recipes.{name}: {e}")
        if not isinstance(table, dict) or not set(table) <= {"upstream", "branch"}:
            problems.add(f"recipes.{name} may only set upstream and branch")
            continue
        for key in ("upstream", "branch"):
            if key in table and not isinstance(table[key], str):
                problems.add(f"recipes.{name}.{key} must be a string, got {table[key]!r}")
        if isinstance(table.get("branch"), str):
            problems.add(*_branch_problems(f"recipes.{name}.branch", table["branch"]))
        if isinstance(table.get("upstream"), str) and "{" in table["upstream"]:
            problems.add(*_template_problems(f"recipes.{name}.upstream", table["upstream"], False))
        recipes[name] = {k: v for k, v in table.items() if isinstance(v, str)}
    return {"recipes": recipes}


def _dir_problems(problems: _Problems, base: Path, paths: _Paths, env: EnvOverrides) -> None:
    """The state and evidence dirs must be directories canon may create or use."""
    for key in ("state_dir", "evidence_dir"):
        problem = _dir_problem(resolve_path(paths[key], base))
        if problem:
            source = "$CANON_STATE" if key == "state_dir" and env.state_dir else key
            problems.add(f"{source} {problem}; set it to a directory canon may create or use")


def _template_problems(key: str, tmpl: str, needs_recipe: bool = True) -> list[str]:
    """An ``upstream``/``push`` template may hold ``{recipe}`` and nothing else in braces."""
    try:
        fields = [f for _text, f, _spec, _conv in string.Formatter().parse(tmpl) if f is not None]
    except ValueError as e:
        return [f"{key} {tmpl!r} is not a valid template ({e}); write a literal brace as {{{{ }}}}"]
    unknown = sorted({f for f in fields if f != "recipe" or not needs_recipe})
    if unknown:
        names = ", ".join("{" + f + "}" for f in unknown)
        hint = "the only placeholder is {recipe}" if needs_recipe else "this URL is used as written"
        return [f"{key} {tmpl!r} has the unknown placeholder(s) {names}; {hint}"]
    if needs_recipe and "recipe" not in fields:
        return [f"{key} must contain {{recipe}}, got {tmpl!r}"]
    return []


def _branch_problems(key: str, branch: str) -> list[str]:
    problem = git.ref_name_problem(branch)
    return [f"{key} {branch!r} is not a branch name: {problem}"] if problem else []


KERNEL_DIRS = ("/proc", "/sys", "/dev")  # no state or evidence there, even where writable


def _dir_problem(path: Path) -> str | None:
    """Why ``path`` can never be a directory (it, or a parent of it, is a file; it is in a
    kernel filesystem), or None."""
    kernel = next((k for k in KERNEL_DIRS if Path(os.path.realpath(path)).is_relative_to(k)), None)
    if kernel:
        return f"{path} is under {kernel}, the kernel's, not a directory canon may keep files in"
    for p in (path, *path.parents):
        try:
            if p.is_dir():
                return None
            if p.exists():
                where = "is" if p == path else f"lies under {p}, which is"
                return f"{path} {where} a file, not a directory"
        except OSError as e:
            return f"{path}: cannot look at {p}: {e.strerror or e}"
    return None


def _tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def _names(types: type | tuple[type, ...]) -> str:
    names = {
        "str": "a string",
        "int": "an integer",
        "float": "a number",
        "dict": "a table",
        "list": "a list",
        "bool": "true/false",
    }
    return " or ".join(names.get(t.__name__, t.__name__) for t in _tuple(types))


# -- the key reference -------------------------------------------------------------
# Appended last so edits to the loader above rebase cleanly.  docs/reference/canon-toml.md
# is made from this; tests/test_reference.py checks that every key the loader reads is here.


@dataclass(frozen=True)
class ConfigKey:
    type_name: str
    default: str  # as the operator would read it
    meaning: str
    example: str  # TOML, as it would appear under its table


CONFIG_KEYS: dict[str, ConfigKey] = {
    "fleet": ConfigKey(
        "path",
        "(required; or $CCCI_REPO)",
        "The operator's test tree: <fleet>/tests/<recipe>/recipe_meta.py plus each "
        "recipe's functional tests. Relative to canon.toml's directory. $CCCI_REPO "
        "overrides it.",
        'fleet = "fleet"',
    ),
    "state_dir": ConfigKey(
        "path",
        '"state"',
        "Where canon keeps its registry (canon.db), mirrors, slots, checkouts and run "
        "logs. $CANON_STATE overrides it. Back it up: see docs/operating.md.",
        'state_dir = "/srv/canon/state"',
    ),
    "evidence_dir": ConfigKey(
        "path",
        '"evidence"',
        "Where `canon evidence run` writes evidence/<run-id>/.",
        'evidence_dir = "/srv/canon/evidence"',
    ),
    "upstream": ConfigKey(
        "URL template with {recipe}",
        f'"{DEFAULT_UPSTREAM}"',
        "Where each recipe's upstream repo is; {recipe} is the fleet directory name.",
        'upstream = "https://git.coopcloud.tech/coop-cloud/{recipe}.git"',
    ),
    "push": ConfigKey(
        "URL template with {recipe}",
        "(none)",
        "Optional: after each sync, push the mirror (the branch and tags) to this CI mirror.",
        'push = "ssh://git@ci.example.org/mirrors/{recipe}.git"',
    ),
    "branch": ConfigKey(
        "string",
        "unset",
        "The upstream branch the mirror follows (per recipe: [recipes.<name>] branch). "
        "Unset, it is main, or upstream's default branch (with a warning) when upstream has "
        "no main; a branch you set is honoured: when upstream lacks it, the recipe is an ERROR "
        "naming the branches upstream has.",
        'branch = "main"',
    ),
    "backend.kind": ConfigKey(
        f"one of {', '.join(BACKENDS)}",
        '"local"',
        "Where slots live: `local` (a directory per slot, no docker; the demo and tests), "
        "`swarm` (a real Docker Swarm through `docker stack deploy`, what abra does under the "
        "hood) or `abra` (real Co-op Cloud servers through the abra CLI).",
        'kind = "abra"',
    ),
    "backend.servers": ConfigKey(
        "list of strings",
        "[]",
        "Several servers: swarm, the docker contexts (each a swarm manager of its own swarm); "
        "abra, the abra servers. Cold runs spread over them, longest first; each canonical "
        "lives on one (see SERVER in recipe_meta.py). Instead of `context`.",
        'servers = ["canon-s1", "canon-s2"]',
    ),
    "backend.per_server": ConfigKey(
        "int, 1..64",
        "1",
        "Several servers: how many cold runs may run at once on each server.",
        "per_server = 2",
    ),
    "backend.parallel": ConfigKey(
        "int, 1..256",
        "per_server x servers; 1 for local",
        "How many cold runs may run at once.",
        "parallel = 2",
    ),
    "backend.abra": ConfigKey(
        "string",
        '"abra"',
        "abra: the abra executable to run (a name on PATH or a path).",
        'abra = "/usr/local/bin/abra"',
    ),
    "backend.timeout_s": ConfigKey(
        "number",
        "900 (abra), 120 (swarm)",
        "abra: seconds for any one abra command; swarm: for any one docker command (convergence "
        "waits use the recipe's DEPLOY_TIMEOUT_S).",
        "timeout_s = 1200",
    ),
    "backend.context": ConfigKey(
        "string",
        "(the docker CLI's current context)",
        "swarm: the docker context whose engine is a swarm manager, e.g. one made with "
        "`docker context create myserver --docker host=ssh://root@myserver.example.org`.",
        'context = "myserver"',
    ),
    "backend.helper_image": ConfigKey(
        "string",
        '"busybox:1"',
        "swarm: the image of the helper container that archives and restores named volumes "
        "(L3 backup/restore, warm snapshots); it needs sh, tar and rm.",
        'helper_image = "busybox:1.36"',
    ),
    "backend.warm": ConfigKey(
        '"running" or "snapshot"',
        '"running"',
        "swarm: a promoted canonical's stack stays running, or (`snapshot`) its volumes are "
        "archived and its services removed, volumes kept.",
        'warm = "running"',
    ),
    "backend.domain": ConfigKey(
        "string",
        '"canon.localhost"',
        "swarm: slots get DOMAIN=<slot>.<domain> unless the meta's ENV_OVERLAY sets DOMAIN.",
        'domain = "ci.example.org"',
    ),
    "backend.instance": ConfigKey(
        "string",
        "a hash of the state dir",
        "swarm: the label (canon.instance) that keeps this canon's slots apart from another "
        "canon's on the same swarm; cleanup only ever looks at its own.",
        'instance = "canon-ci"',
    ),
    "backend.docker": ConfigKey(
        "string",
        '"docker"',
        "swarm: the docker CLI to run (a name on PATH or a path).",
        'docker = "/usr/bin/docker"',
    ),
    "harness.command": ConfigKey(
        "string or list of strings",
        "the built-in `canon harness`",
        "The cold-run harness to start for each recipe (it gets the CCCI_* environment "
        "and writes $CCCI_RESULT_FILE).",
        'command = ["/srv/ci/bin/recipe-ci", "--cold"]',
    ),
    "harness.timeout_s": ConfigKey(
        "number, 1..604800",
        "3600",
        "Seconds a cold run may take (a recipe's COLD_TIMEOUT_S applies when smaller).",
        "timeout_s = 5400",
    ),
    "sync.parallel": ConfigKey(
        "int, 1..256",
        "8",
        "How many mirrors sync from upstream at once.",
        "parallel = 4",
    ),
    "sync.timeout_s": ConfigKey(
        "number, 1..86400",
        "120",
        "Seconds for one git command against an upstream.",
        "timeout_s = 300",
    ),
    "sweep.min_release_age": ConfigKey(
        'duration ("3d", "12h", "30m", "0")',
        "unset: no cooldown (`canon init` writes 3d)",
        "A release cooldown, like Renovate's minimumReleaseAge: a tag canon's mirror first saw "
        "less than this long ago is SKIP (cooling), with the time it becomes eligible. Age is "
        "counted from when canon first saw the tag (a back-dated tag gains nothing; a tag "
        "re-pointed upstream starts again). A recipe's MIN_RELEASE_AGE overrides it.",
        'min_release_age = "3d"',
    ),
    "budget.disk_bytes": ConfigKey(
        "int, 1..2**62",
        "10_000_000_000",
        "The disk budget for mirrors, slots, evidence and state; the disk_budget "
        "notebook and `canon doctor` check it.",
        "disk_bytes = 20_000_000_000",
    ),
    "log.path": ConfigKey(
        "path",
        '"<state_dir>/log.git"',
        "The evidence log: a bare git repo every evidence run appends one line and a signed "
        "checkpoint to (docs/operating.md, Publishing the evidence log). Reviewers clone it and "
        "run `canon verify --log CLONE`.",
        'path = "/srv/canon/log.git"',
    ),
    "log.push": ConfigKey(
        "git URL",
        "(none)",
        "Optional: after each append, push the log's main branch here (where reviewers clone it "
        "from). A push that fails is said, the evidence run still ends as it would.",
        'push = "ssh://git@git.example.org/ops/canon-log.git"',
    ),
    "log.origin": ConfigKey(
        "string, no spaces",
        '"canon.invalid/evidence-log"',
        "The log's name: the first line of every checkpoint and the key name of its signature "
        "(C2SP signed-note). Set it once, to something unique like your host and path.",
        'origin = "ci.example.org/canon"',
    ),
    "recipes.<name>.upstream": ConfigKey(
        "URL",
        "the `upstream` template",
        "This recipe's upstream, when it is not where the template says (used as written: "
        "no placeholders).",
        'upstream = "https://example.org/nextcloud.git"',
    ),
    "recipes.<name>.branch": ConfigKey(
        "string",
        "the `branch` key",
        "This recipe's upstream branch; set, it is honoured (a missing branch is an ERROR).",
        'branch = "master"',
    ),
}


def unknown_keys(raw: Table) -> list[str]:
    """A problem for each key of canon.toml that is not in :data:`CONFIG_KEYS`, with the closest.

    ``[recipes.<name>]`` tables are checked where they are read; in ``[backend]`` only a key
    close to a known one (a typo) is a problem, since a backend may read keys of its own.
    """
    known = {k for k in CONFIG_KEYS if not k.startswith("recipes.")}
    tables = {k.partition(".")[0] for k in known if "." in k}
    problems = []
    for key, value in raw.items():
        if key == "recipes":
            continue
        if key not in tables:
            names = [key]
        elif isinstance(value, dict):
            names = [f"{key}.{sub}" for sub in value]
        else:
            continue  # a table that is not a table is a type error, said where it is read
        for name in names:
            if name in known:
                continue
            if "." in name:  # compare within the table: a shared prefix is no likeness
                table, _, sub = name.partition(".")
                subs = sorted(k.partition(".")[2] for k in known if k.startswith(table + "."))
                hint = did_you_mean(sub, subs).replace("did you mean ", f"did you mean {table}.")
            else:
                hint = did_you_mean(name, sorted(known | tables))
            if key == "backend" and not hint:
                continue  # a backend may read keys of its own; only a likely typo is an error
            problems.append(f"unknown key {name!r}{hint}")
    return problems
