/* tests/test_zoo.c - every zoo architecture against PyTorch.

   tools/gen_zoo_fixtures.py rebuilds each architecture of fer.h's zoo as plain
   torch.nn modules, fills it with deterministic parameters and writes the
   eval-mode logits for a deterministic input to tests/fixtures/zoo/<name>.txt.
   Here fer.h builds the same architecture, fills its arena with the same floats
   (zoo_fill) and must give the same logits: with the default kernels, with the
   scalar reference kernels, and after fer_model_fold_bn on a second copy. No
   weights are stored and no Python is needed to run this test.

   Tolerance: |fer - torch| <= 1e-4 * max(1, max |torch logit|) per model. The
   fixtures are float64 computations on the float32 parameters, so the whole
   difference is float32 rounding, which grows with depth and with the size of
   the logits. fer.h's error (printed per model) is about PyTorch's own in
   float32: 1e-3 of 115 for vgg16_dsc_cbam (13 residual CBAM blocks, ~10x
   below the bound), 1e-6 to 5e-5 elsewhere (50x to 400x below). Wrong wiring,
   a swapped tensor or a layout slip moves logits by O(max |logit|).

   Run from the repository root (fixtures are read from tests/fixtures/zoo/). */
#define FER_NO_STB_IMAGE               /* no images here: builds without stb installed */
#define FER_IMPLEMENTATION
#include "fer.h"
#include "test.h"

#define ZOO_BATCH   2
#define ZOO_C       1
#define ZOO_H       48
#define ZOO_W       48
#define ZOO_CLASSES 7
#define ZOO_TOL     1e-4
#define ZOO_INPUT_TENSOR 0xFFFFFFFFull

/* ---- the deterministic parameters (same formula as tools/gen_zoo_fixtures.py) ---- */

static uint64_t zoo_splitmix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* u(t, i) in [-1, 1): element i of tensor t, exact in double (24 bits) */
static double zoo_u(uint64_t t, size_t i)
{
    return (double)(zoo_splitmix64((t << 32) | (uint64_t)i) >> 40) / 16777216.0 * 2.0 - 1.0;
}

/* Tensors are numbered in node order: conv/dense weight then bias (if used), BN
   gamma, beta, running mean, running var, PReLU slopes; a dense layer sharing
   another's parameters owns none. Values are computed in double and rounded to
   float once. Returns the number of tensors filled, or -1 if a node's arena
   slice does not have the size its geometry implies. */
static long zoo_fill(fer_model *m)
{
    uint64_t t = 0;
    int i;
    size_t k;
    for (i = 1; i < m->n_nodes; i++) {
        const fer_node *nd = &m->nodes[i];
        fer_shape in = m->nodes[nd->in[0]].out;
        float *p = m->params + nd->p_off, *b = m->buffers + nd->b_off;
        size_t c = (size_t)nd->out.c;
        if (nd->op == FER_OP_CONV || (nd->op == FER_OP_DENSE && nd->share < 0)) {
            size_t fan_in = nd->op == FER_OP_CONV
                ? (size_t)(in.c / nd->groups) * (size_t)nd->kh * (size_t)nd->kw
                : (size_t)in.c * (size_t)in.h * (size_t)in.w;
            size_t nw = c * fan_in;     /* weight [cout][fan_in], then the bias slot [cout] */
            double bound = sqrt(6.0 / (double)fan_in);
            if (nd->p_len != nw + c) return -1;
            for (k = 0; k < nw; k++) p[k] = (float)(zoo_u(t, k) * bound);
            t++;
            for (k = 0; k < c; k++) p[nw + k] = nd->bias ? (float)(0.1 * zoo_u(t, k)) : 0.0f;
            if (nd->bias) t++;
        } else if (nd->op == FER_OP_BN) {
            if (nd->p_len != 2 * c || nd->b_len != 2 * c) return -1;
            for (k = 0; k < c; k++) p[k] = (float)(1.0 + 0.2 * zoo_u(t, k));         /* gamma */
            for (k = 0; k < c; k++) p[c + k] = (float)(0.1 * zoo_u(t + 1, k));       /* beta  */
            for (k = 0; k < c; k++) b[k] = (float)(0.1 * zoo_u(t + 2, k));           /* mean  */
            for (k = 0; k < c; k++) b[c + k] = (float)(1.0 + 0.5 * zoo_u(t + 3, k)); /* var   */
            t += 4;
        } else if (nd->op == FER_OP_PRELU) {
            if (nd->p_len != c) return -1;
            for (k = 0; k < c; k++) p[k] = (float)(0.25 + 0.1 * zoo_u(t, k));
            t++;
        } else if (nd->p_len != 0 || nd->b_len != 0) {
            return -1;                  /* an op this test does not know owns parameters */
        }
    }
    return (long)t;
}

/* ---- fixtures ---- */

typedef struct zoo_fixture {
    char name[64];
    int c, h, w, classes, batch;
    size_t params;
    long tensors;
    double logits[ZOO_BATCH * ZOO_CLASSES];
} zoo_fixture;

/* Reads tests/fixtures/zoo/<name>.txt; 0 on success, else -1 with why[] set. */
static int zoo_read_fixture(zoo_fixture *fx, const char *name, char *why, size_t why_len)
{
    char path[256];
    FILE *f;
    int ch, i, ok;
    char extra;
    snprintf(path, sizeof(path), "tests/fixtures/zoo/%s.txt", name);
    memset(fx, 0, sizeof(*fx));
    if (!(f = fopen(path, "r"))) {
        snprintf(why, why_len, "cannot open %s (run from the repository root)", path);
        return -1;
    }
    while ((ch = fgetc(f)) == '#')                  /* leading comment lines */
        while ((ch = fgetc(f)) != EOF && ch != '\n') {}
    if (ch != EOF) ungetc(ch, f);
    ok = fscanf(f, " name %63s input %d %d %d classes %d batch %d params %zu tensors %ld logits",
                fx->name, &fx->c, &fx->h, &fx->w, &fx->classes, &fx->batch, &fx->params,
                &fx->tensors) == 8;
    ok = ok && strcmp(fx->name, name) == 0 && fx->c == ZOO_C && fx->h == ZOO_H && fx->w == ZOO_W &&
         fx->classes == ZOO_CLASSES && fx->batch == ZOO_BATCH;
    for (i = 0; ok && i < ZOO_BATCH * ZOO_CLASSES; i++)
        ok = fscanf(f, " %lf", &fx->logits[i]) == 1 && fx->logits[i] == fx->logits[i];
    ok = ok && fscanf(f, " %c", &extra) == EOF; /* nothing after the logits */
    fclose(f);
    if (!ok) {
        snprintf(why, why_len, "%s: not a %dx%dx%d, %d-class, batch-%d fixture for %s, "
                 "or truncated", path, ZOO_C, ZOO_H, ZOO_W, ZOO_CLASSES, ZOO_BATCH, name);
        return -1;
    }
    return 0;
}

/* ---- the test ---- */

/* Runs m on x with kernels `isa` (-1: the workspace default) and returns the
   largest |logit - fixture|, or -1 if the pass failed. unfused: run the inference
   pass in a training workspace, where no batch norm or activation is fused into
   the conv before it. */
static double zoo_run(const fer_model *m, const float *x, const zoo_fixture *fx, int isa,
                      const char **isa_used, int unfused)
{
    fer_workspace ws;
    const float *y;
    double err = 0.0;
    int i;
    if (fer_workspace_init(&ws, m, ZOO_BATCH, unfused) != FER_OK) {
        printf("# workspace: %s\n", ws.error);
        return -1.0;
    }
    if (isa >= 0) ws.isa = (fer_isa)isa;
    *isa_used = fer_isa_name(ws.isa);
    if (fer_forward(m, &ws, x, ZOO_BATCH, 0) != FER_OK) {
        printf("# forward: %s\n", ws.error);
        fer_workspace_free(&ws);
        return -1.0;
    }
    y = fer_output(m, &ws);
    for (i = 0; i < ZOO_BATCH * ZOO_CLASSES; i++) {
        double d = fabs((double)y[i] - fx->logits[i]);
        if (!(d <= err)) err = d;      /* a NaN logit becomes the error */
    }
    fer_workspace_free(&ws);
    return err;
}

static void zoo_test(const char *name, const float *x)
{
    zoo_fixture fx;
    fer_model m, folded;
    char why[512];
    double scale = 1.0, tol, e_def, e_ref, e_fold, e_unf;
    const char *isa_def = "?", *isa_ref = "?", *isa_fold = "?";
    long tensors;
    int i, bn_left = 0;

    if (zoo_read_fixture(&fx, name, why, sizeof(why)) != 0) {
        CHECK(0, "%s: fixture: %s", name, why);
        return;
    }
    for (i = 0; i < ZOO_BATCH * ZOO_CLASSES; i++)
        if (fabs(fx.logits[i]) > scale) scale = fabs(fx.logits[i]);
    tol = ZOO_TOL * scale;

    if (fer_zoo_build(&m, name, ZOO_C, ZOO_H, ZOO_W, ZOO_CLASSES, 1, NULL) != FER_OK) {
        CHECK(0, "%s: fer_zoo_build: %s", name, m.error);
        fer_model_free(&m);
        return;
    }
    CHECK(fer_model_param_count(&m) == fx.params, "%s: %zu parameters, PyTorch counts %zu",
          name, fer_model_param_count(&m), fx.params);
    tensors = zoo_fill(&m);
    CHECK(tensors == fx.tensors, "%s: %ld parameter tensors in node order, PyTorch has %ld "
          "(-1: a node's arena slice has an unexpected size)", name, tensors, fx.tensors);

    e_def = zoo_run(&m, x, &fx, -1, &isa_def, 0);
    CHECK(e_def >= 0.0 && e_def <= tol, "%s (%s kernels): max |logit - torch| = %.3g > %.3g",
          name, isa_def, e_def, tol);
    e_ref = zoo_run(&m, x, &fx, FER_ISA_SCALAR, &isa_ref, 0);
    CHECK(e_ref >= 0.0 && e_ref <= tol, "%s (%s kernels): max |logit - torch| = %.3g > %.3g",
          name, isa_ref, e_ref, tol);
    e_unf = zoo_run(&m, x, &fx, -1, &isa_def, 1);
    CHECK(e_unf >= 0.0 && e_unf <= tol, "%s (%s kernels, unfused): max |logit - torch| = %.3g > %.3g",
          name, isa_def, e_unf, tol);

    /* Folding batch norms into the convs must not change the function. The copy
       is rebuilt and refilled rather than round-tripped through fer_model_save_mem
       and load_mem, whose CRC-32 over ~290 MB of zoo parameters would double the
       run time; the file format has its own tests. */
    e_fold = -1.0;
    if (fer_zoo_build(&folded, name, ZOO_C, ZOO_H, ZOO_W, ZOO_CLASSES, 2, NULL) != FER_OK) {
        CHECK(0, "%s: fer_zoo_build (copy): %s", name, folded.error);
    } else {
        CHECK(zoo_fill(&folded) == tensors, "%s: the copy fills differently", name);
        CHECK(fer_model_fold_bn(&folded) == FER_OK, "%s: fold_bn: %s", name, folded.error);
        for (i = 0; i < folded.n_nodes; i++) bn_left += folded.nodes[i].op == FER_OP_BN;
        /* every batch norm in the zoo follows a conv read by nothing else */
        CHECK(bn_left == 0, "%s: %d batch norms left unfolded", name, bn_left);
        e_fold = zoo_run(&folded, x, &fx, -1, &isa_fold, 0);
        CHECK(e_fold >= 0.0 && e_fold <= tol, "%s (folded, %s kernels): max |logit - torch| = "
              "%.3g > %.3g", name, isa_fold, e_fold, tol);
    }
    fer_model_free(&folded);

    printf("# %-17s max|err| %s %.2e  %s %.2e  unfused %.2e  folded %.2e   tol %.2e (max|logit| %.3g)\n",
           name, isa_def, e_def, isa_ref, e_ref, e_unf, e_fold, tol, scale);
    fer_model_free(&m);
}

int main(void)
{
    static float x[ZOO_BATCH * ZOO_C * ZOO_H * ZOO_W];
    size_t i;
    int k;
    for (i = 0; i < sizeof(x) / sizeof(x[0]); i++) x[i] = (float)zoo_u(ZOO_INPUT_TENSOR, i);
    CHECK(fer_zoo_count() == 9, "the zoo has %d architectures; add a fixture for each new one",
          fer_zoo_count());
    for (k = 0; k < fer_zoo_count(); k++) zoo_test(fer_zoo_name(k), x);
    return test_done("test_zoo");
}
