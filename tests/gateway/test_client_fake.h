/* test_client_fake.h: fake broker command servers for the gateway tests.
 *
 * A fake broker listens on 127.0.0.1 (ephemeral port) with libuv, speaks
 * the command protocol (proto/command.proto, framed by proto/frame.h) and
 * answers:
 *   TopologyRequest -> BrokerTopology built from its fields below, with
 *                      every fake of its cluster as a member;
 *   every command   -> per `publish_mode` (all commands, not only
 *                      PublishMessage): an answer as leader, an Error with
 *                      `error_code` (NOT_LEADER with leader_hint, ...),
 *                      silence, or dropping the connection. Answers:
 *                      PublishMessage a key; DeployResource one process
 *                      per resource; CreateProcessInstance[WithResult] an
 *                      instance key (and, with create_adds_job, one job
 *                      on that partition); SetVariables a key; the job
 *                      and incident commands an empty response;
 *   ActivateJobs    -> up to maxJobsToActivate of the partition's
 *                      jobs_available (keys partition << 51 | 1000 + n);
 *   AwaitJobs       -> available at once when the partition has jobs,
 *                      else held until fake_broker_jobs_add() (bounded).
 * Tests change the fields between loop runs to move leaders, fail, stop.
 * Counters: requests seen per body case, the last partition, timeout and
 * request (packed copy) of any command.
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
#define FAKE_AWAITS_MAX 64u
#define FAKE_BODIES_MAX 32u /* > the highest Request body number */
#define FAKE_LAST_BYTES_MAX 4096u

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
    bool dead_to_others;           /* other fakes leave it out of their
                                      member lists (as brokers do with a
                                      member gossip reports dead) */
    enum fake_publish_mode publish_mode;
    uint32_t drop_first;           /* DROP this many, then ANSWER */
    Tandem__Command__Code error_code;
    uint32_t leader_hint;          /* node id + 1 in NOT_LEADER */
    uint32_t publishes;            /* PublishMessage requests seen */
    uint32_t last_partition;       /* of the last PublishMessage */
    uint64_t last_timeout_ms;
    uint32_t topology_requests;
    uint32_t commands[FAKE_BODIES_MAX]; /* requests per body case */
    uint32_t jobs_available[FAKE_PARTITIONS_MAX + 1]; /* per partition */
    bool create_adds_job;          /* a created instance makes a job */
    uint32_t created;              /* instances created */
    uint32_t jobs_handed;          /* jobs activated */
    uint8_t last_request[FAKE_LAST_BYTES_MAX]; /* packed last command */
    size_t last_request_len;       /* 0: too big or none */
    struct {
        struct fake_conn *conn;    /* NULL: free slot */
        uint64_t id;
        uint32_t partition;
    } awaits[FAKE_AWAITS_MAX];     /* held AwaitJobs requests */
    uint32_t await_count;
    struct fake_conn *conns[FAKE_CONNS_MAX];
    uint32_t handles_open;
};

/* Starts a fake broker on 127.0.0.1:0. */
void fake_broker_init(uv_loop_t *loop, struct fake_broker *f,
                      uint32_t node_id);

/* Sets f's partition entry (adds or replaces by id). */
void fake_broker_partition(struct fake_broker *f, uint32_t id,
                           Tandem__Command__Role role, uint64_t term);

/* Adds n jobs to partition's jobs_available and answers the held
 * AwaitJobs requests of that partition (available). */
void fake_broker_jobs_add(struct fake_broker *f, uint32_t partition,
                          uint32_t n);

/* The last command request of f unpacked (free with
 * tandem__command__request__free_unpacked), or NULL. */
Tandem__Command__Request *fake_broker_last(const struct fake_broker *f);

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
