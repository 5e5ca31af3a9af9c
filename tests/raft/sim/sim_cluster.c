/* sim_cluster.c: nodes, simulated network and the event loop.
 *
 * sim_run() draws the run's parameters from the seed, bootstraps the group
 * and then pops timed events from one min-heap (ordered by time, then by
 * insertion sequence, so ties are deterministic) until the step budget is
 * spent: the safety phase. Each event becomes one raft_node_step() through
 * sim_step(), which processes the update exactly as raft.h's contract says:
 *
 *   1. snapshot: pending writes are flushed (they were produced earlier and
 *      must land first), the snapshot is made durable and the state machine
 *      restored from its bytes;
 *   2. hard state: made durable at once;
 *   3. entries: deep-copied into the node's pending-write queue; they land
 *      after a random disk latency, in order (SIM_EV_DISK), and only then is
 *      RAFT_EVENT_PERSISTED fed back;
 *   4. messages: deep-copied onto the wire with a random delay (loss,
 *      duplication and reordering; partitions drop them on delivery);
 *   5. committed entries: applied to the node's state machine.
 *
 * Then the checkers of sim_check.c run. A crash frees the raft node and
 * drops its pending writes (a random prefix may have landed); a restart
 * builds a new node from the durable state with raft_node_load(). After the
 * safety phase comes the liveness phase: faults stop, partitions heal,
 * crashed members restart, and a probe proposal must commit and be applied
 * on every member of the final configuration within a time budget.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

/* ---- reporting -------------------------------------------------------------- */

void sim_fail(struct sim *sim, const char *invariant, const char *fmt, ...)
{
    if (sim->failed) {
        return;
    }
    sim->failed = true;
    sim->fail_invariant = invariant;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sim->fail_detail, sizeof(sim->fail_detail), fmt, ap);
    va_end(ap);
    if (sim->cli.verbose) {
        printf("[t=%8" PRIu64 "] VIOLATION %s: %s\n", sim->now, invariant,
               sim->fail_detail);
    }
}

void sim_trace(struct sim *sim, const char *fmt, ...)
{
    if (!sim->cli.verbose) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    printf("[t=%8" PRIu64 "] ", sim->now);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
}

static const char *role_name(enum raft_role role)
{
    switch (role) {
    case RAFT_FOLLOWER:
        return "follower";
    case RAFT_PRE_CANDIDATE:
        return "pre-candidate";
    case RAFT_CANDIDATE:
        return "candidate";
    case RAFT_LEADER:
        return "leader";
    }
    return "?";
}

static const char *msg_name(uint8_t type)
{
    static const char *names[] = {
        "?",         "APPEND",          "APPEND_RESP",
        "VOTE",      "VOTE_RESP",       "PRE_VOTE",
        "PRE_VOTE_RESP", "SNAPSHOT",    "SNAPSHOT_RESP",
        "TIMEOUT_NOW",
    };
    return type <= RAFT_MSG_TYPE_MAX ? names[type] : "?";
}

static void trace_event(struct sim *sim, const struct sim_node *n,
                        const struct raft_event *ev)
{
    if (!sim->cli.verbose) {
        return;
    }
    if (ev == NULL) {
        sim_trace(sim, "n%" PRIu64 " collect", n->id);
        return;
    }
    const struct raft_message *m;
    switch (ev->type) {
    case RAFT_EVENT_TICK:
        sim_trace(sim, "n%" PRIu64 " tick", n->id);
        break;
    case RAFT_EVENT_RECEIVE:
        m = ev->receive.message;
        sim_trace(sim,
                  "n%" PRIu64 " <- n%" PRIu64 " %s term=%" PRIu64
                  " index=%" PRIu64 " log_term=%" PRIu64 " commit=%" PRIu64
                  " entries=%zu reject=%d hint=%" PRIu64 "/%" PRIu64
                  " off=%" PRIu64 "/%" PRIu64 "%s%s",
                  n->id, m->from, msg_name(m->type), m->term, m->index,
                  m->log_term, m->commit, m->entry_count, (int)m->reject,
                  m->hint_index, m->hint_term, m->offset, m->total,
                  m->done ? " done" : "", m->transfer ? " transfer" : "");
        break;
    case RAFT_EVENT_PERSISTED:
        sim_trace(sim, "n%" PRIu64 " persisted %" PRIu64 "@%" PRIu64, n->id,
                  ev->persisted.index, ev->persisted.term);
        break;
    case RAFT_EVENT_PROPOSE:
        sim_trace(sim, "n%" PRIu64 " propose %zu entries", n->id,
                  ev->propose.count);
        break;
    case RAFT_EVENT_CHANGE:
        sim_trace(sim, "n%" PRIu64 " change", n->id);
        break;
    case RAFT_EVENT_FORCE:
        sim_trace(sim, "n%" PRIu64 " force", n->id);
        break;
    case RAFT_EVENT_SNAPSHOT:
        sim_trace(sim, "n%" PRIu64 " snapshot at %" PRIu64 " (%zu bytes)",
                  n->id, ev->snapshot.index, ev->snapshot.data.len);
        break;
    case RAFT_EVENT_TRANSFER:
        sim_trace(sim, "n%" PRIu64 " transfer to n%" PRIu64, n->id,
                  ev->transfer.to);
        break;
    case RAFT_EVENT_CAMPAIGN:
        sim_trace(sim, "n%" PRIu64 " campaign", n->id);
        break;
    default:
        sim_trace(sim, "n%" PRIu64 " event %u", n->id, (unsigned)ev->type);
        break;
    }
}

/* ---- event heap --------------------------------------------------------------- */

static bool ev_less(const struct sim_ev *a, const struct sim_ev *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

void sim_push(struct sim *sim, raft_time at, uint8_t kind, raft_id node,
              uint64_t gen, uint64_t arg, struct sim_msg *msg)
{
    if (sim->heap_len == sim->heap_cap) {
        sim->heap_cap = sim->heap_cap ? sim->heap_cap * 2 : 256;
        sim->heap = realloc(sim->heap, sim->heap_cap * sizeof(*sim->heap));
        if (sim->heap == NULL) {
            abort();
        }
    }
    if (sim->heap_len >= SIM_EVENTS_MAX) {
        sim_fail(sim, "sim", "event queue overflow (%zu events)",
                 sim->heap_len);
    }
    struct sim_ev ev = {
        .at = at, .seq = sim->seq++, .kind = kind, .node = node,
        .gen = gen, .arg = arg, .msg = msg,
    };
    size_t i = sim->heap_len++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!ev_less(&ev, &sim->heap[parent])) {
            break;
        }
        sim->heap[i] = sim->heap[parent];
        i = parent;
    }
    sim->heap[i] = ev;
}

static bool heap_pop(struct sim *sim, struct sim_ev *out)
{
    if (sim->heap_len == 0) {
        return false;
    }
    *out = sim->heap[0];
    struct sim_ev last = sim->heap[--sim->heap_len];
    size_t i = 0;
    size_t n = sim->heap_len;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= n) {
            break;
        }
        size_t c = l;
        if (l + 1 < n && ev_less(&sim->heap[l + 1], &sim->heap[l])) {
            c = l + 1;
        }
        if (!ev_less(&sim->heap[c], &last)) {
            break;
        }
        sim->heap[i] = sim->heap[c];
        i = c;
    }
    if (n > 0) {
        sim->heap[i] = last;
    }
    return true;
}

/* ---- messages ------------------------------------------------------------------ */

static struct sim_msg *msg_copy(const struct raft_message *m)
{
    struct sim_msg *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        abort();
    }
    c->m = *m;
    for (size_t i = 0; m->entries != NULL && i < m->entry_count; i++) {
        sim_log_append(&c->entries, &m->entries[i]);
    }
    c->m.entries = c->entries.v;
    c->m.entry_count = c->entries.len;
    c->m.data.base = NULL;
    c->m.data.len = 0;
    if (m->data.len > 0 && m->data.base != NULL) {
        c->data = malloc(m->data.len);
        if (c->data == NULL) {
            abort();
        }
        memcpy(c->data, m->data.base, m->data.len);
        c->m.data.base = c->data;
        c->m.data.len = m->data.len;
    }
    return c;
}

static void msg_free(struct sim_msg *c)
{
    if (c == NULL) {
        return;
    }
    sim_log_free(&c->entries);
    free(c->data);
    free(c);
}

static void send_message(struct sim *sim, struct sim_node *n,
                         const struct raft_message *m)
{
    sim->st_sent++;
    if (m->from != n->id) {
        sim_fail(sim, "api",
                 "n%" PRIu64 " sent a %s with from=%" PRIu64, n->id,
                 msg_name(m->type), m->from);
        return;
    }
    if (m->type == 0 || m->type > RAFT_MSG_TYPE_MAX) {
        sim_fail(sim, "api", "n%" PRIu64 " sent message type %u", n->id,
                 (unsigned)m->type);
        return;
    }
    if (m->entry_count > 0 && m->entries == NULL) {
        sim_fail(sim, "api", "n%" PRIu64 " sent %zu entries at NULL", n->id,
                 m->entry_count);
        return;
    }
    raft_id to = m->to;
    struct sim_node *dst = sim_node_get(sim, to);
    if (to == n->id || dst == NULL || dst->state == SIM_NODE_DELETED) {
        sim->st_dropped++;
        return;
    }
    if (sim->inflight >= SIM_INFLIGHT_MAX ||
        (!sim->liveness && sim_rng_pm(&sim->rng, sim->p.loss_pm))) {
        sim->st_dropped++;
        return;
    }
    int copies = (!sim->liveness && sim_rng_pm(&sim->rng, sim->p.dup_pm)) ? 2
                                                                         : 1;
    for (int c = 0; c < copies && sim->inflight < SIM_INFLIGHT_MAX; c++) {
        raft_time at = sim->now + sim_rng_range(&sim->rng, sim->p.delay_min,
                                                sim->p.delay_max);
        /* Links are FIFO (like a TCP stream) unless this message may
         * overtake: then random delays reorder it. */
        bool overtake =
            !sim->liveness && sim_rng_pm(&sim->rng, sim->p.reorder_pm);
        raft_time *last = &sim->link_last[n->id][to];
        if (!overtake) {
            if (at < *last) {
                at = *last;
            }
            *last = at;
        }
        sim_push(sim, at, SIM_EV_DELIVER, to, 0, 0, msg_copy(m));
        sim->inflight++;
    }
}

/* ---- nodes ---------------------------------------------------------------------- */

struct sim_node *sim_node_get(struct sim *sim, raft_id id)
{
    if (id == 0 || id > SIM_IDS_MAX) {
        return NULL;
    }
    struct sim_node *n = &sim->nodes[id];
    return n->state == SIM_NODE_ABSENT ? NULL : n;
}

bool sim_node_up(const struct sim_node *node)
{
    return node != NULL && node->state == SIM_NODE_UP;
}

struct sim_node *sim_pick_up(struct sim *sim, bool leader_only)
{
    struct sim_node *cands[SIM_IDS_MAX];
    size_t count = 0;
    for (raft_id id = 1; id <= SIM_IDS_MAX; id++) {
        struct sim_node *n = &sim->nodes[id];
        if (n->state != SIM_NODE_UP) {
            continue;
        }
        if (leader_only && raft_node_role(n->raft) != RAFT_LEADER) {
            continue;
        }
        cands[count++] = n;
    }
    if (count == 0) {
        return NULL;
    }
    return cands[sim_rng_range(&sim->rng, 0, count - 1)];
}

static void node_options(struct sim *sim, struct sim_node *n,
                         struct raft_options *o)
{
    *o = sim->p.options;
    o->id = n->id;
    o->seed = sim_mix64(sim->seed ^ (n->id << 40) ^
                        ((uint64_t)n->incarnation << 20));
}

static void schedule_tick(struct sim *sim, struct sim_node *n)
{
    if (n->state != SIM_NODE_UP) {
        return;
    }
    raft_time d = raft_node_deadline(n->raft);
    if (n->tick_scheduled && d == n->deadline_seen) {
        return;
    }
    n->deadline_seen = d;
    raft_time at = d;
    if (at <= n->last_tick) {
        at = n->last_tick + 1;
    }
    if (at < sim->now) {
        at = sim->now;
    }
    raft_time jitter = sim_rng_range(&sim->rng, 0, sim->p.tick_jitter);
    if (at <= UINT64_MAX - jitter) {
        at += jitter;
    }
    n->tick_gen++;
    n->tick_scheduled = true;
    sim_push(sim, at, SIM_EV_TICK, n->id, n->tick_gen, 0, NULL);
}

struct sim_node *sim_node_create(struct sim *sim, raft_id id)
{
    struct sim_node *n = &sim->nodes[id];
    memset(n, 0, sizeof(*n));
    n->id = id;
    sim_disk_init(&n->disk);
    sim_sm_init(&n->sm);
    struct raft_options o;
    node_options(sim, n, &o);
    int rv = raft_node_new(&o, &n->raft);
    if (rv != 0) {
        sim_fail(sim, "api", "raft_node_new(n%" PRIu64 ") failed: %s", id,
                 raft_strerror(rv));
        n->state = SIM_NODE_DELETED;
        return NULL;
    }
    n->state = SIM_NODE_UP;
    n->last_role = raft_node_role(n->raft);
    n->last_term = raft_node_term(n->raft);
    schedule_tick(sim, n);
    sim_trace(sim, "n%" PRIu64 " created", id);
    return n;
}

/* Makes the oldest pending write durable; remembers what to report. */
static void flush_head(struct sim *sim, struct sim_node *n)
{
    raft_index index;
    raft_term term;
    bool gap;
    if (!sim_disk_complete_head(&n->disk, &index, &term, &gap)) {
        if (gap) {
            sim_fail(sim, "api",
                     "n%" PRIu64 ": a write leaves a gap in the stored log"
                     " (stored up to %" PRIu64 ")",
                     n->id, sim_disk_last_index(&n->disk));
        }
        return;
    }
    n->report_pending = true;
    n->report_index = index;
    n->report_term = term;
}

void sim_crash(struct sim *sim, struct sim_node *n, bool permanent)
{
    if (n->state == SIM_NODE_UP) {
        /* Some writes may have reached the disk without being reported. */
        while (sim_disk_head(&n->disk) != NULL &&
               sim_rng_pm(&sim->rng, sim->p.torn_pm)) {
            raft_index index;
            raft_term term;
            bool gap;
            if (!sim_disk_complete_head(&n->disk, &index, &term, &gap)) {
                break;
            }
        }
        sim_disk_drop_pending(&n->disk);
        raft_node_free(n->raft);
        n->raft = NULL;
        sim->st_crashes++;
    }
    n->gen++;
    n->tick_scheduled = false;
    n->collect_pending = false;
    n->report_pending = false;
    if (permanent) {
        sim_trace(sim, "n%" PRIu64 " deleted (permanent crash)", n->id);
        n->state = SIM_NODE_DELETED;
        sim_disk_free(&n->disk);
        return;
    }
    sim_trace(sim, "n%" PRIu64 " crashed", n->id);
    n->state = SIM_NODE_DOWN;
    raft_time down =
        sim_rng_range(&sim->rng, sim->p.down_min, sim->p.down_max);
    sim_push(sim, sim->now + down, SIM_EV_RESTART, n->id, n->gen, 0, NULL);
}

void sim_restart(struct sim *sim, struct sim_node *n)
{
    if (n->state != SIM_NODE_DOWN) {
        return;
    }
    n->incarnation++;
    n->gen++;
    struct sim_disk *disk = &n->disk;
    disk->last_done = sim->now;
    if (sim->cli.bug == SIM_BUG_LOSE_COMMIT && disk->log.len > 0) {
        /* Injected bug: fsync lied, the tail of the log is gone. */
        size_t drop = 1 + sim_rng_range(&sim->rng, 0, disk->log.len - 1);
        sim_log_truncate_from(&disk->log,
                              disk->log.v[disk->log.len - drop].index);
        disk->tail = sim_disk_last_index(disk);
    }
    if (sim->cli.bug == SIM_BUG_FORGET_VOTE) {
        /* Injected bug: the vote was never made durable. */
        disk->hs.vote = 0;
    }
    struct raft_options o;
    node_options(sim, n, &o);
    int rv = raft_node_new(&o, &n->raft);
    if (rv != 0) {
        sim_fail(sim, "api", "raft_node_new(n%" PRIu64 ") failed: %s", n->id,
                 raft_strerror(rv));
        return;
    }
    n->state = SIM_NODE_UP;
    sim_sm_init(&n->sm);
    if (!sim_disk_empty(disk)) {
        struct raft_hard_state hs;
        memset(&hs, 0, sizeof(hs));
        raft_config_init(&hs.forced_config);
        if (disk->has_hs) {
            hs = disk->hs;
        }
        struct raft_buf data = {disk->snap_data, disk->snap_len};
        rv = raft_node_load(n->raft, &hs, disk->has_snap ? &disk->snap : NULL,
                            data, disk->log.v, disk->log.len, 0);
        if (rv != 0) {
            sim_fail(sim, "restart",
                     "n%" PRIu64 ": raft_node_load failed: %s (hard state"
                     " term %" PRIu64 " vote %" PRIu64 ", snapshot %" PRIu64
                     ", %zu entries from %" PRIu64 ")",
                     n->id, raft_strerror(rv), hs.term, hs.vote,
                     sim_disk_snap_index(disk), disk->log.len,
                     disk->log.len ? disk->log.v[0].index : 0);
            return;
        }
        if (disk->has_snap) {
            struct sim_sm st;
            if (sim_sm_decode(disk->snap_data, disk->snap_len, &st) != 0) {
                sim_fail(sim, "sim",
                         "n%" PRIu64 ": stored snapshot does not decode",
                         n->id);
                return;
            }
            sim_check_restore(sim, n, &st, &disk->snap);
            n->sm = st;
        }
    }
    n->tick_scheduled = false;
    n->last_tick = 0;
    n->last_commit = 0;
    n->last_term = raft_node_term(n->raft);
    n->last_role = raft_node_role(n->raft);
    n->last_leader = raft_node_leader(n->raft);
    sim_trace(sim,
              "n%" PRIu64 " restarted: term %" PRIu64 " snapshot %" PRIu64
              " log %" PRIu64 "..%" PRIu64,
              n->id, n->last_term, sim_disk_snap_index(disk),
              raft_node_first_index(n->raft), raft_node_last_index(n->raft));
    schedule_tick(sim, n);
}

void sim_heal(struct sim *sim)
{
    memset(sim->blocked, 0, sizeof(sim->blocked));
    sim->partition_gen++;
    sim_trace(sim, "network healed");
}

/* ---- update processing ------------------------------------------------------------- */

static void install_snapshot(struct sim *sim, struct sim_node *n,
                             const struct raft_update *u)
{
    const struct raft_snapshot_meta *meta = u->snapshot;
    if (meta == NULL) {
        sim_fail(sim, "api", "n%" PRIu64 ": snapshot flag without metadata",
                 n->id);
        return;
    }
    if (meta->index < n->sm.applied) {
        sim_fail(sim, "state-machine-safety",
                 "n%" PRIu64 " told to install a snapshot at %" PRIu64
                 " below its applied index %" PRIu64,
                 n->id, meta->index, n->sm.applied);
        return;
    }
    /* Earlier writes were produced first: they land before the snapshot. */
    while (sim_disk_head(&n->disk) != NULL && !sim->failed) {
        flush_head(sim, n);
    }
    sim_disk_install_snapshot(&n->disk, meta, u->snapshot_data.base,
                              u->snapshot_data.len);
    if (n->report_pending) {
        const struct raft_entry *e =
            sim_log_get(&n->disk.log, n->report_index);
        if (e == NULL || e->term != n->report_term) {
            n->report_pending = false;
        }
    }
    struct sim_sm st;
    if (sim_sm_decode(u->snapshot_data.base, u->snapshot_data.len, &st) !=
        0) {
        sim_fail(sim, "snapshot-data",
                 "n%" PRIu64 ": installed snapshot at %" PRIu64
                 " (%zu bytes) is not a valid state: chunks lost, reordered"
                 " or corrupted",
                 n->id, meta->index, u->snapshot_data.len);
        return;
    }
    sim_check_restore(sim, n, &st, meta);
    n->sm = st;
    sim_trace(sim, "n%" PRIu64 " installed snapshot %" PRIu64 "@%" PRIu64,
              n->id, meta->index, meta->term);
}

static void persist_hard_state(struct sim *sim, struct sim_node *n,
                               const struct raft_hard_state *hs)
{
    struct sim_disk *disk = &n->disk;
    if (disk->has_hs) {
        if (hs->term < disk->hs.term) {
            sim_fail(sim, "durability",
                     "n%" PRIu64 " persisted term %" PRIu64
                     " after term %" PRIu64,
                     n->id, hs->term, disk->hs.term);
            return;
        }
        if (hs->term == disk->hs.term && disk->hs.vote != 0 &&
            hs->vote != disk->hs.vote) {
            sim_fail(sim, "election-safety",
                     "n%" PRIu64 " changed its vote in term %" PRIu64
                     " from n%" PRIu64 " to n%" PRIu64,
                     n->id, hs->term, disk->hs.vote, hs->vote);
            return;
        }
    }
    if (sim->cli.bug == SIM_BUG_FORGET_VOTE && hs->vote != 0 &&
        hs->vote != n->id && (hs->vote != disk->hs.vote ||
                              hs->term != disk->hs.term)) {
        /* Make the injected bug bite: crash right after granting a vote,
         * so the node comes back within the same election. */
        n->crash_after_step = sim_rng_pm(&sim->rng, 500);
    }
    disk->hs = *hs;
    disk->has_hs = true;
}

static void queue_entries(struct sim *sim, struct sim_node *n,
                          const struct raft_update *u, raft_index *new_from,
                          raft_index *new_to)
{
    const struct raft_entry *e = u->entries;
    size_t count = u->entry_count;
    if (count == 0) {
        return;
    }
    if (e == NULL) {
        sim_fail(sim, "api", "n%" PRIu64 ": %zu entries to persist at NULL",
                 n->id, count);
        return;
    }
    for (size_t i = 0; i < count; i++) {
        if ((i > 0 && (e[i].index != e[i - 1].index + 1 ||
                       e[i].term < e[i - 1].term)) ||
            e[i].index == 0 || e[i].type < RAFT_ENTRY_NORMAL ||
            e[i].type > RAFT_ENTRY_NOOP ||
            (e[i].buf.len > 0 && e[i].buf.base == NULL)) {
            sim_fail(sim, "api",
                     "n%" PRIu64 ": malformed entries to persist (entry %zu:"
                     " index %" PRIu64 " term %" PRIu64 " type %u)",
                     n->id, i, e[i].index, e[i].term, (unsigned)e[i].type);
            return;
        }
    }
    if (e[0].index > n->disk.tail + 1) {
        sim_fail(sim, "api",
                 "n%" PRIu64 ": entries to persist start at %" PRIu64
                 " but the log ends at %" PRIu64,
                 n->id, e[0].index, n->disk.tail);
        return;
    }
    if (e[0].index <= n->sm.applied) {
        for (size_t i = 0; i < count && e[i].index <= n->sm.applied; i++) {
            const struct raft_entry *d = sim_log_get(&n->disk.log, e[i].index);
            if (d != NULL && (d->term != e[i].term ||
                              sim_entry_digest(d) != sim_entry_digest(&e[i]))) {
                sim_fail(sim, "state-machine-safety",
                         "n%" PRIu64 " overwrites applied index %" PRIu64
                         " (term %" PRIu64 " with term %" PRIu64 ")",
                         n->id, e[i].index, d->term, e[i].term);
                return;
            }
        }
    }
    uint64_t id = sim_disk_enqueue(&n->disk, e, count);
    raft_time lat = sim_rng_range(&sim->rng, sim->p.disk_min, sim->p.disk_max);
    raft_time done = sim->now + lat;
    if (done < n->disk.last_done) {
        done = n->disk.last_done;
    }
    n->disk.last_done = done;
    sim_push(sim, done, SIM_EV_DISK, n->id, n->gen, id, NULL);
    while (n->disk.pending_len - n->disk.pending_head > SIM_DISK_QUEUE_MAX &&
           !sim->failed) {
        flush_head(sim, n);
    }
    *new_from = e[0].index;
    *new_to = e[count - 1].index;
}

static void apply_committed(struct sim *sim, struct sim_node *n,
                            const struct raft_entry *e, raft_term term)
{
    if (e->index != n->sm.applied + 1) {
        sim_fail(sim, "state-machine-safety",
                 "n%" PRIu64 " handed index %" PRIu64
                 " to apply after applying %" PRIu64,
                 n->id, e->index, n->sm.applied);
        return;
    }
    const struct raft_entry *d = sim_log_get(&n->disk.log, e->index);
    if (d == NULL) {
        if (e->index > sim_disk_snap_index(&n->disk)) {
            sim_fail(sim, "durability",
                     "n%" PRIu64 " handed index %" PRIu64
                     " to apply before it was durable (stored log ends at"
                     " %" PRIu64 ")",
                     n->id, e->index, sim_disk_last_index(&n->disk));
            return;
        }
    } else if (d->term != e->term ||
               sim_entry_digest(d) != sim_entry_digest(e)) {
        sim_fail(sim, "durability",
                 "n%" PRIu64 " handed index %" PRIu64 " term %" PRIu64
                 " to apply but the stored entry has term %" PRIu64,
                 n->id, e->index, e->term, d->term);
        return;
    }
    sim_check_apply(sim, n, e, term);
    if (sim->failed) {
        return;
    }
    if (sim_sm_apply(&n->sm, e) != 0) {
        sim_fail(sim, "integrity",
                 "n%" PRIu64 ": config entry %" PRIu64 " does not decode",
                 n->id, e->index);
        return;
    }
    if (sim->cli.bug == SIM_BUG_CORRUPT_APPLY && !n->skip_applied &&
        e->type == RAFT_ENTRY_NORMAL && sim_rng_pm(&sim->rng, 20)) {
        /* Injected bug: the state machine applies this entry wrongly. */
        n->skip_applied = true;
        n->sm.chain ^= 1;
    }
}

static void process_update(struct sim *sim, struct sim_node *n,
                           const struct raft_update *u, raft_index *new_from,
                           raft_index *new_to)
{
    *new_from = 0;
    *new_to = 0;
    if ((u->flags & RAFT_UPDATE_SNAPSHOT) && !sim->failed) {
        install_snapshot(sim, n, u);
    }
    if ((u->flags & RAFT_UPDATE_HARD_STATE) && !sim->failed) {
        persist_hard_state(sim, n, &u->hard_state);
    }
    if ((u->flags & RAFT_UPDATE_ENTRIES) && !sim->failed) {
        queue_entries(sim, n, u, new_from, new_to);
    }
    if ((u->flags & RAFT_UPDATE_MESSAGES) && !sim->failed) {
        if (u->message_count > 0 && u->messages == NULL) {
            sim_fail(sim, "api", "n%" PRIu64 ": messages at NULL", n->id);
            return;
        }
        for (size_t i = 0; i < u->message_count && !sim->failed; i++) {
            send_message(sim, n, &u->messages[i]);
        }
    }
    if ((u->flags & RAFT_UPDATE_COMMITTED) && !sim->failed) {
        if (u->committed_count > 0 && u->committed == NULL) {
            sim_fail(sim, "api", "n%" PRIu64 ": committed at NULL", n->id);
            return;
        }
        for (size_t i = 0; i < u->committed_count && !sim->failed; i++) {
            apply_committed(sim, n, &u->committed[i], u->term);
        }
    }
}

static void after_step(struct sim *sim, struct sim_node *n,
                       raft_index new_from, raft_index new_to)
{
    if (n->state != SIM_NODE_UP) {
        return;
    }
    enum raft_role role = raft_node_role(n->raft);
    raft_term term = raft_node_term(n->raft);
    raft_id leader = raft_node_leader(n->raft);
    if (role != n->last_role || term != n->last_term ||
        leader != n->last_leader) {
        sim_trace(sim,
                  "n%" PRIu64 " is %s, term %" PRIu64 ", leader n%" PRIu64
                  ", log %" PRIu64 "..%" PRIu64 ", commit %" PRIu64,
                  n->id, role_name(role), term, leader,
                  raft_node_first_index(n->raft), raft_node_last_index(n->raft),
                  raft_node_commit_index(n->raft));
    }
    n->last_role = role;
    n->last_leader = leader;
    sim_check_step(sim, n, new_from, new_to);
    schedule_tick(sim, n);
}

int sim_step(struct sim *sim, struct sim_node *n, const struct raft_event *ev)
{
    if (n->state != SIM_NODE_UP || sim->failed) {
        return 0;
    }
    struct raft_update u;
    memset(&u, 0, sizeof(u));
    bool defer = ev != NULL && sim_rng_pm(&sim->rng, sim->p.defer_pm);
    trace_event(sim, n, ev);
    int rv = raft_node_step(n->raft, ev, defer ? NULL : &u);
    sim->steps++;
    raft_index new_from = 0;
    raft_index new_to = 0;
    if (defer) {
        if (!n->collect_pending) {
            n->collect_pending = true;
            sim_push(sim, sim->now + sim_rng_range(&sim->rng, 0, 3),
                     SIM_EV_COLLECT, n->id, n->gen, 0, NULL);
        }
    } else {
        n->collect_pending = false;
        process_update(sim, n, &u, &new_from, &new_to);
    }
    if (!sim->failed) {
        after_step(sim, n, new_from, new_to);
    }
    if (n->report_pending && n->state == SIM_NODE_UP && !sim->failed) {
        n->report_pending = false;
        struct raft_event pe = {.type = RAFT_EVENT_PERSISTED, .now = sim->now};
        pe.persisted.index = n->report_index;
        pe.persisted.term = n->report_term;
        sim_step(sim, n, &pe);
    }
    if (n->crash_after_step && n->state == SIM_NODE_UP && !sim->liveness) {
        n->crash_after_step = false;
        sim_crash(sim, n, false);
        sim_push(sim, sim->now + 1, SIM_EV_RESTART, n->id, n->gen, 0, NULL);
    }
    return rv;
}

void sim_collect(struct sim *sim, struct sim_node *n)
{
    if (n->state == SIM_NODE_UP && n->collect_pending) {
        sim_step(sim, n, NULL);
    }
}

/* ---- parameters ------------------------------------------------------------------ */

static raft_time max_time(raft_time a, raft_time b)
{
    return a > b ? a : b;
}

static void draw_params(struct sim *sim)
{
    static const uint8_t sizes[] = {1, 2, 3, 3, 3, 3, 4, 4, 5, 5, 5, 5, 6, 7, 7};
    struct sim_rng *r = &sim->rng;
    struct sim_params *p = &sim->p;
    memset(p, 0, sizeof(*p));
    p->nodes = sizes[sim_rng_range(r, 0, sizeof(sizes) - 1)];
    if (sim->cli.nodes != 0) {
        p->nodes = sim->cli.nodes;
    }
    raft_time et = sim_rng_range(r, 50, 400);
    p->election_timeout = et;
    p->heartbeat = sim_rng_range(r, max_time(1, et / 10), et / 2);
    p->delay_min = sim_rng_range(r, 0, et / 20);
    p->delay_max = p->delay_min +
                   sim_rng_range(r, 1, sim_rng_pm(r, 150) ? et / 2 : et / 8);
    p->loss_pm = sim_rng_pm(r, 300) ? 0 : (uint32_t)sim_rng_range(r, 1, 200);
    p->dup_pm = sim_rng_pm(r, 400) ? 0 : (uint32_t)sim_rng_range(r, 1, 150);
    p->reorder_pm = sim_rng_pm(r, 500) ? 0 : (uint32_t)sim_rng_range(r, 1, 1000);
    p->disk_min = sim_rng_range(r, 0, 5);
    p->disk_max = p->disk_min + sim_rng_range(r, 0, et / 5);
    p->tick_jitter = sim_rng_range(r, 0, 3);
    p->torn_pm = (uint32_t)sim_rng_range(r, 0, 1000);
    p->defer_pm = sim_rng_pm(r, 500) ? 0 : (uint32_t)sim_rng_range(r, 1, 300);
    p->workload_interval = sim_rng_range(r, 1, max_time(2, p->heartbeat));
    p->propose_batch_max = (uint32_t)sim_rng_range(r, 1, 8);
    p->payload_max = (uint32_t)sim_rng_range(r, SIM_PAYLOAD_MIN, 300);
    p->fault_interval = sim_rng_range(r, et / 2, 5 * et);
    p->crash_w = (uint32_t)sim_rng_range(r, 0, 10);
    p->partition_w = (uint32_t)sim_rng_range(r, 0, 10);
    p->heal_w = (uint32_t)sim_rng_range(r, 1, 10);
    p->change_w = (uint32_t)sim_rng_range(r, 0, 10);
    p->transfer_w = (uint32_t)sim_rng_range(r, 0, 5);
    p->campaign_w = (uint32_t)sim_rng_range(r, 0, 3);
    p->force_w = sim_rng_pm(r, 300) ? (uint32_t)sim_rng_range(r, 1, 4) : 0;
    p->down_min = sim_rng_range(r, 1, et);
    p->down_max = p->down_min + sim_rng_range(r, 0, 10 * et);
    p->partition_min = sim_rng_range(r, et / 2, 2 * et);
    p->partition_max = p->partition_min + sim_rng_range(r, 0, 10 * et);
    p->snapshot_interval = sim_rng_range(r, et / 4, 20 * et);
    p->snapshot_pad_max =
        sim_rng_pm(r, 300) ? 0 : (uint32_t)sim_rng_range(r, 1, 4096);

    struct raft_options *o = &p->options;
    raft_options_default(o, 1);
    o->election_timeout = et;
    o->heartbeat_interval = p->heartbeat;
    o->pre_vote = sim_rng_pm(r, 500);
    o->check_quorum = sim_rng_pm(r, 500);
    o->priority_election = sim_rng_pm(r, 500);
    o->inflight_max = sim_rng_pm(r, 150) ? 1 : (uint32_t)sim_rng_range(r, 1, 64);
    o->batch_entries_max =
        sim_rng_pm(r, 150) ? 1 : (uint32_t)sim_rng_range(r, 1, 256);
    o->batch_bytes_max = sim_rng_pm(r, 200) ? sim_rng_range(r, 64, 1024)
                                            : sim_rng_range(r, 1024, 1 << 20);
    o->entry_bytes_max =
        sim_rng_pm(r, 100) ? sim_rng_range(r, 64, 300) : (1u << 20);
    o->uncommitted_bytes_max = sim_rng_pm(r, 200)
                                   ? sim_rng_range(r, 1024, 16384)
                                   : (uint64_t)64 << 20;
    o->snapshot_chunk_bytes = sim_rng_range(r, 64, 4096);
    o->trailing_entries = sim_rng_pm(r, 300) ? 0 : sim_rng_range(r, 1, 200);
    o->messages_max = sim_rng_pm(r, 200) ? (uint32_t)sim_rng_range(r, 16, 128)
                                         : 1024;
    o->catch_up_lag_max = (uint32_t)sim_rng_range(r, 1, 64);

    uint64_t mode = sim_rng_range(r, 0, 2);
    bool any = false;
    for (uint32_t i = 1; i <= SIM_VOTERS_MAX; i++) {
        uint8_t prio = 1;
        if (mode == 1) {
            prio = (uint8_t)sim_rng_range(r, 0, 5);
        } else if (mode == 2) {
            prio = (uint8_t)sim_rng_range(r, 1, 32);
        }
        p->priorities[i] = prio;
        any = any || (prio > 0 && i <= p->nodes);
    }
    if (!any) {
        p->priorities[sim_rng_range(r, 1, p->nodes)] = 1;
    }
}

static void print_params(struct sim *sim)
{
    const struct sim_params *p = &sim->p;
    const struct raft_options *o = &p->options;
    char prios[64];
    size_t off = 0;
    for (uint32_t i = 1; i <= p->nodes && off + 5 < sizeof(prios); i++) {
        off += (size_t)snprintf(prios + off, sizeof(prios) - off, "%s%u",
                                i > 1 ? "," : "", (unsigned)p->priorities[i]);
    }
    printf("seed=%" PRIu64 " nodes=%u et=%" PRIu64 " hb=%" PRIu64
           " delay=%" PRIu64 "..%" PRIu64 " loss=%u%% dup=%u%% reorder=%u%%"
           " disk=%" PRIu64 "..%" PRIu64 " torn=%u%% defer=%u%%"
           " faults/%" PRIu64 "ms[crash=%u part=%u heal=%u change=%u"
           " transfer=%u campaign=%u force=%u] down=%" PRIu64 "..%" PRIu64
           " snap/%" PRIu64 "ms pad<=%u chunk=%" PRIu64
           " prevote=%d cq=%d prio=%d prios=%s inflight=%u"
           " batch=%u/%" PRIu64 " entry<=%" PRIu64 " uncommitted<=%" PRIu64
           " msgs<=%u trailing=%" PRIu64 " lag=%u propose/%" PRIu64
           "ms x%u payload<=%u steps=%" PRIu64 "\n",
           sim->seed, p->nodes, p->election_timeout, p->heartbeat,
           p->delay_min, p->delay_max, p->loss_pm / 10, p->dup_pm / 10,
           p->reorder_pm / 10,
           p->disk_min, p->disk_max, p->torn_pm / 10, p->defer_pm / 10,
           p->fault_interval, p->crash_w, p->partition_w, p->heal_w,
           p->change_w, p->transfer_w, p->campaign_w, p->force_w,
           p->down_min, p->down_max, p->snapshot_interval,
           p->snapshot_pad_max, o->snapshot_chunk_bytes, (int)o->pre_vote,
           (int)o->check_quorum, (int)o->priority_election, prios,
           o->inflight_max, o->batch_entries_max, o->batch_bytes_max,
           o->entry_bytes_max, o->uncommitted_bytes_max, o->messages_max,
           o->trailing_entries, o->catch_up_lag_max, p->workload_interval,
           p->propose_batch_max, p->payload_max, sim->max_steps);
}

/* ---- the loop ----------------------------------------------------------------------- */

static bool dispatch(struct sim *sim)
{
    struct sim_ev ev;
    if (!heap_pop(sim, &ev)) {
        return false;
    }
    if (ev.at > sim->now) {
        sim->now = ev.at;
    }
    struct sim_node *n = sim_node_get(sim, ev.node);
    switch (ev.kind) {
    case SIM_EV_DELIVER: {
        sim->inflight--;
        raft_id from = ev.msg->m.from;
        bool blocked = from <= SIM_IDS_MAX && sim->blocked[from][ev.node];
        if (sim_node_up(n) && !blocked) {
            struct raft_event re = {.type = RAFT_EVENT_RECEIVE,
                                    .now = sim->now};
            re.receive.message = &ev.msg->m;
            sim->st_delivered++;
            sim_step(sim, n, &re);
        } else {
            sim->st_dropped++;
        }
        msg_free(ev.msg);
        break;
    }
    case SIM_EV_TICK:
        if (sim_node_up(n) && ev.gen == n->tick_gen) {
            n->tick_scheduled = false;
            n->last_tick = sim->now;
            struct raft_event te = {.type = RAFT_EVENT_TICK, .now = sim->now};
            sim_step(sim, n, &te);
        }
        break;
    case SIM_EV_DISK:
        if (sim_node_up(n) && ev.gen == n->gen) {
            struct sim_write *w = sim_disk_head(&n->disk);
            if (w != NULL && w->id == ev.arg) {
                flush_head(sim, n);
                if (n->report_pending && !sim->failed) {
                    n->report_pending = false;
                    struct raft_event pe = {.type = RAFT_EVENT_PERSISTED,
                                            .now = sim->now};
                    pe.persisted.index = n->report_index;
                    pe.persisted.term = n->report_term;
                    sim_step(sim, n, &pe);
                }
            }
        }
        break;
    case SIM_EV_COLLECT:
        if (sim_node_up(n) && ev.gen == n->gen) {
            sim_collect(sim, n);
        }
        break;
    case SIM_EV_RESTART:
        if (n != NULL && n->state == SIM_NODE_DOWN && ev.gen == n->gen) {
            sim_restart(sim, n);
        }
        break;
    case SIM_EV_DELETE:
        if (n != NULL &&
            (n->state == SIM_NODE_UP || n->state == SIM_NODE_DOWN)) {
            sim_crash(sim, n, true);
        }
        break;
    case SIM_EV_WORKLOAD:
        sim_on_workload(sim);
        break;
    case SIM_EV_FAULT:
        sim_on_fault(sim);
        break;
    case SIM_EV_SNAPSHOT:
        sim_on_snapshot(sim);
        break;
    case SIM_EV_HEAL:
        if (ev.gen == sim->partition_gen) {
            sim_heal(sim);
        }
        break;
    default:
        break;
    }
    return true;
}

static void bootstrap(struct sim *sim)
{
    struct raft_config cfg;
    raft_config_init(&cfg);
    for (raft_id id = 1; id <= sim->p.nodes; id++) {
        raft_config_add(&cfg, id, RAFT_VOTER, sim->p.priorities[id]);
    }
    sim->next_id = sim->p.nodes + 1;
    for (raft_id id = 1; id <= sim->p.nodes && !sim->failed; id++) {
        struct sim_node *n = sim_node_create(sim, id);
        if (n == NULL) {
            return;
        }
        int rv = raft_node_bootstrap(n->raft, &cfg);
        if (rv != 0) {
            sim_fail(sim, "api", "raft_node_bootstrap(n%" PRIu64 "): %s", id,
                     raft_strerror(rv));
            return;
        }
        /* The bootstrap is durable before the group starts. */
        sim_step(sim, n, NULL);
        while (sim_disk_head(&n->disk) != NULL && !sim->failed) {
            flush_head(sim, n);
            if (n->report_pending) {
                n->report_pending = false;
                struct raft_event pe = {.type = RAFT_EVENT_PERSISTED,
                                        .now = sim->now};
                pe.persisted.index = n->report_index;
                pe.persisted.term = n->report_term;
                sim_step(sim, n, &pe);
            }
        }
    }
}

/* ---- liveness -------------------------------------------------------------------------- */

static struct sim_node *current_leader(struct sim *sim)
{
    struct sim_node *best = NULL;
    for (raft_id id = 1; id <= SIM_IDS_MAX; id++) {
        struct sim_node *n = &sim->nodes[id];
        if (n->state == SIM_NODE_UP && raft_node_role(n->raft) == RAFT_LEADER &&
            (best == NULL ||
             raft_node_term(n->raft) > raft_node_term(best->raft))) {
            best = n;
        }
    }
    return best;
}

static bool liveness_done(struct sim *sim)
{
    struct sim_node *l = current_leader(sim);
    if (l == NULL || sim->chk.probe_index == 0) {
        return false;
    }
    const struct raft_config *cfg = raft_node_config(l->raft);
    if (cfg == NULL || cfg->old_count > 0) {
        return false;
    }
    for (uint32_t i = 0; i < cfg->count; i++) {
        struct sim_node *m = sim_node_get(sim, cfg->members[i].id);
        if (!sim_node_up(m) || m->sm.applied < sim->chk.probe_index) {
            return false;
        }
        if (cfg->members[i].role == RAFT_VOTER &&
            m->sm.applied < sim->chk.max_commit_seen) {
            return false;
        }
    }
    return true;
}

static void describe_liveness(struct sim *sim, char *buf, size_t len)
{
    size_t off = 0;
    struct sim_node *l = current_leader(sim);
    off += (size_t)snprintf(buf + off, len - off,
                            "leader n%" PRIu64 " probe index %" PRIu64
                            " max commit %" PRIu64 "; nodes:",
                            l ? l->id : 0, sim->chk.probe_index,
                            sim->chk.max_commit_seen);
    for (raft_id id = 1; id <= SIM_IDS_MAX && off + 160 < len; id++) {
        struct sim_node *n = &sim->nodes[id];
        if (n->state != SIM_NODE_UP) {
            continue;
        }
        char cfg[160] = "{}";
        if (raft_node_config(n->raft) != NULL) {
            sim_config_str(raft_node_config(n->raft), cfg, sizeof(cfg));
        }
        off += (size_t)snprintf(
            buf + off, len - off,
            " n%" PRIu64 "[%s t%" PRIu64 " last %" PRIu64 " commit %" PRIu64
            " applied %" PRIu64 " match %" PRIu64 " cfg %s%s]",
            id, role_name(raft_node_role(n->raft)), raft_node_term(n->raft),
            raft_node_last_index(n->raft), raft_node_commit_index(n->raft),
            n->sm.applied, l ? raft_node_match_index(l->raft, id) : 0, cfg,
            raft_node_changing(n->raft) ? " changing" : "");
    }
}

static bool in_config(const struct raft_config *cfg, raft_id id)
{
    if (raft_config_member(cfg, id) != NULL) {
        return true;
    }
    for (uint32_t i = 0; i < cfg->old_count; i++) {
        if (cfg->old_voters[i] == id) {
            return true;
        }
    }
    return false;
}

static void liveness_phase(struct sim *sim)
{
    sim->liveness = true;
    sim->liveness_start = sim->now;
    sim_trace(sim, "---- liveness phase ----");
    sim_heal(sim);
    for (raft_id id = 1; id <= SIM_IDS_MAX && !sim->failed; id++) {
        if (sim->nodes[id].state == SIM_NODE_DOWN) {
            sim_restart(sim, &sim->nodes[id]);
        }
    }
    /* Nodes no configuration still names are shut down for good. */
    if (sim->chk.has_committed_config) {
        bool keep[SIM_IDS_MAX + 1] = {false};
        const struct raft_config *cc = &sim->chk.committed_config;
        for (raft_id id = 1; id <= SIM_IDS_MAX; id++) {
            struct sim_node *n = &sim->nodes[id];
            if (in_config(cc, id)) {
                keep[id] = true;
            }
            if (n->state != SIM_NODE_UP || !in_config(cc, id)) {
                continue;
            }
            const struct raft_config *own = raft_node_config(n->raft);
            for (raft_id j = 1; own != NULL && j <= SIM_IDS_MAX; j++) {
                if (in_config(own, j)) {
                    keep[j] = true;
                }
            }
        }
        for (raft_id id = 1; id <= SIM_IDS_MAX; id++) {
            struct sim_node *n = &sim->nodes[id];
            if (!keep[id] && n->state == SIM_NODE_UP) {
                sim_crash(sim, n, true);
            }
        }
    }
    /* Budget: elections plus catching up the slowest possible follower. */
    const struct sim_params *p = &sim->p;
    const struct raft_options *o = &p->options;
    raft_time rtt = 2 * p->delay_max + p->disk_max + p->heartbeat +
                    p->tick_jitter + 1;
    raft_index last = 0;
    for (raft_id id = 1; id <= SIM_IDS_MAX; id++) {
        struct sim_node *n = &sim->nodes[id];
        if (n->state == SIM_NODE_UP && raft_node_last_index(n->raft) > last) {
            last = raft_node_last_index(n->raft);
        }
    }
    uint64_t per_round = (uint64_t)o->inflight_max *
                         (o->batch_entries_max ? o->batch_entries_max : 1);
    uint64_t bytes_round =
        (uint64_t)o->inflight_max * (o->batch_bytes_max ? o->batch_bytes_max : 1);
    uint64_t rounds = last / per_round + (last * 320) / bytes_round +
                      (p->snapshot_pad_max + 1024) / o->snapshot_chunk_bytes +
                      64;
    /* Priority election: a member waits one timeout per priority step
     * between the target (the highest priority) and its own. */
    uint32_t prio_hi = 0;
    uint32_t prio_lo = RAFT_PRIORITY_MAX;
    for (raft_id id = 1; id <= SIM_IDS_MAX; id++) {
        struct sim_node *n = &sim->nodes[id];
        const struct raft_config *cfg =
            n->state == SIM_NODE_UP ? raft_node_config(n->raft) : NULL;
        for (uint32_t i = 0; cfg != NULL && i < cfg->count; i++) {
            uint32_t pr = cfg->members[i].priority;
            if (cfg->members[i].role == RAFT_VOTER && pr > 0) {
                prio_hi = pr > prio_hi ? pr : prio_hi;
                prio_lo = pr < prio_lo ? pr : prio_lo;
            }
        }
    }
    uint64_t prio_steps =
        o->priority_election && prio_hi > prio_lo ? prio_hi - prio_lo : 0;
    raft_time budget = (30 + 2 * prio_steps) * p->election_timeout +
                       rounds * rtt;
    raft_time deadline = sim->now + budget;
    sim->liveness_first_proposal = sim->next_proposal;
    sim->chk.probe_index = 0;
    sim->probe_at = 0;
    while (!sim->failed && sim->now <= deadline) {
        if (liveness_done(sim)) {
            sim_trace(sim, "liveness reached: probe at %" PRIu64
                           " applied everywhere",
                      sim->chk.probe_index);
            return;
        }
        if (!dispatch(sim)) {
            break;
        }
    }
    if (!sim->failed) {
        char desc[2048];
        describe_liveness(sim, desc, sizeof(desc));
        sim_fail(sim, "liveness",
                 "no probe committed and applied on every member within %" PRIu64
                 " ms: %s",
                 budget, desc);
    }
}

/* ---- run -------------------------------------------------------------------------------- */

static void teardown(struct sim *sim)
{
    struct sim_ev ev;
    while (heap_pop(sim, &ev)) {
        msg_free(ev.msg);
    }
    free(sim->heap);
    sim->heap = NULL;
    sim->heap_cap = 0;
    for (raft_id id = 1; id <= SIM_IDS_MAX; id++) {
        struct sim_node *n = &sim->nodes[id];
        if (n->raft != NULL) {
            raft_node_free(n->raft);
            n->raft = NULL;
        }
        sim_disk_free(&n->disk);
    }
    sim_check_free(&sim->chk);
}

bool sim_run(struct sim *sim)
{
    sim_rng_seed(&sim->rng, sim->seed);
    sim_check_init(&sim->chk);
    sim->max_steps = sim->cli.steps;
    draw_params(sim);
    sim->now = sim_rng_pm(&sim->rng, 300) ? 0 : sim_rng_range(&sim->rng, 1, 1u << 30);
    if (!sim->cli.quiet) {
        print_params(sim);
    }
    bootstrap(sim);
    sim_push(sim, sim->now + 1, SIM_EV_WORKLOAD, 0, 0, 0, NULL);
    sim_push(sim, sim->now + sim->p.fault_interval, SIM_EV_FAULT, 0, 0, 0,
             NULL);
    sim_push(sim, sim->now + sim->p.snapshot_interval, SIM_EV_SNAPSHOT, 0, 0,
             0, NULL);
    while (!sim->failed && sim->steps < sim->max_steps) {
        if (!dispatch(sim)) {
            break;
        }
    }
    if (!sim->failed) {
        liveness_phase(sim);
    }
    if (!sim->failed) {
        sim_check_all_logs(sim);
    }
    if (sim->cli.verbose) {
        printf("stats: steps=%" PRIu64 " sent=%" PRIu64 " delivered=%" PRIu64
               " dropped=%" PRIu64 " crashes=%" PRIu64 " partitions=%" PRIu64
               " changes=%" PRIu64 " transfers=%" PRIu64 " snapshots=%" PRIu64
               " proposals=%" PRIu64 " committed=%zu forces=%u\n",
               sim->steps, sim->st_sent, sim->st_delivered, sim->st_dropped,
               sim->st_crashes, sim->st_partitions, sim->st_changes,
               sim->st_transfers, sim->st_snapshots, sim->st_proposals,
               sim->chk.canon_len, sim->forces);
    }
    teardown(sim);
    return !sim->failed;
}
