"""Signatures: an ed25519 key pair and a DSSE envelope over the manifest's Statement.

The envelope (``manifest.dsse.json``, beside ``manifest.json``) is DSSE v1::

    {"payloadType": "application/vnd.in-toto+json",
     "payload": base64(manifest.json bytes),
     "signatures": [{"keyid": sha256(raw public key) hex, "sig": base64(ed25519 sig)}]}

The signature is over DSSE's pre-authentication encoding (:func:`pae`), never
over the bare payload.  The crypto is ``cryptography``'s Ed25519; nothing here
is hand-rolled but the PAE byte layout, spelled out once below.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from canonlib.errors import UsageError
from canonlib.files import FileProblem, read_small_file, write_atomic

PAYLOAD_TYPE = "application/vnd.in-toto+json"
KEY_NAME = "evidence-ed25519"
KEY_CAP = 64 << 10  # a PEM ed25519 key is ~120 bytes


class Signature(TypedDict):
    keyid: str  # sha256 of the raw public key, hex
    sig: str  # base64 ed25519 signature over the PAE


class Envelope(TypedDict):
    """A DSSE v1 envelope as canon writes it (``manifest.dsse.json``)."""

    payloadType: str
    payload: str  # base64 of manifest.json's bytes
    signatures: list[Signature]


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: ``"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body``
    (lengths as ASCII decimal byte counts)."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def _raw(pub: Ed25519PublicKey) -> bytes:
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def keyid(pub: Ed25519PublicKey) -> str:
    return hashlib.sha256(_raw(pub)).hexdigest()


@dataclass(frozen=True)
class KeyPaths:
    private: Path
    public: Path


def key_paths(state_dir: Path) -> KeyPaths:
    d = state_dir / "keys"
    return KeyPaths(d / f"{KEY_NAME}.key", d / f"{KEY_NAME}.pub")


def init_keys(state_dir: Path) -> KeyPaths:
    """Make an ed25519 pair: private key 0600 in ``<state>/keys``, public key beside it (PEM)."""
    kp = key_paths(state_dir)
    if kp.private.exists():
        raise UsageError(f"{kp.private} already exists; move it away first to make a new key pair")
    kp.private.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pub = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    write_atomic(kp.public, pub)
    write_atomic(kp.private, pem, mode=0o600)  # last: a private key means the pair is whole
    return kp


def load_private(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(read_small_file(path, KEY_CAP), password=None)
    except (OSError, ValueError, FileProblem) as e:
        raise UsageError(f"{path}: cannot read an ed25519 private key (PEM): {e}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(f"{path}: not an ed25519 private key")
    return key


def load_public(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(read_small_file(path, KEY_CAP))
    except (OSError, ValueError, FileProblem) as e:
        raise UsageError(f"{path}: cannot read an ed25519 public key (PEM): {e}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise UsageError(f"{path}: not an ed25519 public key")
    return key


def sign(payload: bytes, key: Ed25519PrivateKey) -> Envelope:
    """A DSSE envelope over ``payload``, signed with ``key``."""
    sig = key.sign(pae(PAYLOAD_TYPE, payload))
    return Envelope(
        payloadType=PAYLOAD_TYPE,
        payload=base64.b64encode(payload).decode(),
        signatures=[Signature(keyid=keyid(key.public_key()), sig=base64.b64encode(sig).decode())],
    )


def write_envelope(path: Path, envelope: Envelope) -> None:
    write_atomic(path, json.dumps(envelope, indent=1) + "\n")


def check(envelope: object, pub: Ed25519PublicKey, manifest_bytes: bytes) -> str | None:
    """None when ``envelope`` (JSON read from the dir: untrusted, any shape) carries a valid
    signature by ``pub`` over exactly ``manifest_bytes``; else why not, in words."""
    if not isinstance(envelope, dict) or not isinstance(envelope.get("signatures"), list):
        return "not a DSSE envelope"
    if envelope.get("payloadType") != PAYLOAD_TYPE:
        return f"payloadType is {envelope.get('payloadType')!r}, not {PAYLOAD_TYPE}"
    try:
        payload = base64.b64decode(envelope.get("payload", ""), validate=True)
    except (ValueError, TypeError):
        return "payload is not base64"
    want = keyid(pub)
    for s in envelope["signatures"]:
        if not isinstance(s, dict):
            continue
        try:
            pub.verify(
                base64.b64decode(s.get("sig", ""), validate=True), pae(PAYLOAD_TYPE, payload)
            )
        except (InvalidSignature, ValueError, TypeError):
            continue
        if payload != manifest_bytes:
            return "signature is good but its payload is not this manifest.json (manifest replaced)"
        return None
    ids = ", ".join(str(s.get("keyid"))[:16] for s in envelope["signatures"] if isinstance(s, dict))
    return f"no signature verifies with key {want[:16]} (envelope key ids: {ids or 'none'})"
