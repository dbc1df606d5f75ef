"""What NNCF's overflow fix (7-bit weights) costs against 8-bit weights, on this CPU, for one ECG classifier.

    JEPA_EDGE_DATA=../shared/data .venv/bin/python benchmarks/int8_weights.py --classifier runs/student/classifier

Cart profiles that admit CPUs without a VNNI / AMX dot product get 7-bit weights (`OpenVinoRecipe.overflow_fix`
"auto"; README, below the profile table). The classifier is quantized both ways from the same calibration set and
both IRs run beside the FP32 IR on the PTB-XL fold 9+10 records: decisions at the classifier's thresholds, logit
cosine and macro AUC, INT8 minus FP32 and 7-bit minus 8-bit as paired bootstraps over records. On a VNNI / AMX CPU
this is the cost of the fix; on an AVX2-only CPU the 8-bit row also shows the saturation the fix avoids.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from jepa_edge.data.paths import data_root
from jepa_edge.data.preprocess import EcgPreprocessing
from jepa_edge.devices.isa import detect_isa
from jepa_edge.models.checkpoint import load_classifier
from jepa_edge.quantize import build_calibration_set
from jepa_edge.quantize.openvino_int8 import OpenVinoRecipe, quantize_openvino
from jepa_edge.runtimes import open_engine
from jepa_edge.runtimes.export import export_onnx, export_openvino
from jepa_edge.tasks import metrics as M
from jepa_edge.tasks.probe import load_task_data, sigmoid

FIXES = ("first_layer", "enable")  # NNCF's default (8-bit weights but the first layer), 7-bit weights everywhere


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classifier", required=True, help="a classifier folder (probe, fine-tune or distilled student)")
    ap.add_argument("--data", default=None, help="the folder holding ptbxl/ (default: $JEPA_EDGE_DATA)")
    ap.add_argument("--windows", type=int, default=256, help="calibration windows")
    ap.add_argument("--json", default="benchmarks/results/int8_weights.json")
    args = ap.parse_args()
    root = Path(args.data) if args.data else data_root()
    model, meta = load_classifier(args.classifier)
    pre = EcgPreprocessing.from_dict(meta["preprocessing"])
    task = load_task_data(root / "ptbxl", "ptbxl-super", pre)
    if task.classes != tuple(meta["labels"]):
        raise SystemExit(f"{args.classifier}: labels {meta['labels']} are not PTB-XL superdiagnostic {task.classes}")
    x = np.concatenate([task.val.x, task.test.x]).astype(np.float32)
    y = np.concatenate([task.val.labels, task.test.labels])
    if len(x) != len(y):
        raise SystemExit("this benchmark scores one window per record (a 10 s encoder on 10 s records)")
    thresholds = np.asarray(meta["thresholds"])
    isa = detect_isa()
    work = Path(tempfile.mkdtemp(prefix="int8_weights_"))
    xml = export_openvino(export_onnx(model, work / "model.onnx"), work / "model_fp32.xml")
    calib = build_calibration_set(pre, root, windows=args.windows, labels=list(meta["labels"]))
    fp32_logits = open_engine(xml).outputs(x)["logits"]
    p_fp32 = sigmoid(fp32_logits)
    print(f"CPU {isa.model_name}, INT8 path {isa.int8_path}; {len(x)} PTB-XL fold 9+10 records; {args.classifier}")
    print(f"FP32 IR: macro AUC {M.macro_auc(y, p_fp32):.4f}")
    result = {"cpu": isa.model_name, "int8_path": isa.int8_path, "classifier": str(args.classifier),
              "records": int(len(x)), "fp32_macro_auc": M.macro_auc(y, p_fp32), "int8": {}}
    probs = {}
    for fix in FIXES:
        tick = time.perf_counter()
        int8 = quantize_openvino(xml, work / f"model_int8_{fix}.xml", calib.windows, OpenVinoRecipe(overflow_fix=fix))
        logits = open_engine(int8).outputs(x)["logits"]
        probs[fix] = sigmoid(logits)
        agree = float(((probs[fix] >= thresholds) == (p_fp32 >= thresholds)).mean())
        cos = float(np.mean(np.sum(logits * fp32_logits, 1)
                            / (np.linalg.norm(logits, axis=1) * np.linalg.norm(fp32_logits, axis=1))))
        diff = M.paired_bootstrap_diff(M.macro_auc, y, p_fp32, probs[fix], n_boot=1000, seed=0)
        result["int8"][fix] = {"agreement": agree, "logit_cosine": cos, "macro_auc": M.macro_auc(y, probs[fix]),
                               "auc_minus_fp32": list(diff), "seconds": time.perf_counter() - tick}
        print(f"overflow_fix {fix:<11}: decisions agree {agree:.4f}, logit cosine {cos:.5f}, macro AUC "
              f"{M.macro_auc(y, probs[fix]):.4f}, INT8 - FP32 {diff[0]:+.4f} [{diff[1]:+.4f}, {diff[2]:+.4f}]")
    diff = M.paired_bootstrap_diff(M.macro_auc, y, probs["first_layer"], probs["enable"], n_boot=1000, seed=0)
    result["seven_minus_eight_bit_auc"] = list(diff)
    print(f"7-bit minus 8-bit weights, macro AUC: {diff[0]:+.4f} [{diff[1]:+.4f}, {diff[2]:+.4f}]")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
