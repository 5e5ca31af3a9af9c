/* partition.c: a partition's command queue, processing rounds, applying
 * committed entries to the engine, and answering requests.
 *
 * Writing (leader): partition_submit() turns a request into a COMMAND
 * record (engine_command_from_request) and queues it. partition_process()
 * runs one engine round over the queue once everything in the log is
 * applied and no round is in flight, and proposes the resulting
 * RecordBatch as one entry (stop-and-wait, see broker/engine/engine.h):
 * a new leader therefore starts from the committed state with nothing to
 * reprocess, and waits for its own term's first entry to apply before it
 * processes anything.
 *
 * Applying (every replica): partition_apply() decodes each committed
 * entry and hands it to the engine inside one state transaction. The
 * engine reports records that answer a request (request_node is us) and
 * job types that became activatable; both are acted on after the
 * transaction commits: responses built by engine_response_build() go out
 * through the answer callback, parked AwaitJobs requests are woken.
 *
 * Requests themselves are tracked by the broker (ids, deadlines,
 * connections); a request whose record never applies (lost with a
 * deposed leader's uncommitted entry) times out there.
 */
#define _POSIX_C_SOURCE 200809L
#include "broker/partition.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PARTITION_ANSWERS_INITIAL 16u
#define PARTITION_TYPES_MAX 64u

const char *partition_strerror(int rv)
{
    switch (rv) {
    case 0:
        return "success";
#define PARTITION__ERRNO_CASE(name, value, text)                               \
    case (value):                                                              \
        return (text);
        PARTITION_ERRNO_MAP(PARTITION__ERRNO_CASE)
#undef PARTITION__ERRNO_CASE
    default:
        return "unknown partition error";
    }
}

uint64_t partition_key(uint32_t partition_id, uint64_t counter)
{
    assert(counter < ((uint64_t)1 << PARTITION_KEY_BITS));
    return ((uint64_t)partition_id << PARTITION_KEY_BITS) | counter;
}

uint32_t partition_for_correlation_key(const char *correlation_key,
                                       uint32_t partitions_count)
{
    /* Java String.hashCode-style over the signed UTF-8 bytes, with 32-bit
     * wrap-around; partition = |h % count| + 1 (Zeebe SubscriptionUtil). */
    uint32_t h = 0;
    int32_t sh;
    int32_t rem;

    assert(partitions_count > 0);
    for (const unsigned char *c = (const unsigned char *)correlation_key;
         *c != '\0'; c++) {
        int32_t b = (int8_t)*c;
        h = 31u * h + (uint32_t)b;
    }
    memcpy(&sh, &h, sizeof(sh));
    rem = sh % (int32_t)partitions_count;
    if (rem < 0) {
        rem = -rem;
    }
    return (uint32_t)rem + 1;
}

int partition_init(struct partition *p, const struct partition_options *opt,
                   struct raft_node *raft, char *err, size_t errlen)
{
    struct engine_options eo;
    int rv;

    if (opt->partition_id == 0 || opt->requests_max == 0 || raft == NULL ||
        opt->answer == NULL || opt->state_dir == NULL ||
        opt->partitions_count < opt->partition_id) {
        snprintf(err, errlen, "invalid partition options");
        return PARTITION_E_INVALID;
    }
    memset(p, 0, sizeof(*p));
    p->opt = *opt;
    p->queue_max = 2 * opt->requests_max;
    p->queue = calloc(p->queue_max, sizeof(*p->queue));
    p->waiters = calloc(PARTITION_WAITERS_MAX, sizeof(*p->waiters));
    if (p->queue == NULL || p->waiters == NULL) {
        free(p->queue);
        free(p->waiters);
        snprintf(err, errlen, "out of memory");
        return PARTITION_E_NOMEM;
    }
    memset(&eo, 0, sizeof(eo));
    eo.dir = opt->state_dir;
    eo.partition_id = opt->partition_id;
    eo.partitions_count = opt->partitions_count;
    eo.broker_version = opt->broker_version;
    rv = engine_open(&p->engine, &eo, err, errlen);
    if (rv != 0) {
        free(p->queue);
        free(p->waiters);
        return rv == ENGINE_E_NOMEM ? PARTITION_E_NOMEM : PARTITION_E_IO;
    }
    p->raft = raft;
    p->health = PARTITION_HEALTHY;
    return 0;
}

static void waiter_free(struct partition_waiter *w)
{
    for (size_t i = 0; i < w->n_types; i++) {
        free(w->types[i]);
    }
    free(w->types);
    memset(w, 0, sizeof(*w));
}

void partition_close(struct partition *p)
{
    while (p->queue_count > 0) {
        engine_record_free(p->queue[p->queue_head]);
        p->queue_head = (p->queue_head + 1) % p->queue_max;
        p->queue_count--;
    }
    for (uint32_t i = 0; i < p->waiter_count; i++) {
        waiter_free(&p->waiters[i]);
    }
    engine_close(p->engine);
    p->engine = NULL;
    raft_node_free(p->raft);
    p->raft = NULL;
    free(p->queue);
    p->queue = NULL;
    free(p->waiters);
    p->waiters = NULL;
}

uint64_t partition_applied_index(const struct partition *p)
{
    return engine_applied_index(p->engine);
}

/* ------------------------------------------------------------------------
 * Answers
 * --------------------------------------------------------------------- */

static void partition_answer_error(struct partition *p, uint64_t request_id,
                                   Tandem__Command__Code code,
                                   uint32_t leader_hint, const char *message)
{
    Tandem__Command__Response resp = TANDEM__COMMAND__RESPONSE__INIT;
    Tandem__Command__Error error = TANDEM__COMMAND__ERROR__INIT;

    error.code = code;
    error.message = (char *)message;
    error.leader_hint = leader_hint;
    resp.body_case = TANDEM__COMMAND__RESPONSE__BODY_ERROR;
    resp.error = &error;
    p->opt.answer(p->opt.answer_data, request_id, &resp);
}

static bool record_is_ours(const struct partition *p,
                           const Tandem__Record__Record *rec)
{
    return rec->request_id != 0 && rec->request_node == p->opt.node_id;
}

/* Answers a command that will not be processed here after all. */
static void partition_drop_command(struct partition *p,
                                   Tandem__Record__Record *rec,
                                   Tandem__Command__Code code,
                                   const char *message)
{
    if (record_is_ours(p, rec)) {
        partition_answer_error(p, rec->request_id, code,
                               (uint32_t)raft_node_leader(p->raft), message);
    }
    engine_record_free(rec);
}

/* ------------------------------------------------------------------------
 * Queue
 * --------------------------------------------------------------------- */

static int partition_check_leader(struct partition *p, char *message,
                                  size_t message_len)
{
    if (p->health == PARTITION_DEAD) {
        snprintf(message, message_len, "partition %u is dead: %s",
                 p->opt.partition_id, p->health_reason);
        return PARTITION_E_DEAD;
    }
    if (raft_node_role(p->raft) != RAFT_LEADER) {
        snprintf(message, message_len,
                 "Expected to handle client message on the leader of "
                 "partition '%u', but this node is not the leader for it",
                 p->opt.partition_id);
        return PARTITION_E_NOT_LEADER;
    }
    return 0;
}

static int partition_enqueue(struct partition *p, Tandem__Record__Record *rec,
                             char *message, size_t message_len)
{
    bool exempt = engine_command_is_exempt(rec);
    uint32_t normal = p->queue_count - p->queue_exempt;

    if (p->queue_count >= p->queue_max ||
        (!exempt && normal >= p->opt.requests_max)) {
        snprintf(message, message_len,
                 "Reached maximum capacity of requests handled");
        engine_record_free(rec);
        return PARTITION_E_BUSY;
    }
    p->queue[(p->queue_head + p->queue_count) % p->queue_max] = rec;
    p->queue_count++;
    if (exempt) {
        p->queue_exempt++;
    }
    return 0;
}

int partition_submit(struct partition *p, uint64_t request_id,
                     const Tandem__Command__Request *req, char *message,
                     size_t message_len)
{
    Tandem__Record__Record *rec = NULL;
    int rv;

    message[0] = '\0';
    rv = partition_check_leader(p, message, message_len);
    if (rv != 0) {
        return rv;
    }
    rv = engine_command_from_request(p->engine, req, p->opt.node_id,
                                     request_id, &rec, message, message_len);
    if (rv != 0) {
        return rv == ENGINE_E_NOMEM ? PARTITION_E_NOMEM : PARTITION_E_INVALID;
    }
    return partition_enqueue(p, rec, message, message_len);
}

int partition_submit_distributed(struct partition *p, uint64_t request_id,
                                 const Tandem__Command__DistributeRequest *d,
                                 char *message, size_t message_len)
{
    Tandem__Record__Record *rec = NULL;
    int rv;

    message[0] = '\0';
    rv = partition_check_leader(p, message, message_len);
    if (rv != 0) {
        return rv;
    }
    rv = engine_command_from_distribute(p->engine, d, &rec, message,
                                        message_len);
    if (rv != 0) {
        return rv == ENGINE_E_NOMEM ? PARTITION_E_NOMEM : PARTITION_E_INVALID;
    }
    rec->request_node = p->opt.node_id;
    rec->request_id = request_id;
    return partition_enqueue(p, rec, message, message_len);
}

int partition_submit_internal(struct partition *p, Tandem__Record__Record *rec)
{
    char message[256];
    int rv = partition_check_leader(p, message, sizeof(message));

    if (rv != 0) {
        engine_record_free(rec);
        return rv;
    }
    return partition_enqueue(p, rec, message, sizeof(message));
}

int partition_distribution_acked(struct partition *p,
                                 uint64_t distribution_key, uint32_t target)
{
    Tandem__Record__Record *rec = NULL;
    char message[256];
    int rv;

    rv = partition_check_leader(p, message, sizeof(message));
    if (rv != 0) {
        return rv;
    }
    rv = engine_distribution_ack_command(p->engine, distribution_key, target,
                                         &rec);
    if (rv != 0) {
        return rv == ENGINE_E_NOMEM ? PARTITION_E_NOMEM : PARTITION_E_INVALID;
    }
    return partition_enqueue(p, rec, message, sizeof(message));
}

/* ------------------------------------------------------------------------
 * AwaitJobs
 * --------------------------------------------------------------------- */

static void partition_answer_waiter(struct partition *p, uint32_t i,
                                    bool available, const char *type)
{
    Tandem__Command__Response resp = TANDEM__COMMAND__RESPONSE__INIT;
    Tandem__Command__AwaitJobsResponse aw =
        TANDEM__COMMAND__AWAIT_JOBS_RESPONSE__INIT;
    char *types[1];
    struct partition_waiter w;

    assert(i < p->waiter_count);
    w = p->waiters[i];
    p->waiters[i] = p->waiters[p->waiter_count - 1];
    p->waiter_count--;
    aw.available = available;
    if (type != NULL) {
        types[0] = (char *)type;
        aw.types = types;
        aw.n_types = 1;
    }
    resp.body_case = TANDEM__COMMAND__RESPONSE__BODY_AWAIT_JOBS;
    resp.await_jobs = &aw;
    p->opt.answer(p->opt.answer_data, w.request_id, &resp);
    waiter_free(&w);
}

int partition_await_jobs(struct partition *p, uint64_t request_id,
                         uint64_t deadline,
                         const Tandem__Command__AwaitJobsRequest *req)
{
    Tandem__Command__Response resp = TANDEM__COMMAND__RESPONSE__INIT;
    Tandem__Command__AwaitJobsResponse aw =
        TANDEM__COMMAND__AWAIT_JOBS_RESPONSE__INIT;
    struct partition_waiter *w;
    char message[256];
    int rv;

    rv = partition_check_leader(p, message, sizeof(message));
    if (rv != 0) {
        return rv;
    }
    for (size_t i = 0; i < req->n_types; i++) {
        if (engine_jobs_activatable(p->engine, req->types[i])) {
            char *types[1] = {req->types[i]};
            aw.available = true;
            aw.types = types;
            aw.n_types = 1;
            resp.body_case = TANDEM__COMMAND__RESPONSE__BODY_AWAIT_JOBS;
            resp.await_jobs = &aw;
            p->opt.answer(p->opt.answer_data, request_id, &resp);
            return 0;
        }
    }
    if (p->waiter_count >= PARTITION_WAITERS_MAX || req->n_types == 0) {
        return PARTITION_E_BUSY;
    }
    w = &p->waiters[p->waiter_count];
    memset(w, 0, sizeof(*w));
    w->types = calloc(req->n_types, sizeof(*w->types));
    if (w->types == NULL) {
        return PARTITION_E_NOMEM;
    }
    for (size_t i = 0; i < req->n_types; i++) {
        w->types[i] = strdup(req->types[i]);
        if (w->types[i] == NULL) {
            waiter_free(w);
            return PARTITION_E_NOMEM;
        }
        w->n_types++;
    }
    w->request_id = request_id;
    w->deadline = deadline;
    p->waiter_count++;
    return 0;
}

/* Wakes the waiters interested in type (NULL: all of them). */
static void partition_wake(struct partition *p, const char *type,
                           bool available)
{
    uint32_t i = 0;
    while (i < p->waiter_count) {
        struct partition_waiter *w = &p->waiters[i];
        bool match = type == NULL;
        for (size_t k = 0; !match && k < w->n_types; k++) {
            match = strcmp(w->types[k], type) == 0;
        }
        if (match) {
            partition_answer_waiter(p, i, available, type);
            continue; /* slot i now holds another waiter */
        }
        i++;
    }
}

void partition_expire(struct partition *p, uint64_t now_ms)
{
    uint32_t i = 0;
    while (i < p->waiter_count) {
        if (p->waiters[i].deadline <= now_ms) {
            partition_answer_waiter(p, i, false, NULL);
            continue;
        }
        i++;
    }
}

/* ------------------------------------------------------------------------
 * Processing
 * --------------------------------------------------------------------- */

static bool partition_ready(const struct partition *p)
{
    return p->health != PARTITION_DEAD &&
           raft_node_role(p->raft) == RAFT_LEADER &&
           raft_node_applied_index(p->raft) == raft_node_last_index(p->raft) &&
           engine_applied_index(p->engine) >=
               raft_node_applied_index(p->raft) &&
           (p->inflight_index == 0 ||
            p->inflight_index <= raft_node_applied_index(p->raft));
}

/* Removes the first n commands from the queue (they are in cmds). */
static void partition_queue_pop(struct partition *p,
                                Tandem__Record__Record *const *cmds, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert(p->queue_count > 0);
        assert(p->queue[p->queue_head] == cmds[i]);
        if (engine_command_is_exempt(cmds[i])) {
            assert(p->queue_exempt > 0);
            p->queue_exempt--;
        }
        p->queue[p->queue_head] = NULL;
        p->queue_head = (p->queue_head + 1) % p->queue_max;
        p->queue_count--;
    }
}

int partition_process(struct partition *p, uint64_t now_ms)
{
    Tandem__Record__Record *cmds[256];
    struct engine_round round;
    struct raft_event ev;
    struct raft_buf buf;
    raft_index first = 0;
    raft_index expected;
    size_t n = 0;
    size_t consumed;
    int rv;

    if (p->inflight_index != 0 &&
        p->inflight_index <= raft_node_applied_index(p->raft)) {
        p->inflight_index = 0;
    }
    if (!partition_ready(p)) {
        return 0;
    }
    if (p->queue_count == 0 && engine_next_due(p->engine) > now_ms) {
        return 0;
    }
    while (n < p->queue_count && n < sizeof(cmds) / sizeof(cmds[0])) {
        cmds[n] = p->queue[(p->queue_head + n) % p->queue_max];
        n++;
    }
    expected = raft_node_last_index(p->raft) + 1;
    memset(&round, 0, sizeof(round));
    rv = engine_process(p->engine, now_ms, expected << PARTITION_POSITION_BITS,
                        cmds, n, &round);
    if (rv != 0) {
        /* The state could not be read or memory ran out: fail the
         * commands rather than spin on them. */
        partition_queue_pop(p, cmds, n);
        for (size_t i = 0; i < n; i++) {
            partition_drop_command(p, cmds[i], TANDEM__COMMAND__CODE__INTERNAL,
                                   "the partition could not process the "
                                   "command");
        }
        engine_round_free(&round);
        return rv == ENGINE_E_NOMEM ? PARTITION_E_NOMEM : PARTITION_E_IO;
    }
    assert(round.consumed <= n);
    consumed = round.consumed;
    partition_queue_pop(p, cmds, consumed);
    if (round.batch == NULL) {
        /* Nothing to write (a timer found nothing to do). */
        for (size_t i = 0; i < consumed; i++) {
            engine_record_free(cmds[i]);
        }
        engine_round_free(&round);
        return 0;
    }
    buf.base = round.batch;
    buf.len = round.batch_len;
    memset(&ev, 0, sizeof(ev));
    ev.type = RAFT_EVENT_PROPOSE;
    ev.now = now_ms;
    ev.propose.bufs = &buf;
    ev.propose.count = 1;
    ev.propose.first_index = &first;
    rv = raft_node_step(p->raft, &ev, NULL);
    engine_round_free(&round);
    if (rv != 0) {
        char message[160];
        snprintf(message, sizeof(message), "partition %u: %s",
                 p->opt.partition_id, raft_strerror(rv));
        for (size_t i = 0; i < consumed; i++) {
            partition_drop_command(
                p, cmds[i],
                rv == RAFT_E_NOT_LEADER
                    ? TANDEM__COMMAND__CODE__NOT_LEADER
                    : TANDEM__COMMAND__CODE__RESOURCE_EXHAUSTED,
                message);
        }
        return rv == RAFT_E_NOT_LEADER ? PARTITION_E_NOT_LEADER
                                       : PARTITION_E_BUSY;
    }
    assert(first == expected);
    p->inflight_index = first;
    p->rounds++;
    p->commands_processed += consumed;
    for (size_t i = 0; i < consumed; i++) {
        engine_record_free(cmds[i]);
    }
    return 1;
}

/* ------------------------------------------------------------------------
 * Applying
 * --------------------------------------------------------------------- */

struct partition_pending_answer {
    uint64_t request_id;
    Tandem__Command__Response *resp;
};

struct partition_apply_ctx {
    struct partition *p;
    struct partition_pending_answer *answers;
    size_t n_answers;
    size_t cap_answers;
    char *types[PARTITION_TYPES_MAX];
    size_t n_types;
    bool types_overflow;
    bool nomem;
};

static void partition_hook_answer(void *data, const Tandem__Record__Record *rec,
                                  uint64_t position)
{
    struct partition_apply_ctx *ctx = data;
    Tandem__Command__Response *resp = NULL;

    (void)position;
    if (!record_is_ours(ctx->p, rec)) {
        return;
    }
    if (ctx->n_answers == ctx->cap_answers) {
        size_t cap = ctx->cap_answers == 0 ? PARTITION_ANSWERS_INITIAL
                                           : 2 * ctx->cap_answers;
        struct partition_pending_answer *n =
            realloc(ctx->answers, cap * sizeof(*n));
        if (n == NULL) {
            ctx->nomem = true;
            return;
        }
        ctx->answers = n;
        ctx->cap_answers = cap;
    }
    if (engine_response_build(rec, 0, &resp) != 0) {
        ctx->nomem = true;
        return;
    }
    ctx->answers[ctx->n_answers].request_id = rec->request_id;
    ctx->answers[ctx->n_answers].resp = resp;
    ctx->n_answers++;
}

static void partition_hook_jobs(void *data, const char *type)
{
    struct partition_apply_ctx *ctx = data;

    if (ctx->p->waiter_count == 0 || ctx->types_overflow) {
        return;
    }
    for (size_t i = 0; i < ctx->n_types; i++) {
        if (strcmp(ctx->types[i], type) == 0) {
            return;
        }
    }
    if (ctx->n_types == PARTITION_TYPES_MAX) {
        ctx->types_overflow = true;
        return;
    }
    ctx->types[ctx->n_types] = strdup(type);
    if (ctx->types[ctx->n_types] == NULL) {
        ctx->types_overflow = true;
        return;
    }
    ctx->n_types++;
}

static void partition_mark_dead(struct partition *p, const char *reason)
{
    p->health = PARTITION_DEAD;
    snprintf(p->health_reason, sizeof(p->health_reason), "%s", reason);
    fprintf(stderr, "partition %u is dead: %s\n", p->opt.partition_id,
            reason);
}

int partition_apply(struct partition *p, const struct raft_entry *entries,
                    size_t count)
{
    struct partition_apply_ctx ctx;
    struct engine_apply_hooks hooks;
    int rv = 0;

    if (p->health == PARTITION_DEAD) {
        return PARTITION_E_DEAD;
    }
    if (count == 0) {
        return 0;
    }
    memset(&ctx, 0, sizeof(ctx));
    ctx.p = p;
    hooks.answer = partition_hook_answer;
    hooks.jobs_available = partition_hook_jobs;
    hooks.data = &ctx;
    if (engine_apply_begin(p->engine) != 0) {
        partition_mark_dead(p, "the state transaction could not begin");
        return PARTITION_E_IO;
    }
    for (size_t i = 0; i < count && rv == 0; i++) {
        const struct raft_entry *e = &entries[i];
        Tandem__Record__RecordBatch *batch = NULL;

        if (e->type == RAFT_ENTRY_NORMAL) {
            batch = tandem__record__record_batch__unpack(NULL, e->buf.len,
                                                         e->buf.base);
            if (batch == NULL) {
                partition_mark_dead(p, "an entry does not decode as a "
                                       "record batch");
                rv = PARTITION_E_CORRUPT;
                break;
            }
        }
        if (engine_apply_entry(p->engine, e->index, batch, &hooks) != 0) {
            partition_mark_dead(p, "an entry holds an invalid record");
            rv = PARTITION_E_CORRUPT;
        }
        if (batch != NULL) {
            tandem__record__record_batch__free_unpacked(batch, NULL);
        }
    }
    if (engine_apply_end(p->engine) != 0 && rv == 0) {
        partition_mark_dead(p, "the state transaction could not commit");
        rv = PARTITION_E_IO;
    }
    if (p->inflight_index != 0 &&
        p->inflight_index <= entries[count - 1].index) {
        p->inflight_index = 0;
    }
    for (size_t i = 0; i < ctx.n_answers; i++) {
        if (rv == 0) {
            p->opt.answer(p->opt.answer_data, ctx.answers[i].request_id,
                          ctx.answers[i].resp);
        }
        engine_response_free(ctx.answers[i].resp);
    }
    free(ctx.answers);
    if (ctx.types_overflow) {
        partition_wake(p, NULL, true);
    }
    for (size_t i = 0; i < ctx.n_types; i++) {
        partition_wake(p, ctx.types[i], true);
        free(ctx.types[i]);
    }
    return rv;
}

void partition_role_changed(struct partition *p)
{
    if (raft_node_role(p->raft) == RAFT_LEADER) {
        p->inflight_index = 0;
        return;
    }
    while (p->queue_count > 0) {
        Tandem__Record__Record *rec = p->queue[p->queue_head];
        p->queue_head = (p->queue_head + 1) % p->queue_max;
        p->queue_count--;
        partition_drop_command(p, rec, TANDEM__COMMAND__CODE__NOT_LEADER,
                               "leadership changed before the command was "
                               "processed");
    }
    p->queue_exempt = 0;
    p->inflight_index = 0;
    /* Gateways retry the activation and learn the new leader. */
    partition_wake(p, NULL, true);
}

/* ------------------------------------------------------------------------
 * Snapshots
 * --------------------------------------------------------------------- */

int partition_snapshot_encode(const struct partition *p, void **out,
                              size_t *len)
{
    return engine_snapshot_encode(p->engine, out, len) == 0
               ? 0
               : PARTITION_E_NOMEM;
}

int partition_restore(struct partition *p, const void *data, size_t len)
{
    if (engine_snapshot_restore(p->engine, data, len) != 0) {
        partition_mark_dead(p, "snapshot does not decode");
        return PARTITION_E_CORRUPT;
    }
    return 0;
}
