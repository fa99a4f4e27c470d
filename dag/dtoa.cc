// dtoa.cc: dag_dtoa and dag_itoa (dag/dtoa.h) through {fmt}, whose
// shortest round-trip formatting of doubles (the Dragonbox algorithm) is
// Python's repr but for one detail, made good here: integral values in
// decimal notation get their ".0".
#include "dag/dtoa.h"

#include <fmt/compile.h>
#include <fmt/format.h>

extern "C" int dag_dtoa(double v, char buf[DAG_DTOA_BUF])
{
    // At most 24 characters (a sign, 17 digits, a point, "e-308"), so
    // DAG_DTOA_BUF holds them with ".0" and the NUL.  (format_to_n would
    // state the bound, at 86 ns a number instead of 32.)
    char *end = fmt::format_to(buf, FMT_COMPILE("{}"), v);
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
    char *end = fmt::format_to(buf, FMT_COMPILE("{}"), v); // at most 20 characters
    *end = '\0';
    return (int)(end - buf);
}
