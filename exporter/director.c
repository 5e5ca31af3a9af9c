/* director.c: the exporter director of one partition (see director.h for
 * the contract with the host).
 *
 * Data flow:
 *
 *   loop thread                           worker thread (one per exporter)
 *   -----------                           --------------------------------
 *   offer/feed --item (refcounted copy     pops the head item, builds its
 *     of the record bytes)--> slot queue   view once per item (record_json,
 *     (ring of queue_records_max items,    under build_lock), filters,
 *     queue_bytes_max bytes, slot lock)    export_record(); on error keeps
 *                                          the item and retries it after
 *                                          the backoff; runs due tasks
 *   async cb <--ack (position, metadata    controller->acknowledge()
 *     copy), "queue drained", "exited"--
 *   host->acknowledged(), host->read()
 *
 * Ownership: an item is shared by the queues holding it and freed by the
 * last reference. The slot's loop-side fields (lagging, last_queued,
 * reported and memory positions) are touched only on the loop; the
 * worker-side fields (opened, w_*) only by its worker; everything between
 * them sits under the slot's lock.
 */
#define _POSIX_C_SOURCE 200809L

#include "exporter/director.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exporter/exporter_assert.h"
#include "exporter/record_json.h"

#define DIRECTOR_QUEUE_RECORDS_DEFAULT 4096
#define DIRECTOR_QUEUE_BYTES_DEFAULT (16u * 1024 * 1024)
#define DIRECTOR_READ_RECORDS_DEFAULT 1024
#define DIRECTOR_BACKOFF_MS_MIN_DEFAULT 100
#define DIRECTOR_BACKOFF_MS_MAX_DEFAULT 10000
/* Bytes an item counts for beyond its record (the view built from it). */
#define DIRECTOR_ITEM_OVERHEAD 256

/* One offered record, shared by every queue holding it. */
struct director_item {
    atomic_int refs;
    int64_t position;
    bool built;                   /* under d->build_lock */
    int build_rc;                 /* under d->build_lock */
    struct record_json_view view; /* valid when built && build_rc == 0 */
    size_t len;
    uint8_t bytes[];
};

struct director_task {
    bool used;
    int64_t id;
    uint64_t due_ms;
    exporter_task_fn fn;
    void *arg;
};

struct director_slot {
    struct exporter_director *d;
    char id[EXPORTER_DIRECTOR_ID_MAX];
    const struct exporter_def *def;
    void *instance;
    struct exporter_filter filter;
    struct exporter_controller ctl;
    pthread_t thread;
    bool thread_started;

    /* Loop thread only. */
    bool enabled;     /* false once disabled */
    bool lagging;     /* live offers skip it; it waits for re-reads */
    bool participant; /* taking part in the current host->read */
    int64_t last_queued;
    int64_t reported_position;
    int64_t memory_position;
    uint8_t *memory_meta;
    size_t memory_meta_len;
    bool memory_unreported; /* soft pause held this acknowledgement */

    /* Shared, under lock. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct director_item **queue;
    size_t queue_cap;
    size_t queue_head;
    size_t queue_count;
    size_t queue_bytes;
    bool stop;
    bool paused;
    bool exited;
    bool want_drain_signal;
    bool drained;
    bool ack_dirty;
    int64_t ack_position;
    uint8_t *ack_meta;
    size_t ack_meta_len;
    struct director_task tasks[EXPORTER_TASKS_MAX];
    int64_t task_id_last;
    uint64_t failures;
    uint64_t exported;
    uint64_t backoff_ms;
    uint64_t retry_at_ms;

    /* Worker thread only. */
    bool opened;
    int64_t w_position;
    uint8_t *w_meta;
    size_t w_meta_len;
    int64_t w_last_exported;
    int64_t w_last_skipped;
};

/* ------------------------------------------------------------------------
 * Helpers
 * --------------------------------------------------------------------- */

static uint64_t director_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

__attribute__((format(printf, 4, 0))) static void
director_vlog(struct exporter_director *d, int level, const char *id,
              const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (d->host.log != NULL) {
        d->host.log(d->host.data, level, id, msg);
        return;
    }
    static const char *const levels[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    fprintf(stderr, "exporter %s (partition %u) %s: %s\n",
            id != NULL ? id : "-", d->options.partition_id,
            levels[level >= 0 && level <= 3 ? level : 0], msg);
}

static void director_log(struct exporter_director *d, int level, const char *id,
                         const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void director_log(struct exporter_director *d, int level, const char *id,
                         const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    director_vlog(d, level, id, fmt, ap);
    va_end(ap);
}

static struct director_slot *
director_slot_of(const struct exporter_controller *ctl)
{
    EXPORTER_ASSERT(ctl != NULL);
    return (struct director_slot *)((char *)(uintptr_t)ctl -
                                    offsetof(struct director_slot, ctl));
}

static void director_item_unref(struct director_item *item)
{
    EXPORTER_ASSERT(item != NULL);
    int before = atomic_fetch_sub(&item->refs, 1);
    EXPORTER_ASSERT(before >= 1);
    if (before == 1) {
        if (item->built && item->build_rc == 0) {
            record_json_view_close(&item->view);
        }
        free(item);
    }
}

static struct director_item *director_item_new(int64_t position,
                                               const uint8_t *bytes, size_t len)
{
    struct director_item *item = malloc(sizeof(*item) + len);
    if (item == NULL) {
        return NULL;
    }
    atomic_init(&item->refs, 1); /* the creator's */
    item->position = position;
    item->built = false;
    item->build_rc = 0;
    memset(&item->view, 0, sizeof(item->view));
    item->len = len;
    if (len > 0) {
        memcpy(item->bytes, bytes, len);
    }
    return item;
}

static size_t director_item_cost(const struct director_item *item)
{
    return item->len + DIRECTOR_ITEM_OVERHEAD;
}

/* Queues item on slot unless its queue is full. Loop thread. */
static bool director_slot_push(struct exporter_director *d,
                               struct director_slot *s,
                               struct director_item *item)
{
    size_t cost = director_item_cost(item);
    bool ok = false;
    pthread_mutex_lock(&s->lock);
    EXPORTER_ASSERT(s->queue_count <= s->queue_cap);
    if (s->queue_count < s->queue_cap &&
        (s->queue_count == 0 ||
         s->queue_bytes + cost <= d->options.queue_bytes_max)) {
        size_t tail = (s->queue_head + s->queue_count) % s->queue_cap;
        s->queue[tail] = item;
        s->queue_count++;
        s->queue_bytes += cost;
        atomic_fetch_add(&item->refs, 1);
        pthread_cond_signal(&s->cond);
        ok = true;
    } else {
        s->want_drain_signal = true;
    }
    pthread_mutex_unlock(&s->lock);
    return ok;
}

/* Room enough to be worth a read: at most half full. Loop thread. */
static bool director_slot_has_room(struct exporter_director *d,
                                   struct director_slot *s)
{
    pthread_mutex_lock(&s->lock);
    bool room = s->queue_count <= s->queue_cap / 2 &&
                s->queue_bytes <= d->options.queue_bytes_max / 2;
    if (!room) {
        s->want_drain_signal = true;
    }
    pthread_mutex_unlock(&s->lock);
    return room;
}

/* ------------------------------------------------------------------------
 * The controller (worker thread)
 * --------------------------------------------------------------------- */

static int director_ctl_acknowledge(struct exporter_controller *ctl,
                                    int64_t position, const void *metadata,
                                    size_t metadata_len)
{
    struct director_slot *s = director_slot_of(ctl);
    if (metadata_len > EXPORTER_METADATA_BYTES_MAX ||
        (metadata == NULL && metadata_len > 0)) {
        return EXPORTER_E_INVALID;
    }
    if (position >= s->w_last_exported && s->w_last_skipped > position) {
        /* Everything exported is stored, and the records after it were
         * filtered out: the position covers them too. */
        position = s->w_last_skipped;
    }
    if (position <= s->w_position) {
        return 0; /* Zeebe: only a higher position is stored */
    }
    uint8_t *mine = NULL;
    uint8_t *theirs = NULL;
    if (metadata_len > 0) {
        mine = malloc(metadata_len);
        theirs = malloc(metadata_len);
        if (mine == NULL || theirs == NULL) {
            free(mine);
            free(theirs);
            return EXPORTER_E_NOMEM;
        }
        memcpy(mine, metadata, metadata_len);
        memcpy(theirs, metadata, metadata_len);
    }
    free(s->w_meta);
    s->w_meta = mine;
    s->w_meta_len = metadata_len;
    s->w_position = position;

    pthread_mutex_lock(&s->lock);
    uint8_t *old = s->ack_meta;
    s->ack_meta = theirs;
    s->ack_meta_len = metadata_len;
    s->ack_position = position;
    s->ack_dirty = true;
    pthread_mutex_unlock(&s->lock);
    free(old);
    uv_async_send(&s->d->async);
    return 0;
}

static int64_t director_ctl_last_position(const struct exporter_controller *ctl)
{
    return director_slot_of(ctl)->w_position;
}

static void director_ctl_metadata(const struct exporter_controller *ctl,
                                  const void **data, size_t *len)
{
    struct director_slot *s = director_slot_of(ctl);
    EXPORTER_ASSERT(data != NULL && len != NULL);
    *data = s->w_meta;
    *len = s->w_meta_len;
}

static int64_t director_ctl_schedule(struct exporter_controller *ctl,
                                     uint64_t delay_ms, exporter_task_fn fn,
                                     void *arg)
{
    struct director_slot *s = director_slot_of(ctl);
    EXPORTER_ASSERT(fn != NULL);
    int64_t id = EXPORTER_E_LIMIT;
    uint64_t due = director_now_ms() + delay_ms;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < EXPORTER_TASKS_MAX; i++) {
        if (!s->tasks[i].used) {
            id = ++s->task_id_last;
            s->tasks[i] = (struct director_task){
                .used = true, .id = id, .due_ms = due, .fn = fn, .arg = arg};
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return id;
}

static void director_ctl_cancel(struct exporter_controller *ctl,
                                int64_t task_id)
{
    struct director_slot *s = director_slot_of(ctl);
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < EXPORTER_TASKS_MAX; i++) {
        if (s->tasks[i].used && s->tasks[i].id == task_id) {
            s->tasks[i].used = false;
        }
    }
    pthread_mutex_unlock(&s->lock);
}

static void director_ctl_log(struct exporter_controller *ctl, int level,
                             const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void director_ctl_log(struct exporter_controller *ctl, int level,
                             const char *fmt, ...)
{
    struct director_slot *s = director_slot_of(ctl);
    va_list ap;
    va_start(ap, fmt);
    director_vlog(s->d, level, s->id, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------
 * The worker
 * --------------------------------------------------------------------- */

/* Under lock: an open or export failed. */
static void director_slot_failed(struct exporter_director *d,
                                 struct director_slot *s, uint64_t now)
{
    s->failures++;
    if (s->backoff_ms == 0) {
        s->backoff_ms = d->options.backoff_ms_min;
    } else {
        s->backoff_ms *= 2;
        if (s->backoff_ms > d->options.backoff_ms_max) {
            s->backoff_ms = d->options.backoff_ms_max;
        }
    }
    EXPORTER_ASSERT(s->backoff_ms >= d->options.backoff_ms_min);
    EXPORTER_ASSERT(s->backoff_ms <= d->options.backoff_ms_max);
    s->retry_at_ms = now + s->backoff_ms;
}

/* Under lock: an open or export succeeded. */
static void director_slot_succeeded(struct director_slot *s)
{
    s->backoff_ms = 0;
    s->retry_at_ms = 0;
}

/* Under lock: the index of the earliest pending task, or -1. */
static int director_slot_next_task(const struct director_slot *s)
{
    int best = -1;
    for (int i = 0; i < EXPORTER_TASKS_MAX; i++) {
        if (s->tasks[i].used &&
            (best < 0 || s->tasks[i].due_ms < s->tasks[best].due_ms)) {
            best = i;
        }
    }
    return best;
}

/* Builds item's view once for every exporter (the first one pays). */
static int director_item_build(struct exporter_director *d,
                               struct director_slot *s,
                               struct director_item *item)
{
    pthread_mutex_lock(&d->build_lock);
    if (!item->built) {
        char err[EXPORTER_ERRMSG_MAX];
        item->build_rc = record_json_view_init(
            &item->view, d->options.partition_id, item->position, item->bytes,
            item->len, err, sizeof(err));
        item->built = true;
        if (item->build_rc != 0) {
            director_log(d, EXPORTER_LOG_ERROR, s->id,
                         "skipping a record that cannot be exported: %s", err);
        }
    }
    int rc = item->build_rc;
    pthread_mutex_unlock(&d->build_lock);
    return rc;
}

/* Exports one item (worker thread, slot unlocked). Returns 0 when the
 * item is done with (exported, filtered or unexportable), < 0 to retry. */
static int director_slot_export(struct exporter_director *d,
                                struct director_slot *s,
                                struct director_item *item)
{
    bool skip = director_item_build(d, s, item) != 0;
    const struct exporter_record *r = &item->view.record;
    if (!skip) {
        EXPORTER_ASSERT(r->position == item->position);
        EXPORTER_ASSERT(r->record_type >= 0 &&
                        r->record_type < EXPORTER_RECORD_TYPES_MAX);
        EXPORTER_ASSERT(r->value_type >= 0 &&
                        r->value_type < EXPORTER_VALUE_TYPES_MAX);
        skip = !s->filter.record_types[r->record_type] ||
               !s->filter.value_types[r->value_type];
    }
    if (skip) {
        /* Zeebe's updatePositionOnSkipIfUpToDate: with nothing pending,
         * a skipped record moves the position on; otherwise the next
         * acknowledgement that covers every exported record does. */
        s->w_last_skipped = item->position;
        if (s->w_last_exported <= s->w_position &&
            item->position > s->w_position) {
            uint8_t *meta = NULL;
            if (s->w_meta_len > 0) {
                meta = malloc(s->w_meta_len);
                if (meta == NULL) {
                    return EXPORTER_E_NOMEM;
                }
                memcpy(meta, s->w_meta, s->w_meta_len);
            }
            int rc = director_ctl_acknowledge(&s->ctl, item->position, meta,
                                              s->w_meta_len);
            free(meta);
            if (rc != 0) {
                return rc;
            }
        }
        return 0;
    }
    int rc = s->def->export_record(s->instance, r);
    if (rc < 0) {
        director_log(d, EXPORTER_LOG_WARN, s->id,
                     "export of position %lld failed (%s); retrying after "
                     "backoff",
                     (long long)item->position, exporter_strerror(rc));
        return rc;
    }
    s->w_last_exported = item->position;
    return 0;
}

static void director_cond_wait_until(struct director_slot *s,
                                     uint64_t deadline_ms)
{
    if (deadline_ms == UINT64_MAX) {
        pthread_cond_wait(&s->cond, &s->lock);
        return;
    }
    struct timespec ts = {.tv_sec = (time_t)(deadline_ms / 1000),
                          .tv_nsec = (long)(deadline_ms % 1000) * 1000000L};
    int rc = pthread_cond_timedwait(&s->cond, &s->lock, &ts);
    EXPORTER_ASSERT(rc == 0 || rc == ETIMEDOUT);
}

static void *director_worker(void *arg)
{
    struct director_slot *s = arg;
    struct exporter_director *d = s->d;
    pthread_mutex_lock(&s->lock);
    while (!s->stop) {
        uint64_t now = director_now_ms();
        if (!s->opened && now >= s->retry_at_ms) {
            pthread_mutex_unlock(&s->lock);
            int rc = s->def->open(s->instance, &s->ctl);
            pthread_mutex_lock(&s->lock);
            if (rc < 0) {
                director_slot_failed(d, s, now);
                director_log(d, EXPORTER_LOG_WARN, s->id,
                             "open failed (%s); retrying in %llu ms",
                             exporter_strerror(rc),
                             (unsigned long long)s->backoff_ms);
            } else {
                s->opened = true;
                director_slot_succeeded(s);
            }
            continue;
        }
        int t = director_slot_next_task(s);
        if (s->opened && t >= 0 && s->tasks[t].due_ms <= now) {
            struct director_task task = s->tasks[t];
            s->tasks[t].used = false;
            pthread_mutex_unlock(&s->lock);
            task.fn(task.arg);
            pthread_mutex_lock(&s->lock);
            continue;
        }
        if (s->opened && !s->paused && s->queue_count > 0 &&
            now >= s->retry_at_ms) {
            struct director_item *item = s->queue[s->queue_head];
            pthread_mutex_unlock(&s->lock);
            int rc = director_slot_export(d, s, item);
            pthread_mutex_lock(&s->lock);
            if (rc < 0) {
                director_slot_failed(d, s, now);
                continue;
            }
            EXPORTER_ASSERT(s->queue[s->queue_head] == item);
            s->queue_head = (s->queue_head + 1) % s->queue_cap;
            s->queue_count--;
            s->queue_bytes -= director_item_cost(item);
            s->exported++;
            director_slot_succeeded(s);
            bool signal = false;
            if (s->want_drain_signal && s->queue_count <= s->queue_cap / 2 &&
                s->queue_bytes <= d->options.queue_bytes_max / 2) {
                s->want_drain_signal = false;
                s->drained = true;
                signal = true;
            }
            pthread_mutex_unlock(&s->lock);
            director_item_unref(item);
            if (signal) {
                uv_async_send(&d->async);
            }
            pthread_mutex_lock(&s->lock);
            continue;
        }
        uint64_t deadline = UINT64_MAX;
        if (s->opened && t >= 0) {
            deadline = s->tasks[t].due_ms;
        }
        if (!s->opened || (s->queue_count > 0 && !s->paused)) {
            if (s->retry_at_ms > now && s->retry_at_ms < deadline) {
                deadline = s->retry_at_ms;
            }
        }
        director_cond_wait_until(s, deadline);
    }
    pthread_mutex_unlock(&s->lock);

    /* Stopping: close the exporter on its own thread, drop the queue. */
    s->def->close(s->instance);
    s->instance = NULL;
    pthread_mutex_lock(&s->lock);
    size_t n = s->queue_count;
    struct director_item **items = s->queue;
    size_t head = s->queue_head;
    for (size_t i = 0; i < n; i++) {
        struct director_item *item = items[(head + i) % s->queue_cap];
        director_item_unref(item);
    }
    s->queue_count = 0;
    s->queue_bytes = 0;
    for (size_t i = 0; i < EXPORTER_TASKS_MAX; i++) {
        s->tasks[i].used = false;
    }
    s->exited = true;
    pthread_mutex_unlock(&s->lock);
    uv_async_send(&d->async);
    return NULL;
}

/* ------------------------------------------------------------------------
 * Slots (loop thread)
 * --------------------------------------------------------------------- */

static void director_slot_free(struct director_slot *s)
{
    EXPORTER_ASSERT(s != NULL);
    if (s->instance != NULL) {
        s->def->close(s->instance); /* never opened: no worker ran */
    }
    for (size_t i = 0; i < s->queue_count; i++) {
        director_item_unref(s->queue[(s->queue_head + i) % s->queue_cap]);
    }
    free(s->queue);
    free(s->memory_meta);
    free(s->ack_meta);
    free(s->w_meta);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static int director_slot_spawn(struct director_slot *s)
{
    EXPORTER_ASSERT(!s->thread_started);
    int rc = pthread_create(&s->thread, NULL, director_worker, s);
    if (rc != 0) {
        return EXPORTER_E_THREAD;
    }
    s->thread_started = true;
    return 0;
}

static void director_slot_report(struct exporter_director *d,
                                 struct director_slot *s)
{
    EXPORTER_ASSERT(s->memory_position >= s->reported_position);
    s->reported_position = s->memory_position;
    s->memory_unreported = false;
    d->host.acknowledged(d->host.data, s->id, s->memory_position,
                         s->memory_meta, s->memory_meta_len);
}

/* ------------------------------------------------------------------------
 * Reads (loop thread)
 * --------------------------------------------------------------------- */

static void director_read_timer_cb(uv_timer_t *t);

static void director_read(struct exporter_director *d)
{
    if (d->in_read || d->closing || !d->started ||
        d->phase == EXPORTER_DIRECTOR_PAUSED) {
        return;
    }
    d->read_pending = false;
    int64_t after = INT64_MAX;
    size_t participants = 0;
    for (size_t i = 0; i < EXPORTER_DIRECTOR_EXPORTERS_MAX; i++) {
        struct director_slot *s = d->slots[i];
        if (s == NULL || !s->enabled || !s->lagging) {
            continue;
        }
        if (!director_slot_has_room(d, s)) {
            continue; /* its worker signals when it drains */
        }
        s->participant = true;
        participants++;
        if (s->last_queued < after) {
            after = s->last_queued;
        }
    }
    if (participants == 0) {
        return;
    }
    d->in_read = true;
    int rc = d->host.read(d->host.data, d, after, d->options.read_records_max);
    d->in_read = false;
    size_t remaining = 0;
    for (size_t i = 0; i < EXPORTER_DIRECTOR_EXPORTERS_MAX; i++) {
        struct director_slot *s = d->slots[i];
        if (s == NULL || !s->participant) {
            continue;
        }
        s->participant = false;
        remaining++;
        if (rc == EXPORTER_DIRECTOR_READ_END && s->enabled &&
            d->phase != EXPORTER_DIRECTOR_PAUSED) {
            s->lagging = false; /* it has every committed record */
        }
    }
    if (rc == EXPORTER_DIRECTOR_READ_MORE && remaining > 0) {
        /* Exporters whose queues filled up are re-read when they drain;
         * the others continue now. */
        d->read_pending = true;
        uv_async_send(&d->async); /* continue on the next loop turn */
    } else if (rc < 0) {
        director_log(d, EXPORTER_LOG_WARN, NULL,
                     "reading the log after position %lld failed (%d); "
                     "retrying in %llu ms",
                     (long long)after, rc,
                     (unsigned long long)d->options.backoff_ms_min);
        uv_timer_start(&d->read_timer, director_read_timer_cb,
                       d->options.backoff_ms_min, 0);
    }
}

int exporter_director_feed(struct exporter_director *d, int64_t position,
                           const uint8_t *bytes, size_t len)
{
    EXPORTER_ASSERT(d != NULL);
    EXPORTER_ASSERT(d->in_read);
    EXPORTER_ASSERT(bytes != NULL || len == 0);
    struct director_item *item = NULL;
    bool any = false;
    for (size_t i = 0; i < EXPORTER_DIRECTOR_EXPORTERS_MAX; i++) {
        struct director_slot *s = d->slots[i];
        if (s == NULL || !s->participant) {
            continue;
        }
        if (position <= s->last_queued) {
            any = true; /* it has this one already */
            continue;
        }
        if (item == NULL) {
            item = director_item_new(position, bytes, len);
            if (item == NULL) {
                s->participant = false;
                continue;
            }
        }
        if (director_slot_push(d, s, item)) {
            s->last_queued = position;
            any = true;
        } else {
            s->participant = false;
        }
    }
    if (item != NULL) {
        director_item_unref(item);
    }
    return any ? 0 : EXPORTER_E_BUSY;
}

/* ------------------------------------------------------------------------
 * Loop-side events
 * --------------------------------------------------------------------- */

static void director_handle_closed(uv_handle_t *h)
{
    struct exporter_director *d = h->data;
    EXPORTER_ASSERT(d->handles_open > 0);
    d->handles_open--;
    if (d->handles_open == 0) {
        pthread_mutex_destroy(&d->build_lock);
        d->phase = EXPORTER_DIRECTOR_CLOSED;
        if (d->close_cb != NULL) {
            d->close_cb(d);
        }
    }
}

static void director_maybe_finish_close(struct exporter_director *d)
{
    if (!d->closing || d->handles_open != 2 ||
        uv_is_closing((uv_handle_t *)&d->async)) {
        return;
    }
    for (size_t i = 0; i < EXPORTER_DIRECTOR_EXPORTERS_MAX; i++) {
        if (d->slots[i] != NULL) {
            return;
        }
    }
    uv_close((uv_handle_t *)&d->async, director_handle_closed);
    uv_close((uv_handle_t *)&d->read_timer, director_handle_closed);
}

static void director_async_cb(uv_async_t *h)
{
    struct exporter_director *d = h->data;
    for (size_t i = 0; i < EXPORTER_DIRECTOR_EXPORTERS_MAX; i++) {
        struct director_slot *s = d->slots[i];
        if (s == NULL) {
            continue;
        }
        pthread_mutex_lock(&s->lock);
        bool acked = s->ack_dirty;
        if (acked) {
            free(s->memory_meta);
            s->memory_meta = s->ack_meta;
            s->memory_meta_len = s->ack_meta_len;
            s->memory_position = s->ack_position;
            s->ack_meta = NULL;
            s->ack_meta_len = 0;
            s->ack_dirty = false;
        }
        bool exited = s->exited;
        if (s->drained) {
            s->drained = false;
            d->read_pending = true;
        }
        pthread_mutex_unlock(&s->lock);
        if (acked && s->enabled) {
            if (d->phase == EXPORTER_DIRECTOR_SOFT_PAUSED) {
                s->memory_unreported = true;
            } else {
                director_slot_report(d, s);
            }
        }
        if (exited) {
            EXPORTER_ASSERT(s->thread_started);
            pthread_join(s->thread, NULL);
            d->slots[i] = NULL;
            director_slot_free(s);
        }
    }
    if (d->closing) {
        director_maybe_finish_close(d);
        return;
    }
    if (d->read_pending) {
        director_read(d);
    }
}

static void director_read_timer_cb(uv_timer_t *t)
{
    struct exporter_director *d = t->data;
    d->read_pending = true;
    director_read(d);
}

/* ------------------------------------------------------------------------
 * API
 * --------------------------------------------------------------------- */

int exporter_director_init(uv_loop_t *loop, struct exporter_director *d,
                           const struct exporter_director_options *options,
                           const struct exporter_director_host *host)
{
    EXPORTER_ASSERT(loop != NULL);
    EXPORTER_ASSERT(d != NULL);
    if (options == NULL || host == NULL || host->read == NULL ||
        host->acknowledged == NULL) {
        return EXPORTER_E_INVALID;
    }
    memset(d, 0, sizeof(*d));
    d->loop = loop;
    d->options = *options;
    if (d->options.queue_records_max == 0) {
        d->options.queue_records_max = DIRECTOR_QUEUE_RECORDS_DEFAULT;
    }
    if (d->options.queue_bytes_max == 0) {
        d->options.queue_bytes_max = DIRECTOR_QUEUE_BYTES_DEFAULT;
    }
    if (d->options.read_records_max == 0) {
        d->options.read_records_max = DIRECTOR_READ_RECORDS_DEFAULT;
    }
    if (d->options.backoff_ms_min == 0) {
        d->options.backoff_ms_min = DIRECTOR_BACKOFF_MS_MIN_DEFAULT;
    }
    if (d->options.backoff_ms_max == 0) {
        d->options.backoff_ms_max = DIRECTOR_BACKOFF_MS_MAX_DEFAULT;
    }
    if (d->options.backoff_ms_max < d->options.backoff_ms_min) {
        return EXPORTER_E_INVALID;
    }
    d->host = *host;
    d->phase = EXPORTER_DIRECTOR_EXPORTING;
    d->last_offered = -1;
    if (pthread_mutex_init(&d->build_lock, NULL) != 0) {
        return EXPORTER_E_NOMEM;
    }
    if (uv_async_init(loop, &d->async, director_async_cb) != 0) {
        pthread_mutex_destroy(&d->build_lock);
        return EXPORTER_E_NOMEM;
    }
    uv_timer_init(loop, &d->read_timer);
    d->async.data = d;
    d->read_timer.data = d;
    d->handles_open = 2;
    return 0;
}

int exporter_director_add(struct exporter_director *d,
                          const struct exporter_director_exporter *e)
{
    EXPORTER_ASSERT(d != NULL);
    EXPORTER_ASSERT(e != NULL && e->def != NULL && e->instance != NULL);
    if (d->closing) {
        return EXPORTER_E_STATE;
    }
    if (e->id == NULL || e->id[0] == '\0' ||
        strlen(e->id) >= EXPORTER_DIRECTOR_ID_MAX ||
        e->metadata_len > EXPORTER_METADATA_BYTES_MAX ||
        (e->metadata == NULL && e->metadata_len > 0) || e->position < -1) {
        return EXPORTER_E_INVALID;
    }
    size_t free_index = EXPORTER_DIRECTOR_EXPORTERS_MAX;
    for (size_t i = 0; i < EXPORTER_DIRECTOR_EXPORTERS_MAX; i++) {
        if (d->slots[i] == NULL) {
            if (free_index == EXPORTER_DIRECTOR_EXPORTERS_MAX) {
                free_index = i;
            }
        } else if (strcmp(d->slots[i]->id, e->id) == 0) {
            return EXPORTER_E_BUSY;
        }
    }
    if (free_index == EXPORTER_DIRECTOR_EXPORTERS_MAX) {
        return EXPORTER_E_LIMIT;
    }
    struct director_slot *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return EXPORTER_E_NOMEM;
    }
    s->queue_cap = d->options.queue_records_max;
    s->queue = calloc(s->queue_cap, sizeof(*s->queue));
    uint8_t *meta1 = NULL;
    uint8_t *meta2 = NULL;
    if (e->metadata_len > 0) {
        meta1 = malloc(e->metadata_len);
        meta2 = malloc(e->metadata_len);
    }
    pthread_condattr_t attr;
    bool ok = s->queue != NULL &&
              (e->metadata_len == 0 || (meta1 != NULL && meta2 != NULL)) &&
              pthread_condattr_init(&attr) == 0;
    if (ok) {
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        ok = pthread_cond_init(&s->cond, &attr) == 0;
        pthread_condattr_destroy(&attr);
        if (ok && pthread_mutex_init(&s->lock, NULL) != 0) {
            pthread_cond_destroy(&s->cond);
            ok = false;
        }
    }
    if (!ok) {
        free(meta1);
        free(meta2);
        free(s->queue);
        free(s);
        return EXPORTER_E_NOMEM;
    }
    if (e->metadata_len > 0) {
        memcpy(meta1, e->metadata, e->metadata_len);
        memcpy(meta2, e->metadata, e->metadata_len);
    }
    s->d = d;
    snprintf(s->id, sizeof(s->id), "%s", e->id);
    s->def = e->def;
    s->instance = e->instance;
    s->filter = e->filter;
    s->ctl = (struct exporter_controller){
        .id = s->id,
        .partition_id = d->options.partition_id,
        .acknowledge = director_ctl_acknowledge,
        .last_position = director_ctl_last_position,
        .metadata = director_ctl_metadata,
        .schedule = director_ctl_schedule,
        .cancel = director_ctl_cancel,
        .log = director_ctl_log,
    };
    s->enabled = true;
    s->lagging = true; /* everything after its position must be read */
    s->last_queued = e->position;
    s->reported_position = e->position;
    s->memory_position = e->position;
    s->memory_meta = meta1;
    s->memory_meta_len = e->metadata_len;
    s->w_position = e->position;
    s->w_meta = meta2;
    s->w_meta_len = e->metadata_len;
    s->w_last_exported = e->position;
    s->w_last_skipped = e->position;
    s->paused = d->phase == EXPORTER_DIRECTOR_PAUSED;
    if (d->started) {
        int rc = director_slot_spawn(s);
        if (rc != 0) {
            s->instance = NULL; /* stays the caller's */
            director_slot_free(s);
            return rc;
        }
        d->read_pending = true;
        uv_async_send(&d->async);
    }
    d->slots[free_index] = s;
    return 0;
}

int exporter_director_disable(struct exporter_director *d, const char *id)
{
    EXPORTER_ASSERT(d != NULL);
    EXPORTER_ASSERT(id != NULL);
    for (size_t i = 0; i < EXPORTER_DIRECTOR_EXPORTERS_MAX; i++) {
        struct director_slot *s = d->slots[i];
        if (s == NULL || !s->enabled || strcmp(s->id, id) != 0) {
            continue;
        }
        s->enabled = false;
        if (!s->thread_started) {
            d->slots[i] = NULL;
            director_slot_free(s);
            return 0;
        }
        pthread_mutex_lock(&s->lock);
        s->stop = true;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
        return 0;
    }
    return EXPORTER_E_NOTFOUND;
}

int exporter_director_start(struct exporter_director *d)
{
    EXPORTER_ASSERT(d != NULL);
    if (d->started || d->closing) {
        return EXPORTER_E_STATE;
    }
    for (size_t i = 0; i < EXPORTER_DIRECTOR_EXPORTERS_MAX; i++) {
        struct director_slot *s = d->slots[i];
        if (s == NULL) {
            continue;
        }
        int rc = director_slot_spawn(s);
        if (rc != 0) {
            director_log(d, EXPORTER_LOG_ERROR, s->id,
                         "cannot start its worker thread");
            return rc; /* close() stops the workers already running */
        }
    }
    d->started = true;
    d->read_pending = true;
    uv_async_send(&d->async);
    return 0;
}

int exporter_director_offer(struct exporter_director *d, int64_t position,
                            const uint8_t *bytes, size_t len)
{
    EXPORTER_ASSERT(d != NULL);
    EXPORTER_ASSERT(!d->in_read);
    EXPORTER_ASSERT(bytes != NULL || len == 0);
    EXPORTER_ASSERT(position > d->last_offered);
    d->last_offered = position;
    if (d->closing || d->phase == EXPORTER_DIRECTOR_PAUSED) {
        return 0; /* every exporter is lagging: it re-reads later */
    }
    struct director_item *item = NULL;
    int rc = 0;
    for (size_t i = 0; i < EXPORTER_DIRECTOR_EXPORTERS_MAX; i++) {
        struct director_slot *s = d->slots[i];
        if (s == NULL || !s->enabled || s->lagging) {
            continue;
        }
        EXPORTER_ASSERT(s->last_queued < position);
        if (item == NULL) {
            item = director_item_new(position, bytes, len);
        }
        if (item != NULL && director_slot_push(d, s, item)) {
            s->last_queued = position;
        } else {
            s->lagging = true;
            rc = item == NULL ? EXPORTER_E_NOMEM : 0;
        }
    }
    if (item != NULL) {
        director_item_unref(item);
    }
    return rc;
}

static void director_set_paused(struct exporter_director *d, bool paused)
{
    for (size_t i = 0; i < EXPORTER_DIRECTOR_EXPORTERS_MAX; i++) {
        struct director_slot *s = d->slots[i];
        if (s == NULL) {
            continue;
        }
        if (paused) {
            s->lagging = true;
        }
        pthread_mutex_lock(&s->lock);
        s->paused = paused;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
    }
}

void exporter_director_pause(struct exporter_director *d, bool soft)
{
    EXPORTER_ASSERT(d != NULL);
    if (d->closing) {
        return;
    }
    if (soft) {
        if (d->phase == EXPORTER_DIRECTOR_PAUSED) {
            director_set_paused(d, false);
            d->read_pending = true;
            uv_async_send(&d->async);
        }
        d->phase = EXPORTER_DIRECTOR_SOFT_PAUSED;
    } else {
        d->phase = EXPORTER_DIRECTOR_PAUSED;
        director_set_paused(d, true);
    }
}

void exporter_director_resume(struct exporter_director *d)
{
    EXPORTER_ASSERT(d != NULL);
    if (d->closing || d->phase == EXPORTER_DIRECTOR_EXPORTING) {
        return;
    }
    bool was_hard = d->phase == EXPORTER_DIRECTOR_PAUSED;
    d->phase = EXPORTER_DIRECTOR_EXPORTING;
    if (was_hard) {
        director_set_paused(d, false);
        d->read_pending = true;
        uv_async_send(&d->async);
    }
    for (size_t i = 0; i < EXPORTER_DIRECTOR_EXPORTERS_MAX; i++) {
        struct director_slot *s = d->slots[i];
        if (s != NULL && s->enabled && s->memory_unreported) {
            director_slot_report(d, s);
        }
    }
}

enum exporter_director_phase
exporter_director_phase(const struct exporter_director *d)
{
    EXPORTER_ASSERT(d != NULL);
    return d->closing ? EXPORTER_DIRECTOR_CLOSED : d->phase;
}

const char *exporter_director_phase_name(enum exporter_director_phase p)
{
    switch (p) {
    case EXPORTER_DIRECTOR_EXPORTING:
        return "EXPORTING";
    case EXPORTER_DIRECTOR_PAUSED:
        return "PAUSED";
    case EXPORTER_DIRECTOR_SOFT_PAUSED:
        return "SOFT_PAUSED";
    case EXPORTER_DIRECTOR_CLOSED:
        return "CLOSED";
    }
    return "CLOSED";
}

int64_t exporter_director_position(const struct exporter_director *d)
{
    EXPORTER_ASSERT(d != NULL);
    int64_t lowest = INT64_MAX;
    for (size_t i = 0; i < EXPORTER_DIRECTOR_EXPORTERS_MAX; i++) {
        const struct director_slot *s = d->slots[i];
        if (s != NULL && s->enabled && s->reported_position < lowest) {
            lowest = s->reported_position;
        }
    }
    return lowest;
}

bool exporter_director_info(struct exporter_director *d, size_t i,
                            struct exporter_director_info *info)
{
    EXPORTER_ASSERT(d != NULL);
    EXPORTER_ASSERT(info != NULL);
    if (i >= EXPORTER_DIRECTOR_EXPORTERS_MAX || d->slots[i] == NULL) {
        return false;
    }
    struct director_slot *s = d->slots[i];
    memset(info, 0, sizeof(*info));
    snprintf(info->id, sizeof(info->id), "%s", s->id);
    info->enabled = s->enabled;
    info->lagging = s->lagging;
    info->position = s->reported_position;
    info->position_memory = s->memory_position;
    info->position_queued = s->last_queued;
    pthread_mutex_lock(&s->lock);
    info->queued_records = s->queue_count;
    info->queued_bytes = s->queue_bytes;
    info->failures = s->failures;
    info->exported = s->exported;
    info->backoff_ms = s->backoff_ms;
    info->failing = s->backoff_ms > 0;
    pthread_mutex_unlock(&s->lock);
    return true;
}

void exporter_director_close(struct exporter_director *d,
                             exporter_director_close_cb close_cb)
{
    EXPORTER_ASSERT(d != NULL);
    EXPORTER_ASSERT(!d->closing);
    EXPORTER_ASSERT(!d->in_read);
    d->closing = true;
    d->close_cb = close_cb;
    uv_timer_stop(&d->read_timer);
    for (size_t i = 0; i < EXPORTER_DIRECTOR_EXPORTERS_MAX; i++) {
        struct director_slot *s = d->slots[i];
        if (s == NULL) {
            continue;
        }
        if (!s->thread_started) {
            d->slots[i] = NULL;
            director_slot_free(s);
            continue;
        }
        pthread_mutex_lock(&s->lock);
        s->stop = true;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
    }
    director_maybe_finish_close(d);
}
