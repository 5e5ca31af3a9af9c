/* raft.h: Raft consensus as a pure, deterministic state machine.
 *
 * This is the only public header of the raft module. The module implements
 * the Raft algorithm (Ongaro and Ousterhout, "In Search of an Understandable
 * Consensus Algorithm", and Ongaro's thesis) with pre-vote, check-quorum,
 * priority election, pipelined and batched replication, application-driven
 * compaction with chunked snapshot transfer, joint-consensus membership
 * changes with catching-up learners, forced reconfiguration and leadership
 * transfer. It performs no I/O: it never touches sockets, files, clocks or
 * threads, has no globals and draws randomness from a PRNG seeded by the
 * caller.
 *
 * Data flow:
 *
 *     caller                              struct raft_node
 *     ------                              ----------------
 *     raft_node_step(event, &update) ---> handles one event (a message, the
 *                                         time, a proposal, a persistence
 *                                         acknowledgement, ...)
 *     <-- update: hard state to persist, entries to persist, a snapshot to
 *         install, messages to send, committed entries to apply, role.
 *
 * The caller MUST process each update in this order:
 *
 *   1. If RAFT_UPDATE_SNAPSHOT is set: make update->snapshot durable,
 *      delete every stored entry (the log restarts right after the
 *      snapshot), and restore the state machine from it, before sending any
 *      message of the update and before applying update->committed. This
 *      write is ordered after every earlier entry write.
 *   2. If RAFT_UPDATE_HARD_STATE is set: make update->hard_state durable
 *      before sending any message of the update (a vote or a term must never
 *      be forgotten after it was announced).
 *   3. If RAFT_UPDATE_ENTRIES is set: delete every stored entry whose index is
 *      >= update->entries[0].index, then append update->entries. This may
 *      happen asynchronously (off the caller's loop), but writes must reach
 *      the disk in the order the updates were produced. When entries up to
 *      index i (of term t) are durable, feed RAFT_EVENT_PERSISTED {i, t}.
 *      Messages of the update MAY be sent before the entries are durable:
 *      the node itself holds back every message whose meaning depends on
 *      the local durability of entries (a follower's append acknowledgement)
 *      until the matching RAFT_EVENT_PERSISTED arrives, and a leader counts
 *      itself towards a commit quorum only for persisted entries.
 *   4. Send update->messages (best effort: losing any of them is safe).
 *   5. Apply update->committed to the state machine, in order. Only entries
 *      that are committed AND locally persisted are ever listed.
 *
 * Everything an update points to is owned by the node and stays valid only
 * until the next call of any function on the same node. Copy or encode what
 * must live longer.
 *
 * A node is single-threaded: calls on one node must not run concurrently.
 * Different nodes share nothing and may run on different threads.
 */
#ifndef TANDEM_RAFT_H
#define TANDEM_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RAFT_API __attribute__((visibility("default")))

/* ------------------------------------------------------------------------
 * Basic types and limits
 * --------------------------------------------------------------------- */

typedef uint64_t raft_id;    /* member id; 0 means "none" */
typedef uint64_t raft_term;  /* election term, starts at 0 */
typedef uint64_t raft_index; /* log index, the first entry is 1 */
typedef uint64_t raft_time;  /* milliseconds on the caller's clock */

/* The most members (voters, learners and outgoing voters together) a group
 * can have. Configurations are fixed-size structs so that no configuration
 * operation allocates. */
#define RAFT_MEMBERS_MAX 16

/* The largest priority a member can have. With priority election, a member
 * campaigns once the target priority (initially the highest priority among
 * the voters) has decayed to its own priority, one election timeout per
 * step, so priority 0 campaigns last. */
#define RAFT_PRIORITY_MAX 255

/* Error codes: zero is success, errors are negative. */
#define RAFT_ERRNO_MAP(X)                                                      \
    X(NOMEM, -1, "out of memory")                                              \
    X(INVALID, -2, "invalid argument")                                         \
    X(NOT_LEADER, -3, "this node is not the leader")                           \
    X(BUSY, -4, "node is busy (backpressure, transfer or change in progress)") \
    X(TOO_BIG, -5, "entry or batch exceeds the configured byte limit")         \
    X(STALE, -6, "event refers to a term or index that is no longer current")  \
    X(NOT_MEMBER, -7, "node is not a member of the configuration")             \
    X(MALFORMED, -8, "malformed encoded data")                                 \
    X(CORRUPT, -9, "loaded state is inconsistent")

enum raft_errno {
#define RAFT__ERRNO_ENUM(name, value, text) RAFT_E_##name = (value),
    RAFT_ERRNO_MAP(RAFT__ERRNO_ENUM)
#undef RAFT__ERRNO_ENUM
};

/* Returns a static, human-readable string for an error code. Never NULL. */
RAFT_API const char *raft_strerror(int rv);

/* A contiguous byte buffer. */
struct raft_buf {
    const void *base;
    size_t len;
};

/* ------------------------------------------------------------------------
 * Configuration (the member set of the group)
 * --------------------------------------------------------------------- */

enum raft_member_role {
    RAFT_VOTER = 1,   /* votes and counts towards quorums */
    RAFT_LEARNER = 2, /* receives the log, never votes, never counts */
};

struct raft_member {
    raft_id id;       /* non-zero, unique in the configuration */
    uint8_t role;     /* enum raft_member_role */
    uint8_t priority; /* 0..RAFT_PRIORITY_MAX, see priority election */
};

/* A configuration. A joint configuration (Raft paper section 6) has
 * old_count > 0: decisions then need a majority of the voters in `members`
 * AND a majority of `old_voters`. Members listed only in old_voters are being
 * removed: they still receive the log and vote until the joint phase ends. */
struct raft_config {
    uint32_t count;                                /* entries in members */
    struct raft_member members[RAFT_MEMBERS_MAX];  /* incoming (or only) set */
    uint32_t old_count;                            /* 0 unless joint */
    raft_id old_voters[RAFT_MEMBERS_MAX];          /* outgoing voter set */
};

/* Sets *config to an empty configuration. */
RAFT_API void raft_config_init(struct raft_config *config);

/* Adds a member. Returns 0, or RAFT_E_INVALID if id is 0, already present,
 * or role is not a valid enum raft_member_role, or RAFT_E_TOO_BIG if the
 * configuration is full. */
RAFT_API int raft_config_add(struct raft_config *config, raft_id id,
                             uint8_t role, uint8_t priority);

/* Returns the member with this id in config->members, or NULL. The pointer
 * is borrowed from config. */
RAFT_API const struct raft_member *
raft_config_member(const struct raft_config *config, raft_id id);

/* Checks that a configuration is well formed: ids non-zero and unique in
 * each list, roles valid, counts within RAFT_MEMBERS_MAX, at least one voter
 * in members and, when joint, the union of both lists within
 * RAFT_MEMBERS_MAX. Returns 0 or RAFT_E_INVALID. */
RAFT_API int raft_config_validate(const struct raft_config *config);

/* Encodes a configuration into buf (little-endian, versioned; the format is
 * drawn in raft/config.c). Returns the number of bytes written, or
 * RAFT_E_TOO_BIG if len is too small. RAFT_CONFIG_ENCODED_MAX always
 * suffices. The encoding of equal configurations is byte-identical. */
#define RAFT_CONFIG_ENCODED_MAX (8 + 2 * RAFT_MEMBERS_MAX * 10 + 16)
RAFT_API int raft_config_encode(const struct raft_config *config, void *buf,
                                size_t len);

/* Decodes and validates a configuration. Never reads past len. Returns 0 or
 * RAFT_E_MALFORMED (bad length, version or values). */
RAFT_API int raft_config_decode(const void *buf, size_t len,
                                struct raft_config *config);

/* ------------------------------------------------------------------------
 * Log entries, hard state and snapshots
 * --------------------------------------------------------------------- */

enum raft_entry_type {
    RAFT_ENTRY_NORMAL = 1, /* application data */
    RAFT_ENTRY_CONFIG = 2, /* buf holds a raft_config_encode()d config */
    RAFT_ENTRY_NOOP = 3,   /* appended by every new leader (section 8) */
};

struct raft_entry {
    raft_term term;
    raft_index index;
    uint8_t type;        /* enum raft_entry_type */
    struct raft_buf buf; /* payload; empty for NOOP */
};

/* What must survive a crash besides the log and the snapshot.
 *
 * forced/forced_term/forced_config record a forced reconfiguration
 * (RAFT_EVENT_FORCE). While no configuration entry of a term greater than
 * forced_term is in the log, forced_config overrides the log's
 * configuration. The node clears `forced` (in a later hard state) once such
 * an entry is committed. */
struct raft_hard_state {
    raft_term term;                   /* latest term this node has seen */
    raft_id vote;                     /* candidate voted for in term, or 0 */
    bool forced;                      /* a forced configuration is recorded */
    raft_term forced_term;            /* the term in which it was forced */
    struct raft_config forced_config; /* valid when forced */
};

/* Describes a snapshot: the state machine after applying every entry up to
 * and including index, and the configuration in effect at that index. */
struct raft_snapshot_meta {
    raft_index index;
    raft_term term;
    struct raft_config config;
    raft_index config_index; /* index of the entry that holds config (the
                                bootstrap configuration is entry 1) */
    raft_term config_term;   /* term of that entry */
};

/* ------------------------------------------------------------------------
 * Messages
 * --------------------------------------------------------------------- */

enum raft_message_type {
    RAFT_MSG_APPEND = 1,        /* AppendEntries, also the heartbeat */
    RAFT_MSG_APPEND_RESP = 2,   /* AppendEntries result */
    RAFT_MSG_VOTE = 3,          /* RequestVote */
    RAFT_MSG_VOTE_RESP = 4,     /* RequestVote result */
    RAFT_MSG_PRE_VOTE = 5,      /* pre-vote poll (thesis 9.6) */
    RAFT_MSG_PRE_VOTE_RESP = 6, /* pre-vote result */
    RAFT_MSG_SNAPSHOT = 7,      /* one chunk of InstallSnapshot */
    RAFT_MSG_SNAPSHOT_RESP = 8, /* InstallSnapshot chunk result */
    RAFT_MSG_TIMEOUT_NOW = 9,   /* leadership transfer: campaign now */
};
#define RAFT_MSG_TYPE_MAX 9

/* One message. Which fields are meaningful depends on type:
 *
 *   APPEND:        index = prev log index, log_term = prev log term,
 *                  entries/entry_count, commit = leader commit.
 *   APPEND_RESP:   reject = false: index = highest index known to match.
 *                  reject = true: index = the prev index that was rejected,
 *                  hint_index/hint_term = the follower's guess of the last
 *                  index where the logs may agree and its term there (fast
 *                  backtracking, etcd's findConflictByTerm).
 *   VOTE, PRE_VOTE: index/log_term = candidate's last log index and term,
 *                  transfer = campaign caused by a leadership transfer
 *                  (voters then ignore their leader lease). For PRE_VOTE,
 *                  term is the term the candidate would campaign in.
 *   VOTE_RESP, PRE_VOTE_RESP: reject = vote not granted. For a granted
 *                  PRE_VOTE_RESP, term echoes the request's term.
 *   SNAPSHOT:      snapshot = the snapshot's metadata (index, term and
 *                  configuration; index/log_term repeat index and term),
 *                  offset of this chunk, data (the chunk), total = whole
 *                  snapshot size, done = this is the last chunk.
 *   SNAPSHOT_RESP: index = snapshot index; done = installed (or already
 *                  covered by the follower's log); otherwise reject = false:
 *                  offset = bytes received so far; reject = true: the
 *                  transfer must resume at offset.
 *   TIMEOUT_NOW:   nothing beyond term.
 *
 * Pointers inside a message are borrowed: in an update they belong to the
 * node (valid until the next call); in RAFT_EVENT_RECEIVE they belong to the
 * caller and are copied by the node as needed. */
struct raft_message {
    uint8_t type; /* enum raft_message_type */
    raft_id from;
    raft_id to;
    raft_term term;
    raft_index index;
    raft_term log_term;
    raft_index commit;
    raft_index hint_index;
    raft_term hint_term;
    bool reject;
    bool transfer;
    bool done;
    const struct raft_entry *entries;
    size_t entry_count;
    struct raft_snapshot_meta snapshot;
    uint64_t offset;
    uint64_t total;
    struct raft_buf data;
};

/* ------------------------------------------------------------------------
 * Node options
 * --------------------------------------------------------------------- */

/* An injectable allocator. All members NULL (or the whole struct zeroed)
 * means libc malloc/realloc/free. */
struct raft_heap {
    void *(*malloc)(void *data, size_t size);
    void *(*realloc)(void *data, void *ptr, size_t size);
    void (*free)(void *data, void *ptr);
    void *data;
};

struct raft_options {
    raft_id id;                  /* this node's id, non-zero */
    uint64_t seed;               /* seed of the node's PRNG */
    raft_time election_timeout;  /* ms; base election timeout, >= 2 x heartbeat */
    raft_time heartbeat_interval;/* ms; leader heartbeat period, > 0 */
    bool pre_vote;               /* poll before incrementing the term */
    bool check_quorum;           /* step down without quorum contact; lease */
    bool priority_election;      /* Zeebe-style priority election timer */
    uint32_t inflight_max;       /* append messages in flight per follower */
    uint32_t batch_entries_max;  /* entries per append message */
    uint64_t batch_bytes_max;    /* payload bytes per append message */
    uint64_t entry_bytes_max;    /* largest single proposal payload */
    uint64_t uncommitted_bytes_max; /* leader backpressure: proposal payload
                                       bytes appended but not committed */
    uint64_t snapshot_chunk_bytes; /* bytes per InstallSnapshot chunk */
    uint64_t snapshot_bytes_max;   /* largest snapshot a follower accepts */
    uint64_t trailing_entries;   /* entries kept below a snapshot index */
    uint32_t messages_max;       /* outgoing messages buffered per update;
                                    beyond this, messages are dropped */
    uint32_t catch_up_lag_max;   /* a learner within this many entries of the
                                    leader's last index counts as caught up */
    struct raft_heap heap;
};

/* Fills *options with defaults for the given id: election 1000 ms,
 * heartbeat 100 ms, pre-vote, check-quorum and priority election on,
 * inflight 64, batches of 256 entries / 1 MiB, 1 MiB per entry, 64 MiB
 * uncommitted, 1 MiB snapshot chunks, 1 GiB snapshots, 1024 trailing
 * entries, 1024 messages, catch-up lag 64. */
RAFT_API void raft_options_default(struct raft_options *options, raft_id id);

/* ------------------------------------------------------------------------
 * Events and updates
 * --------------------------------------------------------------------- */

enum raft_event_type {
    RAFT_EVENT_TICK = 1,      /* time advanced; no payload */
    RAFT_EVENT_RECEIVE,       /* a message arrived: receive.message */
    RAFT_EVENT_PERSISTED,     /* entries durable up to persisted.index */
    RAFT_EVENT_PROPOSE,       /* leader: append propose.bufs as entries */
    RAFT_EVENT_CHANGE,        /* leader: move to change.config */
    RAFT_EVENT_FORCE,         /* adopt force.config without a quorum */
    RAFT_EVENT_SNAPSHOT,      /* a snapshot at snapshot.index is durable */
    RAFT_EVENT_TRANSFER,      /* leader: hand leadership to transfer.to */
    RAFT_EVENT_CAMPAIGN,      /* start an election now (tests, operators) */
};

struct raft_event {
    uint8_t type;  /* enum raft_event_type */
    raft_time now; /* the caller's clock; must never go backwards */
    union {
        struct {
            const struct raft_message *message; /* borrowed */
        } receive;
        struct {
            raft_index index; /* last durable index */
            raft_term term;   /* term of the entry at index */
        } persisted;
        struct {
            const struct raft_buf *bufs; /* borrowed; copied by the node */
            size_t count;                /* >= 1 */
            raft_index *first_index;     /* out (may be NULL): the index
                                            of the first new entry */
        } propose;
        struct {
            /* The target configuration: a plain (non-joint) member set
             * with roles and priorities. Voters not yet in the current
             * configuration first join as learners and are promoted once
             * caught up; removals and promotions go through joint
             * consensus; priority-only changes take one entry. */
            const struct raft_config *config; /* borrowed */
        } change;
        struct {
            /* The surviving member set; see docs/raft.md "Forced
             * reconfiguration" for when this is safe. Non-joint, every id
             * already a member of the current configuration, this node
             * one of its voters. */
            const struct raft_config *config; /* borrowed */
        } force;
        struct {
            raft_index index;   /* <= last applied index */
            struct raft_buf data; /* the snapshot bytes; copied by the node
                                     to serve lagging followers */
        } snapshot;
        struct {
            raft_id to; /* a voter of the current configuration */
        } transfer;
    };
};

enum raft_role {
    RAFT_FOLLOWER = 1,
    RAFT_PRE_CANDIDATE = 2,
    RAFT_CANDIDATE = 3,
    RAFT_LEADER = 4,
};

/* Flags saying which parts of an update carry something. */
enum raft_update_flags {
    RAFT_UPDATE_HARD_STATE = 1u << 0, /* persist hard_state (sync) */
    RAFT_UPDATE_ENTRIES = 1u << 1,    /* persist entries (may be async) */
    RAFT_UPDATE_SNAPSHOT = 1u << 2,   /* install snapshot (sync) */
    RAFT_UPDATE_MESSAGES = 1u << 3,   /* send messages */
    RAFT_UPDATE_COMMITTED = 1u << 4,  /* apply committed */
    RAFT_UPDATE_ROLE = 1u << 5,       /* role, term or leader changed */
    RAFT_UPDATE_CONFIG = 1u << 6,     /* the effective configuration changed */
};

struct raft_update {
    unsigned flags; /* enum raft_update_flags */

    struct raft_hard_state hard_state; /* with RAFT_UPDATE_HARD_STATE */

    const struct raft_entry *entries; /* with RAFT_UPDATE_ENTRIES */
    size_t entry_count;

    const struct raft_snapshot_meta *snapshot; /* with RAFT_UPDATE_SNAPSHOT */
    struct raft_buf snapshot_data;

    const struct raft_message *messages; /* with RAFT_UPDATE_MESSAGES */
    size_t message_count;

    const struct raft_entry *committed; /* with RAFT_UPDATE_COMMITTED */
    size_t committed_count;

    /* Always filled: the node's current view. */
    enum raft_role role;
    raft_term term;
    raft_id leader;          /* 0 if unknown */
    raft_index commit_index; /* highest index known committed */
    raft_index applied_index;/* highest index handed out for applying */
};

/* ------------------------------------------------------------------------
 * Node lifecycle
 * --------------------------------------------------------------------- */

struct raft_node; /* opaque */

/* Allocates a node with the given options. The node starts empty: a
 * follower in term 0 with no configuration and an empty log. It then either
 * receives persisted state through raft_node_load(), or, for a brand new
 * group, raft_node_bootstrap(), or stays empty to be added to an existing
 * group (it then learns everything from the leader).
 * Returns 0 and sets *out, RAFT_E_INVALID for bad options, RAFT_E_NOMEM. */
RAFT_API int raft_node_new(const struct raft_options *options,
                           struct raft_node **out);

/* Frees a node and everything it owns. NULL is a no-op. */
RAFT_API void raft_node_free(struct raft_node *node);

/* Restores persisted state after a restart. Must be called at most once,
 * before the first raft_node_step(). snapshot may be NULL (then
 * snapshot_data is ignored); entries must be contiguous, start right after
 * the snapshot (or at 1), and are copied. commit is a lower bound on the
 * commit index if the caller persisted one, else 0. Returns 0,
 * RAFT_E_INVALID (bad arguments or called twice), RAFT_E_CORRUPT
 * (non-contiguous entries, undecodable configuration entry, terms going
 * backwards, or vote/term inconsistent), RAFT_E_NOMEM. */
RAFT_API int raft_node_load(struct raft_node *node,
                            const struct raft_hard_state *hard_state,
                            const struct raft_snapshot_meta *snapshot,
                            struct raft_buf snapshot_data,
                            const struct raft_entry *entries,
                            size_t entry_count, raft_index commit);

/* Starts a new group: appends a configuration entry at index 1, term 1.
 * Every initial member must bootstrap with an identical configuration.
 * The entry shows up in the next update to be persisted. Returns 0,
 * RAFT_E_INVALID (bad config, non-empty node), RAFT_E_NOMEM. */
RAFT_API int raft_node_bootstrap(struct raft_node *node,
                                 const struct raft_config *config);

/* Handles one event, then, if update is not NULL, fills *update with
 * everything that accumulated since the previous update (several events may
 * be stepped with update == NULL and collected by one later call; a call
 * with event == NULL only collects). Returns 0, or an error for an event
 * the node refused (the node stays usable and the update is still filled):
 *   RAFT_E_NOT_LEADER  PROPOSE, CHANGE, TRANSFER on a non-leader;
 *   RAFT_E_BUSY        PROPOSE during a transfer or over
 *                      uncommitted_bytes_max; CHANGE or FORCE while a
 *                      forced configuration is still pending (not yet
 *                      committed in the log), CHANGE while a change is;
 *                      TRANSFER while one is running;
 *   RAFT_E_TOO_BIG     PROPOSE with an entry over entry_bytes_max;
 *                      SNAPSHOT data over snapshot_bytes_max;
 *   RAFT_E_INVALID     malformed event or message, bad config, transfer to
 *                      a non-voter or to self;
 *   RAFT_E_NOT_MEMBER  FORCE on a node not among the forced voters, or
 *                      naming a non-member;
 *   RAFT_E_STALE       SNAPSHOT at an index not applied or already covered;
 *   RAFT_E_NOMEM       allocation failed (the event had no effect).
 * A message that is merely stale returns 0: one of an older term is ignored,
 * except that an APPEND or SNAPSHOT of an older term is answered with a
 * rejection carrying the current term (so a deposed leader steps down) and a
 * PRE_VOTE of an older term with a rejection. */
RAFT_API int raft_node_step(struct raft_node *node,
                            const struct raft_event *event,
                            struct raft_update *update);

/* Returns the time at which the node next needs a RAFT_EVENT_TICK (an
 * election or heartbeat deadline), on the caller's clock. */
RAFT_API raft_time raft_node_deadline(const struct raft_node *node);

/* ------------------------------------------------------------------------
 * Introspection (all borrowed, valid until the next call on the node)
 * --------------------------------------------------------------------- */

RAFT_API raft_id raft_node_id(const struct raft_node *node);
RAFT_API enum raft_role raft_node_role(const struct raft_node *node);
RAFT_API raft_term raft_node_term(const struct raft_node *node);
RAFT_API raft_id raft_node_leader(const struct raft_node *node);
RAFT_API raft_id raft_node_vote(const struct raft_node *node);
RAFT_API raft_index raft_node_commit_index(const struct raft_node *node);
RAFT_API raft_index raft_node_applied_index(const struct raft_node *node);
RAFT_API raft_index raft_node_persisted_index(const struct raft_node *node);
/* First index still held in memory (snapshot index + 1 when empty). */
RAFT_API raft_index raft_node_first_index(const struct raft_node *node);
RAFT_API raft_index raft_node_last_index(const struct raft_node *node);
/* Term of the entry at index, or 0 if unknown (compacted or past the end;
 * the snapshot's own index answers with the snapshot term). */
RAFT_API raft_term raft_node_term_at(const struct raft_node *node,
                                     raft_index index);
/* The entry at index, or NULL if not held in memory. */
RAFT_API const struct raft_entry *
raft_node_entry_at(const struct raft_node *node, raft_index index);
/* The configuration in effect (the forced one, else the latest in the log,
 * committed or not, else the snapshot's). */
RAFT_API const struct raft_config *
raft_node_config(const struct raft_node *node);
/* The latest snapshot's metadata, or NULL if there is none. */
RAFT_API const struct raft_snapshot_meta *
raft_node_snapshot(const struct raft_node *node);
/* Whether a membership change (learner catch-up, joint phase or an
 * uncommitted configuration entry) is in progress. */
RAFT_API bool raft_node_changing(const struct raft_node *node);
/* Leader only: the match index the leader knows for member id (its own
 * persisted index for itself), or 0. */
RAFT_API raft_index raft_node_match_index(const struct raft_node *node,
                                          raft_id id);

#ifdef __cplusplus
}
#endif

#endif /* TANDEM_RAFT_H */
