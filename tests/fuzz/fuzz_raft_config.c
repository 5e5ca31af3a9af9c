/* fuzz_raft_config.c: fuzz target for raft_config_decode().
 *
 * Input byte 0 picks a mode. Mode even: the rest is decoded as-is; if it
 * decodes, it must re-encode to the same bytes and validate. Mode odd: the
 * rest describes a configuration (counts, ids, roles, priorities) that is
 * built with raft_config_add(), encoded, decoded, and compared, and a
 * truncated copy of the encoding must be rejected. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "raft/raft.h"

static void fuzz_check(int cond)
{
    if (!cond) {
        abort();
    }
}

static void fuzz_raw(const uint8_t *data, size_t size)
{
    struct raft_config c;
    uint8_t out[RAFT_CONFIG_ENCODED_MAX];
    int n;

    if (raft_config_decode(data, size, &c) != 0) {
        return;
    }
    fuzz_check(raft_config_validate(&c) == 0);
    n = raft_config_encode(&c, out, sizeof(out));
    fuzz_check(n > 0);
    fuzz_check((size_t)n == size);
    fuzz_check(memcmp(out, data, size) == 0);
}

static void fuzz_built(const uint8_t *data, size_t size)
{
    struct raft_config c;
    struct raft_config d;
    uint8_t out[RAFT_CONFIG_ENCODED_MAX];
    size_t i = 0;
    int n;

    raft_config_init(&c);
    while (i + 3 <= size && c.count < RAFT_MEMBERS_MAX) {
        raft_id id = data[i] % 24;
        uint8_t role = (uint8_t)(data[i + 1] % 3);
        int rv = raft_config_add(&c, id, role, data[i + 2]);
        fuzz_check(rv == 0 || rv == RAFT_E_INVALID);
        i += 3;
    }
    while (i < size && c.old_count < RAFT_MEMBERS_MAX) {
        c.old_voters[c.old_count++] = data[i++] % 24;
    }
    if (raft_config_validate(&c) != 0) {
        return;
    }
    n = raft_config_encode(&c, out, sizeof(out));
    fuzz_check(n > 0);
    fuzz_check(raft_config_decode(out, (size_t)n, &d) == 0);
    fuzz_check(d.count == c.count && d.old_count == c.old_count);
    for (uint32_t k = 0; k < c.count; k++) {
        const struct raft_member *m = raft_config_member(&d, c.members[k].id);
        fuzz_check(m != NULL);
        fuzz_check(m->role == c.members[k].role);
        fuzz_check(m->priority == c.members[k].priority);
    }
    fuzz_check(raft_config_decode(out, (size_t)n - 1, &d) ==
               RAFT_E_MALFORMED);
    fuzz_check(raft_config_encode(&c, out, (size_t)n - 1) == RAFT_E_TOO_BIG);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    if (data[0] % 2 == 0) {
        fuzz_raw(data + 1, size - 1);
    } else {
        fuzz_built(data + 1, size - 1);
    }
    return 0;
}
