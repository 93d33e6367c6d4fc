"""The L2 upgrade base is a release too (issue 29 part 5): when the harness would install a base
(here a pinned UPGRADE_BASE_VERSION) whose compose file asks the host for more than the meta's
HOST_ACCESS accepts, the base is never deployed and L2 is ``fail``, naming each item and the
line to add.  Real upstream repos, the real sweep, the real harness as a child process."""

from __future__ import annotations

from pathlib import Path

from canonlib.sweep.orchestrate import sweep
from tests.workspace import META, Workspace

OLD, NEW = "1.0.0+1.0", "1.1.0+1.1"
SOCKET = "/var/run/docker.sock"


# the base's own code: a boxed hook can write nowhere that outlives its cold slot, and a step's
# output is kept only when it fails, so this hook fails, saying so: its words in the row or the
# log are the trace that it ran (test_a_base_hook_that_runs_leaves_its_trace shows they are)
BASE_HOOK_RAN = "the-upgrade-base-hook-ran"
BASE_HOOK = f"#!/bin/sh\necho {BASE_HOOK_RAN} >&2\nexit 1\n"
QUIET_HOOK = "#!/bin/sh\nexit 0\n"  # the release under test replaces the base's hook


def row_of(rows, recipe):
    (row,) = [r for r in rows if r["recipe"] == recipe]
    return row


def test_a_pinned_base_asking_for_the_socket_is_not_deployed_and_l2_fails(tmp_path):
    ws = Workspace(tmp_path)
    ws.recipe("custom-html", meta=META + f'UPGRADE_BASE_VERSION = "{OLD}"\n')
    ws.release(
        "custom-html",
        OLD,
        host_volumes=(f"{SOCKET}:{SOCKET}",),
        extra={"post-install.sh": BASE_HOOK},
    )
    ws.release(
        "custom-html", NEW, extra={"post-install.sh": QUIET_HOOK}
    )  # asks nothing of the host: it is deployed, L1 runs

    row = row_of(sweep(ws.config).rows, "custom-html")
    assert row["latest"] == NEW and row["upgrade_base"] == OLD, row
    assert row["rungs"]["install"] == "pass", row
    assert row["rungs"]["upgrade"] == "fail", row
    assert row["label"].startswith("FAIL"), row
    assert (
        f"the upgrade base not deployed: asks the host for more than accepted: bind:{SOCKET} "
        "(compose.yml:14)" in row["reason"]
    ), row["reason"]
    assert f'HOST_ACCESS = ["bind:{SOCKET}"]' in row["reason"]
    trace = row["reason"] + Path(row["log_path"]).read_text()
    assert BASE_HOOK_RAN not in trace  # the base's code never ran
    assert not [w for w in row["warnings"] or [] if "teardown" in w], row["warnings"]


def test_an_accepted_base_is_deployed(tmp_path):
    """The same base with the socket accepted: L2 installs it and passes (the gate is not a
    blanket refusal)."""
    ws = Workspace(tmp_path)
    meta = META + f'UPGRADE_BASE_VERSION = "{OLD}"\nHOST_ACCESS = ["bind:{SOCKET}"]\n'
    ws.recipe("custom-html", meta=meta)
    ws.release("custom-html", OLD, host_volumes=(f"{SOCKET}:{SOCKET}",))
    ws.release("custom-html", NEW, extra={"post-install.sh": QUIET_HOOK})
    row = row_of(sweep(ws.config).rows, "custom-html")
    assert row["upgrade_base"] == OLD and row["rungs"]["upgrade"] == "pass", row


def test_a_base_hook_that_runs_leaves_its_trace(tmp_path):
    """The control for the first test's "never ran": the same hook in a base that asks nothing
    of the host is deployed by L2, and its words reach the row or the log."""
    ws = Workspace(tmp_path)
    ws.recipe("custom-html", meta=META + f'UPGRADE_BASE_VERSION = "{OLD}"\n')
    ws.release("custom-html", OLD, extra={"post-install.sh": BASE_HOOK})
    ws.release("custom-html", NEW, extra={"post-install.sh": QUIET_HOOK})
    row = row_of(sweep(ws.config).rows, "custom-html")
    assert row["rungs"]["upgrade"] == "fail", row
    assert BASE_HOOK_RAN in row["reason"] + Path(row["log_path"]).read_text(), row
