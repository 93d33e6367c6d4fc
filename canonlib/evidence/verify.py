"""``canon verify DIR``: re-check an evidence dir from cold with only it, the registry and the mirrors.

Claims checked: every file's sha256 (nothing missing, nothing extra); every
notebook executed to its completion marker without error; each claimed result
row equal to the registry's and its promoted/not-promoted part re-derived from
the promotion history; commit == tag re-derived from the mirror for each
claimed canonical; the promotion chain intact with the recorded head still in
it; the proofs' claims re-derived from their results and scratch registries.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..claims import Claim
from ..config import Config
from ..mirror import Mirror
from ..registry import GENESIS, Registry
from . import proofs
from .manifest import MANIFEST, hash_tree
from .records import load_notebook, notebook_problems, read_records


def _manifest(d: Path) -> dict[str, Any] | None:
    try:
        m = json.loads((d / MANIFEST).read_text())
        return m["predicate"]["canon"] and m
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError):
        return None


def _files(d: Path, pred: dict[str, Any]) -> list[Claim]:
    want: dict[str, str] = pred.get("files", {})
    have = hash_tree(d)
    bad = [Claim(f"file {f}", False, f"{d / f}: deleted") for f in sorted(want) if f not in have]
    bad += [Claim(f"file {f}", False, f"{d / f}: sha256 differs from the manifest (edited)")
            for f in sorted(want) if f in have and have[f] != want[f]]  # fmt: skip
    bad += [
        Claim(f"file {f}", False, f"{d / f}: extra file, not in the manifest")
        for f in sorted(have)
        if f not in want
    ]
    return bad or [Claim("file hashes", True, f"{len(want)} files match the manifest")]


def _notebooks(d: Path, pred: dict[str, Any]) -> list[Claim]:
    out = []
    for entry in pred.get("notebooks", []):
        path = d / entry["file"]
        try:
            problems = notebook_problems(load_notebook(path))
        except (OSError, json.JSONDecodeError) as e:
            problems = [f"unreadable: {e}"]
        out.append(
            Claim(
                f"notebook {entry['file']}",
                not problems,
                "; ".join(problems) or "executed to completion",
            )
        )
    return out


def _claimed_rows(d: Path, pred: dict[str, Any]) -> list[dict[str, Any]]:
    """The manifest's rows and the results files' rows, each distinct (run, recipe, label) once."""
    rows = list(pred.get("results", []))
    for f in sorted((d / "results").glob("*.jsonl")) if (d / "results").is_dir() else []:
        for line in f.read_text().splitlines():
            if line.strip():
                try:
                    rows.append({**json.loads(line), "run_id": f.stem})
                except json.JSONDecodeError:
                    rows.append(
                        {"run_id": f.stem, "recipe": "?", "label": f"unparseable line in {f.name}"}
                    )
    seen, out = set(), []
    for r in rows:
        key = (r.get("run_id"), r.get("recipe"), r.get("label"))
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def _scratch(d: Path, rel: str, tmp: Path) -> Path:
    """A private copy of a scratch registry, so opening it never writes into the evidence dir."""
    dest = tmp / Path(rel).name
    shutil.copy2(d / rel, dest)
    return dest


def _proof_claims(d: Path, pred: dict[str, Any], reg: Registry) -> list[Claim]:
    out: list[Claim] = []
    with tempfile.TemporaryDirectory(prefix="canon-verify-") as tmpname:
        tmp = Path(tmpname)
        for entry in pred.get("notebooks", []):
            try:
                recs = read_records(load_notebook(d / entry["file"]))
            except (OSError, json.JSONDecodeError):
                continue
            name = entry["name"]
            try:
                if "determinism_run_id" in recs:
                    claims = proofs.determinism_claims(reg, recs["determinism_run_id"])
                elif "tagged_promote" in recs:
                    f = recs["tagged_promote"]
                    claims = proofs.tagged_promote_claims(_scratch(d, f["scratch_db"], tmp), f["recipe"], f["tag"],
                                                          f["commit"], f)  # fmt: skip
                elif "samever" in recs:
                    f = recs["samever"]
                    claims = proofs.samever_claims(_scratch(d, f["scratch_db"], tmp), f["recipe"], f["runs"],
                                                   f["new_tag"])  # fmt: skip
                elif "disk" in recs:
                    f = recs["disk"]
                    claims = [Claim("disk within budget", f["total_bytes"] <= f["budget_bytes"],
                                    f"{f['total_bytes']:,} of {f['budget_bytes']:,} bytes")]  # fmt: skip
                else:
                    continue
            except (OSError, KeyError, TypeError, ValueError) as e:
                claims = [Claim("proof re-derivable", False, f"{e}")]
            out += [Claim(f"{name}: {c.name}", c.ok, c.detail) for c in claims]
    return out


def verify(d: str | Path, config: Config) -> list[Claim]:
    """Every claim of evidence dir ``d``, re-derived; a failed claim names what and where."""
    d = Path(d)
    m = _manifest(d)
    if m is None:
        return [
            Claim("manifest", False, f"{d / MANIFEST}: missing or not a canon evidence manifest")
        ]
    pred = m["predicate"]["canon"]
    claims = [Claim("manifest", True, f"run {pred.get('run_id')} suite {pred.get('suite')}")]
    claims += _files(d, pred)
    claims += _notebooks(d, pred)
    with Registry.open(config.db_path) as reg:
        claims += proofs.label_claims(reg, _claimed_rows(d, pred))
        chain = reg.verify_chain()
        claims.append(
            Claim(
                "promotion chain intact",
                chain.ok,
                "; ".join(chain.problems) or f"{chain.length} rows",
            )
        )
        head = pred.get("chain", {}).get("head")
        in_chain = head == GENESIS or any(p.hash == head for p in reg.history())
        claims.append(
            Claim("recorded chain head still in the chain", in_chain, f"head {str(head)[:16]}")
        )
        for s in m.get("subject", []):
            recipe, commit, tag = (
                s["name"],
                s["digest"].get("gitCommit"),
                s.get("annotations", {}).get("gitTag"),
            )
            promoted = any(p.tag == tag and p.commit == commit for p in reg.history(recipe))
            try:
                now = Mirror(
                    recipe, config.mirror_path(recipe), config.upstream_url(recipe)
                ).tag_commit(tag)
            except Exception as e:  # noqa: BLE001 -- a broken mirror is a failed claim, not a crash
                now = f"unreadable ({e})"
            claims.append(Claim(
                f"canonical {recipe}: commit == tag", now == commit and promoted,
                f"{tag} is {str(now)[:12]} in the mirror; claimed {str(commit)[:12]}; "
                f"{'in' if promoted else 'NOT in'} the promotion history",
            ))  # fmt: skip
        claims += _proof_claims(d, pred, reg)
    return claims
