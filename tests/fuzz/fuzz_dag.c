/* fuzz_dag: a DAG file through loading and validation, as dag_load_file
 * takes it (jansson, duplicate keys refused, then dag_load_json against
 * the state entries "customers" and "marketing"); a DAG that loads is
 * described (GET /dags, GET /dags/NAME, the DOT text) and freed. */
#include <string.h>

#include "dag/dag.h"
#include "tests/fuzz/fuzz.h"

static const char *const state_names[] = {"customers", "marketing"};

static void describe(const dag *d)
{
    json_t *j = dag_summary_json(d);
    FUZZ_CHECK(j, "no summary");
    json_decref(j);
    j = dag_detail_json(d);
    FUZZ_CHECK(j, "no detail");
    char *text = json_dumps(j, JSON_COMPACT);
    FUZZ_CHECK(text, "the detail does not dump");
    free(text);
    json_decref(j);
    char *dot = dag_dot(d);
    FUZZ_CHECK(dot && strncmp(dot, "digraph", 7) == 0, "the DOT text does not start with digraph");
    free(dot);
    for (uint32_t i = 0; i < d->n; i++)
        FUZZ_CHECK(dag_find(d, d->nodes[i].name) == i, "node '%s' is not found by its name", d->nodes[i].name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_heap_once();
    uint64_t before = fuzz_live_objects();
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    if (doc) {
        dag_errors errs = {0};
        dag *d = dag_load_json(doc, "fuzz.json", state_names, 2, &errs);
        json_decref(doc);
        if (d) {
            FUZZ_CHECK(errs.n == 0, "a DAG loaded with %zu problems", errs.n);
            describe(d);
            dag_free(d);
        } else {
            FUZZ_CHECK(errs.n > 0, "a DAG was refused with no problem named");
            static FILE *devnull;
            if (!devnull)
                devnull = fopen("/dev/null", "w");
            if (devnull)
                dag_errors_print(&errs, devnull);
        }
        dag_errors_free(&errs);
    }
    uint64_t after = fuzz_live_objects();
    FUZZ_CHECK(after == before, "%llu heap objects alive before the DAG, %llu after", (unsigned long long)before,
               (unsigned long long)after);
    return 0;
}
