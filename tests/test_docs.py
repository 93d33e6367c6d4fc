"""The newcomer path, as the docs tell it: every block marked ```sh runnable``` in docs/
runs as written, page by page, in a fresh directory, with `canon` on PATH.

The docs point at the real upstream (https://git.coopcloud.tech/…); the test's HOME
rewrites that URL to a local recipe repo with git's own `url.<base>.insteadOf`, so
nothing reaches the network and the path is the real one otherwise.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.test_init import custom_html_upstream, newcomer_env

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
FENCE = re.compile(r"^```sh runnable\n(.*?)^```$", re.S | re.M)
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")


def runnable(page: Path) -> list[str]:
    return FENCE.findall(page.read_text())


def pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if runnable(p))


def test_the_newcomer_path_is_covered():
    names = {p.name for p in pages()}
    assert {"getting-started.md", "concepts.md", "labels.md", "operating.md"} <= names
    start = "\n".join(runnable(DOCS / "getting-started.md"))
    for step in ("canon init mycanon", "sweep --plan", "canon --config mycanon/canon.toml sweep\n"):
        assert step in start


@pytest.mark.slow
@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_runnable_examples_run_as_written(tmp_path, page):
    custom_html_upstream(tmp_path / "upstreams")
    work = tmp_path / "work"
    work.mkdir()
    env = newcomer_env(tmp_path, tmp_path / "upstreams")
    outputs = []
    for i, block in enumerate(runnable(page), start=1):
        r = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        where = f"{page.relative_to(REPO)} block {i}:\n{block}"
        assert r.returncode == 0, f"{where}\nexit {r.returncode}\n{r.stdout}\n{r.stderr}"
        assert "Traceback" not in r.stdout + r.stderr, where
        outputs.append(r.stdout)
    text = "\n".join(outputs)
    if page.name == "getting-started.md":  # what the page says each step shows
        assert "would cold-test 1.13.0+1.31.1" in text
        assert "PASS (promoted)" in text and "warm-custom-html" in text
        assert "HOLD  (str or None; default None)" in text
    if page.name == "labels.md":
        held = text.index("custom-html: held (HOLD in its recipe_meta.py)")
        assert text.index("custom-html: would cold-test 1.13.0+1.31.1") > held
    if page.name == "operating.md":
        assert "exit 2: refused; the canonical is untouched" in text
        assert "SKIP (no-new-version)" in text.rstrip().splitlines()[-2]  # the last sweep's row
    if page.name == "concepts.md":
        assert text.splitlines()[-1] == "1.10.0+1.29.0"


def test_docs_link_only_inside_the_repo():
    for page in [REPO / "README.md", *DOCS.rglob("*.md")]:
        text = page.read_text()
        assert "../shared" not in text, page
        for target, _anchor in LINK.findall(text):
            if re.match(r"[a-z]+://", target):
                continue
            resolved = (page.parent / target).resolve()
            assert resolved.exists(), f"{page.relative_to(REPO)}: broken link {target}"
            assert REPO in resolved.parents or resolved == REPO, f"{page}: {target} leaves the repo"
