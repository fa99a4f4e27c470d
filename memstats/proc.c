/* memstats/proc.c: process-wide memory figures from /proc/PID/smaps_rollup.
 * A bounded read, then a line-by-line parse of `Key:  value kB` lines that
 * fails soft on anything odd.  Design and contract: memstats/memstats.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "memstats.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ROLLUP_BUF 16384 /* smaps_rollup is well under 1 KiB */
#define VALUE_MAX 32     /* longest digit run accepted for a value */

enum { K_RSS, K_PSS, K_SH_CLEAN, K_SH_DIRTY, K_PR_CLEAN, K_PR_DIRTY, K_COUNT };

static const char *const key_names[K_COUNT] = {
    "Rss", "Pss", "Shared_Clean", "Shared_Dirty", "Private_Clean", "Private_Dirty",
};

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int is_key_char(char c)
{
    return is_digit(c) || c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int key_index(const char *key, size_t len)
{
    for (int i = 0; i < K_COUNT; i++)
        if (strlen(key_names[i]) == len && memcmp(key_names[i], key, len) == 0)
            return i;
    return -1;
}

/* Parses the text after a known key's colon, `   1234 kB`, into bytes.
 * Anything else (no digits, a sign, no unit, trailing junk, overflow) fails. */
static int parse_kb(const char *p, const char *end, uint64_t *bytes)
{
    char num[VALUE_MAX];
    size_t n = 0;
    unsigned long long kb;
    char *stop;

    while (p < end && is_blank(*p))
        p++;
    while (p + n < end && is_digit(p[n]))
        n++;
    if (n == 0 || n >= sizeof num)
        return MS_ERR;
    memcpy(num, p, n);
    num[n] = '\0';
    errno = 0;
    kb = strtoull(num, &stop, 10);
    if (errno != 0 || *stop != '\0' || kb > UINT64_MAX / 1024)
        return MS_ERR;

    p += n;
    if (p == end || !is_blank(*p))
        return MS_ERR;
    while (p < end && is_blank(*p))
        p++;
    if (end - p < 2 || p[0] != 'k' || p[1] != 'B')
        return MS_ERR;
    for (p += 2; p < end; p++)
        if (!is_blank(*p))
            return MS_ERR;
    *bytes = (uint64_t)kb * 1024;
    return MS_OK;
}

int ms_rollup_parse(const char *text, size_t len, ms_rollup *out)
{
    uint64_t *field[K_COUNT];
    unsigned seen = 0;
    const char *p, *end;

    if (!out)
        return MS_ERR;
    memset(out, 0, sizeof *out);
    if (!text)
        return MS_ERR;
    field[K_RSS] = &out->rss_bytes;
    field[K_PSS] = &out->pss_bytes;
    field[K_SH_CLEAN] = &out->shared_clean_bytes;
    field[K_SH_DIRTY] = &out->shared_dirty_bytes;
    field[K_PR_CLEAN] = &out->private_clean_bytes;
    field[K_PR_DIRTY] = &out->private_dirty_bytes;

    for (p = text, end = text + len; p < end;) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = eol ? eol : end;
        const char *k = p;
        int i;

        /* A key is a run of [A-Za-z0-9_] right before a colon; the header
         * line (`addr-addr ---p ...`) and blank or garbage lines fail this. */
        while (k < line_end && is_key_char(*k))
            k++;
        if (k > p && k < line_end && *k == ':' &&
            (i = key_index(p, (size_t)(k - p))) >= 0) {
            if (parse_kb(k + 1, line_end, field[i]) != MS_OK)
                goto fail;
            seen |= 1u << i;
        }
        p = eol ? eol + 1 : end;
    }
    if (!(seen & (1u << K_RSS)) || !(seen & (1u << K_PSS)))
        goto fail;
    return MS_OK;
fail:
    memset(out, 0, sizeof *out);
    return MS_ERR;
}

int ms_rollup_read_file(const char *path, ms_rollup *out)
{
    char buf[ROLLUP_BUF];
    size_t len = 0;
    int fd;

    if (out)
        memset(out, 0, sizeof *out);
    if (!path || !out)
        return MS_ERR;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return MS_ERR;
    /* Read until EOF or a full buffer; a longer file is parsed as far as it
     * fits, and a known line cut short fails parse_kb's unit check. */
    while (len < sizeof buf) {
        ssize_t r = read(fd, buf + len, sizeof buf - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            close(fd);
            return MS_ERR;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    return ms_rollup_parse(buf, len, out);
}

int ms_rollup_read(pid_t pid, ms_rollup *out)
{
    char path[64];

    if (out)
        memset(out, 0, sizeof *out);
    if (pid < 0 || !out)
        return MS_ERR;
    if (pid == 0)
        snprintf(path, sizeof path, "/proc/self/smaps_rollup");
    else
        snprintf(path, sizeof path, "/proc/%ld/smaps_rollup", (long)pid);
    return ms_rollup_read_file(path, out);
}
