"""Without a terminal (logs, CI, `| tee`), long verbs print plain progress lines: one per stage, and for long
loops one per 10 % (or per HEARTBEAT_S), each with the elapsed time; rich's bars would draw nothing there."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from jepa_edge.cli.app import PlainProgress

CLI = str(Path(sys.executable).parent / "jepa-edge")  # the installed console script, as a user runs it


def _lines(progress: PlainProgress) -> list[str]:
    return [line for line in progress.console.file.getvalue().splitlines() if line]


def test_plain_progress_prints_each_stage_and_every_tenth() -> None:
    stages = PlainProgress(Console(file=io.StringIO(), width=200))
    task = stages.add_task("build cart-cpu", total=5, status="")
    for i, stage in enumerate(("calibration data", "export", "export", "quantize")):
        stages.update(task, completed=i, status=stage)
    stages.update(task, completed=5, status="done")
    lines = _lines(stages)
    assert [line.split(" after ")[0] for line in lines] == [
        "build cart-cpu: started [0/5, 0%]", "build cart-cpu: calibration data [0/5, 0%]",
        "build cart-cpu: export [1/5, 20%]", "build cart-cpu: quantize [3/5, 60%]", "build cart-cpu: done [5/5, 100%]"]
    assert all(re.search(r" after \d+\.\d s$", line) for line in lines)

    steps = PlainProgress(Console(file=io.StringIO(), width=200))
    task = steps.add_task("pretrain vit-tiny", total=1000, status="")
    for done in range(1, 1001):
        steps.update(task, completed=done, status=f"loss {1 / done:.4f}")  # a new status every step: no flood
    lines = _lines(steps)
    assert len(lines) == 1 + 10 and lines[-1].startswith("pretrain vit-tiny: loss 0.0010 [1000/1000, 100%]")


def test_a_piped_verb_prints_stage_lines_with_elapsed_time(ptbxl_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    env.pop("FORCE_COLOR", None)
    res = subprocess.run([CLI, "pretrain", "--data", str(ptbxl_dir), "--model",
                          "vit-tiny", "--steps", "10", "--batch-size", "4", "--out", str(tmp_path / "run"),
                          "--checkpoint-every", "10"],
                         capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    log = res.stderr
    assert re.search(r"^pretrain vit-tiny: started \[0/10, 0%\] after \d+\.\d s$", log, re.M), log
    assert re.search(r"^pretrain vit-tiny: loss \d\.\d{4} \[5/10, 50%\] after \d+\.\d s$", log, re.M), log
    # the last step is a log step: it carries the collapse watch (embedding std, effective rank)
    assert re.search(r"^pretrain vit-tiny: loss \d\.\d{4}  std \d\.\d{3}  rankme \d+\.\d \[10/10, 100%\] "
                     r"after \d+\.\d s$", log, re.M), log
    res = subprocess.run([CLI, "echo", "synth", str(tmp_path / "echo"),
                          "--count", "2"], capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert re.search(r"^drawing 2 synthetic echo videos: done \[1/1, 100%\] after \d+\.\d s$", res.stderr, re.M)
