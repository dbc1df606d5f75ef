"""C header generated from a bundle manifest: firmware reproduces the model input without Python.

Every number is written with Python's shortest round-trip repr, so a C compiler parses it back to the
very same double the manifest holds. Names carry a `JEPA_EDGE_` / `jepa_edge_` prefix; arrays are
`static const`, so the header can be included in several translation units.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..data.preprocess import RESAMPLE_HALF_LEN_PER_RATE, RESAMPLE_KAISER_BETA, RESAMPLE_MAX_DENOMINATOR
from .manifest import BundleError

GUARD = "JEPA_EDGE_MODEL_H"


def c_string(text: str) -> str:
    """A C string literal for any Unicode text (UTF-8 bytes; non-printable bytes, quotes and '?' escaped)."""
    out = []
    for byte in str(text).encode("utf-8"):
        ch = chr(byte)
        if ch in '"\\?':
            out.append("\\" + ch)
        elif 0x20 <= byte < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def c_double(value: float) -> str:
    value = float(value)
    if not math.isfinite(value):
        raise BundleError(f"cannot write non-finite number {value!r} into the C header")
    text = repr(value)
    return text if ("." in text or "e" in text or "n" in text) else text + ".0"


def _sos_zi(sos: list[list[float]]) -> list[list[float]]:
    from scipy.signal import sosfilt_zi

    try:
        zi = sosfilt_zi(np.asarray(sos, dtype=np.float64))
    except (ValueError, np.linalg.LinAlgError) as exc:
        raise BundleError(f"$.preprocessing.sos: no steady state for these sections ({exc})") from None
    return zi.tolist()


def _device_lines(target: dict[str, Any]) -> list[str]:
    """Runtime settings the device profile pins (threads, OpenVINO precision hint), when it names them."""
    profile = target.get("profile_data") or {}
    profile = profile if isinstance(profile, dict) else {}
    extra = profile.get("extra") or {}  # bundles built before the profile typed these keys kept them here
    settings = {**(extra if isinstance(extra, dict) else {}),
                **{k: profile[k] for k in ("threads", "openvino_precision_hint") if profile.get(k) is not None}}
    lines = ["", "/* ---- device profile: runtime settings firmware should apply ---- */"]
    if isinstance(target.get("profile"), str):
        lines.append(f"#define JEPA_EDGE_DEVICE_PROFILE {c_string(target['profile'])}")
    threads = settings.get("threads")
    if isinstance(threads, int) and not isinstance(threads, bool) and threads >= 0:
        lines.append(f"#define JEPA_EDGE_DEVICE_THREADS {threads}  /* inference threads; 0: the runtime's default */")
    hint = settings.get("openvino_precision_hint")
    if isinstance(hint, str) and hint:
        lines.append(f"#define JEPA_EDGE_OPENVINO_PRECISION_HINT {c_string(hint)}  /* INFERENCE_PRECISION_HINT */")
    return lines if len(lines) > 2 else []


def _array(ctype: str, name: str, values: list[str], per_line: int = 4) -> list[str]:
    if not values:  # C forbids zero-length arrays; keep a placeholder and a zero count beside it
        return [f"static const {ctype} {name}[1] = {{0}};"]
    lines = [f"static const {ctype} {name}[{len(values)}] = {{"]
    for i in range(0, len(values), per_line):
        lines.append("    " + ", ".join(values[i : i + per_line]) + ",")
    lines.append("};")
    return lines


def _tensor_block(side: str, tensors: list[dict[str, Any]]) -> list[str]:
    lines = [f"#define JEPA_EDGE_NUM_{side.upper()} {len(tensors)}"]
    for i, t in enumerate(tensors):
        tag = f"JEPA_EDGE_{side.upper()[:-1]}_{i}"
        dims = [str(d) if isinstance(d, int) else "-1" for d in t["shape"]]
        lines += [
            f"#define {tag}_NAME {c_string(t['name'])}",
            f"#define {tag}_DTYPE {c_string(t['dtype'])}",
            f"#define {tag}_RANK {len(dims)}",
        ]
        if t.get("layout") is not None:
            lines.append(f"#define {tag}_LAYOUT {c_string(t['layout'])}")
        lines += _array("long long", f"jepa_edge_{side[:-1]}_{i}_shape", dims, per_line=8)
    return lines


def _sos_lines(prefix: str, sos: list[list[float]]) -> list[str]:
    lines = [f"#define JEPA_EDGE_{prefix.upper()}NUM_SOS {len(sos)}"]
    lines += _array("double", f"jepa_edge_{prefix}sos", [c_double(v) for row in sos for v in row], per_line=6)
    lines += [
        "/* Steady-state filter state per unit input, rows {z0, z1} per section (scipy.signal.sosfilt_zi):",
        " * initial state of a lead = these values times its first sample. */",
    ]
    lines += _array("double", f"jepa_edge_{prefix}sos_zi", [c_double(v) for row in _sos_zi(sos) for v in row],
                    per_line=2)
    return lines


def _beat_lines(manifest: dict[str, Any]) -> list[str]:
    """What a beat monitor needs besides the engine: where the beat sits in the model window, the RR / template
    fusion (`tasks.beats.RrFusion`), and the quality windows it withholds beats by."""
    from ..data.preprocess import EcgPreprocessing
    from ..tasks.beats import RR_CLIP, BeatContext, BeatDataError, RrFusion

    model, pre = manifest["model"], EcgPreprocessing.from_dict(manifest["preprocessing"])
    try:
        before, after = BeatContext(**(model.get("beat") or {})).offsets(pre)
        fusion = RrFusion.from_dict(model["rr_fusion"]) if model.get("rr_fusion") else None
    except (BeatDataError, KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"$.model.beat / $.model.rr_fusion cannot be read ({exc})") from None
    lines = ["", "/* ---- beat model: its window spans BEFORE samples before the R peak, AFTER from it ---- */",
             f"#define JEPA_EDGE_BEAT_BEFORE_SAMPLES {before}",
             f"#define JEPA_EDGE_BEAT_AFTER_SAMPLES {after}",
             "/* RR / template late fusion: fused = weight @ [logits - mean(logits), features] + bias, class = argmax;",
             " * features: log pre-RR, post-RR against the mean of the last RR_HISTORY RR intervals, log pre / post;",
             " * with RR_SPREAD, the log std and log MAD of the RR_HISTORY log-RR before the pre-RR and the pre-RR's",
             " * distance from their median in MADs (rr_spread_features);",
             " * then per template lead 1 - corr, log range ratio, log slope-length ratio of the beat's QRS",
             " * (+-TEMPLATE_HALF_SAMPLES) against the median QRS of the TEMPLATE_BEATS previous beats; each",
             " * clipped to +-RR_CLIP (toolkit/tasks/beats.py). RR_FUSION 0: the engine's logits decide alone. */",
             f"#define JEPA_EDGE_RR_FUSION {1 if fusion is not None else 0}"]
    if fusion is not None:
        tpl = fusion.template
        lines += [f"#define JEPA_EDGE_RR_HISTORY {fusion.history}",
                  f"#define JEPA_EDGE_RR_CLIP {c_double(RR_CLIP)}",
                  f"#define JEPA_EDGE_RR_NUM_FEATURES {len(fusion.features)}",
                  f"#define JEPA_EDGE_RR_SPREAD {1 if fusion.spread else 0}",
                  f"#define JEPA_EDGE_TEMPLATE_BEATS {tpl.beats if tpl else 0}",
                  f"#define JEPA_EDGE_TEMPLATE_HALF_SAMPLES {tpl.half(pre.fs) if tpl else 0}",
                  f"#define JEPA_EDGE_TEMPLATE_LEADS {tpl.leads if tpl else 0}"]
        lines += _array("double", "jepa_edge_rr_weight", [c_double(v) for row in fusion.weight for v in row],
                        per_line=6)
        lines += _array("double", "jepa_edge_rr_bias", [c_double(v) for v in fusion.bias])
    # devices/stream/monitor.py `quality_preprocessing`: EcgPreprocessing's defaults on the beat lead + one other
    quality = EcgPreprocessing(leads=(pre.leads[0],))
    lines += ["/* Quality windows of the monitor (the beat lead and the stream's first other lead, band-passed, not",
              " * normalised): a beat whose first covering window is flagged is withheld. */",
              f"#define JEPA_EDGE_QUALITY_FS_HZ {quality.fs}",
              f"#define JEPA_EDGE_QUALITY_WINDOW_S {c_double(quality.window_s)}",
              f"#define JEPA_EDGE_QUALITY_HOP_S {c_double(quality.hop_s)}",
              f"#define JEPA_EDGE_QUALITY_WINDOW_SAMPLES {quality.window}",
              f"#define JEPA_EDGE_QUALITY_HOP_SAMPLES {quality.hop}"]
    return lines + _sos_lines("quality_", quality.sos.tolist())


def generate_header(manifest: dict[str, Any]) -> str:
    """The header text for a (schema-valid) manifest. -1 in a shape marks a dynamic dimension (batch)."""
    model = manifest["model"]
    pre = manifest["preprocessing"]
    labels, thresholds = manifest["labels"], manifest["thresholds"]
    lines = [
        "/* Generated by jepa-edge from manifest.json; do not edit. Regenerate with the bundle. */",
        f"#ifndef {GUARD}",
        f"#define {GUARD}",
        "",
        f"#define JEPA_EDGE_MANIFEST_SCHEMA_VERSION {int(manifest['schema_version'])}",
        f"#define JEPA_EDGE_TOOLKIT_VERSION {c_string(manifest['toolkit_version'])}",
        f"#define JEPA_EDGE_MODEL_NAME {c_string(model['name'])}",
        f"#define JEPA_EDGE_MODEL_TASK {c_string(model['task'])}",
        f"#define JEPA_EDGE_MODALITY {c_string(model['modality'])}",
        f"#define JEPA_EDGE_SOURCE_CHECKPOINT_SHA256 {c_string(model['source_checkpoint_sha256'])}",
        f"#define JEPA_EDGE_TARGET {c_string(manifest['target']['kind'])}",
        f"#define JEPA_EDGE_PRECISION {c_string(manifest['quantization']['precision'])}",
        "",
        "/* ---- preprocessing ---- */",
        f"#define JEPA_EDGE_PREPROCESSING {c_string(pre['kind'])}",
    ]
    if pre["kind"] == "ecg":
        leads = pre["leads"]
        sos = pre["sos"]
        mean, std = pre["mean"], pre["std"]
        normalised = mean is not None and std is not None
        lines += [
            f"#define JEPA_EDGE_FS_HZ {int(pre['fs'])}",
            f"#define JEPA_EDGE_WINDOW_S {c_double(pre['window_s'])}",
            f"#define JEPA_EDGE_HOP_S {c_double(pre['hop_s'])}",
            f"#define JEPA_EDGE_WINDOW_SAMPLES {int(pre['window'])}",
            f"#define JEPA_EDGE_HOP_SAMPLES {int(pre['hop'])}",
            f"#define JEPA_EDGE_NUM_LEADS {len(leads)}",
        ]
        lines += _array("char *const", "jepa_edge_lead_names", [c_string(n) for n in leads])
        lines += [
            "/* Resampling from another rate fs_in (what scipy.signal.resample_poly does offline; a stream applies the",
            " * same FIR causally): up/down = fs_out/fs_in reduced, its denominator limited to",
            " * JEPA_EDGE_RESAMPLE_MAX_DENOMINATOR (Python's Fraction.limit_denominator); M = max(up, down); FIR of",
            " * 2*H+1 taps, H = JEPA_EDGE_RESAMPLE_HALF_LEN_PER_RATE * M: g[n] = sinc((n - H) / M) * kaiser(n, beta),",
            " * h = up * g / sum(g), applied to the zero-stuffed input, keeping every down-th sample, aligned so",
            " * that output 0 is input 0 (devices/firmware/src/jefw_dsp.c spells it out). */",
            f"#define JEPA_EDGE_RESAMPLE_MAX_DENOMINATOR {RESAMPLE_MAX_DENOMINATOR}",
            f"#define JEPA_EDGE_RESAMPLE_HALF_LEN_PER_RATE {RESAMPLE_HALF_LEN_PER_RATE}",
            f"#define JEPA_EDGE_RESAMPLE_KAISER_BETA {c_double(RESAMPLE_KAISER_BETA)}",
        ]
        lines += [
            "/* Band-pass: causal cascade of biquads, rows {b0, b1, b2, a0, a1, a2}, a0 == 1,",
            " * direct form II transposed (scipy.signal.sosfilt); start each lead's state at steady state",
            " * for its first sample (scipy.signal.sosfilt_zi scaled by that sample). */",
            f"#define JEPA_EDGE_BANDPASS_LOW_HZ {c_double(pre['bandpass_hz'][0])}",
            f"#define JEPA_EDGE_BANDPASS_HIGH_HZ {c_double(pre['bandpass_hz'][1])}",
            f"#define JEPA_EDGE_FILTER_ORDER {int(pre['filter_order'])}",
        ]
        lines += _sos_lines("", sos)
        lines += [
            "/* Normalisation per lead after filtering: x = clip((x - mean) / std, -clip, clip).",
            " * With JEPA_EDGE_NORMALISED 0 the constants are the identity (mean 0, std 1). */",
            f"#define JEPA_EDGE_NORMALISED {1 if normalised else 0}",
            f"#define JEPA_EDGE_CLIP {c_double(pre['clip'])}",
        ]
        lines += _array("double", "jepa_edge_mean",
                        [c_double(v) for v in (mean if mean is not None else [0.0] * len(leads))])
        lines += _array("double", "jepa_edge_std",
                        [c_double(v) for v in (std if std is not None else [1.0] * len(leads))])
    elif pre["kind"] == "echo":
        lines += [
            "/* Clip: JEPA_EDGE_CLIP_FRAMES frames sampled at JEPA_EDGE_CLIP_FPS from the source video (frame i is the",
            " * source frame nearest to start + i / fps seconds); each frame's short side resized to",
            " * JEPA_EDGE_CLIP_SIZE (bilinear, antialiased) and centre-cropped square; uint8 / 255; grey replicated",
            " * to every channel; then (x - mean[c]) / std[c]. Layout (batch, channels, frames, height, width). */",
            f"#define JEPA_EDGE_CLIP_FRAMES {int(pre['frames'])}",
            f"#define JEPA_EDGE_CLIP_FPS {c_double(pre['fps'])}",
            f"#define JEPA_EDGE_CLIP_SIZE {int(pre['size'])}",
            f"#define JEPA_EDGE_CLIP_CHANNELS {int(pre['channels'])}",
            f"#define JEPA_EDGE_CLIP_RESIZE {c_string(pre['resize'])}",
        ]
        lines += _array("double", "jepa_edge_clip_mean", [c_double(v) for v in pre["mean"]])
        lines += _array("double", "jepa_edge_clip_std", [c_double(v) for v in pre["std"]])
    if model.get("modality") == "ecg-beat":
        lines += _beat_lines(manifest)
    output = model.get("output") or {"kind": "multilabel"}
    kinds = {"multilabel": 0, "multiclass": 1, "regression": 2}
    lines += ["", "/* ---- outputs: how to read logits ---- */",
              "/* JEPA_EDGE_OUTPUT_KIND 0: multi-label, sigmoid(logit) >= threshold; 1: one-of-N, argmax;",
              " * 2: regression, value = logit * JEPA_EDGE_OUTPUT_STD + JEPA_EDGE_OUTPUT_MEAN. */",
              f"#define JEPA_EDGE_OUTPUT_KIND {kinds[output['kind']]}"]
    if output["kind"] == "regression":
        lines += [f"#define JEPA_EDGE_OUTPUT_MEAN {c_double(output['mean'])}",
                  f"#define JEPA_EDGE_OUTPUT_STD {c_double(output['std'])}",
                  f"#define JEPA_EDGE_OUTPUT_UNIT {c_string(output.get('unit', ''))}"]
    lines += [f"#define JEPA_EDGE_NUM_LABELS {len(labels)}"]
    lines += _array("char *const", "jepa_edge_labels", [c_string(n) for n in labels])
    lines += [f"#define JEPA_EDGE_NUM_THRESHOLDS {len(thresholds)}"]
    lines += _array("double", "jepa_edge_thresholds", [c_double(v) for v in thresholds])
    lines += _device_lines(manifest["target"])
    lines += ["", "/* ---- tensors ---- */"]
    lines += _tensor_block("inputs", manifest["io"]["inputs"])
    lines += _tensor_block("outputs", manifest["io"]["outputs"])
    lines += ["", f"#endif /* {GUARD} */", ""]
    return "\n".join(lines)
