"""Import V-JEPA 2 (and EchoJEPA, its fork) checkpoints onto our `VideoEncoder`.

A V-JEPA 2 training checkpoint is a torch dict with `encoder`, `target_encoder`, `predictor` (plus
optimiser state); the encoders are wrapped in DDP and a multi-sequence wrapper, so their keys read
`module.backbone.blocks.0.attn.qkv.weight`. The released hub files hold the same names. The map to ours:

    patch_embed.proj.*        -> patch_embed.*            (Conv3d, tubelet x patch x patch)
    blocks.i.mlp.fc1/fc2.*    -> blocks.i.fc1/fc2.*
    blocks.i.{norm1,norm2,attn.qkv,attn.proj}.* -> same name
    norm.*                    -> norm.*
    pos_embed                 -> not loaded: recomputed as our fixed 3D sin-cos table (checked, reported)

Files are read with `torch.load(weights_only=True)`: tensors and plain containers only, no code runs.
Everything that is neither mapped nor deliberately ignored is reported, never silently dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..data.errors import DataError
from .checkpoint import save_model
from .video import VideoEncoder, VideoEncoderSpec
from .vit import MODEL_SIZES

PREFIXES = ("module.", "backbone.", "_orig_mod.")
ENCODER_KEYS = ("target_encoder", "encoder")  # the EMA target encoder is the one V-JEPA 2 evaluates
IGNORED = ("pos_embed",)


class ImportError_(DataError):  # noqa: N801 - avoid shadowing the builtin ImportError
    """A checkpoint that cannot be mapped onto our video encoder; names the file and the problem."""


@dataclass
class ImportReport:
    source: str
    section: str
    spec: dict[str, Any]
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # our parameters the checkpoint did not provide
    unexpected: list[str] = field(default_factory=list)  # checkpoint tensors with no place in our model
    ignored: list[str] = field(default_factory=list)  # deliberately not loaded (recomputed buffers)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.unexpected

    def summary(self) -> str:
        text = (f"{self.source} [{self.section}]: {len(self.loaded)} tensors loaded, {len(self.missing)} missing, "
                f"{len(self.unexpected)} unexpected, {len(self.ignored)} ignored")
        if self.missing:
            text += f"; missing: {self.missing[:6]}"
        if self.unexpected:
            text += f"; unexpected: {self.unexpected[:6]}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "section": self.section, "spec": self.spec, "loaded": len(self.loaded),
                "missing": self.missing, "unexpected": self.unexpected, "ignored": self.ignored, "notes": self.notes}


def strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove DDP / wrapper / torch.compile prefixes, however they are stacked."""
    out = {}
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for prefix in PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix) :], True
        out[key] = value
    return out


def vjepa_to_ours(key: str) -> str | None:
    """Our parameter name for one (prefix-free) V-JEPA 2 encoder key; None if it has no counterpart."""
    if key.startswith("patch_embed.proj."):
        return "patch_embed." + key[len("patch_embed.proj.") :]
    m = re.fullmatch(r"blocks\.(\d+)\.(norm1|norm2|attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)\.(weight|bias)", key)
    if m:
        return f"blocks.{m[1]}.{m[2].replace('mlp.', '')}.{m[3]}"
    if key in ("norm.weight", "norm.bias"):
        return key
    return None


def ours_to_vjepa(key: str) -> str:
    """Inverse of `vjepa_to_ours`, for writing our encoders in V-JEPA 2 naming."""
    if key.startswith("patch_embed."):
        return "patch_embed.proj." + key[len("patch_embed.") :]
    m = re.fullmatch(r"blocks\.(\d+)\.(fc1|fc2)\.(weight|bias)", key)
    if m:
        return f"blocks.{m[1]}.mlp.{m[2]}.{m[3]}"
    return key


def to_vjepa_state(encoder: VideoEncoder, prefix: str = "module.backbone.") -> dict[str, torch.Tensor]:
    """Our encoder's weights under V-JEPA 2's names (with its DDP + wrapper prefix), e.g. to evaluate in their code."""
    state = {prefix + ours_to_vjepa(k): v.detach().clone() for k, v in encoder.state_dict().items()}
    if encoder.pos is not None:
        state[prefix + "pos_embed"] = encoder.pos.detach().clone().unsqueeze(0)
    return state


def load_checkpoint_file(path: str | Path) -> dict[str, Any]:
    """torch.load with weights_only=True (no unpickling of arbitrary objects); clear errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ImportError_(f"{path}: no such checkpoint file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle / zip / safety errors all mean: cannot be read safely
        raise ImportError_(f"{path}: not a checkpoint torch.load(weights_only=True) can read safely "
                           f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from exc
    if not isinstance(obj, dict):
        raise ImportError_(f"{path}: expected a dict of tensors or of state dicts, got {type(obj).__name__}")
    return obj


def select_encoder_state(obj: dict[str, Any], path: str, section: str | None = None) -> tuple[str, dict]:
    """Pick the encoder state dict from a training checkpoint, or take a bare state dict as is."""
    if section is not None:
        if section not in obj or not isinstance(obj[section], dict):
            raise ImportError_(f"{path}: no section {section!r} (has {sorted(k for k in obj if isinstance(k, str))})")
        return section, obj[section]
    for name in ENCODER_KEYS:
        if isinstance(obj.get(name), dict):
            return name, obj[name]
    if all(isinstance(v, torch.Tensor) for v in obj.values()) and obj:
        return "<state dict>", obj
    raise ImportError_(f"{path}: no encoder found (looked for {ENCODER_KEYS} or a bare state dict; "
                       f"has {sorted(str(k) for k in obj)[:10]})")


def infer_spec(state: dict[str, torch.Tensor], path: str, frames: int = 16, image_size: int = 224) -> VideoEncoderSpec:
    """Size, patch, tubelet, channels, biases and position scheme read off the tensors themselves."""
    proj = state.get("patch_embed.proj.weight")
    if proj is None or proj.dim() != 5:
        raise ImportError_(f"{path}: no 3D patch embedding 'patch_embed.proj.weight' (is this a video model?)")
    dim, channels, tubelet, patch, _ = proj.shape
    depth = 1 + max((int(m[1]) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))), default=-1)
    hidden = state.get("blocks.0.mlp.fc1.weight")
    matches = [s for s in MODEL_SIZES.values() if s.dim == dim and s.depth == depth
               and (hidden is None or int(round(s.dim * s.mlp_ratio)) == hidden.shape[0])]
    if not matches:
        raise ImportError_(f"{path}: width {dim}, depth {depth} matches no size in the table "
                           f"({', '.join(f'{s.name} {s.dim}/{s.depth}' for s in MODEL_SIZES.values())})")
    return VideoEncoderSpec(size=matches[0].name, frames=frames, image_size=image_size, patch=patch, tubelet=tubelet,
                            channels=channels, registers=0,
                            pos_embed="sincos" if "pos_embed" in state else "rope",
                            bias="blocks.0.attn.qkv.bias" in state, norm_eps=1e-6)


def import_vjepa_encoder(path: str | Path, section: str | None = None, frames: int = 16, image_size: int = 224,
                         heads: int | None = None, strict: bool = True) -> tuple[VideoEncoder, ImportReport]:
    """Build our encoder from a V-JEPA 2 / EchoJEPA checkpoint; strict raises on any missing/unexpected key."""
    path = Path(path)
    obj = load_checkpoint_file(path)
    chosen, raw = select_encoder_state(obj, str(path), section)
    state = strip_prefixes(raw)
    spec = infer_spec(state, str(path), frames, image_size)
    if heads is not None and heads != MODEL_SIZES[spec.size].heads:
        raise ImportError_(f"{path}: checkpoint trained with {heads} heads but {spec.size} has "
                           f"{MODEL_SIZES[spec.size].heads} (e.g. vit_giant_xformers vs vit_giant)")
    encoder = VideoEncoder(spec)
    report = ImportReport(str(path), chosen, spec.to_dict())
    ours = encoder.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key in IGNORED:
            report.ignored.append(key)
            continue
        target = vjepa_to_ours(key)
        if target is None or target not in ours:
            report.unexpected.append(key)
            continue
        if tuple(ours[target].shape) != tuple(value.shape):
            report.unexpected.append(f"{key} (shape {tuple(value.shape)} != ours {tuple(ours[target].shape)})")
            continue
        mapped[target] = value.float()
    report.missing = sorted(set(ours) - set(mapped))
    report.loaded = sorted(mapped)
    if "pos_embed" in state and encoder.pos is not None:
        theirs = state["pos_embed"].float().reshape(-1, encoder.dim)
        if theirs.shape != encoder.pos.shape or not torch.allclose(theirs, encoder.pos, atol=1e-4):
            report.notes.append("checkpoint pos_embed differs from our 3D sin-cos table (uniform_power or "
                                "grid mismatch); ours is used")
    others = sorted(k for k in obj if isinstance(k, str) and k != chosen and isinstance(obj[k], dict))
    if others:
        report.notes.append(f"sections not imported: {others}")
    if strict and not report.ok:
        raise ImportError_(report.summary())
    encoder.load_state_dict(mapped, strict=False)
    return encoder, report


def import_vjepa(path: str | Path, out: str | Path, section: str | None = None, frames: int = 16,
                 image_size: int = 224, strict: bool = True) -> tuple[Path, ImportReport]:
    """Import and save as a jepa-edge model folder (model.safetensors + meta.json with the import report)."""
    from ..data.echo import EchoPreprocessing
    from ..io import sha256_file

    encoder, report = import_vjepa_encoder(path, section, frames, image_size, strict=strict)
    pre = EchoPreprocessing(frames=frames, size=image_size)
    meta = {"kind": "encoder", "encoder": encoder.spec.to_dict(), "modality": "echo", "source": "vjepa2-import",
            "source_checkpoint_sha256": sha256_file(path), "import_report": report.to_dict(),
            "preprocessing": pre.to_dict()}
    return save_model(out, encoder, meta), report
