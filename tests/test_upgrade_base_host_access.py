"""The L2 upgrade base is a release too (issue 29 part 5): when the harness would install a base
(here a pinned UPGRADE_BASE_VERSION) whose compose file asks the host for more than the meta's
HOST_ACCESS accepts, the base is never deployed and L2 is ``fail``, naming each item and the
line to add.  Real upstream repos, the real sweep, the real harness as a child process."""

from __future__ import annotations

from canonlib.sweep.orchestrate import sweep
from tests.workspace import META, Workspace

OLD, NEW = "1.0.0+1.0", "1.1.0+1.1"
SOCKET = "/var/run/docker.sock"


def row_of(rows, recipe):
    (row,) = [r for r in rows if r["recipe"] == recipe]
    return row


def test_a_pinned_base_asking_for_the_socket_is_not_deployed_and_l2_fails(tmp_path):
    ws = Workspace(tmp_path)
    ws.recipe("custom-html", meta=META + f'UPGRADE_BASE_VERSION = "{OLD}"\n')
    sentinel = tmp_path / "written-by-the-base"
    ws.release(
        "custom-html",
        OLD,
        host_volumes=(f"{SOCKET}:{SOCKET}",),
        extra={"post-install.sh": f"#!/bin/sh\necho pwned > {sentinel}\n"},
    )
    ws.release("custom-html", NEW)  # asks nothing of the host: it is deployed, L1 runs

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
    assert not sentinel.exists()  # the base's code never ran
    assert not [w for w in row["warnings"] or [] if "teardown" in w], row["warnings"]


def test_an_accepted_base_is_deployed(tmp_path):
    """The same base with the socket accepted: L2 installs it and passes (the gate is not a
    blanket refusal)."""
    ws = Workspace(tmp_path)
    meta = META + f'UPGRADE_BASE_VERSION = "{OLD}"\nHOST_ACCESS = ["bind:{SOCKET}"]\n'
    ws.recipe("custom-html", meta=meta)
    ws.release("custom-html", OLD, host_volumes=(f"{SOCKET}:{SOCKET}",))
    ws.release("custom-html", NEW)
    row = row_of(sweep(ws.config).rows, "custom-html")
    assert row["upgrade_base"] == OLD and row["rungs"]["upgrade"] == "pass", row
