"""The one size table, ECG-JEPA tokenisation and masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jepa_edge.jepa.masks import EcgBlockMasks
from jepa_edge.models import MODEL_SIZES, build_ecg_encoder, count_parameters, ecg_predictor, model_size


@pytest.mark.parametrize(
    ("size", "low", "high"),
    [("vit-xs", 3.5e6, 3.7e6), ("vit-s", 14.2e6, 14.4e6), ("vit-b", 85.1e6, 85.3e6)],  # ECG-JEPA's XS/S/B
)
def test_ecg_parameter_counts_match_ecg_jepa(size: str, low: float, high: float) -> None:
    assert low <= count_parameters(build_ecg_encoder(size)) <= high


def test_large_sizes_match_vjepa2() -> None:
    with torch.device("meta"):  # no memory for a billion parameters
        assert 1.0e9 <= count_parameters(build_ecg_encoder("vit-g")) <= 1.1e9
        assert 0.29e9 <= count_parameters(build_ecg_encoder("vit-l")) <= 0.31e9
        assert 0.62e9 <= count_parameters(build_ecg_encoder("vit-h")) <= 0.64e9  # V-JEPA 2's released ViT-H
    assert list(MODEL_SIZES) == ["vit-tiny", "vit-xs", "vit-s", "vit-b", "vit-l", "vit-h", "vit-g", "vit-g-16h"]
    h, g, g16 = model_size("vit-h"), model_size("vit-g"), model_size("vit-g-16h")
    assert (h.dim, h.depth, h.heads, h.mlp_ratio) == (1280, 32, 16, 4.0)  # upstream vit_huge
    assert (g.heads, g16.heads) == (22, 16) and (g.dim, g.depth, g.mlp_ratio) == (g16.dim, g16.depth, g16.mlp_ratio)
    with pytest.raises(ValueError, match="unknown model size 'vit-x'"):
        model_size("vit-x")


def test_ecg_tokens_mix_all_leads_per_50ms_patch() -> None:
    enc = build_ecg_encoder("vit-tiny").eval()
    x = torch.randn(2, 12, 5000)
    tokens = enc(x)
    assert tokens.shape == (2, 200, 192)
    y = x.clone()
    y[:, 7, 25:50] += 1.0  # change one lead inside patch 1 only: the patch embedding of token 1 changes
    delta = (enc.patch_embed(y) - enc.patch_embed(x)).abs().sum(dim=1)[0]
    assert delta[1] > 0 and delta[0] == 0 and delta[2] == 0
    with pytest.raises(ValueError, match=r"expects \(batch, 12 leads, 5000 samples\), got \(2, 2, 5000\)"):
        enc(torch.randn(2, 2, 5000))


def test_context_encoder_and_predictor_shapes() -> None:
    enc = build_ecg_encoder("vit-tiny")
    pred = ecg_predictor(enc)
    keep, target = EcgBlockMasks(enc.num_patches)(3, np.random.default_rng(0))
    x = torch.randn(3, 12, 5000)
    z = enc(x, keep)
    p = pred(z, keep, target)
    assert z.shape == (3, keep.shape[1], 192) and p.shape == (3, target.shape[1], 192)


def test_masks_are_time_blocks_with_ecg_jepa_ratios() -> None:
    masks = EcgBlockMasks(200, keep_ratio=(0.15, 0.25), min_block=10)
    rng = np.random.default_rng(1)
    for _ in range(50):
        keep, target = masks(4, rng)
        assert 30 <= keep.shape[1] <= 50
        for k, t in zip(keep.numpy(), target.numpy(), strict=True):
            assert np.array_equal(np.sort(np.concatenate([k, t])), np.arange(200))
            runs = np.split(t, np.flatnonzero(np.diff(t) != 1) + 1)
            assert min(len(r) for r in runs) >= 10
    a = masks(4, np.random.default_rng(5))
    b = masks(4, np.random.default_rng(5))
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
