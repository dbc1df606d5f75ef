"""One description per modality: what every stage of the chain asks instead of branching on "ecg".

Export asks for an example input and the input tensor's name and layout; quantize and build ask where
calibration, golden and validation data come from; the bundle asks how to describe the input; distillation
asks how to align teacher and student token grids. Adding a modality means adding one `Modality` here (and
its data reader), not editing distill/, quantize/, runtimes/ or the bundle code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .data.calibration import CalibrationSet
from .errors import JepaEdgeError
from .tasks.outputs import TaskOutput


class ModalityError(JepaEdgeError):
    """A model or preprocessing description of a modality this toolkit does not know."""


@dataclass(frozen=True)
class Modality:
    """The ECG description; `EchoModality` overrides what differs for video."""

    name: str = "ecg"
    input_name: str = "ecg"
    layout: str = "(batch, leads, samples) float32, preprocessed as in $.preprocessing"
    default_calibration: int = 300
    default_golden: int = 8
    carried_meta: tuple[str, ...] = ()  # meta.json keys a distilled student keeps from its teacher
    bundle_meta: tuple[str, ...] = ()  # meta.json keys a bundle's `$.model` carries for the runtime that reads it
    preprocessing_kind: str = "ecg"  # `$.preprocessing.kind` of this modality's models

    def preprocessing(self, d: Mapping[str, Any]) -> Any:
        """The preprocessing object (`EcgPreprocessing`) from its `to_dict()` form."""
        from .data.preprocess import EcgPreprocessing

        return EcgPreprocessing.from_dict(dict(d))

    def input_shape(self, encoder: Mapping[str, Any]) -> tuple[int, ...]:
        """The model input without its batch axis."""
        return int(encoder["leads"]), int(encoder["samples"])

    def token_grid(self, encoder: Mapping[str, Any]) -> tuple[int, ...]:
        """Tokens as a grid (time only for ECG), so a student's coarser grid can be pooled from a teacher's."""
        return (int(encoder["samples"]) // int(encoder["patch"]),)

    def example_input(self, encoder: Mapping[str, Any], batch: int = 2) -> torch.Tensor:
        gen = torch.Generator().manual_seed(0)
        return torch.randn(batch, *self.input_shape(encoder), generator=gen)

    def labelled_set(self, pre: Any, data: str | Path | None, output: TaskOutput, split: str = "train",
                     count: int | None = None, seed: int = 0, keep_sources: bool = False) -> CalibrationSet:
        """Seeded, hashed model inputs with ground truth from one split: PTB-XL folds for ECG. `keep_sources`:
        also the raw record of every window (golden vectors carry them for firmware's preprocessing check)."""
        from .data.calibration import build_calibration_set

        labels = list(output.names) if output.kind == "multilabel" else None
        return build_calibration_set(pre, data, windows=count, seed=seed, labels=labels, split=split,
                                     keep_sources=keep_sources)

    def paired_inputs(self, teacher_meta: Mapping[str, Any], options: Mapping[str, Any], data: str | Path | None,
                      skip_bad: bool = False, max_records: int | None = None) -> Any:
        """Teacher and student inputs of the same moments for distillation (`jepa_edge.paired.PairedInputs`):
        ECG students may take a lead subset (`leads`) and longer patches (`patch`)."""
        from .paired import ecg_pairs

        return ecg_pairs(teacher_meta, options, data, skip_bad, max_records)

    def io_fields(self, encoder: Mapping[str, Any], output: TaskOutput, embedding_dim: int) -> dict[str, Any]:
        """The manifest's `io`: names, shapes (batch dynamic) and layout of every tensor."""
        return {
            "inputs": [{"name": self.input_name, "shape": ["batch", *self.input_shape(encoder)], "dtype": "float32",
                        "layout": self.layout}],
            "outputs": [{"name": "logits", "shape": ["batch", output.width], "dtype": "float32"},
                        {"name": "embedding", "shape": ["batch", int(embedding_dim)], "dtype": "float32"}],
        }


@dataclass(frozen=True)
class EchoModality(Modality):
    name: str = "echo"
    input_name: str = "clip"
    preprocessing_kind: str = "echo"
    layout: str = "(batch, channels, frames, height, width) float32, preprocessed as in $.preprocessing"
    default_calibration: int = 128
    default_golden: int = 4

    def preprocessing(self, d: Mapping[str, Any]) -> Any:
        from .data.echo import EchoPreprocessing

        return EchoPreprocessing.from_dict(dict(d))

    def input_shape(self, encoder: Mapping[str, Any]) -> tuple[int, ...]:
        size = int(encoder["image_size"])
        return int(encoder["channels"]), int(encoder["frames"]), size, size

    def token_grid(self, encoder: Mapping[str, Any]) -> tuple[int, ...]:
        side = int(encoder["image_size"]) // int(encoder["patch"])
        return int(encoder["frames"]) // int(encoder["tubelet"]), side, side

    def labelled_set(self, pre: Any, data: str | Path | None, output: TaskOutput, split: str = "train",
                     count: int | None = None, seed: int = 0, keep_sources: bool = False) -> CalibrationSet:
        """Clips from an EchoNet-Dynamic layout folder's split, with EF or view ground truth. No raw sources are
        kept (`keep_sources` is ignored): the firmware runner reproduces ECG preprocessing only."""
        from .data.echo_clips import build_echo_clip_set

        return build_echo_clip_set(pre, data, output, clips=count, seed=seed, split=split)

    def paired_inputs(self, teacher_meta: Mapping[str, Any], options: Mapping[str, Any], data: str | Path | None,
                      skip_bad: bool = False, max_records: int | None = None) -> Any:
        """Echo students may take fewer frames over the same span (`frames`), a coarser tubelet (`tubelet`) or a
        smaller image (`image_size`); videos from an EchoNet folder's TRAIN split (or synthetic clips)."""
        from .paired import echo_pairs

        return echo_pairs(teacher_meta, options, data, skip_bad, max_records)


@dataclass(frozen=True)
class BeatModality(Modality):
    """ECG beats: one window of the model's leads around each detected beat (`jepa_edge.tasks.beats`), labelled
    N / SVEB / VEB from MIT-BIH reference annotations; same encoder and preprocessing kind as ECG windows."""

    name: str = "ecg-beat"
    layout: str = ("(batch, leads, samples) float32 around one beat (at $.model.beat.beat_at_s into the window), "
                   "preprocessed as in $.preprocessing")
    default_calibration: int = 600
    carried_meta: tuple[str, ...] = ("beat",)  # where the beat sits in the window
    bundle_meta: tuple[str, ...] = ("beat", "rr_fusion")  # the stream cuts the window and fuses RR as trained

    def labelled_set(self, pre: Any, data: str | Path | None, output: TaskOutput, split: str = "train",
                     count: int | None = None, seed: int = 0, keep_sources: bool = False) -> CalibrationSet:
        """Beats of the split's MIT-BIH records (inter-patient, `tasks.beats.BEAT_SPLIT`), class-balanced when
        `count` is given. No raw sources are kept: a window is cut around a beat of a whole filtered record."""
        from .tasks.beats import labelled_beats

        return labelled_beats(pre, data, split, count, seed, classes=tuple(output.names))

    def paired_inputs(self, teacher_meta: Mapping[str, Any], options: Mapping[str, Any], data: str | Path | None,
                      skip_bad: bool = False, max_records: int | None = None) -> Any:
        """Every training-record beat (all AAMI classes; `max_records`: a stratified sample of that many beats),
        teacher and student on the same window."""
        from .paired import beat_pairs

        return beat_pairs(teacher_meta, options, data, max_records)


MODALITIES: dict[str, Modality] = {m.name: m for m in (Modality(), EchoModality(), BeatModality())}


def get_modality(name: str) -> Modality:
    try:
        return MODALITIES[name]
    except KeyError:
        raise ModalityError(f"unknown modality {name!r}; this toolkit knows {sorted(MODALITIES)}") from None


def modality_of(meta: Mapping[str, Any]) -> Modality:
    """The modality of a model folder's meta.json, a manifest's `model`, or an encoder spec dict. A model's own
    `modality` (what its input means, e.g. ecg-beat) comes before its encoder's (the architecture)."""
    encoder = meta.get("encoder", meta)
    name = meta.get("modality") or (encoder.get("modality") if isinstance(encoder, Mapping) else None) or "ecg"
    return get_modality(str(name))


__all__ = ["MODALITIES", "BeatModality", "EchoModality", "Modality", "ModalityError", "get_modality", "modality_of"]
