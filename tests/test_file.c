/* tests/test_file.c - the .fer model file: bit-exact and hostile-input-proof.

   1. Round trips: zoo models (and one custom graph that uses every op) with
      random parameters, non-default class names, architecture name and
      preprocessing, through memory and through a file, come back bit-identical:
      parameters, buffers, nodes, names, preprocessing, forward output, and the
      bytes of a second save. Also folded (fer_model_fold_bn) models.
   2. Truncation: every prefix of a file is FER_ERR_FORMAT with a message.
   3. Corruption: single bit flips are caught (size checks, then the CRC).
   4. Hostile files whose CRC is valid: each bad field is FER_ERR_FORMAT with a
      message naming it.
   5. Atomic save: failures return FER_ERR_IO or FER_ERR_NUMERIC and leave the
      previous file byte-identical and no .tmp behind.
   6. Loading from disk: missing file, a directory, a truncated file.

   usage: test_file [-v]     -v prints every rejection message */
#define _XOPEN_SOURCE 700      /* mkdtemp */
#define FER_NO_STB_IMAGE       /* no image decoding needed here */
#define FER_IMPLEMENTATION
#include "fer.h"
#include "test.h"
#include <sys/stat.h>
#include <unistd.h>

static int verbose;
static char tmpdir[256];

/* ---- helpers ---- */

static void *save(fer_model *m, size_t *len)
{
    void *b = NULL;
    fer_result r = fer_model_save_mem(m, &b, len, NULL);
    CHECK(r == FER_OK && b, "save_mem: %s (%s)", fer_result_string(r), m->error);
    return r == FER_OK ? b : NULL;
}

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *b;
    long n;
    *len = 0;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    b = (unsigned char *)malloc(n > 0 ? (size_t)n : 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
    fclose(f);
    if (b) *len = (size_t)n;
    return b;
}

static int write_all(const char *path, const void *b, size_t len)
{
    FILE *f = fopen(path, "wb");
    int ok;
    if (!f) return 0;
    ok = fwrite(b, 1, len, f) == len;
    return (fclose(f) == 0) && ok;
}

static int exists(const char *path) { struct stat st; return stat(path, &st) == 0; }

static void path_in(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", tmpdir, name);
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16); p[3] = (unsigned char)(v >> 24);
}
static uint32_t fbits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/* The CRC is fer_crc32 of every byte but the last 4, stored little-endian in them. */
static void fix_crc(unsigned char *b, size_t len) { put32(b + len - 4, fer_crc32(b, len - 4)); }

/* Offsets, from the layout in fer.h section 3.8. */
#define HDR 108u
#define NODE_BYTES 80u
static size_t node_off(const unsigned char *b, int node, int field)
{
    return HDR + 32u * get32(b + 12) + NODE_BYTES * (size_t)node + 4u * (size_t)field;
}
enum { F_OP, F_NIN, F_IN0, F_IN1, F_IN2, F_IN3, F_UNITS, F_KH, F_KW, F_SH, F_SW, F_PH, F_PW,
       F_GROUPS, F_BIAS, F_ACT, F_SHARE, F_ALPHA, F_EPS, F_MOM };

/* Loads len bytes and expects result `want` with a non-empty message that
   contains `needle` (case-sensitive), and nothing left allocated. */
static void expect_bad_len(const unsigned char *b, size_t len, fer_result want, const char *needle,
                           const char *what)
{
    fer_model m;
    fer_result r = fer_model_load_mem(&m, b, len, NULL);
    CHECK(r == want, "%s: got %s, want %s (%s)", what, fer_result_string(r), fer_result_string(want), m.error);
    CHECK(m.error[0] != 0, "%s: empty error message", what);
    CHECK(!needle || strstr(m.error, needle), "%s: message '%s' does not mention '%s'", what, m.error,
          needle ? needle : "");
    CHECK(m.nodes == NULL && m.arena == NULL && !m.finalized, "%s: a failed load left memory in the model", what);
    if (verbose) printf("  %-34s -> %s: %s\n", what, fer_result_string(r), m.error);
    if (r == FER_OK) fer_model_free(&m);
}

/* Patches the 32-bit field at off of a copy, recomputes the CRC, expects rejection. */
static void expect_patch(const unsigned char *base, size_t len, size_t off, uint32_t v,
                         const char *needle, const char *what)
{
    unsigned char *b = (unsigned char *)malloc(len);
    memcpy(b, base, len);
    put32(b + off, v);
    fix_crc(b, len);
    expect_bad_len(b, len, FER_ERR_FORMAT, needle, what);
    free(b);
}

/* A copy grown or shrunk by delta bytes just before the CRC (params/buffers end),
   with the 64-bit count at count_off moved by delta/4 and a fresh CRC. */
static unsigned char *resized(const unsigned char *base, size_t len, long delta, size_t count_off,
                              size_t *out_len)
{
    size_t n = (size_t)((long)len + delta), keep = (delta < 0 ? n : len) - 4;
    unsigned char *b = (unsigned char *)calloc(n, 1);
    uint64_t cnt = get32(base + count_off) | ((uint64_t)get32(base + count_off + 4) << 32);
    memcpy(b, base, keep);
    cnt = (uint64_t)((int64_t)cnt + delta / 4);
    put32(b + count_off, (uint32_t)cnt);
    put32(b + count_off + 4, (uint32_t)(cnt >> 32));
    fix_crc(b, n);
    *out_len = n;
    return b;
}

/* ---- model comparison ---- */

static int node_diff(const fer_node *a, const fer_node *b)
{
    int j;
    if (a->op != b->op || a->n_in != b->n_in) return 1;
    for (j = 0; j < a->n_in; j++) if (a->in[j] != b->in[j]) return 2;
    if (a->out.c != b->out.c || a->out.h != b->out.h || a->out.w != b->out.w) return 3;
    if (a->kh != b->kh || a->kw != b->kw || a->sh != b->sh || a->sw != b->sw || a->ph != b->ph ||
        a->pw != b->pw || a->groups != b->groups) return 4;
    if (a->bias != b->bias || a->act != b->act || a->share != b->share) return 5;
    if (fbits(a->alpha) != fbits(b->alpha) || fbits(a->eps) != fbits(b->eps) ||
        fbits(a->momentum) != fbits(b->momentum)) return 6;
    if (a->p_off != b->p_off || a->p_len != b->p_len || a->b_off != b->b_off || a->b_len != b->b_len) return 7;
    return 0;
}

/* Everything but the parameter arena layout (which folded models compact). */
static void check_same_meta(const fer_model *a, const fer_model *b, const char *what)
{
    int i;
    CHECK(a->n_nodes == b->n_nodes, "%s: %d vs %d nodes", what, a->n_nodes, b->n_nodes);
    CHECK(a->input.c == b->input.c && a->input.h == b->input.h && a->input.w == b->input.w,
          "%s: input shape differs", what);
    CHECK(a->n_classes == b->n_classes, "%s: classes differ", what);
    CHECK(memcmp(a->class_names, b->class_names, sizeof(a->class_names)) == 0, "%s: class names differ", what);
    CHECK(memcmp(a->arch, b->arch, sizeof(a->arch)) == 0, "%s: arch '%s' vs '%s'", what, a->arch, b->arch);
    CHECK(a->pre.norm == b->pre.norm && fbits(a->pre.mean) == fbits(b->pre.mean) &&
          fbits(a->pre.std) == fbits(b->pre.std) && a->pre.crop_h == b->pre.crop_h &&
          a->pre.crop_w == b->pre.crop_w && a->pre.store_h == b->pre.store_h &&
          a->pre.store_w == b->pre.store_w && fbits(a->pre.temperature) == fbits(b->pre.temperature),
          "%s: preprocessing differs", what);
    CHECK(b->finalized && b->status == FER_OK, "%s: loaded model not finalized", what);
    if (a->n_nodes == b->n_nodes) {
        int bad = -1, field = 0;
        for (i = 0; i < a->n_nodes && bad < 0; i++) {
            const fer_node *x = &a->nodes[i], *y = &b->nodes[i];
            /* folded models: compare structure, not arena offsets */
            int j, d;
            if (x->op != y->op || x->n_in != y->n_in) d = 1;
            else {
                fer_node xx = *x, yy = *y;
                for (j = x->n_in; j < FER_MAX_INPUTS; j++) xx.in[j] = yy.in[j] = 0;
                xx.p_off = yy.p_off = xx.b_off = yy.b_off = 0;
                if (x->op == FER_OP_IDENTITY) {   /* a folded batch norm: only its wiring counts */
                    xx.p_len = yy.p_len = xx.b_len = yy.b_len = 0;
                    xx.eps = yy.eps = xx.momentum = yy.momentum = 0.0f;
                }
                d = node_diff(&xx, &yy);
            }
            if (d) { bad = i; field = d; }
        }
        CHECK(bad < 0, "%s: node %d differs (field group %d)", what, bad, field);
    }
}

static void check_same_params(const fer_model *a, const fer_model *b, const char *what)
{
    int i, bad = -1;
    CHECK(a->n_params == b->n_params && a->n_buffers == b->n_buffers, "%s: %zu/%zu vs %zu/%zu values", what,
          a->n_params, a->n_buffers, b->n_params, b->n_buffers);
    if (a->n_params == b->n_params && a->n_buffers == b->n_buffers) {
        CHECK(memcmp(a->params, b->params, sizeof(float) * a->n_params) == 0, "%s: params differ", what);
        CHECK(memcmp(a->buffers, b->buffers, sizeof(float) * a->n_buffers) == 0, "%s: buffers differ", what);
    }
    for (i = 0; i < a->n_nodes && i < b->n_nodes; i++)
        if (node_diff(&a->nodes[i], &b->nodes[i]) && bad < 0) bad = i;
    CHECK(bad < 0, "%s: node %d differs", what, bad);
}

/* Inference forward of both models on the same batch: outputs must be bit-identical. */
static void check_same_forward(const fer_model *a, const fer_model *b, int n, const char *what)
{
    fer_workspace wa, wb;
    size_t in_len = (size_t)n * a->input.c * a->input.h * a->input.w, k;
    float *x = (float *)malloc(sizeof(float) * in_len);
    int finite = 1;
    test_fill(x, in_len, 77, 1.0f);
    CHECK(fer_workspace_init(&wa, a, n, 0) == FER_OK, "%s: workspace a: %s", what, wa.error);
    CHECK(fer_workspace_init(&wb, b, n, 0) == FER_OK, "%s: workspace b: %s", what, wb.error);
    if (wa.mem && wb.mem) {
        CHECK(fer_forward(a, &wa, x, n, 0) == FER_OK, "%s: forward a", what);
        CHECK(fer_forward(b, &wb, x, n, 0) == FER_OK, "%s: forward b", what);
        CHECK(memcmp(fer_output(a, &wa), fer_output(b, &wb), sizeof(float) * (size_t)n * a->n_classes) == 0,
              "%s: forward outputs differ", what);
        for (k = 0; k < (size_t)n * a->n_classes; k++) finite &= fer_output(b, &wb)[k] == fer_output(b, &wb)[k];
        CHECK(finite, "%s: output has NaN", what);
    }
    fer_workspace_free(&wa);
    fer_workspace_free(&wb);
    free(x);
}

/* Random parameters; buffers (BN running mean and variance) in [0.5, 1.5). */
static void randomise(fer_model *m, unsigned long long seed)
{
    size_t k;
    test_fill(m->params, m->n_params, seed, 0.5f);
    test_fill(m->buffers, m->n_buffers, seed + 1, 0.5f);
    for (k = 0; k < m->n_buffers; k++) m->buffers[k] += 1.0f;
}

static void decorate(fer_model *m, const char *arch)
{
    int i;
    memset(m->arch, 0, sizeof(m->arch));
    snprintf(m->arch, sizeof(m->arch), "%s", arch);
    for (i = 0; i < m->n_classes; i++) {
        memset(m->class_names[i], 0, FER_NAME_LEN);
        snprintf(m->class_names[i], FER_NAME_LEN, "expr_%d_%s", i, i % 2 ? "odd" : "even");
    }
    memset(m->class_names[0], 'z', FER_NAME_LEN - 1);   /* a name of the full 31 chars */
    m->class_names[0][FER_NAME_LEN - 1] = 0;
    m->pre.norm = FER_NORM_MEANSTD;
    m->pre.mean = 0.5071f;
    m->pre.std = 0.2673f;
    m->pre.store_h = m->input.h + 4;
    m->pre.store_w = m->input.w + 6;
    m->pre.crop_h = m->input.h;
    m->pre.crop_w = m->input.w;
    m->pre.temperature = 1.37f;
}

/* ---- 1. round trips ---- */

static void round_trip(fer_model *m, const char *what, int check_layout)
{
    fer_model l, f;
    size_t len = 0, len2 = 0, flen = 0;
    unsigned char *b = (unsigned char *)save(m, &len), *b2, *fb;
    char path[512], tmp[520];
    fer_result r;
    if (!b) return;
    r = fer_model_load_mem(&l, b, len, NULL);
    CHECK(r == FER_OK, "%s: load_mem: %s (%s)", what, fer_result_string(r), l.error);
    if (r == FER_OK) {
        check_same_meta(m, &l, what);
        if (check_layout) check_same_params(m, &l, what);
        check_same_forward(m, &l, 2, what);
        b2 = (unsigned char *)save(&l, &len2);
        CHECK(b2 && len2 == len && memcmp(b, b2, len) == 0, "%s: second save differs", what);
        free(b2);
        fer_model_free(&l);
    }
    /* through a file: the same bytes, the same model */
    path_in(path, sizeof(path), "rt.fer");
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    r = fer_model_save(m, path);
    CHECK(r == FER_OK, "%s: save: %s (%s)", what, fer_result_string(r), m->error);
    CHECK(!exists(tmp), "%s: %s left behind", what, tmp);
    fb = read_all(path, &flen);
    CHECK(fb && flen == len && memcmp(fb, b, len) == 0, "%s: file bytes differ from save_mem", what);
    free(fb);
    r = fer_model_load(&f, path, NULL);
    CHECK(r == FER_OK, "%s: load: %s (%s)", what, fer_result_string(r), f.error);
    if (r == FER_OK) {
        check_same_meta(m, &f, what);
        if (check_layout) check_same_params(m, &f, what);
        check_same_forward(m, &f, 1, what);
        fer_model_free(&f);
    }
    unlink(path);
    free(b);
}

/* A graph that uses every op, so every node record kind goes through the file. */
static int build_all_ops(fer_model *m)
{
    int x, a, b, c, xs[2], i, seen[FER_OP_COUNT] = { 0 }, all = 1;
    fer_model_init(m, 3, 12, 12, 5, NULL);
    x = fer_conv_bn_act(m, FER_INPUT, 8, 3, 1, FER_OP_RELU);
    a = fer_leaky_relu(m, x, 0.2f);
    b = fer_act(m, fer_avgpool(m, x, 3, 1, 1), FER_OP_RELU6);
    xs[0] = a; xs[1] = b;
    c = fer_concat(m, 2, xs);
    c = fer_block_se(m, c, 4);
    c = fer_block_cbam(m, c, 4);
    c = fer_block_basic(m, c, 16, 2);
    c = fer_maxpool(m, c, 2, 2, 0);
    c = fer_act(m, fer_bn(m, c), FER_OP_PRELU);
    c = fer_act(m, c, FER_OP_IDENTITY);
    c = fer_dropout(m, fer_flatten(m, c), 0.3f);
    c = fer_dense(m, c, 5, 0);
    c = fer_softmax(m, c);
    CHECK(c > 0 && fer_model_finalize(m, 3) == FER_OK, "all-ops model: %s", m->error);
    for (i = 0; i < m->n_nodes; i++) seen[m->nodes[i].op] = 1;
    for (i = 0; i < FER_OP_COUNT; i++) all &= seen[i];
    CHECK(all, "the all-ops model misses an op");
    return m->finalized;
}

static void test_round_trips(void)
{
    static const struct { const char *name; int c, h, w, k; } zoo[] = {
        { "mini_xception", 1, 44, 44, 5 }, { "mobilenetv2_lite", 3, 40, 40, 8 },
        { "resnet_lite", 1, 36, 36, 7 }, { "vgg16_dsc_cbam", 1, 40, 40, 6 },
    };
    int i;
    for (i = 0; i < (int)(sizeof(zoo) / sizeof(zoo[0])); i++) {
        fer_model m;
        char what[64];
        fer_result r = fer_zoo_build(&m, zoo[i].name, zoo[i].c, zoo[i].h, zoo[i].w, zoo[i].k, 9, NULL);
        CHECK(r == FER_OK, "zoo %s: %s", zoo[i].name, m.error);
        if (r != FER_OK) { fer_model_free(&m); continue; }
        randomise(&m, 100 + (unsigned long long)i);
        decorate(&m, zoo[i].name);
        snprintf(what, sizeof(what), "round trip %s", zoo[i].name);
        round_trip(&m, what, 1);
        /* folded: identity nodes keep an arena slice the file does not carry */
        if (i < 2) {
            size_t before = m.n_params;
            fer_model l;
            void *b;
            size_t len;
            CHECK(fer_model_fold_bn(&m) == FER_OK, "fold %s", zoo[i].name);
            snprintf(what, sizeof(what), "folded %s", zoo[i].name);
            round_trip(&m, what, 0);
            b = save(&m, &len);
            if (b && fer_model_load_mem(&l, b, len, NULL) == FER_OK) {
                CHECK(l.n_params < before, "%s: the file still carries the folded batch norms", what);
                fer_model_free(&l);
            }
            free(b);
        }
        fer_model_free(&m);
    }
    {
        fer_model m;
        if (build_all_ops(&m)) {
            randomise(&m, 555);
            m.nodes[2].eps = 1e-3f;           /* non-default node floats survive too */
            m.nodes[2].momentum = 0.01f;
            decorate(&m, "all_ops");
            m.pre.norm = FER_NORM_SIGNED;
            m.pre.crop_h = m.pre.crop_w = 0;
            round_trip(&m, "round trip all ops", 1);
        }
        fer_model_free(&m);
    }
}

/* ---- a tiny model and the layout ---- */

static int build_tiny(fer_model *m)
{
    int x;
    fer_model_init(m, 1, 6, 6, 3, NULL);
    x = fer_conv(m, FER_INPUT, 3, 3, 3, 1, 1, 1, 1);
    x = fer_gap(m, x);
    CHECK(x == 2 && fer_model_finalize(m, 1) == FER_OK, "tiny model: %s", m->error);
    randomise(m, 7);
    return m->finalized;
}

static void test_layout(void)
{
    fer_model m;
    unsigned char *b;
    size_t len, p0;
    const unsigned char crc_text[] = "123456789";
    CHECK(fer_crc32(crc_text, 9) == 0xCBF43926u, "fer_crc32 is not CRC-32/IEEE");
    if (!build_tiny(&m)) { fer_model_free(&m); return; }
    snprintf(m.arch, sizeof(m.arch), "tiny");
    m.pre.temperature = 2.0f;
    b = (unsigned char *)save(&m, &len);
    if (b) {
        p0 = HDR + 3 * 32 + 3 * NODE_BYTES;
        CHECK(len == p0 + 4 * (m.n_params + m.n_buffers) + 4, "file is %zu bytes", len);
        CHECK(memcmp(b, "FERM", 4) == 0 && get32(b + 4) == 1, "magic or version");
        CHECK(get32(b + 8) == 3 && get32(b + 12) == 3, "n_nodes, n_classes");
        CHECK(get32(b + 16) == 1 && get32(b + 20) == 6 && get32(b + 24) == 6, "input dims");
        CHECK(get32(b + 28) == m.n_params && get32(b + 32) == 0 && get32(b + 36) == 0 && get32(b + 40) == 0,
              "n_params, n_buffers");
        CHECK(strcmp((const char *)b + 44, "tiny") == 0, "arch at 44");
        CHECK(get32(b + 76) == 0 && get32(b + 96) == 6 && get32(b + 100) == 6 && get32(b + 104) == fbits(2.0f),
              "preprocessing at 76");
        CHECK(strcmp((const char *)b + HDR + 32, "c01") == 0, "class name 1 at 140");
        CHECK(get32(b + node_off(b, 0, F_OP)) == FER_OP_INPUT && get32(b + node_off(b, 0, F_UNITS)) == 1,
              "node 0 record");
        CHECK(get32(b + node_off(b, 1, F_OP)) == FER_OP_CONV && get32(b + node_off(b, 1, F_KH)) == 3 &&
              get32(b + node_off(b, 1, F_BIAS)) == 1 && get32(b + node_off(b, 1, F_SHARE)) == 0xFFFFFFFFu,
              "node 1 record");
        CHECK(get32(b + p0) == fbits(m.params[0]) && get32(b + len - 8) == fbits(m.params[m.n_params - 1]),
              "parameters at the end");
        CHECK(get32(b + len - 4) == fer_crc32(b, len - 4), "CRC in the last 4 bytes");
    }
    free(b);
    fer_model_free(&m);
}

/* ---- 2. truncation, 3. corruption ---- */

/* Every prefix of m's file, then one bit flipped (bit i % 8) in every byte of the
   header and class names, every table_step-th byte of the node table, every
   param_step-th byte of the values, the CRC, and 64 random places: all must be
   FER_ERR_FORMAT with a message. (Each flip costs a CRC over the whole file.) */
static void scan_file(fer_model *m, const char *what, size_t table_step, size_t param_step)
{
    fer_model x;
    size_t len, n, i, names_end, table_end;
    unsigned char *b = (unsigned char *)save(m, &len);
    unsigned long long st = 99;
    int bad_trunc = 0, bad_flip = 0, empty_msg = 0, flips = 0;
    if (!b) return;
    names_end = HDR + 32u * (size_t)m->n_classes;
    table_end = names_end + NODE_BYTES * (size_t)m->n_nodes;
    for (n = 0; n < len; n++) {
        fer_result r = fer_model_load_mem(&x, b, n, NULL);
        bad_trunc += r != FER_ERR_FORMAT;
        empty_msg += x.error[0] == 0;
        if (r == FER_OK) fer_model_free(&x);
    }
    CHECK(bad_trunc == 0, "%s: %d of %zu prefixes not rejected", what, bad_trunc, len);
    for (i = 0; i < len + 64; i++) {
        size_t at = i;
        int bit = (int)(i % 8);
        fer_result r;
        if (i >= len) {                                        /* random places */
            at = (size_t)((test_rand(&st) + 1.0f) * 0.5f * (float)(len - 1));
            bit = (int)((test_rand(&st) + 1.0f) * 4.0f) & 7;
        } else if (i >= names_end && i < table_end && (i - names_end) % table_step) continue;
        else if (i >= table_end && i < len - 4 && (i - table_end) % param_step) continue;
        b[at] ^= (unsigned char)(1u << bit);
        r = fer_model_load_mem(&x, b, len, NULL);
        b[at] ^= (unsigned char)(1u << bit);
        bad_flip += r != FER_ERR_FORMAT;
        empty_msg += x.error[0] == 0;
        flips++;
        if (r == FER_OK) fer_model_free(&x);
    }
    CHECK(bad_flip == 0, "%s: %d of %d bit flips not rejected", what, bad_flip, flips);
    CHECK(empty_msg == 0, "%s: %d rejections without a message", what, empty_msg);
    CHECK(fer_model_load_mem(&x, b, len, NULL) == FER_OK, "%s: the untouched file: %s", what, x.error);
    fer_model_free(&x);
    if (verbose) printf("  %-34s %zu bytes: %zu prefixes and %d bit flips rejected\n", what, len, len, flips);
    free(b);
}

static void test_truncation_and_bits(void)
{
    fer_model m, x;
    unsigned char *b, *c;
    size_t len, n, i;
    int bit, bad_trunc = 0, bad_flip = 0, empty_msg = 0, leaked = 0;
    if (!build_tiny(&m)) { fer_model_free(&m); return; }
    b = (unsigned char *)save(&m, &len);
    fer_model_free(&m);
    if (!b) return;
    expect_bad_len(NULL, 0, FER_ERR_FORMAT, "too short", "NULL buffer");
    for (n = 0; n < len; n++) {
        fer_result r = fer_model_load_mem(&x, b, n, NULL);
        bad_trunc += r != FER_ERR_FORMAT;
        empty_msg += x.error[0] == 0;
        leaked += x.nodes != NULL || x.arena != NULL;
        if (r == FER_OK) fer_model_free(&x);
    }
    CHECK(bad_trunc == 0, "%d of %zu prefixes of the tiny file not rejected", bad_trunc, len);
    expect_bad_len(b, len - 1, FER_ERR_FORMAT, "truncated", "prefix len-1");
    /* a longer file is as wrong as a shorter one */
    c = (unsigned char *)calloc(len + 8, 1);
    memcpy(c, b, len);
    expect_bad_len(c, len + 4, FER_ERR_FORMAT, "bytes", "4 bytes appended");
    free(c);
    /* every bit of every byte */
    c = (unsigned char *)malloc(len);
    for (i = 0; i < len; i++)
        for (bit = 0; bit < 8; bit++) {
            fer_result r;
            memcpy(c, b, len);
            c[i] ^= (unsigned char)(1u << bit);
            r = fer_model_load_mem(&x, c, len, NULL);
            bad_flip += r != FER_ERR_FORMAT;
            empty_msg += x.error[0] == 0;
            leaked += x.nodes != NULL || x.arena != NULL;
            if (r == FER_OK) fer_model_free(&x);
        }
    CHECK(bad_flip == 0, "%d single-bit flips of the tiny file not rejected", bad_flip);
    CHECK(empty_msg == 0 && leaked == 0, "%d rejections without a message, %d with memory left", empty_msg, leaked);
    free(c);
    free(b);

    /* bigger graphs: every prefix; one bit in each scanned byte */
    {
        fer_model z;
        if (build_all_ops(&z)) {
            randomise(&z, 5);
            scan_file(&z, "all-ops model", 1, 211);
        }
        fer_model_free(&z);
        if (fer_zoo_build(&z, "mini_xception", 1, 48, 48, 7, 5, NULL) == FER_OK) {
            randomise(&z, 3);
            scan_file(&z, "mini_xception", 7, 997);
        } else CHECK(0, "mini_xception: %s", z.error);
        fer_model_free(&z);
    }
}

/* ---- 4. hostile files with a valid CRC ---- */

/* n0 input 2x8x8, n1 conv 4 (3x3, pad 1, 2 groups, bias), n2 bn, n3 relu,
   n4 maxpool 2, n5 gap, n6 dense 4, n7 dense sharing n6 (on n5), n8 add(n6, n7),
   n9 dropout, n10 dense 3. */
static int build_hostile_base(fer_model *m)
{
    int x, d, s;
    fer_model_init(m, 2, 8, 8, 3, NULL);
    x = fer_conv(m, FER_INPUT, 4, 3, 3, 1, 1, 2, 1);
    x = fer_act(m, fer_bn(m, x), FER_OP_RELU);
    x = fer_gap(m, fer_maxpool(m, x, 2, 2, 0));
    d = fer_dense(m, x, 4, 1);
    s = fer_dense_shared(m, x, d);
    x = fer_dropout(m, fer_add(m, d, s), 0.5f);
    x = fer_dense(m, x, 3, 1);
    CHECK(x == 10 && fer_model_finalize(m, 2) == FER_OK, "hostile base: %d %s", x, m->error);
    randomise(m, 11);
    return m->finalized;
}

static void test_hostile(void)
{
    fer_model m;
    unsigned char *b, *c;
    size_t len, n2, np;
    float nan = (float)NAN, inf = (float)INFINITY;
    if (!build_hostile_base(&m)) { fer_model_free(&m); return; }
    np = m.n_params;
    b = (unsigned char *)save(&m, &len);
    fer_model_free(&m);
    if (!b) return;
    CHECK(fer_model_load_mem(&m, b, len, NULL) == FER_OK, "hostile base loads: %s", m.error);
    fer_model_free(&m);
    if (verbose) printf("hostile files (valid CRC):\n");

    /* header */
    expect_patch(b, len, 0, 0x4D524546u ^ 0x20u, "magic", "wrong magic");
    expect_patch(b, len, 4, 0, "version", "version 0");
    expect_patch(b, len, 4, 2, "version", "version 2");
    expect_patch(b, len, 8, 0, "nodes", "n_nodes 0");
    expect_patch(b, len, 8, 1, "nodes", "n_nodes 1");
    expect_patch(b, len, 8, FER_MAX_NODES + 1, "nodes", "n_nodes 4097");
    expect_patch(b, len, 8, 0xFFFFFFFFu, "nodes", "n_nodes 2^32-1");
    expect_patch(b, len, 8, 12, "bytes", "n_nodes 12 (size mismatch)");
    expect_patch(b, len, 12, 0, "classes", "n_classes 0");
    expect_patch(b, len, 12, 65, "classes", "n_classes 65");
    expect_patch(b, len, 12, 0x80000000u, "classes", "n_classes 2^31");
    expect_patch(b, len, 16, 0, "input", "input c 0");
    expect_patch(b, len, 20, 0, "input", "input h 0");
    expect_patch(b, len, 24, 0, "input", "input w 0");
    expect_patch(b, len, 16, 0x7FFFFFFFu, "input", "input c huge");
    expect_patch(b, len, 20, FER_MAX_DIM + 1, "input", "input h 4097");
    expect_patch(b, len, 24, 0xFFFFFFFFu, "input", "input w 2^32-1");
    expect_patch(b, len, 16, 3, "node 0", "input c 3 (node 0 says 2)");
    expect_patch(b, len, 20, 1, "maxpool", "input h 1 (the pool no longer fits)");
    expect_patch(b, len, 32, 0x100u, "implausible", "n_params 2^40");
    expect_patch(b, len, 32, 0xFFFFFFFFu, "implausible", "n_params ~2^64");
    expect_patch(b, len, 40, 0x100u, "implausible", "n_buffers 2^40");
    expect_patch(b, len, 28, (uint32_t)np + 1, "bytes", "n_params + 1 (size mismatch)");
    expect_patch(b, len, 28, (uint32_t)np - 1, "bytes", "n_params - 1 (size mismatch)");
    c = resized(b, len, 4, 28, &n2);
    expect_bad_len(c, n2, FER_ERR_FORMAT, "graph needs", "n_params + 1, file grown");
    free(c);
    c = resized(b, len, -4, 28, &n2);
    expect_bad_len(c, n2, FER_ERR_FORMAT, "graph needs", "n_params - 1, file shrunk");
    free(c);
    c = resized(b, len, 4, 36, &n2);
    expect_bad_len(c, n2, FER_ERR_FORMAT, "buffer", "n_buffers + 1, file grown");
    free(c);

    /* names and preprocessing */
    c = (unsigned char *)malloc(len);
    memcpy(c, b, len); memset(c + 44, 'A', 32); fix_crc(c, len);
    expect_bad_len(c, len, FER_ERR_FORMAT, "architecture", "unterminated arch");
    memcpy(c, b, len); memset(c + HDR + 32, 'B', 32); fix_crc(c, len);
    expect_bad_len(c, len, FER_ERR_FORMAT, "class name 1", "unterminated class name");
    free(c);
    expect_patch(b, len, 76, 7, "norm mode 7", "norm mode 7");
    expect_patch(b, len, 104, fbits(-1.0f), "temperature", "negative temperature");
    expect_patch(b, len, 104, 0, "temperature", "temperature 0");
    expect_patch(b, len, 104, fbits(nan), "temperature", "temperature NaN");
    expect_patch(b, len, 104, fbits(inf), "temperature", "temperature Inf");
    expect_patch(b, len, 80, fbits(nan), "mean", "mean NaN");
    expect_patch(b, len, 84, fbits(-0.5f), "std", "std negative");
    {
        unsigned char *d = (unsigned char *)malloc(len);
        memcpy(d, b, len);
        put32(d + 76, FER_NORM_MEANSTD); put32(d + 84, 0);
        fix_crc(d, len);
        expect_bad_len(d, len, FER_ERR_FORMAT, "std", "meanstd with std 0");
        free(d);
    }
    expect_patch(b, len, 88, 9, "crop", "crop larger than stored size");
    expect_patch(b, len, 96, 0x10000u, "stored size", "stored size huge");

    /* node records */
    expect_patch(b, len, node_off(b, 0, F_OP), FER_OP_CONV, "node 0", "node 0 not the input");
    expect_patch(b, len, node_off(b, 0, F_NIN), 1, "node 0", "node 0 with an input");
    expect_patch(b, len, node_off(b, 3, F_OP), FER_OP_COUNT, "unknown operation", "unknown op");
    expect_patch(b, len, node_off(b, 3, F_OP), 0xFFFFFFFFu, "unknown operation", "op 2^32-1");
    expect_patch(b, len, node_off(b, 3, F_OP), FER_OP_INPUT, "only node 0", "input op at node 3");
    expect_patch(b, len, node_off(b, 3, F_IN0), 5, "not an earlier node", "input points forward");
    expect_patch(b, len, node_off(b, 3, F_IN0), 3, "not an earlier node", "input points to itself");
    expect_patch(b, len, node_off(b, 3, F_IN0), 0x80000000u, "not an earlier node", "input index negative");
    expect_patch(b, len, node_off(b, 3, F_NIN), 0, "inputs", "n_in 0");
    expect_patch(b, len, node_off(b, 3, F_NIN), 5, "inputs", "n_in 5");
    expect_patch(b, len, node_off(b, 8, F_NIN), 1, "inputs", "add with one input");
    expect_patch(b, len, node_off(b, 8, F_IN1), 4, "do not fit", "add of different shapes");
    expect_patch(b, len, node_off(b, 1, F_GROUPS), 3, "do not fit", "conv groups 3 of 2 channels");
    expect_patch(b, len, node_off(b, 1, F_GROUPS), 0, "do not fit", "conv groups 0");
    expect_patch(b, len, node_off(b, 1, F_GROUPS), 0xFFFFFFFFu, "do not fit", "conv groups -1");
    {
        unsigned char *d = (unsigned char *)malloc(len);
        memcpy(d, b, len);       /* kernel 11 > 8 + 2 * pad 1; the counts would differ too */
        put32(d + node_off(d, 1, F_KH), 11); put32(d + node_off(d, 1, F_KW), 11);
        fix_crc(d, len);
        expect_bad_len(d, len, FER_ERR_FORMAT, "do not fit", "conv kernel larger than input");
        free(d);
    }
    expect_patch(b, len, node_off(b, 1, F_KH), 0x7FFFFFFFu, "out of range", "conv kernel 2^31-1");
    expect_patch(b, len, node_off(b, 1, F_SH), 0, "do not fit", "conv stride 0");
    expect_patch(b, len, node_off(b, 1, F_SW), 0xFFFFFFFFu, "do not fit", "conv stride -1");
    expect_patch(b, len, node_off(b, 1, F_PH), 3, "do not fit", "conv pad = kernel");
    expect_patch(b, len, node_off(b, 1, F_PW), 0x40000000u, "out of range", "conv pad 2^30");
    expect_patch(b, len, node_off(b, 1, F_PW), 0xFFFFFFFFu, "out of range", "conv pad -1");
    expect_patch(b, len, node_off(b, 1, F_UNITS), 0, "do not fit", "conv 0 outputs");
    expect_patch(b, len, node_off(b, 1, F_UNITS), 6, "records", "conv 6 outputs (graph disagrees)");
    expect_patch(b, len, node_off(b, 1, F_BIAS), 2, "bias", "bias flag 2");
    expect_patch(b, len, node_off(b, 1, F_ACT), FER_OP_SIGMOID, "activation", "conv fused sigmoid");
    expect_patch(b, len, node_off(b, 3, F_ACT), FER_OP_RELU, "activation", "fused act on a relu");
    expect_patch(b, len, node_off(b, 2, F_EPS), 0, "eps", "bn eps 0");
    expect_patch(b, len, node_off(b, 2, F_EPS), fbits(nan), "finite", "bn eps NaN");
    expect_patch(b, len, node_off(b, 2, F_MOM), fbits(2.0f), "momentum", "bn momentum 2");
    expect_patch(b, len, node_off(b, 2, F_UNITS), 5, "records", "bn records 5 channels");
    expect_patch(b, len, node_off(b, 3, F_ALPHA), fbits(inf), "finite", "alpha Inf");
    {
        /* a patched file that is still valid loads: the checks are not just "changed" */
        unsigned char *d = (unsigned char *)malloc(len);
        memcpy(d, b, len);
        put32(d + node_off(d, 3, F_OP), FER_OP_LEAKY_RELU);
        put32(d + node_off(d, 3, F_ALPHA), fbits(0.125f));
        fix_crc(d, len);
        CHECK(fer_model_load_mem(&m, d, len, NULL) == FER_OK && m.nodes[3].op == FER_OP_LEAKY_RELU &&
              m.nodes[3].alpha == 0.125f, "relu patched into leaky relu: %s", m.error);
        fer_model_free(&m);
        free(d);
    }
    expect_patch(b, len, node_off(b, 4, F_KW), 3, "non-square", "pool non-square");
    expect_patch(b, len, node_off(b, 4, F_KH), 0, "non-square", "pool kh 0");
    {
        unsigned char *d = (unsigned char *)malloc(len);
        size_t f;
        memcpy(d, b, len);      /* a square window, but its pad would overflow int arithmetic */
        for (f = F_PH; f <= F_PW; f++) put32(d + node_off(d, 4, (int)f), 0x40000000u);
        fix_crc(d, len);
        expect_bad_len(d, len, FER_ERR_FORMAT, "out of range", "pool pad 2^30");
        memcpy(d, b, len);
        put32(d + node_off(d, 4, F_KH), 0); put32(d + node_off(d, 4, F_KW), 0);
        fix_crc(d, len);
        expect_bad_len(d, len, FER_ERR_FORMAT, "out of range", "pool window 0");
        memcpy(d, b, len);
        put32(d + node_off(d, 4, F_KH), 9); put32(d + node_off(d, 4, F_KW), 9);
        fix_crc(d, len);
        expect_bad_len(d, len, FER_ERR_FORMAT, "do not fit", "pool window larger than input");
        memcpy(d, b, len);
        put32(d + node_off(d, 4, F_SH), 0); put32(d + node_off(d, 4, F_SW), 0);
        fix_crc(d, len);
        expect_bad_len(d, len, FER_ERR_FORMAT, "out of range", "pool stride 0");
        free(d);
    }
    expect_patch(b, len, node_off(b, 7, F_SHARE), 2, "not a dense layer", "dense sharing a batch norm");
    expect_patch(b, len, node_off(b, 7, F_SHARE), 7, "not a dense layer", "dense sharing itself");
    expect_patch(b, len, node_off(b, 7, F_SHARE), 9, "not a dense layer", "dense sharing a later node");
    expect_patch(b, len, node_off(b, 7, F_SHARE), 0xFFFFFFFEu, "shares node", "share -2");
    expect_patch(b, len, node_off(b, 3, F_SHARE), 1, "shares node", "relu sharing a conv");
    expect_patch(b, len, node_off(b, 7, F_UNITS), 5, "records", "shared dense records 5 outputs");
    expect_patch(b, len, node_off(b, 9, F_ALPHA), fbits(1.5f), "dropout", "dropout rate 1.5");
    expect_patch(b, len, node_off(b, 9, F_ALPHA), fbits(nan), "finite", "dropout rate NaN");
    {
        /* a last dense of 4 outputs, its params present: finalize's class check */
        unsigned char *d = resized(b, len, 4 * 5, 28, &n2);
        put32(d + node_off(d, 10, F_UNITS), 4);
        fix_crc(d, n2);
        expect_bad_len(d, n2, FER_ERR_FORMAT, "classes", "last node gives 4 values for 3 classes");
        free(d);
    }

    /* non-finite values */
    {
        size_t p0 = node_off(b, 11, 0);
        expect_patch(b, len, p0, fbits(nan), "parameter 0", "NaN parameter 0");
        expect_patch(b, len, p0 + 4 * (np - 1), fbits(-inf), "not finite", "-Inf last parameter");
        expect_patch(b, len, p0 + 4 * np, fbits(inf), "buffer value 0", "Inf buffer value");
        expect_patch(b, len, len - 8, 0x7FC00001u, "buffer value", "NaN last buffer value");
    }
    free(b);
}

/* ---- 5. atomic save, 6. load from disk ---- */

static void test_disk(void)
{
    fer_model m, m2, l;
    char path[512], tmp[520], sub[512], sub_tmp[520], missing[512], bad[512];
    unsigned char *orig, *now;
    size_t olen, nlen;
    fer_result r;
    void *mb;
    size_t mlen;
    if (!build_tiny(&m) || !build_tiny(&m2)) { fer_model_free(&m); fer_model_free(&m2); return; }
    randomise(&m2, 4242);
    path_in(path, sizeof(path), "model.fer");
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    snprintf(missing, sizeof(missing), "%s/no/such/dir/model.fer", tmpdir);
    if (verbose) printf("disk:\n");

    r = fer_model_save(&m, missing);
    CHECK(r == FER_ERR_IO && m.error[0], "save into a missing directory: %s (%s)", fer_result_string(r), m.error);
    if (verbose) printf("  %-34s -> %s: %s\n", "save into a missing directory", fer_result_string(r), m.error);

    CHECK(fer_model_save(&m, path) == FER_OK, "save: %s", m.error);
    orig = read_all(path, &olen);
    CHECK(orig != NULL && olen > 0, "read back %s", path);

    /* path.tmp is a directory: fopen fails, the old file stays */
    CHECK(mkdir(tmp, 0700) == 0, "mkdir %s", tmp);
    r = fer_model_save(&m2, path);
    CHECK(r == FER_ERR_IO && strstr(m2.error, ".tmp"), "save with path.tmp a directory: %s (%s)",
          fer_result_string(r), m2.error);
    if (verbose) printf("  %-34s -> %s: %s\n", "save with path.tmp a directory", fer_result_string(r), m2.error);
    now = read_all(path, &nlen);
    CHECK(now && nlen == olen && memcmp(now, orig, olen) == 0, "the previous file changed");
    free(now);
    rmdir(tmp);

    /* an unwritable directory (root writes anyway, so only as a normal user) */
    if (geteuid() != 0) {
        CHECK(chmod(tmpdir, 0500) == 0, "chmod %s", tmpdir);
        r = fer_model_save(&m2, path);
        chmod(tmpdir, 0700);
        CHECK(r == FER_ERR_IO, "save into a read-only directory: %s (%s)", fer_result_string(r), m2.error);
        now = read_all(path, &nlen);
        CHECK(now && nlen == olen && memcmp(now, orig, olen) == 0, "the previous file changed");
        free(now);
    }

    /* the rename fails (the target is a directory): the .tmp is removed */
    path_in(sub, sizeof(sub), "adir");
    snprintf(sub_tmp, sizeof(sub_tmp), "%s.tmp", sub);
    CHECK(mkdir(sub, 0700) == 0, "mkdir %s", sub);
    r = fer_model_save(&m, sub);
    CHECK(r == FER_ERR_IO && m.error[0], "save over a directory: %s", fer_result_string(r));
    CHECK(!exists(sub_tmp), "a failed save left %s", sub_tmp);
    if (verbose) printf("  %-34s -> %s: %s\n", "save over a directory", fer_result_string(r), m.error);

    /* a NaN parameter: refused, nothing written, the old file stays */
    m2.params[3] = (float)NAN;
    r = fer_model_save(&m2, path);
    CHECK(r == FER_ERR_NUMERIC && strstr(m2.error, "not finite"), "save with NaN: %s (%s)", fer_result_string(r), m2.error);
    if (verbose) printf("  %-34s -> %s: %s\n", "save with a NaN parameter", fer_result_string(r), m2.error);
    CHECK(!exists(tmp), "a refused save left %s", tmp);
    now = read_all(path, &nlen);
    CHECK(now && nlen == olen && memcmp(now, orig, olen) == 0, "the previous file changed");
    free(now);
    path_in(bad, sizeof(bad), "nan.fer");
    r = fer_model_save(&m2, bad);
    CHECK(r == FER_ERR_NUMERIC && !exists(bad), "NaN save created a file");
    mb = (void *)1; mlen = 1;
    r = fer_model_save_mem(&m2, &mb, &mlen, NULL);
    CHECK(r == FER_ERR_NUMERIC && mb == NULL && mlen == 0, "save_mem with NaN: %s", fer_result_string(r));
    m2.params[3] = 0.0f;
    m2.params[m2.n_params - 1] = (float)INFINITY;
    CHECK(fer_model_save_mem(&m2, &mb, &mlen, NULL) == FER_ERR_NUMERIC, "save_mem with Inf");
    m2.params[m2.n_params - 1] = 0.0f;

    /* preprocessing the loader would refuse is refused at save */
    m2.pre.temperature = 0.0f;
    r = fer_model_save(&m2, bad);
    CHECK(r == FER_ERR_ARG && strstr(m2.error, "temperature") && !exists(bad),
          "save with temperature 0: %s (%s)", fer_result_string(r), m2.error);
    if (verbose) printf("  %-34s -> %s: %s\n", "save with temperature 0", fer_result_string(r), m2.error);
    m2.pre.temperature = 1.0f;

    /* not finalized */
    {
        fer_model u;
        fer_model_init(&u, 1, 4, 4, 2, NULL);
        r = fer_model_save_mem(&u, &mb, &mlen, NULL);
        CHECK(r == FER_ERR_ARG && u.error[0], "save of an unfinalized model: %s", fer_result_string(r));
        fer_model_free(&u);
    }

    /* 6. loading from disk */
    r = fer_model_load(&l, missing, NULL);
    CHECK(r == FER_ERR_IO && strstr(l.error, missing), "load of a missing file: %s (%s)", fer_result_string(r), l.error);
    if (verbose) printf("  %-34s -> %s: %s\n", "load a missing file", fer_result_string(r), l.error);
    r = fer_model_load(&l, sub, NULL);
    CHECK(r == FER_ERR_IO && strstr(l.error, sub), "load of a directory: %s (%s)", fer_result_string(r), l.error);
    if (verbose) printf("  %-34s -> %s: %s\n", "load a directory", fer_result_string(r), l.error);
    CHECK(write_all(bad, orig, 0), "write empty file");
    r = fer_model_load(&l, bad, NULL);
    CHECK(r == FER_ERR_FORMAT && strstr(l.error, bad), "load of an empty file: %s (%s)", fer_result_string(r), l.error);
    CHECK(write_all(bad, orig, olen - 5), "write truncated file");
    r = fer_model_load(&l, bad, NULL);
    CHECK(r == FER_ERR_FORMAT && strstr(l.error, bad) && strstr(l.error, "truncated"),
          "load of a truncated file: %s (%s)", fer_result_string(r), l.error);
    if (verbose) printf("  %-34s -> %s: %s\n", "load a truncated file", fer_result_string(r), l.error);
    r = fer_model_load(&l, path, NULL);
    CHECK(r == FER_OK, "load of the saved file: %s", l.error);
    if (r == FER_OK) { check_same_meta(&m, &l, "disk"); check_same_params(&m, &l, "disk"); fer_model_free(&l); }

    unlink(bad);
    rmdir(sub);
    unlink(path);
    free(orig);
    fer_model_free(&m);
    fer_model_free(&m2);
}

int main(int argc, char **argv)
{
    int i;
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-v")) verbose = 1;
        else { fprintf(stderr, "usage: %s [-v]\n", argv[0]); return 2; }
    }
    snprintf(tmpdir, sizeof(tmpdir), "%s/fer_test_file_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir)) { printf("not ok: mkdtemp %s\n", tmpdir); return 1; }
    test_layout();
    test_round_trips();
    test_truncation_and_bits();
    test_hostile();
    test_disk();
    CHECK(rmdir(tmpdir) == 0, "temporary directory %s not empty at the end", tmpdir);
    return test_done("test_file");
}
