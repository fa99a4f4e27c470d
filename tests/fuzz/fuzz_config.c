/* fuzz_config: a config file through ld_config_parse (no state is
 * loaded), as if it were cowdag.json in an empty temporary folder, so
 * relative paths and the DAG globs resolve where no file is; then a reload's flags over
 * it (ld_config_override), which check the result again. */
#include <string.h>
#include <unistd.h>

#include "load/config.h"
#include "tests/fuzz/fuzz.h"

static char dir[64], path[96];

static void remove_dir(void) { rmdir(dir); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%.40s/cowdag-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        FUZZ_CHECK(mkdtemp(dir), "mkdtemp %s", dir);
        atexit(remove_dir);
        snprintf(path, sizeof path, "%s/cowdag.json", dir);
    }
    ld_config c;
    char err[512];
    err[0] = '\0';
    if (ld_config_parse((const char *)data, size, path, &c, err, sizeof err) != LD_OK) {
        FUZZ_CHECK(err[0], "a config was refused with no message");
        return 0;
    }
    FUZZ_CHECK(c.workers >= 1 && c.workers <= LD_MAX_WORKERS, "workers %d", c.workers);
    FUZZ_CHECK(c.listen_unix || c.listen_host, "no listen address");
    for (size_t i = 0; i < c.nstate; i++)
        FUZZ_CHECK(c.state[i].name && *c.state[i].name, "state[%zu] has no name", i);
    /* The flags of `cowdag serve --workers 3 --gc freeze --immortal`. */
    ld_overrides ov = {.workers = 3, .gc_mode = "freeze", .immortal = true, .thresholds = {-1, -1, -1}};
    if (ld_config_override(&c, &ov, err, sizeof err) == LD_OK)
        FUZZ_CHECK(c.workers == 3 && c.gc.mode == GC_FREEZE && c.gc.immortal, "the flags did not apply");
    ld_config_free(&c);
    return 0;
}
