/* test_load.c: restart from persisted state (raft_node_load): the hard
 * state (Figure 2 "persistent state on all servers"), the log and the
 * snapshot are restored, and inconsistent input is rejected with
 * RAFT_E_CORRUPT. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

static struct raft_node *fresh(raft_id id)
{
    struct raft_options o;
    struct raft_node *n = NULL;
    harness_options(&o, id);
    assert_int_equal(raft_node_new(&o, &n), 0);
    return n;
}

static unsigned char cfg_buf[RAFT_CONFIG_ENCODED_MAX];

static struct raft_entry cfg_entry(raft_index index, raft_term term)
{
    struct raft_config c;
    struct raft_entry e;
    int len;
    h_config_voters(&c, 3);
    len = raft_config_encode(&c, cfg_buf, sizeof(cfg_buf));
    assert_true(len > 0);
    memset(&e, 0, sizeof(e));
    e.index = index;
    e.term = term;
    e.type = RAFT_ENTRY_CONFIG;
    e.buf.base = cfg_buf;
    e.buf.len = (size_t)len;
    return e;
}

static struct raft_entry norm(raft_index index, raft_term term)
{
    struct raft_entry e;
    memset(&e, 0, sizeof(e));
    e.index = index;
    e.term = term;
    e.type = RAFT_ENTRY_NORMAL;
    e.buf.base = "n";
    e.buf.len = 1;
    return e;
}

static struct raft_hard_state hs(raft_term term, raft_id vote)
{
    struct raft_hard_state h;
    memset(&h, 0, sizeof(h));
    h.term = term;
    h.vote = vote;
    return h;
}

static const struct raft_buf no_data = {NULL, 0};

/* Reference: Raft paper Figure 2 (persistent state: currentTerm, votedFor,
 * log[]): a restarted node comes back with its term, vote and log. */
static void test_restart_restores_state(void **state)
{
    struct cluster *c = cluster_new(3);
    struct raft_node *n2;
    raft_term term;
    raft_id vote;
    raft_index last;
    raft_term terms[64];
    char payload[16];
    raft_index i;
    int k;
    (void)state;
    assert_true(cluster_elect(c, 1));
    for (k = 0; k < 10; k++) {
        snprintf(payload, sizeof(payload), "r%d", k);
        assert_int_equal(cluster_propose(c, 1, payload), 0);
    }
    assert_true(cluster_stabilize(c));
    n2 = cluster_raft(c, 2);
    term = raft_node_term(n2);
    vote = raft_node_vote(n2);
    last = raft_node_last_index(n2);
    assert_true(last < 64);
    for (i = 1; i <= last; i++) {
        terms[i] = raft_node_term_at(n2, i);
    }
    cluster_crash(c, 2);
    assert_int_equal(cluster_restart(c, 2), 0);
    n2 = cluster_raft(c, 2);
    assert_int_equal(raft_node_role(n2), RAFT_FOLLOWER);
    assert_int_equal(raft_node_term(n2), term);
    assert_int_equal(raft_node_vote(n2), vote);
    assert_int_equal(raft_node_last_index(n2), last);
    assert_int_equal(raft_node_persisted_index(n2), last);
    for (i = 1; i <= last; i++) {
        assert_int_equal(raft_node_term_at(n2, i), terms[i]);
    }
    assert_non_null(raft_node_entry_at(n2, last));
    assert_int_equal(raft_node_config(n2)->count, 3);
    assert_int_equal(cluster_propose(c, 1, "after-restart"), 0);
    assert_true(cluster_stabilize(c));
    assert_true(cluster_applied_payload(c, 2, "after-restart"));
    assert_int_equal(cluster_applied_index_of(c, 2, "r9"),
                     cluster_applied_index_of(c, 1, "r9"));
    cluster_check(c);
    cluster_free(c);
}

/* Reference: Raft paper section 5.4 (committed entries survive) and Figure
 * 2: restarting every server loses nothing that was committed. */
static void test_restart_whole_cluster(void **state)
{
    struct cluster *c = cluster_new(3);
    raft_index at;
    raft_id id;
    (void)state;
    assert_true(cluster_elect(c, 1));
    assert_int_equal(cluster_propose(c, 1, "durable"), 0);
    assert_true(cluster_stabilize(c));
    at = cluster_applied_index_of(c, 1, "durable");
    for (id = 1; id <= 3; id++) {
        cluster_crash(c, id);
    }
    cluster_drop(c, 0, 0, 0);
    for (id = 1; id <= 3; id++) {
        assert_int_equal(cluster_restart(c, id), 0);
    }
    assert_true(cluster_elect(c, 2));
    assert_int_equal(cluster_propose(c, 2, "again"), 0);
    assert_true(cluster_stabilize(c));
    for (id = 1; id <= 3; id++) {
        assert_true(cluster_applied_payload(c, id, "again"));
        assert_true(raft_node_term_at(cluster_raft(c, id), at) > 0);
    }
    cluster_check(c);
    cluster_free(c);
}

/* Reference: Raft paper section 7 and raft.h raft_node_load: the snapshot
 * restores index, term and configuration; entries continue after it. */
static void test_load_with_snapshot(void **state)
{
    struct raft_node *n = fresh(1);
    struct raft_snapshot_meta meta;
    struct raft_hard_state h = hs(3, 2);
    struct raft_entry es[3];
    struct raft_buf data = {"state", 5};
    const struct raft_snapshot_meta *got;
    (void)state;
    memset(&meta, 0, sizeof(meta));
    meta.index = 10;
    meta.term = 2;
    h_config_voters(&meta.config, 3);
    es[0] = norm(11, 2);
    es[1] = norm(12, 3);
    es[2] = norm(13, 3);
    assert_int_equal(raft_node_load(n, &h, &meta, data, es, 3, 0), 0);
    assert_int_equal(raft_node_term(n), 3);
    assert_int_equal(raft_node_vote(n), 2);
    assert_int_equal(raft_node_first_index(n), 11);
    assert_int_equal(raft_node_last_index(n), 13);
    assert_int_equal(raft_node_term_at(n, 10), 2);
    assert_int_equal(raft_node_term_at(n, 12), 3);
    assert_int_equal(raft_node_term_at(n, 9), 0);
    assert_null(raft_node_entry_at(n, 10));
    assert_non_null(raft_node_entry_at(n, 11));
    got = raft_node_snapshot(n);
    assert_non_null(got);
    assert_int_equal(got->index, 10);
    assert_int_equal(got->term, 2);
    assert_int_equal(raft_node_config(n)->count, 3);
    assert_true(raft_node_commit_index(n) >= 10);
    assert_int_equal(raft_node_applied_index(n), 10);
    /* Loading twice is invalid. */
    assert_int_equal(raft_node_load(n, &h, &meta, data, es, 3, 0),
                     RAFT_E_INVALID);
    raft_node_free(n);
}

/* Reference: raft.h raft_node_load: a commit lower bound is honoured. */
static void test_load_commit_lower_bound(void **state)
{
    struct raft_node *n = fresh(1);
    struct raft_hard_state h = hs(2, 0);
    struct raft_entry es[4];
    (void)state;
    es[0] = cfg_entry(1, 1);
    es[1] = norm(2, 1);
    es[2] = norm(3, 2);
    es[3] = norm(4, 2);
    assert_int_equal(raft_node_load(n, &h, NULL, no_data, es, 4, 3), 0);
    assert_true(raft_node_commit_index(n) >= 3);
    assert_int_equal(raft_node_last_index(n), 4);
    assert_int_equal(raft_node_first_index(n), 1);
    raft_node_free(n);
}

/* Reference: raft.h raft_node_load: non-contiguous entries are corrupt. */
static void test_load_rejects_non_contiguous(void **state)
{
    struct raft_node *n = fresh(1);
    struct raft_hard_state h = hs(2, 0);
    struct raft_entry es[3];
    (void)state;
    es[0] = cfg_entry(1, 1);
    es[1] = norm(2, 1);
    es[2] = norm(4, 2);
    assert_int_equal(raft_node_load(n, &h, NULL, no_data, es, 3, 0),
                     RAFT_E_CORRUPT);
    raft_node_free(n);
    /* Not starting at 1 without a snapshot. */
    n = fresh(1);
    es[0] = cfg_entry(2, 1);
    es[1] = norm(3, 1);
    assert_int_equal(raft_node_load(n, &h, NULL, no_data, es, 2, 0),
                     RAFT_E_CORRUPT);
    raft_node_free(n);
}

/* Reference: raft.h raft_node_load: entries must start right after the
 * snapshot. */
static void test_load_rejects_gap_after_snapshot(void **state)
{
    struct raft_node *n = fresh(1);
    struct raft_snapshot_meta meta;
    struct raft_hard_state h = hs(3, 0);
    struct raft_entry es[2];
    struct raft_buf data = {"s", 1};
    (void)state;
    memset(&meta, 0, sizeof(meta));
    meta.index = 10;
    meta.term = 2;
    h_config_voters(&meta.config, 3);
    es[0] = norm(12, 2);
    es[1] = norm(13, 3);
    assert_int_equal(raft_node_load(n, &h, &meta, data, es, 2, 0),
                     RAFT_E_CORRUPT);
    raft_node_free(n);
}

/* Reference: Raft paper section 5.3 (terms in a log never decrease) and
 * raft.h raft_node_load: terms going backwards are corrupt. */
static void test_load_rejects_terms_backwards(void **state)
{
    struct raft_node *n = fresh(1);
    struct raft_hard_state h = hs(3, 0);
    struct raft_entry es[3];
    (void)state;
    es[0] = cfg_entry(1, 1);
    es[1] = norm(2, 3);
    es[2] = norm(3, 2);
    assert_int_equal(raft_node_load(n, &h, NULL, no_data, es, 3, 0),
                     RAFT_E_CORRUPT);
    raft_node_free(n);
}

/* Reference: raft.h raft_node_load: an undecodable configuration entry is
 * corrupt. */
static void test_load_rejects_bad_config_entry(void **state)
{
    struct raft_node *n = fresh(1);
    struct raft_hard_state h = hs(1, 0);
    struct raft_entry es[1];
    (void)state;
    es[0] = cfg_entry(1, 1);
    es[0].buf.base = "garbage!";
    es[0].buf.len = 8;
    assert_int_equal(raft_node_load(n, &h, NULL, no_data, es, 1, 0),
                     RAFT_E_CORRUPT);
    raft_node_free(n);
}

/* Reference: raft.h raft_node_load: a vote without a term is
 * inconsistent. */
static void test_load_rejects_vote_without_term(void **state)
{
    struct raft_node *n = fresh(1);
    struct raft_hard_state h = hs(0, 2);
    struct raft_entry es[1];
    (void)state;
    es[0] = cfg_entry(1, 1);
    assert_int_equal(raft_node_load(n, &h, NULL, no_data, es, 1, 0),
                     RAFT_E_CORRUPT);
    raft_node_free(n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_restart_restores_state),
        H_TEST(test_restart_whole_cluster),
        H_TEST(test_load_with_snapshot),
        H_TEST(test_load_commit_lower_bound),
        H_TEST(test_load_rejects_non_contiguous),
        H_TEST(test_load_rejects_gap_after_snapshot),
        H_TEST(test_load_rejects_terms_backwards),
        H_TEST(test_load_rejects_bad_config_entry),
        H_TEST(test_load_rejects_vote_without_term),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
