"""Synthetic echocardiograms with known ejection fraction and view, for tests and the demo.

No redistributable real echo exists on these machines, so this draws one: a sector-shaped (fan) field
from a top apex, a beating ellipsoidal left ventricle (dark blood pool inside a bright myocardial wall),
view-specific neighbours (right ventricle in A4C, aortic root in PLAX), multiplicative Rayleigh speckle
that moves with the tissue, and depth gain falloff. The LV is a prolate ellipsoid, volume ~ a * b^2:
end-systole shrinks the long axis a little and the short axis by whatever gives the requested EF.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..data.errors import DataError
from .echo import write_frame_folder, write_video

VIEWS = ("A4C", "A2C", "PLAX")


@dataclass(frozen=True)
class SyntheticEchoConfig:
    """Ranges the generator draws from; every video is a pure function of (config, seed)."""

    size: int = 112
    fps_choices: tuple[float, ...] = (25.0, 30.0, 50.0)
    seconds: float = 3.0
    ef_range: tuple[float, float] = (20.0, 75.0)
    heart_rate_bpm: tuple[float, float] = (55.0, 110.0)
    long_axis_shortening: float = 0.12
    speckle: float = 0.6  # 0: clean; 1: fully developed Rayleigh speckle
    views: tuple[str, ...] = VIEWS


@dataclass(frozen=True)
class SyntheticEcho:
    frames: np.ndarray  # uint8 (T, size, size)
    fps: float
    ef: float  # percent
    view: str
    heart_rate_bpm: float
    edv: float  # arbitrary units (a * b^2 of the ellipsoid in pixels^3)
    esv: float


def _sector_mask(size: int, yy: np.ndarray, xx: np.ndarray, half_angle: float) -> np.ndarray:
    apex_y, apex_x = -0.02 * size, size / 2
    r = np.hypot(yy - apex_y, xx - apex_x)
    theta = np.arctan2(xx - apex_x, yy - apex_y)
    return (np.abs(theta) <= half_angle) & (r <= 1.02 * size) & (r >= 0.04 * size)


def _ellipse(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, a: float, b: float, angle: float) -> np.ndarray:
    """Normalised radius (1 on the boundary) of an ellipse with semi-axes a (along `angle`) and b."""
    c, s = math.cos(angle), math.sin(angle)
    dy, dx = yy - cy, xx - cx
    u = dy * c + dx * s
    v = -dy * s + dx * c
    return np.sqrt((u / a) ** 2 + (v / b) ** 2)


def _cycle(t: np.ndarray, period: float, phase: float) -> np.ndarray:
    """Contraction state 0 (end-diastole) .. 1 (end-systole): quick systole (35 %), slower filling."""
    u = ((t / period) + phase) % 1.0
    systole = 0.35
    return np.where(u < systole, np.sin(np.pi * u / (2 * systole)) ** 2,
                    np.cos(np.pi * (u - systole) / (2 * (1 - systole))) ** 2)


def synthesize_echo(seed: int, config: SyntheticEchoConfig | None = None, ef: float | None = None,
                    view: str | None = None, fps: float | None = None) -> SyntheticEcho:
    """One synthetic echo video; EF (percent), view and fps are drawn from the config unless given."""
    cfg = config or SyntheticEchoConfig()
    rng = np.random.default_rng(seed)
    ef = float(rng.uniform(*cfg.ef_range)) if ef is None else float(ef)
    if not (0.0 < ef < 100.0):
        raise DataError(f"ejection fraction {ef} must be in (0, 100) percent")
    view = str(rng.choice(cfg.views)) if view is None else view
    if view not in VIEWS:
        raise DataError(f"unknown view {view!r}; choose from {VIEWS}")
    fps = float(rng.choice(cfg.fps_choices)) if fps is None else float(fps)
    hr = float(rng.uniform(*cfg.heart_rate_bpm))
    n = cfg.size
    t = np.arange(int(round(cfg.seconds * fps))) / fps
    state = _cycle(t, 60.0 / hr, float(rng.uniform(0, 1)))

    # geometry (pixels), jittered per video
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    jitter = rng.uniform(-1, 1, size=6)
    if view == "PLAX":  # long axis lies across the image
        cy, cx, angle = n * (0.50 + 0.04 * jitter[0]), n * (0.52 + 0.04 * jitter[1]), math.pi / 2 + 0.15 * jitter[2]
        a_ed, b_ed = n * (0.30 + 0.02 * jitter[3]), n * (0.14 + 0.015 * jitter[4])
    else:  # apical views: long axis points at the apex
        cy, cx, angle = n * (0.50 + 0.04 * jitter[0]), n * (0.50 + 0.05 * jitter[1]), 0.12 * jitter[2]
        a_ed, b_ed = n * (0.30 + 0.02 * jitter[3]), n * (0.15 + 0.015 * jitter[4])
    la = cfg.long_axis_shortening
    b_ratio = math.sqrt((1 - ef / 100.0) / (1 - la))  # V ~ a b^2: (1-la) * k^2 = ESV/EDV = 1 - EF
    wall = n * (0.045 + 0.005 * jitter[5])
    sector = _sector_mask(n, yy, xx, half_angle=math.radians(37))
    depth = np.clip(yy / n, 0, 1)
    background = 0.22 + 0.08 * ndimage.gaussian_filter(rng.standard_normal((n, n)), n / 10)

    speckle_field = rng.rayleigh(1.0, size=(n, n)) / math.sqrt(math.pi / 2)  # mean 1
    frames = np.empty((len(t), n, n), dtype=np.uint8)
    for i, s in enumerate(state):
        a = a_ed * (1 - la * s)
        b = b_ed * (1 - (1 - b_ratio) * s)
        thick = wall * (1 + 0.4 * s)  # the wall thickens as the cavity empties
        r_in = _ellipse(yy, xx, cy, cx, a, b, angle)
        r_out = _ellipse(yy, xx, cy, cx, a + thick, b + thick, angle)
        img = background.copy()
        img[r_out <= 1] = 0.75
        img[r_in <= 1] = 0.04
        if view == "A4C":  # right ventricle beside the LV, beating in phase
            rv = _ellipse(yy, xx, cy + 0.03 * n, cx - 0.33 * n, 0.8 * a, 0.6 * b, angle + 0.2)
            img[(rv > 1) & (rv <= 1 + thick / (0.6 * b))] = 0.7
            img[rv <= 1] = 0.05
        elif view == "PLAX":  # aortic root, above the LV's far end
            ao = np.hypot(yy - (cy - 0.28 * n), xx - (cx + 0.22 * n))
            img[(ao > 0.08 * n) & (ao <= 0.11 * n)] = 0.7
            img[ao <= 0.08 * n] = 0.05
        # speckle moves with the contraction: sample the static field through a radial squeeze
        scale = 1 - 0.06 * s
        coords = np.stack([cy + (yy - cy) * scale, cx + (xx - cx) * scale])
        moving = ndimage.map_coordinates(speckle_field, coords, order=1, mode="reflect")
        noise = (1 - cfg.speckle) + cfg.speckle * moving * (0.85 + 0.3 * rng.random((n, n)))
        img = ndimage.gaussian_filter(img * noise, 0.6) * (1.0 - 0.35 * depth)
        img = np.where(sector, img, 0.0)
        frames[i] = np.clip(img * 255, 0, 255).astype(np.uint8)
    edv = a_ed * b_ed**2
    esv = a_ed * (1 - la) * (b_ed * b_ratio) ** 2
    return SyntheticEcho(frames, fps, 100.0 * (edv - esv) / edv, view, hr, edv, esv)


def synthetic_dataset(count: int, seed: int = 0, config: SyntheticEchoConfig | None = None) -> list[SyntheticEcho]:
    """`count` independent videos (video i uses seed (seed, i))."""
    return [synthesize_echo(int(np.random.SeedSequence([seed, i]).generate_state(1)[0]), config)
            for i in range(count)]


def write_synthetic_echonet(out: str | Path, count: int = 24, seed: int = 0, fmt: str = "avi",
                            config: SyntheticEchoConfig | None = None,
                            splits: tuple[float, float] = (0.7, 0.15)) -> Path:
    """Write an EchoNet-Dynamic-shaped folder: Videos/*.avi|*.mp4 (or frame folders) and FileList.csv (+ View).

    `fmt` is "avi", "mp4" or "frames". The README must say these are synthetic, not patient data.
    """
    if fmt not in ("avi", "mp4", "frames"):
        raise DataError(f"unknown video format {fmt!r}; choose avi, mp4 or frames")
    out = Path(out)
    (out / "Videos").mkdir(parents=True, exist_ok=True)
    videos = synthetic_dataset(count, seed, config)
    n_train = int(round(splits[0] * count))
    n_val = int(round(splits[1] * count))
    rows = []
    for i, v in enumerate(videos):
        name = f"synth_{i:05d}"
        if fmt == "frames":
            write_frame_folder(out / "Videos" / name, v.frames, v.fps)
            file_name = name
        else:
            file_name = f"{name}.{fmt}"
            write_video(out / "Videos" / file_name, v.frames, v.fps)
        split = "TRAIN" if i < n_train else "VAL" if i < n_train + n_val else "TEST"
        rows.append({"FileName": file_name, "EF": f"{v.ef:.3f}", "ESV": f"{v.esv:.1f}", "EDV": f"{v.edv:.1f}",
                     "FrameHeight": v.frames.shape[1], "FrameWidth": v.frames.shape[2], "FPS": f"{v.fps:g}",
                     "NumberOfFrames": v.frames.shape[0], "Split": split, "View": v.view})
    with open(out / "FileList.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "SYNTHETIC.txt").write_text("Synthetic echocardiograms drawn by jepa_edge.data.synthetic_echo; "
                                       "not patient data. EF and view are the generator's ground truth.\n")
    return out
