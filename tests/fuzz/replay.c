/* replay: the driver `make test` links each harness of tests/fuzz/ with
 * instead of libFuzzer: one cmocka test that feeds LLVMFuzzerTestOneInput
 * every file of the harness's checked-in corpus, so every input a fuzzing
 * run kept (and every crash it found, once fixed) stays a regression test.
 *
 *   replay_NAME [DIR|FILE]...     default: tests/fuzz/corpus/NAME
 *
 * NAME, the harness's, comes from the binary's own name.
 *
 * A harness reports a failed check by aborting; the suite then ends early,
 * having named the file it was reading, and tests/run.sh counts that. */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/fuzz/fuzz.h"
#include "tests/support.h"


/* Harnesses that need no fixed world define no initializer. */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

static int g_argc;
static char **g_argv;
static const char *g_name; /* the harness: NAME of replay_NAME */

/* The file being fed, named by the handler below should the harness abort
 * or crash on it (a sanitizer's report names the code, not the input). */
static const char *volatile current;

static void name_culprit(int sig)
{
    const char *p = current;
    if (p) {
        static const char msg[] = "replay: crashed on ";
        (void)!write(2, msg, sizeof msg - 1);
        (void)!write(2, p, strlen(p));
        (void)!write(2, "\n", 1);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Feeds one file; returns 1. */
static size_t replay_file(const char *path)
{
    size_t len;
    char *data = slurp(path, &len);
    if (!data)
        fail_msg("cannot read %s", path);
    /* An exact-size copy, so ASan sees a read past the end. */
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, data, len);
    free(data);
    current = path;
    LLVMFuzzerTestOneInput(copy, len);
    current = NULL;
    free(copy);
    return 1;
}

static size_t replay_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        fail_msg("cannot open %s", dir);
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            names = realloc(names, cap * sizeof *names);
            assert_non_null(names);
        }
        names[n++] = dup_printf("%s/%s", dir, e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_name);
    size_t fed = 0;
    for (size_t i = 0; i < n; i++) {
        fed += replay_file(names[i]);
        free(names[i]);
    }
    free(names);
    return fed;
}

static size_t replay_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        fail_msg("no such corpus: %s", path);
    return S_ISDIR(st.st_mode) ? replay_dir(path) : replay_file(path);
}

static void corpus_replays(void **state)
{
    (void)state;
    /* Over cmocka's own handlers, which would name only the test. */
    signal(SIGABRT, name_culprit);
    signal(SIGSEGV, name_culprit);
    signal(SIGBUS, name_culprit);
    signal(SIGFPE, name_culprit);
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&g_argc, &g_argv);
    size_t fed = 0;
    if (g_argc > 1)
        for (int i = 1; i < g_argc; i++)
            fed += replay_path(g_argv[i]);
    else {
        char *dir = dup_printf("tests/fuzz/corpus/%s", g_name);
        fed = replay_path(dir);
        free(dir);
    }
    printf("%s: %zu inputs replayed\n", g_name, fed);
    assert_true(fed > 0); /* an empty corpus tests nothing */
}

int main(int argc, char **argv)
{
    g_argc = argc;
    g_argv = argv;
    const char *base = strrchr(argv[0], '/');
    base = base ? base + 1 : argv[0];
    if (strncmp(base, "replay_", 7) != 0 || !base[7]) {
        fprintf(stderr, "replay: run me as replay_NAME, not %s\n", base);
        return 2;
    }
    g_name = base + 7;
    const struct CMUnitTest tests[] = {cmocka_unit_test(corpus_replays)};
    return cmocka_run_group_tests_name(base, tests, NULL, NULL);
}
