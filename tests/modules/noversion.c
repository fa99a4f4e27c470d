/* noversion.c: a module that does not say which API version it speaks. */
#include "cowdag_module.h"

int cowdag_module_init(cowdag_module *m)
{
    (void)m;
    return COWDAG_OK;
}
