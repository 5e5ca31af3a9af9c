/* rest.h: the gateway's REST server (private to gateway/): HTTP/1.1 on
 * libh2o (libuv flavour), serving Zeebe's topology endpoints.
 *
 * Data flow:
 *
 *   TCP --uv accept--> h2o socket --h2o http1--> rest_handler
 *     GET|HEAD /v2/topology, /v1/topology
 *       --> topology(data): the merged topology (gateway/client.h) as a
 *           GatewayProtocol__TopologyResponse
 *       --> jansson --> 200 application/json, the shape of Zeebe's
 *           TopologyResponse (zeebe-facts 2): camelCase fields, lower-case
 *           role and health
 *     other paths --> 404, other methods --> 405 (Allow: GET, HEAD); both
 *       as RFC 9457 problem details (application/problem+json:
 *       {"type":"about:blank","title","status","detail","instance"})
 *
 * Bounds: open connections (connections_max; more are closed on accept),
 * h2o's request size limits and timeouts. Closing shuts every connection
 * down, disposes the h2o context and calls back once every handle,
 * including h2o's own timers, is closed. Single-threaded. */
#ifndef TANDEM_GATEWAY_REST_H
#define TANDEM_GATEWAY_REST_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "proto/proto.h"

#define REST_PORT_DEFAULT 8080u
#define REST_CONNECTIONS_MAX_DEFAULT 256u

/* Error codes (negative). */
#define REST_E_INVALID (-1) /* bad argument or address */
#define REST_E_STATE (-2)   /* wrong lifecycle state */
#define REST_E_IO (-3)      /* bind/listen failed; see errmsg */
#define REST_E_NOMEM (-4)

/* Returns the topology to serve; owned by the provider, valid during the
 * request handler. */
typedef const GatewayProtocol__TopologyResponse *(*rest_topology_fn)(
    void *data);

struct rest_server_options {
    uint32_t connections_max; /* open connections */
    rest_topology_fn topology; /* required */
    void *topology_data;       /* passed to topology */
};

void rest_server_options_default(struct rest_server_options *opts);

struct rest_server;
struct rest_impl; /* h2o state, private to rest.c */
typedef void (*rest_server_close_cb)(struct rest_server *srv);

/* Caller-allocated; fields are private except data. */
struct rest_server {
    void *data;
    uv_loop_t *loop;
    struct rest_impl *impl;
    uint64_t requests; /* served, for tests and metrics */
    uint64_t conns_rejected;
    char errmsg[256];
};

/* Initializes srv (allocates the h2o configuration and context). Returns
 * 0, REST_E_INVALID (no topology function, zero bound) or REST_E_NOMEM;
 * on failure nothing needs closing. After success rest_server_close() is
 * required. */
int rest_server_init(uv_loop_t *loop, struct rest_server *srv,
                     const struct rest_server_options *opts);

/* Listens on host (IPv4 or IPv6 literal) and port (0: ephemeral, see
 * rest_server_port). Returns 0, REST_E_INVALID (bad address), REST_E_STATE
 * (already listening or closing) or REST_E_IO with errmsg set. */
int rest_server_start(struct rest_server *srv, const char *host,
                      uint16_t port);

/* The bound port, 0 when not listening. */
uint16_t rest_server_port(const struct rest_server *srv);

/* Serializes a topology into the REST JSON body (exposed for tests).
 * Returns a malloc()ed NUL-terminated string the caller frees, or NULL
 * when out of memory. */
char *rest_topology_json(const GatewayProtocol__TopologyResponse *t);

/* Stops listening, shuts every connection down and calls close_cb (may be
 * NULL) once everything is closed; srv's memory may go from then on.
 * Idempotent. */
void rest_server_close(struct rest_server *srv, rest_server_close_cb close_cb);

#endif /* TANDEM_GATEWAY_REST_H */
