/* test_gateway_fake_cluster.c: gateway-fake-cluster, the real gateway
 * (gateway.h: gRPC server, broker client, REST) in front of three fake
 * brokers (test_client_fake.h) as one process, for tests with the real
 * zbctl (test_gateway_zbctl.sh).
 *
 * Cluster: 3 fake brokers on 127.0.0.1, 3 partitions, node i leads
 * partition i + 1; every created instance makes one job on its partition
 * (create_adds_job), so `zbctl activate jobs` finds it.
 *
 * Usage: gateway-fake-cluster. Prints "port=<gRPC port>" once the
 * gateway knows every partition's leader, serves until SIGTERM or SIGINT,
 * then closes the gateway, the fakes and the loop cleanly and exits 0
 * (1 when a handle was left open). */
#define _POSIX_C_SOURCE 200809L
#include <assert.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "gateway/gateway.h"
#include "tests/gateway/test_client_fake.h"

#define NODES 3u

struct cluster {
    uv_loop_t loop;
    uv_signal_t sigterm, sigint;
    uv_timer_t ready;
    struct fake_broker fakes[NODES];
    struct fake_broker *members[NODES];
    struct gateway gw;
    bool stopping;
    bool printed;
};

static void cluster_gateway_closed_cb(struct gateway *gw)
{
    struct cluster *cl = gw->data;

    for (uint32_t i = 0; i < NODES; i++) {
        fake_broker_close(&cl->fakes[i]);
    }
    uv_close((uv_handle_t *)&cl->sigterm, NULL);
    uv_close((uv_handle_t *)&cl->sigint, NULL);
    uv_close((uv_handle_t *)&cl->ready, NULL);
}

static void cluster_signal_cb(uv_signal_t *sig, int signum)
{
    struct cluster *cl = sig->data;

    (void)signum;
    if (cl->stopping) {
        return;
    }
    cl->stopping = true;
    gateway_close(&cl->gw, cluster_gateway_closed_cb);
}

/* Prints the port once every fake answered a topology request twice
 * (the gateway then knows all leaders). */
static void cluster_ready_cb(uv_timer_t *t)
{
    struct cluster *cl = t->data;

    for (uint32_t i = 0; i < NODES; i++) {
        if (cl->fakes[i].topology_requests < 2) {
            return;
        }
    }
    uv_timer_stop(t);
    printf("port=%u\n", (unsigned)gateway_grpc_port(&cl->gw));
    fflush(stdout);
    cl->printed = true;
}

int main(void)
{
    static struct cluster cl;
    struct gateway_options opts;
    char addr[NODES][32];
    const char *contact[NODES];
    int rv;

    signal(SIGPIPE, SIG_IGN);
    rv = uv_loop_init(&cl.loop);
    assert(rv == 0);
    for (uint32_t i = 0; i < NODES; i++) {
        fake_broker_init(&cl.loop, &cl.fakes[i], i);
        cl.members[i] = &cl.fakes[i];
    }
    for (uint32_t i = 0; i < NODES; i++) {
        struct fake_broker *f = &cl.fakes[i];
        f->cluster = cl.members;
        f->cluster_count = NODES;
        f->cluster_size = NODES;
        f->partitions_count = NODES;
        f->replication_factor = NODES;
        f->create_adds_job = true;
        for (uint32_t p = 1; p <= NODES; p++) {
            fake_broker_partition(f, p,
                                  p == i + 1 ? TANDEM__COMMAND__ROLE__LEADER
                                             : TANDEM__COMMAND__ROLE__FOLLOWER,
                                  1);
        }
        fake_broker_address(f, addr[i]);
        contact[i] = addr[i];
    }
    gateway_options_default(&opts);
    opts.host = "127.0.0.1";
    opts.grpc_port = 0;
    opts.rest_enabled = false;
    opts.contact_points = contact;
    opts.contact_point_count = NODES;
    opts.topology_refresh_ms = 50;
    rv = gateway_init(&cl.loop, &cl.gw, &opts);
    if (rv != 0) {
        fprintf(stderr, "gateway-fake-cluster: %s\n", cl.gw.errmsg);
        return 1;
    }
    cl.gw.data = &cl;
    uv_signal_init(&cl.loop, &cl.sigterm);
    uv_signal_init(&cl.loop, &cl.sigint);
    cl.sigterm.data = cl.sigint.data = &cl;
    uv_signal_start(&cl.sigterm, cluster_signal_cb, SIGTERM);
    uv_signal_start(&cl.sigint, cluster_signal_cb, SIGINT);
    uv_timer_init(&cl.loop, &cl.ready);
    cl.ready.data = &cl;
    rv = gateway_start(&cl.gw);
    if (rv != 0) {
        fprintf(stderr, "gateway-fake-cluster: %s\n", cl.gw.errmsg);
        cl.stopping = true;
        gateway_close(&cl.gw, cluster_gateway_closed_cb);
    } else {
        uv_timer_start(&cl.ready, cluster_ready_cb, 10, 10);
    }
    uv_run(&cl.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&cl.loop) != 0) {
        fprintf(stderr, "gateway-fake-cluster: handles left open\n");
        return 1;
    }
    return rv == 0 ? 0 : 1;
}
