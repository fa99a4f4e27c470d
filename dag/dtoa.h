/* dtoa: shortest round-trip formatting of doubles, for JSON output.  A thin
 * C entry point over Google's double-conversion (Debian's
 * libdouble-conversion), which does the real work in dag/dtoa.cc. */
#ifndef COWDAG_DTOA_H
#define COWDAG_DTOA_H

#ifdef __cplusplus
extern "C" {
#endif

#define DAG_DTOA_BUF 40

/* Writes v as Python's repr does -- the fewest digits that read back to the
 * same double, "1.0" for integral values, exponents from 1e16 and below
 * 1e-4 ("1e+16", "1e-05") -- and returns the length.  v must be finite. */
int dag_dtoa(double v, char buf[DAG_DTOA_BUF]);

#ifdef __cplusplus
}
#endif

#endif
