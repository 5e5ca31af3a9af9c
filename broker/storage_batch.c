/* storage_batch.c: the write batch that collects, for many partitions, the
 * persistent parts of their raft updates until one group commit.
 *
 * raft update (borrowed, dies at the next raft call)
 *   -> storage_batch_put_*(): validate, check limits, reserve memory, then
 *      copy into the batch's arena and append operations (all-or-nothing)
 *   -> storage_batch_commit() (storage_lmdb.c) replays the operations in
 *      order into one LMDB transaction.
 *
 * Every put first computes exactly how many operations and arena bytes it
 * needs and reserves them (limits -> BUSY or TOO_BIG, memory -> NOMEM);
 * after that, emitting cannot fail, so a failed put leaves the batch as it
 * was. No I/O happens here and no compression: that is the committer's
 * work, off the loop thread. */
#include <stdlib.h>
#include <string.h>

#include "broker/storage_impl.h"

int storage_batch_new(struct storage *s, struct storage_batch **out)
{
    struct storage_batch *b;

    if (s == NULL || out == NULL) {
        return STORAGE_E_INVALID;
    }
    b = calloc(1, sizeof(*b));
    if (b == NULL) {
        return STORAGE_E_NOMEM;
    }
    storage__batch_limits(s, &b->bytes_max, &b->ops_max);
    STORAGE_ASSERT(b->bytes_max > 0);
    STORAGE_ASSERT(b->ops_max > 0);
    *out = b;
    return 0;
}

void storage_batch_free(struct storage_batch *b)
{
    if (b == NULL) {
        return;
    }
    free(b->ops);
    storage__buf_free(&b->arena);
    free(b->persisted);
    free(b);
}

void storage_batch_reset(struct storage_batch *b)
{
    STORAGE_ASSERT(b != NULL);
    b->op_count = 0;
    b->arena.len = 0;
    b->persisted_count = 0;
    b->persisted_hint = 0;
    b->committed = false;
}

bool storage_batch_empty(const struct storage_batch *b)
{
    STORAGE_ASSERT(b != NULL);
    return b->op_count == 0;
}

uint64_t storage_batch_bytes(const struct storage_batch *b)
{
    STORAGE_ASSERT(b != NULL);
    return b->arena.len;
}

uint32_t storage_batch_ops(const struct storage_batch *b)
{
    STORAGE_ASSERT(b != NULL);
    return b->op_count;
}

const struct storage_persisted *
storage_batch_persisted(const struct storage_batch *b, size_t *count)
{
    STORAGE_ASSERT(b != NULL);
    STORAGE_ASSERT(count != NULL);
    if (!b->committed) {
        *count = 0;
        return NULL;
    }
    *count = b->persisted_count;
    return b->persisted_count > 0 ? b->persisted : NULL;
}

void storage__batch_mark_committed(struct storage_batch *b)
{
    size_t kept = 0;

    STORAGE_ASSERT(!b->committed);
    for (size_t i = 0; i < b->persisted_count; i++) {
        if (b->persisted[i].index != 0) {
            STORAGE_ASSERT(b->persisted[i].term > 0);
            b->persisted[kept++] = b->persisted[i];
        }
    }
    b->persisted_count = kept;
    b->committed = true;
}

/* ------------------------------------------------------------------------
 * Reservation: the only step of a put that can fail
 * --------------------------------------------------------------------- */

/* What one put needs. */
struct batch_need {
    uint64_t ops;
    uint64_t bytes;
    bool persisted_row; /* may add a row to the persisted table */
};

static int batch_reserve(struct storage_batch *b, const struct batch_need *n)
{
    int rv;

    if (b->committed) {
        return STORAGE_E_INVALID;
    }
    if (n->ops > b->ops_max || n->bytes > b->bytes_max) {
        return STORAGE_E_TOO_BIG;
    }
    if (b->op_count + n->ops > b->ops_max ||
        b->arena.len + n->bytes > b->bytes_max) {
        return STORAGE_E_BUSY;
    }
    if (b->op_count + n->ops > b->op_cap) {
        uint64_t cap = b->op_cap < 64 ? 64 : b->op_cap;
        struct storage__op *ops;
        while (cap < b->op_count + n->ops) {
            cap *= 2;
        }
        if (cap > b->ops_max) {
            cap = b->ops_max;
        }
        ops = realloc(b->ops, (size_t)cap * sizeof(*ops));
        if (ops == NULL) {
            return STORAGE_E_NOMEM;
        }
        b->ops = ops;
        b->op_cap = (uint32_t)cap;
    }
    rv = storage__buf_reserve(&b->arena, b->arena.len + (size_t)n->bytes);
    if (rv != 0) {
        return rv;
    }
    if (n->persisted_row && b->persisted_count == b->persisted_cap) {
        size_t cap = b->persisted_cap < 8 ? 8 : b->persisted_cap * 2;
        struct storage_persisted *rows =
            realloc(b->persisted, cap * sizeof(*rows));
        if (rows == NULL) {
            return STORAGE_E_NOMEM;
        }
        b->persisted = rows;
        b->persisted_cap = cap;
    }
    return 0;
}

/* Copies len bytes into the reserved arena, returns their offset. */
static size_t batch_copy(struct storage_batch *b, const void *src, size_t len)
{
    size_t off = b->arena.len;

    STORAGE_ASSERT(b->arena.len + len <= b->arena.cap);
    if (len > 0) {
        memcpy(b->arena.base + off, src, len);
    }
    b->arena.len += len;
    return off;
}

static struct storage__op *batch_op(struct storage_batch *b, uint8_t kind,
                                    uint32_t partition)
{
    struct storage__op *op;

    STORAGE_ASSERT(b->op_count < b->op_cap);
    op = &b->ops[b->op_count++];
    memset(op, 0, sizeof(*op));
    op->kind = kind;
    op->partition = partition;
    return op;
}

/* The persisted row of partition, or NULL. Lookups hit the last row used
 * first (puts come in runs per partition), then scan. */
static struct storage_persisted *batch_row(struct storage_batch *b,
                                           uint32_t partition)
{
    if (b->persisted_hint < b->persisted_count &&
        b->persisted[b->persisted_hint].partition == partition) {
        return &b->persisted[b->persisted_hint];
    }
    for (size_t i = 0; i < b->persisted_count; i++) {
        if (b->persisted[i].partition == partition) {
            b->persisted_hint = i;
            return &b->persisted[i];
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------------
 * Validation, sizing and emission per operation
 * --------------------------------------------------------------------- */

static int hard_state_check(const struct raft_hard_state *hs)
{
    if (hs == NULL) {
        return STORAGE_E_INVALID;
    }
    if (hs->forced && raft_config_validate(&hs->forced_config) != 0) {
        return STORAGE_E_INVALID;
    }
    return 0;
}

static void hard_state_emit(struct storage_batch *b, uint32_t partition,
                            const struct raft_hard_state *hs)
{
    struct storage__op *op = batch_op(b, STORAGE__OP_HARD_STATE, partition);
    op->struct_off = batch_copy(b, hs, sizeof(*hs));
}

static int snapshot_check(const struct raft_snapshot_meta *meta,
                          struct raft_buf data)
{
    if (meta == NULL || meta->index == 0 || meta->term == 0 ||
        meta->config_index > meta->index ||
        raft_config_validate(&meta->config) != 0) {
        return STORAGE_E_INVALID;
    }
    if (data.len > 0 && data.base == NULL) {
        return STORAGE_E_INVALID;
    }
    return 0;
}

static void snapshot_emit(struct storage_batch *b, uint8_t kind,
                          uint32_t partition,
                          const struct raft_snapshot_meta *meta,
                          struct raft_buf data)
{
    struct storage__op *op = batch_op(b, kind, partition);
    op->index = meta->index;
    op->term = meta->term;
    op->struct_off = batch_copy(b, meta, sizeof(*meta));
    op->data_off = batch_copy(b, data.base, data.len);
    op->data_len = data.len;
    if (kind == STORAGE__OP_INSTALL) {
        struct storage_persisted *row = batch_row(b, partition);
        if (row != NULL) {
            row->index = 0; /* the log is empty after the install */
            row->term = 0;
        }
    }
}

static int entries_check(const struct raft_entry *entries, size_t count,
                         uint64_t *bytes)
{
    uint64_t total = 0;

    if (entries == NULL || count == 0 || entries[0].index == 0) {
        return STORAGE_E_INVALID;
    }
    for (size_t i = 0; i < count; i++) {
        const struct raft_entry *e = &entries[i];
        if (e->index != entries[0].index + i || e->term == 0 ||
            e->type < RAFT_ENTRY_NORMAL || e->type > RAFT_ENTRY_NOOP ||
            (e->buf.len > 0 && e->buf.base == NULL) ||
            e->buf.len > STORAGE__PAYLOAD_BYTES_MAX) {
            return STORAGE_E_INVALID;
        }
        if (i > 0 && e->term < entries[i - 1].term) {
            return STORAGE_E_INVALID;
        }
        total += e->buf.len;
    }
    *bytes = total;
    return 0;
}

static void entries_emit(struct storage_batch *b, uint32_t partition,
                         const struct raft_entry *entries, size_t count)
{
    struct storage_persisted *row;
    struct storage__op *op;

    op = batch_op(b, STORAGE__OP_TRUNCATE, partition);
    op->index = entries[0].index;
    for (size_t i = 0; i < count; i++) {
        op = batch_op(b, STORAGE__OP_ENTRY, partition);
        op->index = entries[i].index;
        op->term = entries[i].term;
        op->type = entries[i].type;
        op->data_off = batch_copy(b, entries[i].buf.base, entries[i].buf.len);
        op->data_len = entries[i].buf.len;
    }
    row = batch_row(b, partition);
    if (row == NULL) {
        STORAGE_ASSERT(b->persisted_count < b->persisted_cap);
        b->persisted_hint = b->persisted_count;
        row = &b->persisted[b->persisted_count++];
        row->partition = partition;
    }
    row->index = entries[count - 1].index;
    row->term = entries[count - 1].term;
}

/* ------------------------------------------------------------------------
 * Public puts
 * --------------------------------------------------------------------- */

int storage_batch_put_hard_state(struct storage_batch *b, uint32_t partition,
                                 const struct raft_hard_state *hs)
{
    struct batch_need need = {1, sizeof(*hs), false};
    int rv;

    if (b == NULL) {
        return STORAGE_E_INVALID;
    }
    rv = hard_state_check(hs);
    if (rv == 0) {
        rv = batch_reserve(b, &need);
    }
    if (rv != 0) {
        return rv;
    }
    hard_state_emit(b, partition, hs);
    return 0;
}

static int snapshot_put(struct storage_batch *b, uint8_t kind,
                        uint32_t partition,
                        const struct raft_snapshot_meta *meta,
                        struct raft_buf data)
{
    struct batch_need need = {1, 0, false};
    int rv;

    if (b == NULL) {
        return STORAGE_E_INVALID;
    }
    rv = snapshot_check(meta, data);
    if (rv != 0) {
        return rv;
    }
    need.bytes = sizeof(*meta) + (uint64_t)data.len;
    rv = batch_reserve(b, &need);
    if (rv != 0) {
        return rv;
    }
    snapshot_emit(b, kind, partition, meta, data);
    return 0;
}

int storage_batch_install_snapshot(struct storage_batch *b, uint32_t partition,
                                   const struct raft_snapshot_meta *meta,
                                   struct raft_buf data)
{
    return snapshot_put(b, STORAGE__OP_INSTALL, partition, meta, data);
}

int storage_batch_compact(struct storage_batch *b, uint32_t partition,
                          const struct raft_snapshot_meta *meta,
                          struct raft_buf data)
{
    return snapshot_put(b, STORAGE__OP_COMPACT, partition, meta, data);
}

int storage_batch_append(struct storage_batch *b, uint32_t partition,
                         const struct raft_entry *entries, size_t count)
{
    struct batch_need need = {0, 0, true};
    int rv;

    if (b == NULL) {
        return STORAGE_E_INVALID;
    }
    rv = entries_check(entries, count, &need.bytes);
    if (rv != 0) {
        return rv;
    }
    need.ops = (uint64_t)count + 1;
    rv = batch_reserve(b, &need);
    if (rv != 0) {
        return rv;
    }
    entries_emit(b, partition, entries, count);
    return 0;
}

int storage_batch_put_commit(struct storage_batch *b, uint32_t partition,
                             raft_index commit)
{
    struct batch_need need = {1, 0, false};
    struct storage__op *op;
    int rv;

    if (b == NULL || commit == 0) {
        return STORAGE_E_INVALID;
    }
    rv = batch_reserve(b, &need);
    if (rv != 0) {
        return rv;
    }
    op = batch_op(b, STORAGE__OP_COMMIT, partition);
    op->index = commit;
    return 0;
}

int storage_batch_put_update(struct storage_batch *b, uint32_t partition,
                             const struct raft_update *u)
{
    struct batch_need need = {0, 0, false};
    uint64_t entry_bytes = 0;
    int rv;

    if (b == NULL || u == NULL) {
        return STORAGE_E_INVALID;
    }
    if (u->flags & RAFT_UPDATE_SNAPSHOT) {
        rv = snapshot_check(u->snapshot, u->snapshot_data);
        if (rv != 0) {
            return rv;
        }
        need.ops += 1;
        need.bytes += sizeof(*u->snapshot) + (uint64_t)u->snapshot_data.len;
    }
    if (u->flags & RAFT_UPDATE_HARD_STATE) {
        rv = hard_state_check(&u->hard_state);
        if (rv != 0) {
            return rv;
        }
        need.ops += 1;
        need.bytes += sizeof(u->hard_state);
    }
    if (u->flags & RAFT_UPDATE_ENTRIES) {
        rv = entries_check(u->entries, u->entry_count, &entry_bytes);
        if (rv != 0) {
            return rv;
        }
        need.ops += (uint64_t)u->entry_count + 1;
        need.bytes += entry_bytes;
        need.persisted_row = true;
    }
    if (need.ops == 0) {
        return b->committed ? STORAGE_E_INVALID : 0;
    }
    rv = batch_reserve(b, &need);
    if (rv != 0) {
        return rv;
    }
    /* raft.h order: snapshot, hard state, entries. */
    if (u->flags & RAFT_UPDATE_SNAPSHOT) {
        snapshot_emit(b, STORAGE__OP_INSTALL, partition, u->snapshot,
                      u->snapshot_data);
    }
    if (u->flags & RAFT_UPDATE_HARD_STATE) {
        hard_state_emit(b, partition, &u->hard_state);
    }
    if (u->flags & RAFT_UPDATE_ENTRIES) {
        entries_emit(b, partition, u->entries, u->entry_count);
    }
    return 0;
}
