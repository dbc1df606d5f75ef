"""`jepa-edge parity`: teacher FP32 -> student FP32 -> student INT8 on every back end, gated; report into the bundle."""

from __future__ import annotations

from pathlib import Path

import typer

from ..config import ConfigError
from .app import app, console, progress_bar, user_errors

GATE_FAILED_EXIT = 1  # input problems exit 2 (user_errors); a build that misses its gates exits 1


def _folds(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        folds = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"--folds {text!r}: expected comma-separated fold numbers, e.g. 9,10") from None
    if not folds or any(not 1 <= f <= 10 for f in folds):
        raise ConfigError(f"--folds {text!r}: PTB-XL folds are 1..10")
    return folds


@app.command()
@user_errors
def parity(
    teacher: Path = typer.Option(..., help="teacher classifier folder (encoder + head, `jepa-edge probe` output)"),
    bundle: Path = typer.Option(None, help="bundle folder from `jepa-edge build` (its INT8 artefacts are gated)"),
    data: Path = typer.Option(None, help="ECG: a PTB-XL folder (or the data root holding it), a PhysioNet/CinC "
                                         "Challenge folder (.hea + .mat, '# Dx:' SNOMED codes), a WFDB folder with "
                                         "labels.csv, or (with --unlabelled) any WFDB folder; echo: an "
                                         "EchoNet-Dynamic layout folder (default: $JEPA_EDGE_DATA)"),
    data_format: str = typer.Option(None, "--format", help="ECG data source: ptbxl, challenge, labels-csv, wfdb "
                                                           "(default: by what the folder holds)"),
    strata: list[str] = typer.Option([], "--strata", help="per-stratum parity for a column (repeatable or "
                                                         "comma-separated): site, sex, age_band, fold, or any "
                                                         "labels.csv / records.csv column"),
    unlabelled: bool = typer.Option(False, "--unlabelled", help="ECG data without diagnoses: report agreement, "
                                                               "cosine and logit differences only"),
    student: Path = typer.Option(None, help="student classifier folder for the torch FP32 stage "
                                            "(default: the bundle's FP32 ONNX stands for it)"),
    gate: list[str] = typer.Option([], "--gate", help="override a gate, NAME=VALUE (repeatable): ECG auc_drop_teacher, "
                                                      "auc_drop_fp32_int8, agreement; echo LVEF mae_increase_teacher, "
                                                      "mae_increase_fp32_int8, value_diff_fp32_int8, "
                                                      "perturbation_mae_margin; echo view agreement, "
                                                      "accuracy_drop_teacher, accuracy_drop_fp32_int8, "
                                                      "perturbation_accuracy_margin; all: cosine"),
    profile: str = typer.Option(None, help="device profile whose gates apply (default: the bundle's target)"),
    out: Path = typer.Option(None, help="also write parity.json and parity.html here"),
    folds: str = typer.Option(None, help="ECG: held-out folds, pooled (default: PTB-XL 9,10; every record of any "
                                         "other folder; its split/fold column gives folds when set)"),
    split: str = typer.Option("test", help="echo: held-out EchoNet split (FileList.csv Split: train, val, test)"),
    clips: int = typer.Option(3, help="echo: clips per video, spread over the whole video, outputs averaged"),
    limit: int = typer.Option(None, help="evaluate at most this many records (ECG, beats) or videos (echo)"),
    beat_seconds: float = typer.Option(None, help="beat models: stream only the first SECONDS of each MIT-BIH test "
                                                  "record (default: all of it)"),
    n_boot: int = typer.Option(1000, help="bootstrap rounds for confidence intervals"),
    sweep: bool = typer.Option(True, "--sweep/--no-sweep", help="perturbation sweep (ECG: noise, wander, mains, lead "
                                                             "off; echo: depth attenuation, acoustic shadow - gated)"),
    threads: int = typer.Option(None, help="threads for every stage's engine (default: each back end's own)"),
    write_bundle: bool = typer.Option(True, "--write-bundle/--no-write-bundle",
                                      help="add the report to the bundle (re-hashed manifest)"),
    sign_key: Path = typer.Option(None, help="ed25519 private key to re-sign the bundle after adding the report "
                                             "(only after its signature verifies: with --public-key, else with "
                                             "this key's public half)"),
    public_key: Path = typer.Option(None, "--public-key", "-k", help="PEM public key the bundle signature must match"),
    require_signature: bool = typer.Option(False, "--require-signature", help="refuse a bundle whose signature is "
                                                                              "not checked with --public-key"),
    seed: int = typer.Option(0),
) -> None:
    """Accuracy parity of every stage on held-out labelled data; exits 1 naming stage, metric, value and limit
    when a gate fails."""
    from ..parity import ParityConfig, parse_gate_flags, run_parity

    columns = tuple(c.strip() for item in strata for c in item.split(",") if c.strip())
    cfg = ParityConfig(folds=_folds(folds), format=data_format, strata=columns, unlabelled=unlabelled, limit=limit,
                       n_boot=n_boot, seed=seed, gates=parse_gate_flags(gate),
                       profile=profile, sweep=sweep, write_to_bundle=write_bundle, out=str(out) if out else None,
                       sign_key=str(sign_key) if sign_key else None, split=split, clips_per_video=clips,
                       threads=threads, public_key=str(public_key) if public_key else None,
                       require_signature=require_signature, beat_seconds=beat_seconds)
    with progress_bar() as bar:
        task_id = bar.add_task("parity", total=None, status="")

        def update(message: str) -> None:
            bar.update(task_id, advance=1, status=message)

        result = run_parity(teacher, bundle, data, student=student, cfg=cfg, progress=update)
    show_summary(result)
    if not result.passed:
        for failure in result.failures:
            console.print(f"[bold red]gate failed:[/] {failure.message()}", soft_wrap=True)
        raise typer.Exit(code=GATE_FAILED_EXIT)
    console.print("[bold green]all parity gates passed[/]")


def show_summary(result) -> None:
    """The stage table on the console: the numbers a reviewer checks before opening the HTML."""
    from rich.table import Table

    if result.kind != "multilabel":
        show_output_summary(result)
        return

    data = result.data
    where = f"folds {data.get('folds')}" if data.get("folds") else "every record"
    table = Table(title=f"parity on {data.get('records')} {data.get('format', 'ptbxl')} records, {where}"
                        + ("" if result.labelled else " (unlabelled)"))
    table.add_column("stage", no_wrap=True, min_width=24)
    for col in ("macro AUC", "vs teacher", "vs student FP32", "agreement", "cosine", "max |dlogit|",
                "batch-1 ms"):
        table.add_column(col)

    for name, stage in result.stages.items():
        comp = result.comparisons.get(name, {})
        ref = comp.get("student-fp32") or comp.get("teacher") or {}
        table.add_row(name, num((result.metrics.get(name) or {}).get("macro_auc")),
                      num(comp.get("teacher", {}).get("macro_auc_diff"), "{:+.4f}"),
                      num(comp.get("student-fp32", {}).get("macro_auc_diff"), "{:+.4f}"),
                      num(ref.get("agreement")), num(ref.get("cosine_mean")),
                      num(ref.get("max_abs_logit_diff"), "{:.3g}"),
                      num(stage.latency.get("batch1_median_ms"), "{:.1f}"))
    console.print(table)
    for block in result.strata:
        show_strata(result, block)
    report = data.get("skip_report") or {}
    if report.get("skipped"):
        console.print(f"[yellow]records skipped:[/] {report['skipped']} "
                      + ", ".join(f"{n} {r}" for r, n in sorted(report["counts"].items())), soft_wrap=True)
    if data.get("unmapped_codes"):
        console.print(f"[yellow]codes outside the mapping table:[/] {data['unmapped_code_count']} occurrences "
                      + ", ".join(f"{k} x{v}" for k, v in data["unmapped_codes"].items()), soft_wrap=True)
    for name, why in result.skipped.items():
        console.print(f"[yellow]not run:[/] {name}: {why}", soft_wrap=True)
    for gate, why in result.gates_not_applied.items():
        console.print(f"[yellow]gate not applied:[/] {gate}: {why}", soft_wrap=True)
    for key in ("bundle_html", "html"):
        if key in result.report_paths:
            console.print(f"report: {result.report_paths[key]}", soft_wrap=True)


def num(v, fmt="{:.4f}") -> str:
    return "-" if v is None or v != v else fmt.format(v)  # None, NaN: not defined (e.g. no reference VEB)


def show_strata(result, block) -> None:
    """Per-stratum rows: teacher macro AUC, each INT8 stage's differences with CIs and its agreement."""
    from rich.table import Table

    table = Table(title=f"parity per {block['column']}")
    for col in (block["column"], "records", "stage", "macro AUC [95% CI]", "vs teacher [CI]",
                "vs student FP32 [CI]", "agreement"):
        table.add_column(col, no_wrap=col == "stage")

    def ci(pair) -> str:
        lo, hi = pair or (None, None)
        return "" if lo is None or hi is None else f" [{lo:+.3f}, {hi:+.3f}]"

    for group in block["groups"]:
        for name in result.stages:
            comp = group["comparisons"].get(name, {})
            teacher, student = comp.get("teacher", {}), comp.get("student-fp32", {})
            auc = (group.get("stages") or {}).get(name, {})
            lo, hi = auc.get("macro_auc_ci") or (None, None)
            auc_text = "-" if auc.get("macro_auc") is None else (
                f"{auc['macro_auc']:.3f}" + ("" if lo is None or hi is None else f" [{lo:.3f}, {hi:.3f}]"))
            ref = student or teacher
            table.add_row(group["value"], str(group["records"]), name, auc_text,
                          "-" if not teacher else num(teacher.get("macro_auc_diff"), "{:+.4f}")
                          + ci(teacher.get("macro_auc_diff_ci")),
                          "-" if not student else num(student.get("macro_auc_diff"), "{:+.4f}")
                          + ci(student.get("macro_auc_diff_ci")),
                          num(ref.get("agreement"), "{:.3f}") if ref else "-")
    console.print(table)


def show_output_summary(result) -> None:
    """The echo (regression / one-of-N) stage table: headline metric with CI, differences, agreement, cosine."""
    from rich.table import Table

    regression = result.kind == "regression"
    data = result.data
    if "stream" in data:  # beat models: every stage streamed through the monitor
        title = (f"parity on {data['beats']} beats of {len(data['records'])} MIT-BIH test records, streamed"
                 + (f" (first {data['seconds_per_record']:g} s of each)" if data.get("seconds_per_record") else ""))
    else:
        title = (f"parity on {data.get('videos')} {str(data.get('split')).upper()} videos x "
                 f"{data.get('clips_per_video')} clips" + (" (synthetic)" if data.get("synthetic") else ""))
    table = Table(title=title)
    table.add_column("stage", no_wrap=True, min_width=24)
    metric = f"{result.classes[0]} MAE [95% CI]" if regression else "accuracy [95% CI]"
    for col in (metric, *(["bias"] if regression else []), "vs teacher", "vs student FP32",
                "mean |diff|" if regression else "agreement", "cosine", "batch-1 ms"):
        table.add_column(col)

    diff_key = "mae_diff" if regression else "accuracy_diff"
    for name, stage in result.stages.items():
        m = result.metrics[name]
        comp = result.comparisons.get(name, {})
        ref = comp.get("student-fp32") or comp.get("teacher") or {}
        lo, hi = m["mae_ci"] if regression else m["accuracy_ci"]
        table.add_row(name, f"{num(m['value'], '{:.3f}')} [{num(lo, '{:.3g}')}, {num(hi, '{:.3g}')}]",
                      *([num(m.get("bias"), "{:+.2f}")] if regression else []),
                      num(comp.get("teacher", {}).get(diff_key), "{:+.3f}"),
                      num(comp.get("student-fp32", {}).get(diff_key), "{:+.3f}"),
                      num(ref.get("mean_abs_value_diff" if regression else "agreement"), "{:.3f}"),
                      num(ref.get("cosine_mean")), num(stage.latency.get("batch1_median_ms"), "{:.1f}"))
    console.print(table)
    if "stream" in data:
        show_stream_summary(data["stream"])
    for name, why in result.skipped.items():
        console.print(f"[yellow]not run:[/] {name}: {why}", soft_wrap=True)
    for gate, why in result.gates_not_applied.items():
        console.print(f"[yellow]gate not applied:[/] {gate}: {why}", soft_wrap=True)
    for key in ("bundle_html", "html"):
        if key in result.report_paths:
            console.print(f"report: {result.report_paths[key]}", soft_wrap=True)


def show_stream_summary(stream: dict) -> None:
    """Beat models: EC57 gross figures of each stage's replay and its agreement with the student FP32's."""
    from rich.table import Table

    table = Table(title="the same replays judged as EC57 does (withheld beats count as misses)")
    table.add_column("stage", no_wrap=True, min_width=24)
    for col in ("VEB Se / +P", "SVEB Se / +P", "withheld", "beat agreement", "episodes found / of FP32's",
                "monitor RTF"):
        table.add_column(col)
    for name, e in stream.items():
        episodes = e.get("episodes_vs_student_fp32")
        table.add_row(name, f"{num(e['veb']['se'], '{:.3f}')} / {num(e['veb']['ppv'], '{:.3f}')}",
                      f"{num(e['sveb']['se'], '{:.3f}')} / {num(e['sveb']['ppv'], '{:.3f}')}", str(e["withheld"]),
                      num(e.get("beat_agreement_vs_student_fp32")),
                      "-" if episodes is None else ", ".join(
                          f"{r} {v['found']}/{v['student_fp32_episodes']}" for r, v in episodes.items()
                          if v["student_fp32_episodes"] or v["stage_episodes"]) or "none on either",
                      num(e.get("real_time_factor_median"), "{:.0f}"))
    console.print(table)
