"""Write a bundle atomically: files, golden vectors, C header, manifest (hashes of everything), signature.

The bundle is assembled in a hidden `.NAME.*.partial` sibling folder and renamed into place only after
the manifest (and signature) are written, so a build that dies midway leaves no folder under the
bundle's name, and the loaders refuse `.partial` folders outright.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_dir, sha256_file
from .cheader import generate_header
from .manifest import (
    GOLDEN_DIR,
    GOLDEN_RAW_INDEX,
    HEADER_PATH,
    RESERVED_PATHS,
    SCHEMA_VERSION,
    BundleError,
    check_consistency,
    manifest_bytes,
    schema_errors,
)
from .signing import PrivateKeyLike, load_private_key, sign

BUILD_FIELDS = ("toolkit_version", "model", "target", "runtimes", "calibration", "quantization", "io",
                "preprocessing", "labels", "thresholds", "parity", "budget")
REL_PATH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*$")
ROLE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
TENSOR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
GOLDEN_INPUTS = f"{GOLDEN_DIR}/inputs.npy"
GOLDEN_RAW_DIR = f"{GOLDEN_DIR}/raw"
RAW_FORMAT = "jepa-edge-golden-raw"
# Firmware's own preprocessing (double arithmetic, then float32) may round a value the other way than NumPy's:
# a few float32 ulps at |x| <= clip; anything bigger is a preprocessing bug.
GOLDEN_INPUT_TOLERANCE = 1e-5


@dataclass(frozen=True)
class GoldenSource:
    """The raw record a golden ECG input was cut from, so firmware can re-run the preprocessing on it:
    `signal` (leads in the model's order, samples) in mV at `fs` Hz; the golden window starts `offset` model-rate
    samples into the preprocessed record."""

    signal: np.ndarray
    fs: float
    offset: int


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def _plain_json(name: str, value: Any) -> Any:
    """A deep copy made of JSON types only (numpy scalars/arrays, Paths and tuples converted)."""
    try:
        return json.loads(json.dumps(value, default=_json_default, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise BundleError(f"manifest field {name!r}: {exc}") from None


def raw_bytes(array: np.ndarray, dtype: str) -> bytes:
    """C-order little-endian bytes (`dtype` '<f4' or '<f8'): what firmware reads without a NumPy parser."""
    return np.ascontiguousarray(array, dtype=dtype).tobytes()


def npy_bytes(array: np.ndarray) -> bytes:
    """Deterministic .npy bytes (same array -> same bytes -> same SHA-256)."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def check_rel_path(rel_path: str) -> str:
    rel_path = str(rel_path)
    if not REL_PATH.match(rel_path) or len(rel_path) > 255:
        raise BundleError(f"{rel_path!r}: bundle paths are relative, '/'-separated, made of letters, digits, "
                          "'.', '_', '-', with no segment starting with '.'")
    return rel_path


class BundleBuilder:
    """Context manager that assembles one bundle; nothing exists under `out_dir` until a clean exit."""

    def __init__(self, out_dir: str | Path, sign_key: PrivateKeyLike | None = None, overwrite: bool = True) -> None:
        self.out_dir = Path(out_dir)
        self._sign_key = load_private_key(sign_key) if sign_key is not None else None  # fail before any work
        self._overwrite = overwrite
        self._fields: dict[str, Any] = {}
        self._files: dict[str, str] = {}  # rel path -> role
        self._golden: dict[str, Any] | None = None
        self._raw_roles: dict[str, str] = {}
        self._ctx: Any = None
        self._tmp: Path | None = None

    # -- context ---------------------------------------------------------------------------------
    def __enter__(self) -> BundleBuilder:
        self._ctx = atomic_dir(self.out_dir, overwrite=self._overwrite)
        self._tmp = self._ctx.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        ctx = self._ctx
        try:
            if exc_type is not None:
                return bool(ctx.__exit__(exc_type, exc, tb))
            try:
                self._finish()
            except BaseException as err:
                ctx.__exit__(type(err), err, err.__traceback__)
                raise
            return bool(ctx.__exit__(None, None, None))
        finally:
            self._ctx = None

    @property
    def folder(self) -> Path:
        """The temporary folder being filled (renamed to `out_dir` on a clean exit)."""
        if self._tmp is None or self._ctx is None:
            raise BundleError(f"{self.out_dir}: use BundleBuilder as a context manager (`with BundleBuilder(...)`)")
        return self._tmp

    # -- content ---------------------------------------------------------------------------------
    def add_file(self, src: str | Path | bytes, rel_path: str, role: str) -> Path:
        """Copy a file (or write bytes) into the bundle under `rel_path`, tagged with `role` (unique per bundle)."""
        folder = self.folder
        rel_path = check_rel_path(rel_path)
        if rel_path in RESERVED_PATHS or rel_path.startswith(GOLDEN_DIR + "/"):
            raise BundleError(f"{rel_path}: reserved for the bundle's own manifest, signature, header or golden/")
        if not ROLE.match(str(role)):
            raise BundleError(f"{rel_path}: role {role!r} must be lower-case letters, digits and '-'")
        if rel_path in self._files:
            raise BundleError(f"{rel_path}: added twice")
        if role in self._files.values():
            raise BundleError(f"{rel_path}: role {role!r} already used by another file")
        dest = folder / rel_path
        for parent in [*reversed(Path(rel_path).parents)][1:]:
            if (folder / parent).is_file():
                raise BundleError(f"{rel_path}: {parent} is already a file")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(src, (bytes, bytearray, memoryview)):
            dest.write_bytes(bytes(src))
        else:
            src = Path(src)
            if not src.is_file():
                raise BundleError(f"{src}: file to add as {rel_path} ({role}) not found")
            shutil.copyfile(src, dest)
        self._files[rel_path] = role
        return dest

    def set(self, **fields: Any) -> None:
        """Set manifest fields (see CONTRACTS: toolkit_version, model, target, runtimes, ... parity)."""
        for name, value in fields.items():
            if name not in BUILD_FIELDS:
                raise BundleError(f"manifest field {name!r} is not settable; choose from {list(BUILD_FIELDS)}")
            self._fields[name] = _plain_json(name, value)

    def add_golden(self, inputs: np.ndarray, outputs: Mapping[str, np.ndarray],
                   tolerances: Mapping[str, float | Mapping[str, float]],
                   sources: Sequence[GoldenSource] | None = None) -> None:
        """Reference inputs and outputs; `tolerances[role]` is the max |difference| allowed for that artefact
        (one number for all outputs, or a dict output name -> number). `sources` (one per input, optional): the
        raw records the inputs were preprocessed from, for firmware to check its own preprocessing.

        Written twice: as .npy (Python) and as raw little-endian float32 under golden/raw/ with an index.json
        (firmware: no NumPy parser needed); the manifest hashes both."""
        folder = self.folder
        if self._golden is not None:
            raise BundleError(f"{self.out_dir}: golden vectors added twice")
        inputs = np.asarray(inputs)
        if inputs.ndim < 1 or inputs.shape[0] < 1:
            raise BundleError(f"golden inputs need a leading batch dimension with >= 1 example, got {inputs.shape}")
        if not np.issubdtype(inputs.dtype, np.floating) or not np.isfinite(inputs).all():
            raise BundleError(f"golden inputs must be finite floating-point numbers, got {inputs.dtype}")
        if not outputs:
            raise BundleError("golden outputs are empty")
        inputs32 = inputs.astype(np.float32, copy=False)
        written = {GOLDEN_INPUTS: npy_bytes(inputs32)}
        raw_roles = {GOLDEN_RAW_INDEX: "raw-golden-index", f"{GOLDEN_RAW_DIR}/inputs.f32": "raw-golden-inputs"}
        written[f"{GOLDEN_RAW_DIR}/inputs.f32"] = raw_bytes(inputs32, "<f4")
        index: dict[str, Any] = {
            "format": RAW_FORMAT, "version": 1, "byte_order": "little", "count": int(inputs.shape[0]),
            "inputs": {"path": f"{GOLDEN_RAW_DIR}/inputs.f32", "dtype": "float32", "shape": list(inputs.shape)},
            "outputs": {}, "sources": None}
        refs: dict[str, str] = {}
        for name, value in outputs.items():
            if not TENSOR_NAME.match(str(name)):
                raise BundleError(f"golden output name {name!r} is not a tensor name")
            value = np.asarray(value)
            if value.ndim < 1 or value.shape[0] != inputs.shape[0]:
                raise BundleError(f"golden output {name!r} has shape {value.shape}, "
                                  f"expected {inputs.shape[0]} examples first")
            refs[name] = f"{GOLDEN_DIR}/{name}.npy"
            written[refs[name]] = npy_bytes(value.astype(np.float32, copy=False))
            raw = f"{GOLDEN_RAW_DIR}/{name}.f32"
            written[raw] = raw_bytes(value, "<f4")
            raw_roles[raw] = f"raw-golden-out-{name.lower().replace('_', '-')}"[:64]
            index["outputs"][name] = {"path": raw, "dtype": "float32", "shape": list(value.shape)}
        if sources is not None:
            index["sources"] = self._sources(sources, inputs.shape, written)
            raw_roles[f"{GOLDEN_RAW_DIR}/sources.f64"] = "raw-golden-sources"
        written[GOLDEN_RAW_INDEX] = (json.dumps(index, indent=1, sort_keys=True) + "\n").encode()
        tolerances = _plain_json("golden.tolerances", dict(tolerances))
        for rel, data in written.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(data)
        self._raw_roles = raw_roles
        self._golden = {"inputs": GOLDEN_INPUTS, "outputs": refs, "count": int(inputs.shape[0]),
                        "tolerances": tolerances, "raw": GOLDEN_RAW_INDEX}

    @staticmethod
    def _sources(sources: Sequence[GoldenSource], shape: tuple[int, ...], written: dict[str, bytes]) -> dict[str, Any]:
        if len(sources) != shape[0]:
            raise BundleError(f"{len(sources)} golden sources for {shape[0]} golden inputs (one per input)")
        chunks, windows, element = [], [], 0
        for i, src in enumerate(sources):
            signal = np.asarray(src.signal, dtype=np.float64)
            if signal.ndim != 2 or (len(shape) == 3 and signal.shape[0] != shape[1]):
                raise BundleError(f"golden source {i}: shape {signal.shape} is not (leads, samples) for inputs {shape}")
            if not np.isfinite(signal).all() or not float(src.fs) > 0 or int(src.offset) < 0:
                raise BundleError(f"golden source {i}: needs finite samples, fs > 0 and offset >= 0")
            chunks.append(raw_bytes(signal, "<f8"))
            windows.append({"fs": float(src.fs), "leads": int(signal.shape[0]), "samples": int(signal.shape[1]),
                            "element_offset": element, "window_offset": int(src.offset)})
            element += signal.size
        written[f"{GOLDEN_RAW_DIR}/sources.f64"] = b"".join(chunks)
        return {"path": f"{GOLDEN_RAW_DIR}/sources.f64", "dtype": "float64", "input_tolerance": GOLDEN_INPUT_TOLERANCE,
                "windows": windows}

    # -- finish ----------------------------------------------------------------------------------
    def _entries(self, folder: Path, roles: Mapping[str, str]) -> list[dict[str, Any]]:
        return [{"path": rel, "role": role, "sha256": sha256_file(folder / rel), "bytes": (folder / rel).stat().st_size}
                for rel, role in sorted(roles.items())]

    def _validate(self, manifest: dict[str, Any]) -> None:
        problems = schema_errors(manifest)
        if not problems:
            problems = check_consistency(manifest)
        if problems:
            raise BundleError(f"{self.out_dir}: manifest does not validate against schema "
                              f"v{SCHEMA_VERSION}: " + "; ".join(problems[:8]))

    def _finish(self) -> None:
        folder = self.folder
        if self._golden is None:
            raise BundleError(f"{self.out_dir}: no golden vectors (call add_golden before the build ends)")
        from .. import __version__

        roles = dict(self._files)
        roles[GOLDEN_INPUTS] = "golden-inputs"
        for name, rel in self._golden["outputs"].items():
            roles[rel] = f"golden-{name.lower().replace('_', '-')}"[:64]
        roles.update(self._raw_roles)
        manifest: dict[str, Any] = {"toolkit_version": __version__, **self._fields,
                                    "schema_version": SCHEMA_VERSION, "golden": self._golden}
        manifest["files"] = self._entries(folder, roles)
        self._validate(manifest)
        header = folder / HEADER_PATH
        header.parent.mkdir(parents=True, exist_ok=True)
        header.write_text(generate_header(manifest))
        roles[HEADER_PATH] = "c-header"
        manifest["files"] = self._entries(folder, roles)
        self._validate(manifest)
        data = manifest_bytes(manifest)
        (folder / "manifest.json").write_bytes(data)
        if self._sign_key is not None:
            (folder / "manifest.json.sig").write_bytes(sign(data, self._sign_key))
