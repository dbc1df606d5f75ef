"""Echo video input: PyAV round trips, clip sampling at any frame rate, preprocessing, EchoNet layout, bad input.

No redistributable real echo exists here: the videos are drawn by the synthetic generator and written
as real AVI / MP4 / PNG files through PyAV, then read back through the same code users run on EchoNet.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from jepa_edge.data.echo import (
    EchoPreprocessing,
    EchoVideo,
    index_folder,
    read_echonet,
    read_video,
    write_frame_folder,
    write_video,
)
from jepa_edge.data.errors import DataError, RecordError
from jepa_edge.data.synthetic_echo import SyntheticEchoConfig, synthesize_echo, write_synthetic_echonet

SMALL = SyntheticEchoConfig(size=64, seconds=2.5, fps_choices=(30.0,))


@pytest.fixture(scope="module")
def video() -> EchoVideo:
    v = synthesize_echo(3, SMALL, ef=55.0, view="A4C")
    return EchoVideo(v.frames, v.fps)


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_video_round_trip(tmp_path: Path, video: EchoVideo, suffix: str) -> None:
    path = write_video(tmp_path / f"clip{suffix}", video.frames, video.fps)
    back = read_video(path)
    assert back.frames.shape == video.frames.shape and back.frames.dtype == np.uint8
    assert back.fps == pytest.approx(30.0)
    assert np.abs(back.frames.astype(int) - video.frames).mean() < 4  # lossy codec, same picture
    colour = read_video(path, colour=True)
    assert colour.frames.shape == (*video.frames.shape, 3)


def test_frame_folder_round_trip(tmp_path: Path, video: EchoVideo) -> None:
    folder = write_frame_folder(tmp_path / "frames", video.frames[:20], 30.0)
    back = read_video(folder)
    np.testing.assert_array_equal(back.frames, video.frames[:20])  # PNG is lossless
    assert back.fps == 30.0
    assert read_video(folder, fps=50.0).fps == 50.0  # explicit fps wins


def test_clip_sampling_at_any_source_rate() -> None:
    pre = EchoPreprocessing(frames=16, fps=8.0)
    # 30 fps: every 3.75 frames, nearest source frame; the clip spans 2 s (frames 0..56)
    idx = pre.frame_indices(90, 30.0)
    assert idx[0] == 0 and idx[-1] == round(15 * 30 / 8) and len(idx) == 16
    np.testing.assert_array_equal(np.diff(idx) >= 3, True)
    assert pre.source_span(30.0) == 57 and pre.max_start(90, 30.0) == 33
    np.testing.assert_array_equal(pre.frame_indices(40, 8.0, start=4), np.arange(4, 20))
    np.testing.assert_array_equal(pre.frame_indices(400, 80.0), np.arange(16) * 10)
    with pytest.raises(ValueError, match="clip start"):
        pre.frame_indices(90, 30.0, start=40)


def test_preprocessing_shapes_channels_and_dict(video: EchoVideo) -> None:
    for size in (112, 224):
        pre = EchoPreprocessing(size=size)
        clip = pre(video)
        assert clip.shape == (3, 16, size, size) and clip.dtype == torch.float32
        torch.testing.assert_close(clip[0] * 0.229 + 0.485, clip[2] * 0.225 + 0.406)  # grey copied to 3 channels
    wide = EchoVideo(np.zeros((40, 60, 100), dtype=np.uint8), 8.0)
    assert EchoPreprocessing(size=112).resize_frames(wide.frames).shape == (40, 112, 112)  # short side + crop
    pre = EchoPreprocessing(frames=8, fps=4.0, size=112)
    d = pre.to_dict()
    assert d["kind"] == "echo" and d["layout"].startswith("(batch, channels, frames")
    assert EchoPreprocessing.from_dict(d) == pre
    with pytest.raises(ValueError, match="not an echo description"):
        EchoPreprocessing.from_dict({**d, "kind": "ecg"})
    with pytest.raises(ValueError, match="clip frame rate"):
        EchoPreprocessing(fps=0.0)


def test_synthetic_echonet_layout_reads_back(tmp_path: Path) -> None:
    root = write_synthetic_echonet(tmp_path / "echonet", count=5, seed=1, config=SMALL)
    items = read_echonet(root)
    assert len(items) == 5 and {i.split for i in items} <= {"train", "val", "test"}
    assert all(i.path.is_file() and 20 <= i.ef <= 75 and i.view in ("A4C", "A2C", "PLAX") for i in items)
    assert index_folder(root) == items
    v = read_video(items[0].path)
    assert v.fps == 30.0 and v.frames.shape == (75, 64, 64)
    assert "not patient data" in (root / "SYNTHETIC.txt").read_text()
    assert len(index_folder(root / "Videos")) == 5  # a plain folder of videos, unlabelled
    for fmt in ("mp4", "frames"):
        other = write_synthetic_echonet(tmp_path / fmt, count=2, seed=1, fmt=fmt, config=SMALL)
        assert [read_video(i.path).frames.shape for i in read_echonet(other)] == [(75, 64, 64)] * 2


def test_synthetic_ef_is_what_the_pictures_show() -> None:
    """The dark LV cavity shrinks by more in high-EF videos: the label is visible, not just metadata."""
    def area_change(ef: float) -> float:
        v = synthesize_echo(5, SMALL, ef=ef, view="A2C")
        area = (v.frames[:, 10:54, 10:54] < 25).mean(axis=(1, 2))
        return float((area.max() - area.min()) / area.max())

    low, high = area_change(25.0), area_change(70.0)
    assert high > 2 * low > 0
    with pytest.raises(ValueError, match="ejection fraction"):
        synthesize_echo(0, SMALL, ef=120.0)
    with pytest.raises(ValueError, match="unknown view"):
        synthesize_echo(0, SMALL, view="PSAX-ish")


# -- every bad input gets a clear error naming the file ------------------------------------------------


def test_missing_empty_and_corrupt_files(tmp_path: Path, video: EchoVideo) -> None:
    with pytest.raises(RecordError, match=r"nope\.avi: no such file"):
        read_video(tmp_path / "nope.avi")
    (tmp_path / "empty.avi").write_bytes(b"")
    with pytest.raises(RecordError, match=r"empty\.avi: empty file") as err:
        read_video(tmp_path / "empty.avi")
    assert err.value.reason == "empty"
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(RecordError, match=r"noise\.mp4: corrupt or unreadable video"):
        read_video(tmp_path / "noise.mp4")


def test_truncated_file(tmp_path: Path, video: EchoVideo) -> None:
    path = write_video(tmp_path / "full.avi", video.frames, video.fps)
    data = path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(RecordError, match=r"cut\.avi: (truncated|corrupt)"):
        read_video(cut)


def test_zero_frames_and_too_short(tmp_path: Path, video: EchoVideo) -> None:
    (tmp_path / "no_frames").mkdir()
    (tmp_path / "no_frames" / "fps.txt").write_text("30\n")
    with pytest.raises(RecordError, match=r"no_frames: frame folder holds no images"):
        read_video(tmp_path / "no_frames")
    short = read_video(write_video(tmp_path / "short.avi", video.frames[:20], video.fps))
    with pytest.raises(RecordError, match=r"short\.avi: clip too short: 20 frames at 30 fps") as err:
        EchoPreprocessing()(short)
    assert err.value.reason == "too-short"


def test_missing_and_absurd_fps(tmp_path: Path, video: EchoVideo) -> None:
    folder = write_frame_folder(tmp_path / "frames", video.frames[:4], 30.0)
    (folder / "fps.txt").unlink()
    with pytest.raises(RecordError, match=r"frames: missing frame rate"):
        read_video(folder)
    (folder / "fps.txt").write_text("5000")
    with pytest.raises(RecordError, match=r"frames: absurd frame rate 5000 fps"):
        read_video(folder)
    (folder / "fps.txt").write_text("fast")
    with pytest.raises(RecordError, match=r"fps\.txt: not a number"):
        read_video(folder)
    avi = write_video(tmp_path / "ok.avi", video.frames[:4], 30.0)
    with pytest.raises(RecordError, match=r"ok\.avi: absurd frame rate 0\.01 fps"):
        read_video(avi, fps=0.01)


def test_bad_echonet_tables(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="FileList.csv missing"):
        read_echonet(tmp_path)

    def table(rows: list[dict]) -> Path:
        with open(tmp_path / "FileList.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        return tmp_path

    with pytest.raises(DataError, match=r"FileList\.csv: missing column\(s\) \['Split'\]"):
        read_echonet(table([{"FileName": "a", "EF": "50"}]))
    with pytest.raises(DataError, match=r"FileList\.csv:2: EF 'high' is not a number"):
        read_echonet(table([{"FileName": "a", "EF": "high", "Split": "TRAIN"}]))
    with pytest.raises(DataError, match=r"FileList\.csv:2: EF 150 outside"):
        read_echonet(table([{"FileName": "a", "EF": "150", "Split": "TRAIN"}]))
    with pytest.raises(DataError, match=r"FileList\.csv:2: split 'DEV'"):
        read_echonet(table([{"FileName": "a", "EF": "50", "Split": "DEV"}]))
    items = read_echonet(table([{"FileName": "0X1A", "EF": "50", "Split": "val"}]))
    assert items[0].path.name == "0X1A.avi" and items[0].split == "val"
    with pytest.raises(ValueError, match="must be even"):
        write_video(tmp_path / "odd.avi", np.zeros((2, 5, 6), np.uint8), 30)
