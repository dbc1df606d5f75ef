"""CI cannot pass green without the real data, and runs the linter: under CI=true a test that needs
../shared/data FAILS naming the folder; .ci/run runs exactly the README's test command (pytest, then ruff)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
A_DATA_TEST = "tests/test_data.py::test_12_lead_request_on_2_lead_record_names_missing_leads"


def _pytest(env_extra: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", A_DATA_TEST],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_under_ci_a_test_needing_absent_data_fails_with_the_folder_named(tmp_path: Path) -> None:
    empty = tmp_path / "no-data-here"
    empty.mkdir()
    res = _pytest({"CI": "true", "JEPA_EDGE_DATA": str(empty)}, tmp_path)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "1 error" in res.stdout and "skipped" not in res.stdout  # a fixture failure: the test errors out
    assert f"MIT-BIH records not found at {empty / 'mitdb'}" in res.stdout
    assert "CI must run with the real data" in res.stdout
    # a developer without the data still gets a skip, with the same reason
    res = _pytest({"JEPA_EDGE_DATA": str(empty)}, tmp_path)
    assert res.returncode == 0 and "1 skipped" in res.stdout, res.stdout + res.stderr


def _readme_test_command() -> str:
    text = (REPO / "README.md").read_text()
    lines = [line for line in text.splitlines() if "-m pytest -q" in line and line.startswith("python3 -m venv")]
    assert len(lines) == 1, lines
    return lines[0]


def test_ci_runs_exactly_the_readme_test_command_with_ruff() -> None:
    command = _readme_test_command()
    assert command.endswith("&& .venv/bin/ruff check .")
    script = (REPO / ".ci" / "run").read_text().splitlines()
    assert command in script
    assert "export CI=true" in script


def test_ci_stops_with_a_clear_message_when_the_data_folder_is_missing(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    (clone / ".ci").mkdir(parents=True)
    shutil.copy(REPO / ".ci" / "run", clone / ".ci" / "run")  # ../shared/data does not exist beside this clone
    res = subprocess.run(["bash", str(clone / ".ci" / "run")], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert "error: real data folder ../shared/data not found" in res.stderr
    assert not (clone / ".venv").exists()  # stopped before installing anything
