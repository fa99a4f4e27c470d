/* test_cowtest: runs `cowdag cowtest` as a user would and checks the
 * copy-on-write bounds it must show (README, "The experiment").  The binary
 * is $COWDAG (default build/cowdag); the store size is $COWTEST_RECORDS
 * (default 300000), with 2560000 look-ups per 300000 records. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <jansson.h>

#include "tests/support.h"

static unsigned long records(void)
{
    const char *r = getenv("COWTEST_RECORDS");
    return r ? strtoul(r, NULL, 10) : 300000;
}

/* Runs cowtest with `args`; returns its JSON report (or NULL) and status. */
static json_t *cowtest(const char *args, int *status)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s cowtest --records %lu %s", cowdag_bin(), records(), args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, p);
    *status = pclose(p);
    json_t *doc = NULL;
    if (n > 0) {
        json_error_t err;
        doc = json_loads(line, 0, &err);
    }
    free(line);
    return doc;
}

static json_t *report(const char *args)
{
    int status;
    json_t *doc = cowtest(args, &status);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_non_null(doc);
    return doc;
}

static double state_real(json_t *doc, const char *key)
{
    json_t *v = json_object_get(json_object_get(doc, "state"), key);
    assert_true(json_is_number(v));
    return json_number_value(v);
}

static char lookups_arg[64];

static const char *lookups(void)
{
    snprintf(lookups_arg, sizeof lookups_arg, "--lookups %lu", records() * 256 / 30);
    return lookups_arg;
}

static void report_has_every_field(void **state)
{
    (void)state;
    json_t *doc = report("--gc freeze --immortal --collect 0");
    const char *top[] = {"mode", "thresholds", "immortal", "records", "lookups", "collect",
                         "state", "process", "gc", "elapsed_ms"};
    for (size_t i = 0; i < sizeof top / sizeof *top; i++)
        assert_non_null(json_object_get(doc, top[i]));
    const char *st[] = {"pages", "shared_pages", "private_pages", "private_ratio"};
    for (size_t i = 0; i < 4; i++)
        assert_non_null(json_object_get(json_object_get(doc, "state"), st[i]));
    const char *pr[] = {"rss_bytes", "pss_bytes", "shared_clean_bytes", "shared_dirty_bytes",
                        "private_clean_bytes", "private_dirty_bytes"};
    for (size_t i = 0; i < 6; i++)
        assert_true(json_is_integer(json_object_get(json_object_get(doc, "process"), pr[i])));
    assert_string_equal(json_string_value(json_object_get(doc, "mode")), "freeze");
    assert_true(json_is_true(json_object_get(doc, "immortal")));
    assert_int_equal(json_integer_value(json_object_get(doc, "collect")), 0);
    assert_true(state_real(doc, "pages") > 0);
    assert_true(state_real(doc, "pages") == state_real(doc, "shared_pages") + state_real(doc, "private_pages"));
    json_decref(doc);
}

/* The copied pages of a type in the report's copied_by_type. */
static json_int_t copied(json_t *doc, const char *type)
{
    json_t *t = json_object_get(json_object_get(json_object_get(doc, "state"), "copied_by_type"), type);
    assert_non_null(t);
    return json_integer_value(json_object_get(t, "pages"));
}

/* copied_by_type adds up: sum(only) + mixed + empty and sum(by region) are
 * the private pages. */
static void assert_copied_adds_up(json_t *doc)
{
    json_t *st = json_object_get(doc, "state");
    json_int_t only = 0, regions = 0;
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(st, "copied_by_type"), k, v) only += json_integer_value(json_object_get(v, "only"));
    json_object_foreach(json_object_get(st, "copied_by_region"), k, v) regions += json_integer_value(v);
    json_int_t priv = json_integer_value(json_object_get(st, "private_pages"));
    assert_int_equal(only + json_integer_value(json_object_get(st, "copied_mixed_pages")) +
                         json_integer_value(json_object_get(st, "copied_empty_pages")),
                     priv);
    assert_int_equal(regions, priv);
}

static void tuned_full_collection_copies_every_tracked_page(void **state)
{
    (void)state;
    json_t *tuned = report("--gc tuned --gc-thresholds 700,10,10 --collect 2");
    /* exactly the pages of the collector's fields, all of tracked types */
    assert_true(state_real(tuned, "private_pages") == state_real(tuned, "tracked_pages"));
    assert_copied_adds_up(tuned);
    assert_true(copied(tuned, "dict") > 0 && copied(tuned, "list") > 0);
    const char *untracked[] = {"int", "float", "str", "array", "storage"};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(copied(tuned, untracked[i]), 0);
    json_t *frozen = report("--gc freeze --collect 2");
    double ratio = state_real(tuned, "private_ratio");
    assert_true(ratio >= 0.15);
    assert_true(ratio >= 20 * state_real(frozen, "private_ratio"));
    assert_true(state_real(frozen, "private_ratio") <= 0.01);
    json_decref(tuned);
    json_decref(frozen);
}

static void freeze_loses_pages_to_refcount_writes(void **state)
{
    (void)state;
    char args[128];
    snprintf(args, sizeof args, "--gc freeze %s", lookups());
    json_t *doc = report(args);
    assert_true(state_real(doc, "private_ratio") >= 0.4);
    /* the counts of what the look-ups read; the store's index stays shared */
    assert_copied_adds_up(doc);
    assert_true(copied(doc, "dict") > 0 && copied(doc, "list") > 0 && copied(doc, "float") > 0);
    assert_int_equal(copied(doc, "storage"), 0);
    json_decref(doc);
}

static void freeze_immortal_keeps_every_page_shared(void **state)
{
    (void)state;
    char args[128];
    snprintf(args, sizeof args, "--gc freeze --immortal %s --collect 2", lookups());
    json_t *doc = report(args);
    assert_true(state_real(doc, "private_ratio") <= 0.005);
    assert_copied_adds_up(doc);
    json_decref(doc);
}

static void bad_arguments_exit_2_with_no_report(void **state)
{
    (void)state;
    const char *bad[] = {"--gc sometimes", "--gc-thresholds 1,2", "--collect 3", "--gc tuned --immortal",
                         "--lookups -5", "--bogus"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char args[128];
        snprintf(args, sizeof args, "%s 2>/dev/null", bad[i]);
        int status;
        json_t *doc = cowtest(args, &status);
        assert_null(doc);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 2);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(report_has_every_field),
        cmocka_unit_test(tuned_full_collection_copies_every_tracked_page),
        cmocka_unit_test(freeze_loses_pages_to_refcount_writes),
        cmocka_unit_test(freeze_immortal_keeps_every_page_shared),
        cmocka_unit_test(bad_arguments_exit_2_with_no_report),
    };
    return cmocka_run_group_tests_name("cowtest", tests, NULL, NULL);
}
