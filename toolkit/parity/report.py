"""The parity report as ONE self-contained HTML file: tables plus matplotlib (Agg) PNGs embedded as base64.

No external CSS, scripts or image files, so the report can be mailed, archived in the bundle and opened
offline on a hospital workstation. Plots: ROC teacher vs students per class, per-class AUC differences,
Bland-Altman (probabilities for ECG; LVEF-style regression when present), macro AUC vs perturbation
severity, and a latency table.
"""

from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING, Any

import numpy as np

from ..tasks import metrics

if TYPE_CHECKING:
    from .run import ParityResult

STAGE_COLOURS = ["#1b1b1b", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig: Any) -> str:
    """A matplotlib figure as a base64 PNG data URI (the figure is closed)."""
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _colour(names: list[str], name: str) -> str:
    return STAGE_COLOURS[names.index(name) % len(STAGE_COLOURS)]


def roc_figure(result: ParityResult) -> str:
    plt = _plt()
    names = list(result.stages)
    n = len(result.classes)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.2), squeeze=False)
    for c, cls in enumerate(result.classes):
        ax = axes[0, c]
        y = result.labels[:, c]
        for name in names:
            fpr, tpr, _ = metrics.roc_curve(y, result.stages[name].logits[:, c])
            if np.isnan(fpr).any():
                continue
            auc = metrics.auc(y, result.stages[name].logits[:, c])
            style = "-" if name in ("teacher-fp32", "student-fp32") else "--"
            ax.plot(fpr, tpr, style, color=_colour(names, name), lw=1.3, label=f"{name} {auc:.3f}")
        ax.plot([0, 1], [0, 1], ":", color="grey", lw=0.8)
        ax.set_title(cls)
        ax.set_xlabel("1 - specificity")
        if c == 0:
            ax.set_ylabel("sensitivity")
        ax.legend(fontsize=6, loc="lower right")
    fig.suptitle("ROC per class: teacher vs student stages (AUC in legend)", y=1.04)
    return figure_png(fig)


def auc_diff_figure(result: ParityResult) -> str:
    plt = _plt()
    stages = [s for s in result.comparisons]
    names = list(result.stages)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(result.classes) + 2), 3.4))
    width = 0.8 / max(len(stages), 1)
    x = np.arange(len(result.classes))
    for i, stage in enumerate(stages):
        diffs = result.comparisons[stage]["teacher"]["per_class_auc_diff"]
        vals = [np.nan if diffs[c] is None else diffs[c] for c in result.classes]
        ax.bar(x + i * width - 0.4 + width / 2, vals, width, color=_colour(names, stage), label=stage)
    drop = result.gates.get("auc_drop_teacher")
    if drop is not None:
        ax.axhline(-drop, color="red", ls=":", lw=1, label=f"-{drop:g} (teacher gate, macro)")
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xticks(x, result.classes)
    ax.set_ylabel("AUC(stage) - AUC(teacher)")
    ax.set_title("Per-class AUC difference vs teacher FP32")
    ax.legend(fontsize=7)
    return figure_png(fig)


def bland_altman_figure(reference: np.ndarray, test: np.ndarray, title: str, unit: str = "") -> str:
    plt = _plt()
    reference = np.asarray(reference, dtype=np.float64).reshape(-1)
    test = np.asarray(test, dtype=np.float64).reshape(-1)
    bias, lo, hi = metrics.bland_altman(reference, test)
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.scatter((reference + test) / 2, test - reference, s=6, alpha=0.6)
    for v, label in ((bias, "bias"), (lo, "-1.96 SD"), (hi, "+1.96 SD")):
        ax.axhline(v, color="red" if label == "bias" else "grey", ls="-" if label == "bias" else "--", lw=1)
        ax.annotate(f"{label} {v:.3g}", (1.0, v), xycoords=("axes fraction", "data"), fontsize=7, ha="right",
                    va="bottom")
    ax.set_xlabel(f"mean of the two {unit}".strip())
    ax.set_ylabel(f"difference {unit}".strip())
    ax.set_title(title)
    return figure_png(fig)


def sweep_figure(result: ParityResult) -> str | None:
    if not result.sweep:
        return None
    plt = _plt()
    names = list(result.stages)
    clean = {r["stage"]: r["macro_auc"] for r in result.sweep if r["kind"] == "clean"}
    kinds = [k for k in dict.fromkeys(r["kind"] for r in result.sweep) if k != "clean"]
    fig, axes = plt.subplots(1, len(kinds), figsize=(3.3 * len(kinds), 3.2), squeeze=False)
    for i, kind in enumerate(kinds):
        ax = axes[0, i]
        rows = [r for r in result.sweep if r["kind"] == kind]
        severities = list(dict.fromkeys(r["severity"] for r in rows))
        labels = ["clean", *[str(s) for s in severities]]
        for stage in dict.fromkeys(r["stage"] for r in rows):
            vals = [clean.get(stage, np.nan)] + [next(r["macro_auc"] for r in rows
                                                      if r["stage"] == stage and r["severity"] == s)
                                                 for s in severities]
            style = "-o" if stage in ("teacher-fp32", "student-fp32") else "--x"
            ax.plot(range(len(labels)), vals, style, color=_colour(names, stage), ms=3, lw=1.2, label=stage)
        ax.set_xticks(range(len(labels)), labels, fontsize=7)
        ax.set_title(f"{kind} ({rows[0]['unit']})")
        if i == 0:
            ax.set_ylabel("macro AUC")
            ax.legend(fontsize=6)
    fig.suptitle("Macro AUC vs perturbation severity (mildest to harshest)", y=1.04)
    return figure_png(fig)


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "&ndash;"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "&ndash;" if not np.isfinite(v) else f"{v:.{digits}f}"
    return html.escape(str(v))


def _table(headers: list[str], rows: list[list[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _ci(pair: list[Any]) -> str:
    lo, hi = pair
    return "\u2013" if lo is None or hi is None else f"[{lo:.4f}, {hi:.4f}]"


CSS = """body{font-family:system-ui,sans-serif;margin:24px;max-width:1200px;color:#1b1b1b}
table{border-collapse:collapse;margin:8px 0 18px}th,td{border:1px solid #ccc;padding:3px 8px;font-size:13px}
th{background:#f0f0f0}.pass{color:#137333;font-weight:600}.fail{color:#b3261e;font-weight:600}
img{max-width:100%;display:block;margin:8px 0 18px}code{background:#f4f4f4;padding:1px 4px}"""


def page_start(title_html: str) -> str:
    """Opening of the report page: doctype, inline CSS, the verdict heading."""
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>jepa-edge parity report</title>"
            f"<style>{CSS}</style></head><body>\n{title_html}")


def verdict_heading(result: ParityResult) -> str:
    verdict = '<span class="pass">PASSED</span>' if result.passed else '<span class="fail">FAILED</span>'
    return f"<h1>Parity report: {verdict}</h1>"


def gates_section(result: ParityResult) -> list[str]:
    parts = ["<h2>Gates</h2>"]
    gate_rows = [[g.stage, g.gate, f"{g.metric} vs {g.reference}", g.value, ("<= " if g.direction == "max" else ">= ")
                  + f"{g.limit:g}", "pass" if g.passed else "FAIL"] for g in result.gate_results]
    table = _table(["stage", "gate", "metric", "value", "limit", "result"], gate_rows)
    parts.append(table.replace("<td>FAIL</td>", '<td class="fail">FAIL</td>')
                 .replace("<td>pass</td>", '<td class="pass">pass</td>'))
    details = [g for g in result.gate_results if g.detail and g.stage != "bundle golden vectors"]
    if details:
        parts.append("<p>" + "<br>".join(f"<b>{html.escape(g.stage)}</b> {html.escape(g.gate)}: "
                                         f"{html.escape(g.detail)}" for g in details) + "</p>")
    if result.gates_not_applied:
        parts.append("<p>Gates not applied: " + "; ".join(f"<b>{html.escape(k)}</b>: {html.escape(v)}"
                                                           for k, v in result.gates_not_applied.items()) + "</p>")
    return parts


def skipped_section(result: ParityResult) -> list[str]:
    if not result.skipped:
        return []
    return ["<p>Stages not run here: " + "; ".join(f"<b>{html.escape(k)}</b>: {html.escape(v)}"
                                                   for k, v in result.skipped.items()) + "</p>"]


def regression_bland_altman(result: ParityResult) -> list[str]:
    """One Bland-Altman plot and summary row per entry of `result.regression` (e.g. LVEF INT8 vs FP32)."""
    parts = []
    for name, reg in result.regression.items():
        src = bland_altman_figure(np.asarray(reg["reference"]), np.asarray(reg["test"]), f"{name}: Bland-Altman",
                                  reg.get("unit", ""))
        parts.append(f'<img alt="Bland-Altman {html.escape(name)}" src="{src}">')
        parts.append(_table(["quantity", "MAE reference", "MAE test", "bias", "limits of agreement"],
                            [[name, reg["mae_reference"], reg["mae_test"], reg["bias"], _ci(reg["loa"])]]))
    return parts


def latency_section(result: ParityResult, unit: str = "windows") -> list[str]:
    rows = [[name, s.info.get("backend"), s.info.get("precision"), s.info.get("threads"),
             s.latency.get("batch1_median_ms"), s.latency.get("batch1_p90_ms"),
             s.latency.get(f"throughput_{unit}_per_s")] for name, s in result.stages.items()]
    return ["<h2>Latency (this machine)</h2>",
            _table(["stage", "back end", "precision", "threads", "batch-1 median ms", "batch-1 p90 ms",
                    f"{unit}/s (batched)"], rows)]


def golden_section(result: ParityResult) -> list[str]:
    if result.golden is None:
        return []
    rows = [[c["kind"], c["subject"], "skipped" if c["ok"] is None else ("ok" if c["ok"] else "FAILED"),
             c["detail"]] for c in result.golden["checks"]]
    return ["<h2>Golden vectors and bundle checks</h2>", _table(["check", "subject", "result", "detail"], rows)]


def accuracy_sections(result: ParityResult) -> list[str]:
    """Accuracy per stage, differences between stages, ROC curves and per-class AUC differences."""
    parts = ["<h2>Accuracy per stage</h2>"]
    rows = []
    for name in result.stages:
        m = result.metrics[name]
        rows.append([name, m["macro_auc"], _ci(m["macro_auc_ci"]), m["macro_sensitivity_at_specificity"], m["ece"],
                     *[m["per_class_auc"][c] for c in result.classes]])
    spec = next(iter(result.metrics.values()))["specificity"] if result.metrics else 0.9
    parts.append(_table(["stage", "macro AUC", "95% CI", f"sens @ spec {spec:g}", "ECE",
                         *[f"AUC {c}" for c in result.classes]], rows))

    parts.append("<h2>Differences between stages</h2>")
    rows = []
    for stage, refs in result.comparisons.items():
        for ref, c in refs.items():
            rows.append([stage, ref, c["macro_auc_diff"], _ci(c["macro_auc_diff_ci"]), c["agreement"],
                         c["record_agreement"], c["cosine_mean"], c["cosine_min"], c["max_abs_logit_diff"]])
    parts.append(_table(["stage", "vs", "macro AUC diff", "paired 95% CI", "decision agreement",
                         "records all-equal", "cosine mean", "cosine min", "max |logit diff|"], rows))
    parts += skipped_section(result)

    parts.append("<h2>ROC curves</h2>")
    parts.append(f'<img alt="ROC curves" src="{roc_figure(result)}">')
    parts.append("<h2>Per-class AUC differences</h2>")
    parts.append(f'<img alt="per-class AUC differences" src="{auc_diff_figure(result)}">')
    return parts


def unlabelled_section(result: ParityResult) -> list[str]:
    """Without diagnoses: how far each stage's decisions, logits and embeddings are from its references."""
    rows = [[stage, ref, c["agreement"], c["record_agreement"], c["cosine_mean"], c["cosine_min"],
             c["mean_abs_logit_diff"], c["max_abs_logit_diff"]]
            for stage, refs in result.comparisons.items() for ref, c in refs.items()]
    return ["<h2>Differences between stages (unlabelled)</h2>",
            _table(["stage", "vs", "decision agreement", "records all-equal", "cosine mean", "cosine min",
                    "mean |logit diff|", "max |logit diff|"], rows), *skipped_section(result)]


def data_section(result: ParityResult) -> list[str]:
    """Records skipped with their reason, and diagnosis codes the mapping table does not know."""
    parts = []
    report = result.data.get("skip_report") or {}
    if report.get("skipped"):
        counts = ", ".join(f"{n} {r}" for r, n in sorted(report["counts"].items()))
        parts.append(f"<p>Records skipped: {report['skipped']} ({html.escape(counts)}).</p>")
        parts.append(_table(["record", "reason", "problem"],
                            [[r["path"], r["reason"], r["problem"]] for r in report["records"][:50]]))
    unmapped = result.data.get("unmapped_codes") or {}
    if unmapped:
        parts.append(f"<p>Diagnosis codes outside the mapping table ({sum(unmapped.values())} occurrences): "
                     + ", ".join(f"{html.escape(str(k))} &times;{v}" for k, v in unmapped.items()) + "</p>")
    return parts


def strata_figure(result: ParityResult, block: dict[str, Any]) -> str:
    """One panel per stratum value: macro AUC with its CI per stage (agreement vs teacher when unlabelled)."""
    plt = _plt()
    names = list(result.stages)
    groups = block["groups"]
    fig, axes = plt.subplots(1, len(groups), figsize=(max(3.0, 2.6 * len(groups)), 3.2), squeeze=False,
                             sharey=True)
    for ax, group in zip(axes[0], groups, strict=True):
        for i, name in enumerate(names):
            if result.labelled:
                m = group["stages"][name]
                value, (lo, hi) = m["macro_auc"], m["macro_auc_ci"]
            else:
                value = 1.0 if name == "teacher-fp32" else group["comparisons"][name]["teacher"]["agreement"]
                lo = hi = None
            if value is None:
                continue
            err = None if lo is None or hi is None else [[value - lo], [hi - value]]
            ax.bar(i, value, color=_colour(names, name), yerr=err, capsize=3, label=name)
        ax.set_title(f"{block['column']} = {group['value']} (n={group['records']})", fontsize=8)
        ax.set_xticks([])
    axes[0, 0].set_ylabel("macro AUC (95% CI)" if result.labelled else "decision agreement vs teacher")
    axes[0, 0].legend(fontsize=6, loc="lower left")
    fig.suptitle(f"Parity per {block['column']}", y=1.04)
    return figure_png(fig)


def strata_sections(result: ParityResult) -> list[str]:
    parts = []
    for block in result.strata:
        parts.append(f"<h2>Parity per {html.escape(block['column'])}</h2>")
        rows = []
        for group in block["groups"]:
            for name in result.stages:
                comp = group["comparisons"].get(name, {})
                teacher, student = comp.get("teacher", {}), comp.get("student-fp32", {})
                auc = (group.get("stages") or {}).get(name, {})
                rows.append([group["value"], group["records"], name, auc.get("macro_auc"),
                             _ci(auc.get("macro_auc_ci", [None, None])), teacher.get("macro_auc_diff"),
                             _ci(teacher.get("macro_auc_diff_ci", [None, None])), student.get("macro_auc_diff"),
                             _ci(student.get("macro_auc_diff_ci", [None, None])), teacher.get("agreement"),
                             student.get("agreement"), student.get("cosine_mean")])
        parts.append(_table([block["column"], "records", "stage", "macro AUC", "95% CI", "vs teacher",
                             "paired 95% CI", "vs student FP32", "paired 95% CI", "agreement vs teacher",
                             "agreement vs student FP32", "cosine vs student FP32"], rows))
        parts.append(f'<img alt="parity per {html.escape(block["column"])}" src="{strata_figure(result, block)}">')
    return parts


def render_html(result: ParityResult) -> str:
    """The whole report as one HTML string (images inline as data:image/png;base64)."""
    if result.kind != "multilabel":  # regression / one-of-N heads (echo): their own sections
        from .echo_report import render_output_html

        return render_output_html(result)
    data = result.data
    where = (f"folds {data.get('folds')}" if data.get("folds") else "every record") + (
        f", label set {data.get('label_set')}" if data.get("label_set") else "")
    parts = [page_start(verdict_heading(result)),
             f"<p>Bundle: <code>{html.escape(str(result.bundle))}</code>. Data: <code>"
             f"{html.escape(str(data.get('root')))}</code> ({html.escape(str(data.get('format', 'ptbxl')))}, "
             f"{html.escape(where)}), {data.get('records')} records"
             f"{'' if result.labelled else ', unlabelled: agreement, cosine and logit differences only'}. "
             f"Gates from {html.escape(result.gate_source)}.</p>"]
    parts += data_section(result)
    parts += gates_section(result)
    if result.labelled:
        parts += accuracy_sections(result)
    else:
        parts += unlabelled_section(result)
    parts += strata_sections(result)

    parts.append("<h2>Bland-Altman</h2>")
    int8 = [s for s in result.gated_stages if s in result.stages]
    if int8 and "student-fp32" in result.stages:
        ref = result.stages["student-fp32"].probabilities
        test = result.stages[int8[0]].probabilities
        src = bland_altman_figure(ref, test, f"probabilities: {int8[0]} vs student-fp32 (all classes)")
        parts.append(f'<img alt="Bland-Altman probabilities" src="{src}">')
    parts += regression_bland_altman(result)

    sweep = sweep_figure(result)
    if sweep:
        parts.append("<h2>Parity under perturbation</h2>")
        parts.append(f'<img alt="macro AUC vs perturbation severity" src="{sweep}">')

    parts += latency_section(result)
    parts += golden_section(result)
    parts.append("</body></html>")
    return "\n".join(parts)
