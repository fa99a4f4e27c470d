/* fuzz: what the libFuzzer harnesses of tests/fuzz/ share (README.md,
 * "Tests").  Each harness defines LLVMFuzzerTestOneInput (and, where it
 * builds a fixed world once, LLVMFuzzerInitialize); `make fuzz` links it
 * with clang's libFuzzer, `make test` with tests/fuzz/replay.c, which
 * feeds it every file of its checked-in corpus.
 *
 * A harness checks what the sanitizers cannot see: the managed heap lives
 * in its own arenas, so every input must leave as many heap objects alive
 * as there were before it (after a full collection, for cyclic garbage);
 * FUZZ_CHECK aborts otherwise, which both drivers report as a crash. */
#ifndef COWDAG_FUZZ_H
#define COWDAG_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "heap/gc.h"
#include "heap/heap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond, ...)                                                                    \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);             \
            fprintf(stderr, __VA_ARGS__);                                                        \
            fputc('\n', stderr);                                                                 \
            abort();                                                                             \
        }                                                                                        \
    } while (0)

/* Heap objects alive after a full collection. */
static inline uint64_t fuzz_live_objects(void)
{
    gc_collect(2);
    heap_stats s;
    heap_get_stats(&s);
    return s.objects;
}

/* Initialises the heap once per process (both drivers call the harness
 * many times). */
static inline void fuzz_heap_once(void)
{
    static int done;
    if (!done) {
        heap_init(NULL);
        done = 1;
    }
}

/* data[0..size) as a NUL-terminated copy (malloc'ed), for the parsers that
 * want C strings; the fuzzer's own buffer has no terminator. */
static inline char *fuzz_text(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    for (size_t i = 0; i < size; i++)
        s[i] = (char)data[i];
    s[size] = '\0';
    return s;
}

#endif
