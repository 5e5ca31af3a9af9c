/* elasticsearch.c: the built-in "elasticsearch" exporter: records as
 * documents through the Elasticsearch/OpenSearch bulk API (libcurl).
 *
 * Data flow (all on the exporter's worker thread, see exporter.h):
 *
 *   export_record(r) --filter (configure)--> templates for r's broker
 *     version created once (PUT /_component_template/<prefix>, then
 *     PUT /_index_template/<prefix>_<valuetype>_<version> per enabled value
 *     type) --> two NDJSON lines appended to the bulk buffer:
 *
 *       {"index":{"_index":"<prefix>_<valuetype>_<version>_<yyyy-MM-dd>",
 *                 "_id":"<partitionId>-<position>","routing":"<partitionId>"}}\n
 *       {<record JSON>,"sequence":<(partitionId << 51) + counter>}\n
 *
 *   --> flush (POST /_bulk, Content-Type: application/x-ndjson) when the
 *   buffer holds bulk.size records or bulk.memoryLimit bytes, and every
 *   bulk.delay from a scheduled task --> on success: acknowledge the last
 *   position with the metadata {"recordCountersByValueType":{"JOB":n,..}}
 *   (the per-value-type counters behind `sequence`, restored by open()).
 *
 * A failed flush (transport error, HTTP status >= 300, or a response with
 * "errors":true) keeps the whole buffer: export_record() fails, the
 * director retries the same record, which is not appended twice (its
 * position is not above the last appended one), and the flush is tried
 * again. The buffer thus never holds more than bulk.size records.
 * Documents are keyed by partition and position, so replays overwrite
 * the same documents (idempotent).
 */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "exporter/exporter_assert.h"
#include "exporter/exporter.h"
#include "exporter/record_json.h"

#define ES_URL_DEFAULT "http://localhost:9200"
#define ES_PREFIX_DEFAULT "zeebe-record"
#define ES_BULK_SIZE_DEFAULT 1000
#define ES_BULK_DELAY_S_DEFAULT 5
#define ES_BULK_MEMORY_DEFAULT (10 * 1024 * 1024)
#define ES_TIMEOUT_MS_DEFAULT 30000
/* Largest response body read (bulk responses list every item). */
#define ES_RESPONSE_BYTES_MAX (64u * 1024 * 1024)

struct es_buffer {
    char *data;
    size_t len;
    size_t cap;
};

struct es_exporter {
    char id[64];
    char url[1024]; /* without trailing '/' */
    char prefix[64];
    char username[256];
    char password[256];
    bool create_template;
    int64_t bulk_size;
    int64_t bulk_delay_ms;
    int64_t bulk_memory_limit;
    int64_t timeout_ms;
    struct exporter_filter filter;

    struct exporter_controller *ctl;
    CURL *curl;
    struct es_buffer bulk; /* NDJSON waiting for a flush */
    size_t bulk_count;
    int64_t last_added; /* last position appended, -1 */
    int64_t counters[EXPORTER_VALUE_TYPES_MAX];
    char templates_version[64]; /* broker version templates exist for */
    bool templates_done;
    int64_t flush_task;
    struct es_buffer response;
};

/* ------------------------------------------------------------------------
 * Buffers and names
 * --------------------------------------------------------------------- */

static bool es_buffer_append(struct es_buffer *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap == 0 ? 4096 : b->cap;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        char *p = realloc(b->data, cap);
        if (p == NULL) {
            return false;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return true;
}

static void es_buffer_free(struct es_buffer *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

/* "PROCESS_INSTANCE" -> "process-instance" (Zeebe's index naming). */
static void es_index_value_type(const char *name, char *out, size_t out_len)
{
    EXPORTER_ASSERT(out_len > 0);
    size_t i = 0;
    for (; name[i] != '\0' && i + 1 < out_len; i++) {
        out[i] = name[i] == '_' ? '-' : (char)tolower((unsigned char)name[i]);
    }
    out[i] = '\0';
}

/* "PROCESS_INSTANCE" -> "processInstance" (the index.<type> arguments). */
static void es_arg_value_type(const char *name, char *out, size_t out_len)
{
    EXPORTER_ASSERT(out_len > 0);
    size_t j = 0;
    bool upper = false;
    for (size_t i = 0; name[i] != '\0' && j + 1 < out_len; i++) {
        if (name[i] == '_') {
            upper = true;
            continue;
        }
        char c = (char)tolower((unsigned char)name[i]);
        out[j++] = upper ? (char)toupper((unsigned char)c) : c;
        upper = false;
    }
    out[j] = '\0';
}

/* The broker version as it appears in index names. */
static void es_version(const char *v, char *out, size_t out_len)
{
    es_index_value_type(v != NULL && v[0] != '\0' ? v : "unknown", out,
                        out_len);
}

/* ------------------------------------------------------------------------
 * HTTP
 * --------------------------------------------------------------------- */

static size_t es_write_cb(char *ptr, size_t size, size_t nmemb, void *data)
{
    struct es_buffer *b = data;
    size_t n = size * nmemb;
    if (b->len + n > ES_RESPONSE_BYTES_MAX || !es_buffer_append(b, ptr, n)) {
        return 0; /* makes curl fail the transfer */
    }
    return n;
}

/* One request; *status gets the HTTP status. The response body is left in
 * es->response. Returns 0 or EXPORTER_E_IO (transport failure). */
static int es_request(struct es_exporter *es, const char *method,
                      const char *path, const char *body, size_t body_len,
                      const char *content_type, long *status)
{
    EXPORTER_ASSERT(es->curl != NULL);
    char url[2048];
    snprintf(url, sizeof(url), "%s%s", es->url, path);
    char header[128];
    snprintf(header, sizeof(header), "Content-Type: %s", content_type);
    struct curl_slist *headers = curl_slist_append(NULL, header);
    if (headers == NULL) {
        return EXPORTER_E_NOMEM;
    }
    es->response.len = 0;
    CURL *c = es->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)es->timeout_ms);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, es_write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &es->response);
    if (es->username[0] != '\0') {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERNAME, es->username);
        curl_easy_setopt(c, CURLOPT_PASSWORD, es->password);
    }
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(headers);
    if (rc != CURLE_OK) {
        es->ctl->log(es->ctl, EXPORTER_LOG_WARN, "%s %s failed: %s", method,
                     url, curl_easy_strerror(rc));
        return EXPORTER_E_IO;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    return 0;
}

/* A request that must answer 2xx. */
static int es_request_ok(struct es_exporter *es, const char *method,
                         const char *path, const char *body,
                         const char *content_type)
{
    long status = 0;
    int rc =
        es_request(es, method, path, body, strlen(body), content_type, &status);
    if (rc != 0) {
        return rc;
    }
    if (status < 200 || status >= 300) {
        es->ctl->log(es->ctl, EXPORTER_LOG_WARN, "%s %s answered %ld: %.300s",
                     method, path, status,
                     es->response.data != NULL ? es->response.data : "");
        return EXPORTER_E_IO;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Templates
 * --------------------------------------------------------------------- */

static int es_put_json(struct es_exporter *es, const char *path, json_t *body)
{
    if (body == NULL) {
        return EXPORTER_E_NOMEM;
    }
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text == NULL) {
        return EXPORTER_E_NOMEM;
    }
    int rc = es_request_ok(es, "PUT", path, text, "application/json");
    free(text);
    return rc;
}

/* Creates the component template and one index template per enabled value
 * type for broker version v (once per version). */
static int es_templates_ensure(struct es_exporter *es, const char *v)
{
    char version[64];
    es_version(v, version, sizeof(version));
    if (!es->create_template ||
        (es->templates_done && strcmp(version, es->templates_version) == 0)) {
        return 0;
    }
    char path[256];
    snprintf(path, sizeof(path), "/_component_template/%s", es->prefix);
    int rc =
        es_put_json(es, path,
                    json_pack("{s:{s:{s:i,s:i}}}", "template", "settings",
                              "number_of_shards", 1, "number_of_replicas", 0));
    for (int vt = 1; rc == 0 && vt <= RECORD_JSON_VALUE_TYPE_LAST; vt++) {
        if (!es->filter.value_types[vt]) {
            continue;
        }
        char type[64];
        es_index_value_type(record_json_value_type_name(vt), type,
                            sizeof(type));
        char name[200];
        char pattern[208];
        char alias[136];
        snprintf(name, sizeof(name), "%s_%s_%s", es->prefix, type, version);
        snprintf(pattern, sizeof(pattern), "%s_*", name);
        snprintf(alias, sizeof(alias), "%s-%s", es->prefix, type);
        json_t *body = json_pack(
            "{s:[s],s:[s],s:i,s:{s:{s:{}},s:{s:b,s:{s:{s:s},s:{s:s},"
            "s:{s:s},s:{s:s},s:{s:s},s:{s:s},s:{s:s},s:{s:s}}}}}",
            "index_patterns", pattern, "composed_of", es->prefix, "priority",
            20, "template", "aliases", alias, "mappings", "dynamic", 1,
            "properties", "partitionId", "type", "integer", "position", "type",
            "long", "sequence", "type", "long", "key", "type", "long",
            "timestamp", "type", "date", "valueType", "type", "keyword",
            "intent", "type", "keyword", "recordType", "type", "keyword");
        snprintf(path, sizeof(path), "/_index_template/%s", name);
        rc = es_put_json(es, path, body);
    }
    if (rc == 0) {
        snprintf(es->templates_version, sizeof(es->templates_version), "%s",
                 version);
        es->templates_done = true;
    }
    return rc;
}

/* ------------------------------------------------------------------------
 * Metadata: {"recordCountersByValueType":{"JOB":3,...}}
 * --------------------------------------------------------------------- */

static char *es_metadata_encode(const struct es_exporter *es)
{
    json_t *counters = json_object();
    json_t *root = json_pack("{s:o}", "recordCountersByValueType", counters);
    if (root == NULL) {
        return NULL;
    }
    for (int vt = 1; vt <= RECORD_JSON_VALUE_TYPE_LAST; vt++) {
        if (es->counters[vt] > 0 &&
            json_object_set_new(counters, record_json_value_type_name(vt),
                                json_integer(es->counters[vt])) != 0) {
            json_decref(root);
            return NULL;
        }
    }
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return text;
}

static void es_metadata_decode(struct es_exporter *es, const void *data,
                               size_t len)
{
    memset(es->counters, 0, sizeof(es->counters));
    if (len == 0) {
        return;
    }
    json_error_t error;
    json_t *root = json_loadb(data, len, 0, &error);
    json_t *counters = json_object_get(root, "recordCountersByValueType");
    if (!json_is_object(counters)) {
        es->ctl->log(es->ctl, EXPORTER_LOG_WARN,
                     "ignoring unreadable metadata (%zu bytes): sequences "
                     "restart at 1",
                     len);
        json_decref(root);
        return;
    }
    for (int vt = 1; vt <= RECORD_JSON_VALUE_TYPE_LAST; vt++) {
        json_t *n = json_object_get(counters, record_json_value_type_name(vt));
        if (json_is_integer(n) && json_integer_value(n) > 0) {
            es->counters[vt] = json_integer_value(n);
        }
    }
    json_decref(root);
}

/* ------------------------------------------------------------------------
 * Flushing
 * --------------------------------------------------------------------- */

/* Counts the failed items of a bulk response with "errors":true and logs
 * Zeebe's message for them. */
static void es_log_item_errors(struct es_exporter *es, json_t *response)
{
    json_t *items = json_object_get(response, "items");
    size_t failed = 0;
    const char *type = "unknown";
    const char *reason = "unknown";
    size_t i;
    json_t *item;
    json_array_foreach(items, i, item)
    {
        const char *action;
        json_t *result;
        json_object_foreach(item, action, result)
        {
            json_t *error = json_object_get(result, "error");
            if (error != NULL) {
                if (failed == 0) {
                    const char *t =
                        json_string_value(json_object_get(error, "type"));
                    const char *r =
                        json_string_value(json_object_get(error, "reason"));
                    type = t != NULL ? t : type;
                    reason = r != NULL ? r : reason;
                }
                failed++;
            }
        }
    }
    es->ctl->log(es->ctl, EXPORTER_LOG_WARN,
                 "Failed to flush bulk request: [Failed to flush %zu item(s) "
                 "of bulk request [type: %s, reason: %s]]",
                 failed, type, reason);
}

static int es_flush(struct es_exporter *es)
{
    if (es->bulk_count == 0) {
        return 0;
    }
    EXPORTER_ASSERT(es->bulk.len > 0);
    EXPORTER_ASSERT(es->bulk.data[es->bulk.len - 1] == '\n');
    long status = 0;
    int rc = es_request(es, "POST", "/_bulk", es->bulk.data, es->bulk.len,
                        "application/x-ndjson", &status);
    if (rc != 0) {
        return rc;
    }
    if (status < 200 || status >= 300) {
        es->ctl->log(es->ctl, EXPORTER_LOG_WARN,
                     "Failed to flush bulk request: HTTP %ld: %.300s", status,
                     es->response.data != NULL ? es->response.data : "");
        return EXPORTER_E_IO;
    }
    json_t *response =
        json_loadb(es->response.data != NULL ? es->response.data : "",
                   es->response.len, 0, NULL);
    if (!json_is_object(response)) {
        json_decref(response);
        es->ctl->log(es->ctl, EXPORTER_LOG_WARN,
                     "Failed to flush bulk request: unreadable response");
        return EXPORTER_E_IO;
    }
    bool errors = json_is_true(json_object_get(response, "errors"));
    if (errors) {
        es_log_item_errors(es, response);
    }
    json_decref(response);
    if (errors) {
        return EXPORTER_E_IO;
    }
    char *meta = es_metadata_encode(es);
    if (meta == NULL) {
        return EXPORTER_E_NOMEM;
    }
    rc = es->ctl->acknowledge(es->ctl, es->last_added, meta, strlen(meta));
    free(meta);
    es->bulk.len = 0;
    es->bulk_count = 0;
    return rc;
}

static void es_flush_task(void *arg)
{
    struct es_exporter *es = arg;
    es->flush_task = 0;
    (void)es_flush(es); /* a failure is retried by the next export/task */
    int64_t id = es->ctl->schedule(es->ctl, (uint64_t)es->bulk_delay_ms,
                                   es_flush_task, es);
    es->flush_task = id > 0 ? id : 0;
}

/* ------------------------------------------------------------------------
 * The exporter table
 * --------------------------------------------------------------------- */

static pthread_once_t es_curl_once = PTHREAD_ONCE_INIT;

static void es_curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int es_copy_arg(struct exporter_context *ctx, const char *key,
                       const char *def, char *out, size_t out_len)
{
    const char *v = ctx->arg(ctx, key);
    if (v == NULL) {
        v = def;
    }
    if (strlen(v) >= out_len) {
        return ctx->fail(ctx, key, "longer than %zu characters", out_len - 1);
    }
    snprintf(out, out_len, "%s", v);
    return 0;
}

static int es_configure(struct exporter_context *ctx, void **instance)
{
    struct es_exporter *es = calloc(1, sizeof(*es));
    if (es == NULL) {
        return ctx->fail(ctx, NULL, "out of memory");
    }
    snprintf(es->id, sizeof(es->id), "%s", ctx->id);
    int64_t delay_max = 24LL * 3600 * 1000;
    int rc = es_copy_arg(ctx, "url", ES_URL_DEFAULT, es->url, sizeof(es->url));
    rc = rc != 0 ? rc
                 : es_copy_arg(ctx, "index.prefix", ES_PREFIX_DEFAULT,
                               es->prefix, sizeof(es->prefix));
    rc = rc != 0 ? rc
                 : es_copy_arg(ctx, "authentication.username", "", es->username,
                               sizeof(es->username));
    rc = rc != 0 ? rc
                 : es_copy_arg(ctx, "authentication.password", "", es->password,
                               sizeof(es->password));
    rc = rc != 0 ? rc
                 : ctx->arg_int64(ctx, "bulk.size", ES_BULK_SIZE_DEFAULT, 1,
                                  1000000, &es->bulk_size);
    rc = rc != 0 ? rc
                 : ctx->arg_duration_ms(ctx, "bulk.delay",
                                        ES_BULK_DELAY_S_DEFAULT * 1000, 1000, 1,
                                        delay_max, &es->bulk_delay_ms);
    rc = rc != 0
             ? rc
             : ctx->arg_int64(ctx, "bulk.memoryLimit", ES_BULK_MEMORY_DEFAULT,
                              1, 1024LL * 1024 * 1024, &es->bulk_memory_limit);
    rc = rc != 0
             ? rc
             : ctx->arg_int64(ctx, "requestTimeoutMs", ES_TIMEOUT_MS_DEFAULT, 1,
                              3600000, &es->timeout_ms);
    rc = rc != 0 ? rc
                 : ctx->arg_bool(ctx, "index.createTemplate", true,
                                 &es->create_template);
    if (rc == 0) {
        size_t n = strlen(es->url);
        while (n > 0 && es->url[n - 1] == '/') {
            es->url[--n] = '\0';
        }
        if (strncmp(es->url, "http://", 7) != 0 &&
            strncmp(es->url, "https://", 8) != 0) {
            rc = ctx->fail(ctx, "url",
                           "expected an http:// or https:// URL, got \"%s\"",
                           es->url);
        } else if (es->prefix[0] == '\0' || strchr(es->prefix, '_') != NULL) {
            rc = ctx->fail(ctx, "index.prefix",
                           "must be non-empty and must not contain '_' "
                           "(got \"%s\")",
                           es->prefix);
        }
    }
    /* Record and value type filters with Zeebe's defaults. */
    bool on = false;
    rc = rc != 0 ? rc : ctx->arg_bool(ctx, "index.command", false, &on);
    ctx->filter.record_types[TANDEM__RECORD__RECORD_TYPE__COMMAND] = on;
    rc = rc != 0 ? rc : ctx->arg_bool(ctx, "index.event", true, &on);
    ctx->filter.record_types[TANDEM__RECORD__RECORD_TYPE__EVENT] = on;
    rc = rc != 0 ? rc : ctx->arg_bool(ctx, "index.rejection", false, &on);
    ctx->filter.record_types[TANDEM__RECORD__RECORD_TYPE__COMMAND_REJECTION] =
        on;
    for (int vt = 1; rc == 0 && vt <= RECORD_JSON_VALUE_TYPE_LAST; vt++) {
        char key[96] = "index.";
        es_arg_value_type(record_json_value_type_name(vt), key + 6,
                          sizeof(key) - 6);
        bool def = vt != TANDEM__RECORD__VALUE_TYPE__JOB_BATCH &&
                   vt != TANDEM__RECORD__VALUE_TYPE__PROCESS_INSTANCE_RESULT;
        rc = ctx->arg_bool(ctx, key, def, &on);
        ctx->filter.value_types[vt] = on;
    }
    if (rc != 0) {
        free(es);
        return rc;
    }
    es->filter = ctx->filter;
    es->last_added = -1;
    pthread_once(&es_curl_once, es_curl_init);
    *instance = es;
    return 0;
}

static int es_open(void *instance, struct exporter_controller *ctl)
{
    struct es_exporter *es = instance;
    EXPORTER_ASSERT(es != NULL && ctl != NULL);
    es->ctl = ctl;
    if (es->curl == NULL) {
        es->curl = curl_easy_init();
        if (es->curl == NULL) {
            return EXPORTER_E_NOMEM;
        }
    }
    const void *meta = NULL;
    size_t meta_len = 0;
    ctl->metadata(ctl, &meta, &meta_len);
    es_metadata_decode(es, meta, meta_len);
    es->last_added = ctl->last_position(ctl);
    if (es->flush_task == 0) {
        int64_t id =
            ctl->schedule(ctl, (uint64_t)es->bulk_delay_ms, es_flush_task, es);
        es->flush_task = id > 0 ? id : 0;
    }
    return 0;
}

static int es_export(void *instance, const struct exporter_record *r)
{
    struct es_exporter *es = instance;
    EXPORTER_ASSERT(es != NULL && r != NULL);
    EXPORTER_ASSERT(r->value_type > 0 &&
                    r->value_type < EXPORTER_VALUE_TYPES_MAX);
    if (r->position > es->last_added) {
        int rc = es_templates_ensure(es, r->broker_version);
        if (rc != 0) {
            return rc;
        }
        char type[64];
        char version[64];
        char date[16];
        es_index_value_type(r->value_type_name, type, sizeof(type));
        es_version(r->broker_version, version, sizeof(version));
        time_t secs = (time_t)(r->timestamp / 1000);
        struct tm tm;
        if (gmtime_r(&secs, &tm) == NULL ||
            strftime(date, sizeof(date), "%Y-%m-%d", &tm) == 0) {
            snprintf(date, sizeof(date), "1970-01-01");
        }
        char action[512];
        int n = snprintf(action, sizeof(action),
                         "{\"index\":{\"_index\":\"%s_%s_%s_%s\",\"_id\":\""
                         "%" PRIu32 "-%" PRId64 "\",\"routing\":\"%" PRIu32
                         "\"}}\n",
                         es->prefix, type, version, date, r->partition_id,
                         r->position, r->partition_id);
        EXPORTER_ASSERT(n > 0 && (size_t)n < sizeof(action));
        int64_t sequence =
            ((int64_t)r->partition_id << 51) + es->counters[r->value_type] + 1;
        char tail[64];
        int m = snprintf(tail, sizeof(tail), ",\"sequence\":%" PRId64 "}\n",
                         sequence);
        EXPORTER_ASSERT(r->json_len >= 2 && r->json[r->json_len - 1] == '}');
        size_t before = es->bulk.len;
        if (!es_buffer_append(&es->bulk, action, (size_t)n) ||
            !es_buffer_append(&es->bulk, r->json, r->json_len - 1) ||
            !es_buffer_append(&es->bulk, tail, (size_t)m)) {
            es->bulk.len = before;
            return EXPORTER_E_NOMEM;
        }
        es->counters[r->value_type]++;
        es->bulk_count++;
        es->last_added = r->position;
    }
    if ((int64_t)es->bulk_count >= es->bulk_size ||
        (int64_t)es->bulk.len >= es->bulk_memory_limit) {
        return es_flush(es);
    }
    return 0;
}

static void es_close(void *instance)
{
    struct es_exporter *es = instance;
    if (es == NULL) {
        return;
    }
    if (es->curl != NULL) {
        if (es->bulk_count > 0 && es_flush(es) != 0) {
            es->ctl->log(es->ctl, EXPORTER_LOG_WARN,
                         "closing with %zu unflushed records (they are "
                         "exported again after the restart)",
                         es->bulk_count);
        }
        curl_easy_cleanup(es->curl);
    }
    es_buffer_free(&es->bulk);
    es_buffer_free(&es->response);
    free(es);
}

const struct exporter_def exporter_elasticsearch_def = {
    .abi_version = EXPORTER_ABI_VERSION,
    .type = "elasticsearch",
    .configure = es_configure,
    .open = es_open,
    .export_record = es_export,
    .close = es_close,
};
