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


def test_colour_never_on_a_dumb_terminal(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "dumb")
    assert not term.use_colour(FakeTTY()) and not term.smart_tty(FakeTTY())
    monkeypatch.setenv("TERM", "xterm-256color")
    assert term.use_colour(FakeTTY()) and term.smart_tty(FakeTTY())


# -- upstream text is data: control characters and bidi overrides shown, as git does ----------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain text, tabs\tand unicode é ✓", "plain text, tabs^Iand unicode é ✓"),
        ("\x1b[31mred\x1b[0m", "^[[31mred^[[0m"),
        ("\x1b]8;;http://evil\x07link\x1b]8;;\x07", "^[]8;;http://evil^Glink^[]8;;^G"),
        ("over\rwrite", "over^Mwrite"),
        ("two\nlines", "two^Jlines"),
        ("nul\x00 bel\x07 bs\x08 del\x7f", "nul^@ bel^G bs^H del^?"),
        ("c1 csi\x9b31m nel\x85", "c1 csi<U+009B>31m nel<U+0085>"),
        ("abc\u202edcba", "abc<U+202E>dcba"),
        ("\u202a\u202b\u202c\u202d", "<U+202A><U+202B><U+202C><U+202D>"),
        ("\u2066\u2067\u2068\u2069", "<U+2066><U+2067><U+2068><U+2069>"),
        (
            "mark\u200e\u200f\u061c sep\u2028\u2029",
            "mark<U+200E><U+200F><U+061C> sep<U+2028><U+2029>",
        ),
        ("bad utf-8 \udcff\udc80", "bad utf-8 \\xff\\x80"),
        ("lone \ud800", "lone <U+D800>"),
    ],
)
def test_visible_shows_what_would_drive_the_terminal(text, shown):
    assert term.visible(text) == shown
    assert term.visible(shown) == shown  # shown text is plain: showing it again changes nothing
    shown.encode("utf-8")  # no lone surrogate left: printing it cannot fail


def test_visible_keeps_what_is_meant():
    assert term.visible("a\nb\tc\x1b", keep="\n") == "a\nb^Ic^["
    assert term.visible("a\nb\tc", keep="\n\t") == "a\nb\tc"


PAYLOAD = "x\x1b[2J\x1b[31mPASS\u202e\r\nok    forged line"


def test_a_table_cell_cannot_drive_the_terminal_or_break_its_row():
    text = term.table([["app", PAYLOAD]], ["recipe", "reason"], max_width=200)
    assert "\x1b" not in text and "\u202e" not in text and "\r" not in text
    assert len(text.splitlines()) == 3  # header, rule, one row: the newline did not make a row
    assert "^[[2J^[[31mPASS<U+202E>^M^Jok    forged line" in text
    painted = term.table([["app", "FAIL " + PAYLOAD]], ["recipe", "label"], paint=True)
    assert painted.count("\x1b") == 2  # canon's own colour (on and off), none of the payload's


def test_lines_show_each_item_on_one_line():
    text = term.lines(["ok  fine", PAYLOAD], paint=False)
    assert text.splitlines() == ["ok  fine", "x^[[2J^[[31mPASS<U+202E>^M^Jok    forged line"]


def test_a_number_like_cell_is_shown_as_written():
    text = term.table([["1.10", "2.0"]], ["version", "other"])
    assert "1.10" in text.splitlines()[2]
