/* fuzz_raft_step.c: fuzz target driving one raft node with arbitrary
 * events.
 *
 * The input is a program: each operation byte picks an event (a message of
 * any type from a member or a stranger, a tick, a persistence report, a
 * proposal, a snapshot, a change, a force, a transfer), and the following
 * bytes fill its fields with small values, so terms and indexes collide
 * often. Message fields the node must validate (entry indexes, terms,
 * configuration payloads, snapshot offsets) are left arbitrary. After every
 * step the node must not have crashed and its basic invariants must hold:
 * applied <= commit, persisted <= last index, the term never decreases, and
 * the committed entries it hands out are contiguous and never change. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "raft/raft.h"

#define FUZZ_APPLIED_MAX 4096

struct fuzz_reader {
    const uint8_t *p;
    size_t n;
};

static uint8_t fuzz_byte(struct fuzz_reader *r)
{
    uint8_t b;
    if (r->n == 0) {
        return 0;
    }
    b = *r->p;
    r->p++;
    r->n--;
    return b;
}

static void fuzz_check(int cond)
{
    if (!cond) {
        abort();
    }
}

struct fuzz_state {
    raft_term applied_terms[FUZZ_APPLIED_MAX];
    raft_index applied;
    raft_term term;
};

static void fuzz_after(struct fuzz_state *s, struct raft_node *node,
                       const struct raft_update *u)
{
    fuzz_check(raft_node_applied_index(node) <= raft_node_commit_index(node));
    fuzz_check(raft_node_persisted_index(node) <= raft_node_last_index(node));
    fuzz_check(raft_node_term(node) >= s->term);
    s->term = raft_node_term(node);
    if (u->flags & RAFT_UPDATE_SNAPSHOT) {
        fuzz_check(u->snapshot->index >= s->applied);
        s->applied = u->snapshot->index;
    }
    for (size_t i = 0; i < u->committed_count; i++) {
        const struct raft_entry *e = &u->committed[i];
        fuzz_check(e->index == s->applied + 1);
        s->applied = e->index;
        if (e->index < FUZZ_APPLIED_MAX) {
            s->applied_terms[e->index] = e->term;
        }
    }
    for (size_t i = 0; i < u->message_count; i++) {
        fuzz_check(u->messages[i].from == 1);
        fuzz_check(u->messages[i].to != 1);
    }
    if (u->flags & RAFT_UPDATE_ENTRIES) {
        fuzz_check(u->entry_count > 0);
        fuzz_check(u->entries[0].index > raft_node_commit_index(node) ||
                   u->entries[0].index > s->applied);
    }
}

static void fuzz_config(struct fuzz_reader *r, struct raft_config *c)
{
    uint8_t n = fuzz_byte(r) % 5;
    raft_config_init(c);
    for (uint8_t i = 0; i < n; i++) {
        (void)raft_config_add(c, 1 + fuzz_byte(r) % 5,
                              (uint8_t)(1 + fuzz_byte(r) % 2),
                              fuzz_byte(r) % 4);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_reader r = {data, size};
    struct raft_options o;
    struct raft_node *node;
    struct raft_config boot;
    struct fuzz_state *s;
    raft_time now = 0;

    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return 0;
    }
    raft_options_default(&o, 1);
    o.election_timeout = 20;
    o.heartbeat_interval = 5;
    o.trailing_entries = fuzz_byte(&r) % 4;
    o.snapshot_chunk_bytes = 1 + fuzz_byte(&r) % 8;
    o.snapshot_bytes_max = 64;
    o.inflight_max = 1 + fuzz_byte(&r) % 4;
    o.messages_max = 64;
    o.pre_vote = fuzz_byte(&r) & 1;
    o.check_quorum = fuzz_byte(&r) & 1;
    if (raft_node_new(&o, &node) != 0) {
        free(s);
        return 0;
    }
    raft_config_init(&boot);
    raft_config_add(&boot, 1, RAFT_VOTER, 2);
    raft_config_add(&boot, 2, RAFT_VOTER, 1);
    raft_config_add(&boot, 3, RAFT_VOTER, 0);
    fuzz_check(raft_node_bootstrap(node, &boot) == 0);

    while (r.n > 0) {
        struct raft_event ev;
        struct raft_update u;
        struct raft_message m;
        struct raft_entry entries[4];
        uint8_t payload[4][RAFT_CONFIG_ENCODED_MAX];
        struct raft_config c;
        struct raft_buf bufs[2];
        uint8_t op = fuzz_byte(&r);

        memset(&ev, 0, sizeof(ev));
        memset(&m, 0, sizeof(m));
        now += fuzz_byte(&r) % 16;
        ev.now = now;
        switch (op % 10) {
        case 0:
            ev.type = RAFT_EVENT_TICK;
            break;
        case 1:
        case 2:
        case 3: {
            size_t n = fuzz_byte(&r) % 5;
            m.type = (uint8_t)(fuzz_byte(&r) % 11);
            m.from = fuzz_byte(&r) % 6;
            m.to = 1;
            m.term = fuzz_byte(&r) % 8;
            m.index = fuzz_byte(&r) % 12;
            m.log_term = fuzz_byte(&r) % 8;
            m.commit = fuzz_byte(&r) % 12;
            m.hint_index = fuzz_byte(&r) % 12;
            m.hint_term = fuzz_byte(&r) % 8;
            m.reject = fuzz_byte(&r) & 1;
            m.transfer = fuzz_byte(&r) & 1;
            m.done = fuzz_byte(&r) & 1;
            if (n > 4) {
                n = 4;
            }
            for (size_t i = 0; i < n; i++) {
                uint8_t kind = fuzz_byte(&r);
                entries[i].index = m.index + 1 + i + (kind >> 7);
                entries[i].term = fuzz_byte(&r) % 8;
                entries[i].type = (uint8_t)(kind % 4);
                if (entries[i].type == RAFT_ENTRY_CONFIG && (kind & 8)) {
                    int len;
                    fuzz_config(&r, &c);
                    len = raft_config_encode(&c, payload[i],
                                             sizeof(payload[i]));
                    entries[i].buf.base = payload[i];
                    entries[i].buf.len = len > 0 ? (size_t)len : 0;
                } else {
                    size_t len = fuzz_byte(&r) % 16;
                    for (size_t k = 0; k < len; k++) {
                        payload[i][k] = fuzz_byte(&r);
                    }
                    entries[i].buf.base = payload[i];
                    entries[i].buf.len = len;
                }
            }
            m.entries = entries;
            m.entry_count = n;
            m.snapshot.index = fuzz_byte(&r) % 12;
            m.snapshot.term = fuzz_byte(&r) % 8;
            fuzz_config(&r, &m.snapshot.config);
            m.snapshot.config_index = fuzz_byte(&r) % 12;
            m.total = fuzz_byte(&r) % 80;
            m.offset = fuzz_byte(&r) % 80;
            m.data.base = payload[0];
            m.data.len = fuzz_byte(&r) % 16;
            ev.type = RAFT_EVENT_RECEIVE;
            ev.receive.message = &m;
            break;
        }
        case 4:
            ev.type = RAFT_EVENT_PERSISTED;
            ev.persisted.index = fuzz_byte(&r) % 16;
            ev.persisted.term = fuzz_byte(&r) % 8;
            if (op & 0x80) {
                ev.persisted.index = raft_node_last_index(node);
                ev.persisted.term =
                    raft_node_term_at(node, ev.persisted.index);
            }
            break;
        case 5:
            bufs[0].base = "a";
            bufs[0].len = 1;
            bufs[1].base = "bb";
            bufs[1].len = 2;
            ev.type = RAFT_EVENT_PROPOSE;
            ev.propose.bufs = bufs;
            ev.propose.count = 1 + (op >> 7);
            break;
        case 6:
            ev.type = RAFT_EVENT_SNAPSHOT;
            ev.snapshot.index = fuzz_byte(&r) % 12;
            ev.snapshot.data.base = payload[0];
            ev.snapshot.data.len = fuzz_byte(&r) % 8;
            break;
        case 7:
            fuzz_config(&r, &c);
            ev.type = (op & 0x80) ? RAFT_EVENT_FORCE : RAFT_EVENT_CHANGE;
            ev.change.config = &c;
            break;
        case 8:
            ev.type = RAFT_EVENT_TRANSFER;
            ev.transfer.to = fuzz_byte(&r) % 5;
            break;
        default:
            ev.type = RAFT_EVENT_CAMPAIGN;
            break;
        }
        (void)raft_node_step(node, &ev, &u);
        fuzz_after(s, node, &u);
    }
    raft_node_free(node);
    free(s);
    return 0;
}
