/* fer-zoo: lists the model zoo with parameters and multiply-adds.
   cc -O2 -I. -I/usr/include/stb tools/fer-zoo.c -lm -o build/fer-zoo
   usage: fer-zoo [--size H W] [--classes K] */
#define FER_IMPLEMENTATION
#include "fer.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    int h = 48, w = 48, k = 7, i;
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--size") && i + 2 < argc) { h = atoi(argv[++i]); w = atoi(argv[++i]); }
        else if (!strcmp(argv[i], "--classes") && i + 1 < argc) k = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--size H W] [--classes K]\nunknown option: %s\n", argv[0], argv[i]);
            return 2;
        }
    }
    printf("%-18s %12s %14s %7s  %s\n", "model", "params", "MMACs/sample", "nodes", "description");
    for (i = 0; i < fer_zoo_count(); i++) {
        fer_model m;
        if (fer_zoo_build(&m, fer_zoo_name(i), 1, h, w, k, 1, NULL) != FER_OK) {
            printf("%-18s error: %s\n", fer_zoo_name(i), m.error);
            fer_model_free(&m);
            continue;
        }
        printf("%-18s %12zu %14.2f %7d  %s\n", fer_zoo_name(i), fer_model_param_count(&m),
               fer_model_macs(&m) / 1e6, m.n_nodes, fer_zoo_description(i));
        fer_model_free(&m);
    }
    return 0;
}
