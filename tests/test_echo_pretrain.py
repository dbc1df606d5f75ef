"""Echo JEPA end to end on synthetic clips: the shared trainer's loss falls, an EF probe on the pretrained
encoder beats predicting the mean EF on held-out videos, the view probe and the CLI verbs work on files.

Small on purpose (vit-tiny, 8 frames at 4 fps, 48 px: a 4x3x3 token grid) so the file runs in well under a
minute on 2 shared cores; the real sizes (16 frames at 8 fps, 112 / 224 px) are the defaults elsewhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from jepa_edge.data.echo import EchoPreprocessing, EchoVideo
from jepa_edge.data.synthetic_echo import SyntheticEchoConfig, synthetic_dataset, write_synthetic_echonet
from jepa_edge.jepa.trainer import PretrainConfig, pretrain
from jepa_edge.models.checkpoint import load_classifier, load_encoder
from jepa_edge.tasks.echo import EchoProbeConfig, extract_tokens, fit_probe, probe_echonet, robustness

EXTRA = {"videos": 16, "frames": 8, "fps": 4.0, "size": 48, "seconds": 2.25}
PRE = EchoPreprocessing(frames=8, fps=4.0, size=48)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def echo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("echo_pretrain")
    cfg = PretrainConfig(modality="echo", model="vit-tiny", steps=30, batch_size=8, warmup_steps=3, lr=5e-4,
                         checkpoint_every=30, log_every=3, out=str(out), extra=EXTRA)
    return pretrain(cfg)


def test_echo_pretraining_loss_falls(echo_run: Path) -> None:
    rows = [json.loads(line) for line in (echo_run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows]
    assert rows[-1]["step"] == 30 and all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:2])
    encoder, meta = load_encoder(echo_run / "encoder")
    assert meta["modality"] == "echo" and meta["encoder"]["modality"] == "echo"
    assert EchoPreprocessing.from_dict(meta["preprocessing"]) == PRE
    assert meta["data"]["source"].startswith("synthetic echo")


def test_ef_probe_beats_predicting_the_mean(echo_run: Path) -> None:
    encoder, _ = load_encoder(echo_run / "encoder")
    # held-out videos: other seeds than pretraining; apical 4-chamber only, as EchoNet-Dynamic's EF task
    videos = synthetic_dataset(120, seed=123, config=SyntheticEchoConfig(size=48, seconds=2.2, views=("A4C",)))
    clips = torch.stack([PRE.clip(EchoVideo(v.frames, v.fps), 0, resized=True) for v in videos])
    ef = np.array([v.ef for v in videos])
    tokens = extract_tokens(encoder, clips)
    probe = fit_probe(tokens[:90], ef[:90], EchoProbeConfig(task="ef", head="linear", epochs=300))
    held_out = probe.evaluate(tokens[90:], ef[90:])
    assert held_out["mae"] < 0.9 * held_out["mae_predict_mean"], held_out
    assert held_out["r2"] > 0.1, held_out
    test_videos = [EchoVideo(v.frames, v.fps) for v in videos[90:]]
    curve = robustness(encoder, probe, test_videos, ef[90:], PRE)
    assert curve["clean"]["mae"] < curve["clean"]["mae_predict_mean"]  # centre clips: another cardiac phase
    assert set(curve) == {"clean", *(f"{k}-{lv}" for k in ("depth", "shadow") for lv in (1, 2, 3))}
    assert all(np.isfinite(m["mae"]) for m in curve.values())
    assert curve["depth-3"]["mae"] != curve["clean"]["mae"]  # the perturbation reaches the model


def test_perturbation_augmentation_is_seeded() -> None:
    from jepa_edge.jepa.echo_task import EchoClips, synthetic_videos

    videos = synthetic_videos(2, PRE, seed=4, seconds=2.25)
    plain, augmented = EchoClips(videos, PRE), EchoClips(videos, PRE, perturb_prob=1.0, seed=3)
    item = (1, 2)
    assert not torch.equal(plain[item], augmented[item])
    torch.testing.assert_close(augmented[item], EchoClips(videos, PRE, perturb_prob=1.0, seed=3)[item])


def test_cli_synth_probe_and_classifier(echo_run: Path, tmp_path: Path) -> None:
    from jepa_edge.cli import app

    runner = CliRunner()
    data = tmp_path / "echonet"
    res = runner.invoke(app, ["echo", "synth", str(data), "--count", "10", "--size", "48", "--seconds", "2.2"])
    assert res.exit_code == 0, res.output
    assert (data / "FileList.csv").is_file() and len(list((data / "Videos").glob("*.avi"))) == 10
    res = runner.invoke(app, ["echo", "probe", str(echo_run), str(data), "--task", "view", "--head", "attentive",
                              "--epochs", "20", "--out", str(tmp_path / "view")])
    assert res.exit_code == 0, res.output
    model, meta = load_classifier(tmp_path / "view")
    assert meta["task"] == "view-classification" and meta["head"]["blocks"] == 3
    assert set(meta["labels"]) <= {"A4C", "A2C", "PLAX"} and 0.0 <= meta["metrics"]["train_accuracy"] <= 1.0
    logits, emb = model(torch.zeros(2, 3, 8, 48, 48))
    assert logits.shape == (2, len(meta["labels"])) and emb.shape == (2, 192)
    run = probe_echonet(echo_run, data, EchoProbeConfig(task="ef", epochs=50), tmp_path / "ef")
    assert set(run.metrics) >= {"train", "test"} and "mae" in run.metrics["test"]
    ef_model, ef_meta = load_classifier(tmp_path / "ef")
    assert ef_meta["task"] == "lvef-regression" and ef_meta["target"]["unit"] == "percent"
    res = runner.invoke(app, ["echo", "probe", str(echo_run), str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "FileList.csv missing" in res.output
    res = runner.invoke(app, ["echo", "import-weights", str(tmp_path / "none.pt"), str(tmp_path / "x")])
    assert res.exit_code == 2 and "no such checkpoint" in res.output
    res = runner.invoke(app, ["echo", "synth", str(tmp_path / "s"), "--format", "gif"])
    assert res.exit_code == 2 and "unknown video format" in res.output


def test_echo_task_reads_video_folders_and_rejects_bad_options(tmp_path: Path) -> None:
    from jepa_edge.jepa.trainer import build_task

    root = write_synthetic_echonet(tmp_path / "e", count=4, seed=2, config=SyntheticEchoConfig(size=48, seconds=2.2))
    (root / "Videos" / "broken.avi").write_bytes(b"\x00" * 100)
    cfg = PretrainConfig(modality="echo", model="vit-tiny", data=str(root / "Videos"), extra=EXTRA, skip_bad=True)
    task = build_task(cfg)
    assert len(task.windows) == 4 and task.meta["data"]["load_report"]["skipped"] == 1
    x = task.windows[task.plan.global_batch(0, 1)[0]]
    assert x.shape == (3, 8, 48, 48)
    keep, target = task.masks(2, np.random.default_rng(0))
    assert task.encoder(x[None].expand(2, -1, -1, -1, -1), keep).shape[:2] == keep.shape
    echonet = build_task(PretrainConfig(modality="echo", model="vit-tiny", data=str(root), extra=EXTRA,
                                        skip_bad=True))
    assert len(echonet.windows) == 3 and "TRAIN split" in echonet.meta["data"]["source"]  # val/test stay unseen
    from jepa_edge.data.errors import RecordError

    with pytest.raises(RecordError, match=r"broken\.avi: corrupt"):
        build_task(PretrainConfig(modality="echo", data=str(root / "Videos"), extra=EXTRA))
    with pytest.raises(ValueError, match=r"unknown echo option\(s\) in extra: \['frame'\]"):
        build_task(PretrainConfig(modality="echo", extra={"frame": 8}))


def test_probe_refuses_an_ecg_encoder(tmp_path: Path) -> None:
    from jepa_edge.data.errors import DataError
    from jepa_edge.models.checkpoint import save_model
    from jepa_edge.models.ecg import EcgEncoder, EcgEncoderSpec

    ecg = EcgEncoder(EcgEncoderSpec(size="vit-tiny"))
    save_model(tmp_path / "ecg", ecg, {"kind": "encoder", "encoder": ecg.spec.to_dict()})
    data = write_synthetic_echonet(tmp_path / "d", count=2, config=SyntheticEchoConfig(size=48, seconds=2.2))
    with pytest.raises(DataError, match=r"ecg: not an echo encoder \(modality 'ecg'\)"):
        probe_echonet(tmp_path / "ecg", data)
    with pytest.raises(ValueError, match="unknown echo task"):
        EchoProbeConfig(task="rvsp")
