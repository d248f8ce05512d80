/* fer-peak: peak FP32 multiply-add throughput of one core, for each instruction set
   this CPU has (the ceiling fer-bench's GFLOP/s are a fraction of), and the int8
   multiply-adds of AVX-512 VNNI where it has them (fer_workspace_quantize's).

   cc -O2 -I. -I/usr/include/stb tools/fer-peak.c -lm -o build/fer-peak
   usage: fer-peak [--seconds S] [--json]

   Runs one thread; GFLOP/s counts 2 flops per lane of a multiply-add, GOP/s 2 ops
   per byte product. The kernels are in tools/peak.h. */
#define _POSIX_C_SOURCE 200809L
#define FER_IMPLEMENTATION
#include "fer.h"
#include "tools/peak.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    static const fer_isa isas[] = {FER_ISA_AVX512, FER_ISA_AVX2, FER_ISA_NEON, FER_ISA_SCALAR};
    static const int lanes[] = {16, 8, 4, 1};
    double seconds = 1.0;
    int json = 0, i, first = 1;
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--seconds S] [--json]\n", argv[0]);
            return !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") ? 0 : 2;
        }
    }
    if (!(seconds > 0.0 && seconds <= 60.0)) { fprintf(stderr, "fer-peak: --seconds must be in (0, 60]\n"); return 2; }
    if (json) printf("{\"best_isa\": \"%s\", \"gflops_per_core\": {", fer_isa_name(fer_cpu_best_isa()));
    else printf("peak FP32 multiply-add throughput, one core (best isa: %s)\n%-8s %6s %14s\n",
                fer_isa_name(fer_cpu_best_isa()), "isa", "lanes", "GFLOP/s/core");
    for (i = 0; i < (int)(sizeof isas / sizeof isas[0]); i++) {
        double g = peak_gflops(isas[i], seconds);
        if (g == 0.0) continue;   /* not on this CPU or build */
        if (json) printf("%s\"%s\": %.2f", first ? "" : ", ", fer_isa_name(isas[i]), g);
        else printf("%-8s %6d %14.1f%s\n", fer_isa_name(isas[i]), lanes[i], g,
                    isas[i] == FER_ISA_SCALAR ? "   (plain C: multiply, then add)" : "");
        fflush(stdout);
        first = 0;
    }
    {
        double q = peak_int8_gops(seconds);
        if (json && q > 0) printf("}, \"int8_gops_per_core\": %.2f}\n", q);
        else if (json) printf("}, \"int8_gops_per_core\": null}\n");
        else if (q > 0) printf("%-8s %6d %14.1f   (GOP/s: int8 products, AVX-512 VNNI)\n", "int8", 64, q);
        else printf("int8: no AVX-512 VNNI on this CPU (or build)\n");
    }
    return 0;
}
