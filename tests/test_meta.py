"""meta.py: literal-only parse of recipe_meta.py, with errors naming file, line and fix."""

from __future__ import annotations

import pytest

from canonlib.recipe.meta import KEYS, MetaError, RecipeMeta, load_meta


def write(tmp_path, text, recipe="nextcloud"):
    d = tmp_path / recipe
    d.mkdir()
    (d / "recipe_meta.py").write_text(text)
    return d


def test_defaults_and_values(tmp_path):
    d = write(
        tmp_path,
        '"""nextcloud meta."""\nWARM_CANONICAL = True\nEXPECTED_NA = {"L3": "no backups"}\n'
        'SECRETS = {"pds_plc_rotation_key": "hex:32", "db_password": None}\n',
    )
    m = load_meta(d)
    assert m.recipe == "nextcloud" and m.enrolled is True
    assert m.expected_na == {"backup": "no backups"}
    assert m.SECRETS["pds_plc_rotation_key"] == "hex:32"
    assert m.DEPLOY_TIMEOUT_S == KEYS["DEPLOY_TIMEOUT_S"].default
    assert m.HOLD is None and m.DEPS == []


def test_fixture_is_never_enrolled(tmp_path):
    assert load_meta(write(tmp_path, "WARM_CANONICAL = True\nFIXTURE = True\n")).enrolled is False


def test_typo_suggests_the_closest_key(tmp_path):
    d = write(tmp_path, "\n\nWARM_CANONCIAL = True\n")
    with pytest.raises(MetaError) as e:
        load_meta(d)
    msg = str(e.value)
    assert str(d / "recipe_meta.py") + ":3:" in msg
    assert "did you mean WARM_CANONICAL?" in msg


@pytest.mark.parametrize(
    "source, line, words",
    [
        ("WARM_CANONICAL = 'yes'\n", 1, "must be bool"),
        ("DEPLOY_TIMEOUT_S = -5\n", 1, "positive int"),
        ("EXPECTED_NA = {'L9': 'x'}\n", 1, "EXPECTED_NA must be"),
        ("READY_PROBES = [{'cmd': 'true', 'http': 'x'}]\n", 1, "READY_PROBES must be"),
        ("import os\nWARM_CANONICAL = True\n", 1, "only NAME = <literal>"),
        (
            "WARM_CANONICAL = True\nWARM_CANONICAL = __import__('os').system('touch pwned')\n",
            2,
            "must be a literal",
        ),
        ("def f():\n    pass\n", 1, "FunctionDef"),
        ("A = B = 1\n", 1, "one plain NAME"),
        ("WARM_CANONICAL = (\n", 1, "syntax error"),
        ("FOO = 1\n", 1, "unknown key FOO"),
    ],
)
def test_bad_meta_is_a_clear_error(tmp_path, monkeypatch, source, line, words):
    monkeypatch.chdir(tmp_path)  # where `touch pwned` would write, were it ever run
    d = write(tmp_path, source)
    with pytest.raises(MetaError) as e:
        load_meta(d)
    assert f"recipe_meta.py:{line}:" in str(e.value)
    assert words in str(e.value)
    assert not (tmp_path / "pwned").exists()


def test_code_is_never_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    d = write(tmp_path, "WARM_CANONICAL = open('pwned', 'w').write('x') or True\n")
    with pytest.raises(MetaError):
        load_meta(d)
    assert not (tmp_path / "pwned").exists()


def test_missing_meta_names_the_path(tmp_path):
    with pytest.raises(MetaError, match="recipe_meta.py: missing"):
        load_meta(tmp_path)


def test_every_key_is_an_attribute_of_its_declared_type(tmp_path):
    """Each key of KEYS reads as an attribute: its default unset, the file's value set; a value
    of the wrong type (only a RecipeMeta built by hand can hold one) is a MetaError."""
    m = RecipeMeta("r", tmp_path / "recipe_meta.py")
    assert {name: getattr(m, name) for name in KEYS} == {n: k.default for n, k in KEYS.items()}
    for name, key in KEYS.items():
        assert isinstance(getattr(RecipeMeta, name), property), name
        assert key.check(key.default), name
    steps = ("a", "b")  # a tuple literal is a list of str too
    assert RecipeMeta("r", m.path, {"INSTALL_STEPS": steps}).INSTALL_STEPS is steps
    with pytest.raises(MetaError, match=r"recipe_meta.py: DEPS must be list of str, got 'db'"):
        RecipeMeta("r", m.path, {"DEPS": "db"}).DEPS  # noqa: B018
    with pytest.raises(AttributeError):
        m.NOT_A_KEY  # noqa: B018
    # a test's own meta may be quicker than a file's (whole seconds, at least 1)
    assert RecipeMeta("r", m.path, {"DEPLOY_TIMEOUT_S": 0.01}).DEPLOY_TIMEOUT_S == 0.01
