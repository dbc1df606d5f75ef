"""`jepa-edge data` verbs: pack WFDB folders and PTB-XL into memory-mappable shards for pretraining."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ..config import ConfigError
from .app import console, data_app, progress_bar, user_errors

if TYPE_CHECKING:
    from ..data.pack import PackResult


def _parse_folds(text: str) -> tuple[int, ...] | None:
    """'all', 'train' (1-8), or a comma list with ranges such as '1-8,10'."""
    from ..data.ptbxl import SPLIT_FOLDS

    text = text.strip().lower()
    if text == "all":
        return None
    if text in SPLIT_FOLDS:
        return SPLIT_FOLDS[text]
    folds: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            folds.extend(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise ConfigError(f"--ptbxl-folds {text!r}: expected 'all', 'train', 'val', 'test' or e.g. '1-8,10'") from None
    return tuple(sorted(set(folds)))


@data_app.command("pack")
@user_errors
def pack_command(
    sources: list[Path] = typer.Argument(..., help="WFDB folders, PTB-XL folders or single WFDB records"),
    out: Path = typer.Option(..., "--out", help="pack folder (a rerun into it resumes, skipping finished shards)"),
    workers: int = typer.Option(1, "--workers", help="processes packing shards in parallel"),
    leads: str = typer.Option(",".join(("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")),
                              help="lead order of the model (records lacking one are skipped and reported)"),
    fs: int = typer.Option(500, help="model sampling rate in Hz (records are resampled to it)"),
    window_s: float = typer.Option(10.0, help="training window in seconds (shorter records are skipped)"),
    dtype: str = typer.Option("float16", help="float16 (half the bytes, below ADC resolution) or float32"),
    records_per_shard: int = typer.Option(1024, help="records per shard file"),
    ptbxl_folds: str = typer.Option("train", help="PTB-XL folds to pack: train (1-8), all, or e.g. 1-8,10"),
    max_records: int = typer.Option(None, help="at most this many records per source (quick trials)"),
    strict: bool = typer.Option(False, "--strict", help="stop at the first bad record instead of skipping it"),
    modality: str = typer.Option("ecg", help="ecg (WFDB / PTB-XL) or echo (videos, EchoNet-Dynamic folders)"),
    size: int = typer.Option(112, help="echo: square frame size in pixels after resize and centre crop"),
    clip_frames: int = typer.Option(16, help="echo: frames per clip (videos too short for one are skipped)"),
    clip_fps: float = typer.Option(8.0, help="echo: clip frame rate"),
) -> None:
    """Pack ECG records (or echo videos) into sharded .npy arrays with an index, checksums and a skip report.

    ECG: resampled to the model rate, model lead order, band-passed. Echo: decoded once, resized to uint8.
    """
    from ..data.pack import EchoPackConfig, PackConfig, pack, pack_echo

    if modality not in ("ecg", "echo"):
        raise ConfigError(f"--modality {modality!r}: choose ecg or echo")
    if modality == "echo":
        echo_cfg = EchoPackConfig(frames=clip_frames, fps=clip_fps, size=size, records_per_shard=records_per_shard,
                                  workers=workers, skip_bad=not strict, max_records_per_source=max_records)
        _run(lambda update: pack_echo(sources, out, echo_cfg, progress=update))
        return
    cfg = PackConfig(fs=fs, leads=tuple(x.strip() for x in leads.split(",") if x.strip()), window_s=window_s,
                     dtype=dtype, records_per_shard=records_per_shard, workers=workers, skip_bad=not strict,
                     ptbxl_folds=_parse_folds(ptbxl_folds), max_records_per_source=max_records)
    _run(lambda update: pack(sources, out, cfg, progress=update))


def _run(job: Callable[[Callable[[int, int], None]], PackResult]) -> None:
    """Run a pack job behind a progress bar counting finished shards, then print what was packed."""
    with progress_bar() as bar:
        task_id = bar.add_task("pack shards", total=None, status="")

        def update(done: int, total: int) -> None:
            bar.update(task_id, completed=done, total=total, status="")

        result = job(update)
    console.print(f"packed {result.report.summary()} into {result.shards} shard(s) "
                  f"({result.reused_shards} reused) at [bold]{result.out}[/]; report: {result.out / 'report.json'}")


@data_app.command("to-challenge")
@user_errors
def to_challenge_command(
    ptbxl: Path = typer.Argument(..., help="PTB-XL folder (ptbxl_database.csv, records500/)"),
    out: Path = typer.Option(..., "--out", help="folder for the .hea + .mat files"),
    folds: str = typer.Option("9,10", help="PTB-XL folds to export: 'all', 'train', or e.g. 9,10"),
    limit: int = typer.Option(None, help="at most this many records"),
    prefixes: str = typer.Option("HR", help="record-name prefixes taken in turn, e.g. HR,E for two 'sites'"),
) -> None:
    """Re-export PTB-XL records in the PhysioNet/CinC Challenge layout (SNOMED codes in '# Dx:', MATLAB v4 .mat),
    through the package's SCP -> SNOMED table: a known-answer folder for `jepa-edge parity --data`."""
    from ..data.sources.challenge import export_ptbxl

    written = export_ptbxl(ptbxl, out, _parse_folds(folds), limit, tuple(p for p in prefixes.split(",") if p))
    console.print(f"{len(written)} records written to {out}")
