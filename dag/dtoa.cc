// dtoa.cc: dag_dtoa (dag/dtoa.h) through double-conversion's shortest mode,
// configured to print as Python's repr does.
#include "dag/dtoa.h"

#include <double-conversion/double-to-string.h>

using double_conversion::DoubleToStringConverter;
using double_conversion::StringBuilder;

static const DoubleToStringConverter python_repr(
    DoubleToStringConverter::EMIT_POSITIVE_EXPONENT_SIGN | DoubleToStringConverter::EMIT_TRAILING_DECIMAL_POINT |
        DoubleToStringConverter::EMIT_TRAILING_ZERO_AFTER_POINT,
    "Infinity", "NaN", 'e',
    -4, 16, // decimal notation for 1e-4 <= |v| < 1e16, as repr
    0, 0,
    2); // exponents of at least two digits: 1e-05

extern "C" int dag_dtoa(double v, char buf[DAG_DTOA_BUF])
{
    StringBuilder sb(buf, DAG_DTOA_BUF);
    python_repr.ToShortest(v, &sb);
    int n = sb.position();
    sb.Finalize();
    return n;
}
