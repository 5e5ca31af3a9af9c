/* test_snapshot.c: log compaction and InstallSnapshot (Raft paper section
 * 7): RAFT_EVENT_SNAPSHOT compacts the in-memory log keeping a trailing
 * window, a follower behind the compacted log receives the snapshot in
 * chunks of at most snapshot_chunk_bytes, installs it and catches up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

static struct cluster *with_entries(const struct raft_options *o, int count,
                                    const char *prefix)
{
    struct cluster *c = cluster_create(3, o);
    char payload[32];
    int i;
    cluster_bootstrap_voters(c, 3, NULL);
    assert_true(cluster_elect(c, 1));
    for (i = 0; i < count; i++) {
        snprintf(payload, sizeof(payload), "%s%02d", prefix, i);
        assert_int_equal(cluster_propose(c, 1, payload), 0);
    }
    assert_true(cluster_stabilize(c));
    return c;
}

/* Reference: Raft paper section 7 (each server compacts independently):
 * a snapshot at the applied index moves first_index up, keeping
 * trailing_entries entries below it, and records index, term and the
 * configuration in effect. */
static void test_snapshot_compacts_log(void **state)
{
    struct raft_options o;
    struct cluster *c;
    struct raft_node *n1;
    const struct raft_snapshot_meta *meta;
    raft_index a;
    raft_index first;
    raft_term term_a;
    (void)state;
    harness_options(&o, 1);
    o.trailing_entries = 5;
    c = with_entries(&o, 30, "s");
    n1 = cluster_raft(c, 1);
    a = cluster_node(c, 1)->applied;
    assert_int_equal(a, raft_node_commit_index(n1));
    assert_true(a > 30);
    term_a = raft_node_term_at(n1, a);
    assert_int_equal(raft_node_first_index(n1), 1);
    assert_int_equal(cluster_snapshot(c, 1), 0);
    first = raft_node_first_index(n1);
    assert_true(first >= a - 5 && first <= a - 4);
    assert_null(raft_node_entry_at(n1, first - 1));
    assert_non_null(raft_node_entry_at(n1, first));
    assert_non_null(raft_node_entry_at(n1, a));
    assert_int_equal(raft_node_last_index(n1), a);
    meta = raft_node_snapshot(n1);
    assert_non_null(meta);
    assert_int_equal(meta->index, a);
    assert_int_equal(meta->term, term_a);
    assert_int_equal(meta->config.count, 3);
    assert_int_equal(meta->config.old_count, 0);
    assert_non_null(raft_config_member(&meta->config, 3));
    assert_true(meta->config_index <= 1); /* the bootstrap entry */
    /* The cluster keeps working. */
    assert_int_equal(cluster_propose(c, 1, "after"), 0);
    assert_true(cluster_stabilize(c));
    assert_true(cluster_applied_payload(c, 3, "after"));
    cluster_check(c);
    cluster_free(c);
}

/* Reference: Raft paper section 7 and raft.h raft_node_first_index:
 * without trailing entries the log is empty after the snapshot and the
 * snapshot's index still answers with its term. */
static void test_snapshot_without_trailing_entries(void **state)
{
    struct raft_options o;
    struct cluster *c;
    struct raft_node *n2;
    raft_index a;
    raft_term term_a;
    (void)state;
    harness_options(&o, 1);
    o.trailing_entries = 0;
    c = with_entries(&o, 10, "t");
    n2 = cluster_raft(c, 2);
    a = cluster_node(c, 2)->applied;
    term_a = raft_node_term_at(n2, a);
    assert_int_equal(cluster_snapshot(c, 2), 0);
    assert_int_equal(raft_node_first_index(n2), a + 1);
    assert_int_equal(raft_node_last_index(n2), a);
    assert_int_equal(raft_node_term_at(n2, a), term_a);
    assert_int_equal(raft_node_term_at(n2, a - 1), 0);
    assert_null(raft_node_entry_at(n2, a));
    assert_int_equal(raft_node_snapshot(n2)->index, a);
    /* The follower keeps appending after compaction. */
    assert_int_equal(cluster_propose(c, 1, "after"), 0);
    assert_true(cluster_stabilize(c));
    assert_true(cluster_applied_payload(c, 2, "after"));
    assert_int_equal(raft_node_last_index(n2), a + 1);
    cluster_check(c);
    cluster_free(c);
}

static int snapshot_event(struct cluster *c, raft_id id, raft_index index,
                          const void *data, size_t len)
{
    struct raft_event e;
    memset(&e, 0, sizeof(e));
    e.type = RAFT_EVENT_SNAPSHOT;
    e.snapshot.index = index;
    e.snapshot.data.base = data;
    e.snapshot.data.len = len;
    return cluster_step(c, id, &e);
}

/* Reference: raft.h RAFT_E_STALE: a snapshot at an index not yet applied,
 * or at or below the current snapshot, is refused. */
static void test_snapshot_stale(void **state)
{
    struct cluster *c = with_entries(NULL, 5, "u");
    raft_index a = cluster_node(c, 1)->applied;
    raft_index first = raft_node_first_index(cluster_raft(c, 1));
    (void)state;
    assert_int_equal(snapshot_event(c, 1, a + 1, "x", 1), RAFT_E_STALE);
    assert_int_equal(snapshot_event(c, 1, a + 100, "x", 1), RAFT_E_STALE);
    assert_null(raft_node_snapshot(cluster_raft(c, 1)));
    assert_int_equal(raft_node_first_index(cluster_raft(c, 1)), first);
    assert_int_equal(snapshot_event(c, 1, a - 1, "x", 1), 0);
    assert_int_equal(raft_node_snapshot(cluster_raft(c, 1))->index, a - 1);
    assert_int_equal(snapshot_event(c, 1, a - 1, "x", 1), RAFT_E_STALE);
    assert_int_equal(snapshot_event(c, 1, a - 2, "x", 1), RAFT_E_STALE);
    assert_int_equal(snapshot_event(c, 1, a, "y", 1), 0);
    assert_int_equal(raft_node_snapshot(cluster_raft(c, 1))->index, a);
    cluster_free(c);
}

/* Reference: raft.h RAFT_E_TOO_BIG: snapshot data over snapshot_bytes_max
 * is refused. */
static void test_snapshot_too_big(void **state)
{
    struct raft_options o;
    struct cluster *c;
    raft_index a;
    (void)state;
    harness_options(&o, 1);
    o.snapshot_bytes_max = 10;
    c = with_entries(&o, 3, "v");
    a = cluster_node(c, 1)->applied;
    assert_int_equal(snapshot_event(c, 1, a, "0123456789a", 11),
                     RAFT_E_TOO_BIG);
    assert_null(raft_node_snapshot(cluster_raft(c, 1)));
    assert_int_equal(snapshot_event(c, 1, a, "0123456789", 10), 0);
    cluster_free(c);
}

/* Reference: Raft paper section 7 (InstallSnapshot RPC, Figure 13): a
 * follower behind the leader's compacted log receives the snapshot in
 * chunks (offset, data, done), installs it (RAFT_UPDATE_SNAPSHOT with the
 * leader's bytes) and then catches up with appends. */
static void test_snapshot_install_on_lagging_follower(void **state)
{
    struct raft_options o;
    struct cluster *c;
    struct h_node *h1;
    struct h_node *h3;
    raft_index a;
    size_t i;
    size_t chunks = 0;
    bool done_seen = false;
    bool flagged = false;
    char payload[16];
    int k;
    (void)state;
    harness_options(&o, 1);
    o.trailing_entries = 2;
    o.snapshot_chunk_bytes = 16;
    c = cluster_create(3, &o);
    cluster_bootstrap_voters(c, 3, NULL);
    assert_true(cluster_elect(c, 1));
    assert_true(cluster_stabilize(c));
    h1 = cluster_node(c, 1);
    h3 = cluster_node(c, 3);
    cluster_isolate(c, 3);
    for (k = 0; k < 20; k++) {
        snprintf(payload, sizeof(payload), "snap%02d", k);
        assert_int_equal(cluster_propose(c, 1, payload), 0);
    }
    assert_true(cluster_stabilize(c));
    a = h1->applied;
    assert_int_equal(cluster_snapshot(c, 1), 0);
    assert_true(h1->snapshot_len > 3 * 16);
    assert_true(raft_node_first_index(h1->raft) > h3->applied + 1);
    for (k = 0; k < 3; k++) {
        snprintf(payload, sizeof(payload), "post%d", k);
        assert_int_equal(cluster_propose(c, 1, payload), 0);
    }
    assert_true(cluster_stabilize(c));

    cluster_trace(c, true);
    cluster_heal(c);
    assert_true(cluster_stabilize(c));

    for (i = 0; i < c->trace_len; i++) {
        const struct raft_message *m = &c->trace[i].m;
        if (m->type != RAFT_MSG_SNAPSHOT) {
            continue;
        }
        assert_int_equal(m->from, 1);
        assert_int_equal(m->to, 3);
        chunks++;
        assert_true(m->data.len <= 16);
        assert_int_equal(m->total, h1->snapshot_len);
        assert_true(m->offset + m->data.len <= m->total);
        assert_memory_equal(m->data.base,
                            (const char *)h1->snapshot_data + m->offset,
                            m->data.len);
        assert_int_equal(m->snapshot.index, a);
        assert_int_equal(m->index, a);
        assert_int_equal(m->snapshot.term, m->log_term);
        if (m->done) {
            done_seen = true;
            assert_int_equal(m->offset + m->data.len, m->total);
        }
    }
    assert_true(chunks >= (h1->snapshot_len + 15) / 16);
    assert_true(done_seen);
    assert_true(cluster_trace_count(c, RAFT_MSG_SNAPSHOT_RESP, 3, 1) >= 1);

    assert_int_equal(h3->snapshots_installed, 1);
    for (i = 0; i < h3->update_len; i++) {
        if (h3->updates[i].flags & RAFT_UPDATE_SNAPSHOT) {
            flagged = true;
        }
    }
    assert_true(flagged);
    assert_int_equal(h3->snapshot.index, a);
    assert_int_equal(h3->snapshot_len, h1->snapshot_len);
    assert_memory_equal(h3->snapshot_data, h1->snapshot_data, h1->snapshot_len);
    assert_non_null(raft_node_snapshot(h3->raft));
    assert_int_equal(raft_node_snapshot(h3->raft)->index, a);
    /* Caught up with appends after the snapshot. */
    assert_int_equal(h3->applied, h1->applied);
    assert_int_equal(h3->sm_len, h1->sm_len);
    assert_memory_equal(h3->sm, h1->sm, h1->sm_len);
    assert_true(cluster_applied_payload(c, 3, "post2"));
    assert_false(cluster_applied_payload(c, 3, "snap00"));

    /* Restart from the installed snapshot. */
    cluster_crash(c, 3);
    assert_int_equal(cluster_restart(c, 3), 0);
    assert_int_equal(raft_node_snapshot(cluster_raft(c, 3))->index, a);
    assert_int_equal(cluster_propose(c, 1, "final"), 0);
    assert_true(cluster_stabilize(c));
    assert_true(cluster_applied_payload(c, 3, "final"));
    assert_memory_equal(h3->sm, h1->sm, h1->sm_len);
    cluster_check(c);
    cluster_free(c);
}

static bool drop_third_chunk(const struct raft_message *m, void *arg)
{
    int *seen = arg;
    if (m->type != RAFT_MSG_SNAPSHOT) {
        return false;
    }
    (*seen)++;
    return *seen == 3;
}

/* Reference: Raft paper section 7 (Figure 13: chunks carry offsets) and
 * raft.h SNAPSHOT_RESP (reject = restart at offset): a lost chunk makes
 * the transfer resume, and the installed snapshot is still byte-identical
 * to the leader's. */
static void test_snapshot_lost_chunk_recovers(void **state)
{
    struct raft_options o;
    struct cluster *c;
    struct h_node *h1;
    struct h_node *h3;
    char payload[16];
    int seen = 0;
    int k;
    (void)state;
    harness_options(&o, 1);
    o.trailing_entries = 0;
    o.snapshot_chunk_bytes = 8;
    c = cluster_create(3, &o);
    cluster_bootstrap_voters(c, 3, NULL);
    assert_true(cluster_elect(c, 1));
    assert_true(cluster_stabilize(c));
    h1 = cluster_node(c, 1);
    h3 = cluster_node(c, 3);
    cluster_isolate(c, 3);
    for (k = 0; k < 10; k++) {
        snprintf(payload, sizeof(payload), "chunk%02d", k);
        assert_int_equal(cluster_propose(c, 1, payload), 0);
    }
    assert_true(cluster_stabilize(c));
    assert_int_equal(cluster_snapshot(c, 1), 0);
    assert_true(h1->snapshot_len > 5 * 8);
    cluster_heal(c);
    cluster_set_filter(c, drop_third_chunk, &seen);
    assert_true(cluster_stabilize(c));
    assert_true(seen > 3);
    assert_int_equal(h3->snapshots_installed, 1);
    assert_int_equal(h3->snapshot_len, h1->snapshot_len);
    assert_memory_equal(h3->snapshot_data, h1->snapshot_data, h1->snapshot_len);
    assert_true(cluster_applied_payload(c, 1, "chunk09"));
    assert_int_equal(h3->sm_len, h1->sm_len);
    assert_memory_equal(h3->sm, h1->sm, h1->sm_len);
    cluster_check(c);
    cluster_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_snapshot_compacts_log),
        H_TEST(test_snapshot_without_trailing_entries),
        H_TEST(test_snapshot_stale),
        H_TEST(test_snapshot_too_big),
        H_TEST(test_snapshot_install_on_lagging_follower),
        H_TEST(test_snapshot_lost_chunk_recovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
