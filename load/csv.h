/* csv: an RFC 4180 reader over a text buffer, and the column typing the
 * state loader uses (load/state.h; README.md, "The config file").
 *
 * Syntax.  Fields are separated by commas; records end with LF or CRLF, and
 * the last one may lack its newline.  A field may be quoted with '"'; inside
 * quotes "" stands for one quote and commas, CR and LF are data.  A UTF-8
 * byte order mark at the start is skipped.  The first record is the header:
 * its names must be non-empty and distinct, and every later record must have
 * as many fields.  One blank line at the very end is not a record.  A CR that
 * is not part of a CRLF is ordinary data in an unquoted field.
 *
 * Positions.  Errors read "NAME:LINE:COL: problem".  LINE counts physical
 * lines from 1 (a quoted field holding newlines advances it); COL counts
 * bytes from 1 within the line (the byte order mark is not counted).
 *
 * Fields.  ld_csv_next yields the record's fields as pointer and length
 * (not NUL-terminated), valid until the next call.  They point into the
 * input, except quoted fields holding "", which are unescaped into the
 * reader's scratch buffer.  Nothing is allocated per field: the field array
 * and the scratch buffer grow to the widest record and are reused.
 *
 * Types.  A column is int if every non-empty field is a whole int64
 * (optional sign, digits, no spaces, no overflow); else float if every
 * non-empty field is a decimal number (digits with an optional point and
 * exponent: no spaces, no hex, no inf/nan); else string.  An int column
 * with an empty field becomes float (the empty cells are NaN).  A column of
 * no rows is int. */
#ifndef COWDAG_CSV_H
#define COWDAG_CSV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LD_CSV_OK 0
#define LD_CSV_ERR (-1)

typedef struct ld_csv_field {
    const char *data; /* not NUL-terminated; valid until the next ld_csv_next */
    size_t len;
    size_t line, col; /* where the field starts (its opening quote if quoted) */
    size_t esc;       /* internal: scratch offset + 1 while a record is read */
} ld_csv_field;

/* A reader.  Fields other than the documented ones are private. */
typedef struct ld_csv {
    const char *name;       /* names the input in messages (borrowed) */
    const char *buf, *end;  /* the input (borrowed) */
    const char *body;       /* the first byte after the BOM */
    const char *p;          /* cursor */
    const char *line_start; /* first byte of the cursor's line */
    size_t line;            /* the cursor's line */
    size_t record_line;     /* public: line where the last record began */
    uint64_t records;       /* public: data records read so far */

    size_t ncols;               /* public: header width */
    ld_csv_field *header;      /* public: the names, NUL-terminated copies */
    char *names;                /* their storage */
    const char *first;          /* first byte after the header */
    const char *first_line_start;
    size_t first_line;

    ld_csv_field *fields; /* the current record */
    size_t nfields, fields_cap;
    char *scratch;
    size_t scratch_len, scratch_cap;
} ld_csv;

/* Starts reading buf[0..len) and reads the header.  `name` (borrowed, like
 * buf) names the input in messages.  On LD_CSV_ERR err says why
 * (empty input, a blank first line, an empty or duplicate name, bad syntax)
 * and the reader needs no ld_csv_free; otherwise it does. */
int ld_csv_open(ld_csv *p, const char *name, const char *buf, size_t len, char *err, size_t errlen);

/* Reads the next record: 1 with *fields and *n set (n == ncols), 0 at the end,
 * LD_CSV_ERR with err set. */
int ld_csv_next(ld_csv *p, const ld_csv_field **fields, size_t *n, char *err, size_t errlen);

/* Goes back to the first record after the header. */
void ld_csv_rewind(ld_csv *p);

void ld_csv_free(ld_csv *p);

/* --- types ---------------------------------------------------------------- */

typedef enum ld_csv_type { LD_CSV_INT, LD_CSV_FLOAT, LD_CSV_STR } ld_csv_type;

/* "int" "float" "string" */
const char *ld_csv_type_name(ld_csv_type t);

/* Whether s[0..len) is a whole int64 / a decimal number as described
 * above; the value goes to *out (which may be NULL).  Decimal numbers out
 * of double's range read as +-inf (strtod's result). */
bool ld_csv_parse_int(const char *s, size_t len, int64_t *out);
bool ld_csv_parse_float(const char *s, size_t len, double *out);

/* Reads every record from the cursor on (checking the whole syntax), sets
 * types[0..ncols) and *nrows, then rewinds.  LD_CSV_ERR with err set on
 * the first malformed record. */
int ld_csv_scan_types(ld_csv *p, ld_csv_type *types, size_t *nrows, char *err, size_t errlen);

#endif
