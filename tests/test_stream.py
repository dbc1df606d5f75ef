"""Streaming ECG classification on real MIT-BIH records: equality with offline inference, chunk-size invariance,
quality flags on injected faults, exact sample accounting, lead checks, sources, bundle and CLI."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import wfdb
from scipy.signal import resample_poly

from jepa_edge.data.ecg import read_record
from jepa_edge.data.errors import RecordError
from jepa_edge.data.preprocess import EcgPreprocessing, resample
from jepa_edge.devices.stream import (
    PolyphaseResampler,
    QualityConfig,
    StreamClassifier,
    StreamConfig,
    StreamError,
    int16_source,
    iterator_source,
    record_source,
)
from jepa_edge.models.checkpoint import save_model
from jepa_edge.models.ecg import EcgEncoder, EcgEncoderSpec
from jepa_edge.models.heads import Classifier, LinearHead
from jepa_edge.runtimes import open_engine

LABELS = ["NORM", "MI", "STTC", "CD", "HYP"]
RECORD = "101"  # MLII + V1, 30 min at 360 Hz
FS_IN = 360.0


def _classifier_dir(out: Path, leads: tuple[str, ...], fit_on: np.ndarray | None) -> Path:
    """A vit-tiny classifier for `leads` (seeded weights) in the one model-folder format, with real preprocessing."""
    torch.manual_seed(0)
    pre = EcgPreprocessing(leads=leads)
    if fit_on is not None:
        pre = pre.fit(pre.filter_record(fit_on, FS_IN)[None])
    encoder = EcgEncoder(EcgEncoderSpec("vit-tiny", leads=len(leads)))
    model = Classifier(encoder, LinearHead(encoder.dim, len(LABELS))).eval()
    meta = {"kind": "classifier", "encoder": encoder.spec.to_dict(),
            "head": {"kind": "linear", "dim": encoder.dim, "num_outputs": len(LABELS)},
            "labels": LABELS, "thresholds": [0.5] * len(LABELS), "task": "multilabel",
            "preprocessing": pre.to_dict()}
    return save_model(out, model, meta)


@pytest.fixture(scope="module")
def record_path(mitdb_dir: Path) -> Path:
    return mitdb_dir / RECORD


@pytest.fixture(scope="module")
def record_mv(record_path: Path) -> np.ndarray:
    """(samples, 2) mV: MLII (as II) and V1."""
    return read_record(record_path, leads=("II", "V1")).signal.T.copy()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, record_mv: np.ndarray) -> Path:
    return _classifier_dir(tmp_path_factory.mktemp("stream") / "student", ("II", "V1"), record_mv[:36000].T)


@pytest.fixture(scope="module")
def onnx_path(model_dir: Path) -> Path:
    from jepa_edge.runtimes.export import export_classifier_onnx

    return export_classifier_onnx(model_dir, model_dir.parent / "student.onnx")


@pytest.fixture(scope="module")
def engine(onnx_path: Path):
    return open_engine(onnx_path, threads=1)


@pytest.fixture(scope="module")
def pre(model_dir: Path) -> EcgPreprocessing:
    return EcgPreprocessing.from_dict(json.loads((model_dir / "meta.json").read_text())["preprocessing"])


class RecordingEngine:
    """Wraps a real engine and keeps every window it was given (to compare with offline windows)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.seen: list[np.ndarray] = []

    def outputs(self, x: np.ndarray) -> dict[str, np.ndarray]:
        self.seen.append(np.array(x))
        return self.inner.outputs(x)

    def info(self) -> dict:
        return self.inner.info()


def _stream(clf: StreamClassifier, data: np.ndarray, chunk: int, leads=("II", "V1")) -> list[dict]:
    clf.start(FS_IN, leads, source="test")
    events: list[dict] = []
    for s in range(0, data.shape[0], chunk):
        events += clf.push(data[s : s + chunk])
    return events + clf.finish()


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z.astype(np.float64)))


# -- resampler -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("fs_in", "fs_out"), [(360, 500), (250, 500), (1000, 500), (128, 500), (500, 500)])
def test_resampler_equals_resample_poly_for_any_chunking(fs_in: int, fs_out: int, record_mv: np.ndarray) -> None:
    x = record_mv[:4001].T
    rng = np.random.default_rng(1)
    r = PolyphaseResampler(fs_in, fs_out, 2)
    parts, s = [], 0
    while s < x.shape[1]:
        n = int(rng.integers(1, 300))
        parts.append(r.push(x[:, s : s + n], np.zeros(min(n, x.shape[1] - s), np.uint8))[0])
        s += n
    parts.append(r.flush()[0])
    streamed = np.concatenate(parts, axis=1)
    offline = resample(x, fs_in, fs_out)
    assert streamed.shape == offline.shape
    np.testing.assert_allclose(streamed, offline, rtol=0, atol=1e-12)
    if fs_in != fs_out:  # and the offline definition is scipy's resample_poly
        np.testing.assert_allclose(offline, resample_poly(x, r.up, r.down, axis=-1), atol=1e-12)
    assert r.consumed == x.shape[1] and r.produced == offline.shape[1]


# -- streaming == offline ------------------------------------------------------------------------------------------
def test_streaming_equals_offline_windowed_inference(engine, pre: EcgPreprocessing, record_mv: np.ndarray) -> None:
    data = record_mv[: int(90 * FS_IN)]
    rec = RecordingEngine(engine)
    events = _stream(StreamClassifier(rec, pre, LABELS), data, chunk=360)
    windows = [e for e in events if e["type"] == "window"]

    offline = pre.windows(pre(data.T, FS_IN))  # resample -> causal filter -> normalise -> windows, in one go
    streamed = np.concatenate(rec.seen)
    assert len(windows) == len(offline) == len(streamed) == 1 + (int(np.ceil(len(data) * 500 / 360)) - 5000) // 500
    assert all(e["quality"] == "ok" for e in windows), [e["flags"] for e in windows if e["flags"]]
    np.testing.assert_allclose(streamed, offline, rtol=0, atol=1e-5)  # every window, from the first on

    expected = _sigmoid(engine.outputs(offline)["logits"])
    got = np.array([[e["scores"][lab] for lab in LABELS] for e in windows])
    np.testing.assert_allclose(got, expected, atol=2e-5)
    assert [e["t_end"] for e in windows] == [10.0 + i for i in range(len(windows))]


def test_chunk_sizes_give_identical_events(engine, pre: EcgPreprocessing, record_mv: np.ndarray) -> None:
    data = record_mv[int(60 * FS_IN) : int(78 * FS_IN)]  # 18 s: 9 windows
    probe = StreamClassifier(engine, pre, LABELS)
    base = [e for e in _stream(probe, data, 360) if e["type"] == "window"]
    scores = np.array([[e["scores"][lab] for lab in LABELS] for e in base])
    thresholds = np.median(scores, axis=0)  # so that decisions really switch within the excerpt
    cfg = StreamConfig(hysteresis=0.0, on_windows=1, off_windows=1)
    runs = {}
    for chunk in (1, 7, 360, 5000):
        clf = StreamClassifier(engine, pre, LABELS, thresholds, config=cfg)
        runs[chunk] = [e for e in _stream(clf, data, chunk) if e["type"] == "window"]
        assert clf.accounting()["ok"], clf.accounting()
    ref = runs[360]
    assert any(e["onset"] for e in ref) and any(e["offset"] for e in ref), "decisions never switched"
    keys = ("index", "t_start", "t_end", "quality", "flags", "above", "decisions", "onset", "offset")
    for chunk, events in runs.items():
        assert [{k: e[k] for k in keys} for e in events] == [{k: e[k] for k in keys} for e in ref], chunk
        got = np.array([[e["scores"][lab] for lab in LABELS] for e in events])
        np.testing.assert_allclose(got, scores, atol=2e-5, err_msg=f"chunk {chunk}")


# -- quality ---------------------------------------------------------------------------------------------------
def _windows_overlapping(events: list[dict], t0: float, t1: float, at_least: float = 0.0) -> list[dict]:
    """Windows sharing more than `at_least` seconds with [t0, t1)."""
    return [e for e in events if e["type"] == "window"
            and min(t1, e["t_end"]) - max(t0, e["t_start"]) > at_least]


def test_injected_faults_are_flagged_not_classified(engine, pre: EcgPreprocessing, record_mv: np.ndarray) -> None:
    data = record_mv[: int(120 * FS_IN)].copy()
    fs = int(FS_IN)
    # fault -> (start s, end s, overlap a window needs to be flagged: flatline needs flat_s = 1.0 s of flat run
    # (QualityConfig; 1.1 s leaves room for the resampler's edge ringing), noise
    # is judged over the whole window)
    faults = {"nan": (20, 21, 0.05), "flatline": (40, 43, 1.1), "saturation": (60, 62, 0.5), "noise": (80, 90, 5)}
    data[20 * fs : 21 * fs, 0] = np.nan  # NaN burst on lead II
    data[40 * fs : 43 * fs, 1] = 0.37  # V1 lead-off: constant
    data[60 * fs : 62 * fs, 0] = np.clip(data[60 * fs : 62 * fs, 0] + 6.0, -5.12, 5.115)  # amplifier at the ADC rail
    rng = np.random.default_rng(0)
    data[80 * fs : 90 * fs] += rng.normal(0, 0.15, (10 * fs, 2))  # EMG-like broadband noise
    rails = np.array([[-5.12, 5.115], [-5.12, 5.115]])
    # a timestamp gap: 2 s of samples never arrive at t=100 s
    chunks = [(s / FS_IN, data[s : s + 360]) for s in range(0, len(data), 360) if not 100 <= s / FS_IN < 102]
    clf = StreamClassifier(engine, pre, LABELS)
    events: list[dict] = []
    summary = clf.run(iterator_source(chunks, FS_IN, ("MLII", "V1"), rails_mv=rails), on_event=events.append)

    for flag, (t0, t1, overlap) in faults.items():
        hit = _windows_overlapping(events, t0, t1, overlap)
        assert hit and all(flag in e["flags"] for e in hit), (flag, [e["flags"] for e in hit])
        assert all(e["scores"] is None for e in hit)
    assert all("V1" in e["flag_detail"]["flatline"]["leads"] for e in _windows_overlapping(events, 40, 43, 1.1))
    gap_windows = _windows_overlapping(events, 100, 102, 0.05)
    assert gap_windows and all("gap" in e["flags"] for e in gap_windows)
    assert [e for e in events if e["type"] == "gap"] == [summary["gaps"][0]]
    assert summary["gaps"][0]["missing_samples"] == 720
    # windows clear of every fault (the resampler's 11-sample look-ahead reaches just past a window's end)
    clean = [e for e in events if e["type"] == "window" and (e["t_end"] <= 19.9 or e["t_start"] >= 102.1)]
    assert len(clean) == 10 + 8  # [0,10)..[9,19) and [103,113)..[110,120)
    assert all(e["quality"] == "ok" and e["scores"] is not None for e in clean), [e["flags"] for e in clean]
    acct = summary["accounting"]
    assert acct["ok"], acct
    assert acct["samples_in"] == len(data) - 720 and acct["samples_filled_for_gaps"] == 720
    assert summary["classified"] + summary["flagged_windows"] == acct["windows"]


# -- accounting over a whole record -----------------------------------------------------------------------------
def _check_whole_record(clf: StreamClassifier, record_path: Path, chunk: int) -> dict:
    out = io.StringIO()
    summary = clf.run(record_source(record_path, chunk=chunk), out=out)
    n = wfdb.rdheader(str(record_path)).sig_len
    assert n == 650000
    acct = summary["accounting"]
    assert acct["ok"], acct["checks"]
    assert acct["samples_in"] == acct["samples_consumed"] == acct["source_samples_sent"] == n
    assert acct["model_samples"] == acct["model_samples_expected"] == -(-n * 25 // 18)
    hop = clf.pre.hop
    assert acct["windows"] == 1 + (acct["model_samples"] - 5000) // hop
    assert 0 <= acct["model_samples_after_last_window"] < hop
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert sum(e["type"] == "window" for e in lines) == acct["windows"]
    assert lines[-1]["type"] == "summary" and summary["real_time_factor"] > 1
    return summary


def test_sample_accounting_is_exact_over_a_whole_30_minute_record(engine, pre, record_path: Path) -> None:
    """All 650000 samples of record 101; 10 s hop here (180 windows) so it stays fast; same model and window."""
    summary = _check_whole_record(StreamClassifier(engine, replace(pre, hop_s=10.0), LABELS), record_path, 997)
    assert summary["accounting"]["windows"] == 180


@pytest.mark.heavy
def test_sample_accounting_whole_record_at_the_model_hop(engine, pre, record_path: Path) -> None:
    """The same with the model's own 1 s hop: 1796 windows (about a minute on a shared 2-core machine)."""
    summary = _check_whole_record(StreamClassifier(engine, pre, LABELS), record_path, 360)
    assert summary["accounting"]["windows"] == 1796


# -- leads and bad inputs --------------------------------------------------------------------------------------
def test_twelve_lead_model_refuses_a_two_lead_stream(tmp_path: Path, record_path: Path) -> None:
    twelve = _classifier_dir(tmp_path / "twelve", tuple(EcgPreprocessing().leads), None)
    clf = StreamClassifier.from_model_dir(twelve)
    with pytest.raises(StreamError, match=r"needs 12 leads .* stream has 2 \['II', 'V1'\].*missing"):
        clf.run(record_source(record_path, chunk=360))


def test_bad_stream_inputs_raise_clear_errors(engine, pre, record_mv: np.ndarray, tmp_path: Path) -> None:
    clf = StreamClassifier(engine, pre, LABELS)
    with pytest.raises(StreamError, match="before push"):
        clf.push(record_mv[:10])
    clf.start(FS_IN, ("II", "V1"), source="bad-stream")
    with pytest.raises(StreamError, match=r"bad-stream: chunk of shape \(10, 3\)"):
        clf.push(np.zeros((10, 3)))
    with pytest.raises(RecordError, match=r"nope.hea: header file not found"):  # read_record's check and message
        record_source(tmp_path / "nope")
    with pytest.raises(ValueError, match="3 thresholds for 5 labels"):
        StreamClassifier(engine, pre, LABELS, [0.5, 0.5, 0.5])
    src = int16_source(io.BytesIO(b"\x01\x00\x02\x00\x03"), 360, ["II", "V1"], name="stdin")
    with pytest.raises(StreamError, match="stdin: stream ended inside a frame"):
        list(src.chunks)
    with pytest.raises(StreamError, match="not a classifier|neither a bundle"):
        StreamClassifier.open(tmp_path)


def test_int16_frames_give_the_same_events_as_the_record(engine, pre, record_path: Path) -> None:
    rec = wfdb.rdrecord(str(record_path), physical=False, sampto=int(30 * FS_IN))
    frames = rec.d_signal.astype("<i2").tobytes()  # MLII, V1 interleaved, as firmware would send them
    clf = StreamClassifier(engine, pre, LABELS)
    from_int16: list[dict] = []
    clf.run(int16_source(io.BytesIO(frames), FS_IN, ["MLII", "V1"], gain=200.0, baseline=1024, chunk=100),
            on_event=from_int16.append)
    from_record: list[dict] = []
    clf.run(record_source(record_path, chunk=360, stop=int(30 * FS_IN)), on_event=from_record.append)
    a = [e["scores"] for e in from_int16 if e["type"] == "window"]
    b = [e["scores"] for e in from_record if e["type"] == "window"]
    assert len(a) == len(b) == 21
    np.testing.assert_allclose([list(s.values()) for s in a], [list(s.values()) for s in b], atol=2e-5)


# -- bundle and CLI ----------------------------------------------------------------------------------------------
def _bundle(out: Path, model_dir: Path, onnx_path: Path, engine) -> Path:
    from jepa_edge.bundle import BundleBuilder
    from jepa_edge.io import sha256_file

    meta = json.loads((model_dir / "meta.json").read_text())
    x = np.random.default_rng(0).normal(size=(2, 2, 5000)).astype(np.float32)
    with BundleBuilder(out) as b:
        b.add_file(onnx_path, "model.onnx", "onnx-fp32")
        b.set(toolkit_version="test", labels=meta["labels"], thresholds=meta["thresholds"],
              preprocessing=meta["preprocessing"],
              model={"name": "stream-test", "task": "multilabel", "modality": "ecg", "encoder": meta["encoder"],
                     "head": meta["head"], "parameters": 1, "source_checkpoint_sha256": meta["weights_sha256"]},
              target={"kind": "cart-cpu", "profile": None, "profile_data": None},
              runtimes={"openvino": None, "onnxruntime": None, "nncf": None, "tensorrt": None, "opset": 18},
              calibration=None, quantization={"recipe": None, "precision": "fp32", "fallback_layers": []},
              io={"inputs": [{"name": "ecg", "shape": ["batch", 2, 5000], "dtype": "float32",
                              "layout": "(batch, leads, samples)"}],
                  "outputs": [{"name": "logits", "shape": ["batch", 5], "dtype": "float32"},
                              {"name": "embedding", "shape": ["batch", 192], "dtype": "float32"}]})
        b.add_golden(x, engine.outputs(x), {"onnx-fp32": 1e-4})
    assert sha256_file(out / "model.onnx") == sha256_file(onnx_path)
    return out


def test_from_bundle_and_cli_write_events(tmp_path: Path, model_dir: Path, onnx_path: Path, engine, pre,
                                          record_path: Path, record_mv: np.ndarray) -> None:
    from typer.testing import CliRunner

    from jepa_edge.cli import app

    bundle = _bundle(tmp_path / "bundle", model_dir, onnx_path, engine)
    clf = StreamClassifier.from_bundle(bundle)
    assert clf.pre == pre and clf.labels == LABELS
    direct = [e for e in _stream(clf, record_mv[: int(20 * FS_IN)], 360) if e["type"] == "window"]

    out = tmp_path / "events.jsonl"
    result = CliRunner().invoke(app, ["stream", str(bundle), "--record", str(record_path), "--out", str(out),
                                      "--seconds", "20", "--chunk", "500"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    windows = [e for e in lines if e["type"] == "window"]
    assert len(windows) == len(direct) == 11
    np.testing.assert_allclose([[e["scores"][lab] for lab in LABELS] for e in windows],
                               [[e["scores"][lab] for lab in LABELS] for e in direct], atol=2e-5)
    assert lines[-1]["type"] == "summary" and lines[-1]["accounting"]["ok"]

    bad = CliRunner().invoke(app, ["stream", str(tmp_path), "--record", str(record_path)])
    assert bad.exit_code == 2 and "neither a bundle" in bad.output


def test_cli_reads_int16_frames_from_stdin(tmp_path: Path, model_dir: Path, record_path: Path) -> None:
    from typer.testing import CliRunner

    from jepa_edge.cli import app

    rec = wfdb.rdrecord(str(record_path), physical=False, sampto=int(12 * FS_IN))
    frames = rec.d_signal.astype("<i2").tobytes()
    result = CliRunner().invoke(app, ["stream", str(model_dir), "--stdin-int16", "--fs", "360", "--leads", "II,V1",
                                      "--gain", "200", "--baseline", "1024"], input=frames)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [e["type"] for e in lines] == ["window"] * 3 + ["summary"]
    assert lines[-1]["accounting"]["samples_in"] == int(12 * FS_IN)


def test_realtime_replay_is_paced_at_the_sampling_rate(record_path: Path) -> None:
    import time

    src = record_source(record_path, chunk=90, realtime=True, stop=int(1.5 * FS_IN))
    t = time.perf_counter()
    total = sum(len(c) for c in src.chunks)
    elapsed = time.perf_counter() - t
    assert total == int(1.5 * FS_IN) == src.total_samples
    assert elapsed >= 1.5 - 90 / FS_IN - 0.05  # the last chunk is released at t = 1.25 s


def test_real_artefact_flags_of_the_stream_equal_the_offline_replay(engine, pre: EcgPreprocessing,
                                                                     mitdb_dir: Path) -> None:
    """The stream's noise flags on real artefact (MIT-BIH 105, first 320 s: `~` noise at 246-274 s, 285-296 s) are
    the ones benchmarks/quality_tune.py scores (quality_eval's offline replay), lead for lead, window for window."""
    from jepa_edge.devices.stream.quality_eval import record_quality

    data = read_record(mitdb_dir / "105", leads=("II", "V1")).signal.T[: int(320 * FS_IN)].copy()
    events = [e for e in _stream(StreamClassifier(engine, pre, LABELS), data, 360) if e["type"] == "window"]
    events = [e for e in events if e["t_end"] <= 319.0]  # clear of the excerpt's end (zeros after it)
    offline = record_quality(mitdb_dir / "105", pre)
    streamed = np.array([[lead in e["flag_detail"].get("noise", {}).get("leads", []) for lead in ("II", "V1")]
                         for e in events]).T
    np.testing.assert_array_equal(streamed, offline.flags(QualityConfig())[:, : len(events)])
    assert streamed.any(axis=0).sum() >= 10  # the excerpt's artefact is flagged at all (16 windows measured)
    for e in events:
        if "noise" in e["flags"]:
            assert e["scores"] is None  # withheld from classification
            i = e["index"]
            got = np.array([e["flag_detail"]["noise"][k] for k in ("hf_mv", "lf_ratio", "ptp_ratio", "periodicity")])
            want = np.array([offline.measures[k][:, i] for k in ("hf_mv", "lf_ratio", "ptp_ratio", "periodicity")])
            np.testing.assert_allclose(got, want, atol=1e-4)


@pytest.mark.parametrize("offset", [0, 1, 37, 124, 4500])
def test_flatline_flags_runs_of_flat_s_and_no_shorter(offset: int) -> None:
    """The documented threshold exactly: QualityConfig.flat_s of flat signal is a flat line wherever it lies in the
    window; one sample less is not (the detector once needed 1.25 x flat_s, and the test was relaxed to match)."""
    from jepa_edge.devices.stream.config import QualityConfig
    from jepa_edge.devices.stream.quality import window_quality

    pre = EcgPreprocessing(leads=("II", "V1"))
    q = QualityConfig()
    n, w = pre.window, int(round(q.flat_s * pre.fs))
    t = np.arange(n) / pre.fs
    raw = np.stack([np.sin(2 * np.pi * 1.2 * t), 0.5 * np.sin(2 * np.pi * 0.9 * t)])
    flags = np.zeros(n, np.uint8)
    start = min(offset, n - w)
    flat = raw.copy()
    flat[1, start : start + w] = 0.37
    assert window_quality(flat, flat, flags, pre, q)["flatline"] == {"leads": ["V1"]}
    short = raw.copy()
    short[1, start : start + w - 1] = 0.37
    assert "flatline" not in window_quality(short, short, flags, pre, q)
