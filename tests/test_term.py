"""Terminal output: tables cut to the width, outcome colours only on a TTY without NO_COLOR."""

from __future__ import annotations

import io

import pytest

from canonlib import term

ROWS = [
    ["custom-html", "PASS (promoted)", "-"],
    [
        "lasuite-docs",
        "ERROR (sync: cannot fetch from https://example.org/moved/lasuite-docs.git: "
        "fatal: repository not found)",
        "x",
    ],
    ["keycloak", "GREEN-BUT-PROMOTE-FAILED", "-"],
]


@pytest.mark.parametrize("total", [40, 60, 80, 100])
def test_a_table_fits_the_width_and_cuts_with_an_ellipsis(total):
    text = term.table(ROWS, ["recipe", "label", "error"], max_width=total)
    assert all(len(line) <= total for line in text.splitlines()), text
    assert "…" in text and "lasuite-docs" in text  # the long label is cut, short cells are whole


def test_without_a_width_the_text_is_whole():
    text = term.table(ROWS, ["recipe", "label", "error"])
    assert "fatal: repository not found)" in text and "…" not in text


def test_fit_widths_gives_way_from_the_widest_column():
    assert term.fit_widths([10, 20, 90], 60) == [10, 20, 26]
    assert term.fit_widths([10, 20, 30], 100) == [10, 20, 30]
    assert term.fit_widths([50, 50], 4) == [term.MIN_COL, term.MIN_COL]  # never below the minimum


@pytest.mark.parametrize(
    ("line", "code", "word"),
    [
        ("ok    file hashes: 12 files match", term.GREEN, "ok"),
        ("FAIL  tool curl on PATH: not on the unit's PATH", term.RED, "FAIL"),
        ("keycloak  run  GREEN-BUT-PROMOTE-FAILED", term.RED, "GREEN-BUT-PROMOTE-FAILED"),
        ("traefik  GREEN-NOT-PROMOTED (tag incident)", term.YELLOW, "GREEN-NOT-PROMOTED"),
        ("gitea  SKIP (held)", term.DIM, "SKIP"),
        ("custom-html  PASS (promoted)", term.GREEN, "PASS"),
    ],
)
def test_outcomes_get_their_colour(line, code, word):
    assert f"{code}{word}{term.RESET}" in term.colour(line)
    assert term.colour(line).replace(code, "").replace(term.RESET, "") == line


def test_no_outcome_no_colour():
    assert term.colour("recipe  decision  latest") == "recipe  decision  latest"


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_tty_and_never_with_no_color(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert term.use_colour(FakeTTY()) and not term.use_colour(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not term.use_colour(FakeTTY())


def test_width_only_on_a_tty(monkeypatch):
    monkeypatch.setenv("COLUMNS", "72")  # a CI's COLUMNS must not cut what goes to a pipe or file
    assert term.width(io.StringIO()) is None
    assert term.width(FakeTTY()) == 72


def test_did_you_mean():
    assert term.did_you_mean("nextclod", ["nextcloud", "gitea"]) == "; did you mean nextcloud?"
    assert term.did_you_mean("zzz", ["nextcloud", "gitea"]) == ""


def test_too_wide_drops_only_columns_with_nothing_in_them():
    rows = [["custom-html", "-", "PASS (promoted) " + "x" * 60], ["gitea", "-", "SKIP (held)"]]
    narrow = term.table(rows, ["recipe", "incident", "label"], max_width=50)
    assert "incident" not in narrow and "custom-html" in narrow and "…" in narrow
    wide = term.table(rows, ["recipe", "incident", "label"], max_width=200)
    assert "incident" in wide and "…" not in wide
