"""The demo's echo stage: SYNTHETIC echo clips -> JEPA teacher -> LVEF probe -> student -> cart-cpu INT8 bundle
-> parity -> verify, through the same functions the `jepa-edge` verbs call.

No redistributable echocardiography video exists on these machines, so the clips are drawn by
`jepa_edge.data.synthetic_echo` (a beating ellipsoidal ventricle with a known EF) and announced as such.
Sizes are chosen to add about three minutes to the demo on two CPU cores.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class EchoDemoConfig:
    videos: int = 120  # half train, a tenth validation, the rest held out: LVEF MAE on a handful of videos is noise
    size: int = 64  # px; EchoNet-Dynamic is 112, V-JEPA 2 teachers take 224
    frames: int = 16  # teacher clip; the student sees `student_frames` over the same span
    fps: float = 8.0
    seconds: float = 3.0
    teacher: str = "vit-xs"
    student: str = "vit-tiny"
    student_frames: int = 8
    pretrain_steps: int = 200
    pretrain_batch: int = 8
    probe_epochs: int = 150
    distill_steps: int = 300
    distill_batch: int = 8
    calibration_clips: int = 64
    parity_boot: int = 300
    sweep: bool = True
    seed: int = 0

    @classmethod
    def quick(cls) -> EchoDemoConfig:
        return cls(videos=40, size=48, frames=8, fps=4.0, seconds=2.5, teacher="vit-tiny", student_frames=4,
                   pretrain_steps=20, probe_epochs=60, distill_steps=30, distill_batch=4, calibration_clips=16,
                   parity_boot=100, sweep=False)


@dataclass
class EchoDemoResult:
    data: Path
    teacher: Path
    student: Path
    bundle: Path
    report: Path | None
    parity_passed: bool
    failures: list[str]
    verified: bool
    lvef_mae: dict[str, float]  # per parity stage, on the held-out videos
    mean_predictor_mae: float | None = None  # the trivial baseline on the teacher's probe test split
    timings: dict[str, float] = field(default_factory=dict)


def run_echo_demo(cfg: EchoDemoConfig, out: Path, say: Callable[[str], None] = print,
                  tick: Callable[[str], None] | None = None) -> EchoDemoResult:
    from jepa_edge.devices.build import build_bundle
    from jepa_edge.distill import DistillConfig, distill

    from .bundle import verify_bundle
    from .data.synthetic_echo import SyntheticEchoConfig, write_synthetic_echonet
    from .jepa.trainer import PretrainConfig, pretrain
    from .parity.run import ParityConfig, run_parity
    from .tasks.echo import EchoProbeConfig, probe_echonet

    out = Path(out)
    timings: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        if tick:
            tick(name)
        t0 = time.perf_counter()
        value = fn()
        timings[name] = round(time.perf_counter() - t0, 1)
        return value

    say(f"echo: drawing {cfg.videos} SYNTHETIC echo videos (beating ellipsoid, known EF; not patient data)")
    data = out / "synthetic-echo"
    if not (data / "FileList.csv").is_file():
        timed("echo data", lambda: write_synthetic_echonet(
            data, cfg.videos, cfg.seed, "avi", SyntheticEchoConfig(size=cfg.size, seconds=cfg.seconds,
                                                                   views=("A4C",)), splits=(0.5, 0.1)))
    pre_cfg = PretrainConfig(modality="echo", data=str(data), model=cfg.teacher, steps=cfg.pretrain_steps,
                             batch_size=cfg.pretrain_batch, warmup_steps=max(1, cfg.pretrain_steps // 10), lr=5e-4,
                             checkpoint_every=cfg.pretrain_steps, out=str(out / "echo-teacher"), seed=cfg.seed,
                             extra={"frames": cfg.frames, "fps": cfg.fps, "size": cfg.size})
    encoder = timed("echo pretrain", lambda: pretrain(pre_cfg) / "encoder")
    probe = timed("echo probe", lambda: probe_echonet(encoder, data, EchoProbeConfig(
        task="ef", epochs=cfg.probe_epochs, seed=cfg.seed), out / "echo-teacher-ef"))
    dist_cfg = DistillConfig(teacher=str(probe.out), student=cfg.student, data=str(data), out=str(out / "echo-student"),
                             steps=cfg.distill_steps, batch_size=cfg.distill_batch, frames=cfg.student_frames,
                             checkpoint_every=cfg.distill_steps, seed=cfg.seed)
    student = timed("echo distill", lambda: distill(dist_cfg))
    bundle = timed("echo build cart-cpu", lambda: build_bundle(student, "cart-cpu", out / "bundle-echo-cart-cpu",
                                                                data=data, calibration_windows=cfg.calibration_clips,
                                                                seed=cfg.seed))
    parity_cfg = ParityConfig(n_boot=cfg.parity_boot, sweep=cfg.sweep, seed=cfg.seed, out=str(out / "echo-parity"))
    parity = timed("echo parity", lambda: run_parity(probe.out, bundle, data, student=student, cfg=parity_cfg))
    verified = timed("echo verify", lambda: verify_bundle(bundle).ok)
    mae = {name: m.get("mae") for name, m in parity.metrics.items() if isinstance(m, dict) and "mae" in m}
    return EchoDemoResult(data=data, teacher=Path(probe.out), student=Path(student), bundle=Path(bundle),
                          report=Path(parity.report_paths["bundle_html"]) if "bundle_html" in parity.report_paths
                          else None, parity_passed=parity.passed, failures=[f.message() for f in parity.failures],
                          verified=verified, lvef_mae=mae,
                          mean_predictor_mae=probe.metrics.get("test", {}).get("mae_predict_mean"), timings=timings)


__all__ = ["EchoDemoConfig", "EchoDemoResult", "run_echo_demo"]
