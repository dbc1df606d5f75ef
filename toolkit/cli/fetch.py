"""`jepa-edge data fetch`: PhysioNet downloads for users with internet."""

from __future__ import annotations

from pathlib import Path

import typer

from .app import console, data_app, progress_bar, user_errors


@data_app.command("fetch")
@user_errors
def fetch_command(
    dataset: str = typer.Argument(..., help="ptbxl or mitdb"),
    out: Path = typer.Option(None, help="destination (default: $JEPA_EDGE_DATA/<dataset>)"),
    records: int = typer.Option(None, help="only the first N records"),
    base_url: str = typer.Option(None, help="mirror to download from instead of physionet.org (with SHA256SUMS.txt)"),
) -> None:
    """Download PTB-XL (500 Hz records) or MIT-BIH from PhysioNet; resumable, each file checked against the
    published SHA256SUMS.txt before it gets its final name."""
    from ..data.fetch import fetch
    from ..data.paths import data_root

    dest = out or data_root() / dataset
    with progress_bar() as bar:
        task = bar.add_task(f"fetch {dataset}", total=None, status="")
        fetch(dataset, dest, records=records, base_url=base_url,
              progress=lambda done, total: bar.update(task, completed=done, total=total, status=""))
    console.print(f"{dataset} in [bold]{dest}[/]")
