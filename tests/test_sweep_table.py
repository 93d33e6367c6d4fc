"""The sweep table the demo and the journal print: a long label says where its words went."""

from __future__ import annotations

from canonlib.tables import fold_label, sweep_table

GONE = (
    "ERROR (sync: docs: cannot fetch from /srv/upstream/docs-moved: "
    "fatal: '/srv/upstream/docs-moved' does not appear to be a git repository)"
)


def test_a_long_error_label_is_folded_and_its_words_are_shown_whole_as_the_reason():
    rows = [
        {"recipe": "docs", "label": GONE, "error": "sync: docs: cannot fetch"},
        {"recipe": "app", "label": "FAIL (level 1/5)", "reason": "L2 upgrade: pytest exited 1"},
    ]
    lines = sweep_table(rows, width=None).splitlines()
    docs = next(line for line in lines if line.startswith("docs"))
    assert "ERROR (see reason)" in docs and docs.rstrip().endswith(
        "does not appear to be a git repository"
    )
    assert "..." not in docs  # nothing cut: a pipe or a log gets the whole message
    app = next(line for line in lines if line.startswith("app"))
    assert "FAIL (level 1/5)" in app and app.rstrip().endswith("L2 upgrade: pytest exited 1")


def test_piped_the_table_is_whole_even_with_columns_set(monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")  # a shell exports it; stdout here is not a terminal
    rows = [{"recipe": "docs", "label": GONE, "error": "sync: docs: cannot fetch"}]
    assert (
        sweep_table(rows)
        .splitlines()[2]
        .rstrip()
        .endswith("does not appear to be a git repository")
    )
    cut = sweep_table(rows, width=100).splitlines()[2]  # a terminal's width: the reason is cut
    assert cut.endswith("…") and "git repository" not in cut


def test_fold_keeps_a_recorded_reason_and_leaves_short_labels_alone():
    short = {"recipe": "a", "label": "SKIP (held)", "reason": "HOLD: waiting"}
    assert fold_label(short) is short
    long = {
        "recipe": "b",
        "label": "GREEN-BUT-PROMOTE-FAILED (" + "x" * 100 + ")",
        "reason": "promote: y",
    }
    assert fold_label(long) == {**long, "label": "GREEN-BUT-PROMOTE-FAILED (see reason)"}
