"""Several servers: the scheduler (pure, table-tested), the config keys, and a real sweep over
three abra servers through the FAKE abra of tests/test_abra.py (the one stand-in of the suite),
recording which server each call went to."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from canonlib.config import ConfigError, load_config
from canonlib.errors import UsageError
from canonlib.state.marker import SlotMarker
from canonlib.state.registry import Registry
from canonlib.state.row import ResultRow
from canonlib.sweep import schedule
from canonlib.sweep.orchestrate import sweep
from tests.test_abra import FAKE_ABRA, fake_abra  # noqa: F401 -- the fixture
from tests.workspace import Workspace

# -- the scheduler -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recipes", "expected", "want"),
    [
        (["a", "b", "c"], {"a": 1, "b": 3, "c": 2}, ["b", "c", "a"]),
        # never cold-run: counted as the longest known, so it starts early
        (["a", "new", "b"], {"a": 5, "b": 9}, ["new", "b", "a"]),
        # ties keep the fleet's order
        (["x", "y", "z"], {"x": 2, "y": 2, "z": 2}, ["x", "y", "z"]),
        (["x", "y"], {}, ["x", "y"]),
        ([], {"a": 1}, []),
    ],
)
def test_order_longest_expected_first(recipes, expected, want):
    assert schedule.order(recipes, expected) == want


@pytest.mark.parametrize(
    ("expected", "servers", "per_server", "placed", "span"),
    [
        # LPT over 3 servers: 9 runs of 1..9 s end at 16 s (the ideal 45/3 = 15; LPT is
        # within 4/3 of the best, one after another would take 45)
        (
            {f"r{i}": float(i) for i in range(1, 10)},
            ["s1", "s2", "s3"],
            1,
            {"r9": "s1", "r8": "s2", "r7": "s3", "r6": "s3", "r5": "s2", "r4": "s1"},
            16.0,
        ),
        # one server: one after another
        ({"a": 2.0, "b": 3.0}, ["s1"], 1, {"a": "s1", "b": "s1"}, 5.0),
        # two at once on one server
        ({"a": 2.0, "b": 3.0}, ["s1"], 2, {"a": "s1", "b": "s1"}, 3.0),
        # the long one alone on a server, the short ones share the other
        ({"long": 10.0, "s": 3.0, "t": 3.0, "u": 3.0}, ["s1", "s2"], 1, {"long": "s1"}, 10.0),
    ],
)
def test_assign_is_list_scheduling_longest_first(expected, servers, per_server, placed, span):
    plan = schedule.assign(list(expected), expected, servers, per_server)
    got = {a.recipe: a.server for a in plan}
    assert {r: got[r] for r in placed} == placed
    assert schedule.makespan(plan) == span
    for s in servers:  # never more than per_server at once on a server
        runs = [a for a in plan if a.server == s]
        for a in runs:
            assert sum(b.start_s <= a.start_s < b.end_s for b in runs) <= per_server


SERVERS = ["s1", "s2", "s3"]


@pytest.mark.parametrize(
    ("pinned", "current", "held", "want"),
    [
        (None, None, {}, "s1"),  # nobody holds anything: the first
        (None, None, {"s1": 2, "s2": 1, "s3": 1}, "s2"),  # the least loaded, first on a tie
        (None, None, {"s1": 1, "s2": 1}, "s3"),
        (None, "s1", {"s1": 9}, "s1"),  # a canonical stays where it is
        ("s3", "s1", {"s3": 9}, "s3"),  # unless SERVER says otherwise
        ("s2", None, {}, "s2"),
    ],
)
def test_home_of_a_canonical(pinned, current, held, want):
    assert schedule.home("r", SERVERS, pinned=pinned, current=current, held=held) == want


@pytest.mark.parametrize(
    ("pinned", "current", "words"),
    [("s9", None, "SERVER = 's9' is not one of"), (None, "old", "lives on server 'old'")],
)
def test_home_refuses_a_server_not_configured(pinned, current, words):
    with pytest.raises(schedule.PlacementError, match=words):
        schedule.home("r", SERVERS, pinned=pinned, current=current, held={})


def test_expected_durations_are_the_last_cold_run_of_each_recipe():
    rows = [
        ResultRow("a", tested_commit="c1", duration_s=40.0),
        ResultRow("a", tested_commit=None, duration_s=0.1),  # a skip: not a cold run
        ResultRow("b", tested_commit="c2", duration_s=7.5),
        ResultRow("b", tested_commit="c3", duration_s=9.0),  # newer
    ]
    assert schedule.expected_durations(rows) == {"a": 40.0, "b": 9.0}


def test_orphaned_servers_are_named_with_their_recipes():
    held = [("a", "s1"), ("b", "gone"), ("c", "gone"), ("d", None)]
    gone = schedule.orphaned(held, ["s1", "s2"])
    assert gone == {"gone": ["b", "c"]}
    line = schedule.orphan_message(gone)
    assert "server gone holds the canonicals of b, c" in line and "\n" not in line


# -- config --------------------------------------------------------------------------------------


def _config(tmp_path, backend: str):
    (tmp_path / "fleet").mkdir(exist_ok=True)
    (tmp_path / "canon.toml").write_text(f'fleet = "fleet"\n[backend]\n{backend}\n')
    return load_config(tmp_path / "canon.toml")


@pytest.mark.parametrize(
    ("backend", "parallel", "per_server"),
    [
        ('kind = "swarm"\nservers = ["a", "b", "c"]', 3, 1),
        ('kind = "swarm"\nservers = ["a", "b"]\nper_server = 2', 4, 2),
        ('kind = "abra"\nservers = ["a", "b"]', 2, 1),
        ('kind = "swarm"\ncontext = "a"', 1, 1),
    ],
)
def test_servers_and_per_server_set_how_many_cold_runs_at_once(
    tmp_path, backend, parallel, per_server
):
    c = _config(tmp_path, backend)
    assert (c.cold_parallel, c.per_server) == (parallel, per_server)


@pytest.mark.parametrize(
    ("backend", "words"),
    [
        ('kind = "swarm"\nservers = ["a", "a"]', "names a more than once"),
        ('kind = "swarm"\ncontext = "a"\nservers = ["b"]', "either context"),
        ('kind = "swarm"\nservers = ["a"]\nper_server = 0', "per_server must be between"),
    ],
)
def test_bad_servers_config_is_one_line(tmp_path, backend, words):
    with pytest.raises(ConfigError, match=words) as e:
        _config(tmp_path, backend)
    assert "\n" not in str(e.value)


def test_a_marker_carries_its_server_and_reads_back():
    m = SlotMarker("warm-a-1", "a", "canonical", "1.0.0", "c" * 40, server="s2")
    assert SlotMarker.from_labels(m.labels()).server == "s2"
    assert SlotMarker.from_dict(m.to_dict()).server == "s2"


# -- a real sweep over three abra servers (fake abra) ------------------------------------------

# a functional test that notes which server it runs on and how many cold runs it overlaps there
OVERLAP_TEST = textwrap.dedent("""\
    import json, os, pathlib, time

    def test_counts_runs_at_once_on_its_server():
        server = os.environ["CANON_SERVER"]
        d = pathlib.Path(os.environ["OVERLAP_DIR"]) / server
        d.mkdir(parents=True, exist_ok=True)
        me = d / os.environ["CANON_SLOT"]
        me.touch()
        at_once = len(list(d.iterdir()))
        time.sleep(1.0)
        everywhere = len(list(d.parent.glob("*/*")))
        me.unlink()
        with open(os.environ["OVERLAP_LOG"], "a") as f:
            line = {"server": server, "at_once": at_once, "everywhere": everywhere}
            f.write(json.dumps(line) + "\\n")
""")

ABRA_SERVERS_META = """
WARM_CANONICAL = True
READY_PROBES = [{"cmd": 'test -n "$DOMAIN"', "retries": 1}]
"""


@pytest.fixture
def abra_ws(tmp_path, monkeypatch, fake_abra):  # noqa: F811
    # the fake abra of tests/test_abra.py, reading the deployed commit of any recipe
    exe = tmp_path / "bin" / "abra"
    exe.write_text(
        FAKE_ABRA.format(python=sys.executable).replace(
            'os.environ.get("FAKE_ABRA_RECIPE", "")', 'args[2].split(".")[0].split("-")[1]'
        )
    )
    w = Workspace(tmp_path)
    with open(tmp_path / "canon.toml", "a") as f:
        f.write('[backend]\nkind = "abra"\nservers = ["s1", "s2", "s3"]\n')
    monkeypatch.setenv("OVERLAP_DIR", str(tmp_path / "overlap"))
    monkeypatch.setenv("OVERLAP_LOG", str(tmp_path / "overlap.jsonl"))
    for i in range(6):
        w.recipe(f"r{i}", meta=ABRA_SERVERS_META, test=OVERLAP_TEST)
        w.release(f"r{i}", "1.0.0+1")
    return w


def _servers_of_new_apps(calls) -> dict[str, str]:
    """Domain -> server, from each `abra app new … --server S --domain D`."""
    out = {}
    for c in calls:
        a = c["argv"]
        if a[:2] == ["app", "new"]:
            out[a[a.index("--domain") + 1]] = a[a.index("--server") + 1]
    return out


@pytest.mark.slow
def test_abra_sweep_spreads_cold_runs_and_canonicals_over_its_servers(
    abra_ws,
    tmp_path,
    fake_abra,  # noqa: F811
):
    r = sweep(abra_ws.config)
    assert [row.label for row in r.results] == ["PASS (promoted)"] * 6, r.rows
    # every row says where its cold run ran; all three servers took some
    ran_on = {row.recipe: row.server for row in r.results}
    assert set(ran_on.values()) == {"s1", "s2", "s3"}
    overlaps = [json.loads(x) for x in (tmp_path / "overlap.jsonl").read_text().splitlines()]
    assert max(o["at_once"] for o in overlaps) == 1  # per_server = 1
    assert max(o["everywhere"] for o in overlaps) > 1  # and yet they ran side by side
    # each cold slot was made on the server the scheduler gave its run
    cold = {d: s for d, s in _servers_of_new_apps(fake_abra()).items() if d.startswith("cold-")}
    assert sorted(cold.values()) == sorted(ran_on.values())
    for domain, server in cold.items():
        assert domain.endswith(f".{server}")
    # new canonicals went to the least-loaded server: two each
    with Registry.open(abra_ws.config.db_path) as reg:
        homes = {c.recipe: c.server for c in reg.canonicals()}
    assert sorted(homes.values()) == ["s1", "s1", "s2", "s2", "s3", "s3"]
    warm = {d: s for d, s in _servers_of_new_apps(fake_abra()).items() if d.startswith("warm-")}
    assert sorted(warm.values()) == sorted(homes.values())

    # next week: r0 has a new release and SERVER moves it; the others stay where they are
    meta = abra_ws.fleet / "tests" / "r0" / "recipe_meta.py"
    other = next(s for s in ("s1", "s2", "s3") if s != homes["r0"])
    meta.write_text(meta.read_text() + f'SERVER = "{other}"\n')
    abra_ws.release("r0", "1.1.0+1")
    abra_ws.release("r1", "1.1.0+1")
    r2 = sweep(abra_ws.config)
    assert {row.recipe: row.label for row in r2.results if row.tested_commit} == {
        "r0": "PASS (promoted)",
        "r1": "PASS (promoted)",
    }
    with Registry.open(abra_ws.config.db_path) as reg:
        after = {c.recipe: c.server for c in reg.canonicals()}
    assert after == {**homes, "r0": other}

    # a server dropped from the config while it holds canonicals: one line, exit 2
    toml = abra_ws.root / "canon.toml"
    toml.write_text(toml.read_text().replace('"s1", "s2", "s3"', '"s1", "s2"'))
    held = sorted(r for r, s in after.items() if s == "s3")
    with pytest.raises(UsageError, match=f"server s3 holds the canonicals of {', '.join(held)}"):
        sweep(abra_ws.config)
