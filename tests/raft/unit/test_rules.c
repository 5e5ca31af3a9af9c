/* test_rules.c: the per-message rules of Figure 2 of the Raft paper (terms,
 * RequestVote, AppendEntries, commit and apply), checked by injecting
 * hand-made messages into nodes of the harness cluster. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

static struct raft_message mk(uint8_t type, raft_id from, raft_id to,
                              raft_term term)
{
    struct raft_message m;
    memset(&m, 0, sizeof(m));
    m.type = type;
    m.from = from;
    m.to = to;
    m.term = term;
    return m;
}

static struct raft_message mk_vote(raft_id from, raft_id to, raft_term term,
                                   raft_index last, raft_term last_term)
{
    struct raft_message m = mk(RAFT_MSG_VOTE, from, to, term);
    m.index = last;
    m.log_term = last_term;
    return m;
}

/* The single message of this type from -> to in the queue (fails if there
 * is none). */
static const struct raft_message *only(struct cluster *c, uint8_t type,
                                       raft_id from, raft_id to)
{
    long i = cluster_find(c, type, from, to, 0);
    if (i < 0) {
        fail_msg("no message of type %u from %llu to %llu", (unsigned)type,
                 (unsigned long long)from, (unsigned long long)to);
    }
    return cluster_msg(c, (size_t)i);
}

static struct raft_options plain_options(void)
{
    struct raft_options o;
    harness_options(&o, 1);
    o.pre_vote = false;
    o.check_quorum = false;
    return o;
}

/* Three nodes that all load the log `terms` in term `term`, then node 1 is
 * elected. */
static struct cluster *loaded_elected(const raft_term *terms, size_t count,
                                      raft_term term)
{
    struct cluster *c = cluster_create(3, NULL);
    struct raft_config config;
    raft_id id;
    h_config_voters(&config, 3);
    for (id = 1; id <= 3; id++) {
        assert_int_equal(
            cluster_load_log(c, id, term, 0, &config, terms, count), 0);
    }
    assert_true(cluster_elect(c, 1));
    assert_true(cluster_stabilize(c));
    return c;
}

/* Reference: Raft paper Figure 2, "Rules for Servers, All Servers": if a
 * message contains term T > currentTerm, set currentTerm = T and convert to
 * follower (section 5.1). Here the leader sees a response of a higher term. */
static void test_higher_term_leader_steps_down(void **state)
{
    struct cluster *c = cluster_new(3);
    struct raft_message m;
    raft_term t;
    (void)state;
    assert_true(cluster_elect(c, 1));
    assert_true(cluster_stabilize(c));
    t = raft_node_term(cluster_raft(c, 1));
    m = mk(RAFT_MSG_APPEND_RESP, 2, 1, t + 3);
    m.reject = true;
    m.index = raft_node_last_index(cluster_raft(c, 1));
    assert_int_equal(cluster_inject(c, &m), 0);
    assert_int_equal(raft_node_role(cluster_raft(c, 1)), RAFT_FOLLOWER);
    assert_int_equal(raft_node_term(cluster_raft(c, 1)), t + 3);
    assert_int_equal(raft_node_vote(cluster_raft(c, 1)), 0);
    assert_int_not_equal(raft_node_leader(cluster_raft(c, 1)), 1);
    /* The new term is durable. */
    assert_true(cluster_node(c, 1)->has_hard_state);
    assert_int_equal(cluster_node(c, 1)->hard_state.term, t + 3);
    assert_int_equal(cluster_node(c, 1)->hard_state.vote, 0);
    cluster_check(c);
    cluster_free(c);
}

/* Reference: Raft paper Figure 2, "Rules for Servers, All Servers", for
 * every kind of message that may carry a newer term to a leader (a VOTE
 * only when it comes from a leadership transfer, since a plain one is
 * ignored under the leader lease, thesis 4.2.3). */
static void test_higher_term_any_message_steps_down(void **state)
{
    static const uint8_t types[] = {
        RAFT_MSG_APPEND,        RAFT_MSG_APPEND_RESP, RAFT_MSG_VOTE_RESP,
        RAFT_MSG_SNAPSHOT_RESP, RAFT_MSG_VOTE,
    };
    size_t k;
    (void)state;
    for (k = 0; k < sizeof(types) / sizeof(types[0]); k++) {
        struct cluster *c = cluster_new(3);
        struct raft_node *n1;
        struct raft_message m;
        raft_term t;
        assert_true(cluster_elect(c, 1));
        assert_true(cluster_stabilize(c));
        n1 = cluster_raft(c, 1);
        t = raft_node_term(n1);
        m = mk(types[k], 2, 1, t + 1);
        m.reject = true;
        if (types[k] == RAFT_MSG_APPEND || types[k] == RAFT_MSG_VOTE) {
            m.reject = false;
            m.index = raft_node_last_index(n1);
            m.log_term = raft_node_term_at(n1, m.index);
            m.transfer = types[k] == RAFT_MSG_VOTE;
        }
        assert_int_equal(cluster_inject(c, &m), 0);
        if (raft_node_role(n1) != RAFT_FOLLOWER ||
            raft_node_term(n1) != t + 1) {
            fail_msg("message type %u of term %llu left the leader as role "
                     "%d in term %llu",
                     (unsigned)types[k], (unsigned long long)(t + 1),
                     (int)raft_node_role(n1),
                     (unsigned long long)raft_node_term(n1));
        }
        assert_int_equal(cluster_node(c, 1)->hard_state.term, t + 1);
        cluster_check(c);
        cluster_free(c);
    }
}

/* Reference: Raft paper Figure 2 (All Servers) and section 5.1: a follower
 * receiving an AppendEntries of a higher term adopts the term and the
 * sender as leader, and acknowledges in the new term. */
static void test_higher_term_append_adopted(void **state)
{
    struct cluster *c = cluster_new(3);
    struct raft_message m;
    const struct raft_message *r;
    struct raft_node *n2;
    raft_term t;
    (void)state;
    assert_true(cluster_elect(c, 1));
    assert_true(cluster_stabilize(c));
    n2 = cluster_raft(c, 2);
    t = raft_node_term(n2);
    m = mk(RAFT_MSG_APPEND, 3, 2, t + 1);
    m.index = raft_node_last_index(n2);
    m.log_term = raft_node_term_at(n2, m.index);
    m.commit = raft_node_commit_index(n2);
    assert_int_equal(cluster_inject(c, &m), 0);
    assert_int_equal(raft_node_role(n2), RAFT_FOLLOWER);
    assert_int_equal(raft_node_term(n2), t + 1);
    assert_int_equal(raft_node_leader(n2), 3);
    r = only(c, RAFT_MSG_APPEND_RESP, 2, 3);
    assert_int_equal(r->term, t + 1);
    assert_false(r->reject);
    assert_int_equal(r->index, m.index);
    assert_int_equal(cluster_node(c, 2)->hard_state.term, t + 1);
    cluster_check(c);
    cluster_free(c);
}

/* Reference: Raft paper section 5.2 / Figure 2 (Candidates): if an
 * AppendEntries is received from a new leader of the same term, convert to
 * follower. */
static void test_candidate_yields_to_leader_of_same_term(void **state)
{
    struct raft_options o = plain_options();
    struct cluster *c = cluster_create(3, &o);
    struct raft_message m;
    struct raft_node *n1;
    raft_term t;
    (void)state;
    cluster_bootstrap_voters(c, 3, NULL);
    n1 = cluster_raft(c, 1);
    assert_int_equal(cluster_campaign(c, 1), 0);
    assert_int_equal(raft_node_role(n1), RAFT_CANDIDATE);
    t = raft_node_term(n1);
    assert_int_equal(raft_node_vote(n1), 1);
    assert_int_equal(cluster_node(c, 1)->hard_state.vote, 1);
    assert_int_equal(cluster_node(c, 1)->hard_state.term, t);
    /* Every other voter is asked (Figure 2, Candidates). */
    assert_int_equal(cluster_count(c, RAFT_MSG_VOTE, 1, 2), 1);
    assert_int_equal(cluster_count(c, RAFT_MSG_VOTE, 1, 3), 1);
    cluster_drop(c, 0, 0, 0);
    m = mk(RAFT_MSG_APPEND, 2, 1, t);
    m.index = raft_node_last_index(n1);
    m.log_term = raft_node_term_at(n1, m.index);
    assert_int_equal(cluster_inject(c, &m), 0);
    assert_int_equal(raft_node_role(n1), RAFT_FOLLOWER);
    assert_int_equal(raft_node_term(n1), t);
    assert_int_equal(raft_node_leader(n1), 2);
    cluster_check(c);
    cluster_free(c);
}

/* Reference: Raft paper Figure 2 (AppendEntries receiver 1): reply false if
 * term < currentTerm; the stale leader learns the current term from the
 * reply (section 5.1). */
static void test_lower_term_append_rejected(void **state)
{
    static const raft_term terms[] = {1, 2, 5};
    struct cluster *c = loaded_elected(terms, 3, 5);
    struct raft_node *n2 = cluster_raft(c, 2);
    struct raft_message m;
    struct raft_entry e;
    const struct raft_message *r;
    raft_term t = raft_node_term(n2);
    raft_index last = raft_node_last_index(n2);
    raft_index commit = raft_node_commit_index(n2);
    (void)state;
    assert_true(t > 5);
    /* A well-formed append of the deposed term-5 leader: prev is entry 3
     * (term 5), the new entry would overwrite the current leader's no-op. */
    assert_int_equal(raft_node_term_at(n2, 3), 5);
    assert_int_equal(t, 6);
    memset(&e, 0, sizeof(e));
    e.term = t - 1;
    e.index = 4;
    e.type = RAFT_ENTRY_NORMAL;
    e.buf.base = "stale";
    e.buf.len = 5;
    m = mk(RAFT_MSG_APPEND, 3, 2, t - 1);
    m.index = 3;
    m.log_term = 5;
    m.entries = &e;
    m.entry_count = 1;
    m.commit = last + 1;
    assert_int_equal(cluster_inject(c, &m), 0);
    assert_int_equal(raft_node_last_index(n2), last);
    assert_int_equal(raft_node_term_at(n2, 4), t);
    assert_int_equal(raft_node_term(n2), t);
    assert_int_equal(raft_node_leader(n2), 1);
    assert_int_equal(raft_node_commit_index(n2), commit);
    assert_int_equal(raft_node_role(n2), RAFT_FOLLOWER);
    r = only(c, RAFT_MSG_APPEND_RESP, 2, 3);
    assert_true(r->reject);
    assert_int_equal(r->term, t);
    cluster_check(c);
    cluster_free(c);
}

/* Reference: Raft paper Figure 2 (RequestVote receiver 1): reply false if
 * term < currentTerm. */
static void test_lower_term_vote_rejected(void **state)
{
    static const raft_term terms[] = {1, 2, 5};
    struct cluster *c = loaded_elected(terms, 3, 5);
    struct raft_node *n2 = cluster_raft(c, 2);
    raft_term t = raft_node_term(n2);
    raft_id vote = raft_node_vote(n2);
    struct raft_message m = mk_vote(3, 2, t - 1, 100, t - 1);
    size_t i;
    (void)state;
    assert_int_equal(cluster_inject(c, &m), 0);
    assert_int_equal(raft_node_term(n2), t);
    assert_int_equal(raft_node_vote(n2), vote);
    for (i = 0; i < c->queue_len; i++) {
        const struct raft_message *r = cluster_msg(c, i);
        if (r->type == RAFT_MSG_VOTE_RESP && r->from == 2) {
            assert_true(r->reject);
            assert_int_equal(r->term, t);
        }
    }
    cluster_check(c);
    cluster_free(c);
}

static const struct h_update_rec *rec_granting(struct cluster *c, raft_id id,
                                               raft_id to)
{
    struct h_node *n = cluster_node(c, id);
    size_t i;
    for (i = n->update_len; i > 0; i--) {
        if (n->updates[i - 1].granted_vote_to == to) {
            return &n->updates[i - 1];
        }
    }
    return NULL;
}

/* Reference: Raft paper Figure 2 (RequestVote receiver 2, persistent state
 * votedFor) and section 5.2: each server votes for at most one candidate
 * per term; the vote is made durable (RAFT_UPDATE_HARD_STATE in the same
 * update) before the response is sent. */
static void test_one_vote_per_term(void **state)
{
    struct raft_options o = plain_options();
    struct cluster *c = cluster_create(3, &o);
    struct raft_message m;
    const struct raft_message *r;
    const struct h_update_rec *rec;
    struct raft_node *n1;
    (void)state;
    cluster_bootstrap_voters(c, 3, NULL);
    n1 = cluster_raft(c, 1);

    m = mk_vote(2, 1, 5, 1, 1);
    assert_int_equal(cluster_inject(c, &m), 0);
    r = only(c, RAFT_MSG_VOTE_RESP, 1, 2);
    assert_false(r->reject);
    assert_int_equal(r->term, 5);
    rec = rec_granting(c, 1, 2);
    assert_non_null(rec);
    assert_true(rec->flags & RAFT_UPDATE_HARD_STATE);
    assert_true(rec->flags & RAFT_UPDATE_MESSAGES);
    assert_int_equal(rec->hard_state.term, 5);
    assert_int_equal(rec->hard_state.vote, 2);
    assert_int_equal(raft_node_vote(n1), 2);
    assert_int_equal(raft_node_term(n1), 5);
    cluster_drop(c, 0, 0, 0);

    /* Another candidate in the same term is refused. */
    m = mk_vote(3, 1, 5, 1, 1);
    assert_int_equal(cluster_inject(c, &m), 0);
    assert_int_equal(cluster_count(c, RAFT_MSG_VOTE_RESP, 1, 3), 1);
    r = only(c, RAFT_MSG_VOTE_RESP, 1, 3);
    assert_true(r->reject);
    assert_int_equal(raft_node_vote(n1), 2);
    assert_int_equal(cluster_node(c, 1)->hard_state.vote, 2);
    cluster_drop(c, 0, 0, 0);

    /* The same candidate asking again is granted again (votedFor is
     * candidateId). */
    m = mk_vote(2, 1, 5, 1, 1);
    assert_int_equal(cluster_inject(c, &m), 0);
    r = only(c, RAFT_MSG_VOTE_RESP, 1, 2);
    assert_false(r->reject);
    cluster_drop(c, 0, 0, 0);

    /* A new term frees the vote. */
    m = mk_vote(3, 1, 6, 1, 1);
    assert_int_equal(cluster_inject(c, &m), 0);
    r = only(c, RAFT_MSG_VOTE_RESP, 1, 3);
    assert_false(r->reject);
    assert_int_equal(r->term, 6);
    assert_int_equal(raft_node_vote(n1), 3);
    rec = rec_granting(c, 1, 3);
    assert_non_null(rec);
    assert_true(rec->flags & RAFT_UPDATE_HARD_STATE);
    assert_int_equal(rec->hard_state.vote, 3);
    assert_int_equal(rec->hard_state.term, 6);
    cluster_check(c);
    cluster_free(c);
}

/* Reference: Raft paper section 5.4.1 (election restriction): a vote is
 * denied if the candidate's log is less up-to-date: compare the last
 * entries' terms first, then the log lengths. */
static void test_vote_denied_log_not_up_to_date(void **state)
{
    static const raft_term terms[] = {1, 2, 3};
    struct raft_options o = plain_options();
    struct cluster *c = cluster_create(3, &o);
    struct raft_config config;
    struct raft_message m;
    const struct raft_message *r;
    struct raft_node *n1;
    (void)state;
    h_config_voters(&config, 3);
    assert_int_equal(cluster_load_log(c, 1, 3, 0, &config, terms, 3), 0);
    n1 = cluster_raft(c, 1);
    assert_int_equal(raft_node_last_index(n1), 3);
    assert_int_equal(raft_node_term(n1), 3);

    /* Longer log, older last term: denied (but the term is adopted). */
    m = mk_vote(2, 1, 4, 5, 2);
    assert_int_equal(cluster_inject(c, &m), 0);
    r = only(c, RAFT_MSG_VOTE_RESP, 1, 2);
    assert_true(r->reject);
    assert_int_equal(raft_node_term(n1), 4);
    assert_int_equal(raft_node_vote(n1), 0);
    cluster_drop(c, 0, 0, 0);

    /* Same last term, shorter log: denied. */
    m = mk_vote(3, 1, 4, 2, 3);
    assert_int_equal(cluster_inject(c, &m), 0);
    r = only(c, RAFT_MSG_VOTE_RESP, 1, 3);
    assert_true(r->reject);
    assert_int_equal(raft_node_vote(n1), 0);
    cluster_drop(c, 0, 0, 0);

    /* Same last term, same length: granted. */
    m = mk_vote(2, 1, 4, 3, 3);
    assert_int_equal(cluster_inject(c, &m), 0);
    r = only(c, RAFT_MSG_VOTE_RESP, 1, 2);
    assert_false(r->reject);
    assert_int_equal(raft_node_vote(n1), 2);
    cluster_drop(c, 0, 0, 0);

    /* Newer last term, shorter log: granted in a new term. */
    m = mk_vote(3, 1, 5, 2, 4);
    assert_int_equal(cluster_inject(c, &m), 0);
    r = only(c, RAFT_MSG_VOTE_RESP, 1, 3);
    assert_false(r->reject);
    assert_int_equal(raft_node_vote(n1), 3);
    assert_int_equal(raft_node_term(n1), 5);
    cluster_check(c);
    cluster_free(c);
}

/* Reference: Raft paper Figure 2 (AppendEntries receiver 2) and section
 * 5.3: reply false if the log doesn't contain an entry at prevLogIndex
 * whose term matches prevLogTerm. */
static void test_append_prev_mismatch_rejected(void **state)
{
    static const raft_term terms[] = {1, 1, 2};
    struct raft_options o = plain_options();
    struct cluster *c = cluster_create(3, &o);
    struct raft_config config;
    struct raft_message m;
    struct raft_entry e;
    const struct raft_message *r;
    struct raft_node *n2;
    (void)state;
    h_config_voters(&config, 3);
    assert_int_equal(cluster_load_log(c, 2, 2, 0, &config, terms, 3), 0);
    n2 = cluster_raft(c, 2);

    memset(&e, 0, sizeof(e));
    e.term = 3;
    e.index = 4;
    e.type = RAFT_ENTRY_NORMAL;
    e.buf.base = "x";
    e.buf.len = 1;

    /* Term mismatch at prev index 3. */
    m = mk(RAFT_MSG_APPEND, 1, 2, 3);
    m.index = 3;
    m.log_term = 3;
    m.entries = &e;
    m.entry_count = 1;
    assert_int_equal(cluster_inject(c, &m), 0);
    r = only(c, RAFT_MSG_APPEND_RESP, 2, 1);
    assert_true(r->reject);
    assert_int_equal(r->index, 3);
    assert_int_equal(r->term, 3);
    assert_true(r->hint_index <= 3);
    assert_int_equal(raft_node_last_index(n2), 3);
    assert_int_equal(raft_node_term_at(n2, 3), 2);
    assert_int_equal(raft_node_commit_index(n2), 0);
    cluster_drop(c, 0, 0, 0);

    /* prev index past the end of the log. */
    e.index = 8;
    m.index = 7;
    m.log_term = 3;
    assert_int_equal(cluster_inject(c, &m), 0);
    r = only(c, RAFT_MSG_APPEND_RESP, 2, 1);
    assert_true(r->reject);
    assert_int_equal(r->index, 7);
    assert_true(r->hint_index <= 3);
    assert_int_equal(raft_node_last_index(n2), 3);
    cluster_check(c);
    cluster_free(c);
}

static struct raft_entry ent(raft_index index, raft_term term,
                             const char *payload)
{
    struct raft_entry e;
    memset(&e, 0, sizeof(e));
    e.index = index;
    e.term = term;
    e.type = RAFT_ENTRY_NORMAL;
    e.buf.base = payload;
    e.buf.len = strlen(payload);
    return e;
}

static const struct h_update_rec *last_entries_rec(struct cluster *c,
                                                   raft_id id)
{
    struct h_node *n = cluster_node(c, id);
    size_t i;
    for (i = n->update_len; i > 0; i--) {
        if (n->updates[i - 1].flags & RAFT_UPDATE_ENTRIES) {
            return &n->updates[i - 1];
        }
    }
    return NULL;
}

/* Reference: Raft paper Figure 2 (AppendEntries receiver 3 and 4) and
 * section 5.3: a conflicting entry (same index, different term) and all
 * that follow it are deleted and replaced; update->entries then starts at
 * the conflict index. Entries that already match are kept. */
static void test_conflict_truncated_and_replaced(void **state)
{
    static const raft_term terms[] = {1, 1, 2, 2, 2};
    struct raft_options o = plain_options();
    struct cluster *c = cluster_create(3, &o);
    struct raft_config config;
    struct raft_message m;
    struct raft_entry es[3];
    const struct h_update_rec *rec;
    const struct raft_message *r;
    struct raft_node *n2;
    struct h_node *h2;
    (void)state;
    h_config_voters(&config, 3);
    assert_int_equal(cluster_load_log(c, 2, 2, 0, &config, terms, 5), 0);
    n2 = cluster_raft(c, 2);
    h2 = cluster_node(c, 2);

    /* Entry 3 matches (term 2, "e3"), entry 4 conflicts. */
    es[0] = ent(3, 2, "e3");
    es[1] = ent(4, 3, "x4");
    m = mk(RAFT_MSG_APPEND, 1, 2, 3);
    m.index = 2;
    m.log_term = 1;
    m.entries = es;
    m.entry_count = 2;
    assert_int_equal(cluster_inject(c, &m), 0);
    rec = last_entries_rec(c, 2);
    assert_non_null(rec);
    assert_int_equal(rec->entries_first, 4);
    assert_int_equal(rec->entry_count, 1);
    assert_int_equal(raft_node_last_index(n2), 4);
    assert_int_equal(raft_node_term_at(n2, 3), 2);
    assert_int_equal(raft_node_term_at(n2, 4), 3);
    assert_int_equal(raft_node_term_at(n2, 5), 0);
    assert_int_equal(h2->log_len, 4);
    assert_int_equal(h2->log[3].term, 3);
    assert_memory_equal(h2->log[3].buf.base, "x4", 2);
    r = only(c, RAFT_MSG_APPEND_RESP, 2, 1);
    assert_false(r->reject);
    assert_int_equal(r->index, 4);
    cluster_drop(c, 0, 0, 0);

    /* A conflict right after prev: entries start at prev + 1. */
    es[0] = ent(2, 3, "y2");
    es[1] = ent(3, 3, "y3");
    es[2] = ent(4, 3, "y4");
    m.index = 1;
    m.log_term = 1;
    m.entries = es;
    m.entry_count = 3;
    assert_int_equal(cluster_inject(c, &m), 0);
    rec = last_entries_rec(c, 2);
    assert_int_equal(rec->entries_first, 2);
    assert_int_equal(rec->entry_count, 3);
    assert_int_equal(raft_node_term_at(n2, 2), 3);
    assert_int_equal(raft_node_last_index(n2), 4);
    assert_int_equal(h2->log_len, 4);
    assert_memory_equal(h2->log[1].buf.base, "y2", 2);
    cluster_check(c);
    cluster_free(c);
}

/* Reference: Raft paper Figure 2 (AppendEntries receiver 3): only a
 * conflict truncates; a delayed AppendEntries whose entries are all already
 * present must not remove the entries that follow them. */
static void test_stale_append_does_not_truncate(void **state)
{
    static const raft_term terms[] = {1, 1, 1, 1};
    struct raft_options o = plain_options();
    struct cluster *c = cluster_create(3, &o);
    struct raft_config config;
    struct raft_message m;
    struct raft_entry e = ent(2, 1, "e2");
    struct raft_node *n2;
    size_t updates_before;
    size_t i;
    (void)state;
    h_config_voters(&config, 3);
    assert_int_equal(cluster_load_log(c, 2, 1, 0, &config, terms, 4), 0);
    n2 = cluster_raft(c, 2);
    updates_before = cluster_node(c, 2)->update_len;
    m = mk(RAFT_MSG_APPEND, 1, 2, 1);
    m.index = 1;
    m.log_term = 1;
    m.entries = &e;
    m.entry_count = 1;
    assert_int_equal(cluster_inject(c, &m), 0);
    assert_int_equal(raft_node_last_index(n2), 4);
    assert_int_equal(cluster_node(c, 2)->log_len, 4);
    for (i = updates_before; i < cluster_node(c, 2)->update_len; i++) {
        assert_false(cluster_node(c, 2)->updates[i].flags &
                     RAFT_UPDATE_ENTRIES);
    }
    cluster_check(c);
    cluster_free(c);
}

/* Reference: Raft paper Figure 2 (AppendEntries receiver 5): if
 * leaderCommit > commitIndex, set commitIndex = min(leaderCommit, index of
 * last new entry). */
static void test_follower_commit_min(void **state)
{
    static const raft_term terms[] = {1, 1, 1, 1, 1};
    struct raft_options o = plain_options();
    struct cluster *c = cluster_create(3, &o);
    struct raft_config config;
    struct raft_message m;
    struct raft_entry e;
    struct raft_node *n2;
    (void)state;
    h_config_voters(&config, 3);
    assert_int_equal(cluster_load_log(c, 2, 1, 0, &config, terms, 5), 0);
    n2 = cluster_raft(c, 2);

    /* Verified only up to 2: commit 2 though the leader says 5. */
    e = ent(2, 1, "e2");
    m = mk(RAFT_MSG_APPEND, 1, 2, 1);
    m.index = 1;
    m.log_term = 1;
    m.entries = &e;
    m.entry_count = 1;
    m.commit = 5;
    assert_int_equal(cluster_inject(c, &m), 0);
    assert_int_equal(raft_node_commit_index(n2), 2);
    assert_int_equal(raft_node_applied_index(n2), 2);
    assert_int_equal(cluster_node(c, 2)->applied, 2);

    /* A heartbeat verifying up to 3. */
    m.index = 3;
    m.log_term = 1;
    m.entries = NULL;
    m.entry_count = 0;
    assert_int_equal(cluster_inject(c, &m), 0);
    assert_int_equal(raft_node_commit_index(n2), 3);

    /* New entry 6, but the leader's commit is only 4. */
    e = ent(6, 1, "e6");
    m.index = 5;
    m.log_term = 1;
    m.entries = &e;
    m.entry_count = 1;
    m.commit = 4;
    assert_int_equal(cluster_inject(c, &m), 0);
    assert_int_equal(raft_node_last_index(n2), 6);
    assert_int_equal(raft_node_commit_index(n2), 4);
    assert_int_equal(cluster_node(c, 2)->applied, 4);

    /* The commit index never goes backwards. */
    m.index = 6;
    m.entries = NULL;
    m.entry_count = 0;
    m.commit = 1;
    assert_int_equal(cluster_inject(c, &m), 0);
    assert_int_equal(raft_node_commit_index(n2), 4);
    cluster_check(c);
    cluster_free(c);
}

/* A deterministic lossy network: drops about a third of the messages. */
static bool lossy(const struct raft_message *m, void *arg)
{
    uint64_t *s = arg;
    (void)m;
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (*s >> 33) % 3 == 0;
}

/* Reference: Raft paper Figure 2 (All Servers: if commitIndex >
 * lastApplied, apply log[lastApplied+1]) and Figure 3 (State Machine
 * Safety): entries are applied in index order, each exactly once, and every
 * node applies the same entry at each index. */
static void test_applied_in_order_exactly_once(void **state)
{
    struct cluster *c = cluster_new(3);
    uint64_t seed = 42;
    char payload[16];
    raft_index last_idx = 0;
    raft_id id;
    int i;
    (void)state;
    assert_true(cluster_elect(c, 1));
    assert_true(cluster_stabilize(c));
    cluster_set_filter(c, lossy, &seed);
    for (i = 0; i < 30; i++) {
        snprintf(payload, sizeof(payload), "p%d", i);
        assert_int_equal(cluster_propose(c, 1, payload), 0);
        cluster_run(c, 20);
    }
    cluster_heal(c);
    assert_true(cluster_stabilize(c));
    for (id = 1; id <= 3; id++) {
        struct h_node *n = cluster_node(c, id);
        raft_index commit = raft_node_commit_index(n->raft);
        size_t j;
        assert_int_equal(n->applied_len, commit);
        for (j = 0; j < n->applied_len; j++) {
            assert_int_equal(n->applied_log[j].index, j + 1);
        }
        last_idx = 0;
        for (i = 0; i < 30; i++) {
            raft_index at;
            snprintf(payload, sizeof(payload), "p%d", i);
            at = cluster_applied_index_of(c, id, payload);
            assert_true(at > last_idx);
            last_idx = at;
        }
    }
    cluster_check(c);
    cluster_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_higher_term_leader_steps_down),
        H_TEST(test_higher_term_any_message_steps_down),
        H_TEST(test_higher_term_append_adopted),
        H_TEST(test_candidate_yields_to_leader_of_same_term),
        H_TEST(test_lower_term_append_rejected),
        H_TEST(test_lower_term_vote_rejected),
        H_TEST(test_one_vote_per_term),
        H_TEST(test_vote_denied_log_not_up_to_date),
        H_TEST(test_append_prev_mismatch_rejected),
        H_TEST(test_conflict_truncated_and_replaced),
        H_TEST(test_stale_append_does_not_truncate),
        H_TEST(test_follower_commit_min),
        H_TEST(test_applied_in_order_exactly_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
