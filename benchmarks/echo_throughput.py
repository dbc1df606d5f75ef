"""Echo clip throughput of a vit-tiny student at 16x112x112 on this CPU (and echo pretraining MFU on a GPU).

Measured in one run on this machine:
1. decode + preprocess: a synthetic 3 s AVI (112 px, 50 fps) is decoded with PyAV and turned into one
   16-frame, 8 fps clip by `EchoPreprocessing` (what a cart does per clip before the model), 1 torch thread;
2. the vit-tiny `VideoEncoder` (tubelet 2x16x16, 3D RoPE, 392 tokens) in eval / no_grad, fp32, at batch 1
   and batch 8, with 1 torch thread and with all threads;
3. `--pretrain`: the real trainer (`jepa_edge.jepa.trainer.pretrain`) on synthetic echo clips, FLOPs of one
   step counted with FlopCounterMode (shared with benchmarks/pretrain_throughput.py), MFU against the
   device's dense bf16 peak. Meant for a lent GPU: `--pretrain --model vit-l --size 224 --batch-size 16`.

Prints the ratios (batch 8 vs 1, threads, model vs decode) and writes JSON
(default benchmarks/results/echo_throughput.json). Run:
    .venv/bin/python benchmarks/echo_throughput.py
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

import torch

from jepa_edge.data.echo import EchoPreprocessing, read_video, write_video
from jepa_edge.data.synthetic_echo import SyntheticEchoConfig, synthesize_echo
from jepa_edge.models.video import VideoEncoder, VideoEncoderSpec
from jepa_edge.models.vit import count_parameters

sys.path.insert(0, str(Path(__file__).parent))
from pretrain_throughput import device_peak, flops_per_step  # noqa: E402  (sibling benchmark script)


def rate(fn, items_per_call: int, min_seconds: float, warmup: int = 2) -> float:
    """Items per second of fn(), timed over at least `min_seconds` after `warmup` calls."""
    for _ in range(warmup):
        fn()
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds and calls >= 3:
            return calls * items_per_call / elapsed


def cpu_throughput(args: argparse.Namespace) -> dict:
    load_at_start = os.getloadavg()[0]
    pre = EchoPreprocessing(frames=16, fps=8.0, size=112)
    with tempfile.TemporaryDirectory() as tmp:
        v = synthesize_echo(0, SyntheticEchoConfig(size=112, seconds=3.0), fps=50.0)
        path = write_video(Path(tmp) / "clip.avi", v.frames, v.fps)
        all_threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as in one DataLoader worker
        decode_clips_s = rate(lambda: pre(read_video(path)), 1, args.seconds)
        torch.set_num_threads(all_threads)
    torch.manual_seed(0)
    encoder = VideoEncoder(VideoEncoderSpec(size="vit-tiny", frames=16, image_size=112)).eval()
    model: dict[str, float] = {}
    with torch.inference_mode():
        for threads in sorted({1, all_threads}):
            torch.set_num_threads(threads)
            for batch in (1, 8):
                x = torch.randn(batch, 3, 16, 112, 112)
                model[f"threads{threads}_batch{batch}"] = rate(lambda x=x: encoder(x), batch, args.seconds)
    torch.set_num_threads(all_threads)
    best = max(model.values())
    return {
        "device": f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores visible)",
        "model": "vit-tiny", "parameters": count_parameters(encoder), "clip": "3x16x112x112, 392 tokens, fp32",
        "torch_threads_default": all_threads,
        "load_average_1min_at_start": load_at_start,  # shared machine: other jobs compete for the cores
        "decode_preprocess_clips_per_s": decode_clips_s,  # one process, one torch thread
        "encoder_clips_per_s": model,
        "ratios": {
            "batch8_over_batch1": {t: model[f"threads{t}_batch8"] / model[f"threads{t}_batch1"]
                                   for t in sorted({1, all_threads})},
            "all_threads_over_one": model[f"threads{all_threads}_batch8"] / model["threads1_batch8"],
            "best_encoder_over_decode": best / decode_clips_s,
        },
        "torch": torch.__version__,
    }


def pretrain_mfu(args: argparse.Namespace) -> dict:
    from jepa_edge.jepa.echo_task import build_echo_task
    from jepa_edge.jepa.trainer import PretrainConfig, pretrain

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    bf16 = device.type == "cuda"
    extra = {"size": args.size, "videos": args.videos}
    base = PretrainConfig(modality="echo", model=args.model, extra=extra, batch_size=args.batch_size)
    step_flops = flops_per_step(build_echo_task(base), args.batch_size, device, bf16)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = PretrainConfig(modality="echo", model=args.model, steps=args.steps, batch_size=args.batch_size,
                             out=tmp, log_every=1, checkpoint_every=10**9, warmup_steps=1, extra=extra,
                             activation_checkpointing=args.activation_checkpointing, num_workers=args.workers)
        pretrain(cfg)
        rows = [json.loads(line) for line in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
    first, last = rows[args.warmup - 1], rows[-1]
    seconds = last["elapsed_s"] - first["elapsed_s"]
    steps = last["step"] - first["step"]
    name, peak = device_peak(device)
    achieved = steps * step_flops / seconds
    return {"device": name, "model": args.model, "clip": f"3x16x{args.size}x{args.size}",
            "batch_size": args.batch_size, "timed_steps": steps, "precision": "bf16 autocast" if bf16 else "fp32",
            "clips_per_s": steps * args.batch_size / seconds, "flops_per_step": step_flops,
            "achieved_tflops": achieved / 1e12, "peak_tflops": None if peak is None else peak / 1e12,
            "mfu": None if peak is None else achieved / peak, "torch": torch.__version__}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0, help="minimum timing per measurement")
    ap.add_argument("--pretrain", action="store_true", help="measure echo pretraining MFU instead (GPU)")
    ap.add_argument("--model", default="vit-l")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--videos", type=int, default=32)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--activation-checkpointing", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.pretrain:
        result = pretrain_mfu(args)
        out = args.out or Path(__file__).parent / "results" / "echo_pretrain_mfu.json"
        mfu = "n/a" if result["mfu"] is None else f"{100 * result['mfu']:.1f} %"
        print(f"{result['device']}  {result['model']}  {result['clip']}  batch {result['batch_size']}: "
              f"{result['clips_per_s']:.1f} clips/s, {result['achieved_tflops']:.1f} TFLOP/s, MFU {mfu}")
    else:
        result = cpu_throughput(args)
        out = args.out or Path(__file__).parent / "results" / "echo_throughput.json"
        print(f"load average at start {result['load_average_1min_at_start']:.1f}")
        print(f"{result['device']}, vit-tiny ({result['parameters'] / 1e6:.2f} M) at {result['clip']}")
        print(f"decode + preprocess (PyAV, 50 fps AVI -> 16 frames at 8 fps): "
              f"{result['decode_preprocess_clips_per_s']:.1f} clips/s")
        for key, value in result["encoder_clips_per_s"].items():
            print(f"encoder {key}: {value:.2f} clips/s")
        for key, value in result["ratios"].items():
            print(f"ratio {key}: {value}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
