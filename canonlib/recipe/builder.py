"""A recipe's upstream as a plain git repo on disk: commits and tags made with real git.

A leaf module (it imports only ``git``): the demo, the proofs' scratch
upstreams and the tests all build upstreams with it.
"""

from __future__ import annotations

from pathlib import Path

from canonlib import git

IDENTITY = {
    "user.name": "Recipe Maintainer",
    "user.email": "maintainers@coopcloud.example",
    "commit.gpgsign": "false",
    "tag.gpgsign": "false",
    "init.defaultBranch": "main",
}


class UpstreamRepo:
    """A recipe's upstream: a plain git repo on disk with a main branch."""

    def __init__(self, path: str | Path, branch: str = "main"):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        git.run(["init", "--quiet", "-b", branch, str(self.path)], config=IDENTITY)
        self.n = 0

    @property
    def url(self) -> str:
        return str(self.path)

    def commit(self, files: dict[str, str] | None = None, msg: str | None = None) -> str:
        self.n += 1
        for name, text in (files or {f"file{self.n}.txt": f"change {self.n}\n"}).items():
            p = self.path / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
            if name.endswith(".sh"):
                p.chmod(0o755)
        git.run(["add", "-A"], cwd=self.path)
        git.run(
            ["commit", "--quiet", "--allow-empty", "-m", msg or f"commit {self.n}"],
            cwd=self.path,
            config=IDENTITY,
        )
        return self.head()

    def head(self, ref: str = "HEAD") -> str:
        return git.run(["rev-parse", "--verify", ref], cwd=self.path).stdout.strip()

    def tag(
        self, name: str, ref: str = "HEAD", annotated: bool = True, force: bool = False
    ) -> None:
        args = (
            ["tag"]
            + (["-f"] if force else [])
            + (["-a", "-m", f"release {name}"] if annotated else [])
        )
        git.run([*args, "--", name, ref], cwd=self.path, config=IDENTITY)
