/* test_errors.c: unit tests of raft's error API (raft_strerror) and of the
 * argument checks of raft_node_new, raft_node_bootstrap and the event
 * dispatcher (errors a caller can provoke without a cluster). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "raft/raft.h"

/* Reference: raft.h raft_strerror: static, non-NULL, one text per code. */
static void test_strerror_distinct(void **state)
{
    static const int codes[] = {
        RAFT_E_NOMEM,      RAFT_E_INVALID,   RAFT_E_NOT_LEADER,
        RAFT_E_BUSY,       RAFT_E_TOO_BIG,   RAFT_E_STALE,
        RAFT_E_NOT_MEMBER, RAFT_E_MALFORMED, RAFT_E_CORRUPT,
    };
    size_t n = sizeof(codes) / sizeof(codes[0]);
    size_t i;
    size_t j;
    (void)state;
    for (i = 0; i < n; i++) {
        const char *s = raft_strerror(codes[i]);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
        assert_true(codes[i] < 0);
        for (j = 0; j < i; j++) {
            assert_int_not_equal(codes[i], codes[j]);
            assert_string_not_equal(s, raft_strerror(codes[j]));
        }
    }
    assert_non_null(raft_strerror(0));
    assert_non_null(raft_strerror(-1000));
    assert_non_null(raft_strerror(12345));
    for (i = 0; i < n; i++) {
        assert_string_not_equal(raft_strerror(codes[i]), raft_strerror(0));
        assert_string_not_equal(raft_strerror(codes[i]), raft_strerror(-1000));
    }
}

/* Reference: raft.h raft_options_default documented defaults. */
static void test_options_default(void **state)
{
    struct raft_options o;
    (void)state;
    memset(&o, 0xff, sizeof(o));
    raft_options_default(&o, 5);
    assert_int_equal(o.id, 5);
    assert_int_equal(o.election_timeout, 1000);
    assert_int_equal(o.heartbeat_interval, 100);
    assert_true(o.pre_vote);
    assert_true(o.check_quorum);
    assert_true(o.priority_election);
    assert_int_equal(o.inflight_max, 64);
    assert_int_equal(o.batch_entries_max, 256);
    assert_int_equal(o.batch_bytes_max, 1u << 20);
    assert_int_equal(o.entry_bytes_max, 1u << 20);
    assert_int_equal(o.uncommitted_bytes_max, 64u << 20);
    assert_int_equal(o.snapshot_chunk_bytes, 1u << 20);
    assert_int_equal(o.snapshot_bytes_max, 1ull << 30);
    assert_int_equal(o.trailing_entries, 1024);
    assert_int_equal(o.messages_max, 1024);
    assert_int_equal(o.catch_up_lag_max, 64);
    assert_null(o.heap.malloc);
}

/* Reference: raft.h raft_node_new returns RAFT_E_INVALID for bad options. */
static void test_node_new_invalid(void **state)
{
    struct raft_options o;
    struct raft_node *node = NULL;
    (void)state;
    raft_options_default(&o, 0);
    assert_int_equal(raft_node_new(&o, &node), RAFT_E_INVALID);
    raft_options_default(&o, 1);
    o.heartbeat_interval = 0;
    assert_int_equal(raft_node_new(&o, &node), RAFT_E_INVALID);
    raft_options_default(&o, 1);
    o.election_timeout = o.heartbeat_interval; /* < 2 x heartbeat */
    assert_int_equal(raft_node_new(&o, &node), RAFT_E_INVALID);
    raft_options_default(&o, 1);
    assert_int_equal(raft_node_new(&o, &node), 0);
    assert_non_null(node);
    assert_int_equal(raft_node_id(node), 1);
    assert_int_equal(raft_node_role(node), RAFT_FOLLOWER);
    assert_int_equal(raft_node_term(node), 0);
    assert_int_equal(raft_node_last_index(node), 0);
    assert_int_equal(raft_node_commit_index(node), 0);
    assert_null(raft_node_snapshot(node));
    raft_node_free(node);
    raft_node_free(NULL);
}

/* Reference: raft.h raft_node_bootstrap errors. */
static void test_bootstrap_invalid(void **state)
{
    struct raft_options o;
    struct raft_node *node = NULL;
    struct raft_config c;
    struct raft_update u;
    (void)state;
    raft_options_default(&o, 1);
    assert_int_equal(raft_node_new(&o, &node), 0);
    raft_config_init(&c);
    assert_int_equal(raft_node_bootstrap(node, &c), RAFT_E_INVALID);
    assert_int_equal(raft_config_add(&c, 1, RAFT_VOTER, 1), 0);
    assert_int_equal(raft_config_add(&c, 2, RAFT_VOTER, 1), 0);
    assert_int_equal(raft_node_bootstrap(node, &c), 0);
    assert_int_equal(raft_node_last_index(node), 1);
    assert_int_equal(raft_node_term_at(node, 1), 1);
    assert_non_null(raft_node_config(node));
    assert_int_equal(raft_node_config(node)->count, 2);
    /* Non-empty node. */
    assert_int_equal(raft_node_bootstrap(node, &c), RAFT_E_INVALID);
    /* The bootstrap entry shows up in the next update. */
    memset(&u, 0, sizeof(u));
    assert_int_equal(raft_node_step(node, NULL, &u), 0);
    assert_true(u.flags & RAFT_UPDATE_ENTRIES);
    assert_int_equal(u.entry_count, 1);
    assert_int_equal(u.entries[0].index, 1);
    assert_int_equal(u.entries[0].term, 1);
    assert_int_equal(u.entries[0].type, RAFT_ENTRY_CONFIG);
    raft_node_free(node);
}

/* Reference: raft.h raft_node_step error list (leader-only events). */
static void test_not_leader_events(void **state)
{
    struct raft_options o;
    struct raft_node *node = NULL;
    struct raft_config c;
    struct raft_update u;
    struct raft_event e;
    struct raft_buf buf = {"x", 1};
    (void)state;
    raft_options_default(&o, 1);
    assert_int_equal(raft_node_new(&o, &node), 0);
    raft_config_init(&c);
    assert_int_equal(raft_config_add(&c, 1, RAFT_VOTER, 1), 0);
    assert_int_equal(raft_config_add(&c, 2, RAFT_VOTER, 1), 0);
    assert_int_equal(raft_node_bootstrap(node, &c), 0);

    memset(&e, 0, sizeof(e));
    e.type = RAFT_EVENT_PROPOSE;
    e.propose.bufs = &buf;
    e.propose.count = 1;
    assert_int_equal(raft_node_step(node, &e, &u), RAFT_E_NOT_LEADER);
    memset(&e, 0, sizeof(e));
    e.type = RAFT_EVENT_CHANGE;
    e.change.config = &c;
    assert_int_equal(raft_node_step(node, &e, &u), RAFT_E_NOT_LEADER);
    memset(&e, 0, sizeof(e));
    e.type = RAFT_EVENT_TRANSFER;
    e.transfer.to = 2;
    assert_int_equal(raft_node_step(node, &e, &u), RAFT_E_NOT_LEADER);
    /* An unknown event type is malformed. */
    memset(&e, 0, sizeof(e));
    e.type = 200;
    assert_int_equal(raft_node_step(node, &e, &u), RAFT_E_INVALID);
    /* The node stays usable. */
    assert_int_equal(raft_node_role(node), RAFT_FOLLOWER);
    raft_node_free(node);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strerror_distinct),
        cmocka_unit_test(test_options_default),
        cmocka_unit_test(test_node_new_invalid),
        cmocka_unit_test(test_bootstrap_invalid),
        cmocka_unit_test(test_not_leader_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
