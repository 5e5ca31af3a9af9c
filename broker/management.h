/* management.h: the broker's management HTTP server (port 9600, Zeebe's
 * Spring actuator server).
 *
 * Data flow: an HTTP/1.1 request arrives on the listener (libh2o, libuv
 * flavour, running on the broker's loop) -> the router matches the path
 * and method -> for every request the server asks the broker for a fresh
 * snapshot of its state through the provider vtable (struct
 * management_provider, filled into a struct management_status owned by the
 * server) -> the handler turns that snapshot into a status code and, where
 * the endpoint has one, a JSON body (jansson) -> h2o writes the response.
 * The server keeps no broker state of its own apart from one latch per
 * partition for Zeebe's "ready never goes back" rule (see /ready below).
 *
 * Endpoints (zeebe-facts 1.6 and 1.7; docs/operations.md lists them with
 * examples). The probes accept only GET and HEAD; any other method on a
 * known path is 405 with an Allow header, an unknown path is 404; every error
 * produced by the router carries a JSON body {"status":N,"error":"...",
 * "message":"...","path":"..."}. Requests that are not valid HTTP are
 * answered 400 by h2o's parser before routing (a plain-text body) and the
 * connection is closed; the server stays up.
 *
 *   GET /startup   204 when started, else 503 (empty body)        Zeebe 8.4
 *   GET /ready     204 when ready, else 503 (empty body)          Zeebe 8.4
 *   GET /health    204 when healthy, else 503 (empty body)        Zeebe 8.4
 *   GET /actuator/health            200 {"status":"UP",...} / 503 DOWN
 *   GET /actuator/health/status     (= healthy)   Zeebe 8.5+ group names
 *   GET /actuator/health/readiness  (= ready)
 *   GET /actuator/health/startup    (= started)
 *   GET /actuator/health/liveness   always UP while the server answers
 *   GET /actuator/partitions        {"<id>": {"role": "LEADER", ...}}
 *   GET /actuator/cluster           the cluster configuration (provider)
 *
 * Cluster operations (zeebe-facts 1.2-1.5, 1.9; docs/operations.md), each
 * parsed here into a struct management_change_request and answered by the
 * provider's change() callback, synchronously:
 *
 *   POST   /actuator/cluster/brokers          body [ids] (numbers or
 *          numeric strings); query dryRun, force, replicationFactor
 *   POST   /actuator/cluster/brokers/{id}     add one broker
 *   DELETE /actuator/cluster/brokers/{id}     remove one broker
 *   POST   /actuator/cluster/brokers/{b}/partitions/{p}   join; optional
 *          body {"priority": n}; also /cluster/partitions/{p}/brokers/{b}
 *   DELETE the same                           leave
 *   DELETE /actuator/cluster/changes/{id}     cancel (dryRun -> 501)
 *   GET    /actuator/exporters                [{"exporterId","status"}]
 *   POST   /actuator/exporters/{id}/enable    optional body
 *          {"initializeFrom": "<id>"}; query dryRun
 *   POST   /actuator/exporters/{id}/disable   query dryRun
 *   POST   /actuator/exporting/pause[?soft=true], /actuator/exporting/resume
 *   POST   /actuator/rebalance
 *
 * Answers: what the provider says (202 + PlannedOperationsResponse,
 * 4xx/5xx + {"message": ...}), except exporting pause/resume, which answer
 * as Zeebe 8.4.7+/8.5.1+/8.6+ do: HTTP 200 with the envelope
 * {"body":null,"status":204,"contentType":null} on success and
 * {"body":"<message>","status":<provider status>,"contentType":null} on
 * failure; rebalance answers 200 with an empty body. Parse errors are 400
 * with {"message": ...} naming the problem; a body that is not
 * application/json is 415; a body above MANAGEMENT_BODY_MAX is 413 (from
 * h2o); POST on /actuator/cluster/partitions or /actuator/cluster/changes
 * is 501 with a plain-text body, as in Zeebe; any other path under these
 * prefixes is 404, a wrong method 405.
 *
 * Semantics (Zeebe 8.4 BrokerHealthCheckService, zeebe-facts 1.7):
 *   started = status.started (storage loaded, transport listening,
 *             partitions created);
 *   ready   = started, status.ready, and every hosted partition has been
 *             leader or follower at least once since this server was
 *             initialised ("installed"); once a partition is installed it
 *             stays installed, so readiness does not flap with elections;
 *   healthy = started and every hosted partition's health is HEALTHY.
 *
 * Concurrency: everything runs on the loop thread given to
 * management_init(); the provider is called on that thread, synchronously,
 * once per routed request.
 */
#ifndef TANDEM_BROKER_MANAGEMENT_H
#define TANDEM_BROKER_MANAGEMENT_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

/* Limits. MANAGEMENT_PARTITIONS_MAX equals BROKER_PARTITIONS_MAX (checked
 * at compile time in management.c): a broker hosts at most every
 * partition. */
#define MANAGEMENT_PARTITIONS_MAX 512
#define MANAGEMENT_CONNECTIONS_MAX 64 /* default for connections_max */
#define MANAGEMENT_HOST_MAX 253
#define MANAGEMENT_VERSION_MAX 63
#define MANAGEMENT_BODY_MAX (64u << 10) /* request body bytes */
#define MANAGEMENT_BROKERS_MAX                                                 \
    256                            /* ids in POST /actuator/cluster/brokers    \
                                      (= BROKER_CLUSTER_SIZE_MAX) */
#define MANAGEMENT_ID_MAX 63       /* exporter id bytes */
#define MANAGEMENT_MESSAGE_MAX 255 /* reply message bytes */
#define MANAGEMENT_PHASE_MAX 15    /* exporter phase bytes */

/* Error codes (negative). Generated with the message table. */
#define MANAGEMENT_ERRNO_MAP(X)                                                \
    X(INVALID, -1, "invalid argument")                                         \
    X(NOMEM, -2, "out of memory")                                              \
    X(ADDRESS, -3, "the listen address does not resolve")                      \
    X(LISTEN, -4, "cannot bind or listen on the address")                      \
    X(STATE, -5, "the server is not in a state that allows this call")

enum management_error {
#define MANAGEMENT_ERRNO_ENUM(name, code, msg) MANAGEMENT_E_##name = code,
    MANAGEMENT_ERRNO_MAP(MANAGEMENT_ERRNO_ENUM)
#undef MANAGEMENT_ERRNO_ENUM
};

/* A partition replica's Raft role as seen by this broker. */
enum management_role {
    MANAGEMENT_ROLE_INACTIVE = 0, /* not (yet) a voting member, or stopped */
    MANAGEMENT_ROLE_FOLLOWER,     /* follower or candidate */
    MANAGEMENT_ROLE_LEADER,
};

/* Zeebe's HealthStatus of a partition (zeebe_health metric 1/0/-1). */
enum management_health {
    MANAGEMENT_HEALTH_HEALTHY = 0,
    MANAGEMENT_HEALTH_UNHEALTHY,
    MANAGEMENT_HEALTH_DEAD,
};

/* One partition hosted by this broker. Indexes are Raft log indexes. */
struct management_partition {
    uint32_t partition_id;         /* 1..partitionsCount */
    enum management_role role;     /* current Raft role */
    enum management_health health; /* partition health */
    uint64_t term;                 /* current Raft term */
    uint64_t commit_index;         /* highest index known committed */
    uint64_t applied_index;        /* highest index applied (processed) */
    uint64_t last_index;           /* last index in the local log */
    uint64_t snapshot_index;       /* last snapshot's index, 0: none */
    uint64_t snapshot_term;        /* last snapshot's term, 0: none */
    /* Zeebe's exporterPhase ("EXPORTING", "PAUSED", "SOFT_PAUSED",
     * "CLOSED"); "" (the zeroed default) omits exporterPhase and
     * exportedPosition from /actuator/partitions. */
    char exporter_phase[MANAGEMENT_PHASE_MAX + 1];
    int64_t exported_position; /* lowest acknowledged position of the
                                  partition's exporters, -1: none */
};

/* What a cluster operation request asks (see the table above). The
 * values 1..7 equal enum cluster_config_request_kind
 * (broker/cluster_config.h), so the broker may pass them through. */
enum management_request_kind {
    MANAGEMENT_REQUEST_SCALE = 1,         /* POST /cluster/brokers */
    MANAGEMENT_REQUEST_BROKER_ADD = 2,    /* POST /cluster/brokers/{id} */
    MANAGEMENT_REQUEST_BROKER_REMOVE = 3, /* DELETE /cluster/brokers/{id} */
    MANAGEMENT_REQUEST_PARTITION_JOIN = 4,
    MANAGEMENT_REQUEST_PARTITION_LEAVE = 5,
    MANAGEMENT_REQUEST_EXPORTER_ENABLE = 6,
    MANAGEMENT_REQUEST_EXPORTER_DISABLE = 7,
    MANAGEMENT_REQUEST_CHANGE_CANCEL = 8, /* DELETE /cluster/changes/{id} */
    MANAGEMENT_REQUEST_EXPORTING_PAUSE = 9,
    MANAGEMENT_REQUEST_EXPORTING_SOFT_PAUSE = 10,
    MANAGEMENT_REQUEST_EXPORTING_RESUME = 11,
    MANAGEMENT_REQUEST_REBALANCE = 12,
    MANAGEMENT_REQUEST_EXPORTERS_GET = 13, /* GET /actuator/exporters */
};

/* One parsed request. Fields a kind does not use are zero. Owned by the
 * server, borrowed by change() for the call. About 1.2 KiB. */
struct management_change_request {
    int kind;                    /* enum management_request_kind */
    bool dry_run;                /* ?dryRun=true */
    bool force;                  /* ?force=true (SCALE) */
    uint32_t replication_factor; /* ?replicationFactor=n (>= 1), 0 absent */
    uint32_t broker_count;       /* SCALE: ids in brokers[], as sent
                                    (duplicates kept) */
    uint32_t brokers[MANAGEMENT_BROKERS_MAX];
    uint32_t broker_id;    /* BROKER_*, PARTITION_* */
    uint32_t partition_id; /* PARTITION_* */
    uint32_t priority;     /* PARTITION_JOIN: body priority, 0 absent */
    uint64_t change_id;    /* CHANGE_CANCEL */
    char exporter[MANAGEMENT_ID_MAX + 1];        /* EXPORTER_* */
    char initialize_from[MANAGEMENT_ID_MAX + 1]; /* ENABLE: "" absent */
};

/* The provider's answer to one request. */
#define MANAGEMENT_DEFERRED_MAX 32 /* requests answered later at once */
#define MANAGEMENT_REPLY_LATER 1   /* change(): answered later, see below */
struct management_reply {
    uint64_t ticket; /* set by the server before change(): non-zero when
                        the provider may return MANAGEMENT_REPLY_LATER
                        and answer with management_reply_finish(ticket)
                        (0 when MANAGEMENT_DEFERRED_MAX requests wait) */
    int status; /* HTTP status, 200..599 */
    void *body; /* a jansson json_t * whose reference passes to the server,
                   or NULL: {"message": message} when status >= 400, no
                   body otherwise */
    char message[MANAGEMENT_MESSAGE_MAX + 1];
};

/* The broker's state, as filled by the provider. Owned by the server; the
 * provider only writes into it. About 36 KiB. */
struct management_status {
    uint32_t node_id; /* cluster.nodeId */
    bool started;     /* startup finished: storage loaded,
                         transport listening, partitions created */
    bool ready;       /* the broker's own veto on readiness; set
                         it true once started and false only when
                         shutting down (see "ready" above) */
    char version[MANAGEMENT_VERSION_MAX + 1]; /* e.g. "0.1.0" */
    uint32_t partition_count;                 /* entries used in partitions[] */
    struct management_partition partitions[MANAGEMENT_PARTITIONS_MAX];
};

/* What the broker implements. All functions run on the loop thread. */
struct management_provider {
    void *data; /* passed back as the first argument */
    /* Fills *out (zeroed by the server before the call) with the current
     * state. Returns 0, or a negative value when the state cannot be read:
     * the request is then answered 503 with a JSON error body. */
    int (*status)(void *data, struct management_status *out);
    /* GET /actuator/cluster: sets *out to a new JSON value (jansson's
     * json_t, owned by the server afterwards) describing the cluster
     * configuration. Returns 0, or a negative value (503). May be NULL:
     * the endpoint then answers 404. */
    int (*cluster)(void *data, void **out);
    /* Every cluster operation route (see above): answers req (parsed and
     * checked for syntax here; the provider checks it against the cluster:
     * unknown ids, planning errors) into *out (zeroed by the server). A
     * SCALE with a dry run must not change anything. Returns 0 (the reply
     * is sent), or a negative value (500 with {"message": ...}; a body
     * set in *out is released). May be NULL: those routes answer 404. */
    int (*change)(void *data, const struct management_change_request *req,
                  struct management_reply *out);
    /* (change() may also return MANAGEMENT_REPLY_LATER when out->ticket
     * is non-zero: nothing is sent now; the provider must later call
     * management_reply_finish() with that ticket exactly once.) */
};

/* Listening options. Borrowed during management_init() only. */
struct management_options {
    const char *host;         /* bind address, e.g. "0.0.0.0" or
                                 "127.0.0.1"; NULL means "0.0.0.0" */
    uint16_t port;            /* 0: an ephemeral port (see
                                 management_bound_port) */
    uint32_t connections_max; /* 0: MANAGEMENT_CONNECTIONS_MAX. A
                                 connection above the limit is answered
                                 503 and closed at once. */
};

struct management_impl; /* private: h2o context, listener, connections */

/* The server handle. Caller-allocated (libuv style); must stay valid and
 * unmoved from management_init() until the close callback has run. */
struct management {
    void *data; /* user field, untouched by the server */
    struct management_impl *impl;
};

typedef void (*management_close_cb)(struct management *m);

/* Prepares the server on loop: copies the options, resolves the address
 * (numeric IPv4/IPv6 literal, or a name via getaddrinfo, blocking) and
 * allocates the h2o configuration. Opens no socket.
 *
 *   loop: borrowed; must outlive the server.
 *   m:    caller-owned; fully initialised on success.
 *   opts: borrowed during the call; NULL means host "0.0.0.0", an
 *         ephemeral port and the default connection limit.
 *   p:    borrowed until the close callback; p->status must be set.
 *
 * Returns 0, MANAGEMENT_E_INVALID (NULL loop/m/p/p->status, host too
 * long), MANAGEMENT_E_ADDRESS, MANAGEMENT_E_NOMEM. On error nothing needs
 * closing. After success management_close() is required. */
int management_init(uv_loop_t *loop, struct management *m,
                    const struct management_options *opts,
                    const struct management_provider *p);

/* Binds and starts listening (backlog 128). Returns 0,
 * MANAGEMENT_E_LISTEN (address in use, permission, ...; the reason is in
 * management_errmsg()), MANAGEMENT_E_STATE (already started or closing).
 * After an error the server may only be closed. */
int management_start(struct management *m);

/* The port the listener is bound to (the ephemeral port when opts->port
 * was 0), or 0 if the server is not listening. */
uint16_t management_bound_port(const struct management *m);

/* Stops listening, closes every open connection, releases h2o's handles
 * and memory, and then calls cb(m) exactly once from the loop (never from
 * inside this call). m may be freed in cb or later. cb may be NULL. A
 * second call is ignored. */
void management_close(struct management *m, management_close_cb cb);

/* Answers the request change() deferred under ticket with reply (its
 * body, if any, passes to the server). Returns 0, or MANAGEMENT_E_STATE
 * when the request is gone (its connection closed, or an unknown ticket);
 * the body is released either way. Loop thread only. */
int management_reply_finish(struct management *m, uint64_t ticket,
                            struct management_reply *reply);

/* The last error's description (a static empty string if none); borrowed
 * from m until the next call on m. */
const char *management_errmsg(const struct management *m);

/* The message of a MANAGEMENT_E_* code ("unknown error" otherwise). */
const char *management_strerror(int code);

#endif
