"""A faithful bare mirror of one recipe: upstream's branch and tags, nothing else.

``Mirror.sync()`` first asks upstream for its refs (one ``git ls-remote``);
when they already equal the mirror's, nothing is fetched.  Otherwise one
atomic ``git fetch`` with explicit refspecs makes the mirror's branch and tags
exactly upstream's (added, deleted, moved, force-pushed), and the report says
what changed.  ``checkout(tag)`` gives a clean detached tree at the tag's
commit.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from canonlib import git, process
from canonlib.config import Config
from canonlib.errors import CanonError
from canonlib.files import FileProblem, read_json_file, read_small_file, write_atomic
from canonlib.recipe.versions import InvalidRecipeVersion, parse_version

HEADS, TAGS = "refs/heads/", "refs/tags/"
FIRST_SEEN_CAP = 16 * 1024 * 1024  # tag -> {commit, first_seen}: a few hundred bytes a tag


class FirstSeen(TypedDict):
    """When canon's mirror first saw a tag at a commit (epoch seconds): one entry of
    ``<recipe>.first-seen.json``."""

    commit: str
    first_seen: float


class SyncError(CanonError):
    """A sync that could not complete; the mirror is as it was before."""


class CheckoutError(CanonError):
    pass


@dataclass
class SyncReport:
    recipe: str
    url: str
    branch: str
    fetched: bool = False
    branch_old: str | None = None
    branch_new: str | None = None
    fast_forward: bool | None = None
    tags: dict[str, str] = field(default_factory=dict)  # release-or-not tag -> peeled commit
    added: list[str] = field(default_factory=list)
    deleted: dict[str, str] = field(default_factory=dict)  # tag -> commit it had
    moved: dict[str, tuple[str, str]] = field(default_factory=dict)  # tag -> (old, new) commit
    not_releases: list[str] = field(default_factory=list)
    invalid_tags: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def incidents(self) -> list[str]:
        """Moved and deleted tags: the sweep refuses to promote across them."""
        out = [f"tag {t} moved {o[:12]} -> {n[:12]}" for t, (o, n) in sorted(self.moved.items())]
        out += [f"tag {t} deleted (was {c[:12]})" for t, c in sorted(self.deleted.items())]
        return out

    def summary(self) -> str:
        parts = [f"{self.recipe}: {'fetched' if self.fetched else 'unchanged (fetch skipped)'}"]
        if self.branch_old is None and self.branch_new:
            parts.append(f"{self.branch} at {self.branch_new[:12]} (first sync)")
        elif self.branch_old != self.branch_new:
            ff = "fast-forward" if self.fast_forward else "FORCED"
            parts.append(
                f"{self.branch} {str(self.branch_old)[:12]} -> {str(self.branch_new)[:12]} ({ff})"
            )
        if self.added:
            parts.append(f"+{len(self.added)} tag(s)")
        parts += self.incidents + self.warnings
        return "; ".join(parts)


@dataclass(frozen=True)
class Checkout:
    path: Path
    tag: str
    commit: str

    def state_problem(self) -> str | None:
        """None when the tree is still at ``commit`` with no changes, else what moved."""
        head = git.run(["rev-parse", "HEAD"], cwd=self.path, check=False)
        if head.returncode != 0:
            return f"checkout {self.path} is no longer a git work tree"
        if head.stdout.strip() != self.commit:
            return f"checkout moved from {self.commit[:12]} to {head.stdout.strip()[:12]}"
        status = git.run(["status", "--porcelain", "--untracked-files=all"], cwd=self.path)
        if status.stdout.strip():
            first = status.stdout.strip().splitlines()[0]
            return f"checkout at {self.commit[:12]} is not clean ({first!r} …)"
        return None


def _gist(e: git.GitError) -> str:
    """git's own first complaint, e.g. "fatal: '…' does not appear to be a git repository"."""
    lines = [ln.strip() for ln in (e.stderr or "").splitlines() if ln.strip()]
    return next(
        (ln for ln in lines if ln.startswith(("fatal:", "error:"))), lines[0] if lines else str(e)
    )


# -- leftovers of dead runs ----------------------------------------------------
# Checkouts and unfinished clones carry their maker's pid in their name
# (``<recipe>~<pid>~<random>``): a dead maker's leftovers are reaped on the next
# start, a live one's are never touched.  Names without an owner come from an older
# canon and go once they are a day old.
_OWNER = re.compile(r"~(\d+)~")
LEGACY_AGE_S = 24 * 3600


def owner_tag() -> str:
    """``~pid~``: put in the name of what a run makes, so the next start can tell a dead run's."""
    return f"~{os.getpid()}~"


def _left_by_dead_run(entry: Path, now: float) -> bool:
    m = _OWNER.search(entry.name)
    if m:
        return not process.pid_alive(int(m.group(1)))
    try:
        return now - entry.lstat().st_mtime > LEGACY_AGE_S
    except OSError:
        return False


def _entries(directory: Path) -> list[Path]:
    try:
        return sorted(directory.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def reap_leftovers(
    checkouts_dir: str | Path, mirrors_dir: str | Path, tmp_dir: str | Path | None = None
) -> list[str]:
    """Remove checkouts, unfinished mirror clones and run temp dirs (``tmp_dir``) whose run is
    dead; say what went.

    Call it on start, under the sweep lock.  Returns one line per directory that
    had leftovers (none: an empty list).
    """
    now = time.time()
    checkouts_dir, mirrors_dir = Path(checkouts_dir), Path(mirrors_dir)
    groups = [
        ("checkout", checkouts_dir, _entries(checkouts_dir)),
        (
            "unfinished mirror clone",
            mirrors_dir,
            [
                p
                for p in _entries(mirrors_dir)
                if p.name.startswith(".") and ("-new" in p.name or "-broken" in p.name)
            ],
        ),
    ]
    if tmp_dir is not None:
        groups.append(("temp dir", Path(tmp_dir), _entries(Path(tmp_dir))))
    notes = []
    for what, where, entries in groups:
        gone = [p for p in entries if _left_by_dead_run(p, now)]
        for p in gone:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    p.unlink()
        if gone:
            names = ", ".join(p.name for p in gone[:5]) + (" …" if len(gone) > 5 else "")
            notes.append(f"reaped {len(gone)} {what}(s) left by dead runs in {where}: {names}")
    return notes


def _tag_map(refs: dict[str, str], peeled: dict[str, str]) -> dict[str, str]:
    return {
        ref[len(TAGS) :]: peeled.get(ref, oid) for ref, oid in refs.items() if ref.startswith(TAGS)
    }


def _kind(ref_oid: str | None, commit: str) -> str:
    return "lightweight" if ref_oid == commit else "annotated"


def reannotated(
    before: dict[str, str],
    after: dict[str, str],
    old_tags: dict[str, str],
    new_tags: dict[str, str],
) -> list[str]:
    """Tags re-created in place: the same name and commit, a new tag object (what abra's lint
    asks of a lightweight tag: ``git tag -d T && git tag -a T``).  A warning, not an incident:
    nothing about the release changed, so nothing is re-tested."""
    out = []
    for t, commit in sorted(new_tags.items()):
        was, now = before.get(TAGS + t), after.get(TAGS + t)
        if old_tags.get(t) == commit and was != now:
            a, b = _kind(was, commit), _kind(now, commit)
            change = f"{a} -> {b}" if a != b else f"{a}, a new tag object"
            out.append(
                f"tag {t} re-annotated in place ({change}, same commit {commit[:12]}): "
                "not a new release, not re-tested"
            )
    return out


class Mirror:
    """One recipe's mirror.  ``branch`` None means unset: ``main``, or upstream's default
    branch (with a warning) when upstream has no ``main``.  A branch that is set is
    honoured: when upstream lacks it the sync fails naming the branches upstream has."""

    def __init__(
        self,
        recipe: str,
        path: str | Path,
        upstream_url: str,
        branch: str | None = None,
        *,
        push_url: str | None = None,
        timeout_s: float = 120.0,
        checkouts_dir: str | Path | None = None,
    ):
        self.recipe = git.check_recipe_name(recipe)
        self.path = Path(path)
        self.url = upstream_url
        self.branch_set = branch is not None
        self.branch = git.check_ref_name(branch or "main", "branch")
        self.push_url = push_url
        self.timeout_s = timeout_s
        self.checkouts_dir = (
            Path(checkouts_dir) if checkouts_dir else self.path.parent / "checkouts"
        )

    def __repr__(self) -> str:
        return f"Mirror({self.recipe!r}, {str(self.path)!r}, {self.url!r})"

    # -- sync ----------------------------------------------------------------
    def sync(self) -> SyncReport:
        """Make the mirror equal upstream's branch and tags; report what changed.

        The no-change path costs one ``git ls-remote`` and a read of the mirror's
        ref files: no fetch, no other process.
        """
        t0 = time.monotonic()
        report = SyncReport(self.recipe, self.url, self.branch)
        try:
            up_refs, up_peeled = git.ls_remote(
                self.url, ["HEAD", HEADS + "*", TAGS + "*"], timeout=self.timeout_s
            )
        except git.GitError as e:
            up_refs, up_peeled = None, None
            report.warnings.append(f"ls-remote failed, fetching instead: {_gist(e)}")
        branch = self._choose_branch(up_refs, report)
        up_view = None
        if up_refs is not None:
            up_view = {
                r: o for r, o in up_refs.items() if r == HEADS + branch or r.startswith(TAGS)
            }
            if (
                self.path.exists()
                and git.read_refs_files(self.path, [HEADS, TAGS]) == up_view
                and not self._missing_objects(up_view, up_peeled or {}, branch)
            ):
                return self._unchanged(report, up_view, up_peeled or {}, t0)
        before_refs, before_peeled = self._read_local(report)
        fresh = before_refs is None
        if before_refs is not None:
            missing = self._missing_objects(before_refs, before_peeled or {}, branch)
            if missing:
                fresh = True
                report.warnings.append(
                    f"mirror {self.path} lacks {len(missing)} object(s) its refs name "
                    f"(e.g. {missing[0][:12] + missing[0][40:]}); re-cloned from {self.url}"
                )
            elif up_view is not None and up_view == before_refs:
                return self._unchanged(report, before_refs, before_peeled or {}, t0)
        after_refs, after_peeled = self._fetch(branch, fresh)
        report.fetched = True
        self._diff(report, before_refs or {}, before_peeled or {}, after_refs, after_peeled)
        return self._finish(report, t0)

    def _missing_objects(
        self, refs: dict[str, str], peeled: dict[str, str], branch: str
    ) -> list[str]:
        """The objects the refs name that the mirror does not hold (cheap: the tips only).

        Every ref's object, every annotated tag's peeled commit, and the branch tip's tree:
        a mirror whose objects were deleted or whose packs were lost answers "missing" for
        them.  Read from the object files (:func:`git.missing_objects`, no process); where
        that cannot tell, one ``git cat-file --batch-check`` answers.
        """
        oids = sorted(set(refs.values()) | set(peeled.values()))
        tip = refs.get(HEADS + branch)
        local = git.missing_objects(self.path, oids, tree_of=tip)
        if local is not None:
            return local
        wanted = oids + ([f"{tip}^{{tree}}"] if tip else [])
        if not wanted:
            return []
        proc = git.run(
            ["cat-file", "--batch-check"],
            cwd=self.path,
            check=False,
            input="\n".join(wanted) + "\n",
            timeout=self.timeout_s,
        )
        if proc.returncode != 0:
            return wanted
        return [ln.rsplit(" ", 1)[0] for ln in proc.stdout.splitlines() if ln.endswith(" missing")]

    def _point_head(self, branch: str) -> None:
        """HEAD names the mirrored branch, so a clone of the mirror checks it out."""
        want = f"ref: {HEADS}{branch}"
        try:
            if read_small_file(self.path / "HEAD", 4096).decode(errors="replace").strip() == want:
                return
        except (OSError, FileProblem):
            pass
        git.run(["symbolic-ref", "HEAD", HEADS + branch], cwd=self.path, timeout=60)

    def _unchanged(
        self, report: SyncReport, refs: dict[str, str], peeled: dict[str, str], t0: float
    ) -> SyncReport:
        self._point_head(report.branch)
        report.tags = _tag_map(refs, peeled)
        report.branch_old = report.branch_new = refs.get(HEADS + report.branch)
        return self._finish(report, t0)

    def _read_local(
        self, report: SyncReport
    ) -> tuple[dict[str, str] | None, dict[str, str] | None]:
        """The mirror's refs, or (None, None) when there is no usable mirror (first sync)."""
        if not self.path.exists():
            return None, None
        try:
            if (
                git.run(["rev-parse", "--is-bare-repository"], cwd=self.path).stdout.strip()
                != "true"
            ):
                raise git.GitError("not a bare repository")
            return git.local_refs(self.path, [HEADS, TAGS])
        except git.GitError as e:
            report.warnings.append(
                f"mirror {self.path} was unusable ({str(e)[:200]}); re-cloned from {self.url}"
            )
            return None, None

    def _choose_branch(self, up_refs: dict[str, str] | None, report: SyncReport) -> str:
        if up_refs is None or HEADS + self.branch in up_refs:
            return self.branch
        heads = sorted(r[len(HEADS) :] for r in up_refs if r.startswith(HEADS))
        if self.branch_set:
            raise SyncError(
                f"{self.recipe}: upstream {self.url} has no branch {self.branch!r} "
                f"(its branches: {', '.join(heads) or 'none'}); set [recipes.{self.recipe}] "
                "branch in canon.toml to one of them, or unset it to follow upstream's default"
            )
        head_oid = up_refs.get("HEAD")
        default = next((h for h in heads if up_refs[HEADS + h] == head_oid), None)
        if default is None or git.ref_name_problem(default):
            raise SyncError(
                f"{self.recipe}: upstream {self.url} has no branch {self.branch!r} "
                f"(branches: {', '.join(heads) or 'none'}); set the recipe's branch in canon.toml"
            )
        report.warnings.append(
            f"upstream has no branch {self.branch!r}: following its default branch {default!r}"
        )
        report.branch = default
        return default

    def _fetch(self, branch: str, fresh: bool) -> tuple[dict[str, str], dict[str, str]]:
        """One atomic fetch; a fresh mirror is built beside the old path and renamed in."""
        refspecs = [f"+{HEADS}{branch}:{HEADS}{branch}", f"+{TAGS}*:{TAGS}*"]
        target = self.path
        if fresh:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            target = Path(
                tempfile.mkdtemp(prefix=f".{self.recipe}-new{owner_tag()}", dir=self.path.parent)
            )
            git.run(["init", "--quiet", "--bare", str(target)], timeout=60)
        try:
            git.run(
                [
                    "fetch",
                    "--quiet",
                    "--atomic",
                    "--prune",
                    "--force",
                    "--no-tags",
                    "--no-write-fetch-head",
                    "--",
                    self.url,
                    *refspecs,
                ],
                cwd=target,
                timeout=self.timeout_s,
                config=git.local_url_config(self.url),
            )
            refs, peeled = git.local_refs(target, [HEADS, TAGS])
            # a branch we followed before and upstream dropped is not upstream's any more
            for ref in [r for r in refs if r.startswith(HEADS) and r != HEADS + branch]:
                git.run(["update-ref", "-d", ref], cwd=target)
                del refs[ref]
            # one packed-refs file keeps the next no-op sync to a single read
            git.run(["pack-refs", "--all", "--prune"], cwd=target)
            # HEAD names the mirrored branch (not init's default), so clones check it out
            git.run(["symbolic-ref", "HEAD", HEADS + branch], cwd=target)
        except git.GitError as e:
            if fresh:
                shutil.rmtree(target, ignore_errors=True)
            raise SyncError(f"{self.recipe}: cannot fetch from {self.url}: {_gist(e)}") from None
        if fresh:
            if self.path.exists():  # the unusable old mirror
                aside = self.path.with_name(
                    f".{self.path.name}-broken{owner_tag()}{time.time_ns()}"
                )
                self.path.rename(aside)
                shutil.rmtree(aside, ignore_errors=True)
            target.rename(self.path)
        return refs, peeled

    def _diff(
        self,
        report: SyncReport,
        before: dict[str, str],
        before_peeled: dict[str, str],
        after: dict[str, str],
        after_peeled: dict[str, str],
    ) -> None:
        old_tags, new_tags = _tag_map(before, before_peeled), _tag_map(after, after_peeled)
        report.tags = new_tags
        report.added = sorted(t for t in new_tags if t not in old_tags)
        report.deleted = {t: c for t, c in old_tags.items() if t not in new_tags}
        report.moved = {
            t: (old_tags[t], c) for t, c in new_tags.items() if t in old_tags and old_tags[t] != c
        }
        report.warnings += reannotated(before, after, old_tags, new_tags)
        ref = HEADS + report.branch
        report.branch_old, report.branch_new = before.get(ref), after.get(ref)
        if report.branch_old and report.branch_new and report.branch_old != report.branch_new:
            ff = git.run(
                ["merge-base", "--is-ancestor", report.branch_old, report.branch_new],
                cwd=self.path,
                check=False,
            )
            report.fast_forward = ff.returncode == 0
        elif report.branch_old == report.branch_new:
            report.fast_forward = True

    def _finish(self, report: SyncReport, t0: float) -> SyncReport:
        valid: dict[str, str] = {}
        for tag, commit in report.tags.items():
            if git.ref_name_problem(tag):
                report.invalid_tags.append(tag)
                continue
            valid[tag] = commit
            try:
                if parse_version(tag).is_prerelease:
                    report.not_releases.append(tag)
            except InvalidRecipeVersion:
                report.not_releases.append(tag)
        report.tags = valid
        report.invalid_tags.sort()
        report.not_releases.sort()
        if report.fetched:
            self._record_first_seen(valid, time.time())
        if self.push_url and report.fetched:
            self.push(report.branch)
        report.duration_s = time.monotonic() - t0
        return report

    # -- first sightings (the release cooldown) ---------------------------------
    @property
    def first_seen_path(self) -> Path:
        """``<mirrors>/<recipe>.first-seen.json``: beside the mirror, so a re-clone keeps it."""
        return self.path.with_name(f"{self.path.name.removesuffix('.git')}.first-seen.json")

    def _first_seen_map(self) -> dict[str, FirstSeen]:
        """The sightings as written; an entry that is not a sighting is left out."""
        try:
            data: object = read_json_file(self.first_seen_path, FIRST_SEEN_CAP)
        except FileNotFoundError:
            return {}
        except FileProblem:
            return {}  # unreadable: every tag counts as seen now (a longer wait, never shorter)
        if not isinstance(data, dict):
            return {}
        known: dict[str, FirstSeen] = {}
        for t, v in data.items():
            commit = v.get("commit") if isinstance(v, dict) else None
            seen = v.get("first_seen") if isinstance(v, dict) else None
            if isinstance(commit, str) and isinstance(seen, int | float):
                known[t] = {"commit": commit, "first_seen": seen}
        return known

    def _record_first_seen(
        self, tags: dict[str, str], now: float, old: dict[str, FirstSeen] | None = None
    ) -> dict[str, FirstSeen]:
        """Note ``now`` for each tag not seen before at its commit (a tag re-pointed upstream
        is a new sighting); tags upstream dropped are forgotten.  The map, as written.
        ``old``: the map as the caller just read it (else it is read here)."""
        old = self._first_seen_map() if old is None else old
        new: dict[str, FirstSeen] = {
            t: old[t] if t in old and old[t]["commit"] == c else {"commit": c, "first_seen": now}
            for t, c in sorted(tags.items())
        }
        if new != old:
            write_atomic(self.first_seen_path, json.dumps(new, indent=1, sort_keys=True) + "\n")
        return new

    def first_seen(self, tag: str, commit: str, now: float) -> float:
        """When canon's mirror first saw ``tag`` at ``commit`` (epoch seconds).

        Recorded by each sync that fetched; a tag this mirror has no sighting of (a mirror
        older than the record) is seen ``now``, and written down."""
        known = self._first_seen_map()
        seen = known.get(tag)
        if seen and seen["commit"] == commit:
            return float(seen["first_seen"])
        tags = {t: v["commit"] for t, v in known.items()}
        return float(self._record_first_seen({**tags, tag: commit}, now, known)[tag]["first_seen"])

    def push(self, branch: str) -> None:
        """Force ``branch`` and the tags to the CI mirror remote, pruning tags it lacks."""
        if not self.push_url:
            return
        refspecs = [f"+{TAGS}*:{TAGS}*", f"+{HEADS}{branch}:{HEADS}{branch}"]
        try:
            git.run(
                [
                    "push",
                    "--quiet",
                    "--force",
                    "--prune",
                    "--atomic",
                    "--",
                    self.push_url,
                    *refspecs,
                ],
                cwd=self.path,
                timeout=self.timeout_s,
                config=git.local_url_config(self.push_url),
            )
        except git.GitError as e:
            raise SyncError(
                f"{self.recipe}: cannot push to CI mirror {self.push_url}: {_gist(e)}"
            ) from None

    # -- reading -------------------------------------------------------------
    def tag_commit(self, tag: str) -> str | None:
        """The commit ``tag`` points at in the mirror now (re-read every call), or None."""
        git.check_ref_name(tag)
        proc = git.run(
            ["rev-parse", "--verify", "--quiet", f"{TAGS}{tag}^{{commit}}"],
            cwd=self.path,
            check=False,
        )
        return proc.stdout.strip() if proc.returncode == 0 else None

    @contextlib.contextmanager
    def checkout(self, tag: str) -> Iterator[Checkout]:
        """A clean detached work tree at ``tag``'s commit, removed on exit."""
        git.check_ref_name(tag)
        commit = self.tag_commit(tag)
        if commit is None:
            raise CheckoutError(
                f"{self.recipe}: tag {tag!r} is not in the mirror {self.path}; sync first"
            )
        with self._checkout_at(commit, tag) as co:
            yield co

    @contextlib.contextmanager
    def checkout_commit(self, commit: str, version: str) -> Iterator[Checkout]:
        """A clean detached tree at an exact (possibly untagged) commit, tested as ``version``."""
        if not re.fullmatch(r"[0-9a-f]{40}", commit):
            raise CheckoutError(f"{self.recipe}: {commit!r} is not a full commit id")
        git.check_ref_name(version)
        with self._checkout_at(commit, version) as co:
            yield co

    @contextlib.contextmanager
    def _checkout_at(self, commit: str, label: str) -> Iterator[Checkout]:
        self.checkouts_dir.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=f"{self.recipe}{owner_tag()}", dir=self.checkouts_dir))
        try:
            try:
                git.clone_at(self.path, path, commit)
            except git.GitError as e:
                raise CheckoutError(
                    f"{self.recipe}: cannot check out {label} ({commit[:12]}): {_gist(e)}"
                ) from None
            yield Checkout(path, label, commit)
        finally:
            shutil.rmtree(path, ignore_errors=True)


def mirror_for(config: Config, recipe: str, *, branch: str | None = None) -> Mirror:
    """The mirror of ``recipe`` as ``config`` places it: the one way canon builds a Mirror.

    ``branch`` overrides the configured branch (which, when canon.toml sets none,
    follows upstream's default branch).
    """
    return Mirror(
        recipe,
        config.mirror_path(recipe),
        config.upstream_url(recipe),
        branch or config.mirror_branch(recipe),
        push_url=config.push_url(recipe),
        timeout_s=config.sync_timeout_s,
        checkouts_dir=config.state_dir / "checkouts",
    )
