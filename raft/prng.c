/* prng.c: the node's pseudo-random number generator.
 *
 * splitmix64 (Steele, Lea and Flood, "Fast Splittable Pseudorandom Number
 * Generators", 2014). The state is a single word owned by the node and
 * seeded from raft_options.seed, so a run is reproducible from its seed. Used
 * only to randomize election timeouts. */
#include "raft/impl.h"

uint64_t raft__prng_next(uint64_t *state)
{
    uint64_t z;

    *state += UINT64_C(0x9E3779B97F4A7C15);
    z = *state;
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

uint64_t raft__prng_range(uint64_t *state, uint64_t lo, uint64_t hi)
{
    RAFT_ASSERT(hi > lo);
    return lo + raft__prng_next(state) % (hi - lo);
}
