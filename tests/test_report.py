"""The report end to end: a real weekly evidence run (real papermill, real kernels) on a small fleet
with a PASS, a FAIL and an ERROR recipe writes summary.md and index.html, hashed in the manifest;
`canon investigate` picks the recipe failing longest without touching the registry; and the page
is opened in a real headless Chromium (Debian's `chromium`) and checked as a person would see it.
The only stand-in is none: no fake abra is needed (local backend)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from functools import partial
from pathlib import Path

import pytest

from canonlib.evidence.manifest import EVIDENCE_FORMAT, MANIFEST
from canonlib.evidence.report import ROW_COLOURS, latest_dir
from canonlib.evidence.run import run_suite
from canonlib.state.registry import Registry
from canonlib.sweep.orchestrate import sweep
from tests import cli
from tests.need import need
from tests.workspace import Workspace

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def week(tmp_path_factory):
    """Two weeks of a small fleet; the second as the weekly evidence suite."""
    root = tmp_path_factory.mktemp("report") / "ws"
    root.mkdir()
    ws = Workspace(root)
    ws.recipe("good")
    ws.release("good", "1.0.0+1.0")
    ws.recipe("red")
    ws.release("red", "1.0.0+1.0")
    ws.recipe("gone")  # its upstream vanishes: an ERROR every week
    shutil.rmtree(root / "upstream" / "gone")
    sweep(ws.config)  # week 1: good and red promoted, gone ERROR
    ws.release("red", "2.0.0+2.0", app_conf="broken=true  # 2.0.0 is broken\n")
    ws.release("good", "1.1.0+1.0")
    progress: list[str] = []
    step = root / "step-summary.md"
    step.write_text("earlier step\n")
    saved = os.environ.get("GITHUB_STEP_SUMMARY")  # on a GitHub runner: the runner's own
    os.environ["GITHUB_STEP_SUMMARY"] = str(step)
    try:
        ev = run_suite(ws.config, "weekly", out=lambda s: None, progress=progress.append)
    finally:
        if saved is None:
            del os.environ["GITHUB_STEP_SUMMARY"]
        else:
            os.environ["GITHUB_STEP_SUMMARY"] = saved
    return ws, ev, progress


# in this process, as this file always ran them: no signal, stream or exit path is tested here
canon = partial(cli.canon, in_process=True)


def test_every_run_writes_a_summary_and_an_index_hashed_in_the_manifest(week):
    ws, ev, _ = week
    files = json.loads((ev.dir / MANIFEST).read_text())["predicate"]["canon"]["files"]
    for name in ("summary.md", "index.html", "sweep.html", "determinism.html", "disk_budget.html"):
        assert name in files, name
    summary = (ev.dir / "summary.md").read_text()
    recipes = summary.split("## Recipes")[1].split("## ")[0]
    rows = {
        line.split("|")[1].strip(): line for line in recipes.splitlines() if line.startswith("| ")
    }
    assert (
        "FAIL (level" in rows["red"] and "L2 upgrade" in rows["red"].split("|")[3]
    )  # the rung, in words
    assert (
        "ERROR (see reason)" in rows["gone"]
        and "sync: gone: cannot fetch" in rows["gone"].split("|")[3]
    )
    assert "PASS (promoted)" in rows["good"]
    assert re.search(r"\| good \| 1\.0\.0\+1\.0 \| 1\.1\.0\+1\.0 \| yes \|", summary)
    assert re.search(r"\| gone \| - \| - \| no \|", summary)  # missing -> missing is no change
    assert "NaN" not in summary and not re.search(r"\| \d+\.0 \|", recipes)  # levels, counts: ints
    assert "## Disk" in summary and "budget" in summary
    assert (
        ws.root / "step-summary.md"
    ).read_text() == "earlier step\n" + summary + "\n"  # appended


def test_the_reports_verify_with_the_rest(week):
    ws, ev, _ = week
    rc, out, _ = canon(ws, "verify", str(ev.dir))
    assert rc == 0, out
    page = (ev.dir / "index.html").read_text()
    (ev.dir / "index.html").write_text(page.replace("ERROR", "PASS"))
    try:
        rc, out, _ = canon(ws, "verify", str(ev.dir))
        assert rc == 1 and "index.html" in out
    finally:  # exactly as it was (replacing back would also turn PASSED into ERRORED)
        (ev.dir / "index.html").write_text(page)


@pytest.mark.parametrize("page", ["summary.md", "index.html"])
def test_a_report_page_rewritten_with_its_hash_fails_verify_naming_the_page_and_line(
    week, tmp_path, page
):
    """The quiet rewrite: the page a person reads says PASS where the run said FAIL, and its
    sha256 in the manifest is rewritten to match (an unsigned dir has nothing else to catch it)."""
    from canonlib.evidence.manifest import sha256_file

    ws, ev, _ = week
    d = tmp_path / "copy"
    shutil.copytree(ev.dir, d)
    rc, out, _ = canon(ws, "verify", str(d))
    ok = f"ok    report {page}: rendered from the recorded values (format {EVIDENCE_FORMAT})"
    assert rc == 0 and ok in out, out
    text = (d / page).read_text()
    assert "FAIL (level" in text
    (d / page).write_text(text.replace("FAIL (level", "PASS (level"))
    m = json.loads((d / MANIFEST).read_text())
    m["predicate"]["canon"]["files"][page] = sha256_file(d / page)
    (d / MANIFEST).write_text(json.dumps(m, indent=1))
    rc, out, _ = canon(ws, "verify", str(d))
    assert rc == 1, out
    bad = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert len(bad) == 2, out
    assert f"report {page}" in bad[1] and "PASS (level" in bad[1], out
    assert "edited after the run" in bad[1]
    # and the evidence log holds the manifest as the run wrote it
    assert bad[0].startswith("FAIL  log entry is this run: differs in manifest sha256"), out


def test_progress_names_each_notebook_and_each_recipe_as_it_lands(week):
    _, _, progress = week
    text = "\n".join(progress)
    assert "running sweep ..." in text and "disk_budget: ok" in text
    # what starts is said when it starts, before the row that ends it
    started = next(
        i
        for i, line in enumerate(progress)
        if ": red: cold-testing 2.0.0+2.0 (L2 from canonical 1.0.0+1.0) ..." in line
    )
    ended = next(i for i, line in enumerate(progress) if ": red: run -> FAIL" in line)
    assert started < ended
    assert any(": good: green: promoting 1.1.0+1.0 ..." in line for line in progress), text
    for recipe, label in (
        ("good", "PASS (promoted)"),
        ("red", "FAIL (level"),
        ("gone", "ERROR (sync:"),
    ):
        assert re.search(rf": {recipe}: \S+ -> {re.escape(label)}", text), (recipe, text)
    assert text.index(": red: ") < text.index("  sweep: ")  # streamed during the notebook
    log = week[1].dir / "logs" / "sweep.log"
    assert log.exists() and "Executing" in log.read_text()  # papermill's log, kept


def test_latest_and_open_without_a_display(week, monkeypatch, tmp_path):
    ws, ev, _ = week
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert latest_dir(ws.config.evidence_dir) == ev.dir
    rc, out, _ = canon(ws, "evidence", "latest")
    assert rc == 0 and out.strip() == str(ev.dir)
    rc, out, _ = canon(ws, "evidence", "open")
    assert rc == 0 and out.strip().endswith(str(ev.dir / "index.html")) and "no display" in out
    rc, _, err = canon(ws, "evidence", "open", str(ws.root))
    assert rc == 2 and "not an evidence dir" in err
    old = tmp_path / "old-run"
    old.mkdir()
    shutil.copy2(ev.dir / MANIFEST, old / MANIFEST)
    rc, _, err = canon(ws, "evidence", "open", str(old))
    assert rc == 2 and "no index.html" in err


@pytest.fixture
def no_new_evidence(week):
    """The evidence dirs a test adds to the shared week are removed after it (latest_dir and
    `evidence latest` in other tests must still find the week's own dir)."""
    ws, _, _ = week
    before = set(ws.config.evidence_dir.iterdir())
    yield
    for d in set(ws.config.evidence_dir.iterdir()) - before:
        shutil.rmtree(d)


def test_investigate_picks_the_recipe_failing_longest_and_writes_nothing_else(
    week, no_new_evidence
):
    ws, _, _ = week
    with Registry.open(ws.config.db_path) as reg:
        runs, results = len(reg.runs()), len(reg.results())
    mirrors = sorted(p.name for p in ws.config.mirrors_dir.iterdir())
    rc, out, err = canon(ws, "investigate")
    assert rc == 0, err
    assert (
        "investigating gone (failing since run" in err
    )  # gone failed both weeks, red only this one
    lines = out.strip().splitlines()
    d, index = Path(lines[-2]), Path(lines[-1])
    assert index == d / "index.html" and index.exists()
    assert "gone: ERROR in run" in out and "sync: gone: cannot fetch" in out
    with Registry.open(ws.config.db_path) as reg:
        assert (len(reg.runs()), len(reg.results())) == (runs, results)
    assert sorted(p.name for p in ws.config.mirrors_dir.iterdir()) == mirrors
    page = index.read_text()
    assert "Investigation: gone" in page and "cannot fetch" in page
    rc, out, err = canon(ws, "investigate", "red")
    assert rc == 0 and "red: FAIL (level" in out
    rc, _, err = canon(ws, "investigate", "gonne")
    assert rc == 2 and "did you mean gone?" in err


# -- in a real browser ------------------------------------------------------------------

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    need(None if exe else "no chromium on PATH (apt-get install chromium; .ci/run installs it)")
    return exe


def browse(exe: str, tmp: Path, url: str, *extra: str) -> subprocess.CompletedProcess:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    return subprocess.run(
        [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_index_in_a_real_browser(week, tmp_path):
    exe = chromium()
    _, ev, _ = week
    index = ev.dir / "index.html"
    dom = browse(exe, tmp_path, index.as_uri(), "--dump-dom").stdout
    row_re = r'<tr style="background:(#[0-9a-f]{6})" data-recipe="([^"]+)"'
    by_recipe = {m.group(2): m.group(1) for m in re.finditer(row_re, dom)}
    assert sorted(by_recipe) == ["gone", "good", "red"]  # every recipe present
    assert by_recipe["gone"] == ROW_COLOURS["ERROR"] and by_recipe["red"] == ROW_COLOURS["FAIL"]
    assert by_recipe["good"] == ROW_COLOURS["PASS"] and len(set(by_recipe.values())) == 3
    gone = re.search(r'data-recipe="gone".*?</tr>', dom, re.S).group(0)
    assert "cannot fetch" in gone  # the failing row carries its reason, whole
    red = re.search(r'data-recipe="red".*?</tr>', dom, re.S).group(0)
    assert "L2 upgrade" in red and "test_app_config_is_sane" in red  # the failing rung and test
    assert 'id="verdict"' in dom and "FAILED" in dom
    assert re.search(r'<img src="data:image/png;base64,[^"]+" alt="Bar chart of sweep', dom)
    links = re.findall(r'<a href="([^"#:]+\.html)">', dom)
    assert sorted(links) == ["determinism.html", "disk_budget.html", "sweep.html"]
    for link in links:  # each link resolves to the rendered notebook, code hidden, outputs kept
        page = browse(exe, tmp_path, (ev.dir / link).as_uri(), "--dump-dom").stdout
        assert 'href="index.html"' in page and "<h1" in page and "recorded complete" in page, link
        assert "nbk." not in page and "import" not in page, link  # the code is hidden
    shot = tmp_path / "index.png"
    r = browse(exe, tmp_path, index.as_uri(), f"--screenshot={shot}", "--window-size=1400,1600")
    assert shot.exists(), r.stderr
    import matplotlib.image as mpimg

    pixels = (mpimg.imread(shot)[:, :, :3] * 255).round().astype(int).reshape(-1, 3)
    want = tuple(int(ROW_COLOURS["ERROR"][i : i + 2], 16) for i in (1, 3, 5))
    assert ((pixels == want).all(axis=1)).sum() > 500  # the failure colour is on screen
    keep = os.environ.get("CANON_SCREENSHOT")
    if keep:
        shutil.copy2(shot, keep)
