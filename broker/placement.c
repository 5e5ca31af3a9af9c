/* placement.c: round-robin partition placement and replica priorities.
 *
 * Input: member ids, partition count, replication factor. Output: a fixed-
 * size struct broker_placement (see placement.h for the rule, which follows
 * Zeebe's RoundRobinPartitionDistributor with 8.5+ integer ordering of
 * member ids). No I/O, no allocation; the result depends on the inputs only,
 * so every broker of a cluster computes the same placement.
 */
#include "broker/placement.h"

#include <assert.h>
#include <string.h>

_Static_assert(BROKER_REPLICAS_MAX <= 255, "priorities must fit a uint8_t");
_Static_assert(BROKER_CLUSTER_SIZE_MAX <= BROKER_NODE_ID_MAX + 1,
               "distinct ids must be able to fill a cluster");
_Static_assert(BROKER_PARTITIONS_MAX < INT32_MAX / 2,
               "hosted partition counts must fit the int return value");

/* Sorts ids[0..n-1] ascending (insertion sort: n is at most
 * BROKER_CLUSTER_SIZE_MAX and this runs once per topology change).
 * Returns -1 if an id repeats, else 0. */
static int members_sort(uint32_t *ids, uint32_t n)
{
    for (uint32_t k = 1; k < n; k++) {
        uint32_t v = ids[k];
        uint32_t j = k;
        while (j > 0 && ids[j - 1] > v) {
            ids[j] = ids[j - 1];
            j--;
        }
        ids[j] = v;
    }
    for (uint32_t k = 1; k < n; k++) {
        if (ids[k - 1] == ids[k]) {
            return -1;
        }
        assert(ids[k - 1] < ids[k]);
    }
    return 0;
}

/* Fills one partition: index i (partition id i + 1) of n sorted members. */
static void partition_fill(struct broker_partition_placement *part,
                           const uint32_t *sorted, uint32_t n, uint32_t i,
                           uint32_t r)
{
    uint32_t count = r < n ? r : n;
    uint32_t partition_id = i + 1;
    int descending = ((partition_id - 1) / n) % 2 == 0;

    assert(count >= 1);
    assert(count <= BROKER_REPLICAS_MAX);
    memset(part, 0, sizeof(*part));
    part->partition_id = partition_id;
    part->replica_count = count;
    part->target_priority = (uint8_t)r;
    for (uint32_t j = 0; j < count; j++) {
        struct broker_replica *rep = &part->replicas[j];
        rep->node_id = sorted[(i + j) % n];
        if (j == 0) {
            rep->priority = (uint8_t)r;
        } else if (descending) {
            rep->priority = (uint8_t)(r - j);
        } else {
            rep->priority = (uint8_t)j;
        }
        assert(rep->priority >= 1);
        assert(rep->priority <= r);
    }
    assert(part->replicas[0].node_id == sorted[i % n]);
}

int broker_placement_compute(struct broker_placement *out,
                             const uint32_t *member_ids, size_t member_count,
                             uint32_t partition_count,
                             uint32_t replication_factor)
{
    assert(out != NULL);
    if (member_count == 0 || partition_count == 0 || replication_factor == 0) {
        return BROKER_PLACEMENT_E_INVALID;
    }
    assert(member_ids != NULL);
    if (member_count > BROKER_CLUSTER_SIZE_MAX ||
        partition_count > BROKER_PARTITIONS_MAX ||
        replication_factor > BROKER_REPLICAS_MAX) {
        return BROKER_PLACEMENT_E_TOO_BIG;
    }
    for (size_t k = 0; k < member_count; k++) {
        if (member_ids[k] > BROKER_NODE_ID_MAX) {
            return BROKER_PLACEMENT_E_INVALID;
        }
    }

    memset(out, 0, sizeof(*out));
    out->member_count = (uint32_t)member_count;
    out->partition_count = partition_count;
    out->replication_factor = replication_factor;
    memcpy(out->members, member_ids, member_count * sizeof(member_ids[0]));
    if (members_sort(out->members, out->member_count) != 0) {
        return BROKER_PLACEMENT_E_INVALID;
    }
    for (uint32_t i = 0; i < partition_count; i++) {
        partition_fill(&out->partitions[i], out->members, out->member_count, i,
                       replication_factor);
    }
    return 0;
}

int broker_placement_compute_static(struct broker_placement *out,
                                    uint32_t cluster_size,
                                    uint32_t partition_count,
                                    uint32_t replication_factor)
{
    uint32_t ids[BROKER_CLUSTER_SIZE_MAX];

    assert(out != NULL);
    if (cluster_size == 0) {
        return BROKER_PLACEMENT_E_INVALID;
    }
    if (cluster_size > BROKER_CLUSTER_SIZE_MAX) {
        return BROKER_PLACEMENT_E_TOO_BIG;
    }
    for (uint32_t k = 0; k < cluster_size; k++) {
        ids[k] = k;
    }
    return broker_placement_compute(out, ids, cluster_size, partition_count,
                                    replication_factor);
}

int broker_placement_node_partitions(const struct broker_placement *placement,
                                     uint32_t node_id,
                                     struct broker_hosted_partition *out,
                                     size_t out_max)
{
    size_t count = 0;

    assert(placement != NULL);
    assert(placement->partition_count <= BROKER_PARTITIONS_MAX);
    assert(out != NULL || out_max == 0);
    for (uint32_t i = 0; i < placement->partition_count; i++) {
        const struct broker_partition_placement *part =
            &placement->partitions[i];
        assert(part->partition_id == i + 1);
        for (uint32_t j = 0; j < part->replica_count; j++) {
            if (part->replicas[j].node_id != node_id) {
                continue;
            }
            if (count < out_max) {
                out[count].partition_id = part->partition_id;
                out[count].priority = part->replicas[j].priority;
                out[count].target_priority = part->target_priority;
                out[count].primary = j == 0;
            }
            count++;
            break;
        }
    }
    if (count > out_max) {
        return BROKER_PLACEMENT_E_TOO_BIG;
    }
    return (int)count;
}

const struct broker_partition_placement *
broker_placement_partition(const struct broker_placement *placement,
                           uint32_t partition_id)
{
    assert(placement != NULL);
    if (partition_id == 0 || partition_id > placement->partition_count) {
        return NULL;
    }
    assert(placement->partitions[partition_id - 1].partition_id ==
           partition_id);
    return &placement->partitions[partition_id - 1];
}
