"""Large per-call buffers whose memory the kernel supplies only as it is written.

A call's playout ring (120 s of the agent's voice) and turn audio (60 s of the caller's) are
sized for the worst case but a call uses a few seconds of each. Zero-filled in the allocator
(``bytes(n)``, ``np.zeros`` from a reused heap), every page is written when the call is set up:
7.7 MB a call, all while the GIL is held, so on a machine where fresh pages are slow to come
(a virtual machine whose host took back freed memory) setting up calls stalled the media clock
for up to a second. An anonymous ``mmap`` is zero pages until each is first written, and its
memory goes back to the system when the buffer is dropped.
"""

import mmap


def lazy_zeros(count, typecode):
    """A writable memoryview of ``count`` zeros of the ``struct`` type ``typecode`` ("f", "q"...),
    backed by pages only as they are written."""
    if count < 1:
        raise ValueError(f"a buffer holds 1 item or more, not {count}")
    itemsize = memoryview(bytes(16)).cast(typecode).itemsize
    return memoryview(mmap.mmap(-1, count * itemsize)).cast(typecode)
