"""Keep the memory a fit frees for its next allocation, instead of handing it back to the kernel.

scikit-learn's histogram gradient boosting allocates, for every tree, row-sized index and partition
buffers (four ``uint32`` arrays of the training rows for the splitter, plus the gradients' and
predictions' temporaries). Past 32 MB (glibc's ceiling for its adaptive mmap threshold) each of those
is a fresh ``mmap``: freed after the tree, mapped again for the next one, and every page of it is
faulted in and zeroed by the kernel again. At 20M training rows that is several million page faults
and a kernel share of CPU time that grows faster than the rows (measured by ``bench/bench_scale.py``:
the ``sys_s`` and ``minor_faults`` of ``train``). For the length of the fit, glibc is told to serve
large blocks from its heap too (``M_MMAP_MAX`` 0) and not to give freed heap back
(``M_TRIM_THRESHOLD``), so the next tree reuses the pages the last one freed. Afterwards both go back
to glibc's defaults and ``malloc_trim`` returns what is free, so the process's footprint after the fit
is what it would have been (glibc's adaptive mmap threshold stays where the process had moved it:
setting either value stops its adapting, which only ever raised it).

Only the C library's own allocator is affected (NumPy's and scikit-learn's buffers; pyarrow has its
own pool). Elsewhere than glibc (macOS, musl) this does nothing. A library could do the same only by
replacing the allocator process-wide (jemalloc or tcmalloc through ``LD_PRELOAD``), which every
launcher of a task process would have to arrange; ``mallopt`` is glibc's documented interface for it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

# <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
# glibc's defaults (mallopt(3)): what the settings go back to after the fit.
DEFAULT_TRIM_THRESHOLD = 128 * 1024
DEFAULT_MMAP_MAX = 65536
# The largest value mallopt takes (an int): during the fit only a free top of the heap above 2 GiB goes
# back to the kernel, so the per-tree buffers (far smaller) stay for reuse.
NEVER_TRIM = 2**31 - 1

log = logging.getLogger(__name__)


@cache
def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):
        # Not glibc (musl, macOS): no mallopt, nothing to tune.
        return None
    return libc


@contextmanager
def reuse_freed_memory() -> Iterator[bool]:
    """While inside, freed large blocks stay in the heap for reuse; yields whether that applies here."""
    libc = _glibc()
    if libc is None:
        yield False
        return
    applied = bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, NEVER_TRIM))
    if not applied:
        log.warning("glibc refused mallopt: the fit runs with the default allocator settings")
    try:
        yield applied
    finally:
        libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
        libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
        libc.malloc_trim(0)
