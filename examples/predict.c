/* predict: classify face images with a trained .fer model.

   cc -O2 -I. -I/usr/include/stb examples/predict.c -lm -lpthread -o build/fer-predict

   usage: fer-predict --model M.fer [--top K] IMAGE...
   Each image (any size, colour or grey; JPEG, PNG, BMP, PGM...) should be a face
   crop; it is converted to grey, resized to the model's input and classified.
   Prints one line per image: the path, then the K most likely classes with
   their probabilities, e.g. "face.jpg  happy 0.91  surprise 0.05". */
#define FER_IMPLEMENTATION
#include "fer.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(const char *argv0, const char *why)
{
    if (why) fprintf(stderr, "fer-predict: %s\n", why);
    fprintf(stderr, "usage: %s --model M.fer [--top K] IMAGE...\n", argv0);
    return 2;
}

int main(int argc, char **argv)
{
    const char *model_path = NULL;
    int top = 3, i, first = 0, failures = 0;
    fer_model m;
    fer_workspace ws;
    float probs[FER_MAX_CLASSES];
    for (i = 1; i < argc && !first; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) model_path = argv[++i];
        else if (!strcmp(argv[i], "--top") && i + 1 < argc) {
            char *end;
            long k = strtol(argv[++i], &end, 10);
            if (*end || k < 1 || k > FER_MAX_CLASSES) return usage(argv[0], "--top takes a number from 1 to 64");
            top = (int)k;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage(argv[0], NULL), 0;
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "fer-predict: unknown option '%s'\n", argv[i]);
            return usage(argv[0], NULL);
        } else first = i;
    }
    if (!model_path) return usage(argv[0], "--model is required");
    if (!first) return usage(argv[0], "no images given");
    if (fer_model_load(&m, model_path, NULL) != FER_OK) {
        fprintf(stderr, "fer-predict: %s\n", m.error);
        return 1;
    }
    /* frozen: the model's weights stay as loaded, so their transforms are made once */
    if (fer_workspace_init(&ws, &m, 1, 0) != FER_OK || fer_workspace_freeze(&ws, &m) != FER_OK) {
        fprintf(stderr, "fer-predict: %s\n", ws.error);
        fer_workspace_free(&ws);
        fer_model_free(&m);
        return 1;
    }
    if (top > m.n_classes) top = m.n_classes;
    for (i = first; i < argc; i++) {
        char err[256];
        int w, h, k, j, order[FER_MAX_CLASSES];
        unsigned char *px = fer_image_load_gray(argv[i], &w, &h, err);
        if (!px) { fprintf(stderr, "fer-predict: %s\n", err); failures++; continue; }
        if (fer_predict(&m, &ws, px, w, h, w, probs) < 0) {
            fprintf(stderr, "fer-predict: %s: %s\n", argv[i], ws.error);
            fer_image_free(px);
            failures++;
            continue;
        }
        fer_image_free(px);
        for (k = 0; k < m.n_classes; k++) order[k] = k;
        for (k = 0; k < top; k++)            /* partial selection sort: top K */
            for (j = k + 1; j < m.n_classes; j++)
                if (probs[order[j]] > probs[order[k]]) { int t = order[k]; order[k] = order[j]; order[j] = t; }
        printf("%s", argv[i]);
        for (k = 0; k < top; k++) printf("  %s %.2f", m.class_names[order[k]], probs[order[k]]);
        printf("\n");
    }
    fer_workspace_free(&ws);
    fer_model_free(&m);
    return failures ? 1 : 0;
}
