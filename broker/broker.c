/* broker.c: the broker: partitions, the loop turn, group commit.
 *
 * Data flow in one loop turn (everything on the loop thread but the
 * commit):
 *
 *   transport --on_raft--> raft_node_step(RECEIVE)      \
 *   tick timer ----------> raft_node_step(TICK)           > partition dirty
 *   command API ---------> partition_publish(PROPOSE)   /
 *
 *   uv_check (end of turn) --for every dirty partition-->
 *     raft_node_step(NULL, &update):
 *       snapshot     -> partition_restore()
 *       hard state,  -> storage batch (the open one; copied)
 *       snapshot,
 *       entries
 *       messages     -> transport_send(), or held with the batch when
 *                       this or an earlier update of the batch carries
 *                       hard state or a snapshot (they must be durable
 *                       before such messages leave)
 *       committed    -> partition_apply() -> answers to clients
 *     then transport_flush() (one write per peer) and, if no commit is
 *     running, the oldest batch goes to the thread pool:
 *
 *   thread pool: storage_batch_commit() (ONE transaction, ONE sync for
 *     every partition in the batch)
 *   back on the loop: RAFT_EVENT_PERSISTED per partition, held messages
 *     sent, the batch recycled, the next one started.
 *
 * Batches form a queue (batches_max); the open batch is the last one. The
 * queue only grows past one while a commit runs, so at most two are in use
 * in steady state.
 */
#define _POSIX_C_SOURCE 200809L
#include "broker/broker.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "broker/cluster_config.h"
#include "broker/command_api.h"
#include "broker/export.h"
#include "broker/management.h"
#include "broker/partition.h"
#include "broker/placement.h"
#include "broker/storage.h"
#include "broker/transport.h"
#include "gateway/gateway.h"
#include "raft/raft.h"

#define BROKER_BATCHES_MAX 8
#define BROKER_REQUESTS_MAX 4096
#define BROKER_TICK_MS 5
#define BROKER_HELD_MAX 65536
/* The cluster change executor runs this often (and after every new
 * configuration), and completes at most this many operations per run. */
#define BROKER_EXECUTE_MS 100
#define BROKER_EXECUTE_OPS_MAX 64

/* A message copied out of an update, waiting for its batch to commit. */
struct held_message {
    uint32_t partition;
    struct raft_message msg;
    struct raft_entry *entries;
    void *data;
};

struct broker_batch {
    struct storage_batch *batch;
    struct held_message *held;
    size_t held_count;
    size_t held_cap;
    bool has_sync_state; /* holds hard state or a snapshot */
};

struct broker_part {
    struct partition part;
    struct broker_export_partition *exp; /* exporters (leader: director) */
    uint32_t id;
    bool dirty;
    enum raft_role role;
    raft_term term;
    uint64_t leaderless_since; /* loop time the leader became unknown, 0:
                                  a leader is known */
    uint64_t forced_change; /* id of the change whose forced
                               reconfiguration this replica applied */
    bool active; /* this broker is a replica of the partition in the
                    cluster configuration (or joining it): only active
                    partitions are stepped, ticked and reported */
};

/* A client request in flight: the broker's id for it and where the answer
 * goes. */
struct broker_request {
    uint64_t id; /* 0: free slot */
    uint64_t conn_id;
    uint64_t client_id;
    uint64_t deadline; /* loop time (ms) after which it is answered
                          DEADLINE_EXCEEDED */
    /* A distributed command from another partition (conn_id 0): where the
     * acknowledgement goes. */
    uint32_t source_partition;
    uint32_t target_partition;
    uint64_t distribution_key;
};

#define BROKER_FORWARDS_MAX 32
#define BROKER_FORWARD_TIMEOUT_MS 15000

/* A management request forwarded to the coordinator (id 0: free). */
struct broker_forward {
    uint64_t id;
    uint64_t ticket;   /* management_reply_finish() ticket */
    uint64_t deadline; /* loop time */
    uint32_t to;       /* coordinator node id */
};

struct broker {
    uv_loop_t *loop;
    struct broker_config cfg;
    struct broker_placement placement;
    struct cluster_config cluster; /* versioned, persisted, gossiped */
    char advertised[BROKER_CONFIG_HOST_MAX + 1];

    struct storage *storage;
    struct broker_batch batches[BROKER_BATCHES_MAX];
    uint32_t batch_head;  /* oldest (the one committing, if any) */
    uint32_t batch_count; /* in use; the open one is the last */
    bool committing;
    uv_work_t work;
    int commit_rv;
    char commit_err[STORAGE_ERRMSG_BYTES];
    bool storage_failed;

    struct broker_part *parts;
    uint32_t part_count;
    struct broker_export *exports; /* configured exporters */
    uint64_t last_export_flush;    /* loop time of the last flush */

    struct transport *transport;
    struct command_api *api;
    struct management mgmt;
    bool mgmt_open;
    struct gateway gateway; /* embedded, when gateway.enable */
    bool gateway_open;
    char gateway_contact[300];

    uv_timer_t tick;
    uv_timer_t snapshot_timer;
    uint64_t last_expire;     /* loop time of the last request sweep */
    /* Cluster change requests forwarded to their coordinator, waiting
     * for its reply (answered 504 after BROKER_FORWARD_TIMEOUT_MS). */
    struct broker_forward forwards[BROKER_FORWARDS_MAX];
    uint64_t next_forward_id;
    uint64_t last_distribute; /* loop time distributions were last sent */
    uint64_t last_execute;    /* loop time the cluster change executor ran */
    bool execute_due;         /* a new configuration arrived: run it soon */
    uint64_t change_logged;   /* (change id << 12 | op) last logged as
                                 waiting, to log each once */
    uv_check_t check;

    struct broker_request *requests;
    uint64_t next_request_id;

    bool started;
    bool closing;
    uint32_t closing_left;
    void (*close_cb)(void *data);
    void *close_data;
};

static uint64_t broker_now(const struct broker *b)
{
    return uv_now(b->loop);
}

static raft_id raft_id_of(uint32_t node_id)
{
    return (raft_id)node_id + 1;
}

static enum broker_export_phase broker_phase_of(const struct cluster_config *c)
{
    switch (c->exporting) {
    case CLUSTER_CONFIG_EXPORTING_PAUSED:
        return BROKER_EXPORT_PAUSED;
    case CLUSTER_CONFIG_EXPORTING_SOFT_PAUSED:
        return BROKER_EXPORT_SOFT_PAUSED;
    default:
        return BROKER_EXPORT_EXPORTING;
    }
}

static struct broker_part *broker_part_find(struct broker *b, uint32_t id)
{
    for (uint32_t i = 0; i < b->part_count; i++) {
        if (b->parts[i].id == id) {
            return &b->parts[i];
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------------
 * Requests
 * --------------------------------------------------------------------- */

static struct broker_request *request_slot(struct broker *b, uint64_t id)
{
    return &b->requests[id % BROKER_REQUESTS_MAX];
}

static uint64_t request_add(struct broker *b, uint64_t conn_id,
                            uint64_t client_id, uint64_t deadline)
{
    for (uint32_t tries = 0; tries < BROKER_REQUESTS_MAX; tries++) {
        uint64_t id = ++b->next_request_id;
        struct broker_request *r = request_slot(b, id);
        if (r->id == 0) {
            memset(r, 0, sizeof(*r));
            r->id = id;
            r->conn_id = conn_id;
            r->client_id = client_id;
            r->deadline = deadline;
            return id;
        }
    }
    return 0;
}

static void broker_send_ack(struct broker *b, const struct broker_request *r);
static void broker_parts_activate(struct broker *b);
static void broker_distribute(struct broker *b, uint64_t now);
static void broker_cluster_execute(struct broker *b);

static void request_answer(void *data, uint64_t request_id,
                           const Tandem__Command__Response *resp)
{
    struct broker *b = data;
    struct broker_request *r = request_slot(b, request_id);
    Tandem__Command__Response copy;

    if (r->id != request_id) {
        return; /* not ours, or answered already */
    }
    if (r->conn_id == 0) {
        /* A distributed command: acknowledge it to the source partition
         * once processed (even a rejection means "seen"). */
        broker_send_ack(b, r);
    } else {
        copy = *resp;
        copy.id = r->client_id;
        command_api_respond(b->api, r->conn_id, &copy);
    }
    r->id = 0;
}

/* Answers every request whose deadline passed (at most every 100 ms). */
static void broker_expire_requests(struct broker *b, uint64_t now)
{
    if (now - b->last_expire < 100) {
        return;
    }
    b->last_expire = now;
    for (uint32_t i = 0; i < BROKER_REQUESTS_MAX; i++) {
        struct broker_request *r = &b->requests[i];
        if (r->id == 0 || r->deadline > now) {
            continue;
        }
        if (r->conn_id != 0) {
            command_api_respond_error(
                b->api, r->conn_id, r->client_id,
                TANDEM__COMMAND__CODE__DEADLINE_EXCEEDED, 0,
                "the request timed out before its command was committed "
                "and processed");
        }
        r->id = 0;
    }
}

/* Answers 504 every forwarded management request whose coordinator did
 * not reply in time (Zeebe's TimeoutError). */
static void broker_expire_forwards(struct broker *b, uint64_t now)
{
    for (uint32_t i = 0; i < BROKER_FORWARDS_MAX; i++) {
        struct broker_forward *f = &b->forwards[i];
        struct management_reply out;
        if (f->id == 0 || f->deadline > now) {
            continue;
        }
        memset(&out, 0, sizeof(out));
        out.status = 504;
        snprintf(out.message, sizeof(out.message),
                 "Request to broker %u (the coordinator) timed out after "
                 "%u ms",
                 f->to, BROKER_FORWARD_TIMEOUT_MS);
        (void)management_reply_finish(&b->mgmt, f->ticket, &out);
        memset(f, 0, sizeof(*f));
    }
}

/* ------------------------------------------------------------------------
 * Batches and held messages
 * --------------------------------------------------------------------- */

static struct broker_batch *batch_open(struct broker *b)
{
    assert(b->batch_count > 0);
    return &b->batches[(b->batch_head + b->batch_count - 1) %
                       BROKER_BATCHES_MAX];
}

static struct broker_batch *batch_push(struct broker *b)
{
    struct broker_batch *bb;
    if (b->batch_count >= BROKER_BATCHES_MAX) {
        return NULL;
    }
    b->batch_count++;
    bb = batch_open(b);
    assert(storage_batch_empty(bb->batch));
    assert(bb->held_count == 0);
    bb->has_sync_state = false;
    return bb;
}

static void held_free(struct held_message *h)
{
    for (size_t i = 0; i < h->msg.entry_count; i++) {
        free((void *)h->entries[i].buf.base);
    }
    free(h->entries);
    free(h->data);
}

/* Deep copy of a message that must wait (update memory is only valid until
 * the next call on the node). */
static int held_add(struct broker_batch *bb, uint32_t partition,
                    const struct raft_message *m)
{
    struct held_message *h;

    if (bb->held_count == bb->held_cap) {
        size_t cap = bb->held_cap == 0 ? 64 : bb->held_cap * 2;
        struct held_message *n;
        if (cap > BROKER_HELD_MAX) {
            return -ENOBUFS;
        }
        n = realloc(bb->held, cap * sizeof(*n));
        if (n == NULL) {
            return -ENOMEM;
        }
        bb->held = n;
        bb->held_cap = cap;
    }
    h = &bb->held[bb->held_count];
    memset(h, 0, sizeof(*h));
    h->partition = partition;
    h->msg = *m;
    if (m->entry_count > 0) {
        h->entries = calloc(m->entry_count, sizeof(*h->entries));
        if (h->entries == NULL) {
            return -ENOMEM;
        }
        for (size_t i = 0; i < m->entry_count; i++) {
            h->entries[i] = m->entries[i];
            h->entries[i].buf.base = NULL;
            if (m->entries[i].buf.len > 0) {
                void *copy = malloc(m->entries[i].buf.len);
                if (copy == NULL) {
                    h->msg.entry_count = i;
                    held_free(h);
                    return -ENOMEM;
                }
                memcpy(copy, m->entries[i].buf.base, m->entries[i].buf.len);
                h->entries[i].buf.base = copy;
            }
        }
        h->msg.entries = h->entries;
    }
    if (m->data.len > 0) {
        h->data = malloc(m->data.len);
        if (h->data == NULL) {
            held_free(h);
            return -ENOMEM;
        }
        memcpy(h->data, m->data.base, m->data.len);
        h->msg.data.base = h->data;
    }
    bb->held_count++;
    return 0;
}

/* Whether messages must wait: some uncommitted batch holds hard state or
 * a snapshot (or already holds messages, whose order we keep). */
static bool broker_must_hold(const struct broker *b)
{
    for (uint32_t i = 0; i < b->batch_count; i++) {
        const struct broker_batch *bb =
            &b->batches[(b->batch_head + i) % BROKER_BATCHES_MAX];
        if (bb->has_sync_state || bb->held_count > 0) {
            return true;
        }
    }
    return false;
}

static void broker_send(struct broker *b, uint32_t partition,
                        const struct raft_message *m)
{
    int rv;
    assert(m->to > 0);
    /* Transport node ids are raft ids (broker node id + 1): the transport,
     * like raft, keeps 0 for "unknown". */
    rv = transport_send(b->transport, (uint32_t)m->to, partition, m);
    (void)rv; /* dropped messages are tolerated by raft */
}

/* ------------------------------------------------------------------------
 * Updates
 * --------------------------------------------------------------------- */

static void broker_fail_storage(struct broker *b, const char *what)
{
    if (!b->storage_failed) {
        fprintf(stderr, "broker %u: storage failed: %s; partitions are "
                "marked dead\n", b->cfg.node_id, what);
    }
    b->storage_failed = true;
    for (uint32_t i = 0; i < b->part_count; i++) {
        b->parts[i].part.health = PARTITION_DEAD;
        snprintf(b->parts[i].part.health_reason,
                 sizeof(b->parts[i].part.health_reason), "storage: %s",
                 what);
    }
}

static void broker_handle_update(struct broker *b, struct broker_part *bp,
                                 const struct raft_update *u)
{
    struct broker_batch *bb = batch_open(b);
    int rv;

    if (u->flags & RAFT_UPDATE_SNAPSHOT) {
        bp->part.snapshot_index = u->snapshot->index;
        rv = partition_restore(&bp->part, u->snapshot_data.base,
                               u->snapshot_data.len);
        if (rv != 0) {
            fprintf(stderr, "broker %u: partition %u: installed snapshot "
                    "does not decode; partition is dead\n",
                    b->cfg.node_id, bp->id);
        }
    }
    rv = storage_batch_put_update(bb->batch, bp->id, u);
    if (rv == STORAGE_E_BUSY) {
        bb = batch_push(b);
        rv = bb != NULL ? storage_batch_put_update(bb->batch, bp->id, u)
                        : STORAGE_E_BUSY;
    }
    if (rv != 0) {
        broker_fail_storage(b, storage_strerror(rv));
        return;
    }
    if (u->flags & (RAFT_UPDATE_HARD_STATE | RAFT_UPDATE_SNAPSHOT)) {
        bb->has_sync_state = true;
    }
    if (u->flags & RAFT_UPDATE_MESSAGES) {
        bool hold = broker_must_hold(b);
        for (size_t i = 0; i < u->message_count; i++) {
            if (hold) {
                if (held_add(bb, bp->id, &u->messages[i]) != 0) {
                    continue; /* dropped: raft tolerates loss */
                }
            } else {
                broker_send(b, bp->id, &u->messages[i]);
            }
        }
    }
    if (u->flags & RAFT_UPDATE_COMMITTED) {
        partition_apply(&bp->part, u->committed, u->committed_count);
        broker_export_committed(bp->exp, u->committed, u->committed_count);
    }
    if (u->role != bp->role || u->term != bp->term) {
        if (u->role != bp->role) {
            fprintf(stderr, "broker %u: partition %u: %s in term %" PRIu64
                    "\n", b->cfg.node_id, bp->id,
                    u->role == RAFT_LEADER      ? "leader"
                    : u->role == RAFT_CANDIDATE ? "candidate"
                    : u->role == RAFT_PRE_CANDIDATE ? "pre-candidate"
                                                    : "follower",
                    u->term);
        }
        bp->role = u->role;
        bp->term = u->term;
        partition_role_changed(&bp->part);
        if (bp->exp != NULL) {
            if (u->role == RAFT_LEADER) {
                broker_export_lead(bp->exp);
            } else {
                broker_export_follow(bp->exp);
            }
        }
    }
}

static void broker_collect(struct broker *b, struct broker_part *bp)
{
    struct raft_update u;
    raft_node_step(bp->part.raft, NULL, &u);
    bp->dirty = false;
    broker_handle_update(b, bp, &u);
}

static void broker_step(struct broker *b, struct broker_part *bp,
                        struct raft_event *ev)
{
    ev->now = broker_now(b);
    (void)raft_node_step(bp->part.raft, ev, NULL);
    bp->dirty = true;
}

/* ------------------------------------------------------------------------
 * Group commit
 * --------------------------------------------------------------------- */

static void broker_commit_work(uv_work_t *req)
{
    struct broker *b = req->data;
    struct broker_batch *bb = &b->batches[b->batch_head];

    b->commit_rv = storage_batch_commit(b->storage, bb->batch);
    if (b->commit_rv != 0) {
        snprintf(b->commit_err, sizeof(b->commit_err), "%s",
                 storage_errmsg(b->storage));
    }
}

static void broker_maybe_commit(struct broker *b);
static void broker_maybe_free(struct broker *b);

static void broker_commit_done(uv_work_t *req, int status)
{
    struct broker *b = req->data;
    struct broker_batch *bb = &b->batches[b->batch_head];
    const struct storage_persisted *persisted;
    size_t count = 0;

    b->committing = false;
    if (status != 0 || b->commit_rv != 0) {
        broker_fail_storage(b, status != 0 ? uv_strerror(status)
                                           : b->commit_err);
        return;
    }
    persisted = storage_batch_persisted(bb->batch, &count);
    for (size_t i = 0; i < count; i++) {
        struct broker_part *bp = broker_part_find(b, persisted[i].partition);
        struct raft_event ev;
        if (bp == NULL) {
            continue;
        }
        memset(&ev, 0, sizeof(ev));
        ev.type = RAFT_EVENT_PERSISTED;
        ev.persisted.index = persisted[i].index;
        ev.persisted.term = persisted[i].term;
        broker_step(b, bp, &ev);
    }
    for (size_t i = 0; i < bb->held_count; i++) {
        if (!b->closing) {
            broker_send(b, bb->held[i].partition, &bb->held[i].msg);
        }
        held_free(&bb->held[i]);
    }
    bb->held_count = 0;
    bb->has_sync_state = false;
    storage_batch_reset(bb->batch);
    b->batch_head = (b->batch_head + 1) % BROKER_BATCHES_MAX;
    b->batch_count--;
    if (b->batch_count == 0) {
        batch_push(b);
    }
    if (b->closing) {
        broker_maybe_free(b);
        return;
    }
    transport_flush(b->transport);
    broker_maybe_commit(b);
}

static void broker_maybe_commit(struct broker *b)
{
    struct broker_batch *head;

    if (b->committing || b->storage_failed || b->closing) {
        return;
    }
    head = &b->batches[b->batch_head];
    if (storage_batch_empty(head->batch) && head->held_count == 0) {
        return;
    }
    if (b->batch_count == 1) {
        /* The open batch goes; updates from now on fill a fresh one. */
        if (batch_push(b) == NULL) {
            return;
        }
    }
    b->committing = true;
    b->work.data = b;
    uv_queue_work(b->loop, &b->work, broker_commit_work, broker_commit_done);
}

/* The end of a loop turn: collect every dirty partition's update, flush
 * the transport once, start a commit. */
static void broker_turn(uv_check_t *check)
{
    struct broker *b = check->data;

    if (b->closing) {
        return;
    }
    for (uint32_t i = 0; i < b->part_count; i++) {
        if (b->parts[i].dirty) {
            broker_collect(b, &b->parts[i]);
        }
    }
    /* Processing rounds: a leader whose log is applied processes what is
     * queued; its entry joins this turn's batch. */
    for (uint32_t i = 0; i < b->part_count; i++) {
        struct broker_part *bp = &b->parts[i];
        if (partition_process(&bp->part, broker_now(b)) == 1) {
            broker_collect(b, bp);
        }
    }
    transport_flush(b->transport);
    broker_maybe_commit(b);
}

/* ------------------------------------------------------------------------
 * Timers
 * --------------------------------------------------------------------- */

/* A partition that has known no leader for two election timeouts cannot
 * make progress here (no quorum reachable, or a region lost): unhealthy
 * until a leader is known again. Dead (corrupt state, failed storage) is
 * final. */
static void broker_update_health(struct broker *b, struct broker_part *bp,
                                 uint64_t now)
{
    uint64_t limit = 2 * b->cfg.election_timeout_ms;

    if (bp->part.health == PARTITION_DEAD) {
        return;
    }
    if (raft_node_leader(bp->part.raft) != 0) {
        bp->leaderless_since = 0;
        if (bp->part.health == PARTITION_UNHEALTHY) {
            fprintf(stderr, "broker %u: partition %u is healthy again\n",
                    b->cfg.node_id, bp->id);
        }
        bp->part.health = PARTITION_HEALTHY;
        return;
    }
    if (bp->leaderless_since == 0) {
        bp->leaderless_since = now;
        return;
    }
    if (now - bp->leaderless_since > limit &&
        bp->part.health == PARTITION_HEALTHY) {
        bp->part.health = PARTITION_UNHEALTHY;
        snprintf(bp->part.health_reason, sizeof(bp->part.health_reason),
                 "no leader for %" PRIu64 " ms", now - bp->leaderless_since);
        fprintf(stderr, "broker %u: partition %u is unhealthy: %s\n",
                b->cfg.node_id, bp->id, bp->part.health_reason);
    }
}

static void broker_tick(uv_timer_t *t)
{
    struct broker *b = t->data;
    uint64_t now = broker_now(b);

    for (uint32_t i = 0; i < b->part_count; i++) {
        struct broker_part *bp = &b->parts[i];
        partition_expire(&bp->part, now);
        if (!bp->active) {
            continue; /* not a replica: neither ticked nor judged */
        }
        broker_update_health(b, bp, now);
        if (partition_process(&bp->part, now) == 1) {
            bp->dirty = true; /* timers fired */
        }
        if (raft_node_deadline(bp->part.raft) <= now) {
            struct raft_event ev;
            memset(&ev, 0, sizeof(ev));
            ev.type = RAFT_EVENT_TICK;
            broker_step(b, bp, &ev);
        }
    }
    broker_expire_requests(b, now);
    broker_expire_forwards(b, now);
    broker_distribute(b, now);
    if (b->execute_due || now - b->last_execute >= BROKER_EXECUTE_MS) {
        broker_cluster_execute(b);
    }
    if (now - b->last_export_flush >= 250) {
        b->last_export_flush = now;
        for (uint32_t i = 0; i < b->part_count; i++) {
            if (broker_export_flush(b->parts[i].exp)) {
                b->parts[i].dirty = true;
            }
        }
    }
    /* Heartbeats and votes leave now, not after the next poll. */
    broker_turn(&b->check);
}

/* Takes a snapshot of every partition that applied something new. The raft
 * node learns of it first (it then holds the bytes and its metadata), and
 * the snapshot is persisted in the next batch: if the broker dies before
 * that commit, the previous snapshot and the full log are still on disk,
 * which describe the same committed state. */
static void broker_snapshot(uv_timer_t *t)
{
    struct broker *b = t->data;

    for (uint32_t i = 0; i < b->part_count; i++) {
        struct broker_part *bp = &b->parts[i];
        raft_index applied = raft_node_applied_index(bp->part.raft);
        const struct raft_snapshot_meta *meta;
        struct raft_event ev;
        if (!bp->active) {
            continue;
        }
        void *data = NULL;
        size_t len = 0;
        int rv;

        if (applied == 0 || applied <= bp->part.snapshot_index ||
            bp->part.health == PARTITION_DEAD ||
            partition_applied_index(&bp->part) != applied) {
            /* (after a restart the state may be ahead of raft's applied
             * index until raft caught up: the snapshot must describe
             * exactly the index it is labelled with) */
            continue;
        }
        {
            /* Keep every entry an exporter may still need: the snapshot
             * (whose state is at `applied`) is labelled with the last
             * index all exporters acknowledged completely, so the log
             * above it stays; the engine skips re-applied entries. */
            int64_t bound = bp->exp != NULL ? broker_export_bound(bp->exp)
                                            : INT64_MAX;
            if (bound < 0) {
                continue; /* an exporter has acknowledged nothing yet */
            }
            if (bound != INT64_MAX) {
                raft_index keep = (raft_index)((uint64_t)bound >>
                                               PARTITION_POSITION_BITS);
                if (keep == 0 || keep - 1 <= bp->part.snapshot_index) {
                    continue;
                }
                if (keep - 1 < applied) {
                    applied = keep - 1;
                }
            }
        }
        if (partition_snapshot_encode(&bp->part, &data, &len) != 0) {
            continue;
        }
        memset(&ev, 0, sizeof(ev));
        ev.type = RAFT_EVENT_SNAPSHOT;
        ev.snapshot.index = applied;
        ev.snapshot.data.base = data;
        ev.snapshot.data.len = len;
        broker_step(b, bp, &ev);
        meta = raft_node_snapshot(bp->part.raft);
        if (meta != NULL && meta->index == applied) {
            struct raft_buf buf = {data, len};
            rv = storage_batch_compact(batch_open(b)->batch, bp->id, meta,
                                       buf);
            if (rv == 0) {
                bp->part.snapshot_index = applied;
            }
        }
        free(data);
    }
}

/* ------------------------------------------------------------------------
 * Transport callbacks
 * --------------------------------------------------------------------- */

/* A peer gossiped a newer cluster configuration: validate, persist, adopt.
 * Returning non-zero refuses it (the transport then keeps the old one). */
static int broker_on_cluster_config(void *data, uint32_t from,
                                    uint64_t version, const void *bytes,
                                    size_t len)
{
    struct broker *b = data;
    char err[CLUSTER_CONFIG_ERRMSG_SIZE] = "out of memory";
    struct cluster_config *next = malloc(sizeof(*next));
    int rv = next != NULL
                 ? cluster_config_decode(bytes, len, next, err, sizeof(err))
                 : CLUSTER_CONFIG_E_NOMEM;

    if (rv == 0 && (next->version != version ||
                    version <= b->cluster.version)) {
        snprintf(err, sizeof(err), "version %" PRIu64 " is not newer than "
                 "%" PRIu64, next->version, b->cluster.version);
        rv = CLUSTER_CONFIG_E_INVALID;
    }
    if (rv == 0) {
        rv = cluster_config_save(b->cfg.data_directory, next, err,
                                 sizeof(err));
    }
    if (rv == 0) {
        b->cluster = *next;
        broker_export_set_phase(b->exports, broker_phase_of(&b->cluster));
        b->execute_due = true; /* not from inside the transport callback */
        fprintf(stderr, "broker %u: adopted cluster configuration version "
                "%" PRIu64 " from node %u\n", b->cfg.node_id, version,
                from - 1);
    } else {
        fprintf(stderr, "broker %u: cluster configuration version %" PRIu64
                " from node %u refused: %s\n", b->cfg.node_id, version,
                from - 1, err);
    }
    free(next);
    return rv;
}

static void broker_on_raft(void *data, uint32_t from_node, uint32_t partition,
                           const struct raft_message *m)
{
    struct broker *b = data;
    struct broker_part *bp = broker_part_find(b, partition);
    struct raft_event ev;

    (void)from_node;
    if (bp == NULL || b->closing || !bp->active) {
        return;
    }
    memset(&ev, 0, sizeof(ev));
    ev.type = RAFT_EVENT_RECEIVE;
    ev.receive.message = m;
    broker_step(b, bp, &ev);
}

/* ------------------------------------------------------------------------
 * Command API
 * --------------------------------------------------------------------- */

static Tandem__Command__Role role_of(enum raft_role r)
{
    switch (r) {
    case RAFT_LEADER:
        return TANDEM__COMMAND__ROLE__LEADER;
    case RAFT_FOLLOWER:
    case RAFT_PRE_CANDIDATE:
    case RAFT_CANDIDATE:
        return TANDEM__COMMAND__ROLE__FOLLOWER;
    default:
        return TANDEM__COMMAND__ROLE__INACTIVE;
    }
}

static Tandem__Command__Health health_of(const struct broker_part *bp)
{
    switch (bp->part.health) {
    case PARTITION_HEALTHY:
        return TANDEM__COMMAND__HEALTH__HEALTHY;
    case PARTITION_UNHEALTHY:
        return TANDEM__COMMAND__HEALTH__UNHEALTHY;
    default:
        return TANDEM__COMMAND__HEALTH__DEAD;
    }
}

static void broker_answer_topology(struct broker *b, uint64_t conn_id,
                                   uint64_t id)
{
    Tandem__Command__Response resp = TANDEM__COMMAND__RESPONSE__INIT;
    Tandem__Command__BrokerTopology topo =
        TANDEM__COMMAND__BROKER_TOPOLOGY__INIT;
    const struct transport_member *members = NULL;
    size_t member_count = 0;
    Tandem__Command__Member *mem = NULL;
    Tandem__Command__Member **memp = NULL;
    Tandem__Command__PartitionState *ps = NULL;
    Tandem__Command__PartitionState **psp = NULL;
    size_t n = 0;

    transport_members(b->transport, &members, &member_count);
    mem = calloc(member_count + 1, sizeof(*mem));
    memp = calloc(member_count + 1, sizeof(*memp));
    ps = calloc(b->part_count + 1, sizeof(*ps));
    psp = calloc(b->part_count + 1, sizeof(*psp));
    if (mem == NULL || memp == NULL || ps == NULL || psp == NULL) {
        command_api_respond_error(b->api, conn_id, id,
                                  TANDEM__COMMAND__CODE__INTERNAL, 0,
                                  "out of memory");
        goto out;
    }
    topo.node_id = b->cfg.node_id;
    topo.cluster_name = b->cfg.cluster_name;
    /* From the cluster configuration, which follows changes: after a
     * forced removal the members shrink and the replication factor
     * reported is the smallest replica count of any partition. */
    topo.cluster_size = b->cluster.member_count;
    topo.partitions_count = b->cluster.partitions_count;
    topo.replication_factor = b->cluster.replication_factor;
    for (uint32_t i = 0; i < b->cluster.partitions_count; i++) {
        uint32_t rc = b->cluster.partitions[i].replica_count;
        if (rc > 0 && rc < topo.replication_factor) {
            topo.replication_factor = rc;
        }
    }
    topo.config_version = b->cluster.version;
    topo.version = (char *)TANDEM_VERSION;
    /* Ourselves first, then every member the transport knows alive. */
    tandem__command__member__init(&mem[0]);
    mem[0].node_id = b->cfg.node_id;
    mem[0].command_host = b->advertised;
    mem[0].command_port = (uint32_t)command_api_port(b->api);
    mem[0].version = (char *)TANDEM_VERSION;
    memp[n++] = &mem[0];
    for (size_t i = 0; i < member_count; i++) {
        const struct transport_member *tm = &members[i];
        if (tm->self || tm->node_id == 0 || !tm->alive ||
            tm->command_port == 0) {
            continue;
        }
        tandem__command__member__init(&mem[n]);
        mem[n].node_id = tm->node_id - 1; /* raft id -> node id */
        mem[n].command_host = (char *)tm->command_host;
        mem[n].command_port = tm->command_port;
        mem[n].version = (char *)tm->version;
        memp[n] = &mem[n];
        n++;
    }
    topo.n_members = n;
    topo.members = memp;
    n = 0;
    for (uint32_t i = 0; i < b->part_count; i++) {
        struct broker_part *bp = &b->parts[i];
        if (!bp->active) {
            continue; /* not a replica in the cluster configuration */
        }
        tandem__command__partition_state__init(&ps[n]);
        ps[n].partition_id = bp->id;
        ps[n].role = role_of(raft_node_role(bp->part.raft));
        ps[n].health = health_of(bp);
        ps[n].term = raft_node_term(bp->part.raft);
        psp[n] = &ps[n];
        n++;
    }
    topo.n_partitions = n;
    topo.partitions = psp;
    resp.id = id;
    resp.body_case = TANDEM__COMMAND__RESPONSE__BODY_TOPOLOGY;
    resp.topology = &topo;
    command_api_respond(b->api, conn_id, &resp);
out:
    free(mem);
    free(memp);
    free(ps);
    free(psp);
}

static Tandem__Command__Code broker_code_of(int rv)
{
    switch (rv) {
    case PARTITION_E_NOT_LEADER:
        return TANDEM__COMMAND__CODE__NOT_LEADER;
    case PARTITION_E_INVALID:
        return TANDEM__COMMAND__CODE__INVALID_ARGUMENT;
    case PARTITION_E_BUSY:
        return TANDEM__COMMAND__CODE__RESOURCE_EXHAUSTED;
    case PARTITION_E_NOMEM:
        return TANDEM__COMMAND__CODE__INTERNAL;
    default:
        return TANDEM__COMMAND__CODE__PARTITION_UNAVAILABLE;
    }
}

/* Hands a command request to its partition (the leader queues it for the
 * next processing round; the answer comes from partition_apply()). */
static void broker_submit(struct broker *b, uint64_t conn_id,
                          const Tandem__Command__Request *req)
{
    struct broker_part *bp = broker_part_find(b, req->partition_id);
    char message[512];
    uint64_t request_id;
    uint64_t now = broker_now(b);
    uint64_t timeout = req->timeout_ms > 0 ? req->timeout_ms : 15000;
    int rv;

    if (bp == NULL) {
        snprintf(message, sizeof(message),
                 "partition %u is not hosted on broker %u", req->partition_id,
                 b->cfg.node_id);
        command_api_respond_error(b->api, conn_id, req->id,
                                  TANDEM__COMMAND__CODE__PARTITION_UNAVAILABLE,
                                  0, message);
        return;
    }
    request_id = request_add(b, conn_id, req->id, now + timeout);
    if (request_id == 0) {
        command_api_respond_error(b->api, conn_id, req->id,
                                  TANDEM__COMMAND__CODE__RESOURCE_EXHAUSTED,
                                  0, "Reached maximum capacity of requests "
                                  "handled");
        return;
    }
    if (req->body_case == TANDEM__COMMAND__REQUEST__BODY_AWAIT_JOBS) {
        rv = partition_await_jobs(&bp->part, request_id, now + timeout,
                                  req->await_jobs);
        snprintf(message, sizeof(message), "partition %u: %s",
                 req->partition_id, partition_strerror(rv));
    } else {
        rv = partition_submit(&bp->part, request_id, req, message,
                              sizeof(message));
    }
    if (rv == 0) {
        bp->dirty = true;
        return;
    }
    if (request_slot(b, request_id)->id != request_id) {
        return; /* answered already */
    }
    request_slot(b, request_id)->id = 0;
    command_api_respond_error(
        b->api, conn_id, req->id, broker_code_of(rv),
        rv == PARTITION_E_NOT_LEADER
            ? (uint32_t)raft_node_leader(bp->part.raft)
            : 0,
        message);
}

static void broker_on_request(void *data, uint64_t conn_id,
                              const Tandem__Command__Request *req)
{
    struct broker *b = data;
    char err[PROTO_ERRMSG_SIZE];

    if (proto_command_request_check(req, err) != 0) {
        command_api_respond_error(
            b->api, conn_id, req->id,
            req->body_case == TANDEM__COMMAND__REQUEST__BODY__NOT_SET
                ? TANDEM__COMMAND__CODE__UNIMPLEMENTED
                : TANDEM__COMMAND__CODE__INVALID_ARGUMENT,
            0, err);
        return;
    }
    switch (req->body_case) {
    case TANDEM__COMMAND__REQUEST__BODY_TOPOLOGY:
        broker_answer_topology(b, conn_id, req->id);
        break;
    case TANDEM__COMMAND__REQUEST__BODY_DISTRIBUTE:
        command_api_respond_error(b->api, conn_id, req->id,
                                  TANDEM__COMMAND__CODE__UNIMPLEMENTED, 0,
                                  "distributed commands travel between "
                                  "brokers, not through the command API");
        break;
    case TANDEM__COMMAND__REQUEST__BODY_PUBLISH_MESSAGE:
    case TANDEM__COMMAND__REQUEST__BODY_DEPLOY_RESOURCE:
    case TANDEM__COMMAND__REQUEST__BODY_CREATE_PROCESS_INSTANCE:
    case TANDEM__COMMAND__REQUEST__BODY_CREATE_PROCESS_INSTANCE_WITH_RESULT:
    case TANDEM__COMMAND__REQUEST__BODY_CANCEL_PROCESS_INSTANCE:
    case TANDEM__COMMAND__REQUEST__BODY_SET_VARIABLES:
    case TANDEM__COMMAND__REQUEST__BODY_ACTIVATE_JOBS:
    case TANDEM__COMMAND__REQUEST__BODY_COMPLETE_JOB:
    case TANDEM__COMMAND__REQUEST__BODY_FAIL_JOB:
    case TANDEM__COMMAND__REQUEST__BODY_UPDATE_JOB_RETRIES:
    case TANDEM__COMMAND__REQUEST__BODY_UPDATE_JOB_TIMEOUT:
    case TANDEM__COMMAND__REQUEST__BODY_THROW_ERROR:
    case TANDEM__COMMAND__REQUEST__BODY_RESOLVE_INCIDENT:
    case TANDEM__COMMAND__REQUEST__BODY_AWAIT_JOBS:
        broker_submit(b, conn_id, req);
        break;
    default:
        command_api_respond_error(b->api, conn_id, req->id,
                                  TANDEM__COMMAND__CODE__UNIMPLEMENTED, 0,
                                  "this broker does not know the command");
        break;
    }
}

/* ------------------------------------------------------------------------
 * Distribution between partitions
 * --------------------------------------------------------------------- */

/* Sends c to every broker hosting partition (but ourselves, whose
 * partitions are reached directly). */
static void broker_send_to_replicas(struct broker *b, uint32_t partition,
                                    const struct codec_command *c)
{
    const struct broker_partition_placement *pp;

    if (partition == 0 || partition > b->placement.partition_count) {
        return;
    }
    pp = &b->placement.partitions[partition - 1];
    for (uint32_t i = 0; i < pp->replica_count; i++) {
        uint32_t node = pp->replicas[i].node_id;
        if (node == b->cfg.node_id) {
            continue;
        }
        (void)transport_send_command(b->transport, (uint32_t)raft_id_of(node),
                                     partition, c);
    }
}

/* A command between partitions, from another broker or from ourselves. */
static void broker_handle_command(struct broker *b,
                                  const struct codec_command *c)
{
    if (c->ack) {
        struct broker_part *src = broker_part_find(b, c->source_partition);
        if (src != NULL &&
            partition_distribution_acked(&src->part, c->distribution_key,
                                         c->target_partition) == 0) {
            src->dirty = true;
        }
        return;
    }
    {
        struct broker_part *dst = broker_part_find(b, c->target_partition);
        Tandem__Command__DistributeRequest d =
            TANDEM__COMMAND__DISTRIBUTE_REQUEST__INIT;
        char message[256];
        uint64_t request_id;

        if (dst == NULL || raft_node_role(dst->part.raft) != RAFT_LEADER) {
            return; /* the source retries; the leader will answer */
        }
        request_id = request_add(b, 0, 0, broker_now(b) + 30000);
        if (request_id == 0) {
            return;
        }
        {
            struct broker_request *r = request_slot(b, request_id);
            r->source_partition = c->source_partition;
            r->target_partition = c->target_partition;
            r->distribution_key = c->distribution_key;
        }
        d.source_partition_id = c->source_partition;
        d.distribution_key = c->distribution_key;
        d.record.data = (uint8_t *)c->record;
        d.record.len = c->record_len;
        if (partition_submit_distributed(&dst->part, request_id, &d, message,
                                         sizeof(message)) != 0) {
            request_slot(b, request_id)->id = 0;
            fprintf(stderr, "broker %u: partition %u: distributed command "
                    "%" PRIu64 " from partition %u refused: %s\n",
                    b->cfg.node_id, c->target_partition, c->distribution_key,
                    c->source_partition, message);
            return;
        }
        dst->dirty = true;
    }
}

static void broker_on_command(void *data, uint32_t from_node,
                              uint32_t partition,
                              const struct codec_command *c)
{
    struct broker *b = data;
    (void)from_node;
    (void)partition;
    if (!b->closing) {
        broker_handle_command(b, c);
    }
}

static void broker_send_ack(struct broker *b, const struct broker_request *r)
{
    struct codec_command c;

    memset(&c, 0, sizeof(c));
    c.source_partition = r->source_partition;
    c.target_partition = r->target_partition;
    c.distribution_key = r->distribution_key;
    c.ack = true;
    broker_send_to_replicas(b, r->source_partition, &c);
    if (broker_part_find(b, r->source_partition) != NULL) {
        broker_handle_command(b, &c);
    }
}

/* Every leader with distributions not yet acknowledged sends them again
 * (at most every 500 ms). */
static void broker_distribute(struct broker *b, uint64_t now)
{
    struct engine_distribution dist[16];

    if (now - b->last_distribute < 500) {
        return;
    }
    b->last_distribute = now;
    for (uint32_t i = 0; i < b->part_count; i++) {
        struct broker_part *bp = &b->parts[i];
        size_t n;
        if (raft_node_role(bp->part.raft) != RAFT_LEADER ||
            bp->part.health == PARTITION_DEAD) {
            continue;
        }
        n = engine_distributions_pending(bp->part.engine, dist,
                                         sizeof(dist) / sizeof(dist[0]));
        for (size_t k = 0; k < n; k++) {
            struct codec_command c;
            memset(&c, 0, sizeof(c));
            c.source_partition = bp->id;
            c.target_partition = dist[k].partition_id;
            c.distribution_key = dist[k].distribution_key;
            c.record = dist[k].record;
            c.record_len = dist[k].record_len;
            broker_send_to_replicas(b, c.target_partition, &c);
            if (broker_part_find(b, c.target_partition) != NULL) {
                broker_handle_command(b, &c);
            }
            free(dist[k].record);
        }
    }
}

/* ------------------------------------------------------------------------
 * Management
 * --------------------------------------------------------------------- */

static int broker_status(void *data, struct management_status *out)
{
    struct broker *b = data;

    memset(out, 0, sizeof(*out));
    out->node_id = b->cfg.node_id;
    out->started = b->started;
    out->ready = b->started && !b->storage_failed;
    snprintf(out->version, sizeof(out->version), "%s", TANDEM_VERSION);
    for (uint32_t i = 0; i < b->part_count && i < MANAGEMENT_PARTITIONS_MAX;
         i++) {
        struct broker_part *bp = &b->parts[i];
        struct management_partition *mp =
            &out->partitions[out->partition_count];
        const struct raft_snapshot_meta *snap =
            raft_node_snapshot(bp->part.raft);
        enum raft_role role = raft_node_role(bp->part.raft);
        if (!bp->active) {
            continue; /* not a replica in the cluster configuration */
        }
        mp->partition_id = bp->id;
        mp->role = role == RAFT_LEADER ? MANAGEMENT_ROLE_LEADER
                                       : MANAGEMENT_ROLE_FOLLOWER;
        mp->health = bp->part.health == PARTITION_HEALTHY
                         ? MANAGEMENT_HEALTH_HEALTHY
                     : bp->part.health == PARTITION_UNHEALTHY
                         ? MANAGEMENT_HEALTH_UNHEALTHY
                         : MANAGEMENT_HEALTH_DEAD;
        mp->term = raft_node_term(bp->part.raft);
        mp->commit_index = raft_node_commit_index(bp->part.raft);
        mp->applied_index = raft_node_applied_index(bp->part.raft);
        mp->last_index = raft_node_last_index(bp->part.raft);
        mp->snapshot_index = snap != NULL ? snap->index : 0;
        mp->snapshot_term = snap != NULL ? snap->term : 0;
        if (broker_export_count(b->exports) > 0) {
            snprintf(mp->exporter_phase, sizeof(mp->exporter_phase), "%s",
                     broker_export_phase_name(
                         broker_export_phase(b->exports)));
            mp->exported_position = broker_export_position(bp->exp);
        }
        out->partition_count++;
    }
    return 0;
}

/* Makes next (a newer version, built here) the configuration: persisted,
 * spread by gossip, and acted on (exporting phase). Returns 0 or a
 * negative error with err set. */
static int broker_cluster_adopt(struct broker *b,
                                const struct cluster_config *next, char *err,
                                size_t err_len)
{
    uint8_t *bytes;
    size_t len = 0;
    int rv = cluster_config_save(b->cfg.data_directory, next, err, err_len);

    if (rv != 0) {
        return rv;
    }
    bytes = malloc(CLUSTER_CONFIG_BYTES_MAX);
    if (bytes == NULL) {
        snprintf(err, err_len, "out of memory");
        return -ENOMEM;
    }
    rv = cluster_config_encode(next, bytes, CLUSTER_CONFIG_BYTES_MAX, &len);
    if (rv == 0 && b->transport != NULL) {
        rv = transport_set_cluster_config(b->transport, next->version, bytes,
                                          len);
    }
    free(bytes);
    if (rv != 0) {
        snprintf(err, err_len, "the configuration could not be spread: %d",
                 rv);
        return rv;
    }
    b->cluster = *next;
    broker_export_set_phase(b->exports, broker_phase_of(&b->cluster));
    b->execute_due = true;
    return 0;
}

/* ------------------------------------------------------------------------
 * Executing cluster changes
 *
 * The configuration carries the change in progress; every broker sees it
 * (gossip) and does its local part of it, and exactly one broker completes
 * each operation: the operation's broker_id (the replica for exporter
 * operations, the executing replica for PARTITION_FORCE_RECONFIGURE, the
 * coordinator for the BROKER_REMOVE of a forced removal). It completes an
 * operation only when it is the next one in its own configuration, so the
 * versions form one line: nobody else writes the configuration while a
 * change runs (new changes and exporting pause/resume are refused then),
 * and a completion is a new version made locally, saved and gossiped
 * (broker_cluster_adopt). Completion rules:
 *
 *   PARTITION_DISABLE/ENABLE_EXPORTER (b, p): broker b once its replica
 *     of p is settled: as follower at once (followers only know the state
 *     from the configuration); as leader once the exporter left (joined)
 *     its director and the partition state has committed the row's
 *     DELETE (initialising UPDATE). A replica that becomes leader later
 *     settles the row from its configuration the same way.
 *   PARTITION_FORCE_RECONFIGURE (p, N): every replica on N sends
 *     RAFT_EVENT_FORCE with N (raft ids = broker ids + 1, priorities of
 *     the configuration) once, as soon as it sees the change, for every
 *     such operation not yet completed (so partitions elect in parallel);
 *     the executing replica completes the operation once its raft node
 *     knows a leader, has N as voters and no uncommitted configuration:
 *     a leader elected under N has committed N to the log.
 *   BROKER_REMOVE of a forced removal: the coordinator, at once.
 *
 * Broken cases end the change FAILED (lastChange says so): an exporter to
 * enable that this broker does not configure, or initialised from one of
 * another type.
 * --------------------------------------------------------------------- */

static int64_t broker_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether broker node is a replica of partition pid in c. */
static bool broker_config_has_replica(const struct cluster_config *c,
                                      uint32_t pid, uint32_t node)
{
    const struct cluster_config_partition *cp;

    if (pid == 0 || pid > c->partitions_count) {
        return false;
    }
    cp = &c->partitions[pid - 1];
    for (uint32_t r = 0; r < cp->replica_count; r++) {
        if (cp->replicas[r].node_id == node) {
            return true;
        }
    }
    return false;
}

/* Recomputes which hosted partitions are active: those this broker is a
 * replica of in the configuration, and one it is joining (the operation
 * in progress). A partition that stops being active is no longer
 * stepped: a broker removed by a forced reconfiguration, or a fresh
 * broker whose partitions of the static placement are not (yet) its in
 * the cluster's configuration, stays out of the group until it joins. */
static void broker_parts_activate(struct broker *b)
{
    const struct cluster_config_change *ch = &b->cluster.pending;
    const struct cluster_config_op *cur =
        ch->status == CLUSTER_CONFIG_CHANGE_IN_PROGRESS &&
                ch->completed_count < ch->op_count
            ? &ch->ops[ch->completed_count]
            : NULL;

    for (uint32_t i = 0; i < b->part_count; i++) {
        struct broker_part *bp = &b->parts[i];
        bool active = broker_config_has_replica(&b->cluster, bp->id,
                                                b->cfg.node_id) ||
                      (cur != NULL &&
                       cur->type == CLUSTER_CONFIG_OP_PARTITION_JOIN &&
                       cur->broker_id == b->cfg.node_id &&
                       cur->partition_id == bp->id);
        if (active != bp->active) {
            fprintf(stderr, "broker %u: partition %u is %s\n",
                    b->cfg.node_id, bp->id,
                    active ? "active (a replica in the cluster configuration)"
                           : "inactive (not a replica in the cluster "
                             "configuration)");
            bp->active = active;
            bp->dirty = true;
            if (!active && bp->exp != NULL) {
                broker_export_follow(bp->exp);
            }
        }
    }
}

/* The operation in progress, or NULL. */
static const struct cluster_config_op *
broker_change_current(const struct cluster_config *c)
{
    if (c->pending.status != CLUSTER_CONFIG_CHANGE_IN_PROGRESS ||
        c->pending.completed_count >= c->pending.op_count) {
        return NULL;
    }
    return &c->pending.ops[c->pending.completed_count];
}

static bool broker_op_is_exporter(const struct cluster_config_op *op)
{
    return op->type == CLUSTER_CONFIG_OP_PARTITION_DISABLE_EXPORTER ||
           op->type == CLUSTER_CONFIG_OP_PARTITION_ENABLE_EXPORTER;
}

/* Fills want[0..count) for this broker's replica of partition bp from the
 * configuration, with the operation in progress applied when it is this
 * replica's. Returns false when this broker is no replica of bp in the
 * configuration (nothing to want). */
static bool broker_want_of(struct broker *b, const struct broker_part *bp,
                           struct broker_export_want *want, uint32_t count)
{
    const struct cluster_config *c = &b->cluster;
    const struct cluster_config_partition *cp;
    const struct cluster_config_replica *r = NULL;
    const struct cluster_config_op *op = broker_change_current(c);

    assert(bp->id >= 1);
    if (bp->id > c->partitions_count) {
        return false;
    }
    cp = &c->partitions[bp->id - 1];
    for (uint32_t j = 0; j < cp->replica_count; j++) {
        if (cp->replicas[j].node_id == b->cfg.node_id) {
            r = &cp->replicas[j];
        }
    }
    if (r == NULL) {
        return false;
    }
    for (uint32_t i = 0; i < count; i++) {
        int e = cluster_config_exporter_find(c, b->cfg.exporters[i].id);
        const struct cluster_config_replica_exporter *st;
        want[i].enabled = true;
        want[i].metadata_version = 0;
        want[i].initialize_from = -1;
        if (e < 0) {
            continue; /* NEVER: broker_init adds every configured one */
        }
        st = &r->exporters[e];
        want[i].enabled = st->state == CLUSTER_CONFIG_EXPORTER_ENABLED;
        want[i].metadata_version = st->metadata_version;
        if (st->initialized_from > 0) {
            want[i].initialize_from = broker_export_find(
                b->exports, c->exporters[st->initialized_from - 1]);
        }
        if (op != NULL && broker_op_is_exporter(op) &&
            op->broker_id == b->cfg.node_id && op->partition_id == bp->id &&
            op->exporter == (uint8_t)e) {
            want[i].enabled =
                op->type == CLUSTER_CONFIG_OP_PARTITION_ENABLE_EXPORTER;
            if (want[i].enabled) {
                want[i].metadata_version = st->metadata_version + 1u;
                want[i].initialize_from =
                    op->initialize_from > 0
                        ? broker_export_find(
                              b->exports,
                              c->exporters[op->initialize_from - 1])
                        : -1;
            }
        }
        if (want[i].initialize_from == (int32_t)i) {
            want[i].initialize_from = -1; /* NEVER: the planner refuses */
        }
    }
    return true;
}

/* Brings this broker's exporters of partition bp toward the configuration.
 * Returns 1 when settled, 0 while not, negative on error. */
static int broker_exporters_settle(struct broker *b, struct broker_part *bp)
{
    struct broker_export_want want[BROKER_EXPORTERS_MAX];
    uint32_t count = broker_export_count(b->exports);
    bool queued = false;
    int rv;

    if (bp->exp == NULL || count == 0 ||
        !broker_want_of(b, bp, want, count)) {
        return 1;
    }
    rv = broker_export_want_set(bp->exp, want, count, &queued);
    if (queued) {
        bp->dirty = true;
    }
    return rv;
}

/* The voter set of a raft configuration equals the broker ids ids[0..n). */
static bool broker_voters_equal(const struct raft_config *rc,
                                const uint16_t *ids, uint32_t n)
{
    uint32_t voters = 0;

    if (rc == NULL || rc->old_count != 0) {
        return false;
    }
    for (uint32_t k = 0; k < rc->count; k++) {
        if (rc->members[k].role == RAFT_VOTER) {
            voters++;
        }
    }
    if (voters != n) {
        return false;
    }
    for (uint32_t k = 0; k < n; k++) {
        const struct raft_member *m = raft_config_member(rc, raft_id_of(ids[k]));
        if (m == NULL || m->role != RAFT_VOTER) {
            return false;
        }
    }
    return true;
}

/* Sends RAFT_EVENT_FORCE for every forced reconfiguration of the change
 * in progress that this broker is a survivor of, once per change. */
static void broker_force_apply(struct broker *b)
{
    const struct cluster_config_change *ch = &b->cluster.pending;

    if (ch->status != CLUSTER_CONFIG_CHANGE_IN_PROGRESS) {
        return;
    }
    for (uint32_t k = ch->completed_count; k < ch->op_count; k++) {
        const struct cluster_config_op *op = &ch->ops[k];
        const struct cluster_config_partition *cp;
        struct broker_part *bp;
        struct raft_config rc;
        struct raft_event ev;
        bool survivor = false;
        int rv = 0;

        if (op->type != CLUSTER_CONFIG_OP_PARTITION_FORCE_RECONFIGURE) {
            continue;
        }
        bp = broker_part_find(b, op->partition_id);
        for (uint32_t j = 0; j < op->broker_count; j++) {
            survivor = survivor || op->brokers[j] == b->cfg.node_id;
        }
        if (bp == NULL || !survivor || bp->forced_change == ch->id) {
            continue;
        }
        bp->forced_change = ch->id;
        if (broker_voters_equal(raft_node_config(bp->part.raft), op->brokers,
                                op->broker_count)) {
            continue; /* forced before (a restart) or already in the log */
        }
        cp = &b->cluster.partitions[op->partition_id - 1];
        raft_config_init(&rc);
        for (uint32_t j = 0; j < op->broker_count && rv == 0; j++) {
            uint8_t priority = 1;
            for (uint32_t r = 0; r < cp->replica_count; r++) {
                if (cp->replicas[r].node_id == op->brokers[j]) {
                    priority = cp->replicas[r].priority;
                }
            }
            rv = raft_config_add(&rc, raft_id_of(op->brokers[j]), RAFT_VOTER,
                                 priority);
        }
        if (rv == 0) {
            memset(&ev, 0, sizeof(ev));
            ev.type = RAFT_EVENT_FORCE;
            ev.force.config = &rc;
            ev.now = broker_now(b);
            rv = raft_node_step(bp->part.raft, &ev, NULL);
            bp->dirty = true;
        }
        fprintf(stderr, "broker %u: partition %u: forced reconfiguration to "
                "%u member(s) (change %" PRIu64 "): %s\n", b->cfg.node_id,
                bp->id, op->broker_count, ch->id,
                rv == 0 ? "applied" : raft_strerror(rv));
    }
}

/* The member set partition pid should have for op (a JOIN, LEAVE or
 * RECONFIGURE_PRIORITY of the change in progress): its replicas in the
 * configuration, all voters with their priorities, with op applied. */
static int broker_op_target(const struct broker *b,
                            const struct cluster_config_op *op,
                            struct raft_config *rc)
{
    const struct cluster_config_partition *cp =
        &b->cluster.partitions[op->partition_id - 1];
    bool seen = false;
    int rv = 0;

    raft_config_init(rc);
    for (uint32_t r = 0; r < cp->replica_count && rv == 0; r++) {
        uint8_t priority = cp->replicas[r].priority;
        if (cp->replicas[r].node_id == op->broker_id) {
            if (op->type == CLUSTER_CONFIG_OP_PARTITION_LEAVE) {
                continue;
            }
            priority = op->priority;
            seen = true;
        }
        rv = raft_config_add(rc, raft_id_of(cp->replicas[r].node_id),
                             RAFT_VOTER, priority);
    }
    if (rv == 0 && !seen && op->type == CLUSTER_CONFIG_OP_PARTITION_JOIN) {
        rv = raft_config_add(rc, raft_id_of(op->broker_id), RAFT_VOTER,
                             op->priority);
    }
    return rv;
}

/* Whether raft configuration have equals want: the same voters with the
 * same priorities, not joint. */
static bool broker_config_matches(const struct raft_config *have,
                                  const struct raft_config *want)
{
    uint32_t voters = 0;

    if (have == NULL || have->old_count != 0) {
        return false;
    }
    for (uint32_t k = 0; k < have->count; k++) {
        if (have->members[k].role == RAFT_VOTER) {
            voters++;
        }
    }
    if (voters != want->count) {
        return false;
    }
    for (uint32_t k = 0; k < want->count; k++) {
        const struct raft_member *m =
            raft_config_member(have, want->members[k].id);
        if (m == NULL || m->role != RAFT_VOTER ||
            m->priority != want->members[k].priority) {
            return false;
        }
    }
    return true;
}

/* The leader's part of a JOIN or RECONFIGURE_PRIORITY in progress: asks
 * its raft group to move to the target member set (a joining broker comes
 * in as a learner, is caught up by snapshot and log, then promoted through
 * joint consensus). Re-issued by whichever replica leads until done. */
static void broker_membership_apply(struct broker *b)
{
    const struct cluster_config_op *op = NULL;
    const struct cluster_config_change *ch = &b->cluster.pending;
    struct broker_part *bp;
    struct raft_config want;
    struct raft_event ev;
    int rv;

    if (ch->status == CLUSTER_CONFIG_CHANGE_IN_PROGRESS &&
        ch->completed_count < ch->op_count) {
        op = &ch->ops[ch->completed_count];
    }
    if (op == NULL || (op->type != CLUSTER_CONFIG_OP_PARTITION_JOIN &&
                       op->type != CLUSTER_CONFIG_OP_PARTITION_LEAVE &&
                       op->type !=
                           CLUSTER_CONFIG_OP_PARTITION_RECONFIGURE_PRIORITY)) {
        return;
    }
    bp = broker_part_find(b, op->partition_id);
    if (bp == NULL || !bp->active ||
        raft_node_role(bp->part.raft) != RAFT_LEADER ||
        raft_node_changing(bp->part.raft)) {
        return;
    }
    if (broker_op_target(b, op, &want) != 0 ||
        broker_config_matches(raft_node_config(bp->part.raft), &want)) {
        return;
    }
    memset(&ev, 0, sizeof(ev));
    ev.type = RAFT_EVENT_CHANGE;
    ev.change.config = &want;
    ev.now = broker_now(b);
    rv = raft_node_step(bp->part.raft, &ev, NULL);
    bp->dirty = true;
    fprintf(stderr, "broker %u: partition %u: %s of broker %u (change %"
            PRIu64 "): %s\n", b->cfg.node_id, bp->id,
            cluster_config_op_name(op->type), op->broker_id, ch->id,
            rv == 0 ? "membership change started" : raft_strerror(rv));
}

/* Whether this broker may complete op (it is the next one) now. Returns 1
 * yes, 0 not yet, or a negative value with why[] set: the change must
 * fail. */
static int broker_op_done(struct broker *b, const struct cluster_config_op *op,
                          char *why, size_t why_len)
{
    struct broker_part *bp;

    switch (op->type) {
    case CLUSTER_CONFIG_OP_BROKER_FORCE_REMOVE:
    case CLUSTER_CONFIG_OP_BROKER_ADD:
    case CLUSTER_CONFIG_OP_BROKER_REMOVE:
        return 1; /* the configuration is all there is to change */
    case CLUSTER_CONFIG_OP_PARTITION_LEAVE: {
        /* Completed by the partition's leader (the leaving replica does
         * not learn the final configuration once it is out of it): once
         * its committed configuration is the target without the leaver. */
        struct raft_config want;
        bp = broker_part_find(b, op->partition_id);
        return bp != NULL && bp->active &&
               raft_node_role(bp->part.raft) == RAFT_LEADER &&
               broker_op_target(b, op, &want) == 0 &&
               broker_config_matches(raft_node_config(bp->part.raft),
                                     &want) &&
               !raft_node_changing(bp->part.raft);
    }
    case CLUSTER_CONFIG_OP_PARTITION_JOIN:
    case CLUSTER_CONFIG_OP_PARTITION_RECONFIGURE_PRIORITY: {
        struct raft_config want;
        bp = broker_part_find(b, op->partition_id);
        if (bp == NULL) {
            snprintf(why, why_len, "broker %u has no partition %u",
                     b->cfg.node_id, op->partition_id);
            return -1;
        }
        /* Done once this replica sees the target set committed (not
         * changing), knows a leader and has applied what is committed. */
        return broker_op_target(b, op, &want) == 0 &&
               broker_config_matches(raft_node_config(bp->part.raft),
                                     &want) &&
               !raft_node_changing(bp->part.raft) &&
               raft_node_leader(bp->part.raft) != 0 &&
               raft_node_applied_index(bp->part.raft) >=
                   raft_node_commit_index(bp->part.raft);
    }
    case CLUSTER_CONFIG_OP_PARTITION_FORCE_RECONFIGURE:
        bp = broker_part_find(b, op->partition_id);
        if (bp == NULL) {
            snprintf(why, why_len, "broker %u does not host partition %u to "
                     "reconfigure it", b->cfg.node_id, op->partition_id);
            return -1;
        }
        return raft_node_leader(bp->part.raft) != 0 &&
               broker_voters_equal(raft_node_config(bp->part.raft),
                                   op->brokers, op->broker_count) &&
               !raft_node_changing(bp->part.raft);
    case CLUSTER_CONFIG_OP_PARTITION_DISABLE_EXPORTER:
    case CLUSTER_CONFIG_OP_PARTITION_ENABLE_EXPORTER: {
        const char *id = b->cluster.exporters[op->exporter];
        int i = broker_export_find(b->exports, id);
        bool enable = op->type == CLUSTER_CONFIG_OP_PARTITION_ENABLE_EXPORTER;
        if (i < 0) {
            if (!enable) {
                return 1; /* nothing runs it here */
            }
            snprintf(why, why_len, "Exporter configuration of '%s' not found "
                     "on broker %u", id, b->cfg.node_id);
            return -1;
        }
        if (enable && op->initialize_from > 0) {
            const char *from = b->cluster.exporters[op->initialize_from - 1];
            int f = broker_export_find(b->exports, from);
            if (f < 0 || !broker_export_same_type(b->exports, (uint32_t)i,
                                                  (uint32_t)f)) {
                snprintf(why, why_len, "Exporter '%s' is not of the same "
                         "type as exporter '%s'. Cannot initialize from a "
                         "different type of exporter", id, from);
                return -1;
            }
        }
        bp = broker_part_find(b, op->partition_id);
        if (bp == NULL) {
            return 1; /* NEVER: a replica hosts its partition */
        }
        return broker_exporters_settle(b, bp) == 1;
    }
    default:
        snprintf(why, why_len, "this broker does not execute %s operations",
                 cluster_config_op_name(op->type));
        return -1;
    }
}

/* One run of the executor: local parts first (exporter states of every
 * hosted partition, forced reconfigurations), then completes the
 * operations in progress that are this broker's, one after the other. */
static void broker_cluster_execute(struct broker *b)
{
    struct cluster_config *next = NULL;
    char err[CLUSTER_CONFIG_ERRMSG_SIZE];

    b->execute_due = false;
    b->last_execute = broker_now(b);
    if (!b->started || b->closing) {
        return;
    }
    broker_parts_activate(b);
    for (uint32_t i = 0; i < b->part_count; i++) {
        (void)broker_exporters_settle(b, &b->parts[i]);
    }
    broker_force_apply(b);
    broker_membership_apply(b);
    for (uint32_t n = 0; n < BROKER_EXECUTE_OPS_MAX; n++) {
        const struct cluster_config_op *op = broker_change_current(&b->cluster);
        uint64_t change_id = b->cluster.pending.id;
        uint32_t index = b->cluster.pending.completed_count;
        int done;
        int rv;

        if (op == NULL) {
            break;
        }
        if (op->type == CLUSTER_CONFIG_OP_PARTITION_LEAVE) {
            /* the partition's leader completes a leave (see above) */
            struct broker_part *lp = broker_part_find(b, op->partition_id);
            if (lp == NULL || !lp->active || op->broker_id == b->cfg.node_id ||
                raft_node_role(lp->part.raft) != RAFT_LEADER) {
                break;
            }
        } else if (op->broker_id != b->cfg.node_id) {
            break;
        }
        err[0] = '\0';
        done = broker_op_done(b, op, err, sizeof(err));
        if (done == 0) {
            uint64_t tag = change_id << 12 | (index & 0xfffu);
            if (b->change_logged != tag) {
                b->change_logged = tag;
                fprintf(stderr, "broker %u: change %" PRIu64 ": waiting for "
                        "operation %u (%s, partition %u)\n", b->cfg.node_id,
                        change_id, index + 1, cluster_config_op_name(op->type),
                        op->partition_id);
            }
            break;
        }
        if (next == NULL) {
            next = malloc(sizeof(*next));
            if (next == NULL) {
                break; /* UNTESTED: out of memory; the next run retries */
            }
        }
        *next = b->cluster;
        if (done > 0) {
            rv = cluster_config_op_complete(next, broker_wall_ms(), err,
                                            sizeof(err));
            if (rv < 0) {
                *next = b->cluster;
                done = -1;
            }
        }
        if (done < 0) {
            fprintf(stderr, "broker %u: change %" PRIu64 " FAILED at "
                    "operation %u (%s): %s\n", b->cfg.node_id, change_id,
                    index + 1, cluster_config_op_name(op->type), err);
            rv = cluster_config_change_finish(next, change_id,
                                              CLUSTER_CONFIG_CHANGE_FAILED,
                                              broker_wall_ms(), err,
                                              sizeof(err));
            if (rv != 0) {
                break; /* NEVER: the change is in progress */
            }
        }
        rv = broker_cluster_adopt(b, next, err, sizeof(err));
        if (rv != 0) {
            fprintf(stderr, "broker %u: change %" PRIu64 ": cannot record "
                    "operation %u: %s\n", b->cfg.node_id, change_id,
                    index + 1, err);
            break;
        }
        if (b->cluster.pending.status != CLUSTER_CONFIG_CHANGE_IN_PROGRESS) {
            fprintf(stderr, "broker %u: change %" PRIu64 " %s\n",
                    b->cfg.node_id, change_id,
                    b->cluster.last.status == CLUSTER_CONFIG_CHANGE_COMPLETED
                        ? "COMPLETED"
                        : "FAILED");
        }
        /* the next operation's local part may need the new version */
        for (uint32_t i = 0; i < b->part_count; i++) {
            (void)broker_exporters_settle(b, &b->parts[i]);
        }
    }
    free(next);
}

/* Hands the leadership of every partition this broker leads to the
 * partition's highest-priority replica in the configuration, when that is
 * another broker (POST /actuator/rebalance; Rebalance frames). */
static void broker_rebalance_local(struct broker *b)
{
    for (uint32_t i = 0; i < b->part_count; i++) {
        struct broker_part *bp = &b->parts[i];
        const struct cluster_config_partition *cp;
        uint32_t best = UINT32_MAX;
        uint8_t best_priority = 0;
        struct raft_event ev;
        int rv;

        if (!bp->active || raft_node_role(bp->part.raft) != RAFT_LEADER ||
            bp->id > b->cluster.partitions_count) {
            continue;
        }
        cp = &b->cluster.partitions[bp->id - 1];
        for (uint32_t r = 0; r < cp->replica_count; r++) {
            if (cp->replicas[r].priority > best_priority) {
                best_priority = cp->replicas[r].priority;
                best = cp->replicas[r].node_id;
            }
        }
        if (best == UINT32_MAX || best == b->cfg.node_id) {
            continue;
        }
        memset(&ev, 0, sizeof(ev));
        ev.type = RAFT_EVENT_TRANSFER;
        ev.transfer.to = raft_id_of(best);
        ev.now = broker_now(b);
        rv = raft_node_step(bp->part.raft, &ev, NULL);
        bp->dirty = true;
        fprintf(stderr, "broker %u: partition %u: rebalance: leadership to "
                "broker %u: %s\n", b->cfg.node_id, bp->id, best,
                rv == 0 ? "transferring" : raft_strerror(rv));
    }
}

static void broker_on_rebalance(void *data, uint32_t from_node)
{
    struct broker *b = data;
    (void)from_node;
    if (!b->closing) {
        broker_rebalance_local(b);
    }
}

/* A management change request as the JSON payload of a forward frame. */
static json_t *broker_forward_request_json(
    const struct management_change_request *req)
{
    json_t *brokers = json_array();
    json_t *obj;
    for (uint32_t i = 0; brokers != NULL && i < req->broker_count; i++) {
        json_array_append_new(brokers, json_integer(req->brokers[i]));
    }
    obj = json_pack("{s:i, s:b, s:b, s:I, s:o, s:I, s:I, s:I, s:I, s:s, s:s}",
                    "kind", req->kind, "dryRun", req->dry_run, "force",
                    req->force, "replicationFactor",
                    (json_int_t)req->replication_factor, "brokers", brokers,
                    "brokerId", (json_int_t)req->broker_id, "partitionId",
                    (json_int_t)req->partition_id, "priority",
                    (json_int_t)req->priority, "changeId",
                    (json_int_t)req->change_id, "exporter", req->exporter,
                    "initializeFrom", req->initialize_from);
    return obj;
}

/* Reads a forwarded request back; every field checked against the
 * bounds management.c enforces. Returns 0 or -EINVAL. */
static int broker_forward_request_parse(const void *payload, size_t len,
                                        struct management_change_request *req)
{
    json_t *obj = json_loadb(payload, len, 0, NULL);
    json_t *brokers = json_object_get(obj, "brokers");
    json_int_t kind = json_integer_value(json_object_get(obj, "kind"));
    const char *exporter = json_string_value(json_object_get(obj, "exporter"));
    const char *from =
        json_string_value(json_object_get(obj, "initializeFrom"));
    int rv = 0;

    memset(req, 0, sizeof(*req));
    if (!json_is_object(obj) || !json_is_array(brokers) ||
        json_array_size(brokers) > MANAGEMENT_BROKERS_MAX ||
        kind < MANAGEMENT_REQUEST_SCALE || kind > MANAGEMENT_REQUEST_EXPORTERS_GET ||
        exporter == NULL || strlen(exporter) > MANAGEMENT_ID_MAX ||
        from == NULL || strlen(from) > MANAGEMENT_ID_MAX) {
        json_decref(obj);
        return -EINVAL;
    }
    req->kind = (int)kind;
    req->dry_run = json_is_true(json_object_get(obj, "dryRun"));
    req->force = json_is_true(json_object_get(obj, "force"));
    req->replication_factor = (uint32_t)json_integer_value(
        json_object_get(obj, "replicationFactor"));
    req->broker_count = (uint32_t)json_array_size(brokers);
    for (uint32_t i = 0; i < req->broker_count; i++) {
        json_int_t id = json_integer_value(json_array_get(brokers, i));
        if (id < 0 || id > UINT32_MAX) {
            rv = -EINVAL;
        }
        req->brokers[i] = (uint32_t)id;
    }
    req->broker_id =
        (uint32_t)json_integer_value(json_object_get(obj, "brokerId"));
    req->partition_id =
        (uint32_t)json_integer_value(json_object_get(obj, "partitionId"));
    req->priority =
        (uint32_t)json_integer_value(json_object_get(obj, "priority"));
    req->change_id =
        (uint64_t)json_integer_value(json_object_get(obj, "changeId"));
    snprintf(req->exporter, sizeof(req->exporter), "%s", exporter);
    snprintf(req->initialize_from, sizeof(req->initialize_from), "%s", from);
    json_decref(obj);
    return rv;
}

/* Sends req to its coordinator and records it as waiting under ticket.
 * Returns 0, or a negative value when it cannot be sent (no free slot,
 * the coordinator unknown or not connected). */
static int broker_forward_send(struct broker *b,
                               const struct management_change_request *req,
                               uint32_t coordinator, uint64_t ticket)
{
    const struct transport_member *members = NULL;
    size_t count = 0;
    struct broker_forward *slot = NULL;
    struct codec_forward fw;
    bool alive = false;
    json_t *obj;
    char *text;
    int rv;

    transport_members(b->transport, &members, &count);
    for (size_t i = 0; i < count; i++) {
        if (members[i].node_id == raft_id_of(coordinator) &&
            members[i].alive) {
            alive = true;
        }
    }
    for (uint32_t i = 0; i < BROKER_FORWARDS_MAX && slot == NULL; i++) {
        if (b->forwards[i].id == 0) {
            slot = &b->forwards[i];
        }
    }
    if (!alive || slot == NULL) {
        return -EAGAIN;
    }
    obj = broker_forward_request_json(req);
    text = obj != NULL ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (text == NULL) {
        return -ENOMEM;
    }
    memset(&fw, 0, sizeof(fw));
    fw.id = ++b->next_forward_id;
    fw.payload = text;
    fw.payload_len = strlen(text);
    rv = transport_send_forward(b->transport, (uint32_t)raft_id_of(coordinator),
                                &fw);
    free(text);
    if (rv != 0) {
        return rv;
    }
    slot->id = fw.id;
    slot->ticket = ticket;
    slot->to = coordinator;
    slot->deadline = broker_now(b) + BROKER_FORWARD_TIMEOUT_MS;
    fprintf(stderr, "broker %u: cluster request forwarded to broker %u "
            "(the coordinator)\n", b->cfg.node_id, coordinator);
    return 0;
}

static int broker_change(void *data, const struct management_change_request *req,
                         struct management_reply *out);

/* A forwarded request (run here, the answer sent back) or the answer to
 * one this broker forwarded (relayed to the waiting HTTP request). */
static void broker_on_forward(void *data, uint32_t from_node,
                              const struct codec_forward *fw)
{
    struct broker *b = data;
    struct management_reply out;

    memset(&out, 0, sizeof(out));
    if (b->closing) {
        return;
    }
    if (fw->reply) {
        json_t *obj = json_loadb(fw->payload, fw->payload_len, 0, NULL);
        json_int_t status = json_integer_value(json_object_get(obj, "status"));
        json_t *body = json_object_get(obj, "body");
        const char *message =
            json_string_value(json_object_get(obj, "message"));
        for (uint32_t i = 0; i < BROKER_FORWARDS_MAX; i++) {
            struct broker_forward *f = &b->forwards[i];
            if (f->id != fw->id || f->id == 0 ||
                (uint32_t)raft_id_of(f->to) != from_node) {
                continue;
            }
            out.status = status >= 200 && status <= 599 ? (int)status : 502;
            out.body = body != NULL ? json_incref(body) : NULL;
            snprintf(out.message, sizeof(out.message), "%s",
                     message != NULL ? message
                                     : "the coordinator answered nothing "
                                       "readable");
            (void)management_reply_finish(&b->mgmt, f->ticket, &out);
            memset(f, 0, sizeof(*f));
        }
        json_decref(obj);
        return;
    }
    {
        struct management_change_request *req = malloc(sizeof(*req));
        struct codec_forward back;
        json_t *ans;
        char *text = NULL;
        int rv;

        if (req == NULL) {
            return; /* the sender times out with 504 */
        }
        if (broker_forward_request_parse(fw->payload, fw->payload_len, req) !=
            0) {
            out.status = 400;
            snprintf(out.message, sizeof(out.message),
                     "the forwarded request could not be read");
        } else {
            rv = broker_change(b, req, &out); /* out.ticket 0: no deferral */
            if (rv != 0) {
                json_decref((json_t *)out.body);
                out.body = NULL;
                out.status = 500;
                snprintf(out.message, sizeof(out.message),
                         "the coordinator could not handle the request "
                         "(code %d)", rv);
            }
        }
        free(req);
        ans = json_pack("{s:i, s:o?, s:s}", "status", out.status, "body",
                        (json_t *)out.body, "message", out.message);
        text = ans != NULL ? json_dumps(ans, JSON_COMPACT) : NULL;
        json_decref(ans);
        if (text == NULL) {
            return;
        }
        memset(&back, 0, sizeof(back));
        back.id = fw->id;
        back.reply = true;
        back.payload = text;
        back.payload_len = strlen(text);
        (void)transport_send_forward(b->transport, from_node, &back);
        free(text);
    }
}

/* The cluster operation routes of the management port. */
static int broker_change(void *data, const struct management_change_request *req,
                         struct management_reply *out)
{
    struct broker *b = data;
    struct cluster_config *next = NULL;
    struct cluster_config_plan *plan = NULL;
    struct cluster_config_request cr;
    json_t *body = NULL;
    int rv = 0;

    switch (req->kind) {
    case MANAGEMENT_REQUEST_EXPORTERS_GET:
        if (cluster_config_exporters_to_json(&b->cluster, &body) != 0) {
            return -ENOMEM;
        }
        out->status = 200;
        out->body = body;
        return 0;
    case MANAGEMENT_REQUEST_EXPORTING_PAUSE:
    case MANAGEMENT_REQUEST_EXPORTING_SOFT_PAUSE:
    case MANAGEMENT_REQUEST_EXPORTING_RESUME: {
        int state = req->kind == MANAGEMENT_REQUEST_EXPORTING_PAUSE
                        ? CLUSTER_CONFIG_EXPORTING_PAUSED
                    : req->kind == MANAGEMENT_REQUEST_EXPORTING_SOFT_PAUSE
                        ? CLUSTER_CONFIG_EXPORTING_SOFT_PAUSED
                        : CLUSTER_CONFIG_EXPORTING;
        if (b->cluster.pending.status == CLUSTER_CONFIG_CHANGE_IN_PROGRESS) {
            /* The broker completing the change writes the configuration
             * meanwhile; a second writer could fork the versions. */
            out->status = 409;
            snprintf(out->message, sizeof(out->message),
                     "Cannot change exporting while configuration change %"
                     PRIu64 " is in progress; retry once it completed",
                     b->cluster.pending.id);
            return 0;
        }
        next = malloc(sizeof(*next));
        if (next == NULL) {
            return -ENOMEM;
        }
        *next = b->cluster;
        rv = cluster_config_exporting_set(next, state);
        if (rv == 1) {
            rv = broker_cluster_adopt(b, next, out->message,
                                      sizeof(out->message));
        }
        free(next);
        if (rv < 0) {
            out->status = 500;
            return 0;
        }
        out->status = 204;
        return 0;
    }
    case MANAGEMENT_REQUEST_SCALE:
    case MANAGEMENT_REQUEST_BROKER_ADD:
    case MANAGEMENT_REQUEST_BROKER_REMOVE:
    case MANAGEMENT_REQUEST_PARTITION_JOIN:
    case MANAGEMENT_REQUEST_PARTITION_LEAVE:
    case MANAGEMENT_REQUEST_EXPORTER_ENABLE:
    case MANAGEMENT_REQUEST_EXPORTER_DISABLE:
        break;
    case MANAGEMENT_REQUEST_CHANGE_CANCEL:
        /* Ends the change in progress as CANCELLED: its completed
         * operations stay applied, the rest never run. Any member may
         * write it (the change may be stuck because its coordinator is
         * gone); the new version reaches every broker by gossip and each
         * stops executing. Answered with the configuration afterwards. */
        next = malloc(sizeof(*next));
        if (next == NULL) {
            return -ENOMEM;
        }
        *next = b->cluster;
        rv = cluster_config_change_finish(next, req->change_id,
                                          CLUSTER_CONFIG_CHANGE_CANCELLED,
                                          broker_wall_ms(), out->message,
                                          sizeof(out->message));
        if (rv != 0) {
            free(next);
            out->status = 400;
            return 0;
        }
        rv = broker_cluster_adopt(b, next, out->message, sizeof(out->message));
        free(next);
        if (rv != 0) {
            out->status = 500;
            return 0;
        }
        fprintf(stderr, "broker %u: change %" PRIu64 " cancelled\n",
                b->cfg.node_id, req->change_id);
        if (cluster_config_to_json(&b->cluster, &body) != 0) {
            return -ENOMEM;
        }
        out->status = 200;
        out->body = body;
        return 0;
    case MANAGEMENT_REQUEST_REBALANCE: {
        /* Every broker moves the leaderships it holds to the partitions'
         * highest-priority replicas: this one now, the others when the
         * Rebalance frame reaches them. */
        const struct transport_member *members = NULL;
        size_t count = 0;
        broker_rebalance_local(b);
        transport_members(b->transport, &members, &count);
        for (size_t i = 0; i < count; i++) {
            if (!members[i].self && members[i].node_id != 0) {
                (void)transport_send_rebalance(b->transport,
                                               members[i].node_id);
            }
        }
        out->status = 200;
        return 0;
    }
    default:
        out->status = 501;
        snprintf(out->message, sizeof(out->message),
                 "this broker does not run this operation yet");
        return 0;
    }
    _Static_assert((int)MANAGEMENT_REQUEST_SCALE ==
                           (int)CLUSTER_CONFIG_REQUEST_SCALE &&
                       (int)MANAGEMENT_REQUEST_EXPORTER_DISABLE ==
                           (int)CLUSTER_CONFIG_REQUEST_EXPORTER_DISABLE,
                   "request kinds 1..7 are shared");
    memset(&cr, 0, sizeof(cr));
    cr.kind = req->kind;
    cr.force = req->force;
    cr.replication_factor = req->replication_factor;
    cr.broker_count = req->broker_count;
    cr.brokers = req->brokers;
    cr.broker_id = req->broker_id;
    cr.partition_id = req->partition_id;
    cr.priority = req->priority;
    cr.exporter = req->exporter;
    cr.initialize_from =
        req->initialize_from[0] != '\0' ? req->initialize_from : NULL;
    plan = malloc(sizeof(*plan));
    if (plan == NULL) {
        return -ENOMEM;
    }
    rv = cluster_config_plan(&b->cluster, &cr, plan);
    if (plan->http_status != 202) {
        out->status = plan->http_status;
        snprintf(out->message, sizeof(out->message), "%s", plan->message);
        free(plan);
        return 0;
    }
    if (req->dry_run || plan->change.op_count == 0) {
        uint64_t id = plan->change.op_count == 0
                          ? b->cluster.last.id
                          : b->cluster.version + 1;
        rv = cluster_config_plan_to_json(&b->cluster, plan, id, &body);
        free(plan);
        if (rv != 0) {
            return -ENOMEM;
        }
        out->status = 202;
        out->body = body;
        return 0;
    }
    if (plan->coordinator != b->cfg.node_id) {
        /* One writer per change: the coordinator starts it. Like Zeebe's
         * gateway, forward the request to it and relay its answer. A
         * forwarded request comes without a ticket (broker_on_forward), so
         * it is never forwarded again. */
        uint32_t coordinator = plan->coordinator;
        free(plan);
        if (out->ticket != 0 &&
            broker_forward_send(b, req, coordinator, out->ticket) == 0) {
            return MANAGEMENT_REPLY_LATER;
        }
        out->status = 502;
        snprintf(out->message, sizeof(out->message),
                 "broker %u coordinates this change and broker %u cannot "
                 "forward the request to it (%s); send the request to its "
                 "management port",
                 coordinator, b->cfg.node_id,
                 out->ticket != 0 ? "not reachable"
                                  : "forwarded already, or too many "
                                    "requests waiting");
        return 0;
    }
    next = malloc(sizeof(*next));
    if (next == NULL) {
        free(plan);
        return -ENOMEM;
    }
    *next = b->cluster;
    {
        int64_t id = cluster_config_change_start(next, plan, broker_wall_ms());
        if (id <= 0) {
            free(next);
            free(plan);
            out->status = 500;
            snprintf(out->message, sizeof(out->message),
                     "the planned change could not be recorded");
            return 0;
        }
        rv = cluster_config_plan_to_json(&b->cluster, plan, (uint64_t)id,
                                         &body);
        if (rv != 0) {
            free(next);
            free(plan);
            return -ENOMEM;
        }
    }
    rv = broker_cluster_adopt(b, next, out->message, sizeof(out->message));
    free(next);
    free(plan);
    if (rv != 0) {
        json_decref(body);
        out->status = 500;
        return 0;
    }
    fprintf(stderr, "broker %u: change %" PRIu64 " started (%u operations)\n",
            b->cfg.node_id, b->cluster.pending.id, b->cluster.pending.op_count);
    out->status = 202;
    out->body = body;
    return 0;
}

static int broker_cluster_json(void *data, void **out)
{
    struct broker *b = data;
    json_t *obj = NULL;
    int rv = cluster_config_to_json(&b->cluster, &obj);
    *out = obj;
    return rv;
}

/* ------------------------------------------------------------------------
 * Lifecycle
 * --------------------------------------------------------------------- */

static int broker_open_partition(struct broker *b,
                                 const struct broker_hosted_partition *hp,
                                 bool placed, struct broker_part *bp,
                                 char *errmsg, size_t len)
{
    const struct broker_partition_placement *pp =
        &b->placement.partitions[hp->partition_id - 1];
    struct raft_options o;
    struct raft_node *raft = NULL;
    struct storage_state st;
    struct partition_options po;
    struct raft_config config;
    char state_dir[BROKER_CONFIG_PATH_MAX + 32];
    char perr[256];
    int rv;

    raft_options_default(&o, raft_id_of(b->cfg.node_id));
    o.seed = ((uint64_t)b->cfg.node_id << 32) ^ hp->partition_id ^
             (uint64_t)uv_hrtime();
    o.election_timeout = b->cfg.election_timeout_ms;
    o.heartbeat_interval = b->cfg.heartbeat_interval_ms;
    o.priority_election = b->cfg.priority_election;
    o.trailing_entries = 1024;
    rv = raft_node_new(&o, &raft);
    if (rv != 0) {
        snprintf(errmsg, len, "partition %u: raft: %s", hp->partition_id,
                 raft_strerror(rv));
        return rv;
    }
    rv = storage_load(b->storage, hp->partition_id, &st);
    if (rv != 0) {
        snprintf(errmsg, len, "partition %u: storage: %s",
                 hp->partition_id, storage_errmsg(b->storage));
        raft_node_free(raft);
        return rv;
    }
    if (!st.has_hard_state && !st.has_snapshot && st.entry_count == 0 &&
        !placed) {
        /* Not in this broker's initial placement: the replica stays empty
         * (no configuration, never campaigns) until a PARTITION_JOIN adds
         * it to the group; it then learns everything from the leader. */
        rv = 0;
    } else if (!st.has_hard_state && !st.has_snapshot &&
               st.entry_count == 0) {
        raft_config_init(&config);
        for (uint32_t j = 0; j < pp->replica_count; j++) {
            raft_config_add(&config, raft_id_of(pp->replicas[j].node_id),
                            RAFT_VOTER, pp->replicas[j].priority);
        }
        rv = raft_node_bootstrap(raft, &config);
    } else {
        struct raft_hard_state hs;
        memset(&hs, 0, sizeof(hs));
        if (st.has_hard_state) {
            hs = st.hard_state;
        }
        rv = raft_node_load(raft, &hs, st.has_snapshot ? &st.snapshot : NULL,
                            st.snapshot_data, st.entries, st.entry_count,
                            st.commit);
    }
    if (rv != 0) {
        snprintf(errmsg, len, "partition %u: cannot restore raft state: %s",
                 hp->partition_id, raft_strerror(rv));
        storage_state_close(&st);
        raft_node_free(raft);
        return rv;
    }
    memset(&po, 0, sizeof(po));
    po.partition_id = hp->partition_id;
    po.partitions_count = b->placement.partition_count;
    po.node_id = b->cfg.node_id;
    po.broker_version = TANDEM_VERSION;
    po.requests_max = 1024;
    po.answer = request_answer;
    po.answer_data = b;
    snprintf(state_dir, sizeof(state_dir), "%s/state-%u",
             b->cfg.data_directory, hp->partition_id);
    po.state_dir = state_dir;
    rv = partition_init(&bp->part, &po, raft, perr, sizeof(perr));
    if (rv != 0) {
        snprintf(errmsg, len, "partition %u: %s", hp->partition_id, perr);
        storage_state_close(&st);
        raft_node_free(raft);
        return rv;
    }
    bp->id = hp->partition_id;
    bp->role = RAFT_FOLLOWER;
    bp->active = true; /* until the configuration says otherwise */
    if (st.has_snapshot) {
        /* The state directory normally holds the state at or after the
         * snapshot (it is kept up to date as entries apply); when it is
         * older (lost, or a fresh directory), the snapshot replaces it. */
        if (partition_applied_index(&bp->part) < st.snapshot.index) {
            partition_restore(&bp->part, st.snapshot_data.base,
                              st.snapshot_data.len);
        }
        bp->part.snapshot_index = st.snapshot.index;
    }
    storage_state_close(&st);
    bp->dirty = true;
    return 0;
}

int broker_init(uv_loop_t *loop, const struct broker_config *cfg,
                struct broker **out, char *errmsg, size_t errmsg_len)
{
    struct broker *b = calloc(1, sizeof(*b));
    struct broker_hosted_partition hosted[BROKER_PARTITIONS_MAX];
    size_t hosted_count = 0;
    char sterr[STORAGE_ERRMSG_BYTES];
    int rv;

    if (b == NULL) {
        snprintf(errmsg, errmsg_len, "out of memory");
        return -ENOMEM;
    }
    b->loop = loop;
    b->cfg = *cfg;
    /* Request ids name the request in the log (request_id of a command),
     * so they must not repeat across restarts of this broker: start from
     * the clock. */
    b->next_request_id = (uint64_t)time(NULL) << 22;
    snprintf(b->advertised, sizeof(b->advertised), "%s",
             cfg->advertised_host[0] != '\0' ? cfg->advertised_host
             : strcmp(cfg->host, "0.0.0.0") == 0 ? "127.0.0.1"
                                                 : cfg->host);
    rv = broker_config_placement(cfg, &b->placement);
    if (rv == 0) {
        rv = broker_placement_node_partitions(&b->placement, cfg->node_id,
                                              hosted, BROKER_PARTITIONS_MAX);
        if (rv >= 0) {
            hosted_count = (size_t)rv;
            rv = 0;
        }
    }
    if (rv != 0) {
        snprintf(errmsg, errmsg_len, "placement: %s",
                 broker_config_strerror(rv));
        free(b);
        return rv;
    }
    rv = broker_export_init(&b->exports, loop, &b->cfg, errmsg, errmsg_len);
    if (rv != 0) {
        free(b);
        return rv;
    }
    rv = storage_open_ex(cfg->data_directory, NULL, &b->storage, sterr);
    if (rv != 0) {
        snprintf(errmsg, errmsg_len, "storage in %s: %s",
                 cfg->data_directory, sterr);
        broker_export_close(b->exports, NULL, NULL);
        free(b);
        return rv;
    }
    {
        /* The cluster configuration: the one in the data directory (it
         * survives restarts and carries later changes), or version 1 from
         * the static placement on the first start. */
        char cerr[CLUSTER_CONFIG_ERRMSG_SIZE];
        rv = cluster_config_load(cfg->data_directory, &b->cluster, cerr,
                                 sizeof(cerr));
        if (rv == CLUSTER_CONFIG_E_NOT_FOUND) {
            rv = cluster_config_from_placement(&b->placement, &b->cluster);
            if (rv == 0) {
                rv = cluster_config_save(cfg->data_directory, &b->cluster,
                                         cerr, sizeof(cerr));
            } else {
                snprintf(cerr, sizeof(cerr), "%s",
                         cluster_config_strerror(rv));
            }
        }
        if (rv != 0) {
            snprintf(errmsg, errmsg_len, "cluster configuration: %s", cerr);
            goto err;
        }
        {
            /* Every configured exporter is known to the configuration
             * (ENABLED on every replica when first seen). */
            bool added = false;
            for (uint32_t i = 0; i < cfg->exporter_count && rv == 0; i++) {
                if (cluster_config_exporter_find(&b->cluster,
                                                 cfg->exporters[i].id) >= 0) {
                    continue;
                }
                rv = cluster_config_exporter_add(&b->cluster,
                                                 cfg->exporters[i].id, cerr,
                                                 sizeof(cerr));
                rv = rv >= 0 ? 0 : rv;
                added = true;
            }
            if (rv == 0 && added) {
                rv = cluster_config_save(cfg->data_directory, &b->cluster,
                                         cerr, sizeof(cerr));
            }
            if (rv != 0) {
                snprintf(errmsg, errmsg_len, "cluster configuration: %s",
                         cerr);
                goto err;
            }
            broker_export_set_phase(b->exports, broker_phase_of(&b->cluster));
        }
        if (b->cluster.cluster_size != cfg->cluster_size ||
            b->cluster.partitions_count != cfg->partitions_count) {
            fprintf(stderr, "broker %u: the stored cluster configuration "
                    "(version %" PRIu64 ": %u brokers, %u partitions) differs "
                    "from the configured one (%u brokers, %u partitions); "
                    "the stored one is reported\n", cfg->node_id,
                    b->cluster.version, b->cluster.cluster_size,
                    b->cluster.partitions_count, cfg->cluster_size,
                    cfg->partitions_count);
        }
    }
    for (uint32_t i = 0; i < BROKER_BATCHES_MAX; i++) {
        rv = storage_batch_new(b->storage, &b->batches[i].batch);
        if (rv != 0) {
            snprintf(errmsg, errmsg_len, "storage: %s", storage_strerror(rv));
            goto err;
        }
    }
    b->batch_count = 1;
    b->requests = calloc(BROKER_REQUESTS_MAX, sizeof(*b->requests));
    /* Every partition of the cluster gets a replica slot on every broker,
     * so that a configuration change can add this broker to any of them
     * at run time (scaling redistributes partitions): those of the
     * initial placement are bootstrapped, the others stay empty, and the
     * cluster configuration says which are active. */
    b->parts = calloc(b->placement.partition_count + 1, sizeof(*b->parts));
    if (b->requests == NULL || b->parts == NULL) {
        snprintf(errmsg, errmsg_len, "out of memory");
        rv = -ENOMEM;
        goto err;
    }
    for (uint32_t i = 0; i < b->placement.partition_count; i++) {
        struct broker_hosted_partition hp;
        bool placed = false;
        memset(&hp, 0, sizeof(hp));
        hp.partition_id = i + 1;
        for (size_t h = 0; h < hosted_count; h++) {
            if (hosted[h].partition_id == i + 1) {
                hp = hosted[h];
                placed = true;
            }
        }
        rv = broker_open_partition(b, &hp, placed, &b->parts[i], errmsg,
                                   errmsg_len);
        if (rv != 0) {
            goto err;
        }
        b->part_count++;
        rv = broker_export_partition_new(b->exports, &b->parts[i].part,
                                         &b->parts[i].exp);
        if (rv != 0) {
            snprintf(errmsg, errmsg_len, "exporters: out of memory");
            goto err;
        }
    }
    broker_parts_activate(b);
    *out = b;
    return 0;
err:
    broker_export_close(b->exports, NULL, NULL);
    for (uint32_t i = 0; i < b->part_count; i++) {
        partition_close(&b->parts[i].part);
    }
    for (uint32_t i = 0; i < BROKER_BATCHES_MAX; i++) {
        storage_batch_free(b->batches[i].batch);
    }
    storage_close(b->storage);
    free(b->parts);
    free(b->requests);
    free(b);
    return rv;
}

int broker_start(struct broker *b, char *errmsg, size_t errmsg_len)
{
    struct transport_options to;
    struct transport_callbacks tc;
    struct command_api_options ao;
    struct command_api_handler ah;
    struct management_options mo;
    struct management_provider mp;
    const char *contacts[BROKER_CONFIG_CONTACT_POINTS_MAX];
    char contact_buf[BROKER_CONFIG_CONTACT_POINTS_MAX][300];
    int rv;

    memset(&ao, 0, sizeof(ao));
    ao.host = b->cfg.host;
    ao.port = b->cfg.command_api_port;
    memset(&ah, 0, sizeof(ah));
    ah.request = broker_on_request;
    ah.data = b;
    rv = command_api_init(b->loop, &b->api, &ao, &ah);
    if (rv == 0) {
        rv = command_api_start(b->api, errmsg, errmsg_len);
    }
    if (rv != 0) {
        return rv;
    }

    memset(&to, 0, sizeof(to));
    to.node_id = (uint32_t)raft_id_of(b->cfg.node_id);
    to.cluster_name = b->cfg.cluster_name;
    to.listen_host = b->cfg.host;
    to.listen_port = b->cfg.internal_api_port;
    to.advertised_host = b->advertised;
    to.advertised_port = b->cfg.internal_api_port;
    to.command_host = b->advertised;
    to.command_port = (uint16_t)command_api_port(b->api);
    to.version = TANDEM_VERSION;
    memset(&tc, 0, sizeof(tc));
    tc.on_raft = broker_on_raft;
    tc.on_command = broker_on_command;
    tc.on_rebalance = broker_on_rebalance;
    tc.on_forward = broker_on_forward;
    tc.data = b;
    rv = transport_init(b->loop, &b->transport, &to, &tc);
    if (rv != 0) {
        snprintf(errmsg, errmsg_len, "transport: %s", transport_strerror(rv));
        return rv;
    }
    {
        uint8_t *bytes = malloc(CLUSTER_CONFIG_BYTES_MAX);
        size_t len = 0;
        rv = bytes != NULL ? cluster_config_encode(&b->cluster, bytes,
                                                   CLUSTER_CONFIG_BYTES_MAX,
                                                   &len)
                           : -ENOMEM;
        if (rv == 0) {
            rv = transport_set_cluster_config(b->transport,
                                              b->cluster.version, bytes, len);
        }
        free(bytes);
        if (rv != 0) {
            snprintf(errmsg, errmsg_len, "cluster configuration: %d", rv);
            return rv;
        }
        transport_set_cluster_config_cb(b->transport,
                                        broker_on_cluster_config, b);
    }
    for (uint32_t i = 0; i < b->cfg.contact_point_count; i++) {
        snprintf(contact_buf[i], sizeof(contact_buf[i]), "%s:%u",
                 b->cfg.contact_points[i].host,
                 (unsigned)b->cfg.contact_points[i].port);
        contacts[i] = contact_buf[i];
    }
    rv = transport_start(b->transport, contacts, b->cfg.contact_point_count);
    if (rv != 0) {
        snprintf(errmsg, errmsg_len,
                 "transport: cannot listen on %s:%u: %d", b->cfg.host,
                 (unsigned)b->cfg.internal_api_port, rv);
        return rv;
    }

    memset(&mo, 0, sizeof(mo));
    mo.host = b->cfg.host;
    mo.port = b->cfg.management_port;
    memset(&mp, 0, sizeof(mp));
    mp.data = b;
    mp.status = broker_status;
    mp.cluster = broker_cluster_json;
    mp.change = broker_change;
    b->mgmt.data = b;
    rv = management_init(b->loop, &b->mgmt, &mo, &mp);
    if (rv == 0) {
        b->mgmt_open = true;
        rv = management_start(&b->mgmt);
    }
    if (rv != 0) {
        snprintf(errmsg, errmsg_len, "management: cannot listen on %s:%u: %s",
                 b->cfg.host, (unsigned)b->cfg.management_port,
                 management_errmsg(&b->mgmt));
        return rv;
    }

    if (b->cfg.gateway_enable) {
        struct gateway_options go;
        const char *contacts_gw[1];
        gateway_options_default(&go);
        snprintf(b->gateway_contact, sizeof(b->gateway_contact), "%s:%d",
                 b->advertised, command_api_port(b->api));
        contacts_gw[0] = b->gateway_contact;
        go.host = b->cfg.host;
        go.grpc_port = b->cfg.gateway_port;
        go.rest_port = b->cfg.rest_port;
        go.rest_enabled = true;
        go.contact_points = contacts_gw;
        go.contact_point_count = 1;
        go.topology_refresh_ms = b->cfg.heartbeat_interval_ms;
        go.version = TANDEM_VERSION;
        rv = gateway_init(b->loop, &b->gateway, &go);
        if (rv == 0) {
            /* after gateway_init(), which zeroes the struct */
            b->gateway.data = b;
            b->gateway_open = true;
            rv = gateway_start(&b->gateway);
        }
        if (rv != 0) {
            snprintf(errmsg, errmsg_len, "embedded gateway: %s",
                     b->gateway.errmsg);
            return rv;
        }
    }

    uv_timer_init(b->loop, &b->tick);
    b->tick.data = b;
    uv_timer_start(&b->tick, broker_tick, BROKER_TICK_MS, BROKER_TICK_MS);
    uv_timer_init(b->loop, &b->snapshot_timer);
    b->snapshot_timer.data = b;
    uv_timer_start(&b->snapshot_timer, broker_snapshot,
                   b->cfg.snapshot_period_ms, b->cfg.snapshot_period_ms);
    uv_check_init(b->loop, &b->check);
    b->check.data = b;
    uv_check_start(&b->check, broker_turn);
    b->started = true;
    fprintf(stderr, "broker %u: started: %u partitions, command API on "
            "%s:%d\n", b->cfg.node_id, b->part_count, b->advertised,
            command_api_port(b->api));
    return 0;
}

static void broker_maybe_free(struct broker *b)
{
    if (b->closing_left > 0 || b->committing) {
        return;
    }
    for (uint32_t i = 0; i < b->part_count; i++) {
        partition_close(&b->parts[i].part);
    }
    for (uint32_t i = 0; i < BROKER_BATCHES_MAX; i++) {
        struct broker_batch *bb = &b->batches[i];
        for (size_t k = 0; k < bb->held_count; k++) {
            held_free(&bb->held[k]);
        }
        free(bb->held);
        storage_batch_free(bb->batch);
    }
    storage_close(b->storage);
    free(b->parts);
    free(b->requests);
    {
        void (*cb)(void *) = b->close_cb;
        void *data = b->close_data;
        free(b);
        if (cb != NULL) {
            cb(data);
        }
    }
}

static void broker_handle_closed(uv_handle_t *h)
{
    struct broker *b = h->data;
    b->closing_left--;
    broker_maybe_free(b);
}

static void broker_exports_closed(void *data)
{
    struct broker *b = data;
    b->closing_left--;
    broker_maybe_free(b);
}

static void broker_api_closed(void *data)
{
    struct broker *b = data;
    b->closing_left--;
    broker_maybe_free(b);
}

static void broker_transport_closed(struct transport *t)
{
    struct broker *b = transport_data(t);
    b->closing_left--;
    broker_maybe_free(b);
}

static void broker_gateway_closed(struct gateway *gw)
{
    struct broker *b = gw->data;
    b->closing_left--;
    broker_maybe_free(b);
}

static void broker_mgmt_closed(struct management *m)
{
    struct broker *b = m->data;
    b->closing_left--;
    broker_maybe_free(b);
}

void broker_close(struct broker *b, void (*cb)(void *data), void *data)
{
    b->closing = true;
    b->close_cb = cb;
    b->close_data = data;
    b->closing_left = 1; /* released below, after every close started */
    if (b->started) {
        b->closing_left += 3;
        uv_close((uv_handle_t *)&b->tick, broker_handle_closed);
        uv_close((uv_handle_t *)&b->snapshot_timer, broker_handle_closed);
        uv_close((uv_handle_t *)&b->check, broker_handle_closed);
    }
    if (b->api != NULL) {
        b->closing_left++;
        command_api_close(b->api, broker_api_closed, b);
    }
    if (b->transport != NULL) {
        b->closing_left++;
        transport_close(b->transport, broker_transport_closed);
    }
    if (b->mgmt_open) {
        b->closing_left++;
        b->mgmt.data = b;
        management_close(&b->mgmt, broker_mgmt_closed);
    }
    if (b->gateway_open) {
        b->closing_left++;
        gateway_close(&b->gateway, broker_gateway_closed);
    }
    if (b->exports != NULL) {
        /* Directors read partitions: they close before partitions do. */
        b->closing_left++;
        broker_export_close(b->exports, broker_exports_closed, b);
        b->exports = NULL;
    }
    b->closing_left--;
    broker_maybe_free(b);
}
