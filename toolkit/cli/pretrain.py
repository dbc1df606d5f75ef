"""`jepa-edge pretrain`."""

from __future__ import annotations

from pathlib import Path

import typer

from .app import app, console, progress_bar, user_errors


@app.command()
@user_errors
def pretrain(
    data: Path = typer.Option(None, help="PTB-XL folder, WFDB folder, packed shards or echo videos "
                                         "(default: $JEPA_EDGE_DATA)"),
    model: str = typer.Option(None, help="model size: vit-tiny, vit-xs, vit-s, vit-b, vit-l, vit-g"),
    steps: int = typer.Option(None, help="optimizer steps"),
    batch_size: int = typer.Option(None, help="global batch size (split over torchrun ranks)"),
    out: Path = typer.Option(None, help="run folder (checkpoints, metrics.jsonl, encoder/)"),
    modality: str = typer.Option(None, help="ecg or echo"),
    config: Path = typer.Option(None, help="TOML/JSON/YAML file overriding the defaults"),
    lr: float = typer.Option(None, help="peak learning rate"),
    num_workers: int = typer.Option(None, help="DataLoader workers per rank"),
    checkpoint_every: int = typer.Option(None, help="steps between checkpoints"),
    skip_bad: bool = typer.Option(None, "--skip-bad/--no-skip-bad", help="skip bad records, counted in the report"),
    seed: int = typer.Option(None),
) -> None:
    """JEPA pretraining (resumes from the run folder's latest checkpoint). Runs under torchrun for DDP/FSDP."""
    from ..config import load_config
    from ..jepa.trainer import PretrainConfig
    from ..jepa.trainer import pretrain as run_pretrain

    cfg = load_config(PretrainConfig, config, data=str(data) if data else None, model=model, steps=steps,
                      batch_size=batch_size, out=str(out) if out else None, modality=modality, lr=lr,
                      num_workers=num_workers, checkpoint_every=checkpoint_every, skip_bad=skip_bad, seed=seed)
    import os

    with progress_bar(disable=os.environ.get("RANK", "0") != "0") as bar:  # one bar per job, not per rank
        task_id = bar.add_task(f"pretrain {cfg.model}", total=cfg.steps, status="")

        status = ""

        def update(done: int, total: int, info: dict) -> None:
            nonlocal status
            if "target_rankme" in info:  # a logged step: the collapse watch's figures stay until the next one
                flag = "  [bold red]COLLAPSE?[/]" if info["collapse_warning"] else ""
                status = f"  std {info['target_std_unit']:.3f}  rankme {info['target_rankme']:.1f}{flag}"
            bar.update(task_id, completed=done, status=f"loss {info['loss']:.4f}{status}")

        run = run_pretrain(cfg, progress=update)
    console.print(f"teacher encoder: [bold]{Path(run) / 'encoder'}[/]  metrics: {Path(run) / 'metrics.jsonl'}")
