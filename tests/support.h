/* support: what the test suites share -- running the cowdag binary,
 * reading files and streams, a fresh heap per case (linked into every test
 * binary; nothing here asserts, so it needs no cmocka).  Out of memory ends
 * the test binary with status 2. */
#ifndef COWDAG_TEST_SUPPORT_H
#define COWDAG_TEST_SUPPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The binary under test: $COWDAG, else build/cowdag. */
const char *cowdag_bin(void);

/* strdup and a printf into a new string (malloc'ed). */
char *dup_or_die(const char *s);
char *dup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* s between single quotes, for sh (malloc'ed). */
char *sh_quote(const char *s);

/* The whole of a file, NUL-terminated (malloc'ed), its length in *len if
 * len is not NULL; NULL if it cannot be read. */
char *slurp(const char *path, size_t *len);

/* The same for a stream read to its end (a popen'ed command's output): a
 * malloc'ed NUL-terminated buffer, never NULL; its length in *len if len is
 * not NULL. */
char *slurp_stream(FILE *f, size_t *len);

/* cmocka fixtures of the suites that want a fresh heap per case:
 * heap_init(NULL) before, heap_destroy() after; state is unused.  Always 0. */
int setup_heap(void **state);
int teardown_heap(void **state);

/* Objects alive in the heap now (heap_stats.objects). */
uint64_t live_objects(void);

/* Removes a folder that holds only files (a suite's work folder); 0 on
 * success. */
int remove_flat_dir(const char *dir);

#endif
