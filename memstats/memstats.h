/* memstats: read-only observers of a process's memory, from /proc.
 *
 * Two views.  Process-wide figures come from /proc/PID/smaps_rollup.  Page
 * sharing of chosen address ranges (the heap's inherited arenas) comes from
 * /proc/PID/pagemap: one 64-bit entry per virtual page, where bit 63 says the
 * page is present and bit 56 that it is mapped by this process only.  After a
 * fork, an inherited page that nobody wrote is mapped by master and worker
 * (not exclusive: shared); the first write copies it and the copy is
 * exclusive (private).
 *
 * A page that was only ever read maps the kernel's zero page: present, not
 * exclusive, yet shared with no one and costing nothing.  Where the pagemap
 * shows PFNs (CAP_SYS_ADMIN) such pages are told apart by the zero page's PFN
 * and counted in `zero_pages`, never in `pages`; without PFNs they cannot be
 * told apart and count as shared (ms_zero_pfn() returns 0 then).
 *
 * Limits: a read fault in a THP-enabled mapping may map the huge zero page,
 * which has another PFN (the heap madvises its arenas MADV_NOHUGEPAGE); pages
 * are counted once per range, so overlapping ranges count shared pages twice;
 * a range past the end of the address space is MS_ERR, while unmapped gaps
 * inside it count as nothing.  Call ms_zero_pfn() once in the master before
 * forking, so workers inherit the cached value.
 *
 * Every reader fails soft: it returns MS_ERR and leaves the output zeroed,
 * never aborts, whatever the text it is given.  memstats only observes: it
 * never writes the memory it measures.
 */
#ifndef COWDAG_MEMSTATS_H
#define COWDAG_MEMSTATS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MS_OK 0
#define MS_ERR (-1)

/* pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst) */
#define MS_PM_PRESENT   (1ULL << 63)
#define MS_PM_SWAPPED   (1ULL << 62)
#define MS_PM_FILE      (1ULL << 61)
#define MS_PM_EXCLUSIVE (1ULL << 56)
#define MS_PM_PFN_MASK  ((1ULL << 55) - 1)

/* A half-open address range [start, end); start and end need not be
 * page-aligned: every page the range touches is counted once. */
typedef struct ms_range {
    uintptr_t start;
    uintptr_t end;
} ms_range;

/* Page counts over a set of ranges.  pages = shared_pages + private_pages. */
typedef struct ms_pages {
    uint64_t pages;         /* resident (present), zero-page mappings excluded */
    uint64_t shared_pages;  /* present and not exclusively mapped */
    uint64_t private_pages; /* present and exclusively mapped: a copy of our own */
    uint64_t zero_pages;    /* present, mapping the shared zero page (not in pages) */
    uint64_t swapped_pages; /* swapped out (not in pages) */
} ms_pages;

/* Process-wide figures, in bytes, from smaps_rollup. */
typedef struct ms_rollup {
    uint64_t rss_bytes;
    uint64_t pss_bytes;
    uint64_t shared_clean_bytes;
    uint64_t shared_dirty_bytes;
    uint64_t private_clean_bytes;
    uint64_t private_dirty_bytes;
} ms_rollup;

/* --- smaps_rollup -------------------------------------------------------- */

/* Parses smaps_rollup text (`Rss:  1234 kB` lines; the header line and
 * unknown keys are skipped).  MS_ERR when Rss or Pss is absent or a known
 * key's value is malformed. */
int ms_rollup_parse(const char *text, size_t len, ms_rollup *out);

/* Reads and parses a file holding smaps_rollup text. */
int ms_rollup_read_file(const char *path, ms_rollup *out);

/* Reads /proc/PID/smaps_rollup; pid 0 means the calling process. */
int ms_rollup_read(pid_t pid, ms_rollup *out);

/* --- pagemap ------------------------------------------------------------- */

/* Adds n pagemap entries to *acc (which the caller zeroes first).
 * zero_pfn is the zero page's PFN, or 0 when unknown. */
void ms_pagemap_classify(const uint64_t *entries, size_t n, uint64_t zero_pfn,
                         ms_pages *acc);

/* Counts the pages of `ranges` from an open pagemap file (entry i at byte
 * offset 8*i for virtual page i), reading in bounded chunks. */
int ms_pagemap_count_fd(int fd, const ms_range *ranges, size_t n,
                        uint64_t zero_pfn, ms_pages *out);

/* Counts the pages of `ranges` in process pid (0: the calling process) from
 * /proc/PID/pagemap, excluding zero-page mappings where PFNs are visible. */
int ms_pagemap_count(pid_t pid, const ms_range *ranges, size_t n,
                     ms_pages *out);

/* Reads the entries of the n virtual pages from `page` on (page = address /
 * page size) from an open pagemap file into out. */
int ms_pagemap_entries_fd(int fd, uint64_t page, size_t n, uint64_t *out);

/* Whether a pagemap entry is a page of our own: present and mapped by this
 * process only -- after a fork, a page copied on write.  (The zero page is
 * never exclusive.) */
static inline int ms_pm_private(uint64_t e)
{
    return (e & MS_PM_PRESENT) && (e & MS_PM_EXCLUSIVE);
}

/* --- copied pages by what lives on them ---------------------------------
 * The observer is given a label for every page -- a set of type bits and a
 * region number, from whoever knows the layout (the heap) -- and counts the
 * private pages under each.  A page with several types counts for each;
 * `only` counts the pages holding that type alone, so that
 *     sum(only) + mixed + empty == pages == sum(regions). */
#define MS_PAGE_TYPES 16   /* type bits a label may carry */
#define MS_PAGE_REGIONS 40 /* region numbers a label may carry */

typedef struct ms_page_label {
    uint16_t types;
    uint8_t region; /* >= MS_PAGE_REGIONS: counted in no region */
} ms_page_label;

typedef struct ms_copied {
    uint64_t pages;                  /* private pages seen */
    uint64_t by_type[MS_PAGE_TYPES]; /* private pages holding type t */
    uint64_t only[MS_PAGE_TYPES];    /* ... holding type t and no other */
    uint64_t mixed;                  /* ... holding several types */
    uint64_t empty;                  /* ... holding none (free blocks only) */
    uint64_t by_region[MS_PAGE_REGIONS];
} ms_copied;

/* Adds the private pages among n entries, labelled by labels[0 .. n), to
 * *acc (which the caller zeroes first). */
void ms_copied_add(const uint64_t *entries, const ms_page_label *labels, size_t n,
                   ms_copied *acc);

/* The zero page's PFN as this process sees it; 0 when PFNs are hidden.
 * Found once by reading a fresh private anonymous page, then cached. */
uint64_t ms_zero_pfn(void);

#endif
