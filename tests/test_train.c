/* test_train: loss, optimizers and the folder loader against hand-computed
   values, and a small learnable problem that the engine must learn. */
#define _POSIX_C_SOURCE 200809L
#define FER_IMPLEMENTATION
#include "fer.h"
#include "test.h"
#include <sys/stat.h>

static void test_xent(void)
{
    float z[4] = { 0.0f, 0.0f, 1.0f, -1.0f }, d[4];
    int lab[2] = { 0, 1 };
    double L = fer_softmax_xent(z, lab, 2, 2, 0.0f, 2.0f, d);
    double p = 1.0 / (1.0 + exp(-2.0));     /* softmax(1,-1)[0] */
    CHECK(fabs(L - (log(2.0) + (-log(1.0 - p))) / 2.0) < 1e-6, "cross-entropy mean: %.7f", L);
    CHECK(fabsf(d[0] + 0.25f) < 1e-6f && fabsf(d[1] - 0.25f) < 1e-6f, "dlogits of a tie: (p - y) / n");
    CHECK(fabs(d[2] - p / 2.0) < 1e-6 && fabs(d[3] - (1.0 - p - 1.0) / 2.0) < 1e-6, "dlogits of sample 2");
    L = fer_softmax_xent(z, lab, 1, 2, 0.2f, 1.0f, d);
    CHECK(fabs(L - log(2.0)) < 1e-6, "label smoothing on a tie keeps log 2: %.7f", L);
    CHECK(fabsf(d[0] - (0.5f - 0.9f)) < 1e-6f && fabsf(d[1] - (0.5f - 0.1f)) < 1e-6f, "smoothed targets 0.9 / 0.1");
}

static void test_optimizers(void)
{
    fer_optimizer o;
    float p[2] = { 1.0f, -2.0f }, g[2] = { 0.5f, -0.25f };
    unsigned char nd[2] = { 0, 1 };
    /* SGD momentum 0.9, lr 0.1, wd 0.01 (param 0 only): v1 = g + wd p; v2 = 0.9 v1 + g' */
    fer_optimizer_init(&o, FER_OPT_SGD, 2, 0.1f, 0.01f, NULL);
    fer_optimizer_step(&o, p, g, nd);
    CHECK(fabsf(p[0] - (1.0f - 0.1f * (0.5f + 0.01f))) < 1e-6f && fabsf(p[1] - (-2.0f + 0.025f)) < 1e-6f,
          "SGD step 1: %.7f %.7f", p[0], p[1]);
    {
        float v0 = 0.5f + 0.01f, p0 = p[0];
        fer_optimizer_step(&o, p, g, nd);
        CHECK(fabsf(p[0] - (p0 - 0.1f * (0.9f * v0 + 0.5f + 0.01f * p0))) < 1e-6f, "SGD momentum step 2: %.7f", p[0]);
    }
    fer_optimizer_free(&o);
    /* Nesterov: p -= lr (g + mu v) */
    p[0] = 1.0f; p[1] = -2.0f;
    fer_optimizer_init(&o, FER_OPT_SGD, 2, 0.1f, 0.0f, NULL);
    o.nesterov = 1;
    fer_optimizer_step(&o, p, g, NULL);
    CHECK(fabsf(p[0] - (1.0f - 0.1f * (0.5f + 0.9f * 0.5f))) < 1e-6f, "Nesterov step 1: %.7f", p[0]);
    fer_optimizer_free(&o);
    /* Adam: the first step moves each parameter by lr * g / (|g| + eps) */
    p[0] = 1.0f; p[1] = -2.0f;
    fer_optimizer_init(&o, FER_OPT_ADAM, 2, 0.01f, 0.0f, NULL);
    fer_optimizer_step(&o, p, g, NULL);
    CHECK(fabsf(p[0] - 0.99f) < 1e-6f && fabsf(p[1] - (-1.99f)) < 1e-6f, "Adam step 1: %.7f %.7f", p[0], p[1]);
    fer_optimizer_step(&o, p, g, NULL);
    CHECK(fabsf(p[0] - 0.98f) < 1e-5f, "Adam step 2 with a constant gradient: %.7f", p[0]);
    fer_optimizer_free(&o);
    /* AdamW: decay is decoupled, p *= 1 - lr wd, before the Adam move */
    p[0] = 1.0f; p[1] = -2.0f;
    fer_optimizer_init(&o, FER_OPT_ADAMW, 2, 0.01f, 0.1f, NULL);
    fer_optimizer_step(&o, p, g, nd);
    CHECK(fabsf(p[0] - (1.0f * (1.0f - 0.001f) - 0.01f)) < 1e-6f && fabsf(p[1] - (-1.99f)) < 1e-6f,
          "AdamW step 1: %.7f %.7f", p[0], p[1]);
    fer_optimizer_free(&o);
    CHECK(fer_optimizer_init(&o, 7, 2, 0.01f, 0.0f, NULL) == FER_ERR_ARG, "unknown optimizer refused");
    CHECK(fer_optimizer_init(&o, FER_OPT_SGD, 2, -1.0f, 0.0f, NULL) == FER_ERR_ARG, "negative learning rate refused");
}

static void write_pgm(const char *path, int w, int h, int v)
{
    FILE *f = fopen(path, "wb");
    int i;
    if (!f) return;
    fprintf(f, "P5\n%d %d\n255\n", w, h);
    for (i = 0; i < w * h; i++) fputc((v + i) & 255, f);
    fclose(f);
}

static void test_loader(void)
{
    char root[256], p[512];
    fer_dataset d;
    const char *t = getenv("TMPDIR");
    int i, happy = 0, sad = 0;
    snprintf(root, sizeof root, "%s/fer_loader_XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(root)) { CHECK(0, "mkdtemp"); return; }
    CHECK(fer_dataset_load_folder(&d, root, 48, 48, 2, NULL) == FER_ERR_FORMAT && strstr(d.error, "no class"),
          "empty root: %s", d.error);
    snprintf(p, sizeof p, "%s/sad", root); mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/happy", root); mkdir(p, 0755);
    CHECK(fer_dataset_load_folder(&d, root, 48, 48, 2, NULL) == FER_ERR_FORMAT && strstr(d.error, "no files"),
          "empty class folders: %s", d.error);
    for (i = 0; i < 5; i++) { snprintf(p, sizeof p, "%s/happy/h%d.pgm", root, i); write_pgm(p, 48, 48, i); }
    for (i = 0; i < 3; i++) { snprintf(p, sizeof p, "%s/sad/s%d.pgm", root, i); write_pgm(p, 96, 60, 10 * i); }
    snprintf(p, sizeof p, "%s/sad/broken.jpg", root);
    { FILE *f = fopen(p, "wb"); if (f) { fputs("\xff\xd8 not really a jpeg", f); fclose(f); } }
    CHECK(fer_dataset_load_folder(&d, root, 48, 48, 2, NULL) == FER_OK, "loads: %s", d.error);
    CHECK(d.n == 8 && d.n_skipped == 1 && strstr(d.skip_reason, "broken.jpg"), "8 images, 1 skipped: %s", d.skip_reason);
    CHECK(d.n_classes == 2 && !strcmp(d.class_names[0], "happy") && !strcmp(d.class_names[1], "sad"), "sorted class names");
    for (i = 0; i < d.n; i++) { happy += d.labels[i] == 0; sad += d.labels[i] == 1; }
    CHECK(happy == 5 && sad == 3, "labels follow folders (%d happy, %d sad)", happy, sad);
    CHECK(d.pixels[0] == 0 && d.pixels[1] == 1, "a 48x48 image is stored as is");
    fer_dataset_free(&d);
    CHECK(fer_dataset_load_folder(&d, "/nonexistent/dir", 48, 48, 2, NULL) == FER_ERR_IO && strstr(d.error, "/nonexistent/dir"),
          "missing folder named: %s", d.error);
    CHECK(fer_dataset_load_folder(&d, root, 0, 48, 2, NULL) == FER_ERR_ARG, "size 0 refused");
    snprintf(p, sizeof p, "rm -rf '%s'", root);
    CHECK(system(p) == 0, "cleanup");
}

/* Four classes: which quadrant of a noisy 12x12 image is bright. A small CNN with
   Adam must pass 90% training accuracy within a few hundred steps. */
static void test_learns(void)
{
    enum { N = 256, B = 32, S = 12 };
    static float x[N * S * S];
    static int lab[N];
    fer_model m;
    fer_workspace ws;
    fer_optimizer o;
    float dl[B * 4];
    unsigned long long seed = 5;
    int i, step, correct = 0, xx, yy;
    double first = 0.0, last = 0.0;
    for (i = 0; i < N; i++) {
        lab[i] = i % 4;
        for (yy = 0; yy < S; yy++) for (xx = 0; xx < S; xx++) {
            int q = (yy >= S / 2) * 2 + (xx >= S / 2);
            x[(i * S + yy) * S + xx] = 0.3f * test_rand(&seed) + (q == lab[i] ? 0.6f : 0.0f);
        }
    }
    fer_model_init(&m, 1, S, S, 4, NULL);
    {
        int h = fer_conv_bn_act(&m, FER_INPUT, 8, 3, 1, FER_OP_RELU);
        h = fer_maxpool(&m, h, 2, 2, 0);
        h = fer_conv_bn_act(&m, h, 8, 3, 1, FER_OP_RELU);
        fer_dense(&m, fer_flatten(&m, h), 4, 1);
    }
    CHECK(fer_model_finalize(&m, 3) == FER_OK, "model: %s", m.error);
    fer_workspace_init(&ws, &m, B, 1);
    fer_optimizer_init(&o, FER_OPT_ADAM, m.n_params, 0.01f, 0.0f, NULL);
    for (step = 0; step < 200; step++) {
        int off = (step * B) % N;
        double L;
        fer_forward(&m, &ws, x + (size_t)off * S * S, B, 1);
        L = fer_softmax_xent(fer_output(&m, &ws), lab + off, B, 4, 0.0f, (float)B, dl);
        if (step < 8) first += L / 8;
        if (step >= 192) last += L / 8;
        fer_zero_grad(&m, &ws);
        fer_backward(&m, &ws, dl);
        fer_optimizer_step(&o, m.params, ws.pgrad, NULL);
        fer_bn_update_running(&m, &ws);
    }
    for (i = 0; i < N; i += B) {
        int s, k;
        fer_forward(&m, &ws, x + (size_t)i * S * S, B, 0);
        for (s = 0; s < B; s++) {
            const float *y = fer_output(&m, &ws) + s * 4;
            int best = 0;
            for (k = 1; k < 4; k++) if (y[k] > y[best]) best = k;
            correct += best == lab[i + s];
        }
    }
    CHECK(last < first * 0.5, "loss falls: %.4f -> %.4f", first, last);
    CHECK(correct * 10 > N * 9, "training accuracy (inference mode) %d/%d > 90%%", correct, N);
    fer_optimizer_free(&o);
    fer_workspace_free(&ws);
    fer_model_free(&m);
}

int main(void)
{
    test_xent();
    test_optimizers();
    test_loader();
    test_learns();
    return test_done("test_train");
}
