"""`jepa-edge distill`: a compact student (vit-tiny / vit-xs) from a frozen teacher, as one classifier folder."""

from __future__ import annotations

from pathlib import Path

import typer

from .app import app, console, progress_bar, user_errors


@app.command()
@user_errors
def distill(
    teacher: Path = typer.Option(..., help="teacher: classifier folder (its head teaches logits), encoder or run"),
    student: str = typer.Option(None, help="vit-tiny or vit-xs"),
    data: Path = typer.Option(None, help="ECG: PTB-XL folder (train folds used) or any WFDB folder with the "
                                         "teacher's leads (default: $JEPA_EDGE_DATA); echo: EchoNet-layout "
                                         "folder (TRAIN videos used; VAL/TEST evaluate)"),
    out: Path = typer.Option(None, help="run folder (checkpoints, metrics.jsonl, classifier/)"),
    steps: int = typer.Option(None, help="optimizer steps"),
    batch_size: int = typer.Option(None),
    leads: str = typer.Option(None, help="ECG: student lead subset, comma separated, e.g. II,V1"),
    patch: int = typer.Option(None, help="ECG: student patch in samples (a multiple of the teacher's: fewer tokens)"),
    frames: int = typer.Option(None, help="echo: student clip frames over the teacher's clip span (fewer tokens)"),
    tubelet: int = typer.Option(None, help="echo: student tubelet, frames per token (coarser than the teacher's)"),
    image_size: int = typer.Option(None, help="echo: student clip size in pixels (e.g. 112 under a 224 teacher)"),
    intermediate: str = typer.Option(None, help="teacher block indices to regress too, comma separated"),
    head: str = typer.Option(None, help="auto (distil the teacher's head), linear or attentive (probe after)"),
    labels_data: Path = typer.Option(None, help="labelled data for thresholds / probe / evaluation (default: --data)"),
    task: str = typer.Option(None, help="task for a probe when the teacher has no head: ptbxl-super / ptbxl-all "
                                        "(ECG), ef / view (echo)"),
    config: Path = typer.Option(None, help="TOML/JSON/YAML file overriding the defaults"),
    lr: float = typer.Option(None),
    seed: int = typer.Option(None),
) -> None:
    """Distil a teacher into a student (resumes from the run folder's latest checkpoint)."""
    from ..config import load_config
    from ..data.paths import data_root
    from ..distill import DistillConfig
    from ..distill import distill as run_distill

    def split(text: str | None, kind: type) -> tuple | None:
        return tuple(kind(v.strip()) for v in text.split(",") if v.strip()) if text else None

    cfg = load_config(DistillConfig, config, teacher=str(teacher), student=student,
                      data=str(data) if data else str(data_root()), out=str(out) if out else None, steps=steps,
                      batch_size=batch_size, leads=split(leads, str), patch=patch, frames=frames, tubelet=tubelet,
                      image_size=image_size, task=task,
                      intermediate=split(intermediate, int), head=head,
                      labels_data=str(labels_data) if labels_data else None, lr=lr, seed=seed)
    with progress_bar() as bar:
        task_id = bar.add_task(f"distill {cfg.student}", total=cfg.steps, status="")

        def update(done: int, total: int, info: dict) -> None:
            bar.update(task_id, completed=done,
                       status=f"feature {info['feature_loss']:.4f} logit {info['logit_loss']:.4f}")

        model_dir = run_distill(cfg, progress=update)
    console.print(f"student classifier: [bold]{model_dir}[/]  metrics: {Path(cfg.out) / 'metrics.jsonl'}")
