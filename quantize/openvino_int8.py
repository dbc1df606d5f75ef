"""OpenVINO INT8 with NNCF: `nncf.quantize` (ModelType.TRANSFORMER keeps LayerNorm/Softmax/GELU and the residual
path float) and `nncf.quantize_with_accuracy_control`, whose validation function is the clinical metric of the
model's output (macro AUC for ECG classes, LVEF MAE for an echo regression head, accuracy for views) and whose
allowed drop comes from the device profile."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jepa_edge.config import ConfigError

from ..runtimes.export import save_ir
from ..runtimes.signal_stack import stable_signal_stack


@dataclass(frozen=True)
class OpenVinoRecipe:
    """NNCF settings; `ignored` is where the sensitivity fallback list (OpenVINO op names) goes."""

    preset: str = "performance"  # symmetric activations and weights: the fast path of VNNI/AMX kernels
    fast_bias_correction: bool = True
    ignored: tuple[str, ...] = ()
    subset_size: int | None = None  # default: every calibration window
    # NNCF's overflow fix (weights in 7 bits). CPUs without VNNI (AVX2 only, as some carts and some 2-core machines
    # of this project are) sum u8 x s8 product pairs in int16 with saturation: with NNCF's default ("first_layer")
    # the quick demo's INT8 student fell below its 0.99 agreement gate there (0.979). "auto" decides by the target,
    # not by the machine that builds: "first_layer" only where every CPU the profile admits has a VNNI/AMX dot
    # product (`target_isa`: the profile's required_isa), "enable" otherwise, so one bundle is safe on every cart
    # its profile accepts and the same build comes out on any build machine.
    overflow_fix: str = "auto"
    target_isa: tuple[str, ...] = ()

    def resolved_overflow_fix(self) -> str:
        if self.overflow_fix != "auto":
            return self.overflow_fix
        from jepa_edge.devices.isa import has_int8_dot

        return "first_layer" if has_int8_dot(self.target_isa) else "enable"

    def to_dict(self) -> dict:
        return {"format": "openvino-ir", "tool": "nncf.quantize", "model_type": "transformer",
                "preset": self.preset, "fast_bias_correction": self.fast_bias_correction,
                "ignored": list(self.ignored), "overflow_fix": self.resolved_overflow_fix(),
                "target_isa": list(self.target_isa)}


@dataclass
class AccuracyControlResult:
    path: Path
    metric_fp32: float
    metric_int8: float
    max_drop: float
    fallback_layers: list[str] = field(default_factory=list)
    metric_name: str = "macro_auc"


def _silence_nncf() -> None:
    import logging

    import nncf  # noqa: F401

    logging.getLogger("nncf").setLevel(logging.WARNING)


def _common_args(recipe: OpenVinoRecipe, n: int) -> dict[str, Any]:
    import nncf

    preset = {"performance": nncf.QuantizationPreset.PERFORMANCE, "mixed": nncf.QuantizationPreset.MIXED}
    if recipe.preset not in preset:
        raise ConfigError(f"NNCF preset {recipe.preset!r}: choose from {sorted(preset)}")
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    fixes = {"enable": OverflowFix.ENABLE, "first_layer": OverflowFix.FIRST_LAYER, "disable": OverflowFix.DISABLE}
    if recipe.resolved_overflow_fix() not in fixes:
        raise ConfigError(f"NNCF overflow_fix {recipe.overflow_fix!r}: choose from {sorted(fixes)} or auto")
    args: dict[str, Any] = {"model_type": nncf.ModelType.TRANSFORMER, "preset": preset[recipe.preset],
                            "fast_bias_correction": recipe.fast_bias_correction,
                            "subset_size": recipe.subset_size or n,
                            "advanced_parameters": AdvancedQuantizationParameters(
                                overflow_fix=fixes[recipe.resolved_overflow_fix()])}
    if recipe.ignored:
        args["ignored_scope"] = nncf.IgnoredScope(names=list(recipe.ignored), validate=False)
    return args


def _items(windows: np.ndarray) -> list[np.ndarray]:
    if len(windows) == 0:
        raise ConfigError("empty calibration set")
    return [np.ascontiguousarray(w[None], dtype=np.float32) for w in windows]


@stable_signal_stack()
def quantize_openvino(fp32_xml: str | Path, out_xml: str | Path, windows: np.ndarray,
                      recipe: OpenVinoRecipe | None = None) -> Path:
    """FP32 IR + calibration windows -> INT8 IR (FP32 weights elsewhere, no FP16 compression)."""
    import nncf
    import openvino as ov

    _silence_nncf()
    recipe = recipe or OpenVinoRecipe()
    model = ov.Core().read_model(str(fp32_xml))
    quantized = nncf.quantize(model, nncf.Dataset(_items(windows)), **_common_args(recipe, len(windows)))
    return save_ir(quantized, out_xml)


@stable_signal_stack()
def quantize_openvino_with_accuracy_control(
    fp32_xml: str | Path, out_xml: str | Path, windows: np.ndarray, val_windows: np.ndarray, val_labels: np.ndarray,
    max_drop: float, recipe: OpenVinoRecipe | None = None, max_num_iterations: int = 8, output: Any = None,
) -> AccuracyControlResult:
    """INT8 whose metric on (val_windows, val_labels) is within `max_drop` (absolute) of FP32; NNCF reverts the
    most harmful layers to float until it is. The reverted layers are returned as the fallback list.

    `output` (a `TaskOutput`) picks the metric; without one it is macro AUC (multi-label). NNCF wants bigger to
    be better, so an error metric (MAE) is handed to it negated: a drop of 0.2 then means 0.2 more MAE. The
    values in the result are the metric itself, not negated."""
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    from ..tasks.outputs import TaskOutput

    if output is None:
        output = TaskOutput("multilabel", tuple(str(i) for i in range(np.asarray(val_labels).shape[1])),
                            (0.5,) * np.asarray(val_labels).shape[1])

    _silence_nncf()
    recipe = recipe or OpenVinoRecipe()
    if len(val_windows) != len(val_labels):
        raise ConfigError(f"{len(val_windows)} validation windows but {len(val_labels)} label rows")
    model = ov.Core().read_model(str(fp32_xml))
    val_items = [(w[None].astype(np.float32), y) for w, y in zip(val_windows, val_labels, strict=True)]

    sign = 1.0 if output.higher_is_better else -1.0

    def validate(compiled: ov.CompiledModel, items) -> tuple[float, list[list[np.ndarray]]]:
        logits, labels, per_item = [], [], []
        out = compiled.outputs[0]
        for x, y in items:
            z = np.asarray(compiled(x)[out])
            logits.append(z[0])
            labels.append(y)
            per_item.append([z])
        value = output.metric(np.stack(labels), np.stack(logits)) if len(labels) > 1 else float("nan")
        return sign * float(value), per_item

    metrics: dict[str, float] = {}

    def validate_recorded(compiled, items):
        value, per_item = validate(compiled, items)
        metrics.setdefault("first", value)
        metrics["last"] = value
        return value, per_item

    common = _common_args(recipe, len(windows))
    common["advanced_quantization_parameters"] = common.pop("advanced_parameters")  # this call's name for it
    quantized = nncf.quantize_with_accuracy_control(
        model, nncf.Dataset(_items(windows)), nncf.Dataset(val_items, lambda item: item[0]), validate_recorded,
        max_drop=max_drop, drop_type=nncf.DropType.ABSOLUTE,
        advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
            max_num_iterations=max_num_iterations),
        **common)
    fq_before = {op.get_friendly_name() for op in model.get_ops() if op.get_type_name() == "FakeQuantize"}
    del fq_before
    save_ir(quantized, out_xml)
    core = ov.Core()
    fp32_auc = validate(core.compile_model(str(fp32_xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}), val_items)[0]
    int8_auc = validate(core.compile_model(str(out_xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}), val_items)[0]
    return AccuracyControlResult(Path(out_xml), sign * fp32_auc, sign * int8_auc, max_drop,
                                 fallback_layers=float_matmuls(quantized), metric_name=output.metric_name)


def float_matmuls(model) -> list[str]:
    """MatMul ops of an NNCF-quantized OpenVINO model whose weights carry no FakeQuantize (left in float)."""
    left = []
    for op in model.get_ordered_ops():
        if op.get_type_name() != "MatMul":
            continue
        srcs = [op.input_value(i).get_node() for i in range(op.get_input_size())]
        if not any(s.get_type_name() == "FakeQuantize" for s in srcs):
            left.append(op.get_friendly_name())
    return left
