// Which x86-64 instruction-set extensions this build was compiled for, and which ones the CPU
// it runs on has. The compiler's predefined macros follow swiftc's -target-cpu (the clang
// importer compiles this header with it), so `dpt_compiled_features` is fixed at build time;
// `dpt_cpu_features` asks the CPU (cpuid) and the operating system (xgetbv: the wide registers
// are only usable when the kernel saves them).
#pragma once
#include <stdint.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif

// One bit per extension, in the same order in both masks (names in InstructionSet.swift).
enum {
    DPT_AVX = 1 << 0, DPT_AVX2 = 1 << 1, DPT_FMA = 1 << 2, DPT_BMI1 = 1 << 3, DPT_BMI2 = 1 << 4,
    DPT_F16C = 1 << 5, DPT_AVX512F = 1 << 6, DPT_AVX512BW = 1 << 7, DPT_AVX512DQ = 1 << 8,
    DPT_AVX512VL = 1 << 9, DPT_AVX512CD = 1 << 10, DPT_AVX512VNNI = 1 << 11, DPT_AVX512BF16 = 1 << 12,
    DPT_AVX512VBMI = 1 << 13, DPT_AVX512IFMA = 1 << 14,
};

static inline uint32_t dpt_compiled_features(void) {
    uint32_t f = 0;
#if defined(__AVX__)
    f |= DPT_AVX;
#endif
#if defined(__AVX2__)
    f |= DPT_AVX2;
#endif
#if defined(__FMA__)
    f |= DPT_FMA;
#endif
#if defined(__BMI__)
    f |= DPT_BMI1;
#endif
#if defined(__BMI2__)
    f |= DPT_BMI2;
#endif
#if defined(__F16C__)
    f |= DPT_F16C;
#endif
#if defined(__AVX512F__)
    f |= DPT_AVX512F;
#endif
#if defined(__AVX512BW__)
    f |= DPT_AVX512BW;
#endif
#if defined(__AVX512DQ__)
    f |= DPT_AVX512DQ;
#endif
#if defined(__AVX512VL__)
    f |= DPT_AVX512VL;
#endif
#if defined(__AVX512CD__)
    f |= DPT_AVX512CD;
#endif
#if defined(__AVX512VNNI__)
    f |= DPT_AVX512VNNI;
#endif
#if defined(__AVX512BF16__)
    f |= DPT_AVX512BF16;
#endif
#if defined(__AVX512VBMI__)
    f |= DPT_AVX512VBMI;
#endif
#if defined(__AVX512IFMA__)
    f |= DPT_AVX512IFMA;
#endif
    return f;
}

static inline uint32_t dpt_cpu_features(void) {
#if defined(__x86_64__)
    unsigned a, b, c, d;
    uint32_t f = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int osxsave = (c >> 27) & 1;
    uint32_t xcr0 = 0;
    if (osxsave) {
        uint32_t hi;
        __asm__ volatile("xgetbv" : "=a"(xcr0), "=d"(hi) : "c"(0));
    }
    int ymm = (xcr0 & 0x6) == 0x6, zmm = (xcr0 & 0xE6) == 0xE6;
    if (ymm && ((c >> 28) & 1)) f |= DPT_AVX;
    if (ymm && ((c >> 12) & 1)) f |= DPT_FMA;
    if (ymm && ((c >> 29) & 1)) f |= DPT_F16C;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        if ((b >> 3) & 1) f |= DPT_BMI1;
        if ((b >> 8) & 1) f |= DPT_BMI2;
        if (ymm && ((b >> 5) & 1)) f |= DPT_AVX2;
        if (zmm) {
            if ((b >> 16) & 1) f |= DPT_AVX512F;
            if ((b >> 17) & 1) f |= DPT_AVX512DQ;
            if ((b >> 21) & 1) f |= DPT_AVX512IFMA;
            if ((b >> 28) & 1) f |= DPT_AVX512CD;
            if ((b >> 30) & 1) f |= DPT_AVX512BW;
            if ((b >> 31) & 1) f |= DPT_AVX512VL;
            if ((c >> 1) & 1) f |= DPT_AVX512VBMI;
            if ((c >> 11) & 1) f |= DPT_AVX512VNNI;
            if (__get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 5) & 1)) f |= DPT_AVX512BF16;
        }
    }
    return f;
#else
    return dpt_compiled_features();
#endif
}
