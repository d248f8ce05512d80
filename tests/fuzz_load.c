/* tests/fuzz_load.c - libFuzzer harness for the .fer loader (not part of make test).

   Build, write the seeds and fuzz for 3 minutes, from the repository root:

     clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -I. tests/fuzz_load.c -lm -o build/fuzz_load && mkdir -p build/fuzz_corpus && FER_FUZZ_SEEDS=build/fuzz_corpus build/fuzz_load build/fuzz_corpus -max_total_time=180

   FER_FUZZ_SEEDS=dir makes the harness write a few small valid model files into
   dir before fuzzing starts (a corpus directory that already has them is fine).
   Each input is loaded twice: as given (the size and checksum checks), and with
   its last 4 bytes set to the right CRC-32, so mutations get past the checksum to
   the field checks. A model that loads must run a forward pass at batch 1 (when
   small enough to be quick), and saving it must give a file that loads and saves
   back to the same bytes; anything else stops the fuzzer with a crash. */
#define FER_NO_STB_IMAGE
#define FER_IMPLEMENTATION
#include "fer.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_MACS 2e7                    /* forward only on models this small */
#define FUZZ_MAX_ACT  ((size_t)1 << 22)      /* floats of activations, all nodes  */

static void fuzz_fail(const char *what, const fer_model *m)
{
    fprintf(stderr, "fuzz_load: %s: %s\n", what, m ? m->error : "");
    abort();
}

static void fuzz_forward(const fer_model *m)
{
    fer_workspace ws;
    size_t act = 0, in_len = (size_t)m->input.c * m->input.h * m->input.w, k;
    float *x;
    int i;
    for (i = 0; i < m->n_nodes; i++)
        act += (size_t)m->nodes[i].out.c * m->nodes[i].out.h * m->nodes[i].out.w;
    if (act > FUZZ_MAX_ACT || fer_model_macs(m) > FUZZ_MAX_MACS) return;
    if (!(x = (float *)malloc(sizeof(float) * in_len))) return;
    for (k = 0; k < in_len; k++) x[k] = (float)(k % 13) * 0.1f - 0.6f;
    if (fer_workspace_init(&ws, m, 1, 0) == FER_OK) {
        if (fer_forward(m, &ws, x, 1, 0) != FER_OK) fuzz_fail("forward refused a loaded model", NULL);
        if (!fer_output(m, &ws)) fuzz_fail("no output", NULL);
    }
    fer_workspace_free(&ws);
    free(x);
}

/* A loaded model saves; the saved file loads and saves to the same bytes. */
static void fuzz_resave(fer_model *m)
{
    void *b1 = NULL, *b2 = NULL;
    size_t n1 = 0, n2 = 0;
    fer_model l;
    if (fer_model_save_mem(m, &b1, &n1, NULL) != FER_OK) fuzz_fail("a loaded model does not save", m);
    if (fer_model_load_mem(&l, b1, n1, NULL) != FER_OK) fuzz_fail("a saved model does not load", &l);
    if (fer_model_save_mem(&l, &b2, &n2, NULL) != FER_OK) fuzz_fail("a reloaded model does not save", &l);
    if (n1 != n2 || memcmp(b1, b2, n1) != 0) fuzz_fail("save(load(save(m))) differs from save(m)", NULL);
    fer_model_free(&l);
    free(b1);
    free(b2);
}

static void fuzz_one(const unsigned char *data, size_t size)
{
    fer_model m;
    fer_result r = fer_model_load_mem(&m, data, size, NULL);
    if (r == FER_OK) {
        fuzz_forward(&m);
        fuzz_resave(&m);
        fer_model_free(&m);
    } else {
        if (!m.error[0]) fuzz_fail("a rejection without a message", NULL);
        if (m.nodes || m.arena) fuzz_fail("a rejected load left memory in the model", NULL);
        if (r != FER_ERR_FORMAT && r != FER_ERR_NOMEM) fuzz_fail("a rejection that is not FER_ERR_FORMAT", &m);
    }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    unsigned char *fixed;
    uint32_t crc;
    fuzz_one(data, size);
    if (size < 8 || !(fixed = (unsigned char *)malloc(size))) return 0;
    memcpy(fixed, data, size);
    crc = fer_crc32(fixed, size - 4);
    fixed[size - 4] = (unsigned char)crc; fixed[size - 3] = (unsigned char)(crc >> 8);
    fixed[size - 2] = (unsigned char)(crc >> 16); fixed[size - 1] = (unsigned char)(crc >> 24);
    fuzz_one(fixed, size);
    free(fixed);
    return 0;
}

/* ---- seeds: small valid models covering every op ---- */

static void fuzz_seed(fer_model *m, const char *dir, const char *name)
{
    char path[1024];
    size_t k;
    if (fer_model_finalize(m, 1) != FER_OK) { fprintf(stderr, "seed %s: %s\n", name, m->error); exit(1); }
    for (k = 0; k < m->n_buffers; k++) m->buffers[k] = 1.0f;   /* BN running var > 0 */
    snprintf(path, sizeof(path), "%s/%s.fer", dir, name);
    if (fer_model_save(m, path) != FER_OK) { fprintf(stderr, "seed %s: %s\n", name, m->error); exit(1); }
    fer_model_free(m);
}

static void fuzz_write_seeds(const char *dir)
{
    fer_model m;
    int x, a, b, xs[2];
    fer_model_init(&m, 1, 6, 6, 3, NULL);                 /* conv + gap */
    fer_gap(&m, fer_conv(&m, FER_INPUT, 3, 3, 3, 1, 1, 1, 1));
    fuzz_seed(&m, dir, "tiny");

    fer_model_init(&m, 2, 8, 8, 3, NULL);                 /* groups, bn, pool, shared dense */
    x = fer_act(&m, fer_bn(&m, fer_conv(&m, FER_INPUT, 4, 3, 3, 1, 1, 2, 1)), FER_OP_RELU);
    x = fer_gap(&m, fer_maxpool(&m, x, 2, 2, 0));
    a = fer_dense(&m, x, 4, 1);
    b = fer_dense_shared(&m, x, a);
    x = fer_dropout(&m, fer_add(&m, a, b), 0.5f);
    fer_dense(&m, x, 3, 1);
    fuzz_seed(&m, dir, "dense");

    fer_model_init(&m, 2, 8, 8, 4, NULL);                 /* every other op, few channels */
    x = fer_conv_bn_act(&m, FER_INPUT, 4, 3, 1, FER_OP_RELU6);
    a = fer_leaky_relu(&m, x, 0.1f);
    b = fer_avgpool(&m, x, 3, 1, 1);
    xs[0] = a; xs[1] = b;
    x = fer_concat(&m, 2, xs);
    x = fer_block_se(&m, x, 4);
    x = fer_block_cbam(&m, x, 4);
    x = fer_block_inverted_residual(&m, x, 8, 2, 2);
    x = fer_act(&m, fer_act(&m, fer_bn(&m, x), FER_OP_PRELU), FER_OP_IDENTITY);
    x = fer_flatten(&m, fer_gmp(&m, x));
    fer_softmax(&m, fer_dense(&m, x, 4, 0));
    fuzz_seed(&m, dir, "all_ops");

    fer_model_init(&m, 1, 8, 8, 2, NULL);                 /* a folded conv-bn-relu */
    fer_gap(&m, fer_conv_bn_act(&m, FER_INPUT, 2, 3, 1, FER_OP_RELU));
    if (fer_model_finalize(&m, 1) == FER_OK && fer_model_fold_bn(&m) == FER_OK) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/folded.fer", dir);
        if (fer_model_save(&m, path) != FER_OK) { fprintf(stderr, "seed folded: %s\n", m.error); exit(1); }
    }
    fer_model_free(&m);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *dir = getenv("FER_FUZZ_SEEDS");
    (void)argc; (void)argv;
    if (dir && *dir) fuzz_write_seeds(dir);
    return 0;
}
