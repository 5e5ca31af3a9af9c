/* config.c: configurations (member sets), their encoding, and quorums.
 *
 * A configuration is a fixed-size struct (no allocation). This file builds
 * and checks them, turns them into the bytes stored in RAFT_ENTRY_CONFIG
 * entries and back, and answers the quorum questions every other file asks:
 * did a majority answer yes (votes, check-quorum), and which index is stored
 * on a majority (commitment). A joint configuration needs a majority of the
 * incoming voters AND of the outgoing voters (Raft paper section 6). */
#include <string.h>

#include "raft/impl.h"

void raft_config_init(struct raft_config *config)
{
    memset(config, 0, sizeof(*config));
}

const struct raft_member *raft_config_member(const struct raft_config *config,
                                             raft_id id)
{
    for (uint32_t i = 0; i < config->count && i < RAFT_MEMBERS_MAX; i++) {
        if (config->members[i].id == id) {
            return &config->members[i];
        }
    }
    return NULL;
}

int raft_config_add(struct raft_config *config, raft_id id, uint8_t role,
                    uint8_t priority)
{
    if (id == 0 || (role != RAFT_VOTER && role != RAFT_LEARNER)) {
        return RAFT_E_INVALID;
    }
    if (raft_config_member(config, id) != NULL) {
        return RAFT_E_INVALID;
    }
    if (config->count >= RAFT_MEMBERS_MAX) {
        return RAFT_E_TOO_BIG;
    }
    config->members[config->count].id = id;
    config->members[config->count].role = role;
    config->members[config->count].priority = priority;
    config->count++;
    return 0;
}

int raft_config_validate(const struct raft_config *config)
{
    uint32_t voters = 0;
    uint32_t union_count;

    if (config->count > RAFT_MEMBERS_MAX ||
        config->old_count > RAFT_MEMBERS_MAX) {
        return RAFT_E_INVALID;
    }
    for (uint32_t i = 0; i < config->count; i++) {
        const struct raft_member *m = &config->members[i];
        if (m->id == 0) {
            return RAFT_E_INVALID;
        }
        if (m->role != RAFT_VOTER && m->role != RAFT_LEARNER) {
            return RAFT_E_INVALID;
        }
        for (uint32_t j = 0; j < i; j++) {
            if (config->members[j].id == m->id) {
                return RAFT_E_INVALID;
            }
        }
        if (m->role == RAFT_VOTER) {
            voters++;
        }
    }
    if (voters == 0) {
        return RAFT_E_INVALID;
    }
    union_count = config->count;
    for (uint32_t i = 0; i < config->old_count; i++) {
        raft_id id = config->old_voters[i];
        if (id == 0) {
            return RAFT_E_INVALID;
        }
        for (uint32_t j = 0; j < i; j++) {
            if (config->old_voters[j] == id) {
                return RAFT_E_INVALID;
            }
        }
        if (raft_config_member(config, id) == NULL) {
            union_count++;
        }
    }
    if (union_count > RAFT_MEMBERS_MAX) {
        return RAFT_E_INVALID;
    }
    return 0;
}

/* Encoding of a configuration (all integers little-endian):
 *
 *   0         1         2              4              6         8
 *   +---------+---------+--------------+--------------+---------+
 *   | version | 0       | count (u16)  | old (u16)    | 0 0     |
 *   +---------+---------+--------------+--------------+---------+
 *   count x  +------------------+--------+------------+
 *            | id (u64)         | role   | priority   |   10 bytes
 *            +------------------+--------+------------+
 *   old x    +------------------+
 *            | old voter (u64)  |                          8 bytes
 *            +------------------+
 *
 * The length must be exactly 8 + 10 * count + 8 * old. */
#define CONFIG_VERSION 1
#define CONFIG_HEADER_SIZE 8
#define CONFIG_MEMBER_SIZE 10
#define CONFIG_OLD_SIZE 8

_Static_assert(CONFIG_HEADER_SIZE + CONFIG_MEMBER_SIZE * RAFT_MEMBERS_MAX +
                       CONFIG_OLD_SIZE * RAFT_MEMBERS_MAX <=
                   RAFT_CONFIG_ENCODED_MAX,
               "RAFT_CONFIG_ENCODED_MAX too small");

static void config_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint64_t config_get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

int raft_config_encode(const struct raft_config *config, void *buf, size_t len)
{
    uint8_t *p = buf;
    size_t need;

    RAFT_ASSERT(config->count <= RAFT_MEMBERS_MAX);
    RAFT_ASSERT(config->old_count <= RAFT_MEMBERS_MAX);
    need = CONFIG_HEADER_SIZE + CONFIG_MEMBER_SIZE * (size_t)config->count +
           CONFIG_OLD_SIZE * (size_t)config->old_count;
    if (len < need) {
        return RAFT_E_TOO_BIG;
    }
    p[0] = CONFIG_VERSION;
    p[1] = 0;
    p[2] = (uint8_t)(config->count & 0xff);
    p[3] = (uint8_t)(config->count >> 8);
    p[4] = (uint8_t)(config->old_count & 0xff);
    p[5] = (uint8_t)(config->old_count >> 8);
    p[6] = 0;
    p[7] = 0;
    p += CONFIG_HEADER_SIZE;
    for (uint32_t i = 0; i < config->count; i++) {
        config_put_u64(p, config->members[i].id);
        p[8] = config->members[i].role;
        p[9] = config->members[i].priority;
        p += CONFIG_MEMBER_SIZE;
    }
    for (uint32_t i = 0; i < config->old_count; i++) {
        config_put_u64(p, config->old_voters[i]);
        p += CONFIG_OLD_SIZE;
    }
    return (int)need;
}

int raft_config_decode(const void *buf, size_t len, struct raft_config *config)
{
    const uint8_t *p = buf;
    uint32_t count;
    uint32_t old_count;
    size_t need;

    if (buf == NULL || len < CONFIG_HEADER_SIZE) {
        return RAFT_E_MALFORMED;
    }
    if (p[0] != CONFIG_VERSION || p[1] != 0 || p[6] != 0 || p[7] != 0) {
        return RAFT_E_MALFORMED;
    }
    count = (uint32_t)p[2] | ((uint32_t)p[3] << 8);
    old_count = (uint32_t)p[4] | ((uint32_t)p[5] << 8);
    if (count > RAFT_MEMBERS_MAX || old_count > RAFT_MEMBERS_MAX) {
        return RAFT_E_MALFORMED;
    }
    need = CONFIG_HEADER_SIZE + CONFIG_MEMBER_SIZE * (size_t)count +
           CONFIG_OLD_SIZE * (size_t)old_count;
    if (len != need) {
        return RAFT_E_MALFORMED;
    }
    raft_config_init(config);
    config->count = count;
    config->old_count = old_count;
    p += CONFIG_HEADER_SIZE;
    for (uint32_t i = 0; i < count; i++) {
        config->members[i].id = config_get_u64(p);
        config->members[i].role = p[8];
        config->members[i].priority = p[9];
        p += CONFIG_MEMBER_SIZE;
    }
    for (uint32_t i = 0; i < old_count; i++) {
        config->old_voters[i] = config_get_u64(p);
        p += CONFIG_OLD_SIZE;
    }
    if (raft_config_validate(config) != 0) {
        return RAFT_E_MALFORMED;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Queries
 * --------------------------------------------------------------------- */

bool raft__config_is_voter(const struct raft_config *config, raft_id id)
{
    const struct raft_member *m = raft_config_member(config, id);
    return m != NULL && m->role == RAFT_VOTER;
}

bool raft__config_is_old_voter(const struct raft_config *config, raft_id id)
{
    for (uint32_t i = 0; i < config->old_count; i++) {
        if (config->old_voters[i] == id) {
            return true;
        }
    }
    return false;
}

bool raft__config_contains(const struct raft_config *config, raft_id id)
{
    return raft_config_member(config, id) != NULL ||
           raft__config_is_old_voter(config, id);
}

bool raft__config_equal(const struct raft_config *a,
                        const struct raft_config *b)
{
    if (a->count != b->count || a->old_count != b->old_count) {
        return false;
    }
    for (uint32_t i = 0; i < a->count; i++) {
        const struct raft_member *m = raft_config_member(b, a->members[i].id);
        if (m == NULL || m->role != a->members[i].role ||
            m->priority != a->members[i].priority) {
            return false;
        }
    }
    for (uint32_t i = 0; i < a->old_count; i++) {
        if (!raft__config_is_old_voter(b, a->old_voters[i])) {
            return false;
        }
    }
    return true;
}

uint8_t raft__config_priority(const struct raft_config *config, raft_id id)
{
    const struct raft_member *m = raft_config_member(config, id);
    return m == NULL ? 0 : m->priority;
}

uint8_t raft__config_max_priority(const struct raft_config *config)
{
    uint8_t max = 0;
    for (uint32_t i = 0; i < config->count; i++) {
        if (config->members[i].role == RAFT_VOTER &&
            config->members[i].priority > max) {
            max = config->members[i].priority;
        }
    }
    return max;
}

/* ------------------------------------------------------------------------
 * Quorums
 * --------------------------------------------------------------------- */

static enum raft_quorum config_tally_set(const raft_id *ids, uint32_t n,
                                         int (*answer)(void *, raft_id),
                                         void *ctx)
{
    uint32_t yes = 0;
    uint32_t no = 0;
    uint32_t quorum = n / 2 + 1;

    if (n == 0) {
        return RAFT_QUORUM_WON;
    }
    for (uint32_t i = 0; i < n; i++) {
        int a = answer(ctx, ids[i]);
        if (a > 0) {
            yes++;
        } else if (a < 0) {
            no++;
        }
    }
    if (yes >= quorum) {
        return RAFT_QUORUM_WON;
    }
    if (no > n - quorum) {
        return RAFT_QUORUM_LOST;
    }
    return RAFT_QUORUM_PENDING;
}

static uint32_t config_voters(const struct raft_config *config, raft_id *out)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < config->count; i++) {
        if (config->members[i].role == RAFT_VOTER) {
            out[n++] = config->members[i].id;
        }
    }
    return n;
}

enum raft_quorum raft__config_tally(const struct raft_config *config,
                                    int (*answer)(void *ctx, raft_id id),
                                    void *ctx)
{
    raft_id ids[RAFT_MEMBERS_MAX] = {0};
    uint32_t n = config_voters(config, ids);
    enum raft_quorum a = config_tally_set(ids, n, answer, ctx);
    enum raft_quorum b = RAFT_QUORUM_WON;

    RAFT_ASSERT(n > 0 || config->count == 0);
    if (config->old_count > 0) {
        b = config_tally_set(config->old_voters, config->old_count, answer,
                             ctx);
    }
    if (a == RAFT_QUORUM_LOST || b == RAFT_QUORUM_LOST) {
        return RAFT_QUORUM_LOST;
    }
    if (a == RAFT_QUORUM_WON && b == RAFT_QUORUM_WON) {
        return n == 0 ? RAFT_QUORUM_LOST : RAFT_QUORUM_WON;
    }
    return RAFT_QUORUM_PENDING;
}

static raft_index config_quorum_set(const raft_id *ids, uint32_t n,
                                    raft_index (*match)(void *, raft_id),
                                    void *ctx)
{
    raft_index m[RAFT_MEMBERS_MAX] = {0};

    RAFT_ASSERT(n > 0);
    RAFT_ASSERT(n <= RAFT_MEMBERS_MAX);
    for (uint32_t i = 0; i < n; i++) {
        raft_index v = match(ctx, ids[i]);
        /* insertion sort, descending */
        uint32_t j = i;
        while (j > 0 && m[j - 1] < v) {
            m[j] = m[j - 1];
            j--;
        }
        m[j] = v;
    }
    /* The quorum-th largest value is stored on a majority. */
    return m[n / 2];
}

raft_index raft__config_quorum_index(const struct raft_config *config,
                                     raft_index (*match)(void *ctx,
                                                         raft_id id),
                                     void *ctx)
{
    raft_id ids[RAFT_MEMBERS_MAX] = {0};
    uint32_t n = config_voters(config, ids);
    raft_index index;

    if (n == 0) {
        return 0;
    }
    index = config_quorum_set(ids, n, match, ctx);
    if (config->old_count > 0) {
        raft_index old = config_quorum_set(config->old_voters,
                                           config->old_count, match, ctx);
        if (old < index) {
            index = old;
        }
    }
    return index;
}
