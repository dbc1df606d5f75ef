"""Does JEPA pretraining make a better teacher than random weights? PTB-XL superdiagnostic, folds 9+10 pooled.

For every seed, with the project's own probe protocol (`probe_encoder`: frozen encoder, linear head on mean-pooled
tokens, best epoch on fold 9) and everything trained on folds 1-8 only:
  * a randomly initialised encoder (the baseline every other row is paired with);
  * the JEPA-pretrained encoder (EMA target) after increasing step budgets of one run (a learning curve);
  * that encoder fine-tuned end to end (`finetune_classifier`), and the random encoder fine-tuned the same way;
  * two supervised references: hand features + logistic regression, a ~220 k-parameter 1D CNN;
  * downstream: a student distilled (`distill`) from the pretrained-teacher classifier vs one distilled from
    the random-encoder classifier.
Macro AUC on folds 9+10 pooled (136 records); differences are paired bootstraps over records (the same
resampled records for both models), per seed and for the mean over seeds. Embedding std and RankMe of the
pooled training embeddings are printed beside each encoder (a collapsed encoder has both near zero).

    python benchmarks/pretrain_quality.py --quick  # 1 seed, vit-tiny, <= 1000 steps, 300-step students (~25 min)
    python benchmarks/pretrain_quality.py              # 3 seeds, vit-xs, budgets up to 2000 steps (hours on CPU)
    python benchmarks/pretrain_quality.py --compare A.json B.json  # recipe B against recipe A, record by record
    python benchmarks/pretrain_quality.py --quick --recipe '{"extra": {"window_s": 5.0}}'  # a 5 s encoder on crops

The JSON keeps every row's per-record scores, so two runs (two recipes, the same seeds) pair on the same records:
`--compare` prints B - A per row and seed, and for the mean over seeds, as paired bootstraps.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from jepa_edge.config import ConfigError
from jepa_edge.data.paths import find_ptbxl
from jepa_edge.data.preprocess import EcgPreprocessing
from jepa_edge.distill import DistillConfig, distill
from jepa_edge.jepa.ecg_task import ecg_preprocessing, load_pretraining_signals
from jepa_edge.jepa.trainer import PretrainConfig, pretrain
from jepa_edge.models.checkpoint import encoder_spec, load_classifier, load_encoder, save_model
from jepa_edge.models.ecg import EcgEncoder, EcgEncoderSpec
from jepa_edge.tasks import metrics as M
from jepa_edge.tasks.baselines import CnnConfig, hand_features_lr, train_cnn
from jepa_edge.tasks.finetune import FinetuneConfig, finetune_classifier
from jepa_edge.tasks.probe import (
    ProbeConfig,
    TaskData,
    encode_task,
    load_task_data,
    probe_encoder,
    record_scores,
)

RESULTS = Path(__file__).resolve().parent / "results" / "pretrain_quality.json"
TASK = "ptbxl-super"


@dataclass
class Settings:
    size: str = "vit-xs"
    seeds: tuple[int, ...] = (0, 1, 2)
    budgets: tuple[int, ...] = (250, 500, 1000, 2000)
    batch: int = 32
    probe_epochs: int = 150
    finetune_epochs: int = 30
    finetune_random: bool = True
    cnn_epochs: int = 40
    student: str = "vit-tiny"
    distill_steps: int = 300
    n_boot: int = 1000
    finetune: bool = True
    distill: bool = True
    pretrain: dict[str, Any] = field(default_factory=dict)  # PretrainConfig overrides (the recipe under test)


# 1000 pretraining steps separated from random init on all three seeds (250-500 did not), and 300 distillation
# steps (the default) carried the gain to the student where 60 did not (README, "Does pretraining help?")
QUICK = Settings(size="vit-tiny", seeds=(0,), budgets=(250, 500, 1000), batch=16, probe_epochs=100, finetune_epochs=3,
                 finetune_random=False, cnn_epochs=25, distill_steps=300, n_boot=500)


def collapse_stats(train_tokens: torch.Tensor) -> dict[str, float]:
    """Mean per-dimension std of the pooled embeddings and RankMe (exp. entropy of the singular values)."""
    emb = train_tokens.float().mean(dim=1)
    sv = torch.linalg.svdvals(emb - emb.mean(0))
    p = sv / sv.sum() + 1e-12
    return {"embedding_std": float(emb.std(0).mean()), "rankme": float(torch.exp(-(p * p.log()).sum()))}


def pooled(val: np.ndarray, test: np.ndarray) -> np.ndarray:
    return np.concatenate([val, test])


def probe_scores(encoder: torch.nn.Module, pre: EcgPreprocessing, data: TaskData, s: Settings, seed: int
                 ) -> tuple[np.ndarray, dict, Any]:
    """Pooled fold-9+10 logits of the project's linear probe on a frozen encoder, collapse statistics, model."""
    encoder = encoder.eval().requires_grad_(False)
    tokens = encode_task(encoder, data)
    model, meta, _ = probe_encoder(encoder, pre, data, ProbeConfig(epochs=s.probe_epochs, seed=seed, n_boot=10),
                                   tokens)
    scores = pooled(*(record_scores(model.head, tokens[k], getattr(data, k).record_of_window)
                      for k in ("val", "test")))
    return scores, collapse_stats(tokens["train"]), (model, meta)


def finetune_scores(encoder: torch.nn.Module, pre: EcgPreprocessing, data: TaskData, s: Settings, seed: int
                    ) -> tuple[np.ndarray, dict]:
    cfg = FinetuneConfig(epochs=s.finetune_epochs, seed=seed, n_boot=10,
                         probe=ProbeConfig(epochs=s.probe_epochs, seed=seed))
    model, _, metrics = finetune_classifier(encoder, pre, data, cfg)
    scores = pooled(*(record_scores(model, torch.from_numpy(getattr(data, k).x), getattr(data, k).record_of_window,
                                    32) for k in ("val", "test")))
    return scores, {"best_epoch": metrics["fit"]["best_epoch"], "stopped_epoch": metrics["fit"]["stopped_epoch"]}


def snapshot_encoder(run: Path, step: int) -> torch.nn.Module:
    """The EMA target encoder as it was at `step` of a pretraining run (from that step's checkpoint)."""
    encoder, _ = load_encoder(run / "encoder")
    tensors = load_file(str(run / "checkpoints" / f"step_{step:08d}" / "model.safetensors"))
    encoder.load_state_dict({k[len("target."):]: v for k, v in tensors.items() if k.startswith("target.")})
    return encoder


def distilled_scores(teacher_dir: Path, ptbxl: Path, out: Path, s: Settings, seed: int) -> np.ndarray:
    student_dir = distill(DistillConfig(teacher=str(teacher_dir), student=s.student, data=str(ptbxl), out=str(out),
                                        steps=s.distill_steps, batch_size=32, checkpoint_every=s.distill_steps,
                                        task=TASK, seed=seed, evaluate=False, log_every=50))
    model, meta = load_classifier(student_dir)
    data = load_task_data(ptbxl, TASK, EcgPreprocessing.from_dict(meta["preprocessing"]))
    return pooled(*(record_scores(model, torch.from_numpy(sp.x), sp.record_of_window, 32)
                    for sp in (data.val, data.test)))


def mean_auc(y: np.ndarray, s: np.ndarray) -> float:
    """Macro AUC averaged over seeds: s is (records, seeds, classes) so the bootstrap resamples records."""
    return float(np.mean([M.macro_auc(y, s[:, i]) for i in range(s.shape[1])]))


def summarise(y: np.ndarray, scores: dict[str, dict[int, np.ndarray]], baseline: dict[str, str], n_boot: int
              ) -> dict[str, dict]:
    """Per row: AUC per seed (with bootstrap CI), mean over seeds, and the paired difference vs its baseline."""
    table = {}
    for name, by_seed in scores.items():
        seeds = sorted(by_seed)
        row: dict[str, Any] = {"seeds": {}}
        for sd in seeds:
            auc, lo, hi = M.bootstrap_ci(M.macro_auc, y, by_seed[sd], n_boot=n_boot, seed=sd)
            row["seeds"][sd] = {"auc": auc, "ci95": [lo, hi]}
        stack = np.stack([by_seed[sd] for sd in seeds], axis=1)
        row["mean_auc"] = mean_auc(y, stack)
        row["sd_over_seeds"] = float(np.std([row["seeds"][sd]["auc"] for sd in seeds]))
        base = baseline.get(name)
        if base is not None and base in scores and set(scores[base]) >= set(seeds):
            ref = np.stack([scores[base][sd] for sd in seeds], axis=1)
            d, lo, hi = M.paired_bootstrap_diff(mean_auc, y, ref, stack, n_boot=n_boot, seed=0)
            row["vs"] = base
            row["diff"] = {"mean": d, "ci95": [lo, hi]}
            for sd in seeds:
                d1, l1, h1 = M.paired_bootstrap_diff(M.macro_auc, y, scores[base][sd], by_seed[sd], n_boot=n_boot,
                                                     seed=sd)
                row["seeds"][sd]["diff"] = [d1, l1, h1]
        table[name] = row
    return table


def print_table(table: dict[str, dict], extra: dict[str, dict]) -> None:
    print(f"\n{'model':<40} {'macro AUC 9+10 (mean, sd)':>26}  {'paired diff vs baseline [95% CI]':>40}  collapse")
    for name, row in table.items():
        auc = f"{row['mean_auc']:.4f} +- {row['sd_over_seeds']:.4f}"
        diff = ""
        if "diff" in row:
            d, (lo, hi) = row["diff"]["mean"], row["diff"]["ci95"]
            diff = f"{d:+.4f} [{lo:+.4f}, {hi:+.4f}] vs {row['vs']}"
        stats = extra.get(name, {})
        col = f"std {stats['embedding_std']:.3f} RankMe {stats['rankme']:.1f}" if stats else ""
        print(f"{name:<40} {auc:>26}  {diff:>40}  {col}")


def compare(a_path: Path, b_path: Path, n_boot: int) -> dict[str, dict]:
    """Recipe B against recipe A: each row both runs have, paired on the same records and seeds."""
    runs = []
    for path in (a_path, b_path):
        try:
            doc = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise SystemExit(f"{path}: cannot read a pretrain_quality JSON ({e})") from None
        if "scores" not in doc or "labels" not in doc:
            raise SystemExit(f"{path}: no per-record scores (written before they were kept); rerun it")
        runs.append(doc)
    y = np.asarray(runs[0]["labels"])
    if not np.array_equal(y, np.asarray(runs[1]["labels"])):
        raise SystemExit(f"{a_path} and {b_path} were scored on different records: nothing to pair")
    scores: dict[str, dict[int, np.ndarray]] = {}
    baseline: dict[str, str] = {}
    for name in runs[0]["scores"]:
        if name not in runs[1]["scores"] or name.startswith("supervised"):
            continue
        seeds = sorted(set(runs[0]["scores"][name]) & set(runs[1]["scores"][name]), key=int)
        if not seeds:
            continue
        for tag, doc in (("A", runs[0]), ("B", runs[1])):
            scores[f"{name} [{tag}]"] = {int(sd): np.asarray(doc["scores"][name][sd]) for sd in seeds}
        baseline[f"{name} [B]"] = f"{name} [A]"
    if not scores:
        raise SystemExit(f"{a_path} and {b_path} share no row and seed")
    return summarise(y, scores, baseline, n_boot)


def task_inputs(ptbxl: Path, recipe: dict[str, Any]) -> tuple[EcgPreprocessing, TaskData, EcgPreprocessing, TaskData]:
    """(encoder preprocessing, its task data, reference preprocessing, its task data), each fitted on folds 1-8.

    The encoders see the pretraining run's own input and normalisation, so random and pretrained encoders get
    identical inputs; a recipe with its own input (`{"extra": {"window_s": 2.5}}`: crops, a record scored as the
    mean of its windows) is probed on that input, while the supervised references keep the default 500 Hz, 10 s
    records, so their rows mean the same in every run.
    """
    try:
        base = ecg_preprocessing(recipe.get("extra"))
    except ConfigError as e:
        raise SystemExit(f"--recipe: {e}") from None

    def fitted(b: EcgPreprocessing) -> tuple[EcgPreprocessing, TaskData]:
        pre = b.fit(np.stack(load_pretraining_signals(ptbxl, b)[0]))
        return pre, load_task_data(ptbxl, TASK, pre)

    pre, data = fitted(base)
    ref_pre, ref_data = (pre, data) if base == EcgPreprocessing() else fitted(EcgPreprocessing())
    return pre, data, ref_pre, ref_data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compare", nargs=2, type=Path, metavar=("A.json", "B.json"),
                    help="pair two earlier runs record by record (B - A) instead of running")
    ap.add_argument("--data", default=None, help="PTB-XL folder (default: $JEPA_EDGE_DATA)")
    ap.add_argument("--quick", action="store_true", help="one seed, vit-tiny, short budgets")
    ap.add_argument("--size", default=None)
    ap.add_argument("--seeds", default=None, help="comma-separated seeds")
    ap.add_argument("--budgets", default=None, help="comma-separated pretraining step budgets (one run, snapshots)")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--finetune-epochs", type=int, default=None)
    ap.add_argument("--distill-steps", type=int, default=None)
    ap.add_argument("--recipe", default=None, help="JSON of PretrainConfig overrides, e.g. '{\"ema\": 0.996}'")
    ap.add_argument("--no-finetune", action="store_true", help="skip the fine-tuning rows")
    ap.add_argument("--no-distill", action="store_true", help="skip the distilled-student rows")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", default=None, help="folder for the runs (default: a temporary folder)")
    ap.add_argument("--json", default=str(RESULTS))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.compare:
        table = compare(*args.compare, n_boot=1000)
        print(f"A = {args.compare[0]}, B = {args.compare[1]}")
        print_table(table, {})
        for name, row in table.items():
            if "seeds" in row and "diff" in row:
                per_seed = ", ".join(f"seed {sd}: {v['diff'][0]:+.4f} [{v['diff'][1]:+.4f}, {v['diff'][2]:+.4f}]"
                                     for sd, v in row["seeds"].items())
                print(f"  {name} - A per seed: {per_seed}")
        return

    s = Settings(**QUICK.__dict__) if args.quick else Settings()
    if args.size:
        s.size = args.size
    if args.seeds:
        s.seeds = tuple(int(v) for v in args.seeds.split(","))
    if args.budgets:
        try:
            s.budgets = tuple(sorted({int(v) for v in args.budgets.split(",")}))
        except ValueError:
            raise SystemExit(f"--budgets takes comma-separated step counts, got {args.budgets!r}") from None
        if s.budgets[0] < 1:
            raise SystemExit(f"--budgets must be positive step counts, got {args.budgets!r}")
    for name in ("batch", "finetune_epochs", "distill_steps"):
        if getattr(args, name) is not None:
            setattr(s, name, getattr(args, name))
    s.finetune, s.distill = s.finetune and not args.no_finetune, s.distill and not args.no_distill
    if args.recipe:
        s.pretrain = json.loads(args.recipe)
    ptbxl = find_ptbxl(args.data)
    if ptbxl is None:
        raise SystemExit(f"no PTB-XL folder under {args.data or '$JEPA_EDGE_DATA'}")
    work = Path(args.work or tempfile.mkdtemp(prefix="pretrain_quality_"))
    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    def say(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:7.0f} s] {msg}", flush=True)

    pre, data, ref_pre, ref_data = task_inputs(ptbxl, s.pretrain)
    y = pooled(data.val.labels, data.test.labels)
    say(f"PTB-XL {TASK}: {len(data.train.labels)} train / {len(y)} pooled fold 9+10 records "
        f"({len(data.train.record_of_window)} training windows of {pre.window_s:g} s); settings {s}")

    scores: dict[str, dict[int, np.ndarray]] = {}
    extra: dict[str, dict] = {}
    info: dict[str, Any] = {}
    baseline: dict[str, str] = {}

    t = time.perf_counter()
    val, test, info["hand_lr"] = hand_features_lr(ref_data, ref_pre.fs)
    scores["supervised: hand features + LR"] = {sd: pooled(val, test) for sd in s.seeds}
    timings["hand_lr_s"] = time.perf_counter() - t
    say(f"hand features + LR: {M.macro_auc(y, pooled(val, test)):.4f}")

    last = s.budgets[-1]
    for sd in s.seeds:
        t = time.perf_counter()
        val, test, info[f"cnn_seed{sd}"] = train_cnn(ref_data, CnnConfig(epochs=s.cnn_epochs, seed=sd))
        scores.setdefault("supervised: 1D CNN (220k)", {})[sd] = pooled(val, test)
        timings[f"cnn_seed{sd}_s"] = time.perf_counter() - t
        say(f"seed {sd}: 1D CNN {M.macro_auc(y, pooled(val, test)):.4f}")

        torch.manual_seed(sd)
        random_enc = EcgEncoder(EcgEncoderSpec(size=s.size, leads=pre.num_leads, samples=pre.window))
        rnd, extra["random init + probe"], (rnd_model, rnd_meta) = probe_scores(random_enc, pre, data, s, sd)
        scores.setdefault("random init + probe", {})[sd] = rnd
        say(f"seed {sd}: random encoder probe {M.macro_auc(y, rnd):.4f} ({extra['random init + probe']})")

        t = time.perf_counter()
        run = work / f"pretrain_seed{sd}"
        every = math.gcd(*s.budgets)  # a checkpoint at every budget, e.g. 1000, 1500, 2000 -> every 500 steps
        cfg = PretrainConfig(**({"data": str(ptbxl), "model": s.size, "steps": last, "batch_size": s.batch,
                                 "warmup_steps": max(1, last // 10), "seed": sd, "out": str(run),
                                 "checkpoint_every": every, "keep_checkpoints": last // every,
                                 "log_every": 25} | s.pretrain))
        pretrain(cfg, progress=lambda done, total, row, sd=sd: done % 50 == 0 and say(
            f"seed {sd}: pretrain step {done}/{total} loss {row['loss']:.4f}"))
        timings[f"pretrain_seed{sd}_s"] = time.perf_counter() - t
        info[f"pretrain_seed{sd}"] = {"config": {k: v for k, v in cfg.__dict__.items() if k != "extra"},
                                      "metrics_tail": (run / "metrics.jsonl").read_text().splitlines()[-1]}
        for b in s.budgets:
            name = f"JEPA {b} steps + probe"
            enc = snapshot_encoder(run, b)
            sc, extra[name], model_meta = probe_scores(enc, pre, data, s, sd)
            scores.setdefault(name, {})[sd] = sc
            baseline[name] = "random init + probe"
            say(f"seed {sd}: {name} {M.macro_auc(y, sc):.4f} ({extra[name]})")
        teacher_model, teacher_meta = model_meta  # the last budget's classifier

        if s.finetune:
            t = time.perf_counter()
            name = f"JEPA {last} steps + fine-tune"
            sc, info[f"finetune_seed{sd}"] = finetune_scores(snapshot_encoder(run, last), pre, data, s, sd)
            scores.setdefault(name, {})[sd] = sc
            baseline[name] = "random init + fine-tune" if s.finetune_random else "random init + probe"
            timings[f"finetune_seed{sd}_s"] = time.perf_counter() - t
            say(f"seed {sd}: {name} {M.macro_auc(y, sc):.4f}")
            if s.finetune_random:
                torch.manual_seed(sd)
                fresh = EcgEncoder(EcgEncoderSpec(size=s.size, leads=pre.num_leads, samples=pre.window))
                sc, info[f"finetune_random_seed{sd}"] = finetune_scores(fresh, pre, data, s, sd)
                scores.setdefault("random init + fine-tune", {})[sd] = sc
                say(f"seed {sd}: random init + fine-tune {M.macro_auc(y, sc):.4f}")

        if s.distill:
            t = time.perf_counter()
            for tag, model, meta in (("random", rnd_model, rnd_meta), ("pretrained", teacher_model, teacher_meta)):
                teacher_dir = save_model(work / f"teacher_{tag}_seed{sd}", model, meta | {"encoder": encoder_spec(
                    model.encoder)})
                name = f"student {s.student} from {tag}-teacher probe"
                scores.setdefault(name, {})[sd] = distilled_scores(teacher_dir, ptbxl, work / f"student_{tag}_seed{sd}",
                                                                   s, sd)
                say(f"seed {sd}: {name} {M.macro_auc(y, scores[name][sd]):.4f}")
            student_of = {tag: f"student {s.student} from {tag}-teacher probe" for tag in ("random", "pretrained")}
            baseline[student_of["pretrained"]] = student_of["random"]
            timings[f"distill_seed{sd}_s"] = time.perf_counter() - t

    for name in scores:
        if name.startswith("supervised"):
            baseline[name] = "random init + probe"
    table = summarise(y, scores, baseline, s.n_boot)
    print_table(table, extra)
    timings["total_s"] = time.perf_counter() - t_start
    result = {
        "task": TASK, "data": str(ptbxl), "records_pooled": int(len(y)), "train_records": int(len(data.train.labels)),
        "settings": {k: v for k, v in s.__dict__.items()}, "table": table, "collapse": extra, "info": info,
        "timings_s": timings, "torch": torch.__version__, "platform": platform.platform(),
        "threads": args.threads,
        "command": "python benchmarks/pretrain_quality.py " + " ".join(sys.argv[1:]),
        # per-record probabilities of every row (pooled fold 9 then fold 10), for `--compare` of two recipes
        "labels": y.astype(int).tolist(),
        "scores": {name: {str(sd): np.asarray(sc).tolist() for sd, sc in by_seed.items()}
                   for name, by_seed in scores.items()},
    }
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    say(f"wrote {out}")


if __name__ == "__main__":
    main()
