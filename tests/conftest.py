"""Shared fixtures: the real data in ../shared/data (via JEPA_EDGE_DATA) and small real models built from it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
BEAT_EXTRA = {"leads": ["II"], "fs": 250, "window_s": 3.0}  # the beat encoder's input: MLII, 3 s at 250 Hz


def _data_root() -> Path:
    """Absolute, so tests may symlink to it or pass it to a subprocess with another working directory (the
    README's test command sets the relative JEPA_EDGE_DATA=../shared/data)."""
    return Path(os.environ.get("JEPA_EDGE_DATA", REPO.parent / "shared" / "data")).resolve()


def on_ci() -> bool:
    """CI=true (as .ci/run and every CI service set it): missing data is a failure, never a quiet skip."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def data_missing(message: str) -> None:
    """Skip a test whose real data is absent on a developer's machine; FAIL it under CI, so a CI run without
    ../shared/data cannot pass green."""
    if on_ci():
        pytest.fail(f"CI=true but {message}: CI must run with the real data (../shared/data, or JEPA_EDGE_DATA)",
                    pytrace=False)
    pytest.skip(message)


FIRMWARE_SRC = REPO / "devices" / "firmware" / "src"
C_FLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-pedantic", "-Werror", "-ffp-contract=off"]


def compile_c(sources: list[Path], exe: Path, what: str) -> Path:
    """A test driver compiled with the system `cc` (the firmware's warnings as errors, no FMA contraction) against
    devices/firmware/src; skipped without a compiler, FAILED under CI, where `what` must be checked."""
    import shutil
    import subprocess

    cc = shutil.which("cc")
    if cc is None:
        if on_ci():
            pytest.fail(f"CI=true but no system C compiler (cc): {what} must be checked on CI", pytrace=False)
        pytest.skip("no system C compiler (cc) on this machine")
    cmd = [cc, *C_FLAGS, "-I", str(FIRMWARE_SRC), *map(str, sources), "-o", str(exe), "-lm"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stderr}"
    return exe


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = _data_root()
    if not root.is_dir():
        data_missing(f"real data folder {root} absent (set JEPA_EDGE_DATA to ../shared/data)")
    return root


@pytest.fixture(scope="session")
def ptbxl_dir(data_root: Path) -> Path:
    d = data_root / "ptbxl"
    if not (d / "ptbxl_database.csv").is_file():
        data_missing(f"PTB-XL subset not found at {d}")
    return d


@pytest.fixture(scope="session")
def mitdb_dir(data_root: Path) -> Path:
    d = data_root / "mitdb"
    if not (d / "100.hea").is_file():
        data_missing(f"MIT-BIH records not found at {d}")
    return d


@pytest.fixture(scope="session")
def tiny_teacher_dir(ptbxl_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A vit-tiny JEPA encoder pretrained for 60 steps on real PTB-XL training folds (about 20 s on 2 cores)."""
    from jepa_edge.jepa.trainer import PretrainConfig, pretrain

    out = tmp_path_factory.mktemp("teacher")
    cfg = PretrainConfig(data=str(ptbxl_dir), model="vit-tiny", steps=60, batch_size=16, warmup_steps=6,
                         checkpoint_every=60, log_every=10, out=str(out), lr=5e-4)
    return pretrain(cfg) / "encoder"


@pytest.fixture(scope="session")
def ptbxl_super(ptbxl_dir: Path):
    """Real PTB-XL superdiagnostic records: train (1-8), val (9), test (10) EcgSets, raw mV at 500 Hz."""
    from jepa_edge.data.ptbxl import PtbXl

    db = PtbXl(ptbxl_dir)
    return {split: db.load("superdiagnostic", split=split) for split in ("train", "val", "test")}


def fit_linear_head(encoder: torch.nn.Module, x: np.ndarray, labels: np.ndarray) -> torch.nn.Module:
    """Frozen `encoder` + a LinearHead fitted (200 seeded AdamW epochs, BCE) on preprocessed windows `x`."""
    from jepa_edge.models.heads import Classifier, LinearHead

    y = torch.from_numpy(labels)
    model = Classifier(encoder.eval(), LinearHead(encoder.dim, y.shape[1]))
    inputs = torch.from_numpy(x)
    with torch.no_grad():
        tokens = torch.cat([encoder(inputs[i : i + 64]) for i in range(0, len(inputs), 64)])
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.head.parameters(), lr=3e-3)
    for _ in range(200):
        logits, _ = model.head(tokens)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


@pytest.fixture(scope="session")
def ecg_classifier_dir(tiny_teacher_dir: Path, ptbxl_super, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Frozen tiny teacher + linear head fitted on real train folds: a real (if weak) superdiagnostic classifier."""
    from jepa_edge.data.datasets import preprocess_set
    from jepa_edge.data.preprocess import EcgPreprocessing
    from jepa_edge.models.checkpoint import encoder_spec, load_encoder, save_model

    encoder, meta = load_encoder(tiny_teacher_dir)
    pre = EcgPreprocessing.from_dict(meta["preprocessing"])
    train = ptbxl_super["train"]
    model = fit_linear_head(encoder, preprocess_set(train.signals, train.fs, pre), train.labels)
    out = tmp_path_factory.mktemp("classifier") / "classifier"
    save_model(out, model, {"kind": "classifier", "encoder": encoder_spec(encoder),
                            "head": {"kind": "linear", "dim": encoder.dim, "num_outputs": int(train.labels.shape[1])},
                            "labels": list(train.classes), "thresholds": [0.5] * len(train.classes),
                            "task": "ptbxl-super", "preprocessing": pre.to_dict()})
    return out


@pytest.fixture(scope="module")
def one_torch_thread():
    """Video models on two shared cores thrash with two torch threads (about 15x slower here): echo test modules
    run on one (`pytestmark = pytest.mark.usefixtures("one_torch_thread")`); the setting is restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def challenge_dir(ptbxl_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 24 labelled PTB-XL records of folds 9+10 re-exported in the PhysioNet Challenge layout (.hea +
    MATLAB v4 .mat, SNOMED codes in '# Dx:' through the package's SCP -> SNOMED table), named HR<ecg_id>."""
    from jepa_edge.data.sources.challenge import export_ptbxl

    out = tmp_path_factory.mktemp("challenge") / "ptbxl-as-challenge"
    export_ptbxl(ptbxl_dir, out, folds=(9, 10), limit=24)
    return out


def int8_tolerance(bundle: Path, output: str = "logits") -> float:
    """The golden tolerance a bundle's manifest gives its OpenVINO INT8 IR for `output`."""
    import json

    tol = json.loads((bundle / "manifest.json").read_text())["golden"]["tolerances"]["openvino-int8"]
    return float(tol[output] if isinstance(tol, dict) else tol)


TWO_LEADS = ("II", "V1")  # the two leads a MIT-BIH record carries (MLII, V1)


def two_lead_classifier(teacher_dir: Path, train, out: Path) -> Path:
    """A real 2-lead (II, V1) classifier: the tiny PTB-XL teacher with its patch embedding cut to those leads, the
    12-lead normalisation constants of those leads, and a linear head fitted on real PTB-XL training folds."""
    from jepa_edge.data.datasets import preprocess_set
    from jepa_edge.data.preprocess import EcgPreprocessing
    from jepa_edge.models.checkpoint import load_encoder, save_model
    from jepa_edge.models.ecg import EcgEncoder, EcgEncoderSpec
    from jepa_edge.paired import student_preprocessing

    encoder, meta = load_encoder(teacher_dir)
    pre, cols = student_preprocessing(EcgPreprocessing.from_dict(meta["preprocessing"]), TWO_LEADS)
    spec = {k: v for k, v in meta["encoder"].items() if k != "modality"}
    enc = EcgEncoder(EcgEncoderSpec(**{**spec, "leads": len(TWO_LEADS)}))
    state = encoder.state_dict()
    state["patch_embed.weight"] = state["patch_embed.weight"][:, cols]
    enc.load_state_dict(state)
    model = fit_linear_head(enc, preprocess_set(train.signals[:, cols], train.fs, pre), train.labels)
    return save_model(out, model, {"kind": "classifier", "encoder": enc.spec.to_dict(),
                                   "head": {"kind": "linear", "dim": enc.dim, "num_outputs": len(train.classes)},
                                   "labels": list(train.classes), "thresholds": [0.5] * len(train.classes),
                                   "task": "ptbxl-super", "preprocessing": pre.to_dict()})


@pytest.fixture(scope="session")
def two_lead_bundle(tiny_teacher_dir: Path, ptbxl_super, data_root: Path, tmp_path_factory: pytest.TempPathFactory
                    ) -> Path:
    """A cart-cpu bundle (NNCF INT8 IR) of the 2-lead window classifier, calibrated and golden-tested on real PTB-XL:
    what the firmware runner streams MIT-BIH through, alone or beside the beat bundle."""
    from jepa_edge.devices.build import build_bundle

    out = tmp_path_factory.mktemp("firmware")
    clf = two_lead_classifier(tiny_teacher_dir, ptbxl_super["train"], out / "classifier")
    return build_bundle(clf, "cart-cpu", out / "bundle", data=data_root, calibration_windows=24)


@pytest.fixture(scope="session")
def beat_chain(ptbxl_dir: Path, data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The real chain at test budgets: a one-lead 3 s JEPA encoder (vit-tiny, 40 steps on PTB-XL lead II), the beat
    head on MIT-BIH training records, a vit-tiny student distilled on their beats, OpenVINO INT8."""
    from jepa_edge.distill.trainer import DistillConfig, distill
    from jepa_edge.jepa.trainer import PretrainConfig, pretrain
    from jepa_edge.quantize.pipeline import quantize_classifier
    from jepa_edge.tasks.beat_probe import BeatProbeConfig, fuse_classifier, probe_beats

    root = tmp_path_factory.mktemp("beats")
    encoder = pretrain(PretrainConfig(data=str(ptbxl_dir), model="vit-tiny", steps=40, batch_size=32, warmup_steps=4,
                                      checkpoint_every=40, out=str(root / "pretrain"), extra=dict(BEAT_EXTRA)))
    teacher, metrics = probe_beats(encoder / "encoder", data_root, root / "teacher",
                                   BeatProbeConfig(epochs=8, max_train_beats=3000))
    student = distill(DistillConfig(teacher=str(teacher), student="vit-tiny", data=str(data_root), steps=40,
                                    warmup_steps=4, max_records=2000, evaluate=False, out=str(root / "distill")))
    fuse_classifier(student, data_root)
    quantize_classifier(student, root / "int8", data=data_root, windows=200)
    return {"teacher": teacher, "student": student, "int8": root / "int8" / "model_int8.xml",
            "probe_metrics": metrics}


@pytest.fixture(scope="session")
def beat_bundle(beat_chain: dict, data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The distilled beat student built into a signed cart-cpu bundle (OpenVINO INT8), as `jepa-edge build` does."""
    from jepa_edge.bundle.signing import new_keypair
    from jepa_edge.devices.build import build_bundle

    root = tmp_path_factory.mktemp("beat-bundle")
    private, public = new_keypair(root / "release")
    bundle = build_bundle(beat_chain["student"], "cart-cpu", root / "bundle", data=data_root, sign_key=private)
    return {"bundle": bundle, "public": public, "private": private}
