"""Echo clip inference on the cart: videos in, LVEF (or view) per clip and per video out, as JSON.

For each video (AVI / MP4 through PyAV, a PNG frame folder, or every video of a folder / EchoNet-Dynamic
layout folder):

  decode the whole file, converting only the frames the clips use (`read_sparse`, one swscale context)
    -> checks: size, aspect, colour against the model's channels (below)
    -> N clips with evenly spaced starts over the WHOLE video (`clip_starts`)
    -> the bundle's own `EchoPreprocessing` (`resize_frames` on the picked frames, `normalise`)
    -> the bundle's engine (OpenVINO INT8 IR on a cart-cpu bundle), all clips of a video in one batch
    -> the bundle's `TaskOutput`: LVEF in percent per clip, mean and SD over the clips; or view
       probabilities per clip, their mean and the view it picks.

Clips are bit-identical to `pre.clip(read_video(path), start)`: the same decode, resize and normalisation
functions training, calibration and the bundle's golden vectors use; only frames nobody reads are not
converted. Decoding the next video overlaps the model on the current one (one background thread).

What a video must be (each failure is a `RecordError` naming the file and the problem; the run goes on
with the other videos, the JSON records the error, the CLI exits with EXIT_VIDEO_FAILED):
- readable: not missing, empty, corrupt, truncated (fewer frames than its header declares), without
  frames or frame rate (`read_video`'s checks);
- long enough for one clip (`frames` at `fps`, e.g. 16 frames at 8 fps need 2 s);
- big enough: the short side at least MIN_SIDE_FRACTION (half) of the model's input size; upscaling more
  than 2x invents detail the model never saw (a 112 px model takes >= 56 px video, a 224 px model >= 112 px);
- not too elongated: long side / short side at most MAX_ASPECT (2:1); the centre crop to a square would
  otherwise drop more than half the picture (a side-by-side dual view, a strip);
- colour matching the model: grey video into a 3-channel model is replicated to every channel (as the
  preprocessing says); colour video (more than COLOUR_FRACTION of the pixels carrying colour: Doppler)
  into a 3-channel model goes in as RGB; colour video into a 1-channel (grey) model is an error, since the
  preprocessing has no colour-to-grey step to map it honestly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jepa_edge.config import ConfigError
from jepa_edge.data.echo import (
    COLOUR_FRACTION,
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    EchoPreprocessing,
    SparseVideo,
    find_videos,
    read_echonet,
    read_sparse,
)
from jepa_edge.data.errors import DataError, RecordError
from jepa_edge.tasks.outputs import TaskOutput

DEFAULT_CLIPS = 4
MIN_CLIP_GAP = 0.25  # neighbouring clips start at least a quarter clip apart (at most 75 % overlap)
MIN_SIDE_FRACTION = 0.5  # frames' short side >= half the model's input size
MAX_ASPECT = 2.0  # long side / short side
EXIT_OK = 0  # every video gave a result
EXIT_VIDEO_FAILED = 1  # at least one video failed (named in the JSON); the others have results
EXIT_USAGE = 2  # no run at all: bad bundle, signature, arguments (the CLI's `user_errors`)
REPORT_VERSION = 1


@dataclass(frozen=True)
class VideoItem:
    """One video to run: its path, an fps override (EchoNet's FileList FPS), reference labels if known."""

    path: Path
    fps: float | None = None
    reference: dict[str, Any] | None = None
    error: RecordError | None = None  # a problem found while listing the inputs (reported, not run)


@dataclass
class PreparedVideo:
    """A decoded video's model inputs: clips (n, C, T, S, S) float32 and where they start."""

    item: VideoItem
    video: SparseVideo
    starts: list[int]
    clips: np.ndarray
    decode_s: float


# -- planning and checks ---------------------------------------------------------------------------------


def clip_starts(num_frames: int, fps: float, pre: EchoPreprocessing, clips: int = DEFAULT_CLIPS,
                path: str = "<memory>") -> list[int]:
    """Start frames of up to `clips` clips evenly spaced over the whole video (`EchoPreprocessing.clip_starts`),
    fewer when the video is short: neighbouring starts at least MIN_CLIP_GAP of a clip apart; one clip is the
    centre clip. Raises `RecordError` ("too-short") below one clip."""
    return pre.clip_starts(num_frames, fps, clips, path, min_gap=MIN_CLIP_GAP)


def check_frame_size(path: str | Path, height: int, width: int, pre: EchoPreprocessing) -> None:
    """Raise `RecordError` ("too-small", "aspect") for frames the preprocessing cannot map honestly."""
    short, long = min(height, width), max(height, width)
    if short < MIN_SIDE_FRACTION * pre.size:
        raise RecordError(path, f"frames of {width}x{height} px are too small for a {pre.size} px model: the short "
                                f"side must be at least {math.ceil(MIN_SIDE_FRACTION * pre.size)} px (upscaling "
                                f"more than {1 / MIN_SIDE_FRACTION:g}x invents detail)", "too-small")
    if long / short > MAX_ASPECT:
        raise RecordError(path, f"frames of {width}x{height} px have aspect ratio {long / short:.2f}:1, over "
                                f"{MAX_ASPECT:g}:1: the centre crop to a square would drop "
                                f"{1 - short / long:.0%} of the picture (a side-by-side view?)", "aspect")


def check_colour(video: SparseVideo, pre: EchoPreprocessing) -> None:
    """Raise `RecordError` ("colour-mismatch") for colour video into a 1-channel model."""
    if video.colour and pre.channels == 1:
        raise RecordError(video.path, f"colour video ({video.colour_fraction:.1%} of the pixels carry colour, limit "
                                      f"{COLOUR_FRACTION:.0%}) into a 1-channel (grey) model: its preprocessing has "
                                      "no colour-to-grey step", "colour-mismatch")


# -- inputs ------------------------------------------------------------------------------------------------


def _is_frame_folder(path: Path) -> bool:
    if (path / "fps.txt").is_file():
        return True
    entries = [p for p in path.iterdir() if p.is_file()]
    has_images = any(p.suffix.lower() in IMAGE_SUFFIXES for p in entries)
    return has_images and not any(p.suffix.lower() in VIDEO_SUFFIXES for p in entries)


def expand_inputs(paths: Iterable[str | Path]) -> list[VideoItem]:
    """Files stay files; a folder with FileList.csv gives its EchoNet videos (with FPS and EF / view as
    reference); a folder of frame images (or with fps.txt) is one video; any other folder gives every video
    below it. A folder that yields nothing becomes an item carrying the error."""
    items: list[VideoItem] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            items.append(VideoItem(path))  # missing files are reported by the reader, like any bad file
            continue
        if (path / "FileList.csv").is_file():
            try:
                entries = read_echonet(path)
            except DataError as exc:
                items.append(VideoItem(path, error=RecordError(path, str(exc).removeprefix(f"{path}: "),
                                                               "bad-folder")))
                continue
            for e in entries:
                ref = {k: v for k, v in (("EF", e.ef), ("view", e.view), ("split", e.split)) if v is not None}
                items.append(VideoItem(e.path, e.fps, ref or None))
        elif _is_frame_folder(path):
            items.append(VideoItem(path))
        else:
            videos = find_videos(path)
            if not videos:
                items.append(VideoItem(path, error=RecordError(
                    path, f"folder holds no videos ({', '.join(VIDEO_SUFFIXES)}) or frame folders with fps.txt",
                    "no-videos")))
            items.extend(VideoItem(v) for v in videos)
    return items


# -- the runtime -------------------------------------------------------------------------------------------


@dataclass
class InferReport:
    """The whole run: one entry per video (results or error) and a summary."""

    videos: list[dict[str, Any]]
    header: dict[str, Any]
    wall_s: float
    failed: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_VIDEO_FAILED if self.failed else EXIT_OK

    @property
    def seconds_of_video(self) -> float:
        return float(sum(v["duration_s"] for v in self.videos if v.get("error") is None))

    def to_dict(self) -> dict[str, Any]:
        seconds = self.seconds_of_video
        return {**self.header, "videos": self.videos, "summary": {
            "videos": len(self.videos), "ok": len(self.videos) - len(self.failed), "failed": len(self.failed),
            "failed_files": [{"file": v["file"], **v["error"]} for v in self.failed],
            "seconds_of_video": seconds, "wall_s": self.wall_s,
            "real_time_factor": seconds / self.wall_s if self.wall_s > 0 else None,
            "exit_code": self.exit_code}}


class EchoInfer:
    """A bundle's engine, preprocessing and output decoding, applied to whole videos."""

    def __init__(self, engine: Any, pre: EchoPreprocessing, output: TaskOutput, clips: int = DEFAULT_CLIPS,
                 header: dict[str, Any] | None = None) -> None:
        if clips < 1:
            raise ConfigError(f"--clips must be at least 1, got {clips}")
        if not isinstance(pre, EchoPreprocessing):
            raise DataError(f"echo inference needs an echo preprocessing, got {type(pre).__name__}")
        self.engine = engine
        self.pre = pre
        self.output = output
        self.clips = clips
        self.header = header or {}

    @classmethod
    def open(cls, bundle: str | Path, public_key: Any = None, require_signature: bool = False,
             clips: int = DEFAULT_CLIPS, threads: int | None = None, role: str | None = None,
             backend: str | None = None) -> EchoInfer:
        """Open (and verify: hashes, signature if a key is given) a bundle and its best engine for this machine."""
        from jepa_edge.bundle import open_bundle

        b = open_bundle(bundle, public_key=public_key, require_signature=require_signature)
        if b.modality != "echo":
            raise DataError(f"{bundle}: a {b.modality} bundle; `echo infer` needs an echo bundle")
        options = {"threads": int(threads)} if threads else {}
        engine = b.engine(role=role, backend=backend, **options)
        header = {"report_version": REPORT_VERSION, "bundle": str(b.path), "model": b.manifest["model"].get("name"),
                  "signature_checked": b.signature_checked, "engine": engine.info(),
                  "preprocessing": b.preprocessing.to_dict(), "output": b.output.to_dict(), "clips_per_video": clips,
                  "limits": {"min_side_fraction": MIN_SIDE_FRACTION, "max_aspect": MAX_ASPECT,
                             "colour_fraction": COLOUR_FRACTION, "min_clip_gap": MIN_CLIP_GAP}}
        return cls(engine, b.preprocessing, b.output, clips, header)

    # -- one video ------------------------------------------------------------------------------------
    def prepare(self, item: VideoItem) -> PreparedVideo:
        """Decode, check and preprocess one video into its clips (raises `RecordError`)."""
        if item.error is not None:
            raise item.error
        t0 = time.perf_counter()
        pre = self.pre

        def pick(num_frames: int, fps: float) -> np.ndarray:
            starts = clip_starts(num_frames, fps, pre, self.clips, str(item.path))
            return np.concatenate([pre.frame_indices(num_frames, fps, s) for s in starts])

        video = read_sparse(item.path, pick, fps=item.fps)
        check_frame_size(video.path, video.height, video.width, pre)
        check_colour(video, pre)
        starts = clip_starts(video.num_frames, video.fps, pre, self.clips, video.path)
        # resize + normalise each picked frame once (overlapping clips share frames); both act frame by frame,
        # so the clips equal pre.clip(read_video(path), start) exactly
        frames = pre.normalise(pre.resize_frames(video.frames)).numpy()  # (C, k, S, S)
        pos = [np.searchsorted(video.indices, pre.frame_indices(video.num_frames, video.fps, s)) for s in starts]
        clips = np.ascontiguousarray(np.stack([frames[:, p] for p in pos]), dtype=np.float32)
        return PreparedVideo(item, video, starts, clips, time.perf_counter() - t0)

    def predict(self, prepared: PreparedVideo) -> dict[str, Any]:
        """Run the clips through the engine and decode them: the video's JSON entry."""
        t0 = time.perf_counter()
        logits = np.asarray(self.engine(prepared.clips), dtype=np.float64)
        model_s = time.perf_counter() - t0
        video, pre = prepared.video, self.pre
        bad = [i for i, row in enumerate(logits) if not np.isfinite(row).all()]
        if bad:
            raise RecordError(video.path, f"model output is not finite for clip(s) {bad}", "non-finite")
        span = pre.source_span(video.fps)
        clips = [{"start_frame": s, "start_s": s / video.fps, "end_s": (s + span) / video.fps, **row}
                 for s, row in zip(prepared.starts, self.output.describe(logits), strict=True)]
        return {**self._video_fields(prepared.item, video), "clips": clips, "video": self.summarise(logits),
                "timing_ms": {"decode_preprocess": 1e3 * prepared.decode_s, "model": 1e3 * model_s}, "error": None}

    def summarise(self, logits: np.ndarray) -> dict[str, Any]:
        """Per video: mean (and sample SD across clips) of regressed values; mean probabilities and the decision."""
        out = self.output
        if out.kind == "regression":
            values = out.values(logits)
            return {name: {"mean": float(values[:, j].mean()),
                           "sd": float(values[:, j].std(ddof=1)) if len(values) > 1 else None,
                           "unit": out.unit, "clips": len(values)}
                    for j, name in enumerate(out.names)}
        probs = out.probabilities(logits).mean(axis=0)
        if out.kind == "multiclass":
            decision: Any = out.names[int(probs.argmax())]
        else:
            decision = [n for n, p, t in zip(out.names, probs, out.thresholds, strict=True) if p >= t]
        return {"probabilities": {n: float(p) for n, p in zip(out.names, probs, strict=True)},
                "decision": decision, "clips": len(logits)}

    @staticmethod
    def _video_fields(item: VideoItem, video: SparseVideo | None) -> dict[str, Any]:
        fields: dict[str, Any] = {"file": str(item.path)}
        if video is not None:
            fields.update(frames=video.num_frames, fps=video.fps, duration_s=video.duration_s, width=video.width,
                          height=video.height, colour=video.colour)
        if item.reference:
            fields["reference"] = item.reference
        return fields

    def _failure(self, item: VideoItem, exc: BaseException) -> dict[str, Any]:
        if isinstance(exc, RecordError):
            error = {"reason": exc.reason, "problem": exc.problem, "path": exc.path}
        else:  # anything else is reported, never a traceback on the cart
            error = {"reason": "failed", "problem": f"{type(exc).__name__}: {exc}", "path": str(item.path)}
        return {**self._video_fields(item, None), "clips": [], "video": None, "error": error}

    def _prepare_safe(self, item: VideoItem) -> PreparedVideo | BaseException:
        try:
            return self.prepare(item)
        except Exception as exc:  # noqa: BLE001 - every failure is recorded against its video
            return exc

    def infer_video(self, item: VideoItem | str | Path) -> dict[str, Any]:
        """One video's JSON entry; failures are recorded in it (`error`), never raised."""
        item = item if isinstance(item, VideoItem) else VideoItem(Path(item))
        return self._finish(item, self._prepare_safe(item))

    def _finish(self, item: VideoItem, prepared: PreparedVideo | BaseException) -> dict[str, Any]:
        if isinstance(prepared, BaseException):
            return self._failure(item, prepared)
        try:
            return self.predict(prepared)
        except Exception as exc:  # noqa: BLE001
            return self._failure(item, exc)

    # -- many videos ----------------------------------------------------------------------------------
    def run(self, items: Sequence[VideoItem | str | Path],
            on_result: Callable[[int, dict[str, Any]], None] | None = None, prefetch: bool = True) -> InferReport:
        """Every video in order; with `prefetch`, the next video decodes while the model runs on this one."""
        todo = [i if isinstance(i, VideoItem) else VideoItem(Path(i)) for i in items]
        t0 = time.perf_counter()
        results: list[dict[str, Any]] = []
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="echo-decode") as pool:
            pending = pool.submit(self._prepare_safe, todo[0]) if (prefetch and todo) else None
            for i, item in enumerate(todo):
                if pending is not None:
                    prepared = pending.result()
                    pending = pool.submit(self._prepare_safe, todo[i + 1]) if i + 1 < len(todo) else None
                else:
                    prepared = self._prepare_safe(item)
                result = self._finish(item, prepared)
                results.append(result)
                if on_result is not None:
                    on_result(i, result)
        failed = [r for r in results if r["error"] is not None]
        return InferReport(results, dict(self.header), time.perf_counter() - t0, failed)


def infer_echo(bundle: str | Path, videos: Iterable[str | Path], clips: int = DEFAULT_CLIPS,
               public_key: Any = None, require_signature: bool = False, threads: int | None = None,
               on_result: Callable[[int, dict[str, Any]], None] | None = None, prefetch: bool = True) -> InferReport:
    """`jepa-edge echo infer` as a function: open the bundle, expand the inputs, run every video."""
    runner = EchoInfer.open(bundle, public_key=public_key, require_signature=require_signature, clips=clips,
                            threads=threads)
    return runner.run(expand_inputs(videos), on_result=on_result, prefetch=prefetch)


__all__ = ["DEFAULT_CLIPS", "EXIT_OK", "EXIT_USAGE", "EXIT_VIDEO_FAILED", "EchoInfer", "InferReport",
           "PreparedVideo", "VideoItem", "check_colour", "check_frame_size", "clip_starts", "expand_inputs",
           "infer_echo"]
