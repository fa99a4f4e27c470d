/* test_request: request bodies parsed into heap values (dag/json_in.h).
 * Each case holds the parser to jansson's verdict -- json_loadb with
 * JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, converted as dag_value_from_json
 * converts it -- on the same text: the same value, or the same error with
 * the same line, column and reason.  Then a corpus of documents and a few
 * thousand deterministic mutations of them, replayed on every run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dag/json_in.h"
#include "dag/value.h"
#include "heap/gc.h"
#include "tests/support.h"

static int teardown(void **state)
{
    (void)state;
    gc_collect(2);
    heap_stats s;
    heap_get_stats(&s);
    heap_destroy();
    return s.objects == 0 ? 0 : -1; /* every case releases what it made */
}

/* o as JSON text (malloc'ed), through the response writer. */
static char *emit(heap_obj *o)
{
    dag_writer w;
    dag_writer_init_mem(&w);
    char err[160];
    if (dag_emit_value(&w, o, err, sizeof err) != DAG_OK)
        fail_msg("cannot emit: %s", err);
    return dag_writer_take(&w, NULL);
}

/* Whether two parsed values are equal, types and all (an int is not a
 * float, 0.0 is not -0.0, dicts in the same order). */
static bool same_value(heap_obj *a, heap_obj *b)
{
    if (heap_type_of(a) != heap_type_of(b))
        return false;
    switch (heap_type_of(a)) {
    case HT_NONE:
        return true;
    case HT_BOOL:
        return heap_bool_value(a) == heap_bool_value(b);
    case HT_INT:
        return heap_int_value(a) == heap_int_value(b);
    case HT_FLOAT:
        return memcmp(&(double){heap_float_value(a)}, &(double){heap_float_value(b)}, sizeof(double)) == 0;
    case HT_STR:
        return heap_str_len(a) == heap_str_len(b) && memcmp(heap_str_data(a), heap_str_data(b), heap_str_len(a)) == 0;
    case HT_LIST:
        if (heap_list_len(a) != heap_list_len(b))
            return false;
        for (size_t i = 0; i < heap_list_len(a); i++)
            if (!same_value(heap_list_get(a, i), heap_list_get(b, i)))
                return false;
        return true;
    case HT_DICT: {
        if (heap_dict_len(a) != heap_dict_len(b))
            return false;
        size_t pa = 0, pb = 0;
        heap_obj *ka, *va, *kb, *vb;
        while (heap_dict_next(a, &pa, &ka, &va) && heap_dict_next(b, &pb, &kb, &vb))
            if (!same_value(ka, kb) || !same_value(va, vb))
                return false;
        return true;
    }
    default:
        fail_msg("a parsed value of type %s", heap_type_name(heap_type_of(a)));
    }
    return false;
}

/* The verdicts of both parsers on text[0..len) agree: both refuse it with
 * the same error, or both take it and make values that write the same JSON
 * and have the same types all the way down (an int is not a float). */
static void agree(const char *text, size_t len)
{
    heap_obj *a, *b;
    json_error_t ea, eb;
    memset(&ea, 0, sizeof ea);
    memset(&eb, 0, sizeof eb);
    int ra = dag_json_parse(text, len, &a, &ea);
    int rb = dag_json_parse_jansson(text, len, &b, &eb);
    if (ra != rb)
        fail_msg("on %.*s: simdjson path %s, jansson %s (%s)", (int)(len > 200 ? 200 : len), text,
                 ra ? "refuses" : "takes", rb ? "refuses" : "takes", rb ? eb.text : ea.text);
    if (ra != DAG_OK) {
        assert_int_equal(ea.line, eb.line);
        assert_int_equal(ea.column, eb.column);
        assert_string_equal(ea.text, eb.text);
        assert_null(a);
        return;
    }
    if (!same_value(a, b)) {
        char *ta = emit(a), *tb = emit(b);
        fail_msg("on %.*s: simdjson path gives %s, jansson %s", (int)(len > 200 ? 200 : len), text, ta, tb);
    }
    heap_obj *pa = dag_value_unpack(a);
    assert_ptr_equal(pa, a); /* dag_json_parse packs nothing */
    heap_decref(pa);
    heap_decref(a);
    heap_decref(b);
}

static void agree_s(const char *text) { agree(text, strlen(text)); }

/* Parses text that must be refused; returns the error. */
static json_error_t refused(const char *text, size_t len)
{
    heap_obj *o = NULL;
    json_error_t e;
    assert_int_equal(dag_json_parse(text, len, &o, &e), DAG_ERR);
    assert_null(o);
    agree(text, len);
    return e;
}

static heap_obj *parsed(const char *text)
{
    heap_obj *o = NULL;
    json_error_t e;
    if (dag_json_parse(text, strlen(text), &o, &e) != DAG_OK)
        fail_msg("refused %s: line %d, column %d: %s", text, e.line, e.column, e.text);
    agree_s(text);
    return o;
}

/* ====================================================================== */
/* {  Values                                                               */
/* ====================================================================== */

static void every_json_type_becomes_its_heap_value(void **state)
{
    (void)state;
    heap_obj *o = parsed("{\"i\": 42, \"neg\": -7, \"f\": 2.5, \"e\": 1e3, \"s\": \"caf\\u00e9 \\ud83d\\ude00\", "
                         "\"t\": true, \"no\": false, \"z\": null, \"l\": [1, \"two\", [3.0], {}], \"d\": {\"k\": []}}");
    assert_int_equal(heap_type_of(o), HT_DICT);
    assert_int_equal(heap_dict_len(o), 10);
    heap_obj *v = heap_dict_get_str(o, "i");
    assert_int_equal(heap_type_of(v), HT_INT);
    assert_int_equal(heap_int_value(v), 42);
    assert_int_equal(heap_int_value(heap_dict_get_str(o, "neg")), -7);
    v = heap_dict_get_str(o, "f");
    assert_int_equal(heap_type_of(v), HT_FLOAT);
    assert_true(heap_float_value(v) == 2.5);
    v = heap_dict_get_str(o, "e"); /* an exponent makes a float, as in jansson */
    assert_int_equal(heap_type_of(v), HT_FLOAT);
    assert_true(heap_float_value(v) == 1000.0);
    v = heap_dict_get_str(o, "s");
    assert_int_equal(heap_type_of(v), HT_STR);
    assert_string_equal(heap_str_data(v), "caf\xc3\xa9 \xf0\x9f\x98\x80");
    assert_true(heap_dict_get_str(o, "t") == heap_bool(true));
    assert_true(heap_dict_get_str(o, "no") == heap_bool(false));
    assert_true(heap_dict_get_str(o, "z") == heap_none());
    v = heap_dict_get_str(o, "l");
    assert_int_equal(heap_type_of(v), HT_LIST);
    assert_int_equal(heap_list_len(v), 4);
    assert_int_equal(heap_type_of(heap_list_get(v, 1)), HT_STR);
    assert_int_equal(heap_type_of(heap_list_get(heap_list_get(v, 2), 0)), HT_FLOAT);
    assert_int_equal(heap_type_of(heap_list_get(v, 3)), HT_DICT);
    char *text = emit(o);
    assert_string_equal(text, "{\"i\":42,\"neg\":-7,\"f\":2.5,\"e\":1000.0,\"s\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\","
                              "\"t\":true,\"no\":false,\"z\":null,\"l\":[1,\"two\",[3.0],{}],\"d\":{\"k\":[]}}");
    free(text);
    heap_decref(o);
    /* scalars at the top, as JSON_DECODE_ANY takes them */
    const char *tops[] = {"7", "-0", "0.0", "-0.0", "\"x\"", "true", "null", "[]", "{}", " 1 "};
    for (size_t i = 0; i < sizeof tops / sizeof *tops; i++)
        agree_s(tops[i]);
}

static void integers_stay_exact_int64(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int64_t want;
    } cases[] = {
        {"9007199254740993", 9007199254740993LL}, /* 2^53 + 1: no double holds it */
        {"9223372036854775807", INT64_MAX},
        {"-9223372036854775808", INT64_MIN},
        {"-0", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        heap_obj *o = parsed(cases[i].text);
        assert_int_equal(heap_type_of(o), HT_INT);
        assert_true(heap_int_value(o) == cases[i].want);
        heap_decref(o);
    }
    /* packed, in a request */
    heap_obj *o;
    json_error_t e;
    assert_int_equal(dag_request_parse("[9007199254740993, -9223372036854775808]", 40, &o, &e), DAG_OK);
    assert_int_equal(heap_type_of(o), HT_ARRAY);
    assert_int_equal(heap_array_dtype(o), HD_I64);
    assert_true(heap_array_i64(o)[0] == 9007199254740993LL);
    assert_true(heap_array_i64(o)[1] == INT64_MIN);
    heap_decref(o);
}

static void numbers_beyond_int64_are_errors_naming_them(void **state)
{
    (void)state;
    const char *text = "{\"ids\": [1,\n  9223372036854775808]}";
    json_error_t e = refused(text, strlen(text));
    assert_int_equal(e.line, 2);
    assert_non_null(strstr(e.text, "too big integer"));
    assert_non_null(strstr(e.text, "9223372036854775808"));
    e = refused("[-9223372036854775809]", 22);
    assert_non_null(strstr(e.text, "too big negative integer"));
    assert_non_null(strstr(e.text, "-9223372036854775809"));
    e = refused("[18446744073709551616123]", 25); /* jansson alone does not name one this long */
    assert_string_equal(e.text, "too big integer near '18446744073709551616123'");
    char huge[128] = "[";
    memset(huge + 1, '7', 100);
    strcpy(huge + 101, "]");
    e = refused(huge, strlen(huge));
    assert_string_equal(e.text, "too big integer near '7777777777777777777777777777777777777777...'");
    e = refused("1e400", 5); /* a float past the double range */
    assert_non_null(strstr(e.text, "real number overflow"));
    agree_s("[1e-400, 123456789012345678901234567890.5, 0.1e1, 2E-3]"); /* floats: taken */
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Refusals                                                             */
/* ====================================================================== */

static char *nested(size_t depth, const char *inner)
{
    size_t n = strlen(inner);
    char *s = malloc(2 * depth + n + 1);
    memset(s, '[', depth);
    memcpy(s + depth, inner, n);
    memset(s + depth + n, ']', depth);
    s[2 * depth + n] = '\0';
    return s;
}

static void nesting_stops_at_jansson_s_depth(void **state)
{
    (void)state;
    /* A value's depth counts it: a scalar in 2047 arrays is at 2048. */
    char *ok = nested(DAG_JSON_MAX_DEPTH - 1, "1"), *deep = nested(DAG_JSON_MAX_DEPTH, "1");
    char *empty = nested(DAG_JSON_MAX_DEPTH, ""), *deeper = nested(DAG_JSON_MAX_DEPTH + 1, "");
    heap_obj *o = parsed(ok);
    heap_decref(o);
    o = parsed(empty);
    heap_decref(o);
    json_error_t e = refused(deep, strlen(deep));
    assert_non_null(strstr(e.text, "maximum parsing depth reached"));
    e = refused(deeper, strlen(deeper));
    assert_non_null(strstr(e.text, "maximum parsing depth reached"));
    free(ok);
    free(deep);
    free(empty);
    free(deeper);
    /* 100,000 open brackets, as the server test sends them */
    size_t n = 100000;
    char *open = malloc(n);
    memset(open, '[', n);
    e = refused(open, n);
    assert_non_null(strstr(e.text, "maximum parsing depth reached"));
    free(open);
    /* objects count as arrays do */
    char *objs = malloc(8 * 3000 + 8);
    size_t len = 0;
    for (int i = 0; i < 3000; i++)
        len += (size_t)sprintf(objs + len, "{\"a\":");
    len += (size_t)sprintf(objs + len, "1");
    for (int i = 0; i < 3000; i++)
        objs[len++] = '}';
    refused(objs, len);
    free(objs);
}

static void errors_carry_line_column_and_reason(void **state)
{
    (void)state;
    const char *text = "{\"inputs\": {\n  \"ids\": [1, 2,]\n}}";
    json_error_t e = refused(text, strlen(text));
    assert_int_equal(e.line, 2);
    assert_int_equal(e.column, 16);
    assert_string_equal(e.text, "unexpected token near ']'");
    static const char *const bad[] = {
        "{", "}", "[1,", "[1 2]", "{\"a\" 1}", "{\"a\": }", "{1: 2}", "{\"a\": 1,}", "nul", "tru", "01", "1.",
        ".5", "+1", "-", "1e", "--1", "NaN", "Infinity", "[1]x", "{} {}", "\"abc", "\"\\x\"", "\"\\u12\"",
        "\"a\tb\"", "\"a\nb\"", "'a'", "[1,,2]", "{\"a\":1 \"b\":2}", "/* c */ 1", "\xef\xbb\xbf{}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        refused(bad[i], strlen(bad[i]));
}

static void duplicate_keys_are_refused(void **state)
{
    (void)state;
    static const char *const dup[] = {
        "{\"a\": 1, \"a\": 2}",
        "{\"inputs\": {\"ids\": [1], \"ids\": [2]}}",
        "{\"a\": 1, \"\\u0061\": 2}", /* the same key, spelt otherwise */
        "[{}, {\"x\": {\"y\": 1, \"y\": 1}}]",
    };
    for (size_t i = 0; i < sizeof dup / sizeof *dup; i++) {
        json_error_t e = refused(dup[i], strlen(dup[i]));
        assert_non_null(strstr(e.text, "duplicate object key"));
    }
    heap_obj *o = parsed("{\"a\": 1, \"A\": 2, \"a \": 3}"); /* different keys */
    assert_int_equal(heap_dict_len(o), 3);
    heap_decref(o);
}

static void malformed_utf8_and_nul_are_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "\"\xff\"",             /* never valid */
        "\"\xc3\"",             /* truncated */
        "\"\xc0\xaf\"",         /* overlong */
        "\"\xed\xa0\x80\"",     /* an encoded surrogate */
        "\"\xf4\x90\x80\x80\"", /* past U+10FFFF */
        "{\"k\xfe\": 1}",       /* in a key */
        "\"\\ud800\"",          /* a lone high surrogate */
        "\"\\udc00\"",          /* a lone low one */
        "\"\\ud800\\u0041\"",   /* a high one and no low */
        "\"a\\u0000b\"",        /* NUL, which jansson does not take */
        "{\"\\u0000\": 1}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        refused(bad[i], strlen(bad[i]));
    refused("\"a\0b\"", 5); /* a raw NUL byte */
    refused("[1]\0", 4);
}

static void an_empty_or_blank_body_is_an_error(void **state)
{
    (void)state;
    refused("", 0);
    refused("   ", 3);
    refused("\n\t\r ", 4);
}

static void large_bodies_parse_as_small_ones_do(void **state)
{
    (void)state;
    /* past the size whose parser buffers are kept between calls (64 KiB) */
    size_t cap = 400000, len = 0;
    char *text = malloc(cap);
    len += (size_t)sprintf(text, "{\"inputs\": {\"ids\": [");
    for (int i = 0; i < 40000; i++)
        len += (size_t)sprintf(text + len, "%s%d", i ? "," : "", i * 7919 % 200000);
    len += (size_t)sprintf(text + len, "], \"s\": \"%s\"}}", "caf\\u00e9");
    assert_true(len > (64 << 10));
    agree(text, len);
    heap_obj *o;
    json_error_t e;
    assert_int_equal(dag_request_parse(text, len, &o, &e), DAG_OK);
    heap_obj *ids = heap_dict_get_str(heap_dict_get_str(o, "inputs"), "ids");
    assert_int_equal(heap_array_len(ids), 40000);
    assert_int_equal(heap_array_i64(ids)[39999], 39999LL * 7919 % 200000);
    heap_decref(o);
    /* and an error in one keeps its line and column */
    text[len - 3] = ',';
    refused(text, len);
    free(text);
    /* a small one after a large one */
    agree_s("{\"a\": [1, 2]}");
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Request values                                                       */
/* ====================================================================== */

static heap_obj *request(const char *text)
{
    heap_obj *o;
    json_error_t e;
    if (dag_request_parse(text, strlen(text), &o, &e) != DAG_OK)
        fail_msg("refused %s: %s", text, e.text);
    return o;
}

static void requests_pack_arrays_of_numbers(void **state)
{
    (void)state;
    heap_obj *o = request("{\"i\": [1, 2, 3], \"f\": [1.5, 2.5], \"mixed\": [1, 2.5], \"none\": [null, 1], "
                          "\"empty\": [], \"nested\": [[1], [\"a\"]]}");
    heap_obj *v = heap_dict_get_str(o, "i");
    assert_int_equal(heap_type_of(v), HT_ARRAY);
    assert_int_equal(heap_array_dtype(v), HD_I64);
    assert_int_equal(heap_array_len(v), 3);
    v = heap_dict_get_str(o, "f");
    assert_int_equal(heap_type_of(v), HT_ARRAY);
    assert_int_equal(heap_array_dtype(v), HD_F64);
    assert_int_equal(heap_type_of(heap_dict_get_str(o, "mixed")), HT_LIST);
    assert_int_equal(heap_type_of(heap_dict_get_str(o, "none")), HT_LIST);
    assert_int_equal(heap_type_of(heap_dict_get_str(o, "empty")), HT_LIST);
    v = heap_dict_get_str(o, "nested");
    assert_int_equal(heap_type_of(heap_list_get(v, 0)), HT_ARRAY);
    assert_int_equal(heap_type_of(heap_list_get(v, 1)), HT_LIST);
    /* unpacked, it is what dag_json_parse makes */
    heap_obj *u = dag_value_unpack(o), *plain;
    json_error_t e;
    const char *text = "{\"i\":[1,2,3],\"f\":[1.5,2.5],\"mixed\":[1,2.5],\"none\":[null,1],\"empty\":[],"
                       "\"nested\":[[1],[\"a\"]]}";
    assert_int_equal(dag_json_parse(text, strlen(text), &plain, &e), DAG_OK);
    char *a = emit(u), *b = emit(plain);
    assert_string_equal(a, b);
    assert_int_equal(heap_type_of(heap_dict_get_str(u, "i")), HT_LIST);
    free(a);
    free(b);
    heap_decref(u);
    heap_decref(plain);
    heap_decref(o);
}

/* Every declared type reads a request value as it reads the jansson value
 * of the same text: the same verdict, the same message, the same value. */
static void request_values_convert_as_json_does(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "1", "-3", "2.5", "\"s\"", "true", "null", "[]", "[1, 2]", "[9007199254740993]", "[1.5, 2]", "[0.5, 1.5]",
        "[1, null]", "[null]", "[1, \"a\"]", "[[1, 2]]", "{}", "{\"a\": [1, 2], \"b\": {\"c\": [2.5]}}",
        "[1.0]", "[true]",
    };
    for (size_t i = 0; i < sizeof docs / sizeof *docs; i++) {
        json_error_t e;
        json_t *j = json_loads(docs[i], JSON_DECODE_ANY, &e);
        assert_non_null(j);
        heap_obj *v = request(docs[i]);
        for (int t = DV_ANY; t <= DV_IARRAY; t++) {
            heap_obj *a = NULL, *b = NULL;
            char ea[256] = "", eb[256] = "";
            int ra = dag_value_from_json(j, (dag_vtype)t, &a, ea, sizeof ea);
            int rb = dag_value_from_value(v, (dag_vtype)t, &b, eb, sizeof eb);
            if (ra != rb)
                fail_msg("%s as %s: json %d (%s), request value %d (%s)", docs[i], dag_vtype_name((dag_vtype)t), ra,
                         ea, rb, eb);
            assert_string_equal(ea, eb);
            if (ra == DAG_OK) {
                char *ta = emit(a), *tb = emit(b);
                if (strcmp(ta, tb) != 0)
                    fail_msg("%s as %s: json gives %s, request value %s", docs[i], dag_vtype_name((dag_vtype)t), ta,
                             tb);
                assert_int_equal(heap_type_of(a), heap_type_of(b));
                if (heap_type_of(a) == HT_ARRAY)
                    assert_int_equal(heap_array_dtype(a), heap_array_dtype(b));
                free(ta);
                free(tb);
                heap_decref(a);
                heap_decref(b);
            }
        }
        heap_decref(v);
        json_decref(j);
    }
}

/* }====================================================================== */

/* ====================================================================== */
/* {  The corpus, and its mutations                                        */
/* ====================================================================== */

static const char *const corpus[] = {
    "{\"inputs\":{\"ids\":[181734,93849,195412,68040,131263,66512,9377,84519]}}",
    "{\"inputs\": {\"spend\": [10, 10, 20, 40, 40, 50], \"signups\": [1, 10, 50, 100, 200, 400]}, "
    "\"outputs\": [\"avg_3wk_spend\", \"spend_per_signup\"]}",
    "{\"overrides\": {\"n\": {\"a\": [1.5, -2e-3, null, true, false]}}, \"outputs\": []}",
    "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\", \"caf\xc3\xa9\", \"\xe2\x82\xac\", \"\xf0\x9f\x98\x80\"]",
    "{\"a\":{\"b\":{\"c\":[[[]],{}]}},\"d\":-0,\"e\":-0.0,\"f\":1E+2,\"g\":9223372036854775807}",
    " \t\r\n{ \"k\" : [ 1 , 2 ] } \n",
};

/* Deterministic mutations: a byte replaced, deleted or inserted, or the
 * text cut short, with bytes that matter to a JSON lexer. */
static void corpus_and_its_mutations_agree_with_jansson(void **state)
{
    (void)state;
    static const char alphabet[] = "{}[]:,\"\\ -+.eE0123456789aeflnrstu\xc3\xa9\xff\x00\x1f";
    uint64_t x = 2026;
    size_t runs = 0;
    for (size_t c = 0; c < sizeof corpus / sizeof *corpus; c++) {
        const char *seed = corpus[c];
        size_t n = strlen(seed);
        agree(seed, n);
        char buf[512];
        for (int m = 0; m < 800; m++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t at = (size_t)(x >> 33) % n, len = n;
            char b = alphabet[(x >> 20) % (sizeof alphabet - 1)];
            memcpy(buf, seed, n);
            switch ((x >> 11) % 4) {
            case 0:
                buf[at] = b;
                break;
            case 1:
                memmove(buf + at, buf + at + 1, n - at - 1);
                len--;
                break;
            case 2:
                memmove(buf + at + 1, buf + at, n - at);
                buf[at] = b;
                len++;
                break;
            default:
                len = at;
            }
            agree(buf, len);
            runs++;
        }
    }
    assert_true(runs >= 4000);
}

/* }====================================================================== */

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup_heap, teardown)
        T(every_json_type_becomes_its_heap_value),
        T(integers_stay_exact_int64),
        T(numbers_beyond_int64_are_errors_naming_them),
        T(nesting_stops_at_jansson_s_depth),
        T(errors_carry_line_column_and_reason),
        T(duplicate_keys_are_refused),
        T(malformed_utf8_and_nul_are_refused),
        T(an_empty_or_blank_body_is_an_error),
        T(large_bodies_parse_as_small_ones_do),
        T(requests_pack_arrays_of_numbers),
        T(request_values_convert_as_json_does),
        T(corpus_and_its_mutations_agree_with_jansson),
#undef T
    };
    return cmocka_run_group_tests_name("request", tests, NULL, NULL);
}
