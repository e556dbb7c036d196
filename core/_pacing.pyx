# cython: language_level=3, boundscheck=False, wraparound=False
"""Sending one tick's packets at their time with the GIL released (see ``pacing.py``).

The thread sleeps on CLOCK_MONOTONIC until the deadline (``time.monotonic_ns()``'s clock) and
sends every packet with ``sendto(2)``, all without the GIL, so no Python thread can delay a
packet; only preparing the batch and reading the result need the GIL.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdlib cimport free, malloc


cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    cdef struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_nanosleep(int clockid, int flags, const timespec *request, timespec *remain)
    int clock_gettime(int clockid, timespec *tp)
    enum: CLOCK_MONOTONIC
    enum: TIMER_ABSTIME


cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    cdef struct sockaddr:
        pass
    ssize_t sendto(int sockfd, const void *buf, size_t length, int flags, const sockaddr *dest_addr,
                   socklen_t addrlen)


cdef extern from "<errno.h>" nogil:
    enum: EINTR


cdef inline long long _now_ns() noexcept nogil:
    cdef timespec now
    clock_gettime(CLOCK_MONOTONIC, &now)
    return now.tv_sec * 1000000000LL + now.tv_nsec


def send_at(long long deadline_ns, list batch):
    """Sleep until ``deadline_ns`` (monotonic), then send each ``(socket, packet, sockaddr,
    address)`` of ``batch``; a list of how late each packet left, in ns (None: not sent)."""
    cdef Py_ssize_t n = len(batch), i
    cdef int *fds = <int *> malloc(max(n, 1) * sizeof(int))
    cdef const char **packets = <const char **> malloc(max(n, 1) * sizeof(char *))
    cdef Py_ssize_t *lengths = <Py_ssize_t *> malloc(max(n, 1) * sizeof(Py_ssize_t))
    cdef const char **addresses = <const char **> malloc(max(n, 1) * sizeof(char *))
    cdef socklen_t *address_lengths = <socklen_t *> malloc(max(n, 1) * sizeof(socklen_t))
    cdef long long *late = <long long *> malloc(max(n, 1) * sizeof(long long))
    cdef timespec deadline
    cdef bytes packet, address
    if not (fds and packets and lengths and addresses and address_lengths and late):
        free(fds); free(packets); free(lengths); free(addresses); free(address_lengths); free(late)
        raise MemoryError()
    try:
        for i in range(n):
            sock, packet, address, _ = batch[i]
            fds[i] = sock.fileno()
            packets[i] = PyBytes_AS_STRING(packet)
            lengths[i] = PyBytes_GET_SIZE(packet)
            addresses[i] = PyBytes_AS_STRING(address)
            address_lengths[i] = <socklen_t> PyBytes_GET_SIZE(address)
        deadline.tv_sec = deadline_ns // 1000000000LL
        deadline.tv_nsec = deadline_ns % 1000000000LL
        with nogil:
            while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL) == EINTR:
                pass
            for i in range(n):
                if sendto(fds[i], packets[i], lengths[i], 0, <const sockaddr *> addresses[i], address_lengths[i]) < 0:
                    late[i] = -1
                else:
                    late[i] = _now_ns() - deadline_ns
        return [None if late[i] < 0 else late[i] for i in range(n)]
    finally:
        free(fds); free(packets); free(lengths); free(addresses); free(address_lengths); free(late)
