"""The JEPA package has no import cycle: tasks, config and trainer import in any order, lazily or not."""

from __future__ import annotations

import ast
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import jepa_edge.jepa

JEPA_DIR = Path(jepa_edge.jepa.__file__).parent
MODULES = ["trainer", "config", "task", "ecg_task", "echo_task"]


def _jepa_imports(path: Path) -> set[str]:
    """Sibling modules `path` imports anywhere (top level, inside functions, under TYPE_CHECKING)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:  # from . import checkpoint
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("jepa_edge.jepa."):
            found.add(node.module.split(".")[2])
    return found


def test_jepa_module_graph_is_acyclic_even_counting_lazy_imports() -> None:
    graph = {p.stem: _jepa_imports(p) for p in JEPA_DIR.glob("*.py") if p.stem != "__init__"}
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:  # pragma: no cover - the failure message names the cycle
        raise AssertionError(f"import cycle in jepa_edge.jepa: {exc.args[1]}") from exc
    assert order.index("task") < order.index("ecg_task") < order.index("trainer")
    assert order.index("config") < order.index("echo_task") < order.index("trainer")
    assert "trainer" not in graph["ecg_task"] | graph["echo_task"] | graph["task"] | graph["config"]


PERMUTATIONS_SCRIPT = """
import itertools, sys
mods = sys.argv[1:]
for order in itertools.permutations(mods):
    for name in [n for n in sys.modules if n == "jepa_edge" or n.startswith("jepa_edge.")]:
        del sys.modules[name]
    for m in order:
        __import__("jepa_edge.jepa." + m)
    from jepa_edge.jepa.trainer import PretrainConfig, pretrain, JepaTask
    from jepa_edge.jepa.config import PretrainConfig as C
    from jepa_edge.jepa.task import JepaTask as T
    assert C is PretrainConfig and T is JepaTask and callable(pretrain)
print("ok", len(list(itertools.permutations(mods))))
"""


def test_every_import_order_works_from_a_fresh_interpreter() -> None:
    """One fresh interpreter; before each of the 120 orders the jepa_edge package is dropped from sys.modules, so
    every order starts from an unimported package (third-party modules stay cached, which keeps this fast)."""
    res = subprocess.run([sys.executable, "-c", PERMUTATIONS_SCRIPT, *MODULES], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["ok", "120"]
