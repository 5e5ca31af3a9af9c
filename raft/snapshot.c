/* snapshot.c: compaction and chunked snapshot transfer.
 *
 * The application takes snapshots (RAFT_EVENT_SNAPSHOT at an applied
 * index, after making it durable); the node keeps a copy of the bytes, then
 * compacts its in-memory log, keeping trailing_entries below the snapshot so
 * slightly slow followers still get plain appends (Raft paper section 7).
 *
 * A follower whose next entry was compacted away gets the snapshot in
 * chunks of snapshot_chunk_bytes, a few in flight at once. The follower
 * accepts chunks strictly in order into one buffer (at most
 * snapshot_bytes_max) and answers each with the bytes it holds; an
 * out-of-order chunk is answered with a reject naming the offset to resume
 * from. After the last chunk it installs the snapshot: the log restarts
 * right after it, and the update carries it for the application. A leader
 * that sees no progress between two heartbeats resends from the last
 * acknowledged offset, which covers lost chunks. */
#include <string.h>

#include "raft/impl.h"

/* Chunks of one transfer in flight at once. */
#define SNAPSHOT_WINDOW 4

int raft__snapshot_take(struct raft_node *node, raft_index index,
                        struct raft_buf data)
{
    const struct raft_heap *heap = &node->opt.heap;
    struct raft_snapshot_meta meta;
    void *copy = NULL;
    raft_index upto;

    if (index == 0 || index > node->applied ||
        (node->has_snapshot && index <= node->snapshot.index)) {
        return RAFT_E_STALE;
    }
    if (data.len > node->opt.snapshot_bytes_max) {
        return RAFT_E_TOO_BIG;
    }
    RAFT_ASSERT(index > node->log.offset);
    RAFT_ASSERT(index <= raft__log_last(&node->log));
    memset(&meta, 0, sizeof(meta));
    meta.index = index;
    meta.term = raft__log_term(&node->log, index);
    RAFT_ASSERT(meta.term > 0);
    raft__membership_config_at(node, index, &meta.config, &meta.config_index,
                               &meta.config_term);
    if (data.len > 0) {
        copy = raft__malloc(heap, data.len);
        if (copy == NULL) {
            return RAFT_E_NOMEM;
        }
        memcpy(copy, data.base, data.len);
    }
    raft__free(heap, node->snapshot_data);
    node->snapshot_data = copy;
    node->snapshot_len = data.len;
    node->snapshot = meta;
    node->has_snapshot = true;

    upto = index > node->opt.trailing_entries
               ? index - node->opt.trailing_entries
               : 0;
    if (upto > node->log.offset) {
        raft__log_compact(&node->log, heap, upto);
    }
    /* Transfers of the previous snapshot restart with this one. */
    for (uint32_t i = 0; i < node->progress_count; i++) {
        struct raft_progress *p = &node->progress[i];
        if (p->state == RAFT_PROGRESS_SNAPSHOT) {
            p->snap_index = index;
            p->snap_sent = 0;
            p->snap_acked = 0;
            p->snap_acked_at_heartbeat = 0;
        }
    }
    return 0;
}

void raft__snapshot_send(struct raft_node *node, struct raft_progress *p)
{
    uint64_t chunk = node->opt.snapshot_chunk_bytes;
    uint64_t len = node->snapshot_len;

    RAFT_ASSERT(node->has_snapshot);
    RAFT_ASSERT(p->state == RAFT_PROGRESS_SNAPSHOT);
    if (p->snap_index != node->snapshot.index) {
        p->snap_index = node->snapshot.index;
        p->snap_sent = 0;
        p->snap_acked = 0;
        p->snap_acked_at_heartbeat = 0;
    }
    if (p->snap_sent > len) {
        p->snap_sent = p->snap_acked;
    }
    do {
        uint64_t n;
        struct raft_outgoing *o;

        if (p->snap_sent >= len && len > 0) {
            break;
        }
        if (p->snap_sent - p->snap_acked >= SNAPSHOT_WINDOW * chunk) {
            break;
        }
        n = len - p->snap_sent < chunk ? len - p->snap_sent : chunk;
        o = raft__send(node, RAFT_MSG_SNAPSHOT, p->id);
        if (o == NULL) {
            break;
        }
        o->msg.snapshot = node->snapshot;
        o->msg.index = node->snapshot.index;
        o->msg.log_term = node->snapshot.term;
        o->msg.offset = p->snap_sent;
        o->msg.total = len;
        o->msg.data.len = (size_t)n;
        o->msg.done = p->snap_sent + n == len;
        p->snap_sent += n;
    } while (len > 0);
}

static void snapshot_respond(struct raft_node *node, const struct raft_message *m,
                             bool reject, uint64_t offset, bool done)
{
    struct raft_outgoing *o = raft__send(node, RAFT_MSG_SNAPSHOT_RESP,
                                         m->from);
    if (o != NULL) {
        o->msg.index = m->snapshot.index;
        o->msg.reject = reject;
        o->msg.offset = offset;
        o->msg.done = done;
    }
}

static void snapshot_install(struct raft_node *node)
{
    const struct raft_heap *heap = &node->opt.heap;
    const struct raft_snapshot_meta *meta = &node->recv_meta;

    RAFT_ASSERT(meta->index > node->commit);
    raft__free(heap, node->snapshot_data);
    node->snapshot_data = node->recv_data;
    node->snapshot_len = node->recv_len;
    node->recv_data = NULL;
    node->recv_len = 0;
    node->recv_cap = 0;
    node->receiving = false;
    node->snapshot = *meta;
    node->has_snapshot = true;

    raft__log_reset(&node->log, heap, meta->index, meta->term);
    node->commit = meta->index;
    node->applied = meta->index;
    node->persisted = meta->index;
    node->unstable_from = meta->index + 1;
    if (node->ack_index < meta->index) {
        node->ack_index = meta->index;
    }
    node->snapshot_installed = true;
    raft__membership_recompute(node);
    raft__membership_advance(node);
}

void raft__recv_snapshot(struct raft_node *node, const struct raft_message *m)
{
    const struct raft_snapshot_meta *meta = &m->snapshot;

    RAFT_ASSERT(m->term == node->term);
    if (node->role == RAFT_LEADER) {
        return; /* a faulty peer: see raft__recv_append */
    }
    raft__election_heard_leader(node, m->from);

    /* Already covered by our own log? Then just commit up to it. */
    if (meta->index <= node->commit ||
        raft__log_term(&node->log, meta->index) == meta->term) {
        if (meta->index > node->commit) {
            node->commit = meta->index;
            raft__membership_advance(node);
        }
        if (node->ack_index < meta->index) {
            node->ack_index = meta->index;
        }
        if (node->persisted >= meta->index) {
            snapshot_respond(node, m, false, m->total, true);
        } else {
            node->ack_pending = true; /* answered by an append result */
        }
        return;
    }

    if (!node->receiving || node->recv_meta.index != meta->index ||
        node->recv_meta.term != meta->term || node->recv_total != m->total) {
        if (m->offset != 0) {
            snapshot_respond(node, m, true, 0, false);
            return;
        }
        if (m->total > node->opt.snapshot_bytes_max) {
            /* UNTESTED: misconfiguration; the leader keeps retrying. */
            snapshot_respond(node, m, true, 0, false);
            return;
        }
        raft__free(&node->opt.heap, node->recv_data);
        node->recv_data = NULL;
        node->recv_cap = 0;
        if (m->total > 0) {
            node->recv_data = raft__malloc(&node->opt.heap, m->total);
            if (node->recv_data == NULL) {
                node->receiving = false;
                return; /* UNTESTED: the leader retries */
            }
            node->recv_cap = m->total;
        }
        node->receiving = true;
        node->recv_meta = *meta;
        node->recv_len = 0;
        node->recv_total = m->total;
    }
    if (m->offset != node->recv_len) {
        /* A duplicate (behind) or a gap (ahead): name where to resume. */
        snapshot_respond(node, m, m->offset > node->recv_len, node->recv_len,
                         false);
        return;
    }
    if (m->data.len > 0) {
        RAFT_ASSERT(node->recv_len + m->data.len <= node->recv_cap);
        memcpy(node->recv_data + node->recv_len, m->data.base, m->data.len);
        node->recv_len += m->data.len;
    }
    if (node->recv_len < node->recv_total) {
        snapshot_respond(node, m, false, node->recv_len, false);
        return;
    }
    snapshot_install(node);
    if (node->ack_sent < meta->index) {
        node->ack_sent = meta->index;
    }
    snapshot_respond(node, m, false, m->total, true);
}

void raft__recv_snapshot_resp(struct raft_node *node,
                              const struct raft_message *m)
{
    struct raft_progress *p = raft__progress_heard(node, m->from);

    if (p == NULL) {
        return;
    }
    if (p->state != RAFT_PROGRESS_SNAPSHOT || m->index != p->snap_index ||
        !node->has_snapshot || m->index != node->snapshot.index) {
        return;
    }
    if (m->done) {
        if (p->match < p->snap_index) {
            p->match = p->snap_index;
        }
        p->state = RAFT_PROGRESS_PROBE;
        p->paused = false;
        p->next = p->match + 1;
        p->inflight_count = 0;
        p->inflight_head = 0;
        if (raft__replication_progressed(node)) {
            raft__replication_send(node, p, false);
        }
        return;
    }
    if (m->reject) {
        uint64_t at = m->offset < node->snapshot_len ? m->offset
                                                     : node->snapshot_len;
        p->snap_sent = at;
        p->snap_acked = at;
    } else if (m->offset > p->snap_acked && m->offset <= p->snap_sent) {
        p->snap_acked = m->offset;
    }
    raft__snapshot_send(node, p);
}
