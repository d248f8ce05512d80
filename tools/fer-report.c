/* fer-report: the pictures of a training run and an evaluation, and one page
   that shows them together.

   cc -O2 -I. -I/usr/include/stb tools/fer-report.c -lm -lpthread -o build/fer-report

   usage: fer-report --out DIR [--log TRAIN.csv] [--eval EVAL.json] [--embed MAP.csv]
   --log: fer-train's log (columns found by name: epoch, then any *loss*, *acc*,
          *f1* and lr columns) gives loss.svg, accuracy.svg, macro_f1.svg, lr.svg;
   --eval: fer-eval --json's output gives confusion.svg, per_class.svg,
          reliability.svg and the summary table;
   --embed: fer-embed's map gives tsne.svg and tsne.png.
   At least one is needed. DIR/index.html shows everything that was made. */
#define _POSIX_C_SOURCE 200809L
#define FER_IMPLEMENTATION
#include "fer.h"
#include "tools/report.h"
#include <errno.h>

static int usage(const char *why)
{
    if (why) fprintf(stderr, "fer-report: %s\n", why);
    fprintf(stderr, "usage: fer-report --out DIR [--log TRAIN.csv] [--eval EVAL.json] [--embed MAP.csv]\n");
    return 2;
}

/* The t-SNE map from fer-embed's CSV (x, y, label; class names from "class"). */
static int draw_map(const char *csv, const char *dir, const rep_eval *ev, char *err)
{
    rep_table t;
    char names[FER_MAX_CLASSES][FER_NAME_LEN], path[4200];
    float *xy;
    int *lab, cx, cy, cl, cc, i, k = 0, ok;
    if (!rep_read_csv(csv, &t, err)) return 0;
    cx = rep_table_col(&t, "x"); cy = rep_table_col(&t, "y"); cl = rep_table_col(&t, "label"); cc = rep_table_col(&t, "class");
    if (cx < 0 || cy < 0 || cl < 0 || t.n_rows < 1) {
        snprintf(err, 256, "%.180s: needs columns x, y and label, and rows", csv);
        rep_table_free(&t);
        return 0;
    }
    memset(names, 0, sizeof names);
    if (ev) { k = ev->k; memcpy(names, ev->names, sizeof names); }
    xy = (float *)malloc(sizeof(float) * 2 * (size_t)t.n_rows);
    lab = (int *)malloc(sizeof(int) * (size_t)t.n_rows);
    if (!xy || !lab) { free(xy); free(lab); rep_table_free(&t); snprintf(err, 256, "out of memory"); return 0; }
    for (i = 0; i < t.n_rows; i++) {
        double x = t.v[(size_t)i * t.n_cols + cx], y = t.v[(size_t)i * t.n_cols + cy], l = t.v[(size_t)i * t.n_cols + cl];
        if (!(x - x == 0.0) || !(y - y == 0.0) || !(l >= 0 && l < FER_MAX_CLASSES)) {
            snprintf(err, 256, "%.180s: row %d has no finite x, y or a label in 0..%d", csv, i + 2, FER_MAX_CLASSES - 1);
            free(xy); free(lab); rep_table_free(&t);
            return 0;
        }
        xy[2 * i] = (float)x; xy[2 * i + 1] = (float)y; lab[i] = (int)l;
        if (lab[i] >= k) k = lab[i] + 1;
        if (cc >= 0 && !names[lab[i]][0]) snprintf(names[lab[i]], FER_NAME_LEN, "%s", t.text[(size_t)i * t.n_cols + cc]);
    }
    for (i = 0; i < k; i++) if (!names[i][0]) snprintf(names[i], FER_NAME_LEN, "class %d", i);
    snprintf(path, sizeof path, "%s/tsne.svg", dir);
    ok = rep_scatter_svg(path, "t-SNE of penultimate-layer features", xy, lab, t.n_rows, names, k, err);
    snprintf(path, sizeof path, "%s/tsne.png", dir);
    ok = ok && rep_scatter_png(path, xy, lab, t.n_rows, k, 800, err);
    free(xy); free(lab); rep_table_free(&t);
    return ok;
}

static void html_row(FILE *f, const char *name, double v, const char *fmt)
{
    fprintf(f, "<tr><th>%s</th><td>", name);
    if (v - v == 0.0) fprintf(f, fmt, v); else fputs("&ndash;", f);
    fputs("</td></tr>\n", f);
}

static int write_index(const char *dir, char made[][64], int n_made, const rep_eval *ev, const char *log,
                       const char *embed, char *err)
{
    static const struct { const char *file, *caption; } order[] = {
        { "loss.svg", "Loss per epoch (validation dashed)" }, { "accuracy.svg", "Accuracy per epoch" },
        { "macro_f1.svg", "Macro F1 per epoch" }, { "lr.svg", "Learning rate per epoch" },
        { "confusion.svg", "Confusion matrix" }, { "per_class.svg", "Precision, recall and F1 per class" },
        { "reliability.svg", "Reliability diagram" }, { "tsne.svg", "t-SNE map of penultimate-layer features" } };
    rep_file o;
    char path[4200];
    int i, j;
    snprintf(path, sizeof path, "%s/index.html", dir);
    if (!rep_open(&o, path, err)) return 0;
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>fer.h report</title>\n"
          "<style>body{font-family:sans-serif;margin:2em;color:#222}img{max-width:100%;border:1px solid #ddd}"
          "figure{display:inline-block;vertical-align:top;margin:0 1.5em 1.5em 0}"
          "table{border-collapse:collapse}th,td{padding:.2em .8em;border-bottom:1px solid #eee;text-align:left}"
          "td{font-variant-numeric:tabular-nums}</style></head>\n<body>\n<h1>fer.h report</h1>\n", o.f);
    if (ev) {
        fputs("<h2>Evaluation</h2>\n<table>\n<tr><th>model</th><td>", o.f); rep_xml(o.f, ev->model);
        fputs("</td></tr>\n<tr><th>data</th><td>", o.f); rep_xml(o.f, ev->data);
        fputs("</td></tr>\n<tr><th>test-time augmentation</th><td>", o.f); rep_xml(o.f, ev->tta);
        fprintf(o.f, "</td></tr>\n<tr><th>images</th><td>%d</td></tr>\n", ev->n);
        html_row(o.f, "accuracy", ev->accuracy, "%.4f");
        html_row(o.f, "top-2 accuracy", ev->top2_accuracy, "%.4f");
        html_row(o.f, "macro F1", ev->macro_f1, "%.4f");
        html_row(o.f, "weighted F1", ev->weighted_f1, "%.4f");
        html_row(o.f, "macro ROC AUC (one-vs-rest)", ev->macro_auc, "%.4f");
        html_row(o.f, "expected calibration error (15 bins)", ev->ece, "%.4f");
        html_row(o.f, "negative log-likelihood", ev->nll, "%.4f");
        html_row(o.f, "temperature", ev->temperature, "%.4g");
        fputs("</table>\n<h3>Per class</h3>\n<table>\n<tr><th>class</th><th>precision</th><th>recall</th><th>F1</th>"
              "<th>AUC</th><th>support</th></tr>\n", o.f);
        for (i = 0; i < ev->k; i++) {
            fputs("<tr><td>", o.f); rep_xml(o.f, ev->names[i]);
            fprintf(o.f, "</td><td>%.4f</td><td>%.4f</td><td>%.4f</td><td>", ev->precision[i], ev->recall[i], ev->f1[i]);
            if (ev->auc[i] == ev->auc[i]) fprintf(o.f, "%.4f", ev->auc[i]); else fputs("&ndash;", o.f);
            fprintf(o.f, "</td><td>%d</td></tr>\n", ev->support[i]);
        }
        fputs("</table>\n", o.f);
    }
    fputs("<h2>Pictures</h2>\n", o.f);
    if (log) { fputs("<p>Training log: ", o.f); rep_xml(o.f, log); fputs("</p>\n", o.f); }
    for (i = 0; i < (int)(sizeof order / sizeof order[0]); i++)
        for (j = 0; j < n_made; j++)
            if (!strcmp(made[j], order[i].file)) {
                fprintf(o.f, "<figure><a href=\"%s\"><img src=\"%s\" alt=\"%s\"></a><figcaption>%s",
                        order[i].file, order[i].file, order[i].caption, order[i].caption);
                if (!strcmp(order[i].file, "tsne.svg") && embed) {
                    fputs(" (from ", o.f); rep_xml(o.f, embed); fputs("; <a href=\"tsne.png\">PNG</a>)", o.f);
                }
                fputs("</figcaption></figure>\n", o.f);
            }
    fputs("</body></html>\n", o.f);
    return rep_close(&o, err);
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *log = NULL, *eval = NULL, *embed = NULL;
    static rep_eval ev;
    char made[16][64], err[256], path[4200];
    int i, n_made = 0;
    for (i = 1; i < argc; i += 2) {   /* every option takes a value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(NULL); return 0; }
        if (!strcmp(a, "--out") && v) dir = v;
        else if (!strcmp(a, "--log") && v) log = v;
        else if (!strcmp(a, "--eval") && v) eval = v;
        else if (!strcmp(a, "--embed") && v) embed = v;
        else { fprintf(stderr, "fer-report: %s '%s'\n", v ? "unknown option" : "missing value or unknown option", a); return usage(NULL); }
    }
    if (!dir) return usage("--out is required");
    if (!log && !eval && !embed) return usage("give at least one of --log, --eval and --embed");
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) { fprintf(stderr, "fer-report: cannot create %s: %s\n", dir, strerror(errno)); return 1; }
    if (eval && !rep_read_eval(eval, &ev, err)) { fprintf(stderr, "fer-report: %s\n", err); return 1; }
    if (log && !rep_training_curves(log, dir, made, &n_made, err)) { fprintf(stderr, "fer-report: %s\n", err); return 1; }
    if (eval) {
        snprintf(path, sizeof path, "%s/confusion.svg", dir);
        if (!rep_confusion_svg(path, ev.names, ev.k, ev.confusion, ev.norm, err)) { fprintf(stderr, "fer-report: %s\n", err); return 1; }
        snprintf(made[n_made++], 64, "confusion.svg");
        snprintf(path, sizeof path, "%s/per_class.svg", dir);
        if (!rep_class_bars_svg(path, ev.names, ev.k, ev.precision, ev.recall, ev.f1, ev.support, err)) { fprintf(stderr, "fer-report: %s\n", err); return 1; }
        snprintf(made[n_made++], 64, "per_class.svg");
        if (ev.bins) {
            snprintf(path, sizeof path, "%s/reliability.svg", dir);
            if (!rep_reliability_svg(path, ev.bins, ev.bin_count, ev.bin_conf, ev.bin_acc, ev.ece, err)) { fprintf(stderr, "fer-report: %s\n", err); return 1; }
            snprintf(made[n_made++], 64, "reliability.svg");
        }
    }
    if (embed) {
        if (!draw_map(embed, dir, eval ? &ev : NULL, err)) { fprintf(stderr, "fer-report: %s\n", err); return 1; }
        snprintf(made[n_made++], 64, "tsne.svg");
        snprintf(made[n_made++], 64, "tsne.png");
    }
    if (!write_index(dir, made, n_made, eval ? &ev : NULL, log, embed, err)) { fprintf(stderr, "fer-report: %s\n", err); return 1; }
    printf("fer-report: wrote");
    for (i = 0; i < n_made; i++) printf(" %s", made[i]);
    printf(" and index.html in %s\n", dir);
    return 0;
}
