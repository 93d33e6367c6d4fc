"""``canon init DIR``: a working start for a new operator.

Writes ``DIR/canon.toml`` and a fleet (a git repo) with one example recipe:
its ``recipe_meta.py`` (every key, commented, made from :data:`meta.KEY_HELP`)
and a functional test.  ``canon --config DIR/canon.toml sweep --plan`` then says
what a sweep would do.  Never overwrites: an existing canon.toml or fleet is an
error naming it.
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

from canonlib import git
from canonlib.errors import UsageError
from canonlib.recipe.meta import KEY_HELP, KEYS, META_FILE

EXAMPLE_RECIPE = "custom-html"
FALLBACK_IDENTITY = {"user.name": "canon init", "user.email": "canon-init@localhost.invalid"}

CONFIG = """\
# canon.toml, written by `canon init`. Every key: docs/reference/canon-toml.md
# (or `canon config example`). Relative paths are relative to this file.
fleet = "fleet"                 # the test tree: fleet/tests/<recipe>/recipe_meta.py
state_dir = "state"             # registry, mirrors, slots -- back it up (docs/operating.md)
evidence_dir = "evidence"       # `canon evidence run` writes here
# each recipe's upstream; {recipe} is its directory name under fleet/tests/
upstream = "https://git.coopcloud.tech/coop-cloud/{recipe}.git"
# branch = "main"               # unset: main, else upstream's default branch

[backend]
kind = "local"                  # a slot is a directory; "abra" deploys to real servers
# servers = ["swarm1.example.org"]

[harness]
timeout_s = 3600                # a cold run's deadline

[sweep]
min_release_age = "3d"          # a tag younger than this (since canon first saw it) waits

# a recipe whose upstream is elsewhere:
# [recipes.my-recipe]
# upstream = "https://example.org/my-recipe.git"
# branch = "master"
"""

FUNCTIONAL_TEST = '''\
"""Functional tests for {recipe}: rung L4 of every cold run, against the deployed slot.

canon runs pytest on this directory with the slot's environment: CANON_BACKEND,
CANON_SLOT, and for the local backend CANON_APP_DIR (the deployed recipe tree),
CANON_DATA_DIR and CANON_SECRETS_DIR; for abra, CANON_DOMAIN and CANON_SERVER.
A run that executes no test is not green: no evidence is not a pass.
"""

import os
import pathlib
import urllib.request


def test_recipe_is_deployed():
    if os.environ.get("CANON_BACKEND") == "local":
        app = pathlib.Path(os.environ["CANON_APP_DIR"])
        assert (app / "compose.yml").is_file()
        assert (app / ".env.sample").is_file()
    else:
        url = f"https://{{os.environ['CANON_DOMAIN']}}/"
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200
'''

README = """\
# fleet

The operator's test tree for canon: one directory per recipe under `tests/`,
each with a `recipe_meta.py` (read without executing it; every key is in
`canon meta keys`) and that recipe's functional tests (pytest, rung L4).
Commit changes: every evidence run records the fleet commit it read.
"""

ENABLED = {"WARM_CANONICAL"}


def meta_sample(recipe: str) -> str:
    """A recipe_meta.py with every key, commented; only the enrolment line is live."""
    out = [
        f'"""{recipe}: what canon needs to know to keep its canonical.',
        "",
        "Only NAME = <literal> lines; canon never executes this file.",
        'Every key: `canon meta keys` or docs/reference/recipe-meta.md."""',
        "",
    ]
    for name, key in KEYS.items():
        help_ = KEY_HELP[name]
        out.append(f"# {name} ({key.type_name}; default {key.default!r})")
        out += textwrap.wrap(help_.meaning, 86, initial_indent="#   ", subsequent_indent="#   ")
        out.append(help_.example if name in ENABLED else f"# {help_.example}")
        out.append("")
    return "\n".join(out)


@dataclass(frozen=True)
class Scaffold:
    root: Path
    config: Path
    fleet: Path
    meta: Path
    test: Path


def _commit(fleet: Path) -> None:
    git.run(["init", "--quiet", "-b", "main", str(fleet)])
    git.run(["add", "-A"], cwd=fleet)
    has_identity = git.run(["config", "user.email"], cwd=fleet, check=False).stdout.strip()
    git.run(
        ["commit", "--quiet", "-m", f"fleet: start with {EXAMPLE_RECIPE} (canon init)"],
        cwd=fleet,
        config=None if has_identity else FALLBACK_IDENTITY,
    )


def init(
    root: str | os.PathLike[str], recipe: str = EXAMPLE_RECIPE, *, force: bool = False
) -> Scaffold:
    """Write canon.toml and a committed fleet with ``recipe`` under ``root``.

    ``root`` must be new or an empty directory, not a symlink; ``force`` writes into a
    non-empty one (or through a symlink) beside what is there.  An existing canon.toml or
    fleet is refused even then.
    """
    git.check_recipe_name(recipe)
    root = Path(root).absolute()
    config, fleet = root / "canon.toml", root / "fleet"
    for path in (config, fleet):
        if path.exists():
            raise UsageError(
                f"{path} already exists; `canon init` never overwrites: pick a new DIR "
                "or move it away"
            )
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} is a file; `canon init DIR` needs a directory (new or empty)")
    if not force:
        _refuse_unless_new(root)
    recipe_dir = fleet / "tests" / recipe
    try:
        recipe_dir.mkdir(parents=True)
        (fleet / "README.md").write_text(README)
        meta = recipe_dir / META_FILE
        meta.write_text(meta_sample(recipe))
        test = recipe_dir / f"test_{recipe.replace('-', '_')}.py"
        test.write_text(FUNCTIONAL_TEST.format(recipe=recipe))
        _commit(fleet)
        config.write_text(CONFIG)
    except OSError as e:
        raise UsageError(f"cannot write the scaffold under {root}: {e.strerror or e}") from None
    return Scaffold(root, config, fleet, meta, test)


def _refuse_unless_new(root: Path) -> None:
    """``canon init DIR`` writes into a new or empty directory, never beside someone's files."""
    again = "pick a new DIR, or pass --force to write canon.toml and fleet/ beside what is there"
    if root.is_symlink():
        raise UsageError(f"{root} is a symbolic link (to {os.readlink(root)}); {again}")
    if root.is_dir():
        try:
            with os.scandir(root) as entries:
                first = next(entries, None)
        except OSError as e:
            raise UsageError(f"cannot read {root}: {e.strerror or e}") from None
        if first is not None:
            raise UsageError(f"{root} is not empty (it holds {first.name!r}); {again}")


def next_steps(s: Scaffold, canon: str = "canon") -> str:
    cfg = os.path.relpath(s.config)
    return textwrap.dedent(f"""\
        wrote {os.path.relpath(s.config)}
        wrote {os.path.relpath(s.fleet)} (a git repo) with {os.path.relpath(s.meta)}
          and {os.path.relpath(s.test)}
        next:
          {canon} --config {cfg} sweep --plan    # what a sweep would do (syncs the mirrors only)
          edit the recipe's upstream in {cfg} or add recipes under {os.path.relpath(s.fleet)}/tests/
          {canon} --config {cfg} sweep           # the weekly job
        docs: docs/getting-started.md in canon's repo""")
