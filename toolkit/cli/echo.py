"""`jepa-edge echo` verbs: synthetic data, V-JEPA 2 weight import, echo probes, on-cart inference."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..config import ConfigError
from .app import app, console, one_stage, user_errors

echo_app = typer.Typer(help="Echo: synthetic videos, V-JEPA 2 weight import, LVEF / view probes and inference.",
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
        raise ConfigError(f"--count must be >= 1, got {count}")
    with one_stage(f"drawing {count} synthetic echo videos"):
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

    with one_stage(f"echo probe {task} ({head} head)"):
        run = probe_echonet(encoder, data, EchoProbeConfig(task=task, head=head, epochs=epochs), out, skip_bad)
    console.print_json(json.dumps(run.to_dict()))


@echo_app.command("infer")
@user_errors
def infer(
    bundle: Path = typer.Argument(..., help="echo bundle folder (manifest.json), e.g. from `jepa-edge build`"),
    videos: list[Path] = typer.Argument(..., help="AVI / MP4 files, PNG frame folders, or folders of videos "
                                                  "(EchoNet-Dynamic layout: FileList.csv + Videos/)"),
    out: Path = typer.Option(None, "--out", "-o", help="write the JSON results here (default: stdout)"),
    clips: int = typer.Option(4, "--clips", "-n", help="clips per video, evenly spaced over the whole video "
                                                       "(fewer when the video is short)"),
    public_key: Path = typer.Option(None, "--public-key", "-k", help="PEM public key the bundle signature must match"),
    require_signature: bool = typer.Option(False, "--require-signature", help="refuse an unsigned bundle"),
    threads: int = typer.Option(None, help="inference threads (default: the engine's choice)"),
) -> None:
    """LVEF (or view) per clip and per video from a bundle, with the bundle's own preprocessing.

    Exit codes: 0 every video gave a result; 1 some video failed (each named, with its problem, in the
    JSON and on stderr; the others still have results); 2 nothing ran (bad bundle, signature or arguments)."""
    from rich.markup import escape

    from jepa_edge.devices.echo_infer import EchoInfer, expand_inputs

    from ..io import atomic_write_json
    from .app import progress_bar

    runner = EchoInfer.open(bundle, public_key=public_key, require_signature=require_signature, clips=clips,
                            threads=threads)
    items = expand_inputs(videos)
    with progress_bar(disable=len(items) < 2) as bar:
        task = bar.add_task("echo infer", total=len(items), status="")
        failed = 0

        def update(i: int, result: dict) -> None:
            nonlocal failed
            failed += result["error"] is not None
            bar.update(task, advance=1, status=f"{failed} failed" if failed else "")

        report = runner.run(items, on_result=update)
    result = report.to_dict()
    if out is not None:
        atomic_write_json(out, result)
    else:
        print(json.dumps(result, indent=2))
    for video in report.videos:  # every failure; results only for a handful of videos (all are in the JSON)
        if video["error"] is None and len(report.videos) <= 20:
            shown = _video_line(video["video"])
            console.print(f"{escape(video['file'])}: {len(video['clips'])} clip(s), {escape(shown)}", highlight=False,
                          soft_wrap=True)
        elif video["error"] is not None:
            console.print(f"[bold red]failed:[/] {escape(video['error']['path'])}: {escape(video['error']['problem'])}",
                          highlight=False, soft_wrap=True)
    s = result["summary"]
    rtf = f", {s['real_time_factor']:.1f}x real time" if s["real_time_factor"] else ""
    console.print(f"{s['ok']} of {s['videos']} video(s) ok, {s['failed']} failed; {s['seconds_of_video']:.1f} s of "
                  f"video in {s['wall_s']:.1f} s{rtf}" + (f"; results: {escape(str(out))}" if out else ""))
    if report.exit_code:
        raise typer.Exit(code=report.exit_code)


def _video_line(summary: dict) -> str:
    """'LVEF 52.6 percent (SD 0.2)' for a regression head, the decided view for a view head."""
    values = [(name, v) for name, v in summary.items() if isinstance(v, dict) and "mean" in v]
    if not values:
        return str(summary.get("decision"))
    parts = []
    for name, v in values:
        sd = "" if v["sd"] is None else f" (SD {v['sd']:.1f})"
        parts.append(f"{name} {v['mean']:.1f} {v['unit']}".rstrip() + sd)
    return "; ".join(parts)
