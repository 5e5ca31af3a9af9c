/* log.c: the in-memory log: every entry since the last compaction.
 *
 * Entries arrive from proposals (leader) or appends (follower) and are
 * copied in; the node hands ranges of them out in updates (to persist, to
 * send, to apply). Entries leave by truncation (a follower's conflicting
 * suffix, Raft paper section 5.3), compaction (below a snapshot, keeping a
 * trailing window for slow followers) or reset (snapshot install). The
 * array is contiguous so that any range can be handed out as one pointer;
 * every entry owns a heap copy of its payload. */
#include <string.h>

#include "raft/impl.h"

void raft__log_init(struct raft_log *log)
{
    memset(log, 0, sizeof(*log));
}

static void log_free_payloads(struct raft_log *log,
                              const struct raft_heap *heap, size_t from,
                              size_t to)
{
    for (size_t i = from; i < to; i++) {
        raft__free(heap, (void *)log->entries[i].buf.base);
        log->entries[i].buf.base = NULL;
    }
}

void raft__log_close(struct raft_log *log, const struct raft_heap *heap)
{
    log_free_payloads(log, heap, 0, log->count);
    raft__free(heap, log->entries);
    raft__log_init(log);
}

raft_index raft__log_last(const struct raft_log *log)
{
    return log->offset + log->count;
}

raft_term raft__log_last_term(const struct raft_log *log)
{
    if (log->count == 0) {
        return log->offset_term;
    }
    return log->entries[log->count - 1].term;
}

raft_term raft__log_term(const struct raft_log *log, raft_index index)
{
    if (index == log->offset) {
        return log->offset_term;
    }
    if (index < log->offset || index > raft__log_last(log)) {
        return 0;
    }
    return log->entries[index - log->offset - 1].term;
}

const struct raft_entry *raft__log_get(const struct raft_log *log,
                                       raft_index index)
{
    if (index <= log->offset || index > raft__log_last(log)) {
        return NULL;
    }
    return &log->entries[index - log->offset - 1];
}

int raft__log_reserve(struct raft_log *log, const struct raft_heap *heap,
                      size_t n)
{
    size_t cap;
    struct raft_entry *entries;

    if (log->count + n <= log->cap) {
        return 0;
    }
    cap = log->cap == 0 ? 64 : log->cap;
    while (cap < log->count + n) {
        cap *= 2;
    }
    entries = raft__realloc(heap, log->entries, cap * sizeof(*entries));
    if (entries == NULL) {
        return RAFT_E_NOMEM;
    }
    log->entries = entries;
    log->cap = cap;
    return 0;
}

int raft__log_append(struct raft_log *log, const struct raft_heap *heap,
                     raft_term term, uint8_t type, struct raft_buf buf)
{
    struct raft_entry *e;
    void *copy = NULL;

    RAFT_ASSERT(log->count < log->cap);
    RAFT_ASSERT(term >= raft__log_last_term(log));
    RAFT_ASSERT(type >= RAFT_ENTRY_NORMAL && type <= RAFT_ENTRY_NOOP);
    if (buf.len > 0) {
        copy = raft__malloc(heap, buf.len);
        if (copy == NULL) {
            return RAFT_E_NOMEM;
        }
        memcpy(copy, buf.base, buf.len);
    }
    e = &log->entries[log->count];
    e->term = term;
    e->index = raft__log_last(log) + 1;
    e->type = type;
    e->buf.base = copy;
    e->buf.len = buf.len;
    log->count++;
    return 0;
}

void raft__log_truncate(struct raft_log *log, const struct raft_heap *heap,
                        raft_index from)
{
    size_t keep;

    RAFT_ASSERT(from > log->offset);
    if (from > raft__log_last(log)) {
        return;
    }
    keep = (size_t)(from - log->offset - 1);
    log_free_payloads(log, heap, keep, log->count);
    log->count = keep;
}

void raft__log_compact(struct raft_log *log, const struct raft_heap *heap,
                       raft_index upto)
{
    size_t drop;
    raft_term term;

    if (upto <= log->offset) {
        return;
    }
    RAFT_ASSERT(upto <= raft__log_last(log));
    term = raft__log_term(log, upto);
    drop = (size_t)(upto - log->offset);
    log_free_payloads(log, heap, 0, drop);
    memmove(log->entries, log->entries + drop,
            (log->count - drop) * sizeof(*log->entries));
    log->count -= drop;
    log->offset = upto;
    log->offset_term = term;
    RAFT_ASSERT(log->count == 0 || log->entries[0].index == upto + 1);
}

void raft__log_reset(struct raft_log *log, const struct raft_heap *heap,
                     raft_index index, raft_term term)
{
    log_free_payloads(log, heap, 0, log->count);
    log->count = 0;
    log->offset = index;
    log->offset_term = term;
}

raft_index raft__log_find_conflict_by_term(const struct raft_log *log,
                                           raft_index index, raft_term term)
{
    raft_index last = raft__log_last(log);

    if (index > last) {
        index = last;
    }
    while (index > log->offset) {
        if (raft__log_term(log, index) <= term) {
            return index;
        }
        index--;
    }
    return log->offset;
}
