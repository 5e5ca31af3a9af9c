/* test_storage_crash.c: kill -9 durability test of broker/storage.
 *
 * Each round forks a child that reopens the storage, then commits batches
 * in a loop (entries for two partitions, a hard state, now and then a
 * compaction with a snapshot) and, after each storage_batch_commit()
 * returned 0, writes the last committed index of each partition to a pipe.
 * The parent waits for the first report, lets the child run for a random
 * extra time, SIGKILLs it (often in the middle of a commit), drains the
 * pipe, then reopens the storage and checks that every reported entry is
 * present with the right bytes, the log is contiguous after the snapshot
 * and the snapshot bytes match their index. Bounded: ROUNDS rounds, each
 * child living at most a few hundred milliseconds after its first commit.
 * The seed is printed; TANDEM_CRASH_SEED=<n> replays a choice of delays. */
#define _XOPEN_SOURCE 700

#include <errno.h>
#include <ftw.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "broker/storage.h"

#define ROUNDS 6
#define PARTITIONS 2
#define COMPACT_EVERY 20     /* commits between compactions of partition 1 */
#define KEEP_AFTER_COMPACT 8 /* entries kept after a compaction */
#define FIRST_REPORT_MS 10000
#define EXTRA_MS_MAX 300

static uint64_t mix(uint64_t x)
{
    x += UINT64_C(0x9E3779B97F4A7C15);
    x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
    return x ^ (x >> 31);
}

/* The payload of entry index of partition: size and bytes derive from
 * (partition, index); every third entry is compressible text. */
static size_t payload_len(uint32_t partition, raft_index index)
{
    return (size_t)(mix(partition * 1000003u + index) % 3000);
}

static void payload_fill(uint8_t *p, size_t len, uint32_t partition,
                         raft_index index)
{
    uint64_t seed = mix(((uint64_t)partition << 48) ^ index);
    for (size_t i = 0; i < len; i++) {
        if (index % 3 == 0) {
            p[i] = (uint8_t)("crash test payload "[i % 19]);
        } else {
            if (i % 8 == 0) {
                seed = mix(seed);
            }
            p[i] = (uint8_t)(seed >> (8 * (i % 8)));
        }
    }
}

static size_t snapshot_len(raft_index index)
{
    return (size_t)(index * 37 % 300000);
}

static struct raft_snapshot_meta snapshot_meta(raft_index index)
{
    struct raft_snapshot_meta m;
    memset(&m, 0, sizeof(m));
    m.index = index;
    m.term = 1;
    raft_config_init(&m.config);
    raft_config_add(&m.config, 1, RAFT_VOTER, 1);
    return m;
}

/* ------------------------------------------------------------------------
 * Child: commit forever, report after each successful commit
 * --------------------------------------------------------------------- */

static void child_die(const char *what, int rv, struct storage *s)
{
    fprintf(stderr, "crash child: %s: %s: %s\n", what, storage_strerror(rv),
            s != NULL ? storage_errmsg(s) : "");
    _exit(3);
}

static void child_run(const char *dir, int fd, uint64_t seed)
{
    struct storage *s;
    struct storage_batch *b;
    raft_index last[PARTITIONS];
    raft_index snap = 0;
    uint8_t *buf = malloc(300000);
    uint64_t commits = 0;
    int rv;

    if (buf == NULL) {
        _exit(4);
    }
    rv = storage_open(dir, NULL, &s);
    if (rv != 0) {
        child_die("open", rv, NULL);
    }
    for (uint32_t p = 0; p < PARTITIONS; p++) {
        struct storage_state st;
        rv = storage_load(s, p, &st);
        if (rv != 0) {
            child_die("load", rv, s);
        }
        last[p] = st.entry_count > 0 ? st.entries[st.entry_count - 1].index
                  : st.has_snapshot  ? st.snapshot.index
                                     : 0;
        if (p == 1 && st.has_snapshot) {
            snap = st.snapshot.index;
        }
        storage_state_close(&st);
    }
    rv = storage_batch_new(s, &b);
    if (rv != 0) {
        child_die("batch", rv, s);
    }
    for (;;) {
        struct raft_hard_state hs;
        uint64_t report[PARTITIONS];

        storage_batch_reset(b);
        for (uint32_t p = 0; p < PARTITIONS; p++) {
            struct raft_entry es[16];
            size_t n = 1 + (size_t)((seed = mix(seed)) % 16);
            for (size_t i = 0; i < n; i++) {
                raft_index index = last[p] + 1 + i;
                size_t len = payload_len(p, index);
                uint8_t *payload = malloc(len + 1);
                if (payload == NULL) {
                    _exit(4);
                }
                payload_fill(payload, len, p, index);
                es[i].index = index;
                es[i].term = 1;
                es[i].type = RAFT_ENTRY_NORMAL;
                es[i].buf.base = payload;
                es[i].buf.len = len;
            }
            rv = storage_batch_append(b, p, es, n);
            for (size_t i = 0; i < n; i++) {
                free((void *)es[i].buf.base);
            }
            if (rv != 0) {
                child_die("append", rv, s);
            }
            last[p] += n;
        }
        memset(&hs, 0, sizeof(hs));
        hs.term = commits + 1;
        hs.vote = 1;
        rv = storage_batch_put_hard_state(b, 0, &hs);
        if (rv == 0 && ++commits % COMPACT_EVERY == 0 &&
            last[1] > snap + KEEP_AFTER_COMPACT) {
            struct raft_snapshot_meta meta;
            struct raft_buf data;
            snap = last[1] - KEEP_AFTER_COMPACT;
            meta = snapshot_meta(snap);
            data.base = buf;
            data.len = snapshot_len(snap);
            payload_fill(buf, data.len, 99, snap);
            rv = storage_batch_compact(b, 1, &meta, data);
        }
        if (rv != 0) {
            child_die("put", rv, s);
        }
        rv = storage_batch_commit(s, b);
        if (rv != 0) {
            child_die("commit", rv, s);
        }
        for (uint32_t p = 0; p < PARTITIONS; p++) {
            report[p] = last[p];
        }
        if (write(fd, report, sizeof(report)) != (ssize_t)sizeof(report)) {
            _exit(5);
        }
    }
}

/* ------------------------------------------------------------------------
 * Parent
 * --------------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Reads whole reports from fd until timeout_ms passes (or EOF when
 * timeout_ms < 0), keeping the latest in reported. Returns how many. */
static size_t reports_read(int fd, int timeout_ms, raft_index *reported)
{
    uint64_t report[PARTITIONS];
    size_t got = 0;
    size_t have = 0;

    for (;;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        int rc = poll(&pfd, 1, timeout_ms < 0 ? 10000 : timeout_ms);
        ssize_t n;
        if (rc == 0) {
            break;
        }
        assert_true(rc > 0 || errno == EINTR);
        if (rc < 0) {
            continue;
        }
        n = read(fd, (uint8_t *)report + have, sizeof(report) - have);
        if (n <= 0) {
            break; /* EOF: the child is gone */
        }
        have += (size_t)n;
        if (have == sizeof(report)) {
            for (int p = 0; p < PARTITIONS; p++) {
                assert_true(report[p] >= reported[p]);
                reported[p] = report[p];
            }
            have = 0;
            got++;
            if (timeout_ms >= 0) {
                break;
            }
        }
    }
    return got;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void verify(const char *dir, const raft_index *reported)
{
    struct storage *s;
    uint8_t *expect = malloc(300000);
    char err[STORAGE_ERRMSG_BYTES];
    int rv;

    assert_non_null(expect);
    rv = storage_open_ex(dir, NULL, &s, err);
    if (rv != 0) {
        fail_msg("reopen after kill: %s: %s", storage_strerror(rv), err);
    }
    for (uint32_t p = 0; p < PARTITIONS; p++) {
        struct storage_state st;
        raft_index last;
        rv = storage_load(s, p, &st);
        if (rv != 0) {
            fail_msg("load after kill: %s: %s", storage_strerror(rv),
                     storage_errmsg(s));
        }
        last = st.entry_count > 0 ? st.entries[st.entry_count - 1].index
               : st.has_snapshot  ? st.snapshot.index
                                  : 0;
        if (last < reported[p]) {
            fail_msg("partition %u: reported %llu committed, only %llu "
                     "survived",
                     (unsigned)p, (unsigned long long)reported[p],
                     (unsigned long long)last);
        }
        if (st.has_snapshot) {
            assert_int_equal(p, 1);
            assert_int_equal(st.snapshot_data.len,
                             snapshot_len(st.snapshot.index));
            payload_fill(expect, st.snapshot_data.len, 99, st.snapshot.index);
            assert_memory_equal(st.snapshot_data.base, expect,
                                st.snapshot_data.len);
        }
        for (size_t i = 0; i < st.entry_count; i++) {
            const struct raft_entry *e = &st.entries[i];
            size_t len = payload_len(p, e->index);
            assert_int_equal(e->buf.len, len);
            payload_fill(expect, len, p, e->index);
            if (len > 0) {
                assert_memory_equal(e->buf.base, expect, len);
            }
        }
        if (p == 0) {
            assert_true(st.has_hard_state);
        }
        storage_state_close(&st);
    }
    storage_close(s);
    free(expect);
}

static void test_kill9(void **state)
{
    char dir[64] = "/tmp/tandem-storage-crash-XXXXXX";
    raft_index reported[PARTITIONS] = {0};
    uint64_t seed;
    const char *env = getenv("TANDEM_CRASH_SEED");

    (void)state;
    seed = env != NULL ? strtoull(env, NULL, 10)
                       : (uint64_t)time(NULL) ^ (uint64_t)getpid();
    printf("# crash seed %llu\n", (unsigned long long)seed);
    assert_non_null(mkdtemp(dir));
    for (int round = 0; round < ROUNDS; round++) {
        int fds[2];
        pid_t pid;
        int status;
        int extra_ms;
        size_t before;

        assert_int_equal(pipe(fds), 0);
        seed = mix(seed);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            child_run(dir, fds[1], seed);
            _exit(0);
        }
        close(fds[1]);
        before = reports_read(fds[0], FIRST_REPORT_MS, reported);
        assert_int_equal(before, 1);
        extra_ms = (int)(mix(seed + 1) % EXTRA_MS_MAX);
        /* Keep draining while the child runs, so that it never blocks on
         * a full pipe and is killed in the middle of its work. */
        {
            int64_t deadline = now_ms() + extra_ms;
            int64_t left;
            while ((left = deadline - now_ms()) > 0) {
                reports_read(fds[0], (int)left, reported);
            }
        }
        assert_int_equal(kill(pid, SIGKILL), 0);
        reports_read(fds[0], -1, reported);
        close(fds[0]);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGKILL);
        printf("# round %d: killed after +%d ms, reported %llu/%llu\n", round,
               extra_ms, (unsigned long long)reported[0],
               (unsigned long long)reported[1]);
        verify(dir, reported);
    }
    assert_int_equal(nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill9),
    };
    return cmocka_run_group_tests_name("storage-crash", tests, NULL, NULL);
}
