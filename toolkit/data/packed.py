"""Reading packed shards for pretraining: a memory-mapped window Dataset and an epoch plan over it.

`PackedWindows` is indexed by `(record, offset)` like `EcgWindows`, so the trainer's seeded
`StepBatchSampler` decides every crop and DataLoader workers only fetch. `EpochPlan` is the trainer's
`BatchPlan` for packed data: a pure function of (seed, step) that walks a seeded permutation of every
window slot of the pack, epoch after epoch. Because the global batch of a step depends on nothing
else, DDP ranks slice the same global batch, and a run resumed mid-epoch reads exactly the windows the
interrupted run had not reached yet.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..data.errors import DataError
from ..io import sha256_file
from .pack import PACK_FORMAT, PACK_VERSION, PackError
from .paths import safe_relative_path
from .preprocess import EcgPreprocessing

Window = tuple[int, int]


def read_index(root: str | Path, modality: str | None = None) -> dict[str, Any]:
    """The index of a completed pack (of `modality`, when given), with a clear error for anything else."""
    index_file = Path(root) / "index.json"
    if not index_file.is_file():
        raise PackError(f"{index_file}: not found; is {root} a finished pack (jepa-edge data pack)?")
    try:
        index = json.loads(index_file.read_text())
    except json.JSONDecodeError as exc:
        raise PackError(f"{index_file}: not valid JSON ({exc})") from exc
    if index.get("format") != PACK_FORMAT or index.get("version") != PACK_VERSION:
        raise PackError(f"{index_file}: format {index.get('format')!r} v{index.get('version')} is not "
                        f"{PACK_FORMAT!r} v{PACK_VERSION}")
    if modality is not None and index.get("modality", "ecg") != modality:
        raise PackError(f"{index_file}: a pack of {index.get('modality')} data, not {modality}")
    for shard in index.get("shards", []):  # joined to the pack folder below: must stay inside it
        safe_relative_path(shard.get("file") if isinstance(shard, dict) else shard, f"{index_file}: shard")
    return index


def verify_shards(root: str | Path, index: dict[str, Any] | None = None, threads: int = 4) -> None:
    """Check every shard's size and sha256 against the index; raises PackError naming the first bad shard."""
    root = Path(root)
    index = index if index is not None else read_index(root)

    def check(shard: dict[str, Any]) -> str | None:
        path = root / shard["file"]
        if not path.is_file():
            return f"{path}: shard listed in the index is missing"
        size = path.stat().st_size
        if size != shard["bytes"]:
            return f"{path}: {size} bytes on disk, index says {shard['bytes']} (truncated or replaced?)"
        digest = sha256_file(path)
        if digest != shard["sha256"]:
            return f"{path}: checksum mismatch (sha256 {digest[:16]}..., index says {shard['sha256'][:16]}...); " \
                   "the shard is corrupt: re-pack it"
        return None

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:  # hashlib releases the GIL
        problems = [p for p in pool.map(check, index["shards"]) if p]
    if problems:
        more = f" (and {len(problems) - 1} more bad shard(s))" if len(problems) > 1 else ""
        raise PackError(problems[0] + more)


class PackedWindows(Dataset):
    """Windows of a pack, normalised with the constants fitted at pack time: item (record, offset) -> tensor.

    Shards are memory-mapped lazily in each process (so the Dataset pickles cheaply into DataLoader
    workers); a record is a (leads, samples) block of its shard, so a window is `leads` contiguous runs,
    converted to float32 and normalised with three in-place torch ops (numpy's float16 conversion is
    several times slower).
    """

    def __init__(self, root: str | Path, verify: bool = True, max_records: int | None = None,
                 normalise: bool = True) -> None:
        self.root = Path(root)
        index = read_index(self.root, "ecg")
        if verify:
            verify_shards(self.root, index)
        self.pre = EcgPreprocessing.from_dict(index["preprocessing"])
        self.window = self.pre.window
        records = index["records"]
        if max_records is not None:
            records = records[:max_records]
        if not records:
            raise PackError(f"{self.root}: the pack holds no records")
        self.records = records
        self.shard_files = [str(self.root / s["file"]) for s in index["shards"]]
        self.shard_shapes = [tuple(s["shape"]) for s in index["shards"]]
        self.shard_of = np.array([r["shard"] for r in records], dtype=np.int64)
        self.starts = np.array([r["offset"] for r in records], dtype=np.int64)
        self.num_leads = len(index["leads"])
        self.lengths = np.array([r["samples"] for r in records], dtype=np.int64)
        self.max_offsets = self.lengths - self.window
        if (self.max_offsets < 0).any():
            bad = int(np.flatnonzero(self.max_offsets < 0)[0])
            raise PackError(f"{self.root}: record {records[bad]['id']} has {self.lengths[bad]} samples, "
                            f"fewer than one window ({self.window})")
        self.normalise = normalise
        mean = self.pre.mean if self.pre.mean is not None else (0.0,) * self.pre.num_leads
        std = self.pre.std if self.pre.std is not None else (1.0,) * self.pre.num_leads
        self._mean = torch.tensor(mean, dtype=torch.float32)[:, None]
        self._inv_std = 1.0 / torch.tensor(std, dtype=torch.float32)[:, None]
        self._clip = float(self.pre.clip)
        self._maps: dict[int, np.ndarray] = {}
        self.summary = {"source": f"packed shards at {self.root}", "records": len(records),
                        "shards": len(self.shard_files), "pack_summary": index.get("summary"),
                        "sources": index.get("sources")}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_maps"] = {}  # memory maps are reopened in each worker
        return state

    def __len__(self) -> int:
        return len(self.records)

    def _shard(self, i: int) -> np.ndarray:
        arr = self._maps.get(i)
        if arr is None:
            try:
                arr = np.load(self.shard_files[i], mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise PackError(f"{self.shard_files[i]}: cannot memory-map shard ({exc})") from exc
            if tuple(arr.shape) != self.shard_shapes[i]:
                raise PackError(f"{self.shard_files[i]}: shape {arr.shape}, index says {self.shard_shapes[i]}")
            self._maps[i] = arr
        return arr

    def _view(self, index: int) -> np.ndarray:
        s, n = int(self.starts[index]), int(self.lengths[index])
        return self._shard(int(self.shard_of[index]))[s : s + self.num_leads * n].reshape(self.num_leads, n)

    def record(self, index: int) -> np.ndarray:
        """A whole packed record as stored: band-passed mV, (leads, samples) float32, not normalised."""
        return np.asarray(self._view(index), dtype=np.float32)

    def fetch(self, index: int, offset: int) -> torch.Tensor:
        """One window as float32 (leads, window), normalised and clipped like `EcgPreprocessing.normalise`."""
        if not 0 <= offset <= self.max_offsets[index]:
            raise IndexError(f"offset {offset} outside 0..{self.max_offsets[index]} for record {index}")
        x = torch.from_numpy(np.array(self._view(index)[:, offset : offset + self.window])).float()
        if self.normalise:
            x.sub_(self._mean).mul_(self._inv_std).clamp_(-self._clip, self._clip)
        return x

    def __getitem__(self, item: int | tuple[int, int]) -> torch.Tensor:
        index, offset = item if isinstance(item, tuple) else (item, 0)
        return self.fetch(int(index), int(offset))


class EpochPlan:
    """Every window slot of the pack once per epoch, in a seeded order; a pure function of (seed, step).

    A record of L samples holds n = L // window non-overlapping slots (`window` may differ per record, e.g.
    the source frames one echo clip spans at each video's frame rate). Each epoch draws, per record, one
    jitter in [0, L - n * window] (so crops differ between epochs) and one permutation of all slots.
    Global positions run on across epochs: position p = step * batch_size + i is slot p % N of epoch
    p // N, so no slot is repeated or skipped within an epoch whatever the batch size.
    """

    def __init__(self, lengths: np.ndarray, window: int | np.ndarray, seed: int = 0) -> None:
        lengths = np.asarray(lengths, dtype=np.int64)
        if len(lengths) == 0:
            raise DataError("no records to plan an epoch over")
        window = np.broadcast_to(np.asarray(window, dtype=np.int64), lengths.shape)  # per record (echo: fps)
        if (window < 1).any():
            raise DataError("windows must be at least one sample long")
        if (lengths < window).any():
            bad = int(np.flatnonzero(lengths < window)[0])
            raise DataError(f"record {bad} is shorter than the window {int(window[bad])}")
        self.lengths, self.window, self.seed = lengths, window, int(seed)
        self.slots_per_record = lengths // window
        self.slot_record = np.repeat(np.arange(len(lengths)), self.slots_per_record)
        first = np.concatenate([[0], np.cumsum(self.slots_per_record)[:-1]])
        self.slot_number = np.arange(len(self.slot_record)) - first[self.slot_record]
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    @property
    def epoch_size(self) -> int:
        return len(self.slot_record)

    def _epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(records, offsets) of every slot of `epoch`, in that epoch's order."""
        if epoch not in self._cache:
            rng = np.random.default_rng([self.seed, epoch, 2])
            spare = self.lengths - self.slots_per_record * self.window
            jitter = (rng.random(len(self.lengths)) * (spare + 1)).astype(np.int64)
            order = rng.permutation(self.epoch_size)
            records = self.slot_record[order]
            offsets = jitter[records] + self.slot_number[order] * self.window[records]
            self._cache[epoch] = (records, offsets)
            while len(self._cache) > 2:
                self._cache.popitem(last=False)
        return self._cache[epoch]

    def windows(self, start: int, count: int) -> list[Window]:
        """Windows at global positions [start, start + count)."""
        out: list[Window] = []
        pos = start
        while len(out) < count:
            epoch, i = divmod(pos, self.epoch_size)
            take = min(count - len(out), self.epoch_size - i)
            records, offsets = self._epoch(epoch)
            out.extend(zip(records[i : i + take].tolist(), offsets[i : i + take].tolist(), strict=True))
            pos += take
        return out

    def global_batch(self, step: int, batch_size: int) -> list[Window]:
        return self.windows(step * batch_size, batch_size)

    def epoch_of(self, step: int, batch_size: int) -> int:
        """The epoch the first window of `step` belongs to."""
        return (step * batch_size) // self.epoch_size


class PackedClips(Dataset):
    """Echo clips from an echo pack: item (video, start frame) -> float32 (channels, frames, size, size).

    Frames were decoded and resized once at pack time at each video's own frame rate, so sampling and
    normalisation go through `EchoPreprocessing.clip` exactly as for a freshly decoded video.
    """

    def __init__(self, root: str | Path, verify: bool = True, max_records: int | None = None) -> None:
        from .echo import EchoPreprocessing

        self.root = Path(root)
        index = read_index(self.root, "echo")
        if verify:
            verify_shards(self.root, index)
        self.pre = EchoPreprocessing.from_dict(index["preprocessing"])
        records = index["records"][:max_records] if max_records is not None else index["records"]
        if not records:
            raise PackError(f"{self.root}: the pack holds no videos")
        self.records = records
        self.shard_files = [str(self.root / s["file"]) for s in index["shards"]]
        self.lengths = np.array([r["frames"] for r in records], dtype=np.int64)
        self.spans = np.array([self.pre.source_span(r["fps_original"]) for r in records], dtype=np.int64)
        self.max_offsets = self.lengths - self.spans
        self.ef = np.array([np.nan if not r["labels"] else r["labels"].get("ef", np.nan) for r in records],
                           dtype=np.float32)
        self._maps: dict[int, np.ndarray] = {}
        self.summary = {"source": f"packed echo shards at {self.root}", "records": len(records),
                        "shards": len(self.shard_files), "pack_summary": index.get("summary")}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_maps"] = {}
        return state

    def __len__(self) -> int:
        return len(self.records)

    def frames(self, index: int) -> np.ndarray:
        """The stored uint8 frames of one video (frames, size, size[, 3]), memory-mapped."""
        rec = self.records[index]
        shard = int(rec["shard"])
        arr = self._maps.get(shard)
        if arr is None:
            arr = self._maps[shard] = np.load(self.shard_files[shard], mmap_mode="r", allow_pickle=False)
        count = int(np.prod(rec["shape"]))
        return arr[rec["offset"] : rec["offset"] + count].reshape(rec["shape"])

    def __getitem__(self, item: int | tuple[int, int]) -> torch.Tensor:
        from .echo import EchoVideo

        index, start = item if isinstance(item, tuple) else (item, 0)
        rec = self.records[int(index)]
        video = EchoVideo(self.frames(int(index)), float(rec["fps_original"]), rec["path"])
        return self.pre.clip(video, int(start), resized=True)
