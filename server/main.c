/* main.c: the cowdag command line: one function per command, dispatched on
 * argv[1].  The commands and their flags are in README.md and the spec. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heap/gc.h"
#include "server/cowtest.h"

#define COWDAG_VERSION "0.1.0"

static const char *const usage_main =
    "usage: cowdag COMMAND [OPTIONS]\n"
    "\n"
    "commands:\n"
    "  serve     run the pre-fork HTTP server\n"
    "  run       run one DAG in-process and print its result\n"
    "  check     validate the config, its state specs and DAGs\n"
    "  cowtest   the copy-on-write experiment, without a server\n"
    "\n"
    "`cowdag COMMAND --help` describes each; `cowdag --version` prints the version.\n";

static const char *const usage_cowtest =
    "usage: cowdag cowtest --records N [--gc MODE] [--gc-thresholds A,B,C] [--immortal]\n"
    "                      [--lookups K] [--collect G] [--seed S]\n"
    "\n"
    "Builds the customer store of N records, settles the collector as a master\n"
    "does, forks a child that makes K random record look-ups and then, with\n"
    "--collect, one collection of generation G (0-2), and prints one JSON line:\n"
    "how many inherited state pages the child still shares, its process memory,\n"
    "its collector statistics and timings.  Exits with the child's status.\n"
    "\n"
    "  --records N          records in the store (required)\n"
    "  --gc MODE            tuned | disable | freeze (default tuned)\n"
    "  --gc-thresholds T    three thresholds, e.g. 700,10,10 (the default)\n"
    "  --immortal           with freeze: objects existing at fork are immortal\n"
    "  --lookups K          random look-ups in the child (default 0)\n"
    "  --collect G          collect generation G after the look-ups\n"
    "  --seed S             generator and look-up seed (default 42)\n";

/* Parses an unsigned decimal that must fill the whole string. */
static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!*s || *s == '-')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

static int parse_thresholds(const char *s, int t[GC_GENERATIONS])
{
    char buf[64];
    if (strlen(s) >= sizeof buf)
        return -1;
    strcpy(buf, s);
    char *save = NULL, *tok = strtok_r(buf, ",", &save);
    for (int i = 0; i < GC_GENERATIONS; i++, tok = strtok_r(NULL, ",", &save)) {
        uint64_t v;
        if (!tok || parse_u64(tok, &v) || v > 1000000000u)
            return -1;
        t[i] = (int)v;
    }
    return tok ? -1 : 0;
}

static int fail(const char *cmd, const char *fmt, const char *arg)
{
    fprintf(stderr, "cowdag %s: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(see `cowdag %s --help`)\n", cmd);
    return 2;
}

static int cmd_cowtest(int argc, char **argv)
{
    enum { O_RECORDS = 1, O_GC, O_THRESH, O_IMMORTAL, O_LOOKUPS, O_COLLECT, O_SEED, O_HELP, O_VERSION };
    static const struct option opts[] = {
        {"records", required_argument, NULL, O_RECORDS}, {"gc", required_argument, NULL, O_GC},
        {"gc-thresholds", required_argument, NULL, O_THRESH}, {"immortal", no_argument, NULL, O_IMMORTAL},
        {"lookups", required_argument, NULL, O_LOOKUPS}, {"collect", required_argument, NULL, O_COLLECT},
        {"seed", required_argument, NULL, O_SEED}, {"help", no_argument, NULL, O_HELP},
        {"version", no_argument, NULL, O_VERSION}, {NULL, 0, NULL, 0}};
    srv_cow_options o = {.seed = 42, .collect = -1, .gc = gc_default_config()};
    bool have_records = false;
    uint64_t v;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_RECORDS:
            if (parse_u64(optarg, &o.records) || o.records > 100000000u)
                return fail("cowtest", "--records wants a count up to 100000000, not '%s'", optarg);
            have_records = true;
            break;
        case O_GC:
            if (gc_mode_parse(optarg, &o.gc.mode))
                return fail("cowtest", "--gc wants tuned, disable or freeze, not '%s'", optarg);
            break;
        case O_THRESH:
            if (parse_thresholds(optarg, o.gc.thresholds))
                return fail("cowtest", "--gc-thresholds wants three integers like 700,10,10, not '%s'", optarg);
            break;
        case O_IMMORTAL:
            o.gc.immortal = true;
            break;
        case O_LOOKUPS:
            if (parse_u64(optarg, &o.lookups))
                return fail("cowtest", "--lookups wants a count, not '%s'", optarg);
            break;
        case O_COLLECT:
            if (parse_u64(optarg, &v) || v >= GC_GENERATIONS)
                return fail("cowtest", "--collect wants a generation 0, 1 or 2, not '%s'", optarg);
            o.collect = (int)v;
            break;
        case O_SEED:
            if (parse_u64(optarg, &o.seed))
                return fail("cowtest", "--seed wants an unsigned integer, not '%s'", optarg);
            break;
        case O_HELP:
            fputs(usage_cowtest, stdout);
            return 0;
        case O_VERSION:
            puts("cowdag " COWDAG_VERSION);
            return 0;
        default:
            return fail("cowtest", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return fail("cowtest", "unexpected argument '%s'", argv[optind]);
    if (!have_records)
        return fail("cowtest", "%s", "--records is required");
    const char *why;
    if (gc_config_check(&o.gc, &why))
        return fail("cowtest", "%s", why);
    return srv_cowtest(&o, stdout);
}

/* Commands whose implementation has not landed yet say so and fail. */
static int cmd_pending(const char *name, int argc, char **argv)
{
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--version") == 0) {
            puts("cowdag " COWDAG_VERSION);
            return 0;
        }
    }
    fprintf(stderr, "cowdag %s: not available in this build yet (see README.md, Status)\n", name);
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_main, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_main, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        puts("cowdag " COWDAG_VERSION);
        return 0;
    }
    if (strcmp(cmd, "cowtest") == 0)
        return cmd_cowtest(argc - 1, argv + 1);
    if (strcmp(cmd, "serve") == 0 || strcmp(cmd, "run") == 0 || strcmp(cmd, "check") == 0)
        return cmd_pending(cmd, argc, argv);
    fprintf(stderr, "cowdag: unknown command '%s'\n\n%s", cmd, usage_main);
    return 2;
}
