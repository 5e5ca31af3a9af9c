/* disk_bench.c: disk-bench, the physical limit of durable commits on one
 * file system, the floor under every replicated broker measured by
 * bench/run (build/bench/disk-bench; never run by meson test).
 *
 * Data flow, per mode, for --seconds (or --count commits, whichever ends
 * first), in a fresh directory created under --dir and removed afterwards:
 *
 *   fdatasync: 128-byte record -> pwrite() at the file's end -> fdatasync()
 *              -> the latency of that pair goes into a histogram (hist.h)
 *   lmdb:      128-byte value -> mdb_txn_begin -> mdb_put(key = sequence)
 *              -> mdb_txn_commit() (durable: LMDB's default flags, i.e. an
 *              fdatasync of the data file and a synchronous meta-page
 *              write) -> latency into a histogram
 *
 * Each commit carries exactly one record, so commits/s is also records/s:
 * the rate a broker without group commit could reach on this disk with
 * one writer. Output: a table and one JSON line (also to --json FILE):
 *
 *   {"bench":"disk","dir":...,"record_bytes":128,"modes":{"fdatasync":
 *    {"commits":N,"seconds":S,"commits_per_s":R,"latency_us":{...}},
 *    "lmdb":{...}}}
 *
 * Exit status: 0 on success, 1 when a file or LMDB call fails (the call
 * and the reason are printed), 2 on bad usage.
 */
#define _POSIX_C_SOURCE 200809L

#include "loadgen/hist.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/stat.h>

#include <lmdb.h>

#define DISK_RECORD_BYTES 128u
#define DISK_SECONDS_MAX 600.0
#define DISK_COUNT_MAX 100000000ull
#define DISK_MAP_BYTES ((size_t)1 << 30)
#define DISK_PATH_BYTES 512u

struct disk_opts {
    const char *dir;
    double seconds;
    uint64_t count;
    bool do_fsync;
    bool do_lmdb;
    const char *json_path;
};

struct disk_result {
    bool ran;
    uint64_t commits;
    double seconds;
    struct hist latency;
};

static uint64_t disk_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void disk_usage(FILE *out)
{
    fprintf(out,
            "usage: disk-bench [--dir DIR] [--seconds S] [--count N]\n"
            "                  [--mode fdatasync|lmdb|both] [--json FILE]\n"
            "Durable commits per second of one 128-byte record each: a\n"
            "pwrite+fdatasync loop and an LMDB commit loop, in a fresh\n"
            "directory under DIR (default: the current directory).\n"
            "  --seconds S   per mode (default 3, max %.0f)\n"
            "  --count N     commits per mode at most (max %llu)\n",
            DISK_SECONDS_MAX, (unsigned long long)DISK_COUNT_MAX);
}

/* Returns 0, or 2 after printing what is wrong with the options. */
static int disk_opts_parse(int argc, char **argv, struct disk_opts *o)
{
    static const struct option longopts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"seconds", required_argument, NULL, 's'},
        {"count", required_argument, NULL, 'c'},
        {"mode", required_argument, NULL, 'm'},
        {"json", required_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c = 0;
    char *end = NULL;

    memset(o, 0, sizeof(*o));
    o->dir = ".";
    o->seconds = 3.0;
    o->count = DISK_COUNT_MAX;
    o->do_fsync = true;
    o->do_lmdb = true;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            o->dir = optarg;
            break;
        case 's':
            errno = 0;
            o->seconds = strtod(optarg, &end);
            if (errno != 0 || *end != '\0' || !(o->seconds > 0) ||
                o->seconds > DISK_SECONDS_MAX) {
                fprintf(stderr,
                        "disk-bench: --seconds wants 0..%.0f "
                        "(got '%s')\n",
                        DISK_SECONDS_MAX, optarg);
                return 2;
            }
            break;
        case 'c': {
            unsigned long long v = 0;
            errno = 0;
            v = strtoull(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || optarg[0] == '-' || v == 0 ||
                v > DISK_COUNT_MAX) {
                fprintf(stderr,
                        "disk-bench: --count wants 1..%llu "
                        "(got '%s')\n",
                        (unsigned long long)DISK_COUNT_MAX, optarg);
                return 2;
            }
            o->count = v;
            break;
        }
        case 'm':
            o->do_fsync =
                strcmp(optarg, "fdatasync") == 0 || strcmp(optarg, "both") == 0;
            o->do_lmdb =
                strcmp(optarg, "lmdb") == 0 || strcmp(optarg, "both") == 0;
            if (!o->do_fsync && !o->do_lmdb) {
                fprintf(stderr,
                        "disk-bench: --mode wants fdatasync, lmdb "
                        "or both (got '%s')\n",
                        optarg);
                return 2;
            }
            break;
        case 'j':
            o->json_path = optarg;
            break;
        case 'h':
            disk_usage(stdout);
            exit(0);
        default:
            disk_usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "disk-bench: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    return 0;
}

/* pwrite + fdatasync of one record per commit, appended to one file. */
static int disk_fsync_run(const struct disk_opts *o, const char *dir,
                          struct disk_result *r)
{
    char path[DISK_PATH_BYTES + 32];
    unsigned char record[DISK_RECORD_BYTES];
    uint64_t start = 0, deadline = 0, now = 0;
    off_t offset = 0;
    int fd = -1;

    snprintf(path, sizeof(path), "%s/fdatasync.log", dir);
    fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "disk-bench: open %s: %s\n", path, strerror(errno));
        return -1;
    }
    memset(record, 'r', sizeof(record));
    hist_init(&r->latency);
    start = disk_clock_ns();
    deadline = start + (uint64_t)(o->seconds * 1e9);
    now = start;
    while (r->commits < o->count && now < deadline) {
        uint64_t t0 = now;
        ssize_t n = pwrite(fd, record, sizeof(record), offset);
        if (n != (ssize_t)sizeof(record)) {
            fprintf(stderr, "disk-bench: pwrite %s: %s\n", path,
                    n < 0 ? strerror(errno) : "short write");
            close(fd);
            unlink(path);
            return -1;
        }
        if (fdatasync(fd) != 0) {
            fprintf(stderr, "disk-bench: fdatasync %s: %s\n", path,
                    strerror(errno));
            close(fd);
            unlink(path);
            return -1;
        }
        offset += (off_t)sizeof(record);
        now = disk_clock_ns();
        hist_record(&r->latency, now - t0);
        r->commits++;
    }
    r->seconds = (double)(now - start) / 1e9;
    r->ran = true;
    if (close(fd) != 0) {
        fprintf(stderr, "disk-bench: close %s: %s\n", path, strerror(errno));
        return -1;
    }
    return unlink(path) == 0 ? 0 : -1;
}

/* One mdb_put per durable LMDB commit, keys in increasing order. */
static int disk_lmdb_run(const struct disk_opts *o, const char *dir,
                         struct disk_result *r)
{
    char path[DISK_PATH_BYTES + 32];
    unsigned char record[DISK_RECORD_BYTES];
    MDB_env *env = NULL;
    MDB_dbi dbi = 0;
    MDB_txn *txn = NULL;
    uint64_t start = 0, deadline = 0, now = 0;
    const char *what = "mdb_env_create";
    int rc = 0;

    snprintf(path, sizeof(path), "%s/lmdb", dir);
    if (mkdir(path, 0700) != 0) {
        fprintf(stderr, "disk-bench: mkdir %s: %s\n", path, strerror(errno));
        return -1;
    }
    rc = mdb_env_create(&env);
    if (rc == 0) {
        what = "mdb_env_set_mapsize";
        rc = mdb_env_set_mapsize(env, DISK_MAP_BYTES);
    }
    if (rc == 0) {
        what = "mdb_env_open";
        rc = mdb_env_open(env, path, 0, 0600);
    }
    if (rc == 0) {
        what = "mdb_txn_begin";
        rc = mdb_txn_begin(env, NULL, 0, &txn);
    }
    if (rc == 0) {
        what = "mdb_dbi_open";
        rc = mdb_dbi_open(txn, NULL, 0, &dbi);
    }
    if (rc == 0) {
        what = "mdb_txn_commit";
        rc = mdb_txn_commit(txn);
        txn = NULL;
    }
    memset(record, 'l', sizeof(record));
    hist_init(&r->latency);
    start = disk_clock_ns();
    deadline = start + (uint64_t)(o->seconds * 1e9);
    now = start;
    while (rc == 0 && r->commits < o->count && now < deadline) {
        uint64_t t0 = now;
        uint64_t seq = r->commits;
        unsigned char key_bytes[8];
        MDB_val key = {sizeof(key_bytes), key_bytes};
        MDB_val val = {sizeof(record), record};
        unsigned i = 0;
        for (i = 0; i < 8; i++) /* big-endian: appends in key order */
            key_bytes[i] = (unsigned char)(seq >> (56 - 8 * i));
        what = "mdb_txn_begin";
        rc = mdb_txn_begin(env, NULL, 0, &txn);
        if (rc == 0) {
            what = "mdb_put";
            rc = mdb_put(txn, dbi, &key, &val, MDB_APPEND);
        }
        if (rc == 0) {
            what = "mdb_txn_commit";
            rc = mdb_txn_commit(txn);
            txn = NULL;
        }
        if (rc == 0) {
            now = disk_clock_ns();
            hist_record(&r->latency, now - t0);
            r->commits++;
        }
    }
    if (txn != NULL)
        mdb_txn_abort(txn);
    if (env != NULL)
        mdb_env_close(env);
    if (rc != 0) {
        fprintf(stderr, "disk-bench: %s in %s: %s\n", what, path,
                mdb_strerror(rc));
        return -1;
    }
    r->seconds = (double)(now - start) / 1e9;
    r->ran = true;
    snprintf(path, sizeof(path), "%s/lmdb/data.mdb", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lmdb/lock.mdb", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lmdb", dir);
    return rmdir(path) == 0 ? 0 : -1;
}

static double disk_rate(const struct disk_result *r)
{
    return r->seconds > 0 ? (double)r->commits / r->seconds : 0;
}

static void disk_json_mode(FILE *f, const char *name,
                           const struct disk_result *r, bool first)
{
    const struct hist *h = &r->latency;
    fprintf(f,
            "%s\"%s\":{\"commits\":%" PRIu64 ",\"seconds\":%.3f,"
            "\"commits_per_s\":%.1f,\"latency_us\":{\"p50\":%.1f,"
            "\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f,\"mean\":%.1f}}",
            first ? "" : ",", name, r->commits, r->seconds, disk_rate(r),
            (double)hist_value_at(h, 0.5) / 1e3,
            (double)hist_value_at(h, 0.99) / 1e3,
            (double)hist_value_at(h, 0.999) / 1e3, (double)h->max / 1e3,
            h->count ? h->sum / (double)h->count / 1e3 : 0.0);
}

static void disk_report(const struct disk_opts *o, const struct disk_result *fs,
                        const struct disk_result *lm, FILE *f, bool table)
{
    const struct disk_result *rs[2] = {fs, lm};
    const char *names[2] = {"fdatasync", "lmdb"};
    bool first = true;
    int i = 0;

    if (table) {
        printf("disk-bench: %u-byte records, one per durable commit, in %s\n",
               DISK_RECORD_BYTES, o->dir);
        printf("mode        commits   seconds  commits/s   p50 ms   p99 ms"
               "   max ms\n");
        for (i = 0; i < 2; i++) {
            if (!rs[i]->ran)
                continue;
            printf("%-10s %8" PRIu64 " %9.3f %10.1f %8.3f %8.3f %8.3f\n",
                   names[i], rs[i]->commits, rs[i]->seconds, disk_rate(rs[i]),
                   (double)hist_value_at(&rs[i]->latency, 0.5) / 1e6,
                   (double)hist_value_at(&rs[i]->latency, 0.99) / 1e6,
                   (double)rs[i]->latency.max / 1e6);
        }
    }
    fprintf(f, "{\"bench\":\"disk\",\"dir\":\"");
    /* The directory is user input: escape what JSON needs escaped. */
    for (i = 0; o->dir[i] != '\0'; i++) {
        unsigned char ch = (unsigned char)o->dir[i];
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fprintf(f, "\",\"record_bytes\":%u,\"modes\":{", DISK_RECORD_BYTES);
    for (i = 0; i < 2; i++) {
        if (!rs[i]->ran)
            continue;
        disk_json_mode(f, names[i], rs[i], first);
        first = false;
    }
    fprintf(f, "}}\n");
}

int main(int argc, char **argv)
{
    static struct disk_result fs_result, lmdb_result; /* large: static */
    struct disk_opts o;
    char dir[DISK_PATH_BYTES];
    FILE *json_file = NULL;
    int rv = disk_opts_parse(argc, argv, &o);

    if (rv != 0)
        return rv;
    if (strlen(o.dir) + 40 >= sizeof(dir)) {
        fprintf(stderr, "disk-bench: --dir is longer than %u bytes\n",
                DISK_PATH_BYTES - 40u);
        return 2;
    }
    snprintf(dir, sizeof(dir), "%s/disk-bench-XXXXXX", o.dir);
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr,
                "disk-bench: cannot create a directory under %s: "
                "%s\n",
                o.dir, strerror(errno));
        return 1;
    }
    if (o.do_fsync && disk_fsync_run(&o, dir, &fs_result) != 0)
        rv = 1;
    if (rv == 0 && o.do_lmdb && disk_lmdb_run(&o, dir, &lmdb_result) != 0)
        rv = 1;
    if (rmdir(dir) != 0)
        fprintf(stderr, "disk-bench: rmdir %s: %s\n", dir, strerror(errno));
    if (rv != 0)
        return rv;
    assert(fs_result.ran || lmdb_result.ran);
    disk_report(&o, &fs_result, &lmdb_result, stdout, true);
    if (o.json_path != NULL) {
        json_file = fopen(o.json_path, "w");
        if (json_file == NULL) {
            fprintf(stderr, "disk-bench: %s: %s\n", o.json_path,
                    strerror(errno));
            return 1;
        }
        disk_report(&o, &fs_result, &lmdb_result, json_file, false);
        if (fclose(json_file) != 0) {
            fprintf(stderr, "disk-bench: %s: %s\n", o.json_path,
                    strerror(errno));
            return 1;
        }
    }
    return 0;
}
