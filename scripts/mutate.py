"""Mutation testing of canon's core with mutmut: `make mutate [MODULE=canonlib/x.py] [SAMPLE=n]`.

Each module is mutated against its OWN test files (``[tool.canon.mutate.tests]`` in
pyproject.toml), so a module's score says what its unit tests catch, not what the
end-to-end suite happens to touch.  mutmut 3 reads its settings from ``[tool.mutmut]``
in the working directory, so every module gets a work copy of the repo under
``mutants/<module>/`` with ``only_mutate`` and the test selection filled in; mutmut
then makes its own ``mutants/`` inside it.  Results stay there for ``mutmut show``.

Score = killed / (mutants - listed equivalents).  Equivalent mutants (a change no
user could notice) are listed in ``tests/mutation-equivalents.md`` by function and
mutated line (not by mutant number, which shifts when the code changes), one line of
reason each; a listed mutant that is killed, or an entry that matches no mutant any
more, is reported as stale.
Not part of CI: it is slow and CPU-heavy (``JOBS`` defaults to 1).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EQUIVALENTS = ROOT / "tests" / "mutation-equivalents.md"
# what mutmut calls a result; a timeout means the tests noticed the mutant (mutmut counts it so),
# and so does "segfault": the test process died of the mutant (a mutated crash point kills it)
KILLED = {"killed", "timeout", "caught by type check", "segfault"}


def load_settings() -> tuple[dict, dict]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return data, data["tool"]["canon"]["mutate"]


def equivalents() -> dict[tuple[str, str], str]:
    """(function, mutated line) -> reason, from ``- `function` `line` — reason`` entries."""
    if not EQUIVALENTS.exists():
        return {}
    entries = re.findall(r"^- `([^`]+)` `(.+)` — (.+)$", EQUIVALENTS.read_text(), re.M)
    return {(fn, line): reason for fn, line, reason in entries}


def signatures(work: Path, module: str, names: list[str]) -> dict[str, tuple[str, str]]:
    """mutant name -> (function, mutated line), from mutmut's own diff of each mutant."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    here = os.getcwd()
    os.chdir(work)
    try:
        out = {}
        for name in names:
            diff = get_diff_for_mutant(name, path=Path(module)).splitlines()
            plus = [d[1:].strip() for d in diff if d.startswith("+") and not d.startswith("+++")]
            minus = [d[1:].strip() for d in diff if d.startswith("-") and not d.startswith("---")]
            line = " / ".join(plus) if plus else "removed: " + " / ".join(minus)
            out[name] = (name.partition("__mutmut_")[0], line)
        return out
    finally:
        os.chdir(here)


def mutant_names(module: str) -> list[str]:
    """The names mutmut will give the mutants of ``module`` (for sampling)."""
    from mutmut.mutation.file_mutation import mutate_file_contents
    from mutmut.utils.format_utils import get_mutant_name

    mutated = mutate_file_contents(module, (ROOT / module).read_text())
    return sorted(get_mutant_name(Path(module), n) for n in mutated.mutant_names)


def work_copy(module: str, tests: list[str], data: dict, fresh: bool) -> Path:
    work = ROOT / "mutants" / module.removesuffix(".py").replace("/", ".")
    if fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    mm = dict(data["tool"]["mutmut"])
    copies = ["canonlib", "tests", *mm.get("also_copy", [])]
    for name in copies:
        src, dst = ROOT / name, work / name
        if dst.exists():
            shutil.rmtree(dst) if dst.is_dir() else dst.unlink()
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dst)
    # a mutant that drops a `cwd=` runs its git command in the work copy, and git would find the
    # enclosing checkout: mirror.py's `symbolic-ref HEAD refs/heads/main` switched this worktree's
    # HEAD to main (and a `fetch --prune` could rewrite its refs).  A throw-away repo here stops
    # git's search for a repo at the work copy.
    if not (work / ".git").exists():
        subprocess.run(["git", "init", "--quiet", str(work)], check=True)
    mm["only_mutate"] = [module]
    mm["pytest_add_cli_args_test_selection"] = tests
    (work / "pyproject.toml").write_text(_toml({"tool": {"mutmut": mm}}))
    return work


def _toml(data: dict, prefix: str = "") -> str:
    """Just enough TOML for [tool.mutmut]: strings, numbers, bools and lists of strings."""
    lines, tables = [], []
    for k, v in data.items():
        if isinstance(v, dict):
            tables.append(_toml(v, f"{prefix}{k}."))
        else:
            lines.append(f"{k} = {json.dumps(v)}")
    head = f"[{prefix[:-1]}]\n" if prefix and lines else ""
    return head + "".join(f"{line}\n" for line in lines) + "".join(tables)


def run(module: str, tests: list[str], data: dict, args) -> dict:
    names = mutant_names(module)
    chosen = names
    if args.sample and args.sample < len(names):
        chosen = sorted(random.Random(args.seed).sample(names, args.sample))
    print(
        f"== {module}: {len(chosen)} of {len(names)} mutants against {' '.join(tests)}", flush=True
    )
    work = ROOT / "mutants" / module.removesuffix(".py").replace("/", ".")
    log, rc = work / "mutmut.log", "not run"
    if not args.report_only:
        work = work_copy(module, tests, data, fresh=not args.keep)
        cmd = [str(Path(sys.executable).parent / "mutmut"), "run", "--max-children", str(args.jobs)]
        if chosen is not names:
            cmd += chosen
        # Child processes (papermill kernels, `python -m canonlib`) import the canonlib the
        # tests in mutmut's own process import: the trampolined copy in mutants/, not the
        # work copy's unmutated one nor whatever the editable install points at.  canon's
        # source digest keys the known-red memory, so with two canonlibs a demo's week-3
        # sweep met a "new harness", re-tested its known-reds, and mutmut's stats run failed
        # ("runner returned 1").  Children run the mutant under test too (MUTANT_UNDER_TEST
        # is in their environment).  The dir must exist before mutmut starts: a sys.path
        # entry that is no dir when Python first looks is cached as "no importer" for good,
        # and mutmut's own entry for it (the same string) then finds nothing ("No module
        # named 'tests'", pytest exit 4).
        (work / "mutants").mkdir(exist_ok=True)
        env = {**os.environ, "PYTHONPATH": str(work / "mutants")}
        with log.open("w") as out:
            rc = subprocess.run(
                cmd, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT
            ).returncode
    meta = work / "mutants" / f"{module}.meta"
    if rc not in (0, "not run"):  # a score from a run that broke would be a lie
        sys.exit(f"mutate: mutmut failed for {module} (rc {rc}); see {log}")
    if not meta.exists():
        sys.exit(f"mutate: mutmut made no results for {module} (rc {rc}); see {log}")
    from mutmut.stats import status_by_exit_code

    codes = json.loads(meta.read_text())["exit_code_by_key"]
    status = {k: status_by_exit_code[codes[k]] for k in chosen if k in codes}
    sigs = signatures(work, module, list(status))
    return {"module": module, "work": work, "total": len(names), "status": status, "sigs": sigs}


def report(r: dict) -> tuple[str, int, int, int, int]:
    status, sigs, equiv = r["status"], r["sigs"], equivalents()
    listed = {k for k in status if sigs[k] in equiv}
    killed = [k for k in status if status[k] in KILLED and k not in listed]
    stale = sorted(k for k in listed if status[k] in KILLED)
    survived = sorted(k for k in status if status[k] not in KILLED and k not in listed)
    n = len(status)
    counted = n - len(listed) + len(stale)
    score = 100.0 * (len(killed) + len(stale)) / counted if counted else 100.0
    for k in survived:
        fn, line = sigs[k]
        print(f"   survived ({status[k]}): {k}\n      - `{fn}` `{line}` — ")
    for k in stale:
        fn, line = sigs[k]
        print(
            f"   listed as equivalent but killed, drop it from {EQUIVALENTS.name}: `{fn}` `{line}`"
        )
    prefix = r["module"].removesuffix(".py").replace("/", ".") + "."
    if n == r["total"]:  # a full run can tell which entries match no mutant at all
        seen = set(sigs.values())
        for fn, line in sorted(k for k in equiv if k[0].startswith(prefix) and k not in seen):
            print(f"   no mutant matches this {EQUIVALENTS.name} entry any more: `{fn}` `{line}`")
    if survived:
        print(f"   see one: cd {r['work'].relative_to(ROOT)} && mutmut show <name>")
    sampled = f" (sample of {r['total']})" if n < r["total"] else ""
    print(
        f"   {r['module']}: {n} mutants{sampled}, {len(killed) + len(stale)} killed, "
        f"{len(survived)} survived, {len(listed) - len(stale)} equivalent -> score {score:.1f}%"
    )
    return r["module"], n, len(killed) + len(stale), len(survived), len(listed) - len(stale)


def selected(patterns: list[str]) -> list[str]:
    """Test files (globs) and single tests (``file::name``, for a module's own test that lives
    in another module's file) to run against a module's mutants."""
    out = set()
    for p in patterns:
        path, sep, node = p.partition("::")
        out |= {str(t.relative_to(ROOT)) + sep + node for t in ROOT.glob(path)}
    return sorted(out)


def main(argv: list[str] | None = None) -> int:
    data, settings = load_settings()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("modules", nargs="*", help=f"default: the core {settings['core']}")
    ap.add_argument("--sample", type=int, default=0, help="test a seeded sample of n mutants")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--jobs", type=int, default=1, help="mutmut --max-children (default 1)")
    ap.add_argument("--keep", action="store_true", help="reuse mutmut's cached results")
    ap.add_argument(
        "--report-only", action="store_true", help="only score the last run's results again"
    )
    args = ap.parse_args(argv)
    rows = []
    for module in args.modules or settings["core"]:
        tests = selected(settings["tests"].get(module, []))
        if not tests:
            known = ", ".join(settings["tests"])
            print(
                f"mutate: no test files configured for {module} in pyproject.toml "
                f"[tool.canon.mutate.tests] (known: {known})",
                file=sys.stderr,
            )
            return 2
        rows.append(report(run(module, tests, data, args)))
    print()
    print(f"{'module':<28} {'mutants':>7} {'killed':>6} {'survived':>8} {'equiv':>5}  score")
    for module, n, k, s, e in rows:
        score = 100.0 * k / (k + s) if k + s else 100.0
        print(f"{module:<28} {n:>7} {k:>6} {s:>8} {e:>5}  {score:5.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
