"""V-JEPA 2 checkpoint import: key mapping both ways, weights_only loading, clear missing/unexpected reports."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import pytest
import torch

from jepa_edge.models.checkpoint import load_encoder
from jepa_edge.models.video import VideoEncoder, VideoEncoderSpec
from jepa_edge.models.vit import model_size
from jepa_edge.models.vjepa_import import (
    ImportError_,
    encoder_from_checkpoint,
    import_vjepa,
    import_vjepa_encoder,
    infer_spec,
    strip_prefixes,
    to_vjepa_state,
)

VJEPA_TINY = VideoEncoderSpec(size="vit-tiny", frames=8, image_size=48, bias=True, norm_eps=1e-6)

pytestmark = pytest.mark.usefixtures("one_torch_thread")



def released_vit_tiny_state(seed: int, grid_tokens: int = 48) -> dict[str, torch.Tensor]:
    """A prefix-free V-JEPA 2 encoder state for the vit-tiny shapes (192 wide, 4 deep, MLP 768, tubelet 2x16x16),
    drawn from torch's seeded CPU generator in a fixed key order, plus the leftover `pos_embed` released files carry.

    Scales keep attention and residuals non-trivial: matrices ~ N(0, 1/fan_in), biases ~ N(0, 0.1^2),
    LayerNorm gains ~ 1 + N(0, 0.1^2). The same function fed the upstream model for the reference numbers below.
    """
    dim, hidden, depth = 192, 768, 4
    shapes: list[tuple[str, tuple[int, ...]]] = [("patch_embed.proj.weight", (dim, 3, 2, 16, 16)),
                                                 ("patch_embed.proj.bias", (dim,))]
    for i in range(depth):
        shapes += [(f"blocks.{i}.norm1.weight", (dim,)), (f"blocks.{i}.norm1.bias", (dim,)),
                   (f"blocks.{i}.attn.qkv.weight", (3 * dim, dim)), (f"blocks.{i}.attn.qkv.bias", (3 * dim,)),
                   (f"blocks.{i}.attn.proj.weight", (dim, dim)), (f"blocks.{i}.attn.proj.bias", (dim,)),
                   (f"blocks.{i}.norm2.weight", (dim,)), (f"blocks.{i}.norm2.bias", (dim,)),
                   (f"blocks.{i}.mlp.fc1.weight", (hidden, dim)), (f"blocks.{i}.mlp.fc1.bias", (hidden,)),
                   (f"blocks.{i}.mlp.fc2.weight", (dim, hidden)), (f"blocks.{i}.mlp.fc2.bias", (dim,))]
    shapes += [("norm.weight", (dim,)), ("norm.bias", (dim,)), ("pos_embed", (1, grid_tokens, dim))]
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in shapes:
        noise = torch.randn(shape, generator=gen, dtype=torch.float32)
        if name == "pos_embed":
            state[name] = noise
        elif "norm" in name:
            state[name] = 1.0 + 0.1 * noise if name.endswith("weight") else 0.1 * noise
        elif name.endswith("bias"):
            state[name] = 0.1 * noise
        else:
            state[name] = noise / math.sqrt(math.prod(shape[1:]))
    return state


def reference_clip() -> torch.Tensor:
    """The fixed input of the reference numbers: (2, 3, 6 frames, 64, 64), a 3 x 4 x 4 token grid."""
    return torch.randn((2, 3, 6, 64, 64), generator=torch.Generator().manual_seed(1234), dtype=torch.float32)


class _Payload:
    """Unpickling this would run code; weights_only must refuse it."""

    def __reduce__(self):
        return (print, ("unpickled code ran",))


def _training_checkpoint(path: Path, encoder: VideoEncoder) -> Path:
    """A checkpoint laid out like V-JEPA 2's training saves (DDP + multi-sequence wrapper prefixes)."""
    state = to_vjepa_state(encoder)
    torch.save({"encoder": state, "target_encoder": {k: v + 1 for k, v in state.items()},
                "predictor": {"module.predictor_embed.weight": torch.zeros(4, 4),
                              "module.mask_tokens.0": torch.zeros(1, 1, 4)},
                "epoch": 7, "loss": 0.25}, path)
    return path


def test_vjepa2_key_names() -> None:
    keys = set(to_vjepa_state(VideoEncoder(VJEPA_TINY)))
    for name in ("patch_embed.proj.weight", "patch_embed.proj.bias", "blocks.0.norm1.weight", "blocks.0.norm1.bias",
                 "blocks.0.attn.qkv.weight", "blocks.0.attn.qkv.bias", "blocks.0.attn.proj.weight",
                 "blocks.3.mlp.fc1.weight", "blocks.3.mlp.fc2.bias", "blocks.3.norm2.weight", "norm.weight",
                 "norm.bias"):
        assert "module.backbone." + name in keys
    assert not any(".fc1." in k and ".mlp." not in k for k in keys)


def test_round_trip_of_vjepa2_naming(tmp_path: Path) -> None:
    torch.manual_seed(0)
    original = VideoEncoder(VJEPA_TINY).eval()
    ckpt = _training_checkpoint(tmp_path / "vjepa2.pt", original)
    imported, report = import_vjepa_encoder(ckpt, frames=8, image_size=48)
    assert report.ok and report.section == "encoder" and not report.missing and not report.unexpected
    assert report.spec["size"] == "vit-tiny" and report.spec["pos_embed"] == "rope" and report.spec["bias"]
    assert any("predictor" in note for note in report.notes)
    x = torch.randn(2, 3, 8, 48, 48)
    torch.testing.assert_close(imported.eval()(x), original(x))
    ema, _ = import_vjepa_encoder(ckpt, section="target_encoder", frames=8, image_size=48)
    torch.testing.assert_close(ema.patch_embed.weight, original.patch_embed.weight + 1)
    folder, _ = import_vjepa(ckpt, tmp_path / "imported", frames=8, image_size=48)
    back, meta = load_encoder(folder)
    assert meta["source"] == "vjepa2-import" and meta["import"]["report"]["loaded"] == len(original.state_dict())
    assert meta["preprocessing"]["kind"] == "echo"
    torch.testing.assert_close(back.eval()(x), original(x))
    bare = tmp_path / "bare.pt"  # a hub-style file: just the (prefix-free) state dict
    torch.save({k.removeprefix("module.backbone."): v for k, v in to_vjepa_state(original).items()}, bare)
    assert import_vjepa_encoder(bare, frames=8, image_size=48)[1].ok


def test_sincos_only_when_asked_and_then_checked(tmp_path: Path) -> None:
    """V-JEPA 1 files (sin-cos) look like V-JEPA 2 files with their leftover pos_embed: the caller decides."""
    spec = VideoEncoderSpec(size="vit-tiny", frames=8, image_size=48, bias=True, pos_embed="sincos")
    enc = VideoEncoder(spec)
    torch.save({"target_encoder": to_vjepa_state(enc)}, tmp_path / "v1.pt")
    imported, report = import_vjepa_encoder(tmp_path / "v1.pt", frames=8, image_size=48, pos_embed="sincos")
    assert imported.spec.pos_embed == "sincos" and report.ignored == ["pos_embed"]
    assert any("equals our 3D sin-cos table" in note for note in report.notes)
    default, report = import_vjepa_encoder(tmp_path / "v1.pt", frames=8, image_size=48)
    assert default.spec.pos_embed == "rope" and report.ignored == ["pos_embed"]
    assert any("leftover" in note and "--pos-embed sincos" in note for note in report.notes)
    with pytest.raises(ImportError_, match=r"v1\.pt: position scheme 'learned' is not one of"):
        import_vjepa_encoder(tmp_path / "v1.pt", frames=8, image_size=48, pos_embed="learned")


def test_missing_and_unexpected_keys_are_reported(tmp_path: Path) -> None:
    state = to_vjepa_state(VideoEncoder(VJEPA_TINY))
    del state["module.backbone.blocks.2.attn.qkv.weight"]
    state["module.backbone.blocks.0.ls1.gamma"] = torch.ones(192)
    torch.save({"target_encoder": state}, tmp_path / "odd.pt")
    summary = r"odd\.pt \[section target_encoder, vit-tiny \(inferred\), rope positions\]: .* 1 missing, 1 unexpected"
    with pytest.raises(ImportError_, match=summary) as err:
        import_vjepa_encoder(tmp_path / "odd.pt", frames=8, image_size=48)
    assert "blocks.2.qkv.weight" in str(err.value).replace("attn.", "") and "ls1.gamma" in str(err.value)
    _, report = import_vjepa_encoder(tmp_path / "odd.pt", frames=8, image_size=48, strict=False)
    assert report.missing == ["blocks.2.attn.qkv.weight"] and report.unexpected == ["blocks.0.ls1.gamma"]


def test_unsafe_and_unusable_files(tmp_path: Path) -> None:
    with open(tmp_path / "evil.pt", "wb") as fh:
        pickle.dump({"target_encoder": _Payload()}, fh, protocol=2)
    with pytest.raises(ImportError_, match=r"evil\.pt: not a checkpoint torch.load\(weights_only=True\)"):
        import_vjepa_encoder(tmp_path / "evil.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ImportError_, match=r"junk\.pt: not a checkpoint"):
        import_vjepa_encoder(tmp_path / "junk.pt")
    with pytest.raises(ImportError_, match=r"absent\.pt: no such checkpoint"):
        import_vjepa_encoder(tmp_path / "absent.pt")
    torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, tmp_path / "other.pt")
    with pytest.raises(ImportError_, match=r"other\.pt: no encoder found"):
        import_vjepa_encoder(tmp_path / "other.pt")
    torch.save({"patch_embed.proj.weight": torch.zeros(100, 3, 2, 16, 16)}, tmp_path / "odd_width.pt")
    with pytest.raises(ImportError_, match=r"odd_width\.pt: width 100, depth 0 matches no size"):
        import_vjepa_encoder(tmp_path / "odd_width.pt")
    torch.save({"target_encoder": to_vjepa_state(VideoEncoder(VJEPA_TINY))}, tmp_path / "ok.pt")
    with pytest.raises(ImportError_, match=r"no section 'ema'"):
        import_vjepa_encoder(tmp_path / "ok.pt", section="ema")


# Reference features of the upstream V-JEPA 2 encoder for `released_vit_tiny_state(0)` on `reference_clip()`.
# Made once, outside this repository, with facebookresearch/vjepa2 at commit
# c2963a47433ecca0ad4f06ec28bcfa8cb5b5cefb (2025-08-28), torch 2.13.0 CPU, fp32, 1 thread:
#   1. `git archive` of the commit's src/; timm's drop_path and einops' rearrange stubbed (imported, never called);
#   2. src.models.vision_transformer.VisionTransformer(img_size=(64, 64), patch_size=16, num_frames=6,
#      tubelet_size=2, embed_dim=192, depth=4, num_heads=3, mlp_ratio=4, qkv_bias=True,
#      norm_layer=partial(nn.LayerNorm, eps=1e-6), use_sdpa=True, use_silu=False, wide_silu=True,
#      uniform_power=False, use_rope=True): the kwargs of src/hub/backbones.py's builder on vit-tiny shapes;
#   3. the state from `released_vit_tiny_state(0)` (imported from this file), prefixed with `module.backbone.`,
#      cleaned and loaded as the hub loader does (strip `module.` / `backbone.`, load_state_dict(strict=False);
#      the only unexpected key was `pos_embed`, no key missing);
#   4. model.eval()(reference_clip()) under no_grad; out (2, 48, 192). `weighted` is the mean of out (fp64)
#      times torch.linspace(-1, 1, out.numel()) in row-major order. Our import matched it with max |diff| 0.0.
UPSTREAM_REFERENCE = {
    "fingerprint_qkv0": -24.191157256541715,  # sum of blocks.0.attn.qkv.weight: the recipe still draws the same
    "fingerprint_clip": 154.7458804523094,  # sum of the clip
    "mean": 0.0065753478262130394,
    "std": 1.017572379708399,
    "weighted": -0.0008888058739941599,
    "out[0, 0, :8]": [0.29927030205726624, 0.06252799183130264, 0.4880782663822174, 1.277804970741272,
                      0.19759604334831238, 1.1328206062316895, -1.398619294166565, 0.7657106518745422],
    "out[0, 17, :8]": [1.5540000200271606, -2.266669273376465, 0.43997490406036377, 1.1435458660125732,
                       0.9785044193267822, -0.5257854461669922, -0.03477638587355614, 1.037883996963501],
    "out[1, 47, -8:]": [-0.2116595208644867, -3.4367165565490723, -1.3880927562713623, 0.3824019432067871,
                        0.3372320234775543, 0.04550914466381073, -0.44690102338790894, -1.6188302040100098],
}


def _released_file(path: Path) -> Path:
    """A file in the released layout: `encoder` / `target_encoder` / `predictor` sections, DDP + wrapper prefixes,
    the leftover pos_embed; the EMA section differs so that picking the wrong one shows."""
    def prefixed(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"module.backbone." + k: v for k, v in state.items()}

    torch.save({"encoder": prefixed(released_vit_tiny_state(0)), "target_encoder": prefixed(released_vit_tiny_state(1)),
                "predictor": {"module.backbone.predictor_embed.weight": torch.zeros(4, 4)}, "epoch": 10}, path)
    return path


def test_released_layout_gives_upstream_features(tmp_path: Path) -> None:
    """Defaults (section, positions, size) on a released-layout file reproduce the upstream encoder's features."""
    ref = UPSTREAM_REFERENCE
    assert released_vit_tiny_state(0)["blocks.0.attn.qkv.weight"].double().sum().item() == pytest.approx(
        ref["fingerprint_qkv0"], abs=1e-6), "the seeded recipe no longer draws the weights the reference was made from"
    clip = reference_clip()
    assert clip.double().sum().item() == pytest.approx(ref["fingerprint_clip"], abs=1e-4)
    folder, report = import_vjepa(_released_file(tmp_path / "vitt.pt"), tmp_path / "model", frames=6, image_size=64)
    assert report.ok and report.ignored == ["pos_embed"]
    encoder, _ = load_encoder(folder)
    with torch.no_grad():
        out = encoder.eval()(clip).double()
    assert out.shape == (2, 48, 192)
    weights = torch.linspace(-1, 1, out.numel(), dtype=torch.float64).reshape(out.shape)
    got = {"mean": out.mean().item(), "std": out.std().item(), "weighted": (out * weights).mean().item()}
    for name, value in got.items():
        assert value == pytest.approx(ref[name], abs=1e-4), name
    for name, values in (("out[0, 0, :8]", out[0, 0, :8]), ("out[0, 17, :8]", out[0, 17, :8]),
                         ("out[1, 47, -8:]", out[1, 47, -8:])):
        torch.testing.assert_close(values, torch.tensor(ref[name], dtype=torch.float64), atol=1e-4, rtol=0,
                                   msg=lambda m, name=name: f"{name}: {m}")


def test_default_section_is_upstreams_and_meta_records_the_choices(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from jepa_edge.cli import app
    from jepa_edge.io import sha256_file

    ckpt = _released_file(tmp_path / "vitt.pt")
    res = CliRunner().invoke(app, ["echo", "import-weights", str(ckpt), str(tmp_path / "default"), "--frames", "6",
                                   "--image-size", "64"])
    assert res.exit_code == 0, res.output
    assert "section encoder, vit-tiny (inferred), rope positions" in " ".join(res.output.split())
    _, meta = load_encoder(tmp_path / "default")
    done = meta["import"]
    assert done["section"] == "encoder" and done["pos_embed"] == "rope" and done["size"] == "vit-tiny"
    assert not done["size_given"] and done["source_sha256"] == sha256_file(ckpt)
    assert done["report"]["ignored"] == ["pos_embed"] and meta["encoder"]["pos_embed"] == "rope"
    res = CliRunner().invoke(app, ["echo", "import-weights", str(ckpt), str(tmp_path / "asked"), "--frames", "6",
                                   "--image-size", "64", "--section", "target_encoder", "--size", "vit-tiny",
                                   "--pos-embed", "sincos"])
    assert res.exit_code == 0, res.output
    _, meta = load_encoder(tmp_path / "asked")
    done = meta["import"]
    assert done["section"] == "target_encoder" and done["pos_embed"] == "sincos" and done["size_given"]


def _shaped(size: str) -> dict[str, torch.Tensor]:
    """A released-layout state dict with a size's full shapes and no memory (stride-0 views of one zero)."""
    s = model_size(size)
    dim, hidden = s.dim, int(round(s.dim * s.mlp_ratio))
    shapes = {"patch_embed.proj.weight": (dim, 3, 2, 16, 16), "patch_embed.proj.bias": (dim,),
              "norm.weight": (dim,), "norm.bias": (dim,), "pos_embed": (1, 8 * 16 * 16, dim)}
    for i in range(s.depth):
        for part, shape in (("norm1", (dim,)), ("norm2", (dim,)), ("attn.qkv", (3 * dim, dim)),
                            ("attn.proj", (dim, dim)), ("mlp.fc1", (hidden, dim)), ("mlp.fc2", (dim, hidden))):
            shapes[f"blocks.{i}.{part}.weight"] = shape
            shapes[f"blocks.{i}.{part}.bias"] = (shape[0],)
    return {"module.backbone." + k: torch.zeros(()).expand(shape) for k, shape in shapes.items()}


def test_ambiguous_size_asks_for_size(tmp_path: Path) -> None:
    """vit-g (22 heads) and the 16-head giant share every weight shape: no silent guess."""
    from typer.testing import CliRunner

    from jepa_edge.cli import app

    state = _shaped("vit-g")
    torch.save({"encoder": state}, tmp_path / "vitg.pt")
    assert (tmp_path / "vitg.pt").stat().st_size < 1_000_000  # stride-0 views save one element each
    res = CliRunner().invoke(app, ["echo", "import-weights", str(tmp_path / "vitg.pt"), str(tmp_path / "g")])
    text = " ".join(res.output.split())
    assert res.exit_code == 2 and "vitg.pt: width 1408, depth 40, MLP 6144 fits several sizes" in text
    assert "vit-g (22 heads), vit-g-16h (16 heads)" in text and "--size" in text
    plain = strip_prefixes(state)
    assert infer_spec(plain, "vitg.pt", size="vit-g").size == "vit-g"
    assert infer_spec(plain, "vitg.pt", size="vit-g-16h").size == "vit-g-16h"
    with pytest.raises(ImportError_, match=r"vitg\.pt: width 1408, depth 40, MLP 6144 does not fit size vit-h"):
        infer_spec(plain, "vitg.pt", size="vit-h")
    with pytest.raises(ImportError_, match=r"vitg\.pt: unknown model size 'vit-x'; choose from"):
        infer_spec(plain, "vitg.pt", size="vit-x")


def test_vit_h_imports_with_explicit_size() -> None:
    """Every tensor of a full ViT-H (1280 wide, 32 deep, MLP 5120) maps onto vit-h with 16 heads; built on the meta
    device so that no 632M-parameter model is allocated."""
    assert model_size("vit-h").heads == 16
    with torch.device("meta"):
        encoder, report = encoder_from_checkpoint({"encoder": _shaped("vit-h")}, "vith.pt", size="vit-h")
    assert report.ok and report.size_given and report.section == "encoder" and report.spec["size"] == "vit-h"
    assert len(report.loaded) == 4 + 32 * 12 and report.ignored == ["pos_embed"]
    assert encoder.blocks[0].attn.heads == 16 and encoder.rope.part == 2 * ((1280 // 16 // 3) // 2)
    assert infer_spec(strip_prefixes(_shaped("vit-h")), "vith.pt").size == "vit-h"  # unambiguous without a size
