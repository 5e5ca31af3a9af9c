/* impl.h: the raft module's private header: the node struct and the
 * functions its files share.
 *
 * The node is split by concern over these files:
 *   node.c        lifecycle, event dispatch, building the update
 *   log.c         the in-memory log (entries since the last compaction)
 *   config.c      configurations, their encoding and quorum arithmetic
 *   election.c    timers, pre-vote, votes, role changes, check-quorum
 *   replication.c appends, their results, heartbeats, commitment
 *   snapshot.c    compaction and chunked snapshot transfer
 *   membership.c  configuration changes, forced reconfiguration, transfer
 *   heap.c        the injectable allocator
 *   prng.c        the seeded PRNG
 *   errors.c      error strings
 * Nothing here is visible outside raft/ (the library is built with hidden
 * visibility and only raft.h's RAFT_API functions are exported).
 */
#ifndef TANDEM_RAFT_IMPL_H
#define TANDEM_RAFT_IMPL_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft/raft.h"

/* Raft invariants are checked in every build: a violated invariant is a bug
 * that must stop the process before it corrupts a replicated log. */
#define RAFT_ASSERT(cond) assert(cond)

/* ------------------------------------------------------------------------
 * Heap (heap.c)
 * --------------------------------------------------------------------- */

void *raft__malloc(const struct raft_heap *heap, size_t size);
void *raft__realloc(const struct raft_heap *heap, void *ptr, size_t size);
void raft__free(const struct raft_heap *heap, void *ptr);

/* ------------------------------------------------------------------------
 * PRNG (prng.c): splitmix64, state passed by pointer.
 * --------------------------------------------------------------------- */

uint64_t raft__prng_next(uint64_t *state);
/* Uniform in [lo, hi). hi > lo. */
uint64_t raft__prng_range(uint64_t *state, uint64_t lo, uint64_t hi);

/* ------------------------------------------------------------------------
 * In-memory log (log.c)
 *
 *   offset                                last = offset + count
 *     |                                     |
 *     v                                     v
 *   ..|[offset+1][offset+2] ... [offset+count]
 *        entries[0]              entries[count-1]
 *
 * offset_term is the term of the entry at offset (0 when offset is 0), so
 * the term of entries[0]'s predecessor is always known. Each entry owns a
 * heap copy of its payload.
 * --------------------------------------------------------------------- */

struct raft_log {
    struct raft_entry *entries;
    size_t count;
    size_t cap;
    raft_index offset;
    raft_term offset_term;
};

void raft__log_init(struct raft_log *log);
void raft__log_close(struct raft_log *log, const struct raft_heap *heap);
raft_index raft__log_last(const struct raft_log *log);
raft_term raft__log_last_term(const struct raft_log *log);
/* Term at index; 0 when unknown (before offset or past the end). */
raft_term raft__log_term(const struct raft_log *log, raft_index index);
/* Entry at index or NULL. */
const struct raft_entry *raft__log_get(const struct raft_log *log,
                                       raft_index index);
/* Makes room for n more entries. Returns 0 or RAFT_E_NOMEM. */
int raft__log_reserve(struct raft_log *log, const struct raft_heap *heap,
                      size_t n);
/* Appends one entry at last+1 copying buf. Room must be reserved. Returns 0
 * or RAFT_E_NOMEM (nothing appended). */
int raft__log_append(struct raft_log *log, const struct raft_heap *heap,
                     raft_term term, uint8_t type, struct raft_buf buf);
/* Deletes every entry with index >= from. from > offset. */
void raft__log_truncate(struct raft_log *log, const struct raft_heap *heap,
                        raft_index from);
/* Deletes every entry with index <= upto (upto within the log). */
void raft__log_compact(struct raft_log *log, const struct raft_heap *heap,
                       raft_index upto);
/* Deletes everything; the log then starts after (index, term). */
void raft__log_reset(struct raft_log *log, const struct raft_heap *heap,
                     raft_index index, raft_term term);
/* Largest index <= index whose term is <= term (etcd findConflictByTerm);
 * offset when no held entry qualifies. */
raft_index raft__log_find_conflict_by_term(const struct raft_log *log,
                                           raft_index index, raft_term term);

/* ------------------------------------------------------------------------
 * Configurations (config.c)
 * --------------------------------------------------------------------- */

bool raft__config_is_voter(const struct raft_config *config, raft_id id);
bool raft__config_is_old_voter(const struct raft_config *config, raft_id id);
/* Member of either list (any role). */
bool raft__config_contains(const struct raft_config *config, raft_id id);
bool raft__config_equal(const struct raft_config *a,
                        const struct raft_config *b);
uint8_t raft__config_priority(const struct raft_config *config, raft_id id);
uint8_t raft__config_max_priority(const struct raft_config *config);

/* Outcome of counting answers (votes, or "recently active") per voter set. */
enum raft_quorum {
    RAFT_QUORUM_PENDING = 0,
    RAFT_QUORUM_WON = 1,
    RAFT_QUORUM_LOST = 2,
};
/* yes(id) and no(id) are looked up through the callback; a voter for which
 * answer() returns 1 counts yes, -1 counts no, 0 pending. */
enum raft_quorum raft__config_tally(const struct raft_config *config,
                                    int (*answer)(void *ctx, raft_id id),
                                    void *ctx);
/* The largest index stored on a quorum: match(id) per voter, min over the
 * two sets when joint. */
raft_index raft__config_quorum_index(const struct raft_config *config,
                                     raft_index (*match)(void *ctx,
                                                         raft_id id),
                                     void *ctx);

/* ------------------------------------------------------------------------
 * The node
 * --------------------------------------------------------------------- */

enum raft_progress_state {
    RAFT_PROGRESS_PROBE = 1,
    RAFT_PROGRESS_REPLICATE = 2,
    RAFT_PROGRESS_SNAPSHOT = 3,
};

/* The leader's view of one other member (etcd's Progress). */
struct raft_progress {
    raft_id id;
    raft_index match;       /* highest index known durable and matching */
    raft_index next;        /* next index to send */
    uint8_t state;          /* enum raft_progress_state */
    bool paused;            /* PROBE: a probe is in flight */
    bool recent_active;     /* heard from since the last quorum check */
    /* REPLICATE: ring of the last index of each append in flight. */
    raft_index *inflight;   /* inflight_max slots */
    uint32_t inflight_head;
    uint32_t inflight_count;
    /* SNAPSHOT: the transfer of snapshot snap_index. */
    raft_index snap_index;
    uint64_t snap_sent;     /* bytes sent (next offset) */
    uint64_t snap_acked;    /* bytes acknowledged */
    uint64_t snap_acked_at_heartbeat;
    /* REPLICATE: heartbeats in a row that saw no match progress while
     * appends were in flight (a lost append is then re-probed). */
    raft_index match_at_heartbeat;
    uint32_t stalled_heartbeats;
};

/* One buffered outgoing message. Entry and snapshot-chunk pointers are
 * resolved when the update is built (the log may move in between). */
struct raft_outgoing {
    struct raft_message msg;
    raft_index entries_first; /* APPEND: index of the first entry */
};

struct raft_vote_record {
    raft_id id;
    int8_t answer; /* 1 granted, -1 rejected */
};

struct raft_node {
    struct raft_options opt;
    raft_id id;
    uint64_t prng;

    /* Persistent state (mirrored into the hard state). */
    raft_term term;
    raft_id vote;
    bool forced;
    raft_term forced_term;
    struct raft_config forced_config;

    struct raft_log log;

    /* The latest snapshot (taken here or installed from a leader). */
    bool has_snapshot;
    struct raft_snapshot_meta snapshot;
    void *snapshot_data;
    size_t snapshot_len;

    /* The latest configuration in the log (else the snapshot's). */
    struct raft_config log_config;
    raft_index log_config_index;
    raft_term log_config_term;
    /* The configuration in effect: log_config, or forced_config while a
     * forced configuration is active. */
    struct raft_config config;

    /* Volatile state. */
    enum raft_role role;
    raft_id leader;
    raft_index commit;
    raft_index applied;
    raft_index persisted;     /* durable prefix of the local log */
    raft_index unstable_from; /* first index not yet handed out to persist */
    raft_time now;
    bool timer_armed;
    raft_time election_deadline;
    raft_time last_leader_contact;
    bool heard_leader;
    uint8_t target_priority;

    /* Candidate. */
    struct raft_vote_record votes[2 * RAFT_MEMBERS_MAX];
    uint32_t vote_count;
    bool campaign_transfer;

    /* Follower: acknowledgement of appends, sent once durable. */
    raft_index ack_index;      /* log matches the leader's up to here */
    raft_index ack_sent;       /* highest index acknowledged so far */
    bool ack_pending;

    /* Follower: snapshot being received. */
    bool receiving;
    struct raft_snapshot_meta recv_meta;
    uint8_t *recv_data;
    size_t recv_len;
    size_t recv_cap;
    uint64_t recv_total;

    /* Leader. */
    struct raft_progress progress[2 * RAFT_MEMBERS_MAX];
    uint32_t progress_count;
    raft_index *inflight_pool;
    raft_time heartbeat_deadline;
    raft_time quorum_deadline;
    uint64_t uncommitted_bytes;
    bool broadcast_pending;
    raft_id transfer_to;
    raft_time transfer_deadline;
    bool transfer_sent;
    bool change_pending;             /* learners catching up */
    struct raft_config change_target;

    /* Outbox and update bookkeeping. */
    struct raft_outgoing *outbox;
    struct raft_message *sendbox;
    uint32_t outbox_count;
    bool hard_state_dirty;
    bool snapshot_installed;
    bool config_changed;
    bool update_taken; /* the previous update was handed out */
    enum raft_role reported_role;
    raft_term reported_term;
    raft_id reported_leader;
    bool loaded;
};

/* node.c */
/* Queues a message; returns a pointer to fill, or NULL when the outbox is
 * full (the message is dropped, which Raft tolerates). */
struct raft_outgoing *raft__send(struct raft_node *node, uint8_t type,
                                 raft_id to);
raft_time raft__random_timeout(struct raft_node *node);

/* election.c */
void raft__election_reset_timer(struct raft_node *node);
void raft__become_follower(struct raft_node *node, raft_term term,
                           raft_id leader);
void raft__election_tick(struct raft_node *node);
/* A voter of the configuration, or of the one before an uncommitted
 * configuration that removed it. */
bool raft__election_can_campaign(const struct raft_node *node);
void raft__election_start(struct raft_node *node, bool pre_vote,
                          bool transfer);
void raft__recv_vote(struct raft_node *node, const struct raft_message *m);
void raft__recv_vote_resp(struct raft_node *node,
                          const struct raft_message *m);
void raft__recv_timeout_now(struct raft_node *node,
                            const struct raft_message *m);
bool raft__in_lease(const struct raft_node *node);
/* An APPEND or SNAPSHOT of the current term arrived from `from`: follow it
 * and restart the election timer. */
void raft__election_heard_leader(struct raft_node *node, raft_id from);

/* replication.c */
struct raft_progress *raft__progress_get(struct raft_node *node, raft_id id);
/* Leader: the progress of a member that answered (marked recently active),
 * or NULL when not leader or not a member. */
struct raft_progress *raft__progress_heard(struct raft_node *node,
                                           raft_id from);
/* Leader: a match index advanced; commit, advance membership, continue a
 * transfer. Returns whether the node is still leader. */
bool raft__replication_progressed(struct raft_node *node);
void raft__progress_reset(struct raft_node *node, struct raft_progress *p);
void raft__replication_send(struct raft_node *node, struct raft_progress *p,
                            bool force);
void raft__replication_heartbeat(struct raft_node *node);
void raft__replication_broadcast(struct raft_node *node);
void raft__recv_append(struct raft_node *node, const struct raft_message *m);
void raft__recv_append_resp(struct raft_node *node,
                            const struct raft_message *m);
void raft__replication_persisted(struct raft_node *node, raft_index index,
                                 raft_term term);
void raft__replication_maybe_commit(struct raft_node *node);
void raft__replication_ack(struct raft_node *node);
int raft__replication_propose(struct raft_node *node,
                              const struct raft_buf *bufs, size_t count,
                              raft_index *first_index);
/* Appends one entry as leader (noop/config). Returns 0 or RAFT_E_NOMEM. */
int raft__replication_append_local(struct raft_node *node, uint8_t type,
                                   struct raft_buf buf);
void raft__replication_tick(struct raft_node *node);

/* snapshot.c */
int raft__snapshot_take(struct raft_node *node, raft_index index,
                        struct raft_buf data);
void raft__snapshot_send(struct raft_node *node, struct raft_progress *p);
void raft__recv_snapshot(struct raft_node *node,
                         const struct raft_message *m);
void raft__recv_snapshot_resp(struct raft_node *node,
                              const struct raft_message *m);

/* membership.c */
/* Recomputes log_config from the log (after truncation, snapshot install
 * or load), then the effective configuration. */
void raft__membership_recompute(struct raft_node *node);
/* A CONFIG entry was appended at index with term. Returns 0 or
 * RAFT_E_MALFORMED if its payload does not decode. */
int raft__membership_appended(struct raft_node *node,
                              const struct raft_entry *entry);
/* Recomputes the effective configuration and the leader's progress set. */
void raft__membership_refresh(struct raft_node *node);
/* Leader: called when commit or a match index advanced. */
void raft__membership_advance(struct raft_node *node);
int raft__membership_change(struct raft_node *node,
                            const struct raft_config *target);
int raft__membership_force(struct raft_node *node,
                           const struct raft_config *config);
int raft__transfer_start(struct raft_node *node, raft_id to);
void raft__transfer_check(struct raft_node *node);
void raft__transfer_abort(struct raft_node *node);
/* The configuration in effect at index (for snapshots). */
void raft__membership_config_at(const struct raft_node *node,
                                raft_index index, struct raft_config *out,
                                raft_index *config_index,
                                raft_term *config_term);

#endif /* TANDEM_RAFT_IMPL_H */
