/* fuzz_csv: a CSV table through the reader (load/csv.h) -- every record
 * read, the column types scanned, every cell parsed by its type -- and
 * through the state loader, as a table and as records keyed by the first
 * column (ld_state_load reads a file: the input is written to one temporary
 * file, reused). */
#include <string.h>
#include <unistd.h>

#include "load/config.h"
#include "load/csv.h"
#include "load/state.h"
#include "tests/fuzz/fuzz.h"

static char tmp_path[64];
static int tmp_fd = -1;

static void write_tmp(const uint8_t *data, size_t size)
{
    if (tmp_fd < 0) {
        const char *dir = getenv("TMPDIR");
        snprintf(tmp_path, sizeof tmp_path, "%.40s/cowdag-fuzz-XXXXXX", dir && *dir ? dir : "/tmp");
        tmp_fd = mkstemp(tmp_path);
        FUZZ_CHECK(tmp_fd >= 0, "mkstemp %s", tmp_path);
        unlink(tmp_path); /* the path stays usable through /proc/self/fd */
        snprintf(tmp_path, sizeof tmp_path, "/proc/self/fd/%d", tmp_fd);
    }
    FUZZ_CHECK(ftruncate(tmp_fd, 0) == 0, "ftruncate");
    for (size_t off = 0; off < size;) {
        ssize_t w = pwrite(tmp_fd, data + off, size - off, (off_t)off);
        FUZZ_CHECK(w > 0, "pwrite");
        off += (size_t)w;
    }
}

/* Reads every record and checks each cell against the column's type.
 * Returns the first column's name (a copy) when the input has a header. */
static char *read_all(const uint8_t *data, size_t size)
{
    ld_csv p;
    char err[512];
    if (ld_csv_open(&p, "fuzz.csv", (const char *)data, size, err, sizeof err) != LD_CSV_OK) {
        FUZZ_CHECK(err[0], "refused with no message");
        return NULL;
    }
    char *first = strdup(p.header[0].data);
    FUZZ_CHECK(first, "strdup");
    const ld_csv_field *f;
    size_t n, records = 0;
    int rc;
    while ((rc = ld_csv_next(&p, &f, &n, err, sizeof err)) == 1) {
        FUZZ_CHECK(n == p.ncols, "a record of %zu fields under a header of %zu", n, p.ncols);
        records++;
    }
    FUZZ_CHECK(rc == 0 || err[0], "a record was refused with no message");
    ld_csv_rewind(&p);
    ld_csv_type *types = calloc(p.ncols, sizeof *types);
    FUZZ_CHECK(types, "calloc");
    size_t nrows;
    if (ld_csv_scan_types(&p, types, &nrows, err, sizeof err) == LD_CSV_OK) {
        FUZZ_CHECK(rc == 0 && nrows == records, "scan read %zu rows, the reader %zu", nrows, records);
        while (ld_csv_next(&p, &f, &n, err, sizeof err) == 1)
            for (size_t i = 0; i < n; i++) {
                if (f[i].len == 0)
                    continue;
                if (types[i] == LD_CSV_INT)
                    FUZZ_CHECK(ld_csv_parse_int(f[i].data, f[i].len, NULL), "an int column holds '%.*s'",
                               (int)f[i].len, f[i].data);
                if (types[i] == LD_CSV_FLOAT)
                    FUZZ_CHECK(ld_csv_parse_float(f[i].data, f[i].len, NULL), "a float column holds '%.*s'",
                               (int)f[i].len, f[i].data);
            }
    } else {
        FUZZ_CHECK(rc != 0, "scan refused what the reader read whole: %s", err);
    }
    free(types);
    ld_csv_free(&p);
    return first;
}

static void load(ld_state_kind kind, char *key)
{
    ld_state_spec spec = {.name = "fuzz", .kind = kind, .csv = tmp_path, .key = key};
    heap_obj *v;
    char err[512];
    if (ld_state_load(&spec, &v, err, sizeof err) == LD_OK) {
        FUZZ_CHECK(v, "loaded to NULL");
        heap_decref(v);
    } else {
        FUZZ_CHECK(!v && err[0], "refused with no message");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_heap_once();
    uint64_t before = fuzz_live_objects();
    char *first = read_all(data, size);
    write_tmp(data, size);
    load(LD_STATE_TABLE, NULL);
    if (first)
        load(LD_STATE_RECORDS, first);
    free(first);
    uint64_t after = fuzz_live_objects();
    FUZZ_CHECK(after == before, "%llu heap objects alive before the CSV, %llu after", (unsigned long long)before,
               (unsigned long long)after);
    return 0;
}
