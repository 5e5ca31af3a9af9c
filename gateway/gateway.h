/* gateway.h: the public header of the gateway module: Zeebe's client
 * front end (gRPC gateway_protocol.Gateway on port 26500, REST
 * /v1|/v2/topology on port 8080) in front of a Tandem cluster, embedded in
 * tandem-broker or standalone as tandem-gateway (gateway/main.c).
 *
 * Data flow:
 *
 *   zbctl --gRPC--> grpc server (grpc_server.h) --backend->call-->
 *     broker client (client.h) --command API, port 26501--> partition
 *     leaders; topology learned from every broker every refresh
 *   curl --HTTP--> REST server (rest.h) --> the client's merged topology
 *
 * One struct gateway owns the three parts. It reaches brokers only over
 * the wire, never through raft/ or storage. Single-threaded: everything
 * runs on the loop given to gateway_init. */
#ifndef TANDEM_GATEWAY_GATEWAY_H
#define TANDEM_GATEWAY_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#define GATEWAY_GRPC_PORT_DEFAULT 26500u
#define GATEWAY_REST_PORT_DEFAULT 8080u
#define GATEWAY_HOST_DEFAULT "0.0.0.0"

/* Error codes (negative). */
#define GATEWAY_E_INVALID (-1) /* bad options; see errmsg */
#define GATEWAY_E_NOMEM (-2)
#define GATEWAY_E_STATE (-3)   /* wrong lifecycle state */
#define GATEWAY_E_IO (-4)      /* a port could not be bound; see errmsg */

struct gateway_options {
    const char *host;                  /* listen address (IP literal) */
    uint16_t grpc_port;                /* 0: ephemeral */
    uint16_t rest_port;                /* 0: ephemeral */
    bool rest_enabled;                 /* serve REST */
    const char *const *contact_points; /* brokers' "host:port" (26501) */
    size_t contact_point_count;        /* >= 1 */
    uint64_t request_timeout_ms;       /* 0: 15 s (Zeebe's default) */
    uint64_t topology_refresh_ms;      /* 0: 250 ms */
    const char *version;               /* NULL: "8.4.0" */
};

/* Fills opts with the defaults (no contact points). */
void gateway_options_default(struct gateway_options *opts);

struct gateway;
struct gateway_impl; /* private to gateway.c */
typedef void (*gateway_close_cb)(struct gateway *gw);

/* Caller-allocated; fields are private except data. */
struct gateway {
    void *data;
    uv_loop_t *loop;
    struct gateway_impl *impl;
    char errmsg[256];
};

/* Initializes gw on loop with opts (contact points and strings copied).
 * Opens no socket. Returns 0, GATEWAY_E_INVALID (errmsg says why) or
 * GATEWAY_E_NOMEM; on failure nothing needs closing. After success
 * gateway_close() is required. */
int gateway_init(uv_loop_t *loop, struct gateway *gw,
                 const struct gateway_options *opts);

/* Binds the gRPC and REST ports and connects to the brokers. Returns 0,
 * GATEWAY_E_STATE (started or closing), GATEWAY_E_INVALID (bad host) or
 * GATEWAY_E_IO (errmsg says which port failed); after a failure, close. */
int gateway_start(struct gateway *gw);

/* The bound ports, 0 when not listening. */
uint16_t gateway_grpc_port(const struct gateway *gw);
uint16_t gateway_rest_port(const struct gateway *gw);

/* Stops listening, ends every call and connection, and calls close_cb
 * (may be NULL) once everything is closed; gw's memory may be released
 * from then on. Idempotent. */
void gateway_close(struct gateway *gw, gateway_close_cb close_cb);

#endif /* TANDEM_GATEWAY_GATEWAY_H */
