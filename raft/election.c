/* election.c: timers, pre-vote, votes and role changes.
 *
 * Followers and candidates wait for a randomized election timeout (Raft
 * paper section 5.2). With priority election (Zeebe's PriorityElectionTimer)
 * a member whose priority is below the current target lowers the target by
 * one and waits another timeout instead of campaigning, so the
 * highest-priority live member normally campaigns first. A campaign starts
 * with a pre-vote poll when enabled (thesis 9.6): only if a majority would
 * vote does the candidate increment its term. With check-quorum, a member
 * that heard from a leader within the election timeout refuses votes (the
 * leader lease, thesis 4.2.3) unless the candidate was asked to campaign by
 * a leadership transfer. Votes follow section 5.4.1: at most one per term,
 * only for a candidate whose log is at least as up to date. */
#include "raft/impl.h"

void raft__election_reset_timer(struct raft_node *node)
{
    node->election_deadline = node->now + raft__random_timeout(node);
}

bool raft__in_lease(const struct raft_node *node)
{
    /* A leader holds a lease only when it checks its quorum (it steps down
     * once it loses it). A follower that heard from its leader within the
     * election timeout ignores candidates either way (thesis 4.2.3): a
     * removed member that never learns it was removed must not depose a
     * working leader again and again. */
    if (node->role == RAFT_LEADER) {
        return node->opt.check_quorum;
    }
    return node->leader != 0 && node->heard_leader &&
           node->now - node->last_leader_contact <
               node->opt.election_timeout;
}

void raft__become_follower(struct raft_node *node, raft_term term,
                           raft_id leader)
{
    RAFT_ASSERT(term >= node->term);
    if (term > node->term) {
        node->term = term;
        node->vote = 0;
        node->hard_state_dirty = true;
        node->receiving = false;
    }
    if (leader != node->leader || node->role != RAFT_FOLLOWER) {
        node->ack_index = 0;
        node->ack_sent = 0;
        node->ack_pending = false;
    }
    if (node->role == RAFT_LEADER) {
        raft__transfer_abort(node);
        node->change_pending = false;
        node->progress_count = 0;
    }
    /* The election timer restarts only on hearing from a leader, granting a
     * vote or campaigning (Figure 2), and a deposed leader needs a fresh
     * timer. A vote request we refuse must not restart it, nor reset the
     * priority target: otherwise a high-priority candidate with a stale log
     * keeps an up-to-date low-priority member from ever campaigning. */
    if (leader != 0 || node->role == RAFT_LEADER) {
        node->target_priority = raft__config_max_priority(&node->config);
        raft__election_reset_timer(node);
    }
    node->role = RAFT_FOLLOWER;
    node->leader = leader;
    if (leader != 0) {
        node->last_leader_contact = node->now;
        node->heard_leader = true;
    }
}

void raft__election_heard_leader(struct raft_node *node, raft_id from)
{
    if (node->role != RAFT_FOLLOWER || node->leader != from) {
        raft__become_follower(node, node->term, from);
        return;
    }
    node->last_leader_contact = node->now;
    node->heard_leader = true;
    node->target_priority = raft__config_max_priority(&node->config);
    raft__election_reset_timer(node);
}

static void election_become_leader(struct raft_node *node)
{
    int rv;

    RAFT_ASSERT(node->role == RAFT_CANDIDATE);
    RAFT_ASSERT(node->vote == node->id);
    node->role = RAFT_LEADER;
    node->leader = node->id;
    node->uncommitted_bytes = 0;
    node->transfer_to = 0;
    node->change_pending = false;
    node->progress_count = 0;
    node->heartbeat_deadline = node->now + node->opt.heartbeat_interval;
    node->quorum_deadline = node->now + node->opt.election_timeout;
    raft__membership_refresh(node);

    /* Commit an entry of the new term right away (section 8), so entries
     * of earlier terms get committed too (section 5.4.2). A leader elected
     * under a forced configuration writes that configuration into the log
     * instead, which ends the override once committed. */
    if (node->forced && node->log_config_term <= node->forced_term) {
        uint8_t buf[RAFT_CONFIG_ENCODED_MAX];
        int n = raft_config_encode(&node->forced_config, buf, sizeof(buf));
        struct raft_buf b;
        RAFT_ASSERT(n > 0);
        b.base = buf;
        b.len = (size_t)n;
        rv = raft__replication_append_local(node, RAFT_ENTRY_CONFIG, b);
    } else {
        struct raft_buf b = {NULL, 0};
        rv = raft__replication_append_local(node, RAFT_ENTRY_NOOP, b);
    }
    /* UNTESTED: without the entry the leader still works; the next
     * proposal commits the earlier terms' entries. */
    (void)rv;
    node->broadcast_pending = true;
    raft__replication_maybe_commit(node);
}

static int election_answer(void *ctx, raft_id id)
{
    struct raft_node *node = ctx;
    for (uint32_t i = 0; i < node->vote_count; i++) {
        if (node->votes[i].id == id) {
            return node->votes[i].answer;
        }
    }
    return 0;
}

static void election_record(struct raft_node *node, raft_id id, int8_t answer)
{
    for (uint32_t i = 0; i < node->vote_count; i++) {
        if (node->votes[i].id == id) {
            return;
        }
    }
    if (node->vote_count < 2 * RAFT_MEMBERS_MAX) {
        node->votes[node->vote_count].id = id;
        node->votes[node->vote_count].answer = answer;
        node->vote_count++;
    }
}

static void election_tally(struct raft_node *node)
{
    enum raft_quorum q = raft__config_tally(&node->config, election_answer,
                                            node);
    if (q == RAFT_QUORUM_WON) {
        if (node->role == RAFT_PRE_CANDIDATE) {
            raft__election_start(node, false, node->campaign_transfer);
        } else {
            election_become_leader(node);
        }
    } else if (q == RAFT_QUORUM_LOST) {
        raft__become_follower(node, node->term, 0);
    }
}

static void election_send_requests(struct raft_node *node, uint8_t type,
                                   raft_term term)
{
    const struct raft_config *c = &node->config;
    raft_id ids[2 * RAFT_MEMBERS_MAX];
    uint32_t n = 0;

    for (uint32_t i = 0; i < c->count; i++) {
        if (c->members[i].role == RAFT_VOTER) {
            ids[n++] = c->members[i].id;
        }
    }
    for (uint32_t i = 0; i < c->old_count; i++) {
        if (!raft__config_is_voter(c, c->old_voters[i])) {
            ids[n++] = c->old_voters[i];
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        struct raft_outgoing *o;
        if (ids[i] == node->id) {
            continue;
        }
        o = raft__send(node, type, ids[i]);
        if (o == NULL) {
            continue;
        }
        o->msg.term = term;
        o->msg.index = raft__log_last(&node->log);
        o->msg.log_term = raft__log_last_term(&node->log);
        o->msg.transfer = node->campaign_transfer;
    }
}

bool raft__election_can_campaign(const struct raft_node *node)
{
    struct raft_config prev;
    raft_index prev_index;
    raft_term prev_term;

    if (raft__config_is_voter(&node->config, node->id) ||
        raft__config_is_old_voter(&node->config, node->id)) {
        return true;
    }
    /* Removed by a configuration that is not committed yet: this member
     * may hold the only up-to-date log a joint quorum needs, and refuses
     * its vote to candidates that lack it. It may lead under the new
     * configuration (a leader need not be one of its voters, thesis 4.2.2),
     * commit it, and then step down. */
    if (node->forced || node->log_config_index <= node->commit ||
        node->log_config_index == 0) {
        return false;
    }
    raft__membership_config_at(node, node->log_config_index - 1, &prev,
                               &prev_index, &prev_term);
    return raft__config_is_voter(&prev, node->id) ||
           raft__config_is_old_voter(&prev, node->id);
}

void raft__election_start(struct raft_node *node, bool pre_vote,
                          bool transfer)
{
    RAFT_ASSERT(node->role != RAFT_LEADER);
    RAFT_ASSERT(raft__election_can_campaign(node));
    node->vote_count = 0;
    node->campaign_transfer = transfer;
    node->leader = 0;
    node->ack_index = 0;
    node->ack_sent = 0;
    node->ack_pending = false;
    raft__election_reset_timer(node);
    if (pre_vote) {
        node->role = RAFT_PRE_CANDIDATE;
        election_record(node, node->id, 1);
        election_send_requests(node, RAFT_MSG_PRE_VOTE, node->term + 1);
    } else {
        node->role = RAFT_CANDIDATE;
        node->term++;
        node->vote = node->id;
        node->hard_state_dirty = true;
        node->receiving = false;
        election_record(node, node->id, 1);
        election_send_requests(node, RAFT_MSG_VOTE, node->term);
    }
    election_tally(node);
}

void raft__election_tick(struct raft_node *node)
{
    RAFT_ASSERT(node->role != RAFT_LEADER);
    if (node->now < node->election_deadline) {
        return;
    }
    if (!raft__election_can_campaign(node)) {
        /* Learners and non-members never campaign. */
        raft__election_reset_timer(node);
        return;
    }
    if (node->opt.priority_election && node->role == RAFT_FOLLOWER) {
        uint8_t mine = raft__config_priority(&node->config, node->id);
        if (mine < node->target_priority) {
            node->target_priority--;
            raft__election_reset_timer(node);
            return;
        }
    }
    raft__election_start(node, node->opt.pre_vote, false);
}

static bool election_up_to_date(const struct raft_node *node,
                                const struct raft_message *m)
{
    raft_term last_term = raft__log_last_term(&node->log);
    if (m->log_term != last_term) {
        return m->log_term > last_term;
    }
    return m->index >= raft__log_last(&node->log);
}

void raft__recv_vote(struct raft_node *node, const struct raft_message *m)
{
    bool pre = m->type == RAFT_MSG_PRE_VOTE;
    bool grant;
    struct raft_outgoing *o;

    RAFT_ASSERT(m->term >= node->term);
    if (pre) {
        grant = m->term > node->term;
    } else {
        grant = m->term == node->term &&
                (node->vote == 0 || node->vote == m->from);
    }
    if (grant && !m->transfer && raft__in_lease(node) &&
        node->leader != m->from) {
        grant = false;
    }
    if (grant && !election_up_to_date(node, m)) {
        grant = false;
    }
    o = raft__send(node, pre ? RAFT_MSG_PRE_VOTE_RESP : RAFT_MSG_VOTE_RESP,
                   m->from);
    if (grant && !pre) {
        node->vote = m->from;
        node->hard_state_dirty = true;
        raft__election_reset_timer(node);
    }
    if (o != NULL) {
        o->msg.reject = !grant;
        o->msg.term = (grant && pre) ? m->term : node->term;
    }
}

void raft__recv_vote_resp(struct raft_node *node,
                          const struct raft_message *m)
{
    if (m->type == RAFT_MSG_VOTE_RESP) {
        if (node->role != RAFT_CANDIDATE || m->term != node->term) {
            return;
        }
    } else {
        if (node->role != RAFT_PRE_CANDIDATE) {
            return;
        }
        if (!m->reject && m->term != node->term + 1) {
            return;
        }
    }
    election_record(node, m->from, m->reject ? -1 : 1);
    election_tally(node);
}

void raft__recv_timeout_now(struct raft_node *node,
                            const struct raft_message *m)
{
    if (node->role == RAFT_LEADER || m->from != node->leader) {
        return;
    }
    if (!raft__config_is_voter(&node->config, node->id)) {
        return;
    }
    /* Leadership transfer (thesis 3.10): campaign at once, skipping the
     * pre-vote, and tell voters to disregard their leader lease. */
    raft__election_start(node, false, true);
}
