"""Upstream text is data, never markup: a recipe whose failing install step prints a corpus of
script, SVG, image-handler and Markdown payloads, swept in a real weekly evidence run (real
harness, real papermill, real nbconvert).  The payloads reach summary.md, index.html and
sweep.html only as text: opened in a real headless Chromium, no script runs (the payloads set
document.title; it is unchanged), no element appears that the page did not make, and the text
is still there to read.  Its pages still verify."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from canonlib.evidence.manifest import EVIDENCE_FORMAT
from canonlib.evidence.run import run_suite
from tests.test_report import browse, canon, chromium
from tests.workspace import Workspace

pytestmark = pytest.mark.slow

CORPUS = [
    "<script>alert(document.domain)</script><svg/onload=alert(1)><img src=x onerror=alert(2)>",
    "<script>document.title='pwned'</script>",
    "<img src=x onerror=\"document.title='pwned'\">",
    "<svg><animate onbegin=\"document.title='pwned'\" attributeName=x dur=1s></svg>",
    "<iframe src=\"javascript:parent.document.title='pwned'\"></iframe>",
    "\"><script>document.title='pwned'</script>",
    "'><img src=x onerror=document.title='pwned'>",
    "[link](javascript:document.title='pwned') ![i](x) **bold** _u_ | pipe `tick` <b>b</b>",
]
PAYLOAD = " ".join(CORPUS)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile") / "ws"
    root.mkdir()
    ws = Workspace(root)
    ws.recipe("evil")
    ws.release(
        "evil",
        "1.0.0+1.0",
        extra={
            "payload.txt": PAYLOAD + "\n",
            "post-install.sh": "#!/bin/sh\ncat payload.txt\nexit 1\n",
        },
    )
    ev = run_suite(ws.config, "weekly", out=lambda s: None)
    return ws, ev


def test_the_payload_is_in_the_evidence_as_the_recipe_printed_it(hostile):
    """The premise: the run recorded the recipe's words whole (else nothing below is tested)."""
    _, ev = hostile
    rows = json.loads((ev.dir / "records.json").read_text())["sweep"]["sweep_rows"]
    assert PAYLOAD in rows[0]["reason"]


def test_summary_md_carries_it_as_text(hostile):
    _, ev = hostile
    md = (ev.dir / "summary.md").read_text()
    assert "<" not in md and ">" not in md, md
    assert "&lt;script&gt;alert(document.domain)&lt;/script&gt;" in md
    assert "\\[link\\](javascript:" in md and "\\*\\*bold\\*\\*" in md and "\\| pipe" in md


@pytest.mark.parametrize("page", ["index.html", "sweep.html"])
def test_the_page_in_a_browser_runs_nothing_and_shows_the_text(hostile, tmp_path, page):
    exe = chromium()
    _, ev = hostile
    source = (ev.dir / page).read_text()
    title = re.search(r"<title>(.*?)</title>", source, re.S).group(1)
    dom = browse(exe, tmp_path, (ev.dir / page).as_uri(), "--dump-dom").stdout
    assert "<body" in dom, dom[:500]
    assert re.search(r"<title>(.*?)</title>", dom, re.S).group(1) == title  # no script ran
    assert "pwned" not in title
    # no element the page did not make: no script, svg or frame; no handler; only its own images
    page_dom = Elements()
    page_dom.feed(dom)
    tags = {tag for tag, _ in page_dom.elements}
    assert not tags & {"script", "svg", "iframe", "animate", "object", "embed", "strong"}, tags
    attrs = [(tag, k, v or "") for tag, a in page_dom.elements for k, v in a]
    assert not [a for a in attrs if a[1].startswith("on")], attrs
    imgs = [v for tag, k, v in attrs if tag == "img" and k == "src"]
    assert imgs and all(v.startswith("data:image/png;base64,") for v in imgs), imgs
    assert not [v for tag, k, v in attrs if k == "href" and "javascript" in v.lower()]
    assert [t for t in page_dom.elements if t[0] == "b"] == [
        t for t in Elements.of(source).elements if t[0] == "b"
    ]  # the payload's <b> is not one of them
    # and the words are there to read, as text
    assert (
        PAYLOAD in page_dom.text
        if page == "index.html"
        else all(words in page_dom.text for words in CORPUS)
    )


class Elements(HTMLParser):
    """Every element of a page (tag, attributes) and its text, as a browser's DOM holds them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.texts: list[str] = []

    @classmethod
    def of(cls, text: str) -> Elements:
        e = cls()
        e.feed(text)
        return e

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, attrs))

    def handle_data(self, data):
        self.texts.append(data)

    @property
    def text(self) -> str:
        return "".join(self.texts)


def test_the_hostile_pages_still_verify(hostile):
    ws, ev = hostile
    rc, out, _ = canon(ws, "verify", str(ev.dir))
    assert (
        f"ok    report index.html: rendered from the recorded values (format {EVIDENCE_FORMAT})"
        in out
    ), out
    assert (
        f"ok    report summary.md: rendered from the recorded values (format {EVIDENCE_FORMAT})"
        in out
    ), out
    assert rc == 0, out  # a FAILED week (the evil recipe) verifies
