/* test_placement.c: unit tests of broker/placement.c.
 *
 * Golden placements from Zeebe's sources and docs (zeebe-facts 4.1) and from
 * the dual-region operational procedure (8 brokers, 8 partitions, RF 4),
 * plus structural properties checked over many shapes: every partition has
 * min(R, N) distinct replicas, priorities are a permutation of the expected
 * set, each member hosts its round-robin share, and with two regions
 * (even/odd ids) every partition has two replicas per region.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/placement.h"

static struct broker_placement placement;

/* Priority of node in partition p, or 0 if it does not host p. */
static unsigned priority_of(uint32_t p, uint32_t node)
{
    const struct broker_partition_placement *part =
        broker_placement_partition(&placement, p);
    assert_non_null(part);
    for (uint32_t j = 0; j < part->replica_count; j++) {
        if (part->replicas[j].node_id == node) {
            return part->replicas[j].priority;
        }
    }
    return 0;
}

/* 4 nodes, 5 partitions, R=3: the example in Zeebe's
 * RoundRobinPartitionDistributor comment. */
static void test_zeebe_source_example(void **state)
{
    /* [partition][node] = priority, 0 = not a replica */
    static const unsigned want[5][4] = {
        {3, 2, 1, 0}, {0, 3, 2, 1}, {1, 0, 3, 2}, {2, 1, 0, 3}, {3, 1, 2, 0},
    };
    (void)state;
    assert_int_equal(broker_placement_compute_static(&placement, 4, 5, 3), 0);
    assert_int_equal(placement.partition_count, 5);
    for (uint32_t p = 1; p <= 5; p++) {
        const struct broker_partition_placement *part =
            broker_placement_partition(&placement, p);
        assert_int_equal(part->partition_id, p);
        assert_int_equal(part->replica_count, 3);
        assert_int_equal(part->target_priority, 3);
        assert_int_equal(part->replicas[0].node_id, (p - 1) % 4);
        for (uint32_t n = 0; n < 4; n++) {
            assert_int_equal(priority_of(p, n), want[p - 1][n]);
        }
    }
    /* Member order within a partition is round robin from the primary. */
    assert_int_equal(placement.partitions[2].replicas[1].node_id, 3);
    assert_int_equal(placement.partitions[2].replicas[2].node_id, 0);
}

/* 3 brokers, 6 partitions, RF 3: Camunda 8.8 cluster-scaling docs. */
static void test_docs_three_brokers(void **state)
{
    static const unsigned want[3][6] = {
        {3, 1, 2, 3, 2, 1}, /* broker 0, partitions 1..6 */
        {2, 3, 1, 1, 3, 2}, /* broker 1 */
        {1, 2, 3, 2, 1, 3}, /* broker 2 */
    };
    struct broker_hosted_partition hosted[8];
    (void)state;
    assert_int_equal(broker_placement_compute_static(&placement, 3, 6, 3), 0);
    for (uint32_t n = 0; n < 3; n++) {
        int count = broker_placement_node_partitions(&placement, n, hosted, 8);
        assert_int_equal(count, 6);
        for (int k = 0; k < count; k++) {
            assert_int_equal(hosted[k].partition_id, (uint32_t)k + 1);
            assert_int_equal(hosted[k].priority, want[n][k]);
            assert_int_equal(hosted[k].target_priority, 3);
            assert_int_equal(hosted[k].primary, want[n][k] == 3);
        }
    }
}

/* Dual region, 8 brokers, 8 partitions, RF 4: the topology listed in the
 * dual-region operational procedure (seed 002, after failback). Even ids
 * are region 0, odd ids region 1. */
static void test_dual_region_eight_brokers(void **state)
{
    static const uint32_t want[8][4] = {
        {1, 6, 7, 8}, {1, 2, 7, 8}, {1, 2, 3, 8}, {1, 2, 3, 4},
        {2, 3, 4, 5}, {3, 4, 5, 6}, {4, 5, 6, 7}, {5, 6, 7, 8},
    };
    struct broker_hosted_partition hosted[BROKER_PARTITIONS_MAX];
    (void)state;
    assert_int_equal(broker_placement_compute_static(&placement, 8, 8, 4), 0);
    for (uint32_t n = 0; n < 8; n++) {
        int count = broker_placement_node_partitions(&placement, n, hosted,
                                                     BROKER_PARTITIONS_MAX);
        assert_int_equal(count, 4);
        for (int k = 0; k < 4; k++) {
            assert_int_equal(hosted[k].partition_id, want[n][k]);
        }
    }
    /* Each partition: two replicas per region; primaries alternate. */
    for (uint32_t p = 1; p <= 8; p++) {
        const struct broker_partition_placement *part =
            broker_placement_partition(&placement, p);
        unsigned per_region[2] = {0, 0};
        assert_int_equal(part->replica_count, 4);
        for (uint32_t j = 0; j < 4; j++) {
            per_region[part->replicas[j].node_id % 2]++;
        }
        assert_int_equal(per_region[0], 2);
        assert_int_equal(per_region[1], 2);
        assert_int_equal(part->replicas[0].node_id % 2, (p - 1) % 2);
    }
}

/* Any even cluster of >= 4 with RF 4 and any partition count puts exactly
 * two replicas of every partition in each region (zeebe-facts 4.3). */
static void test_dual_region_property(void **state)
{
    (void)state;
    for (uint32_t n = 4; n <= 32; n += 2) {
        for (uint32_t parts = 1; parts <= 40; parts++) {
            assert_int_equal(
                broker_placement_compute_static(&placement, n, parts, 4), 0);
            for (uint32_t i = 0; i < parts; i++) {
                const struct broker_partition_placement *part =
                    &placement.partitions[i];
                unsigned per_region[2] = {0, 0};
                for (uint32_t j = 0; j < part->replica_count; j++) {
                    per_region[part->replicas[j].node_id % 2]++;
                }
                assert_int_equal(per_region[0], 2);
                assert_int_equal(per_region[1], 2);
            }
        }
    }
}

/* Structural invariants over many shapes. */
static void test_invariants(void **state)
{
    (void)state;
    for (uint32_t n = 1; n <= 12; n++) {
        for (uint32_t r = 1; r <= 6; r++) {
            for (uint32_t parts = 1; parts <= 30; parts += 7) {
                uint32_t count = r < n ? r : n;
                unsigned hosted_total = 0;
                assert_int_equal(
                    broker_placement_compute_static(&placement, n, parts, r),
                    0);
                for (uint32_t i = 0; i < parts; i++) {
                    const struct broker_partition_placement *part =
                        &placement.partitions[i];
                    unsigned seen_prio = 0;
                    assert_int_equal(part->replica_count, count);
                    assert_int_equal(part->replicas[0].priority, r);
                    assert_int_equal(part->target_priority, r);
                    for (uint32_t j = 0; j < count; j++) {
                        assert_true(part->replicas[j].priority >= 1);
                        assert_true(part->replicas[j].priority <= r);
                        seen_prio |= 1u << part->replicas[j].priority;
                        for (uint32_t k = 0; k < j; k++) {
                            assert_int_not_equal(part->replicas[j].node_id,
                                                 part->replicas[k].node_id);
                        }
                    }
                    /* Priorities are distinct when R <= N. */
                    if (r <= n) {
                        assert_int_equal(__builtin_popcount(seen_prio), count);
                    }
                }
                for (uint32_t node = 0; node < n; node++) {
                    int c = broker_placement_node_partitions(&placement, node,
                                                             NULL, 0);
                    if (c == BROKER_PLACEMENT_E_TOO_BIG) {
                        struct broker_hosted_partition h[32];
                        c = broker_placement_node_partitions(&placement, node,
                                                             h, 32);
                    }
                    assert_true(c >= 0);
                    hosted_total += (unsigned)c;
                }
                assert_int_equal(hosted_total, parts * count);
            }
        }
    }
}

/* Member ids are sorted as integers (8.5+), not as strings: with ids
 * 2, 10, 1 the order is 1, 2, 10. */
static void test_integer_sort_of_ids(void **state)
{
    static const uint32_t ids[] = {10, 2, 1, 11, 0};
    (void)state;
    assert_int_equal(broker_placement_compute(&placement, ids, 5, 5, 1), 0);
    assert_int_equal(placement.members[0], 0);
    assert_int_equal(placement.members[1], 1);
    assert_int_equal(placement.members[2], 2);
    assert_int_equal(placement.members[3], 10);
    assert_int_equal(placement.members[4], 11);
    assert_int_equal(placement.partitions[2].replicas[0].node_id, 2);
    assert_int_equal(placement.partitions[3].replicas[0].node_id, 10);
}

/* RF above the member count: every member hosts every partition, and the
 * primary still gets the configured RF as priority. */
static void test_rf_above_members(void **state)
{
    (void)state;
    assert_int_equal(broker_placement_compute_static(&placement, 2, 2, 3), 0);
    assert_int_equal(placement.partitions[0].replica_count, 2);
    assert_int_equal(placement.partitions[0].replicas[0].priority, 3);
    assert_int_equal(placement.partitions[0].replicas[1].priority, 2);
    /* partition 2: (2-1)/2 = 0, still descending */
    assert_int_equal(placement.partitions[1].replicas[0].node_id, 1);
    assert_int_equal(placement.partitions[1].replicas[1].priority, 2);
}

static void test_errors(void **state)
{
    static const uint32_t dup[] = {1, 2, 1};
    static const uint32_t big_id[] = {1, BROKER_NODE_ID_MAX + 1};
    struct broker_hosted_partition hosted[2];
    (void)state;
    assert_int_equal(broker_placement_compute(&placement, dup, 3, 1, 1),
                     BROKER_PLACEMENT_E_INVALID);
    assert_int_equal(broker_placement_compute(&placement, big_id, 2, 1, 1),
                     BROKER_PLACEMENT_E_INVALID);
    assert_int_equal(broker_placement_compute(&placement, dup, 0, 1, 1),
                     BROKER_PLACEMENT_E_INVALID);
    assert_int_equal(broker_placement_compute_static(&placement, 0, 1, 1),
                     BROKER_PLACEMENT_E_INVALID);
    assert_int_equal(broker_placement_compute_static(&placement, 3, 0, 1),
                     BROKER_PLACEMENT_E_INVALID);
    assert_int_equal(broker_placement_compute_static(&placement, 3, 1, 0),
                     BROKER_PLACEMENT_E_INVALID);
    assert_int_equal(broker_placement_compute_static(
                         &placement, BROKER_CLUSTER_SIZE_MAX + 1, 1, 1),
                     BROKER_PLACEMENT_E_TOO_BIG);
    assert_int_equal(broker_placement_compute_static(
                         &placement, 3, BROKER_PARTITIONS_MAX + 1, 1),
                     BROKER_PLACEMENT_E_TOO_BIG);
    assert_int_equal(broker_placement_compute_static(&placement, 20, 1,
                                                     BROKER_REPLICAS_MAX + 1),
                     BROKER_PLACEMENT_E_TOO_BIG);

    /* Limits themselves are accepted. */
    assert_int_equal(broker_placement_compute_static(
                         &placement, BROKER_CLUSTER_SIZE_MAX,
                         BROKER_PARTITIONS_MAX, BROKER_REPLICAS_MAX),
                     0);
    assert_int_equal(
        placement.partitions[BROKER_PARTITIONS_MAX - 1].replica_count,
        BROKER_REPLICAS_MAX);

    /* Output array too small: first out_max entries, then TOO_BIG. */
    assert_int_equal(broker_placement_compute_static(&placement, 3, 6, 3), 0);
    assert_int_equal(broker_placement_node_partitions(&placement, 0, hosted, 2),
                     BROKER_PLACEMENT_E_TOO_BIG);
    assert_int_equal(hosted[0].partition_id, 1);
    assert_int_equal(hosted[1].partition_id, 2);
    /* A non-member hosts nothing. */
    assert_int_equal(broker_placement_node_partitions(&placement, 7, hosted, 2),
                     0);
    assert_null(broker_placement_partition(&placement, 0));
    assert_null(broker_placement_partition(&placement, 7));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zeebe_source_example),
        cmocka_unit_test(test_docs_three_brokers),
        cmocka_unit_test(test_dual_region_eight_brokers),
        cmocka_unit_test(test_dual_region_property),
        cmocka_unit_test(test_invariants),
        cmocka_unit_test(test_integer_sort_of_ids),
        cmocka_unit_test(test_rf_above_members),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
