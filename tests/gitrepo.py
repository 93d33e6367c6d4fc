"""Real upstream git repos for tests: commits, annotated and lightweight tags, force-pushes."""

from __future__ import annotations

import subprocess
from pathlib import Path

from canonlib.recipe.builder import IDENTITY, UpstreamRepo

ID = [arg for k, v in IDENTITY.items() for arg in ("-c", f"{k}={v}")]


def git(*args: str, cwd: Path | str | None = None, input: str | None = None) -> str:
    proc = subprocess.run(
        ["git", *ID, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        input=input,
        check=False,
        timeout=120,
    )
    if proc.returncode:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


class Upstream(UpstreamRepo):
    """canon's demo upstream repo, plus what tests do to upstreams behind canon's back."""

    def delete_tag(self, name: str) -> None:
        git("tag", "-d", "--", name, cwd=self.path)

    def reset_hard(self, ref: str) -> None:
        git("reset", "-q", "--hard", ref, cwd=self.path)

    def ls_remote(self, branch: str = "main") -> str:
        return ls_remote(self.path, branch)


def ls_remote(repo: Path | str, branch: str = "main") -> str:
    return git("ls-remote", "--", str(repo), f"refs/heads/{branch}", "refs/tags/*")


def fast_import_tags(up: Upstream, n_commits: int, tags: list[tuple[str, int, bool]]) -> None:
    """Add commits and tags in one ``git fast-import`` (tags: name, commit index, annotated)."""
    lines = []
    for i in range(1, n_commits + 1):
        body = f"release {i}\n"
        lines += [
            "commit refs/heads/main",
            f"mark :{i}",
            f"committer Upstream <u@example.org> {1700000000 + i} +0000",
            f"data {len(body)}",
            body.rstrip("\n"),
        ]
        if i == 1 and up.n:
            lines.append("from refs/heads/main^0")
        lines += ["M 644 inline version.txt", f"data {len(body)}", body.rstrip("\n"), ""]
    for name, idx, annotated in tags:
        if annotated:
            msg = f"release {name}\n"
            lines += [
                f"tag {name}",
                f"from :{idx}",
                "tagger Upstream <u@example.org> 1700000000 +0000",
                f"data {len(msg)}",
                msg.rstrip("\n"),
                "",
            ]
        else:
            lines += [f"reset refs/tags/{name}", f"from :{idx}", ""]
    git("fast-import", "--quiet", cwd=up.path, input="\n".join(lines) + "\n")
    git("reset", "-q", "--hard", "main", cwd=up.path)
