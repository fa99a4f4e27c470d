/* test_exposition: the checker of the Prometheus text format that the
 * tests of GET /metrics rely on (tests/exposition.h): it reads a good text
 * back, and it catches each broken rule, so it can fail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/exposition.h"

#include <stdbool.h>

static void checker_accepts_a_well_formed_text(void **state)
{
    (void)state;
    expo x;
    parse_ok("# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"q\\\"\\\\\\n\"} 3\n"
             "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"0.1\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
             "h_sum 0.3\nh_count 2\n",
             &x);
    assert_string_equal(label_of(must(find_sample(&x, "a_total", "x", "q\"\\\n", NULL)), "x"), "q\"\\\n");
    expo_free(&x);
}

/* Each broken text must be caught: the checker can fail. */
static void checker_rejects_each_broken_rule(void **state)
{
    (void)state;
    static const char *const bad[] = {
        /* HELP twice */
        "# HELP a A.\n# HELP a A.\n# TYPE a gauge\na 1\n",
        /* TYPE twice */
        "# HELP a A.\n# TYPE a gauge\n# TYPE a gauge\na 1\n",
        /* header after samples */
        "# HELP a A.\n# TYPE a gauge\na 1\n# TYPE a gauge\n",
        /* family split by another */
        "# HELP a A.\n# TYPE a gauge\na{k=\"1\"} 1\n# HELP b B.\n# TYPE b gauge\nb 1\na{k=\"2\"} 1\n",
        /* sample of another family under this one */
        "# HELP a A.\n# TYPE a gauge\nb 1\n",
        /* sample before any header */
        "a 1\n",
        /* histogram suffix on a gauge */
        "# HELP a A.\n# TYPE a gauge\na_bucket{le=\"1\"} 1\n",
        /* bad escape, unterminated value, bad label name */
        "# HELP a A.\n# TYPE a gauge\na{k=\"\\t\"} 1\n",
        "# HELP a A.\n# TYPE a gauge\na{k=\"x} 1\n",
        "# HELP a A.\n# TYPE a gauge\na{1k=\"x\"} 1\n",
        /* values Prometheus would not spell so */
        "# HELP a A.\n# TYPE a gauge\na inf\n",
        "# HELP a A.\n# TYPE a gauge\na 0x10\n",
        "# HELP a A.\n# TYPE a gauge\na \n",
        /* same series twice */
        "# HELP a A.\n# TYPE a gauge\na{k=\"1\"} 1\na{k=\"1\"} 2\n",
        /* buckets not cumulative; not ascending; no +Inf; +Inf != count; no sum */
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\n"
        "h_sum 1\nh_count 1\n",
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 2\n",
        /* no final newline; an empty line; a missing HELP */
        "# HELP a A.\n# TYPE a gauge\na 1",
        "# HELP a A.\n# TYPE a gauge\n\na 1\n",
        "# TYPE a gauge\na 1\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        expo x;
        char err[256] = "";
        bool ok = check_exposition(bad[i], &x, err, sizeof err);
        if (ok)
            print_error("checker accepted broken text #%zu:\n%s\n", i, bad[i]);
        assert_false(ok);
        expo_free(&x);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(checker_accepts_a_well_formed_text),
        cmocka_unit_test(checker_rejects_each_broken_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
