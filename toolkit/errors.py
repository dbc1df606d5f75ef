"""The root of every error a user can fix: the CLI turns these (and only these) into a one-line message and exit 2.

Each stage keeps its own class (DataError, ConfigError, EngineError, ...) next to its code; all derive from
JepaEdgeError so `user_errors` catches one name. They also stay ValueErrors, because that is what they are to
Python callers. Anything else reaching the CLI is a bug and keeps its traceback.
"""

from __future__ import annotations


class JepaEdgeError(ValueError):
    """A problem with the user's input, files, configuration or a failed gate; the message says what to fix."""
