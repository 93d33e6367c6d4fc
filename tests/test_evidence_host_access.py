"""Host access in the evidence (issue 29 part 5): the manifest records what each canonical and
each deployed or held release asks of the host and what its HOST_ACCESS accepted, `canon
verify` re-derives it from the bundled registry and fails naming the recipe when the claim was
edited, and the pages show it as text (upstream text is data).

A real weekly run (real sweeps, harness, papermill, nbconvert) on a workspace of two recipes:
one mounts the docker socket and accepts it (deployed, canonical: a warning), one asks for a
host path whose name is a script (held, nothing deployed)."""

from __future__ import annotations

import json
import shutil

import pytest

from canonlib.evidence.manifest import ENVELOPE, EVIDENCE_FORMAT, LOG_PROOF, MANIFEST
from canonlib.evidence.proofs import settled
from canonlib.evidence.report import add_report, host_access_rows
from canonlib.evidence.run import run_suite
from canonlib.state.row import ResultRow
from tests.cli import canon
from tests.workspace import META, Workspace

SOCKET = "/var/run/docker.sock"
HOSTILE = "/opt/<script>document.title='pwned'</script>**b**|x"
ACCEPTED = "custom-html"  # mounts the socket, accepted: deployed, canonical, a warning
HELD = "gitea"  # asks for the hostile host path, not accepted: held


def verify(d) -> tuple[int, str]:
    rc, out, _ = canon(None, "verify", d, in_process=True)
    return rc, out


@pytest.fixture(scope="module")
def weekly(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostaccess") / "ws"
    root.mkdir()
    ws = Workspace(root)
    ws.recipe(ACCEPTED, meta=META + f'HOST_ACCESS = ["bind:{SOCKET}"]\n')
    ws.release(ACCEPTED, "1.0.0+1.0", host_volumes=(f"{SOCKET}:{SOCKET}",))
    ws.recipe(HELD)
    ws.release(HELD, "1.0.0+1.0", host_volumes=(f"{HOSTILE}:/x",))
    ev = run_suite(ws.config, "weekly", out=lambda s: None)
    return ws, ev


@pytest.mark.slow
def test_the_manifest_records_each_canonicals_and_each_rows_host_access(weekly):
    _, ev = weekly
    canon = json.loads((ev.dir / MANIFEST).read_text())["predicate"]["canon"]
    assert canon["format"] == EVIDENCE_FORMAT == 3
    record = canon["host_access"]
    by = {(e["recipe"], e["role"], e["run_id"]): e for e in record}
    (canonical,) = [e for e in record if e["role"] == "canonical"]
    assert canonical["recipe"] == ACCEPTED and canonical["tag"] == "1.0.0+1.0"
    assert canonical["accepted"] == [f"bind:{SOCKET}"]
    assert [(a["item"], a["accepted"], a["refused"]) for a in canonical["asked"]] == [
        (f"bind:{SOCKET}", True, None)
    ]
    assert (ACCEPTED, "deployed", canonical["run_id"]) in by  # the row that deployed it
    held = [e for e in record if e["role"] == "held"]
    assert {e["recipe"] for e in held} == {HELD}
    assert len(held) == 2  # the sweep and the determinism sweep each held it
    (item,) = held[0]["asked"]
    assert item["item"] == f"bind:{HOSTILE}" and item["accepted"] is False
    assert item["file"] == "compose.yml" and isinstance(item["line"], int)
    assert held[0]["accepted"] == []


@pytest.mark.slow
def test_it_verifies_and_a_held_row_is_settled_for_the_determinism_proof(weekly):
    _, ev = weekly
    rc, out = verify(ev.dir)
    assert rc == 0, out
    assert "ok    host access recorded is the bundled registry's: " in out
    assert "2 held" in out
    # the second sweep held it again without a harness: settled, the proof holds
    claims = json.loads((ev.dir / "records.json").read_text())["determinism"]["claims"]
    assert [c for c in claims if not c["ok"]] == [], claims
    assert "ok    determinism: rows that ran nothing are SKIP, HELD or a stage ERROR" in out


def _edit_claim(ev, tmp_path, change) -> tuple[int, str]:
    d = tmp_path / "edited"
    shutil.copytree(ev.dir, d)
    for name in (ENVELOPE, LOG_PROOF):  # over the honest manifest: a forger drops them
        (d / name).unlink(missing_ok=True)
    m = json.loads((d / MANIFEST).read_text())
    change(m["predicate"]["canon"]["host_access"])
    add_report(d, m)  # the pages re-rendered from the edited claim, every file re-hashed
    (d / MANIFEST).write_text(json.dumps(m, indent=1))
    return verify(d)


@pytest.mark.slow
def test_a_canonicals_host_access_edited_out_of_the_manifest_fails_naming_the_recipe(
    weekly, tmp_path
):
    _, ev = weekly

    def hide_the_socket(record):
        for e in record:
            if e["recipe"] == ACCEPTED:
                e["asked"], e["accepted"] = [], []

    rc, out = _edit_claim(ev, tmp_path, hide_the_socket)
    assert rc == 1, out
    bad = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert bad == [
        f"FAIL  host access of {ACCEPTED}: canonical 1.0.0+1.0: the manifest says it asks "
        "nothing; HOST_ACCESS []; the bundled registry's rows say it asks "
        f"bind:{SOCKET} (compose.yml:{ev_line(ev, ACCEPTED)}, accepted); "
        f"HOST_ACCESS ['bind:{SOCKET}']"
    ], out


@pytest.mark.slow
def test_a_held_row_dropped_from_the_manifest_fails_naming_the_recipe(weekly, tmp_path):
    _, ev = weekly

    def drop_held(record):
        record[:] = [e for e in record if e["role"] != "held"]

    rc, out = _edit_claim(ev, tmp_path, drop_held)
    assert rc == 1, out
    bad = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert len(bad) == 1 and bad[0].startswith(f"FAIL  host access of {HELD}: "), out
    assert "leaves out an entry of the bundled registry: held 1.0.0+1.0" in bad[0]


def ev_line(ev, recipe) -> int:
    canon = json.loads((ev.dir / MANIFEST).read_text())["predicate"]["canon"]
    (e,) = [e for e in canon["host_access"] if e["recipe"] == recipe and e["role"] == "canonical"]
    return e["asked"][0]["line"]


@pytest.mark.slow
def test_the_pages_show_it_as_text(weekly):
    _, ev = weekly
    md = (ev.dir / "summary.md").read_text()
    section = md.split("## Host access", 1)[1].split("\n## ", 1)[0]
    assert (
        f"| {ACCEPTED} | canonical, deployed | 1.0.0+1.0 | bind:/var/run/docker.sock |" in section
    )
    assert "WARNING: accepted (HOST_ACCESS) |" in section
    assert "<" not in section and ">" not in section, section
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;\\*\\*b\\*\\*\\|x" in section
    assert "NOT accepted: held, not deployed" in section
    page = (ev.dir / "index.html").read_text()
    html = page.split('<h2 id="host-access">', 1)[1].split("<h2", 1)[0]
    assert "<script>" not in page
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;**b**|x" in html
    assert "WARNING: accepted (HOST_ACCESS)" in html
    # the held row is an outcome of its own (format 3), failing the week, not a "?"
    assert f'data-recipe="{HELD}" data-outcome="HELD"' in page
    assert "<b>HELD</b>: asks the host for more than HOST_ACCESS accepts" in page
    assert f"Failing: {HELD} HELD (host access)" in page  # the sweep figure's alt text
    assert "Nothing failed" not in page


def test_format_2_pages_keep_their_outcomes():
    """A format-2 page re-rendered today colours a HELD row as it did then (``?``), so the
    dir still verifies; format 3 says HELD."""
    from canonlib.evidence.report import View, page_values

    row = {"recipe": "r", "label": "HELD (host access)", "decision": "held:host-access"}
    v = View("run", "weekly", "", "", "FAILED", "FAILED", None, False, {}, [], {}, rows=[row])
    two = page_values(v, links={}, figures={}, fmt=2)
    three = page_values(v, links={}, figures={}, fmt=3)
    assert two["recipes"][0]["attrs"] == ("r", "?") and three["recipes"][0]["attrs"] == (
        "r",
        "HELD",
    )
    assert "HELD" not in [k for _, k, _ in two["legend"]]
    assert "HELD" in [k for _, k, _ in three["legend"]]


# -- pure --------------------------------------------------------------------------------------


def test_a_row_held_for_host_access_is_settled():
    row = ResultRow("r", label="HELD (host access)", decision="held:host-access", verdict=None)
    assert settled(row)
    assert not settled(row, held=False)  # as format 2 and older re-derive it
    assert not settled(ResultRow("r", label="ERROR (sync)", decision=None))


def test_host_access_rows_merge_roles_and_say_what_became_of_each_item():
    item = {"item": "bind:/x", "file": "compose.yml", "line": 9, "accepted": True, "refused": None}
    record = [
        {"recipe": "a", "role": "canonical", "tag": "1.0", "asked": [item]},
        {"recipe": "a", "role": "deployed", "tag": "1.0", "asked": [item]},
        {"recipe": "b", "role": "canonical", "tag": "2.0", "asked": None},
        {
            "recipe": "c",
            "role": "held",
            "tag": "3.0",
            "asked": [
                {**item, "accepted": False},
                {**item, "item": "bind:/", "line": 10, "refused": "state dir"},
            ],
        },
    ]
    assert [r for r, _ in host_access_rows(record)] == [
        ["a", "canonical, deployed", "1.0", "bind:/x", "compose.yml:9", "WARNING: accepted "
         "(HOST_ACCESS)"],
        ["b", "canonical", "2.0", "-", "-", "not recorded (no row of it says what it asks)"],
        ["c", "held", "3.0", "bind:/x", "compose.yml:9", "NOT accepted: held, not deployed"],
        ["c", "held", "3.0", "bind:/", "compose.yml:10",
         "refused even if accepted: reaches canon's state dir"],
    ]  # fmt: skip
