/* alloc.c: allocation that ends in a panic when memory runs out
 * (base/alloc.h). */
#include "base/alloc.h"

#include <stdlib.h>
#include <string.h>

#include "base/err.h"

void *base_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        base_panic("alloc", "out of memory (%zu bytes)", n);
    return p;
}

void *base_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        base_panic("alloc", "out of memory (%zu x %zu bytes)", n, size);
    return p;
}

void *base_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        base_panic("alloc", "out of memory (%zu bytes)", n);
    return q;
}

char *base_strndup(const char *s, size_t n)
{
    char *d = strndup(s ? s : "", n);
    if (!d)
        base_panic("alloc", "out of memory (%zu bytes)", n);
    return d;
}

char *base_strdup(const char *s) { return base_strndup(s, s ? strlen(s) : 0); }
