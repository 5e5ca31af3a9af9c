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
    assert_int_equal(broker_placement_compute_static(&placement_buf, size,
                                                     partitions, rf),
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
        assert_non_null(strstr(err, text));                                   \
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
    assert_int_equal(cluster_config_encode(cfg, a, CLUSTER_CONFIG_BYTES_MAX,
                                           &alen),
                     0);
    assert_int_equal(cluster_config_decode(a, alen, out, err, sizeof(err)), 0);
    assert_true(cluster_config_equal(cfg, out));
    assert_int_equal(cluster_config_encode(out, b, CLUSTER_CONFIG_BYTES_MAX,
                                           &blen),
                     0);
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
    assert_int_equal(cluster_config_encode(cfg, a, CLUSTER_CONFIG_BYTES_MAX,
                                           &alen),
                     CLUSTER_CONFIG_E_INVALID);
    free(a);
    free(b);
    free(out);
    free(cfg);
}

static void largest_config_fits_the_byte_limit(void **state)
{
    struct cluster_config *cfg = config_new(BROKER_CLUSTER_SIZE_MAX,
                                            BROKER_PARTITIONS_MAX,
                                            BROKER_REPLICAS_MAX);
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
    assert_int_equal(cluster_config_encode(cfg, buf, CLUSTER_CONFIG_BYTES_MAX,
                                           &len),
                     0);
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
        assert_int_equal(cluster_config_decode(data, n, out, err, sizeof(err)), \
                         CLUSTER_CONFIG_E_MALFORMED);                          \
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
    assert_int_equal(json_integer_value(json_object_get(
                         json_array_get(brokers, 3), "id")),
                     3);
    assert_int_equal(json_array_size(json_object_get(
                         json_array_get(brokers, 3), "partitions")),
                     0);
    assert_int_equal(json_array_size(json_object_get(
                         json_array_get(brokers, 1), "partitions")),
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
        {"\"version\": 1,\n  \"clusterSize\"", "\"version\": 0,\n  \"clusterSize\"",
         "\"version\" must be"},
        {"\"clusterSize\": 2", "\"clusterSize\": 3", "clusterSize 3 differs"},
        {"\"clusterSize\": 2", "\"clusterSize\": \"2\"",
         "\"clusterSize\" must be an integer"},
        {"\"format\": 1", "\"format\": 1, \"extra\": 1", "unknown key \"extra\""},
        {"\"format\": 1", "\"format\": 1, \"format\": 1", "duplicate"},
        {"\"id\": 1", "\"id\": 0", "\"id\" must be an integer 1..2"},
        {"\"priority\": 2", "\"priority\": 0", "\"priority\" must be"},
        {"\"state\": \"ACTIVE\"", "\"state\": \"JOINING\"", "\"state\" must be"},
        {"\"brokers\": [", "\"brokers\": [[], ", "brokers[0]. is not an object"},
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
    assert_int_equal(cluster_config_from_json(orphan, strlen(orphan), out, err,
                                              sizeof(err)),
                     CLUSTER_CONFIG_E_MALFORMED);
    assert_non_null(strstr(err, "partition 2 has 0 replicas"));
    assert_int_equal(cluster_config_from_json(twice, strlen(twice), out, err,
                                              sizeof(err)),
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
