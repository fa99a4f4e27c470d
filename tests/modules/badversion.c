/* badversion.c: a module built for another version of the module API. */
#include "cowdag_module.h"

const int cowdag_module_api_version = COWDAG_MODULE_API_VERSION + 1;

int cowdag_module_init(cowdag_module *m)
{
    (void)m;
    return COWDAG_OK;
}
