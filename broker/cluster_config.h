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

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "broker/placement.h"

/* ------------------------------------------------------------------------
 * Limits
 * --------------------------------------------------------------------- */

/* The format this code writes and the largest it reads. */
#define CLUSTER_CONFIG_FORMAT 1u

/* The largest packed configuration cluster_config_decode() accepts. A
 * configuration at every limit below packs to about 100 KiB; the bound
 * also caps what a peer can make the decoder allocate. */
#define CLUSTER_CONFIG_BYTES_MAX ((size_t)256 << 10)

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

/* One replica of a partition. */
struct cluster_config_replica {
    uint32_t node_id; /* a member, <= BROKER_NODE_ID_MAX */
    uint8_t priority; /* raft election priority, >= 1 */
};

/* One partition and the brokers hosting it. */
struct cluster_config_partition {
    uint32_t id;            /* = index + 1 */
    uint32_t replica_count; /* 1..BROKER_REPLICAS_MAX */
    struct cluster_config_replica
        replicas[BROKER_REPLICAS_MAX]; /* ascending node id */
};

/* The whole configuration. About 70 KiB: allocate it statically or on the
 * heap. Entries past member_count, partitions_count and replica_count are
 * ignored by every function (and zero in what this module produces). */
struct cluster_config {
    uint64_t version;            /* >= 1; larger replaces smaller */
    uint32_t cluster_size;       /* = member_count */
    uint32_t partitions_count;   /* 1..BROKER_PARTITIONS_MAX */
    uint32_t replication_factor; /* as configured, 1..BROKER_REPLICAS_MAX;
                                    a partition may have fewer replicas */
    uint32_t member_count;       /* 1..BROKER_CLUSTER_SIZE_MAX */
    uint32_t members[BROKER_CLUSTER_SIZE_MAX]; /* strictly ascending ids */
    struct cluster_config_partition partitions[BROKER_PARTITIONS_MAX];
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
 * by id (a member hosting none lists []). Returns 0,
 * CLUSTER_CONFIG_E_INVALID or CLUSTER_CONFIG_E_NOMEM. */
int cluster_config_to_json(const struct cluster_config *cfg, json_t **out);

/* Parses the file form (see cluster_config.c for the exact shape: the
 * to_json body plus "format", "clusterSize", "partitionsCount",
 * "replicationFactor") from text[0..len) into *out and validates it.
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

#endif /* TANDEM_BROKER_CLUSTER_CONFIG_H */
