/* sim_check.c: the invariants, checked after every step of the simulation.
 *
 * Inputs come from sim_cluster.c: every entry a node applies
 * (sim_check_apply), every state machine restored from a snapshot
 * (sim_check_restore) and, after every raft_node_step(), the stepped node
 * itself (sim_check_step), read through raft.h's introspection calls.
 * The checker keeps three records that outlive nodes, crashes and restarts:
 *
 *   - leaders[term]: the one node seen leading each term
 *     (election safety: a second one is a violation);
 *   - the registry: for every (index, term) ever held in any node's log, the
 *     digest of the entry and the term of its predecessor. Two logs holding
 *     the same (index, term) must agree on the entry and on the previous
 *     term; by induction that makes their whole common prefixes identical,
 *     which is the log matching property, checked without comparing every
 *     pair of logs every step;
 *   - the canonical committed history: entry i is recorded the first time
 *     any node applies index i, with the state machine's hash chain after
 *     it. Every later application of i (on any node, in any incarnation)
 *     must match it (state machine safety), as must every snapshot a state
 *     machine is restored from; every committed NORMAL entry must be an
 *     intact proposal, committed once (integrity); and every leader of a
 *     term later than the one in which an entry was seen committed must hold
 *     it (leader completeness). The history only ever grows, so a committed
 *     entry that a crash made the cluster forget surfaces as a mismatch
 *     (durability).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define SIM_TERM_SANE (1u << 24)
#define SIM_FULL_CHECK_EVERY 128
#define SIM_TAIL_WINDOW 8

static void *xrealloc(void *p, size_t size)
{
    void *q = realloc(p, size == 0 ? 1 : size);
    if (q == NULL) {
        abort();
    }
    return q;
}

void sim_check_init(struct sim_checker *chk)
{
    memset(chk, 0, sizeof(*chk));
}

void sim_check_free(struct sim_checker *chk)
{
    free(chk->canon);
    free(chk->leaders);
    free(chk->reg);
    free(chk->proposal_index);
    memset(chk, 0, sizeof(*chk));
}

raft_index sim_check_canon_len(const struct sim *sim)
{
    return sim->chk.canon_len;
}

static struct sim_canon *canon_at(struct sim_checker *chk, raft_index index)
{
    if (index == 0 || index > chk->canon_len) {
        return NULL;
    }
    return &chk->canon[index - 1];
}

/* ---- registry ------------------------------------------------------------ */

static uint64_t reg_hash(raft_index index, raft_term term)
{
    return sim_mix64(index * 0x9e3779b97f4a7c15ULL ^ sim_mix64(term));
}

static void reg_grow(struct sim_checker *chk)
{
    size_t old_cap = chk->reg_cap;
    struct sim_reg *old = chk->reg;
    chk->reg_cap = old_cap ? old_cap * 2 : 1024;
    chk->reg = calloc(chk->reg_cap, sizeof(*chk->reg));
    if (chk->reg == NULL) {
        abort();
    }
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].index == 0) {
            continue;
        }
        size_t k = reg_hash(old[i].index, old[i].term) & (chk->reg_cap - 1);
        while (chk->reg[k].index != 0) {
            k = (k + 1) & (chk->reg_cap - 1);
        }
        chk->reg[k] = old[i];
    }
    free(old);
}

/* Finds the slot of (index, term); *fresh tells whether it was created. */
static struct sim_reg *reg_slot(struct sim_checker *chk, raft_index index,
                                raft_term term, bool *fresh)
{
    if ((chk->reg_used + 1) * 2 > chk->reg_cap) {
        reg_grow(chk);
    }
    size_t k = reg_hash(index, term) & (chk->reg_cap - 1);
    while (chk->reg[k].index != 0) {
        if (chk->reg[k].index == index && chk->reg[k].term == term) {
            *fresh = false;
            return &chk->reg[k];
        }
        k = (k + 1) & (chk->reg_cap - 1);
    }
    chk->reg_used++;
    chk->reg[k].index = index;
    chk->reg[k].term = term;
    *fresh = true;
    return &chk->reg[k];
}

/* Checks the entry node holds at index (if any) against the registry and,
 * when index is known committed, against the canonical history. */
static void check_entry(struct sim *sim, struct sim_node *n, raft_index index)
{
    const struct raft_entry *e = raft_node_entry_at(n->raft, index);
    if (e == NULL) {
        return;
    }
    if (e->index != index) {
        sim_fail(sim, "api",
                 "n%" PRIu64 ": raft_node_entry_at(%" PRIu64
                 ") returned index %" PRIu64,
                 n->id, index, e->index);
        return;
    }
    raft_term t = raft_node_term_at(n->raft, index);
    if (t != e->term) {
        sim_fail(sim, "api",
                 "n%" PRIu64 ": term_at(%" PRIu64 ")=%" PRIu64
                 " but entry_at has term %" PRIu64,
                 n->id, index, t, e->term);
        return;
    }
    raft_term prev = 0;
    bool prev_known = true;
    if (index > 1) {
        prev = raft_node_term_at(n->raft, index - 1);
        prev_known = prev != 0;
    }
    if (prev_known && prev > e->term) {
        sim_fail(sim, "log-matching",
                 "n%" PRIu64 ": log terms decrease: index %" PRIu64
                 " has term %" PRIu64 " after term %" PRIu64,
                 n->id, index, e->term, prev);
        return;
    }
    uint64_t digest = sim_entry_digest(e);
    bool fresh;
    struct sim_reg *r = reg_slot(&sim->chk, index, e->term, &fresh);
    if (fresh) {
        r->digest = digest;
        r->prev_term = prev;
        r->prev_known = prev_known;
        r->node = n->id;
    } else {
        if (r->digest != digest) {
            sim_fail(sim, "log-matching",
                     "entry (index %" PRIu64 ", term %" PRIu64
                     ") differs between n%" PRIu64 " and n%" PRIu64
                     " (type %u on n%" PRIu64 ")",
                     index, e->term, r->node, n->id, (unsigned)e->type,
                     n->id);
            return;
        }
        if (prev_known && r->prev_known && r->prev_term != prev) {
            sim_fail(sim, "log-matching",
                     "entry (index %" PRIu64 ", term %" PRIu64
                     ") follows term %" PRIu64 " on n%" PRIu64
                     " but term %" PRIu64 " on n%" PRIu64
                     ": the logs differ before it",
                     index, e->term, r->prev_term, r->node, prev, n->id);
            return;
        }
        if (prev_known && !r->prev_known) {
            r->prev_term = prev;
            r->prev_known = true;
        }
    }
    struct sim_canon *c = canon_at(&sim->chk, index);
    if (c != NULL && index <= raft_node_commit_index(n->raft) &&
        (c->term != e->term || c->digest != digest)) {
        sim_fail(sim, "log-matching",
                 "n%" PRIu64 " holds index %" PRIu64 " (term %" PRIu64
                 ") as committed (commit %" PRIu64
                 ") but the committed entry has term %" PRIu64,
                 n->id, index, e->term, raft_node_commit_index(n->raft),
                 c->term);
    }
}

static void check_node_log(struct sim *sim, struct sim_node *n)
{
    raft_index first = raft_node_first_index(n->raft);
    raft_index last = raft_node_last_index(n->raft);
    for (raft_index i = first; i <= last && !sim->failed; i++) {
        if (i == 0) {
            continue;
        }
        check_entry(sim, n, i);
    }
}

void sim_check_all_logs(struct sim *sim)
{
    for (raft_id id = 1; id <= SIM_IDS_MAX && !sim->failed; id++) {
        struct sim_node *n = &sim->nodes[id];
        if (n->state == SIM_NODE_UP) {
            check_node_log(sim, n);
        }
    }
}

/* ---- leader completeness -------------------------------------------------- */

/* Checks canonical entries from index `from` on against leader n's log. */
static void check_leader_log(struct sim *sim, struct sim_node *n,
                             raft_index from)
{
    struct sim_checker *chk = &sim->chk;
    raft_term term = raft_node_term(n->raft);
    raft_index first = raft_node_first_index(n->raft);
    raft_index last = raft_node_last_index(n->raft);
    const struct raft_snapshot_meta *snap = raft_node_snapshot(n->raft);
    raft_index snap_index = snap ? snap->index : 0;
    for (raft_index i = from; i <= chk->canon_len && !sim->failed; i++) {
        if (i == 0) {
            continue;
        }
        struct sim_canon *c = &chk->canon[i - 1];
        if (c->seen_term >= term) {
            continue;
        }
        if (i < first) {
            if (snap_index < i) {
                sim_fail(sim, "leader-completeness",
                         "leader n%" PRIu64 " of term %" PRIu64
                         " lacks committed index %" PRIu64
                         " (first index %" PRIu64 ", snapshot %" PRIu64 ")",
                         n->id, term, i, first, snap_index);
            }
            continue;
        }
        if (i > last) {
            sim_fail(sim, "leader-completeness",
                     "leader n%" PRIu64 " of term %" PRIu64
                     " lacks committed index %" PRIu64 " (seen committed in"
                     " term %" PRIu64 "): its log ends at %" PRIu64,
                     n->id, term, i, c->seen_term, last);
            return;
        }
        const struct raft_entry *e = raft_node_entry_at(n->raft, i);
        if (e == NULL) {
            if (snap_index < i) {
                sim_fail(sim, "leader-completeness",
                         "leader n%" PRIu64 " of term %" PRIu64
                         " holds no entry at committed index %" PRIu64,
                         n->id, term, i);
            }
            continue;
        }
        if (e->term != c->term || sim_entry_digest(e) != c->digest) {
            sim_fail(sim, "leader-completeness",
                     "leader n%" PRIu64 " of term %" PRIu64
                     " has (index %" PRIu64 ", term %" PRIu64
                     ") where the committed entry has term %" PRIu64
                     " (seen committed in term %" PRIu64 " by n%" PRIu64 ")",
                     n->id, term, i, e->term, c->term, c->seen_term,
                     c->first_node);
            return;
        }
    }
}

/* ---- apply / restore ------------------------------------------------------ */

void sim_check_apply(struct sim *sim, struct sim_node *n,
                     const struct raft_entry *e, raft_term node_term)
{
    struct sim_checker *chk = &sim->chk;
    uint64_t digest = sim_entry_digest(e);
    uint64_t chain = sim_chain_next(n->sm.chain, e->index, digest);
    struct sim_canon *c = canon_at(chk, e->index);
    if (c != NULL) {
        if (c->term != e->term || c->type != e->type || c->digest != digest) {
            sim_fail(sim, "state-machine-safety",
                     "n%" PRIu64 " applied index %" PRIu64 " term %" PRIu64
                     " type %u, but n%" PRIu64 " applied term %" PRIu64
                     " type %u there (payloads %s)",
                     n->id, e->index, e->term, (unsigned)e->type,
                     c->first_node, c->term, (unsigned)c->type,
                     c->digest == digest ? "equal" : "differ");
            return;
        }
        if (c->chain != chain) {
            sim_fail(sim, "state-machine-safety",
                     "n%" PRIu64 " state after index %" PRIu64
                     " differs from the canonical state (it diverged at or"
                     " before this index)",
                     n->id, e->index);
            return;
        }
        if (node_term < c->seen_term) {
            c->seen_term = node_term;
        }
        return;
    }
    if (e->index != chk->canon_len + 1) {
        sim_fail(sim, "state-machine-safety",
                 "n%" PRIu64 " applied index %" PRIu64
                 " but the committed history ends at %zu",
                 n->id, e->index, chk->canon_len);
        return;
    }
    if (e->type == RAFT_ENTRY_NORMAL) {
        uint64_t id;
        if (sim_payload_check(e->buf.base, e->buf.len, sim->seed, &id) != 0) {
            sim_fail(sim, "integrity",
                     "committed NORMAL entry at index %" PRIu64
                     " (applied by n%" PRIu64 ") is not an intact proposal"
                     " (%zu bytes)",
                     e->index, n->id, e->buf.len);
            return;
        }
        if (id >= sim->next_proposal) {
            sim_fail(sim, "integrity",
                     "committed entry at index %" PRIu64
                     " carries proposal %" PRIu64 ", never proposed",
                     e->index, id);
            return;
        }
        if (id >= chk->proposals_cap) {
            size_t cap = chk->proposals_cap ? chk->proposals_cap : 1024;
            while (cap <= id) {
                cap *= 2;
            }
            chk->proposal_index = xrealloc(chk->proposal_index,
                                           cap * sizeof(raft_index));
            memset(chk->proposal_index + chk->proposals_cap, 0,
                   (cap - chk->proposals_cap) * sizeof(raft_index));
            chk->proposals_cap = cap;
        }
        if (chk->proposal_index[id] != 0) {
            sim_fail(sim, "integrity",
                     "proposal %" PRIu64 " committed twice, at index %" PRIu64
                     " and at index %" PRIu64,
                     id, chk->proposal_index[id], e->index);
            return;
        }
        chk->proposal_index[id] = e->index;
        if (sim->liveness && id >= sim->liveness_first_proposal &&
            chk->probe_index == 0) {
            chk->probe_index = e->index;
        }
    } else if (e->type == RAFT_ENTRY_NOOP) {
        if (e->buf.len != 0) {
            sim_fail(sim, "integrity",
                     "NOOP entry at index %" PRIu64 " has a payload",
                     e->index);
            return;
        }
    } else if (e->type != RAFT_ENTRY_CONFIG) {
        sim_fail(sim, "integrity",
                 "committed entry at index %" PRIu64 " has type %u",
                 e->index, (unsigned)e->type);
        return;
    }
    struct raft_config cfg;
    if (e->type == RAFT_ENTRY_CONFIG &&
        raft_config_decode(e->buf.base, e->buf.len, &cfg) != 0) {
        sim_fail(sim, "integrity",
                 "committed CONFIG entry at index %" PRIu64
                 " does not decode",
                 e->index);
        return;
    }
    if (chk->canon_len == chk->canon_cap) {
        chk->canon_cap = chk->canon_cap ? chk->canon_cap * 2 : 1024;
        chk->canon = xrealloc(chk->canon, chk->canon_cap * sizeof(*chk->canon));
    }
    struct sim_canon *nc = &chk->canon[chk->canon_len++];
    nc->term = e->term;
    nc->type = e->type;
    nc->digest = digest;
    nc->chain = chain;
    nc->seen_term = node_term;
    nc->first_node = n->id;
    if (e->type == RAFT_ENTRY_CONFIG) {
        chk->has_committed_config = true;
        chk->committed_config = cfg;
        sim_on_committed_config(sim, &cfg);
    }
}

void sim_check_restore(struct sim *sim, struct sim_node *n,
                       const struct sim_sm *state,
                       const struct raft_snapshot_meta *meta)
{
    struct sim_checker *chk = &sim->chk;
    if (meta != NULL &&
        (meta->index != state->applied || meta->term != state->applied_term)) {
        sim_fail(sim, "snapshot-meta",
                 "n%" PRIu64 ": snapshot metadata says index %" PRIu64
                 " term %" PRIu64 ", its data holds index %" PRIu64
                 " term %" PRIu64,
                 n->id, meta->index, meta->term, state->applied,
                 state->applied_term);
        return;
    }
    if (state->applied == 0) {
        return;
    }
    struct sim_canon *c = canon_at(chk, state->applied);
    if (c == NULL) {
        sim_fail(sim, "state-machine-safety",
                 "n%" PRIu64 " restored a snapshot at index %" PRIu64
                 " beyond the committed history (%zu)",
                 n->id, state->applied, chk->canon_len);
        return;
    }
    if (c->chain != state->chain || c->term != state->applied_term) {
        sim_fail(sim, "state-machine-safety",
                 "n%" PRIu64 " restored a snapshot at index %" PRIu64
                 " whose state differs from the committed history",
                 n->id, state->applied);
        return;
    }
    if (meta == NULL || meta->config_index == 0) {
        return;
    }
    struct sim_canon *cc = canon_at(chk, meta->config_index);
    uint8_t buf[RAFT_CONFIG_ENCODED_MAX];
    int len = raft_config_encode(&meta->config, buf, sizeof(buf));
    struct raft_entry ce = {
        .term = meta->config_term,
        .index = meta->config_index,
        .type = RAFT_ENTRY_CONFIG,
        .buf = {buf, len > 0 ? (size_t)len : 0},
    };
    if (meta->config_index > meta->index || cc == NULL ||
        cc->type != RAFT_ENTRY_CONFIG || cc->term != meta->config_term ||
        len < 0 || cc->digest != sim_entry_digest(&ce)) {
        sim_fail(sim, "snapshot-meta",
                 "n%" PRIu64 ": snapshot at index %" PRIu64
                 " names config entry (index %" PRIu64 ", term %" PRIu64
                 ") which is not that committed configuration",
                 n->id, meta->index, meta->config_index, meta->config_term);
    }
}

/* ---- per step --------------------------------------------------------------- */

static void note_leader(struct sim *sim, struct sim_node *n, raft_term term)
{
    struct sim_checker *chk = &sim->chk;
    if (term >= SIM_TERM_SANE) {
        sim_fail(sim, "sanity", "n%" PRIu64 " reached term %" PRIu64, n->id,
                 term);
        return;
    }
    if (term >= chk->leaders_cap) {
        size_t cap = chk->leaders_cap ? chk->leaders_cap : 64;
        while (cap <= term) {
            cap *= 2;
        }
        chk->leaders = xrealloc(chk->leaders, cap * sizeof(raft_id));
        memset(chk->leaders + chk->leaders_cap, 0,
               (cap - chk->leaders_cap) * sizeof(raft_id));
        chk->leaders_cap = cap;
    }
    if (chk->leaders[term] == n->id) {
        return;
    }
    if (chk->leaders[term] != 0) {
        sim_fail(sim, "election-safety",
                 "two leaders in term %" PRIu64 ": n%" PRIu64
                 " and n%" PRIu64,
                 term, chk->leaders[term], n->id);
        return;
    }
    chk->leaders[term] = n->id;
    /* A new leader must hold everything committed before its term. */
    check_leader_log(sim, n, 1);
}

void sim_check_step(struct sim *sim, struct sim_node *n, raft_index new_from,
                    raft_index new_to)
{
    struct sim_checker *chk = &sim->chk;
    if (n->state != SIM_NODE_UP || n->raft == NULL) {
        return;
    }
    struct raft_node *r = n->raft;
    raft_term term = raft_node_term(r);
    raft_index commit = raft_node_commit_index(r);
    if (term < n->last_term) {
        sim_fail(sim, "durability",
                 "n%" PRIu64 " term went back from %" PRIu64 " to %" PRIu64,
                 n->id, n->last_term, term);
        return;
    }
    if (commit < n->last_commit) {
        sim_fail(sim, "durability",
                 "n%" PRIu64 " commit index went back from %" PRIu64
                 " to %" PRIu64,
                 n->id, n->last_commit, commit);
        return;
    }
    n->last_term = term;
    n->last_commit = commit;
    if (commit > chk->max_commit_seen) {
        chk->max_commit_seen = commit;
    }
    if (raft_node_role(r) == RAFT_LEADER) {
        note_leader(sim, n, term);
    }
    for (raft_index i = new_from; i != 0 && i <= new_to && !sim->failed;
         i++) {
        check_entry(sim, n, i);
    }
    raft_index last = raft_node_last_index(r);
    raft_index first = raft_node_first_index(r);
    raft_index from = last > SIM_TAIL_WINDOW ? last - SIM_TAIL_WINDOW : 1;
    if (from < first) {
        from = first;
    }
    for (raft_index i = from; i <= last && i != 0 && !sim->failed; i++) {
        check_entry(sim, n, i);
    }
    if (chk->canon_checked < chk->canon_len) {
        for (raft_id id = 1; id <= SIM_IDS_MAX && !sim->failed; id++) {
            struct sim_node *x = &sim->nodes[id];
            if (x->state == SIM_NODE_UP &&
                raft_node_role(x->raft) == RAFT_LEADER) {
                check_leader_log(sim, x, chk->canon_checked + 1);
            }
        }
        chk->canon_checked = chk->canon_len;
    }
    if (++chk->steps_since_full >= SIM_FULL_CHECK_EVERY) {
        chk->steps_since_full = 0;
        sim_check_all_logs(sim);
    }
}
