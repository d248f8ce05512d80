/* train: train a zoo model on a folder of face images and write a .fer model.

   cc -O2 -I. -I/usr/include/stb examples/train.c -lm -lpthread -o build/fer-train

   usage: fer-train --data ROOT --model NAME --out M.fer [options]
   ROOT holds train/CLASS/IMAGE files and, when present, val/CLASS/IMAGE (the
   FER2013 folder layout); without val/, a seeded 10% of train/ validates.
   Options: --epochs N (30)  --batch N (64)  --lr X (0.002)  --opt adam|adamw|sgd (adam)
            --wd X (1e-4)  --seed N (1)  --threads N (2)  --log FILE.csv
            --checkpoint DIR (resume from DIR/last.* when present, write it every epoch)
   Augmentation: random flip, rotation +-10 deg, shift +-10%, zoom 0.9-1.1 (one
   bilinear affine warp), all drawn from the seed. Cosine learning rate with a
   one-epoch warm-up. The model with the best validation accuracy is written to
   --out (temporary file + rename). Prints one line per epoch. */
#define _POSIX_C_SOURCE 200809L
#define FER_IMPLEMENTATION
#include "fer.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>
#include <pthread.h>
#include <sys/stat.h>

typedef struct {
    const char *data, *model, *out, *log, *ckpt, *opt;
    int epochs, batch, threads;
    float lr, wd;
    unsigned long long seed;
} options;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static unsigned long long mix(unsigned long long z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static float unif(unsigned long long *s) { *s = mix(*s); return (float)(*s >> 40) / 16777216.0f; }

/* One affine warp: rotate, zoom, shift and maybe flip an h x w grey image, bilinear,
   border pixels repeated; writes floats in [0,1]. */
static void augment(const unsigned char *src, int h, int w, float *dst, unsigned long long seed)
{
    float ang = (unif(&seed) * 2.0f - 1.0f) * 10.0f * 3.14159265f / 180.0f;
    float zoom = 0.9f + 0.2f * unif(&seed), tx = (unif(&seed) * 2.0f - 1.0f) * 0.1f * w;
    float ty = (unif(&seed) * 2.0f - 1.0f) * 0.1f * h, flip = unif(&seed) < 0.5f ? -1.0f : 1.0f;
    float c = cosf(ang) / zoom, s = sinf(ang) / zoom, cx = (w - 1) * 0.5f, cy = (h - 1) * 0.5f;
    int y, x;
    for (y = 0; y < h; y++)
        for (x = 0; x < w; x++) {
            float dx = (x - cx) * flip - tx, dy = y - cy - ty;
            float sx = c * dx - s * dy + cx, sy = s * dx + c * dy + cy, fx, fy, v;
            int x0, y0, x1, y1;
            if (sx < 0) sx = 0;
            if (sy < 0) sy = 0;
            if (sx > w - 1) sx = (float)(w - 1);
            if (sy > h - 1) sy = (float)(h - 1);
            x0 = (int)sx; y0 = (int)sy; x1 = x0 + 1 < w ? x0 + 1 : x0; y1 = y0 + 1 < h ? y0 + 1 : y0;
            fx = sx - x0; fy = sy - y0;
            v = (1 - fy) * ((1 - fx) * src[y0 * w + x0] + fx * src[y0 * w + x1]) +
                fy * ((1 - fx) * src[y1 * w + x0] + fx * src[y1 * w + x1]);
            dst[y * w + x] = v / 255.0f;
        }
}

typedef struct {
    fer_model *m;
    fer_workspace ws;
    const fer_dataset *d;
    const int *idx;
    int n, total, epoch, step, shard;
    unsigned long long seed;
    float *x, *dlogits;
    int *labels;
    double loss;
    int correct;
} shard;

static void *shard_run(void *p)
{
    shard *s = (shard *)p;
    int i, k, hw = s->d->h * s->d->w, K = s->m->n_classes;
    const float *y;
    for (i = 0; i < s->n; i++) {
        augment(s->d->pixels + (size_t)s->idx[i] * hw, s->d->h, s->d->w, s->x + (size_t)i * hw,
                mix(s->seed ^ ((unsigned long long)s->idx[i] << 20) ^ (unsigned long long)s->epoch));
        s->labels[i] = s->d->labels[s->idx[i]];
    }
    s->ws.dropout_seed = mix(s->seed ^ ((unsigned long long)s->step << 8) ^ (unsigned long long)s->shard);
    fer_forward(s->m, &s->ws, s->x, s->n, 1);
    y = fer_output(s->m, &s->ws);
    s->loss = fer_softmax_xent(y, s->labels, s->n, K, 0.0f, (float)s->total, s->dlogits) * s->n;
    s->correct = 0;
    for (i = 0; i < s->n; i++) {
        int best = 0;
        for (k = 1; k < K; k++) if (y[i * K + k] > y[i * K + best]) best = k;
        s->correct += best == s->labels[i];
    }
    fer_zero_grad(s->m, &s->ws);
    fer_backward(s->m, &s->ws, s->dlogits);
    return NULL;
}

static double evaluate(const fer_model *m, fer_workspace *pool, int n_ws, const fer_dataset *d,
                       double *loss)
{
    int i, k, b, chunk = 256, K = m->n_classes, correct = 0, hw = d->h * d->w;
    float *x = (float *)malloc(sizeof(float) * (size_t)chunk * hw), *out = (float *)malloc(sizeof(float) * (size_t)chunk * K);
    double L = 0.0;
    for (b = 0; b < d->n; b += chunk) {
        int n = d->n - b < chunk ? d->n - b : chunk;
        for (i = 0; i < n * hw; i++) x[i] = d->pixels[(size_t)b * hw + i] / 255.0f;
        fer_forward_threads(m, pool, n_ws, x, n, out);
        L += fer_softmax_xent(out, d->labels + b, n, K, 0.0f, 1.0f, NULL) * n;
        for (i = 0; i < n; i++) {
            int best = 0;
            for (k = 1; k < K; k++) if (out[i * K + k] > out[i * K + best]) best = k;
            correct += best == d->labels[b + i];
        }
    }
    free(x); free(out);
    *loss = L / d->n;
    return (double)correct / d->n;
}

/* checkpoint: DIR/last.fer (model) + DIR/last.state (epoch, best, optimizer) */
static int save_state(const char *dir, fer_model *m, const fer_optimizer *o, int epoch, double best)
{
    char path[4096], tmp[4200];
    FILE *f;
    int ok;
    snprintf(path, sizeof path, "%s/last.fer", dir);
    if (fer_model_save(m, path) != FER_OK) { fprintf(stderr, "fer-train: %s\n", m->error); return 0; }
    snprintf(path, sizeof path, "%s/last.state", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (!(f = fopen(tmp, "wb"))) return 0;
    ok = fwrite("FERS", 1, 4, f) == 4 && fwrite(&epoch, sizeof epoch, 1, f) == 1 && fwrite(&best, sizeof best, 1, f) == 1 &&
         fwrite(&o->step, sizeof o->step, 1, f) == 1 && fwrite(&o->n, sizeof o->n, 1, f) == 1 &&
         fwrite(o->m, sizeof(float), 2 * o->n, f) == 2 * o->n;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) { remove(tmp); return 0; }
    return 1;
}

static int load_state(const char *dir, fer_model *m, fer_optimizer *o, int *epoch, double *best)
{
    char path[4096], magic[4];
    FILE *f;
    size_t n;
    fer_model ck;
    snprintf(path, sizeof path, "%s/last.fer", dir);
    if (fer_model_load(&ck, path, NULL) != FER_OK) return 0;
    if (ck.n_params != m->n_params || ck.n_buffers != m->n_buffers) { fer_model_free(&ck); return 0; }
    memcpy(m->arena, ck.arena, sizeof(float) * (m->n_params + m->n_buffers));
    fer_model_free(&ck);
    snprintf(path, sizeof path, "%s/last.state", dir);
    if (!(f = fopen(path, "rb"))) return 0;
    if (fread(magic, 1, 4, f) != 4 || memcmp(magic, "FERS", 4) || fread(epoch, sizeof *epoch, 1, f) != 1 ||
        fread(best, sizeof *best, 1, f) != 1 || fread(&o->step, sizeof o->step, 1, f) != 1 ||
        fread(&n, sizeof n, 1, f) != 1 || n != o->n || fread(o->m, sizeof(float), 2 * n, f) != 2 * n) {
        fclose(f);
        return 0;
    }
    fclose(f);
    return 1;
}

static int usage(const char *msg)
{
    if (msg) fprintf(stderr, "fer-train: %s\n", msg);
    fprintf(stderr, "usage: fer-train --data ROOT --model NAME --out M.fer [--epochs N] [--batch N] [--lr X]\n"
                    "                 [--opt adam|adamw|sgd] [--wd X] [--seed N] [--threads N] [--log F.csv]\n"
                    "                 [--checkpoint DIR]\n");
    return 2;
}

int main(int argc, char **argv)
{
    options op;
    fer_dataset tr, va;
    fer_model m;
    fer_optimizer opt;
    fer_workspace pool[16];
    shard sh[16];
    char path[4096];
    unsigned char *nodecay;
    int i, e, t, start_epoch = 0, *perm, steps_per_epoch, K, kind;
    double best = -1.0;
    FILE *logf = NULL;
    memset(&op, 0, sizeof op);
    op.epochs = 30; op.batch = 64; op.threads = 2; op.lr = 0.002f; op.wd = 1e-4f; op.seed = 1; op.opt = "adam";
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(NULL); return 0; }
        if (!v) return usage("every option takes a value");
        if (!strcmp(a, "--data")) op.data = v;
        else if (!strcmp(a, "--model")) op.model = v;
        else if (!strcmp(a, "--out")) op.out = v;
        else if (!strcmp(a, "--log")) op.log = v;
        else if (!strcmp(a, "--checkpoint")) op.ckpt = v;
        else if (!strcmp(a, "--opt")) op.opt = v;
        else if (!strcmp(a, "--epochs")) op.epochs = atoi(v);
        else if (!strcmp(a, "--batch")) op.batch = atoi(v);
        else if (!strcmp(a, "--threads")) op.threads = atoi(v);
        else if (!strcmp(a, "--lr")) op.lr = (float)atof(v);
        else if (!strcmp(a, "--wd")) op.wd = (float)atof(v);
        else if (!strcmp(a, "--seed")) op.seed = strtoull(v, NULL, 10);
        else { fprintf(stderr, "fer-train: unknown option '%s'\n", a); return usage(NULL); }
        i++;
    }
    if (!op.data || !op.model || !op.out) return usage("--data, --model and --out are required");
    if (op.epochs < 1 || op.epochs > 10000) return usage("--epochs must be 1..10000");
    if (op.batch < 1 || op.batch > 4096) return usage("--batch must be 1..4096");
    if (op.threads < 1 || op.threads > 16) return usage("--threads must be 1..16");
    if (!(op.lr > 0.0f && op.lr < 10.0f)) return usage("--lr must be in (0, 10)");
    if (!(op.wd >= 0.0f && op.wd < 1.0f)) return usage("--wd must be in [0, 1)");
    kind = !strcmp(op.opt, "adam") ? FER_OPT_ADAM : !strcmp(op.opt, "adamw") ? FER_OPT_ADAMW : !strcmp(op.opt, "sgd") ? FER_OPT_SGD : -1;
    if (kind < 0) return usage("--opt must be adam, adamw or sgd");

    snprintf(path, sizeof path, "%s/train", op.data);
    if (fer_dataset_load_folder(&tr, path, 48, 48, op.threads, NULL) != FER_OK) { fprintf(stderr, "fer-train: %s\n", tr.error); return 1; }
    snprintf(path, sizeof path, "%s/val", op.data);
    if (fer_dataset_load_folder(&va, path, 48, 48, op.threads, NULL) != FER_OK) {
        /* no val/: hold out a seeded 10% of train */
        int nv = tr.n / 10, j;
        unsigned long long s = op.seed;
        va = tr;
        va.pixels = (unsigned char *)malloc((size_t)nv * 48 * 48); va.labels = (int *)malloc(sizeof(int) * (size_t)nv);
        for (j = tr.n - 1; j > 0; j--) {   /* shuffle train in place, take the tail */
            int r = (int)(unif(&s) * (j + 1)), tl = tr.labels[j];
            unsigned char tmp[48 * 48];
            if (r > j) r = j;
            memcpy(tmp, tr.pixels + (size_t)j * 2304, 2304); memcpy(tr.pixels + (size_t)j * 2304, tr.pixels + (size_t)r * 2304, 2304);
            memcpy(tr.pixels + (size_t)r * 2304, tmp, 2304); tr.labels[j] = tr.labels[r]; tr.labels[r] = tl;
        }
        memcpy(va.pixels, tr.pixels + (size_t)(tr.n - nv) * 2304, (size_t)nv * 2304);
        memcpy(va.labels, tr.labels + tr.n - nv, sizeof(int) * (size_t)nv);
        va.n = nv; tr.n -= nv;
        printf("no val/ folder: validating on a seeded 10%% of train (%d images)\n", nv);
    }
    if (tr.n_skipped) printf("train: skipped %d files (first: %s)\n", tr.n_skipped, tr.skip_reason);
    K = tr.n_classes;
    printf("train: %d images, val: %d images, %d classes\n", tr.n, va.n, K);
    if (fer_zoo_build(&m, op.model, 1, 48, 48, K, op.seed, NULL) != FER_OK) { fprintf(stderr, "fer-train: %s\n", m.error); return 1; }
    for (i = 0; i < K; i++) memcpy(m.class_names[i], tr.class_names[i], FER_NAME_LEN);
    if (fer_optimizer_init(&opt, kind, m.n_params, op.lr, op.wd, NULL) != FER_OK) { fprintf(stderr, "fer-train: optimizer\n"); return 1; }
    nodecay = (unsigned char *)malloc(m.n_params);
    fer_model_no_decay_mask(&m, nodecay);
    if (op.ckpt) {
        mkdir(op.ckpt, 0755);
        if (load_state(op.ckpt, &m, &opt, &start_epoch, &best)) printf("resumed from %s at epoch %d (best val acc %.4f)\n", op.ckpt, start_epoch, best);
    }
    for (t = 0; t < op.threads; t++) {
        int per = (op.batch + op.threads - 1) / op.threads;
        memset(&sh[t], 0, sizeof sh[t]);
        sh[t].m = &m; sh[t].d = &tr; sh[t].seed = op.seed; sh[t].shard = t;
        if (fer_workspace_init(&sh[t].ws, &m, per, 1) != FER_OK || fer_workspace_init(&pool[t], &m, 256 / op.threads + 1, 0) != FER_OK) {
            fprintf(stderr, "fer-train: %s\n", sh[t].ws.error); return 1;
        }
        sh[t].x = (float *)malloc(sizeof(float) * (size_t)per * 2304);
        sh[t].dlogits = (float *)malloc(sizeof(float) * (size_t)per * K);
        sh[t].labels = (int *)malloc(sizeof(int) * (size_t)per);
    }
    if (op.log) {
        logf = fopen(op.log, start_epoch ? "a" : "w");
        if (!logf) { fprintf(stderr, "fer-train: cannot write %s\n", op.log); return 1; }
        if (!start_epoch) fprintf(logf, "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds\n");
    }
    perm = (int *)malloc(sizeof(int) * (size_t)tr.n);
    steps_per_epoch = tr.n / op.batch;
    for (e = start_epoch; e < op.epochs; e++) {
        double t0 = now(), L = 0.0, vl, va_acc;
        long seen = 0, correct = 0;
        unsigned long long s = mix(op.seed ^ (unsigned long long)(e + 1) * 7919);
        int st;
        float lr = op.lr;
        for (i = 0; i < tr.n; i++) perm[i] = i;
        for (i = tr.n - 1; i > 0; i--) { int r = (int)(unif(&s) * (i + 1)), tmp = perm[i]; if (r > i) r = i; perm[i] = perm[r]; perm[r] = tmp; }
        for (st = 0; st < steps_per_epoch; st++) {
            pthread_t tid[16];
            int off = st * op.batch, per = (op.batch + op.threads - 1) / op.threads;
            long gstep = (long)e * steps_per_epoch + st, warm = steps_per_epoch, total = (long)op.epochs * steps_per_epoch;
            lr = gstep < warm ? op.lr * (float)(gstep + 1) / (float)warm
                              : 0.5f * op.lr * (1.0f + cosf(3.14159265f * (float)(gstep - warm) / (float)(total - warm)));
            for (t = 0; t < op.threads; t++) {
                sh[t].idx = perm + off + t * per;
                sh[t].n = op.batch - t * per < per ? op.batch - t * per : per;
                sh[t].total = op.batch; sh[t].epoch = e; sh[t].step = (int)gstep;
            }
            for (t = 1; t < op.threads; t++) pthread_create(&tid[t], NULL, shard_run, &sh[t]);
            shard_run(&sh[0]);
            for (t = 1; t < op.threads; t++) pthread_join(tid[t], NULL);
            for (t = 1; t < op.threads; t++) {
                size_t k;
                for (k = 0; k < m.n_params; k++) sh[0].ws.pgrad[k] += sh[t].ws.pgrad[k];
            }
            for (t = 0; t < op.threads; t++) { L += sh[t].loss; correct += sh[t].correct; seen += sh[t].n; }
            if (!(L == L)) { fprintf(stderr, "fer-train: the loss became NaN at epoch %d step %d; stopping (nothing written)\n", e + 1, st); return 1; }
            opt.lr = lr;
            fer_optimizer_step(&opt, m.params, sh[0].ws.pgrad, nodecay);
            fer_bn_update_running(&m, &sh[0].ws);
            if (st % 50 == 0) { printf("\repoch %d/%d  step %d/%d  loss %.4f  acc %.4f  %.0f img/s   ", e + 1, op.epochs, st, steps_per_epoch, L / seen, (double)correct / seen, seen / (now() - t0)); fflush(stdout); }
        }
        va_acc = evaluate(&m, pool, op.threads, &va, &vl);
        printf("\repoch %d/%d  train loss %.4f acc %.4f  val loss %.4f acc %.4f  lr %.5f  %.0fs  %.0f img/s\n", e + 1, op.epochs,
               L / seen, (double)correct / seen, vl, va_acc, lr, now() - t0, seen / (now() - t0));
        if (logf) { fprintf(logf, "%d,%.5f,%.5f,%.5f,%.5f,%.6f,%.1f\n", e + 1, L / seen, (double)correct / seen, vl, va_acc, lr, now() - t0); fflush(logf); }
        if (va_acc > best) {
            best = va_acc;
            if (fer_model_save(&m, op.out) != FER_OK) { fprintf(stderr, "fer-train: %s\n", m.error); return 1; }
        }
        if (op.ckpt && !save_state(op.ckpt, &m, &opt, e + 1, best)) fprintf(stderr, "fer-train: could not write the checkpoint in %s\n", op.ckpt);
    }
    printf("best val accuracy %.4f, model in %s\n", best, op.out);
    if (logf) fclose(logf);
    return 0;
}
