"""Anchors for the audit log outside the database: signed chain heads and signed checkpoints.

A hash chain only shows that the log is consistent with itself: whoever can write to the
database can edit an event, recompute the hashes after it and move the head. So every head
update (the global chain's and each case's) also stores an Ed25519 signature over
``(chain, seq, hash)``, made with a key the database does not hold (a file beside the data,
see :func:`key_path`). Whoever holds the key can still re-sign a rewritten chain; against
them, a :class:`Checkpoint` (every head at one moment, signed) that an auditor keeps
elsewhere proves that each chain still passes through the ``(seq, hash)`` it had then.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session

from .clock import utcnow
from .db import AuditHead, ProcessInstance, data_dir

KEY_FILE_NAME = "audit-signing.key"
CHECKPOINT_FORMAT = "deptflow-audit-checkpoint/1"
_HEAD_DOMAIN = "deptflow audit head v1"


class CheckpointError(Exception):
    """A checkpoint file that cannot be trusted: unreadable, or its signature does not match."""


def key_path(url: str | URL | None = None) -> Path:
    """Where the signing key lives: ``DEPTFLOW_AUDIT_KEY``, else beside the SQLite database file
    (of ``url``, else of ``DEPTFLOW_DATABASE_URL``), else in the data directory (for PostgreSQL)."""
    return _key_path(os.environ.get("DEPTFLOW_AUDIT_KEY"), str(url or os.environ.get("DEPTFLOW_DATABASE_URL") or ""),
                     str(data_dir()))


@lru_cache(maxsize=64)
def _key_path(configured: str | None, url: str, data: str) -> Path:  # cached: sealing asks at every commit
    if configured:
        return Path(configured)
    if url:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
            return Path(parsed.database).resolve().parent / KEY_FILE_NAME
    return Path(data) / KEY_FILE_NAME


def head_message(chain: int, seq: int, hash_: str) -> bytes:
    """The bytes a head signature covers (a prefix of its own: never valid as a checkpoint's)."""
    return f"{_HEAD_DOMAIN}\n{chain}\n{seq}\n{hash_}".encode("ascii")


class AuditSigner:
    """Signs chain heads and checkpoints with the deployment's Ed25519 key."""

    def __init__(self, private_key: Ed25519PrivateKey):
        self._key = private_key
        self.public_key = private_key.public_key()
        self.public_hex = public_hex(self.public_key)

    def sign_head(self, chain: int, seq: int, hash_: str) -> str:
        return self._key.sign(head_message(chain, seq, hash_)).hex()

    def sign(self, message: bytes) -> str:
        return self._key.sign(message).hex()


def public_hex(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def head_signature_valid(public_key: Ed25519PublicKey, chain: int, seq: int, hash_: str,
                         signature: str | None) -> bool:
    return _valid(public_key, signature, head_message(chain, seq, hash_))


def _valid(public_key: Ed25519PublicKey, signature: str | None, message: bytes) -> bool:
    try:
        public_key.verify(bytes.fromhex(signature or ""), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def create_key(path: Path) -> bool:
    """Write a new key to ``path`` (mode 0600) unless a file is there already, which is never
    overwritten: a lost key makes every signature so far unverifiable.

    :returns: whether a key was created
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as file:
        os.fchmod(file.fileno(), 0o600)  # whatever the umask
        file.write(pem)
    return True


def load_signer(path: Path) -> AuditSigner | None:
    """The signer whose key is at ``path``; None when there is no file (no key configured)."""
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        return None
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return AuditSigner(key)


def configured_signer(url: str | URL | None = None) -> AuditSigner | None:
    """The signer of the configured key file (see :func:`key_path`); None while there is no file."""
    return load_signer(key_path(url))


def current_heads(session: Session) -> list[tuple[int, int, str, str | None]]:
    """Every chain's head that has events: ``(chain, seq, hash, signature)``, the global chain first."""
    heads = [(0, seq, hash_, signature) for seq, hash_, signature in session.execute(
        select(AuditHead.last_seq, AuditHead.last_hash, AuditHead.last_signature)
        .where(AuditHead.id == 1, AuditHead.last_seq > 0))]
    heads += [tuple(row) for row in session.execute(
        select(ProcessInstance.id, ProcessInstance.audit_seq, ProcessInstance.audit_hash,
               ProcessInstance.audit_signature)
        .where(ProcessInstance.audit_seq > 0).order_by(ProcessInstance.id))]
    return heads


def sign_unsigned_heads(session: Session, signer: AuditSigner) -> int:
    """Sign the heads written before there was a key (an upgraded database); the caller
    checks the chain first, since this vouches for what the heads say now.

    :returns: how many heads were signed
    """
    signed = 0
    for chain, seq, hash_, signature in current_heads(session):
        if signature is not None:
            continue
        signature = signer.sign_head(chain, seq, hash_)
        if chain == 0:
            session.execute(AuditHead.__table__.update().where(AuditHead.__table__.c.id == 1)
                            .values(last_signature=signature))
        else:
            session.execute(ProcessInstance.__table__.update().where(ProcessInstance.__table__.c.id == chain)
                            .values(audit_signature=signature))
        signed += 1
    return signed


@dataclass
class Checkpoint:
    """Every chain's head at one moment, signed: kept outside the database by auditors."""

    taken_at: str
    public_key: str
    heads: list[tuple[int, int, str]]
    signature: str = ""
    source: str = ""  # where it was read from, for messages

    def body(self) -> dict[str, Any]:
        return {"format": CHECKPOINT_FORMAT, "taken_at": self.taken_at, "public_key": self.public_key,
                "heads": [{"chain": c, "seq": s, "hash": h} for c, s, h in self.heads]}

    def message(self) -> bytes:
        return json.dumps(self.body(), sort_keys=True, separators=(",", ":")).encode("utf-8")

    def to_json(self) -> str:
        return json.dumps({**self.body(), "signature": self.signature}, indent=1) + "\n"

    def public(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(self.public_key))


def take_checkpoint(session: Session, signer: AuditSigner, now: datetime | None = None) -> Checkpoint:
    """Sign every chain's current head. A head whose own signature is not valid is refused
    (raises :class:`CheckpointError`): a checkpoint must not vouch for a rewritten chain."""
    heads = []
    for chain, seq, hash_, signature in current_heads(session):
        if not head_signature_valid(signer.public_key, chain, seq, hash_, signature):
            where = "the global chain" if chain == 0 else f"the chain of case {chain}"
            raise CheckpointError(f"the head of {where} (#{seq}) has no valid signature; run deptflow audit verify")
        heads.append((chain, seq, hash_))
    checkpoint = Checkpoint((now or utcnow()).isoformat(timespec="seconds") + "Z", signer.public_hex, heads)
    checkpoint.signature = signer.sign(checkpoint.message())
    return checkpoint


def read_checkpoint(text: str, source: str = "") -> Checkpoint:
    """Parse a checkpoint file and check its signature against the public key it names
    (that this is the deployment's key is the caller's check)."""
    try:
        data = json.loads(text)
        if data.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"not a {CHECKPOINT_FORMAT} file")
        heads = [(int(h["chain"]), int(h["seq"]), str(h["hash"])) for h in data["heads"]]
        checkpoint = Checkpoint(str(data["taken_at"]), str(data["public_key"]), heads, str(data["signature"]),
                                source)
        public = checkpoint.public()
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"checkpoint {source} is not readable: {exc}") from exc
    if not _valid(public, checkpoint.signature, checkpoint.message()):
        raise CheckpointError(f"checkpoint {source} taken at {checkpoint.taken_at}: its signature is not valid "
                              "(the file was altered)")
    return checkpoint
