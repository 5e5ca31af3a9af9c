/* hist.c: the log-bucketed histogram of hist.h.
 *
 * Bucket layout: index v for v < 2 * SUB; otherwise, with e = the number
 * of low bits dropped so that (v >> e) is in [SUB, 2 * SUB), index
 * 2 * SUB + (e - 1) * SUB + ((v >> e) - SUB). Indices grow with v, so a
 * percentile is a walk from index 0 accumulating counts.
 */
#include "hist.h"

#include <math.h>
#include <string.h>

static unsigned hist_index(uint64_t v)
{
    unsigned e = 0;
    if (v < 2u * HIST_SUB_COUNT)
        return (unsigned)v;
    /* floor(log2 v) - HIST_SUB_BITS */
    e = (unsigned)(63 - __builtin_clzll(v)) - HIST_SUB_BITS;
    return 2u * HIST_SUB_COUNT + (e - 1u) * HIST_SUB_COUNT +
           (unsigned)((v >> e) - HIST_SUB_COUNT);
}

/* The largest value that maps to index i. */
static uint64_t hist_upper(unsigned i)
{
    unsigned e = 0;
    uint64_t sub = 0;
    if (i < 2u * HIST_SUB_COUNT)
        return i;
    e = (i - 2u * HIST_SUB_COUNT) / HIST_SUB_COUNT + 1u;
    sub = (i - 2u * HIST_SUB_COUNT) % HIST_SUB_COUNT + HIST_SUB_COUNT;
    return ((sub + 1u) << e) - 1u;
}

void hist_init(struct hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

void hist_record(struct hist *h, uint64_t value)
{
    unsigned i = hist_index(value);
    if (i >= HIST_BUCKET_COUNT)
        i = HIST_BUCKET_COUNT - 1u;
    h->buckets[i]++;
    h->count++;
    h->sum += (double)value;
    if (value < h->min)
        h->min = value;
    if (value > h->max)
        h->max = value;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
    unsigned i = 0;
    if (src->count == 0)
        return;
    for (i = 0; i < HIST_BUCKET_COUNT; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t hist_value_at(const struct hist *h, double q)
{
    uint64_t rank = 0;
    uint64_t seen = 0;
    unsigned i = 0;
    if (h->count == 0)
        return 0;
    if (q <= 0.0)
        return h->min;
    if (q >= 1.0)
        return h->max;
    rank = (uint64_t)ceil(q * (double)h->count);
    if (rank == 0)
        rank = 1;
    for (i = 0; i < HIST_BUCKET_COUNT; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t v = hist_upper(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}
