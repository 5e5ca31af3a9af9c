/* config.h: the broker's configuration: defaults, YAML file, environment.
 *
 * Data flow of broker_config_load():
 *
 *     built-in defaults
 *       -> YAML file (keys under the root `tandem.broker`)
 *       -> environment (TANDEM_BROKER_<PATH>, the upper-cased dotted path
 *          with dots replaced by underscores)
 *       -> derived values: podOrdinal from the host name
 *          (cluster.nodeIdFromHostname), nodeId from podOrdinal, and
 *          initialContactPoints from cluster.initialContactPointsTemplate
 *       -> validation of every value
 *       -> struct broker_config (plain values, no pointers, no allocation)
 *
 * Every key, its type, default, environment variable and rule is listed in
 * docs/configuration.md. The names follow Zeebe's (zeebe.broker.* there,
 * tandem.broker.* here); the Spring server ports of Zeebe (`server.port`,
 * `management.server.port`) sit under the same root, so that every setting
 * has the TANDEM_BROKER_ prefix.
 *
 * Errors are returned as negative BROKER_CONFIG_E_* codes, and described in
 * the caller's buffer as one line that names the YAML path, where the value
 * came from (YAML line, or the environment variable) and the reason, e.g.
 *
 *   config: tandem.broker.cluster.replicationFactor (env
 *   TANDEM_BROKER_CLUSTER_REPLICATIONFACTOR): must be between 1 and
 *   clusterSize (5), got 7
 *
 * Loading is pure apart from reading the file named by the caller and,
 * only when cluster.nodeIdFromHostname needs a host name that neither the
 * `hostname` key nor HOSTNAME in the passed environment gives, one call
 * of gethostname(): the environment is passed in, nothing is cached, there
 * are no globals.
 */
#ifndef TANDEM_BROKER_CONFIG_H
#define TANDEM_BROKER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "broker/placement.h"

/* Error codes. Generated with the message table from one X-macro list. */
#define BROKER_CONFIG_ERRNO_MAP(X)                                             \
    X(IO, -1, "the configuration file cannot be read")                         \
    X(SYNTAX, -2, "the YAML is malformed or uses an unsupported construct")    \
    X(UNKNOWN_KEY, -3, "unknown configuration key")                            \
    X(TYPE, -4, "a value does not parse as the key's type")                    \
    X(INVALID, -5, "a value breaks a validation rule")                         \
    X(NOMEM, -6, "out of memory")

enum broker_config_error {
#define BROKER_CONFIG_ERRNO_ENUM(name, code, msg) BROKER_CONFIG_E_##name = code,
    BROKER_CONFIG_ERRNO_MAP(BROKER_CONFIG_ERRNO_ENUM)
#undef BROKER_CONFIG_ERRNO_ENUM
};

/* Limits. String limits exclude the terminating NUL. */
#define BROKER_CONFIG_HOST_MAX 253          /* a DNS name, or an IP literal */
#define BROKER_CONFIG_NAME_MAX 255          /* cluster name */
#define BROKER_CONFIG_PATH_MAX 4095         /* data directory */
#define BROKER_CONFIG_CONTACT_POINTS_MAX 64 /* initialContactPoints entries */
#define BROKER_CONFIG_REGIONS_MAX 8
#define BROKER_CONFIG_TEMPLATE_MAX 255 /* initialContactPointsTemplate */
#define BROKER_CONFIG_NAMESPACE_MAX 63 /* a Kubernetes namespace (label) */
#define BROKER_CONFIG_FILE_BYTES_MAX (1u << 20) /* largest YAML file */

/* Durations are in milliseconds, sizes in bytes. */
#define BROKER_CONFIG_DURATION_MS_MAX (UINT64_C(30) * 24 * 3600 * 1000)

/* Defaults (Zeebe 8.4 defaults, see docs/configuration.md). */
#define BROKER_CONFIG_COMMAND_API_PORT 26501
#define BROKER_CONFIG_INTERNAL_API_PORT 26502
#define BROKER_CONFIG_GATEWAY_PORT 26500
#define BROKER_CONFIG_MANAGEMENT_PORT 9600
#define BROKER_CONFIG_REST_PORT 8080

/* A cluster member to contact at startup. host is a DNS name, an IPv4
 * literal or an IPv6 literal (without brackets; printed with them). */
struct broker_contact_point {
    char host[BROKER_CONFIG_HOST_MAX + 1];
    uint16_t port;
};

/* The effective configuration. About 22 KiB: allocate it statically, on
 * the heap, or on a normal thread stack. Field comments give the YAML key
 * below tandem.broker. */
/* One configured exporter (exporters.<id>.type / .path / .args.*). */
#define BROKER_EXPORTERS_MAX 8
#define BROKER_EXPORTER_ARGS_MAX 32
#define BROKER_EXPORTER_ID_MAX 63
#define BROKER_EXPORTER_TEXT_MAX 1023
struct broker_exporter_arg {
    char key[128];                           /* flattened: "bulk.size" */
    char value[BROKER_EXPORTER_TEXT_MAX + 1];
};
struct broker_exporter_config {
    char id[BROKER_EXPORTER_ID_MAX + 1];     /* lower case */
    char type[64];                           /* built-in type name */
    char path[BROKER_EXPORTER_TEXT_MAX + 1]; /* shared object, or "" */
    uint32_t arg_count;
    struct broker_exporter_arg args[BROKER_EXPORTER_ARGS_MAX];
};

struct broker_config {
    /* cluster */
    uint32_t node_id;             /* cluster.nodeId, < cluster_size */
    uint32_t cluster_size;        /* cluster.clusterSize */
    uint32_t partitions_count;    /* cluster.partitionsCount */
    uint32_t replication_factor;  /* cluster.replicationFactor */
    uint32_t contact_point_count; /* entries used in contact_points */
    struct broker_contact_point   /* cluster.initialContactPoints */
        contact_points[BROKER_CONFIG_CONTACT_POINTS_MAX];
    char cluster_name[BROKER_CONFIG_NAME_MAX + 1]; /* cluster.clusterName */
    uint64_t election_timeout_ms;                  /* cluster.electionTimeout */
    uint64_t heartbeat_interval_ms; /* cluster.heartbeatInterval */
    bool priority_election;         /* cluster.raft.enablePriorityElection */
    uint32_t regions;               /* cluster.regions */
    uint32_t region_id;             /* cluster.regionId, < regions */
    bool pod_ordinal_set;           /* cluster.podOrdinal was given */
    uint32_t pod_ordinal;           /* cluster.podOrdinal, if set */
    bool node_id_derived;           /* node_id = pod_ordinal * regions +
                                       region_id (nodeId was not given) */
    bool node_id_from_hostname;     /* cluster.nodeIdFromHostname */
    bool pod_ordinal_from_hostname; /* pod_ordinal was parsed from
                                       hostname (podOrdinal not given) */
    /* cluster.initialContactPointsTemplate; "" means: none */
    char contact_point_template[BROKER_CONFIG_TEMPLATE_MAX + 1];
    uint32_t region_namespace_count; /* entries used in region_namespaces */
    char region_namespaces           /* cluster.regionNamespaces */
        [BROKER_CONFIG_REGIONS_MAX][BROKER_CONFIG_NAMESPACE_MAX + 1];
    bool contact_points_derived; /* contact_points expanded from
                                    contact_point_template */
    /* hostname: the host name nodeIdFromHostname reads; "" means not
     * needed yet. Filled by loading (from HOSTNAME or gethostname()) when
     * the derivation needs it and the key was not given. */
    char hostname[BROKER_CONFIG_HOST_MAX + 1];

    /* network */
    char host[BROKER_CONFIG_HOST_MAX + 1]; /* network.host */
    /* network.advertisedHost; "" means: derive it at startup */
    char advertised_host[BROKER_CONFIG_HOST_MAX + 1];
    uint16_t command_api_port;  /* network.commandApi.port */
    uint16_t internal_api_port; /* network.internalApi.port */
    uint64_t max_message_bytes; /* network.maxMessageSize */

    /* embedded gateway */
    bool gateway_enable;   /* gateway.enable */
    uint16_t gateway_port; /* gateway.network.port (gRPC) */

    /* HTTP servers */
    uint16_t rest_port;       /* server.port (REST API, gateway) */
    uint16_t management_port; /* management.server.port (actuator) */

    /* data */
    char data_directory[BROKER_CONFIG_PATH_MAX + 1]; /* data.directory */
    uint64_t snapshot_period_ms;                     /* data.snapshotPeriod */
    uint64_t log_segment_bytes;                      /* data.logSegmentSize */
    /* exporters.<id>.* (YAML) or TANDEM_BROKER_EXPORTERS_<ID>_* */
    uint32_t exporter_count;
    struct broker_exporter_config exporters[BROKER_EXPORTERS_MAX];
};

/* Fills *cfg with the built-in defaults (a valid single-node cluster).
 * cfg is caller-owned. Cannot fail. */
void broker_config_default(struct broker_config *cfg);

/* Loads the configuration: defaults, then the YAML file at yaml_path (NULL:
 * no file), then the environment, then derived values; then validates.
 *
 *   cfg:       caller-owned output; on error its content is unspecified.
 *   yaml_path: borrowed; NULL to use defaults and environment only. The
 *              file may hold at most BROKER_CONFIG_FILE_BYTES_MAX bytes.
 *   envp:      borrowed NULL-terminated "NAME=value" array (e.g. environ);
 *              NULL means an empty environment. Only names starting with
 *              TANDEM_BROKER_ are read; any such name that is not a key is
 *              an error (a typo must not go unnoticed).
 *   err:       caller buffer receiving a one-line message on error (always
 *              NUL-terminated when err_len > 0); may be NULL if err_len is 0.
 *
 * Returns 0, or BROKER_CONFIG_E_IO (file unreadable or too big),
 * BROKER_CONFIG_E_SYNTAX (malformed YAML, with line and column; anchors or
 * aliases; more than one document; a key given twice; nesting deeper than
 * 16; a root that is not a mapping), BROKER_CONFIG_E_UNKNOWN_KEY,
 * BROKER_CONFIG_E_TYPE (e.g. "abc" for an integer, a mapping where a value
 * belongs, a string too long), BROKER_CONFIG_E_INVALID (a rule of
 * docs/configuration.md is broken), BROKER_CONFIG_E_NOMEM. */
int broker_config_load(struct broker_config *cfg, const char *yaml_path,
                       char *const *envp, char *err, size_t err_len);

/* As broker_config_load(), with the YAML document given in memory: yaml
 * points to yaml_len bytes (borrowed; no NUL needed; yaml_len 0 means no
 * document). source names the document in messages (e.g. the file name);
 * NULL reads as "<string>". Never reads files. */
int broker_config_load_string(struct broker_config *cfg, const char *yaml,
                              size_t yaml_len, const char *source,
                              char *const *envp, char *err, size_t err_len);

/* Checks every rule of docs/configuration.md on an already filled *cfg
 * (borrowed, not modified). Messages name the YAML path only. Returns 0 or
 * BROKER_CONFIG_E_INVALID. broker_config_load() calls it. */
int broker_config_validate(const struct broker_config *cfg, char *err,
                           size_t err_len);

/* Writes the configuration as a YAML document under tandem.broker that
 * broker_config_load() reads back to an equal configuration (nodeId is
 * written explicitly, so a derived nodeId reads back as given). cfg and out
 * are borrowed. Returns 0, or BROKER_CONFIG_E_IO if writing failed. */
int broker_config_print(const struct broker_config *cfg, FILE *out);

/* Fills *placement (caller-owned) with the round-robin placement of this
 * configuration: members 0..clusterSize-1, partitionsCount partitions,
 * replicationFactor replicas. cfg must be valid. Returns 0 or a
 * BROKER_PLACEMENT_E_* code. */
int broker_config_placement(const struct broker_config *cfg,
                            struct broker_placement *placement);

/* Parses the pod ordinal out of a StatefulSet pod's host name
 * "<name>-<ordinal>" (only the first DNS label counts, so
 * "tandem-broker-2.tandem-broker.ns.svc" works too): the digits after the
 * last '-', without leading zeros, at most BROKER_CLUSTER_SIZE_MAX - 1.
 * hostname is borrowed; *ordinal is written on success only. Returns 0 or
 * BROKER_CONFIG_E_INVALID. */
int broker_config_hostname_ordinal(const char *hostname, uint32_t *ordinal);

/* Expands cfg->contact_point_template for broker node_id into out (cap
 * bytes, NUL-terminated): {nodeId} is node_id, {region} is node_id %
 * regions, {ordinal} is node_id / regions, {namespace} is
 * region_namespaces[node_id % regions]. cfg and out are borrowed. Returns
 * 0, or BROKER_CONFIG_E_INVALID with a reason in err (unknown or unclosed
 * placeholder, {namespace} without a namespace for that region, result
 * longer than cap - 1). Does not check that the result is a host:port. */
int broker_config_contact_expand(const struct broker_config *cfg,
                                 uint32_t node_id, char *out, size_t cap,
                                 char *err, size_t err_len);

/* A static description of an error code; "unknown error" for other
 * values. Never NULL. */
const char *broker_config_strerror(int code);

#endif
