/* test_host.h: a fake partition for the exporter tests: an in-memory log
 * of packed tandem.record.Records that offers each appended record to an
 * exporter director and answers the director's re-reads, and records the
 * acknowledgements the director hands back (checking they arrive on the
 * loop thread).
 *
 * Data flow: test_host_append() -> log + exporter_director_offer();
 * director -> host read -> exporter_director_feed() from the log;
 * director -> host acknowledged -> acks[] (per exporter id).
 */
#ifndef TANDEM_TESTS_EXPORTER_TEST_HOST_H
#define TANDEM_TESTS_EXPORTER_TEST_HOST_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "exporter/director.h"

#define TEST_HOST_RECORDS_MAX 20000
#define TEST_HOST_ACKS_MAX 8

struct test_host_ack {
    char id[EXPORTER_DIRECTOR_ID_MAX];
    int64_t position;
    char metadata[1024];
    size_t metadata_len;
    size_t count;
};

struct test_host {
    uv_loop_t loop;
    uv_timer_t tick;
    struct exporter_director director;
    pthread_t loop_thread;
    size_t count; /* records in the log */
    int64_t positions[TEST_HOST_RECORDS_MAX];
    uint8_t *bytes[TEST_HOST_RECORDS_MAX];
    size_t lens[TEST_HOST_RECORDS_MAX];
    size_t reads;              /* host->read calls */
    size_t read_failures_left; /* fail this many reads */
    size_t fed;                /* records fed by reads */
    struct test_host_ack acks[TEST_HOST_ACKS_MAX];
    bool ack_off_loop; /* an ack came on another thread */
    bool closed;
};

/* The position of the i-th record (0-based): two records per entry. */
int64_t test_host_position(size_t i);

/* Packs a record with a ProcessInstanceRecordValue (value_type
 * PROCESS_INSTANCE) or a JobRecordValue (JOB) into a new buffer. */
uint8_t *test_host_record_new(int record_type, int value_type, uint32_t intent,
                              uint64_t key, int64_t timestamp, size_t *len);

void test_host_init(struct test_host *h,
                    const struct exporter_director_options *options);
/* Appends a record (ownership of bytes passes) and offers it. */
void test_host_append(struct test_host *h, uint8_t *bytes, size_t len);
/* Appends n EVENT records alternating PROCESS_INSTANCE and JOB. */
void test_host_append_events(struct test_host *h, size_t n);
/* Runs the loop until cond(h, arg) or timeout_ms; returns cond's value. */
bool test_host_run_until(struct test_host *h,
                         bool (*cond)(struct test_host *h, void *arg),
                         void *arg, uint64_t timeout_ms);
/* Runs the loop for ms. */
void test_host_run_for(struct test_host *h, uint64_t ms);
/* The acknowledgement state of exporter id (NULL if none yet). */
struct test_host_ack *test_host_ack(struct test_host *h, const char *id);
/* Closes the director, runs the loop until it is closed, closes the loop
 * (asserting nothing leaked) and frees the log. */
void test_host_close(struct test_host *h);

#endif /* TANDEM_TESTS_EXPORTER_TEST_HOST_H */
