"""The firmware's R-peak detector (devices/firmware/src/jefw_qrs.c) against Python's StreamingQrs
(devices/stream/beats.py, neurokit2 inside): the same lead in, the same settled peaks out, exactly.

The lead is the one the monitor feeds its detector: MIT-BIH MLII resampled to 250 Hz by the monitor's
PolyphaseResampler (devices/stream/monitor.py, BeatStream.push). Also: a lead-off (NaN) stretch and a flat one
in the middle, chunk sizes that must not matter, and the bad rates and configs both sides refuse. The C side is
compiled here with the system `cc` (skipped without one, a failure under CI=true) together with
tests/scripts/qrs_driver.c, which reads float64 samples on stdin and prints the peaks.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from jepa_edge.config import ConfigError
from jepa_edge.data.mitdb import read_mitdb
from jepa_edge.devices.stream.beats import QrsConfig, StreamingQrs
from jepa_edge.devices.stream.resampler import PolyphaseResampler

REPO = Path(__file__).resolve().parents[1]
DRIVER = REPO / "tests" / "scripts" / "qrs_driver.c"
FS = 250.0  # the beat model's rate: what the monitor resamples every lead to
MINUTES = 15  # of each record compared
# clean, very noisy (105), PVCs (106, 119), tall T waves (113), noisy with wide QRS (108)
RECORDS = ("100", "105", "106", "113", "119", "108")


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from conftest import FIRMWARE_SRC, compile_c

    return compile_c([FIRMWARE_SRC / "jefw_qrs.c", FIRMWARE_SRC / "jefw_util.c", DRIVER],
                     tmp_path_factory.mktemp("qrs") / "qrs_driver", "the firmware R-peak port")


def _lead(mitdb_dir: Path, record: str, minutes: float = MINUTES) -> np.ndarray:
    """MLII at 250 Hz exactly as the monitor hands it to StreamingQrs (resampler output, then its flushed tail)."""
    rec, _ = read_mitdb(mitdb_dir / record, leads=("II",))
    x = np.asarray(rec.signal[0][: int(minutes * 60 * rec.fs)], dtype=np.float64)
    rs = PolyphaseResampler(float(rec.fs), FS, 1)
    y, _ = rs.push(x[None, :], np.zeros(x.shape[0], dtype=np.uint8))
    tail, _ = rs.flush()
    return np.concatenate([y, tail], axis=1)[0]


def _python(x: np.ndarray, config: QrsConfig | None = None, chunk: int = 4096) -> list[int]:
    q = StreamingQrs(FS, config)
    parts = [q.push(x[i:i + chunk]) for i in range(0, x.shape[0], chunk)]
    parts.append(q.finish())
    return np.concatenate(parts).tolist()


def _run(driver: Path, x: np.ndarray, args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(driver), *args], input=np.asarray(x, dtype="<f8").tobytes(), capture_output=True,
                          timeout=60)


def _c(driver: Path, x: np.ndarray, chunk: int, config: QrsConfig | None = None) -> list[int]:
    args = [repr(FS), str(chunk)]
    if config is not None:
        args += [repr(v) for v in (config.lookback_s, config.hop_s, config.settle_s, config.refractory_s,
                                   config.min_segment_s)]
    done = _run(driver, x, args)
    assert done.returncode == 0, done.stderr.decode()
    return [int(v) for v in done.stdout.split()]


def _assert_same(c: list[int], py: list[int], what: str) -> None:
    first = next((i for i, (a, b) in enumerate(zip(c, py, strict=False)) if a != b), min(len(c), len(py)))
    assert c == py, f"{what}: C and Python part at peak {first} of {len(py)}: C {c[first:first + 3]}, " \
                    f"Python {py[first:first + 3]}"


@pytest.mark.parametrize("record", RECORDS)
def test_same_peaks_as_python_on_mitdb(driver: Path, mitdb_dir: Path, record: str):
    x = _lead(mitdb_dir, record)
    py = _python(x)
    assert len(py) > 40 * MINUTES, f"record {record}: only {len(py)} peaks in {MINUTES} min"
    _assert_same(_c(driver, x, 997), py, f"record {record}")
    print(f"MIT-BIH {record}: {x.shape[0]} samples at 250 Hz, {len(py)} peaks, C == Python")


def test_chunk_size_does_not_matter(driver: Path, mitdb_dir: Path):
    x = _lead(mitdb_dir, "119", minutes=3)
    one, big, whole = _c(driver, x, 1), _c(driver, x, 997), _c(driver, x, x.shape[0])
    assert one == big == whole
    _assert_same(one, _python(x, chunk=1), "chunks of 1")


def test_lead_off_and_flat_stretches(driver: Path, mitdb_dir: Path):
    """NaN (lead off) with a short finite island inside, then a flat (disconnected) stretch; and a lead that is
    flat or NaN from start to end."""
    x = _lead(mitdb_dir, "100", minutes=5)
    y = x.copy()
    off = slice(int(60 * FS), int(80 * FS))
    y[off] = np.nan
    y[int(70 * FS):int(70.5 * FS)] = x[int(70 * FS):int(70.5 * FS)]  # 0.5 s of signal: shorter than min_segment_s
    flat = slice(int(150 * FS), int(170 * FS))
    y[flat] = 0.25
    py = _python(y)
    _assert_same(_c(driver, y, 997), py, "NaN and flat stretches")
    _assert_same(_c(driver, y, 1), py, "NaN and flat stretches, chunks of 1")
    peaks = np.asarray(py)
    assert not np.any((peaks >= off.start) & (peaks < off.stop)), "peaks found where the lead was off"
    assert np.sum((peaks >= flat.start + FS) & (peaks < flat.stop - FS)) == 0, "peaks found on a flat lead"
    assert np.sum(peaks < off.start) > 50 and np.sum(peaks >= flat.stop) > 100
    for dead in (np.full(int(30 * FS), 0.1), np.full(int(30 * FS), np.nan)):
        assert _c(driver, dead, 997) == _python(dead) == []
    assert _c(driver, x[:100], 7) == _python(x[:100])  # shorter than a hop: only finish() runs


def test_other_configs(driver: Path, mitdb_dir: Path):
    x = _lead(mitdb_dir, "106", minutes=4)
    for config in (QrsConfig(lookback_s=6.0, hop_s=1.0, settle_s=1.2, refractory_s=0.25, min_segment_s=2.0),
                   QrsConfig(lookback_s=12.5, hop_s=3.3, settle_s=2.0, refractory_s=0.4, min_segment_s=0.8)):
        _assert_same(_c(driver, x, 333, config), _python(x, config), str(config))


def test_bad_rate_or_config_is_refused(driver: Path):
    x = np.zeros(1000)
    for fs in (0.0, -250.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError) as py:
            StreamingQrs(fs)
        done = _run(driver, x, [repr(fs), "100"])
        assert done.returncode != 0 and str(py.value) in done.stderr.decode(), done.stderr.decode()
    for kwargs in ({"hop_s": 0.0}, {"settle_s": -1.0}, {"refractory_s": 0.0}, {"min_segment_s": 0.0},
                   {"lookback_s": 4.0}):
        with pytest.raises(ConfigError) as py:
            QrsConfig(**kwargs)
        c = {"lookback_s": 8.0, "hop_s": 2.0, "settle_s": 1.5, "refractory_s": 0.3, "min_segment_s": 1.0, **kwargs}
        done = _run(driver, x, [repr(FS), "100", *(repr(c[k]) for k in ("lookback_s", "hop_s", "settle_s",
                                                                         "refractory_s", "min_segment_s"))])
        assert done.returncode != 0 and str(py.value) in done.stderr.decode(), done.stderr.decode()
    # a rate neurokit2 cannot filter at (the 15 Hz band edge at or past Nyquist): both refuse at the first run
    lead = np.sin(np.arange(2000) * 0.3)
    with pytest.raises(ValueError):
        StreamingQrs(20.0).push(lead)
    done = _run(driver, lead, ["20.0", "100"])
    assert done.returncode != 0 and "too low" in done.stderr.decode(), done.stderr.decode()
