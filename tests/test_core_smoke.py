"""The shared classifier fixture is a real classifier: it beats chance on real held-out PTB-XL records."""

import numpy as np
import torch

from jepa_edge.data.datasets import preprocess_set
from jepa_edge.data.preprocess import EcgPreprocessing
from jepa_edge.models.checkpoint import load_classifier


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    order = np.argsort(s)
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    pos = y == 1
    return (ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * (~pos).sum())


def test_classifier_fixture_beats_chance(ecg_classifier_dir, ptbxl_super):
    model, meta = load_classifier(ecg_classifier_dir)
    pre = EcgPreprocessing.from_dict(meta["preprocessing"])
    test = ptbxl_super["test"]
    with torch.no_grad():
        logits, emb = model(torch.from_numpy(preprocess_set(test.signals, test.fs, pre)))
    aucs = [_auc(test.labels[:, k], logits[:, k].numpy()) for k in range(test.labels.shape[1])
            if 0 < test.labels[:, k].sum() < len(test.labels)]
    assert emb.shape == (len(test), model.encoder.dim)
    assert np.mean(aucs) > 0.6
