/* test_infer: image decoding, preprocessing, prediction, multi-threaded batch
   inference, and that inference never modifies the model. */
#define FER_IMPLEMENTATION
#include "fer.h"
#include "test.h"

static const char *tmpdir(void)
{
    const char *t = getenv("TMPDIR");
    return t && *t ? t : "/tmp";
}

static void write_pgm(const char *path, int w, int h, const unsigned char *px)
{
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fprintf(f, "P5\n%d %d\n255\n", w, h);
    fwrite(px, 1, (size_t)w * h, f);
    fclose(f);
}

static void test_image(void)
{
    char path[512], err[256];
    unsigned char px[7 * 5], *img;
    int i, w = 0, h = 0;
    FILE *f;
    for (i = 0; i < 35; i++) px[i] = (unsigned char)(i * 7);
    snprintf(path, sizeof path, "%s/fer_test_%d.pgm", tmpdir(), (int)sizeof(px));
    write_pgm(path, 7, 5, px);
    img = fer_image_load_gray(path, &w, &h, err);
    CHECK(img != NULL && w == 7 && h == 5, "PGM decodes to 7x5: %s", img ? "" : err);
    if (img) { CHECK(memcmp(img, px, 35) == 0, "PGM pixels exact"); fer_image_free(img); }
    f = fopen(path, "wb");
    if (f) { fputs("this is not an image at all", f); fclose(f); }
    img = fer_image_load_gray(path, &w, &h, err);
    CHECK(img == NULL && strstr(err, path) != NULL, "garbage rejected with its path: %s", err);
    remove(path);
    img = fer_image_load_gray("/nonexistent/face.png", &w, &h, err);
    CHECK(img == NULL && strstr(err, "/nonexistent/face.png") != NULL, "missing file named: %s", err);
}

static void test_preprocess(void)
{
    fer_model m;
    unsigned char px[96 * 96];
    float out[48 * 48];
    int i, y, x, ok = 1;
    fer_zoo_build(&m, "mini_xception", 1, 48, 48, 7, 1, NULL);
    for (i = 0; i < 48 * 48; i++) px[i] = (unsigned char)((i * 37) & 255);
    CHECK(fer_preprocess(&m, px, 48, 48, 48, out) == FER_OK, "preprocess 48x48");
    for (i = 0; i < 48 * 48; i++) ok &= fabsf(out[i] - px[i] / 255.0f) < 1e-6f;
    CHECK(ok, "same size, unit norm: pixel/255");
    m.pre.norm = FER_NORM_SIGNED;
    fer_preprocess(&m, px, 48, 48, 48, out);
    CHECK(fabsf(out[5] - (px[5] / 127.5f - 1.0f)) < 1e-6f, "signed norm");
    m.pre.norm = FER_NORM_MEANSTD; m.pre.mean = 0.5f; m.pre.std = 0.25f;
    fer_preprocess(&m, px, 48, 48, 48, out);
    CHECK(fabsf(out[9] - (px[9] / 255.0f - 0.5f) / 0.25f) < 1e-5f, "mean/std norm");
    /* 2x down-sampling of 2x2 constant blocks gives the block values */
    m.pre.norm = FER_NORM_UNIT;
    for (y = 0; y < 96; y++) for (x = 0; x < 96; x++) px[y * 96 + x] = (unsigned char)(((y / 2) * 5 + (x / 2) * 3) & 255);
    fer_preprocess(&m, px, 96, 96, 96, out);
    ok = 1;
    for (y = 0; y < 48; y++) for (x = 0; x < 48; x++) ok &= fabsf(out[y * 48 + x] * 255.0f - (float)((y * 5 + x * 3) & 255)) < 1e-3f;
    CHECK(ok, "2x down-sampling of constant blocks");
    /* store 52x52 then centre crop 48: offset 2 */
    m.pre.store_h = m.pre.store_w = 52;
    for (y = 0; y < 52; y++) for (x = 0; x < 52; x++) px[y * 52 + x] = (unsigned char)(y * 4 + x);
    fer_preprocess(&m, px, 52, 52, 52, out);
    CHECK(fabsf(out[0] * 255.0f - (2 * 4 + 2)) < 1e-3f && fabsf(out[47 * 48 + 47] * 255.0f - (49 * 4 + 49)) < 1e-3f,
          "centre crop 48 of 52");
    CHECK(fer_preprocess(&m, px, 0, 52, 52, out) == FER_ERR_ARG, "zero width rejected");
    CHECK(fer_preprocess(&m, px, 52, 52, 10, out) == FER_ERR_ARG, "stride < width rejected");
    fer_model_free(&m);
}

static void test_predict_and_threads(void)
{
    fer_model m;
    fer_workspace ws, pool[2];
    unsigned char px[60 * 50];
    float probs[7], x[48 * 48], *batch, *out1, *out2;
    double sum = 0.0;
    uint32_t crc0;
    int k, best, ref_best = 0, n = 9;
    fer_zoo_build(&m, "mobilenetv2_lite", 1, 48, 48, 7, 5, NULL);
    test_fill(m.buffers, m.n_buffers, 3, 0.2f);
    for (k = 0; k < (int)m.n_buffers; k++) m.buffers[k] = fabsf(m.buffers[k]) + 0.5f;
    crc0 = fer_crc32(m.arena, sizeof(float) * (m.n_params + m.n_buffers));
    for (k = 0; k < 60 * 50; k++) px[k] = (unsigned char)((k * 13) ^ (k >> 3));
    fer_workspace_init(&ws, &m, 16, 0);
    best = fer_predict(&m, &ws, px, 60, 50, 60, probs);
    for (k = 0; k < 7; k++) sum += probs[k];
    CHECK(best >= 0 && fabs(sum - 1.0) < 1e-5, "predict: class %d, probabilities sum to %.7f", best, sum);
    fer_preprocess(&m, px, 60, 50, 60, x);
    fer_forward(&m, &ws, x, 1, 0);
    for (k = 1; k < 7; k++) if (fer_output(&m, &ws)[k] > fer_output(&m, &ws)[ref_best]) ref_best = k;
    CHECK(best == ref_best, "predict agrees with forward on the preprocessed input");
    CHECK(fer_predict(&m, &ws, NULL, 60, 50, 60, probs) == -1 && ws.error[0], "NULL image: -1 and a message");
    /* threads */
    batch = (float *)malloc(sizeof(float) * 48 * 48 * (size_t)n);
    out1 = (float *)malloc(sizeof(float) * 7 * (size_t)n);
    out2 = (float *)malloc(sizeof(float) * 7 * (size_t)n);
    test_fill(batch, 48 * 48 * (size_t)n, 8, 1.0f);
    fer_forward(&m, &ws, batch, n, 0);
    memcpy(out1, fer_output(&m, &ws), sizeof(float) * 7 * (size_t)n);
    fer_workspace_init(&pool[0], &m, 5, 0);
    fer_workspace_init(&pool[1], &m, 5, 0);
    CHECK(fer_forward_threads(&m, pool, 2, batch, n, out2) == FER_OK, "forward_threads runs");
    {
        double e = 0.0;
        for (k = 0; k < 7 * n; k++) if (fabs(out1[k] - out2[k]) > e) e = fabs(out1[k] - out2[k]);
        CHECK(e < 1e-4, "2 threads give the single-thread outputs (max diff %.3g)", e);
    }
    CHECK(fer_forward_threads(&m, pool, 2, batch, 11, out2) == FER_ERR_ARG, "a batch too large for the workspaces is refused");
    CHECK(fer_crc32(m.arena, sizeof(float) * (m.n_params + m.n_buffers)) == crc0, "inference left the model unchanged");
    CHECK(fer_forward(&m, &ws, batch, 17, 0) == FER_ERR_ARG && strstr(ws.error, "17"), "batch over max refused: %s", ws.error);
    CHECK(fer_forward(&m, &ws, batch, 1, 1) == FER_ERR_ARG, "training forward on an inference workspace refused");
    free(batch); free(out1); free(out2);
    fer_workspace_free(&pool[0]); fer_workspace_free(&pool[1]); fer_workspace_free(&ws);
    fer_model_free(&m);
}

/* An inference workspace keeps the Winograd transform of a conv's weights: it is
   made afresh by every forward, so a forward after the weights change sees them. */
static void test_weights_change(void)
{
    fer_model m;
    fer_workspace ws, fresh;
    float x[4 * 32 * 20 * 20], y1[4 * 7];
    double e = 0.0, moved = 0.0;
    int k, x0;
    fer_model_init(&m, 32, 20, 20, 7, NULL);
    x0 = fer_act(&m, fer_conv(&m, FER_INPUT, 64, 3, 3, 1, 1, 1, 1), FER_OP_RELU);
    x0 = fer_conv(&m, x0, 64, 3, 3, 1, 1, 1, 0);
    fer_dense(&m, fer_gap(&m, x0), 7, 1);
    CHECK(fer_model_finalize(&m, 3) == FER_OK, "winograd test model builds: %s", m.error);
    fer_workspace_init(&ws, &m, 4, 0);
    test_fill(x, sizeof x / sizeof x[0], 5, 1.0f);
    fer_forward(&m, &ws, x, 4, 0);
    memcpy(y1, fer_output(&m, &ws), sizeof y1);
    for (k = 0; k < (int)m.n_params; k++) m.params[k] *= -1.5f;
    fer_forward(&m, &ws, x, 4, 0);
    fer_workspace_init(&fresh, &m, 4, 0);
    fer_forward(&m, &fresh, x, 4, 0);
    for (k = 0; k < 4 * 7; k++) {
        double d = fabs((double)fer_output(&m, &ws)[k] - fer_output(&m, &fresh)[k]);
        if (d > e) e = d;
        if (fabs((double)fer_output(&m, &ws)[k] - y1[k]) > moved) moved = fabs((double)fer_output(&m, &ws)[k] - y1[k]);
    }
    CHECK(moved > 1e-3 && e <= 1e-5 * (1.0 + moved), "a forward after the weights changed uses them "
          "(diff to a fresh workspace %.3g, outputs moved by %.3g)", e, moved);
    fer_workspace_free(&ws); fer_workspace_free(&fresh);
    fer_model_free(&m);
}

/* Largest |a - b| over n logits, relative to the largest |b|. */
static double logit_diff(const float *a, const float *b, int n)
{
    double d = 0.0, s = 1e-30;
    int k;
    for (k = 0; k < n; k++) {
        if (fabs((double)a[k] - b[k]) > d) d = fabs((double)a[k] - b[k]);
        if (fabs((double)b[k]) > s) s = fabs((double)b[k]);
    }
    return d / s;
}

/* One forward of n samples in a fresh, unfrozen workspace running isa. */
static void forward_fresh(const fer_model *m, fer_isa isa, const float *x, int n, float *out)
{
    fer_workspace ws;
    fer_workspace_init(&ws, m, n, 0);
    ws.isa = isa;
    fer_forward(m, &ws, x, n, 0);
    memcpy(out, fer_output(m, &ws), sizeof(float) * (size_t)n * m->n_classes);
    fer_workspace_free(&ws);
}

/* fer_workspace_freeze: the conv weights' transforms made once give the unfrozen
   logits (baseline_cnn's 12x12 convs then run as Winograd at batch 1 too), the
   frozen copies are what those convs read (changed weights are seen only after
   freezing again), a changed ws->isa falls back to the model's weights, and bad
   calls are refused with a reason. */
static void test_freeze(void)
{
    fer_model m, other;
    fer_workspace ws, wt;
    enum { N = 3, K = 7 };
    float *x = (float *)malloc(sizeof(float) * N * 48 * 48), ref[N * K], got[N * K], old1[K];
    fer_isa best = fer_cpu_best_isa();
    int k, n, i, big = -1, x86 = best == FER_ISA_AVX512 || best == FER_ISA_AVX2;
    fer_zoo_build(&m, "baseline_cnn", 1, 48, 48, K, 5, NULL);
    test_fill(x, (size_t)N * 48 * 48, 21, 1.0f);
    for (i = 0; i < m.n_nodes; i++)   /* the 256 -> 256 conv on 12x12 */
        if (m.nodes[i].op == FER_OP_CONV && m.nodes[i].out.c == 256 && m.nodes[m.nodes[i].in[0]].out.c == 256) big = i;
    CHECK(big > 0, "baseline_cnn has its 256 -> 256 conv");
    CHECK(fer_workspace_init(&ws, &m, N, 0) == FER_OK, "workspace: %s", ws.error);
    CHECK(fer_workspace_freeze(&ws, &m) == FER_OK, "freeze: %s", ws.error);
    CHECK(fer_workspace_freeze(&ws, &m) == FER_OK, "freeze again: %s", ws.error);
    if (x86) CHECK(ws.frozen_off && ws.frozen_off[big] != SIZE_MAX, "%s: the 12x12 conv's transform is frozen",
                   fer_isa_name(best));
    for (n = 1; n <= N; n += N - 1) {   /* batch 1 (36 tiles: Winograd only when frozen) and 3 */
        forward_fresh(&m, best, x, n, ref);
        CHECK(fer_forward(&m, &ws, x, n, 0) == FER_OK, "frozen forward of %d: %s", n, ws.error);
        CHECK(logit_diff(fer_output(&m, &ws), ref, n * K) < 1e-4, "frozen batch %d: logits as unfrozen (rel %.3g)", n,
              logit_diff(fer_output(&m, &ws), ref, n * K));
    }
    fer_forward(&m, &ws, x, 1, 0);
    memcpy(old1, fer_output(&m, &ws), sizeof old1);
    for (k = 0; k < (int)m.n_params; k++) m.params[k] *= -1.5f;
    forward_fresh(&m, best, x, 1, ref);
    fer_forward(&m, &ws, x, 1, 0);
    if (x86) CHECK(logit_diff(fer_output(&m, &ws), ref, K) > 1e-2, "%s: frozen convs read their copies, not "
                   "the changed weights (rel diff to the new logits %.3g)", fer_isa_name(best),
                   logit_diff(fer_output(&m, &ws), ref, K));
    else CHECK(logit_diff(fer_output(&m, &ws), ref, K) < 1e-5, "nothing to freeze here: the new weights are read");
    CHECK(fer_workspace_freeze(&ws, &m) == FER_OK, "freeze after the change: %s", ws.error);
    fer_forward(&m, &ws, x, 1, 0);
    CHECK(logit_diff(fer_output(&m, &ws), ref, K) < 1e-4 && logit_diff(old1, ref, K) > 1e-2,
          "frozen again: the new weights' logits (rel %.3g)", logit_diff(fer_output(&m, &ws), ref, K));
    if (best == FER_ISA_AVX512) {   /* frozen for AVX-512, run as AVX2: the model's weights, as unfrozen */
        for (k = 0; k < (int)m.n_params; k++) m.params[k] *= 0.5f;
        ws.isa = FER_ISA_AVX2;
        forward_fresh(&m, FER_ISA_AVX2, x, 1, ref);
        fer_forward(&m, &ws, x, 1, 0);
        CHECK(logit_diff(fer_output(&m, &ws), ref, K) < 1e-5, "another isa than the frozen one reads the weights "
              "(rel %.3g)", logit_diff(fer_output(&m, &ws), ref, K));
    }
    if (best == FER_ISA_AVX512 || best == FER_ISA_AVX2) {   /* frozen for AVX2 */
        ws.isa = FER_ISA_AVX2;
        CHECK(fer_workspace_freeze(&ws, &m) == FER_OK, "freeze for avx2: %s", ws.error);
        CHECK(ws.frozen_off && ws.frozen_off[big] != SIZE_MAX && ws.frozen_isa == FER_ISA_AVX2, "avx2 copies made");
        for (n = 1; n <= N; n += N - 1) {
            forward_fresh(&m, FER_ISA_AVX2, x, n, ref);
            fer_forward(&m, &ws, x, n, 0);
            memcpy(got, fer_output(&m, &ws), sizeof(float) * (size_t)n * K);
            CHECK(logit_diff(got, ref, n * K) < 1e-4, "avx2 frozen batch %d: logits as unfrozen (rel %.3g)", n,
                  logit_diff(got, ref, n * K));
        }
    }
    /* refused: a training workspace, a workspace made for another model */
    CHECK(fer_workspace_init(&wt, &m, 2, 1) == FER_OK, "training workspace: %s", wt.error);
    CHECK(fer_workspace_freeze(&wt, &m) == FER_ERR_ARG && strstr(wt.error, "training"), "training workspace "
          "refused: %s", wt.error);
    fer_zoo_build(&other, "mini_xception", 1, 48, 48, K, 5, NULL);
    CHECK(fer_workspace_freeze(&ws, &other) == FER_ERR_ARG && strstr(ws.error, "not made for"),
          "another model's workspace refused: %s", ws.error);
    fer_forward(&m, &ws, x, 1, 0);
    forward_fresh(&m, ws.isa, x, 1, ref);
    CHECK(logit_diff(fer_output(&m, &ws), ref, K) < 1e-4, "still serves its model after a refused freeze");
    fer_workspace_free(&wt); fer_workspace_free(&ws);
    CHECK(ws.frozen == NULL && ws.frozen_off == NULL, "free clears the frozen copies");
    fer_model_free(&other); fer_model_free(&m);
    free(x);
}

/* fer_workspace_quantize, one conv at a time (conv [-> BN] [-> ReLU/ReLU6] -> GAP,
   the conv's output kept): the AVX-512 VNNI kernel gives the plain-C reference's
   floats to the bit, and both stay within int8 rounding of the float conv. The
   geometries cover channels that are no multiple of 4 or 8, strides 1 and 2 on
   odd and even sizes, 1x1 to 7x7 kernels, an input of both signs (a zero point
   inside the range) and one that is never negative. */
static void test_quantize_convs(void)
{
    static const int cases[][9] = {   /* cin h w cout k stride bn act signed */
        { 5, 13, 11, 13, 3, 1, 1, 1, 1 }, { 8, 12, 12, 16, 3, 2, 1, 2, 0 }, { 32, 11, 11, 24, 1, 2, 0, 0, 1 },
        { 32, 6, 6, 8, 1, 1, 1, 1, 0 }, { 6, 9, 10, 7, 5, 1, 0, 1, 1 }, { 4, 15, 9, 9, 7, 1, 1, 0, 1 },
        { 64, 7, 7, 40, 3, 1, 1, 1, 0 }, { 12, 20, 3, 10, 3, 2, 0, 1, 1 }, { 40, 3, 3, 7, 3, 1, 1, 0, 1 } };
    enum { N = 2, CAL = 6 };
    size_t c;
    for (c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int *p = cases[c];
        int cin = p[0], h = p[1], w = p[2], cout = p[3], k = p[4], s = p[5], x, conv, i, n, nout;
        fer_model m;
        fer_workspace ws, wf;
        size_t in = (size_t)cin * h * w, len;
        float *cal = (float *)malloc(sizeof(float) * in * CAL), *vnni, *ref, *flt;
        double err = 0.0, mag = 1e-30;
        fer_model_init(&m, cin, h, w, cout, NULL);
        conv = x = fer_conv(&m, FER_INPUT, cout, k, k, s, k / 2, 1, !p[6]);
        if (p[6]) x = fer_bn(&m, x);
        if (p[7]) x = fer_act(&m, x, p[7] == 2 ? FER_OP_RELU6 : FER_OP_RELU);
        fer_gap(&m, x);
        CHECK(fer_model_finalize(&m, 11 + c) == FER_OK, "case %zu: %s", c, m.error);
        for (i = 0; i < (int)m.n_buffers; i++) m.buffers[i] = 0.2f + 0.1f * (float)(i % 7);   /* running mean, var */
        for (i = 0; i < (int)m.n_params; i++) m.params[i] += 0.05f * (float)(i % 5);        /* BN gamma, beta, bias */
        test_fill(cal, in * CAL, 100 + c, 2.0f);
        if (!p[8]) for (len = 0; len < in * CAL; len++) cal[len] = fabsf(cal[len]);
        CHECK(fer_workspace_init(&ws, &m, N, 0) == FER_OK && fer_workspace_keep(&ws, &m, conv) == FER_OK &&
              fer_workspace_init(&wf, &m, N, 0) == FER_OK && fer_workspace_keep(&wf, &m, conv) == FER_OK,
              "case %zu: workspaces", c);
        CHECK(fer_workspace_quantize(&ws, &m, cal, CAL - N) == FER_OK, "case %zu: quantize: %s", c, ws.error);
        CHECK(ws.q8_off && ws.q8_off[conv] != SIZE_MAX, "case %zu: the conv is quantized", c);
        nout = (int)(m.nodes[x].out.c * m.nodes[x].out.h * m.nodes[x].out.w);
        len = (size_t)N * nout;
        vnni = (float *)malloc(sizeof(float) * len * 3); ref = vnni + len; flt = ref + len;
        fer_forward(&m, &wf, cal + (CAL - N) * in, N, 0);   /* samples the calibration did not see */
        memcpy(flt, fer_node_output(&wf, conv), sizeof(float) * len);
        fer_forward(&m, &ws, cal + (CAL - N) * in, N, 0);
        memcpy(vnni, fer_node_output(&ws, conv), sizeof(float) * len);
        ws.isa = FER_ISA_SCALAR;
        fer_forward(&m, &ws, cal + (CAL - N) * in, N, 0);
        memcpy(ref, fer_node_output(&ws, conv), sizeof(float) * len);
        if (ws.q8_vnni) CHECK(memcmp(vnni, ref, sizeof(float) * len) == 0, "case %zu: VNNI equals the reference to "
                              "the bit", c);
        for (n = 0; n < (int)len; n++) {
            if (fabs((double)ref[n] - flt[n]) > err) err = fabs((double)ref[n] - flt[n]);
            if (fabs((double)flt[n]) > mag) mag = fabs((double)flt[n]);
        }
        CHECK(err < 0.03 * mag, "case %zu (%d->%d k%d s%d on %dx%d): int8 within 3%% of float's range "
              "(max diff %.4g of %.4g)", c, cin, cout, k, s, h, w, err, mag);
        free(vnni); free(cal);
        fer_workspace_free(&ws); fer_workspace_free(&wf); fer_model_free(&m);
    }
}

/* fer_workspace_quantize of a dense layer (its inputs a tensor of c x h x w, cout
   outputs), as for the convs: VNNI and the reference to the bit, both near float.
   Batches of 1 and 5 (the VNNI kernel takes 4 samples at a time), inputs that are
   no multiple of 64 (or of 16), outputs that are no multiple of 4. */
static void test_quantize_dense(void)
{
    static const int cases[][5] = { { 5, 7, 7, 13, 5 }, { 64, 1, 1, 4, 1 }, { 3, 10, 10, 7, 5 }, { 16, 2, 2, 9, 3 } };
    size_t c;
    for (c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int *p = cases[c];
        int cout = p[3], n = p[4], k;
        size_t in = (size_t)p[0] * p[1] * p[2];
        fer_model m;
        fer_workspace ws, wf;
        float *cal = (float *)malloc(sizeof(float) * in * 12), vnni[5 * 13], ref[5 * 13], flt[5 * 13];
        double err = 0.0, mag = 1e-30;
        fer_model_init(&m, p[0], p[1], p[2], cout, NULL);
        fer_dense(&m, FER_INPUT, cout, 1);
        CHECK(fer_model_finalize(&m, 40 + c) == FER_OK, "dense case %zu: %s", c, m.error);
        for (k = 0; k < (int)m.n_params; k++) m.params[k] += 0.01f * (float)(k % 3);   /* and a bias */
        test_fill(cal, in * 12, 300 + c, 1.5f);
        CHECK(fer_workspace_init(&ws, &m, 5, 0) == FER_OK && fer_workspace_init(&wf, &m, 5, 0) == FER_OK, "workspaces");
        CHECK(fer_workspace_quantize(&ws, &m, cal, 7) == FER_OK && ws.q8_off[1] != SIZE_MAX, "dense case %zu "
              "quantized: %s", c, ws.error);
        fer_forward(&m, &wf, cal + 7 * in, n, 0);
        memcpy(flt, fer_output(&m, &wf), sizeof(float) * (size_t)n * cout);
        fer_forward(&m, &ws, cal + 7 * in, n, 0);
        memcpy(vnni, fer_output(&m, &ws), sizeof(float) * (size_t)n * cout);
        ws.isa = FER_ISA_SCALAR;
        fer_forward(&m, &ws, cal + 7 * in, n, 0);
        memcpy(ref, fer_output(&m, &ws), sizeof(float) * (size_t)n * cout);
        if (ws.q8_vnni) CHECK(memcmp(vnni, ref, sizeof(float) * (size_t)n * cout) == 0, "dense case %zu: VNNI equals "
                              "the reference to the bit", c);
        for (k = 0; k < n * cout; k++) {
            if (fabs((double)ref[k] - flt[k]) > err) err = fabs((double)ref[k] - flt[k]);
            if (fabs((double)flt[k]) > mag) mag = fabs((double)flt[k]);
        }
        CHECK(err < 0.03 * mag, "dense case %zu (%zu -> %d, batch %d): int8 within 3%% of float's range (max diff "
              "%.4g of %.4g)", c, in, cout, n, err, mag);
        fer_workspace_free(&ws); fer_workspace_free(&wf); fer_model_free(&m);
        free(cal);
    }
}

/* fer_workspace_quantize on a zoo model: logits near the float ones, a batch's
   samples as each alone, freezing again gives back the float layers, refusals. */
static void test_quantize(void)
{
    fer_model m;
    fer_workspace ws, wf, wt;
    enum { N = 3, K = 7, CAL = 16, S = 16 };   /* 16x16: the plain-C reference under qemu stays quick */
    float *cal = (float *)malloc(sizeof(float) * (CAL + N) * S * S), *x, ref[N * K], got[N * K], one[K];
    int n, i, q = 0;
    fer_zoo_build(&m, "resnet_lite", 1, S, S, K, 9, NULL);
    for (i = 0; i < (CAL + N) * S * S; i++) cal[i] = 0.5f + 0.5f * sinf(0.37f * (float)i) * cosf(0.011f * (float)i);
    x = cal + CAL * S * S;
    CHECK(fer_workspace_init(&ws, &m, N, 0) == FER_OK && fer_workspace_init(&wf, &m, N, 0) == FER_OK, "workspaces");
    CHECK(fer_workspace_quantize(&ws, &m, cal, CAL) == FER_OK, "quantize: %s", ws.error);
    for (i = 0; i < m.n_nodes; i++) q += ws.q8_off[i] != SIZE_MAX;
    CHECK(q == 7, "resnet_lite: its 6 convs of 32+ channels and its dense layer quantized, the stem not (%d)", q);
    fer_workspace_freeze(&wf, &m);
    fer_forward(&m, &wf, x, N, 0);
    memcpy(ref, fer_output(&m, &wf), sizeof ref);
    CHECK(fer_forward(&m, &ws, x, N, 0) == FER_OK, "int8 forward: %s", ws.error);
    memcpy(got, fer_output(&m, &ws), sizeof got);
    CHECK(logit_diff(got, ref, N * K) < 0.05, "int8 logits near float (rel %.3g)", logit_diff(got, ref, N * K));
    CHECK(logit_diff(got, ref, N * K) > 0.0, "and not the float ones: the convs ran in int8");
    for (n = 0; n < N; n++) {
        fer_forward(&m, &ws, x + (size_t)n * S * S, 1, 0);
        memcpy(one, fer_output(&m, &ws), sizeof one);
        CHECK(logit_diff(one, got + n * K, K) < 1e-5, "sample %d alone as in the batch", n);
    }
    {   /* fer_predict_dataset_int8: each image's probabilities as fer_predict's in ws */
        unsigned char img[2 * S * S];
        float probs[2 * K], p[K];
        char err[256];
        fer_dataset d;
        double worst = 0.0;
        int k;
        for (i = 0; i < 2 * S * S; i++) img[i] = (unsigned char)(i * 37 % 251);
        memset(&d, 0, sizeof d);
        d.pixels = img; d.n = 2; d.h = S; d.w = S; d.n_classes = K;
        CHECK(fer_predict_dataset_int8(&m, &d, FER_TTA_NONE, 2, cal, CAL, probs, NULL, err) == FER_OK, "%s", err);
        for (n = 0; n < 2; n++) {
            fer_predict(&m, &ws, img + n * S * S, S, S, S, p);
            for (k = 0; k < K; k++) worst = fabs(p[k] - probs[n * K + k]) > worst ? fabs(p[k] - probs[n * K + k]) : worst;
        }
        CHECK(worst < 2e-5, "predict_dataset_int8 as fer_predict in a quantized workspace (%.3g)", worst);
        CHECK(fer_predict_dataset_int8(&m, &d, FER_TTA_NONE, 1, NULL, 0, probs, NULL, err) == FER_ERR_ARG &&
              strstr(err, "calibration"), "predict_dataset_int8 without calibration refused: %s", err);
    }
    CHECK(fer_workspace_quantize(&ws, &m, cal, CAL) == FER_OK, "quantize again: %s", ws.error);
    fer_forward(&m, &ws, x, N, 0);
    CHECK(logit_diff(fer_output(&m, &ws), got, N * K) < 1e-6, "quantized again: the same logits");
    CHECK(fer_workspace_freeze(&ws, &m) == FER_OK && ws.q8_off == NULL, "a freeze drops the int8 layers");
    fer_forward(&m, &ws, x, N, 0);
    CHECK(logit_diff(fer_output(&m, &ws), ref, N * K) < 1e-5, "and gives the float logits back");
    /* refused: no calibration, a training workspace, a NaN in the calibration */
    CHECK(fer_workspace_quantize(&ws, &m, NULL, 4) == FER_ERR_ARG && strstr(ws.error, "calibration"), "no "
          "calibration samples refused: %s", ws.error);
    CHECK(fer_workspace_quantize(&ws, &m, cal, 0) == FER_ERR_ARG, "0 calibration samples refused");
    CHECK(fer_workspace_init(&wt, &m, 2, 1) == FER_OK, "training workspace: %s", wt.error);
    CHECK(fer_workspace_quantize(&wt, &m, cal, CAL) == FER_ERR_ARG && strstr(wt.error, "training"), "training "
          "workspace refused: %s", wt.error);
    cal[5 * S * S + 5] = NAN;
    CHECK(fer_workspace_quantize(&ws, &m, cal, CAL) == FER_ERR_NUMERIC && strstr(ws.error, "sample 5"), "a NaN in "
          "the calibration refused: %s", ws.error);
    CHECK(ws.q8_off == NULL, "the refused quantization left float layers");
    fer_forward(&m, &ws, x, N, 0);
    CHECK(logit_diff(fer_output(&m, &ws), ref, N * K) < 1e-5, "which still give the float logits");
    fer_workspace_free(&wt); fer_workspace_free(&wf); fer_workspace_free(&ws);
    CHECK(ws.q8 == NULL && ws.q8_off == NULL, "free clears the int8 layers");
    fer_model_free(&m);
    free(cal);
}

/* Where a conv's weights outweigh a sample's activations (baseline_cnn's 256->256
   3x3 on 12x12: 8 times), the early layers run chunks of that many samples, and a
   batch that is not a multiple of the chunk still gives each sample's own logits. */
static void test_weight_chunk(void)
{
    fer_model m;
    fer_workspace ws, one;
    enum { N = 11 };
    float *x = (float *)malloc(sizeof(float) * N * 48 * 48);
    double e = 0.0;
    int k, s;
    fer_zoo_build(&m, "baseline_cnn", 1, 48, 48, 7, 4, NULL);
    test_fill(x, (size_t)N * 48 * 48, 13, 1.0f);
    fer_workspace_init(&ws, &m, N, 0);
    fer_workspace_init(&one, &m, 1, 0);
    CHECK(ws.chunk >= 8 && ws.chunk < N && ws.split > 1, "baseline_cnn runs its early layers in chunks of "
          "its weights' ratio to a sample's activations (chunk %d, split %d)", ws.chunk, ws.split);
    fer_forward(&m, &ws, x, N, 0);
    for (s = 0; s < N; s++) {
        fer_forward(&m, &one, x + (size_t)s * 48 * 48, 1, 0);
        for (k = 0; k < 7; k++) {
            double d = fabs((double)fer_output(&m, &ws)[s * 7 + k] - fer_output(&m, &one)[k]);
            if (d > e) e = d;
        }
    }
    CHECK(e <= 1e-4, "a batch of %d in chunks of %d gives each sample's own logits (max diff %.3g)", N, ws.chunk, e);
    fer_workspace_free(&ws); fer_workspace_free(&one);
    fer_model_free(&m);
    free(x);
}

/* An inference workspace runs the early layers one chunk of samples at a time
   through buffers that hold only that chunk: their outputs are not kept unless
   asked for, and asking gives each sample's own output. */
static void test_keep(void)
{
    fer_model m;
    fer_workspace ws, one;
    float x[3 * 48 * 48];
    const float *y;
    double e = 0.0, ey = 0.0;
    size_t sz;
    int k, s, node = -1;
    fer_zoo_build(&m, "mobilenetv2_lite", 1, 48, 48, 7, 9, NULL);
    for (k = 1; k < m.n_nodes && node < 0; k++)   /* the first 96-channel conv: 48x48, early */
        if (m.nodes[k].op == FER_OP_CONV && m.nodes[k].out.c == 96) node = k;
    sz = fer__shape_size(m.nodes[node].out);
    test_fill(x, sizeof x / sizeof x[0], 12, 1.0f);
    fer_workspace_init(&ws, &m, 3, 0);
    fer_workspace_init(&one, &m, 1, 0);
    CHECK(ws.chunk < 3 && !ws.whole[node], "mobilenetv2_lite runs its early layers by chunks (chunk %d)", ws.chunk);
    fer_forward(&m, &ws, x, 3, 0);
    CHECK(fer_node_output(&ws, node) == NULL, "an inner node's output is not kept by default");
    CHECK(fer_node_output(&ws, m.n_nodes - 1) == fer_output(&m, &ws), "the model's output is");
    CHECK(fer_workspace_keep(&ws, &m, m.n_nodes) == FER_ERR_ARG && strstr(ws.error, "node"),
          "keep of a node past the end refused: %s", ws.error);
    CHECK(fer_workspace_keep(&ws, &m, node) == FER_OK && fer_workspace_keep(&one, &m, node) == FER_OK, "keep");
    fer_forward(&m, &ws, x, 3, 0);
    CHECK(fer_node_output(&ws, node) != NULL, "a kept node's output is there");
    for (s = 0; s < 3 && fer_node_output(&ws, node); s++) {
        fer_forward(&m, &one, x + (size_t)s * 48 * 48, 1, 0);
        for (k = 0; k < (int)sz; k++) {
            double d = fabs((double)fer_node_output(&ws, node)[(size_t)s * sz + k] - fer_node_output(&one, node)[k]);
            if (d > e) e = d;
        }
        y = fer_output(&m, &ws) + (size_t)s * 7;
        for (k = 0; k < 7; k++)
            if (fabs((double)y[k] - fer_output(&m, &one)[k]) > ey) ey = fabs((double)y[k] - fer_output(&m, &one)[k]);
    }
    CHECK(e <= 1e-5 && ey <= 1e-5, "a batch of 3 gives each sample's own kept output and logits "
          "(max diff %.3g, %.3g)", e, ey);
    fer_workspace_free(&ws); fer_workspace_free(&one);
    fer_model_free(&m);
}

static void test_builder_errors(void)
{
    fer_model m;
    int x;
    fer_model_init(&m, 1, 8, 8, 3, NULL);
    x = fer_conv(&m, FER_INPUT, 4, 9, 9, 1, 0, 1, 0);
    CHECK(x == -1 && strstr(m.error, "conv"), "kernel larger than input: %s", m.error);
    CHECK(fer_gap(&m, x) == -1, "errors propagate");
    CHECK(fer_model_finalize(&m, 1) == FER_ERR_SHAPE, "finalize reports the first error");
    fer_model_free(&m);
    fer_model_init(&m, 1, 8, 8, 3, NULL);
    x = fer_add(&m, fer_conv(&m, FER_INPUT, 4, 3, 3, 1, 1, 1, 0), FER_INPUT);
    CHECK(x == -1 && strstr(m.error, "add"), "add of 4x8x8 and 1x8x8: %s", m.error);
    fer_model_free(&m);
    fer_model_init(&m, 1, 8, 8, 3, NULL);
    fer_gap(&m, FER_INPUT);
    CHECK(fer_model_finalize(&m, 1) == FER_ERR_SHAPE && strstr(m.error, "3 classes"), "output size checked: %s", m.error);
    fer_model_free(&m);
    CHECK(fer_model_init(&m, 1, 8, 8, 0, NULL) == FER_ERR_ARG, "0 classes refused");
    fer_model_free(&m);
    CHECK(fer_model_init(&m, 1, 0, 8, 3, NULL) == FER_ERR_ARG, "0 height refused");
    fer_model_free(&m);
    fer_model_init(&m, 1, 8, 8, 3, NULL);
    CHECK(fer_dropout(&m, FER_INPUT, 1.5f) == -1 && strstr(m.error, "dropout"), "dropout 1.5 refused: %s", m.error);
    fer_model_free(&m);
}

/* A residual join whose only reader is a ReLU or ReLU6 runs it in the add's own
   pass at inference: the same output as the unfused pass (a training workspace's,
   nothing fused), and the add's output, shared with the activation, clipped. */
static void test_add_act_fused(void)
{
    int k, op;
    for (op = 0; op < 2; op++) {
        fer_model m;
        fer_workspace ws, wt;
        float x[3 * 2 * 10 * 10], ref[3 * 5];
        int a, b, j, i, n = 3, clipped = 0;
        double err = 0.0;
        const float *y;
        fer_model_init(&m, 2, 10, 10, 5, NULL);
        a = fer_bn(&m, fer_conv(&m, FER_INPUT, 6, 3, 3, 1, 1, 1, 0));
        b = fer_conv(&m, FER_INPUT, 6, 1, 1, 1, 0, 1, 1);
        j = fer_add(&m, a, b);
        i = fer_act(&m, j, op ? FER_OP_RELU6 : FER_OP_RELU);
        fer_dense(&m, fer_flatten(&m, i), 5, 1);
        CHECK(fer_model_finalize(&m, 7) == FER_OK, "add + %s model builds: %s", op ? "relu6" : "relu", m.error);
        for (k = 0; k < (int)m.n_params; k++) m.params[k] *= 6.0f;   /* values past 6 for the ReLU6 */
        test_fill(x, sizeof x / sizeof x[0], 21 + op, 1.0f);
        fer_workspace_init(&wt, &m, n, 1);
        fer_forward(&m, &wt, x, n, 0);
        memcpy(ref, fer_output(&m, &wt), sizeof ref);
        fer_workspace_init(&ws, &m, n, 0);
        fer_workspace_keep(&ws, &m, j);
        fer_forward(&m, &ws, x, n, 0);
        for (k = 0; k < n * 5; k++) {
            double d = fabs(fer_output(&m, &ws)[k] - ref[k]) / (1.0 + fabs(ref[k]));
            if (d > err) err = d;
        }
        CHECK(err < 1e-5, "add + %s fused at inference: rel err %.3g against the unfused pass", op ? "relu6" : "relu", err);
        y = fer_node_output(&ws, j);
        CHECK(y != NULL, "the add's output is kept");
        for (k = 0; y && k < n * 6 * 10 * 10; k++) {
            clipped += y[k] == 0.0f || (op && y[k] == 6.0f);
            if (y[k] < 0.0f || (op && y[k] > 6.0f)) { clipped = -1000000; break; }
        }
        CHECK(clipped > 0, "the add's output is the activation's (in range, some values clipped): %d", clipped);
        fer_workspace_free(&ws); fer_workspace_free(&wt); fer_model_free(&m);
    }
}

/* An inference workspace's buffers (fer__share_buffers): two buffers that are
   live at once (from the node writing one to its last reader) never overlap in
   memory, a whole-batch buffer (the input, the output, the layers near the end, a
   kept node) overlaps no other, and the shared ones take less room than one each
   (resnet_lite at batch 1 and 4, mini_xception at batch 3; a node kept afterwards). */
static void test_share(void)
{
    static const struct { const char *name; int n; } cases[] = { { "resnet_lite", 1 }, { "resnet_lite", 4 },
                                                                 { "mini_xception", 3 } };
    size_t c;
    for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        fer_model m;
        fer_workspace ws;
        int pass, i, j, k, n, *last;
        fer_zoo_build(&m, cases[c].name, 1, 48, 48, 7, 3, NULL);
        n = m.n_nodes;
        last = (int *)malloc(sizeof(int) * (size_t)n);
        CHECK(fer_workspace_init(&ws, &m, cases[c].n, 0) == FER_OK, "%s: workspace: %s", cases[c].name, ws.error);
        for (i = 0; i < n; i++) last[i] = i;   /* by buffer root: its last reader */
        for (i = 1; i < n; i++)
            for (k = 0; k < m.nodes[i].n_in; k++) {
                int r = fer__buf_root(&m, m.nodes[i].in[k]);
                if (last[r] < i) last[r] = i;
            }
        for (pass = 0; pass < 2; pass++) {   /* as made, then with an inner node kept */
            size_t sum = 0, top = 0, bad = 0;
            for (i = 0; i < n; i++) {
                size_t ai = ws.act_off[i], zi = (size_t)cases[c].n * fer__shape_size(m.nodes[i].out);
                if (fer__buf_root(&m, i) != i) continue;
                sum += zi;
                if (ai + zi > top) top = ai + zi;
                for (j = i + 1; j < n; j++) {
                    size_t aj = ws.act_off[j], zj = (size_t)cases[c].n * fer__shape_size(m.nodes[j].out);
                    int live = j <= last[i];   /* i still read when j is written */
                    if (fer__buf_root(&m, j) != j || aj >= ai + zi || ai >= aj + zj) continue;
                    if (live || ws.whole[i] || ws.whole[j]) bad++;
                }
            }
            CHECK(bad == 0, "%s batch %d pass %d: %zu overlapping buffers live at once or kept", cases[c].name,
                  cases[c].n, pass, bad);
            CHECK(top < sum * 3 / 4, "%s batch %d pass %d: shared buffers take %zu floats of %zu", cases[c].name,
                  cases[c].n, pass, top, sum);
            CHECK(fer_workspace_keep(&ws, &m, n / 3) == FER_OK && ws.whole[n / 3], "keep node %d", n / 3);
        }
        free(last);
        fer_workspace_free(&ws);
        fer_model_free(&m);
    }
}

int main(void)
{
    test_image();
    test_preprocess();
    test_predict_and_threads();
    test_builder_errors();
    test_weights_change();
    test_keep();
    test_weight_chunk();
    test_freeze();
    test_share();
    test_quantize_convs();
    test_quantize_dense();
    test_quantize();
    test_add_act_fused();
    return test_done("test_infer");
}
