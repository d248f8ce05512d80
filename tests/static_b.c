/* The second translation unit of the FER_STATIC link test (see static_a.c). */
#define FER_IMPLEMENTATION
#include "fer.h"

int static_b_param_count(const char *arch);

int static_b_param_count(const char *arch)
{
    fer_model m;
    int n = -1;
    if (fer_zoo_build(&m, arch, 1, 48, 48, 7, 1, NULL) == FER_OK) n = (int)fer_model_param_count(&m);
    fer_model_free(&m);
    return n;
}
