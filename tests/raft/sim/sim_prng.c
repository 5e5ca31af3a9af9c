/* sim_prng.c: the simulator's only source of randomness, plus hashing.
 *
 * One xoshiro256** generator per run, seeded through splitmix64 from the
 * run's 64-bit seed. Every random choice of the simulation (parameters,
 * delays, faults, workload) draws from it in a fixed order, which is what
 * makes a run repeatable from its seed. The hashes are used for entry
 * digests, the state machine's chain and snapshot checksums.
 */
#include <string.h>

#include "sim.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void sim_rng_seed(struct sim_rng *rng, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) {
        rng->s[i] = splitmix64(&x);
    }
}

uint64_t sim_rng_next(struct sim_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t sim_rng_range(struct sim_rng *rng, uint64_t lo, uint64_t hi)
{
    uint64_t r = sim_rng_next(rng);
    if (hi <= lo) {
        return lo;
    }
    uint64_t span = hi - lo + 1;
    if (span == 0) {
        return r;
    }
    return lo + r % span;
}

bool sim_rng_pm(struct sim_rng *rng, uint32_t per_mille)
{
    return sim_rng_next(rng) % 1000 < per_mille;
}

uint64_t sim_mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

uint64_t sim_hash(uint64_t h, const void *data, size_t len)
{
    const uint8_t *p = data;
    h ^= 0xcbf29ce484222325ULL ^ (len * 0x9e3779b97f4a7c15ULL);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = rotl(h ^ (w * 0x87c37b91114253d5ULL), 31) * 0x4cf5ad432745937fULL;
    }
    uint64_t tail = 0;
    for (size_t k = 0; i + k < len; k++) {
        tail |= (uint64_t)p[i + k] << (8 * k);
    }
    h = rotl(h ^ (tail * 0x87c37b91114253d5ULL), 31) * 0x4cf5ad432745937fULL;
    return sim_mix64(h);
}
