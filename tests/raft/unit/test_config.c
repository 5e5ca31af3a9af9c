/* test_config.c: unit tests of the configuration API of raft/raft.h
 * (raft_config_init/add/member/validate and the versioned encoding stored in
 * RAFT_ENTRY_CONFIG entries, Raft paper section 6). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "raft/raft.h"

/* Encoding layout (raft/config.c): 8-byte header {version, 0, count u16,
 * old u16, 0, 0}, then count x {id u64, role, priority}, then old x u64. */
#define HDR 8
#define MEMBER 10

static void put_u64(unsigned char *p, uint64_t v)
{
    int i;
    for (i = 0; i < 8; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

static void make_joint(struct raft_config *c)
{
    raft_config_init(c);
    assert_int_equal(raft_config_add(c, 1, RAFT_VOTER, 3), 0);
    assert_int_equal(raft_config_add(c, 2, RAFT_VOTER, 2), 0);
    assert_int_equal(raft_config_add(c, 4, RAFT_LEARNER, 0), 0);
    c->old_count = 2;
    c->old_voters[0] = 1;
    c->old_voters[1] = 3;
}

/* Reference: Raft paper section 6 (configurations are member sets). */
static void test_add_and_member(void **state)
{
    struct raft_config c;
    const struct raft_member *m;
    (void)state;
    raft_config_init(&c);
    assert_int_equal(c.count, 0);
    assert_int_equal(c.old_count, 0);
    assert_int_equal(raft_config_add(&c, 7, RAFT_VOTER, 5), 0);
    assert_int_equal(raft_config_add(&c, 9, RAFT_LEARNER, 0), 0);
    assert_int_equal(c.count, 2);
    m = raft_config_member(&c, 9);
    assert_non_null(m);
    assert_int_equal(m->id, 9);
    assert_int_equal(m->role, RAFT_LEARNER);
    assert_int_equal(m->priority, 0);
    m = raft_config_member(&c, 7);
    assert_non_null(m);
    assert_int_equal(m->priority, 5);
    assert_null(raft_config_member(&c, 8));
    assert_int_equal(raft_config_validate(&c), 0);
}

/* Reference: raft.h raft_config_add contract. */
static void test_add_rejects(void **state)
{
    struct raft_config c;
    raft_id id;
    (void)state;
    raft_config_init(&c);
    assert_int_equal(raft_config_add(&c, 0, RAFT_VOTER, 1), RAFT_E_INVALID);
    assert_int_equal(raft_config_add(&c, 1, 0, 1), RAFT_E_INVALID);
    assert_int_equal(raft_config_add(&c, 1, 3, 1), RAFT_E_INVALID);
    assert_int_equal(raft_config_add(&c, 1, RAFT_VOTER, 1), 0);
    assert_int_equal(raft_config_add(&c, 1, RAFT_LEARNER, 1), RAFT_E_INVALID);
    assert_int_equal(c.count, 1);
    for (id = 2; id <= RAFT_MEMBERS_MAX; id++) {
        assert_int_equal(raft_config_add(&c, id, RAFT_VOTER, 1), 0);
    }
    assert_int_equal(c.count, RAFT_MEMBERS_MAX);
    assert_int_equal(raft_config_add(&c, 100, RAFT_VOTER, 1), RAFT_E_TOO_BIG);
    assert_int_equal(c.count, RAFT_MEMBERS_MAX);
}

/* Reference: raft.h raft_config_validate contract. */
static void test_validate(void **state)
{
    struct raft_config c;
    (void)state;
    raft_config_init(&c);
    assert_int_equal(raft_config_validate(&c), RAFT_E_INVALID); /* no voter */
    assert_int_equal(raft_config_add(&c, 1, RAFT_LEARNER, 1), 0);
    assert_int_equal(raft_config_validate(&c), RAFT_E_INVALID); /* no voter */
    assert_int_equal(raft_config_add(&c, 2, RAFT_VOTER, 1), 0);
    assert_int_equal(raft_config_validate(&c), 0);
    c.members[1].id = 1; /* duplicate */
    assert_int_equal(raft_config_validate(&c), RAFT_E_INVALID);
    c.members[1].id = 0; /* zero */
    assert_int_equal(raft_config_validate(&c), RAFT_E_INVALID);
    c.members[1].id = 2;
    c.members[1].role = 9; /* bad role */
    assert_int_equal(raft_config_validate(&c), RAFT_E_INVALID);
    c.members[1].role = RAFT_VOTER;
    c.old_count = 2;
    c.old_voters[0] = 5;
    c.old_voters[1] = 5; /* duplicate old voter */
    assert_int_equal(raft_config_validate(&c), RAFT_E_INVALID);
    c.old_voters[1] = 0; /* zero old voter */
    assert_int_equal(raft_config_validate(&c), RAFT_E_INVALID);
    c.old_voters[1] = 6;
    assert_int_equal(raft_config_validate(&c), 0);
}

/* Reference: raft.h, the union of a joint configuration is bounded. */
static void test_validate_union_too_big(void **state)
{
    struct raft_config c;
    raft_id id;
    (void)state;
    raft_config_init(&c);
    for (id = 1; id <= RAFT_MEMBERS_MAX; id++) {
        assert_int_equal(raft_config_add(&c, id, RAFT_VOTER, 1), 0);
    }
    c.old_count = 1;
    c.old_voters[0] = 1; /* already a member: union still 16 */
    assert_int_equal(raft_config_validate(&c), 0);
    c.old_voters[0] = 100; /* union 17 */
    assert_int_equal(raft_config_validate(&c), RAFT_E_INVALID);
}

/* Reference: Raft paper section 6; raft.h raft_config_encode/decode. */
static void test_encode_decode_roundtrip(void **state)
{
    struct raft_config c;
    struct raft_config d;
    unsigned char buf[RAFT_CONFIG_ENCODED_MAX];
    unsigned char buf2[RAFT_CONFIG_ENCODED_MAX];
    int len;
    int len2;
    uint32_t i;
    (void)state;

    make_joint(&c);
    len = raft_config_encode(&c, buf, sizeof(buf));
    assert_int_equal(len, HDR + 3 * MEMBER + 2 * 8);
    memset(&d, 0xab, sizeof(d));
    assert_int_equal(raft_config_decode(buf, (size_t)len, &d), 0);
    assert_int_equal(d.count, 3);
    assert_int_equal(d.old_count, 2);
    for (i = 0; i < c.count; i++) {
        assert_int_equal(d.members[i].id, c.members[i].id);
        assert_int_equal(d.members[i].role, c.members[i].role);
        assert_int_equal(d.members[i].priority, c.members[i].priority);
    }
    assert_int_equal(d.old_voters[0], 1);
    assert_int_equal(d.old_voters[1], 3);

    /* Equal configurations encode byte-identically, even when the structs
     * differ in unused slots. */
    memset(&d.members[d.count], 0x5a,
           sizeof(d.members) - d.count * sizeof(d.members[0]));
    len2 = raft_config_encode(&d, buf2, sizeof(buf2));
    assert_int_equal(len2, len);
    assert_memory_equal(buf, buf2, (size_t)len);
}

/* Reference: raft.h, RAFT_CONFIG_ENCODED_MAX always suffices. */
static void test_encode_full_and_short_buffer(void **state)
{
    struct raft_config c;
    struct raft_config d;
    unsigned char buf[RAFT_CONFIG_ENCODED_MAX];
    raft_id id;
    int len;
    (void)state;
    raft_config_init(&c);
    for (id = 1; id <= RAFT_MEMBERS_MAX; id++) {
        assert_int_equal(
            raft_config_add(&c, id * 1000003u, RAFT_VOTER, (uint8_t)id), 0);
    }
    len = raft_config_encode(&c, buf, sizeof(buf));
    assert_true(len > 0);
    assert_true((size_t)len <= RAFT_CONFIG_ENCODED_MAX);
    assert_int_equal(raft_config_decode(buf, (size_t)len, &d), 0);
    assert_int_equal(d.count, RAFT_MEMBERS_MAX);
    assert_int_equal(d.members[15].id, 16 * 1000003u);
    assert_int_equal(d.members[15].priority, 16);
    assert_int_equal(raft_config_encode(&c, buf, (size_t)len - 1),
                     RAFT_E_TOO_BIG);
    assert_int_equal(raft_config_encode(&c, buf, 0), RAFT_E_TOO_BIG);
}

/* Reference: raft.h, decode never reads past len (truncated input). */
static void test_decode_truncated(void **state)
{
    struct raft_config c;
    struct raft_config d;
    unsigned char buf[RAFT_CONFIG_ENCODED_MAX + 1];
    int len;
    size_t cut;
    (void)state;
    make_joint(&c);
    len = raft_config_encode(&c, buf, sizeof(buf));
    assert_true(len > 0);
    for (cut = 0; cut < (size_t)len; cut++) {
        assert_int_equal(raft_config_decode(buf, cut, &d), RAFT_E_MALFORMED);
    }
    /* Trailing garbage is a bad length too. */
    buf[len] = 0;
    assert_int_equal(raft_config_decode(buf, (size_t)len + 1, &d),
                     RAFT_E_MALFORMED);
    assert_int_equal(raft_config_decode(buf, (size_t)len, &d), 0);
}

/* Reference: raft.h, versioned encoding. */
static void test_decode_bad_version(void **state)
{
    struct raft_config c;
    struct raft_config d;
    unsigned char buf[RAFT_CONFIG_ENCODED_MAX];
    int len;
    (void)state;
    make_joint(&c);
    len = raft_config_encode(&c, buf, sizeof(buf));
    assert_true(len > 0);
    buf[0] = 0;
    assert_int_equal(raft_config_decode(buf, (size_t)len, &d),
                     RAFT_E_MALFORMED);
    buf[0] = 2;
    assert_int_equal(raft_config_decode(buf, (size_t)len, &d),
                     RAFT_E_MALFORMED);
    buf[0] = 0xff;
    assert_int_equal(raft_config_decode(buf, (size_t)len, &d),
                     RAFT_E_MALFORMED);
}

/* Reference: raft.h, decode validates (duplicate ids). */
static void test_decode_duplicate_ids(void **state)
{
    struct raft_config c;
    struct raft_config d;
    unsigned char buf[RAFT_CONFIG_ENCODED_MAX];
    int len;
    (void)state;
    make_joint(&c);
    len = raft_config_encode(&c, buf, sizeof(buf));
    assert_true(len > 0);
    put_u64(buf + HDR + MEMBER, 1); /* member 2 becomes a second 1 */
    assert_int_equal(raft_config_decode(buf, (size_t)len, &d),
                     RAFT_E_MALFORMED);
    /* Duplicate in the old voter list. */
    len = raft_config_encode(&c, buf, sizeof(buf));
    put_u64(buf + HDR + 3 * MEMBER + 8, 1);
    assert_int_equal(raft_config_decode(buf, (size_t)len, &d),
                     RAFT_E_MALFORMED);
}

/* Reference: raft.h, decode validates (zero ids, bad roles). */
static void test_decode_zero_id_and_bad_role(void **state)
{
    struct raft_config c;
    struct raft_config d;
    unsigned char buf[RAFT_CONFIG_ENCODED_MAX];
    int len;
    (void)state;
    make_joint(&c);
    len = raft_config_encode(&c, buf, sizeof(buf));
    put_u64(buf + HDR, 0);
    assert_int_equal(raft_config_decode(buf, (size_t)len, &d),
                     RAFT_E_MALFORMED);
    len = raft_config_encode(&c, buf, sizeof(buf));
    put_u64(buf + HDR + 3 * MEMBER, 0); /* zero old voter */
    assert_int_equal(raft_config_decode(buf, (size_t)len, &d),
                     RAFT_E_MALFORMED);
    len = raft_config_encode(&c, buf, sizeof(buf));
    buf[HDR + 8] = 7; /* role */
    assert_int_equal(raft_config_decode(buf, (size_t)len, &d),
                     RAFT_E_MALFORMED);
    /* No voter at all. */
    raft_config_init(&c);
    assert_int_equal(raft_config_add(&c, 1, RAFT_LEARNER, 0), 0);
    len = raft_config_encode(&c, buf, sizeof(buf));
    assert_true(len > 0);
    assert_int_equal(raft_config_decode(buf, (size_t)len, &d),
                     RAFT_E_MALFORMED);
}

/* Reference: raft.h RAFT_MEMBERS_MAX. */
static void test_decode_too_many_members(void **state)
{
    unsigned char buf[HDR + 17 * MEMBER + 16];
    struct raft_config d;
    size_t i;
    size_t len = HDR + 17 * MEMBER;
    (void)state;
    memset(buf, 0, sizeof(buf));
    buf[0] = 1;
    buf[2] = 17;
    for (i = 0; i < 17; i++) {
        put_u64(buf + HDR + i * MEMBER, i + 1);
        buf[HDR + i * MEMBER + 8] = RAFT_VOTER;
        buf[HDR + i * MEMBER + 9] = 1;
    }
    assert_int_equal(raft_config_decode(buf, len, &d), RAFT_E_MALFORMED);
    /* A count claiming far more than the buffer holds. */
    buf[2] = 0xff;
    buf[3] = 0xff;
    assert_int_equal(raft_config_decode(buf, len, &d), RAFT_E_MALFORMED);
    /* 16 members plus one distinct old voter: union of 17. */
    memset(buf, 0, sizeof(buf));
    buf[0] = 1;
    buf[2] = 16;
    buf[4] = 1;
    for (i = 0; i < 16; i++) {
        put_u64(buf + HDR + i * MEMBER, i + 1);
        buf[HDR + i * MEMBER + 8] = RAFT_VOTER;
    }
    put_u64(buf + HDR + 16 * MEMBER, 99);
    assert_int_equal(raft_config_decode(buf, HDR + 16 * MEMBER + 8, &d),
                     RAFT_E_MALFORMED);
    put_u64(buf + HDR + 16 * MEMBER, 3); /* an existing member: fine */
    assert_int_equal(raft_config_decode(buf, HDR + 16 * MEMBER + 8, &d), 0);
    assert_int_equal(d.count, 16);
    assert_int_equal(d.old_count, 1);
}

/* Reference: raft.h, decode of NULL / empty input. */
static void test_decode_empty(void **state)
{
    struct raft_config d;
    unsigned char zero[HDR];
    (void)state;
    assert_int_equal(raft_config_decode(NULL, 0, &d), RAFT_E_MALFORMED);
    memset(zero, 0, sizeof(zero));
    assert_int_equal(raft_config_decode(zero, sizeof(zero), &d),
                     RAFT_E_MALFORMED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_and_member),
        cmocka_unit_test(test_add_rejects),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_validate_union_too_big),
        cmocka_unit_test(test_encode_decode_roundtrip),
        cmocka_unit_test(test_encode_full_and_short_buffer),
        cmocka_unit_test(test_decode_truncated),
        cmocka_unit_test(test_decode_bad_version),
        cmocka_unit_test(test_decode_duplicate_ids),
        cmocka_unit_test(test_decode_zero_id_and_bad_role),
        cmocka_unit_test(test_decode_too_many_members),
        cmocka_unit_test(test_decode_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
