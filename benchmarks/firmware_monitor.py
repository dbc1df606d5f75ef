"""The C runner's arrhythmia monitor against the Python monitor: agreement and real-time factor on whole records.

One beat bundle (`--bundle`, e.g. the README's bundles/beats; by default the test-budget chain of
tests/conftest.py is built: a 40-step vit-tiny JEPA encoder, beat head, distilled student, RR / template fusion,
OpenVINO INT8), the MIT-BIH test records of the inter-patient split replayed as the int16 frames an ADC gives
(MLII and the record's chest lead at 360 Hz). Both sides get the same bytes and the same IR on OpenVINO with the
thread count and precision the bundle's device profile pins:
  - c:      `jepa_edge_runner stream BEAT_BUNDLE --fs 360 --leads MLII,V1 ... < frames` (jefw_monitor.c),
  - python: `MonitorStream(None, BeatStream(BeatModel.open(BEAT_BUNDLE))).run(int16_source(frames))`.
Per record: beats, beats whose (sample, label) differ, episodes that differ, quality windows whose verdict
differs, and the monitor's real-time factor on each side (seconds of ECG / seconds of processing, model
compilation excluded).

    JEPA_EDGE_DATA=../shared/data .venv/bin/python benchmarks/firmware_monitor.py [--bundle bundles/beats]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _small_chain(root: Path, data: Path) -> Path:
    """The test-budget beat chain (tests/conftest.py `beat_chain`), built into a cart-cpu bundle."""
    from jepa_edge.devices.build import build_bundle
    from jepa_edge.distill.trainer import DistillConfig, distill
    from jepa_edge.jepa.trainer import PretrainConfig, pretrain
    from jepa_edge.tasks.beat_probe import BeatProbeConfig, fuse_classifier, probe_beats

    encoder = pretrain(PretrainConfig(data=str(data / "ptbxl"), model="vit-tiny", steps=40, batch_size=32,
                                      warmup_steps=4, checkpoint_every=40, out=str(root / "pretrain"),
                                      extra={"leads": ["II"], "fs": 250, "window_s": 3.0}))
    teacher, _ = probe_beats(encoder / "encoder", data, root / "teacher", BeatProbeConfig(epochs=8,
                                                                                         max_train_beats=3000))
    student = distill(DistillConfig(teacher=str(teacher), student="vit-tiny", data=str(data), steps=40,
                                    warmup_steps=4, max_records=2000, evaluate=False, out=str(root / "distill")))
    fuse_classifier(student, data)
    return build_bundle(student, "cart-cpu", root / "bundle", data=data)


def main() -> None:
    from jepa_edge.tasks.beats import BEAT_SPLIT

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, help="a beat bundle (default: build the test-budget chain)")
    ap.add_argument("--records", default=",".join(BEAT_SPLIT["test"]), help="MIT-BIH records (need MLII and V1)")
    ap.add_argument("--seconds", type=float, default=0.0, help="seconds replayed per record (0 = the whole record)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/firmware_monitor.json"))
    args = ap.parse_args()

    import wfdb

    from jepa_edge.data.paths import data_root
    from jepa_edge.devices.firmware import build_firmware
    from jepa_edge.devices.stream import int16_source
    from jepa_edge.devices.stream.monitor import BeatModel, BeatStream, MonitorStream

    root = Path(data_root())
    records = [r.strip() for r in args.records.split(",") if r.strip()]
    missing = [r for r in records if not (root / "mitdb" / f"{r}.hea").is_file()]
    if missing:
        sys.exit(f"MIT-BIH records {missing} not found under {root / 'mitdb'} (set JEPA_EDGE_DATA to ../shared/data)")
    rows, totals = [], {"beats": 0, "beats_differ": 0, "episodes": 0, "episodes_differ": 0, "windows_differ": 0,
                        "signal_s": 0.0, "c_s": 0.0, "python_s": 0.0}
    with tempfile.TemporaryDirectory(prefix="jepa-fw-monitor-") as tmp_name:
        tmp = Path(tmp_name)
        bundle = args.bundle or _small_chain(tmp / "chain", root)
        runner = build_firmware(bundle, tmp / "build").runner
        for name in records:
            rec = wfdb.rdrecord(str(root / "mitdb" / name), physical=False,
                                sampto=int(args.seconds * 360) if args.seconds else None)
            leads = [str(n) for n in rec.sig_name]
            frames = np.ascontiguousarray(rec.d_signal.astype("<i2")).tobytes()
            gain, baseline = float(rec.adc_gain[0]), float(rec.baseline[0])
            proc = subprocess.run([str(runner), "stream", str(bundle), "--fs", "360", "--leads", ",".join(leads),
                                   "--gain", str(gain), "--baseline", str(baseline)],
                                  input=frames, capture_output=True, check=False)
            if proc.returncode != 0:
                sys.exit(f"{name}: C runner failed (exit {proc.returncode}): {proc.stderr.decode()[-2000:]}")
            c = [json.loads(line) for line in proc.stdout.decode().splitlines()]
            sink = io.StringIO()
            monitor = MonitorStream(None, BeatStream(BeatModel.open(bundle, backend="openvino")))
            monitor.run(int16_source(io.BytesIO(frames), 360, leads, gain=gain, baseline=baseline), sink)
            py = [json.loads(line) for line in sink.getvalue().splitlines()]

            def of(events: list[dict], kind: str, keys: tuple[str, ...]) -> list[tuple]:
                return [tuple(e[k] for k in keys) for e in events if e.get("type") == kind]

            cb, pb = of(c, "beat", ("sample", "label")), of(py, "beat", ("sample", "label"))
            ce, pe = of(c, "episode", ("rhythm", "onset", "offset")), of(py, "episode", ("rhythm", "onset", "offset"))
            cw, pw = of(c, "window", ("index", "quality", "flags")), of(py, "window", ("index", "quality", "flags"))
            def differ(a: list[tuple], b: list[tuple]) -> int:  # position by position, plus any surplus
                return sum(x != y for x, y in zip(a, b, strict=False)) + abs(len(a) - len(b))

            row = {"record": name, "leads": leads, "signal_s": c[-1]["signal_s"], "beats": len(pb),
                   "beats_differ": differ(cb, pb), "episodes": len(pe), "episodes_differ": differ(ce, pe),
                   "windows_differ": differ(cw, pw),
                   "c_s": c[-1]["monitor_processing_s"], "python_s": py[-1]["monitor_processing_s"],
                   "c_rtf": c[-1]["monitor_real_time_factor"], "python_rtf": py[-1]["monitor_real_time_factor"]}
            rows.append(row)
            for k in totals:
                totals[k] += row[k]
            print(f"{name}: {row['beats']} beats ({row['beats_differ']} differ), {row['episodes']} episodes "
                  f"({row['episodes_differ']} differ), quality windows differing {row['windows_differ']}; RTF C "
                  f"{row['c_rtf']}, Python {row['python_rtf']}", flush=True)
    ratio = round(totals["python_s"] / totals["c_s"], 2)
    print(f"all: {totals['beats']} beats ({totals['beats_differ']} differ), {totals['episodes']} episodes "
          f"({totals['episodes_differ']} differ); RTF C {totals['signal_s'] / totals['c_s']:.1f}, Python "
          f"{totals['signal_s'] / totals['python_s']:.1f}; python time / C time {ratio}")
    report = {"benchmark": "firmware_monitor", "bundle": str(args.bundle or "test-budget chain"),
              "seconds": args.seconds, "command": sys.argv, "records": rows,
              "totals": totals, "ratios": {"python time / C time": ratio},
              "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "python": platform.python_version()},
              "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
