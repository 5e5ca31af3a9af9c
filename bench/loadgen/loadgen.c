/* loadgen.c: tandem-load, a load generator for a Tandem (or Zeebe 8.4)
 * gateway, speaking gRPC over HTTP/2 cleartext: PublishMessage, or the
 * one-task process workload (--workload process, see below).
 *
 * Data flow:
 *
 *   options -> C libuv TCP connections to 127.0.0.1:PORT, each with an
 *   nghttp2 client session (prior knowledge, no upgrade)
 *   -> dispatch(): takes a free slot (at most --in-flight, at most
 *      ceil(in_flight / C) per connection), packs a
 *      gateway_protocol.PublishMessageRequest into the slot (5-byte gRPC
 *      prefix + protobuf-c bytes), submits a POST
 *      /gateway_protocol.Gateway/PublishMessage stream
 *        closed loop (--in-flight N): refill whenever a slot frees;
 *        open loop (--rate R): request i is due at start + i / R; it is
 *        sent as soon as it is due and a slot is free, and its latency
 *        counts from that due time (no coordinated omission)
 *   -> conn_flush(): nghttp2_session_mem_send bytes -> one uv_write
 *   -> read_cb(): bytes -> nghttp2_session_mem_recv -> header/data/close
 *      callbacks fill the slot (:status, grpc-status, response body)
 *   -> slot_complete(): OK + parsable PublishMessageResponse -> latency
 *      histogram (hist.h); anything else -> an error counter by gRPC
 *      status or by transport failure (reset, connection lost, timeout)
 *   -> when --duration or --count ends (whichever first), stop issuing,
 *      drain what is in flight (bounded by --drain), close everything,
 *      print a table and one JSON line (also to --json FILE).
 *
 * Process workload (--workload process, issue 8 workload 3):
 *
 *   DeployResource(--bpmn FILE) once; when it is acknowledged the clock
 *   starts and, closed loop, at most --in-flight instances are open:
 *   CreateProcessInstance(--process-id, variables {"t0":<send time ns>})
 *   -> --workers ActivateJobs streams (server streaming, long polling,
 *      re-issued as they end; fetchVariable t0) -> every job in every
 *      streamed ActivateJobsResponse goes to a bounded queue of pending
 *      completions -> CompleteJob(key); its acknowledgement completes the
 *      instance (the process ends after its only task): counted, and
 *      now - t0 is the create-to-complete latency. Three more histograms
 *      split it into phases: the CreateProcessInstance round trip, t0 to
 *      the job reaching a worker, the CompleteJob round trip.
 *   A DeployResource or any RPC answered UNIMPLEMENTED ends the run with
 *   status "unavailable" and the server's message (exit status 1).
 *
 * Every loop is bounded: slots, connections, payload, count and duration
 * have hard maxima; a global timer (--timeout) ends the run whatever
 * happens. Exit status: 0 when the run completed and at least one
 * publish was acknowledged, 1 on connection failure or no
 * acknowledgement, 2 on bad usage.
 */
#define _POSIX_C_SOURCE 200809L

#include "hist.h"

#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/resource.h>

#include <nghttp2/nghttp2.h>
#include <uv.h>

#include "proto/proto.h"

#define LOAD_IN_FLIGHT_MAX 65536u
#define LOAD_CONNECTIONS_MAX 256u
#define LOAD_PAYLOAD_BYTES_MAX (1u << 20)
#define LOAD_SLOT_MEMORY_MAX ((size_t)512 << 20)
#define LOAD_KEYS_MAX 10000000u
#define LOAD_COUNT_MAX 1000000000ull
#define LOAD_DURATION_S_MAX 3600.0
#define LOAD_DURATION_S_DEFAULT 10.0
#define LOAD_RATE_MAX 10000000.0
#define LOAD_OPEN_IN_FLIGHT_DEFAULT 1024u
#define LOAD_RESP_BYTES_MAX 256u
#define LOAD_READ_BYTES 65536u
#define LOAD_TICK_MS 1u
#define LOAD_KEY_BYTES_MAX 48u
#define LOAD_ERRMSG_BYTES 256u
#define LOAD_WORKERS_MAX 64u
#define LOAD_JOBS_PER_ACTIVATION_MAX 1000u
#define LOAD_STREAM_BYTES_MAX ((size_t)4 << 20)
#define LOAD_BPMN_BYTES_MAX ((size_t)1 << 20)
#define LOAD_ACK_LOG_LINES_MAX 10000000ull
#define LOAD_JOB_TIMEOUT_MS 30000
#define LOAD_LONG_POLL_MS 1000
#define LOAD_ACTIVATE_IDLE_NS 2000000ull /* after an empty activation */

/* What a slot's stream carries. */
enum load_rpc {
    LOAD_RPC_PUBLISH,
    LOAD_RPC_DEPLOY,
    LOAD_RPC_CREATE,
    LOAD_RPC_ACTIVATE,
    LOAD_RPC_COMPLETE,
    LOAD_RPC_COUNT
};

static const char *const load_rpc_paths[LOAD_RPC_COUNT] = {
    "/" PROTO_GATEWAY_SERVICE "/PublishMessage",
    "/" PROTO_GATEWAY_SERVICE "/DeployResource",
    "/" PROTO_GATEWAY_SERVICE "/CreateProcessInstance",
    "/" PROTO_GATEWAY_SERVICE "/ActivateJobs",
    "/" PROTO_GATEWAY_SERVICE "/CompleteJob",
};

/* A job activated and not yet sent back as CompleteJob. */
struct load_job {
    int64_t key;
    uint64_t t0_ns; /* its instance's create time, from variable t0 */
};

#define GRPC_STATUS_COUNT 17
#define GATEWAY_UNIMPLEMENTED_CODE 12 /* gRPC UNIMPLEMENTED */
/* Error classes after the 17 gRPC codes. */
enum load_err {
    LOAD_ERR_GRPC_OTHER = GRPC_STATUS_COUNT, /* grpc-status > 16 */
    LOAD_ERR_NO_STATUS,    /* stream ended without grpc-status (HTTP error) */
    LOAD_ERR_RESET,        /* RST_STREAM, or refused after GOAWAY */
    LOAD_ERR_CONN,         /* connection lost with the stream open */
    LOAD_ERR_TIMEOUT,      /* still unanswered when the drain ended */
    LOAD_ERR_BAD_RESPONSE, /* OK but the body is not a response */
    LOAD_ERR_COUNT
};

static const char *const load_err_names[LOAD_ERR_COUNT] = {
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
    "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
    "GRPC_OTHER", "NO_GRPC_STATUS", "STREAM_RESET", "CONNECTION_LOST",
    "TIMEOUT", "BAD_RESPONSE",
};

struct load_opts {
    char host[64];
    int port;
    uint32_t in_flight;
    double rate;         /* 0: closed loop */
    double duration_s;
    uint64_t count;
    uint32_t payload_bytes;
    uint32_t keys;
    uint32_t connections;
    double drain_s;
    double timeout_s;
    double connect_timeout_s;
    int64_t ttl_ms;
    const char *name;
    const char *json_path;
    bool quiet;
    bool process;              /* --workload process */
    const char *correlation_key; /* NULL: key-0 .. key-(keys-1) */
    const char *ack_log_path;
    const char *bpmn_path;
    const char *process_id;
    const char *job_type;
    uint32_t workers;
    uint32_t jobs_per_activation;
};

struct load_conn;

struct load_slot {
    struct load_conn *conn; /* NULL when free */
    struct load_slot *next_free;
    enum load_rpc rpc;
    uint64_t intended_ns;
    uint64_t t0_ns;         /* CompleteJob: its instance's create time */
    const uint8_t *send;    /* request bytes: body, or the deploy request */
    uint8_t *stream;        /* ActivateJobs: unparsed response bytes */
    size_t stream_len;
    size_t stream_cap;
    uint32_t jobs_seen;     /* ActivateJobs: jobs in this stream */
    bool stream_bad;        /* ActivateJobs: a message did not parse */
    int grpc_status;        /* -1: none seen */
    int http_status;
    size_t body_len;
    size_t body_off;
    size_t resp_len;        /* bytes received, may exceed the buffer */
    uint8_t resp[LOAD_RESP_BYTES_MAX];
    uint8_t *body;          /* body_cap bytes, owned by the run */
};

struct load_conn {
    struct load_run *run;
    uint32_t index;
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    nghttp2_session *session;
    uint32_t in_flight_count;
    uint32_t in_flight_max;
    bool connected;
    bool goaway;       /* no new streams */
    bool dead;         /* failed or closed; tcp closing */
    bool want_flush;
    char read_buf[LOAD_READ_BYTES];
};

struct load_write {
    uv_write_t req;
    struct load_conn *conn;
    size_t len;
    size_t cap;
    uint8_t data[];
};

enum load_phase { LOAD_CONNECTING, LOAD_RUNNING, LOAD_DRAINING, LOAD_CLOSING };

struct load_run {
    struct load_opts opts;
    uv_loop_t loop;
    uv_timer_t tick;
    uv_timer_t hard;
    uv_signal_t sigint;
    enum load_phase phase;
    struct load_conn *conns;
    uint32_t connected_count;
    struct load_slot *slots;
    uint32_t slot_count;       /* in_flight, or 2 * in_flight + workers + 1 */
    struct load_slot *free_slots;
    uint8_t *bodies;
    size_t body_cap;
    uint32_t in_flight_count;
    uint32_t rr;               /* round-robin cursor over conns */
    char authority[80];
    char *variables;
    size_t message_bytes;      /* packed size of a typical request */
    uint64_t start_ns;
    uint64_t stop_ns;          /* start + duration: issuing ends */
    uint64_t issue_end_ns;     /* when issuing actually ended */
    uint64_t last_done_ns;
    uint64_t issued;
    uint64_t ok;
    uint64_t unsent;
    uint64_t errors[LOAD_ERR_COUNT];
    struct hist latency;
    bool fatal;
    bool interrupted;
    bool conns_lost;           /* every connection gone while issuing */
    uint32_t goaway_count;
    char errmsg[LOAD_ERRMSG_BYTES];
    char first_error[LOAD_ERRMSG_BYTES];
    FILE *ack_log;             /* --ack-log: "intended_ns done_ns ok" */
    uint64_t ack_log_lines;
    /* Process workload. */
    uint8_t *deploy_body;      /* the packed DeployResource request */
    size_t deploy_len;
    bool deploy_sent;
    bool deployed;
    bool unavailable;          /* the cluster rejected the workload */
    uint64_t created;          /* CreateProcessInstance acknowledged */
    uint64_t creates_issued;
    uint32_t instances_open;   /* created or being created, not completed */
    uint32_t workers_active;   /* ActivateJobs streams open */
    uint64_t activations;
    uint64_t jobs_activated;
    uint64_t completions_unmatched; /* see instance_close() */
    uint64_t jobs_dropped;     /* pending queue full (cannot happen when
                                  every instance has one job) */
    uint64_t activate_idle_until_ns;
    /* Where an instance's time goes (process workload): the
     * CreateProcessInstance round trip, create sent -> its job streamed
     * to a worker (t0 from the job's variables), the CompleteJob round
     * trip. Acknowledged requests only. */
    struct hist phase_create;
    struct hist phase_to_job;
    struct hist phase_complete;
    struct load_job *jobs;     /* ring of pending completions */
    uint32_t jobs_cap;
    uint32_t jobs_head;
    uint32_t jobs_len;
};

static void conn_fail(struct load_conn *conn, const char *why);
static void run_finish(struct load_run *run);

/* ------------------------------------------------------------------ */
/* Options                                                             */
/* ------------------------------------------------------------------ */

static void usage(FILE *out)
{
    fprintf(out,
        "usage: tandem-load [--address 127.0.0.1:PORT] [--in-flight N | --rate R]\n"
        "                   [--duration S] [--count N] [--connections C]\n"
        "                   [--payload-bytes B] [--keys K] [--json FILE] ...\n"
        "Publishes gateway_protocol.PublishMessage over gRPC (h2c) and reports\n"
        "acknowledged/s and latency percentiles.\n"
        "  --address A        127.0.0.1:PORT or localhost:PORT\n"
        "                     (default $TANDEM_GATEWAY_ADDRESS)\n"
        "  --in-flight N      closed loop: N requests outstanding (default 1);\n"
        "                     open loop: the cap on outstanding (default %u)\n"
        "  --rate R           open loop at R requests/s (latency from the\n"
        "                     intended send time)\n"
        "  --duration S       seconds of issuing (default %.0f, max %.0f)\n"
        "  --count N          requests to issue (max %llu); whichever ends first\n"
        "  --connections C    HTTP/2 connections (default 1, max %u)\n"
        "  --payload-bytes B  approximate packed request size (default 128)\n"
        "  --keys K           distinct correlation keys (default 1024)\n"
        "  --ttl-ms T         message time to live (default 0)\n"
        "  --name NAME        message name (default tandem-load)\n"
        "  --drain S          wait for answers after issuing ends (default 5)\n"
        "  --timeout S        hard limit on the whole run (default\n"
        "                     duration + drain + connect timeout + 5)\n"
        "  --connect-timeout S  (default 5)\n"
        "  --json FILE        also write the JSON line to FILE\n"
        "  --quiet            JSON line only on stdout\n"
        "  --correlation-key K  publish every message with key K\n"
        "  --ack-log FILE     one line per answered publish:\n"
        "                     intended_ns done_ns ok (CLOCK_MONOTONIC)\n"
        "  --workload W       publish (default) or process: deploy --bpmn,\n"
        "                     create instances (--in-flight open at most),\n"
        "                     complete their jobs with --workers streams\n"
        "  --bpmn FILE        process to deploy (process workload)\n"
        "  --process-id ID    its bpmnProcessId (default bench-one-task)\n"
        "  --job-type T       its service task's type (default bench-task)\n"
        "  --workers W        ActivateJobs streams (default 4, max %u)\n"
        "  --jobs-per-activation J  maxJobsToActivate (default 32)\n",
        LOAD_OPEN_IN_FLIGHT_DEFAULT, LOAD_DURATION_S_DEFAULT,
        LOAD_DURATION_S_MAX, (unsigned long long)LOAD_COUNT_MAX,
        LOAD_CONNECTIONS_MAX, LOAD_WORKERS_MAX);
}

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end = NULL;
    unsigned long long v = 0;
    if (s == NULL || *s == '\0' || *s == '-')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end = NULL;
    double v = 0;
    if (s == NULL || *s == '\0')
        return -1;
    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

static int parse_address(const char *s, struct load_opts *o)
{
    const char *colon = strrchr(s, ':');
    uint64_t port = 0;
    size_t hlen = 0;
    if (colon == NULL)
        return -1;
    hlen = (size_t)(colon - s);
    if (parse_u64(colon + 1, 1, 65535, &port) != 0)
        return -1;
    if (hlen == strlen("localhost") && strncmp(s, "localhost", hlen) == 0) {
        snprintf(o->host, sizeof(o->host), "127.0.0.1");
    } else if (hlen == strlen("127.0.0.1") &&
               strncmp(s, "127.0.0.1", hlen) == 0) {
        snprintf(o->host, sizeof(o->host), "127.0.0.1");
    } else {
        return -2;
    }
    o->port = (int)port;
    return 0;
}

/* Returns 0, or 2 after printing why the options are bad. */
static int opts_parse(int argc, char **argv, struct load_opts *o)
{
    enum {
        OPT_ADDRESS = 1, OPT_IN_FLIGHT, OPT_RATE, OPT_DURATION, OPT_COUNT,
        OPT_PAYLOAD, OPT_KEYS, OPT_CONNECTIONS, OPT_DRAIN, OPT_TIMEOUT,
        OPT_CONNECT_TIMEOUT, OPT_TTL, OPT_NAME, OPT_JSON, OPT_QUIET, OPT_HELP,
        OPT_CORRELATION_KEY, OPT_ACK_LOG, OPT_WORKLOAD, OPT_BPMN,
        OPT_PROCESS_ID, OPT_JOB_TYPE, OPT_WORKERS, OPT_JOBS_PER_ACTIVATION
    };
    static const struct option longopts[] = {
        {"address", required_argument, NULL, OPT_ADDRESS},
        {"in-flight", required_argument, NULL, OPT_IN_FLIGHT},
        {"rate", required_argument, NULL, OPT_RATE},
        {"duration", required_argument, NULL, OPT_DURATION},
        {"count", required_argument, NULL, OPT_COUNT},
        {"payload-bytes", required_argument, NULL, OPT_PAYLOAD},
        {"keys", required_argument, NULL, OPT_KEYS},
        {"connections", required_argument, NULL, OPT_CONNECTIONS},
        {"drain", required_argument, NULL, OPT_DRAIN},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
        {"ttl-ms", required_argument, NULL, OPT_TTL},
        {"name", required_argument, NULL, OPT_NAME},
        {"json", required_argument, NULL, OPT_JSON},
        {"quiet", no_argument, NULL, OPT_QUIET},
        {"help", no_argument, NULL, OPT_HELP},
        {"correlation-key", required_argument, NULL, OPT_CORRELATION_KEY},
        {"ack-log", required_argument, NULL, OPT_ACK_LOG},
        {"workload", required_argument, NULL, OPT_WORKLOAD},
        {"bpmn", required_argument, NULL, OPT_BPMN},
        {"process-id", required_argument, NULL, OPT_PROCESS_ID},
        {"job-type", required_argument, NULL, OPT_JOB_TYPE},
        {"workers", required_argument, NULL, OPT_WORKERS},
        {"jobs-per-activation", required_argument, NULL,
         OPT_JOBS_PER_ACTIVATION},
        {NULL, 0, NULL, 0},
    };
    const char *address = getenv("TANDEM_GATEWAY_ADDRESS");
    bool have_duration = false, have_count = false, have_in_flight = false;
    bool have_timeout = false;
    uint64_t u = 0;
    int c = 0, rv = 0;

    memset(o, 0, sizeof(*o));
    o->in_flight = 1;
    o->duration_s = LOAD_DURATION_S_DEFAULT;
    o->count = LOAD_COUNT_MAX;
    o->payload_bytes = 128;
    o->keys = 1024;
    o->connections = 1;
    o->drain_s = 5.0;
    o->connect_timeout_s = 5.0;
    o->name = "tandem-load";
    o->process_id = "bench-one-task";
    o->job_type = "bench-task";
    o->workers = 4;
    o->jobs_per_activation = 32;

    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        const char *bad = NULL;
        switch (c) {
        case OPT_ADDRESS: address = optarg; break;
        case OPT_IN_FLIGHT:
            if (parse_u64(optarg, 1, LOAD_IN_FLIGHT_MAX, &u) != 0)
                bad = "--in-flight wants 1..65536";
            o->in_flight = (uint32_t)u;
            have_in_flight = true;
            break;
        case OPT_RATE:
            if (parse_double(optarg, 0.001, LOAD_RATE_MAX, &o->rate) != 0)
                bad = "--rate wants 0.001..1e7 requests/s";
            break;
        case OPT_DURATION:
            if (parse_double(optarg, 0.001, LOAD_DURATION_S_MAX,
                             &o->duration_s) != 0)
                bad = "--duration wants 0.001..3600 s";
            have_duration = true;
            break;
        case OPT_COUNT:
            if (parse_u64(optarg, 1, LOAD_COUNT_MAX, &o->count) != 0)
                bad = "--count wants 1..1e9";
            have_count = true;
            break;
        case OPT_PAYLOAD:
            if (parse_u64(optarg, 0, LOAD_PAYLOAD_BYTES_MAX, &u) != 0)
                bad = "--payload-bytes wants 0..1048576";
            o->payload_bytes = (uint32_t)u;
            break;
        case OPT_KEYS:
            if (parse_u64(optarg, 1, LOAD_KEYS_MAX, &u) != 0)
                bad = "--keys wants 1..1e7";
            o->keys = (uint32_t)u;
            break;
        case OPT_CONNECTIONS:
            if (parse_u64(optarg, 1, LOAD_CONNECTIONS_MAX, &u) != 0)
                bad = "--connections wants 1..256";
            o->connections = (uint32_t)u;
            break;
        case OPT_DRAIN:
            if (parse_double(optarg, 0, 600, &o->drain_s) != 0)
                bad = "--drain wants 0..600 s";
            break;
        case OPT_TIMEOUT:
            if (parse_double(optarg, 0.01, 7200, &o->timeout_s) != 0)
                bad = "--timeout wants 0.01..7200 s";
            have_timeout = true;
            break;
        case OPT_CONNECT_TIMEOUT:
            if (parse_double(optarg, 0.01, 600, &o->connect_timeout_s) != 0)
                bad = "--connect-timeout wants 0.01..600 s";
            break;
        case OPT_TTL:
            if (parse_u64(optarg, 0, INT64_MAX, &u) != 0)
                bad = "--ttl-ms wants a non-negative integer";
            o->ttl_ms = (int64_t)u;
            break;
        case OPT_NAME:
            if (strlen(optarg) == 0 || strlen(optarg) > 200)
                bad = "--name wants 1..200 characters";
            o->name = optarg;
            break;
        case OPT_JSON: o->json_path = optarg; break;
        case OPT_CORRELATION_KEY:
            if (strlen(optarg) == 0 || strlen(optarg) >= LOAD_KEY_BYTES_MAX)
                bad = "--correlation-key wants 1..47 characters";
            o->correlation_key = optarg;
            break;
        case OPT_ACK_LOG: o->ack_log_path = optarg; break;
        case OPT_WORKLOAD:
            if (strcmp(optarg, "process") == 0)
                o->process = true;
            else if (strcmp(optarg, "publish") != 0)
                bad = "--workload wants publish or process";
            break;
        case OPT_BPMN: o->bpmn_path = optarg; break;
        case OPT_PROCESS_ID:
            if (strlen(optarg) == 0 || strlen(optarg) > 200)
                bad = "--process-id wants 1..200 characters";
            o->process_id = optarg;
            break;
        case OPT_JOB_TYPE:
            if (strlen(optarg) == 0 || strlen(optarg) > 200)
                bad = "--job-type wants 1..200 characters";
            o->job_type = optarg;
            break;
        case OPT_WORKERS:
            if (parse_u64(optarg, 1, LOAD_WORKERS_MAX, &u) != 0)
                bad = "--workers wants 1..64";
            o->workers = (uint32_t)u;
            break;
        case OPT_JOBS_PER_ACTIVATION:
            if (parse_u64(optarg, 1, LOAD_JOBS_PER_ACTIVATION_MAX, &u) != 0)
                bad = "--jobs-per-activation wants 1..1000";
            o->jobs_per_activation = (uint32_t)u;
            break;
        case OPT_QUIET: o->quiet = true; break;
        case OPT_HELP: usage(stdout); exit(0);
        default: usage(stderr); return 2;
        }
        if (bad != NULL) {
            fprintf(stderr, "tandem-load: %s (got '%s')\n", bad, optarg);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "tandem-load: unexpected argument '%s'\n",
                argv[optind]);
        return 2;
    }
    if (address == NULL) {
        fprintf(stderr, "tandem-load: no --address and no "
                        "$TANDEM_GATEWAY_ADDRESS\n");
        return 2;
    }
    rv = parse_address(address, o);
    if (rv != 0) {
        fprintf(stderr, "tandem-load: bad address '%s'%s\n", address,
                rv == -2 ? " (only 127.0.0.1 / localhost targets)" : "");
        return 2;
    }
    /* Count alone: run until the count, bounded by the maximum duration. */
    if (have_count && !have_duration)
        o->duration_s = LOAD_DURATION_S_MAX;
    if (o->rate > 0 && !have_in_flight)
        o->in_flight = LOAD_OPEN_IN_FLIGHT_DEFAULT;
    if (o->connections > o->in_flight) {
        fprintf(stderr, "tandem-load: --connections %u > --in-flight %u\n",
                o->connections, o->in_flight);
        return 2;
    }
    if (o->process && o->bpmn_path == NULL) {
        fprintf(stderr, "tandem-load: --workload process needs --bpmn FILE\n");
        return 2;
    }
    if (o->process && o->rate > 0) {
        fprintf(stderr, "tandem-load: --workload process is closed loop "
                        "only (no --rate)\n");
        return 2;
    }
    if (!o->process && o->bpmn_path != NULL) {
        fprintf(stderr, "tandem-load: --bpmn needs --workload process\n");
        return 2;
    }
    /* The process workload first waits for its deployment (at most the
     * connect timeout again). */
    if (!have_timeout)
        o->timeout_s = o->duration_s + o->drain_s + o->connect_timeout_s + 5 +
                       (o->process ? o->connect_timeout_s : 0);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */
/* ------------------------------------------------------------------ */

static void grpc_prefix(uint8_t *out, size_t len)
{
    out[0] = 0; /* not compressed */
    out[1] = (uint8_t)(len >> 24);
    out[2] = (uint8_t)(len >> 16);
    out[3] = (uint8_t)(len >> 8);
    out[4] = (uint8_t)len;
}

static size_t request_pack(const struct load_run *run, uint64_t seq,
                           uint8_t *out)
{
    GatewayProtocol__PublishMessageRequest req =
        GATEWAY_PROTOCOL__PUBLISH_MESSAGE_REQUEST__INIT;
    char key[LOAD_KEY_BYTES_MAX];
    size_t len = 0;
    if (run->opts.correlation_key != NULL)
        snprintf(key, sizeof(key), "%s", run->opts.correlation_key);
    else
        snprintf(key, sizeof(key), "key-%" PRIu64, seq % run->opts.keys);
    req.name = (char *)run->opts.name;
    req.correlationkey = key;
    req.timetolive = run->opts.ttl_ms;
    req.variables = run->variables;
    len = gateway_protocol__publish_message_request__get_packed_size(&req);
    if (out != NULL) {
        grpc_prefix(out, len);
        gateway_protocol__publish_message_request__pack(&req, out + 5);
    }
    return len;
}

/* Packs slot's process-workload request (CreateProcessInstance,
 * ActivateJobs or CompleteJob of job) into slot->body, gRPC prefix
 * included. Returns its length. */
static size_t process_request_pack(const struct load_run *run,
                                   struct load_slot *slot,
                                   const struct load_job *job)
{
    size_t len = 0;
    assert(slot->rpc == LOAD_RPC_CREATE || slot->rpc == LOAD_RPC_ACTIVATE ||
           slot->rpc == LOAD_RPC_COMPLETE);
    if (slot->rpc == LOAD_RPC_CREATE) {
        GatewayProtocol__CreateProcessInstanceRequest req =
            GATEWAY_PROTOCOL__CREATE_PROCESS_INSTANCE_REQUEST__INIT;
        char vars[48];
        snprintf(vars, sizeof(vars), "{\"t0\":%" PRIu64 "}",
                 slot->intended_ns);
        req.bpmnprocessid = (char *)run->opts.process_id;
        req.version = -1;
        req.variables = vars;
        len = gateway_protocol__create_process_instance_request__get_packed_size(
            &req);
        assert(5 + len <= run->body_cap);
        gateway_protocol__create_process_instance_request__pack(&req,
                                                                slot->body + 5);
    } else if (slot->rpc == LOAD_RPC_ACTIVATE) {
        GatewayProtocol__ActivateJobsRequest req =
            GATEWAY_PROTOCOL__ACTIVATE_JOBS_REQUEST__INIT;
        char *fetch[1] = {(char *)"t0"};
        req.type = (char *)run->opts.job_type;
        req.worker = (char *)"tandem-load";
        req.timeout = LOAD_JOB_TIMEOUT_MS;
        req.maxjobstoactivate = (int32_t)run->opts.jobs_per_activation;
        req.n_fetchvariable = 1;
        req.fetchvariable = fetch;
        req.requesttimeout = LOAD_LONG_POLL_MS;
        len = gateway_protocol__activate_jobs_request__get_packed_size(&req);
        assert(5 + len <= run->body_cap);
        gateway_protocol__activate_jobs_request__pack(&req, slot->body + 5);
    } else {
        GatewayProtocol__CompleteJobRequest req =
            GATEWAY_PROTOCOL__COMPLETE_JOB_REQUEST__INIT;
        assert(job != NULL);
        req.jobkey = job->key;
        req.variables = (char *)"{}";
        len = gateway_protocol__complete_job_request__get_packed_size(&req);
        assert(5 + len <= run->body_cap);
        gateway_protocol__complete_job_request__pack(&req, slot->body + 5);
    }
    grpc_prefix(slot->body, len);
    return 5 + len;
}

/* Reads --bpmn and packs the DeployResource request once. Returns 0, or
 * -2 after printing why the file cannot be used, or -1 (no memory). */
static int deploy_build(struct load_run *run)
{
    GatewayProtocol__DeployResourceRequest req =
        GATEWAY_PROTOCOL__DEPLOY_RESOURCE_REQUEST__INIT;
    GatewayProtocol__Resource res = GATEWAY_PROTOCOL__RESOURCE__INIT;
    GatewayProtocol__Resource *resources[1] = {&res};
    const char *path = run->opts.bpmn_path;
    const char *base = strrchr(path, '/');
    uint8_t *content = NULL;
    size_t n = 0, len = 0;
    FILE *f = fopen(path, "rb");

    if (f == NULL) {
        fprintf(stderr, "tandem-load: --bpmn %s: %s\n", path, strerror(errno));
        return -2;
    }
    content = malloc(LOAD_BPMN_BYTES_MAX + 1);
    if (content == NULL) {
        fclose(f);
        return -1;
    }
    n = fread(content, 1, LOAD_BPMN_BYTES_MAX + 1, f);
    if (ferror(f) || n == 0 || n > LOAD_BPMN_BYTES_MAX) {
        fprintf(stderr, "tandem-load: --bpmn %s: %s\n", path,
                ferror(f) ? "read error"
                : n == 0  ? "empty file"
                          : "larger than 1 MiB");
        fclose(f);
        free(content);
        return -2;
    }
    fclose(f);
    res.name = (char *)(base != NULL ? base + 1 : path);
    res.content.data = content;
    res.content.len = n;
    req.n_resources = 1;
    req.resources = resources;
    len = gateway_protocol__deploy_resource_request__get_packed_size(&req);
    run->deploy_body = malloc(5 + len);
    if (run->deploy_body == NULL) {
        free(content);
        return -1;
    }
    grpc_prefix(run->deploy_body, len);
    gateway_protocol__deploy_resource_request__pack(&req,
                                                    run->deploy_body + 5);
    run->deploy_len = 5 + len;
    free(content);
    return 0;
}

/* Builds {"payload":"xxx..."} so that a packed request with the longest
 * key is about payload_bytes long. Returns 0 or -1 (no memory). */
static int variables_build(struct load_run *run)
{
    size_t pad = 0;
    unsigned round = 0;
    /* Grow the padding until the size is reached; a length varint may
     * grow by a byte, so a few rounds suffice (bounded at 4). */
    for (round = 0; round < 4; round++) {
        free(run->variables);
        run->variables = malloc(pad + 16);
        if (run->variables == NULL)
            return -1;
        memcpy(run->variables, "{\"payload\":\"", 12);
        memset(run->variables + 12, 'x', pad);
        memcpy(run->variables + 12 + pad, "\"}", 3);
        run->message_bytes = request_pack(run, run->opts.keys - 1u, NULL);
        if (run->message_bytes >= run->opts.payload_bytes)
            break;
        pad += run->opts.payload_bytes - run->message_bytes;
    }
    run->body_cap = 5 + run->message_bytes + 16;
    /* The process workload's requests (other than the deployment, packed
     * once into deploy_body) are small: ids, a key, {"t0":N}. */
    if (run->opts.process && run->body_cap < 5 + 3u * 200u + 64u)
        run->body_cap = 5 + 3u * 200u + 64u;
    return 0;
}

static ssize_t body_read_cb(nghttp2_session *session, int32_t stream_id,
                            uint8_t *buf, size_t length, uint32_t *data_flags,
                            nghttp2_data_source *source, void *user_data)
{
    struct load_slot *slot = source->ptr;
    size_t n = slot->body_len - slot->body_off;
    (void)session;
    (void)stream_id;
    (void)user_data;
    if (n > length)
        n = length;
    memcpy(buf, slot->send + slot->body_off, n);
    slot->body_off += n;
    if (slot->body_off == slot->body_len)
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

#define NV(n, v)                                                           \
    {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1,         \
     NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE}

/* Submits one request of kind rpc on conn, due at intended_ns (job:
 * the job a CompleteJob completes, else NULL). Returns 0, or -1 when the
 * stream cannot be created (the connection is then not used again). */
static int request_issue(struct load_conn *conn, uint64_t intended_ns,
                         enum load_rpc rpc, const struct load_job *job)
{
    struct load_run *run = conn->run;
    struct load_slot *slot = run->free_slots;
    nghttp2_nv nva[] = {
        NV(":method", "POST"),
        NV(":scheme", "http"),
        NV(":path", ""),
        NV(":authority", ""),
        NV("content-type", "application/grpc"),
        NV("te", "trailers"),
        NV("user-agent", "tandem-load/0.1"),
    };
    nghttp2_data_provider prd;
    int32_t stream_id = 0;

    if (slot == NULL)
        return -1;
    nva[2].value = (uint8_t *)load_rpc_paths[rpc];
    nva[2].valuelen = strlen(load_rpc_paths[rpc]);
    nva[3].value = (uint8_t *)run->authority;
    nva[3].valuelen = strlen(run->authority);
    run->free_slots = slot->next_free;
    slot->next_free = NULL;
    slot->conn = conn;
    slot->intended_ns = intended_ns;
    slot->grpc_status = -1;
    slot->http_status = 0;
    slot->resp_len = 0;
    slot->body_off = 0;
    slot->rpc = rpc;
    slot->t0_ns = job != NULL ? job->t0_ns : 0;
    slot->stream_len = 0;
    slot->jobs_seen = 0;
    slot->stream_bad = false;
    slot->send = slot->body;
    if (rpc == LOAD_RPC_PUBLISH) {
        slot->body_len = 5 + request_pack(run, run->issued, slot->body);
    } else if (rpc == LOAD_RPC_DEPLOY) {
        slot->send = run->deploy_body;
        slot->body_len = run->deploy_len;
    } else {
        slot->body_len = process_request_pack(run, slot, job);
    }
    prd.source.ptr = slot;
    prd.read_callback = body_read_cb;
    stream_id = nghttp2_submit_request(conn->session, NULL, nva,
                                       sizeof(nva) / sizeof(nva[0]), &prd,
                                       slot);
    if (stream_id < 0) {
        slot->conn = NULL;
        slot->next_free = run->free_slots;
        run->free_slots = slot;
        conn->goaway = true; /* e.g. stream ids exhausted */
        if (run->first_error[0] == '\0')
            snprintf(run->first_error, sizeof(run->first_error),
                     "connection %u: submit: %s", conn->index,
                     nghttp2_strerror(stream_id));
        return -1;
    }
    conn->in_flight_count++;
    run->in_flight_count++;
    run->issued++;
    conn->want_flush = true;
    return 0;
}

static bool response_valid(const struct load_slot *slot)
{
    GatewayProtocol__PublishMessageResponse *resp = NULL;
    size_t len = 0;
    if (slot->resp_len < 5 || slot->resp_len > LOAD_RESP_BYTES_MAX ||
        slot->resp[0] != 0)
        return false;
    len = ((size_t)slot->resp[1] << 24) | ((size_t)slot->resp[2] << 16) |
          ((size_t)slot->resp[3] << 8) | (size_t)slot->resp[4];
    if (len + 5 != slot->resp_len)
        return false;
    resp = gateway_protocol__publish_message_response__unpack(
        NULL, len, slot->resp + 5);
    if (resp == NULL)
        return false;
    gateway_protocol__publish_message_response__free_unpacked(resp, NULL);
    return true;
}

/* The process workload cannot run: remember why (once) and stop. */
static void process_unavailable(struct load_run *run, const char *rpc_name,
                                int err_class)
{
    if (run->unavailable)
        return;
    run->unavailable = true;
    /* The first error is cut to fit: errmsg is one line for a report. */
    snprintf(run->errmsg, sizeof(run->errmsg), "%s answered %s%s%.180s",
             rpc_name, load_err_names[err_class],
             run->first_error[0] != '\0' ? ": " : "", run->first_error);
}

/* Queues an activated job for its CompleteJob; false when the queue is
 * full (the job is then left to time out). */
static bool job_push(struct load_run *run, int64_t key, uint64_t t0_ns)
{
    struct load_job *job = NULL;
    if (run->jobs_len == run->jobs_cap) {
        run->jobs_dropped++;
        return false;
    }
    job = &run->jobs[(run->jobs_head + run->jobs_len) % run->jobs_cap];
    job->key = key;
    job->t0_ns = t0_ns;
    run->jobs_len++;
    return true;
}

/* Reads "t0" (written by CreateProcessInstance) from a job's variables;
 * 0 when absent or not a non-negative number. The variables are the
 * server's JSON object with only t0 fetched, for example {"t0":123}; a
 * server that keeps numbers as doubles may write 1.23E11 instead, which
 * is read as a double (exact below 2^53 ns, 104 days of uptime). */
static uint64_t job_t0(const char *variables)
{
    const char *p = variables != NULL ? strstr(variables, "\"t0\"") : NULL;
    char *end = NULL;
    uint64_t v = 0;
    if (p == NULL)
        return 0;
    p += 4;
    while (*p == ' ' || *p == ':')
        p++;
    if (*p < '0' || *p > '9')
        return 0;
    v = strtoull(p, &end, 10);
    if (*end == '.' || *end == 'e' || *end == 'E') {
        double d = strtod(p, NULL);
        return d >= 0 && d < 1.8e19 ? (uint64_t)d : 0;
    }
    return v;
}

/* Parses every complete gRPC message in an ActivateJobs stream's buffer;
 * each job goes to the completion queue. Returns false when a message
 * does not parse. */
static bool activate_stream_parse(struct load_run *run,
                                  struct load_slot *slot)
{
    size_t off = 0;
    while (slot->stream_len - off >= 5) {
        const uint8_t *m = slot->stream + off;
        size_t len = ((size_t)m[1] << 24) | ((size_t)m[2] << 16) |
                     ((size_t)m[3] << 8) | (size_t)m[4];
        GatewayProtocol__ActivateJobsResponse *resp = NULL;
        size_t i = 0;
        if (m[0] != 0)
            return false; /* compressed: never asked for */
        if (slot->stream_len - off - 5 < len)
            break;
        resp = gateway_protocol__activate_jobs_response__unpack(NULL, len,
                                                                m + 5);
        if (resp == NULL)
            return false;
        for (i = 0; i < resp->n_jobs; i++) {
            uint64_t t0 = job_t0(resp->jobs[i]->variables);
            uint64_t now = uv_hrtime();
            if (t0 != 0 && now > t0)
                hist_record(&run->phase_to_job, now - t0);
            job_push(run, resp->jobs[i]->key, t0);
            slot->jobs_seen++;
            run->jobs_activated++;
        }
        gateway_protocol__activate_jobs_response__free_unpacked(resp, NULL);
        off += 5 + len;
    }
    memmove(slot->stream, slot->stream + off, slot->stream_len - off);
    slot->stream_len -= off;
    return true;
}

/* An instance of the closed loop ended (completed, or its create failed).
 * The server decides what arrives: a job handed out twice, or one of an
 * instance whose create the client counted as failed, completes an
 * instance the loop did not count as open; such completions are counted
 * (completions_unmatched) instead of driving the count below zero. */
static void instance_close(struct load_run *run)
{
    if (run->instances_open == 0) {
        run->completions_unmatched++;
        return;
    }
    run->instances_open--;
}

/* Ends a stream: classifies it, records the latency, frees the slot. */
static void slot_complete(struct load_slot *slot, int err_class)
{
    struct load_conn *conn = slot->conn;
    struct load_run *run = conn->run;
    uint64_t now = uv_hrtime();
    bool closing = err_class == LOAD_ERR_TIMEOUT && run->phase == LOAD_CLOSING;

    if (err_class < 0) {
        if (slot->grpc_status == 0) {
            err_class = slot->rpc != LOAD_RPC_PUBLISH || response_valid(slot)
                            ? 0
                            : LOAD_ERR_BAD_RESPONSE;
            if (slot->rpc == LOAD_RPC_ACTIVATE && slot->stream_bad)
                err_class = LOAD_ERR_BAD_RESPONSE;
        } else if (slot->grpc_status > 0) {
            err_class = slot->grpc_status < GRPC_STATUS_COUNT
                            ? slot->grpc_status
                            : LOAD_ERR_GRPC_OTHER;
        } else {
            err_class = LOAD_ERR_NO_STATUS;
        }
    }
    switch (slot->rpc) {
    case LOAD_RPC_PUBLISH:
        if (err_class == 0) {
            run->ok++;
            hist_record(&run->latency, now > slot->intended_ns
                                           ? now - slot->intended_ns
                                           : 0);
        }
        if (run->ack_log != NULL &&
            run->ack_log_lines < LOAD_ACK_LOG_LINES_MAX) {
            fprintf(run->ack_log, "%" PRIu64 " %" PRIu64 " %d\n",
                    slot->intended_ns, now, err_class == 0);
            run->ack_log_lines++;
        }
        run->last_done_ns = now;
        break;
    case LOAD_RPC_DEPLOY:
        if (err_class == 0) {
            /* The measured run starts now. */
            run->deployed = true;
            run->start_ns = now;
            run->stop_ns = now + (uint64_t)(run->opts.duration_s * 1e9);
            run->last_done_ns = now;
        } else {
            process_unavailable(run, "DeployResource", err_class);
        }
        break;
    case LOAD_RPC_CREATE:
        if (err_class == 0) {
            run->created++;
            hist_record(&run->phase_create, now > slot->intended_ns
                                                ? now - slot->intended_ns
                                                : 0);
        } else {
            instance_close(run);
        }
        break;
    case LOAD_RPC_ACTIVATE:
        assert(run->workers_active > 0);
        run->workers_active--;
        run->activations++;
        if (slot->jobs_seen == 0)
            run->activate_idle_until_ns = now + LOAD_ACTIVATE_IDLE_NS;
        /* An activation still open at the end is no error: it long-polls. */
        if (closing)
            err_class = 0;
        break;
    case LOAD_RPC_COMPLETE:
        if (err_class == 0) {
            run->ok++;
            hist_record(&run->phase_complete, now > slot->intended_ns
                                                  ? now - slot->intended_ns
                                                  : 0);
            hist_record(&run->latency,
                        now > slot->t0_ns && slot->t0_ns != 0
                            ? now - slot->t0_ns
                            : 0);
            run->last_done_ns = now;
            instance_close(run);
        }
        /* A CompleteJob that failed leaves its instance open: the job
         * times out and comes back (LOAD_JOB_TIMEOUT_MS), or the drain
         * ends the run. */
        break;
    case LOAD_RPC_COUNT:
        assert(0);
        break;
    }
    if (err_class != 0) {
        run->errors[err_class]++;
        if (run->first_error[0] == '\0')
            snprintf(run->first_error, sizeof(run->first_error),
                     "%s (http %d)", load_err_names[err_class],
                     slot->http_status);
        if (err_class == GATEWAY_UNIMPLEMENTED_CODE &&
            slot->rpc != LOAD_RPC_PUBLISH)
            process_unavailable(run, load_rpc_paths[slot->rpc] +
                                         strlen("/" PROTO_GATEWAY_SERVICE "/"),
                                err_class);
    }
    conn->in_flight_count--;
    run->in_flight_count--;
    slot->conn = NULL;
    slot->next_free = run->free_slots;
    run->free_slots = slot;
}

/* ------------------------------------------------------------------ */
/* nghttp2 callbacks                                                   */
/* ------------------------------------------------------------------ */

static int on_header_cb(nghttp2_session *session, const nghttp2_frame *frame,
                        const uint8_t *name, size_t namelen,
                        const uint8_t *value, size_t valuelen, uint8_t flags,
                        void *user_data)
{
    struct load_conn *conn = user_data;
    struct load_slot *slot = NULL;
    char num[16];
    (void)flags;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    slot = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (slot == NULL)
        return 0;
    /* Only the numeric headers are copied into num; grpc-message keeps
     * its own length (up to 200 characters). */
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        size_t n = valuelen < sizeof(num) ? valuelen : sizeof(num) - 1;
        memcpy(num, value, n);
        num[n] = '\0';
        slot->http_status = atoi(num);
    } else if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0) {
        size_t n = valuelen < sizeof(num) ? valuelen : sizeof(num) - 1;
        memcpy(num, value, n);
        num[n] = '\0';
        slot->grpc_status = atoi(num);
        if (slot->grpc_status < 0)
            slot->grpc_status = GRPC_STATUS_COUNT;
    } else if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0 &&
               conn->run->first_error[0] == '\0') {
        snprintf(conn->run->first_error, sizeof(conn->run->first_error),
                 "grpc-message: %.*s", (int)(valuelen > 200 ? 200 : valuelen),
                 (const char *)value);
    }
    return 0;
}

static int on_data_chunk_cb(nghttp2_session *session, uint8_t flags,
                            int32_t stream_id, const uint8_t *data,
                            size_t len, void *user_data)
{
    struct load_slot *slot =
        nghttp2_session_get_stream_user_data(session, stream_id);
    (void)flags;
    (void)user_data;
    if (slot == NULL)
        return 0;
    if (slot->rpc == LOAD_RPC_ACTIVATE) {
        struct load_run *run = slot->conn->run;
        if (slot->stream_bad)
            return 0;
        if (slot->stream_len + len > slot->stream_cap) {
            size_t cap = slot->stream_cap ? slot->stream_cap : 4096;
            uint8_t *nb = NULL;
            while (cap < slot->stream_len + len && cap <= LOAD_STREAM_BYTES_MAX)
                cap *= 2;
            nb = cap <= LOAD_STREAM_BYTES_MAX ? realloc(slot->stream, cap)
                                              : NULL;
            if (nb == NULL) {
                /* Too large or no memory: drop the stream's jobs. */
                slot->stream_bad = true;
                nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE,
                                          stream_id, NGHTTP2_CANCEL);
                return 0;
            }
            slot->stream = nb;
            slot->stream_cap = cap;
        }
        memcpy(slot->stream + slot->stream_len, data, len);
        slot->stream_len += len;
        if (!activate_stream_parse(run, slot)) {
            slot->stream_bad = true;
            nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream_id,
                                      NGHTTP2_CANCEL);
        }
        return 0;
    }
    if (slot->resp_len < LOAD_RESP_BYTES_MAX) {
        size_t n = LOAD_RESP_BYTES_MAX - slot->resp_len;
        memcpy(slot->resp + slot->resp_len, data, n < len ? n : len);
    }
    slot->resp_len += len;
    return 0;
}

static int on_stream_close_cb(nghttp2_session *session, int32_t stream_id,
                              uint32_t error_code, void *user_data)
{
    struct load_slot *slot =
        nghttp2_session_get_stream_user_data(session, stream_id);
    (void)user_data;
    if (slot == NULL || slot->conn == NULL)
        return 0;
    /* A stream reset before its trailers arrived is a transport error;
     * one that carried grpc-status is classified by that status. */
    slot_complete(slot, error_code != NGHTTP2_NO_ERROR &&
                                slot->grpc_status < 0
                            ? LOAD_ERR_RESET
                            : -1);
    return 0;
}

static int on_frame_recv_cb(nghttp2_session *session,
                            const nghttp2_frame *frame, void *user_data)
{
    struct load_conn *conn = user_data;
    (void)session;
    if (frame->hd.type == NGHTTP2_GOAWAY && !conn->goaway) {
        conn->goaway = true;
        conn->run->goaway_count++;
        fprintf(stderr,
                "tandem-load: connection %u: GOAWAY from the server "
                "(error %s, last stream %d); no new requests on it\n",
                conn->index,
                nghttp2_http2_strerror(frame->goaway.error_code),
                frame->goaway.last_stream_id);
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Connections                                                         */
/* ------------------------------------------------------------------ */

static void write_cb(uv_write_t *req, int status)
{
    struct load_write *w = (struct load_write *)req;
    struct load_conn *conn = w->conn;
    free(w);
    if (status < 0 && !conn->dead)
        conn_fail(conn, uv_strerror(status));
}

/* Moves everything nghttp2 wants to send into one uv_write. */
static void conn_flush(struct load_conn *conn)
{
    struct load_write *w = NULL;
    int rv = 0;
    conn->want_flush = false;
    if (conn->dead || conn->session == NULL)
        return;
    for (;;) {
        const uint8_t *data = NULL;
        ssize_t n = nghttp2_session_mem_send(conn->session, &data);
        if (n < 0) {
            free(w);
            conn_fail(conn, nghttp2_strerror((int)n));
            return;
        }
        if (n == 0)
            break;
        if (w == NULL || w->len + (size_t)n > w->cap) {
            size_t cap = w == NULL ? 16384 : w->cap * 2;
            struct load_write *nw = NULL;
            while (cap < (w == NULL ? 0 : w->len) + (size_t)n)
                cap *= 2;
            nw = realloc(w, sizeof(*w) + cap);
            if (nw == NULL) {
                free(w);
                conn_fail(conn, "out of memory");
                return;
            }
            if (w == NULL)
                nw->len = 0;
            w = nw;
            w->cap = cap;
        }
        memcpy(w->data + w->len, data, (size_t)n);
        w->len += (size_t)n;
    }
    if (w == NULL)
        return;
    {
        uv_buf_t buf = uv_buf_init((char *)w->data, (unsigned)w->len);
        w->conn = conn;
        rv = uv_write(&w->req, (uv_stream_t *)&conn->tcp, &buf, 1, write_cb);
        if (rv != 0) {
            free(w);
            conn_fail(conn, uv_strerror(rv));
        }
    }
}

static void conn_close_cb(uv_handle_t *handle)
{
    (void)handle;
}

/* Tears a connection down: every open stream is counted as
 * CONNECTION_LOST, the session is deleted, the socket closed. */
static void conn_fail(struct load_conn *conn, const char *why)
{
    struct load_run *run = conn->run;
    uint32_t i = 0;
    if (conn->dead)
        return;
    conn->dead = true;
    if (why != NULL) {
        if (run->phase != LOAD_CONNECTING)
            fprintf(stderr, "tandem-load: connection %u to %s: %s\n",
                    conn->index, run->authority, why);
        if (run->phase == LOAD_CONNECTING) {
            run->fatal = true;
            snprintf(run->errmsg, sizeof(run->errmsg),
                     "cannot connect to %s: %s", run->authority, why);
        } else if (run->first_error[0] == '\0') {
            snprintf(run->first_error, sizeof(run->first_error),
                     "connection %u: %s", conn->index, why);
        }
    }
    for (i = 0; i < run->slot_count && conn->in_flight_count > 0; i++) {
        if (run->slots[i].conn == conn)
            slot_complete(&run->slots[i], LOAD_ERR_CONN);
    }
    if (conn->session != NULL) {
        nghttp2_session_del(conn->session);
        conn->session = NULL;
    }
    if (!uv_is_closing((uv_handle_t *)&conn->tcp))
        uv_close((uv_handle_t *)&conn->tcp, conn_close_cb);
    if (run->phase == LOAD_CONNECTING)
        run_finish(run);
}

static void alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct load_conn *conn = handle->data;
    (void)suggested;
    *buf = uv_buf_init(conn->read_buf, sizeof(conn->read_buf));
}

static void dispatch(struct load_run *run);

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct load_conn *conn = stream->data;
    ssize_t rv = 0;
    if (conn->dead)
        return;
    if (nread < 0) {
        conn_fail(conn, nread == UV_EOF ? "closed by the server"
                                        : uv_strerror((int)nread));
        dispatch(conn->run);
        return;
    }
    if (nread == 0)
        return;
    rv = nghttp2_session_mem_recv(conn->session, (const uint8_t *)buf->base,
                                  (size_t)nread);
    if (rv < 0) {
        conn_fail(conn, nghttp2_strerror((int)rv));
        dispatch(conn->run);
        return;
    }
    conn->want_flush = true;
    dispatch(conn->run);
}

static int conn_session_new(struct load_conn *conn)
{
    nghttp2_session_callbacks *cbs = NULL;
    nghttp2_settings_entry settings[2];
    int rv = nghttp2_session_callbacks_new(&cbs);
    if (rv != 0)
        return rv;
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header_cb);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
        cbs, on_data_chunk_cb);
    nghttp2_session_callbacks_set_on_stream_close_callback(
        cbs, on_stream_close_cb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs,
                                                         on_frame_recv_cb);
    rv = nghttp2_session_client_new(&conn->session, cbs, conn);
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0) {
        conn->session = NULL;
        return rv;
    }
    settings[0].settings_id = NGHTTP2_SETTINGS_ENABLE_PUSH;
    settings[0].value = 0;
    settings[1].settings_id = NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE;
    settings[1].value = 1u << 20;
    return nghttp2_submit_settings(conn->session, NGHTTP2_FLAG_NONE,
                                   settings, 2);
}

static void run_start(struct load_run *run);

static void connect_cb(uv_connect_t *req, int status)
{
    struct load_conn *conn = req->data;
    struct load_run *run = conn->run;
    int rv = 0;
    if (conn->dead)
        return;
    if (status < 0) {
        conn_fail(conn, uv_strerror(status));
        return;
    }
    rv = conn_session_new(conn);
    if (rv != 0) {
        conn_fail(conn, nghttp2_strerror(rv));
        return;
    }
    uv_tcp_nodelay(&conn->tcp, 1);
    rv = uv_read_start((uv_stream_t *)&conn->tcp, alloc_cb, read_cb);
    if (rv != 0) {
        conn_fail(conn, uv_strerror(rv));
        return;
    }
    conn->connected = true;
    conn_flush(conn);
    if (++run->connected_count == run->opts.connections &&
        run->phase == LOAD_CONNECTING)
        run_start(run);
}

/* ------------------------------------------------------------------ */
/* Scheduling                                                          */
/* ------------------------------------------------------------------ */

static struct load_conn *conn_pick(struct load_run *run)
{
    uint32_t i = 0;
    for (i = 0; i < run->opts.connections; i++) {
        struct load_conn *conn = &run->conns[run->rr];
        run->rr = (run->rr + 1u) % run->opts.connections;
        if (conn->connected && !conn->dead && !conn->goaway &&
            conn->in_flight_count < conn->in_flight_max)
            return conn;
    }
    return NULL;
}

static bool conns_usable(const struct load_run *run)
{
    uint32_t i = 0;
    for (i = 0; i < run->opts.connections; i++) {
        if (!run->conns[i].dead && !run->conns[i].goaway)
            return true;
    }
    return false;
}

/* The number of open-loop requests due by now (capped by --count). */
static uint64_t open_due(const struct load_run *run, uint64_t now)
{
    double due = (double)(now - run->start_ns) * run->opts.rate / 1e9;
    uint64_t n = (uint64_t)due + 1u; /* request 0 is due at start */
    return n > run->opts.count ? run->opts.count : n;
}

static void issue_end(struct load_run *run, uint64_t now)
{
    if (run->phase != LOAD_RUNNING)
        return;
    run->phase = LOAD_DRAINING;
    run->issue_end_ns = now;
    if (run->opts.rate > 0) {
        uint64_t due = open_due(run, now < run->stop_ns ? now : run->stop_ns);
        run->unsent = due > run->issued ? due - run->issued : 0;
    }
}

/* The process workload's share of dispatch(): the deployment first, then
 * instances (closed loop, while issuing), completions of queued jobs and
 * --workers activation streams (while running and draining). */
static void process_dispatch(struct load_run *run, uint64_t now)
{
    struct load_conn *conn = NULL;
    if (run->phase == LOAD_RUNNING) {
        if (!conns_usable(run)) {
            run->conns_lost = true;
            issue_end(run, now);
        } else if (run->unavailable || run->interrupted) {
            issue_end(run, now);
        } else if (!run->deploy_sent) {
            conn = conn_pick(run);
            if (conn != NULL &&
                request_issue(conn, now, LOAD_RPC_DEPLOY, NULL) == 0)
                run->deploy_sent = true;
        } else if (run->deployed && (now >= run->stop_ns ||
                                     run->creates_issued >= run->opts.count)) {
            issue_end(run, now);
        } else if (run->deployed) {
            while (run->creates_issued < run->opts.count &&
                   run->instances_open < run->opts.in_flight &&
                   run->free_slots != NULL) {
                conn = conn_pick(run);
                if (conn == NULL ||
                    request_issue(conn, now, LOAD_RPC_CREATE, NULL) != 0)
                    break;
                run->creates_issued++;
                run->instances_open++;
            }
        }
    }
    if (!run->deployed || run->unavailable ||
        (run->phase != LOAD_RUNNING && run->phase != LOAD_DRAINING))
        return;
    while (run->jobs_len > 0 && run->free_slots != NULL) {
        struct load_job *job = &run->jobs[run->jobs_head];
        conn = conn_pick(run);
        if (conn == NULL ||
            request_issue(conn, now, LOAD_RPC_COMPLETE, job) != 0)
            break;
        run->jobs_head = (run->jobs_head + 1u) % run->jobs_cap;
        run->jobs_len--;
    }
    while (run->workers_active < run->opts.workers &&
           run->instances_open > 0 && now >= run->activate_idle_until_ns &&
           run->free_slots != NULL) {
        conn = conn_pick(run);
        if (conn == NULL ||
            request_issue(conn, now, LOAD_RPC_ACTIVATE, NULL) != 0)
            break;
        run->workers_active++;
    }
}

/* Issues whatever is due, flushes, and ends the run when it is over. */
static void dispatch(struct load_run *run)
{
    uint64_t now = uv_hrtime();
    uint32_t i = 0;

    if (run->opts.process) {
        process_dispatch(run, now);
    } else if (run->phase == LOAD_RUNNING) {
        if (!conns_usable(run)) {
            run->conns_lost = true;
            issue_end(run, now);
        } else if (now >= run->stop_ns || run->issued >= run->opts.count ||
                   run->interrupted) {
            issue_end(run, now);
        } else if (run->opts.rate <= 0) {
            /* Closed loop: keep --in-flight outstanding. */
            while (run->issued < run->opts.count && run->free_slots != NULL) {
                struct load_conn *conn = conn_pick(run);
                if (conn == NULL ||
                    request_issue(conn, now, LOAD_RPC_PUBLISH, NULL) != 0)
                    break;
            }
        } else {
            /* Open loop: send what is due, each at its own due time. */
            uint64_t due = open_due(run, now);
            while (run->issued < due && run->free_slots != NULL) {
                struct load_conn *conn = conn_pick(run);
                uint64_t at = run->start_ns +
                              (uint64_t)((double)run->issued * 1e9 /
                                         run->opts.rate);
                if (conn == NULL ||
                    request_issue(conn, at, LOAD_RPC_PUBLISH, NULL) != 0)
                    break;
            }
        }
    }
    for (i = 0; i < run->opts.connections; i++) {
        struct load_conn *conn = &run->conns[i];
        if (conn->want_flush)
            conn_flush(conn);
        /* A connection after GOAWAY closes once its streams are done. */
        if (!conn->dead && conn->session != NULL && conn->goaway &&
            conn->in_flight_count == 0 &&
            !nghttp2_session_want_write(conn->session))
            conn_fail(conn, NULL);
    }
    if (run->phase == LOAD_DRAINING &&
        (run->in_flight_count == 0 ||
         (run->opts.process &&
          ((run->instances_open == 0 &&
            run->in_flight_count == run->workers_active) ||
           run->unavailable)) ||
         now >= run->issue_end_ns + (uint64_t)(run->opts.drain_s * 1e9)))
        run_finish(run);
}

static void tick_cb(uv_timer_t *timer)
{
    dispatch(timer->data);
}

static void hard_cb(uv_timer_t *timer)
{
    struct load_run *run = timer->data;
    if (run->phase == LOAD_CONNECTING) {
        run->fatal = true;
        snprintf(run->errmsg, sizeof(run->errmsg),
                 "cannot connect to %s: timed out after %.1f s",
                 run->authority, run->opts.connect_timeout_s);
    } else if (run->errmsg[0] == '\0') {
        snprintf(run->errmsg, sizeof(run->errmsg),
                 "global timeout (%.1f s) reached", run->opts.timeout_s);
    }
    if (run->phase == LOAD_RUNNING)
        issue_end(run, uv_hrtime());
    run_finish(run);
}

static void sigint_cb(uv_signal_t *handle, int signum)
{
    struct load_run *run = handle->data;
    (void)signum;
    run->interrupted = true;
    dispatch(run);
}

static void run_start(struct load_run *run)
{
    uint64_t timeout_ms = (uint64_t)(run->opts.timeout_s * 1000.0);
    run->phase = LOAD_RUNNING;
    run->start_ns = uv_hrtime();
    run->stop_ns = run->start_ns + (uint64_t)(run->opts.duration_s * 1e9);
    run->last_done_ns = run->start_ns;
    uv_timer_stop(&run->hard);
    uv_timer_start(&run->hard, hard_cb, timeout_ms, 0);
    uv_timer_start(&run->tick, tick_cb, LOAD_TICK_MS, LOAD_TICK_MS);
    dispatch(run);
}

static void handle_close_cb(uv_handle_t *handle)
{
    (void)handle;
}

/* Stops issuing, counts what is unanswered as TIMEOUT, closes every
 * handle; uv_run returns once they are closed. */
static void run_finish(struct load_run *run)
{
    uint32_t i = 0;
    if (run->phase == LOAD_CLOSING)
        return;
    if (run->phase == LOAD_RUNNING)
        issue_end(run, uv_hrtime());
    run->phase = LOAD_CLOSING;
    for (i = 0; i < run->slot_count && run->in_flight_count > 0; i++) {
        if (run->slots[i].conn != NULL)
            slot_complete(&run->slots[i], LOAD_ERR_TIMEOUT);
    }
    for (i = 0; i < run->opts.connections; i++) {
        struct load_conn *conn = &run->conns[i];
        if (conn->dead)
            continue;
        if (conn->session != NULL) {
            nghttp2_session_terminate_session(conn->session,
                                              NGHTTP2_NO_ERROR);
            conn_flush(conn);
        }
        conn_fail(conn, NULL);
    }
    if (!uv_is_closing((uv_handle_t *)&run->tick))
        uv_close((uv_handle_t *)&run->tick, handle_close_cb);
    if (!uv_is_closing((uv_handle_t *)&run->hard))
        uv_close((uv_handle_t *)&run->hard, handle_close_cb);
    if (!uv_is_closing((uv_handle_t *)&run->sigint))
        uv_close((uv_handle_t *)&run->sigint, handle_close_cb);
}

/* ------------------------------------------------------------------ */
/* Set-up and report                                                   */
/* ------------------------------------------------------------------ */

static int run_init(struct load_run *run)
{
    struct sockaddr_in addr;
    uint32_t i = 0;
    int rv = 0;

    snprintf(run->authority, sizeof(run->authority), "%s:%d",
             run->opts.host, run->opts.port);
    hist_init(&run->latency);
    hist_init(&run->phase_create);
    hist_init(&run->phase_to_job);
    hist_init(&run->phase_complete);
    if (variables_build(run) != 0)
        return -1;
    run->slot_count = run->opts.in_flight;
    if (run->opts.process) {
        /* Creates and completions of at most in_flight instances, the
         * activation streams and the deployment. */
        run->slot_count = 2u * run->opts.in_flight + run->opts.workers + 1u;
        run->jobs_cap = run->opts.in_flight +
                        run->opts.workers * run->opts.jobs_per_activation;
        run->jobs = calloc(run->jobs_cap, sizeof(*run->jobs));
        if (run->jobs == NULL)
            return -1;
        rv = deploy_build(run);
        if (rv != 0)
            return rv;
    }
    if (run->opts.ack_log_path != NULL) {
        run->ack_log = fopen(run->opts.ack_log_path, "w");
        if (run->ack_log == NULL) {
            fprintf(stderr, "tandem-load: --ack-log %s: %s\n",
                    run->opts.ack_log_path, strerror(errno));
            return -2;
        }
    }
    if (run->body_cap * run->slot_count > LOAD_SLOT_MEMORY_MAX) {
        fprintf(stderr, "tandem-load: --in-flight x --payload-bytes needs "
                        "more than %zu MiB of request buffers\n",
                LOAD_SLOT_MEMORY_MAX >> 20);
        return -2;
    }
    run->slots = calloc(run->slot_count, sizeof(*run->slots));
    run->bodies = malloc(run->body_cap * run->slot_count);
    run->conns = calloc(run->opts.connections, sizeof(*run->conns));
    if (run->slots == NULL || run->bodies == NULL || run->conns == NULL)
        return -1;
    for (i = run->slot_count; i-- > 0;) {
        run->slots[i].body = run->bodies + (size_t)i * run->body_cap;
        run->slots[i].next_free = run->free_slots;
        run->free_slots = &run->slots[i];
    }
    rv = uv_loop_init(&run->loop);
    if (rv != 0)
        return -1;
    uv_timer_init(&run->loop, &run->tick);
    uv_timer_init(&run->loop, &run->hard);
    uv_signal_init(&run->loop, &run->sigint);
    run->tick.data = run;
    run->hard.data = run;
    run->sigint.data = run;
    uv_signal_start(&run->sigint, sigint_cb, SIGINT);
    uv_timer_start(&run->hard, hard_cb,
                   (uint64_t)(run->opts.connect_timeout_s * 1000.0), 0);
    uv_ip4_addr(run->opts.host, run->opts.port, &addr);
    for (i = 0; i < run->opts.connections; i++) {
        struct load_conn *conn = &run->conns[i];
        conn->run = run;
        conn->index = i;
        conn->in_flight_max = (run->slot_count + run->opts.connections -
                               1u) / run->opts.connections;
        uv_tcp_init(&run->loop, &conn->tcp);
        conn->tcp.data = conn;
        conn->connect_req.data = conn;
        rv = uv_tcp_connect(&conn->connect_req, &conn->tcp,
                            (const struct sockaddr *)&addr, connect_cb);
        if (rv != 0) {
            conn_fail(conn, uv_strerror(rv));
            break;
        }
    }
    return 0;
}

static void run_free(struct load_run *run)
{
    uint32_t i = 0;
    for (i = 0; run->slots != NULL && i < run->slot_count; i++)
        free(run->slots[i].stream);
    if (run->ack_log != NULL && fclose(run->ack_log) != 0)
        fprintf(stderr, "tandem-load: --ack-log %s: %s\n",
                run->opts.ack_log_path, strerror(errno));
    run->ack_log = NULL;
    free(run->jobs);
    free(run->deploy_body);
    free(run->slots);
    free(run->bodies);
    free(run->conns);
    free(run->variables);
}

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

/* Writes s as a JSON string literal. */
static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

/* One row of the process workload's phase table. */
static void phase_print(const char *name, const struct hist *h)
{
    printf("  %-10s %8.3f %8.3f %8.3f  (%" PRIu64 ")\n", name,
           ms(hist_value_at(h, 0.5)), ms(hist_value_at(h, 0.99)),
           ms(hist_value_at(h, 0.999)), h->count);
}

/* One phase of the JSON's "phases_us" object. */
static void phase_json(FILE *f, const char *name, const struct hist *h,
                       bool first)
{
    fprintf(f,
            "%s\"%s\":{\"count\":%" PRIu64 ",\"p50\":%.1f,\"p99\":%.1f,"
            "\"p999\":%.1f}",
            first ? "" : ",", name, h->count,
            (double)hist_value_at(h, 0.5) / 1e3,
            (double)hist_value_at(h, 0.99) / 1e3,
            (double)hist_value_at(h, 0.999) / 1e3);
}

static void report(const struct load_run *run, FILE *json_file)
{
    const struct load_opts *o = &run->opts;
    uint64_t end = run->last_done_ns > run->start_ns ? run->last_done_ns
                                                      : run->start_ns;
    double seconds = run->start_ns == 0 ? 0 : (double)(end - run->start_ns) / 1e9;
    double tput = seconds > 0 ? (double)run->ok / seconds : 0;
    const struct hist *h = &run->latency;
    double mean = h->count ? h->sum / (double)h->count : 0;
    uint64_t err_total = 0;
    int i = 0;
    FILE *outs[2];
    int n_out = 0, k = 0;

    struct rusage ru;
    double cpu_s = 0;

    for (i = 1; i < LOAD_ERR_COUNT; i++)
        err_total += run->errors[i];
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;

    if (!o->quiet) {
        printf("tandem-load: %s loop, ", o->rate > 0 ? "open" : "closed");
        if (o->rate > 0)
            printf("%.0f/s (at most %u in flight)", o->rate, o->in_flight);
        else
            printf("%u in flight", o->in_flight);
        printf(", %u connection(s), %zu-byte requests, %u keys, %s\n",
               o->connections, run->message_bytes, o->keys, run->authority);
        printf("seconds %.3f  sent %" PRIu64 "  acknowledged %" PRIu64
               "  errors %" PRIu64 "  unsent %" PRIu64 "\n",
               seconds, run->issued, run->ok, err_total, run->unsent);
        if (o->process)
            printf("instances created %" PRIu64 "  completed %" PRIu64
                   "  jobs activated %" PRIu64 " in %" PRIu64
                   " activations  unmatched completions %" PRIu64 "\n"
                   "throughput %.1f completed instances/s "
                   "(latency: create to complete)\n",
                   run->created, run->ok, run->jobs_activated,
                   run->activations, run->completions_unmatched, tput);
        else
            printf("throughput %.1f acknowledged/s\n", tput);
        printf("latency ms      p50      p90      p99     p999      max     mean\n");
        printf("           %8.3f %8.3f %8.3f %8.3f %8.3f %8.3f\n",
               ms(hist_value_at(h, 0.5)), ms(hist_value_at(h, 0.9)),
               ms(hist_value_at(h, 0.99)), ms(hist_value_at(h, 0.999)),
               ms(h->max), mean / 1e6);
        if (o->process) {
            printf("phases ms       p50      p99     p999  (create: "
                   "CreateProcessInstance; to job: create sent -> job "
                   "streamed;\n"
                   "                                    complete: "
                   "CompleteJob)\n");
            phase_print("create", &run->phase_create);
            phase_print("to job", &run->phase_to_job);
            phase_print("complete", &run->phase_complete);
        }
        for (i = 1; i < LOAD_ERR_COUNT; i++) {
            if (run->errors[i] > 0)
                printf("error %-20s %" PRIu64 "\n", load_err_names[i],
                       run->errors[i]);
        }
        if (run->first_error[0] != '\0')
            printf("first error: %s\n", run->first_error);
        printf("client cpu %.2f s (%.0f%% of one core over the run)\n",
               cpu_s, seconds > 0 ? 100.0 * cpu_s / seconds : 0);
    }

    outs[n_out++] = stdout;
    if (json_file != NULL)
        outs[n_out++] = json_file;
    for (k = 0; k < n_out; k++) {
        FILE *f = outs[k];
        bool first = true;
        fprintf(f,
                "{\"bench\":\"tandem-load\",\"rpc\":\"%s\","
                "\"address\":\"%s\",\"mode\":\"%s\",\"in_flight\":%u,"
                "\"rate\":%.3f,\"connections\":%u,\"payload_bytes\":%u,"
                "\"request_bytes\":%zu,\"keys\":%u,\"seconds\":%.3f,"
                "\"sent\":%" PRIu64 ",\"acknowledged\":%" PRIu64
                ",\"unsent\":%" PRIu64 ",\"acknowledged_per_s\":%.1f,"
                "\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,"
                "\"p999\":%.1f,\"max\":%.1f,\"mean\":%.1f},"
                "\"error_total\":%" PRIu64 ",\"errors\":{",
                o->process ? "process" : "PublishMessage",
                run->authority, o->rate > 0 ? "open" : "closed",
                o->in_flight, o->rate, o->connections, o->payload_bytes,
                run->message_bytes, o->keys, seconds, run->issued, run->ok,
                run->unsent, tput, (double)hist_value_at(h, 0.5) / 1e3,
                (double)hist_value_at(h, 0.9) / 1e3,
                (double)hist_value_at(h, 0.99) / 1e3,
                (double)hist_value_at(h, 0.999) / 1e3,
                (double)h->max / 1e3, mean / 1e3, err_total);
        for (i = 1; i < LOAD_ERR_COUNT; i++) {
            if (run->errors[i] == 0)
                continue;
            fprintf(f, "%s\"%s\":%" PRIu64, first ? "" : ",",
                    load_err_names[i], run->errors[i]);
            first = false;
        }
        fprintf(f, "}");
        if (o->process)
            fprintf(f,
                    ",\"instances_created\":%" PRIu64
                    ",\"instances_completed\":%" PRIu64
                    ",\"completed_per_s\":%.1f,\"jobs_activated\":%" PRIu64
                    ",\"activations\":%" PRIu64 ",\"jobs_dropped\":%" PRIu64
                    ",\"completions_unmatched\":%" PRIu64,
                    run->created, run->ok, tput, run->jobs_activated,
                    run->activations, run->jobs_dropped,
                    run->completions_unmatched);
        if (o->process) {
            fprintf(f, ",\"phases_us\":{");
            phase_json(f, "create", &run->phase_create, true);
            phase_json(f, "to_job", &run->phase_to_job, false);
            phase_json(f, "complete", &run->phase_complete, false);
            fprintf(f, "}");
        }
        fprintf(f, ",\"first_error\":");
        json_string(f, run->unavailable ? run->errmsg : run->first_error);
        fprintf(f, ",\"client_cpu_s\":%.3f,\"status\":\"%s\"}\n", cpu_s,
                run->conns_lost    ? "connections_lost"
                : run->unavailable ? "unavailable"
                : run->errmsg[0] != '\0' ? "timeout"
                : run->interrupted ? "interrupted"
                                   : "ok");
    }
}

int main(int argc, char **argv)
{
    static struct load_run run; /* large (read buffers); zeroed */
    FILE *json_file = NULL;
    int rv = opts_parse(argc, argv, &run.opts);
    if (rv != 0)
        return rv;
    if (run.opts.json_path != NULL) {
        json_file = fopen(run.opts.json_path, "w");
        if (json_file == NULL) {
            fprintf(stderr, "tandem-load: %s: %s\n", run.opts.json_path,
                    strerror(errno));
            return 2;
        }
    }
    rv = run_init(&run);
    if (rv != 0) {
        if (rv == -1)
            fprintf(stderr, "tandem-load: out of memory\n");
        run_free(&run);
        if (json_file != NULL)
            fclose(json_file);
        return rv == -2 ? 2 : 1;
    }
    /* Bounded: every handle closes by the hard timer at the latest. */
    uv_run(&run.loop, UV_RUN_DEFAULT);
    rv = uv_loop_close(&run.loop);
    if (rv != 0)
        fprintf(stderr, "tandem-load: uv_loop_close: %s\n", uv_strerror(rv));
    if (run.fatal) {
        fprintf(stderr, "tandem-load: %s\n", run.errmsg);
    } else {
        report(&run, json_file);
        if (run.errmsg[0] != '\0')
            fprintf(stderr, "tandem-load: %s\n", run.errmsg);
    }
    if (json_file != NULL && fclose(json_file) != 0) {
        fprintf(stderr, "tandem-load: %s: %s\n", run.opts.json_path,
                strerror(errno));
        rv = 1;
    }
    run_free(&run);
    if (run.fatal)
        return 1;
    if (run.ok == 0) {
        fprintf(stderr, "tandem-load: no request was acknowledged\n");
        if (run.opts.process && run.created > 0 && run.jobs_activated == 0)
            fprintf(stderr,
                    "tandem-load: %" PRIu64 " instance(s) created but no "
                    "job of type '%s' was activated: does --job-type match "
                    "the process's service task?\n",
                    run.created, run.opts.job_type);
        return 1;
    }
    if (run.conns_lost) {
        fprintf(stderr, "tandem-load: every connection was closed by the "
                        "server before the run ended\n");
        return 1;
    }
    return rv != 0 ? 1 : 0;
}
