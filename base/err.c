/* err.c: the (err, errlen) formatter and the panic every layer ends in
 * (base/err.h). */
#include "base/err.h"

#include <stdio.h>
#include <stdlib.h>

int base_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

_Noreturn void base_vpanic(const char *who, const char *fmt, va_list ap)
{
    fprintf(stderr, "cowdag: %s: ", who);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    abort();
}

_Noreturn void base_panic(const char *who, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    base_vpanic(who, fmt, ap);
}
