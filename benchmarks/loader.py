"""Loader throughput: windows/s from packed shards vs straight from WFDB, and vs what one H100 consumes.

Measured in one run on this machine, on real PTB-XL records (JEPA_EDGE_DATA or ../shared/data):

1. pack N PTB-XL records (float16) into a temporary folder, timing the pack;
2. WFDB path: every window read as a lazy loader without a pack must (wfdb header + .dat decode,
   resample, causal band-pass, normalise, crop), in the EpochPlan's order;
3. packed path: `PackedWindows` fetches in the same order, one process with one torch thread (what a
   DataLoader worker is), then the real DataLoader (StepBatchSampler over the EpochPlan, batches of
   `--batch`) with one worker process and with `--workers` processes: this includes collation and the
   shared-memory hand-over to the training process, which costs more than the fetch itself;
4. the demand of one H100 in vit-b ECG JEPA pretraining, computed, not measured (on a GPU,
   benchmarks/pretrain_throughput.py --model vit-b measures it):
   the FLOPs of one training step per sample are counted with torch's FlopCounterMode on the real
   modules (shared with benchmarks/pretrain_throughput.py) and turned into samples/s at an ASSUMED 45 %
   MFU of 989 TFLOP/s (H100 SXM bf16 dense). The loader side scales the measured rate of a DataLoader
   with ONE worker process to the workers an H100 node gives each GPU (default 12: a DGX H100 has 112
   cores for 8 GPUs), assuming cores scale linearly (they do not share anything but the page cache).

Prints the ratios and writes JSON (default benchmarks/results/loader.json). Run:
    JEPA_EDGE_DATA=../shared/data .venv/bin/python benchmarks/loader.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from jepa_edge.data.ecg import read_record
from jepa_edge.data.pack import PackConfig, pack
from jepa_edge.data.packed import EpochPlan, PackedWindows
from jepa_edge.data.paths import find_ptbxl
from jepa_edge.jepa.sampling import StepBatchSampler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pretrain_throughput import ecg_task, flops_per_step  # noqa: E402  (the one FLOP count of a training step)

H100_BF16_DENSE = 989e12
ASSUMED_MFU = 0.45


def wfdb_rate(windows: PackedWindows, order: list[tuple[int, int]], seconds: float) -> tuple[float, int]:
    """Windows/s when each window is read from WFDB and preprocessed on the spot (no pack)."""
    pre = windows.pre
    t0, n = time.perf_counter(), 0
    for record, offset in order:
        rec = read_record(windows.records[record]["path"], leads=pre.leads)
        x = pre.normalise(pre.filter_record(rec.signal, rec.fs))
        torch.from_numpy(np.ascontiguousarray(x[:, offset : offset + pre.window]))
        n += 1
        if time.perf_counter() - t0 > seconds:
            break
    return n / (time.perf_counter() - t0), n


def packed_rate(windows: PackedWindows, order: list[tuple[int, int]], seconds: float) -> tuple[float, int]:
    t0, n = time.perf_counter(), 0
    for item in order:
        windows[item]
        n += 1
        if n % 256 == 0 and time.perf_counter() - t0 > seconds:
            break
    return n / (time.perf_counter() - t0), n


def dataloader_rate(windows: PackedWindows, plan: EpochPlan, batch: int, workers: int, steps: int) -> float:
    loader = torch.utils.data.DataLoader(windows, batch_sampler=StepBatchSampler(plan, batch, 0, steps),
                                         num_workers=workers, persistent_workers=False, prefetch_factor=4)
    it = iter(loader)
    next(it)  # worker start-up is paid once per run, not per batch
    t0, n = time.perf_counter(), 0
    for x in it:
        n += x.shape[0]
    return n / (time.perf_counter() - t0)


def h100_demand(model: str, batch: int) -> dict:
    task = ecg_task(model, records=batch, seed=0)
    flops = flops_per_step(task, batch, torch.device("cpu"), bf16=False) / batch
    samples_per_s = ASSUMED_MFU * H100_BF16_DENSE / flops
    return {"model": model, "flops_per_sample": flops, "assumed_mfu": ASSUMED_MFU,
            "peak_flops": H100_BF16_DENSE, "samples_per_s": samples_per_s,
            "how": "FlopCounterMode on one CPU training step (target forward + context encoder and predictor "
                   "forward/backward), at an ASSUMED 45% MFU of 989 TFLOP/s bf16 dense (H100 SXM); "
                   "not measured on a GPU in this run"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("JEPA_EDGE_DATA", str(Path(__file__).parents[2] / "shared/data")))
    ap.add_argument("--records", type=int, default=200, help="PTB-XL records to pack")
    ap.add_argument("--seconds", type=float, default=10.0, help="time spent on each single-process measurement")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader worker processes for the loader measurement")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers-per-gpu", type=int, default=12, help="loader processes an H100 node gives one GPU")
    ap.add_argument("--model", default="vit-b")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "loader.json"))
    args = ap.parse_args()

    torch.set_num_threads(1)  # as in a DataLoader worker
    ptbxl = find_ptbxl(args.data)
    if ptbxl is None:
        raise SystemExit(f"no PTB-XL folder under {args.data}; set JEPA_EDGE_DATA to ../shared/data")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = pack([ptbxl], Path(tmp) / "pack", PackConfig(ptbxl_folds=None, max_records_per_source=args.records,
                                                              records_per_shard=64))
        pack_s = time.perf_counter() - t0
        windows = PackedWindows(result.out)
        plan = EpochPlan(windows.lengths, windows.window, seed=0)
        order = plan.windows(0, 200_000)
        wfdb_ws, wfdb_n = wfdb_rate(windows, order, args.seconds)
        packed_rate(windows, order[:512], 1.0)  # warm the memory maps
        packed_ws, packed_n = packed_rate(windows, order, args.seconds)
        steps = max(8, int(packed_ws * args.seconds / args.batch))
        one_worker_ws = dataloader_rate(windows, plan, args.batch, 1, steps // 2)
        loader_ws = dataloader_rate(windows, plan, args.batch, args.workers, steps)
        shard_bytes = sum((result.out / s["file"]).stat().st_size for s in json.loads(
            (result.out / "index.json").read_text())["shards"])
    demand = h100_demand(args.model, batch=2)
    node_ws = one_worker_ws * args.workers_per_gpu
    out = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "torch": torch.__version__, "note": "CPU shared with other jobs; shards in the page cache"},
        "pack": {"records": result.records, "seconds": pack_s, "records_per_s": result.records / pack_s,
                 "shard_bytes": shard_bytes, "dtype": "float16"},
        "wfdb_windows_per_s": wfdb_ws, "wfdb_windows_timed": wfdb_n,
        "packed_windows_per_s_one_worker": packed_ws, "packed_windows_timed": packed_n,
        "dataloader_one_worker_windows_per_s": one_worker_ws,
        "dataloader": {"workers": args.workers, "batch": args.batch, "windows_per_s": loader_ws},
        "packed_vs_wfdb": packed_ws / wfdb_ws, "goal_packed_vs_wfdb": 20.0,
        "h100_demand": demand,
        "loader_per_gpu": {"workers_per_gpu": args.workers_per_gpu, "windows_per_s": node_ws,
                           "how": "measured DataLoader rate with one worker x workers per GPU (assumes cores "
                                  "scale linearly)"},
        "headroom_vs_h100": node_ws / demand["samples_per_s"], "goal_headroom": 3.0,
        "one_worker_vs_h100": one_worker_ws / demand["samples_per_s"],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"pack: {result.records} PTB-XL records in {pack_s:.1f} s ({result.records / pack_s:.1f} records/s, "
          f"{shard_bytes / 1e6:.1f} MB float16)")
    print(f"WFDB straight:  {wfdb_ws:10.1f} windows/s ({wfdb_n} windows)")
    print(f"packed, 1 proc: {packed_ws:10.1f} windows/s ({packed_n} windows)  -> {packed_ws / wfdb_ws:.0f}x WFDB "
          f"(goal >= 20x)")
    print(f"DataLoader, 1 worker, batch {args.batch}:  {one_worker_ws:10.1f} windows/s (fetch + collate + hand-over)")
    print(f"DataLoader, {args.workers} workers, batch {args.batch}: {loader_ws:10.1f} windows/s "
          f"({os.cpu_count()} cores here, shared)")
    print(f"H100 demand, {args.model} ECG JEPA: {demand['flops_per_sample'] / 1e9:.1f} GFLOP/sample -> "
          f"{demand['samples_per_s']:.0f} samples/s at an ASSUMED {ASSUMED_MFU:.0%} MFU of 989 TFLOP/s "
          "(FlopCounterMode; no GPU measured)")
    print(f"loader per GPU ({args.workers_per_gpu} workers x {one_worker_ws:.0f}): {node_ws:.0f} windows/s -> "
          f"{out['headroom_vs_h100']:.1f}x the H100 demand (goal >= 3x); one worker alone: "
          f"{out['one_worker_vs_h100']:.2f}x")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
