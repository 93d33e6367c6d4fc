"""The one place that runs git.

Every call: an argv list, a scrubbed environment (no inherited ``GIT_*``), no
terminal prompts, a timeout.  Ref and recipe names that come from outside are
checked here before they get anywhere near an argv or a path.
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

from canonlib.errors import CanonError
from canonlib.files import FileProblem, read_range, read_small_file

DEFAULT_TIMEOUT_S = 120.0
# git's own files, read without git (a ref is 41 bytes; anything odd and git itself answers)
REF_CAP = 4096
PACKED_REFS_CAP = 64 << 20
PACK_INDEX_CAP = 1 << 30
ZERO = "0" * 40


class GitError(CanonError):
    """git failed; the message carries the command and git's own words."""

    def __init__(self, msg: str, *, stderr: str = "", returncode: int | None = None):
        super().__init__(msg)
        self.stderr = stderr
        self.returncode = returncode


class InvalidRef(CanonError):
    """A ref, tag or recipe name that canon refuses to pass to git or use as a path."""


def no_git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment minus inherited GIT_* variables, which break nested git calls."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="true", SSH_ASKPASS="true", LC_ALL="C")
    # a user's global config may carry url rewrites or hooks; keep it, but never a system pager
    env["GIT_PAGER"] = "cat"
    if extra:
        env.update(extra)
    return env


def run(
    args: Sequence[str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    config: Mapping[str, str] | None = None,
    check: bool = True,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``git <args>``; raise :class:`GitError` on failure or timeout when ``check``."""
    argv = ["git"]
    for key, value in (config or {}).items():
        argv += ["-c", f"{key}={value}"]
    argv += list(args)
    try:
        proc = subprocess.run(
            argv,
            cwd=cwd,
            env=no_git_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            errors="surrogateescape",
        )
    except subprocess.TimeoutExpired:
        raise GitError(f"git {_show(args)} timed out after {timeout:g}s") from None
    except FileNotFoundError:
        raise GitError("git is not installed or not on PATH") from None
    if check and proc.returncode != 0:
        err = proc.stderr.strip()
        raise GitError(
            f"git {_show(args)} failed (exit {proc.returncode}): {err[-2000:]}",
            stderr=err,
            returncode=proc.returncode,
        )
    return proc


def _show(args: Sequence[str]) -> str:
    return " ".join(args[:4]) + (" …" if len(args) > 4 else "")


def local_url_config(url: str) -> dict[str, str]:
    """``protocol.file.allow`` only where the upstream is on the local disk."""
    if url.startswith("file://") or "://" not in url and ":" not in url.split("/")[0]:
        return {"protocol.file.allow": "always"}
    return {}


# -- names -------------------------------------------------------------------

_BAD_REF_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
_RECIPE = re.compile(r"[a-z0-9][a-z0-9_-]{0,99}(?:\.[a-z0-9_-]+)*", re.ASCII)
RECIPE_NAME_RULE = "lower-case letters, digits, '-', '_' and single dots"  # what _RECIPE takes


# A name of one component of letters, digits, ``_+-`` and single inner dots (``3.0.1+v2.1.0``,
# every release tag): it passes every rule below but ``.lock`` and the length, so the sweep's
# many tags take one match instead of the whole walk
_PLAIN_REF = re.compile(r"[0-9A-Za-z_+][0-9A-Za-z_+-]*(?:\.[0-9A-Za-z_+-]+)*")


def ref_name_problem(name: str) -> str | None:
    """Why ``name`` is not a safe tag/branch name, or None (git check-ref-format, stricter)."""
    if len(name) <= 255 and _PLAIN_REF.fullmatch(name) and not name.endswith(".lock"):
        return None
    return _ref_rules(name)


def _ref_rules(name: str) -> str | None:
    """Every rule, one by one (:func:`ref_name_problem` without its fast path)."""
    if not name:
        return "empty"
    if name.startswith("-"):
        return "starts with '-' (would read as an option)"
    if _BAD_REF_CHARS.search(name):
        return "contains a control character, space or one of ~^:?*[\\"
    if ".." in name or "@{" in name or name == "@":
        return "contains '..' or '@{'"
    if name.startswith("/") or name.endswith("/") or "//" in name or name.endswith("."):
        return "bad '/' or trailing '.'"
    if any(part.startswith(".") or part.endswith(".lock") for part in name.split("/")):
        return "a component starts with '.' or ends with '.lock'"
    if len(name) > 255:
        return "longer than 255 characters"
    return None


def check_ref_name(name: str, what: str = "tag") -> str:
    problem = ref_name_problem(name)
    if problem:
        raise InvalidRef(f"invalid {what} name {name!r}: {problem}")
    return name


def check_recipe_name(name: str) -> str:
    if not _RECIPE.fullmatch(name or ""):
        raise InvalidRef(f"invalid recipe name {name!r}: use {RECIPE_NAME_RULE}")
    return name


def clone_at(
    src: str | os.PathLike[str], dest: str | os.PathLike[str], commit: str, *, timeout: float = 120
) -> None:
    """A work tree at ``dest``: a ``--shared`` clone of ``src``, detached at ``commit``."""
    run(
        ["clone", "--quiet", "--shared", "--no-checkout", "--", str(src), str(dest)],
        timeout=timeout,
    )
    run(["checkout", "--quiet", "--detach", commit], cwd=dest, timeout=timeout)


# -- reading refs ------------------------------------------------------------


def parse_ls_remote(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """``git ls-remote`` output -> (ref -> oid, ref -> peeled commit for annotated tags)."""
    refs: dict[str, str] = {}
    peeled: dict[str, str] = {}
    for line in text.splitlines():
        oid, _, ref = line.partition("\t")
        if not ref:
            continue
        if ref.endswith("^{}"):
            peeled[ref[:-3]] = oid
        else:
            refs[ref] = oid
    return refs, peeled


def ls_remote(
    url: str, patterns: Sequence[str], *, timeout: float
) -> tuple[dict[str, str], dict[str, str]]:
    proc = run(["ls-remote", "--", url, *patterns], timeout=timeout, config=local_url_config(url))
    return parse_ls_remote(proc.stdout)


def local_refs(repo: Path, prefixes: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
    """The repo's refs under ``prefixes``: (ref -> oid, ref -> peeled commit for annotated tags)."""
    proc = run(
        ["for-each-ref", "--format=%(objectname) %(*objectname) %(refname)", *prefixes],
        cwd=repo,
        timeout=60,
    )
    refs: dict[str, str] = {}
    peeled: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        oid, deref, ref = line.split(" ", 2)
        refs[ref] = oid
        if deref:
            peeled[ref] = deref
    return refs, peeled


_OID = re.compile(r"[0-9a-f]{40}")


def read_refs_files(repo: Path, prefixes: Sequence[str]) -> dict[str, str] | None:
    """Refs under ``prefixes`` read straight from a files-backend repo (packed-refs + loose).

    No process is started: this is the no-op sweep's hot path (plain ``os`` calls, no
    ``pathlib``: it runs once per mirror per sweep).  Returns None when the repo does not
    look like a plain files-backend repo (reftable, odd content, missing objects dir):
    callers then ask git itself.
    """
    root = os.fspath(repo)
    try:
        if not os.path.isdir(os.path.join(root, "objects")) or os.path.lexists(
            os.path.join(root, "reftable")
        ):
            return None
        if not read_small_file(os.path.join(root, "HEAD"), REF_CAP).startswith(b"ref: refs/"):
            return None
        refs: dict[str, str] = {}
        wanted = tuple(prefixes)
        try:
            packed = read_small_file(os.path.join(root, "packed-refs"), PACKED_REFS_CAP).decode()
        except FileNotFoundError:
            packed = ""
        for line in packed.splitlines():
            if not line or line[0] in "#^":
                continue
            oid, _, ref = line.partition(" ")
            if not _OID.fullmatch(oid):
                return None
            if ref.startswith(wanted):
                refs[ref] = oid
        for prefix in prefixes:
            if not _read_loose_refs(root, prefix, refs):
                return None
        return refs
    except (OSError, UnicodeDecodeError, ValueError, FileProblem):
        return None


def _read_loose_refs(root: str, prefix: str, refs: dict[str, str]) -> bool:
    """Add the loose refs under ``<root>/<prefix>`` to ``refs``; False when git should answer
    (a ``.lock``: a git process is writing; a file that is not an object id)."""
    base = os.path.join(root, prefix.rstrip("/"))
    for dirpath, _dirs, files in os.walk(base):
        rel = os.path.relpath(dirpath, root)
        for name in files:
            if name.endswith(".lock"):
                return False
            oid = read_small_file(os.path.join(dirpath, name), REF_CAP).decode().strip()
            if not _OID.fullmatch(oid):
                return False
            refs[f"{rel}/{name}"] = oid
    return True


# -- reading objects ---------------------------------------------------------


def tag_object_type(repo: Path, tag: str) -> str | None:
    """What ``refs/tags/<tag>`` points at: ``tag`` (annotated), ``commit`` (lightweight), or
    None when the repo has no such tag."""
    check_ref_name(tag)
    proc = run(["cat-file", "-t", f"refs/tags/{tag}"], cwd=repo, timeout=30, check=False)
    if proc.returncode:
        return None
    return proc.stdout.strip() or None


class BlobTooBig(CanonError):
    """A file at a commit is larger than the caller's cap."""


def read_blob(repo: Path, commit: str, path: str, *, cap: int) -> str | None:
    """The text of ``path`` at ``commit`` (at most ``cap`` bytes), or None when there is no
    such file there (a missing path or a directory).  Raises :class:`BlobTooBig`."""
    spec = f"{commit}:{path}"
    kind = run(["cat-file", "-t", spec], cwd=repo, timeout=30, check=False)
    if kind.returncode or kind.stdout.strip() != "blob":
        return None
    size = int(run(["cat-file", "-s", spec], cwd=repo, timeout=30).stdout.strip())
    if size > cap:
        raise BlobTooBig(f"{path} at {commit[:12]} is {size} bytes; the limit is {cap}")
    return run(["cat-file", "blob", spec], cwd=repo, timeout=30).stdout


def run_bytes(
    args: Sequence[str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    config: Mapping[str, str] | None = None,
    input: bytes = b"",
) -> bytes:
    """``git <args>`` with bytes in and out (blobs, ``cat-file --batch``); raise
    :class:`GitError` on failure or timeout."""
    argv = ["git"]
    for key, value in (config or {}).items():
        argv += ["-c", f"{key}={value}"]
    argv += list(args)
    try:
        proc = subprocess.run(
            argv, cwd=cwd, env=no_git_env(), capture_output=True, timeout=timeout, input=input
        )
    except subprocess.TimeoutExpired:
        raise GitError(f"git {_show(args)} timed out after {timeout:g}s") from None
    except FileNotFoundError:
        raise GitError("git is not installed or not on PATH") from None
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()
        raise GitError(
            f"git {_show(args)} failed (exit {proc.returncode}): {err[-2000:]}",
            stderr=err,
            returncode=proc.returncode,
        )
    return proc.stdout


def read_blobs(repo: Path, specs: Sequence[str], *, timeout: float = 120.0) -> list[bytes | None]:
    """The bytes of each ``<rev>:<path>`` in ``specs`` (None where there is no such blob), read
    by one ``git cat-file --batch``."""
    out = run_bytes(
        ["cat-file", "--batch"],
        cwd=repo,
        timeout=timeout,
        input="".join(s + "\n" for s in specs).encode(),
    )
    blobs: list[bytes | None] = []
    pos = 0
    for _ in specs:
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if len(header) != 3:
            blobs.append(None)  # "<spec> missing" (or ambiguous)
            continue
        size = int(header[2])
        blobs.append(out[pos : pos + size] if header[1] == b"blob" else None)
        pos += size + 1
    return blobs


# -- reading objects -----------------------------------------------------------
# The no-op sweep asks every mirror whether it still holds its tips' objects.  A files-backend
# repo answers that without a process: a loose object is a file, a packed one a name in a pack
# index (format v2).  Anything else (alternates, a multi-pack index, promisor packs, SHA-256,
# a delta-compressed tip commit, an unreadable file) is "cannot tell": the caller asks git.

_IDX_V2 = b"\xfftOc\x00\x00\x00\x02"
_FANOUT = 8  # the 256 cumulative counts start after the signature and version
_NAMES = _FANOUT + 256 * 4
_TYPES = (b"commit ", b"tree ", b"blob ", b"tag ")


class _CannotTell(Exception):
    pass


class _ObjectStore:
    """Read-only look-ups in ``<repo>/objects``; raises :class:`_CannotTell` when unsure."""

    def __init__(self, repo: Path):
        self.dir = os.path.join(os.fspath(repo), "objects")
        pack_dir = os.path.join(self.dir, "pack")
        if os.path.lexists(os.path.join(self.dir, "info", "alternates")):
            raise _CannotTell
        try:
            names = set(os.listdir(pack_dir))
        except FileNotFoundError:
            names = set()
        if "multi-pack-index" in names:
            raise _CannotTell
        # (index bytes, its 256 cumulative counts, the pack's path), one per usable pack
        self.packs: list[tuple[bytes, tuple[int, ...], str]] = []
        for idx in sorted(n for n in names if n.endswith(".idx")):
            stem = idx[: -len(".idx")]
            if stem + ".promisor" in names:
                raise _CannotTell
            if stem + ".pack" not in names:
                continue  # git ignores an index without its pack
            try:
                data = read_small_file(os.path.join(pack_dir, idx), PACK_INDEX_CAP)
            except FileProblem:
                raise _CannotTell from None
            if data[:8] != _IDX_V2:
                raise _CannotTell
            fanout = struct.unpack_from(">256I", data, _FANOUT)
            self.packs.append((data, fanout, os.path.join(pack_dir, stem + ".pack")))

    def _loose(self, oid: str) -> bytes | None:
        """The start of a loose object's inflated bytes (header and a little body), or None."""
        try:
            start = read_range(os.path.join(self.dir, oid[:2], oid[2:]), 0, 512)
        except FileNotFoundError:
            return None
        except FileProblem:
            raise _CannotTell from None
        head = zlib.decompressobj().decompress(start, 128)
        if not head.startswith(_TYPES) or b"\0" not in head:
            raise _CannotTell  # a damaged loose object: git says what it is
        return head

    def _packed(self, oid: str) -> tuple[str, int] | None:
        """(pack, offset) of a packed object, or None."""
        raw = bytes.fromhex(oid)
        first = raw[0]
        for data, fanout, pack in self.packs:
            lo, hi = fanout[first - 1] if first else 0, fanout[first]
            if lo >= hi:
                continue
            # the names sharing the first byte, searched in C; a hit must sit on a name's start
            start, end = _NAMES + 20 * lo, _NAMES + 20 * hi
            at = data.find(raw, start, end)
            while at != -1 and (at - _NAMES) % 20:
                at = data.find(raw, at + 1, end)
            if at == -1:
                continue
            n, i = fanout[255], (at - _NAMES) // 20
            where = _NAMES + 24 * n + 4 * i
            offset = int.from_bytes(data[where : where + 4], "big")
            if offset & 0x80000000:
                where = _NAMES + 28 * n + 8 * (offset & 0x7FFFFFFF)
                offset = int.from_bytes(data[where : where + 8], "big")
            return pack, offset
        return None

    def has(self, oid: str) -> bool:
        # packs first, as git looks: a look-up in memory, where a loose miss is a failed open()
        return self._packed(oid) is not None or self._loose(oid) is not None

    def tree_of(self, commit: str) -> str | None:
        """The tree a commit names; None when the commit is not there."""
        where = self._packed(commit)
        head = None if where is not None else self._loose(commit)
        if head is None:
            if where is None:
                return None
            try:
                entry = read_range(where[0], where[1], 512)
            except (OSError, FileProblem):
                raise _CannotTell from None
            if (entry[0] >> 4) & 7 != 1:
                raise _CannotTell  # a delta (or not a commit): git resolves it
            i = 1
            while entry[i - 1] & 0x80:
                i += 1
            head = b"commit 0\0" + zlib.decompressobj().decompress(entry[i:], 64)
        if not head.startswith(b"commit "):
            raise _CannotTell
        body = head.partition(b"\0")[2]
        if not body.startswith(b"tree ") or not _OID.fullmatch(body[5:45].decode()):
            raise _CannotTell
        return body[5:45].decode()


def missing_objects(
    repo: Path, oids: Sequence[str], tree_of: str | None = None
) -> list[str] | None:
    """Which of ``oids`` (and ``<tree_of>^{tree}``) ``repo`` lacks, named as ``git cat-file
    --batch-check`` names them, read without a process; None when it cannot tell (ask git)."""
    if not all(_OID.fullmatch(o) for o in [*oids, *([tree_of] if tree_of else [])]):
        return None
    try:
        store = _ObjectStore(repo)
        missing = [o for o in oids if not store.has(o)]
        if tree_of is not None:
            tree = store.tree_of(tree_of)
            if tree is None or not store.has(tree):
                missing.append(f"{tree_of}^{{tree}}")
        return missing
    except (_CannotTell, OSError, zlib.error, ValueError, IndexError):
        return None
