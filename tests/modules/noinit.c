/* noinit.c: a module without its init function. */
#include "cowdag_module.h"

COWDAG_MODULE_DECLARE;

int cowdag_module_start(cowdag_module *m);
int cowdag_module_start(cowdag_module *m)
{
    (void)m;
    return COWDAG_OK;
}
