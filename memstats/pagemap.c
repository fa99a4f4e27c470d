/* memstats/pagemap.c: per-page sharing of address ranges from /proc/PID/pagemap,
 * read in bounded chunks, and detection of the kernel zero page's PFN.
 * Design and entry layout: memstats/memstats.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "memstats.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CHUNK 4096 /* entries per pread: 32 KiB on the stack, 64 reads per GiB */

/* Largest byte offset an off_t holds, whatever its width. */
#define OFF_LIMIT ((uint64_t)1 << (sizeof(off_t) * 8 - 1))

void ms_pagemap_classify(const uint64_t *entries, size_t n, uint64_t zero_pfn,
                         ms_pages *acc)
{
    if (!acc || !entries)
        return;
    for (size_t i = 0; i < n; i++) {
        uint64_t e = entries[i];

        if (!(e & MS_PM_PRESENT)) {
            if (e & MS_PM_SWAPPED)
                acc->swapped_pages++;
        } else if (zero_pfn != 0 && (e & MS_PM_PFN_MASK) == zero_pfn) {
            acc->zero_pages++;
        } else {
            acc->pages++;
            if (e & MS_PM_EXCLUSIVE)
                acc->private_pages++;
            else
                acc->shared_pages++;
        }
    }
}

/* Reads exactly n entries starting at virtual page `page`, retrying on EINTR
 * and short reads.  EOF before n entries (a range past the end) fails. */
static int read_entries(int fd, uint64_t page, uint64_t *buf, size_t n)
{
    size_t want = n * sizeof *buf, got = 0;

    if (page >= OFF_LIMIT / 8 - n)
        return MS_ERR;
    while (got < want) {
        ssize_t r = pread(fd, (char *)buf + got, want - got,
                          (off_t)(page * 8 + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return MS_ERR;
        got += (size_t)r;
    }
    return MS_OK;
}

int ms_pagemap_entries_fd(int fd, uint64_t page, size_t n, uint64_t *out)
{
    if (fd < 0 || (!out && n))
        return MS_ERR;
    for (size_t done = 0; done < n;) {
        size_t k = n - done < CHUNK ? n - done : CHUNK;
        if (read_entries(fd, page + done, out + done, k) != MS_OK)
            return MS_ERR;
        done += k;
    }
    return MS_OK;
}

void ms_copied_add(const uint64_t *entries, const ms_page_label *labels, size_t n,
                   ms_copied *acc)
{
    if (!acc || !entries || !labels)
        return;
    for (size_t i = 0; i < n; i++) {
        if (!ms_pm_private(entries[i]))
            continue;
        unsigned types = labels[i].types;
        acc->pages++;
        if (labels[i].region < MS_PAGE_REGIONS)
            acc->by_region[labels[i].region]++;
        if (types == 0) {
            acc->empty++;
            continue;
        }
        if ((types & (types - 1)) == 0)
            acc->only[__builtin_ctz(types)]++;
        else
            acc->mixed++;
        for (; types; types &= types - 1)
            acc->by_type[__builtin_ctz(types)]++;
    }
}

int ms_pagemap_count_fd(int fd, const ms_range *ranges, size_t n,
                        uint64_t zero_pfn, ms_pages *out)
{
    uint64_t buf[CHUNK];
    ms_pages acc = {0};
    long ps = sysconf(_SC_PAGESIZE);

    if (out)
        memset(out, 0, sizeof *out);
    if (!out || fd < 0 || (!ranges && n) || ps <= 0)
        return MS_ERR;
    for (size_t i = 0; i < n; i++) {
        uint64_t page, last;

        if (ranges[i].end <= ranges[i].start)
            continue;
        page = ranges[i].start / (uint64_t)ps;
        last = (ranges[i].end - 1) / (uint64_t)ps; /* inclusive */
        while (page <= last) {
            size_t k = last - page + 1 < CHUNK ? (size_t)(last - page + 1) : CHUNK;

            if (read_entries(fd, page, buf, k) != MS_OK)
                return MS_ERR;
            ms_pagemap_classify(buf, k, zero_pfn, &acc);
            page += k;
        }
    }
    *out = acc;
    return MS_OK;
}

int ms_pagemap_count(pid_t pid, const ms_range *ranges, size_t n,
                     ms_pages *out)
{
    char path[64];
    int fd, rc;

    if (out)
        memset(out, 0, sizeof *out);
    if (pid < 0 || !out)
        return MS_ERR;
    if (pid == 0)
        snprintf(path, sizeof path, "/proc/self/pagemap");
    else
        snprintf(path, sizeof path, "/proc/%ld/pagemap", (long)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return MS_ERR;
    rc = ms_pagemap_count_fd(fd, ranges, n, ms_zero_pfn(), out);
    close(fd);
    return rc;
}

/* Read-faults the page at p and returns its PFN, or 0 if absent or hidden. */
static uint64_t probe_pfn(int fd, const char *p, long ps)
{
    uint64_t e;

    (void)*(const volatile char *)p;
    if (read_entries(fd, (uintptr_t)p / (uint64_t)ps, &e, 1) != MS_OK)
        return 0;
    return (e & MS_PM_PRESENT) ? (e & MS_PM_PFN_MASK) : 0;
}

uint64_t ms_zero_pfn(void)
{
    /* Computed on first use and then inherited by forked workers.  Not
     * thread-safe on that first call: the server calls it single-threaded. */
    static int known;
    static uint64_t cached;
    long ps = sysconf(_SC_PAGESIZE);
    uint64_t a, b;
    char *m;
    int fd;

    if (known)
        return cached;
    if (ps <= 0)
        return 0;
    fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    /* Two fresh pages, mapped at once so a real page freed after probing
     * one cannot be handed to the other and fake a match.  If a read fault
     * maps the zero page, both show its PFN; if it allocates, they differ.
     * Two small pages cannot form a huge (or multi-size) anon folio. */
    m = mmap(NULL, 2 * (size_t)ps, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        close(fd);
        return 0;
    }
    a = probe_pfn(fd, m, ps);
    b = probe_pfn(fd, m + ps, ps);
    munmap(m, 2 * (size_t)ps);
    close(fd);
    cached = (a != 0 && a == b) ? a : 0;
    known = 1;
    return cached;
}
