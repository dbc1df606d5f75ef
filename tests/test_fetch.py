"""`jepa-edge data fetch` against a local HTTP server on 127.0.0.1 serving the shared PTB-XL and MIT-BIH copies."""

from __future__ import annotations

import contextlib
import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jepa_edge.cli import app
from jepa_edge.data.errors import DataError
from jepa_edge.data.fetch import fetch
from jepa_edge.data.ptbxl import PtbXl


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # noqa: D102
        pass


@contextlib.contextmanager
def _serve(directory: Path) -> Iterator[str]:
    handler = functools.partial(_Quiet, directory=str(directory))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def server(data_root: Path) -> Iterator[str]:
    with _serve(data_root) as url:
        yield url


def test_fetch_ptbxl_records_equal_the_source(server: str, ptbxl_dir: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["data", "fetch", "ptbxl", "--records", "5", "--out", str(tmp_path / "ptbxl"),
                                   "--base-url", server + "ptbxl"])
    assert res.exit_code == 0, res.output
    got = sorted(p.relative_to(tmp_path / "ptbxl") for p in (tmp_path / "ptbxl").rglob("*") if p.is_file())
    assert len(got) == 2 + 5 * 2
    for rel in got:
        assert (tmp_path / "ptbxl" / rel).read_bytes() == (ptbxl_dir / rel).read_bytes()
    loaded = PtbXl(tmp_path / "ptbxl").load("superdiagnostic", limit=5, labelled_only=False)
    assert loaded.signals.shape == (5, 12, 5000)


def test_fetch_resumes_and_reports_http_errors(server: str, ptbxl_dir: Path, tmp_path: Path) -> None:
    dest = fetch("ptbxl", tmp_path / "p", records=2, base_url=server + "ptbxl")
    kept, lost = dest / "records500/00000/00001_hr.hea", dest / "records500/00000/00002_hr.dat"
    kept.write_bytes(b"already here")  # a complete file from an earlier run is not downloaded again
    lost.unlink()  # an interrupted run's missing file is
    fetch("ptbxl", dest, records=2, base_url=server + "ptbxl")
    assert kept.read_bytes() == b"already here"
    assert lost.read_bytes() == (ptbxl_dir / "records500/00000/00002_hr.dat").read_bytes()
    out = tmp_path / "mitdb"
    with pytest.raises(DataError, match=r"RECORDS: HTTP 404"):
        fetch("mitdb", out, records=1, base_url=server + "nowhere")
    with pytest.raises(DataError, match="unknown dataset 'ptb'"):
        fetch("ptb", out)
    with pytest.raises(DataError, match="cannot download"):
        fetch("ptbxl", out, base_url="http://127.0.0.1:9/")  # nothing listens on the discard port


def test_fetch_mitdb_with_annotations(mitdb_dir: Path, tmp_path: Path) -> None:
    served = tmp_path / "served"  # PhysioNet's layout: a RECORDS listing beside the record files
    served.mkdir()
    for rec in ("100", "101"):
        for ext in (".hea", ".dat", ".atr"):
            shutil.copy(mitdb_dir / f"{rec}{ext}", served)
    (served / "RECORDS").write_text("100\n101\n")
    with _serve(served) as url:
        out = fetch("mitdb", tmp_path / "mitdb", records=1, base_url=url)
    assert (out / "100.atr").read_bytes() == (mitdb_dir / "100.atr").read_bytes()
    assert not (out / "101.dat").exists() and (out / "RECORDS").read_text().split() == ["100", "101"]
