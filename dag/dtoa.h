/* dtoa: number formatting for JSON output -- shortest round-trip doubles as
 * Python's repr writes them, and int64s.  A thin C entry point over {fmt}
 * (Debian's libfmt), which does the real work in dag/dtoa.cc. */
#ifndef COWDAG_DTOA_H
#define COWDAG_DTOA_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DAG_DTOA_BUF 40
#define DAG_ITOA_BUF 24

/* Writes v as Python's repr does -- the fewest digits that read back to the
 * same double, "1.0" for integral values, exponents from 1e16 and below
 * 1e-4 ("1e+16", "1e-05") -- NUL-terminated, and returns the length.  v must
 * be finite. */
int dag_dtoa(double v, char buf[DAG_DTOA_BUF]);

/* Writes v in decimal, NUL-terminated, and returns the length. */
int dag_itoa(int64_t v, char buf[DAG_ITOA_BUF]);

#ifdef __cplusplus
}
#endif

#endif
