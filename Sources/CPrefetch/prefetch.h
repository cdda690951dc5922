// The compiler's prefetch hint, which Swift has no spelling for.
#pragma once

// Starts loading the cache line holding `address` for reading, without waiting for it; keeps it
// in the outer caches (locality 2). A hint: it never faults, whatever the address.
static inline void dptrain_prefetch(const void *address) { __builtin_prefetch(address, 0, 2); }
