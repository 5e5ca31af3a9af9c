/* replication.c: log replication, its acknowledgements, and commitment.
 *
 * Leader side: each other member has a progress (etcd's Progress): PROBE
 * sends one append at a time until a follower's log is found to match;
 * REPLICATE pipelines appends optimistically, at most inflight_max in
 * flight, each at most batch_entries_max entries and batch_bytes_max payload
 * bytes; SNAPSHOT hands over to snapshot.c. Rejections carry a hint (the
 * follower's last index, or the last index whose term is <= the rejected
 * term) so the leader skips a whole conflicting term per round trip.
 * Proposals are appended at once but sent when the update is built, so all
 * proposals stepped between two updates travel in one append per follower.
 *
 * Follower side: an append is checked against the previous index and term
 * (Figure 2), conflicting entries are truncated (section 5.3), new ones
 * appended, and the commit index follows the leader's (bounded by the last
 * new entry). The acknowledgement of new entries is held back until they are
 * durable (RAFT_EVENT_PERSISTED), so the leader only ever counts durable
 * copies. The leader counts itself only for its own durable entries, and
 * commits only entries of its own term by counting (section 5.4.2). */
#include <string.h>

#include "raft/impl.h"

/* ------------------------------------------------------------------------
 * Progress
 * --------------------------------------------------------------------- */

struct raft_progress *raft__progress_get(struct raft_node *node, raft_id id)
{
    for (uint32_t i = 0; i < node->progress_count; i++) {
        if (node->progress[i].id == id) {
            return &node->progress[i];
        }
    }
    return NULL;
}

void raft__progress_reset(struct raft_node *node, struct raft_progress *p)
{
    p->match = 0;
    p->next = raft__log_last(&node->log) + 1;
    p->state = RAFT_PROGRESS_PROBE;
    p->paused = false;
    p->recent_active = true;
    p->inflight_head = 0;
    p->inflight_count = 0;
    p->snap_index = 0;
    p->snap_sent = 0;
    p->snap_acked = 0;
    p->snap_acked_at_heartbeat = 0;
    p->match_at_heartbeat = 0;
    p->stalled_heartbeats = 0;
}

static void progress_inflight_push(struct raft_node *node,
                                   struct raft_progress *p, raft_index last)
{
    uint32_t max = node->opt.inflight_max;
    RAFT_ASSERT(p->inflight_count < max);
    p->inflight[(p->inflight_head + p->inflight_count) % max] = last;
    p->inflight_count++;
}

static void progress_inflight_free_to(struct raft_node *node,
                                      struct raft_progress *p,
                                      raft_index index)
{
    uint32_t max = node->opt.inflight_max;
    while (p->inflight_count > 0 && p->inflight[p->inflight_head] <= index) {
        p->inflight_head = (p->inflight_head + 1) % max;
        p->inflight_count--;
    }
}

static void progress_become_probe(struct raft_progress *p, raft_index next)
{
    p->state = RAFT_PROGRESS_PROBE;
    p->paused = false;
    p->next = next;
    p->inflight_head = 0;
    p->inflight_count = 0;
}

static void progress_become_replicate(struct raft_progress *p)
{
    p->state = RAFT_PROGRESS_REPLICATE;
    p->paused = false;
    p->next = p->match + 1;
    p->inflight_head = 0;
    p->inflight_count = 0;
}

/* ------------------------------------------------------------------------
 * Sending
 * --------------------------------------------------------------------- */

void raft__replication_send(struct raft_node *node, struct raft_progress *p,
                            bool force)
{
    struct raft_log *log = &node->log;
    raft_index prev;
    raft_index last = raft__log_last(log);
    raft_index idx;
    uint64_t bytes = 0;
    size_t n = 0;
    struct raft_outgoing *o;

    RAFT_ASSERT(node->role == RAFT_LEADER);
    RAFT_ASSERT(p->next >= 1);
    if (p->state == RAFT_PROGRESS_SNAPSHOT) {
        raft__snapshot_send(node, p);
        return;
    }
    if (p->state == RAFT_PROGRESS_PROBE && p->paused && !force) {
        return;
    }
    if (p->state == RAFT_PROGRESS_REPLICATE &&
        p->inflight_count >= node->opt.inflight_max) {
        return;
    }
    prev = p->next - 1;
    if (prev < log->offset) {
        /* The entries this follower needs are compacted away. */
        RAFT_ASSERT(node->has_snapshot);
        p->state = RAFT_PROGRESS_SNAPSHOT;
        p->snap_index = node->snapshot.index;
        p->snap_sent = 0;
        p->snap_acked = 0;
        p->snap_acked_at_heartbeat = 0;
        raft__snapshot_send(node, p);
        return;
    }
    for (idx = p->next; idx <= last && n < node->opt.batch_entries_max;
         idx++) {
        const struct raft_entry *e = raft__log_get(log, idx);
        if (n > 0 && bytes + e->buf.len > node->opt.batch_bytes_max) {
            break;
        }
        bytes += e->buf.len;
        n++;
    }
    if (p->state == RAFT_PROGRESS_REPLICATE && n == 0 && !force) {
        return;
    }
    o = raft__send(node, RAFT_MSG_APPEND, p->id);
    if (o == NULL) {
        return;
    }
    o->msg.index = prev;
    o->msg.log_term = raft__log_term(log, prev);
    o->msg.commit = node->commit;
    o->msg.entry_count = n;
    o->entries_first = p->next;
    if (p->state == RAFT_PROGRESS_REPLICATE) {
        if (n > 0) {
            p->next += n;
            progress_inflight_push(node, p, p->next - 1);
        }
    } else {
        p->paused = true;
    }
}

/* An empty append at the follower's match index: carries the commit index,
 * resets the follower's election timer and, answered, shows the follower is
 * alive (check-quorum). */
static void replication_heartbeat_one(struct raft_node *node,
                                      struct raft_progress *p)
{
    struct raft_outgoing *o;

    switch (p->state) {
    case RAFT_PROGRESS_PROBE:
        p->paused = false;
        raft__replication_send(node, p, true);
        return;
    case RAFT_PROGRESS_SNAPSHOT:
        if (p->snap_acked == p->snap_acked_at_heartbeat) {
            /* No progress since the last heartbeat: chunks were lost. */
            p->snap_sent = p->snap_acked;
        }
        p->snap_acked_at_heartbeat = p->snap_acked;
        raft__snapshot_send(node, p);
        return;
    default:
        break;
    }
    /* An append lost on the way leaves the follower behind while we
     * believe entries are in flight; nothing reveals the gap until the next
     * proposal. Two heartbeats in a row without progress: probe again from
     * the match index (resending is harmless, followers skip duplicates). */
    if (p->inflight_count > 0 && p->match == p->match_at_heartbeat) {
        p->stalled_heartbeats++;
    } else {
        p->stalled_heartbeats = 0;
    }
    p->match_at_heartbeat = p->match;
    if (p->stalled_heartbeats >= 2) {
        p->stalled_heartbeats = 0;
        progress_become_probe(p, p->match + 1);
        raft__replication_send(node, p, true);
        return;
    }
    if (p->match < node->log.offset) {
        raft__replication_send(node, p, true);
        return;
    }
    o = raft__send(node, RAFT_MSG_APPEND, p->id);
    if (o != NULL) {
        o->msg.index = p->match;
        o->msg.log_term = raft__log_term(&node->log, p->match);
        o->msg.commit = node->commit;
    }
    raft__replication_send(node, p, false);
}

void raft__replication_heartbeat(struct raft_node *node)
{
    for (uint32_t i = 0; i < node->progress_count; i++) {
        replication_heartbeat_one(node, &node->progress[i]);
    }
}

void raft__replication_broadcast(struct raft_node *node)
{
    RAFT_ASSERT(node->role == RAFT_LEADER);
    node->broadcast_pending = false;
    for (uint32_t i = 0; i < node->progress_count; i++) {
        struct raft_progress *p = &node->progress[i];
        raft__replication_send(node, p, false);
        /* Fill the pipeline: more batches while the window allows. */
        while (p->state == RAFT_PROGRESS_REPLICATE &&
               p->next <= raft__log_last(&node->log) &&
               p->inflight_count < node->opt.inflight_max &&
               node->outbox_count < node->opt.messages_max) {
            raft__replication_send(node, p, false);
        }
    }
}

/* ------------------------------------------------------------------------
 * Leader: local appends and commitment
 * --------------------------------------------------------------------- */

int raft__replication_append_local(struct raft_node *node, uint8_t type,
                                   struct raft_buf buf)
{
    int rv;

    RAFT_ASSERT(node->role == RAFT_LEADER);
    rv = raft__log_reserve(&node->log, &node->opt.heap, 1);
    if (rv != 0) {
        return rv;
    }
    rv = raft__log_append(&node->log, &node->opt.heap, node->term, type, buf);
    if (rv != 0) {
        return rv;
    }
    if (type == RAFT_ENTRY_CONFIG) {
        rv = raft__membership_appended(
            node, raft__log_get(&node->log, raft__log_last(&node->log)));
        RAFT_ASSERT(rv == 0);
    }
    node->broadcast_pending = true;
    return 0;
}

int raft__replication_propose(struct raft_node *node,
                              const struct raft_buf *bufs, size_t count,
                              raft_index *first_index)
{
    uint64_t total = 0;
    raft_index first;
    int rv;

    if (node->role != RAFT_LEADER) {
        return RAFT_E_NOT_LEADER;
    }
    if (node->transfer_to != 0) {
        return RAFT_E_BUSY;
    }
    for (size_t i = 0; i < count; i++) {
        if (bufs[i].len > 0 && bufs[i].base == NULL) {
            return RAFT_E_INVALID;
        }
        if (bufs[i].len > node->opt.entry_bytes_max) {
            return RAFT_E_TOO_BIG;
        }
        total += bufs[i].len;
    }
    if (node->uncommitted_bytes > 0 &&
        node->uncommitted_bytes + total > node->opt.uncommitted_bytes_max) {
        return RAFT_E_BUSY;
    }
    rv = raft__log_reserve(&node->log, &node->opt.heap, count);
    if (rv != 0) {
        return rv;
    }
    first = raft__log_last(&node->log) + 1;
    for (size_t i = 0; i < count; i++) {
        rv = raft__log_append(&node->log, &node->opt.heap, node->term,
                              RAFT_ENTRY_NORMAL, bufs[i]);
        if (rv != 0) {
            /* UNTESTED: undo the partial batch, nothing was handed out. */
            raft__log_truncate(&node->log, &node->opt.heap, first);
            return rv;
        }
    }
    node->uncommitted_bytes += total;
    if (first_index != NULL) {
        *first_index = first;
    }
    node->broadcast_pending = true;
    return 0;
}

static raft_index replication_match(void *ctx, raft_id id)
{
    struct raft_node *node = ctx;
    struct raft_progress *p;

    if (id == node->id) {
        return node->persisted;
    }
    p = raft__progress_get(node, id);
    return p == NULL ? 0 : p->match;
}

void raft__replication_maybe_commit(struct raft_node *node)
{
    raft_index q;
    raft_index old = node->commit;

    if (node->role != RAFT_LEADER) {
        return;
    }
    q = raft__config_quorum_index(&node->config, replication_match, node);
    if (q <= node->commit || raft__log_term(&node->log, q) != node->term) {
        return;
    }
    RAFT_ASSERT(q <= raft__log_last(&node->log));
    node->commit = q;
    for (raft_index i = old + 1; i <= q; i++) {
        const struct raft_entry *e = raft__log_get(&node->log, i);
        if (e != NULL && e->term == node->term && e->type == RAFT_ENTRY_NORMAL) {
            node->uncommitted_bytes -= e->buf.len <= node->uncommitted_bytes
                                           ? e->buf.len
                                           : node->uncommitted_bytes;
        }
    }
    raft__membership_advance(node);
}

/* ------------------------------------------------------------------------
 * Follower: appends
 * --------------------------------------------------------------------- */

static void replication_truncate(struct raft_node *node, raft_index from)
{
    RAFT_ASSERT(from > node->commit);
    RAFT_ASSERT(from > node->applied);
    raft__log_truncate(&node->log, &node->opt.heap, from);
    if (node->persisted >= from) {
        node->persisted = from - 1;
    }
    if (node->unstable_from > from) {
        node->unstable_from = from;
    }
    if (node->log_config_index >= from) {
        raft__membership_recompute(node);
    }
}

static void replication_respond(struct raft_node *node, raft_id to,
                                raft_index index)
{
    struct raft_outgoing *o = raft__send(node, RAFT_MSG_APPEND_RESP, to);
    if (o != NULL) {
        o->msg.index = index;
    }
    if (index > node->ack_sent) {
        node->ack_sent = index;
    }
}

void raft__replication_ack(struct raft_node *node)
{
    raft_index durable;

    if (node->role != RAFT_FOLLOWER || node->leader == 0) {
        return;
    }
    durable = node->ack_index < node->persisted ? node->ack_index
                                                : node->persisted;
    if (durable > node->ack_sent) {
        replication_respond(node, node->leader, durable);
    }
    if (durable >= node->ack_index) {
        node->ack_pending = false;
    }
}

void raft__recv_append(struct raft_node *node, const struct raft_message *m)
{
    struct raft_log *log = &node->log;
    const struct raft_entry *entries = m->entries;
    size_t n = m->entry_count;
    raft_index prev = m->index;
    raft_term prev_term = m->log_term;
    raft_index verified = m->index + m->entry_count;
    raft_index commit;
    raft_index durable;
    size_t i;
    int rv;

    RAFT_ASSERT(m->term == node->term);
    if (node->role == RAFT_LEADER) {
        /* Another leader in our term cannot exist (election safety, 5.2):
         * the sender is faulty. Ignore it rather than trust it. */
        return;
    }
    raft__election_heard_leader(node, m->from);

    /* Entries up to the commit index are committed: they match any
     * leader's log (leader completeness), so skip them. */
    if (prev < node->commit) {
        size_t skip = (size_t)(node->commit - prev);
        if (skip >= n) {
            skip = n;
        }
        if (skip > 0) {
            prev += skip;
            prev_term = entries[skip - 1].term;
            entries += skip;
            n -= skip;
        }
        if (prev < node->commit) {
            /* Everything in the message is committed here already. */
            RAFT_ASSERT(n == 0);
            prev = node->commit;
            prev_term = raft__log_term(log, prev);
        }
    }

    if (prev > raft__log_last(log) ||
        raft__log_term(log, prev) != prev_term) {
        struct raft_outgoing *o = raft__send(node, RAFT_MSG_APPEND_RESP,
                                             m->from);
        if (o != NULL) {
            o->msg.reject = true;
            o->msg.index = m->index;
            if (prev > raft__log_last(log)) {
                o->msg.hint_index = raft__log_last(log);
            } else {
                o->msg.hint_index =
                    raft__log_find_conflict_by_term(log, prev, m->log_term);
            }
            o->msg.hint_term = raft__log_term(log, o->msg.hint_index);
        }
        return;
    }

    for (i = 0; i < n; i++) {
        const struct raft_entry *e = &entries[i];
        if (e->index > raft__log_last(log)) {
            break;
        }
        if (raft__log_term(log, e->index) != e->term) {
            replication_truncate(node, e->index);
            break;
        }
    }
    if (i < n) {
        rv = raft__log_reserve(log, &node->opt.heap, n - i);
        if (rv != 0) {
            return; /* UNTESTED: the leader retries. */
        }
        for (; i < n; i++) {
            rv = raft__log_append(log, &node->opt.heap, entries[i].term,
                                  entries[i].type, entries[i].buf);
            if (rv != 0) {
                return; /* UNTESTED: the leader retries the rest. */
            }
            RAFT_ASSERT(raft__log_last(log) == entries[i].index);
            if (entries[i].type == RAFT_ENTRY_CONFIG) {
                rv = raft__membership_appended(
                    node, raft__log_get(log, entries[i].index));
                RAFT_ASSERT(rv == 0);
            }
        }
    }

    if (verified < prev) {
        verified = prev;
    }
    if (verified > node->ack_index) {
        node->ack_index = verified;
    }
    commit = m->commit < verified ? m->commit : verified;
    if (commit > node->commit) {
        node->commit = commit;
        raft__membership_advance(node);
    }

    durable = node->ack_index < node->persisted ? node->ack_index
                                                : node->persisted;
    if (m->entry_count > 0 && durable < verified) {
        /* Acknowledge once durable (RAFT_EVENT_PERSISTED). */
        node->ack_pending = true;
        return;
    }
    replication_respond(node, m->from, durable);
}

struct raft_progress *raft__progress_heard(struct raft_node *node,
                                           raft_id from)
{
    struct raft_progress *p;

    if (node->role != RAFT_LEADER) {
        return NULL;
    }
    p = raft__progress_get(node, from);
    if (p != NULL) {
        p->recent_active = true;
    }
    return p;
}

bool raft__replication_progressed(struct raft_node *node)
{
    raft__replication_maybe_commit(node);
    if (node->role != RAFT_LEADER) {
        return false; /* removed from the configuration by the commit */
    }
    raft__membership_advance(node);
    raft__transfer_check(node);
    return node->role == RAFT_LEADER;
}

void raft__recv_append_resp(struct raft_node *node,
                            const struct raft_message *m)
{
    struct raft_progress *p = raft__progress_heard(node, m->from);

    if (p == NULL) {
        return;
    }

    if (m->reject) {
        raft_index j;
        raft_index next;
        if (p->state == RAFT_PROGRESS_SNAPSHOT) {
            return;
        }
        if (p->state == RAFT_PROGRESS_REPLICATE && m->index <= p->match) {
            return; /* stale */
        }
        if (p->state == RAFT_PROGRESS_PROBE && m->index != p->next - 1) {
            return; /* stale */
        }
        j = m->hint_index;
        if (m->hint_term > 0) {
            j = raft__log_find_conflict_by_term(&node->log, m->hint_index,
                                                m->hint_term);
        }
        next = j + 1 < m->index ? j + 1 : m->index;
        if (next < p->match + 1) {
            next = p->match + 1;
        }
        if (next == 0) {
            next = 1;
        }
        progress_become_probe(p, next);
        raft__replication_send(node, p, false);
        return;
    }

    if (m->index > raft__log_last(&node->log)) {
        return; /* UNTESTED: a follower cannot match beyond our log */
    }
    if (m->index > p->match) {
        p->match = m->index;
        if (p->state == RAFT_PROGRESS_PROBE) {
            progress_become_replicate(p);
        } else if (p->state == RAFT_PROGRESS_REPLICATE) {
            progress_inflight_free_to(node, p, p->match);
            if (p->next < p->match + 1) {
                p->next = p->match + 1;
            }
        } else if (p->match >= p->snap_index) {
            progress_become_probe(p, p->match + 1);
        }
        if (!raft__replication_progressed(node)) {
            return;
        }
    } else if (p->state == RAFT_PROGRESS_PROBE && m->index == p->match &&
               m->index + 1 >= p->next) {
        progress_become_replicate(p);
    }
    raft__replication_send(node, p, false);
}

/* ------------------------------------------------------------------------
 * Persistence acknowledgements
 * --------------------------------------------------------------------- */

void raft__replication_persisted(struct raft_node *node, raft_index index,
                                 raft_term term)
{
    if (index >= node->unstable_from || index <= node->persisted) {
        return; /* not handed out yet, or nothing new */
    }
    if (raft__log_term(&node->log, index) != term || term == 0) {
        return; /* stale: the entry was truncated since */
    }
    node->persisted = index;
    if (node->role == RAFT_LEADER) {
        raft__replication_maybe_commit(node);
    } else {
        raft__replication_ack(node);
    }
}

/* ------------------------------------------------------------------------
 * Leader timers
 * --------------------------------------------------------------------- */

static int replication_active(void *ctx, raft_id id)
{
    struct raft_node *node = ctx;
    struct raft_progress *p;

    if (id == node->id) {
        return 1;
    }
    p = raft__progress_get(node, id);
    return p != NULL && p->recent_active ? 1 : 0;
}

void raft__replication_tick(struct raft_node *node)
{
    RAFT_ASSERT(node->role == RAFT_LEADER);
    if (node->opt.check_quorum && node->now >= node->quorum_deadline) {
        /* Check quorum (thesis 6.2): step down if a majority was not heard
         * from during the last election timeout. */
        if (raft__config_tally(&node->config, replication_active, node) !=
            RAFT_QUORUM_WON) {
            raft__become_follower(node, node->term, 0);
            return;
        }
        for (uint32_t i = 0; i < node->progress_count; i++) {
            node->progress[i].recent_active = false;
        }
        node->quorum_deadline = node->now + node->opt.election_timeout;
    }
    if (node->transfer_to != 0 && node->now >= node->transfer_deadline) {
        raft__transfer_abort(node);
    }
    if (node->now >= node->heartbeat_deadline) {
        raft__replication_heartbeat(node);
        node->heartbeat_deadline = node->now + node->opt.heartbeat_interval;
    }
}
