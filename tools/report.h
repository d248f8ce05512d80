/* report.h - the pictures and files of an evaluation report, for tools/fer-eval.c,
   tools/fer-embed.c, tools/fer-report.c and tests/test_metrics.c.

   It also holds what the tools share before any picture: reading labelled
   images for a model, from a folder or FER2013's CSV (rep_load_labelled).
   Include it after fer.h (declarations are enough), in a file that defines
   _POSIX_C_SOURCE 200809L before its first #include (for stat). Everything is
   static and prefixed rep_. Every picture is a self-contained SVG 1.1 file
   (system fonts only), and the t-SNE map is also a PNG through stb_image_write;
   the evaluation is a JSON file. Each file is written to PATH.tmp, checked, and renamed over
   PATH, so a failed run never leaves a truncated picture behind. Functions that
   can fail return 0 and put a message in err[256]. */
#ifndef FER_TOOLS_REPORT_H
#define FER_TOOLS_REPORT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <dirent.h>

#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include "stb_image_write.h"
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic pop
#endif

#if defined(__GNUC__) || defined(__clang__)
#define REP_UNUSED __attribute__((unused))
#define REP_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define REP_UNUSED
#define REP_PRINTF(a, b)
#endif

/* ---- files: written beside the target, renamed into place once complete ---- */

typedef struct rep_file { FILE *f; char path[4096], tmp[4200]; } rep_file;

REP_UNUSED static int rep_open(rep_file *o, const char *path, char *err)
{
    if (strlen(path) >= sizeof(o->path)) { snprintf(err, 256, "path too long: %.200s", path); return 0; }
    snprintf(o->path, sizeof o->path, "%s", path);
    snprintf(o->tmp, sizeof o->tmp, "%s.tmp", path);
    if (!(o->f = fopen(o->tmp, "wb"))) { snprintf(err, 256, "cannot write %.200s", o->tmp); return 0; }
    return 1;
}

REP_UNUSED static int rep_close(rep_file *o, char *err)
{
    int ok = !ferror(o->f);
    ok = (fclose(o->f) == 0) && ok;
    if (ok && rename(o->tmp, o->path) != 0) ok = 0;
    if (!ok) { remove(o->tmp); snprintf(err, 256, "writing %.200s failed (disk full?)", o->path); }
    return ok;
}

/* Text as XML character data: the five special characters escaped, control
   characters dropped (XML 1.0 forbids them). */
REP_UNUSED static void rep_xml(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&apos;", f); break;
        default: if ((unsigned char)*s >= 0x20 || *s == '\t') fputc(*s, f);
        }
    }
}

/* ---- colours: tab10, then golden-angle hues for more classes ---- */

REP_UNUSED static void rep_colour(int i, char out[8])
{
    static const char *tab[10] = { "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                   "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf" };
    if (i < 10) { memcpy(out, tab[i], 8); return; }
    {
        double h = fmod(i * 137.508, 360.0) / 60.0, c = 0.55, x = c * (1.0 - fabs(fmod(h, 2.0) - 1.0)), m = 0.25;
        double r = 0, g = 0, b = 0;
        int s = (int)h;
        if (s == 0) { r = c; g = x; } else if (s == 1) { r = x; g = c; } else if (s == 2) { g = c; b = x; }
        else if (s == 3) { g = x; b = c; } else if (s == 4) { r = x; b = c; } else { r = c; b = x; }
        snprintf(out, 8, "#%02x%02x%02x", (int)((r + m) * 255), (int)((g + m) * 255), (int)((b + m) * 255));
    }
}

REP_UNUSED static void rep_rgb(const char *hex, unsigned char rgb[3])
{
    unsigned v = (unsigned)strtoul(hex + 1, NULL, 16);
    rgb[0] = (unsigned char)(v >> 16); rgb[1] = (unsigned char)(v >> 8); rgb[2] = (unsigned char)v;
}

/* ---- SVG scaffolding ---- */

REP_UNUSED static void rep_svg_begin(FILE *f, int w, int h, const char *title)
{
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" font-family=\"DejaVu Sans, Arial, sans-serif\">\n<title>", w, h, w, h);
    rep_xml(f, title);
    fprintf(f, "</title>\n<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n"
               "<text x=\"%d\" y=\"24\" font-size=\"16\" text-anchor=\"middle\" font-weight=\"bold\">", w, h, w / 2);
    rep_xml(f, title);
    fputs("</text>\n", f);
}

REP_UNUSED static REP_PRINTF(6, 7) void rep_text(FILE *f, double x, double y, int size, const char *anchor,
                                      const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%d\" text-anchor=\"%s\">", x, y, size, anchor);
    rep_xml(f, buf);
    fputs("</text>\n", f);
}

/* Tick step of about n ticks over range: 1, 2 or 5 times a power of ten. */
REP_UNUSED static double rep_tick_step(double range, int n)
{
    double raw = range / n, p = pow(10.0, floor(log10(raw))), r = raw / p;
    return (r < 1.5 ? 1.0 : r < 3.5 ? 2.0 : r < 7.5 ? 5.0 : 10.0) * p;
}

/* Axes of a plot box (x0,y0)-(x1,y1) for data [xa,xb] x [ya,yb], with grid lines. */
typedef struct rep_axes { double x0, y0, x1, y1, xa, xb, ya, yb; } rep_axes;
REP_UNUSED static double rep_px(const rep_axes *a, double x) { return a->x0 + (x - a->xa) / (a->xb - a->xa) * (a->x1 - a->x0); }
REP_UNUSED static double rep_py(const rep_axes *a, double y) { return a->y1 - (y - a->ya) / (a->yb - a->ya) * (a->y1 - a->y0); }

REP_UNUSED static void rep_draw_axes(FILE *f, const rep_axes *a, const char *xlabel, const char *ylabel, int integer_x)
{
    double s, v;
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#444444\"/>\n",
            a->x0, a->y0, a->x1 - a->x0, a->y1 - a->y0);
    s = rep_tick_step(a->yb - a->ya, 5);
    for (v = ceil(a->ya / s - 1e-9) * s; v <= a->yb + 1e-9 * s; v += s) {
        double y = rep_py(a, v);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#dddddd\"/>\n", a->x0, y, a->x1, y);
        rep_text(f, a->x0 - 6, y + 4, 11, "end", "%g", fabs(v) < 1e-12 * s ? 0.0 : v);
    }
    s = rep_tick_step(a->xb - a->xa, 8);
    if (integer_x && s < 1.0) s = 1.0;
    for (v = ceil(a->xa / s - 1e-9) * s; v <= a->xb + 1e-9 * s; v += s) {
        double x = rep_px(a, v);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#dddddd\"/>\n", x, a->y0, x, a->y1);
        rep_text(f, x, a->y1 + 16, 11, "middle", "%g", fabs(v) < 1e-12 * s ? 0.0 : v);
    }
    rep_text(f, (a->x0 + a->x1) / 2, a->y1 + 36, 12, "middle", "%s", xlabel);
    fprintf(f, "<text x=\"16\" y=\"%.1f\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 16 %.1f)\">",
            (a->y0 + a->y1) / 2, (a->y0 + a->y1) / 2);
    rep_xml(f, ylabel);
    fputs("</text>\n", f);
}

/* ---- charts ---- */

typedef struct rep_series { const char *name; const double *y; } rep_series;   /* NaN: no point */

/* Curves over x[n] (epochs); one colour per series, validation series dashed. */
REP_UNUSED static int rep_line_chart(const char *path, const char *title, const char *ylabel, const double *x, int n,
                          const rep_series *s, int ns, char *err)
{
    rep_file o;
    rep_axes a;
    double lo = HUGE_VAL, hi = -HUGE_VAL, pad;
    int i, j;
    for (j = 0; j < ns; j++)
        for (i = 0; i < n; i++)
            if (s[j].y[i] == s[j].y[i]) { if (s[j].y[i] < lo) lo = s[j].y[i]; if (s[j].y[i] > hi) hi = s[j].y[i]; }
    if (n < 1 || ns < 1 || lo > hi) { snprintf(err, 256, "%.200s: nothing to plot", title); return 0; }
    pad = hi > lo ? 0.06 * (hi - lo) : (fabs(hi) > 0 ? 0.1 * fabs(hi) : 0.5);
    a.x0 = 70; a.y0 = 40; a.x1 = 620; a.y1 = 350;
    a.xa = x[0]; a.xb = x[n - 1] > x[0] ? x[n - 1] : x[0] + 1;
    a.ya = lo - pad; a.yb = hi + pad;
    if (!rep_open(&o, path, err)) return 0;
    rep_svg_begin(o.f, 640, 400, title);
    rep_draw_axes(o.f, &a, "epoch", ylabel, 1);
    for (j = 0; j < ns; j++) {
        char col[8];
        int dashed = strstr(s[j].name, "val") != NULL, open = 0;
        rep_colour(j, col);
        for (i = 0; i < n; i++) {   /* a NaN breaks the line */
            if (s[j].y[i] != s[j].y[i]) { if (open) fputs("\"/>\n", o.f); open = 0; continue; }
            if (!open) fprintf(o.f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"", col,
                               dashed ? " stroke-dasharray=\"6 3\"" : "");
            fprintf(o.f, "%s%.1f,%.1f", open ? " " : "", rep_px(&a, x[i]), rep_py(&a, s[j].y[i]));
            open = 1;
        }
        if (open) fputs("\"/>\n", o.f);
        if (n <= 80)
            for (i = 0; i < n; i++)
                if (s[j].y[i] == s[j].y[i])
                    fprintf(o.f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>\n", rep_px(&a, x[i]), rep_py(&a, s[j].y[i]), col);
        fprintf(o.f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"%s/>\n",
                a.x1 - 150, a.y0 + 16 + 18.0 * j, a.x1 - 125, a.y0 + 16 + 18.0 * j, col, dashed ? " stroke-dasharray=\"6 3\"" : "");
        rep_text(o.f, a.x1 - 120, a.y0 + 20 + 18.0 * j, 12, "start", "%s", s[j].name);
    }
    fputs("</svg>\n", o.f);
    return rep_close(&o, err);
}

/* v in [0,1] on ColorBrewer's Blues: white, mid blue, dark blue, linear between. */
REP_UNUSED static void rep_blue(double v, char out[8])
{
    static const double stop[3][3] = { { 247, 251, 255 }, { 107, 174, 214 }, { 8, 48, 107 } };
    double t = v < 0 ? 0 : v > 1 ? 1 : v, u = t < 0.5 ? 2 * t : 2 * t - 1;
    const double *a = stop[t < 0.5 ? 0 : 1], *b = stop[t < 0.5 ? 1 : 2];
    snprintf(out, 8, "#%02x%02x%02x", (int)(a[0] + u * (b[0] - a[0])), (int)(a[1] + u * (b[1] - a[1])),
             (int)(a[2] + u * (b[2] - a[2])));
}

/* Confusion heat map: colour by the row-normalised share, the count and the
   share written in each cell. counts and norm are k x k, row-major. */
REP_UNUSED static int rep_confusion_svg(const char *path, char names[][FER_NAME_LEN], int k, const int *counts,
                             const double *norm, char *err)
{
    rep_file o;
    int cell = k <= 8 ? 64 : k <= 16 ? 40 : 24, left = 120, top = 50, i, j, w, h;
    w = left + k * cell + 30; h = top + k * cell + 110;
    if (w < 420) w = 420;
    if (!rep_open(&o, path, err)) return 0;
    rep_svg_begin(o.f, w, h, "Confusion matrix (rows: true class, shares of the row)");
    for (i = 0; i < k; i++) {
        rep_text(o.f, left - 8, top + i * cell + cell / 2 + 4, 12, "end", "%s", names[i]);
        for (j = 0; j < k; j++) {
            char col[8];
            double v = norm[i * k + j], cx = left + j * cell + cell / 2.0, cy = top + i * cell + cell / 2.0;
            rep_blue(v, col);
            fprintf(o.f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\" stroke=\"#ffffff\"/>\n",
                    left + j * cell, top + i * cell, cell, cell, col);
            fprintf(o.f, "<g fill=\"%s\">", v > 0.5 ? "#ffffff" : "#000000");
            if (cell >= 40) {
                rep_text(o.f, cx, cy - 1, cell >= 64 ? 14 : 11, "middle", "%d", counts[i * k + j]);
                rep_text(o.f, cx, cy + 14, cell >= 64 ? 10 : 8, "middle", "%.0f%%", 100.0 * v);
            } else {
                rep_text(o.f, cx, cy + 3, 8, "middle", "%d", counts[i * k + j]);
            }
            fputs("</g>\n", o.f);
        }
    }
    for (j = 0; j < k; j++) {
        double x = left + j * cell + cell / 2.0, y = top + k * cell + 10;
        fprintf(o.f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"end\" transform=\"rotate(-40 %.1f %.1f)\">",
                x, y + 4, x, y + 4);
        rep_xml(o.f, names[j]);
        fputs("</text>\n", o.f);
    }
    rep_text(o.f, left + k * cell / 2.0, h - 12, 13, "middle", "predicted class");
    fprintf(o.f, "<text x=\"16\" y=\"%.1f\" font-size=\"13\" text-anchor=\"middle\" transform=\"rotate(-90 16 %.1f)\">true class</text>\n",
            top + k * cell / 2.0, top + k * cell / 2.0);
    fputs("</svg>\n", o.f);
    return rep_close(&o, err);
}

/* Precision, recall and F1 bars per class, the support under each name. */
REP_UNUSED static int rep_class_bars_svg(const char *path, char names[][FER_NAME_LEN], int k, const double *prec,
                              const double *rec, const double *f1, const int *support, char *err)
{
    static const char *label[3] = { "precision", "recall", "F1" };
    rep_file o;
    rep_axes a;
    int group = 78, w = 90 + k * group + 20, i, t;
    if (w < 480) w = 480;
    a.x0 = 70; a.y0 = 50; a.x1 = w - 20; a.y1 = 330; a.xa = 0; a.xb = k; a.ya = 0; a.yb = 1;
    if (!rep_open(&o, path, err)) return 0;
    rep_svg_begin(o.f, w, 400, "Precision, recall and F1 per class");
    fprintf(o.f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#444444\"/>\n",
            a.x0, a.y0, a.x1 - a.x0, a.y1 - a.y0);
    for (t = 0; t <= 5; t++) {
        double y = rep_py(&a, t * 0.2);
        fprintf(o.f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#dddddd\"/>\n", a.x0, y, a.x1, y);
        rep_text(o.f, a.x0 - 6, y + 4, 11, "end", "%.1f", t * 0.2);
    }
    for (i = 0; i < k; i++) {
        double gx = rep_px(&a, i), gw = rep_px(&a, i + 1) - gx, bw = gw * 0.26;
        for (t = 0; t < 3; t++) {
            double v = t == 0 ? prec[i] : t == 1 ? rec[i] : f1[i], x = gx + gw * 0.11 + t * bw, y = rep_py(&a, v);
            char col[8];
            rep_colour(t, col);
            fprintf(o.f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>\n", x, y, bw - 1, a.y1 - y, col);
            rep_text(o.f, x + bw / 2, y - 3, 8, "middle", "%.2f", v);
        }
        rep_text(o.f, gx + gw / 2, a.y1 + 16, 12, "middle", "%s", names[i]);
        rep_text(o.f, gx + gw / 2, a.y1 + 30, 10, "middle", "n=%d", support[i]);
    }
    for (t = 0; t < 3; t++) {
        char col[8];
        rep_colour(t, col);
        fprintf(o.f, "<rect x=\"%.1f\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/>\n", a.x0 + 10 + 100.0 * t, 372, col);
        rep_text(o.f, a.x0 + 26 + 100.0 * t, 382, 12, "start", "%s", label[t]);
    }
    fputs("</svg>\n", o.f);
    return rep_close(&o, err);
}

/* Reliability diagram: accuracy per confidence bin against the diagonal, the gap
   to each bin's mean confidence shaded, and the share of samples per bin below. */
REP_UNUSED static int rep_reliability_svg(const char *path, int bins, const int *count, const double *conf,
                               const double *acc, double ece, char *err)
{
    rep_file o;
    rep_axes a, hist;
    int i, total = 0, most = 1;
    for (i = 0; i < bins; i++) { total += count[i]; if (count[i] > most) most = count[i]; }
    a.x0 = 70; a.y0 = 45; a.x1 = 470; a.y1 = 445; a.xa = 0; a.xb = 1; a.ya = 0; a.yb = 1;
    hist = a; hist.y0 = 490; hist.y1 = 570; hist.ya = 0; hist.yb = total ? (double)most / total : 1;
    if (!rep_open(&o, path, err)) return 0;
    rep_svg_begin(o.f, 500, 620, "Reliability diagram");
    rep_draw_axes(o.f, &a, "", "accuracy", 0);
    for (i = 0; i < bins; i++) {
        double x0 = rep_px(&a, (double)i / bins), x1 = rep_px(&a, (double)(i + 1) / bins);
        if (!count[i]) continue;
        fprintf(o.f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#1f77b4\" stroke=\"#ffffff\"/>\n",
                x0, rep_py(&a, acc[i]), x1 - x0, a.y1 - rep_py(&a, acc[i]));
        fprintf(o.f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#d62728\" fill-opacity=\"0.3\" stroke=\"#d62728\" stroke-opacity=\"0.6\"/>\n",
                x0, rep_py(&a, acc[i] > conf[i] ? acc[i] : conf[i]), x1 - x0, fabs(rep_py(&a, acc[i]) - rep_py(&a, conf[i])));
        fprintf(o.f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#7f7f7f\"/>\n",
                x0, rep_py(&hist, (double)count[i] / total), x1 - x0, hist.y1 - rep_py(&hist, (double)count[i] / total));
    }
    fprintf(o.f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#000000\" stroke-dasharray=\"5 4\"/>\n",
            a.x0, a.y1, a.x1, a.y0);
    fprintf(o.f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#444444\"/>\n",
            hist.x0, hist.y0, hist.x1 - hist.x0, hist.y1 - hist.y0);
    rep_text(o.f, hist.x0 - 6, hist.y0 + 10, 10, "end", "%.0f%%", 100.0 * hist.yb);
    rep_text(o.f, hist.x0 - 6, hist.y1, 10, "end", "0");
    rep_text(o.f, (a.x0 + a.x1) / 2, hist.y0 - 8, 11, "middle", "share of samples per bin");
    for (i = 0; i <= 5; i++) rep_text(o.f, rep_px(&a, i * 0.2), hist.y1 + 16, 11, "middle", "%.1f", i * 0.2);
    rep_text(o.f, (a.x0 + a.x1) / 2, hist.y1 + 36, 12, "middle", "confidence (top probability)");
    rep_text(o.f, a.x0 + 10, a.y0 + 20, 13, "start", "ECE = %.4f (%d bins)", ece, bins);
    fprintf(o.f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"12\" fill=\"#1f77b4\"/>\n", a.x0 + 10, a.y0 + 32);
    rep_text(o.f, a.x0 + 26, a.y0 + 42, 11, "start", "accuracy");
    fprintf(o.f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"12\" fill=\"#d62728\" fill-opacity=\"0.3\" stroke=\"#d62728\"/>\n",
            a.x0 + 10, a.y0 + 50);
    rep_text(o.f, a.x0 + 26, a.y0 + 60, 11, "start", "gap to mean confidence");
    fputs("</svg>\n", o.f);
    return rep_close(&o, err);
}

/* Bounds of a 2-D map with a 4% margin, equal scale on both axes. */
REP_UNUSED static void rep_map_bounds(const float *xy, int n, double *cx, double *cy, double *half)
{
    double x0 = xy[0], x1 = xy[0], y0 = xy[1], y1 = xy[1];
    int i;
    for (i = 1; i < n; i++) {
        if (xy[2 * i] < x0) x0 = xy[2 * i];
        if (xy[2 * i] > x1) x1 = xy[2 * i];
        if (xy[2 * i + 1] < y0) y0 = xy[2 * i + 1];
        if (xy[2 * i + 1] > y1) y1 = xy[2 * i + 1];
    }
    *cx = 0.5 * (x0 + x1); *cy = 0.5 * (y0 + y1);
    *half = 0.52 * (x1 - x0 > y1 - y0 ? x1 - x0 : y1 - y0) + 1e-9;
}

/* The t-SNE map as SVG: one dot per sample coloured by class, a legend. */
REP_UNUSED static int rep_scatter_svg(const char *path, const char *title, const float *xy, const int *label, int n,
                           char names[][FER_NAME_LEN], int k, char *err)
{
    rep_file o;
    double cx, cy, half, size = 600.0;
    int i, c;
    if (n < 1) { snprintf(err, 256, "%.200s: no points", path); return 0; }
    rep_map_bounds(xy, n, &cx, &cy, &half);
    if (!rep_open(&o, path, err)) return 0;
    rep_svg_begin(o.f, 780, 650, title);
    fprintf(o.f, "<rect x=\"20\" y=\"40\" width=\"600\" height=\"600\" fill=\"none\" stroke=\"#444444\"/>\n<g fill-opacity=\"0.7\">\n");
    for (i = 0; i < n; i++) {
        char col[8];
        rep_colour(label[i] >= 0 && label[i] < k ? label[i] : k, col);
        fprintf(o.f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%s\" fill=\"%s\"/>\n", 20 + (xy[2 * i] - cx + half) / (2 * half) * size,
                40 + (half - (xy[2 * i + 1] - cy)) / (2 * half) * size, n > 5000 ? "1.3" : "2.2", col);
    }
    fputs("</g>\n", o.f);
    for (c = 0; c < k; c++) {
        char col[8];
        rep_colour(c, col);
        fprintf(o.f, "<circle cx=\"640\" cy=\"%d\" r=\"6\" fill=\"%s\"/>\n", 60 + 22 * c, col);
        rep_text(o.f, 652, 64 + 22 * c, 13, "start", "%s", names[c]);
    }
    fputs("</svg>\n", o.f);
    return rep_close(&o, err);
}

REP_UNUSED static void rep_png_write(void *ctx, void *data, int size) { fwrite(data, 1, (size_t)size, (FILE *)ctx); }

/* The same map as a size x size PNG (no text: the colours follow rep_colour). */
REP_UNUSED static int rep_scatter_png(const char *path, const float *xy, const int *label, int n, int k, int size, char *err)
{
    rep_file o;
    unsigned char *px;
    double cx, cy, half, r = n > 5000 ? 1.6 : 2.6;
    int i, ok;
    if (n < 1 || size < 16 || size > 8192) { snprintf(err, 256, "%.200s: no points or a bad size", path); return 0; }
    if (!(px = (unsigned char *)malloc((size_t)size * size * 3))) { snprintf(err, 256, "out of memory"); return 0; }
    memset(px, 255, (size_t)size * size * 3);
    rep_map_bounds(xy, n, &cx, &cy, &half);
    for (i = 0; i < n; i++) {   /* discs blended at 70% over what is there */
        char col[8];
        unsigned char rgb[3];
        double fx = (xy[2 * i] - cx + half) / (2 * half) * size, fy = (half - (xy[2 * i + 1] - cy)) / (2 * half) * size;
        int x, y;
        rep_colour(label[i] >= 0 && label[i] < k ? label[i] : k, col);
        rep_rgb(col, rgb);
        for (y = (int)(fy - r); y <= (int)(fy + r) + 1; y++)
            for (x = (int)(fx - r); x <= (int)(fx + r) + 1; x++) {
                int ch;
                if (x < 0 || y < 0 || x >= size || y >= size || (x + 0.5 - fx) * (x + 0.5 - fx) + (y + 0.5 - fy) * (y + 0.5 - fy) > r * r) continue;
                for (ch = 0; ch < 3; ch++) {
                    unsigned char *p = px + ((size_t)y * size + x) * 3 + ch;
                    *p = (unsigned char)(0.3 * *p + 0.7 * rgb[ch] + 0.5);
                }
            }
    }
    if (!rep_open(&o, path, err)) { free(px); return 0; }
    ok = stbi_write_png_to_func(rep_png_write, o.f, size, size, 3, px, size * 3);
    free(px);
    if (!ok) { fclose(o.f); remove(o.tmp); snprintf(err, 256, "%.200s: PNG encoding failed", path); return 0; }
    return rep_close(&o, err);
}

/* ---- the evaluation as JSON ---- */

REP_UNUSED static void rep_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", (unsigned char)*s);
        else fputc(*s, f);
    }
    fputc('"', f);
}
REP_UNUSED static void rep_json_num(FILE *f, double v)   /* NaN and infinities: null */
{
    if (v - v == 0.0) fprintf(f, "%.6g", v); else fputs("null", f);
}

/* A temperature fitted on the evaluated images, and what it changed. */
typedef struct rep_calibration {
    double temperature, previous, nll_before, nll_after, ece_before, ece_after;
    const char *model;           /* where the calibrated model was written */
} rep_calibration;

/* One JSON object: the run (model, data, tta, the temperature the metrics used),
   every number of mt, and the calibration when cal is not NULL. */
REP_UNUSED static void rep_write_eval_json(FILE *f, const fer_metrics *mt, char names[][FER_NAME_LEN], const char *model,
                                const char *data, const char *tta, double temperature, const rep_calibration *cal)
{
    int i, j, k = mt->k;
    fputs("{\n  \"model\": ", f); rep_json_str(f, model);
    fputs(",\n  \"data\": ", f); rep_json_str(f, data);
    fputs(",\n  \"tta\": ", f); rep_json_str(f, tta);
    fputs(",\n  \"temperature\": ", f); rep_json_num(f, temperature);
    fprintf(f, ",\n  \"n\": %d,\n  \"classes\": [", mt->n);
    for (i = 0; i < k; i++) { if (i) fputs(", ", f); rep_json_str(f, names[i]); }
    fputs("]", f);
    {
        const struct { const char *name; double v; } top[] = {
            { "accuracy", mt->accuracy }, { "top2_accuracy", mt->top2_accuracy },
            { "macro_precision", mt->macro_precision }, { "macro_recall", mt->macro_recall },
            { "macro_f1", mt->macro_f1 }, { "weighted_precision", mt->weighted_precision },
            { "weighted_recall", mt->weighted_recall }, { "weighted_f1", mt->weighted_f1 },
            { "nll", mt->nll }, { "ece", mt->ece }, { "mean_confidence_correct", mt->conf_correct },
            { "mean_confidence_incorrect", mt->conf_incorrect } };
        for (i = 0; i < (int)(sizeof top / sizeof top[0]); i++) {
            fprintf(f, ",\n  \"%s\": ", top[i].name);
            rep_json_num(f, top[i].v);
        }
    }
    fputs(",\n  \"low_confidence\": {\"threshold\": ", f); rep_json_num(f, mt->threshold);
    fputs(", \"share\": ", f); rep_json_num(f, mt->low_share);
    fputs(", \"accuracy\": ", f); rep_json_num(f, mt->low_accuracy);
    fputs("},\n  \"auc\": {\"macro\": ", f); rep_json_num(f, mt->macro_auc);
    fputs(", \"per_class\": [", f);
    for (i = 0; i < k; i++) { if (i) fputs(", ", f); rep_json_num(f, mt->cls[i].auc); }
    fputs("]},\n  \"per_class\": [\n", f);
    for (i = 0; i < k; i++) {
        const fer_class_metrics *c = &mt->cls[i];
        fputs("    {\"class\": ", f); rep_json_str(f, names[i]);
        fputs(", \"precision\": ", f); rep_json_num(f, c->precision);
        fputs(", \"recall\": ", f); rep_json_num(f, c->recall);
        fputs(", \"f1\": ", f); rep_json_num(f, c->f1);
        fprintf(f, ", \"support\": %d, \"predicted\": %d, \"auc\": ", c->support, c->predicted);
        rep_json_num(f, c->auc);
        fputs(i + 1 < k ? "},\n" : "}\n", f);
    }
    fputs("  ],\n  \"confusion\": [", f);
    for (i = 0; i < k; i++) {
        fputs(i ? ",\n    [" : "\n    [", f);
        for (j = 0; j < k; j++) fprintf(f, "%s%d", j ? ", " : "", mt->confusion[i][j]);
        fputc(']', f);
    }
    fputs("\n  ],\n  \"confusion_normalized\": [", f);
    for (i = 0; i < k; i++) {
        fputs(i ? ",\n    [" : "\n    [", f);
        for (j = 0; j < k; j++) { if (j) fputs(", ", f); rep_json_num(f, mt->confusion_norm[i][j]); }
        fputc(']', f);
    }
    fprintf(f, "\n  ],\n  \"reliability\": {\"bins\": %d, \"count\": [", FER_ECE_BINS);
    for (i = 0; i < FER_ECE_BINS; i++) fprintf(f, "%s%d", i ? ", " : "", mt->bin_count[i]);
    fputs("], \"confidence\": [", f);
    for (i = 0; i < FER_ECE_BINS; i++) { if (i) fputs(", ", f); rep_json_num(f, mt->bin_conf[i]); }
    fputs("], \"accuracy\": [", f);
    for (i = 0; i < FER_ECE_BINS; i++) { if (i) fputs(", ", f); rep_json_num(f, mt->bin_acc[i]); }
    fputs("]}", f);
    if (cal) {
        const struct { const char *name; double v; } c[] = {
            { "temperature", cal->temperature }, { "previous_temperature", cal->previous },
            { "nll_before", cal->nll_before }, { "nll_after", cal->nll_after },
            { "ece_before", cal->ece_before }, { "ece_after", cal->ece_after } };
        fputs(",\n  \"calibration\": {", f);
        for (i = 0; i < (int)(sizeof c / sizeof c[0]); i++) {
            fprintf(f, "\"%s\": ", c[i].name);
            rep_json_num(f, c[i].v);
            fputs(", ", f);
        }
        fputs("\"model\": ", f); rep_json_str(f, cal->model);
        fputc('}', f);
    }
    fputs("\n}\n", f);
}

/* ---- a small JSON reader: values in an array, children linked ---- */

enum { REP_JNULL, REP_JBOOL, REP_JNUM, REP_JSTR, REP_JARR, REP_JOBJ };
typedef struct rep_jv {
    int type, child, next, count;   /* first child, next sibling, number of children */
    double num;
    const char *s; int slen;        /* string contents (escapes still in), or the key */
    const char *key; int klen;      /* member name inside an object                   */
} rep_jv;
typedef struct rep_json {
    const char *t; size_t pos, len;
    rep_jv *v; int n, cap;
    char err[256];
} rep_json;

REP_UNUSED static void rep_jws(rep_json *j) { while (j->pos < j->len && strchr(" \t\r\n", j->t[j->pos])) j->pos++; }

REP_UNUSED static int rep_jnew(rep_json *j, int type)
{
    if (j->n == j->cap) {
        int cap = j->cap ? 2 * j->cap : 256;
        rep_jv *nv = (rep_jv *)realloc(j->v, sizeof(rep_jv) * (size_t)cap);
        if (!nv) { snprintf(j->err, 256, "out of memory"); return -1; }
        j->v = nv; j->cap = cap;
    }
    memset(&j->v[j->n], 0, sizeof(rep_jv));
    j->v[j->n].type = type; j->v[j->n].child = j->v[j->n].next = -1;
    return j->n++;
}

REP_UNUSED static int rep_jstring(rep_json *j, const char **s, int *len)
{
    size_t start = ++j->pos;
    while (j->pos < j->len && j->t[j->pos] != '"') {
        if ((unsigned char)j->t[j->pos] < 0x20) break;
        j->pos += j->t[j->pos] == '\\' ? 2 : 1;
    }
    if (j->pos >= j->len || j->t[j->pos] != '"') { snprintf(j->err, 256, "unterminated string at byte %zu", start - 1); return 0; }
    *s = j->t + start; *len = (int)(j->pos - start);
    j->pos++;
    return 1;
}

REP_UNUSED static int rep_jvalue(rep_json *j, int depth)
{
    int id = -1, last = -1;
    char c;
    rep_jws(j);
    if (depth > 64) { snprintf(j->err, 256, "nested too deeply"); return -1; }
    if (j->pos >= j->len) { snprintf(j->err, 256, "unexpected end of file"); return -1; }
    c = j->t[j->pos];
    if (c == '{' || c == '[') {
        int obj = c == '{';
        if ((id = rep_jnew(j, obj ? REP_JOBJ : REP_JARR)) < 0) return -1;
        j->pos++;
        rep_jws(j);
        if (j->pos < j->len && j->t[j->pos] == (obj ? '}' : ']')) { j->pos++; return id; }
        for (;;) {
            const char *key = NULL;
            int klen = 0, kid;
            rep_jws(j);
            if (obj) {
                if (j->pos >= j->len || j->t[j->pos] != '"') { snprintf(j->err, 256, "expected a member name at byte %zu", j->pos); return -1; }
                if (!rep_jstring(j, &key, &klen)) return -1;
                rep_jws(j);
                if (j->pos >= j->len || j->t[j->pos] != ':') { snprintf(j->err, 256, "expected ':' at byte %zu", j->pos); return -1; }
                j->pos++;
            }
            if ((kid = rep_jvalue(j, depth + 1)) < 0) return -1;
            j->v[kid].key = key; j->v[kid].klen = klen;
            if (last < 0) j->v[id].child = kid; else j->v[last].next = kid;
            last = kid;
            j->v[id].count++;
            rep_jws(j);
            if (j->pos < j->len && j->t[j->pos] == ',') { j->pos++; continue; }
            if (j->pos < j->len && j->t[j->pos] == (obj ? '}' : ']')) { j->pos++; return id; }
            snprintf(j->err, 256, "expected ',' or '%c' at byte %zu", obj ? '}' : ']', j->pos);
            return -1;
        }
    }
    if (c == '"') {
        const char *s;
        int len;
        if ((id = rep_jnew(j, REP_JSTR)) < 0 || !rep_jstring(j, &s, &len)) return -1;
        j->v[id].s = s; j->v[id].slen = len;
        return id;
    }
    if (!strncmp(j->t + j->pos, "null", 4) || !strncmp(j->t + j->pos, "true", 4) || !strncmp(j->t + j->pos, "false", 5)) {
        if ((id = rep_jnew(j, c == 'n' ? REP_JNULL : REP_JBOOL)) < 0) return -1;
        j->v[id].num = c == 't';
        j->pos += c == 'f' ? 5 : 4;
        return id;
    }
    {
        char *end;
        double v = strtod(j->t + j->pos, &end);
        if (end == j->t + j->pos) { snprintf(j->err, 256, "unexpected '%c' at byte %zu", c, j->pos); return -1; }
        if ((id = rep_jnew(j, REP_JNUM)) < 0) return -1;
        j->v[id].num = v;
        j->pos = (size_t)(end - j->t);
        return id;
    }
}

/* Parses text[len] (NUL-terminated) into j; returns the root or -1 with j->err. */
REP_UNUSED static int rep_json_parse(rep_json *j, const char *text, size_t len)
{
    int root;
    memset(j, 0, sizeof(*j));
    j->t = text; j->len = len;
    root = rep_jvalue(j, 0);
    if (root >= 0) {
        rep_jws(j);
        if (j->pos != j->len) { snprintf(j->err, 256, "extra text at byte %zu", j->pos); root = -1; }
    }
    return root;
}

REP_UNUSED static int rep_jget(const rep_json *j, int obj, const char *key)
{
    int c;
    if (obj < 0 || j->v[obj].type != REP_JOBJ) return -1;
    for (c = j->v[obj].child; c >= 0; c = j->v[c].next)
        if ((size_t)j->v[c].klen == strlen(key) && !memcmp(j->v[c].key, key, (size_t)j->v[c].klen)) return c;
    return -1;
}
REP_UNUSED static int rep_jat(const rep_json *j, int arr, int i)
{
    int c;
    if (arr < 0 || j->v[arr].type != REP_JARR) return -1;
    for (c = j->v[arr].child; c >= 0 && i > 0; c = j->v[c].next) i--;
    return c;
}
REP_UNUSED static double rep_jnum(const rep_json *j, int id)   /* null or missing: NaN */
{
    return id >= 0 && j->v[id].type == REP_JNUM ? j->v[id].num : NAN;
}
/* Copies a string value, decoding the simple escapes (\uXXXX becomes '?'). */
REP_UNUSED static int rep_jstr(const rep_json *j, int id, char *out, size_t cap)
{
    size_t o = 0;
    int i;
    if (id < 0 || j->v[id].type != REP_JSTR || cap == 0) return 0;
    for (i = 0; i < j->v[id].slen && o + 1 < cap; i++) {
        char ch = j->v[id].s[i];
        if (ch == '\\' && i + 1 < j->v[id].slen) {
            ch = j->v[id].s[++i];
            if (ch == 'n') ch = '\n'; else if (ch == 't') ch = '\t';
            else if (ch == 'u') { ch = '?'; i += 4; }
        }
        out[o++] = ch;
    }
    out[o] = 0;
    return 1;
}

/* What fer-report draws from an evaluation JSON. */
typedef struct rep_eval {
    int n, k;
    char names[FER_MAX_CLASSES][FER_NAME_LEN];
    char model[256], data[256], tta[16];
    double accuracy, top2_accuracy, macro_f1, weighted_f1, macro_auc, ece, nll, temperature;
    double precision[FER_MAX_CLASSES], recall[FER_MAX_CLASSES], f1[FER_MAX_CLASSES], auc[FER_MAX_CLASSES];
    int support[FER_MAX_CLASSES];
    int confusion[FER_MAX_CLASSES * FER_MAX_CLASSES];
    double norm[FER_MAX_CLASSES * FER_MAX_CLASSES];
    int bins, bin_count[FER_ECE_BINS];
    double bin_conf[FER_ECE_BINS], bin_acc[FER_ECE_BINS];
} rep_eval;

REP_UNUSED static char *rep_read_file(const char *path, size_t *len, char *err)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0;
    if (!f) { snprintf(err, 256, "cannot open %.200s", path); return NULL; }
    for (;;) {
        size_t got;
        if (n + 65536 + 1 > cap) {
            char *nb;
            cap = (n + 65536 + 1) * 2;
            if (cap > ((size_t)1 << 30) || !(nb = (char *)realloc(buf, cap))) {
                free(buf); fclose(f); snprintf(err, 256, "%.200s is too large", path); return NULL;
            }
            buf = nb;
        }
        got = fread(buf + n, 1, 65536, f);
        n += got;
        if (got < 65536) break;
    }
    if (ferror(f)) { free(buf); fclose(f); snprintf(err, 256, "cannot read %.200s", path); return NULL; }
    fclose(f);
    buf[n] = 0;
    *len = n;
    return buf;
}

REP_UNUSED static int rep_read_eval(const char *path, rep_eval *e, char *err)
{
    rep_json j;
    size_t len;
    char *text = rep_read_file(path, &len, err);
    int root, cls, pc, conf, confn, rel, i, t, ok = 0;
    if (!text) return 0;
    memset(e, 0, sizeof(*e));
    if ((root = rep_json_parse(&j, text, len)) < 0) { snprintf(err, 256, "%.150s: not JSON: %.90s", path, j.err); goto out; }
    cls = rep_jget(&j, root, "classes");
    e->k = cls >= 0 && j.v[cls].type == REP_JARR ? j.v[cls].count : 0;
    if (e->k < 1 || e->k > FER_MAX_CLASSES) { snprintf(err, 256, "%.200s: \"classes\" must list 1 to %d names", path, FER_MAX_CLASSES); goto out; }
    e->n = (int)rep_jnum(&j, rep_jget(&j, root, "n"));
    e->accuracy = rep_jnum(&j, rep_jget(&j, root, "accuracy"));
    e->macro_f1 = rep_jnum(&j, rep_jget(&j, root, "macro_f1"));
    if (e->n < 1 || e->accuracy != e->accuracy || e->macro_f1 != e->macro_f1) {
        snprintf(err, 256, "%.200s: needs \"n\", \"accuracy\" and \"macro_f1\"", path); goto out;
    }
    e->top2_accuracy = rep_jnum(&j, rep_jget(&j, root, "top2_accuracy"));
    e->weighted_f1 = rep_jnum(&j, rep_jget(&j, root, "weighted_f1"));
    e->ece = rep_jnum(&j, rep_jget(&j, root, "ece"));
    e->nll = rep_jnum(&j, rep_jget(&j, root, "nll"));
    e->temperature = rep_jnum(&j, rep_jget(&j, root, "temperature"));
    e->macro_auc = rep_jnum(&j, rep_jget(&j, rep_jget(&j, root, "auc"), "macro"));
    rep_jstr(&j, rep_jget(&j, root, "model"), e->model, sizeof e->model);
    rep_jstr(&j, rep_jget(&j, root, "data"), e->data, sizeof e->data);
    rep_jstr(&j, rep_jget(&j, root, "tta"), e->tta, sizeof e->tta);
    pc = rep_jget(&j, root, "per_class");
    conf = rep_jget(&j, root, "confusion");
    confn = rep_jget(&j, root, "confusion_normalized");
    for (i = 0; i < e->k; i++) {
        int row = rep_jat(&j, conf, i), c = rep_jat(&j, pc, i);
        if (!rep_jstr(&j, rep_jat(&j, cls, i), e->names[i], FER_NAME_LEN)) { snprintf(err, 256, "%.200s: class %d has no name", path, i); goto out; }
        if (c < 0 || row < 0 || j.v[row].type != REP_JARR || j.v[row].count != e->k) {
            snprintf(err, 256, "%.200s: \"per_class\" and \"confusion\" must have %d rows of %d", path, e->k, e->k); goto out;
        }
        e->precision[i] = rep_jnum(&j, rep_jget(&j, c, "precision"));
        e->recall[i] = rep_jnum(&j, rep_jget(&j, c, "recall"));
        e->f1[i] = rep_jnum(&j, rep_jget(&j, c, "f1"));
        e->auc[i] = rep_jnum(&j, rep_jget(&j, c, "auc"));
        e->support[i] = (int)rep_jnum(&j, rep_jget(&j, c, "support"));
        for (t = 0; t < e->k; t++) {
            double v = rep_jnum(&j, rep_jat(&j, row, t));
            if (!(v >= 0.0)) { snprintf(err, 256, "%.200s: confusion[%d][%d] is not a count", path, i, t); goto out; }
            e->confusion[i * e->k + t] = (int)v;
        }
    }
    for (i = 0; i < e->k; i++) {   /* normalised rows: taken as written, or recomputed */
        int row = rep_jat(&j, confn, i), sum = 0;
        for (t = 0; t < e->k; t++) sum += e->confusion[i * e->k + t];
        for (t = 0; t < e->k; t++) {
            double v = rep_jnum(&j, rep_jat(&j, row, t));
            e->norm[i * e->k + t] = v == v ? v : sum ? (double)e->confusion[i * e->k + t] / sum : 0.0;
        }
    }
    rel = rep_jget(&j, root, "reliability");
    e->bins = (int)rep_jnum(&j, rep_jget(&j, rel, "bins"));
    if (rel >= 0 && e->bins != FER_ECE_BINS) { snprintf(err, 256, "%.200s: reliability must have %d bins", path, FER_ECE_BINS); goto out; }
    for (i = 0; rel >= 0 && i < FER_ECE_BINS; i++) {
        e->bin_count[i] = (int)rep_jnum(&j, rep_jat(&j, rep_jget(&j, rel, "count"), i));
        e->bin_conf[i] = rep_jnum(&j, rep_jat(&j, rep_jget(&j, rel, "confidence"), i));
        e->bin_acc[i] = rep_jnum(&j, rep_jat(&j, rep_jget(&j, rel, "accuracy"), i));
        if (e->bin_count[i] < 0 || e->bin_conf[i] != e->bin_conf[i] || e->bin_acc[i] != e->bin_acc[i]) {
            snprintf(err, 256, "%.200s: reliability bin %d is incomplete", path, i); goto out;
        }
    }
    ok = 1;
out:
    free(j.v);
    free(text);
    return ok;
}

/* ---- CSV tables (the training log, the embedding), columns found by name ---- */

#define REP_MAX_COLS 64
typedef struct rep_table {
    int n_cols, n_rows;
    char names[REP_MAX_COLS][64];
    double *v;                   /* [n_rows][n_cols], NaN where a cell is empty or text */
    char **text;                 /* [n_rows][n_cols] the cells as written             */
} rep_table;

REP_UNUSED static void rep_table_free(rep_table *t)
{
    int i;
    if (t->text) { for (i = 0; i < t->n_rows * t->n_cols; i++) free(t->text[i]); free(t->text); }
    free(t->v);
    memset(t, 0, sizeof(*t));
}

REP_UNUSED static int rep_table_col(const rep_table *t, const char *name)
{
    int c;
    for (c = 0; c < t->n_cols; c++) if (!strcmp(t->names[c], name)) return c;
    return -1;
}

/* Reads a comma-separated file whose first line names the columns. */
REP_UNUSED static int rep_read_csv(const char *path, rep_table *t, char *err)
{
    size_t len, i = 0;
    char *text = rep_read_file(path, &len, err);
    int row = -1, cap = 0;
    memset(t, 0, sizeof(*t));
    if (!text) return 0;
    while (i < len) {
        size_t eol = i, c0;
        int col = 0;
        while (eol < len && text[eol] != '\n') eol++;
        if (eol > i && text[eol - 1] == '\r') text[eol - 1] = 0;
        text[eol] = 0;
        if (!text[i]) { i = eol + 1; continue; }   /* blank line */
        if (row >= 0 && row == cap) {
            int nc = cap ? 2 * cap : 64;
            double *nv = (double *)realloc(t->v, sizeof(double) * (size_t)nc * t->n_cols);
            char **nt = nv ? (char **)realloc(t->text, sizeof(char *) * (size_t)nc * t->n_cols) : NULL;
            if (nv) t->v = nv;
            if (!nv || !nt) { snprintf(err, 256, "out of memory reading %.200s", path); free(text); rep_table_free(t); return 0; }
            t->text = nt; cap = nc;
        }
        for (c0 = i; ; ) {   /* split on commas */
            size_t c1 = c0;
            while (text[c1] && text[c1] != ',') c1++;
            if (row < 0) {
                if (col >= REP_MAX_COLS) { snprintf(err, 256, "%.200s: more than %d columns", path, REP_MAX_COLS); free(text); return 0; }
                snprintf(t->names[col], 64, "%.*s", (int)(c1 - c0), text + c0);
            } else if (col < t->n_cols) {
                char *end, *cell = (char *)malloc(c1 - c0 + 1);
                double v;
                if (!cell) { snprintf(err, 256, "out of memory reading %.200s", path); free(text); t->n_rows = row; rep_table_free(t); return 0; }
                memcpy(cell, text + c0, c1 - c0); cell[c1 - c0] = 0;
                v = strtod(cell, &end);
                t->v[(size_t)row * t->n_cols + col] = (end != cell && *end == 0) ? v : NAN;
                t->text[(size_t)row * t->n_cols + col] = cell;
            }
            col++;
            if (!text[c1]) break;
            c0 = c1 + 1;
        }
        if (row < 0) t->n_cols = col;
        else {
            for (; col < t->n_cols; col++) {   /* short row: the rest is empty */
                t->v[(size_t)row * t->n_cols + col] = NAN;
                t->text[(size_t)row * t->n_cols + col] = (char *)calloc(1, 1);
            }
            t->n_rows = row + 1;
        }
        row++;
        i = eol + 1;
    }
    free(text);
    if (t->n_cols == 0) { snprintf(err, 256, "%.200s is empty", path); return 0; }
    return 1;
}

/* Training curves from a log with an "epoch" column: loss, accuracy, macro F1 and
   learning rate, each chart drawn when its columns are present. The files made
   are appended to made[][64] (up to 8). */
REP_UNUSED static int rep_training_curves(const char *log_path, const char *dir, char made[][64], int *n_made, char *err)
{
    static const struct { const char *file, *title, *ylabel, *match; } charts[4] = {
        { "loss.svg", "Loss per epoch", "loss", "loss" },
        { "accuracy.svg", "Accuracy per epoch", "accuracy", "acc" },
        { "macro_f1.svg", "Macro F1 per epoch", "macro F1", "f1" },
        { "lr.svg", "Learning rate per epoch", "learning rate", "lr" } };
    rep_table t;
    double *x;
    int ce, g, c, i;
    if (!rep_read_csv(log_path, &t, err)) return 0;
    if ((ce = rep_table_col(&t, "epoch")) < 0 || t.n_rows < 1) {
        snprintf(err, 256, "%.200s: needs an \"epoch\" column and at least one row", log_path);
        rep_table_free(&t);
        return 0;
    }
    x = (double *)malloc(sizeof(double) * (size_t)t.n_rows);
    if (!x) { rep_table_free(&t); snprintf(err, 256, "out of memory"); return 0; }
    for (i = 0; i < t.n_rows; i++) x[i] = t.v[(size_t)i * t.n_cols + ce];
    for (g = 0; g < 4; g++) {
        rep_series s[8];
        double *ys[8];
        int ns = 0;
        char path[4200];
        for (c = 0; c < t.n_cols && ns < 8; c++) {
            /* "acc" must not pick up "macro_f1"-like names, and "lr" is the whole name */
            int hit = g == 3 ? !strcmp(t.names[c], "lr") : strstr(t.names[c], charts[g].match) != NULL;
            if (g == 1 && strstr(t.names[c], "f1")) hit = 0;
            if (!hit || c == ce) continue;
            if (!(ys[ns] = (double *)malloc(sizeof(double) * (size_t)t.n_rows))) break;
            for (i = 0; i < t.n_rows; i++) ys[ns][i] = t.v[(size_t)i * t.n_cols + c];
            s[ns].name = t.names[c]; s[ns].y = ys[ns];
            ns++;
        }
        if (ns) {
            int ok;
            snprintf(path, sizeof path, "%s/%s", dir, charts[g].file);
            ok = rep_line_chart(path, charts[g].title, charts[g].ylabel, x, t.n_rows, s, ns, err);
            if (ok && *n_made < 8) snprintf(made[(*n_made)++], 64, "%s", charts[g].file);
            for (c = 0; c < ns; c++) free(ys[c]);
            if (!ok) { free(x); rep_table_free(&t); return 0; }
        }
    }
    free(x);
    rep_table_free(&t);
    return 1;
}

/* ---- labelled images for a model ---- */

#if !defined(FER_NO_STDIO) && !defined(FER_NO_STB_IMAGE)
/* The rows of FER2013's CSV that --split NAME picks, by Usage: the folder names
   train, val and test stand for Training, PublicTest and PrivateTest, "all" for
   every row (NULL), no split for PublicTest; any other name is a Usage value. */
REP_UNUSED static const char *rep_csv_usage(const char *split)
{
    if (!split || !strcmp(split, "val")) return "PublicTest";
    if (!strcmp(split, "train")) return "Training";
    if (!strcmp(split, "test")) return "PrivateTest";
    if (!strcmp(split, "all")) return NULL;
    return split;
}

/* Loads data at h x w, relabelled to the model's class order (fer_dataset_remap),
   so d->labels index m->class_names. data is FER2013's CSV file (any file that is
   not a folder), split picking its rows (rep_csv_usage), or a folder of class
   folders, data/split when split is given. desc[desc_cap] (may be NULL) gets a
   line saying what was read. */
REP_UNUSED static int rep_load_labelled(const fer_model *m, const char *data, const char *split, int h, int w, int threads,
                             fer_dataset *d, char *desc, size_t desc_cap, char *err)
{
    const char (*names)[FER_NAME_LEN] = (const char (*)[FER_NAME_LEN])m->class_names;
    char path[4096];
    struct stat st;
    int c, split_like = 0;
    if (stat(data, &st) != 0) { snprintf(err, 256, "%.200s does not exist", data); return 0; }
    if (!S_ISDIR(st.st_mode)) {
        const char *usage = rep_csv_usage(split);
        if (desc) snprintf(desc, desc_cap, "%s (%s%s)", data, usage ? "Usage " : "every row", usage ? usage : "");
        if (fer_dataset_load_csv(d, data, usage, h, w, threads, NULL) != FER_OK) {
            int no_column = usage && strstr(d->error, "no Usage column");
            snprintf(err, 256, "%.220s%s", d->error, no_column ? "; --split all reads every row" : "");
            return 0;
        }
        if (fer_dataset_remap(d, names, m->n_classes) != FER_OK) {
            snprintf(err, 256, "%.60s: the model's classes are not FER2013's: %.140s", data, d->error);
            fer_dataset_free(d);
            return 0;
        }
        return 1;
    }
    if (split) {
        snprintf(path, sizeof path, "%s/%s", data, split);
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
            snprintf(err, 256, "%.200s does not exist (--split picks a folder inside --data)", path);
            return 0;
        }
    } else snprintf(path, sizeof path, "%s", data);
    if (desc) snprintf(desc, desc_cap, "%s", path);
    {   /* before decoding anything: do the folder names mean classes of this model? */
        DIR *dp = opendir(path);
        struct dirent *e;
        char found[160] = "";
        int known = 0;
        while (dp && (e = readdir(dp)) != NULL) {
            if (e->d_name[0] == '.') continue;
            for (c = 0; c < m->n_classes; c++) known += !strcmp(e->d_name, m->class_names[c]);
            if (strlen(found) + strlen(e->d_name) + 3 < sizeof found) {
                if (found[0]) strcat(found, ", ");
                strcat(found, e->d_name);
            }
        }
        if (dp) closedir(dp);
        if (dp && !known) {
            snprintf(err, 256, "no folder in %.60s is a class of the model (%.20s, %.20s, ...); it holds: %.50s%s", path,
                     m->class_names[0], m->n_classes > 1 ? m->class_names[1] : "", found[0] ? found : "nothing",
                     split ? "" : "; pick a split with --split NAME");
            return 0;
        }
    }
    if (fer_dataset_load_folder(d, path, h, w, threads, NULL) != FER_OK) { snprintf(err, 256, "%s", d->error); return 0; }
    for (c = 0; c < d->n_classes; c++)
        split_like |= !strcmp(d->class_names[c], "train") || !strcmp(d->class_names[c], "val") || !strcmp(d->class_names[c], "test");
    if (fer_dataset_remap(d, names, m->n_classes) != FER_OK) {
        snprintf(err, 256, "%.60s: %.140s%s", path, d->error,
                 split_like ? "; pick a split with --split" : " (the model's names are in its .fer file)");
        fer_dataset_free(d);
        return 0;
    }
    return 1;
}
#endif

#endif
