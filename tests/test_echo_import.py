"""V-JEPA 2 checkpoint import: key mapping both ways, weights_only loading, clear missing/unexpected reports."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from jepa_edge.models.checkpoint import load_encoder
from jepa_edge.models.video import VideoEncoder, VideoEncoderSpec
from jepa_edge.models.vjepa_import import ImportError_, import_vjepa, import_vjepa_encoder, to_vjepa_state

VJEPA_TINY = VideoEncoderSpec(size="vit-tiny", frames=8, image_size=48, bias=True, norm_eps=1e-6)

@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Two threads on two shared cores thrash; restore the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)



class _Payload:
    """Unpickling this would run code; weights_only must refuse it."""

    def __reduce__(self):
        return (print, ("unpickled code ran",))


def _training_checkpoint(path: Path, encoder: VideoEncoder) -> Path:
    """A checkpoint laid out like V-JEPA 2's training saves (DDP + multi-sequence wrapper prefixes)."""
    state = to_vjepa_state(encoder)
    torch.save({"encoder": {k: v + 1 for k, v in state.items()}, "target_encoder": state,
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
    assert report.ok and report.section == "target_encoder" and not report.missing and not report.unexpected
    assert report.spec["size"] == "vit-tiny" and report.spec["pos_embed"] == "rope" and report.spec["bias"]
    assert any("predictor" in note for note in report.notes)
    x = torch.randn(2, 3, 8, 48, 48)
    torch.testing.assert_close(imported.eval()(x), original(x))
    online, _ = import_vjepa_encoder(ckpt, section="encoder", frames=8, image_size=48)
    torch.testing.assert_close(online.patch_embed.weight, original.patch_embed.weight + 1)
    folder, _ = import_vjepa(ckpt, tmp_path / "imported", frames=8, image_size=48)
    back, meta = load_encoder(folder)
    assert meta["source"] == "vjepa2-import" and meta["import_report"]["loaded"] == len(original.state_dict())
    assert meta["preprocessing"]["kind"] == "echo"
    torch.testing.assert_close(back.eval()(x), original(x))
    bare = tmp_path / "bare.pt"  # a hub-style file: just the (prefix-free) state dict
    torch.save({k.removeprefix("module.backbone."): v for k, v in to_vjepa_state(original).items()}, bare)
    assert import_vjepa_encoder(bare, frames=8, image_size=48)[1].ok


def test_sincos_checkpoint_pos_embed_is_checked(tmp_path: Path) -> None:
    spec = VideoEncoderSpec(size="vit-tiny", frames=8, image_size=48, bias=True, pos_embed="sincos")
    enc = VideoEncoder(spec)
    torch.save({"target_encoder": to_vjepa_state(enc)}, tmp_path / "v1.pt")
    imported, report = import_vjepa_encoder(tmp_path / "v1.pt", frames=8, image_size=48)
    assert imported.spec.pos_embed == "sincos" and report.ignored == ["pos_embed"] and not report.notes[:-1]


def test_missing_and_unexpected_keys_are_reported(tmp_path: Path) -> None:
    state = to_vjepa_state(VideoEncoder(VJEPA_TINY))
    del state["module.backbone.blocks.2.attn.qkv.weight"]
    state["module.backbone.blocks.0.ls1.gamma"] = torch.ones(192)
    torch.save({"target_encoder": state}, tmp_path / "odd.pt")
    with pytest.raises(ImportError_, match=r"odd\.pt \[target_encoder\]: .* 1 missing, 1 unexpected") as err:
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
