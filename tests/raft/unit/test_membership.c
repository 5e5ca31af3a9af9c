/* test_membership.c: membership changes (Raft paper section 6, thesis
 * chapter 4): new voters catch up as learners (thesis 4.2.1), voter sets
 * change through a joint configuration C(old,new) then C(new), a removed
 * leader steps down, priority-only changes take one entry, and learners
 * never vote or count towards commitment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define ET 1000

static void cfg(struct raft_config *c, const raft_id *voters, size_t nv,
                const raft_id *learners, size_t nl)
{
    size_t i;
    raft_config_init(c);
    for (i = 0; i < nv; i++) {
        assert_int_equal(raft_config_add(c, voters[i], RAFT_VOTER, 1), 0);
    }
    for (i = 0; i < nl; i++) {
        assert_int_equal(raft_config_add(c, learners[i], RAFT_LEARNER, 1), 0);
    }
}

static bool is_voter(const struct raft_config *c, raft_id id)
{
    const struct raft_member *m = raft_config_member(c, id);
    return m != NULL && m->role == RAFT_VOTER;
}

static bool is_learner(const struct raft_config *c, raft_id id)
{
    const struct raft_member *m = raft_config_member(c, id);
    return m != NULL && m->role == RAFT_LEARNER;
}

static bool is_old_voter(const struct raft_config *c, raft_id id)
{
    uint32_t i;
    for (i = 0; i < c->old_count; i++) {
        if (c->old_voters[i] == id) {
            return true;
        }
    }
    return false;
}

static size_t voter_count(const struct raft_config *c)
{
    size_t i;
    size_t n = 0;
    for (i = 0; i < c->count; i++) {
        if (c->members[i].role == RAFT_VOTER) {
            n++;
        }
    }
    return n;
}

static bool change_done(struct cluster *c, void *arg)
{
    raft_id id = *(raft_id *)arg;
    return cluster_up(c, id) && !raft_node_changing(cluster_raft(c, id)) &&
           c->queue_len == 0;
}

static struct cluster *three_of(size_t n)
{
    struct cluster *c = cluster_create(n, NULL);
    cluster_bootstrap_voters(c, 3, NULL);
    assert_true(cluster_elect(c, 1));
    assert_true(cluster_stabilize(c));
    return c;
}

/* Reference: Raft paper section 6 and thesis 4.2.1 (catching up new
 * servers): a new voter first joins as a learner, and is promoted once
 * caught up through C(old,new) then C(new). */
static void test_add_voter(void **state)
{
    static const raft_id target_ids[] = {1, 2, 3, 4};
    struct cluster *c = three_of(4);
    struct raft_config target;
    struct raft_config seen[16];
    size_t n;
    size_t i;
    long learner_at = -1;
    long joint_at = -1;
    long final_at = -1;
    raft_id leader = 1;
    raft_id id;
    (void)state;
    cfg(&target, target_ids, 4, NULL, 0);
    assert_int_equal(cluster_change(c, 1, &target), 0);
    assert_true(raft_node_changing(cluster_raft(c, 1)));
    assert_true(is_learner(raft_node_config(cluster_raft(c, 1)), 4));
    assert_int_equal(voter_count(raft_node_config(cluster_raft(c, 1))), 3);
    assert_true(cluster_run_until(c, 20 * ET, change_done, &leader));
    assert_true(cluster_stabilize(c));

    n = cluster_applied_configs(c, 1, seen, 16);
    for (i = 0; i < n; i++) {
        if (learner_at < 0 && is_learner(&seen[i], 4) &&
            seen[i].old_count == 0) {
            learner_at = (long)i;
        }
        if (joint_at < 0 && seen[i].old_count > 0 && is_voter(&seen[i], 4)) {
            joint_at = (long)i;
            assert_false(is_old_voter(&seen[i], 4));
            assert_true(is_old_voter(&seen[i], 1));
            assert_true(is_old_voter(&seen[i], 3));
            assert_int_equal(seen[i].old_count, 3);
        }
        if (seen[i].old_count == 0 && is_voter(&seen[i], 4)) {
            final_at = (long)i;
        }
    }
    assert_true(learner_at >= 0);
    assert_true(joint_at > learner_at);
    assert_true(final_at > joint_at);
    assert_int_equal(final_at, (long)n - 1);
    for (id = 1; id <= 4; id++) {
        const struct raft_config *cur = raft_node_config(cluster_raft(c, id));
        assert_int_equal(cur->old_count, 0);
        assert_int_equal(voter_count(cur), 4);
        assert_true(is_voter(cur, 4));
        assert_false(raft_node_changing(cluster_raft(c, id)));
    }
    /* Node 4 now counts: with node 3 down, {1, 2, 4} is a majority of 4. */
    cluster_crash(c, 3);
    assert_int_equal(cluster_propose(c, 1, "with-4"), 0);
    assert_true(cluster_stabilize(c));
    assert_true(cluster_applied_payload(c, 4, "with-4"));
    assert_true(cluster_applied_payload(c, 1, "with-4"));
    cluster_check(c);
    cluster_free(c);
}

/* Reference: Raft paper section 6: removing a voter goes through C(old,new)
 * then C(new); afterwards the remaining voters commit on their own. */
static void test_remove_voter(void **state)
{
    static const raft_id target_ids[] = {1, 2};
    struct cluster *c = three_of(3);
    struct raft_config target;
    struct raft_config seen[16];
    size_t n;
    size_t i;
    long joint_at = -1;
    raft_id leader = 1;
    (void)state;
    cfg(&target, target_ids, 2, NULL, 0);
    assert_int_equal(cluster_change(c, 1, &target), 0);
    assert_true(cluster_run_until(c, 20 * ET, change_done, &leader));
    assert_true(cluster_stabilize(c));
    n = cluster_applied_configs(c, 1, seen, 16);
    for (i = 0; i < n; i++) {
        if (joint_at < 0 && seen[i].old_count > 0) {
            joint_at = (long)i;
            assert_true(is_old_voter(&seen[i], 3));
            assert_false(is_voter(&seen[i], 3));
        }
    }
    assert_true(joint_at >= 0);
    assert_true((long)n - 1 > joint_at);
    assert_int_equal(seen[n - 1].old_count, 0);
    assert_int_equal(voter_count(&seen[n - 1]), 2);
    assert_null(raft_config_member(&seen[n - 1], 3));
    assert_null(raft_config_member(raft_node_config(cluster_raft(c, 2)), 3));
    cluster_crash(c, 3);
    assert_int_equal(cluster_propose(c, 1, "pair"), 0);
    assert_true(cluster_stabilize(c));
    assert_true(cluster_applied_payload(c, 2, "pair"));
    assert_int_equal(cluster_leader(c), 1);
    cluster_check(c);
    cluster_free(c);
}

static bool leader_among_2_3(struct cluster *c, void *arg)
{
    raft_id l = cluster_leader(c);
    (void)arg;
    return (l == 2 || l == 3) &&
           raft_node_role(cluster_raft(c, 1)) != RAFT_LEADER;
}

/* Reference: Raft paper section 6 (a leader not part of C(new) steps down
 * once C(new) is committed) and thesis 4.2.2. */
static void test_remove_leader(void **state)
{
    static const raft_id target_ids[] = {2, 3};
    struct cluster *c = three_of(3);
    struct raft_config target;
    raft_id l;
    (void)state;
    cfg(&target, target_ids, 2, NULL, 0);
    assert_int_equal(cluster_change(c, 1, &target), 0);
    /* Still leading during the joint phase. */
    assert_int_equal(raft_node_role(cluster_raft(c, 1)), RAFT_LEADER);
    assert_true(cluster_run_until(c, 20 * ET, leader_among_2_3, NULL));
    l = cluster_leader(c);
    assert_int_not_equal(raft_node_role(cluster_raft(c, 1)), RAFT_LEADER);
    assert_true(cluster_stabilize(c));
    assert_null(raft_config_member(raft_node_config(cluster_raft(c, l)), 1));
    assert_int_equal(raft_node_config(cluster_raft(c, l))->old_count, 0);
    cluster_crash(c, 1);
    assert_int_equal(cluster_propose(c, l, "without-1"), 0);
    assert_true(cluster_stabilize(c));
    assert_true(cluster_applied_payload(c, 2, "without-1"));
    assert_true(cluster_applied_payload(c, 3, "without-1"));
    cluster_check(c);
    cluster_free(c);
}

/* Reference: Raft paper section 6: replacing a voter ({1,2,3} -> {1,2,4})
 * adds 4 as a learner, then C(old,new), then C(new). */
static void test_replace_voter(void **state)
{
    static const raft_id target_ids[] = {1, 2, 4};
    struct cluster *c = three_of(4);
    struct raft_config target;
    struct raft_config seen[16];
    size_t n;
    size_t i;
    bool joint_ok = false;
    bool learner_seen = false;
    raft_id leader = 1;
    (void)state;
    cfg(&target, target_ids, 3, NULL, 0);
    assert_int_equal(cluster_change(c, 1, &target), 0);
    assert_true(is_learner(raft_node_config(cluster_raft(c, 1)), 4));
    assert_true(cluster_run_until(c, 20 * ET, change_done, &leader));
    assert_true(cluster_stabilize(c));
    n = cluster_applied_configs(c, 1, seen, 16);
    for (i = 0; i < n; i++) {
        if (is_learner(&seen[i], 4)) {
            learner_seen = true;
        }
        if (seen[i].old_count == 3 && is_old_voter(&seen[i], 3) &&
            is_voter(&seen[i], 4) && !is_voter(&seen[i], 3)) {
            joint_ok = learner_seen;
        }
    }
    assert_true(joint_ok);
    assert_int_equal(seen[n - 1].old_count, 0);
    assert_true(is_voter(&seen[n - 1], 4));
    assert_null(raft_config_member(&seen[n - 1], 3));
    cluster_crash(c, 3);
    assert_int_equal(cluster_propose(c, 1, "replaced"), 0);
    assert_true(cluster_stabilize(c));
    assert_true(cluster_applied_payload(c, 4, "replaced"));
    cluster_check(c);
    cluster_free(c);
}

/* Reference: raft.h RAFT_EVENT_CHANGE: a priority-only change takes one
 * configuration entry and no joint phase. */
static void test_priority_only_change(void **state)
{
    struct cluster *c = three_of(3);
    struct raft_config target;
    struct raft_config seen[16];
    size_t before;
    size_t after;
    raft_index last;
    const struct raft_entry *e;
    (void)state;
    h_config_voters(&target, 3);
    target.members[1].priority = 5;
    before = cluster_applied_configs(c, 1, seen, 16);
    last = raft_node_last_index(cluster_raft(c, 1));
    assert_int_equal(cluster_change(c, 1, &target), 0);
    assert_int_equal(raft_node_last_index(cluster_raft(c, 1)), last + 1);
    e = raft_node_entry_at(cluster_raft(c, 1), last + 1);
    assert_non_null(e);
    assert_int_equal(e->type, RAFT_ENTRY_CONFIG);
    assert_true(cluster_stabilize(c));
    after = cluster_applied_configs(c, 1, seen, 16);
    assert_int_equal(after, before + 1);
    assert_int_equal(seen[after - 1].old_count, 0);
    assert_int_equal(raft_config_member(&seen[after - 1], 2)->priority, 5);
    assert_int_equal(
        raft_config_member(raft_node_config(cluster_raft(c, 3)), 2)->priority,
        5);
    assert_false(raft_node_changing(cluster_raft(c, 1)));
    cluster_check(c);
    cluster_free(c);
}

/* Reference: Raft paper section 6 / thesis 4.1 (one change at a time) and
 * raft.h RAFT_E_BUSY: a second change while one is pending is refused. */
static void test_second_change_busy(void **state)
{
    static const raft_id add4[] = {1, 2, 3, 4};
    static const raft_id drop3[] = {1, 2};
    struct cluster *c = three_of(4);
    struct raft_config a;
    struct raft_config b;
    raft_index last;
    raft_id leader = 1;
    (void)state;
    cfg(&a, add4, 4, NULL, 0);
    cfg(&b, drop3, 2, NULL, 0);
    assert_int_equal(cluster_change(c, 1, &a), 0);
    last = raft_node_last_index(cluster_raft(c, 1));
    assert_int_equal(cluster_change(c, 1, &b), RAFT_E_BUSY);
    assert_int_equal(raft_node_last_index(cluster_raft(c, 1)), last);
    assert_true(cluster_run_until(c, 20 * ET, change_done, &leader));
    assert_true(cluster_stabilize(c));
    /* Once done, another change is accepted. */
    assert_int_equal(cluster_change(c, 1, &b), 0);
    assert_true(cluster_run_until(c, 20 * ET, change_done, &leader));
    assert_true(cluster_stabilize(c));
    assert_int_equal(voter_count(raft_node_config(cluster_raft(c, 1))), 2);
    cluster_check(c);
    cluster_free(c);
}

/* Reference: raft.h RAFT_EVENT_CHANGE (plain, non-joint, at least one
 * voter) and RAFT_E_NOT_LEADER. */
static void test_change_invalid(void **state)
{
    static const raft_id none[] = {0};
    static const raft_id learner4[] = {4};
    struct cluster *c = three_of(4);
    struct raft_config t;
    (void)state;
    cfg(&t, none, 0, learner4, 1);
    assert_int_equal(cluster_change(c, 1, &t), RAFT_E_INVALID);
    h_config_voters(&t, 3);
    t.old_count = 1;
    t.old_voters[0] = 4;
    assert_int_equal(cluster_change(c, 1, &t), RAFT_E_INVALID);
    h_config_voters(&t, 4);
    assert_int_equal(cluster_change(c, 2, &t), RAFT_E_NOT_LEADER);
    assert_false(raft_node_changing(cluster_raft(c, 1)));
    cluster_free(c);
}

/* Reference: thesis 4.2.1 and raft.h RAFT_LEARNER: a learner receives the
 * log but never campaigns and never counts towards a commit quorum. */
static void test_learner_never_campaigns_or_counts(void **state)
{
    static const raft_id voters[] = {1, 2, 3};
    static const raft_id learners[] = {4};
    static const raft_id all[] = {1, 2, 3, 4};
    struct cluster *c = cluster_create(4, NULL);
    struct raft_config config;
    raft_index idx = 0;
    raft_index commit;
    (void)state;
    cfg(&config, voters, 3, learners, 1);
    cluster_bootstrap(c, &config, all, 4);
    assert_true(cluster_elect(c, 1));
    assert_true(cluster_stabilize(c));
    assert_int_equal(cluster_node(c, 4)->applied,
                     raft_node_commit_index(cluster_raft(c, 1)));

    /* Does not count: the leader plus the learner are not a quorum (the
     * voters' links are slow, their messages wait). */
    cluster_hold(c, 2);
    cluster_hold(c, 3);
    commit = raft_node_commit_index(cluster_raft(c, 1));
    assert_int_equal(cluster_propose_buf(c, 1, "L", 1, &idx), 0);
    cluster_deliver_all(c);
    assert_int_equal(raft_node_match_index(cluster_raft(c, 1), 4), idx);
    assert_int_equal(raft_node_commit_index(cluster_raft(c, 1)), commit);
    cluster_release(c, 2);
    cluster_release(c, 3);
    assert_true(cluster_stabilize(c));
    assert_true(cluster_applied_payload(c, 4, "L"));

    /* Does not campaign, neither on request nor by timeout. */
    cluster_trace(c, true);
    (void)cluster_campaign(c, 4);
    assert_int_equal(raft_node_role(cluster_raft(c, 4)), RAFT_FOLLOWER);
    cluster_drop(c, 0, 0, 0);
    cluster_isolate(c, 4);
    cluster_run(c, 10 * ET);
    assert_int_equal(raft_node_role(cluster_raft(c, 4)), RAFT_FOLLOWER);
    assert_int_equal(cluster_trace_count(c, RAFT_MSG_VOTE, 4, 0), 0);
    assert_int_equal(cluster_trace_count(c, RAFT_MSG_PRE_VOTE, 4, 0), 0);
    cluster_check(c);
    cluster_free(c);
}

/* Reference: thesis 4.2.1 and raft.h RAFT_LEARNER (never votes, never
 * counts): a candidate does not count a learner's granted vote. (Whether
 * the learner answers at all is left open: etcd lets a learner answer in
 * case the candidate already knows it as a voter.) */
static void test_learner_vote_does_not_count(void **state)
{
    static const raft_id voters[] = {1, 2, 3};
    static const raft_id learners[] = {4};
    static const raft_id all[] = {1, 2, 3, 4};
    struct raft_options o;
    struct cluster *c;
    struct raft_config config;
    struct raft_message m;
    raft_term t;
    (void)state;
    harness_options(&o, 1);
    o.pre_vote = false;
    o.check_quorum = false;
    c = cluster_create(4, &o);
    cfg(&config, voters, 3, learners, 1);
    cluster_bootstrap(c, &config, all, 4);
    assert_int_equal(cluster_campaign(c, 1), 0);
    assert_int_equal(raft_node_role(cluster_raft(c, 1)), RAFT_CANDIDATE);
    t = raft_node_term(cluster_raft(c, 1));
    cluster_hold(c, 2);
    cluster_hold(c, 3);
    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_VOTE_RESP;
    m.from = 4;
    m.to = 1;
    m.term = t;
    assert_int_equal(cluster_inject(c, &m), 0);
    assert_int_equal(raft_node_role(cluster_raft(c, 1)), RAFT_CANDIDATE);
    cluster_release(c, 2);
    assert_int_equal(cluster_deliver(c, RAFT_MSG_VOTE, 1, 2), 1);
    assert_int_equal(cluster_deliver(c, RAFT_MSG_VOTE_RESP, 2, 1), 1);
    assert_int_equal(raft_node_role(cluster_raft(c, 1)), RAFT_LEADER);
    cluster_heal(c);
    assert_true(cluster_stabilize(c));
    cluster_check(c);
    cluster_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_add_voter),
        H_TEST(test_remove_voter),
        H_TEST(test_remove_leader),
        H_TEST(test_replace_voter),
        H_TEST(test_priority_only_change),
        H_TEST(test_second_change_busy),
        H_TEST(test_change_invalid),
        H_TEST(test_learner_never_campaigns_or_counts),
        H_TEST(test_learner_vote_does_not_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
