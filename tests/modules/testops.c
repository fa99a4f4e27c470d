/* testops.c: a module of ops that only tests call (tests/test_modules.c):
 * loops that end only through the run's limits, a crash, a result of the
 * wrong type, and `version`, built twice (TESTOPS_VERSION 1 and 2) to show
 * that a reload runs the module as rebuilt. */
#include <stddef.h>
#include <stdint.h>

#include "cowdag_module.h"

COWDAG_MODULE_DECLARE;

/* Never ends on its own: only the deadline (timeout_ms) stops it. */
static int spin(cowdag_ctx *ctx, cowdag_value *const *args, size_t nargs, const cowdag_params *params,
                cowdag_value **out)
{
    (void)args, (void)nargs, (void)params, (void)out;
    for (volatile uint64_t i = 0;; i++)
        if (i % 1024 == 0 && cowdag_check(ctx) != COWDAG_OK)
            return COWDAG_ERR;
}

/* Grows a list until the budget (max_run_bytes) stops it. */
static int hog(cowdag_ctx *ctx, cowdag_value *const *args, size_t nargs, const cowdag_params *params,
               cowdag_value **out)
{
    (void)args, (void)nargs, (void)params, (void)out;
    cowdag_value *l = cowdag_list_new(ctx, 0);
    if (!l)
        return COWDAG_ERR;
    for (uint64_t i = 0;; i++) {
        if (i % 1024 == 0 && cowdag_check(ctx) != COWDAG_OK) {
            cowdag_unref(l);
            return COWDAG_ERR;
        }
        cowdag_list_append_new(l, cowdag_float_new((double)i));
    }
}

/* A module's bug: a write through a null pointer. */
static int crash(cowdag_ctx *ctx, cowdag_value *const *args, size_t nargs, const cowdag_params *params,
                 cowdag_value **out)
{
    (void)ctx, (void)args, (void)nargs, (void)params, (void)out;
    volatile int *volatile p = NULL;
    *p = 1;
    return COWDAG_ERR;
}

/* Declares a float, returns a str. */
static int liar(cowdag_ctx *ctx, cowdag_value *const *args, size_t nargs, const cowdag_params *params,
                cowdag_value **out)
{
    (void)ctx, (void)args, (void)nargs, (void)params;
    *out = cowdag_str_new("no", 2);
    return COWDAG_OK;
}

/* The argument itself: a result that is an argument needs a reference. */
static int same(cowdag_ctx *ctx, cowdag_value *const *args, size_t nargs, const cowdag_params *params,
                cowdag_value **out)
{
    (void)ctx, (void)nargs, (void)params;
    *out = cowdag_ref(args[0]);
    return COWDAG_OK;
}

static int version(cowdag_ctx *ctx, cowdag_value *const *args, size_t nargs, const cowdag_params *params,
                   cowdag_value **out)
{
    (void)ctx, (void)args, (void)nargs, (void)params;
    *out = cowdag_int_new(TESTOPS_VERSION);
    return COWDAG_OK;
}

static const cowdag_arg_spec one_any[] = {{"x", COWDAG_ANY, 0}, {NULL, COWDAG_ANY, 0}};
static const cowdag_arg_spec opt_any[] = {{"x", COWDAG_ANY, 1}, {NULL, COWDAG_ANY, 0}};

static const cowdag_op_def defs[] = {
    {"spin", opt_any, NULL, COWDAG_NONE, "Loops until the run's deadline.", spin, NULL},
    {"hog", opt_any, NULL, COWDAG_LIST, "Grows a list until the run's budget.", hog, NULL},
    {"crash", opt_any, NULL, COWDAG_NONE, "Writes through a null pointer.", crash, NULL},
    {"liar", opt_any, NULL, COWDAG_FLOAT, "Declares a float, returns a str.", liar, NULL},
    {"same", one_any, NULL, COWDAG_ANY, "Returns its argument.", same, NULL},
    {"version", opt_any, NULL, COWDAG_INT, "The version this module was built as.", version, NULL},
};

int cowdag_module_init(cowdag_module *m)
{
    for (size_t i = 0; i < sizeof defs / sizeof *defs; i++)
        if (cowdag_register_op(m, &defs[i]) != COWDAG_OK)
            return COWDAG_ERR;
    return COWDAG_OK;
}
