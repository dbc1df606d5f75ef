"""`run_parity`: every stage from the teacher to the INT8 student, on held-out labelled records, gated.

Stages, in order: teacher FP32 (torch) -> student FP32 (torch, or the bundle's FP32 ONNX when no student
folder is given) -> the bundle's executable artefacts (INT8 ONNX Q/DQ on onnxruntime, OpenVINO INT8 IR,
TensorRT engine where `tensorrt` imports; FP32 artefacts are reported, not gated). Every INT8 stage is
compared with the teacher and with the student FP32 and gated; the bundle's golden vectors are re-run in
the same call, and the report (JSON + HTML) is written into the bundle.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.preprocess import EcgPreprocessing
from ..data.sources import LabelledRecords, open_source
from .evaluate import (
    OutputsModel,
    ParityError,
    StageOutputs,
    compare_stages,
    compare_unlabelled,
    run_stage,
    stage_metrics,
)
from .gates import GateFailure, GateResult, check_gates, gates_for_kind, resolve_gates
from .strata import stratify, stratum_values
from .sweep import DEFAULT_SWEEP, SweepAxis, SweepStage, run_sweep, sweep_conditions

TEACHER = "teacher-fp32"
STUDENT = "student-fp32"
# bundle artefact role -> stage name, and whether the stage is INT8 (gated) or an FP32 export (reported)
ROLE_STAGES: dict[str, tuple[str, bool]] = {
    "onnx-qdq": ("student-int8-onnxruntime", True),
    "openvino-int8-xml": ("student-int8-openvino", True),
    "tensorrt-engine": ("student-int8-tensorrt", True),
    "onnx-fp32": ("student-fp32-onnxruntime", False),
    "openvino-fp32-xml": ("student-fp32-openvino", False),
}
PTBXL_PARITY_FOLDS = (9, 10)
AUC_GATES = ("auc_drop_teacher", "auc_drop_fp32_int8")
# echo perturbation sweep: (kind, EchoJEPA preset level) of `data.echo_perturb.EchoPerturbation`
ECHO_SWEEP: tuple[tuple[str, int], ...] = (("depth", 1), ("depth", 2), ("depth", 3),
                                           ("shadow", 1), ("shadow", 2), ("shadow", 3))
REPORT_JSON = "reports/parity.json"
REPORT_HTML = "reports/parity.html"


@dataclass
class ParityConfig:
    """What to evaluate and how strictly. Defaults: PTB-XL folds 9+10 pooled (every record of any other folder),
    1000 bootstrap rounds."""

    folds: tuple[int, ...] | None = None  # None: PTB-XL 9+10; other folders: every record
    format: str | None = None  # data source: ptbxl, challenge, labels-csv, wfdb (None: by what the folder holds)
    strata: tuple[str, ...] = ()  # per-stratum parity for these columns (site, sex, age_band, fold, labels.csv ...)
    unlabelled: bool = False  # agreement, cosine and logit differences only (no labels needed)
    skip_bad: bool = True  # unusable records are skipped and counted with their reason (False: the first one raises)
    limit: int | None = None  # at most this many records (None: all of the folds)
    batch_size: int = 32
    n_boot: int = 1000
    seed: int = 0
    specificity: float = 0.9
    latency_runs: int = 10
    gates: dict[str, float] = field(default_factory=dict)  # overrides of profile/default gates
    profile: str | None = None  # device profile for gates; default: the one the bundle was built for
    include_fp32_artefacts: bool = True
    sweep: bool = True
    sweep_axes: tuple[SweepAxis, ...] = DEFAULT_SWEEP
    run_golden: bool = True
    write_to_bundle: bool = True
    out: str | None = None  # also write parity.json / parity.html here
    sign_key: str | None = None  # re-sign the bundle after adding the report (else its signature is dropped);
    # refused unless the bundle's signature first verifies (with public_key, else sign_key's own public half)
    public_key: str | None = None  # PEM public key the bundle's signature must match
    require_signature: bool = False  # refuse a bundle whose signature is not checked with public_key
    # echo models (EchoNet-layout folder): which split is held out, how many clips per video (spread from the
    # first to the last possible start, outputs averaged per video), which perturbations the sweep applies
    split: str = "test"
    clips_per_video: int = 3
    echo_sweep: tuple[tuple[str, int], ...] = ECHO_SWEEP
    threads: int | None = None  # engine threads for every stage (None: each back end's default)
    # beat models (MIT-BIH test records, `limit` of them): replay only the first SECONDS of each (None: all)
    beat_seconds: float | None = None


@dataclass
class ParityResult:
    """Everything measured in one parity run; `passed` is True only when every gate held."""

    classes: list[str]
    labels: np.ndarray
    thresholds: np.ndarray
    data: dict[str, Any]
    stages: dict[str, StageOutputs]
    gated_stages: list[str]
    skipped: dict[str, str]
    metrics: dict[str, dict[str, Any]]
    comparisons: dict[str, dict[str, dict[str, Any]]]
    gates: dict[str, float]
    gate_source: str
    gate_results: list[GateResult]
    golden: dict[str, Any] | None = None
    sweep: list[dict[str, Any]] = field(default_factory=list)
    regression: dict[str, dict[str, Any]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    bundle: str | None = None
    report_paths: dict[str, str] = field(default_factory=dict)
    output: dict[str, Any] | None = None  # the teacher's TaskOutput.to_dict(); None: multi-label (ECG)
    strata: list[dict[str, Any]] = field(default_factory=list)  # `strata.stratify` per requested column
    labelled: bool = True  # False: unlabelled parity (agreement, cosine, logit differences; no accuracy metrics)
    gates_not_applied: dict[str, str] = field(default_factory=dict)  # gate -> why it was not checked

    @property
    def kind(self) -> str:
        """The output kind the gates and the report follow: multilabel, multiclass or regression."""
        return str((self.output or {}).get("kind", "multilabel"))

    @property
    def failures(self) -> list[GateResult]:
        return [g for g in self.gate_results if not g.passed]

    @property
    def passed(self) -> bool:
        return bool(self.gate_results) and not self.failures

    def raise_for_gates(self) -> None:
        """Raise `GateFailure` naming stage, metric, value and limit of every failed gate."""
        if self.failures:
            raise GateFailure(self.failures)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "parity-report",
            "passed": self.passed,
            "bundle": self.bundle,
            "data": self.data,
            "classes": self.classes,
            "thresholds": [float(t) for t in self.thresholds],
            "stages": {name: {"info": s.info, "latency": s.latency, "metrics": self.metrics.get(name),
                              "gated": name in self.gated_stages}
                       for name, s in self.stages.items()},
            "skipped_stages": self.skipped,
            "comparisons": self.comparisons,
            "gates": {"limits": self.gates, "source": self.gate_source,
                      "results": [g.to_dict() for g in self.gate_results]},
            "golden": self.golden,
            "perturbation": self.sweep,
            "regression": self.regression,
            "config": self.config,
            "labelled": self.labelled,
            "strata": self.strata,
        } | ({"output": self.output} if self.output is not None else {}) | (
            {"gates_not_applied": self.gates_not_applied} if self.gates_not_applied else {})


def evaluate_stages(labels: np.ndarray, classes: list[str], thresholds: np.ndarray,
                    stages: Mapping[str, StageOutputs], gated_stages: list[str],
                    gates: Mapping[str, float], n_boot: int = 1000, seed: int = 0,
                    specificity: float = 0.9, gate_source: str = "profile") -> ParityResult:
    """Metrics of every stage, comparisons of every later stage with the teacher and the student FP32, and the
    `gates` (a device profile's table, `resolved_gates`) that fit multi-label heads."""
    for required in (TEACHER, STUDENT):
        if required not in stages:
            raise ParityError(f"parity needs a {required!r} stage (got {sorted(stages)})")
    gates = gates_for_kind(gates, "multilabel")
    per_stage = {name: stage_metrics(labels, s, classes, specificity, n_boot, seed) for name, s in stages.items()}
    comparisons: dict[str, dict[str, dict[str, Any]]] = {}
    for name, s in stages.items():
        if name == TEACHER:
            continue
        comparisons[name] = {"teacher": compare_stages(labels, stages[TEACHER], s, classes, thresholds, n_boot, seed,
                                                       same_embedding_space=False)}
        if name != STUDENT:
            comparisons[name]["student-fp32"] = compare_stages(labels, stages[STUDENT], s, classes, thresholds,
                                                               n_boot, seed, same_embedding_space=True)
    results = check_gates(comparisons, gates, gated_stages)
    return ParityResult(classes=list(classes), labels=labels, thresholds=np.asarray(thresholds, dtype=np.float64),
                        data={}, stages=dict(stages), gated_stages=list(gated_stages), skipped={},
                        metrics=per_stage, comparisons=comparisons, gates=gates, gate_source=gate_source,
                        gate_results=results)


def evaluate_unlabelled(records: int, classes: list[str], thresholds: np.ndarray,
                        stages: Mapping[str, StageOutputs], gated_stages: list[str],
                        gates: Mapping[str, float], gate_source: str = "profile") -> ParityResult:
    """Parity without ground truth: agreement, logit differences and cosine of every stage against the teacher
    and the student FP32; the AUC gates are recorded as not applied."""
    for required in (TEACHER, STUDENT):
        if required not in stages:
            raise ParityError(f"parity needs a {required!r} stage (got {sorted(stages)})")
    all_gates = gates_for_kind(gates, "multilabel")
    applied = {k: v for k, v in all_gates.items() if k not in AUC_GATES}
    comparisons: dict[str, dict[str, dict[str, Any]]] = {}
    for name, s in stages.items():
        if name == TEACHER:
            continue
        comparisons[name] = {"teacher": compare_unlabelled(stages[TEACHER], s, thresholds, same_embedding_space=False)}
        if name != STUDENT:
            comparisons[name]["student-fp32"] = compare_unlabelled(stages[STUDENT], s, thresholds)
    result = ParityResult(classes=list(classes), labels=np.zeros((records, 0)),
                          thresholds=np.asarray(thresholds, dtype=np.float64), data={}, stages=dict(stages),
                          gated_stages=list(gated_stages), skipped={}, metrics={}, comparisons=comparisons,
                          gates=applied, gate_source=gate_source,
                          gate_results=check_gates(comparisons, applied, gated_stages), labelled=False)
    result.gates_not_applied = {g: "unlabelled data: no AUC without diagnoses" for g in AUC_GATES if g in all_gates}
    return result


def load_held_out(data: str | Path | None, cfg: ParityConfig, classes: list[str], teacher_pre: EcgPreprocessing,
                  student_pre: Any, say: Callable[[str], None]) -> tuple[LabelledRecords, tuple[int, ...] | None]:
    """The evaluation records from the data source (`cfg.format`, else by what the folder holds): PTB-XL folds
    9+10 by default, every record of any other folder unless `cfg.folds` picks folds of its split column.
    Records come at the teacher's rate and lead order; shorter than a model window -> skipped (counted)."""
    source = open_source(data, cfg.format)
    folds = cfg.folds if cfg.folds is not None else (PTBXL_PARITY_FOLDS if source.format == "ptbxl" else None)
    where = f"folds {list(folds)}" if folds is not None else "every record"
    say(f"loading {source.format} records from {source.root} ({where})")
    held = source.records(folds, classes=None if cfg.unlabelled else classes, leads=teacher_pre.leads,
                          fs=teacher_pre.fs, min_seconds=max(teacher_pre.window_s, student_pre.window_s),
                          limit=cfg.limit, skip_bad=cfg.skip_bad, labelled=not cfg.unlabelled)
    if not cfg.unlabelled and list(held.classes) != classes:
        raise ParityError(f"{source.root}: the data give classes {list(held.classes)}, the teacher predicts {classes}")
    return held, folds


def _profile_gates(cfg: ParityConfig, manifest: Mapping[str, Any] | None) -> tuple[dict[str, Any], str]:
    """The `[gates]` table of the device profile that applies, and where it came from: the profile named by
    `cfg.profile`, else the one the bundle was built for (its installed TOML; the copy stored in the bundle only
    when no installed profile has that name, e.g. one built from a custom .toml), else DEFAULT_PROFILE."""
    from jepa_edge.devices.profiles import DEFAULT_PROFILE, ProfileError, load_profile

    if cfg.profile:
        return dict(load_profile(cfg.profile).gates), f"device profile {cfg.profile!r}"
    target = (manifest or {}).get("target") or {}
    name = target.get("profile")
    if name:
        try:
            return dict(load_profile(str(name)).gates), f"device profile {name!r} (the bundle's target)"
        except ProfileError:
            data = target.get("profile_data") or {}
            if data.get("gates"):
                return dict(data["gates"]), f"device profile {name!r} as stored in the bundle"
    return dict(load_profile(DEFAULT_PROFILE).gates), f"device profile {DEFAULT_PROFILE!r} (default)"


def trust_policy(cfg: ParityConfig) -> Any:
    """The `TrustPolicy` parity opens, verifies and updates the bundle under (key, flag, `cfg.profile`)."""
    from jepa_edge.bundle.trust import TrustPolicy

    return TrustPolicy(public_key=cfg.public_key, require_signature=cfg.require_signature, profile=cfg.profile)


def run_golden(opened: Any, cfg: ParityConfig, say: Callable[[str], None]) -> dict[str, Any] | None:
    """Re-run the bundle's golden vectors (every check collected, nothing raised) when `cfg.run_golden`."""
    if opened is None or not cfg.run_golden:
        return None
    from jepa_edge.bundle import verify_bundle

    say("golden vectors")
    golden = verify_bundle(opened.path, run_golden=True, policy=trust_policy(cfg)).to_dict()
    golden["path"] = str(golden["path"])
    return golden


def engine_options(cfg: ParityConfig) -> dict[str, Any]:
    """Options every stage's engine is opened with (none unless `cfg.threads` pins the thread count)."""
    return {"threads": int(cfg.threads)} if cfg.threads else {}


def check_modalities(teacher_meta: Mapping[str, Any], student_meta: Mapping[str, Any] | None,
                     opened: Any, teacher_dir: Path) -> str:
    """The modality teacher and student share ("ecg", "echo"); ParityError naming both when they differ."""
    from jepa_edge.modality import modality_of

    teacher_mod = modality_of(teacher_meta).name
    if opened is not None and opened.modality != teacher_mod:
        raise ParityError(f"{opened.path}: an {opened.modality} bundle, but the teacher {teacher_dir} is an "
                          f"{teacher_mod} model: parity compares teacher and student of the same modality and task")
    if student_meta is not None and modality_of(student_meta).name != teacher_mod:
        raise ParityError(f"the student is an {modality_of(student_meta).name} model, the teacher {teacher_dir} an "
                          f"{teacher_mod} model: parity compares teacher and student of the same modality and task")
    return teacher_mod


def collect_engines(teacher_dir: Path, teacher_pre: Any, student_dir: Path | None, student_pre: Any, opened: Any,
                    extra_stages: Mapping[str, str | Path] | None, cfg: ParityConfig,
                    **options: Any) -> tuple[dict[str, tuple[OutputsModel, Any]], list[str], dict[str, str]]:
    """Every stage's engine and preprocessing: teacher, student FP32 (folder, else the bundle's FP32 ONNX), the
    bundle's artefacts (ROLE_STAGES) and `extra_stages`; the gated (INT8) stage names; stages that cannot run
    here, with the reason. `options` go to every engine (e.g. threads)."""
    from jepa_edge.runtimes import BackendUnavailable, open_engine

    engines: dict[str, tuple[OutputsModel, Any]] = {TEACHER: (open_engine(teacher_dir, "torch", **options),
                                                             teacher_pre)}
    gated: list[str] = []
    skipped: dict[str, str] = {}
    if student_dir is not None:
        engines[STUDENT] = (open_engine(student_dir, "torch", **options), student_pre)
    if opened is not None:
        roles = set(opened.roles)
        if student_dir is None:
            if "onnx-fp32" not in roles:
                raise ParityError(f"{opened.path}: no student folder given and the bundle has no FP32 ONNX "
                                  "(onnx-fp32) to stand for the student FP32")
            engines[STUDENT] = (opened.engine(role="onnx-fp32", **options), student_pre)
        for role, (stage, is_int8) in ROLE_STAGES.items():
            if role not in roles or (not is_int8 and not cfg.include_fp32_artefacts):
                continue
            if student_dir is None and role == "onnx-fp32":
                continue  # already the student FP32 reference
            try:
                engines[stage] = (opened.engine(role=role, **options), student_pre)
            except BackendUnavailable as exc:
                skipped[stage] = str(exc)
                continue
            if is_int8:
                gated.append(stage)
    for stage, path in (extra_stages or {}).items():
        try:
            engines[stage] = (open_engine(path, **options), student_pre)
        except BackendUnavailable as exc:
            skipped[stage] = str(exc)
            continue
        gated.append(stage)
    if not gated:
        raise ParityError("no INT8 stage can run here: " + ("; ".join(f"{k}: {v}" for k, v in skipped.items())
                                                           or "the bundle has no INT8 artefact"))
    return engines, gated, skipped


def golden_gate(golden: Mapping[str, Any]) -> GateResult:
    """The bundle's golden vectors, re-run in the parity call, as one more gate."""
    return GateResult(stage="bundle golden vectors", gate="golden", metric="failed checks",
                      reference="manifest tolerances", value=float(len(golden["problems"])), limit=0.0,
                      direction="max", passed=bool(golden["ok"]), detail="; ".join(golden["problems"][:3]))


def finish_result(result: ParityResult, opened: Any, golden: dict[str, Any] | None, skipped: dict[str, str],
                  cfg: ParityConfig) -> ParityResult:
    """What every parity runner adds last: stages not run, the golden-vector gate, the config, the reports."""
    result.skipped = skipped
    result.golden = golden
    result.bundle = str(opened.path) if opened is not None else None
    result.config = _config_dict(cfg)
    if golden is not None:
        result.gate_results.append(golden_gate(golden))
    write_reports(result, cfg, opened.path if opened is not None else None)
    return result


def resolved_gates(cfg: ParityConfig, manifest: Mapping[str, Any] | None) -> tuple[dict[str, float], str]:
    """The profile's gates (named, else the bundle's target, else the default) <- `cfg.gates`, and their source."""
    profile_gates, source = _profile_gates(cfg, manifest)
    gates = resolve_gates(profile_gates, cfg.gates, profile_name=source)
    if cfg.gates:
        source += " + flags"
    return gates, source


def run_parity(teacher: str | Path, bundle: str | Path | None = None, data: str | Path | None = None,
               student: str | Path | None = None, cfg: ParityConfig | None = None,
               extra_stages: Mapping[str, str | Path] | None = None,
               progress: Callable[[str], None] | None = None) -> ParityResult:
    """Evaluate teacher -> student FP32 -> student INT8 stages on held-out labelled data and gate them.

    `teacher` and `student` are classifier model folders; `bundle` a built bundle (its INT8 artefacts become
    gated stages, its golden vectors are re-run and the report is written into it). `extra_stages` maps a
    stage name to any model file `open_engine` accepts, gated like a bundle INT8 artefact (e.g. a quantized
    model that is not bundled yet). ECG models are evaluated on the records of any labelled source
    (`data.sources`: PTB-XL folds 9+10, a Challenge folder, a labels.csv folder; `cfg.unlabelled` for any WFDB
    folder without labels, `cfg.strata` for per-site / per-column parity); echo models on
    an EchoNet-layout folder's `cfg.split` videos (`parity.echo`). Returns the result; call
    `raise_for_gates()` to fail on a gate.
    """
    from jepa_edge.models.checkpoint import read_meta, resolve_model_dir

    cfg = cfg or ParityConfig()
    say = progress or (lambda _msg: None)
    if bundle is None and student is None:
        raise ParityError("parity needs a student: pass a bundle, a student model folder, or both")
    teacher_dir = resolve_model_dir(teacher)
    teacher_meta = read_meta(teacher_dir)
    student_dir = resolve_model_dir(student) if student is not None else None
    student_meta = read_meta(student_dir) if student_dir is not None else None
    opened = None
    if bundle is not None:
        from jepa_edge.bundle import open_bundle

        policy = trust_policy(cfg)
        if cfg.sign_key and cfg.write_to_bundle:  # refuse before the work, not after it
            policy = policy.for_resigning(Path(bundle), cfg.sign_key)
        opened = open_bundle(bundle, policy)
    modality = check_modalities(teacher_meta, student_meta, opened, teacher_dir)
    if modality != "ecg":  # the one place parity tells the modalities apart
        from .beats import run_beat_parity
        from .echo import run_echo_parity

        runner = run_beat_parity if modality == "ecg-beat" else run_echo_parity
        return runner(teacher_dir, teacher_meta, student_dir, student_meta, opened, data, cfg, extra_stages, say)

    classes = list(teacher_meta.get("labels") or [])
    manifest: dict[str, Any] | None = None
    golden = run_golden(opened, cfg, say)
    if opened is not None:
        manifest = opened.manifest
        student_pre = opened.preprocessing
        student_labels = list(manifest["labels"])
        thresholds = np.asarray(manifest["thresholds"], dtype=np.float64)
    if student_meta is not None and opened is None:
        student_pre = EcgPreprocessing.from_dict(student_meta["preprocessing"])
        student_labels = list(student_meta.get("labels") or [])
        thresholds = np.asarray(student_meta.get("thresholds") or [0.5] * len(student_labels), dtype=np.float64)
    if student_labels != classes:
        raise ParityError(f"student labels {student_labels} differ from the teacher's {classes}: not the same task")

    teacher_pre = EcgPreprocessing.from_dict(teacher_meta["preprocessing"])
    held_out, folds = load_held_out(data, cfg, classes, teacher_pre, student_pre, say)
    y = held_out.labels
    signals, fs = held_out.signals, held_out.fs
    engines, gated, skipped = collect_engines(teacher_dir, teacher_pre, student_dir, student_pre, opened,
                                              extra_stages, cfg, **engine_options(cfg))

    outputs: dict[str, StageOutputs] = {}
    for name, (engine, pre) in engines.items():
        say(f"stage {name}")
        outputs[name] = run_stage(name, engine, signals, fs, pre, batch_size=cfg.batch_size,
                                  latency_runs=cfg.latency_runs)

    gates, source = resolved_gates(cfg, manifest)
    say("metrics and bootstrap")
    if y is None:
        result = evaluate_unlabelled(len(held_out), classes, thresholds, outputs, gated, gates, gate_source=source)
    else:
        result = evaluate_stages(y, classes, thresholds, outputs, gated, gates, cfg.n_boot, cfg.seed,
                                 cfg.specificity, gate_source=source)
    result.data = held_out.to_dict() | {"folds": None if folds is None else list(folds),
                                        "leads": list(held_out.leads)}
    for column in cfg.strata:
        say(f"strata: {column}")
        values = stratum_values(held_out.strata, column, str(held_out.info.get("root")))
        result.strata.append(stratify(column, values, y, outputs, gated, classes, thresholds, cfg.n_boot, cfg.seed))

    if cfg.sweep and y is not None:  # the sweep reports macro AUC: labelled data only
        sweep_names = [TEACHER, STUDENT, *gated]
        stages = {n: SweepStage(engines[n][0], engines[n][1]) for n in sweep_names}
        total = sweep_conditions(cfg.sweep_axes)
        done = [0]

        def tick(label: str) -> None:
            done[0] += 1
            say(f"perturbation {done[0]}/{total}: {label}")

        result.sweep = run_sweep(signals, fs, y, stages, cfg.sweep_axes, seed=cfg.seed, batch_size=cfg.batch_size,
                                 leads=teacher_pre.leads, progress=tick)
    return finish_result(result, opened, golden, skipped, cfg)  # the sweep adds no gate: the order is unchanged


def _config_dict(cfg: ParityConfig) -> dict[str, Any]:
    d = asdict(cfg)
    d["sweep_axes"] = [{"kind": a.kind, "severities": list(a.severities), "unit": a.unit} for a in cfg.sweep_axes]
    return d


def write_reports(result: ParityResult, cfg: ParityConfig, bundle_path: Path | None) -> dict[str, str]:
    """parity.json + parity.html into `cfg.out` (if set) and into the bundle (if set and allowed)."""
    from jepa_edge.io import atomic_write_bytes

    from .report import render_html

    if cfg.out:
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        result.report_paths["json"] = str(out / "parity.json")
        result.report_paths["html"] = str(out / "parity.html")
    if bundle_path is not None and cfg.write_to_bundle:
        result.report_paths["bundle_json"] = str(bundle_path / REPORT_JSON)
        result.report_paths["bundle_html"] = str(bundle_path / REPORT_HTML)
    doc = result.to_dict()
    doc["report_paths"] = dict(result.report_paths)
    json_bytes = (json.dumps(plain_json(doc), indent=2, sort_keys=True, allow_nan=False) + "\n").encode()
    html = render_html(result).encode("utf-8")
    if cfg.out:
        atomic_write_bytes(result.report_paths["json"], json_bytes)
        atomic_write_bytes(result.report_paths["html"], html)
    if bundle_path is not None and cfg.write_to_bundle:
        from jepa_edge.bundle import update_bundle

        update_bundle(bundle_path, add_files={REPORT_JSON: (json_bytes, "report-json"),
                                              REPORT_HTML: (html, "report-html")},
                      set_fields={"parity": {"report": REPORT_JSON, "passed": result.passed}},
                      sign_key=cfg.sign_key, policy=trust_policy(cfg))
    return result.report_paths


def plain_json(obj: Any) -> Any:
    """Numpy scalars/arrays and paths to plain JSON values; NaN/Inf to null (strict JSON has no NaN)."""
    if isinstance(obj, Mapping):
        return {str(k): plain_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return plain_json(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj
