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
 * GET /actuator/cluster JSON.
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[CLUSTER_CONFIG_ERRMSG_SIZE];
    int rv;

    err[0] = '\0';
    rv = cluster_config_decode(data, size, &cfg, err, sizeof(err));
    outcome_check(rv, err);

    err[0] = '\0';
    rv = cluster_config_from_json((const char *)data, size, &cfg, err,
                                  sizeof(err));
    outcome_check(rv, err);
    return 0;
}
