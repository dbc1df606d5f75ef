"""The bundle manifest: its versioned JSON Schema, strict parsing, canonical bytes and cross-field checks.

The manifest is the contract with firmware, so parsing is deliberately strict (no NaN/Infinity, no
duplicate keys, UTF-8 only) and every failure is a `BundleError` naming the file and the JSON path.
"""

from __future__ import annotations

import functools
import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

from ..data.errors import DataError

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.json.sig"
HEADER_PATH = "include/jepa_edge_model.h"
GOLDEN_DIR = "golden"
GOLDEN_RAW_INDEX = f"{GOLDEN_DIR}/raw/index.json"  # raw little-endian float32 copies for firmware, described here
RESERVED_PATHS = (MANIFEST_NAME, SIGNATURE_NAME, HEADER_PATH)
MAX_MANIFEST_BYTES = 16 << 20  # a manifest is kilobytes; refuse to parse something absurd
_MAX_MESSAGES = 5


class BundleError(DataError):
    """A bundle that is missing, altered, unsigned where a signature is required, or malformed."""


def schema_path(version: int = SCHEMA_VERSION) -> Path:
    """Where the JSON Schema for manifest `version` ships inside the package."""
    return Path(str(resources.files("jepa_edge.bundle") / f"manifest.schema.v{version}.json"))


@functools.lru_cache(maxsize=4)
def load_schema(version: int = SCHEMA_VERSION) -> dict[str, Any]:
    path = schema_path(version)
    if not path.is_file():
        raise BundleError(f"{path}: no JSON Schema for manifest version {version}")
    return json.loads(path.read_text())


@functools.lru_cache(maxsize=4)
def _validator(version: int) -> Any:
    from jsonschema import Draft202012Validator

    schema = load_schema(version)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _short(text: str, limit: int = 240) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON (use null or a finite number)")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def parse_manifest(data: bytes, where: str = MANIFEST_NAME) -> dict[str, Any]:
    """Strictly decode manifest bytes (UTF-8 JSON object, finite numbers, unique keys); no schema check yet."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise BundleError(f"{where}: {len(data)} bytes, larger than any manifest ({MAX_MANIFEST_BYTES})")
    try:
        obj = json.loads(data.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except UnicodeDecodeError as exc:
        raise BundleError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except RecursionError:
        raise BundleError(f"{where}: JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError is a ValueError, as are our hooks' complaints
        raise BundleError(f"{where}: invalid JSON: {_short(str(exc))}") from None
    if not isinstance(obj, dict):
        raise BundleError(f"{where}: top level must be a JSON object, got {type(obj).__name__}")
    return obj


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    """Canonical bytes: sorted keys, fixed indentation, no timestamps -> identical inputs give identical hashes."""
    return (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n").encode()


def schema_errors(manifest: Any) -> list[str]:
    """Human-readable schema violations, each with its JSON path (empty when the manifest is valid)."""
    if not isinstance(manifest, dict):
        return [f"$: top level must be an object, got {type(manifest).__name__}"]
    version = manifest.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int):
        return [f"$.schema_version: must be the integer {SCHEMA_VERSION}, got {_short(repr(version), 60)}"]
    if version != SCHEMA_VERSION:
        newer = "newer than this toolkit reads" if version > SCHEMA_VERSION else "unknown"
        return [f"$.schema_version: version {version} is {newer} (this toolkit reads {SCHEMA_VERSION})"]
    try:
        errors = sorted(_validator(version).iter_errors(manifest), key=lambda e: (list(map(str, e.absolute_path))))
        messages = [f"{e.json_path}: {_short(e.message)}" for e in errors]
    except RecursionError:
        return ["$: nested too deeply to validate"]
    return messages


def check_consistency(manifest: dict[str, Any]) -> list[str]:
    """Cross-field rules a JSON Schema cannot say (run only on a schema-valid manifest)."""
    problems: list[str] = []
    labels, thresholds = manifest["labels"], manifest["thresholds"]
    output_kind = (manifest["model"].get("output") or {}).get("kind", "multilabel")
    if output_kind != "multilabel" and thresholds:
        problems.append(f"$.thresholds: a {output_kind} output takes no thresholds (argmax or a regressed value)")
    elif output_kind == "multilabel" and len(labels) != len(thresholds):
        problems.append(f"$.thresholds: {len(thresholds)} thresholds for {len(labels)} labels")
    if len(set(labels)) != len(labels):
        problems.append("$.labels: label names must be unique")
    roles = [f["role"] for f in manifest["files"]]
    paths = [f["path"] for f in manifest["files"]]
    for name, values in (("role", roles), ("path", paths)):
        dupes = sorted({v for v in values if values.count(v) > 1})
        if dupes:
            problems.append(f"$.files: {name}s listed more than once: {dupes}")
    reserved = sorted(set(paths) & {MANIFEST_NAME, SIGNATURE_NAME})
    if reserved:
        problems.append(f"$.files: {reserved} cannot be listed in the manifest itself")
    golden = manifest["golden"]
    listed = set(paths)
    for ref in [golden["inputs"], *golden["outputs"].values(), *([golden["raw"]] if "raw" in golden else [])]:
        if ref not in listed:
            problems.append(f"$.golden: {ref} is not among the bundle's files")
    output_names = {t["name"] for t in manifest["io"]["outputs"]}
    unknown = sorted(set(golden["outputs"]) - output_names)
    if unknown:
        problems.append(f"$.golden.outputs: {unknown} are not outputs named in $.io.outputs")
    for role, tol in golden["tolerances"].items():
        if resolve_role(role, roles) is None:
            problems.append(f"$.golden.tolerances.{role}: no file with role {role!r} (or {role + '-xml'!r})")
        if isinstance(tol, dict):
            missing = sorted(set(tol) - set(golden["outputs"]))
            if missing:
                problems.append(f"$.golden.tolerances.{role}: outputs {missing} have no golden vectors")
    parity = manifest.get("parity")
    if isinstance(parity, dict) and parity.get("report") is not None and parity["report"] not in listed:
        problems.append(f"$.parity.report: {parity['report']} is not among the bundle's files")
    for side in ("inputs", "outputs"):
        names = [t["name"] for t in manifest["io"][side]]
        if len(set(names)) != len(names):
            problems.append(f"$.io.{side}: tensor names must be unique")
    pre = manifest["preprocessing"]
    if pre.get("kind") == "ecg":
        n_leads = len(pre["leads"])
        for key in ("mean", "std"):
            if pre[key] is not None and len(pre[key]) != n_leads:
                problems.append(f"$.preprocessing.{key}: {len(pre[key])} values for {n_leads} leads")
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for row in pre["sos"] for v in row):
            problems.append("$.preprocessing.sos: coefficients must be finite numbers")
    if pre.get("kind") == "echo":
        for key in ("mean", "std"):
            if len(pre[key]) != pre["channels"]:
                problems.append(f"$.preprocessing.{key}: {len(pre[key])} values for {pre['channels']} channels")
    output = manifest["model"].get("output")
    if isinstance(output, dict):
        if output.get("names") != manifest["labels"]:
            problems.append(f"$.model.output.names {output.get('names')} differ from $.labels {manifest['labels']}")
        if output.get("kind") == "multilabel" and output.get("thresholds") != manifest["thresholds"]:
            problems.append("$.model.output.thresholds differ from $.thresholds")
        if output.get("kind") == "regression" and ("mean" not in output or "std" not in output):
            problems.append("$.model.output: a regression output needs mean and std to decode its value")
    return problems


def resolve_role(key: str, roles: list[str]) -> str | None:
    """The file role a golden tolerance key refers to: exact, or an OpenVINO IR's '-xml' file."""
    if key in roles:
        return key
    if key + "-xml" in roles:
        return key + "-xml"
    return None
