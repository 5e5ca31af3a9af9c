/* placement.h: which brokers host which partition, with which priority.
 *
 * Pure computation (no I/O, no allocation) of Zeebe's round-robin partition
 * distribution (RoundRobinPartitionDistributor, 8.5+ integer ordering of
 * member ids):
 *
 *     member ids, partition count P, replication factor R
 *       -> sort the ids as integers: sorted[0..N-1]
 *       -> partition p (index i = p - 1) is replicated on
 *          sorted[(i + j) % N] for j = 0 .. min(R, N) - 1;
 *          the first of them (sorted[i % N]) is the primary
 *       -> priorities: the primary gets R; the other replicas, in list
 *          order, get, ... when ((p - 1) / N) is even, and
 *          1, 2, 3, ... when it is odd, so that when a primary fails
 *          leadership spreads evenly over the survivors
 *       -> the partition's target priority is the primary's priority (R)
 *
 * The priorities feed raft's priority election (struct raft_member
 * priority); R <= BROKER_REPLICAS_MAX keeps them within a uint8_t.
 */
#ifndef TANDEM_BROKER_PLACEMENT_H
#define TANDEM_BROKER_PLACEMENT_H

#include <stddef.h>
#include <stdint.h>

/* Limits. BROKER_REPLICAS_MAX equals RAFT_MEMBERS_MAX: every replica is a
 * member of the partition's raft group. */
#define BROKER_CLUSTER_SIZE_MAX 256 /* members (brokers) */
#define BROKER_NODE_ID_MAX 65535    /* largest member id */
#define BROKER_PARTITIONS_MAX 512   /* partitions */
#define BROKER_REPLICAS_MAX 16      /* replicas of one partition */

/* Error codes (negative). */
#define BROKER_PLACEMENT_E_INVALID (-1) /* zero/duplicate/oversized input */
#define BROKER_PLACEMENT_E_TOO_BIG                                             \
    (-2) /* input above a _MAX, or the                                         \
            caller's output array too small */

/* One replica of a partition. */
struct broker_replica {
    uint32_t node_id; /* member id */
    uint8_t priority; /* 1..R; R for the primary */
};

/* One partition. replicas[0] is the primary; the others follow in
 * round-robin order. */
struct broker_partition_placement {
    uint32_t partition_id;   /* 1..partition_count */
    uint32_t replica_count;  /* min(R, N) */
    uint8_t target_priority; /* = replicas[0].priority = R */
    struct broker_replica replicas[BROKER_REPLICAS_MAX];
};

/* A whole placement. About 70 KiB: allocate it statically or on the heap. */
struct broker_placement {
    uint32_t member_count;       /* N */
    uint32_t partition_count;    /* P */
    uint32_t replication_factor; /* R as configured (may exceed N) */
    uint32_t members[BROKER_CLUSTER_SIZE_MAX]; /* sorted ascending */
    struct broker_partition_placement partitions[BROKER_PARTITIONS_MAX];
};

/* One partition hosted by a given member. */
struct broker_hosted_partition {
    uint32_t partition_id;
    uint8_t priority;        /* this member's priority */
    uint8_t target_priority; /* the partition's target priority */
    uint8_t primary;         /* 1 if this member is the primary */
};

/* Computes the round-robin placement.
 *
 *   out:          caller-owned; fully overwritten on success, unspecified
 *                 on error. partitions[k] describes partition k + 1.
 *   member_ids:   borrowed array of member_count distinct ids, any order,
 *                 each <= BROKER_NODE_ID_MAX.
 *   member_count: 1..BROKER_CLUSTER_SIZE_MAX.
 *   partition_count: 1..BROKER_PARTITIONS_MAX.
 *   replication_factor: 1..BROKER_REPLICAS_MAX; if it exceeds member_count,
 *                 each partition gets member_count replicas (as Zeebe does)
 *                 and the primary's priority is still replication_factor.
 *
 * Returns 0, BROKER_PLACEMENT_E_INVALID (a count is zero, an id is repeated
 * or above BROKER_NODE_ID_MAX) or BROKER_PLACEMENT_E_TOO_BIG (a count is
 * above its _MAX). */
int broker_placement_compute(struct broker_placement *out,
                             const uint32_t *member_ids, size_t member_count,
                             uint32_t partition_count,
                             uint32_t replication_factor);

/* As broker_placement_compute() with the static bootstrap members
 * 0..cluster_size-1. */
int broker_placement_compute_static(struct broker_placement *out,
                                    uint32_t cluster_size,
                                    uint32_t partition_count,
                                    uint32_t replication_factor);

/* Lists the partitions that member node_id hosts, in ascending partition
 * order, into out[0..out_max-1] (caller-owned; may be NULL if out_max is 0).
 * placement is borrowed and must come from broker_placement_compute().
 *
 * Returns the number of hosted partitions (0 if node_id is not a member or
 * hosts nothing), or BROKER_PLACEMENT_E_TOO_BIG if out_max is smaller than
 * that number (out then holds the first out_max of them). */
int broker_placement_node_partitions(const struct broker_placement *placement,
                                     uint32_t node_id,
                                     struct broker_hosted_partition *out,
                                     size_t out_max);

/* The partition with the given id (1-based), or NULL if out of range.
 * The pointer borrows from placement. */
const struct broker_partition_placement *
broker_placement_partition(const struct broker_placement *placement,
                           uint32_t partition_id);

#endif
