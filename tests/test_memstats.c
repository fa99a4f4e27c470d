/* tests/test_memstats.c: cmocka unit tests for memstats (smaps_rollup parsing,
 * pagemap classification and counting, a real fork sharing check).
 * Behaviour under test is described in memstats/memstats.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tests/support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "memstats/memstats.h"

#ifndef FIXTURE_DIR
#define FIXTURE_DIR "tests/fixtures"
#endif
#define ROLLUP_FIXTURE FIXTURE_DIR "/smaps_rollup.txt"

#define KB 1024ULL

static long ps;

/* ---- helpers ------------------------------------------------------------ */

static int parse_str(const char *s, ms_rollup *out)
{
    return ms_rollup_parse(s, strlen(s), out);
}

static void assert_rollup_zero(const ms_rollup *r)
{
    static const ms_rollup zero;
    assert_memory_equal(r, &zero, sizeof zero);
}

static void assert_pages_zero(const ms_pages *p)
{
    static const ms_pages zero;
    assert_memory_equal(p, &zero, sizeof zero);
}

/* Fills *r with junk so a test can tell "zeroed" from "untouched". */
static void poison(void *p, size_t n) { memset(p, 0xa5, n); }

/* Values of tests/fixtures/smaps_rollup.txt (a real bash's rollup). */
static void assert_fixture_values(const ms_rollup *r)
{
    assert_int_equal(r->rss_bytes, 3868 * KB);
    assert_int_equal(r->pss_bytes, 1431 * KB);
    assert_int_equal(r->shared_clean_bytes, 2892 * KB);
    assert_int_equal(r->shared_dirty_bytes, 712 * KB);
    assert_int_equal(r->private_clean_bytes, 56 * KB);
    assert_int_equal(r->private_dirty_bytes, 208 * KB);
}

/* Maps n private anonymous small pages (no THP, so no huge zero page). */
static char *map_pages(size_t n)
{
    char *m = mmap(NULL, n * (size_t)ps, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(m != MAP_FAILED);
    assert_int_equal(madvise(m, n * (size_t)ps, MADV_NOHUGEPAGE), 0);
    return m;
}

/* ---- smaps_rollup ------------------------------------------------------- */

static void test_rollup_parse_real_fixture_gives_exact_bytes(void **state)
{
    ms_rollup r;
    size_t len;
    char *text = slurp(ROLLUP_FIXTURE, &len);
    assert_non_null(text);
    (void)state;
    assert_int_equal(ms_rollup_parse(text, len, &r), MS_OK);
    assert_fixture_values(&r);
    free(text);
}

static void test_rollup_parse_skips_header_line(void **state)
{
    ms_rollup r;
    (void)state;
    assert_int_equal(parse_str("55d0c0a00000-7ffc8a1f2000 ---p 00000000 00:00 0"
                               "                          [rollup]\n"
                               "Rss:  8 kB\nPss:  4 kB\n", &r), MS_OK);
    assert_int_equal(r.rss_bytes, 8 * KB);
    assert_int_equal(r.pss_bytes, 4 * KB);
}

static void test_rollup_parse_skips_unknown_keys_even_prefixed_or_malformed(void **state)
{
    ms_rollup r;
    (void)state;
    /* Pss_Anon shares a prefix with Pss; Swap's junk value must not matter. */
    assert_int_equal(parse_str("Pss_Anon:  999 kB\nRss: 12 kB\nSwap: junk\n"
                               "Anonymous: 77 kB\nPss: 6 kB\nLocked: -1 kB\n"
                               "Private_Dirty: 2 kB\n", &r), MS_OK);
    assert_int_equal(r.rss_bytes, 12 * KB);
    assert_int_equal(r.pss_bytes, 6 * KB);
    assert_int_equal(r.private_dirty_bytes, 2 * KB);
    assert_int_equal(r.shared_clean_bytes, 0);
}

static void test_rollup_parse_missing_pss_fails_and_zeroes(void **state)
{
    ms_rollup r;
    (void)state;
    poison(&r, sizeof r);
    assert_int_equal(parse_str("Rss: 12 kB\nShared_Clean: 4 kB\n", &r), MS_ERR);
    assert_rollup_zero(&r);
}

static void test_rollup_parse_missing_rss_fails_and_zeroes(void **state)
{
    ms_rollup r;
    (void)state;
    poison(&r, sizeof r);
    assert_int_equal(parse_str("Pss: 12 kB\n", &r), MS_ERR);
    assert_rollup_zero(&r);
}

static void test_rollup_parse_non_numeric_value_fails_and_zeroes(void **state)
{
    ms_rollup r;
    (void)state;
    poison(&r, sizeof r);
    assert_int_equal(parse_str("Pss: 1 kB\nRss: abc kB\n", &r), MS_ERR);
    assert_rollup_zero(&r);
    assert_int_equal(parse_str("Pss: 1 kB\nRss: 12x kB\n", &r), MS_ERR);
    assert_int_equal(parse_str("Pss: 1 kB\nRss:\n", &r), MS_ERR);
    assert_int_equal(parse_str("Pss: 1 kB\nRss: 12 MB\n", &r), MS_ERR);
    assert_int_equal(parse_str("Pss: 1 kB\nRss: 12 kB trailing\n", &r), MS_ERR);
    assert_int_equal(parse_str("Pss: 1 kB\nRss: 12\n", &r), MS_ERR);
    assert_rollup_zero(&r);
}

static void test_rollup_parse_negative_value_fails(void **state)
{
    ms_rollup r;
    (void)state;
    assert_int_equal(parse_str("Pss: 1 kB\nRss: -12 kB\n", &r), MS_ERR);
    assert_int_equal(parse_str("Pss: 1 kB\nRss: +12 kB\n", &r), MS_ERR);
    assert_rollup_zero(&r);
}

static void test_rollup_parse_overflowing_value_fails(void **state)
{
    ms_rollup r;
    (void)state;
    /* Beyond unsigned long long, then fits in kB but not once in bytes. */
    assert_int_equal(parse_str("Pss: 1 kB\nRss: 99999999999999999999999 kB\n", &r), MS_ERR);
    assert_int_equal(parse_str("Pss: 1 kB\nRss: 18014398509481984 kB\n", &r), MS_ERR);
    assert_rollup_zero(&r);
    /* The largest kB value whose byte count still fits is accepted. */
    assert_int_equal(parse_str("Pss: 1 kB\nRss: 18014398509481983 kB\n", &r), MS_OK);
    assert_int_equal(r.rss_bytes, 18014398509481983ULL * KB);
}

static void test_rollup_parse_last_line_without_newline_is_used(void **state)
{
    ms_rollup r;
    (void)state;
    assert_int_equal(parse_str("Rss: 10 kB\nPss: 3 kB", &r), MS_OK);
    assert_int_equal(r.pss_bytes, 3 * KB);
}

static void test_rollup_parse_honours_len_and_rejects_cut_line(void **state)
{
    static const char text[] = "Rss: 10 kB\nPss: 345 kB\nShared_Clean: 7 kB\n";
    const char *pss = strstr(text, "Pss");
    ms_rollup r;
    (void)state;
    /* Cut inside Pss's number: the value lacks its unit, so it is rejected
     * rather than read as 34 kB. */
    poison(&r, sizeof r);
    assert_int_equal(ms_rollup_parse(text, (size_t)(pss - text) + 7, &r), MS_ERR);
    assert_rollup_zero(&r);
    /* Cut before Pss: Pss is missing. */
    assert_int_equal(ms_rollup_parse(text, (size_t)(pss - text), &r), MS_ERR);
    /* Cut inside the next key's name: that half line is just skipped. */
    assert_int_equal(ms_rollup_parse(text, (size_t)(pss - text) + 15, &r), MS_OK);
    assert_int_equal(r.pss_bytes, 345 * KB);
    assert_int_equal(r.shared_clean_bytes, 0);
}

static void test_rollup_parse_empty_text_fails(void **state)
{
    ms_rollup r;
    (void)state;
    poison(&r, sizeof r);
    assert_int_equal(ms_rollup_parse("", 0, &r), MS_ERR);
    assert_rollup_zero(&r);
    assert_int_equal(ms_rollup_parse(NULL, 0, &r), MS_ERR);
    assert_int_equal(ms_rollup_parse("\n\n\n", 3, &r), MS_ERR);
}

static void test_rollup_parse_very_long_lines_do_not_break_parsing(void **state)
{
    size_t n = 100000;
    char *text = malloc(n + 64);
    ms_rollup r;
    (void)state;
    assert_non_null(text);
    /* A 100 KB unknown line between the two keys is skipped... */
    strcpy(text, "Rss: 5 kB\n");
    memset(text + 10, 'x', n);
    strcpy(text + 10 + n, "\nPss: 2 kB\n");
    assert_int_equal(parse_str(text, &r), MS_OK);
    assert_int_equal(r.pss_bytes, 2 * KB);
    /* ...but a known key with a huge digit run is malformed, not read. */
    strcpy(text, "Pss: 2 kB\nRss: ");
    memset(text + 15, '1', n);
    strcpy(text + 15 + n, " kB\n");
    assert_int_equal(parse_str(text, &r), MS_ERR);
    assert_rollup_zero(&r);
    free(text);
}

static void test_rollup_read_file_on_fixture(void **state)
{
    ms_rollup r;
    (void)state;
    assert_int_equal(ms_rollup_read_file(ROLLUP_FIXTURE, &r), MS_OK);
    assert_fixture_values(&r);
}

static void test_rollup_read_file_nonexistent_fails_and_zeroes(void **state)
{
    ms_rollup r;
    (void)state;
    poison(&r, sizeof r);
    assert_int_equal(ms_rollup_read_file(FIXTURE_DIR "/smaps_no_such_file.txt", &r), MS_ERR);
    assert_rollup_zero(&r);
}

static void test_rollup_read_file_larger_than_buffer_does_not_crash(void **state)
{
    char path[] = "/tmp/smaps_bigXXXXXX";
    int fd = mkstemp(path);
    char junk[4096];
    ms_rollup r;
    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "Rss: 9 kB\nPss: 3 kB\n", 20), 20);
    memset(junk, 'y', sizeof junk);
    for (int i = 0; i < 16; i++) /* 64 KiB line, well past the read buffer */
        assert_int_equal(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
    assert_int_equal(write(fd, "\nShared_Dirty: 1 kB\n", 20), 20);
    close(fd);
    assert_int_equal(ms_rollup_read_file(path, &r), MS_OK);
    assert_int_equal(r.rss_bytes, 9 * KB);
    assert_int_equal(r.pss_bytes, 3 * KB);
    assert_int_equal(r.shared_dirty_bytes, 0); /* beyond the buffer: unseen */
    unlink(path);
}

static void test_rollup_read_live_self(void **state)
{
    ms_rollup r;
    (void)state;
    assert_int_equal(ms_rollup_read(0, &r), MS_OK);
    assert_true(r.rss_bytes > 0);
    assert_true(r.pss_bytes > 0);
    assert_true(r.pss_bytes <= r.rss_bytes);
    assert_int_equal(r.rss_bytes % KB, 0);
}

static void test_rollup_read_bad_pid_fails(void **state)
{
    ms_rollup r;
    (void)state;
    poison(&r, sizeof r);
    assert_int_equal(ms_rollup_read(-1, &r), MS_ERR);
    assert_rollup_zero(&r);
    assert_int_equal(ms_rollup_read(0x7ffffff0, &r), MS_ERR); /* > pid_max */
    assert_rollup_zero(&r);
}

/* ---- pagemap classification --------------------------------------------- */

#define ZPFN 0x1234ULL

static void test_classify_not_present_counts_nothing(void **state)
{
    /* Not present, even with PFN-like bits equal to the zero PFN. */
    const uint64_t e[] = {0, ZPFN, MS_PM_EXCLUSIVE | 77};
    ms_pages p = {0};
    (void)state;
    ms_pagemap_classify(e, 3, ZPFN, &p);
    assert_pages_zero(&p);
}

static void test_classify_swapped_counts_swapped_only(void **state)
{
    const uint64_t e[] = {MS_PM_SWAPPED | ZPFN, MS_PM_SWAPPED | 5};
    ms_pages p = {0};
    (void)state;
    ms_pagemap_classify(e, 2, ZPFN, &p);
    assert_int_equal(p.swapped_pages, 2);
    assert_int_equal(p.pages, 0);
    assert_int_equal(p.zero_pages, 0);
}

static void test_classify_present_exclusive_is_private(void **state)
{
    const uint64_t e[] = {MS_PM_PRESENT | MS_PM_EXCLUSIVE | 42};
    ms_pages p = {0};
    (void)state;
    ms_pagemap_classify(e, 1, ZPFN, &p);
    assert_int_equal(p.pages, 1);
    assert_int_equal(p.private_pages, 1);
    assert_int_equal(p.shared_pages, 0);
}

static void test_classify_present_not_exclusive_is_shared(void **state)
{
    const uint64_t e[] = {MS_PM_PRESENT | 42, MS_PM_PRESENT | MS_PM_FILE | 43};
    ms_pages p = {0};
    (void)state;
    ms_pagemap_classify(e, 2, ZPFN, &p);
    assert_int_equal(p.pages, 2);
    assert_int_equal(p.shared_pages, 2);
    assert_int_equal(p.private_pages, 0);
}

static void test_classify_zero_pfn_known_counts_zero_page_not_pages(void **state)
{
    const uint64_t e[] = {MS_PM_PRESENT | ZPFN, MS_PM_PRESENT | (ZPFN + 1)};
    ms_pages p = {0};
    (void)state;
    ms_pagemap_classify(e, 2, ZPFN, &p);
    assert_int_equal(p.zero_pages, 1);
    assert_int_equal(p.pages, 1);
    assert_int_equal(p.shared_pages, 1);
}

static void test_classify_zero_pfn_unknown_counts_as_shared(void **state)
{
    /* The zero page's own entry, and the same with the PFN hidden (0), as an
     * unprivileged reader sees it: neither may match a zero_pfn of 0. */
    const uint64_t e[] = {MS_PM_PRESENT | ZPFN, MS_PM_PRESENT};
    ms_pages p = {0};
    (void)state;
    ms_pagemap_classify(e, 2, 0, &p);
    assert_int_equal(p.zero_pages, 0);
    assert_int_equal(p.pages, 2);
    assert_int_equal(p.shared_pages, 2);
}

static void test_classify_adds_to_accumulator(void **state)
{
    const uint64_t e[] = {MS_PM_PRESENT | MS_PM_EXCLUSIVE | 1};
    ms_pages p = {0};
    (void)state;
    ms_pagemap_classify(e, 1, 0, &p);
    ms_pagemap_classify(e, 1, 0, &p);
    assert_int_equal(p.pages, 2);
    assert_int_equal(p.private_pages, 2);
}

/* ---- pagemap counting on a fixture file --------------------------------- */

/* Sparse file laid out like a pagemap: entry for virtual page i at 8*i. */
#define PRIV (MS_PM_PRESENT | MS_PM_EXCLUSIVE | 100)
#define SHRD (MS_PM_PRESENT | 200)
#define ZERO (MS_PM_PRESENT | ZPFN)
#define SWAP (MS_PM_SWAPPED | 300)
#define FIXTURE_PAGES 1200

static const struct { uint64_t page, entry; } layout[] = {
    {2, PRIV}, {3, PRIV}, {4, SHRD}, {5, SWAP}, {6, PRIV}, /* unaligned case */
    {10, ZERO}, {11, SHRD},
    /* chunk case: range pages 500..1099, chunks at 500 and 1012 */
    {499, PRIV}, {500, PRIV}, {511, SHRD}, {512, PRIV}, {1011, SHRD},
    {1012, PRIV}, {1023, SHRD}, {1024, PRIV}, {1099, SHRD}, {1100, PRIV},
    {FIXTURE_PAGES - 1, 0},
};

static int pagemap_fixture_setup(void **state)
{
    static int fd;
    char path[] = "/tmp/pagemap_fixtureXXXXXX";

    fd = mkstemp(path);
    if (fd < 0)
        return -1;
    unlink(path);
    for (size_t i = 0; i < sizeof layout / sizeof layout[0]; i++)
        if (pwrite(fd, &layout[i].entry, 8, (off_t)(layout[i].page * 8)) != 8)
            return -1;
    *state = &fd;
    return 0;
}

static int pagemap_fixture_teardown(void **state)
{
    close(*(int *)*state);
    return 0;
}

static ms_range pages_range(uint64_t first, uint64_t end_page)
{
    ms_range r = {(uintptr_t)(first * (uint64_t)ps), (uintptr_t)(end_page * (uint64_t)ps)};
    return r;
}

static void test_count_fd_unaligned_range_counts_every_touched_page(void **state)
{
    int fd = *(int *)*state;
    /* [3p+100, 5p+1) touches pages 3, 4, 5; [10p+1, 10p+2) touches page 10. */
    ms_range r[] = {{3 * (uintptr_t)ps + 100, 5 * (uintptr_t)ps + 1},
                    {10 * (uintptr_t)ps + 1, 10 * (uintptr_t)ps + 2}};
    ms_pages p;
    assert_int_equal(ms_pagemap_count_fd(fd, r, 2, ZPFN, &p), MS_OK);
    assert_int_equal(p.pages, 2);
    assert_int_equal(p.private_pages, 1);
    assert_int_equal(p.shared_pages, 1);
    assert_int_equal(p.swapped_pages, 1);
    assert_int_equal(p.zero_pages, 1);
}

static void test_count_fd_range_over_chunk_boundaries_counts_exactly(void **state)
{
    int fd = *(int *)*state;
    ms_range r = pages_range(500, 1100); /* 600 pages, end page excluded */
    ms_pages p;
    assert_int_equal(ms_pagemap_count_fd(fd, &r, 1, ZPFN, &p), MS_OK);
    assert_int_equal(p.pages, 8);
    assert_int_equal(p.private_pages, 4);
    assert_int_equal(p.shared_pages, 4);
    assert_int_equal(p.zero_pages, 0);
    assert_int_equal(p.swapped_pages, 0);
}

static void test_count_fd_skips_empty_and_inverted_ranges(void **state)
{
    int fd = *(int *)*state;
    ms_range r[] = {{3 * (uintptr_t)ps, 3 * (uintptr_t)ps},
                    {7 * (uintptr_t)ps, 2 * (uintptr_t)ps},
                    pages_range(6, 7)};
    ms_pages p;
    assert_int_equal(ms_pagemap_count_fd(fd, r, 2, ZPFN, &p), MS_OK);
    assert_pages_zero(&p);
    assert_int_equal(ms_pagemap_count_fd(fd, r, 3, ZPFN, &p), MS_OK);
    assert_int_equal(p.pages, 1);
    assert_int_equal(p.private_pages, 1);
    assert_int_equal(ms_pagemap_count_fd(fd, NULL, 0, ZPFN, &p), MS_OK);
    assert_pages_zero(&p);
}

static void test_count_fd_range_past_eof_fails_and_zeroes(void **state)
{
    int fd = *(int *)*state;
    ms_range r[] = {pages_range(2, 7), pages_range(FIXTURE_PAGES - 2, FIXTURE_PAGES + 3)};
    ms_pages p;
    poison(&p, sizeof p);
    assert_int_equal(ms_pagemap_count_fd(fd, r, 2, ZPFN, &p), MS_ERR);
    assert_pages_zero(&p);
    poison(&p, sizeof p);
    assert_int_equal(ms_pagemap_count_fd(-1, r, 1, ZPFN, &p), MS_ERR);
    assert_pages_zero(&p);
}

/* ---- pagemap on this process -------------------------------------------- */

static void test_count_never_touched_mapping_has_no_pages(void **state)
{
    size_t n = 32;
    char *m = map_pages(n);
    ms_range r = {(uintptr_t)m, (uintptr_t)m + n * (size_t)ps};
    ms_pages p;
    (void)state;
    assert_int_equal(ms_pagemap_count(0, &r, 1, &p), MS_OK);
    munmap(m, n * (size_t)ps);
    assert_pages_zero(&p);
}

static void test_count_read_only_pages_are_zero_pages_not_pages(void **state)
{
    size_t n = 16;
    char *m;
    ms_range r;
    ms_pages p;
    (void)state;
    if (ms_zero_pfn() == 0)
        skip(); /* PFNs hidden: zero-page mappings cannot be told apart */
    m = map_pages(n);
    r.start = (uintptr_t)m;
    r.end = (uintptr_t)m + n * (size_t)ps;
    for (size_t i = 0; i < n; i++)
        (void)*(volatile char *)(m + i * (size_t)ps);
    assert_int_equal(ms_pagemap_count(0, &r, 1, &p), MS_OK);
    /* One written page becomes a real, private page. */
    m[0] = 1;
    ms_pages after;
    assert_int_equal(ms_pagemap_count(0, &r, 1, &after), MS_OK);
    munmap(m, n * (size_t)ps);
    assert_int_equal(p.zero_pages, n);
    assert_int_equal(p.pages, 0);
    assert_int_equal(after.zero_pages, n - 1);
    assert_int_equal(after.pages, 1);
    assert_int_equal(after.private_pages, 1);
}

static void test_zero_pfn_is_stable(void **state)
{
    (void)state;
    assert_int_equal(ms_zero_pfn(), ms_zero_pfn());
}

static void test_count_bad_pid_fails_and_zeroes(void **state)
{
    ms_range r = {0, 1};
    ms_pages p;
    (void)state;
    poison(&p, sizeof p);
    assert_int_equal(ms_pagemap_count(0x7ffffff0, &r, 1, &p), MS_ERR);
    assert_pages_zero(&p);
}

struct fork_report {
    int rc_before, rc_after;
    ms_pages before, after;
};

static void test_fork_shares_pages_until_child_writes(void **state)
{
    enum { N = 64, WRITTEN = 10 };
    char *m = map_pages(N);
    ms_range r = {(uintptr_t)m, (uintptr_t)m + N * (size_t)ps};
    struct fork_report rep;
    ms_pages parent;
    int fds[2], status;
    pid_t pid;
    (void)state;

    for (size_t i = 0; i < N; i++)
        m[i * (size_t)ps] = (char)(i + 1);
    (void)ms_zero_pfn(); /* probe before forking, as the server would */
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        memset(&rep, 0, sizeof rep);
        rep.rc_before = ms_pagemap_count(0, &r, 1, &rep.before);
        for (size_t i = 0; i < WRITTEN; i++)
            m[i * 3 * (size_t)ps] = 'w';
        rep.rc_after = ms_pagemap_count(0, &r, 1, &rep.after);
        _exit(write(fds[1], &rep, sizeof rep) == (ssize_t)sizeof rep ? 0 : 1);
    }
    close(fds[1]);
    assert_int_equal(read(fds[0], &rep, sizeof rep), (ssize_t)sizeof rep);
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    /* With the child gone every page is the parent's alone again. */
    assert_int_equal(ms_pagemap_count(0, &r, 1, &parent), MS_OK);
    munmap(m, N * (size_t)ps);

    assert_int_equal(rep.rc_before, MS_OK);
    assert_int_equal(rep.before.pages, N);
    assert_int_equal(rep.before.shared_pages, N);
    assert_int_equal(rep.before.private_pages, 0);
    assert_int_equal(rep.rc_after, MS_OK);
    assert_int_equal(rep.after.pages, N);
    assert_int_equal(rep.after.private_pages, WRITTEN);
    assert_int_equal(rep.after.shared_pages, N - WRITTEN);
    assert_int_equal(parent.pages, N);
    assert_int_equal(parent.private_pages, N);
}

/* ms_copied_add: only private pages count; a page with several types counts
 * for each and as mixed, one with none as empty; regions out of range are
 * counted in no region. */
static void test_copied_add_attributes_private_pages_to_their_labels(void **state)
{
    (void)state;
    const uint64_t P = MS_PM_PRESENT, X = MS_PM_EXCLUSIVE;
    const uint64_t e[] = {P | X | 7, P | 7, P | X | 8, P | X | 9, 0, P | X | 10, MS_PM_SWAPPED | X};
    const ms_page_label l[] = {
        {.types = 1u << 3, .region = 1},             /* private: type 3 alone */
        {.types = 1u << 3, .region = 1},             /* shared: not counted */
        {.types = (1u << 3) | (1u << 5), .region = 2}, /* private: 3 and 5 */
        {.types = 0, .region = 2},                   /* private, empty */
        {.types = 1u << 5, .region = 2},             /* absent */
        {.types = 1u << 9, .region = 200},           /* private, no region */
        {.types = 1u << 9, .region = 2},             /* swapped: not present */
    };
    ms_copied c = {0};
    ms_copied_add(e, l, 7, &c);
    assert_int_equal(c.pages, 4);
    assert_int_equal(c.by_type[3], 2);
    assert_int_equal(c.only[3], 1);
    assert_int_equal(c.by_type[5], 1);
    assert_int_equal(c.only[5], 0);
    assert_int_equal(c.by_type[9], 1);
    assert_int_equal(c.only[9], 1);
    assert_int_equal(c.mixed, 1);
    assert_int_equal(c.empty, 1);
    assert_int_equal(c.by_region[1], 1);
    assert_int_equal(c.by_region[2], 2);
    ms_copied_add(NULL, l, 7, &c); /* fails soft */
    assert_int_equal(c.pages, 4);
}

int main(void)
{
    const struct CMUnitTest rollup[] = {
        cmocka_unit_test(test_copied_add_attributes_private_pages_to_their_labels),
        cmocka_unit_test(test_rollup_parse_real_fixture_gives_exact_bytes),
        cmocka_unit_test(test_rollup_parse_skips_header_line),
        cmocka_unit_test(test_rollup_parse_skips_unknown_keys_even_prefixed_or_malformed),
        cmocka_unit_test(test_rollup_parse_missing_pss_fails_and_zeroes),
        cmocka_unit_test(test_rollup_parse_missing_rss_fails_and_zeroes),
        cmocka_unit_test(test_rollup_parse_non_numeric_value_fails_and_zeroes),
        cmocka_unit_test(test_rollup_parse_negative_value_fails),
        cmocka_unit_test(test_rollup_parse_overflowing_value_fails),
        cmocka_unit_test(test_rollup_parse_last_line_without_newline_is_used),
        cmocka_unit_test(test_rollup_parse_honours_len_and_rejects_cut_line),
        cmocka_unit_test(test_rollup_parse_empty_text_fails),
        cmocka_unit_test(test_rollup_parse_very_long_lines_do_not_break_parsing),
        cmocka_unit_test(test_rollup_read_file_on_fixture),
        cmocka_unit_test(test_rollup_read_file_nonexistent_fails_and_zeroes),
        cmocka_unit_test(test_rollup_read_file_larger_than_buffer_does_not_crash),
        cmocka_unit_test(test_rollup_read_live_self),
        cmocka_unit_test(test_rollup_read_bad_pid_fails),
    };
    const struct CMUnitTest pagemap[] = {
        cmocka_unit_test(test_classify_not_present_counts_nothing),
        cmocka_unit_test(test_classify_swapped_counts_swapped_only),
        cmocka_unit_test(test_classify_present_exclusive_is_private),
        cmocka_unit_test(test_classify_present_not_exclusive_is_shared),
        cmocka_unit_test(test_classify_zero_pfn_known_counts_zero_page_not_pages),
        cmocka_unit_test(test_classify_zero_pfn_unknown_counts_as_shared),
        cmocka_unit_test(test_classify_adds_to_accumulator),
        cmocka_unit_test(test_count_fd_unaligned_range_counts_every_touched_page),
        cmocka_unit_test(test_count_fd_range_over_chunk_boundaries_counts_exactly),
        cmocka_unit_test(test_count_fd_skips_empty_and_inverted_ranges),
        cmocka_unit_test(test_count_fd_range_past_eof_fails_and_zeroes),
        cmocka_unit_test(test_count_never_touched_mapping_has_no_pages),
        cmocka_unit_test(test_count_read_only_pages_are_zero_pages_not_pages),
        cmocka_unit_test(test_zero_pfn_is_stable),
        cmocka_unit_test(test_count_bad_pid_fails_and_zeroes),
        cmocka_unit_test(test_fork_shares_pages_until_child_writes),
    };
    int failed;

    ps = sysconf(_SC_PAGESIZE);
    failed = cmocka_run_group_tests_name("memstats_rollup", rollup, NULL, NULL);
    failed += cmocka_run_group_tests_name("memstats_pagemap", pagemap,
                                          pagemap_fixture_setup,
                                          pagemap_fixture_teardown);
    return failed != 0;
}
