"""``canon`` — the command line.  Thin: parse arguments, call canonlib, print.

Exit codes: 0 ok, 1 a recipe failed or a check failed, 2 usage or config,
3 nothing to report (``versions latest`` found no release), 75 another sweep
holds the lock.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

from canonlib import __version__
from canonlib.claims import SWEEP_COLUMNS, why
from canonlib.cli.style import (
    CanonParser,
    add_json,
    add_quiet_failed,
    print_claims,
    print_json,
    print_lines,
    print_table,
)
from canonlib.errors import CanonError
from canonlib.recipe.versions import is_version, latest_release, sort_versions

EXIT_CODES = """\
exit codes:
  0   everything ran as expected
  1   some recipe is FAIL, ERROR or GREEN-BUT-PROMOTE-FAILED (with --plan: ERROR), a check
      failed, or `history` of a recipe canon does not know
  2   usage or configuration error (including a fleet with no enrolled recipe)
  3   nothing found (versions latest: no release among the tags)
  75  another sweep holds the lock on this state dir (try again later)
  a bug in canon exits 1 with one line naming the log that holds the traceback
  130 interrupted (SIGINT), 143 terminated (SIGTERM): the run is marked interrupted
"""


def _read_tags(stream) -> list[str]:
    return [line.strip() for line in stream if line.strip()]


def cmd_versions_sort(args: argparse.Namespace) -> int:
    tags = _read_tags(sys.stdin)
    if args.json:
        print_json(
            {
                "versions": sort_versions(tags),
                "not_versions": [t for t in tags if not is_version(t)],
            }
        )
        return 0
    for tag in sort_versions(tags):
        print(tag)
    for tag in tags:
        if not is_version(tag):
            print(f"canon: not a recipe version, left out: {tag!r}", file=sys.stderr)
    return 0


def cmd_versions_latest(args: argparse.Namespace) -> int:
    tags = _read_tags(sys.stdin)
    latest = latest_release(tags, allow_prerelease=args.allow_prerelease)
    if latest is None:
        kind = "release or prerelease" if args.allow_prerelease else "release"
        print(f"canon: no {kind} tag among {len(tags)} tag(s) read from stdin", file=sys.stderr)
        if args.json:
            print_json({"latest": None})
        return 3
    if args.json:
        print_json({"latest": latest})
        return 0
    print(latest)
    return 0


def _config(args: argparse.Namespace):
    from canonlib.config import load_config

    return load_config(args.config)


def plan_notes(rows: list[dict]) -> list[str]:
    """What a sweep would do with each recipe, in words (``sweep --plan``)."""
    out = []
    for r in rows:
        decision, latest = r.get("decision"), r.get("latest")
        if r.get("error"):
            note = f"cannot plan: {r['error']}; fix that, then plan again"
        elif decision == "run":
            base = (
                f"L2 upgrades from {r['upgrade_base']} ({r.get('upgrade_base_kind')})"
                if r.get("upgrade_base")
                else "no upgrade base yet, so L2 is skipped"
            )
            note = f"would cold-test {latest} ({base}) and promote it if green"
        elif decision == "skip:no-new-version":
            note = f"nothing to do: the canonical {r.get('canonical_before')} is the newest release"
        elif decision == "skip:never-released":
            note = "nothing to do: upstream has no release tag yet"
        elif decision == "skip:held":
            note = "held (HOLD in its recipe_meta.py): skipped, the canonical stays"
        elif decision == "skip:known-red":
            note = f"{latest} was already tested red with these tests and harness: not re-run"
        else:
            note = str(r.get("label"))
        out.append(f"{r['recipe']}: {note}")
    return out


def cmd_sweep(args: argparse.Namespace) -> int:
    from canonlib.sweep.orchestrate import canonical_incidents, raise_interrupted, sweep

    config = _config(args)
    signal.signal(signal.SIGTERM, raise_interrupted)
    result = sweep(
        config,
        only=args.recipe or None,
        plan=args.plan,
        retry=args.retry or None,
        progress=not args.json and sys.stderr.isatty(),
    )
    for note in result.notes:
        print(f"canon: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps(result.rows, indent=1, sort_keys=True))
    else:
        print_table(
            [{**r, "reason": why(r) or None} for r in result.rows], [*SWEEP_COLUMNS, "reason"]
        )
        for name, excluded_why in result.fleet.excluded:
            print(f"excluded: {name}: {excluded_why}")
        for recipe, incident, acked in canonical_incidents(result.rows):
            then = (
                "acknowledged by its HOLD"
                if acked
                else "the sweep exits 1 until you set HOLD "
                "in its recipe_meta.py or a new release is promoted"
            )
            print_lines([f"INCIDENT {recipe}: {incident}; {then}"])
        for row in result.rows:
            if row.get("error") and not result.plan:
                print(f"{row['recipe']}: {row['error']}", file=sys.stderr)
        if result.plan:
            print_lines(plan_notes(result.rows))
        else:
            print_lines(
                [
                    f"run {result.run_id}: {result.status}; results in {result.run_dir / 'results.jsonl'}"
                ]
            )
    if result.plan:  # a plan fails only where a recipe could not even be planned
        return 1 if any(str(r["label"]).startswith("ERROR") for r in result.rows) else 0
    return result.exit_code


def _warn_if_behind(config) -> None:
    """Read-only commands still work on a registry that is behind; they say so."""
    from canonlib.backends import make_backend
    from canonlib.state.registry_guard import behind_warning

    warning = behind_warning(config.db_path, make_backend(config))
    if warning:
        print(warning, file=sys.stderr)


def _require_current(config, doing: str) -> None:
    """Mutating commands refuse (exit 2) on a registry behind the deployed canonicals."""
    from canonlib.backends import make_backend
    from canonlib.state.registry_guard import require_current

    require_current(config.db_path, make_backend(config), doing)


def cmd_status(args: argparse.Namespace) -> int:
    from canonlib.ops.status import status_rows

    config = _config(args)
    _warn_if_behind(config)
    rows = status_rows(config)
    if args.json:
        print(json.dumps(rows, indent=1, sort_keys=True))
    else:
        print_table(
            rows,
            [
                "recipe",
                "enrolled",
                "canonical",
                "commit",
                "age_days",
                "hold",
                "pin",
                "last_label",
                "incident",
            ],
        )
    return 0


def cmd_pins(args: argparse.Namespace) -> int:
    from canonlib.ops.status import redundant_pins

    pins = redundant_pins(_config(args))
    if args.json:
        print_json(pins)
        return 0
    for p in pins:
        print(
            f"{p['recipe']}: UPGRADE_BASE_VERSION = {p['pin']!r} equals the canonical; "
            f"remove it from {p['meta']} (the dynamic base now gives the same)"
        )
    if not pins:
        print("no redundant upgrade-base pins")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from canonlib.state.registry import Registry

    config = _config(args)
    _warn_if_behind(config)
    if not config.db_path.exists():
        return _unknown_recipe(args.recipe, config, None)
    with Registry.open(config.db_path, create=False) as reg:
        promos = [asdict(p) for p in reg.history(args.recipe)]
        results = reg.results(recipe=args.recipe)
        if not promos and not results:
            return _unknown_recipe(args.recipe, config, reg)
    if args.json:
        print(json.dumps({"promotions": promos, "results": results}, indent=1, sort_keys=True))
        return 0
    for p in promos:
        p["commit"] = p["commit"][:12]
    print_table(
        promos,
        ["id", "promoted_at", "version", "commit", "previous_version", "deployment", "run_id"],
    )
    print()
    for r in results:
        r["reason"] = why(r) or None
    print_table(results, ["run_id", "decision", "latest", "level", "label", "reason"])
    return 0


def _unknown_recipe(recipe: str, config, reg) -> int:  # reg None: no registry yet
    """``history`` of a recipe with no rows: exit 1, naming the closest known recipe."""
    import contextlib
    import difflib

    from canonlib.recipe.fleet import discover

    known = set()
    if reg is not None:
        known = {p.recipe for p in reg.history()} | {r["recipe"] for r in reg.results()}
    with contextlib.suppress(CanonError):  # no fleet here: the registry's names are all we know
        known |= {r.name for r in discover(config.fleet).recipes}
    if recipe in known:
        print(f"{recipe}: no promotion or sweep result yet in {config.db_path}")
        return 0
    close = difflib.get_close_matches(recipe, sorted(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    print(
        f"canon: unknown recipe {recipe!r}: not in the fleet nor in {config.db_path}{hint}",
        file=sys.stderr,
    )
    return 1


def cmd_demo(args: argparse.Namespace) -> int:
    from canonlib.demo.fleet import run_demo

    return run_demo(args.dir, evidence=not args.no_evidence, backend=args.backend)


def cmd_config_example(args: argparse.Namespace) -> int:
    from canonlib.config import EXAMPLE

    print(EXAMPLE, end="")
    return 0


def cmd_evidence_run(args: argparse.Namespace) -> int:
    from canonlib.evidence.run import run_suite

    params = {}
    if args.target:
        params["target"] = str(args.target)
    if args.recipe:
        params["recipe"] = args.recipe
    if args.sweep_run:
        params["sweep_run_id"] = args.sweep_run
    for kv in args.param or []:
        key, sep, value = kv.partition("=")
        if not sep:
            from canonlib.errors import UsageError

            raise UsageError(f"--param takes KEY=VALUE, got {kv!r}")
        params[key] = value
    if args.suite == "verify" and "target" not in params:
        from canonlib.errors import UsageError

        raise UsageError("evidence run verify needs --target DIR (the evidence dir to verify)")
    from canonlib.sweep.orchestrate import raise_interrupted

    config = _config(args)
    if args.suite != "verify":  # the suites sweep and promote: not on a registry that is behind
        _require_current(config, f"run the {args.suite} evidence suite")
    signal.signal(
        signal.SIGTERM, raise_interrupted
    )  # stop the whole tree, mark the dir interrupted
    from canonlib.evidence.progress import stderr_out

    progress = sys.stderr if args.json else sys.stdout  # --json: stdout holds the JSON alone
    ev = run_suite(
        config,
        args.suite,
        params=params,
        out=lambda line: print(line, flush=True, file=progress),
        progress=stderr_out(),
    )
    if args.json:
        print_json(
            {
                "dir": str(ev.dir),
                "suite": ev.suite,
                "result": ev.verdict.result,
                "failed_notebooks": ev.verdict.failed_notebooks,
                "failing_rows": ev.verdict.failing_rows,
                "notebooks": [
                    {"name": n.name, "ok": n.ok, "seconds": n.seconds, "problems": n.problems}
                    for n in ev.notebooks
                ],
            }
        )
    return ev.verdict.exit_code


def _evidence_dir_arg(args: argparse.Namespace) -> Path:
    from canonlib.errors import UsageError
    from canonlib.evidence.report import latest_dir

    if args.dir is not None:
        if not (args.dir / "manifest.json").exists():
            raise UsageError(
                f"{args.dir}: not an evidence dir (no manifest.json); "
                "`canon evidence latest` prints the newest"
            )
        return args.dir
    config = _config(args)
    d = latest_dir(config.evidence_dir)
    if d is None:
        raise UsageError(
            f"no evidence in {config.evidence_dir} yet: run `canon evidence run weekly`"
        )
    return d


def cmd_evidence_latest(args: argparse.Namespace) -> int:
    args.dir = None
    d = _evidence_dir_arg(args)
    if args.json:
        print_json({"dir": str(d)})
    else:
        print(d)
    return 0


def cmd_evidence_open(args: argparse.Namespace) -> int:
    from canonlib.errors import UsageError
    from canonlib.evidence.report import INDEX, open_index

    d = _evidence_dir_arg(args)
    if not (d / INDEX).exists():
        raise UsageError(
            f"{d}: no index.html (written by evidence runs since reports began); "
            f"see {d / 'manifest.json'}"
        )
    path, opened = open_index(d)
    if args.json:
        print_json({"index": str(path), "opened": opened})
    else:
        print(path if opened else f"no display to open it on; the page is: {path}")
    return 0


def cmd_investigate(args: argparse.Namespace) -> int:
    from canonlib.errors import UsageError
    from canonlib.evidence import investigate
    from canonlib.evidence.progress import stderr_out
    from canonlib.evidence.report import INDEX
    from canonlib.evidence.run import notebooks_dir, run_suite
    from canonlib.state.registry import Registry
    from canonlib.term import did_you_mean

    config = _config(args)
    if not config.db_path.exists():
        raise UsageError(f"no registry at {config.db_path}: run `canon sweep` first")
    with Registry.open(config.db_path) as reg:
        rows = reg.results()
    known = sorted({str(r["recipe"]) for r in rows})
    if args.recipe and args.recipe not in known:
        raise UsageError(
            f"{args.recipe}: no results in {config.db_path}{did_you_mean(args.recipe, known)}"
        )
    recipe = investigate.pick(rows, args.recipe)
    if recipe is None:
        if args.json:
            print_json({"recipe": None})
        else:
            print(
                "nothing to investigate: no recipe has a failing result; "
                "name one: canon investigate RECIPE"
            )
        return 0
    streak = next((s for s in investigate.failing_streaks(rows) if s.recipe == recipe), None)
    why = f" (failing since run {streak.since_run}, {streak.runs} run(s))" if streak else ""
    err = stderr_out()
    err(f"investigating {recipe}{why}")
    ev = run_suite(
        config,
        "investigate",
        params={"recipe": recipe},
        out=err,
        notebooks=[notebooks_dir() / "investigate.ipynb"],
    )
    rec = next((n.records for n in ev.notebooks if n.name == "investigate"), {})
    if args.json:
        print_json(
            {
                "recipe": recipe,
                "reason": rec.get("investigate_reason"),
                "dir": str(ev.dir),
                "index": str(ev.dir / INDEX),
                "ok": ev.ok,
            }
        )
        return 0 if ev.ok else 1
    if rec.get("investigate_reason"):
        print(f"{recipe}: {rec['investigate_reason']}")
    print(ev.dir)
    print(ev.dir / INDEX)
    return 0 if ev.ok else 1


def cmd_verify(args: argparse.Namespace) -> int:
    from canonlib.evidence.verify import verify

    state = args.state_dir or (_config(args).state_dir if args.state else None)
    if args.state and not args.state_dir:  # checked against the live registry: say if it is behind
        _warn_if_behind(_config(args))
    claims = verify(
        args.dir,
        state=state,
        upstream=args.upstream,
        key=args.key,
        require_signature=args.require_signature,
    )
    return print_claims(claims, args)


def cmd_keys_init(args: argparse.Namespace) -> int:
    from canonlib.evidence.signing import init_keys

    kp = init_keys(_config(args).state_dir)
    if args.json:
        print_json({"private": str(kp.private), "public": str(kp.public)})
        return 0
    print(f"private key: {kp.private} (0600; keep it on this machine)")
    print(f"public key:  {kp.public}")
    print(
        "every evidence run now writes manifest.dsse.json beside manifest.json; commit the public key "
        f"to the fleet repo so reviewers can run: canon verify --key {kp.public.name} DIR"
    )
    return 0


def cmd_systemd_render(args: argparse.Namespace) -> int:
    import os

    from canonlib.ops.systemd import UnitOptions, render

    if args.fleet:  # the unit's CCCI_REPO; the config may rely on it for the fleet
        os.environ["CCCI_REPO"] = str(Path(args.fleet).resolve())
    o = UnitOptions(
        path=args.path or os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        on_calendar=args.on_calendar,
        randomized_delay=args.delay,
        fleet=Path(args.fleet) if args.fleet else None,
        working_directory=Path(args.working_directory) if args.working_directory else None,
        user=args.user,
        on_failure=args.on_failure,
    )
    written = render(_config(args), Path(args.output), o)
    if args.json:
        print_json({"written": [str(p) for p in written]})
        return 0
    for p in written:
        print(p)
    print(
        f"install: sudo cp {args.output}/canon-sweep.* /etc/systemd/system/ && "
        "sudo systemctl daemon-reload && sudo systemctl enable --now canon-sweep.timer"
    )
    return 0


def cmd_systemd_verify(args: argparse.Namespace) -> int:
    from canonlib.ops.systemd import verify_units

    return print_claims(verify_units(Path(args.dir)), args)


def cmd_doctor(args: argparse.Namespace) -> int:
    from canonlib.ops.doctor import doctor

    return print_claims(doctor(args.config, Path(args.unit) if args.unit else None), args)


def _registry_lock(config, what: str):
    from canonlib.state.registry import utcnow
    from canonlib.sweep.orchestrate import sweep_lock

    return sweep_lock(config.lock_path, f"pid={os.getpid()} {what} started={utcnow()}")


def cmd_registry_backup(args: argparse.Namespace) -> int:
    from canonlib.state.registry_guard import backup, backups_dir

    config = _config(args)
    dest = Path(args.file) if args.file else backups_dir(config.state_dir) / f"manual-{_stamp()}.db"
    with _registry_lock(config, "registry backup"):
        copy = backup(config.db_path, dest)
    print_json({"backup": str(copy)}) if args.json else print(copy)
    return 0


def cmd_registry_restore(args: argparse.Namespace) -> int:
    from canonlib.backends import make_backend
    from canonlib.state.registry_guard import restore

    config = _config(args)
    with _registry_lock(config, "registry restore"):
        notes = list(restore(config.db_path, Path(args.file), make_backend(config)))
    print_json({"notes": notes}) if args.json else print_lines(notes)
    return 0


def cmd_registry_rebuild(args: argparse.Namespace) -> int:
    from canonlib.backends import make_backend
    from canonlib.state.registry_guard import rebuild

    config = _config(args)
    with _registry_lock(config, "registry rebuild"):
        notes = rebuild(
            config.db_path,
            make_backend(config),
            base=Path(args.from_file) if args.from_file else None,
        )
    print_json({"notes": list(notes)}) if args.json else print_lines(notes)
    return 0


def _stamp() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _add_registry_commands(sub) -> None:
    rg = sub.add_parser(
        "registry",
        help="back up, restore or rebuild the registry (state/canon.db)",
        description="The registry must never be behind the deployed canonicals. A sweep refuses "
        "(exit 2) when it is missing, empty, damaged, rolled back or lost rows; these are the way out.",
    )
    rgsub = rg.add_subparsers(dest="registry_command", metavar="ACTION", required=True)
    b = rgsub.add_parser(
        "backup",
        help="a consistent copy (SQLite online backup) to FILE",
        description="Copy the registry with SQLite's online backup API (default FILE: "
        "state/backups/manual-<time>.db). A sweep also keeps its last 5 automatic backups there.",
    )
    b.add_argument(
        "file", nargs="?", help="where to write the copy (default: state/backups/manual-<time>.db)"
    )
    add_json(b, "the backup's path")
    b.set_defaults(func=cmd_registry_backup)
    r = rgsub.add_parser(
        "restore",
        help="replace the registry with FILE, after checking it",
        description="Check FILE (sound, promotion chain intact, not behind the slots' markers) and "
        "replace the registry with it atomically; the replaced registry is kept in state/backups.",
    )
    r.add_argument("file", help="the backup to restore (a registry .db file)")
    add_json(r, "what was done")
    r.set_defaults(func=cmd_registry_restore)
    rb = rgsub.add_parser(
        "rebuild",
        help="recreate the canonicals from the slots' markers",
        description="Start from --from FILE, else the current registry when its chain checks, else "
        "an empty one; add a `rebuild` row to the promotion chain for every canonical slot the "
        "registry does not name; re-mark the slots. The replaced registry is kept in state/backups.",
    )
    rb.add_argument("--from", dest="from_file", metavar="FILE", help="a backup to start from")
    add_json(rb, "what was done")
    rb.set_defaults(func=cmd_registry_rebuild)


def cmd_harness(args: argparse.Namespace) -> int:
    from canonlib.sweep.harness import main as harness_main

    return harness_main()


def cmd_init(args: argparse.Namespace) -> int:
    from canonlib.ops.init import init, next_steps

    scaffold = init(args.dir)
    if args.json:
        print_json({k: str(v) for k, v in vars(scaffold).items()})
        return 0
    print(next_steps(scaffold, "canon" if _on_path() else f"{sys.executable} -m canonlib"))
    return 0


def _on_path() -> bool:
    import shutil

    return shutil.which("canon") is not None


def cmd_meta_keys(args: argparse.Namespace) -> int:
    from canonlib.cli.reference import meta_key_rows

    rows = meta_key_rows()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for r in rows:
        print(f"{r['key']}  ({r['type']}; default {r['default']})")
        print(textwrap.fill(r["meaning"], 78, initial_indent="    ", subsequent_indent="    "))
        print(f"    e.g. {r['example']}")
    return 0


def add_init_and_meta(sub) -> None:
    ini = sub.add_parser(
        "init",
        help="start a new install: canon.toml and a fleet with one example recipe",
        description="Write DIR/canon.toml and DIR/fleet (a git repo) holding one example "
        "recipe: its recipe_meta.py with every key commented and a functional test. Then "
        "`canon --config DIR/canon.toml sweep --plan` says what a sweep would do. Never "
        "overwrites an existing canon.toml or fleet.",
    )
    ini.add_argument("dir", metavar="DIR", help="directory to create the install in (new or empty)")
    add_json(ini, "the paths written")
    ini.set_defaults(func=cmd_init)
    me = sub.add_parser("meta", help="the recipe_meta.py keys")
    mesub = me.add_subparsers(dest="meta_command", metavar="ACTION", required=True)
    mk = mesub.add_parser(
        "keys", help="print every recipe_meta.py key: type, default, meaning, example"
    )
    add_json(mk, "the keys")
    mk.set_defaults(func=cmd_meta_keys)


def build_parser() -> argparse.ArgumentParser:
    p = CanonParser(
        prog="canon",
        description="Keep a known-good canonical deployment of every Co-op Cloud recipe "
        "current, and prove it.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"canon {__version__}")
    p.add_argument(
        "--config", metavar="FILE", help="canon.toml to use (else $CANON_CONFIG, else ./canon.toml)"
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    v = sub.add_parser("versions", help="order recipe tags (read one per line from stdin)")
    vsub = v.add_subparsers(dest="versions_command", metavar="ACTION", required=True)
    vs = vsub.add_parser(
        "sort",
        help="print the recipe versions oldest first",
        description="Read tags one per line from stdin; print the recipe versions among them, "
        "oldest first, by semver precedence of the recipe part, then the app part. "
        "Tags that are not versions are named on stderr.",
    )
    add_json(vs, "the versions and the tags that are not")
    vs.set_defaults(func=cmd_versions_sort)
    vl = vsub.add_parser(
        "latest",
        help="print the newest release",
        description="Read tags one per line from stdin; print the newest release tag. "
        "Exit 3 when there is none.",
    )
    vl.add_argument(
        "--allow-prerelease", action="store_true", help="count prereleases (1.0.0-rc1) as releases"
    )
    add_json(vl, "the newest release (null when none)")
    vl.set_defaults(func=cmd_versions_latest)
    sw = sub.add_parser(
        "sweep",
        help="the weekly job: sync, decide, cold-test, gate, promote, label",
        description=textwrap.fill(
            "Sweep every enrolled recipe of the fleet: mirror it from upstream, find its newest "
            "release tag, and when that is newer than the canonical, cold-test exactly that tag and "
            "promote it if it is green and the tested commit is the tag's commit. One recipe's failure "
            "is its own row; the others go on. Labels come from the registry, not exit codes.",
            78,
        ),
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sw.add_argument(
        "--plan",
        action="store_true",
        help="only say what each recipe would do (syncs the mirrors, nothing else)",
    )
    sw.add_argument("--recipe", action="append", metavar="R", help="only this recipe (repeatable)")
    sw.add_argument(
        "--retry",
        action="append",
        metavar="R",
        help="cold-test R's latest tag even if it is known-red (repeatable)",
    )
    add_json(sw, "the result rows, a list")
    sw.set_defaults(func=cmd_sweep)

    st = sub.add_parser("status", help="the canonicals, their age, holds and pins")
    add_json(st, "one row per recipe, a list")
    st.set_defaults(func=cmd_status)

    pi = sub.add_parser(
        "pins",
        help="upgrade-base pins the canonical now makes redundant",
        description="List recipes whose UPGRADE_BASE_VERSION equals their canonical: the pin can go.",
    )
    add_json(pi, "the redundant pins, a list")
    pi.set_defaults(func=cmd_pins)

    hi = sub.add_parser("history", help="a recipe's promotions and sweep results")
    hi.add_argument("recipe", help="the recipe (its directory name under the fleet's tests/)")
    add_json(hi, "{promotions, results}")
    hi.set_defaults(func=cmd_history)

    de = sub.add_parser(
        "demo",
        help="build the demo fleet in DIR and run canon's main job on it",
        description="Build a workspace in DIR (default ./demo) with real git: upstream repos shaped like "
        "Co-op Cloud recipes with their real tag histories, a fleet tree and canon.toml; then sweep "
        "it week by week, print the results and where the evidence is. Running it again starts afresh.",
    )
    de.add_argument("dir", nargs="?", default="demo", help="where to build it (default: ./demo)")
    de.add_argument("--no-evidence", action="store_true", help="run the sweeps only, no notebooks")
    de.add_argument(
        "--backend",
        choices=("local", "swarm"),
        default="local",
        help="local (embedded, no docker) or swarm (the local docker engine's swarm: "
        "scripts/swarm-up; recipe images are built locally)",
    )
    de.set_defaults(func=cmd_demo)

    ev = sub.add_parser(
        "evidence", help="run the evidence notebooks (papermill) into evidence/<run-id>/"
    )
    evsub = ev.add_subparsers(dest="evidence_command", metavar="ACTION", required=True)
    er = evsub.add_parser(
        "run",
        help="execute a suite of notebooks and write manifest.json",
        description="Execute a suite with papermill into <evidence_dir>/<run-id>/ and write an in-toto "
        "manifest with the sha256 of every file. Suites: weekly (sweep, determinism, disk_budget), "
        "proofs (tagged_promote, samever, disk_budget), all (both, plus investigate), investigate, verify (needs "
        "--target). Exit 1 (verdict FAILED) when any notebook or claim fails or a recorded sweep has a "
        "FAIL, ERROR or GREEN-BUT-PROMOTE-FAILED row; the last line printed is the evidence dir.",
    )
    er.add_argument(
        "suite",
        choices=["weekly", "proofs", "all", "investigate", "verify"],
        help="which notebooks to run",
    )
    er.add_argument("--target", help="verify: the evidence dir to verify")
    er.add_argument(
        "--recipe", help="proofs/investigate: the recipe to use (default: chosen from the registry)"
    )
    er.add_argument("--sweep-run", help="sweep notebook: read this sweep run instead of sweeping")
    er.add_argument(
        "--param", action="append", metavar="KEY=VALUE", help="any other notebook parameter"
    )
    add_json(er, "the run's dir, verdict and notebooks (progress goes to stderr)")
    er.set_defaults(func=cmd_evidence_run)

    el = evsub.add_parser("latest", help="print the newest evidence dir")
    add_json(el, "the dir")
    el.set_defaults(func=cmd_evidence_latest)
    eo = evsub.add_parser(
        "open",
        help="open an evidence dir's index.html (default: the newest)",
        description="Open DIR/index.html in a browser; with no display, print its path.",
    )
    eo.add_argument("dir", nargs="?", type=Path, help="an evidence dir (default: the newest)")
    add_json(eo, "the page's path and whether it was opened")
    eo.set_defaults(func=cmd_evidence_open)

    inv = sub.add_parser(
        "investigate",
        help="why a recipe fails: its history, rungs and last log, as evidence",
        description="Execute the investigate notebook for RECIPE into its own evidence dir, without a "
        "sweep: no mirror is fetched, no registry row is written. With no RECIPE, the recipe that has "
        "been failing longest. Prints the reason, the dir and its index.html.",
    )
    inv.add_argument("recipe", nargs="?", help="the recipe (default: the one failing longest)")
    add_json(inv, "the recipe, reason, dir and page")
    inv.set_defaults(func=cmd_investigate)

    ve = sub.add_parser(
        "verify",
        help="re-check an evidence dir from cold, with nothing but the dir",
        description="Re-check every claim of an evidence dir from the dir alone (no config, no state, "
        "any machine): file hashes, the suite complete, every notebook complete, what each notebook "
        "shows re-derived from the bundled registry, labels, the promotion chain, the proofs, commit == "
        "tag from the bundled refs, the verdict. One line per claim; exit 1 if any fails. A FAILED week "
        "still verifies: the verdict line says FAILED.",
    )
    ve.add_argument("dir", type=Path, help="the evidence dir (a copy anywhere will do)")
    ve.add_argument(
        "--state",
        action="store_true",
        help="also check against the live registry of --config's state dir: it still holds "
        "the run's chain and rows (a rollback or rewrite fails, naming the row)",
    )
    ve.add_argument(
        "--state-dir", type=Path, metavar="DIR", help="like --state, with this state dir"
    )
    ve.add_argument(
        "--upstream",
        action="store_true",
        help="also re-list each canonical's tag from its upstream (git ls-remote)",
    )
    ve.add_argument(
        "--key",
        type=Path,
        metavar="PUBFILE",
        help="ed25519 public key (PEM) the manifest's DSSE signature must verify with",
    )
    ve.add_argument(
        "--require-signature",
        action="store_true",
        help="fail when the dir is unsigned or the signature is not checked",
    )
    add_quiet_failed(ve)
    add_json(ve, "the claims, a list")
    ve.set_defaults(func=cmd_verify)

    ke = sub.add_parser("keys", help="the evidence signing key")
    kesub = ke.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    ki = kesub.add_parser(
        "init",
        help="make an ed25519 key pair in the state dir; evidence runs then sign their manifest",
    )
    add_json(ki, "the key files' paths")
    ki.set_defaults(func=cmd_keys_init)

    sd = sub.add_parser("systemd", help="render and verify the weekly service + timer")
    sdsub = sd.add_subparsers(dest="systemd_command", metavar="ACTION", required=True)
    sr = sdsub.add_parser(
        "render",
        help="write canon-sweep.service and canon-sweep.timer for this install",
        description="Write the oneshot service (runs `canon evidence run weekly` from this checkout with "
        "this config, the fleet in CCCI_REPO and the CI runner's PATH) and the weekly timer "
        "(Persistent=true, randomised delay). Use the global --config to name the operator's canon.toml.",
    )
    sr.add_argument(
        "--output", default="systemd", help="directory to write the units into (default: systemd)"
    )
    sr.add_argument(
        "--path", help="PATH for the service: the CI runner's (default: this shell's PATH)"
    )
    sr.add_argument("--fleet", help="fleet root for CCCI_REPO (default: the config's fleet)")
    sr.add_argument(
        "--working-directory", help="the operator's checkout (default: this canon checkout)"
    )
    sr.add_argument(
        "--on-calendar", default="Sun *-*-* 02:30:00", help="when (default: Sunday 02:30)"
    )
    sr.add_argument("--delay", default="1h", help="RandomizedDelaySec (default: 1h)")
    sr.add_argument("--user", help="User= for the service (default: none, i.e. root)")
    sr.add_argument(
        "--on-failure",
        metavar="UNIT",
        help="OnFailure= unit to start when the week is FAILED or the run breaks, "
        "e.g. canon-notify@%%n.service",
    )
    add_json(sr, "the files written")
    sr.set_defaults(func=cmd_systemd_render)
    sv = sdsub.add_parser(
        "verify", help="systemd-analyze verify the units and check the calendar is weekly"
    )
    sv.add_argument(
        "dir",
        nargs="?",
        default="systemd",
        help="the directory holding the rendered units (default: systemd)",
    )
    add_quiet_failed(sv)
    add_json(sv, "the claims, a list")
    sv.set_defaults(func=cmd_systemd_verify)

    dr = sub.add_parser(
        "doctor",
        help="check what the timer will see: config, fleet, tools on PATH, dirs, kernel, disk",
        description="One line per check, exit 1 if any fails. With --unit, use that unit's Environment= "
        "(CANON_CONFIG, CCCI_REPO, PATH) and WorkingDirectory= instead of this shell's.",
    )
    dr.add_argument("--unit", help="a rendered canon-sweep.service")
    add_quiet_failed(dr)
    add_json(dr, "the checks, a list")
    dr.set_defaults(func=cmd_doctor)

    co = sub.add_parser("config", help="configuration helpers")
    cosub = co.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    cosub.add_parser("example", help="print an annotated canon.toml").set_defaults(
        func=cmd_config_example
    )

    _add_registry_commands(sub)

    h = sub.add_parser(
        "harness",
        help="the built-in cold-run harness (started by canon sweep)",
        description="Deploy $CCCI_RECIPE_DIR through the configured backend into a throw-away "
        "slot, climb the rungs (L1 install, L2 upgrade from $CCCI_UPGRADE_BASE, L3 backup/restore, "
        "L4 functional tests from the fleet, L5 lint), write $CCCI_RESULT_FILE and tear the slot "
        "down. Exit 0 when green.",
    )
    h.set_defaults(func=cmd_harness)
    add_init_and_meta(sub)
    return p


def _state_dir(args: argparse.Namespace) -> Path | None:
    """The configured state dir, for the guard's messages and crash logs (None if unknown)."""
    from canonlib.config import load_config

    try:
        return load_config(getattr(args, "config", None)).state_dir
    except CanonError:
        return None


def main(argv: Sequence[str] | None = None) -> int:
    from canonlib.cli.guard import guarded

    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    return guarded(lambda: func(args), lambda: _state_dir(args))
