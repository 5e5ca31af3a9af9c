/* registry.c: finds exporters (built-in by type name, external by dlopen
 * with an ABI check), runs their configure() with a context whose
 * argument helpers produce errors naming the exporter id and the key.
 *
 * Data flow: broker configuration (id, type, path, flattened args) ->
 * exporter_type_load() -> struct exporter_type -> exporter_type_configure()
 * -> a configured instance + filter, handed to the director.
 */
#define _POSIX_C_SOURCE 200809L

#include "exporter/exporter.h"

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "exporter/exporter_assert.h"

const char *exporter_strerror(int rc)
{
    switch (rc) {
    case 0:
        return "success";
#define EXPORTER_ERR_TEXT(name, value, text)                                   \
    case (value):                                                              \
        return (text);
        EXPORTER_ERRNO_MAP(EXPORTER_ERR_TEXT)
#undef EXPORTER_ERR_TEXT
    default:
        return "unknown error";
    }
}

/* ------------------------------------------------------------------------
 * Argument lookup
 * --------------------------------------------------------------------- */

/* Compares two keys ignoring case and '-' (Spring's relaxed binding). */
static bool registry_key_equal(const char *a, const char *b)
{
    EXPORTER_ASSERT(a != NULL);
    EXPORTER_ASSERT(b != NULL);
    for (;;) {
        while (*a == '-') {
            a++;
        }
        while (*b == '-') {
            b++;
        }
        if (*a == '\0' || *b == '\0') {
            return *a == *b;
        }
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) {
            return false;
        }
        a++;
        b++;
    }
}

const char *exporter_args_find(const struct exporter_arg *args,
                               size_t arg_count, const char *key)
{
    EXPORTER_ASSERT(key != NULL);
    EXPORTER_ASSERT(args != NULL || arg_count == 0);
    const char *found = NULL;
    for (size_t i = 0; i < arg_count; i++) {
        if (args[i].key != NULL && args[i].value != NULL &&
            registry_key_equal(args[i].key, key)) {
            found = args[i].value;
        }
    }
    return found;
}

static const char *registry_ctx_arg(const struct exporter_context *ctx,
                                    const char *key)
{
    EXPORTER_ASSERT(ctx != NULL);
    return exporter_args_find(ctx->args, ctx->arg_count, key);
}

__attribute__((format(printf, 3, 0))) static int
registry_ctx_vfail(struct exporter_context *ctx, const char *key,
                   const char *fmt, va_list ap)
{
    size_t cap = sizeof(ctx->errmsg);
    int n = key != NULL
                ? snprintf(ctx->errmsg, cap,
                           "exporter '%s': argument '%s': ", ctx->id, key)
                : snprintf(ctx->errmsg, cap, "exporter '%s': ", ctx->id);
    if (n > 0 && (size_t)n < cap) {
        vsnprintf(ctx->errmsg + n, cap - (size_t)n, fmt, ap);
    }
    return EXPORTER_E_INVALID;
}

static int registry_ctx_fail(struct exporter_context *ctx, const char *key,
                             const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int registry_ctx_fail(struct exporter_context *ctx, const char *key,
                             const char *fmt, ...)
{
    EXPORTER_ASSERT(ctx != NULL);
    EXPORTER_ASSERT(fmt != NULL);
    va_list ap;
    va_start(ap, fmt);
    int rc = registry_ctx_vfail(ctx, key, fmt, ap);
    va_end(ap);
    return rc;
}

/* Parses a whole decimal int64 (optional sign, no junk). */
static bool registry_parse_int64(const char *s, int64_t *out)
{
    if (s == NULL || *s == '\0' || isspace((unsigned char)*s)) {
        return false;
    }
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') {
        return false;
    }
    *out = (int64_t)v;
    return true;
}

static int registry_ctx_arg_int64(struct exporter_context *ctx, const char *key,
                                  int64_t def, int64_t min, int64_t max,
                                  int64_t *out)
{
    EXPORTER_ASSERT(out != NULL);
    EXPORTER_ASSERT(min <= max);
    const char *s = registry_ctx_arg(ctx, key);
    int64_t v = def;
    if (s != NULL && !registry_parse_int64(s, &v)) {
        return registry_ctx_fail(ctx, key, "expected an integer, got \"%s\"",
                                 s);
    }
    if (v < min || v > max) {
        return registry_ctx_fail(
            ctx, key, "%" PRId64 " is outside [%" PRId64 ", %" PRId64 "]", v,
            min, max);
    }
    *out = v;
    return 0;
}

static int registry_ctx_arg_bool(struct exporter_context *ctx, const char *key,
                                 bool def, bool *out)
{
    EXPORTER_ASSERT(out != NULL);
    const char *s = registry_ctx_arg(ctx, key);
    if (s == NULL) {
        *out = def;
        return 0;
    }
    if (strcasecmp(s, "true") == 0) {
        *out = true;
        return 0;
    }
    if (strcasecmp(s, "false") == 0) {
        *out = false;
        return 0;
    }
    return registry_ctx_fail(ctx, key, "expected true or false, got \"%s\"", s);
}

static int registry_ctx_arg_duration_ms(struct exporter_context *ctx,
                                        const char *key, int64_t def_ms,
                                        int64_t unit_ms, int64_t min_ms,
                                        int64_t max_ms, int64_t *out)
{
    EXPORTER_ASSERT(out != NULL);
    EXPORTER_ASSERT(unit_ms > 0);
    const char *s = registry_ctx_arg(ctx, key);
    int64_t ms = def_ms;
    if (s != NULL) {
        char num[32];
        size_t n = strspn(s, "0123456789");
        const char *suffix = s + n;
        int64_t mult = unit_ms;
        if (strcmp(suffix, "") == 0) {
            mult = unit_ms;
        } else if (strcmp(suffix, "ms") == 0) {
            mult = 1;
        } else if (strcmp(suffix, "s") == 0) {
            mult = 1000;
        } else if (strcmp(suffix, "m") == 0) {
            mult = 60000;
        } else {
            n = 0; /* a bad suffix is reported as a bad duration */
        }
        int64_t v = 0;
        if (n == 0 || n >= sizeof(num)) {
            return registry_ctx_fail(
                ctx, key,
                "expected a duration (an integer, or with ms, s or m), "
                "got \"%s\"",
                s);
        }
        memcpy(num, s, n);
        num[n] = '\0';
        if (!registry_parse_int64(num, &v) || v > INT64_MAX / mult) {
            return registry_ctx_fail(ctx, key, "duration \"%s\" is too large",
                                     s);
        }
        ms = v * mult;
    }
    if (ms < min_ms || ms > max_ms) {
        return registry_ctx_fail(
            ctx, key, "%" PRId64 " ms is outside [%" PRId64 ", %" PRId64 "] ms",
            ms, min_ms, max_ms);
    }
    *out = ms;
    return 0;
}

/* ------------------------------------------------------------------------
 * Types
 * --------------------------------------------------------------------- */

static const struct exporter_def *const registry_builtins[] = {
    &exporter_elasticsearch_def,
    &exporter_postgresql_def,
};

/* Checks a table found anywhere: version and functions. */
static int registry_def_check(const struct exporter_def *def, const char *id,
                              const char *where, char *err, size_t err_len)
{
    if (def->abi_version != EXPORTER_ABI_VERSION) {
        snprintf(err, err_len,
                 "exporter '%s': %s has ABI version %u, this broker "
                 "supports %u",
                 id, where, def->abi_version, EXPORTER_ABI_VERSION);
        return EXPORTER_E_ABI;
    }
    if (def->type == NULL || def->configure == NULL || def->open == NULL ||
        def->export_record == NULL || def->close == NULL) {
        snprintf(err, err_len,
                 "exporter '%s': %s has an incomplete function table", id,
                 where);
        return EXPORTER_E_INVALID;
    }
    return 0;
}

int exporter_type_load(struct exporter_type *t, const char *id,
                       const char *type, const char *path, char *err,
                       size_t err_len)
{
    EXPORTER_ASSERT(t != NULL);
    EXPORTER_ASSERT(id != NULL);
    EXPORTER_ASSERT(err != NULL && err_len > 0);
    t->def = NULL;
    t->dl = NULL;
    err[0] = '\0';
    if (path == NULL || path[0] == '\0') {
        if (type == NULL || type[0] == '\0') {
            snprintf(err, err_len,
                     "exporter '%s': neither 'type' nor 'path' is set", id);
            return EXPORTER_E_INVALID;
        }
        for (size_t i = 0;
             i < sizeof(registry_builtins) / sizeof(registry_builtins[0]);
             i++) {
            if (strcmp(registry_builtins[i]->type, type) == 0) {
                int rc = registry_def_check(registry_builtins[i], id,
                                            "the built-in", err, err_len);
                EXPORTER_ASSERT(rc == 0);
                t->def = registry_builtins[i];
                return rc;
            }
        }
        snprintf(err, err_len,
                 "exporter '%s': unknown type '%s' (built-in types: "
                 "elasticsearch, postgresql; external exporters need "
                 "'path')",
                 id, type);
        return EXPORTER_E_NOTFOUND;
    }

    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        const char *why = dlerror();
        snprintf(err, err_len, "exporter '%s': cannot load '%s': %s", id, path,
                 why != NULL ? why : "unknown reason");
        return EXPORTER_E_LOAD;
    }
    const struct exporter_def *def =
        (const struct exporter_def *)dlsym(dl, EXPORTER_SYMBOL);
    if (def == NULL) {
        snprintf(err, err_len,
                 "exporter '%s': '%s' does not export the symbol %s", id, path,
                 EXPORTER_SYMBOL);
        dlclose(dl);
        return EXPORTER_E_LOAD;
    }
    char where[EXPORTER_ERRMSG_MAX];
    snprintf(where, sizeof(where), "'%s'", path);
    int rc = registry_def_check(def, id, where, err, err_len);
    if (rc == 0 && type != NULL && type[0] != '\0' &&
        strcmp(type, def->type) != 0) {
        snprintf(err, err_len,
                 "exporter '%s': '%s' is of type '%s', the configuration "
                 "says '%s'",
                 id, path, def->type, type);
        rc = EXPORTER_E_INVALID;
    }
    if (rc != 0) {
        dlclose(dl);
        return rc;
    }
    t->def = def;
    t->dl = dl;
    return 0;
}

void exporter_type_unload(struct exporter_type *t)
{
    EXPORTER_ASSERT(t != NULL);
    if (t->dl != NULL) {
        dlclose(t->dl);
    }
    t->dl = NULL;
    t->def = NULL;
}

int exporter_type_configure(const struct exporter_type *t, const char *id,
                            uint32_t partition_id,
                            const struct exporter_arg *args, size_t arg_count,
                            void **instance, struct exporter_filter *filter,
                            char *err, size_t err_len)
{
    EXPORTER_ASSERT(t != NULL && t->def != NULL);
    EXPORTER_ASSERT(id != NULL);
    EXPORTER_ASSERT(instance != NULL);
    EXPORTER_ASSERT(err != NULL && err_len > 0);
    struct exporter_context *ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL) {
        snprintf(err, err_len, "exporter '%s': out of memory", id);
        return EXPORTER_E_NOMEM;
    }
    ctx->id = id;
    ctx->partition_id = partition_id;
    ctx->args = args;
    ctx->arg_count = arg_count;
    for (size_t i = 0; i < EXPORTER_RECORD_TYPES_MAX; i++) {
        ctx->filter.record_types[i] = true;
    }
    for (size_t i = 0; i < EXPORTER_VALUE_TYPES_MAX; i++) {
        ctx->filter.value_types[i] = true;
    }
    ctx->arg = registry_ctx_arg;
    ctx->arg_int64 = registry_ctx_arg_int64;
    ctx->arg_bool = registry_ctx_arg_bool;
    ctx->arg_duration_ms = registry_ctx_arg_duration_ms;
    ctx->fail = registry_ctx_fail;

    *instance = NULL;
    int rc = t->def->configure(ctx, instance);
    if (rc < 0) {
        if (ctx->errmsg[0] == '\0') {
            snprintf(err, err_len, "exporter '%s': configure failed: %s", id,
                     exporter_strerror(rc));
        } else {
            snprintf(err, err_len, "%s", ctx->errmsg);
        }
        *instance = NULL; /* an instance left by a failed configure is
                             not ours to free */
    } else if (*instance == NULL) {
        snprintf(err, err_len, "exporter '%s': configure returned no instance",
                 id);
        rc = EXPORTER_E_INVALID;
    } else {
        rc = 0;
        if (filter != NULL) {
            *filter = ctx->filter;
        }
        err[0] = '\0';
    }
    free(ctx);
    return rc;
}

int exporter_type_validate(const struct exporter_type *t, const char *id,
                           const struct exporter_arg *args, size_t arg_count,
                           char *err, size_t err_len)
{
    void *instance = NULL;
    int rc = exporter_type_configure(t, id, 0, args, arg_count, &instance, NULL,
                                     err, err_len);
    if (rc == 0) {
        t->def->close(instance);
    }
    return rc;
}
