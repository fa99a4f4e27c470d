/* undefined.c: a module that calls a function cowdag does not export (as
 * one built against a later API would). */
#include "cowdag_module.h"

COWDAG_MODULE_DECLARE;

void cowdag_not_in_the_api(void);

int cowdag_module_init(cowdag_module *m)
{
    (void)m;
    cowdag_not_in_the_api();
    return COWDAG_OK;
}
