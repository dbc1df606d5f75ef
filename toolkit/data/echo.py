"""Echocardiography video input: PyAV decoding of AVI / MP4 / frame folders, clip sampling, one preprocessing object.

Clips follow EchoJEPA / V-JEPA 2: 16 frames at 8 fps taken from any source frame rate (nearest source frame
for each target time), resized (short side) and centre-cropped to 224 or 112 px, grey replicated to 3
channels, scaled to [0, 1] and normalised per channel. `EchoPreprocessing` is the one description of that
(the echo twin of `EcgPreprocessing`): it goes into model folders and bundle manifests via `to_dict()`.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .errors import DataError, RecordError, SkipReport

VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
MIN_FPS, MAX_FPS = 1.0, 1000.0  # anything outside is metadata garbage, not an ultrasound frame rate
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # V-JEPA 2 / EchoJEPA normalise clips with ImageNet statistics
IMAGENET_STD = (0.229, 0.224, 0.225)
ECHONET_SPLITS = {"TRAIN": "train", "VAL": "val", "TEST": "test"}


@dataclass(frozen=True)
class EchoVideo:
    """A decoded video: uint8 frames (T, H, W) grey or (T, H, W, 3) colour, and its frame rate."""

    frames: np.ndarray
    fps: float
    path: str = "<memory>"

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps


def _check_fps(path: str | Path, fps: float | None) -> float:
    if fps is None or not math.isfinite(float(fps)) or float(fps) <= 0:
        raise RecordError(path, f"missing frame rate (fps metadata is {fps!r}); pass fps= explicitly", "no-fps")
    fps = float(fps)
    if not (MIN_FPS <= fps <= MAX_FPS):
        raise RecordError(path, f"absurd frame rate {fps:g} fps (expected {MIN_FPS:g}-{MAX_FPS:g})", "bad-fps")
    return fps


def _decode_container(path: Path, colour: bool) -> tuple[list[np.ndarray], float | None, int]:
    import av
    from av.video.reformatter import VideoReformatter

    fmt = "rgb24" if colour else "gray"
    # One reformatter for the whole file: `frame.to_ndarray(format=...)` builds a new swscale context for every
    # frame, which cost ~0.5 ms per frame (7x the decode itself at 112 px); the pixels are identical.
    reformatter = VideoReformatter()
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise RecordError(path, "file holds no video stream", "no-video")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            declared = int(stream.frames or 0)
            frames = [reformatter.reformat(frame, format=fmt).to_ndarray() for frame in container.decode(stream)]
    except RecordError:
        raise
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise RecordError(path, f"corrupt or unreadable video ({type(exc).__name__}: {exc})", "corrupt") from exc
    return frames, (float(rate) if rate else None), declared


def read_video(path: str | Path, fps: float | None = None, colour: bool = False) -> EchoVideo:
    """Decode a whole AVI / MP4 file or a folder of frame images; `fps` overrides (or supplies) the frame rate.

    Raises `RecordError` naming the file for: missing file, corrupt or truncated data, zero frames,
    missing or absurd frame rate.
    """
    path = Path(path)
    if not path.exists():
        raise RecordError(path, "no such file or folder", "missing")
    if path.is_dir():
        return read_frame_folder(path, fps=fps, colour=colour)
    if path.stat().st_size == 0:
        raise RecordError(path, "empty file (0 bytes)", "empty")
    frames, meta_fps, declared = _decode_container(path, colour)
    if not frames:
        raise RecordError(path, "video has zero decodable frames", "no-frames")
    if declared and len(frames) < declared:
        raise RecordError(path, f"truncated: decoded {len(frames)} of the {declared} frames the header declares",
                          "truncated")
    return EchoVideo(np.stack(frames), _check_fps(path, fps if fps is not None else meta_fps), str(path))


def read_frame_folder(path: str | Path, fps: float | None = None, colour: bool = False) -> EchoVideo:
    """Frames stored as images (sorted by name); the rate comes from `fps` or a `fps.txt` file in the folder."""
    path = Path(path)
    images, fps = _folder_images(path, fps)
    frames = []
    for image in images:
        decoded, _, _ = _decode_container(image, colour)
        if not decoded:
            raise RecordError(image, "image could not be decoded", "corrupt")
        frames.append(decoded[0])
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise RecordError(path, f"frames differ in size: {sorted(shapes)}", "inconsistent")
    return EchoVideo(np.stack(frames), fps, str(path))


def _folder_images(path: Path, fps: float | None) -> tuple[list[Path], float]:
    """A frame folder's images (sorted by name) and its frame rate (`fps`, else fps.txt)."""
    images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise RecordError(path, f"frame folder holds no images ({', '.join(IMAGE_SUFFIXES)})", "no-frames")
    if fps is None and (path / "fps.txt").is_file():
        text = (path / "fps.txt").read_text().strip()
        try:
            fps = float(text)
        except ValueError:
            raise RecordError(path / "fps.txt", f"not a number: {text[:40]!r}", "bad-fps") from None
    return images, _check_fps(path, fps)


# -- reading only the frames the clips need ------------------------------------------------------------
# Inter-coded video has to be decoded frame by frame, but decoding is cheap (~0.04 ms per 112 px frame);
# what costs is turning frames into arrays. `read_sparse` decodes the whole file (to count its frames and
# catch truncation), keeps the decoded frames the caller's `pick(num_frames, fps)` names, and converts only
# those, through one swscale context, to exactly the pixels `read_video` gives for the same frames.

CHROMA_THRESHOLD = 16  # a pixel carries colour when a chroma sample sits this far from neutral (0-255 scale)
COLOUR_FRACTION = 0.02  # a video is colour when more than this share of its pixels carry colour
_PLANAR_YUV8 = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv440p",
                          "yuvj440p", "yuv411p", "yuv410p"})
_COLOUR_SAMPLE = 8  # frames looked at for colour


@dataclass(frozen=True)
class SparseVideo:
    """Some frames of a video (the ones a caller picked) and what is known about the whole video."""

    frames: np.ndarray  # uint8 (k, H, W) grey or (k, H, W, 3) colour: the source frames at `indices`
    indices: np.ndarray  # sorted unique source frame indices
    num_frames: int  # frames in the whole video (every frame decoded and counted)
    fps: float
    colour_fraction: float  # share of pixels carrying colour in (up to 8 of) the picked frames
    path: str = "<memory>"

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    @property
    def colour(self) -> bool:
        return self.frames.ndim == 4

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps

    def take(self, idx: np.ndarray) -> np.ndarray:
        """The frames at source indices `idx` (each must be among `indices`)."""
        idx = np.asarray(idx)
        pos = np.searchsorted(self.indices, idx)
        if (pos >= len(self.indices)).any() or not np.array_equal(self.indices[np.minimum(pos, len(self.indices) - 1)],
                                                                  idx):
            raise DataError(f"{self.path}: frames {sorted(set(idx.tolist()) - set(self.indices.tolist()))[:5]} "
                             "were not picked when the video was read")
        return self.frames[pos]


def _plane_array(plane: Any) -> np.ndarray:
    rows = np.frombuffer(plane, np.uint8, count=plane.line_size * plane.height).reshape(plane.height, plane.line_size)
    return rows[:, : plane.width]


def chroma_fraction(frame: Any, reformatter: Any) -> float:
    """Share of a decoded frame's pixels that carry colour; 0.0 for grey pixel formats.

    Planar 8-bit YUV: |U - 128| or |V - 128| above CHROMA_THRESHOLD (chroma resolution). Anything else
    (RGB, palette, high bit depth): converted to rgb24, max - min over the channels above the threshold."""
    name = frame.format.name
    if name.startswith("gray"):
        return 0.0
    if name in _PLANAR_YUV8:
        u, v = (_plane_array(frame.planes[i]).astype(np.int16) for i in (1, 2))
        return float((np.maximum(np.abs(u - 128), np.abs(v - 128)) > CHROMA_THRESHOLD).mean())
    rgb = reformatter.reformat(frame, format="rgb24").to_ndarray().astype(np.int16)
    return float((rgb.max(axis=-1) - rgb.min(axis=-1) > CHROMA_THRESHOLD).mean())


def _convert(path: str | Path, frames: list[Any], reformatter: Any, colour: bool | None) -> tuple[np.ndarray, float]:
    step = max(1, len(frames) // _COLOUR_SAMPLE)
    fraction = float(np.mean([chroma_fraction(f, reformatter) for f in frames[::step]]))
    use_rgb = fraction > COLOUR_FRACTION if colour is None else colour
    fmt = "rgb24" if use_rgb else "gray"
    arrays = [reformatter.reformat(f, format=fmt).to_ndarray() for f in frames]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise RecordError(path, f"frames differ in size: {sorted(shapes)}", "inconsistent")
    return np.stack(arrays), fraction


def _picked(path: str | Path, pick: Any, num_frames: int, fps: float) -> np.ndarray:
    idx = np.unique(np.asarray(pick(num_frames, fps), dtype=np.int64))
    if idx.size == 0 or idx[0] < 0 or idx[-1] >= num_frames:
        raise DataError(f"{path}: picked frames outside 0..{num_frames - 1}")
    return idx


def read_sparse(path: str | Path, pick: Any, fps: float | None = None, colour: bool | None = None) -> SparseVideo:
    """Decode a video file or frame folder, converting only the frames `pick(num_frames, fps)` names.

    `pick` may raise `RecordError` (e.g. "too-short"). `colour`: False -> grey, True -> rgb24, None -> by the
    content (rgb24 when more than COLOUR_FRACTION of the pixels carry colour, else grey). Grey pixels are
    exactly those of `read_video(path)` (same swscale conversion). Errors are `RecordError`s naming the file,
    as `read_video`'s. The header's frame count plans the picks; when it is missing or wrong, the file is
    decoded once more with the true count.
    """
    path = Path(path)
    if not path.exists():
        raise RecordError(path, "no such file or folder", "missing")
    from av.video.reformatter import VideoReformatter

    reformatter = VideoReformatter()
    if path.is_dir():
        images, src_fps = _folder_images(path, fps)
        idx = _picked(path, pick, len(images), src_fps)
        frames = [_first_frame(images[i]) for i in idx]
        arr, fraction = _convert(path, frames, reformatter, colour)
        return SparseVideo(arr, idx, len(images), src_fps, fraction, str(path))
    if path.stat().st_size == 0:
        raise RecordError(path, "empty file (0 bytes)", "empty")
    count: int | None = None
    for _ in range(2):
        kept, total, declared, src_fps, idx = _decode_picked(path, pick, fps, count)
        if total == 0:
            raise RecordError(path, "video has zero decodable frames", "no-frames")
        if declared and total < declared:
            raise RecordError(path, f"truncated: decoded {total} of the {declared} frames the header declares",
                              "truncated")
        if idx is not None:
            break
        count = total  # no (or a wrong) frame count in the header: plan on the true count
    else:  # pragma: no cover - the second pass always plans
        raise RecordError(path, "could not plan frames to read", "corrupt")
    arr, fraction = _convert(path, [kept[i] for i in idx.tolist()], reformatter, colour)
    return SparseVideo(arr, idx, total, src_fps, fraction, str(path))


def _decode_picked(path: Path, pick: Any, fps: float | None,
                   count: int | None) -> tuple[dict[int, Any], int, int, float, np.ndarray | None]:
    """One decoding pass: (kept frames by index, frames decoded, header count, fps, picked indices or None
    when the count the picks were planned on turned out wrong)."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise RecordError(path, "file holds no video stream", "no-video")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            declared = int(stream.frames or 0)
            src_fps = _check_fps(path, fps if fps is not None else (float(rate) if rate else None))
            planned = count or declared
            idx = _picked(path, pick, planned, src_fps) if planned else None
            want = set(idx.tolist()) if idx is not None else set()
            kept: dict[int, Any] = {}
            total = 0
            for frame in container.decode(stream):
                if total in want:
                    kept[total] = frame
                total += 1
    except RecordError:
        raise
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise RecordError(path, f"corrupt or unreadable video ({type(exc).__name__}: {exc})", "corrupt") from exc
    if idx is not None and total != planned and not (declared and total < declared):
        idx = None
    return kept, total, declared, src_fps, idx


def _first_frame(image: Path) -> Any:
    import av

    try:
        with av.open(str(image)) as container:
            for frame in container.decode(video=0):
                return frame
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise RecordError(image, f"corrupt or unreadable image ({type(exc).__name__}: {exc})", "corrupt") from exc
    raise RecordError(image, "image could not be decoded", "corrupt")


def write_video(path: str | Path, frames: np.ndarray, fps: float, codec: str | None = None) -> Path:
    """Encode uint8 frames (T, H, W) or (T, H, W, 3) to .avi (MPEG-4 part 2) or .mp4 (H.264) with PyAV."""
    import av

    path = Path(path)
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim not in (3, 4) or len(frames) == 0:
        raise DataError(f"{path}: expected non-empty uint8 frames (T, H, W[, 3]), got {frames.dtype} {frames.shape}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise DataError(f"{path}: frame size {frames.shape[1:3]} must be even for yuv420p encoding")
    suffix = path.suffix.lower()
    codec = codec or {".avi": "mpeg4", ".mp4": "libx264", ".mkv": "libx264", ".mov": "libx264"}.get(suffix)
    if codec is None:
        raise DataError(f"{path}: unsupported video suffix {suffix!r}; use .avi or .mp4")
    path.parent.mkdir(parents=True, exist_ok=True)
    from fractions import Fraction

    rate = Fraction(fps).limit_denominator(1001)
    fmt = "gray" if frames.ndim == 3 else "rgb24"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        if codec == "mpeg4":
            stream.options = {"qscale": "2"}
            stream.bit_rate = 4_000_000
        else:
            stream.options = {"crf": "12", "preset": "veryfast"}
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=fmt)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_frame_folder(path: str | Path, frames: np.ndarray, fps: float) -> Path:
    """Write frames as PNG images plus `fps.txt` (the layout `read_frame_folder` reads)."""
    import av

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    fmt = "gray" if frames.ndim == 3 else "rgb24"
    for i, image in enumerate(np.asarray(frames, dtype=np.uint8)):
        av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=fmt).to_image().save(path / f"{i:05d}.png")
    (path / "fps.txt").write_text(f"{fps:g}\n")
    return path


@dataclass(frozen=True)
class EchoPreprocessing:
    """Clip sampling (frames at fps), spatial size, channel handling and normalisation of echo clips."""

    frames: int = 16
    fps: float = 8.0
    size: int = 112  # 224 for teachers (V-JEPA 2 / EchoJEPA), 112 for small students (EchoNet native)
    channels: int = 3
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    resize: str = "short-side-bilinear-antialias+center-crop"

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise DataError(f"clip length must be at least one frame, got {self.frames}")
        if not (MIN_FPS <= self.fps <= MAX_FPS):
            raise DataError(f"clip frame rate {self.fps} outside {MIN_FPS:g}-{MAX_FPS:g} fps")
        if self.size < 16:
            raise DataError(f"clip size {self.size} px is smaller than one 16 px patch")
        if self.channels not in (1, 3):
            raise DataError(f"channels must be 1 or 3, got {self.channels}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise DataError(f"mean/std need {self.channels} entries, got {len(self.mean)}/{len(self.std)}")
        if min(self.std) <= 0:
            raise DataError("normalisation std must be positive for every channel")

    @property
    def clip_seconds(self) -> float:
        return self.frames / self.fps

    def source_span(self, src_fps: float) -> int:
        """Source frames one clip needs at `src_fps` (first to last sampled frame, inclusive)."""
        return int(round((self.frames - 1) * src_fps / self.fps)) + 1

    def frame_indices(self, num_frames: int, src_fps: float, start: int = 0, path: str = "<memory>") -> np.ndarray:
        """Source frame index for each clip frame: nearest frame to start + i / fps seconds."""
        src_fps = _check_fps(path, src_fps)
        span = self.source_span(src_fps)
        if num_frames < span:
            raise RecordError(path, f"clip too short: {num_frames} frames at {src_fps:g} fps "
                                    f"({num_frames / src_fps:.2f} s); a {self.frames}-frame clip at {self.fps:g} fps "
                                    f"needs {span} frames ({self.clip_seconds:.2f} s)", "too-short")
        if not (0 <= start <= num_frames - span):
            raise DataError(f"{path}: clip start {start} outside 0..{num_frames - span}")
        idx = start + np.round(np.arange(self.frames) * src_fps / self.fps).astype(np.int64)
        return np.minimum(idx, num_frames - 1)

    def max_start(self, num_frames: int, src_fps: float) -> int:
        return num_frames - self.source_span(src_fps)

    def clip_starts(self, num_frames: int, src_fps: float, clips: int = 1, path: str = "<memory>",
                    min_gap: float = 0.0) -> list[int]:
        """Source-frame starts of `clips` clips spread evenly from the first frame to the last possible start
        (one clip: the centre one). `min_gap` > 0 (a fraction of a clip) keeps neighbouring starts at least that
        far apart by taking fewer clips from a short video. Raises `RecordError` ("too-short") below one clip."""
        if clips < 1:
            raise DataError(f"clips per video must be at least 1, got {clips}")
        self.frame_indices(num_frames, src_fps, 0, path)  # the too-short check, naming the file
        last = self.max_start(num_frames, src_fps)
        if min_gap > 0:
            gap = max(1, int(round(min_gap * self.clip_seconds * src_fps)))
            clips = min(clips, 1 + last // gap)  # starts then lie >= gap apart: distinct after rounding
        if clips == 1:
            return [last // 2]
        return [int(v) for v in np.round(np.linspace(0, last, clips))]

    def resize_frames(self, frames: np.ndarray) -> np.ndarray:
        """uint8 (T, H, W[, 3]) -> uint8 (T, size, size[, 3]): short side to `size`, centre crop."""
        arr = np.asarray(frames)
        grey = arr.ndim == 3
        x = torch.from_numpy(np.ascontiguousarray(arr)).float()
        x = x.unsqueeze(1) if grey else x.permute(0, 3, 1, 2)
        h, w = x.shape[-2:]
        scale = self.size / min(h, w)
        nh, nw = max(self.size, round(h * scale)), max(self.size, round(w * scale))
        if (nh, nw) != (h, w):
            x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
        top, left = (nh - self.size) // 2, (nw - self.size) // 2
        x = x[..., top : top + self.size, left : left + self.size].round().clamp(0, 255).to(torch.uint8)
        out = x[:, 0] if grey else x.permute(0, 2, 3, 1)
        return out.numpy()

    def normalise(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 (T, size, size[, 3]) -> float32 (channels, T, size, size), grey replicated to all channels."""
        x = torch.from_numpy(np.ascontiguousarray(frames)).float() / 255.0
        if x.dim() == 3:
            x = x.unsqueeze(-1).expand(-1, -1, -1, self.channels)
        elif x.shape[-1] != self.channels:
            x = x.mean(dim=-1, keepdim=True).expand(-1, -1, -1, self.channels)
        x = x.permute(3, 0, 1, 2)
        mean = torch.tensor(self.mean).view(-1, 1, 1, 1)
        std = torch.tensor(self.std).view(-1, 1, 1, 1)
        return ((x - mean) / std).contiguous()

    def clip(self, video: EchoVideo, start: int = 0, resized: bool = False) -> torch.Tensor:
        """One model-ready clip (channels, frames, size, size) from a decoded video, starting at source frame."""
        idx = self.frame_indices(video.num_frames, video.fps, start, video.path)
        frames = video.frames[idx]
        if not resized:
            frames = self.resize_frames(frames)
        return self.normalise(frames)

    def __call__(self, video: EchoVideo, start: int | None = None) -> torch.Tensor:
        """Centre clip of the video unless `start` is given."""
        if start is None:
            start = max(0, self.max_start(video.num_frames, _check_fps(video.path, video.fps)) // 2)
        return self.clip(video, start)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "echo",
            "frames": self.frames,
            "fps": self.fps,
            "size": self.size,
            "channels": self.channels,
            "mean": list(self.mean),
            "std": list(self.std),
            "resize": self.resize,
            "sampling": "nearest source frame to start + i/fps seconds, i = 0..frames-1",
            "scale": "uint8 / 255, grey replicated to every channel, then (x - mean) / std per channel",
            "layout": "(batch, channels, frames, height, width) float32",
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EchoPreprocessing:
        if d.get("kind", "echo") != "echo":
            raise DataError(f"preprocessing of kind {d.get('kind')!r} is not an echo description")
        return cls(frames=int(d["frames"]), fps=float(d["fps"]), size=int(d["size"]),
                   channels=int(d.get("channels", 3)), mean=tuple(float(v) for v in d["mean"]),
                   std=tuple(float(v) for v in d["std"]),
                   resize=str(d.get("resize", cls.resize)))


# -- folders and the EchoNet-Dynamic layout ----------------------------------------------------------


@dataclass(frozen=True)
class EchoItem:
    """One labelled video of a dataset index."""

    path: Path
    ef: float | None = None
    split: str | None = None
    fps: float | None = None
    view: str | None = None


def read_echonet(root: str | Path) -> list[EchoItem]:
    """EchoNet-Dynamic: `FileList.csv` (FileName, EF, Split, FPS, ...) and `Videos/<FileName>.avi`.

    A `View` column (written by the synthetic generator) is read when present.
    """
    root = Path(root)
    table = root / "FileList.csv"
    if not table.is_file():
        raise DataError(f"{root}: not an EchoNet-Dynamic folder (FileList.csv missing)")
    with open(table, newline="") as fh:
        reader = csv.DictReader(fh)
        columns = set(reader.fieldnames or [])
        needed = {"FileName", "EF", "Split"}
        if not needed <= columns:
            raise DataError(f"{table}: missing column(s) {sorted(needed - columns)} (has {sorted(columns)})")
        rows = list(reader)
    if not rows:
        raise DataError(f"{table}: no rows")
    items = []
    for line, row in enumerate(rows, start=2):
        name = row["FileName"].strip()
        path = root / "Videos" / name
        if not path.suffix and not path.is_dir():  # EchoNet names lack ".avi"; frame folders have none
            path = path.with_suffix(".avi")
        try:
            ef = float(row["EF"])
        except ValueError:
            raise DataError(f"{table}:{line}: EF {row['EF']!r} is not a number") from None
        if not (0.0 <= ef <= 100.0):
            raise DataError(f"{table}:{line}: EF {ef:g} outside 0-100 %")
        split = ECHONET_SPLITS.get(row["Split"].strip().upper())
        if split is None:
            raise DataError(f"{table}:{line}: split {row['Split']!r} is not one of {sorted(ECHONET_SPLITS)}")
        fps = float(row["FPS"]) if row.get("FPS") not in (None, "") else None
        items.append(EchoItem(path, ef, split, fps, (row.get("View") or None)))
    return items


def find_videos(root: str | Path) -> list[Path]:
    """Video files (and frame folders holding fps.txt) below `root`, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    found = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES]
    found += [p.parent for p in root.rglob("fps.txt")]
    return sorted(found)


def index_folder(root: str | Path) -> list[EchoItem]:
    """EchoNet layout when FileList.csv exists, otherwise every video below `root` (unlabelled)."""
    root = Path(root)
    if (root / "FileList.csv").is_file():
        return read_echonet(root)
    videos = find_videos(root)
    if not videos:
        raise DataError(f"{root}: no videos ({', '.join(VIDEO_SUFFIXES)}) or frame folders with fps.txt")
    return [EchoItem(p) for p in videos]


def load_videos(items: Sequence[EchoItem], pre: EchoPreprocessing, skip_bad: bool = False,
                report: SkipReport | None = None) -> tuple[list[EchoVideo], list[EchoItem]]:
    """Decode and resize every video once (kept as uint8 at `pre.size`); checks each is long enough for a clip."""
    videos, kept = [], []
    for item in items:
        try:
            video = read_video(item.path, fps=item.fps)
            pre.frame_indices(video.num_frames, video.fps, 0, video.path)  # raises when too short
            videos.append(EchoVideo(pre.resize_frames(video.frames), video.fps, video.path))
            kept.append(item)
            if report is not None:
                report.loaded += 1
        except RecordError as err:
            if not skip_bad:
                raise
            if report is not None:
                report.add(err)
    return videos, kept
