/* static_a + static_b: two translation units, each with its own FER_STATIC copy
   of the implementation, linked into one program (no duplicate symbols). Also
   compiled as C++ by `make test`. */
#define FER_IMPLEMENTATION
#include "fer.h"
#include "test.h"

int static_b_param_count(const char *arch);

int main(void)
{
    fer_model m;
    CHECK(fer_zoo_build(&m, "mini_xception", 1, 48, 48, 7, 1, NULL) == FER_OK, "build: %s", m.error);
    CHECK(fer_model_param_count(&m) == (size_t)static_b_param_count("mini_xception"),
          "both translation units agree on the parameter count");
    CHECK(fer_zoo_build(&m, "no_such_model", 1, 48, 48, 7, 1, NULL) == FER_ERR_ARG, "unknown zoo name rejected");
    CHECK(strstr(m.error, "no_such_model") != NULL, "message names the model: %s", m.error);
    fer_model_free(&m);
    return test_done("static");
}
