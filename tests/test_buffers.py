"""Large per-call buffers get memory from the kernel only as they are written (core/buffers.py)."""

import mmap

import numpy as np
import pytest

from parley.core.buffers import lazy_zeros


def resident_bytes():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * mmap.PAGESIZE


@pytest.mark.parametrize("typecode, itemsize", [("f", 4), ("q", 8), ("B", 1)])
def test_a_buffer_is_zeros_of_its_type_and_writable(typecode, itemsize):
    buffer = lazy_zeros(1000, typecode)
    assert buffer.format == typecode and buffer.itemsize == itemsize and len(buffer) == 1000
    assert not any(buffer)
    buffer[999] = 3
    assert buffer[999] == 3 and buffer[998] == 0


def test_numpy_sees_the_same_memory():
    array = np.frombuffer(lazy_zeros(16, "f"), np.float32)
    array[3] = 0.5
    assert array.flags.writeable and array.sum() == 0.5


@pytest.mark.parametrize("count", [0, -1])
def test_an_empty_buffer_is_refused(count):
    with pytest.raises(ValueError, match="1 item or more"):
        lazy_zeros(count, "f")


def test_memory_comes_only_as_pages_are_written():
    before = resident_bytes()
    buffer = lazy_zeros(64 << 20, "f")
    allocated = resident_bytes()
    for i in range(0, 8 << 20, mmap.PAGESIZE // 4):
        buffer[i] = 1.0
    written = resident_bytes()
    assert allocated - before < 4 << 20, "256 MB allocated: the pages were taken at once"
    assert written - allocated >= 30 << 20, "32 MB written: the measure does not see the pages"
