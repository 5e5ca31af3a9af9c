/* harness.h: a hand-driven in-memory cluster for the raft unit tests.
 *
 * A cluster holds N raft nodes with ids 1..N. Time is explicit (c->now),
 * messages go through a queue the test can inspect, deliver selectively,
 * drop, or partition, and every node has an in-memory "disk" that follows
 * the update processing contract of raft/raft.h:
 *
 *   snapshot and hard state are stored before messages are queued, entries
 *   are written in update order and acknowledged with RAFT_EVENT_PERSISTED
 *   either at once (the default) or only when the test calls
 *   cluster_persist() (node->hold_persist), messages and committed entries
 *   are deep-copied out of each update before the next call on the node.
 *
 * While processing updates the harness checks the contract from the
 * caller's side and records the first violation per node (node->violation):
 * a term or a granted vote announced before it was made durable, committed
 * entries listed before they were persisted or out of order, a successful
 * append acknowledgement for entries that are not durable. cluster_check()
 * asserts that no violation happened and that all nodes applied identical
 * entries at identical indexes (State Machine Safety, Figure 3).
 */
#ifndef TANDEM_TESTS_RAFT_UNIT_HARNESS_H
#define TANDEM_TESTS_RAFT_UNIT_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft/raft.h"

#define H_NODES_MAX 9

/* A deep copy of a message: entries, payloads and snapshot chunk data are
 * owned by the copy. */
struct h_msg {
    struct raft_message m;
    struct raft_entry *entries; /* m.entries points here */
    size_t n_entries;           /* entries owned (m.entry_count may shrink) */
    void *data;                 /* m.data.base points here */
};

/* What the harness remembers about each update a node produced. */
struct h_update_rec {
    unsigned flags;
    struct raft_hard_state hard_state; /* valid with RAFT_UPDATE_HARD_STATE */
    raft_index entries_first;          /* first index of update->entries */
    size_t entry_count;
    size_t message_count;
    size_t committed_count;
    raft_id granted_vote_to; /* a granted VOTE_RESP in this update, or 0 */
    enum raft_role role;
    raft_term term;
};

/* An applied entry, as the state machine saw it. */
struct h_applied {
    raft_index index;
    raft_term term;
    uint8_t type;
    void *data;
    size_t len;
};

/* An acknowledgement held back until cluster_persist(). */
struct h_pending {
    raft_index index;
    raft_term term;
};

struct h_node {
    raft_id id;
    struct raft_node *raft; /* NULL while crashed */
    struct raft_options options;
    bool hold_persist; /* entries are written but not acknowledged */

    /* The "disk". */
    bool has_hard_state;
    struct raft_hard_state hard_state;
    struct raft_entry *log; /* deep copies, contiguous */
    size_t log_len;
    size_t log_cap;
    raft_index durable_index; /* highest index acknowledged as persisted */
    bool has_snapshot;
    struct raft_snapshot_meta snapshot;
    void *snapshot_data;
    size_t snapshot_len;
    unsigned snapshots_installed; /* updates with RAFT_UPDATE_SNAPSHOT */
    bool ever_forced;             /* a stored hard state had forced=true */

    struct h_pending *pending;
    size_t pending_len;
    size_t pending_cap;

    /* The state machine: payloads of applied NORMAL entries, each followed
     * by ';'. A snapshot is a copy of these bytes. */
    char *sm;
    size_t sm_len;
    size_t sm_cap;
    raft_index applied; /* last index applied (or restored by snapshot) */

    /* Every entry this node applied since it was created (across
     * restarts), for cross-node comparison. */
    struct h_applied *applied_log;
    size_t applied_len;
    size_t applied_cap;

    struct h_update_rec *updates;
    size_t update_len;
    size_t update_cap;

    char violation[256]; /* first contract violation, "" if none */
};

typedef bool (*h_filter_fn)(const struct raft_message *m, void *arg);
/* May rewrite a message in flight (e.g. shorten an append's entries). */
typedef void (*h_mutate_fn)(struct raft_message *m, void *arg);

struct cluster {
    size_t n;
    struct h_node nodes[H_NODES_MAX + 1]; /* index = id, [0] unused */
    raft_time now;
    raft_time step_ms; /* granularity of cluster_run() */

    struct h_msg *queue; /* messages in flight, oldest first */
    size_t queue_len;
    size_t queue_cap;

    bool cut[H_NODES_MAX + 1][H_NODES_MAX + 1]; /* cut[from][to] */
    bool held[H_NODES_MAX + 1]; /* messages to/from this node wait */
    h_filter_fn filter; /* drops a message at delivery if it returns true */
    void *filter_arg;
    h_mutate_fn mutate; /* applied at delivery, before the filter */
    void *mutate_arg;

    bool trace_on;
    struct h_msg *trace; /* copies of every message queued while trace_on */
    size_t trace_len;
    size_t trace_cap;

    uint64_t delivered;
    uint64_t dropped;

    /* Election Safety (Figure 3): who led which term. */
    raft_term leader_terms[1024];
    raft_id leader_ids[1024];
    size_t leader_count;
    char violation[256]; /* first cluster-wide violation, "" if none */
};

/* cmocka teardown: frees every cluster a (failed) test left behind. Use
 * H_TEST(fn) in the test tables so that failing tests do not leak. */
int harness_teardown(void **state);
#define H_TEST(fn) cmocka_unit_test_teardown(fn, harness_teardown)

/* Test options: raft_options_default() with priority election off (plain
 * randomized timeouts), pre-vote and check-quorum on. */
void harness_options(struct raft_options *o, raft_id id);

/* Creates n nodes with ids 1..n (nothing bootstrapped). base may be NULL
 * (harness_options); its id and seed are overridden per node. */
struct cluster *cluster_create(size_t n, const struct raft_options *base);
/* cluster_create(n, NULL) then cluster_bootstrap_voters(c, n). */
struct cluster *cluster_new(size_t n);
void cluster_free(struct cluster *c);

/* Bootstraps nodes 1..voters with a configuration of voters 1..voters
 * (priorities[i] for id i+1, or 1 when priorities is NULL). */
void cluster_bootstrap_voters(struct cluster *c, size_t voters,
                              const uint8_t *priorities);
/* Bootstraps the listed nodes with the given configuration. */
void cluster_bootstrap(struct cluster *c, const struct raft_config *config,
                       const raft_id *ids, size_t count);
/* A configuration of voters 1..voters, priority 1. */
void h_config_voters(struct raft_config *config, size_t voters);

/* Writes a log onto node id's disk and loads it: entry 1 is a
 * configuration entry (config, of term terms[0]), entry i (i > 1) is a
 * NORMAL entry of term terms[i-1] with payload "e<i>". Returns the
 * raft_node_load() result. */
int cluster_load_log(struct cluster *c, raft_id id, raft_term term,
                     raft_id vote, const struct raft_config *config,
                     const raft_term *terms, size_t count);

/* Steps one event on node id at c->now and processes the update. Returns
 * the raft_node_step() result. */
int cluster_step(struct cluster *c, raft_id id, struct raft_event *event);
/* Only collects and processes a pending update. */
void cluster_collect(struct cluster *c, raft_id id);
/* Event helpers. */
int cluster_campaign(struct cluster *c, raft_id id);
int cluster_propose(struct cluster *c, raft_id id, const char *payload);
int cluster_propose_buf(struct cluster *c, raft_id id, const void *data,
                        size_t len, raft_index *first_index);
int cluster_change(struct cluster *c, raft_id id,
                   const struct raft_config *config);
int cluster_force(struct cluster *c, raft_id id,
                  const struct raft_config *config);
int cluster_transfer(struct cluster *c, raft_id id, raft_id to);
/* Takes a snapshot of node id's state machine at its applied index. */
int cluster_snapshot(struct cluster *c, raft_id id);
/* Hands a message straight to its destination (no queue, no filter). */
int cluster_inject(struct cluster *c, const struct raft_message *m);

/* Acknowledges every held-back write of node id (RAFT_EVENT_PERSISTED). */
void cluster_persist(struct cluster *c, raft_id id);
/* Acknowledges held-back writes up to and including index. */
void cluster_persist_to(struct cluster *c, raft_id id, raft_index index);

/* Crash: the node is freed; its disk keeps what was acknowledged. */
void cluster_crash(struct cluster *c, raft_id id);
/* Restart from the disk with raft_node_load(). Returns its result. */
int cluster_restart(struct cluster *c, raft_id id);
bool cluster_up(const struct cluster *c, raft_id id);

/* Connectivity. */
void cluster_isolate(struct cluster *c, raft_id id);
void cluster_cut(struct cluster *c, raft_id a, raft_id b); /* both ways */
/* Removes cuts, holds, the filter and the mutator. */
void cluster_heal(struct cluster *c);
void cluster_set_filter(struct cluster *c, h_filter_fn fn, void *arg);
/* Delays (without losing) every message to or from id: cluster_deliver_all
 * and cluster_run leave them queued until cluster_release(). A slow link,
 * not a partition. */
void cluster_hold(struct cluster *c, raft_id id);
void cluster_release(struct cluster *c, raft_id id);
void cluster_set_mutator(struct cluster *c, h_mutate_fn fn, void *arg);

/* Queue access. type/from/to of 0 match anything. */
size_t cluster_count(const struct cluster *c, uint8_t type, raft_id from,
                     raft_id to);
/* Index in the queue of the first match at or after start, or -1. */
long cluster_find(const struct cluster *c, uint8_t type, raft_id from,
                  raft_id to, size_t start);
const struct raft_message *cluster_msg(const struct cluster *c, size_t i);
/* Delivers queue[i] (subject to cut/filter/crash) and removes it. */
void cluster_deliver_at(struct cluster *c, size_t i);
/* Delivers the matching messages present now (not those they produce).
 * Returns how many were taken off the queue. */
size_t cluster_deliver(struct cluster *c, uint8_t type, raft_id from,
                       raft_id to);
/* Drops queue[i]. */
void h_drop_at(struct cluster *c, size_t i);
/* Drops matching messages. Returns how many. */
size_t cluster_drop(struct cluster *c, uint8_t type, raft_id from, raft_id to);
/* Delivers until the queue is empty (bounded). Returns messages taken. */
size_t cluster_deliver_all(struct cluster *c);

/* Advances time by ms in steps of c->step_ms, ticking every live node and
 * delivering all messages after each step. */
void cluster_run(struct cluster *c, raft_time ms);
/* Runs until pred(c, arg) holds or ms elapsed; returns whether it held. */
bool cluster_run_until(struct cluster *c, raft_time ms,
                       bool (*pred)(struct cluster *c, void *arg), void *arg);
/* Advances time by ms ticking nodes, without delivering anything. */
void cluster_tick(struct cluster *c, raft_time ms);
/* Moves the clock forward without ticking or delivering anything (the next
 * event any node gets carries the new time). */
void cluster_advance(struct cluster *c, raft_time ms);

/* Campaigns on id (or transfers leadership to it when another live leader
 * exists) and delivers messages until id leads and its no-op committed.
 * Returns whether id became leader. */
bool cluster_elect(struct cluster *c, raft_id id);
/* Runs until all live, connected nodes have the leader's commit index and
 * applied everything, and the queue is empty. Returns success. */
bool cluster_stabilize(struct cluster *c);
/* The unique live leader of the highest term, or 0. */
raft_id cluster_leader(const struct cluster *c);

/* Tracing of sent messages. */
void cluster_trace(struct cluster *c, bool on);
size_t cluster_trace_count(const struct cluster *c, uint8_t type, raft_id from,
                           raft_id to);

/* Accessors. */
struct raft_node *cluster_raft(struct cluster *c, raft_id id);
struct h_node *cluster_node(struct cluster *c, raft_id id);
/* Whether node id applied a NORMAL entry with this payload. */
bool cluster_applied_payload(const struct cluster *c, raft_id id,
                             const char *payload);
/* Index at which node id applied the payload, or 0. */
raft_index cluster_applied_index_of(const struct cluster *c, raft_id id,
                                    const char *payload);

/* Prints every node's role, term, leader, indexes and the queue size to
 * stderr (debugging aid). */
void cluster_dump(const struct cluster *c, const char *label);

/* Contract checks (cmocka assertions): no violation recorded, identical
 * applied entries at identical indexes on all nodes, applied indexes
 * strictly increasing by one per node (since the last snapshot install). */
void cluster_check(const struct cluster *c);

/* Decodes the CONFIG entries node id applied, in order, into out (at most
 * max). Returns how many. */
size_t cluster_applied_configs(const struct cluster *c, raft_id id,
                               struct raft_config *out, size_t max);

#endif /* TANDEM_TESTS_RAFT_UNIT_HARNESS_H */
