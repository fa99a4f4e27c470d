// dtoa.cc: dag_dtoa and dag_itoa (dag/dtoa.h) through {fmt}, whose
// shortest round-trip formatting of doubles (the Dragonbox algorithm) is
// Python's repr but for one detail, made good here: integral values in
// decimal notation get their ".0".
#include "dag/dtoa.h"

#include <fmt/compile.h>
#include <fmt/format.h>

extern "C" int dag_dtoa(double v, char buf[DAG_DTOA_BUF])
{
    // At most 24 characters (a sign, 17 digits, a point, an exponent): the
    // bound leaves room for ".0" and the NUL.
    char *end = fmt::format_to_n(buf, DAG_DTOA_BUF - 3, FMT_COMPILE("{}"), v).out;
    bool plain = true; // digits only, as "100" or "-0": Python writes "100.0"
    for (const char *p = buf; p < end && plain; p++)
        plain = (*p >= '0' && *p <= '9') || *p == '-';
    if (plain) {
        *end++ = '.';
        *end++ = '0';
    }
    *end = '\0';
    return (int)(end - buf);
}

extern "C" int dag_itoa(int64_t v, char buf[DAG_ITOA_BUF])
{
    char *end = fmt::format_to_n(buf, DAG_ITOA_BUF - 1, FMT_COMPILE("{}"), v).out;
    *end = '\0';
    return (int)(end - buf);
}
