/* modules: the shared libraries a config's "modules" names, opened by the
 * master before it loads the state, so their code and constant data are
 * inherited by every worker.  The API they are written against is
 * include/cowdag_module.h; README.md, "Writing a module". */
#ifndef COWDAG_LD_MODULES_H
#define COWDAG_LD_MODULES_H

#include <stddef.h>

#include "dag/dag.h"
#include "dag/module.h"
#include "load/config.h"

typedef struct ld_module {
    char *file; /* the config's path (absolute) */
    void *handle;
    int fd;     /* the private copy it was loaded from, or -1 */
} ld_module;

typedef struct ld_modules {
    ld_module *v;
    size_t n;
    dag_opset *ops; /* every op they registered */
} ld_modules;

/* Loads every module of cfg, in order: each file is copied as it reads now
 * and the copy opened (dlopen), so a generation gets its own load of a
 * module rebuilt since the last, while older generations keep theirs; its
 * cowdag_module_api_version checked, its cowdag_module_init called to
 * register its ops.  Every problem goes to errs naming the file and the
 * symbol; LD_ERR if there was any, with *out empty. */
int ld_modules_load(const ld_config *cfg, ld_modules *out, dag_errors *errs);

/* Frees the op set and closes every module: nothing compiled against them
 * (DAGs) may be left, nor any process about to call them. */
void ld_modules_free(ld_modules *m);

#endif
