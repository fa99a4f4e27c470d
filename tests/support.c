/* support.c: helpers the test suites share (tests/support.h). */
#include "tests/support.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "heap/heap.h"

static void *or_die(void *p)
{
    if (!p) {
        fputs("test: out of memory\n", stderr);
        exit(2);
    }
    return p;
}

const char *cowdag_bin(void)
{
    const char *b = getenv("COWDAG");
    return b && *b ? b : "build/cowdag";
}

char *dup_or_die(const char *s) { return or_die(strdup(s)); }

char *dup_printf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    return or_die(n < 0 ? NULL : s);
}

char *sh_quote(const char *s)
{
    size_t n = 3;
    for (const char *p = s; *p; p++)
        n += *p == '\'' ? 4 : 1;
    char *q = or_die(malloc(n)), *o = q;
    *o++ = '\'';
    for (const char *p = s; *p; p++) {
        if (*p == '\'') {
            memcpy(o, "'\\''", 4);
            o += 4;
        } else {
            *o++ = *p;
        }
    }
    *o++ = '\'';
    *o = '\0';
    return q;
}

char *slurp_stream(FILE *f, size_t *len)
{
    size_t cap = 4096, n = 0, got;
    char *buf = or_die(malloc(cap));
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n < 2)
            buf = or_die(realloc(buf, cap *= 2));
    }
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = slurp_stream(f, len);
    fclose(f);
    return buf;
}

int setup_heap(void **state)
{
    (void)state;
    heap_init(NULL);
    return 0;
}

int teardown_heap(void **state)
{
    (void)state;
    heap_destroy();
    return 0;
}

uint64_t live_objects(void)
{
    heap_stats s;
    heap_get_stats(&s);
    return s.objects;
}

int remove_flat_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char *path = dup_printf("%s/%s", dir, e->d_name);
            unlink(path);
            free(path);
        }
        closedir(d);
    }
    return rmdir(dir) == 0 ? 0 : -1;
}
