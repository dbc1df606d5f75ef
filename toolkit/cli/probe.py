"""`jepa-edge probe`: a linear or attentive head on a frozen encoder, written as a classifier model folder."""

from __future__ import annotations

from pathlib import Path

import typer

from .app import app, console, progress_bar, user_errors


@app.command()
@user_errors
def probe(
    encoder: Path = typer.Option(..., help="encoder model folder, pretraining run folder or classifier folder"),
    data: Path = typer.Option(None, help="PTB-XL folder (default: $JEPA_EDGE_DATA)"),
    task: str = typer.Option("ptbxl-super", help="ptbxl-super or ptbxl-all"),
    head: str = typer.Option("linear", help="linear or attentive"),
    out: Path = typer.Option(Path("runs/probe"), help="classifier model folder to write"),
    epochs: int = typer.Option(None, help="head training epochs (default 200)"),
    seed: int = typer.Option(0),
    limit: int = typer.Option(None, help="at most this many records per split (quick checks)"),
) -> None:
    """Fit a probe on PTB-XL folds 1-8, tune F1 thresholds on fold 9, report fold 10 (macro AUC with 95 % CI)."""
    from ..tasks.probe import PROBE_STAGES, train_probe

    with progress_bar() as bar:
        bar_task = bar.add_task(f"probe {task} ({head} head)", total=len(PROBE_STAGES), status="")

        def step(stage: str, done: int, total: int) -> None:
            bar.update(bar_task, completed=done, status=stage)

        result = train_probe(encoder, data, task=task, head=head, out=out, epochs=epochs, seed=seed,
                             limit=limit, progress=step)
        bar.update(bar_task, completed=len(PROBE_STAGES), status="done")
    m = result.metrics
    lo, hi = m["test_macro_auc_ci95"]
    console.print(f"fold-10 macro AUC [bold]{m['test_macro_auc']:.3f}[/] (95% CI {lo:.3f}-{hi:.3f}), "
                  f"macro F1 {m['test_macro_f1']:.3f}, fold-9 AUC {m['val_macro_auc']:.3f}")
    console.print(f"classifier: [bold]{result.model_dir}[/]  metrics: {result.metrics_path}")
