"""The pretraining configuration, in a module of its own so modality tasks and the trainer can both import it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..config import ConfigError


@dataclass
class PretrainConfig:
    """Defaults follow ECG-JEPA (AdamW betas 0.9/0.99, EMA 0.998->0.9995, wd 0.01->0.1, cosine lr, L1 loss).

    Three recipe options are off by default because benchmarks/pretrain_quality.py did not show them helping at
    CPU budgets (see README, "Does pretraining help?"): `target_norm` (layer-norm targets, as I-JEPA / V-JEPA),
    `ema_horizon` (cap the EMA horizon at that share of the run, so a short run's exported target is not
    mostly its random initialisation) and `var_weight` / `cov_weight` (VICReg terms against collapse; they
    kept the beat encoder's rank up but probed worse)."""

    modality: str = "ecg"
    data: str | None = None
    model: str = "vit-s"
    out: str = "runs/pretrain"
    steps: int = 1000
    batch_size: int = 64  # global, split evenly over ranks
    lr: float = 1e-3
    min_lr: float = 1e-6
    warmup_steps: int = 100
    weight_decay: float = 0.01
    final_weight_decay: float = 0.1
    ema: float = 0.998
    final_ema: float = 0.9995
    ema_horizon: float = 0.0  # > 0: momentum <= 1 - 1 / (ema_horizon * steps); 0 leaves the ramp alone
    target_norm: bool = False  # layer-norm (no affine) of the target tokens before the loss
    var_weight: float = 0.0  # > 0: VICReg variance hinge on the context encoder's pooled outputs (C-JEPA)
    cov_weight: float = 0.0  # > 0: VICReg covariance penalty on the same (VICReg's ratio: 0.04 x var_weight)
    betas: tuple[float, float] = (0.9, 0.99)
    eps: float = 1e-6
    grad_clip: float = 1.0
    keep_ratio: tuple[float, float] = (0.15, 0.25)
    min_block: int = 10
    patch: int = 25
    seed: int = 0
    num_workers: int = 0
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU; or "fp32" / "bf16"
    activation_checkpointing: bool = False
    fsdp: str = "auto"  # auto: FSDP for vit-l / vit-g when several ranks; "on" / "off"
    compile: bool = False
    skip_bad: bool = False
    max_records: int | None = None
    device: str = "auto"
    extra: dict[str, Any] = field(default_factory=dict)  # modality-specific options (e.g. echo frames)

    def __post_init__(self) -> None:
        for name in ("var_weight", "cov_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0 (0 turns the term off), got {getattr(self, name)}")
