/* sim_sm.c: the replicated state machine, proposal payloads and snapshots.
 *
 * Each node applies committed entries (in index order) to a struct sim_sm:
 * a running hash chain over (index, type, payload) of every applied entry,
 * the count of NORMAL entries and the configuration as of the applied index
 * (from CONFIG entries). The checker compares the chain at every index with
 * the canonical committed history, so any divergence shows up at once.
 *
 * A snapshot is sim_sm_encode()'s byte serialization of that state, plus a
 * variable number of filler bytes (so that snapshots span several chunks)
 * whose pattern depends on the chain, plus a trailing checksum: a snapshot
 * reassembled wrongly from chunks fails sim_sm_decode().
 *
 * Proposal payloads carry their proposal id and the run seed followed by
 * id-derived filler, so the checker can tell that every committed NORMAL
 * entry is a genuine, intact proposal, committed once.
 */
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define SIM_SNAP_MAGIC 0x54534e50u /* "PNST" */
#define SIM_SNAP_VERSION 1u

void sim_sm_init(struct sim_sm *sm)
{
    memset(sm, 0, sizeof(*sm));
    raft_config_init(&sm->config);
}

uint64_t sim_entry_digest(const struct raft_entry *entry)
{
    uint8_t type = entry->type;
    uint64_t h = sim_hash(0x5eed, &type, 1);
    return sim_hash(h, entry->buf.base, entry->buf.len);
}

uint64_t sim_chain_next(uint64_t chain, raft_index index, uint64_t digest)
{
    return sim_mix64(chain ^ sim_mix64(index + 0x9e3779b97f4a7c15ULL) ^
                     sim_mix64(digest));
}

int sim_sm_apply(struct sim_sm *sm, const struct raft_entry *entry)
{
    sm->chain = sim_chain_next(sm->chain, entry->index,
                               sim_entry_digest(entry));
    sm->applied = entry->index;
    sm->applied_term = entry->term;
    if (entry->type == RAFT_ENTRY_NORMAL) {
        sm->normal_count++;
    } else if (entry->type == RAFT_ENTRY_CONFIG) {
        struct raft_config cfg;
        if (raft_config_decode(entry->buf.base, entry->buf.len, &cfg) != 0) {
            return -1;
        }
        sm->config = cfg;
        sm->has_config = true;
        sm->config_index = entry->index;
        sm->config_term = entry->term;
    }
    return 0;
}

/* ---- little-endian byte helpers ---------------------------------------- */

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

static uint8_t pad_byte(uint64_t chain, size_t k)
{
    return (uint8_t)(sim_mix64(chain + k / 8) >> (8 * (k % 8)));
}

/* Layout: magic, version, applied, applied_term, chain, normal_count,
 * has_config, config_index, config_term, config_len, pad_len (all u64),
 * config bytes, pad bytes, checksum u64 over everything before it. */
#define SIM_SNAP_FIXED (11 * 8)

uint8_t *sim_sm_encode(const struct sim_sm *sm, uint32_t pad_len,
                       size_t *len)
{
    uint8_t cfg_buf[RAFT_CONFIG_ENCODED_MAX];
    int cfg_len = 0;
    if (sm->has_config) {
        cfg_len = raft_config_encode(&sm->config, cfg_buf, sizeof(cfg_buf));
        if (cfg_len < 0) {
            return NULL;
        }
    }
    size_t total = SIM_SNAP_FIXED + (size_t)cfg_len + pad_len + 8;
    uint8_t *out = malloc(total);
    if (out == NULL) {
        return NULL;
    }
    uint64_t fixed[11] = {
        SIM_SNAP_MAGIC,  SIM_SNAP_VERSION, sm->applied,
        sm->applied_term, sm->chain,       sm->normal_count,
        sm->has_config,  sm->config_index, sm->config_term,
        (uint64_t)cfg_len, pad_len,
    };
    for (int i = 0; i < 11; i++) {
        put_u64(out + 8 * i, fixed[i]);
    }
    size_t off = SIM_SNAP_FIXED;
    if (cfg_len > 0) {
        memcpy(out + off, cfg_buf, (size_t)cfg_len);
        off += (size_t)cfg_len;
    }
    for (size_t k = 0; k < pad_len; k++) {
        out[off + k] = pad_byte(sm->chain, k);
    }
    off += pad_len;
    put_u64(out + off, sim_hash(SIM_SNAP_MAGIC, out, off));
    *len = total;
    return out;
}

int sim_sm_decode(const void *data, size_t len, struct sim_sm *sm)
{
    const uint8_t *p = data;
    if (p == NULL || len < SIM_SNAP_FIXED + 8) {
        return -1;
    }
    uint64_t fixed[11];
    for (int i = 0; i < 11; i++) {
        fixed[i] = get_u64(p + 8 * i);
    }
    if (fixed[0] != SIM_SNAP_MAGIC || fixed[1] != SIM_SNAP_VERSION ||
        fixed[6] > 1 || fixed[9] > RAFT_CONFIG_ENCODED_MAX ||
        fixed[10] > len) {
        return -1;
    }
    size_t cfg_len = (size_t)fixed[9];
    size_t pad_len = (size_t)fixed[10];
    if (len != SIM_SNAP_FIXED + cfg_len + pad_len + 8) {
        return -1;
    }
    size_t end = len - 8;
    if (get_u64(p + end) != sim_hash(SIM_SNAP_MAGIC, p, end)) {
        return -1;
    }
    sim_sm_init(sm);
    sm->applied = fixed[2];
    sm->applied_term = fixed[3];
    sm->chain = fixed[4];
    sm->normal_count = fixed[5];
    sm->has_config = fixed[6] != 0;
    sm->config_index = fixed[7];
    sm->config_term = fixed[8];
    if (sm->has_config) {
        if (raft_config_decode(p + SIM_SNAP_FIXED, cfg_len, &sm->config) !=
            0) {
            return -1;
        }
    } else if (cfg_len != 0) {
        return -1;
    }
    const uint8_t *pad = p + SIM_SNAP_FIXED + cfg_len;
    for (size_t k = 0; k < pad_len; k++) {
        if (pad[k] != pad_byte(sm->chain, k)) {
            return -1;
        }
    }
    return 0;
}

/* ---- proposal payloads -------------------------------------------------- */

static uint8_t payload_byte(uint64_t seed, uint64_t id, size_t k)
{
    return (uint8_t)(sim_mix64(seed ^ sim_mix64(id) ^ (k / 8)) >>
                     (8 * (k % 8)));
}

void sim_payload_fill(uint8_t *buf, size_t len, uint64_t seed, uint64_t id)
{
    put_u64(buf, id);
    put_u64(buf + 8, seed);
    for (size_t k = 16; k < len; k++) {
        buf[k] = payload_byte(seed, id, k);
    }
}

int sim_payload_check(const void *buf, size_t len, uint64_t seed,
                      uint64_t *id)
{
    const uint8_t *p = buf;
    if (p == NULL || len < SIM_PAYLOAD_MIN) {
        return -1;
    }
    if (get_u64(p + 8) != seed) {
        return -1;
    }
    *id = get_u64(p);
    for (size_t k = 16; k < len; k++) {
        if (p[k] != payload_byte(seed, *id, k)) {
            return -1;
        }
    }
    return 0;
}
