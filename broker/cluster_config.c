/* cluster_config.c: the cluster configuration's rules, its wire form
 * (protobuf), its JSON forms (management API and file) and its atomic
 * persistence (cluster_config.h).
 *
 * Data flow: every producer of a struct cluster_config (from_placement,
 * decode, from_json) ends with cluster_config_validate(), and every
 * consumer (encode, to_json, save) starts with it, so an invalid
 * configuration never reaches the wire, the disk or a caller.
 *
 * The file, <data_dir>/cluster-config.json, is the GET /actuator/cluster
 * body with the fields Zeebe reports elsewhere (REST /v2/topology) in
 * front; the per-partition replica lists are recovered from the brokers'
 * partition lists:
 *
 *   {
 *     "format": 1,                  <- CLUSTER_CONFIG_FORMAT, required
 *     "version": 2,                 <- >= 1, required
 *     "clusterSize": 3,             <- = number of brokers, required
 *     "partitionsCount": 3,         <- required
 *     "replicationFactor": 3,       <- required
 *     "exporters": ["es", "pg"],    <- optional, distinct ids, by index
 *     "exporting": "PAUSED",        <- optional, default "EXPORTING"
 *     "brokers": [                  <- required, one per member
 *       {
 *         "id": 0,                  <- required, 0..65535, distinct
 *         "state": "ACTIVE",        <- optional, only "ACTIVE" (format 1)
 *         "version": 0,             <- optional integer >= 0, ignored
 *         "lastUpdatedAt": "...",   <- optional string, ignored
 *         "partitions": [           <- required, may be []
 *           { "id": 1,              <- required, 1..partitionsCount
 *             "state": "ACTIVE",    <- optional, only "ACTIVE"
 *             "priority": 3,        <- required, 1..255
 *             "config": {"exporting": {"exporters": [  <- each exporter
 *               {"id": "es", "state": "ENABLED",           once when
 *                "metadataVersion": 1,                      "exporters" is
 *                "initializedFrom": "pg"}]}} }              given
 *         ]
 *       }
 *     ],
 *     "lastChange": {"id", "status", "startedAt", "completedAt"}, optional
 *     "pendingChange": {"id", "status": "IN_PROGRESS", "startedAt",
 *       "replicationFactor" (target), "completed": [op + "completedAt"],
 *       "pending": [op, ...]}                          optional
 *   }
 *
 * Any other key, a duplicate key, or a value of the wrong type is an
 * error: the file is written by this code, and an operator's typo must not
 * pass silently.
 */
#define _POSIX_C_SOURCE 200809L /* fsync, O_CLOEXEC, O_DIRECTORY */

#include "broker/cluster_config.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "proto/proto.h"

_Static_assert(BROKER_REPLICAS_MAX <= UINT8_MAX,
               "a replica count and its priorities fit a uint8_t");
_Static_assert(BROKER_NODE_ID_MAX <= INT32_MAX,
               "node ids are JSON integers and protobuf uint32");
_Static_assert(BROKER_PARTITIONS_MAX <= INT32_MAX, "partition ids fit int32");
_Static_assert(CLUSTER_CONFIG_ERRMSG_SIZE >= 64, "room for a useful message");

/* Zeebe's "never updated" timestamp (camunda/camunda#16256). */
#define TIMESTAMP_NEVER "0000-01-01T00:00:00Z"
#define STATE_ACTIVE "ACTIVE"
#define TMP_SUFFIX ".tmp"

/* The protobuf field number of the extension (see "Wire form"). */
#define CLUSTER_CONFIG__EXT_FIELD 8u

const char *cluster_config_strerror(int rv)
{
    switch (rv) {
    case 0:
        return "success";
#define CLUSTER_CONFIG__ERRNO_TEXT(name, value, text)                          \
    case (value):                                                              \
        return (text);
        CLUSTER_CONFIG_ERRNO_MAP(CLUSTER_CONFIG__ERRNO_TEXT)
#undef CLUSTER_CONFIG__ERRNO_TEXT
    default:
        return "unknown error";
    }
}

/* Writes a formatted message to err (if any) and returns rv. */
__attribute__((format(printf, 4, 5))) static int
fail(int rv, char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;

    assert(rv < 0);
    if (err != NULL && err_len > 0) {
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return rv;
}

/* ------------------------------------------------------------------------
 * Rules
 * --------------------------------------------------------------------- */

static int ext_validate(const struct cluster_config *cfg, char *err,
                        size_t err_len);
static bool ext_equal(const struct cluster_config *a,
                      const struct cluster_config *b);
static bool ext_present(const struct cluster_config *cfg);
static int ext_wire_build(const struct cluster_config *cfg, char **out);
static int ext_wire_read(const ProtobufCMessage *base,
                         struct cluster_config *out, char *err, size_t err_len);
static int file_json_build(const struct cluster_config *cfg, json_t **out);

int cluster_config_validate(const struct cluster_config *cfg, char *err,
                            size_t err_len)
{
    const int inv = CLUSTER_CONFIG_E_INVALID;

    assert(cfg != NULL);
    if (cfg->version == 0) {
        return fail(inv, err, err_len, "version must be >= 1");
    }
    if (cfg->member_count == 0 || cfg->member_count > BROKER_CLUSTER_SIZE_MAX) {
        return fail(inv, err, err_len, "%u brokers, must be 1..%u",
                    cfg->member_count, BROKER_CLUSTER_SIZE_MAX);
    }
    if (cfg->cluster_size != cfg->member_count) {
        return fail(inv, err, err_len,
                    "clusterSize %u differs from the %u brokers listed",
                    cfg->cluster_size, cfg->member_count);
    }
    for (uint32_t k = 0; k < cfg->member_count; k++) {
        if (cfg->members[k] > BROKER_NODE_ID_MAX) {
            return fail(inv, err, err_len, "broker id %u above %u",
                        cfg->members[k], BROKER_NODE_ID_MAX);
        }
        if (k > 0 && cfg->members[k - 1] >= cfg->members[k]) {
            return fail(inv, err, err_len,
                        "broker ids not strictly ascending (%u then %u)",
                        cfg->members[k - 1], cfg->members[k]);
        }
    }
    if (cfg->partitions_count == 0 ||
        cfg->partitions_count > BROKER_PARTITIONS_MAX) {
        return fail(inv, err, err_len, "partitionsCount %u, must be 1..%u",
                    cfg->partitions_count, BROKER_PARTITIONS_MAX);
    }
    if (cfg->replication_factor == 0 ||
        cfg->replication_factor > BROKER_REPLICAS_MAX) {
        return fail(inv, err, err_len, "replicationFactor %u, must be 1..%u",
                    cfg->replication_factor, BROKER_REPLICAS_MAX);
    }
    for (uint32_t i = 0; i < cfg->partitions_count; i++) {
        const struct cluster_config_partition *p = &cfg->partitions[i];
        if (p->id != i + 1) {
            return fail(inv, err, err_len,
                        "partition at index %u has id %u, expected %u", i,
                        p->id, i + 1);
        }
        if (p->replica_count == 0 || p->replica_count > BROKER_REPLICAS_MAX) {
            return fail(inv, err, err_len,
                        "partition %u has %u replicas, must be 1..%u", p->id,
                        p->replica_count, BROKER_REPLICAS_MAX);
        }
        for (uint32_t j = 0; j < p->replica_count; j++) {
            const struct cluster_config_replica *r = &p->replicas[j];
            bool member = false;
            if (j > 0 && p->replicas[j - 1].node_id >= r->node_id) {
                return fail(inv, err, err_len,
                            "partition %u: replica ids not strictly "
                            "ascending (%u then %u)",
                            p->id, p->replicas[j - 1].node_id, r->node_id);
            }
            if (r->priority == 0) {
                return fail(inv, err, err_len,
                            "partition %u: broker %u has priority 0", p->id,
                            r->node_id);
            }
            for (uint32_t k = 0; k < cfg->member_count && !member; k++) {
                member = cfg->members[k] == r->node_id;
            }
            if (!member) {
                return fail(inv, err, err_len,
                            "partition %u: broker %u is not a member", p->id,
                            r->node_id);
            }
            for (uint32_t e = 0;
                 e < cfg->exporter_count && e < CLUSTER_CONFIG_EXPORTERS_MAX;
                 e++) {
                const struct cluster_config_replica_exporter *x =
                    &r->exporters[e];
                if (x->state > CLUSTER_CONFIG_EXPORTER_DISABLED ||
                    x->initialized_from > cfg->exporter_count ||
                    x->initialized_from == e + 1) {
                    return fail(inv, err, err_len,
                                "partition %u: broker %u: exporter \"%s\" "
                                "has state %u, initialized from %u",
                                p->id, r->node_id, cfg->exporters[e], x->state,
                                x->initialized_from);
                }
            }
        }
    }
    return ext_validate(cfg, err, err_len);
}

int cluster_config_equal(const struct cluster_config *a,
                         const struct cluster_config *b)
{
    assert(a != NULL);
    assert(b != NULL);
    if (a->version != b->version || a->cluster_size != b->cluster_size ||
        a->partitions_count != b->partitions_count ||
        a->replication_factor != b->replication_factor ||
        a->member_count != b->member_count) {
        return 0;
    }
    assert(a->member_count <= BROKER_CLUSTER_SIZE_MAX);
    assert(a->partitions_count <= BROKER_PARTITIONS_MAX);
    if (memcmp(a->members, b->members,
               a->member_count * sizeof(a->members[0])) != 0) {
        return 0;
    }
    for (uint32_t i = 0; i < a->partitions_count; i++) {
        const struct cluster_config_partition *pa = &a->partitions[i];
        const struct cluster_config_partition *pb = &b->partitions[i];
        if (pa->id != pb->id || pa->replica_count != pb->replica_count) {
            return 0;
        }
        assert(pa->replica_count <= BROKER_REPLICAS_MAX);
        for (uint32_t j = 0; j < pa->replica_count; j++) {
            if (pa->replicas[j].node_id != pb->replicas[j].node_id ||
                pa->replicas[j].priority != pb->replicas[j].priority) {
                return 0;
            }
        }
    }
    return ext_equal(a, b) ? 1 : 0;
}

/* Sorts a partition's replicas by node id (insertion sort: at most
 * BROKER_REPLICAS_MAX of them). */
static void partition_replicas_sort(struct cluster_config_partition *p)
{
    for (uint32_t k = 1; k < p->replica_count; k++) {
        struct cluster_config_replica v = p->replicas[k];
        uint32_t j = k;
        while (j > 0 && p->replicas[j - 1].node_id > v.node_id) {
            p->replicas[j] = p->replicas[j - 1];
            j--;
        }
        p->replicas[j] = v;
    }
}

int cluster_config_from_placement(const struct broker_placement *placement,
                                  struct cluster_config *out)
{
    assert(placement != NULL);
    assert(out != NULL);
    memset(out, 0, sizeof(*out));
    if (placement->member_count > BROKER_CLUSTER_SIZE_MAX ||
        placement->partition_count > BROKER_PARTITIONS_MAX) {
        return CLUSTER_CONFIG_E_INVALID;
    }
    out->version = 1;
    out->cluster_size = placement->member_count;
    out->member_count = placement->member_count;
    out->partitions_count = placement->partition_count;
    out->replication_factor = placement->replication_factor;
    memcpy(out->members, placement->members,
           placement->member_count * sizeof(out->members[0]));
    for (uint32_t i = 0; i < placement->partition_count; i++) {
        const struct broker_partition_placement *pp = &placement->partitions[i];
        struct cluster_config_partition *p = &out->partitions[i];
        if (pp->replica_count > BROKER_REPLICAS_MAX) {
            memset(out, 0, sizeof(*out));
            return CLUSTER_CONFIG_E_INVALID;
        }
        p->id = pp->partition_id;
        p->replica_count = pp->replica_count;
        for (uint32_t j = 0; j < pp->replica_count; j++) {
            p->replicas[j].node_id = pp->replicas[j].node_id;
            p->replicas[j].priority = pp->replicas[j].priority;
        }
        partition_replicas_sort(p);
    }
    if (cluster_config_validate(out, NULL, 0) != 0) {
        memset(out, 0, sizeof(*out));
        return CLUSTER_CONFIG_E_INVALID;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Wire form
 *
 *   ClusterConfig (proto/raft.proto)
 *   +--------------------------------------------------------------+
 *   | 1 format: uint32 = 1     | 2 version: uint64 >= 1            |
 *   | 3 cluster_size: uint32   | 4 partitions_count: uint32        |
 *   | 5 replication_factor     | 6 members: packed uint32, ascending|
 *   | 7 partitions: repeated ClusterConfigPartition, by id          |
 *   +--------------------------------------------------------------+
 *   ClusterConfigPartition: 1 id, 2 replicas (by ascending node id)
 *   ClusterConfigReplica:   1 node_id, 2 priority (1..255)
 *
 *   8 extension (not in proto/raft.proto: written and read as a protobuf
 *     unknown field, length-delimited, that older readers skip): present
 *     only when the configuration has exporters, a non-default exporting
 *     state, a pending or a last change; it holds the whole file form
 *     (JSON, compact, below) and the decoder requires its fields 2..7 to
 *     match the protobuf ones. Proposed proto change, wire-identical:
 *     "string extension_json = 8;" in message ClusterConfig.
 *
 * Every field is written in field order and repeated fields in canonical
 * order, so protobuf-c packs equal configurations to equal bytes.
 * --------------------------------------------------------------------- */

/* Writes v as a protobuf varint into out (>= 10 bytes); returns its
 * length. */
static size_t varint_put(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

/* Reads a varint from data[0..len); returns its length, 0 if malformed. */
static size_t varint_get(const uint8_t *data, size_t len, uint64_t *v)
{
    *v = 0;
    for (size_t n = 0; n < len && n < 10; n++) {
        *v |= (uint64_t)(data[n] & 0x7f) << (7 * n);
        if ((data[n] & 0x80) == 0) {
            return n + 1;
        }
    }
    return 0;
}

int cluster_config_encode(const struct cluster_config *cfg, void *buf,
                          size_t buf_size, size_t *len)
{
    Tandem__Raft__ClusterConfig msg = TANDEM__RAFT__CLUSTER_CONFIG__INIT;
    Tandem__Raft__ClusterConfigPartition *parts = NULL;
    Tandem__Raft__ClusterConfigPartition **part_ptrs = NULL;
    Tandem__Raft__ClusterConfigReplica *reps = NULL;
    Tandem__Raft__ClusterConfigReplica **rep_ptrs = NULL;
    ProtobufCMessageUnknownField ext_field;
    char *ext_json = NULL;
    uint8_t *ext_bytes = NULL;
    size_t rep_total = 0;
    size_t r = 0;
    size_t packed;
    int rv = 0;

    assert(cfg != NULL);
    assert(buf != NULL || buf_size == 0);
    assert(len != NULL);
    *len = 0;
    if (cluster_config_validate(cfg, NULL, 0) != 0) {
        return CLUSTER_CONFIG_E_INVALID;
    }
    for (uint32_t i = 0; i < cfg->partitions_count; i++) {
        rep_total += cfg->partitions[i].replica_count;
    }
    parts = calloc(cfg->partitions_count, sizeof(*parts));
    part_ptrs = calloc(cfg->partitions_count, sizeof(*part_ptrs));
    reps = calloc(rep_total, sizeof(*reps));
    rep_ptrs = calloc(rep_total, sizeof(*rep_ptrs));
    if (parts == NULL || part_ptrs == NULL || reps == NULL ||
        rep_ptrs == NULL) {
        rv = CLUSTER_CONFIG_E_NOMEM; /* UNTESTED: malloc failure */
        goto out;
    }
    for (uint32_t i = 0; i < cfg->partitions_count; i++) {
        const struct cluster_config_partition *p = &cfg->partitions[i];
        tandem__raft__cluster_config_partition__init(&parts[i]);
        parts[i].id = p->id;
        parts[i].n_replicas = p->replica_count;
        parts[i].replicas = &rep_ptrs[r];
        for (uint32_t j = 0; j < p->replica_count; j++, r++) {
            tandem__raft__cluster_config_replica__init(&reps[r]);
            reps[r].node_id = p->replicas[j].node_id;
            reps[r].priority = p->replicas[j].priority;
            rep_ptrs[r] = &reps[r];
        }
        part_ptrs[i] = &parts[i];
    }
    assert(r == rep_total);
    msg.format = CLUSTER_CONFIG_FORMAT;
    msg.version = cfg->version;
    msg.cluster_size = cfg->cluster_size;
    msg.partitions_count = cfg->partitions_count;
    msg.replication_factor = cfg->replication_factor;
    msg.n_members = cfg->member_count;
    msg.members = (uint32_t *)(uintptr_t)cfg->members;
    msg.n_partitions = cfg->partitions_count;
    msg.partitions = part_ptrs;
    if (ext_present(cfg)) {
        rv = ext_wire_build(cfg, &ext_json);
        if (rv != 0) {
            goto out; /* UNTESTED: out of memory */
        }
        /* protobuf-c keeps an unknown field's bytes after the tag: for a
         * length-delimited one, the varint length and the payload. */
        size_t jlen = strlen(ext_json);
        ext_bytes = malloc(jlen + 10);
        if (ext_bytes == NULL) {
            rv = CLUSTER_CONFIG_E_NOMEM; /* UNTESTED: out of memory */
            goto out;
        }
        ext_field.tag = CLUSTER_CONFIG__EXT_FIELD;
        ext_field.wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
        ext_field.len = varint_put(ext_bytes, jlen);
        memcpy(ext_bytes + ext_field.len, ext_json, jlen);
        ext_field.len += jlen;
        ext_field.data = ext_bytes;
        msg.base.n_unknown_fields = 1;
        msg.base.unknown_fields = &ext_field;
    }
    packed = tandem__raft__cluster_config__get_packed_size(&msg);
    if (packed > buf_size) {
        rv = CLUSTER_CONFIG_E_TOO_BIG;
        goto out;
    }
    *len = tandem__raft__cluster_config__pack(&msg, buf);
    assert(*len == packed);
out:
    free(parts);
    free(part_ptrs);
    free(reps);
    free(rep_ptrs);
    free(ext_json);
    free(ext_bytes);
    return rv;
}

int cluster_config_decode(const void *data, size_t len,
                          struct cluster_config *out, char *err, size_t err_len)
{
    const int bad = CLUSTER_CONFIG_E_MALFORMED;
    Tandem__Raft__ClusterConfig *msg;
    int rv = 0;

    assert(data != NULL || len == 0);
    assert(out != NULL);
    memset(out, 0, sizeof(*out));
    if (len > CLUSTER_CONFIG_BYTES_MAX) {
        return fail(bad, err, err_len, "%zu bytes, more than %zu", len,
                    CLUSTER_CONFIG_BYTES_MAX);
    }
    msg = tandem__raft__cluster_config__unpack(NULL, len, data);
    if (msg == NULL) {
        return fail(bad, err, err_len,
                    "%zu bytes are not a protobuf ClusterConfig", len);
    }
    if (msg->format == 0 || msg->format > CLUSTER_CONFIG_FORMAT) {
        rv = fail(bad, err, err_len, "format %u, this broker reads 1..%u",
                  msg->format, CLUSTER_CONFIG_FORMAT);
        goto out;
    }
    if (msg->n_members > BROKER_CLUSTER_SIZE_MAX ||
        msg->n_partitions > BROKER_PARTITIONS_MAX ||
        msg->n_partitions != msg->partitions_count) {
        rv = fail(bad, err, err_len,
                  "%zu brokers (max %u), %zu partitions listed of "
                  "partitionsCount %u (max %u)",
                  msg->n_members, BROKER_CLUSTER_SIZE_MAX, msg->n_partitions,
                  msg->partitions_count, BROKER_PARTITIONS_MAX);
        goto out;
    }
    out->version = msg->version;
    out->cluster_size = msg->cluster_size;
    out->partitions_count = msg->partitions_count;
    out->replication_factor = msg->replication_factor;
    out->member_count = (uint32_t)msg->n_members;
    if (msg->n_members > 0) { /* an empty list may be NULL */
        memcpy(out->members, msg->members,
               msg->n_members * sizeof(out->members[0]));
    }
    for (size_t i = 0; i < msg->n_partitions; i++) {
        const Tandem__Raft__ClusterConfigPartition *in = msg->partitions[i];
        struct cluster_config_partition *p = &out->partitions[i];
        if (in->n_replicas > BROKER_REPLICAS_MAX) {
            rv = fail(bad, err, err_len,
                      "partition %u lists %zu replicas, more than %u", in->id,
                      in->n_replicas, BROKER_REPLICAS_MAX);
            goto out;
        }
        p->id = in->id;
        p->replica_count = (uint32_t)in->n_replicas;
        for (size_t j = 0; j < in->n_replicas; j++) {
            const Tandem__Raft__ClusterConfigReplica *rin = in->replicas[j];
            if (rin->priority > UINT8_MAX) {
                rv = fail(bad, err, err_len,
                          "partition %u: broker %u has priority %u, "
                          "more than %u",
                          in->id, rin->node_id, rin->priority, UINT8_MAX);
                goto out;
            }
            p->replicas[j].node_id = rin->node_id;
            p->replicas[j].priority = (uint8_t)rin->priority;
        }
    }
    if (cluster_config_validate(out, err, err_len) != 0) {
        rv = bad;
        goto out;
    }
    rv = ext_wire_read(&msg->base, out, err, err_len);
out:
    tandem__raft__cluster_config__free_unpacked(msg, NULL);
    if (rv != 0) {
        memset(out, 0, sizeof(*out));
    }
    return rv;
}

/* ------------------------------------------------------------------------
 * JSON: writing
 * --------------------------------------------------------------------- */

/* Unix milliseconds as ISO-8601 UTC with milliseconds,
 * "2024-08-23T11:33:08.355Z" (Zeebe prints nanoseconds; both parse as
 * the same instant). */
static void time_format(int64_t ms, char *buf, size_t len)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;

    assert(ms >= 0);
    assert(len >= 64);
    if (gmtime_r(&secs, &tm) == NULL) {
        snprintf(buf, len, TIMESTAMP_NEVER); /* UNTESTED: out of range */
        return;
    }
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(ms % 1000));
}

static json_t *json_time(int64_t ms)
{
    char buf[64];
    time_format(ms, buf, sizeof(buf));
    return json_string(buf);
}

static const char *exporter_state_name(unsigned state)
{
    return state == CLUSTER_CONFIG_EXPORTER_ENABLED ? "ENABLED" : "DISABLED";
}

static const char *change_status_name(unsigned status)
{
    switch (status) {
    case CLUSTER_CONFIG_CHANGE_IN_PROGRESS:
        return "IN_PROGRESS";
    case CLUSTER_CONFIG_CHANGE_COMPLETED:
        return "COMPLETED";
    case CLUSTER_CONFIG_CHANGE_FAILED:
        return "FAILED";
    case CLUSTER_CONFIG_CHANGE_CANCELLED:
        return "CANCELLED";
    default:
        return "UNKNOWN";
    }
}

const char *cluster_config_exporting_name(int state)
{
    switch (state) {
    case CLUSTER_CONFIG_EXPORTING:
        return "EXPORTING";
    case CLUSTER_CONFIG_EXPORTING_PAUSED:
        return "PAUSED";
    case CLUSTER_CONFIG_EXPORTING_SOFT_PAUSED:
        return "SOFT_PAUSED";
    default:
        return "UNKNOWN";
    }
}

const char *cluster_config_op_name(int type)
{
    switch (type) {
    case CLUSTER_CONFIG_OP_BROKER_ADD:
        return "BROKER_ADD";
    case CLUSTER_CONFIG_OP_BROKER_REMOVE:
    case CLUSTER_CONFIG_OP_BROKER_FORCE_REMOVE:
        return "BROKER_REMOVE";
    case CLUSTER_CONFIG_OP_PARTITION_JOIN:
        return "PARTITION_JOIN";
    case CLUSTER_CONFIG_OP_PARTITION_LEAVE:
        return "PARTITION_LEAVE";
    case CLUSTER_CONFIG_OP_PARTITION_RECONFIGURE_PRIORITY:
        return "PARTITION_RECONFIGURE_PRIORITY";
    case CLUSTER_CONFIG_OP_PARTITION_FORCE_RECONFIGURE:
        return "PARTITION_FORCE_RECONFIGURE";
    case CLUSTER_CONFIG_OP_PARTITION_DISABLE_EXPORTER:
        return "PARTITION_DISABLE_EXPORTER";
    case CLUSTER_CONFIG_OP_PARTITION_ENABLE_EXPORTER:
        return "PARTITION_ENABLE_EXPORTER";
    default:
        return "UNKNOWN";
    }
}

static bool op_is_partition(unsigned type)
{
    return type >= CLUSTER_CONFIG_OP_PARTITION_JOIN &&
           type != CLUSTER_CONFIG_OP_BROKER_FORCE_REMOVE;
}

static bool op_has_priority(unsigned type)
{
    return type == CLUSTER_CONFIG_OP_PARTITION_JOIN ||
           type == CLUSTER_CONFIG_OP_PARTITION_RECONFIGURE_PRIORITY;
}

static bool op_is_exporter(unsigned type)
{
    return type == CLUSTER_CONFIG_OP_PARTITION_DISABLE_EXPORTER ||
           type == CLUSTER_CONFIG_OP_PARTITION_ENABLE_EXPORTER;
}

/* Zeebe's Operation object (ClusterApiUtils.mapOperation, zeebe-facts
 * 1.2): {"operation","brokerId","partitionId","priority","brokers",
 * "exporterId"} with only the fields the type uses, "brokers" always
 * (possibly []); Tandem adds "initializeFrom" to an enable that has one,
 * and "completedAt" to a completed operation. */
static json_t *json_op(const struct cluster_config *cfg,
                       const struct cluster_config_op *op)
{
    json_t *o = json_object();
    json_t *brokers = json_array();
    bool ok = o != NULL && brokers != NULL;

    assert(op->broker_count <= BROKER_REPLICAS_MAX);
    ok = ok && json_object_set_new(
                   o, "operation",
                   json_string(cluster_config_op_name(op->type))) == 0;
    ok = ok &&
         json_object_set_new(o, "brokerId", json_integer(op->broker_id)) == 0;
    if (op_is_partition(op->type)) {
        ok = ok && json_object_set_new(o, "partitionId",
                                       json_integer(op->partition_id)) == 0;
    }
    if (op_has_priority(op->type)) {
        ok = ok && json_object_set_new(o, "priority",
                                       json_integer(op->priority)) == 0;
    }
    for (uint32_t k = 0; ok && k < op->broker_count; k++) {
        ok = json_array_append_new(brokers, json_integer(op->brokers[k])) == 0;
    }
    ok = ok && json_object_set(o, "brokers", brokers) == 0;
    if (op_is_exporter(op->type) && op->exporter < cfg->exporter_count) {
        ok = ok && json_object_set_new(
                       o, "exporterId",
                       json_string(cfg->exporters[op->exporter])) == 0;
    }
    if (op->initialize_from > 0 && op->initialize_from <= cfg->exporter_count) {
        ok = ok &&
             json_object_set_new(
                 o, "initializeFrom",
                 json_string(cfg->exporters[op->initialize_from - 1])) == 0;
    }
    if (op->completed_at_ms > 0) {
        ok = ok && json_object_set_new(o, "completedAt",
                                       json_time(op->completed_at_ms)) == 0;
    }
    json_decref(brokers);
    if (!ok) {
        json_decref(o); /* UNTESTED: out of memory */
        return NULL;
    }
    return o;
}

/* An array of ops[from..to) of cfg's exporter names. */
static json_t *json_ops(const struct cluster_config *cfg,
                        const struct cluster_config_op *ops, uint32_t from,
                        uint32_t to)
{
    json_t *a = json_array();
    bool ok = a != NULL;

    for (uint32_t k = from; ok && k < to; k++) {
        ok = json_array_append_new(a, json_op(cfg, &ops[k])) == 0;
    }
    if (!ok) {
        json_decref(a); /* UNTESTED: out of memory */
        return NULL;
    }
    return a;
}

/* Zeebe's TopologyChange of the pending change: {"id","status",
 * "startedAt","completed":[...],"pending":[...]}; the file form adds
 * "replicationFactor" (the target). */
static json_t *json_pending_change(const struct cluster_config *cfg, bool file)
{
    const struct cluster_config_change *c = &cfg->pending;
    json_t *o = json_object();
    bool ok = o != NULL;

    ok = ok &&
         json_object_set_new(o, "id", json_integer((json_int_t)c->id)) == 0;
    ok = ok &&
         json_object_set_new(o, "status",
                             json_string(change_status_name(c->status))) == 0;
    ok = ok &&
         json_object_set_new(o, "startedAt", json_time(c->started_at_ms)) == 0;
    if (file) {
        ok = ok && json_object_set_new(
                       o, "replicationFactor",
                       json_integer(c->target_replication_factor)) == 0;
    }
    ok = ok &&
         json_object_set_new(o, "completed",
                             json_ops(cfg, c->ops, 0, c->completed_count)) == 0;
    ok = ok && json_object_set_new(
                   o, "pending",
                   json_ops(cfg, c->ops, c->completed_count, c->op_count)) == 0;
    if (!ok) {
        json_decref(o); /* UNTESTED: out of memory */
        return NULL;
    }
    return o;
}

/* Zeebe's CompletedChange: {"id","status","startedAt","completedAt"}. */
static json_t *json_last_change(const struct cluster_config_last_change *l)
{
    json_t *o = json_object();
    bool ok = o != NULL;

    ok = ok &&
         json_object_set_new(o, "id", json_integer((json_int_t)l->id)) == 0;
    ok = ok &&
         json_object_set_new(o, "status",
                             json_string(change_status_name(l->status))) == 0;
    ok = ok &&
         json_object_set_new(o, "startedAt", json_time(l->started_at_ms)) == 0;
    ok = ok && json_object_set_new(o, "completedAt",
                                   json_time(l->completed_at_ms)) == 0;
    if (!ok) {
        json_decref(o); /* UNTESTED: out of memory */
        return NULL;
    }
    return o;
}

/* The Zeebe PartitionState of one hosted partition, with its exporters
 * (8.6 shape {"id","state"}; Tandem adds "metadataVersion" and, when
 * set, "initializedFrom"). */
static json_t *json_partition_state(const struct cluster_config *cfg,
                                    uint32_t id,
                                    const struct cluster_config_replica *r)
{
    json_t *o = json_object();
    json_t *exporters = json_array();
    bool ok = o != NULL && exporters != NULL;

    for (uint32_t e = 0; ok && e < cfg->exporter_count; e++) {
        const struct cluster_config_replica_exporter *x = &r->exporters[e];
        json_t *xo = json_pack("{s:s, s:s, s:i}", "id", cfg->exporters[e],
                               "state", exporter_state_name(x->state),
                               "metadataVersion", (int)x->metadata_version);
        ok = xo != NULL;
        if (ok && x->initialized_from > 0) {
            ok = json_object_set_new(
                     xo, "initializedFrom",
                     json_string(cfg->exporters[x->initialized_from - 1])) == 0;
        }
        ok = ok && json_array_append_new(exporters, xo) == 0;
    }
    ok = ok && json_object_set_new(o, "id", json_integer(id)) == 0;
    ok = ok && json_object_set_new(o, "state", json_string(STATE_ACTIVE)) == 0;
    ok = ok &&
         json_object_set_new(o, "priority", json_integer(r->priority)) == 0;
    ok = ok && json_object_set_new(o, "config",
                                   json_pack("{s:{s:O}}", "exporting",
                                             "exporters", exporters)) == 0;
    json_decref(exporters);
    if (!ok) {
        json_decref(o); /* UNTESTED: out of memory */
        return NULL;
    }
    return o;
}

/* The Zeebe BrokerState of member node_id. */
static json_t *json_broker_state(const struct cluster_config *cfg,
                                 uint32_t node_id)
{
    json_t *o = json_object();
    json_t *parts = json_array();
    bool ok = o != NULL && parts != NULL;

    ok = ok && json_object_set_new(o, "id", json_integer(node_id)) == 0;
    ok = ok && json_object_set_new(o, "state", json_string(STATE_ACTIVE)) == 0;
    ok = ok && json_object_set_new(o, "version", json_integer(0)) == 0;
    ok = ok && json_object_set_new(o, "lastUpdatedAt",
                                   json_string(TIMESTAMP_NEVER)) == 0;
    for (uint32_t i = 0; ok && i < cfg->partitions_count; i++) {
        const struct cluster_config_partition *p = &cfg->partitions[i];
        for (uint32_t j = 0; j < p->replica_count; j++) {
            if (p->replicas[j].node_id == node_id) {
                ok = json_array_append_new(
                         parts, json_partition_state(cfg, p->id,
                                                     &p->replicas[j])) == 0;
                break;
            }
        }
    }
    ok = ok && json_object_set(o, "partitions", parts) == 0;
    json_decref(parts);
    if (!ok) {
        json_decref(o); /* UNTESTED: out of memory */
        return NULL;
    }
    return o;
}

/* The BrokerState array of every member of cfg (which may be a plan's
 * expected configuration: not validated here). */
static json_t *json_brokers(const struct cluster_config *cfg)
{
    json_t *brokers = json_array();
    bool ok = brokers != NULL;

    for (uint32_t k = 0; ok && k < cfg->member_count; k++) {
        ok = json_array_append_new(
                 brokers, json_broker_state(cfg, cfg->members[k])) == 0;
    }
    if (!ok) {
        json_decref(brokers); /* UNTESTED: out of memory */
        return NULL;
    }
    return brokers;
}

int cluster_config_to_json(const struct cluster_config *cfg, json_t **out)
{
    json_t *o;
    json_t *brokers;
    bool ok;

    assert(cfg != NULL);
    assert(out != NULL);
    *out = NULL;
    if (cluster_config_validate(cfg, NULL, 0) != 0) {
        return CLUSTER_CONFIG_E_INVALID;
    }
    o = json_object();
    brokers = json_brokers(cfg);
    ok = o != NULL && brokers != NULL;
    ok = ok && json_object_set_new(o, "version",
                                   json_integer((json_int_t)cfg->version)) == 0;
    ok = ok && json_object_set(o, "brokers", brokers) == 0;
    json_decref(brokers);
    if (cfg->last.status != CLUSTER_CONFIG_CHANGE_NONE) {
        ok = ok && json_object_set_new(o, "lastChange",
                                       json_last_change(&cfg->last)) == 0;
    }
    if (cfg->pending.status == CLUSTER_CONFIG_CHANGE_IN_PROGRESS) {
        ok = ok && json_object_set_new(o, "pendingChange",
                                       json_pending_change(cfg, false)) == 0;
    }
    if (!ok) {
        json_decref(o); /* UNTESTED: out of memory */
        return CLUSTER_CONFIG_E_NOMEM;
    }
    *out = o;
    return 0;
}

/* The file form: our fields first, then the to_json body's. */
static int file_json_build(const struct cluster_config *cfg, json_t **out)
{
    json_t *body;
    json_t *o;
    bool ok;
    int rv;

    rv = cluster_config_to_json(cfg, &body);
    if (rv != 0) {
        return rv;
    }
    o = json_object();
    ok = o != NULL;
    ok = ok && json_object_set_new(o, "format",
                                   json_integer(CLUSTER_CONFIG_FORMAT)) == 0;
    ok = ok &&
         json_object_set(o, "version", json_object_get(body, "version")) == 0;
    ok = ok && json_object_set_new(o, "clusterSize",
                                   json_integer(cfg->cluster_size)) == 0;
    ok = ok && json_object_set_new(o, "partitionsCount",
                                   json_integer(cfg->partitions_count)) == 0;
    ok = ok && json_object_set_new(o, "replicationFactor",
                                   json_integer(cfg->replication_factor)) == 0;
    if (cfg->exporter_count > 0) {
        json_t *ids = json_array();
        ok = ok && ids != NULL;
        for (uint32_t e = 0; ok && e < cfg->exporter_count; e++) {
            ok =
                json_array_append_new(ids, json_string(cfg->exporters[e])) == 0;
        }
        ok = ok && json_object_set(o, "exporters", ids) == 0;
        json_decref(ids);
    }
    if (cfg->exporting != CLUSTER_CONFIG_EXPORTING) {
        ok =
            ok && json_object_set_new(o, "exporting",
                                      json_string(cluster_config_exporting_name(
                                          cfg->exporting))) == 0;
    }
    ok = ok &&
         json_object_set(o, "brokers", json_object_get(body, "brokers")) == 0;
    if (cfg->last.status != CLUSTER_CONFIG_CHANGE_NONE) {
        ok = ok && json_object_set(o, "lastChange",
                                   json_object_get(body, "lastChange")) == 0;
    }
    if (cfg->pending.status == CLUSTER_CONFIG_CHANGE_IN_PROGRESS) {
        ok = ok && json_object_set_new(o, "pendingChange",
                                       json_pending_change(cfg, true)) == 0;
    }
    json_decref(body);
    if (!ok) {
        json_decref(o); /* UNTESTED: out of memory */
        return CLUSTER_CONFIG_E_NOMEM;
    }
    *out = o;
    return 0;
}

/* ------------------------------------------------------------------------
 * JSON: reading
 * --------------------------------------------------------------------- */

/* Fails unless every key of o is one of the NULL-terminated allowed. */
static int json_keys_check(const json_t *o, const char *const *allowed,
                           const char *where, char *err, size_t err_len)
{
    const char *key;
    json_t *value;

    json_object_foreach((json_t *)(uintptr_t)o, key, value)
    {
        bool known = false;
        (void)value;
        for (size_t i = 0; allowed[i] != NULL && !known; i++) {
            known = strcmp(key, allowed[i]) == 0;
        }
        if (!known) {
            return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                        "%sunknown key \"%.64s\"", where, key);
        }
    }
    return 0;
}

/* Reads the integer o[key] within min..max into *v. */
static int json_int_get(const json_t *o, const char *key, json_int_t min,
                        json_int_t max, bool required, json_int_t *v,
                        const char *where, char *err, size_t err_len)
{
    const json_t *j = json_object_get(o, key);

    if (j == NULL && !required) {
        return 0;
    }
    if (j == NULL || !json_is_integer(j) || json_integer_value(j) < min ||
        json_integer_value(j) > max) {
        return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                    "%s\"%s\" must be an integer %lld..%lld", where, key,
                    (long long)min, (long long)max);
    }
    *v = json_integer_value(j);
    return 0;
}

/* Accepts a missing o["state"] or "ACTIVE", the only state of format 1. */
static int json_state_check(const json_t *o, const char *where, char *err,
                            size_t err_len)
{
    const json_t *j = json_object_get(o, "state");

    if (j != NULL && (!json_is_string(j) ||
                      strcmp(json_string_value(j), STATE_ACTIVE) != 0)) {
        return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                    "%s\"state\" must be \"" STATE_ACTIVE "\"", where);
    }
    return 0;
}

/* Reads a replica's exporter states from its PartitionState "config"
 * (NULL when absent): {"exporting":{"exporters":[{"id","state",
 * "metadataVersion","initializedFrom"}]}}. With exporters configured
 * (out->exporter_count > 0, read before the brokers) every exporter must
 * be listed exactly once; without, the list must be empty. */
static int
json_replica_exporters_read(const json_t *config,
                            const struct cluster_config *out,
                            struct cluster_config_replica_exporter *xs,
                            const char *where, char *err, size_t err_len)
{
    static const char *const keys[] = {"id", "state", "metadataVersion",
                                       "initializedFrom", NULL};
    const json_t *list =
        json_object_get(json_object_get(config, "exporting"), "exporters");
    bool seen[CLUSTER_CONFIG_EXPORTERS_MAX] = {false};
    char w[160];
    size_t k;
    json_t *jx;
    int rv;

    if (list == NULL && out->exporter_count == 0) {
        return 0;
    }
    if (!json_is_array(list) || json_array_size(list) != out->exporter_count) {
        return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                    "%s\"config\" must list the %u exporters in "
                    "exporting.exporters",
                    where, out->exporter_count);
    }
    json_array_foreach((json_t *)(uintptr_t)list, k, jx)
    {
        const char *id = json_string_value(json_object_get(jx, "id"));
        const char *state = json_string_value(json_object_get(jx, "state"));
        const json_t *from = json_object_get(jx, "initializedFrom");
        json_int_t mv = 0;
        int e;
        int f = -1;

        snprintf(w, sizeof(w), "%.96sexporters[%zu].", where, k);
        if (!json_is_object(jx)) {
            return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                        "%s is not an object", w);
        }
        if ((rv = json_keys_check(jx, keys, w, err, err_len)) != 0 ||
            (rv = json_int_get(jx, "metadataVersion", 0, UINT16_MAX, false, &mv,
                               w, err, err_len)) != 0) {
            return rv;
        }
        e = id != NULL ? cluster_config_exporter_find(out, id) : -1;
        if (e < 0 || seen[e]) {
            return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                        "%s\"id\" must name a configured exporter once", w);
        }
        if (state == NULL ||
            (strcmp(state, "ENABLED") != 0 && strcmp(state, "DISABLED") != 0)) {
            return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                        "%s\"state\" must be \"ENABLED\" or \"DISABLED\"", w);
        }
        if (from != NULL) {
            f = json_is_string(from)
                    ? cluster_config_exporter_find(out, json_string_value(from))
                    : -1;
            if (f < 0 || f == e) {
                return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                            "%s\"initializedFrom\" must name another "
                            "configured exporter",
                            w);
            }
        }
        seen[e] = true;
        xs[e].state = strcmp(state, "ENABLED") == 0
                          ? CLUSTER_CONFIG_EXPORTER_ENABLED
                          : CLUSTER_CONFIG_EXPORTER_DISABLED;
        xs[e].metadata_version = (uint16_t)mv;
        xs[e].initialized_from = (uint8_t)(f + 1);
    }
    return 0;
}

/* Adds broker node_id's partition list (already known to be an array) to
 * out's replica lists. Brokers come in ascending id order, so the lists
 * stay in canonical order. */
static int json_broker_partitions_read(const json_t *parts, uint32_t node_id,
                                       struct cluster_config *out,
                                       const char *bwhere, char *err,
                                       size_t err_len)
{
    static const char *const keys[] = {"id", "state", "priority", "config",
                                       NULL};
    char where[96];
    size_t k;
    json_t *jp;
    int rv;

    json_array_foreach((json_t *)(uintptr_t)parts, k, jp)
    {
        struct cluster_config_partition *p;
        json_int_t id = 0;
        json_int_t priority = 0;
        const json_t *config = json_object_get(jp, "config");

        snprintf(where, sizeof(where), "%spartitions[%zu].", bwhere, k);
        if (!json_is_object(jp)) {
            return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                        "%.80s is not an object", where);
        }
        if ((rv = json_keys_check(jp, keys, where, err, err_len)) != 0 ||
            (rv = json_int_get(jp, "id", 1, out->partitions_count, true, &id,
                               where, err, err_len)) != 0 ||
            (rv = json_int_get(jp, "priority", 1, UINT8_MAX, true, &priority,
                               where, err, err_len)) != 0 ||
            (rv = json_state_check(jp, where, err, err_len)) != 0) {
            return rv;
        }
        if (config != NULL && !json_is_object(config)) {
            return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                        "%s\"config\" must be an object", where);
        }
        p = &out->partitions[id - 1];
        if (p->replica_count < BROKER_REPLICAS_MAX &&
            (rv = json_replica_exporters_read(
                 config, out, &p->replicas[p->replica_count].exporters[0],
                 where, err, err_len)) != 0) {
            return rv;
        }
        if (p->replica_count > 0 &&
            p->replicas[p->replica_count - 1].node_id == node_id) {
            return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                        "%spartition %lld listed twice", where, (long long)id);
        }
        if (p->replica_count == BROKER_REPLICAS_MAX) {
            return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                        "%spartition %lld has more than %u replicas", where,
                        (long long)id, BROKER_REPLICAS_MAX);
        }
        p->replicas[p->replica_count].node_id = node_id;
        p->replicas[p->replica_count].priority = (uint8_t)priority;
        p->replica_count++;
    }
    return 0;
}

/* Reads the "brokers" array: the members, then each one's partitions in
 * ascending broker id order. */
static int json_brokers_read(const json_t *brokers, struct cluster_config *out,
                             char *err, size_t err_len)
{
    static const char *const keys[] = {
        "id", "state", "version", "lastUpdatedAt", "partitions", NULL};
    const json_t *order[BROKER_CLUSTER_SIZE_MAX];
    char where[48];
    size_t n;
    json_t *jb;
    int rv;

    n = json_array_size(brokers);
    if (!json_is_array(brokers) || n == 0 || n > BROKER_CLUSTER_SIZE_MAX) {
        return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                    "\"brokers\" must be an array of 1..%u brokers",
                    BROKER_CLUSTER_SIZE_MAX);
    }
    for (size_t k = 0; k < n; k++) {
        json_int_t id = 0;
        json_int_t version = 0;
        const json_t *ts;
        uint32_t j;

        jb = json_array_get(brokers, k);
        snprintf(where, sizeof(where), "brokers[%zu].", k);
        if (!json_is_object(jb)) {
            return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                        "%s is not an object", where);
        }
        ts = json_object_get(jb, "lastUpdatedAt");
        if ((rv = json_keys_check(jb, keys, where, err, err_len)) != 0 ||
            (rv = json_int_get(jb, "id", 0, BROKER_NODE_ID_MAX, true, &id,
                               where, err, err_len)) != 0 ||
            (rv = json_int_get(jb, "version", 0, INT64_MAX, false, &version,
                               where, err, err_len)) != 0 ||
            (rv = json_state_check(jb, where, err, err_len)) != 0) {
            return rv;
        }
        if (ts != NULL && !json_is_string(ts)) {
            return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                        "%s\"lastUpdatedAt\" must be a string", where);
        }
        if (!json_is_array(json_object_get(jb, "partitions"))) {
            return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                        "%s\"partitions\" must be an array", where);
        }
        /* Insertion into members[]/order[], ascending by id. */
        j = out->member_count;
        while (j > 0 && out->members[j - 1] > (uint32_t)id) {
            out->members[j] = out->members[j - 1];
            order[j] = order[j - 1];
            j--;
        }
        if (j > 0 && out->members[j - 1] == (uint32_t)id) {
            return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                        "%sbroker %lld listed twice", where, (long long)id);
        }
        out->members[j] = (uint32_t)id;
        order[j] = jb;
        out->member_count++;
    }
    for (uint32_t k = 0; k < out->member_count; k++) {
        snprintf(where, sizeof(where), "broker %u: ", out->members[k]);
        rv = json_broker_partitions_read(
            json_object_get(order[k], "partitions"), out->members[k], out,
            where, err, err_len);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

/* Parses "YYYY-MM-DDTHH:MM:SS[.fraction]Z" (years 1970..9999) into Unix
 * milliseconds (the fraction truncated to milliseconds). Returns 0 or -1. */
static int time_parse(const char *text, int64_t *ms)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30,
                                  31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, sec, n = 0;
    int64_t days = 0;
    int64_t frac = 0;
    int digits = 0;
    const char *p;

    if (text == NULL ||
        sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec,
               &n) != 6 ||
        n != 19) {
        return -1;
    }
    p = text + n;
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9' && digits < 9; p++, digits++) {
            if (digits < 3) {
                frac = frac * 10 + (*p - '0');
            }
        }
        if (digits == 0) {
            return -1;
        }
        for (int k = digits; k < 3; k++) {
            frac *= 10;
        }
    }
    if (strcmp(p, "Z") != 0 || y < 1970 || y > 9999 || mo < 1 || mo > 12 ||
        d < 1 || h > 23 || mi > 59 || sec > 59 || h < 0 || mi < 0 || sec < 0) {
        return -1;
    }
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] + (mo == 2 && leap ? 1 : 0)) {
        return -1;
    }
    for (int yy = 1970; yy < y; yy++) {
        days += ((yy % 4 == 0 && yy % 100 != 0) || yy % 400 == 0) ? 366 : 365;
    }
    for (int m = 1; m < mo; m++) {
        days += mdays[m - 1] + (m == 2 && leap ? 1 : 0);
    }
    days += d - 1;
    *ms = ((days * 24 + h) * 60 + mi) * 60000 + (int64_t)sec * 1000 + frac;
    return 0;
}

/* Reads the time string o[key] (required) into *ms. */
static int json_time_get(const json_t *o, const char *key, int64_t *ms,
                         const char *where, char *err, size_t err_len)
{
    if (time_parse(json_string_value(json_object_get(o, key)), ms) != 0) {
        return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                    "%s\"%s\" must be an ISO-8601 UTC time "
                    "(\"2024-08-23T11:33:08.355Z\")",
                    where, key);
    }
    return 0;
}

/* Reads the top-level "exporters": an array of distinct exporter ids. */
static int json_exporter_ids_read(const json_t *ids, struct cluster_config *out,
                                  char *err, size_t err_len)
{
    char reason[CLUSTER_CONFIG_ERRMSG_SIZE];
    size_t k;
    json_t *jid;

    if (ids == NULL) {
        return 0;
    }
    if (!json_is_array(ids) ||
        json_array_size(ids) > CLUSTER_CONFIG_EXPORTERS_MAX) {
        return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                    "\"exporters\" must be an array of at most %u ids",
                    CLUSTER_CONFIG_EXPORTERS_MAX);
    }
    json_array_foreach((json_t *)(uintptr_t)ids, k, jid)
    {
        if (!json_is_string(jid) ||
            cluster_config_exporter_add(out, json_string_value(jid), reason,
                                        sizeof(reason)) < 0) {
            return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                        "exporters[%zu]: %s", k,
                        json_is_string(jid) ? reason : "not a string");
        }
    }
    return 0;
}

/* The enum value of name in names[0..count), or -1. */
static int name_find(const char *name, const char *(*namer)(int), int from,
                     int to)
{
    for (int v = from; name != NULL && v <= to; v++) {
        if (strcmp(namer(v), name) == 0) {
            return v;
        }
    }
    return -1;
}

static const char *change_status_namer(int v)
{
    return change_status_name((unsigned)v);
}

/* Reads one operation object (file form of json_op()). */
static int json_op_read(const json_t *jo, const struct cluster_config *out,
                        bool completed, struct cluster_config_op *op,
                        const char *where, char *err, size_t err_len)
{
    static const char *const keys[] = {
        "operation",  "brokerId",       "partitionId", "priority", "brokers",
        "exporterId", "initializeFrom", "completedAt", NULL};
    const json_t *brokers = json_object_get(jo, "brokers");
    const char *name = json_string_value(json_object_get(jo, "operation"));
    json_int_t v = 0;
    size_t k;
    json_t *jb;
    int type;
    int rv;

    memset(op, 0, sizeof(*op));
    if (!json_is_object(jo)) {
        return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                    "%s is not an object", where);
    }
    type = name_find(name, cluster_config_op_name, CLUSTER_CONFIG_OP_BROKER_ADD,
                     CLUSTER_CONFIG_OP_PARTITION_ENABLE_EXPORTER);
    if ((rv = json_keys_check(jo, keys, where, err, err_len)) != 0) {
        return rv;
    }
    if (type < 0) {
        return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                    "%s\"operation\" is not a known operation", where);
    }
    if (!json_is_array(brokers) ||
        json_array_size(brokers) > BROKER_REPLICAS_MAX) {
        return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                    "%s\"brokers\" must be an array of at most %u ids", where,
                    BROKER_REPLICAS_MAX);
    }
    if (type == CLUSTER_CONFIG_OP_BROKER_REMOVE &&
        json_array_size(brokers) > 0) {
        type = CLUSTER_CONFIG_OP_BROKER_FORCE_REMOVE;
    }
    op->type = (uint8_t)type;
    json_array_foreach((json_t *)(uintptr_t)brokers, k, jb)
    {
        if (!json_is_integer(jb) || json_integer_value(jb) < 0 ||
            json_integer_value(jb) > BROKER_NODE_ID_MAX) {
            return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                        "%s\"brokers\"[%zu] is not a broker id", where, k);
        }
        op->brokers[k] = (uint16_t)json_integer_value(jb);
    }
    op->broker_count = (uint8_t)json_array_size(brokers);
    if ((rv = json_int_get(jo, "brokerId", 0, BROKER_NODE_ID_MAX, true, &v,
                           where, err, err_len)) != 0) {
        return rv;
    }
    op->broker_id = (uint32_t)v;
    if (op_is_partition(op->type)) {
        if ((rv = json_int_get(jo, "partitionId", 1, out->partitions_count,
                               true, &v, where, err, err_len)) != 0) {
            return rv;
        }
        op->partition_id = (uint32_t)v;
    }
    if (op_has_priority(op->type)) {
        if ((rv = json_int_get(jo, "priority", 1, UINT8_MAX, true, &v, where,
                               err, err_len)) != 0) {
            return rv;
        }
        op->priority = (uint8_t)v;
    }
    if (op_is_exporter(op->type)) {
        int e = cluster_config_exporter_find(
            out, json_string_value(json_object_get(jo, "exporterId")));
        if (e < 0) {
            return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                        "%s\"exporterId\" must name a configured exporter",
                        where);
        }
        op->exporter = (uint8_t)e;
    }
    if (json_object_get(jo, "initializeFrom") != NULL) {
        int f = cluster_config_exporter_find(
            out, json_string_value(json_object_get(jo, "initializeFrom")));
        if (f < 0 || op->type != CLUSTER_CONFIG_OP_PARTITION_ENABLE_EXPORTER) {
            return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                        "%s\"initializeFrom\" must name a configured exporter "
                        "of an enable",
                        where);
        }
        op->initialize_from = (uint8_t)(f + 1);
    }
    if (completed) {
        return json_time_get(jo, "completedAt", &op->completed_at_ms, where,
                             err, err_len);
    }
    if (json_object_get(jo, "completedAt") != NULL) {
        return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                    "%sa pending operation has no \"completedAt\"", where);
    }
    return 0;
}

/* Reads "lastChange", "pendingChange" and "exporting". */
static int json_changes_read(const json_t *root, struct cluster_config *out,
                             char *err, size_t err_len)
{
    static const char *const last_keys[] = {"id", "status", "startedAt",
                                            "completedAt", NULL};
    static const char *const pending_keys[] = {
        "id",        "status",  "startedAt", "replicationFactor",
        "completed", "pending", NULL};
    const json_t *last = json_object_get(root, "lastChange");
    const json_t *pend = json_object_get(root, "pendingChange");
    const json_t *exporting = json_object_get(root, "exporting");
    char where[64];
    json_int_t v = 0;
    int rv;

    if (exporting != NULL) {
        int st = name_find(
            json_string_value(exporting), cluster_config_exporting_name,
            CLUSTER_CONFIG_EXPORTING, CLUSTER_CONFIG_EXPORTING_SOFT_PAUSED);
        if (st < 0) {
            return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                        "\"exporting\" must be \"EXPORTING\", \"PAUSED\" or "
                        "\"SOFT_PAUSED\"");
        }
        out->exporting = (uint8_t)st;
    }
    if (last != NULL) {
        int st;
        if (!json_is_object(last)) {
            return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                        "\"lastChange\" must be an object");
        }
        st = name_find(json_string_value(json_object_get(last, "status")),
                       change_status_namer, CLUSTER_CONFIG_CHANGE_COMPLETED,
                       CLUSTER_CONFIG_CHANGE_CANCELLED);
        if ((rv = json_keys_check(last, last_keys, "lastChange.", err,
                                  err_len)) != 0 ||
            (rv = json_int_get(last, "id", 1, INT64_MAX, true, &v,
                               "lastChange.", err, err_len)) != 0 ||
            (rv = json_time_get(last, "startedAt", &out->last.started_at_ms,
                                "lastChange.", err, err_len)) != 0 ||
            (rv = json_time_get(last, "completedAt", &out->last.completed_at_ms,
                                "lastChange.", err, err_len)) != 0) {
            return rv;
        }
        if (st < 0) {
            return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                        "lastChange.\"status\" must be \"COMPLETED\", "
                        "\"FAILED\" or \"CANCELLED\"");
        }
        out->last.id = (uint64_t)v;
        out->last.status = (uint8_t)st;
    }
    if (pend != NULL) {
        struct cluster_config_change *c = &out->pending;
        const json_t *done = json_object_get(pend, "completed");
        const json_t *todo = json_object_get(pend, "pending");
        const char *status = json_string_value(json_object_get(pend, "status"));
        size_t k;
        json_t *jo;

        if (!json_is_object(pend)) {
            return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                        "\"pendingChange\" must be an object");
        }
        if ((rv = json_keys_check(pend, pending_keys, "pendingChange.", err,
                                  err_len)) != 0 ||
            (rv = json_int_get(pend, "id", 1, INT64_MAX, true, &v,
                               "pendingChange.", err, err_len)) != 0) {
            return rv;
        }
        c->id = (uint64_t)v;
        if ((rv =
                 json_int_get(pend, "replicationFactor", 1, BROKER_REPLICAS_MAX,
                              true, &v, "pendingChange.", err, err_len)) != 0 ||
            (rv = json_time_get(pend, "startedAt", &c->started_at_ms,
                                "pendingChange.", err, err_len)) != 0) {
            return rv;
        }
        c->target_replication_factor = (uint32_t)v;
        if (status == NULL || strcmp(status, "IN_PROGRESS") != 0) {
            return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                        "pendingChange.\"status\" must be \"IN_PROGRESS\"");
        }
        c->status = CLUSTER_CONFIG_CHANGE_IN_PROGRESS;
        if (!json_is_array(done) || !json_is_array(todo) ||
            json_array_size(todo) == 0 ||
            json_array_size(done) + json_array_size(todo) >
                CLUSTER_CONFIG_OPERATIONS_MAX) {
            return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                        "pendingChange: \"completed\" and \"pending\" must "
                        "be arrays, \"pending\" not empty, together at most "
                        "%u operations",
                        CLUSTER_CONFIG_OPERATIONS_MAX);
        }
        json_array_foreach((json_t *)(uintptr_t)done, k, jo)
        {
            snprintf(where, sizeof(where), "pendingChange.completed[%zu].", k);
            if ((rv = json_op_read(jo, out, true, &c->ops[c->op_count], where,
                                   err, err_len)) != 0) {
                return rv;
            }
            c->op_count++;
        }
        c->completed_count = c->op_count;
        json_array_foreach((json_t *)(uintptr_t)todo, k, jo)
        {
            snprintf(where, sizeof(where), "pendingChange.pending[%zu].", k);
            if ((rv = json_op_read(jo, out, false, &c->ops[c->op_count], where,
                                   err, err_len)) != 0) {
                return rv;
            }
            c->op_count++;
        }
    }
    return 0;
}

static int json_config_read(const json_t *root, struct cluster_config *out,
                            char *err, size_t err_len)
{
    static const char *const keys[] = {"format",
                                       "version",
                                       "clusterSize",
                                       "partitionsCount",
                                       "replicationFactor",
                                       "exporters",
                                       "exporting",
                                       "brokers",
                                       "lastChange",
                                       "pendingChange",
                                       NULL};
    json_int_t format = 0;
    json_int_t version = 0;
    json_int_t size = 0;
    json_int_t count = 0;
    json_int_t rf = 0;
    int rv;

    if (!json_is_object(root)) {
        return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                    "the top level is not an object");
    }
    if ((rv = json_keys_check(root, keys, "", err, err_len)) != 0 ||
        (rv = json_int_get(root, "format", 1, CLUSTER_CONFIG_FORMAT, true,
                           &format, "", err, err_len)) != 0 ||
        (rv = json_int_get(root, "version", 1, INT64_MAX, true, &version, "",
                           err, err_len)) != 0 ||
        (rv = json_int_get(root, "clusterSize", 1, BROKER_CLUSTER_SIZE_MAX,
                           true, &size, "", err, err_len)) != 0 ||
        (rv = json_int_get(root, "partitionsCount", 1, BROKER_PARTITIONS_MAX,
                           true, &count, "", err, err_len)) != 0 ||
        (rv = json_int_get(root, "replicationFactor", 1, BROKER_REPLICAS_MAX,
                           true, &rf, "", err, err_len)) != 0) {
        return rv;
    }
    out->version = (uint64_t)version;
    out->cluster_size = (uint32_t)size;
    out->partitions_count = (uint32_t)count;
    out->replication_factor = (uint32_t)rf;
    for (uint32_t i = 0; i < out->partitions_count; i++) {
        out->partitions[i].id = i + 1;
    }
    if ((rv = json_exporter_ids_read(json_object_get(root, "exporters"), out,
                                     err, err_len)) != 0 ||
        (rv = json_brokers_read(json_object_get(root, "brokers"), out, err,
                                err_len)) != 0 ||
        (rv = json_changes_read(root, out, err, err_len)) != 0) {
        return rv;
    }
    if (cluster_config_validate(out, err, err_len) != 0) {
        return CLUSTER_CONFIG_E_MALFORMED;
    }
    return 0;
}

int cluster_config_from_json(const char *text, size_t len,
                             struct cluster_config *out, char *err,
                             size_t err_len)
{
    json_error_t jerr;
    json_t *root;
    int rv;

    assert(text != NULL || len == 0);
    assert(out != NULL);
    memset(out, 0, sizeof(*out));
    if (len > CLUSTER_CONFIG_FILE_BYTES_MAX) {
        return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                    "%zu bytes of JSON, more than %zu", len,
                    CLUSTER_CONFIG_FILE_BYTES_MAX);
    }
    root = json_loadb(text != NULL ? text : "", len, JSON_REJECT_DUPLICATES,
                      &jerr);
    if (root == NULL) {
        return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                    "JSON line %d column %d: %s", jerr.line, jerr.column,
                    jerr.text);
    }
    rv = json_config_read(root, out, err, err_len);
    json_decref(root);
    if (rv != 0) {
        memset(out, 0, sizeof(*out));
    }
    return rv;
}

/* ------------------------------------------------------------------------
 * The file
 * --------------------------------------------------------------------- */

/* Builds <data_dir>/<name><suffix> into path. */
static int path_build(char *path, const char *data_dir, const char *suffix,
                      char *err, size_t err_len)
{
    int n;

    if (data_dir == NULL || data_dir[0] == '\0') {
        return fail(CLUSTER_CONFIG_E_INVALID, err, err_len,
                    "no data directory given");
    }
    n = snprintf(path, CLUSTER_CONFIG_PATH_MAX, "%s/%s%s", data_dir,
                 CLUSTER_CONFIG_FILE_NAME, suffix);
    if (n < 0 || (size_t)n >= CLUSTER_CONFIG_PATH_MAX) {
        return fail(CLUSTER_CONFIG_E_INVALID, err, err_len,
                    "data directory path too long");
    }
    return 0;
}

/* Writes all of data to fd. Returns 0 or -1 with errno set. */
static int fd_write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            if (n == 0) {
                errno = EIO; /* UNTESTED: write returning 0 */
            }
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Opens and fsyncs a directory, so that a rename inside it is durable. */
static int dir_sync(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rv;
    int saved;

    if (fd < 0) {
        return -1;
    }
    rv = fsync(fd);
    saved = errno;
    close(fd);
    errno = saved;
    return rv;
}

int cluster_config_save(const char *data_dir, const struct cluster_config *cfg,
                        char *err, size_t err_len)
{
    char path[CLUSTER_CONFIG_PATH_MAX];
    char tmp[CLUSTER_CONFIG_PATH_MAX];
    const char *step;
    json_t *root = NULL;
    char *text = NULL;
    int fd = -1;
    int rv;

    assert(cfg != NULL);
    if ((rv = path_build(path, data_dir, "", err, err_len)) != 0 ||
        (rv = path_build(tmp, data_dir, TMP_SUFFIX, err, err_len)) != 0) {
        return rv;
    }
    if (cluster_config_validate(cfg, err, err_len) != 0) {
        return CLUSTER_CONFIG_E_INVALID;
    }
    rv = file_json_build(cfg, &root);
    if (rv == 0) {
        text = json_dumps(root, JSON_INDENT(2));
        json_decref(root);
    }
    if (text == NULL) {
        /* UNTESTED: out of memory */
        return fail(CLUSTER_CONFIG_E_NOMEM, err, err_len,
                    "cannot build the JSON of %s", path);
    }

    step = "create";
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        goto io_error;
    }
    step = "write";
    if (fd_write_all(fd, text, strlen(text)) != 0 ||
        fd_write_all(fd, "\n", 1) != 0) {
        goto io_error_unlink; /* UNTESTED: disk full */
    }
    step = "fsync";
    if (fsync(fd) != 0) {
        goto io_error_unlink; /* UNTESTED: fsync failure */
    }
    step = "close";
    rv = close(fd);
    fd = -1;
    if (rv != 0) {
        goto io_error_unlink; /* UNTESTED: close failure */
    }
    step = "rename";
    if (rename(tmp, path) != 0) {
        goto io_error_unlink;
    }
    free(text);
    if (dir_sync(data_dir) != 0) {
        /* UNTESTED: the new file is in place, its durability unknown */
        return fail(CLUSTER_CONFIG_E_IO, err, err_len,
                    "cluster config: fsync of directory %s after rename: %s",
                    data_dir, strerror(errno));
    }
    return 0;

io_error_unlink : {
    int saved = errno;
    if (fd >= 0) {
        close(fd);
        fd = -1;
    }
    unlink(tmp);
    errno = saved;
}
io_error:
    assert(fd < 0);
    free(text);
    return fail(CLUSTER_CONFIG_E_IO, err, err_len,
                "cluster config: %s of %s failed: %s; %s is unchanged", step,
                tmp, strerror(errno), path);
}

int cluster_config_load(const char *data_dir, struct cluster_config *out,
                        char *err, size_t err_len)
{
    char path[CLUSTER_CONFIG_PATH_MAX];
    char reason[CLUSTER_CONFIG_ERRMSG_SIZE];
    struct stat st;
    char *text = NULL;
    size_t got = 0;
    int fd;
    int rv;

    assert(out != NULL);
    memset(out, 0, sizeof(*out));
    rv = path_build(path, data_dir, "", err, err_len);
    if (rv != 0) {
        return rv;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return fail(errno == ENOENT ? CLUSTER_CONFIG_E_NOT_FOUND
                                    : CLUSTER_CONFIG_E_IO,
                    err, err_len, "cluster config: cannot open %s: %s", path,
                    strerror(errno));
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        (uintmax_t)st.st_size > CLUSTER_CONFIG_FILE_BYTES_MAX) {
        close(fd);
        return fail(CLUSTER_CONFIG_E_IO, err, err_len,
                    "cluster config: %s is not a regular file of at most "
                    "%zu bytes",
                    path, CLUSTER_CONFIG_FILE_BYTES_MAX);
    }
    text = malloc((size_t)st.st_size + 1);
    if (text == NULL) {
        close(fd); /* UNTESTED: malloc failure */
        return fail(CLUSTER_CONFIG_E_NOMEM, err, err_len,
                    "cluster config: no memory to read %s", path);
    }
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, text + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            int saved = errno; /* UNTESTED: read error */
            close(fd);
            free(text);
            return fail(CLUSTER_CONFIG_E_IO, err, err_len,
                        "cluster config: cannot read %s: %s", path,
                        strerror(saved));
        }
        if (n == 0) {
            break; /* the file shrank: parsed as it is */
        }
        got += (size_t)n;
    }
    close(fd);
    rv = cluster_config_from_json(text, got, out, reason, sizeof(reason));
    free(text);
    if (rv != 0) {
        return fail(rv, err, err_len, "cluster config %s: %s", path, reason);
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * The extension: exporters, exporting state, changes
 * --------------------------------------------------------------------- */

static bool op_equal(const struct cluster_config_op *a,
                     const struct cluster_config_op *b)
{
    if (a->type != b->type || a->priority != b->priority ||
        a->broker_count != b->broker_count || a->exporter != b->exporter ||
        a->initialize_from != b->initialize_from ||
        a->broker_id != b->broker_id || a->partition_id != b->partition_id ||
        a->completed_at_ms != b->completed_at_ms) {
        return false;
    }
    assert(a->broker_count <= BROKER_REPLICAS_MAX);
    return memcmp(a->brokers, b->brokers,
                  a->broker_count * sizeof(a->brokers[0])) == 0;
}

static bool ext_equal(const struct cluster_config *a,
                      const struct cluster_config *b)
{
    const struct cluster_config_change *pa = &a->pending;
    const struct cluster_config_change *pb = &b->pending;

    if (a->exporter_count != b->exporter_count ||
        a->exporting != b->exporting || a->last.id != b->last.id ||
        a->last.status != b->last.status ||
        a->last.started_at_ms != b->last.started_at_ms ||
        a->last.completed_at_ms != b->last.completed_at_ms ||
        pa->status != pb->status) {
        return false;
    }
    assert(a->exporter_count <= CLUSTER_CONFIG_EXPORTERS_MAX);
    for (uint32_t e = 0; e < a->exporter_count; e++) {
        if (strcmp(a->exporters[e], b->exporters[e]) != 0) {
            return false;
        }
    }
    for (uint32_t i = 0; i < a->partitions_count; i++) {
        for (uint32_t j = 0; j < a->partitions[i].replica_count; j++) {
            for (uint32_t e = 0; e < a->exporter_count; e++) {
                const struct cluster_config_replica_exporter *xa =
                    &a->partitions[i].replicas[j].exporters[e];
                const struct cluster_config_replica_exporter *xb =
                    &b->partitions[i].replicas[j].exporters[e];
                if (xa->state != xb->state ||
                    xa->initialized_from != xb->initialized_from ||
                    xa->metadata_version != xb->metadata_version) {
                    return false;
                }
            }
        }
    }
    if (pa->status == CLUSTER_CONFIG_CHANGE_NONE) {
        return true;
    }
    if (pa->id != pb->id || pa->started_at_ms != pb->started_at_ms ||
        pa->target_replication_factor != pb->target_replication_factor ||
        pa->op_count != pb->op_count ||
        pa->completed_count != pb->completed_count) {
        return false;
    }
    assert(pa->op_count <= CLUSTER_CONFIG_OPERATIONS_MAX);
    for (uint32_t k = 0; k < pa->op_count; k++) {
        if (!op_equal(&pa->ops[k], &pb->ops[k])) {
            return false;
        }
    }
    return true;
}

static bool ext_present(const struct cluster_config *cfg)
{
    return cfg->exporter_count > 0 ||
           cfg->exporting != CLUSTER_CONFIG_EXPORTING ||
           cfg->pending.status != CLUSTER_CONFIG_CHANGE_NONE ||
           cfg->last.status != CLUSTER_CONFIG_CHANGE_NONE;
}

/* Exporter ids: 1..CLUSTER_CONFIG_EXPORTER_ID_MAX of [A-Za-z0-9._-]. */
static bool exporter_id_valid(const char *id)
{
    size_t n = 0;

    for (; id[n] != '\0' && n <= CLUSTER_CONFIG_EXPORTER_ID_MAX; n++) {
        char c = id[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')) {
            return false;
        }
    }
    return n >= 1 && n <= CLUSTER_CONFIG_EXPORTER_ID_MAX;
}

/* The rules of one operation against cfg's fixed parts (types, ranges,
 * exporters); whether it applies is cluster_config_op_apply()'s job. */
static int op_validate(const struct cluster_config *cfg,
                       const struct cluster_config_op *op, bool completed,
                       uint32_t k, char *err, size_t err_len)
{
    const int inv = CLUSTER_CONFIG_E_INVALID;

    if (op->type < CLUSTER_CONFIG_OP_BROKER_ADD ||
        op->type > CLUSTER_CONFIG_OP_PARTITION_ENABLE_EXPORTER) {
        return fail(inv, err, err_len, "operation %u has type %u", k, op->type);
    }
    if (op->broker_id > BROKER_NODE_ID_MAX ||
        op->broker_count > BROKER_REPLICAS_MAX ||
        (op->type == CLUSTER_CONFIG_OP_PARTITION_FORCE_RECONFIGURE &&
         op->broker_count == 0) ||
        (op->type == CLUSTER_CONFIG_OP_BROKER_FORCE_REMOVE &&
         op->broker_count != 1) ||
        (op->type != CLUSTER_CONFIG_OP_PARTITION_FORCE_RECONFIGURE &&
         op->type != CLUSTER_CONFIG_OP_BROKER_FORCE_REMOVE &&
         op->broker_count != 0)) {
        return fail(inv, err, err_len,
                    "operation %u (%s): broker %u, %u brokers listed", k,
                    cluster_config_op_name(op->type), op->broker_id,
                    op->broker_count);
    }
    if (op_is_partition(op->type) &&
        (op->partition_id == 0 || op->partition_id > cfg->partitions_count)) {
        return fail(inv, err, err_len, "operation %u (%s): partition %u", k,
                    cluster_config_op_name(op->type), op->partition_id);
    }
    if (op_has_priority(op->type) != (op->priority != 0)) {
        return fail(inv, err, err_len, "operation %u (%s): priority %u", k,
                    cluster_config_op_name(op->type), op->priority);
    }
    if ((op_is_exporter(op->type) && op->exporter >= cfg->exporter_count) ||
        op->initialize_from > cfg->exporter_count ||
        (op->initialize_from > 0 &&
         (op->type != CLUSTER_CONFIG_OP_PARTITION_ENABLE_EXPORTER ||
          op->initialize_from == op->exporter + 1))) {
        return fail(inv, err, err_len,
                    "operation %u (%s): exporter %u, initialize from %u", k,
                    cluster_config_op_name(op->type), op->exporter,
                    op->initialize_from);
    }
    if (completed != (op->completed_at_ms > 0) || op->completed_at_ms < 0) {
        return fail(inv, err, err_len,
                    "operation %u (%s): %s but completed at %lld", k,
                    cluster_config_op_name(op->type),
                    completed ? "completed" : "pending",
                    (long long)op->completed_at_ms);
    }
    return 0;
}

static int ext_validate(const struct cluster_config *cfg, char *err,
                        size_t err_len)
{
    const int inv = CLUSTER_CONFIG_E_INVALID;
    const struct cluster_config_change *c = &cfg->pending;
    int rv;

    if (cfg->exporter_count > CLUSTER_CONFIG_EXPORTERS_MAX) {
        return fail(inv, err, err_len, "%u exporters, at most %u",
                    cfg->exporter_count, CLUSTER_CONFIG_EXPORTERS_MAX);
    }
    for (uint32_t e = 0; e < cfg->exporter_count; e++) {
        if (memchr(cfg->exporters[e], '\0',
                   CLUSTER_CONFIG_EXPORTER_ID_MAX + 1) == NULL ||
            !exporter_id_valid(cfg->exporters[e])) {
            return fail(inv, err, err_len,
                        "exporter %u: id must be 1..%u of [A-Za-z0-9._-]", e,
                        CLUSTER_CONFIG_EXPORTER_ID_MAX);
        }
        for (uint32_t f = 0; f < e; f++) {
            if (strcmp(cfg->exporters[e], cfg->exporters[f]) == 0) {
                return fail(inv, err, err_len, "exporter \"%s\" listed twice",
                            cfg->exporters[e]);
            }
        }
    }
    if (cfg->exporting > CLUSTER_CONFIG_EXPORTING_SOFT_PAUSED) {
        return fail(inv, err, err_len, "exporting state %u", cfg->exporting);
    }
    if ((cfg->last.status == CLUSTER_CONFIG_CHANGE_NONE) !=
            (cfg->last.id == 0) ||
        cfg->last.status == CLUSTER_CONFIG_CHANGE_IN_PROGRESS ||
        cfg->last.status > CLUSTER_CONFIG_CHANGE_CANCELLED ||
        cfg->last.started_at_ms < 0 || cfg->last.completed_at_ms < 0) {
        return fail(inv, err, err_len, "last change %llu has status %u",
                    (unsigned long long)cfg->last.id, cfg->last.status);
    }
    if (c->status == CLUSTER_CONFIG_CHANGE_NONE) {
        return 0;
    }
    if (c->status != CLUSTER_CONFIG_CHANGE_IN_PROGRESS || c->id == 0 ||
        c->id <= cfg->last.id || c->id > cfg->version || c->started_at_ms < 0) {
        return fail(inv, err, err_len,
                    "pending change %llu: status %u, version %llu, last "
                    "change %llu",
                    (unsigned long long)c->id, c->status,
                    (unsigned long long)cfg->version,
                    (unsigned long long)cfg->last.id);
    }
    if (c->op_count == 0 || c->op_count > CLUSTER_CONFIG_OPERATIONS_MAX ||
        c->completed_count >= c->op_count ||
        c->target_replication_factor == 0 ||
        c->target_replication_factor > BROKER_REPLICAS_MAX) {
        return fail(inv, err, err_len,
                    "pending change %llu: %u of %u operations completed "
                    "(1..%u, some pending), replication factor %u",
                    (unsigned long long)c->id, c->completed_count, c->op_count,
                    CLUSTER_CONFIG_OPERATIONS_MAX,
                    c->target_replication_factor);
    }
    for (uint32_t k = 0; k < c->op_count; k++) {
        rv = op_validate(cfg, &c->ops[k], k < c->completed_count, k, err,
                         err_len);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

static int ext_wire_build(const struct cluster_config *cfg, char **out)
{
    json_t *root = NULL;
    int rv = file_json_build(cfg, &root);

    *out = NULL;
    if (rv != 0) {
        return rv; /* UNTESTED: out of memory */
    }
    *out = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return *out != NULL ? 0 : CLUSTER_CONFIG_E_NOMEM;
}

/* 1 if the base fields (those of protobuf fields 2..7) of a and b agree. */
static bool base_equal(const struct cluster_config *a,
                       const struct cluster_config *b)
{
    if (a->version != b->version || a->cluster_size != b->cluster_size ||
        a->partitions_count != b->partitions_count ||
        a->replication_factor != b->replication_factor ||
        a->member_count != b->member_count ||
        memcmp(a->members, b->members,
               a->member_count * sizeof(a->members[0])) != 0) {
        return false;
    }
    for (uint32_t i = 0; i < a->partitions_count; i++) {
        const struct cluster_config_partition *pa = &a->partitions[i];
        const struct cluster_config_partition *pb = &b->partitions[i];
        if (pa->replica_count != pb->replica_count) {
            return false;
        }
        for (uint32_t j = 0; j < pa->replica_count; j++) {
            if (pa->replicas[j].node_id != pb->replicas[j].node_id ||
                pa->replicas[j].priority != pb->replicas[j].priority) {
                return false;
            }
        }
    }
    return true;
}

/* Reads the extension field of an unpacked ClusterConfig, if any, into
 * out (already decoded and validated from fields 1..7). */
static int ext_wire_read(const ProtobufCMessage *base,
                         struct cluster_config *out, char *err, size_t err_len)
{
    const ProtobufCMessageUnknownField *ext = NULL;
    struct cluster_config *full;
    char reason[CLUSTER_CONFIG_ERRMSG_SIZE];
    int rv;

    for (unsigned k = 0; k < base->n_unknown_fields; k++) {
        const ProtobufCMessageUnknownField *f = &base->unknown_fields[k];
        if (f->tag != CLUSTER_CONFIG__EXT_FIELD) {
            continue; /* a newer writer's field: skipped */
        }
        if (ext != NULL ||
            f->wire_type != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED) {
            return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                        "extension field %u repeated or not "
                        "length-delimited",
                        CLUSTER_CONFIG__EXT_FIELD);
        }
        ext = f;
    }
    if (ext == NULL) {
        return 0;
    }
    uint64_t plen = 0;
    size_t vlen = varint_get(ext->data, ext->len, &plen);
    if (vlen == 0 || plen != ext->len - vlen) {
        return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len, /* UNTESTED */
                    "extension field %u has a bad length",
                    CLUSTER_CONFIG__EXT_FIELD);
    }
    full = malloc(sizeof(*full));
    if (full == NULL) {
        return fail(CLUSTER_CONFIG_E_NOMEM, err, err_len, /* UNTESTED */
                    "no memory for the extension");
    }
    rv = cluster_config_from_json((const char *)ext->data + vlen, (size_t)plen,
                                  full, reason, sizeof(reason));
    if (rv == CLUSTER_CONFIG_E_MALFORMED) {
        rv = fail(rv, err, err_len, "extension: %s", reason);
    } else if (rv == 0 && !base_equal(full, out)) {
        rv = fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                  "extension describes another configuration than "
                  "fields 2..7");
    } else if (rv == 0 && !ext_present(full)) {
        rv = fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                  "extension present but empty (not canonical)");
    } else if (rv != 0) {
        rv = fail(rv, err, err_len, "extension: %s", reason);
    }
    if (rv == 0) {
        memcpy(out, full, sizeof(*out));
    }
    free(full);
    return rv;
}

int cluster_config_exporter_find(const struct cluster_config *cfg,
                                 const char *id)
{
    assert(cfg != NULL);
    assert(cfg->exporter_count <= CLUSTER_CONFIG_EXPORTERS_MAX);
    for (uint32_t e = 0; id != NULL && e < cfg->exporter_count; e++) {
        if (strcmp(cfg->exporters[e], id) == 0) {
            return (int)e;
        }
    }
    return -1;
}

int cluster_config_exporter_add(struct cluster_config *cfg, const char *id,
                                char *err, size_t err_len)
{
    uint32_t e;

    assert(cfg != NULL);
    if (id == NULL || !exporter_id_valid(id)) {
        return fail(CLUSTER_CONFIG_E_INVALID, err, err_len,
                    "exporter id must be 1..%u characters of [A-Za-z0-9._-]",
                    CLUSTER_CONFIG_EXPORTER_ID_MAX);
    }
    if (cluster_config_exporter_find(cfg, id) >= 0) {
        return fail(CLUSTER_CONFIG_E_INVALID, err, err_len,
                    "exporter \"%s\" is already known", id);
    }
    if (cfg->exporter_count >= CLUSTER_CONFIG_EXPORTERS_MAX) {
        return fail(CLUSTER_CONFIG_E_TOO_BIG, err, err_len,
                    "more than %u exporters", CLUSTER_CONFIG_EXPORTERS_MAX);
    }
    e = cfg->exporter_count++;
    snprintf(cfg->exporters[e], sizeof(cfg->exporters[e]), "%s", id);
    for (uint32_t i = 0; i < cfg->partitions_count; i++) {
        struct cluster_config_partition *p = &cfg->partitions[i];
        for (uint32_t j = 0; j < p->replica_count; j++) {
            memset(&p->replicas[j].exporters[e], 0,
                   sizeof(p->replicas[j].exporters[e]));
        }
    }
    assert(cluster_config_exporter_find(cfg, id) == (int)e);
    return (int)e;
}

int cluster_config_exporting_set(struct cluster_config *cfg, int state)
{
    assert(cfg != NULL);
    if (state < CLUSTER_CONFIG_EXPORTING ||
        state > CLUSTER_CONFIG_EXPORTING_SOFT_PAUSED) {
        return CLUSTER_CONFIG_E_INVALID;
    }
    if (cfg->exporting == state) {
        return 0;
    }
    cfg->exporting = (uint8_t)state;
    cfg->version++;
    return 1;
}

/* Zeebe's aggregate exporter status (ClusterApiUtils.
 * aggregateExporterState). */
static const char *exporter_status(const struct cluster_config *cfg, uint32_t e)
{
    const struct cluster_config_change *c = &cfg->pending;
    int seen = -1;
    bool same = true;

    for (uint32_t i = 0; i < cfg->partitions_count; i++) {
        const struct cluster_config_partition *p = &cfg->partitions[i];
        for (uint32_t j = 0; j < p->replica_count; j++) {
            int st = p->replicas[j].exporters[e].state;
            if (seen >= 0 && st != seen) {
                same = false;
            }
            seen = st;
        }
    }
    if (c->status == CLUSTER_CONFIG_CHANGE_IN_PROGRESS) {
        for (uint32_t k = c->completed_count; k < c->op_count; k++) {
            if (c->ops[k].exporter != e) {
                continue;
            }
            if (c->ops[k].type == CLUSTER_CONFIG_OP_PARTITION_ENABLE_EXPORTER) {
                return "ENABLING";
            }
            if (c->ops[k].type ==
                CLUSTER_CONFIG_OP_PARTITION_DISABLE_EXPORTER) {
                return "DISABLING";
            }
        }
    }
    if (same && seen >= 0) {
        return exporter_state_name((unsigned)seen);
    }
    return "UNKNOWN";
}

int cluster_config_exporters_to_json(const struct cluster_config *cfg,
                                     json_t **out)
{
    json_t *a = json_array();
    bool ok = a != NULL;

    assert(cfg != NULL);
    assert(out != NULL);
    for (uint32_t e = 0; ok && e < cfg->exporter_count; e++) {
        ok = json_array_append_new(a, json_pack("{s:s, s:s}", "exporterId",
                                                cfg->exporters[e], "status",
                                                exporter_status(cfg, e))) == 0;
    }
    if (!ok) {
        json_decref(a); /* UNTESTED: out of memory */
        *out = NULL;
        return CLUSTER_CONFIG_E_NOMEM;
    }
    *out = a;
    return 0;
}

/* ------------------------------------------------------------------------
 * Applying operations
 * --------------------------------------------------------------------- */

/* The index of node_id in cfg->members, or -1. */
static int member_index(const struct cluster_config *cfg, uint32_t node_id)
{
    for (uint32_t k = 0; k < cfg->member_count; k++) {
        if (cfg->members[k] == node_id) {
            return (int)k;
        }
    }
    return -1;
}

/* The index of node_id among p's replicas, or -1. */
static int replica_index(const struct cluster_config_partition *p,
                         uint32_t node_id)
{
    for (uint32_t j = 0; j < p->replica_count; j++) {
        if (p->replicas[j].node_id == node_id) {
            return (int)j;
        }
    }
    return -1;
}

/* The number of partitions node_id hosts. */
static uint32_t hosted_count(const struct cluster_config *cfg, uint32_t node_id)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < cfg->partitions_count; i++) {
        n += replica_index(&cfg->partitions[i], node_id) >= 0 ? 1 : 0;
    }
    return n;
}

static int member_insert(struct cluster_config *cfg, uint32_t node_id,
                         char *err, size_t err_len)
{
    uint32_t k;

    if (node_id > BROKER_NODE_ID_MAX || member_index(cfg, node_id) >= 0 ||
        cfg->member_count >= BROKER_CLUSTER_SIZE_MAX) {
        return fail(CLUSTER_CONFIG_E_INVALID, err, err_len,
                    "cannot add broker %u: already a member, id above %u, "
                    "or %u brokers already",
                    node_id, BROKER_NODE_ID_MAX, cfg->member_count);
    }
    k = cfg->member_count;
    while (k > 0 && cfg->members[k - 1] > node_id) {
        cfg->members[k] = cfg->members[k - 1];
        k--;
    }
    cfg->members[k] = node_id;
    cfg->member_count++;
    cfg->cluster_size = cfg->member_count;
    return 0;
}

static int member_delete(struct cluster_config *cfg, uint32_t node_id,
                         char *err, size_t err_len)
{
    int k = member_index(cfg, node_id);
    uint32_t hosted;

    if (k < 0) {
        return fail(CLUSTER_CONFIG_E_INVALID, err, err_len,
                    "cannot remove broker %u: not a member", node_id);
    }
    hosted = hosted_count(cfg, node_id);
    if (hosted > 0 || cfg->member_count == 1) {
        return fail(CLUSTER_CONFIG_E_INVALID, err, err_len,
                    "cannot remove broker %u: it still hosts %u partitions "
                    "or is the last member",
                    node_id, hosted);
    }
    memmove(&cfg->members[k], &cfg->members[k + 1],
            (cfg->member_count - (uint32_t)k - 1) * sizeof(cfg->members[0]));
    cfg->member_count--;
    cfg->members[cfg->member_count] = 0;
    cfg->cluster_size = cfg->member_count;
    return 0;
}

int cluster_config_op_apply(struct cluster_config *cfg,
                            const struct cluster_config_op *op, char *err,
                            size_t err_len)
{
    const int inv = CLUSTER_CONFIG_E_INVALID;
    struct cluster_config_partition *p = NULL;
    int j = -1;
    int rv;

    assert(cfg != NULL);
    assert(op != NULL);
    rv = op_validate(cfg, op, op->completed_at_ms > 0, 0, err, err_len);
    if (rv != 0) {
        return rv;
    }
    if (op_is_partition(op->type)) {
        p = &cfg->partitions[op->partition_id - 1];
        assert(p->id == op->partition_id);
        j = replica_index(p, op->broker_id);
        if (op->type != CLUSTER_CONFIG_OP_PARTITION_FORCE_RECONFIGURE &&
            member_index(cfg, op->broker_id) < 0) {
            return fail(inv, err, err_len, "%s: broker %u is not a member",
                        cluster_config_op_name(op->type), op->broker_id);
        }
        if (op->type != CLUSTER_CONFIG_OP_PARTITION_JOIN &&
            op->type != CLUSTER_CONFIG_OP_PARTITION_FORCE_RECONFIGURE &&
            j < 0) {
            return fail(inv, err, err_len,
                        "%s: broker %u is not a replica of partition %u",
                        cluster_config_op_name(op->type), op->broker_id,
                        op->partition_id);
        }
    }
    switch (op->type) {
    case CLUSTER_CONFIG_OP_BROKER_ADD:
        return member_insert(cfg, op->broker_id, err, err_len);
    case CLUSTER_CONFIG_OP_BROKER_REMOVE:
        return member_delete(cfg, op->broker_id, err, err_len);
    case CLUSTER_CONFIG_OP_BROKER_FORCE_REMOVE:
        return member_delete(cfg, op->brokers[0], err, err_len);
    case CLUSTER_CONFIG_OP_PARTITION_JOIN: {
        struct cluster_config_replica r;
        uint32_t k;
        if (j >= 0 || p->replica_count >= BROKER_REPLICAS_MAX) {
            return fail(inv, err, err_len,
                        "PARTITION_JOIN: broker %u already a replica of "
                        "partition %u, or it has %u replicas",
                        op->broker_id, p->id, p->replica_count);
        }
        memset(&r, 0, sizeof(r));
        r.node_id = op->broker_id;
        r.priority = op->priority;
        /* A joining replica takes the partition's exporter states
         * (Zeebe copies the partition's configuration to it). */
        memcpy(r.exporters, p->replicas[0].exporters, sizeof(r.exporters));
        k = p->replica_count;
        while (k > 0 && p->replicas[k - 1].node_id > r.node_id) {
            p->replicas[k] = p->replicas[k - 1];
            k--;
        }
        p->replicas[k] = r;
        p->replica_count++;
        return 0;
    }
    case CLUSTER_CONFIG_OP_PARTITION_LEAVE:
        if (j < 0) {
            break; /* NEVER: checked above */
        }
        if (p->replica_count == 1) {
            return fail(inv, err, err_len,
                        "PARTITION_LEAVE: broker %u is the last replica of "
                        "partition %u",
                        op->broker_id, p->id);
        }
        memmove(&p->replicas[j], &p->replicas[j + 1],
                (p->replica_count - (uint32_t)j - 1) * sizeof(p->replicas[0]));
        p->replica_count--;
        if (p->replica_count < BROKER_REPLICAS_MAX) {
            memset(&p->replicas[p->replica_count], 0, sizeof(p->replicas[0]));
        }
        return 0;
    case CLUSTER_CONFIG_OP_PARTITION_RECONFIGURE_PRIORITY:
        if (j < 0) {
            break; /* NEVER: checked above */
        }
        p->replicas[j].priority = op->priority;
        return 0;
    case CLUSTER_CONFIG_OP_PARTITION_FORCE_RECONFIGURE: {
        struct cluster_config_partition next;
        memset(&next, 0, sizeof(next));
        next.id = p->id;
        for (uint32_t k = 0; k < op->broker_count; k++) {
            int at = replica_index(p, op->brokers[k]);
            if (at < 0 || (k > 0 && op->brokers[k - 1] >= op->brokers[k])) {
                return fail(inv, err, err_len,
                            "PARTITION_FORCE_RECONFIGURE: broker %u is not a "
                            "replica of partition %u (or brokers not "
                            "ascending)",
                            op->brokers[k], p->id);
            }
            next.replicas[next.replica_count++] = p->replicas[at];
        }
        *p = next;
        return 0;
    }
    case CLUSTER_CONFIG_OP_PARTITION_DISABLE_EXPORTER:
        if (j < 0) {
            break; /* NEVER: checked above */
        }
        p->replicas[j].exporters[op->exporter].state =
            CLUSTER_CONFIG_EXPORTER_DISABLED;
        return 0;
    case CLUSTER_CONFIG_OP_PARTITION_ENABLE_EXPORTER: {
        struct cluster_config_replica_exporter *x;
        if (j < 0) {
            break; /* NEVER: checked above */
        }
        x = &p->replicas[j].exporters[op->exporter];
        x->state = CLUSTER_CONFIG_EXPORTER_ENABLED;
        x->metadata_version = x->metadata_version < UINT16_MAX
                                  ? (uint16_t)(x->metadata_version + 1)
                                  : UINT16_MAX;
        x->initialized_from = op->initialize_from;
        return 0;
    }
    default:
        break;
    }
    return fail(inv, err, err_len, "operation type %u", op->type); /* NEVER */
}

int cluster_config_op_complete(struct cluster_config *cfg, int64_t now_ms,
                               char *err, size_t err_len)
{
    struct cluster_config_change *c = &cfg->pending;
    struct cluster_config_op op;
    int rv;

    assert(cfg != NULL);
    if (c->status != CLUSTER_CONFIG_CHANGE_IN_PROGRESS) {
        return fail(CLUSTER_CONFIG_E_INVALID, err, err_len,
                    "no configuration change is in progress");
    }
    assert(c->completed_count < c->op_count);
    if (now_ms <= 0) {
        return fail(CLUSTER_CONFIG_E_INVALID, err, err_len,
                    "completion time %lld", (long long)now_ms);
    }
    op = c->ops[c->completed_count];
    op.completed_at_ms = now_ms;
    rv = cluster_config_op_apply(cfg, &op, err, err_len);
    if (rv != 0) {
        return rv;
    }
    c->ops[c->completed_count++] = op;
    cfg->version++;
    if (c->completed_count < c->op_count) {
        return 0;
    }
    cfg->last.id = c->id;
    cfg->last.status = CLUSTER_CONFIG_CHANGE_COMPLETED;
    cfg->last.started_at_ms = c->started_at_ms;
    cfg->last.completed_at_ms = now_ms;
    cfg->replication_factor = c->target_replication_factor;
    memset(c, 0, sizeof(*c));
    assert(cluster_config_validate(cfg, NULL, 0) == 0);
    return 1;
}

int cluster_config_change_finish(struct cluster_config *cfg, uint64_t change_id,
                                 int status, int64_t now_ms, char *err,
                                 size_t err_len)
{
    struct cluster_config_change *c = &cfg->pending;

    assert(cfg != NULL);
    if (status != CLUSTER_CONFIG_CHANGE_FAILED &&
        status != CLUSTER_CONFIG_CHANGE_CANCELLED) {
        return fail(CLUSTER_CONFIG_E_INVALID, err, err_len,
                    "a change ends FAILED or CANCELLED, not %s",
                    change_status_name((unsigned)status));
    }
    if (c->status != CLUSTER_CONFIG_CHANGE_IN_PROGRESS) {
        return fail(CLUSTER_CONFIG_E_INVALID, err, err_len,
                    "Expected to cancel change %llu, but no configuration "
                    "change is in progress",
                    (unsigned long long)change_id);
    }
    if (c->id != change_id) {
        return fail(CLUSTER_CONFIG_E_INVALID, err, err_len,
                    "Expected to cancel change %llu, but the change in "
                    "progress is %llu",
                    (unsigned long long)change_id, (unsigned long long)c->id);
    }
    cfg->last.id = c->id;
    cfg->last.status = (uint8_t)status;
    cfg->last.started_at_ms = c->started_at_ms;
    cfg->last.completed_at_ms = now_ms > 0 ? now_ms : c->started_at_ms;
    memset(c, 0, sizeof(*c));
    cfg->version++;
    return 0;
}

/* ------------------------------------------------------------------------
 * Planning
 * --------------------------------------------------------------------- */

/* Fails the plan with an HTTP status and a message; returns
 * CLUSTER_CONFIG_E_INVALID. */
__attribute__((format(printf, 3, 4))) static int
plan_fail(struct cluster_config_plan *out, int status, const char *fmt, ...)
{
    va_list ap;

    assert(status >= 400 && status < 500);
    out->http_status = status;
    va_start(ap, fmt);
    vsnprintf(out->message, sizeof(out->message), fmt, ap);
    va_end(ap);
    out->change.op_count = 0;
    return CLUSTER_CONFIG_E_INVALID;
}

/* Appends op to the plan and applies it to the expected configuration;
 * an operation that does not apply makes the request invalid (400). */
static int plan_push(struct cluster_config_plan *out,
                     const struct cluster_config_op *op)
{
    char reason[CLUSTER_CONFIG_ERRMSG_SIZE];

    if (out->change.op_count >= CLUSTER_CONFIG_OPERATIONS_MAX) {
        return plan_fail(out, 400, "The change needs more than %u operations",
                         CLUSTER_CONFIG_OPERATIONS_MAX);
    }
    if (cluster_config_op_apply(&out->expected, op, reason, sizeof(reason)) !=
        0) {
        return plan_fail(out, 400, "Invalid request: %s", reason);
    }
    out->change.ops[out->change.op_count++] = *op;
    return 0;
}

/* The smallest replica count of any partition (Zeebe's current
 * replication factor of a scale request without one). */
static uint32_t replicas_min(const struct cluster_config *cfg)
{
    uint32_t m = BROKER_REPLICAS_MAX;
    for (uint32_t i = 0; i < cfg->partitions_count; i++) {
        if (cfg->partitions[i].replica_count < m) {
            m = cfg->partitions[i].replica_count;
        }
    }
    return m;
}

/* Sorts and deduplicates the requested broker ids into ids[]; returns the
 * count, or -1 with the plan failed. */
static int plan_ids(const struct cluster_config_request *req,
                    struct cluster_config_plan *out, uint32_t *ids)
{
    uint32_t n = 0;

    if (req->broker_count == 0 || req->brokers == NULL) {
        return plan_fail(out, 400, "Expected a non-empty list of broker ids") <
                       0
                   ? -1
                   : -1;
    }
    for (uint32_t k = 0; k < req->broker_count; k++) {
        uint32_t id = req->brokers[k];
        uint32_t at = n;
        if (id > BROKER_NODE_ID_MAX) {
            plan_fail(out, 400, "Broker id %u is above %u", id,
                      BROKER_NODE_ID_MAX);
            return -1;
        }
        while (at > 0 && ids[at - 1] > id) {
            at--;
        }
        if (at > 0 && ids[at - 1] == id) {
            continue; /* a duplicate counts once, as in Zeebe's Set */
        }
        if (n == BROKER_CLUSTER_SIZE_MAX) {
            plan_fail(out, 400, "More than %u brokers requested",
                      BROKER_CLUSTER_SIZE_MAX);
            return -1;
        }
        memmove(&ids[at + 1], &ids[at], (n - at) * sizeof(ids[0]));
        ids[at] = id;
        n++;
    }
    return (int)n;
}

static bool ids_contain(const uint32_t *ids, uint32_t n, uint32_t id)
{
    for (uint32_t k = 0; k < n; k++) {
        if (ids[k] == id) {
            return true;
        }
    }
    return false;
}

/* The operations moving one partition to its placement target. */
static int plan_partition_moves(struct cluster_config_plan *out,
                                const struct broker_partition_placement *pp)
{
    const struct cluster_config_partition *cur =
        &out->expected.partitions[pp->partition_id - 1];
    struct cluster_config_op op;
    uint32_t leaves[BROKER_REPLICAS_MAX];
    uint32_t leave_count = 0;
    uint32_t next_leave = 0;
    int rv;

    /* Snapshot of the replicas to leave (cur changes as ops apply). */
    for (uint32_t j = 0; j < cur->replica_count; j++) {
        bool kept = false;
        for (uint32_t t = 0; t < pp->replica_count && !kept; t++) {
            kept = pp->replicas[t].node_id == cur->replicas[j].node_id;
        }
        if (!kept) {
            leaves[leave_count++] = cur->replicas[j].node_id;
        }
    }
    for (uint32_t t = 0; t < pp->replica_count; t++) {
        if (replica_index(cur, pp->replicas[t].node_id) >= 0) {
            continue;
        }
        memset(&op, 0, sizeof(op));
        if (cur->replica_count == BROKER_REPLICAS_MAX &&
            next_leave < leave_count) {
            op.type = CLUSTER_CONFIG_OP_PARTITION_LEAVE;
            op.broker_id = leaves[next_leave++];
            op.partition_id = pp->partition_id;
            if ((rv = plan_push(out, &op)) != 0) {
                return rv;
            }
            memset(&op, 0, sizeof(op));
        }
        op.type = CLUSTER_CONFIG_OP_PARTITION_JOIN;
        op.broker_id = pp->replicas[t].node_id;
        op.partition_id = pp->partition_id;
        op.priority = pp->replicas[t].priority;
        if ((rv = plan_push(out, &op)) != 0) {
            return rv;
        }
    }
    for (; next_leave < leave_count; next_leave++) {
        memset(&op, 0, sizeof(op));
        op.type = CLUSTER_CONFIG_OP_PARTITION_LEAVE;
        op.broker_id = leaves[next_leave];
        op.partition_id = pp->partition_id;
        if ((rv = plan_push(out, &op)) != 0) {
            return rv;
        }
    }
    for (uint32_t t = 0; t < pp->replica_count; t++) {
        int j = replica_index(cur, pp->replicas[t].node_id);
        assert(j >= 0);
        if (cur->replicas[j].priority == pp->replicas[t].priority) {
            continue;
        }
        memset(&op, 0, sizeof(op));
        op.type = CLUSTER_CONFIG_OP_PARTITION_RECONFIGURE_PRIORITY;
        op.broker_id = pp->replicas[t].node_id;
        op.partition_id = pp->partition_id;
        op.priority = pp->replicas[t].priority;
        if ((rv = plan_push(out, &op)) != 0) {
            return rv;
        }
    }
    return 0;
}

/* POST /actuator/cluster/brokers without force. */
static int plan_scale(const struct cluster_config *cfg,
                      const struct cluster_config_request *req,
                      const uint32_t *ids, uint32_t n,
                      struct cluster_config_plan *out)
{
    struct broker_placement *placement;
    struct cluster_config_op op;
    uint32_t rf = req->replication_factor > 0 ? req->replication_factor
                                              : replicas_min(cfg);
    int rv = 0;

    if (rf > BROKER_REPLICAS_MAX) {
        return plan_fail(out, 400,
                         "Replication factor %u is above the maximum %u", rf,
                         BROKER_REPLICAS_MAX);
    }
    if (rf > n) {
        return plan_fail(out, 400,
                         "Replication factor %u cannot be greater than the "
                         "number of brokers %u",
                         rf, n);
    }
    placement = malloc(sizeof(*placement));
    if (placement == NULL ||
        broker_placement_compute(placement, ids, n, cfg->partitions_count,
                                 rf) != 0) {
        free(placement); /* UNTESTED: out of memory; inputs are checked */
        return plan_fail(out, 400, "Cannot place %u partitions on %u brokers",
                         cfg->partitions_count, n);
    }
    for (uint32_t k = 0; rv == 0 && k < n; k++) {
        if (member_index(cfg, ids[k]) < 0) {
            memset(&op, 0, sizeof(op));
            op.type = CLUSTER_CONFIG_OP_BROKER_ADD;
            op.broker_id = ids[k];
            rv = plan_push(out, &op);
        }
    }
    for (uint32_t i = 0; rv == 0 && i < cfg->partitions_count; i++) {
        rv = plan_partition_moves(out, &placement->partitions[i]);
    }
    for (uint32_t k = 0; rv == 0 && k < cfg->member_count; k++) {
        if (!ids_contain(ids, n, cfg->members[k])) {
            memset(&op, 0, sizeof(op));
            op.type = CLUSTER_CONFIG_OP_BROKER_REMOVE;
            op.broker_id = cfg->members[k];
            rv = plan_push(out, &op);
        }
    }
    free(placement);
    out->change.target_replication_factor = rf;
    return rv;
}

/* POST /actuator/cluster/brokers?force=true (zeebe-facts 4.4). */
static int plan_force(const struct cluster_config *cfg,
                      const struct cluster_config_request *req,
                      const uint32_t *ids, uint32_t n,
                      struct cluster_config_plan *out)
{
    char list[CLUSTER_CONFIG_ERRMSG_SIZE / 2];
    size_t used = 0;
    struct cluster_config_op op;
    int rv = 0;

    if (req->replication_factor > 0) {
        return plan_fail(out, 400,
                         "Expected no replication factor with force=true, but "
                         "got %u: the replication factor cannot be changed "
                         "during force scale down",
                         req->replication_factor);
    }
    list[0] = '\0';
    for (uint32_t k = 0; k < n; k++) {
        if (member_index(cfg, ids[k]) < 0 && used < sizeof(list)) {
            used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%u",
                                     used > 0 ? ", " : "", ids[k]);
        }
    }
    if (used > 0) {
        return plan_fail(out, 400,
                         "Expected to keep only current brokers with "
                         "force=true, but brokers [%s] are not members",
                         list);
    }
    for (uint32_t i = 0; i < cfg->partitions_count; i++) {
        const struct cluster_config_partition *p = &cfg->partitions[i];
        bool kept = false;
        for (uint32_t j = 0; j < p->replica_count && !kept; j++) {
            kept = ids_contain(ids, n, p->replicas[j].node_id);
        }
        if (!kept && used < sizeof(list)) {
            used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%u",
                                     used > 0 ? ", " : "", p->id);
        }
    }
    if (used > 0) {
        return plan_fail(out, 400,
                         "Expected to remove brokers by force, but it will "
                         "result in partitions [%s] having no replicas",
                         list);
    }
    out->coordinator = ids[0];
    for (uint32_t i = 0; rv == 0 && i < cfg->partitions_count; i++) {
        const struct cluster_config_partition *p = &cfg->partitions[i];
        memset(&op, 0, sizeof(op));
        op.type = CLUSTER_CONFIG_OP_PARTITION_FORCE_RECONFIGURE;
        op.partition_id = p->id;
        for (uint32_t j = 0; j < p->replica_count; j++) {
            if (ids_contain(ids, n, p->replicas[j].node_id)) {
                op.brokers[op.broker_count++] =
                    (uint16_t)p->replicas[j].node_id;
            }
        }
        assert(op.broker_count > 0);
        if (op.broker_count < p->replica_count) {
            op.broker_id = op.brokers[0];
            rv = plan_push(out, &op);
        }
    }
    for (uint32_t k = 0; rv == 0 && k < cfg->member_count; k++) {
        if (!ids_contain(ids, n, cfg->members[k])) {
            memset(&op, 0, sizeof(op));
            op.type = CLUSTER_CONFIG_OP_BROKER_FORCE_REMOVE;
            op.broker_id = out->coordinator;
            op.broker_count = 1;
            op.brokers[0] = (uint16_t)cfg->members[k];
            rv = plan_push(out, &op);
        }
    }
    out->change.target_replication_factor = replicas_min(&out->expected);
    return rv;
}

/* POST /actuator/exporters/{id}/enable|disable (zeebe-facts 1.4). */
static int plan_exporter(const struct cluster_config *cfg,
                         const struct cluster_config_request *req,
                         struct cluster_config_plan *out)
{
    bool enable = req->kind == CLUSTER_CONFIG_REQUEST_EXPORTER_ENABLE;
    int e = cluster_config_exporter_find(cfg, req->exporter);
    int f = -1;
    bool all_enabled = true;
    struct cluster_config_op op;
    int rv = 0;

    if (e < 0) {
        return plan_fail(out, 400,
                         "Expected to %s exporter '%.64s', but no exporter "
                         "with this id is configured",
                         enable ? "enable" : "disable",
                         req->exporter != NULL ? req->exporter : "");
    }
    if (enable && req->initialize_from != NULL) {
        f = cluster_config_exporter_find(cfg, req->initialize_from);
        if (f < 0 || f == e) {
            return plan_fail(out, 400,
                             "Expected to initialize exporter '%s' from "
                             "another configured exporter, but '%.64s' is %s",
                             cfg->exporters[e], req->initialize_from,
                             f == e ? "the same exporter" : "not configured");
        }
    }
    for (uint32_t i = 0; i < cfg->partitions_count; i++) {
        const struct cluster_config_partition *p = &cfg->partitions[i];
        for (uint32_t j = 0; j < p->replica_count; j++) {
            const struct cluster_config_replica *r = &p->replicas[j];
            if (r->exporters[e].state != CLUSTER_CONFIG_EXPORTER_ENABLED) {
                all_enabled = false;
                if (f >= 0 &&
                    r->exporters[f].state != CLUSTER_CONFIG_EXPORTER_ENABLED) {
                    return plan_fail(out, 400,
                                     "Expected to initialize exporter '%s' "
                                     "from '%s', but '%s' is disabled in "
                                     "partition %u on broker %u",
                                     cfg->exporters[e], cfg->exporters[f],
                                     cfg->exporters[f], p->id, r->node_id);
                }
            }
        }
    }
    if (enable && all_enabled) {
        return plan_fail(out, 400,
                         "Expected to enable exporter, but the exporter '%s' "
                         "is already enabled",
                         cfg->exporters[e]);
    }
    /* Zeebe's order: members ascending, each member's partitions
     * ascending; an enable skips replicas where it is enabled already. */
    for (uint32_t k = 0; rv == 0 && k < cfg->member_count; k++) {
        for (uint32_t i = 0; rv == 0 && i < cfg->partitions_count; i++) {
            const struct cluster_config_partition *p = &cfg->partitions[i];
            int j = replica_index(p, cfg->members[k]);
            if (j < 0 || (enable && p->replicas[j].exporters[e].state ==
                                        CLUSTER_CONFIG_EXPORTER_ENABLED)) {
                continue;
            }
            memset(&op, 0, sizeof(op));
            op.type = enable ? CLUSTER_CONFIG_OP_PARTITION_ENABLE_EXPORTER
                             : CLUSTER_CONFIG_OP_PARTITION_DISABLE_EXPORTER;
            op.broker_id = cfg->members[k];
            op.partition_id = p->id;
            op.exporter = (uint8_t)e;
            op.initialize_from = (uint8_t)(f + 1);
            rv = plan_push(out, &op);
        }
    }
    return rv;
}

/* Checks that cfg with the plan recorded still encodes within
 * CLUSTER_CONFIG_BYTES_MAX (what gossip and the decoder accept). */
static int plan_size_check(const struct cluster_config *cfg,
                           struct cluster_config_plan *out)
{
    struct cluster_config *with = malloc(sizeof(*with));
    uint8_t *buf = malloc(CLUSTER_CONFIG_BYTES_MAX);
    size_t len = 0;
    int rv = CLUSTER_CONFIG_E_NOMEM;

    if (with != NULL && buf != NULL) {
        memcpy(with, cfg, sizeof(*with));
        rv = cluster_config_change_start(with, out, 1) > 0
                 ? cluster_config_encode(with, buf, CLUSTER_CONFIG_BYTES_MAX,
                                         &len)
                 : CLUSTER_CONFIG_E_INVALID;
    }
    free(with);
    free(buf);
    if (rv == CLUSTER_CONFIG_E_TOO_BIG) {
        return plan_fail(out, 400,
                         "The change's %u operations make the cluster "
                         "configuration larger than %zu bytes",
                         out->change.op_count, CLUSTER_CONFIG_BYTES_MAX);
    }
    if (rv != 0) {
        return plan_fail(out, 400, /* UNTESTED: out of memory */
                         "Cannot check the size of the change: %s",
                         cluster_config_strerror(rv));
    }
    return 0;
}

int cluster_config_plan(const struct cluster_config *cfg,
                        const struct cluster_config_request *req,
                        struct cluster_config_plan *out)
{
    const struct cluster_config_change *pend = &cfg->pending;
    uint32_t ids[BROKER_CLUSTER_SIZE_MAX];
    struct cluster_config_op op;
    int n = 0;
    int rv;

    assert(cfg != NULL);
    assert(req != NULL);
    assert(out != NULL);
    memset(out, 0, offsetof(struct cluster_config_plan, change.ops));
    memcpy(&out->expected, cfg, sizeof(out->expected));
    out->http_status = 202;
    out->coordinator = cfg->members[0];
    out->change.target_replication_factor = cfg->replication_factor;
    if (cluster_config_validate(cfg, out->message, sizeof(out->message)) != 0) {
        return plan_fail(out, 400, "The cluster configuration is invalid");
    }
    if (pend->status == CLUSTER_CONFIG_CHANGE_IN_PROGRESS) {
        return plan_fail(out, 409,
                         "Cannot apply configuration change. Another "
                         "configuration change [id=%llu, status=IN_PROGRESS, "
                         "completed=%u, pending=%u] is in progress.",
                         (unsigned long long)pend->id, pend->completed_count,
                         pend->op_count - pend->completed_count);
    }
    memset(&op, 0, sizeof(op));
    switch (req->kind) {
    case CLUSTER_CONFIG_REQUEST_SCALE:
        n = plan_ids(req, out, ids);
        if (n < 0) {
            return CLUSTER_CONFIG_E_INVALID;
        }
        rv = req->force ? plan_force(cfg, req, ids, (uint32_t)n, out)
                        : plan_scale(cfg, req, ids, (uint32_t)n, out);
        break;
    case CLUSTER_CONFIG_REQUEST_BROKER_ADD:
    case CLUSTER_CONFIG_REQUEST_BROKER_REMOVE: {
        bool add = req->kind == CLUSTER_CONFIG_REQUEST_BROKER_ADD;
        if (req->broker_id > BROKER_NODE_ID_MAX) {
            return plan_fail(out, 400, "Broker id %u is above %u",
                             req->broker_id, BROKER_NODE_ID_MAX);
        }
        rv = 0;
        if ((member_index(cfg, req->broker_id) >= 0) != add) {
            op.type = add ? CLUSTER_CONFIG_OP_BROKER_ADD
                          : CLUSTER_CONFIG_OP_BROKER_REMOVE;
            op.broker_id = req->broker_id;
            rv = plan_push(out, &op);
        }
        break;
    }
    case CLUSTER_CONFIG_REQUEST_PARTITION_JOIN:
    case CLUSTER_CONFIG_REQUEST_PARTITION_LEAVE: {
        bool join = req->kind == CLUSTER_CONFIG_REQUEST_PARTITION_JOIN;
        uint32_t priority = req->priority > 0 ? req->priority : 1;
        if (req->partition_id == 0 ||
            req->partition_id > cfg->partitions_count) {
            return plan_fail(out, 400,
                             "Partition %u does not exist (partitions 1..%u)",
                             req->partition_id, cfg->partitions_count);
        }
        if (join && priority > UINT8_MAX) {
            return plan_fail(out, 400, "Priority %u is above %u", priority,
                             UINT8_MAX);
        }
        op.type = join ? CLUSTER_CONFIG_OP_PARTITION_JOIN
                       : CLUSTER_CONFIG_OP_PARTITION_LEAVE;
        op.broker_id = req->broker_id;
        op.partition_id = req->partition_id;
        op.priority = join ? (uint8_t)priority : 0;
        rv = plan_push(out, &op);
        break;
    }
    case CLUSTER_CONFIG_REQUEST_EXPORTER_ENABLE:
    case CLUSTER_CONFIG_REQUEST_EXPORTER_DISABLE:
        rv = plan_exporter(cfg, req, out);
        break;
    default:
        return plan_fail(out, 400, "Unknown request kind %d", req->kind);
    }
    if (rv != 0) {
        return rv;
    }
    out->expected.replication_factor = out->change.target_replication_factor;
    assert(cluster_config_validate(&out->expected, NULL, 0) == 0);
    if (out->change.op_count > 0) {
        return plan_size_check(cfg, out);
    }
    return 0;
}

int64_t cluster_config_change_start(struct cluster_config *cfg,
                                    const struct cluster_config_plan *plan,
                                    int64_t now_ms)
{
    struct cluster_config_change *c = &cfg->pending;

    assert(cfg != NULL);
    assert(plan != NULL);
    if (plan->http_status != 202 || plan->change.op_count == 0 ||
        plan->change.op_count > CLUSTER_CONFIG_OPERATIONS_MAX ||
        c->status != CLUSTER_CONFIG_CHANGE_NONE || now_ms <= 0 ||
        cfg->version == INT64_MAX) {
        return CLUSTER_CONFIG_E_INVALID;
    }
    c->id = cfg->version + 1;
    c->status = CLUSTER_CONFIG_CHANGE_IN_PROGRESS;
    c->target_replication_factor = plan->change.target_replication_factor;
    c->started_at_ms = now_ms;
    c->op_count = plan->change.op_count;
    c->completed_count = 0;
    memcpy(c->ops, plan->change.ops, c->op_count * sizeof(c->ops[0]));
    cfg->version++;
    assert(c->id == cfg->version);
    return (int64_t)c->id;
}

int cluster_config_plan_to_json(const struct cluster_config *cfg,
                                const struct cluster_config_plan *plan,
                                uint64_t change_id, json_t **out)
{
    json_t *o = json_object();
    bool ok = o != NULL;

    assert(cfg != NULL);
    assert(plan != NULL);
    assert(out != NULL);
    ok = ok && json_object_set_new(o, "changeId",
                                   json_integer((json_int_t)change_id)) == 0;
    ok =
        ok && json_object_set_new(o, "currentTopology", json_brokers(cfg)) == 0;
    ok = ok && json_object_set_new(o, "plannedChanges",
                                   json_ops(&plan->expected, plan->change.ops,
                                            0, plan->change.op_count)) == 0;
    ok = ok && json_object_set_new(o, "expectedTopology",
                                   json_brokers(&plan->expected)) == 0;
    if (!ok) {
        json_decref(o); /* UNTESTED: out of memory */
        *out = NULL;
        return CLUSTER_CONFIG_E_NOMEM;
    }
    *out = o;
    return 0;
}

json_t *cluster_config_error_json(const char *message)
{
    return json_pack("{s:s}", "message", message != NULL ? message : "");
}
