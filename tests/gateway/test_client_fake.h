/* test_client_fake.h: fake broker command servers for the gateway tests.
 *
 * A fake broker listens on 127.0.0.1 (ephemeral port) with libuv, speaks
 * the command protocol (proto/command.proto, framed by proto/frame.h) and
 * answers:
 *   TopologyRequest -> BrokerTopology built from its fields below, with
 *                      every fake of its cluster as a member;
 *   PublishMessage  -> per `publish_mode`: an answer as leader, an Error
 *                      with `error_code` (NOT_LEADER with leader_hint, ...),
 *                      silence, or dropping the connection.
 * Tests change the fields between loop runs to move leaders, fail, stop.
 *
 * Also: run_until() drives a loop until a condition holds or time runs
 * out, so every test is bounded. */
#ifndef TANDEM_TESTS_GATEWAY_FAKE_H
#define TANDEM_TESTS_GATEWAY_FAKE_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "proto/proto.h"

#define FAKE_PARTITIONS_MAX 8u
#define FAKE_CONNS_MAX 8u
#define FAKE_CLUSTER_MAX 4u

enum fake_publish_mode {
    FAKE_PUBLISH_ANSWER = 0, /* PublishMessageResponse */
    FAKE_PUBLISH_ERROR,      /* Error{error_code, "fake error", hint} */
    FAKE_PUBLISH_SILENT,     /* never answers */
    FAKE_PUBLISH_DROP,       /* closes the connection */
};

struct fake_partition {
    uint32_t id;
    Tandem__Command__Role role;
    Tandem__Command__Health health;
    uint64_t term;
};

struct fake_conn;

struct fake_broker {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uint16_t port;
    bool listening;
    uint32_t node_id;
    uint32_t cluster_size, partitions_count, replication_factor;
    uint64_t config_version;
    struct fake_partition partitions[FAKE_PARTITIONS_MAX];
    uint32_t partition_count;
    struct fake_broker **cluster; /* members, incl. itself */
    uint32_t cluster_count;
    bool topology_silent;          /* ignore TopologyRequests */
    enum fake_publish_mode publish_mode;
    uint32_t drop_first;           /* DROP this many, then ANSWER */
    Tandem__Command__Code error_code;
    uint32_t leader_hint;          /* node id + 1 in NOT_LEADER */
    uint32_t publishes;            /* PublishMessage requests seen */
    uint32_t last_partition;       /* of the last PublishMessage */
    uint64_t last_timeout_ms;
    uint32_t topology_requests;
    struct fake_conn *conns[FAKE_CONNS_MAX];
    uint32_t handles_open;
};

/* Starts a fake broker on 127.0.0.1:0. */
void fake_broker_init(uv_loop_t *loop, struct fake_broker *f,
                      uint32_t node_id);

/* Sets f's partition entry (adds or replaces by id). */
void fake_broker_partition(struct fake_broker *f, uint32_t id,
                           Tandem__Command__Role role, uint64_t term);

/* Closes every connection (the client sees EOF); keeps listening. */
void fake_broker_drop(struct fake_broker *f);

/* Closes connections and the listener; run the loop to finish. */
void fake_broker_close(struct fake_broker *f);

/* "127.0.0.1:<port>" into buf (32 bytes). */
void fake_broker_address(const struct fake_broker *f, char *buf);

/* Runs loop until pred(arg) or timeout_ms pass; returns pred's value. */
bool run_until(uv_loop_t *loop, bool (*pred)(void *), void *arg,
               uint64_t timeout_ms);

/* Runs loop for ms milliseconds. */
void run_for(uv_loop_t *loop, uint64_t ms);

#endif /* TANDEM_TESTS_GATEWAY_FAKE_H */
