"""The `jepa-edge` command line: thin shells over the Python functions tests call directly."""

from __future__ import annotations

from . import bench, build, bundle, data, demo, distill, parity, pretrain, probe, stream  # noqa: F401  (register verbs)
from .app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
