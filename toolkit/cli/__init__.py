"""The `jepa-edge` command line: thin shells over the Python functions tests call directly."""

from __future__ import annotations

from . import (  # noqa: F401  (each module registers its verbs)
    beats,
    bench,
    build,
    bundle,
    data,
    demo,
    distill,
    echo,
    fetch,
    firmware,
    parity,
    pretrain,
    probe,
    stream,
)
from .app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
