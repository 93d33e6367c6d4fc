"""What a sweep's decisions and labels mean, in words: the one table of each.

- :data:`FAILING_LABELS`: the outcomes that make a sweep (and a week) fail;
- :data:`DECISION_WORDS`: each skip decision said two ways, ``plan`` (what a sweep
  would do: ``canon sweep --plan``) and ``report`` (why a recorded row was skipped:
  the evidence pages);
- :func:`plan_notes`: the plan's line for each row.

Pure: rows in, words out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from canonlib.state.row import Outcome, ResultRow
from canonlib.sweep.policy import (
    HELD_HOST,
    RUN,
    SKIP_COOLING,
    SKIP_HELD,
    SKIP_KNOWN_RED,
    SKIP_NEVER,
    SKIP_NO_NEW,
)

# the heads of the labels that fail a week (:data:`canonlib.state.row.FAILING`; HELD (host
# access), a release asking the host for more than accepted, fails it like FAIL), worst first;
# read a label with :func:`canonlib.state.row.parse_label`, not by these prefixes
FAILING_LABELS = tuple(
    o.value for o in (Outcome.FAIL, Outcome.ERROR, Outcome.GREEN_BUT_PROMOTE_FAILED, Outcome.HELD)
)


@dataclass(frozen=True)
class Words:
    plan: str  # str.format'ed with the row
    report: str


DECISION_WORDS: dict[str, Words] = {
    SKIP_NO_NEW: Words(
        plan="nothing to do: the canonical {canonical_before} is the newest release",
        report="no release newer than the canonical {canonical_before}",
    ),
    SKIP_NEVER: Words(
        plan="nothing to do: upstream has no release tag yet",
        report="upstream has no release tag yet",
    ),
    SKIP_HELD: Words(
        plan="held (HOLD in its recipe_meta.py): skipped, the canonical stays",
        report="held by the fleet's HOLD",
    ),
    SKIP_KNOWN_RED: Words(
        plan="{latest} was already tested red with these tests and harness: not re-run",
        report="its latest tag {latest} is known red",
    ),
    SKIP_COOLING: Words(
        plan="{latest} is cooling (release cooldown): {reason}",
        report="its latest tag {latest} is younger than the release cooldown",
    ),
    HELD_HOST: Words(
        plan="{latest} asks the host for more than HOST_ACCESS accepts: not deployed ({reason})",
        report="its latest tag {latest} asks the host for more than HOST_ACCESS accepts",
    ),
}


def _fill(template: str, row: ResultRow) -> str:
    return template.format_map(
        {"canonical_before": row.canonical_before, "latest": row.latest, "reason": row.reason}
    )


def plan_note(row: ResultRow) -> str:
    """What a sweep would do with one recipe, in words (``sweep --plan``)."""
    decision = row.decision
    if row.error:
        return f"cannot plan: {row.error}; fix that, then plan again"
    if decision == RUN:
        base = (
            f"L2 upgrades from {row.upgrade_base} ({row.upgrade_base_kind})"
            if row.upgrade_base
            else "no upgrade base yet, so L2 is skipped"
        )
        return f"would cold-test {row.latest} ({base}) and promote it if green"
    words = DECISION_WORDS.get(str(decision))
    return _fill(words.plan, row) if words else str(row.label)


def plan_notes(rows: Sequence[ResultRow]) -> list[str]:
    return [f"{r.recipe}: {plan_note(r)}" for r in rows]
