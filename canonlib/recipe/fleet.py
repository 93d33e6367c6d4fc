"""The fleet: the operator's test tree, ``<fleet>/tests/<recipe>/recipe_meta.py``.

A recipe is enrolled when its meta sets ``WARM_CANONICAL = True`` and it is
not a ``FIXTURE``.  A recipe whose meta does not load is kept, with its error,
so the sweep reports it instead of silently dropping it.  A fleet with nothing
enrolled is an error: a sweep over nothing must never look like success.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from canonlib import git
from canonlib.errors import CanonError
from canonlib.recipe.meta import META_FILE, MetaError, RecipeMeta, load_meta


class FleetError(CanonError):
    exit_code = 2


@dataclass
class FleetRecipe:
    name: str
    path: Path
    meta: RecipeMeta | None = None
    error: str | None = None

    @property
    def enrolled(self) -> bool:
        return self.meta is not None and self.meta.enrolled

    @property
    def excluded_reason(self) -> str | None:
        if self.meta is None:
            return None
        if self.meta.FIXTURE:
            return "fixture (FIXTURE = True): never enrolled"
        if not self.meta.WARM_CANONICAL:
            return "not enrolled (WARM_CANONICAL is not True)"
        return None


@dataclass
class Fleet:
    root: Path
    commit: str | None
    dirty: bool
    recipes: list[FleetRecipe] = field(default_factory=list)

    @property
    def tests_dir(self) -> Path:
        return self.root / "tests"

    @property
    def enrolled(self) -> list[FleetRecipe]:
        return [r for r in self.recipes if r.enrolled]

    @property
    def broken(self) -> list[FleetRecipe]:
        return [r for r in self.recipes if r.error]

    @property
    def excluded(self) -> list[tuple[str, str]]:
        return [(r.name, r.excluded_reason) for r in self.recipes if r.excluded_reason]

    def to_sweep(self) -> list[FleetRecipe]:
        """Enrolled recipes and the ones whose meta is broken (they get an ERROR row)."""
        return [r for r in self.recipes if r.enrolled or r.error]

    def require_enrolled(self) -> None:
        if not self.to_sweep():
            raise FleetError(
                f"hollow fleet: no enrolled recipe under {self.tests_dir} "
                f"({len(self.recipes)} recipe dir(s) found, none with WARM_CANONICAL = True). "
                "Check `fleet` in canon.toml / $CCCI_REPO points at the operator's test tree."
            )


def fleet_commit(root: Path) -> tuple[str | None, bool]:
    """The fleet's git commit and whether its tree has uncommitted changes (None outside git)."""
    head = git.run(["rev-parse", "HEAD"], cwd=root, check=False, timeout=30)
    if head.returncode != 0:
        return None, False
    status = git.run(["status", "--porcelain", "--", "."], cwd=root, check=False, timeout=30)
    return head.stdout.strip(), bool(status.stdout.strip())


def discover(root: str | Path) -> Fleet:
    root = Path(root)
    tests = root / "tests"
    if not tests.is_dir():
        raise FleetError(
            f"fleet {root}: no tests/ directory (expected {tests}/<recipe>/{META_FILE}); "
            "set `fleet` in canon.toml or $CCCI_REPO to the operator's test tree"
        )
    commit, dirty = fleet_commit(root)
    fleet = Fleet(root, commit, dirty)
    for d in sorted(p for p in tests.iterdir() if p.is_dir() and os.path.lexists(p / META_FILE)):
        problem = None
        try:
            git.check_recipe_name(d.name)
        except git.InvalidRef as e:
            problem = str(e)
        if problem:
            fleet.recipes.append(FleetRecipe(d.name, d, error=f"meta: {problem}"))
            continue
        try:
            fleet.recipes.append(FleetRecipe(d.name, d, meta=load_meta(d)))
        except MetaError as e:
            fleet.recipes.append(FleetRecipe(d.name, d, error=f"meta: {e}"))
    return fleet
