/* test_force.c: forced reconfiguration (raft.h RAFT_EVENT_FORCE, the
 * "unsafe recovery" of thesis 4.3 / etcd's force-new-cluster): after losing
 * half of a 4-voter group (an odd/even region loss) the survivors adopt a
 * smaller configuration without a quorum, elect a leader, keep every
 * committed entry, and clear the forced flag once a configuration entry of
 * a later term commits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define ET 1000

static void survivors(struct raft_config *c)
{
    raft_config_init(c);
    assert_int_equal(raft_config_add(c, 1, RAFT_VOTER, 1), 0);
    assert_int_equal(raft_config_add(c, 3, RAFT_VOTER, 1), 0);
}

static bool leader_1_or_3(struct cluster *c, void *arg)
{
    raft_id l = cluster_leader(c);
    (void)arg;
    return l == 1 || l == 3;
}

static bool forced_cleared(struct cluster *c, void *arg)
{
    (void)arg;
    return c->queue_len == 0 && cluster_node(c, 1)->has_hard_state &&
           !cluster_node(c, 1)->hard_state.forced &&
           !cluster_node(c, 3)->hard_state.forced;
}

static void check_forced_config(const struct raft_config *cur)
{
    assert_int_equal(cur->count, 2);
    assert_int_equal(cur->old_count, 0);
    assert_non_null(raft_config_member(cur, 1));
    assert_non_null(raft_config_member(cur, 3));
    assert_int_equal(raft_config_member(cur, 1)->role, RAFT_VOTER);
    assert_int_equal(raft_config_member(cur, 3)->role, RAFT_VOTER);
    assert_null(raft_config_member(cur, 2));
    assert_null(raft_config_member(cur, 4));
}

/* Reference: thesis 4.3 (recovering from the loss of a majority is outside
 * Raft; forced reconfiguration) and raft.h RAFT_EVENT_FORCE / hard state
 * forced, forced_term, forced_config. */
static void test_force_after_losing_half(void **state)
{
    struct cluster *c = cluster_new(4);
    struct raft_config force;
    struct raft_config seen[16];
    raft_index committed_at[5];
    char payload[16];
    raft_index commit_before;
    raft_term forced_term;
    raft_id leader;
    size_t n;
    int i;
    raft_id id;
    (void)state;
    assert_true(cluster_elect(c, 1));
    for (i = 0; i < 5; i++) {
        snprintf(payload, sizeof(payload), "c%d", i);
        assert_int_equal(cluster_propose(c, 1, payload), 0);
    }
    assert_true(cluster_stabilize(c));
    for (i = 0; i < 5; i++) {
        snprintf(payload, sizeof(payload), "c%d", i);
        committed_at[i] = cluster_applied_index_of(c, 1, payload);
        assert_true(committed_at[i] > 0);
    }

    /* Region loss: 2 and 4 are gone; {1, 3} is not a majority of 4. */
    cluster_crash(c, 2);
    cluster_crash(c, 4);
    commit_before = raft_node_commit_index(cluster_raft(c, 1));
    (void)cluster_propose(c, 1, "stuck");
    cluster_run(c, 3 * ET);
    assert_int_equal(raft_node_commit_index(cluster_raft(c, 1)), commit_before);
    assert_false(cluster_applied_payload(c, 1, "stuck"));
    assert_false(cluster_applied_payload(c, 3, "stuck"));
    assert_int_equal(cluster_leader(c), 0);

    /* Force {1, 3} on both survivors. */
    survivors(&force);
    assert_int_equal(cluster_force(c, 1, &force), 0);
    assert_int_equal(cluster_force(c, 3, &force), 0);
    for (id = 1; id <= 3; id += 2) {
        struct h_node *h = cluster_node(c, id);
        check_forced_config(raft_node_config(h->raft));
        assert_true(h->has_hard_state);
        assert_true(h->hard_state.forced);
        check_forced_config(&h->hard_state.forced_config);
    }
    forced_term = cluster_node(c, 1)->hard_state.forced_term;

    assert_true(cluster_run_until(c, 10 * ET, leader_1_or_3, NULL));
    leader = cluster_leader(c);
    assert_int_equal(cluster_propose(c, leader, "after-force"), 0);
    assert_true(cluster_stabilize(c));
    for (id = 1; id <= 3; id += 2) {
        assert_true(cluster_applied_payload(c, id, "after-force"));
        check_forced_config(raft_node_config(cluster_raft(c, id)));
        for (i = 0; i < 5; i++) {
            snprintf(payload, sizeof(payload), "c%d", i);
            assert_int_equal(cluster_applied_index_of(c, id, payload),
                             committed_at[i]);
        }
    }

    /* A configuration entry of a later term commits and clears forced. */
    assert_true(cluster_run_until(c, 10 * ET, forced_cleared, NULL));
    for (id = 1; id <= 3; id += 2) {
        struct h_node *h = cluster_node(c, id);
        assert_true(h->ever_forced);
        assert_false(h->hard_state.forced);
        n = cluster_applied_configs(c, id, seen, 16);
        assert_true(n >= 2);
        check_forced_config(&seen[n - 1]);
        check_forced_config(raft_node_config(h->raft));
    }
    {
        /* That entry's term is later than the forced term. */
        struct h_node *h = cluster_node(c, leader);
        size_t j;
        bool later = false;
        for (j = 0; j < h->applied_len; j++) {
            if (h->applied_log[j].type == RAFT_ENTRY_CONFIG &&
                h->applied_log[j].term > forced_term) {
                later = true;
            }
        }
        assert_true(later);
    }
    cluster_check(c);
    cluster_free(c);
}

/* Reference: raft.h RAFT_E_NOT_MEMBER: FORCE naming a non-member, or on a
 * node that is not among the forced voters, is refused. */
static void test_force_not_member(void **state)
{
    struct cluster *c = cluster_new(3);
    struct raft_config force;
    (void)state;
    assert_true(cluster_elect(c, 1));
    assert_true(cluster_stabilize(c));
    raft_config_init(&force);
    assert_int_equal(raft_config_add(&force, 1, RAFT_VOTER, 1), 0);
    assert_int_equal(raft_config_add(&force, 9, RAFT_VOTER, 1), 0);
    assert_int_equal(cluster_force(c, 1, &force), RAFT_E_NOT_MEMBER);
    assert_int_equal(raft_node_config(cluster_raft(c, 1))->count, 3);
    survivors(&force);
    assert_int_equal(cluster_force(c, 2, &force), RAFT_E_NOT_MEMBER);
    assert_int_equal(raft_node_config(cluster_raft(c, 2))->count, 3);
    assert_false(cluster_node(c, 2)->hard_state.forced);
    cluster_check(c);
    cluster_free(c);
}

/* Reference: raft.h struct raft_hard_state (forced must survive a crash):
 * a node restarted after FORCE still uses the forced configuration. */
static void test_force_survives_restart(void **state)
{
    struct cluster *c = cluster_new(4);
    struct raft_config force;
    (void)state;
    assert_true(cluster_elect(c, 1));
    assert_int_equal(cluster_propose(c, 1, "kept"), 0);
    assert_true(cluster_stabilize(c));
    cluster_crash(c, 2);
    cluster_crash(c, 4);
    survivors(&force);
    assert_int_equal(cluster_force(c, 1, &force), 0);
    assert_int_equal(cluster_force(c, 3, &force), 0);
    cluster_crash(c, 1);
    assert_int_equal(cluster_restart(c, 1), 0);
    check_forced_config(raft_node_config(cluster_raft(c, 1)));
    assert_true(cluster_run_until(c, 10 * ET, leader_1_or_3, NULL));
    assert_int_equal(cluster_propose(c, cluster_leader(c), "later"), 0);
    assert_true(cluster_stabilize(c));
    assert_true(cluster_applied_payload(c, 1, "later"));
    assert_true(cluster_applied_payload(c, 1, "kept"));
    assert_true(cluster_applied_payload(c, 3, "later"));
    cluster_check(c);
    cluster_free(c);
}

/* Reference: docs/raft.md "Forced reconfiguration", condition 5: a second
 * FORCE while the first forced set is not yet committed in the log is
 * refused with RAFT_E_BUSY (it could lose committed entries); once a leader
 * elected under the forced set has committed it, forcing is possible
 * again. */
static void test_force_again_only_after_commit(void **state)
{
    struct cluster *c = cluster_new(4);
    struct raft_config force;
    struct raft_config single;
    (void)state;
    assert_true(cluster_elect(c, 1));
    assert_int_equal(cluster_propose(c, 1, "kept"), 0);
    assert_true(cluster_stabilize(c));
    cluster_crash(c, 2);
    cluster_crash(c, 4);
    survivors(&force);
    assert_int_equal(cluster_force(c, 1, &force), 0);
    raft_config_init(&single);
    assert_int_equal(raft_config_add(&single, 1, RAFT_VOTER, 1), 0);
    assert_int_equal(cluster_force(c, 1, &single), RAFT_E_BUSY);
    check_forced_config(raft_node_config(cluster_raft(c, 1)));
    assert_int_equal(cluster_force(c, 3, &force), 0);
    assert_true(cluster_run_until(c, 10 * ET, leader_1_or_3, NULL));
    assert_true(cluster_run_until(c, 10 * ET, forced_cleared, NULL));
    assert_int_equal(cluster_force(c, 1, &single), 0);
    assert_int_equal(raft_node_config(cluster_raft(c, 1))->count, 1);
    assert_true(cluster_node(c, 1)->hard_state.forced);
    cluster_crash(c, 3);
    assert_true(cluster_run_until(c, 10 * ET, leader_1_or_3, NULL));
    assert_int_equal(cluster_leader(c), 1);
    assert_int_equal(cluster_propose(c, 1, "alone"), 0);
    cluster_run(c, 2 * ET);
    assert_true(cluster_applied_payload(c, 1, "alone"));
    assert_true(cluster_applied_payload(c, 1, "kept"));
    cluster_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_force_after_losing_half),
        H_TEST(test_force_not_member),
        H_TEST(test_force_survives_restart),
        H_TEST(test_force_again_only_after_commit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
