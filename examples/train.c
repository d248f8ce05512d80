/* train: train a zoo model on FER2013 (or any folder of face images) and write a .fer model.

   cc -O2 -I. -I/usr/include/stb examples/train.c -lm -lpthread -o build/fer-train

   build/fer-train --data ../shared/fer2013 --model mini_xception --epochs 60 --out m.fer

   --data is a folder holding train/CLASS/IMAGE and, when present, val/CLASS/IMAGE
   (FER2013's folder layout; without val/ a seeded share of train/ validates), or
   FER2013's fer2013.csv (Usage Training trains, PublicTest validates). Every
   option of fer_train_config is a flag; `fer-train --help` lists them with their
   defaults. The model with the best validation score is written to --out after
   every epoch that improves it (temporary file + rename, so a kill never leaves a
   broken file); --checkpoint DIR keeps DIR/last.ferc (model, optimizer, schedule,
   averaging and RNG position) after every epoch and resumes from it. One line per
   epoch goes to the screen (with a progress bar on a terminal) and to --log. */
#define _POSIX_C_SOURCE 200809L
#define FER_IMPLEMENTATION
#include "fer.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>
#include <errno.h>
#include <unistd.h>
#include <sys/stat.h>

typedef struct options {
    const char *data, *model, *out, *log, *ckpt, *log_format, *progress;
    int input, size, oversample, oversample_max, n_weights;
    float val_split;
} options;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static void usage(FILE *f, const fer_train_config *c)
{
    fprintf(f,
        "usage: fer-train --data ROOT|FILE.csv --model NAME --out M.fer [options]\n"
        "data and model\n"
        "  --data P            folder with train/ (and val/), or FER2013's fer2013.csv\n"
        "  --model NAME        a zoo model (build/fer-zoo lists them)\n"
        "  --size N            images are resized to N x N (48)\n"
        "  --input N           model input N x N, cropped from --size (= --size)\n"
        "  --val-split F       share of train/ that validates when there is no val/ (0.1)\n"
        "  --oversample N|max  add augmented copies of rarer classes up to N images (off)\n"
        "  --norm unit|signed|meanstd      input normalisation (unit)\n"
        "loop\n"
        "  --epochs N (%d)  --batch N (%d)  --threads N (all cores)  --seed N (%llu)\n"
        "optimizer\n"
        "  --opt adam|adamw|sgd (adam)  --lr X (%g)  --wd X (%g)  --momentum X (%g)\n"
        "  --nesterov 0|1 (0)  --beta1 X (%g)  --beta2 X (%g)  --clip X (0: off)\n"
        "schedule\n"
        "  --sched cosine|step|multistep|plateau|constant (cosine)  --warmup N (%d epochs)\n"
        "  --min-lr X (0)  --step-size N  --gamma X (%g)  --milestones A,B,..\n"
        "  --plateau-factor X (%g)  --plateau-patience N (%d)\n"
        "loss\n"
        "  --label-smoothing X (%g)  --focal-gamma X (0: cross-entropy)\n"
        "  --class-weights none|balanced|W0,W1,.. (none; focal loss: the alphas)\n"
        "augmentation (--aug none switches all off)\n"
        "  --flip 0|1 (%d)  --rotate DEG (%g)  --shift F (%g)  --zoom F (%g)\n"
        "  --brightness F (%g)  --contrast F (%g)  --random-crop 0|1 (%d)\n"
        "  --erase P (%g)  --erase-area MIN,MAX (%g,%g)  --erase-aspect A (%g)\n"
        "model selection\n"
        "  --monitor acc|loss|f1 (acc)  --early-stop N (0: off)  --min-delta X (0)\n"
        "  --restore-best 0|1 (1)  --val-tta none|flip|tencrop (none)\n"
        "  --swa none|ema|uniform (none)  --swa-start N (epoch, 1-based)  --swa-decay X (%g)\n"
        "  --swa-lr X (0: keep the schedule)\n"
        "  --skip-nonfinite 0|1 (0: stop, naming the layer)\n"
        "output\n"
        "  --out M.fer  --checkpoint DIR  --log FILE (.csv, or .jsonl for JSON lines)\n"
        "  --log-format csv|json  --progress auto|always|never (auto: on a terminal)\n",
        c->epochs, c->batch, (unsigned long long)c->seed, c->schedule.lr, c->weight_decay, c->momentum,
        c->beta1, c->beta2, c->schedule.warmup_epochs, c->schedule.gamma, c->schedule.factor,
        c->schedule.patience, c->label_smoothing, c->augment.flip, c->augment.rotate, c->augment.shift,
        c->augment.zoom, c->augment.brightness, c->augment.contrast, c->augment.random_crop,
        c->augment.erase_prob, c->augment.erase_min, c->augment.erase_max, c->augment.erase_aspect,
        c->swa_decay);
}

static int fail(const char *fmt, const char *what)
{
    fprintf(stderr, "fer-train: ");
    fprintf(stderr, fmt, what);
    fprintf(stderr, "\n");
    return 2;
}

/* Strict number parsing: the whole value must be a number in [lo, hi]. */
static int num(const char *name, const char *v, double lo, double hi, double *out)
{
    char *end;
    double x;
    errno = 0;
    x = strtod(v, &end);
    if (end == v || *end || errno || !(x >= lo && x <= hi)) {
        fprintf(stderr, "fer-train: %s '%s': expected a number in [%g, %g]\n", name, v, lo, hi);
        return 0;
    }
    *out = x;
    return 1;
}

static int pick(const char *name, const char *v, const char *const *names, int n, int *out)
{
    int i;
    for (i = 0; i < n; i++) if (!strcmp(v, names[i])) { *out = i; return 1; }
    fprintf(stderr, "fer-train: %s '%s': expected one of", name, v);
    for (i = 0; i < n; i++) fprintf(stderr, " %s", names[i]);
    fprintf(stderr, "\n");
    return 0;
}

/* "a,b,c" into at most max numbers in [lo, hi]; returns the count, or -1. */
static int num_list(const char *name, const char *v, double lo, double hi, double *out, int max)
{
    char buf[1024], *tok, *save = NULL;
    int n = 0;
    if (strlen(v) >= sizeof buf) { fprintf(stderr, "fer-train: %s: list too long\n", name); return -1; }
    strcpy(buf, v);
    for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == max) { fprintf(stderr, "fer-train: %s: at most %d values\n", name, max); return -1; }
        if (!num(name, tok, lo, hi, &out[n++])) return -1;
    }
    if (n == 0) { fprintf(stderr, "fer-train: %s: empty list\n", name); return -1; }
    return n;
}

/* Parses every flag into c and o; returns 0 to go on, else the exit status. */
static int parse(int argc, char **argv, fer_train_config *c, options *o)
{
    static const char *const opts[] = { "sgd", "adam", "adamw" };
    static const char *const scheds[] = { "constant", "step", "multistep", "cosine", "plateau" };
    static const char *const norms[] = { "unit", "signed", "meanstd" };
    static const char *const monitors[] = { "acc", "loss", "f1" };
    static const char *const swas[] = { "none", "ema", "uniform" };
    static const char *const ttas[] = { "none", "flip", "tencrop" };
    int i, swa_start = 0, step_size = 0, warmup_given = 0;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        double x, list[FER_MAX_CLASSES];
        int ok = 1, k, n;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout, c); return -1; }
        if (strncmp(a, "--", 2)) return fail("'%s' is not an option (options start with --)", a);
        if (!v) return fail("%s needs a value", a);
        i++;
        if (!strcmp(a, "--data")) o->data = v;
        else if (!strcmp(a, "--model")) o->model = v;
        else if (!strcmp(a, "--out")) o->out = v;
        else if (!strcmp(a, "--log")) o->log = v;
        else if (!strcmp(a, "--log-format")) { o->log_format = v; ok = !strcmp(v, "csv") || !strcmp(v, "json"); if (!ok) fail("--log-format '%s': csv or json", v); }
        else if (!strcmp(a, "--checkpoint")) o->ckpt = v;
        else if (!strcmp(a, "--progress")) { o->progress = v; ok = !strcmp(v, "auto") || !strcmp(v, "always") || !strcmp(v, "never"); if (!ok) fail("--progress '%s': auto, always or never", v); }
        else if (!strcmp(a, "--size")) { ok = num(a, v, 8, FER_MAX_DIM, &x); o->size = (int)x; }
        else if (!strcmp(a, "--input")) { ok = num(a, v, 8, FER_MAX_DIM, &x); o->input = (int)x; }
        else if (!strcmp(a, "--val-split")) { ok = num(a, v, 0.01, 0.5, &x); o->val_split = (float)x; }
        else if (!strcmp(a, "--oversample")) {
            if (!strcmp(v, "max")) o->oversample_max = 1;
            else { ok = num(a, v, 1, 1 << 22, &x); o->oversample = (int)x; }
        }
        else if (!strcmp(a, "--norm")) ok = pick(a, v, norms, 3, &c->norm);
        else if (!strcmp(a, "--epochs")) { ok = num(a, v, 1, 100000, &x); c->epochs = (int)x; }
        else if (!strcmp(a, "--batch")) { ok = num(a, v, 1, 65536, &x); c->batch = (int)x; }
        else if (!strcmp(a, "--threads")) { ok = num(a, v, 1, 64, &x); c->threads = (int)x; }
        else if (!strcmp(a, "--seed")) { ok = num(a, v, 0, 9007199254740992.0, &x); c->seed = (uint64_t)x; }
        else if (!strcmp(a, "--opt")) ok = pick(a, v, opts, 3, &c->optimizer);
        else if (!strcmp(a, "--lr")) { ok = num(a, v, 1e-9, 10, &x); c->schedule.lr = (float)x; }
        else if (!strcmp(a, "--wd")) { ok = num(a, v, 0, 0.999, &x); c->weight_decay = (float)x; }
        else if (!strcmp(a, "--momentum")) { ok = num(a, v, 0, 0.9999, &x); c->momentum = (float)x; }
        else if (!strcmp(a, "--nesterov")) { ok = num(a, v, 0, 1, &x); c->nesterov = (int)x; }
        else if (!strcmp(a, "--beta1")) { ok = num(a, v, 0, 0.9999, &x); c->beta1 = (float)x; }
        else if (!strcmp(a, "--beta2")) { ok = num(a, v, 0, 0.999999, &x); c->beta2 = (float)x; }
        else if (!strcmp(a, "--clip")) { ok = num(a, v, 0, 1e6, &x); c->clip_norm = (float)x; }
        else if (!strcmp(a, "--sched")) ok = pick(a, v, scheds, 5, &c->schedule.kind);
        else if (!strcmp(a, "--warmup")) { ok = num(a, v, 0, 100000, &x); c->schedule.warmup_epochs = (int)x; warmup_given = 1; }
        else if (!strcmp(a, "--min-lr")) { ok = num(a, v, 0, 10, &x); c->schedule.min_lr = (float)x; }
        else if (!strcmp(a, "--step-size")) { ok = num(a, v, 1, 100000, &x); step_size = (int)x; }
        else if (!strcmp(a, "--gamma")) { ok = num(a, v, 1e-6, 1, &x); c->schedule.gamma = (float)x; }
        else if (!strcmp(a, "--milestones")) {
            n = num_list(a, v, 1, 100000, list, FER_MAX_MILESTONES);
            ok = n > 0;
            for (k = 0; k < n; k++) c->schedule.milestones[k] = (int)list[k];
            c->schedule.n_milestones = ok ? n : 0;
        }
        else if (!strcmp(a, "--plateau-factor")) { ok = num(a, v, 1e-3, 0.999, &x); c->schedule.factor = (float)x; }
        else if (!strcmp(a, "--plateau-patience")) { ok = num(a, v, 0, 10000, &x); c->schedule.patience = (int)x; }
        else if (!strcmp(a, "--label-smoothing")) { ok = num(a, v, 0, 0.99, &x); c->label_smoothing = (float)x; }
        else if (!strcmp(a, "--focal-gamma")) { ok = num(a, v, 0, 10, &x); c->focal_gamma = (float)x; }
        else if (!strcmp(a, "--class-weights")) {
            if (!strcmp(v, "none")) c->class_weighting = FER_WEIGHT_NONE;
            else if (!strcmp(v, "balanced")) c->class_weighting = FER_WEIGHT_BALANCED;
            else {
                n = num_list(a, v, 0, 1e6, list, FER_MAX_CLASSES);
                ok = n > 0;
                for (k = 0; k < n; k++) c->class_weight[k] = (float)list[k];
                c->class_weighting = FER_WEIGHT_GIVEN;
                o->n_weights = n;          /* checked against the classes once they are known */
            }
        }
        else if (!strcmp(a, "--aug")) {
            if (!strcmp(v, "none")) memset(&c->augment, 0, sizeof(c->augment));
            else if (!strcmp(v, "default")) fer_augment_defaults(&c->augment);
            else ok = !fail("--aug '%s': default or none", v);
        }
        else if (!strcmp(a, "--flip")) { ok = num(a, v, 0, 1, &x); c->augment.flip = (int)x; }
        else if (!strcmp(a, "--rotate")) { ok = num(a, v, 0, 180, &x); c->augment.rotate = (float)x; }
        else if (!strcmp(a, "--shift")) { ok = num(a, v, 0, 0.5, &x); c->augment.shift = (float)x; }
        else if (!strcmp(a, "--zoom")) { ok = num(a, v, 0, 0.9, &x); c->augment.zoom = (float)x; }
        else if (!strcmp(a, "--brightness")) { ok = num(a, v, 0, 1, &x); c->augment.brightness = (float)x; }
        else if (!strcmp(a, "--contrast")) { ok = num(a, v, 0, 1, &x); c->augment.contrast = (float)x; }
        else if (!strcmp(a, "--random-crop")) { ok = num(a, v, 0, 1, &x); c->augment.random_crop = (int)x; }
        else if (!strcmp(a, "--erase")) { ok = num(a, v, 0, 1, &x); c->augment.erase_prob = (float)x; }
        else if (!strcmp(a, "--erase-area")) {
            n = num_list(a, v, 0, 1, list, 2);
            ok = n == 2 && list[0] <= list[1];
            if (!ok && n > 0) fail("--erase-area '%s': MIN,MAX with MIN <= MAX", v);
            if (ok) { c->augment.erase_min = (float)list[0]; c->augment.erase_max = (float)list[1]; }
        }
        else if (!strcmp(a, "--erase-aspect")) { ok = num(a, v, 1, 100, &x); c->augment.erase_aspect = (float)x; }
        else if (!strcmp(a, "--monitor")) ok = pick(a, v, monitors, 3, &c->monitor);
        else if (!strcmp(a, "--early-stop")) { ok = num(a, v, 0, 100000, &x); c->early_stop = (int)x; }
        else if (!strcmp(a, "--min-delta")) { ok = num(a, v, 0, 1e6, &x); c->min_delta = (float)x; }
        else if (!strcmp(a, "--restore-best")) { ok = num(a, v, 0, 1, &x); c->restore_best = (int)x; }
        else if (!strcmp(a, "--val-tta")) ok = pick(a, v, ttas, 3, &c->val_tta);
        else if (!strcmp(a, "--swa")) ok = pick(a, v, swas, 3, &c->swa);
        else if (!strcmp(a, "--swa-start")) { ok = num(a, v, 1, 100000, &x); swa_start = (int)x; }
        else if (!strcmp(a, "--swa-decay")) { ok = num(a, v, 1e-3, 0.9999, &x); c->swa_decay = (float)x; }
        else if (!strcmp(a, "--swa-lr")) { ok = num(a, v, 0, 10, &x); c->swa_lr = (float)x; }
        else if (!strcmp(a, "--skip-nonfinite")) { ok = num(a, v, 0, 1, &x); c->skip_nonfinite = (int)x; }
        else { fprintf(stderr, "fer-train: unknown option '%s' (--help lists them)\n", a); return 2; }
        if (!ok) return 2;
    }
    if (!o->data || !o->model || !o->out) return fail("%s", "--data, --model and --out are required (--help)");
    c->schedule.epochs = c->epochs;
    if (!warmup_given && c->schedule.warmup_epochs >= c->epochs) c->schedule.warmup_epochs = c->epochs - 1;
    if (step_size) c->schedule.step_size = step_size;
    else c->schedule.step_size = c->epochs / 3 > 0 ? c->epochs / 3 : 1;
    if (c->swa) c->swa_start = swa_start ? swa_start - 1 : (c->epochs * 3) / 4;
    if (!o->size) o->size = 48;
    if (!o->input) o->input = o->size;
    if (o->input > o->size) return fail("%s", "--input cannot exceed --size (the input is cropped from the stored image)");
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* Moves a seeded share of tr into va (when there is no validation split). */
static int split_off(fer_dataset *tr, fer_dataset *va, float share, uint64_t seed)
{
    size_t hw = (size_t)tr->h * tr->w;
    int nv = (int)(tr->n * share), i;
    unsigned char *tmp = (unsigned char *)malloc(hw);
    uint64_t s = seed;
    *va = *tr;
    va->pixels = (unsigned char *)malloc((size_t)nv * hw);
    va->labels = (int *)malloc(sizeof(int) * (size_t)(nv ? nv : 1));
    if (!tmp || !va->pixels || !va->labels || nv < 1) { free(tmp); return 0; }
    for (i = tr->n - 1; i > 0; i--) {          /* seeded Fisher-Yates; the tail validates */
        int r, l;
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        r = (int)((s >> 33) % (uint64_t)(i + 1));
        memcpy(tmp, tr->pixels + (size_t)i * hw, hw);
        memcpy(tr->pixels + (size_t)i * hw, tr->pixels + (size_t)r * hw, hw);
        memcpy(tr->pixels + (size_t)r * hw, tmp, hw);
        l = tr->labels[i]; tr->labels[i] = tr->labels[r]; tr->labels[r] = l;
    }
    memcpy(va->pixels, tr->pixels + (size_t)(tr->n - nv) * hw, (size_t)nv * hw);
    memcpy(va->labels, tr->labels + tr->n - nv, sizeof(int) * (size_t)nv);
    va->n = nv; tr->n -= nv;
    free(tmp);
    return 1;
}

static int load_data(const options *o, fer_dataset *tr, fer_dataset *va, int threads, uint64_t seed)
{
    char path[4096];
    struct stat st;
    int have_val;
    if (stat(o->data, &st) != 0) { fprintf(stderr, "fer-train: --data %s: %s\n", o->data, strerror(errno)); return 0; }
    if (S_ISREG(st.st_mode)) {      /* FER2013's CSV */
        if (fer_dataset_load_csv(tr, o->data, "Training", o->size, o->size, threads, NULL) != FER_OK) {
            fprintf(stderr, "fer-train: %s\n", tr->error); return 0;
        }
        have_val = fer_dataset_load_csv(va, o->data, "PublicTest", o->size, o->size, threads, NULL) == FER_OK;
    } else {
        snprintf(path, sizeof path, "%s/train", o->data);
        if (stat(path, &st) != 0) {
            fprintf(stderr, "fer-train: %s has no train/ folder (expected ROOT/train/CLASS/IMAGE)\n", o->data);
            return 0;
        }
        if (fer_dataset_load_folder(tr, path, o->size, o->size, threads, NULL) != FER_OK) {
            fprintf(stderr, "fer-train: %s\n", tr->error); return 0;
        }
        snprintf(path, sizeof path, "%s/val", o->data);
        have_val = stat(path, &st) == 0;
        if (have_val && fer_dataset_load_folder(va, path, o->size, o->size, threads, NULL) != FER_OK) {
            fprintf(stderr, "fer-train: %s\n", va->error); return 0;
        }
    }
    if (tr->n_skipped) printf("train: skipped %d (%s)\n", tr->n_skipped, tr->skip_reason);
    if (have_val && va->n_skipped) printf("val: skipped %d (%s)\n", va->n_skipped, va->skip_reason);
    if (have_val && fer_dataset_remap(va, (const char (*)[FER_NAME_LEN])tr->class_names, tr->n_classes) != FER_OK) {
        fprintf(stderr, "fer-train: validation data: %s\n", va->error); return 0;
    }
    if (!have_val) {
        if (!split_off(tr, va, o->val_split ? o->val_split : 0.1f, seed)) { fprintf(stderr, "fer-train: too few images to hold some out\n"); return 0; }
        printf("no validation split: validating on a seeded %.0f%% of train (%d images)\n", 100.0 * (o->val_split ? o->val_split : 0.1), va->n);
    }
    return 1;
}

/* The progress bar: redrawn at most 5 times a second, on a terminal only. */
typedef struct bar { int on, batch, epochs; double t0, last; } bar;
static void progress(void *user, int epoch, int step, int steps, double loss, double acc)
{
    bar *b = (bar *)user;
    double t = now(), rate, eta;
    int i, fill;
    char line[41];
    if (!b->on || (t - b->last < 0.2 && step < steps)) return;
    b->last = t;
    rate = (double)step * b->batch / (t - b->t0 + 1e-9);
    eta = (steps - step) * b->batch / (rate > 0 ? rate : 1);
    fill = (int)(40.0 * step / steps);
    for (i = 0; i < 40; i++) line[i] = i < fill ? '=' : i == fill ? '>' : ' ';
    line[40] = 0;
    printf("\repoch %d/%d [%s] %3d%%  loss %.4f  acc %.4f  %.0f img/s  ETA %d:%02d ", epoch, b->epochs, line,
           100 * step / steps, loss, acc, rate, (int)eta / 60, (int)eta % 60);
    fflush(stdout);
}

static void log_epoch(FILE *f, int json, const fer_epoch_stats *s, double secs, double ips)
{
    if (!f) return;
    if (json)
        fprintf(f, "{\"epoch\": %d, \"train_loss\": %.6f, \"train_acc\": %.6f, \"train_f1\": %.6f, \"val_loss\": %.6f, "
                   "\"val_acc\": %.6f, \"val_f1\": %.6f, \"lr\": %.8f, \"seconds\": %.1f, \"images_per_s\": %.1f, "
                   "\"skipped_steps\": %d}\n", s->epoch, s->train_loss, s->train_acc, s->train_f1, s->val_loss, s->val_acc,
                s->val_f1, s->lr, secs, ips, s->skipped_steps);
    else
        fprintf(f, "%d,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.8f,%.1f,%.1f,%d\n", s->epoch, s->train_loss, s->train_acc,
                s->train_f1, s->val_loss, s->val_acc, s->val_f1, s->lr, secs, ips, s->skipped_steps);
    fflush(f);
}

static double monitored(int monitor, const fer_epoch_stats *s)
{
    return monitor == FER_MONITOR_LOSS ? -s->val_loss : monitor == FER_MONITOR_F1 ? s->val_f1 : s->val_acc;
}

int main(int argc, char **argv)
{
    static const char *const monitor_names[] = { "accuracy", "loss", "macro F1" };
    fer_train_config c;
    options o;
    fer_dataset tr, va;
    fer_model m;
    fer_trainer t;
    fer_epoch_stats st;
    bar b;
    char ckpath[4200];
    FILE *logf = NULL;
    int rc, json = 0, K, resumed = 0;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    memset(&o, 0, sizeof o);
    memset(&tr, 0, sizeof tr);
    memset(&va, 0, sizeof va);
    memset(&m, 0, sizeof m);
    memset(&t, 0, sizeof t);
    fer_train_config_defaults(&c);
    c.threads = cores > 0 ? (cores > 64 ? 64 : (int)cores) : 1;
    if ((rc = parse(argc, argv, &c, &o)) != 0) return rc < 0 ? 0 : rc;
    if (fer_train_config_check(&c, t.error) != FER_OK) { fprintf(stderr, "fer-train: %s\n", t.error); return 2; }
    {   /* a misspelt model costs nothing: check it before loading the data */
        int z, found = 0;
        for (z = 0; z < fer_zoo_count(); z++) found |= !strcmp(fer_zoo_name(z), o.model);
        if (!found) {
            fprintf(stderr, "fer-train: unknown model '%s'; the zoo has:", o.model);
            for (z = 0; z < fer_zoo_count(); z++) fprintf(stderr, " %s", fer_zoo_name(z));
            fprintf(stderr, " (build/fer-zoo describes them)\n");
            return 2;
        }
    }
    if (!load_data(&o, &tr, &va, c.threads, c.seed)) { rc = 1; goto out; }
    K = tr.n_classes;
    if (o.n_weights && o.n_weights != K) {
        fprintf(stderr, "fer-train: --class-weights has %d values, the data %d classes\n", o.n_weights, K);
        rc = 2; goto out;
    }
    if (o.oversample || o.oversample_max) {
        int counts[FER_MAX_CLASSES], k, target = o.oversample, before = tr.n;
        fer_dataset_class_counts(&tr, counts);
        if (o.oversample_max) for (k = 0; k < K; k++) if (counts[k] > target) target = counts[k];
        if (fer_dataset_oversample(&tr, target, &c.augment, c.seed) != FER_OK) { fprintf(stderr, "fer-train: %s\n", tr.error); rc = 1; goto out; }
        printf("oversampled rarer classes to %d images each: %d -> %d training images\n", target, before, tr.n);
    }
    printf("train: %d images, val: %d images, %d classes, %d threads\n", tr.n, va.n, K, c.threads);
    if (fer_zoo_build(&m, o.model, 1, o.input, o.input, K, c.seed, NULL) != FER_OK) { fprintf(stderr, "fer-train: %s\n", m.error); rc = 2; goto out; }
    memcpy(m.class_names, tr.class_names, sizeof(m.class_names));
    if (fer_trainer_init(&t, &m, &c, &tr, NULL) != FER_OK) { fprintf(stderr, "fer-train: %s\n", t.error); rc = 1; goto out; }
    if (o.ckpt) {
        struct stat sb;
        if (mkdir(o.ckpt, 0755) != 0 && errno != EEXIST) { fprintf(stderr, "fer-train: cannot create %s: %s\n", o.ckpt, strerror(errno)); rc = 1; goto out; }
        snprintf(ckpath, sizeof ckpath, "%s/last.ferc", o.ckpt);
        if (stat(ckpath, &sb) == 0) {
            if (fer_trainer_load(&t, ckpath) != FER_OK) {
                fprintf(stderr, "fer-train: cannot resume: %s\n(move it away to start afresh)\n", t.error);
                rc = 1; goto out;
            }
            resumed = 1;
            printf("resumed from %s after epoch %d (best val %s %.4f at epoch %d)\n", ckpath, t.epoch,
                   monitor_names[c.monitor], c.monitor == FER_MONITOR_LOSS ? -t.best : t.best, t.best_epoch);
            if (t.epoch >= c.epochs || t.stop)
                printf("that run is complete (%s): nothing to train; give a larger --epochs to go on\n",
                       t.stop ? "it stopped early" : "all its epochs are done");
        }
    }
    json = o.log_format ? !strcmp(o.log_format, "json") : o.log && (ends_with(o.log, ".jsonl") || ends_with(o.log, ".json"));
    if (o.log) {
        if (!(logf = fopen(o.log, resumed ? "a" : "w"))) { fprintf(stderr, "fer-train: cannot write %s: %s\n", o.log, strerror(errno)); rc = 1; goto out; }
        if (!resumed && !json) fprintf(logf, "epoch,train_loss,train_acc,train_f1,val_loss,val_acc,val_f1,lr,seconds,images_per_s,skipped_steps\n");
    }
    b.on = o.progress ? !strcmp(o.progress, "always") || (!strcmp(o.progress, "auto") && isatty(1)) : isatty(1);
    b.batch = c.batch; b.epochs = c.epochs;
    while (t.epoch < c.epochs && !t.stop) {
        double t0 = now(), secs;
        b.t0 = t0; b.last = 0.0;
        if (fer_trainer_epoch(&t, &tr, &va, &st, progress, &b) != FER_OK) {
            fprintf(stderr, "%sfer-train: %s\n", b.on ? "\n" : "", t.error);
            fprintf(stderr, "fer-train: stopped; %s keeps the best model so far%s\n", o.out, o.ckpt ? ", the checkpoint the last good epoch" : "");
            rc = 1; goto out;
        }
        secs = now() - t0;
        printf("%sepoch %d/%d  train loss %.4f acc %.4f  val loss %.4f acc %.4f f1 %.4f  lr %.5f  %.0fs  %.0f img/s%s%s\n",
               b.on ? "\r\033[K" : "", st.epoch, c.epochs, st.train_loss, st.train_acc, st.val_loss, st.val_acc, st.val_f1,
               st.lr, secs, (double)t.steps_per_epoch * c.batch / secs, st.improved ? "  *" : "",
               st.skipped_steps ? "  (skipped non-finite steps)" : "");
        fflush(stdout);
        log_epoch(logf, json, &st, secs, (double)t.steps_per_epoch * c.batch / secs);
        if (st.improved && fer_model_save(&m, o.out) != FER_OK) { fprintf(stderr, "fer-train: %s\n", m.error); rc = 1; goto out; }
        if (o.ckpt && fer_trainer_save(&t, ckpath) != FER_OK) { fprintf(stderr, "fer-train: checkpoint: %s\n", t.error); rc = 1; goto out; }
        if (st.stop) printf("early stopping: no better val %s for %d epoch%s\n", monitor_names[c.monitor], c.early_stop, c.early_stop == 1 ? "" : "s");
    }
    if (t.best_epoch == 0) { fprintf(stderr, "fer-train: no epoch was validated\n"); rc = 1; goto out; }
    if (c.swa) {
        /* the average against the best single epoch, on val: the better one is kept */
        double best = t.best, avg;
        if (fer_trainer_finish(&t, &tr) != FER_OK) { fprintf(stderr, "fer-train: %s\n", t.error); rc = 1; goto out; }
        {
            fer_epoch_stats sv;
            if (fer_trainer_validate(&t, &va, &sv) != FER_OK) {
                fprintf(stderr, "fer-train: evaluating the averaged model: %s\n", t.error);
                rc = 1; goto out;
            }
            avg = monitored(c.monitor, &sv);
            printf("%s weight average of %ld epoch%s: val loss %.4f acc %.4f f1 %.4f\n", c.swa == FER_SWA_EMA ? "EMA" : "SWA",
                   t.swa.count, t.swa.count == 1 ? "" : "s", sv.val_loss, sv.val_acc, sv.val_f1);
        }
        if (avg > best) {
            if (fer_model_save(&m, o.out) != FER_OK) { fprintf(stderr, "fer-train: %s\n", m.error); rc = 1; goto out; }
            printf("the averaged model is better than epoch %d: written to %s\n", t.best_epoch, o.out);
        } else printf("epoch %d stays the best: %s unchanged\n", t.best_epoch, o.out);
    }
    printf("best val %s %.4f at epoch %d, model in %s\n", monitor_names[c.monitor],
           c.monitor == FER_MONITOR_LOSS ? -t.best : t.best, t.best_epoch, o.out);
    rc = 0;
out:    /* every path after the data are loaded frees what it holds */
    if (logf) fclose(logf);
    fer_trainer_free(&t);
    fer_model_free(&m);
    fer_dataset_free(&tr);
    fer_dataset_free(&va);
    return rc;
}
