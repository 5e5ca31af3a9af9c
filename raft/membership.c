/* membership.c: configuration changes, forced reconfiguration, and
 * leadership transfer.
 *
 * A configuration takes effect as soon as its entry is in the log,
 * committed or not (thesis 4.1); truncating the entry reverts to the
 * previous one, so the log configuration is recomputed from the log
 * whenever entries are removed.
 *
 * RAFT_EVENT_CHANGE moves a leader towards a target member set:
 *   1. voters of the target that are not voters yet join as learners;
 *   2. once that entry is committed and every such learner's match index is
 *      within catch_up_lag_max of the leader's last index, the leader
 *      appends the joint configuration C(old,new) (section 6), or the target
 *      itself when the voter sets are equal (priorities, learners);
 *   3. when the joint entry commits, the leader appends C(new); a leader
 *      that is not a voter of C(new) steps down once C(new) commits.
 *
 * RAFT_EVENT_FORCE records a member set in the hard state that overrides
 * the log's configuration until a configuration entry of a later term
 * (written by the first leader elected under the forced set) is committed.
 * See docs/raft.md for when that is safe.
 *
 * RAFT_EVENT_TRANSFER (thesis 3.10) stops proposals, catches the target up,
 * sends it TIMEOUT_NOW, and gives up after an election timeout. */
#include <string.h>

#include "raft/impl.h"

void raft__membership_config_at(const struct raft_node *node,
                                raft_index index, struct raft_config *out,
                                raft_index *config_index,
                                raft_term *config_term)
{
    const struct raft_log *log = &node->log;
    raft_index i = index < raft__log_last(log) ? index : raft__log_last(log);

    for (; i > log->offset; i--) {
        const struct raft_entry *e = raft__log_get(log, i);
        if (e->type == RAFT_ENTRY_CONFIG) {
            int rv = raft_config_decode(e->buf.base, e->buf.len, out);
            RAFT_ASSERT(rv == 0);
            *config_index = i;
            *config_term = e->term;
            return;
        }
    }
    if (node->has_snapshot) {
        *out = node->snapshot.config;
        *config_index = node->snapshot.config_index;
        *config_term = node->snapshot.config_term;
        return;
    }
    raft_config_init(out);
    *config_index = 0;
    *config_term = 0;
}

static bool membership_forced_active(const struct raft_node *node)
{
    return node->forced && node->log_config_term <= node->forced_term;
}

static void membership_sync_progress(struct raft_node *node)
{
    const struct raft_config *c = &node->config;
    uint32_t i = 0;

    /* Drop members that left (swap with the last slot, so each slot keeps
     * its own inflight ring). */
    while (i < node->progress_count) {
        if (raft__config_contains(c, node->progress[i].id)) {
            i++;
            continue;
        }
        node->progress_count--;
        if (i != node->progress_count) {
            struct raft_progress tmp = node->progress[i];
            node->progress[i] = node->progress[node->progress_count];
            node->progress[node->progress_count] = tmp;
        }
    }
    for (uint32_t k = 0; k < c->count + c->old_count; k++) {
        raft_id id = k < c->count ? c->members[k].id
                                  : c->old_voters[k - c->count];
        struct raft_progress *p;
        if (id == node->id || raft__progress_get(node, id) != NULL) {
            continue;
        }
        RAFT_ASSERT(node->progress_count < 2 * RAFT_MEMBERS_MAX);
        p = &node->progress[node->progress_count++];
        p->id = id;
        raft__progress_reset(node, p);
    }
}

void raft__membership_refresh(struct raft_node *node)
{
    const struct raft_config *eff = membership_forced_active(node)
                                        ? &node->forced_config
                                        : &node->log_config;
    if (!raft__config_equal(eff, &node->config)) {
        node->config = *eff;
        node->config_changed = true;
        node->target_priority = raft__config_max_priority(&node->config);
    }
    if (node->role == RAFT_LEADER) {
        membership_sync_progress(node);
    }
}

void raft__membership_recompute(struct raft_node *node)
{
    raft__membership_config_at(node, raft__log_last(&node->log),
                               &node->log_config, &node->log_config_index,
                               &node->log_config_term);
    raft__membership_refresh(node);
}

int raft__membership_appended(struct raft_node *node,
                              const struct raft_entry *entry)
{
    struct raft_config c;
    int rv;

    RAFT_ASSERT(entry != NULL);
    RAFT_ASSERT(entry->type == RAFT_ENTRY_CONFIG);
    rv = raft_config_decode(entry->buf.base, entry->buf.len, &c);
    if (rv != 0) {
        return rv;
    }
    node->log_config = c;
    node->log_config_index = entry->index;
    node->log_config_term = entry->term;
    raft__membership_refresh(node);
    return 0;
}

static void membership_voters(const struct raft_config *c, raft_id *ids,
                              uint32_t *n)
{
    *n = 0;
    for (uint32_t i = 0; i < c->count; i++) {
        if (c->members[i].role == RAFT_VOTER) {
            ids[(*n)++] = c->members[i].id;
        }
    }
}

static bool membership_same_voters(const struct raft_config *a,
                                   const struct raft_config *b)
{
    raft_id ids[RAFT_MEMBERS_MAX];
    uint32_t n;
    uint32_t m = 0;

    membership_voters(a, ids, &n);
    for (uint32_t i = 0; i < n; i++) {
        if (!raft__config_is_voter(b, ids[i])) {
            return false;
        }
    }
    for (uint32_t i = 0; i < b->count; i++) {
        if (b->members[i].role == RAFT_VOTER) {
            m++;
        }
    }
    return m == n;
}

static int membership_append_config(struct raft_node *node,
                                    const struct raft_config *c)
{
    uint8_t buf[RAFT_CONFIG_ENCODED_MAX];
    struct raft_buf b;
    int n;

    RAFT_ASSERT(raft_config_validate(c) == 0);
    n = raft_config_encode(c, buf, sizeof(buf));
    RAFT_ASSERT(n > 0);
    b.base = buf;
    b.len = (size_t)n;
    return raft__replication_append_local(node, RAFT_ENTRY_CONFIG, b);
}

/* The entry after the learners caught up: joint when voters change. */
static int membership_append_target(struct raft_node *node)
{
    const struct raft_config *cur = &node->config;
    const struct raft_config *target = &node->change_target;
    struct raft_config joint;
    uint32_t n;

    RAFT_ASSERT(cur->old_count == 0);
    if (membership_same_voters(cur, target)) {
        return membership_append_config(node, target);
    }
    joint = *target;
    membership_voters(cur, joint.old_voters, &n);
    joint.old_count = n;
    return membership_append_config(node, &joint);
}

static bool membership_caught_up(struct raft_node *node)
{
    const struct raft_config *target = &node->change_target;
    raft_index last = raft__log_last(&node->log);

    if (node->log_config_index > node->commit) {
        return false;
    }
    for (uint32_t i = 0; i < target->count; i++) {
        const struct raft_member *t = &target->members[i];
        struct raft_progress *p;
        if (t->role != RAFT_VOTER || t->id == node->id ||
            raft__config_is_voter(&node->config, t->id)) {
            continue;
        }
        p = raft__progress_get(node, t->id);
        if (p == NULL || p->match + node->opt.catch_up_lag_max < last) {
            return false;
        }
    }
    return true;
}

void raft__membership_advance(struct raft_node *node)
{
    if (node->forced && node->log_config_term > node->forced_term &&
        node->log_config_index <= node->commit) {
        node->forced = false;
        node->hard_state_dirty = true;
        raft__membership_refresh(node);
    }
    if (node->role != RAFT_LEADER ||
        node->log_config_index > node->commit) {
        return;
    }
    if (node->log_config.old_count > 0) {
        /* C(old,new) is committed: move on to C(new). */
        struct raft_config next = node->log_config;
        next.old_count = 0;
        memset(next.old_voters, 0, sizeof(next.old_voters));
        (void)membership_append_config(node, &next);
        return;
    }
    if (!raft__config_is_voter(&node->config, node->id)) {
        /* Removed (or demoted) and C(new) is committed: step down. */
        raft__become_follower(node, node->term, 0);
        return;
    }
    if (node->change_pending && membership_caught_up(node)) {
        node->change_pending = false;
        (void)membership_append_target(node);
    }
}

int raft__membership_change(struct raft_node *node,
                            const struct raft_config *target)
{
    struct raft_config step;
    bool catch_up = false;
    uint32_t union_count;
    int rv;

    if (node->role != RAFT_LEADER) {
        return RAFT_E_NOT_LEADER;
    }
    if (target->old_count != 0 || raft_config_validate(target) != 0) {
        return RAFT_E_INVALID;
    }
    if (node->forced || node->transfer_to != 0 || raft_node_changing(node)) {
        return RAFT_E_BUSY;
    }
    RAFT_ASSERT(node->config.old_count == 0);
    step = node->config;
    /* The joint configuration lists the union of both sets. */
    union_count = target->count;
    for (uint32_t i = 0; i < node->config.count; i++) {
        const struct raft_member *m = &node->config.members[i];
        if (m->role == RAFT_VOTER &&
            raft_config_member(target, m->id) == NULL) {
            union_count++;
        }
    }
    if (union_count > RAFT_MEMBERS_MAX) {
        return RAFT_E_INVALID;
    }
    for (uint32_t i = 0; i < target->count; i++) {
        const struct raft_member *t = &target->members[i];
        if (t->role != RAFT_VOTER ||
            raft__config_is_voter(&node->config, t->id)) {
            continue;
        }
        catch_up = true;
        if (raft_config_member(&step, t->id) == NULL) {
            rv = raft_config_add(&step, t->id, RAFT_LEARNER, t->priority);
            if (rv != 0) {
                return RAFT_E_INVALID;
            }
        }
    }
    node->change_target = *target;
    if (!catch_up) {
        return membership_append_target(node);
    }
    if (!raft__config_equal(&step, &node->config)) {
        rv = membership_append_config(node, &step);
        if (rv != 0) {
            return rv;
        }
    }
    node->change_pending = true;
    raft__membership_advance(node);
    return 0;
}

int raft__membership_force(struct raft_node *node,
                           const struct raft_config *config)
{
    if (config->old_count != 0 || raft_config_validate(config) != 0) {
        return RAFT_E_INVALID;
    }
    for (uint32_t i = 0; i < config->count; i++) {
        if (!raft__config_contains(&node->config, config->members[i].id)) {
            return RAFT_E_NOT_MEMBER;
        }
    }
    if (!raft__config_is_voter(config, node->id)) {
        return RAFT_E_NOT_MEMBER;
    }
    if (node->forced) {
        /* Until the previous forced set is committed in the log, entries
         * committed before it are only known to overlap each of its
         * majorities, not to sit on one: forcing again could lose them. */
        return RAFT_E_BUSY;
    }
    node->forced = true;
    node->forced_term = node->term;
    node->forced_config = *config;
    node->hard_state_dirty = true;
    /* Whatever this node was, an election under the new set follows. */
    raft__become_follower(node, node->term, 0);
    node->change_pending = false;
    raft__membership_refresh(node);
    node->target_priority = raft__config_max_priority(&node->config);
    return 0;
}

/* ------------------------------------------------------------------------
 * Leadership transfer
 * --------------------------------------------------------------------- */

int raft__transfer_start(struct raft_node *node, raft_id to)
{
    if (node->role != RAFT_LEADER) {
        return RAFT_E_NOT_LEADER;
    }
    if (to == node->id || !raft__config_is_voter(&node->config, to)) {
        return RAFT_E_INVALID;
    }
    if (node->transfer_to != 0) {
        return RAFT_E_BUSY;
    }
    node->transfer_to = to;
    node->transfer_deadline = node->now + node->opt.election_timeout;
    node->transfer_sent = false;
    raft__transfer_check(node);
    return 0;
}

void raft__transfer_check(struct raft_node *node)
{
    struct raft_progress *p;

    if (node->role != RAFT_LEADER || node->transfer_to == 0 ||
        node->transfer_sent) {
        return;
    }
    p = raft__progress_get(node, node->transfer_to);
    if (p == NULL) {
        raft__transfer_abort(node);
        return;
    }
    if (p->match == raft__log_last(&node->log)) {
        if (raft__send(node, RAFT_MSG_TIMEOUT_NOW, p->id) != NULL) {
            node->transfer_sent = true;
        }
        return;
    }
    raft__replication_send(node, p, false);
}

void raft__transfer_abort(struct raft_node *node)
{
    node->transfer_to = 0;
    node->transfer_sent = false;
}
