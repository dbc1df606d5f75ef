"""The whole chain on the embedded default: pretrain -> probe -> distill -> build -> parity -> verify -> stream,
then the same chain for echo on synthetic clips (`echo_demo`).

This module (with the CLI) is the only place that knows every stage; each step is the same Python
function its own `jepa-edge` verb calls, so the demo exercises exactly what users run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import ConfigError, to_dict
from .data.paths import find_ptbxl

Step = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class DemoConfig:
    """Sizes chosen so the chain finishes in about 15 minutes on 2 CPU cores; `quick()` for CI."""

    data: str | None = None  # PTB-XL folder; default: $JEPA_EDGE_DATA / ./data, else a synthetic set
    out: str = "runs/demo"
    teacher: str = "vit-xs"
    student: str = "vit-tiny"
    # 1000 steps of 8 (fewer windows than 300 x 32, so no slower): with ECG-JEPA's EMA (0.998 -> 0.9995) the
    # target of a 300-step run is still mostly its random init (0.998^300 ~ 0.55) and probed no better than
    # random weights; 1000 steps of 8 at lr 1e-3 put the vit-xs teacher +0.054 [+0.016, +0.095] above its own
    # random init (README, "Does pretraining help?")
    pretrain_steps: int = 1000
    pretrain_batch: int = 8
    pretrain_lr: float = 1e-3
    probe_epochs: int = 150
    distill_steps: int = 300
    distill_batch: int = 32
    calibration_windows: int = 300
    synthetic_records: int = 240
    parity_boot: int = 500
    sweep: bool = True
    stream_records: int = 6
    echo: str = "full"  # the echo stage (synthetic clips -> cart-cpu bundle -> parity): "full", "quick" or "off"
    seed: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    @classmethod
    def quick(cls, **overrides: Any) -> DemoConfig:
        """Reduced setting for CI: every stage runs once end to end, on fewer steps."""
        base = dict(teacher="vit-tiny", pretrain_steps=60, pretrain_batch=16, pretrain_lr=5e-4, probe_epochs=80,
                    distill_steps=100, distill_batch=16, calibration_windows=256, synthetic_records=90, parity_boot=200,
                    sweep=False, stream_records=3, echo="quick")
        return cls(**(base | overrides))


@dataclass
class DemoResult:
    data: Path
    synthetic: bool
    teacher_encoder: Path
    teacher_classifier: Path
    student: Path
    bundles: dict[str, Path]
    report: Path
    parity_passed: bool
    failures: list[str]
    verified: dict[str, bool]
    stream_summary: dict[str, Any]
    timings: dict[str, float]
    echo: Any = None  # EchoDemoResult when the echo stage ran

    @property
    def passed(self) -> bool:
        echo_ok = self.echo is None or (self.echo.parity_passed and self.echo.verified)
        return self.parity_passed and all(self.verified.values()) and echo_ok

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.__dict__, default=str))


STAGES = ("data", "pretrain", "probe", "distill", "build cart-cpu", "build jetson", "parity", "verify", "stream",
          "echo")


def resolve_demo_data(cfg: DemoConfig, say: Callable[[str], None]) -> tuple[Path, bool]:
    """Real PTB-XL where found, else the synthetic set (announced as such)."""
    from .data.synthetic_ecg import is_synthetic, make_synthetic_ptbxl

    found = find_ptbxl(cfg.data) if cfg.data is not None else find_ptbxl()
    if found is not None:
        return found, is_synthetic(found)
    if cfg.data is not None:
        from .data.errors import DataError

        raise DataError(f"{cfg.data}: no PTB-XL folder (ptbxl_database.csv) here or in its ptbxl/ subfolder")
    say("NO REAL ECG DATA FOUND ($JEPA_EDGE_DATA, ./data): generating a SYNTHETIC 12-lead set "
        "(neurokit2 simulator; not clinical data). Results below are on SYNTHETIC ECGs.")
    return make_synthetic_ptbxl(Path(cfg.out) / "synthetic-ecg", records=cfg.synthetic_records, seed=cfg.seed), True


def _stream_excerpt(data: Path, bundle: Path, records: int) -> dict[str, Any]:
    """Stream held-out test-fold records back to back through the INT8 bundle, as a device would."""
    from jepa_edge.devices.stream import StreamClassifier, iterator_source

    from .data.ptbxl import PtbXl

    test = PtbXl(data).load(None, split="test", labelled_only=False, limit=records)
    signal = np.concatenate(list(test.signals), axis=1).T  # (samples, 12) in mV, records back to back
    chunks = (signal[i : i + 500] for i in range(0, len(signal), 500))
    clf = StreamClassifier.from_bundle(bundle)
    with open(Path(bundle).parent / "stream-events.jsonl", "w") as sink:
        clf.run(iterator_source(chunks, test.fs, test.leads), out=sink)
    return clf.summary()


def demo_models(cfg: DemoConfig, data: Path, out: Path,
                timed: Callable[[str, Callable[[], Any]], Any] | None = None) -> tuple[Path, Path, Path]:
    """The model half of the demo: pretrain the teacher, probe it, distil the student. Returns (teacher encoder,
    teacher classifier, student classifier); benchmarks/parity.py calls this too, so both train the same models."""
    from jepa_edge.distill import DistillConfig, distill

    from .jepa.trainer import PretrainConfig, pretrain
    from .tasks.probe import train_probe

    run = timed or (lambda name, fn: fn())
    task = "ptbxl-super"
    pre_cfg = PretrainConfig(data=str(data), model=cfg.teacher, steps=cfg.pretrain_steps,
                             batch_size=cfg.pretrain_batch, warmup_steps=max(1, cfg.pretrain_steps // 10),
                             checkpoint_every=cfg.pretrain_steps,
                             out=str(out / "teacher"), seed=cfg.seed, lr=cfg.pretrain_lr)
    teacher_encoder = run("pretrain", lambda: pretrain(pre_cfg) / "encoder")
    probe = run("probe", lambda: train_probe(teacher_encoder, data, task=task, out=out / "teacher-probe",
                                             epochs=cfg.probe_epochs, seed=cfg.seed))
    dist_cfg = DistillConfig(teacher=str(probe.model_dir), student=cfg.student, data=str(data),
                             out=str(out / "student"), steps=cfg.distill_steps, batch_size=cfg.distill_batch,
                             task=task, seed=cfg.seed, checkpoint_every=cfg.distill_steps)
    student = run("distill", lambda: distill(dist_cfg))
    return Path(teacher_encoder), Path(probe.model_dir), Path(student)


def run_demo(cfg: DemoConfig, step: Step | None = None, say: Callable[[str], None] = print) -> DemoResult:
    from jepa_edge.devices.build import build_bundle

    from .bundle import verify_bundle
    from .parity.run import ParityConfig, run_parity

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    tick = step or (lambda stage, done, total: None)
    timings: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        tick(name, STAGES.index(name), len(STAGES))
        t0 = time.perf_counter()
        value = fn()
        timings[name] = round(time.perf_counter() - t0, 1)
        return value

    data, synthetic = timed("data", lambda: resolve_demo_data(cfg, say))
    teacher_encoder, teacher_classifier, student = demo_models(cfg, data, out, timed)
    bundles = {
        target: timed(f"build {target}", lambda target=target: build_bundle(
            student, target, out / f"bundle-{target}", data=data, calibration_windows=cfg.calibration_windows,
            seed=cfg.seed))
        for target in ("cart-cpu", "jetson")
    }
    parity_cfg = ParityConfig(n_boot=cfg.parity_boot, sweep=cfg.sweep, seed=cfg.seed, out=str(out / "parity"))
    parity = timed("parity", lambda: run_parity(teacher_classifier, bundles["cart-cpu"], data, student=student,
                                                cfg=parity_cfg, extra_stages=_jetson_stage(bundles["jetson"])))
    verified = timed("verify", lambda: {k: verify_bundle(b).ok for k, b in bundles.items()})
    summary = timed("stream", lambda: _stream_excerpt(data, bundles["cart-cpu"], cfg.stream_records))
    echo = timed("echo", lambda: _echo_stage(cfg, out, say)) if cfg.echo != "off" else None
    result = DemoResult(
        data=data, synthetic=synthetic, teacher_encoder=teacher_encoder, teacher_classifier=teacher_classifier,
        student=student, bundles=bundles, report=Path(parity.report_paths["bundle_html"]),
        parity_passed=parity.passed, failures=[f.message() for f in parity.failures], verified=verified,
        stream_summary=summary, timings=timings, echo=echo,
    )
    (out / "demo.json").write_text(json.dumps({"config": to_dict(cfg), "result": result.to_dict()}, indent=2) + "\n")
    return result


def _echo_stage(cfg: DemoConfig, out: Path, say: Callable[[str], None]) -> Any:
    from .echo_demo import EchoDemoConfig, run_echo_demo

    presets = {"full": EchoDemoConfig, "quick": EchoDemoConfig.quick}
    if cfg.echo not in presets:
        raise ConfigError(f"DemoConfig.echo {cfg.echo!r}: choose full, quick or off")
    echo_cfg = presets[cfg.echo]()
    echo_cfg.seed = cfg.seed
    return run_echo_demo(echo_cfg, out, say=say)


def _jetson_stage(bundle: Path) -> dict[str, Path]:
    """The Jetson bundle's Q/DQ ONNX is gated too (through onnxruntime here; TensorRT runs on the device)."""
    from .bundle import open_bundle

    b = open_bundle(bundle)
    return {"student INT8 Q/DQ ONNX (jetson bundle)": b.file("onnx-qdq")}
