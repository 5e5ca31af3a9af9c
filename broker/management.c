/* management.c: the management HTTP server (see management.h).
 *
 * Data flow:
 *
 *   uv_tcp listener --connection--> accept into a management_conn
 *     -> above connections_max: a static 503 JSON response is written with
 *        uv_try_write and the connection is closed;
 *     -> otherwise the socket is handed to h2o (h2o_uv_socket_create +
 *        h2o_accept); h2o parses HTTP/1.x and calls router_on_req() for
 *        every request;
 *   router_on_req -> route table lookup (path, then method)
 *     -> provider->status() into impl->status (one snapshot per request)
 *     -> an endpoint function builds the status code and JSON body
 *     -> reply_json()/reply_empty() -> h2o_send_inline().
 *   cluster operation paths (ops_route, before the table): path segments,
 *     query (dryRun, force, soft, replicationFactor) and JSON body (h2o
 *     buffers it, at most MANAGEMENT_BODY_MAX) -> a struct
 *     management_change_request -> provider->change() -> its reply (202
 *     body, {"message"} errors, the exporting envelope) -> reply_json().
 *
 * Ownership: the impl (heap) owns the h2o global configuration and
 * context, the listener and every connection. Connections are in an
 * intrusive list so that close can shut them down; each conn is freed in
 * its uv close callback.
 *
 * Close sequence (libuv rules: memory of a handle is released only after
 * its close callback):
 *   1. management_close(): stop the listener (uv_close), shutdown(2) every
 *      open socket so that h2o reads EOF and closes its connection itself
 *      (its timers and pools are released by h2o on that path). Not
 *      h2o_context_request_shutdown(): its HTTP/2 part arms a graceful
 *      shutdown timer that h2o_context_dispose() then finds pending;
 *   2. when the listener and every connection are closed, from a close
 *      callback of a sentinel timer (so never on the caller's stack): dispose
 *      the h2o context (closes its uv timers and async handle; libh2o 2.2
 *      also runs uv_run(UV_RUN_NOWAIT) there) and configuration;
 *   3. close the sentinel twice more in a row: the second close callback
 *      runs in a later loop iteration than every close h2o started in
 *      step 2, so h2o's handles (embedded in the impl) are finished; then
 *      free the impl and call the user's callback.
 */
/* getaddrinfo, shutdown, pthread_rwlock_t (uv.h) are POSIX, not C11. */
#define _POSIX_C_SOURCE 200809L

#include "broker/management.h"

#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <h2o.h>
#include <jansson.h>

#include "broker/placement.h"

_Static_assert(MANAGEMENT_PARTITIONS_MAX == BROKER_PARTITIONS_MAX,
               "a broker may host every partition");

#define MANAGEMENT__BACKLOG 128
#define MANAGEMENT__ERRMSG_SIZE 256

/* The response to a connection above connections_max. Static so that it
 * can be written with uv_try_write without allocating. */
#define MANAGEMENT__BUSY_BODY                                                  \
    "{\"status\":503,\"error\":\"Service Unavailable\",\"message\":"           \
    "\"too many connections\"}"
_Static_assert(sizeof(MANAGEMENT__BUSY_BODY) - 1 == 77, "Content-Length");
static const char MANAGEMENT__BUSY_RESPONSE[] =
    "HTTP/1.1 503 Service Unavailable\r\n"
    "Content-Type: application/json\r\n"
    "Connection: close\r\n"
    "Content-Length: 77\r\n"
    "\r\n" MANAGEMENT__BUSY_BODY;

struct management_conn {
    uv_tcp_t tcp; /* first member: the close callback casts back */
    struct management_impl *impl;
    struct management_conn *prev;
    struct management_conn *next;
    bool h2o_owned; /* the socket belongs to h2o (else: rejected) */
};

/* h2o handler with a back pointer to the server. */
struct management_handler {
    h2o_handler_t super; /* first member: h2o allocates and casts */
    struct management_impl *impl;
};

/* A request answered later: req is NULL once h2o freed it. */
struct management_deferred {
    uint64_t ticket; /* 0: free */
    h2o_req_t *req;
    int kind;
};

struct management_impl {
    struct management *owner;
    uv_loop_t *loop;
    struct management_provider provider;
    struct sockaddr_storage addr;
    uint32_t connections_max;
    uint32_t connection_count;
    struct management_conn *conns; /* open connections */

    uv_tcp_t listener;
    bool listener_open; /* uv_tcp_init done, uv_close not yet finished */
    bool listening;     /* uv_listen succeeded */
    bool started;       /* management_start called */
    bool closing;       /* management_close called */
    bool h2o_disposed;  /* step 2 started */
    uint16_t bound_port;
    management_close_cb close_cb;
    uv_timer_t sentinel; /* step 3 of the close sequence */

    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;

    /* One snapshot per request; too big for the stack of a callback. */
    struct management_status status;
    /* The cluster operation request being parsed and answered. */
    struct management_change_request change_req;
    /* Requests the provider answers later (management_reply_finish). */
    struct management_deferred deferred[MANAGEMENT_DEFERRED_MAX];
    uint64_t next_ticket;
    /* installed[id]: partition id has been leader or follower (Zeebe's
     * PartitionInstallStatus; never reset). */
    bool installed[MANAGEMENT_PARTITIONS_MAX + 1];

    char errmsg[MANAGEMENT__ERRMSG_SIZE];
};

const char *management_strerror(int code)
{
    switch (code) {
#define MANAGEMENT_ERRNO_CASE(name, value, msg)                                \
    case value:                                                                \
        return msg;
        MANAGEMENT_ERRNO_MAP(MANAGEMENT_ERRNO_CASE)
#undef MANAGEMENT_ERRNO_CASE
    default:
        return "unknown error";
    }
}

const char *management_errmsg(const struct management *m)
{
    if (m == NULL || m->impl == NULL) {
        return "";
    }
    return m->impl->errmsg;
}

/* ------------------------------------------------------------------------
 * Broker state -> probe results
 * ------------------------------------------------------------------------ */

/* The three probes of management.h, computed from one snapshot. */
struct probe {
    bool started;
    bool ready;
    bool healthy;
};

static const char *role_zeebe(enum management_role role)
{
    switch (role) {
    case MANAGEMENT_ROLE_LEADER:
        return "LEADER";
    case MANAGEMENT_ROLE_FOLLOWER:
        return "FOLLOWER";
    case MANAGEMENT_ROLE_INACTIVE:
    default:
        return "INACTIVE";
    }
}

static const char *health_zeebe(enum management_health health)
{
    switch (health) {
    case MANAGEMENT_HEALTH_HEALTHY:
        return "HEALTHY";
    case MANAGEMENT_HEALTH_UNHEALTHY:
        return "UNHEALTHY";
    case MANAGEMENT_HEALTH_DEAD:
    default:
        return "DEAD";
    }
}

/* Asks the provider for a snapshot into impl->status and updates the
 * install latches. Returns 0, or the provider's negative code; a snapshot
 * with an impossible content (too many partitions, a partition id out of
 * range) is -1 as well, with errmsg set. */
static int probe_refresh(struct management_impl *impl)
{
    struct management_status *st = &impl->status;
    memset(st, 0, sizeof(*st));
    int rv = impl->provider.status(impl->provider.data, st);
    if (rv != 0) {
        snprintf(impl->errmsg, sizeof(impl->errmsg),
                 "the broker could not report its state (code %d)", rv);
        return rv < 0 ? rv : -1;
    }
    st->version[MANAGEMENT_VERSION_MAX] = '\0';
    if (st->partition_count > MANAGEMENT_PARTITIONS_MAX) {
        snprintf(impl->errmsg, sizeof(impl->errmsg),
                 "the broker reported %u partitions (at most %d)",
                 st->partition_count, MANAGEMENT_PARTITIONS_MAX);
        return -1;
    }
    for (uint32_t i = 0; i < st->partition_count; i++) {
        const struct management_partition *p = &st->partitions[i];
        if (p->partition_id == 0 ||
            p->partition_id > MANAGEMENT_PARTITIONS_MAX) {
            snprintf(impl->errmsg, sizeof(impl->errmsg),
                     "the broker reported partition id %u (1 to %d)",
                     p->partition_id, MANAGEMENT_PARTITIONS_MAX);
            return -1;
        }
        if (p->role == MANAGEMENT_ROLE_LEADER ||
            p->role == MANAGEMENT_ROLE_FOLLOWER) {
            impl->installed[p->partition_id] = true;
        }
    }
    return 0;
}

static struct probe probe_compute(const struct management_impl *impl)
{
    const struct management_status *st = &impl->status;
    struct probe pr = {.started = st->started,
                       .ready = st->started && st->ready,
                       .healthy = st->started};
    for (uint32_t i = 0; i < st->partition_count; i++) {
        const struct management_partition *p = &st->partitions[i];
        if (!impl->installed[p->partition_id]) {
            pr.ready = false;
        }
        if (p->health != MANAGEMENT_HEALTH_HEALTHY) {
            pr.healthy = false;
        }
    }
    if (pr.ready) {
        assert(pr.started);
    }
    if (pr.healthy) {
        assert(pr.started);
    }
    return pr;
}

/* ------------------------------------------------------------------------
 * Responses
 * ------------------------------------------------------------------------ */

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Unknown";
    }
}

static void reply_empty(h2o_req_t *req, int status)
{
    req->res.status = status;
    req->res.reason = reason_phrase(status);
    req->res.content_length = 0;
    h2o_send_inline(req, "", 0);
}

/* Sends obj (reference stolen) as the JSON body. An encoding failure (out
 * of memory) becomes a bare 500. */
static void reply_json(h2o_req_t *req, int status, json_t *obj)
{
    char *body = obj != NULL ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (body == NULL) {
        /* UNTESTED: jansson allocation failure. */
        reply_empty(req, 500);
        return;
    }
    req->res.status = status;
    req->res.reason = reason_phrase(status);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    req->res.content_length = strlen(body);
    h2o_send_inline(req, body, req->res.content_length);
    free(body);
}

/* An error body in Spring's shape: {"status", "error", "message", "path"}. */
static void reply_error(h2o_req_t *req, int status, const char *message)
{
    json_t *obj =
        json_pack("{s:i, s:s, s:s, s:s%}", "status", status, "error",
                  reason_phrase(status), "message", message, "path",
                  req->path_normalized.base, req->path_normalized.len);
    reply_json(req, status, obj);
}

/* {"status":"UP"} or {"status":"DOWN"} with 200 or 503. */
static void reply_group(h2o_req_t *req, bool up)
{
    reply_json(req, up ? 200 : 503,
               json_pack("{s:s}", "status", up ? "UP" : "DOWN"));
}

/* ------------------------------------------------------------------------
 * Endpoints. Each runs after a successful probe_refresh().
 * ------------------------------------------------------------------------ */

enum endpoint {
    ENDPOINT_STARTUP,
    ENDPOINT_READY,
    ENDPOINT_HEALTH,
    ENDPOINT_ACTUATOR_HEALTH,
    ENDPOINT_GROUP_STATUS,
    ENDPOINT_GROUP_READINESS,
    ENDPOINT_GROUP_STARTUP,
    ENDPOINT_GROUP_LIVENESS,
    ENDPOINT_PARTITIONS,
    ENDPOINT_CLUSTER,
};

struct route {
    const char *path;
    enum endpoint endpoint;
};

static const struct route ROUTES[] = {
    {"/startup", ENDPOINT_STARTUP},
    {"/ready", ENDPOINT_READY},
    {"/health", ENDPOINT_HEALTH},
    {"/actuator/health", ENDPOINT_ACTUATOR_HEALTH},
    {"/actuator/health/status", ENDPOINT_GROUP_STATUS},
    {"/actuator/health/readiness", ENDPOINT_GROUP_READINESS},
    {"/actuator/health/startup", ENDPOINT_GROUP_STARTUP},
    {"/actuator/health/liveness", ENDPOINT_GROUP_LIVENESS},
    {"/actuator/partitions", ENDPOINT_PARTITIONS},
    {"/actuator/cluster", ENDPOINT_CLUSTER},
};

/* GET /actuator/health: Spring's root body with one component per Zeebe
 * indicator (brokerStartup, brokerReady, brokerStatus) and the partitions'
 * health; DOWN if any component is DOWN. */
static void endpoint_actuator_health(struct management_impl *impl,
                                     h2o_req_t *req)
{
    struct probe pr = probe_compute(impl);
    const struct management_status *st = &impl->status;
    bool up = pr.started && pr.ready && pr.healthy;
    json_t *partitions = json_object();
    for (uint32_t i = 0; i < st->partition_count && partitions != NULL; i++) {
        const struct management_partition *p = &st->partitions[i];
        char key[16];
        snprintf(key, sizeof(key), "%u", p->partition_id);
        json_object_set_new(
            partitions, key,
            json_pack("{s:s, s:{s:s, s:s}}", "status",
                      p->health == MANAGEMENT_HEALTH_HEALTHY ? "UP" : "DOWN",
                      "details", "health", health_zeebe(p->health), "role",
                      role_zeebe(p->role)));
    }
    json_t *obj =
        json_pack("{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s, s:o}}, "
                  "s:[s,s,s,s]}",
                  "status", up ? "UP" : "DOWN", "components", "brokerStartup",
                  "status", pr.started ? "UP" : "DOWN", "brokerReady", "status",
                  pr.ready ? "UP" : "DOWN", "brokerStatus", "status",
                  pr.healthy ? "UP" : "DOWN", "partitions", "status",
                  pr.healthy ? "UP" : "DOWN", "components", partitions,
                  "groups", "liveness", "readiness", "startup", "status");
    reply_json(req, up ? 200 : 503, obj);
}

/* GET /actuator/partitions: Zeebe's PartitionStatus map (zeebe-facts 1.6)
 * with Tandem's raft numbers added. Mapping:
 *   role                        raft role, upper case
 *   processedPosition           applied index
 *   snapshotId                  "<index>-<term>-<index>-<index>" (Zeebe's
 *                               index-term-processedPosition-
 *                               exportedPosition), omitted without one
 *   processedPositionInSnapshot snapshot index, omitted without one
 *   streamProcessorPhase        PROCESSING (leader), REPLAY (follower),
 *                               FAILED (health DEAD), omitted if inactive
 *   exporterPhase, exportedPosition   as the broker reports them;
 *                               omitted when exporter_phase is ""
 *   health, term, commitIndex, appliedIndex, lastIndex, snapshotIndex,
 *   snapshotTerm                Tandem additions. */
static void endpoint_partitions(struct management_impl *impl, h2o_req_t *req)
{
    const struct management_status *st = &impl->status;
    json_t *obj = json_object();
    for (uint32_t i = 0; i < st->partition_count && obj != NULL; i++) {
        const struct management_partition *p = &st->partitions[i];
        json_t *part =
            json_pack("{s:s, s:I, s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "role",
                      role_zeebe(p->role), "processedPosition",
                      (json_int_t)p->applied_index, "health",
                      health_zeebe(p->health), "term", (json_int_t)p->term,
                      "commitIndex", (json_int_t)p->commit_index,
                      "appliedIndex", (json_int_t)p->applied_index, "lastIndex",
                      (json_int_t)p->last_index, "snapshotIndex",
                      (json_int_t)p->snapshot_index, "snapshotTerm",
                      (json_int_t)p->snapshot_term);
        if (part == NULL) {
            /* UNTESTED: jansson allocation failure. */
            json_decref(obj);
            obj = NULL;
            break;
        }
        if (p->snapshot_index > 0) {
            char id[96];
            snprintf(id, sizeof(id), "%llu-%llu-%llu-%llu",
                     (unsigned long long)p->snapshot_index,
                     (unsigned long long)p->snapshot_term,
                     (unsigned long long)p->snapshot_index,
                     (unsigned long long)p->snapshot_index);
            json_object_set_new(part, "snapshotId", json_string(id));
            json_object_set_new(part, "processedPositionInSnapshot",
                                json_integer((json_int_t)p->snapshot_index));
        }
        const char *phase = NULL;
        if (p->health == MANAGEMENT_HEALTH_DEAD) {
            phase = "FAILED";
        } else if (p->role == MANAGEMENT_ROLE_LEADER) {
            phase = "PROCESSING";
        } else if (p->role == MANAGEMENT_ROLE_FOLLOWER) {
            phase = "REPLAY";
        }
        if (phase != NULL) {
            json_object_set_new(part, "streamProcessorPhase",
                                json_string(phase));
        }
        if (p->exporter_phase[0] != '\0') {
            char ph[MANAGEMENT_PHASE_MAX + 1];
            memcpy(ph, p->exporter_phase, MANAGEMENT_PHASE_MAX);
            ph[MANAGEMENT_PHASE_MAX] = '\0';
            json_object_set_new(part, "exporterPhase", json_string(ph));
            json_object_set_new(part, "exportedPosition",
                                json_integer((json_int_t)p->exported_position));
        }
        char key[16];
        snprintf(key, sizeof(key), "%u", p->partition_id);
        json_object_set_new(obj, key, part);
    }
    reply_json(req, 200, obj);
}

static void endpoint_run(struct management_impl *impl, enum endpoint ep,
                         h2o_req_t *req)
{
    struct probe pr = probe_compute(impl);
    switch (ep) {
    case ENDPOINT_STARTUP:
        reply_empty(req, pr.started ? 204 : 503);
        return;
    case ENDPOINT_READY:
        reply_empty(req, pr.ready ? 204 : 503);
        return;
    case ENDPOINT_HEALTH:
        reply_empty(req, pr.healthy ? 204 : 503);
        return;
    case ENDPOINT_GROUP_STATUS:
        reply_group(req, pr.healthy);
        return;
    case ENDPOINT_GROUP_READINESS:
        reply_group(req, pr.ready);
        return;
    case ENDPOINT_GROUP_STARTUP:
        reply_group(req, pr.started);
        return;
    case ENDPOINT_GROUP_LIVENESS:
        reply_group(req, true);
        return;
    case ENDPOINT_ACTUATOR_HEALTH:
        endpoint_actuator_health(impl, req);
        return;
    case ENDPOINT_CLUSTER: {
        /* GET /actuator/cluster: the cluster configuration (zeebe-facts
         * 1.2), from the broker. */
        void *obj = NULL;
        if (impl->provider.cluster == NULL) {
            reply_error(req, 404, "no cluster configuration here");
        } else if (impl->provider.cluster(impl->provider.data, &obj) != 0 ||
                   obj == NULL) {
            reply_error(req, 503, "the cluster configuration is unavailable");
        } else {
            reply_json(req, 200, (json_t *)obj);
        }
        return;
    }
    case ENDPOINT_PARTITIONS:
        endpoint_partitions(impl, req);
        return;
    }
    /* UNTESTED: every enum value returns above. */
    reply_error(req, 500, "unrouted endpoint");
}

/* ------------------------------------------------------------------------
 * Cluster operations: parsing and dispatch to provider->change()
 * ------------------------------------------------------------------------ */

#define MANAGEMENT__SEGMENTS_MAX 8

static bool method_is(const h2o_req_t *req, const char *m)
{
    return h2o_memis(req->method.base, req->method.len, m, strlen(m));
}

/* {"message": text} with status. */
static void reply_message(h2o_req_t *req, int status, const char *text)
{
    reply_json(req, status, json_pack("{s:s}", "message", text));
}

__attribute__((format(printf, 3, 4))) static void
reply_messagef(h2o_req_t *req, int status, const char *fmt, ...)
{
    char text[MANAGEMENT__ERRMSG_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    reply_message(req, status, text);
}

/* 405 with the Allow header naming the one allowed method (or two). */
static void reply_method(h2o_req_t *req, const char *allow)
{
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, allow,
                   strlen(allow));
    reply_error(req, 405, "method not allowed here");
}

/* Zeebe's answer to an unsupported resource: 501, plain text. */
static void reply_not_implemented(h2o_req_t *req)
{
    static const char body[] = "Not Implemented";
    req->res.status = 501;
    req->res.reason = reason_phrase(501);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/plain"));
    req->res.content_length = sizeof(body) - 1;
    h2o_send_inline(req, body, sizeof(body) - 1);
}

/* Parses s[0..len) as a decimal number <= max. Returns 0 or -1. */
static int number_parse(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 20) {
        return -1;
    }
    for (size_t k = 0; k < len; k++) {
        if (s[k] < '0' || s[k] > '9') {
            return -1;
        }
        if (v > (max - (uint64_t)(s[k] - '0')) / 10) {
            return -1;
        }
        v = v * 10 + (uint64_t)(s[k] - '0');
    }
    *out = v;
    return 0;
}

/* The query parameters this server knows. */
struct query {
    int dry_run;                /* -1 absent, 0, 1 */
    int force;                  /* -1 absent, 0, 1 */
    int soft;                   /* -1 absent, 0, 1 */
    int64_t replication_factor; /* -1 absent */
};

/* Parses the query string; on a bad value answers 400 and returns -1. */
static int query_parse(h2o_req_t *req, struct query *q)
{
    q->dry_run = q->force = q->soft = -1;
    q->replication_factor = -1;
    if (req->query_at == SIZE_MAX || req->query_at >= req->path.len) {
        return 0;
    }
    const char *p = req->path.base + req->query_at + 1;
    const char *end = req->path.base + req->path.len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp != NULL ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        size_t klen = (size_t)((eq != NULL ? eq : stop) - p);
        const char *v = eq != NULL ? eq + 1 : stop;
        size_t vlen = (size_t)(stop - v);
        int *flag = NULL;
        if (h2o_memis(p, klen, H2O_STRLIT("dryRun"))) {
            flag = &q->dry_run;
        } else if (h2o_memis(p, klen, H2O_STRLIT("force"))) {
            flag = &q->force;
        } else if (h2o_memis(p, klen, H2O_STRLIT("soft"))) {
            flag = &q->soft;
        }
        if (flag != NULL) {
            if (h2o_lcstris(v, vlen, H2O_STRLIT("true"))) {
                *flag = 1;
            } else if (h2o_lcstris(v, vlen, H2O_STRLIT("false"))) {
                *flag = 0;
            } else {
                reply_messagef(req, 400,
                               "query parameter '%.*s' must be true or false",
                               (int)klen, p);
                return -1;
            }
        } else if (h2o_memis(p, klen, H2O_STRLIT("replicationFactor"))) {
            uint64_t rf = 0;
            if (number_parse(v, vlen, UINT32_MAX, &rf) != 0 || rf == 0) {
                reply_message(req, 400,
                              "query parameter 'replicationFactor' must be a "
                              "number greater than 0");
                return -1;
            }
            q->replication_factor = (int64_t)rf;
        }
        p = stop + 1;
    }
    return 0;
}

/* The request body as JSON into *out (NULL when there is no body). A body
 * that is not application/json is 415, malformed JSON 400; both answered
 * here, returning -1. */
static int body_parse(h2o_req_t *req, json_t **out)
{
    *out = NULL;
    if (req->entity.base == NULL || req->entity.len == 0) {
        return 0;
    }
    ssize_t h = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    const char *json_type = "application/json";
    if (h < 0 || req->headers.entries[h].value.len < strlen(json_type) ||
        !h2o_lcstris(req->headers.entries[h].value.base, strlen(json_type),
                     json_type, strlen(json_type))) {
        reply_message(req, 415,
                      "the request body must be sent with Content-Type: "
                      "application/json");
        return -1;
    }
    json_error_t jerr;
    *out = json_loadb(req->entity.base, req->entity.len, JSON_REJECT_DUPLICATES,
                      &jerr);
    if (*out == NULL) {
        reply_messagef(req, 400, "malformed JSON body (line %d column %d): %s",
                       jerr.line, jerr.column, jerr.text);
        return -1;
    }
    return 0;
}

/* Fills cr->brokers from a JSON array of ids, numbers or numeric strings.
 * Answers 400 and returns -1 on anything else. */
static int brokers_parse(h2o_req_t *req, const json_t *body,
                         struct management_change_request *cr)
{
    size_t k;
    json_t *v;
    if (!json_is_array(body)) {
        reply_message(req, 400,
                      "the body must be a JSON array of broker ids, e.g. "
                      "[0, 1, 2]");
        return -1;
    }
    if (json_array_size(body) > MANAGEMENT_BROKERS_MAX) {
        reply_messagef(req, 400, "at most %d broker ids are accepted",
                       MANAGEMENT_BROKERS_MAX);
        return -1;
    }
    json_array_foreach((json_t *)(uintptr_t)body, k, v)
    {
        uint64_t id = 0;
        bool ok;
        if (json_is_integer(v)) {
            ok = json_integer_value(v) >= 0 &&
                 json_integer_value(v) <= (json_int_t)UINT32_MAX;
            id = ok ? (uint64_t)json_integer_value(v) : 0;
        } else if (json_is_string(v)) {
            ok = number_parse(json_string_value(v), json_string_length(v),
                              UINT32_MAX, &id) == 0;
        } else {
            ok = false;
        }
        if (!ok) {
            reply_messagef(req, 400,
                           "broker id at index %zu is not a non-negative "
                           "integer",
                           k);
            return -1;
        }
        cr->brokers[cr->broker_count++] = (uint32_t)id;
    }
    return 0;
}

/* Calls the provider and sends its reply. */
/* Sends the provider's answer to a cluster operation request of kind. */
static void change_reply(h2o_req_t *req, int kind, struct management_reply *out)
{
    out->message[MANAGEMENT_MESSAGE_MAX] = '\0';
    if (out->status < 200 || out->status > 599) {
        json_decref((json_t *)out->body);
        reply_messagef(req, 500,
                       "the broker could not handle the request (status %d)",
                       out->status);
        return;
    }
    if (kind == MANAGEMENT_REQUEST_EXPORTING_PAUSE ||
        kind == MANAGEMENT_REQUEST_EXPORTING_SOFT_PAUSE ||
        kind == MANAGEMENT_REQUEST_EXPORTING_RESUME) {
        /* Zeebe 8.4.7+: a WebEndpointResponse serialized as JSON. */
        json_t *inner = (json_t *)out->body;
        if (inner == NULL && out->status >= 400) {
            inner = json_string(out->message[0] != '\0'
                                    ? out->message
                                    : reason_phrase(out->status));
        }
        reply_json(req, 200,
                   json_pack("{s:o?, s:i, s:n}", "body", inner, "status",
                             out->status, "contentType"));
        return;
    }
    if (out->body != NULL) {
        reply_json(req, out->status, (json_t *)out->body);
    } else if (out->status >= 400) {
        reply_message(req, out->status,
                      out->message[0] != '\0' ? out->message
                                               : reason_phrase(out->status));
    } else {
        reply_empty(req, out->status);
    }
}

/* Lives in a deferred request's memory pool: when h2o frees the request
 * (answered, or its connection closed first), the slot forgets it. */
struct deferred_guard {
    struct management_impl *impl;
    uint64_t ticket;
};

static void deferred_guard_dispose(void *p)
{
    struct deferred_guard *g = p;
    for (uint32_t i = 0; i < MANAGEMENT_DEFERRED_MAX; i++) {
        if (g->impl->deferred[i].ticket == g->ticket) {
            g->impl->deferred[i].req = NULL;
        }
    }
}

static void change_dispatch(struct management_impl *impl, h2o_req_t *req,
                            const struct management_change_request *cr)
{
    struct management_reply out;
    struct management_deferred *slot = NULL;
    memset(&out, 0, sizeof(out));
    if (impl->provider.change == NULL) {
        reply_message(req, 404, "cluster operations are not served here");
        return;
    }
    for (uint32_t i = 0; i < MANAGEMENT_DEFERRED_MAX && slot == NULL; i++) {
        if (impl->deferred[i].ticket == 0) {
            slot = &impl->deferred[i];
        }
    }
    if (slot != NULL) {
        out.ticket = ++impl->next_ticket;
    }
    int rv = impl->provider.change(impl->provider.data, cr, &out);
    if (rv == MANAGEMENT_REPLY_LATER && out.ticket != 0) {
        struct deferred_guard *g = h2o_mem_alloc_shared(
            &req->pool, sizeof(*g), deferred_guard_dispose);
        g->impl = impl;
        g->ticket = out.ticket;
        slot->ticket = out.ticket;
        slot->req = req;
        slot->kind = cr->kind;
        return;
    }
    if (rv != 0) {
        json_decref((json_t *)out.body);
        reply_messagef(req, 500,
                       "the broker could not handle the request (code %d, "
                       "status %d)",
                       rv, out.status);
        return;
    }
    change_reply(req, cr->kind, &out);
}

int management_reply_finish(struct management *m, uint64_t ticket,
                            struct management_reply *reply)
{
    struct management_impl *impl;
    assert(m != NULL && reply != NULL);
    impl = m->impl;
    for (uint32_t i = 0; impl != NULL && !impl->closing && ticket != 0 &&
                         i < MANAGEMENT_DEFERRED_MAX;
         i++) {
        struct management_deferred *d = &impl->deferred[i];
        if (d->ticket != ticket) {
            continue;
        }
        h2o_req_t *req = d->req;
        int kind = d->kind;
        memset(d, 0, sizeof(*d));
        if (req == NULL) {
            break; /* its connection closed meanwhile */
        }
        change_reply(req, kind, reply);
        return 0;
    }
    json_decref((json_t *)reply->body);
    reply->body = NULL;
    return MANAGEMENT_E_STATE;
}

/* Routes the cluster-operation paths. Returns true if it answered req. */
static bool ops_route(struct management_impl *impl, h2o_req_t *req)
{
    struct management_change_request *cr = &impl->change_req;
    h2o_iovec_t seg[MANAGEMENT__SEGMENTS_MAX];
    size_t n = 0;
    const char *p = req->path_normalized.base;
    const char *end = p + req->path_normalized.len;

    /* Split "/a/b/c" into segments; a trailing "/" adds nothing. */
    while (p < end) {
        if (*p == '/') {
            p++;
            continue;
        }
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *stop = slash != NULL ? slash : end;
        if (n == MANAGEMENT__SEGMENTS_MAX) {
            n++; /* too deep: no route below matches */
            break;
        }
        seg[n++] = h2o_iovec_init(p, (size_t)(stop - p));
        p = stop;
    }
#define SEG(i, lit)                                                            \
    (n > (i) && h2o_memis(seg[i].base, seg[i].len, H2O_STRLIT(lit)))
    if (!SEG(0, "actuator") || n < 2) {
        return false;
    }
    bool cluster = SEG(1, "cluster") && n > 2;
    bool exporters = SEG(1, "exporters");
    bool exporting = SEG(1, "exporting");
    bool rebalance = SEG(1, "rebalance");
    if (!cluster && !exporters && !exporting && !rebalance) {
        return false;
    }
    memset(cr, 0, sizeof(*cr));
    struct query q;
    json_t *body = NULL;
    if (query_parse(req, &q) != 0) {
        return true;
    }
    cr->dry_run = q.dry_run == 1;

    if (rebalance) {
        if (n != 2) {
            reply_error(req, 404, "no such endpoint");
        } else if (!method_is(req, "POST")) {
            reply_method(req, "POST");
        } else {
            cr->kind = MANAGEMENT_REQUEST_REBALANCE;
            change_dispatch(impl, req, cr);
        }
        return true;
    }
    if (exporting) {
        bool pause = SEG(2, "pause");
        if (n != 3 || (!pause && !SEG(2, "resume"))) {
            reply_error(req, 404, "no such endpoint");
        } else if (!method_is(req, "POST")) {
            reply_method(req, "POST");
        } else {
            cr->kind = !pause        ? MANAGEMENT_REQUEST_EXPORTING_RESUME
                       : q.soft == 1 ? MANAGEMENT_REQUEST_EXPORTING_SOFT_PAUSE
                                     : MANAGEMENT_REQUEST_EXPORTING_PAUSE;
            change_dispatch(impl, req, cr);
        }
        return true;
    }
    if (exporters) {
        if (n == 2) {
            if (!method_is(req, "GET") && !method_is(req, "HEAD")) {
                reply_method(req, "GET, HEAD");
            } else {
                cr->kind = MANAGEMENT_REQUEST_EXPORTERS_GET;
                change_dispatch(impl, req, cr);
            }
            return true;
        }
        bool enable = SEG(3, "enable");
        if (n != 4 || (!enable && !SEG(3, "disable"))) {
            reply_error(req, 404, "no such endpoint");
            return true;
        }
        if (!method_is(req, "POST")) {
            reply_method(req, "POST");
            return true;
        }
        if (seg[2].len == 0 || seg[2].len > MANAGEMENT_ID_MAX) {
            reply_messagef(req, 400, "exporter id must be 1 to %d bytes",
                           MANAGEMENT_ID_MAX);
            return true;
        }
        memcpy(cr->exporter, seg[2].base, seg[2].len);
        cr->kind = enable ? MANAGEMENT_REQUEST_EXPORTER_ENABLE
                          : MANAGEMENT_REQUEST_EXPORTER_DISABLE;
        if (enable) {
            if (body_parse(req, &body) != 0) {
                return true;
            }
            if (body != NULL) {
                const char *key;
                json_t *v;
                bool bad = !json_is_object(body);
                json_object_foreach(bad ? NULL : body, key, v)
                {
                    if (strcmp(key, "initializeFrom") != 0 ||
                        (!json_is_string(v) && !json_is_null(v)) ||
                        (json_is_string(v) &&
                         (json_string_length(v) == 0 ||
                          json_string_length(v) > MANAGEMENT_ID_MAX))) {
                        bad = true;
                    } else if (json_is_string(v)) {
                        memcpy(cr->initialize_from, json_string_value(v),
                               json_string_length(v));
                    }
                }
                json_decref(body);
                if (bad) {
                    reply_messagef(req, 400,
                                   "the body must be {\"initializeFrom\": "
                                   "\"<exporter id of 1 to %d bytes>\"}",
                                   MANAGEMENT_ID_MAX);
                    return true;
                }
            }
        }
        change_dispatch(impl, req, cr);
        return true;
    }

    /* /actuator/cluster/... */
    bool brokers = SEG(2, "brokers");
    bool partitions = SEG(2, "partitions");
    bool changes = SEG(2, "changes");
    if ((partitions || changes) && n == 3) {
        if (method_is(req, "POST")) {
            reply_not_implemented(req);
        } else {
            reply_error(req, 404, "no such endpoint");
        }
        return true;
    }
    if (changes && n == 4) {
        uint64_t id = 0;
        if (!method_is(req, "DELETE")) {
            reply_method(req, "DELETE");
        } else if (cr->dry_run) {
            reply_not_implemented(req);
        } else if (number_parse(seg[3].base, seg[3].len, INT64_MAX, &id) != 0) {
            reply_messagef(req, 400, "change id '%.*s' is not a number",
                           (int)(seg[3].len > 32 ? 32 : seg[3].len),
                           seg[3].base);
        } else {
            cr->kind = MANAGEMENT_REQUEST_CHANGE_CANCEL;
            cr->change_id = id;
            change_dispatch(impl, req, cr);
        }
        return true;
    }
    if (brokers && n == 3) {
        if (!method_is(req, "POST")) {
            reply_method(req, "POST");
            return true;
        }
        if (body_parse(req, &body) != 0) {
            return true;
        }
        if (body == NULL) {
            reply_message(req, 400,
                          "the body must be a JSON array of broker ids, "
                          "e.g. [0, 1, 2]");
            return true;
        }
        int rv = brokers_parse(req, body, cr);
        json_decref(body);
        if (rv != 0) {
            return true;
        }
        cr->kind = MANAGEMENT_REQUEST_SCALE;
        cr->force = q.force == 1;
        cr->replication_factor =
            q.replication_factor > 0 ? (uint32_t)q.replication_factor : 0;
        change_dispatch(impl, req, cr);
        return true;
    }
    /* brokers/{b}[/partitions/{p}] or partitions/{p}/brokers/{b} */
    size_t bi = 0;
    size_t pi = 0;
    if (brokers && n == 4) {
        bi = 3;
    } else if (brokers && n == 5 && SEG(4, "partitions")) {
        reply_error(req, 404, "no such endpoint");
        return true;
    } else if (brokers && n == 6 && SEG(4, "partitions")) {
        bi = 3;
        pi = 5;
    } else if (partitions && n == 6 && SEG(4, "brokers")) {
        pi = 3;
        bi = 5;
    } else {
        reply_error(req, 404, "no such endpoint");
        return true;
    }
    bool post = method_is(req, "POST");
    if (!post && !method_is(req, "DELETE")) {
        reply_method(req, "POST, DELETE");
        return true;
    }
    uint64_t v = 0;
    if (number_parse(seg[bi].base, seg[bi].len, UINT32_MAX, &v) != 0) {
        reply_messagef(req, 400, "broker id '%.*s' is not a number",
                       (int)(seg[bi].len > 32 ? 32 : seg[bi].len),
                       seg[bi].base);
        return true;
    }
    cr->broker_id = (uint32_t)v;
    if (pi == 0) {
        cr->kind = post ? MANAGEMENT_REQUEST_BROKER_ADD
                        : MANAGEMENT_REQUEST_BROKER_REMOVE;
        change_dispatch(impl, req, cr);
        return true;
    }
    if (number_parse(seg[pi].base, seg[pi].len, UINT32_MAX, &v) != 0) {
        reply_messagef(req, 400, "partition id '%.*s' is not a number",
                       (int)(seg[pi].len > 32 ? 32 : seg[pi].len),
                       seg[pi].base);
        return true;
    }
    cr->partition_id = (uint32_t)v;
    cr->kind = post ? MANAGEMENT_REQUEST_PARTITION_JOIN
                    : MANAGEMENT_REQUEST_PARTITION_LEAVE;
    if (post) {
        if (body_parse(req, &body) != 0) {
            return true;
        }
        if (body != NULL) {
            const char *key;
            json_t *jv;
            bool bad = !json_is_object(body);
            json_object_foreach(bad ? NULL : body, key, jv)
            {
                if (strcmp(key, "priority") != 0 || !json_is_integer(jv) ||
                    json_integer_value(jv) < 1 ||
                    json_integer_value(jv) > 255) {
                    bad = true;
                } else {
                    cr->priority = (uint32_t)json_integer_value(jv);
                }
            }
            json_decref(body);
            if (bad) {
                reply_message(req, 400,
                              "the body must be {\"priority\": <1 to 255>}");
                return true;
            }
        }
    }
    change_dispatch(impl, req, cr);
    return true;
#undef SEG
}

/* h2o's on_req for every request on every path: the router. */
static int router_on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct management_impl *impl = ((struct management_handler *)self)->impl;
    const struct route *route = NULL;
    if (ops_route(impl, req)) {
        return 0;
    }
    for (size_t i = 0; i < sizeof(ROUTES) / sizeof(ROUTES[0]); i++) {
        if (h2o_memis(req->path_normalized.base, req->path_normalized.len,
                      ROUTES[i].path, strlen(ROUTES[i].path))) {
            route = &ROUTES[i];
            break;
        }
    }
    if (route == NULL) {
        reply_error(req, 404, "no such endpoint");
        return 0;
    }
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
        !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL,
                       H2O_STRLIT("GET, HEAD"));
        reply_error(req, 405, "only GET and HEAD are allowed here");
        return 0;
    }
    if (route->endpoint == ENDPOINT_GROUP_LIVENESS) {
        reply_group(req, true); /* must not depend on the broker */
        return 0;
    }
    if (probe_refresh(impl) != 0) {
        reply_error(req, 503, impl->errmsg);
        return 0;
    }
    endpoint_run(impl, route->endpoint, req);
    return 0;
}

/* ------------------------------------------------------------------------
 * Connections
 * ------------------------------------------------------------------------ */

static void close_maybe_finish(struct management_impl *impl);

static void conn_unlink(struct management_conn *conn)
{
    struct management_impl *impl = conn->impl;
    if (conn->prev != NULL) {
        conn->prev->next = conn->next;
    } else {
        assert(impl->conns == conn);
        impl->conns = conn->next;
    }
    if (conn->next != NULL) {
        conn->next->prev = conn->prev;
    }
    assert(impl->connection_count > 0);
    impl->connection_count--;
}

/* Close callback of a connection's uv_tcp_t, whether h2o or we closed it. */
static void conn_closed_cb(uv_handle_t *handle)
{
    struct management_conn *conn = (struct management_conn *)handle;
    struct management_impl *impl = conn->impl;
    conn_unlink(conn);
    free(conn);
    close_maybe_finish(impl);
}

/* Half-closes a connection that h2o owns: h2o reads EOF (or fails its next
 * write) and closes the connection through its normal path. */
static void conn_shutdown(struct management_conn *conn)
{
    uv_os_fd_t fd;
    if (uv_fileno((const uv_handle_t *)&conn->tcp, &fd) == 0) {
        (void)shutdown(fd, SHUT_RDWR);
    }
}

static void listener_connection_cb(uv_stream_t *server, int status)
{
    struct management_impl *impl = server->data;
    if (status < 0 || impl->closing) {
        /* UNTESTED: accept errors (EMFILE) leave the connection queued. */
        return;
    }
    struct management_conn *conn = calloc(1, sizeof(*conn));
    if (conn == NULL) {
        /* UNTESTED: out of memory; the connection stays in the backlog. */
        return;
    }
    conn->impl = impl;
    if (uv_tcp_init(impl->loop, &conn->tcp) != 0) {
        /* UNTESTED: uv_tcp_init only fails on socket(2) errors. */
        free(conn);
        return;
    }
    conn->next = impl->conns;
    if (impl->conns != NULL) {
        impl->conns->prev = conn;
    }
    impl->conns = conn;
    impl->connection_count++;
    if (uv_accept(server, (uv_stream_t *)&conn->tcp) != 0) {
        /* UNTESTED: the peer vanished between poll and accept. */
        uv_close((uv_handle_t *)&conn->tcp, conn_closed_cb);
        return;
    }
    if (impl->connection_count > impl->connections_max) {
        uv_buf_t buf = uv_buf_init((char *)MANAGEMENT__BUSY_RESPONSE,
                                   sizeof(MANAGEMENT__BUSY_RESPONSE) - 1);
        (void)uv_try_write((uv_stream_t *)&conn->tcp, &buf, 1);
        uv_close((uv_handle_t *)&conn->tcp, conn_closed_cb);
        return;
    }
    h2o_socket_t *sock =
        h2o_uv_socket_create((uv_stream_t *)&conn->tcp, conn_closed_cb);
    conn->h2o_owned = true;
    h2o_accept(&impl->accept_ctx, sock);
}

/* ------------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------------ */

static int address_resolve(struct management_impl *impl, const char *host,
                           uint16_t port)
{
    struct sockaddr_in *in4 = (struct sockaddr_in *)&impl->addr;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&impl->addr;
    if (uv_ip4_addr(host, port, in4) == 0) {
        return 0;
    }
    if (uv_ip6_addr(host, port, in6) == 0) {
        return 0;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    int rv = getaddrinfo(host, NULL, &hints, &res);
    if (rv != 0 || res == NULL) {
        snprintf(impl->errmsg, sizeof(impl->errmsg),
                 "management: cannot resolve host '%s': %s", host,
                 gai_strerror(rv));
        return MANAGEMENT_E_ADDRESS;
    }
    memcpy(&impl->addr, res->ai_addr, res->ai_addrlen);
    if (res->ai_family == AF_INET) {
        in4->sin_port = htons(port);
    } else {
        in6->sin6_port = htons(port);
    }
    freeaddrinfo(res);
    return 0;
}

int management_init(uv_loop_t *loop, struct management *m,
                    const struct management_options *opts,
                    const struct management_provider *p)
{
    if (loop == NULL || m == NULL || p == NULL || p->status == NULL) {
        return MANAGEMENT_E_INVALID;
    }
    const char *host =
        opts != NULL && opts->host != NULL ? opts->host : "0.0.0.0";
    if (strlen(host) == 0 || strlen(host) > MANAGEMENT_HOST_MAX) {
        return MANAGEMENT_E_INVALID;
    }
    struct management_impl *impl = calloc(1, sizeof(*impl));
    if (impl == NULL) {
        return MANAGEMENT_E_NOMEM;
    }
    impl->owner = m;
    impl->loop = loop;
    impl->provider = *p;
    impl->connections_max = opts != NULL && opts->connections_max > 0
                                ? opts->connections_max
                                : MANAGEMENT_CONNECTIONS_MAX;
    int rv = address_resolve(impl, host, opts != NULL ? opts->port : 0);
    if (rv != 0) {
        free(impl);
        return rv;
    }

    /* h2o: one host matching any Host header, one handler on "/" that
     * routes by itself (so that 404 and 405 carry our JSON bodies). */
    h2o_config_init(&impl->config);
    impl->config.max_request_entity_size = MANAGEMENT_BODY_MAX;
    h2o_hostconf_t *hostconf = h2o_config_register_host(
        &impl->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pathconf = h2o_config_register_path(hostconf, "/", 0);
    struct management_handler *handler =
        (struct management_handler *)h2o_create_handler(pathconf,
                                                        sizeof(*handler));
    handler->impl = impl;
    handler->super.on_req = router_on_req;
    h2o_context_init(&impl->ctx, loop, &impl->config);
    impl->accept_ctx.ctx = &impl->ctx;
    impl->accept_ctx.hosts = impl->config.hosts;

    m->impl = impl;
    return 0;
}

int management_start(struct management *m)
{
    assert(m != NULL);
    struct management_impl *impl = m->impl;
    assert(impl != NULL);
    if (impl->started || impl->closing) {
        return MANAGEMENT_E_STATE;
    }
    impl->started = true;
    int rv = uv_tcp_init(impl->loop, &impl->listener);
    if (rv != 0) {
        /* UNTESTED: socket(2) failure. */
        snprintf(impl->errmsg, sizeof(impl->errmsg),
                 "management: cannot create the listener: %s", uv_strerror(rv));
        return MANAGEMENT_E_LISTEN;
    }
    impl->listener_open = true;
    impl->listener.data = impl;
    rv = uv_tcp_bind(&impl->listener, (const struct sockaddr *)&impl->addr, 0);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)&impl->listener, MANAGEMENT__BACKLOG,
                       listener_connection_cb);
    }
    if (rv != 0) {
        char ip[64] = "?";
        uint16_t port;
        if (impl->addr.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (void *)&impl->addr;
            uv_ip6_name(a, ip, sizeof(ip));
            port = ntohs(a->sin6_port);
        } else {
            const struct sockaddr_in *a = (void *)&impl->addr;
            uv_ip4_name(a, ip, sizeof(ip));
            port = ntohs(a->sin_port);
        }
        snprintf(impl->errmsg, sizeof(impl->errmsg),
                 "management: cannot listen on %s port %u: %s", ip,
                 (unsigned)port, uv_strerror(rv));
        return MANAGEMENT_E_LISTEN;
    }
    impl->listening = true;
    struct sockaddr_storage bound;
    int len = (int)sizeof(bound);
    if (uv_tcp_getsockname(&impl->listener, (struct sockaddr *)&bound, &len) ==
        0) {
        impl->bound_port =
            bound.ss_family == AF_INET6
                ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    }
    return 0;
}

uint16_t management_bound_port(const struct management *m)
{
    if (m == NULL || m->impl == NULL || !m->impl->listening ||
        m->impl->closing) {
        return 0;
    }
    return m->impl->bound_port;
}

/* Closes the (uninitialised or already closed) sentinel timer with cb;
 * the way to get the next close step called from the loop. */
static void sentinel_arm(struct management_impl *impl, uv_close_cb cb)
{
    uv_timer_init(impl->loop, &impl->sentinel);
    impl->sentinel.data = impl;
    uv_close((uv_handle_t *)&impl->sentinel, cb);
}

static void sentinel_second_closed_cb(uv_handle_t *handle)
{
    struct management_impl *impl = handle->data;
    struct management *m = impl->owner;
    management_close_cb cb = impl->close_cb;
    m->impl = NULL;
    free(impl);
    if (cb != NULL) {
        cb(m);
    }
}

static void sentinel_first_closed_cb(uv_handle_t *handle)
{
    /* Every handle h2o closed in step 2 was closed before the first close
     * of this step and is finished now, whatever order libuv finishes
     * closes in; this second close finishes in a later iteration. */
    sentinel_arm(handle->data, sentinel_second_closed_cb);
}

/* Step 2, from a close callback (never from the caller's stack: libh2o
 * 2.2's h2o_context_dispose() ends with uv_run(loop, UV_RUN_NOWAIT), which
 * dispatches other callbacks of the loop from inside this one; nothing of
 * this server is open any more, so none of them is ours). */
static void dispose_closed_cb(uv_handle_t *handle)
{
    struct management_impl *impl = handle->data;
    h2o_context_dispose(&impl->ctx);
    h2o_config_dispose(&impl->config);
    sentinel_arm(impl, sentinel_first_closed_cb);
}

static void listener_closed_cb(uv_handle_t *handle)
{
    struct management_impl *impl = handle->data;
    impl->listener_open = false;
    close_maybe_finish(impl);
}

/* Starts steps 2 and 3 of the close sequence once step 1 is complete. */
static void close_maybe_finish(struct management_impl *impl)
{
    if (!impl->closing || impl->h2o_disposed || impl->listener_open ||
        impl->connection_count > 0) {
        return;
    }
    assert(impl->conns == NULL);
    impl->h2o_disposed = true;
    sentinel_arm(impl, dispose_closed_cb);
}

void management_close(struct management *m, management_close_cb cb)
{
    assert(m != NULL);
    struct management_impl *impl = m->impl;
    if (impl == NULL || impl->closing) {
        return;
    }
    impl->closing = true;
    impl->close_cb = cb;
    if (impl->listener_open) {
        uv_close((uv_handle_t *)&impl->listener, listener_closed_cb);
    }
    /* A request still waiting for its deferred answer keeps h2o from
     * reading its connection (it would never see the shutdown below):
     * answer it now. */
    for (uint32_t i = 0; i < MANAGEMENT_DEFERRED_MAX; i++) {
        struct management_deferred *d = &impl->deferred[i];
        h2o_req_t *req = d->req;
        memset(d, 0, sizeof(*d));
        if (req != NULL) {
            reply_message(req, 503, "the broker is shutting down");
        }
    }
    for (struct management_conn *c = impl->conns; c != NULL; c = c->next) {
        if (c->h2o_owned) {
            conn_shutdown(c);
        }
    }
    close_maybe_finish(impl);
}
