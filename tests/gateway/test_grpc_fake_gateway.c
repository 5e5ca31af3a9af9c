/* test_grpc_fake_gateway.c: grpc-fake-gateway, the gRPC server with the
 * fake backend as a process, for tests with real clients (zbctl,
 * zeebe-node: test_grpc_zbctl.sh).
 *
 * Usage: grpc-fake-gateway [--host H] [--port P]
 * Listens on H:P (default 127.0.0.1, port 0: ephemeral), prints
 * "port=<bound port>" on stdout, serves until SIGTERM or SIGINT, then
 * closes the server and the loop cleanly and exits 0. */
#define _POSIX_C_SOURCE 200809L
#include <assert.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "gateway/grpc_server.h"
#include "test_grpc_fake_backend.h"

struct fake_gateway {
    uv_loop_t loop;
    uv_signal_t sigterm, sigint;
    struct grpc_fake_backend fake;
    struct grpc_server srv;
    bool stopping;
};

static void fake_gateway_closed_cb(struct grpc_server *srv)
{
    struct fake_gateway *g = srv->data;

    grpc_fake_backend_close(&g->fake);
    uv_close((uv_handle_t *)&g->sigterm, NULL);
    uv_close((uv_handle_t *)&g->sigint, NULL);
}

static void fake_gateway_signal_cb(uv_signal_t *sig, int signum)
{
    struct fake_gateway *g = sig->data;

    (void)signum;
    if (g->stopping) {
        return;
    }
    g->stopping = true;
    grpc_server_close(&g->srv, fake_gateway_closed_cb);
}

int main(int argc, char **argv)
{
    static struct fake_gateway g;
    const char *host = "127.0.0.1";
    unsigned long port = 0;
    int rv;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            host = argv[++i];
        } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = strtoul(argv[++i], NULL, 10);
        } else {
            fprintf(stderr, "usage: %s [--host H] [--port P]\n", argv[0]);
            return 2;
        }
    }
    if (port > 65535) {
        fprintf(stderr, "grpc-fake-gateway: bad port\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN); /* a client gone mid-write: EPIPE instead */
    rv = uv_loop_init(&g.loop);
    assert(rv == 0);
    grpc_fake_backend_init(&g.fake, &g.loop);
    rv = grpc_server_init(&g.loop, &g.srv, NULL, &g.fake.base);
    assert(rv == 0);
    g.srv.data = &g;
    uv_signal_init(&g.loop, &g.sigterm);
    uv_signal_init(&g.loop, &g.sigint);
    g.sigterm.data = g.sigint.data = &g;
    uv_signal_start(&g.sigterm, fake_gateway_signal_cb, SIGTERM);
    uv_signal_start(&g.sigint, fake_gateway_signal_cb, SIGINT);
    rv = grpc_server_start(&g.srv, host, (uint16_t)port);
    if (rv != 0) {
        fprintf(stderr, "grpc-fake-gateway: %s\n", g.srv.errmsg);
        g.stopping = true;
        grpc_server_close(&g.srv, fake_gateway_closed_cb);
    } else {
        printf("port=%u\n", (unsigned)grpc_server_port(&g.srv));
        fflush(stdout);
    }
    uv_run(&g.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&g.loop) != 0) {
        fprintf(stderr, "grpc-fake-gateway: handles left open\n");
        return 1;
    }
    return rv == 0 ? 0 : 1;
}
