/* tests/test.h - the smallest test harness that fails loudly.
   Each test program counts checks, prints "not ok" with file:line for every
   failed one, ends with "NAME: N passed, N failed" and exits 1 on any failure. */
#ifndef FER_TEST_H
#define FER_TEST_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#if defined(__GNUC__) || defined(__clang__)
#define TEST_UNUSED __attribute__((unused))
#else
#define TEST_UNUSED
#endif

static int test_passed, test_failed;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (cond) test_passed++;                                           \
        else {                                                             \
            test_failed++;                                                 \
            printf("not ok: %s:%d: ", __FILE__, __LINE__);                 \
            printf(__VA_ARGS__);                                           \
            printf("\n");                                                  \
            fflush(stdout);                                                \
        }                                                                  \
    } while (0)

TEST_UNUSED static int test_done(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, test_passed, test_failed);
    return test_failed ? 1 : 0;
}

/* Deterministic values in [-1, 1): splitmix64 of a counter. */
TEST_UNUSED static float test_rand(unsigned long long *state)
{
    unsigned long long z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (float)(z >> 40) * (2.0f / 16777216.0f) - 1.0f;
}
TEST_UNUSED static void test_fill(float *x, size_t n, unsigned long long seed, float scale)
{
    size_t i;
    for (i = 0; i < n; i++) x[i] = scale * test_rand(&seed);
}
#endif
