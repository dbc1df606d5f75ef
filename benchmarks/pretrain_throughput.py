"""Pretraining throughput and MFU of the real JEPA trainer loop for one model size on this device.

Runs `jepa_edge.jepa.trainer.pretrain` on in-memory random windows (so storage is not what is
measured; `benchmarks/loader.py` measures the loader), counts FLOPs of one full step (target forward,
context encoder + predictor forward and backward) with torch's FlopCounterMode, and prints
samples/s, tokens/s and MFU against the device's dense bf16 peak.

    python benchmarks/pretrain_throughput.py --model vit-b --batch-size 256 --steps 60   # on an H100
    python benchmarks/pretrain_throughput.py --model vit-tiny --batch-size 16 --steps 12  # on this CPU
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from jepa_edge.data.datasets import EcgWindows
from jepa_edge.data.preprocess import EcgPreprocessing
from jepa_edge.jepa.masks import EcgBlockMasks
from jepa_edge.jepa.sampling import RandomWindows
from jepa_edge.jepa.trainer import ContextPredictor, JepaTask, PretrainConfig, pretrain
from jepa_edge.models.ecg import EcgEncoder, EcgEncoderSpec, ecg_predictor
from jepa_edge.models.vit import count_parameters, gather_tokens

# Dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, from NVIDIA's data sheets.
PEAK_BF16_TFLOPS = {"H100 SXM": 989.0, "H100 NVL": 835.0, "H100 PCIe": 756.0, "H100": 989.0, "H200": 989.0,
                    "A100": 312.0, "L40S": 362.0, "GH200": 989.0}


def device_peak(device: torch.device) -> tuple[str, float | None]:
    if device.type != "cuda":
        return "cpu", None
    name = torch.cuda.get_device_name(device)
    for key in sorted(PEAK_BF16_TFLOPS, key=len, reverse=True):
        if key in name:
            return name, PEAK_BF16_TFLOPS[key] * 1e12
    return name, None


def ecg_task(model: str, records: int, seed: int) -> JepaTask:
    pre = EcgPreprocessing()
    rng = np.random.default_rng(seed)
    signals = rng.standard_normal((records, pre.num_leads, pre.window), dtype=np.float32)
    windows = EcgWindows(list(signals), pre.window)
    encoder = EcgEncoder(EcgEncoderSpec(size=model))
    return JepaTask(encoder=encoder, predictor=ecg_predictor(encoder), windows=windows,
                    plan=RandomWindows(windows.max_offsets, seed=seed), masks=EcgBlockMasks(encoder.num_patches),
                    meta={"modality": "ecg", "preprocessing": pre.to_dict(), "data": {"source": "random"}})


def flops_per_step(task: JepaTask, batch: int, device: torch.device, bf16: bool) -> float:
    """Model FLOPs of one training step (what MFU counts), measured on the real modules."""
    student = ContextPredictor(task.encoder, task.predictor).to(device)
    target = task.encoder  # same shapes as the EMA copy
    x = torch.stack([task.windows[(i % len(task.windows), 0)] for i in range(batch)]).to(device)
    keep, tgt = task.masks(batch, np.random.default_rng(0))
    keep, tgt = keep.to(device), tgt.to(device)
    ctx = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else torch.autocast(device.type, enabled=False)
    with FlopCounterMode(display=False) as counter, ctx:
        with torch.no_grad():
            h = gather_tokens(target(x), tgt)
        loss = torch.nn.functional.l1_loss(student(x, keep, tgt).float(), h.float())
        loss.backward()
    student.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="vit-tiny")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=4, help="steps excluded from the timing")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--activation-checkpointing", action="store_true")
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/pretrain_throughput.json"))
    args = ap.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    bf16 = device.type == "cuda"
    task = ecg_task(args.model, records=max(64, args.batch_size), seed=0)
    step_flops = flops_per_step(task, args.batch_size, device, bf16)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = PretrainConfig(model=args.model, steps=args.steps, batch_size=args.batch_size, out=tmp, log_every=1,
                             checkpoint_every=10**9, warmup_steps=1, num_workers=args.workers, compile=args.compile,
                             activation_checkpointing=args.activation_checkpointing)
        pretrain(cfg, task=ecg_task(args.model, records=max(64, args.batch_size), seed=0))
        rows = [json.loads(line) for line in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
    first, last = rows[args.warmup - 1], rows[-1]
    seconds = last["elapsed_s"] - first["elapsed_s"]
    steps = last["step"] - first["step"]
    samples_s = steps * args.batch_size / seconds
    tokens_s = samples_s * task.encoder.num_patches
    name, peak = device_peak(device)
    achieved = steps * step_flops / seconds
    result = {
        "device": name, "model": args.model, "parameters": count_parameters(task.encoder),
        "batch_size": args.batch_size, "timed_steps": steps, "precision": "bf16 autocast" if bf16 else "fp32",
        "samples_per_s": samples_s, "tokens_per_s": tokens_s, "flops_per_step": step_flops,
        "achieved_tflops": achieved / 1e12, "peak_tflops": None if peak is None else peak / 1e12,
        "mfu": None if peak is None else achieved / peak, "torch": torch.__version__,
    }
    print(f"device {name}  model {args.model} ({result['parameters'] / 1e6:.1f} M)  batch {args.batch_size}  "
          f"{result['precision']}")
    print(f"samples/s {samples_s:,.1f}   tokens/s {tokens_s:,.0f}   achieved {achieved / 1e12:.3f} TFLOP/s")
    print("MFU " + ("n/a (no published peak for this device)" if peak is None
                    else f"{100 * achieved / peak:.1f} % of {peak / 1e12:.0f} TFLOP/s dense bf16"))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
