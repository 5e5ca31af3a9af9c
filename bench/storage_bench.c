/* storage_bench.c: group-commit throughput of broker/storage on the current
 * filesystem (built as build/tests/broker/storage-bench; never run by
 * meson test).
 *
 * For each row, a fresh storage is opened in --dir (default
 * ./storage-bench-data, removed afterwards) and batches are committed for
 * --seconds: each batch appends `entries` 128-byte entries to each of
 * `partitions` partitions, then one storage_batch_commit() makes all of it
 * durable in one LMDB write transaction (each LMDB commit is two device
 * flushes: data pages fdatasync + meta page O_DSYNC). A "separate" row
 * commits each partition on its own, i.e. without group commit, for
 * comparison. Reported: durable commits per second ("fsyncs/s": one
 * storage_batch_commit = one LMDB commit = one fdatasync of the data file
 * plus one O_DSYNC meta-page write), entries per second, payload MB/s and
 * mean commit latency.
 *
 * Usage: storage-bench [--seconds S] [--dir PATH] */
#define _XOPEN_SOURCE 700

#include <ftw.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/storage.h"

#define BENCH_ENTRY_BYTES 128
#define BENCH_ENTRIES_MAX 256

struct bench_row {
    uint32_t partitions;
    uint32_t entries; /* per partition per commit */
    bool separate;    /* one commit per partition instead of one for all */
};

struct bench_result {
    uint64_t commits;
    uint64_t entries;
    double seconds;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void die(const char *what, int rv, struct storage *s)
{
    fprintf(stderr, "storage-bench: %s: %s: %s\n", what, storage_strerror(rv),
            s != NULL ? storage_errmsg(s) : "");
    exit(1);
}

static void commit(struct storage *s, struct storage_batch *b)
{
    size_t n;
    int rv = storage_batch_commit(s, b);
    if (rv != 0) {
        die("commit", rv, s);
    }
    (void)storage_batch_persisted(b, &n);
    storage_batch_reset(b);
}

static struct bench_result
bench_run(const char *dir, const struct bench_row *row, double seconds)
{
    static struct raft_entry es[BENCH_ENTRIES_MAX];
    static uint8_t payload[BENCH_ENTRIES_MAX][BENCH_ENTRY_BYTES];
    struct bench_result res = {0, 0, 0};
    raft_index next[16];
    struct storage_batch *b;
    struct storage *s;
    double start;
    int rv;

    rv = storage_open(dir, NULL, &s);
    if (rv != 0) {
        die("open", rv, NULL);
    }
    rv = storage_batch_new(s, &b);
    if (rv != 0) {
        die("batch", rv, s);
    }
    for (uint32_t p = 0; p < row->partitions; p++) {
        next[p] = 1;
    }
    for (size_t i = 0; i < BENCH_ENTRIES_MAX; i++) {
        for (size_t k = 0; k < BENCH_ENTRY_BYTES; k++) {
            payload[i][k] = (uint8_t)(i * 31 + k * 7);
        }
    }
    start = now_s();
    while ((res.seconds = now_s() - start) < seconds) {
        for (uint32_t p = 0; p < row->partitions; p++) {
            for (uint32_t i = 0; i < row->entries; i++) {
                es[i].index = next[p] + i;
                es[i].term = 1;
                es[i].type = RAFT_ENTRY_NORMAL;
                es[i].buf.base = payload[i];
                es[i].buf.len = BENCH_ENTRY_BYTES;
            }
            rv = storage_batch_append(b, p, es, row->entries);
            if (rv != 0) {
                die("append", rv, s);
            }
            next[p] += row->entries;
            res.entries += row->entries;
            if (row->separate) {
                commit(s, b);
                res.commits++;
            }
        }
        if (!row->separate) {
            commit(s, b);
            res.commits++;
        }
    }
    storage_batch_free(b);
    storage_close(s);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return res;
}

int main(int argc, char **argv)
{
    static const struct bench_row rows[] = {
        {1, 1, false},  {8, 1, false}, {8, 1, true},    {1, 16, false},
        {8, 16, false}, {8, 16, true}, {1, 128, false}, {8, 128, false},
    };
    const char *dir = "./storage-bench-data";
    double seconds = 2.0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = strtod(argv[++i], NULL);
        } else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else {
            fprintf(stderr,
                    "usage: storage-bench [--seconds S] [--dir PATH]\n");
            return 2;
        }
    }
    printf("storage-bench: %d-byte entries, %.1f s per row, dir %s\n",
           BENCH_ENTRY_BYTES, seconds, dir);
    printf("%-10s %-8s %-9s %10s %12s %8s %12s\n", "partitions", "entries",
           "commit", "fsyncs/s", "entries/s", "MB/s", "latency_us");
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
        struct bench_result res = bench_run(dir, &rows[r], seconds);
        double cps = (double)res.commits / res.seconds;
        double eps = (double)res.entries / res.seconds;
        printf("%-10" PRIu32 " %-8" PRIu32 " %-9s %10.0f %12.0f %8.2f %12.0f\n",
               rows[r].partitions, rows[r].entries,
               rows[r].separate ? "separate" : "group", cps, eps,
               eps * BENCH_ENTRY_BYTES / 1e6, 1e6 / cps);
        fflush(stdout);
    }
    printf("(entries = per partition per commit; fsyncs/s = durable LMDB "
           "commits per second, each = fdatasync + O_DSYNC meta write)\n");
    return 0;
}
