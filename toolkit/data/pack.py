"""Pack WFDB folders and PTB-XL into memory-mappable shards, so pretraining never parses a header at run time.

Why `.npy` shards and not zarr: every window the loader reads is one contiguous slice of one array, which
`np.load(mmap_mode="r")` serves straight from the page cache with no codec, no chunk index and no extra
dependency (zarr is not installed here, and its per-chunk decompression would cost more CPU than the loader
budget allows). A shard is a plain `.npy` file, so any tool that reads numpy can inspect it.

Why float16 by default: the shards hold band-passed millivolts. float16 keeps 11 significant bits, i.e. a
rounding error below 0.05 % of the value (about 0.5 microvolt at 1 mV), finer than the 1-5 microvolt
resolution of the source ADCs (PTB-XL 1 uV/LSB, MIT-BIH 5 uV/LSB), and halves disk, page cache and memory
bandwidth against float32. Choose float32 when bit-exact agreement with the float64 pipeline matters.

Layout of a pack folder::

    plan.json                 sources, settings and the record -> shard assignment (checked on resume)
    shards/shard_00000.npy    1-D: each record stored whole as its (leads, samples) block, one after another
    shards/shard_00000.json   that shard's records, skipped files, sha256 and normalisation statistics
    report.json               how many records were packed and every skipped file with its reason
    index.json                written last: records (id, source, original fs, duration, labels), shards with
                              sha256, and the preprocessing with per-lead mean/std fitted on the packed data

Shards hold the signal resampled to the model rate, in the model's lead order, and already band-passed
(the causal filter runs from each record's first sample, exactly as `EcgPreprocessing.filter_record`), so
training only slices, converts and normalises. Shards are planned up front and written atomically; a rerun
into the same folder skips every finished shard whose checksum still matches.
"""

from __future__ import annotations

import io
import json
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import wfdb

from ..io import atomic_write_bytes, atomic_write_json, sha256_bytes, sha256_file
from .ecg import find_records, read_record
from .errors import DataError, RecordError, SkipReport
from .paths import safe_relative_path
from .preprocess import STANDARD_LEADS, EcgPreprocessing
from .ptbxl import SPLIT_FOLDS, PtbXl

PACK_FORMAT = "jepa-edge-pack"
PACK_VERSION = 1
DTYPES = ("float16", "float32")


class PackError(DataError):
    """A pack folder is incomplete, was made with other settings, or a shard fails its checksum."""


@dataclass(frozen=True)
class PackConfig:
    """Settings of one pack; they are stored in plan.json and must match when a pack is resumed."""

    fs: int = 500
    leads: tuple[str, ...] = STANDARD_LEADS
    window_s: float = 10.0
    dtype: str = "float16"
    records_per_shard: int = 1024
    workers: int = 1
    skip_bad: bool = True
    ptbxl_folds: tuple[int, ...] | None = SPLIT_FOLDS["train"]  # None: every fold (val/test leak into pretraining)
    ptbxl_label_set: str = "superdiagnostic"
    max_records_per_source: int | None = None
    verify_existing: bool = True

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise DataError(f"pack dtype {self.dtype!r} not supported; choose from {DTYPES}")
        if self.records_per_shard < 1:
            raise DataError(f"records_per_shard must be >= 1, got {self.records_per_shard}")
        if self.workers < 1:
            raise DataError(f"workers must be >= 1, got {self.workers}")
        self.preprocessing()  # validates fs, leads and window

    def preprocessing(self) -> EcgPreprocessing:
        return EcgPreprocessing(fs=self.fs, window_s=self.window_s, leads=tuple(self.leads))

    def plan_dict(self) -> dict[str, Any]:
        """The settings that change shard contents (workers and verification do not)."""
        d = asdict(self)
        for key in ("workers", "verify_existing"):
            d.pop(key)
        d["leads"] = list(self.leads)
        d["ptbxl_folds"] = list(self.ptbxl_folds) if self.ptbxl_folds is not None else None
        return d


@dataclass(frozen=True)
class RecordJob:
    """One record to pack: where it is, what to call it, and the labels its source knows."""

    source: str
    record_id: str
    path: str
    labels: tuple[str, ...] | None = None
    fold: int | None = None


@dataclass
class PackResult:
    out: Path
    records: int
    shards: int
    reused_shards: int
    report: SkipReport = field(default_factory=SkipReport)


# -- planning -----------------------------------------------------------------------------------

def _unique_name(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}-{n}"
    taken.add(candidate)
    return candidate


def _dx_labels(base: Path) -> tuple[str, ...] | None:
    """Diagnosis codes from a `# Dx: a,b` header comment (PhysioNet/CinC 2020-21 databases), if any."""
    try:
        comments = wfdb.rdheader(str(base)).comments or []
    except Exception:  # a broken header is reported when the record itself is read
        return None
    for line in comments:
        key, _, value = line.partition(":")
        if key.strip().lower() == "dx" and value.strip():
            return tuple(code.strip() for code in value.split(",") if code.strip())
    return None


def plan_sources(sources: Sequence[str | Path], cfg: PackConfig) -> tuple[list[RecordJob], list[dict[str, Any]]]:
    """Every record to pack, in a fixed order, from PTB-XL folders, WFDB folders or single records."""
    jobs: list[RecordJob] = []
    described: list[dict[str, Any]] = []
    taken: set[str] = set()
    if not sources:
        raise DataError("no sources to pack: give at least one WFDB folder, PTB-XL folder or record")
    for src in sources:
        root = Path(src)
        name = _unique_name(root.with_suffix("").name if root.suffix == ".hea" else root.name, taken)
        found: list[RecordJob] = []
        if (root / "ptbxl_database.csv").is_file():
            db = PtbXl(root)
            y, classes = db.labels(cfg.ptbxl_label_set)
            folds = db.table["strat_fold"].to_numpy()
            for row, (fold, filename) in enumerate(zip(folds, db.table["filename_hr"], strict=True)):
                fold = int(fold)
                if cfg.ptbxl_folds is not None and fold not in cfg.ptbxl_folds:
                    continue
                rel = safe_relative_path(str(filename), f"{root / 'ptbxl_database.csv'}: filename_hr")
                labels = tuple(c for c, v in zip(classes, y[row], strict=True) if v)
                found.append(RecordJob(name, rel, str(root / rel), labels, fold))
            kind = f"ptbxl ({cfg.ptbxl_label_set} labels, folds {cfg.ptbxl_folds or 'all'})"
        elif root.is_dir():
            for base in find_records(root):
                found.append(RecordJob(name, str(base.relative_to(root)), str(base), _dx_labels(base)))
            kind = "wfdb folder"
        elif root.with_suffix(".hea").is_file():
            base = root.with_suffix("")
            found.append(RecordJob(name, base.name, str(base), _dx_labels(base)))
            kind = "wfdb record"
        else:
            raise DataError(f"{root}: not a PTB-XL folder, a folder of WFDB records or a WFDB record")
        if cfg.max_records_per_source is not None:
            found = found[: cfg.max_records_per_source]
        if not found:
            raise DataError(f"{root}: no records selected to pack (kind: {kind})")
        described.append({"name": name, "path": str(root.resolve()), "kind": kind, "records": len(found)})
        jobs.extend(found)
    return jobs, described


def _shard_name(i: int) -> str:
    return f"shard_{i:05d}"


# -- packing one shard (runs in a worker process) ----------------------------------------------

def _read_filtered(job: RecordJob, pre: EcgPreprocessing) -> tuple[np.ndarray, float]:
    rec = read_record(job.path, leads=pre.leads)
    filtered = pre.filter_record(rec.signal, rec.fs)
    if filtered.shape[1] < pre.window:
        raise RecordError(job.path + ".hea", f"{rec.duration_s:.2f} s is shorter than one {pre.window_s:g} s "
                                             "training window", "too-short")
    return filtered, rec.fs


def pack_shard(out: str, shard: int, jobs: list[RecordJob], cfg: PackConfig) -> dict[str, Any]:
    """Read, filter and write one shard; returns its metadata (also written beside it as JSON)."""
    pre = cfg.preprocessing()
    dtype = np.dtype(cfg.dtype)
    parts: list[np.ndarray] = []
    entries: list[dict[str, Any]] = []
    skipped = SkipReport()
    count = 0
    mean = np.zeros(pre.num_leads)
    m2 = np.zeros(pre.num_leads)
    start = 0
    for job in jobs:
        try:
            x, fs_in = _read_filtered(job, pre)
        except RecordError as err:
            if not cfg.skip_bad:
                raise
            skipped.add(err)
            continue
        skipped.loaded += 1
        n = x.shape[1]
        # Chan et al. pairwise update of per-lead mean and sum of squared deviations (float64).
        rec_mean = x.mean(axis=1)
        rec_m2 = ((x - rec_mean[:, None]) ** 2).sum(axis=1)
        delta = rec_mean - mean
        total = count + n
        mean = mean + delta * n / total
        m2 = m2 + rec_m2 + delta**2 * count * n / total
        count = total
        parts.append(x.astype(dtype).ravel())  # C order: lead-major, so a window is `leads` contiguous runs
        entries.append({"id": job.record_id, "source": job.source, "path": job.path, "fs_original": fs_in,
                        "duration_s": n / pre.fs, "samples": n, "offset": start,
                        "labels": list(job.labels) if job.labels is not None else None, "fold": job.fold})
        start += x.size
    array = np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
    return _write_shard(out, shard, array, entries, skipped,
                        {"stats": {"count": count, "mean": mean.tolist(), "m2": m2.tolist()}})


def _write_shard(out: str | Path, shard: int, array: np.ndarray, entries: list[dict[str, Any]],
                 skipped: SkipReport, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write a shard's .npy and its metadata JSON atomically (the JSON last: it marks the shard finished)."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    data = buf.getvalue()
    name = _shard_name(shard)
    folder = Path(out) / "shards"
    atomic_write_bytes(folder / f"{name}.npy", data)
    meta = {"shard": shard, "file": f"shards/{name}.npy", "sha256": sha256_bytes(data), "bytes": len(data),
            "shape": list(array.shape), "dtype": str(array.dtype), "records": entries, "skip": skipped.to_dict(),
            **(extra or {})}
    atomic_write_json(folder / f"{name}.json", meta)
    return meta


def _finished_shard(out: Path, shard: int, verify: bool) -> dict[str, Any] | None:
    """The metadata of a shard a previous run completed (and whose bytes still match), else None."""
    name = _shard_name(shard)
    meta_file = out / "shards" / f"{name}.json"
    npy = out / "shards" / f"{name}.npy"
    if not (meta_file.is_file() and npy.is_file()):
        return None
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if npy.stat().st_size != meta.get("bytes") or (verify and sha256_file(npy) != meta.get("sha256")):
        return None
    return meta


# -- the whole pack -------------------------------------------------------------------------------

def _combine_stats(metas: list[dict[str, Any]], leads: int) -> tuple[np.ndarray, np.ndarray, int]:
    count, mean, m2 = 0, np.zeros(leads), np.zeros(leads)
    for meta in metas:
        s = meta["stats"]
        n = int(s["count"])
        if n == 0:
            continue
        delta = np.asarray(s["mean"]) - mean
        total = count + n
        mean = mean + delta * n / total
        m2 = m2 + np.asarray(s["m2"]) + delta**2 * count * n / total
        count = total
    return mean, m2, count


def _run_shards(
    out: Path,
    modality: str,
    cfg: Any,
    jobs: list,
    described: list[dict[str, Any]],
    shard_fn: Callable[[str, int, list, Any], dict[str, Any]],
    progress: Callable[[int, int], None] | None,
) -> tuple[list[dict[str, Any]], int, SkipReport]:
    """Plan shards, refuse a folder planned differently, reuse finished shards, pack the rest in parallel.

    Returns every shard's metadata in order, how many were reused, and the merged skip report (also
    written to report.json).
    """
    shards = [jobs[i : i + cfg.records_per_shard] for i in range(0, len(jobs), cfg.records_per_shard)]
    plan = {"format": PACK_FORMAT, "version": PACK_VERSION, "modality": modality, "config": cfg.plan_dict(),
            "sources": described, "shards": [[asdict(j) for j in chunk] for chunk in shards]}
    plan = json.loads(json.dumps(plan, default=str))
    plan_file = out / "plan.json"
    if plan_file.is_file():
        try:
            previous = json.loads(plan_file.read_text())
        except json.JSONDecodeError as exc:
            raise PackError(f"{plan_file}: unreadable ({exc}); remove the folder to pack again") from exc
        if plan != previous:
            raise PackError(f"{out}: already holds a pack planned from other sources or settings; "
                            "pack into a new folder (or delete this one)")
    elif out.exists() and any(out.iterdir()):
        raise PackError(f"{out}: exists and is not a pack folder; choose an empty or new folder")
    atomic_write_json(plan_file, plan)

    metas: dict[int, dict[str, Any]] = {}
    todo = []
    for i in range(len(shards)):
        meta = _finished_shard(out, i, cfg.verify_existing)
        if meta is not None:
            metas[i] = meta
        else:
            todo.append(i)
    reused = len(metas)
    if progress:
        progress(reused, len(shards))
    if todo and cfg.workers > 1:
        ctx = multiprocessing.get_context("spawn")  # no inherited threads or locks from the parent
        with ProcessPoolExecutor(max_workers=min(cfg.workers, len(todo)), mp_context=ctx) as pool:
            futures = {pool.submit(shard_fn, str(out), i, shards[i], cfg): i for i in todo}
            for fut in as_completed(futures):
                metas[futures[fut]] = fut.result()
                if progress:
                    progress(len(metas), len(shards))
    else:
        for i in todo:
            metas[i] = shard_fn(str(out), i, shards[i], cfg)
            if progress:
                progress(len(metas), len(shards))

    ordered = [metas[i] for i in range(len(shards))]
    report = SkipReport()
    for meta in ordered:
        report.loaded += meta["skip"]["loaded"]
        report.skipped.extend((r["path"], r["reason"], r["problem"]) for r in meta["skip"]["records"])
    atomic_write_json(out / "report.json", {**report.to_dict(), "summary": report.summary(),
                                            "shards": len(shards), "reused_shards": reused})
    if report.loaded == 0:
        raise PackError(f"{out}: no usable records ({report.summary()}); see {out / 'report.json'}")
    return ordered, reused, report


def _index_records(ordered: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**entry, "shard": meta["shard"]} for meta in ordered for entry in meta["records"]]


def _index_shards(ordered: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: m[k] for k in ("shard", "file", "sha256", "bytes", "shape", "dtype")} for m in ordered]


def pack(
    sources: Sequence[str | Path],
    out: str | Path,
    cfg: PackConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PackResult:
    """Pack `sources` into `out` (resuming a partial pack there); returns counts and the skip report.

    Shards are independent jobs for a ProcessPoolExecutor (`cfg.workers` processes); `progress(done, total)`
    is called as shards finish. Bad records are skipped only when `cfg.skip_bad`, each with its reason in
    report.json; a folder planned with other sources or settings is refused rather than mixed.
    """
    cfg = cfg or PackConfig()
    out = Path(out)
    jobs, described = plan_sources(sources, cfg)
    ordered, reused, report = _run_shards(out, "ecg", cfg, jobs, described, pack_shard, progress)
    pre = cfg.preprocessing()
    mean, m2, count = _combine_stats(ordered, pre.num_leads)
    std = np.sqrt(m2 / count)
    std = np.where(std < 1e-6, 1.0, std)
    fitted = replace(pre, mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std), _sos_cache={})
    index = {
        "format": PACK_FORMAT,
        "version": PACK_VERSION,
        "modality": "ecg",
        "layout": "shards/*.npy are 1-D; a record is elements [offset, offset + leads * samples) of its shard, "
                  "reshaped to (leads, samples) in C order: band-passed millivolts at the model rate",
        "dtype": cfg.dtype,
        "fs": pre.fs,
        "leads": list(pre.leads),
        "window": pre.window,
        "preprocessing": fitted.to_dict(),
        "normalisation_samples": count,
        "config": cfg.plan_dict(),
        "sources": described,
        "shards": _index_shards(ordered),
        "records": _index_records(ordered),
        "report": "report.json",
        "summary": report.summary(),
    }
    atomic_write_json(out / "index.json", index)
    return PackResult(out=out, records=report.loaded, shards=len(ordered), reused_shards=reused, report=report)


# -- echo videos --------------------------------------------------------------------------------

@dataclass(frozen=True)
class EchoPackConfig:
    """Echo packs keep every source frame (so clip sampling at any start is exactly the unpacked path's),
    decoded once and resized to the model's square `size` as uint8; clips are normalised at read time."""

    frames: int = 16
    fps: float = 8.0
    size: int = 112
    colour: bool = False  # grey is what ultrasound is; the model replicates it to 3 channels
    records_per_shard: int = 256
    workers: int = 1
    skip_bad: bool = True
    max_records_per_source: int | None = None
    verify_existing: bool = True

    def __post_init__(self) -> None:
        if self.records_per_shard < 1:
            raise DataError(f"records_per_shard must be >= 1, got {self.records_per_shard}")
        if self.workers < 1:
            raise DataError(f"workers must be >= 1, got {self.workers}")
        self.preprocessing()  # validates frames, fps and size

    def preprocessing(self):  # -> EchoPreprocessing (imported lazily: it pulls in torch)
        from .echo import EchoPreprocessing

        return EchoPreprocessing(frames=self.frames, fps=self.fps, size=self.size)

    def plan_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("workers", "verify_existing"):
            d.pop(key)
        return d


@dataclass(frozen=True)
class VideoJob:
    source: str
    record_id: str
    path: str
    fps: float | None = None
    ef: float | None = None
    split: str | None = None
    view: str | None = None


def plan_videos(sources: Sequence[str | Path], cfg: EchoPackConfig) -> tuple[list[VideoJob], list[dict[str, Any]]]:
    """Every video to pack, in a fixed order: EchoNet-Dynamic folders (with EF and split), any folder of
    videos or frame folders, or single video files."""
    from .echo import VIDEO_SUFFIXES, EchoItem, index_folder

    if not sources:
        raise DataError("no sources to pack: give at least one folder of echo videos or a video file")
    jobs: list[VideoJob] = []
    described: list[dict[str, Any]] = []
    taken: set[str] = set()
    for src in sources:
        root = Path(src)
        if root.is_dir() and not (root / "fps.txt").is_file():
            items, kind, base = index_folder(root), "video folder", root
            if (root / "FileList.csv").is_file():
                kind = "echonet-dynamic"
        elif root.is_file() and root.suffix.lower() in VIDEO_SUFFIXES or (root / "fps.txt").is_file():
            items, kind, base = [EchoItem(root)], "video", root.parent
        else:
            raise DataError(f"{root}: not a folder of echo videos, an EchoNet-Dynamic folder or a video file")
        name = _unique_name(root.stem if root.is_file() else root.name, taken)
        found = [VideoJob(name, str(Path(item.path).relative_to(base)), str(item.path), item.fps, item.ef,
                          item.split, getattr(item, "view", None)) for item in items]
        if cfg.max_records_per_source is not None:
            found = found[: cfg.max_records_per_source]
        described.append({"name": name, "path": str(root.resolve()), "kind": kind, "records": len(found)})
        jobs.extend(found)
    return jobs, described


def pack_echo_shard(out: str, shard: int, jobs: list[VideoJob], cfg: EchoPackConfig) -> dict[str, Any]:
    """Decode, check and resize one shard of videos to uint8 (frames, size, size[, 3])."""
    from .echo import read_video

    pre = cfg.preprocessing()
    parts: list[np.ndarray] = []
    entries: list[dict[str, Any]] = []
    skipped = SkipReport()
    offset = 0
    for job in jobs:
        try:
            video = read_video(job.path, fps=job.fps, colour=cfg.colour)
            pre.frame_indices(video.num_frames, video.fps, 0, video.path)  # raises when too short for a clip
            frames = pre.resize_frames(video.frames)
        except RecordError as err:
            if not cfg.skip_bad:
                raise
            skipped.add(err)
            continue
        skipped.loaded += 1
        parts.append(frames.ravel())
        labels = {"ef": job.ef} if job.ef is not None else None
        entries.append({"id": job.record_id, "source": job.source, "path": job.path, "fps_original": video.fps,
                        "duration_s": video.duration_s, "frames": int(frames.shape[0]),
                        "shape": list(frames.shape), "offset": offset, "labels": labels, "split": job.split,
                        "view": job.view})
        offset += frames.size
    array = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint8)
    return _write_shard(out, shard, array, entries, skipped)


def pack_echo(
    sources: Sequence[str | Path],
    out: str | Path,
    cfg: EchoPackConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PackResult:
    """Pack echo videos into uint8 shards (same folder layout, checksums, resume and report as `pack`)."""
    cfg = cfg or EchoPackConfig()
    out = Path(out)
    jobs, described = plan_videos(sources, cfg)
    ordered, reused, report = _run_shards(out, "echo", cfg, jobs, described, pack_echo_shard, progress)
    index = {
        "format": PACK_FORMAT,
        "version": PACK_VERSION,
        "modality": "echo",
        "layout": "shards/*.npy are 1-D uint8; a video is elements [offset, offset + prod(shape)) of its shard, "
                  "reshaped to `shape` (frames, size, size[, 3]) at its original frame rate `fps_original`",
        "dtype": "uint8",
        "preprocessing": cfg.preprocessing().to_dict(),
        "config": cfg.plan_dict(),
        "sources": described,
        "shards": _index_shards(ordered),
        "records": _index_records(ordered),
        "report": "report.json",
        "summary": report.summary(),
    }
    atomic_write_json(out / "index.json", index)
    return PackResult(out=out, records=report.loaded, shards=len(ordered), reused_shards=reused, report=report)


def is_pack(path: str | Path) -> bool:
    """True for a completed pack folder (plan.json is written first, index.json last)."""
    root = Path(path)
    return (root / "plan.json").is_file() and (root / "index.json").is_file()
