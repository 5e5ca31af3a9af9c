/* test_commit.c: commitment rules (Raft paper section 5.4.2 and Figure 8):
 * a leader never commits an entry of a previous term by counting replicas,
 * only indirectly through an entry of its own term. The five-server
 * scenario of Figure 8 is reproduced with crashes, restarts and a message
 * filter; batch_entries_max = 1 and a message mutator that strips entries
 * hold back the new leader's no-op while its predecessor's entry gets
 * through. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define HB 100
#define ET 1000 /* raft_options_default's election timeout */

struct fig8 {
    struct cluster *c;
    raft_index base;  /* commit index after the first election (no-op) */
    raft_index a_idx; /* index of "a", S1's term-T1 entry */
    raft_term t1;     /* S1's first term */
    raft_term t2;     /* S5's term */
};

static bool drop_all_appends_from_5(const struct raft_message *m, void *arg)
{
    (void)arg;
    return m->type == RAFT_MSG_APPEND && m->from == 5;
}

/* Strips from node 1's appends every entry at or above *arg: the message
 * then reads as if the leader had sent a shorter batch (possibly none). */
static void strip_from_index(struct raft_message *m, void *arg)
{
    raft_index limit = *(raft_index *)arg;
    size_t i;
    if (m->type != RAFT_MSG_APPEND || m->from != 1) {
        return;
    }
    for (i = 0; i < m->entry_count; i++) {
        if (m->entries[i].index >= limit) {
            m->entry_count = i;
            break;
        }
    }
    if (m->entry_count == 0) {
        m->entries = NULL;
    }
}

/* Campaigns until id leads. The clock first moves past the voters' leader
 * lease (they heard from the crashed leader less than an election timeout
 * ago and would ignore the candidate, thesis 4.2.3). */
static void campaign_until_leader(struct cluster *c, raft_id id)
{
    int k;
    cluster_advance(c, ET);
    for (k = 0; k < 6; k++) {
        if (raft_node_role(cluster_raft(c, id)) == RAFT_LEADER) {
            return;
        }
        assert_int_equal(cluster_campaign(c, id), 0);
        cluster_deliver_all(c);
    }
    assert_int_equal(raft_node_role(cluster_raft(c, id)), RAFT_LEADER);
}

/* Figure 8 (a)-(c). Leaves S1 leading in term T3 with "a" (term T1)
 * stored on a majority but the no-op of T3 held back by the filter. */
static void fig8_setup(struct fig8 *f, raft_index *limit)
{
    struct raft_options o;
    struct cluster *c;
    raft_id id;

    harness_options(&o, 1);
    o.pre_vote = false;
    o.check_quorum = false;
    o.batch_entries_max = 1;
    c = cluster_create(5, &o);
    cluster_bootstrap_voters(c, 5, NULL);
    f->c = c;

    /* (a) S1 leads in T1 and replicates "a" to S2 only. */
    assert_true(cluster_elect(c, 1));
    assert_true(cluster_stabilize(c));
    f->t1 = raft_node_term(cluster_raft(c, 1));
    f->base = raft_node_commit_index(cluster_raft(c, 1));
    cluster_cut(c, 1, 3);
    cluster_cut(c, 1, 4);
    cluster_cut(c, 1, 5);
    assert_int_equal(cluster_propose_buf(c, 1, "a", 1, &f->a_idx), 0);
    assert_int_equal(f->a_idx, f->base + 1);
    cluster_deliver_all(c);
    assert_int_equal(raft_node_term_at(cluster_raft(c, 2), f->a_idx), f->t1);
    assert_int_equal(raft_node_commit_index(cluster_raft(c, 1)), f->base);

    /* (b) S1 crashes; S5 is elected by S3, S4, S5 and appends its own
     * entry at the same index, which reaches nobody. */
    cluster_crash(c, 1);
    cluster_heal(c);
    cluster_set_filter(c, drop_all_appends_from_5, NULL);
    campaign_until_leader(c, 5);
    f->t2 = raft_node_term(cluster_raft(c, 5));
    assert_true(f->t2 > f->t1);
    assert_int_equal(raft_node_term_at(cluster_raft(c, 5), f->a_idx), f->t2);

    /* (c) S5 crashes; S1 restarts, is elected in T3 and replicates "a"
     * (term T1) to S3 but its no-op of T3 reaches nobody. */
    cluster_crash(c, 5);
    cluster_heal(c);
    assert_int_equal(cluster_restart(c, 1), 0);
    *limit = f->a_idx + 1;
    cluster_set_mutator(c, strip_from_index, limit);
    campaign_until_leader(c, 1);
    assert_true(raft_node_term(cluster_raft(c, 1)) > f->t2);
    assert_int_equal(raft_node_term_at(cluster_raft(c, 1), f->a_idx + 1),
                     raft_node_term(cluster_raft(c, 1)));
    cluster_run(c, 10 * HB);
    assert_int_equal(cluster_leader(c), 1);
    for (id = 1; id <= 3; id++) {
        assert_int_equal(raft_node_term_at(cluster_raft(c, id), f->a_idx),
                         f->t1);
    }
    for (id = 2; id <= 4; id++) {
        assert_true(raft_node_last_index(cluster_raft(c, id)) <= f->a_idx);
    }
}

/* Reference: Raft paper section 5.4.2 and Figure 8 (c)-(d): an entry of a
 * previous term stored on a majority is not committed by counting
 * replicas, and indeed a later leader may still overwrite it. */
static void test_figure8_old_term_entry_not_committed(void **state)
{
    struct fig8 f;
    raft_index limit;
    struct cluster *c;
    raft_id id;
    (void)state;
    fig8_setup(&f, &limit);
    c = f.c;

    /* Majority {S1, S2, S3} (S4 too) stores "a", yet nothing commits (the
     * restarted S1 may not even know the old commit index: it is volatile
     * state, Figure 2). */
    assert_int_equal(raft_node_match_index(cluster_raft(c, 1), 3), f.a_idx);
    assert_true(raft_node_commit_index(cluster_raft(c, 1)) <= f.base);
    for (id = 1; id <= 4; id++) {
        assert_false(cluster_applied_payload(c, id, "a"));
        assert_true(raft_node_commit_index(cluster_raft(c, id)) <= f.base);
    }

    /* (d) S1 crashes; S5 restarts and wins with S2, S3, S4 (its last term
     * T2 beats their T1) and overwrites "a" everywhere. */
    cluster_crash(c, 1);
    cluster_heal(c);
    assert_int_equal(cluster_restart(c, 5), 0);
    campaign_until_leader(c, 5);
    assert_true(cluster_stabilize(c));
    for (id = 2; id <= 5; id++) {
        const struct h_node *n = cluster_node(c, id);
        size_t j;
        bool found = false;
        assert_int_equal(raft_node_term_at(n->raft, f.a_idx), f.t2);
        assert_false(cluster_applied_payload(c, id, "a"));
        for (j = 0; j < n->applied_len; j++) {
            if (n->applied_log[j].index == f.a_idx) {
                assert_int_equal(n->applied_log[j].term, f.t2);
                assert_int_equal(n->applied_log[j].type, RAFT_ENTRY_NOOP);
                found = true;
            }
        }
        assert_true(found);
    }
    /* S1 comes back and has its "a" replaced too. */
    assert_int_equal(cluster_restart(c, 1), 0);
    assert_true(cluster_stabilize(c));
    assert_int_equal(raft_node_term_at(cluster_raft(c, 1), f.a_idx), f.t2);
    assert_false(cluster_applied_payload(c, 1, "a"));
    cluster_check(c);
    cluster_free(c);
}

/* Reference: Raft paper section 5.4.2 and Figure 8 (e): once an entry of
 * the leader's current term (its no-op) is stored on a majority, it and
 * every entry before it, including "a" of the older term, are committed. */
static void test_figure8_committed_through_current_term(void **state)
{
    struct fig8 f;
    raft_index limit;
    struct cluster *c;
    raft_id id;
    (void)state;
    fig8_setup(&f, &limit);
    c = f.c;
    assert_true(raft_node_commit_index(cluster_raft(c, 1)) <= f.base);
    cluster_set_mutator(c, NULL, NULL);
    /* (e) S1 replicates an entry of its current term to a majority. */
    assert_int_equal(cluster_propose(c, 1, "b"), 0);
    assert_true(cluster_stabilize(c));
    assert_true(raft_node_commit_index(cluster_raft(c, 1)) >= f.a_idx + 1);
    for (id = 1; id <= 4; id++) {
        assert_int_equal(cluster_applied_index_of(c, id, "a"), f.a_idx);
        assert_true(cluster_applied_payload(c, id, "b"));
    }
    /* S5 comes back; its conflicting entry is replaced by "a". */
    assert_int_equal(cluster_restart(c, 5), 0);
    assert_true(cluster_stabilize(c));
    assert_int_equal(raft_node_term_at(cluster_raft(c, 5), f.a_idx), f.t1);
    assert_int_equal(cluster_applied_index_of(c, 5, "a"), f.a_idx);
    cluster_check(c);
    cluster_free(c);
}

/* Reference: Raft paper section 5.4.2 (simplest form): a new leader whose
 * log ends with entries of an older term commits them only with its no-op
 * (section 8), and the no-op's index is what followers see as committed. */
static void test_new_leader_commits_old_entries_with_noop(void **state)
{
    static const raft_term terms[] = {1, 1, 2, 2};
    struct raft_config config;
    struct cluster *c = cluster_create(3, NULL);
    struct raft_node *n1;
    raft_id id;
    (void)state;
    h_config_voters(&config, 3);
    for (id = 1; id <= 3; id++) {
        assert_int_equal(cluster_load_log(c, id, 2, 0, &config, terms, 4), 0);
    }
    n1 = cluster_raft(c, 1);
    assert_int_equal(raft_node_commit_index(n1), 0);
    assert_true(cluster_elect(c, 1));
    assert_true(cluster_stabilize(c));
    assert_int_equal(raft_node_last_index(n1), 5);
    assert_int_equal(raft_node_entry_at(n1, 5)->type, RAFT_ENTRY_NOOP);
    assert_int_equal(raft_node_entry_at(n1, 5)->term, raft_node_term(n1));
    for (id = 1; id <= 3; id++) {
        assert_int_equal(raft_node_commit_index(cluster_raft(c, id)), 5);
        assert_true(cluster_applied_payload(c, id, "e4"));
    }
    cluster_check(c);
    cluster_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_figure8_old_term_entry_not_committed),
        H_TEST(test_figure8_committed_through_current_term),
        H_TEST(test_new_leader_commits_old_entries_with_noop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
