"""What a swarm slot remembers: its marker and what is deployed, kept as docker configs.

A record is a docker config labelled ``canon.record=1`` whose labels are the
:class:`~canonlib.state.marker.SlotMarker` and whose data is
``{"marker": …, "deployed": …}``.  Re-marking writes a new record, then drops the old,
so a slot is never without one.  :class:`Records` also says which labels select this
canon instance's objects (:meth:`Records.sel`) and which every object of a slot carries
(:meth:`Records.labels`).
"""

from __future__ import annotations

import base64
import json
import time
from typing import NoReturn, Unpack

from canonlib.backends.base import BackendError, SlotRecord
from canonlib.backends.common import BackendUnavailable, json_object, slot_record
from canonlib.backends.compose import stack_name
from canonlib.backends.swarm_docker import (
    LABEL_INSTANCE,
    LABEL_SLOT,
    RECORD,
    Docker,
    Inspected,
    label_args,
)
from canonlib.files import FileProblem, parse_json
from canonlib.state.marker import (
    COLD,
    MARKER_CAP,
    NEXT,
    MarkerProblem,
    SlotMarker,
    from_json,
    utcnow,
)


def record_data(rec: Inspected) -> dict[str, object]:
    """A record's data: ``{"marker": …, "deployed": …}`` (``{}`` when it has none)."""
    return json_object(json.loads(base64.b64decode(rec.data or b"e30=") or "{}"))


def record_deployed(rec: Inspected) -> SlotRecord:
    """What a record says is deployed (``{}`` when it says nothing)."""
    return slot_record(record_data(rec).get("deployed")) or SlotRecord()


def record_marker(rec: Inspected, slot: str) -> SlotMarker:
    """The marker in a slot's record, read as untrusted (size, depth, schema): MarkerProblem
    naming the slot and the record when it is not one canon would write."""
    where = f"record {rec.name}"
    data = rec.data
    if len(data) > 2 * MARKER_CAP:
        raise MarkerProblem(f"slot {slot}: marker {where} is {len(data)} bytes; not read")
    try:
        doc: object = parse_json(base64.b64decode(data or b"e30="))
    except (FileProblem, ValueError) as e:
        raise MarkerProblem(f"slot {slot}: marker {where} {e}; not read") from None
    if not isinstance(doc, dict):
        raise MarkerProblem(f"slot {slot}: marker {where} is not a JSON object; not read")
    return from_json(doc.get("marker"), slot, where)


def missing(slot: str) -> NoReturn:
    """Raise the error for a slot that should carry a marker and does not."""
    raise BackendError("marker", f"slot {slot} has no marker")


class Records:
    """This canon instance's slot records on the swarm, the newest of each slot cached."""

    def __init__(self, docker: Docker, instance: str, run_id: str | None):
        self.docker = docker
        self.instance = instance
        self.run_id = run_id
        self._cache: dict[str, Inspected | None] = {}  # slot -> its newest record

    def sel(self, slot: str | None = None) -> dict[str, str]:
        """The labels that select this canon's objects (of one slot)."""
        return {LABEL_INSTANCE: self.instance, **({LABEL_SLOT: slot} if slot else {})}

    def labels(self, slot: str, recipe: str) -> dict[str, str]:
        """The labels on everything the slot makes: its slot, recipe and the run named by its
        marker."""
        m = self.marker(slot)
        run_id = (m.run_id if m else None) or self.run_id or ""
        return {
            "canon.made-by": "canon",
            **self.sel(slot),
            "canon.recipe": recipe,
            "canon.run_id": run_id,
        }

    def all(self, slot: str | None = None) -> list[Inspected]:
        """This canon instance's record configs (newest last), for one slot or all of them."""
        want = {RECORD: "1", **self.sel(slot)}
        for attempt in range(5):
            try:
                ids = self.docker.ids("config", want, "marker")
                docs = self.docker.inspect("config", ids, "marker")
                break
            except BackendUnavailable:
                raise
            except BackendError as e:
                # a slot re-marked between ls and inspect (new record, then the old one removed:
                # a promote on this server while a cold run lists its slots): list again
                if "not found" not in str(e) or attempt == 4:
                    raise
        return sorted(docs, key=lambda d: (d.labels.get("canon.seq", ""), d.id))

    def newest(self, slot: str) -> Inspected | None:
        """The slot's newest record; cached: a slot's records are written by the one run that
        made it."""
        if slot not in self._cache:  # None: known to have none
            recs = self.all(slot)
            self._cache[slot] = recs[-1] if recs else None
        return self._cache[slot]

    def forget(self, slot: str) -> None:
        """Drop the cached record of a slot whose records are gone."""
        self._cache.pop(slot, None)

    def write(self, slot: str, marker: SlotMarker, deployed: SlotRecord | None) -> None:
        """A new record for the slot, then the old one removed."""
        seq = f"{time.time_ns():016x}"
        rec = self.newest(slot)
        old = [rec.id] if rec else []
        labels = {
            **marker.labels(),
            RECORD: "1",
            **self.sel(slot),
            "canon.seq": seq,
        }
        data = json.dumps(
            {"marker": marker.to_dict(), "deployed": dict(deployed or {})}, sort_keys=True
        )
        name = f"canon_{stack_name(slot)}_{seq}"
        new_id = self.docker.run(
            "config", "create", *label_args(labels), name, "-", input=data, step="marker"
        ).stdout.strip()
        self._cache[slot] = Inspected(
            id=new_id,
            name=name,
            labels=labels,
            data=base64.b64encode(data.encode()).decode(),
            mode=frozenset(),
            update_state=None,
            update_message="",
        )
        if old:
            self.docker.run("config", "rm", *old, step="marker", check=False)

    def marker(self, slot: str) -> SlotMarker | None:
        rec = self.newest(slot)
        if rec is None:
            return None
        try:
            return record_marker(rec, slot)
        except MarkerProblem as e:
            raise BackendError("marker", str(e)) from None

    def scan_markers(self) -> tuple[dict[str, SlotMarker], dict[str, str]]:
        """(every slot's newest readable marker, one line per slot whose marker is not)."""
        newest: dict[str, Inspected] = {}
        for rec in self.all():
            newest[rec.labels[LABEL_SLOT]] = rec
        out, bad = {}, {}
        for slot, rec in sorted(newest.items()):
            try:
                out[slot] = record_marker(rec, slot)
            except MarkerProblem as e:
                bad[slot] = str(e)
        return out, bad

    def markers(self) -> dict[str, SlotMarker]:
        """Every slot's newest readable marker, by slot name."""
        return self.scan_markers()[0]

    def slots(self) -> list[str]:
        return sorted({r.labels[LABEL_SLOT] for r in self.all()})

    def mark(self, slot: str, marker: SlotMarker) -> None:
        rec = self.newest(slot)
        self.write(slot, marker, record_deployed(rec) if rec else None)

    def ensure_marker(self, slot: str, recipe: str) -> SlotMarker:
        """A slot made without :meth:`mark` (a harness's cold slot) gets one before anything
        else."""
        m = self.marker(slot)
        if m is None:
            m = SlotMarker(
                slot=slot,
                recipe=recipe,
                role=COLD if slot.startswith("cold-") else NEXT,
                version="",
                commit="",
                run_id=self.run_id,
                created_at=utcnow(),
            )
            self.write(slot, m, None)
        return m

    def deployed(self, slot: str) -> SlotRecord | None:
        """What the slot's record says is deployed, or None when nothing (with a commit) is."""
        rec = self.newest(slot)
        dep = record_deployed(rec) if rec else None
        return dep if dep and dep.get("commit") else None

    def services(self, slot: str) -> list[str]:
        """The service names the slot's last deploy recorded."""
        rec = self.newest(slot)
        return record_deployed(rec).get("services", []) if rec else []

    def set_deployed(self, slot: str, **fields: Unpack[SlotRecord]) -> None:
        """The slot's deployed record updated with ``fields`` (its marker unchanged)."""
        rec = self.newest(slot)
        if rec is None:
            missing(slot)
        marker = SlotMarker.from_dict(record_data(rec)["marker"])
        deployed = record_deployed(rec)
        deployed.update(fields)
        self.write(slot, marker, deployed)
