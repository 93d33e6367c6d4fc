"""Pure decisions of the release gates: the cooldown, the host-access hold and its memory,
the HELD label; the duration form canon.toml and recipe_meta.py share; the meta keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from canonlib.config import load_config, parse_age
from canonlib.recipe.meta import MetaError, parse_meta
from canonlib.state.row import ResultRow
from canonlib.sweep.policy import (
    HELD_HOST,
    RUN,
    SKIP_COOLING,
    SKIP_HELD,
    HeldKey,
    Turn,
    cooling_until,
    held_key,
    known_held,
    label,
)
from canonlib.sweep.words import FAILING_LABELS, plan_note

DAY = 86400


@pytest.mark.parametrize(
    ("first_seen", "age", "now", "want"),
    [
        (1000.0, 0, 1000.0, None),  # no cooldown
        (1000.0, 3 * DAY, 1000.0, 1000.0 + 3 * DAY),  # just seen
        (1000.0, 3 * DAY, 1000.0 + 3 * DAY - 1, 1000.0 + 3 * DAY),  # a second to go
        (1000.0, 3 * DAY, 1000.0 + 3 * DAY, None),  # old enough
        (None, DAY, 5000.0, 5000.0 + DAY),  # never seen before: seen now
        (1000.0, 1, 1000.0, 1001.0),  # MIN_RELEASE_AGE = "1s" still waits its second
        # no cooldown holds nothing back, even a tag first seen "later" (the clock went back)
        (5000.0, 0, 1000.0, None),
    ],
)
def test_cooling_until(first_seen, age, now, want):
    assert cooling_until(first_seen, age, now) == want


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("3d", 3 * DAY), ("12h", 12 * 3600), ("30m", 1800), ("90s", 90), ("0", 0), (" 2D ", 2 * DAY)],
)
def test_parse_age(text, seconds):
    assert parse_age(text) == seconds


@pytest.mark.parametrize("text", ["3 days", "-1d", "1w", "", "d", "400d"])
def test_parse_age_refuses(text):
    with pytest.raises(ValueError):
        parse_age(text)


KEY = HeldKey("1.1.0+1.1", "c" * 40, ("bind:/var/run/docker.sock",))


def as_row(data):
    """A table's row (a plain mapping, as results.jsonl holds it) as the typed row."""
    return ResultRow.from_dict({"recipe": "r", **data})


def held_row(run_id, commit="c" * 40, accepted=("bind:/var/run/docker.sock",)):
    return {
        "run_id": run_id,
        "decision": HELD_HOST,
        "latest": KEY.tag,
        "tag_commit": commit,
        "host_accepted": list(accepted),
    }


@pytest.mark.parametrize(
    ("earlier", "want"),
    [
        ([], None),
        ([held_row("r1")], "r1"),
        ([held_row("r1"), held_row("r2")], "r2"),
        ([held_row("r1", commit="d" * 40)], None),  # the tag was re-pointed: a new release
        ([held_row("r1", accepted=())], None),  # the meta changed since
        ([held_row("r1"), {"decision": RUN, "latest": KEY.tag}], None),  # deployed since
        # a week the operator's HOLD skipped the tag deployed nothing: the hold stands
        ([held_row("r1"), {"decision": SKIP_HELD, "latest": KEY.tag}], "r1"),
        # a run of another tag (an older one, the newer gone upstream) does not end it
        ([held_row("r1"), {"decision": RUN, "latest": "1.0.1+1.0"}], "r1"),
        # a hold ended by a deploy starts again only when held afresh
        ([held_row("r1"), {"decision": RUN, "latest": KEY.tag}, held_row("r3")], "r3"),
    ],
)
def test_known_held(earlier, want):
    got = known_held([as_row(r) for r in earlier], KEY)
    if want is None:
        assert got is None  # "or None", as the type says (the sweep tests its truth)
    else:
        assert got.run_id == want


@pytest.mark.parametrize(
    ("row", "want"),
    [
        (held_row("r1"), KEY),
        # what HOST_ACCESS accepted is part of the key; a row without it accepted nothing
        ({**held_row("r1"), "host_accepted": None}, HeldKey(KEY.tag, KEY.commit, ())),
        # only a HELD row holds anything, though a run row names a tag and commit too
        ({**held_row("r1"), "decision": RUN}, None),
        ({**held_row("r1"), "decision": SKIP_HELD}, None),
        # a HELD row that names no tag commit (or no tag) cannot say what it held
        ({**held_row("r1"), "tag_commit": None}, None),
        ({**held_row("r1"), "latest": None}, None),
    ],
)
def test_held_key(row, want):
    assert held_key(as_row(row)) == want


def test_held_label_fails_the_week_and_cooling_does_not():
    held = label(Turn(HELD_HOST), "1.0.0+1.0", "a" * 40)
    assert held == "HELD (host access)" and held.startswith(FAILING_LABELS)
    cooling = label(Turn(SKIP_COOLING), None, None)
    assert cooling == "SKIP (cooling)" and not cooling.startswith(FAILING_LABELS)
    note = plan_note(ResultRow("r", decision=SKIP_COOLING, latest="1.1.0+1.1", reason="until T"))
    assert note == "1.1.0+1.1 is cooling (release cooldown): until T"


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ('HOST_ACCESS = ["bind:/run/docker.sock"]', "did you mean 'bind:/var/run/docker.sock'?"),
        ('HOST_ACCESS = ["priviliged"]', "did you mean 'privileged'?"),
        ('HOST_ACCESS = "privileged"', "HOST_ACCESS must be list of str"),
        ('MIN_RELEASE_AGE = "three days"', 'write it like "3d"'),
        ("MIN_RELEASE_AGE = 3", "MIN_RELEASE_AGE must be str or None"),
    ],
)
def test_bad_meta_entries_name_file_line_and_the_closest_spelling(tmp_path, line, error):
    path = tmp_path / "recipe_meta.py"
    with pytest.raises(MetaError) as e:
        parse_meta("WARM_CANONICAL = True\n" + line + "\n", path)
    assert str(e.value).startswith(f"{path}:2: ") and error in str(e.value)


def test_good_meta_entries():
    got = parse_meta(
        'HOST_ACCESS = ["bind:/var/run/docker.sock", "cap_add:NET_ADMIN"]\n'
        'MIN_RELEASE_AGE = "7d"\n',
        Path("recipe_meta.py"),
    )
    assert got == {
        "HOST_ACCESS": ["bind:/var/run/docker.sock", "cap_add:NET_ADMIN"],
        "MIN_RELEASE_AGE": "7d",
    }


@pytest.mark.parametrize(
    ("table", "seconds"), [("", 0), ('[sweep]\nmin_release_age = "12h"\n', 12 * 3600)]
)
def test_config_min_release_age(tmp_path, table, seconds):
    (tmp_path / "canon.toml").write_text('fleet = "fleet"\n' + table)
    assert load_config(tmp_path / "canon.toml", env_overrides=False).min_release_age_s == seconds
