// The calling thread's CPU affinity, which glibc declares only under _GNU_SOURCE (Swift's view of
// its headers has no such define): the system calls themselves. A mask is a cpu_set_t's bytes.
#pragma once
#include <sys/syscall.h>
#include <unistd.h>

// The CPUs the calling thread may run on, into `mask` (`size` bytes); 0 on success.
static inline int dptrain_get_affinity(void *mask, unsigned long size) {
    return syscall(SYS_sched_getaffinity, 0, size, mask) < 0 ? -1 : 0;
}

// Lets the calling thread run on the CPUs of `mask` (`size` bytes); 0 on success.
static inline int dptrain_set_affinity(const void *mask, unsigned long size) {
    return (int)syscall(SYS_sched_setaffinity, 0, size, mask);
}
