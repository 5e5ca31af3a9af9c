/* partition.h: one partition on one broker: its Raft node and the stream
 * processing engine its log drives (private to broker/).
 *
 * Data flow:
 *
 *   client request --partition_submit()--> engine_command_from_request()
 *     --> COMMAND record in the partition's queue (bounded: requests_max
 *     plus as many again for commands exempt from backpressure)
 *   broker loop turn --partition_process()--> when leader, everything in
 *     the log applied and no round in flight: engine_process(queue, due
 *     timers, distribution acks) --> ONE entry proposed (stop-and-wait:
 *     the next round waits until this entry is applied)
 *   raft update --committed--> partition_apply(): engine_apply_*() in one
 *     state transaction --> records answering requests taken on this
 *     broker (request_node == us) become responses (answer callback);
 *     job types that became activatable wake AwaitJobs requests
 *   raft update --snapshot--> partition_restore(); the broker's snapshot
 *     timer --> partition_snapshot_encode()
 *
 * The engine's state lives in LMDB under opt.state_dir; raft's log and
 * snapshots in the broker's storage. Requests are identified by the
 * broker's request ids (unique across restarts of the broker, see
 * broker.c); the partition does not track them except AwaitJobs waiters.
 *
 * Positions: record i of the entry at index n has position n << 16 | i.
 * Keys: partition_id << 51 | counter.
 */
#ifndef TANDEM_BROKER_PARTITION_H
#define TANDEM_BROKER_PARTITION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/engine/engine.h"
#include "proto/proto.h"
#include "raft/raft.h"

#define PARTITION_KEY_BITS ENGINE_KEY_BITS
#define PARTITION_POSITION_BITS ENGINE_POSITION_BITS
#define PARTITION_WAITERS_MAX 1024u    /* parked AwaitJobs requests */

/* Error codes (negative), one list for the enum and the strings. */
#define PARTITION_ERRNO_MAP(X)                                                 \
    X(NOT_LEADER, -1, "not the leader of this partition")                      \
    X(INVALID, -2, "invalid argument")                                         \
    X(BUSY, -3, "partition is overloaded (backpressure)")                      \
    X(CORRUPT, -4, "corrupt snapshot or record")                               \
    X(NOMEM, -5, "out of memory")                                              \
    X(DEAD, -6, "partition is dead (unrecoverable state)")                     \
    X(IO, -7, "state storage failed")

enum partition_errno {
#define PARTITION__ERRNO_ENUM(name, value, text) PARTITION_E_##name = (value),
    PARTITION_ERRNO_MAP(PARTITION__ERRNO_ENUM)
#undef PARTITION__ERRNO_ENUM
};

const char *partition_strerror(int rv);

enum partition_health {
    PARTITION_HEALTHY = 1,
    PARTITION_UNHEALTHY = 2,
    PARTITION_DEAD = 3,
};

/* The answer to a request taken on this broker: resp is borrowed for the
 * call (its id is meaningless; the broker sets its own). */
typedef void (*partition_answer_cb)(void *data, uint64_t request_id,
                                    const Tandem__Command__Response *resp);

struct partition_options {
    uint32_t partition_id;
    uint32_t partitions_count;
    uint32_t node_id;          /* this broker's node id (raft id - 1) */
    const char *broker_version;
    const char *state_dir;     /* the engine's LMDB directory */
    uint32_t requests_max;     /* queued commands (backpressure) */
    partition_answer_cb answer;
    void *answer_data;
};

/* An AwaitJobs request parked until a job of its types is activatable. */
struct partition_waiter {
    uint64_t request_id;
    uint64_t deadline;
    char **types;
    size_t n_types;
};

struct partition {
    struct partition_options opt;
    struct raft_node *raft;
    struct engine *engine;
    enum partition_health health;
    char health_reason[128];
    /* Commands waiting for the next processing round (a ring). */
    Tandem__Record__Record **queue;
    uint32_t queue_max;
    uint32_t queue_head;
    uint32_t queue_count;
    uint32_t queue_exempt;      /* exempt commands among them */
    /* The entry of the round in flight (0 = none). */
    raft_index inflight_index;
    /* Parked AwaitJobs requests. */
    struct partition_waiter *waiters;
    uint32_t waiter_count;
    /* The last snapshot this broker took or installed. */
    raft_index snapshot_index;
    /* Counters for management. */
    uint64_t rounds;
    uint64_t commands_processed;
};

/* Creates the partition around an existing raft node (ownership of raft
 * passes to the partition on success) and opens the engine state. Returns
 * 0, PARTITION_E_INVALID, PARTITION_E_NOMEM, PARTITION_E_IO (err says
 * why). */
int partition_init(struct partition *p, const struct partition_options *opt,
                   struct raft_node *raft, char *err, size_t errlen);
void partition_close(struct partition *p);

/* Leader: turns a client request (any command body but topology and
 * await_jobs) into a command and queues it for the next round; the answer
 * comes through the answer callback once the record answering it is
 * applied. Returns 0, PARTITION_E_NOT_LEADER, PARTITION_E_INVALID
 * (message says why), PARTITION_E_BUSY (queue full), PARTITION_E_DEAD. */
int partition_submit(struct partition *p, uint64_t request_id,
                     const Tandem__Command__Request *req, char *message,
                     size_t message_len);

/* Leader: a distributed command from another partition (answered like a
 * client request under request_id once processed here). */
int partition_submit_distributed(struct partition *p, uint64_t request_id,
                                 const Tandem__Command__DistributeRequest *d,
                                 char *message, size_t message_len);

/* Leader: queues a command the broker itself built (e.g. an EXPORTER
 * UPDATE); ownership of rec passes to the partition in every case.
 * Returns 0, PARTITION_E_NOT_LEADER, PARTITION_E_BUSY. */
int partition_submit_internal(struct partition *p, Tandem__Record__Record *rec);

/* Leader: queues the acknowledgement that partition target has the
 * distribution distribution_key (processed in the next round). */
int partition_distribution_acked(struct partition *p,
                                 uint64_t distribution_key, uint32_t target);

/* Leader: answers at once (through the answer callback) when a job of one
 * of the types is activatable, else parks the request until one is or
 * deadline passes. Returns 0, PARTITION_E_NOT_LEADER, PARTITION_E_BUSY. */
int partition_await_jobs(struct partition *p, uint64_t request_id,
                         uint64_t deadline,
                         const Tandem__Command__AwaitJobsRequest *req);

/* Runs a processing round when one is due: leader, whole log applied, no
 * round in flight, and queued commands, acks or due timers. Returns 1 when
 * an entry was proposed (the caller collects the raft update), 0 when
 * nothing was done, or a negative error (the commands of the failed round
 * were answered with an error). */
int partition_process(struct partition *p, uint64_t now_ms);

/* Applies committed entries handed out by an update (in order). Returns 0
 * or PARTITION_E_CORRUPT / PARTITION_E_IO (the partition is then marked
 * dead). */
int partition_apply(struct partition *p, const struct raft_entry *entries,
                    size_t count);

/* Restores the state from snapshot bytes (an installed snapshot, or the
 * stored one at start when the engine's state is older). Returns 0 or
 * PARTITION_E_CORRUPT. */
int partition_restore(struct partition *p, const void *data, size_t len);

/* Serializes the state into a newly allocated buffer (*out, *len; free
 * with free()). Returns 0 or PARTITION_E_NOMEM. */
int partition_snapshot_encode(const struct partition *p, void **out,
                              size_t *len);

/* The role changed: queued commands of a deposed leader are answered
 * NOT_LEADER (the gateway retries at the new leader), parked waiters are
 * woken (available) so gateways retry too. */
void partition_role_changed(struct partition *p);

/* Answers parked AwaitJobs requests whose deadline passed. */
void partition_expire(struct partition *p, uint64_t now_ms);

/* The engine's applied index (0 = nothing). */
uint64_t partition_applied_index(const struct partition *p);

/* Encodes a key. */
uint64_t partition_key(uint32_t partition_id, uint64_t counter);

/* Picks the partition of a correlation key like Zeebe does. */
uint32_t partition_for_correlation_key(const char *correlation_key,
                                       uint32_t partitions_count);

#endif /* TANDEM_BROKER_PARTITION_H */
