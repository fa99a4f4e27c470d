/* twice.c: a module that registers a name that is taken -- by itself, or
 * (built with CLASH_WITH_BUILTIN) by a built-in op. */
#include <stddef.h>

#include "cowdag_module.h"

COWDAG_MODULE_DECLARE;

static int nothing(cowdag_ctx *ctx, cowdag_value *const *args, size_t nargs, const cowdag_params *params,
                   cowdag_value **out)
{
    (void)ctx, (void)args, (void)nargs, (void)params;
    *out = cowdag_none_new();
    return COWDAG_OK;
}

#ifdef CLASH_WITH_BUILTIN
#define NAME "sum"
#else
#define NAME "again"
#endif

int cowdag_module_init(cowdag_module *m)
{
    cowdag_op_def def = {NAME, NULL, NULL, COWDAG_NONE, "Nothing.", nothing, NULL};
    if (cowdag_register_op(m, &def) != COWDAG_OK)
        return COWDAG_ERR;
    return cowdag_register_op(m, &def);
}
