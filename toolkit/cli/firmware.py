"""`jepa-edge firmware build`: compile the C firmware reference runner against a bundle."""

from __future__ import annotations

from pathlib import Path

import typer

from .app import app, console, user_errors

firmware_app = typer.Typer(help="The C firmware reference runner (OpenVINO C API; C++ TensorRT twin).",
                           no_args_is_help=True)
app.add_typer(firmware_app, name="firmware")


@firmware_app.callback()
def _firmware() -> None:
    """The C firmware reference runner: build it against a bundle, then run it on the device."""


@firmware_app.command("build")
@user_errors
def firmware_build(
    bundle: Path = typer.Argument(..., help="bundle folder (manifest.json) the runner is compiled against"),
    out: Path = typer.Option(..., "--out", "-o", help="build folder (outside the bundle)"),
    beats: Path = typer.Option(None, "--beats", help="beat bundle (ecg-beat, same target) compiled in beside the "
                               "window classifier BUNDLE: the runner streams both (stream BUNDLE --beats BEAT)"),
    tensorrt: str = typer.Option("auto", help="C++ TensorRT runner: auto (jetson bundles), on, off"),
    sanitize: str = typer.Option(None, help="compile with -fsanitize=VALUE, e.g. address"),
    public_key: Path = typer.Option(None, "--public-key", "-k", help="PEM public key the signature must match"),
    require_signature: bool = typer.Option(False, "--require-signature", help="refuse an unsigned bundle"),
) -> None:
    """Verify BUNDLE, then configure and compile the runner against its header (CMake, the installed OpenVINO)."""
    from jepa_edge.devices.firmware import build_firmware

    built = build_firmware(bundle, out, beats=beats, sanitize=sanitize, tensorrt=tensorrt, public_key=public_key,
                           require_signature=require_signature)
    for exe in (built.runner, built.trt_runner):
        if exe is not None:
            console.print(f"[bold]{exe}[/] (header {built.header_sha256[:16]}...)", soft_wrap=True, highlight=False)
            console.print(f"  check the bundle:  {exe} golden {built.bundle}", soft_wrap=True, highlight=False)
            beats = f" --beats {built.beat_bundle}" if built.beat_bundle else ""
            console.print(f"  stream int16:      {exe} stream {built.bundle}{beats} --fs HZ --leads II,V1 < frames.i16",
                          soft_wrap=True, highlight=False)
            if built.beat_bundle:
                console.print(f"  check the beat bundle: {exe} golden {built.beat_bundle}", soft_wrap=True,
                              highlight=False)
