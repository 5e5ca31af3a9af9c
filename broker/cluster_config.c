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
 *             "config": {...} }     <- optional object, ignored
 *         ]
 *       }
 *     ]
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
__attribute__((format(printf, 4, 5))) static int fail(int rv, char *err,
                                                      size_t err_len,
                                                      const char *fmt, ...)
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

int cluster_config_validate(const struct cluster_config *cfg, char *err,
                            size_t err_len)
{
    const int inv = CLUSTER_CONFIG_E_INVALID;

    assert(cfg != NULL);
    if (cfg->version == 0) {
        return fail(inv, err, err_len, "version must be >= 1");
    }
    if (cfg->member_count == 0 ||
        cfg->member_count > BROKER_CLUSTER_SIZE_MAX) {
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
        }
    }
    return 0;
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
    return 1;
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
        const struct broker_partition_placement *pp =
            &placement->partitions[i];
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
 * Every field is written in field order and repeated fields in canonical
 * order, so protobuf-c packs equal configurations to equal bytes.
 * --------------------------------------------------------------------- */

int cluster_config_encode(const struct cluster_config *cfg, void *buf,
                          size_t buf_size, size_t *len)
{
    Tandem__Raft__ClusterConfig msg = TANDEM__RAFT__CLUSTER_CONFIG__INIT;
    Tandem__Raft__ClusterConfigPartition *parts = NULL;
    Tandem__Raft__ClusterConfigPartition **part_ptrs = NULL;
    Tandem__Raft__ClusterConfigReplica *reps = NULL;
    Tandem__Raft__ClusterConfigReplica **rep_ptrs = NULL;
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
    return rv;
}

int cluster_config_decode(const void *data, size_t len,
                          struct cluster_config *out, char *err,
                          size_t err_len)
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
    }
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

/* The Zeebe PartitionState of one hosted partition. */
static json_t *json_partition_state(uint32_t id, uint8_t priority)
{
    json_t *o = json_object();
    json_t *config = json_pack("{s:{s:[]}}", "exporting", "exporters");
    bool ok = o != NULL && config != NULL;

    ok = ok && json_object_set_new(o, "id", json_integer(id)) == 0;
    ok = ok && json_object_set_new(o, "state", json_string(STATE_ACTIVE)) == 0;
    ok = ok && json_object_set_new(o, "priority", json_integer(priority)) == 0;
    ok = ok && json_object_set(o, "config", config) == 0;
    json_decref(config);
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
                         parts, json_partition_state(
                                    p->id, p->replicas[j].priority)) == 0;
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
    brokers = json_array();
    ok = o != NULL && brokers != NULL;
    ok = ok && json_object_set_new(o, "version",
                                   json_integer((json_int_t)cfg->version)) == 0;
    for (uint32_t k = 0; ok && k < cfg->member_count; k++) {
        ok = json_array_append_new(
                 brokers, json_broker_state(cfg, cfg->members[k])) == 0;
    }
    ok = ok && json_object_set(o, "brokers", brokers) == 0;
    json_decref(brokers);
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
    ok = ok && json_object_set(o, "version",
                               json_object_get(body, "version")) == 0;
    ok = ok && json_object_set_new(o, "clusterSize",
                                   json_integer(cfg->cluster_size)) == 0;
    ok = ok && json_object_set_new(o, "partitionsCount",
                                   json_integer(cfg->partitions_count)) == 0;
    ok = ok && json_object_set_new(o, "replicationFactor",
                                   json_integer(cfg->replication_factor)) == 0;
    ok = ok && json_object_set(o, "brokers",
                               json_object_get(body, "brokers")) == 0;
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

    json_object_foreach((json_t *)(uintptr_t)o, key, value) {
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

    json_array_foreach((json_t *)(uintptr_t)parts, k, jp) {
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
        if (p->replica_count > 0 &&
            p->replicas[p->replica_count - 1].node_id == node_id) {
            return fail(CLUSTER_CONFIG_E_MALFORMED, err, err_len,
                        "%spartition %lld listed twice", where,
                        (long long)id);
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
    static const char *const keys[] = {"id",         "state", "version",
                                       "lastUpdatedAt", "partitions", NULL};
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
        rv = json_broker_partitions_read(json_object_get(order[k],
                                                         "partitions"),
                                         out->members[k], out, where, err,
                                         err_len);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

static int json_config_read(const json_t *root, struct cluster_config *out,
                            char *err, size_t err_len)
{
    static const char *const keys[] = {"format",          "version",
                                       "clusterSize",     "partitionsCount",
                                       "replicationFactor", "brokers",
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
    rv = json_brokers_read(json_object_get(root, "brokers"), out, err,
                           err_len);
    if (rv != 0) {
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
    root = json_loadb(text != NULL ? text : "", len,
                      JSON_REJECT_DUPLICATES, &jerr);
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

io_error_unlink: {
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
