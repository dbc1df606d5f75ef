"""The ECG modality for the shared JEPA trainer: PTB-XL, any WFDB folder, or packed shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import ConfigError
from ..data.datasets import EcgWindows
from ..data.ecg import find_records, iter_records
from ..data.errors import DataError, SkipReport
from ..data.pack import is_pack
from ..data.packed import EpochPlan, PackedWindows
from ..data.paths import data_root, find_ptbxl
from ..data.preprocess import EcgPreprocessing
from ..data.ptbxl import SPLIT_FOLDS, PtbXl
from ..models.ecg import EcgEncoder, EcgEncoderSpec, ecg_predictor
from .config import PretrainConfig
from .masks import EcgBlockMasks
from .sampling import RandomWindows
from .task import JepaTask


def load_pretraining_signals(
    data: str | Path | None, pre: EcgPreprocessing, skip_bad: bool = False, max_records: int | None = None,
    records: list[str] | None = None,
) -> tuple[list[np.ndarray], dict]:
    """Filtered (not yet normalised) records at `pre.fs` in `pre.leads` order, and a data summary.

    PTB-XL folders contribute their training folds only (validation and test stay unseen); of a WFDB folder,
    `records` (names without extension) keeps only those, e.g. the training half of an inter-patient split.
    """
    root = Path(data) if data is not None else data_root()
    ptbxl = find_ptbxl(root)
    report = SkipReport()
    if ptbxl is not None:
        db = PtbXl(ptbxl)
        rows = db.table[db.table["strat_fold"].isin(SPLIT_FOLDS["train"])]
        paths = [ptbxl / f for f in rows["filename_hr"]]
        source = f"PTB-XL folds 1-8 at {ptbxl}"
    else:
        paths = find_records(root)
        source = f"WFDB folder {root}"
        if records is not None:
            wanted = {str(r) for r in records}
            unknown = sorted(wanted - {Path(p).stem for p in paths})
            if unknown:
                raise DataError(f"{root}: no record(s) {unknown} to pretrain on")
            paths = [p for p in paths if Path(p).stem in wanted]
            source += f", records {sorted(wanted)}"
    if max_records is not None:
        paths = paths[:max_records]
    records = [
        pre.filter_record(rec.signal, rec.fs)
        for rec in iter_records(paths, leads=pre.leads, skip_bad=skip_bad, report=report)
    ]
    if not records:
        raise DataError(f"{root}: no usable records ({report.summary()})")
    summary = {"source": source, "records": len(records), "load_report": report.to_dict()}
    return records, summary


# ECG options in `cfg.extra`: the model input, when it is not the 12-lead 10 s default (e.g. a beat model's
# one lead, 3 s at 250 Hz: {"leads": ["II"], "fs": 250, "window_s": 3.0}).
EXTRA_KEYS = frozenset({"leads", "fs", "window_s", "bandpass_hz", "records"})


def ecg_preprocessing(extra: dict | None) -> EcgPreprocessing:
    """The base (unfitted) preprocessing a pretraining run asks for in `cfg.extra`."""
    extra = {k: v for k, v in (extra or {}).items() if k != "records"}
    unknown = sorted(set(extra) - EXTRA_KEYS)
    if unknown:
        raise ConfigError(f"unknown ECG option(s) in extra: {unknown}; known: {sorted(EXTRA_KEYS)}")
    if "leads" in extra:
        extra["leads"] = tuple(extra["leads"])
    if "bandpass_hz" in extra:
        extra["bandpass_hz"] = tuple(float(v) for v in extra["bandpass_hz"])
    if "window_s" in extra:
        extra["hop_s"] = min(1.0, float(extra["window_s"]))
    return EcgPreprocessing(**extra)


def build_ecg_task(cfg: PretrainConfig) -> JepaTask:
    if cfg.data is not None and is_pack(cfg.data):
        return build_packed_ecg_task(cfg)
    base = ecg_preprocessing(cfg.extra)
    names = (cfg.extra or {}).get("records")
    records, summary = load_pretraining_signals(cfg.data, base, cfg.skip_bad, cfg.max_records,
                                                 list(names) if names is not None else None)
    if len({r.shape[1] for r in records}) == 1:
        pre = base.fit(np.stack(records))
    else:  # records of different lengths: fit on their concatenation
        pre = base.fit(np.concatenate(records, axis=1)[None])
    signals = [pre.normalise(r) for r in records]
    windows = EcgWindows(signals, pre.window)
    encoder = EcgEncoder(EcgEncoderSpec(size=cfg.model, leads=pre.num_leads, samples=pre.window, patch=cfg.patch))
    masks = EcgBlockMasks(encoder.num_patches, tuple(cfg.keep_ratio), cfg.min_block)
    return JepaTask(
        encoder=encoder,
        predictor=ecg_predictor(encoder),
        windows=windows,
        plan=RandomWindows(windows.max_offsets, seed=cfg.seed),
        masks=masks,
        meta={"modality": "ecg", "preprocessing": pre.to_dict(), "data": summary},
    )


def build_packed_ecg_task(cfg: PretrainConfig) -> JepaTask:
    """`cfg.data` is a pack folder: memory-mapped shards already filtered at the model rate, normalisation
    constants from the pack index, and an epoch plan that visits every window slot once per epoch."""
    windows = PackedWindows(cfg.data, max_records=cfg.max_records)
    pre = windows.pre
    encoder = EcgEncoder(EcgEncoderSpec(size=cfg.model, leads=pre.num_leads, samples=pre.window, patch=cfg.patch))
    return JepaTask(
        encoder=encoder,
        predictor=ecg_predictor(encoder),
        windows=windows,
        plan=EpochPlan(windows.lengths, pre.window, seed=cfg.seed),
        masks=EcgBlockMasks(encoder.num_patches, tuple(cfg.keep_ratio), cfg.min_block),
        meta={"modality": "ecg", "preprocessing": pre.to_dict(), "data": windows.summary},
    )
