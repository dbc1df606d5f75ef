"""The C runner's arrhythmia monitor (devices/firmware/src/jefw_monitor.c) against the Python monitor.

The beat bundle of the test chain (tests/conftest.py `beat_bundle`: JEPA teacher -> beat head -> distilled student
-> RR / template fusion -> OpenVINO INT8, signed) is compiled into the runner; MIT-BIH records replayed as int16
frames through `jepa_edge_runner stream` and through `MonitorStream` must give the same quality windows, the same
R peaks, the same label for every beat, the same withheld beats and the same rhythm episodes.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import on_ci

from jepa_edge.devices.firmware import build_firmware

SANITIZE = os.environ.get("JEPA_EDGE_FIRMWARE_SANITIZE") or None


@pytest.fixture(scope="module")
def monitor_runner(beat_bundle: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("cmake") is None or shutil.which("cc") is None:
        if on_ci():
            pytest.fail("CI=true but cmake / cc are absent: the firmware monitor is compiled in CI")
        pytest.skip("no cmake / system C compiler (cc) on this machine")
    built = build_firmware(beat_bundle["bundle"], tmp_path_factory.mktemp("fw-monitor") / "build", werror=True,
                           sanitize=SANITIZE, public_key=beat_bundle["public"], require_signature=True)
    assert built.runner is not None
    return built.runner


def run(runner: Path, *args: object, stdin: bytes = b"") -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if SANITIZE:
        env.update(TBB_ENABLE_SANITIZERS="1", ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "detect_leaks=1"))
    return subprocess.run([str(runner), *map(str, args)], input=stdin, capture_output=True, timeout=600, env=env)


def frames_of(mitdb_dir: Path, record: str, seconds: float, leads: tuple[int, ...] = (0, 1)) -> tuple[bytes, float,
                                                                                                     float]:
    import wfdb

    rec = wfdb.rdrecord(str(mitdb_dir / record), physical=False, sampto=int(360 * seconds))
    frames = np.ascontiguousarray(rec.d_signal[:, list(leads)].astype("<i2"))
    return frames.tobytes(), float(rec.adc_gain[0]), float(rec.baseline[0])


def python_monitor(bundle: Path, frames: bytes, gain: float, baseline: float) -> list[dict]:
    from jepa_edge.devices.stream import int16_source
    from jepa_edge.devices.stream.monitor import BeatModel, BeatStream, MonitorStream

    sink = io.StringIO()
    monitor = MonitorStream(None, BeatStream(BeatModel.open(bundle)))
    monitor.run(int16_source(io.BytesIO(frames), 360, ["MLII", "V1"], gain=gain, baseline=baseline), sink)
    return [json.loads(line) for line in sink.getvalue().splitlines()]


def of_type(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e.get("type") == kind]


@pytest.mark.parametrize(("record", "seconds"), [("106", 600), ("105", 300)])
def test_c_monitor_labels_every_beat_as_the_python_monitor(beat_bundle: dict, monitor_runner: Path, mitdb_dir: Path,
                                                           record: str, seconds: int) -> None:
    """106: PVCs, couplets and bigeminy; 105: long stretches of real artefact whose beats are withheld."""
    bundle = beat_bundle["bundle"]
    frames, gain, baseline = frames_of(mitdb_dir, record, seconds)
    py = python_monitor(bundle, frames, gain, baseline)
    args = ("stream", bundle, "--fs", 360, "--leads", "MLII,V1", "--gain", gain, "--baseline", baseline)
    proc = run(monitor_runner, *args, stdin=frames)
    assert proc.returncode == 0, proc.stderr.decode()
    c = [json.loads(line) for line in proc.stdout.decode().splitlines()]

    # the quality windows: the same verdicts and flags, window for window
    assert [(e["index"], e["quality"], e["flags"]) for e in of_type(c, "window")] == [
        (e["index"], e["quality"], e["flags"]) for e in of_type(py, "window")]
    # every beat: the same R peak, the same label (N / S / V, withheld, or none near the ends)
    py_beats, c_beats = of_type(py, "beat"), of_type(c, "beat")
    assert [(e["sample"], e["label"]) for e in c_beats] == [(e["sample"], e["label"]) for e in py_beats]
    tol = json.loads((bundle / "manifest.json").read_text())["golden"]["tolerances"]["openvino-int8"]
    tol = float(tol["logits"] if isinstance(tol, dict) else tol)
    worst = max(abs(a - b) for pe, ce in zip(py_beats, c_beats, strict=True) if "p" in pe
                for a, b in zip(pe["p"], ce["p"], strict=True))
    assert worst <= tol + 1e-4  # softmax moves less than the logits; p is printed to 4 decimals
    assert [(e["rhythm"], e["onset"], e["offset"]) for e in of_type(c, "episode")] == [
        (e["rhythm"], e["onset"], e["offset"]) for e in of_type(py, "episode")]
    cs, ps = c[-1], py[-1]
    assert cs["type"] == ps["type"] == "summary" and cs["accounting"]["ok"]
    for key in ("beats", "classes", "episodes"):
        assert cs["beats"][key] == ps["beats"][key], key
    labels = {e["label"] for e in c_beats}
    if record == "106":
        assert {"N", "V"} <= labels and cs["beats"]["beats"]["labelled"] > 500
    else:
        assert cs["beats"]["beats"]["withheld"] > 20
        assert "noise" in {f for e in of_type(c, "window") for f in e["flags"]}


def test_c_monitor_is_independent_of_chunking(beat_bundle: dict, monitor_runner: Path, mitdb_dir: Path) -> None:
    frames, gain, baseline = frames_of(mitdb_dir, "119", 120)
    args = ("stream", beat_bundle["bundle"], "--fs", 360, "--leads", "MLII,V1", "--gain", gain, "--baseline", baseline)
    events = []
    for chunk in (7, 360, 5000):
        proc = run(monitor_runner, *args, "--chunk", chunk, stdin=frames)
        assert proc.returncode == 0, proc.stderr.decode()
        lines = [json.loads(line) for line in proc.stdout.decode().splitlines()]
        events.append([(e["sample"], e["label"], e.get("p")) for e in of_type(lines, "beat")]
                      + [(e["rhythm"], e["onset"], e["offset"]) for e in of_type(lines, "episode")])
    assert events[0] == events[1] == events[2] and len(events[0]) > 100
    # the monitor and its quality windows read the same lead list: an empty entry is skipped by both
    args = ("stream", beat_bundle["bundle"], "--fs", 360, "--leads", "MLII,,V1", "--gain", gain, "--baseline", baseline)
    proc = run(monitor_runner, *args, "--chunk", 360, stdin=frames)
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert proc.returncode == 0 and [(e["sample"], e["label"], e.get("p")) for e in of_type(lines, "beat")] == [
        e for e in events[1] if len(e) == 3 and isinstance(e[0], int)]


def test_c_monitor_refuses_frames_without_the_leads_it_reads(beat_bundle: dict, monitor_runner: Path,
                                                              mitdb_dir: Path) -> None:
    bundle = beat_bundle["bundle"]
    v1_only, gain, baseline = frames_of(mitdb_dir, "106", 20, leads=(1,))
    proc = run(monitor_runner, "stream", bundle, "--fs", 360, "--leads", "V1", "--gain", gain, stdin=v1_only)
    assert proc.returncode == 6 and "the beat model needs lead II" in proc.stderr.decode(), proc.stderr.decode()
    mlii_only, gain, baseline = frames_of(mitdb_dir, "106", 20, leads=(0,))
    proc = run(monitor_runner, "stream", bundle, "--fs", 360, "--leads", "MLII", "--gain", gain, stdin=mlii_only)
    assert proc.returncode == 6 and "a second lead" in proc.stderr.decode(), proc.stderr.decode()
    proc = run(monitor_runner, "stream", bundle, "--fs", 360, "--leads", "MLII,V1", stdin=b"\x00\x01\x02")
    assert proc.returncode == 6 and "stray bytes" in proc.stderr.decode(), proc.stderr.decode()


def test_c_runner_checks_the_beat_bundle_golden_windows(beat_bundle: dict, monitor_runner: Path) -> None:
    proc = run(monitor_runner, "golden", beat_bundle["bundle"])
    out = proc.stdout.decode()
    assert proc.returncode == 0, proc.stderr.decode()
    assert out.strip().splitlines()[-1].startswith("PASS golden")
    info = run(monitor_runner, "info").stdout.decode()
    assert "modality ecg-beat" in info


def test_beat_batches_fit_the_engines_batch_profile() -> None:
    """Jetson engines take batches up to EngineBuildConfig.max_batch; the Python and the C monitor never send more
    beats per engine call (a longer backlog is split)."""
    import re

    from jepa_edge.devices.stream.monitor import MonitorConfig
    from jepa_edge.runtimes.tensorrt_backend import EngineBuildConfig

    source = (Path(__file__).resolve().parents[1] / "devices" / "firmware" / "src" / "jefw_monitor.c").read_text()
    c_batch = int(re.search(r"#define MAX_BATCH (\d+)", source).group(1))
    assert c_batch == MonitorConfig().max_batch <= EngineBuildConfig().max_batch


def test_beat_header_carries_the_monitors_quality_windows(beat_bundle: dict) -> None:
    """The header's JEPA_EDGE_QUALITY_* are the windows the Python monitor checks (`quality_preprocessing`)."""
    import re

    from jepa_edge.devices.stream.monitor import quality_preprocessing

    header = (beat_bundle["bundle"] / "include" / "jepa_edge_model.h").read_text()
    q = quality_preprocessing(["MLII", "V1"])
    defines = dict(re.findall(r"#define JEPA_EDGE_QUALITY_(\w+) (\S+)", header))
    assert (int(defines["FS_HZ"]), int(defines["WINDOW_SAMPLES"]), int(defines["HOP_SAMPLES"])) == (
        q.fs, q.window, q.hop)
    body = header.split("jepa_edge_quality_sos[", 1)[1].split("};", 1)[0].split("{", 1)[1]
    assert [float(v) for v in body.replace("\n", " ").split(",") if v.strip()] == q.sos.ravel().tolist()
