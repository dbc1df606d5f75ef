"""The typer application every verb module registers on."""

from __future__ import annotations

import contextlib
import functools
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

app = typer.Typer(
    name="jepa-edge",
    help="JEPA foundation models for cardiology, from server GPUs to bedside devices.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Datasets: download, pack into shards.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


REPORT_LINE = ("this is a bug in jepa-edge, not a problem with your input: please report it with the traceback "
               "above and the command you ran")


def user_errors(func: F) -> F:
    """Turn the project's own errors (bad files, bad configs, failed gates) into a one-line message and exit 2.

    Only JepaEdgeError (the root of every user-fixable error) and FileNotFoundError are caught: anything else is a
    bug, so it keeps its traceback, gets a line asking to report it, and exits 1.
    """
    from ..errors import JepaEdgeError

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (JepaEdgeError, FileNotFoundError) as exc:
            # soft_wrap: file paths in messages stay on one line; escape: "[...]" in messages is not markup
            console.print("[bold red]error:[/] " + escape(str(exc)), soft_wrap=True, highlight=False)
            raise typer.Exit(code=2) from None
        except (typer.Exit, typer.Abort, typer.exceptions.TyperException):  # typer: control flow, usage errors
            raise
        except Exception:
            traceback.print_exc(file=sys.stderr)
            console.print("[bold red]internal error:[/] " + REPORT_LINE, soft_wrap=True, highlight=False)
            raise typer.Exit(code=1) from None

    return wrapper  # type: ignore[return-value]


class PlainProgress:
    """Progress for logs and CI (no terminal, where rich's bars draw nothing): plain lines on the console.

    One line per stage (a new status on a task of at most MAX_STAGES steps, or of unknown length), and for longer
    tasks one line each time another 10 % is done or, at the least, every HEARTBEAT_S; each with elapsed time.
    Speaks the part of rich's Progress API the verbs use, so callers never branch on it.
    """

    MAX_STAGES = 20
    HEARTBEAT_S = 30.0

    def __init__(self, out: Console, disable: bool = False) -> None:
        self.console = out
        self.disable = disable
        self._tasks: dict[int, dict[str, Any]] = {}

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, description: str, total: float | None = None, status: str = "", **_: Any) -> int:
        task_id = len(self._tasks)
        now = time.monotonic()
        self._tasks[task_id] = {"description": description, "total": total, "completed": 0.0, "status": status,
                                "start": now, "last_line": now, "tenths": 0}
        self._line(self._tasks[task_id], "started")
        return task_id

    def update(self, task_id: int, completed: float | None = None, total: float | None = None,
               advance: float | None = None, status: str | None = None, **_: Any) -> None:
        t = self._tasks[task_id]
        if total is not None:
            t["total"] = total
        if completed is not None:
            t["completed"] = float(completed)
        if advance is not None:
            t["completed"] += advance
        new_status = status is not None and status != t["status"]
        if status is not None:
            t["status"] = status
        total_now = t["total"]
        tenths = int(10 * t["completed"] / total_now) if total_now else 0
        staged = total_now is None or total_now <= self.MAX_STAGES
        news = (new_status and bool(t["status"])) if staged else tenths > t["tenths"]
        if news or time.monotonic() - t["last_line"] >= self.HEARTBEAT_S:
            t["tenths"] = max(tenths, t["tenths"])
            self._line(t, t["status"])

    def _line(self, t: dict[str, Any], what: str) -> None:
        if self.disable:
            return
        now = time.monotonic()
        t["last_line"] = now
        done = ""
        if t["total"]:
            done = f" [{t['completed']:g}/{t['total']:g}, {100 * t['completed'] / t['total']:.0f}%]"
        text = f"{t['description']}: {what}{done} after {now - t['start']:.1f} s" if what else \
            f"{t['description']}{done} after {now - t['start']:.1f} s"
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)


def progress_bar(disable: bool = False) -> Progress | PlainProgress:
    """THE progress display of every verb: rich bars on a terminal, plain stage lines otherwise (pipes, CI)."""
    if not console.is_terminal:
        return PlainProgress(console, disable=disable)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=disable,
    )


@contextlib.contextmanager
def one_stage(description: str) -> Iterator[None]:
    """A verb step with no finer progress: a spinner on a terminal, 'started' and 'done' lines (with the
    elapsed time) in logs; the same progress_bar underneath."""
    with progress_bar() as bar:
        task = bar.add_task(description, total=1, status="running")
        yield
        bar.update(task, completed=1, status="done")
