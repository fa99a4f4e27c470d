/* test_readme: README.md against the code, so the reference cannot drift.
 * The config table (between <!-- config-keys:begin/end -->) must list every
 * key load/config.c accepts and no other, each with the default, type and
 * range the loader applies; the commands table (between <!-- cli:begin/end
 * -->) must list, per command, the flags and placeholders that command's
 * --help lists.  Runs from the repository root; binary: $COWDAG, default
 * build/cowdag. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/support.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "heap/gc.h"
#include "load/config.h"

#define README "README.md"
#define MAX_ROWS 128
#define MAX_CELLS 8
#define CELL_MAX 512

/* ====================================================================== */
/* {  Reading README's tables                                              */
/* ====================================================================== */

/* One table row: its cells, trimmed, backticks removed. */
typedef struct row {
    char cell[MAX_CELLS][CELL_MAX];
    int ncells;
} row;

typedef struct table {
    row rows[MAX_ROWS];
    int nrows;
} table;

/* Copies a cell's text without its surrounding spaces, and without its
 * backticks unless keep_code; "\|" (a pipe inside a cell, as GitHub's
 * tables want it) becomes "|". */
static void clean_cell(char *out, const char *s, size_t len, bool keep_code)
{
    size_t o = 0;
    while (len && isspace((unsigned char)*s))
        s++, len--;
    while (len && isspace((unsigned char)s[len - 1]))
        len--;
    for (size_t i = 0; i < len && o + 1 < CELL_MAX; i++) {
        if (s[i] == '\\' && i + 1 < len && s[i + 1] == '|')
            continue;
        if (s[i] != '`' || keep_code)
            out[o++] = s[i];
    }
    out[o] = '\0';
}

/* The rows of the Markdown table between "<!-- NAME:begin -->" and
 * "<!-- NAME:end -->" in README.md, header and separator left out, cells as
 * clean_cell leaves them.  Fails the test if the markers or the table are
 * missing. */
static void read_table(const char *name, bool keep_code, table *t)
{
    char *text = slurp(README, NULL);
    if (!text)
        fail_msg("cannot read %s (run the test from the repository root)", README);
    char *begin = dup_printf("<!-- %s:begin -->", name), *end = dup_printf("<!-- %s:end -->", name);
    char *from = strstr(text, begin), *to = from ? strstr(from, end) : NULL;
    if (!from || !to)
        fail_msg("%s has no %s ... %s markers", README, begin, end);
    *to = '\0';
    t->nrows = 0;
    int lines = 0;
    for (char *line = strchr(from, '\n'); line && *line; line = strchr(line, '\n')) {
        line++;
        char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        if (len == 0 || line[0] != '|')
            continue;
        if (lines++ < 2) /* the header and the |---| line */
            continue;
        assert_true(t->nrows < MAX_ROWS);
        row *r = &t->rows[t->nrows++];
        r->ncells = 0;
        /* Cells split at every '|' but an escaped one. */
        const char *cell = line + 1;
        for (const char *p = line + 1; p < line + len; p++) {
            if (*p == '|' && p[-1] != '\\' && r->ncells < MAX_CELLS) {
                clean_cell(r->cell[r->ncells++], cell, (size_t)(p - cell), keep_code);
                cell = p + 1;
            }
        }
    }
    free(begin);
    free(end);
    free(text);
    if (t->nrows == 0)
        fail_msg("the %s table in %s has no rows", name, README);
}

/* }====================================================================== */

/* ====================================================================== */
/* {  The config table                                                     */
/* ====================================================================== */

/* Columns of the config table. */
enum { C_KEY, C_TYPE, C_DEFAULT, C_RANGE, C_UNIT, C_MEANING, C_COLUMNS };

static table config_table;

/* Reads the config table once, for every test that needs it. */
static void need_config_table(void)
{
    if (config_table.nrows == 0)
        read_table("config-keys", false, &config_table);
}

static const row *find_key(const char *key)
{
    for (int i = 0; i < config_table.nrows; i++)
        if (strcmp(config_table.rows[i].cell[C_KEY], key) == 0)
            return &config_table.rows[i];
    return NULL;
}

/* A config whose only setting is KEY = VALUE (JSON text), KEY as the
 * reference writes it: "k", "gc.k", "state[].k", "state[].generate.k".  A
 * state entry otherwise holds what a generated records entry needs, less
 * the key itself; without_key leaves the key out instead.  New string. */
static char *config_with(const char *key, const char *value, bool without_key)
{
    static const char *const entry[][2] = {
        {"name", "\"s\""}, {"kind", "\"records\""}, {"generate", "{\"count\": 1}"}};
    if (strncmp(key, "gc.", 3) == 0)
        return dup_printf("{\"gc\": {\"%s\": %s}}", key + 3, value);
    if (strncmp(key, "state[].", 8) != 0)
        return dup_printf("{\"%s\": %s}", key, value);
    const char *sub = key + 8;
    bool in_generate = strncmp(sub, "generate.", 9) == 0;
    char body[512] = "";
    for (size_t i = 0; i < sizeof entry / sizeof entry[0]; i++) {
        const char *v = entry[i][1];
        char gen[128];
        if (in_generate && strcmp(entry[i][0], "generate") == 0) {
            const char *g = sub + 9;
            if (without_key)
                snprintf(gen, sizeof gen, "{}");
            else if (strcmp(g, "count") == 0)
                snprintf(gen, sizeof gen, "{\"count\": %s}", value);
            else
                snprintf(gen, sizeof gen, "{\"count\": 1, \"%s\": %s}", g, value);
            v = gen;
        } else if (strcmp(entry[i][0], sub) == 0) {
            if (without_key)
                continue;
            v = value;
        }
        snprintf(body + strlen(body), sizeof body - strlen(body), "%s\"%s\": %s", body[0] ? ", " : "", entry[i][0],
                 v);
    }
    if (!in_generate && !without_key && !strstr(body, sub))
        snprintf(body + strlen(body), sizeof body - strlen(body), ", \"%s\": %s", sub, value);
    return dup_printf("{\"state\": [{%s}]}", body);
}

/* Loads text as the config; the error message, or NULL when it loaded. */
static char *load_error(const char *text)
{
    static char err[1024];
    ld_config c;
    if (ld_config_parse(text, strlen(text), "README.json", &c, err, sizeof err) == LD_OK) {
        ld_config_free(&c);
        return NULL;
    }
    return err;
}

/* The path the loader names KEY by in its messages: state[0]. for state[]. */
static void message_key(char *out, size_t len, const char *key)
{
    if (strncmp(key, "state[].", 8) == 0)
        snprintf(out, len, "state[0].%s", key + 8);
    else
        snprintf(out, len, "%s", key);
}

static void every_config_key_is_in_the_readme_and_no_other(void **state)
{
    (void)state;
    need_config_table();
    char key[128];
    int missing = 0, extra = 0;
    for (size_t i = 0; ld_config_key(i, key, sizeof key); i++) {
        if (!find_key(key)) {
            print_error("load/config.c accepts '%s', which README's config reference does not list\n", key);
            missing++;
        }
    }
    for (int r = 0; r < config_table.nrows; r++) {
        const char *k = config_table.rows[r].cell[C_KEY];
        bool known = false;
        for (size_t i = 0; !known && ld_config_key(i, key, sizeof key); i++)
            known = strcmp(key, k) == 0;
        if (!known) {
            print_error("README's config reference lists '%s', which load/config.c does not accept\n", k);
            extra++;
        }
        if (config_table.rows[r].ncells != C_COLUMNS) {
            print_error("README's config row '%s' has %d cells, not %d\n", k, config_table.rows[r].ncells, C_COLUMNS);
            extra++;
        }
    }
    assert_int_equal(missing + extra, 0);
}

/* The default the code applies to KEY, as the reference writes it; false
 * if this test does not know KEY (a new key: say here how to read its
 * default). */
static bool code_default(const char *key, char *out, size_t len)
{
    ld_config c;
    ld_config_defaults(&c);
    const struct {
        const char *key;
        int64_t v;
    } ints[] = {
        {"workers", c.workers},
        {"max_requests", (int64_t)c.max_requests},
        {"max_body_bytes", (int64_t)c.max_body_bytes},
        {"max_run_bytes", (int64_t)c.max_run_bytes},
        {"timeout_ms", c.timeout_ms},
        {"graceful_timeout_ms", c.graceful_timeout_ms},
        {"header_timeout_ms", c.header_timeout_ms},
        {"keepalive_timeout_ms", c.keepalive_timeout_ms},
        {"worker_timeout_ms", c.worker_timeout_ms},
        {"max_copied_mib", (int64_t)c.max_copied_mib},
        {"max_rss_mib", (int64_t)c.max_rss_mib},
        {"stats_interval_ms", c.stats_interval_ms},
        {"worker_priority", c.worker_priority},
    };
    bool found = true;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (strcmp(key, ints[i].key) == 0)
            snprintf(out, len, "%" PRId64, ints[i].v);
    if (out[0]) {
        ld_config_free(&c);
        return true;
    }
    if (strcmp(key, "listen") == 0)
        snprintf(out, len, "\"%s:%d\"", c.listen_host, c.listen_port);
    else if (strcmp(key, "max_copied_ratio") == 0)
        snprintf(out, len, "%g", c.max_copied_ratio);
    else if (strcmp(key, "admin") == 0)
        snprintf(out, len, "%s", c.admin ? "true" : "false");
    else if (strcmp(key, "dashboard") == 0)
        snprintf(out, len, "%s", c.dashboard ? "true" : "false");
    else if (strcmp(key, "access_log") == 0)
        snprintf(out, len, "%s", c.access_log ? "true" : "false");
    else if (strcmp(key, "gc") == 0)
        snprintf(out, len, "as below");
    else if (strcmp(key, "gc.mode") == 0)
        snprintf(out, len, "\"%s\"", gc_mode_name(c.gc.mode));
    else if (strcmp(key, "gc.thresholds") == 0)
        snprintf(out, len, "[%d, %d, %d]", c.gc.thresholds[0], c.gc.thresholds[1], c.gc.thresholds[2]);
    else if (strcmp(key, "gc.immortal") == 0)
        snprintf(out, len, "%s", c.gc.immortal ? "true" : "false");
    else if (strcmp(key, "gc.full_ratio") == 0)
        snprintf(out, len, "%g", c.gc.full_ratio);
    else if (strcmp(key, "state") == 0)
        snprintf(out, len, "%s", c.nstate ? "?" : "none");
    else if (strcmp(key, "dags") == 0)
        snprintf(out, len, "%s", c.ndags ? "?" : "none");
    else if (strcmp(key, "modules") == 0)
        snprintf(out, len, "%s", c.nmodules ? "?" : "[]");
    else if (strcmp(key, "state[].name") == 0 || strcmp(key, "state[].kind") == 0 ||
             strcmp(key, "state[].generate.count") == 0)
        snprintf(out, len, "required"); /* checked below: leaving it out is an error */
    else if (strcmp(key, "state[].generate") == 0 || strcmp(key, "state[].csv") == 0 ||
             strcmp(key, "state[].key") == 0 || strcmp(key, "state[].file") == 0)
        snprintf(out, len, "none"); /* which kind needs which is the kinds table's */
    else if (strcmp(key, "state[].generate.seed") == 0) {
        /* What a generated entry without a seed gets. */
        ld_config g;
        char err[256];
        const char *text = "{\"state\": [{\"name\": \"s\", \"kind\": \"records\", \"generate\": {\"count\": 1}}]}";
        assert_int_equal(ld_config_parse(text, strlen(text), "README.json", &g, err, sizeof err), LD_OK);
        snprintf(out, len, "%" PRIu64, g.state[0].seed);
        ld_config_free(&g);
    } else
        found = false;
    ld_config_free(&c);
    return found;
}

static void every_default_in_the_readme_is_the_codes(void **state)
{
    (void)state;
    need_config_table();
    int bad = 0;
    for (int r = 0; r < config_table.nrows; r++) {
        const row *w = &config_table.rows[r];
        char want[256];
        if (!code_default(w->cell[C_KEY], want, sizeof want)) {
            print_error("tests/test_readme.c does not know the default of '%s': teach code_default\n",
                        w->cell[C_KEY]);
            bad++;
            continue;
        }
        if (strcmp(want, w->cell[C_DEFAULT]) != 0) {
            print_error("'%s': README says the default is '%s', the code's is '%s'\n", w->cell[C_KEY],
                        w->cell[C_DEFAULT], want);
            bad++;
        }
        if (strcmp(want, "required") == 0) {
            char *text = config_with(w->cell[C_KEY], "null", true), mkey[128], *expect;
            message_key(mkey, sizeof mkey, w->cell[C_KEY]);
            expect = dup_printf("%s: required", mkey);
            const char *err = load_error(text);
            if (!err || !strstr(err, expect)) {
                print_error("'%s' is required by README, but %s gives: %s\n", w->cell[C_KEY], text,
                            err ? err : "no error");
                bad++;
            }
            free(expect);
            free(text);
        }
    }
    assert_int_equal(bad, 0);
}

/* A value of another type than t, as JSON text. */
static const char *wrong_value(const char *t) { return strcmp(t, "boolean") == 0 ? "\"x\"" : "true"; }

static void every_type_in_the_readme_is_the_one_the_loader_wants(void **state)
{
    (void)state;
    need_config_table();
    static const char *const types[] = {"integer", "number", "string", "boolean", "object", "array"};
    int bad = 0;
    for (int r = 0; r < config_table.nrows; r++) {
        const row *w = &config_table.rows[r];
        const char *t = w->cell[C_TYPE];
        bool known = false;
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            known |= strcmp(t, types[i]) == 0;
        if (!known) {
            print_error("'%s': type '%s' is none of integer, number, string, boolean, object, array\n",
                        w->cell[C_KEY], t);
            bad++;
            continue;
        }
        char *text = config_with(w->cell[C_KEY], wrong_value(t), false), mkey[128];
        message_key(mkey, sizeof mkey, w->cell[C_KEY]);
        char *expect = dup_printf("%s: expected %s, got", mkey, t);
        const char *err = load_error(text);
        if (!err || !strstr(err, expect)) {
            print_error("'%s' is a %s in README, but %s gives: %s\n", w->cell[C_KEY], t, text, err ? err : "no error");
            bad++;
        }
        free(expect);
        free(text);
    }
    assert_int_equal(bad, 0);
}

/* Whether KEY = v loads; for a number, v as "%.17g". */
static bool loads_with(const char *key, double v, bool integer)
{
    char value[64];
    if (integer)
        snprintf(value, sizeof value, "%.0f", v);
    else
        snprintf(value, sizeof value, "%.17g", v);
    char *text = config_with(key, value, false);
    bool ok = load_error(text) == NULL;
    free(text);
    return ok;
}

/* Every integer or number key whose range reads "LO to HI" or ">= LO"
 * takes its bounds and refuses one past each (a number: 0.5 past). */
static void every_range_in_the_readme_is_the_one_the_loader_checks(void **state)
{
    (void)state;
    need_config_table();
    int bad = 0, checked = 0;
    for (int r = 0; r < config_table.nrows; r++) {
        const row *w = &config_table.rows[r];
        bool integer = strcmp(w->cell[C_TYPE], "integer") == 0;
        if (!integer && strcmp(w->cell[C_TYPE], "number") != 0)
            continue;
        if (strcmp(w->cell[C_KEY], "gc.thresholds") == 0)
            continue;
        double lo, hi;
        bool bounded = true;
        char rest[8];
        if (sscanf(w->cell[C_RANGE], "%lf to %lf%1s", &lo, &hi, rest) == 2)
            ;
        else if (sscanf(w->cell[C_RANGE], ">= %lf%1s", &lo, rest) == 1)
            bounded = false;
        else {
            print_error("'%s': range '%s' is neither 'LO to HI' nor '>= LO'\n", w->cell[C_KEY], w->cell[C_RANGE]);
            bad++;
            continue;
        }
        double step = integer ? 1 : 0.5;
        checked++;
        if (!loads_with(w->cell[C_KEY], lo, integer) || loads_with(w->cell[C_KEY], lo - step, integer) ||
            (bounded && (!loads_with(w->cell[C_KEY], hi, integer) || loads_with(w->cell[C_KEY], hi + step, integer)))) {
            print_error("'%s': the loader does not take exactly %s\n", w->cell[C_KEY], w->cell[C_RANGE]);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
    assert_true(checked >= 10);
}

/* }====================================================================== */

/* ====================================================================== */
/* {  The commands table against each --help                               */
/* ====================================================================== */

#define MAX_FLAGS 32

/* A command's flags: "--name" or "-c", and the placeholder written after
 * it ("" where none is). */
typedef struct flags {
    char name[MAX_FLAGS][32];
    char arg[MAX_FLAGS][32];
    int n;
    char conflict[256]; /* a flag written with two placeholders */
} flags;

static void add_flag(flags *f, const char *name, const char *arg)
{
    if (strcmp(name, "--help") == 0 || strcmp(name, "--version") == 0)
        return; /* every command takes these two */
    for (int i = 0; i < f->n; i++) {
        if (strcmp(f->name[i], name) != 0)
            continue;
        if (arg[0] && f->arg[i][0] && strcmp(arg, f->arg[i]) != 0 && !f->conflict[0])
            snprintf(f->conflict, sizeof f->conflict, "%s is written both '%s %s' and '%s %s'", name, name, f->arg[i],
                     name, arg);
        if (arg[0] && !f->arg[i][0])
            snprintf(f->arg[i], sizeof f->arg[i], "%s", arg);
        return;
    }
    assert_true(f->n < MAX_FLAGS);
    snprintf(f->name[f->n], sizeof f->name[0], "%s", name);
    snprintf(f->arg[f->n], sizeof f->arg[0], "%s", arg);
    f->n++;
}

/* Every flag in text: a '-' at the start of a word or after '[' or '`',
 * then a letter (-c) or '-' and a lower-case name (--listen); its
 * placeholder is the next word when that starts with a capital (HOST:PORT,
 * JSON|@FILE, also when a table cell writes it JSON\|@FILE). */
static void scan_flags(const char *text, flags *f)
{
    for (const char *p = text; *p; p++) {
        if (*p != '-' || (p > text && !isspace((unsigned char)p[-1]) && p[-1] != '[' && p[-1] != '`'))
            continue;
        const char *q = p + 1;
        if (*q == '-')
            q++;
        if (!islower((unsigned char)*q))
            continue;
        while (islower((unsigned char)*q) || *q == '-')
            q++;
        if (q - p == 2 && p[1] == '-')
            continue;
        if (p[1] != '-' && q - p != 2)
            continue; /* a single dash takes one letter */
        char name[32], arg[32] = "";
        snprintf(name, sizeof name, "%.*s", (int)(q - p), p);
        if (q[0] == ' ' && isupper((unsigned char)q[1])) {
            const char *a = q + 1, *e = a;
            while (*e && !isspace((unsigned char)*e) && *e != ']' && *e != '`')
                e++;
            size_t o = 0;
            for (const char *x = a; x < e && o + 1 < sizeof arg; x++)
                if (!(x[0] == '\\' && x[1] == '|')) /* "\|", a table cell's pipe */
                    arg[o++] = *x;
            arg[o] = '\0';
        }
        add_flag(f, name, arg);
        p = q - 1;
    }
}

static void help_flags(const char *cmd, flags *f)
{
    char *qbin = sh_quote(cowdag_bin());
    char *line = dup_printf("exec %s %s --help 2>&1", qbin, cmd);
    fflush(NULL);
    FILE *p = popen(line, "r");
    assert_non_null(p);
    char *out = slurp_stream(p, NULL);
    int status = pclose(p);
    if (status != 0)
        fail_msg("`cowdag %s --help` exited with status %d: %s", cmd, status, out);
    scan_flags(out, f);
    free(out);
    free(line);
    free(qbin);
}

static bool same_flags(const char *cmd, const flags *readme, const flags *help)
{
    bool same = true;
    for (int i = 0; i < help->n; i++) {
        int j = 0;
        while (j < readme->n && strcmp(readme->name[j], help->name[i]) != 0)
            j++;
        if (j == readme->n) {
            print_error("cowdag %s --help lists %s %s, README's commands table does not\n", cmd, help->name[i],
                        help->arg[i]);
            same = false;
        } else if (strcmp(readme->arg[j], help->arg[i]) != 0) {
            print_error("cowdag %s: README writes '%s %s', --help '%s %s'\n", cmd, readme->name[j], readme->arg[j],
                        help->name[i], help->arg[i]);
            same = false;
        }
    }
    for (int j = 0; j < readme->n; j++) {
        int i = 0;
        while (i < help->n && strcmp(readme->name[j], help->name[i]) != 0)
            i++;
        if (i == help->n) {
            print_error("README's commands table gives cowdag %s %s, which its --help does not list\n", cmd,
                        readme->name[j]);
            same = false;
        }
    }
    return same;
}

static void every_commands_flags_in_the_readme_are_its_helps(void **state)
{
    (void)state;
    static const char *const commands[] = {"serve", "run", "check", "ops", "stats", "cowtest"};
    table *t = malloc(sizeof *t);
    assert_non_null(t);
    read_table("cli", true, t);
    int bad = 0;
    for (size_t c = 0; c < sizeof commands / sizeof commands[0]; c++) {
        char want[64];
        snprintf(want, sizeof want, "`cowdag %s`", commands[c]);
        const row *r = NULL;
        for (int i = 0; i < t->nrows && !r; i++)
            if (strcmp(t->rows[i].cell[0], want) == 0)
                r = &t->rows[i];
        if (!r) {
            print_error("README's commands table has no row '%s'\n", want);
            bad++;
            continue;
        }
        flags readme = {0}, help = {0};
        /* The flags cell, with its backticks: each flag starts after one
         * and its placeholder ends before the next. */
        char *text = dup_printf(" %s", r->ncells > 1 ? r->cell[1] : "");
        scan_flags(text, &readme);
        free(text);
        help_flags(commands[c], &help);
        if (help.conflict[0]) {
            print_error("cowdag %s --help: %s\n", commands[c], help.conflict);
            bad++;
        }
        if (readme.conflict[0]) {
            print_error("README, cowdag %s: %s\n", commands[c], readme.conflict);
            bad++;
        }
        bad += !same_flags(commands[c], &readme, &help);
    }
    free(t);
    assert_int_equal(bad, 0);
}

/* Anywhere in README's prose and examples, a cowdag flag written with a
 * placeholder takes the one its --help writes (other tools' flags, wrk's or
 * curl's, are no command's and are left alone). */
static void every_placeholder_in_the_readme_is_the_helps(void **state)
{
    (void)state;
    static const char *const commands[] = {"serve", "run", "check", "ops", "stats", "cowtest"};
    char *text = slurp(README, NULL);
    if (!text)
        fail_msg("cannot read %s (run the test from the repository root)", README);
    flags *readme = calloc(1, sizeof *readme), *help = calloc(1, sizeof *help);
    assert_non_null(readme);
    assert_non_null(help);
    scan_flags(text, readme);
    free(text);
    int bad = 0;
    if (readme->conflict[0]) {
        print_error("README: %s\n", readme->conflict);
        bad++;
    }
    for (size_t c = 0; c < sizeof commands / sizeof commands[0]; c++) {
        memset(help, 0, sizeof *help);
        help_flags(commands[c], help);
        for (int i = 0; i < help->n; i++)
            for (int j = 0; j < readme->n; j++)
                if (strcmp(readme->name[j], help->name[i]) == 0 && readme->arg[j][0] && help->arg[i][0] &&
                    strcmp(readme->arg[j], help->arg[i]) != 0) {
                    print_error("README writes '%s %s', cowdag %s --help '%s %s'\n", readme->name[j], readme->arg[j],
                                commands[c], help->name[i], help->arg[i]);
                    bad++;
                }
    }
    free(readme);
    free(help);
    assert_int_equal(bad, 0);
}

/* Whether w occurs in text as a whole word. */
static bool has_word(const char *text, const char *w)
{
    size_t n = strlen(w);
    for (const char *p = strstr(text, w); p; p = strstr(p + 1, w)) {
        bool before = p == text || !isalnum((unsigned char)p[-1]);
        bool after = !isalnum((unsigned char)p[n]);
        if (before && after)
            return true;
    }
    return false;
}

/* `cowdag stats --help` names every column of the table README shows (the
 * line that starts "slot pid"), so neither can gain one silently. */
static void stats_help_names_every_column_the_readme_shows(void **state)
{
    (void)state;
    char *text = slurp(README, NULL);
    if (!text)
        fail_msg("cannot read %s (run the test from the repository root)", README);
    char *header = strstr(text, "\nslot pid");
    if (!header)
        fail_msg("%s shows no `cowdag stats` table (a line starting \"slot pid\")", README);
    header++;
    *strchrnul(header, '\n') = '\0';

    char *qbin = sh_quote(cowdag_bin()), *cmd = dup_printf("exec %s stats --help 2>&1", qbin);
    fflush(NULL);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char *help = slurp_stream(p, NULL);
    assert_int_equal(pclose(p), 0);

    int missing = 0;
    char *save = NULL;
    for (char *w = strtok_r(header, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        if (!has_word(help, w)) {
            print_error("README's stats table has the column word '%s', which `cowdag stats --help` never names\n", w);
            missing++;
        }
    }
    free(help);
    free(cmd);
    free(qbin);
    free(text);
    assert_int_equal(missing, 0);
}

/* The scanner itself, on text of both kinds. */
static void the_flag_scanner_reads_usage_lines_and_option_lists(void **state)
{
    (void)state;
    flags f = {0};
    scan_flags("usage: x [-c FILE] [--gc-thresholds T0,T1,T2] [--json]\n"
               "  -c, --config FILE   config\n  --inputs JSON|@FILE   look-ups (0-2), --collect, e.g.\n",
               &f);
    assert_int_equal(f.n, 6);
    assert_string_equal(f.name[0], "-c");
    assert_string_equal(f.arg[0], "FILE");
    assert_string_equal(f.name[1], "--gc-thresholds");
    assert_string_equal(f.arg[1], "T0,T1,T2");
    assert_string_equal(f.name[2], "--json");
    assert_string_equal(f.arg[2], "");
    assert_string_equal(f.name[3], "--config");
    assert_string_equal(f.name[4], "--inputs");
    assert_string_equal(f.arg[4], "JSON|@FILE");
    assert_string_equal(f.name[5], "--collect");
    assert_string_equal(f.conflict, "");
    scan_flags("| `cowdag run` | `--inputs JSON\\|@FILE`, `--outputs A,B` |", &f);
    assert_int_equal(f.n, 7);
    assert_string_equal(f.arg[4], "JSON|@FILE");
    assert_string_equal(f.name[6], "--outputs");
    assert_string_equal(f.arg[6], "A,B");
    assert_string_equal(f.conflict, "");
    scan_flags("  --gc-thresholds T   three\n", &f);
    assert_string_not_equal(f.conflict, "");
}

/* }====================================================================== */

int main(void)
{
    const struct CMUnitTest config[] = {
        cmocka_unit_test(every_config_key_is_in_the_readme_and_no_other),
        cmocka_unit_test(every_default_in_the_readme_is_the_codes),
        cmocka_unit_test(every_type_in_the_readme_is_the_one_the_loader_wants),
        cmocka_unit_test(every_range_in_the_readme_is_the_one_the_loader_checks),
    };
    const struct CMUnitTest cli[] = {
        cmocka_unit_test(the_flag_scanner_reads_usage_lines_and_option_lists),
        cmocka_unit_test(every_commands_flags_in_the_readme_are_its_helps),
        cmocka_unit_test(every_placeholder_in_the_readme_is_the_helps),
        cmocka_unit_test(stats_help_names_every_column_the_readme_shows),
    };
    int failed = cmocka_run_group_tests_name("readme_config", config, NULL, NULL);
    failed += cmocka_run_group_tests_name("readme_cli", cli, NULL, NULL);
    return failed ? 1 : 0;
}
