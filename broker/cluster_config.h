/* cluster_config.h: the cluster configuration, a versioned object that
 * every broker persists and spreads.
 *
 * The cluster configuration says which brokers are members of the cluster,
 * which partitions each hosts, and with which raft election priority (the
 * "cluster topology" of Zeebe's GET /actuator/cluster). It starts as the
 * round-robin placement of the static configuration (version 1) and later
 * changes only through a new version; a larger version always replaces a
 * smaller one, and versions never go backwards.
 *
 * Data flow:
 *
 *   broker_config --broker_placement_compute*()--> struct broker_placement
 *     --cluster_config_from_placement()--> struct cluster_config (v1)
 *
 *   <data_dir>/cluster-config.json --cluster_config_load()--> struct
 *   struct --cluster_config_save()--> <data_dir>/cluster-config.json
 *       (tmp file, fsync, rename, fsync of the directory: a crash leaves
 *       either the old or the new file, never a partial one)
 *
 *   struct --cluster_config_encode()--> packed tandem.raft.ClusterConfig
 *       --gossip (MemberList.cluster_config, broker/transport.h)-->
 *       peer: cluster_config_decode() --> struct (validated)
 *
 *   struct --cluster_config_to_json()--> the GET /actuator/cluster body
 *
 *   Changes (management requests, executed by the broker):
 *   struct + request --cluster_config_plan()--> operations, expected
 *       topology (or 400/409 + message) --cluster_config_plan_to_json()-->
 *       the 202 PlannedOperationsResponse;
 *   --cluster_config_change_start()--> struct with a pending change
 *       (version + 1) -> the broker executes ops[completed_count] ->
 *       cluster_config_op_complete() (version + 1 each; the last one moves
 *       the change to lastChange) or cluster_config_change_finish()
 *       (FAILED, or CANCELLED by DELETE /actuator/cluster/changes/{id});
 *       after each step the broker saves and gossips the new version.
 *
 * Two formats, two purposes: the wire uses protobuf (proto/raft.proto,
 * message ClusterConfig) because it is compact, already spoken on the
 * broker-to-broker connection, and lets an older broker skip fields a
 * newer one adds; the file uses JSON so that an operator can read it, in
 * the shape of Zeebe's GET /actuator/cluster plus the fields that shape
 * lacks. Both decoders are strict: any input that does not describe a
 * configuration that passes cluster_config_validate() is an error with a
 * one-line reason, never a crash.
 *
 * Canonical form: members ascending, partitions[k] describing partition
 * k + 1, each partition's replicas by ascending node id (like Zeebe, which
 * keys the configuration by member). The primary is the replica with the
 * highest priority. So equal configurations encode to equal bytes, on every
 * broker.
 *
 * Pure apart from the two file functions; no globals; single-threaded use
 * of each struct. Node ids are broker ids (0-based, as in the broker
 * configuration), not raft ids.
 */
#ifndef TANDEM_BROKER_CLUSTER_CONFIG_H
#define TANDEM_BROKER_CLUSTER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "broker/placement.h"

/* ------------------------------------------------------------------------
 * Limits
 * --------------------------------------------------------------------- */

/* The format this code writes and the largest it reads. */
#define CLUSTER_CONFIG_FORMAT 1u

/* The largest packed configuration cluster_config_decode() accepts (equal
 * to TRANSPORT_CLUSTER_CONFIG_BYTES_MAX, what gossip carries). The base
 * configuration at every limit below packs to about 100 KiB; exporters and
 * a change add their JSON extension (see "Wire form" in cluster_config.c),
 * and the planner refuses a change whose configuration would not fit. The
 * bound also caps what a peer can make the decoder allocate. */
#define CLUSTER_CONFIG_BYTES_MAX ((size_t)1 << 20)

/* The largest cluster-config.json cluster_config_load() reads. */
#define CLUSTER_CONFIG_FILE_BYTES_MAX ((size_t)4 << 20)

/* The file name inside the data directory. */
#define CLUSTER_CONFIG_FILE_NAME "cluster-config.json"

/* Longest path cluster_config_save()/_load() build, NUL included. */
#define CLUSTER_CONFIG_PATH_MAX 4096u

/* Error messages fit in this many bytes (NUL included). */
#define CLUSTER_CONFIG_ERRMSG_SIZE 256u

/* ------------------------------------------------------------------------
 * Errors
 * --------------------------------------------------------------------- */

#define CLUSTER_CONFIG_ERRNO_MAP(X)                                            \
    X(INVALID, -1, "cluster configuration breaks a rule")                      \
    X(MALFORMED, -2, "encoded or stored cluster configuration is malformed")   \
    X(NOT_FOUND, -3, "no cluster configuration stored")                        \
    X(IO, -4, "cluster configuration file cannot be read or written")          \
    X(NOMEM, -5, "out of memory")                                              \
    X(TOO_BIG, -6, "output buffer or input too small or too large")

enum cluster_config_errno {
#define CLUSTER_CONFIG__ERRNO_ENUM(name, value, text)                          \
    CLUSTER_CONFIG_E_##name = (value),
    CLUSTER_CONFIG_ERRNO_MAP(CLUSTER_CONFIG__ERRNO_ENUM)
#undef CLUSTER_CONFIG__ERRNO_ENUM
};

/* A static description of a CLUSTER_CONFIG_E_* code (or 0). Never NULL. */
const char *cluster_config_strerror(int rv);

/* ------------------------------------------------------------------------
 * The configuration
 * --------------------------------------------------------------------- */

/* Exporters known to the configuration, and the length of an id. */
#define CLUSTER_CONFIG_EXPORTERS_MAX 8u
#define CLUSTER_CONFIG_EXPORTER_ID_MAX 63u /* bytes, NUL excluded */

/* Operations of one change (pending and completed together). A plan that
 * needs more is refused with 400. */
#define CLUSTER_CONFIG_OPERATIONS_MAX 4096u

/* An exporter's state on one partition replica (Zeebe ExporterState).
 * The aggregate ENABLING/DISABLING of GET /actuator/exporters is derived
 * from these and the pending change (cluster_config_exporters_to_json). */
enum cluster_config_exporter_state {
    CLUSTER_CONFIG_EXPORTER_ENABLED = 0,
    CLUSTER_CONFIG_EXPORTER_DISABLED = 1,
};

/* Exporter exp of one replica. */
struct cluster_config_replica_exporter {
    uint8_t state;             /* enum cluster_config_exporter_state */
    uint8_t initialized_from;  /* exporter index + 1, 0: none */
    uint16_t metadata_version; /* 0 never enabled by a change; +1 per
                                  enable (Zeebe metadataVersion) */
};

/* One replica of a partition. */
struct cluster_config_replica {
    uint32_t node_id; /* a member, <= BROKER_NODE_ID_MAX */
    uint8_t priority; /* raft election priority, >= 1 */
    /* exporters[e] for e < cluster_config.exporter_count */
    struct cluster_config_replica_exporter
        exporters[CLUSTER_CONFIG_EXPORTERS_MAX];
};

/* One partition and the brokers hosting it. */
struct cluster_config_partition {
    uint32_t id;            /* = index + 1 */
    uint32_t replica_count; /* 1..BROKER_REPLICAS_MAX */
    struct cluster_config_replica
        replicas[BROKER_REPLICAS_MAX]; /* ascending node id */
};

/* Zeebe's exporting state of every partition (POST /actuator/exporting/
 * pause|resume, zeebe-facts 1.5), kept cluster-wide in the configuration
 * so that every broker, including one that restarts, applies it. */
enum cluster_config_exporting {
    CLUSTER_CONFIG_EXPORTING = 0,
    CLUSTER_CONFIG_EXPORTING_PAUSED = 1,
    CLUSTER_CONFIG_EXPORTING_SOFT_PAUSED = 2,
};

/* The operations of a change (zeebe-facts 1.2, JSON "operation" names in
 * cluster_config_op_name()). */
enum cluster_config_op_type {
    CLUSTER_CONFIG_OP_BROKER_ADD = 1,  /* broker_id joins the cluster */
    CLUSTER_CONFIG_OP_BROKER_REMOVE,   /* broker_id (hosting nothing)
                                          leaves */
    CLUSTER_CONFIG_OP_PARTITION_JOIN,  /* broker_id becomes a replica of
                                          partition_id with priority */
    CLUSTER_CONFIG_OP_PARTITION_LEAVE, /* broker_id stops being one */
    CLUSTER_CONFIG_OP_PARTITION_RECONFIGURE_PRIORITY, /* new priority */
    CLUSTER_CONFIG_OP_PARTITION_FORCE_RECONFIGURE,    /* partition_id keeps
                                                only brokers[]; executed by
                                                broker_id */
    CLUSTER_CONFIG_OP_BROKER_FORCE_REMOVE,        /* brokers[0] removed by the
                                                    coordinator broker_id; JSON
                                                    "BROKER_REMOVE" with brokers */
    CLUSTER_CONFIG_OP_PARTITION_DISABLE_EXPORTER, /* exporter on the
                                             (broker_id, partition_id)
                                             replica */
    CLUSTER_CONFIG_OP_PARTITION_ENABLE_EXPORTER,  /* same, with
                                              initialize_from */
};

/* One operation. Fields an operation type does not use are zero. */
struct cluster_config_op {
    uint8_t type;            /* enum cluster_config_op_type */
    uint8_t priority;        /* JOIN, RECONFIGURE_PRIORITY: >= 1 */
    uint8_t broker_count;    /* FORCE_RECONFIGURE: 1..BROKER_REPLICAS_MAX;
                                BROKER_FORCE_REMOVE: 1 */
    uint8_t exporter;        /* exporter ops: exporter index */
    uint8_t initialize_from; /* ENABLE_EXPORTER: exporter index + 1, 0 */
    uint32_t broker_id;      /* every type */
    uint32_t partition_id;   /* partition ops: 1..partitions_count */
    int64_t completed_at_ms; /* Unix ms once completed, 0 while pending */
    uint16_t brokers[BROKER_REPLICAS_MAX]; /* ascending node ids */
};

/* A change's status (Zeebe TopologyChange/CompletedChange status). */
enum cluster_config_change_status {
    CLUSTER_CONFIG_CHANGE_NONE = 0, /* no change (lastChange absent) */
    CLUSTER_CONFIG_CHANGE_IN_PROGRESS,
    CLUSTER_CONFIG_CHANGE_COMPLETED,
    CLUSTER_CONFIG_CHANGE_FAILED,
    CLUSTER_CONFIG_CHANGE_CANCELLED,
};

/* The change in progress: ops[0..completed_count) are done, in order,
 * ops[completed_count..op_count) are pending; ops run one at a time in
 * list order. */
struct cluster_config_change {
    uint64_t id;    /* >= 1: the version that recorded it */
    uint8_t status; /* IN_PROGRESS (NONE when there is none) */
    uint32_t target_replication_factor; /* replication_factor once
                                           completed */
    int64_t started_at_ms;              /* Unix ms */
    uint32_t op_count;                  /* 1..CLUSTER_CONFIG_OPERATIONS_MAX */
    uint32_t completed_count;           /* < op_count */
    struct cluster_config_op ops[CLUSTER_CONFIG_OPERATIONS_MAX];
};

/* The last finished change (Zeebe CompletedChange). */
struct cluster_config_last_change {
    uint64_t id;             /* 0: none yet */
    uint8_t status;          /* COMPLETED, FAILED or CANCELLED */
    int64_t started_at_ms;   /* Unix ms */
    int64_t completed_at_ms; /* Unix ms */
};

/* The whole configuration. About 640 KiB: allocate it statically or on
 * the heap. Entries past member_count, partitions_count, replica_count,
 * exporter_count and op_count are ignored by every function (and zero in
 * what this module produces). */
struct cluster_config {
    uint64_t version;            /* >= 1; larger replaces smaller */
    uint32_t cluster_size;       /* = member_count */
    uint32_t partitions_count;   /* 1..BROKER_PARTITIONS_MAX */
    uint32_t replication_factor; /* as configured, 1..BROKER_REPLICAS_MAX;
                                    a partition may have fewer replicas */
    uint32_t member_count;       /* 1..BROKER_CLUSTER_SIZE_MAX */
    uint32_t members[BROKER_CLUSTER_SIZE_MAX]; /* strictly ascending ids */
    struct cluster_config_partition partitions[BROKER_PARTITIONS_MAX];

    /* Exporter ids by index; every replica has a state for each. */
    uint32_t exporter_count; /* 0..CLUSTER_CONFIG_EXPORTERS_MAX */
    char exporters[CLUSTER_CONFIG_EXPORTERS_MAX]
                  [CLUSTER_CONFIG_EXPORTER_ID_MAX + 1]; /* distinct */
    uint8_t exporting;                    /* enum cluster_config_exporting */
    struct cluster_config_change pending; /* status NONE: no change */
    struct cluster_config_last_change last;
};

/* Fills *out (caller-owned, fully overwritten) with version 1 of the
 * configuration described by placement (borrowed; as produced by
 * broker_placement_compute()). Replicas are reordered into the canonical
 * ascending node id order; priorities are kept. Returns 0, or
 * CLUSTER_CONFIG_E_INVALID if placement breaks a rule of
 * cluster_config_validate() (never for a computed placement). */
int cluster_config_from_placement(const struct broker_placement *placement,
                                  struct cluster_config *out);

/* Checks every rule: version >= 1; member_count in 1..BROKER_CLUSTER_SIZE_MAX
 * and equal to cluster_size; members strictly ascending and
 * <= BROKER_NODE_ID_MAX; partitions_count in 1..BROKER_PARTITIONS_MAX;
 * replication_factor in 1..BROKER_REPLICAS_MAX; partitions[k].id == k + 1;
 * every partition with 1..BROKER_REPLICAS_MAX replicas, each a member, in
 * strictly ascending node id order, priority >= 1. Returns 0 or
 * CLUSTER_CONFIG_E_INVALID, and on error writes the first broken rule to
 * err (err_len bytes, always NUL-terminated when err_len > 0; err may be
 * NULL if err_len is 0). */
int cluster_config_validate(const struct cluster_config *cfg, char *err,
                            size_t err_len);

/* 1 if a and b describe the same configuration (ignoring unused entries),
 * else 0. Both borrowed, both valid. */
int cluster_config_equal(const struct cluster_config *a,
                         const struct cluster_config *b);

/* ------------------------------------------------------------------------
 * Wire form: a packed tandem.raft.ClusterConfig
 * --------------------------------------------------------------------- */

/* Packs cfg (borrowed, must be valid) into buf[0..buf_size) and sets *len.
 * Equal configurations give equal bytes. Returns 0,
 * CLUSTER_CONFIG_E_INVALID (cfg fails cluster_config_validate()),
 * CLUSTER_CONFIG_E_TOO_BIG (more than buf_size bytes; a buffer of
 * CLUSTER_CONFIG_BYTES_MAX always suffices) or CLUSTER_CONFIG_E_NOMEM. */
int cluster_config_encode(const struct cluster_config *cfg, void *buf,
                          size_t buf_size, size_t *len);

/* Unpacks data[0..len) (borrowed) into *out (caller-owned, fully
 * overwritten) and validates it. Returns 0, or CLUSTER_CONFIG_E_MALFORMED
 * (not a ClusterConfig, more than CLUSTER_CONFIG_BYTES_MAX bytes, a format
 * above CLUSTER_CONFIG_FORMAT, a value out of range, a rule of
 * cluster_config_validate() broken), CLUSTER_CONFIG_E_NOMEM; err says why.
 * On error *out is zeroed. */
int cluster_config_decode(const void *data, size_t len,
                          struct cluster_config *out, char *err,
                          size_t err_len);

/* ------------------------------------------------------------------------
 * JSON: the management API and the file
 * --------------------------------------------------------------------- */

/* Builds the GET /actuator/cluster body (Zeebe GetTopologyResponse) of a
 * valid cfg and sets *out to a new reference the caller must json_decref():
 *
 *   {"version":1,"brokers":[{"id":0,"state":"ACTIVE","version":0,
 *     "lastUpdatedAt":"0000-01-01T00:00:00Z","partitions":[{"id":1,
 *     "state":"ACTIVE","priority":1,"config":{"exporting":{"exporters":
 *     []}}}]}]}
 *
 * Brokers ascending by id, each listing the partitions it hosts ascending
 * by id (a member hosting none lists []), each partition's "exporters"
 * {"id","state","metadataVersion"[,"initializedFrom"]} in exporter index
 * order; then "lastChange" {"id","status","startedAt","completedAt"} once
 * a change has finished and "pendingChange" {"id","status":"IN_PROGRESS",
 * "startedAt","completed":[Operation+"completedAt"],"pending":[Operation]}
 * while one runs (cluster_config.c, json_op(), has the Operation shape).
 * Returns 0, CLUSTER_CONFIG_E_INVALID or CLUSTER_CONFIG_E_NOMEM. */
int cluster_config_to_json(const struct cluster_config *cfg, json_t **out);

/* Parses the file form (see cluster_config.c for the exact shape: the
 * to_json body plus "format", "clusterSize", "partitionsCount",
 * "replicationFactor", "exporters", "exporting" and the pending change's
 * target "replicationFactor") from text[0..len) into *out and validates
 * it.
 * Unknown keys, duplicate keys, wrong types and broken rules are errors.
 * Returns 0, CLUSTER_CONFIG_E_MALFORMED or CLUSTER_CONFIG_E_NOMEM; err
 * names the offending key (and line and column for JSON syntax errors).
 * On error *out is zeroed. */
int cluster_config_from_json(const char *text, size_t len,
                             struct cluster_config *out, char *err,
                             size_t err_len);

/* Writes cfg (borrowed, must be valid) to <data_dir>/cluster-config.json
 * atomically: <data_dir>/cluster-config.json.tmp is written and fsynced,
 * renamed over the file, and data_dir is fsynced. On any failure the tmp
 * file is removed and the previous file is left untouched. Returns 0,
 * CLUSTER_CONFIG_E_INVALID (cfg invalid, data_dir NULL, empty or too long)
 * or CLUSTER_CONFIG_E_IO (err names the step, the path and strerror). */
int cluster_config_save(const char *data_dir, const struct cluster_config *cfg,
                        char *err, size_t err_len);

/* Reads <data_dir>/cluster-config.json into *out (caller-owned). Returns
 * 0, CLUSTER_CONFIG_E_NOT_FOUND (no such file: a fresh data directory;
 * the caller then creates version 1), CLUSTER_CONFIG_E_IO (unreadable, or
 * larger than CLUSTER_CONFIG_FILE_BYTES_MAX), CLUSTER_CONFIG_E_MALFORMED
 * (see cluster_config_from_json(); a truncated or corrupted file lands
 * here), CLUSTER_CONFIG_E_INVALID (bad data_dir) or
 * CLUSTER_CONFIG_E_NOMEM. err says why, with the path. */
int cluster_config_load(const char *data_dir, struct cluster_config *out,
                        char *err, size_t err_len);

/* ------------------------------------------------------------------------
 * Exporters and exporting
 * --------------------------------------------------------------------- */

/* The index of exporter id in cfg (borrowed), or -1 if unknown. */
int cluster_config_exporter_find(const struct cluster_config *cfg,
                                 const char *id);

/* Adds exporter id (1..CLUSTER_CONFIG_EXPORTER_ID_MAX bytes of
 * [A-Za-z0-9._-]), ENABLED with metadataVersion 0 on every replica: what
 * the broker calls for each exporter of its static configuration when it
 * creates version 1 (or finds one missing in a stored configuration).
 * Does not change the version. Returns the new index, or
 * CLUSTER_CONFIG_E_INVALID (bad id, already known: err says which) or
 * CLUSTER_CONFIG_E_TOO_BIG (CLUSTER_CONFIG_EXPORTERS_MAX reached). */
int cluster_config_exporter_add(struct cluster_config *cfg, const char *id,
                                char *err, size_t err_len);

/* Sets the cluster-wide exporting state (enum cluster_config_exporting);
 * the version grows by one when it changes. Returns 1 if it changed, 0 if
 * it already was that state, CLUSTER_CONFIG_E_INVALID for a bad state. */
int cluster_config_exporting_set(struct cluster_config *cfg, int state);

/* "EXPORTING", "PAUSED" or "SOFT_PAUSED" (Zeebe's exporterPhase names);
 * "UNKNOWN" for anything else. */
const char *cluster_config_exporting_name(int state);

/* GET /actuator/exporters (zeebe-facts 1.4): sets *out to a new JSON
 * array [{"exporterId":"...","status":"..."}] in exporter index order.
 * status: the state every replica agrees on when no change touches the
 * exporter; else ENABLING/DISABLING when the pending change enables or
 * disables it; else UNKNOWN. Returns 0 or CLUSTER_CONFIG_E_NOMEM. */
int cluster_config_exporters_to_json(const struct cluster_config *cfg,
                                     json_t **out);

/* ------------------------------------------------------------------------
 * Operations and changes
 * --------------------------------------------------------------------- */

/* Zeebe's operation name: "BROKER_ADD", ..., "PARTITION_ENABLE_EXPORTER"
 * (BROKER_FORCE_REMOVE is named "BROKER_REMOVE", as Zeebe renders it);
 * "UNKNOWN" for anything else. */
const char *cluster_config_op_name(int type);

/* Applies op (borrowed) to cfg's members, partitions and exporter states
 * (not to the version or the pending change): the effect of the operation
 * once the broker has executed it. Checks it first; on error cfg is
 * unchanged and err says why. Returns 0 or CLUSTER_CONFIG_E_INVALID
 * (e.g. adding a member twice, removing one that still hosts partitions,
 * leaving a partition's last replica, more than BROKER_REPLICAS_MAX
 * replicas, an unknown exporter). */
int cluster_config_op_apply(struct cluster_config *cfg,
                            const struct cluster_config_op *op, char *err,
                            size_t err_len);

/* The broker has executed the next pending operation (ops[completed_count])
 * at now_ms: applies it (cluster_config_op_apply), stamps it completed,
 * and when none is left finishes the change: lastChange becomes {id,
 * COMPLETED, startedAt, now}, the pending change is cleared and
 * replication_factor becomes its target. The version grows by one.
 * Returns 0, 1 when that finished the change, or CLUSTER_CONFIG_E_INVALID
 * (no change in progress, or the operation does not apply: cfg is then
 * unchanged and the caller should cluster_config_change_finish() it as
 * FAILED). */
int cluster_config_op_complete(struct cluster_config *cfg, int64_t now_ms,
                               char *err, size_t err_len);

/* Ends the change in progress with status FAILED or CANCELLED at now_ms:
 * lastChange records it, the pending change is cleared, completed
 * operations stay applied. change_id must be the pending change's id
 * (DELETE /actuator/cluster/changes/{id}). The version grows by one.
 * Returns 0, or CLUSTER_CONFIG_E_INVALID with err saying why (no change
 * in progress, another id, a bad status); the HTTP answer is 400. */
int cluster_config_change_finish(struct cluster_config *cfg, uint64_t change_id,
                                 int status, int64_t now_ms, char *err,
                                 size_t err_len);

/* ------------------------------------------------------------------------
 * Planning (pure)
 * --------------------------------------------------------------------- */

/* What an operator asked for. Parsed from HTTP by the broker. */
enum cluster_config_request_kind {
    /* POST /actuator/cluster/brokers: brokers[] is the final member list;
     * replication_factor 0 keeps the current one (the smallest replica
     * count of any partition); force keeps each partition's replicas on
     * the listed brokers only. */
    CLUSTER_CONFIG_REQUEST_SCALE = 1,
    CLUSTER_CONFIG_REQUEST_BROKER_ADD,      /* POST .../brokers/{broker_id} */
    CLUSTER_CONFIG_REQUEST_BROKER_REMOVE,   /* DELETE .../brokers/{id} */
    CLUSTER_CONFIG_REQUEST_PARTITION_JOIN,  /* POST .../brokers/{b}/
                                               partitions/{p}, priority */
    CLUSTER_CONFIG_REQUEST_PARTITION_LEAVE, /* DELETE the same */
    CLUSTER_CONFIG_REQUEST_EXPORTER_ENABLE, /* exporter, initialize_from */
    CLUSTER_CONFIG_REQUEST_EXPORTER_DISABLE,
};

struct cluster_config_request {
    int kind;                    /* enum cluster_config_request_kind */
    bool force;                  /* SCALE only */
    uint32_t replication_factor; /* SCALE: 0 keeps the current one */
    uint32_t broker_count;       /* SCALE: entries in brokers */
    const uint32_t *brokers;     /* SCALE: borrowed; any order, duplicates
                                    count once */
    uint32_t broker_id;          /* single-broker and partition kinds */
    uint32_t partition_id;       /* PARTITION_JOIN/LEAVE */
    uint32_t priority;           /* PARTITION_JOIN: 0 means 1 */
    const char *exporter;        /* EXPORTER_*: borrowed id */
    const char *initialize_from; /* EXPORTER_ENABLE: borrowed, or NULL */
};

/* A plan: the answer to a request. */
struct cluster_config_plan {
    int http_status; /* 202 planned (maybe no operation), 400 invalid
                        request, 409 another change in progress */
    char message[CLUSTER_CONFIG_ERRMSG_SIZE]; /* why, when not 202 */
    uint32_t coordinator; /* the broker that should run it: the lowest
                             member (lowest retained one with force) */
    struct cluster_config_change change; /* ops planned, status NONE */
    struct cluster_config expected;      /* cfg with every op applied (version,
                                            pending and last as in cfg) */
};

/* Plans req against cfg (both borrowed) into *out (caller-owned, about
 * 1.1 MiB: heap). Never changes cfg. Orders operations as Zeebe does:
 * BROKER_ADDs, then per partition (ascending) its PARTITION_JOINs,
 * PARTITION_LEAVEs (a leave comes first when a join would exceed
 * BROKER_REPLICAS_MAX replicas) and PARTITION_RECONFIGURE_PRIORITYs, then
 * BROKER_REMOVEs. A scale places partitions round-robin over the new
 * members with broker_placement_compute(), so its expected topology is
 * exactly that placement. Returns 0 with out->http_status 202, or
 * CLUSTER_CONFIG_E_INVALID with out->http_status 400 or 409 and
 * out->message (409: "Cannot apply configuration change. Another
 * configuration change [...] is in progress."). */
int cluster_config_plan(const struct cluster_config *cfg,
                        const struct cluster_config_request *req,
                        struct cluster_config_plan *out);

/* Records a 202 plan with at least one operation as cfg's change in
 * progress, started at now_ms: its id is the new version (version + 1).
 * plan must come from cluster_config_plan(cfg, ...) with cfg unchanged
 * since. Returns the change id (> 0), or CLUSTER_CONFIG_E_INVALID (plan
 * not 202, no operation, a change already in progress). */
int64_t cluster_config_change_start(struct cluster_config *cfg,
                                    const struct cluster_config_plan *plan,
                                    int64_t now_ms);

/* The 202 body, Zeebe's PlannedOperationsResponse: {"changeId",
 * "currentTopology":[BrokerState], "plannedChanges":[Operation],
 * "expectedTopology":[BrokerState]}. change_id is what
 * cluster_config_change_start() returned, or for a dry run or a plan
 * without operations the id Zeebe reports: cfg->version + 1 for a dry
 * run with operations, the last change's id (or 0) without operations.
 * Sets *out to a new reference; returns 0 or CLUSTER_CONFIG_E_NOMEM. */
int cluster_config_plan_to_json(const struct cluster_config *cfg,
                                const struct cluster_config_plan *plan,
                                uint64_t change_id, json_t **out);

/* The JSON {"message": "..."} of an error answer; a new reference or NULL
 * (out of memory). */
json_t *cluster_config_error_json(const char *message);

#endif /* TANDEM_BROKER_CLUSTER_CONFIG_H */
