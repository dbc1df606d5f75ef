"""Firmware bundles: artefacts + manifest (versioned JSON Schema, SHA-256 of every file), optional ed25519
signature, golden vectors with per-artefact tolerances, and a C header firmware reproduces the input from."""

from __future__ import annotations

from .builder import BundleBuilder, GoldenSource
from .cheader import generate_header
from .manifest import SCHEMA_VERSION, BundleError, load_schema, schema_path
from .reader import Bundle, Check, VerifyReport, backend_for_role, open_bundle, update_bundle, verify_bundle
from .signing import load_private_key, load_public_key, new_keypair, public_key_fingerprint

__all__ = [
    "SCHEMA_VERSION",
    "Bundle",
    "BundleBuilder",
    "BundleError",
    "Check",
    "GoldenSource",
    "VerifyReport",
    "backend_for_role",
    "generate_header",
    "load_private_key",
    "load_public_key",
    "load_schema",
    "new_keypair",
    "open_bundle",
    "public_key_fingerprint",
    "schema_path",
    "update_bundle",
    "verify_bundle",
]
