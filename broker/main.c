/* main.c: tandem-broker, the broker daemon.
 *
 *   tandem-broker [--config FILE] [--print-config]
 *
 * Loads the configuration (defaults, the YAML file, TANDEM_BROKER_*
 * environment variables; docs/configuration.md), prints it and exits with
 * --print-config, or else logs how its node id and contact points were
 * derived (when they were: cluster.podOrdinal, cluster.nodeIdFromHostname,
 * cluster.initialContactPointsTemplate), creates the broker on a libuv
 * loop and runs it until SIGINT or SIGTERM, then closes everything and
 * exits 0. A bad configuration exits 2 with a message naming the key; a
 * start-up failure (port taken, storage unreadable) exits 1 with a
 * message. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "broker/broker.h"
#include "broker/config.h"

extern char **environ;

static uv_signal_t sig_int;
static uv_signal_t sig_term;
static struct broker *running;

static void usage(FILE *out)
{
    fprintf(out, "usage: tandem-broker [--config FILE] [--print-config]\n"
                 "  --config FILE    YAML configuration (see "
                 "docs/configuration.md)\n"
                 "  --print-config   print the effective configuration and "
                 "exit\n"
                 "Environment variables TANDEM_BROKER_* override the file "
                 "(TANDEM_BROKER_CLUSTER_NODEID\n"
                 "is tandem.broker.cluster.nodeId). With "
                 "cluster.nodeIdFromHostname the node id is\n"
                 "ordinal * regions + regionId, the ordinal taken from a "
                 "StatefulSet host name\n"
                 "<name>-<ordinal> (TANDEM_BROKER_HOSTNAME, else HOSTNAME, "
                 "else gethostname()).\n"
                 "Exit codes: 0 stopped cleanly, 1 start-up failure, 2 bad "
                 "arguments or configuration.\n");
}

static void on_closed(void *data)
{
    (void)data;
    uv_close((uv_handle_t *)&sig_int, NULL);
    uv_close((uv_handle_t *)&sig_term, NULL);
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)s;
    fprintf(stderr, "tandem-broker: signal %d, shutting down\n", signum);
    uv_signal_stop(&sig_int);
    uv_signal_stop(&sig_term);
    if (running != NULL) {
        struct broker *b = running;
        running = NULL;
        broker_close(b, on_closed, NULL);
    }
}

int main(int argc, char **argv)
{
    const char *config_path = NULL;
    bool print = false;
    static struct broker_config cfg;
    char err[1024];
    uv_loop_t loop;
    int rv;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_path = argv[++i];
        } else if (strcmp(argv[i], "--print-config") == 0) {
            print = true;
        } else if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "tandem-broker: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    rv = broker_config_load(&cfg, config_path, environ, err, sizeof(err));
    if (rv != 0) {
        fprintf(stderr, "tandem-broker: %s\n", err);
        return 2;
    }
    if (print) {
        return broker_config_print(&cfg, stdout) == 0 ? 0 : 1;
    }
    if (cfg.node_id_derived) {
        fprintf(stderr,
                "tandem-broker: nodeId %u = podOrdinal %u * regions %u + "
                "regionId %u%s%s\n",
                cfg.node_id, cfg.pod_ordinal, cfg.regions, cfg.region_id,
                cfg.pod_ordinal_from_hostname ? ", ordinal from host name "
                                              : "",
                cfg.pod_ordinal_from_hostname ? cfg.hostname : "");
    }
    if (cfg.contact_points_derived) {
        fprintf(stderr,
                "tandem-broker: %u contact points from "
                "initialContactPointsTemplate %s\n",
                cfg.contact_point_count, cfg.contact_point_template);
    }
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    rv = broker_init(&loop, &cfg, &running, err, sizeof(err));
    if (rv != 0) {
        fprintf(stderr, "tandem-broker: %s\n", err);
        uv_loop_close(&loop);
        return 1;
    }
    uv_signal_init(&loop, &sig_int);
    uv_signal_init(&loop, &sig_term);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    rv = broker_start(running, err, sizeof(err));
    if (rv != 0) {
        struct broker *b = running;
        fprintf(stderr, "tandem-broker: %s\n", err);
        running = NULL;
        broker_close(b, on_closed, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        return 1;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    rv = uv_loop_close(&loop);
    return rv == 0 ? 0 : 1;
}
