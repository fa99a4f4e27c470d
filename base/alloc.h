/* alloc: malloc and friends for the memory cowdag keeps outside its
 * managed heap (bookkeeping, scratch, config text).  Running out of it
 * leaves nothing sensible to do, so these panic instead of returning NULL
 * (base/err.h); a caller that can recover calls malloc itself. */
#ifndef COWDAG_BASE_ALLOC_H
#define COWDAG_BASE_ALLOC_H

#include <stddef.h>

/* Never NULL; a size of 0 still gives a unique block (of 1 byte).  The
 * caller owns the result and frees it with free(). */
void *base_malloc(size_t n);
void *base_calloc(size_t n, size_t size);
void *base_realloc(void *p, size_t n);

/* A copy of s (of at most n bytes of it), NUL-terminated; NULL copies as
 * "".  The caller frees it. */
char *base_strdup(const char *s);
char *base_strndup(const char *s, size_t n);

#endif
