/* test_alloc: the allocator macros carry the user context to every allocation,
   every allocation is freed, and forward/backward allocate nothing. */
#include <stdlib.h>
#include <stddef.h>

typedef struct counter { long allocs, frees, live; size_t bytes; } counter;
static void *count_malloc(size_t n, void *ctx)
{
    counter *c = (counter *)ctx;
    if (!c) abort();                 /* a NULL context means it was dropped somewhere */
    c->allocs++; c->live++; c->bytes += n;
    return malloc(n);
}
static void count_free(void *p, void *ctx)
{
    counter *c = (counter *)ctx;
    if (!c) abort();
    if (p) { c->frees++; c->live--; }
    free(p);
}
#define FER_MALLOC(sz, ctx) count_malloc(sz, ctx)
#define FER_FREE(p, ctx) count_free(p, ctx)
#define FER_NO_STB_IMAGE
#define FER_IMPLEMENTATION
#include "fer.h"
#include "test.h"

int main(void)
{
    counter c = { 0, 0, 0, 0 };
    fer_model m, m2;
    fer_workspace ws;
    float x[2 * 48 * 48], dy[14];
    void *buf;
    size_t len;
    long before;
    CHECK(fer_zoo_build(&m, "vgg16_dsc_cbam", 1, 48, 48, 7, 1, &c) == FER_OK, "build: %s", m.error);
    CHECK(c.allocs > 0, "the model allocated through FER_MALLOC with the context");
    CHECK(fer_workspace_init(&ws, &m, 2, 1) == FER_OK, "workspace");
    test_fill(x, 2 * 48 * 48, 1, 1.0f); test_fill(dy, 14, 2, 1.0f);
    before = c.allocs;
    fer_forward(&m, &ws, x, 2, 1);
    fer_backward(&m, &ws, dy);
    fer_bn_update_running(&m, &ws);
    fer_forward(&m, &ws, x, 2, 0);
    CHECK(c.allocs == before, "forward and backward allocated nothing (%ld allocations)", c.allocs - before);
    CHECK(fer_model_save_mem(&m, &buf, &len, &c) == FER_OK, "save_mem");
    CHECK(fer_model_load_mem(&m2, buf, len, &c) == FER_OK, "load_mem: %s", m2.error);
    count_free(buf, &c);
    fer_model_free(&m2);
    fer_workspace_free(&ws);
    fer_model_free(&m);
    CHECK(c.live == 0, "every allocation freed (%ld live)", c.live);
    /* failures free what they took too */
    fer_model_init(&m, 1, 8, 8, 3, &c);
    fer_conv(&m, FER_INPUT, 4, 3, 3, 1, 1, 1, 0);
    CHECK(fer_model_finalize(&m, 1) == FER_ERR_SHAPE, "bad output size refused");
    fer_model_free(&m);
    CHECK(c.live == 0, "nothing leaks on a refused model (%ld live)", c.live);
    return test_done("test_alloc");
}
