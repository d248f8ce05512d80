/* test_grad: finite-difference gradient checks for every layer and block.
   Each case builds a small graph (input -> layer or block -> dense 5), takes the
   loss L = sum(r * output) for a fixed random r, and compares fer_backward's
   input and parameter gradients with central differences of L. Training-mode
   forward throughout (BN uses batch statistics; dropout masks are fixed by the
   workspace's dropout_seed, so L is a deterministic function).
   ReLU, max pooling and friends have kinks; where one falls inside the +-EPS
   stencil the one-sided differences disagree and that coordinate says nothing
   about the code, so it is skipped. (float round-off in the one-sided differences also lands some here). A case fails if more than a third are skipped. */
#define FER_IMPLEMENTATION
#include "fer.h"
#include "test.h"

#define EPS 1e-3f
#define MAX_CHECKS 160

static double loss_of(const fer_model *m, fer_workspace *ws, const float *x, int n, const float *r)
{
    const float *y;
    double L = 0.0;
    int i, k = n * m->n_classes;
    fer_forward(m, ws, x, n, 1);
    y = fer_output(m, ws);
    for (i = 0; i < k; i++) L += (double)r[i] * y[i];
    return L;
}

/* Compares an analytic gradient g[0..len) of values v[0..len) against central
   differences at up to MAX_CHECKS positions; returns the relative error
   ||g - num|| / max(||g||, ||num||). */
static double fd_compare(const fer_model *m, fer_workspace *ws, float *x, int n, const float *r,
                         float *v, const float *g, size_t len, unsigned long long seed, double *worst_abs,
                         int *skipped)
{
    double dd = 0.0, ga = 0.0, gn = 0.0, l0 = loss_of(m, ws, x, n, r);
    size_t k, count = len < MAX_CHECKS ? len : MAX_CHECKS;
    *skipped = 0;
    *worst_abs = 0.0;
    for (k = 0; k < count; k++) {
        size_t idx = len <= MAX_CHECKS ? k : (size_t)((test_rand(&seed) * 0.5f + 0.5f) * (float)len) % len;
        float save = v[idx];
        double lp, lm, num, dp, dm;
        v[idx] = save + EPS; lp = loss_of(m, ws, x, n, r);
        v[idx] = save - EPS; lm = loss_of(m, ws, x, n, r);
        v[idx] = save;
        num = (lp - lm) / (2.0 * EPS);
        dp = (lp - l0) / EPS; dm = (l0 - lm) / EPS;
        if (fabs(dp - dm) > 0.05 * (fabs(dp) > fabs(dm) ? fabs(dp) : fabs(dm)) + 5e-3) {
            (*skipped)++;   /* a kink inside the stencil */
            continue;
        }
        dd += (num - g[idx]) * (num - g[idx]);
        ga += (double)g[idx] * g[idx];
        gn += num * num;
        if (fabs(num - g[idx]) > *worst_abs) *worst_abs = fabs(num - g[idx]);
    }
    ga = sqrt(ga); gn = sqrt(gn);
    if (ga < 1e-6 && gn < 1e-6) return 0.0;
    return sqrt(dd) / (ga > gn ? ga : gn);
}

typedef int (*build_fn)(fer_model *m, int x);

/* Runs one gradient check; input n x c x h x w scaled by `scale`. */
static void gradcheck(const char *name, build_fn build, int n, int c, int h, int w, float scale,
                      int fold)
{
    fer_model m;
    fer_workspace ws;
    float *x, *r, *gx, *gp;
    size_t nx = (size_t)n * c * h * w, i;
    double err_in, err_p = 0.0, wa_in, wa_p = 0.0;
    int out, sk_in = 0, sk_p = 0;
    fer_model_init(&m, c, h, w, 5, NULL);
    out = build(&m, FER_INPUT);
    fer_dense(&m, fer_flatten(&m, out), 5, 1);
    if (fer_model_finalize(&m, 7) != FER_OK) {
        CHECK(0, "%s: build failed: %s", name, m.error);
        fer_model_free(&m);
        return;
    }
    test_fill(m.params, m.n_params, 11, 0.5f);
    for (i = 0; i < (size_t)m.n_nodes; i++) {            /* BN gamma near 1, PReLU slope 0.25 */
        fer_node *nd = &m.nodes[i];
        size_t k;
        if (nd->op == FER_OP_BN) for (k = 0; k < (size_t)nd->out.c; k++) m.params[nd->p_off + k] += 1.0f;
        if (nd->op == FER_OP_PRELU) for (k = 0; k < nd->p_len; k++) m.params[nd->p_off + k] = 0.25f + 0.1f * m.params[nd->p_off + k];
    }
    if (fold) {
        test_fill(m.buffers, m.n_buffers, 5, 0.3f);
        for (i = 0; i < (size_t)m.n_nodes; i++)
            if (m.nodes[i].op == FER_OP_BN) {
                size_t k;
                for (k = 0; k < (size_t)m.nodes[i].out.c; k++) m.buffers[m.nodes[i].b_off + m.nodes[i].out.c + k] += 1.0f;
            }
        CHECK(fer_model_fold_bn(&m) == FER_OK, "%s: fold", name);
    }
    CHECK(fer_workspace_init(&ws, &m, n, 1) == FER_OK, "%s: workspace: %s", name, ws.error);
    ws.dropout_seed = 1234;
    x = (float *)malloc(sizeof(float) * nx);
    r = (float *)malloc(sizeof(float) * (size_t)n * 5);
    gx = (float *)malloc(sizeof(float) * nx);
    gp = (float *)malloc(sizeof(float) * (m.n_params ? m.n_params : 1));
    /* distinct inputs, at least 2/nx*scale apart, so no two tie within the stencil */
    test_fill(x, nx, 3, 1.0f);
    {
        size_t a, b2;
        for (a = 0; a < nx; a++) gx[a] = (float)a;
        for (a = nx - 1; a > 0; a--) { b2 = (size_t)((x[a] * 0.5f + 0.5f) * (float)(a + 1)) % (a + 1); r[0] = gx[a]; gx[a] = gx[b2]; gx[b2] = r[0]; }
        for (a = 0; a < nx; a++) x[a] = scale * (2.0f * gx[a] / (float)nx - 1.0f);
    }
    test_fill(r, (size_t)n * 5, 4, 1.0f);
    fer_zero_grad(&m, &ws);
    fer_forward(&m, &ws, x, n, 1);
    CHECK(fer_backward(&m, &ws, r) == FER_OK, "%s: backward: %s", name, ws.error);
    memcpy(gx, fer_input_grad(&ws), sizeof(float) * nx);
    memcpy(gp, ws.pgrad, sizeof(float) * m.n_params);
    {   /* a second backward over the first one's stale activation gradients: each
           region is reset (zeroed, or assigned by its first writer), so the input
           gradient and (zeroed in between) the parameter gradients repeat bit for bit */
        size_t a;
        int same = 1;
        fer_zero_grad(&m, &ws);
        CHECK(fer_backward(&m, &ws, r) == FER_OK, "%s: second backward: %s", name, ws.error);
        for (a = 0; a < nx; a++) same &= fer_input_grad(&ws)[a] == gx[a];
        for (a = 0; a < m.n_params; a++) same &= ws.pgrad[a] == gp[a];
        CHECK(same, "%s: a second backward does not repeat the first", name);
    }
    err_in = fd_compare(&m, &ws, x, n, r, x, gx, nx, 99, &wa_in, &sk_in);
    if (m.n_params) err_p = fd_compare(&m, &ws, x, n, r, m.params, gp, m.n_params, 77, &wa_p, &sk_p);
    CHECK(sk_in * 3 <= MAX_CHECKS && sk_p * 3 <= MAX_CHECKS, "%s: %d + %d coordinates at kinks", name, sk_in, sk_p);
    CHECK(err_in < 1e-2, "%s: input gradient relative error %.3g (worst abs %.3g)", name, err_in, wa_in);
    CHECK(err_p < 1e-2, "%s: parameter gradient relative error %.3g (worst abs %.3g)", name, err_p, wa_p);
    if (getenv("VERBOSE"))
        printf("  %-22s params %7zu  rel err input %.2e params %.2e  (kinks skipped %d, %d)\n", name,
               fer_model_param_count(&m), err_in, err_p, sk_in, sk_p);
    free(x); free(r); free(gx); free(gp);
    fer_workspace_free(&ws);
    fer_model_free(&m);
}

/* ---- layers ---- */
static int b_conv3(fer_model *m, int x) { return fer_conv(m, x, 4, 3, 3, 1, 1, 1, 1); }
static int b_conv_s2(fer_model *m, int x) { return fer_conv(m, x, 5, 3, 3, 2, 1, 1, 0); }
static int b_conv_1x1(fer_model *m, int x) { return fer_conv(m, x, 6, 1, 1, 1, 0, 1, 1); }
static int b_conv_rect(fer_model *m, int x) { return fer_conv(m, x, 3, 1, 5, 1, -1, 1, 1); }
static int b_conv_k5p2s2(fer_model *m, int x) { return fer_conv(m, x, 3, 5, 5, 2, 2, 1, 1); }
static int b_conv_groups(fer_model *m, int x) { return fer_conv(m, fer_conv(m, x, 4, 1, 1, 1, 0, 1, 0), 6, 3, 3, 1, 1, 2, 1); }
static int b_dw(fer_model *m, int x) { return fer_conv(m, x, 3, 3, 3, 1, 1, 3, 1); }
static int b_dw_s2(fer_model *m, int x) { return fer_conv(m, x, 3, 3, 3, 2, 1, 3, 0); }
static int b_dw_k7(fer_model *m, int x) { return fer_conv(m, x, 3, 7, 7, 1, 3, 3, 0); }
static int b_bn(fer_model *m, int x) { return fer_bn(m, x); }
static int b_relu(fer_model *m, int x) { return fer_act(m, x, FER_OP_RELU); }
static int b_relu6(fer_model *m, int x) { return fer_act(m, x, FER_OP_RELU6); }
static int b_leaky(fer_model *m, int x) { return fer_leaky_relu(m, x, 0.1f); }
static int b_prelu(fer_model *m, int x) { return fer_act(m, x, FER_OP_PRELU); }
static int b_sigmoid(fer_model *m, int x) { return fer_act(m, x, FER_OP_SIGMOID); }
static int b_softmax(fer_model *m, int x) { return fer_softmax(m, x); }
static int b_maxpool2(fer_model *m, int x) { return fer_maxpool(m, x, 2, 2, 0); }
static int b_maxpool3(fer_model *m, int x) { return fer_maxpool(m, x, 3, 2, 1); }
static int b_avgpool(fer_model *m, int x) { return fer_avgpool(m, x, 3, 2, 1); }
static int b_gap(fer_model *m, int x) { return fer_gap(m, x); }
static int b_gmp(fer_model *m, int x) { return fer_gmp(m, x); }
static int b_dense(fer_model *m, int x) { return fer_dense(m, x, 6, 0); }
static int b_dropout(fer_model *m, int x) { return fer_dropout(m, x, 0.3f); }
static int b_flatten(fer_model *m, int x) { return fer_flatten(m, x); }
static int b_add(fer_model *m, int x) { return fer_add(m, fer_conv(m, x, 3, 3, 3, 1, 1, 1, 0), x); }
static int b_cmul(fer_model *m, int x) { return fer_cmul(m, x, fer_act(m, fer_gap(m, x), FER_OP_SIGMOID)); }
static int b_smul(fer_model *m, int x) { return fer_smul(m, x, fer_conv(m, x, 1, 3, 3, 1, 1, 1, 0)); }
static int b_concat(fer_model *m, int x)
{
    int xs[3];
    xs[0] = fer_conv(m, x, 2, 3, 3, 1, 1, 1, 0); xs[1] = x; xs[2] = fer_conv(m, x, 1, 1, 1, 1, 0, 1, 1);
    return fer_concat(m, 3, xs);
}
static int b_chanpool(fer_model *m, int x) { return fer_chanpool(m, x); }
static int b_shared(fer_model *m, int x)
{
    int a = fer_dense(m, fer_gap(m, x), 4, 1), b = fer_dense_shared(m, fer_gmp(m, x), a);
    return fer_add(m, a, b);
}
/* ---- blocks ---- */
static int b_conv_bn_relu(fer_model *m, int x) { return fer_conv_bn_act(m, x, 4, 3, 1, FER_OP_RELU); }
static int b_sepconv(fer_model *m, int x) { return fer_sepconv(m, x, 5, 3, 1); }
static int b_basic_same(fer_model *m, int x) { return fer_block_basic(m, x, 3, 1); }
static int b_basic_proj(fer_model *m, int x) { return fer_block_basic(m, x, 6, 2); }
static int b_light(fer_model *m, int x) { return fer_block_light_residual(m, x, 4, 0.25f); }
static int b_xception(fer_model *m, int x) { return fer_block_xception(m, x, 4); }
static int b_ir_t1(fer_model *m, int x) { return fer_block_inverted_residual(m, x, 3, 1, 1); }
static int b_ir_t6(fer_model *m, int x) { return fer_block_inverted_residual(m, x, 3, 6, 1); }
static int b_ir_s2(fer_model *m, int x) { return fer_block_inverted_residual(m, x, 4, 6, 2); }
static int b_se(fer_model *m, int x) { return fer_block_se(m, fer_conv(m, x, 8, 1, 1, 1, 0, 1, 1), 4); }
static int b_cbam(fer_model *m, int x) { return fer_block_cbam(m, fer_conv(m, x, 8, 1, 1, 1, 0, 1, 1), 4); }
static int b_dsc_cbam(fer_model *m, int x) { return fer_block_dsc_cbam(m, x, 4); }
static int b_dsc_cbam_id(fer_model *m, int x) { return fer_block_dsc_cbam(m, fer_conv(m, x, 16, 1, 1, 1, 0, 1, 0), 16); }
static int b_deep(fer_model *m, int x)   /* long enough that gradient regions are reused */
{
    x = fer_conv_bn_act(m, x, 4, 3, 1, FER_OP_RELU);
    x = fer_block_xception(m, x, 6);
    x = fer_block_inverted_residual(m, x, 6, 2, 1);
    x = fer_block_basic(m, x, 6, 1);
    return fer_block_dsc_cbam(m, x, 8);
}
static int b_fold(fer_model *m, int x) { return fer_conv_bn_act(m, fer_conv_bn_act(m, x, 4, 3, 1, FER_OP_RELU6), 3, 3, 1, FER_OP_RELU); }

/* The gradient layout of every zoo model: regions live at a common backward step
   (from the step of a region's first writer down to its own node's) never share
   a float, all lie inside the gradient buffer, and the reuse leaves far less than
   one region per activation. */
static void grad_layout_check(void)
{
    int z;
    for (z = 0; z < fer_zoo_count(); z++) {
        fer_model m;
        fer_workspace ws;
        size_t act = 0, room;
        int i, j, bad = 0, n = 3, rd[1024];
        const char *name = fer_zoo_name(z);
        if (fer_zoo_build(&m, name, 1, 48, 48, 7, 1, NULL) != FER_OK) { CHECK(0, "%s: build: %s", name, m.error); continue; }
        CHECK(fer_workspace_init(&ws, &m, n, 1) == FER_OK, "%s: workspace: %s", name, ws.error);
        room = (size_t)(ws.aux - ws.grad);
        if (m.n_nodes > 1024) {
            CHECK(0, "%s: %d nodes, more than this check holds", name, m.n_nodes);
            fer_workspace_free(&ws);
            fer_model_free(&m);
            continue;
        }
        /* the step that reads region i last: its own, or for a ReLU that is a batch
           norm's only reader, the norm's (whose region then goes unused) */
        for (i = 0; i < m.n_nodes; i++) rd[i] = i;
        for (i = 1; i < m.n_nodes; i++) {
            int src = m.nodes[i].in[0], readers = 0, k;
            for (j = src + 1; j < m.n_nodes; j++)
                for (k = 0; k < m.nodes[j].n_in; k++) readers += m.nodes[j].in[k] == src;
            if ((m.nodes[i].op == FER_OP_RELU || m.nodes[i].op == FER_OP_RELU6) && m.nodes[src].op == FER_OP_BN &&
                readers == 1) { rd[i] = src; rd[src] = -1; }
        }
        for (i = 0; i < m.n_nodes; i++) {
            size_t si = (size_t)n * fer__shape_size(m.nodes[i].out);
            if (fer__aliases(&m.nodes[i], 1)) { bad += ws.grad_off[i] != ws.grad_off[fer__grad_root(&m, i)]; continue; }
            act += si;
            if (rd[i] < 0) continue;
            bad += ws.grad_off[i] + si > room || ws.gfirst[i] < i || ws.gfirst[i] > m.n_nodes;
            for (j = i + 1; j < m.n_nodes; j++) {
                size_t sj = (size_t)n * fer__shape_size(m.nodes[j].out);
                if (fer__aliases(&m.nodes[j], 1) || rd[j] < 0 || rd[j] > ws.gfirst[i] || rd[i] > ws.gfirst[j]) continue;
                bad += !(ws.grad_off[i] + si <= ws.grad_off[j] || ws.grad_off[j] + sj <= ws.grad_off[i]);
            }
        }
        CHECK(bad == 0, "%s: %d gradient regions overlap one live with them or leave the buffer", name, bad);
        CHECK(room < act / 2, "%s: gradients take %zu floats for %zu of activations", name, room, act);
        fer_workspace_free(&ws);
        fer_model_free(&m);
    }
}

/* inference-mode BN backward, checked directly against finite differences */
static void bn_infer_check(void)
{
    enum { N = 2, C = 3, HW = 5, L = N * C * HW };
    float x[L], y[L], r[L], dx[L], g[C], b[C], rm[C], rv[C], dg[C], db[C];
    double err = 0.0, ref = 0.0;
    int i, j;
    test_fill(x, L, 1, 1.0f); test_fill(r, L, 2, 1.0f); test_fill(g, C, 3, 1.0f); test_fill(b, C, 4, 1.0f);
    test_fill(rm, C, 5, 0.5f);
    for (i = 0; i < C; i++) rv[i] = 1.0f + 0.5f * x[i];
    memset(dx, 0, sizeof dx); memset(dg, 0, sizeof dg); memset(db, 0, sizeof db);
    fer_batchnorm_backward_infer(dx, dg, db, r, x, g, rm, rv, N, C, HW, 1e-5f);
    for (j = 0; j < L + 2 * C; j++) {
        float *v = j < L ? &x[j] : (j < L + C ? &g[j - L] : &b[j - L - C]);
        float an = j < L ? dx[j] : (j < L + C ? dg[j - L] : db[j - L - C]), save = *v;
        double lp = 0.0, lm = 0.0, num;
        *v = save + EPS; fer_batchnorm_forward_infer(y, x, g, b, rm, rv, N, C, HW, 1e-5f);
        for (i = 0; i < L; i++) lp += (double)r[i] * y[i];
        *v = save - EPS; fer_batchnorm_forward_infer(y, x, g, b, rm, rv, N, C, HW, 1e-5f);
        for (i = 0; i < L; i++) lm += (double)r[i] * y[i];
        *v = save;
        num = (lp - lm) / (2.0 * EPS);
        err += (num - an) * (num - an);
        ref += num * num;
    }
    CHECK(sqrt(err / ref) < 1e-2, "batchnorm inference backward: relative error %.3g", sqrt(err / ref));
}

int main(void)
{
    static const struct { const char *name; build_fn fn; int c, h, w; float scale; int fold; } cases[] = {
        { "conv3x3", b_conv3, 3, 7, 6, 1, 0 },          { "conv stride2", b_conv_s2, 2, 9, 7, 1, 0 },
        { "conv1x1", b_conv_1x1, 3, 5, 5, 1, 0 },       { "conv 1x5 same", b_conv_rect, 2, 6, 7, 1, 0 },
        { "conv5x5 s2 p2", b_conv_k5p2s2, 2, 9, 9, 1, 0 }, { "conv groups=2", b_conv_groups, 3, 6, 6, 1, 0 },
        { "depthwise", b_dw, 3, 6, 19, 1, 0 },          { "depthwise s2", b_dw_s2, 3, 9, 8, 1, 0 },
        { "depthwise 7x7", b_dw_k7, 3, 8, 8, 1, 0 },
        { "batchnorm", b_bn, 3, 4, 5, 1, 0 },           { "relu", b_relu, 2, 4, 5, 1, 0 },
        { "relu6", b_relu6, 2, 4, 5, 9, 0 },            { "leaky relu", b_leaky, 2, 4, 5, 1, 0 },
        { "prelu", b_prelu, 3, 4, 5, 1, 0 },            { "sigmoid", b_sigmoid, 2, 4, 5, 3, 0 },
        { "softmax", b_softmax, 4, 3, 3, 2, 0 },        { "maxpool 2/2", b_maxpool2, 2, 6, 6, 1, 0 },
        { "maxpool 3/2/1", b_maxpool3, 2, 7, 6, 1, 0 }, { "avgpool 3/2/1", b_avgpool, 2, 7, 6, 1, 0 },
        { "global avg pool", b_gap, 3, 4, 5, 1, 0 },    { "global max pool", b_gmp, 3, 4, 5, 1, 0 },
        { "dense", b_dense, 2, 3, 3, 1, 0 },            { "dropout", b_dropout, 2, 4, 5, 1, 0 },
        { "flatten", b_flatten, 2, 3, 3, 1, 0 },        { "add", b_add, 3, 5, 5, 1, 0 },
        { "channel multiply", b_cmul, 3, 4, 4, 1, 0 },  { "spatial multiply", b_smul, 3, 4, 4, 1, 0 },
        { "concat", b_concat, 2, 4, 4, 1, 0 },          { "channel pool", b_chanpool, 4, 4, 4, 1, 0 },
        { "shared dense", b_shared, 3, 4, 4, 1, 0 },
        { "conv-bn-relu", b_conv_bn_relu, 2, 6, 6, 1, 0 }, { "sepconv", b_sepconv, 3, 6, 6, 1, 0 },
        { "basic block", b_basic_same, 3, 6, 6, 1, 0 }, { "basic block proj", b_basic_proj, 3, 7, 7, 1, 0 },
        { "light residual", b_light, 2, 6, 6, 1, 0 },   { "xception module", b_xception, 3, 7, 7, 1, 0 },
        { "inverted res t=1", b_ir_t1, 3, 6, 6, 1, 0 }, { "inverted res t=6", b_ir_t6, 3, 5, 5, 1, 0 },
        { "inverted res s2", b_ir_s2, 3, 7, 7, 1, 0 },  { "squeeze-excitation", b_se, 3, 4, 4, 1, 0 },
        { "cbam", b_cbam, 3, 8, 8, 1, 0 },              { "dsc+cbam block", b_dsc_cbam, 2, 8, 8, 1, 0 },
        { "dsc+cbam identity", b_dsc_cbam_id, 2, 6, 6, 1, 0 },
        { "deep chain of blocks", b_deep, 2, 8, 8, 1, 0 },
        { "folded conv+bn+relu", b_fold, 2, 6, 6, 1, 1 }
    };
    size_t i;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        gradcheck(cases[i].name, cases[i].fn, 3, cases[i].c, cases[i].h, cases[i].w, cases[i].scale, cases[i].fold);
    bn_infer_check();
    grad_layout_check();
    return test_done("test_grad");
}
