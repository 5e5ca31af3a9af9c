/* sim.h: private header of the deterministic Raft simulator (raft-sim).
 *
 * The simulator runs a whole Raft group in one thread on a simulated clock,
 * with no sockets, files or real time; everything is drawn from one 64-bit
 * seed, so a run is repeatable bit for bit. Data flows like this:
 *
 *   sim_main.c     CLI: for each seed, sim_run() one case; print the
 *                  verdict line "N passed, N failed".
 *   sim_cluster.c  the event loop: a min-heap of timed events (message
 *                  deliveries, ticks, disk completions, restarts, workload
 *                  and fault timers). Each event becomes one raft_node_step()
 *                  on one node; its update is processed in the order raft.h
 *                  prescribes: snapshot and hard state made durable at once
 *                  (sim_disk.c), entries queued as asynchronous writes
 *                  (reported later with RAFT_EVENT_PERSISTED), messages
 *                  deep-copied into the simulated network, committed entries
 *                  applied to the node's state machine (sim_sm.c). After
 *                  every step the invariants of sim_check.c run. Ends with a
 *                  liveness phase (faults off, everything healed).
 *   sim_fault.c    workload (proposals), compaction (local snapshots) and
 *                  faults: crashes, partitions, membership changes,
 *                  leadership transfers, forced reconfiguration.
 *   sim_disk.c     per-node simulated storage: durable state plus a queue
 *                  of pending entry writes that a crash may lose.
 *   sim_sm.c       the replicated state machine (a hash chain), proposal
 *                  payloads and the snapshot byte format.
 *   sim_check.c    the checkers: election safety, log matching, leader
 *                  completeness, state machine safety, durability.
 *   sim_prng.c     the seeded PRNG and hash helpers.
 */
#ifndef TANDEM_RAFT_SIM_H
#define TANDEM_RAFT_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft/raft.h"

/* ------------------------------------------------------------------------
 * Limits (every queue of the simulator is bounded)
 * --------------------------------------------------------------------- */

#define SIM_IDS_MAX 32          /* node ids are 1..SIM_IDS_MAX */
#define SIM_VOTERS_MAX 7        /* largest voter set the workload builds */
#define SIM_MEMBERS_SIM_MAX 9   /* largest member set the workload builds */
#define SIM_INFLIGHT_MAX 10000  /* messages on the wire; beyond: dropped */
#define SIM_DISK_QUEUE_MAX 512  /* pending writes per node; beyond: flush */
#define SIM_EVENTS_MAX 200000   /* timed events of any kind */
#define SIM_PAYLOAD_MIN 16      /* proposal payload sizes */
#define SIM_FORCES_MAX 2        /* forced reconfigurations per run */

/* ------------------------------------------------------------------------
 * PRNG and hashing (sim_prng.c)
 * --------------------------------------------------------------------- */

struct sim_rng {
    uint64_t s[4];
};

void sim_rng_seed(struct sim_rng *rng, uint64_t seed);
uint64_t sim_rng_next(struct sim_rng *rng);
/* Uniform in [lo, hi] (inclusive); lo when hi <= lo. */
uint64_t sim_rng_range(struct sim_rng *rng, uint64_t lo, uint64_t hi);
/* True with probability per_mille / 1000. Always draws one number. */
bool sim_rng_pm(struct sim_rng *rng, uint32_t per_mille);
uint64_t sim_mix64(uint64_t x);
uint64_t sim_hash(uint64_t h, const void *data, size_t len);

/* ------------------------------------------------------------------------
 * State machine, payloads, snapshot format (sim_sm.c)
 * --------------------------------------------------------------------- */

/* The replicated state: a hash chain over every applied entry, plus what a
 * snapshot's metadata needs (the configuration as of the applied index). */
struct sim_sm {
    raft_index applied;
    raft_term applied_term;
    uint64_t chain;
    uint64_t normal_count;
    bool has_config;
    struct raft_config config;
    raft_index config_index;
    raft_term config_term;
};

void sim_sm_init(struct sim_sm *sm);
/* Hash of an entry's type and payload (not of index or term). */
uint64_t sim_entry_digest(const struct raft_entry *entry);
/* The chain value after applying an entry with this index and digest. */
uint64_t sim_chain_next(uint64_t chain, raft_index index, uint64_t digest);
/* Applies one entry (caller checked the index). Returns 0, or -1 if a
 * configuration entry does not decode. */
int sim_sm_apply(struct sim_sm *sm, const struct raft_entry *entry);
/* Serializes the state followed by pad_len filler bytes. Returns a malloc'd
 * buffer (caller frees) and its length in *len, or NULL. */
uint8_t *sim_sm_encode(const struct sim_sm *sm, uint32_t pad_len,
                       size_t *len);
/* Parses and fully validates sim_sm_encode() output. Returns 0 or -1. */
int sim_sm_decode(const void *data, size_t len, struct sim_sm *sm);

/* Fills a proposal payload: 8-byte id, 8-byte seed, id-derived filler. */
void sim_payload_fill(uint8_t *buf, size_t len, uint64_t seed, uint64_t id);
/* Validates a payload made by sim_payload_fill(); sets *id. 0 or -1. */
int sim_payload_check(const void *buf, size_t len, uint64_t seed,
                      uint64_t *id);

/* ------------------------------------------------------------------------
 * Run parameters (drawn from the seed in sim_cluster.c)
 * --------------------------------------------------------------------- */

enum sim_bug {
    SIM_BUG_NONE = 0,
    SIM_BUG_LOSE_COMMIT, /* restart loses the tail of the durable log */
    SIM_BUG_FORGET_VOTE, /* restart loses the persisted vote */
    SIM_BUG_CORRUPT_APPLY, /* one node's state machine diverges once */
};

struct sim_params {
    uint32_t nodes;
    raft_time election_timeout;
    raft_time heartbeat;
    raft_time delay_min, delay_max;
    uint32_t loss_pm, dup_pm;
    uint32_t reorder_pm; /* chance a message may overtake earlier ones */
    raft_time disk_min, disk_max;
    raft_time tick_jitter;
    uint32_t torn_pm;  /* on a crash, chance each pending write landed */
    uint32_t defer_pm; /* chance a step collects its update later */
    raft_time workload_interval;
    uint32_t propose_batch_max;
    uint32_t payload_max;
    raft_time fault_interval;
    uint32_t crash_w, partition_w, heal_w, change_w, transfer_w, campaign_w,
        force_w;
    raft_time down_min, down_max;
    raft_time partition_min, partition_max;
    raft_time snapshot_interval;
    uint32_t snapshot_pad_max;
    uint8_t priorities[SIM_VOTERS_MAX + 1];
    struct raft_options options; /* id and seed set per node */
};

/* ------------------------------------------------------------------------
 * Storage (sim_disk.c)
 * --------------------------------------------------------------------- */

/* Owned entries, contiguous by index. */
struct sim_log {
    struct raft_entry *v;
    size_t len, cap;
};

struct sim_write {
    uint64_t id;
    raft_index first; /* delete stored entries >= first, then append */
    struct sim_log entries;
};

struct sim_disk {
    bool has_hs;
    struct raft_hard_state hs;
    bool has_snap;
    struct raft_snapshot_meta snap;
    uint8_t *snap_data;
    size_t snap_len;
    struct sim_log log; /* durable entries, from snap.index + 1 */
    struct sim_write *pending; /* FIFO of writes not yet durable */
    size_t pending_head, pending_len, pending_cap;
    raft_index tail; /* last index once every pending write lands */
    raft_time last_done; /* completion time of the newest pending write */
    uint64_t next_write_id;
};

void sim_log_copy_entry(struct raft_entry *dst, const struct raft_entry *src);
void sim_log_free_entry(struct raft_entry *entry);
void sim_log_append(struct sim_log *log, const struct raft_entry *entry);
void sim_log_truncate_from(struct sim_log *log, raft_index index);
void sim_log_drop_upto(struct sim_log *log, raft_index index);
const struct raft_entry *sim_log_get(const struct sim_log *log,
                                     raft_index index);
void sim_log_free(struct sim_log *log);

void sim_disk_init(struct sim_disk *disk);
void sim_disk_free(struct sim_disk *disk);
raft_index sim_disk_snap_index(const struct sim_disk *disk);
raft_index sim_disk_last_index(const struct sim_disk *disk);
bool sim_disk_empty(const struct sim_disk *disk);
/* Queues a write of entries (copied). Returns its id. */
uint64_t sim_disk_enqueue(struct sim_disk *disk, const struct raft_entry *e,
                          size_t count);
struct sim_write *sim_disk_head(struct sim_disk *disk);
/* Makes the oldest pending write durable and removes it from the queue;
 * sets *index and *term to its last entry. Returns false if none pending or the
 * write breaks contiguity (then *gap is set). */
bool sim_disk_complete_head(struct sim_disk *disk, raft_index *index,
                            raft_term *term, bool *gap);
/* Drops every pending write (a crash). */
void sim_disk_drop_pending(struct sim_disk *disk);
/* Installs a snapshot durably: keeps stored entries after it only if the
 * stored entry at its index has its term. */
void sim_disk_install_snapshot(struct sim_disk *disk,
                               const struct raft_snapshot_meta *meta,
                               const void *data, size_t len);

/* ------------------------------------------------------------------------
 * Nodes and the cluster (sim_cluster.c)
 * --------------------------------------------------------------------- */

enum sim_node_state {
    SIM_NODE_ABSENT = 0, /* id never used */
    SIM_NODE_UP,
    SIM_NODE_DOWN,    /* crashed, will restart */
    SIM_NODE_DELETED, /* permanently gone */
};

struct sim_node {
    raft_id id;
    enum sim_node_state state;
    struct raft_node *raft;
    uint64_t gen;      /* bumped on crash and restart */
    uint64_t tick_gen; /* invalidates scheduled ticks */
    bool tick_scheduled;
    raft_time deadline_seen;
    raft_time last_tick;
    bool collect_pending; /* an update was left uncollected */
    bool report_pending;  /* a PERSISTED to feed after this update */
    raft_index report_index;
    raft_term report_term;
    uint32_t incarnation;
    struct sim_disk disk;
    struct sim_sm sm;
    bool ever_member;     /* was in a committed configuration */
    bool delete_scheduled;
    bool skip_applied;    /* SIM_BUG_CORRUPT_APPLY already done */
    bool crash_after_step; /* SIM_BUG_FORGET_VOTE: crash right after voting */
    /* observations for monotonicity checks and the trace */
    enum raft_role last_role;
    raft_term last_term;
    raft_id last_leader;
    raft_index last_commit;
    raft_term durable_term_max;
};

/* A message on the wire: a deep copy of what a node sent. */
struct sim_msg {
    struct raft_message m;
    struct sim_log entries;
    uint8_t *data;
};

enum sim_ev_kind {
    SIM_EV_DELIVER = 1,
    SIM_EV_TICK,
    SIM_EV_DISK,
    SIM_EV_COLLECT,
    SIM_EV_RESTART,
    SIM_EV_DELETE,
    SIM_EV_WORKLOAD,
    SIM_EV_FAULT,
    SIM_EV_SNAPSHOT,
    SIM_EV_HEAL,
};

struct sim_ev {
    raft_time at;
    uint64_t seq;
    uint8_t kind;
    raft_id node;
    uint64_t gen;
    uint64_t arg;
    struct sim_msg *msg;
};

/* Canonical committed history: one per index, built from applied entries. */
struct sim_canon {
    raft_term term;
    uint8_t type;
    uint64_t digest;
    uint64_t chain;       /* state machine chain after this entry */
    raft_term seen_term;  /* smallest term of a node applying it */
    raft_id first_node;
};

/* Log matching registry slot, keyed by (index, term). */
struct sim_reg {
    raft_index index; /* 0: empty slot */
    raft_term term;
    uint64_t digest;
    raft_term prev_term;
    bool prev_known;
    raft_id node;
};

struct sim_checker {
    struct sim_canon *canon; /* canon[i - 1] is index i */
    size_t canon_len, canon_cap;
    size_t canon_checked; /* prefix already checked against leaders */
    raft_id *leaders;     /* leaders[t]: leader of term t, 0 if none */
    size_t leaders_cap;
    struct sim_reg *reg;
    size_t reg_cap, reg_used;
    raft_index *proposal_index; /* by proposal id: where it committed */
    size_t proposals_cap;
    raft_index max_commit_seen;
    raft_index probe_index; /* first committed liveness probe */
    uint64_t steps_since_full;
    bool has_committed_config; /* the latest canonical CONFIG entry */
    struct raft_config committed_config;
};

struct sim_cli {
    bool verbose;
    bool quiet;
    uint32_t nodes; /* 0: drawn from the seed */
    uint64_t steps;
    enum sim_bug bug;
};

struct sim {
    uint64_t seed;
    struct sim_cli cli;
    struct sim_params p;
    struct sim_rng rng;
    raft_time now;
    uint64_t steps;
    uint64_t max_steps;
    bool liveness;
    raft_time liveness_start;
    struct sim_node nodes[SIM_IDS_MAX + 1];
    raft_id next_id;
    struct sim_ev *heap;
    size_t heap_len, heap_cap;
    uint64_t seq;
    size_t inflight;
    bool blocked[SIM_IDS_MAX + 1][SIM_IDS_MAX + 1];
    raft_time link_last[SIM_IDS_MAX + 1][SIM_IDS_MAX + 1]; /* FIFO links */
    uint64_t partition_gen;
    uint64_t next_proposal;
    uint64_t liveness_first_proposal;
    raft_time probe_at;
    uint32_t forces;
    struct sim_checker chk;
    bool failed;
    const char *fail_invariant;
    char fail_detail[2048];
    /* statistics for --verbose */
    uint64_t st_sent, st_dropped, st_delivered, st_crashes, st_changes,
        st_transfers, st_snapshots, st_partitions, st_proposals;
};

/* Runs one seed. Returns true if it passed. */
bool sim_run(struct sim *sim);

/* Records the first violation (later ones are ignored). */
void sim_fail(struct sim *sim, const char *invariant, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prints a trace line when --verbose. */
void sim_trace(struct sim *sim, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

struct sim_node *sim_node_get(struct sim *sim, raft_id id);
bool sim_node_up(const struct sim_node *node);
/* Steps one event on an up node, processes the update, runs the checkers.
 * Returns raft_node_step()'s result. */
int sim_step(struct sim *sim, struct sim_node *node,
             const struct raft_event *event);
/* Collects a deferred update, if any. */
void sim_collect(struct sim *sim, struct sim_node *node);
void sim_push(struct sim *sim, raft_time at, uint8_t kind, raft_id node,
              uint64_t gen, uint64_t arg, struct sim_msg *msg);
void sim_crash(struct sim *sim, struct sim_node *node, bool permanent);
void sim_restart(struct sim *sim, struct sim_node *node);
struct sim_node *sim_node_create(struct sim *sim, raft_id id);
void sim_heal(struct sim *sim);
/* A random up node, or NULL. leader_only: only nodes that think they lead. */
struct sim_node *sim_pick_up(struct sim *sim, bool leader_only);

/* ------------------------------------------------------------------------
 * Workload and faults (sim_fault.c)
 * --------------------------------------------------------------------- */

void sim_on_workload(struct sim *sim);
/* Formats a configuration as {1v3,2l0 old:1,2} (id, voter/learner, prio). */
void sim_config_str(const struct raft_config *cfg, char *buf, size_t len);
void sim_on_fault(struct sim *sim);
void sim_on_snapshot(struct sim *sim);
/* Called when a configuration entry becomes canonically committed. */
void sim_on_committed_config(struct sim *sim, const struct raft_config *cfg);

/* ------------------------------------------------------------------------
 * Checkers (sim_check.c)
 * --------------------------------------------------------------------- */

void sim_check_init(struct sim_checker *chk);
void sim_check_free(struct sim_checker *chk);
/* Node is about to apply entry (already checked to follow its applied
 * index); node_term is the node's current term. */
void sim_check_apply(struct sim *sim, struct sim_node *node,
                     const struct raft_entry *entry, raft_term node_term);
/* Node restored its state machine from a snapshot (installed, or loaded
 * from its disk on restart). */
void sim_check_restore(struct sim *sim, struct sim_node *node,
                       const struct sim_sm *state,
                       const struct raft_snapshot_meta *meta);
/* After every step on node: new_from..new_to are indexes the update asked
 * to persist (0..0 if none). */
void sim_check_step(struct sim *sim, struct sim_node *node,
                    raft_index new_from, raft_index new_to);
/* Every entry held by every up node against the registry. */
void sim_check_all_logs(struct sim *sim);
/* The last index in the canonical history. */
raft_index sim_check_canon_len(const struct sim *sim);

#endif /* TANDEM_RAFT_SIM_H */
