/* hist.h: a log-bucketed latency histogram for the load generator.
 *
 * Values (nanoseconds) go in with hist_record(); percentiles come out with
 * hist_value_at(). Below 2 * HIST_SUB_COUNT a value has its own bucket;
 * above, each power of two is split into HIST_SUB_COUNT equal buckets, so
 * a reported value is within 1/HIST_SUB_COUNT (1.6%) of the true one, the
 * same trade-off HdrHistogram makes with "significant digits". Memory is
 * fixed (HIST_BUCKET_COUNT counters, no allocation); the exact minimum,
 * maximum and sum are kept on the side.
 */
#ifndef TANDEM_BENCH_HIST_H
#define TANDEM_BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 6u
#define HIST_SUB_COUNT (1u << HIST_SUB_BITS)
/* Powers of two above 2 * HIST_SUB_COUNT: covers up to 2^63 ns. */
#define HIST_BUCKET_COUNT (2u * HIST_SUB_COUNT + 57u * HIST_SUB_COUNT)

struct hist {
    uint64_t count;
    uint64_t min;
    uint64_t max;
    double sum;
    uint64_t buckets[HIST_BUCKET_COUNT];
};

/* Empties h. */
void hist_init(struct hist *h);

/* Adds one value (ns). */
void hist_record(struct hist *h, uint64_t value);

/* Adds every value of src to dst. */
void hist_merge(struct hist *dst, const struct hist *src);

/* The smallest value v such that at least fraction q (0..1) of the
 * recorded values are <= v, rounded up to its bucket's upper bound and
 * clamped to the exact maximum; 0 when h is empty. */
uint64_t hist_value_at(const struct hist *h, double q);

#endif /* TANDEM_BENCH_HIST_H */
