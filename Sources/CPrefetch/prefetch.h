// The compiler's prefetch hint, which Swift has no spelling for.
#pragma once

// Starts loading the cache line holding `address` for reading, without waiting for it; keeps it
// in the outer caches (locality 2). A hint: it never faults, whatever the address.
static inline void dptrain_prefetch(const void *address) { __builtin_prefetch(address, 0, 2); }

typedef float dptrain_float16 __attribute__((ext_vector_type(16)));

// Copies `count` floats to `target` with streaming (non-temporal) stores, which go to memory
// without first fetching the lines into this core's cache, then fences them so they are
// ordered before any later store (a lock release, a barrier flag). The floats before the
// first 64-byte boundary of `target` and after the last are stored as usual.
static inline void dptrain_stream_copy(float *target, const float *source, long count) {
    long i = 0;
    while (i < count && ((unsigned long)(target + i) & 63) != 0) { target[i] = source[i]; i++; }
    for (; i + 16 <= count; i += 16) {
        dptrain_float16 v;
        __builtin_memcpy(&v, source + i, sizeof v);
        __builtin_nontemporal_store(v, (dptrain_float16 *)(target + i));
    }
    for (; i < count; i++) target[i] = source[i];
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_sfence();
#else
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}
