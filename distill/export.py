"""The distilled student as ONE classifier folder: head, how its output is read, and held-out evaluation.

A distilled head keeps the teacher's labels and `TaskOutput`; a multi-label (ECG) head re-tunes its
thresholds on PTB-XL fold 9 and reports fold 10, as `jepa-edge probe` does. Other outputs (echo LVEF, views)
are evaluated on the held-out split the modality describes (an EchoNet folder's TEST videos), teacher and
student side by side. A teacher without a head gets a probe fitted on the student's tokens instead.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jepa_edge.data.errors import DataError
from jepa_edge.data.sources import find_labelled
from jepa_edge.io import atomic_write_json
from jepa_edge.models.checkpoint import encoder_spec, save_model
from jepa_edge.models.heads import Classifier
from jepa_edge.models.vit import count_parameters
from jepa_edge.tasks.outputs import TaskOutput

from .trainer import DistillConfig, DistillError, DistillSetup

ECHO_TASKS = {"ef": "ef", "lvef-regression": "ef", "view": "view", "view-classification": "view"}


@torch.no_grad()
def _logits(model: torch.nn.Module, x: np.ndarray, batch: int = 16) -> np.ndarray:
    model.eval()
    return np.concatenate([model(torch.from_numpy(x[i : i + batch]))[0].numpy() for i in range(0, len(x), batch)])


def held_out_comparison(setup: DistillSetup, student: Classifier, output: TaskOutput, data: str | Path | None,
                        seed: int = 0) -> dict[str, Any] | None:
    """Teacher and student on the modality's TEST split, each with its own preprocessing (None if no such data)."""
    teacher = Classifier(setup.teacher.encoder, setup.teacher.head)
    try:
        t_set = setup.modality.labelled_set(setup.pairs.teacher_pre, data, output, "test", None, seed)
        s_set = setup.modality.labelled_set(setup.student_pre, data, output, "test", None, seed)
    except DataError:
        return None
    t_logits, s_logits = _logits(teacher, t_set.windows), _logits(student, s_set.windows)
    result = {"split": "test", "records": len(s_set), "metric": output.metric_name,
              "teacher": output.metric(t_set.labels, t_logits), "student": output.metric(s_set.labels, s_logits)}
    if output.kind == "regression":
        result["student_vs_teacher_mae"] = float(np.abs(output.values(s_logits) - output.values(t_logits)).mean())
    else:
        result["agreement_with_teacher"] = float(np.mean(output.decisions(s_logits) == output.decisions(t_logits)))
    return result


def _echo_probe(setup: DistillSetup, cfg: DistillConfig) -> tuple[Classifier, dict[str, Any], TaskOutput, dict]:
    """Fit a head on the frozen student's tokens from the labelled TRAIN videos (a teacher without a head)."""
    from jepa_edge.tasks.echo import TASK_NAMES, EchoProbeConfig, extract_tokens, fit_probe

    task = ECHO_TASKS.get(cfg.task)
    if task is None:
        raise DistillError(f"the teacher has no head: an echo student needs task ef or view to fit one (got "
                           f"{cfg.task!r})")
    data = cfg.labels_data or cfg.data
    probe_output = TaskOutput("regression", ("LVEF",)) if task == "ef" else None
    if task == "view":
        from jepa_edge.data.echo_clips import echo_split_items

        views = sorted({str(it.view) for it in echo_split_items(data, "train") if it.view})
        if not views:
            raise DistillError(f"{data}/FileList.csv: no View column; view classification needs one")
        probe_output = TaskOutput("multiclass", tuple(views))
    train = setup.modality.labelled_set(setup.student_pre, data, probe_output, "train", None, cfg.seed)
    encoder = setup.student.encoder.eval()
    probe = fit_probe(extract_tokens(encoder, torch.from_numpy(train.windows)), train.labels,
                      EchoProbeConfig(task=task, head="linear" if cfg.head == "auto" else cfg.head,
                                      epochs=cfg.probe_epochs, seed=cfg.seed),
                      labels=list(probe_output.names) if task == "view" else None)
    model = Classifier(encoder, probe.head).eval()
    return model, probe.head_spec, probe.output(), {"task": TASK_NAMES[task], "probe": probe.metrics}


def export_student(setup: DistillSetup, cfg: DistillConfig, out: Path, feature_start: float | None,
                   feature_end: float) -> Path:
    """Give the student its head, labels and output description, and write ONE classifier folder."""
    from jepa_edge.tasks.probe import ProbeConfig, evaluate_scores, load_task_data, probe_encoder, record_scores

    student = setup.student.cpu().eval()
    tmeta = setup.teacher_meta
    labelled_data = cfg.labels_data or cfg.data
    metrics: dict[str, Any] | None = None
    comparison: dict[str, Any] | None = None
    output = setup.output
    # ECG labels from any labelled source: PTB-XL folds, a Challenge folder, a labels.csv folder
    labelled = find_labelled(labelled_data) if setup.modality.name == "ecg" else None
    if student.head is not None:  # distilled head: the teacher's labels and output
        model = Classifier(student.encoder, student.head).eval()
        head_spec, task = dict(tmeta["head"], dim=student.encoder.dim), tmeta.get("task", cfg.task)
        if output.kind == "multilabel" and labelled is not None and cfg.evaluate:  # thresholds re-tuned on val
            data = load_task_data(labelled, task, setup.student_pre)
            if list(data.classes) == list(output.names):
                val = record_scores(model, torch.from_numpy(data.val.x), data.val.record_of_window, 32)
                test = record_scores(model, torch.from_numpy(data.test.x), data.test.record_of_window, 32)
                metrics = evaluate_scores(data.val.labels, val, data.test.labels, test, data.classes, cfg.n_boot,
                                          cfg.seed)
                output = TaskOutput("multilabel", output.names, tuple(float(t) for t in metrics["thresholds"]))
        elif output.kind != "multilabel" and cfg.evaluate:
            comparison = held_out_comparison(setup, model, output, labelled_data, cfg.seed)
    elif setup.modality.name == "echo":
        model, head_spec, output, probe_info = _echo_probe(setup, cfg)
        task, metrics = probe_info["task"], probe_info["probe"]
    else:  # ECG without a teacher head (or a probe was asked for): fit one on the labelled training folds
        if labelled is None:
            raise DistillError(f"the teacher has no head and {labelled_data} holds no labelled data (PTB-XL, "
                               "Challenge folder or labels.csv): "
                               "give a classifier teacher or labels_data so the student gets labels and thresholds")
        data = load_task_data(labelled, cfg.task, setup.student_pre)
        pcfg = ProbeConfig(head="linear" if cfg.head == "auto" else cfg.head, epochs=cfg.probe_epochs,
                           n_boot=cfg.n_boot, seed=cfg.seed)
        model, pmeta, metrics = probe_encoder(student.encoder.requires_grad_(False), setup.student_pre, data, pcfg)
        head_spec, task = pmeta["head"], pmeta["task"]
        output = TaskOutput("multilabel", tuple(pmeta["labels"]), tuple(float(t) for t in pmeta["thresholds"]))
    spec = student.encoder.spec
    summary = {
        "teacher": str(cfg.teacher), "teacher_encoder": tmeta["encoder"], "student": cfg.student,
        "modality": setup.modality.name, "steps": cfg.steps, "seed": cfg.seed,
        "student_input": {k: v for k, v in spec.to_dict().items() if k in ("leads", "patch", "samples", "frames",
                                                                           "image_size", "tubelet")},
        "intermediate": list(cfg.intermediate), "head": "distilled" if student.head is not None else "probe",
        "teacher_parameters": count_parameters(setup.teacher.encoder),
        "student_parameters": count_parameters(student.encoder),
        "feature_loss_start": feature_start, "feature_loss_end": feature_end, "data": setup.data_summary,
    }
    if hasattr(setup.student_pre, "leads"):
        summary["leads"] = list(setup.student_pre.leads)
    if metrics is not None and "test_macro_auc" in metrics:
        summary["test_macro_auc"] = metrics["test_macro_auc"]
        summary["test_macro_auc_ci95"] = metrics["test_macro_auc_ci95"]
    if comparison is not None:
        summary["held_out"] = comparison
    meta: dict[str, Any] = {"kind": "classifier", "encoder": encoder_spec(model.encoder), "head": head_spec,
                            "labels": list(output.names), "thresholds": list(output.thresholds), "task": task,
                            "output": output.to_dict(), "preprocessing": setup.student_pre.to_dict(),
                            "distill": summary}
    if setup.modality.name != "ecg":
        meta["modality"] = setup.modality.name
    meta.update({key: tmeta[key] for key in setup.modality.carried_meta if key in tmeta})
    if output.kind == "regression":  # the older field echo tools read
        meta["target"] = {"mean": output.mean, "std": output.std, "unit": output.unit,
                          "decode": "EF = logits[:, 0] * std + mean"}
    model_dir = save_model(out / "classifier", copy.deepcopy(model).eval(), meta)
    atomic_write_json(out / "distill_metrics.json",
                      json.loads(json.dumps({**summary, "evaluation": metrics}, default=float)))
    return model_dir


__all__ = ["export_student", "held_out_comparison"]
