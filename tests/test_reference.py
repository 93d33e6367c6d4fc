"""The reference pages in docs/reference/ are generated from the code and must be current;
every recipe_meta.py key and every canon.toml key the loader reads has help."""

from __future__ import annotations

import ast
from pathlib import Path

import canonlib
from canonlib.cli import reference
from canonlib.config import CONFIG_KEYS, load_config
from canonlib.recipe.meta import KEY_HELP, KEYS, parse_meta

REPO = Path(__file__).resolve().parents[1]
PKG = Path(canonlib.__file__).resolve().parent


def test_reference_pages_are_current():
    stale = reference.stale(REPO / "docs" / "reference")
    assert not stale, (
        f"docs/reference is stale ({', '.join(stale)}): the code's keys or commands changed. "
        f"Regenerate with: {reference.REGENERATE}"
    )


def test_check_names_a_stale_page_and_regenerating_fixes_it(tmp_path, capsys):
    assert reference.main([str(tmp_path), "--check"]) == 1  # nothing written yet
    assert reference.main([str(tmp_path)]) == 0
    assert reference.main([str(tmp_path), "--check"]) == 0
    page = tmp_path / "recipe-meta.md"
    page.write_text(page.read_text().replace("HOLD", "HOLT"))
    capsys.readouterr()
    assert reference.main([str(tmp_path), "--check"]) == 1
    err = capsys.readouterr().err
    assert "recipe-meta.md" in err and "python -m canonlib.cli.reference docs/reference" in err
    assert "cli.md" not in err


def test_every_meta_key_has_help_and_a_working_example():
    assert set(KEY_HELP) == set(KEYS), (
        "add the missing keys' help to KEY_HELP in canonlib/recipe/meta.py"
    )
    for name, h in KEY_HELP.items():
        assert len(h.meaning) > 20, name
        values = parse_meta(h.example, Path("recipe_meta.py"))  # type-checked by the parser
        assert list(values) == [name] and values[name] != KEYS[name].default, name


def test_meta_reference_lists_every_key_with_type_default_and_example():
    page = reference.meta_keys_md()
    for name, key in KEYS.items():
        line = next(ln for ln in page.splitlines() if ln.startswith(f"| `{name}` |"))
        assert key.type_name.split()[0] in line and repr(key.default) in line
        assert KEY_HELP[name].meaning.split()[0] in line


def _loader_functions(tree: ast.Module) -> list[ast.FunctionDef]:
    """``load_config`` and the module's functions it calls, directly or through each other
    (one function per table of canon.toml)."""
    defs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    found, todo = {}, ["load_config"]
    while todo:
        name = todo.pop()
        if name in found or name not in defs:
            continue
        found[name] = defs[name]
        calls = (n.func for n in ast.walk(defs[name]) if isinstance(n, ast.Call))
        todo += [f.id for f in calls if isinstance(f, ast.Name)]
    return list(found.values())


def _loader_keys() -> set[str]:
    """Every dotted key the config loader and the backends read, found in their source."""
    keys: set[str] = set()
    tree = ast.parse((PKG / "config.py").read_text())
    for node in (n for f in _loader_functions(tree) for n in ast.walk(f)):
        # take(table, "key", types, default, "where.") and helpers shaped like it
        if isinstance(node, ast.Call) and len(node.args) >= 4:
            key = node.args[1]
            wheres = [
                a.value
                for a in node.args[2:]
                if isinstance(a, ast.Constant)
                and isinstance(a.value, str)
                and (a.value == "" or a.value.endswith("."))
            ]
            if isinstance(key, ast.Constant) and isinstance(key.value, str) and wheres:
                keys.add(wheres[-1] + key.value)
    sources = [tree] + [ast.parse(p.read_text()) for p in sorted((PKG / "backends").glob("*.py"))]
    for t in sources:
        for node in ast.walk(t):
            receiver = key = None
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get"
            ):
                receiver, key = node.func.value, node.args[0] if node.args else None
            elif isinstance(node, ast.Subscript):
                receiver, key = node.value, node.slice
            elif isinstance(node, ast.Compare) and isinstance(node.ops[0], ast.In):
                receiver, key = node.comparators[0], node.left
            is_backend = (isinstance(receiver, ast.Name) and receiver.id in ("backend", "b")) or (
                isinstance(receiver, ast.Attribute) and receiver.attr == "backend"
            )
            if is_backend and isinstance(key, ast.Constant) and isinstance(key.value, str):
                keys.add("backend." + key.value)
    return keys


def test_every_config_key_the_loader_reads_is_documented():
    read = _loader_keys()
    assert {"fleet", "backend.kind", "harness.timeout_s", "sync.parallel"} <= read  # the scan works
    tables = {
        k
        for k in read
        if "." not in k and k in {"backend", "harness", "sync", "budget", "recipes", "log", "sweep"}
    }
    documented = set(CONFIG_KEYS)
    missing = read - tables - documented
    assert not missing, (
        f"canon.toml keys without help: {sorted(missing)}; add them to CONFIG_KEYS at the end of "
        f"canonlib/config.py, then regenerate: {reference.REGENERATE}"
    )
    gone = {k for k in documented - read if not k.startswith("recipes.")}
    assert not gone, f"CONFIG_KEYS documents keys nothing reads: {sorted(gone)}"


def test_every_documented_config_example_loads(tmp_path):
    top, tables = [], {}
    for name, k in CONFIG_KEYS.items():
        table, _, _ = name.rpartition(".")
        if table:
            tables.setdefault(table.replace("<name>", "my-recipe"), []).append(k.example)
        else:
            top.append(k.example)
    text = (
        "\n".join(top)
        + "\n"
        + "".join(f"\n[{t}]\n" + "\n".join(lines) + "\n" for t, lines in tables.items())
    )
    (tmp_path / "canon.toml").write_text(text)
    config = load_config(tmp_path / "canon.toml", env_overrides=False)
    assert config.backend["kind"] == "abra" and config.sync_parallel == 4
    assert config.upstream_url("my-recipe") == "https://example.org/nextcloud.git"


def test_the_cli_page_has_every_command(tmp_path):
    from canonlib.cli.main import build_parser

    page = reference.cli_md()
    progs = [p.prog for p, _ in reference.walk(build_parser())]
    assert {"canon sweep", "canon init", "canon meta keys", "canon systemd render"} <= set(progs)
    for prog in progs:
        assert f"## `{prog}`" in page
