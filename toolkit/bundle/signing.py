"""Ed25519 keys and manifest signatures (the `cryptography` package).

The signature covers the exact bytes of manifest.json, which in turn carries the SHA-256 of every
other file, so one 64-byte signature vouches for the whole bundle. Keys are PEM files: PKCS#8 private
(written 0600), SubjectPublicKeyInfo public.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .manifest import BundleError

PrivateKeyLike = Ed25519PrivateKey | str | Path | bytes
PublicKeyLike = Ed25519PublicKey | str | Path | bytes

SIGNATURE_BYTES = 64


def _pem(source: str | Path | bytes, what: str) -> tuple[bytes, str]:
    if isinstance(source, bytes):
        return source, f"<{what} bytes>"
    path = Path(source)
    if not path.is_file():
        raise BundleError(f"{path}: {what} file not found")
    return path.read_bytes(), str(path)


def load_private_key(source: PrivateKeyLike) -> Ed25519PrivateKey:
    """An ed25519 private key from a key object, PEM bytes or a PEM file path."""
    if isinstance(source, Ed25519PrivateKey):
        return source
    data, where = _pem(source, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise BundleError(f"{where}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError(f"{where}: a {type(key).__name__}, but bundles are signed with ed25519 keys")
    return key


def load_public_key(source: PublicKeyLike) -> Ed25519PublicKey:
    """An ed25519 public key from a key object, PEM bytes or a PEM file path."""
    if isinstance(source, Ed25519PublicKey):
        return source
    data, where = _pem(source, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise BundleError(f"{where}: not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError(f"{where}: a {type(key).__name__}, but bundles are verified with ed25519 keys")
    return key


def public_key_fingerprint(key: PublicKeyLike) -> str:
    """SHA-256 of the raw 32-byte public key, hex: short enough to print, unique enough to tell keys apart."""
    import hashlib

    raw = load_public_key(key).public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def sign(data: bytes, key: PrivateKeyLike) -> bytes:
    return load_private_key(key).sign(data)


def signature_valid(data: bytes, signature: bytes, key: PublicKeyLike) -> bool:
    if len(signature) != SIGNATURE_BYTES:
        return False
    try:
        load_public_key(key).verify(signature, data)
    except InvalidSignature:
        return False
    return True


def new_keypair(out_prefix: str | Path, overwrite: bool = False) -> tuple[Path, Path]:
    """Write `<prefix>.key` (private, mode 0600, created that way) and `<prefix>.pub`; returns both paths."""
    prefix = Path(out_prefix)
    private_path, public_path = Path(f"{prefix}.key"), Path(f"{prefix}.pub")
    if not overwrite:
        for p in (private_path, public_path):
            if p.exists():
                raise BundleError(f"{p}: already exists (refusing to overwrite a key)")
    private_path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    if overwrite:
        with contextlib.suppress(FileNotFoundError):
            private_path.unlink()
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem)
    os.chmod(private_path, 0o600)  # in case the umask was stricter than needed or the file system ignores mode
    public_path.write_bytes(public_pem)
    return private_path, public_path
