# cython: language_level=3, boundscheck=False, wraparound=False
"""Sending packets at their time with the GIL released (see ``pacing.py``).

``Pacer``'s thread sleeps on CLOCK_MONOTONIC until a batch's deadline (``time.monotonic_ns()``'s
clock) and sends every packet with ``sendto(2)``; it never takes the GIL. Batches are copied in
and results read out, each under the GIL of the thread that asks, so no Python thread can delay
a packet.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy


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


cdef extern from "<sched.h>" nogil:
    cdef struct sched_param:
        int sched_priority
    int sched_setscheduler(int pid, int policy, const sched_param *param)
    enum: SCHED_RR


cdef extern from "<pthread.h>" nogil:
    ctypedef unsigned long pthread_t
    ctypedef struct pthread_mutex_t:
        pass
    ctypedef struct pthread_cond_t:
        pass
    int pthread_create(pthread_t *thread, const void *attr, void *(*start)(void *) noexcept nogil, void *arg)
    int pthread_join(pthread_t thread, void **retval)
    int pthread_mutex_init(pthread_mutex_t *mutex, const void *attr)
    int pthread_mutex_destroy(pthread_mutex_t *mutex)
    int pthread_mutex_lock(pthread_mutex_t *mutex)
    int pthread_mutex_unlock(pthread_mutex_t *mutex)
    int pthread_cond_init(pthread_cond_t *cond, const void *attr)
    int pthread_cond_destroy(pthread_cond_t *cond)
    int pthread_cond_wait(pthread_cond_t *cond, pthread_mutex_t *mutex)
    int pthread_cond_broadcast(pthread_cond_t *cond)


cdef inline long long _now_ns() noexcept nogil:
    cdef timespec now
    clock_gettime(CLOCK_MONOTONIC, &now)
    return now.tv_sec * 1000000000LL + now.tv_nsec


cdef long long _send_at(long long deadline_ns, Py_ssize_t n, const int *fds, const char **packets,
                   const Py_ssize_t *lengths, const char **addresses, const socklen_t *address_lengths,
                   long long *late) noexcept nogil:
    """Sleep until ``deadline_ns``, send the ``n`` packets, and write how late each left (-1:
    refused); returns when the sleep ended."""
    cdef timespec deadline
    cdef Py_ssize_t i
    cdef long long woke
    deadline.tv_sec = deadline_ns // 1000000000LL
    deadline.tv_nsec = deadline_ns % 1000000000LL
    while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL) == EINTR:
        pass
    woke = _now_ns()
    for i in range(n):
        if sendto(fds[i], packets[i], lengths[i], 0, <const sockaddr *> addresses[i], address_lengths[i]) < 0:
            late[i] = -1
        else:
            late[i] = _now_ns() - deadline_ns
    return woke


cdef enum:
    ADDRESS_BYTES = 128  # room for any struct sockaddr (that of sockaddr_storage)


cdef class Pacer:
    """A sending thread that never takes the GIL: ``submit`` a batch for a deadline, ``drain``
    how late each packet left. ``slots`` batches can wait to be sent or read back, each of up
    to ``max_packets`` packets of up to ``max_bytes``; ``priority`` > 0 asks for SCHED_RR at that
    priority (``realtime`` says whether it was given)."""

    cdef readonly Py_ssize_t slots, max_packets, max_bytes
    cdef readonly bint realtime
    cdef int _priority
    cdef bint _running, _stopping, _started
    cdef pthread_t _thread
    cdef pthread_mutex_t _lock
    cdef pthread_cond_t _wake
    cdef long long _queued, _sent, _read
    cdef long long *_deadlines
    cdef long long *_submitted
    cdef long long *_woke
    cdef Py_ssize_t *_counts
    cdef int *_fds
    cdef char *_data
    cdef const char **_packets
    cdef Py_ssize_t *_lengths
    cdef char *_addresses
    cdef const char **_address_pointers
    cdef socklen_t *_address_lengths
    cdef long long *_late
    cdef list _owners

    def __cinit__(self, Py_ssize_t max_packets, Py_ssize_t max_bytes=1500, Py_ssize_t slots=8, int priority=0):
        if max_packets < 1 or max_bytes < 1 or slots < 2:
            raise ValueError(f"a pacer needs room for 1 packet or more of 1 byte or more in 2 slots or more, "
                             f"not {max_packets} packets of {max_bytes} bytes in {slots}")
        self.slots, self.max_packets, self.max_bytes, self._priority = slots, max_packets, max_bytes, priority
        cdef Py_ssize_t n = slots * max_packets
        self._deadlines = <long long *> calloc(slots, sizeof(long long))
        self._submitted = <long long *> calloc(slots, sizeof(long long))
        self._woke = <long long *> calloc(slots, sizeof(long long))
        self._counts = <Py_ssize_t *> calloc(slots, sizeof(Py_ssize_t))
        self._fds = <int *> calloc(n, sizeof(int))
        self._data = <char *> calloc(n, max_bytes)
        self._packets = <const char **> calloc(n, sizeof(char *))
        self._lengths = <Py_ssize_t *> calloc(n, sizeof(Py_ssize_t))
        self._addresses = <char *> calloc(n, ADDRESS_BYTES)
        self._address_pointers = <const char **> calloc(n, sizeof(char *))
        self._address_lengths = <socklen_t *> calloc(n, sizeof(socklen_t))
        self._late = <long long *> calloc(n, sizeof(long long))
        if not (self._deadlines and self._submitted and self._woke and self._counts and self._fds and self._data and self._packets and self._lengths
                and self._addresses and self._address_pointers and self._address_lengths and self._late):
            raise MemoryError()
        cdef Py_ssize_t i
        for i in range(n):
            self._packets[i] = self._data + i * max_bytes
            self._address_pointers[i] = self._addresses + i * ADDRESS_BYTES
        self._owners = [None] * slots
        pthread_mutex_init(&self._lock, NULL)
        pthread_cond_init(&self._wake, NULL)

    def __dealloc__(self):
        if self._running:
            with nogil:
                self._stop()
        pthread_cond_destroy(&self._wake)
        pthread_mutex_destroy(&self._lock)
        free(self._deadlines); free(self._submitted); free(self._woke); free(self._counts); free(self._fds); free(self._data); free(self._packets)
        free(self._lengths); free(self._addresses); free(self._address_pointers); free(self._address_lengths)
        free(self._late)

    def start(self):
        """Start the sending thread; returns once it runs (and has its priority, or not)."""
        if self._running:
            raise RuntimeError("the pacer is already started")
        if pthread_create(&self._thread, NULL, _pacer_main, <void *> self) != 0:
            raise OSError("could not start the pacer's thread")
        self._running = True
        with nogil:
            pthread_mutex_lock(&self._lock)
            while not self._started:
                pthread_cond_wait(&self._wake, &self._lock)
            pthread_mutex_unlock(&self._lock)
        return self

    def submit(self, long long deadline_ns, list batch, list owners):
        """Queue ``batch`` of ``(socket, packet, sockaddr, address)`` to leave at ``deadline_ns``;
        ``owners`` (one per packet) come back from ``drain``. False when every slot is taken
        (nothing queued: drain, or the thread has fallen behind)."""
        cdef Py_ssize_t n = len(batch), i, base
        cdef long long slot
        cdef bytes packet, address
        if n > self.max_packets or len(owners) != n:
            raise ValueError(f"a batch of {n} packets with {len(owners)} owners; at most {self.max_packets}, one each")
        pthread_mutex_lock(&self._lock)
        slot = self._queued
        full = slot - self._read >= self.slots
        pthread_mutex_unlock(&self._lock)
        if full:
            return False
        base = (slot % self.slots) * self.max_packets
        for i in range(n):
            sock, packet, address, _ = batch[i]
            if PyBytes_GET_SIZE(packet) > self.max_bytes or PyBytes_GET_SIZE(address) > ADDRESS_BYTES:
                raise ValueError(f"a packet of {PyBytes_GET_SIZE(packet)} bytes (at most {self.max_bytes}) or an "
                                 f"address of {PyBytes_GET_SIZE(address)} (at most {ADDRESS_BYTES})")
            self._fds[base + i] = sock.fileno()
            memcpy(<void *> self._packets[base + i], PyBytes_AS_STRING(packet), PyBytes_GET_SIZE(packet))
            self._lengths[base + i] = PyBytes_GET_SIZE(packet)
            memcpy(<void *> self._address_pointers[base + i], PyBytes_AS_STRING(address), PyBytes_GET_SIZE(address))
            self._address_lengths[base + i] = <socklen_t> PyBytes_GET_SIZE(address)
        self._owners[slot % self.slots] = owners
        pthread_mutex_lock(&self._lock)
        self._deadlines[slot % self.slots] = deadline_ns
        self._submitted[slot % self.slots] = _now_ns()
        self._counts[slot % self.slots] = n
        self._queued = slot + 1
        pthread_cond_broadcast(&self._wake)
        pthread_mutex_unlock(&self._lock)
        return True

    def drain(self):
        """Each sent batch not yet read: ``(deadline_ns, submitted_ns, woke_ns, [(owner, late_ns or
        None), ...])``, ``woke_ns`` when the thread's sleep for it ended: a thread that woke later
        than ``max(deadline_ns, submitted_ns)`` was kept off the CPU by the machine."""
        cdef long long read, sent
        cdef Py_ssize_t i, base, n
        pthread_mutex_lock(&self._lock)
        read, sent = self._read, self._sent
        pthread_mutex_unlock(&self._lock)
        batches = []
        while read < sent:
            base = (read % self.slots) * self.max_packets
            n = self._counts[read % self.slots]
            owners = self._owners[read % self.slots]
            batches.append((self._deadlines[read % self.slots], self._submitted[read % self.slots],
                            self._woke[read % self.slots],
                            [(owners[i], None if self._late[base + i] < 0 else self._late[base + i]) for i in range(n)]))
            self._owners[read % self.slots] = None
            read += 1
        pthread_mutex_lock(&self._lock)
        self._read = read
        pthread_mutex_unlock(&self._lock)
        return batches

    def stop(self):
        """Send what is queued, then end the thread."""
        if self._running:
            with nogil:
                self._stop()

    cdef void _stop(self) noexcept nogil:
        pthread_mutex_lock(&self._lock)
        self._stopping = True
        pthread_cond_broadcast(&self._wake)
        pthread_mutex_unlock(&self._lock)
        pthread_join(self._thread, NULL)
        self._running = False

    cdef void _run(self) noexcept nogil:
        cdef sched_param param
        cdef long long slot
        cdef Py_ssize_t base
        param.sched_priority = self._priority
        pthread_mutex_lock(&self._lock)
        self.realtime = self._priority > 0 and sched_setscheduler(0, SCHED_RR, &param) == 0
        self._started = True
        pthread_cond_broadcast(&self._wake)
        while True:
            while self._sent == self._queued and not self._stopping:
                pthread_cond_wait(&self._wake, &self._lock)
            if self._sent == self._queued:
                break
            slot = self._sent % self.slots
            pthread_mutex_unlock(&self._lock)
            base = slot * self.max_packets
            self._woke[slot] = _send_at(self._deadlines[slot], self._counts[slot], self._fds + base, self._packets + base,
                     self._lengths + base, self._address_pointers + base, self._address_lengths + base,
                     self._late + base)
            pthread_mutex_lock(&self._lock)
            self._sent += 1
        pthread_mutex_unlock(&self._lock)


cdef void *_pacer_main(void *pacer) noexcept nogil:
    (<Pacer> pacer)._run()
    return NULL
