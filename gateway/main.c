/* main.c: tandem-gateway, the standalone gateway process.
 *
 * Reads options from the environment (Zeebe's names) and then from the
 * command line (which wins), starts a struct gateway (gateway.h) on the
 * default libuv loop, and runs until SIGINT or SIGTERM, which close the
 * gateway cleanly (calls in flight end UNAVAILABLE, sockets close) before
 * the process exits 0.
 *
 *   --contact-point HOST:PORT  a broker's command API (repeatable;
 *                              env ZEEBE_GATEWAY_CLUSTER_INITIALCONTACTPOINTS,
 *                              comma-separated; default 127.0.0.1:26501)
 *   --host ADDR                listen address (ZEEBE_GATEWAY_NETWORK_HOST,
 *                              default 0.0.0.0)
 *   --grpc-port N              gRPC port (ZEEBE_GATEWAY_NETWORK_PORT, 26500)
 *   --rest-port N              REST port (SERVER_PORT, 8080); 0 = off
 *   --request-timeout-ms N     (ZEEBE_GATEWAY_CLUSTER_REQUESTTIMEOUT in
 *                              ms or with an "s"/"ms" suffix, 15000)
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "gateway/gateway.h"

#define MAIN_CONTACT_POINTS_MAX 64
#define MAIN_ENV_BYTES_MAX 4096

struct main_state {
    struct gateway gw;
    uv_signal_t sigint, sigterm;
    const char *contact[MAIN_CONTACT_POINTS_MAX];
    size_t contact_count;
    char env_contacts[MAIN_ENV_BYTES_MAX];
};

static void main_usage(FILE *out)
{
    fprintf(out,
            "usage: tandem-gateway [--contact-point HOST:PORT]... "
            "[--host ADDR]\n"
            "                      [--grpc-port N] [--rest-port N] "
            "[--request-timeout-ms N]\n");
}

/* Parses a port (0..65535). Returns 0 or -1. */
static int main_port_parse(const char *s, uint16_t *out)
{
    char *end;
    unsigned long v;

    if (s == NULL || *s == '\0') {
        return -1;
    }
    v = strtoul(s, &end, 10);
    if (*end != '\0' || v > 65535) {
        return -1;
    }
    *out = (uint16_t)v;
    return 0;
}

/* Parses a duration in ms, with an optional "ms" or "s" suffix. */
static int main_ms_parse(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (s == NULL || *s == '\0') {
        return -1;
    }
    v = strtoull(s, &end, 10);
    if (strcmp(end, "s") == 0) {
        v *= 1000;
    } else if (*end != '\0' && strcmp(end, "ms") != 0) {
        return -1;
    }
    if (v == 0) {
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

static int main_contact_add(struct main_state *st, const char *cp)
{
    if (st->contact_count >= MAIN_CONTACT_POINTS_MAX) {
        fprintf(stderr, "tandem-gateway: at most %d contact points\n",
                MAIN_CONTACT_POINTS_MAX);
        return -1;
    }
    st->contact[st->contact_count++] = cp;
    return 0;
}

static void main_closed_cb(struct gateway *gw)
{
    (void)gw;
}

static void main_signal_cb(uv_signal_t *sig, int signum)
{
    struct main_state *st = sig->data;

    fprintf(stderr, "tandem-gateway: %s, shutting down\n",
            signum == SIGINT ? "SIGINT" : "SIGTERM");
    uv_close((uv_handle_t *)&st->sigint, NULL);
    uv_close((uv_handle_t *)&st->sigterm, NULL);
    gateway_close(&st->gw, main_closed_cb);
}

static int main_env(struct main_state *st, struct gateway_options *o)
{
    const char *v;

    v = getenv("ZEEBE_GATEWAY_CLUSTER_INITIALCONTACTPOINTS");
    if (v != NULL && *v != '\0') {
        char *save = NULL;
        char *tok;
        snprintf(st->env_contacts, sizeof(st->env_contacts), "%s", v);
        for (tok = strtok_r(st->env_contacts, ",", &save); tok != NULL;
             tok = strtok_r(NULL, ",", &save)) {
            while (*tok == ' ') {
                tok++;
            }
            if (*tok != '\0' && main_contact_add(st, tok) != 0) {
                return -1;
            }
        }
    }
    if ((v = getenv("ZEEBE_GATEWAY_NETWORK_HOST")) != NULL && *v != '\0') {
        o->host = v;
    }
    if ((v = getenv("ZEEBE_GATEWAY_NETWORK_PORT")) != NULL &&
        main_port_parse(v, &o->grpc_port) != 0) {
        fprintf(stderr, "tandem-gateway: bad ZEEBE_GATEWAY_NETWORK_PORT\n");
        return -1;
    }
    if ((v = getenv("SERVER_PORT")) != NULL &&
        main_port_parse(v, &o->rest_port) != 0) {
        fprintf(stderr, "tandem-gateway: bad SERVER_PORT\n");
        return -1;
    }
    if ((v = getenv("ZEEBE_GATEWAY_CLUSTER_REQUESTTIMEOUT")) != NULL &&
        main_ms_parse(v, &o->request_timeout_ms) != 0) {
        fprintf(stderr,
                "tandem-gateway: bad ZEEBE_GATEWAY_CLUSTER_REQUESTTIMEOUT\n");
        return -1;
    }
    return 0;
}

static int main_args(struct main_state *st, struct gateway_options *o,
                     int argc, char **argv)
{
    bool cli_contacts = false;
    int i;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            main_usage(stdout);
            exit(0);
        }
        if (val == NULL) {
            fprintf(stderr, "tandem-gateway: %s needs a value\n", a);
            return -1;
        }
        i++;
        if (strcmp(a, "--contact-point") == 0) {
            if (!cli_contacts) {
                st->contact_count = 0; /* the command line replaces env */
                cli_contacts = true;
            }
            if (main_contact_add(st, val) != 0) {
                return -1;
            }
        } else if (strcmp(a, "--host") == 0) {
            o->host = val;
        } else if (strcmp(a, "--grpc-port") == 0) {
            if (main_port_parse(val, &o->grpc_port) != 0) {
                fprintf(stderr, "tandem-gateway: bad --grpc-port %s\n", val);
                return -1;
            }
        } else if (strcmp(a, "--rest-port") == 0) {
            if (main_port_parse(val, &o->rest_port) != 0) {
                fprintf(stderr, "tandem-gateway: bad --rest-port %s\n", val);
                return -1;
            }
        } else if (strcmp(a, "--request-timeout-ms") == 0) {
            if (main_ms_parse(val, &o->request_timeout_ms) != 0) {
                fprintf(stderr, "tandem-gateway: bad --request-timeout-ms\n");
                return -1;
            }
        } else {
            fprintf(stderr, "tandem-gateway: unknown option %s\n", a);
            main_usage(stderr);
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct main_state st;
    struct gateway_options o;
    uv_loop_t *loop = uv_default_loop();
    int rv;

    signal(SIGPIPE, SIG_IGN); /* a peer gone mid-write is an error code */
    gateway_options_default(&o);
    o.rest_port = GATEWAY_REST_PORT_DEFAULT;
    if (main_env(&st, &o) != 0 || main_args(&st, &o, argc, argv) != 0) {
        return 2;
    }
    if (st.contact_count == 0) {
        st.contact[st.contact_count++] = "127.0.0.1:26501";
    }
    o.rest_enabled = o.rest_port != 0;
    o.contact_points = st.contact;
    o.contact_point_count = st.contact_count;
    rv = gateway_init(loop, &st.gw, &o);
    if (rv != 0) {
        fprintf(stderr, "tandem-gateway: %s\n", st.gw.errmsg);
        return 2;
    }
    rv = gateway_start(&st.gw);
    if (rv != 0) {
        fprintf(stderr, "tandem-gateway: %s\n", st.gw.errmsg);
        gateway_close(&st.gw, main_closed_cb);
        uv_run(loop, UV_RUN_DEFAULT);
        uv_loop_close(loop);
        return 1;
    }
    fprintf(stderr,
            "tandem-gateway: gRPC on %s:%u, REST on %s:%u, %zu contact "
            "point(s)\n",
            o.host, (unsigned)gateway_grpc_port(&st.gw), o.host,
            (unsigned)gateway_rest_port(&st.gw), st.contact_count);
    uv_signal_init(loop, &st.sigint);
    uv_signal_init(loop, &st.sigterm);
    st.sigint.data = &st;
    st.sigterm.data = &st;
    uv_signal_start(&st.sigint, main_signal_cb, SIGINT);
    uv_signal_start(&st.sigterm, main_signal_cb, SIGTERM);
    uv_run(loop, UV_RUN_DEFAULT);
    rv = uv_loop_close(loop);
    return rv == 0 ? 0 : 1;
}
