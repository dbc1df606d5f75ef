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
    finetune: bool = typer.Option(False, "--finetune", help="after the probe, train encoder and head end to end "
                                  "(layer-wise lr decay, early stopping on fold 9); same outputs as the probe"),
    finetune_epochs: int = typer.Option(None, help="--finetune: at most this many epochs (default 30)"),
    lr: float = typer.Option(None, help="--finetune: learning rate of the head and the last block (default 3e-4)"),
    layer_decay: float = typer.Option(None, help="--finetune: lr factor per block further down (default 0.75)"),
    patience: int = typer.Option(None, help="--finetune: evaluations on fold 9 without improvement before "
                                 "stopping (default 5)"),
) -> None:
    """Fit a probe on PTB-XL folds 1-8, tune F1 thresholds on fold 9, report fold 10 (macro AUC with 95 % CI).

    With --finetune the probed classifier is then fine-tuned end to end (a stronger teacher for `distill`)."""
    from dataclasses import replace

    from ..tasks.finetune import FinetuneConfig, train_finetune
    from ..tasks.probe import PROBE_STAGES, ProbeConfig, train_probe

    if finetune:
        overrides = {k: v for k, v in {"epochs": finetune_epochs, "lr": lr, "layer_decay": layer_decay,
                                       "patience": patience}.items() if v is not None}
        base = ProbeConfig()
        probe_cfg = replace(base, epochs=epochs if epochs is not None else base.epochs)
        cfg = FinetuneConfig(seed=seed, probe=probe_cfg, **overrides)

        def show(epoch: int, total: int, row: dict) -> None:
            console.print(f"fine-tune epoch {epoch}/{total}: loss {row['loss']:.4f}, "
                          f"fold-9 macro AUC {row['val_macro_auc']:.3f}")

        console.print(f"fine-tuning {encoder} on {task} ({head} head) end to end")
        result = train_finetune(encoder, data, task=task, head=head, out=out, config=cfg, limit=limit,
                                progress=show)
    else:
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
