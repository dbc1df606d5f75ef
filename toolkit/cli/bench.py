"""`jepa-edge bench`: latency of every artefact in a bundle that runs on this machine."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import typer
from rich.table import Table

from ..config import ConfigError
from .app import app, console, user_errors


def bench_bundle(bundle_dir: Path, batch: int = 1, threads: int = 1, runs: int = 30) -> list[dict]:
    """Median / p90 latency per runnable artefact on golden inputs (back ends missing here are reported)."""
    from ..bundle import open_bundle
    from ..bundle.reader import backend_for_role
    from ..runtimes import BackendUnavailable

    bundle = open_bundle(bundle_dir)
    inputs, _ = bundle.golden()
    x = np.ascontiguousarray(np.resize(inputs, (batch, *inputs.shape[1:])).astype(np.float32))
    rows = []
    for role in bundle.roles:
        if backend_for_role(role) is None:
            continue
        try:
            engine = bundle.engine(role=role, threads=threads)
        except BackendUnavailable as exc:
            rows.append({"role": role, "skipped": str(exc)})
            continue
        engine(x)  # warm-up: first call compiles / allocates
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            engine(x)
            times.append(time.perf_counter() - t0)
        ms = np.array(times) * 1e3
        rows.append({"role": role, "backend": engine.info().get("backend"), "batch": batch, "threads": threads,
                     "p50_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90))})
    return rows


@app.command()
@user_errors
def bench(
    bundle: Path = typer.Argument(..., help="bundle folder"),
    batch: int = typer.Option(1, help="windows per call"),
    threads: int = typer.Option(1, help="inference threads"),
    runs: int = typer.Option(30, help="timed calls per artefact"),
) -> None:
    """Latency of each artefact in a bundle on this machine (golden inputs, after one warm-up call)."""
    if batch < 1 or threads < 1 or runs < 1:
        raise ConfigError("--batch, --threads and --runs must be at least 1")
    table = Table(title=f"{bundle} (batch {batch}, {threads} thread(s))")
    for col in ("artefact", "back end", "p50 ms", "p90 ms"):
        table.add_column(col)
    for row in bench_bundle(bundle, batch, threads, runs):
        if "skipped" in row:
            table.add_row(row["role"], "skipped", row["skipped"], "")
        else:
            table.add_row(row["role"], str(row["backend"]), f"{row['p50_ms']:.2f}", f"{row['p90_ms']:.2f}")
    console.print(table)
