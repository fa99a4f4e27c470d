/* err: the two ways a cowdag function reports trouble -- a message into
 * the caller's (err, errlen) buffer for bad input, and a panic for an
 * impossible state or exhausted memory (STYLE.md, "Errors"). */
#ifndef COWDAG_BASE_ERR_H
#define COWDAG_BASE_ERR_H

#include <stdarg.h>
#include <stddef.h>

/* Formats a message into err (cut to errlen, always terminated); err may
 * be NULL or errlen 0, and then nothing is written.  Returns -1, which is
 * every layer's error value (HEAP_ERR, DAG_ERR, LD_ERR, MS_ERR), so a
 * caller can `return base_errf(err, errlen, ...)`. */
int base_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Writes "cowdag: WHO: message" to stderr and aborts.  For states that
 * cannot happen and for memory that cannot be had, never for bad input. */
_Noreturn void base_panic(const char *who, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
_Noreturn void base_vpanic(const char *who, const char *fmt, va_list ap);

#endif
