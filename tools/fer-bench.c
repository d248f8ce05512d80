/* fer-bench: speed of the zoo models, inference and training, against this core's peak.

   cc -O2 -I. -I/usr/include/stb tools/fer-bench.c -lm -lpthread -o build/fer-bench
   usage: fer-bench [--models a,b,c | --all] [--threads N] [--size H W] [--seconds S]
                    [--quick] [--json] [--convs | --no-convs]

   For each model (default: mini_xception, mobilenetv2_lite, resnet_lite, baseline_cnn at
   1x48x48 and resnet18 at 1x44x44; --all adds vgg16_bn, vgg19_bn, dcm_net and
   vgg16_dsc_cbam at 1x48x48; --size forces one input size), 7 classes, random input:
     lat1      batch-1 inference latency on 1 thread, median ms
     int8      the same with the convs in int8 (fer_workspace_quantize, calibrated
               on 16 of the random inputs; AVX-512 VNNI where the CPU has it, else
               the plain-C reference: "ref" follows the time). The JSON has its
               logits' largest difference to the float ones, relative to the
               largest float logit (q8_rel_diff): a report, not a check.
     infer 1t  batch-64 inference on 1 thread (fer_forward), images/s
     infer Nt  batch-64 inference on N threads (fer_forward_threads, one inference
               workspace per thread), images/s
   The inference workspaces are frozen (fer_workspace_freeze: the conv weights'
   Winograd transforms made once, as a deployed classifier makes them).
     train 1t  batch-64 training steps of fer_trainer (what fer-train runs): default
               augmentation, forward, label-smoothed cross-entropy, backward, Adam step
               and batch-norm running statistics, images/s (one epoch of 4 batches of
               random 8-bit images per timed run)
     train Nt  the same, data parallel over N threads (fer_train_config.threads): each
               thread augments and runs 64/N samples in its own workspace, gradients
               are summed in shard order, one Adam step
   GFLOP/s counts 2 flops per multiply-add: 2 * fer_model_macs * images/s for inference,
   3 times that for training (forward, plus backward to inputs and to weights). %peak is
   the fraction of the single-core FP32 FMA peak measured at start-up (tools/peak.h,
   fer_cpu_best_isa's set) times the threads used. Times are medians of the runs after
   a warm-up: at least 5 runs and S seconds (--seconds, default 1.5; latency 30 runs
   and S/2), but no run is started past 2.5 S, so a slow model gets fewer runs, and a
   pass longer than 2.5 S is timed once, on its warm-up run (the JSON says how many;
   workspaces are pre-faulted at allocation, so that run pays no page faults).
   --quick runs one or two (a smoke test). N defaults to the online CPUs.

   Correctness is checked on the way: every output and loss must be finite, and batch-1,
   batch-64 and threaded outputs must agree (to 1e-4 of the largest logit); a model that
   fails to build, fails a pass or fails a check is reported with the reason, the others
   still run, and the exit status is 1.

   Then the 3x3 stride-1 convolutions with 64 channels or more that the zoo runs
   (in -> out channels at a plane size), one thread, a batch of 16 samples: forward,
   input gradient (dX) and weight gradient (dW), each as ms per batch, effective
   GFLOP/s (the direct convolution's 2 * n * cin * cout * 9 * oh * ow flops over the
   time: on AVX-512 the convs with cin >= 32 and cout >= 64 run as Winograd F(2x2,
   3x3), 2.25x fewer multiplies, so this can pass 100% of peak) and %peak of one
   core. --convs prints only that table, --no-convs skips it.

   --json prints one object: {"tool", "fer_version", "isa", "threads", "batch", "quick",
   "peak_gflops_core": {isa: GFLOP/s}, "peak_int8_gops_core" (null without VNNI),
   "peak_isa", "models": [{"name", "input": [c,h,w], "classes", "params", "macs",
   "latency_ms": {"median", "min", "runs"}, "latency_int8_ms": {"median", "min",
   "runs", "vnni", "q8_rel_diff"}, "infer_1t",
   "infer_nt", "train_1t", "train_nt": {"images_per_s", "gflops", "peak_frac",
   "ms_median", "ms_min", "runs"}, "max_rel_diff", "error" (null or why)}], "convs":
   [{"cin", "cout", "h", "w", "batch", "fwd", "dx", "dw": {"ms_median", "gflops",
   "peak_frac", "runs"}}], "ok"}; a model that failed to build has only "name" and
   "error". */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

/* Every page of a workspace is touched when it is allocated, so first-touch page
   faults (a second or more for a large training workspace) land in
   fer_workspace_init, not in the timed passes. */
static void *bench_malloc(size_t n)
{
    char *p = (char *)malloc(n);
    size_t i;
    /* a write per page: memset(p, 0, n) after malloc would become a calloc that
       touches nothing */
    for (i = 0; p && i < n; i += 4096) ((volatile char *)p)[i] = 0;
    return p;
}
#define FER_MALLOC(sz, ctx) ((void)(ctx), bench_malloc(sz))
#define FER_FREE(p, ctx)    ((void)(ctx), free(p))
#define FER_IMPLEMENTATION
#include "fer.h"
#include "tools/peak.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <unistd.h>

#define BATCH      64
#define CLASSES    7
#define MAX_THREADS 64
#define STEPS      4       /* training batches per timed run (one fer_trainer epoch) */

static const char *default_models[] = {"mini_xception", "mobilenetv2_lite", "resnet_lite",
                                       "baseline_cnn", "resnet18"};

/* --- timing ------------------------------------------------------------------ */

typedef struct {
    int min_runs, max_runs;   /* runs wanted, and the most taken                  */
    double budget;            /* keep running until min_runs AND budget seconds   */
    double cap;               /* ...but start no run that would end past cap s    */
    double warmup;            /* seconds of untimed runs first (at least one run) */
} plan;

typedef struct { double median, min; int runs; } timing;

typedef fer_result (*work_fn)(void *ctx);

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Runs fn as the plan says; the median and minimum of the timed runs, in s. A
   pass longer than the cap is timed once: its warm-up run is the measurement. */
static fer_result measure(work_fn fn, void *ctx, plan p, timing *out)
{
    double *t = (double *)malloc(sizeof(double) * (size_t)p.max_runs), start, t0, dt, el = 0.0;
    int n = 0;
    fer_result r = FER_OK;
    memset(out, 0, sizeof *out);
    if (!t) return FER_ERR_NOMEM;
    start = peak_now();
    do {                      /* cold caches, branch predictors, clocks */
        t0 = peak_now();
        if ((r = fn(ctx)) != FER_OK) { free(t); return r; }
        dt = peak_now() - t0;
    } while (peak_now() - start < p.warmup);
    if (dt > p.cap) t[n++] = dt;  /* a run this long is its own warm-up: time it once */
    else start = peak_now();
    while (n == 0 || !(n >= p.max_runs || (n >= p.min_runs && el >= p.budget) || el + dt > p.cap)) {
        t0 = peak_now();
        if ((r = fn(ctx)) != FER_OK) { free(t); return r; }
        dt = t[n++] = peak_now() - t0;
        el = peak_now() - start;
    }
    qsort(t, (size_t)n, sizeof(double), cmp_double);
    out->median = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    out->min = t[0];
    out->runs = n;
    free(t);
    return FER_OK;
}

/* --- the work ------------------------------------------------------------------ */

typedef struct {
    fer_model *m;
    fer_workspace *ws;        /* inference workspaces */
    int n_ws, n;
    const float *x;
    float *out;
    fer_trainer *trainer;     /* training: STEPS batches per timed run */
    const fer_dataset *data;
    char *error;              /* where a failure's message goes */
} bench;

static fer_result run_forward(void *p)
{
    bench *b = (bench *)p;
    fer_result r = fer_forward(b->m, &b->ws[0], b->x, b->n, 0);
    if (r != FER_OK) snprintf(b->error, 256, "forward: %.200s", b->ws[0].error);
    return r;
}

static fer_result run_forward_threads(void *p)
{
    bench *b = (bench *)p;
    fer_result r = fer_forward_threads(b->m, b->ws, b->n_ws, b->x, b->n, b->out);
    if (r != FER_OK) snprintf(b->error, 256, "forward_threads: %.200s", b->ws[0].error);
    return r;
}

/* One epoch of fer_trainer over STEPS batches: augmentation, forward, loss,
   backward, gradient sum, Adam and BN statistics, exactly as fer-train runs. */
static fer_result run_train_epoch(void *p)
{
    bench *b = (bench *)p;
    fer_epoch_stats st;
    fer_result r = fer_trainer_epoch(b->trainer, b->data, NULL, &st, NULL, NULL);
    if (r != FER_OK) snprintf(b->error, 256, "training: %.200s", b->trainer->error);
    else if (!isfinite(st.train_loss)) {
        snprintf(b->error, 256, "training loss is %g at epoch %d", st.train_loss, st.epoch);
        r = FER_ERR_NUMERIC;
    }
    return r;
}

/* --- one model ------------------------------------------------------------------ */

typedef struct { double ips, gflops, frac, ms_median, ms_min; int runs; } rate;

typedef struct {
    char name[FER_NAME_LEN];
    int c, h, w;
    size_t params;
    double macs, max_rel_diff;
    timing lat, lat8;
    double q8_diff;
    int q8_vnni;
    rate inf1, infn, tr1, trn;
    char error[256];
} result;

static rate to_rate(timing t, int images, double flops_per_image, double peak)
{
    rate r;
    r.ips = images / t.median;
    r.gflops = r.ips * flops_per_image / 1e9;
    r.frac = peak > 0 ? r.gflops / peak : 0.0;
    r.ms_median = t.median * 1e3;
    r.ms_min = t.min * 1e3;
    r.runs = t.runs;
    return r;
}

static unsigned long long mix(unsigned long long z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int all_finite(const float *v, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) if (!isfinite(v[i])) return 0;
    return 1;
}

/* Largest |a - b| over n values, relative to the largest |a|. */
static double rel_diff(const float *a, const float *b, size_t n)
{
    double d = 0.0, s = 1e-30;
    size_t i;
    for (i = 0; i < n; i++) {
        if (fabs((double)a[i] - b[i]) > d) d = fabs((double)a[i] - b[i]);
        if (fabs(a[i]) > s) s = fabs(a[i]);
    }
    return d / s;
}

/* An inference workspace for batches up to n, frozen (its error says why not; on a
   failed freeze it is freed). */
static fer_result init_infer(fer_workspace *ws, const fer_model *m, int n)
{
    fer_result r = fer_workspace_init(ws, m, n, 0);
    if (r == FER_OK && (r = fer_workspace_freeze(ws, m)) != FER_OK) {
        char why[sizeof ws->error];
        memcpy(why, ws->error, sizeof why);
        fer_workspace_free(ws);
        memcpy(ws->error, why, sizeof why);
    }
    return r;
}

/* Frees workspaces [0, n). */
static void free_ws(fer_workspace *ws, int n)
{
    int i;
    for (i = 0; i < n; i++) fer_workspace_free(&ws[i]);
}

static void bench_model(result *res, const char *name, int h, int w, int threads, plan lat_plan,
                        plan big_plan, double peak)
{
    fer_model m;
    fer_workspace ws[MAX_THREADS];
    fer_trainer tr;
    fer_train_config cfg;
    fer_dataset data;
    bench b;
    timing t;
    float *x = NULL, *out1 = NULL, *out64 = NULL, *outn = NULL;
    int i, per;
    size_t in, K = CLASSES;
    double f;
    unsigned long long s = 12345;

    memset(res, 0, sizeof *res);
    snprintf(res->name, sizeof res->name, "%s", name);
    res->c = 1; res->h = h; res->w = w;
    if (fer_zoo_build(&m, name, 1, h, w, CLASSES, 1, NULL) != FER_OK) {
        snprintf(res->error, sizeof res->error, "build: %.200s", m.error);
        fer_model_free(&m);
        return;
    }
    res->params = fer_model_param_count(&m);
    res->macs = fer_model_macs(&m);
    f = 2.0 * res->macs;
    in = (size_t)m.input.c * m.input.h * m.input.w;
    x = (float *)malloc(sizeof(float) * in * BATCH);
    out1 = (float *)malloc(sizeof(float) * K);
    out64 = (float *)malloc(sizeof(float) * K * BATCH);
    outn = (float *)malloc(sizeof(float) * K * BATCH);
    memset(&data, 0, sizeof data);
    data.n = BATCH * STEPS; data.h = h; data.w = w; data.n_classes = CLASSES;
    data.pixels = (unsigned char *)malloc((size_t)data.n * h * w);
    data.labels = (int *)malloc(sizeof(int) * (size_t)data.n);
    if (!x || !out1 || !out64 || !outn || !data.pixels || !data.labels) {
        snprintf(res->error, sizeof res->error, "out of memory");
        goto done;
    }
    for (i = 0; i < (int)(in * BATCH); i++) { s = mix(s); x[i] = (float)(s >> 40) / 16777216.0f; }
    for (i = 0; i < data.n * h * w; i++) { s = mix(s); data.pixels[i] = (unsigned char)(s >> 56); }
    for (i = 0; i < data.n; i++) { s = mix(s); data.labels[i] = (int)(s % K); }
    memset(&b, 0, sizeof b);
    b.m = &m; b.x = x; b.out = outn; b.error = res->error;

    /* batch-1 latency, 1 thread */
    if (init_infer(&ws[0], &m, 1) != FER_OK) {
        snprintf(res->error, sizeof res->error, "workspace: %.200s", ws[0].error);
        goto done;
    }
    b.ws = ws; b.n = 1;
    if (measure(run_forward, &b, lat_plan, &res->lat) != FER_OK) { free_ws(ws, 1); goto done; }
    memcpy(out1, fer_output(&m, &ws[0]), sizeof(float) * K);
    free_ws(ws, 1);

    /* the same, convs in int8 */
    if (fer_workspace_init(&ws[0], &m, 1, 0) != FER_OK || fer_workspace_quantize(&ws[0], &m, x + in, 16) != FER_OK) {
        snprintf(res->error, sizeof res->error, "int8 workspace: %.200s", ws[0].error);
        free_ws(ws, 1);
        goto done;
    }
    res->q8_vnni = ws[0].q8_vnni;
    if (measure(run_forward, &b, lat_plan, &res->lat8) != FER_OK) { free_ws(ws, 1); goto done; }
    res->q8_diff = rel_diff(fer_output(&m, &ws[0]), out1, K);
    free_ws(ws, 1);

    /* batch-64 inference, 1 thread */
    if (init_infer(&ws[0], &m, BATCH) != FER_OK) {
        snprintf(res->error, sizeof res->error, "workspace: %.200s", ws[0].error);
        goto done;
    }
    b.n = BATCH;
    if (measure(run_forward, &b, big_plan, &t) != FER_OK) { free_ws(ws, 1); goto done; }
    res->inf1 = to_rate(t, BATCH, f, peak);
    memcpy(out64, fer_output(&m, &ws[0]), sizeof(float) * K * BATCH);
    free_ws(ws, 1);

    /* batch-64 inference, N threads */
    per = (BATCH + threads - 1) / threads;
    for (i = 0; i < threads; i++)
        if (init_infer(&ws[i], &m, per) != FER_OK) {
            snprintf(res->error, sizeof res->error, "workspace: %.200s", ws[i].error);
            free_ws(ws, i);
            goto done;
        }
    b.n_ws = threads;
    if (measure(run_forward_threads, &b, big_plan, &t) != FER_OK) { free_ws(ws, threads); goto done; }
    res->infn = to_rate(t, BATCH, f, peak * threads);
    free_ws(ws, threads);

    if (!all_finite(out1, K) || !all_finite(out64, K * BATCH) || !all_finite(outn, K * BATCH)) {
        snprintf(res->error, sizeof res->error, "inference gives NaN or infinite logits");
        goto done;
    }
    res->max_rel_diff = rel_diff(out64, outn, K * BATCH);
    if (rel_diff(out64, out1, K) > res->max_rel_diff) res->max_rel_diff = rel_diff(out64, out1, K);
    if (res->max_rel_diff > 1e-4) {
        snprintf(res->error, sizeof res->error, "batch-1, batch-64 and threaded logits differ by %.3g "
                 "of the largest logit", res->max_rel_diff);
        goto done;
    }

    /* training, 1 thread then N threads (parameters change: inference ran first) */
    b.data = &data; b.trainer = &tr;
    for (i = 0; i < 2; i++) {
        fer_result r;
        fer_train_config_defaults(&cfg);
        cfg.epochs = 100000; cfg.schedule.epochs = cfg.epochs; cfg.batch = BATCH;
        cfg.threads = i == 0 ? 1 : threads;
        cfg.schedule.lr = 1e-4f;
        if (fer_trainer_init(&tr, &m, &cfg, &data, NULL) != FER_OK) {
            snprintf(res->error, sizeof res->error, "trainer: %.200s", tr.error);
            break;
        }
        r = measure(run_train_epoch, &b, big_plan, &t);
        fer_trainer_free(&tr);
        if (r != FER_OK) break;
        t.median /= STEPS; t.min /= STEPS;
        if (i == 0) res->tr1 = to_rate(t, BATCH, 3.0 * f, peak);
        else res->trn = to_rate(t, BATCH, 3.0 * f, peak * threads);
    }

done:
    free(x); free(out1); free(out64); free(outn);
    free(data.pixels); free(data.labels);
    fer_model_free(&m);
}

/* --- output ------------------------------------------------------------------- */

static void print_rate_json(const char *key, rate r)
{
    printf(", \"%s\": {\"images_per_s\": %.2f, \"gflops\": %.3f, \"peak_frac\": %.4f, "
           "\"ms_median\": %.4f, \"ms_min\": %.4f, \"runs\": %d}",
           key, r.ips, r.gflops, r.frac, r.ms_median, r.ms_min, r.runs);
}

static void print_json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20) printf("\\u%04x", (unsigned char)*s);
        else putchar(*s);
    }
    putchar('"');
}

static void print_rate_cell(rate r)
{
    printf(" %8.1f %6.1f %4.0f%% |", r.ips, r.gflops, 100.0 * r.frac);
}

/* --- the 3x3 conv layers ---------------------------------------------------- */

#define CONV_BATCH 16
static const int conv_shapes[][3] = {   /* cin, cout, plane: the zoo's stride-1 3x3 convs */
    {64, 64, 48}, {64, 128, 24}, {128, 128, 24}, {128, 256, 12}, {256, 256, 12}, {256, 512, 6}, {512, 512, 6}
};

typedef struct {
    fer_conv_geom g;
    fer_isa isa;
    float *x, *w, *y, *dy, *dx, *dw, *scratch;
    int pass;                 /* 0 forward, 1 dX, 2 dW */
} conv_bench;

static fer_result run_conv(void *p)
{
    conv_bench *c = (conv_bench *)p;
    if (c->pass == 0) fer_conv2d_forward(c->isa, &c->g, c->y, c->x, c->w, NULL, c->scratch);
    else if (c->pass == 1) fer_conv2d_backward(c->isa, &c->g, c->dx, NULL, NULL, c->dy, c->x, c->w, c->scratch);
    else fer_conv2d_backward(c->isa, &c->g, NULL, c->dw, NULL, c->dy, c->x, c->w, c->scratch);
    return FER_OK;
}

/* The three passes of conv shape k; rates[3]. 0, or -1 when out of memory. */
static int bench_conv(int k, fer_isa isa, plan pl, double peak, rate *rates)
{
    const int *sh = conv_shapes[k];
    conv_bench c;
    size_t nx = (size_t)CONV_BATCH * sh[0] * sh[2] * sh[2], ny = (size_t)CONV_BATCH * sh[1] * sh[2] * sh[2];
    size_t nw = (size_t)sh[0] * sh[1] * 9, i;
    double flops = 2.0 * CONV_BATCH * sh[0] * sh[1] * 9.0 * sh[2] * sh[2];
    int r = 0;
    memset(&c, 0, sizeof c);
    fer_conv_geom_init(&c.g, CONV_BATCH, sh[0], sh[2], sh[2], sh[1], 3, 3, 1, 1, 1, 1, 1);
    c.isa = isa;
    c.x = (float *)bench_malloc(sizeof(float) * nx); c.dx = (float *)bench_malloc(sizeof(float) * nx);
    c.y = (float *)bench_malloc(sizeof(float) * ny); c.dy = (float *)bench_malloc(sizeof(float) * ny);
    c.w = (float *)bench_malloc(sizeof(float) * nw); c.dw = (float *)bench_malloc(sizeof(float) * nw);
    c.scratch = (float *)bench_malloc(sizeof(float) * fer_conv_scratch_floats(&c.g));
    if (!c.x || !c.dx || !c.y || !c.dy || !c.w || !c.dw || !c.scratch) r = -1;
    for (i = 0; !r && i < nx; i++) { c.x[i] = (float)(mix(i) >> 40) / (float)(1 << 24) - 0.5f; c.dx[i] = 0.0f; }
    for (i = 0; !r && i < ny; i++) c.dy[i] = (float)(mix(i + nx) >> 40) / (float)(1 << 24) - 0.5f;
    for (i = 0; !r && i < nw; i++) { c.w[i] = 0.1f * ((float)(mix(i + 7) >> 40) / (float)(1 << 24) - 0.5f); c.dw[i] = 0.0f; }
    for (c.pass = 0; !r && c.pass < 3; c.pass++) {
        timing t;
        measure(run_conv, &c, pl, &t);
        rates[c.pass] = to_rate(t, CONV_BATCH, flops / CONV_BATCH, peak);
    }
    free(c.x); free(c.dx); free(c.y); free(c.dy); free(c.w); free(c.dw); free(c.scratch);
    return r;
}

static void print_conv_json(const char *key, rate r)
{
    printf(", \"%s\": {\"ms_median\": %.4f, \"gflops\": %.3f, \"peak_frac\": %.4f, \"runs\": %d}",
           key, r.ms_median, r.gflops, r.frac, r.runs);
}

/* The conv table (or its JSON array); nonzero when a shape could not run. */
static int bench_convs(fer_isa isa, plan pl, double peak, int json)
{
    int k, i3, bad = 0, n = (int)(sizeof conv_shapes / sizeof conv_shapes[0]);
    if (json) printf("\"convs\": [");
    else {
        printf("3x3 stride-1 convs, 1 thread, batch %d: ms per batch, effective GFLOP/s (direct-conv flops\n"
               "over the time) and %% of one core's %s peak\n\n", CONV_BATCH, fer_isa_name(isa));
        printf("%-20s |%-24s|%-24s|%-24s|\n", "", "  forward", "  input gradient", "  weight gradient");
        printf("%-20s |", "cin -> cout @ plane");
        for (k = 0; k < 3; k++) printf(" %8s %7s %5s |", "ms", "GF/s", "peak");
        printf("\n");
        for (k = 0; k < 20 + 2 + 3 * 25; k++) putchar('-');
        printf("\n");
    }
    for (k = 0; k < n; k++) {
        rate r[3];
        const int *sh = conv_shapes[k];
        int failed = bench_conv(k, isa, pl, peak, r) != 0;
        bad |= failed;
        if (json) {
            printf("%s{\"cin\": %d, \"cout\": %d, \"h\": %d, \"w\": %d, \"batch\": %d", k ? ", " : "", sh[0], sh[1],
                   sh[2], sh[2], CONV_BATCH);
            if (failed) printf(", \"error\": \"out of memory\"}");
            else {
                print_conv_json("fwd", r[0]); print_conv_json("dx", r[1]); print_conv_json("dw", r[2]);
                printf("}");
            }
        } else {
            char label[32];
            snprintf(label, sizeof label, "%d -> %d @ %dx%d", sh[0], sh[1], sh[2], sh[2]);
            printf("%-20s |", label);
            if (failed) { printf(" error: out of memory\n"); continue; }
            for (i3 = 0; i3 < 3; i3++) printf(" %8.3f %7.1f %4.0f%% |", r[i3].ms_median, r[i3].gflops, 100 * r[i3].frac);
            printf("\n");
            fflush(stdout);
        }
    }
    if (json) printf("]");
    return bad;
}

static int usage(const char *msg)
{
    if (msg) fprintf(stderr, "fer-bench: %s\n", msg);
    fprintf(stderr, "usage: fer-bench [--models a,b,c | --all] [--threads N] [--size H W]\n"
                    "                 [--seconds S] [--quick] [--json] [--convs | --no-convs]\n");
    return 2;
}

int main(int argc, char **argv)
{
    static const fer_isa isas[] = {FER_ISA_AVX512, FER_ISA_AVX2, FER_ISA_NEON, FER_ISA_SCALAR};
    const char *names[64];
    char list[1024];
    int n_names = 0, all = 0, json = 0, quick = 0, threads, h = 0, w = 0, i, n_bad = 0, convs = 0, conv_bad = 0;
    double peaks[4], peak, peak8, seconds = 1.5;
    fer_isa isa = fer_cpu_best_isa();
    plan lat_plan, big_plan;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    threads = ncpu < 1 ? 1 : ncpu > MAX_THREADS ? MAX_THREADS : (int)ncpu;
    list[0] = 0;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(NULL); return 0; }
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--quick")) quick = 1;
        else if (!strcmp(a, "--all")) all = 1;
        else if (!strcmp(a, "--convs")) convs = 1;       /* only the conv table */
        else if (!strcmp(a, "--no-convs")) convs = 2;
        else if (!strcmp(a, "--threads") && i + 1 < argc) {
            threads = atoi(argv[++i]);
            if (threads < 1 || threads > MAX_THREADS) return usage("--threads must be 1..64");
        } else if (!strcmp(a, "--seconds") && i + 1 < argc) {
            seconds = atof(argv[++i]);
            if (!(seconds >= 0.1 && seconds <= 600)) return usage("--seconds must be 0.1..600");
        } else if (!strcmp(a, "--size") && i + 2 < argc) {
            h = atoi(argv[++i]); w = atoi(argv[++i]);
            if (h < 8 || w < 8 || h > 1024 || w > 1024) return usage("--size must be 8..1024");
        } else if (!strcmp(a, "--models") && i + 1 < argc) {
            char *p;
            snprintf(list, sizeof list, "%s", argv[++i]);
            for (p = strtok(list, ","); p && n_names < 64; p = strtok(NULL, ","))
                names[n_names++] = p;
        } else {
            fprintf(stderr, "fer-bench: unknown option or missing value: %s\n", a);
            return usage(NULL);
        }
    }
    if (convs == 1) n_names = 0;
    else if (!n_names) {
        for (i = 0; i < (int)(sizeof default_models / sizeof default_models[0]); i++) names[n_names++] = default_models[i];
        for (i = 0; all && i < fer_zoo_count(); i++) {
            int j, seen = 0;
            for (j = 0; j < n_names; j++) seen |= !strcmp(names[j], fer_zoo_name(i));
            if (!seen) names[n_names++] = fer_zoo_name(i);
        }
    }
    /* big: batch-64 passes. The cap keeps `make bench` within minutes while a model
       is slow; a faster fer.h gets more runs in the same time. */
    lat_plan.min_runs = quick ? 5 : 30; lat_plan.max_runs = quick ? 50 : 5000;
    lat_plan.budget = quick ? 0.1 : seconds / 2; lat_plan.cap = 3 * lat_plan.budget;
    lat_plan.warmup = quick ? 0.02 : 0.2;
    big_plan.min_runs = quick ? 1 : 5; big_plan.max_runs = quick ? 3 : 200;
    big_plan.budget = quick ? 0.2 : seconds; big_plan.cap = quick ? 0.5 : 2.5 * seconds;
    big_plan.warmup = quick ? 0.0 : 0.3;

    peak = 0.0;                  /* the peak of the set fer.h's kernels use */
    for (i = 0; i < 4; i++) {
        peaks[i] = peak_gflops(isas[i], quick ? 0.2 : 0.5);
        if (isas[i] == isa) peak = peaks[i];
    }
    peak8 = peak_int8_gops(quick ? 0.2 : 0.5);   /* 0 without AVX-512 VNNI */

    if (json) {
        int first = 1;
        printf("{\"tool\": \"fer-bench\", \"fer_version\": \"%d.%d.%d\", \"isa\": \"%s\", \"threads\": %d, "
               "\"batch\": %d, \"quick\": %s, \"peak_isa\": \"%s\", \"peak_gflops_core\": {",
               FER_VERSION_MAJOR, FER_VERSION_MINOR, FER_VERSION_PATCH, fer_isa_name(isa), threads,
               BATCH, quick ? "true" : "false", fer_isa_name(isa));
        for (i = 0; i < 4; i++)
            if (peaks[i] > 0) { printf("%s\"%s\": %.2f", first ? "" : ", ", fer_isa_name(isas[i]), peaks[i]); first = 0; }
        printf("}, \"peak_int8_gops_core\": ");
        if (peak8 > 0) printf("%.2f", peak8); else printf("null");
        printf(", \"models\": [");
    } else {
        printf("fer-bench: fer.h %d.%d.%d, kernels %s, %d threads, batch %d, %d classes%s\n",
               FER_VERSION_MAJOR, FER_VERSION_MINOR, FER_VERSION_PATCH, fer_isa_name(isa), threads,
               BATCH, CLASSES, quick ? ", --quick (few runs: rough numbers)" : "");
        printf("peak FP32 FMA throughput of one core, measured now:");
        for (i = 0; i < 4; i++) if (peaks[i] > 0) printf(" %s %.1f", fer_isa_name(isas[i]), peaks[i]);
        printf(" GFLOP/s");
        if (peak8 > 0) printf("; int8 (AVX-512 VNNI) %.1f GOP/s", peak8);
        printf("\n");
    }
    if (!json && n_names) {
        printf("lat1: batch-1 latency, 1 thread, median; int8: the same with int8 convs. Others: batch-%d images/s, GFLOP/s "
               "(training counts 3x the forward) and %% of the %s peak of the cores used.\n\n",
               BATCH, fer_isa_name(isa));
        printf("%-17s %-8s %8s %9s %13s |%-22s|%-22s|%-22s|%-22s|\n", "", "", "", "", "",
               "  infer, 1 thread", "  infer, N threads", "  train, 1 thread", "  train, N threads");
        printf("%-17s %-8s %8s %9s %13s |", "model", "input", "MMAC", "lat1 ms", "int8 ms");
        for (i = 0; i < 4; i++) printf(" %8s %6s %5s |", "img/s", "GF/s", "peak");
        printf("\n");
        for (i = 0; i < 17 + 1 + 8 + 1 + 8 + 1 + 9 + 1 + 13 + 2 + 4 * 23; i++) putchar('-');
        printf("\n");
        fflush(stdout);
    }
    for (i = 0; i < n_names; i++) {
        result r;
        int mh = h ? h : !strcmp(names[i], "resnet18") ? 44 : 48, mw = w ? w : mh;
        bench_model(&r, names[i], mh, mw, threads, lat_plan, big_plan, peak);
        if (r.error[0]) n_bad++;
        if (json) {
            printf("%s{\"name\": ", i ? ", " : "");
            print_json_string(r.name);
            if (!r.macs) {
                printf(", \"error\": ");
                print_json_string(r.error);
                printf("}");
                continue;
            }
            printf(", \"input\": [%d, %d, %d], \"classes\": %d, \"params\": %zu, \"macs\": %.0f, "
                   "\"latency_ms\": {\"median\": %.4f, \"min\": %.4f, \"runs\": %d}, "
                   "\"latency_int8_ms\": {\"median\": %.4f, \"min\": %.4f, \"runs\": %d, \"vnni\": %s, "
                   "\"q8_rel_diff\": %.4g}",
                   r.c, r.h, r.w, CLASSES, r.params, r.macs, r.lat.median * 1e3, r.lat.min * 1e3, r.lat.runs,
                   r.lat8.median * 1e3, r.lat8.min * 1e3, r.lat8.runs, r.q8_vnni ? "true" : "false", r.q8_diff);
            print_rate_json("infer_1t", r.inf1);
            print_rate_json("infer_nt", r.infn);
            print_rate_json("train_1t", r.tr1);
            print_rate_json("train_nt", r.trn);
            printf(", \"max_rel_diff\": %.3g, \"error\": ", r.max_rel_diff);
            if (r.error[0]) print_json_string(r.error); else printf("null");
            printf("}");
        } else {
            char input[32];
            snprintf(input, sizeof input, "%dx%dx%d", r.c, r.h, r.w);
            printf("%-17s %-8s ", r.name, input);
            if (!r.macs) { printf("error: %s\n", r.error); continue; }
            printf("%8.1f %9.3f %9.3f%s |", r.macs / 1e6, r.lat.median * 1e3, r.lat8.median * 1e3, r.q8_vnni ? "    " : " ref");
            print_rate_cell(r.inf1);
            print_rate_cell(r.infn);
            print_rate_cell(r.tr1);
            print_rate_cell(r.trn);
            printf("\n");
            if (r.error[0]) printf("  %s: error: %s\n", r.name, r.error);
            fflush(stdout);
        }
    }
    if (json) printf("]");
    else if (n_bad) printf("\n%d of %d models failed (see above)\n", n_bad, n_names);
    if (convs != 2) {
        plan conv_plan = big_plan;
        printf(json ? ", " : "\n");
        conv_plan.budget = quick ? 0.05 : seconds / 3;
        conv_plan.warmup = quick ? 0.0 : 0.1;
        conv_bad = bench_convs(isa, conv_plan, peak, json);
        if (conv_bad && !json) printf("\na conv shape could not run (see above)\n");
    }
    if (json) printf(", \"ok\": %s}\n", n_bad || conv_bad ? "false" : "true");
    return n_bad || conv_bad ? 1 : 0;
}
