/* fer.h - v0.11.0 - facial expression recognition in one C header - MIT or public domain

   Train, evaluate and run the CNNs of the facial-expression literature on a CPU,
   from raw pixels to "happy 0.91": no framework, no Python, no GPU.

   DO THIS in exactly one C or C++ file, before the #include:

       #define FER_IMPLEMENTATION
       #include "fer.h"

   and just #include "fer.h" everywhere else. Images are decoded by stb_image
   (Debian: apt-get install libstb-dev; compile with -I/usr/include/stb) unless
   FER_NO_STB_IMAGE is defined. Link with -lm (and -lpthread where threads are used).

   QUICK START (inference)

       fer_model m;
       fer_workspace ws;
       if (fer_model_load(&m, "weights/mini_xception.fer", NULL) != FER_OK) {
           fprintf(stderr, "%s\n", m.error); return 1;
       }
       fer_workspace_init(&ws, &m, 1, 0);              // batch 1, inference only
       fer_workspace_freeze(&ws, &m);                  // weights fixed: prepared once
       // or fer_workspace_quantize(&ws, &m, calib, n): convs in int8, calibrated
       // on n preprocessed training images (AVX-512 VNNI: resnet_lite,
       // baseline_cnn, resnet18 1.8-3.1x faster at batch 1)
       fer_forward(&m, &ws, pixels, 1, 0);             // pixels: 1 x C x H x W floats
       const float *logits = fer_output(&m, &ws);      // n_classes floats
       ...
       fer_workspace_free(&ws);
       fer_model_free(&m);

   QUICK START (your own network)

       fer_model m;
       fer_model_init(&m, 1, 48, 48, 7, NULL);         // input 1x48x48, 7 classes
       int x = FER_INPUT;
       x = fer_conv_bn_act(&m, x, 32, 3, 1, FER_OP_RELU);
       x = fer_block_cbam(&m, x, 16);
       x = fer_gap(&m, x);
       x = fer_dense(&m, x, 7, 1);
       if (fer_model_finalize(&m, 42) != FER_OK) ...   // allocates and initialises

   QUICK START (training)

       fer_model m;
       fer_dataset tr, va;
       fer_train_config cfg;
       fer_trainer t;
       fer_epoch_stats st;
       fer_dataset_load_folder(&tr, "fer2013/train", 48, 48, 2, NULL);   // or _load_csv
       fer_dataset_load_folder(&va, "fer2013/val", 48, 48, 2, NULL);
       fer_zoo_build(&m, "mini_xception", 1, 48, 48, tr.n_classes, 1, NULL);
       fer_train_config_defaults(&cfg);                // Adam, cosine, augmentation, ...
       cfg.threads = 2;
       if (fer_trainer_init(&t, &m, &cfg, &tr, NULL) != FER_OK) ... t.error
       while (t.epoch < cfg.epochs && !t.stop) {
           if (fer_trainer_epoch(&t, &tr, &va, &st, NULL, NULL) != FER_OK) ...
           if (st.improved) fer_model_save(&m, "best.fer");
           fer_trainer_save(&t, "last.ferc");          // resume with fer_trainer_load
       }

   CONFIGURATION (define before the #include that has FER_IMPLEMENTATION)

       FER_STATIC                 every function static (private copy per translation unit)
       FERDEF                     the linkage of every public function (default extern)
       FER_MALLOC(sz,ctx)         allocator, with the user context given to *_init;
       FER_FREE(p,ctx)            define both or neither (default malloc/free)
       FER_ASSERT(x)              internal invariant checks (default assert); never fires
                                  on bad input, which is reported as a fer_result
       FER_NO_STDIO               no file functions (memory-buffer load/save only)
       FER_NO_SIMD                scalar reference kernels only (no intrinsics)
       FER_NO_THREADS             no pthreads: parallel loops run on the calling thread
       FER_NO_STB_IMAGE           no image decoding (you hand fer.h pixels yourself)

   CONTENTS

       1. Configuration and platform
       2. Public API
          2.1 results            2.2 shapes, instruction sets   2.3 kernels (GEMM, axpy)
          2.4 layers: forward/backward pairs                    2.5 graph, blocks, model
          2.6 model zoo          2.7 inference, preprocessing, images
          2.8 data, augmentation 2.9 training: loss, optimizers, schedules, the loop
          2.10 metrics, TTA, t-SNE  2.11 model file (.fer), checkpoints (.ferc)
       3. Implementation, in the same order (3.1 is configuration and platform)

   LAYOUT: every activation is float32 NCHW (batch, channel, row, column), rows
   contiguous. Conv weights are [cout][cin/groups][kh][kw], dense weights [out][in],
   exactly as PyTorch stores them, so weights convert without transposes.

   CHANGELOG
       0.11.0 (2026-12-07) batch-1 float latency (AVX-512, frozen workspaces of
                           small batches): 3x3 convs on 10x10..24x24 planes as
                           Winograd F(4x4, 3x3) channels-last (transforms over
                           16 channels a vector, GEMMs of 9 tiles x 48
                           channels), convs of at most 36 output positions as
                           rows of 9 positions x 48 channels (resnet18's 6x6
                           ones); an inference workspace's early activation
                           buffers are shared once read (they stay in cache).
       0.10.0 (2026-12-07) fer_workspace_quantize (new): int8 convs for an
                           inference workspace, calibrated on a few hundred
                           images (per-conv input scale and zero point, per-
                           channel weight scales, batch norm and activation
                           folded into the float output); AVX-512 VNNI kernel
                           (8 channels x 48 positions a tile, the input as
                           planes of 4 channels' bytes), a plain-C reference
                           with the same results to the bit elsewhere.
                           Dense layers of 64+ inputs too (4 rows x 4 samples
                           a step). fer_predict_dataset_int8, fer-eval --int8,
                           an int8 latency column in fer-bench and bench-peers,
                           the VNNI peak in fer-peak.
       0.9.0 (2026-12-07)  fer_workspace_freeze (new): an inference workspace
                           makes its convs' Winograd weight transforms once,
                           not in every fer_forward, and runs 3x3 convs from
                           32 output tiles as Winograd (12x12 planes at batch
                           1); fer_predict_dataset, fer-predict, fer-embed and
                           fer-bench freeze their workspaces. AVX-512: 3x3
                           depthwise convs by rows where rows are 12+ floats,
                           the stride-2 one without microcoded expanding loads.
       0.8.3 (2026-12-07)  speed on AVX2 (a Zen 3 without AVX-512): Winograd
                           F(4x4, 3x3) forward on planes of 20x20 and more; the
                           3x3 depthwise convs (stride 1 and 2, forward, input
                           and weight gradients) and the one-channel 3x3 stems
                           straight from the planes; weight gradients as dot
                           products; max pooling with argmax in vectors; small
                           planes' im2col and im2row by permutes; GEMM tiles of
                           2 or 4 rows compute only those; no microcoded masked
                           stores in the hot loops. No API change.
       0.8.2 (2026-12-02)  speed: 3x3 convs on planes of 32x32 and more run their
                           forward as Winograd F(4x4, 3x3) on AVX-512 (points 0,
                           +-1, 1/2, -2: rounding 2e-6..4e-6 of the output's
                           range, F(2x2, 3x3)'s 4e-7..8e-7); 0.70-0.78 of F(2x2,
                           3x3)'s time.
                           Small planes: max pooling 16 planes a vector, im2col
                           by permutes; batch norm's fused ReLU backward remakes
                           the mask from the norm's input (a training workspace
                           keeps 2 floats a channel more). No API change.
       0.8.1 (2026-12-02)  speed on CPUs without AVX-512 (AVX2 + FMA): the GEMM
                           kernel reads A in place, takes row offsets (implicit
                           im2col) and runs its epilogue in vectors; Winograd,
                           the 3x3 depthwise kernels (forward and backward), the
                           batch norm's passes, maxpool inference, the dense
                           GEMV and the residual add in AVX2. No API change.
       0.8.0 (2026-12-02)  speed: a training workspace keeps activation gradients
                           in regions reused once read (ws->grad + act_off[i] is no
                           longer a node's gradient: fer_input_grad gives d loss /
                           d input); batch norm walks its planes in memory order
                           and runs the backward of the ReLU after it; inference
                           chunks hold as many samples as a conv's weights outweigh
                           a sample's activations; Winograd from 64 tiles when its
                           weight transform is small; the stride-2 depthwise conv
                           splits each input row once; short-K GEMMs tile row by row
       0.7.0 (2026-12-02)  speed: stride-2 convs as an implicit im2col over the
                           padded planes' four phases; a residual add runs the
                           ReLU that reads it; dense layers at batch < 4 as an
                           8-row GEMV; Winograd dW without the dU memset, its
                           finish in AVX-512; a 16x16 register transpose that
                           stays in registers
       0.6.0 (2026-12-01)  speed: Winograd over blocks of several samples' small
                           planes (the 6x6 convs run it; 12x12 blocks hold four
                           samples), blockings that fill the GEMM strips
       0.5.0 (2026-12-01)  speed: inference runs early layers through chunk-sized
                           buffers (fer_workspace_keep names the inner nodes whose
                           batch fer_node_output returns), 3x3 depthwise kernels
                           straight from the planes, long K blocks for GEMMs of few
                           columns
       0.4.0 (2026-12-01)  speed: Winograd F(2x2,3x3) for 3x3 convs with many channels
                           (forward, input and weight gradients), AVX-512 transposing
                           GEMM packer, several samples per GEMM for small planes,
                           stride-2 depthwise backward by phase
       0.3.0 (2026-12-01)  speed: 8x48 AVX-512 GEMM, implicit im2col for stride-1
                           convs, conv+BN+ReLU fused at inference, depthwise and
                           pooling kernels, gradient zeroing planned per workspace
       0.2.0 (2026-12-01)  training: CSV loader, augmentation, focal/weighted losses,
                           schedules, SWA, data-parallel trainer, checkpoints
       0.1.0 (2026-11-23)  engine: layers, blocks, zoo, SIMD kernels, .fer format v1

   LICENSE: see the end of this file.
*/
#ifndef FER_H
#define FER_H

#define FER_VERSION_MAJOR 0
#define FER_VERSION_MINOR 11
#define FER_VERSION_PATCH 0

/* ==========================================================================
   1. Configuration and platform
   Linkage, the fixed limits of the graph, and the list of instruction sets.
   ========================================================================== */

#include <stddef.h>
#include <stdint.h>

#ifndef FERDEF
#if defined(FER_STATIC) && (defined(__GNUC__) || defined(__clang__))
#define FERDEF static __attribute__((unused))  /* a static copy need not use every function */
#elif defined(FER_STATIC)
#define FERDEF static
#else
#define FERDEF extern
#endif
#endif

#define FER_MAX_INPUTS   4      /* most inputs a graph node takes (concat)          */
#define FER_MAX_NODES    4096   /* most nodes in a model (a loaded file is checked)  */
#define FER_MAX_CLASSES  64
#define FER_NAME_LEN     32     /* class and architecture names, NUL included       */
#define FER_MAX_DIM      4096   /* largest height or width of an activation          */
#define FER_MAX_CHANNELS 65536
#define FER_INPUT        0      /* node index of the model input                    */

/* Instruction sets, best last. A workspace runs its kernels with one of them. */
typedef enum fer_isa {
    FER_ISA_SCALAR = 0,  /* plain C: the reference every other path is tested against */
    FER_ISA_NEON   = 1,  /* ARM64 Advanced SIMD                                        */
    FER_ISA_AVX2   = 2,  /* x86-64 AVX2 + FMA                                          */
    FER_ISA_AVX512 = 3   /* x86-64 AVX-512F                                            */
} fer_isa;

#ifdef __cplusplus
extern "C" {
#endif

/* ==========================================================================
   2. Public API
   ========================================================================== */

/* --- 2.1 Results ---------------------------------------------------------
   Every call that can fail returns one of these. The object involved (model or
   workspace) keeps a message in its `error` field naming the problem. */
typedef enum fer_result {
    FER_OK = 0,
    FER_ERR_ARG,          /* an argument is out of range or inconsistent     */
    FER_ERR_NOMEM,        /* the allocator returned NULL, or a size overflows */
    FER_ERR_IO,           /* a file could not be opened, read or written      */
    FER_ERR_FORMAT,       /* a file or buffer is truncated, corrupt or hostile */
    FER_ERR_SHAPE,        /* layer shapes do not fit together                 */
    FER_ERR_UNSUPPORTED,  /* valid but not supported by this build            */
    FER_ERR_NUMERIC       /* NaN or infinity where a finite number is needed   */
} fer_result;

FERDEF const char *fer_result_string(fer_result r);

/* --- 2.2 Shapes and instruction sets -------------------------------------- */
typedef struct fer_shape { int c, h, w; } fer_shape;   /* one sample, NCHW */

FERDEF fer_isa     fer_cpu_best_isa(void);   /* best set this CPU and OS can run */
FERDEF const char *fer_isa_name(fer_isa isa);

/* --- 2.3 Kernels ---------------------------------------------------------
   The dense linear algebra under conv and dense layers. `isa` picks the code
   path; FER_ISA_SCALAR is the plain-C reference. `pack` is caller-owned scratch
   of fer_gemm_pack_floats() floats (no allocation happens inside). Kernels trust
   `isa`: pass one that fer_cpu_best_isa() allows (model passes clamp it).

   C[M x N] (+)= op(A)[M x K] * op(B)[K x N], op(X) = X or X^T (trans_x != 0),
   row-major with leading dimensions lda, ldb, ldc; accumulate != 0 adds to C. */
FERDEF size_t fer_gemm_pack_floats(void);
FERDEF void fer_gemm(fer_isa isa, int trans_a, int trans_b, int M, int N, int K,
                     const float *A, int lda, const float *B, int ldb,
                     float *C, int ldc, int accumulate, float *pack);
/* Straight triple loop, no packing: the independent reference for fer_gemm. */
FERDEF void fer_gemm_reference(int trans_a, int trans_b, int M, int N, int K,
                               const float *A, int lda, const float *B, int ldb,
                               float *C, int ldc, int accumulate);
/* y[0..n) += a * x[0..n);  returns sum x[i]*y[i] for fer_dot. */
FERDEF void  fer_axpy(fer_isa isa, int n, float a, const float *x, float *y);
FERDEF float fer_dot(fer_isa isa, int n, const float *x, const float *y);

/* --- 2.4 Layers ------------------------------------------------------------
   Each layer is a forward/backward pair of plain functions over raw buffers.
   Shapes are written next to every argument; n is the batch. Backward functions
   ACCUMULATE (+=) into every gradient they produce (din, dw, db, ...), so a
   tensor read by several layers collects the sum; zero gradients before a pass.
   Passing NULL for a gradient skips computing it. */

/* Convolution geometry, filled by fer_conv_geom_init. */
typedef struct fer_conv_geom {
    int n, cin, h, w;        /* input  [n][cin][h][w]                        */
    int cout, oh, ow;        /* output [n][cout][oh][ow]                     */
    int kh, kw, sh, sw, ph, pw, groups;
} fer_conv_geom;

FERDEF fer_result fer_conv_geom_init(fer_conv_geom *g, int n, int cin, int h, int w,
                                     int cout, int kh, int kw, int sh, int sw,
                                     int ph, int pw, int groups);
/* Floats of scratch the conv functions need for geometry g (im2col or padded input,
   flipped weights for the backward pass, GEMM packing). */
FERDEF size_t fer_conv_scratch_floats(const fer_conv_geom *g);
/* out[n][cout][oh][ow] = conv(in[n][cin][h][w], w[cout][cin/g][kh][kw]) + b[cout] (b may be NULL) */
FERDEF void fer_conv2d_forward(fer_isa isa, const fer_conv_geom *g, float *out, const float *in,
                               const float *w, const float *b, float *scratch);
FERDEF void fer_conv2d_backward(fer_isa isa, const fer_conv_geom *g, float *din, float *dw,
                                float *db, const float *dout, const float *in, const float *w,
                                float *scratch);

/* Batch norm over [n][c][hw]. Training: normalise with the batch statistics and
   write them to mean[c], var[c] (biased) and invstd[c] = 1/sqrt(var+eps);
   inference: pass running mean and var, which are only read. */
FERDEF void fer_batchnorm_forward_train(float *out, float *mean, float *var, float *invstd,
                                        const float *in,
                                        const float *gamma, const float *beta,
                                        int n, int c, int hw, float eps);
FERDEF void fer_batchnorm_forward_infer(float *out, const float *in, const float *gamma,
                                        const float *beta, const float *rmean, const float *rvar,
                                        int n, int c, int hw, float eps);
FERDEF void fer_batchnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                                   const float *in, const float *mean, const float *invstd,
                                   const float *gamma, int n, int c, int hw);
/* Inference-mode backward (statistics are constants): used by frozen-BN fine-tuning. */
FERDEF void fer_batchnorm_backward_infer(float *din, float *dgamma, float *dbeta,
                                         const float *dout, const float *in, const float *gamma,
                                         const float *rmean, const float *rvar,
                                         int n, int c, int hw, float eps);

/* Element-wise activations over len floats. `out` may alias `in` in forward.
   Backward reads the forward OUTPUT for relu/relu6/sigmoid (cheaper, exact) and
   the forward INPUT for leaky/prelu. ReLU and ReLU6 map NaN (and -0) to +0. */
FERDEF void fer_relu_forward(float *out, const float *in, size_t len);
FERDEF void fer_relu_backward(float *din, const float *dout, const float *out, size_t len);
FERDEF void fer_relu6_forward(float *out, const float *in, size_t len);
FERDEF void fer_relu6_backward(float *din, const float *dout, const float *out, size_t len);
FERDEF void fer_leaky_relu_forward(float *out, const float *in, size_t len, float slope);
FERDEF void fer_leaky_relu_backward(float *din, const float *dout, const float *in, size_t len,
                                    float slope);
FERDEF void fer_sigmoid_forward(float *out, const float *in, size_t len);
FERDEF void fer_sigmoid_backward(float *din, const float *dout, const float *out, size_t len);
/* PReLU with one learned slope per channel: in/out [n][c][hw], slope[c]. */
FERDEF void fer_prelu_forward(float *out, const float *in, const float *slope, int n, int c, int hw);
FERDEF void fer_prelu_backward(float *din, float *dslope, const float *dout, const float *in,
                               const float *slope, int n, int c, int hw);
/* Softmax over c for each of n*hw positions: in/out [n][c][hw]. */
FERDEF void fer_softmax_forward(float *out, const float *in, int n, int c, int hw);
FERDEF void fer_softmax_backward(float *din, const float *dout, const float *out, int n, int c, int hw);

/* Pooling over [n][c][h][w] -> [n][c][oh][ow] with a k x k window, stride s, pad p
   (padding never wins a max; average pooling divides by k*k, padding included,
   as PyTorch's default). Max pooling records argmax[n*c*oh*ow] for backward. */
FERDEF void fer_maxpool_forward(float *out, int32_t *argmax, const float *in, int n, int c,
                                int h, int w, int k, int s, int p);
FERDEF void fer_maxpool_backward(float *din, const float *dout, const int32_t *argmax,
                                 int n, int c, int h, int w, int oh, int ow);
FERDEF void fer_avgpool_forward(float *out, const float *in, int n, int c, int h, int w,
                                int k, int s, int p);
FERDEF void fer_avgpool_backward(float *din, const float *dout, int n, int c, int h, int w,
                                 int k, int s, int p);
/* Global pools: [n][c][hw] -> [n][c]. */
FERDEF void fer_gap_forward(float *out, const float *in, int n, int c, int hw);
FERDEF void fer_gap_backward(float *din, const float *dout, int n, int c, int hw);
FERDEF void fer_gmp_forward(float *out, int32_t *argmax, const float *in, int n, int c, int hw);
FERDEF void fer_gmp_backward(float *din, const float *dout, const int32_t *argmax, int n, int c, int hw);

/* Dense: out[n][nout] = in[n][nin] * w[nout][nin]^T + b[nout] (b may be NULL). */
FERDEF void fer_dense_forward(fer_isa isa, float *out, const float *in, const float *w,
                              const float *b, int n, int nin, int nout, float *pack);
FERDEF void fer_dense_backward(fer_isa isa, float *din, float *dw, float *db, const float *dout,
                               const float *in, const float *w, int n, int nin, int nout,
                               float *pack);

/* Inverted dropout with keep-mask mask[len] (0 or 1/(1-p)), drawn from seed. */
FERDEF void fer_dropout_forward(float *out, float *mask, const float *in, size_t len, float p,
                                uint64_t seed);
FERDEF void fer_dropout_backward(float *din, const float *dout, const float *mask, size_t len);

/* Element-wise add: out = a + b over len floats. */
FERDEF void fer_add_forward(float *out, const float *a, const float *b, size_t len);
FERDEF void fer_add_backward(float *da, float *db, const float *dout, size_t len);
/* Channel-wise multiply: out[n][c][hw] = x[n][c][hw] * s[n][c]. */
FERDEF void fer_cmul_forward(float *out, const float *x, const float *s, int n, int c, int hw);
FERDEF void fer_cmul_backward(float *dx, float *ds, const float *dout, const float *x,
                              const float *s, int n, int c, int hw);
/* Spatial multiply: out[n][c][hw] = x[n][c][hw] * s[n][hw]. */
FERDEF void fer_smul_forward(float *out, const float *x, const float *s, int n, int c, int hw);
FERDEF void fer_smul_backward(float *dx, float *ds, const float *dout, const float *x,
                              const float *s, int n, int c, int hw);
/* Channel pool (CBAM): out[n][2][hw] = { mean over c, max over c } of in[n][c][hw]. */
FERDEF void fer_chanpool_forward(float *out, int32_t *argmax, const float *in, int n, int c, int hw);
FERDEF void fer_chanpool_backward(float *din, const float *dout, const int32_t *argmax,
                                  int n, int c, int hw);

/* --- 2.5 The graph, blocks and the model -----------------------------------
   A model is a list of nodes in execution order; node i reads earlier nodes.
   Builder calls take the node index of their input and return the index of the
   new node, or -1 on error (the message is in m->error). A -1 input makes the
   next call return -1 too, so a whole network is built and checked once, at
   fer_model_finalize. Blocks are built from the primitives, so their backward
   is exactly the reverse of their forward. */
typedef enum fer_op {
    FER_OP_INPUT = 0, FER_OP_CONV, FER_OP_BN, FER_OP_RELU, FER_OP_RELU6, FER_OP_LEAKY_RELU,
    FER_OP_PRELU, FER_OP_SIGMOID, FER_OP_SOFTMAX, FER_OP_MAXPOOL, FER_OP_AVGPOOL, FER_OP_GAP,
    FER_OP_GMP, FER_OP_DENSE, FER_OP_DROPOUT, FER_OP_FLATTEN, FER_OP_ADD, FER_OP_CMUL,
    FER_OP_SMUL, FER_OP_CONCAT, FER_OP_CHANPOOL, FER_OP_IDENTITY,
    FER_OP_COUNT
} fer_op;

typedef struct fer_node {
    int op;                      /* fer_op                                         */
    int n_in, in[FER_MAX_INPUTS];/* producing nodes, all earlier than this one     */
    fer_shape out;               /* per-sample output shape                        */
    int kh, kw, sh, sw, ph, pw;  /* conv and pooling window, stride, padding      */
    int groups;                  /* conv groups (cin for depthwise)                */
    int bias;                    /* conv/dense: 1 if the bias is used              */
    int act;                     /* conv: fused activation (FER_OP_RELU/RELU6, 0)  */
    int share;                   /* node whose parameters this one uses, or -1     */
    float alpha;                 /* leaky slope, dropout rate                      */
    float eps, momentum;         /* batch norm                                     */
    size_t p_off, p_len;         /* trainable parameters in the model arena        */
    size_t b_off, b_len;         /* buffers (BN running mean, var) in the arena    */
} fer_node;

/* Input preprocessing, stored in the model file. */
typedef enum fer_norm { FER_NORM_UNIT = 0,      /* x/255 in [0,1]            */
                        FER_NORM_SIGNED = 1,    /* x/127.5 - 1 in [-1,1]     */
                        FER_NORM_MEANSTD = 2    /* (x/255 - mean) / std      */ } fer_norm;
typedef struct fer_preproc {
    int norm;                    /* fer_norm                                       */
    float mean, std;             /* for FER_NORM_MEANSTD                           */
    int crop_h, crop_w;          /* centre crop from the stored size, 0 = none     */
    int store_h, store_w;        /* size images are resized to before the crop    */
    float temperature;           /* logits are divided by it (1 = none)            */
} fer_preproc;

typedef struct fer_model {
    fer_node *nodes; int n_nodes, cap_nodes;
    float *arena;                /* params, then buffers: one allocation           */
    float *params; size_t n_params;
    float *buffers; size_t n_buffers;
    fer_shape input;
    int n_classes;
    char class_names[FER_MAX_CLASSES][FER_NAME_LEN];
    char arch[FER_NAME_LEN];
    fer_preproc pre;
    int finalized;
    fer_result status;           /* first builder error, sticky until finalize     */
    char error[256];
    void *alloc_ctx;
} fer_model;

FERDEF fer_result fer_model_init(fer_model *m, int c, int h, int w, int n_classes, void *alloc_ctx);
FERDEF void       fer_model_free(fer_model *m);
/* Allocates the parameter arena and initialises it (He-uniform weights, zero
   biases, BN gamma 1 beta 0, running var 1) from seed. */
FERDEF fer_result fer_model_finalize(fer_model *m, uint64_t seed);
FERDEF size_t     fer_model_param_count(const fer_model *m);   /* parameters in use */
FERDEF double     fer_model_macs(const fer_model *m);          /* multiply-adds per sample */
FERDEF int        fer_model_output(const fer_model *m);        /* the last node     */
/* Folds each batch norm that follows a conv into the conv's weights and bias,
   and fuses a following ReLU/ReLU6. The result computes the same function in
   inference mode, faster, and cannot be trained further. */
FERDEF fer_result fer_model_fold_bn(fer_model *m);

/* primitives */
FERDEF int fer_conv(fer_model *m, int x, int cout, int kh, int kw, int stride, int pad,
                    int groups, int bias);
FERDEF int fer_bn(fer_model *m, int x);
FERDEF int fer_act(fer_model *m, int x, fer_op op);    /* RELU, RELU6, SIGMOID, PRELU, IDENTITY */
FERDEF int fer_leaky_relu(fer_model *m, int x, float slope);
FERDEF int fer_softmax(fer_model *m, int x);
FERDEF int fer_maxpool(fer_model *m, int x, int k, int stride, int pad);
FERDEF int fer_avgpool(fer_model *m, int x, int k, int stride, int pad);
FERDEF int fer_gap(fer_model *m, int x);
FERDEF int fer_gmp(fer_model *m, int x);
FERDEF int fer_dense(fer_model *m, int x, int nout, int bias);
FERDEF int fer_dropout(fer_model *m, int x, float p);
FERDEF int fer_flatten(fer_model *m, int x);
FERDEF int fer_add(fer_model *m, int a, int b);
FERDEF int fer_cmul(fer_model *m, int x, int s);        /* s: [c][1][1]             */
FERDEF int fer_smul(fer_model *m, int x, int s);        /* s: [1][h][w]             */
FERDEF int fer_concat(fer_model *m, int n, const int *xs);
FERDEF int fer_chanpool(fer_model *m, int x);
/* Like fer_dense / fer_conv but sharing the parameters of node `owner`. */
FERDEF int fer_dense_shared(fer_model *m, int x, int owner);

/* blocks */
/* conv k x k ("same" padding) -> BN -> activation (act 0 for none) */
FERDEF int fer_conv_bn_act(fer_model *m, int x, int cout, int k, int stride, fer_op act);
/* depthwise k x k -> pointwise 1x1 (no biases): the separable conv of Xception/MobileNet */
FERDEF int fer_sepconv(fer_model *m, int x, int cout, int k, int stride);
/* ResNet BasicBlock: conv3-BN-ReLU-conv3-BN + shortcut (1x1 conv + BN when shape changes), ReLU */
FERDEF int fer_block_basic(fer_model *m, int x, int cout, int stride);
/* light residual block: as BasicBlock at stride 1, then max pool 2x2 and dropout p */
FERDEF int fer_block_light_residual(fer_model *m, int x, int cout, float p);
/* Xception module: sepconv-BN-ReLU-sepconv-BN-maxpool(3,2,1) + (1x1 stride-2 conv + BN) */
FERDEF int fer_block_xception(fer_model *m, int x, int cout);
/* MobileNetV2 inverted residual: 1x1 expand (t x) -BN-ReLU6, 3x3 depthwise -BN-ReLU6,
   1x1 project -BN (linear bottleneck); identity shortcut at stride 1 when cin == cout */
FERDEF int fer_block_inverted_residual(fer_model *m, int x, int cout, int expand, int stride);
/* Squeeze-and-Excitation (Hu et al. 2018): x * sigmoid(W2 relu(W1 gap(x))), hidden c/r */
FERDEF int fer_block_se(fer_model *m, int x, int reduction);
/* CBAM (Woo et al. 2018): channel attention with a shared MLP over gap and gmp,
   then spatial attention: 7x7 conv over [mean_c, max_c], sigmoid */
FERDEF int fer_block_cbam(fer_model *m, int x, int reduction);
/* residual depthwise-separable block of vgg16_dsc_cbam: sepconv3-BN-PReLU-CBAM + shortcut */
FERDEF int fer_block_dsc_cbam(fer_model *m, int x, int cout);

/* --- 2.6 Model zoo -------------------------------------------------------- */
FERDEF int         fer_zoo_count(void);
FERDEF const char *fer_zoo_name(int i);
FERDEF const char *fer_zoo_description(int i);
/* Builds and finalizes architecture `name` for c x h x w input and n_classes outputs. */
FERDEF fer_result  fer_zoo_build(fer_model *m, const char *name, int c, int h, int w,
                                 int n_classes, uint64_t seed, void *alloc_ctx);

/* --- 2.7 Inference and training passes --------------------------------------
   A workspace holds everything one thread needs to run a model on up to
   max_batch samples: activations, their gradients and the parameter gradients
   (when training), and scratch. It never modifies the model, so many workspaces
   can share one model across threads. fer_forward and fer_backward allocate
   nothing. */
typedef struct fer_workspace {
    int max_batch, training, n;  /* n: batch of the last forward                    */
    fer_isa isa;                 /* kernels used; defaults to fer_cpu_best_isa()     */
    fer_isa isa_max;             /* fer_cpu_best_isa() at init: isa is clamped to it */
    int n_nodes;
    size_t *act_off;             /* node i's activation: act + act_off[i]          */
    size_t *aux_off;             /* node i's saved statistics: aux + aux_off[i]    */
    size_t *iaux_off;            /* node i's argmax indices: iaux + iaux_off[i]    */
    size_t *grad_off;            /* training: node i's gradient: grad + grad_off[i] */
    float *act, *grad;           /* activations and (training) their gradients     */
    float *aux;                  /* BN batch mean/invstd, dropout masks, Winograd  */
    int32_t *iaux;
    float *pgrad;                /* parameter gradients, same layout as params     */
    float *scratch; size_t scratch_len;
    int *fuse;                   /* inference: see fer_workspace_init                */
    int input_grad;              /* fer_backward writes d/d input too (default 1)   */
    int *gassign, *gzero;        /* training: node i writes (=) its input's gradient
                                    first; gradient region i is zeroed per backward */
    int *gfirst;                 /* training: the step (node) that writes region i
                                    first; n_nodes: live all through backward       */
    int *tfuse;                  /* training: BN i writes ReLU tfuse[i]'s output too */
    int *whole;                  /* node i's buffer holds the whole batch; else (an
                                    inference workspace's inner nodes) only the chunk
                                    of samples being run, from its start            */
    int chunk, chunk2, split, tail;   /* inference schedule: see fer__run_nodes     */
    uint64_t dropout_seed;       /* masks are a pure function of it: set per step */
    int last_training;           /* the last forward ran in training mode          */
    float *frozen;               /* fer_workspace_freeze: the weights' transforms  */
    size_t *frozen_off;          /* node i's at frozen + frozen_off[i], or SIZE_MAX */
    fer_isa frozen_isa;          /* the kernels they were made for                 */
    unsigned char *q8;           /* fer_workspace_quantize: the int8 layers         */
    size_t *q8_off;              /* node i's at q8 + q8_off[i], or SIZE_MAX         */
    unsigned char *q8_buf;       /* a quantized layer's input bytes                 */
    float *q8_range;             /* while calibrating: node i's input min, max      */
    int q8_vnni;                 /* they run on AVX-512 VNNI (else plain C)         */
    void *mem;                   /* the one allocation behind all of the above     */
    void *alloc_ctx;
    char error[256];
} fer_workspace;

/* An inference workspace (training == 0) runs a conv, the batch norm that is its
   only reader and the ReLU/ReLU6 that is that norm's only reader as one kernel
   (the norm and activation become the conv's store-time epilogue), and an add
   with the ReLU/ReLU6 that is its only reader in one pass. Their nodes then
   share one buffer, so fer_node_output of such a conv, norm or add returns the
   chain's last output; run fer_forward(..., 0) in a training workspace to see
   every node's own output. Results equal the unfused ones to float rounding.
   It also keeps, for each 3x3 conv that can run as Winograd at max_batch
   (AVX-512 or AVX2, 32+ input and 64+ output channels, enough output tiles over
   the batch), its weights' transform (16/9 of the weights, 4 times them for
   F(4x4, 3x3)), made afresh by every fer_forward, so changed weights are always
   seen (a frozen workspace makes them once: fer_workspace_freeze). */
FERDEF fer_result   fer_workspace_init(fer_workspace *ws, const fer_model *m, int max_batch,
                                       int training);
FERDEF void         fer_workspace_free(fer_workspace *ws);
/* Freezes m's conv weights for the inference workspace ws: their Winograd
   transforms are made now, once (in one allocation of their own), instead of by
   every fer_forward, and 3x3 convs with too few output tiles to repay a transform
   per forward run as Winograd too (a 12x12 plane at batch 1: 256 -> 256 in 0.59 ms
   instead of 1.00). A workspace of small batches (max_batch times the plane's
   tiles at most 36: batch 1 up to 24x24 planes) on AVX-512 keeps the copies laid
   out for its own kernels: 3x3 convs on 10x10..24x24 planes as Winograd F(4x4,
   3x3) over channels (that 12x12 conv alone in 0.30 ms), convs of at most 36
   output positions as rows of positions (resnet18's 6x6 512 -> 512 alone: 1.1 ->
   0.8 ms), their weights then copied whole. For a model whose weights stay as
   they are while ws serves it: a deployed classifier. Those convs then read their
   weights only through the copies, so after changing the weights (a training
   step, a load into the same model) call it again, which remakes them in place.
   ws->isa is read now: set it before, or the frozen copies are not used.
   FER_ERR_ARG for a training workspace or one not made for m, FER_ERR_NOMEM. */
FERDEF fer_result   fer_workspace_freeze(fer_workspace *ws, const fer_model *m);
/* Quantizes ws's convs and dense layers to int8 (after freezing it:
   fer_workspace_freeze). The float model runs on calib (n samples, n x C x H x W
   floats as fer_forward takes: a few hundred training images) and each such
   layer's input range over them sets its scale; weights get one scale per output
   channel. From then on those layers (convs not grouped, with 4+ input channels
   and 32+ multiply-adds per output, stride 1 or 2; dense layers of 64+ inputs)
   take bytes in and give floats out, the batch norm and activation after a conv
   folded in, on AVX-512 VNNI 4x the multiply-adds per instruction of float; the
   depthwise convs, a one-channel stem and every other layer stay float. Elsewhere they run the
   plain-C reference (the same results, for testing; slow). Like a freeze they
   read the weights now; fer_workspace_freeze drops them. FER_ERR_ARG as for a
   freeze or without calibration samples, FER_ERR_NUMERIC when an activation is
   not finite on them, FER_ERR_NOMEM. */
FERDEF fer_result   fer_workspace_quantize(fer_workspace *ws, const fer_model *m, const float *calib, int n);
/* input: n x C x H x W floats. training != 0: batch statistics, dropout on. */
FERDEF fer_result   fer_forward(const fer_model *m, fer_workspace *ws, const float *input, int n,
                                int training);
FERDEF const float *fer_output(const fer_model *m, const fer_workspace *ws);   /* n x n_classes */
/* Node `node`'s output for the last forward's batch, or NULL where the workspace
   does not keep it: an inference workspace runs the early layers a few samples at
   a time through buffers that hold just those samples (they stay in cache), and
   keeps the whole batch only for the model's output, the layers near the end and
   the nodes named by fer_workspace_keep (call it once, after init). */
FERDEF const float *fer_node_output(const fer_workspace *ws, int node);
FERDEF fer_result   fer_workspace_keep(fer_workspace *ws, const fer_model *m, int node);
/* Back-propagates dout (n x output shape) through the last training forward,
   accumulating into ws->pgrad. Zero it with fer_zero_grad. The gradients of the
   activations live only while backward needs them: a region is reused once its
   node has read it, so a deep net's take a few activations' room and stay in
   cache. What is left afterwards is d loss / d input (when ws->input_grad). */
FERDEF fer_result   fer_backward(const fer_model *m, fer_workspace *ws, const float *dout);
/* n x input shape: d loss / d input of the last fer_backward, or NULL where the
   workspace does not make it (an inference workspace, or input_grad == 0). */
FERDEF const float *fer_input_grad(const fer_workspace *ws);
FERDEF void         fer_zero_grad(const fer_model *m, fer_workspace *ws);
/* After a training forward: running = (1-momentum)*running + momentum*batch
   (unbiased variance) for every batch norm, as PyTorch does. */
FERDEF void         fer_bn_update_running(fer_model *m, const fer_workspace *ws);

/* Inference on several cores: splits n samples over n_ws inference workspaces
   (each of max_batch >= ceil(n/n_ws)), one thread each (the caller runs the first),
   and writes the n x n_classes outputs to out. Without threads (FER_NO_THREADS)
   the slices run one after another. */
FERDEF fer_result   fer_forward_threads(const fer_model *m, fer_workspace *ws, int n_ws,
                                        const float *input, int n, float *out);

/* Preprocessing and prediction from 8-bit grey pixels of any size: bilinear resize
   to m->pre.store_h x store_w, centre crop to the model input, normalisation as
   m->pre says (grey is repeated over the channels of a multi-channel model).
   out: C x H x W floats. fer_predict runs the model at batch 1 in ws (no allocation),
   writes n_classes probabilities (softmax of logits / temperature) and returns the
   most likely class, or -1 with ws->error set. */
FERDEF fer_result fer_preprocess(const fer_model *m, const unsigned char *gray, int w, int h,
                                 int stride, float *out);
FERDEF int        fer_predict(const fer_model *m, fer_workspace *ws, const unsigned char *gray,
                              int w, int h, int stride, float *probs);
#if !defined(FER_NO_STB_IMAGE) && !defined(FER_NO_STDIO)
/* Decodes an image file (JPEG, PNG, BMP, GIF, PGM, ...) to 8-bit grey with stb_image.
   Returns NULL and a message in err[256] on failure; free with fer_image_free. */
FERDEF unsigned char *fer_image_load_gray(const char *path, int *w, int *h, char *err);
FERDEF void           fer_image_free(unsigned char *pixels);
#endif

/* --- 2.8 Data and augmentation --------------------------------------------------
   A data set is n grey images of one size in one contiguous uint8 buffer, with
   labels. Folder layout: ROOT/<class>/<image>, one folder per class; FER2013's
   folder names map to its canonical order (angry, disgust, fear, happy, sad,
   surprise, neutral), other names to sorted order. Unreadable files are skipped,
   counted and the first reason kept; the load fails only if nothing loads. */
typedef struct fer_dataset {
    unsigned char *pixels;       /* [n][h][w]                                        */
    int *labels;                 /* [n], 0 .. n_classes-1                            */
    int n, h, w, n_classes;
    char class_names[FER_MAX_CLASSES][FER_NAME_LEN];
    int n_skipped;               /* files or CSV rows that could not be used         */
    char skip_reason[256];       /* why: the first file; for a CSV, each kind of bad
                                    row, how many and the first by line number      */
    char error[256];
    void *alloc_ctx;
} fer_dataset;

#if !defined(FER_NO_STDIO) && !defined(FER_NO_STB_IMAGE)
/* Decodes every image under dir/<class>/ with n_threads threads, resized to h x w. */
FERDEF fer_result fer_dataset_load_folder(fer_dataset *d, const char *dir, int h, int w,
                                          int n_threads, void *alloc_ctx);
#endif
/* FER2013's CSV (fer2013.csv): a header line naming the columns emotion, pixels
   and, optionally, Usage, in any order (any case; a UTF-8 BOM, CRLF line ends,
   blank lines and a missing final newline are fine); then one row per image: the
   class 0..6 in FER2013's canonical order (class_names are those 7), the pixel
   values 0..255 separated by spaces, side*side of them (48*48 in FER2013), and
   the split (Training, PublicTest, PrivateTest). `usage` keeps the rows whose
   Usage equals it exactly (NULL keeps every row; a Usage column is then optional).
   Every row must have as many pixels as the first good row of the file. Images
   are resized to h x w (fer_resize_gray) when side differs; rows keep file order.
   A row with missing columns, an unknown class, a value that is not a whole
   number, a pixel outside 0..255 or the wrong number of pixels is skipped and
   counted; skip_reason says how many of each kind and names the first of each
   by line number (the header is line 1). Fails with FER_ERR_FORMAT and a message
   naming the line or the cause if the text is empty, the header lacks emotion or
   pixels (or Usage when `usage` is given), or no row is kept (listing the Usage
   values seen when none matched); FER_ERR_ARG if h or w is not 1..FER_MAX_DIM.
   n_threads parse in parallel; the result is the same for any number of them.
   fer_dataset_load_csv reads the file `path` into memory first (FER_ERR_IO
   naming it if it cannot) and starts its messages with the path. */
FERDEF fer_result fer_dataset_parse_csv(fer_dataset *d, const char *text, size_t len,
                                        const char *usage, int h, int w, int n_threads,
                                        void *alloc_ctx);
#if !defined(FER_NO_STDIO)
FERDEF fer_result fer_dataset_load_csv(fer_dataset *d, const char *path, const char *usage,
                                       int h, int w, int n_threads, void *alloc_ctx);
#endif
FERDEF void fer_dataset_free(fer_dataset *d);
/* Relabels d to the class order names[k] (a model's, say), matching class names
   exactly: afterwards n_classes is k and class_names are names. Fails with
   FER_ERR_FORMAT naming the first class of d that names lacks, and leaves d
   unchanged then. Classes of names that d lacks simply have no images. */
FERDEF fer_result fer_dataset_remap(fer_dataset *d, const char (*names)[FER_NAME_LEN], int k);
/* counts[d->n_classes]: images per class. */
FERDEF void fer_dataset_class_counts(const fer_dataset *d, int *counts);
/* Resizes 8-bit grey src (sw x sh) to dst (dw x dh), bilinear, pixel centres aligned. */
FERDEF void fer_resize_gray(const unsigned char *src, int sw, int sh, unsigned char *dst, int dw, int dh);

/* Online augmentation, one sample at a time, a pure function of its seed (the
   trainer derives it from the run's seed, the epoch and the sample index). A
   zeroed fer_augment is the identity: every strength 0 means "off". */
typedef struct fer_augment {
    int   flip;                  /* mirror left-right with probability 1/2          */
    float rotate;                /* degrees: angle uniform in [-rotate, rotate]     */
    float shift;                 /* fraction of the size: dx, dy uniform in [-s, s] */
    float zoom;                  /* scale uniform in [1 - zoom, 1 + zoom]           */
    float brightness;            /* add uniform [-b, b] (pixels in 0..1)            */
    float contrast;              /* scale about the image mean by [1 - c, 1 + c]    */
    int   random_crop;           /* crop at a random offset (else centred)          */
    float erase_prob;            /* random erasing (Zhong et al. 2020): probability */
    float erase_min, erase_max;  /* erased area as a fraction of the image          */
    float erase_aspect;          /* aspect ratio log-uniform in [1/a, a] (a >= 1)   */
} fer_augment;
/* What fer-train uses by default: flip, rotate 10, shift 0.1, zoom 0.1,
   brightness 0.2, contrast 0.2, random crop, erasing p 0.5 of 2%-20% (aspect 3). */
FERDEF void fer_augment_defaults(fer_augment *a);
/* dst[oh][ow] floats in [0,1] from src[h][w] 8-bit grey (oh <= h, ow <= w): one
   affine warp (rotation, zoom and shift about the centre, and the flip) sampled
   bilinearly with the border repeated, then the oh x ow crop, then brightness and
   contrast (clamped to [0,1]), then erasing (uniform noise in [0,1]). At zero
   strength the result is the centre crop of src / 255, exactly; a == NULL is zero
   strength. Inconsistent sizes (a size < 1, oh > h, ow > w) write nothing.
   Random draws: the state starts at fer__mix64(seed), each draw is
   fer__uniform(&state) in [0,1), and u1..u10 come first whatever is switched on:
     u1 flip: mirror if u1 < 1/2          u2 angle (2u2-1)*rotate, clockwise on screen
     u3 scale 1+(2u3-1)*zoom, >= 0.05     u4, u5 shift (2u-1)*shift*w, *h: right, down
     u6, u7 crop top floor(u6*(h-oh+1)), left floor(u7*(w-ow+1)), if random_crop
     u8 brightness (2u8-1)*brightness     u9 contrast factor 1+(2u9-1)*contrast
     u10 erase if u10 < erase_prob
   Erasing then draws, for each of at most 10 tries, the area and the aspect ratio
   (height/width) and, for the first rectangle that fits strictly inside the crop,
   its top and left; then one noise value per erased pixel, row by row. */
FERDEF void fer_augment_image(const fer_augment *a, const unsigned char *src, int h, int w,
                              float *dst, int oh, int ow, uint64_t seed);
/* x[n] from [0,1] pixels to the model's input domain, as pre->norm says: what
   fer_preprocess does after its resize and crop (to float rounding), for one
   channel. FER_NORM_MEANSTD needs pre->std > 0 (model files are checked for it). */
FERDEF void fer_normalize(const fer_preproc *pre, float *x, size_t n);
/* Offline class balancing: appends augmented copies (fer_augment_image at full
   size, rounded to 8 bits) of randomly drawn images of every class that has fewer
   than `target` images, until it has target. The originals stay first, in order,
   then the copies class by class. A class with no image stays empty (not an
   error); a == NULL makes plain copies. Per copy, two 64-bit draws from
   fer__mix64(seed): which image of the class (uniform), and its augmentation seed.
   target must be in 1..2^24, and so must the new total (else FER_ERR_ARG); on
   FER_ERR_NOMEM d is unchanged. Both set d->error. */
FERDEF fer_result fer_dataset_oversample(fer_dataset *d, int target, const fer_augment *a,
                                         uint64_t seed);

/* --- 2.9 Training: losses, optimizers, schedules, the loop -----------------------
   The loss returns the mean over the batch and writes dlogits (its gradient w.r.t.
   the logits, already divided by `norm`, normally the whole batch size).
   Optimizers keep their state in one allocation and update params in place. */
FERDEF double fer_softmax_xent(const float *logits, const int *labels, int n, int k,
                               float label_smoothing, float norm, float *dlogits);

typedef enum fer_opt_kind { FER_OPT_SGD = 0, FER_OPT_ADAM = 1, FER_OPT_ADAMW = 2 } fer_opt_kind;
typedef struct fer_optimizer {
    int kind;                    /* fer_opt_kind                                    */
    float lr, momentum, beta1, beta2, eps, weight_decay;
    int nesterov;
    long step;
    size_t n;
    float *m, *v;                /* moments (SGD uses m as velocity)                */
    void *alloc_ctx;
} fer_optimizer;
FERDEF fer_result fer_optimizer_init(fer_optimizer *o, int kind, size_t n_params, float lr,
                                     float weight_decay, void *alloc_ctx);
FERDEF void       fer_optimizer_free(fer_optimizer *o);
/* One update of params[n] from grads[n]; weight decay skips 1-D tensors (biases,
   BN and PReLU parameters) when `skip` marks them (may be NULL). */
FERDEF void       fer_optimizer_step(fer_optimizer *o, float *params, const float *grads,
                                     const unsigned char *no_decay);
/* Marks every parameter that weight decay should leave alone (biases, BN, PReLU). */
FERDEF void       fer_model_no_decay_mask(const fer_model *m, unsigned char *mask);

/* The loss of a training step: cross-entropy with label smoothing, or the focal
   loss of Lin et al. 2017, FL = -alpha_y (1 - p_y)^gamma ln p_y, and per-class
   weights (for focal loss they are the alphas). fer_loss_eval returns the SUM over
   the n samples of weight[label] * loss and writes dlogits[n][k], the gradient of
   that sum divided by norm: pass the total weight of the whole batch (the batch
   size when unweighted) and the step minimises PyTorch's weighted mean. Label
   smoothing applies to cross-entropy only. */
typedef struct fer_loss {
    float label_smoothing;       /* 1 - eps on the label, eps / k spread over all  */
    float focal_gamma;           /* > 0: focal loss; 0: cross-entropy              */
    const float *class_weight;   /* [k] or NULL (all 1)                            */
} fer_loss;
FERDEF double fer_loss_eval(const fer_loss *L, const float *logits, const int *labels, int n,
                            int k, float norm, float *dlogits);
/* w[c] = total / (k * counts[c]), scikit-learn's "balanced"; 0 for an empty class. */
FERDEF void   fer_class_weights_balanced(const int *counts, int k, float *w);
/* Scales g[n] so its L2 norm is at most max_norm (<= 0: never) and returns the
   norm before clipping (NaN or infinity when g holds a non-finite value). */
FERDEF double fer_clip_grad_norm(float *g, size_t n, float max_norm);

/* Learning-rate schedules, as PyTorch defines them, with an optional linear
   warm-up over the first warmup_epochs (per step, from lr / warm-up steps).
     CONSTANT   lr
     STEP       lr * gamma^floor(epoch / step_size)                 (per epoch)
     MULTISTEP  lr * gamma^(milestones passed)                      (per epoch)
     COSINE     min_lr + (lr - min_lr)(1 + cos(pi t)) / 2, t from 0 at the end of
                the warm-up to 1 at the end of `epochs`             (per step)
     PLATEAU    ReduceLROnPlateau: the rate is multiplied by factor when the
                monitored value has not improved (relative threshold, mode min)
                for more than `patience` epochs, never below min_lr
   The schedule's state (the plateau's) is in the struct, so a checkpoint keeps it. */
typedef enum fer_sched_kind {
    FER_SCHED_CONSTANT = 0, FER_SCHED_STEP = 1, FER_SCHED_MULTISTEP = 2,
    FER_SCHED_COSINE = 3, FER_SCHED_PLATEAU = 4
} fer_sched_kind;
#define FER_MAX_MILESTONES 16
typedef struct fer_schedule {
    int kind;                    /* fer_sched_kind                                 */
    float lr, min_lr;            /* base rate; floor of COSINE and PLATEAU         */
    int warmup_epochs;
    int epochs;                  /* COSINE: the length of the run                  */
    int step_size;               /* STEP                                           */
    float gamma;                 /* STEP, MULTISTEP (0.1)                          */
    int milestones[FER_MAX_MILESTONES], n_milestones;     /* MULTISTEP, ascending  */
    float factor, threshold;     /* PLATEAU (0.5, 1e-4)                            */
    int patience;                /* PLATEAU (3)                                    */
    float plateau_lr;            /* state: the current PLATEAU rate                */
    double plateau_best;         /* state: best monitored value (+inf at start)    */
    int plateau_bad;             /* state: epochs since it improved                */
} fer_schedule;
FERDEF void   fer_schedule_init(fer_schedule *s, int kind, float lr, int epochs);
/* The rate of step `step` (0-based) of epoch `epoch` (0-based). */
FERDEF float  fer_schedule_lr(const fer_schedule *s, int epoch, int step, int steps_per_epoch);
/* After an epoch, with the monitored value (lower is better, e.g. validation
   loss): PLATEAU bookkeeping. Returns 1 when the rate was cut. */
FERDEF int    fer_schedule_epoch_end(fer_schedule *s, double value);
/* FER_ERR_ARG with a message when a field is out of range. */
FERDEF fer_result fer_schedule_check(const fer_schedule *s, char *error);

/* Weight averaging, in both forms the FER papers use:
     EMA      avg = decay * avg + (1 - decay) * x after every epoch from the
              start epoch (DCM-Net: decay 0.9), BN statistics averaged alike
     UNIFORM  SWA (Izmailov et al. 2018): the plain mean of the weights at the
              end of every epoch from the start epoch, BN statistics recomputed
              afterwards by one pass over the training data (fer_trainer_finish)
   avg covers the whole arena (parameters, then BN buffers). */
typedef enum fer_swa_kind { FER_SWA_NONE = 0, FER_SWA_EMA = 1, FER_SWA_UNIFORM = 2 } fer_swa_kind;
typedef struct fer_swa {
    int kind;                    /* fer_swa_kind                                   */
    float decay;                 /* EMA                                            */
    long count;                  /* weights averaged so far                        */
    size_t n;
    float *avg;                  /* [n]                                            */
    void *alloc_ctx;
} fer_swa;
FERDEF fer_result fer_swa_init(fer_swa *s, int kind, float decay, size_t n, void *alloc_ctx);
FERDEF void       fer_swa_update(fer_swa *s, const float *x);   /* the first update copies x */
FERDEF void       fer_swa_free(fer_swa *s);

/* Running BN statistics from several shards of one batch (data-parallel
   training): the shards' batch means and variances are pooled into those of the
   whole batch, so the update does not depend on how the batch was split. Then
   running = (1 - mo) running + mo * batch, with mo = momentum, or each node's own
   momentum when momentum < 0 (fer_bn_update_running is the one-workspace case). */
FERDEF void fer_bn_update_running_pooled(fer_model *m, const fer_workspace *ws, int n_ws,
                                         float momentum);

/* The training loop. fer_trainer runs data-parallel mini-batch SGD over
   config.threads threads: each step's batch (shuffled per epoch) is split into
   one shard per thread, each thread augments its shard, runs forward and
   backward in its own workspace, and the parameter gradients are summed in shard
   order. Everything random (shuffle, augmentation, dropout) is a pure function
   of the seed, the epoch and the step, so the same seed and thread count give
   bit-identical weights, and a run resumed from a checkpoint reaches the same
   weights as one that was never interrupted. A different thread count changes
   the shards: batch norm normalises each shard with its own statistics, dropout
   masks and the summation order of gradients differ, so the weights differ (the
   running BN statistics are pooled over the whole batch either way). */
typedef enum fer_monitor { FER_MONITOR_ACC = 0, FER_MONITOR_LOSS = 1, FER_MONITOR_F1 = 2 } fer_monitor;
typedef enum fer_class_weighting { FER_WEIGHT_NONE = 0, FER_WEIGHT_BALANCED = 1,
                                   FER_WEIGHT_GIVEN = 2 } fer_class_weighting;
typedef struct fer_train_config {
    int epochs, batch, threads;
    uint64_t seed;
    int optimizer;               /* fer_opt_kind                                   */
    float weight_decay, momentum, beta1, beta2;
    int nesterov;
    fer_schedule schedule;       /* schedule.lr is the base learning rate         */
    float label_smoothing, focal_gamma;
    int class_weighting;         /* fer_class_weighting                            */
    float class_weight[FER_MAX_CLASSES];   /* FER_WEIGHT_GIVEN                     */
    float clip_norm;             /* gradient clipping by global norm (0: off)      */
    fer_augment augment;
    int norm;                    /* fer_norm; MEANSTD takes mean, std from train   */
    int monitor;                 /* fer_monitor: picks the best epoch             */
    int early_stop;              /* stop after this many epochs without a better
                                    monitored value (0: never)                    */
    float min_delta;             /* least change that counts as better             */
    int restore_best;            /* finish with the best epoch's weights           */
    int swa;                     /* fer_swa_kind                                   */
    int swa_start;               /* first epoch (0-based) averaged                 */
    float swa_decay;             /* EMA decay (0.9)                                */
    float swa_lr;                /* > 0: constant rate from swa_start on           */
    int skip_nonfinite;          /* skip a step with a non-finite loss or gradient
                                    (else the epoch fails naming the layer)       */
    int val_tta;                 /* fer_tta for validation                         */
} fer_train_config;
/* Defaults that train a good FER2013 model: 60 epochs, batch 64, Adam 0.002 with
   weight decay 1e-4 (L2), cosine with a 2-epoch warm-up, fer_augment_defaults,
   label smoothing 0.1, best epoch by validation accuracy. */
FERDEF void       fer_train_config_defaults(fer_train_config *c);
/* FER_ERR_ARG with a message naming the first field out of range. */
FERDEF fer_result fer_train_config_check(const fer_train_config *c, char *error);

typedef struct fer_epoch_stats {
    int epoch;                   /* 1-based, the epoch just finished               */
    double train_loss, train_acc;
    double train_f1;             /* macro F1 of the training predictions (augmented) */
    double val_loss, val_acc, val_f1;      /* NaN without validation data          */
    double lr;                   /* the rate of the epoch's last step              */
    int skipped_steps;           /* steps dropped as non-finite                    */
    int improved;                /* the monitored value is the best so far         */
    int stop;                    /* early stopping fired                           */
} fer_epoch_stats;

/* Called on the calling thread after every step with the epoch's running
   training loss and accuracy (fer.h keeps no clock: time it in the callback). */
typedef void (*fer_progress_fn)(void *user, int epoch, int step, int steps, double loss,
                                double acc);

typedef struct fer_trainer {
    fer_model *m;
    fer_train_config cfg;
    fer_optimizer opt;
    fer_swa swa;
    int epoch;                   /* epochs done                                    */
    int steps_per_epoch;
    int stop;                    /* early stopping fired                           */
    double best;                 /* best monitored value, larger is better        */
    int best_epoch;              /* 1-based, 0 before any validation               */
    int bad_epochs;              /* epochs since best                              */
    float *best_arena;           /* the best epoch's params and buffers            */
    unsigned char *no_decay;     /* [n_params]                                     */
    float class_w[FER_MAX_CLASSES];
    int n_ws;
    fer_workspace *ws;           /* [n_ws] training workspaces, one per thread     */
    float *x, *dlogits;          /* per shard: input and logit-gradient slices     */
    int *labels, *perm;
    int shard_cap;               /* samples per shard                              */
    void *shards;                /* [n_ws] per-step thread jobs (private type)     */
    char error[256];
    void *alloc_ctx;
} fer_trainer;

/* Sets up training of finalized model m on images the size of `train` (its
   h x w is the stored size, the model input the crop): m->pre gets the stored
   size, the crop and the normalisation. */
FERDEF fer_result fer_trainer_init(fer_trainer *t, fer_model *m, const fer_train_config *c,
                                   const fer_dataset *train, void *alloc_ctx);
FERDEF void       fer_trainer_free(fer_trainer *t);
/* One epoch: the training steps, weight averaging, validation on val (NULL:
   none), the schedule, best-epoch and early-stopping bookkeeping. The model
   holds the epoch's weights afterwards: save it when stats->improved. */
FERDEF fer_result fer_trainer_epoch(fer_trainer *t, const fer_dataset *train,
                                    const fer_dataset *val, fer_epoch_stats *stats,
                                    fer_progress_fn progress, void *user);
/* The model as it stands on val (with config.val_tta): fills stats->val_loss
   (mean NLL), val_acc and val_f1 (macro), and nothing else. */
FERDEF fer_result fer_trainer_validate(fer_trainer *t, const fer_dataset *val, fer_epoch_stats *stats);
/* At the end: with weight averaging, loads the average into the model (UNIFORM:
   and recomputes the BN statistics over train); else, with restore_best, loads
   the best epoch's weights. */
FERDEF fer_result fer_trainer_finish(fer_trainer *t, const fer_dataset *train);

/* --- 2.10 Metrics --------------------------------------------------------------
   What an evaluation reports, computed from n rows of k class probabilities and
   the true labels. The prediction is the most probable class (the lowest index
   on a tie), its probability the confidence. Undefined ratios follow
   scikit-learn: precision with nothing predicted, recall with no support, and
   F1 of both zero are 0; macro averages run over the classes that occur in the
   labels or the predictions (a class in neither is left out), weighted ones
   weigh by support. ROC AUC is one-vs-rest on the class's probability, with tied
   scores sharing their average rank (the trapezoid rule); it is NaN for a class
   with no positive or no negative sample, and the macro AUC averages the
   defined ones. Calibration uses 15 equal-width confidence bins (Guo et al.
   2017, "On Calibration of Modern Neural Networks"). */
#define FER_ECE_BINS 15

typedef struct fer_class_metrics {
    double precision, recall, f1;
    double auc;                  /* one-vs-rest ROC AUC, NaN when undefined         */
    int support;                 /* samples whose label is this class               */
    int predicted;               /* samples predicted as this class                 */
} fer_class_metrics;

typedef struct fer_metrics {
    int n, k;
    double accuracy, top2_accuracy;
    double macro_precision, macro_recall, macro_f1;
    double weighted_precision, weighted_recall, weighted_f1;
    double macro_auc;            /* NaN when no class has a defined AUC            */
    double nll;                  /* mean -ln p(label), p floored at 1e-12          */
    double conf_correct;         /* mean confidence of right predictions (NaN: none) */
    double conf_incorrect;       /* ... and of wrong ones                          */
    double threshold;            /* the confidence threshold asked for             */
    double low_share;            /* share of predictions with confidence < threshold */
    double low_accuracy;         /* their accuracy (NaN when there are none)       */
    double ece;                  /* sum over bins of count/n * |accuracy - confidence| */
    int    bin_count[FER_ECE_BINS];   /* bin b holds confidence in (b/15, (b+1)/15] */
    double bin_conf[FER_ECE_BINS];    /* mean confidence in the bin (0 when empty)  */
    double bin_acc[FER_ECE_BINS];     /* accuracy in the bin (0 when empty)         */
    fer_class_metrics cls[FER_MAX_CLASSES];
    int   confusion[FER_MAX_CLASSES][FER_MAX_CLASSES];       /* [true][predicted]  */
    float confusion_norm[FER_MAX_CLASSES][FER_MAX_CLASSES];  /* rows / support     */
    char error[256];
} fer_metrics;

/* probs[n][k] (rows need not sum to 1 exactly), labels[n] in 0..k-1. Allocates
   O(n) scratch for the AUC sort and frees it before returning. */
FERDEF fer_result fer_metrics_compute(fer_metrics *mt, const float *probs, const int *labels,
                                      int n, int k, float threshold, void *alloc_ctx);

/* Temperature scaling: the T in [0.05, 20] that minimises the mean negative
   log-likelihood of softmax(logits / T) over logits[n][k] and labels[n],
   found by golden-section search on ln T (the NLL is convex in 1/T, so the
   search cannot stop in a wrong valley). Store it in m->pre.temperature. */
FERDEF fer_result fer_fit_temperature(const float *logits, const int *labels, int n, int k,
                                      float *temperature);
/* probs[n][k] = softmax(logits[n][k] / temperature), row by row; probs may be logits. */
FERDEF void       fer_softmax_temperature(const float *logits, int n, int k, float temperature,
                                          float *probs);

/* Test-time augmentation. Every image is first resized to fer_tta_size():
   the model's stored size (m->pre.store_h x store_w, or its input size when
   that is larger), except for TENCROP on a model whose stored size equals its
   input, where no pad-free crop exists: then images are resized to input + 4
   (52 x 52 for a 48 x 48 model, a 1.08x zoom, inside the usual training
   augmentation) and the crops are taken from that.
     NONE     the centre crop (what fer_predict sees)
     FLIP     the centre crop and its mirror
     TENCROP  the four corner crops, the centre crop, and the mirrors of all five */
typedef enum fer_tta { FER_TTA_NONE = 0, FER_TTA_FLIP = 1, FER_TTA_TENCROP = 2 } fer_tta;
FERDEF int  fer_tta_views(fer_tta tta);                                 /* 1, 2 or 10 */
FERDEF void fer_tta_size(const fer_model *m, fer_tta tta, int *h, int *w);

/* Runs m over the d->n images of d (any size) with n_threads threads and writes
   probs[d->n][n_classes]: the softmax of logits / m->pre.temperature, averaged
   over the TTA views. logits (may be NULL) gets the logits averaged over the
   views, which is what fer_fit_temperature takes. Labels are not read. On
   failure error[256] names the problem. */
FERDEF fer_result fer_predict_dataset(const fer_model *m, const fer_dataset *d, fer_tta tta,
                                      int n_threads, float *probs, float *logits, char *error);
/* The same with the convs in int8 (fer_workspace_quantize), calibrated on calib:
   n_calib preprocessed samples (fer_preprocess), training images, never d's. */
FERDEF fer_result fer_predict_dataset_int8(const fer_model *m, const fer_dataset *d, fer_tta tta,
                                           int n_threads, const float *calib, int n_calib, float *probs,
                                           float *logits, char *error);

/* t-SNE (van der Maaten and Hinton 2008) of x[n][d] into y[n][2]. The gradient
   is exact (O(n^2) per iteration) for n <= exact_max, and otherwise Barnes-Hut
   (van der Maaten 2014) with sparse affinities over the 3 * perplexity nearest
   neighbours and a quadtree with accuracy theta. The same seed on the same
   instruction set gives the same map (distances go through fer_gemm). */
typedef struct fer_tsne_params {
    float perplexity;            /* effective neighbours (30); lowered to (n-1)/3   */
    int iterations;              /* gradient steps (1000)                          */
    float learning_rate;         /* 0 = scikit-learn's automatic max(n / 48, 50)   */
    float theta;                 /* Barnes-Hut accuracy (0.5)                      */
    int exact_max;               /* largest n with the exact gradient (3000)       */
    uint64_t seed;               /* initial positions (1)                          */
} fer_tsne_params;
FERDEF void       fer_tsne_defaults(fer_tsne_params *p);
FERDEF fer_result fer_tsne(const float *x, int n, int d, const fer_tsne_params *p, float *y,
                           void *alloc_ctx, char *error);

/* --- 2.11 Model file (.fer) and training checkpoints (.ferc) ---------------------
   Little-endian, versioned, self-describing: the graph (so a file alone rebuilds
   the model), parameters, BN statistics, class names, input size, preprocessing
   and a CRC-32. Loading checks every field before use and rejects truncated,
   corrupt or hostile input with FER_ERR_FORMAT and a message. */
FERDEF fer_result fer_model_save_mem(fer_model *m, void **out, size_t *out_len, void *alloc_ctx);
FERDEF fer_result fer_model_load_mem(fer_model *m, const void *buf, size_t len, void *alloc_ctx);
#ifndef FER_NO_STDIO
/* Writes path.tmp, checks every write, then renames it over path. */
FERDEF fer_result fer_model_save(fer_model *m, const char *path);
FERDEF fer_result fer_model_load(fer_model *m, const char *path, void *alloc_ctx);
#endif
FERDEF uint32_t   fer_crc32(const void *buf, size_t len);

/* Training checkpoints: the model (as a .fer image), the optimizer's moments,
   the epoch, the schedule, the best-epoch and early-stopping state, the weight
   average and the best weights, with a CRC-32. Loading into a trainer set up
   with the same architecture and config resumes the run exactly; a checkpoint
   of another model, seed or batch size is refused with a message. */
FERDEF fer_result fer_trainer_save_mem(fer_trainer *t, void **out, size_t *out_len);
FERDEF fer_result fer_trainer_load_mem(fer_trainer *t, const void *buf, size_t len);
#ifndef FER_NO_STDIO
FERDEF fer_result fer_trainer_save(fer_trainer *t, const char *path);   /* path.tmp + rename */
FERDEF fer_result fer_trainer_load(fer_trainer *t, const char *path);
#endif

#ifdef __cplusplus
}
#endif
#endif /* FER_H */

/* ==========================================================================
   3. Implementation
   ========================================================================== */
#ifdef FER_IMPLEMENTATION
#ifndef FER_IMPLEMENTATION_DONE
#define FER_IMPLEMENTATION_DONE

/* --- 3.1 Configuration and platform -------------------------------------- */
#include <string.h>
#include <math.h>
#include <float.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>   /* vsnprintf for messages; FER_NO_STDIO drops only the file functions */

#if defined(FER_MALLOC) && defined(FER_FREE)
#elif !defined(FER_MALLOC) && !defined(FER_FREE)
#include <stdlib.h>
#define FER_MALLOC(sz, ctx) ((void)(ctx), malloc(sz))
#define FER_FREE(p, ctx)    ((void)(ctx), free(p))
#else
#error "fer.h: define both FER_MALLOC and FER_FREE, or neither"
#endif

#ifndef FER_ASSERT
#include <assert.h>
#define FER_ASSERT(x) assert(x)
#endif

#if !defined(FER_NO_SIMD) && (defined(__GNUC__) || defined(__clang__)) && \
    (defined(__x86_64__) || defined(_M_X64))
#define FER__X86 1
#include <immintrin.h>
#include <cpuid.h>
#define FER__AVX2   __attribute__((target("avx2,fma")))
#define FER__AVX512 __attribute__((target("avx512f")))
/* a helper that hands vectors back through pointers: inlined always, or gcc may
   call it with its vectors through the stack and a vzeroupper per call */
#define FER__AVX2_INLINE __attribute__((target("avx2,fma"), always_inline))
#define FER__AVX512_INLINE __attribute__((target("avx512f"), always_inline))
/* the int8 kernels: AVX-512 with VNNI (Ice Lake, Zen 4 and later) */
#define FER__VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))
#define FER__VNNI_INLINE __attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline))
#endif
/* Advanced SIMD is part of every ARMv8-A core, but a build can switch it off
   (-march=armv8-a+nosimd): then arm_neon.h cannot be used and the scalar path runs. */
#if !defined(FER_NO_SIMD) && ((defined(__aarch64__) && defined(__ARM_NEON)) || defined(_M_ARM64))
#define FER__NEON 1
#include <arm_neon.h>
#endif

/* Private helpers. fer__err formats a message into a caller's error buffer. */
static void fer__err(char *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, 256, fmt, ap);
    va_end(ap);
}

/* a*b (+c) in size_t, or SIZE_MAX when it overflows: every size computed from
   untrusted numbers goes through these before it reaches an allocator. */
static size_t fer__mul(size_t a, size_t b)
{
    if (a && b > SIZE_MAX / a) return SIZE_MAX;
    return a * b;
}
static size_t fer__add(size_t a, size_t b) { return (a > SIZE_MAX - b) ? SIZE_MAX : a + b; }

/* splitmix64: the project's one random number generator (seeded, no state hidden). */
static uint64_t fer__mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static float fer__uniform(uint64_t *state)        /* [0,1) with 24 random bits */
{
    *state += 0x9E3779B97F4A7C15ull;
    return (float)(fer__mix64(*state) >> 40) * (1.0f / 16777216.0f);
}

FERDEF const char *fer_result_string(fer_result r)
{
    switch (r) {
    case FER_OK: return "ok";
    case FER_ERR_ARG: return "invalid argument";
    case FER_ERR_NOMEM: return "out of memory";
    case FER_ERR_IO: return "input/output error";
    case FER_ERR_FORMAT: return "bad file format";
    case FER_ERR_SHAPE: return "shape mismatch";
    case FER_ERR_UNSUPPORTED: return "unsupported";
    case FER_ERR_NUMERIC: return "non-finite number";
    }
    return "unknown result";
}

FERDEF const char *fer_isa_name(fer_isa isa)
{
    switch (isa) {
    case FER_ISA_SCALAR: return "scalar";
    case FER_ISA_NEON: return "neon";
    case FER_ISA_AVX2: return "avx2";
    case FER_ISA_AVX512: return "avx512";
    }
    return "unknown";
}

/* CPUID says what the core has; XGETBV says whether the OS saves the wider
   registers on a context switch. Both must agree before a path is used. */
FERDEF fer_isa fer_cpu_best_isa(void)
{
#if defined(FER__X86)
    unsigned a, b, c, d, xlo, xhi;
    int osxsave, avx2 = 0, fma, avx512 = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return FER_ISA_SCALAR;
    osxsave = (c >> 27) & 1;
    fma = (c >> 12) & 1;
    if (!osxsave) return FER_ISA_SCALAR;
    __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    (void)xhi;
    if ((xlo & 6u) != 6u) return FER_ISA_SCALAR;              /* XMM and YMM state */
    if (__get_cpuid_max(0, NULL) >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        avx2 = (b >> 5) & 1;
        avx512 = (b >> 16) & 1;
    }
    if (avx512 && (xlo & 0xE6u) == 0xE6u) return FER_ISA_AVX512; /* + opmask, ZMM */
    if (avx2 && fma) return FER_ISA_AVX2;
    return FER_ISA_SCALAR;
#elif defined(FER__NEON)
    return FER_ISA_NEON;
#else
    return FER_ISA_SCALAR;
#endif
}

/* Whether the int8 kernels' AVX-512 VNNI runs here (and the OS saves ZMM state). */
static int fer__cpu_vnni(void)
{
#if defined(FER__X86)
    unsigned a, b, c, d;
    if (fer_cpu_best_isa() != FER_ISA_AVX512 || __get_cpuid_max(0, NULL) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    (void)a; (void)d;
    return ((b >> 30) & 1) && ((c >> 11) & 1);   /* AVX512BW, AVX512_VNNI */
#else
    return 0;
#endif
}

/* An isa that this build and CPU can run, at most the one asked for. */
/* isa, lowered to what the CPU runs (best: fer_cpu_best_isa(), which costs a
   trapped cpuid in a VM: workspaces ask once, at init). */
static fer_isa fer__isa_clamp(fer_isa isa, fer_isa best)
{
    if (isa > best) isa = best;
#if !defined(FER__NEON)
    if (isa == FER_ISA_NEON) isa = FER_ISA_SCALAR;
#endif
    return isa;
}

/* --- 3.2 Kernels: GEMM ----------------------------------------------------
   Goto-style blocked GEMM. B is packed into KC x NR column strips, A into
   MR x KC row strips, zero-padded at the edges, and a register-blocked
   micro-kernel computes each MR x NR tile of C. The packing reads A and B
   transposed or not, so conv backward (W^T * dY, dY * X^T) needs no copies.
   Each ISA has its micro-kernel and tile size; the scalar one is plain C. */
#define FER__KC 128    /* an 8 x 48 kernel's B strip (24 KB) stays in L1 beside A */
#define FER__MC 192
#define FER__NC 1152   /* a multiple of every NR (48, 16, 8) */
#define FER__MRMAX 8
#define FER__NRMAX 48

FERDEF size_t fer_gemm_pack_floats(void)
{
    return (size_t)FER__KC * (FER__NC + FER__NRMAX) + (size_t)(FER__MC + FER__MRMAX) * FER__KC;
}

FERDEF void fer_gemm_reference(int trans_a, int trans_b, int M, int N, int K,
                               const float *A, int lda, const float *B, int ldb,
                               float *C, int ldc, int accumulate)
{
    int i, j, p;
    for (i = 0; i < M; i++)
        for (j = 0; j < N; j++) {
            double s = accumulate ? C[(size_t)i * ldc + j] : 0.0;
            for (p = 0; p < K; p++) {
                float a = trans_a ? A[(size_t)p * lda + i] : A[(size_t)i * lda + p];
                float b = trans_b ? B[(size_t)j * ldb + p] : B[(size_t)p * ldb + j];
                s += (double)a * b;
            }
            C[(size_t)i * ldc + j] = (float)s;
        }
}

/* dst: ceil(mc/mr) strips, each kc x mr (k-major). A(i,p) = trans ? A[p][i] : A[i][p].
   Loops run along A's rows in memory order: reads stream, writes stay in a strip. */
static void fer__pack_a(int mr, int mc, int kc, const float *A, int lda, int trans, float *dst)
{
    int ib, i, p;
    for (ib = 0; ib < mc; ib += mr, dst += (size_t)mr * kc) {
        int rows = mc - ib < mr ? mc - ib : mr;
        if (trans) {
            for (p = 0; p < kc; p++) {
                const float *src = A + (size_t)p * lda + ib;
                for (i = 0; i < rows; i++) dst[p * mr + i] = src[i];
                for (; i < mr; i++) dst[p * mr + i] = 0.0f;
            }
        } else {
            for (i = 0; i < rows; i++) {
                const float *src = A + (size_t)(ib + i) * lda;
                for (p = 0; p < kc; p++) dst[p * mr + i] = src[p];
            }
            for (; i < mr; i++) for (p = 0; p < kc; p++) dst[p * mr + i] = 0.0f;
        }
    }
}

/* One row of a full strip. A memcpy of constant size becomes a few vector moves;
   one of variable size is inlined as `rep movs`, whose start-up cost made
   packing as slow as the multiply itself. */
static void fer__copy_nr(float *dst, const float *src, int nr)
{
    switch (nr) {
    case 48: memcpy(dst, src, 48 * sizeof(float)); break;
    case 32: memcpy(dst, src, 32 * sizeof(float)); break;
    case 16: memcpy(dst, src, 16 * sizeof(float)); break;
    case 8: memcpy(dst, src, 8 * sizeof(float)); break;
    default: { int j; for (j = 0; j < nr; j++) dst[j] = src[j]; }
    }
}

#if defined(FER__X86)
/* r[0..15] transposed in registers (four rounds of shuffles; named registers, not
   arrays, which gcc -O2 would keep in memory between the rounds). */
#define FER__TP1(a, b) t##a = _mm512_unpacklo_ps(r[a], r[b]); t##b = _mm512_unpackhi_ps(r[a], r[b]);
#define FER__TP2(a, b, c, d) u##a = _mm512_shuffle_ps(t##a, t##c, 0x44); u##b = _mm512_shuffle_ps(t##a, t##c, 0xEE); \
    u##c = _mm512_shuffle_ps(t##b, t##d, 0x44); u##d = _mm512_shuffle_ps(t##b, t##d, 0xEE);
#define FER__TP3(a, b, c, d) t##a = _mm512_shuffle_f32x4(u##a, u##b, 0x88); t##b = _mm512_shuffle_f32x4(u##a, u##b, 0xDD); \
    t##c = _mm512_shuffle_f32x4(u##c, u##d, 0x88); t##d = _mm512_shuffle_f32x4(u##c, u##d, 0xDD);
#define FER__TP4(a, b) r[a] = _mm512_shuffle_f32x4(t##a, t##b, 0x88); r[b] = _mm512_shuffle_f32x4(t##a, t##b, 0xDD);
FER__AVX512 static inline void fer__transpose16_avx512(__m512 *r)
{
    __m512 t0, t1, t2, t3, t4, t5, t6, t7, t8, t9, t10, t11, t12, t13, t14, t15;
    __m512 u0, u1, u2, u3, u4, u5, u6, u7, u8, u9, u10, u11, u12, u13, u14, u15;
    FER__TP1(0, 1) FER__TP1(2, 3) FER__TP1(4, 5) FER__TP1(6, 7)   /* pairs of rows: elements interleaved */
    FER__TP1(8, 9) FER__TP1(10, 11) FER__TP1(12, 13) FER__TP1(14, 15)
    FER__TP2(0, 1, 2, 3) FER__TP2(4, 5, 6, 7) FER__TP2(8, 9, 10, 11) FER__TP2(12, 13, 14, 15)   /* quads */
    FER__TP3(0, 4, 8, 12) FER__TP3(1, 5, 9, 13) FER__TP3(2, 6, 10, 14) FER__TP3(3, 7, 11, 15)   /* 128-bit lanes */
    FER__TP4(0, 8) FER__TP4(1, 9) FER__TP4(2, 10) FER__TP4(3, 11)
    FER__TP4(4, 12) FER__TP4(5, 13) FER__TP4(6, 14) FER__TP4(7, 15)
}
#undef FER__TP1
#undef FER__TP2
#undef FER__TP3
#undef FER__TP4
/* fer__pack_b of a transposed B (B is N x K) into 48-wide strips, 16 x 16
   blocks transposed in registers. */
FER__AVX512 static void fer__pack_bt_avx512(int nc, int kc, const float *B, int ldb, float *dst)
{
    int jb, j0, p0, i;
    for (jb = 0; jb < nc; jb += 48, dst += (size_t)48 * kc)
        for (j0 = 0; j0 < 48; j0 += 16)
            for (p0 = 0; p0 < kc; p0 += 16) {
                __mmask16 m = (__mmask16)(kc - p0 >= 16 ? 0xFFFF : (1u << (kc - p0)) - 1u);
                int np = kc - p0 < 16 ? kc - p0 : 16;
                __m512 r[16];
                for (i = 0; i < 16; i++)
                    r[i] = jb + j0 + i < nc ? _mm512_maskz_loadu_ps(m, B + (size_t)(jb + j0 + i) * ldb + p0)
                                            : _mm512_setzero_ps();
                fer__transpose16_avx512(r);
                for (i = 0; i < np; i++) _mm512_storeu_ps(dst + (size_t)(p0 + i) * 48 + j0, r[i]);
            }
}
#endif

/* dst: ceil(nc/nr) strips, each kc x nr (k-major). B(p,j) = trans ? B[j][p] : B[p][j] */
static void fer__pack_b(int nr, int nc, int kc, const float *B, int ldb, int trans, float *dst)
{
    int jb, j, p, full = nc - nc % nr;
    if (!trans && full) {
        /* full strips row by row: B is read along its rows (one stream, not one
           row per k-step 9 KB apart), the strips are written at stride kc * nr */
        for (p = 0; p < kc; p++) {
            const float *src = B + (size_t)p * ldb;
            float *d = dst + (size_t)p * nr;
            for (jb = 0; jb < full; jb += nr, d += (size_t)nr * kc) fer__copy_nr(d, src + jb, nr);
        }
        if (full == nc) return;
        B += full; dst += (size_t)full * kc; nc -= full;
    }
    for (jb = 0; jb < nc; jb += nr, dst += (size_t)nr * kc) {
        int cols = nc - jb < nr ? nc - jb : nr;
        if (trans) {
            for (j = 0; j < cols; j++) {
                const float *src = B + (size_t)(jb + j) * ldb;
                for (p = 0; p < kc; p++) dst[p * nr + j] = src[p];
            }
            for (; j < nr; j++) for (p = 0; p < kc; p++) dst[p * nr + j] = 0.0f;
        } else {
            if (cols == nr)
                for (p = 0; p < kc; p++) fer__copy_nr(dst + p * nr, B + (size_t)p * ldb + jb, nr);
            else
                for (p = 0; p < kc; p++) {
                    for (j = 0; j < cols; j++) dst[p * nr + j] = B[(size_t)p * ldb + jb + j];
                    for (; j < nr; j++) dst[p * nr + j] = 0.0f;
                }
        }
    }
}

/* The store-time epilogue of a GEMM's last k block, per row i of C:
   C = act(scale[i] * C + shift[i]), scale or shift NULL for 1 or 0, act 0, 1 (ReLU)
   or 2 (ReLU6). Conv layers use it for their bias and, at inference, for the batch
   norm and activation that follow them. */
typedef struct fer__epi { const float *scale, *shift; int act; } fer__epi;

static float fer__epi_one(const fer__epi *e, int i, float v)
{
    if (e->scale) v *= e->scale[i];
    if (e->shift) v += e->shift[i];
    if (e->act && v < 0.0f) v = 0.0f;
    if (e->act == 2 && v > 6.0f) v = 6.0f;
    return v;
}

/* Writes an mr x nr tile held in t (row stride nr) to C, rows x cols of it. */
static void fer__store_tile(const float *t, int nr, float *C, int ldc, int rows, int cols, int acc,
                            const fer__epi *e)
{
    int i, j;
    for (i = 0; i < rows; i++)
        for (j = 0; j < cols; j++) {
            float v = acc ? C[(size_t)i * ldc + j] + t[i * nr + j] : t[i * nr + j];
            C[(size_t)i * ldc + j] = e ? fer__epi_one(e, i, v) : v;
        }
}

/* The epilogue over rows x cols of C (paths that do not store through a kernel). */
static void fer__epi_rows(const fer__epi *e, int rows, int cols, float *C, int ldc)
{
    int i, j;
    if (e)
        for (i = 0; i < rows; i++)
            for (j = 0; j < cols; j++) C[(size_t)i * ldc + j] = fer__epi_one(e, i, C[(size_t)i * ldc + j]);
}

#define FER__MR_SCALAR 4
#define FER__NR_SCALAR 8
static void fer__kernel_scalar(int kc, const float *pa, const float *pb, int ldb, float *C, int ldc,
                               int rows, int cols, int acc, const fer__epi *e)
{
    float t[FER__MR_SCALAR * FER__NR_SCALAR];
    int i, j, p;
    for (i = 0; i < FER__MR_SCALAR * FER__NR_SCALAR; i++) t[i] = 0.0f;
    for (p = 0; p < kc; p++) {
        for (i = 0; i < FER__MR_SCALAR; i++) {
            float a = pa[i];
            for (j = 0; j < FER__NR_SCALAR; j++) t[i * FER__NR_SCALAR + j] += a * pb[j];
        }
        pa += FER__MR_SCALAR;
        pb += ldb;
    }
    fer__store_tile(t, FER__NR_SCALAR, C, ldc, rows, cols, acc, e);
}

#if defined(FER__X86)
#define FER__MR_AVX2 6
#define FER__NR_AVX2 16
/* Horizontal sum of a ymm, through memory (as fer__hsum512). */
FER__AVX2 static float fer__hsum256(__m256 v)
{
    float t[8], r = 0.0f;
    int i;
    _mm256_storeu_ps(t, v);
    for (i = 0; i < 8; i++) r += t[i];
    return r;
}
/* the horizontal sums of a, b, c, d as one xmm */
FER__AVX2 static __m128 fer__hsum4x256(__m256 a, __m256 b, __m256 c, __m256 d)
{
    __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}
/* the even and the odd floats of the 16 in a, b */
FER__AVX2 static void fer__evod256(__m256 a, __m256 b, __m256 *ev, __m256 *od)
{
    /* [a0 a2 b0 b2 | a4 a6 b4 b6], then the 64-bit lanes in order 0 2 1 3 */
    *ev = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))), 0xD8));
    *od = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))), 0xD8));
}
/* the 16 floats e0 o0 e1 o1 ... e7 o7 as two vectors */
FER__AVX2 static void fer__interleave256(__m256 e, __m256 o, __m256 *r0, __m256 *r1)
{
    __m256 lo = _mm256_unpacklo_ps(e, o), hi = _mm256_unpackhi_ps(e, o);
    *r0 = _mm256_permute2f128_ps(lo, hi, 0x20);
    *r1 = _mm256_permute2f128_ps(lo, hi, 0x31);
}
/* Lanes [0, n) of a ymm mask (n clamped to 0..8). */
FER__AVX2 static __m256i fer__mask256(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
/* a vector, or its lanes under m (the rest zero) where not full; the store to match */
FER__AVX2 static __m256 fer__ld256(const float *p, int full, __m256i m)
{
    return full ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m);
}
FER__AVX2 static void fer__st256(float *p, int full, __m256i m, __m256 v)
{
    if (full) _mm256_storeu_ps(p, v);
    else _mm256_maskstore_ps(p, m, v);
}
/* The AVX2 twin of fer__kernel_avx512_off (same arguments): a 6 x 16 tile, 12
   accumulators + 2 B vectors + 1 broadcast of the 16 ymm, named (not an array)
   for the same reason. Narrow strips (cols <= 8) run the 1-vector loop, tiles of
   at most 2 or 4 rows loops of those rows only (they ran all six: a conv of 8
   output channels did 12 rows of FMAs for 8). */
FER__AVX2 static void fer__kernel_avx2_off(int kc, const float *pa, int lda, const float *pb, int ldb,
                                           const int *koff, float *C, int ldc, int rows, int cols,
                                           int acc, const fer__epi *e)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    __m256 one = _mm256_set1_ps(1.0f), z = _mm256_setzero_ps(), lo, hi;
    __m256i m0, m1;
    int p, nv = cols > 8 ? 2 : 1, sa = lda ? 1 : FER__MR_AVX2, rs = lda ? lda : 1, full;
    size_t off;
    const float *q0 = pa, *q1 = rows > 1 ? pa + rs : pa, *q2 = rows > 2 ? pa + 2 * rs : pa;
    const float *q3 = rows > 3 ? pa + 3 * rs : pa, *q4 = rows > 4 ? pa + 4 * rs : pa;
    const float *q5 = rows > 5 ? pa + 5 * rs : pa;
#define FER__ROW256(r, x0, x1, NV) \
    a = _mm256_broadcast_ss(q##r + off); x0 = _mm256_fmadd_ps(a, b0, x0); \
    if (NV > 1) x1 = _mm256_fmadd_ps(a, b1, x1)
#define FER__LOOP256(NV, NR, ROW) \
    for (p = 0, off = 0; p < kc; p++, off += (size_t)sa) { \
        const float *bp = ROW; \
        __m256 b0 = _mm256_loadu_ps(bp), a, b1 = NV > 1 ? _mm256_loadu_ps(bp + 8) : b0; \
        FER__ROW256(0, c00, c01, NV); FER__ROW256(1, c10, c11, NV); \
        if (NR > 2) { FER__ROW256(2, c20, c21, NV); FER__ROW256(3, c30, c31, NV); } \
        if (NR > 4) { FER__ROW256(4, c40, c41, NV); FER__ROW256(5, c50, c51, NV); } \
    }
#define FER__LOOPS256(ROW) \
    if (nv == 2 && rows > 4) FER__LOOP256(2, 6, ROW) \
    else if (nv == 2 && rows > 2) FER__LOOP256(2, 4, ROW) \
    else if (nv == 2) FER__LOOP256(2, 2, ROW) \
    else if (rows > 4) FER__LOOP256(1, 6, ROW) \
    else if (rows > 2) FER__LOOP256(1, 4, ROW) \
    else FER__LOOP256(1, 2, ROW)
    if (koff) { FER__LOOPS256(pb + koff[p]) }
    else { FER__LOOPS256(pb + (size_t)p * ldb) }
#undef FER__LOOPS256
#undef FER__LOOP256
#undef FER__ROW256
    lo = e && e->act ? z : _mm256_set1_ps(-INFINITY);
    hi = _mm256_set1_ps(e && e->act == 2 ? 6.0f : INFINITY);
    full = cols == 8 * nv;
    m0 = fer__mask256(cols);
    m1 = fer__mask256(cols - 8);
    /* rows past `rows` are not stored; a partial vector through masked loads and stores */
#define FER__STORE256(r, x0, x1) if (r < rows) { \
        float *cp = C + (size_t)(r) * ldc; \
        if (acc) { x0 = _mm256_add_ps(x0, full ? _mm256_loadu_ps(cp) : _mm256_maskload_ps(cp, m0)); \
                   if (nv > 1) x1 = _mm256_add_ps(x1, full ? _mm256_loadu_ps(cp + 8) : _mm256_maskload_ps(cp + 8, m1)); } \
        if (e) { \
            __m256 sc = e->scale ? _mm256_set1_ps(e->scale[r]) : one, sh = e->shift ? _mm256_set1_ps(e->shift[r]) : z; \
            x0 = _mm256_min_ps(_mm256_max_ps(_mm256_fmadd_ps(x0, sc, sh), lo), hi); \
            if (nv > 1) x1 = _mm256_min_ps(_mm256_max_ps(_mm256_fmadd_ps(x1, sc, sh), lo), hi); } \
        if (full) { _mm256_storeu_ps(cp, x0); if (nv > 1) _mm256_storeu_ps(cp + 8, x1); } \
        else { _mm256_maskstore_ps(cp, m0, x0); if (nv > 1) _mm256_maskstore_ps(cp + 8, m1, x1); } }
    FER__STORE256(0, c00, c01) FER__STORE256(1, c10, c11) FER__STORE256(2, c20, c21)
    FER__STORE256(3, c30, c31) FER__STORE256(4, c40, c41) FER__STORE256(5, c50, c51)
#undef FER__STORE256
}
FER__AVX2 static void fer__kernel_avx2(int kc, const float *pa, const float *pb, int ldb, float *C,
                                       int ldc, int rows, int cols, int acc, const fer__epi *e)
{
    fer__kernel_avx2_off(kc, pa, 0, pb, ldb, NULL, C, ldc, rows, cols, acc, e);
}

#define FER__MR_AVX512 8
#define FER__NR_AVX512 48
/* out[0..n16) = a + b, n16 a multiple of 16 */
FER__AVX512 static void fer__vadd_avx512(size_t n16, float *out, const float *a, const float *b)
{
    size_t i;
    for (i = 0; i < n16; i += 16) _mm512_storeu_ps(out + i, _mm512_add_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i)));
}
/* out[0..n8) = a + b, n8 a multiple of 8 */
FER__AVX2 static void fer__vadd_avx2(size_t n8, float *out, const float *a, const float *b)
{
    size_t i;
    for (i = 0; i < n8; i += 8) _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
}
/* One row of the epilogue on a zmm (e non-NULL). */
FER__AVX512 static __m512 fer__epi512(__m512 v, const fer__epi *e, int i)
{
    if (e->scale && e->shift) v = _mm512_fmadd_ps(v, _mm512_set1_ps(e->scale[i]), _mm512_set1_ps(e->shift[i]));
    else if (e->scale) v = _mm512_mul_ps(v, _mm512_set1_ps(e->scale[i]));
    else if (e->shift) v = _mm512_add_ps(v, _mm512_set1_ps(e->shift[i]));
    if (e->act) v = _mm512_max_ps(v, _mm512_setzero_ps());
    if (e->act == 2) v = _mm512_min_ps(v, _mm512_set1_ps(6.0f));
    return v;
}

/* koff non-NULL: B's row p starts at pb + koff[p] (ldb unused). lda 0: pa is a
   packed strip; lda > 0: A read in place, row r at pa + r*lda (the kernel loads A
   one broadcast at a time anyway, so unpacked rows cost nothing but the packing
   they save: a small conv's weights are as many floats as its multiply has FMAs
   per output column). */
FER__AVX512 static void fer__kernel_avx512_off(int kc, const float *pa, int lda, const float *pb, int ldb,
                                               const int *koff, float *C, int ldc, int rows, int cols,
                                               int acc, const fer__epi *e)
{
    /* 8 x 48 tile: 24 accumulators + 3 B vectors + 1 broadcast of the 32 zmm. The
       accumulators are named variables, not an array: gcc -O2 does not unroll an
       8-trip loop, and an indexed array of them lives on the stack (every FMA then
       loads and stores memory). 8 x 48 rather than 12 x 32: fewer broadcasts per
       FMA (8 + 3 loads per 24 FMAs, not 12 + 2) measured 25-40% faster on Ice Lake,
       and the zoo's channel counts are multiples of 8. Narrow strips (the last one
       of a row) run the 1- or 2-vector loop. */
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00;
    __m512 c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
    __m512 c40 = c00, c41 = c00, c42 = c00, c50 = c00, c51 = c00, c52 = c00;
    __m512 c60 = c00, c61 = c00, c62 = c00, c70 = c00, c71 = c00, c72 = c00;
    __m512 t[FER__MR_AVX512][3];
    __mmask16 m[3];
    int i, j, p, nv = cols > 32 ? 3 : cols > 16 ? 2 : 1, sa = lda ? 1 : FER__MR_AVX512, rs = lda ? lda : 1;
    size_t off;
    /* row r of A at q_r[off], off advancing by sa per k-step; rows past `rows` repeat row 0 */
    const float *q0 = pa, *q1 = rows > 1 ? pa + rs : pa, *q2 = rows > 2 ? pa + 2 * rs : pa;
    const float *q3 = rows > 3 ? pa + 3 * rs : pa, *q4 = rows > 4 ? pa + 4 * rs : pa;
    const float *q5 = rows > 5 ? pa + 5 * rs : pa, *q6 = rows > 6 ? pa + 6 * rs : pa;
    const float *q7 = rows > 7 ? pa + 7 * rs : pa;
#define FER__ROW512(r, x0, x1, x2, NV) \
    a = _mm512_set1_ps(q##r[off]); x0 = _mm512_fmadd_ps(a, b0, x0); \
    if (NV > 1) x1 = _mm512_fmadd_ps(a, b1, x1); \
    if (NV > 2) x2 = _mm512_fmadd_ps(a, b2, x2)
#define FER__LOOP512(NV, ROW) \
    for (p = 0, off = 0; p < kc; p++, off += (size_t)sa) { \
        const float *bp = ROW; \
        __m512 b0 = _mm512_loadu_ps(bp), a; \
        __m512 b1 = NV > 1 ? _mm512_loadu_ps(bp + 16) : b0, b2 = NV > 2 ? _mm512_loadu_ps(bp + 32) : b0; \
        FER__ROW512(0, c00, c01, c02, NV); FER__ROW512(1, c10, c11, c12, NV); \
        FER__ROW512(2, c20, c21, c22, NV); FER__ROW512(3, c30, c31, c32, NV); \
        FER__ROW512(4, c40, c41, c42, NV); FER__ROW512(5, c50, c51, c52, NV); \
        FER__ROW512(6, c60, c61, c62, NV); FER__ROW512(7, c70, c71, c72, NV); \
    }
    if (koff) {   /* row p of B at pb + koff[p] (implicit im2col) */
        if (nv == 3) FER__LOOP512(3, pb + koff[p])
        else if (nv == 2) FER__LOOP512(2, pb + koff[p])
        else FER__LOOP512(1, pb + koff[p])
    } else {
        if (nv == 3) FER__LOOP512(3, pb + (size_t)p * ldb)
        else if (nv == 2) FER__LOOP512(2, pb + (size_t)p * ldb)
        else FER__LOOP512(1, pb + (size_t)p * ldb)
    }
#undef FER__LOOP512
#undef FER__ROW512
    if (rows == FER__MR_AVX512 && cols == 16 * nv) {
        /* a tile of full rows and full vectors straight from the named accumulators
           (through t[][] the store of a short-K tile, a 16-channel 1x1 conv's, took
           40% of its time) */
        __m512 one = _mm512_set1_ps(1.0f), z = _mm512_setzero_ps();
        __m512 lo = e && e->act ? z : _mm512_set1_ps(-INFINITY), hi = _mm512_set1_ps(e && e->act == 2 ? 6.0f : INFINITY);
#define FER__STORE512(r, x0, x1, x2) { \
        float *cp = C + (size_t)(r) * ldc; \
        if (acc) { x0 = _mm512_add_ps(x0, _mm512_loadu_ps(cp)); \
                   if (nv > 1) x1 = _mm512_add_ps(x1, _mm512_loadu_ps(cp + 16)); \
                   if (nv > 2) x2 = _mm512_add_ps(x2, _mm512_loadu_ps(cp + 32)); } \
        if (e) { \
            __m512 sc = e->scale ? _mm512_set1_ps(e->scale[r]) : one, sh = e->shift ? _mm512_set1_ps(e->shift[r]) : z; \
            x0 = _mm512_min_ps(_mm512_max_ps(_mm512_fmadd_ps(x0, sc, sh), lo), hi); \
            if (nv > 1) x1 = _mm512_min_ps(_mm512_max_ps(_mm512_fmadd_ps(x1, sc, sh), lo), hi); \
            if (nv > 2) x2 = _mm512_min_ps(_mm512_max_ps(_mm512_fmadd_ps(x2, sc, sh), lo), hi); } \
        _mm512_storeu_ps(cp, x0); \
        if (nv > 1) _mm512_storeu_ps(cp + 16, x1); \
        if (nv > 2) _mm512_storeu_ps(cp + 32, x2); }
        FER__STORE512(0, c00, c01, c02) FER__STORE512(1, c10, c11, c12) FER__STORE512(2, c20, c21, c22)
        FER__STORE512(3, c30, c31, c32) FER__STORE512(4, c40, c41, c42) FER__STORE512(5, c50, c51, c52)
        FER__STORE512(6, c60, c61, c62) FER__STORE512(7, c70, c71, c72)
#undef FER__STORE512
        return;
    }
    t[0][0] = c00; t[0][1] = c01; t[0][2] = c02; t[1][0] = c10; t[1][1] = c11; t[1][2] = c12;
    t[2][0] = c20; t[2][1] = c21; t[2][2] = c22; t[3][0] = c30; t[3][1] = c31; t[3][2] = c32;
    t[4][0] = c40; t[4][1] = c41; t[4][2] = c42; t[5][0] = c50; t[5][1] = c51; t[5][2] = c52;
    t[6][0] = c60; t[6][1] = c61; t[6][2] = c62; t[7][0] = c70; t[7][1] = c71; t[7][2] = c72;
    for (j = 0; j < 3; j++) {   /* masked loads and stores: no temporary tile at the edges */
        int cj = cols - 16 * j;
        m[j] = (__mmask16)(cj >= 16 ? 0xFFFF : cj <= 0 ? 0 : (1u << cj) - 1u);
    }
    for (i = 0; i < rows; i++) {
        float *cp = C + (size_t)i * ldc;
        for (j = 0; j < nv; j++) {
            __m512 v = t[i][j];
            if (acc) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m[j], cp + 16 * j));
            if (e) v = fer__epi512(v, e, i);
            _mm512_mask_storeu_ps(cp + 16 * j, m[j], v);
        }
    }
}
FER__AVX512 static void fer__kernel_avx512(int kc, const float *pa, const float *pb, int ldb, float *C,
                                           int ldc, int rows, int cols, int acc, const fer__epi *e)
{
    fer__kernel_avx512_off(kc, pa, 0, pb, ldb, NULL, C, ldc, rows, cols, acc, e);
}
#endif /* FER__X86 */

#if defined(FER__NEON)
#define FER__MR_NEON 6
#define FER__NR_NEON 16
static void fer__kernel_neon(int kc, const float *pa, const float *pb, int ldb, float *C, int ldc,
                             int rows, int cols, int acc, const fer__epi *e)
{
    /* 24 named accumulators (see the AVX-512 kernel: an array would spill) */
    float32x4_t c[FER__MR_NEON][4];
    float32x4_t c00 = vdupq_n_f32(0.0f), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00;
    float32x4_t c13 = c00, c20 = c00, c21 = c00, c22 = c00, c23 = c00, c30 = c00, c31 = c00, c32 = c00;
    float32x4_t c33 = c00, c40 = c00, c41 = c00, c42 = c00, c43 = c00, c50 = c00, c51 = c00, c52 = c00;
    float32x4_t c53 = c00;
    int i, j, p;
    for (p = 0; p < kc; p++) {
        float32x4_t b0 = vld1q_f32(pb), b1 = vld1q_f32(pb + 4);
        float32x4_t b2 = vld1q_f32(pb + 8), b3 = vld1q_f32(pb + 12);
        float32x4_t a01 = vld1q_f32(pa);             /* rows 0-3, then rows 4-5 */
        float32x2_t a45 = vld1_f32(pa + 4);
#define FER__ROWNEON(x0, x1, x2, x3, av, lane) \
        x0 = vfmaq_laneq_f32(x0, b0, av, lane); x1 = vfmaq_laneq_f32(x1, b1, av, lane); \
        x2 = vfmaq_laneq_f32(x2, b2, av, lane); x3 = vfmaq_laneq_f32(x3, b3, av, lane)
        FER__ROWNEON(c00, c01, c02, c03, a01, 0);
        FER__ROWNEON(c10, c11, c12, c13, a01, 1);
        FER__ROWNEON(c20, c21, c22, c23, a01, 2);
        FER__ROWNEON(c30, c31, c32, c33, a01, 3);
#undef FER__ROWNEON
        c40 = vfmaq_lane_f32(c40, b0, a45, 0); c41 = vfmaq_lane_f32(c41, b1, a45, 0);
        c42 = vfmaq_lane_f32(c42, b2, a45, 0); c43 = vfmaq_lane_f32(c43, b3, a45, 0);
        c50 = vfmaq_lane_f32(c50, b0, a45, 1); c51 = vfmaq_lane_f32(c51, b1, a45, 1);
        c52 = vfmaq_lane_f32(c52, b2, a45, 1); c53 = vfmaq_lane_f32(c53, b3, a45, 1);
        pa += FER__MR_NEON;
        pb += ldb;
    }
    c[0][0] = c00; c[0][1] = c01; c[0][2] = c02; c[0][3] = c03; c[1][0] = c10; c[1][1] = c11;
    c[1][2] = c12; c[1][3] = c13; c[2][0] = c20; c[2][1] = c21; c[2][2] = c22; c[2][3] = c23;
    c[3][0] = c30; c[3][1] = c31; c[3][2] = c32; c[3][3] = c33; c[4][0] = c40; c[4][1] = c41;
    c[4][2] = c42; c[4][3] = c43; c[5][0] = c50; c[5][1] = c51; c[5][2] = c52; c[5][3] = c53;
    if (rows == FER__MR_NEON && cols == FER__NR_NEON && !e) {
        for (i = 0; i < FER__MR_NEON; i++) {
            float *cp = C + (size_t)i * ldc;
            for (j = 0; j < 4; j++) {
                float32x4_t v = c[i][j];
                if (acc) v = vaddq_f32(v, vld1q_f32(cp + 4 * j));
                vst1q_f32(cp + 4 * j, v);
            }
        }
    } else {
        float t[FER__MR_NEON * FER__NR_NEON];
        for (i = 0; i < FER__MR_NEON; i++)
            for (j = 0; j < 4; j++) vst1q_f32(t + i * FER__NR_NEON + 4 * j, c[i][j]);
        fer__store_tile(t, FER__NR_NEON, C, ldc, rows, cols, acc, e);
    }
}
#endif /* FER__NEON */

#if defined(FER__X86)
/* Horizontal sum of a zmm. Through memory: the shuffle intrinsics are built on
   _mm512_undefined_ps, which g++ -O2 reports as an uninitialised read. */
FER__AVX512 static float fer__hsum512(__m512 v)
{
    float t[16], r = 0.0f;
    int i;
    _mm512_storeu_ps(t, v);
    for (i = 0; i < 16; i++) r += t[i];
    return r;
}
#endif

#if defined(FER__X86)
/* C (+)= A * B^T with A [M][K] and B [N][K] both contiguous along K (conv weight
   gradients: dW = dY * X^T over the spatial axis). Each 4x4 tile of C is 16 long
   dot products held in 16 registers; no packing. */
FER__AVX512 static void fer__gemm_abt_avx512(int M, int N, int K, const float *A, int lda,
                                             const float *B, int ldb, const int *boff, float *C, int ldc,
                                             int acc)
{
    /* boff non-NULL: B's row j starts at B + boff[j] (ldb unused) */
    int i0, j0, i, j, p;
    for (i0 = 0; i0 < M; i0 += 4)
        for (j0 = 0; j0 < N; j0 += 4) {
            int ni = M - i0 < 4 ? M - i0 : 4, nj = N - j0 < 4 ? N - j0 : 4;
            const float *a0, *a1, *a2, *a3, *b0, *b1, *b2, *b3;
            /* named accumulators (an indexed array would live on the stack) */
            __m512 c00 = _mm512_setzero_ps(), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00;
            __m512 c12 = c00, c13 = c00, c20 = c00, c21 = c00, c22 = c00, c23 = c00, c30 = c00;
            __m512 c31 = c00, c32 = c00, c33 = c00;
            float t[4][4];
            a0 = A + (size_t)i0 * lda; a1 = ni > 1 ? a0 + lda : a0; a2 = ni > 2 ? a1 + lda : a0; a3 = ni > 3 ? a2 + lda : a0;
            if (boff) {
                b0 = B + boff[j0]; b1 = nj > 1 ? B + boff[j0 + 1] : b0;
                b2 = nj > 2 ? B + boff[j0 + 2] : b0; b3 = nj > 3 ? B + boff[j0 + 3] : b0;
            } else {
                b0 = B + (size_t)j0 * ldb; b1 = nj > 1 ? b0 + ldb : b0; b2 = nj > 2 ? b1 + ldb : b0; b3 = nj > 3 ? b2 + ldb : b0;
            }
            for (p = 0; p < K; p += 16) {
                __mmask16 k = (__mmask16)(K - p >= 16 ? 0xFFFF : (1u << (K - p)) - 1u);
                __m512 va, vb0 = _mm512_maskz_loadu_ps(k, b0 + p), vb1 = _mm512_maskz_loadu_ps(k, b1 + p);
                __m512 vb2 = _mm512_maskz_loadu_ps(k, b2 + p), vb3 = _mm512_maskz_loadu_ps(k, b3 + p);
#define FER__ABT_ROW(ap, x0, x1, x2, x3) \
                va = _mm512_maskz_loadu_ps(k, ap + p); x0 = _mm512_fmadd_ps(va, vb0, x0); \
                x1 = _mm512_fmadd_ps(va, vb1, x1); x2 = _mm512_fmadd_ps(va, vb2, x2); x3 = _mm512_fmadd_ps(va, vb3, x3)
                FER__ABT_ROW(a0, c00, c01, c02, c03);
                FER__ABT_ROW(a1, c10, c11, c12, c13);
                FER__ABT_ROW(a2, c20, c21, c22, c23);
                FER__ABT_ROW(a3, c30, c31, c32, c33);
#undef FER__ABT_ROW
            }
            t[0][0] = fer__hsum512(c00); t[0][1] = fer__hsum512(c01); t[0][2] = fer__hsum512(c02); t[0][3] = fer__hsum512(c03);
            t[1][0] = fer__hsum512(c10); t[1][1] = fer__hsum512(c11); t[1][2] = fer__hsum512(c12); t[1][3] = fer__hsum512(c13);
            t[2][0] = fer__hsum512(c20); t[2][1] = fer__hsum512(c21); t[2][2] = fer__hsum512(c22); t[2][3] = fer__hsum512(c23);
            t[3][0] = fer__hsum512(c30); t[3][1] = fer__hsum512(c31); t[3][2] = fer__hsum512(c32); t[3][3] = fer__hsum512(c33);
            for (i = 0; i < ni; i++)
                for (j = 0; j < nj; j++) {
                    float *cp = C + (size_t)(i0 + i) * ldc + j0 + j;
                    *cp = acc ? *cp + t[i][j] : t[i][j];
                }
        }
}
#endif

#if defined(FER__X86)
/* The AVX2 twin of fer__gemm_abt_avx512 (same arguments): 4x3 tiles of C, the 12
   dot products in 12 registers beside 3 rows of B and 1 of A; K's tail masked. */
FER__AVX2 static void fer__gemm_abt_avx2(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                                         const int *boff, float *C, int ldc, int acc)
{
    int i0, j0, i, j, p;
    for (i0 = 0; i0 < M; i0 += 4)
        for (j0 = 0; j0 < N; j0 += 3) {
            int ni = M - i0 < 4 ? M - i0 : 4, nj = N - j0 < 3 ? N - j0 : 3;
            const float *a0, *a1, *a2, *a3, *b0, *b1, *b2;
            __m256 c00 = _mm256_setzero_ps(), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00;
            __m256 c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
            float t[12];
            a0 = A + (size_t)i0 * lda; a1 = ni > 1 ? a0 + lda : a0; a2 = ni > 2 ? a1 + lda : a0; a3 = ni > 3 ? a2 + lda : a0;
            if (boff) {
                b0 = B + boff[j0]; b1 = nj > 1 ? B + boff[j0 + 1] : b0; b2 = nj > 2 ? B + boff[j0 + 2] : b0;
            } else {
                b0 = B + (size_t)j0 * ldb; b1 = nj > 1 ? b0 + ldb : b0; b2 = nj > 2 ? b1 + ldb : b0;
            }
            for (p = 0; p < K; p += 8) {
                int full = K - p >= 8;
                __m256i k = fer__mask256(K - p);
                __m256 va, vb0 = fer__ld256(b0 + p, full, k), vb1 = fer__ld256(b1 + p, full, k);
                __m256 vb2 = fer__ld256(b2 + p, full, k);
#define FER__ABT_ROW(ap, x0, x1, x2) \
                va = fer__ld256(ap + p, full, k); x0 = _mm256_fmadd_ps(va, vb0, x0); \
                x1 = _mm256_fmadd_ps(va, vb1, x1); x2 = _mm256_fmadd_ps(va, vb2, x2)
                FER__ABT_ROW(a0, c00, c01, c02);
                FER__ABT_ROW(a1, c10, c11, c12);
                FER__ABT_ROW(a2, c20, c21, c22);
                FER__ABT_ROW(a3, c30, c31, c32);
#undef FER__ABT_ROW
            }
            /* the 12 sums, row by row, four at a time */
            _mm_storeu_ps(t, fer__hsum4x256(c00, c01, c02, c10));
            _mm_storeu_ps(t + 4, fer__hsum4x256(c11, c12, c20, c21));
            _mm_storeu_ps(t + 8, fer__hsum4x256(c22, c30, c31, c32));
            for (i = 0; i < ni; i++)
                for (j = 0; j < nj; j++) {
                    float *cp = C + (size_t)(i0 + i) * ldc + j0 + j;
                    *cp = acc ? *cp + t[3 * i + j] : t[3 * i + j];
                }
        }
}
/* C (+)= A * B^T by dot products, AVX-512 or AVX2 */
static void fer__gemm_abt(fer_isa isa, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                          const int *boff, float *C, int ldc, int acc)
{
    (isa == FER_ISA_AVX512 ? fer__gemm_abt_avx512 : fer__gemm_abt_avx2)(M, N, K, A, lda, B, ldb, boff, C, ldc, acc);
}
#endif

typedef void (*fer__kernel_fn)(int kc, const float *pa, const float *pb, int ldb, float *C, int ldc,
                               int rows, int cols, int acc, const fer__epi *e);

/* fer_gemm with a store-time epilogue e (NULL: none) applied to the finished C. */
static void fer__gemm(fer_isa isa, int trans_a, int trans_b, int M, int N, int K,
                      const float *A, int lda, const float *B, int ldb,
                      float *C, int ldc, int accumulate, float *pack, const fer__epi *e)
{
    fer__kernel_fn kern = fer__kernel_scalar;
    int mr = FER__MR_SCALAR, nr = FER__NR_SCALAR;
    int jc, pc, ic, jr, ir, direct, inplace = 0, kcb = FER__KC;
    float *pb = pack, *pa = pack + (size_t)FER__KC * (FER__NC + FER__NRMAX);
    (void)isa;
#if defined(FER__X86)
    if (isa == FER_ISA_AVX512) { kern = fer__kernel_avx512; mr = FER__MR_AVX512; nr = FER__NR_AVX512; }
    else if (isa == FER_ISA_AVX2) { kern = fer__kernel_avx2; mr = FER__MR_AVX2; nr = FER__NR_AVX2; }
    inplace = (isa == FER_ISA_AVX512 || isa == FER_ISA_AVX2) && !trans_a;   /* A read in place, not packed */
#elif defined(FER__NEON)
    if (isa == FER_ISA_NEON) { kern = fer__kernel_neon; mr = FER__MR_NEON; nr = FER__NR_NEON; }
#endif
    if (M <= 0 || N <= 0) return;
#if defined(FER__X86)
    /* dot products where K is long (AVX2's 4x3 tiles want it longer: the dW of a
       32 -> 32 1x1 conv on 24x24, K = 576, ran 8% slower than packed) */
    if ((isa == FER_ISA_AVX512 || isa == FER_ISA_AVX2) && !trans_a && trans_b &&
        K >= (isa == FER_ISA_AVX2 ? 24 : 4) * (M > N ? M : N) && K >= 64) {
        fer__gemm_abt(isa, M, N, K, A, lda, B, ldb, NULL, C, ldc, accumulate);
        fer__epi_rows(e, M, N, C, ldc);
        return;
    }
#endif
    if (K <= 0) {
        if (!accumulate)
            for (ir = 0; ir < M; ir++) memset(C + (size_t)ir * ldc, 0, sizeof(float) * (size_t)N);
        fer__epi_rows(e, M, N, C, ldc);
        return;
    }
    /* A non-transposed B is read in place when packing would not pay: few k-steps
       per tile or few row blocks to reuse the packed strips. Only a partial last
       strip is packed (it needs zero padding). */
    direct = !trans_b && (K <= 128 || M <= 2 * mr);
    /* Few columns (at most three strips) and A read in place (a deep conv's small
       output plane at batch 1): K in blocks as long as the packed B panel allows
       (3200 for one strip), so each row of A is one long sequential read (in
       128-float pieces it hopped pages, latency-bound: 512->512 3x3 on 6x6 at
       batch 1 in resnet18, 3.6-3.9 -> 2.6-2.9 ms) and C is reloaded once per block. */
    if (inplace && !direct && N <= 3 * FER__NRMAX) {
        int np = (N + nr - 1) / nr * nr;
        kcb = FER__KC * (FER__NC + FER__NRMAX) / np;
        kcb = kcb < FER__KC ? FER__KC : kcb > K ? K : kcb;
    } else if (inplace && K > FER__KC && K <= FER__KC + FER__KC / 4 &&
               (size_t)K * (size_t)((N < FER__NC ? N : FER__NC) + nr) <= (size_t)FER__KC * (FER__NC + FER__NRMAX))
        kcb = K;   /* K a little over a block (Winograd dW over 144 tiles): one block, not a short second one
                      that reloads all of C */
    for (jc = 0; jc < N; jc += FER__NC) {
        int nc = N - jc < FER__NC ? N - jc : FER__NC, tail = nc % nr;
        for (pc = 0; pc < K; pc += kcb) {
            int kc = K - pc < kcb ? K - pc : kcb;
            int acc = accumulate || pc > 0, last = pc + kc >= K;
#if defined(FER__X86)
            if (!direct && trans_b && isa == FER_ISA_AVX512)
                fer__pack_bt_avx512(nc, kc, B + (size_t)jc * ldb + pc, ldb, pb);
            else
#endif
            if (!direct)
                fer__pack_b(nr, nc, kc, trans_b ? B + (size_t)jc * ldb + pc : B + (size_t)pc * ldb + jc,
                            ldb, trans_b, pb);
            else if (tail)
                fer__pack_b(nr, tail, kc, B + (size_t)pc * ldb + jc + nc - tail, ldb, 0, pb);
            for (ic = 0; ic < M; ic += FER__MC) {
                int mc = M - ic < FER__MC ? M - ic : FER__MC;
                if (!inplace)
                    fer__pack_a(mr, mc, kc, trans_a ? A + (size_t)pc * lda + ic : A + (size_t)ic * lda + pc,
                                lda, trans_a, pa);
                /* Tiles strip by strip, each strip's row tiles in turn (its B stays
                   in L1), or, with a short K and a C block beyond L1, row tile by
                   row tile along the rows: few FMAs per stored float make such a
                   GEMM store-bound, and tiles down all rows of a strip keep one
                   write stream per row of C in flight (96 for a 16->96 1x1 conv,
                   5.5 ms at batch 32 on 48x48, 3.6 ms row by row). */
                int nj = (nc + nr - 1) / nr, ni = (mc + mr - 1) / mr, t;
                int sweep = direct && kc <= 32 && (size_t)mc * (size_t)nc >= 16384;
                for (t = 0; t < nj * ni; t++) {
                    int cols, rows, bs;
                    const float *bp;
                    fer__epi te, *tp = NULL;
                    jr = (sweep ? t % nj : t / ni) * nr;
                    ir = (sweep ? t / nj : t % ni) * mr;
                    cols = nc - jr < nr ? nc - jr : nr;
                    rows = mc - ir < mr ? mc - ir : mr;
                    bp = direct ? (cols == nr ? B + (size_t)pc * ldb + jc + jr : pb) : pb + (size_t)jr * kc;
                    bs = direct && cols == nr ? ldb : nr;
                    if (e && last) {   /* the epilogue's rows of this tile */
                        te.scale = e->scale ? e->scale + ic + ir : NULL;
                        te.shift = e->shift ? e->shift + ic + ir : NULL;
                        te.act = e->act;
                        tp = &te;
                    }
#if defined(FER__X86)
                    if (inplace) {
                        (isa == FER_ISA_AVX512 ? fer__kernel_avx512_off : fer__kernel_avx2_off)(
                            kc, A + (size_t)(ic + ir) * lda + pc, lda, bp, bs, NULL,
                            C + (size_t)(ic + ir) * ldc + jc + jr, ldc, rows, cols, acc, tp);
                        continue;
                    }
#endif
                    kern(kc, pa + (size_t)ir * kc, bp, bs, C + (size_t)(ic + ir) * ldc + jc + jr, ldc,
                         rows, cols, acc, tp);
                }
            }
        }
    }
}

FERDEF void fer_gemm(fer_isa isa, int trans_a, int trans_b, int M, int N, int K,
                     const float *A, int lda, const float *B, int ldb,
                     float *C, int ldc, int accumulate, float *pack)
{
    fer__gemm(isa, trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, accumulate, pack, NULL);
}

#if defined(FER__X86)
/* C[M][N] = A[M][K] * B with B's row p at B + koff[p] (not packed: the rows are
   windows of a padded image, read in place), AVX-512 or AVX2. The implicit im2col
   of a stride-1 conv. K in blocks of kcb (FER__KC, or more where each row of A is
   better one long sequential read: see fer__gemm). */
static void fer__gemm_off(fer_isa isa, int M, int N, int K, const float *A, int lda, const float *B,
                          const int *koff, float *C, int ldc, int kcb)
{
    int pc, ic, jr, ir, a512 = isa == FER_ISA_AVX512;
    int mr = a512 ? FER__MR_AVX512 : FER__MR_AVX2, nr = a512 ? FER__NR_AVX512 : FER__NR_AVX2;
    for (pc = 0; pc < K; pc += kcb) {
        int kc = K - pc < kcb ? K - pc : kcb;
        for (ic = 0; ic < M; ic += FER__MC) {
            int mc = M - ic < FER__MC ? M - ic : FER__MC;
            for (jr = 0; jr < N; jr += nr) {
                int cols = N - jr < nr ? N - jr : nr;
                for (ir = 0; ir < mc; ir += mr)   /* A in place (no packing) */
                    (a512 ? fer__kernel_avx512_off : fer__kernel_avx2_off)(
                        kc, A + (size_t)(ic + ir) * lda + pc, lda, B + jr, 0, koff + pc,
                        C + (size_t)(ic + ir) * ldc + jr, ldc, mc - ir < mr ? mc - ir : mr, cols, pc > 0, NULL);
            }
        }
    }
}
#endif

/* --- 3.3 Kernels: vector helpers (depthwise conv, dense rows) ------------- */
#if defined(FER__X86)
FER__AVX512 static void fer__axpy_avx512(int n, float a, const float *x, float *y)
{
    __m512 va = _mm512_set1_ps(a);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i),
                                                         _mm512_maskz_loadu_ps(m, y + i)));
    }
}
FER__AVX512 static float fer__dot_avx512(int n, const float *x, const float *y)
{
    __m512 s = _mm512_setzero_ps(), s1 = s, s2 = s, s3 = s;   /* four independent chains */
    int i = 0;
    for (; i + 64 <= n; i += 64) {
        s = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), s);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(y + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 32), _mm512_loadu_ps(y + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 48), _mm512_loadu_ps(y + i + 48), s3);
    }
    s = _mm512_add_ps(_mm512_add_ps(s, s1), _mm512_add_ps(s2, s3));
    for (; i + 16 <= n; i += 16) s = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), s);
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        s = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i), s);
    }
    return fer__hsum512(s);
}
/* y[j] = W[j] . x for the nout rows of W (nin floats each): eight rows at a
   time, each chunk of x loaded once for the eight. A dense layer at batch 1
   streams W, mostly from DRAM in a network (its conv layers evict it), and eight
   streams keep more of it in flight than one: baseline_cnn's 9216 -> 256, 0.92
   -> 0.58 ms. */
FER__AVX512 static void fer__gemv_avx512(int nout, int nin, const float *w, const float *x, float *y)
{
    int j = 0, i;
    for (; j + 8 <= nout; j += 8) {
        const float *w0 = w + (size_t)j * nin, *w1 = w0 + nin, *w2 = w1 + nin, *w3 = w2 + nin;
        const float *w4 = w3 + nin, *w5 = w4 + nin, *w6 = w5 + nin, *w7 = w6 + nin;
        __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
        for (i = 0; i < nin; i += 16) {
            __mmask16 m = (__mmask16)(nin - i >= 16 ? 0xFFFF : (1u << (nin - i)) - 1u);
            __m512 v = _mm512_maskz_loadu_ps(m, x + i);
            s0 = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m, w0 + i), s0);
            s1 = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m, w1 + i), s1);
            s2 = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m, w2 + i), s2);
            s3 = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m, w3 + i), s3);
            s4 = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m, w4 + i), s4);
            s5 = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m, w5 + i), s5);
            s6 = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m, w6 + i), s6);
            s7 = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m, w7 + i), s7);
        }
        y[j] = fer__hsum512(s0); y[j + 1] = fer__hsum512(s1); y[j + 2] = fer__hsum512(s2); y[j + 3] = fer__hsum512(s3);
        y[j + 4] = fer__hsum512(s4); y[j + 5] = fer__hsum512(s5); y[j + 6] = fer__hsum512(s6); y[j + 7] = fer__hsum512(s7);
    }
    for (; j < nout; j++) y[j] = fer__dot_avx512(nin, x, w + (size_t)j * nin);
}
/* y = W x for W [nout][nin], AVX2: four rows at a time, two sums each (one
   chained FMA per row would be latency-bound). */
FER__AVX2 static void fer__gemv_avx2(int nout, int nin, const float *w, const float *x, float *y)
{
    int j = 0, i, r;
    for (; j < nout; j += 4) {
        int nr = nout - j < 4 ? nout - j : 4;
        const float *w0 = w + (size_t)j * nin, *w1 = nr > 1 ? w0 + nin : w0;
        const float *w2 = nr > 2 ? w0 + 2 * (size_t)nin : w0, *w3 = nr > 3 ? w0 + 3 * (size_t)nin : w0;
        __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0, t0 = s0, t1 = s0, t2 = s0, t3 = s0;
        float o[4];
        for (i = 0; i + 16 <= nin; i += 16) {
            __m256 v = _mm256_loadu_ps(x + i), u = _mm256_loadu_ps(x + i + 8);
            s0 = _mm256_fmadd_ps(v, _mm256_loadu_ps(w0 + i), s0); t0 = _mm256_fmadd_ps(u, _mm256_loadu_ps(w0 + i + 8), t0);
            s1 = _mm256_fmadd_ps(v, _mm256_loadu_ps(w1 + i), s1); t1 = _mm256_fmadd_ps(u, _mm256_loadu_ps(w1 + i + 8), t1);
            s2 = _mm256_fmadd_ps(v, _mm256_loadu_ps(w2 + i), s2); t2 = _mm256_fmadd_ps(u, _mm256_loadu_ps(w2 + i + 8), t2);
            s3 = _mm256_fmadd_ps(v, _mm256_loadu_ps(w3 + i), s3); t3 = _mm256_fmadd_ps(u, _mm256_loadu_ps(w3 + i + 8), t3);
        }
        for (; i < nin; i += 8) {
            __m256i m = fer__mask256(nin - i);
            __m256 v = _mm256_maskload_ps(x + i, m);
            s0 = _mm256_fmadd_ps(v, _mm256_maskload_ps(w0 + i, m), s0);
            s1 = _mm256_fmadd_ps(v, _mm256_maskload_ps(w1 + i, m), s1);
            s2 = _mm256_fmadd_ps(v, _mm256_maskload_ps(w2 + i, m), s2);
            s3 = _mm256_fmadd_ps(v, _mm256_maskload_ps(w3 + i, m), s3);
        }
        o[0] = fer__hsum256(_mm256_add_ps(s0, t0)); o[1] = fer__hsum256(_mm256_add_ps(s1, t1));
        o[2] = fer__hsum256(_mm256_add_ps(s2, t2)); o[3] = fer__hsum256(_mm256_add_ps(s3, t3));
        for (r = 0; r < nr; r++) y[j + r] = o[r];
    }
}
FER__AVX2 static void fer__axpy_avx2(int n, float a, const float *x, float *y)
{
    __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}
FER__AVX2 static float fer__dot_avx2(int n, const float *x, const float *y)
{
    __m256 s = _mm256_setzero_ps();
    __m128 h;
    float r;
    int i = 0;
    for (; i + 8 <= n; i += 8) s = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s);
    h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
    r = _mm_cvtss_f32(h);
    for (; i < n; i++) r += x[i] * y[i];
    return r;
}
#endif
#if defined(FER__NEON)
static void fer__axpy_neon(int n, float a, const float *x, float *y)
{
    int i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(x + i), a));
    for (; i < n; i++) y[i] += a * x[i];
}
static float fer__dot_neon(int n, const float *x, const float *y)
{
    float32x4_t s = vdupq_n_f32(0.0f);
    float r;
    int i = 0;
    for (; i + 4 <= n; i += 4) s = vfmaq_f32(s, vld1q_f32(x + i), vld1q_f32(y + i));
    r = vaddvq_f32(s);
    for (; i < n; i++) r += x[i] * y[i];
    return r;
}
#endif

FERDEF void fer_axpy(fer_isa isa, int n, float a, const float *x, float *y)
{
    int i;
#if defined(FER__X86)
    if (isa == FER_ISA_AVX512) { fer__axpy_avx512(n, a, x, y); return; }
    if (isa == FER_ISA_AVX2) { fer__axpy_avx2(n, a, x, y); return; }
#elif defined(FER__NEON)
    if (isa == FER_ISA_NEON) { fer__axpy_neon(n, a, x, y); return; }
#endif
    (void)isa;
    for (i = 0; i < n; i++) y[i] += a * x[i];
}

FERDEF float fer_dot(fer_isa isa, int n, const float *x, const float *y)
{
    float s = 0.0f;
    int i;
#if defined(FER__X86)
    if (isa == FER_ISA_AVX512) return fer__dot_avx512(n, x, y);
    if (isa == FER_ISA_AVX2) return fer__dot_avx2(n, x, y);
#elif defined(FER__NEON)
    if (isa == FER_ISA_NEON) return fer__dot_neon(n, x, y);
#endif
    (void)isa;
    for (i = 0; i < n; i++) s += x[i] * y[i];
    return s;
}

/* --- 3.4 Layers -------------------------------------------------------------
   Forward and backward of each layer side by side. Conv goes through im2col +
   GEMM (a 1x1 stride-1 conv reads its input directly; on AVX-512 a stride-1 conv
   reads windows of the zero-padded input through an offset table instead of an
   im2col buffer, a 3x3 one with many channels runs as Winograd F(2x2, 3x3), and
   the input gradient is the forward conv of dY with flipped weights); depthwise
   conv has its own kernels over zero-padded planes. */

FERDEF fer_result fer_conv_geom_init(fer_conv_geom *g, int n, int cin, int h, int w,
                                     int cout, int kh, int kw, int sh, int sw,
                                     int ph, int pw, int groups)
{
    memset(g, 0, sizeof(*g));
    if (n < 1 || cin < 1 || h < 1 || w < 1 || cout < 1 || kh < 1 || kw < 1 || sh < 1 || sw < 1 ||
        ph < 0 || pw < 0 || groups < 1 || cin % groups || cout % groups ||
        cin > FER_MAX_CHANNELS || cout > FER_MAX_CHANNELS || h > FER_MAX_DIM || w > FER_MAX_DIM ||
        kh > FER_MAX_DIM || kw > FER_MAX_DIM || sh > FER_MAX_DIM || sw > FER_MAX_DIM ||
        ph >= kh || pw >= kw || h + 2 * ph < kh || w + 2 * pw < kw)
        return FER_ERR_SHAPE;
    g->n = n; g->cin = cin; g->h = h; g->w = w; g->cout = cout;
    g->kh = kh; g->kw = kw; g->sh = sh; g->sw = sw; g->ph = ph; g->pw = pw; g->groups = groups;
    g->oh = (h + 2 * ph - kh) / sh + 1;
    g->ow = (w + 2 * pw - kw) / sw + 1;
    return FER_OK;
}

static int fer__conv_is_dw(const fer_conv_geom *g)
{
    return g->groups > 1 && g->groups == g->cin && g->cout == g->cin;
}
#if defined(FER__X86)
/* the depthwise shapes with AVX-512 kernels of their own: 3x3 "same" at stride 1
   (fer__dw3_same_any: the forward, by rows or over the flattened planes;
   fer__dw3_same: the backward, whose weight gradient runs over the flattened
   planes, where rows are narrower than a vector or planes many enough to repay
   the masks: for a few wide planes a padded copy each was as fast), and 3x3 at
   stride 2 with padding 0 or 1 */
static int fer__dw3_same_any(const fer_conv_geom *g)
{
    return fer__conv_is_dw(g) && g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->ph == 1 && g->pw == 1;
}
static int fer__dw3_same(const fer_conv_geom *g)
{
    return fer__dw3_same_any(g) && (g->w < 16 || g->n * g->cin >= 64);
}
/* one input channel, 3x3 "same", stride 1: fer__conv3_c1_avx512 */
static int fer__conv3_c1(const fer_conv_geom *g)
{
    return g->cin == 1 && g->groups == 1 && g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 &&
           g->ph == 1 && g->pw == 1;
}
static int fer__dw3_s2(const fer_conv_geom *g)
{
    return fer__conv_is_dw(g) && g->kh == 3 && g->kw == 3 && g->sh == 2 && g->sw == 2 && g->ph <= 1 && g->pw <= 1;
}
#endif
static int fer__conv_is_pointwise(const fer_conv_geom *g)
{
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0;
}

/* The implicit im2col's layout: per input channel, chan floats of zero-padded
   input, and wide output rows of wq columns (the last few garbage). Stride 1: the
   padded plane, hp x wp (wq = wp). Stride 2: the padded plane's four phases (even
   and odd rows by even and odd columns, each hq x wq, hq = ceil(hp/2), wq =
   ceil(wp/2)), so tap (ky, kx) of output (oy, ox) is float (oy + ky/2, ox + kx/2)
   of phase (ky%2, kx%2): one offset per tap, consecutive outputs read
   consecutive floats, as at stride 1. A "same" stride-1 conv (kw = 2 pw + 1)
   shares each row's right padding with the next row's left: rows of pw zeros and
   the w floats, wq = w + pw (a tap past the row's end reads the next row's zeros),
   then pw zeros; fewer garbage columns (a 12x12 plane: 156 wide, not 168). */
static int fer__implicit_shared(const fer_conv_geom *g) { return g->sh == 1 && g->kw == 2 * g->pw + 1; }
static void fer__implicit_dims(const fer_conv_geom *g, int *wq, size_t *chan)
{
    int hp = g->h + 2 * g->ph, wp = g->w + 2 * g->pw;
    if (fer__implicit_shared(g)) { *wq = g->w + g->pw; *chan = (size_t)hp * *wq + (size_t)g->pw; }
    else if (g->sh == 1) { *wq = wp; *chan = (size_t)hp * wp; }
    else { *wq = (wp + 1) / 2; *chan = 4 * (size_t)((hp + 1) / 2) * (size_t)*wq; }
}
#if defined(FER__X86)
/* Stride-1 and stride-2 convs with rows long enough that the padded columns waste
   little run as an implicit im2col (see fer__conv_forward); so do a single
   sample's small planes (batch 1: the im2col would cost more than the wide rows'
   waste; batches of small planes run several samples per GEMM instead). */
static int fer__conv_implicit(fer_isa isa, const fer_conv_geom *g)
{
    int wq;
    size_t chan;
    if ((isa != FER_ISA_AVX512 && isa != FER_ISA_AVX2) || g->groups != 1 || (g->sh != 1 && g->sh != 2) || g->sw != g->sh ||
        g->kh * g->kw < 2 || g->kw > 32 || !(g->ow >= 12 || (g->n == 1 && g->ow >= 4)))
        return 0;
    fer__implicit_dims(g, &wq, &chan);
    return (size_t)g->cin * chan < ((size_t)1 << 30);
}
#endif

/* Scratch of the implicit im2col (padded input, wide output, offsets), or 0. */
static size_t fer__implicit_floats(const fer_conv_geom *g)
{
    int wq;
    size_t chan;
    if (g->groups != 1 || (g->sh != 1 && g->sh != 2) || g->sw != g->sh || g->kh * g->kw < 2) return 0;
    fer__implicit_dims(g, &wq, &chan);
    return fer__add(fer__add(fer__mul((size_t)g->cin, chan), 64),
                    fer__add(fer__mul((size_t)g->cout, fer__mul((size_t)g->oh, (size_t)wq)),
                             fer__mul((size_t)g->cin, (size_t)g->kh * g->kw)));
}

/* Winograd F(2x2, 3x3) for 3x3 stride-1 convs with many channels (AVX-512, AVX2).
   Each 2x2 output tile is A^T [(G g G^T) .* (B^T d B)] A over its 4x4 input
   patch d, 16 products per (cin, cout) pair where the direct conv does 36:
     B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
     A^T = [1 1 1 0; 0 1 -1 -1].
   Per sample, blocks of whole tile rows (Tb tiles of th x tw) are transformed
   straight from the input (zero padding and the patches' even and odd columns
   made in registers) into V[16][cin][Tb], multiplied by the transformed weights
   U[16][cout][cin] in 16 GEMMs into M[16][cout][Tb] (V and M stay in L2), and
   transformed back into the output through the epilogue (or added to it). A
   plane of fewer than 96 tiles (12x12 and below) shares a block with the next
   samples' planes, so the GEMMs keep full strips (a 6x6 plane alone would be 9
   columns). With fewer channels the transforms cost more than the products they
   save. */
static int fer__wino_shape(const fer_conv_geom *g)
{
    return g->groups == 1 && g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->cin >= 32 &&
           g->cout >= 64 && g->oh >= 4 && g->ow >= 4;
}
/* The stride between the 16 matrices of a [16][rows][cols] Winograd array: 16
   floats more than a matrix, so the 16 rows that a tile's values go to do not
   all fall in one L1 set (matrix sizes are often multiples of 4 KB). */
#define FER__WINO_ES(rows, cols) ((size_t)(rows) * (size_t)(cols) + 16)
/* Tiles per row and column, tile rows per block, samples per block (rb = th when
   more than one) and the tiles a block holds, tb: the blocking that wastes least
   of the 48-column GEMM strips its blocks fill, at most 144 tiles a block; on a
   tie the largest block up to 96 tiles (its V and M stay in L2 at 64 channels),
   else the smallest. A 48x48 output runs blocks of 4 tile rows (96 tiles), 44x44
   of 4 (88), 22x22 a sample a block (121), 12x12 four samples (144), 6x6
   sixteen. F(4x4, 3x3) (m = 4) takes at most 48 tiles a block, its V and M being
   36 rows a channel: 48x48 runs blocks of 4 tile rows (48 tiles), 44x44 of 4
   (44). None of it depends on the batch, so scratch sized for one sample serves
   all. */
static int fer__wino_strips(int tiles) { return (tiles + 47) / 48; }
static int fer__wino_better(long tiles, long strips, int tb, long best_tiles, long best_strips, int best_tb,
                            int pref)
{
    if (tiles * best_strips != best_tiles * strips) return tiles * best_strips > best_tiles * strips;
    if ((tb <= pref) != (best_tb <= pref)) return tb <= pref;
    return tb <= pref ? tb > best_tb : tb < best_tb;
}

static void fer__wino_dims_m(const fer_conv_geom *g, int m, int *th, int *tw, int *rb, int *sb, int *tb)
{
    int t, k, r, cap = m == 4 ? 48 : 144, pref = m == 4 ? 48 : 96;
    long bt = 0, bs = 1;
    *th = (g->oh + m - 1) / m;
    *tw = (g->ow + m - 1) / m;
    t = *th * *tw;
    *sb = 1;
    for (r = 1; r <= *th && (r == 1 || r * *tw <= cap); r++) {   /* blocks of r tile rows of a sample (r = 1 first) */
        long strips = (long)(*th / r) * fer__wino_strips(r * *tw) + (*th % r ? fer__wino_strips(*th % r * *tw) : 0);
        if (r == 1 || fer__wino_better(t, strips, r * *tw, bt, bs, *tb, pref)) { bt = t; bs = strips; *rb = r; *tb = r * *tw; }
    }
    for (k = 2; k * t <= cap; k++)   /* blocks of k samples' planes */
        if (fer__wino_better((long)k * t, fer__wino_strips(k * t), k * t, bt, bs, *tb, pref)) {
            bt = (long)k * t; bs = fer__wino_strips(k * t); *rb = *th; *sb = k; *tb = k * t;
        }
}
static void fer__wino_dims(const fer_conv_geom *g, int *th, int *tw, int *rb, int *sb, int *tb)
{
    fer__wino_dims_m(g, 2, th, tw, rb, sb, tb);
}
#if defined(FER__X86)
/* Whether n samples are enough tiles for one weight transform: 128 tiles, or 64
   when the transform (16 cin cout floats) stays within 1 MB; fewer run directly
   (the transform, memory-bound, would cost more than it saves). 128->128 on 22x22
   at batch 1 (121 tiles): 1.38 ms direct, 0.91 as Winograd; 256->256 on 16x16
   (64 tiles, 4 MB): even. */
static int fer__wino_enough(const fer_conv_geom *g, int n)
{
    size_t tiles = (size_t)((g->oh + 1) / 2) * ((g->ow + 1) / 2) * (size_t)n;
    return fer__wino_shape(g) && (tiles >= 128 || (tiles >= 64 && (size_t)g->cin * g->cout <= 128 * 128));
}
/* Whether g runs as Winograd when n samples share one weight transform. */
static int fer__wino_use(fer_isa isa, const fer_conv_geom *g, int n)
{
    return (isa == FER_ISA_AVX512 || isa == FER_ISA_AVX2) && fer__wino_enough(g, n);
}
/* Whether g runs as Winograd at n samples with its weights' transform made
   beforehand (fer_workspace_freeze): with no transform per forward, from 32
   output tiles, a 12x12 plane at batch 1 (on a Zen 5, AVX-512: 256->256 1.00 ->
   0.59 ms, 128->256 0.53 -> 0.36, 256->256 on 11x11 0.81 -> 0.65; AVX2 1.82 ->
   0.98 ms for 256->256), and from 64 when the transform is 4M floats or more
   (512->512 on 6x6: at batch 1 1.10 -> 1.78 ms as Winograd, its 16 MB streamed
   from memory each time; at batch 8 8.1 -> 5.7). */
static int fer__wino_frozen_use(fer_isa isa, const fer_conv_geom *g, int n)
{
    size_t tiles = (size_t)((g->oh + 1) / 2) * ((g->ow + 1) / 2) * (size_t)n;
    return (isa == FER_ISA_AVX512 || isa == FER_ISA_AVX2) && fer__wino_shape(g) &&
           (tiles >= 64 || (tiles >= 32 && (size_t)g->cin * g->cout < 512 * 512));
}
#endif
/* Whether a Winograd forward of g may run as F(4x4, 3x3) (its scratch): planes
   of 20x20 and more. On AVX-512 from 32x32, where it takes 0.72-0.78 of F(2x2,
   3x3)'s time (64->64 on 44x44 and 48x48, batch 1 and 8); on 22x22 and 24x24 it
   is even or up to 1.13x slower there, on 12x12 1.04-1.25x slower (its U, 36 cin
   cout floats, is read once per block of 48 tiles). On AVX2 (a Zen 3, best of 4
   alternating runs) it takes 0.74-0.85 of the time from 44x44 to 48x48 and
   0.82-0.84 on 22x22 and 24x24 (128->128 at batch 1, 64->128 at batch 4), but on
   12x12 0.87-1.20. */
static int fer__wino4_shape(const fer_conv_geom *g)
{
    return fer__wino_shape(g) && g->oh >= 20 && g->ow >= 20;
}
#if defined(FER__X86)
static int fer__wino4(fer_isa isa, const fer_conv_geom *g)
{
    return fer__wino4_shape(g) && (isa == FER_ISA_AVX2 || (isa == FER_ISA_AVX512 && g->oh >= 32 && g->ow >= 32));
}
#endif
/* F(4x4, 3x3) channels-last (fer__wino4c_forward, AVX-512): a small plane at a
   small batch, whose 36 to 144 tiles would leave most of the tile-vectorised
   kernels' lanes and GEMM strips empty (36 tiles fill 3/4 of a 48-column strip,
   9 a fifth). Its transforms run over 16 channels a vector and its GEMMs put the
   tiles in rows (9 a kernel) and the output channels in the vectors. At most
   FER__W4C_TILES tiles a group of samples (V and M then stay in L2), planes of
   10x10 and more (a 9x9 one would waste 44% of its 12x12 tiles). */
#define FER__W4C_TILES 36
static int fer__wino4c_tiles(const fer_conv_geom *g) { return ((g->oh + 3) / 4) * ((g->ow + 3) / 4); }
static int fer__wino4c_shape(const fer_conv_geom *g)
{
    return fer__wino_shape(g) && g->oh >= 10 && g->ow >= 10 && fer__wino4c_tiles(g) <= FER__W4C_TILES;
}
/* Scratch: the zero-padded channels-last input of one sample, V and M of a group. */
static size_t fer__wino4c_floats(const fer_conv_geom *g)
{
    size_t t, hp = (size_t)4 * ((g->oh + 3) / 4) + 2, wp = (size_t)4 * ((g->ow + 3) / 4) + 2;
    if (!fer__wino4c_shape(g)) return 0;
    t = (size_t)(FER__W4C_TILES / fer__wino4c_tiles(g) * fer__wino4c_tiles(g));
    return fer__add(fer__mul(fer__mul(hp, wp), (size_t)g->cin),
                    fer__mul(36 * t, fer__add((size_t)g->cin, (size_t)g->cout)));
}
/* A conv of at most FER__ROWS9_MAX output positions a group of samples, or at
   stride 2 of any number at batch 1 (fer__rows9_forward, AVX-512): any kernel of
   2+ taps with K = cin kh kw of 256 and more (below, its weights are few and the
   implicit im2col does as well). resnet18's stride-2 3x3 convs alone: 64 -> 128
   on 22x22 outputs 425-429 -> 408-418 us, 128 -> 256 on 11x11 437-444 -> 397-404
   (the implicit im2col's 48-column strips over phases 23 columns wide). */
#define FER__ROWS9_MAX 36
#define FER__ROWS9_KC 256
static int fer__rows9_shape(const fer_conv_geom *g)
{
    return g->groups == 1 && (g->sh == 1 || g->sh == 2) && g->sw == g->sh && g->kh * g->kw >= 2 && g->kw <= 32 &&
           (long)g->cin * g->kh * g->kw >= 256 && ((long)g->oh * g->ow <= FER__ROWS9_MAX || g->sh == 2);
}
/* Scratch: a group's padded samples, the taps' and rows' offsets, the [row][cout] products. */
static size_t fer__rows9_floats(const fer_conv_geom *g)
{
    int wq;
    size_t chan, p = (size_t)g->oh * g->ow, ks = p <= FER__ROWS9_MAX ? FER__ROWS9_MAX / p : 1;
    if (!fer__rows9_shape(g)) return 0;
    fer__implicit_dims(g, &wq, &chan);
    return fer__add(fer__mul(fer__mul(ks, (size_t)g->cin), chan),
                    fer__add((size_t)64 + ks * p + (size_t)g->cin * g->kh * g->kw, fer__mul(ks * p, (size_t)g->cout)));
}
#if defined(FER__X86)
/* Whether a frozen inference workspace of batches up to nb runs g so (its largest batch one group). */
static int fer__rows9_use(fer_isa isa, const fer_conv_geom *g, int nb)
{
    long p = (long)g->oh * g->ow;
    return isa == FER_ISA_AVX512 && fer__rows9_shape(g) && (nb * p <= FER__ROWS9_MAX || (nb == 1 && p > FER__ROWS9_MAX));
}
/* Its weights, the cout x K matrix in strips (fer__strips48_row). */
static size_t fer__rows9_wfloats(const fer_conv_geom *g)
{
    return fer__mul((size_t)g->cin * g->kh * g->kw, (size_t)(g->cout + 15) / 16 * 16);
}
/* Its weights' transform (fer__wino4c_weights), cout rounded up to 16. */
static size_t fer__wino4c_ufloats(const fer_conv_geom *g)
{
    return fer__mul(36, fer__mul((size_t)g->cin, (size_t)(g->cout + 15) / 16 * 16));
}
/* Whether a frozen inference workspace of batches up to nb runs g this way: when
   its largest batch is one group (a latency workspace; larger batches share the
   weights' transform over more tiles in the tile-vectorised path). */
static int fer__wino4c_use(fer_isa isa, const fer_conv_geom *g, int nb)
{
    return isa == FER_ISA_AVX512 && fer__wino4c_shape(g) && (long)nb * fer__wino4c_tiles(g) <= FER__W4C_TILES;
}
#endif
/* The AVX2 input transforms' zero-padded rows (fer__wino_in_avx2, fer__wino4_in_avx2). */
static size_t fer__wino_rows(const fer_conv_geom *g)
{
    /* F(2x2, 3x3): 4 rows of 2 tw + 32 floats; F(4x4, 3x3): 6 of 4 tw + 40 */
    return fer__mul(6, fer__add(fer__mul(4, (size_t)((g->ow + 3) / 4)), 40));
}
/* Scratch of F(m x m, 3x3): U, V, M, the B row offsets and the AVX2 rows. */
static size_t fer__wino_floats_m(const fer_conv_geom *g, int m)
{
    int th, tw, rb, sb, tb;
    size_t u, vm, ne = (size_t)(m + 2) * (m + 2);
    fer__wino_dims_m(g, m, &th, &tw, &rb, &sb, &tb);
    u = fer__mul(ne, fer__add(fer__mul((size_t)g->cout, (size_t)g->cin), 16));
    vm = fer__mul(ne, fer__add(fer__mul((size_t)(g->cin + g->cout), (size_t)tb), 32));
    return fer__add(fer__add(u, vm), fer__add((size_t)g->cin, fer__wino_rows(g)));
}
/* Scratch of the Winograd forward, F(2x2, 3x3) or (where it may run) F(4x4, 3x3). */
static size_t fer__wino_floats(const fer_conv_geom *g)
{
    size_t f2, f4;
    if (!fer__wino_shape(g)) return 0;
    f2 = fer__wino_floats_m(g, 2);
    f4 = fer__wino4_shape(g) ? fer__wino_floats_m(g, 4) : 0;
    return f2 > f4 ? f2 : f4;
}
/* Scratch of one sample's weight gradient: V and dM. */
static size_t fer__wino_dw_floats(const fer_conv_geom *g)
{
    int th, tw, rb, sb, tb;
    if (!fer__wino_floats(g)) return 0;
    fer__wino_dims(g, &th, &tw, &rb, &sb, &tb);
    return fer__add(fer__mul(16, fer__add(fer__mul((size_t)(g->cin + g->cout), (size_t)tb), 32)), fer__wino_rows(g));
}
/* Convs whose output plane is smaller than a few GEMM strips run this many
   samples per GEMM, their im2col columns side by side (the weights are then read
   once for all of them, and the strips are full); 1: one sample at a time. */
#define FER__BATCH_PLANE 48    /* output planes smaller than this batch samples */
#define FER__BATCH_COLS 192    /* to about this many GEMM columns */
static int fer__conv_batch(const fer_conv_geom *g)
{
    int ohw = g->oh * g->ow;
    if (g->groups != 1 || ohw >= FER__BATCH_PLANE) return 1;
    return (FER__BATCH_COLS + ohw - 1) / ohw;
}
/* Scratch of the batched conv: the columns, the GEMM's output, the pack area. */
static size_t fer__conv_batch_floats(const fer_conv_geom *g)
{
    size_t nb = (size_t)fer__conv_batch(g), ohw = (size_t)g->oh * g->ow;
    if (nb < 2) return 0;
    return fer__add(fer__mul(fer__mul(nb, ohw), fer__add(fer__mul((size_t)g->cin, (size_t)g->kh * g->kw),
                                                        (size_t)g->cout)), fer_gemm_pack_floats());
}
/* Floats of fer__dw_s2_dx3_avx512's buffer (a 3x3 stride-2 depthwise input gradient). */
static size_t fer__dw_s2_dx3_floats(const fer_conv_geom *g)
{
    return fer__mul((size_t)g->oh + 2, (size_t)g->ow + 34);
}
/* wt[ci][co][t] = w[co][ci][kk-1-t]: the weights of the conv whose forward pass
   is a stride-1 conv's input gradient (kernels flipped, channels swapped). */
static void fer__flip_weights(const float *w, int cout, int cin, int kk, float *wt)
{
    int ci, co, t;
    for (ci = 0; ci < cin; ci++)
        for (co = 0; co < cout; co++)
            for (t = 0; t < kk; t++) wt[((size_t)ci * cout + co) * kk + t] = w[((size_t)co * cin + ci) * kk + kk - 1 - t];
}
/* Scratch of its backward (fer__conv_backward_batched). */
static size_t fer__conv_batch_bwd_floats(const fer_conv_geom *g)
{
    size_t nb = (size_t)fer__conv_batch(g), ohw = (size_t)g->oh * g->ow, hw = (size_t)g->h * g->w;
    size_t K = (size_t)g->cin * g->kh * g->kw, kt = (size_t)g->cout * g->kh * g->kw;
    if (nb < 2) return 0;
    return fer__add(fer__mul(nb, fer__add(fer__add(K * ohw > kt * hw ? K * ohw : kt * hw, (size_t)g->cout * ohw),
                                          (size_t)g->cin * hw)),
                    fer__add(fer__mul(kt, (size_t)g->cin), fer_gemm_pack_floats()));
}
FERDEF size_t fer_conv_scratch_floats(const fer_conv_geom *g)
{
    size_t col, fwd, bwd = 0, pack = fer_gemm_pack_floats();
    if (fer__conv_is_dw(g)) {   /* padded input plane + the larger of: its even and odd
                                   columns and theirs of the gradient (stride 2), the
                                   padded gradient plane */
        size_t p = fer__mul((size_t)(g->h + 2 * g->ph), (size_t)(g->w + 2 * g->pw));
        size_t q = fer__mul((size_t)(g->oh + 2 * (g->kh - 1)), (size_t)(g->ow + 2 * (g->kw - 1)));
        size_t eo = fer__mul(2, fer__add(p, (size_t)(g->h + 2 * g->ph)));
        if (fer__dw_s2_dx3_floats(g) > eo) eo = fer__dw_s2_dx3_floats(g);
        return fer__add(p, eo > q ? eo : q);
    }
    col = fer__conv_is_pointwise(g) ? 0 :
          fer__mul(fer__mul((size_t)(g->cin / g->groups), (size_t)g->kh * g->kw),
                   (size_t)g->oh * g->ow);
    fwd = fer__add(col > fer__implicit_floats(g) ? col : fer__implicit_floats(g), pack);
    if (fer__wino_floats(g) > fwd) fwd = fer__wino_floats(g);
    if (fer__wino4c_floats(g) > fwd) fwd = fer__wino4c_floats(g);
    if (fer__rows9_floats(g) > fwd) fwd = fer__rows9_floats(g);
    if (fer__conv_batch_floats(g) > fwd) fwd = fer__conv_batch_floats(g);
    if (!fer__conv_is_pointwise(g) && g->sh == 1 && g->sw == 1) {
        /* backward: dY's im2col and the flipped, transposed weights of one group,
           then the input gradient's own conv (implicit or through the GEMM) */
        size_t kt = fer__mul((size_t)(g->cout / g->groups), (size_t)g->kh * g->kw);
        size_t colt = fer__mul(kt, (size_t)g->h * g->w), gtf;
        fer_conv_geom gt;
        fer_conv_geom_init(&gt, 1, g->cout / g->groups, g->oh, g->ow, g->cin / g->groups, g->kh, g->kw,
                           1, 1, g->kh - 1 - g->ph, g->kw - 1 - g->pw, 1);
        gtf = fer__add(pack, fer__implicit_floats(&gt) > fer__wino_floats(&gt) ? fer__implicit_floats(&gt) :
                             fer__wino_floats(&gt));   /* from the pack area on, the input gradient's */
        if (fer__implicit_floats(g) > colt) colt = fer__implicit_floats(g);   /* implicit dW */
        if (fer__wino_dw_floats(g) > colt) colt = fer__wino_dw_floats(g);     /* Winograd dW, then dU */
        bwd = fer__add(fer__add(col > colt ? col : colt, fer__mul(kt, (size_t)(g->cin / g->groups))),
                       fer__add(gtf, fer__wino_dw_floats(g) ? 16 * FER__WINO_ES(g->cout, g->cin) : 0));
    }
    if (fer__conv_batch_bwd_floats(g) > bwd) bwd = fer__conv_batch_bwd_floats(g);
    return fwd > bwd ? fwd : bwd;
}

/* For tap kx, the output columns [*lo, *hi) read inside the input row. */
static void fer__valid_cols(const fer_conv_geom *g, int kx, int *lo, int *hi)
{
    int a = g->pw - kx, b = g->w + g->pw - kx;       /* need a <= ox*sw < b */
    *lo = a <= 0 ? 0 : (a + g->sw - 1) / g->sw;
    *hi = b <= 0 ? 0 : (b + g->sw - 1) / g->sw;
    if (*hi > g->ow) *hi = g->ow;
    if (*lo > *hi) *lo = *hi;
}

/* Small output planes (kh * kw * oh * ow <= FER__TAPS_MAX): for tap t and output
   p, the input offset it reads, or -1 for padding. im2col and col2im then move
   single floats by table instead of calling a copy per row of a few floats. */
#define FER__TAPS_MAX 1024
static int fer__taps(const fer_conv_geom *g, int *tab)
{
    int ky, kx, oy, ox, i = 0;
    if (g->kh * g->kw * g->oh * g->ow > FER__TAPS_MAX) return 0;
    for (ky = 0; ky < g->kh; ky++)
        for (kx = 0; kx < g->kw; kx++)
            for (oy = 0; oy < g->oh; oy++)
                for (ox = 0; ox < g->ow; ox++) {
                    int iy = oy * g->sh - g->ph + ky, ix = ox * g->sw - g->pw + kx;
                    tab[i++] = iy < 0 || iy >= g->h || ix < 0 || ix >= g->w ? -1 : iy * g->w + ix;
                }
    return 1;
}

#if defined(FER__X86)
/* fer__im2col of planes of at most 32 floats into at most 16 columns, with at
   most 25 taps (AVX-512): a plane is two masked loads, each tap's row one permute
   of them (zero where the tap falls in the padding) and one masked store. The
   128->7 3x3 conv on 3x3 planes that ends mini_xception took 8 us a sample in
   the scalar table loop. */
#define FER__IM2COL_SMALL(g) ((g)->h * (g)->w <= 32 && (g)->oh * (g)->ow <= 16 && (g)->kh * (g)->kw <= 25)
/* Lane l < n: tab[l * stride] (set in *m where it is >= 0, a tap inside the plane). */
FER__AVX512 static __m512i fer__tab_vec(const int *tab, int n, int stride, __mmask16 *m)
{
    int li[16], l;
    unsigned k = 0;
    for (l = 0; l < 16; l++) {
        li[l] = l < n && tab[l * stride] >= 0 ? tab[l * stride] : 0;
        if (l < n && tab[l * stride] >= 0) k |= 1u << l;
    }
    *m = (__mmask16)k;
    return _mm512_loadu_si512(li);
}
/* A plane of at most 32 floats as two vectors (zero past its end). */
FER__AVX512 static void fer__plane32_avx512(const float *x, int hw, __m512 *v)
{
    v[0] = _mm512_maskz_loadu_ps((__mmask16)(hw >= 16 ? 0xFFFF : (1u << hw) - 1u), x);
    v[1] = _mm512_maskz_loadu_ps((__mmask16)(hw <= 16 ? 0 : (1u << (hw - 16)) - 1u), x + 16);
}
FER__AVX512 static void fer__im2col_small_avx512(const fer_conv_geom *g, int cg, const float *in, float *col,
                                                 size_t ld, const int *tab)
{
    int kk = g->kh * g->kw, ohw = g->oh * g->ow, hw = g->h * g->w, t, c;
    __mmask16 vm[25], om = (__mmask16)((1u << ohw) - 1u);
    __m512i idx[25];
    for (t = 0; t < kk; t++) idx[t] = fer__tab_vec(tab + t * ohw, ohw, 1, &vm[t]);   /* lane p: tap t of position p */
    for (c = 0; c < cg; c++) {
        __m512 pv[2], lo, hi;
        fer__plane32_avx512(in + (size_t)c * hw, hw, pv);
        lo = pv[0]; hi = pv[1];
        for (t = 0; t < kk; t++)
            _mm512_mask_storeu_ps(col + (size_t)(c * kk + t) * ld, om, _mm512_maskz_permutex2var_ps(vm[t], lo, idx[t], hi));
    }
}
#endif
#if defined(FER__X86)
/* Lanes l < n (of 8) of tab[l * stride], the rest -1; in *m the lanes >= 0 (taps
   inside the plane). */
FER__AVX2 static __m256i fer__tab_vec256(const int *tab, int n, int stride, __m256i *m)
{
    int t[8], l;
    __m256i v;
    for (l = 0; l < 8; l++) t[l] = l < n ? tab[l * stride] : -1;
    v = _mm256_loadu_si256((const __m256i *)(const void *)t);
    *m = _mm256_cmpgt_epi32(v, _mm256_set1_epi32(-1));
    return v;
}
/* The plane of hw <= 32 floats as nv = ceil(hw / 8) vectors (zeros past it). */
FER__AVX2_INLINE static inline int fer__plane256(const float *x, int hw, __m256 *pv)
{
    int j;
    for (j = 0; 8 * j < hw; j++) pv[j] = fer__ld256(x + 8 * j, hw - 8 * j >= 8, fer__mask256(hw - 8 * j));
    return j;
}
/* dst[l] = plane[tab[l * stride]] (0 where it is -1) for l < n <= 16, the plane
   in pv (fer__plane256); lanes 8 j.. from idx[j], msk[j] (fer__tab_vec256):
   a permute of each of the plane's vectors, blended by the index's high bits
   (gathers, at about 15 cycles each on a Zen 3, took 2/3 of the 128 -> 7 conv on
   3x3 planes); a last tap or two by plain loads; a partial vector stored whole
   where `whole` (what follows is written later), else masked. */
FER__AVX2_INLINE static inline void fer__select_run_avx2(float *dst, const float *plane, const __m256 *pv, int nv,
                                                         const int *tab, int n, int stride, const __m256i *idx,
                                                         const __m256i *msk, int whole)
{
    int j, l, q;
    for (j = 0; 8 * j < n; j++) {
        __m256i lo = _mm256_and_si256(idx[j], _mm256_set1_epi32(7));
        __m256 v = _mm256_permutevar8x32_ps(pv[0], lo);
        if (n - 8 * j <= 2) {
            for (l = 8 * j; l < n; l++) dst[l] = tab[l * stride] < 0 ? 0.0f : plane[tab[l * stride]];
            continue;
        }
        for (q = 1; q < nv; q++)
            v = _mm256_blendv_ps(v, _mm256_permutevar8x32_ps(pv[q], lo),
                                 _mm256_castsi256_ps(_mm256_cmpgt_epi32(idx[j], _mm256_set1_epi32(8 * q - 1))));
        v = _mm256_and_ps(v, _mm256_castsi256_ps(msk[j]));
        fer__st256(dst + 8 * j, n - 8 * j >= 8 || whole, fer__mask256(n - 8 * j), v);
    }
}
/* fer__im2col_small_avx512 in AVX2: each tap's row of at most 16 positions
   selected from the plane's vectors (fer__select_run_avx2; partial vectors
   masked: the rows of several samples sit side by side). */
FER__AVX2 static void fer__im2col_small_avx2(const fer_conv_geom *g, int cg, const float *in, float *col, size_t ld,
                                             const int *tab)
{
    int kk = g->kh * g->kw, ohw = g->oh * g->ow, hw = g->h * g->w, t, c, j;
    __m256i idx[25][2], msk[25][2];
    for (t = 0; t < kk; t++)
        for (j = 0; j < 2; j++) idx[t][j] = fer__tab_vec256(tab + t * ohw + 8 * j, ohw - 8 * j, 1, &msk[t][j]);
    for (c = 0; c < cg; c++) {
        __m256 pv[4];
        int nv = fer__plane256(in + (size_t)c * hw, hw, pv);
        for (t = 0; t < kk; t++)
            fer__select_run_avx2(col + (size_t)(c * kk + t) * ld, in + (size_t)c * hw, pv, nv, tab + t * ohw, ohw, 1,
                                 idx[t], msk[t], 0);
    }
}
#endif
/* col[(c*kh+ky)*kw+kx][oy*ow+ox] = in[c][oy*sh-ph+ky][ox*sw-pw+kx], zero outside
   (rows ld floats apart: several samples' columns can sit side by side).
   The valid column range of each tap is computed once, so the inner loop is a
   copy (a memcpy at stride 1) with no bounds test. */
static void fer__im2col(fer_isa isa, const fer_conv_geom *g, int cg, const float *in, float *col, size_t ld)
{
    int c, ky, kx, oy, ox, tab[FER__TAPS_MAX];
    if (fer__taps(g, tab)) {
        int kk = g->kh * g->kw, ohw = g->oh * g->ow, t, p;
#if defined(FER__X86)
        if (isa == FER_ISA_AVX512 && FER__IM2COL_SMALL(g)) { fer__im2col_small_avx512(g, cg, in, col, ld, tab); return; }
        if (isa == FER_ISA_AVX2 && FER__IM2COL_SMALL(g)) { fer__im2col_small_avx2(g, cg, in, col, ld, tab); return; }
#else
        (void)isa;
#endif
        for (c = 0; c < cg; c++) {
            const float *plane = in + (size_t)c * g->h * g->w;
            for (t = 0; t < kk; t++) {
                float *row = col + (size_t)(c * kk + t) * ld;
                const int *tt = tab + t * ohw;
                for (p = 0; p < ohw; p++) row[p] = tt[p] < 0 ? 0.0f : plane[tt[p]];
            }
        }
        return;
    }
    for (c = 0; c < cg; c++)
        for (ky = 0; ky < g->kh; ky++)
            for (kx = 0; kx < g->kw; kx++) {
                float *row = col + (size_t)((c * g->kh + ky) * g->kw + kx) * ld;
                const float *plane = in + (size_t)c * g->h * g->w;
                int lo, hi;
                fer__valid_cols(g, kx, &lo, &hi);
                for (oy = 0; oy < g->oh; oy++) {
                    int iy = oy * g->sh - g->ph + ky;
                    float *r = row + oy * g->ow;
                    const float *src;
                    if (iy < 0 || iy >= g->h) { for (ox = 0; ox < g->ow; ox++) r[ox] = 0.0f; continue; }
                    /* plain loops, not memcpy/memset: rows are often a few floats
                       long, where the calls cost more than the copy */
                    src = plane + (size_t)iy * g->w - g->pw + kx;
                    for (ox = 0; ox < lo; ox++) r[ox] = 0.0f;
                    if (g->sw == 1 && hi - lo >= 16) memcpy(r + lo, src + lo, sizeof(float) * (size_t)(hi - lo));
                    else if (g->sw == 1) for (ox = lo; ox < hi; ox++) r[ox] = src[ox];
                    else for (ox = lo; ox < hi; ox++) r[ox] = src[ox * g->sw];
                    for (ox = hi; ox < g->ow; ox++) r[ox] = 0.0f;
                }
            }
}

/* The im2col columns of k samples side by side (rows ld floats apart; a 1x1
   stride-1 conv's are its input planes). */
static void fer__batch_cols(fer_isa isa, const fer_conv_geom *g, const float *in, int k, float *col, size_t ld)
{
    size_t plane = (size_t)g->h * g->w, ohw = (size_t)g->oh * g->ow;
    int j, c;
    for (j = 0; j < k; j++) {
        const float *x = in + (size_t)j * g->cin * plane;
        if (!fer__conv_is_pointwise(g)) { fer__im2col(isa, g, g->cin, x, col + j * ohw, ld); continue; }
        for (c = 0; c < g->cin; c++) memcpy(col + c * ld + j * ohw, x + c * plane, sizeof(float) * ohw);
    }
}

/* The transpose of fer__im2col, rows[oy*ow+ox][(c*kh+ky)*kw+kx]: each output
   position's receptive field as one contiguous row, for convs whose output plane
   is too small to fill a GEMM strip (they run as dot products instead). */
#if defined(FER__X86)
/* fer__im2row of the same small planes (AVX-512): output position p's taps of
   channel c, kh kw consecutive floats of its row, are one permute of the plane's
   two vectors (mini_xception's last conv at batch 1: 20 us of its 200 in the
   scalar loops). */
FER__AVX512 static void fer__im2row_small_avx512(const fer_conv_geom *g, int cg, const float *in, float *rows,
                                                 const int *tab)
{
    int kk = g->kh * g->kw, ohw = g->oh * g->ow, hw = g->h * g->w, K = cg * kk, p, c;
    __mmask16 vm[16], om = (__mmask16)((1u << kk) - 1u);
    __m512i idx[16];
    for (p = 0; p < ohw; p++) idx[p] = fer__tab_vec(tab + p, kk, ohw, &vm[p]);   /* lane t: tap t of position p */
    for (c = 0; c < cg; c++) {
        __m512 pv[2], lo, hi;
        fer__plane32_avx512(in + (size_t)c * hw, hw, pv);
        lo = pv[0]; hi = pv[1];
        for (p = 0; p < ohw; p++)
            _mm512_mask_storeu_ps(rows + (size_t)p * K + c * kk, om, _mm512_maskz_permutex2var_ps(vm[p], lo, idx[p], hi));
    }
}
#endif
#if defined(FER__X86)
/* fer__im2row_small_avx512 in AVX2, up to 16 taps: position p's taps of channel
   c selected from the plane's vectors (fer__select_run_avx2); a partial last vector
   stored whole over the next channel's taps, written after it, but at the very
   end. mini_xception's 128->7 conv on 3x3 planes spent 67% of its time in the
   scalar im2row. */
FER__AVX2 static void fer__im2row_small_avx2(const fer_conv_geom *g, int cg, const float *in, float *rows,
                                             const int *tab)
{
    int kk = g->kh * g->kw, ohw = g->oh * g->ow, hw = g->h * g->w, K = cg * kk, p, c, j;
    for (p = 0; p < ohw; p++) {
        __m256i idx[2], msk[2];
        for (j = 0; j < 2; j++) idx[j] = fer__tab_vec256(tab + (size_t)8 * j * ohw + p, kk - 8 * j, ohw, &msk[j]);
        for (c = 0; c < cg; c++) {
            __m256 pv[4];
            int nv = fer__plane256(in + (size_t)c * hw, hw, pv);
            fer__select_run_avx2(rows + (size_t)p * K + (size_t)c * kk, in + (size_t)c * hw, pv, nv, tab + p, kk, ohw,
                                 idx, msk, p < ohw - 1 || c < cg - 1);
        }
    }
}
#endif
static void fer__im2row(fer_isa isa, const fer_conv_geom *g, int cg, const float *in, float *rows)
{
    int c, ky, kx, oy, ox, K = cg * g->kh * g->kw;
#if defined(FER__X86)
    int tab[FER__TAPS_MAX];
    if ((isa == FER_ISA_AVX512 || isa == FER_ISA_AVX2) && g->kh * g->kw <= 16 && FER__IM2COL_SMALL(g) && fer__taps(g, tab)) {
        (isa == FER_ISA_AVX512 ? fer__im2row_small_avx512 : fer__im2row_small_avx2)(g, cg, in, rows, tab);
        return;
    }
#else
    (void)isa;
#endif
    for (oy = 0; oy < g->oh; oy++)
        for (ox = 0; ox < g->ow; ox++) {
            float *r = rows + (size_t)(oy * g->ow + ox) * K;
            int y0 = oy * g->sh - g->ph, x0 = ox * g->sw - g->pw;   /* window corner */
            int ky0 = y0 < 0 ? -y0 : 0, ky1 = g->h - y0 < g->kh ? g->h - y0 : g->kh;
            int kx0 = x0 < 0 ? -x0 : 0, kx1 = g->w - x0 < g->kw ? g->w - x0 : g->kw;
            for (c = 0; c < cg; c++) {
                const float *plane = in + (size_t)c * g->h * g->w;
                int at = y0 * g->w + x0;   /* may be negative: only valid taps are read */
                for (ky = 0; ky < g->kh; ky++, r += g->kw) {
                    if (ky < ky0 || ky >= ky1) { for (kx = 0; kx < g->kw; kx++) r[kx] = 0.0f; continue; }
                    for (kx = 0; kx < kx0; kx++) r[kx] = 0.0f;
                    for (; kx < kx1; kx++) r[kx] = plane[at + ky * g->w + kx];
                    for (; kx < g->kw; kx++) r[kx] = 0.0f;
                }
            }
        }
}

/* the adjoint of fer__im2col: din[c][iy][ix] += col[...] */
static void fer__col2im(fer_isa isa, const fer_conv_geom *g, int cg, const float *col, size_t ld, float *din)
{
    int c, ky, kx, oy, ox, tab[FER__TAPS_MAX];
    if (fer__taps(g, tab)) {   /* small planes: by table (see fer__im2col) */
        int kk = g->kh * g->kw, ohw = g->oh * g->ow, t, p;
        for (c = 0; c < cg; c++) {
            float *plane = din + (size_t)c * g->h * g->w;
            for (t = 0; t < kk; t++) {
                const float *row = col + (size_t)(c * kk + t) * ld;
                const int *tt = tab + t * ohw;
                for (p = 0; p < ohw; p++) if (tt[p] >= 0) plane[tt[p]] += row[p];
            }
        }
        return;
    }
    for (c = 0; c < cg; c++)
        for (ky = 0; ky < g->kh; ky++)
            for (kx = 0; kx < g->kw; kx++) {
                const float *row = col + (size_t)((c * g->kh + ky) * g->kw + kx) * ld;
                float *plane = din + (size_t)c * g->h * g->w;
                int lo, hi;
                fer__valid_cols(g, kx, &lo, &hi);
                for (oy = 0; oy < g->oh; oy++) {
                    int iy = oy * g->sh - g->ph + ky;
                    const float *r = row + oy * g->ow;
                    float *dst;
                    if (iy < 0 || iy >= g->h) continue;
                    dst = plane + (size_t)iy * g->w - g->pw + kx;
                    if (g->sw == 1) fer_axpy(isa, hi - lo, 1.0f, r + lo, dst + lo);
                    else for (ox = lo; ox < hi; ox++) dst[ox * g->sw] += r[ox];
                }
            }
}

/* Copies plane [h][w] into the middle of a zeroed [h+2ph][w+2pw] plane. */
static void fer__pad_plane(const fer_conv_geom *g, const float *in, float *pad)
{
    int y, pwid = g->w + 2 * g->pw;
    memset(pad, 0, sizeof(float) * (size_t)(g->h + 2 * g->ph) * pwid);
    for (y = 0; y < g->h; y++)
        memcpy(pad + (size_t)(y + g->ph) * pwid + g->pw, in + (size_t)y * g->w, sizeof(float) * (size_t)g->w);
}

/* Small 2-D correlations for depthwise conv at stride 1, vectorised along rows
   with the sum of all k*k taps held in a register:
     fer__corr2d:    out[y][x] = (acc ? out[y][x] : bias) + sum w'[ky][kx] in[y+ky][x+kx]
                     (w' = w, or w rotated by 180 degrees when flip: the input gradient)
     fer__corr2d_dw: dw[ky][kx] += sum_{y,x} d[y][x] in[y+ky][x+kx] */
#define FER__TAP(w, kh, kw, ky, kx, flip) ((flip) ? (w)[((kh) - 1 - (ky)) * (kw) + (kw) - 1 - (kx)] : (w)[(ky) * (kw) + (kx)])

static void fer__corr2d_scalar(float *out, int oh, int ow, int os, const float *in, int is,
                               const float *w, int kh, int kw, int flip, int acc, float bias)
{
    int y, x, ky, kx;
    for (y = 0; y < oh; y++)
        for (x = 0; x < ow; x++) {
            float a = acc ? out[y * os + x] : bias;
            for (ky = 0; ky < kh; ky++)
                for (kx = 0; kx < kw; kx++) a += FER__TAP(w, kh, kw, ky, kx, flip) * in[(y + ky) * is + x + kx];
            out[y * os + x] = a;
        }
}
static void fer__corr2d_dw_scalar(float *dw, const float *d, int oh, int ow, const float *in, int is,
                                  int kh, int kw)
{
    int y, x, ky, kx;
    for (ky = 0; ky < kh; ky++)
        for (kx = 0; kx < kw; kx++) {
            float a = 0.0f;
            for (y = 0; y < oh; y++)
                for (x = 0; x < ow; x++) a += d[y * ow + x] * in[(y + ky) * is + x + kx];
            dw[ky * kw + kx] += a;
        }
}
#if defined(FER__X86)
FER__AVX512 static void fer__corr2d_avx512(float *out, int oh, int ow, int os, const float *in, int is,
                                           const float *w, int kh, int kw, int flip, int acc, float bias)
{
    /* four output rows at once: four independent FMA chains hide the latency
       that one chain of kh*kw FMAs per vector would expose */
    int y, x, ky, kx, i;
    for (y = 0; y < oh; y += 4) {
        int nrow = oh - y < 4 ? oh - y : 4;
        for (x = 0; x < ow; x += 16) {
            __mmask16 m = (__mmask16)(ow - x >= 16 ? 0xFFFF : (1u << (ow - x)) - 1u);
            __m512 a0, a1, a2, a3, vb = _mm512_set1_ps(bias);
            const float *r0 = in + (size_t)y * is + x, *r1, *r2, *r3;
            float *o = out + (size_t)y * os + x;
            r1 = nrow > 1 ? r0 + is : r0; r2 = nrow > 2 ? r0 + 2 * (size_t)is : r0; r3 = nrow > 3 ? r0 + 3 * (size_t)is : r0;
            a0 = acc ? _mm512_maskz_loadu_ps(m, o) : vb;
            a1 = acc && nrow > 1 ? _mm512_maskz_loadu_ps(m, o + os) : vb;
            a2 = acc && nrow > 2 ? _mm512_maskz_loadu_ps(m, o + 2 * (size_t)os) : vb;
            a3 = acc && nrow > 3 ? _mm512_maskz_loadu_ps(m, o + 3 * (size_t)os) : vb;
            for (ky = 0; ky < kh; ky++, r0 += is, r1 += is, r2 += is, r3 += is)
                for (kx = 0; kx < kw; kx++) {
                    __m512 t = _mm512_set1_ps(FER__TAP(w, kh, kw, ky, kx, flip));
                    a0 = _mm512_fmadd_ps(t, _mm512_maskz_loadu_ps(m, r0 + kx), a0);
                    a1 = _mm512_fmadd_ps(t, _mm512_maskz_loadu_ps(m, r1 + kx), a1);
                    a2 = _mm512_fmadd_ps(t, _mm512_maskz_loadu_ps(m, r2 + kx), a2);
                    a3 = _mm512_fmadd_ps(t, _mm512_maskz_loadu_ps(m, r3 + kx), a3);
                }
            for (i = 0; i < nrow; i++)
                _mm512_mask_storeu_ps(o + (size_t)i * os, m, i == 0 ? a0 : i == 1 ? a1 : i == 2 ? a2 : a3);
        }
    }
}
FER__AVX512 static void fer__corr2d_dw_avx512(float *dw, const float *d, int oh, int ow, const float *in,
                                              int is, int kh, int kw)
{
    /* one tap's sum over the plane in four accumulators, one per row mod 4 */
    int y, x, ky, kx;
    for (ky = 0; ky < kh; ky++)
        for (kx = 0; kx < kw; kx++) {
            __m512 a[4];
            a[0] = a[1] = a[2] = a[3] = _mm512_setzero_ps();
            for (y = 0; y < oh; y++) {
                __m512 s = a[y & 3];
                for (x = 0; x < ow; x += 16) {
                    __mmask16 m = (__mmask16)(ow - x >= 16 ? 0xFFFF : (1u << (ow - x)) - 1u);
                    s = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, d + y * ow + x),
                                        _mm512_maskz_loadu_ps(m, in + (y + ky) * is + x + kx), s);
                }
                a[y & 3] = s;
            }
            dw[ky * kw + kx] += fer__hsum512(_mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3])));
        }
}
/* 3x3 taps at stride 1, AVX-512: the taps live in nine registers, and each input
   row is loaded once (three shifted vectors) for the up to three output rows it
   feeds; eight output rows at once give eight FMA chains (30 loads per 72 FMAs). */
FER__AVX512 static void fer__corr2d3_avx512(float *out, int oh, int ow, int os, const float *in, int is,
                                            const float *w, int flip, int acc, float bias)
{
    __m512 w00 = _mm512_set1_ps(FER__TAP(w, 3, 3, 0, 0, flip)), w01 = _mm512_set1_ps(FER__TAP(w, 3, 3, 0, 1, flip));
    __m512 w02 = _mm512_set1_ps(FER__TAP(w, 3, 3, 0, 2, flip)), w10 = _mm512_set1_ps(FER__TAP(w, 3, 3, 1, 0, flip));
    __m512 w11 = _mm512_set1_ps(FER__TAP(w, 3, 3, 1, 1, flip)), w12 = _mm512_set1_ps(FER__TAP(w, 3, 3, 1, 2, flip));
    __m512 w20 = _mm512_set1_ps(FER__TAP(w, 3, 3, 2, 0, flip)), w21 = _mm512_set1_ps(FER__TAP(w, 3, 3, 2, 1, flip));
    __m512 w22 = _mm512_set1_ps(FER__TAP(w, 3, 3, 2, 2, flip)), vb = _mm512_set1_ps(bias);
    int y, x, i;
    for (y = 0; y < oh; y += 8) {
        int nrow = oh - y < 8 ? oh - y : 8;
        const float *r[10];
        for (i = 0; i < 10; i++) r[i] = in + (size_t)(y + (i < nrow + 2 ? i : 0)) * is;   /* rows past the plane: any valid row */
        for (x = 0; x < ow; x += 16) {
            __mmask16 m = (__mmask16)(ow - x >= 16 ? 0xFFFF : (1u << (ow - x)) - 1u);
            float *o = out + (size_t)y * os + x;
            __m512 v0, v1, v2;
            __m512 a0, a1, a2, a3, a4, a5, a6, a7;
            a0 = acc && nrow > 0 ? _mm512_maskz_loadu_ps(m, o + 0 * (size_t)os) : vb;
            a1 = acc && nrow > 1 ? _mm512_maskz_loadu_ps(m, o + 1 * (size_t)os) : vb;
            a2 = acc && nrow > 2 ? _mm512_maskz_loadu_ps(m, o + 2 * (size_t)os) : vb;
            a3 = acc && nrow > 3 ? _mm512_maskz_loadu_ps(m, o + 3 * (size_t)os) : vb;
            a4 = acc && nrow > 4 ? _mm512_maskz_loadu_ps(m, o + 4 * (size_t)os) : vb;
            a5 = acc && nrow > 5 ? _mm512_maskz_loadu_ps(m, o + 5 * (size_t)os) : vb;
            a6 = acc && nrow > 6 ? _mm512_maskz_loadu_ps(m, o + 6 * (size_t)os) : vb;
            a7 = acc && nrow > 7 ? _mm512_maskz_loadu_ps(m, o + 7 * (size_t)os) : vb;
#define FER__LD3(i) v0 = _mm512_maskz_loadu_ps(m, r[i] + x); v1 = _mm512_maskz_loadu_ps(m, r[i] + x + 1); \
            v2 = _mm512_maskz_loadu_ps(m, r[i] + x + 2)
#define FER__FM3(a, t0, t1, t2) a = _mm512_fmadd_ps(t0, v0, a); a = _mm512_fmadd_ps(t1, v1, a); a = _mm512_fmadd_ps(t2, v2, a)
            FER__LD3(0); FER__FM3(a0, w00, w01, w02);
            FER__LD3(1); FER__FM3(a1, w00, w01, w02); FER__FM3(a0, w10, w11, w12);
            FER__LD3(2); FER__FM3(a2, w00, w01, w02); FER__FM3(a1, w10, w11, w12); FER__FM3(a0, w20, w21, w22);
            FER__LD3(3); FER__FM3(a3, w00, w01, w02); FER__FM3(a2, w10, w11, w12); FER__FM3(a1, w20, w21, w22);
            FER__LD3(4); FER__FM3(a4, w00, w01, w02); FER__FM3(a3, w10, w11, w12); FER__FM3(a2, w20, w21, w22);
            FER__LD3(5); FER__FM3(a5, w00, w01, w02); FER__FM3(a4, w10, w11, w12); FER__FM3(a3, w20, w21, w22);
            FER__LD3(6); FER__FM3(a6, w00, w01, w02); FER__FM3(a5, w10, w11, w12); FER__FM3(a4, w20, w21, w22);
            FER__LD3(7); FER__FM3(a7, w00, w01, w02); FER__FM3(a6, w10, w11, w12); FER__FM3(a5, w20, w21, w22);
            FER__LD3(8); FER__FM3(a7, w10, w11, w12); FER__FM3(a6, w20, w21, w22);
            FER__LD3(9); FER__FM3(a7, w20, w21, w22);
#undef FER__FM3
#undef FER__LD3
            if (nrow > 0) _mm512_mask_storeu_ps(o + 0 * (size_t)os, m, a0);
            if (nrow > 1) _mm512_mask_storeu_ps(o + 1 * (size_t)os, m, a1);
            if (nrow > 2) _mm512_mask_storeu_ps(o + 2 * (size_t)os, m, a2);
            if (nrow > 3) _mm512_mask_storeu_ps(o + 3 * (size_t)os, m, a3);
            if (nrow > 4) _mm512_mask_storeu_ps(o + 4 * (size_t)os, m, a4);
            if (nrow > 5) _mm512_mask_storeu_ps(o + 5 * (size_t)os, m, a5);
            if (nrow > 6) _mm512_mask_storeu_ps(o + 6 * (size_t)os, m, a6);
            if (nrow > 7) _mm512_mask_storeu_ps(o + 7 * (size_t)os, m, a7);
        }
    }
}

/* dW of a 3x3 depthwise conv: the nine taps' sums in nine registers, each
   gradient vector loaded once for all nine. */
FER__AVX512 static void fer__corr2d_dw3_avx512(float *dw, const float *d, int oh, int ow, const float *in, int is)
{
    __m512 s00 = _mm512_setzero_ps(), s01 = s00, s02 = s00, s10 = s00, s11 = s00, s12 = s00;
    __m512 s20 = s00, s21 = s00, s22 = s00;
    int y, x;
    for (y = 0; y < oh; y++)
        for (x = 0; x < ow; x += 16) {
            __mmask16 m = (__mmask16)(ow - x >= 16 ? 0xFFFF : (1u << (ow - x)) - 1u);
            __m512 dv = _mm512_maskz_loadu_ps(m, d + (size_t)y * ow + x);
            const float *r0 = in + (size_t)y * is + x, *r1 = r0 + is, *r2 = r1 + is;
#define FER__DW3(s, r, k) s = _mm512_fmadd_ps(dv, _mm512_maskz_loadu_ps(m, r + k), s)
            FER__DW3(s00, r0, 0); FER__DW3(s01, r0, 1); FER__DW3(s02, r0, 2);
            FER__DW3(s10, r1, 0); FER__DW3(s11, r1, 1); FER__DW3(s12, r1, 2);
            FER__DW3(s20, r2, 0); FER__DW3(s21, r2, 1); FER__DW3(s22, r2, 2);
#undef FER__DW3
        }
    dw[0] += fer__hsum512(s00); dw[1] += fer__hsum512(s01); dw[2] += fer__hsum512(s02);
    dw[3] += fer__hsum512(s10); dw[4] += fer__hsum512(s11); dw[5] += fer__hsum512(s12);
    dw[6] += fer__hsum512(s20); dw[7] += fer__hsum512(s21); dw[8] += fer__hsum512(s22);
}
/* The AVX2 correlations: a row's last partial vector through masked loads and
   stores (fer__mask256), so narrow planes (12 or 6 wide) stay in vectors. 3x3 taps
   as fer__corr2d3_avx512, four output rows at once (9 taps + 4 sums + 3 loads
   fill the 16 ymm). */
FER__AVX2 static void fer__corr2d3_avx2(float *out, int oh, int ow, int os, const float *in, int is,
                                        const float *w, int flip, int acc, float bias)
{
    __m256 w00 = _mm256_set1_ps(FER__TAP(w, 3, 3, 0, 0, flip)), w01 = _mm256_set1_ps(FER__TAP(w, 3, 3, 0, 1, flip));
    __m256 w02 = _mm256_set1_ps(FER__TAP(w, 3, 3, 0, 2, flip)), w10 = _mm256_set1_ps(FER__TAP(w, 3, 3, 1, 0, flip));
    __m256 w11 = _mm256_set1_ps(FER__TAP(w, 3, 3, 1, 1, flip)), w12 = _mm256_set1_ps(FER__TAP(w, 3, 3, 1, 2, flip));
    __m256 w20 = _mm256_set1_ps(FER__TAP(w, 3, 3, 2, 0, flip)), w21 = _mm256_set1_ps(FER__TAP(w, 3, 3, 2, 1, flip));
    __m256 w22 = _mm256_set1_ps(FER__TAP(w, 3, 3, 2, 2, flip)), vb = _mm256_set1_ps(bias);
    int y, x, i;
    for (y = 0; y < oh; y += 4) {
        int nrow = oh - y < 4 ? oh - y : 4;
        const float *r[6];
        for (i = 0; i < 6; i++) r[i] = in + (size_t)(y + (i < nrow + 2 ? i : 0)) * is;   /* rows past the plane: any valid row */
        for (x = 0; x < ow; x += 8) {
            int full = ow - x >= 8;
            __m256i m = fer__mask256(ow - x);
            float *o = out + (size_t)y * os + x;
            __m256 v0, v1, v2, a0, a1, a2, a3;
            a0 = acc ? fer__ld256(o, full, m) : vb;
            a1 = acc && nrow > 1 ? fer__ld256(o + (size_t)os, full, m) : vb;
            a2 = acc && nrow > 2 ? fer__ld256(o + 2 * (size_t)os, full, m) : vb;
            a3 = acc && nrow > 3 ? fer__ld256(o + 3 * (size_t)os, full, m) : vb;
#define FER__LD3(i) v0 = fer__ld256(r[i] + x, full, m); v1 = fer__ld256(r[i] + x + 1, full, m); \
            v2 = fer__ld256(r[i] + x + 2, full, m)
#define FER__FM3(a, t0, t1, t2) a = _mm256_fmadd_ps(t0, v0, a); a = _mm256_fmadd_ps(t1, v1, a); a = _mm256_fmadd_ps(t2, v2, a)
            FER__LD3(0); FER__FM3(a0, w00, w01, w02);
            FER__LD3(1); FER__FM3(a1, w00, w01, w02); FER__FM3(a0, w10, w11, w12);
            FER__LD3(2); FER__FM3(a2, w00, w01, w02); FER__FM3(a1, w10, w11, w12); FER__FM3(a0, w20, w21, w22);
            FER__LD3(3); FER__FM3(a3, w00, w01, w02); FER__FM3(a2, w10, w11, w12); FER__FM3(a1, w20, w21, w22);
            FER__LD3(4); FER__FM3(a3, w10, w11, w12); FER__FM3(a2, w20, w21, w22);
            FER__LD3(5); FER__FM3(a3, w20, w21, w22);
#undef FER__FM3
#undef FER__LD3
            fer__st256(o, full, m, a0);
            if (nrow > 1) fer__st256(o + (size_t)os, full, m, a1);
            if (nrow > 2) fer__st256(o + 2 * (size_t)os, full, m, a2);
            if (nrow > 3) fer__st256(o + 3 * (size_t)os, full, m, a3);
        }
    }
}
FER__AVX2 static void fer__corr2d_avx2(float *out, int oh, int ow, int os, const float *in, int is,
                                       const float *w, int kh, int kw, int flip, int acc, float bias)
{
    int y, x, ky, kx;
    if (kh == 3 && kw == 3) { fer__corr2d3_avx2(out, oh, ow, os, in, is, w, flip, acc, bias); return; }
    for (y = 0; y < oh; y++)
        for (x = 0; x < ow; x += 8) {
            int full = ow - x >= 8;
            __m256i m = fer__mask256(ow - x);
            __m256 a = acc ? fer__ld256(out + (size_t)y * os + x, full, m) : _mm256_set1_ps(bias);
            for (ky = 0; ky < kh; ky++) {
                const float *r = in + (size_t)(y + ky) * is + x;
                for (kx = 0; kx < kw; kx++)
                    a = _mm256_fmadd_ps(_mm256_set1_ps(FER__TAP(w, kh, kw, ky, kx, flip)), fer__ld256(r + kx, full, m), a);
            }
            fer__st256(out + (size_t)y * os + x, full, m, a);
        }
}
/* dW of a 3x3 depthwise conv, AVX2: as fer__corr2d_dw3_avx512, nine sums, each
   gradient vector loaded once for all nine, the row's last partial vector masked. */
FER__AVX2 static void fer__corr2d_dw3_avx2(float *dw, const float *d, int oh, int ow, const float *in, int is)
{
    __m256 s00 = _mm256_setzero_ps(), s01 = s00, s02 = s00, s10 = s00, s11 = s00, s12 = s00;
    __m256 s20 = s00, s21 = s00, s22 = s00;
    int y, x;
    for (y = 0; y < oh; y++)
        for (x = 0; x < ow; x += 8) {
            int full = ow - x >= 8;
            __m256i m = fer__mask256(ow - x);
            __m256 dv = fer__ld256(d + (size_t)y * ow + x, full, m);
            const float *r0 = in + (size_t)y * is + x, *r1 = r0 + is, *r2 = r1 + is;
#define FER__DW3(s, r, k) s = _mm256_fmadd_ps(dv, fer__ld256(r + k, full, m), s)
            FER__DW3(s00, r0, 0); FER__DW3(s01, r0, 1); FER__DW3(s02, r0, 2);
            FER__DW3(s10, r1, 0); FER__DW3(s11, r1, 1); FER__DW3(s12, r1, 2);
            FER__DW3(s20, r2, 0); FER__DW3(s21, r2, 1); FER__DW3(s22, r2, 2);
#undef FER__DW3
        }
    dw[0] += fer__hsum256(s00); dw[1] += fer__hsum256(s01); dw[2] += fer__hsum256(s02);
    dw[3] += fer__hsum256(s10); dw[4] += fer__hsum256(s11); dw[5] += fer__hsum256(s12);
    dw[6] += fer__hsum256(s20); dw[7] += fer__hsum256(s21); dw[8] += fer__hsum256(s22);
}
FER__AVX2 static void fer__corr2d_dw_avx2(float *dw, const float *d, int oh, int ow, const float *in,
                                          int is, int kh, int kw)
{
    int y, x, ky, kx, full = ow & ~7;
    for (ky = 0; ky < kh; ky++)
        for (kx = 0; kx < kw; kx++) {
            __m256 a = _mm256_setzero_ps();
            __m128 h;
            float t = 0.0f;
            for (y = 0; y < oh; y++) {
                for (x = 0; x < full; x += 8)
                    a = _mm256_fmadd_ps(_mm256_loadu_ps(d + y * ow + x), _mm256_loadu_ps(in + (y + ky) * is + x + kx), a);
                for (; x < ow; x++) t += d[y * ow + x] * in[(y + ky) * is + x + kx];
            }
            h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
            h = _mm_add_ps(h, _mm_movehl_ps(h, h));
            h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
            dw[ky * kw + kx] += _mm_cvtss_f32(h) + t;
        }
}
#endif
#if defined(FER__NEON)
static void fer__corr2d_neon(float *out, int oh, int ow, int os, const float *in, int is,
                             const float *w, int kh, int kw, int flip, int acc, float bias)
{
    int y, x, ky, kx, full = ow & ~3;
    for (y = 0; y < oh; y++) {
        for (x = 0; x < full; x += 4) {
            float32x4_t a = acc ? vld1q_f32(out + y * os + x) : vdupq_n_f32(bias);
            for (ky = 0; ky < kh; ky++) {
                const float *r = in + (y + ky) * is + x;
                for (kx = 0; kx < kw; kx++) a = vfmaq_n_f32(a, vld1q_f32(r + kx), FER__TAP(w, kh, kw, ky, kx, flip));
            }
            vst1q_f32(out + y * os + x, a);
        }
        if (full < ow)
            fer__corr2d_scalar(out + y * os + full, 1, ow - full, os, in + y * is + full, is, w, kh, kw, flip, acc, bias);
    }
}
#endif

static void fer__corr2d(fer_isa isa, float *out, int oh, int ow, int os, const float *in, int is,
                        const float *w, int kh, int kw, int flip, int acc, float bias)
{
#if defined(FER__X86)
    if (isa == FER_ISA_AVX512 && kh == 3 && kw == 3) { fer__corr2d3_avx512(out, oh, ow, os, in, is, w, flip, acc, bias); return; }
    if (isa == FER_ISA_AVX512) { fer__corr2d_avx512(out, oh, ow, os, in, is, w, kh, kw, flip, acc, bias); return; }
    if (isa == FER_ISA_AVX2) { fer__corr2d_avx2(out, oh, ow, os, in, is, w, kh, kw, flip, acc, bias); return; }
#elif defined(FER__NEON)
    if (isa == FER_ISA_NEON) { fer__corr2d_neon(out, oh, ow, os, in, is, w, kh, kw, flip, acc, bias); return; }
#endif
    (void)isa;
    fer__corr2d_scalar(out, oh, ow, os, in, is, w, kh, kw, flip, acc, bias);
}
static void fer__corr2d_dw(fer_isa isa, float *dw, const float *d, int oh, int ow, const float *in,
                           int is, int kh, int kw)
{
#if defined(FER__X86)
    if (isa == FER_ISA_AVX512 && kh == 3 && kw == 3) { fer__corr2d_dw3_avx512(dw, d, oh, ow, in, is); return; }
    if (isa == FER_ISA_AVX512) { fer__corr2d_dw_avx512(dw, d, oh, ow, in, is, kh, kw); return; }
    if (isa == FER_ISA_AVX2 && kh == 3 && kw == 3) { fer__corr2d_dw3_avx2(dw, d, oh, ow, in, is); return; }
    if (isa == FER_ISA_AVX2) { fer__corr2d_dw_avx2(dw, d, oh, ow, in, is, kh, kw); return; }
#endif
    (void)isa;
    fer__corr2d_dw_scalar(dw, d, oh, ow, in, is, kh, kw);
}

/* Zero-pads plane src [h][w] by (pt, pl) top/left into dst [dh][dw]. */
static void fer__pad_to(const float *src, int h, int w, float *dst, int dh, int dw, int pt, int pl)
{
    int y;
    memset(dst, 0, sizeof(float) * (size_t)dh * dw);
    for (y = 0; y < h; y++) memcpy(dst + (size_t)(y + pt) * dw + pl, src + (size_t)y * w, sizeof(float) * (size_t)w);
}

static void fer__vaffine(fer_isa isa, int n, float *y, const float *x, float a, float b);
static void fer__vrelu(fer_isa isa, int six, size_t n, float *y, const float *x);

#if defined(FER__X86)
/* Stride-2 depthwise conv, AVX-512. The padded plane is split into its even and
   odd columns (e, o: rows of ew floats), so tap (ky, kx) of output column ox
   reads column ox + kx/2 of e (kx even) or o (kx odd): unit-stride loads only.
   Four output rows at once for four independent FMA chains. */
FER__AVX512 static void fer__deinterleave_avx512(const float *src, int n, float *e, float *o)
{
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 a = _mm512_loadu_ps(src + i), b = _mm512_loadu_ps(src + i + 16);
        _mm512_storeu_ps(e + i / 2, _mm512_permutex2var_ps(a, ev, b));
        _mm512_storeu_ps(o + i / 2, _mm512_permutex2var_ps(a, od, b));
    }
    if (i < n) {   /* the last 1..31: masked */
        int r = n - i, ne = (r + 1) / 2, no = r / 2;
        __m512 a = _mm512_maskz_loadu_ps((__mmask16)(r >= 16 ? 0xFFFF : (1u << r) - 1u), src + i);
        __m512 b = _mm512_maskz_loadu_ps((__mmask16)(r <= 16 ? 0 : (1u << (r - 16)) - 1u), src + i + 16);
        _mm512_mask_storeu_ps(e + i / 2, (__mmask16)((1u << ne) - 1u), _mm512_permutex2var_ps(a, ev, b));
        _mm512_mask_storeu_ps(o + i / 2, (__mmask16)((1u << no) - 1u), _mm512_permutex2var_ps(a, od, b));
    }
}
FER__AVX512 static void fer__dw_s2_avx512(float *out, int oh, int ow, const float *e, const float *o,
                                          int ew, const float *w, int kh, int kw, float scale, float bias,
                                          int act)
{
    /* out = act(scale * conv + bias) at the store */
    __m512 vs = _mm512_set1_ps(scale), vb = _mm512_set1_ps(bias), z = _mm512_setzero_ps();
    __m512 v6 = _mm512_set1_ps(act == 2 ? 6.0f : INFINITY);
    int y, x, ky, kx, i;
    for (y = 0; y < oh; y += 4) {
        int nrow = oh - y < 4 ? oh - y : 4;
        size_t s1 = nrow > 1 ? 2 * (size_t)ew : 0, s2 = nrow > 2 ? 4 * (size_t)ew : 0, s3 = nrow > 3 ? 6 * (size_t)ew : 0;
        for (x = 0; x < ow; x += 16) {
            __mmask16 m = (__mmask16)(ow - x >= 16 ? 0xFFFF : (1u << (ow - x)) - 1u);
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            float *op = out + (size_t)y * ow + x;
            for (ky = 0; ky < kh; ky++)
                for (kx = 0; kx < kw; kx++) {
                    const float *r = ((kx & 1) ? o : e) + (size_t)(2 * y + ky) * ew + x + kx / 2;
                    __m512 t = _mm512_set1_ps(w[ky * kw + kx]);
                    a0 = _mm512_fmadd_ps(t, _mm512_maskz_loadu_ps(m, r), a0);
                    a1 = _mm512_fmadd_ps(t, _mm512_maskz_loadu_ps(m, r + s1), a1);
                    a2 = _mm512_fmadd_ps(t, _mm512_maskz_loadu_ps(m, r + s2), a2);
                    a3 = _mm512_fmadd_ps(t, _mm512_maskz_loadu_ps(m, r + s3), a3);
                }
            for (i = 0; i < nrow; i++) {
                __m512 v = _mm512_fmadd_ps(i == 0 ? a0 : i == 1 ? a1 : i == 2 ? a2 : a3, vs, vb);
                if (act) v = _mm512_min_ps(_mm512_max_ps(v, z), v6);
                _mm512_mask_storeu_ps(op + (size_t)i * ow, m, v);
            }
        }
    }
}
/* The AVX2 twins of fer__deinterleave_avx512 and fer__dw_s2_avx512. */
FER__AVX2 static void fer__deinterleave_avx2(const float *src, int n, float *e, float *o)
{
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 ev, od;
        fer__evod256(_mm256_loadu_ps(src + i), _mm256_loadu_ps(src + i + 8), &ev, &od);
        _mm256_storeu_ps(e + i / 2, ev);
        _mm256_storeu_ps(o + i / 2, od);
    }
    for (; i < n; i++) {
        if (i & 1) o[i / 2] = src[i];
        else e[i / 2] = src[i];
    }
}
FER__AVX2 static void fer__dw_s2_avx2(float *out, int oh, int ow, const float *e, const float *o,
                                      int ew, const float *w, int kh, int kw, float scale, float bias,
                                      int act)
{
    __m256 vs = _mm256_set1_ps(scale), vb = _mm256_set1_ps(bias), z = _mm256_setzero_ps();
    __m256 v6 = _mm256_set1_ps(act == 2 ? 6.0f : INFINITY);
    int y, x, ky, kx, i;
    for (y = 0; y < oh; y += 4) {
        int nrow = oh - y < 4 ? oh - y : 4;
        size_t s1 = nrow > 1 ? 2 * (size_t)ew : 0, s2 = nrow > 2 ? 4 * (size_t)ew : 0, s3 = nrow > 3 ? 6 * (size_t)ew : 0;
        for (x = 0; x < ow; x += 8) {
            int full = ow - x >= 8;
            __m256i m = fer__mask256(ow - x);
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            float *op = out + (size_t)y * ow + x;
            for (ky = 0; ky < kh; ky++)
                for (kx = 0; kx < kw; kx++) {
                    const float *r = ((kx & 1) ? o : e) + (size_t)(2 * y + ky) * ew + x + kx / 2;
                    __m256 t = _mm256_set1_ps(w[ky * kw + kx]);
                    a0 = _mm256_fmadd_ps(t, fer__ld256(r, full, m), a0);
                    a1 = _mm256_fmadd_ps(t, fer__ld256(r + s1, full, m), a1);
                    a2 = _mm256_fmadd_ps(t, fer__ld256(r + s2, full, m), a2);
                    a3 = _mm256_fmadd_ps(t, fer__ld256(r + s3, full, m), a3);
                }
            for (i = 0; i < nrow; i++) {
                __m256 v = _mm256_fmadd_ps(i == 0 ? a0 : i == 1 ? a1 : i == 2 ? a2 : a3, vs, vb);
                if (act) v = _mm256_min_ps(_mm256_max_ps(v, z), v6);
                fer__st256(op + (size_t)i * ow, full, m, v);
            }
        }
    }
}
/* dW of the stride-2 depthwise conv over the split plane (the shapes without a
   kernel of their own): one tap at a time, four accumulators (one per output row
   mod 4). */
FER__AVX512 static void fer__dw_s2_dw_avx512(float *dw, const float *d, int oh, int ow, const float *e,
                                             const float *o, int ew, int kh, int kw)
{
    int y, x, ky, kx;
    for (ky = 0; ky < kh; ky++)
        for (kx = 0; kx < kw; kx++) {
            const float *src = ((kx & 1) ? o : e) + (size_t)ky * ew + kx / 2;
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (y = 0; y < oh; y++)
                for (x = 0; x < ow; x += 16) {
                    __mmask16 m = (__mmask16)(ow - x >= 16 ? 0xFFFF : (1u << (ow - x)) - 1u);
                    __m512 p = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, d + (size_t)y * ow + x),
                                             _mm512_maskz_loadu_ps(m, src + (size_t)2 * y * ew + x));
                    switch (y & 3) {
                    case 0: a0 = _mm512_add_ps(a0, p); break;
                    case 1: a1 = _mm512_add_ps(a1, p); break;
                    case 2: a2 = _mm512_add_ps(a2, p); break;
                    default: a3 = _mm512_add_ps(a3, p); break;
                    }
                }
            dw[ky * kw + kx] += fer__hsum512(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
        }
}
/* The "same" 3x3 stride-1 depthwise conv in AVX2, straight from the planes (no
   padded copy per plane: 384 planes of 6x6 at batch 1 spent most of their time
   padding): for 8 output columns from x, the taps' columns x-1, x and x+1 of an
   input row are three loads, masked past the row's end (the masks made once per
   column block); at x = 0 the column x-1 is column x moved up a lane, a zero
   below. Two output rows a pass share their middle input rows, and the nine taps
   stay in registers: 12 loads for 18 FMAs, where a row at a time with the taps
   broadcast from memory took 18 loads for 9 (192 planes of 12x12 at batch 1
   36 -> 22.4 us, 384 of 6x6 17.6 -> 13.0, 32 of 24x24 17.8 -> 10.4); the blocks
   inside the row without tests (16 planes of 48x48 at batch 32 0.73 -> 0.51 ms).
   On AVX2 it takes every 3x3 "same" depthwise conv, flipped their input
   gradient, and the one-channel 3x3 stems (cout planes on one input plane). */
FER__AVX2_INLINE static inline void fer__dw3_row_avx2(const float *row, int x, int fl, int fc, int fr, __m256i ml,
                                                      __m256i mc, __m256i mr, __m256 *l, __m256 *m, __m256 *r)
{
    *m = fer__ld256(row + x, fc, mc);
    *l = x > 0 ? fer__ld256(row + x - 1, fl, ml)
               : _mm256_blend_ps(_mm256_permutevar8x32_ps(*m, _mm256_setr_epi32(0, 0, 1, 2, 3, 4, 5, 6)),
                                 _mm256_setzero_ps(), 0x01);
    *r = fer__ld256(row + x + 1, fr, mr);
}
/* One column block x of a plane (ip in, op out): its rows two at a time. Inlined
   with constant flags for the blocks inside the row (x > 0, x + 9 <= w: plain
   loads and stores, no tests), and with run-time ones for the edges. k: the nine
   taps, then the epilogue's scale, shift, low and high; room: floats from op to
   the end of the output (a partial vector is stored whole where it stays inside
   and acc is 0: see below). */
FER__AVX2_INLINE static inline void fer__dw3_block_avx2(const float *ip, float *op, int h, int w, int x, int fl,
                                                        int fc, int fr, const __m256 *k, int acc, size_t room)
{
    __m256i ml = fer__mask256(w - x + 1), mc = fer__mask256(w - x), mr = fer__mask256(w - x - 1);
    int y, j;
    for (y = 0; y < h; y += 2) {   /* output rows y and y + 1 from input rows y - 1 .. y + 2 */
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, l, m, r;
        int two = y + 1 < h;
        /* each row's three taps one short chain, the rows' sums added (one chain
           of nine FMAs a row was latency-bound) */
#define FER__DW3TAP(t) _mm256_fmadd_ps(k[t], l, _mm256_fmadd_ps(k[t + 1], m, _mm256_mul_ps(k[t + 2], r)))
        if (y > 0) {
            fer__dw3_row_avx2(ip + (size_t)(y - 1) * w, x, fl, fc, fr, ml, mc, mr, &l, &m, &r);
            a0 = FER__DW3TAP(0);
        }
        fer__dw3_row_avx2(ip + (size_t)y * w, x, fl, fc, fr, ml, mc, mr, &l, &m, &r);
        a0 = _mm256_add_ps(a0, FER__DW3TAP(3));
        a1 = FER__DW3TAP(0);
        if (two) {
            fer__dw3_row_avx2(ip + (size_t)(y + 1) * w, x, fl, fc, fr, ml, mc, mr, &l, &m, &r);
            a0 = _mm256_add_ps(a0, FER__DW3TAP(6));
            a1 = _mm256_add_ps(a1, FER__DW3TAP(3));
            if (y + 2 < h) {
                fer__dw3_row_avx2(ip + (size_t)(y + 2) * w, x, fl, fc, fr, ml, mc, mr, &l, &m, &r);
                a1 = _mm256_add_ps(a1, FER__DW3TAP(6));
            }
        }
#undef FER__DW3TAP
        for (j = 0; j <= two; j++) {
            size_t at = (size_t)(y + j) * w + x;
            __m256 v = _mm256_min_ps(_mm256_max_ps(_mm256_fmadd_ps(j ? a1 : a0, k[9], k[10]), k[11]), k[12]);
            if (acc) v = _mm256_add_ps(v, fer__ld256(op + at, fc, mc));
            /* a partial vector: a full store, its last lanes over the next row's
               first ones, which the blocks to its left (or the next plane) write
               after it (AMD's masked store is microcoded: 192 planes of 12x12,
               44 -> 36 us); masked where it would leave the buffer, or where those
               lanes hold sums to add to */
            fer__st256(op + at, fc || (!acc && at + 8 <= room), mc, v);
        }
    }
}
/* Plane pl reads input plane pl / share (share 1: a depthwise conv; cout: a
   one-channel stem, whose cout output planes share the sample's input plane)
   into channel pl % cin. */
FER__AVX2 static void fer__dw3_same_share_avx2(int planes, int cin, int share, int h, int w, float *out,
                                               const float *in, const float *wt, int flip, const fer__epi *e, int acc)
{
    int pl, x, t, hw = h * w;
    for (pl = 0; pl < planes; pl++) {
        int c = pl - pl / cin * cin;
        const float *ip = in + (size_t)(pl / share) * hw, *kc = wt + (size_t)c * 9;
        float *op = out + (size_t)pl * hw;
        size_t room = (size_t)(planes - pl) * hw;
        __m256 k[13];
        for (t = 0; t < 9; t++) k[t] = _mm256_set1_ps(kc[flip ? 8 - t : t]);   /* flipped: the input gradient */
        k[9] = _mm256_set1_ps(e && e->scale ? e->scale[c] : 1.0f);
        k[10] = _mm256_set1_ps(e && e->shift ? e->shift[c] : 0.0f);
        k[11] = _mm256_set1_ps(e && e->act ? 0.0f : -INFINITY);
        k[12] = _mm256_set1_ps(e && e->act == 2 ? 6.0f : INFINITY);
        /* right to left: see the store */
        x = (w - 1) / 8 * 8;
        for (; x > 0 && x + 9 > w; x -= 8) fer__dw3_block_avx2(ip, op, h, w, x, x + 7 <= w, x + 8 <= w, 0, k, acc, room);
        for (; x > 0; x -= 8) fer__dw3_block_avx2(ip, op, h, w, x, 1, 1, 1, k, acc, room);
        if (w >= 9) fer__dw3_block_avx2(ip, op, h, w, 0, 1, 1, 1, k, acc, room);
        else fer__dw3_block_avx2(ip, op, h, w, 0, w >= 7, w >= 8, 0, k, acc, room);
    }
}
/* the depthwise conv (the arguments of fer__dw3_same_avx512) */
FER__AVX2 static void fer__dw3_same_avx2(int planes, int cin, int h, int w, float *out, const float *in,
                                         const float *wt, int flip, const fer__epi *e, int acc)
{
    fer__dw3_same_share_avx2(planes, cin, 1, h, w, out, in, wt, flip, e, acc);
}
/* The AVX2 twin of fer__dw3_same_dw_avx512 (same arguments): nine sums of dy
   times the input rows' three column-shifted loads of fer__dw3_same_avx2, dy's
   lanes past a row's end loaded as zeros (the 16 planes of 48x48 of a batch of
   32 took 1.9 ms padding each plane, then correlating it). */
/* One column block of fer__dw3_same_dw_avx2, inlined with constant flags for
   the blocks inside the row (as fer__dw3_block_avx2); a[9]: the sums. */
FER__AVX2_INLINE static inline void fer__dw3_dw_block_avx2(const float *ip, const float *dp, int h, int w, int x,
                                                           int fl, int fc, int fr, __m256 *a)
{
    __m256i ml = fer__mask256(w - x + 1), mc = fer__mask256(w - x), mr = fer__mask256(w - x - 1);
    int y;
    for (y = 0; y < h; y++) {
        __m256 d = fer__ld256(dp + (size_t)y * w + x, fc, mc), l, m, r;
        if (y > 0) {
            fer__dw3_row_avx2(ip + (size_t)(y - 1) * w, x, fl, fc, fr, ml, mc, mr, &l, &m, &r);
            a[0] = _mm256_fmadd_ps(d, l, a[0]); a[1] = _mm256_fmadd_ps(d, m, a[1]); a[2] = _mm256_fmadd_ps(d, r, a[2]);
        }
        fer__dw3_row_avx2(ip + (size_t)y * w, x, fl, fc, fr, ml, mc, mr, &l, &m, &r);
        a[3] = _mm256_fmadd_ps(d, l, a[3]); a[4] = _mm256_fmadd_ps(d, m, a[4]); a[5] = _mm256_fmadd_ps(d, r, a[5]);
        if (y + 1 < h) {
            fer__dw3_row_avx2(ip + (size_t)(y + 1) * w, x, fl, fc, fr, ml, mc, mr, &l, &m, &r);
            a[6] = _mm256_fmadd_ps(d, l, a[6]); a[7] = _mm256_fmadd_ps(d, m, a[7]); a[8] = _mm256_fmadd_ps(d, r, a[8]);
        }
    }
}
FER__AVX2 static void fer__dw3_same_dw_avx2(int planes, int cin, int share, int h, int w, float *dw,
                                            const float *dy, const float *in)
{
    int hw = h * w, pl, c, x, t;
    for (pl = c = 0; pl < planes; pl++, c = c + 1 == cin ? 0 : c + 1) {
        const float *ip = in + (size_t)(pl / share) * hw, *dp = dy + (size_t)pl * hw;
        float *dwc = dw + (size_t)c * 9, s[8];
        __m256 a[9];
        for (t = 0; t < 9; t++) a[t] = _mm256_setzero_ps();
        if (w >= 9) fer__dw3_dw_block_avx2(ip, dp, h, w, 0, 1, 1, 1, a);
        else fer__dw3_dw_block_avx2(ip, dp, h, w, 0, w >= 7, w >= 8, 0, a);
        for (x = 8; x + 9 <= w; x += 8) fer__dw3_dw_block_avx2(ip, dp, h, w, x, 1, 1, 1, a);
        for (; x < w; x += 8) fer__dw3_dw_block_avx2(ip, dp, h, w, x, x + 7 <= w, x + 8 <= w, 0, a);
        _mm_storeu_ps(s, fer__hsum4x256(a[0], a[1], a[2], a[3]));
        _mm_storeu_ps(s + 4, fer__hsum4x256(a[4], a[5], a[6], a[7]));
        for (t = 0; t < 8; t++) dwc[t] += s[t];
        dwc[8] += fer__hsum256(a[8]);
    }
}
/* fer__dw3_s2_avx512 in AVX2: for 8 output columns from ox, input columns c0 =
   2 ox - pw .. c0 + 16 of a row, split into the even (kx = 0), odd (kx = 1) and
   next even (kx = 2) columns: two loads (masked past the row's end) split by
   fer__evod256, the third vector the first moved down a lane with column c0 + 16
   on top; at c0 = -1 (the left padding) the loads start at column 0 and the
   first vector is the odd one moved up a lane, a zero below. Each input row is
   split once, kept for the next output row. (Padding and splitting each plane
   first, then the kernel, spent 60% of the time in those two passes: 96 planes
   of 48x48 at batch 1.) */
FER__AVX2_INLINE static inline void fer__dw3_s2_cols_avx2(const float *row, int w, int c0, __m256 *x0, __m256 *x1, __m256 *x2)
{
    int b = c0 < 0 ? 0 : c0, full = b + 16 <= w;
    __m256 a = fer__ld256(row + b, full, fer__mask256(w - b)), c = fer__ld256(row + b + 8, full, fer__mask256(w - b - 8));
    __m256 ev, od;
    fer__evod256(a, c, &ev, &od);
    if (c0 < 0) {
        *x0 = _mm256_blend_ps(_mm256_permutevar8x32_ps(od, _mm256_setr_epi32(0, 0, 1, 2, 3, 4, 5, 6)),
                              _mm256_setzero_ps(), 0x01);
        *x1 = ev;
        *x2 = od;
    } else {
        __m256 nx = _mm256_set1_ps(b + 16 < w ? row[b + 16] : 0.0f);
        *x0 = ev;
        *x1 = od;
        *x2 = _mm256_blend_ps(_mm256_permutevar8x32_ps(ev, _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 0)), nx, 0x80);
    }
}
FER__AVX2_INLINE static inline void fer__dw3_s2_row_avx2(const float *ip, int h, int w, int r, int c0, __m256 *x0, __m256 *x1,
                                           __m256 *x2)
{
    if (r < 0 || r >= h) { *x0 = *x1 = *x2 = _mm256_setzero_ps(); return; }
    fer__dw3_s2_cols_avx2(ip + (size_t)r * w, w, c0, x0, x1, x2);
}
FER__AVX2 static void fer__dw3_s2_avx2(const fer_conv_geom *g, float *out, const float *in, const float *w,
                                       const fer__epi *e)
{
    int pl, oy, ox, planes = g->n * g->cin, hw = g->h * g->w, ohw = g->oh * g->ow;
    for (pl = 0; pl < planes; pl++) {
        int c = pl - pl / g->cin * g->cin;
        const float *ip = in + (size_t)pl * hw, *wc = w + (size_t)c * 9;
        float *op = out + (size_t)pl * ohw;
        __m256 k0 = _mm256_set1_ps(wc[0]), k1 = _mm256_set1_ps(wc[1]), k2 = _mm256_set1_ps(wc[2]);
        __m256 k3 = _mm256_set1_ps(wc[3]), k4 = _mm256_set1_ps(wc[4]), k5 = _mm256_set1_ps(wc[5]);
        __m256 k6 = _mm256_set1_ps(wc[6]), k7 = _mm256_set1_ps(wc[7]), k8 = _mm256_set1_ps(wc[8]);
        __m256 vs = _mm256_set1_ps(e && e->scale ? e->scale[c] : 1.0f), vb = _mm256_set1_ps(e && e->shift ? e->shift[c] : 0.0f);
        __m256 lo = _mm256_set1_ps(e && e->act ? 0.0f : -INFINITY);
        __m256 hi = _mm256_set1_ps(e && e->act == 2 ? 6.0f : INFINITY);
        for (ox = (g->ow - 1) / 8 * 8; ox >= 0; ox -= 8) {   /* right to left, as fer__dw3_same_avx2 */
            int full = g->ow - ox >= 8, c0 = 2 * ox - g->pw;
            __m256i m = fer__mask256(g->ow - ox);
            __m256 p0, p1, p2;   /* padded row 2 oy, split */
            fer__dw3_s2_row_avx2(ip, g->h, g->w, -g->ph, c0, &p0, &p1, &p2);
            for (oy = 0; oy < g->oh; oy++) {
                __m256 q0, q1, q2, r0, r1, r2, a0, a1, a2;
                fer__dw3_s2_row_avx2(ip, g->h, g->w, 2 * oy + 1 - g->ph, c0, &q0, &q1, &q2);
                fer__dw3_s2_row_avx2(ip, g->h, g->w, 2 * oy + 2 - g->ph, c0, &r0, &r1, &r2);
                a0 = _mm256_fmadd_ps(k6, r0, _mm256_fmadd_ps(k3, q0, _mm256_mul_ps(k0, p0)));
                a1 = _mm256_fmadd_ps(k7, r1, _mm256_fmadd_ps(k4, q1, _mm256_mul_ps(k1, p1)));
                a2 = _mm256_fmadd_ps(k8, r2, _mm256_fmadd_ps(k5, q2, _mm256_mul_ps(k2, p2)));
                a0 = _mm256_add_ps(_mm256_add_ps(a0, a1), a2);
                a0 = _mm256_min_ps(_mm256_max_ps(_mm256_fmadd_ps(a0, vs, vb), lo), hi);
                /* a partial vector: a full store over what is written after it (as
                   fer__dw3_same_avx2) */
                fer__st256(op + (size_t)oy * g->ow + ox,
                           full || (size_t)pl * ohw + (size_t)oy * g->ow + ox + 8 <= (size_t)planes * ohw, m, a0);
                p0 = r0; p1 = r1; p2 = r2;
            }
        }
    }
}
/* dY row r at dyp + (r + 1) * q + 1, a zero row and column around it (the
   stride-2 depthwise input gradients' reads) */
static void fer__dw_s2_dy_pad(const fer_conv_geom *g, const float *d, float *dyp, int q)
{
    int y;
    memset(dyp, 0, sizeof(float) * (size_t)q);
    memset(dyp + (size_t)(g->oh + 1) * q, 0, sizeof(float) * (size_t)q);
    for (y = 0; y < g->oh; y++) {
        float *r = dyp + (size_t)(y + 1) * q;
        r[0] = 0.0f;
        memcpy(r + 1, d + (size_t)y * g->ow, sizeof(float) * (size_t)g->ow);
        memset(r + 1 + g->ow, 0, sizeof(float) * (size_t)(q - 1 - g->ow));
    }
}
/* The AVX2 twin of fer__dw3_s2_dw_avx512: dwc += the 3x3 stride-2 weight gradient
   of one plane ip from dY plane d, the rows split as in fer__dw3_s2_avx2, each dY
   vector loaded once for the nine taps (96 planes of 48x48 at batch 32 padded,
   split and correlated each plane: 17 ms of mobilenetv2_lite's 100 ms backward
   went to its three stride-2 depthwise convs). */
FER__AVX2 static void fer__dw3_s2_dw_avx2(const fer_conv_geom *g, float *dwc, const float *d, const float *ip)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0;
    int oy, ox;
    for (ox = 0; ox < g->ow; ox += 8) {
        int full = g->ow - ox >= 8, c0 = 2 * ox - g->pw;
        __m256i m = fer__mask256(g->ow - ox);
        for (oy = 0; oy < g->oh; oy++) {
            __m256 dv = fer__ld256(d + (size_t)oy * g->ow + ox, full, m), x0, x1, x2;
            int r = 2 * oy - g->ph;
#define FER__S2ROW(R, A0, A1, A2) \
            if ((R) >= 0 && (R) < g->h) { \
                fer__dw3_s2_cols_avx2(ip + (size_t)(R) * g->w, g->w, c0, &x0, &x1, &x2); \
                A0 = _mm256_fmadd_ps(dv, x0, A0); A1 = _mm256_fmadd_ps(dv, x1, A1); A2 = _mm256_fmadd_ps(dv, x2, A2); \
            }
            FER__S2ROW(r, a0, a1, a2)
            FER__S2ROW(r + 1, a3, a4, a5)
            FER__S2ROW(r + 2, a6, a7, a8)
#undef FER__S2ROW
        }
    }
    {
        float t[8];
        _mm_storeu_ps(t, fer__hsum4x256(a0, a1, a2, a3));
        _mm_storeu_ps(t + 4, fer__hsum4x256(a4, a5, a6, a7));
        dwc[0] += t[0]; dwc[1] += t[1]; dwc[2] += t[2]; dwc[3] += t[3];
        dwc[4] += t[4]; dwc[5] += t[5]; dwc[6] += t[6]; dwc[7] += t[7];
        dwc[8] += fer__hsum256(a8);
    }
}
/* The AVX2 twin of fer__dw_s2_dx3_avx512 (same arguments, same phases): 8 pairs
   of output columns at a time, interleaved by fer__interleave256; a partial pair
   of vectors stored whole over the rows of this plane written after it when
   assigning (AMD's masked store is microcoded), masked otherwise. */
FER__AVX2 static void fer__dw_s2_dx3_avx2(const fer_conv_geom *g, float *dc, const float *d, const float *w,
                                          float *buf, int assign)
{
    int q = g->ow + 34, y, x, t;
    float *dyp = buf;
    __m256 k[9];
    for (t = 0; t < 9; t++) k[t] = _mm256_set1_ps(w[t]);
    fer__dw_s2_dy_pad(g, d, dyp, q);
    for (y = 0; y < g->h; y++) {
        int iy = y + g->ph, a = iy >> 1, odd = iy & 1;
        const float *r0 = dyp + (size_t)(a + 1) * q + 1, *r1 = r0 - q;   /* dY rows a, a-1 */
        const __m256 *k0 = k + (odd ? 3 : 0), *k2 = k + 6;
        float *o = dc + (size_t)y * g->w;
        for (x = 0; x < g->w; x += 16) {
            __m256 p[2], v0, v1;
            int nc = g->w - x > 16 ? 16 : g->w - x;
            int whole = nc == 16 || (assign && (size_t)y * g->w + x + 16 <= (size_t)g->h * g->w);
            __m256i m0 = fer__mask256(nc), m1 = fer__mask256(nc - 8);
            for (t = 0; t < 2; t++) {   /* padded column 2(b + x/2) + pw + t = 2c + parity */
                int col = x + g->pw + t, c = col >> 1;
                __m256 acc;
                if (col & 1) {
                    acc = _mm256_mul_ps(k0[1], _mm256_loadu_ps(r0 + c));
                    if (!odd) acc = _mm256_fmadd_ps(k2[1], _mm256_loadu_ps(r1 + c), acc);
                } else {
                    acc = _mm256_fmadd_ps(k0[2], _mm256_loadu_ps(r0 + c - 1), _mm256_mul_ps(k0[0], _mm256_loadu_ps(r0 + c)));
                    if (!odd) {
                        acc = _mm256_fmadd_ps(k2[0], _mm256_loadu_ps(r1 + c), acc);
                        acc = _mm256_fmadd_ps(k2[2], _mm256_loadu_ps(r1 + c - 1), acc);
                    }
                }
                p[t] = acc;
            }
            fer__interleave256(p[0], p[1], &v0, &v1);
            if (!assign) {
                v0 = _mm256_add_ps(v0, fer__ld256(o + x, nc >= 8, m0));
                v1 = _mm256_add_ps(v1, fer__ld256(o + x + 8, nc >= 16, m1));
            }
            fer__st256(o + x, whole || nc >= 8, m0, v0);
            if (nc > 8) fer__st256(o + x + 8, whole, m1, v1);
        }
    }
}
/* The AVX2 twins of fer__dw_s2_dw_avx512 and fer__interleave_avx512. */
FER__AVX2 static void fer__dw_s2_dw_avx2(float *dw, const float *d, int oh, int ow, const float *e,
                                         const float *o, int ew, int kh, int kw)
{
    int y, x, ky, kx;
    for (ky = 0; ky < kh; ky++)
        for (kx = 0; kx < kw; kx++) {
            const float *src = ((kx & 1) ? o : e) + (size_t)ky * ew + kx / 2;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (y = 0; y < oh; y++)
                for (x = 0; x < ow; x += 8) {
                    int full = ow - x >= 8;
                    __m256i m = fer__mask256(ow - x);
                    __m256 p = _mm256_mul_ps(fer__ld256(d + (size_t)y * ow + x, full, m),
                                             fer__ld256(src + (size_t)2 * y * ew + x, full, m));
                    switch (y & 3) {
                    case 0: a0 = _mm256_add_ps(a0, p); break;
                    case 1: a1 = _mm256_add_ps(a1, p); break;
                    case 2: a2 = _mm256_add_ps(a2, p); break;
                    default: a3 = _mm256_add_ps(a3, p); break;
                    }
                }
            dw[ky * kw + kx] += fer__hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
        }
}
FER__AVX2 static void fer__interleave_avx2(float *dst, int n, const float *e, const float *o)
{
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 r0, r1;
        fer__interleave256(_mm256_loadu_ps(e + i / 2), _mm256_loadu_ps(o + i / 2), &r0, &r1);
        _mm256_storeu_ps(dst + i, r0);
        _mm256_storeu_ps(dst + i + 8, r1);
    }
    for (; i < n; i++) dst[i] = (i & 1) ? o[i / 2] : e[i / 2];
}
/* The lanes of x[off .. off+15] that lie in a row of w floats (off >= -16), as
   fer__row_ld takes them: for off < 0 the row's first floats go to lanes -off..
   by an expanding load from the row's start (no pointer before it is formed). */
static __mmask16 fer__row_mask(int w, int off)
{
    int hi = w - off;
    unsigned m = hi <= 0 ? 0u : hi >= 16 ? 0xFFFFu : (1u << hi) - 1u;
    return (__mmask16)(off < 0 ? m & (0xFFFFu << -off) : m);
}
FER__AVX512 static inline __m512 fer__row_ld(const float *row, int off, __mmask16 m)
{
    return off < 0 ? _mm512_maskz_expandloadu_ps(m, row) : _mm512_maskz_loadu_ps(m, row + off);
}
/* x[off .. off+15] of a row of w floats, zero outside it (off >= -16). */
FER__AVX512 static inline __m512 fer__row16_avx512(const float *row, int w, int off)
{
    __mmask16 m = fer__row_mask(w, off);
    return m ? fer__row_ld(row, off, m) : _mm512_setzero_ps();
}

/* 3x3 depthwise convs straight from the unpadded planes (AVX-512), for the shapes
   of the zoo: stride 1 with "same" padding, where output position p of the
   flattened plane reads input p + (ky-1)w + kx-1, so 16 neighbouring positions
   (across rows too: a 6x6 plane is three vectors, not six) are one masked load per
   tap; the masks (the tap lies inside the plane) depend on the geometry only and
   are made once per block of FER__DW3_BLOCK vectors for all planes. */
#define FER__DW3_BLOCK 64
static void fer__dw3_masks(int h, int w, int b0, int nb, __mmask16 (*mk)[9])
{
    int j, i, t;
    for (j = 0; j < nb; j++) {
        unsigned row[3] = {0, 0, 0}, col[3] = {0, 0, 0};
        int y = 16 * (b0 + j) / w, x = 16 * (b0 + j) % w;
        for (i = 0; i < 16 && y < h; i++) {   /* lane i at (y, x) */
            row[0] |= (unsigned)(y > 0) << i;
            row[1] |= 1u << i;
            row[2] |= (unsigned)(y < h - 1) << i;
            col[0] |= (unsigned)(x > 0) << i;
            col[1] |= 1u << i;
            col[2] |= (unsigned)(x < w - 1) << i;
            if (++x == w) { x = 0; y++; }
        }
        for (t = 0; t < 9; t++) mk[j][t] = (__mmask16)(row[t / 3] & col[t % 3]);
    }
}
/* fer__dw3_masks in vectors: lane i of vector b0 + j is plane position p =
   16 (b0 + j) + i at row y = floor((p + 1/2) / w) (exact in floats for planes under
   2^20 floats, larger ones take the scalar loop) and column p - y w. */
FER__AVX512 static void fer__dw3_masks_avx512(int h, int w, int b0, int nb, __mmask16 (*mk)[9])
{
    const __m512 iota = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512 vw = _mm512_set1_ps((float)w), rw = _mm512_set1_ps(1.0f / (float)w), half = _mm512_set1_ps(0.5f);
    __m512 zero = _mm512_setzero_ps(), hm1 = _mm512_set1_ps((float)(h - 1)), wm1 = _mm512_set1_ps((float)(w - 1));
    int j, t;
    if ((double)h * w >= 1048576.0) { fer__dw3_masks(h, w, b0, nb, mk); return; }
    for (j = 0; j < nb; j++) {
        __m512 pos = _mm512_add_ps(_mm512_set1_ps((float)(16 * (b0 + j))), iota);
        __m512 y = _mm512_roundscale_ps(_mm512_mul_ps(_mm512_add_ps(pos, half), rw), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
        __m512 x = _mm512_fnmadd_ps(y, vw, pos);
        __mmask16 in = _mm512_cmp_ps_mask(y, hm1, _CMP_LE_OQ), row[3], col[3];
        row[0] = in & _mm512_cmp_ps_mask(y, zero, _CMP_GT_OQ);
        row[1] = in;
        row[2] = in & _mm512_cmp_ps_mask(y, hm1, _CMP_LT_OQ);
        col[0] = _mm512_cmp_ps_mask(x, zero, _CMP_GT_OQ);
        col[1] = (__mmask16)0xFFFF;
        col[2] = _mm512_cmp_ps_mask(x, wm1, _CMP_LT_OQ);
        for (t = 0; t < 9; t++) mk[j][t] = (__mmask16)(row[t / 3] & col[t % 3]);
    }
}
/* the taps' offsets in a plane of rows of w floats */
static void fer__dw3_offsets(int w, int *off)
{
    int t;
    for (t = 0; t < 9; t++) off[t] = (t / 3 - 1) * w + t % 3 - 1;
}
/* the full vectors of the nine taps at buffer position p lie in a buffer of end floats */
static int fer__dw3_inside(ptrdiff_t p, int w, ptrdiff_t end)
{
    return p >= w + 1 && p + w + 17 <= end;
}
/* plane[off + lane] of a plane of hw floats under mask m, which holds only lanes
   inside the plane and at least one (so off >= -16) */
FER__AVX512 static inline __m512 fer__dw3_ld(const float *plane, int hw, int off, __mmask16 m)
{
    if (off >= 0) return _mm512_maskz_loadu_ps(m, plane + off);
    return _mm512_maskz_mov_ps(m, fer__row16_avx512(plane, hw, off));
}
/* the nine taps' vectors at position p of a plane, each load checked (for the
   vectors at the ends of the buffer) */
FER__AVX512 static void fer__dw3_taps_checked(const float *ip, int hw, int p, const int *off, const __mmask16 *m,
                                              __m512 *v)
{
    int t;
    for (t = 0; t < 9; t++) v[t] = m[t] ? fer__dw3_ld(ip, hw, p + off[t], m[t]) : _mm512_setzero_ps();
}
/* their correlation with taps wc (flip: rotated 180 degrees) */
FER__AVX512 static __m512 fer__dw3_edge_avx512(const float *ip, int hw, int p, const int *off, const __mmask16 *m,
                                               const float *wc, int flip)
{
    __m512 v[9], a = _mm512_setzero_ps();
    int t;
    fer__dw3_taps_checked(ip, hw, p, off, m, v);
    for (t = 0; t < 9; t++) a = _mm512_fmadd_ps(_mm512_set1_ps(wc[flip ? 8 - t : t]), v[t], a);
    return a;
}
/* Rows of 16 floats or more (12 or more when the output is assigned) run row by
   row (fer__dw3_rows_avx512): for 16 output columns from x, input row r's columns
   x-1, x and x+1 are three loads (the first block's left one a lane shift of the
   middle one), shared by the two output rows a pass makes: 12 loads for two
   vectors of output where the flattened kernel does 18 masked ones, and no mask
   per tap. On a Zen 5, best of 400 at batch 1 with a ReLU6 epilogue: 16 planes of
   48x48 20.6 -> 10.2 us, 8 of 48x48 11.0 -> 5.0, 32 of 24x24 9.0 -> 6.7, 96 of
   24x24 27.2 -> 19.7, 192 of 12x12 15.4 -> 11.3; but adding into 12x12 planes
   15.4 -> 17.5 (a row's masked load reads the 64 bytes the last masked store
   wrote part of, which stalls it), so those stay flattened. */
#define FER__DW3_ROWS_W 16
#define FER__DW3_ROWS_W_ASSIGN 12
FER__AVX512_INLINE static inline void fer__dw3_row512(const float *row, int x, __mmask16 ml, __mmask16 mc,
                                                      __mmask16 mr, __m512 *l, __m512 *m, __m512 *r)
{
    *m = _mm512_maskz_loadu_ps(mc, row + x);
    *l = x > 0 ? _mm512_maskz_loadu_ps(ml, row + x - 1)
               : _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(*m), _mm512_setzero_si512(), 15));
    *r = _mm512_maskz_loadu_ps(mr, row + x + 1);
}
/* One column block x of a plane: output rows two at a time from input rows
   y - 1 .. y + 2; k: the nine taps, then the epilogue's scale, shift, low, high. */
FER__AVX512_INLINE static inline void fer__dw3_block512(const float *ip, float *op, int h, int w, int x,
                                                        const __m512 *k, int acc)
{
    __mmask16 ml = fer__row_mask(w, x - 1), mc = fer__row_mask(w, x), mr = fer__row_mask(w, x + 1);
    int y, j;
    for (y = 0; y < h; y += 2) {
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, l, m, r;
        int two = y + 1 < h;
#define FER__DW3TAP512(t) _mm512_fmadd_ps(k[t], l, _mm512_fmadd_ps(k[t + 1], m, _mm512_mul_ps(k[t + 2], r)))
        if (y > 0) {
            fer__dw3_row512(ip + (size_t)(y - 1) * w, x, ml, mc, mr, &l, &m, &r);
            a0 = FER__DW3TAP512(0);
        }
        fer__dw3_row512(ip + (size_t)y * w, x, ml, mc, mr, &l, &m, &r);
        a0 = _mm512_add_ps(a0, FER__DW3TAP512(3));
        a1 = FER__DW3TAP512(0);
        if (two) {
            fer__dw3_row512(ip + (size_t)(y + 1) * w, x, ml, mc, mr, &l, &m, &r);
            a0 = _mm512_add_ps(a0, FER__DW3TAP512(6));
            a1 = _mm512_add_ps(a1, FER__DW3TAP512(3));
            if (y + 2 < h) {
                fer__dw3_row512(ip + (size_t)(y + 2) * w, x, ml, mc, mr, &l, &m, &r);
                a1 = _mm512_add_ps(a1, FER__DW3TAP512(6));
            }
        }
#undef FER__DW3TAP512
        for (j = 0; j <= two; j++) {
            float *o = op + (size_t)(y + j) * w + x;
            __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_fmadd_ps(j ? a1 : a0, k[9], k[10]), k[11]), k[12]);
            if (acc) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mc, o));
            _mm512_mask_storeu_ps(o, mc, v);
        }
    }
}
FER__AVX512 static void fer__dw3_rows_avx512(int planes, int cin, int h, int w, float *out, const float *in,
                                             const float *wt, int flip, const fer__epi *e, int acc)
{
    int pl, c, x, t, hw = h * w;
    for (pl = c = 0; pl < planes; pl++, c = c + 1 == cin ? 0 : c + 1) {
        const float *ip = in + (size_t)pl * hw, *kc = wt + (size_t)c * 9;
        float *op = out + (size_t)pl * hw;
        __m512 k[13];
        for (t = 0; t < 9; t++) k[t] = _mm512_set1_ps(kc[flip ? 8 - t : t]);
        k[9] = _mm512_set1_ps(e && e->scale ? e->scale[c] : 1.0f);
        k[10] = _mm512_set1_ps(e && e->shift ? e->shift[c] : 0.0f);
        k[11] = _mm512_set1_ps(e && e->act ? 0.0f : -INFINITY);
        k[12] = _mm512_set1_ps(e && e->act == 2 ? 6.0f : INFINITY);
        for (x = 0; x < w; x += 16) fer__dw3_block512(ip, op, h, w, x, k, acc);
    }
}
/* out (= or +=) the "same" 3x3 depthwise correlation of each of `planes` h x w
   planes with its channel's taps (plane i is channel i % cin; flip: the taps
   rotated 180 degrees, the input gradient's), then epilogue e (NULL: none). A
   tap is one FMA with merge masking on a full vector read from memory, which may
   reach into the planes beside its own (the lanes off the mask are dropped); the
   vectors at the ends of the buffer, where it would leave it, check each load. */
FER__AVX512 static void fer__dw3_same_avx512(int planes, int cin, int h, int w, float *out, const float *in,
                                             const float *wt, int flip, const fer__epi *e, int accumulate)
{
    __mmask16 mk[FER__DW3_BLOCK][9];
    int hw = h * w, nv = (hw + 15) / 16, b0, nb, pl, c, j, off[9];
    if (w >= FER__DW3_ROWS_W || (w >= FER__DW3_ROWS_W_ASSIGN && !accumulate)) {
        fer__dw3_rows_avx512(planes, cin, h, w, out, in, wt, flip, e, accumulate);
        return;
    }
    fer__dw3_offsets(w, off);
    for (b0 = 0; b0 < nv; b0 += nb) {
        nb = nv - b0 < FER__DW3_BLOCK ? nv - b0 : FER__DW3_BLOCK;
        fer__dw3_masks_avx512(h, w, b0, nb, mk);
        for (pl = c = 0; pl < planes; pl++, c = c + 1 == cin ? 0 : c + 1) {   /* c = pl % cin */
            const float *ip = in + (size_t)pl * hw, *wc = wt + (size_t)c * 9;
            float *op = out + (size_t)pl * hw;
            ptrdiff_t at = (ptrdiff_t)pl * hw, end = (ptrdiff_t)planes * hw;
            __m512 k[9], vs = _mm512_set1_ps(e && e->scale ? e->scale[c] : 1.0f);
            __m512 vb = _mm512_set1_ps(e && e->shift ? e->shift[c] : 0.0f), z = _mm512_setzero_ps();
            __m512 v6 = _mm512_set1_ps(e && e->act == 2 ? 6.0f : INFINITY);
            /* (one statement per tap: a loop over k[] would leave it in memory) */
            k[0] = _mm512_set1_ps(wc[flip ? 8 : 0]); k[1] = _mm512_set1_ps(wc[flip ? 7 : 1]);
            k[2] = _mm512_set1_ps(wc[flip ? 6 : 2]); k[3] = _mm512_set1_ps(wc[flip ? 5 : 3]);
            k[4] = _mm512_set1_ps(wc[4]);            k[5] = _mm512_set1_ps(wc[flip ? 3 : 5]);
            k[6] = _mm512_set1_ps(wc[flip ? 2 : 6]); k[7] = _mm512_set1_ps(wc[flip ? 1 : 7]);
            k[8] = _mm512_set1_ps(wc[flip ? 0 : 8]);
            for (j = 0; j < nb; j++) {
                int p = 16 * (b0 + j);
                const __mmask16 *m = mk[j];
                __m512 a0, a1, a2;
                if (!fer__dw3_inside(at + p, w, end)) {
                    a0 = fer__dw3_edge_avx512(ip, hw, p, off, m, wc, flip);
                    a1 = a2 = z;
                } else {   /* lanes off the mask keep the sum: each tap one FMA reading memory */
                    const float *q = ip + p;
                    a0 = _mm512_maskz_mul_ps(m[0], k[0], _mm512_loadu_ps(q - w - 1));
                    a1 = _mm512_maskz_mul_ps(m[1], k[1], _mm512_loadu_ps(q - w));
                    a2 = _mm512_maskz_mul_ps(m[2], k[2], _mm512_loadu_ps(q - w + 1));
                    a0 = _mm512_mask3_fmadd_ps(k[3], _mm512_loadu_ps(q - 1), a0, m[3]);
                    a1 = _mm512_mask3_fmadd_ps(k[4], _mm512_loadu_ps(q), a1, m[4]);
                    a2 = _mm512_mask3_fmadd_ps(k[5], _mm512_loadu_ps(q + 1), a2, m[5]);
                    a0 = _mm512_mask3_fmadd_ps(k[6], _mm512_loadu_ps(q + w - 1), a0, m[6]);
                    a1 = _mm512_mask3_fmadd_ps(k[7], _mm512_loadu_ps(q + w), a1, m[7]);
                    a2 = _mm512_mask3_fmadd_ps(k[8], _mm512_loadu_ps(q + w + 1), a2, m[8]);
                }
                a0 = _mm512_add_ps(_mm512_add_ps(a0, a1), a2);
                if (accumulate) a0 = _mm512_add_ps(a0, _mm512_maskz_loadu_ps(m[4], op + p));
                if (e) {
                    a0 = _mm512_fmadd_ps(a0, vs, vb);
                    if (e->act) a0 = _mm512_min_ps(_mm512_max_ps(a0, z), v6);
                }
                _mm512_mask_storeu_ps(op + p, m[4], a0);   /* the centre tap's mask: the plane */
            }
        }
    }
}
/* A 3x3 "same" stride-1 conv of one input channel (the zoo's grey-image stems):
   the nine taps of 16 positions, loaded once as the depthwise kernel loads them,
   serve every output channel with nine FMAs each (as a GEMM its K of 9 made it
   store-bound: 1 -> 16 channels on 48x48, 20.8 us). */
FER__AVX512 static void fer__conv3_c1_avx512(const fer_conv_geom *g, float *out, const float *in, const float *w,
                                             const fer__epi *e)
{
    __mmask16 mk[FER__DW3_BLOCK][9];
    int h = g->h, wd = g->w, hw = h * wd, nv = (hw + 15) / 16, b0, nb, s, j, co, off[9];
    fer__dw3_offsets(wd, off);
    for (b0 = 0; b0 < nv; b0 += nb) {
        nb = nv - b0 < FER__DW3_BLOCK ? nv - b0 : FER__DW3_BLOCK;
        fer__dw3_masks_avx512(h, wd, b0, nb, mk);
        for (s = 0; s < g->n; s++) {
            const float *ip = in + (size_t)s * hw;
            float *os = out + (size_t)s * g->cout * hw;
            for (j = 0; j < nb; j++) {
                int p = 16 * (b0 + j);
                const __mmask16 *m = mk[j];
                __m512 v[9];
                if (!fer__dw3_inside(p, wd, hw)) fer__dw3_taps_checked(ip, hw, p, off, m, v);
                else {   /* (one statement per tap: a loop would leave v[] in memory) */
                    const float *q = ip + p;
                    v[0] = _mm512_maskz_loadu_ps(m[0], q - wd - 1); v[1] = _mm512_maskz_loadu_ps(m[1], q - wd);
                    v[2] = _mm512_maskz_loadu_ps(m[2], q - wd + 1); v[3] = _mm512_maskz_loadu_ps(m[3], q - 1);
                    v[4] = _mm512_maskz_loadu_ps(m[4], q);          v[5] = _mm512_maskz_loadu_ps(m[5], q + 1);
                    v[6] = _mm512_maskz_loadu_ps(m[6], q + wd - 1); v[7] = _mm512_maskz_loadu_ps(m[7], q + wd);
                    v[8] = _mm512_maskz_loadu_ps(m[8], q + wd + 1);
                }
                for (co = 0; co < g->cout; co++) {
                    const float *wc = w + (size_t)co * 9;
                    __m512 a0 = _mm512_mul_ps(_mm512_set1_ps(wc[0]), v[0]), a1 = _mm512_mul_ps(_mm512_set1_ps(wc[1]), v[1]);
                    __m512 a2 = _mm512_mul_ps(_mm512_set1_ps(wc[2]), v[2]);
                    a0 = _mm512_fmadd_ps(_mm512_set1_ps(wc[3]), v[3], a0);
                    a1 = _mm512_fmadd_ps(_mm512_set1_ps(wc[4]), v[4], a1);
                    a2 = _mm512_fmadd_ps(_mm512_set1_ps(wc[5]), v[5], a2);
                    a0 = _mm512_fmadd_ps(_mm512_set1_ps(wc[6]), v[6], a0);
                    a1 = _mm512_fmadd_ps(_mm512_set1_ps(wc[7]), v[7], a1);
                    a2 = _mm512_fmadd_ps(_mm512_set1_ps(wc[8]), v[8], a2);
                    a0 = _mm512_add_ps(_mm512_add_ps(a0, a1), a2);
                    if (e) a0 = fer__epi512(a0, e, co);
                    _mm512_mask_storeu_ps(os + (size_t)co * hw + p, m[4], a0);
                }
            }
        }
    }
}
/* dw[c][t] += the "same" 3x3 weight gradient over `planes` planes of dy: the sum
   over positions p of dy[p] * in[p + off_t] (loads as in the forward), dy plane
   pl reading input plane pl / share into channel pl % cin: share 1 for a
   depthwise conv, cout (= cin here) for a one-channel stem, where the cout planes
   of a sample share its input plane (read from L1 after the first). */
FER__AVX512 static void fer__dw3_same_dw_avx512(int planes, int cin, int share, int h, int w, float *dw,
                                                const float *dy, const float *in)
{
    __mmask16 mk[FER__DW3_BLOCK][9];
    int hw = h * w, nv = (hw + 15) / 16, b0, nb, pl, c, j, off[9];
    fer__dw3_offsets(w, off);
    for (b0 = 0; b0 < nv; b0 += nb) {
        nb = nv - b0 < FER__DW3_BLOCK ? nv - b0 : FER__DW3_BLOCK;
        fer__dw3_masks_avx512(h, w, b0, nb, mk);
        for (pl = c = 0; pl < planes; pl++, c = c + 1 == cin ? 0 : c + 1) {
            const float *ip = in + (size_t)(pl / share) * hw, *dp = dy + (size_t)pl * hw;
            float *dwc = dw + (size_t)c * 9;
            ptrdiff_t at = (ptrdiff_t)(pl / share) * hw, end = (ptrdiff_t)(planes / share) * hw;
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0;
            for (j = 0; j < nb; j++) {
                int p = 16 * (b0 + j);
                const __mmask16 *m = mk[j];
                const float *q = ip + p;
                __m512 d = _mm512_maskz_loadu_ps(m[4], dp + p);
                if (!fer__dw3_inside(at + p, w, end)) {
                    __m512 v[9];
                    fer__dw3_taps_checked(ip, hw, p, off, m, v);
                    a0 = _mm512_fmadd_ps(d, v[0], a0); a1 = _mm512_fmadd_ps(d, v[1], a1);
                    a2 = _mm512_fmadd_ps(d, v[2], a2); a3 = _mm512_fmadd_ps(d, v[3], a3);
                    a4 = _mm512_fmadd_ps(d, v[4], a4); a5 = _mm512_fmadd_ps(d, v[5], a5);
                    a6 = _mm512_fmadd_ps(d, v[6], a6); a7 = _mm512_fmadd_ps(d, v[7], a7);
                    a8 = _mm512_fmadd_ps(d, v[8], a8);
                    continue;
                }
                a0 = _mm512_mask3_fmadd_ps(d, _mm512_loadu_ps(q - w - 1), a0, m[0]);
                a1 = _mm512_mask3_fmadd_ps(d, _mm512_loadu_ps(q - w), a1, m[1]);
                a2 = _mm512_mask3_fmadd_ps(d, _mm512_loadu_ps(q - w + 1), a2, m[2]);
                a3 = _mm512_mask3_fmadd_ps(d, _mm512_loadu_ps(q - 1), a3, m[3]);
                a4 = _mm512_mask3_fmadd_ps(d, _mm512_loadu_ps(q), a4, m[4]);
                a5 = _mm512_mask3_fmadd_ps(d, _mm512_loadu_ps(q + 1), a5, m[5]);
                a6 = _mm512_mask3_fmadd_ps(d, _mm512_loadu_ps(q + w - 1), a6, m[6]);
                a7 = _mm512_mask3_fmadd_ps(d, _mm512_loadu_ps(q + w), a7, m[7]);
                a8 = _mm512_mask3_fmadd_ps(d, _mm512_loadu_ps(q + w + 1), a8, m[8]);
            }
            dwc[0] += fer__hsum512(a0); dwc[1] += fer__hsum512(a1); dwc[2] += fer__hsum512(a2);
            dwc[3] += fer__hsum512(a3); dwc[4] += fer__hsum512(a4); dwc[5] += fer__hsum512(a5);
            dwc[6] += fer__hsum512(a6); dwc[7] += fer__hsum512(a7); dwc[8] += fer__hsum512(a8);
        }
    }
}
/* 3x3 stride 2, pad 0 or 1, straight from the planes: for 16 output columns from
   ox of a row, the 33 input columns they read (from c0 = 2 ox - pw) are two vectors
   and one float, lanes outside the row zero (their fer__row_mask made once per
   column block), split into the even (kx = 0), odd (kx = 1) and next even (kx = 2)
   columns by two permutes and a lane shift. */
FER__AVX512_INLINE static inline void fer__dw3_s2_cols(const float *row, int c0, __mmask16 m0, __mmask16 m1,
                                                       __mmask16 m2, __m512 *x0, __m512 *x1, __m512 *x2)
{
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    /* c0 = -1 (the first block, pad 1): the row's first floats shifted up a lane in
       registers (an expanding load from memory is microcoded on AMD's Zen cores) */
    __m512 lo = c0 >= 0 ? _mm512_maskz_loadu_ps(m0, row + c0)
                        : _mm512_castsi512_ps(_mm512_alignr_epi32(
                              _mm512_castps_si512(_mm512_maskz_loadu_ps((__mmask16)(m0 >> 1), row)),
                              _mm512_setzero_si512(), 15));
    __m512 hi = m1 ? _mm512_maskz_loadu_ps(m1, row + c0 + 16) : _mm512_setzero_ps();
    __m512 nx = m2 ? _mm512_maskz_loadu_ps(m2, row + c0 + 32) : _mm512_setzero_ps();
    *x0 = _mm512_permutex2var_ps(lo, ev, hi);
    *x1 = _mm512_permutex2var_ps(lo, od, hi);
    *x2 = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(nx), _mm512_castps_si512(*x0), 1));
}
/* fer__dw3_s2_cols of input row r, zero where r is padding */
FER__AVX512_INLINE static inline void fer__dw3_s2_row(const float *ip, int h, int w, int r, int c0, __mmask16 m0,
                                                      __mmask16 m1, __mmask16 m2, __m512 *x0, __m512 *x1, __m512 *x2)
{
    if (r < 0 || r >= h) { *x0 = *x1 = *x2 = _mm512_setzero_ps(); return; }
    fer__dw3_s2_cols(ip + (size_t)r * w, c0, m0, m1, m2, x0, x1, x2);
}
/* Output row oy reads padded rows 2 oy, 2 oy + 1 and 2 oy + 2, and the last is the
   next row's first: each input row is split once (its columns kept in registers
   for the next output row), not three halves (2 splits per output row, not 3:
   96 planes of 48x48 at batch 1, 49 -> 30 us). The column masks are k-register
   values, not an array in memory, and the epilogue's constants are made once a
   plane (144 planes of 24x24 16.7 -> 13.1 us, 192 of 12x12 10.9 -> 8.8 on a Zen 5,
   best of 300 under load). */
FER__AVX512 static void fer__dw3_s2_avx512(const fer_conv_geom *g, float *out, const float *in, const float *w,
                                           const fer__epi *e)
{
    int pl, oy, ox, planes = g->n * g->cin, hw = g->h * g->w, ohw = g->oh * g->ow;
    for (pl = 0; pl < planes; pl++) {
        int c = pl - pl / g->cin * g->cin;
        const float *ip = in + (size_t)pl * hw, *wc = w + (size_t)c * 9;
        float *op = out + (size_t)pl * ohw;
        __m512 k0 = _mm512_set1_ps(wc[0]), k1 = _mm512_set1_ps(wc[1]), k2 = _mm512_set1_ps(wc[2]);
        __m512 k3 = _mm512_set1_ps(wc[3]), k4 = _mm512_set1_ps(wc[4]), k5 = _mm512_set1_ps(wc[5]);
        __m512 k6 = _mm512_set1_ps(wc[6]), k7 = _mm512_set1_ps(wc[7]), k8 = _mm512_set1_ps(wc[8]);
        __m512 vs = _mm512_set1_ps(e && e->scale ? e->scale[c] : 1.0f), vb = _mm512_set1_ps(e && e->shift ? e->shift[c] : 0.0f);
        __m512 vlo = e && e->act ? _mm512_setzero_ps() : _mm512_set1_ps(-INFINITY);
        __m512 vhi = _mm512_set1_ps(e && e->act == 2 ? 6.0f : INFINITY);
        for (ox = 0; ox < g->ow; ox += 16) {
            __mmask16 m = (__mmask16)(g->ow - ox >= 16 ? 0xFFFF : (1u << (g->ow - ox)) - 1u);
            int c0 = 2 * ox - g->pw;
            __mmask16 m0 = fer__row_mask(g->w, c0), m1 = fer__row_mask(g->w, c0 + 16), m2 = fer__row_mask(g->w, c0 + 32);
            __m512 p0, p1, p2;   /* padded row 2 oy, split */
            fer__dw3_s2_row(ip, g->h, g->w, -g->ph, c0, m0, m1, m2, &p0, &p1, &p2);
            for (oy = 0; oy < g->oh; oy++) {
                __m512 q0, q1, q2, r0, r1, r2, a0, a1, a2;
                fer__dw3_s2_row(ip, g->h, g->w, 2 * oy + 1 - g->ph, c0, m0, m1, m2, &q0, &q1, &q2);
                fer__dw3_s2_row(ip, g->h, g->w, 2 * oy + 2 - g->ph, c0, m0, m1, m2, &r0, &r1, &r2);
                a0 = _mm512_fmadd_ps(k6, r0, _mm512_fmadd_ps(k3, q0, _mm512_mul_ps(k0, p0)));
                a1 = _mm512_fmadd_ps(k7, r1, _mm512_fmadd_ps(k4, q1, _mm512_mul_ps(k1, p1)));
                a2 = _mm512_fmadd_ps(k8, r2, _mm512_fmadd_ps(k5, q2, _mm512_mul_ps(k2, p2)));
                a0 = _mm512_add_ps(_mm512_add_ps(a0, a1), a2);
                if (e) a0 = _mm512_min_ps(_mm512_max_ps(_mm512_fmadd_ps(a0, vs, vb), vlo), vhi);
                _mm512_mask_storeu_ps(op + (size_t)oy * g->ow + ox, m, a0);
                p0 = r0; p1 = r1; p2 = r2;
            }
        }
    }
}
/* dwc += the 3x3 stride-2 weight gradient of one plane ip, dY plane d (the
   forward's loads; each dY vector loaded once for the nine taps). */
FER__AVX512 static void fer__dw3_s2_dw_avx512(const fer_conv_geom *g, float *dwc, const float *d, const float *ip)
{
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0;
    int oy, ox;
    for (ox = 0; ox < g->ow; ox += 16) {
        __mmask16 m = (__mmask16)(g->ow - ox >= 16 ? 0xFFFF : (1u << (g->ow - ox)) - 1u);
        int c0 = 2 * ox - g->pw;
        __mmask16 m0 = fer__row_mask(g->w, c0), m1 = fer__row_mask(g->w, c0 + 16), m2 = fer__row_mask(g->w, c0 + 32);
        for (oy = 0; oy < g->oh; oy++) {
            __m512 dv = _mm512_maskz_loadu_ps(m, d + (size_t)oy * g->ow + ox), x0, x1, x2;
            int r = 2 * oy - g->ph;
#define FER__S2ROW(R, A0, A1, A2) \
            if ((R) >= 0 && (R) < g->h) { \
                fer__dw3_s2_cols(ip + (size_t)(R) * g->w, c0, m0, m1, m2, &x0, &x1, &x2); \
                A0 = _mm512_fmadd_ps(dv, x0, A0); A1 = _mm512_fmadd_ps(dv, x1, A1); A2 = _mm512_fmadd_ps(dv, x2, A2); \
            }
            FER__S2ROW(r, a0, a1, a2)
            FER__S2ROW(r + 1, a3, a4, a5)
            FER__S2ROW(r + 2, a6, a7, a8)
#undef FER__S2ROW
        }
    }
    dwc[0] += fer__hsum512(a0); dwc[1] += fer__hsum512(a1); dwc[2] += fer__hsum512(a2);
    dwc[3] += fer__hsum512(a3); dwc[4] += fer__hsum512(a4); dwc[5] += fer__hsum512(a5);
    dwc[6] += fer__hsum512(a6); dwc[7] += fer__hsum512(a7); dwc[8] += fer__hsum512(a8);
}
/* dst[2i] = e[i], dst[2i+1] = o[i] for i < n/2 (and dst[n-1] = e[n/2] when n is odd). */
FER__AVX512 static void fer__interleave_avx512(float *dst, int n, const float *e, const float *o)
{
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 a = _mm512_loadu_ps(e + i / 2), b = _mm512_loadu_ps(o + i / 2);
        _mm512_storeu_ps(dst + i, _mm512_permutex2var_ps(a, lo, b));
        _mm512_storeu_ps(dst + i + 16, _mm512_permutex2var_ps(a, hi, b));
    }
    for (; i < n; i++) dst[i] = (i & 1) ? o[i / 2] : e[i / 2];
}
#endif

/* Depthwise: out[c] = in[c] (*) w[c] for each channel, one k x k filter each, over
   the zero-padded plane. Stride 1 uses the correlations above; other strides a
   plain loop. */
static void fer__dw_forward(fer_isa isa, const fer_conv_geom *g, float *out, const float *in,
                            const float *w, const fer__epi *e, float *scratch)
{
    int s, c, oy, ox, ky, kx, pwid = g->w + 2 * g->pw, ohw = g->oh * g->ow;
#if defined(FER__X86)
    if (isa == FER_ISA_AVX512 && fer__dw3_same_any(g)) {   /* 16 planes of 48x48: 18.2 us through padded copies */
        fer__dw3_same_avx512(g->n * g->cin, g->cin, g->h, g->w, out, in, w, 0, e, 0);
        return;
    }
    if (isa == FER_ISA_AVX512 && fer__dw3_s2(g)) { fer__dw3_s2_avx512(g, out, in, w, e); return; }
    if (isa == FER_ISA_AVX2 && fer__dw3_s2(g)) { fer__dw3_s2_avx2(g, out, in, w, e); return; }
    if (isa == FER_ISA_AVX2 && fer__dw3_same_any(g)) {
        fer__dw3_same_avx2(g->n * g->cin, g->cin, g->h, g->w, out, in, w, 0, e, 0);
        return;
    }
#endif
    for (s = 0; s < g->n; s++)
        for (c = 0; c < g->cin; c++) {
            const float *wc = w + (size_t)c * g->kh * g->kw;
            float *o = out + ((size_t)s * g->cout + c) * ohw;
            float sc = e && e->scale ? e->scale[c] : 1.0f, bias = e && e->shift ? e->shift[c] : 0.0f;
            fer__pad_plane(g, in + ((size_t)s * g->cin + c) * g->h * g->w, scratch);
#if defined(FER__X86)
            if ((isa == FER_ISA_AVX512 || isa == FER_ISA_AVX2) && g->sh == 2 && g->sw == 2) {
                /* the padded plane split into its even and odd columns; the
                   epilogue runs at the store */
                int ph = g->h + 2 * g->ph, ew = (pwid + 1) / 2, y, a512 = isa == FER_ISA_AVX512;
                float *ev = scratch + (size_t)ph * pwid, *od = ev + (size_t)ph * ew;
                for (y = 0; y < ph; y++)
                    (a512 ? fer__deinterleave_avx512 : fer__deinterleave_avx2)(scratch + (size_t)y * pwid, pwid,
                                                                             ev + (size_t)y * ew, od + (size_t)y * ew);
                (a512 ? fer__dw_s2_avx512 : fer__dw_s2_avx2)(o, g->oh, g->ow, ev, od, ew, wc, g->kh, g->kw, sc, bias,
                                                             e ? e->act : 0);
                continue;
            }
#endif
            if (g->sh == 1 && g->sw == 1) {
                /* the epilogue on the plane while it is in L1 */
                fer__corr2d(isa, o, g->oh, g->ow, g->ow, scratch, pwid, wc, g->kh, g->kw, 0, 0,
                            e && e->scale ? 0.0f : bias);
                if (e && e->scale) fer__vaffine(isa, ohw, o, o, sc, bias);
                if (e && e->act) fer__vrelu(isa, e->act == 2, (size_t)ohw, o, o);
                continue;
            }
            for (oy = 0; oy < g->oh; oy++) {
                float *orow = o + (size_t)oy * g->ow;
                for (ox = 0; ox < g->ow; ox++) {
                    float a = 0.0f;
                    for (ky = 0; ky < g->kh; ky++) {
                        const float *prow = scratch + (size_t)(oy * g->sh + ky) * pwid + (size_t)ox * g->sw;
                        for (kx = 0; kx < g->kw; kx++) a += wc[ky * g->kw + kx] * prow[kx];
                    }
                    orow[ox] = e ? fer__epi_one(e, c, a) : a;
                }
            }
        }
}

#if defined(FER__X86)
/* The input gradient of one plane of a 3x3 stride-2 depthwise conv, by phase:
   padded row 2a takes dY rows a (taps ky = 0) and a-1 (ky = 2), row 2a+1 row a
   (ky = 1); in each, even column 2c takes dY columns c (kx = 0) and c-1 (kx = 2),
   odd column 2c+1 column c (kx = 1). For 16 pairs of output columns (2b, 2b+1),
   i.e. padded columns 2b+pw+t, both phases are computed and interleaved in
   registers, then written to dc (assign) or added to it. */
FER__AVX512 static void fer__dw_s2_dx3_avx512(const fer_conv_geom *g, float *dc, const float *d, const float *w,
                                              float *buf, int assign)
{
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    int q = g->ow + 34, y, x, t;
    float *dyp = buf;
    __m512 k[9];
    for (t = 0; t < 9; t++) k[t] = _mm512_set1_ps(w[t]);
    fer__dw_s2_dy_pad(g, d, dyp, q);
    for (y = 0; y < g->h; y++) {
        int iy = y + g->ph, a = iy >> 1, odd = iy & 1;
        const float *r0 = dyp + (size_t)(a + 1) * q + 1, *r1 = r0 - q;   /* dY rows a, a-1 */
        /* taps of this row: ky = 1 (odd), else ky = 0 on row a and ky = 2 on row a-1 */
        const __m512 *k0 = k + (odd ? 3 : 0), *k2 = k + 6;
        float *o = dc + (size_t)y * g->w;
        for (x = 0; x < g->w; x += 32) {
            __m512 p[2];
            int nc = g->w - x > 32 ? 32 : g->w - x;
            __mmask16 m0 = (__mmask16)(nc >= 16 ? 0xFFFF : (1u << nc) - 1u);
            __mmask16 m1 = (__mmask16)(nc <= 16 ? 0 : nc >= 32 ? 0xFFFF : (1u << (nc - 16)) - 1u);
            for (t = 0; t < 2; t++) {   /* padded column 2(b + x/2) + pw + t = 2c + parity */
                int col = x + g->pw + t, c = col >> 1;
                if (col & 1) {
                    __m512 acc = _mm512_mul_ps(k0[1], _mm512_loadu_ps(r0 + c));
                    if (!odd) acc = _mm512_fmadd_ps(k2[1], _mm512_loadu_ps(r1 + c), acc);
                    p[t] = acc;
                } else {
                    __m512 acc = _mm512_mul_ps(k0[0], _mm512_loadu_ps(r0 + c));
                    acc = _mm512_fmadd_ps(k0[2], _mm512_loadu_ps(r0 + c - 1), acc);
                    if (!odd) {
                        acc = _mm512_fmadd_ps(k2[0], _mm512_loadu_ps(r1 + c), acc);
                        acc = _mm512_fmadd_ps(k2[2], _mm512_loadu_ps(r1 + c - 1), acc);
                    }
                    p[t] = acc;
                }
            }
            {
                __m512 v0 = _mm512_permutex2var_ps(p[0], lo, p[1]), v1 = _mm512_permutex2var_ps(p[0], hi, p[1]);
                if (!assign) {
                    v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, o + x));
                    v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, o + x + 16));
                }
                _mm512_mask_storeu_ps(o + x, m0, v0);
                _mm512_mask_storeu_ps(o + x + 16, m1, v1);
            }
        }
    }
}
#endif

static float fer__vsum(fer_isa isa, int n, const float *x, float m, int sq);

/* Stride 1: dW is a correlation of the padded input with dY; dX is dY padded by
   k-1 on every side, correlated with the rotated filter. */
static void fer__dw_backward(fer_isa isa, const fer_conv_geom *g, float *din, float *dw, float *db,
                             const float *dout, const float *in, const float *w, float *scratch,
                             int assign)
{
    int s, c, y, oy, ox, ky, kx, pwid = g->w + 2 * g->pw;
    int qh = g->oh + 2 * (g->kh - 1), qw = g->ow + 2 * (g->kw - 1);
    size_t plane = (size_t)(g->h + 2 * g->ph) * pwid;
    float *pin = scratch, *pdin = scratch + plane;
#if defined(FER__X86)
    if ((isa == FER_ISA_AVX512 && fer__dw3_same(g)) || (isa == FER_ISA_AVX2 && fer__dw3_same_any(g))) {
        /* straight from the planes, as the forward */
        size_t ohw = (size_t)g->oh * g->ow;
        int a2 = isa == FER_ISA_AVX2;
        if (din) (a2 ? fer__dw3_same_avx2 : fer__dw3_same_avx512)(g->n * g->cin, g->cin, g->h, g->w, din, dout, w, 1, NULL, !assign);
        if (dw) (a2 ? fer__dw3_same_dw_avx2 : fer__dw3_same_dw_avx512)(g->n * g->cin, g->cin, 1, g->h, g->w, dw, dout, in);
        if (db)
            for (s = 0; s < g->n; s++)
                for (c = 0; c < g->cin; c++)
                    db[c] += fer__vsum(isa, (int)ohw, dout + ((size_t)s * g->cin + c) * ohw, 0.0f, 0);
        return;
    }
#endif
    for (s = 0; s < g->n; s++)
        for (c = 0; c < g->cin; c++) {
            const float *wc = w + (size_t)c * g->kh * g->kw;
            const float *d = dout + ((size_t)s * g->cout + c) * g->oh * g->ow;
            float *dwc = dw ? dw + (size_t)c * g->kh * g->kw : NULL;
            float *dc = din ? din + ((size_t)s * g->cin + c) * g->h * g->w : NULL;
            const float *ic = in + ((size_t)s * g->cin + c) * g->h * g->w;
            int dx3 = (isa == FER_ISA_AVX512 || isa == FER_ISA_AVX2) && g->sh == 2 && g->sw == 2 && g->kh == 3 && g->kw == 3;
            int dw3 = 0;
#if defined(FER__X86)
            dw3 = (isa == FER_ISA_AVX512 || isa == FER_ISA_AVX2) && fer__dw3_s2(g);   /* dW straight from the plane */
            if (dw && dw3) (isa == FER_ISA_AVX512 ? fer__dw3_s2_dw_avx512 : fer__dw3_s2_dw_avx2)(g, dwc, d, ic);
#endif
            if (dc && assign && !dx3) memset(dc, 0, sizeof(float) * (size_t)g->h * g->w);   /* in L1 now */
            if (db) db[c] += fer__vsum(isa, g->oh * g->ow, d, 0.0f, 0);
            if (dw && !dw3) fer__pad_plane(g, ic, pin);
            if (g->sh == 1 && g->sw == 1) {
                if (dw) fer__corr2d_dw(isa, dwc, d, g->oh, g->ow, pin, pwid, g->kh, g->kw);
                if (din) {
                    fer__pad_to(d, g->oh, g->ow, pdin, qh, qw, g->kh - 1, g->kw - 1);
                    fer__corr2d(isa, dc, g->h, g->w, g->w, pdin + (size_t)g->ph * qw + g->pw, qw, wc,
                                g->kh, g->kw, 1, 1, 0.0f);
                }
                continue;
            }
#if defined(FER__X86)
            if ((isa == FER_ISA_AVX512 || isa == FER_ISA_AVX2) && g->sh == 2 && g->sw == 2) {
                /* over the even and odd columns, as the forward pass: ev/od split
                   the input plane (dW), de/dd accumulate the gradient's (dX) */
                int ph = g->h + 2 * g->ph, ew = (pwid + 1) / 2, a512 = isa == FER_ISA_AVX512;
                size_t eo = (size_t)ph * ew;
                float *ev = pdin, *od = ev + eo, *de = od + eo, *dd = de + eo;
                if (dw && !dw3) {
                    for (y = 0; y < ph; y++)
                        (a512 ? fer__deinterleave_avx512 : fer__deinterleave_avx2)(pin + (size_t)y * pwid, pwid,
                                                                                 ev + (size_t)y * ew, od + (size_t)y * ew);
                    (a512 ? fer__dw_s2_dw_avx512 : fer__dw_s2_dw_avx2)(dwc, d, g->oh, g->ow, ev, od, ew, g->kh, g->kw);
                }
                if (din && dx3) (a512 ? fer__dw_s2_dx3_avx512 : fer__dw_s2_dx3_avx2)(g, dc, d, wc, pdin, assign);
                else if (din) {
                    memset(de, 0, sizeof(float) * 2 * eo);
                    for (oy = 0; oy < g->oh; oy++)
                        for (ky = 0; ky < g->kh; ky++)
                            for (kx = 0; kx < g->kw; kx++)
                                fer_axpy(isa, g->ow, wc[ky * g->kw + kx], d + (size_t)oy * g->ow,
                                         ((kx & 1) ? dd : de) + (size_t)(2 * oy + ky) * ew + kx / 2);
                    for (y = 0; y < g->h; y++) {   /* ev is free now: one interleaved row */
                        (a512 ? fer__interleave_avx512 : fer__interleave_avx2)(ev, pwid, de + (size_t)(y + g->ph) * ew,
                                                                               dd + (size_t)(y + g->ph) * ew);
                        fer_axpy(isa, g->w, 1.0f, ev + g->pw, dc + (size_t)y * g->w);
                    }
                }
                continue;
            }
#endif
            if (din) memset(pdin, 0, sizeof(float) * plane);
            for (oy = 0; oy < g->oh; oy++) {
                const float *drow = d + (size_t)oy * g->ow;
                for (ky = 0; ky < g->kh; ky++) {
                    size_t roff = (size_t)(oy * g->sh + ky) * pwid;
                    for (kx = 0; kx < g->kw; kx++)
                        for (ox = 0; ox < g->ow; ox++) {
                            size_t at = roff + (size_t)ox * g->sw + kx;
                            if (dw) dwc[ky * g->kw + kx] += drow[ox] * pin[at];
                            if (din) pdin[at] += wc[ky * g->kw + kx] * drow[ox];
                        }
                }
            }
            if (din)
                for (y = 0; y < g->h; y++)
                    fer_axpy(FER_ISA_SCALAR, g->w, 1.0f, pdin + (size_t)(y + g->ph) * pwid + g->pw,
                             dc + (size_t)y * g->w);
        }
}

#if defined(FER__X86)
/* Implicit im2col: with the input zero-padded to [cin][H'][W'], tap (c, ky, kx)
   of output (oy, ox) is pad[c][oy+ky][ox+kx], i.e. row koff = (c*H' + ky)*W' + kx
   of a matrix whose column j = oy*W' + ox runs along the padded image. The GEMM
   computes oh x W' "wide" columns (the last W'-ow of each row are discarded) and
   the epilogue runs as the wide rows are copied out (added, with accumulate). */
/* The implicit im2col's scratch (fer__implicit_floats): the padded input planes
   (+64 zeros the last row's vector loads may reach), cout rows of oh x W' "wide"
   columns, and the K row offsets, which this fills. */
/* koff[k] of tap k = (c, ky, kx): where its input lies in a padded sample
   (fer__implicit_pad) relative to the output position's (oy wq + ox). */
static void fer__implicit_koff(const fer_conv_geom *g, int *koff)
{
    int wq, hq = (g->h + 2 * g->ph + 1) / 2, c, ky, kx, i;
    size_t chan;
    fer__implicit_dims(g, &wq, &chan);
    for (c = 0, i = 0; c < g->cin; c++)
        for (ky = 0; ky < g->kh; ky++)
            for (kx = 0; kx < g->kw; kx++)
                koff[i++] = g->sh == 1 ? (int)(c * chan) + ky * wq + kx
                                       : (int)(c * chan) + ((ky & 1) * 2 + (kx & 1)) * hq * wq + (ky >> 1) * wq + (kx >> 1);
}
static int *fer__implicit_layout(const fer_conv_geom *g, float *scratch, float **wide)
{
    int wq;
    size_t chan;
    int *koff;
    fer__implicit_dims(g, &wq, &chan);
    *wide = scratch + (size_t)g->cin * chan + 64;
    koff = (int *)(*wide + (size_t)g->cout * g->oh * wq);
    fer__implicit_koff(g, koff);
    memset(scratch + (size_t)g->cin * chan, 0, 64 * sizeof(float));
    return koff;
}
#if defined(FER__X86)
/* Phase (py, px) of one padded plane (fer__implicit_dims, stride 2): row r, column
   q is padded (2r + py, 2q + px), zero outside the input. */
FER__AVX512 static void fer__implicit_phases_avx512(const fer_conv_geom *g, const float *in, float *pad)
{
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    int hq = (g->h + 2 * g->ph + 1) / 2, wq = (g->w + 2 * g->pw + 1) / 2, py, px, r, q;
    for (py = 0; py < 2; py++)
        for (px = 0; px < 2; px++, pad += (size_t)hq * wq)
            for (r = 0; r < hq; r++) {
                int y = 2 * r + py - g->ph;
                float *d = pad + (size_t)r * wq;
                if (y < 0 || y >= g->h) { memset(d, 0, sizeof(float) * (size_t)wq); continue; }
                for (q = 0; q < wq; q += 16) {   /* columns 2q + px - pw, ..., even floats of 32 */
                    const float *row = in + (size_t)y * g->w;
                    int off = 2 * q + px - g->pw;
                    __mmask16 m = (__mmask16)(wq - q >= 16 ? 0xFFFF : (1u << (wq - q)) - 1u);
                    __m512 a = fer__row16_avx512(row, g->w, off), b = fer__row16_avx512(row, g->w, off + 16);
                    _mm512_mask_storeu_ps(d + q, m, _mm512_permutex2var_ps(a, ev, b));
                }
            }
}
#endif
/* The same in plain C (the AVX2 path). */
static void fer__implicit_phases(const fer_conv_geom *g, const float *in, float *pad)
{
    int hq = (g->h + 2 * g->ph + 1) / 2, wq = (g->w + 2 * g->pw + 1) / 2, py, px, r, q;
    for (py = 0; py < 2; py++)
        for (px = 0; px < 2; px++, pad += (size_t)hq * wq)
            for (r = 0; r < hq; r++) {
                int y = 2 * r + py - g->ph;
                float *d = pad + (size_t)r * wq;
                /* columns q0 .. q1-1 lie in the row (2q + px - pw in [0, w)), the rest are padding */
                int q0 = g->pw > px ? (g->pw - px + 1) / 2 : 0, q1 = (g->w + g->pw - px + 1) / 2;
                if (q1 > wq) q1 = wq;
                if (y < 0 || y >= g->h || q0 > q1) q0 = q1 = 0;
                for (q = 0; q < wq; q++) d[q] = 0.0f;
                for (q = q0; q < q1; q++) d[q] = in[(size_t)y * g->w + 2 * q + px - g->pw];
            }
}
/* One sample's cin planes, zero-padded (stride 2: in phases; "same": rows sharing
   their padding), into the layout's first part. */
static void fer__implicit_pad(fer_isa isa, const fer_conv_geom *g, const float *in, float *pad)
{
    int wq, c, r;
    size_t chan;
    fer__implicit_dims(g, &wq, &chan);
    for (c = 0; c < g->cin; c++) {
        const float *ip = in + (size_t)c * g->h * g->w;
        float *d = pad + (size_t)c * chan;
#if defined(FER__X86)
        if (g->sh == 2 && isa == FER_ISA_AVX512) { fer__implicit_phases_avx512(g, ip, d); continue; }
#endif
        if (g->sh == 2) { fer__implicit_phases(g, ip, d); continue; }
        if (!fer__implicit_shared(g)) { fer__pad_plane(g, ip, d); continue; }
        for (r = 0; r < g->h + 2 * g->ph; r++, d += wq) {
            int y = r - g->ph, i;
            for (i = 0; i < g->pw; i++) d[i] = 0.0f;
            if (y >= 0 && y < g->h) memcpy(d + g->pw, ip + (size_t)y * g->w, sizeof(float) * (size_t)g->w);
            else memset(d + g->pw, 0, sizeof(float) * (size_t)g->w);
        }
        for (r = 0; r < g->pw; r++) d[r] = 0.0f;
    }
}

static void fer__conv_implicit_forward(fer_isa isa, const fer_conv_geom *g, float *out, const float *in,
                                       const float *w, const fer__epi *e, float *scratch, int accumulate)
{
    int wp, nw, ohw = g->oh * g->ow, K = g->cin * g->kh * g->kw, s, c, y;
    size_t chan;
    float *wide;
    int *koff = fer__implicit_layout(g, scratch, &wide);
    fer__implicit_dims(g, &wp, &chan);
    nw = g->oh * wp;
    for (s = 0; s < g->n; s++) {
        float *o = out + (size_t)s * g->cout * ohw;
        fer__implicit_pad(isa, g, in + (size_t)s * g->cin * g->h * g->w, scratch);
        /* few columns (a small plane at batch 1): K in one block, each weight row one read */
        fer__gemm_off(isa, g->cout, nw, K, w, K, scratch, koff, wide, nw, nw <= 3 * FER__NRMAX ? K : FER__KC);
        for (c = 0; c < g->cout; c++)
            for (y = 0; y < g->oh; y++) {
                const float *src = wide + (size_t)c * nw + (size_t)y * wp;
                float *dst = o + (size_t)c * ohw + (size_t)y * g->ow;
                if (accumulate) { fer_axpy(isa, g->ow, 1.0f, src, dst); continue; }
                if (!e) { memcpy(dst, src, sizeof(float) * (size_t)g->ow); continue; }
                fer__vaffine(isa, g->ow, dst, src, e->scale ? e->scale[c] : 1.0f, e->shift ? e->shift[c] : 0.0f);
                if (e->act) fer__vrelu(isa, e->act == 2, (size_t)g->ow, dst, dst);
            }
    }
}
/* U[e][co][ci] = (G g G^T)[e / 4][e % 4] of w[co][ci] (3x3), U[e] at u + e * us;
   16 (co, ci) pairs at a time, their taps gathered. */
FER__AVX512 static void fer__wino_weights_avx512(const float *w, int cout, int cin, float *u, size_t us)
{
    const __m512i nine = _mm512_setr_epi32(0, 9, 18, 27, 36, 45, 54, 63, 72, 81, 90, 99, 108, 117, 126, 135);
    const __m512 half = _mm512_set1_ps(0.5f);
    size_t plane = (size_t)cout * cin, p;
    for (p = 0; p < plane; p += 16) {
        __mmask16 m = (__mmask16)(plane - p >= 16 ? 0xFFFF : (1u << (plane - p)) - 1u);
        const float *k = w + p * 9;
        __m512 t[9], a[4][3];
        int i, s;
        for (i = 0; i < 9; i++)
            t[i] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, _mm512_add_epi32(nine, _mm512_set1_epi32(i)), k, 4);
        for (s = 0; s < 3; s++) {
            __m512 sum = _mm512_add_ps(t[s], t[6 + s]);
            a[0][s] = t[s];
            a[1][s] = _mm512_mul_ps(half, _mm512_add_ps(sum, t[3 + s]));
            a[2][s] = _mm512_mul_ps(half, _mm512_sub_ps(sum, t[3 + s]));
            a[3][s] = t[6 + s];
        }
        for (i = 0; i < 4; i++) {
            __m512 sum = _mm512_add_ps(a[i][0], a[i][2]);
            _mm512_mask_storeu_ps(u + (size_t)(i * 4 + 0) * us + p, m, a[i][0]);
            _mm512_mask_storeu_ps(u + (size_t)(i * 4 + 1) * us + p, m, _mm512_mul_ps(half, _mm512_add_ps(sum, a[i][1])));
            _mm512_mask_storeu_ps(u + (size_t)(i * 4 + 2) * us + p, m, _mm512_mul_ps(half, _mm512_sub_ps(sum, a[i][1])));
            _mm512_mask_storeu_ps(u + (size_t)(i * 4 + 3) * us + p, m, a[i][2]);
        }
    }
}
/* V[e][c][t] for the tiles of tile rows [ty0, ty1), t = (ty - ty0) * tw + tx, read
   straight from one sample's input: patch row i of tile (ty, tx) is padded row
   2ty+i, columns 2tx..2tx+3, so for 16 neighbouring tiles the four patch columns
   are the even and odd floats of 34 consecutive ones (zero outside the plane). */
FER__AVX512 static void fer__wino_in_avx512(const fer_conv_geom *g, const float *in, int tw, int ty0, int ty1,
                                            float *v, int tb)
{
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    size_t es = FER__WINO_ES(g->cin, tb);
    int c, ty, tx, i;
    for (c = 0; c < g->cin; c++)
        for (ty = ty0; ty < ty1; ty++) {
            const float *plane = in + (size_t)c * g->h * g->w;
            float *vt = v + (size_t)c * tb + (size_t)(ty - ty0) * tw;
            for (tx = 0; tx < tw; tx += 16) {
                __mmask16 m = (__mmask16)(tw - tx >= 16 ? 0xFFFF : (1u << (tw - tx)) - 1u);
                int off = 2 * tx - g->pw;
                __m512 w[4][4];
                for (i = 0; i < 4; i++) {   /* d B, row i of the patches */
                    int y = 2 * ty + i - g->ph;
                    __m512 d0, d1, d2, d3;
                    if (y < 0 || y >= g->h) d0 = d1 = d2 = d3 = _mm512_setzero_ps();
                    else {
                        const float *r = plane + (size_t)y * g->w;
                        __m512 a = fer__row16_avx512(r, g->w, off), b = fer__row16_avx512(r, g->w, off + 16);
                        __m512 c2 = fer__row16_avx512(r, g->w, off + 32);
                        __m512 a2 = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(b), _mm512_castps_si512(a), 2));
                        __m512 b2 = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(c2), _mm512_castps_si512(b), 2));
                        d0 = _mm512_permutex2var_ps(a, ev, b);
                        d1 = _mm512_permutex2var_ps(a, od, b);
                        d2 = _mm512_permutex2var_ps(a2, ev, b2);
                        d3 = _mm512_permutex2var_ps(a2, od, b2);
                    }
                    w[i][0] = _mm512_sub_ps(d0, d2);
                    w[i][1] = _mm512_add_ps(d1, d2);
                    w[i][2] = _mm512_sub_ps(d2, d1);
                    w[i][3] = _mm512_sub_ps(d1, d3);
                }
                for (i = 0; i < 4; i++) {   /* B^T (d B), column i */
                    float *o = vt + tx + (size_t)i * es;
                    _mm512_mask_storeu_ps(o, m, _mm512_sub_ps(w[0][i], w[2][i]));
                    _mm512_mask_storeu_ps(o + 4 * es, m, _mm512_add_ps(w[1][i], w[2][i]));
                    _mm512_mask_storeu_ps(o + 8 * es, m, _mm512_sub_ps(w[2][i], w[1][i]));
                    _mm512_mask_storeu_ps(o + 12 * es, m, _mm512_sub_ps(w[1][i], w[3][i]));
                }
            }
        }
}
/* Output channel co's epilogue as vectors: scale, shift and the activation's upper
   bound (ev[0..2]); returns the activation (0: none). */
FER__AVX512 static inline int fer__epi_avx512(const fer__epi *e, int co, __m512 *ev)
{
    ev[0] = _mm512_set1_ps(e && e->scale ? e->scale[co] : 1.0f);
    ev[1] = _mm512_set1_ps(e && e->shift ? e->shift[co] : 0.0f);
    ev[2] = _mm512_set1_ps(e && e->act == 2 ? 6.0f : INFINITY);
    return e ? e->act : 0;
}
/* The same for the 16 channels from co (those of mask m) in the lanes. */
FER__AVX512 static inline int fer__epi16_avx512(const fer__epi *e, int co, __mmask16 m, __m512 *ev)
{
    ev[0] = e && e->scale ? _mm512_maskz_loadu_ps(m, e->scale + co) : _mm512_set1_ps(1.0f);
    ev[1] = e && e->shift ? _mm512_maskz_loadu_ps(m, e->shift + co) : _mm512_setzero_ps();
    ev[2] = _mm512_set1_ps(e && e->act == 2 ? 6.0f : INFINITY);
    return e ? e->act : 0;
}
/* Lane i holds i * stride: a gather's or scatter's offsets, 16 planes apart. */
FER__AVX512 static inline __m512i fer__lanes_avx512(int stride)
{
    return _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                              _mm512_set1_epi32(stride));
}
/* The output rows of tile rows [ty0, ty1) from M[e][co][t]: epilogue, or added. */
FER__AVX512 static void fer__wino_out_avx512(const fer_conv_geom *g, int tw, int ty0, int ty1, const float *mm,
                                             int tb, float *out, const fer__epi *e, int accumulate)
{
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    size_t es = FER__WINO_ES(g->cout, tb);
    int co, ty, tx, a, j;
    for (co = 0; co < g->cout; co++) {
        __m512 ev[3], z = _mm512_setzero_ps(), vs, vb, v6;
        int act = fer__epi_avx512(e, co, ev);
        vs = ev[0]; vb = ev[1]; v6 = ev[2];
        for (ty = ty0; ty < ty1; ty++) {
            const float *mt = mm + (size_t)co * tb + (size_t)(ty - ty0) * tw;
            for (tx = 0; tx < tw; tx += 16) {
                __mmask16 m = (__mmask16)(tw - tx >= 16 ? 0xFFFF : (1u << (tw - tx)) - 1u);
                __m512 s[2][4], y[2][2];
                int nc = g->ow - 2 * tx > 32 ? 32 : g->ow - 2 * tx;
                __mmask16 m0 = (__mmask16)(nc >= 16 ? 0xFFFF : (1u << nc) - 1u);
                __mmask16 m1 = (__mmask16)(nc <= 16 ? 0 : nc >= 32 ? 0xFFFF : (1u << (nc - 16)) - 1u);
                for (j = 0; j < 4; j++) {   /* A^T M: rows */
                    const float *p = mt + tx + (size_t)j * es;
                    __m512 m0j = _mm512_maskz_loadu_ps(m, p), m1j = _mm512_maskz_loadu_ps(m, p + 4 * es);
                    __m512 m2j = _mm512_maskz_loadu_ps(m, p + 8 * es), m3j = _mm512_maskz_loadu_ps(m, p + 12 * es);
                    s[0][j] = _mm512_add_ps(_mm512_add_ps(m0j, m1j), m2j);
                    s[1][j] = _mm512_sub_ps(_mm512_sub_ps(m1j, m2j), m3j);
                }
                for (a = 0; a < 2; a++) {   /* (A^T M) A: columns */
                    y[a][0] = _mm512_add_ps(_mm512_add_ps(s[a][0], s[a][1]), s[a][2]);
                    y[a][1] = _mm512_sub_ps(_mm512_sub_ps(s[a][1], s[a][2]), s[a][3]);
                }
                for (a = 0; a < 2 && 2 * ty + a < g->oh; a++) {
                    float *o = out + ((size_t)co * g->oh + 2 * ty + a) * g->ow + 2 * tx;
                    __m512 r0 = _mm512_permutex2var_ps(y[a][0], lo, y[a][1]);
                    __m512 r1 = _mm512_permutex2var_ps(y[a][0], hi, y[a][1]);
                    if (accumulate) {
                        r0 = _mm512_add_ps(r0, _mm512_maskz_loadu_ps(m0, o));
                        r1 = _mm512_add_ps(r1, _mm512_maskz_loadu_ps(m1, o + 16));
                    } else {
                        r0 = _mm512_fmadd_ps(r0, vs, vb);
                        r1 = _mm512_fmadd_ps(r1, vs, vb);
                        if (act) {
                            r0 = _mm512_min_ps(_mm512_max_ps(r0, z), v6);
                            r1 = _mm512_min_ps(_mm512_max_ps(r1, z), v6);
                        }
                    }
                    _mm512_mask_storeu_ps(o, m0, r0);
                    _mm512_mask_storeu_ps(o + 16, m1, r1);
                }
            }
        }
    }
}
/* Winograd F(4x4, 3x3), the forward of the larger planes (AVX-512): 6x6 input
   patches at a stride of 4, 36 products per (cin, cout) pair for 16 outputs where
   F(2x2, 3x3) does 64 and the direct conv 144. Points 0, 1, -1, 1/2, -2 and inf,
   which round about half as much as the usual 0, 1, -1, 2, -2 (Barabasz et al.,
   "Error analysis and improving the accuracy of Winograd convolution", 2020):
     B^T = [1 -3/2 -2 3/2 1 0; 0 -1 1/2 5/2 1 0; 0 1 -5/2 1/2 1 0;
            0 -2 -1 2 1 0; 0 1/2 -1 -1/2 1 0; 0 1 -3/2 -2 3/2 1],
     G = [1 0 0; 1/3 1/3 1/3; -1/3 1/3 -1/3; -16/15 -8/15 -4/15; 1/15 -2/15 4/15; 0 0 1],
     A^T = [1 1 1 1 1 0; 0 1 -1 1/2 -2 0; 0 1 1 1/4 4 0; 0 1 -1 1/8 -8 1].
   The blocks and GEMMs are F(2x2, 3x3)'s with 36 matrices for 16, but V and M
   are laid out [c][36][tb] (the GEMMs' rows at a stride of 36 tb): a channel's
   36 transformed rows are then one run of memory. Its rounding error is still
   several times F(2x2, 3x3)'s (2e-6..4e-6 of the output's range at 32..256 input
   channels, against 4e-7..8e-7). */
/* y = B^T x over six vectors */
FER__AVX512 static inline void fer__wino4_bt_avx512(const __m512 *x, __m512 *y)
{
    const __m512 half = _mm512_set1_ps(0.5f), c15 = _mm512_set1_ps(1.5f), two = _mm512_set1_ps(2.0f);
    const __m512 c25 = _mm512_set1_ps(2.5f);
    __m512 t2 = _mm512_sub_ps(x[4], x[2]), u = _mm512_sub_ps(x[3], x[1]);
    y[0] = _mm512_fmadd_ps(c15, u, _mm512_fnmadd_ps(two, x[2], _mm512_add_ps(x[0], x[4])));
    y[1] = _mm512_fmadd_ps(c25, x[3], _mm512_fmadd_ps(half, x[2], _mm512_sub_ps(x[4], x[1])));
    y[2] = _mm512_fmadd_ps(half, x[3], _mm512_fnmadd_ps(c25, x[2], _mm512_add_ps(x[4], x[1])));
    y[3] = _mm512_fmadd_ps(two, u, t2);
    y[4] = _mm512_fnmadd_ps(half, u, t2);
    y[5] = _mm512_fmadd_ps(c15, t2, _mm512_fnmadd_ps(two, x[3], _mm512_add_ps(x[1], x[5])));
}
/* y = A^T x over six vectors (four out) */
FER__AVX512 static inline void fer__wino4_at_avx512(const __m512 *x, __m512 *y)
{
    __m512 p = _mm512_add_ps(x[1], x[2]), q = _mm512_sub_ps(x[1], x[2]);
    y[0] = _mm512_add_ps(_mm512_add_ps(x[0], p), _mm512_add_ps(x[3], x[4]));
    y[1] = _mm512_fnmadd_ps(_mm512_set1_ps(2.0f), x[4], _mm512_fmadd_ps(_mm512_set1_ps(0.5f), x[3], q));
    y[2] = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), x[4], _mm512_fmadd_ps(_mm512_set1_ps(0.25f), x[3], p));
    y[3] = _mm512_fnmadd_ps(_mm512_set1_ps(8.0f), x[4],
                            _mm512_fmadd_ps(_mm512_set1_ps(0.125f), x[3], _mm512_add_ps(q, x[5])));
}
/* y = G x over three vectors (six out) */
FER__AVX512 static inline void fer__wino4_g_avx512(const __m512 *x, __m512 *y)
{
    const __m512 third = _mm512_set1_ps(1.0f / 3.0f), fifteenth = _mm512_set1_ps(1.0f / 15.0f);
    __m512 p = _mm512_add_ps(x[0], x[2]);
    y[0] = x[0];
    y[1] = _mm512_mul_ps(third, _mm512_add_ps(p, x[1]));
    y[2] = _mm512_mul_ps(third, _mm512_sub_ps(x[1], p));
    y[3] = _mm512_mul_ps(_mm512_set1_ps(-4.0f / 15.0f),
                         _mm512_fmadd_ps(_mm512_set1_ps(4.0f), x[0], _mm512_fmadd_ps(_mm512_set1_ps(2.0f), x[1], x[2])));
    y[4] = _mm512_mul_ps(fifteenth,
                         _mm512_fmadd_ps(_mm512_set1_ps(4.0f), x[2], _mm512_fnmadd_ps(_mm512_set1_ps(2.0f), x[1], x[0])));
    y[5] = x[2];
}
/* U[e][co][ci] = (G g G^T)[e / 6][e % 6] of w[co][ci], U[e] at u + e * us. */
FER__AVX512 static void fer__wino4_weights_avx512(const float *w, int cout, int cin, float *u, size_t us)
{
    const __m512i nine = _mm512_setr_epi32(0, 9, 18, 27, 36, 45, 54, 63, 72, 81, 90, 99, 108, 117, 126, 135);
    size_t plane = (size_t)cout * cin, p;
    for (p = 0; p < plane; p += 16) {
        __mmask16 m = (__mmask16)(plane - p >= 16 ? 0xFFFF : (1u << (plane - p)) - 1u);
        const float *k = w + p * 9;
        __m512 t[3], a[6][3], c[3], r[6];
        int i, s;
        for (s = 0; s < 3; s++) {   /* G g: column s of the taps */
            for (i = 0; i < 3; i++)
                t[i] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, _mm512_add_epi32(nine, _mm512_set1_epi32(3 * i + s)),
                                                k, 4);
            fer__wino4_g_avx512(t, r);
            for (i = 0; i < 6; i++) a[i][s] = r[i];
        }
        for (i = 0; i < 6; i++) {   /* (G g) G^T: row i */
            for (s = 0; s < 3; s++) c[s] = a[i][s];
            fer__wino4_g_avx512(c, r);
            for (s = 0; s < 6; s++) _mm512_mask_storeu_ps(u + (size_t)(i * 6 + s) * us + p, m, r[s]);
        }
    }
}
/* V[c][e][t] for the tiles of tile rows [ty0, ty1) of one sample: patch row i of
   tile (ty, tx) is input row 4ty+i-ph, columns 4tx-pw .. 4tx-pw+5, so for 16
   neighbouring tiles patch column j is every fourth of 64 consecutive floats from
   j (j = 4, 5: the next tile's 0 and 1), zero outside the plane. */
FER__AVX512 static void fer__wino4_in_avx512(const fer_conv_geom *g, const float *in, int tw, int ty0, int ty1,
                                             float *v, int tb)
{
    const __m512i i01 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
    const __m512i i23 = _mm512_setr_epi32(2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31);
    size_t es = (size_t)tb;
    int c, ty, tx, i, j;
    for (c = 0; c < g->cin; c++)
        for (ty = ty0; ty < ty1; ty++) {
            const float *plane = in + (size_t)c * g->h * g->w;
            float *vt = v + (size_t)c * 36 * tb + (size_t)(ty - ty0) * tw;
            for (tx = 0; tx < tw; tx += 16) {
                __mmask16 m = (__mmask16)(tw - tx >= 16 ? 0xFFFF : (1u << (tw - tx)) - 1u);
                /* a partial vector stored whole where its extra lanes fall on tiles of
                   this block written after it (masked stores split across lines are slow) */
                int off = 4 * tx - g->pw, full = (ty - ty0) * tw + tx + 16 <= (ty1 - ty0) * tw;
                __m512 w[6][6], d[6], col[6];
                for (i = 0; i < 6; i++) {   /* d B, row i of the patches */
                    int y = 4 * ty + i - g->ph;
                    if (y < 0 || y >= g->h) {
                        for (j = 0; j < 6; j++) w[i][j] = _mm512_setzero_ps();
                        continue;
                    }
                    {
                        const float *r = plane + (size_t)y * g->w;
                        __m512 a = fer__row16_avx512(r, g->w, off), b = fer__row16_avx512(r, g->w, off + 16);
                        __m512 c2 = fer__row16_avx512(r, g->w, off + 32), d2 = fer__row16_avx512(r, g->w, off + 48);
                        __m512 e = fer__row16_avx512(r, g->w, off + 64);
                        __m512 ab = _mm512_permutex2var_ps(a, i01, b), cd = _mm512_permutex2var_ps(c2, i01, d2);
                        d[0] = _mm512_shuffle_f32x4(ab, cd, 0x44);
                        d[1] = _mm512_shuffle_f32x4(ab, cd, 0xEE);
                        ab = _mm512_permutex2var_ps(a, i23, b); cd = _mm512_permutex2var_ps(c2, i23, d2);
                        d[2] = _mm512_shuffle_f32x4(ab, cd, 0x44);
                        d[3] = _mm512_shuffle_f32x4(ab, cd, 0xEE);
                        d[4] = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(e), _mm512_castps_si512(d[0]), 1));
                        e = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(e), _mm512_castps_si512(e), 1));
                        d[5] = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(e), _mm512_castps_si512(d[1]), 1));
                    }
                    fer__wino4_bt_avx512(d, w[i]);
                }
                for (j = 0; j < 6; j++) {   /* B^T (d B), column j */
                    for (i = 0; i < 6; i++) col[i] = w[i][j];
                    fer__wino4_bt_avx512(col, d);
                    for (i = 0; i < 6; i++) {
                        float *o = vt + tx + (size_t)(i * 6 + j) * es;
                        if (full) _mm512_storeu_ps(o, d[i]);
                        else _mm512_mask_storeu_ps(o, m, d[i]);
                    }
                }
            }
        }
}
/* The output rows of tile rows [ty0, ty1) from M[co][e][t], through the epilogue;
   a tile row's four values of 16 tiles are interleaved into 64 output floats. */
FER__AVX512 static void fer__wino4_out_avx512(const fer_conv_geom *g, int tw, int ty0, int ty1, const float *mm,
                                              int tb, float *out, const fer__epi *e)
{
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const __m512i q0 = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11), q1 = _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15);
    size_t es = (size_t)tb;
    int co, ty, tx, a, j, k;
    for (co = 0; co < g->cout; co++) {
        __m512 ev[3], z = _mm512_setzero_ps(), vs, vb, v6;
        int act = fer__epi_avx512(e, co, ev);
        vs = ev[0]; vb = ev[1]; v6 = ev[2];
        for (ty = ty0; ty < ty1; ty++) {
            const float *mt = mm + (size_t)co * 36 * tb + (size_t)(ty - ty0) * tw;
            for (tx = 0; tx < tw; tx += 16) {
                __mmask16 m = (__mmask16)(tw - tx >= 16 ? 0xFFFF : (1u << (tw - tx)) - 1u);
                __m512 s[4][6], x[6], y[4][4];
                int nc = g->ow - 4 * tx > 64 ? 64 : g->ow - 4 * tx;
                for (j = 0; j < 6; j++) {   /* A^T M: column j */
                    __m512 t[4];
                    for (a = 0; a < 6; a++) x[a] = _mm512_maskz_loadu_ps(m, mt + tx + (size_t)(a * 6 + j) * es);
                    fer__wino4_at_avx512(x, t);
                    for (a = 0; a < 4; a++) s[a][j] = t[a];
                }
                for (a = 0; a < 4; a++) fer__wino4_at_avx512(s[a], y[a]);   /* (A^T M) A: row a */
                for (a = 0; a < 4 && 4 * ty + a < g->oh; a++) {
                    float *o = out + ((size_t)co * g->oh + 4 * ty + a) * g->ow + 4 * tx;
                    __m512 l01 = _mm512_permutex2var_ps(y[a][0], lo, y[a][1]), h01 = _mm512_permutex2var_ps(y[a][0], hi, y[a][1]);
                    __m512 l23 = _mm512_permutex2var_ps(y[a][2], lo, y[a][3]), h23 = _mm512_permutex2var_ps(y[a][2], hi, y[a][3]);
                    __m512 r[4];
                    r[0] = _mm512_castpd_ps(_mm512_permutex2var_pd(_mm512_castps_pd(l01), q0, _mm512_castps_pd(l23)));
                    r[1] = _mm512_castpd_ps(_mm512_permutex2var_pd(_mm512_castps_pd(l01), q1, _mm512_castps_pd(l23)));
                    r[2] = _mm512_castpd_ps(_mm512_permutex2var_pd(_mm512_castps_pd(h01), q0, _mm512_castps_pd(h23)));
                    r[3] = _mm512_castpd_ps(_mm512_permutex2var_pd(_mm512_castps_pd(h01), q1, _mm512_castps_pd(h23)));
                    for (k = 0; k < 4 && 16 * k < nc; k++) {
                        int left = nc - 16 * k;
                        __m512 v = _mm512_fmadd_ps(r[k], vs, vb);
                        if (act) v = _mm512_min_ps(_mm512_max_ps(v, z), v6);
                        _mm512_mask_storeu_ps(o + 16 * k, (__mmask16)(left >= 16 ? 0xFFFF : (1u << left) - 1u), v);
                    }
                }
            }
        }
    }
}
/* F(4x4, 3x3) on AVX2 (and the weights' transform in plain C elsewhere), the
   transforms of the AVX-512 kernels above over 8 tiles a vector. */
/* y = G x (six out of three), one (co, ci) pair's column or row of taps */
static void fer__wino4_g_scalar(const float *x, float *y)
{
    float p = x[0] + x[2];
    y[0] = x[0];
    y[1] = (1.0f / 3.0f) * (p + x[1]);
    y[2] = (1.0f / 3.0f) * (x[1] - p);
    y[3] = (-4.0f / 15.0f) * (4.0f * x[0] + (2.0f * x[1] + x[2]));
    y[4] = (1.0f / 15.0f) * (4.0f * x[2] + (x[0] - 2.0f * x[1]));
    y[5] = x[2];
}
static void fer__wino4_weights_scalar(const float *w, size_t p0, size_t plane, float *u, size_t us)
{
    size_t p;
    for (p = p0; p < plane; p++) {
        const float *k = w + p * 9;
        float a[6][3], t[3], r[6];
        int i, s;
        for (s = 0; s < 3; s++) {   /* G g: column s of the taps */
            t[0] = k[s]; t[1] = k[3 + s]; t[2] = k[6 + s];
            fer__wino4_g_scalar(t, r);
            for (i = 0; i < 6; i++) a[i][s] = r[i];
        }
        for (i = 0; i < 6; i++) {   /* (G g) G^T: row i */
            fer__wino4_g_scalar(a[i], r);
            for (s = 0; s < 6; s++) u[(size_t)(i * 6 + s) * us + p] = r[s];
        }
    }
}
FER__AVX2_INLINE static inline void fer__wino4_bt_avx2(const __m256 *x, __m256 *y)
{
    const __m256 half = _mm256_set1_ps(0.5f), c15 = _mm256_set1_ps(1.5f), two = _mm256_set1_ps(2.0f);
    const __m256 c25 = _mm256_set1_ps(2.5f);
    __m256 t2 = _mm256_sub_ps(x[4], x[2]), u = _mm256_sub_ps(x[3], x[1]);
    y[0] = _mm256_fmadd_ps(c15, u, _mm256_fnmadd_ps(two, x[2], _mm256_add_ps(x[0], x[4])));
    y[1] = _mm256_fmadd_ps(c25, x[3], _mm256_fmadd_ps(half, x[2], _mm256_sub_ps(x[4], x[1])));
    y[2] = _mm256_fmadd_ps(half, x[3], _mm256_fnmadd_ps(c25, x[2], _mm256_add_ps(x[4], x[1])));
    y[3] = _mm256_fmadd_ps(two, u, t2);
    y[4] = _mm256_fnmadd_ps(half, u, t2);
    y[5] = _mm256_fmadd_ps(c15, t2, _mm256_fnmadd_ps(two, x[3], _mm256_add_ps(x[1], x[5])));
}
FER__AVX2_INLINE static inline void fer__wino4_at_avx2(const __m256 *x, __m256 *y)
{
    __m256 p = _mm256_add_ps(x[1], x[2]), q = _mm256_sub_ps(x[1], x[2]);
    y[0] = _mm256_add_ps(_mm256_add_ps(x[0], p), _mm256_add_ps(x[3], x[4]));
    y[1] = _mm256_fnmadd_ps(_mm256_set1_ps(2.0f), x[4], _mm256_fmadd_ps(_mm256_set1_ps(0.5f), x[3], q));
    y[2] = _mm256_fmadd_ps(_mm256_set1_ps(4.0f), x[4], _mm256_fmadd_ps(_mm256_set1_ps(0.25f), x[3], p));
    y[3] = _mm256_fnmadd_ps(_mm256_set1_ps(8.0f), x[4],
                            _mm256_fmadd_ps(_mm256_set1_ps(0.125f), x[3], _mm256_add_ps(q, x[5])));
}
/* y = G x over three vectors (six out) */
FER__AVX2_INLINE static inline void fer__wino4_g_avx2(const __m256 *x, __m256 *y)
{
    const __m256 third = _mm256_set1_ps(1.0f / 3.0f), fifteenth = _mm256_set1_ps(1.0f / 15.0f);
    __m256 p = _mm256_add_ps(x[0], x[2]);
    y[0] = x[0];
    y[1] = _mm256_mul_ps(third, _mm256_add_ps(p, x[1]));
    y[2] = _mm256_mul_ps(third, _mm256_sub_ps(x[1], p));
    y[3] = _mm256_mul_ps(_mm256_set1_ps(-4.0f / 15.0f),
                         _mm256_fmadd_ps(_mm256_set1_ps(4.0f), x[0], _mm256_fmadd_ps(_mm256_set1_ps(2.0f), x[1], x[2])));
    y[4] = _mm256_mul_ps(fifteenth,
                         _mm256_fmadd_ps(_mm256_set1_ps(4.0f), x[2], _mm256_fnmadd_ps(_mm256_set1_ps(2.0f), x[1], x[0])));
    y[5] = x[2];
}
/* fer__wino4_weights_avx512 in AVX2: 8 (co, ci) pairs at a time, their taps
   gathered; the last pairs in plain C (inference transforms the weights every
   forward: 64 -> 64 in plain C was 18% of the conv's time at batch 1). */
FER__AVX2 static void fer__wino4_weights_avx2(const float *w, int cout, int cin, float *u, size_t us)
{
    const __m256i nine = _mm256_setr_epi32(0, 9, 18, 27, 36, 45, 54, 63);
    size_t plane = (size_t)cout * cin, p;
    for (p = 0; p + 8 <= plane; p += 8) {
        const float *k = w + p * 9;
        __m256 t[3], a[6][3], c[3], r[6];
        int i, s;
        for (s = 0; s < 3; s++) {   /* G g: column s of the taps */
            for (i = 0; i < 3; i++) t[i] = _mm256_i32gather_ps(k + 3 * i + s, nine, 4);
            fer__wino4_g_avx2(t, r);
            for (i = 0; i < 6; i++) a[i][s] = r[i];
        }
        for (i = 0; i < 6; i++) {   /* (G g) G^T: row i */
            for (s = 0; s < 3; s++) c[s] = a[i][s];
            fer__wino4_g_avx2(c, r);
            for (s = 0; s < 6; s++) _mm256_storeu_ps(u + (size_t)(i * 6 + s) * us + p, r[s]);
        }
    }
    fer__wino4_weights_scalar(w, p, plane, u, us);
}
/* V[c][e][t] for tile rows [ty0, ty1) of one sample (fer__wino4_in_avx512 in
   AVX2): patch row i of 8 neighbouring tiles is 34 floats of a zero-padded copy
   of its input row (buf: 6 rows of 4 tw + 40 floats, made at tx = 0); patch
   columns 0..3 are a 4x4 transpose in 128-bit lanes of four loads, columns 4 and
   5 columns 0 and 1 moved down a tile, the ninth tile's on top. A partial vector
   of tiles is stored whole where its extra lanes fall on tiles of the block
   written after it (as fer__wino_in_avx2). */
FER__AVX2 static void fer__wino4_in_avx2(const fer_conv_geom *g, const float *in, int tw, int ty0, int ty1,
                                         float *v, int tb, float *buf)
{
    const __m256i rot = _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 0);
    size_t es = (size_t)tb;
    int c, ty, tx, i, j, len = 4 * tw + 40, n = g->w < len - g->pw ? g->w : len - g->pw;
    for (c = 0; c < g->cin; c++)
        for (ty = ty0; ty < ty1; ty++) {
            const float *plane = in + (size_t)c * g->h * g->w;
            float *vt = v + (size_t)c * 36 * tb + (size_t)(ty - ty0) * tw;
            for (tx = 0; tx < tw; tx += 8) {
                int full = (ty - ty0) * tw + tx + 8 <= (ty1 - ty0) * tw;
                __m256i m = fer__mask256(tw - tx);
                __m256 w[6][6], d[6], col[6];
                for (i = 0; i < 6; i++) {   /* d B, row i of the patches */
                    int y = 4 * ty + i - g->ph;
                    float *pr = buf + (size_t)i * len;
                    const float *q = pr + 4 * tx;
                    __m256 a, b, c2, d2, p0, p1, p2, p3, u0, u1, u2, u3;
                    if (y < 0 || y >= g->h) {
                        for (j = 0; j < 6; j++) w[i][j] = _mm256_setzero_ps();
                        continue;
                    }
                    if (tx == 0) {   /* the row, column -pw first, zeros around it */
                        memset(pr, 0, sizeof(float) * (size_t)len);
                        memcpy(pr + g->pw, plane + (size_t)y * g->w, sizeof(float) * (size_t)n);
                    }
                    a = _mm256_loadu_ps(q); b = _mm256_loadu_ps(q + 8);
                    c2 = _mm256_loadu_ps(q + 16); d2 = _mm256_loadu_ps(q + 24);
                    p0 = _mm256_permute2f128_ps(a, c2, 0x20);   /* tiles 0 | 4 */
                    p1 = _mm256_permute2f128_ps(a, c2, 0x31);   /* 1 | 5 */
                    p2 = _mm256_permute2f128_ps(b, d2, 0x20);   /* 2 | 6 */
                    p3 = _mm256_permute2f128_ps(b, d2, 0x31);   /* 3 | 7 */
                    u0 = _mm256_unpacklo_ps(p0, p1); u1 = _mm256_unpackhi_ps(p0, p1);
                    u2 = _mm256_unpacklo_ps(p2, p3); u3 = _mm256_unpackhi_ps(p2, p3);
                    d[0] = _mm256_shuffle_ps(u0, u2, 0x44); d[1] = _mm256_shuffle_ps(u0, u2, 0xEE);
                    d[2] = _mm256_shuffle_ps(u1, u3, 0x44); d[3] = _mm256_shuffle_ps(u1, u3, 0xEE);
                    d[4] = _mm256_blend_ps(_mm256_permutevar8x32_ps(d[0], rot), _mm256_broadcast_ss(q + 32), 0x80);
                    d[5] = _mm256_blend_ps(_mm256_permutevar8x32_ps(d[1], rot), _mm256_broadcast_ss(q + 33), 0x80);
                    fer__wino4_bt_avx2(d, w[i]);
                }
                for (j = 0; j < 6; j++) {   /* B^T (d B), column j */
                    for (i = 0; i < 6; i++) col[i] = w[i][j];
                    fer__wino4_bt_avx2(col, d);
                    for (i = 0; i < 6; i++) fer__st256(vt + tx + (size_t)(i * 6 + j) * es, full, m, d[i]);
                }
            }
        }
}
/* The output rows of tile rows [ty0, ty1) from M[co][e][t], through the epilogue
   (fer__wino4_out_avx512 in AVX2): a tile row's four values of 8 tiles become 32
   output floats by a 4x4 transpose in 128-bit lanes and a lane exchange. */
FER__AVX2 static void fer__wino4_out_avx2(const fer_conv_geom *g, int tw, int ty0, int ty1, const float *mm,
                                          int tb, float *out, const fer__epi *e)
{
    size_t es = (size_t)tb;
    int co, ty, tx, a, j, k;
    for (co = 0; co < g->cout; co++) {
        __m256 vs = _mm256_set1_ps(e && e->scale ? e->scale[co] : 1.0f);
        __m256 vb = _mm256_set1_ps(e && e->shift ? e->shift[co] : 0.0f);
        __m256 lo = _mm256_set1_ps(e && e->act ? 0.0f : -INFINITY);
        __m256 hi = _mm256_set1_ps(e && e->act == 2 ? 6.0f : INFINITY);
        for (ty = ty0; ty < ty1; ty++) {
            const float *mt = mm + (size_t)co * 36 * tb + (size_t)(ty - ty0) * tw;
            for (tx = 0; tx < tw; tx += 8) {
                int full = tw - tx >= 8, nc = g->ow - 4 * tx > 32 ? 32 : g->ow - 4 * tx;
                __m256i m = fer__mask256(tw - tx);
                __m256 s[4][6], x[6], y[4][4];
                for (j = 0; j < 6; j++) {   /* A^T M: column j */
                    __m256 t[4];
                    for (a = 0; a < 6; a++) x[a] = fer__ld256(mt + tx + (size_t)(a * 6 + j) * es, full, m);
                    fer__wino4_at_avx2(x, t);
                    for (a = 0; a < 4; a++) s[a][j] = t[a];
                }
                for (a = 0; a < 4; a++) fer__wino4_at_avx2(s[a], y[a]);   /* (A^T M) A: row a */
                for (a = 0; a < 4 && 4 * ty + a < g->oh; a++) {
                    float *o = out + ((size_t)co * g->oh + 4 * ty + a) * g->ow + 4 * tx;
                    __m256 u0 = _mm256_unpacklo_ps(y[a][0], y[a][1]), u1 = _mm256_unpackhi_ps(y[a][0], y[a][1]);
                    __m256 u2 = _mm256_unpacklo_ps(y[a][2], y[a][3]), u3 = _mm256_unpackhi_ps(y[a][2], y[a][3]);
                    __m256 q0 = _mm256_shuffle_ps(u0, u2, 0x44), q1 = _mm256_shuffle_ps(u0, u2, 0xEE);   /* tiles 0|4, 1|5 */
                    __m256 q2 = _mm256_shuffle_ps(u1, u3, 0x44), q3 = _mm256_shuffle_ps(u1, u3, 0xEE);   /* 2|6, 3|7 */
                    __m256 r[4];
                    r[0] = _mm256_permute2f128_ps(q0, q1, 0x20);
                    r[1] = _mm256_permute2f128_ps(q2, q3, 0x20);
                    r[2] = _mm256_permute2f128_ps(q0, q1, 0x31);
                    r[3] = _mm256_permute2f128_ps(q2, q3, 0x31);
                    for (k = 0; k < 4 && 8 * k < nc; k++) {   /* masked only at the row's end */
                        __m256 z = _mm256_min_ps(_mm256_max_ps(_mm256_fmadd_ps(r[k], vs, vb), lo), hi);
                        fer__st256(o + 8 * k, nc - 8 * k >= 8, fer__mask256(nc - 8 * k), z);
                    }
                }
            }
        }
    }
}
/* The Winograd transforms in AVX2 (8 tiles a vector) and plain C (the weights'
   and the weight gradient's, once per forward or step): the same arithmetic as
   the AVX-512 ones above. A patch row is read from a zero-padded copy of its input
   row (no masks for the plane's edges); a partial last vector of tiles is stored
   masked. */
static void fer__wino_weights_scalar(const float *w, int cout, int cin, float *u, size_t us)
{
    size_t plane = (size_t)cout * cin, p;
    for (p = 0; p < plane; p++) {
        const float *k = w + p * 9;
        float a[4][3];
        int i, s;
        for (s = 0; s < 3; s++) {   /* G g: rows */
            float sum = k[s] + k[6 + s];
            a[0][s] = k[s];
            a[1][s] = 0.5f * (sum + k[3 + s]);
            a[2][s] = 0.5f * (sum - k[3 + s]);
            a[3][s] = k[6 + s];
        }
        for (i = 0; i < 4; i++) {   /* (G g) G^T: columns */
            float sum = a[i][0] + a[i][2];
            u[(size_t)(i * 4 + 0) * us + p] = a[i][0];
            u[(size_t)(i * 4 + 1) * us + p] = 0.5f * (sum + a[i][1]);
            u[(size_t)(i * 4 + 2) * us + p] = 0.5f * (sum - a[i][1]);
            u[(size_t)(i * 4 + 3) * us + p] = a[i][2];
        }
    }
}
static void fer__wino_dw_finish_scalar(int cout, int cin, const float *du, float *dw)
{
    size_t plane = (size_t)cout * cin, us = FER__WINO_ES(cout, cin), p;
    for (p = 0; p < plane; p++) {
        float x[4][4], r[3][4], *d = dw + p * 9;
        int i, j;
        for (i = 0; i < 4; i++)
            for (j = 0; j < 4; j++) x[i][j] = du[(size_t)(i * 4 + j) * us + p];
        for (j = 0; j < 4; j++) {   /* G^T dU: rows */
            float s = 0.5f * (x[1][j] + x[2][j]);
            r[0][j] = x[0][j] + s;
            r[1][j] = 0.5f * (x[1][j] - x[2][j]);
            r[2][j] = x[3][j] + s;
        }
        for (i = 0; i < 3; i++) {   /* (G^T dU) G: columns */
            float s = 0.5f * (r[i][1] + r[i][2]);
            d[i * 3 + 0] += r[i][0] + s;
            d[i * 3 + 1] += 0.5f * (r[i][1] - r[i][2]);
            d[i * 3 + 2] += r[i][3] + s;
        }
    }
}
/* fer__wino_in_avx512 in AVX2; buf: 2 tw + 32 floats. A partial last vector of
   tiles is stored whole where its extra lanes land on the next tile rows' first
   tiles of the same block, written after it (the masked store is microcoded on
   AMD). So does fer__wino_dy_avx2. */
FER__AVX2 static void fer__wino_in_avx2(const fer_conv_geom *g, const float *in, int tw, int ty0, int ty1,
                                        float *v, int tb, float *buf)
{
    size_t es = FER__WINO_ES(g->cin, tb);
    int c, ty, tx, i, len = 2 * tw + 32;
    for (c = 0; c < g->cin; c++)
        for (ty = ty0; ty < ty1; ty++) {
            const float *plane = in + (size_t)c * g->h * g->w;
            float *vt = v + (size_t)c * tb + (size_t)(ty - ty0) * tw;
            __m256 w[4][4];
            for (tx = 0; tx < tw; tx += 8) {
                int full = (ty - ty0) * tw + tx + 8 <= (ty1 - ty0) * tw;
                __m256i m = fer__mask256(tw - tx);
                for (i = 0; i < 4; i++) {   /* d B, row i of the patches */
                    int y = 2 * ty + i - g->ph;
                    __m256 d0, d1, d2, d3;
                    float *pr = buf + (size_t)i * len;
                    if (y < 0 || y >= g->h) d0 = d1 = d2 = d3 = _mm256_setzero_ps();
                    else {
                        if (tx == 0) {   /* the row, column -pw first, zeros around it */
                            int n = g->w < len - g->pw ? g->w : len - g->pw;
                            memset(pr, 0, sizeof(float) * (size_t)len);
                            memcpy(pr + g->pw, plane + (size_t)y * g->w, sizeof(float) * (size_t)n);
                        }
                        fer__evod256(_mm256_loadu_ps(pr + 2 * tx), _mm256_loadu_ps(pr + 2 * tx + 8), &d0, &d1);
                        fer__evod256(_mm256_loadu_ps(pr + 2 * tx + 2), _mm256_loadu_ps(pr + 2 * tx + 10), &d2, &d3);
                    }
                    w[i][0] = _mm256_sub_ps(d0, d2);
                    w[i][1] = _mm256_add_ps(d1, d2);
                    w[i][2] = _mm256_sub_ps(d2, d1);
                    w[i][3] = _mm256_sub_ps(d1, d3);
                }
                for (i = 0; i < 4; i++) {   /* B^T (d B), column i */
                    float *o = vt + tx + (size_t)i * es;
                    fer__st256(o, full, m, _mm256_sub_ps(w[0][i], w[2][i]));
                    fer__st256(o + 4 * es, full, m, _mm256_add_ps(w[1][i], w[2][i]));
                    fer__st256(o + 8 * es, full, m, _mm256_sub_ps(w[2][i], w[1][i]));
                    fer__st256(o + 12 * es, full, m, _mm256_sub_ps(w[1][i], w[3][i]));
                }
            }
        }
}
/* fer__wino_out_avx512 in AVX2 */
FER__AVX2 static void fer__wino_out_avx2(const fer_conv_geom *g, int tw, int ty0, int ty1, const float *mm,
                                         int tb, float *out, const fer__epi *e, int accumulate)
{
    size_t es = FER__WINO_ES(g->cout, tb);
    int co, ty, tx, a, j;
    for (co = 0; co < g->cout; co++) {
        __m256 vs = _mm256_set1_ps(e && e->scale ? e->scale[co] : 1.0f);
        __m256 vb = _mm256_set1_ps(e && e->shift ? e->shift[co] : 0.0f), z = _mm256_setzero_ps();
        __m256 v6 = _mm256_set1_ps(e && e->act == 2 ? 6.0f : INFINITY);
        int act = e ? e->act : 0;
        for (ty = ty0; ty < ty1; ty++) {
            const float *mt = mm + (size_t)co * tb + (size_t)(ty - ty0) * tw;
            for (tx = 0; tx < tw; tx += 8) {
                int full = tw - tx >= 8, nc = g->ow - 2 * tx > 16 ? 16 : g->ow - 2 * tx;
                __m256i m = fer__mask256(tw - tx), m0 = fer__mask256(nc), m1 = fer__mask256(nc - 8);
                __m256 s[2][4], y[2][2];
                for (j = 0; j < 4; j++) {   /* A^T M: rows */
                    const float *p = mt + tx + (size_t)j * es;
                    __m256 m0j = fer__ld256(p, full, m), m1j = fer__ld256(p + 4 * es, full, m);
                    __m256 m2j = fer__ld256(p + 8 * es, full, m), m3j = fer__ld256(p + 12 * es, full, m);
                    s[0][j] = _mm256_add_ps(_mm256_add_ps(m0j, m1j), m2j);
                    s[1][j] = _mm256_sub_ps(_mm256_sub_ps(m1j, m2j), m3j);
                }
                for (a = 0; a < 2; a++) {   /* (A^T M) A: columns */
                    y[a][0] = _mm256_add_ps(_mm256_add_ps(s[a][0], s[a][1]), s[a][2]);
                    y[a][1] = _mm256_sub_ps(_mm256_sub_ps(s[a][1], s[a][2]), s[a][3]);
                }
                for (a = 0; a < 2 && 2 * ty + a < g->oh; a++) {
                    float *o = out + ((size_t)co * g->oh + 2 * ty + a) * g->ow + 2 * tx;
                    __m256 r0, r1;
                    fer__interleave256(y[a][0], y[a][1], &r0, &r1);
                    if (accumulate) {
                        r0 = _mm256_add_ps(r0, fer__ld256(o, nc >= 8, m0));
                        r1 = _mm256_add_ps(r1, fer__ld256(o + 8, nc >= 16, m1));
                    } else {
                        r0 = _mm256_fmadd_ps(r0, vs, vb);
                        r1 = _mm256_fmadd_ps(r1, vs, vb);
                        if (act) {
                            r0 = _mm256_min_ps(_mm256_max_ps(r0, z), v6);
                            r1 = _mm256_min_ps(_mm256_max_ps(r1, z), v6);
                        }
                    }
                    /* masked only at a row's end (AMD's masked store is microcoded) */
                    fer__st256(o, nc >= 8, m0, r0);
                    if (nc > 8) fer__st256(o + 8, nc >= 16, m1, r1);
                }
            }
        }
    }
}
/* fer__wino_dy_avx512 in AVX2 */
FER__AVX2 static void fer__wino_dy_avx2(const fer_conv_geom *g, int tw, int ty0, int ty1, const float *dy,
                                        float *dm, int tb)
{
    const __m256 z = _mm256_setzero_ps();
    size_t es = FER__WINO_ES(g->cout, tb);
    int co, ty, tx, i;
    for (co = 0; co < g->cout; co++)
        for (ty = ty0; ty < ty1; ty++) {
            const float *r0 = dy + ((size_t)co * g->oh + 2 * ty) * g->ow, *r1 = 2 * ty + 1 < g->oh ? r0 + g->ow : NULL;
            float *mt = dm + (size_t)co * tb + (size_t)(ty - ty0) * tw;
            for (tx = 0; tx < tw; tx += 8) {
                int full = (ty - ty0) * tw + tx + 8 <= (ty1 - ty0) * tw, nc = g->ow - 2 * tx > 16 ? 16 : g->ow - 2 * tx;
                __m256i m = fer__mask256(tw - tx), m0 = fer__mask256(nc), m1 = fer__mask256(nc - 8);
                __m256 a, b, c = z, d = z, p[4], q[4];
                fer__evod256(_mm256_maskload_ps(r0 + 2 * tx, m0), _mm256_maskload_ps(r0 + 2 * tx + 8, m1), &a, &b);
                if (r1) fer__evod256(_mm256_maskload_ps(r1 + 2 * tx, m0), _mm256_maskload_ps(r1 + 2 * tx + 8, m1), &c, &d);
                p[0] = a; q[0] = b;   /* A dY: rows */
                p[1] = _mm256_add_ps(a, c); q[1] = _mm256_add_ps(b, d);
                p[2] = _mm256_sub_ps(a, c); q[2] = _mm256_sub_ps(b, d);
                p[3] = _mm256_sub_ps(z, c); q[3] = _mm256_sub_ps(z, d);
                for (i = 0; i < 4; i++) {   /* (A dY) A^T: columns */
                    float *o = mt + tx + (size_t)(4 * i) * es;
                    fer__st256(o, full, m, p[i]);
                    fer__st256(o + es, full, m, _mm256_add_ps(p[i], q[i]));
                    fer__st256(o + 2 * es, full, m, _mm256_sub_ps(p[i], q[i]));
                    fer__st256(o + 3 * es, full, m, _mm256_sub_ps(z, q[i]));
                }
            }
        }
}
/* Row co of a cout x k matrix into its strips of 48 columns laid out one after
   the other, each [k][width] (the last width rounded up to 16, zero-padded by
   the caller): what fer__kernel9_avx512 reads as b, one stream. */
static void fer__strips48_row(float *dst, int cout, int k, int co, const float *row)
{
    int c0 = co / 48 * 48, wd = ((cout - c0 < 48 ? cout - c0 : 48) + 15) / 16 * 16, i;
    for (i = 0; i < k; i++) dst[(size_t)c0 * k + (size_t)i * wd + (size_t)(co - c0)] = row[i];
}
/* The floats a step of k that passes kernel passes of kc steps over a strip of
   b prefetch of the next strip, panel floats from nx, of which left lie in the
   array (at most 48; 0 when nothing is left: no prefetch, no pointer past it). */
static int fer__kernel9_pfs(size_t panel, size_t left, int passes, int kc)
{
    size_t f = (panel < left ? panel : left) / ((size_t)passes * kc);
    return f > 48 ? 48 : (int)f;
}
/* F(4x4, 3x3) channels-last for small planes (fer__wino4c_shape), AVX-512. The
   weights' transform ut holds, per matrix e, the cout x cin matrix transposed in
   strips (fer__strips48_row). */
static fer_result fer__wino4c_weights(const float *w, int cout, int cin, float *ut, void *ctx)
{
    size_t ub = (size_t)cin * (size_t)((cout + 15) / 16 * 16);
    float *tmp = (float *)FER_MALLOC(sizeof(float) * 36 * (size_t)cin, ctx);
    int co, i;
    (void)ctx;
    if (!tmp) return FER_ERR_NOMEM;
    memset(ut, 0, sizeof(float) * 36 * ub);
    for (co = 0; co < cout; co++) {
        fer__wino4_weights_scalar(w + (size_t)co * cin * 9, 0, (size_t)cin, tmp, (size_t)cin);
        for (i = 0; i < 36; i++) fer__strips48_row(ut + (size_t)i * ub, cout, cin, co, tmp + (size_t)i * cin);
    }
    FER_FREE(tmp, ctx);
    return FER_OK;
}
/* C[r][0, cols) (+)= sum over k < kc of A[r][k] b[k ldb + 0, cols) for the rows
   r < rows <= 9, cols <= 48 (b's rows hold cols rounded up to 16 floats), A[r][k]
   at a + r lda + k, or a + roff[r] + koff[k] (rows of an implicit im2row), C
   added to when acc; pf: pfs floats a step of k prefetched from pf on (at most
   48; the caller's next strip, mostly from DRAM, while this one's FMAs run). 27
   accumulators, 3 vectors of b and a broadcast of the 32 zmm, 12 loads per 27
   FMAs; 9 rows, as 9 and 36 tiles (12x12, 11x11, 24x24 and 22x22 planes) divide
   by 9. Rows past `rows` repeat row 0 (computed, not stored). */
FER__AVX512 static void fer__kernel9_avx512(int kc, const float *a, int lda, const int *roff, const int *koff,
                                            const float *b, int ldb, float *c, int ldc, int rows, int cols, int acc,
                                            const float *pf, int pfs)
{
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00;
    __m512 c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
    __m512 c40 = c00, c41 = c00, c42 = c00, c50 = c00, c51 = c00, c52 = c00;
    __m512 c60 = c00, c61 = c00, c62 = c00, c70 = c00, c71 = c00, c72 = c00;
    __m512 c80 = c00, c81 = c00, c82 = c00;
#define FER__Q9(r) (rows > r ? a + (roff ? roff[r] : r * lda) : q0)
    const float *q0 = a + (roff ? roff[0] : 0), *q1 = FER__Q9(1), *q2 = FER__Q9(2), *q3 = FER__Q9(3);
    const float *q4 = FER__Q9(4), *q5 = FER__Q9(5), *q6 = FER__Q9(6), *q7 = FER__Q9(7), *q8 = FER__Q9(8);
#undef FER__Q9
    __mmask16 m0 = (__mmask16)(cols >= 16 ? 0xFFFF : (1u << cols) - 1u);
    __mmask16 m1 = (__mmask16)(cols >= 32 ? 0xFFFF : cols <= 16 ? 0 : (1u << (cols - 16)) - 1u);
    __mmask16 m2 = (__mmask16)(cols >= 48 ? 0xFFFF : cols <= 32 ? 0 : (1u << (cols - 32)) - 1u);
    int p, nv = cols > 32 ? 3 : cols > 16 ? 2 : 1;
#define FER__ROW9(r, NV) \
    x = _mm512_set1_ps(q##r[o]); c##r##0 = _mm512_fmadd_ps(x, b0, c##r##0); \
    if (NV > 1) c##r##1 = _mm512_fmadd_ps(x, b1, c##r##1); \
    if (NV > 2) c##r##2 = _mm512_fmadd_ps(x, b2, c##r##2)
#define FER__LOOP9(NV, O) \
    for (p = 0; p < kc; p++) { \
        const float *bp = b + (size_t)p * ldb; \
        size_t o = (size_t)(O); \
        __m512 b0 = _mm512_loadu_ps(bp), x; \
        __m512 b1 = NV > 1 ? _mm512_loadu_ps(bp + 16) : b0, b2 = NV > 2 ? _mm512_loadu_ps(bp + 32) : b0; \
        if (pf) { \
            const char *pp = (const char *)(pf + (size_t)p * pfs); \
            _mm_prefetch(pp, _MM_HINT_T1); \
            if (pfs > 16) _mm_prefetch(pp + 64, _MM_HINT_T1); \
            if (pfs > 32) _mm_prefetch(pp + 128, _MM_HINT_T1); \
        } \
        FER__ROW9(0, NV); FER__ROW9(1, NV); FER__ROW9(2, NV); FER__ROW9(3, NV); FER__ROW9(4, NV); \
        FER__ROW9(5, NV); FER__ROW9(6, NV); FER__ROW9(7, NV); FER__ROW9(8, NV); \
    }
    if (koff) {   /* row r's element p at q_r[koff[p]] (an implicit im2row) */
        if (nv == 3) FER__LOOP9(3, koff[p])
        else if (nv == 2) FER__LOOP9(2, koff[p])
        else FER__LOOP9(1, koff[p])
    } else {
        if (nv == 3) FER__LOOP9(3, p)
        else if (nv == 2) FER__LOOP9(2, p)
        else FER__LOOP9(1, p)
    }
#undef FER__LOOP9
#undef FER__ROW9
#define FER__STORE9(r) \
    if (r < rows) { \
        float *cp = c + (size_t)(r) * ldc; \
        if (acc) { \
            c##r##0 = _mm512_add_ps(c##r##0, _mm512_maskz_loadu_ps(m0, cp)); \
            if (nv > 1) c##r##1 = _mm512_add_ps(c##r##1, _mm512_maskz_loadu_ps(m1, cp + 16)); \
            if (nv > 2) c##r##2 = _mm512_add_ps(c##r##2, _mm512_maskz_loadu_ps(m2, cp + 32)); \
        } \
        _mm512_mask_storeu_ps(cp, m0, c##r##0); \
        if (nv > 1) _mm512_mask_storeu_ps(cp + 16, m1, c##r##1); \
        if (nv > 2) _mm512_mask_storeu_ps(cp + 32, m2, c##r##2); \
    }
    FER__STORE9(0) FER__STORE9(1) FER__STORE9(2) FER__STORE9(3) FER__STORE9(4)
    FER__STORE9(5) FER__STORE9(6) FER__STORE9(7) FER__STORE9(8)
#undef FER__STORE9
}
/* One sample's input zero-padded and channels-last: xp[(yy wp + xx) cin + c] is
   input (c, yy - ph, xx - pw), zero outside the plane (hp x wp covers the tiles). */
FER__AVX512 static void fer__wino4c_pad_avx512(const fer_conv_geom *g, const float *in, int hp, int wp, float *xp)
{
    size_t hw = (size_t)g->h * g->w, row = (size_t)wp * g->cin;
    __m512i idx = fer__lanes_avx512((int)hw);
    int yy, x, c;
    for (yy = 0; yy < hp; yy++) {
        float *d = xp + (size_t)yy * row;
        int y = yy - g->ph;
        if (y < 0 || y >= g->h) { memset(d, 0, sizeof(float) * row); continue; }
        memset(d, 0, sizeof(float) * (size_t)g->pw * g->cin);
        memset(d + (size_t)(g->w + g->pw) * g->cin, 0, sizeof(float) * (size_t)(wp - g->w - g->pw) * g->cin);
        for (x = 0; x < g->w; x++) {
            const float *src = in + (size_t)y * g->w + x;
            float *o = d + (size_t)(x + g->pw) * g->cin;
            for (c = 0; c < g->cin; c += 16) {
                __mmask16 m = (__mmask16)(g->cin - c >= 16 ? 0xFFFF : (1u << (g->cin - c)) - 1u);
                _mm512_mask_storeu_ps(o + c, m, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx,
                                                                        src + (size_t)c * hw, 4));
            }
        }
    }
}
/* V[e][t][c] = (B^T d B)[e / 6][e % 6] of tile t's 6x6 patch d of channel c
   (matrix e at v + e vs), the tiles of one sample numbered from t0. */
FER__AVX512 static void fer__wino4c_in_avx512(const fer_conv_geom *g, const float *xp, int wp, int th, int tw,
                                              float *v, size_t vs, int t0)
{
    int cin = g->cin, ty, tx, c, i, j;
    for (ty = 0; ty < th; ty++)
        for (tx = 0; tx < tw; tx++) {
            const float *p0 = xp + ((size_t)4 * ty * wp + 4 * (size_t)tx) * cin;
            float *vt = v + (size_t)(t0 + ty * tw + tx) * cin;
            for (c = 0; c < cin; c += 16) {
                __mmask16 m = (__mmask16)(cin - c >= 16 ? 0xFFFF : (1u << (cin - c)) - 1u);
                __m512 w[6][6], d[6], col[6];
                for (i = 0; i < 6; i++) {   /* d B, row i of the patch */
                    for (j = 0; j < 6; j++) d[j] = _mm512_maskz_loadu_ps(m, p0 + ((size_t)i * wp + j) * cin + c);
                    fer__wino4_bt_avx512(d, w[i]);
                }
                for (j = 0; j < 6; j++) {   /* B^T (d B), column j */
                    for (i = 0; i < 6; i++) col[i] = w[i][j];
                    fer__wino4_bt_avx512(col, d);
                    for (i = 0; i < 6; i++) _mm512_mask_storeu_ps(vt + (size_t)(i * 6 + j) * vs + c, m, d[i]);
                }
            }
        }
}
/* One sample's output from M[e][t][co] (tiles from t0), through the epilogue,
   16 channels a vector scattered into their planes. */
FER__AVX512 static void fer__wino4c_out_avx512(const fer_conv_geom *g, int th, int tw, const float *mm, size_t ms,
                                               int t0, float *out, const fer__epi *e)
{
    int ohw = g->oh * g->ow, co, ty, tx, a, b, j;
    __m512i idx = fer__lanes_avx512(ohw);
    __m512 z = _mm512_setzero_ps();
    for (co = 0; co < g->cout; co += 16) {
        __mmask16 m = (__mmask16)(g->cout - co >= 16 ? 0xFFFF : (1u << (g->cout - co)) - 1u);
        __m512 ev[3];
        int act = fer__epi16_avx512(e, co, m, ev);
        for (ty = 0; ty < th; ty++)
            for (tx = 0; tx < tw; tx++) {
                const float *mt = mm + (size_t)(t0 + ty * tw + tx) * g->cout + co;
                __m512 s[4][6], x[6], t[4], y[4][4];
                for (j = 0; j < 6; j++) {   /* A^T M: column j */
                    for (a = 0; a < 6; a++) x[a] = _mm512_maskz_loadu_ps(m, mt + (size_t)(a * 6 + j) * ms);
                    fer__wino4_at_avx512(x, t);
                    for (a = 0; a < 4; a++) s[a][j] = t[a];
                }
                for (a = 0; a < 4 && 4 * ty + a < g->oh; a++) {   /* (A^T M) A: row a */
                    fer__wino4_at_avx512(s[a], y[a]);
                    for (b = 0; b < 4 && 4 * tx + b < g->ow; b++) {
                        __m512 r = _mm512_fmadd_ps(y[a][b], ev[0], ev[1]);
                        if (act) r = _mm512_min_ps(_mm512_max_ps(r, z), ev[2]);
                        _mm512_mask_i32scatter_ps(out + (size_t)co * ohw + (size_t)(4 * ty + a) * g->ow + 4 * tx + b,
                                                  m, idx, r, 4);
                    }
                }
            }
    }
}
/* The conv as F(4x4, 3x3) channels-last, groups of FER__W4C_TILES / tiles
   samples: their padded inputs' transforms into V, 36 GEMMs M[e] = V[e] U[e]
   (tiles x cin by cin x cout, 9 tiles by 48 channels a kernel, K whole), the
   output transforms. ut: fer__wino4c_weights. */
FER__AVX512 static void fer__wino4c_forward(const fer_conv_geom *g, float *out, const float *in, const float *ut,
                                            const fer__epi *e, float *scratch)
{
    int th = (g->oh + 3) / 4, tw = (g->ow + 3) / 4, tiles = th * tw, k = FER__W4C_TILES / tiles;
    int hp = 4 * th + 2, wp = 4 * tw + 2, cin = g->cin, cout = g->cout, s, j, i, t0, c0;
    size_t vs = (size_t)k * tiles * cin, ms = (size_t)k * tiles * cout;
    size_t ub = (size_t)cin * (size_t)((cout + 15) / 16 * 16);
    float *xp = scratch, *v = xp + (size_t)hp * wp * cin, *mm = v + 36 * vs;
    for (s = 0; s < g->n; s += k) {
        int ns = g->n - s < k ? g->n - s : k, nt = ns * tiles;
        for (j = 0; j < ns; j++) {
            fer__wino4c_pad_avx512(g, in + (size_t)(s + j) * cin * g->h * g->w, hp, wp, xp);
            fer__wino4c_in_avx512(g, xp, wp, th, tw, v, vs, j * tiles);
        }
        for (i = 0; i < 36; i++)
            for (c0 = 0; c0 < cout; c0 += 48) {
                int cols = cout - c0 < 48 ? cout - c0 : 48, ldb = (cols + 15) / 16 * 16;
                const float *b = ut + (size_t)i * ub + (size_t)c0 * cin, *nx = b + (size_t)cin * ldb;
                int pfs = fer__kernel9_pfs((size_t)cin * 48, (size_t)(ut + 36 * ub - nx), (nt + 8) / 9, cin);
                for (t0 = 0; t0 < nt; t0 += 9)
                    fer__kernel9_avx512(cin, v + (size_t)i * vs + (size_t)t0 * cin, cin, NULL, NULL, b, ldb,
                                        mm + (size_t)i * ms + (size_t)t0 * cout + c0, cout, nt - t0 < 9 ? nt - t0 : 9,
                                        cols, 0, pfs ? nx + (size_t)t0 / 9 * cin * pfs : NULL, pfs);
            }
        for (j = 0; j < ns; j++)
            fer__wino4c_out_avx512(g, th, tw, mm, ms, j * tiles, out + (size_t)(s + j) * cout * g->oh * g->ow, e);
    }
}
/* A conv of few output positions (a small plane at a small batch: resnet18's
   6x6 ones, 36 positions) as positions x output channels: the rows of the
   implicit im2row (output position r's receptive field at pad + roff[r] +
   koff[k], fer__implicit_layout's offsets) times the weights laid out as the
   wino4c transforms' strips, 9 positions by 48 channels a kernel, so that 36
   positions fill 4 kernels where the implicit im2col's 6x6 plane (42 columns
   with its padding) used 3/4 of a 48-column strip. K runs in blocks of
   FER__ROWS9_KC (a block of the weights' strip, 48 KB, stays in L1 and L2 over
   the position rows). */
static void fer__rows9_weights(const float *w, int cout, int k, float *wt)
{
    int co;
    memset(wt, 0, sizeof(float) * (size_t)k * (size_t)((cout + 15) / 16 * 16));
    for (co = 0; co < cout; co++) fer__strips48_row(wt, cout, k, co, w + (size_t)co * k);
}
FER__AVX512 static void fer__rows9_forward(const fer_conv_geom *g, float *out, const float *in, const float *wt,
                                           const fer__epi *e, float *scratch)
{
    int p = g->oh * g->ow, ks = p <= FER__ROWS9_MAX ? FER__ROWS9_MAX / p : 1, K = g->cin * g->kh * g->kw;
    int wq, s, j, r, c0, kb, r0, co;
    size_t chan, plane = (size_t)g->cin * g->h * g->w;
    float *pad = scratch, *cm;
    int *koff, *roff;
    __m512i idx = fer__lanes_avx512(p);
    __m512 z = _mm512_setzero_ps();
    fer__implicit_dims(g, &wq, &chan);
    koff = (int *)(pad + (size_t)ks * g->cin * chan + 64);
    roff = koff + K;
    cm = (float *)(roff + ks * p);
    fer__implicit_koff(g, koff);
    memset(pad + (size_t)ks * g->cin * chan, 0, 64 * sizeof(float));
    for (s = 0; s < g->n; s += ks) {
        int ns = g->n - s < ks ? g->n - s : ks, nr = ns * p;
        for (j = 0; j < ns; j++) {
            fer__implicit_pad(FER_ISA_AVX512, g, in + (size_t)(s + j) * plane, pad + (size_t)j * g->cin * chan);
            for (r = 0; r < p; r++) roff[j * p + r] = (int)((size_t)j * g->cin * chan) + r / g->ow * wq + r % g->ow;
        }
        for (c0 = 0; c0 < g->cout; c0 += 48) {
            int cols = g->cout - c0 < 48 ? g->cout - c0 : 48, ldb = (cols + 15) / 16 * 16;
            for (kb = 0; kb < K; kb += FER__ROWS9_KC) {
                int kc = K - kb < FER__ROWS9_KC ? K - kb : FER__ROWS9_KC;
                const float *b = wt + (size_t)c0 * K + (size_t)kb * ldb, *nx = b + (size_t)kc * ldb;
                int pfs = fer__kernel9_pfs((size_t)FER__ROWS9_KC * 48, (size_t)(wt + fer__rows9_wfloats(g) - nx),
                                           (nr + 8) / 9, kc);
                for (r0 = 0; r0 < nr; r0 += 9)
                    fer__kernel9_avx512(kc, pad, 0, roff + r0, koff + kb, b, ldb, cm + (size_t)r0 * g->cout + c0,
                                        g->cout, nr - r0 < 9 ? nr - r0 : 9, cols, kb > 0,
                                        pfs ? nx + (size_t)r0 / 9 * kc * pfs : NULL, pfs);
            }
        }
        for (co = 0; co < g->cout; co += 16) {   /* [position][channel] into the planes, through the epilogue */
            __mmask16 m = (__mmask16)(g->cout - co >= 16 ? 0xFFFF : (1u << (g->cout - co)) - 1u);
            __m512 ev[3];
            int act = fer__epi16_avx512(e, co, m, ev);
            for (r = 0; r < nr; r++) {
                __m512 v = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, cm + (size_t)r * g->cout + co), ev[0], ev[1]);
                if (act) v = _mm512_min_ps(_mm512_max_ps(v, z), ev[2]);
                _mm512_mask_i32scatter_ps(out + ((size_t)(s + r / p) * g->cout + co) * p + r % p, m, idx, v, 4);
            }
        }
    }
}
/* The weights' transform of F(m x m, 3x3), m = 2 or 4. */
static void fer__wino_weights(fer_isa isa, int m, const float *w, int cout, int cin, float *u, size_t us)
{
    if (m == 4 && isa == FER_ISA_AVX512) { fer__wino4_weights_avx512(w, cout, cin, u, us); return; }
    if (m == 4 && isa == FER_ISA_AVX2) { fer__wino4_weights_avx2(w, cout, cin, u, us); return; }
    if (m == 4) { fer__wino4_weights_scalar(w, 0, (size_t)cout * cin, u, us); return; }
    if (isa == FER_ISA_AVX512) fer__wino_weights_avx512(w, cout, cin, u, us);
    else fer__wino_weights_scalar(w, cout, cin, u, us);
}
/* F(m x m, 3x3) (m = 4: forward only, no accumulate). wu: the
   transformed weights (fer__wino_weights), or NULL to transform w here; wu may be
   scratch itself (the transform is the scratch's first part). */
static void fer__conv_wino_forward(fer_isa isa, int m, const fer_conv_geom *g, float *out, const float *in,
                                   const float *w, const float *wu, const fer__epi *e, float *scratch,
                                   int accumulate)
{
    int th, tw, rb, sb, tb, s, ty, i, j, a512 = isa == FER_ISA_AVX512, ne = (m + 2) * (m + 2), ld;
    float *buf;
    size_t ohw = (size_t)g->oh * g->ow, chw = (size_t)g->cin * g->h * g->w;
    size_t us = FER__WINO_ES(g->cout, g->cin), vs, ms, vst, mst;
    float *u = scratch, *v, *mm;
    int *koff;
    FER_ASSERT(m == 2 || (m == 4 && !accumulate));
    fer__wino_dims_m(g, m, &th, &tw, &rb, &sb, &tb);
    vs = FER__WINO_ES(g->cin, tb);
    ms = FER__WINO_ES(g->cout, tb);
    v = u + ne * us;
    mm = v + ne * vs;
    koff = (int *)(mm + ne * ms);
    buf = (float *)(koff + g->cin);
    /* matrix e of V and M at e * vst, e * mst, their rows ld floats apart: [e][c][t],
       or [c][e][t] for F(4x4, 3x3) */
    vst = m == 4 ? (size_t)tb : vs;
    mst = m == 4 ? (size_t)tb : ms;
    ld = m == 4 ? ne * tb : tb;
    for (i = 0; i < g->cin; i++) koff[i] = i * ld;
    if (!wu) { fer__wino_weights(isa, m, w, g->cout, g->cin, u, us); wu = u; }
    for (s = 0; s < g->n; s += sb) {   /* a block: sb samples' planes, or tile rows of one */
        int k = g->n - s < sb ? g->n - s : sb;
        for (ty = 0; ty < th; ty += rb) {
            int ty1 = ty + rb < th ? ty + rb : th, nt = (ty1 - ty) * tw;
            for (j = 0; j < k; j++) {
                const float *x = in + (size_t)(s + j) * chw;
                if (m == 4 && a512) { fer__wino4_in_avx512(g, x, tw, ty, ty1, v + (size_t)j * nt, tb); continue; }
                if (m == 4) { fer__wino4_in_avx2(g, x, tw, ty, ty1, v + (size_t)j * nt, tb, buf); continue; }
                if (a512) fer__wino_in_avx512(g, x, tw, ty, ty1, v + (size_t)j * nt, tb);
                else fer__wino_in_avx2(g, x, tw, ty, ty1, v + (size_t)j * nt, tb, buf);
            }
            for (i = 0; i < ne; i++)
                fer__gemm_off(isa, g->cout, k * nt, g->cin, wu + i * us, g->cin, v + i * vst, koff, mm + i * mst,
                              ld, FER__KC);
            for (j = 0; j < k; j++) {
                float *y = out + (size_t)(s + j) * g->cout * ohw;
                if (m == 4) {
                    (a512 ? fer__wino4_out_avx512 : fer__wino4_out_avx2)(g, tw, ty, ty1, mm + (size_t)j * nt, tb, y, e);
                    continue;
                }
                (a512 ? fer__wino_out_avx512 : fer__wino_out_avx2)(g, tw, ty, ty1, mm + (size_t)j * nt, tb, y, e,
                                                                   accumulate);
            }
        }
    }
}
/* The weight gradient as Winograd: with dM = A dY A^T per output tile (the
   gradient of the products M = U .* V), dU[e] = sum over tiles of dM[e] V[e]^T,
   16 GEMMs per block of tiles accumulated over the samples, and at the end
   dW += G^T dU G. */
FER__AVX512 static void fer__wino_dy_avx512(const fer_conv_geom *g, int tw, int ty0, int ty1, const float *dy,
                                            float *dm, int tb)
{
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __m512 z = _mm512_setzero_ps();
    size_t es = FER__WINO_ES(g->cout, tb);
    int co, ty, tx, i;
    for (co = 0; co < g->cout; co++)
        for (ty = ty0; ty < ty1; ty++) {
            const float *r0 = dy + ((size_t)co * g->oh + 2 * ty) * g->ow, *r1 = 2 * ty + 1 < g->oh ? r0 + g->ow : NULL;
            float *mt = dm + (size_t)co * tb + (size_t)(ty - ty0) * tw;
            for (tx = 0; tx < tw; tx += 16) {
                __mmask16 m = (__mmask16)(tw - tx >= 16 ? 0xFFFF : (1u << (tw - tx)) - 1u);
                int nc = g->ow - 2 * tx > 32 ? 32 : g->ow - 2 * tx;
                __mmask16 m0 = (__mmask16)(nc >= 16 ? 0xFFFF : (1u << nc) - 1u);
                __mmask16 m1 = (__mmask16)(nc <= 16 ? 0 : nc >= 32 ? 0xFFFF : (1u << (nc - 16)) - 1u);
                __m512 v0 = _mm512_maskz_loadu_ps(m0, r0 + 2 * tx), v1 = _mm512_maskz_loadu_ps(m1, r0 + 2 * tx + 16);
                __m512 a = _mm512_permutex2var_ps(v0, ev, v1), b = _mm512_permutex2var_ps(v0, od, v1), c = z, d = z;
                __m512 p[4], q[4];
                if (r1) {
                    v0 = _mm512_maskz_loadu_ps(m0, r1 + 2 * tx);
                    v1 = _mm512_maskz_loadu_ps(m1, r1 + 2 * tx + 16);
                    c = _mm512_permutex2var_ps(v0, ev, v1);
                    d = _mm512_permutex2var_ps(v0, od, v1);
                }
                p[0] = a; q[0] = b;   /* A dY: rows */
                p[1] = _mm512_add_ps(a, c); q[1] = _mm512_add_ps(b, d);
                p[2] = _mm512_sub_ps(a, c); q[2] = _mm512_sub_ps(b, d);
                p[3] = _mm512_sub_ps(z, c); q[3] = _mm512_sub_ps(z, d);
                for (i = 0; i < 4; i++) {   /* (A dY) A^T: columns */
                    float *o = mt + tx + (size_t)(4 * i) * es;
                    _mm512_mask_storeu_ps(o, m, p[i]);
                    _mm512_mask_storeu_ps(o + es, m, _mm512_add_ps(p[i], q[i]));
                    _mm512_mask_storeu_ps(o + 2 * es, m, _mm512_sub_ps(p[i], q[i]));
                    _mm512_mask_storeu_ps(o + 3 * es, m, _mm512_sub_ps(z, q[i]));
                }
            }
        }
}
/* dU[e] (cout x cin, at du + e * us) = dM[e] V[e]^T summed over the tiles of g->n
   samples, block by block (fer__wino_dims). */
static void fer__conv_wino_dw(fer_isa isa, const fer_conv_geom *g, const float *in, const float *dy, float *du,
                              float *scratch, float *pack)
{
    int a512 = isa == FER_ISA_AVX512;
    float *buf;
    int th, tw, rb, sb, tb, s, ty, i, j;
    size_t us = FER__WINO_ES(g->cout, g->cin), vs, ms, chw = (size_t)g->cin * g->h * g->w;
    size_t dys = (size_t)g->cout * g->oh * g->ow;
    float *v = scratch, *dm;
    fer__wino_dims(g, &th, &tw, &rb, &sb, &tb);
    vs = FER__WINO_ES(g->cin, tb);
    ms = FER__WINO_ES(g->cout, tb);
    dm = v + 16 * vs;
    buf = dm + 16 * ms;
    for (s = 0; s < g->n; s += sb) {
        int k = g->n - s < sb ? g->n - s : sb;
        for (ty = 0; ty < th; ty += rb) {
            int ty1 = ty + rb < th ? ty + rb : th, nt = (ty1 - ty) * tw;
            for (j = 0; j < k; j++) {
                if (a512) {
                    fer__wino_in_avx512(g, in + (size_t)(s + j) * chw, tw, ty, ty1, v + (size_t)j * nt, tb);
                    fer__wino_dy_avx512(g, tw, ty, ty1, dy + (size_t)(s + j) * dys, dm + (size_t)j * nt, tb);
                } else {
                    fer__wino_in_avx2(g, in + (size_t)(s + j) * chw, tw, ty, ty1, v + (size_t)j * nt, tb, buf);
                    fer__wino_dy_avx2(g, tw, ty, ty1, dy + (size_t)(s + j) * dys, dm + (size_t)j * nt, tb);
                }
            }
            for (i = 0; i < 16; i++)
                fer__gemm(isa, 0, 1, g->cout, g->cin, k * nt, dm + i * ms, tb, v + i * vs, tb,
                          du + i * us, g->cin, s > 0 || ty > 0, pack, NULL);   /* the first block assigns dU */
        }
    }
}
/* dW[co][ci] += G^T dU G: 16 (co, ci) pairs at a time, dU read along its rows, the
   nine taps of each pair put side by side by a transpose in registers. */
FER__AVX512 static void fer__wino_dw_finish(int cout, int cin, const float *du, float *dw)
{
    const __m512 half = _mm512_set1_ps(0.5f);
    size_t plane = (size_t)cout * cin, us = FER__WINO_ES(cout, cin), p;
    for (p = 0; p < plane; p += 16) {
        int np = plane - p >= 16 ? 16 : (int)(plane - p), i, j;
        __mmask16 m = (__mmask16)(np == 16 ? 0xFFFF : (1u << np) - 1u);
        __m512 x[4][4], r[3][4], k[16];
        for (i = 0; i < 4; i++)
            for (j = 0; j < 4; j++) x[i][j] = _mm512_maskz_loadu_ps(m, du + (size_t)(i * 4 + j) * us + p);
        for (j = 0; j < 4; j++) {   /* G^T dU: rows */
            __m512 s = _mm512_mul_ps(half, _mm512_add_ps(x[1][j], x[2][j]));
            r[0][j] = _mm512_add_ps(x[0][j], s);
            r[1][j] = _mm512_mul_ps(half, _mm512_sub_ps(x[1][j], x[2][j]));
            r[2][j] = _mm512_add_ps(x[3][j], s);
        }
        for (i = 0; i < 3; i++) {   /* (G^T dU) G: columns */
            __m512 s = _mm512_mul_ps(half, _mm512_add_ps(r[i][1], r[i][2]));
            k[i * 3 + 0] = _mm512_add_ps(r[i][0], s);
            k[i * 3 + 1] = _mm512_mul_ps(half, _mm512_sub_ps(r[i][1], r[i][2]));
            k[i * 3 + 2] = _mm512_add_ps(r[i][3], s);
        }
        for (i = 9; i < 16; i++) k[i] = _mm512_setzero_ps();
        fer__transpose16_avx512(k);   /* k[l]: the nine taps of pair p + l */
        for (i = 0; i < np; i++) {
            float *d = dw + (p + (size_t)i) * 9;
            _mm512_mask_storeu_ps(d, 0x1FF, _mm512_add_ps(_mm512_maskz_loadu_ps(0x1FF, d), k[i]));
        }
    }
}
#endif

/* Conv with the epilogue e on its output (NULL: none); the bias, if any, must be
   in e's shift. wu: w's Winograd transform (fer__wino_weights_avx512) made by the caller,
   or NULL to choose here (a conv of too few tiles to pay for the transform runs
   directly). */
static void fer__conv_forward(fer_isa isa, const fer_conv_geom *g, float *out, const float *in,
                              const float *w, const float *wu, const fer__epi *e, float *scratch)
{
    int s, gi, cg = g->cin / g->groups, og = g->cout / g->groups, ohw = g->oh * g->ow, nb;
    int K = cg * g->kh * g->kw, pointwise = fer__conv_is_pointwise(g);
    float *col = scratch, *pack = scratch + (pointwise ? 0 : (size_t)K * ohw);
    /* an output plane of at most one vector and a long receptive field: dot
       products (the GEMM's A * B^T path) beat strips of mostly padding */
    int rows = !pointwise && (isa == FER_ISA_AVX512 || isa == FER_ISA_AVX2) && ohw <= 16 && K >= 64 &&
               K >= (isa == FER_ISA_AVX2 ? 24 : 4) * (og > ohw ? og : ohw);   /* fer__gemm's dot-product bound */
    if (fer__conv_is_dw(g)) { fer__dw_forward(isa, g, out, in, w, e, scratch); return; }
#if defined(FER__X86)
    if (isa == FER_ISA_AVX512 && fer__conv3_c1(g)) { fer__conv3_c1_avx512(g, out, in, w, e); return; }
    if (isa == FER_ISA_AVX2 && fer__conv3_c1(g)) {   /* a grey-image stem: cout planes on one input plane */
        fer__dw3_same_share_avx2(g->n * g->cout, g->cout, g->cout, g->h, g->w, out, in, w, 0, e, 0);
        return;
    }
    if (wu || fer__wino_use(isa, g, g->n)) {
        fer__conv_wino_forward(isa, fer__wino4(isa, g) ? 4 : 2, g, out, in, w, wu, e, scratch, 0);
        return;
    }
    if (fer__conv_implicit(isa, g)) { fer__conv_implicit_forward(isa, g, out, in, w, e, scratch, 0); return; }
#else
    (void)wu;
#endif
    nb = fer__conv_batch(g);
    if (nb > 1 && g->n > 1) {   /* small planes: nb samples per GEMM, then scattered */
        float *tmp = col + (size_t)K * nb * ohw, *bpack = tmp + (size_t)g->cout * nb * ohw;
        size_t plane = (size_t)g->h * g->w;
        for (s = 0; s < g->n; s += nb) {
            int k = g->n - s < nb ? g->n - s : nb, ld = k * ohw, j, c;
            fer__batch_cols(isa, g, in + (size_t)s * g->cin * plane, k, col, (size_t)ld);
            fer__gemm(isa, 0, 0, g->cout, ld, K, w, K, col, ld, tmp, ld, 0, bpack, e);
            for (j = 0; j < k; j++)
                for (c = 0; c < g->cout; c++)
                    memcpy(out + ((size_t)(s + j) * g->cout + c) * ohw, tmp + (size_t)c * ld + (size_t)j * ohw,
                           sizeof(float) * (size_t)ohw);
        }
        return;
    }
    for (s = 0; s < g->n; s++)
        for (gi = 0; gi < g->groups; gi++) {
            const float *ing = in + ((size_t)s * g->cin + (size_t)gi * cg) * g->h * g->w;
            float *outg = out + ((size_t)s * g->cout + (size_t)gi * og) * ohw;
            fer__epi ge, *gp = NULL;
            if (e) {
                ge.scale = e->scale ? e->scale + gi * og : NULL;
                ge.shift = e->shift ? e->shift + gi * og : NULL;
                ge.act = e->act;
                gp = &ge;
            }
            if (rows) {   /* W [og][K] times rows [ohw][K] transposed */
                fer__im2row(isa, g, cg, ing, col);
                fer__gemm(isa, 0, 1, og, ohw, K, w + (size_t)gi * og * K, K, col, K, outg, ohw, 0, pack, gp);
                continue;
            }
            if (!pointwise) fer__im2col(isa, g, cg, ing, col, (size_t)ohw);
            fer__gemm(isa, 0, 0, og, ohw, K, w + (size_t)gi * og * K, K, pointwise ? ing : col, ohw,
                      outg, ohw, 0, pack, gp);
        }
}

FERDEF void fer_conv2d_forward(fer_isa isa, const fer_conv_geom *g, float *out, const float *in,
                               const float *w, const float *b, float *scratch)
{
    fer__epi e;
    e.scale = NULL; e.shift = b; e.act = 0;
    fer__conv_forward(isa, g, out, in, w, NULL, b ? &e : NULL, scratch);
}

/* The backward of a conv that runs nb samples per GEMM (fer__conv_batch): dY of
   nb samples side by side, dW += dY * col^T over them, and dX through one GEMM:
   at stride 1 the forward conv of dY with flipped, transposed weights (as
   fer__conv_backward), else W^T * dY (a 1x1 conv's dX, or columns scattered
   back). Scratch (fer__conv_batch_bwd_floats): columns, dY, dX, wt, pack area. */
static void fer__conv_backward_batched(fer_isa isa, const fer_conv_geom *g, float *din, float *dw, float *db,
                                       const float *dout, const float *in, const float *w, float *scratch,
                                       int assign, int nb)
{
    int ohw = g->oh * g->ow, K = g->cin * g->kh * g->kw, pointwise = fer__conv_is_pointwise(g), s, j, c;
    int kk = g->kh * g->kw, kt = g->cout * kk, flip = din && !pointwise && g->sh == 1 && g->sw == 1;
    size_t plane = (size_t)g->h * g->w, colf = (size_t)K * ohw > (size_t)kt * plane ? (size_t)K * ohw : (size_t)kt * plane;
    float *col = scratch, *dyb = col + colf * nb, *dxb = dyb + (size_t)g->cout * nb * ohw;
    float *wt = dxb + (size_t)g->cin * nb * plane, *pack = wt + (size_t)kt * g->cin;
    fer_conv_geom gt;
    if (flip) {   /* dX is gt's forward conv of dY */
        fer_conv_geom_init(&gt, 1, g->cout, g->oh, g->ow, g->cin, g->kh, g->kw, 1, 1, g->kh - 1 - g->ph,
                           g->kw - 1 - g->pw, 1);
        fer__flip_weights(w, g->cout, g->cin, kk, wt);
    }
    for (s = 0; s < g->n; s += nb) {
        int k = g->n - s < nb ? g->n - s : nb, ld = k * ohw, ldx = k * (int)plane;
        const float *d0 = dout + (size_t)s * g->cout * ohw;
        for (j = 0; j < k; j++)
            for (c = 0; c < g->cout; c++)
                memcpy(dyb + (size_t)c * ld + (size_t)j * ohw, d0 + ((size_t)j * g->cout + c) * ohw,
                       sizeof(float) * (size_t)ohw);
        if (db)
            for (c = 0; c < g->cout; c++) db[c] += fer__vsum(isa, ld, dyb + (size_t)c * ld, 0.0f, 0);
        if (dw) {
            fer__batch_cols(isa, g, in + (size_t)s * g->cin * plane, k, col, (size_t)ld);
            fer__gemm(isa, 0, 1, g->cout, K, ld, dyb, ld, col, ld, dw, K, 1, pack, NULL);
        }
        if (!din) continue;
        if (flip) {
            fer__batch_cols(isa, &gt, d0, k, col, (size_t)ldx);
            fer__gemm(isa, 0, 0, g->cin, ldx, kt, wt, kt, col, ldx, dxb, ldx, 0, pack, NULL);
        } else
            fer__gemm(isa, 1, 0, K, ld, g->cout, w, K, dyb, ld, col, ld, 0, pack, NULL);   /* dcol, in col */
        for (j = 0; j < k; j++) {
            float *dx = din + (size_t)(s + j) * g->cin * plane;
            if (flip || pointwise) {
                const float *src = flip ? dxb + (size_t)j * plane : col + (size_t)j * ohw;
                size_t sld = flip ? (size_t)ldx : (size_t)ld;
                for (c = 0; c < g->cin; c++) {
                    if (assign) memcpy(dx + (size_t)c * plane, src + (size_t)c * sld, sizeof(float) * plane);
                    else fer_axpy(isa, (int)plane, 1.0f, src + (size_t)c * sld, dx + (size_t)c * plane);
                }
                continue;
            }
            if (assign) memset(dx, 0, sizeof(float) * (size_t)g->cin * plane);
            fer__col2im(isa, g, g->cin, col + (size_t)j * ohw, (size_t)ld, dx);
        }
    }
}

/* assign: din is written, not added to (its first writer; dw, db still add) */
static void fer__conv_backward(fer_isa isa, const fer_conv_geom *g, float *din, float *dw, float *db,
                               const float *dout, const float *in, const float *w, float *scratch,
                               int assign)
{
    int s, gi, cg = g->cin / g->groups, og = g->cout / g->groups, ohw = g->oh * g->ow;
    int K = cg * g->kh * g->kw, pointwise = fer__conv_is_pointwise(g), kk = g->kh * g->kw;
    /* Stride 1: dX is the forward conv of dY, padded by k-1-p, with the weights
       flipped and transposed (wt[ci][co][ky][kx] = w[co][ci][k-1-ky][k-1-kx]):
       one GEMM of depth og*kh*kw straight into dX, no col2im scatter. */
    int flip = din && !pointwise && g->sh == 1 && g->sw == 1, idw = 0, wdw = 0, wdx = 0;
    size_t colsz = pointwise ? 0 : (size_t)K * ohw, kt = (size_t)og * kk;
    float *col = scratch, *wt, *pack;
#if defined(FER__X86)
    float *du = NULL;
#endif
    fer_conv_geom gt;
    if (fer__conv_is_dw(g)) { fer__dw_backward(isa, g, din, dw, db, dout, in, w, scratch, assign); return; }
#if defined(FER__X86)
    if ((isa == FER_ISA_AVX512 || isa == FER_ISA_AVX2) && !din && fer__conv3_c1(g)) {   /* a grey-image stem: dW (and db) only */
        if (dw)
            (isa == FER_ISA_AVX512 ? fer__dw3_same_dw_avx512 : fer__dw3_same_dw_avx2)(g->n * g->cout, g->cout, g->cout, g->h,
                                                                                  g->w, dw, dout, in);
        if (db)
            for (s = 0; s < g->n * g->cout; s++)
                db[s % g->cout] += fer__vsum(isa, ohw, dout + (size_t)s * ohw, 0.0f, 0);
        return;
    }
    {   /* the weight gradient as Winograd, or as long dot products over the implicit im2col */
        int nw = g->oh * (g->w + 2 * g->pw);
        wdw = dw && fer__wino_use(isa, g, g->n);
        idw = !wdw && (isa == FER_ISA_AVX512 || isa == FER_ISA_AVX2) && g->sh == 1 && fer__conv_implicit(isa, g) &&
              nw >= 64 && nw >= 4 * (og > K ? og : K);
    }
#endif
    if (flip) {   /* the input gradient's conv, per sample (gt.n = 1) */
        fer_conv_geom_init(&gt, 1, og, g->oh, g->ow, cg, g->kh, g->kw, 1, 1, g->kh - 1 - g->ph,
                           g->kw - 1 - g->pw, 1);
#if defined(FER__X86)
        wdx = fer__wino_use(isa, &gt, g->n);
#endif
    }
    if (!wdw && !idw && !wdx && g->n > 1 && fer__conv_batch(g) > 1) {
        fer__conv_backward_batched(isa, g, din, dw, db, dout, in, w, scratch, assign, fer__conv_batch(g));
        return;
    }
    /* Scratch: per-sample temporaries (im2col, the implicit or Winograd dW's), then
       what lives through the loop: wt, the pack area and the input gradient's own
       conv (from the pack area on), and the Winograd dU last. */
    if (idw && fer__implicit_floats(g) > colsz) colsz = fer__implicit_floats(g);
    if (wdw && fer__wino_dw_floats(g) > colsz) colsz = fer__wino_dw_floats(g);
    if (flip && kt * g->h * g->w > colsz) colsz = kt * g->h * g->w;
    wt = scratch + colsz;
    pack = wt + (flip ? kt * cg : 0);
#if defined(FER__X86)
    if (wdw) {
        size_t gtf = fer_gemm_pack_floats();
        if (flip) gtf += fer__implicit_floats(&gt) > fer__wino_floats(&gt) ? fer__implicit_floats(&gt) : fer__wino_floats(&gt);
        du = pack + gtf;   /* assigned by the first block of fer__conv_wino_dw */
    }
    /* Winograd runs over all the samples at once (a small plane's blocks hold several) */
    if (wdw) fer__conv_wino_dw(isa, g, in, dout, du, scratch, pack);
    if (wdx) {
        float *wu = pack + fer_gemm_pack_floats();   /* dW's GEMM packs before it */
        fer_conv_geom gn = gt;
        gn.n = g->n;
        fer__flip_weights(w, og, cg, kk, wt);
        fer__wino_weights(isa, 2, wt, cg, og, wu, FER__WINO_ES(cg, og));
        fer__conv_wino_forward(isa, 2, &gn, din, dout, wt, wu, NULL, wu, !assign);
    }
#endif
    for (s = 0; s < g->n; s++)
        for (gi = 0; gi < g->groups; gi++) {
            const float *ing = in + ((size_t)s * g->cin + (size_t)gi * cg) * g->h * g->w;
            const float *dg = dout + ((size_t)s * g->cout + (size_t)gi * og) * ohw;
            float *ding = din ? din + ((size_t)s * g->cin + (size_t)gi * cg) * g->h * g->w : NULL;
            const float *wg = w + (size_t)gi * og * K;
            if (db) {
                int c;
                for (c = 0; c < og; c++) db[gi * og + c] += fer__vsum(isa, ohw, dg + (size_t)c * ohw, 0.0f, 0);
            }
#if defined(FER__X86)
            if (dw && idw) {
                /* implicit dW: dW[co][p] += sum_j dYw[co][j] pad[koff[p] + j] over the
                   wide columns j of the forward pass, dY widened with zeros */
                int wp, nw, c, y, i;
                size_t chan;
                float *dyw;
                int *koff = fer__implicit_layout(g, scratch, &dyw);   /* dY widened in the wide rows */
                fer__implicit_dims(g, &wp, &chan);
                nw = g->oh * wp;
                fer__implicit_pad(isa, g, ing, scratch);
                for (c = 0; c < og; c++)
                    for (y = 0; y < g->oh; y++) {
                        float *r = dyw + (size_t)c * nw + (size_t)y * wp;
                        memcpy(r, dg + (size_t)c * ohw + (size_t)y * g->ow, sizeof(float) * (size_t)g->ow);
                        for (i = g->ow; i < wp; i++) r[i] = 0.0f;
                    }
                fer__gemm_abt(isa, og, K, nw, dyw, nw, scratch, 0, koff, dw, K, 1);
            } else
#endif
            if (dw && !wdw) {   /* dW[og][K] += dY[og][ohw] * col[K][ohw]^T */
                if (!pointwise) fer__im2col(isa, g, cg, ing, col, (size_t)ohw);
                fer_gemm(isa, 0, 1, og, K, ohw, dg, ohw, pointwise ? ing : col, ohw,
                         dw + (size_t)gi * og * K, K, 1, pack);
            }
            if (!ding || wdx) continue;
            if (flip) {
                if (s == 0 || g->groups > 1) fer__flip_weights(wg, og, cg, kk, wt);
#if defined(FER__X86)
                if (fer__conv_implicit(isa, &gt)) {
                    fer__conv_implicit_forward(isa, &gt, ding, dg, wt, NULL, scratch + colsz + kt * cg, !assign);
                    continue;
                }
#endif
                fer__im2col(isa, &gt, og, dg, col, (size_t)g->h * g->w);
                fer_gemm(isa, 0, 0, cg, g->h * g->w, (int)kt, wt, (int)kt, col, g->h * g->w, ding,
                         g->h * g->w, !assign, pack);
            } else if (pointwise) {   /* dX[cg][ohw] += W[og][cg]^T * dY[og][ohw] */
                fer_gemm(isa, 1, 0, K, ohw, og, wg, K, dg, ohw, ding, ohw, !assign, pack);
            } else {   /* dcol[K][ohw] = W[og][K]^T * dY[og][ohw], then scatter back */
                fer_gemm(isa, 1, 0, K, ohw, og, wg, K, dg, ohw, col, ohw, 0, pack);
                if (assign) memset(ding, 0, sizeof(float) * (size_t)cg * g->h * g->w);
                fer__col2im(isa, g, cg, col, (size_t)ohw, ding);
            }
        }
#if defined(FER__X86)
    if (wdw && isa == FER_ISA_AVX512) fer__wino_dw_finish(og, cg, du, dw);
    else if (wdw) fer__wino_dw_finish_scalar(og, cg, du, dw);
#endif
}

FERDEF void fer_conv2d_backward(fer_isa isa, const fer_conv_geom *g, float *din, float *dw,
                                float *db, const float *dout, const float *in, const float *w,
                                float *scratch)
{
    fer__conv_backward(isa, g, din, dw, db, dout, in, w, scratch, 0);
}

/* Int8 convolution, for inference (fer_workspace_quantize). A quantized conv
   reads its input as unsigned bytes q = clamp(round(x / sx) + zx, 0, 255), with
   one scale sx and zero point zx per conv (from calibration), and its weights as
   signed bytes qw = round(w / sw[o]), |qw| <= 127, with sw[o] = max |w[o]| / 127
   per output channel. The products sum in int32, exactly (the padding reads zx),
   and the output is y = act(A[o] * acc + B[o]): A[o] = sx * sw[o] times the
   scale of the batch norm folded in, B[o] its shift less zx * sum(qw[o]) * A[o],
   so the zero point cancels and the padding counts as 0. Every path computes the
   same integers and the same float epilogue, so the AVX-512 VNNI kernel and the
   plain-C reference agree to the bit.
   The VNNI kernel reads the input from planes of 4 channels' bytes per position
   (one int32 lane), each plane the padded input's grid (stride 1) or one of its
   four phases (stride 2, rows and columns even or odd). Output position p of a
   grid of width wg, p = oy * wg + ox, then reads tap (ky, kx) at p + the tap's
   offset: a tile of 16 consecutive positions is one vector load, junk columns
   ox >= ow included and never stored. A tile is 8 output channels (broadcast
   weights) times 48 positions: 24 accumulators of 16 int32. */
#define FER__Q8_NO   8     /* output channels per tile                         */
#define FER__Q8_TAPS 49    /* largest kernel quantized: 7 x 7                  */
typedef struct fer__q8 {
    float inv_sx, zx;      /* 1 / input scale, the zero point (an integer)    */
    int izx;
    int cin, cout;
    int kh, kw, s, ph, pw;
    int act;               /* 0, 1 ReLU, 2 ReLU6                                */
    int cg, ksteps;        /* groups of 4 input channels; cg * kh * kw         */
    int wg;                /* the width of a plane's grid: the padded input or
                              one of its phases                                 */
    int phases;            /* 1 (stride 1) or 4                                 */
    int dense;             /* a dense layer: cin inputs, cout outputs           */
    size_t plane;          /* bytes of one group's plane (grid and slack)      */
    size_t w_off, pk_off, a_off, b_off, k_off;   /* from the struct, bytes: qw
                              [cout][cin][kh][kw] (int8), packed weights
                              [cout / NO, rounded up][ksteps][NO] (int32 of 4
                              int8), A and B (floats, as many), koff[ksteps]
                              (ints: plane and tap byte offsets of a k-step) */
    size_t bytes;          /* the whole block                                  */
} fer__q8;

static const signed char *fer__q8_w(const fer__q8 *q) { return (const signed char *)q + q->w_off; }
static const float *fer__q8_a(const fer__q8 *q) { return (const float *)((const char *)q + q->a_off); }
static const float *fer__q8_b(const fer__q8 *q) { return (const float *)((const char *)q + q->b_off); }

/* One input value's byte. The vector path does the same operations in the same
   order (a NaN becomes 0 there as here). */
static unsigned char fer__q8_byte(float x, float inv, float z)
{
    float v = x * inv;
    v = v + z;
    v = v > 0.0f ? v : 0.0f;
    v = v < 255.0f ? v : 255.0f;
    v = v + 0.5f;
    return (unsigned char)(int)v;
}
static float fer__q8_out(int32_t acc, float a, float b, int act)
{
    float y = (float)acc * a;
    y = y + b;
    if (act) y = y > 0.0f ? y : 0.0f;
    if (act == 2) y = y < 6.0f ? y : 6.0f;
    return y;
}

/* The plain-C reference: each output from the definition. buf: cin*h*w bytes. */
static void fer__q8_conv_ref(const fer__q8 *q, const fer_conv_geom *g, float *out, const float *in,
                             unsigned char *buf)
{
    const signed char *w = fer__q8_w(q);
    const float *A = fer__q8_a(q), *B = fer__q8_b(q);
    size_t plane = (size_t)g->h * g->w, i, len = (size_t)g->cin * plane;
    int s, o, oy, ox, ci, ky, kx;
    for (s = 0; s < g->n; s++) {
        const float *x = in + (size_t)s * len;
        float *y = out + (size_t)s * g->cout * g->oh * g->ow;
        for (i = 0; i < len; i++) buf[i] = fer__q8_byte(x[i], q->inv_sx, q->zx);
        for (o = 0; o < g->cout; o++)
            for (oy = 0; oy < g->oh; oy++)
                for (ox = 0; ox < g->ow; ox++) {
                    int32_t acc = 0;
                    for (ci = 0; ci < g->cin; ci++)
                        for (ky = 0; ky < g->kh; ky++)
                            for (kx = 0; kx < g->kw; kx++) {
                                int iy = oy * g->sh - g->ph + ky, ix = ox * g->sw - g->pw + kx;
                                int v = iy >= 0 && iy < g->h && ix >= 0 && ix < g->w
                                            ? buf[(size_t)ci * plane + (size_t)iy * g->w + ix] : q->izx;
                                acc += v * w[(((size_t)o * g->cin + ci) * g->kh + ky) * g->kw + kx];
                            }
                    *y++ = fer__q8_out(acc, A[o], B[o], q->act);
                }
    }
}

#if defined(FER__X86)
/* x += the products of b's bytes (unsigned) and wv's (signed), 4 per int32 lane.
   gcc 12 does not tie _mm512_dpbusd_epi32's accumulator to its result: a copy
   per instruction, and a kernel's 24 accumulators spilled to the stack (280
   GMAC/s against 384-399 this way). So the instruction is written out. */
#define FER__Q8DP(x, b, wv) __asm__("vpdpbusd %[w], %[v], %[acc]" : [acc] "+v"(x) : [v] "v"(b), [w] "v"(wv))

/* x = 16 floats (those of mask m) of a plane row: their bytes in int32 lanes */
FER__VNNI_INLINE static inline __m512i fer__q8_quant16(const float *x, __mmask16 m, __m512 inv, __m512 z)
{
    __m512 v = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x), inv), z);
    v = _mm512_min_ps(_mm512_max_ps(v, _mm512_setzero_ps()), _mm512_set1_ps(255.0f));
    return _mm512_cvttps_epi32(_mm512_add_ps(v, _mm512_set1_ps(0.5f)));
}

/* One sample's input into the kernel's planes (Q: phases * cg planes). */
FER__VNNI static void fer__q8_planes_vnni(const fer__q8 *q, int h, int w, const float *x, unsigned char *Q)
{
    const __m512 inv = _mm512_set1_ps(q->inv_sx), z = _mm512_set1_ps(q->zx);
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 0, 2, 4, 6, 8, 10, 12, 14);
    size_t plane = (size_t)h * w;
    int gi, c, y, x0;
    memset(Q, q->izx, (size_t)q->phases * q->cg * q->plane);
    for (gi = 0; gi < q->cg; gi++)
        for (y = 0; y < h; y++)
            for (x0 = 0; x0 < w; x0 += 16) {
                int nval = w - x0 < 16 ? w - x0 : 16, Y = y + q->ph, X0 = x0 + q->pw;
                __mmask16 m = (__mmask16)((1u << nval) - 1u);
                __m512i v = _mm512_setzero_si512();   /* a missing channel's byte 0: its weights are 0 */
                for (c = 0; c < 4 && 4 * gi + c < q->cin; c++)
                    v = _mm512_or_si512(v, _mm512_slli_epi32(fer__q8_quant16(x + (size_t)(4 * gi + c) * plane +
                                                                             (size_t)y * w + x0, m, inv, z), 8 * c));
                if (q->s == 1) {
                    _mm512_mask_storeu_epi32(Q + (size_t)gi * q->plane + ((size_t)Y * q->wg + X0) * 4, m, v);
                } else {   /* even lanes to one column phase, odd lanes to the other */
                    int pr = (Y & 1) * 2, row = Y >> 1;
                    __mmask16 me = (__mmask16)(((1u << ((nval + 1) / 2)) - 1u)), mo = (__mmask16)((1u << (nval / 2)) - 1u);
                    unsigned char *pe = Q + ((size_t)(pr + (X0 & 1)) * q->cg + gi) * q->plane;
                    unsigned char *po = Q + ((size_t)(pr + 1 - (X0 & 1)) * q->cg + gi) * q->plane;
                    _mm512_mask_storeu_epi32(pe + ((size_t)row * q->wg + (X0 >> 1)) * 4, me,
                                             _mm512_permutexvar_epi32(even, v));
                    _mm512_mask_storeu_epi32(po + ((size_t)row * q->wg + ((X0 + 1) >> 1)) * 4, mo,
                                             _mm512_permutexvar_epi32(odd, v));
                }
            }
}

/* Output positions [p, p + 16) of lanes v (those below npos): into the planes of
   the output (row width ow, grid width wg), a piece per output row, each piece's
   first lane rotated to lane 0. */
FER__VNNI_INLINE static inline void fer__q8_store16(float *out, size_t ohw, int rows, __m512 *v, int p, int npos,
                                                    int wg, int ow)
{
    int end = npos - p < 16 ? npos : p + 16, r, a, b, j;
    for (r = p / wg; r * wg < end; r++) {
        a = r * wg > p ? r * wg : p;
        b = r * wg + ow < end ? r * wg + ow : end;
        if (a >= b) continue;
        {
            __m512i rot = _mm512_add_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32(a - p));
            __mmask16 m = (__mmask16)((1u << (b - a)) - 1u);
            float *o = out + (size_t)r * ow + (a - r * wg);
            for (j = 0; j < rows; j++)
                _mm512_mask_storeu_ps(o + (size_t)j * ohw, m, _mm512_permutexvar_ps(rot, v[j]));
        }
    }
}

/* One tile: output channels [o0, o0 + rows) (rows <= 8; pw: their packed
   weights) at grid positions [p, p + 16 nv), nv <= 3. */
FER__VNNI static void fer__q8_tile_vnni(const fer__q8 *q, const int32_t *pw, const unsigned char *Q, int p, int nv,
                                        int rows, int o0, float *out, size_t ohw, int npos, int ow)
{
    __m512i c00 = _mm512_setzero_si512(), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00;
    __m512i c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
    __m512i c40 = c00, c41 = c00, c42 = c00, c50 = c00, c51 = c00, c52 = c00;
    __m512i c60 = c00, c61 = c00, c62 = c00, c70 = c00, c71 = c00, c72 = c00;
    const int *koff = (const int *)((const char *)q + q->k_off);
    const float *A = fer__q8_a(q) + o0, *B = fer__q8_b(q) + o0;
    const unsigned char *base = Q + (size_t)p * 4;
    __m512 t[3][FER__Q8_NO], lo = _mm512_set1_ps(q->act ? 0.0f : -INFINITY);
    __m512 hi = _mm512_set1_ps(q->act == 2 ? 6.0f : INFINITY);
    int k, j, v, n = q->ksteps;
    /* Accumulators as named variables, as in fer__kernel_avx512_off. The weights
       are broadcast once into a register (broadcasting from memory in each
       vpdpbusd would load every weight three times: 27 loads per 24, where 11
       leave the loads no bottleneck). */
#define FER__Q8ROW(r, x0, x1, x2, NV) \
    a = _mm512_set1_epi32(pw[r]); \
    FER__Q8DP(x0, b0, a); \
    if (NV > 1) FER__Q8DP(x1, b1, a); \
    if (NV > 2) FER__Q8DP(x2, b2, a)
#define FER__Q8LOOP(NV) \
    for (k = 0; k < n; k++, pw += FER__Q8_NO) { \
        const unsigned char *bp = base + koff[k]; \
        __m512i b0 = _mm512_loadu_si512(bp), a; \
        __m512i b1 = NV > 1 ? _mm512_loadu_si512(bp + 64) : b0, b2 = NV > 2 ? _mm512_loadu_si512(bp + 128) : b0; \
        FER__Q8ROW(0, c00, c01, c02, NV); FER__Q8ROW(1, c10, c11, c12, NV); \
        FER__Q8ROW(2, c20, c21, c22, NV); FER__Q8ROW(3, c30, c31, c32, NV); \
        FER__Q8ROW(4, c40, c41, c42, NV); FER__Q8ROW(5, c50, c51, c52, NV); \
        FER__Q8ROW(6, c60, c61, c62, NV); FER__Q8ROW(7, c70, c71, c72, NV); \
    }
    if (nv == 3) FER__Q8LOOP(3)
    else if (nv == 2) FER__Q8LOOP(2)
    else FER__Q8LOOP(1)
#undef FER__Q8LOOP
#undef FER__Q8ROW
#define FER__Q8EPI(r, x0, x1, x2) \
    t[0][r] = _mm512_cvtepi32_ps(x0); t[1][r] = _mm512_cvtepi32_ps(x1); t[2][r] = _mm512_cvtepi32_ps(x2);
    FER__Q8EPI(0, c00, c01, c02) FER__Q8EPI(1, c10, c11, c12) FER__Q8EPI(2, c20, c21, c22)
    FER__Q8EPI(3, c30, c31, c32) FER__Q8EPI(4, c40, c41, c42) FER__Q8EPI(5, c50, c51, c52)
    FER__Q8EPI(6, c60, c61, c62) FER__Q8EPI(7, c70, c71, c72)
#undef FER__Q8EPI
    for (v = 0; v < nv; v++) {
        for (j = 0; j < rows; j++)   /* multiply, then add: as fer__q8_out */
            t[v][j] = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(_mm512_mul_ps(t[v][j], _mm512_set1_ps(A[j])),
                                                                _mm512_set1_ps(B[j])), lo), hi);
        fer__q8_store16(out + (size_t)o0 * ohw, ohw, rows, t[v], p + 16 * v, npos, q->wg, ow);
    }
}

/* n samples through the VNNI kernel; Q: the planes of one sample. */
FER__VNNI static void fer__q8_conv_vnni(const fer__q8 *q, const fer_conv_geom *g, float *out, const float *in,
                                        unsigned char *Q)
{
    const int32_t *pk = (const int32_t *)((const char *)q + q->pk_off);
    size_t ohw = (size_t)g->oh * g->ow, ks = (size_t)q->ksteps * FER__Q8_NO;
    int s, o0, p, npos = g->oh * q->wg;
    for (s = 0; s < g->n; s++) {
        float *y = out + (size_t)s * g->cout * ohw;
        fer__q8_planes_vnni(q, g->h, g->w, in + (size_t)s * g->cin * g->h * g->w, Q);
        for (o0 = 0; o0 < g->cout; o0 += FER__Q8_NO) {
            int rows = g->cout - o0 < FER__Q8_NO ? g->cout - o0 : FER__Q8_NO;
            for (p = 0; p < npos; p += 48)
                fer__q8_tile_vnni(q, pk + (size_t)(o0 / FER__Q8_NO) * ks, Q, p,
                                  npos - p >= 48 ? 3 : (npos - p + 15) / 16, rows, o0, y, ohw, npos, g->ow);
        }
    }
}
#endif /* FER__X86 */

/* A quantized conv over n samples: the VNNI kernel where the CPU has it. */
static void fer__q8_conv_forward(fer_isa isa, int vnni, const fer__q8 *q, const fer_conv_geom *g, float *out,
                                 const float *in, unsigned char *buf)
{
#if defined(FER__X86)
    if (isa == FER_ISA_AVX512 && vnni) { fer__q8_conv_vnni(q, g, out, in, buf); return; }
#else
    (void)isa; (void)vnni;
#endif
    fer__q8_conv_ref(q, g, out, in, buf);
}

/* A quantized dense layer: out[s][o] = act(A[o] * sum_k q(x[s][k]) qw[o][k] + B[o]),
   the plain-C reference. buf: cin bytes. */
static void fer__q8_dense_ref(const fer__q8 *q, int n, float *out, const float *in, unsigned char *buf)
{
    const signed char *w = fer__q8_w(q);
    const float *A = fer__q8_a(q), *B = fer__q8_b(q);
    int s, o, k;
    for (s = 0; s < n; s++) {
        const float *x = in + (size_t)s * q->cin;
        for (k = 0; k < q->cin; k++) buf[k] = fer__q8_byte(x[k], q->inv_sx, q->zx);
        for (o = 0; o < q->cout; o++) {
            const signed char *wo = w + (size_t)o * q->cin;
            int32_t acc = 0;
            for (k = 0; k < q->cin; k++) acc += buf[k] * wo[k];
            out[(size_t)s * q->cout + o] = fer__q8_out(acc, A[o], B[o], q->act);
        }
    }
}

#if defined(FER__X86)
/* The same on VNNI: 4 rows of weights times the bytes of up to 4 samples, 64 inputs
   an instruction, so that a batch reads the weights once per 4 samples (at batch 1
   the layer streams them: 4x fewer bytes than float). buf: 4 rows of cin bytes
   rounded up to 64. */
FER__VNNI static void fer__q8_dense_vnni(const fer__q8 *q, int n, float *out, const float *in, unsigned char *buf)
{
    const signed char *w = fer__q8_w(q);
    const float *A = fer__q8_a(q), *B = fer__q8_b(q);
    const __m512 inv = _mm512_set1_ps(q->inv_sx), z = _mm512_set1_ps(q->zx);
    size_t ld = (size_t)(q->cin + 63) / 64 * 64;
    int s0, s, o, r, k, ns, tail = q->cin % 64;
    __mmask64 mt = tail ? (((__mmask64)1 << tail) - 1) : ~(__mmask64)0;
    for (s0 = 0; s0 < n; s0 += 4) {
        const unsigned char *x0 = buf, *x1, *x2, *x3;
        ns = n - s0 < 4 ? n - s0 : 4;
        for (s = 0; s < ns; s++) {   /* the samples' bytes, 16 at a time; 0 up to ld */
            unsigned char *row = buf + (size_t)s * ld;
            for (k = 0; k < q->cin; k += 16) {
                int c = q->cin - k < 16 ? q->cin - k : 16;
                __m512i b = fer__q8_quant16(in + (size_t)(s0 + s) * q->cin + k, (__mmask16)((1u << c) - 1u), inv, z);
                _mm_storeu_si128((__m128i *)(row + k), _mm512_cvtepi32_epi8(b));
            }
            memset(row + (q->cin + 15) / 16 * 16, 0, ld - (size_t)(q->cin + 15) / 16 * 16);
        }
        x1 = ns > 1 ? buf + ld : x0; x2 = ns > 2 ? buf + 2 * ld : x0; x3 = ns > 3 ? buf + 3 * ld : x0;
        for (o = 0; o < q->cout; o += 4) {
            int rows = q->cout - o < 4 ? q->cout - o : 4;
            const signed char *w0 = w + (size_t)o * q->cin, *w1 = rows > 1 ? w0 + q->cin : w0;
            const signed char *w2 = rows > 2 ? w0 + 2 * (size_t)q->cin : w0, *w3 = rows > 3 ? w0 + 3 * (size_t)q->cin : w0;
            __m512i a00 = _mm512_setzero_si512(), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00;
            __m512i a13 = a00, a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00, a31 = a00, a32 = a00, a33 = a00;
            int32_t acc[4][4];
#define FER__Q8DROW(wr, c0, c1, c2, c3, NS) { \
                __m512i wv = m == ~(__mmask64)0 ? _mm512_loadu_si512(wr + k) : _mm512_maskz_loadu_epi8(m, wr + k); \
                FER__Q8DP(c0, b0, wv); \
                if (NS > 1) { FER__Q8DP(c1, b1, wv); FER__Q8DP(c2, b2, wv); FER__Q8DP(c3, b3, wv); } }
#define FER__Q8DLOOP(NS) \
            for (k = 0; k < q->cin; k += 64) { \
                __mmask64 m = k + 64 <= q->cin ? ~(__mmask64)0 : mt; \
                __m512i b0 = _mm512_loadu_si512(x0 + k), b1 = b0, b2 = b0, b3 = b0; \
                if (NS > 1) { b1 = _mm512_loadu_si512(x1 + k); b2 = _mm512_loadu_si512(x2 + k); \
                              b3 = _mm512_loadu_si512(x3 + k); } \
                FER__Q8DROW(w0, a00, a01, a02, a03, NS) FER__Q8DROW(w1, a10, a11, a12, a13, NS) \
                FER__Q8DROW(w2, a20, a21, a22, a23, NS) FER__Q8DROW(w3, a30, a31, a32, a33, NS) \
            }
            if (ns == 1) FER__Q8DLOOP(1)
            else FER__Q8DLOOP(4)
#undef FER__Q8DLOOP
#undef FER__Q8DROW
            acc[0][0] = _mm512_reduce_add_epi32(a00); acc[0][1] = _mm512_reduce_add_epi32(a01);
            acc[0][2] = _mm512_reduce_add_epi32(a02); acc[0][3] = _mm512_reduce_add_epi32(a03);
            acc[1][0] = _mm512_reduce_add_epi32(a10); acc[1][1] = _mm512_reduce_add_epi32(a11);
            acc[1][2] = _mm512_reduce_add_epi32(a12); acc[1][3] = _mm512_reduce_add_epi32(a13);
            acc[2][0] = _mm512_reduce_add_epi32(a20); acc[2][1] = _mm512_reduce_add_epi32(a21);
            acc[2][2] = _mm512_reduce_add_epi32(a22); acc[2][3] = _mm512_reduce_add_epi32(a23);
            acc[3][0] = _mm512_reduce_add_epi32(a30); acc[3][1] = _mm512_reduce_add_epi32(a31);
            acc[3][2] = _mm512_reduce_add_epi32(a32); acc[3][3] = _mm512_reduce_add_epi32(a33);
            for (r = 0; r < rows; r++)
                for (s = 0; s < ns; s++)
                    out[(size_t)(s0 + s) * q->cout + o + r] = fer__q8_out(acc[r][s], A[o + r], B[o + r], q->act);
        }
    }
}
#endif /* FER__X86 */

static void fer__q8_dense_forward(fer_isa isa, int vnni, const fer__q8 *q, int n, float *out, const float *in,
                                  unsigned char *buf)
{
#if defined(FER__X86)
    if (isa == FER_ISA_AVX512 && vnni) { fer__q8_dense_vnni(q, n, out, in, buf); return; }
#else
    (void)isa; (void)vnni;
#endif
    fer__q8_dense_ref(q, n, out, in, buf);
}

/* Row helpers for batch norm and friends, per ISA: sum, centred sum of squares,
   y = a*x + b, and dx += a*dy + b*x + c. */
static float fer__vsum_scalar(int n, const float *x, float m, int sq)
{
    float a[8] = { 0, 0, 0, 0, 0, 0, 0, 0 }, r = 0.0f;
    int i = 0, k;
    for (; i + 8 <= n; i += 8)
        for (k = 0; k < 8; k++) { float d = x[i + k] - m; a[k] += sq ? d * d : d; }
    for (; i < n; i++) { float d = x[i] - m; r += sq ? d * d : d; }
    for (k = 0; k < 8; k++) r += a[k];
    return r;
}
#if defined(FER__X86)
FER__AVX512 static float fer__vsum_avx512(int n, const float *x, float m, int sq)
{
    /* four accumulators: one would chain every add on the last */
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, vm = _mm512_set1_ps(m);
    int i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(x + i), vm), d1 = _mm512_sub_ps(_mm512_loadu_ps(x + i + 16), vm);
        __m512 d2 = _mm512_sub_ps(_mm512_loadu_ps(x + i + 32), vm), d3 = _mm512_sub_ps(_mm512_loadu_ps(x + i + 48), vm);
        if (sq) {
            a0 = _mm512_fmadd_ps(d0, d0, a0); a1 = _mm512_fmadd_ps(d1, d1, a1);
            a2 = _mm512_fmadd_ps(d2, d2, a2); a3 = _mm512_fmadd_ps(d3, d3, a3);
        } else {
            a0 = _mm512_add_ps(a0, d0); a1 = _mm512_add_ps(a1, d1);
            a2 = _mm512_add_ps(a2, d2); a3 = _mm512_add_ps(a3, d3);
        }
    }
    for (; i < n; i += 16) {
        __mmask16 k = (__mmask16)(n - i >= 16 ? 0xFFFF : (1u << (n - i)) - 1u);
        __m512 d = _mm512_maskz_sub_ps(k, _mm512_maskz_loadu_ps(k, x + i), vm);
        a0 = sq ? _mm512_fmadd_ps(d, d, a0) : _mm512_add_ps(a0, d);
    }
    return fer__hsum512(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}
/* One pass, two sums: s[0] = sum (x-m), s[1] = sum (x-m)^2 (dy: NULL), or, with
   dy, s[0] = sum dy, s[1] = sum dy*(x-m). Two accumulators per sum. */
FER__AVX512 static void fer__vsum2_avx512(int n, const float *x, const float *dy, float m, float *s)
{
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, b0 = a0, b1 = a0, vm = _mm512_set1_ps(m);
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + 16), d0, d1;
        x0 = _mm512_sub_ps(x0, vm); x1 = _mm512_sub_ps(x1, vm);
        if (dy) { d0 = _mm512_loadu_ps(dy + i); d1 = _mm512_loadu_ps(dy + i + 16); }
        else { d0 = x0; d1 = x1; }
        a0 = _mm512_add_ps(a0, d0); a1 = _mm512_add_ps(a1, d1);
        b0 = _mm512_fmadd_ps(d0, x0, b0); b1 = _mm512_fmadd_ps(d1, x1, b1);
    }
    for (; i < n; i += 16) {
        __mmask16 k = (__mmask16)(n - i >= 16 ? 0xFFFF : (1u << (n - i)) - 1u);
        __m512 x0 = _mm512_maskz_sub_ps(k, _mm512_maskz_loadu_ps(k, x + i), vm), d0;
        d0 = dy ? _mm512_maskz_loadu_ps(k, dy + i) : x0;
        a0 = _mm512_add_ps(a0, d0);
        b0 = _mm512_fmadd_ps(d0, x0, b0);
    }
    s[0] = fer__hsum512(_mm512_add_ps(a0, a1));
    s[1] = fer__hsum512(_mm512_add_ps(b0, b1));
}
FER__AVX512 static void fer__vaffine_avx512(int n, float *y, const float *x, float x0, float a, float b)
{
    __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b), v0 = _mm512_set1_ps(x0);
    int i = 0;
    for (; i < n; i += 16) {
        __mmask16 k = (__mmask16)(n - i >= 16 ? 0xFFFF : (1u << (n - i)) - 1u);
        __m512 v = _mm512_maskz_loadu_ps(k, x + i);
        if (x0 != 0.0f) v = _mm512_sub_ps(v, v0);
        _mm512_mask_storeu_ps(y + i, k, _mm512_fmadd_ps(v, va, vb));
    }
}
FER__AVX512 static void fer__vaxpbypc_avx512(int n, float *dx, const float *dy, const float *x,
                                             float a, float b, float c, int assign)
{
    __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b), vc = _mm512_set1_ps(c);
    int i = 0;
    for (; i < n; i += 16) {
        __mmask16 k = (__mmask16)(n - i >= 16 ? 0xFFFF : (1u << (n - i)) - 1u);
        __m512 t = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, dy + i), va,
                                   _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, x + i), vb, vc));
        _mm512_mask_storeu_ps(dx + i, k, assign ? t : _mm512_add_ps(_mm512_maskz_loadu_ps(k, dx + i), t));
    }
}
/* The lanes of dy that pass the ReLU (six: ReLU6) whose output is z: 0 < z (< 6). */
/* The lanes of k where the ReLU (hi = inf) or ReLU6 (hi = 6) after a batch norm
   passes the gradient, from the norm's input x: its output (x - r[0]) r[1] + r[2]
   recomputed with fer__vaffine_avx512's operations, so the mask is the forward's
   bit for bit (the output itself is not read: one stream less in each pass). */
FER__AVX512 static inline __mmask16 fer__relu_pass512(__mmask16 k, __m512 x, const __m512 *r, __m512 hi)
{
    __m512 t = _mm512_fmadd_ps(_mm512_sub_ps(x, r[0]), r[1], r[2]);
    return _mm512_mask_cmp_ps_mask(_mm512_cmp_ps_mask(t, _mm512_setzero_ps(), _CMP_GT_OQ) & k, t, hi, _CMP_LT_OQ);
}
FER__AVX512 static inline void fer__relu_vec512(const float *rl, __m512 *r)
{
    r[0] = _mm512_set1_ps(rl[0]); r[1] = _mm512_set1_ps(rl[1]); r[2] = _mm512_set1_ps(rl[2]);
}
/* fer__vsum2_avx512 (with dy) and fer__vaxpbypc_avx512 of dy masked by that
   ReLU: a batch norm's backward runs the backward of the ReLU after it. rl: the
   forward's shift x0 and affine a, b of the channel. */
FER__AVX512 static void fer__vsum2_relu_avx512(int n, const float *x, const float *dy, const float *rl, int six,
                                               float m, float *s)
{
    /* the sums in fer__vsum2_avx512's order, so the result is the unfused one */
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, b0 = a0, b1 = a0, vm = _mm512_set1_ps(m);
    __m512 hi = _mm512_set1_ps(six ? 6.0f : INFINITY), r[3];
    int i = 0;
    fer__relu_vec512(rl, r);
    for (; i + 32 <= n; i += 32) {
        __m512 v0 = _mm512_loadu_ps(x + i), v1 = _mm512_loadu_ps(x + i + 16);
        __m512 x0 = _mm512_sub_ps(v0, vm), x1 = _mm512_sub_ps(v1, vm);
        __m512 d0 = _mm512_maskz_loadu_ps(fer__relu_pass512(0xFFFF, v0, r, hi), dy + i);
        __m512 d1 = _mm512_maskz_loadu_ps(fer__relu_pass512(0xFFFF, v1, r, hi), dy + i + 16);
        a0 = _mm512_add_ps(a0, d0); a1 = _mm512_add_ps(a1, d1);
        b0 = _mm512_fmadd_ps(d0, x0, b0); b1 = _mm512_fmadd_ps(d1, x1, b1);
    }
    for (; i < n; i += 16) {
        __mmask16 k = (__mmask16)(n - i >= 16 ? 0xFFFF : (1u << (n - i)) - 1u), q;
        __m512 v = _mm512_maskz_loadu_ps(k, x + i), x0 = _mm512_maskz_sub_ps(k, v, vm), d0;
        q = fer__relu_pass512(k, v, r, hi);
        d0 = _mm512_maskz_loadu_ps(q, dy + i);
        a0 = _mm512_add_ps(a0, d0);
        b0 = _mm512_fmadd_ps(d0, x0, b0);
    }
    s[0] = fer__hsum512(_mm512_add_ps(a0, a1));
    s[1] = fer__hsum512(_mm512_add_ps(b0, b1));
}
FER__AVX512 static void fer__vaxpbypc_relu_avx512(int n, float *dx, const float *dy, const float *rl, int six,
                                                  const float *x, float a, float b, float c, int assign)
{
    __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b), vc = _mm512_set1_ps(c);
    __m512 hi = _mm512_set1_ps(six ? 6.0f : INFINITY), r[3];
    int i;
    fer__relu_vec512(rl, r);
    for (i = 0; i < n; i += 16) {
        __mmask16 k = (__mmask16)(n - i >= 16 ? 0xFFFF : (1u << (n - i)) - 1u);
        __m512 v = _mm512_maskz_loadu_ps(k, x + i);
        __m512 t = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(fer__relu_pass512(k, v, r, hi), dy + i), va,
                                   _mm512_fmadd_ps(v, vb, vc));
        _mm512_mask_storeu_ps(dx + i, k, assign ? t : _mm512_add_ps(_mm512_maskz_loadu_ps(k, dx + i), t));
    }
}
/* The AVX2 twins of the batch norm's vector passes, one function each for the
   plain and the ReLU-masked forms (rl NULL: no mask, else as the AVX-512 ones):
   8 lanes, a partial last vector through masked loads (its lanes off the plane
   zero, so they add nothing). */
FER__AVX2 static __m256 fer__relu_pass256(__m256 x, const __m256 *r, __m256 hi)
{
    __m256 t = _mm256_fmadd_ps(_mm256_sub_ps(x, r[0]), r[1], r[2]);
    return _mm256_and_ps(_mm256_cmp_ps(t, _mm256_setzero_ps(), _CMP_GT_OQ), _mm256_cmp_ps(t, hi, _CMP_LT_OQ));
}
FER__AVX2 static void fer__relu_vec256(const float *rl, __m256 *r)
{
    r[0] = _mm256_set1_ps(rl ? rl[0] : 0.0f); r[1] = _mm256_set1_ps(rl ? rl[1] : 0.0f);
    r[2] = _mm256_set1_ps(rl ? rl[2] : 0.0f);
}
FER__AVX2 static float fer__vsum_avx2(int n, const float *x, float m, int sq)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, vm = _mm256_set1_ps(m);
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + i), vm), d1 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 8), vm);
        __m256 d2 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 16), vm), d3 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 24), vm);
        if (sq) {
            a0 = _mm256_fmadd_ps(d0, d0, a0); a1 = _mm256_fmadd_ps(d1, d1, a1);
            a2 = _mm256_fmadd_ps(d2, d2, a2); a3 = _mm256_fmadd_ps(d3, d3, a3);
        } else {
            a0 = _mm256_add_ps(a0, d0); a1 = _mm256_add_ps(a1, d1);
            a2 = _mm256_add_ps(a2, d2); a3 = _mm256_add_ps(a3, d3);
        }
    }
    for (; i < n; i += 8) {
        __m256i k = fer__mask256(n - i);
        __m256 d = _mm256_and_ps(_mm256_castsi256_ps(k), _mm256_sub_ps(_mm256_maskload_ps(x + i, k), vm));
        a0 = sq ? _mm256_fmadd_ps(d, d, a0) : _mm256_add_ps(a0, d);
    }
    return fer__hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}
FER__AVX2 static void fer__vsum2_avx2(int n, const float *x, const float *dy, const float *rl, int six, float m,
                                      float *s)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, b0 = a0, b1 = a0, vm = _mm256_set1_ps(m);
    __m256 hi = _mm256_set1_ps(six ? 6.0f : INFINITY), all = _mm256_castsi256_ps(_mm256_set1_epi32(-1)), r[3];
    int i = 0;
    fer__relu_vec256(rl, r);
    for (; i + 16 <= n; i += 16) {
        __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8), d0, d1;
        __m256 x0 = _mm256_sub_ps(v0, vm), x1 = _mm256_sub_ps(v1, vm);
        if (dy) {
            d0 = _mm256_and_ps(rl ? fer__relu_pass256(v0, r, hi) : all, _mm256_loadu_ps(dy + i));
            d1 = _mm256_and_ps(rl ? fer__relu_pass256(v1, r, hi) : all, _mm256_loadu_ps(dy + i + 8));
        } else { d0 = x0; d1 = x1; }
        a0 = _mm256_add_ps(a0, d0); a1 = _mm256_add_ps(a1, d1);
        b0 = _mm256_fmadd_ps(d0, x0, b0); b1 = _mm256_fmadd_ps(d1, x1, b1);
    }
    for (; i < n; i += 8) {
        __m256i k = fer__mask256(n - i);
        __m256 v = _mm256_maskload_ps(x + i, k), x0 = _mm256_and_ps(_mm256_castsi256_ps(k), _mm256_sub_ps(v, vm)), d0 = x0;
        if (dy) d0 = _mm256_and_ps(rl ? fer__relu_pass256(v, r, hi) : all, _mm256_maskload_ps(dy + i, k));
        a0 = _mm256_add_ps(a0, d0);
        b0 = _mm256_fmadd_ps(d0, x0, b0);
    }
    s[0] = fer__hsum256(_mm256_add_ps(a0, a1));
    s[1] = fer__hsum256(_mm256_add_ps(b0, b1));
}
FER__AVX2 static void fer__vaffine_avx2(int n, float *y, const float *x, float x0, float a, float b)
{
    __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b), v0 = _mm256_set1_ps(x0);
    int i;
    for (i = 0; i < n; i += 8) {
        int full = n - i >= 8;
        __m256i k = fer__mask256(n - i);
        __m256 v = fer__ld256(x + i, full, k);
        if (x0 != 0.0f) v = _mm256_sub_ps(v, v0);
        fer__st256(y + i, full, k, _mm256_fmadd_ps(v, va, vb));
    }
}
FER__AVX2 static void fer__vaxpbypc_avx2(int n, float *dx, const float *dy, const float *rl, int six,
                                         const float *x, float a, float b, float c, int assign)
{
    __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b), vc = _mm256_set1_ps(c);
    __m256 hi = _mm256_set1_ps(six ? 6.0f : INFINITY), r[3];
    int i;
    fer__relu_vec256(rl, r);
    for (i = 0; i < n; i += 8) {
        int full = n - i >= 8;
        __m256i k = fer__mask256(n - i);
        __m256 d = fer__ld256(dy + i, full, k), v = fer__ld256(x + i, full, k), t;
        if (rl) d = _mm256_and_ps(fer__relu_pass256(v, r, hi), d);
        t = _mm256_fmadd_ps(d, va, _mm256_fmadd_ps(v, vb, vc));
        fer__st256(dx + i, full, k, assign ? t : _mm256_add_ps(fer__ld256(dx + i, full, k), t));
    }
}
#endif
static float fer__vsum(fer_isa isa, int n, const float *x, float m, int sq)
{
#if defined(FER__X86)
    if (isa == FER_ISA_AVX512) return fer__vsum_avx512(n, x, m, sq);
    if (isa == FER_ISA_AVX2) return fer__vsum_avx2(n, x, m, sq);
#endif
    (void)isa;
    return fer__vsum_scalar(n, x, m, sq);
}
/* y = (x - x0) a + b: the batch norm's affine, one statement for the forward and
   the mask its backward recomputes, so both round alike */
static float fer__affine1(float x, float x0, float a, float b)
{
    return (x - x0) * a + b;
}
/* dy where the ReLU (six: ReLU6) after a batch norm passes it, else 0; its
   output recomputed from the norm's input x and rl = { x0, a, b } */
static float fer__relu_dy(const float *dy, const float *x, const float *rl, int six, int i)
{
    float z = fer__affine1(x[i], rl[0], rl[1], rl[2]);
    return z > 0.0f && (!six || z < 6.0f) ? dy[i] : 0.0f;
}
/* s[0] = sum (x-m), s[1] = sum (x-m)^2 (dy NULL), or s[0] = sum dy, s[1] = sum
   dy*(x-m); rl non-NULL: dy masked by the ReLU (act 1) or ReLU6 (act 2) after the
   batch norm whose input is x and forward shift and affine rl = { x0, a, b } (its
   backward runs that activation's, the activation's output recomputed). */
static void fer__vsum2(fer_isa isa, int n, const float *x, const float *dy, const float *rl, int act,
                       float m, float *s)
{
    float a[8] = { 0, 0, 0, 0, 0, 0, 0, 0 }, b[8] = { 0, 0, 0, 0, 0, 0, 0, 0 };
    int i = 0, k;
#if defined(FER__X86)
    if (isa == FER_ISA_AVX512 && dy && rl) { fer__vsum2_relu_avx512(n, x, dy, rl, act == 2, m, s); return; }
    if (isa == FER_ISA_AVX512) { fer__vsum2_avx512(n, x, dy, m, s); return; }
    if (isa == FER_ISA_AVX2) { fer__vsum2_avx2(n, x, dy, rl, act == 2, m, s); return; }
#endif
    (void)isa;
    for (; i + 8 <= n; i += 8)
        for (k = 0; k < 8; k++) {
            float v = x[i + k] - m, d = !dy ? v : rl ? fer__relu_dy(dy, x, rl, act == 2, i + k) : dy[i + k];
            a[k] += d; b[k] += d * v;
        }
    for (; i < n; i++) {
        float v = x[i] - m, d = !dy ? v : rl ? fer__relu_dy(dy, x, rl, act == 2, i) : dy[i];
        a[0] += d; b[0] += d * v;
    }
    s[0] = s[1] = 0.0f;
    for (k = 0; k < 8; k++) { s[0] += a[k]; s[1] += b[k]; }
}
/* y = (x - x0) * a + b */
static void fer__vaffine_shift(fer_isa isa, int n, float *y, const float *x, float x0, float a, float b)
{
    int i;
#if defined(FER__X86)
    if (isa == FER_ISA_AVX512) { fer__vaffine_avx512(n, y, x, x0, a, b); return; }
    if (isa == FER_ISA_AVX2) { fer__vaffine_avx2(n, y, x, x0, a, b); return; }
#endif
    (void)isa;
    for (i = 0; i < n; i++) y[i] = fer__affine1(x[i], x0, a, b);
}
static void fer__vaffine(fer_isa isa, int n, float *y, const float *x, float a, float b)
{
    fer__vaffine_shift(isa, n, y, x, 0.0f, a, b);
}
/* dx (+)= a*dy + b*x + c: assign for the first writer of dx */
/* dx (= or +=) a*dy + b*x + c; rl non-NULL: dy masked as in fer__vsum2 */
static void fer__vaxpbypc(fer_isa isa, int n, float *dx, const float *dy, const float *rl, int act,
                          const float *x, float a, float b, float c, int assign)
{
    int i;
#if defined(FER__X86)
    if (isa == FER_ISA_AVX512 && rl) { fer__vaxpbypc_relu_avx512(n, dx, dy, rl, act == 2, x, a, b, c, assign); return; }
    if (isa == FER_ISA_AVX512) { fer__vaxpbypc_avx512(n, dx, dy, x, a, b, c, assign); return; }
    if (isa == FER_ISA_AVX2) { fer__vaxpbypc_avx2(n, dx, dy, rl, act == 2, x, a, b, c, assign); return; }
#endif
    (void)isa;
    for (i = 0; i < n; i++)
        dx[i] = (assign ? 0.0f : dx[i]) + (a * (rl ? fer__relu_dy(dy, x, rl, act == 2, i) : dy[i]) + b * x[i] + c);
}

/* Batch norm runs over groups of up to FER__BN_GROUP channels, each pass over a
   group's planes in memory order (sample by sample): a channel of a large batch
   is many short planes far apart, and walking them channel by channel defeats
   the prefetcher (a 32 x 96 x 48 x 48 forward took 5.0 ms that way, 2.6 now).
   Each (sample, channel) plane is summed in float, planes are combined in double.
   act 1, 2: ReLU or ReLU6 on the output, per plane while it is in L1. ab (2c
   floats, or NULL): each channel's affine, y = (x - x0) a + b with x0 its first
   input (sample 0), kept for the backward to recompute the activation's mask. */
#define FER__BN_GROUP 128
static void fer__bn_forward_train(fer_isa isa, float *out, float *mean, float *var, float *invstd, float *ab,
                                  const float *in, const float *gamma, const float *beta,
                                  int n, int c, int hw, float eps, int act)
{
    int s, c0, k;
    double cnt = (double)n * hw;
    for (c0 = 0; c0 < c; c0 += FER__BN_GROUP) {
        int cg = c - c0 < FER__BN_GROUP ? c - c0 : FER__BN_GROUP;
        double sum[FER__BN_GROUP], sq[FER__BN_GROUP];
        float x0[FER__BN_GROUP], sc[FER__BN_GROUP], sh[FER__BN_GROUP];
        for (k = 0; k < cg; k++) { sum[k] = sq[k] = 0.0; x0[k] = in[(size_t)(c0 + k) * hw]; }
        /* one pass: sums of x - x0 and its square around the channel's first value
           (a shift near the mean keeps the difference of squares accurate) */
        for (s = 0; s < n; s++)
            for (k = 0; k < cg; k++) {
                float t[2];
                fer__vsum2(isa, hw, in + ((size_t)s * c + c0 + k) * hw, NULL, NULL, 0, x0[k], t);
                sum[k] += t[0]; sq[k] += t[1];
            }
        for (k = 0; k < cg; k++) {
            double d = sum[k] / cnt, v = sq[k] / cnt - d * d;
            float is;
            if (v < 0.0) v = 0.0;
            is = (float)(1.0 / sqrt(v + eps));
            mean[c0 + k] = (float)(x0[k] + d);
            var[c0 + k] = (float)v;
            invstd[c0 + k] = is;
            sc[k] = is * gamma[c0 + k];   /* (x - x0) * a + (beta - (m - x0) * a): no cancellation */
            sh[k] = beta[c0 + k] - (float)d * is * gamma[c0 + k];
            if (ab) { ab[c0 + k] = sc[k]; ab[c + c0 + k] = sh[k]; }
        }
        for (s = 0; s < n; s++)
            for (k = 0; k < cg; k++) {
                float *y = out + ((size_t)s * c + c0 + k) * hw;
                fer__vaffine_shift(isa, hw, y, in + ((size_t)s * c + c0 + k) * hw, x0[k], sc[k], sh[k]);
                if (act) fer__vrelu(isa, act == 2, (size_t)hw, y, y);
            }
    }
}
FERDEF void fer_batchnorm_forward_train(float *out, float *mean, float *var, float *invstd,
                                        const float *in,
                                        const float *gamma, const float *beta,
                                        int n, int c, int hw, float eps)
{
    fer__bn_forward_train(FER_ISA_SCALAR, out, mean, var, invstd, NULL, in, gamma, beta, n, c, hw, eps, 0);
}

static void fer__bn_forward_infer(fer_isa isa, float *out, const float *in, const float *gamma,
                                  const float *beta, const float *rmean, const float *rvar,
                                  int n, int c, int hw, float eps)
{
    int s, ch;
    for (s = 0; s < n; s++)
        for (ch = 0; ch < c; ch++) {
            float sc = gamma[ch] / sqrtf(rvar[ch] + eps);
            fer__vaffine(isa, hw, out + ((size_t)s * c + ch) * hw, in + ((size_t)s * c + ch) * hw,
                         sc, beta[ch] - rmean[ch] * sc);
        }
}
FERDEF void fer_batchnorm_forward_infer(float *out, const float *in, const float *gamma,
                                        const float *beta, const float *rmean, const float *rvar,
                                        int n, int c, int hw, float eps)
{
    fer__bn_forward_infer(FER_ISA_SCALAR, out, in, gamma, beta, rmean, rvar, n, c, hw, eps);
}

/* dx = gamma*invstd/m * (m*dy - sum(dy) - xhat*sum(dy*xhat)), m = n*hw, written as
   dx += a*dy + b*x + c so one pass does it. */
/* ab non-NULL: dout is the gradient of the ReLU (act 1) or ReLU6 (act 2) after the
   norm, ab the forward's affine (fer__bn_forward_train); the activation's backward
   runs here, on the fly, its output recomputed from the input. */
static void fer__bn_backward(fer_isa isa, float *din, float *dgamma, float *dbeta, const float *dout,
                             const float *ab, int act, const float *in, const float *mean,
                             const float *invstd, const float *gamma, int n, int c, int hw, int assign)
{
    int s, c0, k;
    double cnt = (double)n * hw;
    for (c0 = 0; c0 < c; c0 += FER__BN_GROUP) {
        int cg = c - c0 < FER__BN_GROUP ? c - c0 : FER__BN_GROUP;
        double sdy[FER__BN_GROUP], sdyx[FER__BN_GROUP];
        float ka[FER__BN_GROUP], kb[FER__BN_GROUP], kc[FER__BN_GROUP], rl[FER__BN_GROUP][3];
        for (k = 0; k < cg; k++) {
            sdy[k] = sdyx[k] = 0.0;
            if (ab) { rl[k][0] = in[(size_t)(c0 + k) * hw]; rl[k][1] = ab[c0 + k]; rl[k][2] = ab[c + c0 + k]; }
        }
        for (s = 0; s < n; s++)   /* sum dy and sum dy*x in one pass */
            for (k = 0; k < cg; k++) {
                size_t o = ((size_t)s * c + c0 + k) * hw;
                float t[2];
                fer__vsum2(isa, hw, in + o, dout + o, ab ? rl[k] : NULL, act, mean[c0 + k], t);
                sdy[k] += t[0]; sdyx[k] += t[1];
            }
        for (k = 0; k < cg; k++) {
            float m = mean[c0 + k], is = invstd[c0 + k], k1 = gamma[c0 + k] * is, k2, k3;
            sdyx[k] *= is;     /* sum dy * xhat */
            if (dgamma) dgamma[c0 + k] += (float)sdyx[k];
            if (dbeta) dbeta[c0 + k] += (float)sdy[k];
            k2 = (float)(sdy[k] / cnt);
            k3 = (float)(sdyx[k] / cnt);
            ka[k] = k1; kb[k] = -k1 * is * k3; kc[k] = k1 * (m * is * k3 - k2);
        }
        if (din)
            for (s = 0; s < n; s++)
                for (k = 0; k < cg; k++) {
                    size_t o = ((size_t)s * c + c0 + k) * hw;
                    fer__vaxpbypc(isa, hw, din + o, dout + o, ab ? rl[k] : NULL, act, in + o,
                                  ka[k], kb[k], kc[k], assign);
                }
    }
}
FERDEF void fer_batchnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                                   const float *in, const float *mean, const float *invstd,
                                   const float *gamma, int n, int c, int hw)
{
    fer__bn_backward(FER_ISA_SCALAR, din, dgamma, dbeta, dout, NULL, 0, in, mean, invstd, gamma, n, c, hw, 0);
}

FERDEF void fer_batchnorm_backward_infer(float *din, float *dgamma, float *dbeta,
                                         const float *dout, const float *in, const float *gamma,
                                         const float *rmean, const float *rvar,
                                         int n, int c, int hw, float eps)
{
    int s, ch, i;
    for (ch = 0; ch < c; ch++) {
        float is = 1.0f / sqrtf(rvar[ch] + eps), m = rmean[ch];
        double sdy = 0.0, sdyx = 0.0;
        for (s = 0; s < n; s++) {
            const float *x = in + ((size_t)s * c + ch) * hw, *dy = dout + ((size_t)s * c + ch) * hw;
            float *dx = din ? din + ((size_t)s * c + ch) * hw : NULL;
            for (i = 0; i < hw; i++) {
                sdy += dy[i];
                sdyx += (double)dy[i] * (x[i] - m) * is;
                if (dx) dx[i] += dy[i] * gamma[ch] * is;
            }
        }
        if (dgamma) dgamma[ch] += (float)sdyx;
        if (dbeta) dbeta[ch] += (float)sdy;
    }
}

/* ReLU (six == 0) and ReLU6 (six != 0), per ISA. The scalar loops are the
   reference: y = x > 0 ? min(x, 6) : 0, so NaN and -0 give +0 (maxps returns its
   second operand on NaN or equal zeros, which is what the SIMD paths rely on);
   backward adds dy where 0 < y (< 6), and leaves dx untouched elsewhere. */
static void fer__vrelu_scalar(int six, size_t n, float *y, const float *x)
{
    size_t i;
    if (six) for (i = 0; i < n; i++) y[i] = x[i] > 0.0f ? (x[i] < 6.0f ? x[i] : 6.0f) : 0.0f;
    else for (i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}
/* assign: dx = mask * dy instead of dx += mask * dy (the first writer of dx) */
static void fer__vrelu_backward_scalar(int six, int assign, size_t n, float *dx, const float *dy, const float *y)
{
    size_t i;
    for (i = 0; i < n; i++) {
        int on = y[i] > 0.0f && (!six || y[i] < 6.0f);
        if (assign) dx[i] = on ? dy[i] : 0.0f;
        else if (on) dx[i] += dy[i];
    }
}
#if defined(FER__X86)
FER__AVX512 static void fer__vrelu_avx512(int six, size_t n, float *y, const float *x)
{
    __m512 z = _mm512_setzero_ps(), hi = _mm512_set1_ps(six ? 6.0f : INFINITY);
    size_t i;
    for (i = 0; i < n; i += 16) {
        __mmask16 k = (__mmask16)(n - i >= 16 ? 0xFFFF : (1u << (n - i)) - 1u);
        _mm512_mask_storeu_ps(y + i, k, _mm512_min_ps(_mm512_max_ps(_mm512_maskz_loadu_ps(k, x + i), z), hi));
    }
}
FER__AVX512 static void fer__vrelu_backward_avx512(int six, int assign, size_t n, float *dx, const float *dy,
                                                   const float *y)
{
    __m512 z = _mm512_setzero_ps(), hi = _mm512_set1_ps(six ? 6.0f : INFINITY);
    size_t i;
    for (i = 0; i < n; i += 16) {
        __mmask16 k = (__mmask16)(n - i >= 16 ? 0xFFFF : (1u << (n - i)) - 1u);
        __m512 v = _mm512_maskz_loadu_ps(k, y + i);
        __mmask16 pos = _mm512_mask_cmp_ps_mask(k, v, z, _CMP_GT_OQ);
        __mmask16 on = six ? _mm512_mask_cmp_ps_mask(pos, v, hi, _CMP_LT_OQ) : pos;
        if (assign) { _mm512_mask_storeu_ps(dx + i, k, _mm512_maskz_loadu_ps(on, dy + i)); continue; }
        _mm512_mask_storeu_ps(dx + i, on, _mm512_add_ps(_mm512_maskz_loadu_ps(on, dx + i), _mm512_maskz_loadu_ps(on, dy + i)));
    }
}
FER__AVX2 static void fer__vrelu_avx2(int six, size_t n, float *y, const float *x)
{
    __m256 z = _mm256_setzero_ps(), hi = _mm256_set1_ps(six ? 6.0f : INFINITY);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_min_ps(_mm256_max_ps(_mm256_loadu_ps(x + i), z), hi));
    if (i < n) {   /* masked, not the scalar loop: gcc's tail call into it skipped the vzeroupper, and
                      every SSE instruction after it ran slow (a 48-wide row's ReLU, 75 ns a call) */
        __m256i m = fer__mask256((int)(n - i));
        _mm256_maskstore_ps(y + i, m, _mm256_min_ps(_mm256_max_ps(_mm256_maskload_ps(x + i, m), z), hi));
    }
}
FER__AVX2 static void fer__vrelu_backward_avx2(int six, int assign, size_t n, float *dx, const float *dy,
                                               const float *y)
{
    __m256 z = _mm256_setzero_ps(), hi = _mm256_set1_ps(six ? 6.0f : INFINITY);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(y + i);
        __m256 on = _mm256_cmp_ps(v, z, _CMP_GT_OQ);
        if (six) on = _mm256_and_ps(on, _mm256_cmp_ps(v, hi, _CMP_LT_OQ));
        __m256 d = assign ? z : _mm256_loadu_ps(dx + i);
        _mm256_storeu_ps(dx + i, _mm256_blendv_ps(d, _mm256_add_ps(d, _mm256_loadu_ps(dy + i)), on));
    }
    if (i < n) {   /* masked (see fer__vrelu_avx2) */
        __m256i m = fer__mask256((int)(n - i));
        __m256 v = _mm256_maskload_ps(y + i, m), on = _mm256_cmp_ps(v, z, _CMP_GT_OQ);
        __m256 d = assign ? z : _mm256_maskload_ps(dx + i, m);
        if (six) on = _mm256_and_ps(on, _mm256_cmp_ps(v, hi, _CMP_LT_OQ));
        _mm256_maskstore_ps(dx + i, m, _mm256_blendv_ps(d, _mm256_add_ps(d, _mm256_maskload_ps(dy + i, m)), on));
    }
}
#endif
#if defined(FER__NEON)
static void fer__vrelu_neon(int six, size_t n, float *y, const float *x)
{
    float32x4_t z = vdupq_n_f32(0.0f), hi = vdupq_n_f32(six ? 6.0f : INFINITY);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {   /* vmaxq would keep NaN: select on x > 0 instead */
        float32x4_t v = vld1q_f32(x + i);
        vst1q_f32(y + i, vminq_f32(vbslq_f32(vcgtq_f32(v, z), v, z), hi));
    }
    fer__vrelu_scalar(six, n - i, y + i, x + i);
}
static void fer__vrelu_backward_neon(int six, int assign, size_t n, float *dx, const float *dy, const float *y)
{
    float32x4_t z = vdupq_n_f32(0.0f), hi = vdupq_n_f32(six ? 6.0f : INFINITY);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        float32x4_t v = vld1q_f32(y + i), d = assign ? z : vld1q_f32(dx + i);
        uint32x4_t on = vcgtq_f32(v, z);
        if (six) on = vandq_u32(on, vcltq_f32(v, hi));
        vst1q_f32(dx + i, vbslq_f32(on, vaddq_f32(d, vld1q_f32(dy + i)), d));
    }
    fer__vrelu_backward_scalar(six, assign, n - i, dx + i, dy + i, y + i);
}
#endif
static void fer__vrelu(fer_isa isa, int six, size_t n, float *y, const float *x)
{
#if defined(FER__X86)
    if (isa == FER_ISA_AVX512) { fer__vrelu_avx512(six, n, y, x); return; }
    if (isa == FER_ISA_AVX2) { fer__vrelu_avx2(six, n, y, x); return; }
#elif defined(FER__NEON)
    if (isa == FER_ISA_NEON) { fer__vrelu_neon(six, n, y, x); return; }
#endif
    (void)isa;
    fer__vrelu_scalar(six, n, y, x);
}
static void fer__vrelu_backward(fer_isa isa, int six, int assign, size_t n, float *dx, const float *dy,
                                const float *y)
{
#if defined(FER__X86)
    if (isa == FER_ISA_AVX512) { fer__vrelu_backward_avx512(six, assign, n, dx, dy, y); return; }
    if (isa == FER_ISA_AVX2) { fer__vrelu_backward_avx2(six, assign, n, dx, dy, y); return; }
#elif defined(FER__NEON)
    if (isa == FER_ISA_NEON) { fer__vrelu_backward_neon(six, assign, n, dx, dy, y); return; }
#endif
    (void)isa;
    fer__vrelu_backward_scalar(six, assign, n, dx, dy, y);
}
FERDEF void fer_relu_forward(float *out, const float *in, size_t len) { fer__vrelu_scalar(0, len, out, in); }
FERDEF void fer_relu_backward(float *din, const float *dout, const float *out, size_t len)
{
    fer__vrelu_backward_scalar(0, 0, len, din, dout, out);
}
FERDEF void fer_relu6_forward(float *out, const float *in, size_t len) { fer__vrelu_scalar(1, len, out, in); }
FERDEF void fer_relu6_backward(float *din, const float *dout, const float *out, size_t len)
{
    fer__vrelu_backward_scalar(1, 0, len, din, dout, out);
}
FERDEF void fer_leaky_relu_forward(float *out, const float *in, size_t len, float slope)
{
    size_t i;
    for (i = 0; i < len; i++) out[i] = in[i] > 0.0f ? in[i] : slope * in[i];
}
FERDEF void fer_leaky_relu_backward(float *din, const float *dout, const float *in, size_t len,
                                    float slope)
{
    size_t i;
    for (i = 0; i < len; i++) din[i] += in[i] > 0.0f ? dout[i] : slope * dout[i];
}
FERDEF void fer_sigmoid_forward(float *out, const float *in, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++) {
        float x = in[i];   /* two branches keep exp() from overflowing */
        if (x >= 0.0f) out[i] = 1.0f / (1.0f + expf(-x));
        else { float e = expf(x); out[i] = e / (1.0f + e); }
    }
}
FERDEF void fer_sigmoid_backward(float *din, const float *dout, const float *out, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++) din[i] += dout[i] * out[i] * (1.0f - out[i]);
}
FERDEF void fer_prelu_forward(float *out, const float *in, const float *slope, int n, int c, int hw)
{
    int s, ch, i;
    for (s = 0; s < n; s++)
        for (ch = 0; ch < c; ch++) {
            const float *x = in + ((size_t)s * c + ch) * hw;
            float *y = out + ((size_t)s * c + ch) * hw, a = slope[ch];
            for (i = 0; i < hw; i++) y[i] = x[i] > 0.0f ? x[i] : a * x[i];
        }
}
FERDEF void fer_prelu_backward(float *din, float *dslope, const float *dout, const float *in,
                               const float *slope, int n, int c, int hw)
{
    int s, ch, i;
    for (s = 0; s < n; s++)
        for (ch = 0; ch < c; ch++) {
            const float *x = in + ((size_t)s * c + ch) * hw, *dy = dout + ((size_t)s * c + ch) * hw;
            float *dx = din ? din + ((size_t)s * c + ch) * hw : NULL, a = slope[ch], ds = 0.0f;
            for (i = 0; i < hw; i++) {
                if (x[i] > 0.0f) { if (dx) dx[i] += dy[i]; }
                else { if (dx) dx[i] += a * dy[i]; ds += x[i] * dy[i]; }
            }
            if (dslope) dslope[ch] += ds;
        }
}

FERDEF void fer_softmax_forward(float *out, const float *in, int n, int c, int hw)
{
    int s, ch, i;
    for (s = 0; s < n; s++)
        for (i = 0; i < hw; i++) {
            const float *x = in + (size_t)s * c * hw + i;
            float *y = out + (size_t)s * c * hw + i, mx = -FLT_MAX;
            double sum = 0.0;
            for (ch = 0; ch < c; ch++) if (x[(size_t)ch * hw] > mx) mx = x[(size_t)ch * hw];
            for (ch = 0; ch < c; ch++) { y[(size_t)ch * hw] = expf(x[(size_t)ch * hw] - mx); sum += y[(size_t)ch * hw]; }
            for (ch = 0; ch < c; ch++) y[(size_t)ch * hw] = (float)(y[(size_t)ch * hw] / sum);
        }
}
/* dx_j = y_j * (dy_j - sum_k dy_k y_k) */
FERDEF void fer_softmax_backward(float *din, const float *dout, const float *out, int n, int c, int hw)
{
    int s, ch, i;
    for (s = 0; s < n; s++)
        for (i = 0; i < hw; i++) {
            const float *y = out + (size_t)s * c * hw + i, *dy = dout + (size_t)s * c * hw + i;
            float *dx = din + (size_t)s * c * hw + i;
            double dot = 0.0;
            for (ch = 0; ch < c; ch++) dot += (double)dy[(size_t)ch * hw] * y[(size_t)ch * hw];
            for (ch = 0; ch < c; ch++)
                dx[(size_t)ch * hw] += y[(size_t)ch * hw] * (dy[(size_t)ch * hw] - (float)dot);
        }
}

static int fer__pool_out(int h, int k, int s, int p) { return (h + 2 * p - k) / s + 1; }

/* The window of output (oy, ox) clipped to the input: rows [y0,y1), cols [x0,x1). */
static void fer__window(int o, int k, int s, int p, int size, int *lo, int *hi)
{
    int a = o * s - p, b = a + k;
    *lo = a < 0 ? 0 : a;
    *hi = b > size ? size : b;
}

/* One output row of a max pool, columns [ox0, ox1), with its clipped window rows
   [y0, y1): the first maximum in row-major order wins (so NaN wins only where
   it comes first). The reference the SIMD rows are tested against. */
static void fer__maxpool_row(const float *xp, int w, int y0, int y1, int k, int s, int p,
                             int ox0, int ox1, float *yp, int32_t *am)
{
    int ox, y, x;
    for (ox = ox0; ox < ox1; ox++) {
        int x0, x1, bi;
        float best;
        fer__window(ox, k, s, p, w, &x0, &x1);
        bi = y0 * w + x0;
        best = xp[bi];
        for (y = y0; y < y1; y++)
            for (x = x0; x < x1; x++)
                if (xp[y * w + x] > best) { best = xp[y * w + x]; bi = y * w + x; }
        yp[ox] = best;
        am[ox] = bi;
    }
}
#if defined(FER__X86)
/* Columns whose window lies inside the row, 16 at a time, for stride 1 or 2: the
   candidates of 16 outputs are one load (stride 1) or the even lanes of two
   (stride 2), compared in the scalar order, so results and argmax are identical. */
FER__AVX512 static void fer__maxpool_row_avx512(const float *xp, int w, int y0, int y1, int k, int s,
                                                int p, int ox0, int ox1, float *yp, int32_t *am)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i step = s == 2 ? even : _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    int ox, y, kx;
    for (ox = ox0; ox < ox1; ox += 16) {
        int cnt = ox1 - ox < 16 ? ox1 - ox : 16, need = (cnt - 1) * s + 1, first = 1;
        __mmask16 mo = (__mmask16)(cnt == 16 ? 0xFFFF : (1u << cnt) - 1u);
        __mmask16 m0 = (__mmask16)(need >= 16 ? 0xFFFF : (1u << need) - 1u);
        __mmask16 m1 = (__mmask16)(need <= 16 ? 0 : (1u << (need - 16)) - 1u);
        __m512 best = _mm512_setzero_ps();
        __m512i bi = _mm512_setzero_si512();
        for (y = y0; y < y1; y++)
            for (kx = 0; kx < k; kx++) {
                int at = y * w + ox * s - p + kx;
                __m512 v = _mm512_maskz_loadu_ps(m0, xp + at);
                __m512i idx = _mm512_add_epi32(_mm512_set1_epi32(at), step);
                if (s == 2) v = _mm512_permutex2var_ps(v, even, _mm512_maskz_loadu_ps(m1, xp + at + 16));
                if (first) { best = v; bi = idx; first = 0; }
                else {
                    __mmask16 gt = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ);
                    best = _mm512_mask_blend_ps(gt, best, v);
                    bi = _mm512_mask_blend_epi32(gt, bi, idx);
                }
            }
        _mm512_mask_storeu_ps(yp + ox, mo, best);
        _mm512_mask_storeu_epi32(am + ox, mo, bi);
    }
}
#endif
#if defined(FER__X86)
/* fer__maxpool_row_avx512 in AVX2, 8 columns at a time: the stride-2 candidates
   are the even lanes of two loads (fer__evod256); a partial last vector is
   stored through a small array (AMD's masked store is microcoded). 3x3 stride-2
   pools at batch 32: 16x48x48 2.41 -> 1.08 ms, 32x24x24 1.34 -> 0.72 ms. */
FER__AVX2 static void fer__maxpool_row_avx2(const float *xp, int w, int y0, int y1, int k, int s, int p, int ox0,
                                           int ox1, float *yp, int32_t *am)
{
    const __m256i step = s == 2 ? _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14) : _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    int ox, y, kx, i;
    for (ox = ox0; ox < ox1; ox += 8) {
        int cnt = ox1 - ox < 8 ? ox1 - ox : 8, need = (cnt - 1) * s + 1, first = 1;
        __m256i m0 = fer__mask256(need), m1 = fer__mask256(need - 8), bi = _mm256_setzero_si256();
        __m256 best = _mm256_setzero_ps();
        for (y = y0; y < y1; y++)
            for (kx = 0; kx < k; kx++) {
                int at = y * w + ox * s - p + kx;
                __m256 v = fer__ld256(xp + at, need >= 8, m0), od;
                __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(at), step);
                if (s == 2) fer__evod256(v, fer__ld256(xp + at + 8, need >= 16, m1), &v, &od);
                if (first) { best = v; bi = idx; first = 0; }
                else {
                    __m256 gt = _mm256_cmp_ps(v, best, _CMP_GT_OQ);
                    best = _mm256_blendv_ps(best, v, gt);
                    bi = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(bi), _mm256_castsi256_ps(idx), gt));
                }
            }
        if (cnt == 8) {
            _mm256_storeu_ps(yp + ox, best);
            _mm256_storeu_si256((__m256i *)(void *)(am + ox), bi);
        } else {
            float tb[8];
            int32_t ti[8];
            _mm256_storeu_ps(tb, best);
            _mm256_storeu_si256((__m256i *)(void *)ti, bi);
            for (i = 0; i < cnt; i++) { yp[ox + i] = tb[i]; am[ox + i] = ti[i]; }
        }
    }
}
#endif
#if defined(FER__X86)
/* Max pooling without argmax (inference), stride 1 or 2: per output row, the
   vertical max of its window rows into a -inf padded row t, then the horizontal
   max of k shifted (stride 1) or even-lane (stride 2) loads of t. The maximum
   is the same as the windowed scan's for every input without NaN. t: scratch of
   w + 2p + 64 floats. */
FER__AVX512 static void fer__maxpool_infer_avx512(float *out, const float *in, int planes, int h,
                                                  int w, int k, int s, int p, float *t)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    int oh = fer__pool_out(h, k, s, p), ow = fer__pool_out(w, k, s, p), pl, oy, x, ox, y, kx, tw = w + 2 * p;
    for (x = 0; x < tw + 48; x += 16) _mm512_storeu_ps(t + x, ninf);
    for (pl = 0; pl < planes; pl++) {
        const float *xp = in + (size_t)pl * h * w;
        float *yp = out + (size_t)pl * oh * ow;
        for (oy = 0; oy < oh; oy++, yp += ow) {
            int y0, y1;
            fer__window(oy, k, s, p, h, &y0, &y1);
            for (x = 0; x < w; x += 16) {
                __mmask16 m = (__mmask16)(w - x >= 16 ? 0xFFFF : (1u << (w - x)) - 1u);
                __m512 v = _mm512_maskz_loadu_ps(m, xp + (size_t)y0 * w + x);
                for (y = y0 + 1; y < y1; y++) v = _mm512_max_ps(v, _mm512_maskz_loadu_ps(m, xp + (size_t)y * w + x));
                _mm512_mask_storeu_ps(t + p + x, m, v);
            }
            for (ox = 0; ox < ow; ox += 16) {
                __mmask16 m = (__mmask16)(ow - ox >= 16 ? 0xFFFF : (1u << (ow - ox)) - 1u);
                __m512 v = ninf;
                for (kx = 0; kx < k; kx++) {
                    const float *tp = t + ox * s + kx;
                    __m512 u = _mm512_loadu_ps(tp);
                    if (s == 2) u = _mm512_permutex2var_ps(u, even, _mm512_loadu_ps(tp + 16));
                    v = _mm512_max_ps(v, u);
                }
                _mm512_mask_storeu_ps(yp + ox, m, v);
            }
        }
    }
}
/* fer__maxpool_infer_avx512 in AVX2 */
FER__AVX2 static void fer__maxpool_infer_avx2(float *out, const float *in, int planes, int h, int w, int k,
                                              int s, int p, float *t)
{
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    int oh = fer__pool_out(h, k, s, p), ow = fer__pool_out(w, k, s, p), pl, oy, x, ox, y, kx, tw = w + 2 * p;
    for (x = 0; x < tw + 48; x += 8) _mm256_storeu_ps(t + x, ninf);
    for (pl = 0; pl < planes; pl++) {
        const float *xp = in + (size_t)pl * h * w;
        float *yp = out + (size_t)pl * oh * ow;
        for (oy = 0; oy < oh; oy++, yp += ow) {
            int y0, y1;
            fer__window(oy, k, s, p, h, &y0, &y1);
            for (x = 0; x < w; x += 8) {
                int full = w - x >= 8;
                __m256i m = fer__mask256(w - x);
                __m256 v = fer__ld256(xp + (size_t)y0 * w + x, full, m);
                for (y = y0 + 1; y < y1; y++) v = _mm256_max_ps(v, fer__ld256(xp + (size_t)y * w + x, full, m));
                fer__st256(t + p + x, full, m, v);
            }
            for (ox = 0; ox < ow; ox += 8) {
                int full = ow - ox >= 8;
                __m256i m = fer__mask256(ow - ox);
                __m256 v = ninf, od;
                for (kx = 0; kx < k; kx++) {
                    const float *tp = t + ox * s + kx;
                    __m256 u = _mm256_loadu_ps(tp);
                    if (s == 2) fer__evod256(u, _mm256_loadu_ps(tp + 8), &u, &od);
                    v = _mm256_max_ps(v, u);
                }
                fer__st256(yp + ox, full, m, v);
            }
        }
    }
}
#endif

#if defined(FER__X86)
/* Max pooling of small planes (AVX-512), 16 planes a vector: lane l holds plane
   pl + l, so each window tap is one gather at a stride of a plane, the window's
   bounds are the same for all lanes, and the scan is the scalar one (first tap
   in row-major order, then strictly greater), so results and argmax (NULL: not
   kept) are identical. Rows of a few outputs left the per-row kernels mostly
   idle: 128 planes of 6x6 at batch 32 took 10 ns an output. Used for output rows
   shorter than these (batch 32, 3x3 stride 2 on 6x6 / 12x12 / 24x24 / 48x48 input:
   with argmax 387 -> 65, 397 -> 154, 431 -> 325, 1036 -> 996 us; without, 254 ->
   85, 230 -> 190, 283 -> 399 us on 24x24). */
#define FER__POOL_PLANES_ARGMAX 16
#define FER__POOL_PLANES 8
FER__AVX512 static void fer__maxpool_planes_avx512(float *out, int32_t *argmax, const float *in, int planes,
                                                   int h, int w, int k, int s, int p)
{
    int oh = fer__pool_out(h, k, s, p), ow = fer__pool_out(w, k, s, p), ohw = oh * ow, hw = h * w;
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512i vin = _mm512_mullo_epi32(lane, _mm512_set1_epi32(hw)), vout = _mm512_mullo_epi32(lane, _mm512_set1_epi32(ohw));
    int pl, oy, ox, y, x;
    for (pl = 0; pl < planes; pl += 16) {
        __mmask16 m = (__mmask16)(planes - pl >= 16 ? 0xFFFF : (1u << (planes - pl)) - 1u);
        const float *ip = in + (size_t)pl * hw;
        float *op = out + (size_t)pl * ohw;
        for (oy = 0; oy < oh; oy++)
            for (ox = 0; ox < ow; ox++) {
                int y0, y1, x0, x1;
                __m512 best;
                __m512i bi;
                fer__window(oy, k, s, p, h, &y0, &y1);
                fer__window(ox, k, s, p, w, &x0, &x1);
                best = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, vin, ip + y0 * w + x0, 4);
                bi = _mm512_set1_epi32(y0 * w + x0);
                for (y = y0; y < y1; y++)
                    for (x = y == y0 ? x0 + 1 : x0; x < x1; x++) {
                        __m512 v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, vin, ip + y * w + x, 4);
                        __mmask16 gt = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ);
                        best = _mm512_mask_blend_ps(gt, best, v);
                        if (argmax) bi = _mm512_mask_blend_epi32(gt, bi, _mm512_set1_epi32(y * w + x));
                    }
                _mm512_mask_i32scatter_ps(op + oy * ow + ox, m, vout, best, 4);
                if (argmax) _mm512_mask_i32scatter_epi32(argmax + (size_t)pl * ohw + oy * ow + ox, m, vout, bi, 4);
            }
    }
}
#endif
static void fer__maxpool_forward(fer_isa isa, float *out, int32_t *argmax, const float *in, int n,
                                 int c, int h, int w, int k, int s, int p)
{
    int oh = fer__pool_out(h, k, s, p), ow = fer__pool_out(w, k, s, p), pl, oy;
    /* interior columns: ox * s - p >= 0 and ox * s - p + k <= w */
    int lo = (p + s - 1) / s, hi = w - k + p >= 0 ? (w - k + p) / s + 1 : 0;
    if (hi > ow) hi = ow;
    if (lo > hi) lo = hi;
#if defined(FER__X86)
    if (isa == FER_ISA_AVX512 && ow < FER__POOL_PLANES_ARGMAX) {
        fer__maxpool_planes_avx512(out, argmax, in, n * c, h, w, k, s, p);
        return;
    }
#endif
    for (pl = 0; pl < n * c; pl++) {
        const float *xp = in + (size_t)pl * h * w;
        float *yp = out + (size_t)pl * oh * ow;
        int32_t *am = argmax + (size_t)pl * oh * ow;
        for (oy = 0; oy < oh; oy++) {
            int y0, y1;
            fer__window(oy, k, s, p, h, &y0, &y1);
#if defined(FER__X86)
            if ((isa == FER_ISA_AVX512 || (isa == FER_ISA_AVX2 && hi - lo >= 4)) && (s == 1 || s == 2) && hi > lo) {
                /* (on AVX2 from 4 columns: 128 planes of 6x6 at batch 32, 2 interior
                   columns, 0.30 ms scalar, 0.46 ms in vectors) */
                fer__maxpool_row(xp, w, y0, y1, k, s, p, 0, lo, yp + oy * ow, am + oy * ow);
                (isa == FER_ISA_AVX512 ? fer__maxpool_row_avx512 : fer__maxpool_row_avx2)(
                    xp, w, y0, y1, k, s, p, lo, hi, yp + oy * ow, am + oy * ow);
                fer__maxpool_row(xp, w, y0, y1, k, s, p, hi, ow, yp + oy * ow, am + oy * ow);
                continue;
            }
#endif
            (void)isa; (void)lo; (void)hi;
            fer__maxpool_row(xp, w, y0, y1, k, s, p, 0, ow, yp + oy * ow, am + oy * ow);
        }
    }
}
FERDEF void fer_maxpool_forward(float *out, int32_t *argmax, const float *in, int n, int c,
                                int h, int w, int k, int s, int p)
{
    fer__maxpool_forward(FER_ISA_SCALAR, out, argmax, in, n, c, h, w, k, s, p);
}
FERDEF void fer_maxpool_backward(float *din, const float *dout, const int32_t *argmax,
                                 int n, int c, int h, int w, int oh, int ow)
{
    int pl, i;
    for (pl = 0; pl < n * c; pl++) {
        float *dx = din + (size_t)pl * h * w;
        const float *dy = dout + (size_t)pl * oh * ow;
        const int32_t *am = argmax + (size_t)pl * oh * ow;
        for (i = 0; i < oh * ow; i++) if (am[i] >= 0) dx[am[i]] += dy[i];
    }
}
FERDEF void fer_avgpool_forward(float *out, const float *in, int n, int c, int h, int w,
                                int k, int s, int p)
{
    int oh = fer__pool_out(h, k, s, p), ow = fer__pool_out(w, k, s, p), pl, oy, ox, ky, kx;
    float inv = 1.0f / (float)(k * k);
    for (pl = 0; pl < n * c; pl++) {
        const float *x = in + (size_t)pl * h * w;
        float *y = out + (size_t)pl * oh * ow;
        for (oy = 0; oy < oh; oy++)
            for (ox = 0; ox < ow; ox++) {
                float acc = 0.0f;
                for (ky = 0; ky < k; ky++) {
                    int iy = oy * s - p + ky;
                    if (iy < 0 || iy >= h) continue;
                    for (kx = 0; kx < k; kx++) {
                        int ix = ox * s - p + kx;
                        if (ix >= 0 && ix < w) acc += x[iy * w + ix];
                    }
                }
                y[oy * ow + ox] = acc * inv;
            }
    }
}
FERDEF void fer_avgpool_backward(float *din, const float *dout, int n, int c, int h, int w,
                                 int k, int s, int p)
{
    int oh = fer__pool_out(h, k, s, p), ow = fer__pool_out(w, k, s, p), pl, oy, ox, ky, kx;
    float inv = 1.0f / (float)(k * k);
    for (pl = 0; pl < n * c; pl++) {
        float *dx = din + (size_t)pl * h * w;
        const float *dy = dout + (size_t)pl * oh * ow;
        for (oy = 0; oy < oh; oy++)
            for (ox = 0; ox < ow; ox++) {
                float g = dy[oy * ow + ox] * inv;
                for (ky = 0; ky < k; ky++) {
                    int iy = oy * s - p + ky;
                    if (iy < 0 || iy >= h) continue;
                    for (kx = 0; kx < k; kx++) {
                        int ix = ox * s - p + kx;
                        if (ix >= 0 && ix < w) dx[iy * w + ix] += g;
                    }
                }
            }
    }
}
FERDEF void fer_gap_forward(float *out, const float *in, int n, int c, int hw)
{
    int pl, i;
    for (pl = 0; pl < n * c; pl++) {
        const float *x = in + (size_t)pl * hw;
        float acc = 0.0f;
        for (i = 0; i < hw; i++) acc += x[i];
        out[pl] = acc / (float)hw;
    }
}
FERDEF void fer_gap_backward(float *din, const float *dout, int n, int c, int hw)
{
    int pl, i;
    for (pl = 0; pl < n * c; pl++) {
        float g = dout[pl] / (float)hw, *dx = din + (size_t)pl * hw;
        for (i = 0; i < hw; i++) dx[i] += g;
    }
}
FERDEF void fer_gmp_forward(float *out, int32_t *argmax, const float *in, int n, int c, int hw)
{
    int pl, i;
    for (pl = 0; pl < n * c; pl++) {
        const float *x = in + (size_t)pl * hw;
        int32_t bi = 0;
        for (i = 1; i < hw; i++) if (x[i] > x[bi]) bi = i;
        out[pl] = x[bi];
        argmax[pl] = bi;
    }
}
FERDEF void fer_gmp_backward(float *din, const float *dout, const int32_t *argmax, int n, int c, int hw)
{
    int pl;
    for (pl = 0; pl < n * c; pl++) din[(size_t)pl * hw + argmax[pl]] += dout[pl];
}

FERDEF void fer_dense_forward(fer_isa isa, float *out, const float *in, const float *w,
                              const float *b, int n, int nin, int nout, float *pack)
{
    int s, j;
    if (n < 4) {   /* a matrix-vector product: packing W would cost more than it saves */
        for (s = 0; s < n; s++) {
#if defined(FER__X86)
            if (isa == FER_ISA_AVX512) { fer__gemv_avx512(nout, nin, w, in + (size_t)s * nin, out + (size_t)s * nout); continue; }
            if (isa == FER_ISA_AVX2) { fer__gemv_avx2(nout, nin, w, in + (size_t)s * nin, out + (size_t)s * nout); continue; }
#endif
            for (j = 0; j < nout; j++)
                out[(size_t)s * nout + j] = fer_dot(isa, nin, in + (size_t)s * nin, w + (size_t)j * nin);
        }
    } else {
        fer_gemm(isa, 0, 1, n, nout, nin, in, nin, w, nin, out, nout, 0, pack);
    }
    if (b) for (s = 0; s < n; s++) for (j = 0; j < nout; j++) out[(size_t)s * nout + j] += b[j];
}
FERDEF void fer_dense_backward(fer_isa isa, float *din, float *dw, float *db, const float *dout,
                               const float *in, const float *w, int n, int nin, int nout,
                               float *pack)
{
    int s, j;
    if (db) for (s = 0; s < n; s++) for (j = 0; j < nout; j++) db[j] += dout[(size_t)s * nout + j];
    if (dw) fer_gemm(isa, 1, 0, nout, nin, n, dout, nout, in, nin, dw, nin, 1, pack);
    if (din) fer_gemm(isa, 0, 0, n, nin, nout, dout, nout, w, nin, din, nin, 1, pack);
}

FERDEF void fer_dropout_forward(float *out, float *mask, const float *in, size_t len, float p,
                                uint64_t seed)
{
    size_t i;
    float keep = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    for (i = 0; i < len; i++) {
        float u = (float)(fer__mix64(seed ^ (0xD1B54A32D192ED03ull * (i + 1))) >> 40) * (1.0f / 16777216.0f);
        mask[i] = u < p ? 0.0f : keep;
        out[i] = in[i] * mask[i];
    }
}
FERDEF void fer_dropout_backward(float *din, const float *dout, const float *mask, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++) din[i] += dout[i] * mask[i];
}

FERDEF void fer_add_forward(float *out, const float *a, const float *b, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++) out[i] = a[i] + b[i];
}
FERDEF void fer_add_backward(float *da, float *db, const float *dout, size_t len)
{
    size_t i;
    if (da) for (i = 0; i < len; i++) da[i] += dout[i];
    if (db) for (i = 0; i < len; i++) db[i] += dout[i];
}
FERDEF void fer_cmul_forward(float *out, const float *x, const float *s, int n, int c, int hw)
{
    int pl, i;
    for (pl = 0; pl < n * c; pl++)
        for (i = 0; i < hw; i++) out[(size_t)pl * hw + i] = x[(size_t)pl * hw + i] * s[pl];
}
FERDEF void fer_cmul_backward(float *dx, float *ds, const float *dout, const float *x,
                              const float *s, int n, int c, int hw)
{
    int pl, i;
    for (pl = 0; pl < n * c; pl++) {
        const float *dy = dout + (size_t)pl * hw, *xp = x + (size_t)pl * hw;
        float acc = 0.0f;
        for (i = 0; i < hw; i++) {
            if (dx) dx[(size_t)pl * hw + i] += dy[i] * s[pl];
            acc += dy[i] * xp[i];
        }
        if (ds) ds[pl] += acc;
    }
}
FERDEF void fer_smul_forward(float *out, const float *x, const float *s, int n, int c, int hw)
{
    int b, ch, i;
    for (b = 0; b < n; b++)
        for (ch = 0; ch < c; ch++) {
            const float *xp = x + ((size_t)b * c + ch) * hw, *sp = s + (size_t)b * hw;
            float *y = out + ((size_t)b * c + ch) * hw;
            for (i = 0; i < hw; i++) y[i] = xp[i] * sp[i];
        }
}
FERDEF void fer_smul_backward(float *dx, float *ds, const float *dout, const float *x,
                              const float *s, int n, int c, int hw)
{
    int b, ch, i;
    for (b = 0; b < n; b++)
        for (ch = 0; ch < c; ch++) {
            const float *xp = x + ((size_t)b * c + ch) * hw, *sp = s + (size_t)b * hw;
            const float *dy = dout + ((size_t)b * c + ch) * hw;
            for (i = 0; i < hw; i++) {
                if (dx) dx[((size_t)b * c + ch) * hw + i] += dy[i] * sp[i];
                if (ds) ds[(size_t)b * hw + i] += dy[i] * xp[i];
            }
        }
}
FERDEF void fer_chanpool_forward(float *out, int32_t *argmax, const float *in, int n, int c, int hw)
{
    int b, ch, i;
    for (b = 0; b < n; b++) {
        float *mean = out + (size_t)b * 2 * hw, *mx = mean + hw;
        int32_t *am = argmax + (size_t)b * hw;
        const float *x = in + (size_t)b * c * hw;
        for (i = 0; i < hw; i++) { mean[i] = x[i]; mx[i] = x[i]; am[i] = 0; }
        for (ch = 1; ch < c; ch++)
            for (i = 0; i < hw; i++) {
                float v = x[(size_t)ch * hw + i];
                mean[i] += v;
                if (v > mx[i]) { mx[i] = v; am[i] = ch; }
            }
        for (i = 0; i < hw; i++) mean[i] /= (float)c;
    }
}
FERDEF void fer_chanpool_backward(float *din, const float *dout, const int32_t *argmax,
                                  int n, int c, int hw)
{
    int b, ch, i;
    for (b = 0; b < n; b++) {
        const float *dmean = dout + (size_t)b * 2 * hw, *dmax = dmean + hw;
        const int32_t *am = argmax + (size_t)b * hw;
        float *dx = din + (size_t)b * c * hw;
        for (ch = 0; ch < c; ch++)
            for (i = 0; i < hw; i++) dx[(size_t)ch * hw + i] += dmean[i] / (float)c;
        for (i = 0; i < hw; i++) dx[(size_t)am[i] * hw + i] += dmax[i];
    }
}

/* --- 3.5 The graph, blocks and the model ---------------------------------- */

static int fer__fail(fer_model *m, fer_result r, const char *fmt, ...)
{
    va_list ap;
    if (m->status != FER_OK) return -1;    /* keep the first error: it is the cause */
    m->status = r;
    va_start(ap, fmt);
    vsnprintf(m->error, sizeof(m->error), fmt, ap);
    va_end(ap);
    return -1;
}

static size_t fer__shape_size(fer_shape s) { return (size_t)s.c * s.h * s.w; }

static const char *fer__op_names[FER_OP_COUNT] = {
    "input", "conv", "batchnorm", "relu", "relu6", "leaky_relu", "prelu", "sigmoid", "softmax",
    "maxpool", "avgpool", "gap", "gmp", "dense", "dropout", "flatten", "add", "cmul", "smul",
    "concat", "chanpool", "identity"
};

/* Appends a node of type op reading in[0..n_in); its output shape starts as in[0]'s. */
static int fer__node_new(fer_model *m, int op, int n_in, const int *in)
{
    fer_node *nd;
    int i;
    if (m->status != FER_OK) return -1;
    if (m->finalized) return fer__fail(m, FER_ERR_ARG, "%s: the model is already finalized", fer__op_names[op]);
    for (i = 0; i < n_in; i++)
        if (in[i] < 0 || in[i] >= m->n_nodes)
            return fer__fail(m, FER_ERR_ARG, "node %d (%s): input %d is not an existing node",
                             m->n_nodes, fer__op_names[op], in[i]);
    if (m->n_nodes == m->cap_nodes) {
        int cap = m->cap_nodes ? m->cap_nodes * 2 : 64;
        fer_node *nn;
        if (cap > FER_MAX_NODES) cap = FER_MAX_NODES;
        if (m->n_nodes >= cap) return fer__fail(m, FER_ERR_ARG, "more than %d nodes", FER_MAX_NODES);
        nn = (fer_node *)FER_MALLOC(sizeof(fer_node) * (size_t)cap, m->alloc_ctx);
        if (!nn) return fer__fail(m, FER_ERR_NOMEM, "out of memory growing the graph");
        if (m->nodes) memcpy(nn, m->nodes, sizeof(fer_node) * (size_t)m->n_nodes);
        if (m->nodes) FER_FREE(m->nodes, m->alloc_ctx);
        m->nodes = nn;
        m->cap_nodes = cap;
    }
    nd = &m->nodes[m->n_nodes];
    memset(nd, 0, sizeof(*nd));
    nd->op = op;
    nd->n_in = n_in;
    for (i = 0; i < n_in; i++) nd->in[i] = in[i];
    nd->share = -1;
    nd->groups = 1;
    if (n_in > 0) nd->out = m->nodes[in[0]].out;
    return m->n_nodes++;
}

/* Checks a new node's output shape and reserves p parameters and b buffer floats. */
static int fer__node_done(fer_model *m, int id, size_t p, size_t b)
{
    fer_node *nd = &m->nodes[id];
    fer_shape s = nd->out;
    if (s.c < 1 || s.h < 1 || s.w < 1 || s.c > FER_MAX_CHANNELS * 64 || s.h > FER_MAX_DIM ||
        s.w > FER_MAX_DIM || fer__shape_size(s) > ((size_t)1 << 28)) {
        m->n_nodes--;
        return fer__fail(m, FER_ERR_SHAPE, "node %d (%s): output shape %dx%dx%d is empty or too large",
                         id, fer__op_names[nd->op], s.c, s.h, s.w);
    }
    if (p > ((size_t)1 << 31) || m->n_params > ((size_t)1 << 34) ||
        b > ((size_t)1 << 31) || m->n_buffers > ((size_t)1 << 34)) {
        m->n_nodes--;
        return fer__fail(m, FER_ERR_SHAPE, "node %d (%s): too many parameters", id, fer__op_names[nd->op]);
    }
    nd->p_off = m->n_params; nd->p_len = p; m->n_params += p;
    nd->b_off = m->n_buffers; nd->b_len = b; m->n_buffers += b;
    return id;
}

static const char *fer__fer2013_names[7] = { "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral" };

FERDEF fer_result fer_model_init(fer_model *m, int c, int h, int w, int n_classes, void *alloc_ctx)
{
    int i, id;
    memset(m, 0, sizeof(*m));
    m->alloc_ctx = alloc_ctx;
    m->pre.temperature = 1.0f;
    m->pre.store_h = h;
    m->pre.store_w = w;
    if (c < 1 || h < 1 || w < 1 || c > FER_MAX_CHANNELS || h > FER_MAX_DIM || w > FER_MAX_DIM) {
        fer__fail(m, FER_ERR_ARG, "input shape %dx%dx%d is out of range", c, h, w);
        return m->status;
    }
    if (n_classes < 1 || n_classes > FER_MAX_CLASSES) {
        fer__fail(m, FER_ERR_ARG, "%d classes: expected 1 to %d", n_classes, FER_MAX_CLASSES);
        return m->status;
    }
    m->input.c = c; m->input.h = h; m->input.w = w;
    m->n_classes = n_classes;
    for (i = 0; i < n_classes; i++) {
        const char *nm = n_classes == 7 ? fer__fer2013_names[i] : NULL;
        if (nm) memcpy(m->class_names[i], nm, strlen(nm) + 1);
        else { m->class_names[i][0] = 'c'; m->class_names[i][1] = (char)('0' + i / 10);
               m->class_names[i][2] = (char)('0' + i % 10); m->class_names[i][3] = 0; }
    }
    memcpy(m->arch, "custom", 7);
    id = fer__node_new(m, FER_OP_INPUT, 0, NULL);
    if (id >= 0) { m->nodes[id].out = m->input; fer__node_done(m, id, 0, 0); }
    return m->status;
}

FERDEF void fer_model_free(fer_model *m)
{
    if (m->nodes) FER_FREE(m->nodes, m->alloc_ctx);
    if (m->arena) FER_FREE(m->arena, m->alloc_ctx);
    m->nodes = NULL; m->arena = NULL; m->params = m->buffers = NULL;
    m->n_nodes = m->cap_nodes = 0;
    m->finalized = 0;
}

static int fer__conv_full(fer_model *m, int x, int cout, int kh, int kw, int sh, int sw,
                          int ph, int pw, int groups, int bias)
{
    fer_conv_geom g;
    fer_shape in;
    int id = fer__node_new(m, FER_OP_CONV, 1, &x);
    if (id < 0) return -1;
    in = m->nodes[x].out;
    if (fer_conv_geom_init(&g, 1, in.c, in.h, in.w, cout, kh, kw, sh, sw, ph, pw, groups) != FER_OK) {
        m->n_nodes--;
        return fer__fail(m, FER_ERR_SHAPE, "node %d (conv): %dx%dx%d input, %d outputs, kernel %dx%d, "
                         "stride %dx%d, pad %dx%d, groups %d do not fit", id, in.c, in.h, in.w, cout,
                         kh, kw, sh, sw, ph, pw, groups);
    }
    {
        fer_node *nd = &m->nodes[id];
        nd->kh = kh; nd->kw = kw; nd->sh = sh; nd->sw = sw; nd->ph = ph; nd->pw = pw;
        nd->groups = groups; nd->bias = bias != 0;
        nd->out.c = cout; nd->out.h = g.oh; nd->out.w = g.ow;
    }
    /* the bias slot is always reserved, so folding BN later needs no new arena */
    return fer__node_done(m, id, (size_t)cout * (size_t)(in.c / groups) * kh * kw + (size_t)cout, 0);
}

FERDEF int fer_conv(fer_model *m, int x, int cout, int kh, int kw, int stride, int pad,
                    int groups, int bias)
{
    int ph = pad < 0 ? kh / 2 : pad, pw = pad < 0 ? kw / 2 : pad;   /* pad -1: "same" */
    return fer__conv_full(m, x, cout, kh, kw, stride, stride, ph, pw, groups, bias);
}

FERDEF int fer_bn(fer_model *m, int x)
{
    int id = fer__node_new(m, FER_OP_BN, 1, &x);
    if (id < 0) return -1;
    m->nodes[id].eps = 1e-5f;
    m->nodes[id].momentum = 0.1f;
    return fer__node_done(m, id, 2 * (size_t)m->nodes[id].out.c, 2 * (size_t)m->nodes[id].out.c);
}

FERDEF int fer_act(fer_model *m, int x, fer_op op)
{
    int id;
    if (op != FER_OP_RELU && op != FER_OP_RELU6 && op != FER_OP_SIGMOID && op != FER_OP_PRELU &&
        op != FER_OP_IDENTITY && op != FER_OP_LEAKY_RELU)
        return fer__fail(m, FER_ERR_ARG, "fer_act: op %d is not an activation", (int)op);
    id = fer__node_new(m, op, 1, &x);
    if (id < 0) return -1;
    if (op == FER_OP_LEAKY_RELU) m->nodes[id].alpha = 0.01f;
    return fer__node_done(m, id, op == FER_OP_PRELU ? (size_t)m->nodes[id].out.c : 0, 0);
}

FERDEF int fer_leaky_relu(fer_model *m, int x, float slope)
{
    int id = fer_act(m, x, FER_OP_LEAKY_RELU);
    if (id >= 0) m->nodes[id].alpha = slope;
    return id;
}

FERDEF int fer_softmax(fer_model *m, int x)
{
    int id = fer__node_new(m, FER_OP_SOFTMAX, 1, &x);
    return id < 0 ? -1 : fer__node_done(m, id, 0, 0);
}

static int fer__pool(fer_model *m, int op, int x, int k, int s, int p)
{
    fer_shape in;
    int id = fer__node_new(m, op, 1, &x);
    if (id < 0) return -1;
    in = m->nodes[x].out;
    if (k < 1 || s < 1 || p < 0 || k > FER_MAX_DIM || s > FER_MAX_DIM || p > k || 2 * p > k ||
        in.h + 2 * p < k || in.w + 2 * p < k) {
        m->n_nodes--;
        return fer__fail(m, FER_ERR_SHAPE, "node %d (%s): window %d, stride %d, pad %d do not fit %dx%d",
                         id, fer__op_names[op], k, s, p, in.h, in.w);
    }
    m->nodes[id].kh = m->nodes[id].kw = k;
    m->nodes[id].sh = m->nodes[id].sw = s;
    m->nodes[id].ph = m->nodes[id].pw = p;
    m->nodes[id].out.h = fer__pool_out(in.h, k, s, p);
    m->nodes[id].out.w = fer__pool_out(in.w, k, s, p);
    return fer__node_done(m, id, 0, 0);
}
FERDEF int fer_maxpool(fer_model *m, int x, int k, int stride, int pad) { return fer__pool(m, FER_OP_MAXPOOL, x, k, stride, pad); }
FERDEF int fer_avgpool(fer_model *m, int x, int k, int stride, int pad) { return fer__pool(m, FER_OP_AVGPOOL, x, k, stride, pad); }

static int fer__global_pool(fer_model *m, int op, int x)
{
    int id = fer__node_new(m, op, 1, &x);
    if (id < 0) return -1;
    m->nodes[id].out.h = m->nodes[id].out.w = 1;
    return fer__node_done(m, id, 0, 0);
}
FERDEF int fer_gap(fer_model *m, int x) { return fer__global_pool(m, FER_OP_GAP, x); }
FERDEF int fer_gmp(fer_model *m, int x) { return fer__global_pool(m, FER_OP_GMP, x); }

FERDEF int fer_dense(fer_model *m, int x, int nout, int bias)
{
    size_t nin;
    int id = fer__node_new(m, FER_OP_DENSE, 1, &x);
    if (id < 0) return -1;
    nin = fer__shape_size(m->nodes[x].out);
    if (nout < 1 || nout > FER_MAX_CHANNELS * 64) {
        m->n_nodes--;
        return fer__fail(m, FER_ERR_SHAPE, "node %d (dense): %d outputs is out of range", id, nout);
    }
    m->nodes[id].out.c = nout; m->nodes[id].out.h = m->nodes[id].out.w = 1;
    m->nodes[id].bias = bias != 0;
    return fer__node_done(m, id, fer__add(fer__mul(nin, (size_t)nout), (size_t)nout), 0);
}

FERDEF int fer_dense_shared(fer_model *m, int x, int owner)
{
    int id = fer__node_new(m, FER_OP_DENSE, 1, &x);
    const fer_node *o;
    if (id < 0) return -1;
    o = (owner >= 0 && owner < id) ? &m->nodes[owner] : NULL;
    if (!o || o->op != FER_OP_DENSE || o->share >= 0 ||
        fer__shape_size(m->nodes[o->in[0]].out) != fer__shape_size(m->nodes[x].out)) {
        m->n_nodes--;
        return fer__fail(m, FER_ERR_SHAPE, "node %d (dense): node %d is not a dense layer of the same "
                         "input size to share", id, owner);
    }
    m->nodes[id].share = owner;
    m->nodes[id].out = o->out;
    m->nodes[id].bias = o->bias;
    return fer__node_done(m, id, 0, 0);
}

FERDEF int fer_dropout(fer_model *m, int x, float p)
{
    int id;
    if (!(p >= 0.0f && p < 1.0f)) return fer__fail(m, FER_ERR_ARG, "dropout rate %g is not in [0,1)", (double)p);
    id = fer__node_new(m, FER_OP_DROPOUT, 1, &x);
    if (id < 0) return -1;
    m->nodes[id].alpha = p;
    return fer__node_done(m, id, 0, 0);
}

FERDEF int fer_flatten(fer_model *m, int x)
{
    int id = fer__node_new(m, FER_OP_FLATTEN, 1, &x);
    if (id < 0) return -1;
    m->nodes[id].out.c = (int)fer__shape_size(m->nodes[x].out);
    m->nodes[id].out.h = m->nodes[id].out.w = 1;
    return fer__node_done(m, id, 0, 0);
}

/* Two-input nodes check that the second input's shape fits the first's. */
static int fer__binary(fer_model *m, int op, int a, int b)
{
    int in[2], id;
    fer_shape sa, sb;
    in[0] = a; in[1] = b;
    id = fer__node_new(m, op, 2, in);
    if (id < 0) return -1;
    sa = m->nodes[a].out; sb = m->nodes[b].out;
    if ((op == FER_OP_ADD && (sa.c != sb.c || sa.h != sb.h || sa.w != sb.w)) ||
        (op == FER_OP_CMUL && (sa.c != sb.c || sb.h != 1 || sb.w != 1)) ||
        (op == FER_OP_SMUL && (sb.c != 1 || sa.h != sb.h || sa.w != sb.w))) {
        m->n_nodes--;
        return fer__fail(m, FER_ERR_SHAPE, "node %d (%s): shapes %dx%dx%d and %dx%dx%d do not fit",
                         id, fer__op_names[op], sa.c, sa.h, sa.w, sb.c, sb.h, sb.w);
    }
    return fer__node_done(m, id, 0, 0);
}
FERDEF int fer_add(fer_model *m, int a, int b) { return fer__binary(m, FER_OP_ADD, a, b); }
FERDEF int fer_cmul(fer_model *m, int x, int s) { return fer__binary(m, FER_OP_CMUL, x, s); }
FERDEF int fer_smul(fer_model *m, int x, int s) { return fer__binary(m, FER_OP_SMUL, x, s); }

FERDEF int fer_concat(fer_model *m, int n, const int *xs)
{
    int id, i, c = 0;
    if (n < 1 || n > FER_MAX_INPUTS) return fer__fail(m, FER_ERR_ARG, "concat of %d inputs: 1 to %d allowed", n, FER_MAX_INPUTS);
    id = fer__node_new(m, FER_OP_CONCAT, n, xs);
    if (id < 0) return -1;
    for (i = 0; i < n; i++) {
        fer_shape s = m->nodes[xs[i]].out;
        if (s.h != m->nodes[xs[0]].out.h || s.w != m->nodes[xs[0]].out.w) {
            m->n_nodes--;
            return fer__fail(m, FER_ERR_SHAPE, "node %d (concat): input %d is %dx%d, input 0 is %dx%d",
                             id, i, s.h, s.w, m->nodes[xs[0]].out.h, m->nodes[xs[0]].out.w);
        }
        c += s.c;
    }
    m->nodes[id].out.c = c;
    return fer__node_done(m, id, 0, 0);
}

FERDEF int fer_chanpool(fer_model *m, int x)
{
    int id = fer__node_new(m, FER_OP_CHANPOOL, 1, &x);
    if (id < 0) return -1;
    m->nodes[id].out.c = 2;
    return fer__node_done(m, id, 0, 0);
}

/* ---- blocks: compositions of the primitives above ---- */

static int fer__cin(const fer_model *m, int x) { return (x >= 0 && x < m->n_nodes) ? m->nodes[x].out.c : 0; }

FERDEF int fer_conv_bn_act(fer_model *m, int x, int cout, int k, int stride, fer_op act)
{
    x = fer_conv(m, x, cout, k, k, stride, -1, 1, 0);
    x = fer_bn(m, x);
    return act ? fer_act(m, x, act) : x;
}

FERDEF int fer_sepconv(fer_model *m, int x, int cout, int k, int stride)
{
    int cin = fer__cin(m, x);
    x = fer_conv(m, x, cin, k, k, stride, -1, cin, 0);   /* depthwise */
    return fer_conv(m, x, cout, 1, 1, 1, 0, 1, 0);       /* pointwise */
}

FERDEF int fer_block_basic(fer_model *m, int x, int cout, int stride)
{
    int y, sc = x;
    y = fer_conv_bn_act(m, x, cout, 3, stride, FER_OP_RELU);
    y = fer_conv_bn_act(m, y, cout, 3, 1, (fer_op)0);
    if (stride != 1 || fer__cin(m, x) != cout) sc = fer_bn(m, fer_conv(m, x, cout, 1, 1, stride, 0, 1, 0));
    return fer_act(m, fer_add(m, y, sc), FER_OP_RELU);
}

FERDEF int fer_block_light_residual(fer_model *m, int x, int cout, float p)
{
    x = fer_block_basic(m, x, cout, 1);
    x = fer_maxpool(m, x, 2, 2, 0);
    return fer_dropout(m, x, p);
}

FERDEF int fer_block_xception(fer_model *m, int x, int cout)
{
    int res = fer_bn(m, fer_conv(m, x, cout, 1, 1, 2, 0, 1, 0)), y;
    y = fer_act(m, fer_bn(m, fer_sepconv(m, x, cout, 3, 1)), FER_OP_RELU);
    y = fer_bn(m, fer_sepconv(m, y, cout, 3, 1));
    y = fer_maxpool(m, y, 3, 2, 1);
    return fer_add(m, y, res);
}

FERDEF int fer_block_inverted_residual(fer_model *m, int x, int cout, int expand, int stride)
{
    int cin = fer__cin(m, x), hid = cin * expand, y = x;
    if (expand < 1) return fer__fail(m, FER_ERR_ARG, "inverted residual: expansion %d < 1", expand);
    if (expand != 1) y = fer_conv_bn_act(m, y, hid, 1, 1, FER_OP_RELU6);
    y = fer_act(m, fer_bn(m, fer_conv(m, y, hid, 3, 3, stride, 1, hid, 0)), FER_OP_RELU6);
    y = fer_bn(m, fer_conv(m, y, cout, 1, 1, 1, 0, 1, 0));
    return (stride == 1 && cin == cout) ? fer_add(m, x, y) : y;
}

FERDEF int fer_block_se(fer_model *m, int x, int reduction)
{
    int c = fer__cin(m, x), hid = reduction > 0 && c / reduction > 0 ? c / reduction : 1, s;
    s = fer_gap(m, x);
    s = fer_act(m, fer_dense(m, s, hid, 1), FER_OP_RELU);
    s = fer_act(m, fer_dense(m, s, c, 1), FER_OP_SIGMOID);
    return fer_cmul(m, x, s);
}

FERDEF int fer_block_cbam(fer_model *m, int x, int reduction)
{
    int c = fer__cin(m, x), hid = reduction > 0 && c / reduction > 0 ? c / reduction : 1;
    int a1, a2, b1, b2, s, y, sp;
    /* channel attention: one MLP applied to both pooled vectors */
    a1 = fer_dense(m, fer_gap(m, x), hid, 1);
    a2 = fer_dense(m, fer_act(m, a1, FER_OP_RELU), c, 1);
    b1 = fer_dense_shared(m, fer_gmp(m, x), a1);
    b2 = fer_dense_shared(m, fer_act(m, b1, FER_OP_RELU), a2);
    s = fer_act(m, fer_add(m, a2, b2), FER_OP_SIGMOID);
    y = fer_cmul(m, x, s);
    /* spatial attention */
    sp = fer_conv(m, fer_chanpool(m, y), 1, 7, 7, 1, 3, 1, 0);
    sp = fer_act(m, sp, FER_OP_SIGMOID);
    return fer_smul(m, y, sp);
}

FERDEF int fer_block_dsc_cbam(fer_model *m, int x, int cout)
{
    int y, sc = x;
    y = fer_act(m, fer_bn(m, fer_sepconv(m, x, cout, 3, 1)), FER_OP_PRELU);
    y = fer_block_cbam(m, y, 16);
    if (fer__cin(m, x) != cout) sc = fer_bn(m, fer_conv(m, x, cout, 1, 1, 1, 0, 1, 0));
    return fer_add(m, y, sc);
}

/* ---- finalize, counts, folding ---- */

FERDEF int fer_model_output(const fer_model *m) { return m->n_nodes - 1; }

static void fer__init_params(fer_model *m, uint64_t seed)
{
    int i;
    size_t k;
    uint64_t st = seed;
    memset(m->arena, 0, sizeof(float) * (m->n_params + m->n_buffers));
    for (i = 0; i < m->n_nodes; i++) {
        fer_node *nd = &m->nodes[i];
        float *p = m->params + nd->p_off, *b = m->buffers + nd->b_off;
        if (nd->op == FER_OP_CONV || (nd->op == FER_OP_DENSE && nd->share < 0)) {
            size_t nw = nd->p_len - (size_t)nd->out.c, fan_in = nw / (size_t)nd->out.c;
            /* He-uniform for convs (they feed ReLUs); Glorot-uniform for dense layers */
            double bound = nd->op == FER_OP_CONV ? sqrt(6.0 / (double)fan_in)
                                                 : sqrt(6.0 / (double)(fan_in + (size_t)nd->out.c));
            for (k = 0; k < nw; k++) p[k] = (float)((2.0 * fer__uniform(&st) - 1.0) * bound);
        } else if (nd->op == FER_OP_BN) {
            for (k = 0; k < (size_t)nd->out.c; k++) { p[k] = 1.0f; b[nd->out.c + k] = 1.0f; }
        } else if (nd->op == FER_OP_PRELU) {
            for (k = 0; k < nd->p_len; k++) p[k] = 0.25f;
        }
    }
}

FERDEF fer_result fer_model_finalize(fer_model *m, uint64_t seed)
{
    size_t total;
    int last;
    if (m->status != FER_OK) return m->status;
    if (m->finalized) { fer__fail(m, FER_ERR_ARG, "the model is already finalized"); return m->status; }
    last = m->n_nodes - 1;
    if (last < 1) { fer__fail(m, FER_ERR_ARG, "the model has no layers"); return m->status; }
    if (fer__shape_size(m->nodes[last].out) != (size_t)m->n_classes) {
        fer_shape s = m->nodes[last].out;
        fer__fail(m, FER_ERR_SHAPE, "the last node gives %dx%dx%d values for %d classes",
                  s.c, s.h, s.w, m->n_classes);
        return m->status;
    }
    total = fer__add(m->n_params, m->n_buffers);
    if (total == 0) total = 1;
    if (fer__mul(total, sizeof(float)) == SIZE_MAX ||
        !(m->arena = (float *)FER_MALLOC(total * sizeof(float), m->alloc_ctx))) {
        fer__fail(m, FER_ERR_NOMEM, "cannot allocate %zu parameters", total);
        return m->status;
    }
    m->params = m->arena;
    m->buffers = m->arena + m->n_params;
    fer__init_params(m, seed);
    m->finalized = 1;
    return FER_OK;
}

FERDEF size_t fer_model_param_count(const fer_model *m)
{
    size_t n = 0;
    int i;
    for (i = 0; i < m->n_nodes; i++) {
        const fer_node *nd = &m->nodes[i];
        n += nd->p_len;
        if ((nd->op == FER_OP_CONV || nd->op == FER_OP_DENSE) && nd->share < 0 && !nd->bias)
            n -= (size_t)nd->out.c;   /* the reserved, unused bias slot */
    }
    return n;
}

FERDEF double fer_model_macs(const fer_model *m)
{
    double macs = 0.0;
    int i;
    for (i = 0; i < m->n_nodes; i++) {
        const fer_node *nd = &m->nodes[i];
        fer_shape in = nd->n_in ? m->nodes[nd->in[0]].out : nd->out;
        if (nd->op == FER_OP_CONV)
            macs += (double)fer__shape_size(nd->out) * (in.c / nd->groups) * nd->kh * nd->kw;
        else if (nd->op == FER_OP_DENSE)
            macs += (double)fer__shape_size(in) * nd->out.c;
    }
    return macs;
}

static int fer__consumers(const fer_model *m, int id)
{
    int i, j, n = 0;
    for (i = id + 1; i < m->n_nodes; i++)
        for (j = 0; j < m->nodes[i].n_in; j++) n += m->nodes[i].in[j] == id;
    return n;
}

FERDEF fer_result fer_model_fold_bn(fer_model *m)
{
    int i;
    if (!m->finalized) { fer__fail(m, FER_ERR_ARG, "fold_bn: the model is not finalized"); return m->status; }
    for (i = 1; i < m->n_nodes; i++) {
        fer_node *bn = &m->nodes[i], *cv;
        int c, k, per;
        if (bn->op != FER_OP_BN) continue;
        cv = &m->nodes[bn->in[0]];
        if (cv->op != FER_OP_CONV || cv->act || fer__consumers(m, bn->in[0]) != 1) continue;
        per = (int)((cv->p_len - (size_t)cv->out.c) / (size_t)cv->out.c);
        for (c = 0; c < cv->out.c; c++) {
            const float *g = m->params + bn->p_off, *be = g + bn->out.c;
            const float *rm = m->buffers + bn->b_off, *rv = rm + bn->out.c;
            float *w = m->params + cv->p_off + (size_t)c * per;
            float *b = m->params + cv->p_off + (size_t)per * cv->out.c + c;
            float sc = g[c] / sqrtf(rv[c] + bn->eps);
            for (k = 0; k < per; k++) w[k] *= sc;
            *b = ((cv->bias ? *b : 0.0f) - rm[c]) * sc + be[c];
        }
        cv->bias = 1;
        bn->op = FER_OP_IDENTITY;
    }
    /* fuse a ReLU/ReLU6 that is the only reader of a (folded) conv */
    for (i = 1; i < m->n_nodes; i++) {
        fer_node *a = &m->nodes[i];
        int src = a->n_in ? a->in[0] : -1;
        if (a->op != FER_OP_RELU && a->op != FER_OP_RELU6) continue;
        while (src > 0 && m->nodes[src].op == FER_OP_IDENTITY && fer__consumers(m, src) == 1)
            src = m->nodes[src].in[0];
        if (src <= 0 || m->nodes[src].op != FER_OP_CONV || m->nodes[src].act ||
            fer__consumers(m, src) != 1)
            continue;
        m->nodes[src].act = a->op;
        a->op = FER_OP_IDENTITY;
    }
    return FER_OK;
}

/* --- 3.6 Model zoo -------------------------------------------------------------
   Each architecture as published for FER2013 (48x48 grey faces, 7 classes),
   written for any input size and class count. Shapes below are for 1x48x48. */

static int fer__cbr_bias(fer_model *m, int x, int cout)      /* conv3x3(+bias)-BN-ReLU */
{
    return fer_act(m, fer_bn(m, fer_conv(m, x, cout, 3, 3, 1, 1, 1, 1)), FER_OP_RELU);
}

/* baseline_cnn: the plain VGG-like FER baseline. 32,64 @48 -> pool -> 128,128 @24 ->
   pool -> 256,256 @12 -> pool -> 256x6x6 -> Dense256-ReLU-Dropout(0.5)-Dense(k). ~3.49M */
static int fer__zoo_baseline_cnn(fer_model *m, int k)
{
    int x = FER_INPUT;
    x = fer__cbr_bias(m, x, 32);  x = fer__cbr_bias(m, x, 64);  x = fer_maxpool(m, x, 2, 2, 0);
    x = fer__cbr_bias(m, x, 128); x = fer__cbr_bias(m, x, 128); x = fer_maxpool(m, x, 2, 2, 0);
    x = fer__cbr_bias(m, x, 256); x = fer__cbr_bias(m, x, 256); x = fer_maxpool(m, x, 2, 2, 0);
    x = fer_act(m, fer_dense(m, fer_flatten(m, x), 256, 1), FER_OP_RELU);
    x = fer_dropout(m, x, 0.5f);
    return fer_dense(m, x, k, 1);
}

/* mini_xception (Arriaga et al. 2017): conv3x3 8-BN-ReLU twice @48, four Xception
   modules of 16/32/64/128 channels (each halves the size: 24, 12, 6, 3), a 3x3
   conv to k channels and global average pooling. ~57k */
static int fer__zoo_mini_xception(fer_model *m, int k)
{
    int x = FER_INPUT;
    x = fer_conv_bn_act(m, x, 8, 3, 1, FER_OP_RELU);
    x = fer_conv_bn_act(m, x, 8, 3, 1, FER_OP_RELU);
    x = fer_block_xception(m, x, 16);
    x = fer_block_xception(m, x, 32);
    x = fer_block_xception(m, x, 64);
    x = fer_block_xception(m, x, 128);
    x = fer_conv(m, x, k, 3, 3, 1, 1, 1, 1);
    return fer_gap(m, x);
}

/* resnet_lite: conv3x3 32-BN-ReLU @48, light residual block 64 (-> pool 24, dropout
   0.25), light residual block 128 (-> pool 12, dropout 0.25), flatten, Dense(k). ~417k */
static int fer__zoo_resnet_lite(fer_model *m, int k)
{
    int x = FER_INPUT;
    x = fer_conv_bn_act(m, x, 32, 3, 1, FER_OP_RELU);
    x = fer_block_light_residual(m, x, 64, 0.25f);
    x = fer_block_light_residual(m, x, 128, 0.25f);
    return fer_dense(m, fer_flatten(m, x), k, 1);
}

/* mobilenetv2_lite: MobileNetV2 for 48x48 without the early stride-2 layers: stem
   conv3x3 16 at stride 1, inverted residuals (t,c,n,s) = (1,16,1,1) (6,24,1,2)
   (6,32,2,2) (6,64,1,2) (6,96,1,1) -> 96x6x6, 1x1 conv to 128, GAP, dropout 0.2,
   Dense(k). ~130k */
static int fer__zoo_mobilenetv2_lite(fer_model *m, int k)
{
    static const int cfg[5][4] = { {1, 16, 1, 1}, {6, 24, 1, 2}, {6, 32, 2, 2}, {6, 64, 1, 2}, {6, 96, 1, 1} };
    int x = FER_INPUT, i, j;
    x = fer_conv_bn_act(m, x, 16, 3, 1, FER_OP_RELU6);
    for (i = 0; i < 5; i++)
        for (j = 0; j < cfg[i][2]; j++)
            x = fer_block_inverted_residual(m, x, cfg[i][1], cfg[i][0], j == 0 ? cfg[i][3] : 1);
    x = fer_conv_bn_act(m, x, 128, 1, 1, FER_OP_RELU6);
    x = fer_dropout(m, fer_gap(m, x), 0.2f);
    return fer_dense(m, x, k, 1);
}

/* VGG with BN (Simonyan & Zisserman 2015) for 48x48: the five conv stages (0 = max
   pool), then Dense512-ReLU-Dropout(0.5) twice and Dense(k). */
static int fer__vgg(fer_model *m, int k, const int *cfg, int n)
{
    int x = FER_INPUT, i;
    for (i = 0; i < n; i++) x = cfg[i] ? fer__cbr_bias(m, x, cfg[i]) : fer_maxpool(m, x, 2, 2, 0);
    x = fer_flatten(m, x);
    x = fer_dropout(m, fer_act(m, fer_dense(m, x, 512, 1), FER_OP_RELU), 0.5f);
    x = fer_dropout(m, fer_act(m, fer_dense(m, x, 512, 1), FER_OP_RELU), 0.5f);
    return fer_dense(m, x, k, 1);
}
static int fer__zoo_vgg16_bn(fer_model *m, int k)
{
    static const int cfg[] = { 64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0 };
    return fer__vgg(m, k, cfg, (int)(sizeof(cfg) / sizeof(cfg[0])));
}
static int fer__zoo_vgg19_bn(fer_model *m, int k)
{
    static const int cfg[] = { 64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0,
                               512, 512, 512, 512, 0 };
    return fer__vgg(m, k, cfg, (int)(sizeof(cfg) / sizeof(cfg[0])));
}

/* resnet18 (He et al. 2016), CIFAR-style: conv3x3 64 stem, no max pool, stages
   64/128/256/512 of two BasicBlocks (stride 2 at the first of stages 2-4), GAP, Dense(k). ~11.2M */
static int fer__zoo_resnet18(fer_model *m, int k)
{
    int x = FER_INPUT, s;
    static const int width[4] = { 64, 128, 256, 512 };
    x = fer_conv_bn_act(m, x, 64, 3, 1, FER_OP_RELU);
    for (s = 0; s < 4; s++) {
        x = fer_block_basic(m, x, width[s], s ? 2 : 1);
        x = fer_block_basic(m, x, width[s], 1);
    }
    return fer_dense(m, fer_gap(m, x), k, 1);
}

/* dcm_net: VGG16's five conv groups (64x2, 128x2, 256x3, 512x3, 512x3), each wrapped
   by a residual shortcut (1x1 conv + BN where the width changes) and followed by max
   pool for groups 1-4 (48 -> 3); two refinement stages (conv3x3 512 and 256, BN,
   ReLU); global average pooling; hierarchical head Dense512-ReLU-Dropout(0.4)-
   Dense256-ReLU-Dropout(0.4)-Dense(k). */
static int fer__zoo_dcm_net(fer_model *m, int k)
{
    static const int width[5] = { 64, 128, 256, 512, 512 }, depth[5] = { 2, 2, 3, 3, 3 };
    int x = FER_INPUT, g, i;
    for (g = 0; g < 5; g++) {
        int y = x, sc = x;
        for (i = 0; i < depth[g]; i++)
            y = fer_conv_bn_act(m, y, width[g], 3, 1, i + 1 < depth[g] ? FER_OP_RELU : (fer_op)0);
        if (fer__cin(m, x) != width[g]) sc = fer_bn(m, fer_conv(m, x, width[g], 1, 1, 1, 0, 1, 0));
        x = fer_act(m, fer_add(m, y, sc), FER_OP_RELU);
        if (g < 4) x = fer_maxpool(m, x, 2, 2, 0);
    }
    x = fer_conv_bn_act(m, x, 512, 3, 1, FER_OP_RELU);
    x = fer_conv_bn_act(m, x, 256, 3, 1, FER_OP_RELU);
    x = fer_gap(m, x);
    x = fer_dropout(m, fer_act(m, fer_dense(m, x, 512, 1), FER_OP_RELU), 0.4f);
    x = fer_dropout(m, fer_act(m, fer_dense(m, x, 256, 1), FER_OP_RELU), 0.4f);
    return fer_dense(m, x, k, 1);
}

/* vgg16_dsc_cbam: VGG16 with every conv of the five stages replaced by a residual
   depthwise-separable block (sepconv3x3-BN-PReLU-CBAM + shortcut), max pool after
   each stage (48 -> 1), GAP, Dense512-PReLU-Dropout(0.5)-Dense(k). */
static int fer__zoo_vgg16_dsc_cbam(fer_model *m, int k)
{
    static const int width[5] = { 64, 128, 256, 512, 512 }, depth[5] = { 2, 2, 3, 3, 3 };
    int x = FER_INPUT, g, i;
    for (g = 0; g < 5; g++) {
        for (i = 0; i < depth[g]; i++) x = fer_block_dsc_cbam(m, x, width[g]);
        x = fer_maxpool(m, x, 2, 2, 0);
    }
    x = fer_gap(m, x);
    x = fer_dropout(m, fer_act(m, fer_dense(m, x, 512, 1), FER_OP_PRELU), 0.5f);
    return fer_dense(m, x, k, 1);
}

typedef struct fer__zoo_entry {
    const char *name, *desc;
    int (*build)(fer_model *m, int k);
} fer__zoo_entry;

static const fer__zoo_entry fer__zoo[] = {
    { "baseline_cnn", "VGG-like baseline: 6 conv3x3+BN+ReLU, 3 pools, Dense256, Dense", fer__zoo_baseline_cnn },
    { "mini_xception", "two conv3x3 8, four Xception residual modules 16-128, conv to classes, GAP", fer__zoo_mini_xception },
    { "resnet_lite", "stem conv 32, two light residual blocks 64/128 with pool+dropout, Dense", fer__zoo_resnet_lite },
    { "mobilenetv2_lite", "MobileNetV2 inverted residuals to width 96, no early stride, 1x1 to 128, GAP", fer__zoo_mobilenetv2_lite },
    { "vgg16_bn", "VGG16 with BN, 512-wide classifier", fer__zoo_vgg16_bn },
    { "vgg19_bn", "VGG19 with BN, 512-wide classifier", fer__zoo_vgg19_bn },
    { "resnet18", "ResNet-18, CIFAR-style stem, BasicBlocks 64-512", fer__zoo_resnet18 },
    { "dcm_net", "DCM-Net: residual VGG16 groups, two refinement convs, avg pool, hierarchical head", fer__zoo_dcm_net },
    { "vgg16_dsc_cbam", "VGG16 of residual depthwise-separable+PReLU+CBAM blocks, GAP, Dense512-PReLU", fer__zoo_vgg16_dsc_cbam }
};

FERDEF int fer_zoo_count(void) { return (int)(sizeof(fer__zoo) / sizeof(fer__zoo[0])); }
FERDEF const char *fer_zoo_name(int i) { return i >= 0 && i < fer_zoo_count() ? fer__zoo[i].name : NULL; }
FERDEF const char *fer_zoo_description(int i) { return i >= 0 && i < fer_zoo_count() ? fer__zoo[i].desc : NULL; }

FERDEF fer_result fer_zoo_build(fer_model *m, const char *name, int c, int h, int w,
                                int n_classes, uint64_t seed, void *alloc_ctx)
{
    int i;
    fer_result r = fer_model_init(m, c, h, w, n_classes, alloc_ctx);
    if (r != FER_OK) return r;
    for (i = 0; i < fer_zoo_count(); i++)
        if (name && strcmp(name, fer__zoo[i].name) == 0) {
            memcpy(m->arch, fer__zoo[i].name, strlen(fer__zoo[i].name) + 1);
            fer__zoo[i].build(m, n_classes);
            return fer_model_finalize(m, seed);
        }
    fer__fail(m, FER_ERR_ARG, "unknown architecture '%.64s' (see fer_zoo_name)", name ? name : "(null)");
    return m->status;
}

/* --- 3.7 Inference and training passes ------------------------------------------
   The workspace is carved out of one allocation. Identity and flatten nodes (and
   dropout at inference) alias their input's activation instead of copying it;
   their gradients then alias too, which keeps the accumulation exact. */

static int fer__aliases(const fer_node *nd, int training)
{
    return nd->op == FER_OP_IDENTITY || nd->op == FER_OP_FLATTEN ||
           (nd->op == FER_OP_DROPOUT && !training);
}

/* At inference: the node that runs node i in its own pass, or -1: the conv whose
   epilogue runs a BN that is the conv's only reader, or a ReLU/ReLU6 that is such
   a BN's only reader; the add (a residual join) whose pass runs a ReLU/ReLU6 that
   is its only reader. */
static int fer__fused_into(const fer_model *m, int i)
{
    const fer_node *nd = &m->nodes[i];
    int src = nd->n_in ? nd->in[0] : -1;
    if (src <= 0) return -1;
    if (nd->op == FER_OP_BN)
        return m->nodes[src].op == FER_OP_CONV && !m->nodes[src].act && fer__consumers(m, src) == 1 ? src : -1;
    if ((nd->op == FER_OP_RELU || nd->op == FER_OP_RELU6) && fer__consumers(m, src) == 1)
        return m->nodes[src].op == FER_OP_BN ? fer__fused_into(m, src) : m->nodes[src].op == FER_OP_ADD ? src : -1;
    return -1;
}

/* The node whose gradient region node i's gradient is (aliases share their input's). */
static int fer__grad_root(const fer_model *m, int i)
{
    while (i > 0 && fer__aliases(&m->nodes[i], 1)) i = m->nodes[i].in[0];
    return i;
}

/* Training: the batch norm whose forward and backward run ReLU/ReLU6 node i (the
   norm's only reader), or -1. */
static int fer__train_fused_bn(const fer_model *m, int i)
{
    const fer_node *a = &m->nodes[i];
    int src = a->n_in ? a->in[0] : -1;
    return (a->op == FER_OP_RELU || a->op == FER_OP_RELU6) && src > 0 && m->nodes[src].op == FER_OP_BN &&
           fer__consumers(m, src) == 1 ? src : -1;
}

/* Training: where each node's gradient lives. Backward runs from the last node
   down; the region of node r (one that does not alias its input) is live from the
   step of its first writer gfirst[r] (its highest-numbered reader) to the step
   rd[r] that reads it: r's own, or for a ReLU run by the batch norm before it,
   the norm's (whose own region is then never used and takes no room). Regions
   live at no common step share memory: largest first, each at the lowest offset
   clear of the placed regions it meets in time. The output's region (dout) and
   regions no node reads are live throughout (gfirst = n_nodes). off[i]: node
   i's region (an alias: its input's); returns the floats of all, each region
   rounded up to 16 floats (fer__grad_floats). live, rd: scratch of n_nodes. */
static size_t fer__grad_floats(const fer_model *m, size_t nb, const int *rd, int i);
static size_t fer__grad_layout(const fer_model *m, size_t nb, int *gfirst, size_t *off, int *live, int *rd)
{
    int i, j, k, nl, n = m->n_nodes, out = fer__grad_root(m, n - 1);
    size_t total = 0;
    for (i = 0; i < n; i++) { gfirst[i] = -1; off[i] = SIZE_MAX; rd[i] = i; }
    for (i = 1; i < n; i++) {
        int b = fer__train_fused_bn(m, i);
        if (b >= 0) { rd[i] = b; rd[b] = -1; }
        if (!fer__aliases(&m->nodes[i], 1))
            for (k = 0; k < m->nodes[i].n_in; k++) {
                int r = fer__grad_root(m, m->nodes[i].in[k]);
                if (i > gfirst[r]) gfirst[r] = i;
            }
    }
    for (i = 0; i < n; i++) {
        if (i == out || gfirst[i] < 0) gfirst[i] = n;
        if (!fer__grad_floats(m, nb, rd, i)) off[i] = 0;   /* no region of its own */
    }
    for (;;) {
        int r = -1;
        size_t sz, at = SIZE_MAX;
        for (i = 0; i < n; i++)   /* the largest region not yet placed */
            if (off[i] == SIZE_MAX && (r < 0 || fer__shape_size(m->nodes[i].out) > fer__shape_size(m->nodes[r].out)))
                r = i;
        if (r < 0) break;
        sz = fer__grad_floats(m, nb, rd, r);
        for (nl = j = 0; j < n; j++)   /* the placed regions live at a step r is */
            if (off[j] != SIZE_MAX && fer__grad_floats(m, nb, rd, j) && rd[j] <= gfirst[r] && rd[r] <= gfirst[j])
                live[nl++] = j;
        for (j = -1; j < nl; j++) {    /* candidates: 0 and the end of each of them */
            size_t c = j < 0 ? 0 : off[live[j]] + fer__grad_floats(m, nb, rd, live[j]);
            int ok = c < at;
            for (k = 0; k < nl && ok; k++)
                ok = c + sz <= off[live[k]] || off[live[k]] + fer__grad_floats(m, nb, rd, live[k]) <= c;
            if (ok) at = c;
        }
        off[r] = at;
        if (at + sz > total) total = at + sz;
    }
    for (i = 0; i < n; i++) off[i] = off[fer__grad_root(m, i)];
    return total;
}
/* node i's own region's floats: none for an alias or a norm whose ReLU holds its gradient */
static size_t fer__grad_floats(const fer_model *m, size_t nb, const int *rd, int i)
{
    if (fer__aliases(&m->nodes[i], 1) || rd[i] < 0) return 0;
    return (nb * fer__shape_size(m->nodes[i].out) + 15) & ~(size_t)15;
}

/* Backward accumulates (+=) into the gradient of every input. Rather than zeroing
   all of them each pass, the first node to write a region (backward runs from the
   last node down, so the highest-numbered reader) assigns it when its op can (conv,
   batch norm, ReLU/ReLU6 on their one input); the other regions are zeroed. The
   output's region holds dout and is added to. */
static void fer__grad_plan(const fer_model *m, fer_workspace *ws)
{
    int i, r, out = fer__grad_root(m, m->n_nodes - 1);
    for (r = 0; r < m->n_nodes; r++) {
        const fer_node *w;
        if (fer__aliases(&m->nodes[r], 1) || r == out) continue;
        w = ws->gfirst[r] < m->n_nodes ? &m->nodes[ws->gfirst[r]] : NULL;
        if (w && (w->op == FER_OP_CONV || w->op == FER_OP_BN || w->op == FER_OP_RELU || w->op == FER_OP_RELU6) &&
            w->n_in == 1 && fer__grad_root(m, w->in[0]) == r)
            ws->gassign[ws->gfirst[r]] = 1;
        else
            ws->gzero[r] = 1;
    }
    /* a ReLU/ReLU6 that is a batch norm's only reader runs inside the norm's
       forward and backward (its backward needs only its own output) */
    for (i = 1; i < m->n_nodes; i++) {
        int b = fer__train_fused_bn(m, i);
        if (b >= 0) { ws->tfuse[b] = i; ws->tfuse[i] = -1; }
    }
}

/* An inference workspace of batches up to nb keeps, per conv that can run as
   Winograd at nb samples, its weights' transform (made once per forward, shared
   by the chunks of samples). */
static size_t fer__wino_aux(const fer_model *m, const fer_node *nd, int nb)
{
#if defined(FER__X86)
    fer_shape in = m->nodes[nd->in[0]].out;
    fer_conv_geom g;
    if (fer_conv_geom_init(&g, 1, in.c, in.h, in.w, nd->out.c, nd->kh, nd->kw, nd->sh, nd->sw, nd->ph, nd->pw,
                           nd->groups) != FER_OK || !fer__wino_enough(&g, nb))
        return 0;
    return (fer__wino4_shape(&g) ? 36 : 16) * FER__WINO_ES(g.cout, g.cin);
#else
    (void)m; (void)nd; (void)nb;
    return 0;   /* Winograd is x86's (AVX-512, AVX2) */
#endif
}

static fer_result fer__geom(const fer_model *m, const fer_node *nd, int n, fer_conv_geom *g)
{
    fer_shape in = m->nodes[nd->in[0]].out;
    return fer_conv_geom_init(g, n, in.c, in.h, in.w, nd->out.c, nd->kh, nd->kw, nd->sh, nd->sw,
                              nd->ph, nd->pw, nd->groups);
}

/* The node whose buffer node i's output is at inference: the conv or add that
   runs it in its pass, the input of an alias, else i. */
static int fer__buf_root(const fer_model *m, int i)
{
    for (;;) {
        int into = fer__fused_into(m, i);
        if (into >= 0) i = into;
        else if (i > 0 && fer__aliases(&m->nodes[i], 0)) i = m->nodes[i].in[0];
        else return i;
    }
}

/* Every node sharing `node`'s buffer (a conv and the norm and activation fused
   into it, or a node and its aliases) keeps the whole batch. */
static void fer__keep_whole(const fer_model *m, fer_workspace *ws, int node)
{
    int j, r = fer__buf_root(m, node);
    for (j = 0; j < m->n_nodes; j++)
        if (fer__buf_root(m, j) == r) ws->whole[j] = 1;
}

/* The buffers of an inference workspace: the nodes kept whole (fer__schedule,
   fer_workspace_keep) one each, the others (the first phase's, a chunk of
   samples at a time) sharing: a buffer is taken again once the last node that
   reads it has run, so those activations take a few buffers' room and are still
   in cache when written (resnet18 at batch 1: 6.6 MB of buffers written once per
   forward, each from memory, become 1.5 MB). Where the scratch for it cannot be
   allocated, every buffer stays its own (as before). */
static void fer__share_buffers(const fer_model *m, fer_workspace *ws)
{
    int n = m->n_nodes, i, k, ns = 0;
    size_t act = 0, nb = (size_t)ws->max_batch, *so, *ss, *off;
    int *root, *last, *busy;
    void *mem;
    if (ws->training) return;
    mem = FER_MALLOC((size_t)n * (3 * sizeof(size_t) + 3 * sizeof(int)), ws->alloc_ctx);
    if (!mem) return;
    so = (size_t *)mem; ss = so + n; off = ss + n;
    root = (int *)(off + n); last = root + n; busy = last + n;
    for (i = 0; i < n; i++) { root[i] = fer__buf_root(m, i); last[i] = i; }
    for (i = 1; i < n; i++)   /* the last node reading each buffer */
        for (k = 0; k < m->nodes[i].n_in; k++)
            if (last[root[m->nodes[i].in[k]]] < i) last[root[m->nodes[i].in[k]]] = i;
    for (i = 0; i < n; i++)
        if (root[i] == i && ws->whole[i]) { off[i] = act; act += nb * fer__shape_size(m->nodes[i].out); }
    for (i = 0; i < n; i++) {
        size_t sz = nb * fer__shape_size(m->nodes[i].out);
        if (root[i] != i || ws->whole[i]) continue;
        for (k = 0; k < ns && (busy[k] >= i || ss[k] < sz); k++) {}
        if (k == ns) { so[ns] = act; ss[ns++] = sz; act += sz; }
        busy[k] = last[i];
        off[i] = so[k];
    }
    for (i = 0; i < n; i++) ws->act_off[i] = off[root[i]];
    FER_FREE(mem, ws->alloc_ctx);
}

/* A chunk of samples reads each conv's weights once. Where the weights outweigh
   a sample's activations (its input and output) r times, a chunk of r samples
   keeps that re-reading from dominating: 256->256 3x3 on 11x11 has 2.4 MB of
   weights for 0.25 MB of activations per sample, and one sample at a time ran it
   at half the speed of 8 (and its Winograd GEMMs on 36 tiles). Returns the
   largest r of the convs in nodes [from, to), rounded up, at least 1. */
static int fer__weight_chunk(const fer_model *m, int from, int to)
{
    double r = 1.0;
    int i;
    for (i = from; i < to; i++) {
        const fer_node *nd = &m->nodes[i];
        if (nd->op == FER_OP_CONV) {
            fer_shape in = m->nodes[nd->in[0]].out;
            double w = (double)nd->out.c * (in.c / nd->groups) * nd->kh * nd->kw;
            double a = (double)fer__shape_size(in) + (double)fer__shape_size(nd->out);
            if (w > r * a) r = w / a;
        }
    }
    return r >= 65536.0 ? 65536 : (int)ceil(r);
}

/* The inference schedule (fer__run_nodes). The nodes before the first dense
   layer run a few samples at a time, as many as keep their activations within
   about 512 KB (one sample for most of the zoo), except a tail whose planes are
   all smaller than a few GEMM strips (the end of a deep net, where the weights
   outweigh the activations): it runs in chunks large enough for its convs to
   batch samples per GEMM. The dense layers (whose weights dominate) run on the
   whole batch. A buffer read only by nodes of the first phase holds just the
   chunk being run (written from its start: it stays in L2 from one chunk to the
   next, where the batch's activations would stream through memory), unless the
   model's output, a training workspace's or one kept by fer_workspace_keep; such
   buffers are shared once read (fer__share_buffers). Either phase's chunks hold
   at least fer__weight_chunk samples. */
static void fer__schedule(const fer_model *m, fer_workspace *ws)
{
    size_t per = 0;
    int i, k, split;
    for (i = 1; i < m->n_nodes && m->nodes[i].op != FER_OP_DENSE; i++)
        if (ws->fuse[i] >= 0 && !fer__aliases(&m->nodes[i], 0)) per += fer__shape_size(m->nodes[i].out);
    ws->tail = i;
    per *= sizeof(float);
    for (split = ws->tail; split > 1; split--) {
        fer_shape o = m->nodes[split - 1].out;
        if (o.h * o.w >= FER__BATCH_PLANE) break;
    }
    ws->split = split;
    ws->chunk = per ? (int)((512u << 10) / per) : ws->max_batch;
    k = fer__weight_chunk(m, 1, split);   /* at least 1 */
    if (ws->chunk < k) ws->chunk = k;
    for (i = split, ws->chunk2 = ws->chunk; i < ws->tail; i++) {
        fer_conv_geom g;
        if (m->nodes[i].op == FER_OP_CONV && fer__geom(m, &m->nodes[i], 1, &g) == FER_OK &&
            fer__conv_batch(&g) > ws->chunk2)
            ws->chunk2 = fer__conv_batch(&g);
    }
    k = fer__weight_chunk(m, split, ws->tail);
    if (ws->chunk2 < k) ws->chunk2 = k;
    for (i = 0; i < m->n_nodes; i++) ws->whole[i] = ws->training || i >= split;
    fer__keep_whole(m, ws, 0);
    fer__keep_whole(m, ws, m->n_nodes - 1);
    for (i = split; i < m->n_nodes; i++)
        for (k = 0; k < m->nodes[i].n_in; k++) fer__keep_whole(m, ws, m->nodes[i].in[k]);
    fer__share_buffers(m, ws);
}

FERDEF fer_result fer_workspace_keep(fer_workspace *ws, const fer_model *m, int node)
{
    if (ws->n_nodes != m->n_nodes || !ws->whole) {
        fer__err(ws->error, "keep: the workspace was not made for this model");
        return FER_ERR_ARG;
    }
    if (node < 0 || node >= m->n_nodes) {
        fer__err(ws->error, "keep: node %d is not in 0..%d", node, m->n_nodes - 1);
        return FER_ERR_ARG;
    }
    fer__keep_whole(m, ws, node);
    fer__share_buffers(m, ws);   /* its buffer its own from now on */
    return FER_OK;
}

FERDEF fer_result fer_workspace_init(fer_workspace *ws, const fer_model *m, int max_batch,
                                     int training)
{
    size_t act = 0, grad = 0, aux = 0, iaux = 0, scratch = fer_gemm_pack_floats(), nb, total, floats, idx;
    size_t *tmp = NULL;
    int i;
    memset(ws, 0, sizeof(*ws));
    ws->alloc_ctx = m->alloc_ctx;
    if (!m->finalized) { fer__err(ws->error, "workspace: the model is not finalized"); return FER_ERR_ARG; }
    if (max_batch < 1 || max_batch > 65536) {
        fer__err(ws->error, "workspace: batch %d is not in 1..65536", max_batch);
        return FER_ERR_ARG;
    }
    nb = (size_t)max_batch;
    /* pass 1: sizes (each node's regions are reserved in node order) */
    for (i = 0; i < m->n_nodes; i++) {
        const fer_node *nd = &m->nodes[i];
        size_t sz = fer__mul(nb, fer__shape_size(nd->out));
        if (!fer__aliases(nd, training) && (training || fer__fused_into(m, i) < 0)) act = fer__add(act, sz);
        if (nd->op == FER_OP_BN) aux = fer__add(aux, 5 * (size_t)nd->out.c);
        if (nd->op == FER_OP_DROPOUT && training) aux = fer__add(aux, sz);
        if (nd->op == FER_OP_CONV && !training) aux = fer__add(aux, fer__wino_aux(m, nd, max_batch));
        if (nd->op == FER_OP_MAXPOOL || nd->op == FER_OP_GMP) iaux = fer__add(iaux, sz);
        if (nd->op == FER_OP_CHANPOOL) iaux = fer__add(iaux, fer__mul(nb, (size_t)nd->out.h * nd->out.w));
        if (nd->op == FER_OP_CONV) {
            fer_conv_geom g;
            fer_shape in = m->nodes[nd->in[0]].out;
            size_t s;
            fer_conv_geom_init(&g, 1, in.c, in.h, in.w, nd->out.c, nd->kh, nd->kw, nd->sh, nd->sw,
                               nd->ph, nd->pw, nd->groups);
            s = fer_conv_scratch_floats(&g);
            if (s > scratch) scratch = s;
        }
    }
    if (training) {   /* the gradients' places, made in a scratch allocation */
        int *gf;
        if (!(tmp = (size_t *)FER_MALLOC(((size_t)m->n_nodes * (sizeof(size_t) + 3 * sizeof(int))), ws->alloc_ctx))) {
            fer__err(ws->error, "workspace: cannot allocate the gradient plan of %d nodes", m->n_nodes);
            return FER_ERR_NOMEM;
        }
        gf = (int *)(tmp + m->n_nodes);
        grad = fer__grad_layout(m, nb, gf, tmp, gf + m->n_nodes, gf + 2 * m->n_nodes);
    }
    floats = fer__add(fer__add(fer__add(act, grad), aux), fer__add(training ? m->n_params : 0, scratch));
    total = fer__add(fer__add(fer__mul(floats, sizeof(float)), fer__mul(iaux, sizeof(int32_t))),
                     fer__add(fer__mul((size_t)m->n_nodes * 4, sizeof(size_t)),
                              fer__mul((size_t)m->n_nodes * 7, sizeof(int))));
    if (total == SIZE_MAX || !(ws->mem = FER_MALLOC(total, ws->alloc_ctx))) {
        if (tmp) FER_FREE(tmp, ws->alloc_ctx);
        fer__err(ws->error, "workspace: cannot allocate %zu bytes for batch %d", total, max_batch);
        return FER_ERR_NOMEM;
    }
    /* pass 2: carve (size_t arrays first, then floats, then int32: alignment holds) */
    ws->act_off = (size_t *)ws->mem;
    ws->aux_off = ws->act_off + m->n_nodes;
    ws->iaux_off = ws->aux_off + m->n_nodes;
    ws->grad_off = ws->iaux_off + m->n_nodes;
    ws->act = (float *)(ws->grad_off + m->n_nodes);
    ws->grad = training ? ws->act + act : NULL;
    ws->aux = ws->act + act + grad;
    ws->pgrad = training ? ws->aux + aux : NULL;
    ws->scratch = ws->aux + aux + (training ? m->n_params : 0);
    ws->scratch_len = scratch;
    ws->iaux = (int32_t *)(ws->scratch + scratch);
    ws->fuse = (int *)(ws->iaux + iaux);
    ws->gassign = ws->fuse + 2 * m->n_nodes;
    ws->gzero = ws->gassign + m->n_nodes;
    ws->tfuse = ws->gzero + m->n_nodes;
    ws->whole = ws->tfuse + m->n_nodes;
    ws->gfirst = ws->whole + m->n_nodes;
    for (i = 0; i < 7 * m->n_nodes; i++) ws->fuse[i] = 0;
    for (i = 0; i < m->n_nodes; i++) ws->grad_off[i] = 0;
    if (tmp) {
        memcpy(ws->grad_off, tmp, sizeof(size_t) * (size_t)m->n_nodes);
        memcpy(ws->gfirst, tmp + m->n_nodes, sizeof(int) * (size_t)m->n_nodes);
        FER_FREE(tmp, ws->alloc_ctx);
    }
    act = aux = iaux = 0;
    for (i = 0; i < m->n_nodes; i++) {
        const fer_node *nd = &m->nodes[i];
        size_t sz = nb * fer__shape_size(nd->out);
        int into = training ? -1 : fer__fused_into(m, i);
        if (into >= 0) {   /* runs in conv `into`'s epilogue, in its buffer */
            ws->act_off[i] = ws->act_off[into];
            ws->fuse[i] = -1;
            ws->fuse[(nd->op == FER_OP_BN ? 0 : m->n_nodes) + into] = i;
        } else if (fer__aliases(nd, training)) ws->act_off[i] = ws->act_off[nd->in[0]];
        else { ws->act_off[i] = act; act += sz; }
        ws->aux_off[i] = aux;
        if (nd->op == FER_OP_BN) aux += 5 * (size_t)nd->out.c;
        if (nd->op == FER_OP_DROPOUT && training) aux += sz;
        if (nd->op == FER_OP_CONV && !training) aux += fer__wino_aux(m, nd, max_batch);
        ws->iaux_off[i] = iaux;
        if (nd->op == FER_OP_MAXPOOL || nd->op == FER_OP_GMP) iaux += sz;
        if (nd->op == FER_OP_CHANPOOL) iaux += nb * (size_t)nd->out.h * nd->out.w;
    }
    for (idx = 0; idx < iaux; idx++) ws->iaux[idx] = 0;
    if (training) fer__grad_plan(m, ws);
    ws->max_batch = max_batch;
    ws->training = training != 0;
    ws->n_nodes = m->n_nodes;
    fer__schedule(m, ws);
    ws->isa = ws->isa_max = fer_cpu_best_isa();
    ws->input_grad = 1;
    if (training) memset(ws->pgrad, 0, sizeof(float) * m->n_params);
    return FER_OK;
}

FERDEF void fer_workspace_free(fer_workspace *ws)
{
    if (ws->mem) FER_FREE(ws->mem, ws->alloc_ctx);
    if (ws->frozen_off) FER_FREE(ws->frozen_off, ws->alloc_ctx);
    if (ws->q8_off) FER_FREE(ws->q8_off, ws->alloc_ctx);
    memset(ws, 0, sizeof(*ws));
}

static const float *fer__p(const fer_model *m, const fer_node *nd)
{
    return m->params + (nd->share >= 0 ? m->nodes[nd->share].p_off : nd->p_off);
}
static float *fer__dp(const fer_model *m, const fer_workspace *ws, const fer_node *nd)
{
    return ws->pgrad + (nd->share >= 0 ? m->nodes[nd->share].p_off : nd->p_off);
}

/* out = a + b over len floats (out may be a), per ISA. */
static void fer__vadd(fer_isa isa, size_t len, float *out, const float *a, const float *b)
{
    size_t i = 0;
#if defined(FER__X86)
    if (isa == FER_ISA_AVX512) { i = len & ~(size_t)15; fer__vadd_avx512(i, out, a, b); }
    if (isa == FER_ISA_AVX2) { i = len & ~(size_t)7; fer__vadd_avx2(i, out, a, b); }
#endif
    (void)isa;
    for (; i < len; i++) out[i] = a[i] + b[i];
}

/* Node i's activation (or, for j = in[k], an input's) from sample s0 on. */
static float *fer__act(const fer_model *m, const fer_workspace *ws, int i, int s0)
{
    return ws->act + ws->act_off[i] + (ws->whole[i] ? (size_t)s0 * fer__shape_size(m->nodes[i].out) : 0);
}

/* Floats of node nd's frozen weight transform in a workspace of batches up to nb
   running isa's kernels, or 0. */
static size_t fer__frozen_floats(const fer_model *m, const fer_node *nd, fer_isa isa, int nb)
{
#if defined(FER__X86)
    fer_conv_geom g;
    if (nd->op != FER_OP_CONV || fer__geom(m, nd, 1, &g) != FER_OK) return 0;
    if (fer__wino4c_use(isa, &g, nb)) return fer__wino4c_ufloats(&g);
    if (fer__rows9_use(isa, &g, nb)) return fer__rows9_wfloats(&g);
    if (!fer__wino_frozen_use(isa, &g, nb)) return 0;
    return fer__mul(fer__wino4(isa, &g) ? 36 : 16, FER__WINO_ES(g.cout, g.cin));
#else
    (void)m; (void)nd; (void)isa; (void)nb;
    return 0;   /* Winograd is x86's (AVX-512, AVX2) */
#endif
}

FERDEF fer_result fer_workspace_freeze(fer_workspace *ws, const fer_model *m)
{
    size_t total = 0, bytes;
    int i;
    fer_isa isa;
    if (!m->finalized || !ws->mem || ws->n_nodes != m->n_nodes) {
        fer__err(ws->error, "freeze: the workspace was not made for this finalized model");
        return FER_ERR_ARG;
    }
    if (ws->training) {
        fer__err(ws->error, "freeze: a training workspace reads the weights as they change; freeze an inference one");
        return FER_ERR_ARG;
    }
    if (ws->frozen_off) FER_FREE(ws->frozen_off, ws->alloc_ctx);   /* made again from the weights of now */
    ws->frozen_off = NULL;
    ws->frozen = NULL;
    if (ws->q8_off) FER_FREE(ws->q8_off, ws->alloc_ctx);   /* and back to float layers */
    ws->q8_off = NULL;
    ws->q8 = ws->q8_buf = NULL;
    isa = fer__isa_clamp(ws->isa, ws->isa_max);
    for (i = 0; i < m->n_nodes; i++) total = fer__add(total, fer__frozen_floats(m, &m->nodes[i], isa, ws->max_batch));
    if (total == 0) return FER_OK;   /* no conv here gains from it */
    bytes = fer__add(fer__mul((size_t)m->n_nodes, sizeof(size_t)), fer__mul(total, sizeof(float)));
    if (bytes == SIZE_MAX || !(ws->frozen_off = (size_t *)FER_MALLOC(bytes, ws->alloc_ctx))) {
        fer__err(ws->error, "freeze: cannot allocate %zu bytes for the weights' transforms", bytes);
        return FER_ERR_NOMEM;
    }
    ws->frozen = (float *)(ws->frozen_off + m->n_nodes);
    ws->frozen_isa = isa;
    total = 0;
    for (i = 0; i < m->n_nodes; i++) {
        size_t f = fer__frozen_floats(m, &m->nodes[i], isa, ws->max_batch);
        ws->frozen_off[i] = f ? total : SIZE_MAX;
#if defined(FER__X86)
        if (f) {
            fer_conv_geom g;
            fer__geom(m, &m->nodes[i], 1, &g);
            const float *w = fer__p(m, &m->nodes[i]);
            float *fz = ws->frozen + total;
            if (fer__rows9_use(isa, &g, ws->max_batch)) fer__rows9_weights(w, g.cout, g.cin * g.kh * g.kw, fz);
            else if (!fer__wino4c_use(isa, &g, ws->max_batch))
                fer__wino_weights(isa, fer__wino4(isa, &g) ? 4 : 2, w, g.cout, g.cin, fz, FER__WINO_ES(g.cout, g.cin));
            else if (fer__wino4c_weights(w, g.cout, g.cin, fz, ws->alloc_ctx) != FER_OK) {   /* its scratch row */
                FER_FREE(ws->frozen_off, ws->alloc_ctx);
                ws->frozen_off = NULL;
                ws->frozen = NULL;
                fer__err(ws->error, "freeze: cannot allocate %zu bytes for a weights' transform",
                         sizeof(float) * 36 * (size_t)g.cin);
                return FER_ERR_NOMEM;
            }
        }
#endif
        total += f;
    }
    return FER_OK;
}

/* lo_hi[0..1] widened to the min and max of x[0..len). */
static void fer__range(const float *x, size_t len, float *lo_hi)
{
    float lo = lo_hi[0], hi = lo_hi[1];
    size_t k;
    int nan = 0;
    for (k = 0; k < len; k++) {
        lo = x[k] < lo ? x[k] : lo;
        hi = x[k] > hi ? x[k] : hi;
        nan |= x[k] != x[k];
    }
    if (nan) lo = hi = NAN;   /* for fer_workspace_quantize's check */
    lo_hi[0] = lo; lo_hi[1] = hi;
}

/* Conv node i's store-time epilogue at inference: its bias, the batch norm that
   runs in it (scale and shift made into sc, 2 * cout floats) and the activation
   after that. */
static void fer__conv_epi(const fer_model *m, const fer_workspace *ws, int i, float *sc, fer__epi *e)
{
    const fer_node *nd = &m->nodes[i];
    fer_shape in = m->nodes[nd->in[0]].out, o = nd->out;
    size_t nw = (size_t)o.c * (in.c / nd->groups) * nd->kh * nd->kw;
    int bn = ws->fuse[i], act = ws->fuse[m->n_nodes + i], c;
    e->scale = NULL; e->shift = nd->bias ? fer__p(m, nd) + nw : NULL;
    e->act = nd->act == FER_OP_RELU ? 1 : nd->act == FER_OP_RELU6 ? 2 : 0;
    if (bn > 0) {   /* the batch norm after the conv, folded into scale and shift */
        const fer_node *b = &m->nodes[bn];
        const float *gam = fer__p(m, b), *rm = m->buffers + b->b_off;
        float *sh = sc + o.c;
        for (c = 0; c < o.c; c++) {
            sc[c] = gam[c] / sqrtf(rm[o.c + c] + b->eps);
            sh[c] = gam[o.c + c] + ((e->shift ? e->shift[c] : 0.0f) - rm[c]) * sc[c];
        }
        e->scale = sc; e->shift = sh;
        if (act > 0) e->act = m->nodes[act].op == FER_OP_RELU6 ? 2 : 1;
    }
}

/* Layers that run in int8 once quantized: convs not grouped, with 4+ input
   channels and 32+ multiply-adds per output, stride 1 or 2 both ways, kernels up
   to 7 x 7 (a one-channel stem and the depthwise convs stay float), and dense
   layers of 64+ inputs. */
static int fer__q8_eligible(const fer_model *m, const fer_node *nd)
{
    fer_shape in = m->nodes[nd->in[0]].out;
    if (nd->op == FER_OP_DENSE)
        return fer__shape_size(in) >= 64 && fer__shape_size(in) <= 65536;   /* int32 sums cannot overflow */
    return nd->op == FER_OP_CONV && nd->groups == 1 && in.c >= 4 && in.c * nd->kh * nd->kw >= 32 && nd->sh == nd->sw &&
           (nd->sh == 1 || nd->sh == 2) && nd->kh * nd->kw <= FER__Q8_TAPS &&
           (double)in.c * nd->kh * nd->kw <= 65536.0 &&
           (double)(in.c + 3) * (in.h + 2 * nd->ph + 64) * (in.w + 2 * nd->pw + 64) * 4 < 2147483647.0;
}
static size_t fer__q8_align(size_t x) { return (x + 63) & ~(size_t)63; }
static size_t fer__q8_dense_bytes(int cin) { return 4 * ((size_t)(cin + 63) / 64 * 64); }

/* The input's scale and zero point for values in [lo, hi] (widened to hold 0,
   the padding, exactly); returns the scale. */
static double fer__q8_input_scale(fer__q8 *q, float lo, float hi)
{
    double sx;
    if (lo > 0.0f) lo = 0.0f;
    if (hi < 0.0f) hi = 0.0f;
    sx = ((double)hi - lo) / 255.0;
    if (!(sx > 1e-30)) sx = 1.0;   /* a constant zero input */
    q->izx = (int)floor(-lo / sx + 0.5);
    q->izx = q->izx < 0 ? 0 : q->izx > 255 ? 255 : q->izx;
    q->zx = (float)q->izx;
    q->inv_sx = (float)(1.0 / sx);
    return sx;
}

/* Output o's len weights to bytes qw (scale max |w| / 127), and its A[o], B[o]:
   sx * sw times scale, shift (either NULL for 1, 0) less zx * sum(qw) * A[o]. */
static void fer__q8_row(const fer__q8 *q, double sx, const float *wo, size_t len, signed char *qw, float scale,
                        float shift, float *A, float *B)
{
    float amax = 0.0f;
    double sw, a;
    long wsum = 0;
    size_t j;
    for (j = 0; j < len; j++) amax = fabsf(wo[j]) > amax ? fabsf(wo[j]) : amax;
    sw = amax > 0.0f ? amax / 127.0 : 1.0;
    for (j = 0; j < len; j++) {
        double v = wo[j] / sw;
        int r = (int)(v < 0 ? v - 0.5 : v + 0.5);
        r = r > 127 ? 127 : r < -127 ? -127 : r;
        qw[j] = (signed char)r;
        wsum += r;
    }
    a = sx * sw * scale;
    *A = (float)a;
    *B = (float)(shift - (double)q->izx * wsum * a);
}

/* Dense node i's int8 block (as fer__q8_make). */
static size_t fer__q8_make_dense(const fer_model *m, int i, float lo, float hi, fer__q8 *dst, size_t *buf)
{
    const fer_node *nd = &m->nodes[i];
    fer__q8 q;
    size_t off;
    int o;
    memset(&q, 0, sizeof q);
    q.dense = 1;
    q.cin = (int)fer__shape_size(m->nodes[nd->in[0]].out);
    q.cout = nd->out.c;
    q.kh = q.kw = q.s = 1;
    off = fer__q8_align(sizeof q);
    q.w_off = off; off += fer__q8_align((size_t)q.cout * q.cin);
    q.a_off = off; off += fer__q8_align((size_t)q.cout * sizeof(float));
    q.b_off = off; off += fer__q8_align((size_t)q.cout * sizeof(float));
    q.pk_off = q.k_off = off;
    q.bytes = off;
    *buf = fer__q8_dense_bytes(q.cin);
    if (dst) {
        const float *W = fer__p(m, nd), *bias = nd->bias ? W + (size_t)q.cin * q.cout : NULL;
        double sx = fer__q8_input_scale(&q, lo, hi);
        for (o = 0; o < q.cout; o++)
            fer__q8_row(&q, sx, W + (size_t)o * q.cin, (size_t)q.cin, (signed char *)dst + q.w_off + (size_t)o * q.cin,
                        1.0f, bias ? bias[o] : 0.0f, (float *)((char *)dst + q.a_off) + o,
                        (float *)((char *)dst + q.b_off) + o);
        memcpy(dst, &q, sizeof q);
    }
    return q.bytes;
}

/* Node i's int8 block for inputs in [lo, hi] (bytes; made at dst unless NULL);
   *buf: the bytes its input needs in ws->q8_buf. */
static size_t fer__q8_make(const fer_model *m, const fer_workspace *ws, int i, float lo, float hi, fer__q8 *dst,
                           size_t *buf)
{
    const fer_node *nd = &m->nodes[i];
    fer_conv_geom g;
    fer__q8 q;
    int hp, wp, hg, ocp, npos, tapmax, o, ci, t, k, ntaps;
    size_t pos, off, nw;
    if (nd->op == FER_OP_DENSE) return fer__q8_make_dense(m, i, lo, hi, dst, buf);
    fer__geom(m, nd, 1, &g);
    memset(&q, 0, sizeof q);
    q.cin = g.cin; q.cout = g.cout;
    ocp = (g.cout + FER__Q8_NO - 1) / FER__Q8_NO * FER__Q8_NO;   /* the packed weights' channels */
    q.kh = g.kh; q.kw = g.kw; q.s = g.sh; q.ph = g.ph; q.pw = g.pw;
    q.cg = (g.cin + 3) / 4;
    ntaps = g.kh * g.kw;
    q.ksteps = q.cg * ntaps;
    q.phases = q.s == 1 ? 1 : 4;
    hp = g.h + 2 * g.ph; wp = g.w + 2 * g.pw;
    hg = (hp + q.s - 1) / q.s; q.wg = (wp + q.s - 1) / q.s;
    npos = g.oh * q.wg;
    tapmax = (g.kh - 1) / q.s * q.wg + (g.kw - 1) / q.s;
    /* the last tile reads up to 15 positions past npos, at every tap */
    pos = (size_t)hg * q.wg;
    if ((size_t)(npos + 15) / 16 * 16 + tapmax > pos) pos = (size_t)(npos + 15) / 16 * 16 + tapmax;
    q.plane = (pos + 15) / 16 * 16 * 4;
    nw = (size_t)g.cout * g.cin * ntaps;
    off = fer__q8_align(sizeof q);
    q.w_off = off; off += fer__q8_align(nw);
    q.pk_off = off; off += fer__q8_align((size_t)ocp * q.ksteps * 4);
    q.a_off = off; off += fer__q8_align((size_t)ocp * sizeof(float));
    q.b_off = off; off += fer__q8_align((size_t)ocp * sizeof(float));
    q.k_off = off; off += fer__q8_align((size_t)q.ksteps * sizeof(int));
    q.bytes = off;
    *buf = (size_t)q.phases * q.cg * q.plane;
    if (*buf < (size_t)g.cin * g.h * g.w) *buf = (size_t)g.cin * g.h * g.w;   /* the reference's */
    if (dst) {
        const float *W = fer__p(m, nd);
        signed char *qw = (signed char *)dst + q.w_off;
        int32_t *pk = (int32_t *)((char *)dst + q.pk_off);
        float *A = (float *)((char *)dst + q.a_off), *B = (float *)((char *)dst + q.b_off);
        int *koff = (int *)((char *)dst + q.k_off);
        float *sc = ws->aux + ws->aux_off[ws->fuse[i] > 0 ? ws->fuse[i] : i];
        double sx = fer__q8_input_scale(&q, lo, hi);
        size_t len = (size_t)g.cin * ntaps;
        fer__epi e;
        fer__conv_epi(m, ws, i, sc, &e);
        q.act = e.act;
        memset((char *)dst + q.w_off, 0, off - q.w_off);
        for (o = 0; o < g.cout; o++)
            fer__q8_row(&q, sx, W + (size_t)o * len, len, qw + (size_t)o * len, e.scale ? e.scale[o] : 1.0f,
                        e.shift ? e.shift[o] : 0.0f, A + o, B + o);
        for (ci = 0; ci < q.cg; ci++)   /* k-step ci * ntaps + t: 4 channels at tap t */
            for (t = 0; t < ntaps; t++) {
                int ky = t / g.kw, kx = t % g.kw, phase = q.s == 1 ? 0 : (ky & 1) * 2 + (kx & 1);
                k = ci * ntaps + t;
                koff[k] = (int)(((size_t)phase * q.cg + ci) * q.plane +
                                ((size_t)(ky / q.s) * q.wg + kx / q.s) * 4);
                for (o = 0; o < g.cout; o++) {
                    uint32_t v = 0;
                    int c;
                    for (c = 0; c < 4 && 4 * ci + c < g.cin; c++)
                        v |= (uint32_t)(unsigned char)qw[((size_t)o * g.cin + 4 * ci + c) * ntaps + t] << (8 * c);
                    pk[((size_t)(o / FER__Q8_NO) * q.ksteps + k) * FER__Q8_NO + o % FER__Q8_NO] = (int32_t)v;
                }
            }
        memcpy(dst, &q, sizeof q);
    }
    return q.bytes;
}

FERDEF fer_result fer_workspace_quantize(fer_workspace *ws, const fer_model *m, const float *calib, int n)
{
    size_t total, bytes, buf = 0, b, in = fer__shape_size(m->input);
    float *range;
    fer_result r;
    int i, s;
    if (!calib || n < 1) {
        fer__err(ws->error, "quantize: %d calibration samples; give at least one", n);
        return FER_ERR_ARG;
    }
    for (b = 0; b < (size_t)n * in; b++)
        if (!isfinite(calib[b])) {
            fer__err(ws->error, "quantize: calibration sample %d has a value that is not finite", (int)(b / in));
            return FER_ERR_NUMERIC;
        }
    if ((r = fer_workspace_freeze(ws, m)) != FER_OK) return r;   /* drops the int8 layers made before */
    range = (float *)FER_MALLOC(sizeof(float) * 2 * (size_t)m->n_nodes, ws->alloc_ctx);
    if (!range) {
        fer__err(ws->error, "quantize: cannot allocate the calibration ranges");
        return FER_ERR_NOMEM;
    }
    for (i = 0; i < m->n_nodes; i++) { range[2 * i] = INFINITY; range[2 * i + 1] = -INFINITY; }
    ws->q8_range = range;   /* fer__node_forward widens them: each conv's and dense layer's input */
    for (s = 0; s < n; s += ws->max_batch) {
        int k = n - s < ws->max_batch ? n - s : ws->max_batch;
        fer_forward(m, ws, calib + (size_t)s * in, k, 0);
    }
    ws->q8_range = NULL;
    total = fer__mul((size_t)m->n_nodes, sizeof(size_t));
    total = fer__q8_align(total);
    for (i = 0; i < m->n_nodes; i++) {
        if (!fer__q8_eligible(m, &m->nodes[i])) continue;
        if (!isfinite(range[2 * i]) || !isfinite(range[2 * i + 1])) {
            fer__err(ws->error, "quantize: node %d's input is not finite on the calibration samples", i);
            FER_FREE(range, ws->alloc_ctx);
            return FER_ERR_NUMERIC;
        }
        total = fer__add(total, fer__q8_make(m, ws, i, 0.0f, 0.0f, NULL, &b));
        if (b > buf) buf = b;
    }
    bytes = fer__add(total, buf);
    if (bytes == SIZE_MAX || !(ws->q8_off = (size_t *)FER_MALLOC(bytes, ws->alloc_ctx))) {
        fer__err(ws->error, "quantize: cannot allocate %zu bytes for the int8 layers", bytes);
        FER_FREE(range, ws->alloc_ctx);
        return FER_ERR_NOMEM;
    }
    ws->q8 = (unsigned char *)ws->q8_off;
    ws->q8_buf = ws->q8 + total;
    total = fer__q8_align(sizeof(size_t) * (size_t)m->n_nodes);
    for (i = 0; i < m->n_nodes; i++) {
        ws->q8_off[i] = SIZE_MAX;
        if (!fer__q8_eligible(m, &m->nodes[i])) continue;
        ws->q8_off[i] = total;
        total += fer__q8_make(m, ws, i, range[2 * i], range[2 * i + 1], (fer__q8 *)(ws->q8 + total), &b);
    }
    ws->q8_vnni = fer__cpu_vnni();
    FER_FREE(range, ws->alloc_ctx);
    return FER_OK;
}

/* Runs node i on samples [s0, s0 + n) (s0 > 0 only at inference, where samples
   are independent). */
static void fer__node_forward(const fer_model *m, fer_workspace *ws, fer_isa isa, int i, int s0,
                              int n, int training)
{
    const fer_node *nd = &m->nodes[i];
    fer_shape in = m->nodes[nd->in[0]].out, o = nd->out;
    const float *X = fer__act(m, ws, nd->in[0], s0), *P = fer__p(m, nd);
    float *Y = fer__act(m, ws, i, s0), *A = ws->aux + ws->aux_off[i];
    int32_t *I = ws->iaux + ws->iaux_off[i] +
                 (size_t)s0 * (nd->op == FER_OP_CHANPOOL ? (size_t)o.h * o.w : fer__shape_size(o));
    int hw = in.h * in.w;
    size_t len = (size_t)n * fer__shape_size(o);
    switch (nd->op) {
    case FER_OP_CONV: {
        fer_conv_geom g;
        const float *wu = NULL;
        fer__epi e;
        const fer__epi *ep;
        fer__geom(m, nd, n, &g);
        if (!training && ws->q8_off && ws->q8_off[i] != SIZE_MAX) {   /* made by fer_workspace_quantize */
            fer__q8_conv_forward(isa, ws->q8_vnni, (const fer__q8 *)(ws->q8 + ws->q8_off[i]), &g, Y, X, ws->q8_buf);
            break;
        }
        if (ws->q8_range) fer__range(X, (size_t)n * fer__shape_size(in), ws->q8_range + 2 * i);
        if (training) {
            size_t nw = (size_t)o.c * (in.c / nd->groups) * nd->kh * nd->kw;
            e.scale = NULL; e.shift = nd->bias ? P + nw : NULL;
            e.act = nd->act == FER_OP_RELU ? 1 : nd->act == FER_OP_RELU6 ? 2 : 0;
        } else fer__conv_epi(m, ws, i, ws->aux + ws->aux_off[ws->fuse[i] > 0 ? ws->fuse[i] : i], &e);
        ep = e.scale || e.shift || e.act ? &e : NULL;
#if defined(FER__X86)
        {   /* the copies made by fer_workspace_freeze, laid out for one of three paths */
            const float *fz = !ws->training && ws->frozen_off && ws->frozen_off[i] != SIZE_MAX &&
                              isa == ws->frozen_isa ? ws->frozen + ws->frozen_off[i] : NULL;
            if (fz && fer__rows9_use(isa, &g, ws->max_batch)) {   /* few output positions */
                fer__rows9_forward(&g, Y, X, fz, ep, ws->scratch);
                break;
            }
            if (fz && fer__wino4c_use(isa, &g, ws->max_batch)) {   /* a small plane, channels-last */
                fer__wino4c_forward(&g, Y, X, fz, ep, ws->scratch);
                break;
            }
            if (fz && fer__wino_frozen_use(isa, &g, ws->n)) wu = fz;
        }
        if (!wu && !ws->training && fer__wino_use(isa, &g, ws->n)) {
            /* the weights' transform, made by the first chunk of samples */
            wu = A;
            if (s0 == 0)
                fer__wino_weights(isa, fer__wino4(isa, &g) ? 4 : 2, P, g.cout, g.cin, A, FER__WINO_ES(g.cout, g.cin));
        }
#endif
        fer__conv_forward(isa, &g, Y, X, P, wu, ep, ws->scratch);
        break;
    }
    case FER_OP_BN:
        if (training && ws->tfuse[i] > 0)   /* and the activation that reads it */
            fer__bn_forward_train(isa, fer__act(m, ws, ws->tfuse[i], s0), A, A + o.c, A + 2 * o.c, A + 3 * o.c, X,
                                  P, P + o.c,
                                  n, o.c, hw, nd->eps, m->nodes[ws->tfuse[i]].op == FER_OP_RELU6 ? 2 : 1);
        else if (training)
            fer__bn_forward_train(isa, Y, A, A + o.c, A + 2 * o.c, NULL, X, P, P + o.c, n, o.c, hw, nd->eps, 0);
        else
            fer__bn_forward_infer(isa, Y, X, P, P + o.c, m->buffers + nd->b_off,
                                        m->buffers + nd->b_off + o.c, n, o.c, hw, nd->eps);
        break;
    case FER_OP_RELU: fer__vrelu(isa, 0, len, Y, X); break;
    case FER_OP_RELU6: fer__vrelu(isa, 1, len, Y, X); break;
    case FER_OP_LEAKY_RELU: fer_leaky_relu_forward(Y, X, len, nd->alpha); break;
    case FER_OP_PRELU: fer_prelu_forward(Y, X, P, n, o.c, hw); break;
    case FER_OP_SIGMOID: fer_sigmoid_forward(Y, X, len); break;
    case FER_OP_SOFTMAX: fer_softmax_forward(Y, X, n, o.c, hw); break;
    case FER_OP_MAXPOOL:
#if defined(FER__X86)
        if (!training && isa == FER_ISA_AVX512 && o.w < FER__POOL_PLANES) {
            fer__maxpool_planes_avx512(Y, NULL, X, n * in.c, in.h, in.w, nd->kh, nd->sh, nd->ph);
            break;
        }
        if (!training && (isa == FER_ISA_AVX512 || isa == FER_ISA_AVX2) && (nd->sh == 1 || nd->sh == 2) &&
            ws->scratch_len >= (size_t)in.w + 2 * nd->ph + 64) {
            (isa == FER_ISA_AVX512 ? fer__maxpool_infer_avx512 : fer__maxpool_infer_avx2)(
                Y, X, n * in.c, in.h, in.w, nd->kh, nd->sh, nd->ph, ws->scratch);
            break;
        }
#endif
        fer__maxpool_forward(isa, Y, I, X, n, in.c, in.h, in.w, nd->kh, nd->sh, nd->ph);
        break;
    case FER_OP_AVGPOOL: fer_avgpool_forward(Y, X, n, in.c, in.h, in.w, nd->kh, nd->sh, nd->ph); break;
    case FER_OP_GAP: fer_gap_forward(Y, X, n, in.c, hw); break;
    case FER_OP_GMP: fer_gmp_forward(Y, I, X, n, in.c, hw); break;
    case FER_OP_DENSE: {
        int nin = (int)fer__shape_size(in);
        if (!training && ws->q8_off && ws->q8_off[i] != SIZE_MAX) {   /* made by fer_workspace_quantize */
            fer__q8_dense_forward(isa, ws->q8_vnni, (const fer__q8 *)(ws->q8 + ws->q8_off[i]), n, Y, X, ws->q8_buf);
            break;
        }
        if (ws->q8_range) fer__range(X, (size_t)n * nin, ws->q8_range + 2 * i);
        fer_dense_forward(isa, Y, X, P, nd->bias ? P + (size_t)nin * o.c : NULL, n, nin, o.c, ws->scratch);
        break;
    }
    case FER_OP_DROPOUT:
        if (training && nd->alpha > 0.0f)
            fer_dropout_forward(Y, A, X, len, nd->alpha, fer__mix64(ws->dropout_seed ^ (uint64_t)i));
        else if (Y != X) memcpy(Y, X, sizeof(float) * len);
        if (training && nd->alpha <= 0.0f) { size_t k; for (k = 0; k < len; k++) A[k] = 1.0f; }
        break;
    case FER_OP_FLATTEN: case FER_OP_IDENTITY:
        break;   /* aliased: Y == X */
    case FER_OP_ADD: {
        const float *X2 = fer__act(m, ws, nd->in[1], s0);
        int act = training ? 0 : ws->fuse[m->n_nodes + i];
        size_t k, piece = act > 0 ? 4096 : len;   /* a fused ReLU on each piece while it is in L1 */
        for (k = 0; k < len; k += piece) {
            size_t l = len - k < piece ? len - k : piece;
            fer__vadd(isa, l, Y + k, X + k, X2 + k);
            if (act > 0) fer__vrelu(isa, m->nodes[act].op == FER_OP_RELU6, l, Y + k, Y + k);
        }
        break;
    }
    case FER_OP_CMUL:
        fer_cmul_forward(Y, X, fer__act(m, ws, nd->in[1], s0), n, o.c, hw); break;
    case FER_OP_SMUL:
        fer_smul_forward(Y, X, fer__act(m, ws, nd->in[1], s0), n, o.c, hw); break;
    case FER_OP_CONCAT: {
        int s, k, c0 = 0;
        for (k = 0; k < nd->n_in; k++) {
            fer_shape sk = m->nodes[nd->in[k]].out;
            const float *Xk = fer__act(m, ws, nd->in[k], s0);
            for (s = 0; s < n; s++)
                memcpy(Y + ((size_t)s * o.c + c0) * hw, Xk + (size_t)s * sk.c * hw, sizeof(float) * (size_t)sk.c * hw);
            c0 += sk.c;
        }
        break;
    }
    case FER_OP_CHANPOOL: fer_chanpool_forward(Y, I, X, n, in.c, hw); break;
    default: FER_ASSERT(0);
    }
}

/* Every node after the input, except those running in a conv's epilogue, in the
   schedule of fer__schedule at inference. */
static void fer__run_nodes(const fer_model *m, fer_workspace *ws, fer_isa isa, int n, int training)
{
    int i, s0, chunk = ws->chunk < n ? ws->chunk : n, chunk2 = ws->chunk2 < n ? ws->chunk2 : n;
    ws->n = n;   /* the whole batch, also for the nodes run a chunk at a time */
    ws->last_training = training != 0;
    if (training) {   /* activations fused into the batch norm before them are skipped */
        for (i = 1; i < m->n_nodes; i++)
            if (ws->tfuse[i] >= 0) fer__node_forward(m, ws, isa, i, 0, n, 1);
        return;
    }
    for (s0 = 0; s0 < n; s0 += chunk)
        for (i = 1; i < ws->split; i++)
            if (ws->fuse[i] >= 0) fer__node_forward(m, ws, isa, i, s0, n - s0 < chunk ? n - s0 : chunk, 0);
    for (s0 = 0; s0 < n; s0 += chunk2)
        for (i = ws->split; i < ws->tail; i++)
            if (ws->fuse[i] >= 0) fer__node_forward(m, ws, isa, i, s0, n - s0 < chunk2 ? n - s0 : chunk2, 0);
    for (i = ws->tail; i < m->n_nodes; i++)
        if (ws->fuse[i] >= 0) fer__node_forward(m, ws, isa, i, 0, n, 0);
}

FERDEF fer_result fer_forward(const fer_model *m, fer_workspace *ws, const float *input, int n,
                              int training)
{
    fer_isa isa = fer__isa_clamp(ws->isa, ws->isa_max);
    if (!m->finalized || ws->n_nodes != m->n_nodes) {
        fer__err(ws->error, "forward: the workspace was not made for this finalized model");
        return FER_ERR_ARG;
    }
    if (n < 1 || n > ws->max_batch) {
        fer__err(ws->error, "forward: batch %d is not in 1..%d", n, ws->max_batch);
        return FER_ERR_ARG;
    }
    if (training && !ws->training) {
        fer__err(ws->error, "forward: training needs a workspace made with training=1");
        return FER_ERR_ARG;
    }
    memcpy(ws->act + ws->act_off[0], input, sizeof(float) * (size_t)n * fer__shape_size(m->input));
    fer__run_nodes(m, ws, isa, n, training);
    return FER_OK;
}

FERDEF const float *fer_output(const fer_model *m, const fer_workspace *ws)
{
    return ws->act + ws->act_off[m->n_nodes - 1];
}
FERDEF const float *fer_node_output(const fer_workspace *ws, int node)
{
    return (node >= 0 && node < ws->n_nodes && ws->whole[node]) ? ws->act + ws->act_off[node] : NULL;
}

FERDEF void fer_zero_grad(const fer_model *m, fer_workspace *ws)
{
    if (ws->pgrad) memset(ws->pgrad, 0, sizeof(float) * m->n_params);
}

static void fer__grad_clear(const fer_model *m, fer_workspace *ws, int r)
{
    memset(ws->grad + ws->grad_off[r], 0, sizeof(float) * (size_t)ws->n * fer__shape_size(m->nodes[r].out));
}

static void fer__node_backward(const fer_model *m, fer_workspace *ws, fer_isa isa, int i, int n)
{
    const fer_node *nd = &m->nodes[i];
    fer_shape in = m->nodes[nd->in[0]].out, o = nd->out;
    const float *X = ws->act + ws->act_off[nd->in[0]], *Y = ws->act + ws->act_off[i];
    const float *P = fer__p(m, nd), *A = ws->aux + ws->aux_off[i];
    const int32_t *I = ws->iaux + ws->iaux_off[i];
    float *dY = ws->grad + ws->grad_off[i], *dX = ws->grad + ws->grad_off[nd->in[0]];
    float *dP = fer__dp(m, ws, nd);
    int hw = in.h * in.w, assign = ws->gassign[i];   /* the first writer of dX: = not += */
    size_t len = (size_t)n * fer__shape_size(o), k;
    switch (nd->op) {
    case FER_OP_CONV: {
        fer_conv_geom g;
        size_t nw = (size_t)o.c * (in.c / nd->groups) * nd->kh * nd->kw;
        if (nd->act == FER_OP_RELU) for (k = 0; k < len; k++) dY[k] = Y[k] > 0.0f ? dY[k] : 0.0f;
        if (nd->act == FER_OP_RELU6) for (k = 0; k < len; k++) dY[k] = Y[k] > 0.0f && Y[k] < 6.0f ? dY[k] : 0.0f;
        fer__geom(m, nd, n, &g);
        fer__conv_backward(isa, &g, nd->in[0] == 0 && !ws->input_grad ? NULL : dX, dP,
                           nd->bias ? dP + nw : NULL, dY, X, P, ws->scratch, assign);
        break;
    }
    case FER_OP_BN:
        if (ws->tfuse[i] > 0) {   /* the ReLU/ReLU6 it ran in its forward: its backward too */
            int a = ws->tfuse[i];
            fer__bn_backward(isa, dX, dP, dP + o.c, ws->grad + ws->grad_off[a], A + 3 * o.c,
                             m->nodes[a].op == FER_OP_RELU6 ? 2 : 1, X, A, A + 2 * o.c, P, n, o.c, hw, assign);
        } else
            fer__bn_backward(isa, dX, dP, dP + o.c, dY, NULL, 0, X, A, A + 2 * o.c, P, n, o.c, hw, assign);
        break;
    case FER_OP_RELU: case FER_OP_RELU6:
        if (ws->tfuse[i] < 0) break;   /* runs in the batch norm before it */
        fer__vrelu_backward(isa, nd->op == FER_OP_RELU6, assign, len, dX, dY, Y);
        break;
    case FER_OP_LEAKY_RELU: fer_leaky_relu_backward(dX, dY, X, len, nd->alpha); break;
    case FER_OP_PRELU: fer_prelu_backward(dX, dP, dY, X, P, n, o.c, hw); break;
    case FER_OP_SIGMOID: fer_sigmoid_backward(dX, dY, Y, len); break;
    case FER_OP_SOFTMAX: fer_softmax_backward(dX, dY, Y, n, o.c, hw); break;
    case FER_OP_MAXPOOL: fer_maxpool_backward(dX, dY, I, n, in.c, in.h, in.w, o.h, o.w); break;
    case FER_OP_AVGPOOL: fer_avgpool_backward(dX, dY, n, in.c, in.h, in.w, nd->kh, nd->sh, nd->ph); break;
    case FER_OP_GAP: fer_gap_backward(dX, dY, n, in.c, hw); break;
    case FER_OP_GMP: fer_gmp_backward(dX, dY, I, n, in.c, hw); break;
    case FER_OP_DENSE: {
        int nin = (int)fer__shape_size(in);
        fer_dense_backward(isa, dX, dP, nd->bias ? dP + (size_t)nin * o.c : NULL, dY, X, P, n, nin,
                           o.c, ws->scratch);
        break;
    }
    case FER_OP_DROPOUT: fer_dropout_backward(dX, dY, A, len); break;
    case FER_OP_FLATTEN: case FER_OP_IDENTITY:
        break;   /* aliased: dY is dX */
    case FER_OP_ADD:
        fer__vadd(isa, len, dX, dX, dY);
        fer__vadd(isa, len, ws->grad + ws->grad_off[nd->in[1]], ws->grad + ws->grad_off[nd->in[1]], dY);
        break;
    case FER_OP_CMUL:
        fer_cmul_backward(dX, ws->grad + ws->grad_off[nd->in[1]], dY, X,
                          ws->act + ws->act_off[nd->in[1]], n, o.c, hw); break;
    case FER_OP_SMUL:
        fer_smul_backward(dX, ws->grad + ws->grad_off[nd->in[1]], dY, X,
                          ws->act + ws->act_off[nd->in[1]], n, o.c, hw); break;
    case FER_OP_CONCAT: {
        int s, j, c0 = 0;
        for (j = 0; j < nd->n_in; j++) {
            fer_shape sj = m->nodes[nd->in[j]].out;
            float *dXj = ws->grad + ws->grad_off[nd->in[j]];
            for (s = 0; s < n; s++)
                fer_axpy(FER_ISA_SCALAR, sj.c * hw, 1.0f, dY + ((size_t)s * o.c + c0) * hw, dXj + (size_t)s * sj.c * hw);
            c0 += sj.c;
        }
        break;
    }
    case FER_OP_CHANPOOL: fer_chanpool_backward(dX, dY, I, n, in.c, hw); break;
    default: FER_ASSERT(0);
    }
}

FERDEF fer_result fer_backward(const fer_model *m, fer_workspace *ws, const float *dout)
{
    int i, last = m->n_nodes - 1;
    fer_isa isa = fer__isa_clamp(ws->isa, ws->isa_max);
    if (!ws->training || !ws->last_training || ws->n_nodes != m->n_nodes) {
        fer__err(ws->error, "backward: needs a training forward on a training workspace first");
        return FER_ERR_ARG;
    }
    for (i = 0; i < m->n_nodes; i++)   /* regions no first writer assigns, live throughout */
        if (ws->gzero[i] && ws->gfirst[i] == m->n_nodes) fer__grad_clear(m, ws, i);
    memcpy(ws->grad + ws->grad_off[last], dout, sizeof(float) * (size_t)ws->n * fer__shape_size(m->nodes[last].out));
    for (i = last; i >= 1; i--) {
        const fer_node *nd = &m->nodes[i];
        int k;
        for (k = 0; k < nd->n_in; k++) {   /* the others as their first writer starts */
            int r = fer__grad_root(m, nd->in[k]);
            if (ws->gzero[r] && ws->gfirst[r] == i) fer__grad_clear(m, ws, r);
        }
        fer__node_backward(m, ws, isa, i, ws->n);
    }
    return FER_OK;
}

FERDEF const float *fer_input_grad(const fer_workspace *ws)
{
    return ws->training && ws->input_grad ? ws->grad + ws->grad_off[0] : NULL;
}

FERDEF void fer_bn_update_running(fer_model *m, const fer_workspace *ws)
{
    int i, c;
    for (i = 0; i < m->n_nodes; i++) {
        const fer_node *nd = &m->nodes[i];
        const float *A = ws->aux + ws->aux_off[i];
        float *rm = m->buffers + nd->b_off, *rv = rm + nd->out.c, mo = nd->momentum;
        double cnt = (double)ws->n * m->nodes[nd->in[0]].out.h * m->nodes[nd->in[0]].out.w;
        if (nd->op != FER_OP_BN || !ws->last_training) continue;
        for (c = 0; c < nd->out.c; c++) {
            float unbiased = cnt > 1.0 ? (float)(A[nd->out.c + c] * cnt / (cnt - 1.0)) : A[nd->out.c + c];
            rm[c] = (1.0f - mo) * rm[c] + mo * A[c];
            rv[c] = (1.0f - mo) * rv[c] + mo * unbiased;
        }
    }
}

#if !defined(FER_NO_THREADS)
#include <pthread.h>
#endif

/* Runs fn on each of the n jobs (`size` bytes apart): jobs 1.. on threads of their
   own, job 0 on the caller, and a job whose thread cannot start on the caller too. */
static void fer__run_jobs(void *(*fn)(void *), void *jobs, size_t size, int n)
{
    char *b = (char *)jobs;
    int t;
#if !defined(FER_NO_THREADS)
    pthread_t tid[64];
    int started[64];
    FER_ASSERT(n <= 64);
    for (t = 1; t < n; t++) started[t] = pthread_create(&tid[t], NULL, fn, b + size * (size_t)t) == 0;
    fn(b);
    for (t = 1; t < n; t++) { if (started[t]) pthread_join(tid[t], NULL); else fn(b + size * (size_t)t); }
#else
    for (t = 0; t < n; t++) fn(b + size * (size_t)t);
#endif
}


typedef struct fer__fwd_job {
    const fer_model *m;
    fer_workspace *ws;
    const float *input;
    float *out;
    int n;
    fer_result r;
} fer__fwd_job;

static void *fer__fwd_run(void *p)
{
    fer__fwd_job *j = (fer__fwd_job *)p;
    j->r = fer_forward(j->m, j->ws, j->input, j->n, 0);
    if (j->r == FER_OK)
        memcpy(j->out, fer_output(j->m, j->ws), sizeof(float) * (size_t)j->n * j->m->n_classes);
    return NULL;
}

FERDEF fer_result fer_forward_threads(const fer_model *m, fer_workspace *ws, int n_ws,
                                      const float *input, int n, float *out)
{
    fer__fwd_job jobs[64];
    int t, start = 0, per, used = 0;
    size_t in_size = fer__shape_size(m->input);
    if (n_ws < 1 || n_ws > 64 || n < 1) {
        if (n_ws >= 1) fer__err(ws[0].error, "forward_threads: %d workspaces, %d samples", n_ws, n);
        return FER_ERR_ARG;
    }
    per = (n + n_ws - 1) / n_ws;
    for (t = 0; t < n_ws; t++)   /* refuse before any thread reads the input */
        if (ws[t].max_batch < per || ws[t].n_nodes != m->n_nodes) {
            fer__err(ws[0].error, "forward_threads: %d samples over %d workspaces need batch %d; "
                     "workspace %d holds %d", n, n_ws, per, t, ws[t].max_batch);
            return FER_ERR_ARG;
        }
    for (t = 0; t < n_ws && start < n; t++, used++) {
        int cnt = n - start < per ? n - start : per;
        jobs[t].m = m; jobs[t].ws = &ws[t]; jobs[t].n = cnt; jobs[t].r = FER_OK;
        jobs[t].input = input + (size_t)start * in_size;
        jobs[t].out = out + (size_t)start * m->n_classes;
        start += cnt;
    }
    fer__run_jobs(fer__fwd_run, jobs, sizeof(jobs[0]), used);
    for (t = 0; t < used; t++) if (jobs[t].r != FER_OK) return jobs[t].r;
    return FER_OK;
}

/* Bilinear sample of 8-bit grey src (w x h, row stride `stride`) at the centre of
   pixel (y, x) of a dh x dw grid laid over it: source = (dst + 0.5) * src / dst - 0.5,
   clamped to the image. Shared by preprocessing and data-set resizing. */
static float fer__bilinear(const unsigned char *src, int w, int h, int stride, int y, int x,
                           int dh, int dw)
{
    float fy = ((float)y + 0.5f) * (float)h / (float)dh - 0.5f;
    float fx = ((float)x + 0.5f) * (float)w / (float)dw - 0.5f, wy, wx;
    int y0, y1, x0, x1;
    const unsigned char *r0, *r1;
    if (fy < 0.0f) fy = 0.0f;
    if (fx < 0.0f) fx = 0.0f;
    y0 = (int)fy; if (y0 > h - 1) y0 = h - 1;
    x0 = (int)fx; if (x0 > w - 1) x0 = w - 1;
    y1 = y0 + 1 < h ? y0 + 1 : h - 1; wy = fy - (float)y0;
    x1 = x0 + 1 < w ? x0 + 1 : w - 1; wx = fx - (float)x0;
    r0 = src + (size_t)y0 * stride; r1 = src + (size_t)y1 * stride;
    return (1.0f - wy) * ((1.0f - wx) * r0[x0] + wx * r0[x1]) + wy * ((1.0f - wx) * r1[x0] + wx * r1[x1]);
}

FERDEF fer_result fer_preprocess(const fer_model *m, const unsigned char *gray, int w, int h,
                                 int stride, float *out)
{
    int H = m->input.h, W = m->input.w, C = m->input.c, sh = m->pre.store_h, sw = m->pre.store_w;
    int oy0, ox0, y, x, c;
    float a, b;
    if (!gray || w < 1 || h < 1 || stride < w) return FER_ERR_ARG;
    if (sh < H || sw < W) { sh = H; sw = W; }
    oy0 = (sh - H) / 2; ox0 = (sw - W) / 2;
    switch (m->pre.norm) {   /* value = pixel * a + b */
    case FER_NORM_SIGNED: a = 1.0f / 127.5f; b = -1.0f; break;
    case FER_NORM_MEANSTD: a = 1.0f / (255.0f * m->pre.std); b = -m->pre.mean / m->pre.std; break;
    default: a = 1.0f / 255.0f; b = 0.0f; break;
    }
    for (y = 0; y < H; y++)
        for (x = 0; x < W; x++) {
            float v = fer__bilinear(gray, w, h, stride, y + oy0, x + ox0, sh, sw);
            for (c = 0; c < C; c++) out[((size_t)c * H + y) * W + x] = v * a + b;
        }
    return FER_OK;
}

FERDEF int fer_predict(const fer_model *m, fer_workspace *ws, const unsigned char *gray,
                       int w, int h, int stride, float *probs)
{
    const float *logits;
    float t = m->pre.temperature > 0.0f ? m->pre.temperature : 1.0f;
    int k, best = 0;
    if (!m->finalized || ws->n_nodes != m->n_nodes) { fer__err(ws->error, "predict: workspace and model do not match"); return -1; }
    if (fer_preprocess(m, gray, w, h, stride, ws->act + ws->act_off[0]) != FER_OK) {
        fer__err(ws->error, "predict: image %dx%d (stride %d) is empty or inconsistent", w, h, stride);
        return -1;
    }
    {   /* the input is already in place: run the nodes after it */
        fer_isa isa = fer__isa_clamp(ws->isa, ws->isa_max);
        fer__run_nodes(m, ws, isa, 1, 0);
    }
    logits = fer_output(m, ws);
    fer_softmax_temperature(logits, 1, m->n_classes, t, probs);
    for (k = 1; k < m->n_classes; k++) if (probs[k] > probs[best]) best = k;
    return best;
}

#if !defined(FER_NO_STB_IMAGE) && !defined(FER_NO_STDIO)
/* stb_image is compiled here as a private (static) copy. */
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_MALLOC(sz) malloc(sz)
#define STBI_REALLOC(p, sz) realloc(p, sz)
#define STBI_FREE(p) free(p)
#include <stdlib.h>
#include "stb_image.h"
#if !defined(STBI_NO_THREAD_LOCALS) && !defined(FER_STB_HAS_UNPREMULTIPLY_THREAD)
/* Debian's stb_image (2.27 era) declares this but never defines it, which a static
   copy turns into a warning; define FER_STB_HAS_UNPREMULTIPLY_THREAD with a newer stb. */
static void stbi_set_unpremultiply_on_load_thread(int flag) { stbi_set_unpremultiply_on_load(flag); }
#endif
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic pop
#endif

FERDEF unsigned char *fer_image_load_gray(const char *path, int *w, int *h, char *err)
{
    int comp;
    unsigned char *p = stbi_load(path, w, h, &comp, 1);
    if (!p) { fer__err(err, "%.200s: cannot decode image (%s)", path, stbi_failure_reason()); return NULL; }
    if (*w < 1 || *h < 1 || *w > 16384 || *h > 16384) {
        stbi_image_free(p);
        fer__err(err, "%.200s: image size %dx%d out of range", path, *w, *h);
        return NULL;
    }
    return p;
}
FERDEF void fer_image_free(unsigned char *pixels) { stbi_image_free(pixels); }
#endif

/* --- 3.8 Data ------------------------------------------------------------------- */

FERDEF void fer_resize_gray(const unsigned char *src, int sw, int sh, unsigned char *dst, int dw, int dh)
{
    int y, x;
    for (y = 0; y < dh; y++)
        for (x = 0; x < dw; x++)
            dst[(size_t)y * dw + x] = (unsigned char)(fer__bilinear(src, sw, sh, sw, y, x, dh, dw) + 0.5f);
}

FERDEF void fer_dataset_free(fer_dataset *d)
{
    if (d->pixels) FER_FREE(d->pixels, d->alloc_ctx);
    if (d->labels) FER_FREE(d->labels, d->alloc_ctx);
    d->pixels = NULL; d->labels = NULL; d->n = 0;
}

/* Appends to the string in buf[cap], cutting it short rather than overflowing. */
static void fer__catf(char *buf, size_t cap, const char *fmt, ...)
{
    size_t l = strlen(buf);
    va_list ap;
    if (l + 1 >= cap) return;
    va_start(ap, fmt);
    vsnprintf(buf + l, cap - l, fmt, ap);
    va_end(ap);
}

/* FER2013's CSV. The text after the header is cut into one piece per thread at
   line starts and read twice: pass 1 judges every row and counts, per piece, the
   rows kept and the bad rows of each kind; a prefix sum then gives each piece its
   first output slot, and pass 2 converts the kept rows into place. Every row is
   judged on its own (the pixel count it must have comes from the first good row
   of the file, found before the passes), so the result does not depend on the
   number of threads. Line numbers count from 1 at the header. */
enum {
    FER__CSV_COUNT, FER__CSV_NUMBER, FER__CSV_RANGE, FER__CSV_CLASS, FER__CSV_COLUMNS,
    FER__CSV_KINDS,             /* kinds of bad row, the order skip_reason lists them in */
    FER__CSV_OK = -1
};
static const char *fer__csv_kind[FER__CSV_KINDS] = {
    "wrong pixel count", "non-numeric pixel", "pixel outside 0..255", "unknown class", "missing columns"
};
#define FER__CSV_SEEN 8         /* distinct Usage values remembered for messages */
#define FER__CSV_DETAIL 64      /* what is wrong with a row, for skip_reason      */

typedef struct fer__csv_fmt {   /* what the header and the first good row say; read-only in the passes */
    int col[3];                 /* columns of emotion, pixels, Usage (-1: none)          */
    int n_need;                 /* fields a row needs: the largest of col[] + 1          */
    const char *usage;          /* keep rows whose Usage is this (NULL: every row)       */
    size_t usage_len;
    size_t expect;              /* pixels per row, side * side (0: any square, pre-scan) */
    int side, h, w;
} fer__csv_fmt;

typedef struct fer__csv_job {
    const fer__csv_fmt *f;
    const char *begin, *end;    /* whole lines                                           */
    int convert;                /* 0: pass 1, judge and count; 1: pass 2, write          */
    unsigned char *pixels;      /* pass 2: [kept][h][w], this piece's first slot         */
    unsigned char *tmp;         /* pass 2: side * side scratch when images are resized   */
    int *labels;                /* pass 2: [kept]                                        */
    size_t kept, rows, lines;   /* pass 1: rows kept, rows with the Usage asked, lines   */
    size_t n_bad[FER__CSV_KINDS], bad_line[FER__CSV_KINDS];  /* bad_line: from 0 in the piece */
    char bad[FER__CSV_KINDS][FER__CSV_DETAIL];                           /* what was wrong with it      */
    char seen[FER__CSV_SEEN][32];
    int n_seen;
} fer__csv_job;

/* The next line of [*p, end) as [*s, *e), without its \n or \r\n; 0 at the end. */
static int fer__csv_line(const char **p, const char *end, const char **s, const char **e)
{
    const char *nl;
    if (*p >= end) return 0;
    nl = (const char *)memchr(*p, '\n', (size_t)(end - *p));
    *s = *p;
    *e = nl ? nl : end;
    *p = nl ? nl + 1 : end;
    while (*e > *s && (*e)[-1] == '\r') (*e)--;
    return 1;
}

static int fer__csv_blank(const char *s, const char *e)
{
    while (s < e && (*s == ' ' || *s == '\t' || *s == '\r')) s++;
    return s == e;
}

/* Cuts the next field off the line [*p, e) as [*fb, *fe), without surrounding
   blanks and one pair of quotes (a comma inside quotes does not cut); *p becomes
   NULL after the last field. */
static void fer__csv_field(const char **p, const char *e, const char **fb, const char **fe)
{
    const char *q = (const char *)memchr(*p, ',', (size_t)(e - *p)), *b, *x;
    if (!q) q = e;
    if (memchr(*p, '"', (size_t)(q - *p))) {        /* quotes: the slow way */
        int quoted = 0;
        for (q = *p; q < e && (quoted || *q != ','); q++) if (*q == '"') quoted = !quoted;
    }
    b = *p; x = q;
    *p = q < e ? q + 1 : NULL;
    while (b < x && (*b == ' ' || *b == '\t' || *b == '\r')) b++;
    while (x > b && (x[-1] == ' ' || x[-1] == '\t' || x[-1] == '\r')) x--;
    if (x - b >= 2 && *b == '"' && x[-1] == '"') {
        b++; x--;
        while (b < x && (*b == ' ' || *b == '\t')) b++;
        while (x > b && (x[-1] == ' ' || x[-1] == '\t')) x--;
    }
    *fb = b; *fe = x;
}

/* The fields at columns col[0..2] of a line (NULL where the line is too short);
   returns how many fields it has, counting no further than `need`. */
static size_t fer__csv_split(const char *p, const char *e, const int col[3], int need,
                             const char *fb[3], const char *fe[3])
{
    size_t n = 0;
    int k;
    for (k = 0; k < 3; k++) fb[k] = fe[k] = NULL;
    while (p && n < (size_t)need) {
        const char *b, *x;
        fer__csv_field(&p, e, &b, &x);
        for (k = 0; k < 3; k++) if (col[k] >= 0 && (size_t)col[k] == n) { fb[k] = b; fe[k] = x; }
        n++;
    }
    return n;
}

/* Untrusted text for a message in out[max + 4]: at most max characters (then
   "..."), the unprintable as '?'. */
static void fer__csv_show(char *out, int max, const char *s, const char *e)
{
    int i = 0;
    for (; s < e && i < max; s++, i++) out[i] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
    if (s < e) { out[i++] = '.'; out[i++] = '.'; out[i++] = '.'; }
    out[i] = 0;
}

/* Pixel values separated by blanks into out[cap] (out may be NULL); *count gets
   how many there are. A value that is not a whole number, or not in 0..255,
   makes the row bad (detail says which value). */
static int fer__csv_pixels(const char *p, const char *e, unsigned char *out, size_t cap, size_t *count,
                           char *detail)
{
    size_t n = 0;
    for (;;) {
        const char *s;
        unsigned v = 0, dg;
        while (p < e && (*p == ' ' || *p == '\t')) p++;
        if (p >= e) break;
        s = p;
        if (p < e && (dg = (unsigned)(*p - '0')) < 10) {      /* 1 to 3 digits unrolled: the hot loop */
            v = dg; p++;
            if (p < e && (dg = (unsigned)(*p - '0')) < 10) {
                v = v * 10 + dg; p++;
                if (p < e && (dg = (unsigned)(*p - '0')) < 10) {
                    v = v * 10 + dg; p++;
                    for (; p < e && (dg = (unsigned)(*p - '0')) < 10; p++) if (v < 1000) v = v * 10 + dg;
                }
            }
        }
        if (p == s || (p < e && *p != ' ' && *p != '\t')) {
            const char *t = s + (*s == '-'), *x = t;
            char show[16];
            while (x < e && *x >= '0' && *x <= '9') x++;
            while (p < e && *p != ' ' && *p != '\t') p++;
            fer__csv_show(show, 11, s, p);
            if (x > t && x == p) {      /* a negative whole number */
                fer__catf(detail, FER__CSV_DETAIL, "pixel %llu is %s", (unsigned long long)n + 1, show);
                return FER__CSV_RANGE;
            }
            fer__catf(detail, FER__CSV_DETAIL, "pixel %llu is '%s'", (unsigned long long)n + 1, show);
            return FER__CSV_NUMBER;
        }
        if (v > 255) {
            char show[16];
            fer__csv_show(show, 11, s, p);
            fer__catf(detail, FER__CSV_DETAIL, "pixel %llu is %s", (unsigned long long)n + 1, show);
            return FER__CSV_RANGE;
        }
        if (out && n < cap) out[n] = (unsigned char)v;
        n++;
    }
    *count = n;
    return FER__CSV_OK;
}

static int fer__isqrt(size_t n)      /* floor(sqrt(n)) for n up to FER_MAX_DIM^2 and a little over */
{
    size_t s = (size_t)sqrt((double)n);
    while (s * s > n) s--;
    while ((s + 1) * (s + 1) <= n) s++;
    return (int)s;
}

/* Judges a row from its fields: FER__CSV_OK (pixels in out, when not NULL, and
   the class in *label) or the kind of fault, described in detail[FER__CSV_DETAIL]. */
static int fer__csv_check(const fer__csv_fmt *f, size_t nf, const char *const fb[3], const char *const fe[3],
                          unsigned char *out, int *label, size_t *count, char *detail)
{
    const char *s = fb[0];
    int kind;
    detail[0] = 0;
    if (nf < (size_t)f->n_need) {
        fer__catf(detail, FER__CSV_DETAIL, "%llu of %d columns", (unsigned long long)nf, f->n_need);
        return FER__CSV_COLUMNS;
    }
    if (fe[0] - s != 1 || *s < '0' || *s > '6') {
        char show[16];
        fer__csv_show(show, 11, s, fe[0]);
        fer__catf(detail, FER__CSV_DETAIL, "emotion '%s'", show);
        return FER__CSV_CLASS;
    }
    *label = *s - '0';
    kind = fer__csv_pixels(fb[1], fe[1], out, f->expect, count, detail);
    if (kind != FER__CSV_OK) return kind;
    if (f->expect ? *count != f->expect
                  : *count < 1 || *count > (size_t)FER_MAX_DIM * FER_MAX_DIM ||
                    (size_t)fer__isqrt(*count) * (size_t)fer__isqrt(*count) != *count) {
        if (f->expect) fer__catf(detail, FER__CSV_DETAIL, "%llu pixels, expected %llu", (unsigned long long)*count,
                                (unsigned long long)f->expect);
        else fer__catf(detail, FER__CSV_DETAIL, "%llu pixels, not a square", (unsigned long long)*count);
        return FER__CSV_COUNT;
    }
    return FER__CSV_OK;
}

static void fer__csv_saw(fer__csv_job *j, const char *s, const char *e)
{
    size_t n = (size_t)(e - s) < 31 ? (size_t)(e - s) : 31;
    int i;
    for (i = 0; i < j->n_seen; i++) if (strlen(j->seen[i]) == n && !memcmp(j->seen[i], s, n)) return;
    if (j->n_seen == FER__CSV_SEEN) return;
    memcpy(j->seen[j->n_seen], s, n);
    j->seen[j->n_seen++][n] = 0;
}

static void *fer__csv_run(void *arg)
{
    fer__csv_job *j = (fer__csv_job *)arg;
    const fer__csv_fmt *f = j->f;
    const char *p = j->begin, *s, *e;
    size_t line = 0, slot = 0, hw = (size_t)f->h * f->w;
    int resize = f->side != f->h || f->side != f->w;
    for (; fer__csv_line(&p, j->end, &s, &e); line++) {
        const char *fb[3], *fe[3];
        char detail[FER__CSV_DETAIL];
        unsigned char *out = NULL;
        size_t nf, count;
        int kind, label = 0;
        if (j->convert && slot == j->kept) break;
        if (fer__csv_blank(s, e)) continue;
        nf = fer__csv_split(s, e, f->col, f->n_need, fb, fe);
        if (fb[2]) {
            if (!j->convert) fer__csv_saw(j, fb[2], fe[2]);
            if (f->usage && ((size_t)(fe[2] - fb[2]) != f->usage_len || memcmp(fb[2], f->usage, f->usage_len)))
                continue;
        }
        if (j->convert) out = resize ? j->tmp : j->pixels + slot * hw;
        kind = fer__csv_check(f, nf, fb, fe, out, &label, &count, detail);
        if (j->convert) {
            if (kind != FER__CSV_OK) continue;
            if (resize) fer_resize_gray(j->tmp, f->side, f->side, j->pixels + slot * hw, f->w, f->h);
            j->labels[slot++] = label;
            continue;
        }
        if (fb[2] || !f->usage) j->rows++;   /* a row too short to have a Usage is in no split */
        if (kind == FER__CSV_OK) j->kept++;
        else if (!j->n_bad[kind]++) { j->bad_line[kind] = line; memcpy(j->bad[kind], detail, sizeof(j->bad[kind])); }
    }
    j->lines = line;
    return NULL;
}

static fer_result fer__csv_parse(fer_dataset *d, const char *text, size_t len, const char *usage, int h, int w,
                                 int n_threads, void *alloc_ctx, const char *name)
{
    static const char *want[3] = { "emotion", "pixels", "usage" };
    fer__csv_fmt f;
    fer__csv_job jobs[64];
    const char *p, *end, *s, *e, *body;
    size_t line = 1, kept = 0, rows = 0, skipped = 0, blen, hw;
    int t, T, k, i;
    char seen[FER__CSV_SEEN][32], list[120] = "";
    int n_seen = 0;
    fer_result r = FER_OK;
    memset(d, 0, sizeof(*d));
    memset(&f, 0, sizeof(f));
    d->alloc_ctx = alloc_ctx;
    if (h < 1 || w < 1 || h > FER_MAX_DIM || w > FER_MAX_DIM) {
        fer__err(d->error, "%.100s: image size %dx%d out of range 1..%d", name, h, w, FER_MAX_DIM);
        return FER_ERR_ARG;
    }
    if (!text) { text = ""; len = 0; }
    p = text; end = text + len;
    if (end - p >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3)) p += 3;     /* UTF-8 byte order mark */
    for (;; line++) {
        if (!fer__csv_line(&p, end, &s, &e)) {
            fer__err(d->error, "%.100s: empty: no header line (emotion,pixels,Usage)", name);
            return FER_ERR_FORMAT;
        }
        if (!fer__csv_blank(s, e)) break;
    }
    /* the header: names the columns, in any order, case aside */
    f.col[0] = f.col[1] = f.col[2] = -1;
    {
        const char *q = s, *b, *x;
        for (i = 0; q; i++) {
            fer__csv_field(&q, e, &b, &x);
            for (k = 0; k < 3; k++) {
                size_t n = strlen(want[k]), c;
                if ((size_t)(x - b) != n || f.col[k] >= 0 || i == INT_MAX) continue;
                for (c = 0; c < n && (b[c] | 0x20) == want[k][c]; c++) {}
                if (c == n) f.col[k] = i;
            }
            if (i == INT_MAX) break;
        }
    }
    if (f.col[0] < 0 || f.col[1] < 0 || (usage && f.col[2] < 0)) {
        char show[44];
        fer__csv_show(show, 40, s, e);
        if (f.col[0] < 0 || f.col[1] < 0)
            fer__err(d->error, "%.100s: line %llu: the header '%s' has no %s column (expected emotion,pixels,Usage)",
                     name, (unsigned long long)line, show, f.col[0] < 0 ? "emotion" : "pixels");
        else
            fer__err(d->error, "%.100s: line %llu: the header '%s' has no Usage column to pick the '%.32s' rows by",
                     name, (unsigned long long)line, show, usage);
        return FER_ERR_FORMAT;
    }
    for (k = 0; k < 3; k++) if (f.col[k] + 1 > f.n_need) f.n_need = f.col[k] + 1;
    f.usage = usage;
    f.usage_len = usage ? strlen(usage) : 0;
    f.h = h; f.w = w;
    body = p;
    /* the pixel count every row must have: that of the first good row */
    {
        const char *q = body, *fb[3], *fe[3];
        char detail[FER__CSV_DETAIL];
        size_t count, nf;
        int label;
        while (fer__csv_line(&q, end, &s, &e)) {
            if (fer__csv_blank(s, e)) continue;
            nf = fer__csv_split(s, e, f.col, f.n_need, fb, fe);
            if (fer__csv_check(&f, nf, fb, fe, NULL, &label, &count, detail) == FER__CSV_OK) {
                f.expect = count;
                f.side = fer__isqrt(count);
                break;
            }
        }
    }
    /* pass 1 */
    blen = (size_t)(end - body);
    T = n_threads < 1 ? 1 : n_threads > 64 ? 64 : n_threads;
    if ((size_t)T > blen / 4096 + 1) T = (int)(blen / 4096 + 1);
    memset(jobs, 0, sizeof(jobs[0]) * (size_t)T);
    for (t = 0; t < T; t++) {
        const char *b = body + blen / (size_t)T * (size_t)t;
        if (b > body && b[-1] != '\n') {
            const char *nl = (const char *)memchr(b, '\n', (size_t)(end - b));
            b = nl ? nl + 1 : end;
        }
        jobs[t].f = &f;
        jobs[t].begin = b;
        if (t) jobs[t - 1].end = b;
    }
    jobs[T - 1].end = end;
    fer__run_jobs(fer__csv_run, jobs, sizeof(jobs[0]), T);
    /* merge, in file order: the first bad row of a kind is in the first piece that has one */
    {
        size_t n_bad[FER__CSV_KINDS], bad_line[FER__CSV_KINDS], base = line + 1;
        const char *bad[FER__CSV_KINDS];
        for (k = 0; k < FER__CSV_KINDS; k++) { n_bad[k] = 0; bad_line[k] = 0; bad[k] = ""; }
        for (t = 0; t < T; t++) {
            for (k = 0; k < FER__CSV_KINDS; k++) {
                if (jobs[t].n_bad[k] && !n_bad[k]) { bad_line[k] = base + jobs[t].bad_line[k]; bad[k] = jobs[t].bad[k]; }
                n_bad[k] += jobs[t].n_bad[k];
            }
            for (i = 0; i < jobs[t].n_seen; i++) {
                int c;
                for (c = 0; c < n_seen && strcmp(seen[c], jobs[t].seen[i]); c++) {}
                if (c == n_seen && n_seen < FER__CSV_SEEN) memcpy(seen[n_seen++], jobs[t].seen[i], 32);
            }
            kept += jobs[t].kept;
            rows += jobs[t].rows;
            base += jobs[t].lines;
        }
        for (k = 0; k < FER__CSV_KINDS; k++) {
            if (!n_bad[k]) continue;
            fer__catf(d->skip_reason, sizeof(d->skip_reason), "%s%llu %s (line %llu: %s)", skipped ? "; " : "",
                      (unsigned long long)n_bad[k], fer__csv_kind[k], (unsigned long long)bad_line[k], bad[k]);
            skipped += n_bad[k];
        }
    }
    d->n_skipped = skipped > (size_t)INT_MAX ? INT_MAX : (int)skipped;
    for (i = 0; i < n_seen; i++) {
        char show[20];
        fer__csv_show(show, 16, seen[i], seen[i] + strlen(seen[i]));
        fer__catf(list, sizeof(list), "%s%s", i ? ", " : "", show);
    }
    if (kept == 0) {
        if (!rows && !n_seen && !skipped)
            fer__err(d->error, "%.100s: no rows after the header (line %llu)", name, (unsigned long long)line);
        else if (!rows)
            fer__err(d->error, "%.100s: no row has Usage '%.32s'; the file's Usage values: %s%s%s", name, usage,
                     n_seen ? list : "none", skipped ? "; skipped: " : "", d->skip_reason);
        else
            fer__err(d->error, "%.100s: none of the %llu rows%s%.32s%s could be used: %s", name,
                     (unsigned long long)rows, usage ? " with Usage '" : "", usage ? usage : "", usage ? "'" : "",
                     d->skip_reason);
        return FER_ERR_FORMAT;
    }
    if (kept > (size_t)INT_MAX) {
        fer__err(d->error, "%.100s: %llu rows, more than a data set holds", name, (unsigned long long)kept);
        return FER_ERR_FORMAT;
    }
    /* pass 2 */
    hw = (size_t)h * (size_t)w;
    d->pixels = (unsigned char *)FER_MALLOC(fer__mul(kept, hw), alloc_ctx);
    d->labels = (int *)FER_MALLOC(fer__mul(kept, sizeof(int)), alloc_ctx);
    if (!d->pixels || !d->labels) r = FER_ERR_NOMEM;
    for (t = 0, kept = 0; t < T && r == FER_OK; t++) {
        jobs[t].convert = 1;
        jobs[t].pixels = d->pixels + kept * hw;
        jobs[t].labels = d->labels + kept;
        kept += jobs[t].kept;
        if ((f.side != h || f.side != w) && jobs[t].kept &&
            !(jobs[t].tmp = (unsigned char *)FER_MALLOC(f.expect, alloc_ctx)))
            r = FER_ERR_NOMEM;
    }
    if (r == FER_OK) fer__run_jobs(fer__csv_run, jobs, sizeof(jobs[0]), T);
    for (t = 0; t < T; t++) if (jobs[t].tmp) FER_FREE(jobs[t].tmp, alloc_ctx);
    if (r != FER_OK) {
        fer__err(d->error, "%.100s: out of memory for %llu images of %dx%d", name, (unsigned long long)kept, h, w);
        fer_dataset_free(d);
        return r;
    }
    d->n = (int)kept; d->h = h; d->w = w; d->n_classes = 7;
    for (k = 0; k < 7; k++) memcpy(d->class_names[k], fer__fer2013_names[k], strlen(fer__fer2013_names[k]) + 1);
    return FER_OK;
}

FERDEF fer_result fer_dataset_parse_csv(fer_dataset *d, const char *text, size_t len, const char *usage,
                                        int h, int w, int n_threads, void *alloc_ctx)
{
    return fer__csv_parse(d, text, len, usage, h, w, n_threads, alloc_ctx, "csv");
}

#if !defined(FER_NO_STDIO)
FERDEF fer_result fer_dataset_load_csv(fer_dataset *d, const char *path, const char *usage,
                                       int h, int w, int n_threads, void *alloc_ctx)
{
    FILE *fp;
    long sz;
    int c;
    size_t got = 0;
    char *buf = NULL;
    fer_result r;
    memset(d, 0, sizeof(*d));
    d->alloc_ctx = alloc_ctx;
    if (h < 1 || w < 1 || h > FER_MAX_DIM || w > FER_MAX_DIM)      /* before reading a large file */
        return fer__csv_parse(d, NULL, 0, usage, h, w, n_threads, alloc_ctx, path);
    if (!(fp = fopen(path, "rb"))) { fer__err(d->error, "csv: cannot open %.200s", path); return FER_ERR_IO; }
    c = fgetc(fp);                     /* a folder opens, but does not read */
    if (c == EOF && ferror(fp)) {
        fclose(fp);
        fer__err(d->error, "csv: cannot read %.200s (a folder?)", path);
        return FER_ERR_IO;
    }
    if (fseek(fp, 0, SEEK_END) != 0 || (sz = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET) != 0) {
        fclose(fp);
        fer__err(d->error, "csv: cannot find the size of %.200s (not a regular file?)", path);
        return FER_ERR_IO;
    }
    buf = (char *)FER_MALLOC(fer__add((size_t)sz, 1), alloc_ctx);
    if (!buf) {
        fclose(fp);
        fer__err(d->error, "csv: out of memory for the %ld bytes of %.200s", sz, path);
        return FER_ERR_NOMEM;
    }
    if (sz > 0) got = fread(buf, 1, (size_t)sz, fp);
    if (ferror(fp) || got != (size_t)sz) {
        fclose(fp);
        FER_FREE(buf, alloc_ctx);
        fer__err(d->error, "csv: reading %.200s failed after %llu of %ld bytes", path, (unsigned long long)got, sz);
        return FER_ERR_IO;
    }
    fclose(fp);
    r = fer__csv_parse(d, buf, got, usage, h, w, n_threads, alloc_ctx, path);
    FER_FREE(buf, alloc_ctx);
    return r;
}
#endif

FERDEF fer_result fer_dataset_remap(fer_dataset *d, const char (*names)[FER_NAME_LEN], int k)
{
    int map[FER_MAX_CLASSES], c, j, i;
    if (k < 1 || k > FER_MAX_CLASSES || !names) {
        fer__err(d->error, "remap: %d class names, expected 1 to %d", k, FER_MAX_CLASSES);
        return FER_ERR_ARG;
    }
    for (c = 0; c < d->n_classes; c++) {
        for (map[c] = -1, j = 0; j < k && map[c] < 0; j++)
            if (!strncmp(d->class_names[c], names[j], FER_NAME_LEN)) map[c] = j;
        if (map[c] < 0) {
            char list[120] = "";
            for (j = 0; j < k; j++) fer__catf(list, sizeof(list), "%s%.31s", j ? ", " : "", names[j]);
            fer__err(d->error, "remap: class '%s' of the data set is not among the %d names (%s)",
                     d->class_names[c], k, list);
            return FER_ERR_FORMAT;
        }
    }
    for (i = 0; i < d->n; i++)
        if (d->labels[i] < 0 || d->labels[i] >= d->n_classes) {
            fer__err(d->error, "remap: image %d has label %d, outside 0..%d", i, d->labels[i], d->n_classes - 1);
            return FER_ERR_ARG;
        }
    for (i = 0; i < d->n; i++) d->labels[i] = map[d->labels[i]];
    for (j = 0; j < k; j++) {          /* memmove: names may be d->class_names itself */
        memmove(d->class_names[j], names[j], FER_NAME_LEN);
        d->class_names[j][FER_NAME_LEN - 1] = 0;
    }
    for (; j < FER_MAX_CLASSES; j++) memset(d->class_names[j], 0, FER_NAME_LEN);
    d->n_classes = k;
    return FER_OK;
}

FERDEF void fer_dataset_class_counts(const fer_dataset *d, int *counts)
{
    int i;
    for (i = 0; i < d->n_classes; i++) counts[i] = 0;
    for (i = 0; i < d->n; i++)
        if (d->labels[i] >= 0 && d->labels[i] < d->n_classes) counts[d->labels[i]]++;
}

#if !defined(FER_NO_STDIO) && !defined(FER_NO_STB_IMAGE)
#include <dirent.h>

typedef struct fer__load_job {
    char **paths;
    int *labels_in;
    int begin, end, h, w;
    unsigned char *pixels;       /* slot i of the data set for path i              */
    unsigned char *ok;
    char reason[256];
    int n_bad;
} fer__load_job;

static void *fer__load_run(void *p)
{
    fer__load_job *j = (fer__load_job *)p;
    int i;
    for (i = j->begin; i < j->end; i++) {
        char err[256];
        int iw, ih;
        unsigned char *px = fer_image_load_gray(j->paths[i], &iw, &ih, err);
        if (!px) {
            if (!j->n_bad++) memcpy(j->reason, err, sizeof(err));
            j->ok[i] = 0;
            continue;
        }
        if (iw == j->w && ih == j->h) memcpy(j->pixels + (size_t)i * j->w * j->h, px, (size_t)j->w * j->h);
        else fer_resize_gray(px, iw, ih, j->pixels + (size_t)i * j->w * j->h, j->w, j->h);
        fer_image_free(px);
        j->ok[i] = 1;
    }
    return NULL;
}

static int fer__cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct fer__item { char *path; int label; } fer__item;
static int fer__cmp_item(const void *a, const void *b)
{
    return strcmp(((const fer__item *)a)->path, ((const fer__item *)b)->path);
}

FERDEF fer_result fer_dataset_load_folder(fer_dataset *d, const char *dir, int h, int w,
                                          int n_threads, void *alloc_ctx)
{
    char *cls[FER_MAX_CLASSES], **paths = NULL;
    int n_cls = 0, c, i, n = 0, cap = 0, *lab = NULL, canon = 1, map[FER_MAX_CLASSES], t, kept;
    size_t dl = strlen(dir);
    DIR *dp;
    struct dirent *e;
    fer__load_job jobs[64];
    unsigned char *ok = NULL;
    fer_result r = FER_OK;
    memset(d, 0, sizeof(*d));
    d->alloc_ctx = alloc_ctx;
    if (h < 1 || w < 1 || h > FER_MAX_DIM || w > FER_MAX_DIM) { fer__err(d->error, "dataset: size %dx%d out of range", h, w); return FER_ERR_ARG; }
    if (dl > 3500) { fer__err(d->error, "dataset: path too long"); return FER_ERR_ARG; }
    if (!(dp = opendir(dir))) { fer__err(d->error, "dataset: cannot open folder %.200s", dir); return FER_ERR_IO; }
    while ((e = readdir(dp)) != NULL) {
        char sub[4096];
        DIR *sd;
        if (e->d_name[0] == '.') continue;
        snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
        if (!(sd = opendir(sub))) continue;            /* files beside the class folders */
        closedir(sd);
        if (n_cls == FER_MAX_CLASSES || strlen(e->d_name) >= FER_NAME_LEN) {
            closedir(dp);
            for (c = 0; c < n_cls; c++) FER_FREE(cls[c], alloc_ctx);
            fer__err(d->error, "dataset: %.200s: more than %d class folders, or a class name over %d characters",
                     dir, FER_MAX_CLASSES, FER_NAME_LEN - 1);
            return FER_ERR_FORMAT;
        }
        cls[n_cls] = (char *)FER_MALLOC(strlen(e->d_name) + 1, alloc_ctx);
        if (!cls[n_cls]) { closedir(dp); r = FER_ERR_NOMEM; goto done; }
        memcpy(cls[n_cls], e->d_name, strlen(e->d_name) + 1);
        n_cls++;
    }
    closedir(dp);
    if (n_cls == 0) { fer__err(d->error, "dataset: %.200s has no class folders", dir); r = FER_ERR_FORMAT; goto done; }
    qsort(cls, (size_t)n_cls, sizeof(char *), fer__cmp_str);
    /* FER2013's names keep its canonical class order */
    for (c = 0; c < n_cls; c++) {
        int k, found = -1;
        for (k = 0; k < 7; k++) if (!strcmp(cls[c], fer__fer2013_names[k])) found = k;
        if (found < 0) canon = 0;
        map[c] = found;
    }
    if (canon && n_cls == 7) { for (c = 0; c < 7; c++) memcpy(d->class_names[c], fer__fer2013_names[c], strlen(fer__fer2013_names[c]) + 1); }
    else { canon = 0; for (c = 0; c < n_cls; c++) { map[c] = c; memcpy(d->class_names[c], cls[c], strlen(cls[c]) + 1); } }
    d->n_classes = n_cls;
    /* list files */
    for (c = 0; c < n_cls; c++) {
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/%s", dir, cls[c]);
        if (!(dp = opendir(sub))) continue;
        while ((e = readdir(dp)) != NULL) {
            size_t len;
            if (e->d_name[0] == '.') continue;
            if (n == cap) {
                int nc = cap ? cap * 2 : 1024;
                char **np = (char **)FER_MALLOC(sizeof(char *) * (size_t)nc, alloc_ctx);
                int *nl = (int *)FER_MALLOC(sizeof(int) * (size_t)nc, alloc_ctx);
                if (!np || !nl) { if (np) FER_FREE(np, alloc_ctx); if (nl) FER_FREE(nl, alloc_ctx); closedir(dp); r = FER_ERR_NOMEM; goto done; }
                if (n) { memcpy(np, paths, sizeof(char *) * (size_t)n); memcpy(nl, lab, sizeof(int) * (size_t)n); }
                if (paths) FER_FREE(paths, alloc_ctx);
                if (lab) FER_FREE(lab, alloc_ctx);
                paths = np; lab = nl; cap = nc;
            }
            len = strlen(sub) + strlen(e->d_name) + 2;
            if (!(paths[n] = (char *)FER_MALLOC(len, alloc_ctx))) { closedir(dp); r = FER_ERR_NOMEM; goto done; }
            snprintf(paths[n], len, "%s/%s", sub, e->d_name);
            lab[n] = map[c];
            n++;
        }
        closedir(dp);
    }
    if (n == 0) { fer__err(d->error, "dataset: %.200s: the class folders hold no files", dir); r = FER_ERR_FORMAT; goto done; }
    /* a fixed order (sorted paths) so a seed means the same thing on every machine;
       the label rides in front of each path while sorting */
    {
        fer__item *it = (fer__item *)FER_MALLOC(sizeof(fer__item) * (size_t)n, alloc_ctx);
        if (!it) { r = FER_ERR_NOMEM; goto done; }
        for (i = 0; i < n; i++) { it[i].path = paths[i]; it[i].label = lab[i]; }
        qsort(it, (size_t)n, sizeof(fer__item), fer__cmp_item);
        for (i = 0; i < n; i++) { paths[i] = it[i].path; lab[i] = it[i].label; }
        FER_FREE(it, alloc_ctx);
    }
    d->pixels = (unsigned char *)FER_MALLOC(fer__mul((size_t)n, (size_t)h * w), alloc_ctx);
    d->labels = (int *)FER_MALLOC(sizeof(int) * (size_t)n, alloc_ctx);
    ok = (unsigned char *)FER_MALLOC((size_t)n, alloc_ctx);
    if (!d->pixels || !d->labels || !ok) { r = FER_ERR_NOMEM; goto done; }
    if (n_threads < 1) n_threads = 1;
    if (n_threads > 64) n_threads = 64;
    for (t = 0; t < n_threads; t++) {
        memset(&jobs[t], 0, sizeof(jobs[t]));
        jobs[t].paths = paths; jobs[t].h = h; jobs[t].w = w; jobs[t].pixels = d->pixels; jobs[t].ok = ok;
        jobs[t].begin = (int)((long long)n * t / n_threads);
        jobs[t].end = (int)((long long)n * (t + 1) / n_threads);
    }
    fer__run_jobs(fer__load_run, jobs, sizeof(jobs[0]), n_threads);
    for (t = 0; t < n_threads; t++)
        if (jobs[t].n_bad) { if (!d->n_skipped) memcpy(d->skip_reason, jobs[t].reason, sizeof(d->skip_reason)); d->n_skipped += jobs[t].n_bad; }
    for (i = 0, kept = 0; i < n; i++) {     /* compact: drop the skipped slots */
        if (!ok[i]) continue;
        if (kept != i) memcpy(d->pixels + (size_t)kept * h * w, d->pixels + (size_t)i * h * w, (size_t)h * w);
        d->labels[kept++] = lab[i];
    }
    d->n = kept; d->h = h; d->w = w;
    if (kept == 0) { fer__err(d->error, "dataset: no image under %.200s could be read: %s", dir, d->skip_reason); r = FER_ERR_FORMAT; }
done:
    if (r == FER_ERR_NOMEM) fer__err(d->error, "dataset: out of memory reading %.200s", dir);
    if (paths) { for (i = 0; i < n; i++) FER_FREE(paths[i], alloc_ctx); FER_FREE(paths, alloc_ctx); }
    if (lab) FER_FREE(lab, alloc_ctx);
    if (ok) FER_FREE(ok, alloc_ctx);
    for (c = 0; c < n_cls; c++) FER_FREE(cls[c], alloc_ctx);
    if (r != FER_OK) fer_dataset_free(d);
    return r;
}
#endif

/* ---- augmentation and class balancing ----
   fer_augment_image makes its ten parameter draws up front, whatever is switched
   on, so one seed means the same warp with or without, say, erasing; only the
   erasing draws, which come last, vary in number. The warp is skipped when the
   drawn transform is the identity or a plain mirror, so that path copies pixels
   exactly. */

FERDEF void fer_augment_defaults(fer_augment *a)
{
    memset(a, 0, sizeof(*a));
    a->flip = 1;
    a->rotate = 10.0f; a->shift = 0.1f; a->zoom = 0.1f;
    a->brightness = 0.2f; a->contrast = 0.2f;
    a->random_crop = 1;
    a->erase_prob = 0.5f; a->erase_min = 0.02f; a->erase_max = 0.2f; a->erase_aspect = 3.0f;
}

/* v * 65536 rounded, as a 48.16 fixed-point number; |v| is held to 2^24 pixels,
   far outside any image, so no conversion overflows (NaN goes to -2^24), and a
   row of steps of at most 20 pixels (scale >= 0.05) cannot overflow either. */
static int64_t fer__fixed16(double v)
{
    v *= 65536.0;
    v = v > -1099511627776.0 ? (v < 1099511627776.0 ? v : 1099511627776.0) : -1099511627776.0;
    return (int64_t)(v < 0.0 ? v - 0.5 : v + 0.5);
}

/* dst[oh][ow] = src[h][w] / 255 sampled bilinearly at (sx, sy) = (A0 x + A1 y + b0,
   A2 x + A3 y + b1), in fixed point: coordinates with 16 fractional bits, stepped
   along each row, and weights with 11 (OpenCV's warpAffine uses 5), so a pixel
   costs integer work and one conversion. A coordinate at or beyond the border is
   clamped to the image, which is sampling with the border repeated; ix stops at
   w-2 so that ix+1 is always a pixel (fx = 2048 then reads the last column).
   Against exact bilinear sampling the error is below 1e-3 of full scale. */
static void fer__warp(const unsigned char *src, int h, int w, float *dst, int oh, int ow,
                      const float *A, const float *b)
{
    int64_t xm = (int64_t)(w - 1) << 16, ym = (int64_t)(h - 1) << 16;
    int64_t ixm = w > 1 ? w - 2 : 0, iym = h > 1 ? h - 2 : 0;
    int64_t dx = fer__fixed16(A[0]), dy = fer__fixed16(A[2]);
    size_t xs = w > 1, ys = h > 1 ? (size_t)w : 0;
    int y, x;
    for (y = 0; y < oh; y++) {
        int64_t qx = fer__fixed16((double)A[1] * y + b[0]), qy = fer__fixed16((double)A[3] * y + b[1]);
        float *o = dst + (size_t)y * ow;
        for (x = 0; x < ow; x++, qx += dx, qy += dy) {
            int64_t cx = qx, cy = qy, ix, iy;
            const unsigned char *p;
            int fx, fy, top, bot;
            if (!((uint64_t)qx < (uint64_t)xm && (uint64_t)qy < (uint64_t)ym)) {
                cx = qx < 0 ? 0 : qx > xm ? xm : qx;
                cy = qy < 0 ? 0 : qy > ym ? ym : qy;
            }
            ix = cx >> 16; if (ix > ixm) ix = ixm;
            iy = cy >> 16; if (iy > iym) iy = iym;
            fx = (int)((cx - (ix << 16) + 16) >> 5);           /* 0 .. 2048, rounded */
            fy = (int)((cy - (iy << 16) + 16) >> 5);
            p = src + (size_t)iy * (size_t)w + (size_t)ix;
            top = p[0] * 2048 + fx * (p[xs] - p[0]);            /* <= 255 * 2^11 */
            bot = p[ys] * 2048 + fx * (p[ys + xs] - p[ys]);
            o[x] = (float)(top * 2048 + fy * (bot - top)) * (1.0f / (255.0f * 4194304.0f));
        }
    }
}

static float fer__clamp01(float v)   /* NaN goes to 0; the two selects are maxps, minps */
{
    v = v > 0.0f ? v : 0.0f;
    return v < 1.0f ? v : 1.0f;
}

/* Random erasing as torchvision's RandomErasing draws it: up to ten tries of an
   area and a log-uniform aspect ratio (height / width); the first rectangle that
   fits strictly inside the image (and is not empty) is placed uniformly and
   filled with uniform noise, row by row. */
static void fer__erase(const fer_augment *a, float *dst, int oh, int ow, uint64_t *st)
{
    float area = (float)oh * (float)ow, ar = a->erase_aspect > 0.0f ? a->erase_aspect : 1.0f;
    float lo = a->erase_min, hi = a->erase_max, la = logf(ar);
    int t, y, x;
    for (t = 0; t < 10; t++) {
        float s = area * (lo + fer__uniform(st) * (hi - lo));
        float r = expf((2.0f * fer__uniform(st) - 1.0f) * la);
        float fh = floorf(sqrtf(s * r) + 0.5f), fw = floorf(sqrtf(s / r) + 0.5f);
        int eh, ew, top, left;
        if (!(fh >= 1.0f && fw >= 1.0f && fh < (float)oh && fw < (float)ow)) continue;  /* NaN too */
        eh = (int)fh; ew = (int)fw;
        top = (int)(fer__uniform(st) * (float)(oh - eh + 1));
        left = (int)(fer__uniform(st) * (float)(ow - ew + 1));
        if (top > oh - eh) top = oh - eh;
        if (left > ow - ew) left = ow - ew;
        for (y = top; y < top + eh; y++)
            for (x = left; x < left + ew; x++) dst[(size_t)y * ow + x] = fer__uniform(st);
        return;
    }
}

FERDEF void fer_augment_image(const fer_augment *a, const unsigned char *src, int h, int w,
                              float *dst, int oh, int ow, uint64_t seed)
{
    fer_augment zero;
    uint64_t st = fer__mix64(seed);
    float u[10], ang, sc, tx, ty, bri, con;
    int i, y, x, oy, ox, mirror;
    size_t n = (size_t)oh * (size_t)ow;
    if (!src || !dst || h < 1 || w < 1 || oh < 1 || ow < 1 || oh > h || ow > w) return;
    if (!a) { memset(&zero, 0, sizeof(zero)); a = &zero; }
    for (i = 0; i < 10; i++) u[i] = fer__uniform(&st);
    mirror = a->flip && u[0] < 0.5f;
    ang = (2.0f * u[1] - 1.0f) * a->rotate * (3.14159265358979f / 180.0f);
    sc = 1.0f + (2.0f * u[2] - 1.0f) * a->zoom;
    if (!(sc >= 0.05f)) sc = 0.05f;
    tx = (2.0f * u[3] - 1.0f) * a->shift * (float)w;
    ty = (2.0f * u[4] - 1.0f) * a->shift * (float)h;
    oy = (h - oh) / 2; ox = (w - ow) / 2;
    if (a->random_crop) {
        oy = (int)(u[5] * (float)(h - oh + 1)); if (oy > h - oh) oy = h - oh;
        ox = (int)(u[6] * (float)(w - ow + 1)); if (ox > w - ow) ox = w - ow;
    }
    bri = (2.0f * u[7] - 1.0f) * a->brightness;
    con = 1.0f + (2.0f * u[8] - 1.0f) * a->contrast;

    if (ang == 0.0f && sc == 1.0f && tx == 0.0f && ty == 0.0f) {
        for (y = 0; y < oh; y++) {          /* the crop of src, or of its mirror, exactly */
            const unsigned char *r = src + (size_t)(y + oy) * w;
            float *o = dst + (size_t)y * ow;
            if (mirror) for (x = 0; x < ow; x++) o[x] = (float)r[w - 1 - ox - x] / 255.0f;
            else for (x = 0; x < ow; x++) o[x] = (float)r[ox + x] / 255.0f;
        }
    } else {
        /* Output pixel (X, Y) = (x + ox, y + oy) of the warped full image comes from
           source c + F R(-ang) (X - c - t) / sc, with c = ((w-1)/2, (h-1)/2), t the
           shift, F the mirror x -> -x: the source is mirrored, rotated clockwise on
           screen (y points down), scaled and shifted, in that order. */
        float cs = cosf(ang) / sc, sn = sinf(ang) / sc, m = mirror ? -1.0f : 1.0f;
        float cx = 0.5f * (float)(w - 1), cy = 0.5f * (float)(h - 1);
        float ex = (float)ox - cx - tx, ey = (float)oy - cy - ty, A[4], b[2];
        A[0] = m * cs; A[1] = m * sn; A[2] = -sn; A[3] = cs;
        b[0] = cx + m * (cs * ex + sn * ey);
        b[1] = cy + cs * ey - sn * ex;
        fer__warp(src, h, w, dst, oh, ow, A, b);
    }

    if (bri != 0.0f || con != 1.0f) {
        /* (x + bri - mean') * con + mean' with mean' = mean + bri, in one pass */
        float k = bri, acc[8] = { 0, 0, 0, 0, 0, 0, 0, 0 };
        size_t j;
        if (con != 1.0f) {
            float mean = 0.0f;
            for (j = 0; j + 8 <= n; j += 8)   /* eight sums: no chain of n dependent adds */
                for (i = 0; i < 8; i++) acc[i] += dst[j + (size_t)i];
            for (; j < n; j++) acc[0] += dst[j];
            for (i = 0; i < 8; i++) mean += acc[i];
            mean /= (float)n;
            k = mean * (1.0f - con) + bri;
        }
        for (j = 0; j + 8 <= n; j += 8)
            for (i = 0; i < 8; i++) dst[j + (size_t)i] = fer__clamp01(dst[j + (size_t)i] * con + k);
        for (; j < n; j++) dst[j] = fer__clamp01(dst[j] * con + k);
    }
    if (u[9] < a->erase_prob) fer__erase(a, dst, oh, ow, &st);
}

FERDEF void fer_normalize(const fer_preproc *pre, float *x, size_t n)
{
    float s, b;
    size_t i;
    switch (pre->norm) {
    case FER_NORM_SIGNED: s = 2.0f; b = -1.0f; break;
    case FER_NORM_MEANSTD: s = 1.0f / pre->std; b = -pre->mean / pre->std; break;
    default: return;                        /* FER_NORM_UNIT: [0,1] already */
    }
    for (i = 0; i < n; i++) x[i] = x[i] * s + b;
}

static uint64_t fer__next64(uint64_t *st)  /* the stream of fer__uniform, 64 bits */
{
    *st += 0x9E3779B97F4A7C15ull;
    return fer__mix64(*st);
}

#define FER__MAX_IMAGES (1 << 24)

FERDEF fer_result fer_dataset_oversample(fer_dataset *d, int target, const fer_augment *a,
                                         uint64_t seed)
{
    int count[FER_MAX_CLASSES], start[FER_MAX_CLASSES], fill[FER_MAX_CLASSES];
    int K = d->n_classes, c, i, k, j;
    long long added = 0;
    size_t hw, total, p, np, nl, nb;
    unsigned char *pixels = NULL;
    int *labels = NULL, *byclass;
    float *buf = NULL;
    uint64_t st;
    if (target < 1 || target > FER__MAX_IMAGES) {
        fer__err(d->error, "oversample: target %d is not in 1..%d", target, FER__MAX_IMAGES);
        return FER_ERR_ARG;
    }
    if (K < 1 || K > FER_MAX_CLASSES || d->n < 0 || d->h < 1 || d->w < 1 ||
        (d->n > 0 && (!d->pixels || !d->labels))) {
        fer__err(d->error, "oversample: the data set is inconsistent (%d images of %dx%d, %d classes)",
                 d->n, d->h, d->w, K);
        return FER_ERR_ARG;
    }
    memset(count, 0, sizeof(count));
    for (i = 0; i < d->n; i++) if (d->labels[i] >= 0 && d->labels[i] < K) count[d->labels[i]]++;
    for (c = 0; c < K; c++) if (count[c] > 0 && count[c] < target) added += target - count[c];
    if (added == 0) return FER_OK;
    if ((long long)d->n + added > FER__MAX_IMAGES) {
        fer__err(d->error, "oversample: %d images and %lld copies make more than %d", d->n, added,
                 FER__MAX_IMAGES);
        return FER_ERR_ARG;
    }
    total = (size_t)d->n + (size_t)added;
    hw = fer__mul((size_t)d->h, (size_t)d->w);
    np = fer__mul(total, hw);
    nl = fer__mul(total, sizeof(int));
    nb = fer__add(fer__mul(hw, sizeof(float)), fer__mul((size_t)d->n, sizeof(int)));
    if (np != SIZE_MAX && nl != SIZE_MAX && nb != SIZE_MAX) {
        pixels = (unsigned char *)FER_MALLOC(np, d->alloc_ctx);
        labels = (int *)FER_MALLOC(nl, d->alloc_ctx);
        buf = (float *)FER_MALLOC(nb, d->alloc_ctx);  /* one image, then the class index */
    }
    if (!pixels || !labels || !buf) {
        if (pixels) FER_FREE(pixels, d->alloc_ctx);
        if (labels) FER_FREE(labels, d->alloc_ctx);
        if (buf) FER_FREE(buf, d->alloc_ctx);
        fer__err(d->error, "oversample: cannot allocate %zu images of %dx%d", total, d->h, d->w);
        return FER_ERR_NOMEM;
    }
    byclass = (int *)(buf + hw);            /* image indices grouped by class */
    for (c = 0, k = 0; c < K; c++) { start[c] = fill[c] = k; k += count[c]; }
    for (i = 0; i < d->n; i++) if (d->labels[i] >= 0 && d->labels[i] < K) byclass[fill[d->labels[i]]++] = i;
    memcpy(pixels, d->pixels, (size_t)d->n * hw);
    memcpy(labels, d->labels, (size_t)d->n * sizeof(int));
    st = fer__mix64(seed);
    for (c = 0, j = d->n; c < K; c++)
        for (k = count[c]; count[c] > 0 && k < target; k++, j++) {
            uint64_t r = fer__next64(&st), s = fer__next64(&st);
            int pick = byclass[start[c] + (int)(((r >> 32) * (uint64_t)count[c]) >> 32)];
            unsigned char *o = pixels + (size_t)j * hw;
            fer_augment_image(a, d->pixels + (size_t)pick * hw, d->h, d->w, buf, d->h, d->w, s);
            for (p = 0; p < hw; p++) {
                float v = buf[p] * 255.0f + 0.5f;
                o[p] = (unsigned char)(v < 255.0f ? (v > 0.0f ? v : 0.0f) : 255.0f);
            }
            labels[j] = c;
        }
    FER_FREE(buf, d->alloc_ctx);
    if (d->pixels) FER_FREE(d->pixels, d->alloc_ctx);
    if (d->labels) FER_FREE(d->labels, d->alloc_ctx);
    d->pixels = pixels; d->labels = labels; d->n = (int)total;
    return FER_OK;
}

/* --- 3.9 Training: losses, optimizers, schedules, the loop ----------------------------- */

FERDEF double fer_softmax_xent(const float *logits, const int *labels, int n, int k,
                               float label_smoothing, float norm, float *dlogits)
{
    double total = 0.0;
    int s, j;
    for (s = 0; s < n; s++) {
        const float *z = logits + (size_t)s * k;
        float mx = z[0];
        double sum = 0.0, lse;
        for (j = 1; j < k; j++) if (z[j] > mx) mx = z[j];
        for (j = 0; j < k; j++) sum += exp((double)(z[j] - mx));
        lse = log(sum) + mx;
        for (j = 0; j < k; j++) {   /* target: 1-ls on the label, ls/k spread over all */
            double tgt = label_smoothing / k + (j == labels[s] ? 1.0 - label_smoothing : 0.0);
            double p = exp((double)z[j] - lse);
            total -= tgt * ((double)z[j] - lse);
            if (dlogits) dlogits[(size_t)s * k + j] = (float)((p - tgt) / norm);
        }
    }
    return total / (n > 0 ? n : 1);
}

FERDEF fer_result fer_optimizer_init(fer_optimizer *o, int kind, size_t n_params, float lr,
                                     float weight_decay, void *alloc_ctx)
{
    size_t bytes = fer__mul(fer__mul(n_params ? n_params : 1, 2), sizeof(float));
    memset(o, 0, sizeof(*o));
    if (kind < FER_OPT_SGD || kind > FER_OPT_ADAMW || !(lr > 0.0f) || !(weight_decay >= 0.0f)) return FER_ERR_ARG;
    o->kind = kind; o->lr = lr; o->weight_decay = weight_decay; o->n = n_params;
    o->momentum = 0.9f; o->beta1 = 0.9f; o->beta2 = 0.999f; o->eps = 1e-8f;
    o->alloc_ctx = alloc_ctx;
    if (bytes == SIZE_MAX || !(o->m = (float *)FER_MALLOC(bytes, alloc_ctx))) return FER_ERR_NOMEM;
    memset(o->m, 0, bytes);
    o->v = o->m + n_params;
    return FER_OK;
}

FERDEF void fer_optimizer_free(fer_optimizer *o)
{
    if (o->m) FER_FREE(o->m, o->alloc_ctx);
    o->m = o->v = NULL;
}

FERDEF void fer_optimizer_step(fer_optimizer *o, float *params, const float *grads,
                               const unsigned char *no_decay)
{
    size_t i;
    float lr = o->lr, wd = o->weight_decay;
    o->step++;
    if (o->kind == FER_OPT_SGD) {
        for (i = 0; i < o->n; i++) {   /* PyTorch's SGD: L2 decay added to the gradient */
            float g = grads[i] + ((no_decay && no_decay[i]) ? 0.0f : wd * params[i]);
            o->m[i] = o->momentum * o->m[i] + g;
            params[i] -= lr * (o->nesterov ? g + o->momentum * o->m[i] : o->m[i]);
        }
    } else {
        double bc1 = 1.0 - pow(o->beta1, (double)o->step), bc2 = 1.0 - pow(o->beta2, (double)o->step);
        float a = (float)(lr * sqrt(bc2) / bc1);
        for (i = 0; i < o->n; i++) {
            int decay = !(no_decay && no_decay[i]);
            float g = grads[i];
            if (o->kind == FER_OPT_ADAM && decay) g += wd * params[i];           /* L2 */
            if (o->kind == FER_OPT_ADAMW && decay) params[i] -= lr * wd * params[i]; /* decoupled */
            o->m[i] = o->beta1 * o->m[i] + (1.0f - o->beta1) * g;
            o->v[i] = o->beta2 * o->v[i] + (1.0f - o->beta2) * g * g;
            params[i] -= a * o->m[i] / (sqrtf(o->v[i]) + o->eps * (float)sqrt(bc2));
        }
    }
}

FERDEF void fer_model_no_decay_mask(const fer_model *m, unsigned char *mask)
{
    int i;
    memset(mask, 0, m->n_params);
    for (i = 0; i < m->n_nodes; i++) {
        const fer_node *nd = &m->nodes[i];
        if (nd->op == FER_OP_BN || nd->op == FER_OP_PRELU) memset(mask + nd->p_off, 1, nd->p_len);
        if ((nd->op == FER_OP_CONV || nd->op == FER_OP_DENSE) && nd->share < 0)
            memset(mask + nd->p_off + nd->p_len - (size_t)nd->out.c, 1, (size_t)nd->out.c);
    }
}

/* ---- losses and gradient clipping ---- */

FERDEF double fer_loss_eval(const fer_loss *L, const float *logits, const int *labels, int n,
                            int k, float norm, float *dlogits)
{
    double total = 0.0;
    float ls = L ? L->label_smoothing : 0.0f, gamma = L ? L->focal_gamma : 0.0f;
    const float *cw = L ? L->class_weight : NULL;
    int s, j;
    for (s = 0; s < n; s++) {
        const float *z = logits + (size_t)s * k;
        float *d = dlogits ? dlogits + (size_t)s * k : NULL;
        int y = labels[s];
        double wy = cw ? (double)cw[y] : 1.0, mx = z[0], sum = 0.0, lse;
        for (j = 1; j < k; j++) if (z[j] > mx) mx = z[j];
        for (j = 0; j < k; j++) sum += exp((double)z[j] - mx);
        lse = log(sum) + mx;
        if (gamma > 0.0f) {
            /* l = -q^g ln p with p = p_y, q = 1 - p; dl/dz_j = (g q^(g-1) p ln p - q^g)(1[j=y] - p_j) */
            double lp = (double)z[y] - lse, p = exp(lp), q = -expm1(lp), mod = pow(q, gamma);
            double c = (q > 0.0 ? gamma * pow(q, gamma - 1.0) * p * lp : 0.0) - mod;
            total -= wy * mod * lp;
            if (d) for (j = 0; j < k; j++)
                d[j] = (float)(wy * c * ((j == y ? 1.0 : 0.0) - exp((double)z[j] - lse)) / norm);
        } else {
            for (j = 0; j < k; j++) {   /* target: 1-ls on the label, ls/k spread over all */
                double tgt = ls / k + (j == y ? 1.0 - ls : 0.0);
                total -= wy * tgt * ((double)z[j] - lse);
                if (d) d[j] = (float)(wy * (exp((double)z[j] - lse) - tgt) / norm);
            }
        }
    }
    return total;
}

FERDEF void fer_class_weights_balanced(const int *counts, int k, float *w)
{
    double total = 0.0;
    int c, present = 0;
    for (c = 0; c < k; c++) { total += counts[c]; present += counts[c] > 0; }
    for (c = 0; c < k; c++) w[c] = counts[c] > 0 ? (float)(total / ((double)present * counts[c])) : 0.0f;
}

FERDEF double fer_clip_grad_norm(float *g, size_t n, float max_norm)
{
    double ss = 0.0, norm;
    size_t i;
    for (i = 0; i < n; i++) ss += (double)g[i] * g[i];
    norm = sqrt(ss);
    if (max_norm > 0.0f && norm > max_norm && norm <= DBL_MAX) {   /* PyTorch's clip_grad_norm_ */
        float sc = (float)(max_norm / (norm + 1e-6));
        for (i = 0; i < n; i++) g[i] *= sc;
    }
    return norm;
}

/* ---- learning-rate schedules ---- */

FERDEF void fer_schedule_init(fer_schedule *s, int kind, float lr, int epochs)
{
    memset(s, 0, sizeof(*s));
    s->kind = kind; s->lr = lr; s->epochs = epochs;
    s->step_size = epochs / 3 > 0 ? epochs / 3 : 1;
    s->gamma = 0.1f; s->factor = 0.5f; s->threshold = 1e-4f; s->patience = 3;
    s->plateau_lr = lr; s->plateau_best = HUGE_VAL;
}

FERDEF float fer_schedule_lr(const fer_schedule *s, int epoch, int step, int steps_per_epoch)
{
    long spe = steps_per_epoch > 0 ? steps_per_epoch : 1, g = (long)epoch * spe + step;
    long warm = (long)s->warmup_epochs * spe, total = (long)s->epochs * spe;
    float lr = s->lr;
    int i, passed = 0;
    switch (s->kind) {
    case FER_SCHED_STEP: lr = s->lr * powf(s->gamma, (float)(epoch / (s->step_size > 0 ? s->step_size : 1))); break;
    case FER_SCHED_MULTISTEP:
        for (i = 0; i < s->n_milestones; i++) passed += epoch >= s->milestones[i];
        lr = s->lr * powf(s->gamma, (float)passed);
        break;
    case FER_SCHED_COSINE:
        if (g >= warm && total > warm) {
            double t = (double)(g - warm) / (double)(total - warm);
            if (t > 1.0) t = 1.0;
            lr = (float)(s->min_lr + (s->lr - s->min_lr) * 0.5 * (1.0 + cos(3.14159265358979323846 * t)));
        }
        break;
    case FER_SCHED_PLATEAU: lr = s->plateau_lr; break;
    default: break;
    }
    if (g < warm) lr *= (float)(g + 1) / (float)warm;
    return lr;
}

FERDEF int fer_schedule_epoch_end(fer_schedule *s, double value)
{
    if (s->kind != FER_SCHED_PLATEAU) return 0;
    if (value < s->plateau_best * (1.0 - s->threshold)) { s->plateau_best = value; s->plateau_bad = 0; }
    else s->plateau_bad++;          /* NaN never improves */
    if (s->plateau_bad > s->patience) {
        float lr = s->plateau_lr * s->factor < s->min_lr ? s->min_lr : s->plateau_lr * s->factor;
        s->plateau_bad = 0;
        if (s->plateau_lr - lr > 1e-8f) { s->plateau_lr = lr; return 1; }
    }
    return 0;
}

FERDEF fer_result fer_schedule_check(const fer_schedule *s, char *error)
{
    int i;
    const char *bad = NULL;
    if (s->kind < FER_SCHED_CONSTANT || s->kind > FER_SCHED_PLATEAU) bad = "kind is not a fer_sched_kind";
    else if (!(s->lr > 0.0f && s->lr < 10.0f)) bad = "the learning rate must be in (0, 10)";
    else if (!(s->min_lr >= 0.0f && s->min_lr <= s->lr)) bad = "min_lr must be in [0, lr]";
    else if (s->warmup_epochs < 0 || s->warmup_epochs > 100000) bad = "warmup_epochs must be >= 0";
    else if (s->kind == FER_SCHED_COSINE && (s->epochs < 1 || s->warmup_epochs >= s->epochs))
        bad = "cosine needs epochs >= 1 and a warm-up shorter than the run";
    else if (s->kind == FER_SCHED_STEP && s->step_size < 1) bad = "step_size must be >= 1";
    else if ((s->kind == FER_SCHED_STEP || s->kind == FER_SCHED_MULTISTEP) && !(s->gamma > 0.0f && s->gamma <= 1.0f))
        bad = "gamma must be in (0, 1]";
    else if (s->n_milestones < 0 || s->n_milestones > FER_MAX_MILESTONES) bad = "too many milestones";
    else if (s->kind == FER_SCHED_PLATEAU && !(s->factor > 0.0f && s->factor < 1.0f)) bad = "the plateau factor must be in (0, 1)";
    else if (s->kind == FER_SCHED_PLATEAU && (s->patience < 0 || !(s->threshold >= 0.0f && s->threshold < 1.0f)))
        bad = "plateau patience must be >= 0 and threshold in [0, 1)";
    for (i = 0; !bad && i < s->n_milestones; i++)
        if (s->milestones[i] < 1 || (i && s->milestones[i] <= s->milestones[i - 1])) bad = "milestones must be ascending epochs >= 1";
    if (!bad) return FER_OK;
    if (error) fer__err(error, "schedule: %s", bad);
    return FER_ERR_ARG;
}

/* ---- weight averaging, pooled BN statistics ---- */

FERDEF fer_result fer_swa_init(fer_swa *s, int kind, float decay, size_t n, void *alloc_ctx)
{
    memset(s, 0, sizeof(*s));
    if (kind < FER_SWA_NONE || kind > FER_SWA_UNIFORM || (kind == FER_SWA_EMA && !(decay > 0.0f && decay < 1.0f)))
        return FER_ERR_ARG;
    s->kind = kind; s->decay = decay; s->n = n; s->alloc_ctx = alloc_ctx;
    if (kind == FER_SWA_NONE) return FER_OK;
    if (fer__mul(n ? n : 1, sizeof(float)) == SIZE_MAX ||
        !(s->avg = (float *)FER_MALLOC(fer__mul(n ? n : 1, sizeof(float)), alloc_ctx)))
        return FER_ERR_NOMEM;
    return FER_OK;
}

FERDEF void fer_swa_update(fer_swa *s, const float *x)
{
    size_t i;
    if (!s->avg) return;
    if (s->count == 0) memcpy(s->avg, x, sizeof(float) * s->n);
    else if (s->kind == FER_SWA_EMA)
        for (i = 0; i < s->n; i++) s->avg[i] = s->decay * s->avg[i] + (1.0f - s->decay) * x[i];
    else {
        float inv = 1.0f / (float)(s->count + 1);
        for (i = 0; i < s->n; i++) s->avg[i] += (x[i] - s->avg[i]) * inv;
    }
    s->count++;
}

FERDEF void fer_swa_free(fer_swa *s)
{
    if (s->avg) FER_FREE(s->avg, s->alloc_ctx);
    s->avg = NULL;
}

/* Pooled statistics of shards t with N_t values each: mean = sum N_t m_t / N,
   var = sum N_t (v_t + (m_t - mean)^2) / N. One shard gives m_0, v_0 exactly. */
FERDEF void fer_bn_update_running_pooled(fer_model *m, const fer_workspace *ws, int n_ws,
                                         float momentum)
{
    int i, c, t;
    for (i = 0; i < m->n_nodes; i++) {
        const fer_node *nd = &m->nodes[i];
        float *rm = m->buffers + nd->b_off, *rv = rm + nd->out.c;
        float mo = momentum >= 0.0f ? momentum : nd->momentum;
        double hw = (double)m->nodes[nd->in[0]].out.h * m->nodes[nd->in[0]].out.w, cnt = 0.0;
        if (nd->op != FER_OP_BN) continue;
        for (t = 0; t < n_ws; t++) if (ws[t].last_training) cnt += (double)ws[t].n * hw;
        if (cnt <= 0.0) continue;
        for (c = 0; c < nd->out.c; c++) {
            double mean = 0.0, var = 0.0;
            float unbiased;
            for (t = 0; t < n_ws; t++)
                if (ws[t].last_training) mean += (double)ws[t].n * hw * ws[t].aux[ws[t].aux_off[i] + c];
            mean /= cnt;
            for (t = 0; t < n_ws; t++) {
                const float *A = ws[t].aux + ws[t].aux_off[i];
                double dm = (double)A[c] - mean;
                if (ws[t].last_training) var += (double)ws[t].n * hw * (A[nd->out.c + c] + dm * dm);
            }
            var /= cnt;
            unbiased = cnt > 1.0 ? (float)(var * cnt / (cnt - 1.0)) : (float)var;
            rm[c] = (1.0f - mo) * rm[c] + mo * (float)mean;
            rv[c] = (1.0f - mo) * rv[c] + mo * unbiased;
        }
    }
}

/* ---- the training loop ---- */

FERDEF void fer_train_config_defaults(fer_train_config *c)
{
    memset(c, 0, sizeof(*c));
    c->epochs = 60; c->batch = 64; c->threads = 1; c->seed = 1;
    c->optimizer = FER_OPT_ADAM; c->weight_decay = 1e-4f;
    c->momentum = 0.9f; c->beta1 = 0.9f; c->beta2 = 0.999f;
    fer_schedule_init(&c->schedule, FER_SCHED_COSINE, 0.002f, c->epochs);
    c->schedule.warmup_epochs = 2;
    c->label_smoothing = 0.1f;
    fer_augment_defaults(&c->augment);
    c->norm = FER_NORM_UNIT;
    c->monitor = FER_MONITOR_ACC;
    c->restore_best = 1;
    c->swa_decay = 0.9f;
    c->val_tta = FER_TTA_NONE;
}

static int fer__in(double x, double lo, double hi) { return x >= lo && x <= hi; }

FERDEF fer_result fer_train_config_check(const fer_train_config *c, char *error)
{
    const fer_augment *a = &c->augment;
    const char *bad = NULL;
    int i;
    if (fer_schedule_check(&c->schedule, error) != FER_OK) return FER_ERR_ARG;
    if (c->epochs < 1 || c->epochs > 100000) bad = "epochs must be 1..100000";
    else if (c->batch < 1 || c->batch > 65536) bad = "batch must be 1..65536";
    else if (c->threads < 1 || c->threads > 64) bad = "threads must be 1..64";
    else if (c->optimizer < FER_OPT_SGD || c->optimizer > FER_OPT_ADAMW) bad = "optimizer is not sgd, adam or adamw";
    else if (!fer__in(c->weight_decay, 0.0, 0.999)) bad = "weight decay must be in [0, 1)";
    else if (!fer__in(c->momentum, 0.0, 0.9999) || !fer__in(c->beta1, 0.0, 0.9999) || !fer__in(c->beta2, 0.0, 0.999999))
        bad = "momentum and betas must be in [0, 1)";
    else if (!fer__in(c->label_smoothing, 0.0, 0.999)) bad = "label smoothing must be in [0, 1)";
    else if (!fer__in(c->focal_gamma, 0.0, 10.0)) bad = "the focal gamma must be in [0, 10]";
    else if (c->focal_gamma > 0.0f && c->label_smoothing > 0.0f) bad = "label smoothing applies to cross-entropy, not focal loss";
    else if (c->class_weighting < FER_WEIGHT_NONE || c->class_weighting > FER_WEIGHT_GIVEN) bad = "unknown class weighting";
    else if (!fer__in(c->clip_norm, 0.0, 1e30)) bad = "the clipping norm must be >= 0";
    else if (!fer__in(a->rotate, 0.0, 180.0)) bad = "augment: rotation must be 0..180 degrees";
    else if (!fer__in(a->shift, 0.0, 0.5)) bad = "augment: shift must be 0..0.5";
    else if (!fer__in(a->zoom, 0.0, 0.9)) bad = "augment: zoom must be 0..0.9";
    else if (!fer__in(a->brightness, 0.0, 1.0) || !fer__in(a->contrast, 0.0, 1.0)) bad = "augment: brightness and contrast must be 0..1";
    else if (!fer__in(a->erase_prob, 0.0, 1.0)) bad = "augment: erasing probability must be 0..1";
    else if (a->erase_prob > 0.0f && !(fer__in(a->erase_min, 0.0, 1.0) && fer__in(a->erase_max, a->erase_min, 1.0) &&
                                       a->erase_max > 0.0f && fer__in(a->erase_aspect, 1.0, 100.0)))
        bad = "augment: erasing needs 0 <= min <= max <= 1, max > 0 and aspect >= 1";
    else if (c->norm < FER_NORM_UNIT || c->norm > FER_NORM_MEANSTD) bad = "unknown normalisation";
    else if (c->monitor < FER_MONITOR_ACC || c->monitor > FER_MONITOR_F1) bad = "unknown monitored metric";
    else if (c->early_stop < 0 || !fer__in(c->min_delta, 0.0, 1e30)) bad = "early stopping patience and min_delta must be >= 0";
    else if (c->swa < FER_SWA_NONE || c->swa > FER_SWA_UNIFORM) bad = "unknown weight averaging";
    else if (c->swa && (c->swa_start < 0 || c->swa_start >= c->epochs)) bad = "swa_start must be an epoch of the run";
    else if (c->swa == FER_SWA_EMA && !(c->swa_decay > 0.0f && c->swa_decay < 1.0f)) bad = "the EMA decay must be in (0, 1)";
    else if (!fer__in(c->swa_lr, 0.0, 10.0)) bad = "swa_lr must be in [0, 10]";
    else if (c->val_tta < FER_TTA_NONE || c->val_tta > FER_TTA_TENCROP) bad = "unknown test-time augmentation";
    for (i = 0; !bad && c->class_weighting == FER_WEIGHT_GIVEN && i < FER_MAX_CLASSES; i++)
        if (!fer__in(c->class_weight[i], 0.0, 1e6)) bad = "class weights must be finite and >= 0";
    if (!bad) return FER_OK;
    if (error) fer__err(error, "training config: %s", bad);
    return FER_ERR_ARG;
}

FERDEF void fer_trainer_free(fer_trainer *t)
{
    int i;
    void *ctx = t->alloc_ctx;
    if (t->ws) { for (i = 0; i < t->n_ws; i++) fer_workspace_free(&t->ws[i]); FER_FREE(t->ws, ctx); }
    fer_optimizer_free(&t->opt);
    fer_swa_free(&t->swa);
    if (t->best_arena) FER_FREE(t->best_arena, ctx);
    if (t->no_decay) FER_FREE(t->no_decay, ctx);
    if (t->x) FER_FREE(t->x, ctx);
    if (t->dlogits) FER_FREE(t->dlogits, ctx);
    if (t->labels) FER_FREE(t->labels, ctx);
    if (t->perm) FER_FREE(t->perm, ctx);
    if (t->shards) FER_FREE(t->shards, ctx);
    t->ws = NULL; t->best_arena = NULL; t->no_decay = NULL; t->x = t->dlogits = NULL;
    t->labels = t->perm = NULL; t->shards = NULL; t->n_ws = 0;
}

static fer_result fer__trainer_data_ok(fer_trainer *t, const fer_dataset *d, const char *what)
{
    int i;
    if (!d->pixels || d->n < 1) { fer__err(t->error, "train: the %s set is empty", what); return FER_ERR_ARG; }
    if (d->n_classes > t->m->n_classes) {
        fer__err(t->error, "train: the %s set has %d classes, the model %d", what, d->n_classes, t->m->n_classes);
        return FER_ERR_ARG;
    }
    for (i = 0; i < d->n; i++)
        if (d->labels[i] < 0 || d->labels[i] >= t->m->n_classes) {
            fer__err(t->error, "train: %s image %d has label %d, outside 0..%d", what, i, d->labels[i], t->m->n_classes - 1);
            return FER_ERR_ARG;
        }
    return FER_OK;
}

/* One shard of a step: augment its samples, forward, loss, backward. */
typedef struct fer__shard {
    fer_trainer *t;
    const fer_dataset *d;
    int index, begin, n, epoch, augment;
    int forward_only;            /* BN recalibration: no loss, no backward */
    int step;
    long gstep;                  /* steps since the start of the run */
    float norm;
    double loss;
    int correct;
    int tp[FER_MAX_CLASSES], pred[FER_MAX_CLASSES], sup[FER_MAX_CLASSES];   /* for macro F1 */
    fer_result r;
} fer__shard;

FERDEF fer_result fer_trainer_init(fer_trainer *t, fer_model *m, const fer_train_config *c,
                                   const fer_dataset *train, void *alloc_ctx)
{
    size_t in_size, arena = m->n_params + m->n_buffers;
    int i, K = m->n_classes;
    fer_result r;
    memset(t, 0, sizeof(*t));
    t->m = m; t->alloc_ctx = alloc_ctx;
    if (fer_train_config_check(c, t->error) != FER_OK) return FER_ERR_ARG;
    t->cfg = *c;
    if (!m->finalized) { fer__err(t->error, "train: the model is not finalized"); return FER_ERR_ARG; }
    for (i = 0; i < m->n_nodes; i++)
        if (m->nodes[i].op == FER_OP_CONV && m->nodes[i].act) {
            fer__err(t->error, "train: node %d has a folded batch norm; a folded model cannot be trained", i);
            return FER_ERR_ARG;
        }
    if ((r = fer__trainer_data_ok(t, train, "training")) != FER_OK) return r;
    if (train->h < m->input.h || train->w < m->input.w) {
        fer__err(t->error, "train: images are %dx%d, smaller than the model input %dx%d",
                 train->w, train->h, m->input.w, m->input.h);
        return FER_ERR_SHAPE;
    }
    if (train->n < c->batch) {
        fer__err(t->error, "train: %d training images, fewer than one batch of %d", train->n, c->batch);
        return FER_ERR_ARG;
    }
    /* the model remembers how its inputs were made */
    m->pre.store_h = train->h; m->pre.store_w = train->w;
    m->pre.crop_h = train->h > m->input.h ? m->input.h : 0;
    m->pre.crop_w = train->w > m->input.w ? m->input.w : 0;
    m->pre.norm = c->norm; m->pre.temperature = 1.0f;
    if (c->norm == FER_NORM_MEANSTD) {
        double s1 = 0.0, s2 = 0.0, N = (double)train->n * train->h * train->w, mean;
        size_t j, len = (size_t)train->n * train->h * train->w;
        for (j = 0; j < len; j++) { double v = train->pixels[j] / 255.0; s1 += v; s2 += v * v; }
        mean = s1 / N;
        m->pre.mean = (float)mean;
        m->pre.std = (float)sqrt(s2 / N - mean * mean > 1e-12 ? s2 / N - mean * mean : 1e-12);
    }
    for (i = 0; i < K; i++) t->class_w[i] = 1.0f;
    if (c->class_weighting == FER_WEIGHT_GIVEN) for (i = 0; i < K; i++) t->class_w[i] = c->class_weight[i];
    if (c->class_weighting == FER_WEIGHT_BALANCED) {
        int counts[FER_MAX_CLASSES] = { 0 };
        for (i = 0; i < train->n; i++) counts[train->labels[i]]++;
        fer_class_weights_balanced(counts, K, t->class_w);
    }
    t->steps_per_epoch = train->n / c->batch;
    t->best = -HUGE_VAL;
    t->n_ws = c->threads < c->batch ? c->threads : c->batch;
    t->shard_cap = (c->batch + t->n_ws - 1) / t->n_ws;
    in_size = fer__shape_size(m->input);
    if ((r = fer_optimizer_init(&t->opt, c->optimizer, m->n_params, c->schedule.lr, c->weight_decay, alloc_ctx)) != FER_OK ||
        (r = fer_swa_init(&t->swa, c->swa, c->swa_decay, arena, alloc_ctx)) != FER_OK) {
        fer__err(t->error, "train: cannot allocate the optimizer state");
        goto fail;
    }
    t->opt.momentum = c->momentum; t->opt.beta1 = c->beta1; t->opt.beta2 = c->beta2; t->opt.nesterov = c->nesterov;
    t->ws = (fer_workspace *)FER_MALLOC(sizeof(fer_workspace) * (size_t)t->n_ws, alloc_ctx);
    t->best_arena = (float *)FER_MALLOC(fer__mul(arena, sizeof(float)), alloc_ctx);
    t->no_decay = (unsigned char *)FER_MALLOC(m->n_params ? m->n_params : 1, alloc_ctx);
    t->x = (float *)FER_MALLOC(fer__mul(fer__mul((size_t)c->batch, in_size), sizeof(float)), alloc_ctx);
    t->dlogits = (float *)FER_MALLOC(fer__mul((size_t)c->batch * K, sizeof(float)), alloc_ctx);
    t->labels = (int *)FER_MALLOC(sizeof(int) * (size_t)c->batch, alloc_ctx);
    t->perm = (int *)FER_MALLOC(sizeof(int) * (size_t)train->n, alloc_ctx);
    t->shards = FER_MALLOC(sizeof(fer__shard) * (size_t)t->n_ws, alloc_ctx);
    r = FER_ERR_NOMEM;
    if (!t->ws || !t->best_arena || !t->no_decay || !t->x || !t->dlogits || !t->labels || !t->perm || !t->shards) {
        if (t->ws) FER_FREE(t->ws, alloc_ctx);
        t->ws = NULL;
        fer__err(t->error, "train: out of memory");
        goto fail;
    }
    memset(t->ws, 0, sizeof(fer_workspace) * (size_t)t->n_ws);
    for (i = 0; i < t->n_ws; i++)
        if ((r = fer_workspace_init(&t->ws[i], m, t->shard_cap, 1)) != FER_OK) {
            memcpy(t->error, t->ws[i].error, sizeof(t->error));
            goto fail;
        } else
            t->ws[i].input_grad = 0;   /* nothing reads d loss / d pixels */
    fer_model_no_decay_mask(m, t->no_decay);
    memcpy(t->best_arena, m->arena, sizeof(float) * arena);
    return FER_OK;
fail:
    fer_trainer_free(t);
    return r;
}


static uint64_t fer__sample_seed(uint64_t seed, int epoch, int idx)
{
    return fer__mix64(fer__mix64(fer__mix64(seed) ^ (uint64_t)(epoch + 1)) ^ (uint64_t)idx);
}

static void *fer__shard_run(void *p)
{
    fer__shard *s = (fer__shard *)p;
    fer_trainer *t = s->t;
    const fer_model *m = t->m;
    fer_workspace *ws = &t->ws[s->index];
    fer_augment none;
    const fer_augment *aug = s->augment ? &t->cfg.augment : &none;
    int C = m->input.c, H = m->input.h, W = m->input.w, K = m->n_classes, i, j, c;
    size_t in_size = (size_t)C * H * W, hw = (size_t)s->d->h * s->d->w;
    float *x = t->x + (size_t)s->begin * in_size, *dl = t->dlogits + (size_t)s->begin * K;
    int *lab = t->labels + s->begin;
    const float *y;
    fer_loss L;
    memset(&none, 0, sizeof(none));
    for (i = 0; i < s->n; i++) {
        int idx = t->perm[(size_t)s->step * t->cfg.batch + (size_t)s->begin + i];
        float *xi = x + (size_t)i * in_size;
        fer_augment_image(aug, s->d->pixels + (size_t)idx * hw, s->d->h, s->d->w, xi, H, W,
                          fer__sample_seed(t->cfg.seed, s->epoch, idx));
        fer_normalize(&m->pre, xi, (size_t)H * W);
        for (c = 1; c < C; c++) memcpy(xi + (size_t)c * H * W, xi, sizeof(float) * (size_t)H * W);
        lab[i] = s->d->labels[idx];
    }
    ws->dropout_seed = fer__mix64(fer__mix64(t->cfg.seed ^ 0xD7u) ^ (uint64_t)s->gstep) ^ (uint64_t)s->index;
    if ((s->r = fer_forward(m, ws, x, s->n, 1)) != FER_OK || s->forward_only) return NULL;
    y = fer_output(m, ws);
    L.label_smoothing = t->cfg.label_smoothing; L.focal_gamma = t->cfg.focal_gamma; L.class_weight = t->class_w;
    s->loss = fer_loss_eval(&L, y, lab, s->n, K, s->norm, dl);
    s->correct = 0;
    memset(s->tp, 0, sizeof(s->tp)); memset(s->pred, 0, sizeof(s->pred)); memset(s->sup, 0, sizeof(s->sup));
    for (i = 0; i < s->n; i++) {
        int best = 0;
        for (j = 1; j < K; j++) if (y[(size_t)i * K + j] > y[(size_t)i * K + best]) best = j;
        s->correct += best == lab[i];
        s->tp[best] += best == lab[i]; s->pred[best]++; s->sup[lab[i]]++;
    }
    fer_zero_grad(m, ws);
    s->r = fer_backward(m, ws, dl);
    return NULL;
}

static int fer__all_finite(const float *x, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) if (!(x[i] - x[i] == 0.0f)) return 0;
    return 1;
}

/* Names the layer where a non-finite value first appears: the first node whose
   output is not finite in some shard, else the last node (the first one the
   backward pass reached) whose parameter gradient is not finite. */
static void fer__name_nonfinite(fer_trainer *t, int epoch, int step, double loss)
{
    const fer_model *m = t->m;
    int i, s;
    for (i = 0; i < m->n_nodes; i++)
        for (s = 0; s < t->n_ws; s++) {
            const fer_workspace *ws = &t->ws[s];
            if (ws->tfuse[i] <= 0 &&   /* (a norm that writes the ReLU after it leaves its own buffer) */
                !fer__all_finite(ws->act + ws->act_off[i], (size_t)ws->n * fer__shape_size(m->nodes[i].out))) {
                fer__err(t->error, "train: epoch %d step %d: the output of node %d (%s, %dx%dx%d) is not finite "
                         "(loss %g); lower the learning rate or clip gradients", epoch + 1, step + 1, i,
                         fer__op_names[m->nodes[i].op], m->nodes[i].out.c, m->nodes[i].out.h, m->nodes[i].out.w, loss);
                return;
            }
        }
    for (i = m->n_nodes - 1; i >= 0; i--)
        if (m->nodes[i].p_len && !fer__all_finite(t->ws[0].pgrad + m->nodes[i].p_off, m->nodes[i].p_len)) {
            fer__err(t->error, "train: epoch %d step %d: the parameter gradient of node %d (%s) is not finite; "
                     "lower the learning rate or clip gradients", epoch + 1, step + 1, i, fer__op_names[m->nodes[i].op]);
            return;
        }
    fer__err(t->error, "train: epoch %d step %d: the loss is not finite (%g)", epoch + 1, step + 1, loss);
}

/* Splits batch `step` of the epoch's permutation into one shard per thread and
   runs them (augmented training passes, or forward passes for BN statistics). */
static fer_result fer__run_shards(fer_trainer *t, const fer_dataset *d, int epoch, int step, long gstep,
                                  float norm, int forward_only)
{
    fer__shard *sh = (fer__shard *)t->shards;
    int s, begin = 0;
    for (s = 0; s < t->n_ws; s++) {
        int cnt = (int)(((long)t->cfg.batch * (s + 1)) / t->n_ws) - begin;
        memset(&sh[s], 0, sizeof(sh[s]));
        sh[s].t = t; sh[s].d = d; sh[s].index = s; sh[s].begin = begin; sh[s].n = cnt;
        sh[s].epoch = epoch; sh[s].step = step; sh[s].gstep = gstep; sh[s].norm = norm;
        sh[s].augment = !forward_only; sh[s].forward_only = forward_only;
        begin += cnt;
    }
    fer__run_jobs(fer__shard_run, sh, sizeof(sh[0]), t->n_ws);
    for (s = 0; s < t->n_ws; s++)
        if (sh[s].r != FER_OK) { memcpy(t->error, t->ws[s].error, sizeof(t->error)); return sh[s].r; }
    return FER_OK;
}

/* One step over batch `step` of the epoch's permutation. */
static fer_result fer__train_step(fer_trainer *t, const fer_dataset *d, int epoch, int step, float lr,
                                  double *loss, int *correct, int *tp, int *pred, int *sup)
{
    fer__shard *sh = (fer__shard *)t->shards;
    fer_model *m = t->m;
    int s, i, B = t->cfg.batch;
    double norm = 0.0, L = 0.0, gn;
    fer_result r;
    for (i = 0; i < B; i++) norm += t->class_w[d->labels[t->perm[(size_t)step * B + i]]];
    if (!(norm > 0.0)) norm = 1.0;        /* a batch of zero-weight classes: no signal */
    if ((r = fer__run_shards(t, d, epoch, step, (long)epoch * t->steps_per_epoch + step, (float)norm, 0)) != FER_OK)
        return r;
    *correct = 0;
    for (s = 0; s < t->n_ws; s++) { L += sh[s].loss; *correct += sh[s].correct; }
    for (s = 1; s < t->n_ws; s++) fer_axpy(t->ws[0].isa, (int)m->n_params, 1.0f, t->ws[s].pgrad, t->ws[0].pgrad);
    *loss = L;
    gn = fer_clip_grad_norm(t->ws[0].pgrad, m->n_params, t->cfg.clip_norm);
    if (!(L - L == 0.0) || !(gn - gn == 0.0)) {
        fer__name_nonfinite(t, epoch, step, L / norm);
        return FER_ERR_NUMERIC;
    }
    t->opt.lr = lr;
    fer_optimizer_step(&t->opt, m->params, t->ws[0].pgrad, t->no_decay);
    fer_bn_update_running_pooled(m, t->ws, t->n_ws, -1.0f);
    for (s = 0; s < t->n_ws; s++)           /* a skipped step counts nothing */
        for (i = 0; i < m->n_classes; i++) { tp[i] += sh[s].tp[i]; pred[i] += sh[s].pred[i]; sup[i] += sh[s].sup[i]; }
    return FER_OK;
}

static void fer__shuffle(int *perm, int n, uint64_t seed)
{
    int i;
    for (i = 0; i < n; i++) perm[i] = i;
    for (i = n - 1; i > 0; i--) {       /* Fisher-Yates */
        int r = (int)(fer__uniform(&seed) * (float)(i + 1)), tmp;
        if (r > i) r = i;
        tmp = perm[i]; perm[i] = perm[r]; perm[r] = tmp;
    }
}

FERDEF fer_result fer_trainer_validate(fer_trainer *t, const fer_dataset *val, fer_epoch_stats *st)
{
    int K = t->m->n_classes;
    float *probs = (float *)FER_MALLOC(fer__mul((size_t)val->n * K, sizeof(float)), t->alloc_ctx);
    fer_metrics *mt = (fer_metrics *)FER_MALLOC(sizeof(fer_metrics), t->alloc_ctx);
    fer_result r = FER_ERR_NOMEM;
    if (!probs || !mt) fer__err(t->error, "train: out of memory for validation");
    else if ((r = fer_predict_dataset(t->m, val, (fer_tta)t->cfg.val_tta, t->cfg.threads, probs, NULL, t->error)) == FER_OK &&
             (r = fer_metrics_compute(mt, probs, val->labels, val->n, K, 0.5f, t->alloc_ctx)) != FER_OK)
        memcpy(t->error, mt->error, sizeof(t->error));
    if (r == FER_OK) { st->val_loss = mt->nll; st->val_acc = mt->accuracy; st->val_f1 = mt->macro_f1; }
    if (probs) FER_FREE(probs, t->alloc_ctx);
    if (mt) FER_FREE(mt, t->alloc_ctx);
    return r;
}

FERDEF fer_result fer_trainer_epoch(fer_trainer *t, const fer_dataset *train,
                                    const fer_dataset *val, fer_epoch_stats *st,
                                    fer_progress_fn progress, void *user)
{
    fer_model *m = t->m;
    int e = t->epoch, step, correct = 0, skipped = 0;
    int tp[FER_MAX_CLASSES] = { 0 }, pred[FER_MAX_CLASSES] = { 0 }, sup[FER_MAX_CLASSES] = { 0 };
    long seen = 0;
    double loss = 0.0, value, monitor;
    float lr = t->cfg.schedule.lr;
    fer_result r;
    memset(st, 0, sizeof(*st));
    st->val_loss = st->val_acc = st->val_f1 = NAN;
    if (!t->ws) { fer__err(t->error, "train: the trainer is not set up"); return FER_ERR_ARG; }
    if (t->stop || e >= t->cfg.epochs) { fer__err(t->error, "train: the run is over (epoch %d of %d%s)", e, t->cfg.epochs, t->stop ? ", stopped early" : ""); return FER_ERR_ARG; }
    if (train->h != m->pre.store_h || train->w != m->pre.store_w || train->n / t->cfg.batch != t->steps_per_epoch) {
        fer__err(t->error, "train: the training set changed since fer_trainer_init (%d images of %dx%d)", train->n, train->w, train->h);
        return FER_ERR_ARG;
    }
    if ((r = fer__trainer_data_ok(t, train, "training")) != FER_OK) return r;
    if (val && (r = fer__trainer_data_ok(t, val, "validation")) != FER_OK) return r;
    fer__shuffle(t->perm, train->n, fer__mix64(t->cfg.seed ^ 0x5EEDu) ^ (uint64_t)(e + 1));
    for (step = 0; step < t->steps_per_epoch; step++) {
        double L = 0.0;
        int c = 0;
        lr = (t->cfg.swa && t->cfg.swa_lr > 0.0f && e >= t->cfg.swa_start) ? t->cfg.swa_lr
             : fer_schedule_lr(&t->cfg.schedule, e, step, t->steps_per_epoch);
        r = fer__train_step(t, train, e, step, lr, &L, &c, tp, pred, sup);
        if (r == FER_ERR_NUMERIC && t->cfg.skip_nonfinite) { skipped++; continue; }
        if (r != FER_OK) return r;
        loss += L; correct += c; seen += t->cfg.batch;
        if (progress)
            progress(user, e + 1, step + 1, t->steps_per_epoch, loss / (double)seen, (double)correct / (double)seen);
    }
    if (skipped == t->steps_per_epoch) {
        char last[256];
        memcpy(last, t->error, sizeof(last));
        fer__err(t->error, "train: epoch %d: every step was non-finite and skipped (last: %.150s)", e + 1, last);
        return FER_ERR_NUMERIC;
    }
    st->epoch = e + 1;
    st->train_loss = loss / (double)seen;    /* weighted sum over weighted count when weighted */
    st->train_acc = (double)correct / (double)seen;
    {   /* macro F1 over the classes seen in the labels or the predictions, as in fer_metrics */
        double f1 = 0.0;
        int k, used = 0;
        for (k = 0; k < m->n_classes; k++) {
            if (!sup[k] && !pred[k]) continue;
            used++;
            if (tp[k]) f1 += 2.0 * tp[k] / (double)(pred[k] + sup[k]);
        }
        st->train_f1 = used ? f1 / used : 0.0;
    }
    st->lr = lr; st->skipped_steps = skipped;
    if (t->swa.kind && e >= t->cfg.swa_start) fer_swa_update(&t->swa, m->arena);
    if (val && (r = fer_trainer_validate(t, val, st)) != FER_OK) return r;
    /* larger is better for the best-epoch bookkeeping */
    value = !val ? -st->train_loss
            : t->cfg.monitor == FER_MONITOR_LOSS ? -st->val_loss
            : t->cfg.monitor == FER_MONITOR_F1 ? st->val_f1 : st->val_acc;
    monitor = val ? st->val_loss : st->train_loss;
    fer_schedule_epoch_end(&t->cfg.schedule, monitor);
    if (value > t->best + t->cfg.min_delta || (t->best_epoch == 0 && value == value)) {
        t->best = value; t->best_epoch = e + 1; t->bad_epochs = 0;
        memcpy(t->best_arena, m->arena, sizeof(float) * (m->n_params + m->n_buffers));
        st->improved = 1;
    } else t->bad_epochs++;
    if (t->cfg.early_stop > 0 && t->bad_epochs >= t->cfg.early_stop) t->stop = 1;
    st->stop = t->stop;
    t->epoch = e + 1;
    return FER_OK;
}

FERDEF fer_result fer_trainer_finish(fer_trainer *t, const fer_dataset *train)
{
    fer_model *m = t->m;
    size_t arena = m->n_params + m->n_buffers;
    int i, step, c;
    if (!t->ws) { fer__err(t->error, "train: the trainer is not set up"); return FER_ERR_ARG; }
    if (t->swa.kind == FER_SWA_NONE || t->swa.count == 0) {
        if (t->cfg.restore_best && t->best_epoch > 0) memcpy(m->arena, t->best_arena, sizeof(float) * arena);
        return FER_OK;
    }
    memcpy(m->arena, t->swa.avg, sizeof(float) * arena);
    if (t->swa.kind != FER_SWA_UNIFORM) return FER_OK;
    /* Recompute the BN statistics of the averaged weights (Izmailov et al.,
       bn_update): a cumulative mean over one un-augmented pass of train. */
    if (fer__trainer_data_ok(t, train, "training") != FER_OK) return FER_ERR_ARG;
    for (i = 0; i < m->n_nodes; i++)
        if (m->nodes[i].op == FER_OP_BN) {
            float *rm = m->buffers + m->nodes[i].b_off;
            for (c = 0; c < m->nodes[i].out.c; c++) { rm[c] = 0.0f; rm[m->nodes[i].out.c + c] = 1.0f; }
        }
    fer__shuffle(t->perm, train->n, fer__mix64(t->cfg.seed ^ 0xB1u));
    for (step = 0; step < train->n / t->cfg.batch; step++) {
        fer_result r = fer__run_shards(t, train, 0, step, step, 1.0f, 1);
        if (r != FER_OK) return r;
        fer_bn_update_running_pooled(m, t->ws, t->n_ws, 1.0f / (float)(step + 1));
    }
    return FER_OK;
}

/* --- 3.10 Metrics ------------------------------------------------------------------
   Classification metrics in one pass over the predictions plus one sort per class
   for the AUC; temperature scaling; batched evaluation with test-time augmentation;
   t-SNE, exact and Barnes-Hut. */

static int fer__argmax(const float *p, int k)   /* the first maximum, as argmax does */
{
    int j, b = 0;
    for (j = 1; j < k; j++) if (p[j] > p[b]) b = j;
    return b;
}

typedef struct fer__scored { float s; int pos; } fer__scored;
static int fer__cmp_scored(const void *a, const void *b)
{
    float x = ((const fer__scored *)a)->s, y = ((const fer__scored *)b)->s;
    return (x > y) - (x < y);
}

/* Mann-Whitney: AUC = (sum of the positives' ranks - P(P+1)/2) / (P N). Tied scores
   share the mean of their ranks, which makes it equal to the area under the ROC
   curve with each tied run drawn as one diagonal (the trapezoid rule). */
static double fer__auc(fer__scored *v, int n)
{
    double rank_sum = 0.0;
    long pos = 0, neg;
    int i = 0, j, t;
    qsort(v, (size_t)n, sizeof(*v), fer__cmp_scored);
    while (i < n) {
        double r;
        for (j = i; j < n && v[j].s == v[i].s; j++) {}
        r = 0.5 * (double)(i + 1 + j);            /* the mean of ranks i+1 .. j */
        for (t = i; t < j; t++) if (v[t].pos) { rank_sum += r; pos++; }
        i = j;
    }
    neg = n - pos;
    if (!pos || !neg) return NAN;
    return (rank_sum - 0.5 * (double)pos * (double)(pos + 1)) / ((double)pos * (double)neg);
}

/* Rejects what would make a metric meaningless, naming the first bad sample. */
static fer_result fer__check_scores(char *error, const char *who, const float *x, const int *labels,
                                    int n, int k)
{
    int i, j;
    if (n < 1 || k < 1 || k > FER_MAX_CLASSES || !x || !labels) {
        fer__err(error, "%s: %d samples of %d classes; need at least 1 sample and 1..%d classes",
                 who, n, k, FER_MAX_CLASSES);
        return FER_ERR_ARG;
    }
    for (i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] >= k) {
            fer__err(error, "%s: label %d of sample %d is not a class in 0..%d", who, labels[i], i, k - 1);
            return FER_ERR_ARG;
        }
        for (j = 0; j < k; j++)
            if (!(x[(size_t)i * k + j] - x[(size_t)i * k + j] == 0.0f)) {   /* NaN or infinite */
                fer__err(error, "%s: value %d of sample %d is not finite", who, j, i);
                return FER_ERR_NUMERIC;
            }
    }
    return FER_OK;
}

FERDEF fer_result fer_metrics_compute(fer_metrics *mt, const float *probs, const int *labels,
                                      int n, int k, float threshold, void *alloc_ctx)
{
    double conf_ok = 0.0, conf_bad = 0.0, auc_sum = 0.0;
    long correct = 0, top2 = 0, low = 0, low_ok = 0;
    int i, j, c, present = 0, n_auc = 0;
    size_t bytes;
    fer__scored *v;
    fer_result r;
    memset(mt, 0, sizeof(*mt));
    if ((r = fer__check_scores(mt->error, "metrics", probs, labels, n, k)) != FER_OK) return r;
    if (!(threshold >= 0.0f && threshold <= 1.0f)) {
        fer__err(mt->error, "metrics: confidence threshold %g is not in [0, 1]", (double)threshold);
        return FER_ERR_ARG;
    }
    bytes = fer__mul((size_t)n, sizeof(fer__scored));
    if (bytes == SIZE_MAX || !(v = (fer__scored *)FER_MALLOC(bytes, alloc_ctx))) {
        fer__err(mt->error, "metrics: cannot allocate %zu bytes for %d samples", bytes, n);
        return FER_ERR_NOMEM;
    }
    mt->n = n; mt->k = k; mt->threshold = threshold;
    for (i = 0; i < n; i++) {
        const float *p = probs + (size_t)i * k;
        int y = labels[i], pred = fer__argmax(p, k), rank = 0, ok = pred == y, b;
        double conf = p[pred];
        for (j = 0; j < k; j++) rank += p[j] > p[y] || (p[j] == p[y] && j < y);  /* argmax's order */
        correct += ok;
        top2 += rank < 2;
        mt->confusion[y][pred]++;
        if (ok) conf_ok += conf; else conf_bad += conf;
        mt->nll -= log(p[y] > 1e-12f ? (double)p[y] : 1e-12);
        if (conf < threshold) { low++; low_ok += ok; }
        b = (int)ceil(conf * FER_ECE_BINS) - 1;        /* bin b: (b/15, (b+1)/15] */
        b = b < 0 ? 0 : b >= FER_ECE_BINS ? FER_ECE_BINS - 1 : b;
        mt->bin_count[b]++; mt->bin_conf[b] += conf; mt->bin_acc[b] += ok;
    }
    for (c = 0; c < k; c++) {
        fer_class_metrics *cm = &mt->cls[c];
        int tp = mt->confusion[c][c];
        for (j = 0; j < k; j++) { cm->support += mt->confusion[c][j]; cm->predicted += mt->confusion[j][c]; }
        cm->precision = cm->predicted ? (double)tp / cm->predicted : 0.0;
        cm->recall = cm->support ? (double)tp / cm->support : 0.0;
        /* 2tp / (2tp + fp + fn): the harmonic mean, and 0 where it is undefined */
        cm->f1 = cm->support + cm->predicted ? 2.0 * tp / (double)(cm->support + cm->predicted) : 0.0;
        for (j = 0; j < k; j++)
            mt->confusion_norm[c][j] = cm->support ? (float)mt->confusion[c][j] / (float)cm->support : 0.0f;
        if (cm->support || cm->predicted) {
            present++;
            mt->macro_precision += cm->precision; mt->macro_recall += cm->recall; mt->macro_f1 += cm->f1;
        }
        mt->weighted_precision += cm->support * cm->precision;
        mt->weighted_recall += cm->support * cm->recall;
        mt->weighted_f1 += cm->support * cm->f1;
        for (i = 0; i < n; i++) { v[i].s = probs[(size_t)i * k + c]; v[i].pos = labels[i] == c; }
        cm->auc = fer__auc(v, n);
        if (cm->auc == cm->auc) { auc_sum += cm->auc; n_auc++; }
    }
    FER_FREE(v, alloc_ctx);
    mt->macro_precision /= present; mt->macro_recall /= present; mt->macro_f1 /= present;
    mt->weighted_precision /= n; mt->weighted_recall /= n; mt->weighted_f1 /= n;
    mt->macro_auc = n_auc ? auc_sum / n_auc : NAN;
    mt->accuracy = (double)correct / n;
    mt->top2_accuracy = (double)top2 / n;
    mt->nll /= n;
    mt->conf_correct = correct ? conf_ok / correct : NAN;
    mt->conf_incorrect = correct < n ? conf_bad / (n - correct) : NAN;
    mt->low_share = (double)low / n;
    mt->low_accuracy = low ? (double)low_ok / low : NAN;
    for (j = 0; j < FER_ECE_BINS; j++) {
        if (!mt->bin_count[j]) continue;
        mt->bin_conf[j] /= mt->bin_count[j];
        mt->bin_acc[j] /= mt->bin_count[j];
        mt->ece += (double)mt->bin_count[j] / n * fabs(mt->bin_acc[j] - mt->bin_conf[j]);
    }
    return FER_OK;
}

/* mean NLL of softmax(z * inv_t), shifted by the row maximum so exp cannot overflow */
static double fer__nll_scaled(const float *z, const int *labels, int n, int k, double inv_t)
{
    double total = 0.0;
    int i, j;
    for (i = 0; i < n; i++) {
        const float *r = z + (size_t)i * k;
        float mx = r[0];
        double sum = 0.0;
        for (j = 1; j < k; j++) if (r[j] > mx) mx = r[j];
        for (j = 0; j < k; j++) sum += exp(((double)r[j] - mx) * inv_t);
        total += log(sum) - ((double)r[labels[i]] - mx) * inv_t;
    }
    return total / n;
}

FERDEF fer_result fer_fit_temperature(const float *logits, const int *labels, int n, int k,
                                      float *temperature)
{
    const double g = 0.61803398874989485;      /* 1 / golden ratio */
    double a = log(0.05), b = log(20.0), c, d, fc, fd;
    char msg[256];
    int it;
    fer_result r = fer__check_scores(msg, "fit_temperature", logits, labels, n, k);
    if (r != FER_OK) return r;
    c = b - g * (b - a); d = a + g * (b - a);
    fc = fer__nll_scaled(logits, labels, n, k, exp(-c));
    fd = fer__nll_scaled(logits, labels, n, k, exp(-d));
    for (it = 0; it < 200 && b - a > 1e-7; it++) {
        if (fc < fd) { b = d; d = c; fd = fc; c = b - g * (b - a); fc = fer__nll_scaled(logits, labels, n, k, exp(-c)); }
        else         { a = c; c = d; fc = fd; d = a + g * (b - a); fd = fer__nll_scaled(logits, labels, n, k, exp(-d)); }
    }
    *temperature = (float)exp(0.5 * (a + b));
    return FER_OK;
}

FERDEF void fer_softmax_temperature(const float *logits, int n, int k, float temperature,
                                    float *probs)
{
    int i, j;
    for (i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * k;
        float *p = probs + (size_t)i * k, mx = z[0];
        double sum = 0.0;
        for (j = 1; j < k; j++) if (z[j] > mx) mx = z[j];
        for (j = 0; j < k; j++) sum += exp((double)(z[j] - mx) / temperature);
        for (j = 0; j < k; j++) p[j] = (float)(exp((double)(z[j] - mx) / temperature) / sum);
    }
}

FERDEF int fer_tta_views(fer_tta tta)
{
    return tta == FER_TTA_TENCROP ? 10 : tta == FER_TTA_FLIP ? 2 : 1;
}

FERDEF void fer_tta_size(const fer_model *m, fer_tta tta, int *h, int *w)
{
    int H = m->input.h, W = m->input.w, sh = m->pre.store_h, sw = m->pre.store_w;
    if (sh < H || sw < W) { sh = H; sw = W; }     /* as fer_preprocess reads it */
    if (tta == FER_TTA_TENCROP) {                 /* corners need a margin */
        if (sh == H) sh += 4;
        if (sw == W) sw += 4;
    }
    *h = sh; *w = sw;
}

/* View v of an sh x sw image as an h x w crop: TENCROP views 0-4 are the centre,
   top-left, top-right, bottom-left and bottom-right crops and 5-9 their mirrors;
   otherwise view 0 is the centre crop and view 1 its mirror. */
static void fer__tta_crop(const unsigned char *src, int sh, int sw, int h, int w, fer_tta tta,
                          int v, unsigned char *dst)
{
    int pos = tta == FER_TTA_TENCROP ? v % 5 : 0, mirror = tta == FER_TTA_TENCROP ? v / 5 : v;
    int oy = pos == 0 ? (sh - h) / 2 : pos <= 2 ? 0 : sh - h;
    int ox = pos == 0 ? (sw - w) / 2 : (pos == 1 || pos == 3) ? 0 : sw - w, y, x;
    for (y = 0; y < h; y++) {
        const unsigned char *row = src + (size_t)(y + oy) * sw + ox;
        for (x = 0; x < w; x++) dst[(size_t)y * w + x] = row[mirror ? w - 1 - x : x];
    }
}

static fer_result fer__predict_dataset(const fer_model *m, const fer_dataset *d, fer_tta tta, int n_threads,
                                      const float *calib, int n_calib, float *probs, float *logits, char *error)
{
    const int per_ws = 32;       /* views per workspace and round: bounds activation memory */
    int V = fer_tta_views(tta), K = m->n_classes, H = m->input.h, W = m->input.w;
    int bh, bw, chunk, n_ws, t, b, i, v, j;
    size_t in_size = (size_t)m->input.c * H * W, hw;
    float T = m->pre.temperature > 0.0f ? m->pre.temperature : 1.0f;
    fer_workspace ws[64];
    fer_model flat;
    float *in = NULL, *out = NULL;
    unsigned char *base = NULL, *crop = NULL;
    fer_result r = FER_OK;
    if (!m->finalized) { fer__err(error, "predict_dataset: the model is not finalized"); return FER_ERR_ARG; }
    if (tta != FER_TTA_NONE && tta != FER_TTA_FLIP && tta != FER_TTA_TENCROP) {
        fer__err(error, "predict_dataset: unknown test-time augmentation %d", (int)tta);
        return FER_ERR_ARG;
    }
    if (!d->pixels || d->n < 1 || d->h < 1 || d->w < 1) { fer__err(error, "predict_dataset: the data set is empty"); return FER_ERR_ARG; }
    n_ws = n_threads < 1 ? 1 : n_threads > 64 ? 64 : n_threads;
    chunk = per_ws * n_ws / V > 0 ? per_ws * n_ws / V : 1;   /* images per round */
    fer_tta_size(m, tta, &bh, &bw);
    hw = (size_t)d->h * d->w;
    memset(ws, 0, sizeof(ws));
    in = (float *)FER_MALLOC(fer__mul(fer__mul((size_t)chunk * V, in_size), sizeof(float)), m->alloc_ctx);
    out = (float *)FER_MALLOC(fer__mul((size_t)chunk * V * K, sizeof(float)), m->alloc_ctx);
    base = (unsigned char *)FER_MALLOC((size_t)bh * bw, m->alloc_ctx);
    crop = (unsigned char *)FER_MALLOC((size_t)H * W, m->alloc_ctx);
    if (!in || !out || !base || !crop) { fer__err(error, "predict_dataset: out of memory"); r = FER_ERR_NOMEM; goto done; }
    for (t = 0; t < n_ws; t++)   /* frozen: m is const, its weights stay as they are */
        if ((r = fer_workspace_init(&ws[t], m, per_ws, 0)) != FER_OK ||
            (r = calib ? fer_workspace_quantize(&ws[t], m, calib, n_calib) : fer_workspace_freeze(&ws[t], m)) != FER_OK) {
            memcpy(error, ws[t].error, sizeof(ws[t].error));
            goto done;
        }
    /* a view is already cropped to the input: preprocess it with no resize or crop */
    flat = *m;
    flat.pre.store_h = H; flat.pre.store_w = W;
    for (b = 0; b < d->n; b += chunk) {
        int cnt = d->n - b < chunk ? d->n - b : chunk;
        for (i = 0; i < cnt; i++) {
            const unsigned char *src = d->pixels + (size_t)(b + i) * hw;
            if (d->h != bh || d->w != bw) { fer_resize_gray(src, d->w, d->h, base, bw, bh); src = base; }
            for (v = 0; v < V; v++) {
                fer__tta_crop(src, bh, bw, H, W, tta, v, crop);
                fer_preprocess(&flat, crop, W, H, W, in + ((size_t)i * V + v) * in_size);
            }
        }
        if ((r = fer_forward_threads(m, ws, n_ws, in, cnt * V, out)) != FER_OK) {
            memcpy(error, ws[0].error, sizeof(ws[0].error));
            goto done;
        }
        for (i = 0; i < cnt; i++) {
            float *pr = probs + (size_t)(b + i) * K, *lg = logits ? logits + (size_t)(b + i) * K : NULL;
            for (j = 0; j < K; j++) { pr[j] = 0.0f; if (lg) lg[j] = 0.0f; }
            for (v = 0; v < V; v++) {
                const float *z = out + ((size_t)i * V + v) * K;
                float pv[FER_MAX_CLASSES];
                fer_softmax_temperature(z, 1, K, T, pv);
                for (j = 0; j < K; j++) {
                    pr[j] += pv[j] / (float)V;
                    if (lg) lg[j] += z[j] / (float)V;
                }
            }
        }
    }
done:
    for (t = 0; t < n_ws; t++) fer_workspace_free(&ws[t]);
    if (in) FER_FREE(in, m->alloc_ctx);
    if (out) FER_FREE(out, m->alloc_ctx);
    if (base) FER_FREE(base, m->alloc_ctx);
    if (crop) FER_FREE(crop, m->alloc_ctx);
    return r;
}
FERDEF fer_result fer_predict_dataset(const fer_model *m, const fer_dataset *d, fer_tta tta,
                                      int n_threads, float *probs, float *logits, char *error)
{
    return fer__predict_dataset(m, d, tta, n_threads, NULL, 0, probs, logits, error);
}
FERDEF fer_result fer_predict_dataset_int8(const fer_model *m, const fer_dataset *d, fer_tta tta,
                                           int n_threads, const float *calib, int n_calib, float *probs,
                                           float *logits, char *error)
{
    if (!calib || n_calib < 1) {
        fer__err(error, "predict_dataset_int8: %d calibration samples; give at least one", n_calib);
        return FER_ERR_ARG;
    }
    return fer__predict_dataset(m, d, tta, n_threads, calib, n_calib, probs, logits, error);
}

/* t-SNE. Shapes: x[n][d] input, y[n][2] output; the optimiser keeps y, its update
   and the per-coordinate gains in double. Affinities: exact, a dense p[n][n];
   Barnes-Hut, a symmetric sparse matrix in rows (row_start[n+1], col[], val[]). */
FERDEF void fer_tsne_defaults(fer_tsne_params *p)
{
    p->perplexity = 30.0f;
    p->iterations = 1000;
    p->learning_rate = 0.0f;
    p->theta = 0.5f;
    p->exact_max = 3000;
    p->seed = 1;
}

/* Conditional affinities of one point from its squared distances dist[m] to the
   candidates: p_j = exp(-beta dist_j) / sum, with beta bisected until the entropy
   is ln(perplexity). Distances are shifted by their minimum, which leaves p alone
   and keeps at least one exp() at 1. */
static void fer__tsne_row(const float *dist, int m, double log_perp, float *p)
{
    double beta, lo = 0.0, hi = -1.0, dmin = dist[0], mean = 0.0, sum = 1.0;
    int j, it;
    for (j = 1; j < m; j++) if (dist[j] < dmin) dmin = dist[j];
    for (j = 0; j < m; j++) mean += dist[j] - dmin;
    beta = mean > 0.0 ? m / mean : 1.0;
    for (it = 0; it < 200; it++) {
        double sdp = 0.0, h;
        sum = 0.0;
        for (j = 0; j < m; j++) {
            double e = exp(-beta * (dist[j] - dmin));
            p[j] = (float)e; sum += e; sdp += (dist[j] - dmin) * e;
        }
        h = log(sum) + beta * sdp / sum;
        if (fabs(h - log_perp) < 1e-5) break;
        if (h > log_perp) { lo = beta; beta = hi < 0.0 ? beta * 2.0 : 0.5 * (beta + hi); }
        else { hi = beta; beta = 0.5 * (lo + beta); }
    }
    for (j = 0; j < m; j++) p[j] = (float)(p[j] / sum);
}

/* Max-heap of the k nearest candidates of one row, by distance. */
static void fer__heap_sift(float *dist, int *idx, int k, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, big = i;
        float td; int ti;
        if (l < k && dist[l] > dist[big]) big = l;
        if (r < k && dist[r] > dist[big]) big = r;
        if (big == i) return;
        td = dist[i]; dist[i] = dist[big]; dist[big] = td;
        ti = idx[i]; idx[i] = idx[big]; idx[big] = ti;
        i = big;
    }
}

/* The quadtree of Barnes-Hut: each node a square, the sum of its points' positions
   and their count. Coincident points would split forever, so below FER__QT_DEPTH
   levels a leaf keeps several. leaf_of[i] is the leaf that holds point i. */
#define FER__QT_DEPTH 48
typedef struct fer__qnode {
    double cx, cy, hw;           /* centre and half-width of the square             */
    double sx, sy;               /* sum of the positions below                      */
    int count, point, leaf;      /* points below; the first point of a leaf        */
    int child[4];                /* quadrant (x >= cx) + 2 (y >= cy), -1 if absent */
} fer__qnode;
typedef struct fer__qtree {
    fer__qnode *nodes; int n_nodes, cap;
    int *leaf_of;
    void *alloc_ctx;
} fer__qtree;

static int fer__qt_new(fer__qtree *t, double cx, double cy, double hw)
{
    fer__qnode *nd;
    if (t->n_nodes == t->cap) {
        int cap = t->cap * 2;
        fer__qnode *nn = cap > t->cap ? (fer__qnode *)FER_MALLOC(fer__mul((size_t)cap, sizeof(*nn)), t->alloc_ctx) : NULL;
        if (!nn) return -1;
        memcpy(nn, t->nodes, sizeof(*nn) * (size_t)t->n_nodes);
        FER_FREE(t->nodes, t->alloc_ctx);
        t->nodes = nn; t->cap = cap;
    }
    nd = &t->nodes[t->n_nodes];
    nd->cx = cx; nd->cy = cy; nd->hw = hw; nd->sx = nd->sy = 0.0;
    nd->count = 0; nd->point = -1; nd->leaf = 1;
    nd->child[0] = nd->child[1] = nd->child[2] = nd->child[3] = -1;
    return t->n_nodes++;
}

/* the child of `node` in quadrant q, created when missing; -1 when out of memory */
static int fer__qt_child(fer__qtree *t, int node, int q)
{
    int c = t->nodes[node].child[q];
    if (c < 0) {
        double h = 0.5 * t->nodes[node].hw;
        c = fer__qt_new(t, t->nodes[node].cx + (q & 1 ? h : -h), t->nodes[node].cy + (q & 2 ? h : -h), h);
        if (c >= 0) { t->nodes[node].child[q] = c; t->nodes[node].leaf = 0; }
    }
    return c;
}

static int fer__qt_quad(const fer__qnode *nd, double x, double y)
{
    return (x >= nd->cx) + 2 * (y >= nd->cy);
}

static fer_result fer__qt_insert(fer__qtree *t, int i, const double *y)
{
    int node = 0, depth = 0;
    double px = y[2 * i], py = y[2 * i + 1];
    for (;;) {
        fer__qnode *nd = &t->nodes[node];
        nd->sx += px; nd->sy += py; nd->count++;
        if (nd->count == 1) { nd->point = i; t->leaf_of[i] = node; return FER_OK; }
        if (nd->leaf) {
            int old = nd->point, c;
            if (depth >= FER__QT_DEPTH) { t->leaf_of[i] = node; return FER_OK; }
            /* split: the resident point moves one level down */
            c = fer__qt_child(t, node, fer__qt_quad(nd, y[2 * old], y[2 * old + 1]));
            if (c < 0) return FER_ERR_NOMEM;
            t->nodes[c].sx = y[2 * old]; t->nodes[c].sy = y[2 * old + 1];
            t->nodes[c].count = 1; t->nodes[c].point = old; t->leaf_of[old] = c;
            t->nodes[node].point = -1;
        }
        node = fer__qt_child(t, node, fer__qt_quad(&t->nodes[node], px, py));
        if (node < 0) return FER_ERR_NOMEM;
        depth++;
    }
}

/* Repulsion on point i: sum over the others of q^2 (y_i - y_j) into rep[2] and of
   q = 1 / (1 + |y_i - y_j|^2) as the return value; a cell whose width is below
   theta times its distance counts as its points at their centre of mass. */
static double fer__qt_repulse(const fer__qtree *t, int i, const double *y, double theta, double *rep)
{
    int stack[4 * (FER__QT_DEPTH + 2)], top = 0;
    double z = 0.0;
    stack[top++] = 0;
    while (top) {
        const fer__qnode *nd = &t->nodes[stack[--top]];
        int cnt = nd->count - (nd->leaf && t->leaf_of[i] == (int)(nd - t->nodes)), q;
        double dx, dy, d2;
        if (cnt <= 0) continue;
        dx = y[2 * i] - nd->sx / nd->count; dy = y[2 * i + 1] - nd->sy / nd->count;
        d2 = dx * dx + dy * dy;
        if (nd->leaf || 4.0 * nd->hw * nd->hw < theta * theta * d2) {
            double qq = 1.0 / (1.0 + d2);
            z += cnt * qq;
            rep[0] += cnt * qq * qq * dx; rep[1] += cnt * qq * qq * dy;
        } else {
            for (q = 0; q < 4; q++) if (nd->child[q] >= 0) stack[top++] = nd->child[q];
        }
    }
    return z;
}

/* count * size bytes from the allocator, NULL when that overflows or fails */
static void *fer__alloc_array(size_t count, size_t size, void *alloc_ctx)
{
    size_t bytes = fer__mul(count ? count : 1, size);
    return bytes == SIZE_MAX ? NULL : FER_MALLOC(bytes, alloc_ctx);
}

typedef struct fer__coo { int r, c; float v; } fer__coo;
static int fer__cmp_coo(const void *a, const void *b)
{
    const fer__coo *x = (const fer__coo *)a, *y = (const fer__coo *)b;
    return x->r != y->r ? (x->r > y->r) - (x->r < y->r) : (x->c > y->c) - (x->c < y->c);
}

FERDEF fer_result fer_tsne(const float *x, int n, int d, const fer_tsne_params *p, float *y,
                           void *alloc_ctx, char *error)
{
    const int block = 64;        /* rows of distances computed per GEMM call */
    int exact, K, i, j, it, r0;
    double perp, lr, log_perp;
    uint64_t rng;
    float *xc = NULL, *norms = NULL, *dblock = NULL, *pack = NULL, *pd = NULL, *hd = NULL, *prow = NULL;
    int *hi = NULL, *row_start = NULL, *col = NULL;
    float *val = NULL;
    fer__coo *coo = NULL;
    double *Y = NULL, *U, *G, *grad, *rep;   /* [n][2] each, one allocation */
    fer__qtree qt;
    fer_result r = FER_OK;
    memset(&qt, 0, sizeof(qt));
    if (!x || !y || !p || n < 2 || d < 1 || n > (1 << 24) || d > (1 << 24)) {
        fer__err(error, "tsne: %d points of %d dimensions; need at least 2 points and 1 dimension", n, d);
        return FER_ERR_ARG;
    }
    if (!(p->perplexity > 0.0f) || p->iterations < 1 || p->iterations > 1000000 ||
        !(p->theta >= 0.0f && p->theta < 10.0f) || !(p->learning_rate >= 0.0f)) {
        fer__err(error, "tsne: perplexity %g, iterations %d, theta %g or learning rate %g out of range",
                 (double)p->perplexity, p->iterations, (double)p->theta, (double)p->learning_rate);
        return FER_ERR_ARG;
    }
    for (i = 0; i < n; i++)
        for (j = 0; j < d; j++)
            if (!(x[(size_t)i * d + j] - x[(size_t)i * d + j] == 0.0f)) {
                fer__err(error, "tsne: value %d of point %d is not finite", j, i);
                return FER_ERR_NUMERIC;
            }
    exact = n <= p->exact_max;
    perp = p->perplexity;
    if (perp > (n - 1) / 3.0) perp = (n - 1) / 3.0;
    if (perp < 1.0) perp = 1.0;
    log_perp = log(perp);
    K = exact ? n - 1 : (int)(3.0 * perp) < n - 1 ? (int)(3.0 * perp) : n - 1;
    lr = p->learning_rate > 0.0f ? p->learning_rate : (n / 48.0 > 50.0 ? n / 48.0 : 50.0);

    xc = (float *)fer__alloc_array(fer__mul((size_t)n, (size_t)d), sizeof(float), alloc_ctx);
    norms = (float *)fer__alloc_array((size_t)n, sizeof(float), alloc_ctx);
    dblock = (float *)fer__alloc_array(fer__mul(block, (size_t)n), sizeof(float), alloc_ctx);
    pack = (float *)fer__alloc_array(fer_gemm_pack_floats(), sizeof(float), alloc_ctx);
    prow = (float *)fer__alloc_array((size_t)n, sizeof(float), alloc_ctx);
    hd = (float *)fer__alloc_array((size_t)n, sizeof(float), alloc_ctx);
    hi = (int *)fer__alloc_array((size_t)n, sizeof(int), alloc_ctx);
    Y = (double *)fer__alloc_array(10 * (size_t)n, sizeof(double), alloc_ctx);
    if (exact) pd = (float *)fer__alloc_array(fer__mul((size_t)n, (size_t)n), sizeof(float), alloc_ctx);
    else coo = (fer__coo *)fer__alloc_array(fer__mul(2 * (size_t)n, (size_t)K), sizeof(fer__coo), alloc_ctx);
    if (!xc || !norms || !dblock || !pack || !prow || !hd || !hi || !Y || (exact ? !pd : !coo)) goto nomem;
    U = Y + 2 * (size_t)n; G = U + 2 * (size_t)n; grad = G + 2 * (size_t)n; rep = grad + 2 * (size_t)n;

    /* centred data (less cancellation in |a|^2 + |b|^2 - 2ab), its squared norms */
    for (j = 0; j < d; j++) {
        double mean = 0.0;
        for (i = 0; i < n; i++) mean += x[(size_t)i * d + j];
        mean /= n;
        for (i = 0; i < n; i++) xc[(size_t)i * d + j] = (float)(x[(size_t)i * d + j] - mean);
    }
    for (i = 0; i < n; i++) {
        double s = 0.0;
        for (j = 0; j < d; j++) s += (double)xc[(size_t)i * d + j] * xc[(size_t)i * d + j];
        norms[i] = (float)s;
    }
    /* squared distances, `block` rows at a time, each row turned into affinities */
    for (r0 = 0; r0 < n; r0 += block) {
        int rows = n - r0 < block ? n - r0 : block, rr;
        fer_gemm(fer_cpu_best_isa(), 0, 1, rows, n, d, xc + (size_t)r0 * d, d, xc, d, dblock, n, 0, pack);
        for (rr = 0; rr < rows; rr++) {
            int row = r0 + rr, m = 0;
            float *dr = dblock + (size_t)rr * n;
            for (j = 0; j < n; j++) {
                float dd = norms[row] + norms[j] - 2.0f * dr[j];
                dr[j] = dd > 0.0f ? dd : 0.0f;
            }
            if (exact) {
                for (j = 0; j < n; j++) if (j != row) { hd[m] = dr[j]; hi[m++] = j; }
            } else {                 /* the K nearest, through a max-heap */
                for (j = 0; j < n; j++) {
                    if (j == row) continue;
                    if (m < K) {
                        int c = m++;
                        hd[c] = dr[j]; hi[c] = j;
                        while (c > 0 && hd[(c - 1) / 2] < hd[c]) {
                            int pp = (c - 1) / 2, ti = hi[pp];
                            float td = hd[pp];
                            hd[pp] = hd[c]; hi[pp] = hi[c]; hd[c] = td; hi[c] = ti; c = pp;
                        }
                    } else if (dr[j] < hd[0]) { hd[0] = dr[j]; hi[0] = j; fer__heap_sift(hd, hi, K, 0); }
                }
            }
            fer__tsne_row(hd, m, log_perp, prow);
            if (exact) {
                pd[(size_t)row * n + row] = 0.0f;
                for (j = 0; j < m; j++) pd[(size_t)row * n + hi[j]] = prow[j];
            } else {
                for (j = 0; j < m; j++) {
                    fer__coo *e = coo + 2 * ((size_t)row * K + j);
                    e[0].r = row; e[0].c = hi[j]; e[0].v = prow[j];
                    e[1].r = hi[j]; e[1].c = row; e[1].v = prow[j];
                }
            }
        }
    }
    /* p_ij = (p_j|i + p_i|j) / 2n */
    if (exact) {
        for (i = 0; i < n; i++)
            for (j = i + 1; j < n; j++) {
                float s = (pd[(size_t)i * n + j] + pd[(size_t)j * n + i]) / (2.0f * n);
                pd[(size_t)i * n + j] = pd[(size_t)j * n + i] = s;
            }
    } else {
        size_t total = 2 * (size_t)n * K, e, out = 0;
        qsort(coo, total, sizeof(*coo), fer__cmp_coo);
        for (e = 0; e < total; e++) {   /* merge duplicates in place */
            if (out && coo[out - 1].r == coo[e].r && coo[out - 1].c == coo[e].c) coo[out - 1].v += coo[e].v;
            else coo[out++] = coo[e];
        }
        row_start = (int *)fer__alloc_array((size_t)n + 1, sizeof(int), alloc_ctx);
        col = (int *)fer__alloc_array(out, sizeof(int), alloc_ctx);
        val = (float *)fer__alloc_array(out, sizeof(float), alloc_ctx);
        if (!row_start || !col || !val) goto nomem;
        for (i = 0; i <= n; i++) row_start[i] = 0;
        for (e = 0; e < out; e++) { row_start[coo[e].r + 1]++; col[e] = coo[e].c; val[e] = coo[e].v / (2.0f * n); }
        for (i = 0; i < n; i++) row_start[i + 1] += row_start[i];
        FER_FREE(coo, alloc_ctx); coo = NULL;
        qt.alloc_ctx = alloc_ctx;
        qt.cap = 4 * n + 16;
        qt.nodes = (fer__qnode *)fer__alloc_array((size_t)qt.cap, sizeof(fer__qnode), alloc_ctx);
        qt.leaf_of = (int *)fer__alloc_array((size_t)n, sizeof(int), alloc_ctx);
        if (!qt.nodes || !qt.leaf_of) goto nomem;
    }
    /* initial positions N(0, 1e-4^2) by Box-Muller; unit gains, no momentum yet */
    rng = p->seed;
    for (i = 0; i < 2 * n; i += 2) {
        double u1 = fer__uniform(&rng) + 1e-9, u2 = fer__uniform(&rng), rad = 1e-4 * sqrt(-2.0 * log(u1));
        Y[i] = rad * cos(6.283185307179586 * u2); Y[i + 1] = rad * sin(6.283185307179586 * u2);
    }
    for (i = 0; i < 2 * n; i++) { U[i] = 0.0; G[i] = 1.0; }
    for (it = 0; it < p->iterations; it++) {
        double exag = it < 250 ? 12.0 : 1.0, mom = it < 250 ? 0.5 : 0.8, z = 0.0, mx = 0.0, my = 0.0;
        for (i = 0; i < 2 * n; i++) grad[i] = 0.0;
        /* dC/dy_i = 4 (sum_j p_ij q_ij (y_i - y_j) - sum_j q_ij^2 (y_i - y_j) / Z) with
           q_ij = 1 / (1 + |y_i - y_j|^2) and Z = sum over all pairs of q: grad collects
           the attraction, rep the repulsion, and Z is known only once both are done */
        if (exact) {
            for (i = 0; i < 2 * n; i++) rep[i] = 0.0;
            for (i = 0; i < n; i++) {
                const float *pr = pd + (size_t)i * n;
                for (j = i + 1; j < n; j++) {
                    double dx = Y[2 * i] - Y[2 * j], dy = Y[2 * i + 1] - Y[2 * j + 1];
                    double q = 1.0 / (1.0 + dx * dx + dy * dy), a = exag * pr[j] * q, b = q * q;
                    z += 2.0 * q;
                    grad[2 * i] += a * dx; grad[2 * i + 1] += a * dy;
                    grad[2 * j] -= a * dx; grad[2 * j + 1] -= a * dy;
                    rep[2 * i] += b * dx; rep[2 * i + 1] += b * dy;
                    rep[2 * j] -= b * dx; rep[2 * j + 1] -= b * dy;
                }
            }
            for (i = 0; i < 2 * n; i++) grad[i] = 4.0 * (grad[i] - rep[i] / z);
        } else {
            double x0 = Y[0], x1 = Y[0], y0 = Y[1], y1 = Y[1];
            for (i = 1; i < n; i++) {
                if (Y[2 * i] < x0) x0 = Y[2 * i];
                if (Y[2 * i] > x1) x1 = Y[2 * i];
                if (Y[2 * i + 1] < y0) y0 = Y[2 * i + 1];
                if (Y[2 * i + 1] > y1) y1 = Y[2 * i + 1];
            }
            qt.n_nodes = 0;
            fer__qt_new(&qt, 0.5 * (x0 + x1), 0.5 * (y0 + y1),
                        0.5 * (x1 - x0 > y1 - y0 ? x1 - x0 : y1 - y0) * (1.0 + 1e-6) + 1e-12);
            for (i = 0; i < n; i++)
                if (fer__qt_insert(&qt, i, Y) != FER_OK) goto nomem;
            for (i = 0; i < n; i++) {
                int e;
                rep[2 * i] = rep[2 * i + 1] = 0.0;
                z += fer__qt_repulse(&qt, i, Y, p->theta, rep + 2 * i);
                for (e = row_start[i]; e < row_start[i + 1]; e++) {
                    double dx = Y[2 * i] - Y[2 * col[e]], dy = Y[2 * i + 1] - Y[2 * col[e] + 1];
                    double a = exag * val[e] / (1.0 + dx * dx + dy * dy);
                    grad[2 * i] += a * dx; grad[2 * i + 1] += a * dy;
                }
            }
            for (i = 0; i < 2 * n; i++) grad[i] = 4.0 * (grad[i] - rep[i] / z);
        }
        /* delta-bar-delta gains (Jacobs 1988), as the reference implementation */
        for (i = 0; i < 2 * n; i++) {
            G[i] = (grad[i] > 0.0) != (U[i] > 0.0) ? G[i] + 0.2 : G[i] * 0.8;
            if (G[i] < 0.01) G[i] = 0.01;
            U[i] = mom * U[i] - lr * G[i] * grad[i];
            Y[i] += U[i];
        }
        for (i = 0; i < n; i++) { mx += Y[2 * i]; my += Y[2 * i + 1]; }
        for (i = 0; i < n; i++) { Y[2 * i] -= mx / n; Y[2 * i + 1] -= my / n; }
    }
    for (i = 0; i < 2 * n; i++) y[i] = (float)Y[i];
    goto done;
nomem:
    fer__err(error, "tsne: out of memory for %d points of %d dimensions", n, d);
    r = FER_ERR_NOMEM;
done:
    {
        void *bufs[15];
        bufs[0] = xc; bufs[1] = norms; bufs[2] = dblock; bufs[3] = pack; bufs[4] = prow;
        bufs[5] = hd; bufs[6] = hi; bufs[7] = pd; bufs[8] = coo; bufs[9] = row_start;
        bufs[10] = col; bufs[11] = val; bufs[12] = Y; bufs[13] = qt.nodes; bufs[14] = qt.leaf_of;
        for (i = 0; i < 15; i++) if (bufs[i]) FER_FREE(bufs[i], alloc_ctx);
    }
    return r;
}

/* --- 3.11 Model file (.fer) and training checkpoints (.ferc) ------------------------
   Version 1 layout, all fields little-endian:
     0   "FERM"                    magic
     4   u32 version (1)
     8   u32 n_nodes, u32 n_classes, u32 in_c, in_h, in_w
     28  u64 n_params, u64 n_buffers
     44  char arch[32]
     76  preprocessing: u32 norm, f32 mean, f32 std, u32 crop_h, crop_w, store_h,
         store_w, f32 temperature                                      (32 bytes)
     108 char class_names[n_classes][32]
         nodes[n_nodes], 20 x u32 each: op, n_in, in[4], units, kh, kw, sh, sw, ph, pw,
           groups, bias, act, share (i32), alpha, eps, momentum (f32 bits)
         f32 params[n_params], f32 buffers[n_buffers]
         u32 CRC-32 (IEEE) of every byte before it
   The loader rebuilds the graph through the builder calls, so a file gets exactly
   the shape checks a program gets, then checks the parameter count matches. The
   parameters (and buffers) are each node's slice in node order, as the rebuilt
   model lays them out; the saver runs the loader's preprocessing check, so every
   file it writes loads. */

#define FER__FILE_VERSION 1u
#define FER__HDR_BYTES 108u
#define FER__NODE_FIELDS 20u
#define FER__MAX_VALUES ((uint64_t)1 << 34)    /* params or buffers in a file, as the builder allows */

FERDEF uint32_t fer_crc32(const void *buf, size_t len)
{
    const unsigned char *p = (const unsigned char *)buf;
    uint32_t crc = 0xFFFFFFFFu;
    size_t i;
    int k;
    for (i = 0; i < len; i++) {
        crc ^= p[i];
        for (k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static void fer__put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16); p[3] = (unsigned char)(v >> 24);
}
static uint32_t fer__get32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint32_t fer__fbits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float fer__bitsf(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static int fer__finite(float v) { return v == v && v <= FLT_MAX && v >= -FLT_MAX; }

/* File size in 64 bits, so that no count a header can hold overflows it. */
static uint64_t fer__file_size(uint64_t n_nodes, uint64_t n_classes, uint64_t n_params,
                               uint64_t n_buffers)
{
    return FER__HDR_BYTES + n_classes * FER_NAME_LEN + n_nodes * 4 * FER__NODE_FIELDS +
           (n_params + n_buffers) * 4 + 4;
}

/* The parameters and buffers a node has in a file: what the loader's builder call
   reserves for it. An identity node that fer_model_fold_bn left in place of a
   batch norm keeps its old arena slice, but rebuilds with none, so it has none. */
static size_t fer__file_plen(const fer_node *nd) { return nd->op == FER_OP_IDENTITY ? 0 : nd->p_len; }
static size_t fer__file_blen(const fer_node *nd) { return nd->op == FER_OP_IDENTITY ? 0 : nd->b_len; }

/* Checks the 32 preprocessing bytes at offset 76. 0 if valid, else 1 with the
   problem in err (256 bytes). Save and load both run it. */
static int fer__preproc_bad(const unsigned char *q, char *err)
{
    uint32_t norm = fer__get32(q), crop_h = fer__get32(q + 12), crop_w = fer__get32(q + 16);
    uint32_t store_h = fer__get32(q + 20), store_w = fer__get32(q + 24);
    float mean = fer__bitsf(fer__get32(q + 4)), sd = fer__bitsf(fer__get32(q + 8));
    float temp = fer__bitsf(fer__get32(q + 28));
    if (norm > FER_NORM_MEANSTD)
        fer__err(err, "preprocessing: norm mode %u (0..%d allowed)", norm, (int)FER_NORM_MEANSTD);
    else if (!(mean > -1e6f && mean < 1e6f) || !(sd >= 0.0f && sd < 1e6f) ||
             (norm == FER_NORM_MEANSTD && !(sd > 0.0f)))
        fer__err(err, "preprocessing: mean %g, std %g out of range (need |mean| < 1e6, %s std < 1e6)",
                 (double)mean, (double)sd, norm == FER_NORM_MEANSTD ? "0 <" : "0 <=");
    else if (!(temp > 0.0f && temp < 1e6f))
        fer__err(err, "preprocessing: temperature %g is not in (0, 1e6)", (double)temp);
    else if (store_h > FER_MAX_DIM || store_w > FER_MAX_DIM)
        fer__err(err, "preprocessing: stored size %ux%u is larger than %d", store_h, store_w, FER_MAX_DIM);
    else if (crop_h > store_h || crop_w > store_w)
        fer__err(err, "preprocessing: crop %ux%u is larger than the stored size %ux%u",
                 crop_h, crop_w, store_h, store_w);
    else
        return 0;
    return 1;
}

FERDEF fer_result fer_model_save_mem(fer_model *m, void **out, size_t *out_len, void *alloc_ctx)
{
    size_t k, np = 0, nb = 0;
    uint64_t len64;
    unsigned char *b, *p;
    int i;
    *out = NULL; *out_len = 0;
    if (!m->finalized) { fer__err(m->error, "save: the model is not finalized"); return FER_ERR_ARG; }
    for (i = 0; i < m->n_nodes; i++) {
        const fer_node *nd = &m->nodes[i];
        for (k = 0; k < fer__file_plen(nd); k++)
            if (!fer__finite(m->params[nd->p_off + k])) {
                fer__err(m->error, "save: parameter %zu (node %d, %s) is not finite; refusing to write it",
                         nd->p_off + k, i, fer__op_names[nd->op]);
                return FER_ERR_NUMERIC;
            }
        for (k = 0; k < fer__file_blen(nd); k++)
            if (!fer__finite(m->buffers[nd->b_off + k])) {
                fer__err(m->error, "save: buffer value %zu (node %d, %s) is not finite; refusing to write it",
                         nd->b_off + k, i, fer__op_names[nd->op]);
                return FER_ERR_NUMERIC;
            }
        np += fer__file_plen(nd);
        nb += fer__file_blen(nd);
    }
    len64 = fer__file_size((uint64_t)m->n_nodes, (uint64_t)m->n_classes, (uint64_t)np, (uint64_t)nb);
    if (len64 > (uint64_t)SIZE_MAX || !(b = (unsigned char *)FER_MALLOC((size_t)len64, alloc_ctx))) {
        fer__err(m->error, "save: cannot allocate %llu bytes", (unsigned long long)len64);
        return FER_ERR_NOMEM;
    }
    memset(b, 0, (size_t)len64);
    memcpy(b, "FERM", 4);
    fer__put32(b + 4, FER__FILE_VERSION);
    fer__put32(b + 8, (uint32_t)m->n_nodes);
    fer__put32(b + 12, (uint32_t)m->n_classes);
    fer__put32(b + 16, (uint32_t)m->input.c);
    fer__put32(b + 20, (uint32_t)m->input.h);
    fer__put32(b + 24, (uint32_t)m->input.w);
    fer__put32(b + 28, (uint32_t)((uint64_t)np & 0xFFFFFFFFu));
    fer__put32(b + 32, (uint32_t)((uint64_t)np >> 32));
    fer__put32(b + 36, (uint32_t)((uint64_t)nb & 0xFFFFFFFFu));
    fer__put32(b + 40, (uint32_t)((uint64_t)nb >> 32));
    memcpy(b + 44, m->arch, FER_NAME_LEN);
    b[44 + FER_NAME_LEN - 1] = 0;
    fer__put32(b + 76, (uint32_t)m->pre.norm);
    fer__put32(b + 80, fer__fbits(m->pre.mean));
    fer__put32(b + 84, fer__fbits(m->pre.std));
    fer__put32(b + 88, (uint32_t)m->pre.crop_h);
    fer__put32(b + 92, (uint32_t)m->pre.crop_w);
    fer__put32(b + 96, (uint32_t)m->pre.store_h);
    fer__put32(b + 100, (uint32_t)m->pre.store_w);
    fer__put32(b + 104, fer__fbits(m->pre.temperature));
    {
        char why[256];
        if (fer__preproc_bad(b + 76, why)) {
            FER_FREE(b, alloc_ctx);
            fer__err(m->error, "save: %.240s", why);
            return FER_ERR_ARG;
        }
    }
    p = b + FER__HDR_BYTES;
    for (i = 0; i < m->n_classes; i++, p += FER_NAME_LEN) {
        memcpy(p, m->class_names[i], FER_NAME_LEN);
        p[FER_NAME_LEN - 1] = 0;
    }
    for (i = 0; i < m->n_nodes; i++, p += 4 * FER__NODE_FIELDS) {
        const fer_node *nd = &m->nodes[i];
        uint32_t f[FER__NODE_FIELDS];
        int j;
        f[0] = (uint32_t)nd->op; f[1] = (uint32_t)nd->n_in;
        for (j = 0; j < FER_MAX_INPUTS; j++) f[2 + j] = (uint32_t)(j < nd->n_in ? nd->in[j] : 0);
        f[6] = (uint32_t)nd->out.c; f[7] = (uint32_t)nd->kh; f[8] = (uint32_t)nd->kw;
        f[9] = (uint32_t)nd->sh; f[10] = (uint32_t)nd->sw; f[11] = (uint32_t)nd->ph;
        f[12] = (uint32_t)nd->pw; f[13] = (uint32_t)nd->groups; f[14] = (uint32_t)nd->bias;
        f[15] = (uint32_t)nd->act; f[16] = (uint32_t)nd->share;
        /* the floats only where they mean something, so that a batch norm folded
           into an identity is written as the identity the loader rebuilds */
        f[17] = nd->op == FER_OP_LEAKY_RELU || nd->op == FER_OP_DROPOUT ? fer__fbits(nd->alpha) : 0;
        f[18] = nd->op == FER_OP_BN ? fer__fbits(nd->eps) : 0;
        f[19] = nd->op == FER_OP_BN ? fer__fbits(nd->momentum) : 0;
        for (j = 0; j < (int)FER__NODE_FIELDS; j++) fer__put32(p + 4 * j, f[j]);
    }
    for (i = 0; i < m->n_nodes; i++)
        for (k = 0; k < fer__file_plen(&m->nodes[i]); k++, p += 4)
            fer__put32(p, fer__fbits(m->params[m->nodes[i].p_off + k]));
    for (i = 0; i < m->n_nodes; i++)
        for (k = 0; k < fer__file_blen(&m->nodes[i]); k++, p += 4)
            fer__put32(p, fer__fbits(m->buffers[m->nodes[i].b_off + k]));
    fer__put32(p, fer_crc32(b, (size_t)len64 - 4));
    *out = b;
    *out_len = (size_t)len64;
    return FER_OK;
}

static int fer__name_ok(const unsigned char *p)
{
    int i;
    for (i = 0; i < FER_NAME_LEN; i++) if (!p[i]) return 1;
    return 0;
}

/* Rebuilds node i from its record; -1 (with m->error set) if the record is invalid.
   Fields are range-checked here before any builder arithmetic sees them. */
static int fer__load_node(fer_model *m, const uint32_t *f, int i)
{
    int op = (int)f[0], n_in = (int)f[1], in[FER_MAX_INPUTS], j, id = -1;
    int units = (int)f[6], kh = (int)f[7], kw = (int)f[8], sh = (int)f[9], sw = (int)f[10];
    int ph = (int)f[11], pw = (int)f[12], groups = (int)f[13], bias = (int)f[14], act = (int)f[15];
    int share = (int)f[16];
    float alpha = fer__bitsf(f[17]), eps = fer__bitsf(f[18]), mom = fer__bitsf(f[19]);
    static const signed char arity[FER_OP_COUNT] = { 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, -1, 1, 1 };
    if (f[0] >= FER_OP_COUNT)
        return fer__fail(m, FER_ERR_FORMAT, "node %d: unknown operation %u", i, f[0]);
    if (op == FER_OP_INPUT)
        return fer__fail(m, FER_ERR_FORMAT, "node %d: only node 0 may be the input", i);
    if (f[1] > FER_MAX_INPUTS || n_in < 1 || (arity[op] > 0 && n_in != arity[op]))
        return fer__fail(m, FER_ERR_FORMAT, "node %d (%s): %u inputs, expected %s%d", i,
                         fer__op_names[op], f[1], arity[op] > 0 ? "" : "1 to ",
                         arity[op] > 0 ? arity[op] : FER_MAX_INPUTS);
    for (j = 0; j < n_in; j++) {
        in[j] = (int)f[2 + j];
        if (f[2 + j] >= (uint32_t)i)
            return fer__fail(m, FER_ERR_FORMAT, "node %d (%s): input %u is not an earlier node", i,
                             fer__op_names[op], f[2 + j]);
    }
    if (bias != 0 && bias != 1)
        return fer__fail(m, FER_ERR_FORMAT, "node %d (%s): bias flag %u", i, fer__op_names[op], f[14]);
    if ((act != 0 && act != FER_OP_RELU && act != FER_OP_RELU6) || (act && op != FER_OP_CONV))
        return fer__fail(m, FER_ERR_FORMAT, "node %d (%s): fused activation %u", i, fer__op_names[op], f[15]);
    if (share < -1 || (share != -1 && op != FER_OP_DENSE))
        return fer__fail(m, FER_ERR_FORMAT, "node %d (%s): shares node %d", i, fer__op_names[op], share);
    if (!fer__finite(alpha) || !fer__finite(eps) || !fer__finite(mom))
        return fer__fail(m, FER_ERR_FORMAT, "node %d (%s): alpha %g, eps %g, momentum %g not all finite",
                         i, fer__op_names[op], (double)alpha, (double)eps, (double)mom);
    switch (op) {
    case FER_OP_CONV:
        if (kh > FER_MAX_DIM || kw > FER_MAX_DIM || sh > FER_MAX_DIM || sw > FER_MAX_DIM ||
            ph < 0 || pw < 0 || ph > FER_MAX_DIM || pw > FER_MAX_DIM)
            return fer__fail(m, FER_ERR_FORMAT, "node %d (conv): kernel %dx%d, stride %dx%d or pad %dx%d "
                             "out of range", i, kh, kw, sh, sw, ph, pw);
        id = fer__conv_full(m, in[0], units, kh, kw, sh, sw, ph, pw, groups, bias);
        if (id >= 0) m->nodes[id].act = act;
        break;
    case FER_OP_BN:
        if (!(eps > 0.0f && eps < 1.0f) || !(mom >= 0.0f && mom <= 1.0f))
            return fer__fail(m, FER_ERR_FORMAT, "node %d (batchnorm): eps %g or momentum %g out of range",
                             i, (double)eps, (double)mom);
        id = fer_bn(m, in[0]);
        if (id >= 0) { m->nodes[id].eps = eps; m->nodes[id].momentum = mom; }
        break;
    case FER_OP_RELU: case FER_OP_RELU6: case FER_OP_PRELU: case FER_OP_SIGMOID: case FER_OP_IDENTITY:
        id = fer_act(m, in[0], (fer_op)op); break;
    case FER_OP_LEAKY_RELU: id = fer_leaky_relu(m, in[0], alpha); break;
    case FER_OP_SOFTMAX: id = fer_softmax(m, in[0]); break;
    case FER_OP_MAXPOOL: case FER_OP_AVGPOOL:
        if (kh != kw || sh != sw || ph != pw)
            return fer__fail(m, FER_ERR_FORMAT, "node %d (%s): non-square window", i, fer__op_names[op]);
        if (kh < 1 || kh > FER_MAX_DIM || sh < 1 || sh > FER_MAX_DIM || ph < 0 || ph > FER_MAX_DIM)
            return fer__fail(m, FER_ERR_FORMAT, "node %d (%s): window %d, stride %d or pad %d out of range",
                             i, fer__op_names[op], kh, sh, ph);
        id = fer__pool(m, op, in[0], kh, sh, ph); break;
    case FER_OP_GAP: id = fer_gap(m, in[0]); break;
    case FER_OP_GMP: id = fer_gmp(m, in[0]); break;
    case FER_OP_DENSE: id = share >= 0 ? fer_dense_shared(m, in[0], share) : fer_dense(m, in[0], units, bias); break;
    case FER_OP_DROPOUT:
        if (!(alpha >= 0.0f && alpha < 1.0f))
            return fer__fail(m, FER_ERR_FORMAT, "node %d (dropout): rate %g is not in [0, 1)", i, (double)alpha);
        id = fer_dropout(m, in[0], alpha); break;
    case FER_OP_FLATTEN: id = fer_flatten(m, in[0]); break;
    case FER_OP_ADD: id = fer_add(m, in[0], in[1]); break;
    case FER_OP_CMUL: id = fer_cmul(m, in[0], in[1]); break;
    case FER_OP_SMUL: id = fer_smul(m, in[0], in[1]); break;
    case FER_OP_CONCAT: id = fer_concat(m, n_in, in); break;
    case FER_OP_CHANPOOL: id = fer_chanpool(m, in[0]); break;
    default: break;
    }
    if (id >= 0 && m->nodes[id].out.c != units)
        return fer__fail(m, FER_ERR_FORMAT, "node %d (%s): records %d channels, computes %d", i,
                         fer__op_names[op], units, m->nodes[id].out.c);
    return id;
}

FERDEF fer_result fer_model_load_mem(fer_model *m, const void *buf, size_t len, void *alloc_ctx)
{
    const unsigned char *b = (const unsigned char *)buf, *p;
    uint32_t version, n_nodes, n_classes, c, h, w, i;
    uint64_t n_params, n_buffers, expect;
    size_t k;
    fer_model tmp;
    char why[256];
    memset(m, 0, sizeof(*m));
    m->alloc_ctx = alloc_ctx;
#define FER__BAD(...) do { fer__fail(m, FER_ERR_FORMAT, __VA_ARGS__); return m->status; } while (0)
    if (!b || len < FER__HDR_BYTES + 4) FER__BAD("model file: %zu bytes is too short for a header", b ? len : 0);
    if (memcmp(b, "FERM", 4) != 0) FER__BAD("model file: bad magic (not a .fer file)");
    version = fer__get32(b + 4);
    if (version != FER__FILE_VERSION) FER__BAD("model file: version %u, this fer.h reads version %u", version, FER__FILE_VERSION);
    n_nodes = fer__get32(b + 8); n_classes = fer__get32(b + 12);
    c = fer__get32(b + 16); h = fer__get32(b + 20); w = fer__get32(b + 24);
    n_params = fer__get32(b + 28) | ((uint64_t)fer__get32(b + 32) << 32);
    n_buffers = fer__get32(b + 36) | ((uint64_t)fer__get32(b + 40) << 32);
    if (n_nodes < 2 || n_nodes > FER_MAX_NODES) FER__BAD("model file: %u nodes (2..%d allowed)", n_nodes, FER_MAX_NODES);
    if (n_classes < 1 || n_classes > FER_MAX_CLASSES) FER__BAD("model file: %u classes (1..%d allowed)", n_classes, FER_MAX_CLASSES);
    if (c < 1 || c > FER_MAX_CHANNELS || h < 1 || h > FER_MAX_DIM || w < 1 || w > FER_MAX_DIM)
        FER__BAD("model file: input %ux%ux%u out of range", c, h, w);
    if (n_params > FER__MAX_VALUES || n_buffers > FER__MAX_VALUES)
        FER__BAD("model file: %llu parameters and %llu buffer values is implausible",
                 (unsigned long long)n_params, (unsigned long long)n_buffers);
    expect = fer__file_size(n_nodes, n_classes, n_params, n_buffers);
    if (expect != (uint64_t)len)
        FER__BAD("model file: %zu bytes, the header describes %llu (truncated or corrupt)", len,
                 (unsigned long long)expect);
    if (fer_crc32(b, len - 4) != fer__get32(b + len - 4)) FER__BAD("model file: checksum mismatch (corrupt file)");
    if (!fer__name_ok(b + 44)) FER__BAD("model file: architecture name is not terminated");
    if (fer__preproc_bad(b + 76, why)) FER__BAD("model file: %.230s", why);
    p = b + FER__HDR_BYTES;
    for (i = 0; i < n_classes; i++)
        if (!fer__name_ok(p + (size_t)i * FER_NAME_LEN)) FER__BAD("model file: class name %u is not terminated", i);
    p += (size_t)n_classes * FER_NAME_LEN;
    if (fer__get32(p) != FER_OP_INPUT || fer__get32(p + 4) != 0 || fer__get32(p + 24) != c)
        FER__BAD("model file: node 0 is not the %ux%ux%u input", c, h, w);
    /* rebuild the graph into tmp, then move it into m */
    if (fer_model_init(&tmp, (int)c, (int)h, (int)w, (int)n_classes, alloc_ctx) != FER_OK) {
        memcpy(m->error, tmp.error, sizeof(m->error)); m->status = tmp.status; fer_model_free(&tmp); return m->status;
    }
    memcpy(tmp.arch, b + 44, FER_NAME_LEN);
    tmp.pre.norm = (int)fer__get32(b + 76);
    tmp.pre.mean = fer__bitsf(fer__get32(b + 80));
    tmp.pre.std = fer__bitsf(fer__get32(b + 84));
    tmp.pre.crop_h = (int)fer__get32(b + 88);
    tmp.pre.crop_w = (int)fer__get32(b + 92);
    tmp.pre.store_h = (int)fer__get32(b + 96);
    tmp.pre.store_w = (int)fer__get32(b + 100);
    tmp.pre.temperature = fer__bitsf(fer__get32(b + 104));
    for (i = 0; i < n_classes; i++) memcpy(tmp.class_names[i], b + FER__HDR_BYTES + (size_t)i * FER_NAME_LEN, FER_NAME_LEN);
    for (i = 1; i < n_nodes; i++) {
        uint32_t f[FER__NODE_FIELDS];
        const unsigned char *q = p + (size_t)i * 4 * FER__NODE_FIELDS;
        int j;
        for (j = 0; j < (int)FER__NODE_FIELDS; j++) f[j] = fer__get32(q + 4 * j);
        if (fer__load_node(&tmp, f, (int)i) < 0) {
            fer__err(m->error, "model file: %.230s", tmp.error);
            fer_model_free(&tmp);
            m->status = FER_ERR_FORMAT;
            return m->status;
        }
    }
    p += (size_t)n_nodes * 4 * FER__NODE_FIELDS;
    if (tmp.n_params != n_params || tmp.n_buffers != n_buffers) {
        size_t gp = tmp.n_params, gb = tmp.n_buffers;
        fer_model_free(&tmp);
        FER__BAD("model file: the graph needs %zu parameters and %zu buffer values, the file holds %llu and %llu",
                 gp, gb, (unsigned long long)n_params, (unsigned long long)n_buffers);
    }
    if (fer_model_finalize(&tmp, 0) != FER_OK) {
        fer__err(m->error, "model file: %.230s", tmp.error);
        m->status = tmp.status == FER_ERR_NOMEM ? FER_ERR_NOMEM : FER_ERR_FORMAT;
        fer_model_free(&tmp);
        return m->status;
    }
    for (k = 0; k < tmp.n_params + tmp.n_buffers; k++, p += 4) {
        float v = fer__bitsf(fer__get32(p));
        if (!fer__finite(v)) {
            fer_model_free(&tmp);
            if (k < n_params) FER__BAD("model file: parameter %zu is not finite", k);
            FER__BAD("model file: buffer value %zu is not finite", k - (size_t)n_params);
        }
        tmp.arena[k] = v;
    }
#undef FER__BAD
    *m = tmp;
    return FER_OK;
}

#ifndef FER_NO_STDIO
/* Writes buf to path.tmp, checks every write, then renames it over path: a
   failure at any point leaves the previous file as it was. */
static fer_result fer__write_atomic(const char *path, const void *buf, size_t len, char *err)
{
    size_t plen = strlen(path);
    char tmp[4096];
    FILE *f;
    int ok;
    if (plen + 5 > sizeof(tmp)) { fer__err(err, "save: path too long"); return FER_ERR_ARG; }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    if (!(f = fopen(tmp, "wb"))) { fer__err(err, "save: cannot create %.200s", tmp); return FER_ERR_IO; }
    ok = fwrite(buf, 1, len, f) == len;
    ok = (fflush(f) == 0) && ok;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        fer__err(err, "save: writing %.200s failed; the previous file is untouched", path);
        return FER_ERR_IO;
    }
    return FER_OK;
}

/* Reads all of path (at most max_len bytes, `what` names the kind of file). */
static fer_result fer__read_file(const char *path, uint64_t max_len, const char *what, void **out,
                                 size_t *out_len, void *alloc_ctx, char *err)
{
    FILE *f = fopen(path, "rb");
    long sz;
    void *buf;
    *out = NULL; *out_len = 0;
    if (!f) { fer__err(err, "load: cannot open %.200s", path); return FER_ERR_IO; }
    /* A directory opens but cannot be read (and sizes as 2^63 - 1): read a byte first. */
    if (fgetc(f) == EOF && ferror(f)) { fclose(f); fer__err(err, "load: cannot read %.200s", path); return FER_ERR_IO; }
    if (fseek(f, 0, SEEK_END) != 0 || (sz = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        fer__err(err, "load: cannot size %.200s", path);
        return FER_ERR_IO;
    }
    if ((uint64_t)sz > max_len) {
        fclose(f);
        fer__err(err, "load: %.200s is %ld bytes, larger than any %s", path, sz, what);
        return FER_ERR_FORMAT;
    }
    if ((uint64_t)sz > (uint64_t)SIZE_MAX || !(buf = FER_MALLOC(sz ? (size_t)sz : 1, alloc_ctx))) {
        fclose(f);
        fer__err(err, "load: cannot allocate %ld bytes for %.200s", sz, path);
        return FER_ERR_NOMEM;
    }
    if (fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
        fclose(f);
        FER_FREE(buf, alloc_ctx);
        fer__err(err, "load: cannot read %.200s", path);
        return FER_ERR_IO;
    }
    fclose(f);
    *out = buf; *out_len = (size_t)sz;
    return FER_OK;
}

FERDEF fer_result fer_model_save(fer_model *m, const char *path)
{
    void *buf;
    size_t len;
    fer_result r;
    if (strlen(path) + 5 > 4096) { fer__err(m->error, "save: path too long"); return FER_ERR_ARG; }
    if ((r = fer_model_save_mem(m, &buf, &len, m->alloc_ctx)) != FER_OK) return r;
    r = fer__write_atomic(path, buf, len, m->error);
    FER_FREE(buf, m->alloc_ctx);
    return r;
}

/* Prefixes a load error with the path. */
static void fer__err_path(char *err, const char *path)
{
    char msg[256];
    memcpy(msg, err, sizeof(msg));
    msg[200] = 0;
    fer__err(err, "%.200s: %s", path, msg);
}

FERDEF fer_result fer_model_load(fer_model *m, const char *path, void *alloc_ctx)
{
    void *buf;
    size_t len;
    fer_result r;
    memset(m, 0, sizeof(*m));
    m->alloc_ctx = alloc_ctx;
    /* no .fer file is larger than the header's counts allow */
    r = fer__read_file(path, fer__file_size(FER_MAX_NODES, FER_MAX_CLASSES, FER__MAX_VALUES, FER__MAX_VALUES),
                       ".fer file", &buf, &len, alloc_ctx, m->error);
    if (r != FER_OK) { m->status = r; return r; }
    r = fer_model_load_mem(m, buf, len, alloc_ctx);
    FER_FREE(buf, alloc_ctx);
    if (r != FER_OK) fer__err_path(m->error, path);
    return r;
}
#endif /* FER_NO_STDIO */

/* Training checkpoint, little-endian:
     "FERC"  u32 version (1)  u64 length of the .fer image, the image
     u64 seed  u32 batch  u32 threads  u32 epoch  u32 stop  f64 best  u32 best_epoch
     u32 bad_epochs  f32 plateau_lr  f64 plateau_best  u32 plateau_bad
     u64 optimizer step  u64 n_params  f32 m[n_params]  f32 v[n_params]
     u32 swa kind  u64 swa count  u64 arena  f32 avg[arena] (when kind != 0)
     f32 best_arena[arena]  u32 CRC-32 of everything before it */
#define FER__CKPT_VERSION 1u

static void fer__put64(unsigned char *p, uint64_t v)
{
    fer__put32(p, (uint32_t)(v & 0xFFFFFFFFu));
    fer__put32(p + 4, (uint32_t)(v >> 32));
}
static uint64_t fer__get64(const unsigned char *p) { return (uint64_t)fer__get32(p) | ((uint64_t)fer__get32(p + 4) << 32); }
static uint64_t fer__dbits(double d) { uint64_t u; memcpy(&u, &d, 8); return u; }
static double fer__bitsd(uint64_t u) { double d; memcpy(&d, &u, 8); return d; }
static unsigned char *fer__put_floats(unsigned char *p, const float *x, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++, p += 4) fer__put32(p, fer__fbits(x[i]));
    return p;
}
static const unsigned char *fer__get_floats(const unsigned char *p, float *x, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++, p += 4) x[i] = fer__bitsf(fer__get32(p));
    return p;
}

FERDEF fer_result fer_trainer_save_mem(fer_trainer *t, void **out, size_t *out_len)
{
    fer_model *m = t->m;
    void *img;
    size_t img_len, arena = m->n_params + m->n_buffers, len;
    unsigned char *b, *p;
    fer_result r;
    *out = NULL; *out_len = 0;
    if (!t->ws) { fer__err(t->error, "checkpoint: the trainer is not set up"); return FER_ERR_ARG; }
    if ((r = fer_model_save_mem(m, &img, &img_len, t->alloc_ctx)) != FER_OK) { memcpy(t->error, m->error, sizeof(t->error)); return r; }
    len = fer__add(fer__add(16 + 72 + 20 + 4, img_len),    /* header, state, SWA header, CRC */
                   fer__mul(fer__add(fer__mul(2, m->n_params), fer__mul(t->swa.kind ? 2 : 1, arena)), 4));
    if (len == SIZE_MAX || !(b = (unsigned char *)FER_MALLOC(len, t->alloc_ctx))) {
        FER_FREE(img, t->alloc_ctx);
        fer__err(t->error, "checkpoint: cannot allocate %zu bytes", len);
        return FER_ERR_NOMEM;
    }
    memcpy(b, "FERC", 4);
    fer__put32(b + 4, FER__CKPT_VERSION);
    fer__put64(b + 8, (uint64_t)img_len);
    memcpy(b + 16, img, img_len);
    FER_FREE(img, t->alloc_ctx);
    p = b + 16 + img_len;
    fer__put64(p, t->cfg.seed); p += 8;
    fer__put32(p, (uint32_t)t->cfg.batch); p += 4;
    fer__put32(p, (uint32_t)t->cfg.threads); p += 4;
    fer__put32(p, (uint32_t)t->epoch); p += 4;
    fer__put32(p, (uint32_t)t->stop); p += 4;
    fer__put64(p, fer__dbits(t->best)); p += 8;
    fer__put32(p, (uint32_t)t->best_epoch); p += 4;
    fer__put32(p, (uint32_t)t->bad_epochs); p += 4;
    fer__put32(p, fer__fbits(t->cfg.schedule.plateau_lr)); p += 4;
    fer__put64(p, fer__dbits(t->cfg.schedule.plateau_best)); p += 8;
    fer__put32(p, (uint32_t)t->cfg.schedule.plateau_bad); p += 4;
    fer__put64(p, (uint64_t)t->opt.step); p += 8;
    fer__put64(p, (uint64_t)m->n_params); p += 8;
    p = fer__put_floats(p, t->opt.m, m->n_params);
    p = fer__put_floats(p, t->opt.v, m->n_params);
    fer__put32(p, (uint32_t)t->swa.kind); p += 4;
    fer__put64(p, (uint64_t)t->swa.count); p += 8;
    fer__put64(p, (uint64_t)arena); p += 8;
    if (t->swa.kind) p = fer__put_floats(p, t->swa.avg, arena);
    p = fer__put_floats(p, t->best_arena, arena);
    fer__put32(p, fer_crc32(b, (size_t)(p - b))); p += 4;
    FER_ASSERT((size_t)(p - b) == len);
    *out = b; *out_len = len;
    return FER_OK;
}

FERDEF fer_result fer_trainer_load_mem(fer_trainer *t, const void *buf, size_t len)
{
    const unsigned char *b = (const unsigned char *)buf, *p, *end;
    fer_model *m = t->m, ck;
    size_t arena = m->n_params + m->n_buffers;
    uint64_t img_len, seed, np, na, count;
    uint32_t batch, kind;
    int i;
    if (!t->ws) { fer__err(t->error, "checkpoint: the trainer is not set up"); return FER_ERR_ARG; }
#define FER__CK_BAD(...) do { fer__err(t->error, __VA_ARGS__); return FER_ERR_FORMAT; } while (0)
    if (len < 20 || memcmp(b, "FERC", 4) != 0) FER__CK_BAD("checkpoint: not a fer.h training checkpoint (no FERC magic)");
    if (fer__get32(b + 4) != FER__CKPT_VERSION) FER__CK_BAD("checkpoint: version %u, this fer.h reads %u", fer__get32(b + 4), FER__CKPT_VERSION);
    if (fer_crc32(b, len - 4) != fer__get32(b + len - 4)) FER__CK_BAD("checkpoint: CRC mismatch: the file is corrupt or truncated");
    img_len = fer__get64(b + 8);
    end = b + len - 4;
    if (img_len > (uint64_t)(len - 20)) FER__CK_BAD("checkpoint: the model image (%llu bytes) overruns the file", (unsigned long long)img_len);
    if (fer_model_load_mem(&ck, b + 16, (size_t)img_len, t->alloc_ctx) != FER_OK) {
        fer__err(t->error, "checkpoint: model: %.200s", ck.error);
        return FER_ERR_FORMAT;
    }
    if (ck.n_nodes != m->n_nodes || ck.n_params != m->n_params || ck.n_buffers != m->n_buffers ||
        ck.n_classes != m->n_classes || strcmp(ck.arch, m->arch) != 0) {
        fer__err(t->error, "checkpoint: it holds %s (%d nodes, %zu parameters), this run trains %s (%d nodes, %zu parameters)",
                 ck.arch, ck.n_nodes, ck.n_params, m->arch, m->n_nodes, m->n_params);
        fer_model_free(&ck);
        return FER_ERR_ARG;
    }
    for (i = 0; i < m->n_nodes; i++)
        if (ck.nodes[i].op != m->nodes[i].op || ck.nodes[i].p_len != m->nodes[i].p_len) {
            fer__err(t->error, "checkpoint: node %d is %s there, %s here", i, fer__op_names[ck.nodes[i].op], fer__op_names[m->nodes[i].op]);
            fer_model_free(&ck);
            return FER_ERR_ARG;
        }
    p = b + 16 + img_len;
    if ((size_t)(end - p) < 8 + 4 * 4 + 8 + 4 * 2 + 4 + 8 + 4 + 16) { fer_model_free(&ck); FER__CK_BAD("checkpoint: truncated after the model"); }
    seed = fer__get64(p); batch = fer__get32(p + 8);
    if (seed != t->cfg.seed || batch != (uint32_t)t->cfg.batch) {
        fer__err(t->error, "checkpoint: written with seed %llu and batch %u; this run has seed %llu and batch %d",
                 (unsigned long long)seed, batch, (unsigned long long)t->cfg.seed, t->cfg.batch);
        fer_model_free(&ck);
        return FER_ERR_ARG;
    }
    /* p + 12: threads (informational: another count resumes, not bit-identically) */
    {
        int epoch = (int)fer__get32(p + 16), stop = (int)fer__get32(p + 20), best_epoch, bad, pbad;
        double best = fer__bitsd(fer__get64(p + 24)), pbest;
        float plr;
        uint64_t step;
        best_epoch = (int)fer__get32(p + 32); bad = (int)fer__get32(p + 36);
        plr = fer__bitsf(fer__get32(p + 40)); pbest = fer__bitsd(fer__get64(p + 44)); pbad = (int)fer__get32(p + 52);
        step = fer__get64(p + 56); np = fer__get64(p + 64);
        p += 72;
        if (np != m->n_params || epoch < 0 || epoch > 100000 || best_epoch < 0 || best_epoch > epoch) {
            fer_model_free(&ck);
            FER__CK_BAD("checkpoint: inconsistent state (epoch %d, best epoch %d, %llu optimizer values)", epoch, best_epoch, (unsigned long long)np);
        }
        if ((uint64_t)(end - p) < 8 * np + 20) { fer_model_free(&ck); FER__CK_BAD("checkpoint: truncated in the optimizer state"); }
        kind = fer__get32(p + 8 * np);
        count = fer__get64(p + 8 * np + 4);
        na = fer__get64(p + 8 * np + 12);
        if (kind != (uint32_t)t->swa.kind || na != arena) {
            fer_model_free(&ck);
            fer__err(t->error, "checkpoint: weight averaging %u over %llu values there, %d over %zu here",
                     kind, (unsigned long long)na, t->swa.kind, arena);
            return FER_ERR_ARG;
        }
        if ((uint64_t)(end - p) != 8 * np + 20 + 4 * na * (kind ? 2 : 1)) { fer_model_free(&ck); FER__CK_BAD("checkpoint: wrong length for its counts"); }
        /* everything checked: commit */
        memcpy(m->arena, ck.arena, sizeof(float) * arena);
        m->pre = ck.pre;
        fer_model_free(&ck);
        p = fer__get_floats(p, t->opt.m, m->n_params);
        p = fer__get_floats(p, t->opt.v, m->n_params);
        p += 20;
        if (kind) p = fer__get_floats(p, t->swa.avg, arena);
        fer__get_floats(p, t->best_arena, arena);
        t->swa.count = (long)count;
        t->opt.step = (long)step;
        t->epoch = epoch; t->stop = stop != 0; t->best = best; t->best_epoch = best_epoch; t->bad_epochs = bad;
        t->cfg.schedule.plateau_lr = plr; t->cfg.schedule.plateau_best = pbest; t->cfg.schedule.plateau_bad = pbad;
    }
#undef FER__CK_BAD
    return FER_OK;
}

#ifndef FER_NO_STDIO
FERDEF fer_result fer_trainer_save(fer_trainer *t, const char *path)
{
    void *buf;
    size_t len;
    fer_result r = fer_trainer_save_mem(t, &buf, &len);
    if (r != FER_OK) return r;
    r = fer__write_atomic(path, buf, len, t->error);
    FER_FREE(buf, t->alloc_ctx);
    return r;
}

FERDEF fer_result fer_trainer_load(fer_trainer *t, const char *path)
{
    void *buf;
    size_t len;
    fer_result r = fer__read_file(path, (uint64_t)1 << 40, "checkpoint", &buf, &len, t->alloc_ctx, t->error);
    if (r != FER_OK) return r;
    r = fer_trainer_load_mem(t, buf, len);
    FER_FREE(buf, t->alloc_ctx);
    if (r != FER_OK) fer__err_path(t->error, path);
    return r;
}
#endif

#endif /* FER_IMPLEMENTATION_DONE */
#endif /* FER_IMPLEMENTATION */

/*
------------------------------------------------------------------------------
This software is available under 2 licenses -- choose whichever you prefer.
------------------------------------------------------------------------------
ALTERNATIVE A - MIT License
Copyright (c) 2026 the fer.h authors
Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
of the Software, and to permit persons to whom the Software is furnished to do
so, subject to the following conditions:
The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.
THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
------------------------------------------------------------------------------
ALTERNATIVE B - Public Domain (www.unlicense.org)
This is free and unencumbered software released into the public domain.
Anyone is free to copy, modify, publish, use, compile, sell, or distribute this
software, either in source code form or as a compiled binary, for any purpose,
commercial or non-commercial, and by any means.
In jurisdictions that recognize copyright laws, the author or authors of this
software dedicate any and all copyright interest in the software to the public
domain. We make this dedication in recognition of the many individuals who have
helped make this software what it is.
------------------------------------------------------------------------------
*/
