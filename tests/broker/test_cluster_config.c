/* test_cluster_config.c: unit tests of broker/cluster_config.c.
 *
 * Configurations are built from round-robin placements (broker/placement.h)
 * and checked against Zeebe's documented priorities; then they go through
 * every form and back: protobuf encode/decode (equal bytes for equal
 * configurations, every truncation refused, hand-made hostile messages
 * refused), the GET /actuator/cluster JSON (the exact reference body of a
 * fresh single broker), and the file (save/load round trip, "not found" on
 * a fresh directory, failed saves leaving the previous file intact and no
 * tmp file behind, truncated, corrupted and hand-edited files refused with
 * a message naming the path and the problem). Files live in mkdtemp()
 * directories under /tmp that each test removes. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "broker/cluster_config.h"
#include "broker/placement.h"
#include "proto/proto.h"

/* ------------------------------------------------------------------------
 * Helpers
 * --------------------------------------------------------------------- */

static struct broker_placement placement_buf;

/* A heap configuration from the static placement of size brokers. */
static struct cluster_config *config_new(uint32_t size, uint32_t partitions,
                                         uint32_t rf)
{
    struct cluster_config *cfg = malloc(sizeof(*cfg));

    assert_non_null(cfg);
    assert_int_equal(
        broker_placement_compute_static(&placement_buf, size, partitions, rf),
        0);
    assert_int_equal(cluster_config_from_placement(&placement_buf, cfg), 0);
    return cfg;
}

/* The priority of node_id in partition id, 0 if it hosts none. */
static unsigned priority_of(const struct cluster_config *cfg, uint32_t id,
                            uint32_t node_id)
{
    const struct cluster_config_partition *p = &cfg->partitions[id - 1];
    for (uint32_t j = 0; j < p->replica_count; j++) {
        if (p->replicas[j].node_id == node_id) {
            return p->replicas[j].priority;
        }
    }
    return 0;
}

struct tmpdir {
    char path[64];
};

static void tmpdir_make(struct tmpdir *d)
{
    snprintf(d->path, sizeof(d->path), "/tmp/tandem-ccfg-XXXXXX");
    assert_non_null(mkdtemp(d->path));
}

static void path_join(char *out, size_t len, const struct tmpdir *d,
                      const char *name)
{
    snprintf(out, len, "%s/%s", d->path, name);
}

/* Removes the directory and the files the tests put in it. */
static void tmpdir_remove(struct tmpdir *d)
{
    const char *names[] = {CLUSTER_CONFIG_FILE_NAME,
                           CLUSTER_CONFIG_FILE_NAME ".tmp",
                           CLUSTER_CONFIG_FILE_NAME "/x"};
    char p[128];

    for (int k = 2; k >= 0; k--) {
        path_join(p, sizeof(p), d, names[k]);
        (void)unlink(p);
        (void)rmdir(p);
    }
    assert_int_equal(rmdir(d->path), 0);
}

static void file_write(const struct tmpdir *d, const char *name,
                       const void *data, size_t len)
{
    char p[128];
    FILE *f;

    path_join(p, sizeof(p), d, name);
    f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Reads a whole file into a new NUL-terminated buffer. */
static char *file_read(const struct tmpdir *d, const char *name, size_t *len)
{
    char p[128];
    FILE *f;
    char *buf = malloc(CLUSTER_CONFIG_FILE_BYTES_MAX + 1);

    assert_non_null(buf);
    path_join(p, sizeof(p), d, name);
    f = fopen(p, "rb");
    assert_non_null(f);
    *len = fread(buf, 1, CLUSTER_CONFIG_FILE_BYTES_MAX, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static bool file_exists(const struct tmpdir *d, const char *name)
{
    char p[128];
    struct stat st;

    path_join(p, sizeof(p), d, name);
    return stat(p, &st) == 0;
}

/* ------------------------------------------------------------------------
 * From the placement, rules
 * --------------------------------------------------------------------- */

/* Zeebe's source comment example (4 brokers, 5 partitions, RF 3) and the
 * docs' 3 brokers / 6 partitions example, in canonical replica order. */
static void from_placement_keeps_zeebe_priorities(void **state)
{
    struct cluster_config *cfg = config_new(4, 5, 3);
    static const unsigned docs[3][6] = {
        {3, 1, 2, 3, 2, 1}, {2, 3, 1, 1, 3, 2}, {1, 2, 3, 2, 1, 3}};

    (void)state;
    assert_int_equal(cfg->version, 1);
    assert_int_equal(cfg->cluster_size, 4);
    assert_int_equal(cfg->member_count, 4);
    assert_int_equal(cfg->partitions_count, 5);
    assert_int_equal(cfg->replication_factor, 3);
    assert_int_equal(cluster_config_validate(cfg, NULL, 0), 0);
    /* P1: n0=3,n1=2,n2=1; P3: n2=3,n3=2,n0=1; P5: n0=3,n1=1,n2=2. */
    assert_int_equal(cfg->partitions[0].replicas[0].node_id, 0);
    assert_int_equal(priority_of(cfg, 1, 0), 3);
    assert_int_equal(priority_of(cfg, 1, 2), 1);
    assert_int_equal(cfg->partitions[2].replicas[0].node_id, 0);
    assert_int_equal(cfg->partitions[2].replicas[0].priority, 1);
    assert_int_equal(priority_of(cfg, 3, 2), 3);
    assert_int_equal(priority_of(cfg, 5, 1), 1);
    assert_int_equal(priority_of(cfg, 5, 2), 2);
    assert_int_equal(priority_of(cfg, 5, 3), 0);
    free(cfg);

    cfg = config_new(3, 6, 3);
    for (uint32_t n = 0; n < 3; n++) {
        for (uint32_t p = 1; p <= 6; p++) {
            assert_int_equal(priority_of(cfg, p, n), docs[n][p - 1]);
        }
    }
    free(cfg);
}

static void validate_names_the_broken_rule(void **state)
{
    struct cluster_config *cfg = config_new(3, 3, 2);
    struct cluster_config *bad = malloc(sizeof(*bad));
    char err[CLUSTER_CONFIG_ERRMSG_SIZE];

    (void)state;
    assert_non_null(bad);

#define EXPECT_INVALID(mutation, text)                                         \
    do {                                                                       \
        *bad = *cfg;                                                           \
        mutation;                                                              \
        err[0] = '\0';                                                         \
        assert_int_equal(cluster_config_validate(bad, err, sizeof(err)),       \
                         CLUSTER_CONFIG_E_INVALID);                            \
        assert_non_null(strstr(err, text));                                    \
    } while (0)

    EXPECT_INVALID(bad->version = 0, "version");
    EXPECT_INVALID(bad->member_count = 0, "brokers");
    EXPECT_INVALID(bad->cluster_size = 4, "clusterSize");
    EXPECT_INVALID(bad->members[1] = 0, "ascending");
    EXPECT_INVALID(bad->members[2] = BROKER_NODE_ID_MAX + 1, "above");
    EXPECT_INVALID(bad->partitions_count = 0, "partitionsCount");
    EXPECT_INVALID(bad->replication_factor = BROKER_REPLICAS_MAX + 1,
                   "replicationFactor");
    EXPECT_INVALID(bad->partitions[1].id = 7, "expected 2");
    EXPECT_INVALID(bad->partitions[0].replica_count = 0, "replicas");
    EXPECT_INVALID(bad->partitions[0].replicas[1].node_id = 0, "ascending");
    EXPECT_INVALID(bad->partitions[0].replicas[0].priority = 0, "priority 0");
    EXPECT_INVALID(bad->members[2] = 9, "not a member");
#undef EXPECT_INVALID
    assert_int_equal(cluster_config_validate(cfg, err, sizeof(err)), 0);
    assert_string_equal(cluster_config_strerror(CLUSTER_CONFIG_E_NOT_FOUND),
                        "no cluster configuration stored");
    free(bad);
    free(cfg);
}

/* ------------------------------------------------------------------------
 * Wire form
 * --------------------------------------------------------------------- */

static void encode_decode_round_trip_is_canonical(void **state)
{
    struct cluster_config *cfg = config_new(5, 7, 3);
    struct cluster_config *out = malloc(sizeof(*out));
    uint8_t *a = malloc(CLUSTER_CONFIG_BYTES_MAX);
    uint8_t *b = malloc(CLUSTER_CONFIG_BYTES_MAX);
    size_t alen;
    size_t blen;
    char err[CLUSTER_CONFIG_ERRMSG_SIZE];

    (void)state;
    assert_non_null(out);
    cfg->version = 42;
    assert_int_equal(
        cluster_config_encode(cfg, a, CLUSTER_CONFIG_BYTES_MAX, &alen), 0);
    assert_int_equal(cluster_config_decode(a, alen, out, err, sizeof(err)), 0);
    assert_true(cluster_config_equal(cfg, out));
    assert_int_equal(
        cluster_config_encode(out, b, CLUSTER_CONFIG_BYTES_MAX, &blen), 0);
    assert_int_equal(alen, blen);
    assert_memory_equal(a, b, alen);
    /* Too small a buffer. */
    assert_int_equal(cluster_config_encode(cfg, b, alen - 1, &blen),
                     CLUSTER_CONFIG_E_TOO_BIG);
    /* Every strict prefix is refused, and leaves *out zeroed. */
    for (size_t n = 0; n < alen; n++) {
        assert_int_equal(cluster_config_decode(a, n, out, err, sizeof(err)),
                         CLUSTER_CONFIG_E_MALFORMED);
        assert_int_equal(out->version, 0);
    }
    /* An invalid configuration is not encoded. */
    cfg->version = 0;
    assert_int_equal(
        cluster_config_encode(cfg, a, CLUSTER_CONFIG_BYTES_MAX, &alen),
        CLUSTER_CONFIG_E_INVALID);
    free(a);
    free(b);
    free(out);
    free(cfg);
}

static void largest_config_fits_the_byte_limit(void **state)
{
    struct cluster_config *cfg = config_new(
        BROKER_CLUSTER_SIZE_MAX, BROKER_PARTITIONS_MAX, BROKER_REPLICAS_MAX);
    struct cluster_config *out = malloc(sizeof(*out));
    uint8_t *buf = malloc(CLUSTER_CONFIG_BYTES_MAX);
    size_t len;

    (void)state;
    cfg->version = UINT64_MAX;
    for (uint32_t k = 0; k < cfg->member_count; k++) {
        cfg->members[k] = BROKER_NODE_ID_MAX - (cfg->member_count - 1 - k);
    }
    for (uint32_t i = 0; i < cfg->partitions_count; i++) {
        for (uint32_t j = 0; j < cfg->partitions[i].replica_count; j++) {
            cfg->partitions[i].replicas[j].node_id =
                cfg->members[(i + j) % cfg->member_count];
            cfg->partitions[i].replicas[j].priority = UINT8_MAX;
        }
        /* (i + j) % N is ascending unless it wraps: keep it canonical. */
        if (cfg->partitions[i].replicas[0].node_id >
            cfg->partitions[i]
                .replicas[cfg->partitions[i].replica_count - 1]
                .node_id) {
            cfg->partitions[i].replica_count = 1;
        }
    }
    assert_int_equal(cluster_config_validate(cfg, NULL, 0), 0);
    assert_int_equal(
        cluster_config_encode(cfg, buf, CLUSTER_CONFIG_BYTES_MAX, &len), 0);
    assert_true(len < CLUSTER_CONFIG_BYTES_MAX / 2);
    assert_int_equal(cluster_config_decode(buf, len, out, NULL, 0), 0);
    assert_true(cluster_config_equal(cfg, out));
    free(buf);
    free(out);
    free(cfg);
}

/* Packs a hand-made ClusterConfig; members and partitions as given. */
static size_t pack_raw(uint8_t *buf, uint32_t format, uint64_t version,
                       uint32_t priority, uint32_t replica_node)
{
    Tandem__Raft__ClusterConfig m = TANDEM__RAFT__CLUSTER_CONFIG__INIT;
    Tandem__Raft__ClusterConfigPartition p =
        TANDEM__RAFT__CLUSTER_CONFIG_PARTITION__INIT;
    Tandem__Raft__ClusterConfigPartition *pp = &p;
    Tandem__Raft__ClusterConfigReplica r =
        TANDEM__RAFT__CLUSTER_CONFIG_REPLICA__INIT;
    Tandem__Raft__ClusterConfigReplica *rp = &r;
    uint32_t members[1] = {0};

    r.node_id = replica_node;
    r.priority = priority;
    p.id = 1;
    p.n_replicas = 1;
    p.replicas = &rp;
    m.format = format;
    m.version = version;
    m.cluster_size = 1;
    m.partitions_count = 1;
    m.replication_factor = 1;
    m.n_members = 1;
    m.members = members;
    m.n_partitions = 1;
    m.partitions = &pp;
    return tandem__raft__cluster_config__pack(&m, buf);
}

static void decode_refuses_hostile_messages(void **state)
{
    struct cluster_config *out = malloc(sizeof(*out));
    uint8_t *buf = calloc(1, CLUSTER_CONFIG_BYTES_MAX + 1);
    char err[CLUSTER_CONFIG_ERRMSG_SIZE];
    size_t len;
    static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x01};

    (void)state;
    len = pack_raw(buf, 1, 1, 1, 0);
    assert_int_equal(cluster_config_decode(buf, len, out, err, sizeof(err)), 0);
    assert_int_equal(out->partitions[0].replicas[0].priority, 1);

#define EXPECT_MALFORMED(data, n, text)                                        \
    do {                                                                       \
        err[0] = '\0';                                                         \
        assert_int_equal(                                                      \
            cluster_config_decode(data, n, out, err, sizeof(err)),             \
            CLUSTER_CONFIG_E_MALFORMED);                                       \
        assert_non_null(strstr(err, text));                                    \
        assert_int_equal(out->member_count, 0);                                \
    } while (0)

    len = pack_raw(buf, 2, 1, 1, 0);
    EXPECT_MALFORMED(buf, len, "format 2");
    len = pack_raw(buf, 0, 1, 1, 0);
    EXPECT_MALFORMED(buf, len, "format 0");
    len = pack_raw(buf, 1, 0, 1, 0);
    EXPECT_MALFORMED(buf, len, "version");
    len = pack_raw(buf, 1, 1, 256, 0);
    EXPECT_MALFORMED(buf, len, "priority 256");
    len = pack_raw(buf, 1, 1, 0, 0);
    EXPECT_MALFORMED(buf, len, "priority 0");
    len = pack_raw(buf, 1, 1, 1, 5);
    EXPECT_MALFORMED(buf, len, "not a member");
    EXPECT_MALFORMED(garbage, sizeof(garbage), "not a protobuf");
    EXPECT_MALFORMED(buf, 0, "format 0"); /* empty: every field default */
    memset(buf, 0, CLUSTER_CONFIG_BYTES_MAX + 1);
    EXPECT_MALFORMED(buf, CLUSTER_CONFIG_BYTES_MAX + 1, "more than");
#undef EXPECT_MALFORMED
    free(buf);
    free(out);
}

/* ------------------------------------------------------------------------
 * JSON
 * --------------------------------------------------------------------- */

static void json_matches_zeebe_actuator_cluster(void **state)
{
    /* ClusterEndpointResponseIT: a fresh single broker, no exporters. */
    static const char reference[] =
        "{\"version\":1,\"brokers\":[{\"id\":0,\"state\":\"ACTIVE\","
        "\"version\":0,\"lastUpdatedAt\":\"0000-01-01T00:00:00Z\","
        "\"partitions\":[{\"id\":1,\"state\":\"ACTIVE\",\"priority\":1,"
        "\"config\":{\"exporting\":{\"exporters\":[]}}}]}]}";
    struct cluster_config *cfg = config_new(1, 1, 1);
    json_t *want = json_loads(reference, 0, NULL);
    json_t *got = NULL;
    json_t *brokers;

    (void)state;
    assert_non_null(want);
    assert_int_equal(cluster_config_to_json(cfg, &got), 0);
    assert_true(json_equal(want, got));
    json_decref(got);
    json_decref(want);
    free(cfg);

    /* 4 brokers, 2 partitions, RF 1: a broker hosting nothing lists []. */
    cfg = config_new(4, 2, 1);
    cfg->version = 9;
    assert_int_equal(cluster_config_to_json(cfg, &got), 0);
    assert_int_equal(json_integer_value(json_object_get(got, "version")), 9);
    brokers = json_object_get(got, "brokers");
    assert_int_equal(json_array_size(brokers), 4);
    assert_int_equal(
        json_integer_value(json_object_get(json_array_get(brokers, 3), "id")),
        3);
    assert_int_equal(json_array_size(json_object_get(json_array_get(brokers, 3),
                                                     "partitions")),
                     0);
    assert_int_equal(json_array_size(json_object_get(json_array_get(brokers, 1),
                                                     "partitions")),
                     1);
    json_decref(got);
    cfg->version = 0;
    assert_int_equal(cluster_config_to_json(cfg, &got),
                     CLUSTER_CONFIG_E_INVALID);
    assert_null(got);
    free(cfg);
}

/* ------------------------------------------------------------------------
 * The file
 * --------------------------------------------------------------------- */

static void save_load_round_trip(void **state)
{
    struct tmpdir d;
    struct cluster_config *cfg = config_new(3, 6, 3);
    struct cluster_config *out = malloc(sizeof(*out));
    char err[CLUSTER_CONFIG_ERRMSG_SIZE];
    size_t len;
    char *text;

    (void)state;
    tmpdir_make(&d);
    err[0] = '\0';
    assert_int_equal(cluster_config_load(d.path, out, err, sizeof(err)),
                     CLUSTER_CONFIG_E_NOT_FOUND);
    assert_non_null(strstr(err, CLUSTER_CONFIG_FILE_NAME));
    assert_int_equal(cluster_config_save(d.path, cfg, err, sizeof(err)), 0);
    assert_false(file_exists(&d, CLUSTER_CONFIG_FILE_NAME ".tmp"));
    assert_int_equal(cluster_config_load(d.path, out, err, sizeof(err)), 0);
    assert_true(cluster_config_equal(cfg, out));

    /* The file is the actuator body plus our fields, readable. */
    text = file_read(&d, CLUSTER_CONFIG_FILE_NAME, &len);
    assert_non_null(strstr(text, "\"format\": 1"));
    assert_non_null(strstr(text, "\"replicationFactor\": 3"));
    assert_non_null(strstr(text, "\"lastUpdatedAt\""));
    assert_int_equal(text[len - 1], '\n');
    free(text);

    /* A newer version replaces it. */
    cfg->version = 2;
    cfg->partitions[0].replicas[0].priority = 7;
    assert_int_equal(cluster_config_save(d.path, cfg, err, sizeof(err)), 0);
    assert_int_equal(cluster_config_load(d.path, out, err, sizeof(err)), 0);
    assert_int_equal(out->version, 2);
    assert_true(cluster_config_equal(cfg, out));

    /* Bad arguments. */
    assert_int_equal(cluster_config_load("", out, err, sizeof(err)),
                     CLUSTER_CONFIG_E_INVALID);
    cfg->version = 0;
    assert_int_equal(cluster_config_save(d.path, cfg, err, sizeof(err)),
                     CLUSTER_CONFIG_E_INVALID);
    tmpdir_remove(&d);
    free(out);
    free(cfg);
}

/* Failures at create (the tmp name is taken by a directory) and at rename
 * (the target is a non-empty directory) and a missing data directory:
 * each gives a clear error, the previous file stays, no tmp file stays. */
static void failed_save_leaves_previous_file(void **state)
{
    struct tmpdir d;
    struct cluster_config *v1 = config_new(3, 3, 3);
    struct cluster_config *v2 = config_new(3, 3, 3);
    struct cluster_config *out = malloc(sizeof(*out));
    char err[CLUSTER_CONFIG_ERRMSG_SIZE];
    char p[128];
    char missing[128];

    (void)state;
    v2->version = 2;
    tmpdir_make(&d);
    assert_int_equal(cluster_config_save(d.path, v1, err, sizeof(err)), 0);

    path_join(p, sizeof(p), &d, CLUSTER_CONFIG_FILE_NAME ".tmp");
    assert_int_equal(mkdir(p, 0755), 0);
    err[0] = '\0';
    assert_int_equal(cluster_config_save(d.path, v2, err, sizeof(err)),
                     CLUSTER_CONFIG_E_IO);
    assert_non_null(strstr(err, "create of"));
    assert_non_null(strstr(err, ".tmp"));
    assert_non_null(strstr(err, "is unchanged"));
    assert_int_equal(cluster_config_load(d.path, out, err, sizeof(err)), 0);
    assert_true(cluster_config_equal(v1, out));
    assert_int_equal(rmdir(p), 0);

    /* Rename onto a non-empty directory fails after the tmp file was
     * written: it must be removed again. */
    path_join(p, sizeof(p), &d, CLUSTER_CONFIG_FILE_NAME);
    assert_int_equal(unlink(p), 0);
    assert_int_equal(mkdir(p, 0755), 0);
    file_write(&d, CLUSTER_CONFIG_FILE_NAME "/x", "x", 1);
    err[0] = '\0';
    assert_int_equal(cluster_config_save(d.path, v2, err, sizeof(err)),
                     CLUSTER_CONFIG_E_IO);
    assert_non_null(strstr(err, "rename of"));
    assert_false(file_exists(&d, CLUSTER_CONFIG_FILE_NAME ".tmp"));
    assert_true(file_exists(&d, CLUSTER_CONFIG_FILE_NAME "/x"));
    assert_int_equal(cluster_config_load(d.path, out, err, sizeof(err)),
                     CLUSTER_CONFIG_E_IO);
    assert_non_null(strstr(err, "not a regular file"));

    snprintf(missing, sizeof(missing), "%s/none", d.path);
    err[0] = '\0';
    assert_int_equal(cluster_config_save(missing, v2, err, sizeof(err)),
                     CLUSTER_CONFIG_E_IO);
    assert_non_null(strstr(err, missing));
    assert_non_null(strstr(err, "No such file"));
    tmpdir_remove(&d);
    free(out);
    free(v2);
    free(v1);
}

/* Replaces the first occurrence of from in text (in place, with room). */
static void text_replace(char *text, size_t cap, const char *from,
                         const char *to)
{
    char *at = strstr(text, from);
    size_t tail;

    assert_non_null(at);
    tail = strlen(at + strlen(from));
    assert_true(strlen(text) - strlen(from) + strlen(to) < cap);
    memmove(at + strlen(to), at + strlen(from), tail + 1);
    memcpy(at, to, strlen(to));
}

static void corrupt_files_are_refused_clearly(void **state)
{
    struct tmpdir d;
    struct cluster_config *cfg = config_new(2, 2, 2);
    struct cluster_config *out = malloc(sizeof(*out));
    char err[CLUSTER_CONFIG_ERRMSG_SIZE];
    size_t len;
    char *good;
    char *text = malloc(CLUSTER_CONFIG_FILE_BYTES_MAX + 1);
    static const char orphan[] =
        "{\"format\":1,\"version\":1,\"clusterSize\":1,"
        "\"partitionsCount\":2,\"replicationFactor\":1,\"brokers\":"
        "[{\"id\":0,\"partitions\":[{\"id\":1,\"priority\":1}]}]}";
    static const char dup_broker[] =
        "{\"format\":1,\"version\":1,\"clusterSize\":2,"
        "\"partitionsCount\":1,\"replicationFactor\":1,\"brokers\":"
        "[{\"id\":0,\"partitions\":[{\"id\":1,\"priority\":1}]},"
        "{\"id\":0,\"partitions\":[]}]}";
    static const char bad_config[] =
        "{\"format\":1,\"version\":1,\"clusterSize\":1,"
        "\"partitionsCount\":1,\"replicationFactor\":1,\"brokers\":"
        "[{\"id\":0,\"partitions\":[{\"id\":1,\"priority\":1,"
        "\"config\":[]}]}]}";
    static const char twice[] =
        "{\"format\":1,\"version\":1,\"clusterSize\":1,"
        "\"partitionsCount\":1,\"replicationFactor\":1,\"brokers\":"
        "[{\"id\":0,\"partitions\":[{\"id\":1,\"priority\":1},"
        "{\"id\":1,\"priority\":1}]}]}";
    static const struct {
        const char *from;
        const char *to;
        const char *expect;
    } edits[] = {
        {"\"format\": 1", "\"format\": 2", "\"format\" must be"},
        {"\"version\": 1,\n  \"clusterSize\"",
         "\"version\": 0,\n  \"clusterSize\"", "\"version\" must be"},
        {"\"clusterSize\": 2", "\"clusterSize\": 3", "clusterSize 3 differs"},
        {"\"clusterSize\": 2", "\"clusterSize\": \"2\"",
         "\"clusterSize\" must be an integer"},
        {"\"format\": 1", "\"format\": 1, \"extra\": 1",
         "unknown key \"extra\""},
        {"\"format\": 1", "\"format\": 1, \"format\": 1", "duplicate"},
        {"\"id\": 1", "\"id\": 0", "\"id\" must be an integer 1..2"},
        {"\"priority\": 2", "\"priority\": 0", "\"priority\" must be"},
        {"\"state\": \"ACTIVE\"", "\"state\": \"JOINING\"",
         "\"state\" must be"},
        {"\"brokers\": [", "\"brokers\": [[], ",
         "brokers[0]. is not an object"},
        {"\"partitions\": [", "\"partitions\": [5, ",
         "broker 0: partitions[0]. is not an object"},
        {"\"lastUpdatedAt\": \"", "\"lastUpdatedAt\": 0, \"x\": \"",
         "unknown key \"x\""},
    };

    (void)state;
    assert_non_null(text);
    tmpdir_make(&d);
    assert_int_equal(cluster_config_save(d.path, cfg, err, sizeof(err)), 0);
    good = file_read(&d, CLUSTER_CONFIG_FILE_NAME, &len);

    /* Truncated at every length: refused, naming the path. */
    for (size_t n = 0; n < len - 1; n += 7) {
        file_write(&d, CLUSTER_CONFIG_FILE_NAME, good, n);
        err[0] = '\0';
        assert_int_equal(cluster_config_load(d.path, out, err, sizeof(err)),
                         CLUSTER_CONFIG_E_MALFORMED);
        assert_non_null(strstr(err, d.path));
        assert_non_null(strstr(err, "JSON line"));
        assert_int_equal(out->version, 0);
    }
    /* A byte flipped to a NUL or a stray brace. */
    memcpy(text, good, len + 1);
    text[len / 2] = '\0';
    file_write(&d, CLUSTER_CONFIG_FILE_NAME, text, len);
    assert_int_equal(cluster_config_load(d.path, out, err, sizeof(err)),
                     CLUSTER_CONFIG_E_MALFORMED);
    /* Hand edits that break a rule. */
    for (size_t k = 0; k < sizeof(edits) / sizeof(edits[0]); k++) {
        memcpy(text, good, len + 1);
        text_replace(text, CLUSTER_CONFIG_FILE_BYTES_MAX, edits[k].from,
                     edits[k].to);
        file_write(&d, CLUSTER_CONFIG_FILE_NAME, text, strlen(text));
        err[0] = '\0';
        assert_int_equal(cluster_config_load(d.path, out, err, sizeof(err)),
                         CLUSTER_CONFIG_E_MALFORMED);
        if (strstr(err, edits[k].expect) == NULL) {
            fail_msg("edit %zu: \"%s\" lacks \"%s\"", k, err, edits[k].expect);
        }
    }
    /* A partition nobody hosts; one listed twice by a broker. */
    assert_int_equal(
        cluster_config_from_json(orphan, strlen(orphan), out, err, sizeof(err)),
        CLUSTER_CONFIG_E_MALFORMED);
    assert_non_null(strstr(err, "partition 2 has 0 replicas"));
    assert_int_equal(
        cluster_config_from_json(twice, strlen(twice), out, err, sizeof(err)),
        CLUSTER_CONFIG_E_MALFORMED);
    assert_non_null(strstr(err, "partition 1 listed twice"));
    assert_int_equal(cluster_config_from_json(dup_broker, strlen(dup_broker),
                                              out, err, sizeof(err)),
                     CLUSTER_CONFIG_E_MALFORMED);
    assert_non_null(strstr(err, "broker 0 listed twice"));
    assert_int_equal(cluster_config_from_json(bad_config, strlen(bad_config),
                                              out, err, sizeof(err)),
                     CLUSTER_CONFIG_E_MALFORMED);
    assert_non_null(strstr(err, "\"config\" must be an object"));
    assert_int_equal(cluster_config_from_json("[]", 2, out, err, sizeof(err)),
                     CLUSTER_CONFIG_E_MALFORMED);
    assert_non_null(strstr(err, "top level"));
    free(good);
    free(text);
    tmpdir_remove(&d);
    free(out);
    free(cfg);
}

/* ------------------------------------------------------------------------
 * Exporters, changes, planning (the dual-region procedure)
 * --------------------------------------------------------------------- */

static struct cluster_config_plan *plan_new(void)
{
    struct cluster_config_plan *plan = malloc(sizeof(*plan));
    assert_non_null(plan);
    return plan;
}

/* Plans a scale to ids[0..n) and asserts the HTTP status. */
static int plan_scale(const struct cluster_config *cfg, const uint32_t *ids,
                      uint32_t n, uint32_t rf, bool force,
                      struct cluster_config_plan *plan)
{
    struct cluster_config_request req = {.kind = CLUSTER_CONFIG_REQUEST_SCALE,
                                         .force = force,
                                         .replication_factor = rf,
                                         .broker_count = n,
                                         .brokers = ids};
    int rv = cluster_config_plan(cfg, &req, plan);
    assert_true((rv == 0) == (plan->http_status == 202));
    return plan->http_status;
}

/* Runs every pending operation of cfg's change to completion. */
static void change_run(struct cluster_config *cfg, int64_t now)
{
    char err[CLUSTER_CONFIG_ERRMSG_SIZE];
    int rv = 0;
    for (uint32_t k = 0; k < CLUSTER_CONFIG_OPERATIONS_MAX && rv == 0; k++) {
        rv = cluster_config_op_complete(cfg, now + k, err, sizeof(err));
        if (rv < 0) {
            print_error("op_complete: %s\n", err);
        }
        assert_true(rv >= 0);
        assert_int_equal(cluster_config_validate(cfg, err, sizeof(err)), 0);
    }
    assert_int_equal(rv, 1);
    assert_int_equal(cfg->pending.status, CLUSTER_CONFIG_CHANGE_NONE);
    assert_int_equal(cfg->last.status, CLUSTER_CONFIG_CHANGE_COMPLETED);
}

/* The JSON operation k of a plan's body. */
static json_t *planned_op(json_t *body, size_t k)
{
    json_t *op = json_array_get(json_object_get(body, "plannedChanges"), k);
    assert_non_null(op);
    return op;
}

static const char *op_str(json_t *op, const char *key)
{
    const char *v = json_string_value(json_object_get(op, key));
    assert_non_null(v);
    return v;
}

/* Both round trips (wire and file) give back an equal configuration. */
static void forms_round_trip(const struct cluster_config *cfg)
{
    struct cluster_config *back = malloc(sizeof(*back));
    uint8_t *buf = malloc(CLUSTER_CONFIG_BYTES_MAX);
    uint8_t *buf2 = malloc(CLUSTER_CONFIG_BYTES_MAX);
    char err[CLUSTER_CONFIG_ERRMSG_SIZE];
    struct tmpdir d;
    size_t len = 0;
    size_t len2 = 0;

    assert_non_null(back);
    assert_non_null(buf);
    assert_non_null(buf2);
    assert_int_equal(
        cluster_config_encode(cfg, buf, CLUSTER_CONFIG_BYTES_MAX, &len), 0);
    if (cluster_config_decode(buf, len, back, err, sizeof(err)) != 0) {
        print_error("decode: %s\n", err);
        fail();
    }
    assert_true(cluster_config_equal(cfg, back));
    assert_int_equal(
        cluster_config_encode(back, buf2, CLUSTER_CONFIG_BYTES_MAX, &len2), 0);
    assert_int_equal(len, len2);
    assert_memory_equal(buf, buf2, len);
    tmpdir_make(&d);
    assert_int_equal(cluster_config_save(d.path, cfg, err, sizeof(err)), 0);
    if (cluster_config_load(d.path, back, err, sizeof(err)) != 0) {
        print_error("load: %s\n", err);
        fail();
    }
    assert_true(cluster_config_equal(cfg, back));
    tmpdir_remove(&d);
    free(buf2);
    free(buf);
    free(back);
}

/* The dual-region procedure: 8 brokers, 8 partitions, RF 4; force to the
 * even brokers, then back to 0..7 with RF 4: exactly the initial
 * round-robin placement again. */
static void plan_dual_region_failover_and_failback(void **state)
{
    struct cluster_config *initial = config_new(8, 8, 4);
    struct cluster_config *cfg = malloc(sizeof(*cfg));
    struct cluster_config_plan *plan = plan_new();
    static const uint32_t even[] = {6, 2, 4, 0, 2}; /* order, duplicate */
    static const uint32_t all[] = {0, 1, 2, 3, 4, 5, 6, 7};
    json_t *body = NULL;
    uint32_t forced = 0;
    uint32_t removes = 0;
    int64_t id;

    (void)state;
    assert_non_null(cfg);
    memcpy(cfg, initial, sizeof(*cfg));
    assert_int_equal(cluster_config_exporter_add(cfg, "region0", NULL, 0), 0);
    assert_int_equal(cluster_config_exporter_add(cfg, "region1", NULL, 0), 1);

    /* Failover. */
    assert_int_equal(plan_scale(cfg, even, 5, 0, true, plan), 202);
    assert_int_equal(plan->coordinator, 0);
    for (uint32_t k = 0; k < plan->change.op_count; k++) {
        const struct cluster_config_op *op = &plan->change.ops[k];
        if (op->type == CLUSTER_CONFIG_OP_PARTITION_FORCE_RECONFIGURE) {
            assert_int_equal(removes, 0); /* reconfigures come first */
            assert_int_equal(op->broker_count, 2);
            assert_int_equal(op->brokers[0] % 2, 0);
            assert_int_equal(op->brokers[1] % 2, 0);
            assert_int_equal(op->broker_id, op->brokers[0]);
            forced++;
        } else {
            assert_int_equal(op->type, CLUSTER_CONFIG_OP_BROKER_FORCE_REMOVE);
            assert_int_equal(op->broker_id, 0);
            assert_int_equal(op->brokers[0], 2 * removes + 1);
            removes++;
        }
    }
    assert_int_equal(forced, 8);
    assert_int_equal(removes, 4);
    assert_int_equal(plan->expected.member_count, 4);
    assert_int_equal(plan->expected.replication_factor, 2);
    assert_int_equal(cluster_config_plan_to_json(cfg, plan, 2, &body), 0);
    assert_string_equal(op_str(planned_op(body, 0), "operation"),
                        "PARTITION_FORCE_RECONFIGURE");
    assert_string_equal(op_str(planned_op(body, 8), "operation"),
                        "BROKER_REMOVE");
    assert_int_equal(json_integer_value(json_array_get(
                         json_object_get(planned_op(body, 8), "brokers"), 0)),
                     1);
    assert_int_equal(json_array_size(json_object_get(body, "currentTopology")),
                     8);
    assert_int_equal(json_array_size(json_object_get(body, "expectedTopology")),
                     4);
    json_decref(body);
    id = cluster_config_change_start(cfg, plan, 1724412788355);
    assert_int_equal(id, 2);
    assert_int_equal(cfg->version, 2);
    forms_round_trip(cfg);
    /* A second request while it runs: 409 with Zeebe's message. */
    assert_int_equal(plan_scale(cfg, all, 8, 4, false, plan), 409);
    assert_non_null(strstr(plan->message,
                           "Cannot apply configuration change. Another "
                           "configuration change [id=2"));
    assert_non_null(strstr(plan->message, "] is in progress."));
    change_run(cfg, 1724412789170);
    assert_int_equal(cfg->last.id, 2);
    assert_int_equal(cfg->member_count, 4);
    assert_int_equal(cfg->replication_factor, 2);

    /* Disable region1, as the failover's second step. */
    {
        struct cluster_config_request req = {
            .kind = CLUSTER_CONFIG_REQUEST_EXPORTER_DISABLE,
            .exporter = "region1"};
        assert_int_equal(cluster_config_plan(cfg, &req, plan), 0);
        assert_int_equal(plan->change.op_count, 16); /* 8 partitions x 2 */
        assert_true(cluster_config_change_start(cfg, plan, 1724412900000) > 0);
        assert_int_equal(cluster_config_exporters_to_json(cfg, &body), 0);
        assert_string_equal(json_string_value(json_object_get(
                                json_array_get(body, 1), "status")),
                            "DISABLING");
        json_decref(body);
        change_run(cfg, 1724412900100);
        assert_int_equal(cluster_config_exporters_to_json(cfg, &body), 0);
        char *text = json_dumps(body, JSON_COMPACT);
        assert_string_equal(text, "[{\"exporterId\":\"region0\",\"status\":"
                                  "\"ENABLED\"},{\"exporterId\":\"region1\","
                                  "\"status\":\"DISABLED\"}]");
        free(text);
        json_decref(body);
    }

    /* Failback: enable region1 from region0, then scale back. */
    {
        struct cluster_config_request req = {
            .kind = CLUSTER_CONFIG_REQUEST_EXPORTER_ENABLE,
            .exporter = "region1",
            .initialize_from = "region0"};
        assert_int_equal(cluster_config_plan(cfg, &req, plan), 0);
        assert_int_equal(plan->change.op_count, 16);
        assert_int_equal(plan->change.ops[0].initialize_from, 1);
        assert_true(cluster_config_change_start(cfg, plan, 1724413000000) > 0);
        forms_round_trip(cfg);
        change_run(cfg, 1724413000100);
        assert_int_equal(
            cfg->partitions[0].replicas[0].exporters[1].metadata_version, 1);
        assert_int_equal(
            cfg->partitions[0].replicas[0].exporters[1].initialized_from, 1);
    }
    assert_int_equal(plan_scale(cfg, all, 8, 4, false, plan), 202);
    assert_int_equal(plan->change.ops[0].type, CLUSTER_CONFIG_OP_BROKER_ADD);
    assert_int_equal(plan->change.ops[3].broker_id, 7);
    assert_int_equal(plan->change.ops[4].type,
                     CLUSTER_CONFIG_OP_PARTITION_JOIN);
    assert_true(cluster_config_change_start(cfg, plan, 1724417647968) > 0);
    change_run(cfg, 1724417649282);
    /* Exactly the initial placement (members, replicas, priorities). */
    assert_int_equal(cfg->member_count, 8);
    assert_int_equal(cfg->replication_factor, 4);
    for (uint32_t i = 0; i < 8; i++) {
        assert_int_equal(cfg->partitions[i].replica_count, 4);
        for (uint32_t j = 0; j < 4; j++) {
            assert_int_equal(cfg->partitions[i].replicas[j].node_id,
                             initial->partitions[i].replicas[j].node_id);
            assert_int_equal(cfg->partitions[i].replicas[j].priority,
                             initial->partitions[i].replicas[j].priority);
            /* Joined replicas took the partition's exporter states. */
            assert_int_equal(cfg->partitions[i].replicas[j].exporters[1].state,
                             CLUSTER_CONFIG_EXPORTER_ENABLED);
        }
    }
    /* The same request again plans nothing: 202, no operation, and the
     * body's changeId is the last change's. */
    assert_int_equal(plan_scale(cfg, all, 8, 4, false, plan), 202);
    assert_int_equal(plan->change.op_count, 0);
    assert_int_equal(
        cluster_config_plan_to_json(cfg, plan, cfg->last.id, &body), 0);
    assert_int_equal(json_array_size(json_object_get(body, "plannedChanges")),
                     0);
    assert_true(json_equal(json_object_get(body, "currentTopology"),
                           json_object_get(body, "expectedTopology")));
    json_decref(body);
    free(plan);
    free(cfg);
    free(initial);
}

/* Every error of the planner, with its HTTP status and message. */
static void plan_errors_are_zeebes(void **state)
{
    struct cluster_config *cfg = config_new(4, 3, 2);
    struct cluster_config_plan *plan = plan_new();
    struct cluster_config_request req;
    static const uint32_t three[] = {0, 1, 2};
    static const uint32_t stranger[] = {0, 9};
    static const uint32_t lonely[] = {0};
    static const uint32_t huge[] = {70000};

    (void)state;
    assert_int_equal(cluster_config_exporter_add(cfg, "es", NULL, 0), 0);
    assert_int_equal(cluster_config_exporter_add(cfg, "pg", NULL, 0), 1);
    /* Scale: empty, bad id, RF above the brokers, RF above the max. */
    assert_int_equal(plan_scale(cfg, three, 0, 0, false, plan), 400);
    assert_non_null(strstr(plan->message, "non-empty"));
    assert_int_equal(plan_scale(cfg, huge, 1, 0, false, plan), 400);
    assert_non_null(strstr(plan->message, "70000"));
    assert_int_equal(plan_scale(cfg, three, 3, 4, false, plan), 400);
    assert_non_null(strstr(plan->message, "cannot be greater than the "
                                          "number of brokers 3"));
    assert_int_equal(plan_scale(cfg, three, 3, 17, false, plan), 400);
    /* Force: RF given, a non-member kept, a partition left without any
     * replica (partition 2 is on brokers 1 and 2, 3 on 2 and 3). */
    assert_int_equal(plan_scale(cfg, three, 3, 2, true, plan), 400);
    assert_non_null(strstr(plan->message, "replication factor"));
    assert_int_equal(plan_scale(cfg, stranger, 2, 0, true, plan), 400);
    assert_non_null(strstr(plan->message, "[9]"));
    assert_int_equal(plan_scale(cfg, lonely, 1, 0, true, plan), 400);
    assert_non_null(strstr(plan->message, "partitions [2, 3] having no "
                                          "replicas"));
    /* Scale down without force: the plan leaves before removing. */
    assert_int_equal(plan_scale(cfg, three, 3, 0, false, plan), 202);
    assert_int_equal(plan->change.ops[plan->change.op_count - 1].type,
                     CLUSTER_CONFIG_OP_BROKER_REMOVE);
    assert_int_equal(plan->change.ops[plan->change.op_count - 1].broker_id, 3);
    assert_int_equal(plan->change.target_replication_factor, 2);

    /* Single brokers. */
    memset(&req, 0, sizeof(req));
    req.kind = CLUSTER_CONFIG_REQUEST_BROKER_REMOVE;
    req.broker_id = 1; /* hosts partitions */
    assert_int_not_equal(cluster_config_plan(cfg, &req, plan), 0);
    assert_int_equal(plan->http_status, 400);
    assert_non_null(strstr(plan->message, "still hosts"));
    req.broker_id = 42; /* not a member: nothing to do */
    assert_int_equal(cluster_config_plan(cfg, &req, plan), 0);
    assert_int_equal(plan->change.op_count, 0);
    req.kind = CLUSTER_CONFIG_REQUEST_BROKER_ADD;
    assert_int_equal(cluster_config_plan(cfg, &req, plan), 0);
    assert_int_equal(plan->change.op_count, 1);
    assert_int_equal(plan->expected.member_count, 5);

    /* Join and leave. */
    req.kind = CLUSTER_CONFIG_REQUEST_PARTITION_JOIN;
    req.broker_id = 3;
    req.partition_id = 4;
    assert_int_not_equal(cluster_config_plan(cfg, &req, plan), 0);
    assert_non_null(strstr(plan->message, "Partition 4 does not exist"));
    req.partition_id = 1;
    req.broker_id = 7; /* not a member */
    assert_int_not_equal(cluster_config_plan(cfg, &req, plan), 0);
    assert_non_null(strstr(plan->message, "not a member"));
    req.broker_id = 0; /* already a replica of 1 */
    assert_int_not_equal(cluster_config_plan(cfg, &req, plan), 0);
    req.broker_id = 3;
    req.priority = 5;
    assert_int_equal(cluster_config_plan(cfg, &req, plan), 0);
    assert_int_equal(plan->change.ops[0].priority, 5);
    req.kind = CLUSTER_CONFIG_REQUEST_PARTITION_LEAVE;
    assert_int_not_equal(cluster_config_plan(cfg, &req, plan), 0);
    assert_non_null(strstr(plan->message, "not a replica"));
    req.broker_id = 0;
    assert_int_equal(cluster_config_plan(cfg, &req, plan), 0);
    assert_int_equal(plan->expected.partitions[0].replica_count, 1);

    /* Exporters. */
    memset(&req, 0, sizeof(req));
    req.kind = CLUSTER_CONFIG_REQUEST_EXPORTER_ENABLE;
    req.exporter = "es";
    assert_int_not_equal(cluster_config_plan(cfg, &req, plan), 0);
    assert_string_equal(plan->message, "Expected to enable exporter, but the "
                                       "exporter 'es' is already enabled");
    req.exporter = "nope";
    assert_int_not_equal(cluster_config_plan(cfg, &req, plan), 0);
    assert_non_null(strstr(plan->message, "'nope'"));
    req.kind = CLUSTER_CONFIG_REQUEST_EXPORTER_DISABLE;
    req.exporter = "pg";
    assert_int_equal(cluster_config_plan(cfg, &req, plan), 0);
    assert_int_equal(plan->change.op_count, 6); /* 3 partitions x RF 2 */
    assert_int_equal(plan->change.ops[0].broker_id, 0); /* members first */
    assert_true(cluster_config_change_start(cfg, plan, 1000) > 0);
    change_run(cfg, 2000);
    req.kind = CLUSTER_CONFIG_REQUEST_EXPORTER_ENABLE;
    req.exporter = "pg";
    req.initialize_from = "es";
    cfg->partitions[1].replicas[0].exporters[0].state =
        CLUSTER_CONFIG_EXPORTER_DISABLED; /* es off on one replica */
    assert_int_not_equal(cluster_config_plan(cfg, &req, plan), 0);
    assert_non_null(strstr(plan->message, "'es' is disabled in partition 2"));
    cfg->partitions[1].replicas[0].exporters[0].state =
        CLUSTER_CONFIG_EXPORTER_ENABLED;
    req.initialize_from = "pg";
    assert_int_not_equal(cluster_config_plan(cfg, &req, plan), 0);
    req.initialize_from = "missing";
    assert_int_not_equal(cluster_config_plan(cfg, &req, plan), 0);
    req.initialize_from = "es";
    assert_int_equal(cluster_config_plan(cfg, &req, plan), 0);
    assert_int_equal(plan->change.op_count, 6);
    req.kind = 99;
    assert_int_not_equal(cluster_config_plan(cfg, &req, plan), 0);
    assert_int_equal(plan->http_status, 400);
    free(plan);
    free(cfg);
}

/* JSON shapes: GET /actuator/cluster with a pending and a last change,
 * operations as Zeebe renders them; cancelling; exporting state. */
static void change_json_shapes_and_cancel(void **state)
{
    struct cluster_config *cfg = config_new(2, 2, 2);
    struct cluster_config_plan *plan = plan_new();
    static const uint32_t three[] = {0, 1, 2};
    char err[CLUSTER_CONFIG_ERRMSG_SIZE];
    json_t *j = NULL;
    json_t *pend;
    json_t *op;
    int64_t id;

    (void)state;
    assert_int_equal(cluster_config_exporter_add(cfg, "es", NULL, 0), 0);
    assert_int_equal(
        cluster_config_exporter_add(cfg, "bad id", err, sizeof(err)),
        CLUSTER_CONFIG_E_INVALID);
    assert_int_equal(cluster_config_exporter_add(cfg, "es", err, sizeof(err)),
                     CLUSTER_CONFIG_E_INVALID);
    assert_non_null(strstr(err, "already known"));
    assert_int_equal(plan_scale(cfg, three, 3, 0, false, plan), 202);
    id = cluster_config_change_start(cfg, plan, 1724412788355);
    assert_int_equal(id, 2);
    assert_int_equal(cluster_config_change_start(cfg, plan, 1),
                     CLUSTER_CONFIG_E_INVALID); /* one at a time */
    assert_int_equal(
        cluster_config_op_complete(cfg, 1724412789000, err, sizeof(err)), 0);
    assert_int_equal(cluster_config_to_json(cfg, &j), 0);
    pend = json_object_get(j, "pendingChange");
    assert_non_null(pend);
    assert_null(json_object_get(j, "lastChange"));
    assert_int_equal(json_integer_value(json_object_get(pend, "id")), 2);
    assert_string_equal(json_string_value(json_object_get(pend, "status")),
                        "IN_PROGRESS");
    assert_string_equal(json_string_value(json_object_get(pend, "startedAt")),
                        "2024-08-23T11:33:08.355Z");
    op = json_array_get(json_object_get(pend, "completed"), 0);
    assert_string_equal(json_string_value(json_object_get(op, "operation")),
                        "BROKER_ADD");
    assert_int_equal(json_integer_value(json_object_get(op, "brokerId")), 2);
    assert_string_equal(json_string_value(json_object_get(op, "completedAt")),
                        "2024-08-23T11:33:09.000Z");
    assert_null(json_object_get(op, "partitionId"));
    assert_true(json_is_array(json_object_get(op, "brokers")));
    op = json_array_get(json_object_get(pend, "pending"), 0);
    assert_string_equal(json_string_value(json_object_get(op, "operation")),
                        "PARTITION_JOIN");
    assert_non_null(json_object_get(op, "partitionId"));
    assert_non_null(json_object_get(op, "priority"));
    assert_null(json_object_get(op, "completedAt"));
    /* Per-partition exporter config (8.6 shape plus metadataVersion). */
    {
        char *text = json_dumps(
            json_object_get(
                json_array_get(
                    json_object_get(
                        json_array_get(json_object_get(j, "brokers"), 0),
                        "partitions"),
                    0),
                "config"),
            JSON_COMPACT);
        assert_string_equal(text, "{\"exporting\":{\"exporters\":[{\"id\":"
                                  "\"es\",\"state\":\"ENABLED\","
                                  "\"metadataVersion\":0}]}}");
        free(text);
    }
    json_decref(j);
    forms_round_trip(cfg);

    /* Cancel: wrong id, then the right one. */
    assert_int_equal(
        cluster_config_change_finish(cfg, 7, CLUSTER_CONFIG_CHANGE_CANCELLED, 5,
                                     err, sizeof(err)),
        CLUSTER_CONFIG_E_INVALID);
    assert_non_null(strstr(err, "Expected to cancel change 7"));
    assert_int_equal(
        cluster_config_change_finish(cfg, 2, CLUSTER_CONFIG_CHANGE_COMPLETED, 5,
                                     err, sizeof(err)),
        CLUSTER_CONFIG_E_INVALID);
    assert_int_equal(
        cluster_config_change_finish(cfg, 2, CLUSTER_CONFIG_CHANGE_CANCELLED,
                                     1724412790000, err, sizeof(err)),
        0);
    assert_int_equal(
        cluster_config_change_finish(cfg, 2, CLUSTER_CONFIG_CHANGE_CANCELLED, 5,
                                     err, sizeof(err)),
        CLUSTER_CONFIG_E_INVALID);
    assert_non_null(strstr(err, "no configuration change is in progress"));
    assert_int_equal(cluster_config_op_complete(cfg, 9, err, sizeof(err)),
                     CLUSTER_CONFIG_E_INVALID);
    assert_int_equal(cfg->member_count, 3); /* the completed add stays */
    assert_int_equal(cluster_config_to_json(cfg, &j), 0);
    assert_null(json_object_get(j, "pendingChange"));
    {
        char *text = json_dumps(json_object_get(j, "lastChange"), JSON_COMPACT);
        assert_string_equal(text,
                            "{\"id\":2,\"status\":\"CANCELLED\",\"startedAt\":"
                            "\"2024-08-23T11:33:08.355Z\",\"completedAt\":"
                            "\"2024-08-23T11:33:10.000Z\"}");
        free(text);
    }
    json_decref(j);

    /* Exporting state: version grows on change only; persisted. */
    {
        uint64_t v = cfg->version;
        assert_int_equal(cluster_config_exporting_set(
                             cfg, CLUSTER_CONFIG_EXPORTING_SOFT_PAUSED),
                         1);
        assert_int_equal(cluster_config_exporting_set(
                             cfg, CLUSTER_CONFIG_EXPORTING_SOFT_PAUSED),
                         0);
        assert_int_equal(cluster_config_exporting_set(cfg, 3),
                         CLUSTER_CONFIG_E_INVALID);
        assert_int_equal(cfg->version, v + 1);
        assert_string_equal(cluster_config_exporting_name(cfg->exporting),
                            "SOFT_PAUSED");
        forms_round_trip(cfg);
    }
    free(plan);
    free(cfg);
}

/* Operations that do not apply are refused and change nothing; a change
 * whose next operation fails can be ended FAILED. */
static void op_apply_refuses_and_change_fails(void **state)
{
    struct cluster_config *cfg = config_new(3, 3, 3);
    struct cluster_config *before = malloc(sizeof(*before));
    char err[CLUSTER_CONFIG_ERRMSG_SIZE];
    struct cluster_config_op op;

    (void)state;
    memcpy(before, cfg, sizeof(*before));
    memset(&op, 0, sizeof(op));
    op.type = CLUSTER_CONFIG_OP_BROKER_ADD;
    op.broker_id = 1;
    assert_int_equal(cluster_config_op_apply(cfg, &op, err, sizeof(err)),
                     CLUSTER_CONFIG_E_INVALID);
    op.type = CLUSTER_CONFIG_OP_PARTITION_FORCE_RECONFIGURE;
    op.partition_id = 1;
    op.broker_count = 1;
    op.brokers[0] = 9;
    assert_int_equal(cluster_config_op_apply(cfg, &op, err, sizeof(err)),
                     CLUSTER_CONFIG_E_INVALID);
    op.broker_count = 0;
    assert_int_equal(cluster_config_op_apply(cfg, &op, err, sizeof(err)),
                     CLUSTER_CONFIG_E_INVALID);
    op.type = CLUSTER_CONFIG_OP_PARTITION_ENABLE_EXPORTER; /* no exporter */
    assert_int_equal(cluster_config_op_apply(cfg, &op, err, sizeof(err)),
                     CLUSTER_CONFIG_E_INVALID);
    op.type = 77;
    assert_int_equal(cluster_config_op_apply(cfg, &op, err, sizeof(err)),
                     CLUSTER_CONFIG_E_INVALID);
    assert_true(cluster_config_equal(cfg, before));

    /* A change whose next operation no longer applies. */
    {
        struct cluster_config_plan *plan = plan_new();
        struct cluster_config_request req = {
            .kind = CLUSTER_CONFIG_REQUEST_PARTITION_LEAVE,
            .broker_id = 2,
            .partition_id = 1};
        assert_int_equal(cluster_config_plan(cfg, &req, plan), 0);
        assert_true(cluster_config_change_start(cfg, plan, 100) > 0);
        cfg->partitions[0].replica_count = 2; /* broker 2 gone meanwhile */
        assert_int_equal(cluster_config_op_complete(cfg, 200, err, sizeof(err)),
                         CLUSTER_CONFIG_E_INVALID);
        assert_non_null(strstr(err, "not a replica"));
        assert_int_equal(cluster_config_change_finish(
                             cfg, cfg->pending.id, CLUSTER_CONFIG_CHANGE_FAILED,
                             300, err, sizeof(err)),
                         0);
        assert_int_equal(cfg->last.status, CLUSTER_CONFIG_CHANGE_FAILED);
        free(plan);
    }
    free(before);
    free(cfg);
}

/* Hostile extensions: wrong wire type, a mismatching base, and file
 * forms with broken change or exporter entries. */
static void extension_hostile_inputs_refused(void **state)
{
    struct cluster_config *cfg = config_new(1, 1, 1);
    struct cluster_config *out = malloc(sizeof(*out));
    uint8_t buf[4096];
    char err[CLUSTER_CONFIG_ERRMSG_SIZE];
    size_t len = 0;
    static const char *const bad[] = {
        "\"exporters\":[\"a\",\"a\"]",
        "\"exporters\":[\"a b\"]",
        "\"exporting\":\"SLEEPING\"",
        "\"lastChange\":{\"id\":1,\"status\":\"IN_PROGRESS\",\"startedAt\":"
        "\"2024-01-01T00:00:00Z\",\"completedAt\":\"2024-01-01T00:00:00Z\"}",
        "\"lastChange\":{\"id\":1,\"status\":\"COMPLETED\",\"startedAt\":"
        "\"2024-02-30T00:00:00Z\",\"completedAt\":\"2024-01-01T00:00:00Z\"}",
        "\"pendingChange\":{\"id\":1,\"status\":\"IN_PROGRESS\",\"startedAt\":"
        "\"2024-01-01T00:00:00Z\",\"replicationFactor\":1,\"completed\":[],"
        "\"pending\":[]}",
        "\"pendingChange\":{\"id\":1,\"status\":\"IN_PROGRESS\",\"startedAt\":"
        "\"2024-01-01T00:00:00Z\",\"replicationFactor\":1,\"completed\":[],"
        "\"pending\":[{\"operation\":\"DANCE\",\"brokerId\":0,\"brokers\":[]}"
        "]}",
        "\"pendingChange\":{\"id\":1,\"status\":\"IN_PROGRESS\",\"startedAt\":"
        "\"2024-01-01T00:00:00Z\",\"replicationFactor\":1,\"completed\":[],"
        "\"pending\":[{\"operation\":\"PARTITION_JOIN\",\"brokerId\":0,"
        "\"partitionId\":1,\"brokers\":[]}]}",
    };

    (void)state;
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        char text[1024];
        int n = snprintf(text, sizeof(text),
                         "{\"format\":1,\"version\":1,\"clusterSize\":1,"
                         "\"partitionsCount\":1,\"replicationFactor\":1,%s,"
                         "\"brokers\":[{\"id\":0,\"partitions\":[{\"id\":1,"
                         "\"priority\":1}]}]}",
                         bad[k]);
        err[0] = '\0';
        assert_int_equal(
            cluster_config_from_json(text, (size_t)n, out, err, sizeof(err)),
            CLUSTER_CONFIG_E_MALFORMED);
        assert_true(strlen(err) > 0);
    }
    /* Exporters listed, but a replica without its exporter config. */
    {
        static const char text[] =
            "{\"format\":1,\"version\":1,\"clusterSize\":1,"
            "\"partitionsCount\":1,\"replicationFactor\":1,"
            "\"exporters\":[\"a\"],\"brokers\":[{\"id\":0,\"partitions\":"
            "[{\"id\":1,\"priority\":1}]}]}";
        assert_int_equal(cluster_config_from_json(text, sizeof(text) - 1, out,
                                                  err, sizeof(err)),
                         CLUSTER_CONFIG_E_MALFORMED);
        assert_non_null(strstr(err, "exporters"));
    }
    /* Wire: field 8 as a varint, and an extension for another config. */
    assert_int_equal(cluster_config_encode(cfg, buf, sizeof(buf), &len), 0);
    buf[len] = 8 << 3; /* field 8, varint */
    buf[len + 1] = 1;
    assert_int_equal(cluster_config_decode(buf, len + 2, out, err, sizeof(err)),
                     CLUSTER_CONFIG_E_MALFORMED);
    assert_non_null(strstr(err, "extension"));
    {
        static const char ext[] =
            "{\"format\":1,\"version\":5,\"clusterSize\":1,"
            "\"partitionsCount\":1,\"replicationFactor\":1,"
            "\"exporting\":\"PAUSED\",\"brokers\":[{\"id\":0,\"partitions\":"
            "[{\"id\":1,\"priority\":1}]}]}";
        _Static_assert(sizeof(ext) - 1 >= 128 && sizeof(ext) - 1 < 16384,
                       "a two-byte varint length");
        buf[len] = (8 << 3) | 2;
        buf[len + 1] = (uint8_t)(((sizeof(ext) - 1) & 0x7f) | 0x80);
        buf[len + 2] = (uint8_t)((sizeof(ext) - 1) >> 7);
        memcpy(&buf[len + 3], ext, sizeof(ext) - 1);
        assert_int_equal(cluster_config_decode(buf, len + 3 + sizeof(ext) - 1,
                                               out, err, sizeof(err)),
                         CLUSTER_CONFIG_E_MALFORMED);
        if (strstr(err, "another configuration") == NULL) {
            print_error("%s\n", err);
            fail();
        }
    }
    free(out);
    free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(from_placement_keeps_zeebe_priorities),
        cmocka_unit_test(validate_names_the_broken_rule),
        cmocka_unit_test(encode_decode_round_trip_is_canonical),
        cmocka_unit_test(largest_config_fits_the_byte_limit),
        cmocka_unit_test(decode_refuses_hostile_messages),
        cmocka_unit_test(json_matches_zeebe_actuator_cluster),
        cmocka_unit_test(save_load_round_trip),
        cmocka_unit_test(failed_save_leaves_previous_file),
        cmocka_unit_test(corrupt_files_are_refused_clearly),
        cmocka_unit_test(plan_dual_region_failover_and_failback),
        cmocka_unit_test(plan_errors_are_zeebes),
        cmocka_unit_test(change_json_shapes_and_cancel),
        cmocka_unit_test(op_apply_refuses_and_change_fails),
        cmocka_unit_test(extension_hostile_inputs_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
