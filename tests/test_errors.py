"""One record check for every reader, and one error root: a truncated .dat gives read_record's message on every
path (stream, pack, probe and parity's PTB-XL loader, the CLI), and only the project's own errors become
"error: ..." with exit 2; anything else is a bug and keeps its traceback, with a line asking to report it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from jepa_edge.cli import app
from jepa_edge.data.ecg import read_record
from jepa_edge.data.errors import DataError, RecordError
from jepa_edge.errors import JepaEdgeError

RECORD = "101"  # MLII + V1, format 212


def _truncate(src_dat: Path, dst_dat: Path, keep: float = 0.5) -> None:
    data = src_dat.read_bytes()
    dst_dat.write_bytes(data[: int(len(data) * keep) + 1])


@pytest.fixture
def truncated_mitdb(mitdb_dir: Path, tmp_path: Path) -> Path:
    """MIT-BIH 101 with its .dat cut short by one byte: wfdb alone answers 'operands could not be broadcast'."""
    folder = tmp_path / "mitdb"
    folder.mkdir()
    shutil.copy(mitdb_dir / f"{RECORD}.hea", folder)
    data = (mitdb_dir / f"{RECORD}.dat").read_bytes()
    (folder / f"{RECORD}.dat").write_bytes(data[:-1])
    return folder / RECORD


@pytest.fixture
def truncated_ptbxl(ptbxl_dir: Path, tmp_path: Path) -> Path:
    """A PTB-XL folder whose every 500 Hz .dat is cut in half (headers, tables untouched)."""
    root = tmp_path / "ptbxl"
    root.mkdir()
    for name in ("ptbxl_database.csv", "scp_statements.csv"):
        shutil.copy(ptbxl_dir / name, root)
    for stem in pd.read_csv(ptbxl_dir / "ptbxl_database.csv")["filename_hr"]:
        src = ptbxl_dir / stem
        if not src.with_suffix(".hea").is_file():
            continue
        dst = root / stem
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src.with_suffix(".hea"), dst.with_suffix(".hea"))
        _truncate(src.with_suffix(".dat"), dst.with_suffix(".dat"))
    return root


def _read_record_message(path: str | Path) -> str:
    with pytest.raises(RecordError) as err:
        read_record(path, check_flat=False)
    assert "truncated:" in str(err.value)
    return str(err.value)


def test_stream_replay_of_a_truncated_record_says_what_read_record_says(truncated_mitdb: Path, tmp_path: Path) -> None:
    from test_stream import _classifier_dir

    from jepa_edge.devices.stream import record_source

    expected = _read_record_message(truncated_mitdb)
    with pytest.raises(RecordError) as err:
        record_source(truncated_mitdb)
    assert str(err.value) == expected
    model = _classifier_dir(tmp_path / "model", ("II", "V1"), None)
    for extra in ([], ["--seconds", "20"]):
        res = CliRunner().invoke(app, ["stream", str(model), "--record", str(truncated_mitdb), *extra])
        assert res.exit_code == 2, res.output
        assert "truncated:" in res.output and "broadcast" not in res.output
        assert " ".join(res.output.split()) == " ".join(f"error: {expected}".split())


def test_pack_of_a_truncated_record_says_what_read_record_says(truncated_mitdb: Path, tmp_path: Path) -> None:
    from jepa_edge.data.pack import PackConfig, pack

    expected = _read_record_message(truncated_mitdb)
    with pytest.raises(RecordError) as err:
        pack([truncated_mitdb.parent], tmp_path / "shards", PackConfig(skip_bad=False, leads=("II", "V1")))
    assert str(err.value) == expected


def test_probe_and_parity_loaders_of_a_truncated_record_say_what_read_record_says(truncated_ptbxl: Path) -> None:
    from jepa_edge.data.preprocess import EcgPreprocessing
    from jepa_edge.data.ptbxl import PtbXl
    from jepa_edge.tasks.probe import load_task_data

    with pytest.raises(RecordError) as err:  # what `jepa-edge probe` loads
        load_task_data(truncated_ptbxl, "ptbxl-super", EcgPreprocessing(), limit=2)
    assert str(err.value) == _read_record_message(err.value.path)
    with pytest.raises(RecordError) as err:  # what `jepa-edge parity` loads (its held-out folds)
        PtbXl(truncated_ptbxl).load("superdiagnostic", folds=(9, 10), limit=2)
    assert str(err.value) == _read_record_message(err.value.path)


def test_every_project_error_class_derives_from_the_one_root() -> None:
    from jepa_edge.bundle.manifest import BundleError
    from jepa_edge.config import ConfigError
    from jepa_edge.data.ecg_perturb import PerturbationError
    from jepa_edge.devices.profiles import ProfileError
    from jepa_edge.devices.stream import StreamError
    from jepa_edge.modality import ModalityError
    from jepa_edge.models.checkpoint import CheckpointError
    from jepa_edge.parity.evaluate import ParityError
    from jepa_edge.parity.gates import GateConfigError, GateFailure
    from jepa_edge.runtimes import BackendUnavailable, EngineError
    from jepa_edge.tasks.outputs import OutputError

    for cls in (DataError, ConfigError, CheckpointError, BundleError, EngineError, BackendUnavailable, ProfileError,
                GateFailure, GateConfigError, ParityError, OutputError, ModalityError, PerturbationError,
                StreamError):
        assert issubclass(cls, JepaEdgeError), cls


def test_user_errors_are_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import jepa_edge.data.fetch as fetch_module

    def refuse(*args, **kwargs):
        raise DataError(f"{tmp_path}: a problem the user can fix")

    monkeypatch.setattr(fetch_module, "fetch", refuse)
    res = CliRunner().invoke(app, ["data", "fetch", "mitdb", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "error:" in res.output and "a problem the user can fix" in res.output
    assert "Traceback" not in res.output


@pytest.mark.parametrize("bug", [ValueError("shapes (3,) (4,) do not align"), KeyError("logits")])
def test_a_programming_error_keeps_its_traceback_and_asks_for_a_report(bug: Exception, monkeypatch: pytest.MonkeyPatch,
                                                                       tmp_path: Path) -> None:
    import jepa_edge.data.fetch as fetch_module

    def broken(*args, **kwargs):
        raise bug

    monkeypatch.setattr(fetch_module, "fetch", broken)
    res = CliRunner().invoke(app, ["data", "fetch", "mitdb", "--out", str(tmp_path)])
    assert res.exit_code == 1, res.output
    assert "Traceback (most recent call last)" in res.output and type(bug).__name__ in res.output
    assert "please report it" in res.output
