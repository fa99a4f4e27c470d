/* memstats/scoreboard.c: the shared table of per-process figures -- one
 * MAP_SHARED anonymous mapping, an entry per process, each guarded by a
 * seqlock so readers get consistent copies without ever blocking a writer.
 * Design, layout and who writes what: memstats/scoreboard.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "memstats/scoreboard.h"

#include "base/clock.h"

#include <sched.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

/* Atomics: the GCC/Clang __atomic builtins rather than <stdatomic.h>.  The
 * counters are plain uint64_t fields of structs the header defines (and
 * that live in memory shared between processes); the builtins are defined
 * on plain objects, so no cast to `_Atomic uint64_t *` is needed -- such a
 * cast is only valid where _Atomic uint64_t happens to have uint64_t's size,
 * alignment and representation, which C11 does not promise; loads through
 * the readers' pointers to const need no cast either.
 *
 * The counters must be lock-free -- a libatomic fallback would guard them
 * with locks private to each process, which forked processes do not share
 * -- and so 8-byte aligned. */
#if !defined(__GCC_ATOMIC_LLONG_LOCK_FREE) || __GCC_ATOMIC_LLONG_LOCK_FREE != 2
#error "the scoreboard needs always lock-free 64-bit atomics"
#endif
_Static_assert(sizeof(long long) == sizeof(uint64_t), "64-bit long long");
_Static_assert(offsetof(ms_entry, mem) == offsetof(ms_entry, mem_seq) + sizeof(uint64_t),
               "the memory sample follows its counter: seq_read copies them as one part");
_Static_assert(offsetof(ms_entry, seq) == 0 && offsetof(ms_master, seq) == 0,
               "seq opens each seqlocked part");
_Static_assert(_Alignof(ms_entry) >= sizeof(uint64_t) &&
                   _Alignof(ms_master) >= sizeof(uint64_t) &&
                   offsetof(ms_scoreboard, entries) % sizeof(uint64_t) == 0,
               "every seq must be 8-byte aligned");

/* Tries before a read gives up: the first READ_SPIN only pause the CPU (a
 * bracket is a few dozen stores), the rest yield it, so a writer preempted
 * mid-bracket on this CPU can finish -- for READ_GIVE_UP_NS at most, since
 * on a loaded CPU each yield can cost a whole time slice of another
 * process (1000 of them took seconds).  A writer that died mid-bracket
 * leaves its counter odd for good: reads of it fail, in at most that long,
 * until the master frees the entry (ms_sb_release). */
#define READ_TRIES 1000
#define READ_SPIN 100
#define READ_GIVE_UP_NS (50 * 1000000ull)

/* Upper bounds of the request-duration buckets, in seconds: 1-2.5-5 steps
 * from 100 us to 1 s, then 2.5 s and 10 s. */
#define HIST_BOUNDS                                                          \
    0.0001, 0.00025, 0.0005, /* 100 us .. 500 us */                          \
    0.001, 0.0025, 0.005,    /*   1 ms ..   5 ms */                          \
    0.01, 0.025, 0.05,       /*  10 ms ..  50 ms */                          \
    0.1, 0.25, 0.5,          /* 100 ms .. 500 ms */                          \
    1.0, 2.5, 10.0           /*   1 s  ..  10 s  */

/* The header's [MS_HIST_BUCKETS - 1] would silently pad a short ladder with
 * zeros, which would break the ascending order. */
_Static_assert(sizeof((const double[]){HIST_BOUNDS}) == (MS_HIST_BUCKETS - 1) * sizeof(double),
               "one bound per bucket but the last");

const double ms_hist_bounds[MS_HIST_BUCKETS - 1] = {HIST_BOUNDS};

const char *ms_status_name(ms_status s)
{
    switch (s) {
    case MS_FREE:
        return "free";
    case MS_STARTING:
        return "starting";
    case MS_READY:
        return "ready";
    case MS_DRAINING:
        return "draining";
    }
    return "unknown";
}

const char *ms_restart_reason_name(ms_restart_reason r)
{
    static const char *const names[MS_RESTART_REASONS] = {"timeout", "crash", "max_requests", "copied",
                                                          "rss",     "reload", "scale"};
    return (unsigned)r < MS_RESTART_REASONS ? names[r] : "unknown";
}

/* The first bucket whose bound is >= seconds: zero and negative durations
 * land in bucket 0; longer than the last bound, or NaN, in the last (+Inf). */
int ms_hist_bucket(double seconds)
{
    for (int i = 0; i < MS_HIST_BUCKETS - 1; i++)
        if (seconds <= ms_hist_bounds[i])
            return i;
    return MS_HIST_BUCKETS - 1;
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

/* --- the mapping ---------------------------------------------------------- */

ms_scoreboard *ms_sb_create(void)
{
    /* Anonymous mappings come zeroed: every entry MS_FREE, every seq 0. */
    void *p = mmap(NULL, sizeof(ms_scoreboard), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void ms_sb_destroy(ms_scoreboard *sb)
{
    if (sb)
        munmap(sb, sizeof *sb);
}

/* --- the seqlock ---------------------------------------------------------- */

/* Writer.  Each counter has one writer for its brackets (an entry: its
 * worker; the master part: the master), but the master also changes an
 * entry's pid or status while its worker may be inside a bracket (see
 * set_field).  So the counter moves by atomic read-modify-writes, never by
 * a load and a store, and nothing another process adds is lost: begin adds
 * 1 (odd), the master's one-field updates add 2 (parity unchanged), end
 * adds 1 (even).  (With a load and a store, begin could undo the master's
 * +2 and the counter come back to a value a reader already took as s1: a
 * torn copy would pass.)
 *
 * begin: the odd counter must be visible before any data store -- the
 * release fence orders the increment before every later store (a reader
 * that sees one of them, then issues its acquire fence, sees the counter
 * moved).  end: a release increment, so a reader that sees the even value
 * sees every store of the bracket. */
void ms_sb_write_begin(uint64_t *seq)
{
    __atomic_fetch_add(seq, 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

void ms_sb_write_end(uint64_t *seq)
{
    __atomic_fetch_add(seq, 1, __ATOMIC_RELEASE);
}

/* begin, for the master's claim and release, when no other process can be
 * writing the entry (it is free, or its process was reaped): an odd counter
 * then means its last writer died in a bracket; the master carries that
 * bracket on instead of opening one, and its end makes the counter even. */
static void write_begin_owner(uint64_t *seq)
{
    if (!(__atomic_load_n(seq, __ATOMIC_RELAXED) & 1))
        __atomic_fetch_add(seq, 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

/* One 32-bit field of an entry whose worker may be writing it meanwhile.
 * A bracket would break the worker's: two begins make the counter even
 * while both write.  Instead the counter moves by 2 before the store (as
 * begin's increment does): a reader whose copy holds the new value then
 * sees the counter changed and retries; one that read the counter after
 * the add gets the old or the new value, both consistent states, the other
 * fields being untouched.  Parity stays the worker's. */
static void set_field(uint64_t *seq, int32_t *field, int32_t value)
{
    __atomic_fetch_add(seq, 2, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    __atomic_store_n(field, value, __ATOMIC_RELAXED);
}

/* Reader: s1 = acquire load (retry while odd); copy; acquire fence, so the
 * copy's loads are done before s2 is read; s2 = relaxed load.  Equal: no
 * store of any bracket (nor of set_field) was seen by the copy.  The copy
 * reads plain memory a writer may be storing to: a data race in ISO C's
 * terms, the usual seqlock one, harmless as such a copy is thrown away.
 * The counter itself opens the part (asserted above) and is not part of
 * the copy: the copy gets s1. */
static bool seq_read(const void *part, void *dst, size_t n)
{
    const uint64_t *seq = part; /* its first member */
    const size_t skip = sizeof *seq;
    uint64_t give_up = 0;
    for (int t = 0; t < READ_TRIES; t++) {
        uint64_t s1 = __atomic_load_n(seq, __ATOMIC_ACQUIRE);
        if (!(s1 & 1)) {
            memcpy((char *)dst + skip, (const char *)part + skip, n - skip);
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            uint64_t s2 = __atomic_load_n(seq, __ATOMIC_RELAXED);
            if (s1 == s2) {
                memcpy(dst, &s1, skip);
                return true;
            }
        }
        if (t < READ_SPIN) {
            cpu_relax();
        } else {
            uint64_t now = base_now_ns();
            if (!give_up)
                give_up = now + READ_GIVE_UP_NS;
            else if (now > give_up)
                break;
            sched_yield();
        }
    }
    memset(dst, 0, n);
    return false;
}

bool ms_sb_read_entry(const ms_scoreboard *sb, int i, ms_entry *out)
{
    if (!sb || i < 0 || i >= MS_SB_ENTRIES) {
        if (out)
            memset(out, 0, sizeof *out);
        return false;
    }
    if (!out)
        return false;
    if (!seq_read(&sb->entries[i], out, sizeof *out))
        return false;
    /* The memory sample has its own writer and counter: copied apart (on
     * failure it is zeroed, reported as "no sample yet"). */
    const size_t at = offsetof(ms_entry, mem_seq), n = offsetof(ms_entry, mem) + sizeof(ms_sample) - at;
    seq_read((const char *)&sb->entries[i] + at, (char *)out + at, n);
    return true;
}

bool ms_sb_read_master(const ms_scoreboard *sb, ms_master *out)
{
    if (!out)
        return false;
    if (!sb) {
        memset(out, 0, sizeof *out);
        return false;
    }
    return seq_read(&sb->master, out, sizeof *out);
}

/* --- entries (the master's side) ----------------------------------------- */

/* Everything after the counter, inside the master's bracket of seq.  The
 * memory part has a counter of its own, which readers of that part go by:
 * it is zeroed inside a bracket of that counter (mending one a dead writer
 * left open), and the counter only ever counts up, so a read that spans a
 * release and the next claim cannot pass for a consistent one. */
static void zero_entry_body(ms_entry *e)
{
    memset((char *)e + sizeof e->seq, 0, offsetof(ms_entry, mem_seq) - sizeof e->seq);
    write_begin_owner(&e->mem_seq);
    memset(&e->mem, 0, sizeof e->mem);
    ms_sb_write_end(&e->mem_seq);
}

int ms_sb_claim(ms_scoreboard *sb, int slot, int generation)
{
    if (!sb || slot < 0 || slot >= MS_SB_SLOTS)
        return -1;
    for (int i = 0; i < MS_SB_ENTRIES; i++) {
        ms_entry *e = &sb->entries[i];
        /* Only the master writes status to or from MS_FREE. */
        if (__atomic_load_n(&e->status, __ATOMIC_RELAXED) != MS_FREE)
            continue;
        write_begin_owner(&e->seq);
        zero_entry_body(e);
        e->slot = slot;
        e->generation = generation;
        e->status = MS_STARTING;
        e->started_ms = base_now_ms();
        ms_sb_write_end(&e->seq);
        return i;
    }
    return -1;
}

void ms_sb_set_pid(ms_scoreboard *sb, int index, int pid)
{
    if (!sb || index < 0 || index >= MS_SB_ENTRIES)
        return;
    ms_entry *e = &sb->entries[index];
    set_field(&e->seq, &e->pid, pid);
}

void ms_sb_set_status(ms_scoreboard *sb, int index, ms_status status)
{
    if (!sb || index < 0 || index >= MS_SB_ENTRIES)
        return;
    ms_entry *e = &sb->entries[index];
    set_field(&e->seq, &e->status, (int32_t)status);
}

void ms_sb_set_conns(ms_scoreboard *sb, int slot, uint32_t n)
{
    if (sb && slot >= 0 && slot < MS_SB_SLOTS)
        __atomic_store_n(&sb->conns[slot], n, __ATOMIC_RELAXED);
}

bool ms_sb_should_accept(const ms_scoreboard *sb, int slot, int nslots, uint32_t mine)
{
    if (!sb)
        return true;
    for (int j = 0; j < nslots && j < MS_SB_SLOTS; j++)
        if (j != slot && __atomic_load_n(&sb->conns[j], __ATOMIC_RELAXED) < mine)
            return false;
    return true;
}

ms_status ms_sb_status(const ms_scoreboard *sb, int index)
{
    if (!sb || index < 0 || index >= MS_SB_ENTRIES)
        return MS_FREE;
    return (ms_status)__atomic_load_n(&sb->entries[index].status, __ATOMIC_ACQUIRE);
}

/* Called once the entry's process is reaped: it writes no more, and if it
 * died mid-bracket the odd counter is mended here. */
int ms_sb_find_pid(const ms_scoreboard *sb, int pid)
{
    if (!sb || pid <= 0)
        return -1;
    for (int i = 0; i < MS_SB_ENTRIES; i++) {
        const ms_entry *e = &sb->entries[i];
        if (__atomic_load_n(&e->status, __ATOMIC_RELAXED) != MS_FREE &&
            __atomic_load_n(&e->pid, __ATOMIC_RELAXED) == pid)
            return i;
    }
    return -1;
}

void ms_sb_release(ms_scoreboard *sb, int index)
{
    if (!sb || index < 0 || index >= MS_SB_ENTRIES)
        return;
    ms_entry *e = &sb->entries[index];
    write_begin_owner(&e->seq);
    zero_entry_body(e); /* status MS_FREE */
    ms_sb_write_end(&e->seq);
}
