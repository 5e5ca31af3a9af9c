/* sim_disk.c: per-node simulated storage.
 *
 * A node's disk holds the durable state a restart loads (hard state,
 * snapshot metadata and bytes, log entries contiguous from the snapshot
 * index + 1) and a FIFO of pending entry writes. sim_cluster.c feeds it
 * from each update: snapshots and hard states become durable immediately;
 * entry writes are queued (deep copies) and land one by one, in order, when
 * their simulated disk latency expires (sim_disk_complete_head()), after
 * which the cluster feeds RAFT_EVENT_PERSISTED. A crash drops what is still
 * pending (sim_disk_drop_pending()), possibly after letting a prefix land.
 */
#include <stdlib.h>
#include <string.h>

#include "sim.h"

static void *xrealloc(void *p, size_t size)
{
    void *q = realloc(p, size == 0 ? 1 : size);
    if (q == NULL) {
        abort();
    }
    return q;
}

void sim_log_copy_entry(struct raft_entry *dst, const struct raft_entry *src)
{
    *dst = *src;
    dst->buf.base = NULL;
    dst->buf.len = 0;
    if (src->buf.len > 0) {
        void *p = xrealloc(NULL, src->buf.len);
        memcpy(p, src->buf.base, src->buf.len);
        dst->buf.base = p;
        dst->buf.len = src->buf.len;
    }
}

void sim_log_free_entry(struct raft_entry *entry)
{
    free((void *)entry->buf.base);
    entry->buf.base = NULL;
    entry->buf.len = 0;
}

void sim_log_append(struct sim_log *log, const struct raft_entry *entry)
{
    if (log->len == log->cap) {
        log->cap = log->cap ? log->cap * 2 : 16;
        log->v = xrealloc(log->v, log->cap * sizeof(*log->v));
    }
    sim_log_copy_entry(&log->v[log->len++], entry);
}

void sim_log_truncate_from(struct sim_log *log, raft_index index)
{
    while (log->len > 0 && log->v[log->len - 1].index >= index) {
        sim_log_free_entry(&log->v[--log->len]);
    }
}

void sim_log_drop_upto(struct sim_log *log, raft_index index)
{
    size_t n = 0;
    while (n < log->len && log->v[n].index <= index) {
        sim_log_free_entry(&log->v[n]);
        n++;
    }
    if (n > 0) {
        memmove(log->v, log->v + n, (log->len - n) * sizeof(*log->v));
        log->len -= n;
    }
}

const struct raft_entry *sim_log_get(const struct sim_log *log,
                                     raft_index index)
{
    if (log->len == 0 || index < log->v[0].index) {
        return NULL;
    }
    raft_index off = index - log->v[0].index;
    if (off >= log->len) {
        return NULL;
    }
    return &log->v[off];
}

void sim_log_free(struct sim_log *log)
{
    for (size_t i = 0; i < log->len; i++) {
        sim_log_free_entry(&log->v[i]);
    }
    free(log->v);
    memset(log, 0, sizeof(*log));
}

void sim_disk_init(struct sim_disk *disk)
{
    memset(disk, 0, sizeof(*disk));
    disk->next_write_id = 1;
}

void sim_disk_drop_pending(struct sim_disk *disk)
{
    for (size_t i = disk->pending_head; i < disk->pending_len; i++) {
        sim_log_free(&disk->pending[i].entries);
    }
    disk->pending_head = 0;
    disk->pending_len = 0;
    disk->tail = sim_disk_last_index(disk);
}

void sim_disk_free(struct sim_disk *disk)
{
    sim_disk_drop_pending(disk);
    free(disk->pending);
    free(disk->snap_data);
    sim_log_free(&disk->log);
    memset(disk, 0, sizeof(*disk));
}

raft_index sim_disk_snap_index(const struct sim_disk *disk)
{
    return disk->has_snap ? disk->snap.index : 0;
}

raft_index sim_disk_last_index(const struct sim_disk *disk)
{
    if (disk->log.len > 0) {
        return disk->log.v[disk->log.len - 1].index;
    }
    return sim_disk_snap_index(disk);
}

bool sim_disk_empty(const struct sim_disk *disk)
{
    return !disk->has_hs && !disk->has_snap && disk->log.len == 0;
}

uint64_t sim_disk_enqueue(struct sim_disk *disk, const struct raft_entry *e,
                          size_t count)
{
    if (disk->pending_head > 0 && disk->pending_head == disk->pending_len) {
        disk->pending_head = 0;
        disk->pending_len = 0;
    }
    if (disk->pending_len == disk->pending_cap) {
        if (disk->pending_head > 0) {
            size_t live = disk->pending_len - disk->pending_head;
            memmove(disk->pending, disk->pending + disk->pending_head,
                    live * sizeof(*disk->pending));
            disk->pending_head = 0;
            disk->pending_len = live;
        } else {
            disk->pending_cap = disk->pending_cap ? disk->pending_cap * 2 : 8;
            disk->pending = xrealloc(disk->pending,
                                     disk->pending_cap * sizeof(*disk->pending));
        }
    }
    struct sim_write *w = &disk->pending[disk->pending_len++];
    memset(w, 0, sizeof(*w));
    w->id = disk->next_write_id++;
    w->first = e[0].index;
    for (size_t i = 0; i < count; i++) {
        sim_log_append(&w->entries, &e[i]);
    }
    disk->tail = e[count - 1].index;
    return w->id;
}

struct sim_write *sim_disk_head(struct sim_disk *disk)
{
    if (disk->pending_head >= disk->pending_len) {
        return NULL;
    }
    return &disk->pending[disk->pending_head];
}

bool sim_disk_complete_head(struct sim_disk *disk, raft_index *index,
                            raft_term *term, bool *gap)
{
    struct sim_write *w = sim_disk_head(disk);
    *gap = false;
    if (w == NULL) {
        return false;
    }
    raft_index snap = sim_disk_snap_index(disk);
    sim_log_truncate_from(&disk->log, w->first);
    for (size_t i = 0; i < w->entries.len; i++) {
        const struct raft_entry *e = &w->entries.v[i];
        if (e->index <= snap) {
            continue;
        }
        if (e->index != sim_disk_last_index(disk) + 1) {
            *gap = true;
            break;
        }
        sim_log_append(&disk->log, e);
    }
    *index = w->entries.v[w->entries.len - 1].index;
    *term = w->entries.v[w->entries.len - 1].term;
    sim_log_free(&w->entries);
    disk->pending_head++;
    return !*gap;
}

void sim_disk_install_snapshot(struct sim_disk *disk,
                               const struct raft_snapshot_meta *meta,
                               const void *data, size_t len)
{
    const struct raft_entry *at = sim_log_get(&disk->log, meta->index);
    if (at != NULL && at->term == meta->term) {
        sim_log_drop_upto(&disk->log, meta->index);
    } else {
        sim_log_truncate_from(&disk->log, 0);
    }
    disk->has_snap = true;
    disk->snap = *meta;
    free(disk->snap_data);
    disk->snap_data = NULL;
    disk->snap_len = 0;
    if (len > 0) {
        disk->snap_data = xrealloc(NULL, len);
        memcpy(disk->snap_data, data, len);
        disk->snap_len = len;
    }
    if (disk->pending_head >= disk->pending_len) {
        disk->tail = sim_disk_last_index(disk);
    }
}
