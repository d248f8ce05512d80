/* fer-embed: a 2-D t-SNE map of a model's penultimate-layer features.

   cc -O2 -I. -I/usr/include/stb tools/fer-embed.c -lm -lpthread -o build/fer-embed

   usage: fer-embed --model M.fer --data DIR_OR_CSV [--split NAME] --out MAP.csv [--svg MAP.svg]
                    [--png MAP.png] [--limit N] [--pca D] [--perplexity X] [--iterations N]
                    [--seed N] [--threads N]
   --data and --split as in fer-eval: a folder of class folders, or FER2013's CSV
   (--split picks its rows by Usage; PublicTest without it).
   The penultimate layer is the input of the model's last dense or conv node (for
   mini_xception the 128-channel map before the 1x1 conv to the classes). Its
   features for up to --limit images (2000, a seeded sample when there are more)
   are centred and projected on their first --pca principal components (50; 0
   keeps them all), then mapped by fer_tsne: exact up to 3000 points, Barnes-Hut
   beyond. MAP.csv has one row per image: x, y, the true label and class, and the
   predicted label; fer-report --embed draws it, and --svg / --png draw it here. */
#define _POSIX_C_SOURCE 200809L
#define FER_IMPLEMENTATION
#include "fer.h"
#include "tools/report.h"
#include <pthread.h>

static int usage(const char *why)
{
    if (why) fprintf(stderr, "fer-embed: %s\n", why);
    fprintf(stderr, "usage: fer-embed --model M.fer --data DIR_OR_CSV [--split NAME] --out MAP.csv [--svg MAP.svg] [--png MAP.png]\n"
                    "                 [--limit N] [--pca D] [--perplexity X] [--iterations N] [--seed N] [--threads N]\n"
                    "  a CSV is FER2013's fer2013.csv: --split Training|PublicTest|PrivateTest (or train|val|test, all);\n"
                    "  PublicTest without --split\n");
    return 2;
}

/* One thread's share of the forward passes: features and predictions of rows [begin, end). */
typedef struct job {
    const fer_model *m;
    const fer_dataset *d;
    const int *pick;
    int begin, end, node, dim, ok;
    float *feat;                 /* [n][dim] */
    int *pred;                   /* [n]      */
    char error[256];
} job;

static void *run_job(void *p)
{
    job *j = (job *)p;
    const int batch = 32;
    size_t in_size = (size_t)j->m->input.c * j->m->input.h * j->m->input.w;
    fer_workspace ws;
    float *in = (float *)malloc(sizeof(float) * in_size * batch);
    int b, i, k, K = j->m->n_classes;
    j->ok = 0;
    if (!in) { snprintf(j->error, sizeof j->error, "out of memory"); return NULL; }
    if (fer_workspace_init(&ws, j->m, batch, 0) != FER_OK || fer_workspace_freeze(&ws, j->m) != FER_OK) {
        memcpy(j->error, ws.error, sizeof ws.error);
        fer_workspace_free(&ws); free(in);
        return NULL;
    }
    if (fer_workspace_keep(&ws, j->m, j->node) != FER_OK) {   /* an inner node's batch is not kept by default */
        memcpy(j->error, ws.error, sizeof ws.error);
        fer_workspace_free(&ws); free(in);
        return NULL;
    }
    for (b = j->begin; b < j->end; b += batch) {
        int cnt = j->end - b < batch ? j->end - b : batch;
        const float *f, *out;
        for (i = 0; i < cnt; i++)
            fer_preprocess(j->m, j->d->pixels + (size_t)j->pick[b + i] * j->d->h * j->d->w, j->d->w, j->d->h, j->d->w,
                           in + (size_t)i * in_size);
        if (fer_forward(j->m, &ws, in, cnt, 0) != FER_OK) { memcpy(j->error, ws.error, sizeof ws.error); break; }
        f = fer_node_output(&ws, j->node);
        out = fer_output(j->m, &ws);
        memcpy(j->feat + (size_t)b * j->dim, f, sizeof(float) * (size_t)cnt * j->dim);
        for (i = 0; i < cnt; i++) {
            int best = 0;
            for (k = 1; k < K; k++) if (out[i * K + k] > out[i * K + best]) best = k;
            j->pred[b + i] = best;
        }
    }
    j->ok = b >= j->end;
    fer_workspace_free(&ws);
    free(in);
    return NULL;
}

/* Centres x[n][d] and replaces it by its projection on the top p principal axes
   (x[n][p] afterwards): covariance by fer_gemm, then subspace iteration with
   Gram-Schmidt, 60 rounds, which settles the leading axes of feature maps. */
static int pca(float *x, int n, int d, int p, unsigned long long seed)
{
    float *cov = (float *)malloc(sizeof(float) * (size_t)d * d), *q = (float *)malloc(sizeof(float) * (size_t)d * p);
    float *z = (float *)malloc(sizeof(float) * (size_t)d * p), *pack = (float *)malloc(sizeof(float) * fer_gemm_pack_floats());
    float *proj = (float *)malloc(sizeof(float) * (size_t)n * p);
    fer_isa isa = fer_cpu_best_isa();
    int i, j, c, it, ok = cov && q && z && pack && proj;
    if (ok) {
        for (j = 0; j < d; j++) {
            double mean = 0.0;
            for (i = 0; i < n; i++) mean += x[(size_t)i * d + j];
            mean /= n;
            for (i = 0; i < n; i++) x[(size_t)i * d + j] -= (float)mean;
        }
        fer_gemm(isa, 1, 0, d, d, n, x, d, x, d, cov, d, 0, pack);          /* X^T X: d x d */
        for (i = 0; i < d * p; i++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            q[i] = (float)((seed >> 40) & 0xffff) / 65536.0f - 0.5f;
        }
        for (it = 0; it < 60; it++) {
            fer_gemm(isa, 0, 0, d, p, d, cov, d, q, p, z, p, 0, pack);      /* Z = C Q */
            for (c = 0; c < p; c++) {                                       /* Gram-Schmidt on columns */
                double norm = 0.0;
                int e;
                for (e = 0; e < c; e++) {
                    double dot = 0.0;
                    for (i = 0; i < d; i++) dot += (double)z[(size_t)i * p + c] * z[(size_t)i * p + e];
                    for (i = 0; i < d; i++) z[(size_t)i * p + c] -= (float)(dot * z[(size_t)i * p + e]);
                }
                for (i = 0; i < d; i++) norm += (double)z[(size_t)i * p + c] * z[(size_t)i * p + c];
                norm = norm > 0.0 ? 1.0 / sqrt(norm) : 0.0;
                for (i = 0; i < d; i++) z[(size_t)i * p + c] = (float)(z[(size_t)i * p + c] * norm);
            }
            memcpy(q, z, sizeof(float) * (size_t)d * p);
        }
        fer_gemm(isa, 0, 0, n, p, d, x, d, q, p, proj, p, 0, pack);          /* X Q: n x p */
        memcpy(x, proj, sizeof(float) * (size_t)n * p);
    }
    free(cov); free(q); free(z); free(pack); free(proj);
    return ok;
}

int main(int argc, char **argv)
{
    const char *model_path = NULL, *data = NULL, *split = NULL, *out = NULL, *svg = NULL, *png = NULL;
    long limit = 2000, pca_dims = 50, iterations = 1000, threads = 2;
    unsigned long long seed = 1;
    double perplexity = 30.0;
    fer_model m;
    fer_dataset d;
    fer_tsne_params tp;
    job jobs[16];
    pthread_t tid[16];
    int started[16];
    int i, t, n, last = -1, node, dim, h, w, *pick = NULL, *pred = NULL, *lab = NULL, rc = 1;
    float *feat = NULL, *map = NULL;
    char err[256];
    rep_file o;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        long num = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(NULL); return 0; }
        if (!v || strncmp(a, "--", 2)) { fprintf(stderr, "fer-embed: %s '%s'\n", v ? "unknown argument" : "no value after", a); return usage(NULL); }
        i++;
        if (!strcmp(a, "--model")) model_path = v;
        else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--split")) split = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--svg")) svg = v;
        else if (!strcmp(a, "--png")) png = v;
        else if (!strcmp(a, "--perplexity")) {
            perplexity = strtod(v, &end);
            if (*end || !(perplexity >= 2.0 && perplexity <= 200.0)) return usage("--perplexity takes a number from 2 to 200");
        } else {
            num = strtol(v, &end, 10);
            if (*end || num < 0) { fprintf(stderr, "fer-embed: %s takes a whole number, not '%s'\n", a, v); return usage(NULL); }
            if (!strcmp(a, "--limit")) limit = num;
            else if (!strcmp(a, "--pca")) pca_dims = num;
            else if (!strcmp(a, "--iterations")) iterations = num;
            else if (!strcmp(a, "--threads")) threads = num;
            else if (!strcmp(a, "--seed")) seed = (unsigned long long)num;
            else { fprintf(stderr, "fer-embed: unknown option '%s'\n", a); return usage(NULL); }
        }
    }
    if (!model_path || !data || !out) return usage("--model, --data and --out are required");
    if (limit < 10 || limit > 100000) return usage("--limit must be 10..100000");
    if (pca_dims > 4096) return usage("--pca must be 0..4096");
    if (iterations < 250 || iterations > 100000) return usage("--iterations must be 250..100000");
    if (threads < 1 || threads > 16) return usage("--threads must be 1..16");

    if (fer_model_load(&m, model_path, NULL) != FER_OK) { fprintf(stderr, "fer-embed: %s\n", m.error); return 1; }
    for (i = 0; i < m.n_nodes; i++) if (m.nodes[i].op == FER_OP_DENSE || m.nodes[i].op == FER_OP_CONV) last = i;
    if (last < 0) { fprintf(stderr, "fer-embed: %s has no dense or conv node\n", model_path); fer_model_free(&m); return 1; }
    node = m.nodes[last].in[0];
    dim = (int)((size_t)m.nodes[node].out.c * m.nodes[node].out.h * m.nodes[node].out.w);
    fer_tta_size(&m, FER_TTA_NONE, &h, &w);
    if (!rep_load_labelled(&m, data, split, h, w, (int)threads, &d, NULL, 0, err)) {
        fprintf(stderr, "fer-embed: %s\n", err); fer_model_free(&m); return 1;
    }
    n = d.n < limit ? d.n : (int)limit;
    pick = (int *)malloc(sizeof(int) * (size_t)d.n);
    pred = (int *)malloc(sizeof(int) * (size_t)n);
    lab = (int *)malloc(sizeof(int) * (size_t)n);
    feat = (float *)malloc(sizeof(float) * (size_t)n * dim);
    map = (float *)malloc(sizeof(float) * 2 * (size_t)n);
    if (!pick || !pred || !lab || !feat || !map) { fprintf(stderr, "fer-embed: out of memory for %d images\n", n); goto done; }
    {   /* a seeded sample without replacement, kept in file order */
        unsigned long long s = seed;
        for (i = 0; i < d.n; i++) pick[i] = i;
        for (i = 0; i < n && n < d.n; i++) {
            int r, tmp;
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            r = i + (int)((s >> 33) % (unsigned long long)(d.n - i));
            tmp = pick[i]; pick[i] = pick[r]; pick[r] = tmp;
        }
        for (i = 1; i < n; i++) {   /* insertion sort of the chosen rows */
            int v = pick[i], j = i - 1;
            while (j >= 0 && pick[j] > v) { pick[j + 1] = pick[j]; j--; }
            pick[j + 1] = v;
        }
        for (i = 0; i < n; i++) lab[i] = d.labels[pick[i]];
    }
    fprintf(stderr, "fer-embed: %d images, features of node %d (%d values, the input of node %d, %s)\n", n, node, dim, last,
            m.nodes[last].op == FER_OP_DENSE ? "dense" : "conv");
    for (t = 0; t < threads; t++) {
        jobs[t].m = &m; jobs[t].d = &d; jobs[t].pick = pick; jobs[t].node = node; jobs[t].dim = dim;
        jobs[t].feat = feat; jobs[t].pred = pred; jobs[t].error[0] = 0;
        jobs[t].begin = (int)((long long)n * t / threads); jobs[t].end = (int)((long long)n * (t + 1) / threads);
    }
    for (t = 1; t < threads; t++) started[t] = pthread_create(&tid[t], NULL, run_job, &jobs[t]) == 0;
    run_job(&jobs[0]);
    for (t = 1; t < threads; t++) { if (started[t]) pthread_join(tid[t], NULL); else run_job(&jobs[t]); }
    for (t = 0; t < threads; t++) if (!jobs[t].ok) { fprintf(stderr, "fer-embed: %s\n", jobs[t].error); goto done; }
    if (pca_dims > 0 && pca_dims < dim) {
        if (!pca(feat, n, dim, (int)pca_dims, seed)) { fprintf(stderr, "fer-embed: out of memory in PCA\n"); goto done; }
        dim = (int)pca_dims;
    }
    fer_tsne_defaults(&tp);
    tp.perplexity = (float)perplexity; tp.iterations = (int)iterations; tp.seed = seed;
    if (fer_tsne(feat, n, dim, &tp, map, NULL, err) != FER_OK) { fprintf(stderr, "fer-embed: %s\n", err); goto done; }
    if (!rep_open(&o, out, err)) { fprintf(stderr, "fer-embed: %s\n", err); goto done; }
    fprintf(o.f, "x,y,label,class,predicted\n");
    for (i = 0; i < n; i++) fprintf(o.f, "%.5g,%.5g,%d,%s,%d\n", map[2 * i], map[2 * i + 1], lab[i], m.class_names[lab[i]], pred[i]);
    if (!rep_close(&o, err)) { fprintf(stderr, "fer-embed: %s\n", err); goto done; }
    if (svg && !rep_scatter_svg(svg, "t-SNE of penultimate-layer features", map, lab, n, m.class_names, m.n_classes, err)) {
        fprintf(stderr, "fer-embed: %s\n", err); goto done;
    }
    if (png && !rep_scatter_png(png, map, lab, n, m.n_classes, 800, err)) { fprintf(stderr, "fer-embed: %s\n", err); goto done; }
    fprintf(stderr, "fer-embed: map of %d points in %s%s%s%s%s\n", n, out, svg ? ", " : "", svg ? svg : "", png ? ", " : "", png ? png : "");
    rc = 0;
done:
    free(pick); free(pred); free(lab); free(feat); free(map);
    fer_dataset_free(&d);
    fer_model_free(&m);
    return rc;
}
