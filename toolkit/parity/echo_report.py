"""HTML sections of the parity report for regression (echo LVEF) and one-of-N (echo view) heads.

Same page, same self-contained rules as `report.py` (whose shared pieces it uses): gates, per-stage accuracy
with bootstrap CIs, stage differences with paired CIs, Bland-Altman of the decoded value (INT8 vs student FP32
and vs teacher), predicted vs true, the perturbation sweep, latency and the bundle's golden checks.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import numpy as np

from .report import (
    _ci,
    _colour,
    _plt,
    _table,
    figure_png,
    gates_section,
    golden_section,
    latency_section,
    page_start,
    regression_bland_altman,
    skipped_section,
    verdict_heading,
)

if TYPE_CHECKING:
    from .run import ParityResult


def _decoded(result: ParityResult, name: str) -> np.ndarray:
    from ..tasks.outputs import TaskOutput

    output = TaskOutput.from_dict(result.output or {})
    return output.values(result.stages[name].logits)[:, 0]


def truth_scatter_figure(result: ParityResult) -> str:
    """Predicted vs true value for every stage (the regression head's first output)."""
    plt = _plt()
    names = list(result.stages)
    truth = np.asarray(result.labels, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    for name in names:
        marker = "o" if name in ("teacher-fp32", "student-fp32") else "x"
        ax.scatter(truth, _decoded(result, name), s=14, marker=marker, color=_colour(names, name), alpha=0.7,
                   label=name)
    everything = np.concatenate([truth, *(_decoded(result, name) for name in names)])
    lo, hi = float(everything.min()), float(everything.max())
    ax.plot([lo, hi], [lo, hi], ":", color="grey", lw=0.8)
    unit = (result.output or {}).get("unit", "")
    ax.set_xlabel(f"true {result.classes[0]} {unit}".strip())
    ax.set_ylabel(f"predicted {result.classes[0]} {unit}".strip())
    ax.set_title("Predicted vs true, per video")
    ax.legend(fontsize=6)
    return figure_png(fig)


def per_class_figure(result: ParityResult) -> str:
    """Per-class accuracy of every stage (one-of-N heads)."""
    plt = _plt()
    names = list(result.stages)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(result.classes) + 2), 3.4))
    width = 0.8 / max(len(names), 1)
    x = np.arange(len(result.classes))
    for i, name in enumerate(names):
        per_class = result.metrics[name]["per_class_accuracy"]
        vals = [np.nan if per_class[c] is None else per_class[c] for c in result.classes]
        ax.bar(x + i * width - 0.4 + width / 2, vals, width, color=_colour(names, name), label=name)
    ax.set_xticks(x, result.classes)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy (recall)")
    ax.set_title("Per-class accuracy per stage")
    ax.legend(fontsize=6)
    return figure_png(fig)


def echo_sweep_figure(result: ParityResult) -> str | None:
    """The headline metric of every swept stage under every perturbation (clean first)."""
    if not result.sweep:
        return None
    plt = _plt()
    names = list(result.stages)
    conditions = list(dict.fromkeys(r["condition"] for r in result.sweep))
    value = {(r["condition"], r["stage"]): r["value"] for r in result.sweep}
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(conditions) + 2), 3.4))
    for stage in dict.fromkeys(r["stage"] for r in result.sweep if r["condition"] != "clean"):
        style = "-o" if stage in ("teacher-fp32", "student-fp32") else "--x"
        ax.plot(range(len(conditions)), [value.get((c, stage), np.nan) for c in conditions], style,
                color=_colour(names, stage), ms=4, lw=1.2, label=stage)
    ax.set_xticks(range(len(conditions)), conditions, fontsize=7)
    ax.set_ylabel(result.sweep[0]["metric"])
    ax.set_title("Under EchoJEPA perturbations (depth attenuation, acoustic shadow)")
    ax.legend(fontsize=6)
    return figure_png(fig)


def _stage_rows(result: ParityResult) -> tuple[list[str], list[list[Any]]]:
    if result.kind == "regression":
        rows = [[name, m["mae"], _ci(m["mae_ci"]), m["bias"], _ci(m["bias_ci"]), m["rmse"], m["r2"]]
                for name, m in result.metrics.items()]
        return ["stage", "MAE", "95% CI", "bias (pred - true)", "95% CI", "RMSE", "R\u00b2"], rows
    rows = [[name, m["accuracy"], _ci(m["accuracy_ci"]), *[m["per_class_accuracy"][c] for c in result.classes]]
            for name, m in result.metrics.items()]
    return ["stage", "accuracy", "95% CI", *[f"acc {c}" for c in result.classes]], rows


def _comparison_rows(result: ParityResult) -> tuple[list[str], list[list[Any]]]:
    rows = []
    for stage, refs in result.comparisons.items():
        for ref, c in refs.items():
            if result.kind == "regression":
                rows.append([stage, ref, c["mae_diff"], _ci(c["mae_diff_ci"]), c["bland_altman_bias"],
                             _ci(c["bland_altman_loa"]), c["mean_abs_value_diff"], c["max_abs_value_diff"],
                             c["cosine_mean"], c["cosine_min"]])
            else:
                rows.append([stage, ref, c["accuracy_diff"], _ci(c["accuracy_diff_ci"]), c["agreement"],
                             *[c["per_class_agreement"][k] for k in result.classes], c["cosine_mean"],
                             c["cosine_min"]])
    if result.kind == "regression":
        return ["stage", "vs", "MAE diff", "paired 95% CI", "Bland-Altman bias", "limits of agreement",
                "mean |diff|", "max |diff|", "cosine mean", "cosine min"], rows
    return ["stage", "vs", "accuracy diff", "paired 95% CI", "argmax agreement",
            *[f"agree {c}" for c in result.classes], "cosine mean", "cosine min"], rows


def _sweep_table(result: ParityResult) -> str:
    stages = list(dict.fromkeys(r["stage"] for r in result.sweep if r["condition"] != "clean"))
    conditions = list(dict.fromkeys(r["condition"] for r in result.sweep))
    value = {(r["condition"], r["stage"]): r["value"] for r in result.sweep}
    params = {r["condition"]: ", ".join(f"{k} {v:g}" for k, v in r["params"].items()) for r in result.sweep}
    rows = [[c, params[c], *[value.get((c, s)) for s in stages]] for c in conditions]
    return _table(["perturbation", "parameters", *stages], rows)


def render_output_html(result: ParityResult) -> str:
    """The report page for a regression or one-of-N head (the echo twin of `report.render_html`)."""
    data = result.data
    output = result.output or {}
    what = (f"regression of {', '.join(result.classes)} ({output.get('unit', '')})" if result.kind == "regression"
            else f"one-of-N over {', '.join(result.classes)}")
    synthetic = " <b>Synthetic videos</b> (not patient data)." if data.get("synthetic") else ""
    rows_are = html.escape(str(data["rows"])) if data.get("rows") else (
        f"{data.get('videos')} videos x {data.get('clips_per_video')} clips (spread over each video, outputs "
        f"averaged per video, each stage with its own preprocessing).")
    parts = [page_start(verdict_heading(result)),
             f"<p>Bundle: <code>{html.escape(str(result.bundle))}</code>. Data: <code>"
             f"{html.escape(str(data.get('root')))}</code>, split {html.escape(str(data.get('split')))}, "
             f"{rows_are}{synthetic} Head: {html.escape(what)}. "
             f"Gates from {html.escape(result.gate_source)}.</p>"]
    parts += gates_section(result)
    pre = data.get("preprocessing") or {}
    if pre:
        parts.append("<h2>Clips per stage</h2>")
        rows = [[name, d["frames"], d["fps"], d["size"], d["frames"] / d["fps"]] for name, d in pre.items()]
        parts.append(_table(["stage", "frames", "fps", "size px", "clip seconds"], rows))
    parts.append("<h2>Accuracy per stage</h2>")
    headers, rows = _stage_rows(result)
    parts.append(_table(headers, rows))
    parts.append("<h2>Differences between stages</h2>")
    headers, rows = _comparison_rows(result)
    parts.append(_table(headers, rows))
    parts += skipped_section(result)
    if result.kind == "regression":
        parts.append("<h2>Predicted vs true</h2>")
        parts.append(f'<img alt="predicted vs true" src="{truth_scatter_figure(result)}">')
        parts.append("<h2>Bland-Altman</h2>")
        parts += regression_bland_altman(result)
    else:
        parts.append("<h2>Per-class accuracy</h2>")
        parts.append(f'<img alt="per-class accuracy" src="{per_class_figure(result)}">')
    sweep = echo_sweep_figure(result)
    if sweep:
        parts.append("<h2>Parity under perturbation</h2>")
        parts.append(f'<img alt="metric vs perturbation" src="{sweep}">')
        parts.append(_sweep_table(result))
    if data.get("stream"):
        parts.append("<h2>The same replays judged as EC57 does</h2>")
        parts.append(_stream_table(data["stream"]))
    if any(s.latency for s in result.stages.values()):
        parts += latency_section(result, unit="clips")
    parts += golden_section(result)
    parts.append("</body></html>")
    return "\n".join(parts)


def _stream_table(stream: dict[str, Any]) -> str:
    """Beat models: EC57 gross figures of each stage's replay, and its agreement with the student FP32's."""
    def pair(d: dict[str, Any]) -> str:
        return " / ".join("-" if d.get(k) is None or d[k] != d[k] else f"{d[k]:.3f}" for k in ("se", "ppv"))

    rows = []
    for name, e in stream.items():
        eps = e.get("episodes_vs_student_fp32") or {}
        rows.append([name, f"{pair(e['veb'])} ({e['veb']['tp'] + e['veb']['fn']} V)", pair(e["sveb"]), e["withheld"],
                     e.get("beat_agreement_vs_student_fp32"),
                     ", ".join(f"{r} {v['found']}/{v['student_fp32_episodes']}" for r, v in eps.items()) or "-",
                     e.get("real_time_factor_median")])
    return _table(["stage", "VEB Se / +P", "SVEB Se / +P", "beats withheld", "beat agreement vs student FP32",
                   "episodes of the student FP32 found", "monitor RTF (median)"], rows)


__all__ = ["echo_sweep_figure", "per_class_figure", "render_output_html", "truth_scatter_figure"]
