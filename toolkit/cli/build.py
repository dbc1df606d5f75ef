"""`jepa-edge quantize`, `build --target`, `engine build`: thin shells over quantize/ and devices/."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .app import app, console, progress_bar, user_errors

engine_app = typer.Typer(help="TensorRT engines (run on the Jetson itself).", no_args_is_help=True)
app.add_typer(engine_app, name="engine")


def _device_errors(func):
    """Profile, bundle and back-end problems are user errors too (clear message, exit 2)."""
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from ..bundle import BundleError
        from ..devices.profiles import ProfileError
        from ..runtimes import BackendUnavailable, EngineError

        try:
            return func(*args, **kwargs)
        except (ProfileError, BundleError, EngineError, BackendUnavailable) as exc:
            console.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(code=2) from None

    return wrapper


@app.command()
@user_errors
@_device_errors
def quantize(
    classifier: Path = typer.Argument(..., help="classifier model folder (student + head)"),
    out: Path = typer.Option(..., help="folder for model.onnx, model.qdq.onnx, model_fp32/int8.xml, report"),
    data: Path = typer.Option(None, help="calibration data: PTB-XL folder for ECG (default: $JEPA_EDGE_DATA), "
                                         "EchoNet-layout folder for echo"),
    windows: int = typer.Option(None, help="calibration windows / clips (default: 300 ECG, 128 echo)"),
    seed: int = typer.Option(0),
    sensitivity: bool = typer.Option(False, help="per-layer sensitivity sweep -> float fallback list"),
    accuracy_control: bool = typer.Option(False, help="NNCF accuracy control on the validation split's metric "
                                                      "(macro AUC; LVEF MAE; view accuracy)"),
    max_drop: float = typer.Option(None, help="max metric loss for accuracy control (default: the cart-x86 "
                                              "profile's *_fp32_int8 gate for the output's metric)"),
) -> None:
    """INT8 post-training quantization: Q/DQ ONNX (TensorRT) and NNCF OpenVINO IR, with a parity report."""
    from ..quantize.pipeline import STAGES, quantize_classifier

    with progress_bar() as bar:
        task = bar.add_task("quantize", total=len(STAGES), status="")

        def step(stage: str) -> None:
            bar.update(task, completed=STAGES.index(stage), status=stage)

        report = quantize_classifier(classifier, out, data=data, windows=windows, seed=seed, sensitivity=sensitivity,
                                     accuracy_control=accuracy_control, max_drop=max_drop, progress=step)
        bar.update(task, completed=len(STAGES), status="done")
    for name, outs in report["parity"].items():
        console.print(f"{name:18s} cosine logits {outs['logits']['cosine']:.5f}  "
                      f"embedding {outs['embedding']['cosine']:.5f}")
    console.print(f"report: [bold]{Path(out) / 'quantize_report.json'}[/]")


@app.command()
@user_errors
@_device_errors
def build(
    classifier: Path = typer.Argument(..., help="classifier model folder (student + head)"),
    target: str = typer.Option(..., help="jetson or cart-cpu"),
    out: Path = typer.Option(..., help="bundle folder to write"),
    profile: str = typer.Option(None, help="device profile (default: jetson-orin-nano / cart-x86)"),
    sign: Path = typer.Option(None, help="ed25519 private key (PEM) to sign the manifest"),
    data: Path = typer.Option(None, help="calibration data: PTB-XL folder for ECG (default: $JEPA_EDGE_DATA), "
                                         "EchoNet-layout folder for echo"),
    windows: int = typer.Option(None, help="calibration windows / clips (default: 300 ECG, 128 echo)"),
    seed: int = typer.Option(0),
    sensitivity: bool = typer.Option(False, help="per-layer sensitivity sweep -> float fallback list"),
    accuracy_control: bool = typer.Option(False, help="cart-cpu: NNCF accuracy control on the output's metric, "
                                                      "max loss from the profile's gates"),
) -> None:
    """Quantize and package a classifier into a device bundle (manifest, golden vectors, C header)."""
    from ..devices.build import BUILD_STAGES, BuildOptions, build_bundle

    opts = BuildOptions(sensitivity=sensitivity, accuracy_control=accuracy_control)
    with progress_bar() as bar:
        task = bar.add_task(f"build {target}", total=len(BUILD_STAGES), status="")

        def step(stage: str) -> None:
            bar.update(task, completed=BUILD_STAGES.index(stage), status=stage)

        path = build_bundle(classifier, target, out, profile=profile, data=data, calibration_windows=windows,
                            seed=seed, sign_key=sign, options=opts, progress=step)
        bar.update(task, completed=len(BUILD_STAGES), status="done")
    manifest = json.loads((path / "manifest.json").read_text())
    roles = ", ".join(f["role"] for f in manifest["files"] if not f["path"].startswith("golden/"))
    console.print(f"bundle: [bold]{path}[/]  ({roles})")
    if target == "jetson":
        console.print(f"next, on the Jetson: [bold]jepa-edge engine build {path}[/]")


@engine_app.command("build")
@user_errors
@_device_errors
def engine_build(
    bundle: Path = typer.Argument(..., help="jetson bundle folder (holds the Q/DQ ONNX)"),
    profile: str = typer.Option(None, help="device profile (default: the bundle's)"),
    sign: Path = typer.Option(None, help="ed25519 private key to re-sign the manifest (only after the bundle's "
                                         "signature verifies: with --public-key, else with this key's public half)"),
    public_key: Path = typer.Option(None, "--public-key", "-k", help="PEM public key the bundle signature must match"),
    require_signature: bool = typer.Option(False, "--require-signature", help="refuse a bundle whose signature is "
                                                                              "not checked with --public-key"),
    max_batch: int = typer.Option(32, help="largest batch of the optimisation profile"),
    dla_core: int = typer.Option(None, help="build for this DLA core (Orin NX / AGX Orin), GPU fallback on"),
) -> None:
    """Build the TensorRT engine on this device from the bundle's Q/DQ ONNX and add it to the bundle."""
    from ..devices.build import build_engine_into_bundle

    with progress_bar() as bar:
        task = bar.add_task("tensorrt engine", total=1, status="building (minutes on a Jetson)")
        path = build_engine_into_bundle(bundle, profile=profile, sign_key=sign, max_batch=max_batch,
                                        dla_core=dla_core, public_key=public_key,
                                        require_signature=require_signature)
        bar.update(task, completed=1, status="done")
    console.print(f"engine added to [bold]{path}[/]")
