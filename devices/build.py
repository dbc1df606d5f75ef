"""`build_bundle`: a classifier model folder -> a device bundle (quantized artefacts, manifest, golden vectors).

cart-cpu: FP32 ONNX + FP32 reference IR + NNCF INT8 IR (OpenVINO runs it on the cart).
jetson:   FP32 ONNX + transformer-safe Q/DQ INT8 ONNX; the TensorRT engine is built later ON the Jetson by
          `jepa-edge engine build BUNDLE` (`build_engine_into_bundle`), because engines are tied to the GPU and
          TensorRT version.
Everything is seeded and no timestamps are written, so building twice from the same inputs gives the same
manifest (and the same file hashes).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..io import sha256_file
from ..modality import modality_of
from ..models.checkpoint import load_classifier, resolve_model_dir
from ..models.vit import count_parameters
from ..runtimes import open_engine
from ..runtimes.export import DEFAULT_OPSET, export_onnx, export_openvino
from ..tasks.outputs import TaskOutput
from .budget import TARGET_ARTEFACT, budget_result, describe, measure
from .isa import detect_isa
from .profiles import DEFAULT_PROFILE, DeviceProfile, ProfileError, check_onnx_compatible, load_profile

log = logging.getLogger(__name__)

TARGETS = {"cart-cpu": DEFAULT_PROFILE, "jetson": "jetson-orin-nano"}  # target -> default profile
BUILD_STAGES = ("calibration data", "export", "quantize", "golden vectors", "budget", "bundle")


@dataclass(frozen=True)
class BuildOptions:
    """The knobs of a build beyond the contract's arguments; defaults are the production recipe."""

    fallback_layers: tuple[str, ...] = ()  # layers kept float in both back ends (e.g. from a sensitivity sweep)
    sensitivity: bool = False  # run the per-layer sweep and add its fallback list
    accuracy_control: bool = False  # cart-cpu: nncf.quantize_with_accuracy_control on val-fold macro AUC
    golden_windows: int | None = None  # default: the modality's (8 ECG windows, 4 echo clips)
    opset: int = DEFAULT_OPSET
    measure_budget: bool = True  # measure the device's artefact against the profile's budgets ($.budget)


def _versions(opset: int, tensorrt: str | None = None) -> dict[str, Any]:
    import nncf
    import onnxruntime
    import openvino

    return {"openvino": openvino.get_version().split("-")[0], "onnxruntime": onnxruntime.__version__,
            "nncf": nncf.__version__, "tensorrt": tensorrt, "opset": opset}


def _tolerance(measured: float, floor: float) -> float:
    """Golden tolerance for an artefact: 4x what this build measured (other CPUs pick other kernels), at least
    `floor`, rounded up to 2 significant digits so the manifest stays short and stable."""
    value = max(4.0 * measured, floor)
    return float(f"{value:.2g}") if float(f"{value:.2g}") >= value else float(f"{value * 1.05:.2g}")


def accuracy_control_drop(output: TaskOutput, profile: DeviceProfile) -> float:
    """The largest INT8-vs-FP32 loss NNCF's accuracy control may accept, from the profile's matching gate:
    macro AUC for multi-label heads, the regressed value's MAE (its unit, e.g. EF points) for regression,
    accuracy for one-of-N heads."""
    from ..parity.gates import ACCURACY_CONTROL_GATES

    return float(profile.gates[ACCURACY_CONTROL_GATES[output.kind]])


def resolve_profile(target: str, profile: str | DeviceProfile | None) -> DeviceProfile:
    if target not in TARGETS:
        raise ProfileError(f"unknown build target {target!r}; choose from {sorted(TARGETS)}")
    prof = profile if isinstance(profile, DeviceProfile) else load_profile(profile or TARGETS[target])
    if prof.kind != target:
        raise ProfileError(f"profile {prof.name} is for {prof.kind!r} devices, not target {target!r}")
    return prof


def build_bundle(classifier_dir: str | Path, target: str, out: str | Path, profile: str | DeviceProfile | None = None,
                 data: str | Path | None = None, calibration_windows: int | None = None, seed: int = 0,
                 sign_key: Any = None, options: BuildOptions | None = None,
                 progress: Callable[[str], None] | None = None) -> Path:
    """Quantize and package `classifier_dir` for `target` ("cart-cpu" | "jetson") into the bundle folder `out`.

    The classifier's modality (ECG or echo) says where calibration and golden inputs come from (PTB-XL folds;
    an EchoNet-layout folder's TRAIN / VAL videos) and how many by default (`calibration_windows=None`).
    `progress(stage)` is called as each of the BUILD_STAGES starts (the CLI draws its bar from it)."""
    from ..bundle import BundleBuilder, GoldenSource
    from ..quantize import OpenVinoRecipe, QdqRecipe, quantize_openvino, quantize_qdq
    from ..quantize.qdq import qdq_tensorrt_problems

    step = progress or (lambda stage: None)
    opts = options or BuildOptions()
    prof = resolve_profile(target, profile)
    if prof.require_signature and sign_key is None:
        raise ProfileError(f"device profile {prof.name!r} requires signed bundles: pass a signing key (--sign)")
    model_dir = resolve_model_dir(classifier_dir)
    model, meta = load_classifier(model_dir)
    modality = modality_of(meta)
    pre = modality.preprocessing(meta["preprocessing"])
    output = TaskOutput.from_meta(meta)
    if calibration_windows is None:
        calibration_windows = modality.default_calibration
    golden_count = opts.golden_windows if opts.golden_windows is not None else modality.default_golden
    opset = min(opts.opset, prof.max_opset)
    torch.manual_seed(seed)
    step("calibration data")
    calib = modality.labelled_set(pre, data, output, "train", calibration_windows, seed)
    golden = modality.labelled_set(pre, data, output, "val", golden_count, seed, keep_sources=True)
    with torch.inference_mode():
        ref_logits, ref_emb = (t.numpy() for t in model(torch.from_numpy(golden.windows)))
    reference = {"logits": ref_logits, "embedding": ref_emb}

    with tempfile.TemporaryDirectory(prefix="jepa-build-") as tmp_name:
        tmp = Path(tmp_name)
        step("export")
        fp32_onnx = export_onnx(model, tmp / "model.onnx", opset=opset)
        check_onnx_compatible(fp32_onnx, prof)
        fallback = list(opts.fallback_layers)
        files: list[tuple[Path, str, str]] = [(fp32_onnx, "model.onnx", "onnx-fp32")]
        tolerances: dict[str, float] = {}
        extra_quant: dict[str, Any] = {}
        if opts.sensitivity:
            from ..quantize.sensitivity import layer_sensitivity

            probe = quantize_qdq(fp32_onnx, tmp / "probe.qdq.onnx", calib.windows, QdqRecipe())
            report = layer_sensitivity(fp32_onnx, probe.path, calib.windows[:16])
            fallback = sorted(set(fallback) | set(report.fallback))
            extra_quant["sensitivity"] = report.to_dict()
        step("quantize")
        if target == "jetson":
            qdq = quantize_qdq(fp32_onnx, tmp / "model.qdq.onnx", calib.windows,
                               QdqRecipe(nodes_to_exclude=tuple(fallback)))
            check_onnx_compatible(qdq.path, prof)
            problems = qdq_tensorrt_problems(__import__("onnx").load(str(qdq.path)))
            if problems:
                raise ProfileError(f"{qdq.path}: Q/DQ graph TensorRT would reject: {problems[:3]}")
            files.append((qdq.path, "model.qdq.onnx", "onnx-qdq"))
            recipe_name = "qdq-matmul-gemm-per-channel-symmetric (onnxruntime quantize_static)"
            extra_quant["details"] = qdq.recipe.to_dict()
            checks = {"onnx-fp32": (fp32_onnx, 1e-3), "onnx-qdq": (qdq.path, 0.05)}
        else:
            fp32_xml = export_openvino(fp32_onnx, tmp / "model_fp32.xml")
            recipe = OpenVinoRecipe(ignored=tuple(fallback), target_isa=tuple(prof.required_isa))
            if opts.accuracy_control:
                from ..quantize import quantize_openvino_with_accuracy_control

                val = modality.labelled_set(pre, data, output, "val", None, seed)
                max_drop = accuracy_control_drop(output, prof)
                result = quantize_openvino_with_accuracy_control(
                    fp32_xml, tmp / "model_int8.xml", calib.windows, val.windows, val.labels,
                    max_drop=max_drop, recipe=recipe, output=output)
                int8_xml = result.path
                fallback = sorted(set(fallback) | set(result.fallback_layers))
                extra_quant["accuracy_control"] = {"metric": result.metric_name, "fp32": result.metric_fp32,
                                                   "int8": result.metric_int8, "max_drop": result.max_drop}
            else:
                int8_xml = quantize_openvino(fp32_xml, tmp / "model_int8.xml", calib.windows, recipe)
            files += [(fp32_xml, "openvino/model_fp32.xml", "openvino-fp32-xml"),
                      (fp32_xml.with_suffix(".bin"), "openvino/model_fp32.bin", "openvino-fp32-bin"),
                      (int8_xml, "openvino/model_int8.xml", "openvino-int8-xml"),
                      (int8_xml.with_suffix(".bin"), "openvino/model_int8.bin", "openvino-int8-bin")]
            recipe_name = "nncf-transformer-performance (nncf.quantize, ModelType.TRANSFORMER)"
            extra_quant["details"] = recipe.to_dict()
            checks = {"onnx-fp32": (fp32_onnx, 1e-3), "openvino-fp32": (fp32_xml, 1e-3),
                      "openvino-int8": (int8_xml, 0.05)}
        step("golden vectors")
        for role, (path, floor) in checks.items():
            got = open_engine(path).outputs(golden.windows)
            worst = max(float(np.abs(got[k] - reference[k]).max()) for k in reference)
            tolerances[role] = _tolerance(worst, floor)

        budget = None
        if opts.measure_budget:
            step("budget")
            if target == "cart-cpu":
                budget = budget_result(measure(int8_xml, golden.windows, prof), prof, TARGET_ARTEFACT[target])
            else:
                budget = budget_result(None, prof, TARGET_ARTEFACT[target], reason="the TensorRT engine is built and "
                                       "measured on the Jetson (`jepa-edge engine build`)")
            if budget["passed"] is False:
                log.warning("%s: over the device profile's budget: %s", out, describe(budget))
        isa = detect_isa().to_dict()
        isa.pop("mhz", None)  # the clock drifts between reads; the manifest must not
        isa.pop("cores", None)
        target_field: dict[str, Any] = {"kind": target, "profile": prof.name, "profile_data": prof.to_dict()}
        if target == "cart-cpu":
            target_field["build_isa"] = isa
        step("bundle")
        with BundleBuilder(out, sign_key=sign_key) as builder:
            for src, rel, role in files:
                builder.add_file(src, rel, role)
            builder.set(
                toolkit_version=__version__,
                model={"name": meta.get("name") or model_dir.name, "task": meta.get("task", ""),
                       "modality": modality.name, "encoder": meta["encoder"], "head": meta["head"],
                       "parameters": count_parameters(model), "output": output.to_dict(),
                       "source_checkpoint_sha256": meta.get("weights_sha256")
                       or sha256_file(model_dir / "model.safetensors"),
                       **{key: meta[key] for key in modality.bundle_meta if key in meta}},
                target=target_field,
                runtimes=_versions(opset),
                calibration=calib.manifest(),
                quantization={"recipe": recipe_name, "precision": "int8", "fallback_layers": fallback, **extra_quant},
                io=modality.io_fields(meta["encoder"], output, int(ref_emb.shape[1])),
                preprocessing=pre.to_dict(),
                labels=list(output.names),
                thresholds=[float(t) for t in output.thresholds],
                **({"budget": budget} if budget is not None else {}),
            )
            sources = ([GoldenSource(sig, fs, off) for sig, fs, off in golden.sources]
                       if golden.sources is not None else None)
            builder.add_golden(golden.windows, reference, tolerances, sources=sources)
    return Path(out)


def build_engine_into_bundle(bundle_path: str | Path, profile: str | None = None, sign_key: Any = None,
                             max_batch: int = 32, dla_core: int | None = None, public_key: Any = None,
                             require_signature: bool = False) -> Path:
    """On the Jetson: build a TensorRT engine from the bundle's Q/DQ ONNX, check it against the golden vectors
    with the Q/DQ tolerance, and add it to the bundle (re-hashed, re-signed with `sign_key`).

    The bundle is opened under the trust policy first (`public_key`, `require_signature`, the profile's
    `require_signature`); re-signing needs its existing signature to verify (with `public_key`, else with
    `sign_key`'s public half), so a tampered bundle never comes out validly signed."""
    from ..bundle import BundleError, open_bundle, update_bundle
    from ..bundle.trust import TrustPolicy
    from ..runtimes.tensorrt_backend import EngineBuildConfig, TensorRtEngine, _import_tensorrt, build_engine

    policy = TrustPolicy(public_key=public_key, require_signature=require_signature, profile=profile)
    if sign_key is not None:
        policy = policy.for_resigning(Path(bundle_path), sign_key)
    bundle = open_bundle(bundle_path, policy)  # before anything else: nothing is built from an unverified bundle
    trt = _import_tensorrt()  # BackendUnavailable with the reason on machines without TensorRT
    manifest = bundle.manifest
    if manifest["target"]["kind"] != "jetson":
        raise BundleError(f"{bundle_path}: a {manifest['target']['kind']} bundle has no Q/DQ ONNX to build from")
    prof = load_profile(profile or manifest["target"]["profile"])
    qdq = bundle.file("onnx-qdq")
    check_onnx_compatible(qdq, prof)
    major_minor = ".".join(trt.__version__.split(".")[:2])
    if prof.tensorrt and major_minor != prof.tensorrt:
        log.warning("TensorRT %s here, profile %s expects %s", trt.__version__, prof.name, prof.tensorrt)
    with tempfile.TemporaryDirectory(prefix="jepa-engine-") as tmp_name:
        engine_path = build_engine(qdq, Path(tmp_name) / "model.engine", EngineBuildConfig(
            max_batch=max_batch, use_dla_core=dla_core, timing_cache=str(Path(tmp_name) / "timing.cache")))
        inputs, expected = bundle.golden()
        got = TensorRtEngine.load(engine_path).outputs(inputs)
        tol = manifest["golden"]["tolerances"].get("onnx-qdq", 0.05)
        worst = max(float(np.abs(got[k] - expected[k]).max()) for k in expected)
        if worst > (tol if isinstance(tol, float) else max(tol.values())):
            raise BundleError(f"{engine_path}: engine output differs from golden by {worst:.4g} > {tol}")
        runtimes = {**manifest["runtimes"], "tensorrt": trt.__version__}
        budget = budget_result(measure(engine_path, inputs, prof), prof, "tensorrt-engine")
        return update_bundle(bundle_path, add_files={"tensorrt/model.engine": (engine_path, "tensorrt-engine"),
                                                     "tensorrt/timing.cache": (Path(tmp_name) / "timing.cache",
                                                                               "tensorrt-timing-cache")},
                             set_fields={"runtimes": runtimes, "budget": budget}, sign_key=sign_key,
                             policy=policy)
