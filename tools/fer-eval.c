/* fer-eval: evaluate a .fer model on labelled images: a folder, or FER2013's CSV.

   cc -O2 -I. -I/usr/include/stb tools/fer-eval.c -lm -lpthread -o build/fer-eval

   usage: fer-eval --model M.fer --data DIR_OR_CSV [--split NAME] [--tta none|flip|tencrop] [--json]
                   [--threshold X] [--threads N] [--calibrate OUT.fer]
                   [--int8 CALIB_DIR [--int8-n N]]
   DIR holds one folder per class, DIR/<class>/<image> (--split NAME reads DIR/NAME
   instead, e.g. --split val). Any file that is not a folder is read as FER2013's
   CSV (fer2013.csv), and --split picks its rows by Usage: Training, PublicTest
   or PrivateTest, or train, val, test for them, or all; without --split, the
   PublicTest rows. Class names (folders, or FER2013's for a CSV) are matched to
   the model's, in the model's order.
   Prints scikit-learn's classification_report layout (classes that occur neither
   in the labels nor in the predictions are left out, as there), then top-2
   accuracy, ROC AUC, confidence, calibration and the confusion matrix. --json
   prints one JSON object instead, the input of fer-report --eval.
   --tta flip averages the softmax of each image and its mirror; --tta tencrop the
   four corner crops, the centre crop and their mirrors, cut from the image at
   the model's stored size or, when that equals its input size (every zoo
   model), from the image resized to input + 4 (see fer_tta_size in fer.h).
   --threshold X (0.5): report the share of predictions with confidence under X.
   --calibrate OUT.fer: fit a temperature on these images (least NLL), write the
   model with it to OUT.fer, and report NLL and ECE before and after. Fit it on
   validation data, never on a test split.
   --int8 CALIB_DIR: run the convs in int8 (fer_workspace_quantize), calibrated
   on N images (default 512) spread evenly over CALIB_DIR/<class>/<image>: the
   training images (fer2013/train), never the ones evaluated. */
#define _POSIX_C_SOURCE 200809L
#define FER_IMPLEMENTATION
#include "fer.h"
#include "tools/report.h"

static int usage(const char *why)
{
    if (why) fprintf(stderr, "fer-eval: %s\n", why);
    fprintf(stderr, "usage: fer-eval --model M.fer --data DIR_OR_CSV [--split NAME] [--tta none|flip|tencrop] [--json]\n"
                    "                [--threshold X] [--threads N] [--calibrate OUT.fer] [--int8 CALIB_DIR [--int8-n N]]\n"
                    "  DIR: DIR/<class>/<image>, or DIR/NAME/<class>/<image> with --split NAME\n"
                    "  CSV: FER2013's fer2013.csv; --split Training|PublicTest|PrivateTest (or train|val|test),\n"
                    "       all for every row; PublicTest without --split\n");
    return 2;
}

static void print_report(const fer_metrics *mt, char names[][FER_NAME_LEN])
{
    int c, j, width = 12, cw = 7;
    for (c = 0; c < mt->k; c++) {
        int l = (int)strlen(names[c]);
        if (l > width) width = l;
        if (l + 1 > cw) cw = l + 1;
    }
    printf("%*s  %9s %9s %9s %9s\n\n", width, "", "precision", "recall", "f1-score", "support");
    for (c = 0; c < mt->k; c++)
        if (mt->cls[c].support || mt->cls[c].predicted)
            printf("%*s  %9.4f %9.4f %9.4f %9d\n", width, names[c], mt->cls[c].precision, mt->cls[c].recall,
                   mt->cls[c].f1, mt->cls[c].support);
    printf("\n%*s  %9s %9s %9.4f %9d\n", width, "accuracy", "", "", mt->accuracy, mt->n);
    printf("%*s  %9.4f %9.4f %9.4f %9d\n", width, "macro avg", mt->macro_precision, mt->macro_recall, mt->macro_f1, mt->n);
    printf("%*s  %9.4f %9.4f %9.4f %9d\n\n", width, "weighted avg", mt->weighted_precision, mt->weighted_recall,
           mt->weighted_f1, mt->n);
    for (c = 0, j = 0; c < mt->k; c++)
        if (!mt->cls[c].support && !mt->cls[c].predicted) printf("%s%s", j++ ? ", " : "not in the labels nor predicted: ", names[c]);
    if (j) printf("\n\n");

    printf("%-40s%.4f\n", "top-2 accuracy", mt->top2_accuracy);
    printf("%-40s%.4f\n", "ROC AUC one-vs-rest, macro", mt->macro_auc);
    printf("%-40s%.4f\n", "mean confidence, correct predictions", mt->conf_correct);
    printf("%-40s%.4f\n", "mean confidence, incorrect predictions", mt->conf_incorrect);
    printf("confidence under %-23.2f%.2f%% of predictions, their accuracy %.4f\n", mt->threshold, 100.0 * mt->low_share,
           mt->low_accuracy);
    printf("expected calibration error (%d bins)    %.4f\n", FER_ECE_BINS, mt->ece);
    printf("%-40s%.4f\n\n", "negative log-likelihood", mt->nll);

    printf("%*s  %9s %9s\n", width, "", "AUC", "predicted");
    for (c = 0; c < mt->k; c++) printf("%*s  %9.4f %9d\n", width, names[c], mt->cls[c].auc, mt->cls[c].predicted);

    printf("\nconfusion matrix (rows: true class, columns: predicted class)\n%*s", width, "");
    for (c = 0; c < mt->k; c++) printf("%*s", cw, names[c]);
    for (c = 0; c < mt->k; c++) {
        printf("\n%*s", width, names[c]);
        for (j = 0; j < mt->k; j++) printf("%*d", cw, mt->confusion[c][j]);
    }
    printf("\n\nconfusion matrix, each row divided by its support\n%*s", width, "");
    for (c = 0; c < mt->k; c++) printf("%*s", cw, names[c]);
    for (c = 0; c < mt->k; c++) {
        printf("\n%*s", width, names[c]);
        for (j = 0; j < mt->k; j++) printf("%*.3f", cw, mt->confusion_norm[c][j]);
    }
    printf("\n");
}

/* n images spread evenly over dir/<class>/, preprocessed for m (*n lowered to
   the images there are). */
static float *load_calibration(const fer_model *m, const char *dir, int *n, int threads)
{
    fer_dataset c;
    size_t in = (size_t)m->input.c * m->input.h * m->input.w;
    float *x;
    int i, sh = m->pre.store_h > 0 ? m->pre.store_h : m->input.h, sw = m->pre.store_w > 0 ? m->pre.store_w : m->input.w;
    if (fer_dataset_load_folder(&c, dir, sh, sw, threads, NULL) != FER_OK) {
        fprintf(stderr, "fer-eval: --int8 %s: %s\n", dir, c.error);
        return NULL;
    }
    if (*n > c.n) *n = c.n;
    if (!(x = (float *)malloc(sizeof(float) * in * (size_t)*n))) {
        fprintf(stderr, "fer-eval: --int8: out of memory for %d calibration images\n", *n);
        fer_dataset_free(&c);
        return NULL;
    }
    for (i = 0; i < *n; i++)
        fer_preprocess(m, c.pixels + (size_t)((long long)i * c.n / *n) * sw * sh, sw, sh, sw, x + (size_t)i * in);
    fer_dataset_free(&c);
    return x;
}

int main(int argc, char **argv)
{
    const char *model_path = NULL, *data = NULL, *split = NULL, *tta_name = "none", *calibrate = NULL;
    const char *int8_dir = NULL;
    int json = 0, threads = 2, i, h, w, K, *labels, rc = 1, int8_n = 512;
    float *calib = NULL;
    float threshold = 0.5f;
    fer_tta tta;
    fer_model m;
    fer_dataset d;
    static fer_metrics mt, before, after;
    float *probs = NULL, *logits = NULL;
    char err[256], data_desc[4200];
    rep_calibration cal;
    float T0;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(NULL); return 0; }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if (strncmp(a, "--", 2) || !(!strcmp(a, "--model") || !strcmp(a, "--data") || !strcmp(a, "--split") ||
                                     !strcmp(a, "--tta") || !strcmp(a, "--threshold") || !strcmp(a, "--threads") ||
                                     !strcmp(a, "--calibrate") || !strcmp(a, "--int8") || !strcmp(a, "--int8-n"))) {
            fprintf(stderr, "fer-eval: unknown option '%s'\n", a);
            return usage(NULL);
        }
        if (!v) { fprintf(stderr, "fer-eval: %s needs a value\n", a); return usage(NULL); }
        i++;
        if (!strcmp(a, "--model")) model_path = v;
        else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--split")) split = v;
        else if (!strcmp(a, "--tta")) tta_name = v;
        else if (!strcmp(a, "--calibrate")) calibrate = v;
        else if (!strcmp(a, "--int8")) int8_dir = v;
        else if (!strcmp(a, "--int8-n")) {
            long t = strtol(v, &end, 10);
            if (*end || t < 1 || t > 100000) return usage("--int8-n takes a number from 1 to 100000");
            int8_n = (int)t;
        }
        else if (!strcmp(a, "--threshold")) {
            threshold = strtof(v, &end);
            if (*end || !(threshold >= 0.0f && threshold <= 1.0f)) return usage("--threshold takes a number from 0 to 1");
        } else {
            long t = strtol(v, &end, 10);
            if (*end || t < 1 || t > 64) return usage("--threads takes a number from 1 to 64");
            threads = (int)t;
        }
    }
    if (!model_path || !data) return usage("--model and --data are required");
    if (!strcmp(tta_name, "none")) tta = FER_TTA_NONE;
    else if (!strcmp(tta_name, "flip")) tta = FER_TTA_FLIP;
    else if (!strcmp(tta_name, "tencrop")) tta = FER_TTA_TENCROP;
    else return usage("--tta must be none, flip or tencrop");

    if (fer_model_load(&m, model_path, NULL) != FER_OK) { fprintf(stderr, "fer-eval: %s\n", m.error); return 1; }
    K = m.n_classes;
    T0 = m.pre.temperature > 0.0f ? m.pre.temperature : 1.0f;
    fer_tta_size(&m, tta, &h, &w);
    if (!rep_load_labelled(&m, data, split, h, w, threads, &d, data_desc, sizeof data_desc, err)) {
        fprintf(stderr, "fer-eval: %s\n", err);
        fer_model_free(&m);
        return 1;
    }
    labels = d.labels;
    if (d.n_skipped) fprintf(stderr, "fer-eval: skipped %d unreadable files or rows: %s\n", d.n_skipped, d.skip_reason);
    probs = (float *)malloc(sizeof(float) * (size_t)d.n * K);
    logits = (float *)malloc(sizeof(float) * (size_t)d.n * K);
    if (!probs || !logits) { fprintf(stderr, "fer-eval: out of memory for %d images\n", d.n); goto out; }
    if (int8_dir && !(calib = load_calibration(&m, int8_dir, &int8_n, threads))) goto out;
    if ((calib ? fer_predict_dataset_int8(&m, &d, tta, threads, calib, int8_n, probs, logits, err)
               : fer_predict_dataset(&m, &d, tta, threads, probs, logits, err)) != FER_OK) {
        fprintf(stderr, "fer-eval: %s\n", err);
        goto out;
    }
    if (fer_metrics_compute(&mt, probs, labels, d.n, K, threshold, NULL) != FER_OK) { fprintf(stderr, "fer-eval: %s\n", mt.error); goto out; }
    if (calibrate) {
        float T;
        if (fer_fit_temperature(logits, labels, d.n, K, &T) != FER_OK) { fprintf(stderr, "fer-eval: the temperature fit failed\n"); goto out; }
        fer_softmax_temperature(logits, d.n, K, T0, probs);
        fer_metrics_compute(&before, probs, labels, d.n, K, threshold, NULL);
        fer_softmax_temperature(logits, d.n, K, T, probs);
        fer_metrics_compute(&after, probs, labels, d.n, K, threshold, NULL);
        m.pre.temperature = T;
        if (fer_model_save(&m, calibrate) != FER_OK) { fprintf(stderr, "fer-eval: %s\n", m.error); goto out; }
        cal.temperature = T; cal.previous = T0; cal.model = calibrate;
        cal.nll_before = before.nll; cal.nll_after = after.nll; cal.ece_before = before.ece; cal.ece_after = after.ece;
    }
    if (json) {
        rep_write_eval_json(stdout, &mt, m.class_names, model_path, data_desc, tta_name, T0, calibrate ? &cal : NULL);
    } else {
        printf("model %s (%s, %d classes, input %dx%dx%d, temperature %g), data %s: %d images, tta %s%s\n", model_path,
               m.arch, K, m.input.c, m.input.h, m.input.w, T0, data_desc, d.n, tta_name,
               tta == FER_TTA_TENCROP && (h != m.pre.store_h || w != m.pre.store_w) ? " (crops of the image resized to input + 4)" : "");
        if (calib) printf("convs in int8, calibrated on %d images of %s\n", int8_n, int8_dir);
        printf("\n");
        print_report(&mt, m.class_names);
    }
    if (calibrate)
        fprintf(json ? stderr : stdout, "%stemperature fitted on these images: %.4f (was %.4f); NLL %.4f -> %.4f, "
                "ECE %.4f -> %.4f; the model with it is in %s\n", json ? "fer-eval: " : "\n", cal.temperature,
                cal.previous, cal.nll_before, cal.nll_after, cal.ece_before, cal.ece_after, calibrate);
    if (fflush(stdout) != 0 || ferror(stdout)) { fprintf(stderr, "fer-eval: writing the report failed\n"); goto out; }
    rc = 0;
out:
    free(probs); free(logits); free(calib);
    fer_dataset_free(&d);
    fer_model_free(&m);
    return rc;
}
