"""`jepa-edge bench`: latency of every artefact in a bundle that runs on this machine, and the device's
artefact against its profile's latency / memory budgets (beside what the build measured)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.table import Table

from ..config import ConfigError
from .app import app, console, user_errors


def bench_bundle(bundle_dir: Path, batch: int = 1, threads: int | None = None, runs: int = 30,
                 policy: Any = None) -> list[dict]:
    """Median / p90 latency per runnable artefact on golden inputs (back ends missing here are reported).
    `threads=None`: the bundle profile's threads. `policy`: the `TrustPolicy` the bundle is opened under."""
    from ..bundle import open_bundle
    from ..bundle.reader import backend_for_role
    from ..runtimes import BackendUnavailable

    bundle = open_bundle(bundle_dir, policy)
    inputs, _ = bundle.golden()
    x = np.ascontiguousarray(np.resize(inputs, (batch, *inputs.shape[1:])).astype(np.float32))
    rows = []
    for role in bundle.roles:
        if backend_for_role(role) is None:
            continue
        try:
            engine = bundle.engine(role=role, **({"threads": threads} if threads else {}))
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
        rows.append({"role": role, "backend": engine.info().get("backend"), "batch": batch,
                     "threads": engine.info().get("threads"),
                     "p50_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90))})
    return rows


def bench_budget(bundle_dir: Path, runs: int = 30, policy: Any = None) -> tuple[dict | None, dict | None]:
    """(measured now, as the build recorded it): the device's artefact against the profile's budgets, measured
    the way the build measures it (`devices.budget`); now=None where this machine cannot run that artefact."""
    from ..bundle import open_bundle
    from ..devices.budget import TARGET_ARTEFACT, budget_result, measure
    from ..runtimes import available_backends

    bundle = open_bundle(bundle_dir, policy)
    profile, recorded = bundle.profile, bundle.manifest.get("budget")
    role = TARGET_ARTEFACT.get(bundle.manifest["target"]["kind"])
    if profile is None or role not in bundle.roles:
        return None, recorded
    from ..bundle.reader import backend_for_role

    if available_backends().get(backend_for_role(role) or "") is not None:
        return None, recorded
    inputs, _ = bundle.golden()
    return budget_result(measure(bundle.engine_file(role), inputs, profile, runs=runs), profile, role), recorded


@app.command()
@user_errors
def bench(
    bundle: Path = typer.Argument(..., help="bundle folder"),
    batch: int = typer.Option(1, help="windows per call"),
    threads: int = typer.Option(None, help="inference threads (default: the bundle's device profile's)"),
    runs: int = typer.Option(30, help="timed calls per artefact"),
    budget: bool = typer.Option(True, "--budget/--no-budget", help="measure the device's artefact against the "
                                                                   "profile's latency / memory budgets"),
    public_key: Path = typer.Option(None, "--public-key", "-k", help="PEM public key the bundle signature must match"),
    require_signature: bool = typer.Option(False, "--require-signature", help="refuse a bundle whose signature is "
                                                                              "not checked with --public-key"),
) -> None:
    """Latency of each artefact in a bundle on this machine (golden inputs, after one warm-up call), and the
    device's artefact against its profile's budgets; exit code 1 when a budget is missed."""
    from ..bundle.trust import TrustPolicy
    from ..devices.budget import describe

    if batch < 1 or (threads is not None and threads < 1) or runs < 1:
        raise ConfigError("--batch, --threads and --runs must be at least 1")
    policy = TrustPolicy(public_key=public_key, require_signature=require_signature)
    table = Table(title=f"{bundle} (batch {batch})")
    for col in ("artefact", "back end", "threads", "p50 ms", "p90 ms"):
        table.add_column(col)
    for row in bench_bundle(bundle, batch, threads, runs, policy):
        if "skipped" in row:
            table.add_row(row["role"], "skipped", "", row["skipped"], "")
        else:
            table.add_row(row["role"], str(row["backend"]), str(row["threads"]), f"{row['p50_ms']:.2f}",
                          f"{row['p90_ms']:.2f}")
    console.print(table)
    if not budget:
        return
    now, recorded = bench_budget(bundle, runs, policy)
    if recorded is not None:
        console.print(f"at build: {describe(recorded)}", soft_wrap=True, highlight=False)
    if now is None:
        console.print("here: the device's artefact does not run on this machine; budget not measured",
                      soft_wrap=True)
        return
    console.print(f"here:     {describe(now)}", soft_wrap=True, highlight=False)
    if now["passed"] is False:
        raise typer.Exit(code=1)
