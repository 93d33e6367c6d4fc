"""Pure decisions: what a sweep does with a recipe, whether it promotes, how it is labelled.

No I/O, no clock: every function is a function of its arguments.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from canonlib.recipe.meta import RUNGS
from canonlib.recipe.versions import newest_older_version, recipe_tags, version_key
from canonlib.state.row import Cause, ResultRow, label_text
from canonlib.state.row import Outcome as LabelOutcome

RUN = "run"
SKIP_NO_NEW = "skip:no-new-version"
SKIP_NEVER = "skip:never-released"
SKIP_HELD = "skip:held"
SKIP_KNOWN_RED = "skip:known-red"
SKIP_COOLING = "skip:cooling"
HELD_HOST = "held:host-access"  # asks the host for more than HOST_ACCESS accepts: not deployed

PASS, FAIL, SKIP, UNVERIFIED = "pass", "fail", "skip", "unverified"
STATUSES = (PASS, FAIL, SKIP, UNVERIFIED)


def sweep_decision(
    latest_tag: str | None,
    canon_version: str | None,
    hold: str | None = None,
    known_red: str | None = None,
) -> str:
    """``run`` when upstream has a release newer than the canonical, else a ``skip:*``.

    Keyed on versions, never on commits: untagged commits never trigger a run.
    ``known_red`` is the memory (see :func:`known_red`): the run that already found
    exactly this tag red; such a tag is ``skip:known-red`` instead of a run.
    """
    if hold:
        return SKIP_HELD
    if latest_tag is None:
        return SKIP_NEVER
    if canon_version is None or version_key(latest_tag) > version_key(canon_version):
        return SKIP_KNOWN_RED if known_red else RUN
    return SKIP_NO_NEW


def cooling_until(first_seen: float | None, min_age_s: float, now: float) -> float | None:
    """When a tag first seen at ``first_seen`` (epoch seconds, by canon's mirror) becomes
    eligible under a cooldown of ``min_age_s``; None when it already is (or there is none).

    Measured from when canon first saw the tag, never from its date: a back-dated tag gains
    nothing.  A tag canon has no first sighting of is seen ``now``.
    """
    if min_age_s <= 0:
        return None
    eligible = (now if first_seen is None else first_seen) + min_age_s
    return eligible if now < eligible else None


@dataclass(frozen=True)
class HeldKey:
    """What a host-access hold is about: one tag at one commit, and what the meta accepted."""

    tag: str
    commit: str
    accepted: tuple[str, ...]


def held_key(row: ResultRow) -> HeldKey | None:
    """The key a HELD row holds, or None for any other row."""
    if row.decision != HELD_HOST or not row.latest or not row.tag_commit:
        return None
    return HeldKey(row.latest, row.tag_commit, tuple(row.host_accepted or ()))


def known_held(earlier: Iterable[ResultRow], key: HeldKey) -> ResultRow | None:
    """The newest earlier row that held exactly ``key`` (same tag, commit and HOST_ACCESS),
    or None.  The hold lasts until the release or the meta changes; a row that deployed
    ``key``'s tag since (the operator's ``--retry``) ends it."""
    found = None
    for row in earlier:
        if held_key(row) == key:
            found = row
        elif row.decision == RUN and row.latest == key.tag:
            found = None
    return found


def backports(
    added: Iterable[str],
    canon_version: str | None,
    allow_prerelease: bool = False,
) -> list[str]:
    """Release tags new since the last sync that sort below the canonical: back-ports.

    A back-port (``5.0.3+27.0.1-fpm`` published after ``6.0.1+28.0.2-fpm`` is the
    canonical) is never tested or promoted: the sweep only moves forward.  It is
    named in the row so the operator knows it was seen.  Oldest first.
    """
    if canon_version is None:
        return []
    floor = version_key(canon_version)
    new = recipe_tags(added, allow_prerelease=allow_prerelease)
    return [v.raw for v in sorted(new) if v.key < floor]


def backport_reason(tags: list[str], canon_version: str) -> str:
    """The row's words for :func:`backports` (``SKIP (no-new-version)``'s reason)."""
    named = ", ".join(tags)
    return (
        f"newer tag exists: {named} (published since the last sweep) is lower than the "
        f"canonical {canon_version}, so it is a back-port: not tested, not promoted"
    )


@dataclass(frozen=True)
class RedKey:
    """What a verdict is about: one tag at one commit, the fleet's tests for the recipe
    (a digest of ``tests/<recipe>/``) and the harness (canon's identity + command)."""

    tag: str
    commit: str
    fleet_tests: str
    harness: str


def row_key(row: ResultRow) -> RedKey | None:
    """The key a result row holds a verdict on, or None when the row tested nothing."""
    if row.latest and row.tested_commit and row.fleet_tests and row.harness:
        return RedKey(row.latest, row.tested_commit, row.fleet_tests, row.harness)
    return None


def known_red(earlier: Iterable[ResultRow], key: RedKey) -> ResultRow | None:
    """The earlier result row that makes ``key`` known-red, or None.

    ``earlier`` is the recipe's result rows, oldest first.  Only rows that ran the
    harness on exactly ``key`` and reached a verdict count (``verdict`` green/red; an
    error or a timeout is no verdict), and the newest verdict decides.  A red row whose
    cause is a full disk (its recorded cause, else, for a row from before causes, its
    words: :func:`canonlib.state.row.row_cause`) is no verdict either.
    """
    found = None
    for row in earlier:
        if row.decision != RUN or row_key(row) != key:
            continue
        if row.verdict == "red" and row.cause is Cause.FULL_DISK:
            continue  # a full disk made it fail (an older canon called it red): no verdict
        if row.verdict == "red":
            found = row
        elif row.verdict == "green":
            found = None
    return found


NEARLY_FULL_BYTES = 1 << 30  # at most this little free ...
NEARLY_FULL_SHARE = 20  # ... and less than 1/20 (5 %) of the filesystem


def nearly_full(free: int, total: int) -> bool:
    """Whether a filesystem with ``free`` of ``total`` bytes is too full to trust a failure.

    A run that fails there may have failed for want of space (a shell's ``echo: I/O
    error``, git's ``failed to write new configuration file``): such a failure is no
    verdict about the recipe.  Almost full is less than 5 % free and at most 1 GiB.
    """
    return free * NEARLY_FULL_SHARE < total and free < NEARLY_FULL_BYTES


def gate_reason(
    *, enrolled: bool, green: bool, cold: bool, is_ref: bool, tagged: bool
) -> str | None:
    """Why promotion is refused, or None when it is allowed."""
    if not enrolled:
        return "not enrolled"
    if not green:
        return "not green"
    if not cold:
        return "not a cold run"
    if is_ref:
        return "ref build"
    if not tagged:
        return "untagged: tested commit is not the tag's commit"
    return None


def rung_list(rungs: Mapping[str, str]) -> list[str]:
    """Statuses in rung order; a rung the result does not mention is ``unverified``."""
    return [rungs.get(r, UNVERIFIED) for r in RUNGS]


def first_failure(rungs: Mapping[str, str], reasons: Mapping[str, str]) -> str | None:
    """``"L<k> <rung>: <reason>"`` for the lowest rung that is neither ``pass`` nor ``skip``."""
    for i, (rung, status) in enumerate(zip(RUNGS, rung_list(rungs), strict=True), start=1):
        if status not in (PASS, SKIP):
            return f"L{i} {rung}: {reasons.get(rung) or status}"
    return None


def level(rungs: Mapping[str, str]) -> int:
    """The highest rung (1-based) that passed with every lower rung ``pass`` or ``skip``."""
    top = 0
    for i, status in enumerate(rung_list(rungs), start=1):
        if status == PASS:
            top = i
        elif status != SKIP:
            break
    return top


def is_green(rungs: Mapping[str, str], tests_executed: int) -> bool:
    """Every rung passed or was skipped, one passed, and at least one test ran."""
    statuses = rung_list(rungs)
    return all(s in (PASS, SKIP) for s in statuses) and PASS in statuses and tests_executed > 0


@dataclass(frozen=True)
class UpgradeBase:
    kind: str  # pin | canonical | step-back | skip
    version: str | None
    reason: str
    # the exact commit to install first; the sweep fills it in (for the canonical: the
    # deployed commit from the registry, which still works when its tag is gone upstream)
    commit: str | None = None


def upgrade_base(
    head_version: str,
    canonical_version: str | None,
    tags: Iterable[str],
    pin: str | None = None,
    *,
    allow_prerelease: bool = False,
) -> UpgradeBase:
    """What the upgrade rung upgrades *from* when testing ``head_version``."""
    if pin:
        return UpgradeBase("pin", pin, "UPGRADE_BASE_VERSION in recipe_meta.py")
    if canonical_version is None:
        return UpgradeBase("skip", None, "no canonical yet")
    if version_key(canonical_version) != version_key(head_version):
        return UpgradeBase("canonical", canonical_version, "the current canonical")
    older = newest_older_version(tags, head_version, allow_prerelease=allow_prerelease)
    if older is None:
        return UpgradeBase("skip", None, f"no release older than {head_version}")
    return UpgradeBase("step-back", older, f"canonical is {head_version}: newest older release")


@dataclass(frozen=True)
class Turn:
    """What happened in one recipe's turn of a sweep, as its label needs it."""

    decision: str
    green: bool | None = None
    level: int | None = None
    timed_out: bool = False
    gate: str | None = None  # None: the gate allowed promotion
    tested_version: str | None = None
    tested_commit: str | None = None
    error: str | None = None  # "<stage>: <message>"


def outcome(turn: Turn, record_version: str | None, record_commit: str | None) -> LabelOutcome:
    """The turn's outcome, from the registry record read *after* its turn."""
    if turn.error:
        return LabelOutcome.ERROR
    if turn.decision == HELD_HOST:
        return LabelOutcome.HELD
    if turn.decision != RUN:
        return LabelOutcome.SKIP
    if not turn.green:
        return LabelOutcome.FAIL
    if (record_version, record_commit) == (turn.tested_version, turn.tested_commit):
        return LabelOutcome.PASS
    if turn.gate is None:
        return LabelOutcome.GREEN_BUT_PROMOTE_FAILED
    return LabelOutcome.GREEN_NOT_PROMOTED


def label(turn: Turn, record_version: str | None, record_commit: str | None) -> str:
    """The recipe's label (its outcome in words), derived from the registry record read
    *after* its turn."""
    head = outcome(turn, record_version, record_commit)
    words: str | None = None
    if head is LabelOutcome.ERROR:
        words = turn.error
    elif head is LabelOutcome.HELD:
        words = "host access"
    elif head is LabelOutcome.SKIP:
        words = turn.decision.removeprefix("skip:")
    elif head is LabelOutcome.FAIL:
        words = "timeout" if turn.timed_out else f"level {turn.level or 0}/{len(RUNGS)}"
    elif head is LabelOutcome.PASS:
        words = "promoted"
    elif head is LabelOutcome.GREEN_NOT_PROMOTED:
        words = turn.gate
    return label_text(head, words)


def plan_label(words: str) -> str:
    """A ``sweep --plan`` row's label."""
    return label_text(LabelOutcome.PLAN, words)
