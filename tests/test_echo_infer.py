"""`jepa-edge echo infer`: whole-video LVEF on the cart from a signed cart-cpu bundle, and every bad input.

One small real bundle (random vit-tiny, 8 frames at 48 px, linear LVEF head, OpenVINO INT8 IR, signed with
a key made by `jepa-edge keys new`) built from a synthetic EchoNet-layout folder; the videos are real AVI /
MP4 / PNG files written through PyAV. Results are checked against the bundle's engine run directly on clips
made by the reference path `pre.clip(read_video(path), start)`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from jepa_edge.cli import app
from jepa_edge.data.echo import EchoPreprocessing, read_video, write_frame_folder, write_video
from jepa_edge.data.synthetic_echo import SyntheticEchoConfig, synthesize_echo, write_synthetic_echonet
from jepa_edge.devices.echo_infer import (
    EXIT_USAGE,
    EXIT_VIDEO_FAILED,
    EchoInfer,
    VideoItem,
    clip_starts,
    expand_inputs,
)
from jepa_edge.tasks.outputs import TaskOutput

PRE = EchoPreprocessing(frames=8, fps=4.0, size=48)  # a clip spans 2 s
VIDEO = SyntheticEchoConfig(size=64, seconds=4.0, fps_choices=(25.0,))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("keys")
    for name in ("release", "other"):
        result = CliRunner().invoke(app, ["keys", "new", str(d / name)])
        assert result.exit_code == 0, result.output
    return {"private": d / "release.key", "public": d / "release.pub", "other": d / "other.pub"}


@pytest.fixture(scope="module")
def echonet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_echonet(tmp_path_factory.mktemp("echonet") / "echonet", 8, 0, "avi",
                                   SyntheticEchoConfig(size=48, seconds=2.5, fps_choices=(25.0,)))


def _build(echonet: Path, work: Path, pre: EchoPreprocessing, sign_key: Path | None = None) -> Path:
    """A cart-cpu bundle: random vit-tiny + linear LVEF head (z-scored, mean 55 %, SD 10 %)."""
    from jepa_edge.devices.build import build_bundle
    from jepa_edge.models.heads import LinearHead
    from jepa_edge.models.video import VideoEncoder, VideoEncoderSpec
    from jepa_edge.tasks.echo import EchoProbe, save_echo_classifier

    torch.manual_seed(0)
    enc = VideoEncoder(VideoEncoderSpec(size="vit-tiny", frames=pre.frames, image_size=pre.size,
                                        channels=pre.channels))
    probe = EchoProbe(LinearHead(enc.dim, 1), {"kind": "linear", "dim": enc.dim, "num_outputs": 1}, "ef",
                      ["LVEF"], 55.0, 10.0)
    clf = save_echo_classifier(work / "clf", enc.eval(), probe, pre)
    return build_bundle(clf, "cart-cpu", work / "bundle", data=echonet, calibration_windows=8, sign_key=sign_key)


@pytest.fixture(scope="module")
def bundle(echonet: Path, keys: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3-channel (grey replicated) model, signed with the key from `jepa-edge keys new`."""
    return _build(echonet, tmp_path_factory.mktemp("bundle"), PRE, sign_key=keys["private"])


@pytest.fixture(scope="module")
def grey_bundle(echonet: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1-channel model (unsigned)."""
    pre = EchoPreprocessing(frames=8, fps=4.0, size=48, channels=1, mean=(0.45,), std=(0.25,))
    return _build(echonet, tmp_path_factory.mktemp("grey"), pre)


@pytest.fixture(scope="module")
def runner(bundle: Path) -> EchoInfer:
    return EchoInfer.open(bundle, clips=4, threads=1)


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    v = synthesize_echo(5, VIDEO, ef=40.0, view="A4C")
    return {"avi": write_video(d / "good.avi", v.frames, v.fps), "mp4": write_video(d / "good.mp4", v.frames, v.fps),
            "frames": write_frame_folder(d / "good_frames", v.frames, v.fps)}


def reference_lvef(runner: EchoInfer, path: Path, starts: list[int]) -> np.ndarray:
    """The bundle engine run directly on clips from the reference decode + preprocessing."""
    video = read_video(path)
    clips = np.stack([runner.pre.clip(video, s).numpy() for s in starts])
    return runner.output.values(runner.engine(clips))[:, 0]


# -- planning ------------------------------------------------------------------------------------------------


def test_clip_starts_cover_the_whole_video() -> None:
    pre = EchoPreprocessing(frames=16, fps=8.0, size=112)  # 2 s clips
    starts = clip_starts(300, 50.0, pre, 4)  # 6 s at 50 fps: last start 300 - 95 = 205
    assert starts == [0, 68, 137, 205]
    assert starts[-1] + pre.source_span(50.0) == 300  # the last clip ends on the last frame
    assert clip_starts(150, 50.0, pre, 4) == [0, 28, 55]  # 3 s: starts at least a quarter clip (25 frames) apart
    assert clip_starts(110, 50.0, pre, 4) == [7]  # 2.2 s: one clip, the centre one (the preprocessing's default)
    assert clip_starts(300, 50.0, pre, 1) == [102]


# -- good inputs ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["avi", "mp4", "frames"])
def test_lvef_per_clip_and_video_match_the_engine_run_directly(runner: EchoInfer, videos: dict[str, Path],
                                                               kind: str) -> None:
    path = videos[kind]
    prepared = runner.prepare(VideoItem(path))
    # 4 s at 25 fps; a clip reads 45 source frames (8 at 4 fps): starts evenly from 0 to the last possible, 55
    assert prepared.starts == [0, 18, 37, 55]
    reference = read_video(path)
    expected = np.stack([runner.pre.clip(reference, s).numpy() for s in prepared.starts])
    np.testing.assert_array_equal(prepared.clips, expected)  # bit-identical to the training preprocessing

    result = runner.infer_video(path)
    assert result["error"] is None and result["frames"] == 100 and result["fps"] == 25.0
    assert result["duration_s"] == 4.0 and result["colour"] is False and (result["width"], result["height"]) == (64, 64)
    per_clip = np.array([c["LVEF"] for c in result["clips"]])
    assert [c["start_s"] for c in result["clips"]] == [0.0, 0.72, 1.48, 2.2] and result["clips"][-1]["end_s"] == 4.0
    assert np.isfinite(per_clip).all()
    np.testing.assert_allclose(per_clip, reference_lvef(runner, path, prepared.starts), rtol=0, atol=1e-9)
    summary = result["video"]["LVEF"]
    assert summary["unit"] == "percent" and summary["clips"] == 4
    assert summary["mean"] == pytest.approx(per_clip.mean()) and summary["sd"] == pytest.approx(per_clip.std(ddof=1))


def test_echonet_and_plain_folders_expand_to_their_videos(runner: EchoInfer, echonet: Path, videos: dict[str, Path],
                                                          tmp_path: Path) -> None:
    items = expand_inputs([echonet])
    assert len(items) == 8 and all(it.fps == 25.0 and it.reference["EF"] > 0 for it in items)
    plain = tmp_path / "plain"
    (plain / "day1").mkdir(parents=True)
    shutil.copy(videos["avi"], plain / "a.avi")
    shutil.copy(videos["mp4"], plain / "day1" / "b.mp4")
    shutil.copytree(videos["frames"], plain / "day1" / "c")
    assert [p.path.name for p in expand_inputs([plain])] == ["a.avi", "b.mp4", "c"]
    assert [p.path for p in expand_inputs([videos["frames"]])] == [videos["frames"]]  # a frame folder is one video

    report = runner.run(expand_inputs([echonet, plain]))
    assert report.exit_code == 0 and len(report.videos) == 11
    for video in report.videos:
        assert video["error"] is None and np.isfinite([c["LVEF"] for c in video["clips"]]).all()
    first = report.videos[0]
    # 2.5 s videos (62 frames at 25 fps, a clip reads 45): fewer clips, starts a quarter clip (12 frames) apart
    assert first["reference"]["EF"] > 0 and [c["start_frame"] for c in first["clips"]] == [0, 17]
    expected = reference_lvef(runner, Path(first["file"]), [0, 17])
    np.testing.assert_allclose([c["LVEF"] for c in first["clips"]], expected)
    summary = report.to_dict()["summary"]
    assert summary["ok"] == 11 and summary["seconds_of_video"] == pytest.approx(8 * 62 / 25 + 3 * 4.0)


def test_container_without_a_frame_count_is_planned_on_the_true_count(runner: EchoInfer, tmp_path: Path) -> None:
    """Matroska headers carry no frame count: the picks are planned after a counting pass, same clips."""
    from jepa_edge.data.echo import read_sparse

    v = synthesize_echo(5, VIDEO, ef=40.0, view="A4C")
    mkv = write_video(tmp_path / "clip.mkv", v.frames, v.fps)
    counts: list[int] = []
    sparse = read_sparse(mkv, lambda n, fps: counts.append(n) or np.arange(0, n, 9))
    assert counts == [100] and sparse.num_frames == 100
    np.testing.assert_array_equal(sparse.frames, read_video(mkv).frames[sparse.indices])
    result = runner.infer_video(mkv)
    assert result["error"] is None and [c["start_frame"] for c in result["clips"]] == [0, 18, 37, 55]


def test_colour_video_into_a_three_channel_model_goes_in_as_rgb(runner: EchoInfer, tmp_path: Path) -> None:
    v = synthesize_echo(7, VIDEO)
    rgb = np.repeat(v.frames[..., None], 3, axis=-1)
    rgb[:, 8:40, 8:40] = (200, 30, 30)  # a red Doppler-like box, a quarter of the picture
    result = runner.infer_video(write_video(tmp_path / "doppler.mp4", rgb, v.fps))
    assert result["error"] is None and result["colour"] is True
    assert np.isfinite([c["LVEF"] for c in result["clips"]]).all()


def test_view_outputs_are_averaged_over_clips() -> None:
    out = TaskOutput("multiclass", ("A4C", "A2C", "PLAX"))
    infer = EchoInfer(engine=None, pre=PRE, output=out)
    summary = infer.summarise(np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.5, 0.0, 0.0]]))
    assert summary["decision"] == "A4C" and summary["clips"] == 3
    assert sum(summary["probabilities"].values()) == pytest.approx(1.0)


# -- bad inputs ----------------------------------------------------------------------------------------------


def _bad(kind: str, d: Path) -> Path:
    v = synthesize_echo(9, VIDEO)
    if kind == "missing":
        return d / "nope.avi"
    if kind == "empty":
        (d / "empty.avi").write_bytes(b"")
        return d / "empty.avi"
    if kind == "corrupt":
        (d / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
        return d / "noise.mp4"
    if kind == "truncated":
        data = write_video(d / "full.avi", v.frames, v.fps).read_bytes()
        (d / "cut.avi").write_bytes(data[: len(data) // 2])
        return d / "cut.avi"
    if kind == "no-frames":
        (d / "no_frames").mkdir()
        (d / "no_frames" / "fps.txt").write_text("25\n")
        return d / "no_frames"
    if kind == "no-fps":
        folder = write_frame_folder(d / "no_rate", v.frames[:60], 25.0)
        (folder / "fps.txt").unlink()
        return folder
    if kind == "too-short":
        return write_video(d / "short.avi", v.frames[:20], v.fps)  # 0.8 s, a clip needs 2 s
    if kind == "too-small":
        return write_video(d / "tiny.avi", v.frames[:, ::4, ::4], v.fps)  # 16 px < half of 48 px
    if kind == "aspect":
        wide = np.concatenate([v.frames, v.frames, v.frames[:, :, :32]], axis=2)  # 160 x 64 px: 2.5:1
        return write_video(d / "dual.avi", wide, v.fps)
    raise AssertionError(kind)


BAD = {"missing": ("missing", "no such file"), "empty": ("empty", "empty file"),
       "corrupt": ("corrupt", "corrupt or unreadable"), "truncated": ("truncated|corrupt", "truncated|corrupt"),
       "no-frames": ("no-frames", "holds no images"), "no-fps": ("no-fps", "missing frame rate"),
       "too-short": ("too-short", "clip too short: 20 frames at 25 fps"),
       "too-small": ("too-small", "16x16 px are too small for a 48 px model"),
       "aspect": ("aspect", "aspect ratio 2.50:1")}


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_video_is_named_recorded_and_the_cli_exits_non_zero(kind: str, bundle: Path, videos: dict[str, Path],
                                                                tmp_path: Path) -> None:
    import re

    bad = _bad(kind, tmp_path)
    out = tmp_path / "results.json"
    result = CliRunner().invoke(app, ["echo", "infer", str(bundle), str(videos["avi"]), str(bad),
                                      str(videos["frames"]), "--clips", "2", "--out", str(out)])
    assert result.exit_code == EXIT_VIDEO_FAILED, result.output
    assert "Traceback" not in result.output
    report = json.loads(out.read_text())
    good_a, failed, good_b = report["videos"]
    assert good_a["error"] is None and good_b["error"] is None and len(good_b["clips"]) == 2  # the others ran
    reason, problem = BAD[kind]
    assert failed["file"] == str(bad) and failed["clips"] == [] and failed["video"] is None
    assert re.fullmatch(reason, failed["error"]["reason"]) and re.search(problem, failed["error"]["problem"])
    assert report["summary"]["failed_files"][0]["file"] == str(bad) and report["summary"]["exit_code"] == 1
    assert f"failed: {bad.name}" in result.output.replace(str(bad.parent) + "/", "")  # named on stderr too


def test_colour_video_into_a_grey_model_is_an_error(grey_bundle: Path, videos: dict[str, Path],
                                                    tmp_path: Path) -> None:
    v = synthesize_echo(7, VIDEO)
    rgb = np.repeat(v.frames[..., None], 3, axis=-1)
    rgb[:, 8:40, 8:40] = (200, 30, 30)  # a red Doppler-like box, a quarter of the picture
    colour = write_video(tmp_path / "doppler.avi", rgb, v.fps)
    out = tmp_path / "grey.json"
    result = CliRunner().invoke(app, ["echo", "infer", str(grey_bundle), str(colour), str(videos["avi"]),
                                      "--out", str(out)])
    assert result.exit_code == EXIT_VIDEO_FAILED, result.output
    failed, grey = json.loads(out.read_text())["videos"]
    assert failed["file"] == str(colour) and failed["error"]["reason"] == "colour-mismatch"
    assert "colour video" in failed["error"]["problem"] and "1-channel (grey) model" in failed["error"]["problem"]
    assert grey["error"] is None and grey["colour"] is False and len(grey["clips"]) == 4  # grey into grey: fine
    runner = EchoInfer.open(grey_bundle)
    prepared = runner.prepare(VideoItem(videos["avi"]))
    assert prepared.clips.shape == (4, 1, 8, 48, 48)
    np.testing.assert_allclose([c["LVEF"] for c in grey["clips"]],
                               reference_lvef(runner, videos["avi"], prepared.starts), rtol=0, atol=1e-4)


def test_non_finite_model_output_is_an_error_for_that_video(videos: dict[str, Path]) -> None:
    class NanEngine:
        def __call__(self, x: np.ndarray) -> np.ndarray:
            return np.full((len(x), 1), np.nan, dtype=np.float32)

    infer = EchoInfer(NanEngine(), PRE, TaskOutput("regression", ("LVEF",), mean=55.0, std=10.0, unit="percent"))
    result = infer.infer_video(videos["avi"])
    assert result["error"]["reason"] == "non-finite" and result["file"] == str(videos["avi"])


# -- the CLI and signatures ----------------------------------------------------------------------------------


def test_cli_writes_json_and_checks_the_signature(bundle: Path, keys: dict[str, Path], videos: dict[str, Path],
                                                  echonet: Path, tmp_path: Path) -> None:
    cli = CliRunner()
    ok = cli.invoke(app, ["echo", "infer", str(bundle), str(videos["mp4"]), "--public-key", str(keys["public"]),
                          "--require-signature"])
    assert ok.exit_code == 0, ok.output
    report = json.loads(ok.stdout)  # no --out: JSON on stdout, messages on stderr
    assert report["signature_checked"] is True and report["engine"]["backend"] == "openvino"
    assert report["engine"]["model_precision"] == "int8" and report["preprocessing"]["size"] == 48
    assert report["output"]["kind"] == "regression" and len(report["videos"][0]["clips"]) == 4

    out = tmp_path / "all.json"
    many = cli.invoke(app, ["echo", "infer", str(bundle), str(echonet), "--out", str(out), "-k", str(keys["public"])])
    assert many.exit_code == 0 and json.loads(out.read_text())["summary"]["ok"] == 8

    wrong = cli.invoke(app, ["echo", "infer", str(bundle), str(videos["mp4"]), "--public-key", str(keys["other"])])
    assert wrong.exit_code == EXIT_USAGE and "manifest.json.sig: does not match" in wrong.output
    assert "Traceback" not in wrong.output
    unsigned = Path(shutil.copytree(bundle, tmp_path / "unsigned"))
    (unsigned / "manifest.json.sig").unlink()
    assert cli.invoke(app, ["echo", "infer", str(unsigned), str(videos["mp4"])]).exit_code == 0
    refused = cli.invoke(app, ["echo", "infer", str(unsigned), str(videos["mp4"]), "--require-signature"])
    assert refused.exit_code == EXIT_USAGE and "manifest.json.sig" in refused.output, refused.output
    not_a_bundle = cli.invoke(app, ["echo", "infer", str(tmp_path), str(videos["mp4"])])
    assert not_a_bundle.exit_code == EXIT_USAGE and "manifest.json" in not_a_bundle.output
