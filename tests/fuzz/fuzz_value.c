/* fuzz_value: JSON text to heap values and back (dag/json_in.h,
 * dag/value.h).  Three readers must agree -- simdjson's (dag_json_parse),
 * jansson's (dag_json_parse_jansson) and the request reader with its
 * packed arrays (dag_request_parse, unpacked) -- on whether the text is
 * JSON and on the value, compared as the text dag_emit_value writes; and a
 * value written out and read back writes the same text again, through the
 * jansson conversion (dag_value_to_json, dag_value_from_json) as well. */
#include <string.h>

#include "dag/json_in.h"
#include "dag/value.h"
#include "tests/fuzz/fuzz.h"

/* The value as JSON text (malloc'ed), or NULL if it cannot be written
 * (nested deeper than DAG_EMIT_MAX_DEPTH). */
static char *emit(heap_obj *v, size_t *len)
{
    dag_writer w;
    dag_writer_init_mem(&w);
    char err[256];
    if (dag_emit_value(&w, v, err, sizeof err) != DAG_OK) {
        dag_writer_free(&w);
        return NULL;
    }
    return dag_writer_take(&w, len);
}

static void same_text(const char *a, size_t alen, const char *b, size_t blen, const char *what)
{
    FUZZ_CHECK((a == NULL) == (b == NULL), "%s: one value is written, the other not", what);
    if (a)
        FUZZ_CHECK(alen == blen && memcmp(a, b, alen) == 0, "%s: '%.200s' and '%.200s'", what, a, b);
}

static void round_trip(heap_obj *v, const char *text, size_t len)
{
    /* Read back. */
    heap_obj *again;
    json_error_t jerr;
    FUZZ_CHECK(dag_json_parse(text, len, &again, &jerr) == DAG_OK, "written text does not read back: %s: %.200s",
               jerr.text, text);
    size_t alen;
    char *atext = emit(again, &alen);
    same_text(text, len, atext, alen, "written and read back");
    free(atext);
    heap_decref(again);

    /* Through jansson both ways. */
    char err[256];
    json_t *j = dag_value_to_json(v, err, sizeof err);
    FUZZ_CHECK(j, "to jansson: %s", err);
    heap_obj *back;
    FUZZ_CHECK(dag_value_from_json(j, DV_ANY, &back, err, sizeof err) == DAG_OK, "from jansson: %s", err);
    json_decref(j);
    char *btext = emit(back, &alen);
    same_text(text, len, btext, alen, "through jansson");
    free(btext);
    heap_decref(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_heap_once();
    uint64_t before = fuzz_live_objects();
    const char *in = (const char *)data;
    heap_obj *simd = NULL, *jans = NULL, *req = NULL;
    json_error_t e1, e2, e3;
    int r1 = dag_json_parse(in, size, &simd, &e1);
    int r2 = dag_json_parse_jansson(in, size, &jans, &e2);
    int r3 = dag_request_parse(in, size, &req, &e3);
    FUZZ_CHECK(r1 == r2 && r1 == r3, "simdjson %d, jansson %d, request %d", r1, r2, r3);
    if (r1 != DAG_OK) {
        FUZZ_CHECK(strcmp(e1.text, e2.text) == 0 && e1.line == e2.line && e1.column == e2.column,
                   "simdjson '%d:%d: %s', jansson '%d:%d: %s'", e1.line, e1.column, e1.text, e2.line, e2.column,
                   e2.text);
    } else {
        heap_obj *unpacked = dag_value_unpack(req);
        size_t l1, l2, l3;
        char *t1 = emit(simd, &l1), *t2 = emit(jans, &l2), *t3 = emit(unpacked, &l3);
        same_text(t1, l1, t2, l2, "simdjson and jansson");
        same_text(t1, l1, t3, l3, "simdjson and request");
        if (t1)
            round_trip(simd, t1, l1);
        free(t1);
        free(t2);
        free(t3);
        heap_decref(unpacked);
        heap_decref(simd);
        heap_decref(jans);
        heap_decref(req);
    }
    uint64_t after = fuzz_live_objects();
    FUZZ_CHECK(after == before, "%llu heap objects alive before the value, %llu after", (unsigned long long)before,
               (unsigned long long)after);
    return 0;
}
