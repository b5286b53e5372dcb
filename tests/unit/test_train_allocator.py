"""retrainer.train.allocator: during a fit, a freed large block is reused instead of mapped and faulted in
again; afterwards glibc maps large blocks afresh and the freed memory is returned."""

from __future__ import annotations

import ctypes
import resource

import pytest

from retrainer.train.allocator import _glibc, reuse_freed_memory

pytestmark = pytest.mark.skipif(_glibc() is None, reason="not glibc: the allocator settings do not apply here")

BLOCK = 64 * 2**20  # bytes: above glibc's 32 MB mmap ceiling
ROUNDS = 6


@pytest.fixture(scope="module")
def libc():
    libc = _glibc()
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    return libc


def _block(libc) -> int:
    """A malloc'd block of BLOCK bytes, every page written (as a fit's buffer is). Plain malloc, not
    NumPy: NumPy asks for transparent huge pages on large arrays, which hides the faults counted here."""
    address = libc.malloc(BLOCK)
    assert address
    ctypes.memset(address, 1, BLOCK)
    return address


def _faults_of_repeated_blocks(libc) -> int:
    """Minor page faults of allocating, writing and freeing one large block ROUNDS times."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(ROUNDS):
        libc.free(_block(libc))
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def _resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def test_a_freed_block_is_reused_inside_and_mapped_afresh_outside(libc):
    pages_per_block = BLOCK // resource.getpagesize()
    outside = _faults_of_repeated_blocks(libc)
    with reuse_freed_memory() as applied:
        inside = _faults_of_repeated_blocks(libc)
    after = _faults_of_repeated_blocks(libc)
    assert applied
    # Outside, every round faults the whole block in again; inside, only the first round does.
    assert outside >= (ROUNDS - 1) * pages_per_block
    assert inside <= 2 * pages_per_block, (inside, outside)
    assert after >= (ROUNDS - 1) * pages_per_block, "the default settings were not restored"


def test_memory_freed_during_the_fit_is_returned_after_it(libc):
    before = _resident_mb()
    with reuse_freed_memory():
        blocks = [_block(libc) for _ in range(4)]
        assert _resident_mb() > before + 200
        for address in blocks:
            libc.free(address)
    assert _resident_mb() < before + 64, "the heap kept what the fit freed"
