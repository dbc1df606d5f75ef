"""Video ViT (tubelet 2x16x16, V-JEPA 2 3D RoPE / sin-cos), size table, 3D multiblock masks, checkpoint round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from jepa_edge.jepa.masks3d import LONG_RANGE, SHORT_RANGE, MultiblockMasks3d
from jepa_edge.models.checkpoint import build_encoder, load_encoder, save_model
from jepa_edge.models.video import (
    Rope3d,
    VideoEncoder,
    VideoEncoderSpec,
    build_video_encoder,
    grid_coordinates,
    video_predictor,
)
from jepa_edge.models.vit import count_parameters

TINY = VideoEncoderSpec(size="vit-tiny", frames=8, image_size=48)

pytestmark = pytest.mark.usefixtures("one_torch_thread")



def test_param_counts_follow_the_one_size_table() -> None:
    """vit-l ~300 M and vit-g ~1.0-1.1 B as V-JEPA 2 / EchoJEPA (built on the meta device: no memory)."""
    with torch.device("meta"):
        large = count_parameters(VideoEncoder(VideoEncoderSpec(size="vit-l")))
        giant = count_parameters(VideoEncoder(VideoEncoderSpec(size="vit-g", bias=True)))
    assert 290e6 < large < 320e6
    assert 1.0e9 < giant < 1.1e9


def test_shapes_context_tokens_and_errors() -> None:
    torch.manual_seed(0)
    enc = VideoEncoder(TINY).eval()
    x = torch.randn(2, 3, 8, 48, 48)
    assert TINY.grid == (4, 3, 3) and enc(x).shape == (2, 36, 192)
    keep = torch.tensor([[0, 5, 9, 30], [1, 2, 3, 35]])
    assert enc(x, keep).shape == (2, 4, 192)
    pred = video_predictor(enc)
    assert pred(enc(x, keep), keep, torch.tensor([[1, 2], [4, 5]])).shape == (2, 2, 192)
    with pytest.raises(ValueError, match=r"expects \(batch, 3, 8, 48, 48\) clips"):
        enc(torch.randn(2, 3, 16, 48, 48))
    with pytest.raises(ValueError, match="not a multiple of the tubelet"):
        VideoEncoderSpec(frames=7)
    with pytest.raises(ValueError, match="unknown model size"):
        VideoEncoderSpec(size="vit-huge")
    with pytest.raises(ValueError, match="unknown video encoder field"):
        build_video_encoder({"size": "vit-tiny", "colour": True})
    sincos = VideoEncoder(VideoEncoderSpec(size="vit-tiny", frames=8, image_size=48, pos_embed="sincos", registers=1))
    assert sincos(x, keep).shape == (2, 4, 192)


def _reference_rotation(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """V-JEPA 2's rotation written out pair by pair: channel pair (2j, 2j+1) turns by pos * omega_f, where the
    released weights tile the frequencies (f = j for the first half of the pairs, j - d/4 for the second)."""
    d = x.shape[-1]
    omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float64) / (d / 2))
    out = torch.empty_like(x, dtype=torch.float64)
    for j in range(d // 2):
        f_sin = omega[(2 * j) % (d // 2)]
        f_cos = omega[(2 * j + 1) % (d // 2)]
        a, b = x[..., 2 * j].double(), x[..., 2 * j + 1].double()
        out[..., 2 * j] = a * torch.cos(pos * omega[(2 * j) % (d // 2)]) - b * torch.sin(pos * f_sin)
        out[..., 2 * j + 1] = b * torch.cos(pos * f_cos) + a * torch.sin(pos * f_cos)
    return out


def test_rope_matches_vjepa2_layout_and_is_relative() -> None:
    head_dim = 64
    rope = Rope3d(head_dim)
    assert rope.part == 20  # 2 * ((64 // 3) // 2) channels each for time, rows, columns; 4 left alone
    torch.manual_seed(1)
    q = torch.randn(2, 3, 36, head_dim)
    pos = grid_coordinates((4, 3, 3)).unsqueeze(0).expand(2, -1, -1)
    out = rope(q, pos)
    torch.testing.assert_close(out[..., 60:], q[..., 60:])
    for axis in range(3):
        part = slice(axis * 20, (axis + 1) * 20)
        expected = _reference_rotation(q[..., part], pos[:, None, :, axis].double())
        torch.testing.assert_close(out[..., part].double(), expected, atol=1e-5, rtol=1e-5)
    # position 0 is the identity; tiling (not interleaving) the frequencies is V-JEPA 2's known quirk, kept
    # because the released weights were trained with it (so the turn is not a pure rotation per pair)
    torch.testing.assert_close(rope(q, torch.zeros_like(pos)), q)
    with_register = Rope3d(head_dim, registers=1)(torch.cat([q[:, :, :1], q], dim=2), pos)
    torch.testing.assert_close(with_register[:, :, 1:], out)
    torch.testing.assert_close(with_register[:, :, 0], q[:, :, 0])


def test_encoder_folder_round_trip(tmp_path: Path) -> None:
    enc = VideoEncoder(TINY).eval()
    x = torch.randn(1, 3, 8, 48, 48)
    save_model(tmp_path / "enc", enc, {"kind": "encoder", "encoder": enc.spec.to_dict()})
    back, meta = load_encoder(tmp_path / "enc")
    assert meta["encoder"]["modality"] == "echo" and isinstance(back, VideoEncoder)
    torch.testing.assert_close(back.eval()(x), enc(x))
    assert isinstance(build_encoder(TINY.to_dict()), VideoEncoder)


def test_multiblock_masks_follow_vjepa2() -> None:
    masks = MultiblockMasks3d((8, 14, 14))
    rng = np.random.default_rng(0)
    for family in (SHORT_RANGE, LONG_RANGE):
        size = masks.block_size(family, rng)
        assert size[0] == 8  # the whole clip in time
        assert 0.5 * family.spatial_scale * 196 <= size[1] * size[2] <= 1.6 * family.spatial_scale * 196
        m = masks.sample_one(family, size, rng).reshape(8, 14, 14)
        assert (m == m[0]).all() and 0 < (~m).sum()  # identical in every frame, context left
    seen = set()
    for step in range(12):
        keep, target = masks(4, np.random.default_rng([0, step]))
        assert keep.dtype == target.dtype == torch.int64 and keep.shape[0] == target.shape[0] == 4
        for k, t in zip(keep, target, strict=True):
            assert not set(k.tolist()) & set(t.tolist())
            assert k.max() < 8 * 14 * 14
        seen.add(round(target.shape[1] / (8 * 196), 1))
    assert min(seen) < 0.75 < max(seen)  # both short-range and long-range families were drawn
    tiny = MultiblockMasks3d((4, 3, 3))
    keep, target = tiny(8, np.random.default_rng(1))
    assert keep.shape[1] >= 1 and target.shape[1] >= 1
    with pytest.raises(ValueError, match="grid must be"):
        MultiblockMasks3d((4, 0, 3))


@pytest.mark.heavy
def test_echo_classifier_exports_to_onnx_with_dynamic_batch(tmp_path: Path) -> None:
    """The 3D-RoPE video classifier goes through the dynamo ONNX exporter and onnxruntime agrees (~40 s here)."""
    import warnings

    import onnxruntime as ort

    from jepa_edge.models.heads import Classifier, LinearHead

    model = Classifier(VideoEncoder(TINY), LinearHead(192, 1)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (torch.randn(2, 3, 8, 48, 48),), input_names=["clip"],
                                    output_names=["logits", "embedding"], opset_version=18, dynamo=True,
                                    dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=4096)}})
    session = ort.InferenceSession(program.model_proto.SerializeToString())
    x = torch.randn(3, 3, 8, 48, 48)
    logits, emb = session.run(None, {"clip": x.numpy()})
    with torch.no_grad():
        ref_logits, ref_emb = model(x)
    np.testing.assert_allclose(logits, ref_logits.numpy(), atol=1e-4)
    np.testing.assert_allclose(emb, ref_emb.numpy(), atol=1e-4)
