"""
How the process's C heap treats the large buffers message bodies live in.

A body of 1 MiB is received into a buffer of its own, and freed once every
subscriber has it. glibc's allocator, left to itself, maps a buffer that
large afresh for each body, or gives the heap's freed top back to the
kernel soon after: either way every page of the next body's buffer is
faulted in and cleared by the kernel again, about a fifth of the broker's
time when 1 MiB bodies stream through it. Here the allocator is set once,
at start-up, to what its own adaptive rule ends at (bodies up to 32 MiB
from the heap, up to 64 MiB of freed heap kept for reuse), instead of
relearning it, one freed body at a time, from a start of 128 KiB.
"""

import ctypes
import ctypes.util

# mallopt(3) parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

# glibc's ceiling for its adaptive mmap threshold on 64-bit machines
# (DEFAULT_MMAP_THRESHOLD_MAX), and the trim threshold it pairs with it.
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD


def keep_freed_buffers() -> bool:
    """
    Set the C allocator to serve buffers smaller than L{MMAP_THRESHOLD}
    bytes from its heap, and to keep up to L{TRIM_THRESHOLD} bytes of freed
    heap for reuse rather than return them to the kernel. Called once by
    C{twistd stompd} at start-up; affects the whole process.

    @return: whether the allocator took the settings; C{False} where the C
        library has no C{mallopt} (not glibc), and nothing changed.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
