/* test_host.c: the fake partition of test_host.h. */
#define _POSIX_C_SOURCE 200809L

#include "test_host.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/record.pb-c.h"

int64_t test_host_position(size_t i)
{
    return (int64_t)(((uint64_t)(i / 2) + 1) << 16 | (uint64_t)(i % 2));
}

uint8_t *test_host_record_new(int record_type, int value_type, uint32_t intent,
                              uint64_t key, int64_t timestamp, size_t *len)
{
    uint8_t value[512];
    size_t value_len = 0;
    if (value_type == TANDEM__RECORD__VALUE_TYPE__JOB) {
        Tandem__Record__JobRecordValue v =
            TANDEM__RECORD__JOB_RECORD_VALUE__INIT;
        v.type = "payment";
        v.worker = "w1";
        v.retries = 3;
        v.process_instance_key = (int64_t)key + 1000;
        v.custom_headers = "{\"a\":\"b\"}";
        v.variables = "{\"x\":1}";
        v.tenant_id = "<default>";
        value_len = tandem__record__job_record_value__pack(&v, value);
    } else {
        Tandem__Record__ProcessInstanceRecordValue v =
            TANDEM__RECORD__PROCESS_INSTANCE_RECORD_VALUE__INIT;
        v.bpmn_process_id = "order";
        v.version = 1;
        v.process_definition_key = 77;
        v.process_instance_key = (int64_t)key;
        v.element_id = "task";
        v.flow_scope_key = -1;
        v.bpmn_element_type = "SERVICE_TASK";
        v.parent_process_instance_key = -1;
        v.parent_element_instance_key = -1;
        v.bpmn_event_type = "UNSPECIFIED";
        v.tenant_id = "<default>";
        value_len =
            tandem__record__process_instance_record_value__pack(&v, value);
    }
    Tandem__Record__Record r = TANDEM__RECORD__RECORD__INIT;
    r.key = key;
    r.timestamp = timestamp;
    r.record_type = record_type;
    r.value_type = value_type;
    r.intent = intent;
    r.broker_version = "8.4.5";
    r.value.data = value;
    r.value.len = value_len;
    *len = tandem__record__record__get_packed_size(&r);
    uint8_t *out = malloc(*len);
    assert(out != NULL);
    tandem__record__record__pack(&r, out);
    return out;
}

static int test_host_read(void *data, struct exporter_director *d,
                          int64_t after, size_t max)
{
    struct test_host *h = data;
    assert(d == &h->director);
    h->reads++;
    if (h->read_failures_left > 0) {
        h->read_failures_left--;
        return -1;
    }
    size_t i = 0;
    while (i < h->count && h->positions[i] <= after) {
        i++;
    }
    size_t fed = 0;
    for (; i < h->count; i++) {
        if (fed == max) {
            return EXPORTER_DIRECTOR_READ_MORE;
        }
        if (exporter_director_feed(d, h->positions[i], h->bytes[i],
                                   h->lens[i]) != 0) {
            return EXPORTER_DIRECTOR_READ_MORE;
        }
        fed++;
        h->fed++;
    }
    return EXPORTER_DIRECTOR_READ_END;
}

struct test_host_ack *test_host_ack(struct test_host *h, const char *id)
{
    for (size_t i = 0; i < TEST_HOST_ACKS_MAX; i++) {
        if (h->acks[i].count > 0 && strcmp(h->acks[i].id, id) == 0) {
            return &h->acks[i];
        }
    }
    return NULL;
}

static void test_host_acknowledged(void *data, const char *id, int64_t position,
                                   const void *metadata, size_t metadata_len)
{
    struct test_host *h = data;
    if (!pthread_equal(pthread_self(), h->loop_thread)) {
        h->ack_off_loop = true;
    }
    struct test_host_ack *a = test_host_ack(h, id);
    for (size_t i = 0; a == NULL && i < TEST_HOST_ACKS_MAX; i++) {
        if (h->acks[i].count == 0) {
            a = &h->acks[i];
            snprintf(a->id, sizeof(a->id), "%s", id);
        }
    }
    assert(a != NULL);
    assert(position > a->position || a->count == 0);
    assert(metadata_len < sizeof(a->metadata));
    a->position = position;
    if (metadata_len > 0) {
        memcpy(a->metadata, metadata, metadata_len);
    }
    a->metadata[metadata_len] = '\0';
    a->metadata_len = metadata_len;
    a->count++;
}

static void test_host_log(void *data, int level, const char *id,
                          const char *message)
{
    (void)data;
    if (getenv("TEST_EXPORTER_VERBOSE") != NULL || level == 0) {
        fprintf(stderr, "[%d] %s: %s\n", level, id != NULL ? id : "-", message);
    }
}

static void test_host_tick(uv_timer_t *t)
{
    (void)t;
}

void test_host_init(struct test_host *h,
                    const struct exporter_director_options *options)
{
    memset(h, 0, sizeof(*h));
    h->loop_thread = pthread_self();
    int rc = uv_loop_init(&h->loop);
    assert(rc == 0);
    uv_timer_init(&h->loop, &h->tick);
    uv_timer_start(&h->tick, test_host_tick, 2, 2);
    struct exporter_director_host host = {
        .data = h,
        .read = test_host_read,
        .acknowledged = test_host_acknowledged,
        .log = test_host_log,
    };
    rc = exporter_director_init(&h->loop, &h->director, options, &host);
    assert(rc == 0);
    (void)rc;
}

void test_host_append(struct test_host *h, uint8_t *bytes, size_t len)
{
    assert(h->count < TEST_HOST_RECORDS_MAX);
    size_t i = h->count++;
    h->positions[i] = test_host_position(i);
    h->bytes[i] = bytes;
    h->lens[i] = len;
    int rc = exporter_director_offer(&h->director, h->positions[i], bytes, len);
    assert(rc == 0);
    (void)rc;
}

void test_host_append_events(struct test_host *h, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        size_t i = h->count;
        bool job = i % 2 == 1;
        size_t len = 0;
        uint8_t *b = test_host_record_new(
            TANDEM__RECORD__RECORD_TYPE__EVENT,
            job ? TANDEM__RECORD__VALUE_TYPE__JOB
                : TANDEM__RECORD__VALUE_TYPE__PROCESS_INSTANCE,
            job ? 0 : 3, (1ull << 51) | (i + 1), 1711584000000LL + (int64_t)i,
            &len);
        test_host_append(h, b, len);
    }
}

static uint64_t test_host_now_ms(void)
{
    return uv_hrtime() / 1000000u;
}

bool test_host_run_until(struct test_host *h,
                         bool (*cond)(struct test_host *h, void *arg),
                         void *arg, uint64_t timeout_ms)
{
    uint64_t deadline = test_host_now_ms() + timeout_ms;
    while (!cond(h, arg)) {
        if (test_host_now_ms() >= deadline) {
            return false;
        }
        uv_run(&h->loop, UV_RUN_ONCE);
    }
    return true;
}

void test_host_run_for(struct test_host *h, uint64_t ms)
{
    uint64_t deadline = test_host_now_ms() + ms;
    while (test_host_now_ms() < deadline) {
        uv_run(&h->loop, UV_RUN_ONCE);
    }
}

static void test_host_closed(struct exporter_director *d)
{
    struct test_host *h =
        (struct test_host *)((char *)d - offsetof(struct test_host, director));
    h->closed = true;
}

static bool test_host_is_closed(struct test_host *h, void *arg)
{
    (void)arg;
    return h->closed;
}

void test_host_close(struct test_host *h)
{
    exporter_director_close(&h->director, test_host_closed);
    bool ok = test_host_run_until(h, test_host_is_closed, NULL, 60000);
    assert(ok);
    (void)ok;
    uv_close((uv_handle_t *)&h->tick, NULL);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&h->loop);
    assert(rc == 0);
    (void)rc;
    for (size_t i = 0; i < h->count; i++) {
        free(h->bytes[i]);
    }
}
