/* config.c: loads, validates and prints the broker configuration.
 *
 * Every key is one row of the `keys` table below (path under tandem.broker,
 * type, field offset, numeric range). Data flows through it in four steps:
 *
 *   1. broker_config_default() writes the defaults.
 *   2. The YAML document is read as a stream of libyaml events; nested
 *      mappings are flattened into dotted paths ("tandem.broker.cluster.
 *      nodeId"), matched against the table (case-insensitively, dashes
 *      ignored, like Spring's relaxed binding) and parsed into the field.
 *   3. Each TANDEM_BROKER_* environment variable is matched against the
 *      table's environment names and parsed the same way, overriding YAML.
 *   4. Derived values: podOrdinal from the host name when
 *      cluster.nodeIdFromHostname is set (pod-style "<name>-<ordinal>";
 *      the host name from the `hostname` key, else HOSTNAME in the passed
 *      environment, else gethostname()), nodeId from podOrdinal if nodeId
 *      was not given, and initialContactPoints from
 *      cluster.initialContactPointsTemplate (one entry per broker of every
 *      region); then every rule is checked.
 *
 * Each key remembers where its value came from (struct origin), so an error
 * names the YAML line or the environment variable as well as the key.
 * Nothing is allocated apart from libyaml's parser state; the result is a
 * flat struct without pointers.
 */
#define _POSIX_C_SOURCE 200809L
#include "broker/config.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yaml.h>

/* ------------------------------------------------------------------------
 * The key table
 * --------------------------------------------------------------------- */

#define ROOT "tandem.broker."
#define ENV_PREFIX "TANDEM_BROKER_"
#define DEPTH_MAX 16       /* nesting of YAML mappings */
#define KEY_PATH_MAX 512   /* a flattened YAML path */
#define ENV_NAME_MAX 128   /* a generated environment variable name */
#define SHOWN_VALUE_MAX 96 /* characters of a bad value quoted in errors */

enum key_type {
    TYPE_UINT,     /* uint32_t */
    TYPE_OPT_UINT, /* uint32_t plus a "set" bool at flag_offset */
    TYPE_PORT,     /* uint16_t */
    TYPE_BOOL,     /* bool */
    TYPE_DURATION, /* uint64_t milliseconds */
    TYPE_SIZE,     /* uint64_t bytes */
    TYPE_STRING,   /* char[size] */
    TYPE_CONTACTS, /* contact_points[] and contact_point_count */
    TYPE_NAMES,    /* region_namespaces[][] and region_namespace_count */
};

enum key_id {
    K_NODE_ID,
    K_CLUSTER_SIZE,
    K_PARTITIONS_COUNT,
    K_REPLICATION_FACTOR,
    K_CONTACT_POINTS,
    K_CLUSTER_NAME,
    K_ELECTION_TIMEOUT,
    K_HEARTBEAT_INTERVAL,
    K_PRIORITY_ELECTION,
    K_REGIONS,
    K_REGION_ID,
    K_POD_ORDINAL,
    K_NODE_ID_FROM_HOSTNAME,
    K_CONTACT_POINTS_TEMPLATE,
    K_REGION_NAMESPACES,
    K_HOST,
    K_ADVERTISED_HOST,
    K_COMMAND_API_PORT,
    K_INTERNAL_API_PORT,
    K_MAX_MESSAGE_SIZE,
    K_GATEWAY_ENABLE,
    K_GATEWAY_PORT,
    K_REST_PORT,
    K_MANAGEMENT_PORT,
    K_DATA_DIRECTORY,
    K_SNAPSHOT_PERIOD,
    K_LOG_SEGMENT_SIZE,
    K_HOSTNAME,
    KEY_COUNT
};

struct key {
    const char *path; /* below tandem.broker, camelCase */
    enum key_type type;
    size_t offset;      /* of the field in struct broker_config */
    size_t size;        /* TYPE_STRING: capacity including the NUL */
    size_t flag_offset; /* TYPE_OPT_UINT: the "set" bool */
    uint64_t min;       /* numeric types: inclusive range */
    uint64_t max;
};

#define FIELD(f) offsetof(struct broker_config, f)
#define STR(f) FIELD(f), sizeof(((struct broker_config *)0)->f), 0, 0, 0
#define NUM(f, lo, hi) FIELD(f), 0, 0, (lo), (hi)
#define MS(n) ((uint64_t)(n))
#define SECONDS(n) (MS(n) * 1000)
#define KIB(n) ((uint64_t)(n)*1024)
#define MIB(n) (KIB(n) * 1024)
#define GIB(n) (MIB(n) * 1024)

static const struct key keys[KEY_COUNT] = {
    [K_NODE_ID] = {"cluster.nodeId", TYPE_UINT,
                   NUM(node_id, 0, BROKER_CLUSTER_SIZE_MAX - 1)},
    [K_CLUSTER_SIZE] = {"cluster.clusterSize", TYPE_UINT,
                        NUM(cluster_size, 1, BROKER_CLUSTER_SIZE_MAX)},
    [K_PARTITIONS_COUNT] = {"cluster.partitionsCount", TYPE_UINT,
                            NUM(partitions_count, 1, BROKER_PARTITIONS_MAX)},
    [K_REPLICATION_FACTOR] = {"cluster.replicationFactor", TYPE_UINT,
                              NUM(replication_factor, 1, BROKER_REPLICAS_MAX)},
    [K_CONTACT_POINTS] = {"cluster.initialContactPoints", TYPE_CONTACTS,
                          NUM(contact_points, 0, 0)},
    [K_CLUSTER_NAME] = {"cluster.clusterName", TYPE_STRING, STR(cluster_name)},
    [K_ELECTION_TIMEOUT] = {"cluster.electionTimeout", TYPE_DURATION,
                            NUM(election_timeout_ms, 1, SECONDS(3600))},
    [K_HEARTBEAT_INTERVAL] = {"cluster.heartbeatInterval", TYPE_DURATION,
                              NUM(heartbeat_interval_ms, 1, SECONDS(3600))},
    [K_PRIORITY_ELECTION] = {"cluster.raft.enablePriorityElection", TYPE_BOOL,
                             NUM(priority_election, 0, 1)},
    [K_REGIONS] = {"cluster.regions", TYPE_UINT,
                   NUM(regions, 1, BROKER_CONFIG_REGIONS_MAX)},
    [K_REGION_ID] = {"cluster.regionId", TYPE_UINT,
                     NUM(region_id, 0, BROKER_CONFIG_REGIONS_MAX - 1)},
    [K_POD_ORDINAL] = {"cluster.podOrdinal", TYPE_OPT_UINT, FIELD(pod_ordinal),
                       0, FIELD(pod_ordinal_set), 0,
                       BROKER_CLUSTER_SIZE_MAX - 1},
    [K_NODE_ID_FROM_HOSTNAME] = {"cluster.nodeIdFromHostname", TYPE_BOOL,
                                 NUM(node_id_from_hostname, 0, 1)},
    [K_CONTACT_POINTS_TEMPLATE] = {"cluster.initialContactPointsTemplate",
                                   TYPE_STRING, STR(contact_point_template)},
    [K_REGION_NAMESPACES] = {"cluster.regionNamespaces", TYPE_NAMES,
                             NUM(region_namespaces, 0, 0)},
    [K_HOST] = {"network.host", TYPE_STRING, STR(host)},
    [K_ADVERTISED_HOST] = {"network.advertisedHost", TYPE_STRING,
                           STR(advertised_host)},
    [K_COMMAND_API_PORT] = {"network.commandApi.port", TYPE_PORT,
                            NUM(command_api_port, 1, 65535)},
    [K_INTERNAL_API_PORT] = {"network.internalApi.port", TYPE_PORT,
                             NUM(internal_api_port, 1, 65535)},
    [K_MAX_MESSAGE_SIZE] = {"network.maxMessageSize", TYPE_SIZE,
                            NUM(max_message_bytes, KIB(4), GIB(1))},
    [K_GATEWAY_ENABLE] = {"gateway.enable", TYPE_BOOL,
                          NUM(gateway_enable, 0, 1)},
    [K_GATEWAY_PORT] = {"gateway.network.port", TYPE_PORT,
                        NUM(gateway_port, 1, 65535)},
    [K_REST_PORT] = {"server.port", TYPE_PORT, NUM(rest_port, 1, 65535)},
    [K_MANAGEMENT_PORT] = {"management.server.port", TYPE_PORT,
                           NUM(management_port, 1, 65535)},
    [K_DATA_DIRECTORY] = {"data.directory", TYPE_STRING, STR(data_directory)},
    [K_SNAPSHOT_PERIOD] = {"data.snapshotPeriod", TYPE_DURATION,
                           NUM(snapshot_period_ms, 1,
                               BROKER_CONFIG_DURATION_MS_MAX)},
    [K_LOG_SEGMENT_SIZE] = {"data.logSegmentSize", TYPE_SIZE,
                            NUM(log_segment_bytes, MIB(1), GIB(16))},
    [K_HOSTNAME] = {"hostname", TYPE_STRING, STR(hostname)},
};

_Static_assert(BROKER_CLUSTER_SIZE_MAX - 1 <= BROKER_NODE_ID_MAX,
               "every valid nodeId must be a valid placement member id");
_Static_assert(BROKER_CONFIG_DURATION_MS_MAX < UINT64_MAX / 1000,
               "durations must not overflow in microseconds");

/* ------------------------------------------------------------------------
 * Origins and error reports
 * --------------------------------------------------------------------- */

enum origin_kind { ORIGIN_DEFAULT, ORIGIN_YAML, ORIGIN_ENV };

/* Where a key's current value came from. */
struct origin {
    enum origin_kind kind;
    size_t line;         /* ORIGIN_YAML: 1-based */
    size_t column;       /* ORIGIN_YAML: 1-based */
    const char *env;     /* ORIGIN_ENV: borrowed "NAME=value" */
    size_t env_name_len; /* ORIGIN_ENV: length of NAME */
};

/* The state of one load: the output, the error buffer, the origins. */
struct load {
    struct broker_config *cfg;
    char *err;
    size_t err_len;
    const char *source;               /* name of the YAML document */
    struct origin origins[KEY_COUNT]; /* per key, ORIGIN_DEFAULT if unset */
};

#if defined(__GNUC__)
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define PRINTF_LIKE(f, a)
#endif

static void report_v(char *err, size_t err_len, const char *fmt, va_list ap)
    PRINTF_LIKE(3, 0);
static void report_v(char *err, size_t err_len, const char *fmt, va_list ap)
{
    if (err == NULL || err_len == 0) {
        return;
    }
    vsnprintf(err, err_len, fmt, ap);
}

static void report(char *err, size_t err_len, const char *fmt, ...)
    PRINTF_LIKE(3, 4);
static void report(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report_v(err, err_len, fmt, ap);
    va_end(ap);
}

/* Formats "(file:L:C)" or "(env NAME)" for an origin, or "" by default. */
static void origin_format(char *buf, size_t cap, const struct origin *o,
                          const char *source)
{
    assert(cap > 0);
    buf[0] = '\0';
    if (o == NULL || o->kind == ORIGIN_DEFAULT) {
        return;
    }
    if (o->kind == ORIGIN_YAML) {
        snprintf(buf, cap, " (%s:%zu:%zu)", source, o->line, o->column);
        return;
    }
    assert(o->kind == ORIGIN_ENV);
    snprintf(buf, cap, " (env %.*s)", (int)o->env_name_len, o->env);
}

/* Writes "config: tandem.broker.<key> (origin): <message>" and returns
 * code. origins may be NULL (validation of a caller-filled struct). */
static int key_fail(char *err, size_t err_len, const struct origin *origins,
                    const char *source, enum key_id id, int code,
                    const char *fmt, ...) PRINTF_LIKE(7, 8);
static int key_fail(char *err, size_t err_len, const struct origin *origins,
                    const char *source, enum key_id id, int code,
                    const char *fmt, ...)
{
    char where[ENV_NAME_MAX + 64 + 2 * 24];
    char msg[512];
    va_list ap;

    assert(id < KEY_COUNT);
    assert(code < 0);
    origin_format(where, sizeof(where), origins != NULL ? &origins[id] : NULL,
                  source);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    report(err, err_len, "config: " ROOT "%s%s: %s", keys[id].path, where, msg);
    return code;
}

/* Copies text[0..len-1] into buf for an error message: printable ASCII is
 * kept, other bytes become '?', and long values are cut with "...". */
static void value_show(char *buf, size_t cap, const char *text, size_t len)
{
    size_t n = 0;

    assert(cap > SHOWN_VALUE_MAX + 4);
    for (size_t k = 0; k < len && n < SHOWN_VALUE_MAX; k++) {
        unsigned char c = (unsigned char)text[k];
        buf[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (len > SHOWN_VALUE_MAX) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    assert(n < cap);
}

/* ------------------------------------------------------------------------
 * Value parsers (shared by YAML and environment)
 * --------------------------------------------------------------------- */

enum parse_result {
    PARSE_OK,
    PARSE_BAD,      /* not of the type */
    PARSE_RANGE,    /* of the type, outside the key's range */
    PARSE_FRACTION, /* a duration that is not a whole number of ms */
};

static int ascii_lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

static int ascii_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* Case-insensitive comparison of text[0..len-1] with NUL-terminated word. */
static int word_equal(const char *text, size_t len, const char *word)
{
    size_t n = strlen(word);
    if (n != len) {
        return 0;
    }
    for (size_t k = 0; k < n; k++) {
        if (ascii_lower((unsigned char)text[k]) != word[k]) {
            return 0;
        }
    }
    return 1;
}

/* Parses decimal digits text[*pos..] into *out (at least one digit).
 * Returns PARSE_RANGE on overflow of limit, PARSE_BAD without digits. */
static enum parse_result digits_parse(const char *text, size_t len, size_t *pos,
                                      uint64_t limit, uint64_t *out,
                                      size_t *count)
{
    uint64_t v = 0;
    size_t start = *pos;
    enum parse_result rv = PARSE_OK;

    while (*pos < len && ascii_digit((unsigned char)text[*pos])) {
        uint64_t d = (uint64_t)(text[*pos] - '0');
        if (v > (limit - d) / 10) {
            rv = PARSE_RANGE; /* keep scanning so the syntax is checked */
        } else {
            v = v * 10 + d;
        }
        (*pos)++;
    }
    if (*pos == start) {
        return PARSE_BAD;
    }
    *out = v;
    if (count != NULL) {
        *count = *pos - start;
    }
    return rv;
}

/* An unsigned decimal integer, with an optional '+'. A '-' before digits
 * is a range error (it is a number, just not one we accept). */
static enum parse_result uint_parse(const char *text, size_t len, uint64_t min,
                                    uint64_t max, uint64_t *out)
{
    size_t pos = 0;
    enum parse_result rv;
    int negative = 0;

    if (pos < len && (text[pos] == '+' || text[pos] == '-')) {
        negative = text[pos] == '-';
        pos++;
    }
    rv = digits_parse(text, len, &pos, UINT64_MAX, out, NULL);
    if (rv == PARSE_BAD || pos != len) {
        return PARSE_BAD;
    }
    if (rv == PARSE_RANGE || (negative && *out != 0)) {
        return PARSE_RANGE;
    }
    return (*out < min || *out > max) ? PARSE_RANGE : PARSE_OK;
}

/* true/false, and Spring's yes/no, on/off, 1/0; any case. */
static enum parse_result bool_parse(const char *text, size_t len, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};

    for (size_t k = 0; k < sizeof(yes) / sizeof(yes[0]); k++) {
        if (word_equal(text, len, yes[k])) {
            *out = true;
            return PARSE_OK;
        }
        if (word_equal(text, len, no[k])) {
            *out = false;
            return PARSE_OK;
        }
    }
    return PARSE_BAD;
}

/* A duration: digits, an optional fraction, an optional unit out of ms, s,
 * m, h, d (any case; none means ms). The result must be a whole number of
 * milliseconds ("1.5ms" is rejected) within [min, max]. */
static enum parse_result duration_parse(const char *text, size_t len,
                                        uint64_t min, uint64_t max,
                                        uint64_t *out_ms)
{
    static const struct {
        const char *name;
        uint64_t ms;
    } units[] = {
        {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    size_t pos = 0;
    uint64_t whole = 0;
    uint64_t frac = 0;
    size_t frac_digits = 0;
    uint64_t unit = 0;
    enum parse_result rv;
    int over = 0;

    if (pos < len && text[pos] == '+') {
        pos++;
    }
    if (pos < len && text[pos] == '-') {
        return PARSE_RANGE;
    }
    rv = digits_parse(text, len, &pos, BROKER_CONFIG_DURATION_MS_MAX * 1000,
                      &whole, NULL);
    if (rv == PARSE_BAD) {
        return PARSE_BAD;
    }
    over = rv == PARSE_RANGE;
    if (pos < len && text[pos] == '.') {
        pos++;
        rv = digits_parse(text, len, &pos, UINT64_MAX, &frac, &frac_digits);
        if (rv == PARSE_BAD || frac_digits > 9) {
            return PARSE_BAD;
        }
    }
    if (pos == len) {
        unit = 1;
    }
    for (size_t k = 0; unit == 0 && k < sizeof(units) / sizeof(units[0]); k++) {
        if (word_equal(text + pos, len - pos, units[k].name)) {
            unit = units[k].ms;
        }
    }
    if (unit == 0) {
        return PARSE_BAD;
    }
    if (over || whole > BROKER_CONFIG_DURATION_MS_MAX / unit) {
        return PARSE_RANGE;
    }
    {
        uint64_t scale = 1;
        uint64_t part;
        for (size_t k = 0; k < frac_digits; k++) {
            scale *= 10;
        }
        part = frac * unit; /* < 10^9 * 8.64e7, fits */
        if (part % scale != 0) {
            return PARSE_FRACTION;
        }
        *out_ms = whole * unit + part / scale;
    }
    return (*out_ms < min || *out_ms > max) ? PARSE_RANGE : PARSE_OK;
}

/* A size: digits and an optional unit out of B, KB, MB, GB, TB (any case,
 * binary multiples as in Spring's DataSize; none means bytes). */
static enum parse_result size_parse(const char *text, size_t len, uint64_t min,
                                    uint64_t max, uint64_t *out)
{
    static const struct {
        const char *name;
        uint64_t bytes;
    } units[] = {{"b", 1},
                 {"kb", KIB(1)},
                 {"mb", MIB(1)},
                 {"gb", GIB(1)},
                 {"tb", GIB(1024)}};
    size_t pos = 0;
    uint64_t n = 0;
    uint64_t unit = 0;
    enum parse_result rv;

    if (pos < len && text[pos] == '+') {
        pos++;
    }
    if (pos < len && text[pos] == '-') {
        return PARSE_RANGE;
    }
    rv = digits_parse(text, len, &pos, UINT64_MAX, &n, NULL);
    if (rv == PARSE_BAD) {
        return PARSE_BAD;
    }
    if (pos == len) {
        unit = 1;
    }
    for (size_t k = 0; unit == 0 && k < sizeof(units) / sizeof(units[0]); k++) {
        if (word_equal(text + pos, len - pos, units[k].name)) {
            unit = units[k].bytes;
        }
    }
    if (unit == 0) {
        return PARSE_BAD;
    }
    if (rv == PARSE_RANGE || n > UINT64_MAX / unit) {
        return PARSE_RANGE;
    }
    *out = n * unit;
    return (*out < min || *out > max) ? PARSE_RANGE : PARSE_OK;
}

/* Valid UTF-8 without control characters (so that print can emit it
 * inside a YAML double-quoted scalar and read it back). */
static int text_clean(const char *text, size_t len)
{
    size_t k = 0;

    while (k < len) {
        unsigned char c = (unsigned char)text[k];
        size_t extra;
        uint32_t cp;
        if (c < 0x20 || c == 0x7f) {
            return 0;
        }
        if (c < 0x80) {
            k++;
            continue;
        }
        if ((c & 0xe0) == 0xc0) {
            extra = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            extra = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            extra = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (len - k <= extra) {
            return 0;
        }
        for (size_t j = 1; j <= extra; j++) {
            unsigned char cc = (unsigned char)text[k + j];
            if ((cc & 0xc0) != 0x80) {
                return 0;
            }
            cp = (cp << 6) | (cc & 0x3f);
        }
        if ((extra == 1 && cp < 0x80) || (extra == 2 && cp < 0x800) ||
            (extra == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp < 0xa0) ||
            cp == 0xfeff || cp == 0x2028 || cp == 0x2029) {
            /* overlong, out of range, surrogate, C1, BOM, and the line
             * and paragraph separators that YAML treats as line breaks */
            return 0;
        }
        k += extra + 1;
    }
    return 1;
}

/* A host name or IP literal: letters, digits, '.', '-', '_' and ':' (an
 * IPv6 literal), 1..BROKER_CONFIG_HOST_MAX characters. */
static int host_valid(const char *host, size_t len)
{
    if (len == 0 || len > BROKER_CONFIG_HOST_MAX) {
        return 0;
    }
    for (size_t k = 0; k < len; k++) {
        unsigned char c = (unsigned char)host[k];
        if (!(ascii_digit(c) || (c >= 'a' && c <= 'z') ||
              (c >= 'A' && c <= 'Z') || c == '.' || c == '-' || c == '_' ||
              c == ':')) {
            return 0;
        }
    }
    return 1;
}

/* A Kubernetes namespace: an RFC 1123 label (lower-case letters, digits
 * and '-', starting and ending with a letter or digit, 1 to
 * BROKER_CONFIG_NAMESPACE_MAX characters). */
static int label_valid(const char *text, size_t len)
{
    if (len == 0 || len > BROKER_CONFIG_NAMESPACE_MAX) {
        return 0;
    }
    for (size_t k = 0; k < len; k++) {
        unsigned char c = (unsigned char)text[k];
        int alnum = ascii_digit(c) || (c >= 'a' && c <= 'z');
        if (!alnum && !(c == '-' && k > 0 && k + 1 < len)) {
            return 0;
        }
    }
    return 1;
}

/* "host:port" or "[ipv6]:port", port 1..65535. */
static int contact_parse(const char *text, size_t len,
                         struct broker_contact_point *out)
{
    size_t colon = len;
    const char *host = text;
    size_t host_len;
    uint64_t port;

    while (colon > 0 && text[colon - 1] != ':') {
        colon--;
    }
    if (colon == 0) {
        return 0;
    }
    colon--; /* index of the last ':' */
    host_len = colon;
    if (host_len >= 2 && text[0] == '[' && text[host_len - 1] == ']') {
        host++;
        host_len -= 2;
    } else if (memchr(text, ':', colon) != NULL) {
        return 0; /* an IPv6 literal needs brackets */
    }
    if (!host_valid(host, host_len)) {
        return 0;
    }
    if (uint_parse(text + colon + 1, len - colon - 1, 1, 65535, &port) !=
        PARSE_OK) {
        return 0;
    }
    memset(out, 0, sizeof(*out));
    memcpy(out->host, host, host_len);
    out->port = (uint16_t)port;
    return 1;
}

/* ------------------------------------------------------------------------
 * Setting a key
 * --------------------------------------------------------------------- */

static const char *type_name(enum key_type type)
{
    switch (type) {
    case TYPE_UINT:
    case TYPE_OPT_UINT:
        return "an unsigned integer";
    case TYPE_PORT:
        return "a port number";
    case TYPE_BOOL:
        return "a boolean (true or false)";
    case TYPE_DURATION:
        return "a duration such as 2500ms, 2.5s, 1m, 1h or 1d";
    case TYPE_SIZE:
        return "a size such as 4096, 64KB, 4MB or 1GB";
    case TYPE_STRING:
        return "a string";
    case TYPE_CONTACTS:
        return "a list of host:port";
    case TYPE_NAMES:
        return "a list of namespace names";
    }
    return "?";
}

/* Formats a key's range for messages, in the key's unit. */
static void range_format(char *buf, size_t cap, const struct key *k)
{
    if (k->type == TYPE_DURATION) {
        snprintf(buf, cap, "between %llums and %llums",
                 (unsigned long long)k->min, (unsigned long long)k->max);
    } else if (k->type == TYPE_SIZE) {
        snprintf(buf, cap, "between %llu and %llu bytes",
                 (unsigned long long)k->min, (unsigned long long)k->max);
    } else {
        snprintf(buf, cap, "between %llu and %llu", (unsigned long long)k->min,
                 (unsigned long long)k->max);
    }
}

static void *field(struct broker_config *cfg, const struct key *k)
{
    return (char *)cfg + k->offset;
}

/* Empties the list of key id (TYPE_CONTACTS or TYPE_NAMES). */
static void list_clear(struct broker_config *cfg, enum key_id id)
{
    if (keys[id].type == TYPE_CONTACTS) {
        memset(cfg->contact_points, 0, sizeof(cfg->contact_points));
        cfg->contact_point_count = 0;
    } else {
        assert(keys[id].type == TYPE_NAMES);
        memset(cfg->region_namespaces, 0, sizeof(cfg->region_namespaces));
        cfg->region_namespace_count = 0;
    }
}

/* Appends one entry given as text to the list of key id: a host:port to
 * K_CONTACT_POINTS, a namespace to K_REGION_NAMESPACES. */
static int list_add(struct load *ld, enum key_id id, const char *text,
                    size_t len)
{
    struct broker_config *cfg = ld->cfg;
    char shown[SHOWN_VALUE_MAX + 8];

    if (keys[id].type == TYPE_NAMES) {
        if (cfg->region_namespace_count == BROKER_CONFIG_REGIONS_MAX) {
            return key_fail(ld->err, ld->err_len, ld->origins, ld->source, id,
                            BROKER_CONFIG_E_INVALID,
                            "more than %d entries (one per region)",
                            BROKER_CONFIG_REGIONS_MAX);
        }
        if (!label_valid(text, len)) {
            value_show(shown, sizeof(shown), text, len);
            return key_fail(ld->err, ld->err_len, ld->origins, ld->source, id,
                            BROKER_CONFIG_E_TYPE,
                            "expected a namespace name (lower-case letters, "
                            "digits and '-', at most %d characters), got "
                            "\"%s\"",
                            BROKER_CONFIG_NAMESPACE_MAX, shown);
        }
        memcpy(cfg->region_namespaces[cfg->region_namespace_count], text, len);
        cfg->region_namespace_count++;
        return 0;
    }
    assert(keys[id].type == TYPE_CONTACTS);
    if (cfg->contact_point_count == BROKER_CONFIG_CONTACT_POINTS_MAX) {
        return key_fail(ld->err, ld->err_len, ld->origins, ld->source, id,
                        BROKER_CONFIG_E_INVALID, "more than %d entries",
                        BROKER_CONFIG_CONTACT_POINTS_MAX);
    }
    if (!contact_parse(text, len,
                       &cfg->contact_points[cfg->contact_point_count])) {
        value_show(shown, sizeof(shown), text, len);
        return key_fail(ld->err, ld->err_len, ld->origins, ld->source, id,
                        BROKER_CONFIG_E_TYPE,
                        "expected host:port (IPv6 as [addr]:port, port "
                        "1..65535), got \"%s\"",
                        shown);
    }
    cfg->contact_point_count++;
    return 0;
}

/* Sets the list of key id from a comma-separated string (the form used by
 * environment variables and accepted as a YAML scalar). Spaces around
 * entries are ignored; an empty string is an empty list. */
static int list_set_csv(struct load *ld, enum key_id id, const char *text,
                        size_t len)
{
    size_t start = 0;
    int rv;

    list_clear(ld->cfg, id);
    while (len > 0 && text[len - 1] == ' ') {
        len--;
    }
    while (start < len && text[start] == ' ') {
        start++;
    }
    if (start == len) {
        return 0;
    }
    for (;;) {
        size_t end = start;
        size_t a = start;
        size_t b;
        while (end < len && text[end] != ',') {
            end++;
        }
        b = end;
        while (a < b && text[a] == ' ') {
            a++;
        }
        while (b > a && text[b - 1] == ' ') {
            b--;
        }
        rv = list_add(ld, id, text + a, b - a);
        if (rv != 0) {
            return rv;
        }
        if (end == len) {
            return 0;
        }
        start = end + 1;
    }
}

/* Parses text[0..len-1] as the value of key id and stores it. The origin
 * of the key must already be set (messages name it). */
static int key_set(struct load *ld, enum key_id id, const char *text,
                   size_t len)
{
    const struct key *k = &keys[id];
    struct broker_config *cfg = ld->cfg;
    enum parse_result pr = PARSE_BAD;
    char shown[SHOWN_VALUE_MAX + 8];
    char range[96];
    uint64_t v = 0;
    bool b = false;

    assert(id < KEY_COUNT);
    value_show(shown, sizeof(shown), text, len);
    if (memchr(text, '\0', len) != NULL) {
        return key_fail(ld->err, ld->err_len, ld->origins, ld->source, id,
                        BROKER_CONFIG_E_TYPE, "value contains a NUL byte");
    }
    switch (k->type) {
    case TYPE_UINT:
    case TYPE_OPT_UINT:
    case TYPE_PORT:
        pr = uint_parse(text, len, k->min, k->max, &v);
        break;
    case TYPE_BOOL:
        pr = bool_parse(text, len, &b);
        break;
    case TYPE_DURATION:
        pr = duration_parse(text, len, k->min, k->max, &v);
        break;
    case TYPE_SIZE:
        pr = size_parse(text, len, k->min, k->max, &v);
        break;
    case TYPE_STRING:
        if (len >= k->size) {
            return key_fail(ld->err, ld->err_len, ld->origins, ld->source, id,
                            BROKER_CONFIG_E_TYPE, "longer than %zu bytes",
                            k->size - 1);
        }
        if (!text_clean(text, len)) {
            return key_fail(ld->err, ld->err_len, ld->origins, ld->source, id,
                            BROKER_CONFIG_E_TYPE,
                            "not valid UTF-8 text without control "
                            "characters: \"%s\"",
                            shown);
        }
        memset(field(cfg, k), 0, k->size);
        memcpy(field(cfg, k), text, len);
        return 0;
    case TYPE_CONTACTS:
    case TYPE_NAMES:
        return list_set_csv(ld, id, text, len);
    }
    if (pr == PARSE_BAD) {
        return key_fail(ld->err, ld->err_len, ld->origins, ld->source, id,
                        BROKER_CONFIG_E_TYPE, "expected %s, got \"%s\"",
                        type_name(k->type), shown);
    }
    if (pr == PARSE_FRACTION) {
        return key_fail(ld->err, ld->err_len, ld->origins, ld->source, id,
                        BROKER_CONFIG_E_INVALID,
                        "must be a whole number of milliseconds, got %s",
                        shown);
    }
    if (pr == PARSE_RANGE) {
        range_format(range, sizeof(range), k);
        return key_fail(ld->err, ld->err_len, ld->origins, ld->source, id,
                        BROKER_CONFIG_E_INVALID, "must be %s, got %s", range,
                        shown);
    }
    switch (k->type) {
    case TYPE_OPT_UINT:
        *(bool *)((char *)cfg + k->flag_offset) = true;
        *(uint32_t *)field(cfg, k) = (uint32_t)v;
        break;
    case TYPE_UINT:
        *(uint32_t *)field(cfg, k) = (uint32_t)v;
        break;
    case TYPE_PORT:
        *(uint16_t *)field(cfg, k) = (uint16_t)v;
        break;
    case TYPE_BOOL:
        *(bool *)field(cfg, k) = b;
        break;
    case TYPE_DURATION:
    case TYPE_SIZE:
        *(uint64_t *)field(cfg, k) = v;
        break;
    case TYPE_STRING:
    case TYPE_CONTACTS:
    case TYPE_NAMES:
        assert(0);
        break;
    }
    assert(v >= k->min);
    assert(v <= k->max);
    return 0;
}

/* ------------------------------------------------------------------------
 * Defaults
 * --------------------------------------------------------------------- */

void broker_config_default(struct broker_config *cfg)
{
    assert(cfg != NULL);
    memset(cfg, 0, sizeof(*cfg));
    cfg->node_id = 0;
    cfg->cluster_size = 1;
    cfg->partitions_count = 1;
    cfg->replication_factor = 1;
    snprintf(cfg->cluster_name, sizeof(cfg->cluster_name), "zeebe-cluster");
    cfg->election_timeout_ms = 2500;
    cfg->heartbeat_interval_ms = 250;
    cfg->priority_election = true;
    cfg->regions = 1;
    cfg->region_id = 0;
    snprintf(cfg->host, sizeof(cfg->host), "0.0.0.0");
    cfg->command_api_port = BROKER_CONFIG_COMMAND_API_PORT;
    cfg->internal_api_port = BROKER_CONFIG_INTERNAL_API_PORT;
    cfg->max_message_bytes = MIB(4);
    cfg->gateway_enable = true;
    cfg->gateway_port = BROKER_CONFIG_GATEWAY_PORT;
    cfg->rest_port = BROKER_CONFIG_REST_PORT;
    cfg->management_port = BROKER_CONFIG_MANAGEMENT_PORT;
    snprintf(cfg->data_directory, sizeof(cfg->data_directory), "data");
    cfg->snapshot_period_ms = SECONDS(300);
    cfg->log_segment_bytes = MIB(128);
    assert(broker_config_validate(cfg, NULL, 0) == 0);
}

/* ------------------------------------------------------------------------
 * YAML
 * --------------------------------------------------------------------- */

/* Canonical form of a key path for matching: lower case, '-' and '_'
 * dropped (Spring's relaxed binding accepts nodeId, node-id, node_id). */
static int path_match(const char *a, size_t a_len, const char *b)
{
    size_t i = 0;
    size_t j = 0;
    size_t b_len = strlen(b);

    for (;;) {
        while (i < a_len && (a[i] == '-' || a[i] == '_')) {
            i++;
        }
        while (j < b_len && (b[j] == '-' || b[j] == '_')) {
            j++;
        }
        if (i == a_len || j == b_len) {
            return i == a_len && j == b_len;
        }
        if (ascii_lower((unsigned char)a[i]) !=
            ascii_lower((unsigned char)b[j])) {
            return 0;
        }
        i++;
        j++;
    }
}

/* The key whose full path (tandem.broker.<path>) matches, or -1. */
static int key_find(const char *path, size_t len)
{
    size_t root_len = strlen(ROOT);

    if (len <= root_len || !path_match(path, root_len - 1, "tandem.broker") ||
        path[root_len - 1] != '.') {
        return -1;
    }
    for (int id = 0; id < KEY_COUNT; id++) {
        if (path_match(path + root_len, len - root_len, keys[id].path)) {
            return id;
        }
    }
    return -1;
}

/* Whether path is tandem, tandem.broker, or a section above some key
 * (e.g. tandem.broker.cluster.raft). */
static int section_find(const char *path, size_t len)
{
    char full[KEY_PATH_MAX];

    for (int id = 0; id < KEY_COUNT; id++) {
        int n = snprintf(full, sizeof(full), ROOT "%s", keys[id].path);
        assert(n > 0 && (size_t)n < sizeof(full));
        for (size_t cut = 1; cut < (size_t)n; cut++) {
            if (full[cut] == '.') {
                char save = full[cut];
                int match;
                full[cut] = '\0';
                match = path_match(path, len, full);
                full[cut] = save;
                if (match) {
                    return 1;
                }
            }
        }
    }
    return 0;
}

/* A walk over the events of one YAML document. */
struct walk {
    struct load *ld;
    yaml_parser_t parser;
    char path[KEY_PATH_MAX]; /* dotted path of the current node */
    size_t path_len;
    yaml_mark_t key_mark;     /* where the current path's last key is */
    bool yaml_set[KEY_COUNT]; /* key given in the document already */
};

static int walk_syntax(struct walk *w)
{
    const yaml_parser_t *p = &w->parser;

    if (p->error == YAML_MEMORY_ERROR) {
        /* UNTESTED: needs an allocation failure inside libyaml */
        report(w->ld->err, w->ld->err_len, "config: %s: out of memory",
               w->ld->source);
        return BROKER_CONFIG_E_NOMEM;
    }
    if (p->context != NULL) {
        report(w->ld->err, w->ld->err_len,
               "config: %s:%zu:%zu: YAML syntax error: %s (%s at line %zu "
               "column %zu)",
               w->ld->source, p->problem_mark.line + 1,
               p->problem_mark.column + 1,
               p->problem != NULL ? p->problem : "malformed", p->context,
               p->context_mark.line + 1, p->context_mark.column + 1);
    } else {
        report(w->ld->err, w->ld->err_len,
               "config: %s:%zu:%zu: YAML syntax error: %s", w->ld->source,
               p->problem_mark.line + 1, p->problem_mark.column + 1,
               p->problem != NULL ? p->problem : "malformed");
    }
    return BROKER_CONFIG_E_SYNTAX;
}

/* Reads the next event; on failure reports the libyaml problem. */
static int walk_next(struct walk *w, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&w->parser, ev)) {
        return walk_syntax(w);
    }
    return 0;
}

/* An error about the current path (located at its last key), or, with
 * no path yet, about the node at ev. */
static int walk_fail(struct walk *w, const yaml_event_t *ev, int code,
                     const char *msg)
{
    char shown[SHOWN_VALUE_MAX + 8];
    const yaml_mark_t *m = w->path_len > 0 ? &w->key_mark : &ev->start_mark;

    value_show(shown, sizeof(shown), w->path, w->path_len);
    report(w->ld->err, w->ld->err_len, "config: %s (%s:%zu:%zu): %s",
           w->path_len > 0 ? shown : "<document>", w->ld->source, m->line + 1,
           m->column + 1, msg);
    return code;
}

/* An error about one element of a list, located at the element. */
static int walk_item_fail(struct walk *w, const yaml_event_t *ev, int code,
                          const char *msg)
{
    char shown[SHOWN_VALUE_MAX + 8];

    value_show(shown, sizeof(shown), w->path, w->path_len);
    report(w->ld->err, w->ld->err_len, "config: %s (%s:%zu:%zu): %s", shown,
           w->ld->source, ev->start_mark.line + 1, ev->start_mark.column + 1,
           msg);
    return code;
}

static int scalar_null(const yaml_event_t *ev)
{
    const char *v = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;

    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        return 0;
    }
    return n == 0 || (n == 1 && v[0] == '~') || word_equal(v, n, "null");
}

/* Resolves the current path to a key for a value node at ev, marking the
 * key as given in YAML. Returns the key id, or a negative error. A null
 * value on a section path (e.g. "cluster:" with nothing below) returns
 * KEY_COUNT: nothing to set. */
static int walk_key(struct walk *w, const yaml_event_t *ev, int is_null)
{
    int id = key_find(w->path, w->path_len);
    struct origin *o;

    if (id < 0) {
        if (section_find(w->path, w->path_len)) {
            if (is_null) {
                return KEY_COUNT;
            }
            return walk_fail(w, ev, BROKER_CONFIG_E_TYPE,
                             "is a section: expected a mapping");
        }
        return walk_fail(w, ev, BROKER_CONFIG_E_UNKNOWN_KEY, "unknown key");
    }
    if (w->yaml_set[id]) {
        return walk_fail(w, ev, BROKER_CONFIG_E_SYNTAX,
                         "key given more than once");
    }
    w->yaml_set[id] = true;
    o = &w->ld->origins[id];
    memset(o, 0, sizeof(*o));
    o->kind = ORIGIN_YAML;
    o->line = w->key_mark.line + 1;
    o->column = w->key_mark.column + 1;
    return id;
}


/* ------------------------------------------------------------------------
 * Exporters: exporters.<id>.type | .path | .args.<key...> (a map of
 * arbitrary ids, so not rows of the key table)
 * --------------------------------------------------------------------- */

/* Splits a flattened path into at most max segments (pointers into path,
 * lengths in lens); returns the count, or max + 1 when there are more. */
static size_t path_split(const char *path, size_t len, const char **segs,
                         size_t *lens, size_t max)
{
    size_t n = 0;
    size_t start = 0;

    for (size_t i = 0; i <= len; i++) {
        if (i == len || path[i] == '.') {
            if (n == max) {
                return max + 1;
            }
            segs[n] = path + start;
            lens[n] = i - start;
            n++;
            start = i + 1;
        }
    }
    return n;
}

/* Whether path is tandem.broker.exporters or below it. */
static bool path_is_exporters(const char *path, size_t len)
{
    const char *segs[4];
    size_t lens[4];
    size_t n = path_split(path, len, segs, lens, 3);

    if (n < 3) {
        return false;
    }
    return path_match(segs[0], lens[0], "tandem") &&
           path_match(segs[1], lens[1], "broker") &&
           path_match(segs[2], lens[2], "exporters");
}

/* The exporter with this id (made lower case), added if new. */
static int exporter_find(struct load *ld, const char *id, size_t id_len,
                         const char *where,
                         struct broker_exporter_config **out)
{
    char low[BROKER_EXPORTER_ID_MAX + 1];
    struct broker_config *cfg = ld->cfg;

    if (id_len == 0 || id_len > BROKER_EXPORTER_ID_MAX) {
        report(ld->err, ld->err_len,
               "config: %s: exporters: an exporter id must have 1 to %d "
               "characters", where, BROKER_EXPORTER_ID_MAX);
        return BROKER_CONFIG_E_INVALID;
    }
    for (size_t i = 0; i < id_len; i++) {
        int c = ascii_lower((unsigned char)id[i]);
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
            report(ld->err, ld->err_len,
                   "config: %s: exporters.%.*s: an exporter id may hold "
                   "letters, digits and '-' only",
                   where, (int)id_len, id);
            return BROKER_CONFIG_E_INVALID;
        }
        low[i] = (char)c;
    }
    low[id_len] = '\0';
    for (uint32_t i = 0; i < cfg->exporter_count; i++) {
        if (strcmp(cfg->exporters[i].id, low) == 0) {
            *out = &cfg->exporters[i];
            return 0;
        }
    }
    if (cfg->exporter_count == BROKER_EXPORTERS_MAX) {
        report(ld->err, ld->err_len,
               "config: %s: exporters.%s: more than %d exporters", where, low,
               BROKER_EXPORTERS_MAX);
        return BROKER_CONFIG_E_INVALID;
    }
    *out = &cfg->exporters[cfg->exporter_count++];
    memset(*out, 0, sizeof(**out));
    memcpy((*out)->id, low, id_len + 1);
    return 0;
}

/* Sets one exporter setting: field is "type", "path" or "args" (then
 * argkey is the flattened argument key). where names the origin. */
static int exporter_set(struct load *ld, const char *id, size_t id_len,
                        const char *field, size_t field_len,
                        const char *argkey, size_t argkey_len,
                        const char *value, size_t value_len,
                        const char *where)
{
    struct broker_exporter_config *x;
    int rv = exporter_find(ld, id, id_len, where, &x);

    if (rv != 0) {
        return rv;
    }
    if (memchr(value, '\0', value_len) != NULL ||
        value_len > BROKER_EXPORTER_TEXT_MAX) {
        report(ld->err, ld->err_len,
               "config: %s: exporters.%s.%.*s: the value must be text of at "
               "most %d bytes", where, x->id, (int)field_len, field,
               BROKER_EXPORTER_TEXT_MAX);
        return BROKER_CONFIG_E_TYPE;
    }
    if (argkey == NULL && path_match(field, field_len, "type")) {
        if (value_len >= sizeof(x->type)) {
            report(ld->err, ld->err_len,
                   "config: %s: exporters.%s.type: too long", where, x->id);
            return BROKER_CONFIG_E_TYPE;
        }
        memcpy(x->type, value, value_len);
        x->type[value_len] = '\0';
        return 0;
    }
    if (argkey == NULL && path_match(field, field_len, "path")) {
        memcpy(x->path, value, value_len);
        x->path[value_len] = '\0';
        return 0;
    }
    if (argkey != NULL && argkey_len > 0 &&
        path_match(field, field_len, "args")) {
        struct broker_exporter_arg *a = NULL;
        if (argkey_len >= sizeof(a->key)) {
            report(ld->err, ld->err_len,
                   "config: %s: exporters.%s.args: key too long", where,
                   x->id);
            return BROKER_CONFIG_E_TYPE;
        }
        for (uint32_t i = 0; i < x->arg_count; i++) {
            if (path_match(argkey, argkey_len, x->args[i].key)) {
                a = &x->args[i]; /* the environment overrides YAML */
            }
        }
        if (a == NULL) {
            if (x->arg_count == BROKER_EXPORTER_ARGS_MAX) {
                report(ld->err, ld->err_len,
                       "config: %s: exporters.%s.args: more than %d "
                       "arguments", where, x->id, BROKER_EXPORTER_ARGS_MAX);
                return BROKER_CONFIG_E_INVALID;
            }
            a = &x->args[x->arg_count++];
        }
        memcpy(a->key, argkey, argkey_len);
        a->key[argkey_len] = '\0';
        memcpy(a->value, value, value_len);
        a->value[value_len] = '\0';
        return 0;
    }
    report(ld->err, ld->err_len,
           "config: %s: exporters.%s.%.*s: unknown key (an exporter takes "
           "type, path and args.*)", where, x->id, (int)field_len, field);
    return BROKER_CONFIG_E_UNKNOWN_KEY;
}

/* A YAML scalar under tandem.broker.exporters. */
static int exporter_yaml(struct walk *w, const yaml_event_t *ev)
{
    const char *segs[DEPTH_MAX + 2];
    size_t lens[DEPTH_MAX + 2];
    size_t n = path_split(w->path, w->path_len, segs, lens, DEPTH_MAX + 1);
    char where[160];
    const char *argkey = NULL;
    size_t argkey_len = 0;

    snprintf(where, sizeof(where), "%s:%zu:%zu", w->ld->source,
             (size_t)w->key_mark.line + 1, (size_t)w->key_mark.column + 1);
    if (n < 5 || n > DEPTH_MAX + 1) {
        report(w->ld->err, w->ld->err_len,
               "config: %s: %s: expected exporters.<id>.type, .path or "
               ".args.<key>", where, w->path);
        return BROKER_CONFIG_E_UNKNOWN_KEY;
    }
    if (n > 5) {
        argkey = segs[5];
        argkey_len = (size_t)(w->path + w->path_len - segs[5]);
    }
    if (scalar_null(ev)) {
        return exporter_set(w->ld, segs[3], lens[3], segs[4], lens[4], argkey,
                            argkey_len, "", 0, where);
    }
    return exporter_set(w->ld, segs[3], lens[3], segs[4], lens[4], argkey,
                        argkey_len, (const char *)ev->data.scalar.value,
                        ev->data.scalar.length, where);
}

/* TANDEM_BROKER_EXPORTERS_<ID>_TYPE | _PATH | _ARGS_<KEY> (KEY's '_' are
 * '.', lower case). Returns 1 when name is not an exporter variable. */
static int exporter_env(struct load *ld, const char *entry, size_t name_len,
                        const char *value)
{
    static const char prefix[] = ENV_PREFIX "EXPORTERS_";
    size_t plen = sizeof(prefix) - 1;
    const char *id;
    const char *rest;
    const char *end = entry + name_len;
    char where[160];
    char argkey[128];
    size_t k = 0;

    if (name_len <= plen || strncmp(entry, prefix, plen) != 0) {
        return 1;
    }
    snprintf(where, sizeof(where), "environment variable %.*s",
             (int)(name_len > 120 ? 120 : name_len), entry);
    id = entry + plen;
    rest = memchr(id, '_', (size_t)(end - id));
    if (rest == NULL) {
        report(ld->err, ld->err_len,
               "config: %s: expected %sEXPORTERS_<ID>_TYPE, _PATH or "
               "_ARGS_<KEY>", where, ENV_PREFIX);
        return BROKER_CONFIG_E_UNKNOWN_KEY;
    }
    if ((size_t)(end - rest) > 6 && strncmp(rest, "_ARGS_", 6) == 0) {
        for (const char *p = rest + 6; p < end; p++) {
            if (k + 1 >= sizeof(argkey)) {
                report(ld->err, ld->err_len, "config: %s: key too long",
                       where);
                return BROKER_CONFIG_E_UNKNOWN_KEY;
            }
            argkey[k++] = *p == '_' ? '.' : (char)ascii_lower((unsigned char)*p);
        }
        argkey[k] = '\0';
        return exporter_set(ld, id, (size_t)(rest - id), "args", 4, argkey, k,
                            value, strlen(value), where);
    }
    return exporter_set(ld, id, (size_t)(rest - id), rest + 1,
                        (size_t)(end - rest - 1), NULL, 0, value,
                        strlen(value), where);
}

static int walk_node(struct walk *w, yaml_event_t *ev, size_t depth);

/* A block or flow sequence: only the list keys (contact points, region
 * namespaces) take one, of scalars. */
static int walk_sequence(struct walk *w, yaml_event_t *start)
{
    int id = walk_key(w, start, 0);
    int rv = 0;

    if (id < 0) {
        return id;
    }
    assert(id < KEY_COUNT);
    if (keys[id].type != TYPE_CONTACTS && keys[id].type != TYPE_NAMES) {
        return key_fail(w->ld->err, w->ld->err_len, w->ld->origins,
                        w->ld->source, (enum key_id)id, BROKER_CONFIG_E_TYPE,
                        "expected %s, got a list", type_name(keys[id].type));
    }
    list_clear(w->ld->cfg, (enum key_id)id);
    for (;;) {
        yaml_event_t ev;
        rv = walk_next(w, &ev);
        if (rv != 0) {
            return rv;
        }
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            return 0;
        }
        if (ev.type != YAML_SCALAR_EVENT) {
            rv = walk_item_fail(w, &ev, BROKER_CONFIG_E_TYPE,
                                ev.type == YAML_ALIAS_EVENT
                                    ? "aliases are not supported"
                                : keys[id].type == TYPE_CONTACTS
                                    ? "expected a list of host:port strings"
                                    : "expected a list of namespace names");
            yaml_event_delete(&ev);
            return rv;
        }
        rv =
            list_add(w->ld, (enum key_id)id, (const char *)ev.data.scalar.value,
                     ev.data.scalar.length);
        yaml_event_delete(&ev);
        if (rv != 0) {
            return rv;
        }
    }
}

/* A mapping: every key is a scalar appended to the path. */
static int walk_mapping(struct walk *w, size_t depth)
{
    for (;;) {
        yaml_event_t kev;
        yaml_event_t vev;
        size_t saved = w->path_len;
        size_t n;
        int rv = walk_next(w, &kev);

        if (rv != 0) {
            return rv;
        }
        if (kev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&kev);
            return 0;
        }
        if (kev.type != YAML_SCALAR_EVENT) {
            rv = walk_fail(w, &kev, BROKER_CONFIG_E_SYNTAX,
                           kev.type == YAML_ALIAS_EVENT
                               ? "aliases are not supported"
                               : "mapping keys must be plain strings");
            yaml_event_delete(&kev);
            return rv;
        }
        n = kev.data.scalar.length;
        if (saved + 1 + n >= sizeof(w->path) ||
            memchr(kev.data.scalar.value, '\0', n) != NULL) {
            rv = walk_fail(w, &kev, BROKER_CONFIG_E_UNKNOWN_KEY,
                           "unknown key (too long or not text)");
            yaml_event_delete(&kev);
            return rv;
        }
        w->key_mark = kev.start_mark;
        if (saved > 0) {
            w->path[w->path_len++] = '.';
        }
        memcpy(w->path + w->path_len, kev.data.scalar.value, n);
        w->path_len += n;
        w->path[w->path_len] = '\0';
        yaml_event_delete(&kev);

        rv = walk_next(w, &vev);
        if (rv != 0) {
            return rv;
        }
        rv = walk_node(w, &vev, depth + 1);
        yaml_event_delete(&vev);
        if (rv != 0) {
            return rv;
        }
        w->path_len = saved;
        w->path[saved] = '\0';
    }
}

/* Handles the node that starts with *ev (owned by the caller). */
static int walk_node(struct walk *w, yaml_event_t *ev, size_t depth)
{
    int id;

    if (depth > DEPTH_MAX) {
        return walk_fail(w, ev, BROKER_CONFIG_E_SYNTAX, "nested too deeply");
    }
    switch (ev->type) {
    case YAML_MAPPING_START_EVENT:
        if (w->path_len > 0 && path_is_exporters(w->path, w->path_len)) {
            return walk_mapping(w, depth);
        }
        id = w->path_len > 0 ? key_find(w->path, w->path_len) : -1;
        if (id >= 0) {
            char msg[128];
            snprintf(msg, sizeof(msg), "expected %s, got a mapping",
                     type_name(keys[id].type));
            return walk_fail(w, ev, BROKER_CONFIG_E_TYPE, msg);
        }
        if (w->path_len > 0 && !section_find(w->path, w->path_len)) {
            return walk_fail(w, ev, BROKER_CONFIG_E_UNKNOWN_KEY, "unknown key");
        }
        return walk_mapping(w, depth);
    case YAML_SEQUENCE_START_EVENT:
        if (w->path_len == 0) {
            return walk_fail(w, ev, BROKER_CONFIG_E_SYNTAX,
                             "the document must be a mapping");
        }
        if (path_is_exporters(w->path, w->path_len)) {
            return walk_fail(w, ev, BROKER_CONFIG_E_TYPE,
                             "exporter settings are text, not lists");
        }
        return walk_sequence(w, ev);
    case YAML_SCALAR_EVENT:
        if (w->path_len == 0) {
            if (scalar_null(ev)) {
                return 0; /* an empty document */
            }
            return walk_fail(w, ev, BROKER_CONFIG_E_SYNTAX,
                             "the document must be a mapping");
        }
        if (path_is_exporters(w->path, w->path_len)) {
            return exporter_yaml(w, ev);
        }
        id = walk_key(w, ev, scalar_null(ev));
        if (id < 0 || id == KEY_COUNT) {
            return id < 0 ? id : 0;
        }
        if (scalar_null(ev) && keys[id].type != TYPE_STRING &&
            keys[id].type != TYPE_CONTACTS && keys[id].type != TYPE_NAMES) {
            return key_fail(w->ld->err, w->ld->err_len, w->ld->origins,
                            w->ld->source, (enum key_id)id,
                            BROKER_CONFIG_E_TYPE, "expected %s, got null",
                            type_name(keys[id].type));
        }
        if (scalar_null(ev)) {
            return key_set(w->ld, (enum key_id)id, "", 0);
        }
        return key_set(w->ld, (enum key_id)id,
                       (const char *)ev->data.scalar.value,
                       ev->data.scalar.length);
    case YAML_ALIAS_EVENT:
        return walk_fail(w, ev, BROKER_CONFIG_E_SYNTAX,
                         "aliases are not supported");
    default:
        return walk_fail(w, ev, BROKER_CONFIG_E_SYNTAX, "unexpected event");
    }
}

/* Parses the whole stream once without interpreting it, so that a syntax
 * error is reported even when a key before it is wrong too. */
static int yaml_check_syntax(struct walk *w, const char *yaml, size_t len)
{
    int rv = 0;

    yaml_parser_set_input_string(&w->parser, (const unsigned char *)yaml, len);
    for (;;) {
        yaml_event_t ev;
        rv = walk_next(w, &ev);
        if (rv != 0) {
            break;
        }
        if (ev.type == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        yaml_event_delete(&ev);
    }
    return rv;
}

/* Applies the YAML document yaml[0..len-1] to ld->cfg. */
static int yaml_apply(struct load *ld, const char *yaml, size_t len)
{
    struct walk *w;
    yaml_event_t ev;
    int rv;
    int documents = 0;

    w = calloc(1, sizeof(*w));
    if (w == NULL) {
        /* UNTESTED: needs an allocation failure */
        report(ld->err, ld->err_len, "config: %s: out of memory", ld->source);
        return BROKER_CONFIG_E_NOMEM;
    }
    w->ld = ld;
    if (!yaml_parser_initialize(&w->parser)) {
        free(w);
        /* UNTESTED: needs an allocation failure */
        report(ld->err, ld->err_len, "config: %s: out of memory", ld->source);
        return BROKER_CONFIG_E_NOMEM;
    }
    rv = yaml_check_syntax(w, yaml, len);
    yaml_parser_delete(&w->parser);
    if (rv != 0) {
        free(w);
        return rv;
    }
    if (!yaml_parser_initialize(&w->parser)) {
        free(w);
        /* UNTESTED: needs an allocation failure */
        report(ld->err, ld->err_len, "config: %s: out of memory", ld->source);
        return BROKER_CONFIG_E_NOMEM;
    }
    yaml_parser_set_input_string(&w->parser, (const unsigned char *)yaml, len);
    for (;;) {
        rv = walk_next(w, &ev);
        if (rv != 0) {
            break;
        }
        if (ev.type == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        if (ev.type == YAML_DOCUMENT_START_EVENT) {
            documents++;
            if (documents > 1) {
                rv = walk_fail(w, &ev, BROKER_CONFIG_E_SYNTAX,
                               "more than one YAML document");
                yaml_event_delete(&ev);
                break;
            }
            yaml_event_delete(&ev);
            rv = walk_next(w, &ev);
            if (rv != 0) {
                break;
            }
            w->path_len = 0;
            w->path[0] = '\0';
            rv = walk_node(w, &ev, 0);
            yaml_event_delete(&ev);
            if (rv != 0) {
                break;
            }
            continue;
        }
        /* STREAM_START and DOCUMENT_END carry nothing. */
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&w->parser);
    free(w);
    return rv;
}

/* ------------------------------------------------------------------------
 * Environment
 * --------------------------------------------------------------------- */

/* TANDEM_BROKER_ plus the path upper-cased, '.' -> '_'. */
static void env_name(char *buf, size_t cap, const struct key *k)
{
    size_t n = strlen(ENV_PREFIX);

    assert(cap > n + strlen(k->path));
    memcpy(buf, ENV_PREFIX, n);
    for (const char *p = k->path; *p != '\0'; p++) {
        char c = *p;
        buf[n++] = c == '.' ? '_' : (char)(c >= 'a' && c <= 'z' ? c - 32 : c);
    }
    buf[n] = '\0';
}

static int env_apply(struct load *ld, char *const *envp)
{
    bool env_set[KEY_COUNT] = {false};
    size_t prefix_len = strlen(ENV_PREFIX);

    if (envp == NULL) {
        return 0;
    }
    for (char *const *e = envp; *e != NULL; e++) {
        const char *entry = *e;
        const char *eq = strchr(entry, '=');
        size_t name_len;
        int id = -1;
        int rv;

        if (eq == NULL || strncmp(entry, ENV_PREFIX, prefix_len) != 0) {
            continue;
        }
        name_len = (size_t)(eq - entry);
        rv = exporter_env(ld, entry, name_len, eq + 1);
        if (rv <= 0) {
            if (rv < 0) {
                return rv;
            }
            continue;
        }
        for (int k = 0; k < KEY_COUNT && id < 0; k++) {
            char name[ENV_NAME_MAX];
            env_name(name, sizeof(name), &keys[k]);
            if (strlen(name) == name_len &&
                memcmp(name, entry, name_len) == 0) {
                id = k;
            }
        }
        if (id < 0) {
            report(ld->err, ld->err_len,
                   "config: environment variable %.*s: unknown key (no "
                   "tandem.broker key maps to it)",
                   (int)(name_len > ENV_NAME_MAX ? ENV_NAME_MAX : name_len),
                   entry);
            return BROKER_CONFIG_E_UNKNOWN_KEY;
        }
        if (env_set[id]) {
            continue; /* like getenv(): the first definition wins */
        }
        env_set[id] = true;
        memset(&ld->origins[id], 0, sizeof(ld->origins[id]));
        ld->origins[id].kind = ORIGIN_ENV;
        ld->origins[id].env = entry;
        ld->origins[id].env_name_len = name_len;
        rv = key_set(ld, (enum key_id)id, eq + 1, strlen(eq + 1));
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Derived values: the pod ordinal from the host name, the contact points
 * from a template
 * --------------------------------------------------------------------- */

int broker_config_hostname_ordinal(const char *hostname, uint32_t *ordinal)
{
    size_t len;
    size_t digits;
    const char *dot;
    uint64_t v = 0;

    assert(hostname != NULL);
    assert(ordinal != NULL);
    len = strnlen(hostname, BROKER_CONFIG_HOST_MAX + 1);
    if (!host_valid(hostname, len)) {
        return BROKER_CONFIG_E_INVALID;
    }
    dot = memchr(hostname, '.', len);
    if (dot != NULL) {
        len = (size_t)(dot - hostname); /* the first label only */
    }
    digits = len;
    while (digits > 0 && ascii_digit((unsigned char)hostname[digits - 1])) {
        digits--;
    }
    /* hostname[digits - 1] must be the '-' after a non-empty name, and
     * at least one digit must follow it. */
    if (digits < 2 || digits == len || hostname[digits - 1] != '-') {
        return BROKER_CONFIG_E_INVALID;
    }
    if (hostname[digits] == '0' && len - digits > 1) {
        return BROKER_CONFIG_E_INVALID; /* "web-01" is no pod ordinal */
    }
    if (uint_parse(hostname + digits, len - digits, 0,
                   BROKER_CLUSTER_SIZE_MAX - 1, &v) != PARSE_OK) {
        return BROKER_CONFIG_E_INVALID;
    }
    assert(v < BROKER_CLUSTER_SIZE_MAX);
    *ordinal = (uint32_t)v;
    return 0;
}

int broker_config_contact_expand(const struct broker_config *cfg,
                                 uint32_t node_id, char *out, size_t cap,
                                 char *err, size_t err_len)
{
    const char *t;
    size_t n = 0;
    size_t k = 0;

    assert(cfg != NULL);
    assert(out != NULL);
    assert(cap > 0);
    assert(cfg->regions >= 1);
    t = cfg->contact_point_template;
    while (t[k] != '\0') {
        char piece[BROKER_CONFIG_NAMESPACE_MAX + 1];
        size_t plen;
        if (t[k] == '}') {
            report(err, err_len, "'}' at character %zu has no '{'", k + 1);
            return BROKER_CONFIG_E_INVALID;
        }
        if (t[k] != '{') {
            piece[0] = t[k];
            plen = 1;
            k++;
        } else {
            const char *close = strchr(t + k, '}');
            const char *name = t + k + 1;
            size_t name_len;
            uint32_t region = node_id % cfg->regions;
            if (close == NULL) {
                report(err, err_len, "'{' at character %zu is not closed",
                       k + 1);
                return BROKER_CONFIG_E_INVALID;
            }
            name_len = (size_t)(close - name);
            if (name_len == 6 && memcmp(name, "nodeId", 6) == 0) {
                plen = (size_t)snprintf(piece, sizeof(piece), "%u", node_id);
            } else if (name_len == 7 && memcmp(name, "ordinal", 7) == 0) {
                plen = (size_t)snprintf(piece, sizeof(piece), "%u",
                                        node_id / cfg->regions);
            } else if (name_len == 6 && memcmp(name, "region", 6) == 0) {
                plen = (size_t)snprintf(piece, sizeof(piece), "%u", region);
            } else if (name_len == 9 && memcmp(name, "namespace", 9) == 0) {
                if (region >= cfg->region_namespace_count) {
                    report(err, err_len,
                           "{namespace} needs " ROOT "cluster.regionNamespaces"
                           " to name region %u's namespace (it has %u "
                           "entries)",
                           region, cfg->region_namespace_count);
                    return BROKER_CONFIG_E_INVALID;
                }
                plen = strnlen(cfg->region_namespaces[region],
                               sizeof(cfg->region_namespaces[region]));
                assert(plen < sizeof(piece));
                memcpy(piece, cfg->region_namespaces[region], plen);
            } else {
                char shown[SHOWN_VALUE_MAX + 8];
                value_show(shown, sizeof(shown), name, name_len);
                report(err, err_len,
                       "unknown placeholder {%s} (known: {nodeId}, "
                       "{ordinal}, {region}, {namespace})",
                       shown);
                return BROKER_CONFIG_E_INVALID;
            }
            k = (size_t)(close - t) + 1;
        }
        assert(plen < sizeof(piece));
        if (n + plen >= cap) {
            report(err, err_len, "expands to more than %zu characters",
                   cap - 1);
            return BROKER_CONFIG_E_INVALID;
        }
        memcpy(out + n, piece, plen);
        n += plen;
    }
    out[n] = '\0';
    return 0;
}

/* Where the host name came from, for messages. */
enum hostname_source { HOSTNAME_KEY, HOSTNAME_ENV, HOSTNAME_SYSTEM };

/* Fills cfg->hostname, unless the `hostname` key gave it, from HOSTNAME in
 * envp, else from gethostname(). */
static int hostname_resolve(struct load *ld, char *const *envp,
                            enum hostname_source *src)
{
    struct broker_config *cfg = ld->cfg;
    char buf[BROKER_CONFIG_HOST_MAX + 2];

    if (cfg->hostname[0] != '\0') {
        *src = HOSTNAME_KEY;
        return 0;
    }
    for (char *const *e = envp; e != NULL && *e != NULL; e++) {
        const char *v = *e + strlen("HOSTNAME=");
        if (strncmp(*e, "HOSTNAME=", strlen("HOSTNAME=")) != 0 || *v == '\0') {
            continue;
        }
        if (strlen(v) > BROKER_CONFIG_HOST_MAX) {
            return key_fail(ld->err, ld->err_len, ld->origins, ld->source,
                            K_NODE_ID_FROM_HOSTNAME, BROKER_CONFIG_E_INVALID,
                            "the host name in env HOSTNAME is longer than "
                            "%d bytes",
                            BROKER_CONFIG_HOST_MAX);
        }
        snprintf(cfg->hostname, sizeof(cfg->hostname), "%s", v);
        *src = HOSTNAME_ENV;
        return 0;
    }
    memset(buf, 0, sizeof(buf));
    if (gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0' ||
        strlen(buf) > BROKER_CONFIG_HOST_MAX) {
        /* UNTESTED: gethostname fails only with a too small buffer */
        return key_fail(ld->err, ld->err_len, ld->origins, ld->source,
                        K_NODE_ID_FROM_HOSTNAME, BROKER_CONFIG_E_INVALID,
                        "no host name: set " ROOT "hostname (env " ENV_PREFIX
                        "HOSTNAME) or HOSTNAME");
    }
    memcpy(cfg->hostname, buf, strlen(buf) + 1);
    *src = HOSTNAME_SYSTEM;
    return 0;
}

/* podOrdinal from the host name (cluster.nodeIdFromHostname), unless
 * nodeId was given (an explicit nodeId wins, as in Helm's startup.sh). */
static int derive_pod_ordinal(struct load *ld, char *const *envp)
{
    struct broker_config *cfg = ld->cfg;
    enum hostname_source src = HOSTNAME_KEY;
    char where[ENV_NAME_MAX + 64 + 2 * 24];
    char from[sizeof(where) + 64];
    char shown[SHOWN_VALUE_MAX + 8];
    int rv;

    if (!cfg->node_id_from_hostname ||
        ld->origins[K_NODE_ID].kind != ORIGIN_DEFAULT) {
        return 0;
    }
    if (cfg->pod_ordinal_set) {
        origin_format(where, sizeof(where), &ld->origins[K_POD_ORDINAL],
                      ld->source);
        return key_fail(ld->err, ld->err_len, ld->origins, ld->source,
                        K_NODE_ID_FROM_HOSTNAME, BROKER_CONFIG_E_INVALID,
                        "conflicts with " ROOT "cluster.podOrdinal%s: set "
                        "one of them",
                        where);
    }
    rv = hostname_resolve(ld, envp, &src);
    if (rv != 0) {
        return rv;
    }
    if (src == HOSTNAME_KEY) {
        origin_format(where, sizeof(where), &ld->origins[K_HOSTNAME],
                      ld->source);
        snprintf(from, sizeof(from), "from " ROOT "hostname%s", where);
    } else {
        snprintf(from, sizeof(from), "from %s",
                 src == HOSTNAME_ENV ? "env HOSTNAME" : "gethostname()");
    }
    if (broker_config_hostname_ordinal(cfg->hostname, &cfg->pod_ordinal) != 0) {
        value_show(shown, sizeof(shown), cfg->hostname, strlen(cfg->hostname));
        return key_fail(ld->err, ld->err_len, ld->origins, ld->source,
                        K_NODE_ID_FROM_HOSTNAME, BROKER_CONFIG_E_INVALID,
                        "host name \"%s\" (%s) does not end in "
                        "-<ordinal> (0 to %d, no leading zeros) as a "
                        "StatefulSet pod's does, e.g. tandem-broker-2",
                        shown, from, BROKER_CLUSTER_SIZE_MAX - 1);
    }
    cfg->pod_ordinal_set = true;
    cfg->pod_ordinal_from_hostname = true;
    return 0;
}

/* nodeId = podOrdinal * regions + regionId when nodeId was not given. */
static int derive_node_id(struct load *ld)
{
    struct broker_config *cfg = ld->cfg;
    uint64_t id;
    char shown[SHOWN_VALUE_MAX + 8];

    if (!cfg->pod_ordinal_set ||
        ld->origins[K_NODE_ID].kind != ORIGIN_DEFAULT) {
        return 0;
    }
    /* Helm's formula. The factors are range-checked, so it cannot wrap in
     * 64 bits. */
    id = (uint64_t)cfg->pod_ordinal * cfg->regions + cfg->region_id;
    if (id >= cfg->cluster_size) {
        if (cfg->pod_ordinal_from_hostname) {
            value_show(shown, sizeof(shown), cfg->hostname,
                       strlen(cfg->hostname));
            return key_fail(ld->err, ld->err_len, ld->origins, ld->source,
                            K_NODE_ID_FROM_HOSTNAME, BROKER_CONFIG_E_INVALID,
                            "host name \"%s\" gives nodeId %llu (podOrdinal "
                            "%u * regions %u + regionId %u), which must be "
                            "less than clusterSize (%u)",
                            shown, (unsigned long long)id, cfg->pod_ordinal,
                            cfg->regions, cfg->region_id, cfg->cluster_size);
        }
        return key_fail(ld->err, ld->err_len, ld->origins, ld->source,
                        K_POD_ORDINAL, BROKER_CONFIG_E_INVALID,
                        "gives nodeId %llu (podOrdinal %u * regions %u + "
                        "regionId %u), which must be less than "
                        "clusterSize (%u)",
                        (unsigned long long)id, cfg->pod_ordinal, cfg->regions,
                        cfg->region_id, cfg->cluster_size);
    }
    cfg->node_id = (uint32_t)id;
    cfg->node_id_derived = true;
    return 0;
}

/* initialContactPoints from initialContactPointsTemplate: one entry per
 * node id 0..clusterSize-1, i.e. every broker of every region. */
static int derive_contact_points(struct load *ld)
{
    struct broker_config *cfg = ld->cfg;
    const char *t = cfg->contact_point_template;
    char where[ENV_NAME_MAX + 64 + 2 * 24];
    char reason[256];
    char buf[BROKER_CONFIG_TEMPLATE_MAX + 2 * BROKER_CONFIG_NAMESPACE_MAX];
    char shown[SHOWN_VALUE_MAX + 8];

    if (t[0] == '\0') {
        return 0;
    }
    if (ld->origins[K_CONTACT_POINTS].kind != ORIGIN_DEFAULT) {
        origin_format(where, sizeof(where), &ld->origins[K_CONTACT_POINTS],
                      ld->source);
        return key_fail(ld->err, ld->err_len, ld->origins, ld->source,
                        K_CONTACT_POINTS_TEMPLATE, BROKER_CONFIG_E_INVALID,
                        "conflicts with " ROOT
                        "cluster.initialContactPoints%s: set one of them",
                        where);
    }
    if (cfg->cluster_size > BROKER_CONFIG_CONTACT_POINTS_MAX) {
        return key_fail(ld->err, ld->err_len, ld->origins, ld->source,
                        K_CONTACT_POINTS_TEMPLATE, BROKER_CONFIG_E_INVALID,
                        "gives one contact point per broker, and clusterSize "
                        "(%u) is more than %d",
                        cfg->cluster_size, BROKER_CONFIG_CONTACT_POINTS_MAX);
    }
    memset(cfg->contact_points, 0, sizeof(cfg->contact_points));
    cfg->contact_point_count = 0;
    for (uint32_t n = 0; n < cfg->cluster_size; n++) {
        struct broker_contact_point *cp = &cfg->contact_points[n];
        if (broker_config_contact_expand(cfg, n, buf, sizeof(buf), reason,
                                         sizeof(reason)) != 0) {
            return key_fail(ld->err, ld->err_len, ld->origins, ld->source,
                            K_CONTACT_POINTS_TEMPLATE, BROKER_CONFIG_E_INVALID,
                            "%s", reason);
        }
        if (!contact_parse(buf, strlen(buf), cp)) {
            value_show(shown, sizeof(shown), buf, strlen(buf));
            return key_fail(ld->err, ld->err_len, ld->origins, ld->source,
                            K_CONTACT_POINTS_TEMPLATE, BROKER_CONFIG_E_INVALID,
                            "gives \"%s\" for nodeId %u, which is not a "
                            "host:port (IPv6 as [addr]:port, port 1..65535)",
                            shown, n);
        }
        cfg->contact_point_count++;
    }
    /* Checked after the expansion, so that a malformed placeholder is
     * reported as such. */
    if (strstr(t, "{ordinal}") == NULL && strstr(t, "{nodeId}") == NULL) {
        return key_fail(ld->err, ld->err_len, ld->origins, ld->source,
                        K_CONTACT_POINTS_TEMPLATE, BROKER_CONFIG_E_INVALID,
                        "must contain {ordinal} or {nodeId}, else every "
                        "broker gets the same address");
    }
    cfg->contact_points_derived = true;
    assert(cfg->contact_point_count == cfg->cluster_size);
    return 0;
}

/* ------------------------------------------------------------------------
 * Validation
 * --------------------------------------------------------------------- */

struct check {
    const struct broker_config *cfg;
    char *err;
    size_t err_len;
    const struct origin *origins; /* NULL: no origin known */
    const char *source;
};

#define CHECK_FAIL(c, id, ...)                                                 \
    key_fail((c)->err, (c)->err_len, (c)->origins, (c)->source, (id),          \
             BROKER_CONFIG_E_INVALID, __VA_ARGS__)

/* Re-checks each numeric field against its key's range (a caller may have
 * filled the struct by hand). */
static int check_ranges(const struct check *c)
{
    char range[96];

    for (int id = 0; id < KEY_COUNT; id++) {
        const struct key *k = &keys[id];
        const char *f = (const char *)c->cfg + k->offset;
        uint64_t v;
        switch (k->type) {
        case TYPE_OPT_UINT:
            if (!*(const bool *)((const char *)c->cfg + k->flag_offset)) {
                continue;
            }
            v = *(const uint32_t *)(const void *)f;
            break;
        case TYPE_UINT:
            v = *(const uint32_t *)(const void *)f;
            break;
        case TYPE_PORT:
            v = *(const uint16_t *)(const void *)f;
            break;
        case TYPE_DURATION:
        case TYPE_SIZE:
            v = *(const uint64_t *)(const void *)f;
            break;
        case TYPE_STRING:
            if (memchr(f, '\0', k->size) == NULL) {
                return CHECK_FAIL(c, (enum key_id)id, "not NUL-terminated");
            }
            if (!text_clean(f, strlen(f))) {
                return CHECK_FAIL(c, (enum key_id)id,
                                  "not valid UTF-8 text without control "
                                  "characters");
            }
            continue;
        default:
            continue;
        }
        if (v < k->min || v > k->max) {
            range_format(range, sizeof(range), k);
            return CHECK_FAIL(c, (enum key_id)id, "must be %s, got %llu", range,
                              (unsigned long long)v);
        }
    }
    return 0;
}

/* The contact points derived from the template equal its expansion. */
static int check_contact_template(const struct check *c)
{
    const struct broker_config *cfg = c->cfg;
    char buf[BROKER_CONFIG_TEMPLATE_MAX + 2 * BROKER_CONFIG_NAMESPACE_MAX];
    char reason[256];

    if (cfg->contact_point_template[0] == '\0') {
        if (cfg->contact_points_derived) {
            return CHECK_FAIL(c, K_CONTACT_POINTS,
                              "marked as derived but "
                              "initialContactPointsTemplate is empty");
        }
        return 0;
    }
    if (!cfg->contact_points_derived) {
        return CHECK_FAIL(c, K_CONTACT_POINTS_TEMPLATE,
                          "is set but initialContactPoints were not expanded "
                          "from it");
    }
    if (cfg->contact_point_count != cfg->cluster_size) {
        return CHECK_FAIL(c, K_CONTACT_POINTS,
                          "must have clusterSize (%u) entries when derived "
                          "from initialContactPointsTemplate, has %u",
                          cfg->cluster_size, cfg->contact_point_count);
    }
    for (uint32_t n = 0; n < cfg->contact_point_count; n++) {
        struct broker_contact_point cp;
        if (broker_config_contact_expand(cfg, n, buf, sizeof(buf), reason,
                                         sizeof(reason)) != 0) {
            return CHECK_FAIL(c, K_CONTACT_POINTS_TEMPLATE, "%s", reason);
        }
        if (!contact_parse(buf, strlen(buf), &cp) ||
            memcmp(&cp, &cfg->contact_points[n], sizeof(cp)) != 0) {
            return CHECK_FAIL(c, K_CONTACT_POINTS,
                              "entry %u does not equal the expansion of "
                              "initialContactPointsTemplate",
                              n + 1);
        }
    }
    return 0;
}

static int check_cluster(const struct check *c)
{
    const struct broker_config *cfg = c->cfg;

    if (cfg->replication_factor > cfg->cluster_size) {
        return CHECK_FAIL(c, K_REPLICATION_FACTOR,
                          "must be between 1 and clusterSize (%u), got %u",
                          cfg->cluster_size, cfg->replication_factor);
    }
    if (cfg->region_id >= cfg->regions) {
        return CHECK_FAIL(c, K_REGION_ID,
                          "must be less than regions (%u), got %u",
                          cfg->regions, cfg->region_id);
    }
    if (cfg->node_id_derived) {
        uint64_t derived =
            (uint64_t)cfg->pod_ordinal * cfg->regions + cfg->region_id;
        if (!cfg->pod_ordinal_set || derived != cfg->node_id) {
            return CHECK_FAIL(c, K_NODE_ID,
                              "marked as derived but does not equal "
                              "podOrdinal * regions + regionId");
        }
        if (cfg->node_id >= cfg->cluster_size) {
            return CHECK_FAIL(c, K_POD_ORDINAL,
                              "gives nodeId %u (podOrdinal %u * regions %u "
                              "+ regionId %u), which must be less than "
                              "clusterSize (%u)",
                              cfg->node_id, cfg->pod_ordinal, cfg->regions,
                              cfg->region_id, cfg->cluster_size);
        }
    }
    if (cfg->pod_ordinal_from_hostname) {
        uint32_t ordinal = 0;
        if (!cfg->node_id_from_hostname || !cfg->pod_ordinal_set ||
            broker_config_hostname_ordinal(cfg->hostname, &ordinal) != 0 ||
            ordinal != cfg->pod_ordinal) {
            return CHECK_FAIL(c, K_POD_ORDINAL,
                              "marked as taken from the host name but does "
                              "not match " ROOT "hostname");
        }
    }
    if (cfg->node_id >= cfg->cluster_size) {
        return CHECK_FAIL(c, K_NODE_ID,
                          "must be less than clusterSize (%u), got %u",
                          cfg->cluster_size, cfg->node_id);
    }
    if (cfg->region_namespace_count > BROKER_CONFIG_REGIONS_MAX) {
        return CHECK_FAIL(c, K_REGION_NAMESPACES, "more than %d entries",
                          BROKER_CONFIG_REGIONS_MAX);
    }
    for (uint32_t k = 0; k < cfg->region_namespace_count; k++) {
        const char *ns = cfg->region_namespaces[k];
        if (!label_valid(ns, strnlen(ns, BROKER_CONFIG_NAMESPACE_MAX + 1))) {
            return CHECK_FAIL(c, K_REGION_NAMESPACES,
                              "entry %u is not a namespace name", k + 1);
        }
    }
    if (cfg->region_namespace_count != 0 &&
        cfg->region_namespace_count != cfg->regions) {
        return CHECK_FAIL(c, K_REGION_NAMESPACES,
                          "has %u entries, must have one per region "
                          "(regions is %u)",
                          cfg->region_namespace_count, cfg->regions);
    }
    if (cfg->regions > 1) {
        if (cfg->regions == 2 &&
            (cfg->cluster_size % 2 != 0 || cfg->cluster_size < 4)) {
            return CHECK_FAIL(c, K_CLUSTER_SIZE,
                              "must be even and at least 4 when regions is "
                              "2, got %u",
                              cfg->cluster_size);
        }
        if (cfg->regions == 2 && cfg->replication_factor != 4) {
            return CHECK_FAIL(c, K_REPLICATION_FACTOR,
                              "must be 4 when regions is 2, got %u",
                              cfg->replication_factor);
        }
        if (cfg->cluster_size % cfg->regions != 0) {
            return CHECK_FAIL(c, K_CLUSTER_SIZE,
                              "must be a multiple of regions (%u), got %u",
                              cfg->regions, cfg->cluster_size);
        }
        if (cfg->replication_factor % cfg->regions != 0) {
            return CHECK_FAIL(c, K_REPLICATION_FACTOR,
                              "must be a multiple of regions (%u), got %u",
                              cfg->regions, cfg->replication_factor);
        }
        if (cfg->node_id % cfg->regions != cfg->region_id) {
            return CHECK_FAIL(c, K_NODE_ID,
                              "must be regionId (%u) modulo regions (%u): "
                              "region r holds ids r, r + regions, ...; got "
                              "%u",
                              cfg->region_id, cfg->regions, cfg->node_id);
        }
    }
    if (cfg->cluster_name[0] == '\0') {
        return CHECK_FAIL(c, K_CLUSTER_NAME, "must not be empty");
    }
    for (uint32_t k = 0; k < cfg->contact_point_count; k++) {
        const struct broker_contact_point *cp = &cfg->contact_points[k];
        if (!host_valid(cp->host, strnlen(cp->host, sizeof(cp->host))) ||
            cp->port == 0) {
            return CHECK_FAIL(c, K_CONTACT_POINTS,
                              "entry %u is not a valid host:port", k + 1);
        }
    }
    if (cfg->contact_point_count > BROKER_CONFIG_CONTACT_POINTS_MAX) {
        return CHECK_FAIL(c, K_CONTACT_POINTS, "more than %d entries",
                          BROKER_CONFIG_CONTACT_POINTS_MAX);
    }
    return check_contact_template(c);
}

static int check_timing(const struct check *c)
{
    const struct broker_config *cfg = c->cfg;

    /* raft_options requires election >= 2 x heartbeat; this also gives
     * Zeebe's heartbeatInterval < electionTimeout. */
    if (cfg->heartbeat_interval_ms > cfg->election_timeout_ms / 2) {
        return CHECK_FAIL(c, K_HEARTBEAT_INTERVAL,
                          "must be at most half of electionTimeout "
                          "(%llums), got %llums",
                          (unsigned long long)cfg->election_timeout_ms,
                          (unsigned long long)cfg->heartbeat_interval_ms);
    }
    if (cfg->log_segment_bytes <= cfg->max_message_bytes) {
        return CHECK_FAIL(c, K_LOG_SEGMENT_SIZE,
                          "must be greater than network.maxMessageSize "
                          "(%llu bytes), got %llu bytes",
                          (unsigned long long)cfg->max_message_bytes,
                          (unsigned long long)cfg->log_segment_bytes);
    }
    return 0;
}

static int check_network(const struct check *c)
{
    const struct broker_config *cfg = c->cfg;
    static const enum key_id ports[] = {K_COMMAND_API_PORT, K_INTERNAL_API_PORT,
                                        K_MANAGEMENT_PORT, K_GATEWAY_PORT,
                                        K_REST_PORT};
    size_t port_count = sizeof(ports) / sizeof(ports[0]);

    if (!host_valid(cfg->host, strlen(cfg->host))) {
        return CHECK_FAIL(c, K_HOST,
                          "must be a host name or IP address (letters, "
                          "digits, '.', '-', '_', ':')");
    }
    if (cfg->advertised_host[0] != '\0' &&
        !host_valid(cfg->advertised_host, strlen(cfg->advertised_host))) {
        return CHECK_FAIL(c, K_ADVERTISED_HOST,
                          "must be empty or a host name or IP address");
    }
    if (cfg->hostname[0] != '\0' &&
        !host_valid(cfg->hostname, strlen(cfg->hostname))) {
        return CHECK_FAIL(c, K_HOSTNAME,
                          "must be empty or a host name (letters, digits, "
                          "'.', '-', '_')");
    }
    if (!cfg->gateway_enable) {
        port_count -= 2; /* the gateway's gRPC and REST ports are unused */
    }
    for (size_t a = 0; a < port_count; a++) {
        uint16_t pa = *(const uint16_t *)(const void *)((const char *)cfg +
                                                        keys[ports[a]].offset);
        for (size_t b = 0; b < a; b++) {
            uint16_t pb =
                *(const uint16_t *)(const void *)((const char *)cfg +
                                                  keys[ports[b]].offset);
            if (pa == pb) {
                return CHECK_FAIL(c, ports[a],
                                  "port %u is already used by " ROOT "%s", pa,
                                  keys[ports[b]].path);
            }
        }
    }
    if (cfg->data_directory[0] == '\0') {
        return CHECK_FAIL(c, K_DATA_DIRECTORY, "must not be empty");
    }
    return 0;
}

static int check_exporters(const struct check *c)
{
    for (uint32_t i = 0; i < c->cfg->exporter_count; i++) {
        const struct broker_exporter_config *x = &c->cfg->exporters[i];
        if (x->type[0] == '\0' && x->path[0] == '\0') {
            report(c->err, c->err_len,
                   "config: exporters.%s: needs a type (a built-in exporter: "
                   "elasticsearch, postgresql) or a path (a shared object)",
                   x->id);
            return BROKER_CONFIG_E_INVALID;
        }
    }
    return 0;
}

static int validate(const struct check *c)
{
    int rv = check_ranges(c);
    if (rv == 0) {
        rv = check_exporters(c);
    }
    if (rv == 0) {
        rv = check_cluster(c);
    }
    if (rv == 0) {
        rv = check_timing(c);
    }
    if (rv == 0) {
        rv = check_network(c);
    }
    assert(rv == 0 || rv == BROKER_CONFIG_E_INVALID);
    return rv;
}

int broker_config_validate(const struct broker_config *cfg, char *err,
                           size_t err_len)
{
    struct check c = {cfg, err, err_len, NULL, "<config>"};
    assert(cfg != NULL);
    return validate(&c);
}

/* ------------------------------------------------------------------------
 * Loading
 * --------------------------------------------------------------------- */

int broker_config_load_string(struct broker_config *cfg, const char *yaml,
                              size_t yaml_len, const char *source,
                              char *const *envp, char *err, size_t err_len)
{
    struct load *ld;
    struct check c;
    int rv;

    assert(cfg != NULL);
    assert(yaml != NULL || yaml_len == 0);
    if (err != NULL && err_len > 0) {
        err[0] = '\0';
    }
    ld = calloc(1, sizeof(*ld));
    if (ld == NULL) {
        /* UNTESTED: needs an allocation failure */
        report(err, err_len, "config: out of memory");
        return BROKER_CONFIG_E_NOMEM;
    }
    ld->cfg = cfg;
    ld->err = err;
    ld->err_len = err_len;
    ld->source = source != NULL ? source : "<string>";
    broker_config_default(cfg);

    rv = yaml_len > 0 ? yaml_apply(ld, yaml, yaml_len) : 0;
    if (rv == 0) {
        rv = env_apply(ld, envp);
    }
    if (rv == 0) {
        rv = derive_pod_ordinal(ld, envp);
    }
    if (rv == 0) {
        rv = derive_node_id(ld);
    }
    if (rv == 0) {
        rv = derive_contact_points(ld);
    }
    if (rv == 0) {
        c.cfg = cfg;
        c.err = err;
        c.err_len = err_len;
        c.origins = ld->origins;
        c.source = ld->source;
        rv = validate(&c);
    }
    free(ld);
    assert(rv <= 0);
    if (rv != 0 && err != NULL && err_len > 0 && err[0] == '\0') {
        report(err, err_len, "config: %s", broker_config_strerror(rv));
    }
    return rv;
}

int broker_config_load(struct broker_config *cfg, const char *yaml_path,
                       char *const *envp, char *err, size_t err_len)
{
    FILE *f;
    char *buf;
    size_t n;
    int rv;

    assert(cfg != NULL);
    if (yaml_path == NULL) {
        return broker_config_load_string(cfg, NULL, 0, NULL, envp, err,
                                         err_len);
    }
    f = fopen(yaml_path, "rb");
    if (f == NULL) {
        report(err, err_len, "config: %s: cannot open: %s", yaml_path,
               strerror(errno));
        return BROKER_CONFIG_E_IO;
    }
    buf = malloc(BROKER_CONFIG_FILE_BYTES_MAX + 1);
    if (buf == NULL) {
        fclose(f);
        /* UNTESTED: needs an allocation failure */
        report(err, err_len, "config: %s: out of memory", yaml_path);
        return BROKER_CONFIG_E_NOMEM;
    }
    n = fread(buf, 1, BROKER_CONFIG_FILE_BYTES_MAX + 1, f);
    if (ferror(f)) {
        /* Reading a directory fails here (tested); other read errors
         * (EIO) are untested. */
        report(err, err_len, "config: %s: read error", yaml_path);
        rv = BROKER_CONFIG_E_IO;
    } else if (n > BROKER_CONFIG_FILE_BYTES_MAX) {
        report(err, err_len, "config: %s: larger than %u bytes", yaml_path,
               BROKER_CONFIG_FILE_BYTES_MAX);
        rv = BROKER_CONFIG_E_IO;
    } else {
        rv = broker_config_load_string(cfg, buf, n, yaml_path, envp, err,
                                       err_len);
    }
    fclose(f);
    free(buf);
    return rv;
}

/* ------------------------------------------------------------------------
 * Printing
 * --------------------------------------------------------------------- */

/* A YAML double-quoted scalar: strings are clean UTF-8 (validated), so
 * only '"' and '\' need escaping. */
static void string_print(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\') {
            fputc('\\', out);
        }
        fputc(*s, out);
    }
    fputc('"', out);
}

static void size_print(FILE *out, uint64_t bytes)
{
    static const char *const names[] = {"TB", "GB", "MB", "KB"};
    uint64_t unit = GIB(1024);

    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        if (bytes >= unit && bytes % unit == 0) {
            fprintf(out, "%llu%s", (unsigned long long)(bytes / unit),
                    names[k]);
            return;
        }
        unit /= 1024;
    }
    fprintf(out, "%llu", (unsigned long long)bytes);
}

static void duration_print(FILE *out, uint64_t ms)
{
    static const struct {
        const char *name;
        uint64_t ms;
    } units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};

    for (size_t k = 0; k < sizeof(units) / sizeof(units[0]); k++) {
        if (ms >= units[k].ms && ms % units[k].ms == 0) {
            fprintf(out, "%llu%s", (unsigned long long)(ms / units[k].ms),
                    units[k].name);
            return;
        }
    }
    fprintf(out, "%llums", (unsigned long long)ms);
}

static void value_print(FILE *out, const struct broker_config *cfg,
                        const struct key *k, size_t indent)
{
    const char *f = (const char *)cfg + k->offset;

    switch (k->type) {
    case TYPE_UINT:
    case TYPE_OPT_UINT:
        fprintf(out, "%u", *(const uint32_t *)(const void *)f);
        break;
    case TYPE_PORT:
        fprintf(out, "%u", (unsigned)*(const uint16_t *)(const void *)f);
        break;
    case TYPE_BOOL:
        fputs(*(const bool *)(const void *)f ? "true" : "false", out);
        break;
    case TYPE_DURATION:
        duration_print(out, *(const uint64_t *)(const void *)f);
        break;
    case TYPE_SIZE:
        size_print(out, *(const uint64_t *)(const void *)f);
        break;
    case TYPE_STRING:
        string_print(out, f);
        break;
    case TYPE_NAMES:
        if (cfg->region_namespace_count == 0) {
            fputs("[]", out);
        }
        for (uint32_t j = 0; j < cfg->region_namespace_count; j++) {
            fprintf(out, "\n%*s- \"%s\"", (int)indent, "",
                    cfg->region_namespaces[j]);
        }
        break;
    case TYPE_CONTACTS:
        if (cfg->contact_point_count == 0) {
            fputs("[]", out);
        }
        for (uint32_t j = 0; j < cfg->contact_point_count; j++) {
            const struct broker_contact_point *cp = &cfg->contact_points[j];
            int v6 = strchr(cp->host, ':') != NULL;
            fprintf(out, "\n%*s- \"%s%s%s:%u\"", (int)indent, "", v6 ? "[" : "",
                    cp->host, v6 ? "]" : "", (unsigned)cp->port);
        }
        break;
    }
}

int broker_config_print(const struct broker_config *cfg, FILE *out)
{
    const char *prev = "";

    assert(cfg != NULL);
    assert(out != NULL);
    fputs("# Effective Tandem broker configuration "
          "(see docs/configuration.md).\ntandem:\n  broker:\n",
          out);
    for (int id = 0; id < KEY_COUNT; id++) {
        const struct key *k = &keys[id];
        const char *p = k->path;
        const char *q = prev;
        size_t depth = 0;

        if (id == K_POD_ORDINAL && !cfg->pod_ordinal_set) {
            continue;
        }

        /* Skip the sections shared with the previous key. */
        for (;;) {
            const char *pd = strchr(p, '.');
            const char *qd = strchr(q, '.');
            if (pd == NULL || qd == NULL || pd - p != qd - q ||
                memcmp(p, q, (size_t)(pd - p)) != 0) {
                break;
            }
            p = pd + 1;
            q = qd + 1;
            depth++;
        }
        /* Open the remaining sections. */
        for (const char *pd; (pd = strchr(p, '.')) != NULL; p = pd + 1) {
            fprintf(out, "%*s%.*s:\n", (int)(4 + 2 * depth), "", (int)(pd - p),
                    p);
            depth++;
        }
        if (id == K_NODE_ID && cfg->node_id_derived) {
            fprintf(out, "%*s# %s: %u (derived from podOrdinal)\n",
                    (int)(4 + 2 * depth), "", p, cfg->node_id);
        } else if (id == K_POD_ORDINAL && cfg->pod_ordinal_from_hostname) {
            fprintf(out, "%*s# %s: %u (from the host name)\n",
                    (int)(4 + 2 * depth), "", p, cfg->pod_ordinal);
        } else if (id == K_CONTACT_POINTS && cfg->contact_points_derived) {
            fprintf(out,
                    "%*s# %s: (derived from initialContactPointsTemplate)\n",
                    (int)(4 + 2 * depth), "", p);
            for (uint32_t j = 0; j < cfg->contact_point_count; j++) {
                const struct broker_contact_point *cp = &cfg->contact_points[j];
                int v6 = strchr(cp->host, ':') != NULL;
                fprintf(out, "%*s#   - \"%s%s%s:%u\"\n", (int)(4 + 2 * depth),
                        "", v6 ? "[" : "", cp->host, v6 ? "]" : "",
                        (unsigned)cp->port);
            }
        } else {
            fprintf(out, "%*s%s:", (int)(4 + 2 * depth), "", p);
            if ((k->type != TYPE_CONTACTS || cfg->contact_point_count == 0) &&
                (k->type != TYPE_NAMES || cfg->region_namespace_count == 0)) {
                fputc(' ', out);
            }
            value_print(out, cfg, k, 4 + 2 * depth + 2);
            fputc('\n', out);
        }
        prev = k->path;
    }
    if (cfg->exporter_count > 0) {
        fputs("    exporters:\n", out);
    }
    for (uint32_t i = 0; i < cfg->exporter_count; i++) {
        const struct broker_exporter_config *x = &cfg->exporters[i];
        fprintf(out, "      %s:\n", x->id);
        if (x->type[0] != '\0') {
            fputs("        type: ", out);
            string_print(out, x->type);
            fputc('\n', out);
        }
        if (x->path[0] != '\0') {
            fputs("        path: ", out);
            string_print(out, x->path);
            fputc('\n', out);
        }
        if (x->arg_count > 0) {
            fputs("        args:\n", out);
        }
        for (uint32_t j = 0; j < x->arg_count; j++) {
            fprintf(out, "          %s: ", x->args[j].key);
            string_print(out, x->args[j].value);
            fputc('\n', out);
        }
    }
    fflush(out);
    return ferror(out) ? BROKER_CONFIG_E_IO : 0;
}

/* ------------------------------------------------------------------------
 * Placement and error strings
 * --------------------------------------------------------------------- */

int broker_config_placement(const struct broker_config *cfg,
                            struct broker_placement *placement)
{
    assert(cfg != NULL);
    assert(placement != NULL);
    assert(cfg->replication_factor <= cfg->cluster_size);
    return broker_placement_compute_static(placement, cfg->cluster_size,
                                           cfg->partitions_count,
                                           cfg->replication_factor);
}

const char *broker_config_strerror(int code)
{
    switch (code) {
#define BROKER_CONFIG_ERRNO_CASE(name, value, msg)                             \
    case value:                                                                \
        return msg;
        BROKER_CONFIG_ERRNO_MAP(BROKER_CONFIG_ERRNO_CASE)
#undef BROKER_CONFIG_ERRNO_CASE
    case 0:
        return "success";
    }
    return "unknown error";
}
