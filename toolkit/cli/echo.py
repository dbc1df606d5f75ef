"""`jepa-edge echo` verbs: synthetic data, V-JEPA 2 weight import, echo probes."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .app import app, console, user_errors

echo_app = typer.Typer(help="Echocardiography: synthetic videos, V-JEPA 2 weight import, LVEF / view probes.",
                       no_args_is_help=True)
app.add_typer(echo_app, name="echo")


@echo_app.command("synth")
@user_errors
def synth(
    out: Path = typer.Argument(..., help="folder to write (EchoNet-Dynamic layout: FileList.csv + Videos/)"),
    count: int = typer.Option(24, help="number of videos"),
    fmt: str = typer.Option("avi", "--format", help="avi, mp4 or frames (PNG folders)"),
    size: int = typer.Option(112, help="frame size in pixels"),
    seconds: float = typer.Option(3.0, help="video length"),
    seed: int = typer.Option(0),
) -> None:
    """Write SYNTHETIC echo videos (beating ellipsoidal LV, known EF and view) for tests and the demo."""
    from ..data.synthetic_echo import SyntheticEchoConfig, write_synthetic_echonet

    if count < 1:
        raise ValueError(f"--count must be >= 1, got {count}")
    with console.status(f"drawing {count} synthetic echo videos"):
        path = write_synthetic_echonet(out, count, seed, fmt, SyntheticEchoConfig(size=size, seconds=seconds))
    console.print(f"synthetic echo dataset (not patient data): [bold]{path}[/]")


@echo_app.command("import-weights")
@user_errors
def import_weights(
    checkpoint: Path = typer.Argument(..., help="V-JEPA 2 / EchoJEPA checkpoint (.pt / .pth.tar)"),
    out: Path = typer.Argument(..., help="model folder to write"),
    section: str = typer.Option(None, help="checkpoint section (default: encoder, as upstream's hub loader; "
                                "then target_encoder)"),
    size: str = typer.Option(None, help="model size (e.g. vit-h, vit-g); needed where the weights fit several"),
    pos_embed: str = typer.Option("rope", help="rope (V-JEPA 2; a pos_embed in the file is a leftover) or "
                                  "sincos (V-JEPA 1)"),
    frames: int = typer.Option(16),
    image_size: int = typer.Option(224),
    strict: bool = typer.Option(True, "--strict/--no-strict", help="fail on any missing or unexpected key"),
) -> None:
    """Map a released V-JEPA 2 checkpoint onto our video encoder (weights_only load) and save a model folder."""
    from ..models.vjepa_import import import_vjepa

    path, report = import_vjepa(checkpoint, out, section, frames, image_size, strict=strict, size=size,
                                pos_embed=pos_embed)
    console.print(report.summary(), markup=False, highlight=False, soft_wrap=True)  # its "[...]" is text, not markup
    for note in report.notes:
        console.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    console.print(f"encoder: [bold]{path}[/]")


@echo_app.command("probe")
@user_errors
def probe(
    encoder: Path = typer.Argument(..., help="echo encoder folder or pretraining run"),
    data: Path = typer.Argument(..., help="EchoNet-Dynamic layout folder (e.g. from `jepa-edge echo synth`)"),
    task: str = typer.Option("ef", help="ef (LVEF regression) or view (view classification)"),
    head: str = typer.Option("linear", help="linear or attentive (V-JEPA 2 probe, 3 blocks)"),
    epochs: int = typer.Option(200),
    out: Path = typer.Option(None, help="write the classifier folder (encoder + head) here"),
    skip_bad: bool = typer.Option(False, "--skip-bad/--no-skip-bad"),
) -> None:
    """Fit a probe on the TRAIN split of a frozen encoder; print VAL/TEST MAE and R^2 (EF) or accuracy (view)."""
    from ..tasks.echo import EchoProbeConfig, probe_echonet

    with console.status(f"probing {task} with a {head} head"):
        run = probe_echonet(encoder, data, EchoProbeConfig(task=task, head=head, epochs=epochs), out, skip_bad)
    console.print_json(json.dumps(run.to_dict()))
