"""A small real workspace: upstream recipe repos, a fleet tree, canon.toml, state dir."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from canonlib.config import load_config
from canonlib.demo.fleet import FLEET_TEST, META, recipe_files
from canonlib.recipe.meta import load_meta
from canonlib.recipe.mirror import Mirror
from tests.gitrepo import Upstream


class Workspace:
    def __init__(self, root: Path):
        self.root = root
        self.fleet = root / "fleet"
        (self.fleet / "tests").mkdir(parents=True)
        self.upstreams: dict[str, Upstream] = {}
        (root / "canon.toml").write_text(
            textwrap.dedent(f'''
            fleet = "fleet"
            state_dir = "state"
            evidence_dir = "evidence"
            upstream = "{root}/upstream/{{recipe}}"
            [harness]
            command = ["{sys.executable}", "-m", "canonlib", "harness"]
            timeout_s = 120
        ''')
        )

    @property
    def config(self):
        return load_config(self.root / "canon.toml")

    def recipe(self, name: str, meta: str = META, test: str | None = FLEET_TEST) -> Upstream:
        up = Upstream(self.root / "upstream" / name)
        self.upstreams[name] = up
        d = self.fleet / "tests" / name
        d.mkdir(parents=True)
        (d / "recipe_meta.py").write_text(meta)
        if test is not None:
            (d / f"test_{name.replace('-', '_')}.py").write_text(test)
        return up

    def release(self, name: str, tag: str, annotated: bool = True, **kw) -> str:
        up = self.upstreams[name]
        commit = up.commit(recipe_files(name, tag, **kw), f"release {tag}")
        up.tag(tag, annotated=annotated)
        return commit

    def meta(self, name: str):
        return load_meta(self.fleet / "tests" / name)

    def mirror(self, name: str) -> Mirror:
        c = self.config
        return Mirror(
            name, c.mirror_path(name), c.upstream_url(name), checkouts_dir=c.state_dir / "checkouts"
        )
