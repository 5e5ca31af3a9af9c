/* test_director.c: the exporter director with fake exporters: ordering,
 * backpressure and re-reads, backoff on failure without blocking another
 * exporter, pause / soft pause / resume, filtered records advancing the
 * position, disable/enable, failed host reads, and acknowledgements
 * arriving on the loop thread.
 *
 * A fake exporter records every position it exported (under a mutex, it
 * runs on its worker thread) and acknowledges each one; knobs make it
 * fail, go slow or acknowledge nothing.
 */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "exporter/director.h"
#include "proto/record.pb-c.h"
#include "test_host.h"

#define FAKE_SEEN_MAX 20000

struct fake {
    pthread_mutex_t lock;
    int64_t seen[FAKE_SEEN_MAX];
    size_t seen_count;
    size_t calls;      /* export_record calls, failed ones included */
    size_t fail_first; /* fail this many export calls */
    bool fail_always;  /* fail while set */
    unsigned sleep_ms; /* per export */
    bool no_ack;       /* never acknowledge */
    bool opened;
    bool closed;
    struct exporter_controller *ctl;
};

static int fake_configure(struct exporter_context *ctx, void **instance)
{
    (void)ctx;
    (void)instance;
    return EXPORTER_E_INVALID; /* instances are made by the tests */
}

static int fake_open(void *instance, struct exporter_controller *ctl)
{
    struct fake *f = instance;
    pthread_mutex_lock(&f->lock);
    f->opened = true;
    f->ctl = ctl;
    pthread_mutex_unlock(&f->lock);
    return 0;
}

static int fake_export(void *instance, const struct exporter_record *r)
{
    struct fake *f = instance;
    if (f->sleep_ms > 0) {
        struct timespec ts = {0, (long)f->sleep_ms * 1000000L};
        nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&f->lock);
    f->calls++;
    bool fail = f->fail_always || f->fail_first > 0;
    if (f->fail_first > 0) {
        f->fail_first--;
    }
    if (!fail) {
        assert_true(f->seen_count < FAKE_SEEN_MAX);
        f->seen[f->seen_count++] = r->position;
    }
    bool ack = !fail && !f->no_ack;
    pthread_mutex_unlock(&f->lock);
    if (fail) {
        return EXPORTER_E_IO;
    }
    if (ack) {
        char meta[32];
        int n = snprintf(meta, sizeof(meta), "m%lld", (long long)r->position);
        assert_int_equal(
            f->ctl->acknowledge(f->ctl, r->position, meta, (size_t)n), 0);
    }
    return 0;
}

static void fake_close(void *instance)
{
    struct fake *f = instance;
    pthread_mutex_lock(&f->lock);
    f->closed = true;
    pthread_mutex_unlock(&f->lock);
}

static const struct exporter_def fake_def = {
    .abi_version = EXPORTER_ABI_VERSION,
    .type = "fake",
    .configure = fake_configure,
    .open = fake_open,
    .export_record = fake_export,
    .close = fake_close,
};

static struct fake *fake_new(void)
{
    struct fake *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    pthread_mutex_init(&f->lock, NULL);
    return f;
}

static void fake_free(struct fake *f)
{
    pthread_mutex_destroy(&f->lock);
    free(f);
}

static size_t fake_seen(struct fake *f)
{
    pthread_mutex_lock(&f->lock);
    size_t n = f->seen_count;
    pthread_mutex_unlock(&f->lock);
    return n;
}

static void add_fake(struct test_host *h, const char *id, struct fake *f,
                     int64_t position)
{
    struct exporter_director_exporter e = {
        .id = id, .def = &fake_def, .instance = f, .position = position};
    for (size_t i = 0; i < EXPORTER_RECORD_TYPES_MAX; i++) {
        e.filter.record_types[i] = true;
    }
    for (size_t i = 0; i < EXPORTER_VALUE_TYPES_MAX; i++) {
        e.filter.value_types[i] = true;
    }
    assert_int_equal(exporter_director_add(&h->director, &e), 0);
}

/* Positions seen are exactly the log's, in order, no duplicates. */
static void assert_seen_all(struct test_host *h, struct fake *f)
{
    pthread_mutex_lock(&f->lock);
    assert_int_equal(f->seen_count, h->count);
    for (size_t i = 0; i < h->count; i++) {
        assert_int_equal(f->seen[i], h->positions[i]);
    }
    pthread_mutex_unlock(&f->lock);
}

struct seen_arg {
    struct fake *f;
    size_t n;
};

static bool cond_seen(struct test_host *h, void *arg)
{
    (void)h;
    struct seen_arg *a = arg;
    return fake_seen(a->f) >= a->n;
}

struct ack_arg {
    const char *id;
    int64_t position;
};

static bool cond_acked(struct test_host *h, void *arg)
{
    struct ack_arg *a = arg;
    struct test_host_ack *ack = test_host_ack(h, a->id);
    return ack != NULL && ack->position >= a->position;
}

static struct test_host *host_new(size_t queue_max)
{
    struct test_host *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    struct exporter_director_options o = {
        .partition_id = 1,
        .queue_records_max = queue_max,
        .read_records_max = 64,
        .backoff_ms_min = 20,
        .backoff_ms_max = 160,
    };
    test_host_init(h, &o);
    return h;
}

static void host_free(struct test_host *h)
{
    test_host_close(h);
    assert_false(h->ack_off_loop);
    free(h);
}

/* ------------------------------------------------------------------------ */

static void test_order_and_acks(void **state)
{
    (void)state;
    struct test_host *h = host_new(4096);
    struct fake *a = fake_new();
    struct fake *b = fake_new();
    add_fake(h, "a", a, -1);
    add_fake(h, "b", b, -1);
    assert_int_equal(exporter_director_position(&h->director), -1);
    /* Records committed before start are read, later ones offered. */
    test_host_append_events(h, 100);
    assert_int_equal(exporter_director_start(&h->director), 0);
    test_host_append_events(h, 900);
    int64_t last = h->positions[h->count - 1];
    struct ack_arg wa = {"a", last};
    struct ack_arg wb = {"b", last};
    assert_true(test_host_run_until(h, cond_acked, &wa, 10000));
    assert_true(test_host_run_until(h, cond_acked, &wb, 10000));
    assert_seen_all(h, a);
    assert_seen_all(h, b);
    assert_int_equal(exporter_director_position(&h->director), last);
    char expect[32];
    snprintf(expect, sizeof(expect), "m%lld", (long long)last);
    assert_string_equal(test_host_ack(h, "a")->metadata, expect);
    assert_true(h->reads >= 1);
    assert_false(h->ack_off_loop);
    assert_string_equal(
        exporter_director_phase_name(exporter_director_phase(&h->director)),
        "EXPORTING");
    host_free(h);
    assert_true(a->opened && a->closed);
    fake_free(a);
    fake_free(b);
}

static void test_backpressure_rereads(void **state)
{
    (void)state;
    struct test_host *h = host_new(8);
    struct fake *slow = fake_new();
    struct fake *fast = fake_new();
    slow->sleep_ms = 1;
    add_fake(h, "slow", slow, -1);
    add_fake(h, "fast", fast, -1);
    assert_int_equal(exporter_director_start(&h->director), 0);
    test_host_run_for(h, 20);
    bool saw_lagging = false;
    for (int round = 0; round < 20; round++) {
        test_host_append_events(h, 20);
        struct exporter_director_info info;
        for (size_t i = 0; i < EXPORTER_DIRECTOR_EXPORTERS_MAX; i++) {
            if (exporter_director_info(&h->director, i, &info)) {
                assert_true(info.queued_records <= 8);
                saw_lagging = saw_lagging || info.lagging;
            }
        }
        test_host_run_for(h, 3);
    }
    assert_true(saw_lagging);
    struct seen_arg ws = {slow, h->count};
    struct seen_arg wf = {fast, h->count};
    assert_true(test_host_run_until(h, cond_seen, &ws, 20000));
    assert_true(test_host_run_until(h, cond_seen, &wf, 20000));
    test_host_run_for(h, 20);
    assert_seen_all(h, slow);
    assert_seen_all(h, fast);
    assert_true(h->fed > 0); /* re-reads delivered part of the records */
    host_free(h);
    fake_free(slow);
    fake_free(fast);
}

static void test_failure_backoff_isolated(void **state)
{
    (void)state;
    struct test_host *h = host_new(64);
    struct fake *bad = fake_new();
    struct fake *good = fake_new();
    bad->fail_always = true;
    add_fake(h, "bad", bad, -1);
    add_fake(h, "good", good, -1);
    assert_int_equal(exporter_director_start(&h->director), 0);
    test_host_append_events(h, 300);
    struct seen_arg wg = {good, 300};
    assert_true(test_host_run_until(h, cond_seen, &wg, 10000));
    /* The good one finished although the bad one never succeeded. */
    assert_int_equal(fake_seen(bad), 0);
    test_host_run_for(h, 400);
    struct exporter_director_info info;
    bool found = false;
    for (size_t i = 0; i < EXPORTER_DIRECTOR_EXPORTERS_MAX; i++) {
        if (exporter_director_info(&h->director, i, &info) &&
            strcmp(info.id, "bad") == 0) {
            found = true;
            break;
        }
    }
    assert_true(found);
    assert_true(info.failing);
    assert_true(info.backoff_ms >= 20 && info.backoff_ms <= 160);
    /* 400 ms at 20,40,80,160,160.. ms backoff: a handful of tries, not a
     * busy loop. */
    pthread_mutex_lock(&bad->lock);
    size_t calls = bad->calls;
    pthread_mutex_unlock(&bad->lock);
    assert_true(calls >= 3 && calls <= 12);
    /* The compaction bound is held back by the failing exporter. */
    assert_int_equal(exporter_director_position(&h->director), -1);
    pthread_mutex_lock(&bad->lock);
    bad->fail_always = false;
    pthread_mutex_unlock(&bad->lock);
    struct seen_arg wb = {bad, 300};
    assert_true(test_host_run_until(h, cond_seen, &wb, 10000));
    assert_seen_all(h, bad);
    struct ack_arg wa = {"bad", h->positions[299]};
    assert_true(test_host_run_until(h, cond_acked, &wa, 5000));
    assert_int_equal(exporter_director_position(&h->director),
                     h->positions[299]);
    host_free(h);
    fake_free(bad);
    fake_free(good);
}

static void test_pause_resume(void **state)
{
    (void)state;
    struct test_host *h = host_new(64);
    struct fake *f = fake_new();
    add_fake(h, "f", f, -1);
    assert_int_equal(exporter_director_start(&h->director), 0);
    test_host_append_events(h, 10);
    struct ack_arg w10 = {"f", h->positions[9]};
    assert_true(test_host_run_until(h, cond_acked, &w10, 5000));

    /* Hard pause: nothing is exported. */
    exporter_director_pause(&h->director, false);
    assert_string_equal(
        exporter_director_phase_name(exporter_director_phase(&h->director)),
        "PAUSED");
    test_host_append_events(h, 10);
    test_host_run_for(h, 150);
    assert_int_equal(fake_seen(f), 10);
    assert_int_equal(test_host_ack(h, "f")->position, h->positions[9]);
    exporter_director_resume(&h->director);
    struct ack_arg w20 = {"f", h->positions[19]};
    assert_true(test_host_run_until(h, cond_acked, &w20, 5000));

    /* Soft pause: exported, but the host is not told. */
    exporter_director_pause(&h->director, true);
    assert_string_equal(
        exporter_director_phase_name(exporter_director_phase(&h->director)),
        "SOFT_PAUSED");
    test_host_append_events(h, 10);
    struct seen_arg w30 = {f, 30};
    assert_true(test_host_run_until(h, cond_seen, &w30, 5000));
    test_host_run_for(h, 50);
    assert_int_equal(test_host_ack(h, "f")->position, h->positions[19]);
    assert_int_equal(exporter_director_position(&h->director),
                     h->positions[19]);
    struct exporter_director_info info;
    assert_true(exporter_director_info(&h->director, 0, &info));
    assert_int_equal(info.position_memory, h->positions[29]);
    /* Soft -> hard -> resume: the held acknowledgement is passed on. */
    exporter_director_pause(&h->director, false);
    exporter_director_resume(&h->director);
    assert_int_equal(test_host_ack(h, "f")->position, h->positions[29]);
    test_host_append_events(h, 5);
    struct ack_arg w35 = {"f", h->positions[34]};
    assert_true(test_host_run_until(h, cond_acked, &w35, 5000));
    assert_seen_all(h, f);
    host_free(h);
    fake_free(f);
}

static void test_filter_advances_position(void **state)
{
    (void)state;
    struct test_host *h = host_new(64);
    struct fake *f = fake_new();
    struct exporter_director_exporter e = {
        .id = "events", .def = &fake_def, .instance = f, .position = -1};
    for (size_t i = 0; i < EXPORTER_VALUE_TYPES_MAX; i++) {
        e.filter.value_types[i] = true;
    }
    e.filter.record_types[TANDEM__RECORD__RECORD_TYPE__EVENT] = true;
    assert_int_equal(exporter_director_add(&h->director, &e), 0);
    assert_int_equal(exporter_director_start(&h->director), 0);
    for (int i = 0; i < 20; i++) {
        size_t len = 0;
        uint8_t *b = test_host_record_new(
            TANDEM__RECORD__RECORD_TYPE__COMMAND,
            TANDEM__RECORD__VALUE_TYPE__PROCESS_INSTANCE, 0, 0, 1, &len);
        test_host_append(h, b, len);
    }
    struct ack_arg w = {"events", h->positions[19]};
    assert_true(test_host_run_until(h, cond_acked, &w, 5000));
    assert_int_equal(fake_seen(f), 0);
    /* A malformed record is skipped (logged), not retried forever. */
    uint8_t *junk = malloc(3);
    memcpy(junk, "\xff\xff\xff", 3);
    test_host_append(h, junk, 3);
    test_host_append_events(h, 1);
    struct seen_arg ws = {f, 1};
    assert_true(test_host_run_until(h, cond_seen, &ws, 5000));
    assert_int_equal(f->seen[0], h->positions[21]);
    host_free(h);
    fake_free(f);
}

static void test_disable_enable(void **state)
{
    (void)state;
    struct test_host *h = host_new(64);
    struct fake *a = fake_new();
    struct fake *b = fake_new();
    b->no_ack = true;
    add_fake(h, "a", a, -1);
    add_fake(h, "b", b, -1);
    assert_int_equal(exporter_director_start(&h->director), 0);
    test_host_append_events(h, 10);
    struct seen_arg wb = {b, 10};
    assert_true(test_host_run_until(h, cond_seen, &wb, 5000));
    struct ack_arg wa = {"a", h->positions[9]};
    assert_true(test_host_run_until(h, cond_acked, &wa, 5000));
    /* b acknowledges nothing: it holds the bound back until disabled. */
    assert_int_equal(exporter_director_position(&h->director), -1);
    assert_int_equal(exporter_director_disable(&h->director, "b"), 0);
    assert_int_equal(exporter_director_disable(&h->director, "nope"),
                     EXPORTER_E_NOTFOUND);
    assert_int_equal(exporter_director_position(&h->director), h->positions[9]);
    /* Re-enable from a's position (Zeebe's initializeFrom): it exports
     * only what comes after. */
    struct fake *b2 = fake_new();
    struct exporter_director_exporter e = {.id = "b",
                                           .def = &fake_def,
                                           .instance = b2,
                                           .position = h->positions[9]};
    memset(&e.filter, 1, sizeof(e.filter));
    int rc = EXPORTER_E_BUSY;
    for (int i = 0; i < 500 && rc == EXPORTER_E_BUSY; i++) {
        rc = exporter_director_add(&h->director, &e);
        if (rc == EXPORTER_E_BUSY) {
            test_host_run_for(h, 5); /* the old worker is still exiting */
        }
    }
    assert_int_equal(rc, 0);
    assert_true(b->closed);
    test_host_append_events(h, 5);
    struct seen_arg wb2 = {b2, 5};
    assert_true(test_host_run_until(h, cond_seen, &wb2, 5000));
    test_host_run_for(h, 30);
    assert_int_equal(fake_seen(b2), 5);
    assert_int_equal(b2->seen[0], h->positions[10]);
    host_free(h);
    fake_free(a);
    fake_free(b);
    fake_free(b2);
}

static void test_read_failure_retried(void **state)
{
    (void)state;
    struct test_host *h = host_new(64);
    struct fake *f = fake_new();
    add_fake(h, "f", f, -1);
    test_host_append_events(h, 50);
    h->read_failures_left = 2;
    assert_int_equal(exporter_director_start(&h->director), 0);
    struct seen_arg w = {f, 50};
    assert_true(test_host_run_until(h, cond_seen, &w, 5000));
    assert_true(h->reads >= 3);
    assert_seen_all(h, f);
    host_free(h);
    fake_free(f);
}

static void test_add_errors(void **state)
{
    (void)state;
    struct test_host *h = host_new(64);
    struct fake *f = fake_new();
    add_fake(h, "f", f, -1);
    struct exporter_director_exporter e = {
        .id = "f", .def = &fake_def, .instance = f, .position = -1};
    assert_int_equal(exporter_director_add(&h->director, &e), EXPORTER_E_BUSY);
    e.id = "";
    assert_int_equal(exporter_director_add(&h->director, &e),
                     EXPORTER_E_INVALID);
    e.id = "g";
    e.metadata_len = EXPORTER_METADATA_BYTES_MAX + 1;
    e.metadata = "x";
    assert_int_equal(exporter_director_add(&h->director, &e),
                     EXPORTER_E_INVALID);
    /* Closed before start: the instance is closed on the loop thread. */
    host_free(h);
    assert_true(f->closed);
    assert_false(f->opened);
    fake_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_acks),
        cmocka_unit_test(test_backpressure_rereads),
        cmocka_unit_test(test_failure_backoff_isolated),
        cmocka_unit_test(test_pause_resume),
        cmocka_unit_test(test_filter_advances_position),
        cmocka_unit_test(test_disable_enable),
        cmocka_unit_test(test_read_failure_retried),
        cmocka_unit_test(test_add_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
