/* peak.h - peak FP32 multiply-add throughput of one core, per instruction set.

   Shared by tools/fer-peak.c and tools/fer-bench.c (include it after fer.h with
   FER_IMPLEMENTATION, in a file built with _POSIX_C_SOURCE >= 199309L for
   clock_gettime). Each routine runs many independent multiply-add chains, enough
   to cover the FMA latency times the number of FMA pipes (AVX-512: 16 zmm chains,
   AVX2 and scalar: 12 chains, NEON: 16 chains), so the loop is bound by FMA
   throughput alone. The wide paths are compiled with __attribute__((target)), as
   fer.h's kernels are, so no -march flag is needed; a path runs only when
   fer_cpu_best_isa() allows it. A multiply-add counts as 2 flops per lane; the
   scalar path is plain C (a multiply then an add, no contraction under -std=c99),
   like fer.h's reference kernels.

   peak_gflops(isa, seconds) returns the best GFLOP/s of many short timed trials
   filling `seconds`, after a calibration run that also lets the core reach its
   clock. peak_int8_gops(seconds) does the same for the int8 multiply-adds of
   AVX-512 VNNI (vpdpbusd: 64 byte products summed into 16 int32 lanes, 2 ops
   each), 0 where the CPU lacks it: the ceiling of fer_workspace_quantize's convs. */
#ifndef FER_TOOLS_PEAK_H
#define FER_TOOLS_PEAK_H

#include <time.h>

static double peak_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static volatile float peak_sink;   /* keeps the chains' results alive */

/* Each kernel runs `iters` rounds of its chains and returns the flops done. */
#define PEAK_CHAINS_16(T, FMA, INIT, SUM)                                            \
    T c0 = INIT(0), c1 = INIT(1), c2 = INIT(2), c3 = INIT(3), c4 = INIT(4), c5 = INIT(5); \
    T c6 = INIT(6), c7 = INIT(7), c8 = INIT(8), c9 = INIT(9), c10 = INIT(10);        \
    T c11 = INIT(11), c12 = INIT(12), c13 = INIT(13), c14 = INIT(14), c15 = INIT(15); \
    long i;                                                                          \
    for (i = 0; i < iters; i++) {                                                    \
        c0 = FMA(c0); c1 = FMA(c1); c2 = FMA(c2); c3 = FMA(c3);                      \
        c4 = FMA(c4); c5 = FMA(c5); c6 = FMA(c6); c7 = FMA(c7);                      \
        c8 = FMA(c8); c9 = FMA(c9); c10 = FMA(c10); c11 = FMA(c11);                  \
        c12 = FMA(c12); c13 = FMA(c13); c14 = FMA(c14); c15 = FMA(c15);              \
    }                                                                                \
    SUM(c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15)

/* a = a * b + c with b slightly below 1: the chains converge to c / (1 - b),
   never overflow and never become subnormal. The empty asm (x86 and ARM64) keeps
   the compiler from packing the 16 scalar chains into SIMD registers. */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define PEAK_S_OPAQUE(x) __asm__("" : "+x"(x))
#elif defined(__GNUC__) && defined(__aarch64__)
#define PEAK_S_OPAQUE(x) __asm__("" : "+w"(x))
#else
#define PEAK_S_OPAQUE(x) ((void)0)
#endif
static float peak_fma_scalar(float x, float b, float c)
{
    x = x * b + c;
    PEAK_S_OPAQUE(x);
    return x;
}

static double peak_scalar(long iters, float b, float c)
{
    /* 12 chains + 2 constants fit the 16 xmm registers (more would spill) */
    float c0 = 0.50f, c1 = 0.51f, c2 = 0.52f, c3 = 0.53f, c4 = 0.54f, c5 = 0.55f;
    float c6 = 0.56f, c7 = 0.57f, c8 = 0.58f, c9 = 0.59f, c10 = 0.60f, c11 = 0.61f;
    long i;
    for (i = 0; i < iters; i++) {
        c0 = peak_fma_scalar(c0, b, c); c1 = peak_fma_scalar(c1, b, c);
        c2 = peak_fma_scalar(c2, b, c); c3 = peak_fma_scalar(c3, b, c);
        c4 = peak_fma_scalar(c4, b, c); c5 = peak_fma_scalar(c5, b, c);
        c6 = peak_fma_scalar(c6, b, c); c7 = peak_fma_scalar(c7, b, c);
        c8 = peak_fma_scalar(c8, b, c); c9 = peak_fma_scalar(c9, b, c);
        c10 = peak_fma_scalar(c10, b, c); c11 = peak_fma_scalar(c11, b, c);
    }
    peak_sink = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11;
    return 2.0 * 12 * (double)iters;
}

#if defined(FER__X86) && !defined(FER_NO_SIMD)
#include <immintrin.h>

__attribute__((target("avx2,fma"))) static double peak_avx2(long iters, float b, float c)
{
    __m256 vb = _mm256_set1_ps(b), vc = _mm256_set1_ps(c);
    __m256 c0 = _mm256_set1_ps(0.50f), c1 = _mm256_set1_ps(0.51f), c2 = _mm256_set1_ps(0.52f);
    __m256 c3 = _mm256_set1_ps(0.53f), c4 = _mm256_set1_ps(0.54f), c5 = _mm256_set1_ps(0.55f);
    __m256 c6 = _mm256_set1_ps(0.56f), c7 = _mm256_set1_ps(0.57f), c8 = _mm256_set1_ps(0.58f);
    __m256 c9 = _mm256_set1_ps(0.59f), c10 = _mm256_set1_ps(0.60f), c11 = _mm256_set1_ps(0.61f);
    float out[8];
    long i;
    /* 12 chains + 2 constants fit the 16 ymm registers */
    for (i = 0; i < iters; i++) {
        c0 = _mm256_fmadd_ps(c0, vb, vc); c1 = _mm256_fmadd_ps(c1, vb, vc);
        c2 = _mm256_fmadd_ps(c2, vb, vc); c3 = _mm256_fmadd_ps(c3, vb, vc);
        c4 = _mm256_fmadd_ps(c4, vb, vc); c5 = _mm256_fmadd_ps(c5, vb, vc);
        c6 = _mm256_fmadd_ps(c6, vb, vc); c7 = _mm256_fmadd_ps(c7, vb, vc);
        c8 = _mm256_fmadd_ps(c8, vb, vc); c9 = _mm256_fmadd_ps(c9, vb, vc);
        c10 = _mm256_fmadd_ps(c10, vb, vc); c11 = _mm256_fmadd_ps(c11, vb, vc);
    }
    c0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)),
                       _mm256_add_ps(_mm256_add_ps(c4, c5), _mm256_add_ps(c6, c7)));
    c0 = _mm256_add_ps(c0, _mm256_add_ps(_mm256_add_ps(c8, c9), _mm256_add_ps(c10, c11)));
    _mm256_storeu_ps(out, c0);
    peak_sink = out[0] + out[7];
    return 2.0 * 8 * 12 * (double)iters;
}

__attribute__((target("avx512f"))) static double peak_avx512(long iters, float b, float c)
{
    __m512 vb = _mm512_set1_ps(b), vc = _mm512_set1_ps(c);
#define PEAK_Z_INIT(k) _mm512_set1_ps(0.5f + 0.01f * (k))
#define PEAK_Z_FMA(x) _mm512_fmadd_ps(x, vb, vc)
#define PEAK_Z_SUM(a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15)  \
    {                                                                                \
        __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)), \
                                 _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7))); \
        s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)), \
                                           _mm512_add_ps(_mm512_add_ps(a12, a13), _mm512_add_ps(a14, a15)))); \
        peak_sink = _mm512_reduce_add_ps(s);                                         \
    }
    PEAK_CHAINS_16(__m512, PEAK_Z_FMA, PEAK_Z_INIT, PEAK_Z_SUM);
    return 2.0 * 16 * 16 * (double)iters;
#undef PEAK_Z_INIT
#undef PEAK_Z_FMA
#undef PEAK_Z_SUM
}

/* 16 chains of vpdpbusd (as fer.h writes it: gcc 12 does not tie the intrinsic's
   accumulator to its result); the bytes stay small, the sums cannot overflow in
   any run this short */
#define PEAK_DP(x) (__extension__({ __m512i y_ = (x); __asm__("vpdpbusd %[w], %[v], %[acc]" : [acc] "+v"(y_) : [v] "v"(vb), [w] "v"(vc)); y_; }))
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static double peak_vnni(long iters, int b, int c)
{
    __m512i vb = _mm512_set1_epi32(b), vc = _mm512_set1_epi32(c);
#define PEAK_Q_INIT(k) _mm512_set1_epi32(k)
#define PEAK_Q_SUM(a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15)  \
    {                                                                                \
        __m512i s = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)), \
                                     _mm512_add_epi32(_mm512_add_epi32(a4, a5), _mm512_add_epi32(a6, a7))); \
        s = _mm512_add_epi32(s, _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a8, a9), _mm512_add_epi32(a10, a11)), \
                                                 _mm512_add_epi32(_mm512_add_epi32(a12, a13), _mm512_add_epi32(a14, a15)))); \
        peak_sink = (float)_mm512_reduce_add_epi32(s);                              \
    }
    PEAK_CHAINS_16(__m512i, PEAK_DP, PEAK_Q_INIT, PEAK_Q_SUM);
    return 2.0 * 64 * 16 * (double)iters;
#undef PEAK_Q_INIT
#undef PEAK_Q_SUM
}
#undef PEAK_DP
#endif

#if defined(FER__NEON) && !defined(FER_NO_SIMD)
static double peak_neon(long iters, float b, float c)
{
    float32x4_t vb = vdupq_n_f32(b), vc = vdupq_n_f32(c);
#define PEAK_N_INIT(k) vdupq_n_f32(0.5f + 0.01f * (k))
#define PEAK_N_FMA(x) vfmaq_f32(vc, x, vb)
#define PEAK_N_SUM(a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15)  \
    {                                                                                \
        float32x4_t s = vaddq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)),  \
                                  vaddq_f32(vaddq_f32(a4, a5), vaddq_f32(a6, a7)));  \
        s = vaddq_f32(s, vaddq_f32(vaddq_f32(vaddq_f32(a8, a9), vaddq_f32(a10, a11)), \
                                   vaddq_f32(vaddq_f32(a12, a13), vaddq_f32(a14, a15)))); \
        peak_sink = vaddvq_f32(s);                                                   \
    }
    PEAK_CHAINS_16(float32x4_t, PEAK_N_FMA, PEAK_N_INIT, PEAK_N_SUM);
    return 2.0 * 4 * 16 * (double)iters;
#undef PEAK_N_INIT
#undef PEAK_N_FMA
#undef PEAK_N_SUM
}

#endif

/* Runs `iters` rounds of isa's kernel; 0 flops when this build or CPU lacks it. */
static double peak_run(fer_isa isa, long iters)
{
    volatile float b = 0.999999f, c = 1e-6f;   /* volatile: not constant-folded */
    if (isa > fer_cpu_best_isa()) return 0.0;
    switch (isa) {
    case FER_ISA_SCALAR: return peak_scalar(iters, b, c);
#if defined(FER__X86) && !defined(FER_NO_SIMD)
    case FER_ISA_AVX2: return peak_avx2(iters, b, c);
    case FER_ISA_AVX512: return peak_avx512(iters, b, c);
#endif
#if defined(FER__NEON) && !defined(FER_NO_SIMD)
    case FER_ISA_NEON: return peak_neon(iters, b, c);
#endif
    default: return 0.0;
    }
}

/* The int8 kernel as another "isa" of peak_best: -1. */
#define PEAK_INT8 ((fer_isa)-1)
static double peak_run_any(fer_isa isa, long iters)
{
#if defined(FER__X86) && !defined(FER_NO_SIMD)
    volatile int b = 0x01020304, c = 0x01010101;
    if (isa == PEAK_INT8) return fer__cpu_vnni() ? peak_vnni(iters, b, c) : 0.0;
#endif
    return isa == PEAK_INT8 ? 0.0 : peak_run(isa, iters);
}

/* Best GFLOP/s of one core over trials of about 1 ms filling `seconds`: on a
   shared machine the best short trial is the one no other process interrupted. */
static double peak_best(fer_isa isa, double seconds)
{
    long iters = 1000;
    double best = 0.0, t0, t_end, dt, flops, trial = 0.001;
    if (peak_run_any(isa, 1) == 0.0) return 0.0;
    if (trial > seconds / 5) trial = seconds / 5;
    for (;;) {                   /* calibrate iters to one trial; also a warm-up */
        t0 = peak_now();
        peak_run_any(isa, iters);
        dt = peak_now() - t0;
        if (dt >= trial || iters > (1L << 40)) break;
        iters = dt > 1e-4 ? (long)(iters * trial / dt) + 1 : iters * 16;
    }
    t_end = peak_now() + seconds;
    do {
        t0 = peak_now();
        flops = peak_run_any(isa, iters);
        dt = peak_now() - t0;
        if (dt > 0 && flops / dt / 1e9 > best) best = flops / dt / 1e9;
    } while (t0 + dt < t_end);
    return best;
}

static double peak_gflops(fer_isa isa, double seconds) { return peak_best(isa, seconds); }
static double peak_int8_gops(double seconds) { return peak_best(PEAK_INT8, seconds); }

#endif
