/* node.c: the node's lifecycle, its one entry point, and the update.
 *
 * raft_node_step() takes one event, dispatches it to the file that owns the
 * concern (election.c, replication.c, snapshot.c, membership.c), and then,
 * when asked, gathers everything the handlers left behind into one struct
 * raft_update: the hard state if it changed, the entries not yet handed out
 * for persistence, an installed snapshot, the queued messages (with entry
 * and chunk pointers resolved only now, because the log may have moved), and
 * the entries that are both committed and locally durable. What the update
 * points to stays untouched until the next call on the node. */
#include <string.h>

#include "raft/impl.h"

void raft_options_default(struct raft_options *options, raft_id id)
{
    memset(options, 0, sizeof(*options));
    options->id = id;
    options->seed = id;
    options->election_timeout = 1000;
    options->heartbeat_interval = 100;
    options->pre_vote = true;
    options->check_quorum = true;
    options->priority_election = true;
    options->inflight_max = 64;
    options->batch_entries_max = 256;
    options->batch_bytes_max = 1u << 20;
    options->entry_bytes_max = 1u << 20;
    options->uncommitted_bytes_max = 64u << 20;
    options->snapshot_chunk_bytes = 1u << 20;
    options->snapshot_bytes_max = (uint64_t)1 << 30;
    options->trailing_entries = 1024;
    options->messages_max = 1024;
    options->catch_up_lag_max = 64;
}

static int node_options_check(const struct raft_options *o)
{
    if (o->id == 0 || o->heartbeat_interval == 0 ||
        o->election_timeout < 2 * o->heartbeat_interval ||
        o->inflight_max == 0 || o->batch_entries_max == 0 ||
        o->batch_bytes_max == 0 || o->entry_bytes_max == 0 ||
        o->snapshot_chunk_bytes == 0 || o->messages_max == 0 ||
        o->uncommitted_bytes_max == 0) {
        return RAFT_E_INVALID;
    }
    if (o->inflight_max > (1u << 16) || o->messages_max > (1u << 24)) {
        return RAFT_E_INVALID;
    }
    return 0;
}

int raft_node_new(const struct raft_options *options, struct raft_node **out)
{
    struct raft_node *node;
    size_t pool;

    if (options == NULL || out == NULL || node_options_check(options) != 0) {
        return RAFT_E_INVALID;
    }
    node = raft__malloc(&options->heap, sizeof(*node));
    if (node == NULL) {
        return RAFT_E_NOMEM;
    }
    memset(node, 0, sizeof(*node));
    node->opt = *options;
    node->id = options->id;
    node->prng = options->seed ^ (options->id * UINT64_C(0x9E3779B97F4A7C15));
    raft__log_init(&node->log);
    raft_config_init(&node->log_config);
    raft_config_init(&node->config);
    node->role = RAFT_FOLLOWER;
    node->reported_role = RAFT_FOLLOWER;
    node->unstable_from = 1;

    node->outbox = raft__malloc(&options->heap,
                                options->messages_max * sizeof(*node->outbox));
    node->sendbox = raft__malloc(
        &options->heap, options->messages_max * sizeof(*node->sendbox));
    pool = (size_t)options->inflight_max * 2 * RAFT_MEMBERS_MAX;
    node->inflight_pool =
        raft__malloc(&options->heap, pool * sizeof(*node->inflight_pool));
    if (node->outbox == NULL || node->sendbox == NULL ||
        node->inflight_pool == NULL) {
        raft_node_free(node);
        return RAFT_E_NOMEM;
    }
    for (uint32_t i = 0; i < 2 * RAFT_MEMBERS_MAX; i++) {
        node->progress[i].inflight =
            node->inflight_pool + (size_t)i * options->inflight_max;
    }
    *out = node;
    return 0;
}

void raft_node_free(struct raft_node *node)
{
    struct raft_heap heap;

    if (node == NULL) {
        return;
    }
    heap = node->opt.heap;
    raft__log_close(&node->log, &heap);
    raft__free(&heap, node->snapshot_data);
    raft__free(&heap, node->recv_data);
    raft__free(&heap, node->outbox);
    raft__free(&heap, node->sendbox);
    raft__free(&heap, node->inflight_pool);
    raft__free(&heap, node);
}

/* ------------------------------------------------------------------------
 * Restoring and bootstrapping
 * --------------------------------------------------------------------- */

static bool node_is_empty(const struct raft_node *node)
{
    return !node->loaded && node->term == 0 && !node->has_snapshot &&
           raft__log_last(&node->log) == 0;
}

int raft_node_load(struct raft_node *node,
                   const struct raft_hard_state *hard_state,
                   const struct raft_snapshot_meta *snapshot,
                   struct raft_buf snapshot_data,
                   const struct raft_entry *entries, size_t entry_count,
                   raft_index commit)
{
    const struct raft_heap *heap = &node->opt.heap;
    raft_index next;
    raft_term last_term;
    int rv;

    if (!node_is_empty(node) || hard_state == NULL ||
        (entry_count > 0 && entries == NULL)) {
        return RAFT_E_INVALID;
    }
    if (hard_state->forced &&
        raft_config_validate(&hard_state->forced_config) != 0) {
        return RAFT_E_CORRUPT;
    }
    if (snapshot != NULL) {
        if (snapshot->index == 0 || snapshot->term == 0 ||
            snapshot->term > hard_state->term ||
            raft_config_validate(&snapshot->config) != 0 ||
            snapshot->config_index > snapshot->index) {
            return RAFT_E_CORRUPT;
        }
    }
    next = snapshot != NULL ? snapshot->index + 1 : 1;
    last_term = snapshot != NULL ? snapshot->term : 0;
    for (size_t i = 0; i < entry_count; i++) {
        const struct raft_entry *e = &entries[i];
        struct raft_config scratch;
        if (e->index != next + i || e->term < last_term ||
            e->term > hard_state->term || e->term == 0 ||
            e->type < RAFT_ENTRY_NORMAL || e->type > RAFT_ENTRY_NOOP ||
            (e->buf.len > 0 && e->buf.base == NULL)) {
            return RAFT_E_CORRUPT;
        }
        if (e->type == RAFT_ENTRY_CONFIG &&
            raft_config_decode(e->buf.base, e->buf.len, &scratch) != 0) {
            return RAFT_E_CORRUPT;
        }
        last_term = e->term;
    }

    if (snapshot != NULL) {
        if (snapshot_data.len > 0) {
            node->snapshot_data = raft__malloc(heap, snapshot_data.len);
            if (node->snapshot_data == NULL) {
                return RAFT_E_NOMEM;
            }
            memcpy(node->snapshot_data, snapshot_data.base,
                   snapshot_data.len);
        }
        node->snapshot_len = snapshot_data.len;
        node->snapshot = *snapshot;
        node->has_snapshot = true;
        raft__log_reset(&node->log, heap, snapshot->index, snapshot->term);
    }
    rv = raft__log_reserve(&node->log, heap, entry_count);
    if (rv != 0) {
        goto err_after_snapshot;
    }
    for (size_t i = 0; i < entry_count; i++) {
        rv = raft__log_append(&node->log, heap, entries[i].term,
                              entries[i].type, entries[i].buf);
        if (rv != 0) {
            goto err_after_entries;
        }
    }
    node->term = hard_state->term;
    node->vote = hard_state->vote;
    node->forced = hard_state->forced;
    node->forced_term = hard_state->forced_term;
    node->forced_config = hard_state->forced_config;
    node->persisted = raft__log_last(&node->log);
    node->unstable_from = node->persisted + 1;
    node->applied = snapshot != NULL ? snapshot->index : 0;
    node->commit = node->applied;
    if (commit > node->commit) {
        node->commit = commit < node->persisted ? commit : node->persisted;
    }
    raft__membership_recompute(node);
    node->config_changed = true;
    node->loaded = true;
    return 0;

err_after_entries:
    raft__log_reset(&node->log, heap, 0, 0);
err_after_snapshot:
    raft__free(heap, node->snapshot_data);
    node->snapshot_data = NULL;
    node->snapshot_len = 0;
    node->has_snapshot = false;
    memset(&node->snapshot, 0, sizeof(node->snapshot));
    raft__log_reset(&node->log, heap, 0, 0);
    return rv;
}

int raft_node_bootstrap(struct raft_node *node,
                        const struct raft_config *config)
{
    uint8_t buf[RAFT_CONFIG_ENCODED_MAX];
    struct raft_buf b;
    int n;
    int rv;

    if (config == NULL || !node_is_empty(node) || config->old_count != 0 ||
        raft_config_validate(config) != 0) {
        return RAFT_E_INVALID;
    }
    n = raft_config_encode(config, buf, sizeof(buf));
    RAFT_ASSERT(n > 0);
    rv = raft__log_reserve(&node->log, &node->opt.heap, 1);
    if (rv != 0) {
        return rv;
    }
    b.base = buf;
    b.len = (size_t)n;
    rv = raft__log_append(&node->log, &node->opt.heap, 1, RAFT_ENTRY_CONFIG,
                          b);
    if (rv != 0) {
        return rv;
    }
    node->term = 1;
    node->hard_state_dirty = true;
    rv = raft__membership_appended(node, raft__log_get(&node->log, 1));
    RAFT_ASSERT(rv == 0);
    node->loaded = true;
    return 0;
}

/* ------------------------------------------------------------------------
 * Helpers shared by the handlers
 * --------------------------------------------------------------------- */

struct raft_outgoing *raft__send(struct raft_node *node, uint8_t type,
                                 raft_id to)
{
    struct raft_outgoing *o;

    RAFT_ASSERT(to != node->id);
    RAFT_ASSERT(type >= 1 && type <= RAFT_MSG_TYPE_MAX);
    if (node->outbox_count >= node->opt.messages_max) {
        return NULL;
    }
    o = &node->outbox[node->outbox_count++];
    memset(o, 0, sizeof(*o));
    o->msg.type = type;
    o->msg.from = node->id;
    o->msg.to = to;
    o->msg.term = node->term;
    return o;
}

raft_time raft__random_timeout(struct raft_node *node)
{
    raft_time t = node->opt.election_timeout;
    return t + raft__prng_range(&node->prng, 0, t);
}

/* ------------------------------------------------------------------------
 * Receiving messages
 * --------------------------------------------------------------------- */

#define NODE_VALUE_MAX ((uint64_t)1 << 62)

static int node_message_check(const struct raft_node *node,
                              const struct raft_message *m)
{
    if (m == NULL || m->type < 1 || m->type > RAFT_MSG_TYPE_MAX ||
        m->from == 0 || m->from == node->id || m->to != node->id) {
        return RAFT_E_INVALID;
    }
    /* Terms and indexes this large cannot be reached; rejecting them keeps
     * every increment below from overflowing. */
    if (m->term >= NODE_VALUE_MAX || m->index >= NODE_VALUE_MAX ||
        m->log_term >= NODE_VALUE_MAX || m->commit >= NODE_VALUE_MAX ||
        m->hint_index >= NODE_VALUE_MAX || m->hint_term >= NODE_VALUE_MAX ||
        m->entry_count >= NODE_VALUE_MAX || m->total >= NODE_VALUE_MAX ||
        m->offset >= NODE_VALUE_MAX) {
        return RAFT_E_INVALID;
    }
    if (m->type == RAFT_MSG_APPEND) {
        raft_term prev_term = m->log_term;
        if (m->entry_count > 0 && m->entries == NULL) {
            return RAFT_E_INVALID;
        }
        if (m->log_term > m->term || (m->index == 0 && m->log_term != 0)) {
            return RAFT_E_INVALID;
        }
        for (size_t i = 0; i < m->entry_count; i++) {
            const struct raft_entry *e = &m->entries[i];
            struct raft_config scratch;
            if (e->index != m->index + 1 + i || e->term == 0 ||
                e->term < prev_term ||
                e->term > m->term || e->type < RAFT_ENTRY_NORMAL ||
                e->type > RAFT_ENTRY_NOOP ||
                (e->buf.len > 0 && e->buf.base == NULL)) {
                return RAFT_E_INVALID;
            }
            if (e->type == RAFT_ENTRY_CONFIG &&
                raft_config_decode(e->buf.base, e->buf.len, &scratch) != 0) {
                return RAFT_E_INVALID;
            }
            prev_term = e->term;
        }
    }
    if (m->type == RAFT_MSG_SNAPSHOT) {
        if (m->snapshot.index == 0 || m->snapshot.term == 0 ||
            m->snapshot.index >= NODE_VALUE_MAX ||
            m->snapshot.term > m->term ||
            raft_config_validate(&m->snapshot.config) != 0 ||
            m->snapshot.config_index > m->snapshot.index ||
            m->offset > m->total || m->data.len > m->total - m->offset ||
            (m->data.len > 0 && m->data.base == NULL) ||
            (m->done && m->offset + m->data.len != m->total)) {
            return RAFT_E_INVALID;
        }
    }
    return 0;
}

static int node_receive(struct raft_node *node, const struct raft_message *m)
{
    int rv = node_message_check(node, m);
    if (rv != 0) {
        return rv;
    }

    if (m->term > node->term) {
        switch (m->type) {
        case RAFT_MSG_PRE_VOTE:
            /* Never changes our term (thesis 9.6). */
            break;
        case RAFT_MSG_VOTE:
            if (!m->transfer && raft__in_lease(node)) {
                /* A leader is alive: ignore the disruptive candidate
                 * (thesis 4.2.3). */
                return 0;
            }
            raft__become_follower(node, m->term, 0);
            break;
        case RAFT_MSG_PRE_VOTE_RESP:
            if (!m->reject) {
                /* A granted pre-vote echoes the future term. */
                break;
            }
            raft__become_follower(node, m->term, 0);
            break;
        case RAFT_MSG_APPEND:
        case RAFT_MSG_SNAPSHOT:
        case RAFT_MSG_TIMEOUT_NOW:
            raft__become_follower(node, m->term, m->from);
            break;
        default:
            raft__become_follower(node, m->term, 0);
            break;
        }
    } else if (m->term < node->term) {
        struct raft_outgoing *o;
        switch (m->type) {
        case RAFT_MSG_APPEND:
        case RAFT_MSG_SNAPSHOT:
            /* Tell the stale leader about the newer term so it steps
             * down (needed when pre-vote keeps terms from spreading). */
            o = raft__send(node, RAFT_MSG_APPEND_RESP, m->from);
            if (o != NULL) {
                o->msg.reject = true;
                o->msg.index = m->index;
            }
            break;
        case RAFT_MSG_PRE_VOTE:
            o = raft__send(node, RAFT_MSG_PRE_VOTE_RESP, m->from);
            if (o != NULL) {
                o->msg.reject = true;
            }
            break;
        default:
            break;
        }
        return 0;
    }

    switch (m->type) {
    case RAFT_MSG_APPEND:
        raft__recv_append(node, m);
        break;
    case RAFT_MSG_APPEND_RESP:
        raft__recv_append_resp(node, m);
        break;
    case RAFT_MSG_VOTE:
    case RAFT_MSG_PRE_VOTE:
        raft__recv_vote(node, m);
        break;
    case RAFT_MSG_VOTE_RESP:
    case RAFT_MSG_PRE_VOTE_RESP:
        raft__recv_vote_resp(node, m);
        break;
    case RAFT_MSG_SNAPSHOT:
        raft__recv_snapshot(node, m);
        break;
    case RAFT_MSG_SNAPSHOT_RESP:
        raft__recv_snapshot_resp(node, m);
        break;
    case RAFT_MSG_TIMEOUT_NOW:
        raft__recv_timeout_now(node, m);
        break;
    default:
        return RAFT_E_INVALID;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * The entry point
 * --------------------------------------------------------------------- */

static int node_dispatch(struct raft_node *node, const struct raft_event *ev)
{
    switch (ev->type) {
    case RAFT_EVENT_TICK:
        if (node->role == RAFT_LEADER) {
            raft__replication_tick(node);
        } else {
            raft__election_tick(node);
        }
        return 0;
    case RAFT_EVENT_RECEIVE:
        return node_receive(node, ev->receive.message);
    case RAFT_EVENT_PERSISTED:
        raft__replication_persisted(node, ev->persisted.index,
                                    ev->persisted.term);
        return 0;
    case RAFT_EVENT_PROPOSE:
        if (ev->propose.count == 0 || ev->propose.bufs == NULL) {
            return RAFT_E_INVALID;
        }
        return raft__replication_propose(node, ev->propose.bufs,
                                         ev->propose.count,
                                         ev->propose.first_index);
    case RAFT_EVENT_CHANGE:
        if (ev->change.config == NULL) {
            return RAFT_E_INVALID;
        }
        return raft__membership_change(node, ev->change.config);
    case RAFT_EVENT_FORCE:
        if (ev->force.config == NULL) {
            return RAFT_E_INVALID;
        }
        return raft__membership_force(node, ev->force.config);
    case RAFT_EVENT_SNAPSHOT:
        if (ev->snapshot.data.len > 0 && ev->snapshot.data.base == NULL) {
            return RAFT_E_INVALID;
        }
        return raft__snapshot_take(node, ev->snapshot.index,
                                   ev->snapshot.data);
    case RAFT_EVENT_TRANSFER:
        return raft__transfer_start(node, ev->transfer.to);
    case RAFT_EVENT_CAMPAIGN:
        if (node->role != RAFT_LEADER && raft__election_can_campaign(node)) {
            raft__election_start(node, node->opt.pre_vote, false);
        }
        return 0;
    default:
        return RAFT_E_INVALID;
    }
}

static void node_fill_update(struct raft_node *node, struct raft_update *u)
{
    raft_index last;
    raft_index upto;
    uint32_t n = 0;

    memset(u, 0, sizeof(*u));
    if (node->role == RAFT_LEADER && node->broadcast_pending) {
        raft__replication_broadcast(node);
    }

    /* Messages: resolve entry and chunk pointers now. */
    for (uint32_t i = 0; i < node->outbox_count; i++) {
        struct raft_outgoing *o = &node->outbox[i];
        struct raft_message *m = &node->sendbox[n];
        *m = o->msg;
        if (m->type == RAFT_MSG_APPEND && m->entry_count > 0) {
            const struct raft_entry *first;
            if (node->role != RAFT_LEADER || m->term != node->term) {
                continue;
            }
            first = raft__log_get(&node->log, o->entries_first);
            if (first == NULL ||
                raft__log_get(&node->log,
                              o->entries_first + m->entry_count - 1) ==
                    NULL) {
                continue;
            }
            m->entries = first;
        }
        if (m->type == RAFT_MSG_SNAPSHOT) {
            if (!node->has_snapshot ||
                m->snapshot.index != node->snapshot.index ||
                m->offset + m->data.len > node->snapshot_len) {
                continue;
            }
            m->data.base = m->data.len > 0
                               ? (const uint8_t *)node->snapshot_data +
                                     m->offset
                               : NULL;
        }
        n++;
    }
    if (n > 0) {
        u->flags |= RAFT_UPDATE_MESSAGES;
        u->messages = node->sendbox;
        u->message_count = n;
    }

    /* Entries to persist. */
    last = raft__log_last(&node->log);
    RAFT_ASSERT(node->unstable_from > node->log.offset);
    if (node->unstable_from <= last) {
        u->flags |= RAFT_UPDATE_ENTRIES;
        u->entries = raft__log_get(&node->log, node->unstable_from);
        u->entry_count = (size_t)(last - node->unstable_from + 1);
        node->unstable_from = last + 1;
    }

    if (node->snapshot_installed) {
        u->flags |= RAFT_UPDATE_SNAPSHOT;
        u->snapshot = &node->snapshot;
        u->snapshot_data.base = node->snapshot_data;
        u->snapshot_data.len = node->snapshot_len;
    }

    /* Entries to apply: committed and durable here. */
    upto = node->commit < node->persisted ? node->commit : node->persisted;
    if (upto > node->applied) {
        RAFT_ASSERT(node->applied >= node->log.offset);
        u->flags |= RAFT_UPDATE_COMMITTED;
        u->committed = raft__log_get(&node->log, node->applied + 1);
        u->committed_count = (size_t)(upto - node->applied);
        RAFT_ASSERT(u->committed != NULL);
        node->applied = upto;
    }

    if (node->hard_state_dirty) {
        u->flags |= RAFT_UPDATE_HARD_STATE;
        u->hard_state.term = node->term;
        u->hard_state.vote = node->vote;
        u->hard_state.forced = node->forced;
        u->hard_state.forced_term = node->forced_term;
        u->hard_state.forced_config = node->forced_config;
        node->hard_state_dirty = false;
    }

    if (node->role != node->reported_role ||
        node->term != node->reported_term ||
        node->leader != node->reported_leader) {
        u->flags |= RAFT_UPDATE_ROLE;
        node->reported_role = node->role;
        node->reported_term = node->term;
        node->reported_leader = node->leader;
    }
    if (node->config_changed) {
        u->flags |= RAFT_UPDATE_CONFIG;
        node->config_changed = false;
    }
    u->role = node->role;
    u->term = node->term;
    u->leader = node->leader;
    u->commit_index = node->commit;
    u->applied_index = node->applied;
    node->update_taken = true;
}

int raft_node_step(struct raft_node *node, const struct raft_event *event,
                   struct raft_update *update)
{
    int rv = 0;

    RAFT_ASSERT(node != NULL);
    if (node->update_taken) {
        node->outbox_count = 0;
        node->snapshot_installed = false;
        node->update_taken = false;
    }
    if (event != NULL) {
        if (event->now > node->now) {
            node->now = event->now;
        }
        if (!node->timer_armed) {
            node->timer_armed = true;
            node->target_priority = raft__config_max_priority(&node->config);
            raft__election_reset_timer(node);
        }
        rv = node_dispatch(node, event);
    }
    if (update != NULL) {
        node_fill_update(node, update);
    }
    return rv;
}

raft_time raft_node_deadline(const struct raft_node *node)
{
    raft_time t;

    if (!node->timer_armed) {
        return node->now;
    }
    if (node->role != RAFT_LEADER) {
        return node->election_deadline;
    }
    t = node->heartbeat_deadline;
    if (node->opt.check_quorum && node->quorum_deadline < t) {
        t = node->quorum_deadline;
    }
    if (node->transfer_to != 0 && node->transfer_deadline < t) {
        t = node->transfer_deadline;
    }
    return t;
}

/* ------------------------------------------------------------------------
 * Introspection
 * --------------------------------------------------------------------- */

raft_id raft_node_id(const struct raft_node *node)
{
    return node->id;
}

enum raft_role raft_node_role(const struct raft_node *node)
{
    return node->role;
}

raft_term raft_node_term(const struct raft_node *node)
{
    return node->term;
}

raft_id raft_node_leader(const struct raft_node *node)
{
    return node->leader;
}

raft_id raft_node_vote(const struct raft_node *node)
{
    return node->vote;
}

raft_index raft_node_commit_index(const struct raft_node *node)
{
    return node->commit;
}

raft_index raft_node_applied_index(const struct raft_node *node)
{
    return node->applied;
}

raft_index raft_node_persisted_index(const struct raft_node *node)
{
    return node->persisted;
}

raft_index raft_node_first_index(const struct raft_node *node)
{
    return node->log.offset + 1;
}

raft_index raft_node_last_index(const struct raft_node *node)
{
    return raft__log_last(&node->log);
}

raft_term raft_node_term_at(const struct raft_node *node, raft_index index)
{
    if (node->has_snapshot && index == node->snapshot.index) {
        return node->snapshot.term;
    }
    return raft__log_term(&node->log, index);
}

const struct raft_entry *raft_node_entry_at(const struct raft_node *node,
                                            raft_index index)
{
    return raft__log_get(&node->log, index);
}

const struct raft_config *raft_node_config(const struct raft_node *node)
{
    return &node->config;
}

const struct raft_snapshot_meta *
raft_node_snapshot(const struct raft_node *node)
{
    return node->has_snapshot ? &node->snapshot : NULL;
}

bool raft_node_changing(const struct raft_node *node)
{
    return node->change_pending || node->log_config.old_count > 0 ||
           node->log_config_index > node->commit;
}

raft_index raft_node_match_index(const struct raft_node *node, raft_id id)
{
    if (node->role != RAFT_LEADER) {
        return 0;
    }
    if (id == node->id) {
        return node->persisted;
    }
    for (uint32_t i = 0; i < node->progress_count; i++) {
        if (node->progress[i].id == id) {
            return node->progress[i].match;
        }
    }
    return 0;
}
