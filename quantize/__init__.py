"""INT8 post-training quantization: calibration sets, Q/DQ ONNX for TensorRT, NNCF for OpenVINO, sensitivity."""

from .calibration import DEFAULT_WINDOWS, CalibrationSet, build_calibration_set, stratified_picks
from .openvino_int8 import (
    AccuracyControlResult,
    OpenVinoRecipe,
    quantize_openvino,
    quantize_openvino_with_accuracy_control,
)
from .qdq import QdqRecipe, QdqResult, float_ops_with_qdq, qdq_tensorrt_problems, quantize_qdq, quantized_nodes
from .sensitivity import SensitivityReport, layer_sensitivity

__all__ = ["DEFAULT_WINDOWS", "CalibrationSet", "build_calibration_set", "stratified_picks", "AccuracyControlResult",
           "OpenVinoRecipe", "quantize_openvino", "quantize_openvino_with_accuracy_control", "QdqRecipe",
           "QdqResult", "float_ops_with_qdq", "qdq_tensorrt_problems", "quantize_qdq", "quantized_nodes",
           "SensitivityReport", "layer_sensitivity"]
