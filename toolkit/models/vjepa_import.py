"""Import V-JEPA 2 (and EchoJEPA, its fork) checkpoints onto our `VideoEncoder`.

A V-JEPA 2 training checkpoint is a torch dict with `encoder`, `target_encoder`, `predictor` (plus
optimiser state); the encoders are wrapped in DDP and a multi-sequence wrapper, so their keys read
`module.backbone.blocks.0.attn.qkv.weight`. The released hub files hold the same names. The map to ours:

    patch_embed.proj.*        -> patch_embed.*            (Conv3d, tubelet x patch x patch)
    blocks.i.mlp.fc1/fc2.*    -> blocks.i.fc1/fc2.*
    blocks.i.{norm1,norm2,attn.qkv,attn.proj}.* -> same name
    norm.*                    -> norm.*
    pos_embed                 -> never loaded (see below; reported in the import notes)

Positions. V-JEPA 2 encoders use 3D RoPE inside attention (`use_rope=True` in upstream's hub builders) and
add no position table to the tokens. The released state dicts nevertheless carry a `pos_embed` tensor, a
leftover that upstream's own hub loader skips (`load_state_dict(strict=False)`, "state_dict has pos_embed but
we use RoPE"). So a `pos_embed` key says nothing about the scheme, and RoPE is the default; adding the
table instead changes every feature. Only V-JEPA 1 checkpoints (no RoPE) need `pos_embed="sincos"`, which
the caller has to ask for.

Section. Upstream's hub loader and demo read the `encoder` section of a released file, so that is the
default; `target_encoder` (the EMA copy) is used only when asked for or when it is the only encoder present.

Size. Width, depth and MLP width come from the tensors; the head count does not. Where the table has more
than one size with the same shapes (vit-g: 22 heads, V-JEPA 2's `vit_giant_xformers`; vit-g-16h: upstream's
16-head `vit_giant`) the caller must name the size.

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
from .video import POS_EMBEDS, VideoEncoder, VideoEncoderSpec
from .vit import MODEL_SIZES, ViTSize, model_size

PREFIXES = ("module.", "backbone.", "_orig_mod.")
ENCODER_KEYS = ("encoder", "target_encoder")  # in this order: upstream's hub loader and demo read `encoder`
IGNORED = ("pos_embed",)


class ImportError_(DataError):  # noqa: N801 - avoid shadowing the builtin ImportError
    """A checkpoint that cannot be mapped onto our video encoder; names the file and the problem."""


@dataclass
class ImportReport:
    source: str
    section: str
    spec: dict[str, Any]
    size_given: bool = False  # True: the caller named the size; False: read off the weights
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # our parameters the checkpoint did not provide
    unexpected: list[str] = field(default_factory=list)  # checkpoint tensors with no place in our model
    ignored: list[str] = field(default_factory=list)  # deliberately not loaded (recomputed buffers)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.unexpected

    def summary(self) -> str:
        size = f"{self.spec['size']} ({'given' if self.size_given else 'inferred'})"
        text = (f"{self.source} [section {self.section}, {size}, {self.spec['pos_embed']} positions]: "
                f"{len(self.loaded)} tensors loaded, {len(self.missing)} missing, "
                f"{len(self.unexpected)} unexpected, {len(self.ignored)} ignored")
        if self.missing:
            text += f"; missing: {self.missing[:6]}"
        if self.unexpected:
            text += f"; unexpected: {self.unexpected[:6]}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "section": self.section, "spec": self.spec, "size_given": self.size_given,
                "loaded": len(self.loaded), "missing": self.missing, "unexpected": self.unexpected,
                "ignored": self.ignored, "notes": self.notes}


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
    """Pick the encoder state dict: `section` if named, else `encoder` (as upstream loads), else `target_encoder`,
    else the file itself when it is a bare state dict."""
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


def infer_spec(state: dict[str, torch.Tensor], path: str, frames: int = 16, image_size: int = 224,
               size: str | None = None, pos_embed: str = "rope") -> VideoEncoderSpec:
    """Patch, tubelet, channels and biases read off the tensors; the size checked against them (or inferred when
    unambiguous). `pos_embed` is the caller's choice, never read from the checkpoint (see the module docstring)."""
    proj = state.get("patch_embed.proj.weight")
    if proj is None or proj.dim() != 5:
        raise ImportError_(f"{path}: no 3D patch embedding 'patch_embed.proj.weight' (is this a video model?)")
    if pos_embed not in POS_EMBEDS:
        raise ImportError_(f"{path}: position scheme {pos_embed!r} is not one of {POS_EMBEDS}")
    dim, channels, tubelet, patch, _ = proj.shape
    depth = 1 + max((int(m[1]) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))), default=-1)
    fc1 = state.get("blocks.0.mlp.fc1.weight")
    hidden = None if fc1 is None else fc1.shape[0]
    shapes = f"width {dim}, depth {depth}" + (f", MLP {hidden}" if hidden is not None else "")

    def fits(s: ViTSize) -> bool:
        return s.dim == dim and s.depth == depth and (hidden is None or int(round(s.dim * s.mlp_ratio)) == hidden)

    if size is not None:
        try:
            chosen = model_size(size)
        except ValueError as exc:
            raise ImportError_(f"{path}: {exc}") from None
        if not fits(chosen):
            raise ImportError_(f"{path}: {shapes} does not fit size {size} ({chosen.dim} wide, {chosen.depth} deep, "
                               f"MLP {int(round(chosen.dim * chosen.mlp_ratio))})")
    else:
        matches = [s for s in MODEL_SIZES.values() if fits(s)]
        if not matches:
            raise ImportError_(f"{path}: {shapes} matches no size in the table "
                               f"({', '.join(f'{s.name} {s.dim}/{s.depth}' for s in MODEL_SIZES.values())})")
        if len(matches) > 1:
            options = ", ".join(f"{s.name} ({s.heads} heads)" for s in matches)
            raise ImportError_(f"{path}: {shapes} fits several sizes that differ only in the head count, which "
                               f"weights do not record: {options}; name it with size= (CLI: --size)")
        chosen = matches[0]
    return VideoEncoderSpec(size=chosen.name, frames=frames, image_size=image_size, patch=patch, tubelet=tubelet,
                            channels=channels, registers=0, pos_embed=pos_embed,
                            bias="blocks.0.attn.qkv.bias" in state, norm_eps=1e-6)


def encoder_from_checkpoint(obj: dict[str, Any], path: str | Path, section: str | None = None, frames: int = 16,
                            image_size: int = 224, size: str | None = None, pos_embed: str = "rope",
                            strict: bool = True) -> tuple[VideoEncoder, ImportReport]:
    """Build our encoder from an already loaded checkpoint dict; strict raises on any missing/unexpected key."""
    path = str(path)
    chosen, raw = select_encoder_state(obj, path, section)
    state = strip_prefixes(raw)
    spec = infer_spec(state, path, frames, image_size, size, pos_embed)
    encoder = VideoEncoder(spec)
    report = ImportReport(path, chosen, spec.to_dict(), size_given=size is not None)
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
    report.notes.append(_position_note(state.get("pos_embed"), encoder))
    if section is None and chosen in ENCODER_KEYS:
        why = "as upstream's hub loader reads" if chosen == ENCODER_KEYS[0] else f"no {ENCODER_KEYS[0]!r} section"
        report.notes.append(f"section {chosen!r} chosen by default ({why}; pick one with section= / --section)")
    others = sorted(k for k in obj if isinstance(k, str) and k != chosen and isinstance(obj[k], dict))
    if others:
        report.notes.append(f"sections not imported: {others}")
    if strict and not report.ok:
        raise ImportError_(report.summary())
    encoder.load_state_dict(mapped, strict=False)
    return encoder, report


def _position_note(theirs: torch.Tensor | None, encoder: VideoEncoder) -> str:
    """Say what happened to the checkpoint's `pos_embed` under the chosen scheme."""
    if encoder.pos is None:
        if theirs is None:
            return "RoPE positions; the checkpoint has no pos_embed"
        return (f"RoPE positions (V-JEPA 2); the checkpoint's pos_embed {tuple(theirs.shape)} is a leftover the "
                "RoPE model does not use (upstream's hub loader drops it too) and was not loaded; "
                "a V-JEPA 1 checkpoint needs pos_embed='sincos' (CLI: --pos-embed sincos)")
    if theirs is None:
        return "sin-cos positions as asked; the checkpoint has no pos_embed to compare with our 3D table"
    theirs = theirs.float().reshape(-1, encoder.dim)
    if theirs.shape != encoder.pos.shape or not torch.allclose(theirs, encoder.pos, atol=1e-4):
        return ("sin-cos positions as asked; the checkpoint's pos_embed differs from our 3D sin-cos table "
                "(uniform_power or grid mismatch); ours is used")
    return "sin-cos positions as asked; the checkpoint's pos_embed equals our 3D sin-cos table"


def import_vjepa_encoder(path: str | Path, section: str | None = None, frames: int = 16, image_size: int = 224,
                         size: str | None = None, pos_embed: str = "rope",
                         strict: bool = True) -> tuple[VideoEncoder, ImportReport]:
    """Read a V-JEPA 2 / EchoJEPA checkpoint file (weights_only) and build our encoder from it."""
    return encoder_from_checkpoint(load_checkpoint_file(path), path, section, frames, image_size, size, pos_embed,
                                   strict)


def import_vjepa(path: str | Path, out: str | Path, section: str | None = None, frames: int = 16,
                 image_size: int = 224, strict: bool = True, size: str | None = None,
                 pos_embed: str = "rope") -> tuple[Path, ImportReport]:
    """Import and save as a jepa-edge model folder; meta.json's `import` records the section, size and position
    scheme actually used and the source file's SHA-256, so a model folder says what it was made from."""
    from ..data.echo import EchoPreprocessing
    from ..io import sha256_file

    encoder, report = import_vjepa_encoder(path, section, frames, image_size, size, pos_embed, strict=strict)
    pre = EchoPreprocessing(frames=frames, size=image_size)
    provenance = {"section": report.section, "size": encoder.spec.size, "size_given": report.size_given,
                  "pos_embed": encoder.spec.pos_embed, "source_sha256": sha256_file(path), "report": report.to_dict()}
    meta = {"kind": "encoder", "encoder": encoder.spec.to_dict(), "modality": "echo", "source": "vjepa2-import",
            "import": provenance, "preprocessing": pre.to_dict()}
    return save_model(out, encoder, meta), report
