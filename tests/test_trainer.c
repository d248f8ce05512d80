/* test_trainer: losses against hand values and finite differences, schedules
   against the sequences PyTorch produces, weight averaging, pooled BN
   statistics, and the training loop: it learns, it is deterministic, a resumed
   run equals an uninterrupted one, non-finite steps are named or skipped, and
   checkpoints reject corruption and mismatches. */
#define _POSIX_C_SOURCE 200809L
#define FER_IMPLEMENTATION
#include "fer.h"
#include "test.h"

static void test_losses(void)
{
    float z[6] = { 1.0f, -0.5f, 0.25f, 0.0f, 2.0f, -1.0f }, d[6], d2[6];
    int lab[2] = { 2, 1 }, s, j;
    float w[3] = { 0.5f, 2.0f, 1.0f };
    fer_loss L;
    double ce, ref = 0.0, fl;
    memset(&L, 0, sizeof(L));
    /* plain cross-entropy: the sum of -ln p_y, and the gradient of the sum / norm */
    ce = fer_loss_eval(&L, z, lab, 2, 3, 2.0f, d);
    for (s = 0; s < 2; s++) {
        double sum = 0.0;
        for (j = 0; j < 3; j++) sum += exp(z[s * 3 + j]);
        ref -= log(exp(z[s * 3 + lab[s]]) / sum);
    }
    CHECK(fabs(ce - ref) < 1e-6, "cross-entropy sum %.7f, expected %.7f", ce, ref);
    CHECK(fabs(ce / 2.0 - fer_softmax_xent(z, lab, 2, 3, 0.0f, 2.0f, d2)) < 1e-6, "agrees with fer_softmax_xent");
    for (j = 0; j < 6; j++) CHECK(fabsf(d[j] - d2[j]) < 1e-6f, "same gradient at %d", j);
    /* class weights multiply each sample's loss and gradient */
    L.class_weight = w;
    ce = fer_loss_eval(&L, z, lab, 2, 3, 1.0f, d);
    CHECK(fabs(ce - (1.0 * (-log(exp(0.25) / (exp(1.0) + exp(-0.5) + exp(0.25)))) +
                     2.0 * (-log(exp(2.0) / (1.0 + exp(2.0) + exp(-1.0)))))) < 1e-5, "weighted sum %.6f", ce);
    /* focal loss, hand value: p = softmax(z)[y], FL = -(1-p)^2 ln p */
    L.class_weight = NULL; L.focal_gamma = 2.0f;
    fl = fer_loss_eval(&L, z, lab, 1, 3, 1.0f, d);
    {
        double p = exp(0.25) / (exp(1.0) + exp(-0.5) + exp(0.25));
        CHECK(fabs(fl - (-(1.0 - p) * (1.0 - p) * log(p))) < 1e-6, "focal loss %.7f", fl);
    }
    /* focal and weighted focal gradients against central differences */
    for (s = 0; s < 2; s++) {
        L.class_weight = s ? w : NULL;
        fer_loss_eval(&L, z, lab, 2, 3, 1.0f, d);
        for (j = 0; j < 6; j++) {
            float keep = z[j];
            double up, dn;
            z[j] = keep + 1e-3f; up = fer_loss_eval(&L, z, lab, 2, 3, 1.0f, NULL);
            z[j] = keep - 1e-3f; dn = fer_loss_eval(&L, z, lab, 2, 3, 1.0f, NULL);
            z[j] = keep;
            CHECK(fabs((up - dn) / 2e-3 - d[j]) < 1e-3, "focal gradient %d (weighted %d): %.6f vs %.6f", j, s, d[j], (up - dn) / 2e-3);
        }
    }
    /* gamma 0 is cross-entropy */
    L.class_weight = NULL; L.focal_gamma = 1e-9f;
    CHECK(fabs(fer_loss_eval(&L, z, lab, 2, 3, 1.0f, NULL) - ref) < 1e-5, "focal with gamma ~0 is cross-entropy");
    {
        int counts[4] = { 10, 30, 0, 60 };
        float bw[4];
        fer_class_weights_balanced(counts, 4, bw);
        CHECK(fabsf(bw[0] - 100.0f / 30.0f) < 1e-5f && fabsf(bw[1] - 100.0f / 90.0f) < 1e-5f && bw[2] == 0.0f &&
              fabsf(bw[3] - 100.0f / 180.0f) < 1e-5f, "balanced weights n/(k c): %g %g %g %g", bw[0], bw[1], bw[2], bw[3]);
    }
    {
        float g[3] = { 3.0f, 4.0f, 0.0f };
        double n = fer_clip_grad_norm(g, 3, 1.0f);
        CHECK(fabs(n - 5.0) < 1e-9 && fabsf(g[0] - 0.6f) < 1e-5f && fabsf(g[1] - 0.8f) < 1e-5f, "clip to norm 1: %g %g", g[0], g[1]);
        n = fer_clip_grad_norm(g, 3, 10.0f);
        CHECK(fabsf(g[0] - 0.6f) < 1e-5f, "no clip under the norm");
        n = fer_clip_grad_norm(g, 3, 0.0f);
        CHECK(fabs(n - 1.0) < 1e-5, "max 0 only measures");
        g[2] = NAN;
        CHECK(!(fer_clip_grad_norm(g, 3, 1.0f) == fer_clip_grad_norm(g, 3, 1.0f)), "a NaN gradient gives a NaN norm");
    }
}

/* Sequences as torch.optim.lr_scheduler prints them (epochs 0..), one step per epoch. */
static void test_schedules(void)
{
    fer_schedule s;
    char err[256];
    int e;
    fer_schedule_init(&s, FER_SCHED_STEP, 0.1f, 10);
    s.step_size = 3; s.gamma = 0.5f;
    for (e = 0; e < 10; e++)
        CHECK(fabsf(fer_schedule_lr(&s, e, 0, 1) - 0.1f * powf(0.5f, (float)(e / 3))) < 1e-7f, "StepLR epoch %d", e);
    fer_schedule_init(&s, FER_SCHED_MULTISTEP, 1.0f, 10);
    s.milestones[0] = 2; s.milestones[1] = 5; s.n_milestones = 2; s.gamma = 0.1f;
    {
        const float want[7] = { 1.0f, 1.0f, 0.1f, 0.1f, 0.1f, 0.01f, 0.01f };
        for (e = 0; e < 7; e++) CHECK(fabsf(fer_schedule_lr(&s, e, 0, 1) - want[e]) < 1e-7f, "MultiStepLR epoch %d: %g", e, fer_schedule_lr(&s, e, 0, 1));
    }
    /* cosine over 4 epochs of 2 steps, min 0.1, no warm-up: t = step / 8 */
    fer_schedule_init(&s, FER_SCHED_COSINE, 1.0f, 4);
    s.min_lr = 0.1f;
    for (e = 0; e < 8; e++) {
        double want = 0.1 + 0.9 * 0.5 * (1.0 + cos(3.14159265358979 * e / 8.0));
        CHECK(fabs(fer_schedule_lr(&s, e / 2, e % 2, 2) - want) < 1e-6, "cosine step %d", e);
    }
    /* warm-up: linear over the first epoch's steps, then the cosine from the top */
    s.warmup_epochs = 1;
    CHECK(fabsf(fer_schedule_lr(&s, 0, 0, 4) - 0.25f) < 1e-7f && fabsf(fer_schedule_lr(&s, 0, 3, 4) - 1.0f) < 1e-7f,
          "warm-up ramps lr/4 .. lr");
    CHECK(fabsf(fer_schedule_lr(&s, 1, 0, 4) - 1.0f) < 1e-6f, "cosine starts at lr after the warm-up");
    CHECK(fabsf(fer_schedule_lr(&s, 3, 3, 4) - (float)(0.1 + 0.45 * (1.0 + cos(3.14159265358979 * 11.0 / 12.0)))) < 1e-6f, "cosine near its end");
    /* ReduceLROnPlateau(factor 0.5, patience 2): values 1, .9, .95, .95, .95 -> cut after the third bad epoch */
    fer_schedule_init(&s, FER_SCHED_PLATEAU, 0.1f, 10);
    s.patience = 2; s.factor = 0.5f; s.min_lr = 0.02f;
    {
        const double v[9] = { 1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95 };
        const float want[9] = { 0.1f, 0.1f, 0.1f, 0.1f, 0.05f, 0.05f, 0.05f, 0.025f, 0.025f };
        int cut[9] = { 0, 0, 0, 0, 1, 0, 0, 1, 0 };
        for (e = 0; e < 9; e++) {
            int c = fer_schedule_epoch_end(&s, v[e]);
            CHECK(c == cut[e] && fabsf(fer_schedule_lr(&s, e + 1, 0, 1) - want[e]) < 1e-7f,
                  "plateau after epoch %d: cut %d lr %g", e, c, fer_schedule_lr(&s, e + 1, 0, 1));
        }
        for (e = 0; e < 6; e++) fer_schedule_epoch_end(&s, 0.95);
        CHECK(fabsf(fer_schedule_lr(&s, 20, 0, 1) - 0.02f) < 1e-7f, "plateau stops at min_lr");
        CHECK(fer_schedule_epoch_end(&s, NAN) == 0, "NaN is no improvement and no crash");
    }
    fer_schedule_init(&s, FER_SCHED_CONSTANT, 0.01f, 5);
    CHECK(fer_schedule_lr(&s, 4, 9, 10) == 0.01f, "constant");
    CHECK(fer_schedule_check(&s, err) == FER_OK, "a valid schedule passes");
    s.lr = -1.0f;
    CHECK(fer_schedule_check(&s, err) == FER_ERR_ARG && strstr(err, "learning rate"), "negative lr named: %s", err);
    fer_schedule_init(&s, FER_SCHED_MULTISTEP, 0.1f, 10);
    s.milestones[0] = 5; s.milestones[1] = 3; s.n_milestones = 2;
    CHECK(fer_schedule_check(&s, err) == FER_ERR_ARG && strstr(err, "ascending"), "milestones out of order: %s", err);
    fer_schedule_init(&s, FER_SCHED_COSINE, 0.1f, 3);
    s.warmup_epochs = 3;
    CHECK(fer_schedule_check(&s, err) == FER_ERR_ARG && strstr(err, "warm-up"), "warm-up as long as the run: %s", err);
}

static void test_swa(void)
{
    fer_swa s;
    float x[2];
    CHECK(fer_swa_init(&s, FER_SWA_EMA, 0.9f, 2, NULL) == FER_OK, "EMA init");
    x[0] = 1.0f; x[1] = 2.0f; fer_swa_update(&s, x);
    CHECK(s.avg[0] == 1.0f && s.avg[1] == 2.0f, "the first update copies");
    x[0] = 2.0f; x[1] = 0.0f; fer_swa_update(&s, x);
    CHECK(fabsf(s.avg[0] - 1.1f) < 1e-6f && fabsf(s.avg[1] - 1.8f) < 1e-6f, "0.9 avg + 0.1 x: %g %g", s.avg[0], s.avg[1]);
    fer_swa_free(&s);
    CHECK(fer_swa_init(&s, FER_SWA_UNIFORM, 0.0f, 2, NULL) == FER_OK, "SWA init");
    x[0] = 1.0f; fer_swa_update(&s, x);
    x[0] = 2.0f; fer_swa_update(&s, x);
    x[0] = 6.0f; fer_swa_update(&s, x);
    CHECK(fabsf(s.avg[0] - 3.0f) < 1e-6f && s.count == 3, "uniform mean of 1, 2, 6: %g", s.avg[0]);
    fer_swa_free(&s);
    CHECK(fer_swa_init(&s, FER_SWA_EMA, 1.5f, 2, NULL) == FER_ERR_ARG, "decay 1.5 refused");
}

/* The running statistics from two shards equal those from the whole batch. */
static void test_pooled_bn(void)
{
    fer_model a, b;
    fer_workspace w1, w2[2];
    float x[6 * 2 * 3 * 3];
    int i;
    unsigned long long seed = 11;
    for (i = 0; i < 2; i++) {
        fer_model *m = i ? &b : &a;
        fer_model_init(m, 2, 3, 3, 2, NULL);
        fer_dense(m, fer_flatten(m, fer_bn(m, FER_INPUT)), 2, 1);
        fer_model_finalize(m, 1);
    }
    test_fill(x, sizeof(x) / sizeof(x[0]), seed, 2.0f);
    for (i = 0; i < 18; i++) x[i] += 3.0f;            /* shards with different means */
    fer_workspace_init(&w1, &a, 6, 1);
    fer_forward(&a, &w1, x, 6, 1);
    fer_bn_update_running(&a, &w1);
    fer_workspace_init(&w2[0], &b, 5, 1);
    fer_workspace_init(&w2[1], &b, 5, 1);
    fer_forward(&b, &w2[0], x, 1, 1);
    fer_forward(&b, &w2[1], x + 18, 5, 1);
    fer_bn_update_running_pooled(&b, w2, 2, -1.0f);
    for (i = 0; i < 4; i++)
        CHECK(fabsf(a.buffers[i] - b.buffers[i]) < 1e-5f, "pooled running stat %d: %g vs %g", i, b.buffers[i], a.buffers[i]);
    fer_workspace_free(&w1); fer_workspace_free(&w2[0]); fer_workspace_free(&w2[1]);
    fer_model_free(&a); fer_model_free(&b);
}

/* Four classes: which quadrant of a noisy 16x16 image is bright. */
enum { S = 16, NTRAIN = 384, NVAL = 96 };
static void make_quadrants(fer_dataset *d, int n, unsigned long long seed)
{
    int i, y, x;
    memset(d, 0, sizeof(*d));
    d->pixels = (unsigned char *)malloc((size_t)n * S * S);
    d->labels = (int *)malloc(sizeof(int) * (size_t)n);
    d->n = n; d->h = S; d->w = S; d->n_classes = 4;
    for (i = 0; i < 4; i++) snprintf(d->class_names[i], FER_NAME_LEN, "q%d", i);
    for (i = 0; i < n; i++) {
        d->labels[i] = i % 4;
        for (y = 0; y < S; y++)
            for (x = 0; x < S; x++) {
                int q = (y >= S / 2) * 2 + (x >= S / 2);
                float v = 90.0f + 50.0f * test_rand(&seed) + (q == d->labels[i] ? 100.0f : 0.0f);
                d->pixels[((size_t)i * S + y) * S + x] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    }
}

static void build_net(fer_model *m, uint64_t seed)
{
    int h;
    fer_model_init(m, 1, S, S, 4, NULL);
    h = fer_conv_bn_act(m, FER_INPUT, 8, 3, 1, FER_OP_RELU);
    h = fer_maxpool(m, h, 2, 2, 0);
    h = fer_conv_bn_act(m, h, 8, 3, 1, FER_OP_RELU);
    h = fer_dropout(m, fer_gap(m, h), 0.1f);
    fer_dense(m, h, 4, 1);
    snprintf(m->arch, FER_NAME_LEN, "quadnet");
    fer_model_finalize(m, seed);
}

static void small_config(fer_train_config *c, int epochs, int threads)
{
    fer_train_config_defaults(c);
    c->epochs = epochs; c->batch = 32; c->threads = threads; c->seed = 7;
    c->schedule.epochs = epochs; c->schedule.lr = 0.01f; c->schedule.warmup_epochs = 1;
    c->augment.flip = 0;                 /* a mirror moves the bright quadrant */
    c->augment.rotate = 5.0f; c->augment.erase_prob = 0.0f;
}

/* Runs `epochs` epochs; returns the final stats. */
static fer_result run_epochs(fer_trainer *t, const fer_dataset *tr, const fer_dataset *va, int epochs, fer_epoch_stats *st)
{
    int e;
    fer_result r = FER_OK;
    for (e = 0; e < epochs && r == FER_OK; e++) r = fer_trainer_epoch(t, tr, va, st, NULL, NULL);
    return r;
}

/* Accuracy of m on d in inference mode. */
static double accuracy(const fer_model *m, const fer_dataset *d)
{
    float *probs = (float *)malloc(sizeof(float) * (size_t)d->n * m->n_classes);
    fer_metrics *mt = (fer_metrics *)malloc(sizeof(fer_metrics));
    char err[256];
    double acc = -1.0;
    if (probs && mt && fer_predict_dataset(m, d, FER_TTA_NONE, 2, probs, NULL, err) == FER_OK &&
        fer_metrics_compute(mt, probs, d->labels, d->n, m->n_classes, 0.5f, NULL) == FER_OK)
        acc = mt->accuracy;
    free(probs); free(mt);
    return acc;
}

static int progress_calls;
static void count_progress(void *user, int epoch, int step, int steps, double loss, double acc)
{
    (void)user; (void)epoch; (void)loss; (void)acc;
    if (step >= 1 && step <= steps) progress_calls++;
}

static void test_loop(void)
{
    fer_dataset tr, va;
    fer_model m, m2;
    fer_trainer t, t2;
    fer_train_config c;
    fer_epoch_stats st, first;
    void *ck = NULL;
    size_t ck_len = 0;
    int e;
    char err[256];
    make_quadrants(&tr, NTRAIN, 1);
    make_quadrants(&va, NVAL, 2);

    /* it learns: 90% validation accuracy in a few epochs */
    build_net(&m, 3);
    small_config(&c, 6, 2);
    CHECK(fer_trainer_init(&t, &m, &c, &tr, NULL) == FER_OK, "trainer init: %s", t.error);
    CHECK(fer_trainer_epoch(&t, &tr, &va, &first, count_progress, NULL) == FER_OK, "epoch 1: %s", t.error);
    CHECK(progress_calls == NTRAIN / 32, "progress after every step (%d)", progress_calls);
    CHECK(run_epochs(&t, &tr, &va, 5, &st) == FER_OK, "epochs 2-6: %s", t.error);
    CHECK(st.train_loss < first.train_loss * 0.75, "training loss falls: %.4f -> %.4f", first.train_loss, st.train_loss);
    CHECK(st.train_f1 > 0.5 && st.train_f1 <= 1.0 && fabs(st.train_f1 - st.train_acc) < 0.1,
          "training macro F1 %.3f beside accuracy %.3f (four balanced classes)", st.train_f1, st.train_acc);
    CHECK(accuracy(&m, &tr) > 0.9, "training accuracy (inference mode) %.3f > 0.9", accuracy(&m, &tr));
    CHECK(st.val_acc > 0.9, "validation accuracy %.3f > 0.9", st.val_acc);
    CHECK(st.val_f1 > 0.85 && st.val_loss < first.val_loss, "macro F1 %.3f, val loss %.3f -> %.3f", st.val_f1, first.val_loss, st.val_loss);
    CHECK(fer_trainer_epoch(&t, &tr, &va, &st, NULL, NULL) == FER_ERR_ARG && strstr(t.error, "over"), "no epoch past the end: %s", t.error);
    CHECK(m.pre.store_h == S && m.pre.crop_h == 0 && m.pre.norm == FER_NORM_UNIT, "the model keeps its preprocessing");
    CHECK(fer_trainer_finish(&t, &tr) == FER_OK, "finish");
    fer_trainer_free(&t);
    fer_model_free(&m);

    /* determinism, and a resumed run equal to an uninterrupted one, with every
       piece of state in play: plateau schedule, EMA averaging, class weights */
    {
        float *ref;
        int threads;
        for (threads = 1; threads <= 2; threads++) {
            small_config(&c, 4, threads);
            c.schedule.kind = FER_SCHED_PLATEAU; c.schedule.patience = 0; c.schedule.warmup_epochs = 0;
            c.swa = FER_SWA_EMA; c.swa_start = 1; c.class_weighting = FER_WEIGHT_BALANCED;
            c.augment.flip = 1; c.augment.erase_prob = 0.5f;
            build_net(&m, 5);
            fer_trainer_init(&t, &m, &c, &tr, NULL);
            CHECK(run_epochs(&t, &tr, &va, 4, &st) == FER_OK, "uninterrupted: %s", t.error);
            fer_trainer_finish(&t, &tr);
            ref = (float *)malloc(sizeof(float) * m.n_params);
            memcpy(ref, m.params, sizeof(float) * m.n_params);
            fer_trainer_free(&t);
            fer_model_free(&m);

            build_net(&m, 5);                       /* the same run again */
            fer_trainer_init(&t, &m, &c, &tr, NULL);
            run_epochs(&t, &tr, &va, 4, &st);
            fer_trainer_finish(&t, &tr);
            CHECK(!memcmp(ref, m.params, sizeof(float) * m.n_params), "%d threads: the same seed gives the same weights", threads);
            fer_trainer_free(&t);
            fer_model_free(&m);

            build_net(&m, 5);                       /* 2 epochs, checkpoint, stop */
            fer_trainer_init(&t, &m, &c, &tr, NULL);
            run_epochs(&t, &tr, &va, 2, &st);
            CHECK(fer_trainer_save_mem(&t, &ck, &ck_len) == FER_OK, "checkpoint: %s", t.error);
            fer_trainer_free(&t);
            fer_model_free(&m);
            build_net(&m2, 99);                     /* a fresh process: other initial weights */
            fer_trainer_init(&t2, &m2, &c, &tr, NULL);
            CHECK(fer_trainer_load_mem(&t2, ck, ck_len) == FER_OK, "resume: %s", t2.error);
            CHECK(t2.epoch == 2, "resumed at epoch %d", t2.epoch);
            CHECK(run_epochs(&t2, &tr, &va, 2, &st) == FER_OK, "epochs 3-4: %s", t2.error);
            fer_trainer_finish(&t2, &tr);
            CHECK(!memcmp(ref, m2.params, sizeof(float) * m2.n_params), "%d threads: resumed == uninterrupted, bit for bit", threads);
            free(ref);
            if (threads == 2) break;
            fer_trainer_free(&t2);
            fer_model_free(&m2);
            free(ck);
        }
        /* the checkpoint refuses corruption and mismatched runs */
        {
            unsigned char *b = (unsigned char *)ck;
            b[ck_len / 2] ^= 0x10;
            CHECK(fer_trainer_load_mem(&t2, ck, ck_len) == FER_ERR_FORMAT && strstr(t2.error, "CRC"), "bit flip: %s", t2.error);
            b[ck_len / 2] ^= 0x10;
            CHECK(fer_trainer_load_mem(&t2, ck, ck_len - 9) == FER_ERR_FORMAT, "truncated: %s", t2.error);
            CHECK(fer_trainer_load_mem(&t2, ck, 3) == FER_ERR_FORMAT && strstr(t2.error, "FERC"), "too short: %s", t2.error);
            b[0] = 'X';
            CHECK(fer_trainer_load_mem(&t2, ck, ck_len) == FER_ERR_FORMAT && strstr(t2.error, "magic"), "bad magic: %s", t2.error);
            b[0] = 'F';
            fer_trainer_free(&t2);
            c.seed = 8;
            fer_trainer_init(&t2, &m2, &c, &tr, NULL);
            CHECK(fer_trainer_load_mem(&t2, ck, ck_len) == FER_ERR_ARG && strstr(t2.error, "seed 7"), "another seed: %s", t2.error);
            fer_trainer_free(&t2);
            fer_model_free(&m2);
            c.seed = 7;
            fer_model_init(&m2, 1, S, S, 4, NULL);          /* another architecture */
            fer_dense(&m2, fer_flatten(&m2, FER_INPUT), 4, 1);
            fer_model_finalize(&m2, 1);
            fer_trainer_init(&t2, &m2, &c, &tr, NULL);
            CHECK(fer_trainer_load_mem(&t2, ck, ck_len) == FER_ERR_ARG && strstr(t2.error, "quadnet"), "another model: %s", t2.error);
            fer_trainer_free(&t2);
            fer_model_free(&m2);
#ifndef FER_NO_STDIO
            {
                const char *tmp = getenv("TMPDIR");
                char path[512];
                FILE *f;
                snprintf(path, sizeof path, "%s/fer_ckpt_test.ferc", tmp && *tmp ? tmp : "/tmp");
                build_net(&m2, 5);
                fer_trainer_init(&t2, &m2, &c, &tr, NULL);
                CHECK(fer_trainer_save(&t2, path) == FER_OK, "save to %s: %s", path, t2.error);
                CHECK(fer_trainer_load(&t2, path) == FER_OK, "load back: %s", t2.error);
                f = fopen(path, "wb"); if (f) { fputs("garbage", f); fclose(f); }
                CHECK(fer_trainer_load(&t2, path) == FER_ERR_FORMAT && strstr(t2.error, path), "garbage file named: %s", t2.error);
                remove(path);
                CHECK(fer_trainer_load(&t2, path) == FER_ERR_IO && strstr(t2.error, "cannot open"), "missing file: %s", t2.error);
                fer_trainer_free(&t2);
                fer_model_free(&m2);
            }
#endif
            free(ck);
        }
    }

    /* a non-finite step is named (the layer) or skipped; the weights stay finite */
    build_net(&m, 3);
    small_config(&c, 2, 2);
    fer_trainer_init(&t, &m, &c, &tr, NULL);
    m.params[m.nodes[5].p_off] = NAN;             /* node 5: the second conv */
    CHECK(m.nodes[5].op == FER_OP_CONV, "node 5 is a conv");
    CHECK(fer_trainer_epoch(&t, &tr, &va, &st, NULL, NULL) == FER_ERR_NUMERIC && strstr(t.error, "node 5 (conv"),
          "non-finite output named: %s", t.error);
    CHECK(fer_trainer_epoch(&t, &tr, &va, &st, NULL, NULL) == FER_ERR_NUMERIC, "and again, the run does not go on silently");
    fer_trainer_free(&t);
    c.skip_nonfinite = 1;
    fer_trainer_init(&t, &m, &c, &tr, NULL);
    CHECK(fer_trainer_epoch(&t, &tr, &va, &st, NULL, NULL) == FER_ERR_NUMERIC && strstr(t.error, "every step"),
          "all steps skipped is an error: %s", t.error);
    fer_trainer_free(&t);
    fer_model_free(&m);

    /* early stopping with restore-best: a rate so small nothing improves */
    build_net(&m, 3);
    small_config(&c, 10, 1);
    c.schedule.lr = 1e-9f; c.early_stop = 2; c.monitor = FER_MONITOR_LOSS; c.min_delta = 1.0f;
    fer_trainer_init(&t, &m, &c, &tr, NULL);
    for (e = 0; e < 10 && !t.stop; e++) fer_trainer_epoch(&t, &tr, &va, &st, NULL, NULL);
    CHECK(t.stop && t.epoch == 3 && t.best_epoch == 1, "stopped after 2 epochs without progress (epoch %d, best %d)", t.epoch, t.best_epoch);
    CHECK(fer_trainer_epoch(&t, &tr, &va, &st, NULL, NULL) == FER_ERR_ARG, "no epoch after the stop");
    fer_trainer_finish(&t, &tr);
    CHECK(!memcmp(m.arena, t.best_arena, sizeof(float) * (m.n_params + m.n_buffers)), "restore-best loads epoch 1's weights");
    fer_trainer_free(&t);
    fer_model_free(&m);

    /* SWA: the mean of the epochs' weights, then BN statistics recomputed */
    build_net(&m, 3);
    small_config(&c, 3, 2);
    c.swa = FER_SWA_UNIFORM; c.swa_start = 1; c.swa_lr = 0.005f;
    fer_trainer_init(&t, &m, &c, &tr, NULL);
    run_epochs(&t, &tr, &va, 3, &st);
    CHECK(t.swa.count == 2 && fabs(st.lr - 0.005) < 1e-9, "two epochs averaged at the SWA rate (%ld, lr %g)", t.swa.count, st.lr);
    {
        size_t bn = m.nodes[2].b_off;
        float before = m.buffers[bn];
        CHECK(fer_trainer_finish(&t, &tr) == FER_OK, "finish: %s", t.error);
        CHECK(!memcmp(m.params, t.swa.avg, sizeof(float) * m.n_params), "the model holds the average");
        CHECK(m.buffers[bn] != before && m.buffers[bn] != t.swa.avg[m.n_params + bn], "BN running mean recomputed");
    }
    CHECK(accuracy(&m, &va) > 0.8, "the SWA model classifies (%.3f)", accuracy(&m, &va));
    CHECK(fer_trainer_validate(&t, &va, &st) == FER_OK && st.val_acc == accuracy(&m, &va) && st.val_loss > 0.0,
          "fer_trainer_validate scores the model as it stands (%.3f)", st.val_acc);
    fer_trainer_free(&t);
    fer_model_free(&m);

    /* bad setups are refused with a message */
    build_net(&m, 3);
    small_config(&c, 2, 2);
    c.batch = NTRAIN + 1;
    CHECK(fer_trainer_init(&t, &m, &c, &tr, NULL) == FER_ERR_ARG && strstr(t.error, "fewer than one batch"), "batch > data: %s", t.error);
    small_config(&c, 2, 2);
    c.focal_gamma = 2.0f;
    CHECK(fer_trainer_init(&t, &m, &c, &tr, NULL) == FER_ERR_ARG && strstr(t.error, "focal"), "focal + smoothing: %s", t.error);
    small_config(&c, 2, 2);
    c.augment.rotate = 500.0f;
    CHECK(fer_train_config_check(&c, err) == FER_ERR_ARG && strstr(err, "rotation"), "absurd rotation: %s", err);
    small_config(&c, 2, 2);
    c.swa = FER_SWA_UNIFORM; c.swa_start = 2;
    CHECK(fer_train_config_check(&c, err) == FER_ERR_ARG && strstr(err, "swa_start"), "SWA after the run: %s", err);
    small_config(&c, 2, 2);
    tr.labels[5] = 9;
    CHECK(fer_trainer_init(&t, &m, &c, &tr, NULL) == FER_ERR_ARG && strstr(t.error, "label 9"), "label out of range: %s", t.error);
    tr.labels[5] = 1;
    tr.h = 8;
    CHECK(fer_trainer_init(&t, &m, &c, &tr, NULL) == FER_ERR_SHAPE && strstr(t.error, "smaller"), "images smaller than the input: %s", t.error);
    tr.h = S;
    fer_model_free(&m);
    fer_dataset_free(&tr);
    fer_dataset_free(&va);
}

int main(void)
{
    test_losses();
    test_schedules();
    test_swa();
    test_pooled_bn();
    test_loop();
    return test_done("test_trainer");
}
