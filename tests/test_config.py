"""config.py: canon.toml, env overrides, and one error listing every problem."""

from __future__ import annotations

import pytest

from canonlib.config import ConfigError, load_config


def test_defaults_and_relative_paths(tmp_path, monkeypatch):
    monkeypatch.delenv("CCCI_REPO", raising=False)
    monkeypatch.delenv("CANON_STATE", raising=False)
    (tmp_path / "canon.toml").write_text('fleet = "fleet"\n')
    c = load_config(tmp_path / "canon.toml")
    assert c.fleet == tmp_path / "fleet" and c.state_dir == tmp_path / "state"
    assert c.upstream_url("nextcloud") == "https://git.coopcloud.tech/coop-cloud/nextcloud.git"
    assert c.backend["kind"] == "local" and c.harness_command[-1] == "harness"


def test_env_overrides(tmp_path, monkeypatch):
    (tmp_path / "canon.toml").write_text('fleet = "fleet"\n[recipes.gitea]\nbranch = "master"\n')
    monkeypatch.setenv("CCCI_REPO", str(tmp_path / "other"))
    monkeypatch.setenv("CANON_STATE", str(tmp_path / "st"))
    monkeypatch.setenv("CANON_CONFIG", str(tmp_path / "canon.toml"))
    c = load_config()
    assert c.fleet == tmp_path / "other" and c.state_dir == tmp_path / "st"
    assert c.branch_for("gitea") == "master" and c.branch_for("x") == "main"


def config_error(tmp_path, monkeypatch, toml: str) -> ConfigError:
    """The ConfigError of loading ``toml`` as tmp_path/canon.toml, with no fleet or state dir
    from the environment."""
    monkeypatch.delenv("CCCI_REPO", raising=False)
    monkeypatch.delenv("CANON_STATE", raising=False)
    (tmp_path / "canon.toml").write_text(toml)
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "canon.toml")
    return e.value


def test_every_problem_is_listed(tmp_path, monkeypatch):
    err = config_error(
        tmp_path,
        monkeypatch,
        'upstream = "https://example.org/x.git"\nfleeet = 1\n[backend]\nkind = "docker"\n'
        '[sync]\nparallel = 0\n[harness]\ntimeout_s = "soon"\n',
    )
    msg = str(err)
    for words in [
        "unknown key 'fleeet'",
        "no fleet",
        "backend.kind must be one of local, abra",
        "sync.parallel must be between 1 and 256",
        "harness.timeout_s must be",
        "must contain {recipe}",
    ]:
        assert words in msg
    assert "6 problem(s)" in msg and err.exit_code == 2


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    (tmp_path / "bad.toml").write_text("fleet = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "bad.toml")


def test_problems_come_in_one_order_table_by_table(tmp_path, monkeypatch):
    """The whole message, byte for byte: unknown keys, then the paths, the upstream and branch,
    [backend], [harness], [sync], [budget], [recipes], and the directories last."""
    (tmp_path / "afile").write_text("x")
    path = tmp_path / "canon.toml"
    err = config_error(
        tmp_path,
        monkeypatch,
        'fleeet = 1\nstate_dir = "afile"\nupstream = "x"\nbranch = "a..b"\n'
        '[backend]\nkind = "swarn"\n[harness]\ncommand = []\n[sync]\nparallel = 0\n'
        "[budget]\ndisk_bytes = 1.5\n[recipes.x]\nother = 1\n",
    )
    assert str(err) == (
        f"{path}: 10 problem(s):\n"
        "  - unknown key 'fleeet'; did you mean fleet?\n"
        "  - no fleet: set `fleet` in canon.toml or CCCI_REPO to the operator's test tree\n"
        "  - upstream must contain {recipe}, got 'x'\n"
        "  - branch 'a..b' is not a branch name: contains '..' or '@{'\n"
        "  - backend.kind must be one of local, abra, swarm, got 'swarn'; did you mean swarm?\n"
        "  - harness.command must be a non-empty string or list of strings\n"
        "  - sync.parallel must be between 1 and 256, got 0\n"
        "  - budget.disk_bytes must be an integer, got 1.5\n"
        "  - recipes.x may only set upstream and branch\n"
        f"  - state_dir {tmp_path / 'afile'} is a file, not a directory; set it to a directory "
        "canon may create or use"
    )


def test_the_backend_keys_canon_reads_are_of_their_type(tmp_path, monkeypatch):
    """[backend] keeps its keys as written, but one a backend reads is the type it reads:
    text for docker, abra, context..., a number for timeout_s."""
    (tmp_path / "fleet").mkdir()
    path = tmp_path / "canon.toml"
    err = config_error(
        tmp_path,
        monkeypatch,
        'fleet = "fleet"\n[backend]\nkind = "swarm"\ndocker = 5\ntimeout_s = "900"\n'
        "instance = true\nservers = [1]\n",
    )
    assert str(err) == (
        f"{path}: 4 problem(s):\n"
        "  - backend.servers must be a list of server names\n"
        "  - backend.docker must be a string, got 5\n"
        "  - backend.instance must be a string, got True\n"
        "  - backend.timeout_s must be an integer or a number, got '900'"
    )
    path.write_text(
        'fleet = "fleet"\n[backend]\nkind = "swarm"\ndocker = "/usr/bin/docker"\ntimeout_s = 60\n'
        'own_key = [1, 2]\nservers = ["a"]\n'
    )
    c = load_config(path)
    assert c.backend == {
        "kind": "swarm",
        "docker": "/usr/bin/docker",
        "timeout_s": 60,
        "own_key": [1, 2],  # a key of the backend's own, kept as written
        "servers": ["a"],
    }
    assert list(c.backend) == ["kind", "docker", "timeout_s", "own_key", "servers"]
