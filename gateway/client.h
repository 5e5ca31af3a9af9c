/* client.h: the gateway's client of the brokers' command API (private to
 * gateway/): implements struct gateway_backend (backend.h) over TCP.
 *
 * Data flow:
 *
 *   contact points ("host:port" of brokers' command API, port 26501)
 *     --connect--> one TCP connection per broker, reconnect with backoff
 *   every topology_refresh_ms: Request{TopologyRequest} to every broker
 *     <-- Response{BrokerTopology}: that broker's partitions (role,
 *         health, term) and its member list; unknown members are added
 *         and connected to
 *   merged topology: per broker its own fresh report; a broker whose
 *     report is older than topology_stale_ms (or disconnected) is listed
 *     without partitions while a fresh broker names it an alive member,
 *     and not at all otherwise;
 *     leader of partition p = fresh broker reporting LEADER for p with
 *     the highest term; cluster size, partitions count and replication
 *     factor from the fresh report with the highest config_version
 *
 *   backend->call("Topology")       answered at once from the merge
 *   backend->call(command rpc)       validated as Zeebe's gateway does
 *     (INVALID_ARGUMENT with Zeebe's messages), then one
 *     tandem.command.Request to a partition leader (client_rpc.c):
 *       PublishMessage         partition = Zeebe's hash of correlationKey
 *       DeployResource, DeployProcess (converted to DeployResource and
 *                              back)  partition 1
 *       CreateProcessInstance[WithResult]  round robin over partitions
 *                              with a known leader; NOT_LEADER,
 *                              PARTITION_UNAVAILABLE, RESOURCE_EXHAUSTED
 *                              or a lost connection move on to the next;
 *                              all failed: RESOURCE_EXHAUSTED
 *       CancelProcessInstance, SetVariables, CompleteJob, FailJob,
 *       UpdateJobRetries, UpdateJobTimeout, ThrowError, ResolveIncident
 *                              partition = key >> 51 (unknown partition:
 *                              UNAVAILABLE)
 *     fixed-partition commands retry NOT_LEADER, PARTITION_UNAVAILABLE,
 *     no leader known and lost connections with backoff until the
 *     deadline (DEADLINE_EXCEEDED, or UNAVAILABLE when no topology was
 *     ever seen); broker errors map to gRPC statuses with the broker's
 *     message (INTERNAL wrapped as Zeebe does)
 *   backend->call_stream("ActivateJobs" | "StreamActivatedJobs")
 *     job activation with long polling (client_jobs.c)
 *   any other rpc                    UNIMPLEMENTED
 *
 * Bounds: calls in flight (calls_max), job activation requests
 * (jobs_max) and job streams (job_streams_max), requests awaiting an
 * answer per connection (connection_requests_max), brokers (brokers_max),
 * frame size. Beyond a bound a call fails with RESOURCE_EXHAUSTED.
 *
 * Single-threaded: everything runs on the loop given to _init. */
#ifndef TANDEM_GATEWAY_CLIENT_H
#define TANDEM_GATEWAY_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "gateway/backend.h"
#include "proto/proto.h"

/* Defaults of struct gateway_client_options. The request timeout is
 * Zeebe's zeebe.gateway.cluster.requestTimeout (15 s); the refresh is one
 * Raft heartbeat (250 ms). */
#define GATEWAY_CLIENT_REQUEST_TIMEOUT_MS_DEFAULT 15000u
#define GATEWAY_CLIENT_TOPOLOGY_REFRESH_MS_DEFAULT 250u
#define GATEWAY_CLIENT_STALE_REFRESHES 4u /* stale after 4 refreshes */
#define GATEWAY_CLIENT_RECONNECT_MS_MIN_DEFAULT 50u
#define GATEWAY_CLIENT_RECONNECT_MS_MAX_DEFAULT 2000u
#define GATEWAY_CLIENT_RETRY_MS_MIN 10u  /* Zeebe's RETRY_DELAY */
#define GATEWAY_CLIENT_RETRY_MS_MAX 200u
#define GATEWAY_CLIENT_CALLS_MAX_DEFAULT 4096u
#define GATEWAY_CLIENT_CONNECTION_REQUESTS_MAX_DEFAULT 1024u
#define GATEWAY_CLIENT_BROKERS_MAX_DEFAULT 64u
#define GATEWAY_CLIENT_JOBS_MAX_DEFAULT 512u
#define GATEWAY_CLIENT_JOB_STREAMS_MAX_DEFAULT 256u
/* Zeebe's long-polling timeout when ActivateJobs.requestTimeout is 0. */
#define GATEWAY_CLIENT_LONG_POLLING_MS_DEFAULT 10000u
/* A parked request with no await in flight (no leader known, a broker
 * error) runs another activation round after this long. */
#define GATEWAY_CLIENT_JOB_PROBE_MS_DEFAULT 1000u
/* Jobs asked of each partition per round of a StreamActivatedJobs. */
#define GATEWAY_CLIENT_STREAM_BATCH_DEFAULT 32u
#define GATEWAY_CLIENT_CONTACT_POINTS_MAX 64u
#define GATEWAY_CLIENT_HOST_BYTES_MAX 255u
/* What zbctl prints as "Gateway version" (Zeebe's protocol version we
 * speak). */
#define GATEWAY_CLIENT_VERSION_DEFAULT "8.4.0"

/* Error codes of this module (negative). */
#define GATEWAY_CLIENT_E_INVALID (-1) /* bad options */
#define GATEWAY_CLIENT_E_NOMEM (-2)
#define GATEWAY_CLIENT_E_STATE (-3)   /* wrong lifecycle state */

struct gateway_client_options {
    const char *const *contact_points; /* "host:port", at least one */
    size_t contact_point_count;        /* <= CONTACT_POINTS_MAX */
    uint64_t request_timeout_ms;       /* per call when no deadline */
    uint64_t topology_refresh_ms;      /* TopologyRequest period */
    uint64_t topology_stale_ms;        /* a report older is ignored */
    uint64_t reconnect_ms_min;         /* first reconnect delay */
    uint64_t reconnect_ms_max;         /* backoff cap */
    uint32_t calls_max;                /* calls in flight */
    uint32_t connection_requests_max;  /* awaiting answers, per broker */
    uint32_t brokers_max;              /* brokers known */
    uint32_t jobs_max;                 /* ActivateJobs calls open */
    uint32_t job_streams_max;          /* StreamActivatedJobs calls open */
    uint64_t long_polling_ms;          /* requestTimeout 0 means this */
    uint64_t job_probe_ms;             /* parked: re-probe period */
    uint32_t stream_batch;             /* jobs per partition per round */
    size_t frame_bytes_max;            /* command frame body limit */
    const char *gateway_version;       /* TopologyResponse.gatewayVersion */
};

/* Fills opts with the defaults (no contact points). */
void gateway_client_options_default(struct gateway_client_options *opts);

struct gateway_client;
typedef void (*gateway_client_close_cb)(struct gateway_client *client);

/* Counters, for tests and metrics. */
struct gateway_client_stats {
    uint64_t calls_started;
    uint64_t calls_retried;         /* retry attempts scheduled */
    uint64_t calls_rejected;        /* RESOURCE_EXHAUSTED by a bound */
    uint64_t calls_expired;         /* DEADLINE_EXCEEDED here */
    uint64_t requests_sent;         /* command frames written */
    uint64_t topology_responses;
    uint64_t connects;              /* successful TCP connects */
    uint64_t disconnects;
    uint64_t protocol_errors;       /* bad frames: connection closed */
    uint64_t jobs_activated;        /* jobs handed to clients */
    uint64_t jobs_failed_back;      /* activated jobs that could not be
                                       delivered, failed back to the
                                       broker with their retries */
    uint64_t job_rounds;            /* activation rounds started */
    uint64_t job_awaits;            /* await_jobs requests sent */
};

struct client_broker; /* private to client.c */
struct client_call;   /* private to client.c */
struct client_jobs;   /* private to client_jobs.c */

/* Caller-allocated; fields are private except data. */
struct gateway_client {
    void *data;
    uv_loop_t *loop;
    struct gateway_backend backend;     /* backend.data == this */
    struct gateway_client_options opts; /* strings copied below */
    char *gateway_version;
    struct client_broker **brokers; /* [opts.brokers_max] */
    uint32_t broker_count;
    struct client_call *calls;      /* doubly linked, in flight */
    uint32_t call_count;            /* <= opts.calls_max */
    uint64_t next_request_id;       /* never 0 */
    struct client_jobs *jobs;       /* doubly linked: ActivateJobs and
                                       StreamActivatedJobs calls */
    uint32_t jobs_count;            /* ActivateJobs, <= opts.jobs_max */
    uint32_t streams_count;         /* <= opts.job_streams_max */
    uv_timer_t jobs_timer;          /* earliest job deadline or wake */
    uint32_t rr_next;               /* round robin of instance creation */
    uint32_t rr_types[64];          /* round robin of activation, per
                                       job type (hashed) */
    uv_timer_t refresh_timer;       /* topology refresh */
    uv_timer_t call_timer;          /* earliest retry or deadline */
    uv_prepare_t flusher;           /* writes queued requests once per
                                       loop iteration */
    bool flusher_active;
    uint32_t handles_open;          /* uv handles not yet closed */
    bool started;
    bool closing;
    bool ever_topology;             /* a topology arrived once */
    gateway_client_close_cb close_cb;
    struct gateway_client_stats stats;
    /* The last merged topology handed out (gateway_client_topology). */
    void *topology_mem;
    GatewayProtocol__TopologyResponse topology;
    char errmsg[256];
};

/* Initializes client on loop: checks and copies opts (contact points
 * copied), opens its timers. Returns 0, GATEWAY_CLIENT_E_INVALID (no or
 * too many contact points, a malformed "host:port", zero bounds) with
 * client->errmsg set, or GATEWAY_CLIENT_E_NOMEM; on failure nothing needs
 * closing. After success gateway_client_close() is required. */
int gateway_client_init(uv_loop_t *loop, struct gateway_client *client,
                        const struct gateway_client_options *opts);

/* Connects to the contact points and starts the topology refresh.
 * Returns 0 or GATEWAY_CLIENT_E_STATE (already started or closing). */
int gateway_client_start(struct gateway_client *client);

/* The backend interface (borrowed; valid until close_cb). */
struct gateway_backend *gateway_client_backend(struct gateway_client *client);

/* Builds the merged topology and returns it. Owned by the client, valid
 * until the next call of this function or the next return to the loop,
 * whichever is first. Never NULL (no brokers: empty list, counts 0). */
const GatewayProtocol__TopologyResponse *
gateway_client_topology(struct gateway_client *client);

/* The node id of the leader of partition_id (>= 1) as currently known, or
 * -1 when none is. */
int64_t gateway_client_leader(struct gateway_client *client,
                              uint32_t partition_id);

/* Zeebe's partition of a message correlation key (SubscriptionUtil): a
 * Java String.hashCode-style hash h = 31*h + b over the key's UTF-8 bytes
 * taken as signed, then abs(h % partitions_count) + 1. partitions_count
 * must be >= 1. */
uint32_t gateway_client_partition_of_key(const char *key,
                                         uint32_t partitions_count);

/* Fails every call in flight with UNAVAILABLE ("gateway is shutting
 * down"), closes connections and timers, and calls close_cb (may be NULL)
 * once every handle is closed; the memory may be released from then on.
 * Idempotent. */
void gateway_client_close(struct gateway_client *client,
                          gateway_client_close_cb close_cb);

#endif /* TANDEM_GATEWAY_CLIENT_H */
