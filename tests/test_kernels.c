/* test_kernels: every SIMD path against the scalar reference, on odd sizes.
   GEMM (all transposes, accumulate, sizes crossing every blocking boundary)
   against a plain triple loop; axpy/dot; conv forward and backward per ISA
   against the scalar ISA and against a direct 7-loop convolution; dense; and a
   whole zoo model per ISA. Only ISAs this CPU runs are tested (the list is printed). */
#define FER_IMPLEMENTATION
#include "fer.h"
#include "test.h"

static float *fa(size_t n) { return (float *)calloc(n ? n : 1, sizeof(float)); }

static double max_rel(const float *a, const float *b, size_t n)
{
    double mx = 0.0, ref = 1e-6;
    size_t i;
    for (i = 0; i < n; i++) if (fabs(b[i]) > ref) ref = fabs(b[i]);
    for (i = 0; i < n; i++) if (fabs((double)a[i] - b[i]) > mx) mx = fabs((double)a[i] - b[i]);
    return mx / ref;
}

static int n_isas;
static fer_isa isas[4];

static void test_gemm(void)
{
    static const int sz[] = { 1, 3, 7, 17, 33, 100, 193, 300 };
    float *pack = fa(fer_gemm_pack_floats());
    int ii, a, b, c, ta, tb, acc;
    for (ii = 0; ii < n_isas; ii++)
        for (a = 0; a < 8; a++) for (b = 0; b < 8; b++) for (c = 0; c < 8; c += (a + b) % 3 + 1)
            for (ta = 0; ta < 2; ta++) for (tb = 0; tb < 2; tb++) {
                int M = sz[a], N = sz[b], K = sz[c];
                float *A = fa((size_t)M * K), *B = fa((size_t)K * N), *C = fa((size_t)M * N), *R = fa((size_t)M * N);
                double e;
                acc = (a + b + c + ta) & 1;
                test_fill(A, (size_t)M * K, 1 + a, 1.0f); test_fill(B, (size_t)K * N, 2 + b, 1.0f);
                test_fill(C, (size_t)M * N, 3, 1.0f); memcpy(R, C, sizeof(float) * (size_t)M * N);
                fer_gemm(isas[ii], ta, tb, M, N, K, A, ta ? M : K, B, tb ? K : N, C, N, acc, pack);
                fer_gemm_reference(ta, tb, M, N, K, A, ta ? M : K, B, tb ? K : N, R, N, acc);
                e = max_rel(C, R, (size_t)M * N);
                CHECK(e < 1e-5, "gemm %s M=%d N=%d K=%d ta=%d tb=%d acc=%d: rel err %.3g",
                      fer_isa_name(isas[ii]), M, N, K, ta, tb, acc, e);
                free(A); free(B); free(C); free(R);
            }
    /* few columns: K in blocks as long as the packed panel allows (N <= 48: of
       3200, N = 140: of 1066), so K crosses them */
    for (ii = 0; ii < n_isas; ii++)
        for (a = 0; a < 2; a++) {
            int M = a ? 17 : 21, N = a ? 140 : 37, K = a ? 1400 : 3500;
            float *A = fa((size_t)M * K), *B = fa((size_t)K * N), *C = fa((size_t)M * N), *R = fa((size_t)M * N);
            test_fill(A, (size_t)M * K, 8, 1.0f); test_fill(B, (size_t)K * N, 9, 1.0f);
            test_fill(C, (size_t)M * N, 10, 1.0f); memcpy(R, C, sizeof(float) * (size_t)M * N);
            fer_gemm(isas[ii], 0, 0, M, N, K, A, K, B, N, C, N, a, pack);
            fer_gemm_reference(0, 0, M, N, K, A, K, B, N, R, N, a);
            CHECK(max_rel(C, R, (size_t)M * N) < 1e-5, "gemm %s M=%d N=%d K=%d (long K blocks)", fer_isa_name(isas[ii]), M, N, K);
            free(A); free(B); free(C); free(R);
        }
    /* K a little over one KC block (129..160) in one block, B transposed or not
       (Winograd dW over 144 tiles); N = 1300: too wide for that, two blocks. The
       last strips 16 and 32 wide, rows of 8 and not: the stores of whole vectors */
    for (ii = 0; ii < n_isas; ii++)
        for (a = 0; a < 6; a++) {
            int M = a & 1 ? 24 : 21, N = a < 2 ? 208 : a < 4 ? 512 : 1300, K = a < 2 ? 144 : a < 4 ? 160 : 150, t = a & 1;
            float *A = fa((size_t)M * K), *B = fa((size_t)K * N), *C = fa((size_t)M * N), *R = fa((size_t)M * N);
            test_fill(A, (size_t)M * K, 11, 1.0f); test_fill(B, (size_t)K * N, 12, 1.0f);
            test_fill(C, (size_t)M * N, 13, 1.0f); memcpy(R, C, sizeof(float) * (size_t)M * N);
            fer_gemm(isas[ii], 0, t, M, N, K, A, K, B, t ? K : N, C, N, a > 1, pack);
            fer_gemm_reference(0, t, M, N, K, A, K, B, t ? K : N, R, N, a > 1);
            CHECK(max_rel(C, R, (size_t)M * N) < 1e-5, "gemm %s M=%d N=%d K=%d tb=%d (K just over a block)",
                  fer_isa_name(isas[ii]), M, N, K, t);
            free(A); free(B); free(C); free(R);
        }
    /* N beyond one NC block and K beyond one KC block, with padded leading dimensions */
    for (ii = 0; ii < n_isas; ii++) {
        int M = 13, N = 1300, K = 270, lda = K + 3, ldb = N + 5, ldc = N + 7;
        float *A = fa((size_t)M * lda), *B = fa((size_t)K * ldb), *C = fa((size_t)M * ldc), *R = fa((size_t)M * ldc);
        test_fill(A, (size_t)M * lda, 5, 1.0f); test_fill(B, (size_t)K * ldb, 6, 1.0f);
        fer_gemm(isas[ii], 0, 0, M, N, K, A, lda, B, ldb, C, ldc, 0, pack);
        fer_gemm_reference(0, 0, M, N, K, A, lda, B, ldb, R, ldc, 0);
        CHECK(max_rel(C, R, (size_t)M * ldc) < 1e-5, "gemm %s large blocks", fer_isa_name(isas[ii]));
        free(B);
        /* and B transposed (N x K, padded rows): the transposing packers' edges */
        B = fa((size_t)N * (K + 9));
        test_fill(B, (size_t)N * (K + 9), 7, 1.0f);
        fer_gemm(isas[ii], 0, 1, M, N, K, A, lda, B, K + 9, C, ldc, 1, pack);
        fer_gemm_reference(0, 1, M, N, K, A, lda, B, K + 9, R, ldc, 1);
        CHECK(max_rel(C, R, (size_t)M * ldc) < 1e-5, "gemm %s large blocks, B transposed", fer_isa_name(isas[ii]));
        free(A); free(B); free(C); free(R);
    }
    free(pack);
}

static void test_axpy_dot(void)
{
    int ii, n;
    for (ii = 0; ii < n_isas; ii++)
        for (n = 0; n <= 70; n += (n < 20 ? 1 : 7)) {
            float x[80], y[80], r[80], d, dr = 0.0f;
            int i;
            test_fill(x, 80, 7 + n, 1.0f); test_fill(y, 80, 8 + n, 1.0f);
            memcpy(r, y, sizeof r);
            fer_axpy(isas[ii], n, 0.37f, x, y);
            for (i = 0; i < n; i++) r[i] += 0.37f * x[i];
            CHECK(max_rel(y, r, 80) < 1e-6, "axpy %s n=%d", fer_isa_name(isas[ii]), n);
            d = fer_dot(isas[ii], n, x, y);
            for (i = 0; i < n; i++) dr += x[i] * y[i];
            CHECK(fabsf(d - dr) <= 1e-5f * (1.0f + fabsf(dr)), "dot %s n=%d: %g vs %g", fer_isa_name(isas[ii]), n, d, dr);
        }
}

/* The definition of convolution, written out. */
static void conv_direct(const fer_conv_geom *g, float *out, const float *in, const float *w, const float *b)
{
    int s, o, c, oy, ox, ky, kx, cg = g->cin / g->groups, og = g->cout / g->groups;
    for (s = 0; s < g->n; s++) for (o = 0; o < g->cout; o++) for (oy = 0; oy < g->oh; oy++) for (ox = 0; ox < g->ow; ox++) {
        double acc = b ? b[o] : 0.0;
        int grp = o / og;
        for (c = 0; c < cg; c++) for (ky = 0; ky < g->kh; ky++) for (kx = 0; kx < g->kw; kx++) {
            int iy = oy * g->sh - g->ph + ky, ix = ox * g->sw - g->pw + kx;
            if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w) continue;
            acc += (double)w[((size_t)o * cg + c) * g->kh * g->kw + ky * g->kw + kx] *
                   in[(((size_t)s * g->cin + grp * cg + c) * g->h + iy) * g->w + ix];
        }
        out[(((size_t)s * g->cout + o) * g->oh + oy) * g->ow + ox] = (float)acc;
    }
}

/* The adjoint of conv_direct, as plain loops: din, dw and db from dout (an
   independent reference for every backward path, the scalar one included). */
static void conv_direct_backward(const fer_conv_geom *g, float *din, float *dw, float *db,
                                 const float *dout, const float *in, const float *w)
{
    int s, o, c, oy, ox, ky, kx, cg = g->cin / g->groups, og = g->cout / g->groups;
    size_t nin = (size_t)g->n * g->cin * g->h * g->w, nw = (size_t)g->cout * cg * g->kh * g->kw;
    double *di = (double *)calloc(nin, sizeof(double)), *dd = (double *)calloc(nw, sizeof(double));
    size_t i;
    for (o = 0; o < g->cout; o++) db[o] = 0.0f;
    for (s = 0; s < g->n; s++) for (o = 0; o < g->cout; o++) for (oy = 0; oy < g->oh; oy++) for (ox = 0; ox < g->ow; ox++) {
        double d = dout[(((size_t)s * g->cout + o) * g->oh + oy) * g->ow + ox];
        int grp = o / og;
        db[o] += (float)d;
        for (c = 0; c < cg; c++) for (ky = 0; ky < g->kh; ky++) for (kx = 0; kx < g->kw; kx++) {
            int iy = oy * g->sh - g->ph + ky, ix = ox * g->sw - g->pw + kx;
            size_t wi = ((size_t)o * cg + c) * g->kh * g->kw + ky * g->kw + kx;
            size_t xi = (((size_t)s * g->cin + grp * cg + c) * g->h + iy) * g->w + ix;
            if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w) continue;
            dd[wi] += d * in[xi];
            di[xi] += d * w[wi];
        }
    }
    for (i = 0; i < nin; i++) din[i] = (float)di[i];
    for (i = 0; i < nw; i++) dw[i] = (float)dd[i];
    free(di); free(dd);
}

/* ReLU and ReLU6, forward and backward, per ISA: bit-identical to the scalar
   loops on every length up to two vectors and beyond, with NaN, -0, 6 and inf. */
static void test_relu(void)
{
    static const float special[] = { NAN, -0.0f, 0.0f, 6.0f, INFINITY, -INFINITY, 5.9999995f, 1e-40f };
    int ii, six, n;
    for (ii = 0; ii < n_isas; ii++)
        for (six = 0; six < 2; six++)
            for (n = 0; n < 70; n += (n < 34 ? 1 : 7)) {
                float *x = fa((size_t)n), *y = fa((size_t)n), *r = fa((size_t)n), *dy = fa((size_t)n);
                float *dx = fa((size_t)n), *dr = fa((size_t)n);
                int i;
                test_fill(x, (size_t)n, 40 + n, 8.0f);
                test_fill(dy, (size_t)n, 41 + n, 1.0f);
                test_fill(dx, (size_t)n, 42 + n, 1.0f);
                for (i = 0; i < n; i += 3) x[i] = special[(i / 3) % 8];
                for (i = 1; i < n; i += 5) dx[i] = -0.0f;
                memcpy(dr, dx, sizeof(float) * (size_t)n);
                fer__vrelu(isas[ii], six, (size_t)n, y, x);
                fer__vrelu_scalar(six, (size_t)n, r, x);
                CHECK(!memcmp(y, r, sizeof(float) * (size_t)n), "relu%s forward %s n=%d", six ? "6" : "", fer_isa_name(isas[ii]), n);
                fer__vrelu_backward(isas[ii], six, 0, (size_t)n, dx, dy, x);   /* x as y: the specials too */
                fer__vrelu_backward_scalar(six, 0, (size_t)n, dr, dy, x);
                CHECK(!memcmp(dx, dr, sizeof(float) * (size_t)n), "relu%s backward %s n=%d", six ? "6" : "", fer_isa_name(isas[ii]), n);
                /* assign (the first writer of dx): equal to accumulating into zeros */
                for (i = 0; i < n; i++) { dr[i] = 0.0f; dx[i] = (float)i; }
                fer__vrelu_backward(isas[ii], six, 1, (size_t)n, dx, dy, x);
                fer__vrelu_backward_scalar(six, 0, (size_t)n, dr, dy, x);
                CHECK(!memcmp(dx, dr, sizeof(float) * (size_t)n), "relu%s backward (assign) %s n=%d", six ? "6" : "", fer_isa_name(isas[ii]), n);
                memcpy(y, x, sizeof(float) * (size_t)n);            /* in place, as a fused conv runs it */
                fer__vrelu(isas[ii], six, (size_t)n, y, y);
                CHECK(!memcmp(y, r, sizeof(float) * (size_t)n), "relu%s in place %s n=%d", six ? "6" : "", fer_isa_name(isas[ii]), n);
                free(x); free(y); free(r); free(dy); free(dx); free(dr);
            }
}

/* Max pooling per ISA: outputs and argmax identical to the scalar loops, over
   window sizes, strides and paddings, odd plane sizes, ties, -inf and NaN. */
static void test_maxpool(void)
{
    static const int geo[][3] = { { 2, 2, 0 }, { 3, 2, 1 }, { 3, 1, 1 }, { 3, 2, 0 }, { 2, 1, 0 }, { 5, 2, 2 } };
    static const int sizes[] = { 1, 2, 5, 9, 16, 33, 48, 70 };
    int ii, g, a, b;
    for (ii = 0; ii < n_isas; ii++)
        for (g = 0; g < 6; g++)
            for (a = 0; a < 8; a++)
                for (b = 0; b < 8; b += 3) {
                    int k = geo[g][0], st = geo[g][1], p = geo[g][2], h = sizes[a], w = sizes[b], i;
                    int oh = (h + 2 * p - k) / st + 1, ow = (w + 2 * p - k) / st + 1;
                    size_t nin = (size_t)3 * 7 * h * w, nout = (size_t)3 * 7 * (oh > 0 ? oh : 0) * (ow > 0 ? ow : 0);
                    float *x, *y, *r;
                    int32_t *ia, *ib;
                    if (oh < 1 || ow < 1 || p >= k) continue;
                    x = fa(nin); y = fa(nout); r = fa(nout);
                    ia = (int32_t *)calloc(nout + 1, sizeof(int32_t)); ib = (int32_t *)calloc(nout + 1, sizeof(int32_t));
                    test_fill(x, nin, 50 + a * 8 + b, 4.0f);
                    for (i = 0; i < (int)nin; i++) x[i] = floorf(x[i]);      /* many ties */
                    for (i = 7; i < (int)nin; i += 23) x[i] = NAN;
                    for (i = 3; i < (int)nin; i += 11) x[i] = -INFINITY;   /* a window's first candidate may be -inf */
                    fer__maxpool_forward(isas[ii], y, ia, x, 3, 7, h, w, k, st, p);
                    fer__maxpool_forward(FER_ISA_SCALAR, r, ib, x, 3, 7, h, w, k, st, p);
                    CHECK(!memcmp(y, r, sizeof(float) * nout) && !memcmp(ia, ib, sizeof(int32_t) * nout),
                          "maxpool %s k%d s%d p%d %dx%d", fer_isa_name(isas[ii]), k, st, p, h, w);
#if defined(FER__X86)
                    if ((isas[ii] == FER_ISA_AVX512 || isas[ii] == FER_ISA_AVX2) && st <= 2) {
                        /* the inference path (no argmax) on the same data without NaN */
                        float *t = fa((size_t)w + 2 * p + 64);
                        for (i = 7; i < (int)nin; i += 23) x[i] = (float)(i % 5) - 2.0f;
                        fer__maxpool_forward(FER_ISA_SCALAR, r, ib, x, 3, 7, h, w, k, st, p);
                        for (i = 0; i < (int)nout; i++) y[i] = -1e30f;
                        if (isas[ii] == FER_ISA_AVX512) fer__maxpool_infer_avx512(y, x, 3 * 7, h, w, k, st, p, t);
                        else fer__maxpool_infer_avx2(y, x, 3 * 7, h, w, k, st, p, t);
                        CHECK(!memcmp(y, r, sizeof(float) * nout), "maxpool inference %s k%d s%d p%d %dx%d",
                              fer_isa_name(isas[ii]), k, st, p, h, w);
                        if (isas[ii] == FER_ISA_AVX512) {   /* 16 planes a vector, without argmax */
                            for (i = 0; i < (int)nout; i++) y[i] = -1e30f;
                            fer__maxpool_planes_avx512(y, NULL, x, 3 * 7, h, w, k, st, p);
                            CHECK(!memcmp(y, r, sizeof(float) * nout), "maxpool of planes without argmax k%d s%d p%d %dx%d",
                                  k, st, p, h, w);
                        }
                        free(t);
                    }
#endif
                    free(x); free(y); free(r); free(ia); free(ib);
                }
}

#if defined(FER__X86)
/* The depthwise kernels' tap masks made in vectors equal the scalar loop's, over
   planes narrower and wider than a vector, square and not, ending mid-vector. */
static void test_dw3_masks(void)
{
    static const int hw[][2] = { { 1, 1 }, { 3, 3 }, { 6, 6 }, { 5, 19 }, { 12, 12 }, { 48, 48 }, { 7, 40 }, { 33, 17 } };
    int k, b0, j, t, bad = 0;
    if (fer_cpu_best_isa() != FER_ISA_AVX512) return;
    for (k = 0; k < 8; k++) {
        int h = hw[k][0], w = hw[k][1], nv = (h * w + 15) / 16;
        for (b0 = 0; b0 < nv; b0 += FER__DW3_BLOCK) {
            __mmask16 a[FER__DW3_BLOCK][9], b[FER__DW3_BLOCK][9];
            int nb = nv - b0 < FER__DW3_BLOCK ? nv - b0 : FER__DW3_BLOCK;
            fer__dw3_masks(h, w, b0, nb, a);
            fer__dw3_masks_avx512(h, w, b0, nb, b);
            for (j = 0; j < nb; j++) for (t = 0; t < 9; t++) bad += a[j][t] != b[j][t];
        }
    }
    CHECK(bad == 0, "depthwise tap masks in vectors differ from the scalar ones in %d places", bad);
}
#endif

static void test_conv(void)
{
    /* cin, cout, h, w, k, stride, pad, groups */
    static const int cfg[][8] = {
        { 1, 3, 17, 19, 3, 1, 1, 1 }, { 3, 7, 9, 33, 3, 1, 1, 1 }, { 7, 17, 8, 8, 3, 2, 1, 1 },
        { 17, 33, 5, 21, 1, 1, 0, 1 }, { 33, 1, 6, 17, 1, 2, 0, 1 }, { 3, 5, 12, 12, 5, 2, 2, 1 },
        { 7, 7, 13, 35, 3, 1, 1, 7 }, { 17, 17, 9, 9, 3, 2, 1, 17 }, { 33, 33, 4, 49, 5, 1, 2, 33 },
        { 6, 9, 7, 7, 3, 1, 0, 3 }, { 4, 8, 6, 18, 7, 1, 3, 1 }, { 64, 64, 12, 12, 3, 1, 1, 1 },
        { 1, 1, 1, 1, 1, 1, 0, 1 }, { 16, 16, 48, 48, 3, 1, 1, 16 }, { 5, 5, 11, 6, 3, 1, 0, 5 },
        { 3, 3, 1, 1, 3, 1, 1, 3 }, { 128, 7, 3, 3, 3, 1, 1, 1 }, { 64, 16, 2, 2, 3, 1, 1, 1 },
        { 24, 24, 26, 37, 3, 2, 1, 24 }, { 8, 8, 15, 16, 5, 2, 2, 8 }, { 4, 4, 2, 3, 3, 2, 1, 4 },
        /* Winograd F(2x2, 3x3) (AVX-512, AVX2): odd output sizes, pads 0 and 2, rows of more than 16 tiles */
        { 32, 64, 17, 19, 3, 1, 1, 1 }, { 33, 65, 20, 21, 3, 1, 0, 1 }, { 32, 64, 14, 13, 3, 1, 2, 1 },
        { 32, 72, 10, 40, 3, 1, 1, 1 }, { 64, 48, 18, 15, 3, 1, 1, 1 },
        /* small planes, several samples per GEMM (9 samples: a full batch and a part) */
        { 40, 24, 6, 6, 3, 1, 1, 1 }, { 24, 40, 6, 6, 1, 1, 0, 1 }, { 16, 20, 11, 9, 3, 2, 1, 1 },
        /* 3x3 stride-2 depthwise, pads 0 and 2 (the input gradient by phase) */
        { 12, 12, 13, 20, 3, 2, 0, 12 }, { 10, 10, 11, 35, 3, 2, 2, 10 },
        /* 3x3 depthwise straight from the planes: "same" stride 1 over planes of
           fewer and more than 16 floats (vectors spanning rows; first, inner and
           last planes; rows of 16+ floats with 64+ planes), stride 2 with pads 0 and 1 and rows of more than 16 outputs */
        { 40, 40, 6, 6, 3, 1, 1, 40 }, { 9, 9, 3, 3, 3, 1, 1, 9 }, { 20, 20, 12, 12, 3, 1, 1, 20 },
        { 40, 40, 5, 19, 3, 1, 1, 40 }, { 3, 3, 2, 7, 3, 1, 1, 3 }, { 32, 32, 12, 12, 3, 2, 1, 32 },
        { 6, 6, 7, 40, 3, 2, 0, 6 }, { 6, 6, 34, 35, 3, 2, 1, 6 },
        /* Winograd over blocks of several samples' small planes (6x6, 12x11, 5x7,
           4x4; n in wino_n: a full block and a part), forward, dX and dW */
        { 64, 64, 6, 6, 3, 1, 1, 1 }, { 64, 72, 12, 11, 3, 1, 1, 1 }, { 64, 64, 5, 7, 3, 1, 1, 1 },
        { 96, 64, 4, 4, 3, 1, 1, 1 },
        /* one sample's small planes as an implicit im2col, K in one long block */
        { 64, 72, 6, 6, 3, 1, 1, 1 }, { 256, 16, 4, 5, 3, 1, 1, 1 }, { 40, 24, 11, 11, 3, 1, 1, 1 },
        /* stride 2 as an implicit im2col over the padded planes' four phases: odd and
           even sizes, pads 0, 1 and 2, kernels 3, 4 and 5, one sample's small planes */
        { 16, 24, 30, 27, 3, 2, 1, 1 }, { 32, 40, 11, 11, 3, 2, 1, 1 }, { 8, 16, 26, 25, 5, 2, 2, 1 },
        { 6, 8, 13, 20, 3, 2, 0, 1 }, { 12, 16, 24, 24, 4, 2, 1, 1 },
        /* stride 1: a "same" 5x5 (rows sharing their padding) and a 3x3 with pad 0 (not) */
        { 8, 12, 14, 13, 5, 1, 2, 1 }, { 10, 12, 13, 16, 3, 1, 0, 1 },
        /* Winograd at batch 1 on 64..127 tiles (72) when the transform is small */
        { 64, 96, 16, 18, 3, 1, 1, 1 },
        /* a 1x1 conv with a short K and a large C block: GEMM tiles row by row */
        { 16, 43, 25, 23, 1, 1, 0, 1 },
        /* a grey-image stem: one input channel, 3x3 same, taps shared by the outputs */
        { 1, 16, 48, 47, 3, 1, 1, 1 },
        /* Winograd F(4x4, 3x3) forward (AVX-512 from 32x32, AVX2 from 20x20): partial tiles at the right and
           bottom, pads 1, 0 and 2, rows of more than 16 tiles, blocks of tile rows
           ending mid-plane, two samples */
        { 32, 64, 33, 35, 3, 1, 1, 1 }, { 33, 64, 36, 38, 3, 1, 0, 1 }, { 32, 64, 32, 70, 3, 1, 2, 1 },
        /* one sample's plane of at most 16 outputs as dot products over rows (im2row),
           from planes of at most 32 floats: 3x3 to 3x3, 4x3 to 4x3, 5x5 to 3x3 at stride 2 */
        { 128, 7, 3, 3, 3, 1, 1, 1 }, { 24, 5, 4, 3, 3, 1, 1, 1 }, { 16, 8, 5, 5, 3, 2, 1, 1 },
        /* F(4x4, 3x3) on AVX2 only (planes of 20..31): partial tiles, two samples */
        { 32, 64, 22, 21, 3, 1, 1, 1 }
    };
    /* samples of the configs from 39 on */
    static const int tail_n[] = { 19, 6, 13, 37, 1, 1, 1, 2, 1, 2, 1, 3, 2, 2, 1, 2, 3, 1, 2, 1, 1, 1, 1, 2 };
    size_t ci;
    int ii;
    for (ci = 0; ci < sizeof(cfg) / sizeof(cfg[0]); ci++) {
        const int *c = cfg[ci];
        fer_conv_geom g;
        size_t nin, nout, nw, ns;
        float *in, *w, *b, *out, *ref, *dout, *din0, *dw0, *db0, *scratch;
        int batched = ci >= 26 && ci <= 28, n = batched ? 9 : ci >= 39 ? tail_n[ci - 39] : 2;
        if (fer_conv_geom_init(&g, n, c[0], c[2], c[3], c[1], c[4], c[4], c[5], c[5], c[6], c[6], c[7]) != FER_OK) {
            CHECK(0, "conv config %zu rejected", ci);
            continue;
        }
        if (batched)
            CHECK(fer__conv_batch(&g) > 1 && fer__conv_batch(&g) < n, "conv config %zu is not batched", ci);
#if defined(FER__X86)
        else if (ci >= 21 && ci <= 25) {   /* these configs are there for the Winograd path: make sure they take it */
            fer_conv_geom gt;
            fer_conv_geom_init(&gt, 1, c[1], g.oh, g.ow, c[0], 3, 3, 1, 1, 2 - c[6], 2 - c[6], 1);
            if (ci < 25)
                CHECK(fer__wino_use(FER_ISA_AVX512, &g, g.n),
                      "conv config %zu does not run as Winograd", ci);
            else
                CHECK(fer__wino_use(FER_ISA_AVX512, &gt, g.n),
                      "conv config %zu: the input gradient does not run as Winograd", ci);
        } else if (ci == 62) {
            CHECK(fer__wino4(FER_ISA_AVX2, &g) && !fer__wino4(FER_ISA_AVX512, &g) && fer__wino_use(FER_ISA_AVX2, &g, g.n),
                  "conv config %zu does not run as Winograd F(4x4, 3x3) on AVX2 only", ci);
        } else if (ci >= 59) {
            int K = c[0] * 9, ohw = g.oh * g.ow;
            CHECK(!fer__conv_implicit(FER_ISA_AVX512, &g) && !fer__wino_use(FER_ISA_AVX512, &g, 1) && ohw <= 16 &&
                  K >= 64 && K >= 4 * (c[1] > ohw ? c[1] : ohw) && FER__IM2COL_SMALL(&g),
                  "conv config %zu does not run as dot products over small rows", ci);
        } else if (ci >= 56) {
            int th, tw, rb, sb, tb;
            fer__wino_dims_m(&g, 4, &th, &tw, &rb, &sb, &tb);
            CHECK(fer__wino4(FER_ISA_AVX512, &g) && fer__wino_use(FER_ISA_AVX512, &g, g.n) && th % rb &&
                  (ci != 58 || tw > 16), "conv config %zu does not run as Winograd F(4x4, 3x3)", ci);
        } else if (ci == 55) {
            CHECK(fer__conv3_c1(&g), "conv config %zu does not take the one-channel 3x3 kernel", ci);
        } else if (ci == 54) {
            CHECK(fer__conv_is_pointwise(&g) && c[0] <= 32 && (size_t)c[1] * g.oh * g.ow >= 16384,
                  "conv config %zu is not a short-K 1x1 conv with a large output", ci);
        } else if (ci == 53) {
            CHECK(fer__wino_use(FER_ISA_AVX512, &g, 1) && (g.oh + 1) / 2 * ((g.ow + 1) / 2) < 128,
                  "conv config %zu does not run as Winograd at batch 1", ci);
        } else if (ci >= 43) {
            CHECK(fer__conv_implicit(FER_ISA_AVX512, &g) && !fer__wino_use(FER_ISA_AVX512, &g, g.n),
                  "conv config %zu does not run as an implicit im2col", ci);
            if (ci >= 51)   /* the last two: rows sharing their padding, then not */
                CHECK(fer__implicit_shared(&g) == (ci == 51), "conv config %zu: shared padding %d", ci, fer__implicit_shared(&g));
        } else if (ci >= 39) {
            fer_conv_geom gt;
            int th, tw, rb, sb, tb;
            fer_conv_geom_init(&gt, 1, c[1], g.oh, g.ow, c[0], 3, 3, 1, 1, 1, 1, 1);
            fer__wino_dims(&g, &th, &tw, &rb, &sb, &tb);
            CHECK(fer__wino_use(FER_ISA_AVX512, &g, g.n) && fer__wino_use(FER_ISA_AVX512, &gt, g.n) && sb > 1 &&
                  g.n > sb && g.n % sb, "conv config %zu does not run as Winograd over blocks of samples", ci);
        } else if (ci >= 31)
            CHECK(fer__dw3_same(&g) || fer__dw3_s2(&g), "conv config %zu does not take the 3x3 depthwise kernels", ci);
#endif
        nin = (size_t)n * c[0] * c[2] * c[3]; nout = (size_t)n * c[1] * g.oh * g.ow;
        nw = (size_t)c[1] * (c[0] / c[7]) * c[4] * c[4]; ns = fer_conv_scratch_floats(&g);
        in = fa(nin); w = fa(nw); b = fa((size_t)c[1]); out = fa(nout); ref = fa(nout); dout = fa(nout);
        din0 = fa(nin); dw0 = fa(nw); db0 = fa((size_t)c[1]); scratch = fa(ns);
        test_fill(in, nin, 1, 1.0f); test_fill(w, nw, 2, 0.5f); test_fill(b, (size_t)c[1], 3, 0.5f);
        test_fill(dout, nout, 4, 1.0f);
        conv_direct(&g, ref, in, w, b);
        conv_direct_backward(&g, din0, dw0, db0, dout, in, w);
        for (ii = 0; ii < n_isas; ii++) {
            float *din = fa(nin), *dw = fa(nw), *db = fa((size_t)c[1]);
            double e;
            fer_conv2d_forward(isas[ii], &g, out, in, w, b, scratch);
            e = max_rel(out, ref, nout);
            CHECK(e < 1e-5, "conv fwd %s cin=%d cout=%d %dx%d k=%d s=%d p=%d g=%d: rel err %.3g",
                  fer_isa_name(isas[ii]), c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], e);
            {   /* the epilogue: relu6(scale * conv + shift) per output channel */
                fer__epi ep;
                float *sc = fa((size_t)c[1]), *sh = fa((size_t)c[1]), *ex = fa(nout);
                size_t k, hw = (size_t)g.oh * g.ow;
                test_fill(sc, (size_t)c[1], 5, 2.0f); test_fill(sh, (size_t)c[1], 6, 3.0f);
                for (k = 0; k < nout; k++) {
                    size_t ch = (k / hw) % (size_t)c[1];
                    float v = sc[ch] * (ref[k] - b[ch]) + sh[ch];
                    ex[k] = v < 0.0f ? 0.0f : v > 6.0f ? 6.0f : v;
                }
                ep.scale = sc; ep.shift = sh; ep.act = 2;
                fer__conv_forward(isas[ii], &g, out, in, w, NULL, &ep, scratch);
                e = max_rel(out, ex, nout);
                CHECK(e < 1e-5, "conv fwd + epilogue %s config %zu: rel err %.3g", fer_isa_name(isas[ii]), ci, e);
                free(sc); free(sh); free(ex);
            }
            fer_conv2d_backward(isas[ii], &g, din, dw, db, dout, in, w, scratch);
            CHECK(max_rel(din, din0, nin) < 1e-5 && max_rel(dw, dw0, nw) < 1e-5 && max_rel(db, db0, (size_t)c[1]) < 1e-5,
                  "conv bwd %s config %zu: din %.3g dw %.3g db %.3g", fer_isa_name(isas[ii]), ci,
                  max_rel(din, din0, nin), max_rel(dw, dw0, nw), max_rel(db, db0, (size_t)c[1]));
            if (ci == 55) {   /* the stem's backward without the input's gradient (as in training) */
                float *dw2 = fa(nw), *db2 = fa((size_t)c[1]);
                fer__conv_backward(isas[ii], &g, NULL, dw2, db2, dout, in, w, scratch, 1);
                CHECK(max_rel(dw2, dw0, nw) < 1e-5 && max_rel(db2, db0, (size_t)c[1]) < 1e-5,
                      "conv bwd (no dX) %s config %zu: dw %.3g db %.3g", fer_isa_name(isas[ii]), ci,
                      max_rel(dw2, dw0, nw), max_rel(db2, db0, (size_t)c[1]));
                free(dw2); free(db2);
            }
            if (c[7] == c[0] && c[1] == c[0]) {   /* depthwise dX written over garbage, and added to what is there */
                float *d1 = fa(nin), *d2 = fa(nin), *ex2 = fa(nin);
                size_t k;
                test_fill(d1, nin, 7, 100.0f); test_fill(d2, nin, 8, 1.0f);
                for (k = 0; k < nin; k++) ex2[k] = d2[k] + din0[k];
                fer__conv_backward(isas[ii], &g, d1, NULL, NULL, dout, in, w, scratch, 1);
                fer__conv_backward(isas[ii], &g, d2, NULL, NULL, dout, in, w, scratch, 0);
                CHECK(max_rel(d1, din0, nin) < 1e-5 && max_rel(d2, ex2, nin) < 1e-5,
                      "depthwise dX %s config %zu: assigned %.3g, added %.3g", fer_isa_name(isas[ii]), ci,
                      max_rel(d1, din0, nin), max_rel(d2, ex2, nin));
                free(d1); free(d2); free(ex2);
            }
            free(din); free(dw); free(db);
        }
        free(in); free(w); free(b); free(out); free(ref); free(dout); free(din0); free(dw0); free(db0); free(scratch);
    }
}

#if defined(FER__X86)
/* The frozen latency workspace's small-plane convs (AVX-512) against the direct
   conv, with the bias alone and with scale, shift and ReLU6 (every output written:
   the output starts at 1e30, as max_rel skips NaN). rows9: fer__rows9_forward
   (else fer__wino4c_forward). */
static void check_small_conv(const fer_conv_geom *g, int rows9, const char *what)
{
    size_t nin = (size_t)g->n * g->cin * g->h * g->w, hw = (size_t)g->oh * g->ow, nout = (size_t)g->n * g->cout * hw;
    size_t nw = (size_t)g->cout * g->cin * g->kh * g->kw, k;
    float *in = fa(nin), *w = fa(nw), *b = fa((size_t)g->cout), *sc = fa((size_t)g->cout), *sh = fa((size_t)g->cout);
    float *ut = fa(rows9 ? fer__rows9_wfloats(g) : fer__wino4c_ufloats(g)), *out = fa(nout), *ref = fa(nout);
    float *ex = fa(nout), *scratch = fa(fer_conv_scratch_floats(g));
    double range = 0.0;   /* of the epilogue's input: ReLU6 clips the outputs' */
    fer__epi ep;
    int pass;
    test_fill(in, nin, 11, 1.0f); test_fill(w, nw, 12, 0.5f); test_fill(b, (size_t)g->cout, 13, 0.5f);
    test_fill(sc, (size_t)g->cout, 14, 2.0f); test_fill(sh, (size_t)g->cout, 15, 3.0f);
    conv_direct(g, ref, in, w, b);
    for (k = 0; k < nout; k++) {
        size_t ch = (k / hw) % (size_t)g->cout;
        float v = sc[ch] * ref[k] + sh[ch];
        ex[k] = v < 0.0f ? 0.0f : v > 6.0f ? 6.0f : v;
        if (fabs(v) > range) range = fabs(v);
    }
    if (rows9) fer__rows9_weights(w, g->cout, g->cin * g->kh * g->kw, ut);
    else CHECK(fer__wino4c_weights(w, g->cout, g->cin, ut, NULL) == FER_OK, "%s: weights", what);
    for (pass = 0; pass < 2; pass++) {
        double e;
        for (k = 0; k < nout; k++) out[k] = 1e30f;
        ep.scale = pass ? sc : NULL; ep.shift = b; ep.act = pass ? 2 : 0;
        if (pass) {   /* relu6(sc * (conv + b) + sh) as one scale and shift */
            size_t o;
            for (o = 0; o < (size_t)g->cout; o++) b[o] = b[o] * sc[o] + sh[o];
        }
        if (rows9) fer__rows9_forward(g, out, in, ut, &ep, scratch);
        else fer__wino4c_forward(g, out, in, ut, &ep, scratch);
        e = pass ? max_rel(out, ex, nout) * 6.0 / range : max_rel(out, ref, nout);
        CHECK(e < 1e-5, "%s cin=%d cout=%d %dx%d k=%d s=%d p=%d n=%d %s: rel err %.3g", what, g->cin, g->cout, g->h,
              g->w, g->kh, g->sh, g->ph, g->n, pass ? "relu6 epilogue" : "bias", e);
    }
    free(in); free(w); free(b); free(sc); free(sh); free(ut); free(out); free(ref); free(ex); free(scratch);
}

/* Whether a frozen latency workspace of batches up to nb runs a cin -> cout k x k
   conv on an h x h plane (stride 1, pad p) as rows9 (else wino4c). */
static int small_use(int rows9, int cin, int h, int cout, int k, int p, int nb)
{
    fer_conv_geom g;
    fer_conv_geom_init(&g, 1, cin, h, h, cout, k, k, 1, 1, p, p, 1);
    return rows9 ? fer__rows9_use(FER_ISA_AVX512, &g, nb) : fer__wino4c_use(FER_ISA_AVX512, &g, nb);
}

/* F(4x4, 3x3) channels-last: partial tiles (11x11, 10x13, pads 0 and 2), channel
   counts off 16 and off 48 (the last strip of the weights' transform padded), 9
   to 36 tiles (rows of 9 and a part), groups of samples and a part group. */
static void test_wino4c(void)
{
    static const int cfg[][6] = {   /* cin, cout, h, w, pad, n */
        { 32, 64, 12, 12, 1, 1 }, { 256, 256, 11, 11, 1, 1 }, { 40, 72, 10, 13, 1, 5 },
        { 64, 100, 24, 22, 1, 1 }, { 48, 64, 14, 14, 0, 2 }, { 33, 80, 18, 18, 2, 1 }
    };
    size_t ci;
    fer_conv_geom g;
    if (fer_cpu_best_isa() != FER_ISA_AVX512) return;
    for (ci = 0; ci < sizeof(cfg) / sizeof(cfg[0]); ci++) {
        const int *c = cfg[ci];
        fer_conv_geom_init(&g, c[5], c[0], c[2], c[3], c[1], 3, 3, 1, 1, c[4], c[4], 1);
        CHECK(fer__wino4c_use(FER_ISA_AVX512, &g, 1) && !fer__wino4c_use(FER_ISA_AVX2, &g, 1) &&
              fer__wino4c_floats(&g) <= fer_conv_scratch_floats(&g),
              "wino4c config %zu does not run channels-last", ci);
        check_small_conv(&g, 0, "wino4c");
    }
    /* not taken: a 9x9 plane, a 48x48 one, a batch of more tiles than a group */
    CHECK(!small_use(0, 64, 9, 64, 3, 1, 1), "a 9x9 plane stays tile-vectorised");
    CHECK(!small_use(0, 64, 48, 64, 3, 1, 1), "a 48x48 plane stays tile-vectorised");
    CHECK(small_use(0, 64, 12, 64, 3, 1, 4) && !small_use(0, 64, 12, 64, 3, 1, 5),
          "a 12x12 plane channels-last up to batch 4 (36 tiles)");
}

/* Few output positions as rows of 9 (fer__rows9_forward): resnet18's 6x6 convs
   (K in 18 blocks, 512 channels in 11 strips) and its stride-2 one (the padded
   input's phases), 25 and 30 positions (a part row block; pad 0: rows not
   sharing their padding), groups of 3 and 2 samples of 12 and 16 positions,
   kernels 4x4 at stride 2 and 5x5, K not a multiple of the block; stride-2
   convs of more positions at batch 1. */
static void test_rows9(void)
{
    static const int cfg[][8] = {   /* cin, cout, h, w, k, stride, pad, n */
        { 512, 512, 6, 6, 3, 1, 1, 1 }, { 256, 512, 11, 11, 3, 2, 1, 1 }, { 64, 72, 5, 5, 3, 1, 1, 1 },
        { 30, 48, 7, 8, 3, 1, 0, 1 }, { 40, 100, 7, 6, 3, 2, 1, 3 }, { 33, 64, 4, 4, 5, 1, 2, 4 },
        { 96, 64, 9, 9, 4, 2, 1, 1 },
        /* stride 2 at batch 1 past 36 positions: resnet18's 64 -> 128 on 44x44 (484), 72 and 56 channels */
        { 64, 128, 44, 44, 3, 2, 1, 1 }, { 40, 56, 15, 17, 3, 2, 1, 1 }
    };
    size_t ci;
    fer_conv_geom g;
    if (fer_cpu_best_isa() != FER_ISA_AVX512) return;
    for (ci = 0; ci < sizeof(cfg) / sizeof(cfg[0]); ci++) {
        const int *c = cfg[ci];
        fer_conv_geom_init(&g, c[7], c[0], c[2], c[3], c[1], c[4], c[4], c[5], c[5], c[6], c[6], 1);
        CHECK(fer__rows9_use(FER_ISA_AVX512, &g, 1) && !fer__rows9_use(FER_ISA_AVX2, &g, 1) &&
              fer__rows9_floats(&g) <= fer_conv_scratch_floats(&g), "rows9 config %zu not taken", ci);
        check_small_conv(&g, 1, "rows9");
    }
    /* not taken: K below 256, more than 36 positions, a batch past one group, 1x1 */
    CHECK(!small_use(1, 28, 6, 64, 3, 1, 1), "K = 252 stays an implicit im2col");
    CHECK(!small_use(1, 64, 7, 64, 3, 1, 1), "49 positions at stride 1 stay an implicit im2col");
    CHECK(small_use(1, 64, 3, 64, 3, 1, 4) && !small_use(1, 64, 3, 64, 3, 1, 5), "3x3 outputs as rows up to batch 4");
    CHECK(!small_use(1, 512, 6, 64, 1, 0, 1), "a 1x1 conv is not taken");
}
#endif

/* Training batch norm over more channels than one group (FER__BN_GROUP) with the
   ReLU/ReLU6 after it: the statistics of every channel against double precision,
   and the fused backward (the activation's mask applied on the fly) bit for bit
   equal to the activation's backward followed by the norm's. */
static void test_batchnorm_relu(void)
{
    int ii, act;
    for (ii = 0; ii < n_isas; ii++)
        for (act = 1; act <= 2; act++) {
            int n = 2, c = FER__BN_GROUP + 3, hw = 33, ch, s, i, same = 1, stats = 1;
            size_t len = (size_t)n * c * hw;
            float *x = fa(len), *z = fa(len), *dz = fa(len), *dy = fa(len), *dx1 = fa(len), *dx2 = fa(len);
            float *g = fa((size_t)c), *b = fa((size_t)c), *mean = fa((size_t)c), *var = fa((size_t)c), *is = fa((size_t)c);
            float *dg1 = fa((size_t)c), *db1 = fa((size_t)c), *dg2 = fa((size_t)c), *db2 = fa((size_t)c);
            float *ab = fa(2 * (size_t)c);   /* the forward's affine, from which the fused backward remakes the mask */
            test_fill(x, len, 21, 4.0f); test_fill(dz, len, 22, 1.0f);
            test_fill(g, (size_t)c, 23, 3.0f); test_fill(b, (size_t)c, 24, 3.0f);
            for (i = 0; i < (int)len; i++) { dx1[i] = 0.5f; dx2[i] = 0.5f; }
            memset(dg1, 0, sizeof(float) * (size_t)c); memset(db1, 0, sizeof(float) * (size_t)c);
            memset(dg2, 0, sizeof(float) * (size_t)c); memset(db2, 0, sizeof(float) * (size_t)c);
            fer__bn_forward_train(isas[ii], z, mean, var, is, ab, x, g, b, n, c, hw, 1e-5f, act);
            for (ch = 0; ch < c; ch++) {
                double m = 0, v = 0, cnt = (double)n * hw;
                for (s = 0; s < n; s++) for (i = 0; i < hw; i++) m += x[((size_t)s * c + ch) * hw + i];
                m /= cnt;
                for (s = 0; s < n; s++) for (i = 0; i < hw; i++) { double d = x[((size_t)s * c + ch) * hw + i] - m; v += d * d; }
                v /= cnt;
                stats &= fabs(mean[ch] - m) <= 1e-5 * (1.0 + fabs(m)) && fabs(var[ch] - v) <= 1e-4 * v + 1e-6;
                for (s = 0; s < n; s++) for (i = 0; i < hw; i++) {
                    size_t k = ((size_t)s * c + ch) * hw + i;
                    double y = g[ch] * (x[k] - m) / sqrt(v + 1e-5) + b[ch];
                    y = y < 0.0 ? 0.0 : act == 2 && y > 6.0 ? 6.0 : y;
                    stats &= fabs(z[k] - y) <= 1e-4 * (1.0 + fabs(y));
                }
            }
            CHECK(stats, "bn+act %d forward %s over %d channels", act, fer_isa_name(isas[ii]), c);
            fer__vrelu_backward(isas[ii], act == 2, 1, len, dy, dz, z);
            fer__bn_backward(isas[ii], dx1, dg1, db1, dy, NULL, 0, x, mean, is, g, n, c, hw, 0);
            fer__bn_backward(isas[ii], dx2, dg2, db2, dz, ab, act, x, mean, is, g, n, c, hw, 0);
            for (i = 0; i < (int)len; i++) same &= dx1[i] == dx2[i];
            for (ch = 0; ch < c; ch++) same &= dg1[ch] == dg2[ch] && db1[ch] == db2[ch];
            CHECK(same, "bn backward with act %d %s: fused differs from act backward + bn backward",
                  act, fer_isa_name(isas[ii]));
            free(x); free(z); free(dz); free(dy); free(dx1); free(dx2); free(g); free(b); free(mean); free(var);
            free(is); free(dg1); free(db1); free(dg2); free(db2); free(ab);
        }
}

/* Training batch norm, forward and backward, per ISA, against double-precision
   loops; the data sit far from zero (mean 1000, spread 1) so the one-pass
   statistics must keep their accuracy. */
static void test_batchnorm(void)
{
    static const int hws[] = { 1, 7, 33, 100 };
    int ii, hi, off;
    for (ii = 0; ii < n_isas; ii++)
        for (hi = 0; hi < 4; hi++)
            for (off = 0; off < 2; off++) {
                int n = 3, c = 5, hw = hws[hi], ch, s, i;
                size_t len = (size_t)n * c * hw;
                float *x = fa(len), *y = fa(len), *dy = fa(len), *dx = fa(len), *g = fa((size_t)c), *b = fa((size_t)c);
                float mean[5], var[5], is[5], dg[5] = { 0 }, db[5] = { 0 };
                double worst = 0.0;
                test_fill(x, len, 11 + hi, 1.0f); test_fill(dy, len, 12 + hi, 1.0f);
                test_fill(g, (size_t)c, 13, 1.0f); test_fill(b, (size_t)c, 14, 1.0f);
                for (i = 0; i < (int)len; i++) x[i] += off ? 1000.0f : 0.0f;
                fer__bn_forward_train(isas[ii], y, mean, var, is, NULL, x, g, b, n, c, hw, 1e-5f, 0);
                fer__bn_backward(isas[ii], dx, dg, db, dy, NULL, 0, x, mean, is, g, n, c, hw, 0);
                for (ch = 0; ch < c; ch++) {
                    double m = 0, v = 0, sdy = 0, sdyh = 0, cnt = (double)n * hw, inv;
                    for (s = 0; s < n; s++) for (i = 0; i < hw; i++) m += x[((size_t)s * c + ch) * hw + i];
                    m /= cnt;
                    for (s = 0; s < n; s++) for (i = 0; i < hw; i++) { double d = x[((size_t)s * c + ch) * hw + i] - m; v += d * d; }
                    v /= cnt;
                    inv = 1.0 / sqrt(v + 1e-5);
                    CHECK(fabs(mean[ch] - m) <= 1e-6 * (1.0 + fabs(m)) && fabs(var[ch] - v) <= 1e-4 * v + 1e-6,
                          "bn stats %s hw=%d offset=%d ch=%d: mean %.9g vs %.9g, var %.7g vs %.7g",
                          fer_isa_name(isas[ii]), hw, off, ch, mean[ch], m, var[ch], v);
                    for (s = 0; s < n; s++) for (i = 0; i < hw; i++) {
                        size_t k = ((size_t)s * c + ch) * hw + i;
                        double h = (x[k] - m) * inv;
                        sdy += dy[k]; sdyh += dy[k] * h;
                        if (fabs(y[k] - (g[ch] * h + b[ch])) > worst) worst = fabs(y[k] - (g[ch] * h + b[ch]));
                    }
                    CHECK(fabs(db[ch] - sdy) <= 1e-4 * (1.0 + fabs(sdy)) && fabs(dg[ch] - sdyh) <= 2e-3 * (1.0 + fabs(sdyh)),
                          "bn dgamma/dbeta %s hw=%d offset=%d ch=%d", fer_isa_name(isas[ii]), hw, off, ch);
                    for (s = 0; s < n; s++) for (i = 0; i < hw; i++) {
                        size_t k = ((size_t)s * c + ch) * hw + i;
                        double h = (x[k] - m) * inv, r = g[ch] * inv * (dy[k] - sdy / cnt - h * sdyh / cnt);
                        if (fabs(dx[k] - r) > worst) worst = fabs(dx[k] - r);
                    }
                }
                /* offset 1000: x itself carries float rounding of 6e-5 */
                CHECK(worst < (off ? 1e-3 : 1e-4), "bn out/din %s hw=%d offset=%d: worst abs err %.3g",
                      fer_isa_name(isas[ii]), hw, off, worst);
                free(x); free(y); free(dy); free(dx); free(g); free(b);
            }
}

static void test_dense(void)
{
    /* n < 4: the matrix-vector path (AVX-512: eight rows at a time, then single rows; AVX2: four rows, a
       partial last group; both a masked last chunk) */
    static const int cfg[][3] = { { 1, 17, 7 }, { 3, 33, 1 }, { 5, 100, 13 }, { 64, 300, 7 }, { 2, 1, 1 },
                                  { 1, 37, 19 }, { 2, 300, 16 }, { 3, 16, 8 }, { 1, 9216, 27 } };
    float *pack = fa(fer_gemm_pack_floats());
    size_t ci;
    int ii;
    for (ci = 0; ci < sizeof(cfg) / sizeof(cfg[0]); ci++) {
        int n = cfg[ci][0], nin = cfg[ci][1], nout = cfg[ci][2], i, j, k;
        float *x = fa((size_t)n * nin), *w = fa((size_t)nin * nout), *b = fa((size_t)nout);
        float *y = fa((size_t)n * nout), *r = fa((size_t)n * nout), *dy = fa((size_t)n * nout);
        float *dx0 = fa((size_t)n * nin), *dw0 = fa((size_t)nin * nout);
        test_fill(x, (size_t)n * nin, 1, 1.0f); test_fill(w, (size_t)nin * nout, 2, 1.0f);
        test_fill(b, (size_t)nout, 3, 1.0f); test_fill(dy, (size_t)n * nout, 4, 1.0f);
        for (i = 0; i < n; i++) for (j = 0; j < nout; j++) {
            double s = b[j];
            for (k = 0; k < nin; k++) s += (double)x[i * nin + k] * w[j * nin + k];
            r[i * nout + j] = (float)s;
        }
        fer_dense_backward(FER_ISA_SCALAR, dx0, dw0, NULL, dy, x, w, n, nin, nout, pack);
        for (ii = 0; ii < n_isas; ii++) {
            float *dx = fa((size_t)n * nin), *dw = fa((size_t)nin * nout);
            fer_dense_forward(isas[ii], y, x, w, b, n, nin, nout, pack);
            CHECK(max_rel(y, r, (size_t)n * nout) < 1e-5, "dense fwd %s n=%d nin=%d nout=%d", fer_isa_name(isas[ii]), n, nin, nout);
            fer_dense_backward(isas[ii], dx, dw, NULL, dy, x, w, n, nin, nout, pack);
            CHECK(max_rel(dx, dx0, (size_t)n * nin) < 1e-5 && max_rel(dw, dw0, (size_t)nin * nout) < 1e-5,
                  "dense bwd %s n=%d nin=%d nout=%d", fer_isa_name(isas[ii]), n, nin, nout);
            free(dx); free(dw);
        }
        free(x); free(w); free(b); free(y); free(r); free(dy); free(dx0); free(dw0);
    }
    free(pack);
}

/* whole models: training forward + backward per ISA against the scalar ISA */
static void test_models(void)
{
    static const char *names[] = { "mini_xception", "mobilenetv2_lite", "vgg16_dsc_cbam" };
    size_t mi;
    int ii;
    for (mi = 0; mi < 3; mi++) {
        fer_model m;
        fer_workspace ws;
        float *x = fa(2 * 48 * 48), dy[14], *y0 = fa(14), *g0;
        if (fer_zoo_build(&m, names[mi], 1, 48, 48, 7, 3, NULL) != FER_OK) { CHECK(0, "%s: %s", names[mi], m.error); continue; }
        fer_workspace_init(&ws, &m, 2, 1);
        g0 = fa(m.n_params);
        test_fill(x, 2 * 48 * 48, 9, 1.0f); test_fill(dy, 14, 10, 1.0f);
        for (ii = -1; ii < n_isas; ii++) {
            ws.isa = ii < 0 ? FER_ISA_SCALAR : isas[ii];
            fer_zero_grad(&m, &ws);
            fer_forward(&m, &ws, x, 2, 1);
            fer_backward(&m, &ws, dy);
            if (ii < 0) { memcpy(y0, fer_output(&m, &ws), sizeof(float) * 14); memcpy(g0, ws.pgrad, sizeof(float) * m.n_params); continue; }
            CHECK(max_rel(fer_output(&m, &ws), y0, 14) < 1e-4, "%s forward %s: rel err %.3g", names[mi],
                  fer_isa_name(isas[ii]), max_rel(fer_output(&m, &ws), y0, 14));
            CHECK(max_rel(ws.pgrad, g0, m.n_params) < 1e-3, "%s backward %s: rel err %.3g", names[mi],
                  fer_isa_name(isas[ii]), max_rel(ws.pgrad, g0, m.n_params));
        }
        free(x); free(y0); free(g0);
        fer_workspace_free(&ws);
        fer_model_free(&m);
    }
}

int main(void)
{
    fer_isa best = fer_cpu_best_isa(), i;
    for (i = FER_ISA_SCALAR; i <= best; i = (fer_isa)(i + 1)) {
#if !defined(__aarch64__)
        if (i == FER_ISA_NEON) continue;
#endif
        isas[n_isas++] = i;
    }
    printf("ISAs tested:");
    for (i = (fer_isa)0; (int)i < n_isas; i = (fer_isa)(i + 1)) printf(" %s", fer_isa_name(isas[i]));
    printf("\n");
    test_gemm();
    test_axpy_dot();
    test_relu();
    test_maxpool();
#if defined(FER__X86)
    test_dw3_masks();
#endif
    test_conv();
#if defined(FER__X86)
    test_wino4c();
    test_rows9();
#endif
    test_batchnorm();
    test_batchnorm_relu();
    test_dense();
    test_models();
    return test_done("test_kernels");
}
