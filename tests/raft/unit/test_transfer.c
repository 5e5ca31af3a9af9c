/* test_transfer.c: leadership transfer (thesis section 3.10): the leader
 * catches the target up, sends TIMEOUT_NOW, the target campaigns at once
 * with transfer=true (bypassing leader leases), proposals are refused while
 * the transfer runs, and a transfer that cannot finish is abandoned. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define ET 1000

static struct cluster *elected3(void)
{
    struct cluster *c = cluster_new(3);
    assert_true(cluster_elect(c, 1));
    assert_true(cluster_stabilize(c));
    return c;
}

static bool leader_is_3(struct cluster *c, void *arg)
{
    (void)arg;
    return cluster_leader(c) == 3;
}

/* Reference: thesis 3.10 (leadership transfer): to a caught-up voter the
 * leader sends TimeoutNow at once; the target campaigns immediately (its
 * votes carry transfer=true so leases do not block it) and wins without
 * any timer running. */
static void test_transfer_to_caught_up_voter(void **state)
{
    struct cluster *c = elected3();
    raft_term t = raft_node_term(cluster_raft(c, 1));
    raft_time before = c->now;
    size_t i;
    size_t votes = 0;
    (void)state;
    cluster_trace(c, true);
    assert_int_equal(cluster_transfer(c, 1, 2), 0);
    assert_int_equal(cluster_count(c, RAFT_MSG_TIMEOUT_NOW, 1, 2), 1);
    assert_int_equal(
        cluster_msg(c, (size_t)cluster_find(c, RAFT_MSG_TIMEOUT_NOW, 1, 2, 0))
            ->term,
        t);
    cluster_deliver_all(c);
    assert_int_equal(c->now, before);
    assert_int_equal(raft_node_role(cluster_raft(c, 2)), RAFT_LEADER);
    assert_int_equal(raft_node_term(cluster_raft(c, 2)), t + 1);
    assert_int_equal(raft_node_role(cluster_raft(c, 1)), RAFT_FOLLOWER);
    for (i = 0; i < c->trace_len; i++) {
        const struct raft_message *m = &c->trace[i].m;
        if (m->type == RAFT_MSG_VOTE && m->from == 2) {
            assert_true(m->transfer);
            votes++;
        }
    }
    assert_true(votes >= 1);
    assert_true(cluster_stabilize(c));
    assert_int_equal(cluster_leader(c), 2);
    assert_int_equal(cluster_propose(c, 2, "under-2"), 0);
    assert_true(cluster_stabilize(c));
    assert_true(cluster_applied_payload(c, 1, "under-2"));
    cluster_check(c);
    cluster_free(c);
}

/* Reference: thesis 3.10 (the leader stops accepting client requests during
 * a transfer) and raft.h RAFT_E_BUSY for PROPOSE and a second TRANSFER. */
static void test_propose_during_transfer_busy(void **state)
{
    struct cluster *c = elected3();
    raft_index last = raft_node_last_index(cluster_raft(c, 1));
    (void)state;
    assert_int_equal(cluster_transfer(c, 1, 2), 0);
    assert_int_equal(cluster_propose(c, 1, "refused"), RAFT_E_BUSY);
    assert_int_equal(raft_node_last_index(cluster_raft(c, 1)), last);
    assert_int_equal(cluster_transfer(c, 1, 3), RAFT_E_BUSY);
    cluster_deliver_all(c);
    assert_int_equal(cluster_leader(c), 2);
    cluster_check(c);
    cluster_free(c);
}

/* Reference: thesis 3.10 step 1: the leader first brings a lagging target
 * up to date, and only then sends TimeoutNow. */
static void test_transfer_to_lagging_follower(void **state)
{
    struct cluster *c = elected3();
    char payload[16];
    size_t i;
    int k;
    (void)state;
    /* Node 3's link is slow: its appends wait in the queue. */
    cluster_hold(c, 3);
    for (k = 0; k < 5; k++) {
        snprintf(payload, sizeof(payload), "lag%d", k);
        assert_int_equal(cluster_propose(c, 1, payload), 0);
    }
    cluster_deliver_all(c);
    assert_true(cluster_applied_payload(c, 1, "lag4"));
    assert_false(cluster_applied_payload(c, 3, "lag4"));
    cluster_trace(c, true);
    assert_int_equal(cluster_transfer(c, 1, 3), 0);
    assert_int_equal(cluster_count(c, RAFT_MSG_TIMEOUT_NOW, 0, 0), 0);
    cluster_release(c, 3);
    if (!cluster_run_until(c, 3 * ET, leader_is_3, NULL)) {
        cluster_dump(c, "transfer to lagging node 3 did not happen");
        fail();
    }
    /* TimeoutNow went out only after node 3 acknowledged the last entry. */
    {
        bool acked = false;
        raft_index last = cluster_applied_index_of(c, 1, "lag4");
        for (i = 0; i < c->trace_len; i++) {
            const struct raft_message *m = &c->trace[i].m;
            if (m->type == RAFT_MSG_APPEND_RESP && m->from == 3 && !m->reject &&
                m->index >= last) {
                acked = true;
            }
            if (m->type == RAFT_MSG_TIMEOUT_NOW) {
                assert_true(acked);
            }
        }
        assert_true(cluster_trace_count(c, RAFT_MSG_TIMEOUT_NOW, 1, 3) >= 1);
    }
    assert_true(cluster_stabilize(c));
    assert_int_equal(cluster_leader(c), 3);
    assert_true(cluster_applied_payload(c, 3, "lag4"));
    cluster_check(c);
    cluster_free(c);
}

/* Reference: thesis 3.10: if the transfer does not complete within an
 * election timeout, the leader aborts it and accepts requests again. */
static void test_transfer_aborts_after_timeout(void **state)
{
    struct cluster *c = elected3();
    (void)state;
    cluster_isolate(c, 3);
    assert_int_equal(cluster_transfer(c, 1, 3), 0);
    assert_int_equal(cluster_propose(c, 1, "early"), RAFT_E_BUSY);
    cluster_run(c, 2 * ET + 100);
    assert_int_equal(cluster_leader(c), 1);
    assert_int_equal(cluster_propose(c, 1, "late"), 0);
    assert_true(cluster_stabilize(c));
    assert_true(cluster_applied_payload(c, 2, "late"));
    cluster_check(c);
    cluster_free(c);
}

/* Reference: raft.h RAFT_EVENT_TRANSFER (to a voter of the configuration,
 * not self) and RAFT_E_NOT_LEADER. */
static void test_transfer_invalid(void **state)
{
    struct cluster *c = elected3();
    (void)state;
    assert_int_equal(cluster_transfer(c, 1, 1), RAFT_E_INVALID);
    assert_int_equal(cluster_transfer(c, 1, 9), RAFT_E_INVALID);
    assert_int_equal(cluster_transfer(c, 1, 0), RAFT_E_INVALID);
    assert_int_equal(cluster_transfer(c, 2, 3), RAFT_E_NOT_LEADER);
    /* Nothing is running: proposals still work. */
    assert_int_equal(cluster_propose(c, 1, "still"), 0);
    assert_true(cluster_stabilize(c));
    cluster_check(c);
    cluster_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_transfer_to_caught_up_voter),
        H_TEST(test_propose_during_transfer_busy),
        H_TEST(test_transfer_to_lagging_follower),
        H_TEST(test_transfer_aborts_after_timeout),
        H_TEST(test_transfer_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
