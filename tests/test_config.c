/* tests/test_config.c: cmocka unit tests for the config loader (README, "The
 * config file"): an example config read to exact values, the defaults, one
 * case per kind of error (each naming its key), HOST:PORT parsing, and
 * parsing from text.  Contract in load/config.h.
 * Run from the repository root: the fixtures are under tests/fixtures/config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load/config.h"

#ifndef FIXTURE_DIR
#define FIXTURE_DIR "tests/fixtures"
#endif
#define CONFIG_DIR FIXTURE_DIR "/config"
#define BROKEN_DIR CONFIG_DIR "/broken"

/* ---- helpers ------------------------------------------------------------ */

/* realpath of a fixture folder: what the loader must resolve against. */
static void abs_dir(const char *rel, char out[PATH_MAX])
{
    assert_non_null(realpath(rel, out));
}

static void assert_zeroed(const ld_config *c)
{
    static const ld_config zero;
    assert_memory_equal(c, &zero, sizeof zero);
}

/* Loads broken/<file> and checks the whole message: the path as given, then
 * `tail` (": KEY: problem", or ":LINE:COL: ..."), and that *c was emptied. */
static void assert_load_fails(const char *file, const char *tail)
{
    char path[512], err[1024], want[2048];
    ld_config c;

    snprintf(path, sizeof path, "%s/%s", BROKEN_DIR, file);
    memset(&c, 0xa5, sizeof c);
    assert_int_equal(ld_config_load(path, &c, err, sizeof err), LD_ERR);
    snprintf(want, sizeof want, "%s%s", path, tail);
    assert_string_equal(err, want);
    assert_zeroed(&c);
}

/* Parses text as if it were <config dir>/inline.json; expects an error
 * "FILE: tail". */
static void assert_parse_fails(const char *text, const char *tail)
{
    const char *path = CONFIG_DIR "/inline.json";
    char err[1024], want[2048];
    ld_config c;

    memset(&c, 0xa5, sizeof c);
    assert_int_equal(ld_config_parse(text, strlen(text), path, &c, err, sizeof err), LD_ERR);
    snprintf(want, sizeof want, "%s: %s", path, tail);
    assert_string_equal(err, want);
    assert_zeroed(&c);
}

static void parse_ok(const char *text, ld_config *c)
{
    char err[1024] = "";
    int rc = ld_config_parse(text, strlen(text), CONFIG_DIR "/inline.json", c, err, sizeof err);
    if (rc != LD_OK)
        fail_msg("unexpected error: %s", err);
}

/* ---- valid files ---------------------------------------------------------- */

static void test_spec_example_parses_to_exact_values(void **state)
{
    (void)state;
    char dir[PATH_MAX], want[PATH_MAX + 64], err[1024] = "";
    ld_config c;

    abs_dir(CONFIG_DIR, dir);
    if (ld_config_load(CONFIG_DIR "/spec.json", &c, err, sizeof err) != LD_OK)
        fail_msg("spec.json: %s", err);

    assert_string_equal(c.path, CONFIG_DIR "/spec.json");
    assert_string_equal(c.dir, dir);
    assert_string_equal(c.listen_host, "127.0.0.1");
    assert_int_equal(c.listen_port, 8080);
    assert_int_equal(c.workers, 2);
    assert_int_equal(c.max_requests, 0);
    assert_int_equal(c.max_body_bytes, 1048576);
    assert_int_equal(c.timeout_ms, 30000);
    assert_int_equal(c.graceful_timeout_ms, 10000);
    assert_int_equal(c.header_timeout_ms, 10000);   /* not in the file: the default */
    assert_int_equal(c.keepalive_timeout_ms, 5000); /* not in the file: the default */
    assert_int_equal(c.worker_timeout_ms, 30000);   /* and the recycling limits, off */
    assert_int_equal(c.max_copied_mib, 0);
    assert_true(c.max_copied_ratio == 0);
    assert_int_equal(c.max_rss_mib, 0);
    assert_int_equal(c.stats_interval_ms, 1000);
    assert_false(c.admin);
    assert_true(c.access_log); /* not in the file: the default */
    assert_int_equal(c.worker_priority, 0);

    assert_int_equal(c.gc.mode, GC_FREEZE);
    assert_int_equal(c.gc.thresholds[0], 700);
    assert_int_equal(c.gc.thresholds[1], 10);
    assert_int_equal(c.gc.thresholds[2], 10);
    assert_true(c.gc.immortal);
    assert_true(c.gc.full_ratio == 0.25);

    assert_int_equal(c.nstate, 2);
    assert_string_equal(c.state[0].name, "customers");
    assert_int_equal(c.state[0].kind, LD_STATE_RECORDS);
    assert_true(c.state[0].generate);
    assert_int_equal(c.state[0].count, 200000);
    assert_int_equal(c.state[0].seed, 42);
    assert_null(c.state[0].csv);
    assert_null(c.state[0].key);
    assert_null(c.state[0].file);

    assert_string_equal(c.state[1].name, "marketing");
    assert_int_equal(c.state[1].kind, LD_STATE_TABLE);
    assert_false(c.state[1].generate);
    snprintf(want, sizeof want, "%s/data/marketing.csv", dir);
    assert_string_equal(c.state[1].csv, want);
    assert_null(c.state[1].key);
    assert_null(c.state[1].file);

    assert_int_equal(c.ndags, 2);
    snprintf(want, sizeof want, "%s/dags/features.json", dir);
    assert_string_equal(c.dags[0], want);
    snprintf(want, sizeof want, "%s/dags/marketing.json", dir);
    assert_string_equal(c.dags[1], want);

    ld_config_free(&c);
    assert_zeroed(&c);
}

static void test_empty_object_gives_the_defaults(void **state)
{
    (void)state;
    char dir[PATH_MAX], err[1024] = "";
    ld_config c;

    abs_dir(CONFIG_DIR, dir);
    if (ld_config_load(CONFIG_DIR "/empty.json", &c, err, sizeof err) != LD_OK)
        fail_msg("empty.json: %s", err);

    assert_string_equal(c.path, CONFIG_DIR "/empty.json");
    assert_string_equal(c.dir, dir);
    assert_string_equal(c.listen_host, "127.0.0.1");
    assert_int_equal(c.listen_port, 8080);
    assert_int_equal(c.workers, 2);
    assert_int_equal(c.max_requests, 0);
    assert_int_equal(c.max_body_bytes, 1048576);
    assert_int_equal(c.timeout_ms, 30000);
    assert_int_equal(c.graceful_timeout_ms, 10000);
    assert_int_equal(c.stats_interval_ms, 1000);
    assert_false(c.admin);
    assert_true(c.access_log);
    assert_int_equal(c.gc.mode, GC_TUNED);
    assert_int_equal(c.gc.thresholds[0], 700);
    assert_int_equal(c.gc.thresholds[1], 10);
    assert_int_equal(c.gc.thresholds[2], 10);
    assert_true(c.gc.full_ratio == 0.25);
    assert_false(c.gc.immortal);
    assert_int_equal(c.nstate, 0);
    assert_null(c.state);
    assert_int_equal(c.ndags, 0);
    assert_null(c.dags);
    ld_config_free(&c);
}

static void test_defaults_match_the_header(void **state)
{
    (void)state;
    ld_config c;
    memset(&c, 0xa5, sizeof c);
    ld_config_defaults(&c);
    assert_null(c.path);
    assert_null(c.dir);
    assert_string_equal(c.listen_host, "127.0.0.1");
    assert_int_equal(c.listen_port, 8080);
    assert_int_equal(c.workers, 2);
    assert_int_equal(c.max_requests, 0);
    assert_int_equal(c.max_body_bytes, 1048576);
    assert_int_equal(c.timeout_ms, 30000);
    assert_int_equal(c.graceful_timeout_ms, 10000);
    assert_int_equal(c.stats_interval_ms, 1000);
    assert_false(c.admin);
    assert_true(c.access_log);
    assert_int_equal(c.gc.mode, GC_TUNED);
    assert_int_equal(c.gc.thresholds[0], 700);
    assert_true(c.gc.full_ratio == 0.25);
    assert_false(c.gc.immortal);
    assert_int_equal(c.nstate, 0);
    assert_null(c.state);
    assert_int_equal(c.ndags, 0);
    assert_null(c.dags);
    ld_config_free(&c);
    assert_zeroed(&c);
}

/* ---- errors, one per kind; every message names the key ------------------- */

static void test_unknown_top_level_key_is_named(void **state)
{
    (void)state;
    assert_load_fails("unknown-top-key.json", ": wrokers: unknown key");
}

static void test_unknown_gc_key_is_named(void **state)
{
    (void)state;
    assert_load_fails("unknown-gc-key.json", ": gc.mod: unknown key");
}

static void test_unknown_state_key_is_named(void **state)
{
    (void)state;
    assert_load_fails("unknown-state-key.json", ": state[0].size: unknown key");
}

static void test_unknown_generate_key_is_named(void **state)
{
    (void)state;
    assert_load_fails("unknown-generate-key.json", ": state[0].generate.sed: unknown key");
}

static void test_string_where_integer_is_a_wrong_type(void **state)
{
    (void)state;
    assert_load_fails("workers-string.json", ": workers: expected integer, got string");
}

static void test_real_where_integer_is_a_wrong_type(void **state)
{
    (void)state;
    assert_load_fails("workers-float.json", ": workers: expected integer, got real");
}

static void test_boolean_where_integer_is_a_wrong_type(void **state)
{
    (void)state;
    assert_load_fails("workers-bool.json", ": workers: expected integer, got boolean");
}

static void test_workers_zero_is_out_of_range(void **state)
{
    (void)state;
    assert_load_fails("workers-zero.json", ": workers: must be between 1 and 256, got 0");
}

static void test_range_limits_of_each_integer_setting(void **state)
{
    (void)state;
    assert_parse_fails("{\"workers\": 257}", "workers: must be between 1 and 256, got 257");
    assert_parse_fails("{\"max_requests\": -1}", "max_requests: must be >= 0, got -1");
    assert_parse_fails("{\"max_body_bytes\": 0}", "max_body_bytes: must be between 1 and 1073741824, got 0");
    assert_parse_fails("{\"max_body_bytes\": 1073741825}",
                       "max_body_bytes: must be between 1 and 1073741824, got 1073741825");
    assert_parse_fails("{\"timeout_ms\": 0}", "timeout_ms: must be between 1 and 3600000, got 0");
    assert_parse_fails("{\"graceful_timeout_ms\": 3600001}",
                       "graceful_timeout_ms: must be between 0 and 3600000, got 3600001");
    assert_parse_fails("{\"worker_timeout_ms\": -1}", "worker_timeout_ms: must be between 0 and 3600000, got -1");
    assert_parse_fails("{\"max_copied_ratio\": 1.5}", "max_copied_ratio: must be between 0 and 1, got 1.5");
    assert_parse_fails("{\"max_copied_ratio\": \"half\"}", "max_copied_ratio: expected number, got string");
    assert_parse_fails("{\"max_rss_mib\": -5}", "max_rss_mib: must be between 0 and 1048576, got -5");
    assert_parse_fails("{\"header_timeout_ms\": 99}", "header_timeout_ms: must be between 100 and 3600000, got 99");
    assert_parse_fails("{\"keepalive_timeout_ms\": -1}",
                       "keepalive_timeout_ms: must be between 0 and 3600000, got -1");
    assert_parse_fails("{\"stats_interval_ms\": 9}", "stats_interval_ms: must be between 10 and 3600000, got 9");
    assert_parse_fails("{\"worker_priority\": -21}", "worker_priority: must be between -20 and 19, got -21");
    assert_parse_fails("{\"worker_priority\": 20}", "worker_priority: must be between -20 and 19, got 20");
    assert_parse_fails("{\"worker_priority\": \"high\"}", "worker_priority: expected integer, got string");

    ld_config c;
    parse_ok("{\"workers\": 256, \"max_requests\": 0, \"max_body_bytes\": 1073741824, \"timeout_ms\": 3600000,"
             " \"graceful_timeout_ms\": 0, \"stats_interval_ms\": 10}",
             &c);
    assert_int_equal(c.workers, 256);
    assert_int_equal(c.max_body_bytes, 1073741824);
    assert_int_equal(c.timeout_ms, 3600000);
    assert_int_equal(c.graceful_timeout_ms, 0);
    assert_int_equal(c.stats_interval_ms, 10);
    ld_config_free(&c);
}

static void test_port_above_65535_is_out_of_range(void **state)
{
    (void)state;
    assert_load_fails("port-out-of-range.json",
                      ": listen: port must be between 0 and 65535 in \"127.0.0.1:70000\" (expected HOST:PORT or unix:PATH)");
}

static void test_bad_listen_forms_name_listen(void **state)
{
    (void)state;
    assert_parse_fails("{\"listen\": \"unix:\"}", "listen: empty path after unix: in \"unix:\" (expected HOST:PORT or unix:PATH)");
    assert_parse_fails("{\"listen\": \"8080\"}", "listen: missing :PORT in \"8080\" (expected HOST:PORT or unix:PATH)");
    assert_parse_fails("{\"listen\": \"host:\"}", "listen: missing port in \"host:\" (expected HOST:PORT or unix:PATH)");
    assert_parse_fails("{\"listen\": \":80\"}", "listen: empty host in \":80\" (expected HOST:PORT or unix:PATH)");
    assert_parse_fails("{\"listen\": \"[::1]\"}", "listen: expected :PORT after ] in \"[::1]\" (expected HOST:PORT or unix:PATH)");
    assert_parse_fails("{\"listen\": \"::1:80\"}",
                       "listen: an IPv6 host needs brackets, as in [::1]:8080 in \"::1:80\" (expected HOST:PORT or unix:PATH)");
    assert_parse_fails("{\"listen\": 8080}", "listen: expected string, got integer");
}

static void test_listen_in_config_sets_host_and_port(void **state)
{
    (void)state;
    ld_config c;
    parse_ok("{\"listen\": \"[::1]:0\"}", &c);
    assert_string_equal(c.listen_host, "::1");
    assert_int_equal(c.listen_port, 0);
    ld_config_free(&c);
}

static void test_two_thresholds_are_an_error(void **state)
{
    (void)state;
    assert_load_fails("thresholds-two.json", ": gc.thresholds: expected 3 integers, got 2");
}

static void test_negative_threshold_names_its_index(void **state)
{
    (void)state;
    assert_load_fails("thresholds-negative.json", ": gc.thresholds[1]: must be between 0 and 2147483647, got -1");
}

static void test_immortal_with_tuned_fails_gc_check(void **state)
{
    (void)state;
    assert_load_fails("immortal-tuned.json", ": gc: gc.immortal needs gc.mode freeze");
}

static void test_unknown_gc_mode_is_an_error(void **state)
{
    (void)state;
    assert_load_fails("bad-mode.json", ": gc.mode: unknown mode \"lazy\" (tuned, disable or freeze)");
}

static void test_full_ratio_takes_integer_or_real_in_0_1(void **state)
{
    (void)state;
    ld_config c;
    parse_ok("{\"gc\": {\"full_ratio\": 1}}", &c);
    assert_true(c.gc.full_ratio == 1.0);
    ld_config_free(&c);
    parse_ok("{\"gc\": {\"mode\": \"disable\", \"full_ratio\": 0.5}}", &c);
    assert_true(c.gc.full_ratio == 0.5);
    assert_int_equal(c.gc.mode, GC_DISABLE);
    ld_config_free(&c);
    assert_parse_fails("{\"gc\": {\"full_ratio\": 1.5}}", "gc.full_ratio: must be between 0 and 1, got 1.5");
    assert_parse_fails("{\"gc\": {\"full_ratio\": \"0.5\"}}", "gc.full_ratio: expected number, got string");
}

static void test_duplicate_state_name_names_the_second(void **state)
{
    (void)state;
    assert_load_fails("duplicate-state-name.json", ": state[2].name: duplicate name \"customers\" (also state[0])");
}

static void test_bad_state_name_is_an_error(void **state)
{
    (void)state;
    assert_load_fails("bad-state-name.json", ": state[0].name: \"1st\" is not a name ([A-Za-z_][A-Za-z0-9_]*)");
}

static void test_records_with_generate_and_csv_is_an_error(void **state)
{
    (void)state;
    assert_load_fails("records-generate-and-csv.json", ": state[0].csv: records takes generate or csv, not both");
}

static void test_records_csv_without_key_is_an_error(void **state)
{
    (void)state;
    assert_load_fails("records-csv-without-key.json", ": state[0].key: required with csv");
}

static void test_records_without_a_source_names_the_entry(void **state)
{
    (void)state;
    assert_load_fails("records-without-source.json", ": state[1]: records needs generate or csv");
}

static void test_table_with_key_is_an_error(void **state)
{
    (void)state;
    assert_load_fails("table-with-key.json", ": state[0].key: only records + csv take a key");
}

static void test_json_without_file_is_an_error(void **state)
{
    (void)state;
    assert_load_fails("json-without-file.json", ": state[0]: json needs file");
}

static void test_unknown_state_kind_is_an_error(void **state)
{
    (void)state;
    assert_load_fails("unknown-kind.json", ": state[0].kind: unknown kind \"blob\" (records, table or json)");
}

static void test_generate_needs_count_in_range(void **state)
{
    (void)state;
    assert_parse_fails("{\"state\": [{\"name\": \"c\", \"kind\": \"records\", \"generate\": {\"seed\": 1}}]}",
                       "state[0].generate.count: required");
    assert_parse_fails("{\"state\": [{\"name\": \"c\", \"kind\": \"records\", \"generate\": {\"count\": 100000001}}]}",
                       "state[0].generate.count: must be between 0 and 100000000, got 100000001");
    assert_parse_fails("{\"state\": [{\"name\": \"c\", \"kind\": \"records\", \"generate\": {\"count\": 1, "
                       "\"seed\": -1}}]}",
                       "state[0].generate.seed: must be >= 0, got -1");
}

static void test_missing_literal_dag_file_is_an_error(void **state)
{
    (void)state;
    char dir[PATH_MAX], tail[PATH_MAX + 64];
    abs_dir(BROKEN_DIR, dir);
    snprintf(tail, sizeof tail, ": dags[0]: no such file: %s/dags/missing.json", dir);
    assert_load_fails("missing-dag.json", tail);
}

/* A wildcard in a folder would have glob(3) walk every folder it reaches;
 * only the file name may hold one. */
static void test_dag_glob_wildcards_go_in_the_file_name_only(void **state)
{
    (void)state;
    assert_parse_fails("{\"dags\": [\"dags/*.json\", \"/*/*/*/*/*.json\"]}",
                       "dags[1]: \"/*/*/*/*/*.json\": a glob's wildcards go in the file name only, "
                       "as in \"dags/*.json\"");
    assert_parse_fails("{\"dags\": [\"d?gs/x.json\"]}",
                       "dags[0]: \"d?gs/x.json\": a glob's wildcards go in the file name only, as in \"dags/*.json\"");
    ld_config c;
    parse_ok("{\"dags\": [\"dags/*.json\", \"*.nothing\"]}", &c);
    assert_true(c.ndags > 0);
    ld_config_free(&c);
}

static void test_duplicate_json_key_is_rejected_with_position(void **state)
{
    (void)state;
    /* jansson reports at the end of the repeated key (line 1, column 41). */
    assert_load_fails("duplicate-json-key.json", ":1:41: duplicate object key near '\"workers\"'");
}

static void test_malformed_json_gives_line_and_column(void **state)
{
    (void)state;
    /* Line 3 is `  "admin" true`: the colon is missing before `true`. */
    assert_load_fails("malformed.json", ":3:14: ':' expected near 'true'");
}

static void test_top_level_array_is_an_error(void **state)
{
    (void)state;
    assert_load_fails("top-level-array.json", ": top level: expected object, got array");
}

static void test_top_level_scalar_is_an_error(void **state)
{
    (void)state;
    assert_parse_fails("42", "top level: expected object, got integer");
}

static void test_missing_config_file_says_cannot_open(void **state)
{
    (void)state;
    assert_load_fails("no-such-config.json", ": cannot open: No such file or directory");
}

static void test_error_empties_a_config_that_had_state_and_dags(void **state)
{
    (void)state;
    /* Entries and DAGs are built before the bad key: all must be freed
     * (ASan proves no leak) and the result zeroed. */
    assert_parse_fails("{\"state\": [{\"name\": \"a\", \"kind\": \"json\", \"file\": \"a.json\"}],"
                       " \"dags\": [\"dags/*.json\", 7]}",
                       "dags[1]: expected string, got integer");
}

/* ---- state sources and DAG globs that are fine ---------------------------- */

static void test_each_state_source_resolves_its_paths(void **state)
{
    (void)state;
    char dir[PATH_MAX], want[PATH_MAX + 64];
    ld_config c;

    abs_dir(CONFIG_DIR, dir);
    /* None of these files exist: the state loader reports that, not us. */
    parse_ok("{\"state\": ["
             " {\"name\": \"by_id\", \"kind\": \"records\", \"csv\": \"data/people.csv\", \"key\": \"id\"},"
             " {\"name\": \"doc\", \"kind\": \"json\", \"file\": \"doc.json\"},"
             " {\"name\": \"abs\", \"kind\": \"table\", \"csv\": \"/srv/data/t.csv\"},"
             " {\"name\": \"_gen2\", \"kind\": \"records\", \"generate\": {\"count\": 0}}]}",
             &c);
    assert_int_equal(c.nstate, 4);
    snprintf(want, sizeof want, "%s/data/people.csv", dir);
    assert_string_equal(c.state[0].csv, want);
    assert_string_equal(c.state[0].key, "id");
    assert_false(c.state[0].generate);
    assert_int_equal(c.state[1].kind, LD_STATE_JSON);
    snprintf(want, sizeof want, "%s/doc.json", dir);
    assert_string_equal(c.state[1].file, want);
    assert_string_equal(c.state[2].csv, "/srv/data/t.csv");
    assert_true(c.state[3].generate);
    assert_int_equal(c.state[3].count, 0);
    assert_int_equal(c.state[3].seed, 42); /* the default seed */
    ld_config_free(&c);
}

static void test_dag_globs_are_sorted_and_deduplicated(void **state)
{
    (void)state;
    char dir[PATH_MAX], want[PATH_MAX + 64];
    ld_config c;

    abs_dir(CONFIG_DIR, dir);
    /* marketing.json first and twice, by two spellings; a glob that matches
     * nothing adds nothing. */
    parse_ok("{\"dags\": [\"dags/marketing.json\", \"dags/../dags/*.json\", \"nothing/*.json\"]}", &c);
    assert_int_equal(c.ndags, 2);
    snprintf(want, sizeof want, "%s/dags/features.json", dir);
    assert_string_equal(c.dags[0], want);
    snprintf(want, sizeof want, "%s/dags/marketing.json", dir);
    assert_string_equal(c.dags[1], want);
    ld_config_free(&c);
}

static void test_glob_matching_nothing_is_fine(void **state)
{
    (void)state;
    ld_config c;
    parse_ok("{\"dags\": [\"nothing/*.json\"]}", &c);
    assert_int_equal(c.ndags, 0);
    ld_config_free(&c);
}

/* ---- ld_parse_listen ------------------------------------------------------ */

static void test_parse_listen_ipv4(void **state)
{
    (void)state;
    char *host = NULL;
    int port = -1;
    assert_int_equal(ld_parse_listen("127.0.0.1:8080", &host, &port), LD_OK);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8080);
    free(host);
}

static void test_parse_listen_bracketed_ipv6(void **state)
{
    (void)state;
    char *host = NULL;
    int port = -1;
    assert_int_equal(ld_parse_listen("[::1]:9000", &host, &port), LD_OK);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 9000);
    free(host);
}

static void test_parse_listen_name_with_ephemeral_port(void **state)
{
    (void)state;
    char *host = NULL;
    int port = -1;
    assert_int_equal(ld_parse_listen("localhost:0", &host, &port), LD_OK);
    assert_string_equal(host, "localhost");
    assert_int_equal(port, 0);
    free(host);
}

static void test_parse_listen_rejects_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "8080", "host:", ":80", "[::1]", "h:99999", "h:80x", "h:-1", "h: 80", "", "[]:80", "[nope]:80", "::1:80",
        "[::1:80", "h*:80",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *host = NULL;
        int port = -1;
        if (ld_parse_listen(bad[i], &host, &port) != LD_ERR)
            fail_msg("\"%s\" was accepted", bad[i]);
        assert_null(host); /* outputs untouched on error */
        assert_int_equal(port, -1);
    }
}

static void test_parse_listen_port_bounds(void **state)
{
    (void)state;
    char *host = NULL;
    int port = -1;
    assert_int_equal(ld_parse_listen("h:65535", &host, &port), LD_OK);
    assert_int_equal(port, 65535);
    free(host);
    host = NULL;
    assert_int_equal(ld_parse_listen("h:65536", &host, &port), LD_ERR);
    assert_null(host);
}

/* ---- ld_config_parse from text ------------------------------------------- */

static void test_parse_text_names_the_path_and_resolves_against_it(void **state)
{
    (void)state;
    const char *text = "{\"workers\": 4, \"admin\": true, \"access_log\": false, \"worker_priority\": -5,"
                       " \"state\": [{\"name\": \"m\", \"kind\": \"table\", \"csv\": \"data/marketing.csv\"}],"
                       " \"dags\": [\"dags/*.json\"]}";
    char dir[PATH_MAX], want[PATH_MAX + 64];
    ld_config c;

    abs_dir(CONFIG_DIR, dir);
    parse_ok(text, &c);
    assert_string_equal(c.path, CONFIG_DIR "/inline.json");
    assert_string_equal(c.dir, dir);
    assert_int_equal(c.workers, 4);
    assert_true(c.admin);
    assert_false(c.access_log);
    assert_int_equal(c.worker_priority, -5);
    snprintf(want, sizeof want, "%s/data/marketing.csv", dir);
    assert_string_equal(c.state[0].csv, want);
    assert_int_equal(c.ndags, 2);
    ld_config_free(&c);
}

static void test_parse_text_malformed_names_the_path(void **state)
{
    (void)state;
    const char *path = "somewhere/else.json";
    const char *text = "{\n\"workers\": 2,,\n}";
    char err[256];
    ld_config c;
    assert_int_equal(ld_config_parse(text, strlen(text), path, &c, err, sizeof err), LD_ERR);
    assert_memory_equal(err, "somewhere/else.json:2:", strlen("somewhere/else.json:2:"));
    assert_zeroed(&c);
}

static void test_parse_text_uses_only_len_bytes(void **state)
{
    (void)state;
    const char *text = "{\"workers\": 3}garbage";
    ld_config c;
    char err[256] = "";
    if (ld_config_parse(text, strlen("{\"workers\": 3}"), CONFIG_DIR "/inline.json", &c, err, sizeof err) != LD_OK)
        fail_msg("%s", err);
    assert_int_equal(c.workers, 3);
    ld_config_free(&c);
}

int main(void)
{
    const struct CMUnitTest valid[] = {
        cmocka_unit_test(test_spec_example_parses_to_exact_values),
        cmocka_unit_test(test_empty_object_gives_the_defaults),
        cmocka_unit_test(test_defaults_match_the_header),
        cmocka_unit_test(test_listen_in_config_sets_host_and_port),
        cmocka_unit_test(test_full_ratio_takes_integer_or_real_in_0_1),
        cmocka_unit_test(test_each_state_source_resolves_its_paths),
        cmocka_unit_test(test_dag_globs_are_sorted_and_deduplicated),
        cmocka_unit_test(test_glob_matching_nothing_is_fine),
    };
    const struct CMUnitTest errors[] = {
        cmocka_unit_test(test_unknown_top_level_key_is_named),
        cmocka_unit_test(test_unknown_gc_key_is_named),
        cmocka_unit_test(test_unknown_state_key_is_named),
        cmocka_unit_test(test_unknown_generate_key_is_named),
        cmocka_unit_test(test_string_where_integer_is_a_wrong_type),
        cmocka_unit_test(test_real_where_integer_is_a_wrong_type),
        cmocka_unit_test(test_boolean_where_integer_is_a_wrong_type),
        cmocka_unit_test(test_workers_zero_is_out_of_range),
        cmocka_unit_test(test_range_limits_of_each_integer_setting),
        cmocka_unit_test(test_port_above_65535_is_out_of_range),
        cmocka_unit_test(test_bad_listen_forms_name_listen),
        cmocka_unit_test(test_two_thresholds_are_an_error),
        cmocka_unit_test(test_negative_threshold_names_its_index),
        cmocka_unit_test(test_immortal_with_tuned_fails_gc_check),
        cmocka_unit_test(test_unknown_gc_mode_is_an_error),
        cmocka_unit_test(test_duplicate_state_name_names_the_second),
        cmocka_unit_test(test_bad_state_name_is_an_error),
        cmocka_unit_test(test_records_with_generate_and_csv_is_an_error),
        cmocka_unit_test(test_records_csv_without_key_is_an_error),
        cmocka_unit_test(test_records_without_a_source_names_the_entry),
        cmocka_unit_test(test_table_with_key_is_an_error),
        cmocka_unit_test(test_json_without_file_is_an_error),
        cmocka_unit_test(test_unknown_state_kind_is_an_error),
        cmocka_unit_test(test_generate_needs_count_in_range),
        cmocka_unit_test(test_missing_literal_dag_file_is_an_error),
        cmocka_unit_test(test_dag_glob_wildcards_go_in_the_file_name_only),
        cmocka_unit_test(test_duplicate_json_key_is_rejected_with_position),
        cmocka_unit_test(test_malformed_json_gives_line_and_column),
        cmocka_unit_test(test_top_level_array_is_an_error),
        cmocka_unit_test(test_top_level_scalar_is_an_error),
        cmocka_unit_test(test_missing_config_file_says_cannot_open),
        cmocka_unit_test(test_error_empties_a_config_that_had_state_and_dags),
    };
    const struct CMUnitTest listen_and_text[] = {
        cmocka_unit_test(test_parse_listen_ipv4),
        cmocka_unit_test(test_parse_listen_bracketed_ipv6),
        cmocka_unit_test(test_parse_listen_name_with_ephemeral_port),
        cmocka_unit_test(test_parse_listen_rejects_malformed),
        cmocka_unit_test(test_parse_listen_port_bounds),
        cmocka_unit_test(test_parse_text_names_the_path_and_resolves_against_it),
        cmocka_unit_test(test_parse_text_malformed_names_the_path),
        cmocka_unit_test(test_parse_text_uses_only_len_bytes),
    };
    int failed = cmocka_run_group_tests_name("config_valid", valid, NULL, NULL);
    failed += cmocka_run_group_tests_name("config_errors", errors, NULL, NULL);
    failed += cmocka_run_group_tests_name("config_listen_and_text", listen_and_text, NULL, NULL);
    return failed != 0;
}
