/* test_cli: build/fer-train end to end. Each run trains mini_xception for an epoch
   or three on a tiny generated data set (three classes of 48x48 stripes, as PGM
   files, and a small fer2013.csv) in a scratch folder, and the test checks the
   exit status, what the program prints, the log, the model and the checkpoint.
   The program is argv[1], else $FER_TRAIN (make test sets it to $(B)/fer-train),
   else build/fer-train. */
#define _POSIX_C_SOURCE 200809L
#define FER_IMPLEMENTATION
#include "fer.h"
#include "test.h"
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum { S = 48, NPX = S * S };

static char cli_path[1024];      /* absolute: the runs happen in the scratch folder */
static char last_cmd[4096];      /* the last command run, for failure messages       */
static char out[1 << 16];        /* its stdout and stderr, truncated                  */

/* The whole file at path, NUL-terminated, or NULL; *len its size. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *p = NULL;
    long n;
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (p = (char *)malloc((size_t)n + 1)) != NULL) {
        *len = fread(p, 1, (size_t)n, f);
        p[*len] = 0;
    }
    fclose(f);
    return p;
}

/* 1 if all n bytes were written. */
static int write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(data, 1, n, f) == n;
    if (f) ok &= fclose(f) == 0;
    return ok;
}

/* Runs the program with args in the scratch folder; its stdout and stderr land
   in out[]. Returns its exit status, -1 if it did not exit. */
static int cli(const char *args)
{
    char cmd[sizeof last_cmd + 32], *text;
    size_t n = 0;
    int st;
    snprintf(last_cmd, sizeof last_cmd, "'%s' %s", cli_path, args);
    snprintf(cmd, sizeof cmd, "%s >out.txt 2>&1", last_cmd);
    st = system(cmd);
    text = slurp("out.txt", &n);
    n = n < sizeof out ? n : sizeof out - 1;
    if (text) memcpy(out, text, n);
    out[n] = 0;
    free(text);
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A training run: the flags every run shares (data/, mini_xception, m.fer), then
   args, whose --data or --out wins. */
static int train(const char *args)
{
    char all[2048];
    snprintf(all, sizeof all, "--data data --model mini_xception --batch 16 --threads 2 --progress never --out m.fer %s", args);
    return cli(all);
}

/* The last run exited with want and its output holds text (when given). */
static void expect(int rc, int want, const char *text)
{
    CHECK(rc == want && (!text || strstr(out, text)), "%s\n  exit %d, want %d%s%s%s; output:\n%s", last_cmd, rc, want,
          text ? ", output holding '" : "", text ? text : "", text ? "'" : "", out);
}

/* Lines in a text file, or -1 if it cannot be read. */
static int count_lines(const char *path)
{
    size_t n, i;
    char *p = slurp(path, &n);
    int lines = 0;
    if (!p) return -1;
    for (i = 0; i < n; i++) lines += p[i] == '\n';
    free(p);
    return lines;
}

/* Image i of class c: stripes whose direction says the class (horizontal,
   vertical, diagonal), a phase from i, and noise. */
static void stripes(unsigned char *px, int c, int i)
{
    unsigned long long seed = (unsigned long long)(c * 1000 + i);
    int x, y;
    for (y = 0; y < S; y++)
        for (x = 0; x < S; x++) {
            int u = c == 0 ? y : c == 1 ? x : x + y;
            int v = ((u + i) / 4) % 2 ? 190 : 70;
            px[y * S + x] = (unsigned char)(v + (int)(25.0f * test_rand(&seed)));
        }
}

/* root/split/{angry,happy,sad}/NNN.pgm, n[c] images of class c from image index
   first; 1 if every file was written. */
static int make_split(const char *root, const char *split, const int n[3], int first)
{
    static const char *const names[3] = { "angry", "happy", "sad" };
    char path[512], head[32];
    unsigned char file[32 + NPX];
    int c, i, ok = 1, hl = snprintf(head, sizeof head, "P5\n%d %d\n255\n", S, S);
    mkdir(root, 0755);
    snprintf(path, sizeof path, "%s/%s", root, split);
    mkdir(path, 0755);
    for (c = 0; c < 3; c++) {
        snprintf(path, sizeof path, "%s/%s/%s", root, split, names[c]);
        mkdir(path, 0755);
        for (i = 0; i < n[c]; i++) {
            memcpy(file, head, (size_t)hl);
            stripes(file + hl, c, first + i);
            snprintf(path, sizeof path, "%s/%s/%s/%03d.pgm", root, split, names[c], i);
            ok &= write_file(path, file, (size_t)hl + NPX);
        }
    }
    return ok;
}

/* fer2013.csv: 48 Training and 14 PublicTest rows; labels cycle through angry (0),
   happy (3) and sad (4), drawn as make_split draws them. 1 if written. */
static int make_csv(const char *path)
{
    static const int label[3] = { 0, 3, 4 };
    FILE *f = fopen(path, "w");
    unsigned char px[NPX];
    int r, k, ok = f != NULL;
    if (f) {
        fprintf(f, "emotion,pixels,Usage\n");
        for (r = 0; r < 62; r++) {
            stripes(px, r % 3, r);
            fprintf(f, "%d,", label[r % 3]);
            for (k = 0; k < NPX; k++) fprintf(f, k ? " %d" : "%d", px[k]);
            fprintf(f, ",%s\n", r < 48 ? "Training" : "PublicTest");
        }
        ok = !ferror(f);
        ok &= fclose(f) == 0;
    }
    return ok;
}

static void test_help_and_bad_flags(void)
{
    static const struct { const char *args, *says; } bad[] = {   /* each after the flags train() gives */
        { "--lr abc", "--lr 'abc': expected a number" },
        { "--epochs 0", "--epochs '0'" },
        { "--opt foo", "--opt 'foo': expected one of" },
        { "--sched nope", "--sched 'nope'" },
        { "--bogus 1", "unknown option '--bogus'" },
        { "--erase-area 0.5,0.1", "--erase-area '0.5,0.1'" },
        { "--epochs", "--epochs needs a value" },
        { "--input 64 --size 48", "--input cannot exceed --size" },
        /* found once the data are loaded */
        { "--model nosuchmodel", "unknown model 'nosuchmodel'; the zoo has: baseline_cnn" },
        /* found once the data are loaded */
        { "--class-weights 1,2", "--class-weights has 2 values, the data 3 classes" },
    };
    int i, rc;
    expect(cli("--help"), 0, "usage: fer-train");
    CHECK(strstr(out, "--sched") && strstr(out, "--focal-gamma") && strstr(out, "--swa") && strstr(out, "--oversample") &&
          strstr(out, "--checkpoint") && strstr(out, "optimizer\n") && strstr(out, "augmentation"),
          "--help lists the option groups:\n%s", out);
    expect(cli(""), 2, "--data, --model and --out are required");
    expect(cli("--data data --model mini_xception"), 2, "--out");
    for (i = 0; i < (int)(sizeof bad / sizeof bad[0]); i++) expect(train(bad[i].args), 2, bad[i].says);
    rc = train("--data /nonexistent/dir");
    CHECK((rc == 1 || rc == 2) && strstr(out, "/nonexistent/dir"), "%s\n  exit %d, want 1 or 2 naming the path:\n%s",
          last_cmd, rc, out);
}

/* Two epochs with a log and a checkpoint, resumed to three, then once more at the end. */
static void test_train_and_resume(void)
{
    static const char header[] = "epoch,train_loss,train_acc,train_f1,val_loss,val_acc,val_f1,lr,seconds,images_per_s,skipped_steps\n";
    fer_model m;
    struct stat sb;
    char *log;
    size_t n;
    expect(train("--epochs 2 --log L.csv --checkpoint CK"), 0, "best val");
    CHECK(strstr(out, "epoch 1/2 ") && strstr(out, "epoch 2/2 ") && !strstr(out, "resumed"), "two epochs:\n%s", out);
    log = slurp("L.csv", &n);
    CHECK(log && !strncmp(log, header, strlen(header)) && !strncmp(log + strlen(header), "1,", 2) &&
          strstr(log, "\n2,") && count_lines("L.csv") == 3, "L.csv: a header and 2 rows:\n%s", log ? log : "(missing)");
    free(log);
    CHECK(stat("CK/last.ferc", &sb) == 0 && sb.st_size > 0, "CK/last.ferc written");
    if (fer_model_load(&m, "m.fer", NULL) == FER_OK) {
        CHECK(m.n_classes == 3 && !strcmp(m.class_names[0], "angry") && !strcmp(m.class_names[1], "happy") &&
              !strcmp(m.class_names[2], "sad") && !strcmp(m.arch, "mini_xception") && m.input.h == S && m.input.w == S,
              "m.fer: mini_xception, 48x48, classes in sorted folder order (%d: %s %s %s)", m.n_classes,
              m.class_names[0], m.class_names[1], m.class_names[2]);
        fer_model_free(&m);
    } else CHECK(0, "m.fer loads: %s", m.error);

    expect(train("--epochs 3 --log L.csv --checkpoint CK"), 0, "resumed from CK/last.ferc after epoch 2");
    CHECK(strstr(out, "epoch 3/3 ") && !strstr(out, "epoch 2/3 ") && strstr(out, "best val"), "one more epoch:\n%s", out);
    log = slurp("L.csv", &n);
    CHECK(log && count_lines("L.csv") == 4 && strstr(log, "\n3,") && strstr(log + 1, "epoch,") == NULL,
          "L.csv: the header once, 3 rows:\n%s", log ? log : "(missing)");
    free(log);

    /* nothing left to train: it says where it stands and leaves everything as it is */
    expect(train("--epochs 3 --log L.csv --checkpoint CK"), 0, "all its epochs are done");
    CHECK(!strstr(out, "epoch 4") && !strstr(out, "epoch 3/3 ") && strstr(out, "best val"), "no epoch trained:\n%s", out);
    CHECK(count_lines("L.csv") == 4, "L.csv still has 3 rows");
}

/* A checkpoint that is not one: refused by name, and the model left alone. */
static void test_corrupt_checkpoint(void)
{
    static const char garbage[] = "this is not a checkpoint, only some bytes";
    char *before, *after;
    size_t nb = 0, na = 0;
    before = slurp("m.fer", &nb);
    CHECK(write_file("CK/last.ferc", garbage, sizeof garbage - 1), "write CK/last.ferc");
    expect(train("--epochs 4 --log L.csv --checkpoint CK"), 1, "CK/last.ferc");
    CHECK(strstr(out, "cannot resume") != NULL, "says it cannot resume:\n%s", out);
    after = slurp("m.fer", &na);
    CHECK(before && after && nb == na && !memcmp(before, after, nb), "m.fer unchanged");
    CHECK(count_lines("L.csv") == 4, "L.csv unchanged");
    free(before);
    free(after);
}

static void test_other_inputs(void)
{
    fer_model m;
    expect(train("--data noval --epochs 1"), 0, "validating on a seeded");
    expect(train("--data fer2013.csv --epochs 1 --out csv.fer"), 0, "train: 48 images, val: 14 images, 7 classes");
    if (fer_model_load(&m, "csv.fer", NULL) == FER_OK) {
        CHECK(m.n_classes == 7 && !strcmp(m.class_names[6], "neutral"), "csv.fer: FER2013's 7 classes (%d)", m.n_classes);
        fer_model_free(&m);
    } else CHECK(0, "csv.fer loads: %s", m.error);
}

/* Each option that changes how training runs, run to the end, and what it says
   of itself; one run also keeps a JSON lines log. */
static void test_option_runs(void)
{
    static const struct { const char *args, *says; } runs[] = {
        { "--epochs 2 --swa uniform --swa-start 1", "SWA weight average of 2 epochs" },
        { "--epochs 1 --swa ema --swa-start 1", "EMA weight average" },
        { "--epochs 2 --sched plateau --log L.jsonl", "epoch 2/2 " },
        { "--epochs 2 --sched multistep --milestones 1", "epoch 2/2 " },
        { "--epochs 1 --focal-gamma 2 --label-smoothing 0 --class-weights balanced", "epoch 1/1 " },
        { "--epochs 1 --oversample max", "to 16 images each: 36 -> 48 training images" },
        { "--epochs 2 --early-stop 1 --monitor loss", "best val loss" },
        { "--epochs 1 --val-tta flip", "epoch 1/1 " },
        { "--epochs 1 --aug none", "epoch 1/1 " },
        { "--epochs 1 --norm meanstd", "epoch 1/1 " },
        { "--epochs 1 --opt sgd --nesterov 1 --momentum 0.9", "epoch 1/1 " },
    };
    char *log;
    size_t n;
    int i;
    for (i = 0; i < (int)(sizeof runs / sizeof runs[0]); i++) {
        expect(train(runs[i].args), 0, runs[i].says);
        CHECK(strstr(out, "best val") != NULL, "%s: ends with the best val line:\n%s", runs[i].args, out);
    }
    log = slurp("L.jsonl", &n);
    CHECK(log && !strncmp(log, "{\"epoch\": 1,", 12) && strstr(log, "\n{\"epoch\": 2,") && count_lines("L.jsonl") == 2,
          "L.jsonl: one JSON line an epoch:\n%s", log ? log : "(missing)");
    free(log);
}

int main(int argc, char **argv)
{
    const char *cli_arg = argc > 1 ? argv[1] : getenv("FER_TRAIN"), *tmp = getenv("TMPDIR");
    static const int n_train[3] = { 8, 16, 12 }, n_val[3] = { 3, 3, 3 };   /* unbalanced, for the weights and oversampling */
    char dir[512], cwd[1024], cmd[600];
    int n;
    if (!cli_arg || !*cli_arg) cli_arg = "build/fer-train";
    if (!getcwd(cwd, sizeof cwd)) cwd[0] = 0;
    n = snprintf(cli_path, sizeof cli_path, "%s%s%s", cli_arg[0] == '/' ? "" : cwd, cli_arg[0] == '/' ? "" : "/", cli_arg);
    if (access(cli_arg, X_OK) != 0 || !cwd[0] || n >= (int)sizeof cli_path) {
        CHECK(0, "%s: no such program (build it with make %s, or name it: test_cli PATH or FER_TRAIN=PATH)", cli_arg, cli_arg);
        return test_done("test_cli");
    }
    snprintf(dir, sizeof dir, "%s/fer_test_cli_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir) || chdir(dir) != 0) {
        CHECK(0, "a scratch folder %s", dir);
        return test_done("test_cli");
    }
    CHECK(make_split("data", "train", n_train, 0) && make_split("data", "val", n_val, 100) &&
          make_split("noval", "train", n_train, 0) && make_csv("fer2013.csv"), "the data sets written in %s", dir);

    test_help_and_bad_flags();
    test_train_and_resume();
    test_corrupt_checkpoint();
    test_other_inputs();
    test_option_runs();

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(chdir(cwd) == 0 && system(cmd) == 0, "cleanup %s", dir);
    return test_done("test_cli");
}
