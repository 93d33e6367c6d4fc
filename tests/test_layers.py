"""The house rules of canonlib's imports, checked with ``ast`` (docs/architecture.md).

- folders import only downward: leaves -> recipe/ -> state/ -> backends/ -> sweep/
  -> evidence/ -> ops/, demo/ -> cli/ (ops and demo do not import each other);
- no import circles between modules;
- no import of canonlib inside a function, except one deliberately deferred (a
  comment with the word "deferred" on that line or the line above says why).

The checker runs on the real package, and on small packages made in tmp_path
that break each rule, so it is known to fail when it should.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import canonlib

PKG = Path(canonlib.__file__).resolve().parent

LEAVES = {
    "errors",
    "files",
    "process",
    "term",
    "tables",
    "faults",
    "git",
    "config",
    "claims",
    "envfile",
    "box",
}
# rank of each folder; a module may import modules of its own rank or lower, and within one
# rank only its own folder (ops/ and demo/ share a rank and stay apart)
RANKS = {
    "": 0,
    "recipe": 1,
    "state": 2,
    "backends": 3,
    "sweep": 4,
    "evidence": 5,
    "ops": 6,
    "demo": 6,
    "cli": 7,
    "__main__": 8,
}


@dataclass
class Report:
    upward: list[str] = field(default_factory=list)
    local: list[str] = field(default_factory=list)
    cycles: list[list[str]] = field(default_factory=list)
    edges: dict[str, set[str]] = field(default_factory=dict)


def module_name(root: Path, path: Path) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def folder_of(module: str, packages: set[str]) -> str:
    parts = module.split(".")[1:]
    if not parts:
        return ""
    if len(parts) == 1 and module not in packages:  # a top-level module: a leaf (or __main__)
        return "__main__" if parts[0] == "__main__" else ""
    return parts[0]


def _targets(node: ast.ImportFrom | ast.Import, module: str, is_pkg: bool, known: set[str]):
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        pkg = module.split(".") if is_pkg else module.split(".")[:-1]
        pkg = pkg[: len(pkg) - (node.level - 1)]
        base = ".".join(pkg + ([node.module] if node.module else []))
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]


def check(root: Path) -> Report:
    files = {module_name(root, p): p for p in sorted(root.rglob("*.py"))}
    known = set(files)
    packages = {m for m, p in files.items() if p.name == "__init__.py"}
    report = Report()
    for mod, path in files.items():
        src = path.read_text()
        lines = src.splitlines()
        tree = ast.parse(src)
        top = {id(n) for n in tree.body}
        report.edges[mod] = set()
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            targets = [
                t
                for t in _targets(node, mod, path.name == "__init__.py", known)
                if t in known and t != mod
            ]
            if not targets:
                continue
            report.edges[mod].update(targets)
            where = f"{path.relative_to(root.parent)}:{node.lineno}"
            if id(node) not in top:
                near = " ".join(lines[max(0, node.lineno - 2) : node.lineno])
                if "deferred" not in near:
                    report.local.append(f"{where} imports {', '.join(targets)} inside a function")
            for t in targets:
                a, b = folder_of(mod, packages), folder_of(t, packages)
                if RANKS[b] > RANKS[a] or (RANKS[b] == RANKS[a] and a != b):
                    report.upward.append(
                        f"{where}: {mod} ({a or 'leaf'}) imports {t} ({b or 'leaf'})"
                    )
    report.cycles = cycles(report.edges)
    return report


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_canonlib_has_no_import_circles():
    assert check(PKG).cycles == []


def test_canonlib_folders_import_only_downward():
    assert check(PKG).upward == []


def test_canonlib_imports_nothing_of_its_own_inside_a_function():
    assert check(PKG).local == []


def test_every_folder_has_a_rank():
    folders = {p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders <= set(RANKS), folders - set(RANKS)
    tops = {p.stem for p in PKG.glob("*.py")} - {"__init__", "__main__"}
    assert tops == LEAVES, f"top-level modules are leaves; listed: {sorted(LEAVES)}"


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "canonlib"
    for name, text in {"__init__.py": "", **files}.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    return root


def test_the_checker_finds_a_circle_hidden_in_a_function(tmp_path):
    root = _package(
        tmp_path,
        {
            "claims.py": """\
                def table():
                    from canonlib.cli.style import render
                    return render
            """,
            "cli/__init__.py": "",
            "cli/style.py": "from canonlib.claims import table\n",
        },
    )
    r = check(root)
    assert r.cycles == [["canonlib.claims", "canonlib.cli.style"]]
    assert r.local == ["canonlib/claims.py:2 imports canonlib.cli.style inside a function"]
    assert r.upward == [
        "canonlib/claims.py:2: canonlib.claims (leaf) imports canonlib.cli.style (cli)"
    ]


def test_the_checker_finds_an_upward_import_and_allows_a_deferred_one(tmp_path):
    root = _package(
        tmp_path,
        {
            "state/__init__.py": "",
            "state/disk.py": "from canonlib.backends import local\n",
            "backends/__init__.py": "",
            "backends/local.py": "",
            "evidence/__init__.py": "",
            "evidence/figures.py": """\
                def draw():
                    # deferred: pulls in matplotlib
                    from canonlib.evidence import plots
                    return plots
            """,
            "evidence/plots.py": "",
            "ops/__init__.py": "",
            "ops/status.py": "from canonlib.demo import fleet\n",
            "demo/__init__.py": "",
            "demo/fleet.py": "",
        },
    )
    r = check(root)
    assert r.local == [] and r.cycles == []
    assert r.upward == [
        "canonlib/ops/status.py:1: canonlib.ops.status (ops) imports canonlib.demo.fleet (demo)",
        "canonlib/state/disk.py:1: canonlib.state.disk (state) imports canonlib.backends.local "
        "(backends)",
    ]
