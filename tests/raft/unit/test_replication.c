/* test_replication.c: log replication (Raft paper section 5.3): pipelining
 * and batching of AppendEntries, fast backtracking of a conflicting
 * follower, asynchronous persistence (raft.h update contract step 3),
 * leader backpressure and proposal errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define HB 100

static struct cluster *elected(size_t n, const struct raft_options *o)
{
    struct cluster *c = cluster_create(n, o);
    cluster_bootstrap_voters(c, n, NULL);
    assert_true(cluster_elect(c, 1));
    assert_true(cluster_stabilize(c));
    return c;
}

static int propose_many(struct cluster *c, raft_id id, size_t count, size_t len,
                        raft_index *first)
{
    struct raft_buf bufs[64];
    static char data[64][256];
    struct raft_event e;
    size_t i;
    assert_true(count <= 64 && len <= 256);
    for (i = 0; i < count; i++) {
        memset(data[i], 'a' + (int)(i % 26), len);
        bufs[i].base = data[i];
        bufs[i].len = len;
    }
    memset(&e, 0, sizeof(e));
    e.type = RAFT_EVENT_PROPOSE;
    e.propose.bufs = bufs;
    e.propose.count = count;
    e.propose.first_index = first;
    return cluster_step(c, id, &e);
}

static size_t append_bytes(const struct raft_message *m)
{
    size_t i;
    size_t sum = 0;
    for (i = 0; i < m->entry_count; i++) {
        sum += m->entries[i].buf.len;
    }
    return sum;
}

/* Reference: Raft paper section 5.3 and thesis 10.2.1 (pipelining): the
 * leader sends several AppendEntries to a follower without waiting for
 * replies, at most inflight_max at a time. */
static void test_pipelining_bounded_by_inflight(void **state)
{
    struct raft_options o;
    struct cluster *c;
    char payload[16];
    size_t with_entries = 0;
    size_t i;
    int k;
    raft_id id;
    (void)state;
    harness_options(&o, 1);
    o.inflight_max = 4;
    o.batch_entries_max = 1;
    c = elected(3, &o);
    for (k = 0; k < 10; k++) {
        snprintf(payload, sizeof(payload), "p%d", k);
        assert_int_equal(cluster_propose(c, 1, payload), 0);
    }
    for (i = 0; i < c->queue_len; i++) {
        const struct raft_message *m = cluster_msg(c, i);
        if (m->type == RAFT_MSG_APPEND && m->from == 1 && m->to == 2 &&
            m->entry_count > 0) {
            with_entries++;
            assert_int_equal(m->entry_count, 1);
        }
    }
    assert_true(with_entries >= 2);
    assert_true(with_entries <= 4);
    assert_true(cluster_stabilize(c));
    for (id = 1; id <= 3; id++) {
        assert_true(cluster_applied_payload(c, id, "p9"));
    }
    cluster_check(c);
    cluster_free(c);
}

/* Reference: thesis 10.2.1 (batching): an AppendEntries carries at most
 * batch_entries_max entries, and several entries when they are available. */
static void test_batching_entries_max(void **state)
{
    struct raft_options o;
    struct cluster *c;
    size_t i;
    size_t max_seen = 0;
    (void)state;
    harness_options(&o, 1);
    o.batch_entries_max = 3;
    c = elected(3, &o);
    cluster_trace(c, true);
    assert_int_equal(propose_many(c, 1, 10, 1, NULL), 0);
    assert_true(cluster_stabilize(c));
    for (i = 0; i < c->trace_len; i++) {
        const struct raft_message *m = &c->trace[i].m;
        if (m->type == RAFT_MSG_APPEND) {
            assert_true(m->entry_count <= 3);
            if (m->entry_count > max_seen) {
                max_seen = m->entry_count;
            }
        }
    }
    assert_int_equal(max_seen, 3);
    assert_int_equal(cluster_node(c, 2)->applied,
                     raft_node_commit_index(cluster_raft(c, 1)));
    cluster_check(c);
    cluster_free(c);
}

/* Reference: thesis 10.2.1 (batching): the payload bytes of an
 * AppendEntries stay within batch_bytes_max. */
static void test_batching_bytes_max(void **state)
{
    struct raft_options o;
    struct cluster *c;
    size_t i;
    size_t max_seen = 0;
    (void)state;
    harness_options(&o, 1);
    o.batch_bytes_max = 100;
    c = elected(3, &o);
    cluster_trace(c, true);
    assert_int_equal(propose_many(c, 1, 10, 40, NULL), 0);
    assert_true(cluster_stabilize(c));
    for (i = 0; i < c->trace_len; i++) {
        const struct raft_message *m = &c->trace[i].m;
        if (m->type == RAFT_MSG_APPEND) {
            assert_true(append_bytes(m) <= 100);
            if (m->entry_count > max_seen) {
                max_seen = m->entry_count;
            }
        }
    }
    assert_int_equal(max_seen, 2);
    assert_int_equal(cluster_node(c, 3)->applied,
                     raft_node_commit_index(cluster_raft(c, 1)));
    cluster_check(c);
    cluster_free(c);
}

static size_t rejects_from(const struct cluster *c, raft_id from)
{
    size_t i;
    size_t n = 0;
    for (i = 0; i < c->trace_len; i++) {
        const struct raft_message *m = &c->trace[i].m;
        if (m->type == RAFT_MSG_APPEND_RESP && m->from == from && m->reject) {
            n++;
        }
    }
    return n;
}

/* Reference: Raft paper section 5.3 (the optimization of "bypassing all of
 * the conflicting entries in that term"), etcd findConflictByTerm: a
 * follower with a 100-entry conflicting tail converges in a few round
 * trips, not one per entry. */
static void test_fast_backtracking_conflicting_tail(void **state)
{
    raft_term good[101];
    raft_term bad[101];
    struct raft_config config;
    struct cluster *c;
    size_t i;
    (void)state;
    good[0] = bad[0] = 1;
    for (i = 1; i < 101; i++) {
        good[i] = 3;
        bad[i] = 2;
    }
    c = cluster_create(3, NULL);
    h_config_voters(&config, 3);
    assert_int_equal(cluster_load_log(c, 1, 3, 0, &config, good, 101), 0);
    assert_int_equal(cluster_load_log(c, 2, 3, 0, &config, good, 101), 0);
    assert_int_equal(cluster_load_log(c, 3, 2, 0, &config, bad, 101), 0);
    cluster_trace(c, true);
    assert_true(cluster_elect(c, 1));
    assert_true(cluster_stabilize(c));
    assert_int_equal(raft_node_term_at(cluster_raft(c, 3), 50), 3);
    assert_int_equal(raft_node_term_at(cluster_raft(c, 3), 101), 3);
    assert_int_equal(raft_node_last_index(cluster_raft(c, 3)),
                     raft_node_last_index(cluster_raft(c, 1)));
    assert_true(rejects_from(c, 3) >= 1);
    assert_true(rejects_from(c, 3) <= 3);
    assert_true(cluster_trace_count(c, RAFT_MSG_APPEND, 1, 3) <= 12);
    cluster_check(c);
    cluster_free(c);
}

/* Reference: Raft paper section 5.3 (nextIndex decrement) with the
 * follower's hint: a follower whose log is far shorter than the leader's
 * answers with its last index and is caught up after one rejection. */
static void test_fast_backtracking_short_follower(void **state)
{
    raft_term good[60];
    raft_term shortlog[1] = {1};
    struct raft_config config;
    struct cluster *c;
    size_t i;
    (void)state;
    for (i = 0; i < 60; i++) {
        good[i] = i == 0 ? 1 : 2;
    }
    c = cluster_create(3, NULL);
    h_config_voters(&config, 3);
    assert_int_equal(cluster_load_log(c, 1, 2, 0, &config, good, 60), 0);
    assert_int_equal(cluster_load_log(c, 2, 2, 0, &config, good, 60), 0);
    assert_int_equal(cluster_load_log(c, 3, 2, 0, &config, shortlog, 1), 0);
    cluster_trace(c, true);
    assert_true(cluster_elect(c, 1));
    assert_true(cluster_stabilize(c));
    assert_int_equal(raft_node_last_index(cluster_raft(c, 3)),
                     raft_node_last_index(cluster_raft(c, 1)));
    assert_true(rejects_from(c, 3) <= 2);
    assert_true(cluster_trace_count(c, RAFT_MSG_APPEND, 1, 3) <= 10);
    cluster_check(c);
    cluster_free(c);
}

static bool acked_from(const struct cluster *c, raft_id from, raft_index idx)
{
    size_t i;
    for (i = 0; i < c->queue_len; i++) {
        const struct raft_message *m = cluster_msg(c, i);
        if (m->type == RAFT_MSG_APPEND_RESP && m->from == from && !m->reject &&
            m->index >= idx) {
            return true;
        }
    }
    return false;
}

/* Reference: raft.h update contract step 3: a follower's append
 * acknowledgement is held back until RAFT_EVENT_PERSISTED says the entries
 * are durable (Figure 2: respond after storing the entries). */
static void test_async_follower_ack_waits_for_persist(void **state)
{
    struct cluster *c = elected(3, NULL);
    raft_index idx = 0;
    struct h_node *h2 = cluster_node(c, 2);
    (void)state;
    h2->hold_persist = true;
    assert_int_equal(cluster_propose_buf(c, 1, "x", 1, &idx), 0);
    assert_true(idx > 0);
    assert_true(cluster_deliver(c, RAFT_MSG_APPEND, 1, 2) >= 1);
    /* Written, not acknowledged. */
    assert_true(h2->log_len > 0);
    assert_int_equal(h2->log[h2->log_len - 1].index, idx);
    assert_true(h2->pending_len > 0);
    assert_false(acked_from(c, 2, idx));
    assert_true(raft_node_persisted_index(cluster_raft(c, 2)) < idx);
    cluster_persist(c, 2);
    assert_true(acked_from(c, 2, idx));
    assert_int_equal(raft_node_persisted_index(cluster_raft(c, 2)), idx);
    h2->hold_persist = false;
    assert_true(cluster_stabilize(c));
    cluster_check(c);
    cluster_free(c);
}

/* Reference: raft.h update contract step 3 and thesis 10.2.1 (the leader
 * writes to its disk in parallel): the leader counts itself towards the
 * commit quorum only for persisted entries. */
static void test_leader_counts_itself_only_when_persisted(void **state)
{
    struct cluster *c = elected(3, NULL);
    struct h_node *h1 = cluster_node(c, 1);
    raft_index idx = 0;
    raft_index before;
    (void)state;
    before = raft_node_commit_index(h1->raft);
    cluster_hold(c, 3); /* node 3 is slow: only node 2 answers */
    h1->hold_persist = true;
    assert_int_equal(cluster_propose_buf(c, 1, "y", 1, &idx), 0);
    cluster_deliver_all(c);
    /* Node 2 acknowledged, but the leader's own copy is not durable. */
    assert_int_equal(raft_node_match_index(h1->raft, 2), idx);
    assert_true(raft_node_match_index(h1->raft, 1) < idx);
    assert_int_equal(raft_node_commit_index(h1->raft), before);
    assert_false(cluster_applied_payload(c, 1, "y"));
    cluster_persist(c, 1);
    assert_int_equal(raft_node_match_index(h1->raft, 1), idx);
    assert_int_equal(raft_node_commit_index(h1->raft), idx);
    assert_true(cluster_applied_payload(c, 1, "y"));
    h1->hold_persist = false;
    cluster_heal(c);
    assert_true(cluster_stabilize(c));
    cluster_check(c);
    cluster_free(c);
}

/* Reference: raft.h update contract step 5: committed entries are listed
 * only when committed AND locally persisted. Node 2 learns that "z" is
 * committed (from the append carrying the next entry) before its own copy
 * of "z" is durable. */
static void test_committed_listed_only_after_local_persist(void **state)
{
    struct cluster *c = elected(3, NULL);
    struct h_node *h2 = cluster_node(c, 2);
    raft_index idx = 0;
    (void)state;
    h2->hold_persist = true;
    assert_int_equal(cluster_propose_buf(c, 1, "z", 1, &idx), 0);
    /* Node 3 acknowledges: "z" commits on the leader. */
    assert_int_equal(cluster_deliver(c, RAFT_MSG_APPEND, 1, 3), 1);
    assert_int_equal(cluster_deliver(c, RAFT_MSG_APPEND_RESP, 3, 1), 1);
    assert_int_equal(raft_node_commit_index(cluster_raft(c, 1)), idx);
    /* The next append tells node 2 that commit = idx. */
    assert_int_equal(cluster_propose(c, 1, "z2"), 0);
    assert_true(cluster_deliver(c, RAFT_MSG_APPEND, 1, 2) >= 2);
    assert_int_equal(raft_node_last_index(h2->raft), idx + 1);
    assert_true(raft_node_commit_index(h2->raft) >= idx);
    assert_true(h2->applied < idx);
    assert_true(raft_node_applied_index(h2->raft) < idx);
    assert_false(cluster_applied_payload(c, 2, "z"));
    cluster_persist(c, 2);
    assert_true(h2->applied >= idx);
    assert_true(cluster_applied_payload(c, 2, "z"));
    h2->hold_persist = false;
    assert_true(cluster_stabilize(c));
    assert_true(cluster_applied_payload(c, 2, "z2"));
    cluster_check(c);
    cluster_free(c);
}

/* Reference: raft.h RAFT_E_BUSY (uncommitted_bytes_max), etcd's
 * MaxUncommittedEntriesSize: a leader refuses proposals while too many
 * payload bytes are appended but not committed. */
static void test_backpressure_busy(void **state)
{
    struct raft_options o;
    struct cluster *c;
    char payload[61];
    int attempt;
    int rv = 0;
    size_t accepted = 0;
    raft_index last = 0;
    (void)state;
    harness_options(&o, 1);
    o.uncommitted_bytes_max = 100;
    c = elected(3, &o);
    memset(payload, 'b', 60);
    payload[60] = '\0';
    /* Slow followers: nothing commits until they are released. */
    cluster_hold(c, 2);
    cluster_hold(c, 3);
    for (attempt = 0; attempt < 5; attempt++) {
        last = raft_node_last_index(cluster_raft(c, 1));
        rv = cluster_propose(c, 1, payload);
        if (rv != 0) {
            break;
        }
        accepted += 60;
    }
    assert_int_equal(rv, RAFT_E_BUSY);
    assert_true(accepted >= 60);
    assert_true(accepted <= 100 + 60);
    assert_int_equal(raft_node_last_index(cluster_raft(c, 1)), last);
    cluster_heal(c);
    assert_true(cluster_stabilize(c));
    assert_int_equal(cluster_propose(c, 1, payload), 0);
    assert_true(cluster_stabilize(c));
    cluster_check(c);
    cluster_free(c);
}

/* Reference: raft.h RAFT_E_TOO_BIG: a proposal with an entry over
 * entry_bytes_max is refused and appends nothing. */
static void test_entry_too_big(void **state)
{
    struct raft_options o;
    struct cluster *c;
    char big[65];
    struct raft_buf bufs[2];
    struct raft_event e;
    raft_index last;
    (void)state;
    harness_options(&o, 1);
    o.entry_bytes_max = 64;
    c = elected(3, &o);
    memset(big, 'c', sizeof(big));
    last = raft_node_last_index(cluster_raft(c, 1));
    assert_int_equal(cluster_propose_buf(c, 1, big, 65, NULL), RAFT_E_TOO_BIG);
    assert_int_equal(raft_node_last_index(cluster_raft(c, 1)), last);
    bufs[0].base = big;
    bufs[0].len = 10;
    bufs[1].base = big;
    bufs[1].len = 65;
    memset(&e, 0, sizeof(e));
    e.type = RAFT_EVENT_PROPOSE;
    e.propose.bufs = bufs;
    e.propose.count = 2;
    assert_int_equal(cluster_step(c, 1, &e), RAFT_E_TOO_BIG);
    assert_int_equal(raft_node_last_index(cluster_raft(c, 1)), last);
    assert_int_equal(cluster_propose_buf(c, 1, big, 64, NULL), 0);
    assert_int_equal(raft_node_last_index(cluster_raft(c, 1)), last + 1);
    assert_true(cluster_stabilize(c));
    cluster_check(c);
    cluster_free(c);
}

/* Reference: Raft paper section 8 (clients talk to the leader): proposals
 * on a follower or a candidate fail with RAFT_E_NOT_LEADER. */
static void test_propose_not_leader(void **state)
{
    struct cluster *c = elected(3, NULL);
    raft_index last = raft_node_last_index(cluster_raft(c, 2));
    (void)state;
    assert_int_equal(cluster_propose(c, 2, "nope"), RAFT_E_NOT_LEADER);
    assert_int_equal(cluster_propose(c, 3, "nope"), RAFT_E_NOT_LEADER);
    assert_int_equal(raft_node_last_index(cluster_raft(c, 2)), last);
    cluster_crash(c, 1);
    cluster_drop(c, 0, 0, 0);
    cluster_isolate(c, 2);
    cluster_tick(c, 3000);
    assert_int_not_equal(raft_node_role(cluster_raft(c, 2)), RAFT_LEADER);
    assert_int_equal(cluster_propose(c, 2, "nope"), RAFT_E_NOT_LEADER);
    cluster_free(c);
}

/* Reference: raft.h RAFT_EVENT_PROPOSE first_index: proposals get
 * consecutive indexes right after the leader's last entry, in the leader's
 * current term. */
static void test_propose_first_index(void **state)
{
    struct cluster *c = elected(3, NULL);
    struct raft_node *n1 = cluster_raft(c, 1);
    raft_index last = raft_node_last_index(n1);
    raft_index first = 0;
    size_t i;
    (void)state;
    assert_int_equal(propose_many(c, 1, 5, 3, &first), 0);
    assert_int_equal(first, last + 1);
    assert_int_equal(raft_node_last_index(n1), last + 5);
    for (i = 0; i < 5; i++) {
        const struct raft_entry *e = raft_node_entry_at(n1, first + i);
        assert_non_null(e);
        assert_int_equal(e->type, RAFT_ENTRY_NORMAL);
        assert_int_equal(e->term, raft_node_term(n1));
        assert_int_equal(e->buf.len, 3);
    }
    assert_true(cluster_stabilize(c));
    assert_int_equal(cluster_node(c, 2)->applied, last + 5);
    cluster_check(c);
    cluster_free(c);
}

/* Reference: Raft paper section 5.3: a follower that missed entries is
 * brought up to date by the leader, and the heartbeat carries the commit
 * index to it. */
static void test_lagging_follower_catches_up(void **state)
{
    struct cluster *c = elected(3, NULL);
    char payload[16];
    int i;
    (void)state;
    cluster_isolate(c, 3);
    for (i = 0; i < 50; i++) {
        snprintf(payload, sizeof(payload), "lag%d", i);
        assert_int_equal(cluster_propose(c, 1, payload), 0);
    }
    assert_true(cluster_stabilize(c));
    assert_false(cluster_applied_payload(c, 3, "lag0"));
    assert_true(cluster_applied_payload(c, 2, "lag49"));
    cluster_heal(c);
    assert_true(cluster_stabilize(c));
    assert_true(cluster_applied_payload(c, 3, "lag49"));
    assert_int_equal(cluster_applied_index_of(c, 3, "lag0"),
                     cluster_applied_index_of(c, 1, "lag0"));
    cluster_check(c);
    cluster_free(c);
}

/* Reference: Raft paper section 5.3: "if network packets are lost, the
 * leader retries AppendEntries RPCs indefinitely until all followers
 * eventually store all log entries" -- even when no further proposal
 * follows the lost append. */
static void test_lost_append_is_retransmitted(void **state)
{
    struct cluster *c = elected(3, NULL);
    raft_index idx = 0;
    raft_id id;
    (void)state;
    assert_int_equal(cluster_propose_buf(c, 1, "lost", 4, &idx), 0);
    assert_int_equal(cluster_drop(c, RAFT_MSG_APPEND, 1, 0), 2);
    cluster_run(c, 10 * HB);
    assert_int_equal(raft_node_commit_index(cluster_raft(c, 1)), idx);
    for (id = 1; id <= 3; id++) {
        assert_true(cluster_applied_payload(c, id, "lost"));
    }
    cluster_check(c);
    cluster_free(c);
}

/* Reference: Raft paper section 5.3, as above, with a pipeline: of three
 * appends in flight the middle one is lost. */
static void test_lost_middle_append_is_retransmitted(void **state)
{
    struct cluster *c = elected(3, NULL);
    long i;
    raft_id id;
    (void)state;
    assert_int_equal(cluster_propose(c, 1, "m1"), 0);
    assert_int_equal(cluster_propose(c, 1, "m2"), 0);
    assert_int_equal(cluster_propose(c, 1, "m3"), 0);
    /* Drop the append carrying m2 to node 2 and to node 3. */
    for (id = 2; id <= 3; id++) {
        i = cluster_find(c, RAFT_MSG_APPEND, 1, id, 0);
        assert_true(i >= 0);
        i = cluster_find(c, RAFT_MSG_APPEND, 1, id, (size_t)i + 1);
        assert_true(i >= 0);
        assert_int_equal(cluster_msg(c, (size_t)i)->entry_count, 1);
        assert_memory_equal(cluster_msg(c, (size_t)i)->entries[0].buf.base,
                            "m2", 2);
        h_drop_at(c, (size_t)i);
    }
    cluster_run(c, 10 * HB);
    for (id = 1; id <= 3; id++) {
        assert_true(cluster_applied_payload(c, id, "m3"));
    }
    cluster_check(c);
    cluster_free(c);
}

/* Reference: raft.h update contract step 3: RAFT_EVENT_PERSISTED {i, t}
 * names the term of the entry at i; an acknowledgement for entries that
 * were overwritten meanwhile (a new leader truncated them) must not make
 * the follower acknowledge the new, not yet durable, entries. */
static void test_stale_persisted_event_ignored(void **state)
{
    static const raft_term terms[] = {1, 1};
    struct raft_config config;
    struct cluster *c = cluster_create(3, NULL);
    struct h_node *h2;
    struct raft_message m;
    struct raft_entry e;
    struct raft_event ev;
    size_t i;
    (void)state;
    h_config_voters(&config, 3);
    assert_int_equal(cluster_load_log(c, 2, 1, 0, &config, terms, 2), 0);
    h2 = cluster_node(c, 2);
    h2->hold_persist = true;

    memset(&e, 0, sizeof(e));
    e.index = 3;
    e.term = 2;
    e.type = RAFT_ENTRY_NORMAL;
    e.buf.base = "a";
    e.buf.len = 1;
    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_APPEND;
    m.from = 1;
    m.to = 2;
    m.term = 2;
    m.index = 2;
    m.log_term = 1;
    m.entries = &e;
    m.entry_count = 1;
    assert_int_equal(cluster_inject(c, &m), 0);
    assert_int_equal(raft_node_term_at(h2->raft, 3), 2);

    /* Leader 3 of term 3 overwrites entry 3 before it was durable. */
    e.term = 3;
    e.buf.base = "b";
    m.from = 3;
    m.term = 3;
    assert_int_equal(cluster_inject(c, &m), 0);
    assert_int_equal(raft_node_term_at(h2->raft, 3), 3);
    cluster_drop(c, 0, 0, 0);

    /* The old write completes: {3, term 2}. */
    memset(&ev, 0, sizeof(ev));
    ev.type = RAFT_EVENT_PERSISTED;
    ev.persisted.index = 3;
    ev.persisted.term = 2;
    assert_int_equal(cluster_step(c, 2, &ev), 0);
    assert_true(raft_node_persisted_index(h2->raft) < 3);
    for (i = 0; i < c->queue_len; i++) {
        const struct raft_message *r = cluster_msg(c, i);
        assert_false(r->type == RAFT_MSG_APPEND_RESP && !r->reject &&
                     r->index >= 3);
    }
    /* The new write completes: now entry 3 is acknowledged to leader 3. */
    cluster_persist(c, 2);
    assert_int_equal(raft_node_persisted_index(h2->raft), 3);
    {
        long k = cluster_find(c, RAFT_MSG_APPEND_RESP, 2, 3, 0);
        assert_true(k >= 0);
        assert_false(cluster_msg(c, (size_t)k)->reject);
        assert_int_equal(cluster_msg(c, (size_t)k)->index, 3);
    }
    cluster_check(c);
    cluster_free(c);
}

/* Reference: raft.h option messages_max: an update carries at most that
 * many messages (the rest are dropped, which Raft tolerates). */
static void test_messages_max_bounds_updates(void **state)
{
    struct raft_options o;
    struct cluster *c;
    raft_id id;
    size_t i;
    int k;
    (void)state;
    harness_options(&o, 1);
    o.messages_max = 2;
    o.pre_vote = false;
    c = cluster_create(5, &o);
    cluster_bootstrap_voters(c, 5, NULL);
    assert_int_equal(cluster_campaign(c, 1), 0);
    cluster_deliver_all(c);
    for (k = 0; k < 5 && raft_node_role(cluster_raft(c, 1)) == RAFT_LEADER;
         k++) {
        (void)cluster_propose(c, 1, "m");
        cluster_run(c, 100);
    }
    for (id = 1; id <= 5; id++) {
        const struct h_node *n = cluster_node(c, id);
        for (i = 0; i < n->update_len; i++) {
            assert_true(n->updates[i].message_count <= 2);
        }
    }
    cluster_check(c);
    cluster_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_pipelining_bounded_by_inflight),
        H_TEST(test_batching_entries_max),
        H_TEST(test_batching_bytes_max),
        H_TEST(test_fast_backtracking_conflicting_tail),
        H_TEST(test_fast_backtracking_short_follower),
        H_TEST(test_async_follower_ack_waits_for_persist),
        H_TEST(test_leader_counts_itself_only_when_persisted),
        H_TEST(test_committed_listed_only_after_local_persist),
        H_TEST(test_backpressure_busy),
        H_TEST(test_entry_too_big),
        H_TEST(test_propose_not_leader),
        H_TEST(test_propose_first_index),
        H_TEST(test_lagging_follower_catches_up),
        H_TEST(test_lost_append_is_retransmitted),
        H_TEST(test_lost_middle_append_is_retransmitted),
        H_TEST(test_stale_persisted_event_ignored),
        H_TEST(test_messages_max_bounds_updates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
