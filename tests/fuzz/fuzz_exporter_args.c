/* fuzz_exporter_args.c: fuzz target of the built-in exporters' argument
 * parsing (configure()) and of the Elasticsearch exporter's stored
 * metadata decoding (open()).
 *
 * Input layout: byte 0 picks the exporter (even: elasticsearch, odd:
 * postgresql); the rest, split at NULs, alternates key and value. A key
 * whose first byte has the high bit set is replaced by one of the keys the
 * exporters know (so random inputs reach every value parser), the rest of
 * it is ignored. The bytes after the last NUL are also the metadata the
 * Elasticsearch exporter reads back when opened.
 *
 * Checked on every input: configure never crashes; it returns 0 or a
 * negative code with a message that names the exporter ("exporter 'f0'");
 * on success the Elasticsearch exporter opens against a controller that
 * runs nothing (no network), reads the metadata and closes cleanly. The
 * PostgreSQL exporter is only configured (open() connects).
 */
#define _POSIX_C_SOURCE 200809L
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exporter/exporter.h"
#include "fuzz.h"

#define FUZZ_ARGS_MAX 16
#define FUZZ_ARG_BYTES_MAX 256

static const char *const known_keys[] = {
    "url",
    "index.prefix",
    "index.createTemplate",
    "index.command",
    "index.event",
    "index.rejection",
    "index.job",
    "index.processInstance",
    "bulk.delay",
    "bulk.size",
    "bulk.memoryLimit",
    "requestTimeoutMs",
    "authentication.username",
    "authentication.password",
    "schema",
    "batch.delay",
    "batch.size",
};

struct fuzz_ctl {
    struct exporter_controller ctl;
    const void *meta;
    size_t meta_len;
};

static int ctl_acknowledge(struct exporter_controller *ctl, int64_t position,
                           const void *metadata, size_t metadata_len)
{
    (void)ctl;
    (void)position;
    (void)metadata;
    return metadata_len > EXPORTER_METADATA_BYTES_MAX ? EXPORTER_E_INVALID
                                                      : 0;
}

static int64_t ctl_last_position(const struct exporter_controller *ctl)
{
    (void)ctl;
    return -1;
}

static void ctl_metadata(const struct exporter_controller *ctl,
                         const void **data, size_t *len)
{
    const struct fuzz_ctl *f = (const struct fuzz_ctl *)(const void *)ctl;
    *data = f->meta;
    *len = f->meta_len;
}

static int64_t ctl_schedule(struct exporter_controller *ctl, uint64_t delay_ms,
                            exporter_task_fn fn, void *arg)
{
    (void)ctl;
    (void)delay_ms;
    (void)fn;
    (void)arg;
    return 1; /* never runs: no request leaves the process */
}

static void ctl_cancel(struct exporter_controller *ctl, int64_t task_id)
{
    (void)ctl;
    (void)task_id;
}

__attribute__((format(printf, 3, 4))) static void
ctl_log(struct exporter_controller *ctl, int level, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    (void)ctl;
    (void)level;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char store[FUZZ_ARGS_MAX * 2][FUZZ_ARG_BYTES_MAX];
    struct exporter_arg args[FUZZ_ARGS_MAX];
    size_t arg_count = 0;
    size_t field = 0;
    size_t pos = 1;
    struct exporter_type type;
    struct exporter_filter filter;
    void *instance = NULL;
    char err[EXPORTER_ERRMSG_MAX];
    int rv;

    if (size == 0) {
        return 0;
    }
    memset(&type, 0, sizeof(type));
    type.def = (data[0] & 1) == 0 ? &exporter_elasticsearch_def
                                  : &exporter_postgresql_def;
    while (pos < size && field < FUZZ_ARGS_MAX * 2) {
        const uint8_t *end = memchr(data + pos, 0, size - pos);
        size_t n = end != NULL ? (size_t)(end - (data + pos)) : size - pos;
        if (n >= FUZZ_ARG_BYTES_MAX) {
            n = FUZZ_ARG_BYTES_MAX - 1;
        }
        if (field % 2 == 0 && n > 0 && (data[pos] & 0x80) != 0) {
            snprintf(store[field], FUZZ_ARG_BYTES_MAX, "%s",
                     known_keys[data[pos] % (sizeof(known_keys) /
                                             sizeof(known_keys[0]))]);
        } else {
            memcpy(store[field], data + pos, n);
            store[field][n] = '\0';
        }
        field++;
        if (end == NULL) {
            break;
        }
        pos = (size_t)(end - data) + 1;
    }
    for (size_t i = 0; i + 1 < field; i += 2) {
        args[arg_count].key = store[i];
        args[arg_count].value = store[i + 1];
        arg_count++;
    }

    err[0] = '\0';
    rv = exporter_type_configure(&type, "f0", 1, args, arg_count, &instance,
                                 &filter, err, sizeof(err));
    if (getenv("FUZZ_VERBOSE") != NULL) {
        fprintf(stderr, "%s: %zu args: %d %s\n", type.def->type, arg_count,
                rv, err);
    }
    if (rv != 0) {
        assert(rv < 0);
        assert(instance == NULL);
        assert(memchr(err, '\0', sizeof(err)) != NULL);
        assert(strstr(err, "exporter 'f0'") != NULL);
        return 0;
    }
    assert(instance != NULL);
    if (type.def == &exporter_elasticsearch_def) {
        struct fuzz_ctl f;
        memset(&f, 0, sizeof(f));
        f.ctl.id = "f0";
        f.ctl.partition_id = 1;
        f.ctl.acknowledge = ctl_acknowledge;
        f.ctl.last_position = ctl_last_position;
        f.ctl.metadata = ctl_metadata;
        f.ctl.schedule = ctl_schedule;
        f.ctl.cancel = ctl_cancel;
        f.ctl.log = ctl_log;
        const uint8_t *last = data + size;
        while (last > data && last[-1] != 0) {
            last--;
        }
        f.meta = last;
        f.meta_len = (size_t)(data + size - last);
        if (f.meta_len > EXPORTER_METADATA_BYTES_MAX) {
            f.meta_len = EXPORTER_METADATA_BYTES_MAX;
        }
        rv = type.def->open(instance, &f.ctl);
        assert(rv == 0);
    }
    type.def->close(instance);
    return 0;
}
