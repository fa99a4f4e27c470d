/* fuzz_request: a request body as POST /dags/NAME/run takes it (dag/json_in.h
 * parse, ld_world_run, the response written out or the error), against
 * each DAG of a small fixed world: tests/fuzz/world.json, the example DAGs
 * of config/dags/ over 300 customers and the marketing table, with
 * max_run_bytes 4 MiB and timeout_ms 250 so that a run stays short. */
#include <stdbool.h>
#include <string.h>

#include "base/clock.h"
#include "dag/dag.h"
#include "dag/json_in.h"
#include "load/world.h"
#include "tests/fuzz/fuzz.h"

#ifndef FUZZ_DIR
#define FUZZ_DIR "tests/fuzz"
#endif

static ld_config cfg;
static ld_world world;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *path = getenv("COWDAG_FUZZ_WORLD");
    char err[512];
    fuzz_heap_once();
    FUZZ_CHECK(ld_config_load(path ? path : FUZZ_DIR "/world.json", &cfg, err, sizeof err) == LD_OK, "%s", err);
    gc_configure(&cfg.gc);
    FUZZ_CHECK(ld_world_load(&cfg, NULL, LD_STATE_ALL, &world, stderr) == LD_OK, "the fixed world does not load");
    FUZZ_CHECK(world.ndags > 0, "no DAGs in the fixed world");
    gc_settle();
    gc_freeze(); /* as a freeze master does: the full collections of each input skip the world */
    return 0;
}

/* What the route answers for one DAG: the response or the error, written
 * whole; the text must be JSON. */
static void run_one(const dag *d, heap_obj *req)
{
    dag_result res;
    dag_fail f = {0};
    int rc = ld_world_run(&world, &cfg, d, req, base_now_ns(), 0, &res, &f);
    dag_response *out = NULL;
    if (rc == DAG_OK && dag_response_new(d, &res, 0, 1, &out, &f) != DAG_OK) {
        dag_result_free(&res);
        rc = DAG_ERR;
    }
    dag_writer w;
    dag_writer_init_mem(&w);
    if (rc != DAG_OK) {
        FUZZ_CHECK(f.code && *f.code, "a refused run names no error code");
        dag_write_error(&w, &f);
    } else {
        while (dag_response_fill(out, &w, 1 << 16))
            ;
        dag_response_free(out);
    }
    size_t len;
    char *text = dag_writer_take(&w, &len);
    json_error_t jerr;
    json_t *back = json_loadb(text, len, 0, &jerr);
    FUZZ_CHECK(back, "the answer is not JSON (%s): %.200s", jerr.text, text);
    json_decref(back);
    free(text);
    dag_writer_free(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t before = fuzz_live_objects();
    heap_obj *req = NULL;
    json_error_t jerr;
    if (dag_request_parse((const char *)data, size, &req, &jerr) == DAG_OK) {
        if (heap_type_of(req) == HT_DICT)
            for (size_t i = 0; i < world.ndags; i++)
                run_one(world.dags[i], req);
        heap_decref(req);
    } else {
        FUZZ_CHECK(jerr.text[0], "a refused body has no message");
    }
    uint64_t after = fuzz_live_objects();
    FUZZ_CHECK(after == before, "%llu heap objects alive before the request, %llu after",
               (unsigned long long)before, (unsigned long long)after);
    return 0;
}
