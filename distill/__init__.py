"""Teacher -> student distillation (`jepa_edge.distill`): compact students that keep the teacher's accuracy."""

from .trainer import DistillConfig, DistillError, align_tokens, distill, student_preprocessing

__all__ = ["DistillConfig", "DistillError", "align_tokens", "distill", "student_preprocessing"]
