/* test_csv: the RFC 4180 reader and the column typing (load/csv.h, whose
 * header comment describes the rules; the loader built on them is tested in
 * tests/test_state.c).  Inputs are inline, so each test shows its bytes. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "load/csv.h"

#define FIXTURE_DIR "tests/fixtures/csv"

/* Renders the whole input as "[h1][h2]\n[a][b]\n..." (header first), or
 * "ERR <message>" if reading fails anywhere.  Returns a malloc'ed string. */
static char *render_n(const char *text, size_t len)
{
    char err[256];
    size_t cap = 4 * len + 64, n = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    ld_csv p;
    if (ld_csv_open(&p, "t.csv", text, len, err, sizeof err) != LD_CSV_OK) {
        snprintf(out, cap, "ERR %s", err);
        return out;
    }
    for (size_t i = 0; i < p.ncols; i++)
        n += (size_t)snprintf(out + n, cap - n, "[%s]", p.header[i].data);
    out[n++] = '\n';
    const ld_csv_field *f;
    size_t nf;
    int rc;
    while ((rc = ld_csv_next(&p, &f, &nf, err, sizeof err)) == 1) {
        for (size_t i = 0; i < nf; i++)
            n += (size_t)snprintf(out + n, cap - n, "[%.*s]", (int)f[i].len, f[i].data);
        out[n++] = '\n';
    }
    out[n] = '\0';
    if (rc != 0)
        snprintf(out, cap, "ERR %s", err);
    ld_csv_free(&p);
    return out;
}

static char *render(const char *text) { return render_n(text, strlen(text)); }

static void expect_render(const char *text, const char *want)
{
    char *got = render(text);
    assert_string_equal(got, want);
    free(got);
}

static void expect_error(const char *text, const char *want)
{
    char *got = render(text);
    char full[300];
    snprintf(full, sizeof full, "ERR %s", want);
    assert_string_equal(got, full);
    free(got);
}

/* --- syntax -------------------------------------------------------------- */

static void plain_rows_split_at_commas_and_newlines(void **state)
{
    (void)state;
    expect_render("a,b,c\n1,2,3\nx,y,z\n", "[a][b][c]\n[1][2][3]\n[x][y][z]\n");
}

static void quoted_fields_keep_their_commas(void **state)
{
    (void)state;
    expect_render("name,city\n\"Smith, J\",\"Paris, FR\"\n", "[name][city]\n[Smith, J][Paris, FR]\n");
}

static void doubled_quotes_inside_quotes_read_as_one(void **state)
{
    (void)state;
    expect_render("q,r\n\"say \"\"hi\"\"\",\"\"\"\"\n", "[q][r]\n[say \"hi\"][\"]\n");
}

static void escaped_fields_survive_scratch_growth(void **state)
{
    (void)state;
    /* 40 fields of 20 escaped quotes each: the scratch buffer must grow
     * several times while the record is read, and earlier fields must still
     * read right once it is done. */
    char text[4096], want[4096];
    size_t n = 0, w = 0;
    for (int c = 0; c < 40; c++)
        n += (size_t)snprintf(text + n, sizeof text - n, "%sh%d", c ? "," : "", c);
    text[n++] = '\n';
    for (int c = 0; c < 40; c++)
        w += (size_t)snprintf(want + w, sizeof want - w, "[h%d]", c);
    want[w++] = '\n';
    for (int c = 0; c < 40; c++) {
        n += (size_t)snprintf(text + n, sizeof text - n, "%s\"%d", c ? "," : "", c);
        w += (size_t)snprintf(want + w, sizeof want - w, "[%d", c);
        for (int q = 0; q < 20; q++) {
            n += (size_t)snprintf(text + n, sizeof text - n, "\"\"");
            want[w++] = '"';
        }
        text[n++] = '"';
        want[w++] = ']';
    }
    text[n++] = '\n';
    text[n] = '\0';
    want[w++] = '\n';
    want[w] = '\0';
    expect_render(text, want);
}

static void quoted_newlines_are_data_and_advance_line_numbers(void **state)
{
    (void)state;
    const char *text = "id,note\n1,\"two\nlines\"\n2,\"three\n\nlines\"\n3,x\"y\n";
    /* The fields keep their newlines... */
    char *got = render_n(text, strlen("id,note\n1,\"two\nlines\"\n2,\"three\n\nlines\"\n"));
    assert_string_equal(got, "[id][note]\n[1][two\nlines]\n[2][three\n\nlines]\n");
    free(got);
    /* ...and the quote on physical line 7 is reported there. */
    expect_error(text, "t.csv:7:4: quote inside an unquoted field");

    /* Field positions count physical lines too. */
    char err[256];
    ld_csv p;
    assert_int_equal(ld_csv_open(&p, "t.csv", text, strlen(text), err, sizeof err), LD_CSV_OK);
    const ld_csv_field *f;
    size_t n;
    assert_int_equal(ld_csv_next(&p, &f, &n, err, sizeof err), 1);
    assert_int_equal(p.record_line, 2);
    assert_int_equal(f[1].line, 2);
    assert_int_equal(f[1].col, 3);
    assert_int_equal(ld_csv_next(&p, &f, &n, err, sizeof err), 1);
    assert_int_equal(p.record_line, 4);
    assert_int_equal(f[0].line, 4);
    assert_int_equal(f[0].col, 1);
    ld_csv_free(&p);
}

static void crlf_ends_records_and_a_lone_cr_is_data(void **state)
{
    (void)state;
    expect_render("a,b\r\n1,2\r\n\"x\r\ny\",3\r\n", "[a][b]\n[1][2]\n[x\r\ny][3]\n");
    expect_render("a,b\r\n1\r2,3\r\n", "[a][b]\n[1\r2][3]\n");
}

static void the_last_record_may_lack_a_newline(void **state)
{
    (void)state;
    expect_render("a,b\n1,2\n3,4", "[a][b]\n[1][2]\n[3][4]\n");
    expect_render("a,b\n1,\"2\"", "[a][b]\n[1][2]\n");
    expect_render("a,b\n1,", "[a][b]\n[1][]\n");
    expect_render("a,b", "[a][b]\n");
}

static void a_byte_order_mark_is_skipped_and_not_counted(void **state)
{
    (void)state;
    expect_render("\xEF\xBB\xBFid,v\n1,2\n", "[id][v]\n[1][2]\n");
    /* Columns on the first line start after the mark. */
    expect_error("\xEF\xBB\xBFid,v\"\n", "t.csv:1:5: quote inside an unquoted field");
}

static void empty_fields_are_empty(void **state)
{
    (void)state;
    expect_render("a,b,c\n,,\n\"\",x,\n", "[a][b][c]\n[][][]\n[][x][]\n");
    /* A one-column file: an empty line in the middle is an empty field. */
    expect_render("a\n1\n\n2\n", "[a]\n[1]\n[]\n[2]\n");
}

static void a_blank_final_line_is_not_a_record(void **state)
{
    (void)state;
    expect_render("a\n1\n\n", "[a]\n[1]\n");
    expect_render("a,b\r\n1,2\r\n\r\n", "[a][b]\n[1][2]\n");
    /* Only the last one: two blank lines leave a one-field record. */
    expect_error("a,b\n1,2\n\n\n", "t.csv:3:1: record has 1 field, the header has 2");
}

static void rewind_goes_back_to_the_first_record(void **state)
{
    (void)state;
    const char *text = "a\n\"x\ny\"\n2\n";
    char err[256];
    ld_csv p;
    assert_int_equal(ld_csv_open(&p, "t.csv", text, strlen(text), err, sizeof err), LD_CSV_OK);
    const ld_csv_field *f;
    size_t n;
    while (ld_csv_next(&p, &f, &n, err, sizeof err) == 1)
        ;
    assert_int_equal(p.records, 2);
    ld_csv_rewind(&p);
    assert_int_equal(p.records, 0);
    assert_int_equal(ld_csv_next(&p, &f, &n, err, sizeof err), 1);
    assert_int_equal(f[0].len, 3);
    assert_memory_equal(f[0].data, "x\ny", 3);
    assert_int_equal(f[0].line, 2);
    assert_int_equal(ld_csv_next(&p, &f, &n, err, sizeof err), 1);
    assert_int_equal(f[0].line, 4);
    assert_int_equal(ld_csv_next(&p, &f, &n, err, sizeof err), 0);
    ld_csv_free(&p);
}

static void a_spreadsheet_export_reads_whole(void **state)
{
    (void)state;
    /* BOM, CRLF, a quoted CRLF and doubled quotes, as spreadsheets write. */
    FILE *fp = fopen(FIXTURE_DIR "/spreadsheet.csv", "rb");
    assert_non_null(fp);
    char text[1024];
    size_t len = fread(text, 1, sizeof text - 1, fp);
    fclose(fp);
    text[len] = '\0';
    char *got = render_n(text, len);
    assert_string_equal(got, "[Name][Notes][Amount]\n"
                             "[Widget][first line\r\nsecond \"line\"][12]\n"
                             "[Gadget, large][][3.5]\n");
    free(got);
}

/* --- malformed input ----------------------------------------------------- */

static void an_unterminated_quote_is_reported_where_it_opens(void **state)
{
    (void)state;
    expect_error("a,b\n1,\"open\n", "t.csv:2:3: unterminated quoted field");
    expect_error("a,b\n1,2\n3,\"x\n\n\ny", "t.csv:3:3: unterminated quoted field");
    /* a doubled quote at the very end does not close it */
    expect_error("a\n\"x\"\"", "t.csv:2:1: unterminated quoted field");
}

static void a_quote_inside_an_unquoted_field_is_an_error(void **state)
{
    (void)state;
    expect_error("a,b\n1,ab\"c\n", "t.csv:2:5: quote inside an unquoted field");
    expect_error("a\"b\n", "t.csv:1:2: quote inside an unquoted field");
}

static void only_a_comma_or_newline_may_follow_a_closing_quote(void **state)
{
    (void)state;
    expect_error("a,b\n\"x\"y,2\n", "t.csv:2:4: unexpected 'y' after a closing quote");
    expect_error("a,b\n1,\"x\" \n", "t.csv:2:6: unexpected ' ' after a closing quote");
    /* after a quoted field spanning lines, the column is on the last line */
    expect_error("a,b\n1,\"x\ny\"z\n", "t.csv:3:3: unexpected 'z' after a closing quote");
    expect_error("a\n\"x\"\rq\n", "t.csv:2:4: unexpected \\x0d after a closing quote");
}

static void a_record_of_the_wrong_width_is_reported_at_its_line(void **state)
{
    (void)state;
    expect_error("a,b,c\n1,2,3\n4,5\n", "t.csv:3:1: record has 2 fields, the header has 3");
    expect_error("a,b\n1,2,3\n", "t.csv:2:1: record has 3 fields, the header has 2");
    /* the record's first line, though it spans three */
    expect_error("a,b\n1,2\n\"x\n\ny\",2,3\n", "t.csv:3:1: record has 3 fields, the header has 2");
    /* a blank line in the middle of a two-column file */
    expect_error("a,b\n1,2\n\n3,4\n", "t.csv:3:1: record has 1 field, the header has 2");
}

static void empty_input_has_no_header(void **state)
{
    (void)state;
    expect_error("", "t.csv:1:1: empty input: expected a header");
    expect_error("\xEF\xBB\xBF", "t.csv:1:1: empty input: expected a header");
    expect_error("\n", "t.csv:1:1: missing header: the first line is blank");
    expect_error("\r\na,b\n", "t.csv:1:1: missing header: the first line is blank");
}

static void header_names_must_be_non_empty_and_distinct(void **state)
{
    (void)state;
    expect_error("a,,c\n", "t.csv:1:3: empty name in the header (column 2)");
    expect_error("a,b,\n1,2,3\n", "t.csv:1:5: empty name in the header (column 3)");
    expect_error("\"\"\n", "t.csv:1:1: empty name in the header (column 1)");
    expect_error("id,name,\"id\"\n", "t.csv:1:9: duplicate name 'id' in the header (columns 1 and 3)");
}

/* --- numbers and types --------------------------------------------------- */

static void ints_are_whole_int64_without_spaces(void **state)
{
    (void)state;
    int64_t v = 0;
    assert_true(ld_csv_parse_int("42", 2, &v));
    assert_true(v == 42);
    assert_true(ld_csv_parse_int("-7", 2, &v));
    assert_true(v == -7);
    assert_true(ld_csv_parse_int("+007", 4, &v));
    assert_true(v == 7);
    assert_true(ld_csv_parse_int("9223372036854775807", 19, &v));
    assert_true(v == INT64_MAX);
    assert_true(ld_csv_parse_int("-9223372036854775808", 20, &v));
    assert_true(v == INT64_MIN);
    assert_false(ld_csv_parse_int("9223372036854775808", 19, &v));
    assert_false(ld_csv_parse_int("-9223372036854775809", 20, &v));
    assert_false(ld_csv_parse_int("", 0, &v));
    assert_false(ld_csv_parse_int("-", 1, &v));
    assert_false(ld_csv_parse_int(" 1", 2, &v));
    assert_false(ld_csv_parse_int("1 ", 2, &v));
    assert_false(ld_csv_parse_int("1.0", 3, &v));
    assert_false(ld_csv_parse_int("0x10", 4, &v));
    /* only the given length counts */
    assert_true(ld_csv_parse_int("12,34", 2, &v));
    assert_true(v == 12);
}

static void floats_are_decimal_numbers_only(void **state)
{
    (void)state;
    double v = 0;
    assert_true(ld_csv_parse_float("2.5", 3, &v));
    assert_true(v == 2.5);
    assert_true(ld_csv_parse_float("1e3", 3, &v));
    assert_true(v == 1000.0);
    assert_true(ld_csv_parse_float("-.5E-2", 6, &v));
    assert_true(v == -0.005);
    assert_true(ld_csv_parse_float("7.", 2, &v));
    assert_true(v == 7.0);
    assert_true(ld_csv_parse_float("12", 2, &v));
    assert_true(v == 12.0);
    /* the field ends where its length says, not at the next digit */
    assert_true(ld_csv_parse_float("1.5,25", 3, &v));
    assert_true(v == 1.5);
    const char *bad[] = {"", ".", "e5", "1e", "1e+", " 1", "1 ", "inf", "-inf", "nan", "NaN", "Infinity", "0x1p3", "1,5", "--1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (ld_csv_parse_float(bad[i], strlen(bad[i]), &v))
            fail_msg("'%s' read as a float", bad[i]);
    }
}

/* Types of each column of text, as "int,float,string". */
static void expect_types(const char *text, const char *want, size_t want_rows)
{
    char err[256], got[256] = "";
    ld_csv p;
    assert_int_equal(ld_csv_open(&p, "t.csv", text, strlen(text), err, sizeof err), LD_CSV_OK);
    ld_csv_type types[16];
    size_t nrows = 99;
    assert_true(p.ncols <= 16);
    if (ld_csv_scan_types(&p, types, &nrows, err, sizeof err) != LD_CSV_OK)
        fail_msg("%s", err);
    for (size_t i = 0; i < p.ncols; i++) {
        strcat(got, i ? "," : "");
        strcat(got, ld_csv_type_name(types[i]));
    }
    assert_string_equal(got, want);
    assert_int_equal(nrows, want_rows);
    /* scanning leaves the reader at the first record */
    const ld_csv_field *f;
    size_t n;
    assert_int_equal(ld_csv_next(&p, &f, &n, err, sizeof err), want_rows ? 1 : 0);
    ld_csv_free(&p);
}

static void a_column_of_whole_numbers_is_int(void **state)
{
    (void)state;
    expect_types("n\n1\n-20\n+3\n9223372036854775807\n", "int", 4);
}

static void a_column_of_decimal_numbers_is_float(void **state)
{
    (void)state;
    expect_types("x,y\n1.5,1e3\n2,2E-2\n-3,7\n", "float,float", 3);
}

static void a_column_mixing_numbers_and_text_is_string(void **state)
{
    (void)state;
    expect_types("a,b,c,d\n1,1.5,1,x\nx,2,nan,2\n", "string,float,string,string", 2);
    expect_types("a,b\n1, 2\n3,4\n", "int,string", 2);
}

static void an_int_column_that_overflows_is_float(void **state)
{
    (void)state;
    expect_types("a,b\n1,-9223372036854775808\n9223372036854775808,-9223372036854775809\n", "float,float", 2);
}

static void an_empty_cell_makes_an_int_column_float(void **state)
{
    (void)state;
    expect_types("a,b,c,d\n1,2.5,x,\n,,,\n3,4,y,\n", "float,float,string,float", 3);
    expect_types("a,b\n", "int,int", 0);
}

static void a_syntax_error_stops_the_scan(void **state)
{
    (void)state;
    const char *text = "a,b\n1,2\n3\n";
    char err[256];
    ld_csv p;
    assert_int_equal(ld_csv_open(&p, "t.csv", text, strlen(text), err, sizeof err), LD_CSV_OK);
    ld_csv_type types[2];
    size_t nrows;
    assert_int_equal(ld_csv_scan_types(&p, types, &nrows, err, sizeof err), LD_CSV_ERR);
    assert_string_equal(err, "t.csv:3:1: record has 1 field, the header has 2");
    ld_csv_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plain_rows_split_at_commas_and_newlines),
        cmocka_unit_test(quoted_fields_keep_their_commas),
        cmocka_unit_test(doubled_quotes_inside_quotes_read_as_one),
        cmocka_unit_test(escaped_fields_survive_scratch_growth),
        cmocka_unit_test(quoted_newlines_are_data_and_advance_line_numbers),
        cmocka_unit_test(crlf_ends_records_and_a_lone_cr_is_data),
        cmocka_unit_test(the_last_record_may_lack_a_newline),
        cmocka_unit_test(a_byte_order_mark_is_skipped_and_not_counted),
        cmocka_unit_test(empty_fields_are_empty),
        cmocka_unit_test(a_blank_final_line_is_not_a_record),
        cmocka_unit_test(rewind_goes_back_to_the_first_record),
        cmocka_unit_test(a_spreadsheet_export_reads_whole),
        cmocka_unit_test(an_unterminated_quote_is_reported_where_it_opens),
        cmocka_unit_test(a_quote_inside_an_unquoted_field_is_an_error),
        cmocka_unit_test(only_a_comma_or_newline_may_follow_a_closing_quote),
        cmocka_unit_test(a_record_of_the_wrong_width_is_reported_at_its_line),
        cmocka_unit_test(empty_input_has_no_header),
        cmocka_unit_test(header_names_must_be_non_empty_and_distinct),
        cmocka_unit_test(ints_are_whole_int64_without_spaces),
        cmocka_unit_test(floats_are_decimal_numbers_only),
        cmocka_unit_test(a_column_of_whole_numbers_is_int),
        cmocka_unit_test(a_column_of_decimal_numbers_is_float),
        cmocka_unit_test(a_column_mixing_numbers_and_text_is_string),
        cmocka_unit_test(an_int_column_that_overflows_is_float),
        cmocka_unit_test(an_empty_cell_makes_an_int_column_float),
        cmocka_unit_test(a_syntax_error_stops_the_scan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
