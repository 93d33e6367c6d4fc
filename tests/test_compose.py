"""The pure pieces every backend shares with the swarm backend: env, compose files, secret names,
labels, convergence.  No docker needed."""

from __future__ import annotations

import pytest

from canonlib.backends import BackendError
from canonlib.backends.compose import (
    abra_sh_exports,
    app_env,
    compose_files,
    literal,
    not_a_recipe,
    parse_compose_files,
    secret_specs,
    split_step,
    stack_name,
    with_labels,
)
from canonlib.backends.swarm_converge import _replicas, convergence_problem
from canonlib.backends.swarm_docker import Inspected


@pytest.mark.parametrize(
    ("slot", "want"),
    [
        ("cold-app-0123456789", "cold-app-0123456789"),
        ("warm.app.1", "warm_app_1"),  # abra: the domain's dots become underscores
    ],
)
def test_stack_name(slot, want):
    assert stack_name(slot) == want


def test_long_slots_get_short_distinct_stack_names():
    a, b = stack_name("cold-" + "x" * 60 + "-a"), stack_name("cold-" + "x" * 60 + "-b")
    assert len(a) <= 40 and len(b) <= 40 and a != b


def test_app_env_is_the_sample_with_the_overlay_and_abra_sh_exports(tmp_path):
    (tmp_path / ".env.sample").write_text(
        "TYPE=r\nDOMAIN=r.example.com\n#SMTP=\nSECRET_DB_PASSWORD_VERSION=v2 # length=48\n"
    )
    (tmp_path / "abra.sh").write_text(
        "export APP_CONF_VERSION=v3\nexport EVIL=$(rm -rf /)\nfoo() { :; }\n"
    )
    text, env = app_env(tmp_path, {"SMTP": "mail", "STACK_NAME": "s"})
    assert env["SMTP"] == "mail" and env["STACK_NAME"] == "s" and env["DOMAIN"] == "r.example.com"
    assert env["SECRET_DB_PASSWORD_VERSION"] == "v2"  # abra's inline comment is not the value
    assert env["APP_CONF_VERSION"] == "v3" and "EVIL" not in env  # literal exports only, never run
    assert "SMTP=mail" in text


def test_abra_sh_missing_is_no_exports(tmp_path):
    assert abra_sh_exports(tmp_path) == {}


def test_compose_files_follow_compose_file_and_stay_inside_the_recipe(tmp_path):
    (tmp_path / "compose.yml").write_text("services: {app: {image: x}}\n")
    (tmp_path / "compose.smtp.yml").write_text("services: {app: {environment: [A=1]}}\n")
    assert [p.name for p in compose_files(tmp_path, {}, "1.0.0")] == ["compose.yml"]
    env = {"COMPOSE_FILE": "compose.yml:compose.smtp.yml"}
    assert [p.name for p in compose_files(tmp_path, env, "1.0.0")] == [
        "compose.yml",
        "compose.smtp.yml",
    ]
    with pytest.raises(BackendError, match="outside the recipe"):
        compose_files(tmp_path, {"COMPOSE_FILE": "compose.yml:../x.yml"}, "1.0.0")
    assert parse_compose_files(tmp_path, env, "1.0.0")["services"]["app"] == {
        "environment": ["A=1"]
    }


def test_not_a_recipe(tmp_path):
    assert not_a_recipe(tmp_path, "1.2.3") == "not a recipe: no compose.yml at 1.2.3"
    (tmp_path / "compose.yml").write_text("services: {}\n")
    assert not_a_recipe(tmp_path, "1.2.3") is None
    with pytest.raises(BackendError, match="define no services"):
        parse_compose_files(tmp_path, {}, "1.2.3")


RENDERED = {
    "services": {"app": {"image": "x", "deploy": {"labels": {"a": "1"}}, "command": "echo $$X"}},
    "volumes": {"data": {}, "shared": {"external": True}},
    "secrets": {
        "db_password": {"external": True, "name": "s_db_password_v2"},
        "from_file": {"file": "/r/f"},
    },
    "configs": {"conf": {"file": "/r/app.conf", "name": "s_conf_v1"}},
    "networks": {"proxy": {"external": True}},
}


def test_secret_specs_take_abras_names_and_generators():
    env_text = "SECRET_DB_PASSWORD_VERSION=v2 # length=48\n"
    env = {"SECRET_DB_PASSWORD_VERSION": "v2", "SECRET_EXTRA_VERSION": "v5"}
    specs = {s.key: s for s in secret_specs(RENDERED, "s", env, env_text, {"extra": "hex:8"})}
    assert set(specs) == {"db_password", "extra"}  # a file-based secret is docker's to make
    assert (specs["db_password"].name, specs["db_password"].generator) == (
        "s_db_password_v2",
        "alnum:48",
    )
    assert (specs["extra"].name, specs["extra"].generator) == ("s_extra_v5", "hex:8")


def test_secret_names_longer_than_docker_allows_are_refused():
    with pytest.raises(BackendError, match="longer than docker's 64"):
        secret_specs({}, "s" * 40, {}, "", {"a_rather_long_secret_name": None})


def test_labels_go_on_everything_the_stack_makes_and_nothing_external():
    doc = with_labels(RENDERED, {"canon.slot": "s"})
    assert doc["services"]["app"]["deploy"]["labels"] == {"a": "1", "canon.slot": "s"}
    assert doc["services"]["app"]["labels"] == {"canon.slot": "s"}
    assert doc["volumes"]["data"]["labels"] == {"canon.slot": "s"}
    assert "labels" not in doc["volumes"]["shared"] and "labels" not in doc["networks"]["proxy"]
    assert doc["networks"]["default"]["labels"] == {"canon.slot": "s"}
    assert doc["configs"]["conf"]["labels"] == {"canon.slot": "s"}
    assert doc["secrets"]["from_file"]["labels"] == {"canon.slot": "s"}
    assert "labels" not in doc["secrets"]["db_password"]
    assert RENDERED["volumes"]["data"] == {}  # the input is not touched


def test_literal_makes_the_second_interpolation_an_identity():
    assert literal({"c": ["echo $X", 1], "$k": "a$$b"}) == {"c": ["echo $$X", 1], "$$k": "a$$$$b"}


@pytest.mark.parametrize(
    ("text", "want"),
    [("1/1", (1, 1)), ("0/3", (0, 3)), ("0/1 (1/1 completed)", (1, 1)), ("", (0, 0))],
)
def test_replicas(text, want):
    assert _replicas(text) == want


def svc(name, update=None, job=False):
    """A service as ``docker service inspect`` shows it, read as the swarm backend reads it."""
    mode = {"ReplicatedJob": {}} if job else {"Replicated": {"Replicas": 1}}
    doc = {"ID": name + "id", "Spec": {"Name": name, "Mode": mode}, "UpdateStatus": update}
    return Inspected.from_json(doc)


@pytest.mark.parametrize(
    ("services", "counts", "want"),
    [
        ([], {}, "no services"),
        ([svc("a")], {"aid": (1, 1)}, None),
        ([svc("a")], {"aid": (0, 1)}, "service a: 0/1 tasks running"),
        ([svc("a"), svc("b")], {"aid": (1, 1), "bid": (0, 0)}, "service b: 0/0 tasks running"),
        ([svc("a", {"State": "updating"})], {"aid": (1, 1)}, "service a: update in progress"),
        ([svc("a", {"State": "completed"})], {"aid": (1, 1)}, None),
        (
            [svc("a", {"State": "paused", "Message": "update paused due to failure"})],
            {"aid": (1, 1)},
            "service a: update paused: update paused due to failure",
        ),
        (
            [svc("a", {"State": "rollback_completed"})],
            {"aid": (1, 1)},
            "service a: update rollback_completed",
        ),
        ([svc("j", job=True)], {}, None),
    ],
)
def test_convergence_problem(services, counts, want):
    assert convergence_problem(services, counts) == want


@pytest.mark.parametrize(
    ("step", "want"),
    [
        ("db: psql -c 'select 1'", ("db", "psql -c 'select 1'")),
        ("echo a:b", ("app", "echo a:b")),
        ("test -f /x", ("app", "test -f /x")),
        ("/bin/sh -c x:y", ("app", "/bin/sh -c x:y")),
    ],
)
def test_split_step(step, want):
    assert split_step(step, "app") == want


def test_no_engine_is_the_environments_fault_not_the_recipes(tmp_path, monkeypatch):
    from canonlib.backends.common import BackendUnavailable
    from canonlib.backends.swarm import SwarmBackend

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    with pytest.raises(BackendUnavailable, match="does not answer.*scripts/swarm-up"):
        SwarmBackend(tmp_path / "w").check_engine()
    with pytest.raises(BackendUnavailable, match="not found: install docker"):
        SwarmBackend(tmp_path / "w", docker=str(tmp_path / "no-docker")).check_engine()
