"""Open, verify and update bundles. Nothing is loaded from a bundle that does not verify.

Static checks (schema, SHA-256 of every listed file, unlisted files, the signature under the caller's
`TrustPolicy`) run on every open, and a cart bundle is checked against this CPU's ISA (its profile's
`required_isa`: an error; `preferred_isa`: a warning); `verify_bundle` adds the golden vectors, re-run
through `jepa_edge.runtimes` on every artefact whose back end this machine has, each against its own tolerance.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..io import sha256_file
from .builder import BundleBuilder, GoldenSource
from .manifest import (
    GOLDEN_DIR,
    HEADER_PATH,
    MANIFEST_NAME,
    SIGNATURE_NAME,
    BundleError,
    check_consistency,
    parse_manifest,
    resolve_role,
    schema_errors,
)
from .signing import PrivateKeyLike, PublicKeyLike
from .trust import TrustPolicy

PARTIAL_NAME = re.compile(r"^\..+\.partial$")
# Which artefact to run when the caller does not say: the most specific first.
ENGINE_PREFERENCE = ("tensorrt-engine", "openvino-int8-xml", "openvino-fp32-xml", "onnx-qdq", "onnx-fp32")


def backend_for_role(role: str) -> str | None:
    """The runtime back end that executes a file of this role (None for data files: weights, reports, golden)."""
    if role.startswith("tensorrt") and role.endswith(("-engine", "-plan")):
        return "tensorrt"  # not "tensorrt-timing-cache": that is build data, not a model
    if role.startswith("openvino") and role.endswith("-xml"):
        return "openvino"
    if role.startswith("onnx"):
        return "onnxruntime"
    return None


@dataclass
class Check:
    """One verification step: `ok` is True (passed), False (failed) or None (skipped, with the reason)."""

    kind: str  # "manifest" | "hash" | "files" | "signature" | "golden"
    subject: str
    ok: bool | None
    detail: str = ""


@dataclass
class VerifyReport:
    path: Path
    ok: bool
    problems: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "ok": self.ok, "problems": list(self.problems),
                "checks": [asdict(c) for c in self.checks]}


class _Findings:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.checks: list[Check] = []

    def add(self, kind: str, subject: str, ok: bool | None, detail: str = "") -> None:
        self.checks.append(Check(kind, subject, ok, detail))
        if ok is False:
            self.problems.append(f"{subject}: {detail}" if detail else subject)


def _inside(root: Path, path: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):
        return False


def _static_checks(path: Path, policy: TrustPolicy, found: _Findings) -> dict[str, Any] | None:
    """Manifest, schema, hashes, unlisted files and signature (under `policy`, whose key is already loaded).
    Returns the manifest if it could be read."""
    if PARTIAL_NAME.match(path.name):
        found.add("manifest", str(path), False, "an unfinished build (.partial folder); rebuild the bundle")
        return None
    if not path.is_dir():
        found.add("manifest", str(path), False, "not a bundle folder (missing or not a directory)")
        return None
    manifest_path = path / MANIFEST_NAME
    if not manifest_path.is_file() or manifest_path.is_symlink():
        found.add("manifest", MANIFEST_NAME, False, f"missing from {path} (not a bundle, or an unfinished build)")
        return None
    data = manifest_path.read_bytes()
    try:
        manifest: dict[str, Any] | None = parse_manifest(data)
        parse_error = None
    except BundleError as exc:
        manifest, parse_error = None, str(exc).removeprefix(f"{MANIFEST_NAME}: ")
    policy.check(path, data, manifest, found)  # first: it covers the raw bytes
    if manifest is None:
        found.add("manifest", MANIFEST_NAME, False, parse_error or "unreadable")
        return None
    errors = schema_errors(manifest) or check_consistency(manifest)
    if errors:
        for message in errors[:8]:
            found.add("manifest", MANIFEST_NAME, False, f"schema v1 violation at {message}")
        return None
    found.add("manifest", MANIFEST_NAME, True, "valid against schema v1")

    listed: set[str] = set()
    for entry in manifest["files"]:
        rel = entry["path"]
        listed.add(rel)
        target = path / rel
        if not target.is_file():
            found.add("hash", rel, False, "listed in manifest.json but missing")
        elif target.is_symlink() or not _inside(path, target):
            found.add("hash", rel, False, "is a link; bundles hold plain files only")
        elif target.stat().st_size != entry["bytes"]:
            found.add("hash", rel, False, f"{target.stat().st_size} bytes, manifest.json says {entry['bytes']} "
                                          "(file changed or truncated)")
        elif sha256_file(target) != entry["sha256"]:
            found.add("hash", rel, False, "SHA-256 differs from manifest.json (file changed or corrupted)")
        else:
            found.add("hash", rel, True, entry["sha256"][:16])
    for extra in sorted(p for p in path.rglob("*") if p.is_symlink() or not p.is_dir()):
        rel = extra.relative_to(path).as_posix()
        if rel not in listed and rel not in (MANIFEST_NAME, SIGNATURE_NAME):
            found.add("files", rel, False, "not listed in manifest.json (added after the build)")

    try:
        _preprocessing(manifest)
        _output(manifest)
    except BundleError as exc:
        found.add("manifest", MANIFEST_NAME, False, str(exc).removeprefix(f"{MANIFEST_NAME}: "))
    return manifest


def _preprocessing(manifest: dict[str, Any]) -> Any:
    """The bundle's preprocessing object, built by its modality's description (ECG or echo)."""
    from ..modality import ModalityError, modality_of

    try:
        modality = modality_of(manifest["model"])
        if manifest["preprocessing"].get("kind") != modality.preprocessing_kind:
            raise ValueError(f"kind {manifest['preprocessing'].get('kind')!r} is not what the model's modality "
                             f"{modality.name!r} takes ({modality.preprocessing_kind!r})")
        return modality.preprocessing(manifest["preprocessing"])
    except ModalityError as exc:
        raise BundleError(f"{MANIFEST_NAME}: $.model.modality: {exc}") from None
    except (ValueError, TypeError, KeyError, OverflowError, ArithmeticError) as exc:
        raise BundleError(f"{MANIFEST_NAME}: $.preprocessing does not describe a valid "
                          f"{manifest['model'].get('modality', 'ecg')} preprocessing: {exc}") from None


def _output(manifest: dict[str, Any]) -> Any:
    """How to read the logits (`TaskOutput`): `model.output`, or multi-label with the manifest's thresholds."""
    from ..tasks.outputs import TaskOutput

    try:
        return TaskOutput.from_meta({**manifest["model"], "labels": manifest["labels"],
                                     "thresholds": manifest["thresholds"]})
    except ValueError as exc:
        raise BundleError(f"{MANIFEST_NAME}: $.model.output: {exc}") from None


# -- engines ---------------------------------------------------------------------------------------
def _backend_reason(backend: str) -> str | None:
    """None if `backend` runs on this machine, else why not (from jepa_edge.runtimes)."""
    from jepa_edge.runtimes import available_backends

    return available_backends().get(backend, f"unknown back end {backend!r}")


def _open_engine(path: Path, backend: str, **options: Any) -> Any:
    from jepa_edge.runtimes import open_engine

    return open_engine(path, backend=backend, **options)


# -- the bundle ------------------------------------------------------------------------------------
class Bundle:
    """A bundle that passed the static checks. Re-hashes an artefact right before an engine loads it."""

    def __init__(self, path: Path, manifest: dict[str, Any], signature_checked: bool,
                 signature_required: str | None = None) -> None:
        self.path = path
        self.manifest = manifest
        self.signature_checked = signature_checked
        self.signature_required = signature_required  # why a signature is required (None: it is not)
        self._entries = {e["role"]: e for e in manifest["files"]}

    def __repr__(self) -> str:
        return f"Bundle({str(self.path)!r}, model={self.manifest['model']['name']!r})"

    @property
    def roles(self) -> list[str]:
        return list(self._entries)

    def rel_path(self, role: str) -> str:
        """The file's path inside the bundle (the role itself if no file has it)."""
        return self._entries[role]["path"] if role in self._entries else role

    def file(self, role: str) -> Path:
        if role not in self._entries:
            raise BundleError(f"{self.path}: no file with role {role!r} (roles: {sorted(self._entries)})")
        return self.path / self._entries[role]["path"]

    def engine_file(self, role: str) -> Path:
        """The artefact file of `role`, re-hashed (with an OpenVINO IR's weights) right before it is handed out."""
        target = self._rehash(role)
        weights = role[: -len("-xml")] + "-bin" if role.endswith("-xml") else None
        if weights in self._entries:
            self._rehash(weights)
        return target

    def _rehash(self, role: str) -> Path:
        entry = self._entries[role]
        target = self.path / entry["path"]
        if not target.is_file() or sha256_file(target) != entry["sha256"]:
            raise BundleError(f"{target}: changed since the bundle was opened (SHA-256 differs from manifest.json)")
        return target

    @property
    def labels(self) -> list[str]:
        return list(self.manifest["labels"])

    @property
    def thresholds(self) -> np.ndarray:
        return np.asarray(self.manifest["thresholds"], dtype=np.float64)

    @property
    def modality(self) -> str:
        return str(self.manifest["model"].get("modality", "ecg"))

    @property
    def profile(self) -> Any:
        """The device profile the bundle was built for, as stored in it (`DeviceProfile`; None if it stores none):
        its ISA needs, engine threads, precision hint and budgets are the ones the build used."""
        from jepa_edge.devices.profiles import DeviceProfile, ProfileError

        data = self.manifest["target"].get("profile_data")
        try:
            return DeviceProfile.from_dict(data, source=f"{self.path}/{MANIFEST_NAME}") if data else None
        except ProfileError as exc:  # a manifest that stores a broken profile is a broken bundle
            raise BundleError(f"{MANIFEST_NAME}: $.target.profile_data: {exc}") from None

    @property
    def preprocessing(self) -> Any:
        """The bundle's preprocessing: `EcgPreprocessing` or `EchoPreprocessing`, by its modality."""
        return _preprocessing(self.manifest)

    @property
    def output(self) -> Any:
        """How to read the `logits` output (`jepa_edge.tasks.outputs.TaskOutput`)."""
        return _output(self.manifest)

    def golden(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(inputs, {output name: expected}) as stored, re-hashed before reading."""
        golden = self.manifest["golden"]
        by_path = {e["path"]: e["role"] for e in self.manifest["files"]}

        def load(rel: str) -> np.ndarray:
            target = self._rehash(by_path[rel])
            try:
                return np.load(target, allow_pickle=False)
            except (ValueError, OSError, EOFError) as exc:
                raise BundleError(f"{target}: not a readable .npy array ({exc})") from None

        return load(golden["inputs"]), {name: load(rel) for name, rel in golden["outputs"].items()}

    def golden_sources(self) -> list[GoldenSource] | None:
        """The raw records the golden inputs were preprocessed from (golden/raw/index.json), re-hashed before
        reading; None for bundles built without them."""
        golden = self.manifest["golden"]
        by_path = {e["path"]: e["role"] for e in self.manifest["files"]}
        if "raw" not in golden:
            return None
        index_path = self._rehash(by_path[golden["raw"]])
        try:
            index = parse_manifest(index_path.read_bytes(), where=str(index_path))
            spec = index["sources"]
            if spec is None:
                return None
            data_path = self._rehash(by_path[spec["path"]])
            data = np.fromfile(data_path, dtype="<f8")
            out = []
            for w in spec["windows"]:
                start, n = int(w["element_offset"]), int(w["leads"]) * int(w["samples"])
                if start < 0 or start + n > data.size:
                    raise ValueError(f"window at element {start} of {n} values is outside {data.size}")
                out.append(GoldenSource(data[start : start + n].reshape(int(w["leads"]), int(w["samples"])),
                                        float(w["fs"]), int(w["window_offset"])))
            return out
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{index_path}: golden sources not readable ({exc})") from None

    def runnable_roles(self) -> list[str]:
        ordered = [r for r in ENGINE_PREFERENCE if r in self._entries]
        ordered += sorted(r for r in self._entries if r not in ordered and backend_for_role(r) is not None)
        return ordered

    def engine(self, role: str | None = None, backend: str | None = None, **options: Any) -> Any:
        """An Engine for `role`, or the first artefact (by ENGINE_PREFERENCE) whose back end runs on this machine."""
        if role is not None:
            chosen = resolve_role(role, list(self._entries))
            if chosen is None:
                raise BundleError(f"{self.path}: no file with role {role!r} (roles: {sorted(self._entries)})")
            if backend_for_role(chosen) is None:
                raise BundleError(f"{self.path}: {chosen!r} is not an executable artefact")
            if backend not in (None, backend_for_role(chosen)):
                raise BundleError(f"{self.path}: {chosen!r} runs on {backend_for_role(chosen)}, not {backend}")
        else:
            candidates = [r for r in self.runnable_roles() if backend in (None, backend_for_role(r))]
            if not candidates:
                raise BundleError(f"{self.path}: no artefact for back end {backend!r}" if backend else
                                  f"{self.path}: no executable artefact in this bundle")
            reasons = {r: _backend_reason(backend_for_role(r) or "") for r in candidates}
            runnable = [r for r in candidates if reasons[r] is None]
            if not runnable:
                detail = "; ".join(f"{r}: {why}" for r, why in reasons.items())
                raise BundleError(f"{self.path}: no artefact runs on this machine ({detail})")
            chosen = runnable[0]
        target = self.engine_file(chosen)
        options.setdefault("device_profile", self.profile)  # threads and precision hint, unless given
        return _open_engine(target, backend_for_role(chosen) or "", **options)


def open_bundle(path: str | Path, policy: TrustPolicy | None = None, *, public_key: PublicKeyLike | None = None,
                require_signature: bool = False, isa: Any = None) -> Bundle:
    """Open a bundle after checking schema, every file's SHA-256 and the signature under `policy` (or the
    `public_key` / `require_signature` shorthand), then, for a cart bundle, this CPU's ISA against its profile
    (`isa`: an `IsaInfo` standing for this CPU; default: detected). Raises BundleError, or IsaError."""
    path = Path(path)
    policy = TrustPolicy.of(policy, public_key, require_signature).loaded()
    found = _Findings()
    manifest = _static_checks(path, policy, found)
    if found.problems or manifest is None:
        raise BundleError(f"{path}: bundle does not verify: " + "; ".join(found.problems[:8]))
    bundle = Bundle(path, manifest, signature_checked=policy.public_key is not None,
                    signature_required=policy.required_by(manifest))
    _check_isa(bundle, isa)
    return bundle


def _check_isa(bundle: Bundle, isa: Any = None) -> list[str]:
    """A cart bundle's profile ISA on this CPU: IsaError when a required flag is missing; the warnings (also
    issued as `IsaWarning`) when none of the preferred flags is present, and when the INT8 IR's 8-bit weights
    would saturate on this CPU. Other targets: nothing to check."""
    if bundle.manifest["target"]["kind"] != "cart-cpu" or bundle.profile is None:
        return []
    from jepa_edge.devices.isa import check_int8_weights, check_profile_isa

    where = str(bundle.path)
    return (check_profile_isa(bundle.profile, isa, where=where)
            + check_int8_weights(bundle.manifest.get("quantization") or {}, isa, where=where))


def _tolerance_for(tol: float | Mapping[str, float], output: str) -> float | None:
    if isinstance(tol, Mapping):
        value = tol.get(output)
        return None if value is None else float(value)
    return float(tol)


def _run_golden(bundle: Bundle, found: _Findings) -> None:
    from jepa_edge.runtimes import BackendUnavailable

    golden = bundle.manifest["golden"]
    try:
        inputs, expected = bundle.golden()
    except BundleError as exc:
        found.add("golden", golden["inputs"], False, str(exc))
        return
    if not golden["tolerances"]:
        found.add("golden", "golden", None, "no tolerances: no artefact is checked against the golden vectors")
    for key, tol in golden["tolerances"].items():
        role = resolve_role(key, bundle.roles) or key
        backend = backend_for_role(role)
        subject = f"{bundle.rel_path(role)} ({role})"
        if backend is None:
            found.add("golden", subject, False, "tolerance given for a file no back end executes")
            continue
        reason = _backend_reason(backend)
        if reason is not None:
            found.add("golden", subject, None, f"skipped: {backend} unavailable here ({reason})")
            continue
        try:
            engine = bundle.engine(role=role)
            got = engine.outputs(inputs.astype(np.float32, copy=False))
        except BackendUnavailable as exc:
            found.add("golden", subject, None, f"skipped: {backend} unavailable here ({exc})")
            continue
        except Exception as exc:  # a broken artefact is a verification failure, not a crash
            found.add("golden", subject, False, f"{backend} could not run it: {type(exc).__name__}: {exc}")
            continue
        for name, ref in expected.items():
            limit = _tolerance_for(tol, name)
            if limit is None:
                continue
            if name not in got:
                found.add("golden", subject, False, f"engine has no output {name!r} (has {sorted(got)})")
                continue
            out = np.asarray(got[name], dtype=np.float64)
            if out.shape != ref.shape:
                found.add("golden", subject, False, f"output {name!r} shape {out.shape}, golden {ref.shape}")
                continue
            err = float(np.max(np.abs(out - ref))) if out.size else 0.0
            ok = bool(np.isfinite(out).all()) and err <= limit
            found.add("golden", subject, ok, f"{name}: max |diff| {err:.3g} {'<=' if ok else '>'} tolerance {limit:g}"
                      f" ({backend})")


def verify_bundle(path: str | Path, public_key: PublicKeyLike | None = None, require_signature: bool = False,
                  run_golden: bool = True, policy: TrustPolicy | None = None, isa: Any = None) -> VerifyReport:
    """Every check, collected rather than raised: hashes, signature (under `policy`, or the key / flag
    shorthand), schema, a cart bundle's ISA on this CPU, then golden vectors on local back ends.

    Golden vectors run only when everything else passed: nothing from an altered bundle is ever executed.
    """
    from jepa_edge.devices.isa import IsaError

    path = Path(path)
    found = _Findings()
    try:
        policy = TrustPolicy.of(policy, public_key, require_signature).loaded()
        manifest = _static_checks(path, policy, found)
    except BundleError as exc:  # an unreadable public key
        found.add("signature", "public key", False, str(exc))
        manifest = None
    bundle = None
    if manifest is not None and not found.problems:
        bundle = Bundle(path, manifest, signature_checked=policy.public_key is not None)
        try:
            for warning in _check_isa(bundle, isa):
                found.add("isa", "cpu", None, f"warning: {warning}")
        except IsaError as exc:
            found.add("isa", "cpu", False, str(exc))
        except BundleError as exc:  # a stored profile that is not one
            found.add("manifest", MANIFEST_NAME, False, str(exc).removeprefix(f"{MANIFEST_NAME}: "))
    if bundle is not None and not found.problems and run_golden:
        _run_golden(bundle, found)
    return VerifyReport(path=path, ok=not found.problems and manifest is not None, problems=found.problems,
                        checks=found.checks)


def update_bundle(path: str | Path, add_files: Mapping[str, tuple[str | Path | bytes, str]] | None = None,
                  set_fields: Mapping[str, Any] | None = None, sign_key: PrivateKeyLike | None = None,
                  public_key: PublicKeyLike | None = None,
                  tolerances: Mapping[str, float | Mapping[str, float]] | None = None,
                  policy: TrustPolicy | None = None) -> Path:
    """Rewrite a verified bundle atomically with extra/replaced files and fields; re-hash, re-sign if a key is given.

    A file replaces an existing one with the same path or the same role. `tolerances` adds or replaces golden
    tolerances (e.g. for a TensorRT engine built on the device). Re-signing needs the existing signature to
    verify first (`TrustPolicy.for_resigning`: with `public_key`, else with `sign_key`'s public half). An
    unsigned update of a signed bundle drops the old (now invalid) signature, unless a signature is required
    for the bundle (flag or device profile): then it is refused, as the result could not be opened.
    """
    path = Path(path)
    policy = TrustPolicy.of(policy, public_key)
    if sign_key is not None:
        policy = policy.for_resigning(path, sign_key)
    bundle = open_bundle(path, policy)
    if sign_key is None and bundle.signature_required:
        raise BundleError(f"{path}: refusing an unsigned update: {bundle.signature_required}, and the update "
                          "would drop the signature (give the signing key)")
    add_files = dict(add_files or {})
    new_roles = {role for _, role in add_files.values()}
    inputs, expected = bundle.golden()
    sources = bundle.golden_sources()
    golden_paths = {bundle.manifest["golden"]["inputs"], *bundle.manifest["golden"]["outputs"].values()}
    fields = {k: v for k, v in bundle.manifest.items() if k not in ("schema_version", "files", "golden")}
    fields.update(set_fields or {})
    with BundleBuilder(path, sign_key=sign_key) as builder:
        for entry in bundle.manifest["files"]:
            rel, role = entry["path"], entry["role"]
            if (rel in golden_paths or rel.startswith(GOLDEN_DIR + "/") or rel == HEADER_PATH or rel in add_files
                    or role in new_roles):
                continue
            builder.add_file(bundle._rehash(role), rel, role)
        for rel, (src, role) in add_files.items():
            builder.add_file(src, rel, role)
        builder.set(**fields)
        builder.add_golden(inputs, expected, {**bundle.manifest["golden"]["tolerances"], **(tolerances or {})},
                           sources=sources)
    return path
