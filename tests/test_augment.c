/* test_augment: fer_augment_image against what each option must do to simple
   images (a disc, a bar, a blob, a ramp), fer_normalize against fer_preprocess,
   and fer_dataset_oversample's counts, order, seeds, refusals and allocation
   failures. The expected parameters come from the documented order of draws. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <stddef.h>

/* an allocator that fails once `left` reaches 0 (left < 0: never) and counts */
typedef struct budget { long left, live; } budget;
static void *budget_malloc(size_t n, void *ctx)
{
    budget *b = (budget *)ctx;
    if (b) {
        if (b->left == 0) return NULL;
        if (b->left > 0) b->left--;
        b->live++;
    }
    return malloc(n);
}
static void budget_free(void *p, void *ctx)
{
    budget *b = (budget *)ctx;
    if (b && p) b->live--;
    free(p);
}
#define FER_MALLOC(sz, ctx) budget_malloc(sz, ctx)
#define FER_FREE(p, ctx) budget_free(p, ctx)
#define FER_NO_STB_IMAGE
#define FER_IMPLEMENTATION
#include "fer.h"
#include "test.h"
#include <time.h>

#define S 48
#define PI 3.14159265358979

/* u[0..9]: the ten parameter draws fer_augment_image makes from seed */
static void draws(uint64_t seed, float *u)
{
    uint64_t st = fer__mix64(seed);
    int i;
    for (i = 0; i < 10; i++) u[i] = fer__uniform(&st);
}

static void random_image(unsigned char *p, size_t n, unsigned long long seed, int lo, int hi)
{
    size_t i;
    for (i = 0; i < n; i++) p[i] = (unsigned char)(lo + (int)((test_rand(&seed) + 1.0f) * 0.5f * (float)(hi - lo + 1)) % (hi - lo + 1));
}

/* a disc of radius r about the image centre, 255 inside, with an edge ramp 3
   pixels wide (a hard edge would change under any resampling) */
static void disc(unsigned char *p, float r)
{
    int y, x;
    for (y = 0; y < S; y++)
        for (x = 0; x < S; x++) {
            float d = sqrtf((x - 23.5f) * (x - 23.5f) + (y - 23.5f) * (y - 23.5f)), v = (r - d) / 3.0f + 0.5f;
            p[y * S + x] = (unsigned char)(255.0f * (v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v) + 0.5f);
        }
}

static double sum(const float *x, int n) { double s = 0; int i; for (i = 0; i < n; i++) s += x[i]; return s; }

static double mean_abs_diff(const float *a, const float *b, int n)
{
    double s = 0;
    int i;
    for (i = 0; i < n; i++) s += fabs((double)a[i] - b[i]);
    return s / n;
}

/* centre of mass (mx, my) and the orientation of the principal axis, in degrees,
   with y pointing down (a clockwise turn on screen is a positive angle) */
static void moments(const float *x, int h, int w, double *mx, double *my, double *deg)
{
    double s = 0, sx = 0, sy = 0, xx = 0, yy = 0, xy = 0;
    int i, j;
    for (i = 0; i < h; i++)
        for (j = 0; j < w; j++) { double v = x[i * w + j]; s += v; sx += v * j; sy += v * i; }
    *mx = sx / s; *my = sy / s;
    for (i = 0; i < h; i++)
        for (j = 0; j < w; j++) {
            double v = x[i * w + j], dx = j - *mx, dy = i - *my;
            xx += v * dx * dx; yy += v * dy * dy; xy += v * dx * dy;
        }
    *deg = 0.5 * atan2(2 * xy, xx - yy) * 180.0 / PI;
}

static void test_identity(void)
{
    unsigned char src[S * S];
    float out[S * S + 16];
    fer_augment a;
    int y, x, i, same = 1;
    random_image(src, sizeof src, 1, 0, 255);
    memset(&a, 0, sizeof a);
    for (i = 0; i < S * S + 16; i++) out[i] = -7.0f;
    fer_augment_image(&a, src, S, S, out, S, S, 12345);
    for (i = 0; i < S * S; i++) same &= out[i] == (float)src[i] / 255.0f;
    CHECK(same, "zero strength 48x48 -> 48x48 is src / 255, bit for bit");
    for (i = S * S; i < S * S + 16; i++) same &= out[i] == -7.0f;
    CHECK(same, "nothing written past oh x ow");
    fer_augment_image(&a, src, S, S, out, 44, 44, 99);
    for (y = 0, same = 1; y < 44; y++)
        for (x = 0; x < 44; x++) same &= out[y * 44 + x] == (float)src[(y + 2) * S + x + 2] / 255.0f;
    CHECK(same, "zero strength 48 -> 44 is the centre crop at (2, 2), bit for bit");
    fer_augment_image(NULL, src, S, S, out, 41, 45, 7);     /* odd margins: (7/2, 3/2) = (3, 1) */
    for (y = 0, same = 1; y < 41; y++)
        for (x = 0; x < 45; x++) same &= out[y * 45 + x] == (float)src[(y + 3) * S + x + 1] / 255.0f;
    CHECK(same, "a == NULL: the centre crop 41 x 45 at (3, 1)");
    for (i = 0; i < 16; i++) out[i] = -7.0f;
    fer_augment_image(&a, src, S, S, out, S + 1, S, 1);
    fer_augment_image(&a, src, S, S, out, 0, S, 1);
    CHECK(out[0] == -7.0f, "oh > h or oh < 1 writes nothing");
}

static void test_seeds(void)
{
    unsigned char src[S * S];
    float o1[S * S], o2[S * S], o3[44 * 40];
    fer_augment a;
    int s, i, inside = 1, differ = 0;
    random_image(src, sizeof src, 2, 0, 255);
    fer_augment_defaults(&a);
    CHECK(a.flip == 1 && a.rotate == 10.0f && a.shift == 0.1f && a.zoom == 0.1f && a.brightness == 0.2f &&
          a.contrast == 0.2f && a.random_crop == 1 && a.erase_prob == 0.5f && a.erase_min == 0.02f &&
          a.erase_max == 0.2f && a.erase_aspect == 3.0f, "defaults as documented");
    fer_augment_image(&a, src, S, S, o1, S, S, 42);
    fer_augment_image(&a, src, S, S, o2, S, S, 42);
    CHECK(!memcmp(o1, o2, sizeof o1), "same seed, same output");
    for (s = 0; s < 20; s++) {
        fer_augment_image(&a, src, S, S, o2, S, S, 43 + (uint64_t)s);
        differ += memcmp(o1, o2, sizeof o1) != 0;
    }
    CHECK(differ == 20, "other seeds give other outputs: %d of 20", differ);
    for (s = 0; s < 200; s++) {
        fer_augment_image(&a, src, S, S, o3, 44, 40, (uint64_t)s * 7919);
        for (i = 0; i < 44 * 40; i++) inside &= o3[i] >= 0.0f && o3[i] <= 1.0f;
    }
    CHECK(inside, "defaults stay in [0,1] (200 seeds, 48x48 -> 44x40)");
}

/* the warp as documented, in double: source = c + F R(-angle) (X - c - t) / scale */
static void reference(const fer_augment *a, const unsigned char *src, int h, int w, double *dst,
                      int oh, int ow, uint64_t seed)
{
    float u[10];
    double ang, sc, tx, ty, cs, sn, cx = 0.5 * (w - 1), cy = 0.5 * (h - 1);
    int mirror, oy = (h - oh) / 2, ox = (w - ow) / 2, y, x;
    draws(seed, u);
    mirror = a->flip && u[0] < 0.5f;
    ang = (2.0f * u[1] - 1.0f) * a->rotate * PI / 180.0;
    sc = 1.0f + (2.0f * u[2] - 1.0f) * a->zoom;
    tx = (2.0f * u[3] - 1.0f) * a->shift * w; ty = (2.0f * u[4] - 1.0f) * a->shift * h;
    if (a->random_crop) { oy = (int)(u[5] * (h - oh + 1)); ox = (int)(u[6] * (w - ow + 1)); }
    cs = cos(ang); sn = sin(ang);
    for (y = 0; y < oh; y++)
        for (x = 0; x < ow; x++) {
            double dx = x + ox - cx - tx, dy = y + oy - cy - ty, sx, sy, fx, fy;
            int x0, y0, x1, y1;
            sx = (cs * dx + sn * dy) / sc; sy = (-sn * dx + cs * dy) / sc;
            sx = cx + (mirror ? -sx : sx); sy = cy + sy;
            sx = sx < 0 ? 0 : sx > w - 1 ? w - 1 : sx;
            sy = sy < 0 ? 0 : sy > h - 1 ? h - 1 : sy;
            x0 = (int)sx; y0 = (int)sy; fx = sx - x0; fy = sy - y0;
            x1 = x0 + 1 < w ? x0 + 1 : w - 1; y1 = y0 + 1 < h ? y0 + 1 : h - 1;
            dst[y * ow + x] = ((1 - fy) * ((1 - fx) * src[y0 * w + x0] + fx * src[y0 * w + x1]) +
                               fy * ((1 - fx) * src[y1 * w + x0] + fx * src[y1 * w + x1])) / 255.0;
        }
}

static void test_warp_reference(void)
{
    unsigned char src[S * S], white[S * S];
    float out[S * S];
    double want[S * S], worst = 0;
    fer_augment a;
    int s, i, ones = 1, mir = 1;
    random_image(src, sizeof src, 9, 0, 255);
    memset(white, 255, sizeof white);
    memset(&a, 0, sizeof a);
    a.flip = 1; a.rotate = 30.0f; a.zoom = 0.3f; a.shift = 0.2f; a.random_crop = 1;
    for (s = 0; s < 50; s++) {
        int oh = s % 2 ? 40 : S, ow = s % 3 ? 44 : S;
        fer_augment_image(&a, src, S, S, out, oh, ow, (uint64_t)s);
        reference(&a, src, S, S, want, oh, ow, (uint64_t)s);
        for (i = 0; i < oh * ow; i++) if (fabs(out[i] - want[i]) > worst) worst = fabs(out[i] - want[i]);
        fer_augment_image(&a, white, S, S, out, oh, ow, (uint64_t)s);
        for (i = 0; i < oh * ow; i++) ones &= out[i] == 1.0f;
    }
    memset(&a, 0, sizeof a);               /* no warp: the crop of the mirror image */
    a.flip = 1; a.random_crop = 1;
    for (s = 0; s < 40; s++) {
        double w2 = 0;
        fer_augment_image(&a, src, S, S, out, 40, 37, (uint64_t)s);
        reference(&a, src, S, S, want, 40, 37, (uint64_t)s);
        for (i = 0; i < 40 * 37; i++) if (fabs(out[i] - want[i]) > w2) w2 = fabs(out[i] - want[i]);
        mir &= w2 < 1e-6;
    }
    CHECK(mir, "flip and random crop without a warp: the crop of the mirrored image");
    CHECK(worst < 1e-3, "warp (flip, rotate 30, zoom 0.3, shift 0.2, random crop) matches the documented "
          "geometry in double to %.2g (fixed point: 1e-3 allowed)", worst);
    CHECK(ones, "a white image stays exactly 1 under the warp");
}

/* 1-pixel-wide images and wild strengths (zoom past 1, shifts of many images,
   NaN) must stay inside the source (the sanitizer build checks) and in [0,1] */
static void test_extremes(void)
{
    static const int sizes[4][2] = { { 1, 1 }, { 1, 7 }, { 9, 1 }, { 3, 2 } };
    unsigned char src[63];
    float out[63];
    fer_augment a[3];
    int k, t, s, i, inside = 1;
    random_image(src, sizeof src, 10, 0, 255);
    fer_augment_defaults(&a[0]);
    a[0].erase_prob = 1.0f;
    memset(&a[1], 0, sizeof a[1]);
    a[1].rotate = 1e30f; a[1].zoom = 5.0f; a[1].shift = 100.0f; a[1].flip = 1; a[1].random_crop = 1;
    a[1].brightness = 3.0f; a[1].contrast = 4.0f;
    a[2] = a[1];
    a[2].rotate = (float)NAN; a[2].shift = (float)NAN; a[2].zoom = (float)NAN;
    a[2].brightness = (float)NAN; a[2].erase_prob = 1.0f; a[2].erase_min = (float)NAN;
    a[2].erase_aspect = (float)NAN;
    for (k = 0; k < 3; k++)
        for (t = 0; t < 4; t++)
            for (s = 0; s < 20; s++) {
                int h = sizes[t][0], w = sizes[t][1];
                fer_augment_image(&a[k], src, h, w, out, h, w, (uint64_t)s);
                for (i = 0; i < h * w; i++) inside &= out[i] >= 0.0f && out[i] <= 1.0f;
            }
    CHECK(inside, "1x1, 1x7, 9x1, 3x2 images with the defaults, wild and NaN strengths stay in [0,1]");
}

static void test_flip(void)
{
    unsigned char src[S * S];
    float out[S * S], u[10];
    fer_augment a;
    int s, y, x, mirrors = 0, idents = 0, agree = 1;
    random_image(src, sizeof src, 3, 0, 255);
    memset(&a, 0, sizeof a);
    a.flip = 1;
    for (s = 0; s < 64; s++) {
        int id = 1, mi = 1;
        fer_augment_image(&a, src, S, S, out, S, S, (uint64_t)s);
        for (y = 0; y < S; y++)
            for (x = 0; x < S; x++) {
                id &= out[y * S + x] == (float)src[y * S + x] / 255.0f;
                mi &= out[y * S + x] == (float)src[y * S + S - 1 - x] / 255.0f;
            }
        draws((uint64_t)s, u);
        agree &= (u[0] < 0.5f) ? mi : id;
        mirrors += mi; idents += id;
    }
    CHECK(mirrors > 10 && idents > 10 && mirrors + idents == 64,
          "flip alone: exact mirror (%d) or exact identity (%d) of 64", mirrors, idents);
    CHECK(agree, "mirrored exactly when the first draw is below 1/2");
}

static void test_rotation(void)
{
    unsigned char dsc[S * S], bar[S * S];
    float in[S * S], out[S * S], u[10];
    fer_augment a;
    uint64_t seed, pos = 0, neg = 0;
    int y, x, i;
    double mx, my, deg, d_disc, d_bar;
    disc(dsc, 14.0f);
    memset(bar, 0, sizeof bar);
    for (y = 22; y < 26; y++) for (x = 4; x < 44; x++) bar[y * S + x] = 255;
    memset(&a, 0, sizeof a);
    a.rotate = 10.0f;
    for (seed = 1; !pos || !neg; seed++) {         /* seeds turning by more than 8 degrees */
        draws(seed, u);
        if (2.0f * u[1] - 1.0f > 0.8f && !pos) pos = seed;
        if (2.0f * u[1] - 1.0f < -0.8f && !neg) neg = seed;
    }
    for (i = 0; i < 2; i++) {
        float ang;
        seed = i ? neg : pos;
        draws(seed, u);
        ang = (2.0f * u[1] - 1.0f) * 10.0f;
        for (y = 0; y < S * S; y++) in[y] = dsc[y] / 255.0f;
        fer_augment_image(&a, dsc, S, S, out, S, S, seed);
        d_disc = mean_abs_diff(in, out, S * S);
        for (y = 0; y < S * S; y++) in[y] = bar[y] / 255.0f;
        fer_augment_image(&a, bar, S, S, out, S, S, seed);
        d_bar = mean_abs_diff(in, out, S * S);
        CHECK(d_disc < 0.004 && d_bar > 10 * d_disc,
              "turning %.2f deg keeps a centred disc (%.5f) and moves a bar (%.5f)", ang, d_disc, d_bar);
        moments(out, S, S, &mx, &my, &deg);
        CHECK(fabs(deg - ang) < 0.3 && fabs(mx - 23.5) < 0.01 && fabs(my - 23.5) < 0.01,
              "the bar turns clockwise on screen by %.2f deg about the centre: %.2f, centre (%.3f, %.3f)",
              ang, deg, mx, my);
    }
}

static void test_shift(void)
{
    unsigned char blob[S * S];
    float in[S * S], out[S * S], u[10];
    fer_augment a;
    double mx0, my0, mx, my, deg;
    int y, x, s, ok = 1;
    for (y = 0; y < S; y++)
        for (x = 0; x < S; x++)
            blob[y * S + x] = (unsigned char)(255.0 * exp(-((x - 20) * (x - 20) + (y - 26) * (y - 26)) / 18.0) + 0.5);
    for (y = 0; y < S * S; y++) in[y] = blob[y] / 255.0f;
    moments(in, S, S, &mx0, &my0, &deg);
    memset(&a, 0, sizeof a);
    a.shift = 0.1f;
    for (s = 0; s < 10; s++) {
        double ex, ey;
        fer_augment_image(&a, blob, S, S, out, S, S, (uint64_t)s + 100);
        draws((uint64_t)s + 100, u);
        ex = (2.0f * u[3] - 1.0f) * 0.1f * S; ey = (2.0f * u[4] - 1.0f) * 0.1f * S;
        moments(out, S, S, &mx, &my, &deg);
        if (fabs(mx - mx0 - ex) > 0.01 || fabs(my - my0 - ey) > 0.01) {
            ok = 0;
            printf("  shift by (%.3f, %.3f) moved the centre of mass by (%.3f, %.3f)\n", ex, ey, mx - mx0, my - my0);
        }
    }
    CHECK(ok, "shift moves a blob's centre of mass by (dx, dy) to 0.01 pixel (10 seeds)");
}

static void test_zoom(void)
{
    unsigned char dsc[S * S];
    float in[S * S], out[S * S], u[10];
    fer_augment a;
    uint64_t seed;
    int y, big = 0, small = 0;
    disc(dsc, 10.0f);
    for (y = 0; y < S * S; y++) in[y] = dsc[y] / 255.0f;
    memset(&a, 0, sizeof a);
    a.zoom = 0.2f;
    for (seed = 1; big < 3 || small < 3; seed++) {
        float sc;
        double ratio;
        draws(seed, u);
        sc = 1.0f + (2.0f * u[2] - 1.0f) * 0.2f;
        if (sc > 0.9f && sc < 1.1f) continue;
        fer_augment_image(&a, dsc, S, S, out, S, S, seed);
        ratio = sum(out, S * S) / sum(in, S * S);
        if (sc > 1.0f) big++; else small++;
        CHECK(fabs(ratio / (sc * sc) - 1.0) < 0.02, "zoom %.3f scales a centred disc's area by %.3f", sc, ratio);
    }
}

static void test_brightness_contrast(void)
{
    unsigned char mid[S * S], full[S * S];
    float in[S * S], out[S * S], u[10];
    fer_augment a;
    int s, i, exact_b = 1, exact_c = 1, inside = 1;
    double m0 = 0, v0 = 0, abs_db = 0, sum_db = 0, sum_ratio = 0;
    random_image(mid, sizeof mid, 4, 77, 178);       /* 0.3 .. 0.7: no clamping */
    random_image(full, sizeof full, 5, 0, 255);
    for (i = 0; i < S * S; i++) { in[i] = mid[i] / 255.0f; m0 += in[i]; }
    m0 /= S * S;
    for (i = 0; i < S * S; i++) v0 += (in[i] - m0) * (in[i] - m0);
    memset(&a, 0, sizeof a);
    a.brightness = 0.2f;
    for (s = 0; s < 200; s++) {
        double m = 0, b;
        fer_augment_image(&a, mid, S, S, out, S, S, (uint64_t)s);
        draws((uint64_t)s, u);
        b = (2.0f * u[7] - 1.0f) * 0.2f;
        m = sum(out, S * S) / (S * S);
        exact_b &= fabs(m - m0 - b) < 1e-5;
        abs_db += fabs(m - m0); sum_db += m - m0;
    }
    CHECK(exact_b, "brightness adds the drawn b to every pixel");
    CHECK(fabs(abs_db / 200 - 0.1) < 0.015 && fabs(sum_db / 200) < 0.02,
          "brightness 0.2: mean |change| %.4f (expect 0.1), mean change %.4f (expect 0)", abs_db / 200, sum_db / 200);
    memset(&a, 0, sizeof a);
    a.contrast = 0.2f;
    for (s = 0; s < 200; s++) {
        double m, v = 0, f;
        fer_augment_image(&a, mid, S, S, out, S, S, (uint64_t)s);
        draws((uint64_t)s, u);
        f = 1.0f + (2.0f * u[8] - 1.0f) * 0.2f;
        m = sum(out, S * S) / (S * S);
        for (i = 0; i < S * S; i++) v += (out[i] - m) * (out[i] - m);
        exact_c &= fabs(m - m0) < 1e-5 && fabs(sqrt(v / v0) - f) < 1e-4;
        sum_ratio += sqrt(v / v0);
    }
    CHECK(exact_c, "contrast keeps the mean and scales the spread by the drawn factor");
    CHECK(fabs(sum_ratio / 200 - 1.0) < 0.02, "contrast 0.2: mean spread ratio %.4f (expect 1)", sum_ratio / 200);
    a.brightness = 1.0f; a.contrast = 1.0f;
    for (s = 0; s < 100; s++) {
        fer_augment_image(&a, full, S, S, out, S, S, (uint64_t)s);
        for (i = 0; i < S * S; i++) inside &= out[i] >= 0.0f && out[i] <= 1.0f;
    }
    CHECK(inside, "brightness 1 and contrast 1 are clamped to [0,1]");
}

static void test_erase(void)
{
    unsigned char grey[S * S];
    float out[S * S], u[10], g = 128.0f / 255.0f;
    fer_augment a;
    int s, i, y, x, rect = 1, sized = 1, agree = 1, erased = 0, noise = 1;
    memset(grey, 128, sizeof grey);
    memset(&a, 0, sizeof a);
    a.erase_prob = 1.0f; a.erase_min = 0.05f; a.erase_max = 0.2f; a.erase_aspect = 3.0f;
    for (s = 0; s < 100; s++) {
        int y0 = S, y1 = -1, x0 = S, x1 = -1, n = 0, eh, ew;
        double lo, hi;
        fer_augment_image(&a, grey, S, S, out, S, S, (uint64_t)s);
        for (y = 0; y < S; y++)
            for (x = 0; x < S; x++)
                if (out[y * S + x] != g) {
                    n++;
                    noise &= out[y * S + x] >= 0.0f && out[y * S + x] < 1.0f;
                    if (y < y0) y0 = y;
                    if (y > y1) y1 = y;
                    if (x < x0) x0 = x;
                    if (x > x1) x1 = x;
                }
        eh = y1 - y0 + 1; ew = x1 - x0 + 1;
        rect &= n > 0 && n == eh * ew && eh < S && ew < S;
        /* the sides are rounded: the drawn ones lie within half a pixel of them */
        lo = (eh - 0.5) * (ew - 0.5); hi = (eh + 0.5) * (ew + 0.5);
        if (!(lo <= 0.2 * S * S && hi >= 0.05 * S * S && (eh - 0.5) / (ew + 0.5) <= 3.0 &&
              (ew - 0.5) / (eh + 0.5) <= 3.0)) {
            sized = 0;
            printf("  seed %d erased %d x %d\n", s, eh, ew);
        }
    }
    CHECK(rect, "erasing with probability 1 changes one rectangle, strictly inside (100 seeds)");
    CHECK(sized, "its area is 5%%..20%% of the image and its aspect within 1/3..3, up to rounding");
    CHECK(noise, "filled with noise in [0,1)");
    a.erase_prob = 0.5f;
    for (s = 0; s < 100; s++) {
        int changed = 0;
        fer_augment_image(&a, grey, S, S, out, S, S, (uint64_t)s);
        for (i = 0; i < S * S; i++) changed |= out[i] != g;
        draws((uint64_t)s, u);
        agree &= changed == (u[9] < 0.5f);
        erased += changed;
    }
    CHECK(agree && erased > 30 && erased < 70, "erasing p 0.5: %d of 100, exactly when the tenth draw < 0.5", erased);
}

static void test_random_crop(void)
{
    unsigned char ramp[12 * 12];
    float out[8 * 8], u[10];
    fer_augment a;
    int hit[5][5], s, y, x, exact = 1, all = 1, agree = 1;
    for (y = 0; y < 12; y++) for (x = 0; x < 12; x++) ramp[y * 12 + x] = (unsigned char)(y * 16 + x);
    memset(hit, 0, sizeof hit);
    memset(&a, 0, sizeof a);
    a.random_crop = 1;
    for (s = 0; s < 400; s++) {
        int v, oy, ox;
        fer_augment_image(&a, ramp, 12, 12, out, 8, 8, (uint64_t)s);
        v = (int)(out[0] * 255.0f + 0.5f);
        oy = v / 16; ox = v % 16;
        if (oy > 4 || ox > 4) { exact = 0; continue; }
        hit[oy][ox]++;
        for (y = 0; y < 8; y++)
            for (x = 0; x < 8; x++) exact &= out[y * 8 + x] == (float)ramp[(y + oy) * 12 + x + ox] / 255.0f;
        draws((uint64_t)s, u);
        agree &= oy == (int)(u[5] * 5.0f) && ox == (int)(u[6] * 5.0f);
    }
    for (y = 0; y < 5; y++) for (x = 0; x < 5; x++) all &= hit[y][x] > 0;
    CHECK(exact, "random crop 12 -> 8 is an exact crop at an offset in [0,4] x [0,4]");
    CHECK(all, "every one of the 25 offsets occurs in 400 seeds");
    CHECK(agree, "the offset is floor(u6 * 5), floor(u7 * 5)");
}

static void test_normalize(void)
{
    fer_model m;
    unsigned char px[8 * 8];
    float want[8 * 8], got[8 * 8];
    int norm, i;
    random_image(px, sizeof px, 6, 0, 255);
    px[0] = 0; px[1] = 255;
    memset(&m, 0, sizeof m);
    m.input.c = 1; m.input.h = 8; m.input.w = 8;
    m.pre.store_h = 8; m.pre.store_w = 8;
    m.pre.mean = 0.52f; m.pre.std = 0.23f;
    for (norm = FER_NORM_UNIT; norm <= FER_NORM_MEANSTD; norm++) {
        double worst = 0;
        m.pre.norm = norm;
        CHECK(fer_preprocess(&m, px, 8, 8, 8, want) == FER_OK, "preprocess");
        for (i = 0; i < 64; i++) got[i] = px[i] / 255.0f;
        fer_normalize(&m.pre, got, 64);
        for (i = 0; i < 64; i++) if (fabs(got[i] - want[i]) > worst) worst = fabs(got[i] - want[i]);
        CHECK(worst < 1e-6, "fer_normalize(pixels / 255) == fer_preprocess(pixels), norm %d: %.2g", norm, worst);
    }
}

/* 4 classes of 8x8 images, counts {5, 2, 0, 8}, labels interleaved */
static void make_set(fer_dataset *d, budget *b)
{
    static const int lab[15] = { 3, 0, 1, 3, 0, 3, 3, 0, 1, 3, 0, 3, 3, 0, 3 };
    memset(d, 0, sizeof *d);
    d->alloc_ctx = b;
    d->n = 15; d->h = 8; d->w = 8; d->n_classes = 4;
    d->pixels = (unsigned char *)FER_MALLOC(15 * 64, b);
    d->labels = (int *)FER_MALLOC(15 * sizeof(int), b);
    random_image(d->pixels, 15 * 64, 7, 0, 255);
    memcpy(d->labels, lab, sizeof lab);
}

static int copy_of_class(const fer_dataset *d, int j, int n_orig)
{
    int i;
    for (i = 0; i < n_orig; i++)
        if (d->labels[i] == d->labels[j] && !memcmp(d->pixels + (size_t)i * 64, d->pixels + (size_t)j * 64, 64))
            return 1;
    return 0;
}

static void test_oversample(void)
{
    fer_dataset d, e, o;
    fer_augment zero, def;
    budget b = { -1, 0 };
    int i, counts[4], copies = 1, fresh = 1, order = 1;
    unsigned char *p0;
    memset(&zero, 0, sizeof zero);
    fer_augment_defaults(&def);
    make_set(&o, &b);

    make_set(&d, &b);
    CHECK(fer_dataset_oversample(&d, 6, &zero, 1) == FER_OK, "oversample: %s", d.error);
    memset(counts, 0, sizeof counts);
    for (i = 0; i < d.n; i++) counts[d.labels[i]]++;
    CHECK(d.n == 20 && counts[0] == 6 && counts[1] == 6 && counts[2] == 0 && counts[3] == 8,
          "counts {5,2,0,8} -> {%d,%d,%d,%d} (n %d): below 6 raised to 6, empty and larger classes untouched",
          counts[0], counts[1], counts[2], counts[3], d.n);
    CHECK(!memcmp(d.pixels, o.pixels, 15 * 64) && !memcmp(d.labels, o.labels, 15 * sizeof(int)),
          "the originals come first, unchanged");
    order = d.n == 20 && d.labels[15] == 0 && d.labels[16] == 1 && d.labels[19] == 1;
    CHECK(order, "then the copies, class by class");
    for (i = 15; i < d.n; i++) copies &= copy_of_class(&d, i, 15);
    CHECK(copies, "zero strength appends exact copies of images of the same class");
    fer_dataset_free(&d);

    make_set(&d, &b);
    make_set(&e, &b);
    CHECK(fer_dataset_oversample(&d, 6, &def, 77) == FER_OK && fer_dataset_oversample(&e, 6, &def, 77) == FER_OK,
          "oversample with the defaults");
    CHECK(d.n == 20 && e.n == 20 && !memcmp(d.pixels, e.pixels, 20 * 64) && !memcmp(d.labels, e.labels, 20 * sizeof(int)),
          "the same seed gives the same data set");
    for (i = 15; i < d.n; i++) fresh &= !copy_of_class(&d, i, 15);
    CHECK(fresh, "augmented copies differ from every original of their class");
    fer_dataset_free(&e);
    make_set(&e, &b);
    CHECK(fer_dataset_oversample(&e, 6, &def, 78) == FER_OK && memcmp(d.pixels + 15 * 64, e.pixels + 15 * 64, 5 * 64),
          "another seed, other copies");
    fer_dataset_free(&e);
    fer_dataset_free(&d);

    make_set(&d, &b);
    p0 = d.pixels;
    CHECK(fer_dataset_oversample(&d, 5, NULL, 1) == FER_OK && d.n == 18 && d.pixels != p0,
          "target 5 only raises class 1 (n %d)", d.n);
    p0 = d.pixels;
    CHECK(fer_dataset_oversample(&d, 2, &def, 1) == FER_OK && d.n == 18 && d.pixels == p0,
          "a target every class meets changes nothing");
    CHECK(fer_dataset_oversample(&d, 0, &def, 1) == FER_ERR_ARG && strstr(d.error, "target") && d.n == 18 &&
          d.pixels == p0, "target 0 refused: %s", d.error);
    CHECK(fer_dataset_oversample(&d, 1 << 25, &def, 1) == FER_ERR_ARG && d.n == 18, "target 2^25 refused: %s", d.error);
    CHECK(fer_dataset_oversample(&d, 1 << 24, &def, 1) == FER_ERR_ARG && strstr(d.error, "16777216") && d.n == 18,
          "a total over 2^24 refused: %s", d.error);
    for (i = 0; i < 3; i++) {
        d.error[0] = 0;
        b.left = i;
        CHECK(fer_dataset_oversample(&d, 9, &def, 1) == FER_ERR_NOMEM && d.n == 18 && d.pixels == p0 &&
              strstr(d.error, "allocate"), "allocation %d failing: out of memory, d unchanged: %s", i + 1, d.error);
    }
    b.left = -1;
    CHECK(fer_dataset_oversample(&d, 9, &def, 1) == FER_OK && d.n == 27, "and then it succeeds (n %d)", d.n);
    fer_dataset_free(&d);
    fer_dataset_free(&o);
    CHECK(b.live == 0, "every allocation freed (%ld live)", b.live);
}

static void time_defaults(void)
{
    unsigned char src[S * S];
    static float out[S * S];
    fer_augment a;
    struct timespec t0, t1;
    int i, n = 20000;
    double us, check = 0;
    random_image(src, sizeof src, 8, 0, 255);
    fer_augment_defaults(&a);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (i = 0; i < n; i++) {
        fer_augment_image(&a, src, S, S, out, S, S, (uint64_t)i);
        check += out[i % (S * S)];
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    us = ((double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-3) / n;
    printf("augment: %.2f us per 48x48 image with fer_augment_defaults (checksum %.1f)\n", us, check);
}

int main(void)
{
    test_identity();
    test_seeds();
    test_warp_reference();
    test_extremes();
    test_flip();
    test_rotation();
    test_shift();
    test_zoom();
    test_brightness_contrast();
    test_erase();
    test_random_crop();
    test_normalize();
    test_oversample();
    time_defaults();
    return test_done("test_augment");
}
