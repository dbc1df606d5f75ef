"""`jepa-edge stream`: classify a continuous ECG (a WFDB record replay or int16 frames on stdin)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from .app import app, console, progress_bar, user_errors


@app.command()
@user_errors
def stream(
    bundle: Path = typer.Argument(..., help="bundle folder (manifest.json) or classifier model folder (meta.json): "
                                            "a window classifier, or a beat model (then the arrhythmia monitor runs "
                                            "with quality-only windows)"),
    beats: Path = typer.Option(None, "--beats", help="beat model (bundle or folder) run next to the window "
                                                     "classifier BUNDLE: beat events and rhythm episodes too"),
    record: Path = typer.Option(None, help="WFDB record to replay (path with or without .hea)"),
    realtime: bool = typer.Option(False, "--realtime", help="pace the replay at the record's sampling rate"),
    out: Path = typer.Option(None, help="events as JSON lines (default: stdout)"),
    stdin_int16: bool = typer.Option(False, "--stdin-int16", help="read little-endian int16 frames from stdin"),
    fs: float = typer.Option(None, help="sampling rate of the stdin frames (Hz)"),
    leads: str = typer.Option(None, help="lead order of the stdin frames, e.g. II,V1"),
    gain: float = typer.Option(200.0, help="ADC units per mV of the stdin frames"),
    baseline: float = typer.Option(0.0, help="ADC value of 0 mV in the stdin frames"),
    chunk: int = typer.Option(360, help="samples per chunk fed to the streamer"),
    seconds: float = typer.Option(None, help="replay only the first SECONDS of the record"),
    backend: str = typer.Option(None, help="engine back end (default: the bundle's best for this machine)"),
    public_key: Path = typer.Option(None, "--public-key", "-k", help="PEM public key the bundle signature must match"),
    require_signature: bool = typer.Option(False, "--require-signature", help="refuse a bundle whose signature is "
                                                                              "not checked with --public-key"),
) -> None:
    """Stream an ECG through a model: JSONL events (window scores, hysteresis decisions, quality flags; with a
    beat model also beats labelled N / S / V or withheld, and rhythm episodes) and a summary."""
    from jepa_edge.devices.stream import StreamClassifier, StreamError, int16_source, record_source
    from jepa_edge.devices.stream.monitor import MonitorStream, is_beat_model

    if (record is None) == (not stdin_int16):
        raise StreamError("give exactly one input: --record PATH or --stdin-int16 (with --fs and --leads)")
    options = {"backend": backend} if backend else {}
    trust = {"public_key": public_key, "require_signature": require_signature}
    if beats is not None:
        if is_beat_model(bundle):
            raise StreamError(f"{bundle}: a beat model; with --beats, BUNDLE is the window classifier")
        clf = MonitorStream.open(beats, windows=bundle, backend=backend, **trust)
    elif is_beat_model(bundle):
        clf = MonitorStream.open(bundle, backend=backend, **trust)
    else:
        clf = StreamClassifier.open(bundle, **trust, **options)
    if stdin_int16:
        if fs is None or not leads:
            raise StreamError("--stdin-int16 needs --fs HZ and --leads (e.g. --leads II,V1)")
        source = int16_source(sys.stdin.buffer, fs, [s.strip() for s in leads.split(",") if s.strip()],
                              gain=gain, baseline=baseline, chunk=chunk)
    else:
        from ..data.ecg import check_record

        stop = None
        if seconds is not None:
            _, header = check_record(record)
            stop = min(int(round(seconds * float(header.fs))), int(header.sig_len or 0)) or None
        source = record_source(record, chunk=chunk, realtime=realtime, stop=stop)

    sink = open(out, "w") if out else sys.stdout  # noqa: SIM115 (closed below)
    try:
        if out and source.total_samples:
            with progress_bar() as bar:
                task = bar.add_task(f"stream {Path(source.name).name}", total=source.total_samples, status="")
                done = 0
                flagged = 0

                def update(event: dict) -> None:
                    nonlocal done, flagged
                    if event["type"] == "window":
                        flagged += event["quality"] != "ok"
                        done = min(source.total_samples or 0, int(round(event["t_end"] * source.fs)))
                        bar.update(task, completed=done, status=f"{flagged} flagged")

                summary = clf.run(source, out=sink, on_event=update)
                bar.update(task, completed=source.total_samples)
        else:
            summary = clf.run(source, out=sink)
    finally:
        if out:
            sink.close()
    acct = summary["accounting"]
    console.print(f"{summary['accounting']['windows']} windows: {summary['classified']} classified, "
                  f"{summary['flagged_windows']} flagged {summary['flagged'] or ''}; "
                  f"samples in {acct['samples_in']} = consumed {acct['samples_consumed']} "
                  f"({'ok' if acct['ok'] else 'MISMATCH'}); real-time factor {summary['real_time_factor']}")
    if "beats" in summary:
        b = summary["beats"]
        classes = ", ".join(f"{k} {v}" for k, v in b["classes"].items())
        episodes = ", ".join(f"{k} {v}" for k, v in sorted(b["episodes"].items())) or "none"
        console.print(f"{b['beats']['beats']} beats: {b['beats']['labelled']} labelled ({classes}), "
                      f"{b['beats']['withheld']} withheld (noisy window), {b['beats']['no_window']} without a full "
                      f"window (stream edges); episodes: {episodes}; monitor real-time factor "
                      f"{summary['monitor_real_time_factor']}")
    if out:
        console.print(f"events: [bold]{out}[/]")
    if not acct["ok"]:
        raise typer.Exit(code=1)
