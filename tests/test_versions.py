"""versions.py: every case from shared/data/recipe-tags.md, semver's own example, properties."""

from __future__ import annotations

import random

import pytest
import semver
from hypothesis import given, settings
from hypothesis import strategies as st

from canonlib.recipe.versions import (
    InvalidRecipeVersion,
    is_version,
    latest_release,
    newest_older_version,
    parse_version,
    recipe_tags,
    sort_versions,
    version_key,
)

# (tags in publication order, expected latest release) -- shared/data/recipe-tags.md
REAL_HISTORIES = {
    "bonfire": (
        ["1.0.0+1.0.5-social-amd64", "2.0.0+1.0.5-social-amd64", "2.0.1+1.0.6-social-amd64"],
        "2.0.1+1.0.6-social-amd64",
    ),
    # 5.0.3 is a backport published after 6.0.1: tag date order is not version order
    "nextcloud": (["5.0.2+27.0.1-fpm", "6.0.1+28.0.2-fpm", "5.0.3+27.0.1-fpm"], "6.0.1+28.0.2-fpm"),
    "plausible": (["3.0.0+v2.0.0", "3.0.1+v2.0.0"], "3.0.1+v2.0.0"),
    "custom-html": (
        ["1.7.1+1.27.2", "1.10.0+1.29.0", "1.11.0+1.29.0", "1.13.0+1.31.1"],
        "1.13.0+1.31.1",
    ),
    "bluesky-pds": (["0.2.0+v0.4"], "0.2.0+v0.4"),
    "gitea": (["1.0.0+1.14.3", "1.1.0+1.15", "1.1.0+1.15.3"], "1.1.0+1.15.3"),
    # 2021 gitea: '-rootless' is a semver prerelease, '_1' and '~1' are not versions at all
    "gitea-2021": (
        ["1.13.4_1", "1.13.4~1", "1.14.1-rootless", "1.14.1-rootless_1", "1.14.2-rootless"],
        None,
    ),
    "traefik-fork": (["v2.4.8"], "v2.4.8"),
}


@pytest.mark.parametrize("recipe", sorted(REAL_HISTORIES))
def test_latest_release_of_real_histories(recipe):
    tags, expected = REAL_HISTORIES[recipe]
    assert latest_release(tags) == expected
    assert latest_release(list(reversed(tags))) == expected


def test_nextcloud_backport_sorts_below_newer_major():
    assert sort_versions(["5.0.2+27.0.1-fpm", "6.0.1+28.0.2-fpm", "5.0.3+27.0.1-fpm"]) == [
        "5.0.2+27.0.1-fpm",
        "5.0.3+27.0.1-fpm",
        "6.0.1+28.0.2-fpm",
    ]


def test_double_digit_fields_compare_numerically():
    assert sort_versions(["1.11.0+1.29.0", "1.7.1+1.27.2", "1.10.0+1.29.0"]) == [
        "1.7.1+1.27.2",
        "1.10.0+1.29.0",
        "1.11.0+1.29.0",
    ]


def test_app_part_breaks_ties():
    assert version_key("1.1.0+1.15.3") > version_key("1.1.0+1.15")
    assert version_key("1.1.0+1.9") < version_key("1.1.0+1.10")
    # ...but only as a tie-break: the recipe part always wins
    assert version_key("1.1.1+0.1") > version_key("1.1.0+99.0")


@pytest.mark.parametrize(
    "tag, major, minor, patch, pre, app",
    [
        ("3.0.1+v2.1.0", 3, 0, 1, None, "v2.1.0"),
        ("2.0.1+1.0.6-social-amd64", 2, 0, 1, None, "1.0.6-social-amd64"),
        ("0.2.0+v0.4", 0, 2, 0, None, "v0.4"),
        ("v2.4.8", 2, 4, 8, None, None),
        ("1.14.1-rootless", 1, 14, 1, "rootless", None),
        ("1.0.0-1", 1, 0, 0, "1", None),
        ("1.0.0-rc.1+2.0", 1, 0, 0, "rc.1", "2.0"),
    ],
)
def test_parse_fields(tag, major, minor, patch, pre, app):
    v = parse_version(tag)
    assert (v.raw, v.major, v.minor, v.patch, v.prerelease, v.app) == (
        tag,
        major,
        minor,
        patch,
        pre,
        app,
    )


@pytest.mark.parametrize(
    "tag",
    [
        "1.13.4_1",
        "1.13.4~1",
        "1.14.1-rootless_1",
        "latest",
        "",
        "1.0",
        "1",
        "01.0.0",
        "1.0.0-01",
        "1.0.0+",
        "1.0.0-",
        "1.0.0\n",
        " 1.0.0",
        "vv1.0.0",
        "V1.0.0",
        "1.0.0+a_b",
        "١.٠.٠",
        "--upload-pack=touch x",
        "../../1.0.0",
        "1.0.0 ",
        "refs/tags/1.0.0",
    ],
)
def test_not_versions(tag):
    with pytest.raises(InvalidRecipeVersion):
        parse_version(tag)
    assert not is_version(tag)
    assert latest_release([tag]) is None


def test_prerelease_is_not_a_release_unless_allowed():
    tags = ["1.0.0", "1.1.0-rc.1"]
    assert latest_release(tags) == "1.0.0"
    assert latest_release(tags, allow_prerelease=True) == "1.1.0-rc.1"
    # semver, not PEP 440: 1.0.0-1 is a prerelease of 1.0.0 (PEP 440 would call it a post-release)
    assert latest_release(["1.0.0-1"]) is None
    assert version_key("1.0.0-1") < version_key("1.0.0")


def test_semver_spec_precedence_example():
    spec = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
    ]
    shuffled = spec[:]
    random.Random(7).shuffle(shuffled)
    assert sort_versions(shuffled) == spec
    assert sort_versions(["2.1.1", "1.0.0", "2.1.0", "2.0.0"]) == [
        "1.0.0",
        "2.0.0",
        "2.1.0",
        "2.1.1",
    ]


def test_describe_output_is_not_newer_release_than_next_tag():
    # `git describe` output parses (valid semver build metadata) but is never above the next tag
    assert version_key("0.2.0+v0.4-4-gb2d86ef") < version_key("0.2.1+v0.4")


def test_newest_older_version():
    tags = ["1.0.0+1", "1.1.0+1", "1.2.0-rc.1+1", "not-a-tag", "1.2.0+1"]
    assert newest_older_version(tags, "1.2.0+1") == "1.1.0+1"
    assert newest_older_version(tags, "1.2.0+1", allow_prerelease=True) == "1.2.0-rc.1+1"
    assert newest_older_version(tags, "1.0.0+1") is None


def test_sort_leaves_out_non_versions():
    assert sort_versions(["x", "1.0.0", "1.13.4~1"]) == ["1.0.0"]


# Two tags with the same recipe version: the app part decides which is newer.
APP_TIE_BREAKS = [
    # (older, newer, why)
    ("1.0.0+1.15", "1.0.0+2.0", "first app numbers differ"),
    ("1.0.0+v1.9", "1.0.0+1.10", "a leading v before a digit is ignored"),
    ("1.0.0+V1.9", "1.0.0+1.10", "so is a leading V"),
    ("1.0.0+1.9", "1.0.0+v1.10", "on the newer side too"),
    ("1.0.0+v1.9", "1.0.0+v1.10", "on both sides"),
    ("1.0.0+c", "1.0.0+vb", "a v before a letter is part of the text"),
    ("1.0.0+a9", "1.0.0+b1", "other letters are never stripped"),
    ("1.0.0+2", "1.0.0+rc", "a numeric app token sorts below a text one"),
    ("1.0.0+1.0-fpm", "1.0.0+1.0-fpn", "text tokens compare as text"),
    ("1.0.0", "1.0.0+0.1", "no app part sorts below any app part"),
]


@pytest.mark.parametrize("older, newer, why", APP_TIE_BREAKS, ids=[c[2] for c in APP_TIE_BREAKS])
def test_app_part_tie_breaks(older, newer, why):
    assert latest_release([newer, older]) == newer
    assert latest_release([older, newer]) == newer
    assert sort_versions([newer, older]) == [older, newer]
    assert newest_older_version([older, newer], newer) == older


# Prerelease identifiers: numeric below text, numbers numerically (semver 11.4).
PRERELEASE_ORDER = [
    ("1.0.0-2", "1.0.0-10"),
    ("1.0.0-99", "1.0.0-a"),
    ("1.0.0-alpha", "1.0.0-beta"),
    ("1.0.0-rc.9", "1.0.0-rc.10"),
    ("1.0.0-rc.1", "1.0.0-rc.a"),
    ("1.0.0-rc", "1.0.0-rc.1"),
    ("1.0.0-rc.1", "1.0.0"),
    ("1.0.0-zzz", "1.0.0"),
]


@pytest.mark.parametrize("older, newer", PRERELEASE_ORDER)
def test_prerelease_order(older, newer):
    assert sort_versions([newer, older]) == [older, newer]
    assert latest_release([older, newer], allow_prerelease=True) == newer


def test_recipe_versions_compare_directly():
    a, b, c = parse_version("1.0.0"), parse_version("1.0.1"), parse_version("1.0.1+2.0")
    assert a < b < c and c > a and a <= a
    assert max([b, c, a]) == c and min([c, a, b]) == a
    assert sorted([c, b, a]) == [a, b, c]
    assert parse_version("1.2.3+x") == parse_version("1.2.3+x")
    assert parse_version("v1.2.3") != parse_version("1.2.3")  # the raw tag keeps the order total


@pytest.mark.parametrize(
    "tag, recipe, prerelease",
    [
        ("3.0.1+v2.1.0", "3.0.1", False),
        ("v2.4.8", "2.4.8", False),
        ("1.0.0-rc.1+2.0", "1.0.0-rc.1", True),
        ("1.14.1-rootless", "1.14.1-rootless", True),
        ("10.20.30", "10.20.30", False),
    ],
)
def test_recipe_text_and_prerelease_flag(tag, recipe, prerelease):
    v = parse_version(tag)
    assert v.recipe == recipe
    assert v.is_prerelease is prerelease


@pytest.mark.parametrize("tag", ["1.0.0", "v2.4.8", "3.0.1+v2.1.0", "1.0.0-rc.1", "0.0.0+a.b-c"])
def test_is_version_accepts_recipe_tags(tag):
    assert is_version(tag) is True


def test_recipe_tags_keeps_releases_by_default():
    tags = ["1.0.0", "2.0.0-rc.1", "junk", "v1.1.0+2"]
    assert [v.raw for v in recipe_tags(tags)] == ["1.0.0", "v1.1.0+2"]
    assert [v.raw for v in recipe_tags(tags, allow_prerelease=True)] == [
        "1.0.0",
        "2.0.0-rc.1",
        "v1.1.0+2",
    ]


def test_not_a_version_says_what_a_version_looks_like():
    with pytest.raises(InvalidRecipeVersion) as e:
        parse_version("latest")
    assert str(e.value) == "'latest' is not a recipe version ([v]MAJOR.MINOR.PATCH[-PRE][+APP])"
    with pytest.raises(InvalidRecipeVersion) as e:
        parse_version(None)
    assert str(e.value) == "not a string: None"


# -- properties ---------------------------------------------------------------

ident = st.from_regex(r"(0|[1-9][0-9]{0,3}|[0-9]{0,2}[a-z-][0-9a-z-]{0,3})", fullmatch=True)
tags_st = st.builds(
    lambda v, a, b, c, pre, app: (
        f"{v}{a}.{b}.{c}" + (f"-{'.'.join(pre)}" if pre else "") + (f"+{app}" if app else "")
    ),
    st.sampled_from(["", "v"]),
    st.integers(0, 12),
    st.integers(0, 12),
    st.integers(0, 12),
    st.lists(ident, max_size=3),
    st.one_of(
        st.none(),
        st.from_regex(r"v?[0-9]{1,2}(\.[0-9]{1,2}){0,2}(-[a-z0-9]{1,5})?", fullmatch=True),
    ),
)


@given(st.text())
def test_parse_never_crashes(text):
    try:
        v = parse_version(text)
    except InvalidRecipeVersion:
        return
    assert v.raw == text


@given(st.lists(tags_st, max_size=12), st.randoms())
def test_order_is_independent_of_input_order(tags, rnd):
    shuffled = tags[:]
    rnd.shuffle(shuffled)
    assert sort_versions(shuffled) == sort_versions(tags)
    assert latest_release(shuffled) == latest_release(tags)


@given(tags_st, tags_st, tags_st)
def test_total_order(a, b, c):
    ka, kb, kc = version_key(a), version_key(b), version_key(c)
    assert (ka < kb) + (ka == kb) + (ka > kb) == 1
    assert (ka == kb) == (a == b)
    if ka <= kb <= kc:
        assert ka <= kc


@settings(max_examples=300)
@given(tags_st, tags_st)
def test_recipe_part_agrees_with_semver_library(a, b):
    """Our precomputed key orders the recipe part exactly as semver.Version.compare does."""
    va, vb = parse_version(a), parse_version(b)
    expected = semver.Version.parse(va.recipe).compare(vb.recipe)
    if expected:
        assert (va.key < vb.key) == (expected < 0)
