// json_in.cc: dag_json_parse (dag/json_in.h) -- simdjson's DOM parser, its
// document walked into heap objects, jansson on the rare path where that
// refuses the text.  The DOM rather than On-Demand: Debian's simdjson 3.0.1
// compiles On-Demand into the caller, with the portable kernel unless the
// build targets AVX2 (the DOM dispatches to the CPU's kernel at run time),
// and its documents have no at_end() to refuse trailing text ("[1] 2");
// the DOM has validated the whole text before the first heap object is
// made, and tells an array's length before its items.
// The C headers, with C linkage; heap/heap.h is C11, and its one C-only
// keyword is spelled for C++ here.
#define _Noreturn [[noreturn]]
extern "C" {
#include "dag/json_in.h"
#include "dag/value.h"
#include "heap/heap.h"
}

#include <simdjson.h>

#include <cstdio>
#include <cstring>

namespace {

// The parser keeps its buffers (the tape, the string area, a padded copy of
// the text) between calls, one per thread -- for bodies up to KEEP_BYTES.
// Buffers sized for n bytes take about 15n bytes of address space (a tape
// word of 8 and a structural index of 4 a byte, the string area, the
// copy), and what a body touched stays resident: a kept parser held 4.2 MB
// after one 1 MB body of short strings.  A larger body gets a parser of
// its own, freed once it is walked.  simdjson refuses nesting past
// max_depth itself; the walk counts as jansson does (a scalar inside 2047
// arrays is at depth 2048), so simdjson's bound is one more.
constexpr size_t KEEP_BYTES = 64 << 10;
constexpr size_t MAX_DEPTH = DAG_JSON_MAX_DEPTH + 1;

simdjson::dom::parser &kept_parser()
{
    static thread_local simdjson::dom::parser p;
    static thread_local bool ready = false;
    if (!ready) {
        if (p.allocate(4096, MAX_DEPTH) != simdjson::SUCCESS)
            heap_panic("json_in: out of memory for the parser");
        ready = true;
    }
    return p;
}

// Why the walk refuses a document simdjson took: each is a case where
// jansson refuses it too (so jansson gives the message).
enum class refusal { none, nul, too_big, duplicate, depth };

struct walker {
    refusal why = refusal::none;
    bool pack; // arrays of numbers as int64 / float64 arrays

    // An array all of whose items are int64 integers, or all other numbers
    // (floats): one heap array, no object per number, filled in the pass
    // that checks the items.  nullptr otherwise.
    heap_obj *packed(simdjson::dom::array a, size_t n)
    {
        using simdjson::dom::element_type;
        if (n == 0)
            return nullptr;
        element_type first = (*a.begin()).type();
        if (first != element_type::INT64 && first != element_type::DOUBLE)
            return nullptr;
        bool ints = first == element_type::INT64;
        heap_obj *arr = heap_array_new_uninit(ints ? HD_I64 : HD_F64, n);
        int64_t *iv = ints ? heap_array_i64(arr) : nullptr;
        double *fv = ints ? nullptr : heap_array_f64(arr);
        for (simdjson::dom::element item : a) {
            if (item.type() != first) {
                heap_decref(arr);
                return nullptr;
            }
            if (ints)
                *iv++ = item.get_int64().value_unsafe();
            else
                *fv++ = item.get_double().value_unsafe();
        }
        return arr;
    }

    heap_obj *str(std::string_view s)
    {
        if (std::memchr(s.data(), '\0', s.size())) { // jansson takes no NUL
            why = refusal::nul;
            return nullptr;
        }
        return heap_str_new(s.data(), s.size());
    }

    // A new reference, or nullptr with `why` set.
    heap_obj *value(simdjson::dom::element e, int depth)
    {
        using simdjson::dom::element_type;
        if (depth > DAG_JSON_MAX_DEPTH) {
            why = refusal::depth;
            return nullptr;
        }
        switch (e.type()) {
        case element_type::INT64:
            return heap_int_new(e.get_int64().value_unsafe());
        case element_type::UINT64: // above INT64_MAX: jansson's "too big integer"
            why = refusal::too_big;
            return nullptr;
        case element_type::DOUBLE:
            return heap_float_new(e.get_double().value_unsafe());
        case element_type::STRING:
            return str(e.get_string().value_unsafe());
        case element_type::BOOL:
            return heap_bool(e.get_bool().value_unsafe());
        case element_type::NULL_VALUE:
            return heap_none();
        case element_type::ARRAY: {
            simdjson::dom::array a;
            if (e.get_array().get(a))
                heap_panic("json_in: an array element is not an array");
            size_t n = a.size();
            if (heap_obj *arr = pack ? packed(a, n) : nullptr)
                return arr;
            heap_obj *l = heap_list_new(n);
            for (simdjson::dom::element item : a) {
                heap_obj *v = value(item, depth + 1);
                if (!v) {
                    heap_decref(l);
                    return nullptr;
                }
                heap_list_append_new(l, v);
            }
            return l;
        }
        case element_type::OBJECT: {
            simdjson::dom::object o;
            if (e.get_object().get(o))
                heap_panic("json_in: an object element is not an object");
            heap_obj *d = heap_dict_new();
            for (simdjson::dom::key_value_pair kv : o) {
                heap_obj *k = str(kv.key);
                heap_obj *v = k ? value(kv.value, depth + 1) : nullptr;
                if (!v) {
                    heap_xdecref(k);
                    heap_decref(d);
                    return nullptr;
                }
                size_t before = heap_dict_len(d);
                heap_dict_set_new(d, k, v);
                heap_decref(k);
                if (heap_dict_len(d) == before) {
                    why = refusal::duplicate;
                    heap_decref(d);
                    return nullptr;
                }
            }
            return d;
        }
        }
        heap_panic("json_in: a simdjson element of unknown type %d", (int)e.type());
    }
};

} // namespace

// jansson names the token an error is near only when it is short: an
// integer past int64 of more than 20 characters comes out as "too big
// integer" alone.  It is named here (its first 40 characters), found
// backwards from where jansson stopped, which is just past it.
static void name_the_number(const char *text, size_t len, json_error_t *err)
{
    if (std::strncmp(err->text, "too big ", 8) != 0 || std::strstr(err->text, " near '"))
        return;
    size_t pos = err->position > 0 ? (size_t)err->position : 0, end = pos < len ? pos : len, at = end;
    while (at > 0 && ((text[at - 1] >= '0' && text[at - 1] <= '9') || text[at - 1] == '-'))
        at--;
    if (at == end)
        return;
    int n = (int)(end - at);
    char why[sizeof err->text + 64]; // "too big negative integer" and 43 more: it fits
    std::snprintf(why, sizeof why, "%s near '%.*s%s'", err->text, n > 40 ? 40 : n, text + at, n > 40 ? "..." : "");
    std::memcpy(err->text, why, sizeof err->text);
    err->text[sizeof err->text - 1] = '\0';
}

extern "C" int dag_json_parse_jansson(const char *text, size_t len, heap_obj **out, json_error_t *err)
{
    *out = nullptr;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, err);
    if (!j) {
        name_the_number(text, len, err);
        return DAG_ERR;
    }
    char why[8];
    dag_value_from_json(j, DV_ANY, out, why, sizeof why); // DV_ANY takes any JSON
    json_decref(j);
    return DAG_OK;
}

// The value simdjson and the walk make of the text, or nullptr.
static heap_obj *simd_parse(simdjson::dom::parser &p, const char *text, size_t len, bool pack)
{
    simdjson::dom::element root;
    if (p.parse(text, len, true).get(root) != simdjson::SUCCESS)
        return nullptr;
    walker w;
    w.pack = pack;
    return w.value(root, 1);
}

static int parse(const char *text, size_t len, bool pack, heap_obj **out, json_error_t *err)
{
    if (len <= KEEP_BYTES) {
        *out = simd_parse(kept_parser(), text, len, pack);
    } else {
        simdjson::dom::parser big;
        *out = big.allocate(len, MAX_DEPTH) == simdjson::SUCCESS ? simd_parse(big, text, len, pack) : nullptr;
    }
    if (*out)
        return DAG_OK;
    if (dag_json_parse_jansson(text, len, out, err) != DAG_OK)
        return DAG_ERR;
    if (pack) { // simdjson was stricter than jansson: pack what jansson read
        heap_obj *p = dag_value_pack(*out);
        heap_decref(*out);
        *out = p;
    }
    return DAG_OK;
}

extern "C" int dag_json_parse(const char *text, size_t len, heap_obj **out, json_error_t *err)
{
    return parse(text, len, false, out, err);
}

extern "C" int dag_request_parse(const char *text, size_t len, heap_obj **out, json_error_t *err)
{
    return parse(text, len, true, out, err);
}
