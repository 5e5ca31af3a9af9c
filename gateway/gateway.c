/* gateway.c: the gateway object (gateway.h): a broker client, the gRPC
 * server answering through it, and the REST server reading its topology.
 *
 * Lifecycle: init creates all three (no sockets); start binds gRPC and
 * REST and connects the client; close stops the gRPC and REST servers
 * first (the gRPC server cancels its backend calls, and borrows the
 * client's backend until its close_cb), then closes the client, and calls
 * the user's close_cb when all three are gone. */
#define _POSIX_C_SOURCE 200809L
#include "gateway/gateway.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/client.h"
#include "gateway/grpc_server.h"
#include "gateway/rest.h"

struct gateway_impl {
    struct gateway *gw;
    struct gateway_options opts; /* host copied below */
    char *host;
    struct gateway_client client;
    struct grpc_server grpc;
    struct rest_server rest;
    bool started;
    bool closing;
    uint32_t parts_open; /* of client, grpc, rest: not yet closed */
    gateway_close_cb close_cb;
};

void gateway_options_default(struct gateway_options *opts)
{
    assert(opts != NULL);
    memset(opts, 0, sizeof(*opts));
    opts->host = GATEWAY_HOST_DEFAULT;
    opts->grpc_port = GATEWAY_GRPC_PORT_DEFAULT;
    opts->rest_port = GATEWAY_REST_PORT_DEFAULT;
    opts->rest_enabled = true;
}

static void gateway_grpc_closed_cb(struct grpc_server *srv);
static void gateway_client_closed_cb(struct gateway_client *client);

static const GatewayProtocol__TopologyResponse *gateway_topology(void *data)
{
    return gateway_client_topology(data);
}

int gateway_init(uv_loop_t *loop, struct gateway *gw,
                 const struct gateway_options *opts)
{
    struct gateway_impl *impl;
    struct gateway_client_options co;
    struct rest_server_options ro;
    int rv;

    assert(loop != NULL);
    assert(gw != NULL);
    assert(opts != NULL);
    memset(gw, 0, sizeof(*gw));
    impl = calloc(1, sizeof(*impl));
    if (impl == NULL) {
        return GATEWAY_E_NOMEM; /* UNTESTED: malloc failure */
    }
    impl->gw = gw;
    impl->opts = *opts;
    impl->host = strdup(opts->host != NULL ? opts->host
                                           : GATEWAY_HOST_DEFAULT);
    if (impl->host == NULL) {
        free(impl); /* UNTESTED: malloc failure */
        return GATEWAY_E_NOMEM;
    }
    gateway_client_options_default(&co);
    co.contact_points = opts->contact_points;
    co.contact_point_count = opts->contact_point_count;
    if (opts->request_timeout_ms != 0) {
        co.request_timeout_ms = opts->request_timeout_ms;
    }
    if (opts->topology_refresh_ms != 0) {
        co.topology_refresh_ms = opts->topology_refresh_ms;
        co.topology_stale_ms =
            opts->topology_refresh_ms * GATEWAY_CLIENT_STALE_REFRESHES;
    }
    if (opts->version != NULL) {
        co.gateway_version = opts->version;
    }
    rv = gateway_client_init(loop, &impl->client, &co);
    if (rv != 0) {
        snprintf(gw->errmsg, sizeof(gw->errmsg), "%s", impl->client.errmsg);
        goto err_after_host;
    }
    impl->client.data = impl;
    rv = grpc_server_init(loop, &impl->grpc, NULL,
                          gateway_client_backend(&impl->client));
    if (rv != 0) {
        /* UNTESTED: only bad options fail, and we pass the defaults */
        snprintf(gw->errmsg, sizeof(gw->errmsg), "grpc server: %.200s",
                 impl->grpc.errmsg);
        goto err_after_client;
    }
    impl->grpc.data = impl;
    rest_server_options_default(&ro);
    ro.topology = gateway_topology;
    ro.topology_data = &impl->client;
    rv = rest_server_init(loop, &impl->rest, &ro);
    if (rv != 0) {
        /* UNTESTED: malloc failure */
        snprintf(gw->errmsg, sizeof(gw->errmsg), "rest server: %.200s",
                 impl->rest.errmsg);
        goto err_after_grpc;
    }
    impl->rest.data = impl;
    impl->parts_open = 3;
    gw->loop = loop;
    gw->impl = impl;
    return 0;

err_after_grpc:
    /* The parts close asynchronously; impl goes with the last of them,
     * with nobody to tell (impl->gw is NULL). */
    impl->gw = NULL;
    impl->closing = true;
    impl->parts_open = 2;
    grpc_server_close(&impl->grpc, gateway_grpc_closed_cb);
    return rv == REST_E_NOMEM ? GATEWAY_E_NOMEM : GATEWAY_E_INVALID;
err_after_client:
    impl->gw = NULL;
    impl->closing = true;
    impl->parts_open = 1;
    gateway_client_close(&impl->client, gateway_client_closed_cb);
    return GATEWAY_E_INVALID;
err_after_host:
    free(impl->host);
    free(impl);
    return GATEWAY_E_INVALID;
}

int gateway_start(struct gateway *gw)
{
    struct gateway_impl *impl = gw->impl;
    int rv;

    assert(impl != NULL);
    if (impl->started || impl->closing) {
        return GATEWAY_E_STATE;
    }
    impl->started = true;
    rv = grpc_server_start(&impl->grpc, impl->host, impl->opts.grpc_port);
    if (rv != 0) {
        snprintf(gw->errmsg, sizeof(gw->errmsg), "gRPC port %u: %.200s",
                 (unsigned)impl->opts.grpc_port, impl->grpc.errmsg);
        return rv == GRPC_E_INVALID ? GATEWAY_E_INVALID : GATEWAY_E_IO;
    }
    if (impl->opts.rest_enabled) {
        rv = rest_server_start(&impl->rest, impl->host, impl->opts.rest_port);
        if (rv != 0) {
            snprintf(gw->errmsg, sizeof(gw->errmsg), "REST port %u: %.200s",
                     (unsigned)impl->opts.rest_port, impl->rest.errmsg);
            return rv == REST_E_INVALID ? GATEWAY_E_INVALID : GATEWAY_E_IO;
        }
    }
    rv = gateway_client_start(&impl->client);
    assert(rv == 0);
    return 0;
}

uint16_t gateway_grpc_port(const struct gateway *gw)
{
    return gw->impl != NULL ? grpc_server_port(&gw->impl->grpc) : 0;
}

uint16_t gateway_rest_port(const struct gateway *gw)
{
    return gw->impl != NULL ? rest_server_port(&gw->impl->rest) : 0;
}

static void gateway_part_closed(struct gateway_impl *impl)
{
    struct gateway *gw = impl->gw;
    gateway_close_cb cb = impl->close_cb;

    assert(impl->parts_open > 0);
    if (--impl->parts_open > 0) {
        return;
    }
    free(impl->host);
    free(impl);
    if (gw == NULL) {
        return; /* init failed half-way */
    }
    gw->impl = NULL;
    if (cb != NULL) {
        cb(gw);
    }
}

static void gateway_client_closed_cb(struct gateway_client *client)
{
    gateway_part_closed(client->data);
}

static void gateway_grpc_closed_cb(struct grpc_server *srv)
{
    struct gateway_impl *impl = srv->data;

    /* The gRPC server no longer uses the backend: close the client. */
    gateway_client_close(&impl->client, gateway_client_closed_cb);
    gateway_part_closed(impl);
}

static void gateway_rest_closed_cb(struct rest_server *srv)
{
    gateway_part_closed(srv->data);
}

void gateway_close(struct gateway *gw, gateway_close_cb close_cb)
{
    struct gateway_impl *impl = gw->impl;

    if (impl == NULL || impl->closing) {
        return;
    }
    impl->closing = true;
    impl->close_cb = close_cb;
    rest_server_close(&impl->rest, gateway_rest_closed_cb);
    grpc_server_close(&impl->grpc, gateway_grpc_closed_cb);
}
