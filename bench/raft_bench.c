/* raft_bench.c: commit throughput of an in-memory 3-node raft group.
 *
 * The benchmark drives three struct raft_node through the public API of
 * raft/raft.h only, with "storage" and "network" that cost nothing but
 * memory copies, so it measures the raft state machine itself:
 *
 *     leader <- RAFT_EVENT_PROPOSE (128-byte entries, 1 or --batch per event)
 *     node   -> update: entries are "persisted" at once into an in-memory
 *               term array, then RAFT_EVENT_PERSISTED is fed back;
 *               messages are deep-copied (entries and payloads included)
 *               into an outbox arena, because update contents die at the
 *               next call on the node; committed entries are checked
 *               (sequence number and length) and counted.
 *     outbox -> inbox -> RAFT_EVENT_RECEIVE on the addressee.
 *
 * Two modes are timed:
 *   unbatched  one entry per PROPOSE; every event is stepped with its own
 *              update, and all messages are drained to quiescence before
 *              the next proposal (one entry per round trip).
 *   batched    --batch entries per PROPOSE, one PROPOSE per turn; within a
 *              turn events are stepped with update == NULL and each node
 *              yields one update per turn (group commit), so proposals,
 *              appends and acknowledgements pipeline across turns.
 *
 * The clock the nodes see is simulated and frozen (no election or
 * heartbeat deadline can pass while timing); only the wall-clock
 * measurement uses CLOCK_MONOTONIC. Results are printed as a table and as
 * one JSON line. Exit status is non-zero if raft returned an unexpected
 * error, lost leadership, stalled or handed out a wrong entry.
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "raft/raft.h"

#define BENCH_NODES 3
#define BENCH_ENTRY_BYTES 128
#define BENCH_ENTRIES_DEFAULT 200000
#define BENCH_BATCH_DEFAULT 64
#define BENCH_SECONDS_MAX_DEFAULT 60.0
#define BENCH_CHUNK_BYTES (1u << 20)
#define BENCH_STALL_TURNS_MAX 10000 /* batched turns without a new commit */
#define BENCH_STALL_DRAINS_MAX 8    /* unbatched retries of one proposal */
#define BENCH_SETTLE_TICKS_MAX 5    /* heartbeats granted to followers */

/* ------------------------------------------------------------------------
 * Arena: bump allocation for copied messages, reset once delivered
 * --------------------------------------------------------------------- */

struct bench_chunk {
    unsigned char *base;
    size_t size;
    size_t used;
};

struct bench_arena {
    struct bench_chunk *chunks;
    size_t count;
    size_t current; /* chunk being filled */
};

/* Exits the process: an allocation failure in the harness is fatal. */
static void bench_oom(void)
{
    fprintf(stderr, "raft-bench: out of memory\n");
    exit(2);
}

static void *bench_xrealloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size == 0 ? 1 : size);
    if (p == NULL) {
        bench_oom();
    }
    return p;
}

/* Returns size bytes aligned to 16 that stay valid until arena_reset(). */
static void *arena_alloc(struct bench_arena *arena, size_t size)
{
    size = (size + 15u) & ~(size_t)15u;
    while (arena->current < arena->count) {
        struct bench_chunk *chunk = &arena->chunks[arena->current];
        if (chunk->size - chunk->used >= size) {
            void *p = chunk->base + chunk->used;
            chunk->used += size;
            return p;
        }
        arena->current++;
    }
    arena->chunks = bench_xrealloc(arena->chunks,
                                   (arena->count + 1) * sizeof(*arena->chunks));
    struct bench_chunk *chunk = &arena->chunks[arena->count];
    chunk->size = size > BENCH_CHUNK_BYTES ? size : BENCH_CHUNK_BYTES;
    chunk->base = bench_xrealloc(NULL, chunk->size);
    chunk->used = size;
    arena->current = arena->count;
    arena->count++;
    return chunk->base;
}

static void arena_reset(struct bench_arena *arena)
{
    for (size_t i = 0; i < arena->count; i++) {
        arena->chunks[i].used = 0;
    }
    arena->current = 0;
}

static void arena_free(struct bench_arena *arena)
{
    for (size_t i = 0; i < arena->count; i++) {
        free(arena->chunks[i].base);
    }
    free(arena->chunks);
    memset(arena, 0, sizeof(*arena));
}

/* ------------------------------------------------------------------------
 * Mailbox: messages copied out of updates, waiting for delivery
 * --------------------------------------------------------------------- */

struct bench_mailbox {
    struct raft_message *messages; /* pointers inside point into arena */
    size_t count;
    size_t cap;
    struct bench_arena arena;
};

static const void *mailbox_copy_bytes(struct bench_mailbox *box,
                                      struct raft_buf buf)
{
    if (buf.len == 0) {
        return NULL;
    }
    void *p = arena_alloc(&box->arena, buf.len);
    memcpy(p, buf.base, buf.len);
    return p;
}

/* Deep-copies message (its entries, their payloads and snapshot data). */
static void mailbox_push(struct bench_mailbox *box,
                         const struct raft_message *message)
{
    if (box->count == box->cap) {
        box->cap = box->cap == 0 ? 64 : box->cap * 2;
        box->messages =
            bench_xrealloc(box->messages, box->cap * sizeof(*box->messages));
    }
    struct raft_message *copy = &box->messages[box->count++];
    *copy = *message;
    if (message->entry_count > 0) {
        struct raft_entry *entries =
            arena_alloc(&box->arena, message->entry_count * sizeof(*entries));
        for (size_t i = 0; i < message->entry_count; i++) {
            entries[i] = message->entries[i];
            entries[i].buf.base =
                mailbox_copy_bytes(box, message->entries[i].buf);
        }
        copy->entries = entries;
    } else {
        copy->entries = NULL;
    }
    copy->data.base = mailbox_copy_bytes(box, message->data);
}

static void mailbox_clear(struct bench_mailbox *box)
{
    box->count = 0;
    arena_reset(&box->arena);
}

static void mailbox_free(struct bench_mailbox *box)
{
    free(box->messages);
    arena_free(&box->arena);
    memset(box, 0, sizeof(*box));
}

/* ------------------------------------------------------------------------
 * Nodes and their in-memory "disk"
 * --------------------------------------------------------------------- */

struct bench_node {
    raft_id id;
    struct raft_node *raft;
    struct raft_hard_state hard_state; /* last hard state "persisted" */
    raft_index log_base;               /* index of the last snapshot */
    raft_term *terms;                  /* terms[i] is index log_base+1+i */
    size_t term_count;
    size_t term_cap;
    raft_index persisted_index; /* last durable index and its term */
    raft_term persisted_term;
    uint64_t next_seq;         /* sequence number expected next */
    raft_index snapshot_index; /* last RAFT_EVENT_SNAPSHOT taken */
};

struct bench {
    struct bench_node nodes[BENCH_NODES];
    struct bench_mailbox boxes[2];
    struct bench_mailbox *inbox;  /* being delivered */
    struct bench_mailbox *outbox; /* being filled */
    raft_time now;                /* simulated clock */
    uint64_t compact_every;       /* snapshot every N applied, 0 = never */
    uint64_t snapshots;           /* RAFT_EVENT_SNAPSHOTs accepted */
    bool failed;
    char error[256];
};

/* Records the first failure; later ones are usually its consequences. */
static void bench_fail(struct bench *bench, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void bench_fail(struct bench *bench, const char *fmt, ...)
{
    if (bench->failed) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(bench->error, sizeof(bench->error), fmt, ap);
    va_end(ap);
    bench->failed = true;
}

static struct bench_node *bench_node_by_id(struct bench *bench, raft_id id)
{
    for (size_t i = 0; i < BENCH_NODES; i++) {
        if (bench->nodes[i].id == id) {
            return &bench->nodes[i];
        }
    }
    return NULL;
}

/* Step 3 of the update contract: truncate at entries[0].index, append. */
static void node_store_entries(struct bench *bench, struct bench_node *node,
                               const struct raft_entry *entries, size_t count)
{
    raft_index first = entries[0].index;
    if (first <= node->log_base ||
        first > node->log_base + node->term_count + 1) {
        bench_fail(bench,
                   "node %" PRIu64 ": entries start at %" PRIu64
                   " but the stored log covers (%" PRIu64 ", %" PRIu64 "]",
                   node->id, first, node->log_base,
                   node->log_base + (raft_index)node->term_count);
        return;
    }
    size_t keep = (size_t)(first - node->log_base - 1);
    if (keep + count > node->term_cap) {
        size_t cap = node->term_cap == 0 ? 1024 : node->term_cap;
        while (cap < keep + count) {
            cap *= 2;
        }
        node->terms = bench_xrealloc(node->terms, cap * sizeof(*node->terms));
        node->term_cap = cap;
    }
    for (size_t i = 0; i < count; i++) {
        if (entries[i].index != first + i) {
            bench_fail(bench, "node %" PRIu64 ": non-contiguous entries",
                       node->id);
            return;
        }
        node->terms[keep + i] = entries[i].term;
    }
    node->term_count = keep + count;
    node->persisted_index = entries[count - 1].index;
    node->persisted_term = entries[count - 1].term;
}

/* Step 1 of the update contract: the state machine becomes the snapshot
 * (its data is the next expected sequence number). */
static void node_install_snapshot(struct bench *bench, struct bench_node *node,
                                  const struct raft_snapshot_meta *meta,
                                  struct raft_buf data)
{
    if (data.len != sizeof(uint64_t)) {
        bench_fail(bench, "node %" PRIu64 ": snapshot of %zu bytes", node->id,
                   data.len);
        return;
    }
    memcpy(&node->next_seq, data.base, sizeof(uint64_t));
    node->log_base = meta->index;
    node->term_count = 0;
    node->persisted_index = meta->index;
    node->persisted_term = meta->term;
    node->snapshot_index = meta->index;
}

/* Step 5: checks that NORMAL entries come out in proposal order. */
static void node_apply(struct bench *bench, struct bench_node *node,
                       const struct raft_entry *entries, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        const struct raft_entry *e = &entries[i];
        if (e->type != RAFT_ENTRY_NORMAL) {
            continue;
        }
        uint64_t seq;
        if (e->buf.len != BENCH_ENTRY_BYTES) {
            bench_fail(bench,
                       "node %" PRIu64 ": entry %" PRIu64 " has %zu bytes",
                       node->id, e->index, e->buf.len);
            return;
        }
        memcpy(&seq, e->buf.base, sizeof(seq));
        const unsigned char *bytes = e->buf.base;
        if (seq != node->next_seq ||
            bytes[BENCH_ENTRY_BYTES - 1] != (unsigned char)(seq * 31u)) {
            bench_fail(bench,
                       "node %" PRIu64 ": entry %" PRIu64
                       " carries sequence %" PRIu64 ", expected %" PRIu64,
                       node->id, e->index, seq, node->next_seq);
            return;
        }
        node->next_seq++;
    }
}

/* Processes one update in the order raft.h prescribes. Returns true if
 * entries were persisted, so the caller must feed RAFT_EVENT_PERSISTED
 * (which it can only do after this update is no longer needed). */
static bool node_process_update(struct bench *bench, struct bench_node *node,
                                const struct raft_update *update)
{
    if (update->flags & RAFT_UPDATE_SNAPSHOT) {
        node_install_snapshot(bench, node, update->snapshot,
                              update->snapshot_data);
    }
    if (update->flags & RAFT_UPDATE_HARD_STATE) {
        node->hard_state = update->hard_state;
    }
    bool persisted = false;
    if ((update->flags & RAFT_UPDATE_ENTRIES) && update->entry_count > 0) {
        node_store_entries(bench, node, update->entries, update->entry_count);
        persisted = true;
    }
    if (update->flags & RAFT_UPDATE_MESSAGES) {
        for (size_t i = 0; i < update->message_count; i++) {
            mailbox_push(bench->outbox, &update->messages[i]);
        }
    }
    if (update->flags & RAFT_UPDATE_COMMITTED) {
        node_apply(bench, node, update->committed, update->committed_count);
    }
    return persisted;
}

static void check_rv(struct bench *bench, struct bench_node *node,
                     const char *what, int rv)
{
    if (rv != 0) {
        bench_fail(bench, "node %" PRIu64 ": %s: %s (%d)", node->id, what,
                   raft_strerror(rv), rv);
    }
}

static struct raft_event persisted_event(struct bench *bench,
                                         const struct bench_node *node)
{
    struct raft_event event;
    memset(&event, 0, sizeof(event));
    event.type = RAFT_EVENT_PERSISTED;
    event.now = bench->now;
    event.persisted.index = node->persisted_index;
    event.persisted.term = node->persisted_term;
    return event;
}

/* Takes a snapshot when --compact says so. Called between updates. */
static void node_maybe_compact(struct bench *bench, struct bench_node *node,
                               bool collect)
{
    if (bench->compact_every == 0) {
        return;
    }
    raft_index applied = raft_node_applied_index(node->raft);
    if (applied < node->snapshot_index + bench->compact_every) {
        return;
    }
    uint64_t state = node->next_seq;
    struct raft_event event;
    memset(&event, 0, sizeof(event));
    event.type = RAFT_EVENT_SNAPSHOT;
    event.now = bench->now;
    event.snapshot.index = applied;
    event.snapshot.data.base = &state;
    event.snapshot.data.len = sizeof(state);
    struct raft_update update;
    int rv = raft_node_step(node->raft, &event, collect ? &update : NULL);
    check_rv(bench, node, "snapshot", rv);
    node->snapshot_index = applied;
    if (rv == 0) {
        bench->snapshots++;
    }
    if (collect && !bench->failed) {
        while (node_process_update(bench, node, &update) && !bench->failed) {
            struct raft_event ev = persisted_event(bench, node);
            check_rv(bench, node, "persisted",
                     raft_node_step(node->raft, &ev, &update));
        }
    }
}

/* Unbatched style: steps one event with its own update, processes it and
 * feeds PERSISTED immediately, repeating while entries get persisted.
 * Returns the step's return value. */
static int node_handle(struct bench *bench, struct bench_node *node,
                       const struct raft_event *event)
{
    struct raft_update update;
    int rv = raft_node_step(node->raft, event, &update);
    while (!bench->failed && node_process_update(bench, node, &update)) {
        struct raft_event persisted = persisted_event(bench, node);
        check_rv(bench, node, "persisted",
                 raft_node_step(node->raft, &persisted, &update));
    }
    node_maybe_compact(bench, node, true);
    return rv;
}

/* Batched style: collects the node's one update of this turn, processes
 * it, and queues PERSISTED (update == NULL) for the next turn's update. */
static void node_collect(struct bench *bench, struct bench_node *node)
{
    struct raft_update update;
    check_rv(bench, node, "collect", raft_node_step(node->raft, NULL, &update));
    if (!bench->failed && node_process_update(bench, node, &update)) {
        struct raft_event persisted = persisted_event(bench, node);
        check_rv(bench, node, "persisted",
                 raft_node_step(node->raft, &persisted, NULL));
    }
    node_maybe_compact(bench, node, false);
}

static void bench_swap_boxes(struct bench *bench)
{
    struct bench_mailbox *t = bench->inbox;
    bench->inbox = bench->outbox;
    bench->outbox = t;
}

/* Delivers every queued message. With collect, each delivery is handled
 * with its own update (node_handle); without, updates accumulate. */
static void bench_deliver(struct bench *bench, bool collect)
{
    bench_swap_boxes(bench);
    for (size_t i = 0; i < bench->inbox->count && !bench->failed; i++) {
        const struct raft_message *m = &bench->inbox->messages[i];
        struct bench_node *to = bench_node_by_id(bench, m->to);
        if (to == NULL) {
            continue; /* addressed to no one we run: dropped */
        }
        struct raft_event event;
        memset(&event, 0, sizeof(event));
        event.type = RAFT_EVENT_RECEIVE;
        event.now = bench->now;
        event.receive.message = m;
        int rv = collect ? node_handle(bench, to, &event)
                         : raft_node_step(to->raft, &event, NULL);
        check_rv(bench, to, "receive", rv);
    }
    mailbox_clear(bench->inbox);
}

/* Unbatched style: delivers until no message is in flight. */
static void bench_drain(struct bench *bench)
{
    while (bench->outbox->count > 0 && !bench->failed) {
        bench_deliver(bench, true);
    }
}

/* ------------------------------------------------------------------------
 * Group setup and teardown
 * --------------------------------------------------------------------- */

/* Creates and bootstraps three voters and elects node 1. */
static void bench_init(struct bench *bench, uint64_t compact_every)
{
    memset(bench, 0, sizeof(*bench));
    bench->inbox = &bench->boxes[0];
    bench->outbox = &bench->boxes[1];
    bench->now = 1000;
    bench->compact_every = compact_every;

    struct raft_config config;
    raft_config_init(&config);
    for (raft_id id = 1; id <= BENCH_NODES; id++) {
        int rv = raft_config_add(&config, id, RAFT_VOTER, 1);
        if (rv != 0) {
            bench_fail(bench, "raft_config_add: %s", raft_strerror(rv));
            return;
        }
    }
    for (size_t i = 0; i < BENCH_NODES; i++) {
        struct bench_node *node = &bench->nodes[i];
        node->id = (raft_id)(i + 1);
        struct raft_options options;
        raft_options_default(&options, node->id);
        options.seed = 0x5eed0000u + node->id;
        int rv = raft_node_new(&options, &node->raft);
        if (rv != 0) {
            bench_fail(bench, "raft_node_new: %s", raft_strerror(rv));
            return;
        }
        rv = raft_node_bootstrap(node->raft, &config);
        if (rv != 0) {
            bench_fail(bench, "raft_node_bootstrap: %s", raft_strerror(rv));
            return;
        }
        /* Persist the bootstrap configuration entry. */
        check_rv(bench, node, "first update", node_handle(bench, node, NULL));
    }
    bench_drain(bench);

    struct raft_event campaign;
    memset(&campaign, 0, sizeof(campaign));
    campaign.type = RAFT_EVENT_CAMPAIGN;
    campaign.now = bench->now;
    check_rv(bench, &bench->nodes[0], "campaign",
             node_handle(bench, &bench->nodes[0], &campaign));
    bench_drain(bench);
    if (bench->failed) {
        return;
    }
    struct raft_node *leader = bench->nodes[0].raft;
    if (raft_node_role(leader) != RAFT_LEADER) {
        bench_fail(bench,
                   "node 1 did not become leader after CAMPAIGN "
                   "(role %d, term %" PRIu64 ", leader %" PRIu64 ")",
                   (int)raft_node_role(leader), raft_node_term(leader),
                   raft_node_leader(leader));
        return;
    }
    if (raft_node_commit_index(leader) < raft_node_last_index(leader)) {
        bench_fail(bench,
                   "the new leader's entries are not committed after "
                   "draining (commit %" PRIu64 ", last %" PRIu64 ")",
                   raft_node_commit_index(leader),
                   raft_node_last_index(leader));
    }
}

static void bench_close(struct bench *bench)
{
    for (size_t i = 0; i < BENCH_NODES; i++) {
        raft_node_free(bench->nodes[i].raft);
        free(bench->nodes[i].terms);
    }
    mailbox_free(&bench->boxes[0]);
    mailbox_free(&bench->boxes[1]);
}

/* ------------------------------------------------------------------------
 * Proposals and the two timed modes
 * --------------------------------------------------------------------- */

/* Payloads for up to `count` proposals: slot i gets sequence seq + i in
 * its first 8 bytes and a check byte at the end. */
struct bench_payloads {
    unsigned char *bytes;
    struct raft_buf *bufs;
    size_t count;
};

static void payloads_init(struct bench_payloads *p, size_t count)
{
    p->count = count;
    p->bytes = bench_xrealloc(NULL, count * BENCH_ENTRY_BYTES);
    p->bufs = bench_xrealloc(NULL, count * sizeof(*p->bufs));
    for (size_t i = 0; i < count; i++) {
        memset(p->bytes + i * BENCH_ENTRY_BYTES, (int)(0xa0u + i % 16u),
               BENCH_ENTRY_BYTES);
        p->bufs[i].base = p->bytes + i * BENCH_ENTRY_BYTES;
        p->bufs[i].len = BENCH_ENTRY_BYTES;
    }
}

static void payloads_fill(struct bench_payloads *p, uint64_t seq, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char *slot = p->bytes + i * BENCH_ENTRY_BYTES;
        uint64_t s = seq + i;
        memcpy(slot, &s, sizeof(s));
        slot[BENCH_ENTRY_BYTES - 1] = (unsigned char)(s * 31u);
    }
}

static void payloads_free(struct bench_payloads *p)
{
    free(p->bytes);
    free(p->bufs);
}

static struct raft_event propose_event(struct bench *bench,
                                       const struct bench_payloads *p, size_t n)
{
    struct raft_event event;
    memset(&event, 0, sizeof(event));
    event.type = RAFT_EVENT_PROPOSE;
    event.now = bench->now;
    event.propose.bufs = p->bufs;
    event.propose.count = n;
    event.propose.first_index = NULL;
    return event;
}

static double monotonic_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct bench_result {
    const char *mode;
    uint64_t batch;
    uint64_t committed; /* NORMAL entries applied by the leader */
    double seconds;
    bool complete;       /* all requested entries committed in time */
    bool followers_done; /* followers applied them too (after the clock) */
    bool ok;             /* no error */
    uint64_t snapshots;  /* snapshots taken by all nodes (--compact) */
    char error[256];
};

static void check_leader(struct bench *bench)
{
    struct raft_node *leader = bench->nodes[0].raft;
    if (!bench->failed && raft_node_role(leader) != RAFT_LEADER) {
        bench_fail(bench, "node 1 lost leadership (role %d, term %" PRIu64 ")",
                   (int)raft_node_role(leader), raft_node_term(leader));
    }
}

/* One entry per PROPOSE, drained to quiescence after each. */
static void run_unbatched(struct bench *bench, uint64_t entries,
                          double seconds_max, struct bench_result *result)
{
    struct bench_node *leader = &bench->nodes[0];
    struct bench_payloads payloads;
    payloads_init(&payloads, 1);
    double start = monotonic_seconds();
    double deadline = start + seconds_max;

    for (uint64_t seq = 0; seq < entries && !bench->failed; seq++) {
        payloads_fill(&payloads, seq, 1);
        struct raft_event event = propose_event(bench, &payloads, 1);
        check_rv(bench, leader, "propose", node_handle(bench, leader, &event));
        bench_drain(bench);
        /* The entry must be committed once nothing is in flight; give the
         * nodes a few empty collections in case something was held. */
        for (int retry = 0; leader->next_seq <= seq && !bench->failed;
             retry++) {
            if (retry == BENCH_STALL_DRAINS_MAX) {
                bench_fail(bench,
                           "entry %" PRIu64 " not committed after draining "
                           "(leader commit %" PRIu64 ", last %" PRIu64 ")",
                           seq, raft_node_commit_index(leader->raft),
                           raft_node_last_index(leader->raft));
                break;
            }
            for (size_t i = 0; i < BENCH_NODES && !bench->failed; i++) {
                check_rv(bench, &bench->nodes[i], "collect",
                         node_handle(bench, &bench->nodes[i], NULL));
            }
            bench_drain(bench);
        }
        check_leader(bench);
        if ((seq & 1023u) == 1023u && monotonic_seconds() > deadline) {
            break;
        }
    }
    result->seconds = monotonic_seconds() - start;
    result->committed = leader->next_seq;
    payloads_free(&payloads);
}

/* --batch entries per PROPOSE, one PROPOSE and one update per node per
 * turn; the PROPOSE is refused with RAFT_E_BUSY under backpressure. */
static void run_batched(struct bench *bench, uint64_t entries, uint64_t batch,
                        double seconds_max, struct bench_result *result)
{
    struct bench_node *leader = &bench->nodes[0];
    struct bench_payloads payloads;
    payloads_init(&payloads, (size_t)batch);
    double start = monotonic_seconds();
    double deadline = start + seconds_max;
    uint64_t proposed = 0;
    uint64_t idle_turns = 0;

    for (uint64_t turn = 0; leader->next_seq < entries && !bench->failed;
         turn++) {
        uint64_t before = leader->next_seq;
        if (proposed < entries) {
            uint64_t n =
                entries - proposed < batch ? entries - proposed : batch;
            payloads_fill(&payloads, proposed, (size_t)n);
            struct raft_event event =
                propose_event(bench, &payloads, (size_t)n);
            int rv = raft_node_step(leader->raft, &event, NULL);
            if (rv == 0) {
                proposed += n;
            } else if (rv != RAFT_E_BUSY) {
                check_rv(bench, leader, "propose", rv);
            }
        }
        bench_deliver(bench, false);
        for (size_t i = 0; i < BENCH_NODES && !bench->failed; i++) {
            node_collect(bench, &bench->nodes[i]);
        }
        check_leader(bench);
        idle_turns = leader->next_seq == before ? idle_turns + 1 : 0;
        if (idle_turns == BENCH_STALL_TURNS_MAX) {
            bench_fail(bench,
                       "no commit for %d turns (proposed %" PRIu64
                       ", committed %" PRIu64 ", leader commit %" PRIu64
                       ", last %" PRIu64 ")",
                       BENCH_STALL_TURNS_MAX, proposed, leader->next_seq,
                       raft_node_commit_index(leader->raft),
                       raft_node_last_index(leader->raft));
        }
        if ((turn & 255u) == 255u && monotonic_seconds() > deadline) {
            break;
        }
    }
    result->seconds = monotonic_seconds() - start;
    result->committed = leader->next_seq;
    payloads_free(&payloads);
}

/* Untimed: lets followers learn the final commit index through a few
 * heartbeats (the frozen clock is advanced by one heartbeat interval each,
 * far below the election timeout) and reports whether they applied all. */
static bool settle_followers(struct bench *bench, uint64_t entries)
{
    for (int tick = 0; tick <= BENCH_SETTLE_TICKS_MAX && !bench->failed;
         tick++) {
        bool done = true;
        for (size_t i = 0; i < BENCH_NODES; i++) {
            done = done && bench->nodes[i].next_seq >= entries;
        }
        if (done) {
            return true;
        }
        if (tick == BENCH_SETTLE_TICKS_MAX) {
            break;
        }
        struct raft_options defaults;
        raft_options_default(&defaults, 1);
        bench->now += defaults.heartbeat_interval;
        for (size_t i = 0; i < BENCH_NODES && !bench->failed; i++) {
            struct raft_event event;
            memset(&event, 0, sizeof(event));
            event.type = RAFT_EVENT_TICK;
            event.now = bench->now;
            check_rv(bench, &bench->nodes[i], "tick",
                     node_handle(bench, &bench->nodes[i], &event));
        }
        bench_drain(bench);
    }
    return false;
}

static void run_mode(const char *mode, uint64_t entries, uint64_t batch,
                     double seconds_max, uint64_t compact_every,
                     struct bench_result *result)
{
    memset(result, 0, sizeof(*result));
    result->mode = mode;
    result->batch = batch;

    struct bench bench;
    bench_init(&bench, compact_every);
    if (!bench.failed) {
        if (strcmp(mode, "unbatched") == 0) {
            run_unbatched(&bench, entries, seconds_max, result);
        } else {
            run_batched(&bench, entries, batch, seconds_max, result);
        }
    }
    result->complete = !bench.failed && result->committed >= entries;
    if (result->complete) {
        result->followers_done = settle_followers(&bench, entries);
    }
    result->ok = !bench.failed;
    result->snapshots = bench.snapshots;
    if (bench.failed) {
        snprintf(result->error, sizeof(result->error), "%s", bench.error);
    }
    bench_close(&bench);
}

/* ------------------------------------------------------------------------
 * Command line and report
 * --------------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: raft-bench [--entries N] [--batch N] [--max-seconds S]\n"
            "                  [--compact N] [--mode unbatched|batched|both]\n"
            "\n"
            "Commit throughput of an in-memory 3-node raft group with %d-byte\n"
            "entries. --entries (default %d) entries are committed per mode;\n"
            "--batch (default %d) entries go into each proposal of the\n"
            "batched mode; each mode stops after --max-seconds (default\n"
            "%.0f); --compact N takes a snapshot every N applied entries\n"
            "(default 0: never).\n",
            BENCH_ENTRY_BYTES, BENCH_ENTRIES_DEFAULT, BENCH_BATCH_DEFAULT,
            BENCH_SECONDS_MAX_DEFAULT);
}

static bool parse_u64(const char *s, uint64_t *out)
{
    if (s == NULL || *s == '\0' || *s == '-') {
        return false;
    }
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0') {
        return false;
    }
    *out = (uint64_t)v;
    return true;
}

static double rate(const struct bench_result *r)
{
    return r->seconds > 0 ? (double)r->committed / r->seconds : 0.0;
}

int main(int argc, char **argv)
{
    uint64_t entries = BENCH_ENTRIES_DEFAULT;
    uint64_t batch = BENCH_BATCH_DEFAULT;
    uint64_t compact_every = 0;
    double seconds_max = BENCH_SECONDS_MAX_DEFAULT;
    const char *mode = "both";

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = true;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(arg, "--entries") == 0) {
            ok = parse_u64(value, &entries) && entries > 0;
            i++;
        } else if (strcmp(arg, "--batch") == 0) {
            ok = parse_u64(value, &batch) && batch > 0 && batch <= 1000000;
            i++;
        } else if (strcmp(arg, "--compact") == 0) {
            ok = parse_u64(value, &compact_every);
            i++;
        } else if (strcmp(arg, "--max-seconds") == 0) {
            char *end = NULL;
            seconds_max = value != NULL ? strtod(value, &end) : 0.0;
            ok = value != NULL && *end == '\0' && seconds_max > 0.0;
            i++;
        } else if (strcmp(arg, "--mode") == 0) {
            mode = value;
            ok = value != NULL &&
                 (strcmp(value, "unbatched") == 0 ||
                  strcmp(value, "batched") == 0 || strcmp(value, "both") == 0);
            i++;
        } else {
            ok = false;
        }
        if (!ok) {
            fprintf(stderr, "raft-bench: bad argument: %s %s\n", arg,
                    value != NULL ? value : "");
            usage(stderr);
            return 2;
        }
    }

    struct bench_result results[2];
    size_t count = 0;
    if (strcmp(mode, "batched") != 0) {
        run_mode("unbatched", entries, 1, seconds_max, compact_every,
                 &results[count++]);
    }
    if (strcmp(mode, "unbatched") != 0) {
        run_mode("batched", entries, batch, seconds_max, compact_every,
                 &results[count++]);
    }

    int status = 0;
    printf("raft-bench: 3 nodes, %d-byte entries, %" PRIu64
           " entries per mode\n",
           BENCH_ENTRY_BYTES, entries);
    printf("%-10s %6s %10s %9s %12s %s\n", "mode", "batch", "committed",
           "seconds", "entries/s", "status");
    for (size_t i = 0; i < count; i++) {
        const struct bench_result *r = &results[i];
        const char *state = !r->ok              ? "ERROR"
                            : !r->complete      ? "TIME LIMIT"
                            : r->followers_done ? "ok"
                                                : "ok (followers lag)";
        printf("%-10s %6" PRIu64 " %10" PRIu64 " %9.3f %12.0f %s\n", r->mode,
               r->batch, r->committed, r->seconds, rate(r), state);
        if (!r->ok) {
            fprintf(stderr, "raft-bench: %s: %s\n", r->mode, r->error);
            status = 1;
        }
    }

    printf("{\"bench\":\"raft\",\"nodes\":%d,\"entry_bytes\":%d,"
           "\"entries\":%" PRIu64 ",\"compact\":%" PRIu64,
           BENCH_NODES, BENCH_ENTRY_BYTES, entries, compact_every);
    for (size_t i = 0; i < count; i++) {
        const struct bench_result *r = &results[i];
        printf(",\"%s\":{\"batch\":%" PRIu64 ",\"committed\":%" PRIu64
               ",\"seconds\":%.6f,\"entries_per_sec\":%.0f,"
               "\"snapshots\":%" PRIu64 ",\"complete\":%s,"
               "\"followers_done\":%s,\"ok\":%s}",
               r->mode, r->batch, r->committed, r->seconds, rate(r),
               r->snapshots, r->complete ? "true" : "false",
               r->followers_done ? "true" : "false", r->ok ? "true" : "false");
    }
    printf("}\n");
    return status;
}
