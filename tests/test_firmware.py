"""The C firmware runner (devices/firmware/), compiled with the system compiler against a real cart-cpu bundle.

One bundle, built by `build_bundle` from real PTB-XL records (calibration and golden windows), of a real 2-lead
(II, V1) classifier: the tiny PTB-XL teacher cut to the two leads a MIT-BIH record carries, with a head fitted on
PTB-XL training folds. The runner must reproduce the golden inputs from the raw records (the header's
preprocessing), the golden outputs within the manifest's tolerances, and the Python streamer on a MIT-BIH replay
window for window; every bad input must end with one clear line and its exit code.

JEPA_EDGE_FIRMWARE_SANITIZE=address compiles the runner with AddressSanitizer for the whole file (run with
TBB_ENABLE_SANITIZERS=1, or ASan refuses the RTLD_DEEPBIND dlopen of OpenVINO's oneTBB).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import TWO_LEADS, int8_tolerance

from jepa_edge.devices.firmware import (
    FIRMWARE_DIR,
    FirmwareError,
    build_firmware,
    runner_support,
    tensorrt_include_dir,
)

REPO = Path(__file__).resolve().parents[1]
RECORD = "101"
SECONDS = 100  # of the record streamed: 91 windows of 10 s at a 1 s hop
SANITIZE = os.environ.get("JEPA_EDGE_FIRMWARE_SANITIZE") or None


def _data_root() -> Path:
    return Path(os.environ.get("JEPA_EDGE_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session", autouse=True)
def _real_data_and_compiler_in_ci() -> None:
    """In CI the real data and a compiler are part of the test: their absence fails, it does not skip."""
    if os.environ.get("CI") != "true":
        return
    root = _data_root()
    missing = [str(p) for p in (root / "ptbxl" / "ptbxl_database.csv", root / "mitdb" / f"{RECORD}.hea")
               if not p.is_file()]
    missing += [tool for tool in ("cmake", "cc") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"CI=true but {missing} are absent: the firmware tests need real PTB-XL and MIT-BIH data "
                    "(JEPA_EDGE_DATA) and a C toolchain")


# -- fixtures ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def toolchain() -> None:
    if shutil.which("cmake") is None or shutil.which("cc") is None:
        pytest.skip("no cmake / system C compiler (cc) on this machine")


@pytest.fixture(scope="module")
def bundle(two_lead_bundle: Path) -> Path:
    return two_lead_bundle


@pytest.fixture(scope="module")
def runner(bundle: Path, toolchain: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    built = build_firmware(bundle, tmp_path_factory.mktemp("fw-build") / "build", werror=True, sanitize=SANITIZE)
    assert built.trt_runner is None and built.runner is not None
    return built.runner


def run(runner: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if SANITIZE:  # oneTBB dlopens tbbbind with RTLD_DEEPBIND, which ASan refuses unless TBB is told not to
        env.update(TBB_ENABLE_SANITIZERS="1", ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "detect_leaks=1"))
    return subprocess.run([str(runner), *map(str, args)], input=stdin, capture_output=True, timeout=600, env=env)


def text(proc: subprocess.CompletedProcess) -> tuple[str, str]:
    return proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8")


@pytest.fixture
def bundle_copy(bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundle, tmp_path / "bundle"))


def rewrite_manifest(path: Path, change) -> None:
    from jepa_edge.bundle.manifest import manifest_bytes

    manifest = json.loads((path / "manifest.json").read_text())
    change(manifest)
    (path / "manifest.json").write_bytes(manifest_bytes(manifest))




# -- golden ------------------------------------------------------------------------------------------------------
def test_bundle_carries_raw_golden_files_hashed_by_the_manifest(bundle: Path) -> None:
    from jepa_edge.bundle import open_bundle

    b = open_bundle(bundle)
    golden = b.manifest["golden"]
    assert golden["raw"] == "golden/raw/index.json"
    index = json.loads((bundle / golden["raw"]).read_text())
    inputs, expected = b.golden()
    raw = np.fromfile(bundle / index["inputs"]["path"], dtype="<f4").reshape(index["inputs"]["shape"])
    np.testing.assert_array_equal(raw, inputs)
    for name, spec in index["outputs"].items():
        np.testing.assert_array_equal(np.fromfile(bundle / spec["path"], dtype="<f4").reshape(spec["shape"]),
                                      expected[name])
    roles = {e["path"]: e["role"] for e in b.manifest["files"]}
    assert roles["golden/raw/index.json"] == "raw-golden-index" and roles["golden/raw/sources.f64"]
    sources = b.golden_sources()
    assert len(sources) == len(inputs) and all(s.signal.shape[0] == len(TWO_LEADS) for s in sources)
    pre = b.preprocessing  # the raw records, preprocessed in Python, are the golden inputs
    for src, x in zip(sources, inputs, strict=True):
        np.testing.assert_array_equal(pre(src.signal, src.fs)[:, src.offset : src.offset + pre.window], x)


def test_golden_outputs_and_preprocessing_pass(bundle: Path, runner: Path) -> None:
    proc = run(runner, "golden", bundle)
    out, err = text(proc)
    assert proc.returncode == 0, err + out
    assert err.strip() == ""  # nothing to complain about (under ASan: no error, no leak report)
    lines = out.splitlines()
    assert re.match(r"ok bundle .*: \d+ files match manifest.json", lines[0])
    assert '"inference_precision": "f32"' in lines[1] and '"threads": 2' in lines[1]  # the cart-x86 profile's pins
    pre = [float(m) for m in re.findall(r"ok preprocess window \d+: max \|diff\| (\S+) <= 1e-05", out)]
    count = json.loads((bundle / "manifest.json").read_text())["golden"]["count"]
    assert len(pre) == count and max(pre) <= 1e-5
    for name in ("logits", "embedding"):
        diffs = [float(m) for m in re.findall(rf"ok golden window \d+ {name}: max \|diff\| (\S+) <= ", out)]
        assert len(diffs) == count and max(diffs) <= int8_tolerance(bundle, name)
    assert lines[-1].startswith(f"PASS golden: {count} windows, {3 * count} checks, 0 failed")


def test_one_flipped_weight_byte_fails_before_anything_runs(bundle_copy: Path, runner: Path) -> None:
    weights = bundle_copy / "openvino" / "model_int8.bin"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    proc = run(runner, "golden", bundle_copy)
    out, err = text(proc)
    assert proc.returncode == 3
    assert err.splitlines() == [
        "FAIL openvino/model_int8.bin: SHA-256 differs from manifest.json (file changed or corrupted)",
        f"error: {bundle_copy}: 1 file(s) fail verification against manifest.json; nothing was run"]
    assert out == ""


def test_golden_outputs_beyond_tolerance_fail_one_line_each(bundle_copy: Path, runner: Path) -> None:
    from jepa_edge.io import sha256_file

    logits = bundle_copy / "golden" / "raw" / "logits.f32"
    values = np.fromfile(logits, dtype="<f4").reshape(-1, 5)
    # two windows' golden logits moved 1.0 beyond the tolerance, whatever this build's is (it depends on the INT8
    # error of the fixture's classifier, whose head depends on the RNG state the session left)
    tol = int8_tolerance(bundle_copy)
    values[[1, 4], 2] += tol + 1.0
    values.astype("<f4").tofile(logits)

    def rehash(manifest: dict) -> None:  # as if the bundle had been built so: the hashes pass, the numbers do not
        for entry in manifest["files"]:
            if entry["path"] == "golden/raw/logits.f32":
                entry["sha256"], entry["bytes"] = sha256_file(logits), logits.stat().st_size

    rewrite_manifest(bundle_copy, rehash)
    proc = run(runner, "golden", bundle_copy)
    out, err = text(proc)
    assert proc.returncode == 1
    fails = [line for line in err.splitlines() if line.startswith("FAIL")]
    # the moved logit differs by the shift give or take what INT8 already differed (less than the tolerance)
    found = [re.match(r"FAIL golden window ([14]) logits: max \|diff\| ([0-9.e+-]+) > tolerance", f) for f in fails]
    assert len(fails) == 2 and all(found), fails
    assert {m.group(1) for m in found} == {"1", "4"} and all(
        tol < float(m.group(2)) < 2 * tol + 1.0 for m in found), fails
    assert out.splitlines()[-1].startswith("FAIL golden:")


# -- bad bundles and bad streams: one clear line, a documented exit code, never a crash ---------------------------
def test_bad_bundles_give_a_clear_line_and_exit_code(bundle: Path, bundle_copy: Path, runner: Path,
                                                     tmp_path: Path) -> None:
    from jepa_edge.bundle import update_bundle

    other = Path(shutil.copytree(bundle, tmp_path / "other"))
    manifest = json.loads((other / "manifest.json").read_text())
    update_bundle(other, set_fields={"model": {**manifest["model"], "name": "another-model"}})
    proc = run(runner, "golden", other)
    assert proc.returncode == 3
    assert "header from another bundle" in text(proc)[1] and "rebuild the runner" in text(proc)[1]

    (bundle_copy / "openvino" / "model_int8.xml").unlink()
    proc = run(runner, "golden", bundle_copy)
    assert proc.returncode == 3
    assert "FAIL openvino/model_int8.xml: listed in manifest.json but missing" in text(proc)[1]

    proc = run(runner, "golden", bundle, "--role", "openvino-int4-xml")
    assert proc.returncode == 3 and "no OpenVINO IR with role openvino-int4-xml" in text(proc)[1]

    other2 = Path(shutil.copytree(bundle, tmp_path / "unlisted"))
    (other2 / "notes.txt").write_text("added later")
    proc = run(runner, "golden", other2)
    assert proc.returncode == 3 and "FAIL notes.txt: not listed in manifest.json" in text(proc)[1]

    rewrite_manifest(other2, lambda m: m["model"].__setitem__("modality", "echo"))
    proc = run(runner, "stream", other2, "--fs", "360", "--leads", "II,V1")
    assert proc.returncode == 4 and "jepa-edge echo infer" in text(proc)[1]
    rewrite_manifest(other2, lambda m: m["model"].update(modality="ecg", output={"kind": "regression",
                                                                                 "names": m["labels"]}))
    proc = run(runner, "golden", other2)
    assert proc.returncode == 4 and "a regression output" in text(proc)[1]

    (other2 / "manifest.json").write_bytes(b'{"files": [1, 2,]}')
    proc = run(runner, "golden", other2)
    assert proc.returncode == 3 and "invalid JSON at byte 16" in text(proc)[1]
    proc = run(runner, "golden", tmp_path / "nowhere")
    assert proc.returncode == 3 and "not a bundle folder" in text(proc)[1]
    for args in ([], ["golden"], ["stream", bundle], ["stream", bundle, "--fs", "360.5", "--leads", "II"],
                 ["golden", bundle, "--fs", "360"]):
        proc = run(runner, *args)
        assert proc.returncode == 2 and text(proc)[1].count("error:") <= 1 and "usage:" in text(proc)[1], args


def test_short_and_odd_sized_stdin_frames_fail_clearly(bundle: Path, runner: Path) -> None:
    stream = ("stream", bundle, "--fs", "360", "--leads", "MLII,V1", "--gain", "200", "--baseline", "1024")
    proc = run(runner, *stream, stdin=b"\x00\x04\x00")  # 3 bytes: not even one 4-byte frame
    assert proc.returncode == 6
    assert text(proc)[1].strip() == ("error: stdin: stream ended inside a frame (3 stray bytes; frames are 4 bytes = "
                                     "2 leads x int16)")
    one_window = np.full((360 * 11, 2), 1024, dtype="<i2").tobytes()
    proc = run(runner, *stream, stdin=one_window + b"\x07")  # a whole window, then a stray byte
    out, err = text(proc)
    assert proc.returncode == 6 and "1 stray bytes" in err
    assert [json.loads(line)["type"] for line in out.splitlines()] == ["window"]  # what came before was reported
    proc = run(runner, *stream, stdin=one_window[: 4 * 360 * 2])  # 2 s: shorter than one window
    out, err = text(proc)
    assert proc.returncode == 6 and "ended before the first window of 10 s" in err
    summary = json.loads(out.splitlines()[-1])
    assert summary["type"] == "summary" and summary["accounting"]["samples_in"] == 720 and summary["accounting"]["ok"]
    proc = run(runner, *stream[:4], "--leads", "I,II", stdin=one_window)
    assert proc.returncode == 6 and "lead V1 is missing" in text(proc)[1]


# -- streaming ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mitdb_frames(mitdb_dir: Path) -> tuple[bytes, float, float]:
    """int16 frames of MIT-BIH 101 (MLII, V1) as an ADC gives them, with faults injected: V1 held flat for 4 s
    (lead off) and MLII at the rail for 0.5 s (saturation), so the quality paths are compared too."""
    import wfdb

    rec = wfdb.rdrecord(str(mitdb_dir / RECORD), physical=False, sampto=int(360 * SECONDS))
    frames = rec.d_signal.astype("<i2")
    frames[int(360 * 30) : int(360 * 34), 1] = frames[int(360 * 30), 1]
    frames[int(360 * 60) : int(360 * 60.5), 0] = 32767
    return np.ascontiguousarray(frames).tobytes(), float(rec.adc_gain[0]), float(rec.baseline[0])


def test_stream_matches_the_python_streamer_window_for_window(bundle: Path, runner: Path, mitdb_frames) -> None:
    from jepa_edge.devices.stream import StreamClassifier, int16_source

    frames, gain, baseline = mitdb_frames
    clf = StreamClassifier.from_bundle(bundle)
    sink = io.StringIO()
    py_summary = clf.run(int16_source(io.BytesIO(frames), 360, ["MLII", "V1"], gain=gain, baseline=baseline), sink)
    py = [json.loads(line) for line in sink.getvalue().splitlines()]
    args = ("stream", bundle, "--fs", "360", "--leads", "MLII,V1", "--gain", gain, "--baseline", baseline)
    proc = run(runner, *args, stdin=frames)
    out, err = text(proc)
    assert proc.returncode == 0, err
    c = [json.loads(line) for line in out.splitlines()]
    c_summary = c[-1]
    py_windows = [e for e in py if e["type"] == "window"]
    c_windows = [e for e in c if e["type"] == "window"]
    assert len(c_windows) == len(py_windows) == SECONDS - 9
    tol = int8_tolerance(bundle)  # sigmoid is 1/4-Lipschitz: score differences are below the logit tolerance
    worst = 0.0
    for a, b in zip(py_windows, c_windows, strict=True):
        for key in ("index", "t_start", "t_end", "quality", "flags", "above", "decisions", "onset", "offset"):
            assert a[key] == b[key], (key, a, b)
        if "flatline" in a["flags"]:
            assert a["flag_detail"]["flatline"] == b["flag_detail"]["flatline"]
        if "noise" in a["flags"]:  # the same noisy leads, and every lead's measures (printed to 4 decimals)
            pa, cb = a["flag_detail"]["noise"], b["flag_detail"]["noise"]
            assert pa.keys() == cb.keys() and pa["leads"] == cb["leads"], (pa, cb)
            for key in set(pa) - {"leads"}:
                np.testing.assert_allclose(pa[key], cb[key], atol=2e-4, err_msg=key)
        if a["scores"] is None:
            assert b["scores"] is None
            continue
        assert a["scores"].keys() == b["scores"].keys()
        worst = max(worst, max(abs(a["scores"][k] - b["scores"][k]) for k in a["scores"]))
    assert worst <= tol
    flagged = {f for e in py_windows for f in e["flags"]}
    assert {"flatline", "saturation"} <= flagged  # the injected faults were seen by both
    assert "noise" in flagged  # 101's baseline wander near 90 s: the artefact score's path is compared too
    assert c_summary["classified"] == py_summary["classified"] and c_summary["flagged"] == py_summary["flagged"]
    for key in ("samples_in", "model_samples", "model_samples_expected", "windows"):
        assert c_summary["accounting"][key] == py_summary["accounting"][key], key
    assert c_summary["accounting"]["ok"] and c_summary["resampler"] == py_summary["resampler"]
    assert c_summary["decision_seconds"] == py_summary["decision_seconds"]
    # chunking does not change a number: 7 frames per read gives the same events as 360
    small = [json.loads(line) for line in text(run(runner, *args, "--chunk", "7", stdin=frames))[0].splitlines()]
    assert [e.get("scores") for e in small[:-1]] == [e.get("scores") for e in c[:-1]]


# -- the C constants are the Python ones ------------------------------------------------------------------------
def test_c_stream_defaults_equal_the_python_streamer_defaults() -> None:
    from jepa_edge.devices.stream import QualityConfig, StreamConfig
    from jepa_edge.devices.stream.quality import LOG_EPS

    config = (FIRMWARE_DIR / "src" / "jefw_config.h").read_text()
    c = {k: float(v) for k, v in re.findall(r"#define JEFW_(?:QUALITY|STREAM)_(\w+) (-?[0-9.]+)", config)}
    q, s = QualityConfig(), StreamConfig()
    weights = dict(zip(("HF_MV", "BAND_STD_MV", "LF_RATIO", "PTP_RATIO", "PERIODICITY"), q.artefact_weights,
                       strict=True))
    assert c == {"FLAT_PTP_MV": q.flat_ptp_mv, "FLAT_S": q.flat_s, "SATURATION_MAX_FRACTION": q.saturation_max_fraction,
                 "NOISE_HF_MV": q.noise_hf_mv, "NOISE_BAND_STD_MV": q.noise_band_std_mv,
                 **{f"ARTEFACT_W_{k}": v for k, v in weights.items()}, "ARTEFACT_MAX": q.artefact_max,
                 "LOG_EPS": LOG_EPS, "SEGMENT_S": q.segment_s, "PERIODICITY_FS": q.periodicity_fs,
                 "PERIOD_MIN_S": q.period_min_s, "PERIOD_MAX_S": q.period_max_s, "HYSTERESIS": s.hysteresis,
                 "ON_WINDOWS": s.on_windows, "OFF_WINDOWS": s.off_windows, "CHUNK": 360}


def test_header_describes_the_resampler_and_the_device_profile(bundle: Path) -> None:
    from jepa_edge.data import preprocess

    header = (bundle / "include" / "jepa_edge_model.h").read_text()
    assert f"#define JEPA_EDGE_RESAMPLE_MAX_DENOMINATOR {preprocess.RESAMPLE_MAX_DENOMINATOR}" in header
    assert f"#define JEPA_EDGE_RESAMPLE_HALF_LEN_PER_RATE {preprocess.RESAMPLE_HALF_LEN_PER_RATE}" in header
    assert f"#define JEPA_EDGE_RESAMPLE_KAISER_BETA {preprocess.RESAMPLE_KAISER_BETA!r}" in header
    assert '#define JEPA_EDGE_DEVICE_PROFILE "cart-x86"' in header and "#define JEPA_EDGE_DEVICE_THREADS 2 " in header
    assert '#define JEPA_EDGE_OPENVINO_PRECISION_HINT "f32" ' in header


# -- the build entry point --------------------------------------------------------------------------------------
def test_build_refuses_what_the_runner_cannot_run(bundle: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from jepa_edge.cli import app

    assert runner_support({"model": {"modality": "ecg"}}) is None
    assert "echo infer" in runner_support({"model": {"modality": "echo", "output": {"kind": "regression"}}})
    assert "multiclass output" in runner_support({"model": {"modality": "ecg", "output": {"kind": "multiclass"}}})
    with pytest.raises(FirmwareError, match="must be outside the bundle"):
        build_firmware(bundle, bundle / "build")
    with pytest.raises(FirmwareError, match="tensorrt='maybe'"):
        build_firmware(bundle, tmp_path / "b", tensorrt="maybe")
    if tensorrt_include_dir() is None:
        with pytest.raises(FirmwareError, match="compiles only where TensorRT is installed"):
            build_firmware(bundle, tmp_path / "b", tensorrt="on")
    result = CliRunner().invoke(app, ["firmware", "build", str(tmp_path / "missing"), "--out", str(tmp_path / "b")])
    assert result.exit_code == 2 and "not a bundle folder" in result.output


def test_tensorrt_twin_compiles_against_the_real_tensorrt_headers() -> None:
    """The C++ TensorRT runner compiles (syntax and types against NvInferRuntime.h and cuda_runtime_api.h) wherever
    TensorRT's headers exist: TENSORRT_ROOT, the JetPack paths, or JEPA_EDGE_TENSORRT_INCLUDE."""
    include = os.environ.get("JEPA_EDGE_TENSORRT_INCLUDE") or tensorrt_include_dir()
    if include is None:
        pytest.skip("TensorRT headers (NvInferRuntime.h) are not installed here: the C++ TensorRT runner compiles "
                    "only where TensorRT is (a Jetson with JetPack, a GPU server); set JEPA_EDGE_TENSORRT_INCLUDE")
    cuda = [Path(p) for p in (os.environ.get("CUDA_HOME", ""), "/usr/local/cuda", *sorted(
        map(str, Path("/usr/local").glob("cuda-*")), reverse=True)) if p and (Path(p) / "include").is_dir()]
    if not cuda or shutil.which("c++") is None:
        pytest.skip("TensorRT headers found, but no CUDA toolkit headers or C++ compiler to compile against")
    proc = subprocess.run(["c++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", "-isystem",
                           str(include), "-isystem", str(cuda[0] / "include"), "-I", str(FIRMWARE_DIR / "src"),
                           str(FIRMWARE_DIR / "src" / "jefw_engine_tensorrt.cpp")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
