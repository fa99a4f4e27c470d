/* state.c: builds the master's state in the managed heap (server/state.h). */
#include "server/state.h"

#include <stdio.h>

heap_obj *srv_state_generate_records(uint64_t count, uint64_t seed)
{
    static const char *const field[] = {"id", "name", "segment", "spend", "tags"};
    heap_obj *key[5];
    for (int k = 0; k < 5; k++)
        key[k] = heap_str_from(field[k]);

    heap_obj *store = heap_dict_new();
    uint64_t x = seed;
    char buf[48];
    for (uint64_t i = 0; i < count; i++) {
        heap_obj *rec = heap_dict_new();
        heap_obj *id = heap_int_new((int64_t)i);
        heap_dict_set(rec, key[0], id);

        int n = snprintf(buf, sizeof buf, "customer-%llu", (unsigned long long)i);
        heap_dict_set_new(rec, key[1], heap_str_new(buf, (size_t)n));
        heap_dict_set_new(rec, key[2], heap_int_new((int64_t)(i % 16)));

        heap_obj *spend = heap_list_new(SRV_SPEND_LEN);
        for (int j = 0; j < SRV_SPEND_LEN; j++) {
            x = (1103515245u * x + 12345u) & 0x7fffffffu;
            heap_list_append_new(spend, heap_float_new((double)(x % 100000) / 100.0));
        }
        heap_dict_set_new(rec, key[3], spend);

        heap_obj *tags = heap_list_new(2);
        n = snprintf(buf, sizeof buf, "t%llu", (unsigned long long)(i % 7));
        heap_list_append_new(tags, heap_str_new(buf, (size_t)n));
        n = snprintf(buf, sizeof buf, "t%llu", (unsigned long long)(i % 11));
        heap_list_append_new(tags, heap_str_new(buf, (size_t)n));
        heap_dict_set_new(rec, key[4], tags);

        heap_dict_set_new(store, id, rec);
        heap_decref(id);
    }
    for (int k = 0; k < 5; k++)
        heap_decref(key[k]);
    return store;
}
