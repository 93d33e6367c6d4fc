"""One way to read a file canon did not write just now: ``canonlib/files.py``.

Its readers (``read_small_file``, ``read_inside``, ``read_json_file``, ``parse_json``,
``hash_file``, ``copy_file``, ``read_range``) refuse a FIFO, a device or a link out of the
dir, cap the size, and cap JSON's depth.  This test walks canonlib with ``ast`` (as
tests/test_layers.py walks imports) for every other way to read a file -- ``open(``,
``.open(``, ``.read_text(``, ``.read_bytes(``, ``json.load(`` -- outside files.py.  Each
call site left must be in :data:`ALLOWED` with a one-line reason; a new one fails here until
it is converted or given its reason, and an entry whose call is gone fails too.

The walker runs on the real package, and on a small package made in tmp_path, so it is
known to find what it should.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import canonlib

PKG = Path(canonlib.__file__).resolve().parent
SAFE = "canonlib/files.py"
# ``x.open(`` on these is not a file: a registry (SQLite), a browser, an fd
NOT_FILES = {"Registry", "webbrowser", "os"}

# (module, function, call) -> why it may stay
ALLOWED: dict[tuple[str, str, str], str] = {
    # writes and locks: nothing is read
    ("canonlib/backends/abra.py", "AbraBackend._run", ".open("): "appends to canon's own log",
    (
        "canonlib/backends/abra.py",
        "AbraBackend._acquire_server",
        "open(",
    ): "a lock file canon makes",
    ("canonlib/backends/swarm_docker.py", "_log", ".open("): "appends to canon's own log",
    ("canonlib/backends/swarm_volumes.py", "Volumes.archive", "open("): "writes a volume archive",
    ("canonlib/cli/guard.py", "crash_log", "open("): "creates the crash log (mode x)",
    ("canonlib/cli/guard.py", "open_std_streams", "open("): (
        "puts /dev/null on a std fd that was closed before canon started"
    ),
    ("canonlib/demo/fleet.py", "Demo.week2", ".open("): "appends to a demo file canon made",
    ("canonlib/evidence/report.py", "write_report", "open("): "appends to $GITHUB_STEP_SUMMARY",
    ("canonlib/evidence/run.py", "execute", "open("): "the notebook's log, written by canon",
    ("canonlib/faults.py", "fill", "open("): "writes the filler of a fault-injected full disk",
    ("canonlib/sweep/orchestrate.py", "_Sweep.turn", "open("): "appends to results.jsonl",
    ("canonlib/sweep/orchestrate.py", "_Sweep.event", "open("): "appends to progress.jsonl",
    ("canonlib/sweep/runner.py", "_pump", "open("): "appends to the cold run's log",
    ("canonlib/sweep/runner.py", "cold_run", "open("): "creates the cold run's log",
    # reads of what canon wrote itself in this process
    ("canonlib/backends/swarm_volumes.py", "Volumes.refill", "open("): (
        "streams the volume archive canon wrote in this run into docker"
    ),
    ("canonlib/evidence/proofs.py", "Scratch.untagged_commit", ".read_text("): (
        "a file of the scratch upstream the proof made in this process"
    ),
    ("canonlib/evidence/proofs.py", "Scratch.bump", ".read_text("): (
        "a file of the scratch upstream the proof made in this process"
    ),
    ("canonlib/cli/reference.py", "stale", ".read_text("): (
        "docs/reference in canon's own source tree (make docs)"
    ),
    ("canonlib/evidence/report.py", "_template_source", ".read_text("): (
        "a page template shipped inside canon's own package (importlib.resources)"
    ),
    ("canonlib/sweep/knownred.py", "source_digest", "open("): (
        "canon's own *.py sources, found by walking its installed package"
    ),
}


def _kind(call: ast.Call) -> str | None:
    f = call.func
    if isinstance(f, ast.Name) and f.id == "open":
        return "open("
    if not isinstance(f, ast.Attribute):
        return None
    receiver = f.value.id if isinstance(f.value, ast.Name) else None
    if f.attr in ("read_text", "read_bytes"):
        return f".{f.attr}("
    if f.attr == "load" and receiver == "json":
        return "json.load("
    if f.attr == "open" and receiver not in NOT_FILES:
        return "open(" if receiver == "io" else ".open("
    return None


def read_sites(root: Path) -> dict[tuple[str, str, str], list[int]]:
    """Every way to read a file outside files.py: (module, function, call) -> its lines."""
    out: dict[tuple[str, str, str], list[int]] = {}

    def visit(node: ast.AST, rel: str, where: str) -> None:
        for child in ast.iter_child_nodes(node):
            here = where
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                here = f"{where}.{child.name}" if where else child.name
            if isinstance(child, ast.Call) and (kind := _kind(child)):
                out.setdefault((rel, where or "<module>", kind), []).append(child.lineno)
            visit(child, rel, here)

    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).as_posix()
        if rel != SAFE:
            visit(ast.parse(path.read_text()), rel, "")
    return out


def test_every_read_outside_files_py_is_allowed_with_a_reason():
    found = read_sites(PKG)
    new = {k: lines for k, lines in found.items() if k not in ALLOWED}
    assert not new, "read with canonlib/files.py, or allow with a reason:\n" + "\n".join(
        f"  {m}:{lines[0]} in {fn}: {kind}" for (m, fn, kind), lines in sorted(new.items())
    )
    gone = sorted(k for k in ALLOWED if k not in found)
    assert not gone, f"allowed but no longer there (remove the entry): {gone}"
    assert all(why.strip() for why in ALLOWED.values())


def test_the_files_this_branch_converted_read_only_through_files_py():
    """verify's loaders, the bundle, signing, the log, investigate, git: no direct reads left."""
    mine = {
        "canonlib/evidence/verify.py",
        "canonlib/evidence/bundle.py",
        "canonlib/evidence/signing.py",
        "canonlib/evidence/log.py",
        "canonlib/evidence/merkle.py",
        "canonlib/evidence/investigate.py",
        "canonlib/git.py",
        "canonlib/envfile.py",
    }
    assert [k for k in read_sites(PKG) if k[0] in mine] == []


def test_the_walker_finds_each_kind_of_read(tmp_path):
    pkg = tmp_path / "canonlib"
    pkg.mkdir()
    (pkg / "files.py").write_text("def ok(p):\n    return open(p).read()\n")
    (pkg / "m.py").write_text(
        textwrap.dedent(
            """
            import io, json, os
            from canonlib.state.registry import Registry

            def a(p):
                with open(p) as f:
                    return json.load(f)

            class C:
                def b(self, p):
                    return p.read_text() + str(p.read_bytes()) + p.open().read()

            def fine(p):
                return os.open(p, 0), Registry.open(p), io.open(p)
            """
        )
    )
    assert sorted(read_sites(pkg)) == [
        ("canonlib/m.py", "C.b", ".open("),
        ("canonlib/m.py", "C.b", ".read_bytes("),
        ("canonlib/m.py", "C.b", ".read_text("),
        ("canonlib/m.py", "a", "json.load("),
        ("canonlib/m.py", "a", "open("),
        ("canonlib/m.py", "fine", "open("),  # io.open is open
    ]
