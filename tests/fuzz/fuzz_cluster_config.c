/* fuzz_cluster_config.c: fuzz target of the cluster configuration
 * decoders (broker/cluster_config.c).
 *
 * Every input goes to both decoders: cluster_config_decode() (the packed
 * protobuf that gossip carries from other brokers) and
 * cluster_config_from_json() (the cluster-config.json file).
 *
 * Checked on every input: neither decoder crashes; an error comes with a
 * non-empty, NUL-terminated message and a zeroed output; a success
 * validates, re-encodes, decodes back to an equal configuration whose
 * encoding is byte-identical (canonical form), and renders as the
 * GET /actuator/cluster JSON. A decoded configuration is then planned
 * against a request drawn from the input's first bytes (scale, force,
 * join, leave, exporters): the plan is 202 with a valid expected
 * configuration, or 400/409 with a message; a 202 plan with operations is
 * started and run to its end, staying valid at every step.
 *
 * The planner calls broker/placement.c (broker_cluster_config_lib links
 * broker_config_lib for it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/cluster_config.h"
#include "fuzz.h"

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz-cluster-config: %s failed (line %d)\n",      \
                    #cond, __LINE__);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

static struct cluster_config cfg;
static struct cluster_config again;
static uint8_t packed[CLUSTER_CONFIG_BYTES_MAX];
static uint8_t repacked[CLUSTER_CONFIG_BYTES_MAX];

/* The checks after either decoder returned rv into cfg with err. */
static void outcome_check(int rv, const char *err)
{
    size_t len = 0;
    size_t len2 = 0;
    json_t *j = NULL;

    if (rv != 0) {
        CHECK(rv == CLUSTER_CONFIG_E_MALFORMED || rv == CLUSTER_CONFIG_E_NOMEM);
        CHECK(err[0] != '\0');
        CHECK(memchr(err, '\0', CLUSTER_CONFIG_ERRMSG_SIZE) != NULL);
        CHECK(cfg.version == 0 && cfg.member_count == 0);
        return;
    }
    CHECK(cluster_config_validate(&cfg, NULL, 0) == 0);
    CHECK(cluster_config_encode(&cfg, packed, sizeof(packed), &len) == 0);
    CHECK(cluster_config_decode(packed, len, &again, NULL, 0) == 0);
    CHECK(cluster_config_equal(&cfg, &again));
    CHECK(cluster_config_encode(&again, repacked, sizeof(repacked), &len2) ==
          0);
    CHECK(len == len2 && memcmp(packed, repacked, len) == 0);
    CHECK(cluster_config_to_json(&cfg, &j) == 0);
    CHECK(json_array_size(json_object_get(j, "brokers")) == cfg.member_count);
    json_decref(j);
}

static struct cluster_config_plan plan;

/* Plans a request drawn from data against cfg (valid) and runs it. */
static void plan_check(const uint8_t *data, size_t size)
{
    uint32_t ids[8];
    uint8_t b[12] = {0};
    struct cluster_config_request req;
    char err[CLUSTER_CONFIG_ERRMSG_SIZE];
    int rv;

    memcpy(b, data, size < sizeof(b) ? size : sizeof(b));
    memset(&req, 0, sizeof(req));
    req.kind = 1 + b[0] % 7;
    req.force = (b[1] & 1) != 0;
    req.replication_factor = b[2] % 5;
    req.broker_count = b[3] % 9;
    for (uint32_t k = 0; k < 8; k++) {
        ids[k] = b[4 + k] % 10;
    }
    req.brokers = ids;
    req.broker_id = b[4] % 10;
    req.partition_id = b[5] % 6;
    req.priority = b[6] % 4;
    req.exporter = cfg.exporter_count > 0
                       ? cfg.exporters[b[7] % cfg.exporter_count]
                       : "none";
    req.initialize_from = cfg.exporter_count > 0 && (b[8] & 1)
                              ? cfg.exporters[b[8] % cfg.exporter_count]
                              : NULL;
    rv = cluster_config_plan(&cfg, &req, &plan);
    CHECK((rv == 0) == (plan.http_status == 202));
    if (rv != 0) {
        CHECK(plan.http_status == 400 || plan.http_status == 409);
        CHECK(plan.message[0] != '\0');
        return;
    }
    CHECK(cluster_config_validate(&plan.expected, NULL, 0) == 0);
    if (plan.change.op_count == 0) {
        return;
    }
    CHECK(cluster_config_change_start(&cfg, &plan, 1000) > 0);
    for (uint32_t k = 0; k <= CLUSTER_CONFIG_OPERATIONS_MAX; k++) {
        rv = cluster_config_op_complete(&cfg, 2000 + k, err, sizeof(err));
        CHECK(rv >= 0);
        CHECK(cluster_config_validate(&cfg, NULL, 0) == 0);
        if (rv == 1) {
            break;
        }
    }
    CHECK(rv == 1);
    CHECK(cfg.member_count == plan.expected.member_count);
    CHECK(memcmp(cfg.members, plan.expected.members,
                 cfg.member_count * sizeof(cfg.members[0])) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[CLUSTER_CONFIG_ERRMSG_SIZE];
    int rv;

    err[0] = '\0';
    rv = cluster_config_decode(data, size, &cfg, err, sizeof(err));
    outcome_check(rv, err);

    if (rv == 0) {
        plan_check(data, size);
    }

    err[0] = '\0';
    rv = cluster_config_from_json((const char *)data, size, &cfg, err,
                                  sizeof(err));
    outcome_check(rv, err);
    if (rv == 0) {
        plan_check(data, size);
    }
    return 0;
}
