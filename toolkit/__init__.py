"""jepa-edge: JEPA foundation models for cardiology, from server GPUs to bedside devices."""

__version__ = "0.1.0"
