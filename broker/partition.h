/* partition.h: one partition on one broker: its Raft node and the state
 * machine its log drives (private to broker/).
 *
 * Data flow:
 *
 *   broker loop --events--> partition_step() --raft update-->
 *     partition_update_* hooks (the broker persists, sends, applies):
 *       persistence:   storage batch (group commit across partitions)
 *       messages:      transport (held back until hard state is durable)
 *       committed:     partition_apply() decodes each entry's RecordBatch
 *                      and applies it to the state; the broker answers the
 *                      client whose request produced it
 *   client request --> partition_publish(): the leader validates the
 *     command, assigns the key and appends [COMMAND, EVENT] as one entry
 *
 * State (struct partition_state) is small and lives in memory; snapshots
 * serialize it (zstd-compressed, versioned) so the log below can be
 * compacted and lagging followers can be brought back by a snapshot.
 *
 * Positions: record i of the entry at index n has position n * 2^16 + i.
 * Keys: partition_id << 51 | counter, counter from 1, increasing.
 */
#ifndef TANDEM_BROKER_PARTITION_H
#define TANDEM_BROKER_PARTITION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft/raft.h"

#define PARTITION_KEY_BITS 51
#define PARTITION_POSITION_BITS 16
#define PARTITION_RECORDS_PER_ENTRY_MAX (1u << PARTITION_POSITION_BITS)

/* Error codes (negative), one list for the enum and the strings. */
#define PARTITION_ERRNO_MAP(X)                                                 \
    X(NOT_LEADER, -1, "not the leader of this partition")                      \
    X(INVALID, -2, "invalid argument")                                         \
    X(BUSY, -3, "partition is overloaded (backpressure)")                      \
    X(CORRUPT, -4, "corrupt snapshot or record")                               \
    X(NOMEM, -5, "out of memory")                                              \
    X(DEAD, -6, "partition is dead (unrecoverable state)")

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

/* The replicated state machine of one partition. Every replica reaches the
 * same values by applying the same log. */
struct partition_state {
    uint64_t key_counter;        /* last key counter handed out */
    uint64_t records_applied;    /* records applied so far */
    uint64_t messages_published; /* MESSAGE PUBLISHED events applied */
    uint64_t last_message_key;   /* key of the latest PUBLISHED */
    uint64_t last_position;      /* position of the latest record */
    uint64_t hash;               /* FNV-1a chain over applied records */
};

/* A client request waiting for its entry to be applied. */
struct partition_request {
    uint64_t request_id; /* the broker's id for the client request */
    raft_index index;    /* the entry that answers it */
    uint64_t deadline;   /* loop time (ms) after which it expires */
};

/* Called when an applied entry answers a request taken on this broker
 * (status 0 and the key), or when a request fails (status < 0). */
typedef void (*partition_answer_cb)(void *data, uint64_t request_id,
                                    int status, uint64_t key,
                                    const char *message);

struct partition_options {
    uint32_t partition_id;
    uint32_t node_id;          /* this broker's node id (raft id - 1) */
    const char *broker_version;
    uint32_t requests_max;     /* pending client requests (backpressure) */
    partition_answer_cb answer;
    void *answer_data;
};

struct partition {
    struct partition_options opt;
    struct raft_node *raft;
    struct partition_state state;
    enum partition_health health;
    char health_reason[128];
    /* Keys handed out by this leader for entries not yet applied. */
    uint64_t next_key_counter;
    /* Pending requests: a ring ordered by index. */
    struct partition_request *requests;
    uint32_t requests_head;
    uint32_t requests_count;
    /* The last snapshot this broker took or installed. */
    raft_index snapshot_index;
};

/* Creates the partition around an existing raft node (ownership of raft
 * passes to the partition on success). Returns 0, PARTITION_E_INVALID,
 * PARTITION_E_NOMEM. */
int partition_init(struct partition *p, const struct partition_options *opt,
                   struct raft_node *raft);
void partition_close(struct partition *p);

/* Leader: validates a PublishMessage, appends [COMMAND PUBLISH, EVENT
 * PUBLISHED] as one entry and registers the request; the answer comes
 * through the answer callback once the entry is applied. name must be
 * non-empty; ttl_ms >= 0; variables NULL or a JSON object.
 * Returns 0, PARTITION_E_NOT_LEADER, PARTITION_E_INVALID (message says
 * why), PARTITION_E_BUSY (requests_max or raft backpressure),
 * PARTITION_E_NOMEM. */
int partition_publish(struct partition *p, uint64_t now_ms,
                      uint64_t request_id, uint64_t deadline_ms,
                      const char *name, const char *correlation_key,
                      int64_t ttl_ms, const char *message_id,
                      const char *variables, char *message,
                      size_t message_len);

/* Applies committed entries handed out by an update (in order). Returns 0
 * or PARTITION_E_CORRUPT (the partition is then marked dead). */
int partition_apply(struct partition *p, const struct raft_entry *entries,
                    size_t count);

/* Restores the state from snapshot bytes (an installed snapshot). Returns
 * 0 or PARTITION_E_CORRUPT. */
int partition_restore(struct partition *p, const void *data, size_t len);

/* Serializes the state into a newly allocated zstd-compressed buffer
 * (*out, *len; free with free()). Returns 0 or PARTITION_E_NOMEM. */
int partition_snapshot_encode(const struct partition *p, void **out,
                              size_t *len);

/* The role changed: a new leader learns which keys its uncommitted tail
 * already handed out; a deposed one keeps its pending requests (they may
 * still be answered when their entries apply, or expire). */
void partition_role_changed(struct partition *p);

/* Fails every pending request whose deadline passed. */
void partition_expire(struct partition *p, uint64_t now_ms);

/* Encodes a key / decodes its counter. */
uint64_t partition_key(uint32_t partition_id, uint64_t counter);

/* Picks the partition of a correlation key like Zeebe does. */
uint32_t partition_for_correlation_key(const char *correlation_key,
                                       uint32_t partitions_count);

#endif /* TANDEM_BROKER_PARTITION_H */
