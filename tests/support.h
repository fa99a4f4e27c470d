/* support: what the test suites that run the cowdag binary or read files
 * share (linked into every test binary; nothing here asserts, so it needs
 * no cmocka).  Out of memory ends the test binary with status 2. */
#ifndef COWDAG_TEST_SUPPORT_H
#define COWDAG_TEST_SUPPORT_H

#include <stddef.h>

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

/* Removes a folder that holds only files (a suite's work folder); 0 on
 * success. */
int remove_flat_dir(const char *dir);

#endif
