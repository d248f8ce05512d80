/* test_metrics: metrics against hand-computed values, temperature scaling, TTA
   views against fer_predict, t-SNE on separated clusters, and the report's
   pictures checked by real XML and SVG tools (xmllint, rsvg-convert: Debian's
   libxml2-utils and librsvg2-bin, which .ci/run installs; missing tools fail). */
#define _POSIX_C_SOURCE 200809L
#define FER_IMPLEMENTATION
#include "fer.h"
#include "test.h"
#include "tools/report.h"
#include <unistd.h>
#include <sys/stat.h>

#define NEAR(a, b, tol) (fabs((double)(a) - (double)(b)) <= (tol))

/* 8 samples, 5 classes. Class 2 is in the labels but never predicted, class 3 is
   predicted once but in no label, class 4 is in neither; sample 4 ties classes 0
   and 1 (argmax takes 0); the class-2 scores of samples 3 (negative) and 6
   (positive) tie at 0.15. Every expected number below is worked out by hand. */
static const float fixed_probs[8][5] = {
    { 0.7f, 0.1f, 0.1f, 0.1f, 0.0f },    /* label 0, predicted 0 */
    { 0.6f, 0.3f, 0.05f, 0.05f, 0.0f },  /* label 0, predicted 0 */
    { 0.3f, 0.6f, 0.05f, 0.05f, 0.0f },  /* label 0, predicted 1; label second */
    { 0.2f, 0.5f, 0.15f, 0.15f, 0.0f },  /* label 1, predicted 1 */
    { 0.4f, 0.4f, 0.1f, 0.1f, 0.0f },    /* label 1, predicted 0 (tie); label second */
    { 0.1f, 0.45f, 0.4f, 0.05f, 0.0f },  /* label 2, predicted 1; label second */
    { 0.5f, 0.1f, 0.15f, 0.25f, 0.0f },  /* label 2, predicted 0; label third */
    { 0.1f, 0.2f, 0.1f, 0.6f, 0.0f },    /* label 1, predicted 3; label second */
};
static const int fixed_labels[8] = { 0, 0, 0, 1, 1, 2, 2, 1 };

static void test_fixed(void)
{
    static fer_metrics mt;
    const double t = 1e-6;
    int expect_conf[5][5] = { { 2, 1, 0, 0, 0 }, { 1, 1, 0, 1, 0 }, { 1, 1, 0, 0, 0 }, { 0 }, { 0 } };
    int i, j, total = 0;
    CHECK(fer_metrics_compute(&mt, &fixed_probs[0][0], fixed_labels, 8, 5, 0.5f, NULL) == FER_OK, "%s", mt.error);
    CHECK(mt.n == 8 && mt.k == 5, "n %d k %d", mt.n, mt.k);
    CHECK(NEAR(mt.accuracy, 3.0 / 8, t), "accuracy %g", mt.accuracy);
    CHECK(NEAR(mt.top2_accuracy, 7.0 / 8, t), "top-2 accuracy %g", mt.top2_accuracy);
    for (i = 0; i < 5; i++)
        for (j = 0; j < 5; j++) CHECK(mt.confusion[i][j] == expect_conf[i][j], "confusion[%d][%d] = %d", i, j, mt.confusion[i][j]);
    CHECK(NEAR(mt.confusion_norm[0][0], 2.0 / 3, 1e-6) && NEAR(mt.confusion_norm[0][1], 1.0 / 3, 1e-6), "row 0 normalised");
    CHECK(NEAR(mt.confusion_norm[1][3], 1.0 / 3, 1e-6) && mt.confusion_norm[3][3] == 0.0f, "rows 1 and 3 normalised");
    /* support 3 3 2 0 0, predicted 4 3 0 1 0, true positives 2 1 0 0 0 */
    CHECK(mt.cls[0].support == 3 && mt.cls[1].support == 3 && mt.cls[2].support == 2 && mt.cls[3].support == 0, "support");
    CHECK(mt.cls[0].predicted == 4 && mt.cls[1].predicted == 3 && mt.cls[2].predicted == 0 && mt.cls[3].predicted == 1, "predicted");
    CHECK(NEAR(mt.cls[0].precision, 0.5, t) && NEAR(mt.cls[0].recall, 2.0 / 3, t) && NEAR(mt.cls[0].f1, 4.0 / 7, t),
          "class 0: %g %g %g", mt.cls[0].precision, mt.cls[0].recall, mt.cls[0].f1);
    CHECK(NEAR(mt.cls[1].precision, 1.0 / 3, t) && NEAR(mt.cls[1].recall, 1.0 / 3, t) && NEAR(mt.cls[1].f1, 1.0 / 3, t), "class 1");
    CHECK(mt.cls[2].precision == 0.0 && mt.cls[2].recall == 0.0 && mt.cls[2].f1 == 0.0, "never-predicted class: all 0");
    CHECK(mt.cls[3].precision == 0.0 && mt.cls[3].recall == 0.0 && mt.cls[3].f1 == 0.0, "class absent from labels: all 0");
    /* macro over classes 0-3 (class 4 is in neither labels nor predictions) */
    CHECK(NEAR(mt.macro_precision, (0.5 + 1.0 / 3) / 4, t), "macro precision %g", mt.macro_precision);
    CHECK(NEAR(mt.macro_recall, 0.25, t), "macro recall %g", mt.macro_recall);
    CHECK(NEAR(mt.macro_f1, 19.0 / 84, t), "macro F1 %g", mt.macro_f1);
    CHECK(NEAR(mt.weighted_precision, 0.3125, t), "weighted precision %g", mt.weighted_precision);
    CHECK(NEAR(mt.weighted_recall, 0.375, t), "weighted recall %g", mt.weighted_recall);
    CHECK(NEAR(mt.weighted_f1, 19.0 / 56, t), "weighted F1 %g", mt.weighted_f1);
    /* AUC: class 0 13/15; class 1 9/15; class 2 (6 + 5 + half a tie) / 12; 3 and 4 have no positive */
    CHECK(NEAR(mt.cls[0].auc, 13.0 / 15, t), "AUC 0 %g", mt.cls[0].auc);
    CHECK(NEAR(mt.cls[1].auc, 9.0 / 15, t), "AUC 1 %g", mt.cls[1].auc);
    CHECK(NEAR(mt.cls[2].auc, 11.5 / 12, t), "AUC 2 with a tie %g", mt.cls[2].auc);
    CHECK(mt.cls[3].auc != mt.cls[3].auc && mt.cls[4].auc != mt.cls[4].auc, "AUC without positives is NaN");
    CHECK(NEAR(mt.macro_auc, (13.0 / 15 + 9.0 / 15 + 11.5 / 12) / 3, t), "macro AUC %g", mt.macro_auc);
    /* confidence: right 0.7 0.6 0.5, wrong 0.6 0.4 0.45 0.5 0.6 */
    CHECK(NEAR(mt.conf_correct, 0.6, t) && NEAR(mt.conf_incorrect, 0.51, t), "mean confidence %g %g", mt.conf_correct, mt.conf_incorrect);
    CHECK(NEAR(mt.low_share, 0.25, t) && mt.low_accuracy == 0.0, "under 0.5: share %g accuracy %g", mt.low_share, mt.low_accuracy);
    CHECK(NEAR(mt.nll, -(log(0.7) + log(0.6) + log(0.3) + log(0.5) + 2 * log(0.4) + log(0.15) + log(0.2)) / 8, 1e-5), "NLL %g", mt.nll);
    /* bins: {0.7 right}, {0.6 right, 0.6 wrong, 0.6 wrong}, {0.5 right, 0.5 wrong}, {0.4, 0.45 wrong}:
       ECE = .3/8 + 3/8 |1/3 - .6| + 0 + (.4 + .45)/8 */
    CHECK(NEAR(mt.ece, 0.24375, 1e-6), "ECE %g", mt.ece);
    CHECK(mt.bin_count[10] == 1 && mt.bin_count[7] == 2, "bins 10 and 7: %d %d", mt.bin_count[10], mt.bin_count[7]);
    for (i = 0; i < FER_ECE_BINS; i++) total += mt.bin_count[i];
    CHECK(total == 8, "bins hold %d samples", total);
}

static void test_edges(void)
{
    static fer_metrics mt;
    float tied[4][2] = { { 0.5f, 0.5f }, { 0.5f, 0.5f }, { 0.5f, 0.5f }, { 0.5f, 0.5f } };
    float perfect[4][2] = { { 0.9f, 0.1f }, { 0.2f, 0.8f }, { 0.7f, 0.3f }, { 0.4f, 0.6f } };
    int lab[4] = { 0, 1, 0, 1 }, bad[4] = { 0, 1, 7, 1 };
    CHECK(fer_metrics_compute(&mt, &tied[0][0], lab, 4, 2, 0.5f, NULL) == FER_OK, "%s", mt.error);
    CHECK(NEAR(mt.cls[0].auc, 0.5, 1e-12) && NEAR(mt.cls[1].auc, 0.5, 1e-12), "all scores tied: AUC 0.5, not %g", mt.cls[0].auc);
    CHECK(NEAR(mt.accuracy, 0.5, 1e-12) && mt.cls[1].predicted == 0, "a tie predicts the first class");
    CHECK(mt.low_share == 0.0 && mt.low_accuracy != mt.low_accuracy, "none under the threshold: accuracy NaN");
    CHECK(fer_metrics_compute(&mt, &perfect[0][0], lab, 4, 2, 0.0f, NULL) == FER_OK, "%s", mt.error);
    CHECK(mt.accuracy == 1.0 && mt.macro_f1 == 1.0 && mt.cls[0].auc == 1.0 && mt.macro_auc == 1.0, "perfect");
    CHECK(mt.conf_incorrect != mt.conf_incorrect, "no wrong prediction: its mean confidence is NaN");
    CHECK(fer_metrics_compute(&mt, &perfect[0][0], bad, 4, 2, 0.5f, NULL) == FER_ERR_ARG &&
          strstr(mt.error, "label 7 of sample 2"), "bad label: %s", mt.error);
    perfect[3][1] = NAN;
    CHECK(fer_metrics_compute(&mt, &perfect[0][0], lab, 4, 2, 0.5f, NULL) == FER_ERR_NUMERIC &&
          strstr(mt.error, "sample 3"), "NaN: %s", mt.error);
    perfect[3][1] = 0.6f;
    CHECK(fer_metrics_compute(&mt, &perfect[0][0], lab, 0, 2, 0.5f, NULL) == FER_ERR_ARG, "no samples");
    CHECK(fer_metrics_compute(&mt, &perfect[0][0], lab, 4, 2, 1.5f, NULL) == FER_ERR_ARG &&
          strstr(mt.error, "threshold"), "threshold: %s", mt.error);
    CHECK(fer_metrics_compute(&mt, &perfect[0][0], lab, 4, FER_MAX_CLASSES + 1, 0.5f, NULL) == FER_ERR_ARG, "too many classes");
}

/* Labels drawn from softmax(z): the logits 3z are over-confident by exactly 3. */
static void test_temperature(void)
{
    enum { N = 4000, K = 5 };
    static float z[N * K], z3[N * K];
    static int lab[N];
    unsigned long long s = 7;
    float T = 0.0f, T1;
    double nll;
    int i, j;
    for (i = 0; i < N; i++) {
        double sum = 0.0, u, acc = 0.0;
        for (j = 0; j < K; j++) { z[i * K + j] = 2.0f * test_rand(&s); sum += exp(z[i * K + j]); z3[i * K + j] = 3.0f * z[i * K + j]; }
        u = 0.5 * (test_rand(&s) + 1.0f) * sum;
        lab[i] = K - 1;
        for (j = 0; j < K; j++) { acc += exp(z[i * K + j]); if (u < acc) { lab[i] = j; break; } }
    }
    CHECK(fer_fit_temperature(z3, lab, N, K, &T) == FER_OK, "fit");
    CHECK(T > 2.6f && T < 3.4f, "temperature %g, expected about 3", (double)T);
    nll = fer__nll_scaled(z3, lab, N, K, 1.0 / T);
    CHECK(nll <= fer__nll_scaled(z3, lab, N, K, 1.0 / (T * 1.05)) && nll <= fer__nll_scaled(z3, lab, N, K, 1.05 / T) &&
          nll < fer__nll_scaled(z3, lab, N, K, 1.0), "the fitted T is a minimum of the NLL");
    CHECK(fer_fit_temperature(z, lab, N, K, &T1) == FER_OK && T1 > 0.85f && T1 < 1.15f, "calibrated logits: T %g", (double)T1);
    lab[5] = K;
    CHECK(fer_fit_temperature(z, lab, N, K, &T1) == FER_ERR_ARG, "a bad label is refused");
}

/* fer_predict_dataset against fer_predict on the views built by hand. */
static void test_tta(void)
{
    fer_model m;
    fer_workspace ws;
    fer_dataset d;
    unsigned char img[2][48 * 48], big[52 * 52], view[48 * 48];
    float probs[2 * 7], logits[2 * 7], p[7], expect[7];
    char err[256];
    int h, w, i, j, k, v, y, x;
    unsigned long long s = 3;
    CHECK(fer_zoo_build(&m, "mini_xception", 1, 48, 48, 7, 5, NULL) == FER_OK, "%s", m.error);
    m.pre.temperature = 2.0f;
    CHECK(fer_workspace_init(&ws, &m, 1, 0) == FER_OK, "%s", ws.error);
    for (i = 0; i < 2 * 48 * 48; i++) img[i / 2304][i % 2304] = (unsigned char)(128.0f + 127.0f * test_rand(&s));
    memset(&d, 0, sizeof(d));
    d.pixels = &img[0][0]; d.n = 2; d.h = 48; d.w = 48; d.n_classes = 7;
    CHECK(fer_tta_views(FER_TTA_NONE) == 1 && fer_tta_views(FER_TTA_FLIP) == 2 && fer_tta_views(FER_TTA_TENCROP) == 10, "views");
    fer_tta_size(&m, FER_TTA_NONE, &h, &w);
    CHECK(h == 48 && w == 48, "plain size %dx%d", h, w);
    fer_tta_size(&m, FER_TTA_TENCROP, &h, &w);
    CHECK(h == 52 && w == 52, "ten-crop size of a 48x48 model %dx%d", h, w);
    for (v = 0; v < 3; v++) {
        fer_tta tta = (fer_tta)v;
        CHECK(fer_predict_dataset(&m, &d, tta, 2, probs, logits, err) == FER_OK, "tta %d: %s", v, err);
        for (i = 0; i < 2; i++) {
            double worst = 0.0, sum = 0.0;
            const unsigned char *src = img[i];
            int nv = fer_tta_views(tta);
            for (k = 0; k < 7; k++) expect[k] = 0.0f;
            if (tta == FER_TTA_TENCROP) { fer_resize_gray(img[i], 48, 48, big, 52, 52); src = big; }
            for (j = 0; j < nv; j++) {
                /* offsets of centre, top-left, top-right, bottom-left, bottom-right */
                int pos = tta == FER_TTA_TENCROP ? j % 5 : 0, mirror = tta == FER_TTA_TENCROP ? j / 5 : j;
                int side = tta == FER_TTA_TENCROP ? 52 : 48, oy = pos == 0 ? (side - 48) / 2 : pos <= 2 ? 0 : side - 48;
                int ox = pos == 0 ? (side - 48) / 2 : (pos == 1 || pos == 3) ? 0 : side - 48;
                for (y = 0; y < 48; y++)
                    for (x = 0; x < 48; x++) view[y * 48 + x] = src[(y + oy) * side + ox + (mirror ? 47 - x : x)];
                CHECK(fer_predict(&m, &ws, view, 48, 48, 48, p) >= 0, "%s", ws.error);
                for (k = 0; k < 7; k++) expect[k] += p[k] / (float)nv;
            }
            for (k = 0; k < 7; k++) {
                double e = fabs(expect[k] - probs[i * 7 + k]);
                if (e > worst) worst = e;
                sum += probs[i * 7 + k];
            }
            CHECK(worst < 2e-5, "tta %d image %d: probabilities differ from fer_predict's views by %g", v, i, worst);
            CHECK(NEAR(sum, 1.0, 1e-5), "probabilities sum to %g", sum);
        }
    }
    CHECK(fer_predict_dataset(&m, &d, (fer_tta)7, 1, probs, NULL, err) == FER_ERR_ARG && strstr(err, "augmentation"), "bad tta: %s", err);
    d.n = 0;
    CHECK(fer_predict_dataset(&m, &d, FER_TTA_NONE, 1, probs, NULL, err) == FER_ERR_ARG && strstr(err, "empty"), "empty: %s", err);
    fer_workspace_free(&ws);
    fer_model_free(&m);
}

/* Share of points whose k nearest neighbours in the embedding share their class. */
static double knn_purity(const float *y, const int *lab, int n, int k)
{
    int i, j, t, good = 0, total = 0;
    for (i = 0; i < n; i++) {
        int best[16];
        float bd[16];
        for (t = 0; t < k; t++) { best[t] = -1; bd[t] = 1e30f; }
        for (j = 0; j < n; j++) {
            float dx, dy, dd;
            if (j == i) continue;
            dx = y[2 * i] - y[2 * j]; dy = y[2 * i + 1] - y[2 * j + 1]; dd = dx * dx + dy * dy;
            for (t = k - 1; t >= 0 && dd < bd[t]; t--) {
                if (t + 1 < k) { bd[t + 1] = bd[t]; best[t + 1] = best[t]; }
                bd[t] = dd; best[t] = j;
            }
        }
        for (t = 0; t < k; t++) { good += lab[best[t]] == lab[i]; total++; }
    }
    return (double)good / total;
}

static void test_tsne(void)
{
    enum { N = 300, D = 10 };
    static float x[N * D], y[N * 2], y2[N * 2];
    static int lab[N];
    fer_tsne_params p;
    char err[256];
    unsigned long long s = 11;
    double pur;
    int i, j;
    for (i = 0; i < N; i++) {   /* three unit Gaussians (sum of uniforms), centres 8 apart */
        lab[i] = i % 3;
        for (j = 0; j < D; j++)
            x[i * D + j] = (j == lab[i] ? 8.0f : 0.0f) + 0.8f * (test_rand(&s) + test_rand(&s) + test_rand(&s));
    }
    fer_tsne_defaults(&p);
    p.iterations = 500;
    CHECK(fer_tsne(x, 150, D, &p, y, NULL, err) == FER_OK, "exact: %s", err);
    pur = knn_purity(y, lab, 150, 10);
    CHECK(pur > 0.95, "exact t-SNE: 10-NN purity %.3f", pur);
    CHECK(fer_tsne(x, 150, D, &p, y2, NULL, err) == FER_OK && !memcmp(y, y2, sizeof(float) * 300), "same seed, same map");
    p.exact_max = 0;                   /* Barnes-Hut */
    CHECK(fer_tsne(x, N, D, &p, y, NULL, err) == FER_OK, "Barnes-Hut: %s", err);
    pur = knn_purity(y, lab, N, 10);
    CHECK(pur > 0.95, "Barnes-Hut t-SNE: 10-NN purity %.3f", pur);
    for (i = 0; i < 2 * N; i++) if (!(y[i] - y[i] == 0.0f)) break;
    CHECK(i == 2 * N, "finite map");
    CHECK(fer_tsne(x, 1, D, &p, y, NULL, err) == FER_ERR_ARG && strstr(err, "2 points"), "one point: %s", err);
    p.perplexity = -1.0f;
    CHECK(fer_tsne(x, N, D, &p, y, NULL, err) == FER_ERR_ARG && strstr(err, "perplexity"), "perplexity: %s", err);
    fer_tsne_defaults(&p);
    x[7] = INFINITY;
    CHECK(fer_tsne(x, N, D, &p, y, NULL, err) == FER_ERR_NUMERIC && strstr(err, "point 0"), "infinity: %s", err);
}

/* Runs a shell command; 0 when it exits 0. */
static int sh(const char *cmd) { return system(cmd) == 0; }

/* The SVG parses as XML, renders with librsvg to a non-empty PNG, and that PNG
   is not one flat colour. */
static void check_svg(const char *dir, const char *name)
{
    char cmd[1024], png[600];
    unsigned char *px;
    int w = 0, h = 0, i, lo = 255, hi = 0;
    char err[256];
    snprintf(cmd, sizeof cmd, "xmllint --noout '%s/%s'", dir, name);
    CHECK(sh(cmd), "%s is not well-formed XML", name);
    snprintf(png, sizeof png, "%s/%s.render.png", dir, name);
    snprintf(cmd, sizeof cmd, "rsvg-convert -o '%s' '%s/%s'", png, dir, name);
    CHECK(sh(cmd), "rsvg-convert cannot render %s", name);
    px = fer_image_load_gray(png, &w, &h, err);
    CHECK(px != NULL && w > 100 && h > 100, "%s renders to %dx%d: %s", name, w, h, px ? "" : err);
    if (!px) return;
    for (i = 0; i < w * h; i++) { if (px[i] < lo) lo = px[i]; if (px[i] > hi) hi = px[i]; }
    CHECK(hi - lo > 100, "%s renders to a flat picture (grey %d..%d)", name, lo, hi);
    fer_image_free(px);
}

static void test_pictures(void)
{
    static fer_metrics mt;
    static rep_eval ev;
    char dir[] = "/tmp/fer_test_metrics_XXXXXX", path[600], err[256], made[8][64], cmd[700];
    char names[5][FER_NAME_LEN] = { "angry", "sad & <tired>", "fear", "happy", "neutral" };
    float xy[2 * 90];
    int lab[90], i, n_made = 0;
    unsigned long long s = 5;
    FILE *f;
    int have_xmllint = sh("command -v xmllint >/dev/null 2>&1"), have_rsvg = sh("command -v rsvg-convert >/dev/null 2>&1");
    CHECK(have_xmllint, "xmllint is missing: apt-get install libxml2-utils (.ci/run installs it)");
    CHECK(have_rsvg, "rsvg-convert is missing: apt-get install librsvg2-bin (.ci/run installs it)");
    if (!have_xmllint || !have_rsvg || !mkdtemp(dir)) return;

    /* the evaluation JSON round trip */
    CHECK(fer_metrics_compute(&mt, &fixed_probs[0][0], fixed_labels, 8, 5, 0.5f, NULL) == FER_OK, "%s", mt.error);
    snprintf(path, sizeof path, "%s/eval.json", dir);
    f = fopen(path, "w");
    CHECK(f != NULL, "cannot write %s", path);
    if (!f) return;
    rep_write_eval_json(f, &mt, names, "m \"1\".fer", "data\\val", "none", 1.0, NULL);
    fclose(f);
    CHECK(rep_read_eval(path, &ev, err), "%s", err);
    CHECK(ev.k == 5 && ev.n == 8 && NEAR(ev.accuracy, 0.375, 1e-6) && NEAR(ev.macro_f1, 19.0 / 84, 1e-6), "read back: k %d n %d", ev.k, ev.n);
    CHECK(!strcmp(ev.names[1], "sad & <tired>") && !strcmp(ev.model, "m \"1\".fer") && !strcmp(ev.data, "data\\val"), "strings: %s %s", ev.names[1], ev.model);
    CHECK(ev.confusion[1 * 5 + 3] == 1 && NEAR(ev.norm[0], 2.0 / 3, 1e-6) && ev.auc[3] != ev.auc[3] && ev.support[2] == 2, "arrays read back");
    CHECK(ev.bins == FER_ECE_BINS && ev.bin_count[10] == 1 && NEAR(ev.ece, 0.24375, 1e-6), "reliability read back");
    snprintf(cmd, sizeof cmd, "python3 -c 'import json,sys; json.load(open(sys.argv[1]))' '%s'", path);
    if (sh("command -v python3 >/dev/null 2>&1")) CHECK(sh(cmd), "eval.json is not JSON to Python's json module");

    /* a training log with the macro F1 columns a later fer-train may add, in another order */
    snprintf(path, sizeof path, "%s/train.csv", dir);
    f = fopen(path, "w");
    if (f) {
        fputs("epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,train_macro_f1,val_macro_f1\n", f);
        for (i = 1; i <= 12; i++)
            fprintf(f, "%d,%.4f,%.4f,%.4f,%.4f,%.6f,%d,%.4f,%.4f\n", i, 1.8 / (1 + 0.2 * i), 0.3 + 0.03 * i, 1.7 / (1 + 0.15 * i),
                    0.32 + 0.025 * i, 0.002 * (1 + cos(3.14159 * i / 12)) / 2, 250, 0.2 + 0.03 * i, 0.22 + 0.025 * i);
        fclose(f);
    }
    CHECK(rep_training_curves(path, dir, made, &n_made, err) && n_made == 4, "training curves: %d made, %s", n_made, err);

    snprintf(path, sizeof path, "%s/confusion.svg", dir);
    CHECK(rep_confusion_svg(path, ev.names, ev.k, ev.confusion, ev.norm, err), "%s", err);
    snprintf(path, sizeof path, "%s/per_class.svg", dir);
    CHECK(rep_class_bars_svg(path, ev.names, ev.k, ev.precision, ev.recall, ev.f1, ev.support, err), "%s", err);
    snprintf(path, sizeof path, "%s/reliability.svg", dir);
    CHECK(rep_reliability_svg(path, ev.bins, ev.bin_count, ev.bin_conf, ev.bin_acc, ev.ece, err), "%s", err);
    for (i = 0; i < 90; i++) { lab[i] = i % 3; xy[2 * i] = 5.0f * (float)(i % 3) + test_rand(&s); xy[2 * i + 1] = test_rand(&s) - (float)(i % 3); }
    snprintf(path, sizeof path, "%s/tsne.svg", dir);
    CHECK(rep_scatter_svg(path, "map", xy, lab, 90, names, 3, err), "%s", err);
    snprintf(path, sizeof path, "%s/tsne.png", dir);
    CHECK(rep_scatter_png(path, xy, lab, 90, 3, 400, err), "%s", err);
    {
        int w = 0, h = 0;
        unsigned char *px = fer_image_load_gray(path, &w, &h, err);
        CHECK(px && w == 400 && h == 400, "tsne.png: %s", px ? "wrong size" : err);
        if (px) fer_image_free(px);
    }
    for (i = 0; i < n_made; i++) check_svg(dir, made[i]);
    check_svg(dir, "confusion.svg");
    check_svg(dir, "per_class.svg");
    check_svg(dir, "reliability.svg");
    check_svg(dir, "tsne.svg");

    /* bad input is refused with a message */
    snprintf(path, sizeof path, "%s/bad.json", dir);
    f = fopen(path, "w");
    if (f) { fputs("{\"classes\": [\"a\"], \"n\": 3, \"accuracy\": [1,", f); fclose(f); }
    CHECK(!rep_read_eval(path, &ev, err) && strstr(err, "not JSON"), "truncated JSON: %s", err);
    snprintf(path, sizeof path, "%s/bad.csv", dir);
    f = fopen(path, "w");
    if (f) { fputs("step,loss\n1,2\n", f); fclose(f); }
    CHECK(!rep_training_curves(path, dir, made, &n_made, err) && strstr(err, "epoch"), "log without epoch: %s", err);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    sh(cmd);
}

/* The tools' loader (rep_load_labelled): FER2013's CSV with --split names, and
   folders, both relabelled to a model whose class order is not FER2013's. */
static void test_load_labelled(void)
{
    static const char *sorted[7] = { "angry", "disgust", "fear", "happy", "neutral", "sad", "surprise" };
    static const int to_sorted[7] = { 0, 1, 2, 3, 5, 6, 4 };    /* FER2013 index -> sorted index */
    char dir[] = "/tmp/fer_test_labelled_XXXXXX", path[600], desc[4200], err[256], cmd[700];
    fer_model m, other;
    fer_dataset d;
    FILE *f;
    int i, ok;
    unsigned char img[48 * 48] = { 0 };
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return; }
    fer_model_init(&m, 1, 48, 48, 7, NULL);
    for (i = 0; i < 7; i++) snprintf(m.class_names[i], FER_NAME_LEN, "%s", sorted[i]);
    snprintf(path, sizeof path, "%s/fer2013.csv", dir);
    f = fopen(path, "w");
    if (f) {      /* row r: class r % 7, Usage Training for r < 7, else PublicTest */
        fputs("emotion,pixels,Usage\n", f);
        for (i = 0; i < 10; i++) fprintf(f, "%d,%d 1 2 3,%s\n", i % 7, i, i < 7 ? "Training" : "PublicTest");
        fclose(f);
    }
    CHECK(rep_load_labelled(&m, path, "train", 48, 48, 2, &d, desc, sizeof desc, err) && d.n == 7 && strstr(desc, "Training"),
          "CSV --split train: %s", err);
    for (i = 0, ok = d.n == 7; ok && i < 7; i++) ok = d.labels[i] == to_sorted[i] && d.pixels[(size_t)i * 48 * 48] == i;
    CHECK(ok && d.n_classes == 7 && !strcmp(d.class_names[4], "neutral"), "CSV labels in the model's order");
    fer_dataset_free(&d);
    CHECK(rep_load_labelled(&m, path, NULL, 48, 48, 2, &d, desc, sizeof desc, err) && d.n == 3 && strstr(desc, "PublicTest"),
          "CSV without --split: PublicTest (%s)", err);
    fer_dataset_free(&d);
    CHECK(rep_load_labelled(&m, path, "all", 48, 48, 2, &d, NULL, 0, err) && d.n == 10, "CSV --split all: %s", err);
    fer_dataset_free(&d);
    CHECK(!rep_load_labelled(&m, path, "test", 48, 48, 2, &d, NULL, 0, err) && strstr(err, "'PrivateTest'") &&
          strstr(err, "Training, PublicTest"), "CSV --split test, no such rows: %s", err);
    fer_model_init(&other, 1, 48, 48, 3, NULL);
    CHECK(!rep_load_labelled(&other, path, "all", 48, 48, 2, &d, NULL, 0, err) && strstr(err, "not FER2013's") &&
          strstr(err, "'angry'"), "a model without FER2013's classes: %s", err);
    fer_model_free(&other);

    /* a folder of two class folders: sorted happy, sad in the data, 3 and 5 in the model */
    snprintf(path, sizeof path, "%s/val", dir); mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/val/sad", dir); mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/val/sad/a.png", dir); stbi_write_png(path, 48, 48, 1, img, 48);
    snprintf(path, sizeof path, "%s/val/happy", dir); mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/val/happy/b.png", dir); stbi_write_png(path, 48, 48, 1, img, 48);
    CHECK(rep_load_labelled(&m, dir, "val", 48, 48, 2, &d, desc, sizeof desc, err) && d.n == 2 && d.labels[0] == 3 &&
          d.labels[1] == 5 && strstr(desc, "/val"), "folder relabelled: %s", err);
    fer_dataset_free(&d);
    CHECK(!rep_load_labelled(&m, dir, NULL, 48, 48, 2, &d, NULL, 0, err) && strstr(err, "--split"), "no split: %s", err);
    fer_model_free(&m);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
}

int main(void)
{
    test_fixed();
    test_edges();
    test_temperature();
    test_tta();
    test_tsne();
    test_pictures();
    test_load_labelled();
    return test_done("test_metrics");
}
