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
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
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
 *   exporterPhase, exportedPosition   omitted (no exporters yet)
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

/* h2o's on_req for every request on every path: the router. */
static int router_on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct management_impl *impl = ((struct management_handler *)self)->impl;
    const struct route *route = NULL;
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
    for (struct management_conn *c = impl->conns; c != NULL; c = c->next) {
        if (c->h2o_owned) {
            conn_shutdown(c);
        }
    }
    close_maybe_finish(impl);
}
