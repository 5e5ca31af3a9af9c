/* client_jobs.c: job activation for the gateway's two server-streaming
 * RPCs, ActivateJobs and StreamActivatedJobs (Zeebe 8.4 semantics,
 * zeebe-facts 7), on top of the broker client's calls (client.c).
 *
 * One struct client_jobs per open RPC. Its life:
 *
 *   call_stream --> checks (INVALID_ARGUMENT with Zeebe's messages),
 *     bounds (jobs_max ActivateJobs, job_streams_max streams)
 *   ROUND: the partitions are visited one at a time, round robin from a
 *     start that rotates per job type; each partition with a known leader
 *     gets Request{activate_jobs} with the jobs still wanted (a stream:
 *     stream_batch per partition); a partition's jobs go to the client as
 *     one ActivateJobsResponse (a stream: one ActivatedJob message each).
 *     A rejection (INVALID_ARGUMENT, NOT_FOUND, ...) ends the RPC with
 *     it; RESOURCE_EXHAUSTED is noted; other failures skip the partition.
 *   end of a round, ActivateJobs: jobs activated -> OK; none and a broker
 *     said RESOURCE_EXHAUSTED -> RESOURCE_EXHAUSTED (Zeebe's message);
 *     none and no long polling (requestTimeout < 0) or the long-polling
 *     deadline passed -> OK with no jobs; else PARKED.
 *   end of a round, stream: jobs activated -> another round at once
 *     (paused while more than JOBS_STREAM_QUEUED_HIGH bytes wait unsent
 *     on the stream); none -> PARKED for one long-polling period.
 *   PARKED: Request{await_jobs{types: [type]}, timeout_ms = time left} to
 *     every partition leader (one per partition, kept across rounds);
 *     an answer "available" starts another round (or, during a round,
 *     one more after it); with no await in flight (no leader, an error)
 *     a round runs every job_probe_ms. At the deadline ActivateJobs ends
 *     OK with no jobs; a stream starts another round.
 *
 * StreamActivatedJobs is polling under the hood: Zeebe's brokers push
 * jobs to registered streams, Tandem's gateway activates them with the
 * same activate_jobs command and long polling, and pushes each job as
 * one stream message. It never ends by itself; the client cancels it.
 *
 * Jobs activated for a client that is gone (cancelled while the
 * activation was in flight, or a stream that cannot take them) are
 * failed back to their broker with their retries unchanged and no
 * backoff, so they are activatable again at once (Zeebe's
 * RoundRobinActivateJobsHandler does the same). A cancelled RPC whose
 * activation is in flight stays listed (without cb) until it answers.
 *
 * Timers: one client timer (jobs_timer) fires at the earliest deadline
 * or wake-up of all RPCs; its callback rescans after every action,
 * because a cb may start, cancel or end anything. */
#define _POSIX_C_SOURCE 200809L
#include "gateway/client_internal.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Partitions a parked RPC awaits jobs on; beyond them the probe finds
 * jobs (every job_probe_ms). */
#define JOBS_AWAITS_MAX 128u
/* A stream with more unsent bytes than this waits before activating
 * more jobs (the client reads slowly). */
#define JOBS_STREAM_QUEUED_HIGH (1u << 20)
#define JOBS_STREAM_PAUSE_MS 20u
#define JOBS_FAILBACK_MESSAGE "Failed to send activated jobs to client"

/* One await_jobs request of a parked RPC. */
struct jobs_await {
    struct client_jobs *jobs;
    uint32_t partition_id;
    struct client_call *call; /* in flight, or NULL */
};

struct client_jobs {
    struct client_jobs *prev, *next; /* in client->jobs */
    struct gateway_client *c;
    bool stream;                                   /* StreamActivatedJobs */
    gateway_backend_send_cb send;                  /* NULL once cancelled */
    gateway_backend_cb cb;                         /* NULL once cancelled */
    void *req_data;                                /* NULL once cancelled */
    GatewayProtocol__ActivateJobsRequest *request; /* owned */
    int32_t max;          /* ActivateJobs: maxJobsToActivate */
    int32_t activated;    /* ActivateJobs: jobs delivered */
    bool long_polling;    /* ActivateJobs: requestTimeout >= 0 */
    uint64_t deadline_ms; /* end of the long-polling wait */
    /* The current round. */
    bool activating;
    uint32_t round_count;           /* partitions of this round */
    uint32_t round_next;            /* next partition to visit */
    uint32_t round_left;            /* partitions still to visit */
    uint32_t round_jobs;            /* jobs activated in this round */
    bool resource_exhausted;        /* a broker answered it */
    bool notified;                  /* jobs became available meanwhile */
    struct client_call *activation; /* in flight, or NULL */
    uint64_t wake_ms;               /* next round (0: none planned) */
    uint32_t awaits_inflight;
    struct jobs_await awaits[JOBS_AWAITS_MAX];
};

static int jobs_failback_token; /* req_data of fail-back calls */

static void jobs_round_next(struct client_jobs *j);
static void jobs_schedule(struct gateway_client *c);

/* ------------------------------------------------------------------------
 * Helpers
 * --------------------------------------------------------------------- */

static uint64_t jobs_now(const struct gateway_client *c)
{
    return uv_now(c->loop);
}

/* The first partition of a round: rotates per job type (Zeebe keeps one
 * round-robin dispatcher per type), hashed into a small table. */
static uint32_t jobs_round_start_partition(struct gateway_client *c,
                                           const char *type, uint32_t count)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    uint32_t slot;

    assert(count >= 1);
    for (const unsigned char *p = (const unsigned char *)type; *p != '\0';
         p++) {
        h = (h ^ *p) * 16777619u;
    }
    slot = h % (uint32_t)(sizeof(c->rr_types) / sizeof(c->rr_types[0]));
    return c->rr_types[slot]++ % count + 1;
}

static void jobs_unlink(struct gateway_client *c, struct client_jobs *j)
{
    if (j->prev != NULL) {
        j->prev->next = j->next;
    } else {
        assert(c->jobs == j);
        c->jobs = j->next;
    }
    if (j->next != NULL) {
        j->next->prev = j->prev;
    }
    j->prev = j->next = NULL;
    if (j->stream) {
        assert(c->streams_count > 0);
        c->streams_count--;
    } else {
        assert(c->jobs_count > 0);
        c->jobs_count--;
    }
}

static void jobs_free(struct client_jobs *j)
{
    assert(j->activation == NULL);
    assert(j->awaits_inflight == 0);
    if (j->request != NULL) {
        gateway_protocol__activate_jobs_request__free_unpacked(j->request,
                                                               NULL);
    }
    free(j);
}

static void jobs_awaits_cancel(struct client_jobs *j)
{
    for (uint32_t i = 0; i < JOBS_AWAITS_MAX && j->awaits_inflight > 0; i++) {
        if (j->awaits[i].call != NULL) {
            client__call_cancel(j->c, j->awaits[i].call);
            j->awaits[i].call = NULL;
            j->awaits_inflight--;
        }
    }
    assert(j->awaits_inflight == 0);
}

/* Ends the RPC: unlinks and frees it, then runs its cb. */
static void jobs_end(struct client_jobs *j, int status, const char *message)
{
    struct gateway_client *c = j->c;
    gateway_backend_cb cb = j->cb;
    void *req_data = j->req_data;
    char msg[400];

    assert(!j->activating);
    assert(j->activation == NULL);
    assert(cb != NULL);
    snprintf(msg, sizeof(msg), "%s", message != NULL ? message : "");
    jobs_awaits_cancel(j);
    jobs_unlink(c, j);
    jobs_free(j);
    jobs_schedule(c);
    cb(req_data, status, msg, NULL);
}

static void jobs_failback_cb(void *req_data, int status, const char *message,
                             const ProtobufCMessage *response)
{
    (void)status; /* best effort: a lost fail-back times out instead */
    (void)message;
    (void)response;
    assert(req_data == &jobs_failback_token);
}

/* Fails jobs[0..n) back to their brokers (retries unchanged, no
 * backoff): activated but not delivered, they become activatable again
 * instead of waiting for their timeout. */
static void jobs_failback(struct gateway_client *c,
                          GatewayProtocol__ActivatedJob *const *jobs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        GatewayProtocol__FailJobRequest fr =
            GATEWAY_PROTOCOL__FAIL_JOB_REQUEST__INIT;
        struct client_call_spec spec;

        fr.jobkey = jobs[i]->key;
        fr.retries = jobs[i]->retries;
        fr.errormessage = JOBS_FAILBACK_MESSAGE;
        memset(&spec, 0, sizeof(spec));
        spec.body_case = TANDEM__COMMAND__REQUEST__BODY_FAIL_JOB;
        spec.body = &fr.base;
        spec.route = CLIENT_ROUTE_KEY;
        spec.key = fr.jobkey;
        c->stats.jobs_failed_back++;
        (void)client__call_start(c, &spec, jobs_failback_cb,
                                 &jobs_failback_token, NULL);
    }
}

/* Hands the jobs of one partition's answer to the client. Returns true,
 * or false when the stream could not take them (they were failed
 * back). */
static bool jobs_deliver(struct client_jobs *j,
                         const GatewayProtocol__ActivateJobsResponse *resp)
{
    struct gateway_client *c = j->c;

    assert(resp->n_jobs > 0);
    if (!j->stream) {
        if (j->send(j->req_data, &resp->base) < 0) {
            jobs_failback(c, resp->jobs, resp->n_jobs);
            return false;
        }
        c->stats.jobs_activated += resp->n_jobs;
        return true;
    }
    for (size_t i = 0; i < resp->n_jobs; i++) {
        if (j->send(j->req_data, &resp->jobs[i]->base) < 0) {
            jobs_failback(c, resp->jobs + i, resp->n_jobs - i);
            return false;
        }
        c->stats.jobs_activated++;
    }
    return true;
}

/* Whether a failed activation is a rejection that ends the RPC. */
static bool jobs_status_rejection(int status)
{
    return status == GATEWAY_STATUS_INVALID_ARGUMENT ||
           status == GATEWAY_STATUS_NOT_FOUND ||
           status == GATEWAY_STATUS_ALREADY_EXISTS ||
           status == GATEWAY_STATUS_FAILED_PRECONDITION ||
           status == GATEWAY_STATUS_PERMISSION_DENIED;
}

/* ------------------------------------------------------------------------
 * Rounds and long polling
 * --------------------------------------------------------------------- */

static void jobs_round_start(struct client_jobs *j)
{
    struct gateway_client *c = j->c;
    uint32_t count = client__partitions_count(c);

    assert(!j->activating);
    assert(j->activation == NULL);
    j->activating = true;
    j->round_count = count;
    j->round_left = count;
    j->round_jobs = 0;
    j->resource_exhausted = false;
    j->notified = false;
    j->wake_ms = 0;
    if (count > 0) {
        j->round_next = jobs_round_start_partition(c, j->request->type, count);
    }
    c->stats.job_rounds++;
    jobs_round_next(j);
}

static void jobs_await_cb(void *req_data, int status, const char *message,
                          const ProtobufCMessage *response)
{
    struct jobs_await *a = req_data;
    struct client_jobs *j = a->jobs;
    uint64_t now = jobs_now(j->c);
    bool available = false;

    (void)message;
    assert(a->call != NULL);
    assert(j->awaits_inflight > 0);
    assert(j->req_data != NULL); /* awaits end with the RPC */
    a->call = NULL;
    j->awaits_inflight--;
    if (status == GATEWAY_STATUS_OK) {
        assert(response->descriptor ==
               &tandem__command__await_jobs_response__descriptor);
        available =
            ((const Tandem__Command__AwaitJobsResponse *)response)->available;
    }
    if (available) {
        if (j->activating) {
            j->notified = true;
        } else {
            j->wake_ms = now;
        }
    } else if (!j->activating && j->awaits_inflight == 0) {
        /* Nobody will tell us: probe. */
        uint64_t probe = now + j->c->opts.job_probe_ms;
        j->wake_ms = probe < j->deadline_ms ? probe : j->deadline_ms;
    }
    jobs_schedule(j->c);
}

/* Waits for jobs until deadline_ms: an await_jobs on every partition
 * leader that has none in flight. */
static void jobs_park(struct client_jobs *j)
{
    struct gateway_client *c = j->c;
    uint64_t now = jobs_now(c);
    uint32_t count = client__partitions_count(c);
    uint32_t n = count < JOBS_AWAITS_MAX ? count : JOBS_AWAITS_MAX;
    char *types[1];
    uint64_t probe;

    assert(!j->activating);
    assert(j->deadline_ms > now);
    types[0] = j->request->type;
    for (uint32_t p = 1; p <= n; p++) {
        struct jobs_await *a = &j->awaits[p - 1];
        Tandem__Command__AwaitJobsRequest ar =
            TANDEM__COMMAND__AWAIT_JOBS_REQUEST__INIT;
        struct client_call_spec spec;

        if (a->call != NULL || !client__leader_known(c, p)) {
            continue;
        }
        ar.n_types = 1;
        ar.types = types;
        memset(&spec, 0, sizeof(spec));
        spec.body_case = TANDEM__COMMAND__REQUEST__BODY_AWAIT_JOBS;
        spec.body = &ar.base;
        spec.route = CLIENT_ROUTE_FIXED;
        spec.partition_id = p;
        spec.broker_timeout_ms = j->deadline_ms - now;
        spec.deadline_ms = j->deadline_ms + CLIENT_BROKER_SLACK_MS;
        spec.once = true;
        a->jobs = j;
        a->partition_id = p;
        if (client__call_start(c, &spec, jobs_await_cb, a, &a->call) == 0) {
            assert(a->call != NULL);
            j->awaits_inflight++;
            c->stats.job_awaits++;
        }
    }
    j->wake_ms = j->deadline_ms;
    if (j->awaits_inflight == 0 || count > n) {
        probe = now + c->opts.job_probe_ms;
        if (probe < j->wake_ms) {
            j->wake_ms = probe;
        }
    }
}

static void jobs_round_end(struct client_jobs *j)
{
    struct gateway_client *c = j->c;
    uint64_t now = jobs_now(c);
    char why[400];

    assert(j->activating);
    assert(j->activation == NULL);
    j->activating = false;
    if (!j->stream) {
        if (j->activated > 0) {
            jobs_end(j, GATEWAY_STATUS_OK, NULL);
            return;
        }
        if (j->resource_exhausted) {
            snprintf(why, sizeof(why),
                     "Expected to activate jobs of type '%.200s', but no "
                     "jobs available and at least one broker returned "
                     "'RESOURCE_EXHAUSTED'. Please try again later.",
                     j->request->type);
            jobs_end(j, GATEWAY_STATUS_RESOURCE_EXHAUSTED, why);
            return;
        }
        if (!j->long_polling || now >= j->deadline_ms) {
            jobs_end(j, GATEWAY_STATUS_OK, NULL);
            return;
        }
        if (j->notified) {
            j->wake_ms = now;
        } else {
            jobs_park(j);
        }
        jobs_schedule(c);
        return;
    }
    if (j->round_jobs > 0 || j->notified) {
        int64_t queued = j->send(j->req_data, NULL);
        j->wake_ms = queued >= 0 && queued <= (int64_t)JOBS_STREAM_QUEUED_HIGH
                         ? now
                         : now + JOBS_STREAM_PAUSE_MS;
    } else if (j->resource_exhausted) {
        j->wake_ms = now + c->opts.job_probe_ms;
    } else {
        j->deadline_ms = now + c->opts.long_polling_ms;
        jobs_park(j);
    }
    jobs_schedule(c);
}

static void jobs_activation_cb(void *req_data, int status, const char *message,
                               const ProtobufCMessage *response)
{
    struct client_jobs *j = req_data;
    struct gateway_client *c = j->c;
    const GatewayProtocol__ActivateJobsResponse *resp = NULL;

    assert(j->activation != NULL);
    j->activation = NULL;
    if (status == GATEWAY_STATUS_OK) {
        assert(response->descriptor ==
               &gateway_protocol__activate_jobs_response__descriptor);
        resp = (const void *)response;
    }
    if (j->req_data == NULL) {
        /* Cancelled meanwhile: nobody takes these jobs. */
        if (resp != NULL) {
            jobs_failback(c, resp->jobs, resp->n_jobs);
        }
        jobs_unlink(c, j);
        j->activating = false;
        jobs_free(j);
        jobs_schedule(c);
        return;
    }
    if (resp != NULL && resp->n_jobs > 0) {
        if (!jobs_deliver(j, resp)) {
            j->activating = false;
            if (!j->stream) {
                jobs_end(j, GATEWAY_STATUS_CANCELLED, JOBS_FAILBACK_MESSAGE);
                return;
            }
            /* A full stream: try again once it drained. */
            j->wake_ms = jobs_now(c) + JOBS_STREAM_PAUSE_MS;
            jobs_schedule(c);
            return;
        }
        j->round_jobs += (uint32_t)resp->n_jobs;
        if (!j->stream) {
            j->activated += (int32_t)resp->n_jobs;
        }
    } else if (resp == NULL && jobs_status_rejection(status)) {
        j->activating = false;
        jobs_end(j, status, message);
        return;
    } else if (status == GATEWAY_STATUS_RESOURCE_EXHAUSTED) {
        j->resource_exhausted = true;
    }
    jobs_round_next(j);
}

/* Asks the next partition of the round, or ends the round. */
static void jobs_round_next(struct client_jobs *j)
{
    struct gateway_client *c = j->c;

    assert(j->activating);
    assert(j->activation == NULL);
    while (j->round_left > 0 && (j->stream || j->activated < j->max)) {
        uint32_t p = j->round_next;
        struct client_call_spec spec;
        int rv;

        j->round_next = p % j->round_count + 1;
        j->round_left--;
        if (!client__leader_known(c, p)) {
            continue; /* Zeebe skips partitions without a leader */
        }
        j->request->maxjobstoactivate =
            j->stream ? (int32_t)c->opts.stream_batch : j->max - j->activated;
        memset(&spec, 0, sizeof(spec));
        spec.body_case = TANDEM__COMMAND__REQUEST__BODY_ACTIVATE_JOBS;
        spec.body = &j->request->base;
        spec.route = CLIENT_ROUTE_FIXED;
        spec.partition_id = p;
        spec.once = true;
        rv =
            client__call_start(c, &spec, jobs_activation_cb, j, &j->activation);
        if (rv == 0) {
            assert(j->activation != NULL);
            return;
        }
        if (rv == GATEWAY_STATUS_RESOURCE_EXHAUSTED) {
            j->resource_exhausted = true; /* our own calls_max */
        }
    }
    jobs_round_end(j);
}

/* ------------------------------------------------------------------------
 * Timer
 * --------------------------------------------------------------------- */

/* Arms the jobs timer for the earliest deadline or wake-up. */
static void jobs_schedule(struct gateway_client *c)
{
    uint64_t due = 0;

    for (struct client_jobs *j = c->jobs; j != NULL; j = j->next) {
        uint64_t d = 0;
        if (j->req_data == NULL || j->activating) {
            continue;
        }
        if (!j->stream && j->long_polling) {
            d = j->deadline_ms;
        }
        if (j->wake_ms != 0 && (d == 0 || j->wake_ms < d)) {
            d = j->wake_ms;
        }
        if (d != 0 && (due == 0 || d < due)) {
            due = d;
        }
    }
    client__jobs_timer_arm(c, due);
}

void client__jobs_timer_cb(struct gateway_client *c)
{
    bool again = true;

    while (again && !c->closing) {
        uint64_t now = jobs_now(c);
        again = false;
        for (struct client_jobs *j = c->jobs; j != NULL; j = j->next) {
            if (j->req_data == NULL || j->activating) {
                continue;
            }
            if (!j->stream && j->long_polling && j->deadline_ms <= now) {
                jobs_end(j, GATEWAY_STATUS_OK, NULL); /* no jobs */
                again = true;
                break;
            }
            if (j->wake_ms != 0 && j->wake_ms <= now) {
                if (j->stream) {
                    int64_t queued = j->send(j->req_data, NULL);
                    if (queued < 0 ||
                        queued > (int64_t)JOBS_STREAM_QUEUED_HIGH) {
                        j->wake_ms = now + JOBS_STREAM_PAUSE_MS;
                        continue; /* still full */
                    }
                }
                jobs_round_start(j);
                again = true;
                break;
            }
        }
    }
    jobs_schedule(c);
}

/* ------------------------------------------------------------------------
 * Backend entry points
 * --------------------------------------------------------------------- */

/* Builds the activation request of a StreamActivatedJobs (fields
 * borrowed from r; the caller copies it). */
static void
jobs_stream_request(const GatewayProtocol__StreamActivatedJobsRequest *r,
                    GatewayProtocol__ActivateJobsRequest *out)
{
    GatewayProtocol__ActivateJobsRequest init =
        GATEWAY_PROTOCOL__ACTIVATE_JOBS_REQUEST__INIT;

    *out = init;
    out->type = r->type;
    out->worker = r->worker;
    out->timeout = r->timeout;
    out->n_fetchvariable = r->n_fetchvariable;
    out->fetchvariable = r->fetchvariable;
    out->n_tenantids = r->n_tenantids;
    out->tenantids = r->tenantids;
    out->requesttimeout = -1; /* the broker answers at once anyway */
}

bool client__jobs_call(struct gateway_client *c, const char *rpc,
                       const ProtobufCMessage *request, uint64_t deadline_ms,
                       gateway_backend_send_cb send, gateway_backend_cb cb,
                       void *req_data)
{
    GatewayProtocol__ActivateJobsRequest stream_req;
    const GatewayProtocol__ActivateJobsRequest *ar;
    struct client_jobs *j;
    uint64_t now = jobs_now(c);
    bool stream;
    char why[320];

    (void)deadline_ms; /* the gRPC server ends the call at its deadline */
    if (strcmp(rpc, "ActivateJobs") == 0) {
        stream = false;
        if (request->descriptor !=
            &gateway_protocol__activate_jobs_request__descriptor) {
            cb(req_data, GATEWAY_STATUS_INTERNAL, "wrong request type", NULL);
            return true;
        }
        ar = (const void *)request;
        /* The engine's JobBatchActivateProcessor checks, in its order. */
        if (ar->maxjobstoactivate < 1) {
            snprintf(why, sizeof(why),
                     "Command 'ACTIVATE' rejected with code "
                     "'INVALID_ARGUMENT': Expected to activate job batch "
                     "with max jobs to activate to be greater than zero, "
                     "but it was '%d'",
                     (int)ar->maxjobstoactivate);
        } else if (ar->timeout < 1) {
            snprintf(why, sizeof(why),
                     "Command 'ACTIVATE' rejected with code "
                     "'INVALID_ARGUMENT': Expected to activate job batch "
                     "with timeout to be greater than zero, but it was "
                     "'%lld'",
                     (long long)ar->timeout);
        } else if (ar->type == NULL || ar->type[0] == '\0') {
            snprintf(why, sizeof(why),
                     "Command 'ACTIVATE' rejected with code "
                     "'INVALID_ARGUMENT': Expected to activate job batch "
                     "with type to be present, but it was blank");
        } else {
            why[0] = '\0';
        }
        if (why[0] != '\0') {
            cb(req_data, GATEWAY_STATUS_INVALID_ARGUMENT, why, NULL);
            return true;
        }
        if (c->jobs_count >= c->opts.jobs_max) {
            snprintf(why, sizeof(why),
                     "Reached maximum capacity of ActivateJobs requests "
                     "handled by the gateway (%u); try again later",
                     (unsigned)c->opts.jobs_max);
            cb(req_data, GATEWAY_STATUS_RESOURCE_EXHAUSTED, why, NULL);
            return true;
        }
    } else if (strcmp(rpc, "StreamActivatedJobs") == 0) {
        const GatewayProtocol__StreamActivatedJobsRequest *sr;
        stream = true;
        if (request->descriptor !=
            &gateway_protocol__stream_activated_jobs_request__descriptor) {
            cb(req_data, GATEWAY_STATUS_INTERNAL, "wrong request type", NULL);
            return true;
        }
        sr = (const void *)request;
        if (sr->type == NULL || sr->type[0] == '\0') {
            cb(req_data, GATEWAY_STATUS_INVALID_ARGUMENT,
               "Expected to stream activated jobs with type to be present, "
               "but it was blank",
               NULL);
            return true;
        }
        if (sr->timeout < 1) {
            snprintf(why, sizeof(why),
                     "Expected to stream activated jobs with timeout to be "
                     "greater than zero, but it was '%lld'",
                     (long long)sr->timeout);
            cb(req_data, GATEWAY_STATUS_INVALID_ARGUMENT, why, NULL);
            return true;
        }
        if (c->streams_count >= c->opts.job_streams_max) {
            snprintf(why, sizeof(why),
                     "Reached maximum capacity of job streams handled by "
                     "the gateway (%u); try again later",
                     (unsigned)c->opts.job_streams_max);
            cb(req_data, GATEWAY_STATUS_RESOURCE_EXHAUSTED, why, NULL);
            return true;
        }
        jobs_stream_request(sr, &stream_req);
        ar = &stream_req;
    } else {
        return false;
    }
    j = calloc(1, sizeof(*j));
    if (j != NULL) {
        j->request =
            (GatewayProtocol__ActivateJobsRequest *)client__message_copy(
                &ar->base);
    }
    if (j == NULL || j->request == NULL) {
        free(j); /* UNTESTED: malloc failure */
        cb(req_data, GATEWAY_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
        return true;
    }
    j->c = c;
    j->stream = stream;
    j->send = send;
    j->cb = cb;
    j->req_data = req_data;
    j->max = stream ? 0 : ar->maxjobstoactivate;
    if (!stream) {
        /* requestTimeout: > 0 that long, 0 the default, < 0 no long
         * polling (zeebe-facts 7). */
        j->long_polling = ar->requesttimeout >= 0;
        j->deadline_ms =
            now + (ar->requesttimeout > 0 ? (uint64_t)ar->requesttimeout
                                          : c->opts.long_polling_ms);
        c->jobs_count++;
    } else {
        j->long_polling = true;
        c->streams_count++;
    }
    j->next = c->jobs;
    if (c->jobs != NULL) {
        c->jobs->prev = j;
    }
    c->jobs = j;
    jobs_round_start(j); /* may end j (no partitions, no long polling) */
    return true;
}

bool client__jobs_cancel(struct gateway_client *c, void *req_data)
{
    struct client_jobs *j;

    for (j = c->jobs; j != NULL; j = j->next) {
        if (j->req_data == req_data && req_data != NULL) {
            break;
        }
    }
    if (j == NULL) {
        return false;
    }
    jobs_awaits_cancel(j);
    j->send = NULL;
    j->cb = NULL;
    j->req_data = NULL;
    if (j->activation == NULL) {
        jobs_unlink(c, j);
        j->activating = false;
        jobs_free(j);
    }
    /* else: stays until its activation answers (jobs_activation_cb). */
    jobs_schedule(c);
    return true;
}

void client__jobs_close(struct gateway_client *c)
{
    while (c->jobs != NULL) {
        struct client_jobs *j = c->jobs;
        gateway_backend_cb cb = j->cb;
        void *req_data = j->req_data;

        jobs_awaits_cancel(j);
        if (j->activation != NULL) {
            client__call_cancel(c, j->activation);
            j->activation = NULL;
        }
        j->activating = false;
        jobs_unlink(c, j);
        jobs_free(j);
        if (cb != NULL) {
            cb(req_data, GATEWAY_STATUS_UNAVAILABLE, "gateway is shutting down",
               NULL);
        }
    }
}
