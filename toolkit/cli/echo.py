"""`jepa-edge echo` verbs (filled in by the stage that owns them)."""

from __future__ import annotations
