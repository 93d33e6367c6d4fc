"""The proofs behind canon's promises, as experiments and as claims re-derived from a registry.

Experiments (``prove_*``) run in a scratch copy of one recipe's mirror with a
scratch registry, through the same sweep, runner and promote code as the real
thing.  Claims (``*_claims``) are pure re-derivations from registry rows, so
``canon verify`` can re-check a proof from cold.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

from canonlib import git
from canonlib.backends import SwarmBackend, SwarmPool, make_backend
from canonlib.claims import Claim, ClaimJSON
from canonlib.config import Config, load_config
from canonlib.evidence.records import (
    DiskRecord,
    PhaseFacts,
    SameverRecord,
    TaggedPromoteRecord,
)
from canonlib.recipe.builder import UpstreamRepo
from canonlib.recipe.meta import load_meta
from canonlib.recipe.mirror import Mirror, mirror_for
from canonlib.recipe.versions import latest_release, parse_version
from canonlib.state.registry import Registry
from canonlib.state.row import Outcome, ResultRow, RowJSON, parse_label
from canonlib.sweep import policy
from canonlib.sweep.orchestrate import sweep
from canonlib.sweep.promote import promote
from canonlib.sweep.runner import cold_run

LABEL_RE = re.compile(r"(coop-cloud\.\$\{STACK_NAME\}\.version=)([^\"'\s]+)")


class TaggedPromoteFacts(TaggedPromoteRecord):
    """What the tagged-promote proof found: its record (what the notebook records) and the
    claims it re-derived from them."""

    claims: list[ClaimJSON]


class SameverFacts(SameverRecord):
    """What the same-version proof found: its record, its three scratch sweeps' rows (the
    notebook records the shown part) and the claims it re-derived."""

    rows: list[RowJSON]
    claims: list[ClaimJSON]


# -- scratch workspace --------------------------------------------------------------


class Scratch:
    """A scratch upstream (a clone of the real mirror) and a scratch state dir for one recipe."""

    def __init__(self, config: Config, recipe: str, workdir: Path):
        self.recipe = recipe
        self.workdir = Path(workdir)
        self.upstream = self.workdir / "upstream" / recipe
        self.workdir.mkdir(parents=True, exist_ok=True)
        git.run(
            [
                "clone",
                "--quiet",
                "--branch",
                config.branch_for(recipe),
                "--",
                str(config.mirror_path(recipe)),
                str(self.upstream),
            ]
        )
        self.repo = UpstreamRepo(self.upstream, config.branch_for(recipe))
        toml = self.workdir / "canon.toml"
        cmd = ", ".join(f'"{c}"' for c in config.harness_command)
        # the real backend (a swarm fleet's metas and tests only work on the swarm), but the
        # scratch's own slots: its own state dir, so its own swarm instance label
        backend = "\n".join(
            f"{k} = {json.dumps(v)}" for k, v in config.backend.items() if k != "instance"
        )
        toml.write_text(
            textwrap.dedent(f'''\
            # scratch config of a proof: the real fleet, a scratch upstream and state
            fleet = "{config.fleet}"
            state_dir = "{self.workdir / "state"}"
            evidence_dir = "{self.workdir / "evidence"}"
            upstream = "{self.workdir / "upstream"}/{{recipe}}"
            branch = "{config.branch_for(recipe)}"
            [backend]
            @backend@
            [harness]
            command = [{cmd}]
            timeout_s = {config.harness_timeout_s}
        ''').replace("@backend@", backend)
        )
        self.config = load_config(toml, env_overrides=False)

    def mirror(self) -> Mirror:
        c = self.config
        return mirror_for(c, self.recipe, branch=c.branch_for(self.recipe))

    def untagged_commit(self) -> str:
        notes = self.upstream / "NOTES.md"
        text = (notes.read_text() if notes.exists() else "") + "untagged work on main\n"
        return self.repo.commit({"NOTES.md": text}, "chore: untagged work on main")

    def bump(self, latest: str) -> tuple[str, str]:
        """Commit a release candidate one patch above ``latest``, untagged.

        Its version label and release note are updated.
        """
        v = parse_version(latest)
        existing = set(git.run(["tag", "-l"], cwd=self.upstream).stdout.split())
        patch = v.patch + 1
        while (tag := f"{v.major}.{v.minor}.{patch}" + (f"+{v.app}" if v.app else "")) in existing:
            patch += 1
        files = {f"release/{tag}": f"{tag}: a release made by a canon proof\n"}
        compose = self.upstream / "compose.yml"
        if compose.exists():
            files["compose.yml"] = LABEL_RE.sub(lambda m: m.group(1) + tag, compose.read_text())
        return tag, self.repo.commit(files, f"chore: publish {tag} release")

    def tag(self, tag: str, commit: str) -> None:
        self.repo.tag(tag, commit)


# -- tagged promote -------------------------------------------------------------------


def purge_scratch(workdir: Path) -> None:
    """Remove every scratch slot of a proof on a swarm, canonicals too.

    They outlive the proof's scratch dir.
    """
    toml = Path(workdir) / "canon.toml"
    if not toml.exists():
        return
    backend = make_backend(load_config(toml, env_overrides=False))
    if isinstance(backend, SwarmBackend | SwarmPool):  # the backends named swarm
        backend.purge()


def prove_tagged_promote(config: Config, recipe: str, workdir: Path) -> TaggedPromoteFacts:
    """A green run on an untagged commit never promotes; the same commit once tagged does."""
    s = Scratch(config, recipe, workdir)
    meta = load_meta(config.fleet_tests / recipe)
    mirror = s.mirror()
    report = mirror.sync()
    latest = latest_release(report.tags, allow_prerelease=meta.ALLOW_PRERELEASE)
    if latest is None:
        raise ValueError(f"{recipe} has no release to build on")
    tag, commit = s.bump(latest)
    mirror.sync()
    phases: dict[str, PhaseFacts] = {}
    backend = make_backend(s.config)  # the scratch's own slots, on the config's backend
    env = s.config.child_env()
    with Registry.open(s.config.db_path) as reg:
        for phase in ("untagged", "tagged"):
            if phase == "tagged":
                s.tag(tag, commit)
                mirror.sync()
            ctx = (
                mirror.checkout_commit(commit, tag) if phase == "untagged" else mirror.checkout(tag)
            )
            with ctx as co:
                cold = cold_run(
                    recipe,
                    co,
                    meta,
                    command=s.config.harness_command,
                    env=env,
                    timeout_s=s.config.harness_timeout_s,
                    log_path=s.config.runs_dir / phase / f"{recipe}.log",
                )
                tagged = mirror.tag_commit(tag) == cold.commit
                gate = policy.gate_reason(
                    enrolled=True, green=cold.green, cold=True, is_ref=False, tagged=tagged
                )
                promoted = None
                if gate is None:
                    promoted = promote(
                        co,
                        meta,
                        mirror=mirror,
                        backend=backend,
                        registry=reg,
                        run_id=f"proof-{phase}",
                    ).ok
            phases[phase] = PhaseFacts(
                green=cold.green,
                level=cold.level,
                tagged=tagged,
                gate=gate,
                promoted=bool(promoted),
            )
    record = TaggedPromoteRecord(
        recipe=recipe,
        tag=tag,
        commit=commit,
        base_release=latest,
        scratch_db=str(s.config.db_path),
        untagged=phases["untagged"],
        tagged=phases["tagged"],
    )
    derived = tagged_promote_claims(s.config.db_path, recipe, tag, commit, record)
    return TaggedPromoteFacts(**record, claims=[c.to_dict() for c in derived])


def tagged_promote_claims(
    db: Path, recipe: str, tag: str, commit: str, facts: TaggedPromoteRecord
) -> list[Claim]:
    """Re-derive the tagged-promote proof from its scratch registry."""
    with Registry.open(db) as reg:
        history = reg.history(recipe)
        current = reg.read_registry(recipe)
    untagged_rows = [p for p in history if p.run_id == "proof-untagged"]
    tagged_rows = [p for p in history if p.run_id == "proof-tagged"]
    return [
        Claim(
            "untagged run was green",
            bool(facts["untagged"]["green"]),
            f"level {facts['untagged']['level']} at untagged {commit[:12]}",
        ),
        Claim(
            "green-but-untagged did not promote",
            not untagged_rows and facts["untagged"]["gate"] is not None,
            f"gate: {facts['untagged']['gate']}; promotions in that phase: {len(untagged_rows)}",
        ),
        Claim(
            "the same commit, once tagged, promoted",
            len(tagged_rows) == 1
            and (tagged_rows[0].tag, tagged_rows[0].commit) == (tag, commit)
            and current is not None
            and (current.version, current.commit) == (tag, commit),
            f"canonical now {current.version if current else None} @ "
            f"{current.commit[:12] if current else None}",
        ),
    ]


# -- same-version orthogonality ------------------------------------------------------


def prove_samever(config: Config, recipe: str, workdir: Path) -> SameverFacts:
    """Untagged commits -> SKIP; a new tag -> run on it from the canonical; never a step-back."""
    s = Scratch(config, recipe, workdir)
    only = [recipe]
    first = sweep(s.config, only=only).results[0]
    s.untagged_commit()
    second = sweep(s.config, only=only).results[0]
    tag, commit = s.bump(first.latest or "0.0.0")
    s.tag(tag, commit)
    third = sweep(s.config, only=only).results[0]
    with Registry.open(s.config.db_path) as reg:
        run_ids = [r["run_id"] for r in reg.runs("sweep")]
    return SameverFacts(
        recipe=recipe,
        runs=run_ids,
        new_tag=tag,
        new_commit=commit,
        scratch_db=str(s.config.db_path),
        rows=[r.to_dict() for r in (first, second, third)],  # the notebook's records
        claims=[c.to_dict() for c in samever_claims(s.config.db_path, recipe, run_ids, tag)],
    )


def samever_claims(db: Path, recipe: str, run_ids: list[str], tag: str) -> list[Claim]:
    with Registry.open(db) as reg:
        rows = {r.run_id: r for r in reg.results(recipe=recipe) if r.run_id in run_ids}
        all_rows = reg.results()
        hist = reg.history(recipe)
    if len(run_ids) != 3 or any(r not in rows for r in run_ids):
        return [Claim("three scratch sweeps recorded", False, f"found {sorted(rows)}")]
    first, second, third = (rows[r] for r in run_ids)
    return [
        Claim(
            "first sweep promoted the latest release",
            first.parsed_label.promoted,
            f"{first.label} {first.latest}",
        ),
        Claim(
            "untagged commits on main -> SKIP",
            second.label == "SKIP (no-new-version)" and second.tested_commit is None,
            f"{second.label}",
        ),
        Claim(
            "new tag -> run on that tag from the canonical",
            third.decision == "run"
            and third.latest == tag
            and third.upgrade_base_kind == "canonical"
            and third.upgrade_base == first.latest,
            f"base {third.upgrade_base_kind} {third.upgrade_base}",
        ),
        Claim(
            "canonical advanced old -> new",
            (third.canonical_before, third.canonical_after) == (first.latest, tag)
            and hist[-1].version == tag,
            f"{third.canonical_before} -> {third.canonical_after}",
        ),
        Claim(
            "no run ever had base kind step-back",
            all(r.upgrade_base_kind != "step-back" for r in all_rows),
            f"{len(all_rows)} result rows checked",
        ),
    ]


# -- determinism ---------------------------------------------------------------------


def settled(row: ResultRow | None, *, held: bool = True) -> bool:
    """Whether a sweep's row left nothing to do for its tag: promoted, red (a verdict, remembered
    as known-red), a skip, or (``held``) held for what it asks of the host (remembered until
    the release or its HOST_ACCESS changes: the week's outcome, like FAIL).  Unsettled: an
    ERROR, a timeout, a green release not promoted.  ``held=False``: as evidence format 2 and
    older re-derived it (a held row unsettled)."""
    if row is None:
        return False
    label = row.parsed_label
    if held and row.decision == policy.HELD_HOST:
        return True
    return label.skipped or label.promoted or row.verdict == "red"


def _label_of(row: ResultRow | None) -> str | None:
    return row.label if row is not None else None


def determinism_claims(reg: Registry, run_id: str, *, held_settled: bool = True) -> list[Claim]:
    """A sweep straight after another.

    What the first settled runs no harness and is not promoted; only its unfinished business
    (an ERROR, a timeout, a green release not promoted) is tried again.  ``held_settled``: a
    row held for host access is settled (evidence format 3 on; False re-derives the claims of
    format 2 and older, word for word).
    """

    def done_with(row: ResultRow | None) -> bool:
        return settled(row, held=held_settled)

    idle_ok = (
        {Outcome.SKIP, Outcome.HELD, Outcome.ERROR}
        if held_settled
        else {Outcome.SKIP, Outcome.ERROR}
    )
    idle_name = (
        "rows that ran nothing are SKIP, HELD or a stage ERROR"
        if held_settled
        else "rows that ran nothing are SKIP or a stage ERROR"
    )
    rows = reg.results(run_id)
    sweeps = [r["run_id"] for r in reg.runs("sweep")]
    at = sweeps.index(run_id) if run_id in sweeps else 0
    first_id = sweeps[at - 1] if at > 0 else None
    first = {r.recipe: r for r in reg.results(first_id)} if first_id else {}
    done = [r for r in rows if done_with(first.get(r.recipe))]
    ran = [r for r in rows if r.tested_commit is not None or r.log_path is not None]
    idle = [r for r in rows if r not in ran]
    promoted = {p.recipe for p in reg.history() if p.run_id == run_id}
    known_red = sorted(r.recipe for r in rows if r.decision == policy.SKIP_KNOWN_RED)
    tried = ", ".join(r.recipe + " (was " + str(_label_of(first.get(r.recipe))) + ")" for r in ran)
    return [
        Claim(
            "the second sweep has rows, after a first",
            bool(rows) and first_id is not None,
            f"{len(rows)} rows in run {run_id}, after sweep {first_id}",
        ),
        Claim(
            "what the first sweep settled ran no harness",
            not [r for r in done if r in ran],
            f"{len(done)} settled (known-red: {', '.join(known_red) or 'none'}); "
            f"ran anyway: {', '.join(r.recipe for r in done if r in ran) or 'none'}",
        ),
        Claim(
            "no promotion written for a settled recipe",
            not promoted & {r.recipe for r in done},
            f"promotions in run {run_id}: {', '.join(sorted(promoted)) or 'none'}",
        ),
        Claim(
            "a harness ran only for unfinished business",
            all(not done_with(first.get(r.recipe)) for r in ran),
            f"tried again: {tried or 'none'}",
        ),
        Claim(
            idle_name,
            all(r.outcome in idle_ok for r in idle),
            ", ".join(sorted({str(r.label)[:24] for r in idle})),
        ),
    ]


# -- disk -------------------------------------------------------------------------------


def disk_claims(disk: DiskRecord) -> list[Claim]:
    """Re-derive the disk claims from the recorded figures: they add up, and stay within budget."""
    rows, shared = disk["rows"], disk["shared"]
    parts = sum(r["mirror_bytes"] + r["slot_bytes"] for r in rows) + sum(shared.values())
    return [
        Claim(
            "disk figures add up",
            parts == disk["total_bytes"],
            f"{len(rows)} recipes + {len(shared)} shared = {parts:,}; "
            f"total shown {disk['total_bytes']:,}",
        ),
        Claim(
            "disk within budget",
            disk["total_bytes"] <= disk["budget_bytes"],
            f"{disk['total_bytes']:,} of {disk['budget_bytes']:,} bytes",
        ),
    ]


# -- labels from the registry -----------------------------------------------------------


def promoted_in_history(reg: Registry, row: ResultRow) -> bool:
    """Whether this row's run wrote (recipe, latest, tested_commit) into the promotion history."""
    return any(
        p.run_id == row.run_id and p.version == row.latest and p.commit == row.tested_commit
        for p in reg.history(row.recipe)
    )


def label_claims(reg: Registry, claimed_rows: list[RowJSON]) -> list[Claim]:
    """Each claimed row equals the registry's row, and PASS (promoted) iff the history says so."""
    claims = []
    for row in claimed_rows:
        name = f"label of run {row.get('run_id')} recipe {row.get('recipe')}"
        stored = reg.results(row.get("run_id"), row.get("recipe"))
        if not stored:
            claims.append(Claim(name, False, "no such row in the registry"))
        elif stored[0].label != row.get("label"):
            claims.append(
                Claim(
                    name,
                    False,
                    f"evidence says {row.get('label')!r}, registry says {stored[0].label!r}",
                )
            )
        else:
            promoted = promoted_in_history(reg, stored[0])
            claims.append(
                Claim(
                    name,
                    parse_label(row.get("label")).promoted == promoted,
                    f"{row.get('label')}; "
                    f"promotion history: {'promoted' if promoted else 'not promoted'}",
                )
            )
    return claims
