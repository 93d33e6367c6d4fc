"""``canon.toml`` and its environment overrides.

Found via ``canon --config F``, else ``$CANON_CONFIG``, else ``./canon.toml``.
``CCCI_REPO`` overrides the fleet root and ``CANON_STATE`` the state dir.
Relative paths are relative to the config file's directory.  A bad config is
one :class:`ConfigError` that lists every problem.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UsageError

DEFAULT_UPSTREAM = "https://git.coopcloud.tech/coop-cloud/{recipe}.git"
BACKENDS = ("local", "abra")

EXAMPLE = """\
# canon.toml -- every key is optional except `fleet`
fleet = "fleet"                 # the operator's test tree: <fleet>/tests/<recipe>/recipe_meta.py
state_dir = "state"             # registry, mirrors, slots
evidence_dir = "evidence"       # evidence runs
upstream = "https://git.coopcloud.tech/coop-cloud/{recipe}.git"
# push = "ssh://git@ci.example.org/mirrors/{recipe}.git"   # optional CI mirror
branch = "main"

[backend]
kind = "local"                  # or "abra"
# servers = ["swarm1.example.org"]   # abra: one cold run per server at a time
# parallel = 2                  # cold runs at once (default: one per abra server; 1 for local)

[harness]
# command = ["canon", "harness"]      # default: the built-in harness
timeout_s = 3600

[sync]
parallel = 8
timeout_s = 120

[budget]
disk_bytes = 10_000_000_000

# [recipes.nextcloud]
# upstream = "https://example.org/nextcloud.git"
# branch = "master"
"""


class ConfigError(UsageError):
    pass


@dataclass(frozen=True)
class Config:
    path: Path | None
    fleet: Path
    state_dir: Path
    evidence_dir: Path
    upstream: str = DEFAULT_UPSTREAM
    push: str | None = None
    branch: str = "main"
    backend: dict[str, Any] = field(default_factory=lambda: {"kind": "local"})
    harness_command: list[str] = field(default_factory=list)
    harness_timeout_s: float = 3600.0
    sync_parallel: int = 8
    sync_timeout_s: float = 120.0
    cold_parallel: int = 1
    disk_budget_bytes: int = 10_000_000_000
    recipes: dict[str, dict[str, str]] = field(default_factory=dict)
    digest: str = ""

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


def _path(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return (p if p.is_absolute() else base / p).resolve()


def load_config(
    explicit: str | os.PathLike[str] | None = None, *, env_overrides: bool = True
) -> Config:
    """Load and check the configuration; raise :class:`ConfigError` naming every problem.

    ``env_overrides=False`` ignores CCCI_REPO / CANON_STATE (a proof's scratch config).
    """
    environ = os.environ if env_overrides else {}
    path = find_config_path(explicit)
    raw: dict[str, Any] = {}
    blob = b""
    if path is not None:
        try:
            blob = path.read_bytes()
            raw = tomllib.loads(blob.decode("utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"config file {path} not found; create one (see `canon config example`) "
                "or point --config / $CANON_CONFIG at it"
            ) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from None
        path = path.resolve()
    base = path.parent if path else Path.cwd()
    problems: list[str] = []

    def take(
        table: dict[str, Any], key: str, types: type | tuple[type, ...], default: Any, where: str
    ) -> Any:
        if key not in table:
            return default
        value = table[key]
        if not isinstance(value, types) or isinstance(value, bool) and bool not in _tuple(types):
            problems.append(f"{where}{key} must be {_names(types)}, got {value!r}")
            return default
        return value

    known = {"fleet", "state_dir", "evidence_dir", "upstream", "push", "branch", "backend",
             "harness", "sync", "budget", "recipes"}  # fmt: skip
    problems += [f"unknown key {k!r}" for k in raw if k not in known]

    fleet_s = environ.get("CCCI_REPO") or take(raw, "fleet", str, None, "")
    if not fleet_s:
        problems.append(
            "no fleet: set `fleet` in canon.toml or CCCI_REPO to the operator's test tree"
        )
    state_s = environ.get("CANON_STATE") or take(raw, "state_dir", str, "state", "")
    evidence_s = take(raw, "evidence_dir", str, "evidence", "")
    upstream = take(raw, "upstream", str, DEFAULT_UPSTREAM, "")
    push = take(raw, "push", str, None, "") or None
    for key, tmpl in (("upstream", upstream), ("push", push)):
        if tmpl and "{recipe}" not in tmpl:
            problems.append(f"{key} must contain {{recipe}}, got {tmpl!r}")
    branch = take(raw, "branch", str, "main", "")

    backend = dict(take(raw, "backend", dict, {}, ""))
    backend.setdefault("kind", "local")
    if backend["kind"] not in BACKENDS:
        problems.append(
            f"backend.kind must be one of {', '.join(BACKENDS)}, got {backend['kind']!r}"
        )
    if "servers" in backend and not (
        isinstance(backend["servers"], list) and all(isinstance(s, str) for s in backend["servers"])
    ):
        problems.append("backend.servers must be a list of server names")

    default_parallel = len(backend.get("servers") or []) if backend["kind"] == "abra" else 1
    cold_parallel = backend.get("parallel", max(1, default_parallel))
    if not isinstance(cold_parallel, int) or isinstance(cold_parallel, bool) or cold_parallel < 1:
        problems.append(f"backend.parallel must be a whole number >= 1, got {cold_parallel!r}")
        cold_parallel = 1

    harness = take(raw, "harness", dict, {}, "")
    command = take(harness, "command", (str, list), None, "harness.")
    if isinstance(command, str):
        command = shlex.split(command)
    if isinstance(command, list) and not all(isinstance(c, str) for c in command) or command == []:
        problems.append("harness.command must be a non-empty string or list of strings")
        command = None
    command = command or [sys.executable, "-m", "canonlib", "harness"]
    harness_timeout = take(harness, "timeout_s", (int, float), 3600, "harness.")

    sync = take(raw, "sync", dict, {}, "")
    parallel = take(sync, "parallel", int, 8, "sync.")
    if parallel < 1:
        problems.append(f"sync.parallel must be at least 1, got {parallel}")
    sync_timeout = take(sync, "timeout_s", (int, float), 120, "sync.")
    budget = take(take(raw, "budget", dict, {}, ""), "disk_bytes", int, 10_000_000_000, "budget.")

    recipes = take(raw, "recipes", dict, {}, "")
    for name, table in recipes.items():
        if not isinstance(table, dict) or not set(table) <= {"upstream", "branch"}:
            problems.append(f"recipes.{name} may only set upstream and branch")

    if problems:
        where = str(path) if path else "configuration (no canon.toml found)"
        raise ConfigError(f"{where}: {len(problems)} problem(s):\n  - " + "\n  - ".join(problems))

    overrides = "|".join(f"{k}={environ.get(k, '')}" for k in ("CCCI_REPO", "CANON_STATE"))
    digest = hashlib.sha256(blob + b"\0" + overrides.encode()).hexdigest()
    return Config(
        path=path, fleet=_path(base, fleet_s), state_dir=_path(base, state_s),
        evidence_dir=_path(base, evidence_s), upstream=upstream, push=push, branch=branch,
        backend=backend, harness_command=list(command), harness_timeout_s=float(harness_timeout),
        sync_parallel=parallel, sync_timeout_s=float(sync_timeout), cold_parallel=cold_parallel,
        disk_budget_bytes=budget,
        recipes=recipes, digest=digest,
    )  # fmt: skip


def _tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def _names(types: type | tuple[type, ...]) -> str:
    names = {"str": "a string", "int": "an integer", "float": "a number", "dict": "a table",
             "list": "a list", "bool": "true/false"}  # fmt: skip
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
        '"main"',
        "The upstream branch the mirror follows (per recipe: [recipes.<name>] branch).",
        'branch = "main"',
    ),
    "backend.kind": ConfigKey(
        f"one of {', '.join(BACKENDS)}",
        '"local"',
        "Where slots live: `local` (a directory per slot, no docker; the demo and tests) "
        "or `abra` (real Co-op Cloud servers through the abra CLI).",
        'kind = "abra"',
    ),
    "backend.servers": ConfigKey(
        "list of strings",
        "[]",
        "abra: the servers cold runs and canonicals deploy to; one cold run per server at a time.",
        'servers = ["swarm1.example.org"]',
    ),
    "backend.parallel": ConfigKey(
        "int >= 1",
        "one per abra server; 1 for local",
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
        "900",
        "abra: seconds for any one abra command.",
        "timeout_s = 1200",
    ),
    "harness.command": ConfigKey(
        "string or list of strings",
        "the built-in `canon harness`",
        "The cold-run harness to start for each recipe (it gets the CCCI_* environment "
        "and writes $CCCI_RESULT_FILE).",
        'command = ["/srv/ci/bin/recipe-ci", "--cold"]',
    ),
    "harness.timeout_s": ConfigKey(
        "number",
        "3600",
        "Seconds a cold run may take (a recipe's COLD_TIMEOUT_S applies when smaller).",
        "timeout_s = 5400",
    ),
    "sync.parallel": ConfigKey(
        "int >= 1",
        "8",
        "How many mirrors sync from upstream at once.",
        "parallel = 4",
    ),
    "sync.timeout_s": ConfigKey(
        "number",
        "120",
        "Seconds for one git command against an upstream.",
        "timeout_s = 300",
    ),
    "budget.disk_bytes": ConfigKey(
        "int",
        "10_000_000_000",
        "The disk budget for mirrors, slots, evidence and state; the disk_budget "
        "notebook and `canon doctor` check it.",
        "disk_bytes = 20_000_000_000",
    ),
    "recipes.<name>.upstream": ConfigKey(
        "URL",
        "the `upstream` template",
        "This recipe's upstream, when it is not where the template says.",
        'upstream = "https://example.org/nextcloud.git"',
    ),
    "recipes.<name>.branch": ConfigKey(
        "string",
        "the `branch` key",
        "This recipe's upstream branch.",
        'branch = "master"',
    ),
}
