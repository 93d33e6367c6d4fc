"""Real upstream git repos for tests: commits, annotated and lightweight tags, force-pushes."""

from __future__ import annotations

import subprocess
from pathlib import Path

ID = ["-c", "user.name=Upstream Maintainer", "-c", "user.email=maint@example.org",
      "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"]  # fmt: skip


def git(*args: str, cwd: Path | str | None = None, input: str | None = None) -> str:
    proc = subprocess.run(["git", *ID, *args], cwd=cwd, capture_output=True, text=True, input=input,
                          check=False, timeout=120)  # fmt: skip
    if proc.returncode:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


class Upstream:
    """A non-bare upstream repo with a main branch."""

    def __init__(self, path: Path, branch: str = "main"):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        git("init", "-q", "-b", branch, str(self.path))
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
        git("add", "-A", cwd=self.path)
        git("commit", "-q", "--allow-empty", "-m", msg or f"commit {self.n}", cwd=self.path)
        return self.head()

    def head(self, ref: str = "HEAD") -> str:
        return git("rev-parse", ref, cwd=self.path).strip()

    def tag(
        self, name: str, ref: str = "HEAD", annotated: bool = True, force: bool = False
    ) -> None:
        args = (
            ["tag"]
            + (["-f"] if force else [])
            + (["-a", "-m", f"release {name}"] if annotated else [])
        )
        git(*args, "--", name, ref, cwd=self.path)

    def delete_tag(self, name: str) -> None:
        git("tag", "-d", "--", name, cwd=self.path)

    def reset_hard(self, ref: str) -> None:
        git("reset", "-q", "--hard", ref, cwd=self.path)

    def ls_remote(self, branch: str = "main") -> str:
        return git("ls-remote", "--", str(self.path), f"refs/heads/{branch}", "refs/tags/*")


def ls_remote(repo: Path | str, branch: str = "main") -> str:
    return git("ls-remote", "--", str(repo), f"refs/heads/{branch}", "refs/tags/*")


def fast_import_tags(up: Upstream, n_commits: int, tags: list[tuple[str, int, bool]]) -> None:
    """Add commits and tags in one ``git fast-import`` (tags: name, commit index, annotated)."""
    lines = []
    for i in range(1, n_commits + 1):
        body = f"release {i}\n"
        lines += ["commit refs/heads/main", f"mark :{i}",
                  f"committer Upstream <u@example.org> {1700000000 + i} +0000",
                  f"data {len(body)}", body.rstrip("\n")]  # fmt: skip
        if i == 1 and up.n:
            lines.append("from refs/heads/main^0")
        lines += ["M 644 inline version.txt", f"data {len(body)}", body.rstrip("\n"), ""]
    for name, idx, annotated in tags:
        if annotated:
            msg = f"release {name}\n"
            lines += [f"tag {name}", f"from :{idx}", "tagger Upstream <u@example.org> 1700000000 +0000",
                      f"data {len(msg)}", msg.rstrip("\n"), ""]  # fmt: skip
        else:
            lines += [f"reset refs/tags/{name}", f"from :{idx}", ""]
    git("fast-import", "--quiet", cwd=up.path, input="\n".join(lines) + "\n")
    git("reset", "-q", "--hard", "main", cwd=up.path)
