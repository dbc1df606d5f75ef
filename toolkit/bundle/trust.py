"""The one trust policy every verb that opens a bundle applies (stream, parity, bench, verify, engine build,
echo infer, firmware build): which public key checks the ed25519 signature, whether a signature is required,
and whether a bundle may be re-signed.

A signature is required when the caller says so (`--require-signature`), or when a device profile says so
(`require_signature = true`): the profile the caller names (`--profile`), the installed profile the bundle
names as its target, or the copy of that profile stored in the bundle. The stored copy is only as trustworthy
as the bundle; a device that must never run an unsigned bundle passes `--require-signature` (or its own
profile) and a public key, which no edit of the bundle can get around.

Re-signing (parity --sign-key, engine build --sign) is a promise about the bundle's content, so it is
refused unless the existing signature first verifies: with the given public key, or else with the public
half of the signing key itself. An unsigned bundle is never signed after the fact; sign it at build.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from .manifest import SIGNATURE_NAME, BundleError
from .signing import PrivateKeyLike, PublicKeyLike, load_private_key, load_public_key, signature_valid


class _Record(Protocol):
    def add(self, kind: str, subject: str, ok: bool | None, detail: str = "") -> None: ...


@dataclass(frozen=True)
class TrustPolicy:
    """Which key checks a bundle's signature, and whether one is required (see the module docstring)."""

    public_key: PublicKeyLike | None = None
    require_signature: bool = False
    profile: str | Path | None = None  # a device profile (name or .toml) whose `require_signature` applies too

    @classmethod
    def of(cls, policy: TrustPolicy | None = None, public_key: PublicKeyLike | None = None,
           require_signature: bool = False) -> TrustPolicy:
        """`policy`, or one made from the key / flag arguments every verb takes (not both)."""
        if policy is not None:
            if public_key is not None or require_signature:
                raise TypeError("give a TrustPolicy or public_key / require_signature, not both")
            return policy
        return cls(public_key=public_key, require_signature=require_signature)

    def loaded(self) -> TrustPolicy:
        """The same policy with its key read (a bad key file is reported before anything else is opened)."""
        return self if self.public_key is None else replace(self, public_key=load_public_key(self.public_key))

    def required_by(self, manifest: Mapping[str, Any] | None) -> str | None:
        """Why a signature is required for this bundle (None: it is not)."""
        if self.require_signature:
            return "a signature is required (--require-signature)"
        from jepa_edge.devices.profiles import DeviceProfile, ProfileError, load_profile

        if self.profile is not None and load_profile(self.profile).require_signature:
            return f"device profile {str(self.profile)!r} requires a signature"
        target = manifest.get("target") if isinstance(manifest, Mapping) else None
        if not isinstance(target, Mapping):
            return None  # no readable target: the schema check reports a malformed manifest
        name = target.get("profile")
        if isinstance(name, str) and name:
            try:
                if load_profile(name).require_signature:
                    return f"device profile {name!r} (the bundle's target, as installed here) requires a signature"
            except ProfileError:
                pass  # not an installed profile (built from a custom .toml): its stored copy below
        data = target.get("profile_data")
        if isinstance(data, Mapping) and data.get("name"):
            try:
                if DeviceProfile.from_dict(dict(data)).require_signature:
                    return f"device profile {data['name']!r} (as stored in the bundle) requires a signature"
            except ProfileError:
                pass  # the schema check reports a malformed manifest
        return None

    def check(self, path: Path, manifest_bytes: bytes, manifest: Mapping[str, Any] | None, found: _Record) -> bool:
        """Record the signature check of the bundle at `path`; True when the signature verified with the key."""
        sig_path = path / SIGNATURE_NAME
        if self.public_key is not None:
            if not sig_path.is_file():
                found.add("signature", SIGNATURE_NAME, False, "missing, but a public key was given to check it")
            elif not signature_valid(manifest_bytes, sig_path.read_bytes(), self.public_key):
                found.add("signature", SIGNATURE_NAME, False,
                          "does not match manifest.json for this public key (wrong key, or the manifest changed)")
            else:
                found.add("signature", SIGNATURE_NAME, True, "ed25519 signature valid")
                return True
            return False
        why = self.required_by(manifest)
        if why is not None:
            state = "the bundle is signed" if sig_path.is_file() else "the bundle is not signed"
            found.add("signature", SIGNATURE_NAME, False, f"{why}, but no public key was given to check it "
                                                          f"({state}; pass --public-key)")
        elif sig_path.is_file():
            found.add("signature", SIGNATURE_NAME, None, "present but not checked (no public key given)")
        else:
            found.add("signature", SIGNATURE_NAME, None, "bundle is not signed")
        return False

    def for_resigning(self, path: Path, sign_key: PrivateKeyLike) -> TrustPolicy:
        """The policy that must hold before `sign_key` may re-sign the bundle at `path`: its existing signature,
        verified with this policy's key, or else with the public half of `sign_key` (BundleError otherwise)."""
        if not (Path(path) / SIGNATURE_NAME).is_file():
            raise BundleError(f"{path}: refusing to sign: the bundle carries no signature to verify first, so "
                              "nothing vouches for its content since the build (sign it at build: --sign)")
        key = self.public_key if self.public_key is not None else load_private_key(sign_key).public_key()
        return replace(self, public_key=key, require_signature=True)


__all__ = ["TrustPolicy"]
