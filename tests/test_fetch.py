"""`jepa-edge data fetch` against a local HTTP server on 127.0.0.1 serving the shared PTB-XL and MIT-BIH copies."""

from __future__ import annotations

import contextlib
import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from jepa_edge.cli import app
from jepa_edge.data.errors import DataError
from jepa_edge.data.fetch import fetch
from jepa_edge.data.ptbxl import PtbXl
from jepa_edge.io import sha256_file


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # noqa: D102
        pass


@contextlib.contextmanager
def _serve(directory: Path, handler_class: type = _Quiet) -> Iterator[str]:
    handler = functools.partial(handler_class, directory=str(directory))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _publish_checksums(folder: Path, names: list[str], wrong: tuple[str, ...] = ()) -> None:
    """What PhysioNet publishes beside every project: SHA256SUMS.txt, one '<sha256>  <path>' line per file
    (computed here from the real files; the names in `wrong` get a wrong digest)."""
    lines = []
    for name in names:
        digest = sha256_file(folder / name) if (folder / name).is_file() else "0" * 64
        lines.append(f"{'f' * 64 if name in wrong else digest}  {name}")
    (folder / "SHA256SUMS.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def ptbxl_mirror(ptbxl_dir: Path, tmp_path: Path) -> Path:
    """The shared PTB-XL copy as PhysioNet lays it out (tables, records500/), with SHA256SUMS.txt for the tables
    and the first 10 records."""
    mirror = tmp_path / "mirror" / "ptbxl"
    mirror.mkdir(parents=True)
    for name in ("ptbxl_database.csv", "scp_statements.csv", "records500"):
        (mirror / name).symlink_to(ptbxl_dir / name)
    stems = list(pd.read_csv(ptbxl_dir / "ptbxl_database.csv")["filename_hr"])[:10]
    _publish_checksums(mirror, ["ptbxl_database.csv", "scp_statements.csv"]
                       + [f"{s}{ext}" for s in stems for ext in (".hea", ".dat")])
    return mirror


@pytest.fixture
def server(ptbxl_mirror: Path) -> Iterator[str]:
    with _serve(ptbxl_mirror.parent) as url:
        yield url


def _mitdb_mirror(mitdb_dir: Path, folder: Path, listing: str = "100\n101\n", wrong: tuple[str, ...] = ()) -> Path:
    folder.mkdir(parents=True, exist_ok=True)  # PhysioNet's layout: a RECORDS listing beside the record files
    names = ["RECORDS"]
    for rec in ("100", "101"):
        for ext in (".hea", ".dat", ".atr"):
            shutil.copy(mitdb_dir / f"{rec}{ext}", folder)
            names.append(f"{rec}{ext}")
    (folder / "RECORDS").write_text(listing)
    _publish_checksums(folder, names + [f"{r}{ext}" for r in listing.split() for ext in (".hea", ".dat", ".atr")
                                        if f"{r}{ext}" not in names], wrong)
    return folder


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


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
    corrupt = dest / "records500/00000/00002_hr.hea"
    stamp = kept.stat().st_mtime_ns
    lost.unlink()  # an interrupted run's missing file is downloaded again ...
    corrupt.write_bytes(b"not what PhysioNet published")  # ... and so is one that fails its checksum
    fetch("ptbxl", dest, records=2, base_url=server + "ptbxl")
    assert kept.stat().st_mtime_ns == stamp  # a verified file from an earlier run is kept as it is
    assert lost.read_bytes() == (ptbxl_dir / "records500/00000/00002_hr.dat").read_bytes()
    assert corrupt.read_bytes() == (ptbxl_dir / "records500/00000/00002_hr.hea").read_bytes()
    out = tmp_path / "mitdb"
    with pytest.raises(DataError, match=r"SHA256SUMS.txt: HTTP 404"):
        fetch("mitdb", out, records=1, base_url=server + "nowhere")
    with pytest.raises(DataError, match="unknown dataset 'ptb'"):
        fetch("ptb", out)
    with pytest.raises(DataError, match="cannot download"):
        fetch("ptbxl", out, base_url="http://127.0.0.1:9/")  # nothing listens on the discard port


def test_fetch_mitdb_with_annotations(mitdb_dir: Path, tmp_path: Path) -> None:
    served = _mitdb_mirror(mitdb_dir, tmp_path / "served")
    with _serve(served) as url:
        out = fetch("mitdb", tmp_path / "mitdb", records=1, base_url=url)
    assert (out / "100.atr").read_bytes() == (mitdb_dir / "100.atr").read_bytes()
    assert not (out / "101.dat").exists() and (out / "RECORDS").read_text().split() == ["100", "101"]


@pytest.mark.parametrize("evil", ["../evil", "/tmp/evil", "sub/100", "..", "a\\b"])
def test_fetch_refuses_listed_names_that_leave_the_destination(evil: str, mitdb_dir: Path, tmp_path: Path) -> None:
    served = _mitdb_mirror(mitdb_dir, tmp_path / "srv" / "served", listing=f"100\n{evil}\n")
    out = tmp_path / "out" / "mitdb"
    with _serve(served) as url, pytest.raises(DataError, match="RECORDS: file name .* refused|a bare name"):
        fetch("mitdb", out, base_url=url)
    assert not (tmp_path / "out" / "evil.hea").exists() and not (tmp_path / "evil.dat").exists()
    assert _files(out) == ["RECORDS"]  # refused before any record was downloaded


def test_fetch_refuses_a_ptbxl_table_naming_files_outside(ptbxl_mirror: Path, tmp_path: Path) -> None:
    served = tmp_path / "evil-mirror"
    served.mkdir()
    table = pd.read_csv(ptbxl_mirror / "ptbxl_database.csv").head(2)
    table.loc[1, "filename_hr"] = "../../outside"
    table.to_csv(served / "ptbxl_database.csv", index=False)
    shutil.copy(ptbxl_mirror / "scp_statements.csv", served)
    _publish_checksums(served, ["ptbxl_database.csv", "scp_statements.csv"])
    with _serve(served) as url, pytest.raises(DataError, match=r"'\.\./\.\./outside\.hea'.*refused"):
        fetch("ptbxl", tmp_path / "out", base_url=url)


def test_fetch_keeps_no_file_that_fails_its_published_checksum(mitdb_dir: Path, tmp_path: Path) -> None:
    served = _mitdb_mirror(mitdb_dir, tmp_path / "served", wrong=("100.dat",))
    out = tmp_path / "mitdb"
    with _serve(served) as url, pytest.raises(DataError, match=r"100.dat: checksum mismatch .* not kept"):
        fetch("mitdb", out, records=1, base_url=url)
    assert _files(out) == ["100.hea", "RECORDS"]  # neither 100.dat nor a partial file under any name
    (served / "SHA256SUMS.txt").write_text((served / "SHA256SUMS.txt").read_text().replace("100.atr", "100.xyz"))
    with _serve(served) as url, pytest.raises(DataError, match=r"100.atr: not in the published SHA256SUMS.txt"):
        _publish_checksums(served, ["RECORDS", "100.hea", "100.dat"])
        fetch("mitdb", out, records=1, base_url=url)


class _Truncating(_Quiet):
    """Announces the full Content-Length of .dat files, sends half of the bytes, and hangs up."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if not self.path.endswith(".dat"):
            return super().do_GET()
        data = Path(self.translate_path(self.path)).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True


class _TruncatingUnannounced(_Quiet):
    """Sends half of a .dat file with no Content-Length: only the checksum can tell."""

    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:  # noqa: N802
        if not self.path.endswith(".dat"):
            return super().do_GET()
        data = Path(self.translate_path(self.path)).read_bytes()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.close_connection = True


@pytest.mark.parametrize("handler, message", [(_Truncating, "transfer broke off"),
                                              (_TruncatingUnannounced, "checksum mismatch")])
def test_a_truncated_transfer_never_lands_under_the_final_name(handler: type, message: str, mitdb_dir: Path,
                                                               tmp_path: Path) -> None:
    served = _mitdb_mirror(mitdb_dir, tmp_path / "served")
    out = tmp_path / "mitdb"
    with _serve(served, handler) as url, pytest.raises(DataError, match=f"100.dat: {message}"):
        fetch("mitdb", out, records=1, base_url=url)
    assert _files(out) == ["100.hea", "RECORDS"]
    with _serve(served) as url:  # the next run resumes: fetches only what is missing, all verified
        fetch("mitdb", out, records=1, base_url=url)
    assert (out / "100.dat").read_bytes() == (mitdb_dir / "100.dat").read_bytes()
