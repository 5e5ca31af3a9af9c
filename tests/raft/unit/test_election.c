/* test_election.c: leader election (Raft paper section 5.2), pre-vote and
 * check-quorum / leader lease (thesis 9.6 and 6.2 / 4.2.3) and Zeebe-style
 * priority election, driven through the harness cluster with explicit
 * time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define ET 1000 /* election timeout of the test options */
#define HB 100  /* heartbeat interval of the test options */

static struct raft_options opts(bool pre_vote, bool check_quorum)
{
    struct raft_options o;
    harness_options(&o, 1);
    o.pre_vote = pre_vote;
    o.check_quorum = check_quorum;
    return o;
}

static struct cluster *elected3(void)
{
    struct cluster *c = cluster_new(3);
    assert_true(cluster_elect(c, 1));
    assert_true(cluster_stabilize(c));
    return c;
}

static bool has_leader(struct cluster *c, void *arg)
{
    (void)arg;
    return cluster_leader(c) != 0;
}

/* Reference: Raft paper section 5.2: a follower that receives no
 * communication campaigns after a randomized election timeout, chosen from
 * [election_timeout, 2 x election_timeout). */
static void test_randomized_election_timeout(void **state)
{
    struct raft_options o = opts(false, false);
    struct cluster *c = cluster_create(5, &o);
    raft_time first[6] = {0};
    raft_id id;
    bool distinct = false;
    (void)state;
    cluster_bootstrap_voters(c, 5, NULL);
    for (id = 1; id <= 5; id++) {
        cluster_isolate(c, id);
    }
    c->step_ms = 1;
    while (c->now < 2 * ET + 20) {
        cluster_tick(c, 1);
        cluster_drop(c, 0, 0, 0);
        for (id = 1; id <= 5; id++) {
            if (first[id] == 0 &&
                raft_node_role(cluster_raft(c, id)) != RAFT_FOLLOWER) {
                first[id] = c->now;
                assert_int_equal(raft_node_role(cluster_raft(c, id)),
                                 RAFT_CANDIDATE);
            }
        }
    }
    for (id = 1; id <= 5; id++) {
        assert_true(first[id] >= ET);
        assert_true(first[id] <= 2 * ET + 1);
        if (first[id] != first[1]) {
            distinct = true;
        }
    }
    assert_true(distinct);
    cluster_check(c);
    cluster_free(c);
}

/* Reference: raft.h raft_node_deadline: the next election deadline of a
 * follower lies within [now + election_timeout, now + 2 x timeout]; a
 * leader needs a tick within a heartbeat interval (section 5.2). */
static void test_deadline_within_election_window(void **state)
{
    struct cluster *c = cluster_new(3);
    raft_time d;
    (void)state;
    cluster_tick(c, 1);
    d = raft_node_deadline(cluster_raft(c, 2));
    assert_true(d >= c->now + ET - 1);
    assert_true(d <= c->now + 2 * ET);
    /* A leader's next deadline is its heartbeat. */
    assert_true(cluster_elect(c, 1));
    d = raft_node_deadline(cluster_raft(c, 1));
    assert_true(d > c->now - 1);
    assert_true(d <= c->now + HB);
    cluster_free(c);
}

/* Reference: Raft paper section 5.2: when the leader stops sending
 * heartbeats, a follower campaigns no sooner than an election timeout after
 * the last one and no later than twice that. */
static void test_follower_campaigns_after_leader_loss(void **state)
{
    struct cluster *c = elected3();
    raft_time crashed;
    raft_time first = 0;
    (void)state;
    cluster_run(c, 5 * HB);
    cluster_crash(c, 1);
    crashed = c->now;
    while (c->now < crashed + 3 * ET && first == 0) {
        cluster_tick(c, 10);
        if (raft_node_role(cluster_raft(c, 2)) != RAFT_FOLLOWER ||
            raft_node_role(cluster_raft(c, 3)) != RAFT_FOLLOWER) {
            first = c->now;
        }
        cluster_drop(c, 0, 0, 0);
    }
    assert_true(first != 0);
    assert_true(first >= crashed + ET - HB);
    assert_true(first <= crashed + 2 * ET + 10);
    cluster_free(c);
}

/* Reference: Raft paper section 5.2 and Figure 3 (Election Safety): with
 * nobody forced to campaign, timeouts alone elect exactly one leader that
 * every node recognizes. */
static void test_leader_elected_by_timeout(void **state)
{
    struct cluster *c = cluster_new(5);
    raft_id leader;
    raft_id id;
    (void)state;
    assert_true(cluster_run_until(c, 10 * ET, has_leader, NULL));
    assert_true(cluster_stabilize(c));
    leader = cluster_leader(c);
    assert_true(leader != 0);
    for (id = 1; id <= 5; id++) {
        assert_int_equal(raft_node_leader(cluster_raft(c, id)), leader);
        assert_int_equal(raft_node_term(cluster_raft(c, id)),
                         raft_node_term(cluster_raft(c, leader)));
        if (id != leader) {
            assert_int_equal(raft_node_role(cluster_raft(c, id)),
                             RAFT_FOLLOWER);
        }
    }
    /* The new leader's no-op (section 8) is committed everywhere. */
    assert_int_equal(
        raft_node_entry_at(cluster_raft(c, leader),
                           raft_node_commit_index(cluster_raft(c, leader)))
            ->type,
        RAFT_ENTRY_NOOP);
    cluster_check(c);
    cluster_free(c);
}

/* Reference: Raft paper section 5.2: heartbeats keep followers from
 * campaigning; the term stays put while the leader is healthy. */
static void test_heartbeats_keep_leader(void **state)
{
    struct cluster *c = elected3();
    raft_term t = raft_node_term(cluster_raft(c, 1));
    raft_id id;
    (void)state;
    cluster_run(c, 10 * ET);
    assert_int_equal(cluster_leader(c), 1);
    for (id = 1; id <= 3; id++) {
        assert_int_equal(raft_node_term(cluster_raft(c, id)), t);
    }
    cluster_check(c);
    cluster_free(c);
}

/* Reference: thesis section 9.6 (pre-vote): a partitioned node polls
 * without incrementing its term, so on rejoining it does not depose the
 * healthy leader. */
static void test_pre_vote_partitioned_node_keeps_term(void **state)
{
    struct cluster *c = elected3();
    raft_term t = raft_node_term(cluster_raft(c, 1));
    raft_id id;
    (void)state;
    cluster_isolate(c, 3);
    cluster_run(c, 10 * ET);
    assert_int_equal(raft_node_term(cluster_raft(c, 3)), t);
    assert_int_not_equal(raft_node_role(cluster_raft(c, 3)), RAFT_CANDIDATE);
    assert_int_not_equal(raft_node_role(cluster_raft(c, 3)), RAFT_LEADER);
    assert_int_equal(cluster_leader(c), 1);
    cluster_heal(c);
    assert_int_equal(cluster_propose(c, 1, "after-heal"), 0);
    assert_true(cluster_stabilize(c));
    cluster_run(c, 3 * ET);
    assert_int_equal(cluster_leader(c), 1);
    for (id = 1; id <= 3; id++) {
        assert_int_equal(raft_node_term(cluster_raft(c, id)), t);
        assert_true(cluster_applied_payload(c, id, "after-heal"));
    }
    assert_int_equal(raft_node_role(cluster_raft(c, 3)), RAFT_FOLLOWER);
    cluster_check(c);
    cluster_free(c);
}

/* Reference: thesis section 9.6 (the problem pre-vote solves): without
 * pre-vote a partitioned node keeps incrementing its term. A control for
 * test_pre_vote_partitioned_node_keeps_term. */
static void test_without_pre_vote_term_grows(void **state)
{
    struct raft_options o = opts(false, false);
    struct cluster *c = cluster_create(3, &o);
    raft_term t;
    (void)state;
    cluster_bootstrap_voters(c, 3, NULL);
    assert_true(cluster_elect(c, 1));
    assert_true(cluster_stabilize(c));
    t = raft_node_term(cluster_raft(c, 1));
    cluster_isolate(c, 3);
    cluster_run(c, 10 * ET);
    assert_true(raft_node_term(cluster_raft(c, 3)) > t + 1);
    cluster_check(c);
    cluster_free(c);
}

/* Reference: thesis section 6.2 (check-quorum): a leader that cannot reach
 * a majority for an election timeout steps down; the majority side elects
 * a new leader. */
static void test_check_quorum_isolated_leader_steps_down(void **state)
{
    struct cluster *c = elected3();
    raft_time isolated;
    raft_time stepped = 0;
    raft_id other;
    (void)state;
    cluster_run(c, 3 * HB);
    cluster_isolate(c, 1);
    isolated = c->now;
    while (c->now < isolated + 4 * ET && stepped == 0) {
        cluster_run(c, 10);
        if (raft_node_role(cluster_raft(c, 1)) != RAFT_LEADER) {
            stepped = c->now;
        }
    }
    assert_true(stepped != 0);
    assert_true(stepped <= isolated + 2 * ET + HB);
    assert_int_equal(raft_node_role(cluster_raft(c, 1)), RAFT_FOLLOWER);
    cluster_run(c, 3 * ET);
    other = cluster_leader(c);
    assert_true(other == 2 || other == 3);
    cluster_check(c);
    cluster_free(c);
}

/* Reference: thesis section 6.2, a control: without check-quorum an
 * isolated leader keeps believing it leads. */
static void test_without_check_quorum_leader_stays(void **state)
{
    struct raft_options o = opts(true, false);
    struct cluster *c = cluster_create(3, &o);
    (void)state;
    cluster_bootstrap_voters(c, 3, NULL);
    assert_true(cluster_elect(c, 1));
    assert_true(cluster_stabilize(c));
    cluster_isolate(c, 1);
    cluster_run(c, 5 * ET);
    assert_int_equal(raft_node_role(cluster_raft(c, 1)), RAFT_LEADER);
    cluster_check(c);
    cluster_free(c);
}

static bool granted(struct cluster *c, uint8_t type, raft_id from, raft_id to)
{
    size_t i;
    for (i = 0; i < c->queue_len; i++) {
        const struct raft_message *m = cluster_msg(c, i);
        if (m->type == type && m->from == from && m->to == to && !m->reject) {
            return true;
        }
    }
    return false;
}

/* Reference: thesis section 4.2.3 (disruptive servers, leader lease): a
 * follower that heard from its leader within the election timeout neither
 * updates its term nor grants a (pre-)vote, unless the campaign comes from a
 * leadership transfer (thesis 3.10). */
static void test_leader_lease_rejects_votes(void **state)
{
    struct cluster *c = elected3();
    struct raft_node *n2 = cluster_raft(c, 2);
    struct raft_node *n3 = cluster_raft(c, 3);
    struct raft_message m;
    raft_term t = raft_node_term(n2);
    raft_id vote = raft_node_vote(n2);
    (void)state;
    cluster_run(c, HB);

    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_PRE_VOTE;
    m.from = 3;
    m.to = 2;
    m.term = t + 1;
    m.index = raft_node_last_index(n3);
    m.log_term = raft_node_term_at(n3, m.index);
    assert_int_equal(cluster_inject(c, &m), 0);
    assert_false(granted(c, RAFT_MSG_PRE_VOTE_RESP, 2, 3));
    assert_int_equal(raft_node_term(n2), t);
    cluster_drop(c, 0, 0, 0);

    m.type = RAFT_MSG_VOTE;
    assert_int_equal(cluster_inject(c, &m), 0);
    assert_false(granted(c, RAFT_MSG_VOTE_RESP, 2, 3));
    assert_int_equal(raft_node_term(n2), t);
    assert_int_equal(raft_node_vote(n2), vote);
    assert_int_equal(raft_node_leader(n2), 1);
    cluster_drop(c, 0, 0, 0);

    m.transfer = true;
    assert_int_equal(cluster_inject(c, &m), 0);
    assert_true(granted(c, RAFT_MSG_VOTE_RESP, 2, 3));
    assert_int_equal(raft_node_term(n2), t + 1);
    assert_int_equal(raft_node_vote(n2), 3);
    assert_int_equal(cluster_node(c, 2)->hard_state.vote, 3);
    cluster_drop(c, 0, 0, 0);
    cluster_check(c);
    cluster_free(c);
}

/* Reference: thesis section 4.2.3: once the leader has been silent for an
 * election timeout, the lease is over and votes are granted again. */
static void test_lease_expires(void **state)
{
    struct cluster *c = elected3();
    struct raft_node *n3 = cluster_raft(c, 3);
    struct raft_message m;
    raft_term t = raft_node_term(n3);
    (void)state;
    cluster_crash(c, 1);
    cluster_tick(c, ET + 2 * HB); /* nothing is delivered */
    cluster_drop(c, 0, 0, 0);
    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_VOTE;
    m.from = 3;
    m.to = 2;
    m.term = t + 1;
    m.index = raft_node_last_index(n3);
    m.log_term = raft_node_term_at(n3, m.index);
    assert_int_equal(cluster_inject(c, &m), 0);
    assert_true(granted(c, RAFT_MSG_VOTE_RESP, 2, 3));
    assert_int_equal(raft_node_vote(cluster_raft(c, 2)), 3);
    cluster_check(c);
    cluster_free(c);
}

static struct cluster *prio_cluster(const uint8_t *prio, uint64_t seed)
{
    struct raft_options o;
    struct cluster *c;
    harness_options(&o, 1);
    o.priority_election = true;
    o.seed = seed * 7919;
    c = cluster_create(3, &o);
    cluster_bootstrap_voters(c, 3, prio);
    return c;
}

/* Reference: Zeebe's priority election (raft.h option priority_election,
 * RAFT_PRIORITY_MAX): in a freshly bootstrapped group with priorities 3, 2,
 * 1 the priority-3 member normally becomes the first leader (lower
 * priorities wait extra election timeouts). */
static void test_priority_election_first_leader(void **state)
{
    static const uint8_t prio[] = {3, 2, 1};
    uint64_t seed;
    (void)state;
    for (seed = 1; seed <= 5; seed++) {
        struct cluster *c = prio_cluster(prio, seed);
        assert_true(cluster_run_until(c, 10 * ET, has_leader, NULL));
        assert_int_equal(cluster_leader(c), 1);
        cluster_check(c);
        cluster_free(c);
    }
}

/* Reference: Zeebe's priority election: when the priority-3 leader is
 * stopped, the priority-2 member takes over before the priority-1 one. */
static void test_priority_election_failover(void **state)
{
    static const uint8_t prio[] = {3, 2, 1};
    uint64_t seed;
    (void)state;
    for (seed = 1; seed <= 5; seed++) {
        struct cluster *c = prio_cluster(prio, seed);
        assert_true(cluster_elect(c, 1));
        assert_true(cluster_stabilize(c));
        cluster_run(c, 3 * HB);
        cluster_crash(c, 1);
        assert_true(cluster_run_until(c, 10 * ET, has_leader, NULL));
        assert_int_equal(cluster_leader(c), 2);
        cluster_check(c);
        cluster_free(c);
    }
}

static void assert_no_campaign(struct cluster *c, raft_id id, raft_term t)
{
    assert_int_equal(raft_node_role(cluster_raft(c, id)), RAFT_FOLLOWER);
    assert_int_equal(raft_node_term(cluster_raft(c, id)), t);
    assert_int_equal(cluster_trace_count(c, RAFT_MSG_VOTE, id, 0), 0);
    assert_int_equal(cluster_trace_count(c, RAFT_MSG_PRE_VOTE, id, 0), 0);
}

/* Reference: raft.h RAFT_PRIORITY_MAX comment: with priority election the
 * target priority starts at the highest voter priority and decays by one per
 * election timeout, so priority 0 campaigns last: in a fresh group whose only
 * priority-1 member is down, the priority-0 members wait two full election
 * timeouts (one to lower the target, one to campaign), and the group still
 * elects one of them (no liveness trap). */
static void test_priority_zero_campaigns_last(void **state)
{
    static const uint8_t prio[] = {0, 0, 1};
    struct cluster *c = prio_cluster(prio, 1);
    raft_term t;
    raft_id leader;
    (void)state;
    t = raft_node_term(cluster_raft(c, 1));
    cluster_trace(c, true);
    cluster_crash(c, 3);
    cluster_run(c, 2 * ET - 1);
    assert_no_campaign(c, 1, t);
    assert_no_campaign(c, 2, t);
    assert_true(cluster_run_until(c, 10 * ET, has_leader, NULL));
    leader = cluster_leader(c);
    assert_true(leader == 1 || leader == 2);
    cluster_check(c);
    cluster_free(c);
}

/* Reference: as above, after the leader they followed is lost: the
 * priority-0 members wait two election timeouts from their last contact
 * with the leader, then one of them takes over. */
static void test_priority_zero_campaigns_last_after_leader_loss(void **state)
{
    static const uint8_t prio[] = {0, 0, 1};
    struct cluster *c = prio_cluster(prio, 2);
    raft_term t;
    raft_id leader;
    (void)state;
    assert_true(cluster_elect(c, 3));
    assert_true(cluster_stabilize(c));
    t = raft_node_term(cluster_raft(c, 3));
    cluster_trace(c, true);
    cluster_crash(c, 3);
    cluster_run(c, 2 * ET - HB - 1);
    assert_no_campaign(c, 1, t);
    assert_no_campaign(c, 2, t);
    assert_true(cluster_run_until(c, 10 * ET, has_leader, NULL));
    leader = cluster_leader(c);
    assert_true(leader == 1 || leader == 2);
    cluster_check(c);
    cluster_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_randomized_election_timeout),
        H_TEST(test_deadline_within_election_window),
        H_TEST(test_follower_campaigns_after_leader_loss),
        H_TEST(test_leader_elected_by_timeout),
        H_TEST(test_heartbeats_keep_leader),
        H_TEST(test_pre_vote_partitioned_node_keeps_term),
        H_TEST(test_without_pre_vote_term_grows),
        H_TEST(test_check_quorum_isolated_leader_steps_down),
        H_TEST(test_without_check_quorum_leader_stays),
        H_TEST(test_leader_lease_rejects_votes),
        H_TEST(test_lease_expires),
        H_TEST(test_priority_election_first_leader),
        H_TEST(test_priority_election_failover),
        H_TEST(test_priority_zero_campaigns_last),
        H_TEST(test_priority_zero_campaigns_last_after_leader_loss),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
