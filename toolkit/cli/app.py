"""The typer application every verb module registers on."""

from __future__ import annotations

import functools
from collections.abc import Callable
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


def user_errors(func: F) -> F:
    """Turn input problems (bad files, bad configs, failed gates) into a one-line message and exit code 2."""
    from ..config import ConfigError
    from ..data.errors import DataError
    from ..models.checkpoint import CheckpointError

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (DataError, ConfigError, CheckpointError, FileNotFoundError, ValueError) as exc:
            # soft_wrap: file paths in messages stay on one line; escape: "[...]" in messages is not markup
            console.print("[bold red]error:[/] " + escape(str(exc)), soft_wrap=True, highlight=False)
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


def progress_bar(disable: bool = False) -> Progress:
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
