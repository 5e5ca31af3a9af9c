/* test_storage_raft.c: three raft nodes (raft/raft.h) persisting through
 * broker/storage, across a simulated crash of the whole group.
 *
 * Each node has its own storage directory (one LMDB env per broker). The
 * harness steps nodes on one thread with a simulated clock:
 *
 *   raft_node_step -> update
 *     -> storage_batch_put_update (+ commit hint) -> storage_batch_commit
 *     -> messages deep-copied into a queue (update memory dies at the next
 *        call on the node), committed entries applied (each index's bytes
 *        hashed and compared across nodes and restarts)
 *     -> RAFT_EVENT_PERSISTED {index, term} from storage_batch_persisted
 *   queue -> RAFT_EVENT_RECEIVE on the addressee
 *
 * The test elects a leader, commits entries, compacts one node's log
 * through an application snapshot, then "crashes" every node (raft nodes
 * freed, storages closed, messages in flight dropped), reloads each with
 * storage_load + raft_node_load, checks the log (last index, its term,
 * term, vote) came back unchanged, and checks the group elects a leader
 * again and commits new entries on every node. */
#define _XOPEN_SOURCE 700

#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/storage.h"

#define NODES 3
#define PARTITION 7
#define INDEX_MAX 1024
#define ROUNDS_MAX 20000

struct queued {
    struct raft_message msg; /* entries and data point into owned copies */
    struct raft_entry *entries;
    void *data;
};

struct tnode {
    raft_id id;
    char dir[64];
    struct raft_node *raft;
    struct storage *s;
    struct storage_batch *b;
    raft_index applied;      /* state machine position */
    raft_index commit_saved; /* last commit hint written */
};

struct cluster {
    struct tnode nodes[NODES];
    struct queued *queue;
    size_t queue_count;
    size_t queue_cap;
    raft_time now;
    uint64_t hashes[INDEX_MAX + 1]; /* applied entry hash per index, 0 unset */
};

static uint64_t hash_bytes(const void *p, size_t len, uint64_t h)
{
    const uint8_t *b = p;
    h ^= UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < len; i++) {
        h = (h ^ b[i]) * UINT64_C(0x100000001b3);
    }
    return h | 1u;
}

/* ------------------------------------------------------------------------
 * Message queue
 * --------------------------------------------------------------------- */

static void queue_push(struct cluster *c, const struct raft_message *m)
{
    struct queued *q;

    if (c->queue_count == c->queue_cap) {
        c->queue_cap = c->queue_cap == 0 ? 64 : c->queue_cap * 2;
        c->queue = realloc(c->queue, c->queue_cap * sizeof(*c->queue));
        assert_non_null(c->queue);
    }
    q = &c->queue[c->queue_count++];
    memset(q, 0, sizeof(*q));
    q->msg = *m;
    if (m->entry_count > 0) {
        q->entries = calloc(m->entry_count, sizeof(*q->entries));
        assert_non_null(q->entries);
        for (size_t i = 0; i < m->entry_count; i++) {
            q->entries[i] = m->entries[i];
            if (m->entries[i].buf.len > 0) {
                void *p = malloc(m->entries[i].buf.len);
                assert_non_null(p);
                memcpy(p, m->entries[i].buf.base, m->entries[i].buf.len);
                q->entries[i].buf.base = p;
            }
        }
    }
    q->msg.entries = q->entries;
    if (m->data.len > 0) {
        q->data = malloc(m->data.len);
        assert_non_null(q->data);
        memcpy(q->data, m->data.base, m->data.len);
    }
    q->msg.data.base = q->data;
}

static void queued_free(struct queued *q)
{
    for (size_t i = 0; i < q->msg.entry_count; i++) {
        free((void *)q->entries[i].buf.base);
    }
    free(q->entries);
    free(q->data);
}

static void queue_clear(struct cluster *c)
{
    for (size_t i = 0; i < c->queue_count; i++) {
        queued_free(&c->queue[i]);
    }
    c->queue_count = 0;
}

/* ------------------------------------------------------------------------
 * Node driving
 * --------------------------------------------------------------------- */

static void node_step(struct cluster *c, struct tnode *n,
                      const struct raft_event *ev);

static void commit_ok(struct tnode *n)
{
    int rv = storage_batch_commit(n->s, n->b);
    if (rv != 0) {
        fail_msg("node %llu: commit: %s: %s", (unsigned long long)n->id,
                 storage_strerror(rv), storage_errmsg(n->s));
    }
}

/* Processes one update in raft.h order; storage writes are synchronous
 * here, so PERSISTED is fed right after the rest of the update. */
static void node_handle(struct cluster *c, struct tnode *n,
                        const struct raft_update *u)
{
    const struct storage_persisted *p;
    struct raft_event ev;
    size_t count;

    storage_batch_reset(n->b);
    assert_int_equal(storage_batch_put_update(n->b, PARTITION, u), 0);
    if (u->commit_index > n->commit_saved) {
        assert_int_equal(
            storage_batch_put_commit(n->b, PARTITION, u->commit_index), 0);
        n->commit_saved = u->commit_index;
    }
    commit_ok(n);
    if (u->flags & RAFT_UPDATE_SNAPSHOT) {
        n->applied = u->snapshot->index; /* restored from the snapshot */
    }
    if (u->flags & RAFT_UPDATE_MESSAGES) {
        for (size_t i = 0; i < u->message_count; i++) {
            queue_push(c, &u->messages[i]);
        }
    }
    if (u->flags & RAFT_UPDATE_COMMITTED) {
        for (size_t i = 0; i < u->committed_count; i++) {
            const struct raft_entry *e = &u->committed[i];
            uint64_t h = hash_bytes(e->buf.base, e->buf.len, e->term);
            assert_int_equal(e->index, n->applied + 1);
            assert_true(e->index <= INDEX_MAX);
            if (c->hashes[e->index] == 0) {
                c->hashes[e->index] = h;
            }
            assert_int_equal(c->hashes[e->index], h);
            n->applied = e->index;
        }
    }
    p = storage_batch_persisted(n->b, &count);
    assert_true(count <= 1);
    if (count == 1) {
        assert_int_equal(p[0].partition, PARTITION);
        memset(&ev, 0, sizeof(ev));
        ev.type = RAFT_EVENT_PERSISTED;
        ev.now = c->now;
        ev.persisted.index = p[0].index;
        ev.persisted.term = p[0].term;
        node_step(c, n, &ev);
    }
}

static void node_step(struct cluster *c, struct tnode *n,
                      const struct raft_event *ev)
{
    struct raft_update u;
    int rv = raft_node_step(n->raft, ev, &u);
    if (ev != NULL && ev->type != RAFT_EVENT_PROPOSE) {
        assert_int_equal(rv, 0);
    }
    node_handle(c, n, &u);
}

static struct tnode *node_by_id(struct cluster *c, raft_id id)
{
    for (int i = 0; i < NODES; i++) {
        if (c->nodes[i].id == id) {
            return &c->nodes[i];
        }
    }
    return NULL;
}

/* One round: deliver every queued message, tick nodes whose deadline
 * passed, advance the clock by 10 ms. */
static void round_run(struct cluster *c)
{
    size_t count = c->queue_count;
    struct queued *batch = malloc((count + 1) * sizeof(*batch));

    assert_non_null(batch);
    if (count > 0) {
        memcpy(batch, c->queue, count * sizeof(*batch));
    }
    c->queue_count = 0;
    for (size_t i = 0; i < count; i++) {
        struct tnode *to = node_by_id(c, batch[i].msg.to);
        struct raft_event ev;
        memset(&ev, 0, sizeof(ev));
        ev.type = RAFT_EVENT_RECEIVE;
        ev.now = c->now;
        ev.receive.message = &batch[i].msg;
        if (to != NULL) {
            node_step(c, to, &ev);
        }
        queued_free(&batch[i]);
    }
    free(batch);
    for (int i = 0; i < NODES; i++) {
        struct tnode *n = &c->nodes[i];
        if (raft_node_deadline(n->raft) <= c->now) {
            struct raft_event ev;
            memset(&ev, 0, sizeof(ev));
            ev.type = RAFT_EVENT_TICK;
            ev.now = c->now;
            node_step(c, n, &ev);
        }
    }
    c->now += 10;
}

static struct tnode *leader_find(struct cluster *c)
{
    for (int i = 0; i < NODES; i++) {
        if (raft_node_role(c->nodes[i].raft) == RAFT_LEADER) {
            return &c->nodes[i];
        }
    }
    return NULL;
}

static struct tnode *leader_wait(struct cluster *c)
{
    for (int r = 0; r < ROUNDS_MAX; r++) {
        struct tnode *l = leader_find(c);
        if (l != NULL &&
            raft_node_commit_index(l->raft) >= raft_node_last_index(l->raft)) {
            return l;
        }
        round_run(c);
    }
    fail_msg("no leader elected");
    return NULL;
}

/* Proposes count entries one per round and runs until every node applied
 * the leader's last index. */
static void propose_and_settle(struct cluster *c, int count, int tag)
{
    struct tnode *l = leader_wait(c);
    raft_index target;

    for (int i = 0; i < count; i++) {
        char text[64];
        struct raft_buf buf;
        struct raft_event ev;
        int len = snprintf(text, sizeof(text), "entry %d of batch %d", i, tag);
        buf.base = text;
        buf.len = (size_t)len;
        memset(&ev, 0, sizeof(ev));
        ev.type = RAFT_EVENT_PROPOSE;
        ev.now = c->now;
        ev.propose.bufs = &buf;
        ev.propose.count = 1;
        node_step(c, l, &ev);
        round_run(c);
    }
    target = raft_node_last_index(l->raft);
    for (int r = 0; r < ROUNDS_MAX; r++) {
        bool done = true;
        for (int i = 0; i < NODES; i++) {
            done = done && c->nodes[i].applied >= target;
        }
        if (done) {
            return;
        }
        round_run(c);
    }
    fail_msg("entries up to %llu not applied everywhere",
             (unsigned long long)target);
}

static void node_open(struct tnode *n)
{
    char err[STORAGE_ERRMSG_BYTES];
    struct raft_options o;
    int rv;

    rv = storage_open_ex(n->dir, NULL, &n->s, err);
    if (rv != 0) {
        fail_msg("open: %s", err);
    }
    assert_int_equal(storage_batch_new(n->s, &n->b), 0);
    raft_options_default(&o, n->id);
    o.seed = n->id * 7919;
    o.trailing_entries = 4;
    assert_int_equal(raft_node_new(&o, &n->raft), 0);
}

static void node_crash(struct tnode *n)
{
    raft_node_free(n->raft);
    storage_batch_free(n->b);
    storage_close(n->s);
    n->raft = NULL;
    n->b = NULL;
    n->s = NULL;
}

/* Reloads a crashed node from its storage. */
static void node_restart(struct tnode *n)
{
    struct storage_state st;
    struct raft_hard_state hs;
    int rv;

    node_open(n);
    rv = storage_load(n->s, PARTITION, &st);
    if (rv != 0) {
        fail_msg("load: %s", storage_errmsg(n->s));
    }
    memset(&hs, 0, sizeof(hs));
    if (st.has_hard_state) {
        hs = st.hard_state;
    }
    rv =
        raft_node_load(n->raft, &hs, st.has_snapshot ? &st.snapshot : NULL,
                       st.snapshot_data, st.entries, st.entry_count, st.commit);
    assert_int_equal(rv, 0);
    n->applied = st.has_snapshot ? st.snapshot.index : 0;
    n->commit_saved = st.commit;
    storage_state_close(&st);
}

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void test_raft_restart(void **state)
{
    struct cluster *c = calloc(1, sizeof(*c));
    struct raft_config config;
    raft_index last[NODES];
    raft_term last_term[NODES];
    raft_term term[NODES];
    raft_id vote[NODES];
    struct tnode *n0;

    (void)state;
    assert_non_null(c);
    raft_config_init(&config);
    for (int i = 0; i < NODES; i++) {
        struct tnode *n = &c->nodes[i];
        n->id = (raft_id)(i + 1);
        assert_int_equal(raft_config_add(&config, n->id, RAFT_VOTER, 1), 0);
        snprintf(n->dir, sizeof(n->dir), "/tmp/tandem-storage-raft-XXXXXX");
        assert_non_null(mkdtemp(n->dir));
    }
    for (int i = 0; i < NODES; i++) {
        struct tnode *n = &c->nodes[i];
        node_open(n);
        assert_int_equal(raft_node_bootstrap(n->raft, &config), 0);
        node_step(c, n, NULL); /* persist the bootstrap entry */
    }
    propose_and_settle(c, 30, 1);

    /* Application snapshot on node 1, then compaction in storage. */
    n0 = &c->nodes[0];
    {
        char data[64];
        struct raft_event ev;
        const struct raft_snapshot_meta *meta;
        int len = snprintf(data, sizeof(data), "state at %llu",
                           (unsigned long long)n0->applied);
        memset(&ev, 0, sizeof(ev));
        ev.type = RAFT_EVENT_SNAPSHOT;
        ev.now = c->now;
        ev.snapshot.index = n0->applied;
        ev.snapshot.data.base = data;
        ev.snapshot.data.len = (size_t)len;
        node_step(c, n0, &ev);
        meta = raft_node_snapshot(n0->raft);
        assert_non_null(meta);
        storage_batch_reset(n0->b);
        assert_int_equal(
            storage_batch_compact(n0->b, PARTITION, meta, ev.snapshot.data), 0);
        commit_ok(n0);
    }
    propose_and_settle(c, 10, 2);

    /* Crash everything: in-flight messages are lost. */
    for (int i = 0; i < NODES; i++) {
        struct tnode *n = &c->nodes[i];
        last[i] = raft_node_last_index(n->raft);
        last_term[i] = raft_node_term_at(n->raft, last[i]);
        term[i] = raft_node_term(n->raft);
        vote[i] = raft_node_vote(n->raft);
        node_crash(n);
    }
    queue_clear(c);
    for (int i = 0; i < NODES; i++) {
        struct tnode *n = &c->nodes[i];
        node_restart(n);
        assert_int_equal(raft_node_last_index(n->raft), last[i]);
        assert_int_equal(raft_node_term_at(n->raft, last[i]), last_term[i]);
        assert_int_equal(raft_node_term(n->raft), term[i]);
        assert_int_equal(raft_node_vote(n->raft), vote[i]);
    }
    assert_non_null(raft_node_snapshot(n0->raft));
    assert_true(raft_node_first_index(n0->raft) > 1);

    /* The group continues: new leader, new entries committed everywhere,
     * replays after restart agree with what was applied before. */
    propose_and_settle(c, 15, 3);
    for (int i = 0; i < NODES; i++) {
        assert_true(raft_node_last_index(c->nodes[i].raft) > last[i]);
        assert_true(raft_node_commit_index(c->nodes[i].raft) > last[i]);
    }

    for (int i = 0; i < NODES; i++) {
        node_crash(&c->nodes[i]);
        assert_int_equal(
            nftw(c->nodes[i].dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
    }
    queue_clear(c);
    free(c->queue);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raft_restart),
    };
    return cmocka_run_group_tests_name("storage-raft", tests, NULL, NULL);
}
