/* test_config.c: unit tests of broker/config.c.
 *
 * Covers the defaults, a YAML file setting every key (testdata/config/,
 * the test's working directory), environment overrides, every validation
 * rule (table-driven: input -> error code and a substring that names the
 * key and the reason), unknown keys, YAML syntax errors, the nodeId derived
 * from podOrdinal, the pod ordinal taken from a StatefulSet host name
 * (cluster.nodeIdFromHostname), the contact points expanded from
 * cluster.initialContactPointsTemplate, value syntaxes (durations, sizes,
 * booleans, lists) and the print -> load round trip.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "broker/config.h"

static struct broker_config cfg;
static struct broker_config cfg2;
static char err[1024];

static int load_str(const char *yaml, char *const *envp)
{
    memset(err, 0, sizeof(err));
    return broker_config_load_string(&cfg, yaml, yaml ? strlen(yaml) : 0,
                                     "test.yaml", envp, err, sizeof(err));
}

/* Asserts that err contains needle, printing both otherwise. */
static void assert_err_has(const char *needle)
{
    if (strstr(err, needle) == NULL) {
        fail_msg("error \"%s\" does not contain \"%s\"", err, needle);
    }
}

/* Prints cfg to memory, loads it back without environment, compares. */
static void assert_round_trip(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    int rv;

    assert_non_null(out);
    assert_int_equal(broker_config_print(&cfg, out), 0);
    fclose(out);
    rv = broker_config_load_string(&cfg2, buf, len, "printed", NULL, err,
                                   sizeof(err));
    if (rv != 0) {
        fail_msg("reload failed: %s\n%s", err, buf);
    }
    if (memcmp(&cfg, &cfg2, sizeof(cfg)) != 0) {
        fail_msg("round trip changed the configuration:\n%s", buf);
    }
    free(buf);
}

/* ------------------------------------------------------------------------
 * Defaults and files
 * --------------------------------------------------------------------- */

static void test_defaults(void **state)
{
    (void)state;
    assert_int_equal(broker_config_load(&cfg, NULL, NULL, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_int_equal(cfg.node_id, 0);
    assert_int_equal(cfg.cluster_size, 1);
    assert_int_equal(cfg.partitions_count, 1);
    assert_int_equal(cfg.replication_factor, 1);
    assert_int_equal(cfg.contact_point_count, 0);
    assert_string_equal(cfg.cluster_name, "zeebe-cluster");
    assert_int_equal(cfg.election_timeout_ms, 2500);
    assert_int_equal(cfg.heartbeat_interval_ms, 250);
    assert_true(cfg.priority_election);
    assert_int_equal(cfg.regions, 1);
    assert_int_equal(cfg.region_id, 0);
    assert_false(cfg.pod_ordinal_set);
    assert_false(cfg.node_id_derived);
    assert_false(cfg.node_id_from_hostname);
    assert_false(cfg.pod_ordinal_from_hostname);
    assert_string_equal(cfg.contact_point_template, "");
    assert_int_equal(cfg.region_namespace_count, 0);
    assert_false(cfg.contact_points_derived);
    assert_string_equal(cfg.hostname, "");
    assert_string_equal(cfg.host, "0.0.0.0");
    assert_string_equal(cfg.advertised_host, "");
    assert_int_equal(cfg.command_api_port, 26501);
    assert_int_equal(cfg.internal_api_port, 26502);
    assert_int_equal(cfg.max_message_bytes, 4u << 20);
    assert_true(cfg.gateway_enable);
    assert_int_equal(cfg.gateway_port, 26500);
    assert_int_equal(cfg.rest_port, 8080);
    assert_int_equal(cfg.management_port, 9600);
    assert_string_equal(cfg.data_directory, "data");
    assert_int_equal(cfg.snapshot_period_ms, 5 * 60 * 1000);
    assert_int_equal(cfg.log_segment_bytes, 128u << 20);

    /* broker_config_default gives the same struct. */
    broker_config_default(&cfg2);
    assert_memory_equal(&cfg, &cfg2, sizeof(cfg));
    assert_int_equal(broker_config_validate(&cfg2, err, sizeof(err)), 0);
    /* An empty document and an empty mapping also give the defaults. */
    assert_int_equal(load_str("", NULL), 0);
    assert_memory_equal(&cfg, &cfg2, sizeof(cfg));
    assert_int_equal(load_str("---\n# nothing\n", NULL), 0);
    assert_memory_equal(&cfg, &cfg2, sizeof(cfg));
    assert_int_equal(load_str("{}", NULL), 0);
    assert_memory_equal(&cfg, &cfg2, sizeof(cfg));
    assert_int_equal(load_str("tandem:\n  broker:\n    cluster:\n", NULL), 0);
    assert_memory_equal(&cfg, &cfg2, sizeof(cfg));
}

static void test_load_full_file(void **state)
{
    (void)state;
    assert_int_equal(
        broker_config_load(&cfg, "full.yaml", NULL, err, sizeof(err)), 0);
    assert_int_equal(cfg.node_id, 5);
    assert_int_equal(cfg.cluster_size, 8);
    assert_int_equal(cfg.partitions_count, 8);
    assert_int_equal(cfg.replication_factor, 4);
    assert_int_equal(cfg.contact_point_count, 3);
    assert_string_equal(cfg.contact_points[0].host,
                        "tandem-0.tandem.region0.svc.cluster.local");
    assert_int_equal(cfg.contact_points[0].port, 26502);
    assert_string_equal(cfg.contact_points[1].host,
                        "tandem-0.tandem.region1.svc.cluster.local");
    assert_string_equal(cfg.contact_points[2].host, "fd00::1");
    assert_int_equal(cfg.contact_points[2].port, 26602);
    assert_string_equal(cfg.cluster_name, "tandem-test");
    assert_int_equal(cfg.election_timeout_ms, 2500);
    assert_int_equal(cfg.heartbeat_interval_ms, 500);
    assert_false(cfg.priority_election);
    assert_int_equal(cfg.regions, 2);
    assert_int_equal(cfg.region_id, 1);
    assert_false(cfg.pod_ordinal_set);
    assert_string_equal(cfg.host, "10.0.0.5");
    assert_string_equal(cfg.advertised_host, "tandem-2.tandem.region1.svc");
    assert_int_equal(cfg.command_api_port, 27501);
    assert_int_equal(cfg.internal_api_port, 27502);
    assert_int_equal(cfg.max_message_bytes, 8u << 20);
    assert_false(cfg.gateway_enable);
    assert_int_equal(cfg.gateway_port, 27500);
    assert_int_equal(cfg.rest_port, 8081);
    assert_int_equal(cfg.management_port, 9601);
    assert_string_equal(cfg.data_directory, "/var/lib/tandem");
    assert_int_equal(cfg.snapshot_period_ms, 15 * 60 * 1000);
    assert_int_equal(cfg.log_segment_bytes, 256u << 20);
    assert_true(cfg.node_id_from_hostname);
    assert_false(cfg.pod_ordinal_from_hostname); /* nodeId was given */
    assert_false(cfg.node_id_derived);
    assert_int_equal(cfg.region_namespace_count, 2);
    assert_string_equal(cfg.region_namespaces[0], "tandem-region0");
    assert_string_equal(cfg.region_namespaces[1], "tandem-region1");
    assert_string_equal(cfg.hostname, "tandem-broker-2");
    assert_string_equal(cfg.contact_point_template, "");
    assert_false(cfg.contact_points_derived);
    assert_round_trip();
}

static void test_file_errors(void **state)
{
    (void)state;
    assert_int_equal(
        broker_config_load(&cfg, "no-such-file.yaml", NULL, err, sizeof(err)),
        BROKER_CONFIG_E_IO);
    assert_err_has("config: no-such-file.yaml: cannot open");

    /* A directory opens but does not read. */
    assert_int_equal(broker_config_load(&cfg, ".", NULL, err, sizeof(err)),
                     BROKER_CONFIG_E_IO);
    assert_err_has("config: .:");

    /* err may be NULL when err_len is 0. */
    assert_int_equal(
        broker_config_load(&cfg, "no-such-file.yaml", NULL, NULL, 0),
        BROKER_CONFIG_E_IO);
    assert_string_equal(broker_config_strerror(BROKER_CONFIG_E_SYNTAX),
                        "the YAML is malformed or uses an unsupported "
                        "construct");
    assert_string_equal(broker_config_strerror(0), "success");
    assert_string_equal(broker_config_strerror(-99), "unknown error");
}

static void test_syntax_error(void **state)
{
    (void)state;
    assert_int_equal(
        broker_config_load(&cfg, "syntax_error.yaml", NULL, err, sizeof(err)),
        BROKER_CONFIG_E_SYNTAX);
    assert_err_has("config: syntax_error.yaml:5:");
    assert_err_has("YAML syntax error");

    assert_int_equal(load_str("a: [1, 2\n", NULL), BROKER_CONFIG_E_SYNTAX);
    assert_err_has("test.yaml:2:1: YAML syntax error");
    assert_int_equal(load_str("a: \"unterminated\n", NULL),
                     BROKER_CONFIG_E_SYNTAX);
    assert_err_has("test.yaml:");
    assert_int_equal(load_str("\t- x\n", NULL), BROKER_CONFIG_E_SYNTAX);

    /* Structures that parse but are not allowed. */
    assert_int_equal(load_str("- a\n- b\n", NULL), BROKER_CONFIG_E_SYNTAX);
    assert_err_has("the document must be a mapping");
    assert_int_equal(load_str("42\n", NULL), BROKER_CONFIG_E_SYNTAX);
    assert_int_equal(load_str("tandem:\n  broker: {}\n---\nx: 1\n", NULL),
                     BROKER_CONFIG_E_SYNTAX);
    assert_err_has("more than one YAML document");
    assert_int_equal(load_str("tandem.broker.cluster:\n"
                              "  clusterSize: &n 3\n"
                              "  partitionsCount: *n\n",
                              NULL),
                     BROKER_CONFIG_E_SYNTAX);
    assert_err_has("aliases are not supported");
    assert_int_equal(load_str("tandem.broker.cluster.nodeId: 0\n"
                              "tandem:\n  broker:\n    cluster:\n"
                              "      nodeId: 0\n",
                              NULL),
                     BROKER_CONFIG_E_SYNTAX);
    assert_err_has("tandem.broker.cluster.nodeId (test.yaml:5:7): key given "
                   "more than once");
    assert_int_equal(load_str("? [a]\n: 1\n", NULL), BROKER_CONFIG_E_SYNTAX);
    assert_err_has("mapping keys must be plain strings");
}

static void test_nesting_limit(void **state)
{
    char doc[4096] = "";
    (void)state;
    /* 40 nested mappings under a valid section. */
    strcat(doc, "tandem: {broker: {cluster: ");
    for (int k = 0; k < 40; k++) {
        strcat(doc, "{a: ");
    }
    strcat(doc, "1");
    for (int k = 0; k < 40; k++) {
        strcat(doc, "}");
    }
    strcat(doc, "}}\n");
    assert_int_equal(load_str(doc, NULL), BROKER_CONFIG_E_UNKNOWN_KEY);
    assert_err_has("tandem.broker.cluster.a");
}

static void test_unknown_key(void **state)
{
    char *env_typo[] = {"PATH=/bin", "TANDEM_BROKER_CLUSTER_NODEIDD=1", NULL};
    char *env_other[] = {"TANDEM_GATEWAY_X=1", "ZEEBE_BROKER_CLUSTER_NODEID=9",
                         NULL};
    (void)state;
    assert_int_equal(
        broker_config_load(&cfg, "unknown_key.yaml", NULL, err, sizeof(err)),
        BROKER_CONFIG_E_UNKNOWN_KEY);
    assert_string_equal(err, "config: tandem.broker.cluster.partitionCount "
                             "(unknown_key.yaml:5:7): unknown key");

    assert_int_equal(load_str("zeebe:\n  broker:\n    cluster:\n"
                              "      nodeId: 1\n",
                              NULL),
                     BROKER_CONFIG_E_UNKNOWN_KEY);
    assert_string_equal(err, "config: zeebe (test.yaml:1:1): unknown key");
    /* exporters is a map of ids now; an empty one is fine. */
    assert_int_equal(load_str("tandem:\n  broker:\n    exporters: {}\n", NULL),
                     0);
    assert_int_equal(cfg.exporter_count, 0);
    assert_int_equal(load_str("tandem:\n  broker:\n    cluster: 3\n", NULL),
                     BROKER_CONFIG_E_TYPE);
    assert_err_has("tandem.broker.cluster (test.yaml:3:5): is a section");

    assert_int_equal(load_str(NULL, env_typo), BROKER_CONFIG_E_UNKNOWN_KEY);
    assert_string_equal(err, "config: environment variable "
                             "TANDEM_BROKER_CLUSTER_NODEIDD: unknown key (no "
                             "tandem.broker key maps to it)");
    /* Other prefixes are not ours. */
    assert_int_equal(load_str(NULL, env_other), 0);
    assert_int_equal(cfg.node_id, 0);
}

/* ------------------------------------------------------------------------
 * Environment
 * --------------------------------------------------------------------- */

static void test_env_overrides_yaml(void **state)
{
    char *envp[] = {
        "HOME=/root",
        "TANDEM_BROKER_CLUSTER_NODEID=3",
        "TANDEM_BROKER_CLUSTER_INITIALCONTACTPOINTS=a:1, b:2 ,[::1]:3",
        "TANDEM_BROKER_CLUSTER_RAFT_ENABLEPRIORITYELECTION=TRUE",
        "TANDEM_BROKER_GATEWAY_ENABLE=yes",
        "TANDEM_BROKER_NETWORK_MAXMESSAGESIZE=16MB",
        "TANDEM_BROKER_DATA_SNAPSHOTPERIOD=1h",
        "TANDEM_BROKER_DATA_DIRECTORY=/data/with space/\"q\"",
        "TANDEM_BROKER_CLUSTER_NODEID=7", /* later duplicate: ignored */
        NULL,
    };
    (void)state;
    assert_int_equal(
        broker_config_load(&cfg, "full.yaml", envp, err, sizeof(err)), 0);
    assert_int_equal(cfg.node_id, 3);
    assert_int_equal(cfg.contact_point_count, 3);
    assert_string_equal(cfg.contact_points[0].host, "a");
    assert_int_equal(cfg.contact_points[0].port, 1);
    assert_string_equal(cfg.contact_points[1].host, "b");
    assert_int_equal(cfg.contact_points[1].port, 2);
    assert_string_equal(cfg.contact_points[2].host, "::1");
    assert_int_equal(cfg.contact_points[2].port, 3);
    assert_true(cfg.priority_election);
    assert_true(cfg.gateway_enable);
    assert_int_equal(cfg.max_message_bytes, 16u << 20);
    assert_int_equal(cfg.snapshot_period_ms, 3600 * 1000);
    assert_string_equal(cfg.data_directory, "/data/with space/\"q\"");
    /* YAML values not overridden stay. */
    assert_int_equal(cfg.cluster_size, 8);
    assert_string_equal(cfg.cluster_name, "tandem-test");
    assert_round_trip();

    /* An empty list from the environment clears the YAML list. */
    {
        char *clear[] = {"TANDEM_BROKER_CLUSTER_INITIALCONTACTPOINTS=", NULL};
        assert_int_equal(
            broker_config_load(&cfg, "full.yaml", clear, err, sizeof(err)), 0);
        assert_int_equal(cfg.contact_point_count, 0);
        assert_round_trip();
    }
}

/* An error in a value from the environment names the variable. */
static void test_env_errors_name_variable(void **state)
{
    char *bad_rf[] = {"TANDEM_BROKER_CLUSTER_CLUSTERSIZE=5",
                      "TANDEM_BROKER_CLUSTER_REPLICATIONFACTOR=7", NULL};
    char *bad_type[] = {"TANDEM_BROKER_CLUSTER_NODEID=one", NULL};
    char *bad_list[] = {"TANDEM_BROKER_CLUSTER_INITIALCONTACTPOINTS=a:1,,b:2",
                        NULL};
    (void)state;
    assert_int_equal(load_str(NULL, bad_rf), BROKER_CONFIG_E_INVALID);
    assert_string_equal(err, "config: tandem.broker.cluster.replicationFactor "
                             "(env TANDEM_BROKER_CLUSTER_REPLICATIONFACTOR): "
                             "must be between 1 and clusterSize (5), got 7");
    assert_int_equal(load_str("tandem.broker.cluster.clusterSize: 5\n"
                              "tandem.broker.cluster.replicationFactor: 7\n",
                              NULL),
                     BROKER_CONFIG_E_INVALID);
    assert_string_equal(err, "config: tandem.broker.cluster.replicationFactor "
                             "(test.yaml:2:1): must be between 1 and "
                             "clusterSize (5), got 7");
    assert_int_equal(load_str(NULL, bad_type), BROKER_CONFIG_E_TYPE);
    assert_string_equal(err, "config: tandem.broker.cluster.nodeId (env "
                             "TANDEM_BROKER_CLUSTER_NODEID): expected an "
                             "unsigned integer, got \"one\"");
    assert_int_equal(load_str(NULL, bad_list), BROKER_CONFIG_E_TYPE);
    assert_err_has("(env TANDEM_BROKER_CLUSTER_INITIALCONTACTPOINTS): "
                   "expected host:port");
}

/* ------------------------------------------------------------------------
 * Validation, table-driven
 * --------------------------------------------------------------------- */

struct bad_case {
    const char *yaml; /* under tandem.broker (flow mapping body) */
    int code;
    const char *want; /* substring of the message */
};

static const struct bad_case bad_cases[] = {
    /* ranges and types */
    {"cluster: {nodeId: -1}", BROKER_CONFIG_E_INVALID,
     "cluster.nodeId (test.yaml:1:29): must be between 0 and 255, got -1"},
    {"cluster: {nodeId: 1.5}", BROKER_CONFIG_E_TYPE,
     "cluster.nodeId (test.yaml:1:29): expected an unsigned integer, got "
     "\"1.5\""},
    {"cluster: {nodeId: 99999999999999999999999}", BROKER_CONFIG_E_INVALID,
     "cluster.nodeId (test.yaml:1:29): must be between 0 and 255, got "
     "99999999999999999999999"},
    {"cluster: {nodeId: }", BROKER_CONFIG_E_TYPE,
     "cluster.nodeId (test.yaml:1:29): expected an unsigned integer, got "
     "null"},
    {"cluster: {nodeId: [1]}", BROKER_CONFIG_E_TYPE,
     "cluster.nodeId (test.yaml:1:29): expected an unsigned integer, got a "
     "list"},
    {"cluster: {nodeId: {a: 1}}", BROKER_CONFIG_E_TYPE,
     "cluster.nodeId (test.yaml:1:29): expected an unsigned integer, got a "
     "mapping"},
    {"cluster: {clusterSize: 0}", BROKER_CONFIG_E_INVALID,
     "cluster.clusterSize (test.yaml:1:29): must be between 1 and 256, got 0"},
    {"cluster: {clusterSize: 257}", BROKER_CONFIG_E_INVALID,
     "cluster.clusterSize (test.yaml:1:29): must be between 1 and 256"},
    {"cluster: {partitionsCount: 0}", BROKER_CONFIG_E_INVALID,
     "cluster.partitionsCount (test.yaml:1:29): must be between 1 and 512"},
    {"cluster: {replicationFactor: 17, clusterSize: 20}",
     BROKER_CONFIG_E_INVALID,
     "cluster.replicationFactor (test.yaml:1:29): must be between 1 and 16, "
     "got 17"},
    {"cluster: {replicationFactor: 0}", BROKER_CONFIG_E_INVALID,
     "cluster.replicationFactor (test.yaml:1:29): must be between 1 and 16, "
     "got 0"},
    {"cluster: {replicationFactor: 3}", BROKER_CONFIG_E_INVALID,
     "cluster.replicationFactor (test.yaml:1:29): must be between 1 and "
     "clusterSize (1), got 3"},
    {"cluster: {nodeId: 3, clusterSize: 3}", BROKER_CONFIG_E_INVALID,
     "cluster.nodeId (test.yaml:1:29): must be less than clusterSize (3), "
     "got 3"},
    {"cluster: {clusterName: ''}", BROKER_CONFIG_E_INVALID,
     "cluster.clusterName (test.yaml:1:29): must not be empty"},
    {"cluster: {clusterName: \"a\\tb\"}", BROKER_CONFIG_E_TYPE,
     "cluster.clusterName (test.yaml:1:29): not valid UTF-8 text without "
     "control characters: \"a?b\""},
    {"cluster: {clusterName: \"a\\0b\"}", BROKER_CONFIG_E_TYPE,
     "cluster.clusterName (test.yaml:1:29): value contains a NUL byte"},
    /* durations */
    {"cluster: {electionTimeout: 0}", BROKER_CONFIG_E_INVALID,
     "cluster.electionTimeout (test.yaml:1:29): must be between 1ms and "
     "3600000ms, got 0"},
    {"cluster: {electionTimeout: 0ms}", BROKER_CONFIG_E_INVALID,
     "cluster.electionTimeout (test.yaml:1:29): must be between 1ms and"},
    {"cluster: {electionTimeout: 2h}", BROKER_CONFIG_E_INVALID,
     "cluster.electionTimeout (test.yaml:1:29): must be between 1ms and "
     "3600000ms, got 2h"},
    {"cluster: {electionTimeout: -5s}", BROKER_CONFIG_E_INVALID,
     "cluster.electionTimeout (test.yaml:1:29): must be between"},
    {"cluster: {electionTimeout: 5 s}", BROKER_CONFIG_E_TYPE,
     "cluster.electionTimeout (test.yaml:1:29): expected a duration"},
    {"cluster: {electionTimeout: 5sec}", BROKER_CONFIG_E_TYPE,
     "cluster.electionTimeout (test.yaml:1:29): expected a duration"},
    {"cluster: {electionTimeout: 1.0005s}", BROKER_CONFIG_E_INVALID,
     "cluster.electionTimeout (test.yaml:1:29): must be a whole number of "
     "milliseconds, got 1.0005s"},
    {"cluster: {heartbeatInterval: 0s}", BROKER_CONFIG_E_INVALID,
     "cluster.heartbeatInterval (test.yaml:1:29): must be between 1ms"},
    {"cluster: {heartbeatInterval: 2500ms}", BROKER_CONFIG_E_INVALID,
     "cluster.heartbeatInterval (test.yaml:1:29): must be at most half of "
     "electionTimeout (2500ms), got 2500ms"},
    {"cluster: {heartbeatInterval: 1251ms}", BROKER_CONFIG_E_INVALID,
     "cluster.heartbeatInterval (test.yaml:1:29): must be at most half of "
     "electionTimeout (2500ms), got 1251ms"},
    {"data: {snapshotPeriod: 0m}", BROKER_CONFIG_E_INVALID,
     "data.snapshotPeriod (test.yaml:1:26): must be between 1ms and"},
    {"data: {snapshotPeriod: 31d}", BROKER_CONFIG_E_INVALID,
     "data.snapshotPeriod (test.yaml:1:26): must be between 1ms and "
     "2592000000ms, got 31d"},
    /* booleans */
    {"cluster: {raft: {enablePriorityElection: maybe}}", BROKER_CONFIG_E_TYPE,
     "cluster.raft.enablePriorityElection (test.yaml:1:36): expected a "
     "boolean"},
    {"gateway: {enable: 2}", BROKER_CONFIG_E_TYPE,
     "gateway.enable (test.yaml:1:29): expected a boolean"},
    /* regions */
    {"cluster: {regions: 0}", BROKER_CONFIG_E_INVALID,
     "cluster.regions (test.yaml:1:29): must be between 1 and 8, got 0"},
    {"cluster: {regionId: 1}", BROKER_CONFIG_E_INVALID,
     "cluster.regionId (test.yaml:1:29): must be less than regions (1), got "
     "1"},
    {"cluster: {regions: 2, clusterSize: 2, replicationFactor: 2}",
     BROKER_CONFIG_E_INVALID,
     "cluster.clusterSize (test.yaml:1:41): must be even and at least 4 when "
     "regions is 2, got 2"},
    {"cluster: {regions: 2, clusterSize: 5, replicationFactor: 4}",
     BROKER_CONFIG_E_INVALID,
     "cluster.clusterSize (test.yaml:1:41): must be even and at least 4 when "
     "regions is 2, got 5"},
    {"cluster: {regions: 2, clusterSize: 6, replicationFactor: 3}",
     BROKER_CONFIG_E_INVALID,
     "cluster.replicationFactor (test.yaml:1:57): must be 4 when regions is "
     "2, got 3"},
    {"cluster: {regions: 3, clusterSize: 7, replicationFactor: 3}",
     BROKER_CONFIG_E_INVALID,
     "cluster.clusterSize (test.yaml:1:41): must be a multiple of regions "
     "(3), got 7"},
    {"cluster: {regions: 3, clusterSize: 6, replicationFactor: 4}",
     BROKER_CONFIG_E_INVALID,
     "cluster.replicationFactor (test.yaml:1:57): must be a multiple of "
     "regions (3), got 4"},
    {"cluster: {regions: 2, regionId: 1, nodeId: 2, clusterSize: 4, "
     "replicationFactor: 4}",
     BROKER_CONFIG_E_INVALID,
     "cluster.nodeId (test.yaml:1:54): must be regionId (1) modulo regions "
     "(2)"},
    {"cluster: {podOrdinal: 1}", BROKER_CONFIG_E_INVALID,
     "cluster.podOrdinal (test.yaml:1:29): gives nodeId 1 (podOrdinal 1 * "
     "regions 1 + regionId 0), which must be less than clusterSize (1)"},
    {"cluster: {podOrdinal: 256}", BROKER_CONFIG_E_INVALID,
     "cluster.podOrdinal (test.yaml:1:29): must be between 0 and 255, got "
     "256"},
    {"cluster: {regions: 2, regionId: 1, podOrdinal: 2, clusterSize: 4, "
     "replicationFactor: 4}",
     BROKER_CONFIG_E_INVALID,
     "cluster.podOrdinal (test.yaml:1:54): gives nodeId 5 (podOrdinal 2 * "
     "regions 2 + regionId 1), which must be less than clusterSize (4)"},
    /* contact points */
    {"cluster: {initialContactPoints: [host]}", BROKER_CONFIG_E_TYPE,
     "cluster.initialContactPoints (test.yaml:1:29): expected host:port"},
    {"cluster: {initialContactPoints: ['host:0']}", BROKER_CONFIG_E_TYPE,
     "got \"host:0\""},
    {"cluster: {initialContactPoints: ['host:65536']}", BROKER_CONFIG_E_TYPE,
     "got \"host:65536\""},
    {"cluster: {initialContactPoints: ['::1:26502']}", BROKER_CONFIG_E_TYPE,
     "got \"::1:26502\""},
    {"cluster: {initialContactPoints: [':26502']}", BROKER_CONFIG_E_TYPE,
     "got \":26502\""},
    {"cluster: {initialContactPoints: ['a b:1']}", BROKER_CONFIG_E_TYPE,
     "got \"a b:1\""},
    {"cluster: {initialContactPoints: [[a]]}", BROKER_CONFIG_E_TYPE,
     "expected a list of host:port strings"},
    {"cluster: {initialContactPoints: 'a:1,b'}", BROKER_CONFIG_E_TYPE,
     "cluster.initialContactPoints (test.yaml:1:29): expected host:port"},
    /* region namespaces and host name */
    {"cluster: {regionNamespaces: [Tandem_R0]}", BROKER_CONFIG_E_TYPE,
     "cluster.regionNamespaces (test.yaml:1:29): expected a namespace name "
     "(lower-case letters, digits and '-', at most 63 characters), got "
     "\"Tandem_R0\""},
    {"cluster: {regionNamespaces: [a, -b]}", BROKER_CONFIG_E_TYPE,
     "got \"-b\""},
    {"cluster: {regionNamespaces: [[a]]}", BROKER_CONFIG_E_TYPE,
     "expected a list of namespace names"},
    {"cluster: {regionNamespaces: [a, b]}", BROKER_CONFIG_E_INVALID,
     "cluster.regionNamespaces (test.yaml:1:29): has 2 entries, must have "
     "one per region (regions is 1)"},
    {"cluster: {regionNamespaces: 'a,b,c,d,e,f,g,h,i'}",
     BROKER_CONFIG_E_INVALID,
     "cluster.regionNamespaces (test.yaml:1:29): more than 8 entries"},
    {"cluster: {nodeIdFromHostname: sometimes}", BROKER_CONFIG_E_TYPE,
     "cluster.nodeIdFromHostname (test.yaml:1:29): expected a boolean"},
    {"hostname: 'a/b'", BROKER_CONFIG_E_INVALID,
     "hostname (test.yaml:1:19): must be empty or a host name"},
    /* network */
    {"network: {host: ''}", BROKER_CONFIG_E_INVALID,
     "network.host (test.yaml:1:29): must be a host name or IP address"},
    {"network: {host: 'a/b'}", BROKER_CONFIG_E_INVALID,
     "network.host (test.yaml:1:29): must be a host name or IP address"},
    {"network: {advertisedHost: 'a b'}", BROKER_CONFIG_E_INVALID,
     "network.advertisedHost (test.yaml:1:29): must be empty or a host name"},
    {"network: {commandApi: {port: 0}}", BROKER_CONFIG_E_INVALID,
     "network.commandApi.port (test.yaml:1:42): must be between 1 and 65535, "
     "got 0"},
    {"network: {internalApi: {port: 65536}}", BROKER_CONFIG_E_INVALID,
     "network.internalApi.port (test.yaml:1:43): must be between 1 and "
     "65535, got 65536"},
    {"network: {internalApi: {port: 26501}}", BROKER_CONFIG_E_INVALID,
     "network.internalApi.port (test.yaml:1:43): port 26501 is already used "
     "by tandem.broker.network.commandApi.port"},
    {"gateway: {network: {port: 9600}}", BROKER_CONFIG_E_INVALID,
     "gateway.network.port (test.yaml:1:39): port 9600 is already used by "
     "tandem.broker.management.server.port"},
    {"server: {port: 26500}", BROKER_CONFIG_E_INVALID,
     "server.port (test.yaml:1:28): port 26500 is already used by "
     "tandem.broker.gateway.network.port"},
    {"management: {server: {port: 26502}}", BROKER_CONFIG_E_INVALID,
     "management.server.port (test.yaml:1:41): port 26502 is already used by "
     "tandem.broker.network.internalApi.port"},
    {"network: {maxMessageSize: 1KB}", BROKER_CONFIG_E_INVALID,
     "network.maxMessageSize (test.yaml:1:29): must be between 4096 and "
     "1073741824 bytes, got 1KB"},
    {"network: {maxMessageSize: 4XB}", BROKER_CONFIG_E_TYPE,
     "network.maxMessageSize (test.yaml:1:29): expected a size"},
    {"network: {maxMessageSize: 99999999999TB}", BROKER_CONFIG_E_INVALID,
     "network.maxMessageSize (test.yaml:1:29): must be between"},
    /* data */
    {"data: {directory: ''}", BROKER_CONFIG_E_INVALID,
     "data.directory (test.yaml:1:26): must not be empty"},
    {"data: {logSegmentSize: 4MB}", BROKER_CONFIG_E_INVALID,
     "data.logSegmentSize (test.yaml:1:26): must be greater than "
     "network.maxMessageSize (4194304 bytes), got 4194304 bytes"},
    {"data: {logSegmentSize: 17GB}", BROKER_CONFIG_E_INVALID,
     "data.logSegmentSize (test.yaml:1:26): must be between 1048576 and "
     "17179869184 bytes, got 17GB"},
};

static void test_validation_table(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(bad_cases) / sizeof(bad_cases[0]); k++) {
        const struct bad_case *c = &bad_cases[k];
        char doc[512];
        int rv;
        snprintf(doc, sizeof(doc), "tandem: {broker: {%s}}\n", c->yaml);
        rv = load_str(doc, NULL);
        if (rv != c->code || strstr(err, c->want) == NULL ||
            strncmp(err, "config: tandem.broker.", 22) != 0) {
            fail_msg("case %zu (%s): got %d \"%s\", want %d \"%s\"", k, c->yaml,
                     rv, err, c->code, c->want);
        }
    }
}

/* Limits of lengths and counts. */
static void test_limits(void **state)
{
    static char doc[40000];
    static char big[BROKER_CONFIG_PATH_MAX + 2];
    (void)state;

    memset(big, 'd', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    snprintf(doc, sizeof(doc), "tandem.broker.data.directory: %s\n", big);
    assert_int_equal(load_str(doc, NULL), BROKER_CONFIG_E_TYPE);
    assert_err_has("data.directory (test.yaml:1:1): longer than 4095 bytes");
    big[sizeof(big) - 2] = '\0'; /* exactly the maximum */
    snprintf(doc, sizeof(doc), "tandem.broker.data.directory: %s\n", big);
    assert_int_equal(load_str(doc, NULL), 0);
    assert_int_equal(strlen(cfg.data_directory), BROKER_CONFIG_PATH_MAX);
    assert_round_trip();

    strcpy(doc, "tandem.broker.cluster.initialContactPoints:\n");
    for (int k = 0; k <= BROKER_CONFIG_CONTACT_POINTS_MAX; k++) {
        char line[64];
        snprintf(line, sizeof(line), "  - host-%d:26502\n", k);
        strcat(doc, line);
    }
    assert_int_equal(load_str(doc, NULL), BROKER_CONFIG_E_INVALID);
    assert_err_has("cluster.initialContactPoints (test.yaml:1:1): more than "
                   "64 entries");
    /* Drop the last entry: exactly the maximum. */
    *strstr(doc, "  - host-64:") = '\0';
    assert_int_equal(load_str(doc, NULL), 0);
    assert_int_equal(cfg.contact_point_count, BROKER_CONFIG_CONTACT_POINTS_MAX);
    assert_round_trip();

    /* Validation of a hand-filled struct names the key only. */
    broker_config_default(&cfg);
    cfg.command_api_port = 0;
    assert_int_equal(broker_config_validate(&cfg, err, sizeof(err)),
                     BROKER_CONFIG_E_INVALID);
    assert_string_equal(err, "config: tandem.broker.network.commandApi.port: "
                             "must be between 1 and 65535, got 0");
    broker_config_default(&cfg);
    cfg.node_id_derived = true;
    assert_int_equal(broker_config_validate(&cfg, err, sizeof(err)),
                     BROKER_CONFIG_E_INVALID);
    assert_err_has("cluster.nodeId: marked as derived");
    broker_config_default(&cfg);
    cfg.contact_point_count = 1;
    assert_int_equal(broker_config_validate(&cfg, err, sizeof(err)),
                     BROKER_CONFIG_E_INVALID);
    assert_err_has("initialContactPoints: entry 1 is not a valid host:port");

    /* A tiny error buffer is still NUL-terminated. */
    {
        char tiny[8];
        assert_int_equal(broker_config_load_string(&cfg, "x: 1", 4, NULL, NULL,
                                                   tiny, sizeof(tiny)),
                         BROKER_CONFIG_E_UNKNOWN_KEY);
        assert_string_equal(tiny, "config:");
    }
}

/* ------------------------------------------------------------------------
 * Value syntaxes and relaxed names
 * --------------------------------------------------------------------- */

static void test_value_syntaxes(void **state)
{
    static const struct {
        const char *text;
        uint64_t ms;
    } durations[] = {
        {"2500", 2500}, {"2500ms", 2500}, {"2.5s", 2500},    {"2.5S", 2500},
        {"1m", 60000},  {"1.5m", 90000},  {"1h", 3600000},   {"+3s", 3000},
        {"0.001s", 1},  {"1d", 86400000}, {"0.5h", 1800000}, {"7.25s", 7250},
    };
    static const struct {
        const char *text;
        uint64_t bytes;
    } sizes[] = {
        {"4096", 4096},  {"4096B", 4096},   {"64KB", 65536},
        {"64kb", 65536}, {"4MB", 4u << 20}, {"100MB", 100u << 20},
        {"5000", 5000},
    };
    static const struct {
        const char *text;
        bool value;
    } bools[] = {
        {"true", true}, {"True", true},   {"yes", true},    {"on", true},
        {"1", true},    {"false", false}, {"FALSE", false}, {"no", false},
        {"off", false}, {"0", false},
    };
    char doc[256];
    (void)state;

    for (size_t k = 0; k < sizeof(durations) / sizeof(durations[0]); k++) {
        snprintf(doc, sizeof(doc), "tandem.broker.data.snapshotPeriod: %s\n",
                 durations[k].text);
        assert_int_equal(load_str(doc, NULL), 0);
        assert_int_equal(cfg.snapshot_period_ms, durations[k].ms);
        assert_round_trip();
    }
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        snprintf(doc, sizeof(doc), "tandem.broker.network.maxMessageSize: %s\n",
                 sizes[k].text);
        assert_int_equal(load_str(doc, NULL), 0);
        assert_int_equal(cfg.max_message_bytes, sizes[k].bytes);
        assert_round_trip();
    }
    for (size_t k = 0; k < sizeof(bools) / sizeof(bools[0]); k++) {
        snprintf(doc, sizeof(doc), "tandem.broker.gateway.enable: %s\n",
                 bools[k].text);
        assert_int_equal(load_str(doc, NULL), 0);
        assert_int_equal(cfg.gateway_enable, bools[k].value);
    }
}

static void test_relaxed_names(void **state)
{
    (void)state;
    /* kebab-case, snake_case, other case, dotted keys and nesting mix. */
    assert_int_equal(load_str("Tandem:\n"
                              "  broker.cluster:\n"
                              "    cluster-size: 3\n"
                              "    replication_factor: 3\n"
                              "    NODEID: 2\n"
                              "  broker.network.command-api.port: 1234\n",
                              NULL),
                     0);
    assert_int_equal(cfg.cluster_size, 3);
    assert_int_equal(cfg.replication_factor, 3);
    assert_int_equal(cfg.node_id, 2);
    assert_int_equal(cfg.command_api_port, 1234);
    /* Quoted numbers and a list given as a comma-separated scalar. */
    assert_int_equal(load_str("tandem.broker.cluster:\n"
                              "  clusterSize: '3'\n"
                              "  initialContactPoints: 'a:1,b:2'\n",
                              NULL),
                     0);
    assert_int_equal(cfg.cluster_size, 3);
    assert_int_equal(cfg.contact_point_count, 2);
    /* An empty list and a null list. */
    assert_int_equal(
        load_str("tandem.broker.cluster.initialContactPoints: []\n", NULL), 0);
    assert_int_equal(cfg.contact_point_count, 0);
    assert_int_equal(
        load_str("tandem.broker.cluster.initialContactPoints: ~\n", NULL), 0);
    assert_int_equal(cfg.contact_point_count, 0);
    /* UTF-8 text is kept and round-trips. */
    assert_int_equal(load_str("tandem.broker.data.directory: "
                              "\"/d\\u00e9j\\u00e0 vu/\\\"x\\\\\"\n",
                              NULL),
                     0);
    assert_string_equal(cfg.data_directory, "/d\xc3\xa9j\xc3\xa0 vu/\"x\\");
    assert_round_trip();
}

/* ------------------------------------------------------------------------
 * podOrdinal
 * --------------------------------------------------------------------- */

static void test_pod_ordinal(void **state)
{
    char *env_region0[] = {"TANDEM_BROKER_CLUSTER_REGIONID=0", NULL};
    char *env_node[] = {"TANDEM_BROKER_CLUSTER_NODEID=1", NULL};
    char *env_pod[] = {"TANDEM_BROKER_CLUSTER_PODORDINAL=9", NULL};
    (void)state;

    assert_int_equal(
        broker_config_load(&cfg, "pod_ordinal.yaml", NULL, err, sizeof(err)),
        0);
    assert_true(cfg.pod_ordinal_set);
    assert_int_equal(cfg.pod_ordinal, 3);
    assert_true(cfg.node_id_derived);
    assert_int_equal(cfg.node_id, 3 * 2 + 1);
    assert_round_trip();

    /* Region 0 of the same StatefulSet ordinal: id 6. */
    assert_int_equal(broker_config_load(&cfg, "pod_ordinal.yaml", env_region0,
                                        err, sizeof(err)),
                     0);
    assert_int_equal(cfg.node_id, 6);

    /* An explicit nodeId wins over the formula (as in Helm's startup.sh). */
    assert_int_equal(broker_config_load(&cfg, "pod_ordinal.yaml", env_node, err,
                                        sizeof(err)),
                     0);
    assert_int_equal(cfg.node_id, 1);
    assert_false(cfg.node_id_derived);
    assert_round_trip();

    /* Out of range: the message names podOrdinal and its variable. */
    assert_int_equal(
        broker_config_load(&cfg, "pod_ordinal.yaml", env_pod, err, sizeof(err)),
        BROKER_CONFIG_E_INVALID);
    assert_string_equal(err, "config: tandem.broker.cluster.podOrdinal (env "
                             "TANDEM_BROKER_CLUSTER_PODORDINAL): gives nodeId "
                             "19 (podOrdinal 9 * regions 2 + regionId 1), "
                             "which must be less than clusterSize (8)");

    /* Single region: nodeId = podOrdinal. */
    assert_int_equal(load_str("tandem.broker.cluster:\n  clusterSize: 3\n"
                              "  podOrdinal: 2\n",
                              NULL),
                     0);
    assert_int_equal(cfg.node_id, 2);
}

/* ------------------------------------------------------------------------
 * nodeId from a StatefulSet host name
 * --------------------------------------------------------------------- */

static void test_hostname_ordinal(void **state)
{
    static const struct {
        const char *host;
        int ordinal; /* -1: rejected */
    } cases[] = {
        {"tandem-broker-0", 0},
        {"tandem-broker-2", 2},
        {"tandem-broker-17", 17},
        {"tandem-broker-255", 255},
        {"tandem-broker-2.tandem-broker.ns.svc.cluster.local", 2},
        {"b-7", 7},
        {"x-1.y-2", 1},            /* only the first label counts */
        {"tandem-broker-256", -1}, /* above BROKER_CLUSTER_SIZE_MAX - 1 */
        {"tandem-broker-99999999999999999999999", -1},
        {"tandem-broker-02", -1}, /* leading zero: not an ordinal */
        {"tandem-broker-", -1},
        {"tandem-broker", -1},
        {"broker3", -1},
        {"-3", -1},
        {"tandem-broker-+3", -1},
        {"tandem-broker-3x", -1},
        {"a b-1", -1},
        {"", -1},
        {"tandem.broker-1", -1}, /* the '-' is not in the first label */
    };
    (void)state;

    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        uint32_t ordinal = 12345;
        int rv = broker_config_hostname_ordinal(cases[k].host, &ordinal);
        if (cases[k].ordinal < 0) {
            if (rv != BROKER_CONFIG_E_INVALID || ordinal != 12345) {
                fail_msg("\"%s\": accepted as %u", cases[k].host, ordinal);
            }
        } else if (rv != 0 || ordinal != (uint32_t)cases[k].ordinal) {
            fail_msg("\"%s\": got %d/%u, want %d", cases[k].host, rv, ordinal,
                     cases[k].ordinal);
        }
    }
}

static void test_node_id_from_hostname(void **state)
{
    char *env_pod3[] = {"HOSTNAME=tandem-broker-3", NULL};
    char *env_both[] = {"HOSTNAME=tandem-broker-3",
                        "TANDEM_BROKER_HOSTNAME=tandem-broker-1", NULL};
    char *env_node[] = {"TANDEM_BROKER_CLUSTER_NODEID=1",
                        "HOSTNAME=tandem-broker-3", NULL};
    char *env_bad[] = {"HOSTNAME=laptop", NULL};
    char *env_big[] = {"HOSTNAME=tandem-broker-4", NULL};
    char *env_pod_key[] = {"TANDEM_BROKER_CLUSTER_PODORDINAL=1",
                           "HOSTNAME=tandem-broker-3", NULL};
    char *env_flag[] = {"TANDEM_BROKER_CLUSTER_NODEIDFROMHOSTNAME=true",
                        "HOSTNAME=web-2.example.org", NULL};
    char *env_empty[] = {"HOSTNAME=", NULL};
    char host[300];
    (void)state;

    /* Region 1, pod tandem-broker-3: nodeId 3 * 2 + 1. */
    assert_int_equal(
        broker_config_load(&cfg, "hostname.yaml", env_pod3, err, sizeof(err)),
        0);
    assert_true(cfg.node_id_from_hostname);
    assert_true(cfg.pod_ordinal_set);
    assert_true(cfg.pod_ordinal_from_hostname);
    assert_int_equal(cfg.pod_ordinal, 3);
    assert_true(cfg.node_id_derived);
    assert_int_equal(cfg.node_id, 7);
    assert_string_equal(cfg.hostname, "tandem-broker-3");
    assert_int_equal(broker_config_validate(&cfg, err, sizeof(err)), 0);
    assert_round_trip();
    /* A hand-changed host name no longer matches the derived ordinal. */
    snprintf(cfg.hostname, sizeof(cfg.hostname), "tandem-broker-2");
    assert_int_equal(broker_config_validate(&cfg, err, sizeof(err)),
                     BROKER_CONFIG_E_INVALID);
    assert_string_equal(err, "config: tandem.broker.cluster.podOrdinal: "
                             "marked as taken from the host name but does "
                             "not match tandem.broker.hostname");

    /* Every pod of both regions: region r, ordinal o -> o * 2 + r; the
     * two StatefulSets together give every id 0..7 once. */
    {
        unsigned seen = 0;
        for (unsigned r = 0; r < 2; r++) {
            for (unsigned o = 0; o < 4; o++) {
                char h[64];
                char reg[64];
                char *env[] = {h, reg, NULL};
                snprintf(h, sizeof(h), "HOSTNAME=tandem-broker-%u", o);
                snprintf(reg, sizeof(reg), "TANDEM_BROKER_CLUSTER_REGIONID=%u",
                         r);
                assert_int_equal(broker_config_load(&cfg, "hostname.yaml", env,
                                                    err, sizeof(err)),
                                 0);
                assert_int_equal(cfg.node_id, o * 2 + r);
                assert_int_equal(cfg.node_id % 2, r);
                seen |= 1u << cfg.node_id;
            }
        }
        assert_int_equal(seen, 0xff);
    }

    /* TANDEM_BROKER_HOSTNAME (the `hostname` key) wins over HOSTNAME. */
    assert_int_equal(
        broker_config_load(&cfg, "hostname.yaml", env_both, err, sizeof(err)),
        0);
    assert_int_equal(cfg.node_id, 3);
    assert_string_equal(cfg.hostname, "tandem-broker-1");

    /* An explicit nodeId wins, and the host name is not even read. */
    assert_int_equal(
        broker_config_load(&cfg, "hostname.yaml", env_node, err, sizeof(err)),
        0);
    assert_int_equal(cfg.node_id, 1);
    assert_false(cfg.node_id_derived);
    assert_false(cfg.pod_ordinal_set);
    assert_string_equal(cfg.hostname, "");
    assert_round_trip();

    /* A host name that is not a pod's. */
    assert_int_equal(
        broker_config_load(&cfg, "hostname.yaml", env_bad, err, sizeof(err)),
        BROKER_CONFIG_E_INVALID);
    assert_string_equal(
        err, "config: tandem.broker.cluster.nodeIdFromHostname "
             "(hostname.yaml:11:3): host name \"laptop\" (from env HOSTNAME) "
             "does not end in -<ordinal> (0 to 255, no leading zeros) as a "
             "StatefulSet pod's does, e.g. tandem-broker-2");
    assert_int_equal(load_str("tandem.broker:\n  hostname: db-01\n"
                              "  cluster.nodeIdFromHostname: on\n",
                              NULL),
                     BROKER_CONFIG_E_INVALID);
    assert_err_has("host name \"db-01\" (from tandem.broker.hostname "
                   "(test.yaml:2:3)) does not end in -<ordinal>");

    /* An ordinal beyond the cluster: 4 * 2 + 1 >= 8. */
    assert_int_equal(
        broker_config_load(&cfg, "hostname.yaml", env_big, err, sizeof(err)),
        BROKER_CONFIG_E_INVALID);
    assert_string_equal(
        err, "config: tandem.broker.cluster.nodeIdFromHostname "
             "(hostname.yaml:11:3): host name \"tandem-broker-4\" gives "
             "nodeId 9 (podOrdinal 4 * regions 2 + regionId 1), which must "
             "be less than clusterSize (8)");

    /* podOrdinal and nodeIdFromHostname are two answers to one question. */
    assert_int_equal(broker_config_load(&cfg, "hostname.yaml", env_pod_key, err,
                                        sizeof(err)),
                     BROKER_CONFIG_E_INVALID);
    assert_string_equal(err,
                        "config: tandem.broker.cluster.nodeIdFromHostname "
                        "(hostname.yaml:11:3): conflicts with "
                        "tandem.broker.cluster.podOrdinal (env "
                        "TANDEM_BROKER_CLUSTER_PODORDINAL): set one of them");

    /* The flag from the environment; a fully qualified host name. */
    assert_int_equal(
        load_str("tandem.broker.cluster.clusterSize: 3\n", env_flag), 0);
    assert_int_equal(cfg.node_id, 2);
    assert_string_equal(cfg.hostname, "web-2.example.org");
    assert_round_trip();

    /* Without HOSTNAME (an empty one counts as missing): gethostname(). */
    assert_int_equal(gethostname(host, sizeof(host)), 0);
    host[sizeof(host) - 1] = '\0';
    {
        uint32_t ordinal = 0;
        int rv = load_str("tandem.broker.cluster:\n  clusterSize: 256\n"
                          "  nodeIdFromHostname: true\n",
                          env_empty);
        if (broker_config_hostname_ordinal(host, &ordinal) == 0) {
            assert_int_equal(rv, 0);
            assert_int_equal(cfg.node_id, ordinal);
            assert_string_equal(cfg.hostname, host);
        } else {
            assert_int_equal(rv, BROKER_CONFIG_E_INVALID);
            assert_err_has("(from gethostname()) does not end in");
        }
    }

    /* Off by default: the host name is ignored. */
    assert_int_equal(
        load_str("tandem.broker.cluster.clusterSize: 8\n", env_pod3), 0);
    assert_int_equal(cfg.node_id, 0);
    assert_false(cfg.pod_ordinal_set);
}

/* ------------------------------------------------------------------------
 * Contact points from a template
 * --------------------------------------------------------------------- */

static void test_contact_template(void **state)
{
    char *env_pod0[] = {"HOSTNAME=tandem-broker-0",
                        "TANDEM_BROKER_CLUSTER_REGIONID=0", NULL};
    char *env_all[] = {
        "TANDEM_BROKER_CLUSTER_CLUSTERSIZE=4",
        "TANDEM_BROKER_CLUSTER_REPLICATIONFACTOR=4",
        "TANDEM_BROKER_CLUSTER_REGIONS=2",
        "TANDEM_BROKER_CLUSTER_INITIALCONTACTPOINTSTEMPLATE="
        "t-{region}-{ordinal}.{namespace}.svc:26502",
        "TANDEM_BROKER_CLUSTER_REGIONNAMESPACES= london , paris ",
        NULL};
    char *env_list[] = {"TANDEM_BROKER_CLUSTER_INITIALCONTACTPOINTS=a:1",
                        "HOSTNAME=tandem-broker-0", NULL};
    char buf[64];
    (void)state;

    assert_int_equal(
        broker_config_load(&cfg, "hostname.yaml", env_pod0, err, sizeof(err)),
        0);
    assert_int_equal(cfg.node_id, 0);
    assert_true(cfg.contact_points_derived);
    assert_int_equal(cfg.contact_point_count, 8);
    /* Ids alternate regions: even ids region 0, odd ids region 1; the
     * ordinal is id / 2. */
    for (uint32_t n = 0; n < 8; n++) {
        char want[128];
        snprintf(want, sizeof(want),
                 "tandem-broker-%u.tandem-broker.tandem-region%u.svc.cluster."
                 "local",
                 n / 2, n % 2);
        assert_string_equal(cfg.contact_points[n].host, want);
        assert_int_equal(cfg.contact_points[n].port, 26502);
    }
    assert_round_trip();

    /* The same from the environment (list as comma-separated string). */
    assert_int_equal(load_str(NULL, env_all), 0);
    assert_int_equal(cfg.contact_point_count, 4);
    assert_string_equal(cfg.contact_points[0].host, "t-0-0.london.svc");
    assert_string_equal(cfg.contact_points[1].host, "t-1-0.paris.svc");
    assert_string_equal(cfg.contact_points[2].host, "t-0-1.london.svc");
    assert_string_equal(cfg.contact_points[3].host, "t-1-1.paris.svc");
    assert_round_trip();

    /* A hand-changed entry no longer validates. */
    cfg.contact_points[2].port = 1;
    assert_int_equal(broker_config_validate(&cfg, err, sizeof(err)),
                     BROKER_CONFIG_E_INVALID);
    assert_string_equal(err, "config: tandem.broker.cluster."
                             "initialContactPoints: entry 3 does not equal "
                             "the expansion of initialContactPointsTemplate");

    /* {nodeId}, single region, IPv6 literal. */
    assert_int_equal(
        load_str("tandem.broker.cluster:\n  clusterSize: 3\n"
                 "  initialContactPointsTemplate: '[fd00::{nodeId}]:26502'\n",
                 NULL),
        0);
    assert_int_equal(cfg.contact_point_count, 3);
    assert_string_equal(cfg.contact_points[2].host, "fd00::2");
    assert_round_trip();

    /* The expander on its own. */
    assert_int_equal(broker_config_contact_expand(&cfg, 1, buf, sizeof(buf),
                                                  err, sizeof(err)),
                     0);
    assert_string_equal(buf, "[fd00::1]:26502");
    assert_int_equal(
        broker_config_contact_expand(&cfg, 1, buf, 8, err, sizeof(err)),
        BROKER_CONFIG_E_INVALID);
    assert_string_equal(err, "expands to more than 7 characters");

    /* Errors name the template key. */
    {
        static const struct {
            const char *yaml;
            const char *want;
        } bad[] = {
            {"clusterSize: 2, initialContactPointsTemplate: "
             "'b-{ordinal}{pod}:1'",
             "(test.yaml:1:41): unknown placeholder {pod} (known: {nodeId}, "
             "{ordinal}, {region}, {namespace})"},
            {"clusterSize: 2, initialContactPointsTemplate: 'b-{ordinal:1'",
             "'{' at character 3 is not closed"},
            {"clusterSize: 2, initialContactPointsTemplate: 'b}-{ordinal}:1'",
             "'}' at character 2 has no '{'"},
            {"clusterSize: 2, initialContactPointsTemplate: 'b:1'",
             "must contain {ordinal} or {nodeId}, else every broker gets the "
             "same address"},
            {"clusterSize: 2, initialContactPointsTemplate: 'b-{ordinal}:0'",
             "gives \"b-0:0\" for nodeId 0, which is not a host:port"},
            {"clusterSize: 4, replicationFactor: 4, regions: 2, "
             "initialContactPointsTemplate: 'b-{ordinal}.{namespace}:1', "
             "regionNamespaces: [r0]",
             "{namespace} needs tandem.broker.cluster.regionNamespaces to "
             "name region 1's namespace (it has 1 entries)"},
            {"clusterSize: 65, initialContactPointsTemplate: 'b-{nodeId}:1'",
             "gives one contact point per broker, and clusterSize (65) is "
             "more than 64"},
            {"clusterSize: 2, initialContactPointsTemplate: 'b-{nodeId}:1', "
             "initialContactPoints: ['a:1']",
             "conflicts with tandem.broker.cluster.initialContactPoints "
             "(test.yaml:1:87): set one of them"},
        };
        for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
            char doc[512];
            int rv;
            snprintf(doc, sizeof(doc), "tandem.broker.cluster: {%s}\n",
                     bad[k].yaml);
            rv = load_str(doc, NULL);
            if (rv != BROKER_CONFIG_E_INVALID ||
                strstr(err, bad[k].want) == NULL ||
                strstr(err, "config: tandem.broker.cluster."
                            "initialContactPointsTemplate (") != err) {
                fail_msg("case %zu: got %d \"%s\", want \"%s\"", k, rv, err,
                         bad[k].want);
            }
        }
    }
    /* The list from the environment conflicts with the file's template. */
    assert_int_equal(
        broker_config_load(&cfg, "hostname.yaml", env_list, err, sizeof(err)),
        BROKER_CONFIG_E_INVALID);
    assert_err_has("conflicts with tandem.broker.cluster.initialContactPoints "
                   "(env TANDEM_BROKER_CLUSTER_INITIALCONTACTPOINTS)");
}

/* ------------------------------------------------------------------------
 * Printing
 * --------------------------------------------------------------------- */

static void test_print_format(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out;
    (void)state;

    broker_config_default(&cfg);
    out = open_memstream(&buf, &len);
    assert_non_null(out);
    assert_int_equal(broker_config_print(&cfg, out), 0);
    fclose(out);
    assert_non_null(strstr(buf, "tandem:\n  broker:\n    cluster:\n"
                                "      nodeId: 0\n"));
    assert_non_null(strstr(buf, "      electionTimeout: 2500ms\n"
                                "      heartbeatInterval: 250ms\n"
                                "      raft:\n"
                                "        enablePriorityElection: true\n"
                                "      regions: 1\n"));
    assert_non_null(strstr(buf, "      initialContactPoints: []\n"));
    assert_non_null(strstr(buf, "    network:\n      host: \"0.0.0.0\"\n"));
    assert_non_null(strstr(buf, "      maxMessageSize: 4MB\n"));
    assert_non_null(strstr(buf, "    server:\n      port: 8080\n"
                                "    management:\n      server:\n"
                                "        port: 9600\n"));
    assert_non_null(strstr(buf, "      snapshotPeriod: 5m\n"));
    assert_null(strstr(buf, "podOrdinal"));
    free(buf);
    assert_round_trip();

    /* A derived nodeId is printed as a comment; podOrdinal is printed. */
    assert_int_equal(
        broker_config_load(&cfg, "pod_ordinal.yaml", NULL, err, sizeof(err)),
        0);
    out = open_memstream(&buf, &len);
    assert_int_equal(broker_config_print(&cfg, out), 0);
    fclose(out);
    assert_non_null(
        strstr(buf, "      # nodeId: 7 (derived from podOrdinal)\n"));
    assert_non_null(strstr(buf, "      podOrdinal: 3\n"));
    free(buf);

    /* A pod ordinal from the host name and derived contact points are
     * printed as comments; the host name and the template are printed. */
    {
        char *env[] = {"HOSTNAME=tandem-broker-2", NULL};
        assert_int_equal(
            broker_config_load(&cfg, "hostname.yaml", env, err, sizeof(err)),
            0);
    }
    out = open_memstream(&buf, &len);
    assert_int_equal(broker_config_print(&cfg, out), 0);
    fclose(out);
    assert_non_null(
        strstr(buf, "      # nodeId: 5 (derived from podOrdinal)\n"));
    assert_non_null(
        strstr(buf, "      # podOrdinal: 2 (from the host name)\n"
                    "      nodeIdFromHostname: true\n"
                    "      initialContactPointsTemplate: \"tandem-broker-"
                    "{ordinal}.tandem-broker.{namespace}.svc.cluster.local:"
                    "26502\"\n"
                    "      regionNamespaces:\n"
                    "        - \"tandem-region0\"\n"
                    "        - \"tandem-region1\"\n"));
    assert_non_null(strstr(
        buf, "      # initialContactPoints: (derived from "
             "initialContactPointsTemplate)\n"
             "      #   - \"tandem-broker-0.tandem-broker.tandem-region0.svc."
             "cluster.local:26502\"\n"));
    assert_non_null(strstr(buf, "    hostname: \"tandem-broker-2\"\n"));
    free(buf);
}

/* exporters.<id>.type / .path / .args.* from YAML and the environment. */
static void test_exporters(void **state)
{
    char *env[] = {"TANDEM_BROKER_EXPORTERS_REGION1_TYPE=elasticsearch",
                   "TANDEM_BROKER_EXPORTERS_REGION1_ARGS_BULK_SIZE=5",
                   "TANDEM_BROKER_EXPORTERS_REGION0_ARGS_BATCH_SIZE=7", NULL};
    (void)state;
    assert_int_equal(load_str("tandem:\n  broker:\n    exporters:\n"
                              "      Region0:\n        type: postgresql\n"
                              "        args:\n          url: h\n"
                              "          batch:\n            size: 100\n",
                              env),
                     0);
    assert_int_equal(cfg.exporter_count, 2);
    assert_string_equal(cfg.exporters[0].id, "region0");
    assert_string_equal(cfg.exporters[0].type, "postgresql");
    assert_int_equal(cfg.exporters[0].arg_count, 2);
    assert_string_equal(cfg.exporters[0].args[0].key, "url");
    assert_string_equal(cfg.exporters[0].args[1].key, "batch.size");
    assert_string_equal(cfg.exporters[0].args[1].value, "7"); /* env wins */
    assert_string_equal(cfg.exporters[1].id, "region1");
    assert_string_equal(cfg.exporters[1].type, "elasticsearch");
    assert_string_equal(cfg.exporters[1].args[0].key, "bulk.size");
    /* Errors name the exporter and the problem. */
    assert_int_equal(load_str("tandem:\n  broker:\n    exporters:\n"
                              "      a_b:\n        type: x\n",
                              NULL),
                     BROKER_CONFIG_E_INVALID);
    assert_err_has("letters, digits and '-'");
    assert_int_equal(load_str("tandem:\n  broker:\n    exporters:\n"
                              "      ab:\n        klass: x\n",
                              NULL),
                     BROKER_CONFIG_E_UNKNOWN_KEY);
    assert_err_has("exporters.ab.klass: unknown key");
    assert_int_equal(load_str("tandem:\n  broker:\n    exporters:\n"
                              "      ab:\n        args:\n          u: 1\n",
                              NULL),
                     BROKER_CONFIG_E_INVALID);
    assert_err_has("exporters.ab: needs a type");
    assert_int_equal(load_str("tandem:\n  broker:\n    exporters:\n"
                              "      ab:\n        type: [1]\n",
                              NULL),
                     BROKER_CONFIG_E_TYPE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_load_full_file),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_syntax_error),
        cmocka_unit_test(test_nesting_limit),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_exporters),
        cmocka_unit_test(test_env_overrides_yaml),
        cmocka_unit_test(test_env_errors_name_variable),
        cmocka_unit_test(test_validation_table),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_value_syntaxes),
        cmocka_unit_test(test_relaxed_names),
        cmocka_unit_test(test_pod_ordinal),
        cmocka_unit_test(test_hostname_ordinal),
        cmocka_unit_test(test_node_id_from_hostname),
        cmocka_unit_test(test_contact_template),
        cmocka_unit_test(test_print_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
