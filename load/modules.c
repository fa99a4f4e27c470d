/* modules.c: opens a config's modules and lets each register its ops
 * (load/modules.h).  The API they call is dag/module.c's.
 *
 * Why a copy.  The dynamic linker keeps one load per file name (and per
 * inode): opening a path an older generation still holds would hand back
 * the old load, old code and all, however the file changed since.  So each
 * module is copied into a memfd (named after the file, as /proc/PID/maps
 * then shows it) and loaded from there: every generation runs the module
 * as it was when that generation loaded, and the old load goes when the
 * old generation does. */
#include "load/modules.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "include/cowdag_module.h"

/* A memfd holding the file's bytes as they are now; -1 with errno. */
static int private_copy(const char *file, const char *name)
{
    int in = open(file, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -1;
    struct stat st;
    char mname[200];
    snprintf(mname, sizeof mname, "cowdag-module:%s", name);
    int out = fstat(in, &st) == 0 ? memfd_create(mname, MFD_CLOEXEC) : -1;
    off_t off = 0;
    while (out >= 0 && off < st.st_size) {
        ssize_t w = sendfile(out, in, &off, (size_t)(st.st_size - off));
        if (w <= 0) {
            int e = w == 0 ? EIO : errno;
            close(out);
            out = -1;
            errno = e;
        }
    }
    int e = errno;
    close(in);
    errno = e;
    return out;
}

/* The file's name without its folder: how `cowdag ops` marks its ops. */
static char *module_name(const char *file)
{
    char *copy = base_strdup(file);
    char *name = base_strdup(basename(copy));
    free(copy);
    return name;
}

static void unload(ld_module *m)
{
    if (m->handle)
        dlclose(m->handle);
    if (m->fd >= 0)
        close(m->fd);
    free(m->file);
    *m = (ld_module){.fd = -1};
}

/* Opens one module and runs its init; DAG_ERR after adding the problem. */
static int load_one(const char *file, dag_opset *ops, ld_module *m, dag_errors *errs)
{
    *m = (ld_module){.file = base_strdup(file), .fd = -1};
    char *name = module_name(file);
    int rc = DAG_ERR;
    m->fd = private_copy(file, name);
    if (m->fd < 0) {
        dag_errors_add(errs, file, NULL, "cannot read the module: %s", strerror(errno));
        goto out;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", m->fd);
    dlerror();
    m->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!m->handle) {
        const char *why = dlerror();
        dag_errors_add(errs, file, NULL, "cannot load the module: %s", why ? why : "dlopen failed");
        goto out;
    }
    const int *version = dlsym(m->handle, COWDAG_MODULE_VERSION_SYMBOL);
    if (!version) {
        dag_errors_add(errs, file, NULL, "no symbol %s: a module declares it with COWDAG_MODULE_DECLARE",
                       COWDAG_MODULE_VERSION_SYMBOL);
        goto out;
    }
    if (*version != COWDAG_MODULE_API_VERSION) {
        dag_errors_add(errs, file, NULL,
                       "%s is %d, this cowdag speaks %d: rebuild the module against its "
                       "include/cowdag_module.h",
                       COWDAG_MODULE_VERSION_SYMBOL, *version, COWDAG_MODULE_API_VERSION);
        goto out;
    }
    int (*init)(cowdag_module *);
    *(void **)&init = dlsym(m->handle, COWDAG_MODULE_INIT_SYMBOL);
    if (!init) {
        dag_errors_add(errs, file, NULL, "no symbol %s: the function that registers the module's ops",
                       COWDAG_MODULE_INIT_SYMBOL);
        goto out;
    }
    cowdag_module *reg = dag_opset_begin(ops, name);
    int irc = init(reg);
    char err[256];
    if (dag_opset_end(reg, err, sizeof err) != DAG_OK)
        dag_errors_add(errs, file, NULL, "%s: %s", COWDAG_MODULE_INIT_SYMBOL, err);
    else if (irc != COWDAG_OK)
        dag_errors_add(errs, file, NULL, "%s returned %d", COWDAG_MODULE_INIT_SYMBOL, irc);
    else
        rc = DAG_OK;
out:
    free(name);
    return rc;
}

int ld_modules_load(const ld_config *cfg, ld_modules *out, dag_errors *errs)
{
    *out = (ld_modules){.ops = dag_opset_new()};
    out->v = base_calloc(cfg->nmodules ? cfg->nmodules : 1, sizeof *out->v);
    int rc = LD_OK;
    for (size_t i = 0; i < cfg->nmodules; i++) {
        ld_module *m = &out->v[out->n++];
        if (load_one(cfg->modules[i], out->ops, m, errs) != DAG_OK)
            rc = LD_ERR;
    }
    if (rc != LD_OK)
        ld_modules_free(out);
    return rc;
}

void ld_modules_free(ld_modules *m)
{
    dag_opset_free(m->ops); /* first: its records point into the modules' names, not their code */
    for (size_t i = m->n; i-- > 0;)
        unload(&m->v[i]);
    free(m->v);
    *m = (ld_modules){0};
}
