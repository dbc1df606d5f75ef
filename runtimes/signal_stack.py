"""Keep the thread's alternate signal stack valid across OpenVINO calls.

OpenVINO's CPU plugin (2026.x) swaps in its own alternate signal stack when a Core creates the plugin, and on
destruction puts back the stack that was current when *it* was created, then unmaps its own. When two Cores die in
creation order, the survivor restores the first one's stack, already unmapped: the next signal whose handler runs
on the alternate stack (CPython installs every Python-level handler with SA_ONSTACK; torch's DataLoader installs
one for SIGCHLD) cannot be delivered and the kernel kills the process with SIGSEGV, silently, since faulthandler's
own handler needs that stack too. NNCF creates Cores of its own, so the order is not ours to choose.

`stable_signal_stack()` puts back, on exit, the stack that was current on entry. Outside such a block the current
stack is then always the process's own (faulthandler's, or none), which no Core ever unmaps, and a Core dying later
finds someone else's stack current and leaves it alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager


class _StackT(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()


def current_signal_stack() -> tuple[int, int, int] | None:
    """(address, flags, size) of this thread's alternate signal stack; None where it cannot be read."""
    if _LIBC is None:
        return None
    st = _StackT()
    if _LIBC.sigaltstack(None, ctypes.byref(st)) != 0:
        return None
    return (st.ss_sp or 0, st.ss_flags, st.ss_size)


def _set_signal_stack(stack: tuple[int, int, int]) -> None:
    assert _LIBC is not None
    sp, flags, size = stack
    SS_DISABLE = 2
    st = _StackT(sp, SS_DISABLE if flags & SS_DISABLE else 0, size)
    _LIBC.sigaltstack(ctypes.byref(st), None)


@contextmanager
def stable_signal_stack() -> Iterator[None]:
    """Run OpenVINO work (Core creation, compile, NNCF) and leave the alternate signal stack as it was found."""
    before = current_signal_stack()
    try:
        yield
    finally:
        if before is not None and current_signal_stack() != before:
            _set_signal_stack(before)
