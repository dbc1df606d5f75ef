"""`jepa-edge beats` verbs: the N / SVEB / VEB beat teacher on MIT-BIH, and the monitor's EC57 figures."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .app import app, console, one_stage, user_errors

beats_app = typer.Typer(help="Arrhythmia monitor: beat teacher (N / SVEB / VEB) and EC57 evaluation on MIT-BIH.",
                        no_args_is_help=True)
app.add_typer(beats_app, name="beats")


@beats_app.command("probe")
@user_errors
def probe(
    encoder: Path = typer.Argument(..., help="encoder folder or pretraining run (one lead, e.g. 3 s at 250 Hz)"),
    out: Path = typer.Option(..., help="classifier folder to write (the beat teacher)"),
    data: Path = typer.Option(None, help="folder with MIT-BIH records, or its parent (default: $JEPA_EDGE_DATA)"),
    epochs: int = typer.Option(40),
    head: str = typer.Option("linear", help="linear (mean of tokens) or attentive (a query attends to the tokens)"),
    seed: int = typer.Option(0),
    random_init: bool = typer.Option(False, "--random-init/--pretrained",
                                     help="baseline: the same encoder architecture with fresh random weights"),
) -> None:
    """Fit the beat head on the frozen encoder (training records), report test-record beats, write the teacher."""
    from ..tasks.beat_probe import BeatProbeConfig, probe_beats

    with one_stage("beat probe (encode MIT-BIH beats, fit head, evaluate)"):
        path, metrics = probe_beats(encoder, data, out, BeatProbeConfig(head=head, epochs=epochs, seed=seed),
                                    random_init=random_init)
    per = {k: {c: metrics[k]["per_class"][c] for c in metrics[k]["classes"]} for k in ("test", "test_rr_fusion")}
    console.print_json(json.dumps({**per, "val_macro_f1 (choose the teacher by this)": metrics["val"]["macro_f1"],
                                   "test_macro_f1": metrics["test"]["macro_f1"], "beats": metrics["beats"]}))
    console.print(f"beat teacher: [bold]{path}[/]")


@beats_app.command("fuse")
@user_errors
def fuse(
    classifier: Path = typer.Argument(..., help="beat classifier folder (a distilled student, or a teacher)"),
    data: Path = typer.Option(None, help="folder with MIT-BIH records, or its parent (default: $JEPA_EDGE_DATA)"),
) -> None:
    """Fit the RR-interval fusion of a beat classifier on the validation records; report test beats with it."""
    from ..tasks.beat_probe import fuse_classifier

    with one_stage("RR fusion (validation records), test-record report"):
        report = fuse_classifier(classifier, data)
    console.print_json(json.dumps({k: {c: report[k]["per_class"][c] for c in report[k]["classes"]}
                                   for k in ("test", "test_rr_fusion")}))
