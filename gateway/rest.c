/* rest.c: the REST server (rest.h) on libh2o's libuv flavour.
 *
 * Sockets are ours: the listener accepts into a struct rest_conn (a
 * uv_tcp_t first, so h2o's close callback finds the conn), bounded by
 * connections_max, and hands it to h2o (h2o_uv_socket_create +
 * h2o_accept). h2o parses HTTP/1.1 and calls rest_on_req for every
 * request; the handler answers inline from the topology provider.
 *
 * Closing, in stages, because h2o closes its own uv handles without
 * telling us when they are gone:
 *   1. close the listener; shutdown(2) every connection's socket, so
 *      h2o reads EOF and closes it (its close cb frees the conn);
 *   2. when no conn and no listener is left: h2o_context_dispose()
 *      (uv_close on h2o's timers and queue) and uv_close(sentinel_a);
 *   3. sentinel_a's cb runs in the same closing pass as h2o's handles or
 *      later; it closes sentinel_b, whose cb (one pass later, when
 *      h2o's handles are surely finished) frees everything and calls
 *      close_cb. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include "gateway/rest.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <h2o.h>
#include <jansson.h>

struct rest_conn {
    uv_tcp_t tcp; /* first: h2o's close cb gets &tcp */
    struct rest_impl *impl;
    struct rest_conn *prev, *next;
};

struct rest_handler {
    h2o_handler_t super; /* first: h2o calls on_req with it */
    struct rest_server *srv;
};

struct rest_impl {
    struct rest_server *srv;
    struct rest_server_options opts;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    bool ctx_live;            /* ctx initialized, not disposed */
    uv_tcp_t listener;
    bool listening;           /* listener initialized (needs uv_close) */
    bool closing;
    struct rest_conn *conns;  /* open connections */
    uint32_t conn_count;      /* <= opts.connections_max */
    uv_idle_t sentinel_a, sentinel_b;
    rest_server_close_cb close_cb;
};

/* ------------------------------------------------------------------------
 * JSON
 * --------------------------------------------------------------------- */

static const char *rest_role_name(int role)
{
    switch (role) {
    case GATEWAY_PROTOCOL__PARTITION__PARTITION_BROKER_ROLE__LEADER:
        return "leader";
    case GATEWAY_PROTOCOL__PARTITION__PARTITION_BROKER_ROLE__FOLLOWER:
        return "follower";
    default:
        return "inactive";
    }
}

static const char *rest_health_name(int health)
{
    switch (health) {
    case GATEWAY_PROTOCOL__PARTITION__PARTITION_BROKER_HEALTH__HEALTHY:
        return "healthy";
    case GATEWAY_PROTOCOL__PARTITION__PARTITION_BROKER_HEALTH__DEAD:
        return "dead";
    default:
        return "unhealthy";
    }
}

char *rest_topology_json(const GatewayProtocol__TopologyResponse *t)
{
    json_t *root = json_object();
    json_t *brokers = json_array();
    char *out = NULL;
    size_t i, k;

    assert(t != NULL);
    if (root == NULL || brokers == NULL) {
        goto done; /* UNTESTED: malloc failure */
    }
    for (i = 0; i < t->n_brokers; i++) {
        const GatewayProtocol__BrokerInfo *b = t->brokers[i];
        json_t *parts = json_array();
        json_t *jb = json_object();
        if (parts == NULL || jb == NULL) {
            json_decref(parts); /* UNTESTED: malloc failure */
            json_decref(jb);
            goto done;
        }
        for (k = 0; k < b->n_partitions; k++) {
            const GatewayProtocol__Partition *p = b->partitions[k];
            json_array_append_new(
                parts, json_pack("{s:i, s:s, s:s}", "partitionId",
                                 (json_int_t)p->partitionid, "role",
                                 rest_role_name((int)p->role), "health",
                                 rest_health_name((int)p->health)));
        }
        json_object_set_new(jb, "nodeId", json_integer(b->nodeid));
        json_object_set_new(jb, "host", json_string(b->host));
        json_object_set_new(jb, "port", json_integer(b->port));
        json_object_set_new(jb, "partitions", parts);
        json_object_set_new(jb, "version", json_string(b->version));
        json_array_append_new(brokers, jb);
    }
    json_object_set_new(root, "brokers", brokers);
    brokers = NULL;
    json_object_set_new(root, "clusterSize", json_integer(t->clustersize));
    json_object_set_new(root, "partitionsCount",
                        json_integer(t->partitionscount));
    json_object_set_new(root, "replicationFactor",
                        json_integer(t->replicationfactor));
    json_object_set_new(root, "gatewayVersion",
                        json_string(t->gatewayversion));
    /* Zeebe 8.8 adds the id of the last completed cluster change; a
     * cluster that never changed reports "-1". */
    json_object_set_new(root, "lastCompletedChangeId", json_string("-1"));
    out = json_dumps(root, JSON_COMPACT);
done:
    json_decref(brokers);
    json_decref(root);
    return out;
}

/* ------------------------------------------------------------------------
 * Requests
 * --------------------------------------------------------------------- */

static void rest_send(h2o_req_t *req, int status, const char *reason,
                      const char *content_type, const char *body)
{
    size_t len = strlen(body);

    req->res.status = status;
    req->res.reason = reason;
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE,
                   NULL, content_type, strlen(content_type));
    h2o_send_inline(req, body, len);
}

/* An RFC 9457 problem detail, as Zeebe's REST API answers errors. */
static void rest_send_problem(h2o_req_t *req, int status, const char *title,
                              const char *detail)
{
    json_t *p;
    char *body;
    char instance[256];

    snprintf(instance, sizeof(instance), "%.*s",
             (int)(req->path_normalized.len < 200 ? req->path_normalized.len
                                                   : 200),
             req->path_normalized.base);
    p = json_pack("{s:s, s:s, s:i, s:s, s:s}", "type", "about:blank",
                  "title", title, "status", status, "detail", detail,
                  "instance", instance);
    body = p != NULL ? json_dumps(p, JSON_COMPACT) : NULL;
    json_decref(p);
    rest_send(req, status, title, "application/problem+json",
              body != NULL ? body : "{}");
    free(body);
}

static bool rest_path_is(const h2o_req_t *req, const char *path)
{
    return h2o_memis(req->path_normalized.base, req->path_normalized.len,
                     path, strlen(path));
}

static int rest_on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct rest_handler *h = (struct rest_handler *)self;
    struct rest_impl *impl = h->srv->impl;
    bool get, head;
    char detail[192];

    assert(impl != NULL);
    h->srv->requests++;
    if (!rest_path_is(req, "/v2/topology") &&
        !rest_path_is(req, "/v1/topology")) {
        snprintf(detail, sizeof(detail), "No endpoint %.*s",
                 (int)(req->path_normalized.len < 128
                           ? req->path_normalized.len
                           : 128),
                 req->path_normalized.base);
        rest_send_problem(req, 404, "Not Found", detail);
        return 0;
    }
    get = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"));
    head = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
    if (!get && !head) {
        snprintf(detail, sizeof(detail),
                 "Request method '%.*s' is not supported",
                 (int)(req->method.len < 32 ? req->method.len : 32),
                 req->method.base);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL,
                       H2O_STRLIT("GET, HEAD"));
        rest_send_problem(req, 405, "Method Not Allowed", detail);
        return 0;
    }
    {
        char *body = rest_topology_json(
            impl->opts.topology(impl->opts.topology_data));
        if (body == NULL) {
            /* UNTESTED: malloc failure */
            rest_send_problem(req, 500, "Internal Server Error",
                              "out of memory");
            return 0;
        }
        rest_send(req, 200, "OK", "application/json", body);
        free(body);
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Connections
 * --------------------------------------------------------------------- */

static void rest_close_continue(struct rest_impl *impl);

static void rest_conn_closed_cb(uv_handle_t *h)
{
    struct rest_conn *conn = (struct rest_conn *)(void *)h;
    struct rest_impl *impl = conn->impl;

    if (conn->prev != NULL) {
        conn->prev->next = conn->next;
    } else {
        assert(impl->conns == conn);
        impl->conns = conn->next;
    }
    if (conn->next != NULL) {
        conn->next->prev = conn->prev;
    }
    assert(impl->conn_count > 0);
    impl->conn_count--;
    free(conn);
    rest_close_continue(impl);
}

static void rest_conn_rejected_cb(uv_handle_t *h)
{
    free(h);
}

static void rest_on_accept(uv_stream_t *listener, int status)
{
    struct rest_impl *impl = listener->data;
    struct rest_conn *conn;
    h2o_socket_t *sock;

    if (status != 0 || impl->closing) {
        return;
    }
    conn = calloc(1, sizeof(*conn));
    if (conn == NULL) {
        return; /* UNTESTED: malloc failure; the peer waits */
    }
    uv_tcp_init(listener->loop, &conn->tcp);
    if (uv_accept(listener, (uv_stream_t *)&conn->tcp) != 0 ||
        impl->conn_count >= impl->opts.connections_max) {
        impl->srv->conns_rejected++;
        uv_close((uv_handle_t *)&conn->tcp, rest_conn_rejected_cb);
        return;
    }
    conn->impl = impl;
    conn->next = impl->conns;
    if (impl->conns != NULL) {
        impl->conns->prev = conn;
    }
    impl->conns = conn;
    impl->conn_count++;
    sock = h2o_uv_socket_create((uv_stream_t *)&conn->tcp,
                                rest_conn_closed_cb);
    h2o_accept(&impl->accept_ctx, sock);
}

/* ------------------------------------------------------------------------
 * Lifecycle
 * --------------------------------------------------------------------- */

void rest_server_options_default(struct rest_server_options *opts)
{
    assert(opts != NULL);
    memset(opts, 0, sizeof(*opts));
    opts->connections_max = REST_CONNECTIONS_MAX_DEFAULT;
}

int rest_server_init(uv_loop_t *loop, struct rest_server *srv,
                     const struct rest_server_options *opts)
{
    struct rest_impl *impl;
    h2o_hostconf_t *host;
    h2o_pathconf_t *path;
    struct rest_handler *handler;

    assert(loop != NULL);
    assert(srv != NULL);
    assert(opts != NULL);
    memset(srv, 0, sizeof(*srv));
    if (opts->topology == NULL || opts->connections_max == 0) {
        snprintf(srv->errmsg, sizeof(srv->errmsg),
                 "a topology provider and connections_max > 0 are needed");
        return REST_E_INVALID;
    }
    impl = calloc(1, sizeof(*impl));
    if (impl == NULL) {
        return REST_E_NOMEM; /* UNTESTED: malloc failure */
    }
    srv->loop = loop;
    srv->impl = impl;
    impl->srv = srv;
    impl->opts = *opts;
    h2o_config_init(&impl->config);
    impl->config.server_name = h2o_iovec_init(H2O_STRLIT("tandem"));
    host = h2o_config_register_host(
        &impl->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    path = h2o_config_register_path(host, "/", 0);
    handler = (struct rest_handler *)h2o_create_handler(path,
                                                        sizeof(*handler));
    handler->super.on_req = rest_on_req;
    handler->srv = srv;
    h2o_context_init(&impl->ctx, loop, &impl->config);
    impl->ctx_live = true;
    impl->accept_ctx.ctx = &impl->ctx;
    impl->accept_ctx.hosts = impl->config.hosts;
    return 0;
}

int rest_server_start(struct rest_server *srv, const char *host,
                      uint16_t port)
{
    struct rest_impl *impl = srv->impl;
    struct sockaddr_storage addr;
    int rv;

    assert(impl != NULL);
    if (impl->listening || impl->closing) {
        return REST_E_STATE;
    }
    if (host == NULL ||
        (uv_ip4_addr(host, port, (struct sockaddr_in *)&addr) != 0 &&
         uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr) != 0)) {
        snprintf(srv->errmsg, sizeof(srv->errmsg),
                 "REST host must be an IP address");
        return REST_E_INVALID;
    }
    uv_tcp_init(srv->loop, &impl->listener);
    impl->listener.data = impl;
    impl->listening = true;
    rv = uv_tcp_bind(&impl->listener, (const struct sockaddr *)&addr, 0);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)&impl->listener, 128, rest_on_accept);
    }
    if (rv != 0) {
        snprintf(srv->errmsg, sizeof(srv->errmsg), "REST %s:%u: %s", host,
                 (unsigned)port, uv_strerror(rv));
        return REST_E_IO; /* the listener is closed by rest_server_close */
    }
    return 0;
}

uint16_t rest_server_port(const struct rest_server *srv)
{
    struct sockaddr_storage addr;
    int len = sizeof(addr);

    if (srv->impl == NULL || !srv->impl->listening ||
        uv_tcp_getsockname(&srv->impl->listener, (struct sockaddr *)&addr,
                           &len) != 0) {
        return 0;
    }
    if (addr.ss_family == AF_INET6) {
        return ntohs(((struct sockaddr_in6 *)&addr)->sin6_port);
    }
    return ntohs(((struct sockaddr_in *)&addr)->sin_port);
}

static void rest_sentinel_b_cb(uv_handle_t *h)
{
    struct rest_impl *impl = h->data;
    struct rest_server *srv = impl->srv;
    rest_server_close_cb cb = impl->close_cb;

    h2o_config_dispose(&impl->config);
    free(impl);
    srv->impl = NULL;
    if (cb != NULL) {
        cb(srv);
    }
}

static void rest_sentinel_a_cb(uv_handle_t *h)
{
    struct rest_impl *impl = h->data;

    uv_close((uv_handle_t *)&impl->sentinel_b, rest_sentinel_b_cb);
}

static void rest_listener_closed_cb(uv_handle_t *h)
{
    struct rest_impl *impl = h->data;

    impl->listening = false;
    rest_close_continue(impl);
}

/* Stage 2 of closing, once the connections and the listener are gone. */
static void rest_close_continue(struct rest_impl *impl)
{
    if (!impl->closing || impl->conn_count > 0 || impl->listening ||
        !impl->ctx_live) {
        return;
    }
    impl->ctx_live = false;
    h2o_context_dispose(&impl->ctx);
    uv_close((uv_handle_t *)&impl->sentinel_a, rest_sentinel_a_cb);
}

void rest_server_close(struct rest_server *srv, rest_server_close_cb close_cb)
{
    struct rest_impl *impl = srv->impl;
    struct rest_conn *conn;

    if (impl == NULL || impl->closing) {
        return;
    }
    impl->closing = true;
    impl->close_cb = close_cb;
    uv_idle_init(srv->loop, &impl->sentinel_a);
    uv_idle_init(srv->loop, &impl->sentinel_b);
    impl->sentinel_a.data = impl;
    impl->sentinel_b.data = impl;
    if (impl->listening) {
        uv_close((uv_handle_t *)&impl->listener, rest_listener_closed_cb);
    }
    /* h2o owns the sockets now: make it see EOF and close them itself. */
    for (conn = impl->conns; conn != NULL; conn = conn->next) {
        uv_os_fd_t fd;
        if (uv_fileno((uv_handle_t *)&conn->tcp, &fd) == 0) {
            shutdown(fd, SHUT_RDWR);
        }
    }
    rest_close_continue(impl);
}
