/* test_data: the FER2013 CSV loader (in memory and from a file), class remapping
   and counts, and malformed input to the folder loader. Every CSV is made here,
   with pixel values that say which row and position they came from. */
#define _POSIX_C_SOURCE 200809L
#define FER_IMPLEMENTATION
#include "fer.h"
#include "test.h"
#include <stdarg.h>
#include <sys/stat.h>


/* A 4x4 8-bit grey PNG (zlib level 9) of the values 0, 16, ..., 240 in row order. */
static const unsigned char png4[86] =
    "\x89\x50\x4e\x47\x0d\x0a\x1a\x0a\x00\x00\x00\x0d\x49\x48\x44\x52\x00\x00\x00\x04\x00\x00\x00\x04"
    "\x08\x00\x00\x00\x00\x8c\x9a\xc1\xa2\x00\x00\x00\x1d\x49\x44\x41\x54\x78\xda\x63\x60\x10\x50\x30"
    "\x60\x70\x08\x48\x28\x60\x68\x98\xb0\x60\x03\xc3\x81\x0b\x0f\x3e\x00\x00\x30\xd4\x07\x81\xca\x38"
    "\xd4\x9d\x00\x00\x00\x00\x49\x45\x4e\x44\xae\x42\x60\x82";

enum { S = 48, NPX = S * S, ROWS = 10 };   /* rows 0-4 Training, 5-7 PublicTest, 8-9 PrivateTest */

static unsigned char px(int row, int k) { return (unsigned char)((row * 53 + k * 7) & 255); }
static int row_label(int row) { return (row * 3) % 7; }
static const char *row_usage(int row) { return row < 5 ? "Training" : row < 8 ? "PublicTest" : "PrivateTest"; }

/* A growing text buffer. */
typedef struct text { char *p; size_t n, cap; } text;
static void put(text *t, const char *s, size_t n)
{
    if (t->n + n + 1 > t->cap) {
        size_t cap = (t->n + n + 1) * 2;
        char *q = (char *)realloc(t->p, cap);
        if (!q) { printf("not ok: out of memory\n"); exit(1); }
        t->p = q; t->cap = cap;
    }
    memcpy(t->p + t->n, s, n);
    t->n += n;
    t->p[t->n] = 0;
}
static void putf(text *t, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    put(t, buf, strlen(buf));
}
static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(data, 1, n, f) == n && fclose(f) == 0, "write %s", path);
}

static void pixels_of(text *t, int row)
{
    int k;
    for (k = 0; k < NPX; k++) putf(t, k ? " %d" : "%d", px(row, k));
}

/* How the generated file is written. */
typedef struct style {
    int reordered;               /* Usage,pixels,emotion instead of emotion,pixels,Usage */
    int crlf, bom, no_usage, no_final_newline;
} style;

static text make_csv(style st)
{
    text t = { NULL, 0, 0 };
    const char *nl = st.crlf ? "\r\n" : "\n";
    int r;
    if (st.bom) put(&t, "\xEF\xBB\xBF", 3);
    putf(&t, "%s%s", st.no_usage ? "emotion,pixels" : st.reordered ? "Usage,pixels,emotion" : "emotion,pixels,Usage", nl);
    for (r = 0; r < ROWS; r++) {
        if (st.reordered) putf(&t, "%s,", row_usage(r));
        else putf(&t, "%d,", row_label(r));
        pixels_of(&t, r);
        if (st.reordered) putf(&t, ",%d", row_label(r));
        else if (!st.no_usage) putf(&t, ",%s", row_usage(r));
        if (r < ROWS - 1 || !st.no_final_newline) putf(&t, "%s", nl);
    }
    return t;
}

/* d holds exactly the generated rows [first, first + n), at 48x48. */
static int holds_rows(const fer_dataset *d, int first, int n)
{
    int i, k;
    if (d->n != n || d->h != S || d->w != S || d->n_classes != 7) return 0;
    for (i = 0; i < n; i++) {
        if (d->labels[i] != row_label(first + i)) return 0;
        for (k = 0; k < NPX; k++) if (d->pixels[(size_t)i * NPX + k] != px(first + i, k)) return 0;
    }
    return 1;
}

static int same_dataset(const fer_dataset *a, const fer_dataset *b)
{
    return a->n == b->n && a->h == b->h && a->w == b->w && a->n_classes == b->n_classes &&
           a->n_skipped == b->n_skipped && !strcmp(a->skip_reason, b->skip_reason) &&
           !memcmp(a->labels, b->labels, sizeof(int) * (size_t)a->n) &&
           !memcmp(a->pixels, b->pixels, (size_t)a->n * a->h * a->w) &&
           !memcmp(a->class_names, b->class_names, sizeof(a->class_names));
}

static void test_csv_basic(void)
{
    style st = { 0, 0, 0, 0, 0 };
    text t = make_csv(st);
    fer_dataset d, e;
    int i, c, ok;
    CHECK(fer_dataset_parse_csv(&d, t.p, t.n, NULL, S, S, 2, NULL) == FER_OK, "all rows: %s", d.error);
    CHECK(holds_rows(&d, 0, ROWS) && d.n_skipped == 0 && !d.skip_reason[0], "every row, labels and pixels exact");
    CHECK(!strcmp(d.class_names[0], "angry") && !strcmp(d.class_names[6], "neutral"), "FER2013 class names");
    fer_dataset_free(&d);
    CHECK(fer_dataset_parse_csv(&d, t.p, t.n, "Training", S, S, 2, NULL) == FER_OK && holds_rows(&d, 0, 5), "Training: 5 rows");
    fer_dataset_free(&d);
    CHECK(fer_dataset_parse_csv(&d, t.p, t.n, "PublicTest", S, S, 2, NULL) == FER_OK && holds_rows(&d, 5, 3), "PublicTest: 3 rows");
    fer_dataset_free(&d);
    CHECK(fer_dataset_parse_csv(&d, t.p, t.n, "PrivateTest", S, S, 2, NULL) == FER_OK && holds_rows(&d, 8, 2), "PrivateTest: 2 rows");
    fer_dataset_free(&d);

    /* resized, square and not: each image as fer_resize_gray makes it */
    {
        static const int hw[2][2] = { { 24, 24 }, { 30, 40 } };
        unsigned char src[NPX], want[40 * 30];
        int v;
        for (v = 0; v < 2; v++) {
            int h = hw[v][0], w = hw[v][1];
            CHECK(fer_dataset_parse_csv(&d, t.p, t.n, "PublicTest", h, w, 2, NULL) == FER_OK, "resized: %s", d.error);
            ok = d.n == 3 && d.h == h && d.w == w;
            for (i = 0; ok && i < 3; i++) {
                int k;
                for (k = 0; k < NPX; k++) src[k] = px(5 + i, k);
                fer_resize_gray(src, S, S, want, w, h);
                ok = !memcmp(d.pixels + (size_t)i * h * w, want, (size_t)h * w) && d.labels[i] == row_label(5 + i);
            }
            CHECK(ok, "PublicTest at %dx%d is the bilinear resize of each row", h, w);
            fer_dataset_free(&d);
        }
    }

    /* the same data, written differently */
    CHECK(fer_dataset_parse_csv(&e, t.p, t.n, NULL, S, S, 1, NULL) == FER_OK, "reference");
    {
        style v[4] = { { 1, 0, 0, 0, 0 }, { 0, 1, 1, 0, 1 }, { 1, 1, 0, 0, 1 }, { 0, 0, 0, 1, 0 } };
        const char *what[4] = { "columns Usage,pixels,emotion", "CRLF, BOM, no final newline",
                                "reordered, CRLF, no final newline", "no Usage column" };
        for (i = 0; i < 4; i++) {
            text u = make_csv(v[i]);
            CHECK(fer_dataset_parse_csv(&d, u.p, u.n, NULL, S, S, 2, NULL) == FER_OK && same_dataset(&d, &e),
                  "%s: same data set (%s)", what[i], d.error);
            fer_dataset_free(&d);
            if (v[i].no_usage) {
                CHECK(fer_dataset_parse_csv(&d, u.p, u.n, "Training", S, S, 2, NULL) == FER_ERR_FORMAT &&
                      strstr(d.error, "no Usage column") && strstr(d.error, "Training"),
                      "Usage asked of a file without the column: %s", d.error);
            } else {
                CHECK(fer_dataset_parse_csv(&d, u.p, u.n, "PrivateTest", S, S, 2, NULL) == FER_OK && holds_rows(&d, 8, 2),
                      "%s: PrivateTest rows", what[i]);
                fer_dataset_free(&d);
            }
            free(u.p);
        }
    }

    /* class counts */
    {
        int counts[7], want[7] = { 0 };
        for (i = 0; i < ROWS; i++) want[row_label(i)]++;
        fer_dataset_class_counts(&e, counts);
        for (c = 0, ok = 1; c < 7; c++) ok &= counts[c] == want[c];
        CHECK(ok, "class counts");
    }
    fer_dataset_free(&e);
    free(t.p);
}

/* Each kind of bad row between good ones: skipped, counted, the first of each
   kind named by its line (the header is line 1, good row r is on line 2 + r). */
static void test_csv_bad_rows(void)
{
    text t = { NULL, 0, 0 };
    fer_dataset d;
    int r, k;
    put(&t, "emotion,pixels,Usage\n", 21);
    for (r = 0; r < 3; r++) { putf(&t, "%d,", row_label(r)); pixels_of(&t, r); putf(&t, ",Training\n"); }
    /* line 5: one pixel short */
    putf(&t, "1,"); for (k = 0; k < NPX - 1; k++) putf(&t, "7 "); putf(&t, ",Training\n");
    /* line 6: a word among the pixels */
    putf(&t, "1,"); for (k = 0; k < NPX; k++) putf(&t, k == 17 ? "abc " : "7 "); putf(&t, ",Training\n");
    /* line 7: 256 */
    putf(&t, "1,"); for (k = 0; k < NPX; k++) putf(&t, k == 3 ? "256 " : "7 "); putf(&t, ",Training\n");
    /* line 8: class 7 */
    putf(&t, "7,"); for (k = 0; k < NPX; k++) putf(&t, "7 "); putf(&t, ",Training\n");
    /* line 9: no pixels column */
    putf(&t, "3\n");
    /* line 10: one pixel too many */
    putf(&t, "1,"); for (k = 0; k < NPX + 1; k++) putf(&t, "7 "); putf(&t, ",Training\n");
    /* line 11: a negative pixel; 12: a huge number; 13: a decimal; 14: a NUL byte */
    putf(&t, "1,-3"); for (k = 1; k < NPX; k++) putf(&t, " 7"); putf(&t, ",Training\n");
    putf(&t, "1,99999999999999999999999999"); for (k = 1; k < NPX; k++) putf(&t, " 7"); putf(&t, ",Training\n");
    putf(&t, "1,12.5"); for (k = 1; k < NPX; k++) putf(&t, " 7"); putf(&t, ",Training\n");
    putf(&t, "1,1"); put(&t, "\0", 1); for (k = 1; k < NPX; k++) putf(&t, " 7"); putf(&t, ",Training\n");
    /* line 15: class 'x'; 16: empty class; 17: a good row again; 18: blank, ignored */
    putf(&t, "x,"); pixels_of(&t, 3); putf(&t, ",Training\n");
    putf(&t, ","); pixels_of(&t, 3); putf(&t, ",Training\n");
    putf(&t, "%d,", row_label(3)); pixels_of(&t, 3); putf(&t, ",Training\n\n");
    CHECK(fer_dataset_parse_csv(&d, t.p, t.n, NULL, S, S, 2, NULL) == FER_OK, "loads: %s", d.error);
    CHECK(holds_rows(&d, 0, 4), "the 4 good rows, in order (n %d)", d.n);
    CHECK(d.n_skipped == 12, "12 rows skipped, not %d", d.n_skipped);
    CHECK(strlen(d.skip_reason) < 256, "the reason fits");
    CHECK(strstr(d.skip_reason, "2 wrong pixel count (line 5: 2303 pixels, expected 2304)") != NULL, "count: %s", d.skip_reason);
    CHECK(strstr(d.skip_reason, "3 non-numeric pixel (line 6: pixel 18 is 'abc')") != NULL, "word: %s", d.skip_reason);
    CHECK(strstr(d.skip_reason, "3 pixel outside 0..255 (line 7: pixel 4 is 256)") != NULL, "range: %s", d.skip_reason);
    CHECK(strstr(d.skip_reason, "3 unknown class (line 8: emotion '7'") != NULL, "class: %s", d.skip_reason);
    CHECK(strstr(d.skip_reason, "1 missing columns (line 9: 1 of 3 columns)") != NULL, "columns: %s", d.skip_reason);
    fer_dataset_free(&d);
    /* the later kinds, each first on its own: negative, huge, decimal, NUL, letters */
    {
        static const struct { int line; const char *want; } one[5] = {
            { 11, "line 11: pixel 1 is -3" }, { 12, "line 12: pixel 1 is 99999999999..." },
            { 13, "line 13: pixel 1 is '12.5'" }, { 14, "line 14: pixel 1 is '1?'" }, { 15, "line 15: emotion 'x'" } };
        for (r = 0; r < 5; r++) {
            /* lines 5 .. one[r].line - 1 blanked (blank lines are ignored; the numbers stay) */
            text u = { NULL, 0, 0 };
            const char *p = t.p, *end = t.p + t.n;
            int line = 1;
            while (p < end) {
                const char *nl = (const char *)memchr(p, '\n', (size_t)(end - p));
                size_t n = (size_t)((nl ? nl + 1 : end) - p);
                if (line < 5 || line >= one[r].line) put(&u, p, n);
                else put(&u, "\n", 1);
                p += n; line++;
            }
            CHECK(fer_dataset_parse_csv(&d, u.p, u.n, NULL, S, S, 1, NULL) == FER_OK && strstr(d.skip_reason, one[r].want),
                  "expected '%s' in: %s", one[r].want, d.skip_reason);
            fer_dataset_free(&d);
            free(u.p);
        }
    }
    /* a row cut short at the end of the file is a wrong count, not a crash */
    t.n -= 3000;
    CHECK(fer_dataset_parse_csv(&d, t.p, t.n, NULL, S, S, 2, NULL) == FER_OK && d.n == 3 && d.n_skipped == 13,
          "truncated last row skipped: n %d, skipped %d", d.n, d.n_skipped);
    fer_dataset_free(&d);
    free(t.p);
}

static void test_csv_fatal(void)
{
    style st = { 0, 0, 0, 0, 0 };
    text t = make_csv(st);
    fer_dataset d;
    const char *bad;
    CHECK(fer_dataset_parse_csv(&d, "", 0, NULL, S, S, 2, NULL) == FER_ERR_FORMAT && strstr(d.error, "empty"), "empty: %s", d.error);
    CHECK(fer_dataset_parse_csv(&d, NULL, 0, NULL, S, S, 2, NULL) == FER_ERR_FORMAT, "NULL text");
    CHECK(fer_dataset_parse_csv(&d, "\xEF\xBB\xBF\r\n\n", 5, NULL, S, S, 2, NULL) == FER_ERR_FORMAT && strstr(d.error, "empty"),
          "BOM and blank lines: %s", d.error);
    bad = "label,pixels,Usage\n0,1 2 3 4,Training\n";
    CHECK(fer_dataset_parse_csv(&d, bad, strlen(bad), NULL, S, S, 2, NULL) == FER_ERR_FORMAT &&
          strstr(d.error, "line 1") && strstr(d.error, "no emotion column"), "no emotion: %s", d.error);
    bad = "emotion,pixel,Usage\n0,1 2 3 4,Training\n";
    CHECK(fer_dataset_parse_csv(&d, bad, strlen(bad), NULL, S, S, 2, NULL) == FER_ERR_FORMAT &&
          strstr(d.error, "no pixels column"), "no pixels: %s", d.error);
    bad = "Emotion , \"PIXELS\"\n0,1 2 3 4\n";
    CHECK(fer_dataset_parse_csv(&d, bad, strlen(bad), NULL, S, S, 2, NULL) == FER_OK && d.n == 1 &&
          d.pixels[0] == 1 && d.pixels[S * S - 1] == 4, "header names in any case, quoted: %s", d.error);
    fer_dataset_free(&d);
    bad = "emotion,pixels,Usage\r\n";
    CHECK(fer_dataset_parse_csv(&d, bad, strlen(bad), NULL, S, S, 2, NULL) == FER_ERR_FORMAT &&
          strstr(d.error, "no rows after the header"), "header only: %s", d.error);
    CHECK(fer_dataset_parse_csv(&d, t.p, t.n, "PrivateTst", S, S, 2, NULL) == FER_ERR_FORMAT &&
          strstr(d.error, "'PrivateTst'") && strstr(d.error, "Training, PublicTest, PrivateTest") && d.pixels == NULL,
          "no row kept lists the Usage values: %s", d.error);
    bad = "emotion,pixels,Usage\n9,1 2 3 4,Training\n0,1 2 x 4,Training\n";
    CHECK(fer_dataset_parse_csv(&d, bad, strlen(bad), NULL, S, S, 2, NULL) == FER_ERR_FORMAT &&
          strstr(d.error, "none of the 2 rows") && strstr(d.error, "line 2") && strstr(d.error, "line 3") && d.n_skipped == 2,
          "every row bad: %s", d.error);
    CHECK(fer_dataset_parse_csv(&d, t.p, t.n, NULL, 0, S, 2, NULL) == FER_ERR_ARG && strstr(d.error, "0x48"), "h 0: %s", d.error);
    CHECK(fer_dataset_parse_csv(&d, t.p, t.n, NULL, S, 5000, 2, NULL) == FER_ERR_ARG, "w 5000");
    free(t.p);
}

/* Hostile text: never a crash, always OK or a format error. */
static void test_csv_hostile(void)
{
    style st = { 0, 0, 0, 0, 0 };
    text t = make_csv(st), u = { NULL, 0, 0 };
    fer_dataset d;
    unsigned long long seed = 11;
    size_t cut;
    int i, sane = 1;
    for (cut = 0; cut < t.n; cut += 97) {     /* every prefix of the file, roughly */
        fer_result r = fer_dataset_parse_csv(&d, t.p, cut, NULL, S, S, 2, NULL);
        sane &= r == FER_OK ? d.n <= ROWS && d.n_skipped <= 1 : r == FER_ERR_FORMAT && d.pixels == NULL;
        fer_dataset_free(&d);
    }
    CHECK(sane, "prefixes load or fail cleanly");
    for (i = 0; i < 200; i++) {               /* bytes flipped at random */
        size_t k;
        text v = { NULL, 0, 0 };
        fer_result r;
        put(&v, t.p, t.n);
        for (k = 0; k < 20; k++) {
            size_t at = (size_t)((test_rand(&seed) + 1.0f) * 0.5f * (float)(v.n - 1));
            v.p[at] = (char)(int)(128.0f * test_rand(&seed));
        }
        r = fer_dataset_parse_csv(&d, v.p, v.n, i % 2 ? "Training" : NULL, 20, 20, 1 + i % 3, NULL);
        sane &= r == FER_OK || r == FER_ERR_FORMAT;
        fer_dataset_free(&d);
        free(v.p);
    }
    CHECK(sane, "random bytes load or fail cleanly");
    /* a 4 MB row of pixels and a 1 MB number */
    put(&u, "emotion,pixels\n", 15);
    put(&u, "0,", 2);
    for (i = 0; i < 2000000; i++) put(&u, "1 ", 2);
    put(&u, "\n0,", 3);
    for (i = 0; i < 1000000; i++) put(&u, "9", 1);
    put(&u, "\n1,", 3);
    for (i = 0; i < 4; i++) put(&u, "5 ", 2);
    CHECK(fer_dataset_parse_csv(&d, u.p, u.n, NULL, 8, 8, 2, NULL) == FER_OK && d.n == 1 && d.n_skipped == 2 &&
          d.pixels[0] == 5, "4 MB row (%d skipped: %s)", d.n_skipped, d.skip_reason);
    CHECK(strstr(d.skip_reason, "2000000 pixels, expected 4") && strstr(d.skip_reason, "pixel 1 is 99999999999..."),
          "named: %s", d.skip_reason);
    fer_dataset_free(&d);
    free(u.p);
    free(t.p);
}

/* The same data set for 1, 2, 3 and 8 threads, on a file with bad rows spread through it. */
static void test_csv_threads(void)
{
    text t = { NULL, 0, 0 };
    fer_dataset d[4];
    int r, n_threads[4] = { 1, 2, 3, 8 }, i, ok = 1;
    put(&t, "emotion,pixels,Usage\n", 21);
    for (r = 0; r < 60; r++) {
        putf(&t, "%d,", r % 13 == 5 ? 8 : row_label(r % ROWS));
        pixels_of(&t, r % ROWS);
        if (r % 11 == 3) putf(&t, " 1");
        putf(&t, ",%s\n", row_usage(r % ROWS));
    }
    for (i = 0; i < 4; i++) {
        CHECK(fer_dataset_parse_csv(&d[i], t.p, t.n, "Training", 36, 36, n_threads[i], NULL) == FER_OK, "%s", d[i].error);
        if (i) ok &= same_dataset(&d[0], &d[i]);
    }
    CHECK(ok && d[0].n > 20 && d[0].n_skipped > 3, "same for 1, 2, 3, 8 threads (n %d, skipped %d: %s)", d[0].n,
          d[0].n_skipped, d[0].skip_reason);
    for (i = 0; i < 4; i++) fer_dataset_free(&d[i]);
    free(t.p);
}

static void test_csv_file(const char *dir)
{
    style st = { 0, 1, 0, 0, 0 };
    text t = make_csv(st);
    char path[600];
    fer_dataset d;
    snprintf(path, sizeof path, "%s/fer2013.csv", dir);
    write_file(path, t.p, t.n);
    CHECK(fer_dataset_load_csv(&d, path, "PublicTest", S, S, 2, NULL) == FER_OK && holds_rows(&d, 5, 3), "from a file: %s", d.error);
    fer_dataset_free(&d);
    CHECK(fer_dataset_load_csv(&d, path, "Bogus", S, S, 2, NULL) == FER_ERR_FORMAT && strstr(d.error, path) &&
          strstr(d.error, "'Bogus'"), "a format error names the file: %s", d.error);
    CHECK(fer_dataset_load_csv(&d, path, NULL, S, 0, 2, NULL) == FER_ERR_ARG, "w 0 from a file");
    CHECK(fer_dataset_load_csv(&d, "/nonexistent/fer2013.csv", NULL, S, S, 2, NULL) == FER_ERR_IO &&
          strstr(d.error, "/nonexistent/fer2013.csv"), "missing file named: %s", d.error);
    CHECK(fer_dataset_load_csv(&d, dir, NULL, S, S, 2, NULL) == FER_ERR_IO && strstr(d.error, dir), "a folder: %s", d.error);
    write_file(path, "", 0);
    CHECK(fer_dataset_load_csv(&d, path, NULL, S, S, 2, NULL) == FER_ERR_FORMAT && strstr(d.error, path) &&
          strstr(d.error, "empty"), "an empty file: %s", d.error);
    remove(path);
    free(t.p);
}

static void test_remap(void)
{
    style st = { 0, 0, 0, 0, 0 };
    text t = make_csv(st);
    fer_dataset d;
    /* sorted order, as a folder of non-FER2013 names would give */
    char sorted[8][FER_NAME_LEN] = { "angry", "disgust", "fear", "happy", "neutral", "sad", "surprise", "contempt" };
    char lacking[6][FER_NAME_LEN] = { "angry", "fear", "happy", "sad", "surprise", "neutral" };
    static const int to_sorted[7] = { 0, 1, 2, 3, 5, 6, 4 };
    int labels[ROWS], i, ok, counts[8], sad = 0;
    char names[FER_MAX_CLASSES][FER_NAME_LEN];
    CHECK(fer_dataset_parse_csv(&d, t.p, t.n, NULL, S, S, 2, NULL) == FER_OK, "%s", d.error);
    memcpy(labels, d.labels, sizeof labels);
    memcpy(names, d.class_names, sizeof names);
    CHECK(fer_dataset_remap(&d, (const char (*)[FER_NAME_LEN])lacking, 6) == FER_ERR_FORMAT &&
          strstr(d.error, "'disgust'"), "a class the names lack is named: %s", d.error);
    CHECK(d.n_classes == 7 && !memcmp(d.labels, labels, sizeof labels) && !memcmp(names, d.class_names, sizeof names),
          "d unchanged after a failed remap");
    CHECK(fer_dataset_remap(&d, (const char (*)[FER_NAME_LEN])sorted, 7) == FER_OK, "remap: %s", d.error);
    for (i = 0, ok = 1; i < ROWS; i++) ok &= d.labels[i] == to_sorted[labels[i]];
    CHECK(ok && d.n_classes == 7 && !strcmp(d.class_names[4], "neutral") && !strcmp(d.class_names[6], "surprise"),
          "labels follow the names");
    CHECK(fer_dataset_remap(&d, (const char (*)[FER_NAME_LEN])sorted, 8) == FER_OK && d.n_classes == 8 &&
          !strcmp(d.class_names[7], "contempt"), "to more classes: %s", d.error);
    fer_dataset_class_counts(&d, counts);
    for (i = 0; i < ROWS; i++) sad += row_label(i) == 4;
    CHECK(counts[7] == 0 && counts[5] == sad, "an added class has no images; sad at its new index (%d)", counts[5]);
    CHECK(fer_dataset_remap(&d, (const char (*)[FER_NAME_LEN])d.class_names, 8) == FER_OK &&
          !strcmp(d.class_names[7], "contempt") && d.labels[0] == to_sorted[labels[0]], "onto its own names");
    CHECK(fer_dataset_remap(&d, (const char (*)[FER_NAME_LEN])sorted, 0) == FER_ERR_ARG, "0 names refused");
    fer_dataset_free(&d);
    free(t.p);
}

/* The folder loader on files that are not images: empty, and a PNG cut short
   in its compressed data. */
static void test_folder_bad_files(const char *dir)
{
    char root[600], p[700];
    fer_dataset d;
    int i, ok;
    snprintf(root, sizeof root, "%s/folder", dir);
    mkdir(root, 0755);
    snprintf(p, sizeof p, "%s/happy", root); mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/happy/empty.png", root); write_file(p, "", 0);
    snprintf(p, sizeof p, "%s/happy/truncated.png", root); write_file(p, png4, 50);
    CHECK(fer_dataset_load_folder(&d, root, 4, 4, 2, NULL) == FER_ERR_FORMAT && strstr(d.error, "no image") &&
          strstr(d.error, "empty.png"), "only bad files: %s", d.error);
    snprintf(p, sizeof p, "%s/happy/whole.png", root); write_file(p, png4, sizeof png4);
    CHECK(fer_dataset_load_folder(&d, root, 4, 4, 2, NULL) == FER_OK && d.n == 1 && d.n_skipped == 2 &&
          strstr(d.skip_reason, "empty.png"), "the whole PNG loads, the empty and truncated ones are skipped (%d: %s)",
          d.n_skipped, d.skip_reason);
    for (i = 0, ok = d.n == 1; ok && i < 16; i++) ok = d.pixels[i] == 16 * i;
    CHECK(ok, "the PNG's pixels");
    fer_dataset_free(&d);
}

int main(void)
{
    char dir[512], cmd[600];
    const char *tmp = getenv("TMPDIR");
    test_csv_basic();
    test_csv_bad_rows();
    test_csv_fatal();
    test_csv_hostile();
    test_csv_threads();
    test_remap();
    snprintf(dir, sizeof dir, "%s/fer_test_data_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir)) {
        test_csv_file(dir);
        test_folder_bad_files(dir);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        CHECK(system(cmd) == 0, "cleanup");
    } else CHECK(0, "mkdtemp %s", dir);
    return test_done("test_data");
}
