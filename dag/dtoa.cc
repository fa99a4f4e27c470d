// dtoa.cc: dag_dtoa and dag_itoa (dag/dtoa.h).  The shortest round-trip
// digits of a double come from {fmt}'s Dragonbox (fmt::detail::dragonbox::
// to_decimal, which libfmt exports); they are laid out here as Python's repr
// lays them out.  Writing them through fmt::format_to("{}") gave the same
// text, but its general path (format specs, digit grouping, its own
// exponent rules) cost about half of the time of a number; the layout
// below is all a JSON number needs.
#include "dag/dtoa.h"

#include <fmt/compile.h>
#include <fmt/format.h>

#include <cmath>
#include <cstring>

namespace {

// "00" .. "99": two digits a step.
constexpr char DIGITS2[] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                           "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                           "8081828384858687888990919293949596979899";

// The number of decimal digits of v (1 for 0).
int count_digits(uint64_t v)
{
    static const uint64_t POW10[] = {1,
                                     10,
                                     100,
                                     1000,
                                     10000,
                                     100000,
                                     1000000,
                                     10000000,
                                     100000000,
                                     1000000000,
                                     10000000000,
                                     100000000000,
                                     1000000000000,
                                     10000000000000,
                                     100000000000000,
                                     1000000000000000,
                                     10000000000000000,
                                     100000000000000000,
                                     1000000000000000000,
                                     10000000000000000000u};
    int bits = 64 - __builtin_clzll(v | 1);
    int t = (bits * 1233) >> 12; // log10(2^bits), rounded down or one short
    return t + (v >= POW10[t]);
}

// The 8 digits of v < 10^8, leading zeros included, at out[0 .. 8): two
// independent halves, two digits a step.
void put8(uint32_t v, char *out)
{
    uint32_t a = v / 10000, b = v % 10000;
    std::memcpy(out, DIGITS2 + a / 100 * 2, 2);
    std::memcpy(out + 2, DIGITS2 + a % 100 * 2, 2);
    std::memcpy(out + 4, DIGITS2 + b / 100 * 2, 2);
    std::memcpy(out + 6, DIGITS2 + b % 100 * 2, 2);
}

// Writes the n digits of v < 10^17 at out[0 .. n), and may write garbage up
// to out[24): the caller's buffer has the room.
void put_digits(uint64_t v, int n, char *out)
{
    char tmp[48];
    uint64_t hi = v / 100000000;
    tmp[0] = (char)('0' + hi / 100000000);
    put8((uint32_t)(hi % 100000000), tmp + 1);
    put8((uint32_t)(v % 100000000), tmp + 9); // tmp[0 .. 17): all 17 digits
    std::memcpy(out, tmp + 17 - n, 24);
}

} // namespace

extern "C" int dag_dtoa(double v, char buf[DAG_DTOA_BUF])
{
    // At most 24 characters (a sign, 17 digits, a point, "e-308"): DAG_DTOA_BUF
    // holds them with the NUL.
    char *p = buf;
    if (std::signbit(v))
        *p++ = '-', v = -v;
    if (v == 0) {
        std::memcpy(p, "0.0", 4);
        return (int)(p - buf) + 3;
    }
    auto dec = fmt::detail::dragonbox::to_decimal(v);
    int n = count_digits(dec.significand);
    int point = n + dec.exponent; // the value is 0.DIGITS times 10^point
    if (point > 16 || point < -3) {
        // d.ddde+XX: a point only after more than one digit, the exponent
        // signed and of at least two digits.
        put_digits(dec.significand, n, p + 1);
        p[0] = p[1];
        if (n > 1) {
            p[1] = '.';
            p += n + 1;
        } else {
            p += 1;
        }
        int e = point - 1;
        *p++ = 'e';
        *p++ = e < 0 ? '-' : '+';
        if (e < 0)
            e = -e;
        if (e >= 100) {
            *p++ = (char)('0' + e / 100);
            e %= 100;
        }
        *p++ = DIGITS2[e * 2];
        *p++ = DIGITS2[e * 2 + 1];
    } else if (point <= 0) { // 0.000ddd
        *p++ = '0';
        *p++ = '.';
        for (int k = 0; k < -point; k++)
            *p++ = '0';
        put_digits(dec.significand, n, p);
        p += n;
    } else if (point < n) { // dd.ddd
        put_digits(dec.significand, n, p + 1);
        for (int k = 0; k < point; k++)
            p[k] = p[k + 1];
        p[point] = '.';
        p += n + 1;
    } else { // ddd000.0
        put_digits(dec.significand, n, p);
        p += n;
        for (int k = n; k < point; k++)
            *p++ = '0';
        *p++ = '.';
        *p++ = '0';
    }
    *p = '\0';
    return (int)(p - buf);
}

extern "C" int dag_itoa(int64_t v, char buf[DAG_ITOA_BUF])
{
    char *end = fmt::format_to(buf, FMT_COMPILE("{}"), v); // at most 20 characters
    *end = '\0';
    return (int)(end - buf);
}
