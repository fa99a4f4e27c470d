/* cowdag_module.h: the one header a cowdag module includes -- users' own ops
 * in a shared library that the master loads before it forks, so the
 * module's code and constant data stay shared with every worker.  How to
 * write, build, load and test one: README.md, "Writing a module".
 *
 * It needs only the C standard headers and shows nothing of cowdag's heap:
 * values, params, the call context and the module are opaque handles read
 * and built through the functions below.
 *
 * A module defines two symbols:
 *
 *     COWDAG_MODULE_DECLARE;                      (the API version it speaks)
 *     int cowdag_module_init(cowdag_module *m)    (registers its ops)
 *
 * The loader checks cowdag_module_api_version before it calls the init, and
 * the init returns COWDAG_OK once every cowdag_register_op succeeded.
 *
 * Reference counts and shared pages.  Every value carries a reference
 * count in its own header; writing it copies the value's page in a worker
 * that inherited it (the figures "GET /stats" reports).  Values made
 * before the fork in `freeze` + `immortal` mode are immortal: no call
 * writes their count.  In this API:
 *   - reading never writes a count: every accessor returns a borrowed value
 *     (valid while the value it came from lives, i.e. for the whole call),
 *     and the op's arguments are borrowed too;
 *   - cowdag_ref, cowdag_unref write the count of the value they are given;
 *     cowdag_list_append and cowdag_dict_set_str take a reference to the
 *     item (a write to the item's count), unlike their _new forms, which
 *     steal the caller's reference and write nothing but the container;
 *   - constructors (_new) write only the new value.
 * An op that returns an argument, or a piece of one, as its result must
 * cowdag_ref it first: that is the one place a module op writes an
 * inherited value's count (none if it is immortal).
 */
#ifndef COWDAG_MODULE_H
#define COWDAG_MODULE_H

#include <stddef.h>
#include <stdint.h>

#define COWDAG_MODULE_API_VERSION 1

/* The symbols the loader looks up in a module. */
#define COWDAG_MODULE_INIT_SYMBOL "cowdag_module_init"
#define COWDAG_MODULE_VERSION_SYMBOL "cowdag_module_api_version"

#define COWDAG_OK 0
#define COWDAG_ERR (-1)

#if defined(__GNUC__)
#define COWDAG_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define COWDAG_PRINTF(f, a)
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cowdag_module cowdag_module; /* the module being loaded (init only) */
typedef struct cowdag_ctx cowdag_ctx;       /* one call of an op */
typedef struct cowdag_value cowdag_value;   /* a value of the heap */
typedef struct cowdag_params cowdag_params; /* a node's params, compiled at load time */

/* What a value is.  The last three are for declarations only (an op's
 * argument and result types): no value is of them. */
typedef enum cowdag_type {
    COWDAG_ANY,   /* declarations: any value */
    COWDAG_NONE,
    COWDAG_BOOL,
    COWDAG_INT,   /* int64 */
    COWDAG_FLOAT, /* double */
    COWDAG_STR,   /* UTF-8 bytes */
    COWDAG_LIST,  /* values */
    COWDAG_DICT,  /* insertion-ordered, str or int keys; a record is a dict */
    COWDAG_ARRAY, /* contiguous float64 or int64 */
    COWDAG_TABLE, /* named columns of equal length */
    COWDAG_NUMBER,  /* declarations: an int or a float */
    COWDAG_NUMERIC, /* declarations: a number, an array, or a list (of numbers, which the op checks) */
    COWDAG_RECORDS, /* declarations: a list (of records) or a dict (whose values are records) */
} cowdag_type;

/* --- registration ------------------------------------------------------- */

typedef enum cowdag_param_type {
    COWDAG_PARAM_INT,
    COWDAG_PARAM_FLOAT, /* an int is a float too */
    COWDAG_PARAM_STR,
    COWDAG_PARAM_STRLIST,
} cowdag_param_type;

typedef struct cowdag_arg_spec {
    const char *name; /* for messages and `cowdag ops`; NULL ends the list */
    cowdag_type type; /* checked before the op runs: a mismatch is 422 type_error */
    int optional;     /* only trailing args may be optional */
} cowdag_arg_spec;

typedef struct cowdag_param_spec {
    const char *name; /* NULL ends the list */
    cowdag_param_type type;
    int required; /* a DAG file that leaves it out does not load */
} cowdag_param_spec;

/* An op: args are borrowed; on COWDAG_OK *out holds a new reference of the
 * declared result type; on COWDAG_ERR the op has called cowdag_fail (or a
 * call that fails for it) and holds nothing. */
typedef int (*cowdag_op_fn)(cowdag_ctx *ctx, cowdag_value *const *args, size_t nargs, const cowdag_params *params,
                            cowdag_value **out);

typedef struct cowdag_op_def {
    const char *name;                /* [A-Za-z_][A-Za-z0-9_]*, unique among every op loaded */
    const cowdag_arg_spec *args;     /* ended by {NULL}; NULL: no args */
    const cowdag_param_spec *params; /* ended by {NULL}; NULL: no params */
    cowdag_type result;              /* checked after the op returns: a mismatch is 422 op_error */
    const char *doc;                 /* one paragraph, which `cowdag ops` prints */
    cowdag_op_fn fn;
    const void *data; /* the op's constant data (cowdag_op_data), or NULL */
} cowdag_op_def;

/* Registers an op (init only).  Everything def points to but fn and data is
 * copied.  COWDAG_ERR if the name is taken (by a built-in op or any module
 * loaded with this one) or the def is malformed; the loader then reports
 * it, naming the module's file and the op. */
int cowdag_register_op(cowdag_module *m, const cowdag_op_def *def);

/* --- reading values: borrowed, no reference count written -------------- */

cowdag_type cowdag_type_of(const cowdag_value *v);
const char *cowdag_type_name(cowdag_type t); /* "int", "list", ... */
/* The name of what v is, for messages: arrays say their dtype. */
const char *cowdag_kind(const cowdag_value *v);

int64_t cowdag_int(const cowdag_value *v);     /* an int; 0 otherwise */
double cowdag_float(const cowdag_value *v);    /* a float; 0 otherwise */
int cowdag_bool(const cowdag_value *v);        /* a bool; 0 otherwise */
/* An int or a float as a double: COWDAG_OK, or COWDAG_ERR (no write to *out)
 * for anything else -- bools are not numbers. */
int cowdag_number(const cowdag_value *v, double *out);
/* A str's bytes (NUL-terminated, valid while v lives) and length; NULL
 * otherwise. */
const char *cowdag_str(const cowdag_value *v, size_t *len);

/* Elements of a list, array, dict or str (its bytes), rows of a table; 0
 * for anything else. */
size_t cowdag_len(const cowdag_value *v);

/* The i-th item of a list (i < cowdag_len), borrowed. */
cowdag_value *cowdag_list_get(const cowdag_value *list, size_t i);

/* A dict's value under a str or int key, borrowed; NULL if absent or if d
 * is not a dict. */
cowdag_value *cowdag_dict_get_str(const cowdag_value *d, const char *key);
cowdag_value *cowdag_dict_get_int(const cowdag_value *d, int64_t key);
/* Iteration in insertion order: *pos starts at 0; 1 while there is an
 * entry (borrowed key and value; either pointer may be NULL), then 0. */
int cowdag_dict_next(const cowdag_value *d, size_t *pos, cowdag_value **key, cowdag_value **value);

/* Records: a list of records, or a dict whose values are records (the
 * customer store), walked alike.  *pos starts at 0; the next record,
 * borrowed, or NULL at the end.  A record is a dict: read its fields with
 * cowdag_dict_get_str. */
cowdag_value *cowdag_records_next(const cowdag_value *records, size_t *pos);

/* An array's data, read in place: NULL unless v is an array of that dtype. */
const double *cowdag_array_f64(const cowdag_value *v, size_t *len);
const int64_t *cowdag_array_i64(const cowdag_value *v, size_t *len);

/* A table's column by name (an array, or a list of str), borrowed; NULL if
 * absent.  Rows: cowdag_len. */
cowdag_value *cowdag_table_column(const cowdag_value *t, const char *name);

/* --- params -------------------------------------------------------------- */

/* A param's value, or dflt when the node did not give it. */
int64_t cowdag_param_int(const cowdag_params *p, const char *name, int64_t dflt);
double cowdag_param_float(const cowdag_params *p, const char *name, double dflt);
const char *cowdag_param_str(const cowdag_params *p, const char *name, const char *dflt);
/* A list of strings: how many, *out the strings (valid for the call); 0
 * and *out NULL when not given. */
size_t cowdag_param_strlist(const cowdag_params *p, const char *name, const char *const **out);
int cowdag_param_is_set(const cowdag_params *p, const char *name);

/* --- the call ------------------------------------------------------------ */

/* The data the op registered with (cowdag_op_def.data). */
const void *cowdag_op_data(const cowdag_ctx *ctx);

/* Fails the call: the request gets 422 with {"code": "op_error" (or
 * "type_error"), "message": "OP: MESSAGE", "node": the node's name}.
 * Returns COWDAG_ERR, for `return cowdag_fail(ctx, ...)`. */
int cowdag_fail(cowdag_ctx *ctx, const char *fmt, ...) COWDAG_PRINTF(2, 3);
int cowdag_fail_type(cowdag_ctx *ctx, const char *fmt, ...) COWDAG_PRINTF(2, 3);

/* The run's limits, for long loops: COWDAG_OK, or COWDAG_ERR (the call
 * failed with limit_exceeded) once the run is past its deadline
 * (timeout_ms) or its heap holds more than its budget (max_run_bytes).  It
 * reads the clock (tens of nanoseconds): call it every thousand
 * iterations or so. */
int cowdag_check(cowdag_ctx *ctx);
/* Whether the op may take `bytes` more memory (scratch from malloc counts
 * against the budget too): COWDAG_OK, or COWDAG_ERR (limit_exceeded). */
int cowdag_reserve(cowdag_ctx *ctx, uint64_t bytes);

/* --- building results: new references ------------------------------------ */

cowdag_value *cowdag_none_new(void);
cowdag_value *cowdag_bool_new(int b);
cowdag_value *cowdag_int_new(int64_t v);
cowdag_value *cowdag_float_new(double v);
cowdag_value *cowdag_str_new(const char *s, size_t len);

/* Containers and arrays check the run's limits first (element count,
 * max_run_bytes): NULL, the call failed with limit_exceeded, when they do
 * not fit. */
cowdag_value *cowdag_list_new(cowdag_ctx *ctx, size_t capacity);
cowdag_value *cowdag_dict_new(cowdag_ctx *ctx);
/* An array of n elements whose data the op writes through *data (contents
 * undefined until it does). */
cowdag_value *cowdag_array_f64_new(cowdag_ctx *ctx, size_t n, double **data);
cowdag_value *cowdag_array_i64_new(cowdag_ctx *ctx, size_t n, int64_t **data);

/* Appends / sets, stealing item (the _new forms: the caller's reference
 * moves in, no count written) or taking a reference to it (a write to
 * item's count unless it is immortal). */
void cowdag_list_append_new(cowdag_value *list, cowdag_value *item);
void cowdag_list_append(cowdag_value *list, cowdag_value *item);
void cowdag_dict_set_str_new(cowdag_value *d, const char *key, cowdag_value *value);
void cowdag_dict_set_str(cowdag_value *d, const char *key, cowdag_value *value);

/* Takes / drops a reference: writes v's count unless v is immortal.
 * cowdag_ref returns v. */
cowdag_value *cowdag_ref(cowdag_value *v);
void cowdag_unref(cowdag_value *v);

/* --- what a module defines ------------------------------------------------ */

/* COWDAG_MODULE_DECLARE; at file scope defines the version symbol. */
#define COWDAG_MODULE_DECLARE const int cowdag_module_api_version = COWDAG_MODULE_API_VERSION
extern const int cowdag_module_api_version;
int cowdag_module_init(cowdag_module *m);

#ifdef __cplusplus
}
#endif

#endif
