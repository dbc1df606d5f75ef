"""`jepa-edge demo`: the whole chain on the embedded default."""

from __future__ import annotations

from pathlib import Path

import typer

from .app import app, console, progress_bar, user_errors


@app.command()
@user_errors
def demo(
    data: Path = typer.Option(None, help="PTB-XL folder (default: $JEPA_EDGE_DATA or ./data, else synthetic)"),
    out: Path = typer.Option(Path("runs/demo"), help="where models, bundles and the report go"),
    quick: bool = typer.Option(False, "--quick", help="reduced sizes (CI): every stage once, in minutes"),
    config: Path = typer.Option(None, help="TOML/JSON/YAML overriding DemoConfig"),
) -> None:
    """ECG: pretrain -> probe -> distill -> quantize + build (cart-cpu, jetson) -> parity -> verify -> stream;
    then echo on synthetic clips: pretrain -> LVEF probe -> distill -> cart-cpu INT8 bundle -> parity -> verify."""
    from ..config import load_config
    from ..pipeline import STAGES, DemoConfig, run_demo

    base = DemoConfig.quick() if quick else DemoConfig()
    cfg = load_config(DemoConfig, config, base=base, out=str(out), data=str(data) if data else None)
    with progress_bar() as bar:
        task = bar.add_task("demo", total=len(STAGES), status="")

        def step(stage: str, done: int, total: int) -> None:
            bar.update(task, completed=done, status=stage)

        result = run_demo(cfg, step=step, say=lambda msg: bar.console.print(f"[bold yellow]{msg}[/]"))
        bar.update(task, completed=len(STAGES), status="done")
    if result.synthetic:
        console.print("[bold yellow]All numbers above are on SYNTHETIC ECGs, not clinical data.[/]")
    for target, bundle in result.bundles.items():
        state = "verified" if result.verified[target] else "[red]FAILED verification[/]"
        console.print(f"bundle {target}: [bold]{bundle}[/] ({state})")
    console.print(f"parity report: [bold]{result.report}[/]  gates: "
                  + ("[green]passed[/]" if result.parity_passed else "[red]FAILED[/]"))
    for failure in result.failures:
        console.print(f"  [red]{failure}[/]")
    s = result.stream_summary
    acc = s["accounting"]
    console.print(f"stream: {s['classified']} windows classified, {s['flagged_windows']} flagged, samples in "
                  f"{acc['samples_in']} = consumed {acc['samples_consumed']}, real-time factor {s['real_time_factor']}")
    echo = result.echo
    if echo is not None:
        state = "verified" if echo.verified else "[red]FAILED verification[/]"
        console.print(f"echo bundle cart-cpu (SYNTHETIC clips): [bold]{echo.bundle}[/] ({state})")
        console.print("echo LVEF MAE (EF points): " + ", ".join(f"{k} {v:.2f}" for k, v in echo.lvef_mae.items())
                      + (f"; predicting the training mean: {echo.mean_predictor_mae:.2f}"
                         if echo.mean_predictor_mae is not None else ""))
        console.print(f"echo parity report: [bold]{echo.report}[/]  gates: "
                      + ("[green]passed[/]" if echo.parity_passed else "[red]FAILED[/]"))
        for failure in echo.failures:
            console.print(f"  [red]{failure}[/]")
        console.print(f"echo timings (s): {echo.timings}")
    console.print(f"timings (s): {result.timings}")
    if not result.passed:
        raise typer.Exit(code=1)
