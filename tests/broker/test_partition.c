/* test_partition.c: tests of broker/partition.c: keys, Zeebe's
 * correlation-key routing, requests turned into commands and queued,
 * processing rounds proposed through a single-node raft group (stop and
 * wait), applying to the engine, answers, backpressure, AwaitJobs waiters,
 * role changes, snapshots and corrupt entries. The raft node is driven by
 * hand: its updates are "persisted" at once and committed entries applied,
 * as the broker would. Engine state lives in a temporary directory. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "broker/partition.h"

#define ANSWERS_MAX 64

struct answers {
    uint64_t ids[ANSWERS_MAX];
    int body[ANSWERS_MAX];
    int code[ANSWERS_MAX];
    uint64_t keys[ANSWERS_MAX];
    char message[ANSWERS_MAX][256];
    size_t count;
};

static void on_answer(void *data, uint64_t request_id,
                      const Tandem__Command__Response *resp)
{
    struct answers *a = data;
    assert_true(a->count < ANSWERS_MAX);
    a->ids[a->count] = request_id;
    a->body[a->count] = (int)resp->body_case;
    a->code[a->count] = 0;
    a->keys[a->count] = 0;
    a->message[a->count][0] = '\0';
    if (resp->body_case == TANDEM__COMMAND__RESPONSE__BODY_ERROR) {
        a->code[a->count] = (int)resp->error->code;
        snprintf(a->message[a->count], sizeof(a->message[0]), "%s",
                 resp->error->message);
    } else if (resp->body_case ==
               TANDEM__COMMAND__RESPONSE__BODY_PUBLISH_MESSAGE) {
        a->keys[a->count] = (uint64_t)resp->publish_message->key;
    }
    a->count++;
}

static char tmp_root[] = "/tmp/tandem-test-partition-XXXXXX";
static int dir_seq;

static const char *state_dir(void)
{
    static char dir[128];
    snprintf(dir, sizeof(dir), "%s/state-%d", tmp_root, ++dir_seq);
    return dir;
}

/* Runs the node's updates until nothing changes: persist instantly, apply
 * committed entries to p. */
static void drive(struct partition *p, uint64_t now)
{
    for (int round = 0; round < 64; round++) {
        struct raft_update u;
        (void)partition_process(p, now);
        raft_node_step(p->raft, NULL, &u);
        if (u.flags & RAFT_UPDATE_COMMITTED) {
            assert_int_equal(
                partition_apply(p, u.committed, u.committed_count), 0);
        }
        if (u.flags & RAFT_UPDATE_ENTRIES) {
            struct raft_event ev;
            memset(&ev, 0, sizeof(ev));
            ev.type = RAFT_EVENT_PERSISTED;
            ev.now = now;
            ev.persisted.index = u.entries[u.entry_count - 1].index;
            ev.persisted.term = u.entries[u.entry_count - 1].term;
            raft_node_step(p->raft, &ev, NULL);
            continue;
        }
        if (u.flags == 0 || u.flags == RAFT_UPDATE_ROLE) {
            if (u.flags & RAFT_UPDATE_ROLE) {
                partition_role_changed(p);
                continue;
            }
            if (partition_process(p, now) == 1) {
                continue;
            }
            return;
        }
    }
}

/* A single-voter partition 3 on node 0 that is leader. */
static void leader_partition(struct partition *p, struct answers *a)
{
    struct raft_options o;
    struct raft_node *raft;
    struct raft_config c;
    struct partition_options po;
    struct raft_event ev;
    char err[256];

    raft_options_default(&o, 1);
    assert_int_equal(raft_node_new(&o, &raft), 0);
    raft_config_init(&c);
    raft_config_add(&c, 1, RAFT_VOTER, 1);
    assert_int_equal(raft_node_bootstrap(raft, &c), 0);
    memset(&po, 0, sizeof(po));
    po.partition_id = 3;
    po.partitions_count = 3;
    po.node_id = 0;
    po.broker_version = "8.4.0";
    po.state_dir = state_dir();
    po.requests_max = 4;
    po.answer = on_answer;
    po.answer_data = a;
    assert_int_equal(partition_init(p, &po, raft, err, sizeof(err)), 0);
    memset(&ev, 0, sizeof(ev));
    ev.type = RAFT_EVENT_CAMPAIGN;
    ev.now = 1;
    raft_node_step(raft, &ev, NULL);
    drive(p, 1);
    assert_int_equal(raft_node_role(raft), RAFT_LEADER);
}

static void test_keys_encode_partition(void **state)
{
    (void)state;
    assert_int_equal(partition_key(1, 1), 2251799813685249ULL);
    assert_int_equal(partition_key(3, 7) >> PARTITION_KEY_BITS, 3);
}

/* Reference: zeebe-facts 3.5 (SubscriptionUtil): Java String.hashCode over
 * the signed UTF-8 bytes, partition = |h % count| + 1. */
static void test_correlation_key_routing(void **state)
{
    (void)state;
    /* "hello".hashCode() == 99162322, 99162322 % 3 == 1. */
    assert_int_equal(partition_for_correlation_key("hello", 3), 2);
    /* "a".hashCode() == 97, 97 % 8 == 1. */
    assert_int_equal(partition_for_correlation_key("a", 8), 2);
    /* "polygenelubricants".hashCode() == Integer.MIN_VALUE; % 3 == -2. */
    assert_int_equal(partition_for_correlation_key("polygenelubricants", 3),
                     3);
    assert_int_equal(partition_for_correlation_key("", 5), 1);
    /* Non-ASCII bytes count as signed: "\xc3\xa9" (é) hashes to
     * 31 * (-61) + (-87) = -1978; -1978 % 7 == -4 in Java, so 4 + 1. */
    assert_int_equal(partition_for_correlation_key("\xc3\xa9", 7), 5);
}

/* A PublishMessage request for partition 3. */
static Tandem__Command__Request *publish_req(
    Tandem__Command__Request *req, GatewayProtocol__PublishMessageRequest *pub,
    const char *name, const char *ck, int64_t ttl, const char *id,
    const char *vars)
{
    tandem__command__request__init(req);
    gateway_protocol__publish_message_request__init(pub);
    pub->name = (char *)name;
    pub->correlationkey = (char *)ck;
    pub->timetolive = ttl;
    pub->messageid = (char *)id;
    pub->variables = (char *)(vars != NULL ? vars : "");
    req->id = 1;
    req->partition_id = 3;
    req->body_case = TANDEM__COMMAND__REQUEST__BODY_PUBLISH_MESSAGE;
    req->publish_message = pub;
    return req;
}

static void test_publish_assigns_keys_in_order(void **state)
{
    struct partition p;
    struct answers a;
    Tandem__Command__Request req;
    GatewayProtocol__PublishMessageRequest pub;
    char msg[256];
    raft_index before;
    (void)state;
    memset(&a, 0, sizeof(a));
    leader_partition(&p, &a);
    before = raft_node_last_index(p.raft);
    assert_int_equal(partition_submit(&p, 100,
                                      publish_req(&req, &pub, "order", "k1",
                                                  0, "", "{\"x\":1}"),
                                      msg, sizeof(msg)),
                     0);
    assert_int_equal(partition_submit(&p, 101,
                                      publish_req(&req, &pub, "order", "k2",
                                                  60000, "id-1", NULL),
                                      msg, sizeof(msg)),
                     0);
    assert_int_equal(a.count, 0); /* nothing answers before it applies */
    drive(&p, 11);
    assert_int_equal(a.count, 2);
    assert_int_equal(a.ids[0], 100);
    assert_int_equal(a.ids[1], 101);
    assert_int_equal(a.body[0], TANDEM__COMMAND__RESPONSE__BODY_PUBLISH_MESSAGE);
    assert_int_equal(a.keys[0] >> PARTITION_KEY_BITS, 3);
    assert_true(a.keys[1] > a.keys[0]);
    /* Both commands went into ONE processing round, one entry. */
    assert_int_equal(raft_node_last_index(p.raft), before + 1);
    assert_int_equal(partition_applied_index(&p), before + 1);
    partition_close(&p);
}

static void test_validation_and_duplicates(void **state)
{
    struct partition p;
    struct answers a;
    Tandem__Command__Request req;
    GatewayProtocol__PublishMessageRequest pub;
    char msg[256];
    raft_index before;
    (void)state;
    memset(&a, 0, sizeof(a));
    leader_partition(&p, &a);
    before = raft_node_last_index(p.raft);
    assert_int_equal(partition_submit(&p, 1,
                                      publish_req(&req, &pub, "n", "k", 0,
                                                  "", "[1,2]"),
                                      msg, sizeof(msg)),
                     PARTITION_E_INVALID);
    assert_true(msg[0] != '\0');
    assert_int_equal(partition_submit(&p, 2,
                                      publish_req(&req, &pub, "n", "k", 0,
                                                  "", "{bad"),
                                      msg, sizeof(msg)),
                     PARTITION_E_INVALID);
    assert_int_equal(a.count, 0);
    assert_int_equal(raft_node_last_index(p.raft), before);
    /* A message id alive already: rejected by the engine, answered with
     * ALREADY_EXISTS once the rejection is applied. */
    assert_int_equal(partition_submit(&p, 3,
                                      publish_req(&req, &pub, "n", "k", 60000,
                                                  "dup", NULL),
                                      msg, sizeof(msg)),
                     0);
    drive(&p, 20);
    assert_int_equal(partition_submit(&p, 4,
                                      publish_req(&req, &pub, "n", "k", 60000,
                                                  "dup", NULL),
                                      msg, sizeof(msg)),
                     0);
    drive(&p, 21);
    assert_int_equal(a.count, 2);
    assert_int_equal(a.body[0], TANDEM__COMMAND__RESPONSE__BODY_PUBLISH_MESSAGE);
    assert_int_equal(a.body[1], TANDEM__COMMAND__RESPONSE__BODY_ERROR);
    assert_int_equal(a.code[1], TANDEM__COMMAND__CODE__ALREADY_EXISTS);
    partition_close(&p);
}

static void test_backpressure(void **state)
{
    struct partition p;
    struct answers a;
    Tandem__Command__Request req;
    GatewayProtocol__PublishMessageRequest pub;
    char msg[256];
    (void)state;
    memset(&a, 0, sizeof(a));
    leader_partition(&p, &a);
    /* Nothing is processed, so the four commands stay queued. */
    for (uint64_t i = 0; i < 4; i++) {
        assert_int_equal(partition_submit(&p, i + 1,
                                          publish_req(&req, &pub, "n", "k", 0,
                                                      "", NULL),
                                          msg, sizeof(msg)),
                         0);
    }
    assert_int_equal(partition_submit(&p, 9,
                                      publish_req(&req, &pub, "n", "k", 0,
                                                  "", NULL),
                                      msg, sizeof(msg)),
                     PARTITION_E_BUSY);
    assert_non_null(strstr(msg, "Reached maximum capacity"));
    drive(&p, 5);
    assert_int_equal(a.count, 4);
    partition_close(&p);
}

static void test_follower_refuses_and_role_change(void **state)
{
    struct raft_options o;
    struct raft_node *raft;
    struct raft_config c;
    struct partition_options po;
    struct partition p;
    struct answers a;
    Tandem__Command__Request req;
    GatewayProtocol__PublishMessageRequest pub;
    Tandem__Command__AwaitJobsRequest aw =
        TANDEM__COMMAND__AWAIT_JOBS_REQUEST__INIT;
    char msg[256];
    char err[256];
    (void)state;
    memset(&a, 0, sizeof(a));
    raft_options_default(&o, 1);
    assert_int_equal(raft_node_new(&o, &raft), 0);
    raft_config_init(&c);
    raft_config_add(&c, 1, RAFT_VOTER, 1);
    raft_config_add(&c, 2, RAFT_VOTER, 1);
    assert_int_equal(raft_node_bootstrap(raft, &c), 0);
    memset(&po, 0, sizeof(po));
    po.partition_id = 3;
    po.partitions_count = 3;
    po.state_dir = state_dir();
    po.requests_max = 4;
    po.answer = on_answer;
    po.answer_data = &a;
    assert_int_equal(partition_init(&p, &po, raft, err, sizeof(err)), 0);
    assert_int_equal(partition_submit(&p, 1,
                                      publish_req(&req, &pub, "n", "k", 0,
                                                  "", NULL),
                                      msg, sizeof(msg)),
                     PARTITION_E_NOT_LEADER);
    assert_non_null(strstr(msg, "not the leader"));
    assert_int_equal(partition_await_jobs(&p, 2, 100, &aw),
                     PARTITION_E_NOT_LEADER);
    partition_close(&p);
}

static void test_await_jobs_waiters(void **state)
{
    struct partition p;
    struct answers a;
    Tandem__Command__AwaitJobsRequest aw =
        TANDEM__COMMAND__AWAIT_JOBS_REQUEST__INIT;
    char *types[1] = {(char *)"nothing-here"};
    (void)state;
    memset(&a, 0, sizeof(a));
    leader_partition(&p, &a);
    aw.types = types;
    aw.n_types = 1;
    assert_int_equal(partition_await_jobs(&p, 5, 100, &aw), 0);
    assert_int_equal(a.count, 0); /* parked */
    partition_expire(&p, 99);
    assert_int_equal(a.count, 0);
    partition_expire(&p, 100);
    assert_int_equal(a.count, 1);
    assert_int_equal(a.ids[0], 5);
    assert_int_equal(a.body[0], TANDEM__COMMAND__RESPONSE__BODY_AWAIT_JOBS);
    /* A role change wakes parked waiters (the gateway retries). */
    assert_int_equal(partition_await_jobs(&p, 6, 1000, &aw), 0);
    partition_close(&p);
}

static void test_snapshot_round_trip_and_corruption(void **state)
{
    struct partition p;
    struct partition q;
    struct answers a;
    Tandem__Command__Request req;
    GatewayProtocol__PublishMessageRequest pub;
    char msg[256];
    void *data;
    size_t len;
    (void)state;
    memset(&a, 0, sizeof(a));
    leader_partition(&p, &a);
    for (uint64_t i = 0; i < 3; i++) {
        assert_int_equal(partition_submit(&p, i + 1,
                                          publish_req(&req, &pub, "n", "k",
                                                      60000, "", NULL),
                                          msg, sizeof(msg)),
                         0);
    }
    drive(&p, 11);
    assert_int_equal(a.count, 3);
    assert_int_equal(partition_snapshot_encode(&p, &data, &len), 0);
    memset(&a, 0, sizeof(a));
    leader_partition(&q, &a);
    assert_int_equal(partition_restore(&q, data, len), 0);
    assert_int_equal(engine_state_hash(q.engine), engine_state_hash(p.engine));
    /* A damaged snapshot marks the partition dead instead of crashing. */
    ((uint8_t *)data)[len / 2] ^= 0x5a;
    assert_int_equal(partition_restore(&q, data, len), PARTITION_E_CORRUPT);
    assert_int_equal(q.health, PARTITION_DEAD);
    assert_int_equal(partition_submit(&q, 8,
                                      publish_req(&req, &pub, "n", "k", 0,
                                                  "", NULL),
                                      msg, sizeof(msg)),
                     PARTITION_E_DEAD);
    free(data);
    partition_close(&p);
    partition_close(&q);
}

static void test_garbage_entry_marks_dead(void **state)
{
    struct partition p;
    struct answers a;
    struct raft_entry e;
    (void)state;
    memset(&a, 0, sizeof(a));
    leader_partition(&p, &a);
    memset(&e, 0, sizeof(e));
    e.index = 99;
    e.term = 1;
    e.type = RAFT_ENTRY_NORMAL;
    e.buf.base = "\xff\xff\xff";
    e.buf.len = 3;
    assert_int_equal(partition_apply(&p, &e, 1), PARTITION_E_CORRUPT);
    assert_int_equal(p.health, PARTITION_DEAD);
    partition_close(&p);
}

static int setup_all(void **state)
{
    (void)state;
    return mkdtemp(tmp_root) != NULL ? 0 : -1;
}

static int teardown_all(void **state)
{
    char cmd[256];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_root);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_encode_partition),
        cmocka_unit_test(test_correlation_key_routing),
        cmocka_unit_test(test_publish_assigns_keys_in_order),
        cmocka_unit_test(test_validation_and_duplicates),
        cmocka_unit_test(test_backpressure),
        cmocka_unit_test(test_follower_refuses_and_role_change),
        cmocka_unit_test(test_await_jobs_waiters),
        cmocka_unit_test(test_snapshot_round_trip_and_corruption),
        cmocka_unit_test(test_garbage_entry_marks_dead),
    };
    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
