"""Calibration sets live in the core (`jepa_edge.data.calibration`) because every modality describes where its
calibration data comes from; this name stays for code that imported it from the quantize stage."""

from ..data.calibration import (
    DEFAULT_WINDOWS,
    CalibrationSet,
    build_calibration_set,
    calibration_hash,
    stratified_picks,
)

__all__ = ["DEFAULT_WINDOWS", "CalibrationSet", "build_calibration_set", "calibration_hash", "stratified_picks"]
