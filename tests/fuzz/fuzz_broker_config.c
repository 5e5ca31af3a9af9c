/* fuzz_broker_config.c: fuzz target of the broker configuration loader.
 *
 * Input layout: the bytes up to the first NUL are the YAML document; the
 * rest, split at NULs, are environment entries, each prefixed with
 * "TANDEM_BROKER_" so that random bytes reach the key matcher (e.g.
 * "CLUSTER_NODEID=3").
 *
 * Checked on every input: the loader never crashes; an error comes with a
 * non-empty, NUL-terminated message that starts with "config: "; a success
 * validates, prints, and the printed YAML loads back (without environment)
 * to a byte-identical struct.
 */
#define _POSIX_C_SOURCE 200809L
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/config.h"
#include "fuzz.h"

#define FUZZ_ENV_MAX 16
#define FUZZ_ENV_BYTES_MAX 512

static struct broker_config cfg;
static struct broker_config again;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char env_store[FUZZ_ENV_MAX][FUZZ_ENV_BYTES_MAX];
    char *envp[FUZZ_ENV_MAX + 1];
    size_t env_count = 0;
    const uint8_t *nul = memchr(data, 0, size);
    size_t yaml_len = nul != NULL ? (size_t)(nul - data) : size;
    char err[512];
    char *printed = NULL;
    size_t printed_len = 0;
    FILE *out;
    int rv;

    if (nul != NULL) {
        size_t pos = yaml_len + 1;
        while (pos <= size && env_count < FUZZ_ENV_MAX) {
            const uint8_t *end = memchr(data + pos, 0, size - pos);
            size_t n = end != NULL ? (size_t)(end - (data + pos)) : size - pos;
            if (n > FUZZ_ENV_BYTES_MAX - 16) {
                n = FUZZ_ENV_BYTES_MAX - 16;
            }
            snprintf(env_store[env_count], FUZZ_ENV_BYTES_MAX,
                     "TANDEM_BROKER_%.*s", (int)n, (const char *)data + pos);
            envp[env_count] = env_store[env_count];
            env_count++;
            if (end == NULL) {
                break;
            }
            pos = (size_t)(end - data) + 1;
        }
    }
    envp[env_count] = NULL;

    memset(err, 'x', sizeof(err));
    rv = broker_config_load_string(&cfg, (const char *)data, yaml_len,
                                   "fuzz.yaml", envp, err, sizeof(err));
    if (rv != 0) {
        assert(rv < 0);
        assert(memchr(err, '\0', sizeof(err)) != NULL);
        assert(strncmp(err, "config: ", 8) == 0);
        assert(strcmp(broker_config_strerror(rv), "unknown error") != 0);
        return 0;
    }
    assert(broker_config_validate(&cfg, err, sizeof(err)) == 0);

    out = open_memstream(&printed, &printed_len);
    assert(out != NULL);
    assert(broker_config_print(&cfg, out) == 0);
    fclose(out);
    rv = broker_config_load_string(&again, printed, printed_len, "printed",
                                   NULL, err, sizeof(err));
    if (rv != 0) {
        fprintf(stderr, "round trip failed: %s\n%s\n", err, printed);
    }
    assert(rv == 0);
    assert(memcmp(&cfg, &again, sizeof(cfg)) == 0);
    free(printed);
    return 0;
}
