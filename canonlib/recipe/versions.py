"""Recipe versions: parse, order and pick release tags.

A recipe tag is ``[v]MAJOR.MINOR.PATCH[-PRERELEASE][+APP]``.  Tags are ordered
by semver precedence of the recipe part (parsed by the ``semver`` library),
then by the upstream app part as a tie-break, then by the raw string, so the
order is total and stable.  Nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import semver

__all__ = [
    "InvalidRecipeVersion",
    "RecipeVersion",
    "latest_release",
    "newest_older_version",
    "parse_version",
    "recipe_tags",
    "sort_versions",
    "version_key",
]

IdentKey = tuple[bool, int | str]  # (is text, the identifier): numbers below text
PrereleaseKey = tuple[bool] | tuple[bool, tuple[IdentKey, ...]]  # a release: (True,)
AppKey = tuple[IdentKey, ...]
Key = tuple[int, int, int, PrereleaseKey, AppKey, str]
"""A tag's sort key: major, minor, patch, prerelease, app, and the tag itself (a total order)."""


class InvalidRecipeVersion(ValueError):
    """A tag that is not a recipe version (and so never a release)."""


_APP_TOKEN = re.compile(r"\d+|[^\d.\-_+~]+")


def _ident_key(ident: str) -> IdentKey:
    # numeric identifiers sort below alphanumeric ones, numerically; text ones as text
    return (False, int(ident)) if ident.isdigit() else (True, ident)


def _prerelease_key(prerelease: str | None) -> PrereleaseKey:
    # A release sorts above every prerelease of the same MAJOR.MINOR.PATCH.
    if prerelease is None:
        return (True,)
    return (False, tuple(_ident_key(ident) for ident in prerelease.split(".")))


def _app_key(app: str | None) -> AppKey:
    """A natural-order key for the upstream app part (``v`` prefix ignored).

    ``1.15`` < ``1.15.3`` and ``1.9`` < ``1.10``; this is only a tie-break
    between tags that share a recipe version.
    """
    if app is None:
        return ()
    text = app[1:] if app[:1] in ("v", "V") and app[1:2].isdigit() else app
    return tuple(_ident_key(tok) for tok in _APP_TOKEN.findall(text))


@dataclass(frozen=True, order=True)
class RecipeVersion:
    """One parsed recipe tag.  Versions compare (``<``, ``==``, ``max``) by ``key``."""

    raw: str = field(compare=False)
    major: int = field(compare=False)
    minor: int = field(compare=False)
    patch: int = field(compare=False)
    prerelease: str | None = field(compare=False)
    app: str | None = field(compare=False)
    key: Key = field(repr=False)

    @property
    def recipe(self) -> str:
        """The recipe semver part, without the app part."""
        base = f"{self.major}.{self.minor}.{self.patch}"
        return f"{base}-{self.prerelease}" if self.prerelease else base

    @property
    def is_prerelease(self) -> bool:
        return self.prerelease is not None


def _parse_version(tag: str) -> RecipeVersion:
    """Parse ``tag``; raise :class:`InvalidRecipeVersion` if it is not a recipe version."""
    if not isinstance(tag, str):
        raise InvalidRecipeVersion(f"not a string: {tag!r}")
    text = tag[1:] if tag[:1] == "v" else tag
    try:
        sv = semver.Version.parse(text)
    except (ValueError, TypeError):
        raise InvalidRecipeVersion(
            f"{tag!r} is not a recipe version ([v]MAJOR.MINOR.PATCH[-PRE][+APP])"
        ) from None
    key = (sv.major, sv.minor, sv.patch, _prerelease_key(sv.prerelease), _app_key(sv.build), tag)
    return RecipeVersion(tag, sv.major, sv.minor, sv.patch, sv.prerelease, sv.build, key)


# Sweeps and sorts parse the same tags again and again; a tag's version never changes.
parse_version = lru_cache(maxsize=65536)(_parse_version)


def is_version(tag: str) -> bool:
    try:
        parse_version(tag)
    except InvalidRecipeVersion:
        return False
    return True


def version_key(tag: str) -> Key:
    """The total-order key of ``tag``; raises :class:`InvalidRecipeVersion`."""
    return parse_version(tag).key


def recipe_tags(tags: Iterable[str], *, allow_prerelease: bool = False) -> list[RecipeVersion]:
    """The release versions among ``tags`` (unsorted); others are dropped."""
    out = []
    for tag in tags:
        try:
            v = parse_version(tag)
        except InvalidRecipeVersion:
            continue
        if allow_prerelease or not v.is_prerelease:
            out.append(v)
    return out


def sort_versions(tags: Iterable[str]) -> list[str]:
    """The recipe versions among ``tags`` (prereleases included), oldest first.

    Tags that do not parse are left out; use :func:`is_version` to find them.
    """
    return [v.raw for v in sorted(recipe_tags(tags, allow_prerelease=True))]


def latest_release(tags: Iterable[str], allow_prerelease: bool = False) -> str | None:
    """The newest release tag in ``tags``, or None when there is none."""
    versions = recipe_tags(tags, allow_prerelease=allow_prerelease)
    return max(versions).raw if versions else None


def newest_older_version(
    tags: Iterable[str], version: str, *, allow_prerelease: bool = False
) -> str | None:
    """The newest release in ``tags`` strictly older than ``version``."""
    ceiling = version_key(version)
    older = [v for v in recipe_tags(tags, allow_prerelease=allow_prerelease) if v.key < ceiling]
    return max(older).raw if older else None
