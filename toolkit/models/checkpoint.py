"""One on-disk format for every model the toolkit hands between stages.

A model folder holds `model.safetensors` (tensors only: nothing to unpickle) and `meta.json`
(what to build: encoder spec, head spec, preprocessing description, labels, thresholds, provenance).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import JepaEdgeError
from ..io import atomic_dir, sha256_file
from .ecg import EcgEncoder, EcgEncoderSpec
from .heads import Classifier, build_head

MODEL_FORMAT = "jepa-edge-model"
MODEL_FORMAT_VERSION = 1


class CheckpointError(JepaEdgeError):
    """A model folder that is missing, incomplete or of an unknown kind."""


def build_encoder(spec: dict[str, Any]) -> nn.Module:
    """Rebuild an encoder from its spec dict (`modality` picks ECG or echo video)."""
    spec = dict(spec)
    modality = spec.pop("modality", "ecg")
    if modality == "ecg":
        return EcgEncoder(EcgEncoderSpec(**spec))
    if modality == "echo":
        from .video import build_video_encoder  # echo support lives in its own module

        return build_video_encoder(spec)
    raise CheckpointError(f"unknown encoder modality {modality!r}")


def encoder_spec(encoder: nn.Module) -> dict[str, Any]:
    spec = getattr(encoder, "spec", None)
    if spec is None or not hasattr(spec, "to_dict"):
        raise CheckpointError(f"{type(encoder).__name__} carries no spec to rebuild it from")
    return spec.to_dict()


def save_model(out_dir: str | Path, model: nn.Module, meta: dict[str, Any],
               state: dict[str, Any] | None = None) -> Path:
    """Atomically write `model`'s state dict (or `state`, e.g. gathered from FSDP shards) and `meta`."""
    out_dir = Path(out_dir)
    state = {k: v.detach().contiguous().cpu() for k, v in (model.state_dict() if state is None else state).items()}
    with atomic_dir(out_dir) as tmp:
        save_file(state, str(tmp / "model.safetensors"))
        full = {"format": MODEL_FORMAT, "version": MODEL_FORMAT_VERSION, **meta,
                "weights_sha256": sha256_file(tmp / "model.safetensors")}
        (tmp / "meta.json").write_text(json.dumps(full, indent=2, sort_keys=True) + "\n")
    return out_dir


def read_meta(model_dir: str | Path) -> dict[str, Any]:
    model_dir = Path(model_dir)
    meta_path = model_dir / "meta.json"
    if not meta_path.is_file():
        raise CheckpointError(f"{model_dir}: not a jepa-edge model folder (meta.json missing)")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{meta_path}: invalid JSON: {exc}") from exc
    if meta.get("format") != MODEL_FORMAT:
        raise CheckpointError(f"{meta_path}: format {meta.get('format')!r} is not {MODEL_FORMAT!r}")
    if meta.get("version", 0) > MODEL_FORMAT_VERSION:
        raise CheckpointError(f"{meta_path}: format version {meta['version']} is newer than this toolkit reads")
    return meta


def load_weights(model_dir: str | Path, model: nn.Module, strict: bool = True) -> dict[str, Any]:
    model_dir = Path(model_dir)
    meta = read_meta(model_dir)
    weights = model_dir / "model.safetensors"
    if not weights.is_file():
        raise CheckpointError(f"{weights}: weights file missing")
    if meta.get("weights_sha256") and sha256_file(weights) != meta["weights_sha256"]:
        raise CheckpointError(f"{weights}: SHA-256 does not match meta.json (corrupted or replaced file)")
    state = load_file(str(weights))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if strict and (missing or unexpected):
        raise CheckpointError(f"{weights}: state dict does not fit the model: missing {missing[:8]}, "
                              f"unexpected {unexpected[:8]}")
    return meta


def resolve_model_dir(path: str | Path) -> Path:
    """Accept a model folder or a pretraining run folder (whose exported encoder is used)."""
    path = Path(path)
    if (path / "meta.json").is_file():
        return path
    if (path / "encoder" / "meta.json").is_file():
        return path / "encoder"
    raise CheckpointError(f"{path}: neither a model folder (meta.json) nor a pretraining run (encoder/meta.json)")


def load_encoder(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    model_dir = resolve_model_dir(path)
    meta = read_meta(model_dir)
    if "encoder" not in meta:
        raise CheckpointError(f"{model_dir}: meta.json has no encoder spec")
    encoder = build_encoder(meta["encoder"])
    if meta.get("kind") == "classifier":  # take the encoder out of a classifier folder
        model = Classifier(encoder, build_head(meta["head"]))
        load_weights(model_dir, model)
        return model.encoder, meta
    load_weights(model_dir, encoder)
    return encoder, meta


def load_classifier(path: str | Path) -> tuple[Classifier, dict[str, Any]]:
    model_dir = resolve_model_dir(path)
    meta = read_meta(model_dir)
    if meta.get("kind") != "classifier" or "head" not in meta:
        raise CheckpointError(f"{model_dir}: not a classifier (kind={meta.get('kind')!r}); run `jepa-edge probe` first")
    model = Classifier(build_encoder(meta["encoder"]), build_head(meta["head"]))
    load_weights(model_dir, model)
    return model.eval(), meta
