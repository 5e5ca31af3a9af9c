/* export.c: configured exporters, per-partition exporter directors on the
 * leader, and exporter positions in the partition state (see export.h for
 * the data flow).
 *
 * Positions: a record's position is (entry index << 16) | place. The
 * director asks to re-read "after position P": the entries from P >> 16 on
 * are taken from the raft node's log (raft_node_entry_at), skipping the
 * records at or before P. The broker keeps those entries by never
 * compacting past broker_export_bound() (broker.c's snapshot timer).
 *
 * EXPORTER records (the bookkeeping written by broker_export_flush()) are
 * never offered to exporters, so acknowledging cannot feed itself.
 *
 * Enable/disable: each partition keeps the wanted state of every exporter
 * (broker_export_want_set(); all enabled at metadata version 0 until told
 * otherwise). A disabled exporter is left out of the director, of the
 * flushes (a late acknowledgement cannot re-create its row) and of the
 * compaction bound. State commands (DELETE, or the initialising UPDATE)
 * are queued once per exporter and raft term: a new term means a new
 * leadership, whose queue starts empty, so the command is queued again.
 */
#define _POSIX_C_SOURCE 200809L
#include "broker/export.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exporter/director.h"
#include "exporter/exporter.h"
#include "exporter/record_json.h"
#include "broker/placement.h"

#define EXPORT_SLICES_MAX 4096u

struct export_ack {
    bool pending;           /* acknowledged since the last flush */
    int64_t position;
    void *metadata;
    size_t metadata_len;
};

/* What was last queued to move an exporter's row toward its want. */
enum export_cmd {
    EXPORT_CMD_NONE = 0,
    EXPORT_CMD_DELETE = 1,
    EXPORT_CMD_INIT = 2,
};

struct broker_export_partition {
    struct broker_export *x;
    struct partition *p;
    struct exporter_director *director; /* NULL unless leading */
    struct export_ack acks[BROKER_EXPORTERS_MAX];
    struct broker_export_want want[BROKER_EXPORTERS_MAX];
    uint32_t row_version[BROKER_EXPORTERS_MAX]; /* metadata version of
                                                   the row when the
                                                   exporter joined the
                                                   director (flushes keep
                                                   it) */
    uint8_t cmd[BROKER_EXPORTERS_MAX];          /* enum export_cmd */
    uint32_t cmd_version[BROKER_EXPORTERS_MAX]; /* EXPORT_CMD_INIT's */
    uint64_t cmd_term[BROKER_EXPORTERS_MAX];    /* raft term it went in */
};

struct broker_export {
    uv_loop_t *loop;
    const struct broker_config *cfg;
    uint32_t count;
    struct exporter_type types[BROKER_EXPORTERS_MAX];
    struct exporter_arg args[BROKER_EXPORTERS_MAX][BROKER_EXPORTER_ARGS_MAX];
    enum broker_export_phase phase;
    struct broker_export_partition *parts[BROKER_PARTITIONS_MAX];
    uint32_t part_count;
    struct record_json_slice slices[EXPORT_SLICES_MAX]; /* scratch */
    uint32_t closing_left; /* directors still closing */
    bool closing;
    void (*close_cb)(void *data);
    void *close_data;
};

/* ------------------------------------------------------------------------
 * Configuration
 * --------------------------------------------------------------------- */

int broker_export_init(struct broker_export **out, uv_loop_t *loop,
                       const struct broker_config *cfg, char *err,
                       size_t errlen)
{
    struct broker_export *x = calloc(1, sizeof(*x));

    *out = NULL;
    if (x == NULL) {
        snprintf(err, errlen, "exporters: out of memory");
        return -ENOMEM;
    }
    x->loop = loop;
    x->cfg = cfg;
    for (uint32_t i = 0; i < cfg->exporter_count; i++) {
        const struct broker_exporter_config *c = &cfg->exporters[i];
        int rv;
        for (uint32_t k = 0; k < c->arg_count; k++) {
            x->args[i][k].key = c->args[k].key;
            x->args[i][k].value = c->args[k].value;
        }
        rv = exporter_type_load(&x->types[i], c->id,
                                c->type[0] != '\0' ? c->type : NULL,
                                c->path[0] != '\0' ? c->path : NULL, err,
                                errlen);
        if (rv == 0) {
            rv = exporter_type_validate(&x->types[i], c->id, x->args[i],
                                        c->arg_count, err, errlen);
            if (rv != 0) {
                exporter_type_unload(&x->types[i]);
            }
        }
        if (rv != 0) {
            for (uint32_t k = 0; k < i; k++) {
                exporter_type_unload(&x->types[k]);
            }
            free(x);
            return rv;
        }
        x->count++;
    }
    *out = x;
    return 0;
}

uint32_t broker_export_count(const struct broker_export *x)
{
    return x->count;
}

static void export_maybe_done(struct broker_export *x)
{
    if (!x->closing || x->closing_left > 0) {
        return;
    }
    for (uint32_t i = 0; i < x->count; i++) {
        exporter_type_unload(&x->types[i]);
    }
    if (x->close_cb != NULL) {
        x->close_cb(x->close_data);
    }
    free(x);
}

void broker_export_close(struct broker_export *x, void (*cb)(void *data),
                         void *data)
{
    if (x == NULL) {
        if (cb != NULL) {
            cb(data);
        }
        return;
    }
    x->closing = true;
    x->close_cb = cb;
    x->close_data = data;
    for (uint32_t i = 0; i < x->part_count; i++) {
        broker_export_follow(x->parts[i]);
        free(x->parts[i]);
        x->parts[i] = NULL;
    }
    x->part_count = 0;
    export_maybe_done(x);
}

/* ------------------------------------------------------------------------
 * Director host callbacks
 * --------------------------------------------------------------------- */

static bool record_is_bookkeeping(const uint8_t *bytes, size_t len)
{
    Tandem__Record__Record *r =
        tandem__record__record__unpack(NULL, len, bytes);
    bool skip = r == NULL ||
                r->value_type == TANDEM__RECORD__VALUE_TYPE__EXPORTER;
    if (r != NULL) {
        tandem__record__record__free_unpacked(r, NULL);
    }
    return skip;
}

/* Feeds (inside read) or offers the records of one entry after after. */
static int export_entry(struct broker_export *x, struct exporter_director *d,
                        const struct raft_entry *e, int64_t after, bool feed,
                        size_t *fed)
{
    struct record_json_slice *slices = x->slices;
    int n;

    if (e->type != RAFT_ENTRY_NORMAL || e->buf.len == 0) {
        return 0;
    }
    n = record_json_batch_split(e->buf.base, e->buf.len, slices,
                                EXPORT_SLICES_MAX);
    if (n < 0) {
        return 0; /* the partition marked itself dead already */
    }
    for (int i = 0; i < n; i++) {
        int64_t position =
            (int64_t)((e->index << PARTITION_POSITION_BITS) | (uint64_t)i);
        int rv;
        if (position <= after ||
            record_is_bookkeeping(slices[i].bytes, slices[i].len)) {
            continue;
        }
        rv = feed ? exporter_director_feed(d, position, slices[i].bytes,
                                           slices[i].len)
                  : exporter_director_offer(d, position, slices[i].bytes,
                                            slices[i].len);
        if (rv != 0) {
            return rv;
        }
        if (fed != NULL) {
            (*fed)++;
        }
    }
    return 0;
}

static int export_read(void *data, struct exporter_director *d,
                       int64_t after_position, size_t records_max)
{
    struct broker_export_partition *xp = data;
    struct raft_node *raft = xp->p->raft;
    raft_index applied = raft_node_applied_index(raft);
    raft_index first = raft_node_first_index(raft);
    raft_index from = after_position < 0
                          ? first
                          : (raft_index)((uint64_t)after_position >>
                                         PARTITION_POSITION_BITS);
    size_t fed = 0;

    if (from < first) {
        fprintf(stderr, "partition %u: exporters: records after position "
                "%" PRId64 " are no longer in the log (first index %" PRIu64
                "); continuing from there\n", xp->p->opt.partition_id,
                after_position, (uint64_t)first);
        from = first;
    }
    if (from == 0) {
        from = 1;
    }
    for (raft_index i = from; i <= applied; i++) {
        const struct raft_entry *e = raft_node_entry_at(raft, i);
        int rv;
        if (e == NULL) {
            continue;
        }
        rv = export_entry(xp->x, d, e, after_position, true, &fed);
        if (rv == EXPORTER_E_BUSY) {
            return EXPORTER_DIRECTOR_READ_MORE;
        }
        if (rv != 0) {
            return rv;
        }
        if (fed >= records_max && i < applied) {
            return EXPORTER_DIRECTOR_READ_MORE;
        }
    }
    return EXPORTER_DIRECTOR_READ_END;
}

static int export_index_of(const struct broker_export *x, const char *id)
{
    for (uint32_t i = 0; i < x->count; i++) {
        if (strcmp(x->cfg->exporters[i].id, id) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static void export_acknowledged(void *data, const char *exporter_id,
                                int64_t position, const void *metadata,
                                size_t metadata_len)
{
    struct broker_export_partition *xp = data;
    int i = export_index_of(xp->x, exporter_id);
    struct export_ack *a;
    void *copy = NULL;

    if (i < 0 || !xp->want[i].enabled) {
        return; /* a late acknowledgement of a disabled exporter */
    }
    a = &xp->acks[i];
    if (metadata_len > 0) {
        copy = malloc(metadata_len);
        if (copy == NULL) {
            return; /* acknowledged again with the next flush */
        }
        memcpy(copy, metadata, metadata_len);
    }
    free(a->metadata);
    a->metadata = copy;
    a->metadata_len = metadata_len;
    a->position = position;
    a->pending = true;
}

/* ------------------------------------------------------------------------
 * Partitions
 * --------------------------------------------------------------------- */

int broker_export_partition_new(struct broker_export *x, struct partition *p,
                                struct broker_export_partition **out)
{
    struct broker_export_partition *xp = calloc(1, sizeof(*xp));
    if (xp == NULL) {
        return -ENOMEM;
    }
    if (x->part_count == BROKER_PARTITIONS_MAX) {
        free(xp);
        return -ENOBUFS;
    }
    xp->x = x;
    xp->p = p;
    for (uint32_t i = 0; i < BROKER_EXPORTERS_MAX; i++) {
        xp->want[i].enabled = true;
        xp->want[i].initialize_from = -1;
    }
    x->parts[x->part_count++] = xp;
    *out = xp;
    return 0;
}

static void export_director_closed(struct exporter_director *d)
{
    struct broker_export *x = d->data;
    free(d);
    assert(x->closing_left > 0);
    x->closing_left--;
    export_maybe_done(x);
}

/* Whether the director runs exporter id (an enabled slot). */
static bool export_director_has(struct exporter_director *d, const char *id)
{
    for (size_t k = 0; k < EXPORTER_DIRECTOR_EXPORTERS_MAX; k++) {
        struct exporter_director_info info;
        if (exporter_director_info(d, k, &info) && info.enabled &&
            strcmp(info.id, id) == 0) {
            return true;
        }
    }
    return false;
}

/* Adds exporter i to the leader's director d, resuming from the position
 * and metadata of its committed row. Returns 0 (added, or running
 * already), 1 (not now: disabled, or its row still needs initialising),
 * or a negative error (logged; retried by the next want_set). */
static int export_add_one(struct broker_export_partition *xp,
                          struct exporter_director *d, uint32_t i)
{
    struct broker_export *x = xp->x;
    const struct broker_exporter_config *c = &x->cfg->exporters[i];
    const struct broker_export_want *w = &xp->want[i];
    uint32_t pid = xp->p->opt.partition_id;
    struct exporter_director_exporter e;
    char err[EXPORTER_ERRMSG_MAX];
    void *meta = NULL;
    size_t meta_len = 0;
    int64_t position = -1;
    uint32_t version = 0;
    int rv;

    assert(i < x->count);
    if (!w->enabled) {
        return 1;
    }
    if (export_director_has(d, c->id)) {
        return 0;
    }
    rv = engine_exporter_get(xp->p->engine, c->id, &position, &meta,
                             &meta_len, &version);
    if (rv < 0) {
        return rv; /* UNTESTED: state unreadable */
    }
    if (version < w->metadata_version) {
        free(meta);
        return 1; /* export_want_one() initialises the row first */
    }
    memset(&e, 0, sizeof(e));
    rv = exporter_type_configure(&x->types[i], c->id, pid, x->args[i],
                                 c->arg_count, &e.instance, &e.filter, err,
                                 sizeof(err));
    if (rv != 0) {
        fprintf(stderr, "partition %u: exporter %s: %s\n", pid, c->id, err);
        free(meta);
        return rv;
    }
    e.id = c->id;
    e.def = x->types[i].def;
    e.position = position;
    e.metadata = meta;
    e.metadata_len = meta_len;
    rv = exporter_director_add(d, &e);
    if (rv != 0) {
        if (rv != EXPORTER_E_BUSY) {
            fprintf(stderr, "partition %u: exporter %s: %s\n", pid, c->id,
                    exporter_strerror(rv));
        }
        e.def->close(e.instance);
    } else {
        xp->row_version[i] = version;
    }
    free(meta);
    return rv;
}

void broker_export_lead(struct broker_export_partition *xp)
{
    struct broker_export *x = xp->x;
    struct exporter_director_options o;
    struct exporter_director_host h;
    struct exporter_director *d;
    uint32_t pid = xp->p->opt.partition_id;

    if (x->count == 0 || xp->director != NULL || x->closing) {
        return;
    }
    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        return;
    }
    memset(&o, 0, sizeof(o));
    o.partition_id = pid;
    memset(&h, 0, sizeof(h));
    h.data = xp;
    h.read = export_read;
    h.acknowledged = export_acknowledged;
    if (exporter_director_init(x->loop, d, &o, &h) != 0) {
        free(d);
        return;
    }
    d->data = x;
    for (uint32_t i = 0; i < x->count; i++) {
        (void)export_add_one(xp, d, i);
    }
    if (x->phase == BROKER_EXPORT_PAUSED) {
        exporter_director_pause(d, false);
    } else if (x->phase == BROKER_EXPORT_SOFT_PAUSED) {
        exporter_director_pause(d, true);
    }
    if (exporter_director_start(d) != 0) {
        x->closing_left++;
        exporter_director_close(d, export_director_closed);
        return;
    }
    xp->director = d;
}

void broker_export_follow(struct broker_export_partition *xp)
{
    if (xp->director == NULL) {
        return;
    }
    xp->x->closing_left++;
    exporter_director_close(xp->director, export_director_closed);
    xp->director = NULL;
    for (uint32_t i = 0; i < BROKER_EXPORTERS_MAX; i++) {
        free(xp->acks[i].metadata);
        memset(&xp->acks[i], 0, sizeof(xp->acks[i]));
    }
}

void broker_export_committed(struct broker_export_partition *xp,
                             const struct raft_entry *entries, size_t count)
{
    if (xp == NULL || xp->director == NULL) {
        return;
    }
    for (size_t i = 0; i < count; i++) {
        (void)export_entry(xp->x, xp->director, &entries[i], -1, false,
                           NULL);
    }
}

bool broker_export_flush(struct broker_export_partition *xp)
{
    bool queued = false;

    if (xp == NULL || xp->director == NULL) {
        return false;
    }
    for (uint32_t i = 0; i < xp->x->count; i++) {
        struct export_ack *a = &xp->acks[i];
        Tandem__Record__Record *rec = NULL;
        if (!a->pending || !xp->want[i].enabled) {
            continue;
        }
        if (engine_exporter_command(xp->p->engine, false,
                                    xp->x->cfg->exporters[i].id, a->position,
                                    a->metadata, a->metadata_len,
                                    xp->row_version[i], &rec) != 0) {
            continue;
        }
        if (partition_submit_internal(xp->p, rec) == 0) {
            a->pending = false;
            queued = true;
        }
    }
    return queued;
}

int64_t broker_export_bound(struct broker_export_partition *xp)
{
    int64_t bound = INT64_MAX;

    for (uint32_t i = 0; i < xp->x->count; i++) {
        int64_t position = -1;
        if (!xp->want[i].enabled) {
            continue; /* disabled: holds nothing back */
        }
        (void)engine_exporter_get(xp->p->engine, xp->x->cfg->exporters[i].id,
                                  &position, NULL, NULL, NULL);
        if (position < bound) {
            bound = position;
        }
    }
    return bound;
}

int64_t broker_export_position(struct broker_export_partition *xp)
{
    int64_t bound = broker_export_bound(xp);
    return bound == INT64_MAX ? -1 : bound;
}

/* ------------------------------------------------------------------------
 * Enable and disable
 * --------------------------------------------------------------------- */

int broker_export_find(const struct broker_export *x, const char *id)
{
    return id != NULL ? export_index_of(x, id) : -1;
}

bool broker_export_same_type(const struct broker_export *x, uint32_t a,
                             uint32_t b)
{
    assert(a < x->count);
    assert(b < x->count);
    return x->types[a].def == x->types[b].def;
}

/* Queues a state command for exporter i unless the same one went in
 * during this term already. Returns true when it queued one. */
static bool export_cmd_queue(struct broker_export_partition *xp, uint32_t i,
                             uint8_t kind, int64_t position,
                             const void *meta, size_t meta_len,
                             uint32_t version)
{
    raft_term term = raft_node_term(xp->p->raft);
    Tandem__Record__Record *rec = NULL;

    if (xp->cmd[i] == kind && xp->cmd_term[i] == term &&
        (kind != EXPORT_CMD_INIT || xp->cmd_version[i] == version)) {
        return false; /* queued already; waiting for it to commit */
    }
    if (engine_exporter_command(xp->p->engine, kind == EXPORT_CMD_DELETE,
                                xp->x->cfg->exporters[i].id, position, meta,
                                meta_len, version, &rec) != 0) {
        return false; /* UNTESTED: metadata over 1 MiB */
    }
    if (partition_submit_internal(xp->p, rec) != 0) {
        return false; /* not leader (any more) or busy: next pass */
    }
    xp->cmd[i] = kind;
    xp->cmd_term[i] = term;
    xp->cmd_version[i] = version;
    return true;
}

/* Moves exporter i of a leader toward its want. Returns 1 when settled,
 * 0 while not yet, a negative error when the state is unreadable. */
static int export_want_one(struct broker_export_partition *xp, uint32_t i,
                           bool *queued)
{
    const struct broker_export_want *w = &xp->want[i];
    const char *id = xp->x->cfg->exporters[i].id;
    int64_t position = -1;
    uint32_t version = 0;
    int rv = engine_exporter_get(xp->p->engine, id, &position, NULL, NULL,
                                 &version);
    bool has_row = rv == 0;

    if (rv < 0) {
        return rv; /* UNTESTED: state unreadable */
    }
    if (!w->enabled) {
        if (xp->director != NULL) {
            (void)exporter_director_disable(xp->director, id);
        }
        free(xp->acks[i].metadata);
        memset(&xp->acks[i], 0, sizeof(xp->acks[i]));
        if (!has_row) {
            return 1;
        }
        *queued |= export_cmd_queue(xp, i, EXPORT_CMD_DELETE, -1, NULL, 0, 0);
        return 0;
    }
    if (version < w->metadata_version) {
        /* (Re)initialise: copy the other exporter's row, or start over. */
        int64_t from_position = -1;
        void *meta = NULL;
        size_t meta_len = 0;
        if (w->initialize_from >= 0) {
            const char *from = xp->x->cfg->exporters[w->initialize_from].id;
            rv = engine_exporter_get(xp->p->engine, from, &from_position,
                                     &meta, &meta_len, NULL);
            if (rv < 0) {
                return rv; /* UNTESTED: state unreadable */
            }
        }
        *queued |= export_cmd_queue(xp, i, EXPORT_CMD_INIT, from_position,
                                    meta, meta_len, w->metadata_version);
        free(meta);
        return 0;
    }
    if (xp->director == NULL) {
        return 1; /* no director (none configured, or it could not start) */
    }
    rv = export_add_one(xp, xp->director, i);
    return rv == 0 ? 1 : 0;
}

int broker_export_want_set(struct broker_export_partition *xp,
                           const struct broker_export_want *want,
                           uint32_t count, bool *queued)
{
    int settled = 1;

    assert(xp != NULL);
    assert(queued != NULL);
    *queued = false;
    if (count != xp->x->count || count > BROKER_EXPORTERS_MAX) {
        return -EINVAL;
    }
    for (uint32_t i = 0; i < count; i++) {
        if (want[i].enabled && (want[i].initialize_from >= (int32_t)count ||
                                want[i].initialize_from == (int32_t)i)) {
            return -EINVAL;
        }
    }
    memcpy(xp->want, want, count * sizeof(*want));
    if (raft_node_role(xp->p->raft) != RAFT_LEADER || xp->x->closing) {
        return 1; /* followers know their state from the configuration */
    }
    for (uint32_t i = 0; i < count; i++) {
        int rv = export_want_one(xp, i, queued);
        if (rv < 0) {
            return rv;
        }
        if (rv == 0) {
            settled = 0;
        }
    }
    return settled;
}

/* ------------------------------------------------------------------------
 * Pause
 * --------------------------------------------------------------------- */

void broker_export_set_phase(struct broker_export *x,
                             enum broker_export_phase phase)
{
    x->phase = phase;
    for (uint32_t i = 0; i < x->part_count; i++) {
        struct exporter_director *d = x->parts[i]->director;
        if (d == NULL) {
            continue;
        }
        if (phase == BROKER_EXPORT_EXPORTING) {
            exporter_director_resume(d);
        } else {
            exporter_director_pause(d, phase == BROKER_EXPORT_SOFT_PAUSED);
        }
    }
}

enum broker_export_phase broker_export_phase(const struct broker_export *x)
{
    return x->phase;
}

const char *broker_export_phase_name(enum broker_export_phase phase)
{
    switch (phase) {
    case BROKER_EXPORT_PAUSED:
        return "PAUSED";
    case BROKER_EXPORT_SOFT_PAUSED:
        return "SOFT_PAUSED";
    default:
        return "EXPORTING";
    }
}
