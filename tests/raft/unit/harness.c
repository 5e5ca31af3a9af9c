/* harness.c: the hand-driven in-memory cluster used by the raft unit tests
 * (see harness.h for the model and the contract checks it performs). */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define H_DELIVER_MAX 2000000u

/* ------------------------------------------------------------------------
 * Small utilities
 * --------------------------------------------------------------------- */

static void *h_xmalloc(size_t size)
{
    void *p = malloc(size == 0 ? 1 : size);
    if (p == NULL) {
        fprintf(stderr, "harness: out of memory\n");
        abort();
    }
    return p;
}

static void *h_xrealloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size == 0 ? 1 : size);
    if (p == NULL) {
        fprintf(stderr, "harness: out of memory\n");
        abort();
    }
    return p;
}

static void *h_dup(const void *data, size_t len)
{
    void *p = h_xmalloc(len);
    if (len > 0) {
        memcpy(p, data, len);
    }
    return p;
}

#define H_GROW(arr, len, cap)                                                  \
    do {                                                                       \
        if ((len) == (cap)) {                                                  \
            (cap) = (cap) == 0 ? 16 : (cap)*2;                                 \
            (arr) = h_xrealloc((arr), (cap) * sizeof(*(arr)));                 \
        }                                                                      \
    } while (0)

static void h_violation(struct h_node *n, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void h_violation(struct h_node *n, const char *fmt, ...)
{
    va_list ap;
    if (n->violation[0] != '\0') {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(n->violation, sizeof(n->violation), fmt, ap);
    va_end(ap);
}

static void h_copy_entry(struct raft_entry *dst, const struct raft_entry *src)
{
    *dst = *src;
    dst->buf.base = h_dup(src->buf.base, src->buf.len);
}

static void h_free_entry(struct raft_entry *e)
{
    free((void *)e->buf.base);
    e->buf.base = NULL;
}

static void h_msg_copy(struct h_msg *dst, const struct raft_message *src)
{
    size_t i;
    memset(dst, 0, sizeof(*dst));
    dst->m = *src;
    dst->m.entries = NULL;
    dst->m.data.base = NULL;
    if (src->entry_count > 0) {
        dst->entries = h_xmalloc(src->entry_count * sizeof(*dst->entries));
        for (i = 0; i < src->entry_count; i++) {
            h_copy_entry(&dst->entries[i], &src->entries[i]);
        }
        dst->m.entries = dst->entries;
        dst->n_entries = src->entry_count;
    }
    if (src->data.len > 0) {
        dst->data = h_dup(src->data.base, src->data.len);
        dst->m.data.base = dst->data;
    }
}

static void h_msg_free(struct h_msg *msg)
{
    size_t i;
    for (i = 0; i < msg->n_entries && msg->entries != NULL; i++) {
        h_free_entry(&msg->entries[i]);
    }
    free(msg->entries);
    free(msg->data);
    memset(msg, 0, sizeof(*msg));
}

struct h_node *cluster_node(struct cluster *c, raft_id id)
{
    assert_true(id >= 1 && id <= c->n);
    return &c->nodes[id];
}

static const struct h_node *h_cnode(const struct cluster *c, raft_id id)
{
    assert_true(id >= 1 && id <= c->n);
    return &c->nodes[id];
}

struct raft_node *cluster_raft(struct cluster *c, raft_id id)
{
    struct h_node *n = cluster_node(c, id);
    assert_non_null(n->raft);
    return n->raft;
}

bool cluster_up(const struct cluster *c, raft_id id)
{
    return h_cnode(c, id)->raft != NULL;
}

/* ------------------------------------------------------------------------
 * The disk
 * --------------------------------------------------------------------- */

static raft_index h_disk_last(const struct h_node *n)
{
    if (n->log_len > 0) {
        return n->log[n->log_len - 1].index;
    }
    return n->has_snapshot ? n->snapshot.index : 0;
}

static const struct raft_entry *h_disk_entry(const struct h_node *n,
                                             raft_index index)
{
    raft_index first;
    if (n->log_len == 0) {
        return NULL;
    }
    first = n->log[0].index;
    if (index < first || index > h_disk_last(n)) {
        return NULL;
    }
    return &n->log[index - first];
}

/* Deletes every stored entry with index >= from. */
static void h_disk_truncate(struct h_node *n, raft_index from)
{
    size_t i;
    while (n->log_len > 0 && n->log[n->log_len - 1].index >= from) {
        h_free_entry(&n->log[n->log_len - 1]);
        n->log_len--;
    }
    if (n->durable_index >= from) {
        n->durable_index = from - 1;
    }
    /* Acknowledgements of overwritten writes are superseded. */
    for (i = 0; i < n->pending_len;) {
        if (n->pending[i].index >= from) {
            memmove(&n->pending[i], &n->pending[i + 1],
                    (n->pending_len - i - 1) * sizeof(*n->pending));
            n->pending_len--;
        } else {
            i++;
        }
    }
}

/* Deletes every stored entry with index <= upto. */
static void h_disk_compact(struct h_node *n, raft_index upto)
{
    size_t drop = 0;
    size_t i;
    while (drop < n->log_len && n->log[drop].index <= upto) {
        h_free_entry(&n->log[drop]);
        drop++;
    }
    memmove(n->log, n->log + drop, (n->log_len - drop) * sizeof(*n->log));
    n->log_len -= drop;
    for (i = 0; i < n->pending_len;) {
        if (n->pending[i].index <= upto) {
            memmove(&n->pending[i], &n->pending[i + 1],
                    (n->pending_len - i - 1) * sizeof(*n->pending));
            n->pending_len--;
        } else {
            i++;
        }
    }
}

static void h_disk_append(struct h_node *n, const struct raft_entry *e)
{
    H_GROW(n->log, n->log_len, n->log_cap);
    h_copy_entry(&n->log[n->log_len], e);
    n->log_len++;
}

static void h_sm_append(struct h_node *n, const void *data, size_t len)
{
    while (n->sm_len + len + 1 > n->sm_cap) {
        n->sm_cap = n->sm_cap == 0 ? 256 : n->sm_cap * 2;
        n->sm = h_xrealloc(n->sm, n->sm_cap);
    }
    if (len > 0) {
        memcpy(n->sm + n->sm_len, data, len);
    }
    n->sm_len += len;
    n->sm[n->sm_len++] = ';';
}

static void h_sm_restore(struct h_node *n, const void *data, size_t len)
{
    n->sm_len = 0;
    if (len + 1 > n->sm_cap) {
        n->sm_cap = len + 256;
        n->sm = h_xrealloc(n->sm, n->sm_cap);
    }
    if (len > 0) {
        memcpy(n->sm, data, len);
    }
    n->sm_len = len;
}

/* ------------------------------------------------------------------------
 * Update processing
 * --------------------------------------------------------------------- */

static void h_enqueue(struct cluster *c, const struct raft_message *m)
{
    if (c->trace_on) {
        H_GROW(c->trace, c->trace_len, c->trace_cap);
        h_msg_copy(&c->trace[c->trace_len++], m);
    }
    if (m->to == 0 || m->to > c->n || m->from == 0 || m->from > c->n ||
        c->cut[m->from][m->to]) {
        c->dropped++;
        return;
    }
    H_GROW(c->queue, c->queue_len, c->queue_cap);
    h_msg_copy(&c->queue[c->queue_len++], m);
}

static void h_note_leader(struct cluster *c, raft_term term, raft_id id)
{
    size_t i;
    for (i = 0; i < c->leader_count; i++) {
        if (c->leader_terms[i] == term) {
            if (c->leader_ids[i] != id && c->violation[0] == '\0') {
                snprintf(c->violation, sizeof(c->violation),
                         "two leaders in term %llu: %llu and %llu",
                         (unsigned long long)term,
                         (unsigned long long)c->leader_ids[i],
                         (unsigned long long)id);
            }
            return;
        }
    }
    if (c->leader_count <
        sizeof(c->leader_terms) / sizeof(c->leader_terms[0])) {
        c->leader_terms[c->leader_count] = term;
        c->leader_ids[c->leader_count] = id;
        c->leader_count++;
    }
}

static void h_apply(struct h_node *n, const struct raft_entry *e)
{
    const struct raft_entry *stored;
    struct h_applied *a;
    if (e->index != n->applied + 1) {
        h_violation(n, "applied index %llu after %llu (out of order)",
                    (unsigned long long)e->index,
                    (unsigned long long)n->applied);
    }
    if (e->index > n->durable_index) {
        h_violation(n,
                    "committed entry %llu listed before it was persisted "
                    "(durable %llu)",
                    (unsigned long long)e->index,
                    (unsigned long long)n->durable_index);
    }
    stored = h_disk_entry(n, e->index);
    if (stored != NULL && stored->term != e->term) {
        h_violation(n, "committed entry %llu has term %llu, disk has %llu",
                    (unsigned long long)e->index, (unsigned long long)e->term,
                    (unsigned long long)stored->term);
    }
    if (e->type == RAFT_ENTRY_NORMAL) {
        h_sm_append(n, e->buf.base, e->buf.len);
    }
    H_GROW(n->applied_log, n->applied_len, n->applied_cap);
    a = &n->applied_log[n->applied_len++];
    a->index = e->index;
    a->term = e->term;
    a->type = e->type;
    a->len = e->buf.len;
    a->data = h_dup(e->buf.base, e->buf.len);
    n->applied = e->index;
}

static void h_persist_one(struct cluster *c, struct h_node *n);

static void h_process(struct cluster *c, struct h_node *n,
                      const struct raft_update *u)
{
    struct h_update_rec rec;
    size_t i;

    memset(&rec, 0, sizeof(rec));
    rec.flags = u->flags;
    rec.role = u->role;
    rec.term = u->term;

    if (u->role == RAFT_LEADER) {
        h_note_leader(c, u->term, n->id);
    }

    /* 1. Snapshot. */
    if (u->flags & RAFT_UPDATE_SNAPSHOT) {
        const struct raft_snapshot_meta *meta = u->snapshot;
        const struct raft_entry *at;
        assert_non_null(meta);
        at = h_disk_entry(n, meta->index);
        if (at != NULL && at->term == meta->term) {
            h_disk_compact(n, meta->index);
        } else {
            h_disk_compact(n, h_disk_last(n));
        }
        n->has_snapshot = true;
        n->snapshot = *meta;
        free(n->snapshot_data);
        n->snapshot_data = h_dup(u->snapshot_data.base, u->snapshot_data.len);
        n->snapshot_len = u->snapshot_data.len;
        n->snapshots_installed++;
        if (n->durable_index < meta->index || n->log_len == 0) {
            n->durable_index = meta->index;
        }
        h_sm_restore(n, u->snapshot_data.base, u->snapshot_data.len);
        n->applied = meta->index;
    }

    /* 2. Hard state. */
    if (u->flags & RAFT_UPDATE_HARD_STATE) {
        n->has_hard_state = true;
        n->hard_state = u->hard_state;
        rec.hard_state = u->hard_state;
        if (u->hard_state.forced) {
            n->ever_forced = true;
        }
    }

    /* 3. Entries. */
    if (u->flags & RAFT_UPDATE_ENTRIES) {
        raft_index first;
        raft_index last;
        if (u->entry_count == 0 || u->entries == NULL) {
            h_violation(n, "RAFT_UPDATE_ENTRIES with no entries");
        } else {
            first = u->entries[0].index;
            last = h_disk_last(n);
            if (first > last + 1) {
                h_violation(n, "entries start at %llu, disk ends at %llu",
                            (unsigned long long)first,
                            (unsigned long long)last);
            }
            for (i = 1; i < u->entry_count; i++) {
                if (u->entries[i].index != first + i) {
                    h_violation(n, "update entries not contiguous");
                }
            }
            h_disk_truncate(n, first);
            for (i = 0; i < u->entry_count; i++) {
                h_disk_append(n, &u->entries[i]);
            }
            rec.entries_first = first;
            rec.entry_count = u->entry_count;
            H_GROW(n->pending, n->pending_len, n->pending_cap);
            n->pending[n->pending_len].index =
                u->entries[u->entry_count - 1].index;
            n->pending[n->pending_len].term =
                u->entries[u->entry_count - 1].term;
            n->pending_len++;
        }
    }

    /* 4. Messages. */
    if (u->flags & RAFT_UPDATE_MESSAGES) {
        rec.message_count = u->message_count;
        for (i = 0; i < u->message_count; i++) {
            const struct raft_message *m = &u->messages[i];
            raft_term durable_term = n->has_hard_state ? n->hard_state.term : 0;
            if (m->from != n->id) {
                h_violation(n, "message from %llu sent by node %llu",
                            (unsigned long long)m->from,
                            (unsigned long long)n->id);
            }
            if (m->type != RAFT_MSG_PRE_VOTE &&
                m->type != RAFT_MSG_PRE_VOTE_RESP && m->term > durable_term) {
                h_violation(n,
                            "message type %u announces term %llu before it "
                            "is durable (durable term %llu)",
                            (unsigned)m->type, (unsigned long long)m->term,
                            (unsigned long long)durable_term);
            }
            if (m->type == RAFT_MSG_VOTE_RESP && !m->reject) {
                rec.granted_vote_to = m->to;
                if (!n->has_hard_state || n->hard_state.term != m->term ||
                    n->hard_state.vote != m->to) {
                    h_violation(n,
                                "vote for %llu in term %llu sent before it "
                                "was durable",
                                (unsigned long long)m->to,
                                (unsigned long long)m->term);
                }
            }
            if (m->type == RAFT_MSG_APPEND_RESP && !m->reject &&
                m->index > n->durable_index) {
                h_violation(n,
                            "append ack for index %llu before it was "
                            "persisted (durable %llu)",
                            (unsigned long long)m->index,
                            (unsigned long long)n->durable_index);
            }
            h_enqueue(c, m);
        }
    }

    /* 5. Committed entries. */
    if (u->flags & RAFT_UPDATE_COMMITTED) {
        rec.committed_count = u->committed_count;
        for (i = 0; i < u->committed_count; i++) {
            h_apply(n, &u->committed[i]);
        }
    }

    H_GROW(n->updates, n->update_len, n->update_cap);
    n->updates[n->update_len++] = rec;

    /* Synchronous persistence: acknowledge right away. */
    while (!n->hold_persist && n->pending_len > 0 && n->raft != NULL) {
        h_persist_one(c, n);
    }
}

static int h_step(struct cluster *c, struct h_node *n, struct raft_event *event)
{
    struct raft_update u;
    int rv;
    assert_non_null(n->raft);
    if (event != NULL) {
        event->now = c->now;
    }
    memset(&u, 0, sizeof(u));
    rv = raft_node_step(n->raft, event, &u);
    h_process(c, n, &u);
    return rv;
}

static void h_persist_one(struct cluster *c, struct h_node *n)
{
    struct raft_event e;
    struct h_pending p = n->pending[0];
    const struct raft_entry *stored;
    memmove(&n->pending[0], &n->pending[1],
            (n->pending_len - 1) * sizeof(*n->pending));
    n->pending_len--;
    stored = h_disk_entry(n, p.index);
    if (stored != NULL && stored->term == p.term &&
        p.index > n->durable_index) {
        n->durable_index = p.index;
    }
    memset(&e, 0, sizeof(e));
    e.type = RAFT_EVENT_PERSISTED;
    e.persisted.index = p.index;
    e.persisted.term = p.term;
    h_step(c, n, &e);
}

void cluster_persist(struct cluster *c, raft_id id)
{
    struct h_node *n = cluster_node(c, id);
    while (n->pending_len > 0 && n->raft != NULL) {
        h_persist_one(c, n);
    }
}

void cluster_persist_to(struct cluster *c, raft_id id, raft_index index)
{
    struct h_node *n = cluster_node(c, id);
    while (n->pending_len > 0 && n->raft != NULL &&
           n->pending[0].index <= index) {
        h_persist_one(c, n);
    }
}

/* ------------------------------------------------------------------------
 * Construction
 * --------------------------------------------------------------------- */

/* Live clusters, for harness_teardown(). */
static struct cluster *h_live[16];

static void h_register(struct cluster *c)
{
    size_t i;
    for (i = 0; i < sizeof(h_live) / sizeof(h_live[0]); i++) {
        if (h_live[i] == NULL) {
            h_live[i] = c;
            return;
        }
    }
}

static void h_unregister(struct cluster *c)
{
    size_t i;
    for (i = 0; i < sizeof(h_live) / sizeof(h_live[0]); i++) {
        if (h_live[i] == c) {
            h_live[i] = NULL;
        }
    }
}

int harness_teardown(void **state)
{
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(h_live) / sizeof(h_live[0]); i++) {
        if (h_live[i] != NULL) {
            cluster_free(h_live[i]);
        }
    }
    return 0;
}

void harness_options(struct raft_options *o, raft_id id)
{
    raft_options_default(o, id);
    o->priority_election = false;
    o->pre_vote = true;
    o->check_quorum = true;
}

static void h_new_raft(struct h_node *n)
{
    int rv = raft_node_new(&n->options, &n->raft);
    assert_int_equal(rv, 0);
    assert_non_null(n->raft);
}

struct cluster *cluster_create(size_t n, const struct raft_options *base)
{
    struct cluster *c;
    size_t i;
    assert_true(n >= 1 && n <= H_NODES_MAX);
    c = h_xmalloc(sizeof(*c));
    memset(c, 0, sizeof(*c));
    h_register(c);
    c->n = n;
    c->now = 0;
    c->step_ms = 10;
    for (i = 1; i <= n; i++) {
        struct h_node *node = &c->nodes[i];
        node->id = i;
        if (base != NULL) {
            node->options = *base;
        } else {
            harness_options(&node->options, i);
        }
        node->options.id = i;
        node->options.seed =
            0x9e3779b97f4a7c15ull * (i + 1) + (base != NULL ? base->seed : 0);
        h_new_raft(node);
    }
    return c;
}

void h_config_voters(struct raft_config *config, size_t voters)
{
    size_t i;
    raft_config_init(config);
    for (i = 1; i <= voters; i++) {
        assert_int_equal(raft_config_add(config, i, RAFT_VOTER, 1), 0);
    }
}

void cluster_bootstrap(struct cluster *c, const struct raft_config *config,
                       const raft_id *ids, size_t count)
{
    size_t i;
    for (i = 0; i < count; i++) {
        struct h_node *n = cluster_node(c, ids[i]);
        assert_int_equal(raft_node_bootstrap(n->raft, config), 0);
        cluster_collect(c, ids[i]);
    }
}

void cluster_bootstrap_voters(struct cluster *c, size_t voters,
                              const uint8_t *priorities)
{
    struct raft_config config;
    raft_id ids[H_NODES_MAX];
    size_t i;
    raft_config_init(&config);
    for (i = 1; i <= voters; i++) {
        assert_int_equal(
            raft_config_add(&config, i, RAFT_VOTER,
                            priorities != NULL ? priorities[i - 1] : 1),
            0);
        ids[i - 1] = i;
    }
    cluster_bootstrap(c, &config, ids, voters);
}

struct cluster *cluster_new(size_t n)
{
    struct cluster *c = cluster_create(n, NULL);
    cluster_bootstrap_voters(c, n, NULL);
    return c;
}

static void h_node_free_disk(struct h_node *n);
void cluster_dump(const struct cluster *c, const char *label);

static void h_node_free_disk(struct h_node *n)
{
    size_t i;
    for (i = 0; i < n->log_len; i++) {
        h_free_entry(&n->log[i]);
    }
    free(n->log);
    n->log = NULL;
    n->log_len = n->log_cap = 0;
    free(n->snapshot_data);
    n->snapshot_data = NULL;
}

void cluster_free(struct cluster *c)
{
    size_t i;
    size_t j;
    if (c == NULL) {
        return;
    }
    h_unregister(c);
    for (i = 1; i <= c->n; i++) {
        struct h_node *n = &c->nodes[i];
        raft_node_free(n->raft);
        h_node_free_disk(n);
        free(n->pending);
        free(n->sm);
        for (j = 0; j < n->applied_len; j++) {
            free(n->applied_log[j].data);
        }
        free(n->applied_log);
        free(n->updates);
    }
    for (i = 0; i < c->queue_len; i++) {
        h_msg_free(&c->queue[i]);
    }
    free(c->queue);
    for (i = 0; i < c->trace_len; i++) {
        h_msg_free(&c->trace[i]);
    }
    free(c->trace);
    free(c);
}

int cluster_load_log(struct cluster *c, raft_id id, raft_term term,
                     raft_id vote, const struct raft_config *config,
                     const raft_term *terms, size_t count)
{
    struct h_node *n = cluster_node(c, id);
    unsigned char cfg[RAFT_CONFIG_ENCODED_MAX];
    char payload[32];
    int len;
    size_t i;
    int rv;

    assert_true(count >= 1);
    assert_int_equal(n->log_len, 0);
    len = raft_config_encode(config, cfg, sizeof(cfg));
    assert_true(len > 0);
    for (i = 0; i < count; i++) {
        struct raft_entry e;
        memset(&e, 0, sizeof(e));
        e.index = i + 1;
        e.term = terms[i];
        if (i == 0) {
            e.type = RAFT_ENTRY_CONFIG;
            e.buf.base = cfg;
            e.buf.len = (size_t)len;
        } else {
            snprintf(payload, sizeof(payload), "e%zu", i + 1);
            e.type = RAFT_ENTRY_NORMAL;
            e.buf.base = payload;
            e.buf.len = strlen(payload);
        }
        h_disk_append(n, &e);
    }
    n->durable_index = count;
    n->has_hard_state = true;
    memset(&n->hard_state, 0, sizeof(n->hard_state));
    n->hard_state.term = term;
    n->hard_state.vote = vote;
    rv = raft_node_load(n->raft, &n->hard_state, NULL,
                        (struct raft_buf){NULL, 0}, n->log, n->log_len, 0);
    return rv;
}

/* ------------------------------------------------------------------------
 * Events
 * --------------------------------------------------------------------- */

int cluster_step(struct cluster *c, raft_id id, struct raft_event *event)
{
    return h_step(c, cluster_node(c, id), event);
}

void cluster_collect(struct cluster *c, raft_id id)
{
    (void)h_step(c, cluster_node(c, id), NULL);
}

int cluster_campaign(struct cluster *c, raft_id id)
{
    struct raft_event e;
    memset(&e, 0, sizeof(e));
    e.type = RAFT_EVENT_CAMPAIGN;
    return cluster_step(c, id, &e);
}

int cluster_propose_buf(struct cluster *c, raft_id id, const void *data,
                        size_t len, raft_index *first_index)
{
    struct raft_event e;
    struct raft_buf buf;
    buf.base = data;
    buf.len = len;
    memset(&e, 0, sizeof(e));
    e.type = RAFT_EVENT_PROPOSE;
    e.propose.bufs = &buf;
    e.propose.count = 1;
    e.propose.first_index = first_index;
    return cluster_step(c, id, &e);
}

int cluster_propose(struct cluster *c, raft_id id, const char *payload)
{
    return cluster_propose_buf(c, id, payload, strlen(payload), NULL);
}

int cluster_change(struct cluster *c, raft_id id,
                   const struct raft_config *config)
{
    struct raft_event e;
    memset(&e, 0, sizeof(e));
    e.type = RAFT_EVENT_CHANGE;
    e.change.config = config;
    return cluster_step(c, id, &e);
}

int cluster_force(struct cluster *c, raft_id id,
                  const struct raft_config *config)
{
    struct raft_event e;
    memset(&e, 0, sizeof(e));
    e.type = RAFT_EVENT_FORCE;
    e.force.config = config;
    return cluster_step(c, id, &e);
}

int cluster_transfer(struct cluster *c, raft_id id, raft_id to)
{
    struct raft_event e;
    memset(&e, 0, sizeof(e));
    e.type = RAFT_EVENT_TRANSFER;
    e.transfer.to = to;
    return cluster_step(c, id, &e);
}

int cluster_snapshot(struct cluster *c, raft_id id)
{
    struct h_node *n = cluster_node(c, id);
    struct raft_event e;
    const struct raft_snapshot_meta *meta;
    void *data = h_dup(n->sm, n->sm_len);
    size_t len = n->sm_len;
    int rv;
    memset(&e, 0, sizeof(e));
    e.type = RAFT_EVENT_SNAPSHOT;
    e.snapshot.index = n->applied;
    e.snapshot.data.base = data;
    e.snapshot.data.len = len;
    rv = cluster_step(c, id, &e);
    if (rv == 0) {
        meta = raft_node_snapshot(n->raft);
        assert_non_null(meta);
        n->has_snapshot = true;
        n->snapshot = *meta;
        free(n->snapshot_data);
        n->snapshot_data = data;
        n->snapshot_len = len;
        h_disk_compact(n, meta->index);
    } else {
        free(data);
    }
    return rv;
}

int cluster_inject(struct cluster *c, const struct raft_message *m)
{
    struct raft_event e;
    memset(&e, 0, sizeof(e));
    e.type = RAFT_EVENT_RECEIVE;
    e.receive.message = m;
    return cluster_step(c, m->to, &e);
}

/* ------------------------------------------------------------------------
 * Crash and restart
 * --------------------------------------------------------------------- */

void cluster_crash(struct cluster *c, raft_id id)
{
    struct h_node *n = cluster_node(c, id);
    raft_node_free(n->raft);
    n->raft = NULL;
    /* Writes that were never acknowledged may be lost. */
    while (n->log_len > 0 && n->log[n->log_len - 1].index > n->durable_index) {
        h_free_entry(&n->log[n->log_len - 1]);
        n->log_len--;
    }
    n->pending_len = 0;
}

int cluster_restart(struct cluster *c, raft_id id)
{
    struct h_node *n = cluster_node(c, id);
    struct raft_hard_state hs;
    struct raft_buf data = {NULL, 0};
    int rv;
    assert_null(n->raft);
    h_new_raft(n);
    memset(&hs, 0, sizeof(hs));
    if (n->has_hard_state) {
        hs = n->hard_state;
    }
    if (n->has_snapshot) {
        data.base = n->snapshot_data;
        data.len = n->snapshot_len;
        h_sm_restore(n, n->snapshot_data, n->snapshot_len);
        n->applied = n->snapshot.index;
    } else {
        n->sm_len = 0;
        n->applied = 0;
    }
    n->durable_index = h_disk_last(n);
    rv = raft_node_load(n->raft, &hs, n->has_snapshot ? &n->snapshot : NULL,
                        data, n->log, n->log_len, 0);
    return rv;
}

/* ------------------------------------------------------------------------
 * Network
 * --------------------------------------------------------------------- */

void cluster_isolate(struct cluster *c, raft_id id)
{
    size_t i;
    for (i = 1; i <= c->n; i++) {
        if (i != id) {
            cluster_cut(c, id, i);
        }
    }
}

void cluster_cut(struct cluster *c, raft_id a, raft_id b)
{
    c->cut[a][b] = true;
    c->cut[b][a] = true;
}

void cluster_heal(struct cluster *c)
{
    memset(c->cut, 0, sizeof(c->cut));
    memset(c->held, 0, sizeof(c->held));
    c->filter = NULL;
    c->filter_arg = NULL;
    c->mutate = NULL;
    c->mutate_arg = NULL;
}

void cluster_set_filter(struct cluster *c, h_filter_fn fn, void *arg)
{
    c->filter = fn;
    c->filter_arg = arg;
}

void cluster_set_mutator(struct cluster *c, h_mutate_fn fn, void *arg)
{
    c->mutate = fn;
    c->mutate_arg = arg;
}

static bool h_match(const struct raft_message *m, uint8_t type, raft_id from,
                    raft_id to)
{
    return (type == 0 || m->type == type) && (from == 0 || m->from == from) &&
           (to == 0 || m->to == to);
}

size_t cluster_count(const struct cluster *c, uint8_t type, raft_id from,
                     raft_id to)
{
    size_t i;
    size_t count = 0;
    for (i = 0; i < c->queue_len; i++) {
        if (h_match(&c->queue[i].m, type, from, to)) {
            count++;
        }
    }
    return count;
}

long cluster_find(const struct cluster *c, uint8_t type, raft_id from,
                  raft_id to, size_t start)
{
    size_t i;
    for (i = start; i < c->queue_len; i++) {
        if (h_match(&c->queue[i].m, type, from, to)) {
            return (long)i;
        }
    }
    return -1;
}

const struct raft_message *cluster_msg(const struct cluster *c, size_t i)
{
    assert_true(i < c->queue_len);
    return &c->queue[i].m;
}

void cluster_deliver_at(struct cluster *c, size_t i)
{
    struct h_msg msg;
    struct h_node *dst;
    assert_true(i < c->queue_len);
    msg = c->queue[i];
    memmove(&c->queue[i], &c->queue[i + 1],
            (c->queue_len - i - 1) * sizeof(*c->queue));
    c->queue_len--;
    /* The copy in msg owns the buffers; entries/data pointers stay valid. */
    msg.m.entries = msg.entries;
    if (msg.data != NULL) {
        msg.m.data.base = msg.data;
    }
    if (c->mutate != NULL) {
        c->mutate(&msg.m, c->mutate_arg);
    }
    dst = &c->nodes[msg.m.to];
    if (dst->raft == NULL || c->cut[msg.m.from][msg.m.to] ||
        (c->filter != NULL && c->filter(&msg.m, c->filter_arg))) {
        c->dropped++;
    } else {
        struct raft_event e;
        memset(&e, 0, sizeof(e));
        e.type = RAFT_EVENT_RECEIVE;
        e.receive.message = &msg.m;
        c->delivered++;
        (void)h_step(c, dst, &e);
    }
    h_msg_free(&msg);
}

size_t cluster_deliver(struct cluster *c, uint8_t type, raft_id from,
                       raft_id to)
{
    /* Only the messages present now: count them first. */
    size_t todo = cluster_count(c, type, from, to);
    size_t done = 0;
    while (done < todo) {
        long i = cluster_find(c, type, from, to, 0);
        if (i < 0) {
            break;
        }
        cluster_deliver_at(c, (size_t)i);
        done++;
    }
    return done;
}

void h_drop_at(struct cluster *c, size_t i)
{
    assert_true(i < c->queue_len);
    h_msg_free(&c->queue[i]);
    memmove(&c->queue[i], &c->queue[i + 1],
            (c->queue_len - i - 1) * sizeof(*c->queue));
    c->queue_len--;
    c->dropped++;
}

size_t cluster_drop(struct cluster *c, uint8_t type, raft_id from, raft_id to)
{
    size_t i = 0;
    size_t count = 0;
    while (i < c->queue_len) {
        if (h_match(&c->queue[i].m, type, from, to)) {
            h_msg_free(&c->queue[i]);
            memmove(&c->queue[i], &c->queue[i + 1],
                    (c->queue_len - i - 1) * sizeof(*c->queue));
            c->queue_len--;
            count++;
        } else {
            i++;
        }
    }
    c->dropped += count;
    return count;
}

void cluster_hold(struct cluster *c, raft_id id)
{
    c->held[id] = true;
}

void cluster_release(struct cluster *c, raft_id id)
{
    c->held[id] = false;
}

static bool h_held(const struct cluster *c, const struct raft_message *m)
{
    return c->held[m->from] || c->held[m->to];
}

size_t cluster_deliver_all(struct cluster *c)
{
    size_t count = 0;
    size_t i = 0;
    while (i < c->queue_len) {
        assert_true(count < H_DELIVER_MAX);
        if (h_held(c, &c->queue[i].m)) {
            i++;
            continue;
        }
        cluster_deliver_at(c, i); /* queue[i] is now the next one */
        count++;
    }
    return count;
}

/* ------------------------------------------------------------------------
 * Time
 * --------------------------------------------------------------------- */

static void h_tick_all(struct cluster *c)
{
    size_t i;
    for (i = 1; i <= c->n; i++) {
        if (c->nodes[i].raft != NULL) {
            struct raft_event e;
            memset(&e, 0, sizeof(e));
            e.type = RAFT_EVENT_TICK;
            (void)h_step(c, &c->nodes[i], &e);
        }
    }
}

void cluster_tick(struct cluster *c, raft_time ms)
{
    raft_time done = 0;
    while (done < ms) {
        raft_time step = c->step_ms < ms - done ? c->step_ms : ms - done;
        c->now += step;
        done += step;
        h_tick_all(c);
    }
}

void cluster_advance(struct cluster *c, raft_time ms)
{
    c->now += ms;
}

void cluster_run(struct cluster *c, raft_time ms)
{
    raft_time done = 0;
    cluster_deliver_all(c);
    while (done < ms) {
        raft_time step = c->step_ms < ms - done ? c->step_ms : ms - done;
        c->now += step;
        done += step;
        h_tick_all(c);
        cluster_deliver_all(c);
    }
}

bool cluster_run_until(struct cluster *c, raft_time ms,
                       bool (*pred)(struct cluster *c, void *arg), void *arg)
{
    raft_time done = 0;
    cluster_deliver_all(c);
    if (pred(c, arg)) {
        return true;
    }
    while (done < ms) {
        raft_time step = c->step_ms < ms - done ? c->step_ms : ms - done;
        c->now += step;
        done += step;
        h_tick_all(c);
        cluster_deliver_all(c);
        if (pred(c, arg)) {
            return true;
        }
    }
    return false;
}

raft_id cluster_leader(const struct cluster *c)
{
    size_t i;
    raft_id best = 0;
    raft_term best_term = 0;
    for (i = 1; i <= c->n; i++) {
        const struct h_node *n = &c->nodes[i];
        if (n->raft != NULL && raft_node_role(n->raft) == RAFT_LEADER) {
            raft_term t = raft_node_term(n->raft);
            if (best == 0 || t > best_term) {
                best = i;
                best_term = t;
            }
        }
    }
    return best;
}

static bool h_leads_with_commit(struct cluster *c, void *arg)
{
    raft_id id = *(raft_id *)arg;
    struct raft_node *r = c->nodes[id].raft;
    raft_index commit;
    if (r == NULL || raft_node_role(r) != RAFT_LEADER) {
        return false;
    }
    commit = raft_node_commit_index(r);
    return commit > 0 && raft_node_term_at(r, commit) == raft_node_term(r);
}

bool cluster_elect(struct cluster *c, raft_id id)
{
    raft_id leader = cluster_leader(c);
    struct h_node *n = cluster_node(c, id);
    raft_time timeout = n->options.election_timeout * 10;
    if (leader != id) {
        if (leader != 0) {
            (void)cluster_transfer(c, leader, id);
        } else {
            (void)cluster_campaign(c, id);
        }
    }
    return cluster_run_until(c, timeout, h_leads_with_commit, &id);
}

static bool h_is_member(const struct raft_config *cfg, raft_id id)
{
    uint32_t i;
    if (raft_config_member(cfg, id) != NULL) {
        return true;
    }
    for (i = 0; i < cfg->old_count; i++) {
        if (cfg->old_voters[i] == id) {
            return true;
        }
    }
    return false;
}

static bool h_converged(struct cluster *c)
{
    raft_id leader = cluster_leader(c);
    struct raft_node *l;
    raft_index commit;
    const struct raft_config *cfg;
    size_t i;
    if (leader == 0 || c->queue_len > 0) {
        return false;
    }
    l = c->nodes[leader].raft;
    commit = raft_node_commit_index(l);
    if (raft_node_term_at(l, commit) != raft_node_term(l) &&
        raft_node_last_index(l) > commit) {
        return false;
    }
    if (commit != raft_node_last_index(l)) {
        return false;
    }
    cfg = raft_node_config(l);
    for (i = 1; i <= c->n; i++) {
        struct h_node *n = &c->nodes[i];
        if (n->raft == NULL || c->cut[leader][i] || c->cut[i][leader] ||
            !h_is_member(cfg, i)) {
            continue;
        }
        if (raft_node_commit_index(n->raft) != commit || n->applied != commit) {
            return false;
        }
    }
    return true;
}

bool cluster_stabilize(struct cluster *c)
{
    int i;
    raft_time hb = c->nodes[1].options.heartbeat_interval;
    cluster_deliver_all(c);
    for (i = 0; i < 100; i++) {
        if (h_converged(c)) {
            return true;
        }
        cluster_run(c, hb);
    }
    if (!h_converged(c)) {
        cluster_dump(c, "cluster_stabilize did not converge");
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------------
 * Tracing and inspection
 * --------------------------------------------------------------------- */

void cluster_trace(struct cluster *c, bool on)
{
    c->trace_on = on;
}

size_t cluster_trace_count(const struct cluster *c, uint8_t type, raft_id from,
                           raft_id to)
{
    size_t i;
    size_t count = 0;
    for (i = 0; i < c->trace_len; i++) {
        if (h_match(&c->trace[i].m, type, from, to)) {
            count++;
        }
    }
    return count;
}

static const struct h_applied *h_find_payload(const struct h_node *n,
                                              const char *payload)
{
    size_t len = strlen(payload);
    size_t i;
    for (i = 0; i < n->applied_len; i++) {
        const struct h_applied *a = &n->applied_log[i];
        if (a->type == RAFT_ENTRY_NORMAL && a->len == len &&
            memcmp(a->data, payload, len) == 0) {
            return a;
        }
    }
    return NULL;
}

bool cluster_applied_payload(const struct cluster *c, raft_id id,
                             const char *payload)
{
    return h_find_payload(h_cnode(c, id), payload) != NULL;
}

raft_index cluster_applied_index_of(const struct cluster *c, raft_id id,
                                    const char *payload)
{
    const struct h_applied *a = h_find_payload(h_cnode(c, id), payload);
    return a != NULL ? a->index : 0;
}

size_t cluster_applied_configs(const struct cluster *c, raft_id id,
                               struct raft_config *out, size_t max)
{
    const struct h_node *n = h_cnode(c, id);
    size_t i;
    size_t count = 0;
    for (i = 0; i < n->applied_len && count < max; i++) {
        const struct h_applied *a = &n->applied_log[i];
        if (a->type == RAFT_ENTRY_CONFIG) {
            assert_int_equal(raft_config_decode(a->data, a->len, &out[count]),
                             0);
            count++;
        }
    }
    return count;
}

void cluster_check(const struct cluster *c)
{
    size_t i;
    size_t j;
    raft_index max_index = 0;
    const struct h_applied **seen;

    if (c->violation[0] != '\0') {
        fail_msg("cluster: %s", c->violation);
    }
    for (i = 1; i <= c->n; i++) {
        const struct h_node *n = &c->nodes[i];
        if (n->violation[0] != '\0') {
            fail_msg("node %zu violated the contract: %s", i, n->violation);
        }
        for (j = 0; j < n->applied_len; j++) {
            if (n->applied_log[j].index > max_index) {
                max_index = n->applied_log[j].index;
            }
        }
    }
    /* State Machine Safety: one entry per index across all nodes. */
    seen = calloc(max_index + 1, sizeof(*seen));
    assert_non_null(seen);
    for (i = 1; i <= c->n; i++) {
        const struct h_node *n = &c->nodes[i];
        for (j = 0; j < n->applied_len; j++) {
            const struct h_applied *a = &n->applied_log[j];
            const struct h_applied *b = seen[a->index];
            if (b == NULL) {
                seen[a->index] = a;
                continue;
            }
            if (a->term != b->term || a->type != b->type || a->len != b->len ||
                (a->len > 0 && memcmp(a->data, b->data, a->len) != 0)) {
                free(seen);
                fail_msg("node %zu applied a different entry at index %llu "
                         "(term %llu vs %llu)",
                         i, (unsigned long long)a->index,
                         (unsigned long long)a->term,
                         (unsigned long long)b->term);
            }
        }
    }
    free(seen);
}

void cluster_dump(const struct cluster *c, const char *label)
{
    size_t i;
    fprintf(stderr, "--- %s (now %llu, queue %zu)\n", label,
            (unsigned long long)c->now, c->queue_len);
    for (i = 1; i <= c->n; i++) {
        const struct h_node *n = &c->nodes[i];
        if (n->raft == NULL) {
            fprintf(stderr, "  node %zu: down (disk last %llu)\n", i,
                    (unsigned long long)h_disk_last(n));
            continue;
        }
        fprintf(stderr,
                "  node %zu: role %d term %llu leader %llu commit %llu "
                "applied %llu/%llu first %llu last %llu persisted %llu "
                "changing %d%s%s\n",
                i, (int)raft_node_role(n->raft),
                (unsigned long long)raft_node_term(n->raft),
                (unsigned long long)raft_node_leader(n->raft),
                (unsigned long long)raft_node_commit_index(n->raft),
                (unsigned long long)raft_node_applied_index(n->raft),
                (unsigned long long)n->applied,
                (unsigned long long)raft_node_first_index(n->raft),
                (unsigned long long)raft_node_last_index(n->raft),
                (unsigned long long)raft_node_persisted_index(n->raft),
                (int)raft_node_changing(n->raft),
                n->violation[0] != '\0' ? " VIOLATION: " : "", n->violation);
    }
}
