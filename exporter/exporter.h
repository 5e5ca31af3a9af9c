/* exporter.h: the exporter API: what an exporter implements, what it may
 * call, the record it is handed, and the registry that finds exporters.
 *
 * An exporter is a table of four functions (struct exporter_def) with an
 * ABI version. Built-in exporters ("elasticsearch", "postgresql") are
 * found by type name; an external one is a shared object that exports the
 * symbol EXPORTER_SYMBOL ("tandem_exporter_v1") of type struct
 * exporter_def, loaded with dlopen and refused unless its abi_version is
 * EXPORTER_ABI_VERSION.
 *
 * Life of one exporter instance on one partition (the director,
 * exporter/director.h, drives it):
 *
 *   configure(ctx, &instance)   caller's thread (broker start-up, where it
 *                               also runs once on a throw-away instance to
 *                               validate the arguments: a bad argument
 *                               fails the start with ctx->errmsg, which
 *                               names the exporter id and the key)
 *   open(instance, controller)  the exporter's worker thread
 *   export_record(instance, r)  the worker thread, once per record that
 *                               passes the filter, in position order, AT
 *                               LEAST once: a negative return makes the
 *                               director retry the same record after an
 *                               exponential backoff
 *   scheduled tasks             the worker thread, between exports
 *   close(instance)             the worker thread (or the caller's when
 *                               the instance was never opened); frees it
 *
 * Every call into an exporter therefore happens on one thread at a time:
 * an exporter needs no locks of its own. It may block (an HTTP request, a
 * database transaction) without blocking the broker or other exporters.
 *
 * Progress: an exporter acknowledges "everything up to position P is
 * stored" through controller->acknowledge(P, metadata). The position and
 * the opaque metadata blob come back to the host, which keeps them in the
 * partition state; after failover or restart the exporter resumes after
 * its last acknowledged position and reads its metadata back with
 * controller->metadata(). Delivery is at least once: records after the
 * last acknowledgement are exported again.
 *
 * Positions are tandem's record positions: (Raft entry index << 16) |
 * place of the record in its entry, always > 0; -1 means "none".
 */
#ifndef TANDEM_EXPORTER_EXPORTER_H
#define TANDEM_EXPORTER_EXPORTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------
 * Versions, limits, error codes
 * --------------------------------------------------------------------- */

/* Bumped on any incompatible change of the structs or tables below. */
#define EXPORTER_ABI_VERSION 1u
/* The symbol an external exporter's shared object exports. */
#define EXPORTER_SYMBOL "tandem_exporter_v1"

/* Bounds of the filter tables, indexed by tandem.record.RecordType and
 * tandem.record.ValueType numbers (room to grow without an ABI change). */
#define EXPORTER_RECORD_TYPES_MAX 8
#define EXPORTER_VALUE_TYPES_MAX 64
/* Largest metadata blob an exporter may acknowledge. */
#define EXPORTER_METADATA_BYTES_MAX (64 * 1024)
/* Size of the error message buffers (configure, registry). */
#define EXPORTER_ERRMSG_MAX 256
/* Scheduled tasks one exporter may have pending at once. */
#define EXPORTER_TASKS_MAX 16

/* Error codes: 0 is success, these are negative. */
#define EXPORTER_ERRNO_MAP(X)                                                  \
    X(INVALID, -1, "invalid argument")                                         \
    X(NOMEM, -2, "out of memory")                                              \
    X(BUSY, -3, "queue full")                                                  \
    X(LIMIT, -4, "limit reached")                                              \
    X(NOTFOUND, -5, "not found")                                               \
    X(ABI, -6, "ABI version mismatch")                                         \
    X(LOAD, -7, "cannot load shared object")                                   \
    X(IO, -8, "store request failed")                                          \
    X(DECODE, -9, "malformed record")                                          \
    X(STATE, -10, "wrong state")                                               \
    X(THREAD, -11, "thread error")

enum {
#define EXPORTER_ERR_ENUM(name, value, text) EXPORTER_E_##name = (value),
    EXPORTER_ERRNO_MAP(EXPORTER_ERR_ENUM)
#undef EXPORTER_ERR_ENUM
};

/* A static text for an error code ("unknown error" for others). */
const char *exporter_strerror(int rc);

/* Log levels of the log functions below. */
enum exporter_log_level {
    EXPORTER_LOG_ERROR = 0,
    EXPORTER_LOG_WARN = 1,
    EXPORTER_LOG_INFO = 2,
    EXPORTER_LOG_DEBUG = 3,
};

/* ------------------------------------------------------------------------
 * The record handed to exporters
 * --------------------------------------------------------------------- */

/* One committed record. All pointers are valid only during the
 * export_record() call; an exporter that keeps data copies it. Strings are
 * NUL-terminated. Names are Zeebe's ("EVENT", "PROCESS_INSTANCE",
 * "ELEMENT_ACTIVATED", "NULL_VAL"). */
struct exporter_record {
    uint32_t partition_id;           /* 1-based partition id */
    int64_t position;                /* > 0, increasing along the partition */
    int64_t key;                     /* -1 when the record has none */
    int64_t timestamp;               /* ms since the epoch */
    int record_type;                 /* tandem.record.RecordType number */
    int value_type;                  /* tandem.record.ValueType number */
    uint32_t intent;                 /* number of the value type's intent */
    int rejection_type;              /* tandem.record.RejectionType number */
    const char *record_type_name;    /* "COMMAND", "EVENT", ... */
    const char *value_type_name;     /* "JOB", ... */
    const char *intent_name;         /* "CREATED", ... ("UNKNOWN" if unknown) */
    const char *rejection_type_name; /* "NULL_VAL" unless a rejection */
    const char *rejection_reason;    /* "" unless a rejection */
    int64_t source_position;         /* the command's position, -1 if none */
    const char *broker_version;      /* "8.4.5"-style version of the writer */
    const char *json;                /* the record in Zeebe 8.4's JSON */
    size_t json_len;                 /* strlen(json) */
    const uint8_t *value;            /* the packed tandem.record.*RecordValue */
    size_t value_len;
};

/* ------------------------------------------------------------------------
 * configure(): arguments, filter, errors
 * --------------------------------------------------------------------- */

/* One configuration argument, flattened: "bulk.size" = "1000". Keys match
 * case-insensitively and ignoring '-' (so the environment's lower-cased
 * ARGS_BULK_MEMORYLIMIT finds "bulk.memoryLimit"). */
struct exporter_arg {
    const char *key;
    const char *value;
};

/* Which records reach export_record(). Both tables start all true;
 * configure() may clear entries. Records filtered out still advance the
 * exporter's position when it has nothing else pending (Zeebe's
 * updatePositionOnSkipIfUpToDate). */
struct exporter_filter {
    bool record_types[EXPORTER_RECORD_TYPES_MAX];
    bool value_types[EXPORTER_VALUE_TYPES_MAX];
};

/* What configure() receives. The helpers parse an argument, and on a bad
 * value write "exporter '<id>': argument '<key>': <problem>" into errmsg
 * and return EXPORTER_E_INVALID, which configure() passes back. A missing
 * argument yields the default. */
struct exporter_context {
    const char *id;                  /* exporter id, lower case ("es0") */
    uint32_t partition_id;           /* 0 when validating at start-up */
    const struct exporter_arg *args; /* borrowed during configure() */
    size_t arg_count;
    struct exporter_filter filter;    /* in/out, see above */
    char errmsg[EXPORTER_ERRMSG_MAX]; /* out: why configure() failed */

    /* The raw value of key, or NULL when absent. */
    const char *(*arg)(const struct exporter_context *ctx, const char *key);
    /* A decimal integer in [min, max]. */
    int (*arg_int64)(struct exporter_context *ctx, const char *key, int64_t def,
                     int64_t min, int64_t max, int64_t *out);
    /* "true"/"false" (any case). */
    int (*arg_bool)(struct exporter_context *ctx, const char *key, bool def,
                    bool *out);
    /* A duration: an integer in unit_ms, or with a suffix "ms", "s" or
     * "m"; the result, in ms, must lie in [min_ms, max_ms]. */
    int (*arg_duration_ms)(struct exporter_context *ctx, const char *key,
                           int64_t def_ms, int64_t unit_ms, int64_t min_ms,
                           int64_t max_ms, int64_t *out);
    /* Formats a custom problem about key (NULL: about the exporter) into
     * errmsg; returns EXPORTER_E_INVALID. */
    int (*fail)(struct exporter_context *ctx, const char *key, const char *fmt,
                ...) __attribute__((format(printf, 3, 4)));
};

/* ------------------------------------------------------------------------
 * The controller: what an opened exporter may call (worker thread only)
 * --------------------------------------------------------------------- */

typedef void (*exporter_task_fn)(void *arg);

struct exporter_controller {
    const char *id;        /* exporter id */
    uint32_t partition_id; /* the partition being exported */

    /* Everything up to position is durably exported; metadata (may be
     * NULL/0, at most EXPORTER_METADATA_BYTES_MAX bytes, copied) is
     * stored with it. Ignored unless position is above the last
     * acknowledged one. Returns 0 or EXPORTER_E_INVALID (too large). */
    int (*acknowledge)(struct exporter_controller *ctl, int64_t position,
                       const void *metadata, size_t metadata_len);
    /* The last acknowledged position (-1 if none). */
    int64_t (*last_position)(const struct exporter_controller *ctl);
    /* The last acknowledged metadata, valid until the next acknowledge();
     * *len 0 when none. */
    void (*metadata)(const struct exporter_controller *ctl, const void **data,
                     size_t *len);
    /* Runs fn(arg) on the worker thread once, delay_ms from now. Returns a
     * task id > 0, or EXPORTER_E_LIMIT when EXPORTER_TASKS_MAX tasks are
     * pending. Pending tasks are dropped when the exporter closes. */
    int64_t (*schedule)(struct exporter_controller *ctl, uint64_t delay_ms,
                        exporter_task_fn fn, void *arg);
    /* Cancels a pending task (no effect if it ran already). */
    void (*cancel)(struct exporter_controller *ctl, int64_t task_id);
    /* Logs one line, prefixed with the exporter id and partition. */
    void (*log)(struct exporter_controller *ctl, int level, const char *fmt,
                ...) __attribute__((format(printf, 3, 4)));
};

/* ------------------------------------------------------------------------
 * The exporter's function table
 * --------------------------------------------------------------------- */

struct exporter_def {
    uint32_t abi_version; /* EXPORTER_ABI_VERSION */
    const char *type;     /* "elasticsearch", ... */
    /* Validates ctx's arguments, narrows ctx->filter, and creates the
     * instance. Returns 0 or a negative code with ctx->errmsg set; on
     * error nothing is left to free. */
    int (*configure)(struct exporter_context *ctx, void **instance);
    /* Connects, reads its metadata, schedules its timers. A negative
     * return is retried with backoff. */
    int (*open)(void *instance, struct exporter_controller *ctl);
    /* Exports one record (buffering it is fine; acknowledge once it is
     * stored). A negative return retries this same record later: an
     * exporter must tolerate seeing a record again. */
    int (*export_record)(void *instance, const struct exporter_record *r);
    /* Flushes if it can (best effort), then frees the instance. */
    void (*close)(void *instance);
};

/* The built-in exporters. */
extern const struct exporter_def exporter_elasticsearch_def;
extern const struct exporter_def exporter_postgresql_def;

/* ------------------------------------------------------------------------
 * Registry: finding, loading and configuring exporters
 * --------------------------------------------------------------------- */

/* A found exporter type: a built-in, or a loaded shared object. */
struct exporter_type {
    const struct exporter_def *def;
    void *dl; /* dlopen handle, NULL for built-ins */
};

/* Finds the exporter of exporter id: by path when path is non-NULL (then
 * type, if non-NULL, must equal the object's def->type), otherwise the
 * built-in named type. Returns 0, EXPORTER_E_NOTFOUND (unknown type),
 * EXPORTER_E_LOAD (dlopen/dlsym failed), EXPORTER_E_ABI (wrong version)
 * or EXPORTER_E_INVALID (neither type nor path, type mismatch, a table
 * with a NULL function); err receives a message naming the exporter. */
int exporter_type_load(struct exporter_type *t, const char *id,
                       const char *type, const char *path, char *err,
                       size_t err_len);
/* Unloads what exporter_type_load() loaded (after every instance of it is
 * closed). */
void exporter_type_unload(struct exporter_type *t);

/* Runs def->configure() with a context built from the arguments (args is
 * borrowed during the call). On success *instance is the new instance and
 * *filter its filter (NULL filter: not wanted). Returns 0 or the
 * exporter's error with err set. */
int exporter_type_configure(const struct exporter_type *t, const char *id,
                            uint32_t partition_id,
                            const struct exporter_arg *args, size_t arg_count,
                            void **instance, struct exporter_filter *filter,
                            char *err, size_t err_len);

/* Start-up validation: configure on a throw-away instance, then close it.
 * Returns 0 or the configure error with err set. */
int exporter_type_validate(const struct exporter_type *t, const char *id,
                           const struct exporter_arg *args, size_t arg_count,
                           char *err, size_t err_len);

/* Looks key up in an argument list the way ctx->arg() does; NULL when
 * absent (the last occurrence wins). */
const char *exporter_args_find(const struct exporter_arg *args,
                               size_t arg_count, const char *key);

#endif /* TANDEM_EXPORTER_EXPORTER_H */
