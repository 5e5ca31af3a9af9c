/* test_partition.c: tests of broker/partition.c, the partition state
 * machine: keys, Zeebe's correlation-key routing, command validation,
 * publishing through a single-node raft group, applying, answering and
 * snapshots. The raft node is driven by hand: its updates are "persisted"
 * at once and committed entries applied, as the broker would. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/partition.h"

struct answers {
    uint64_t ids[64];
    int status[64];
    uint64_t keys[64];
    size_t count;
};

static void on_answer(void *data, uint64_t request_id, int status,
                      uint64_t key, const char *message)
{
    struct answers *a = data;
    (void)message;
    assert_true(a->count < 64);
    a->ids[a->count] = request_id;
    a->status[a->count] = status;
    a->keys[a->count] = key;
    a->count++;
}

/* Runs the node's updates until nothing changes: persist instantly, apply
 * committed entries to p. */
static void drive(struct partition *p, uint64_t now)
{
    for (int round = 0; round < 16; round++) {
        struct raft_update u;
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

    raft_options_default(&o, 1);
    assert_int_equal(raft_node_new(&o, &raft), 0);
    raft_config_init(&c);
    raft_config_add(&c, 1, RAFT_VOTER, 1);
    assert_int_equal(raft_node_bootstrap(raft, &c), 0);
    memset(&po, 0, sizeof(po));
    po.partition_id = 3;
    po.node_id = 0;
    po.broker_version = "8.4.0";
    po.requests_max = 4;
    po.answer = on_answer;
    po.answer_data = a;
    assert_int_equal(partition_init(p, &po, raft), 0);
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

static void test_publish_assigns_keys_in_order(void **state)
{
    struct partition p;
    struct answers a;
    char msg[256];
    (void)state;
    memset(&a, 0, sizeof(a));
    leader_partition(&p, &a);
    assert_int_equal(partition_publish(&p, 10, 100, 10000, "order", "k1", 0,
                                       "", "{\"x\":1}", msg, sizeof(msg)),
                     0);
    assert_int_equal(partition_publish(&p, 10, 101, 10000, "order", "k2",
                                       60000, "id-1", NULL, msg, sizeof(msg)),
                     0);
    drive(&p, 11);
    assert_int_equal(a.count, 2);
    assert_int_equal(a.ids[0], 100);
    assert_int_equal(a.ids[1], 101);
    assert_int_equal(a.status[0], 0);
    assert_int_equal(a.keys[0], partition_key(3, 1));
    assert_int_equal(a.keys[1], partition_key(3, 2));
    assert_int_equal(p.state.messages_published, 2);
    assert_int_equal(p.state.records_applied, 4);
    assert_int_equal(p.state.last_message_key, partition_key(3, 2));
    partition_close(&p);
}

static void test_publish_validation(void **state)
{
    struct partition p;
    struct answers a;
    char msg[256];
    (void)state;
    memset(&a, 0, sizeof(a));
    leader_partition(&p, &a);
    assert_int_equal(partition_publish(&p, 10, 1, 100, "", "k", 0, "", NULL,
                                       msg, sizeof(msg)),
                     PARTITION_E_INVALID);
    assert_non_null(strstr(msg, "name"));
    assert_int_equal(partition_publish(&p, 10, 1, 100, "n", "k", -5, "",
                                       NULL, msg, sizeof(msg)),
                     PARTITION_E_INVALID);
    assert_non_null(strstr(msg, "timeToLive"));
    assert_int_equal(partition_publish(&p, 10, 1, 100, "n", "k", 0, "",
                                       "{bad", msg, sizeof(msg)),
                     PARTITION_E_INVALID);
    assert_non_null(strstr(msg, "JSON"));
    assert_int_equal(partition_publish(&p, 10, 1, 100, "n", "k", 0, "",
                                       "[1,2]", msg, sizeof(msg)),
                     PARTITION_E_INVALID);
    assert_non_null(strstr(msg, "object"));
    assert_int_equal(a.count, 0);
    assert_int_equal(raft_node_last_index(p.raft), 2); /* config + noop */
    partition_close(&p);
}

static void test_backpressure_and_expiry(void **state)
{
    struct partition p;
    struct answers a;
    char msg[256];
    (void)state;
    memset(&a, 0, sizeof(a));
    leader_partition(&p, &a);
    /* Nothing is driven, so the four requests stay pending. */
    for (uint64_t i = 0; i < 4; i++) {
        assert_int_equal(partition_publish(&p, 10, i + 1, 50, "n", "k", 0, "",
                                           NULL, msg, sizeof(msg)),
                         0);
    }
    assert_int_equal(partition_publish(&p, 10, 9, 50, "n", "k", 0, "", NULL,
                                       msg, sizeof(msg)),
                     PARTITION_E_BUSY);
    partition_expire(&p, 49);
    assert_int_equal(a.count, 0);
    partition_expire(&p, 50);
    assert_int_equal(a.count, 4);
    assert_int_equal(a.status[0], PARTITION_E_BUSY);
    partition_close(&p);
}

static void test_follower_refuses(void **state)
{
    struct raft_options o;
    struct raft_node *raft;
    struct raft_config c;
    struct partition_options po;
    struct partition p;
    struct answers a;
    char msg[256];
    (void)state;
    memset(&a, 0, sizeof(a));
    raft_options_default(&o, 1);
    assert_int_equal(raft_node_new(&o, &raft), 0);
    raft_config_init(&c);
    raft_config_add(&c, 1, RAFT_VOTER, 1);
    raft_config_add(&c, 2, RAFT_VOTER, 1);
    assert_int_equal(raft_node_bootstrap(raft, &c), 0);
    memset(&po, 0, sizeof(po));
    po.partition_id = 1;
    po.requests_max = 4;
    po.answer = on_answer;
    po.answer_data = &a;
    assert_int_equal(partition_init(&p, &po, raft), 0);
    assert_int_equal(partition_publish(&p, 1, 1, 100, "n", "k", 0, "", NULL,
                                       msg, sizeof(msg)),
                     PARTITION_E_NOT_LEADER);
    partition_close(&p);
}

static void test_snapshot_round_trip_and_corruption(void **state)
{
    struct partition p;
    struct partition q;
    struct answers a;
    char msg[256];
    void *data;
    size_t len;
    (void)state;
    memset(&a, 0, sizeof(a));
    leader_partition(&p, &a);
    for (uint64_t i = 0; i < 3; i++) {
        assert_int_equal(partition_publish(&p, 10, i + 1, 1000, "n", "k", 0,
                                           "", NULL, msg, sizeof(msg)),
                         0);
    }
    drive(&p, 11);
    assert_int_equal(partition_snapshot_encode(&p, &data, &len), 0);
    memset(&a, 0, sizeof(a));
    leader_partition(&q, &a);
    assert_int_equal(partition_restore(&q, data, len), 0);
    assert_memory_equal(&q.state, &p.state, sizeof(p.state));
    /* The restored leader continues the key sequence. */
    assert_int_equal(partition_publish(&q, 20, 7, 1000, "n", "k", 0, "",
                                       NULL, msg, sizeof(msg)),
                     0);
    drive(&q, 21);
    assert_int_equal(a.keys[a.count - 1], partition_key(3, 4));
    /* A damaged snapshot marks the partition dead instead of crashing. */
    ((uint8_t *)data)[len / 2] ^= 0x5a;
    assert_int_equal(partition_restore(&q, data, len), PARTITION_E_CORRUPT);
    assert_int_equal(q.health, PARTITION_DEAD);
    assert_int_equal(partition_publish(&q, 30, 8, 1000, "n", "k", 0, "",
                                       NULL, msg, sizeof(msg)),
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_encode_partition),
        cmocka_unit_test(test_correlation_key_routing),
        cmocka_unit_test(test_publish_assigns_keys_in_order),
        cmocka_unit_test(test_publish_validation),
        cmocka_unit_test(test_backpressure_and_expiry),
        cmocka_unit_test(test_follower_refuses),
        cmocka_unit_test(test_snapshot_round_trip_and_corruption),
        cmocka_unit_test(test_garbage_entry_marks_dead),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
