"""Models: one size table, ECG and echo encoders, the JEPA predictor, task heads, checkpoints."""

from .ecg import EcgEncoder, EcgEncoderSpec, build_ecg_encoder, ecg_predictor
from .heads import AttentiveHead, Classifier, LinearHead, build_head
from .vit import MODEL_SIZES, Predictor, TokenEncoder, ViTSize, count_parameters, model_size

__all__ = [
    "MODEL_SIZES", "AttentiveHead", "Classifier", "EcgEncoder", "EcgEncoderSpec", "LinearHead", "Predictor",
    "TokenEncoder", "ViTSize", "build_ecg_encoder", "build_head", "count_parameters", "ecg_predictor", "model_size",
]
