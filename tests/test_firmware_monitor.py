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
from conftest import int8_tolerance, on_ci

from jepa_edge.devices.firmware import build_firmware

SANITIZE = os.environ.get("JEPA_EDGE_FIRMWARE_SANITIZE") or None
SCRIPTS = Path(__file__).resolve().parent / "scripts"


def require_toolchain() -> None:
    """Skip without cmake / cc; under CI their absence is a failure (the firmware monitor is compiled in CI)."""
    if shutil.which("cmake") is None or shutil.which("cc") is None:
        if on_ci():
            pytest.fail("CI=true but cmake / cc are absent: the firmware monitor is compiled in CI")
        pytest.skip("no cmake / system C compiler (cc) on this machine")


@pytest.fixture(scope="module")
def monitor_runner(beat_bundle: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_toolchain()
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


def python_monitor(bundle: Path, frames: bytes, gain: float, baseline: float, windows: Path | None = None
                   ) -> list[dict]:
    from jepa_edge.devices.stream import StreamClassifier, int16_source
    from jepa_edge.devices.stream.monitor import BeatModel, BeatStream, MonitorStream

    sink = io.StringIO()
    monitor = MonitorStream(StreamClassifier.from_bundle(windows) if windows else None,
                            BeatStream(BeatModel.open(bundle)))
    monitor.run(int16_source(io.BytesIO(frames), 360, ["MLII", "V1"], gain=gain, baseline=baseline), sink)
    return [json.loads(line) for line in sink.getvalue().splitlines()]


def of_type(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e.get("type") == kind]


def assert_same_beats_and_episodes(py: list[dict], c: list[dict], bundle: Path) -> None:
    """Every beat: the same R peak and label (N / S / V, withheld, or none near the ends), p within the INT8
    tolerance; the same rhythm episodes; the same summary counts."""
    py_beats, c_beats = of_type(py, "beat"), of_type(c, "beat")
    assert [(e["sample"], e["label"]) for e in c_beats] == [(e["sample"], e["label"]) for e in py_beats]
    worst = max(abs(a - b) for pe, ce in zip(py_beats, c_beats, strict=True) if "p" in pe
                for a, b in zip(pe["p"], ce["p"], strict=True))
    assert worst <= int8_tolerance(bundle) + 1e-4  # softmax moves less than the logits; p is printed to 4 decimals
    assert [(e["rhythm"], e["onset"], e["offset"]) for e in of_type(c, "episode")] == [
        (e["rhythm"], e["onset"], e["offset"]) for e in of_type(py, "episode")]
    cs, ps = c[-1], py[-1]
    assert cs["type"] == ps["type"] == "summary" and cs["accounting"]["ok"]
    for key in ("beats", "classes", "episodes"):
        assert cs["beats"][key] == ps["beats"][key], key


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
    assert_same_beats_and_episodes(py, c, bundle)
    cs = c[-1]
    labels = {e["label"] for e in of_type(c, "beat")}
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


# -- a window classifier beside the beat model: one runner, two bundles ------------------------------------------
@pytest.fixture(scope="module")
def paired_runner(two_lead_bundle: Path, beat_bundle: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The runner built with the 2-lead window classifier and the beat bundle (`jepa-edge firmware build WINDOW
    --beats BEAT`)."""
    require_toolchain()
    built = build_firmware(two_lead_bundle, tmp_path_factory.mktemp("fw-paired") / "build", beats=beat_bundle["bundle"],
                           werror=True, sanitize=SANITIZE)
    assert built.runner is not None and built.beat_bundle == beat_bundle["bundle"].resolve()
    return built.runner


def test_c_window_classifier_and_monitor_stream_as_python_does(two_lead_bundle: Path, beat_bundle: dict,
                                                               paired_runner: Path, mitdb_dir: Path) -> None:
    """`stream WINDOW --beats BEAT` against `jepa-edge stream WINDOW --beats BEAT` (MonitorStream with a window
    classifier) on 5 min of MIT-BIH 106: the same scored windows, whose verdicts withhold beats, the same beats
    and episodes."""
    beats = beat_bundle["bundle"]
    frames, gain, baseline = frames_of(mitdb_dir, "106", 300)
    py = python_monitor(beats, frames, gain, baseline, windows=two_lead_bundle)
    args = ("stream", two_lead_bundle, "--beats", beats, "--fs", 360, "--leads", "MLII,V1", "--gain", gain,
            "--baseline", baseline)
    proc = run(paired_runner, *args, stdin=frames)
    assert proc.returncode == 0, proc.stderr.decode()
    c = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    keys = ("index", "t_start", "t_end", "quality", "flags", "above", "decisions", "onset", "offset")
    py_windows, c_windows = of_type(py, "window"), of_type(c, "window")
    assert [[e[k] for k in keys] for e in c_windows] == [[e[k] for k in keys] for e in py_windows]
    scored = [(a["scores"], b["scores"]) for a, b in zip(py_windows, c_windows, strict=True) if a["scores"]]
    assert len(scored) > 200 and all(b is not None for _, b in scored)  # the window classifier ran, not quality only
    worst = max(abs(a[k] - b[k]) for a, b in scored for k in a)
    assert worst <= int8_tolerance(two_lead_bundle)
    assert_same_beats_and_episodes(py, c, beats)
    cs, ps = c[-1], py[-1]
    assert cs["classified"] == ps["classified"] == len(scored) and set(scored[0][1]) == {"CD", "HYP", "MI", "NORM",
                                                                                          "STTC"}
    assert cs["beats"]["beats"]["labelled"] > 250 and "V" in {e["label"] for e in of_type(c, "beat")}
    # the same runner still runs each bundle alone: the window stream, and the monitor on quality-only windows
    alone = run(paired_runner, "stream", two_lead_bundle, *args[4:], stdin=frames)
    events = [json.loads(line) for line in alone.stdout.decode().splitlines()]
    assert alone.returncode == 0 and not of_type(events, "beat")
    assert [e["scores"] for e in of_type(events, "window")] == [e["scores"] for e in c_windows]
    monitor_alone = run(paired_runner, "stream", beats, *args[4:], stdin=frames)
    assert monitor_alone.returncode == 0, monitor_alone.stderr.decode()
    assert_same_beats_and_episodes(python_monitor(beats, frames, gain, baseline),
                                   [json.loads(line) for line in monitor_alone.stdout.decode().splitlines()], beats)


def test_two_bundle_runner_checks_both_and_refuses_them_swapped(two_lead_bundle: Path, beat_bundle: dict,
                                                                paired_runner: Path, monitor_runner: Path,
                                                                tmp_path: Path) -> None:
    from jepa_edge.devices.firmware import FirmwareError

    beats = beat_bundle["bundle"]
    for bundle in (two_lead_bundle, beats):  # golden mode picks the compiled-in model whose header is the bundle's
        proc = run(paired_runner, "golden", bundle)
        assert proc.returncode == 0 and proc.stdout.decode().strip().splitlines()[-1].startswith("PASS golden"), (
            proc.stdout.decode(), proc.stderr.decode())
    info = run(paired_runner, "info").stdout.decode()
    assert "modality ecg\n" in info and "\nbeats\n" in info and "modality ecg-beat" in info
    stream = ("--fs", 360, "--leads", "MLII,V1")
    cases = [
        (monitor_runner, ("stream", beats, "--beats", beats), 2, "built against one bundle"),
        (paired_runner, ("stream", beats, "--beats", beats), 2, "with --beats, BUNDLE is the window classifier"),
        (paired_runner, ("stream", two_lead_bundle, "--beats", two_lead_bundle), 2, "the window classifier's bundle"),
        (paired_runner, ("golden", two_lead_bundle, "--beats", beats), 2, "unknown option for golden mode"),
        (monitor_runner, ("stream", two_lead_bundle), 4, "compiled against an ecg-beat header"),
    ]
    for runner, args, code, message in cases:
        proc = run(runner, *args, *stream, stdin=b"")
        assert proc.returncode == code and message in proc.stderr.decode(), (args, proc.stderr.decode())
    with pytest.raises(FirmwareError, match="not a beat model"):
        build_firmware(two_lead_bundle, tmp_path / "b1", beats=two_lead_bundle)
    with pytest.raises(FirmwareError, match="the first bundle is the window classifier"):
        build_firmware(beats, tmp_path / "b2", beats=beats)


# -- the RR spread features, number for number ----------------------------------------------------------------
def test_c_rr_features_equal_pythons_on_mitdb_beats(mitdb_dir: Path, tmp_path: Path) -> None:
    """jefw_rr_features / jefw_rr_spread_features against `rr_features(..., spread=True)` on every reference beat of
    three records (106: PVCs and bigeminy; 113: sinus arrhythmia; 119: bigeminy and trigeminy), from each
    beat's stream view (the history + 1 beats before it): the same arithmetic as numpy, sums pairwise, so equal up
    to the last bits of `log`. Bit-equal on an AVX2 machine; with AVX-512, numpy's vectorised log differs from
    libm's by an ulp on ~0.5 % of the values (1.1e-16 at most), hence the relative 1e-12."""
    from conftest import FIRMWARE_SRC, compile_c

    from jepa_edge.tasks.beats import RR_CLIP, RR_HISTORY, beat_preprocessing, read_record_beats, rr_features

    driver = compile_c([FIRMWARE_SRC / "jefw_beats.c", FIRMWARE_SRC / "jefw_util.c", SCRIPTS / "rr_driver.c"],
                       tmp_path / "rr_driver", "the firmware RR features")
    pre = beat_preprocessing()
    lines, expected = [], []
    for record in ("106", "113", "119"):
        samples = read_record_beats(mitdb_dir, record, pre).samples
        offline = rr_features(samples, spread=True)
        for i in range(len(samples)):
            view = samples[max(0, i - RR_HISTORY - 1) : i + 1]
            lines.append(" ".join(map(str, [len(view), *view.tolist()])))
            # the stream's view: no next beat (post-RR falls back to pre-RR), the spread as offline
            expected.append(np.r_[rr_features(view)[-1], offline[i, 3:]])
    done = subprocess.run([str(driver), str(RR_HISTORY), repr(RR_CLIP)], input="\n".join(lines), text=True,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    got = np.array([[float(v) for v in line.split()] for line in done.stdout.splitlines()])
    want = np.array(expected)
    assert got.shape == want.shape and len(want) > 5000
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    spread = want[:, 5]
    assert (np.abs(spread) == RR_CLIP).sum() > 20 and (np.abs(spread) < 0.5).mean() > 0.5  # both regimes seen


def test_c_rr_spread_constants_equal_pythons() -> None:
    import re

    from jepa_edge.tasks import beats

    source = (Path(__file__).resolve().parents[1] / "devices" / "firmware" / "src" / "jefw_beats.c").read_text()
    c = {k: float(v) for k, v in re.findall(r"#define (RR_\w+) (-?[0-9.]+)\n", source)}
    assert c == {name: getattr(beats, name) for name in ("RR_SPREAD_EPS", "RR_MAD_SCALE", "RR_Z_EPS", "RR_Z_MAX",
                                                        "RR_SPREAD_FLOOR")}

