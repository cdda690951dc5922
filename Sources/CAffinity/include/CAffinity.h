// CPU affinity for dptrain's worker threads. glibc declares sched_getaffinity and
// sched_setaffinity only under _GNU_SOURCE, which Swift's Glibc module is not built with.
#pragma once

/// Writes up to `max` CPU numbers this process may run on to `cpus`; returns how many (0 on error).
int dptrain_allowed_cpus(int *cpus, int max);

/// Pins the calling thread to `cpu`; returns 0, or -1 with errno set.
int dptrain_pin_calling_thread(int cpu);

/// The CPU the calling thread is running on (for tests of the pinning).
int dptrain_current_cpu(void);
