/* sim_fault.c: workload, compaction and fault injection.
 *
 * Three self-rescheduling timers of the event loop land here:
 *
 *   SIM_EV_WORKLOAD  proposals (1..N unique payloads) to a node that thinks
 *                    it leads, sometimes to any node; in the liveness phase
 *                    only "probe" proposals to the current leader;
 *   SIM_EV_SNAPSHOT  a local snapshot on a random node: the state machine is
 *                    serialized, made durable (log entries up to it dropped
 *                    from the node's disk), then RAFT_EVENT_SNAPSHOT;
 *   SIM_EV_FAULT     one fault drawn by the run's weights: crash (restart
 *                    later), partition (symmetric, one-way, region-shaped
 *                    even/odd ids, isolation, send-only/receive-only; healed
 *                    later), heal, membership change (add/remove/replace,
 *                    promote/demote, priorities), leadership transfer,
 *                    campaign, and region loss with forced reconfiguration
 *                    under its documented safety condition.
 *
 * Everything here talks to nodes only through sim_step(), so every event is
 * checked like any other.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

static bool rv_in(int rv, int a, int b, int c)
{
    return rv == 0 || rv == a || rv == b || rv == c;
}

void sim_config_str(const struct raft_config *cfg, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (uint32_t i = 0; i < cfg->count && off + 16 < len; i++) {
        off += (size_t)snprintf(
            buf + off, len - off, "%s%" PRIu64 "%s%u", i ? "," : "{",
            cfg->members[i].id, cfg->members[i].role == RAFT_VOTER ? "v" : "l",
            (unsigned)cfg->members[i].priority);
    }
    for (uint32_t i = 0; i < cfg->old_count && off + 16 < len; i++) {
        off += (size_t)snprintf(buf + off, len - off, "%s%" PRIu64,
                                i ? "," : " old:", cfg->old_voters[i]);
    }
    if (off + 2 < len) {
        snprintf(buf + off, len - off, "}");
    }
}

/* ---- workload ---------------------------------------------------------------- */

static int propose(struct sim *sim, struct sim_node *n, size_t count,
                   uint32_t max_len)
{
    struct raft_buf bufs[8];
    uint8_t *mem[8];
    for (size_t i = 0; i < count; i++) {
        size_t len = sim_rng_range(&sim->rng, SIM_PAYLOAD_MIN, max_len);
        mem[i] = malloc(len);
        if (mem[i] == NULL) {
            abort();
        }
        sim_payload_fill(mem[i], len, sim->seed, sim->next_proposal++);
        bufs[i].base = mem[i];
        bufs[i].len = len;
    }
    raft_index first = 0;
    struct raft_event ev = {.type = RAFT_EVENT_PROPOSE, .now = sim->now};
    ev.propose.bufs = bufs;
    ev.propose.count = count;
    ev.propose.first_index = &first;
    int rv = sim_step(sim, n, &ev);
    for (size_t i = 0; i < count; i++) {
        free(mem[i]);
    }
    if (rv == 0) {
        sim->st_proposals += count;
    }
    if (!rv_in(rv, RAFT_E_NOT_LEADER, RAFT_E_BUSY, RAFT_E_TOO_BIG)) {
        sim_fail(sim, "api", "PROPOSE of %zu entries on n%" PRIu64 ": %s",
                 count, n->id, raft_strerror(rv));
    }
    return rv;
}

void sim_on_workload(struct sim *sim)
{
    if (sim->liveness) {
        raft_time every = sim->p.heartbeat / 2 ? sim->p.heartbeat / 2 : 1;
        sim_push(sim, sim->now + every, SIM_EV_WORKLOAD, 0, 0, 0, NULL);
        if (sim->chk.probe_index != 0) {
            return;
        }
        if (sim->probe_at != 0 &&
            sim->now - sim->probe_at < sim->p.election_timeout) {
            return;
        }
        struct sim_node *l = sim_pick_up(sim, true);
        if (l == NULL) {
            return;
        }
        sim_collect(sim, l);
        if (sim_node_up(l) && propose(sim, l, 1, 40) == 0) {
            sim->probe_at = sim->now;
        }
        return;
    }
    sim_push(sim, sim->now + sim_rng_range(&sim->rng, 1, sim->p.workload_interval),
             SIM_EV_WORKLOAD, 0, 0, 0, NULL);
    struct sim_node *n = sim_pick_up(sim, true);
    if (n == NULL || sim_rng_pm(&sim->rng, 100)) {
        n = sim_pick_up(sim, false);
    }
    if (n == NULL) {
        return;
    }
    sim_collect(sim, n);
    if (!sim_node_up(n)) {
        return;
    }
    size_t count = sim_rng_range(&sim->rng, 1, sim->p.propose_batch_max);
    propose(sim, n, count, sim->p.payload_max);
}

/* ---- compaction ----------------------------------------------------------------- */

void sim_on_snapshot(struct sim *sim)
{
    raft_time iv = sim->p.snapshot_interval;
    sim_push(sim, sim->now + sim_rng_range(&sim->rng, iv / 2 + 1, iv + iv / 2 + 1),
             SIM_EV_SNAPSHOT, 0, 0, 0, NULL);
    struct sim_node *n = sim_pick_up(sim, false);
    if (n == NULL) {
        return;
    }
    sim_collect(sim, n);
    if (!sim_node_up(n) || !n->sm.has_config ||
        n->sm.applied <= sim_disk_snap_index(&n->disk)) {
        return;
    }
    uint32_t pad = (uint32_t)sim_rng_range(&sim->rng, 0, sim->p.snapshot_pad_max);
    size_t len = 0;
    uint8_t *data = sim_sm_encode(&n->sm, pad, &len);
    if (data == NULL) {
        sim_fail(sim, "sim", "cannot encode a snapshot");
        return;
    }
    struct raft_snapshot_meta meta;
    memset(&meta, 0, sizeof(meta));
    meta.index = n->sm.applied;
    meta.term = n->sm.applied_term;
    meta.config = n->sm.config;
    meta.config_index = n->sm.config_index;
    meta.config_term = n->sm.config_term;
    /* The application makes the snapshot durable, then tells the node. */
    sim_disk_install_snapshot(&n->disk, &meta, data, len);
    struct raft_event ev = {.type = RAFT_EVENT_SNAPSHOT, .now = sim->now};
    ev.snapshot.index = meta.index;
    ev.snapshot.data.base = data;
    ev.snapshot.data.len = len;
    int rv = sim_step(sim, n, &ev);
    free(data);
    if (rv == 0) {
        sim->st_snapshots++;
        if (sim_node_up(n) && !sim->failed) {
            const struct raft_snapshot_meta *s = raft_node_snapshot(n->raft);
            if (s == NULL || s->index < meta.index ||
                (s->index == meta.index && s->term != meta.term)) {
                sim_fail(sim, "snapshot-meta",
                         "n%" PRIu64 " took a snapshot at %" PRIu64 "@%" PRIu64
                         " but reports %" PRIu64 "@%" PRIu64,
                         n->id, meta.index, meta.term, s ? s->index : 0,
                         s ? s->term : 0);
            }
        }
    } else if (rv != RAFT_E_STALE) {
        sim_fail(sim, "api", "SNAPSHOT at %" PRIu64 " on n%" PRIu64 ": %s",
                 meta.index, n->id, raft_strerror(rv));
    }
}

/* ---- faults ------------------------------------------------------------------------ */

static void fault_partition(struct sim *sim)
{
    struct sim_rng *r = &sim->rng;
    raft_id top = sim->next_id - 1;
    if (top < 2) {
        return;
    }
    memset(sim->blocked, 0, sizeof(sim->blocked));
    uint64_t kind = sim_rng_range(r, 0, 4);
    const char *what = "?";
    switch (kind) {
    case 0: { /* symmetric split into two random groups */
        bool side[SIM_IDS_MAX + 1];
        for (raft_id a = 1; a <= top; a++) {
            side[a] = sim_rng_pm(r, 500);
        }
        for (raft_id a = 1; a <= top; a++) {
            for (raft_id b = 1; b <= top; b++) {
                sim->blocked[a][b] = side[a] != side[b];
            }
        }
        what = "symmetric split";
        break;
    }
    case 1: { /* one-way links */
        uint64_t links = sim_rng_range(r, 1, 4);
        for (uint64_t i = 0; i < links; i++) {
            raft_id a = sim_rng_range(r, 1, top);
            raft_id b = sim_rng_range(r, 1, top);
            sim->blocked[a][b] = true;
        }
        what = "one-way links";
        break;
    }
    case 2: /* region-shaped: even ids vs odd ids */
        for (raft_id a = 1; a <= top; a++) {
            for (raft_id b = 1; b <= top; b++) {
                sim->blocked[a][b] = (a % 2) != (b % 2);
            }
        }
        what = "regions even/odd";
        break;
    case 3: { /* isolate one node */
        raft_id x = sim_rng_range(r, 1, top);
        for (raft_id b = 1; b <= SIM_IDS_MAX; b++) {
            sim->blocked[x][b] = true;
            sim->blocked[b][x] = true;
        }
        what = "isolate";
        break;
    }
    default: { /* a node can only send, or only receive */
        raft_id x = sim_rng_range(r, 1, top);
        bool send_only = sim_rng_pm(r, 500);
        for (raft_id b = 1; b <= SIM_IDS_MAX; b++) {
            if (send_only) {
                sim->blocked[b][x] = true;
            } else {
                sim->blocked[x][b] = true;
            }
        }
        what = send_only ? "send-only node" : "receive-only node";
        break;
    }
    }
    sim->partition_gen++;
    sim->st_partitions++;
    sim_trace(sim, "partition: %s", what);
    raft_time dur =
        sim_rng_range(r, sim->p.partition_min, sim->p.partition_max);
    sim_push(sim, sim->now + dur, SIM_EV_HEAL, 0, sim->partition_gen, 0, NULL);
}

static uint32_t count_voters(const struct raft_config *cfg, bool prio_only)
{
    uint32_t v = 0;
    for (uint32_t i = 0; i < cfg->count; i++) {
        if (cfg->members[i].role == RAFT_VOTER &&
            (!prio_only || cfg->members[i].priority > 0)) {
            v++;
        }
    }
    return v;
}

static void config_remove_at(struct raft_config *cfg, uint32_t k)
{
    for (uint32_t i = k + 1; i < cfg->count; i++) {
        cfg->members[i - 1] = cfg->members[i];
    }
    cfg->count--;
}

static int pick_member(struct sim *sim, const struct raft_config *cfg,
                       int role)
{
    int idx[RAFT_MEMBERS_MAX];
    int n = 0;
    for (uint32_t i = 0; i < cfg->count; i++) {
        if (role == 0 || cfg->members[i].role == role) {
            idx[n++] = (int)i;
        }
    }
    if (n == 0) {
        return -1;
    }
    return idx[sim_rng_range(&sim->rng, 0, (uint64_t)n - 1)];
}

static uint8_t draw_priority(struct sim *sim)
{
    return (uint8_t)sim_rng_range(&sim->rng, 0, 5);
}

static void fault_change(struct sim *sim)
{
    struct sim_node *l = sim_pick_up(sim, true);
    if (l == NULL) {
        return;
    }
    sim_collect(sim, l);
    if (!sim_node_up(l) || (raft_node_changing(l->raft) &&
                            !sim_rng_pm(&sim->rng, 200))) {
        return;
    }
    const struct raft_config *cur = raft_node_config(l->raft);
    if (cur == NULL) {
        return;
    }
    struct raft_config target;
    raft_config_init(&target);
    for (uint32_t i = 0; i < cur->count; i++) {
        target.members[i] = cur->members[i];
    }
    target.count = cur->count;
    uint32_t voters = count_voters(&target, false);
    bool ids_left = sim->next_id <= SIM_IDS_MAX;
    raft_id new_id = 0;
    uint8_t new_role = RAFT_VOTER;
    const char *what = "?";
    uint64_t kind = sim_rng_range(&sim->rng, 0, 6);
    int k;
    switch (kind) {
    case 0: /* add a voter */
    case 1: /* add a learner */
        new_role = kind == 0 ? RAFT_VOTER : RAFT_LEARNER;
        if (!ids_left || target.count >= SIM_MEMBERS_SIM_MAX ||
            (kind == 0 && voters >= SIM_VOTERS_MAX)) {
            return;
        }
        new_id = sim->next_id;
        what = kind == 0 ? "add voter" : "add learner";
        break;
    case 2: /* remove any member */
        k = pick_member(sim, &target, 0);
        if (k < 0 || target.count <= 1) {
            return;
        }
        config_remove_at(&target, (uint32_t)k);
        what = "remove";
        break;
    case 3: /* replace a voter */
        k = pick_member(sim, &target, RAFT_VOTER);
        if (k < 0 || !ids_left) {
            return;
        }
        config_remove_at(&target, (uint32_t)k);
        new_id = sim->next_id;
        what = "replace";
        break;
    case 4: /* promote a learner */
        k = pick_member(sim, &target, RAFT_LEARNER);
        if (k < 0 || voters >= SIM_VOTERS_MAX) {
            return;
        }
        target.members[k].role = RAFT_VOTER;
        what = "promote";
        break;
    case 5: /* demote a voter */
        k = pick_member(sim, &target, RAFT_VOTER);
        if (k < 0) {
            return;
        }
        target.members[k].role = RAFT_LEARNER;
        what = "demote";
        break;
    default: /* priorities only */
        for (uint32_t i = 0; i < target.count; i++) {
            target.members[i].priority = draw_priority(sim);
        }
        what = "priorities";
        break;
    }
    if (new_id != 0 &&
        raft_config_add(&target, new_id, new_role, draw_priority(sim)) != 0) {
        return;
    }
    if (count_voters(&target, true) == 0 ||
        raft_config_validate(&target) != 0) {
        return;
    }
    struct sim_node *fresh = NULL;
    if (new_id != 0) {
        sim->next_id++;
        fresh = sim_node_create(sim, new_id);
        if (fresh == NULL) {
            return;
        }
    }
    if (sim->cli.verbose) {
        char a[256], b[256];
        sim_config_str(cur, a, sizeof(a));
        sim_config_str(&target, b, sizeof(b));
        sim_trace(sim, "change (%s) on n%" PRIu64 ": %s -> %s", what, l->id,
                  a, b);
    }
    struct raft_event ev = {.type = RAFT_EVENT_CHANGE, .now = sim->now};
    ev.change.config = &target;
    int rv = sim_step(sim, l, &ev);
    if (rv == 0) {
        sim->st_changes++;
    } else {
        sim_trace(sim, "change refused: %s", raft_strerror(rv));
        if (fresh != NULL) {
            sim_crash(sim, fresh, true);
        }
    }
    if (!rv_in(rv, RAFT_E_BUSY, RAFT_E_NOT_LEADER, RAFT_E_BUSY)) {
        sim_fail(sim, "api", "CHANGE (%s) on n%" PRIu64 ": %s", what, l->id,
                 raft_strerror(rv));
    }
}

static void fault_transfer(struct sim *sim)
{
    struct sim_node *l = sim_pick_up(sim, true);
    if (l == NULL) {
        return;
    }
    sim_collect(sim, l);
    if (!sim_node_up(l)) {
        return;
    }
    const struct raft_config *cfg = raft_node_config(l->raft);
    if (cfg == NULL) {
        return;
    }
    raft_id cands[RAFT_MEMBERS_MAX];
    size_t count = 0;
    for (uint32_t i = 0; i < cfg->count; i++) {
        if (cfg->members[i].role == RAFT_VOTER && cfg->members[i].id != l->id) {
            cands[count++] = cfg->members[i].id;
        }
    }
    if (count == 0) {
        return;
    }
    raft_id to = cands[sim_rng_range(&sim->rng, 0, count - 1)];
    bool joint = cfg->old_count > 0 || raft_node_changing(l->raft);
    struct raft_event ev = {.type = RAFT_EVENT_TRANSFER, .now = sim->now};
    ev.transfer.to = to;
    int rv = sim_step(sim, l, &ev);
    if (rv == 0) {
        sim->st_transfers++;
    }
    if (!rv_in(rv, RAFT_E_BUSY, RAFT_E_NOT_LEADER,
               joint ? RAFT_E_INVALID : RAFT_E_BUSY)) {
        sim_fail(sim, "api", "TRANSFER n%" PRIu64 " -> n%" PRIu64 ": %s",
                 l->id, to, raft_strerror(rv));
    }
}

static void fault_campaign(struct sim *sim)
{
    struct sim_node *n = sim_pick_up(sim, false);
    if (n == NULL) {
        return;
    }
    sim_collect(sim, n);
    struct raft_event ev = {.type = RAFT_EVENT_CAMPAIGN, .now = sim->now};
    int rv = sim_step(sim, n, &ev);
    if (rv == RAFT_E_NOMEM) {
        sim_fail(sim, "api", "CAMPAIGN on n%" PRIu64 ": %s", n->id,
                 raft_strerror(rv));
    }
}

static uint32_t quorum(uint32_t n)
{
    return n / 2 + 1;
}

static uint32_t min_u32(uint32_t a, uint32_t b)
{
    return a < b ? a : b;
}

/* Region loss: the members of one region (or another subset) are lost for
 * good and the survivors are forced into a configuration without them. Only
 * when the documented condition holds:
 *   (a) every removed member is permanently crashed first (deleted),
 *   (b) FORCE goes to every member of the new configuration, all with the
 *       same configuration,
 *   (c) the configuration forced away from is not joint and the survivors
 *       agree on it and are not changing,
 *   (d) every majority of the new voters intersects every majority of the
 *       old: (|old| - |surv|) + min(|surv|, |new| - q(new)) < q(old),
 *   (e) and no survivor still has an earlier forced configuration pending
 *       (hard state `forced`): the group must have settled first. */
static void fault_force(struct sim *sim)
{
    if (sim->forces >= SIM_FORCES_MAX) {
        return;
    }
    struct sim_node *x = sim_pick_up(sim, false);
    if (x == NULL) {
        return;
    }
    sim_collect(sim, x);
    if (!sim_node_up(x) || raft_node_changing(x->raft)) {
        return;
    }
    const struct raft_config *cp = raft_node_config(x->raft);
    if (cp == NULL || cp->old_count > 0) {
        return;
    }
    struct raft_config c = *cp;
    uint32_t v = count_voters(&c, false);
    if (v < 2) {
        return;
    }
    /* Choose the lost voters: a parity region first, else random sets. */
    bool lost[RAFT_MEMBERS_MAX];
    bool found = false;
    uint64_t parity = sim_rng_range(&sim->rng, 0, 1);
    for (int attempt = 0; attempt < 8 && !found; attempt++) {
        for (uint32_t i = 0; i < c.count; i++) {
            if (c.members[i].role != RAFT_VOTER) {
                lost[i] = true; /* learners cannot take FORCE: drop them */
            } else if (attempt == 0) {
                lost[i] = c.members[i].id % 2 == parity;
            } else {
                lost[i] = sim_rng_pm(&sim->rng, 400);
            }
        }
        uint32_t s = 0, s_prio = 0;
        for (uint32_t i = 0; i < c.count; i++) {
            if (c.members[i].role == RAFT_VOTER && !lost[i]) {
                s++;
                s_prio += c.members[i].priority > 0;
            }
        }
        if (s == 0 || s == v || s_prio == 0) {
            continue;
        }
        /* new voters == survivors */
        found = (v - s) + min_u32(s, s - quorum(s)) < quorum(v);
    }
    if (!found) {
        return;
    }
    struct raft_config target;
    raft_config_init(&target);
    for (uint32_t i = 0; i < c.count; i++) {
        if (!lost[i]) {
            raft_config_add(&target, c.members[i].id, RAFT_VOTER,
                            c.members[i].priority);
        }
    }
    /* Survivors must all be running and agree on c, not changing. */
    uint8_t enc_c[RAFT_CONFIG_ENCODED_MAX];
    int len_c = raft_config_encode(&c, enc_c, sizeof(enc_c));
    for (uint32_t i = 0; i < target.count; i++) {
        struct sim_node *s = sim_node_get(sim, target.members[i].id);
        if (s == NULL || s->state == SIM_NODE_DELETED) {
            return;
        }
        if (s->state == SIM_NODE_DOWN) {
            sim_restart(sim, s);
        }
        sim_collect(sim, s);
        /* (e) no earlier forced configuration still pending: right after a
         * force, committed entries are only known to intersect every new
         * majority, not to be held by one, so forcing again could lose
         * them (seed 32 with the original condition). */
        if (!sim_node_up(s) || raft_node_changing(s->raft) ||
            (s->disk.has_hs && s->disk.hs.forced)) {
            return;
        }
        uint8_t enc[RAFT_CONFIG_ENCODED_MAX];
        const struct raft_config *sc = raft_node_config(s->raft);
        int len = sc ? raft_config_encode(sc, enc, sizeof(enc)) : -1;
        if (len != len_c || len < 0 || memcmp(enc, enc_c, (size_t)len) != 0) {
            return;
        }
    }
    if (sim->cli.verbose) {
        char a[256], b[256];
        sim_config_str(&c, a, sizeof(a));
        sim_config_str(&target, b, sizeof(b));
        sim_trace(sim, "region loss: %s -> forced %s", a, b);
    }
    for (uint32_t i = 0; i < c.count; i++) {
        struct sim_node *d = sim_node_get(sim, c.members[i].id);
        if (lost[i] && d != NULL && d->state != SIM_NODE_DELETED) {
            sim_crash(sim, d, true);
        }
    }
    sim->forces++;
    for (uint32_t i = 0; i < target.count && !sim->failed; i++) {
        struct sim_node *s = sim_node_get(sim, target.members[i].id);
        struct raft_event ev = {.type = RAFT_EVENT_FORCE, .now = sim->now};
        ev.force.config = &target;
        int rv = sim_step(sim, s, &ev);
        if (rv != 0) {
            sim_fail(sim, "api", "FORCE on survivor n%" PRIu64 ": %s", s->id,
                     raft_strerror(rv));
        }
    }
}

void sim_on_fault(struct sim *sim)
{
    if (sim->liveness) {
        return;
    }
    const struct sim_params *p = &sim->p;
    sim_push(sim,
             sim->now + sim_rng_range(&sim->rng, p->fault_interval / 2 + 1,
                                      p->fault_interval + p->fault_interval / 2),
             SIM_EV_FAULT, 0, 0, 0, NULL);
    uint32_t w[] = {p->crash_w,    p->partition_w, p->heal_w,  p->change_w,
                    p->transfer_w, p->campaign_w,  p->force_w};
    uint32_t total = 0;
    for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
        total += w[i];
    }
    if (total == 0) {
        return;
    }
    uint64_t r = sim_rng_range(&sim->rng, 0, total - 1);
    size_t kind = 0;
    while (r >= w[kind]) {
        r -= w[kind];
        kind++;
    }
    switch (kind) {
    case 0: {
        struct sim_node *n = sim_pick_up(sim, false);
        if (n != NULL) {
            sim_crash(sim, n, false);
        }
        break;
    }
    case 1:
        fault_partition(sim);
        break;
    case 2:
        sim_heal(sim);
        break;
    case 3:
        fault_change(sim);
        break;
    case 4:
        fault_transfer(sim);
        break;
    case 5:
        fault_campaign(sim);
        break;
    default:
        fault_force(sim);
        break;
    }
}

void sim_on_committed_config(struct sim *sim, const struct raft_config *cfg)
{
    for (raft_id id = 1; id <= SIM_IDS_MAX; id++) {
        struct sim_node *n = &sim->nodes[id];
        if (n->state != SIM_NODE_UP && n->state != SIM_NODE_DOWN) {
            continue;
        }
        bool in = raft_config_member(cfg, id) != NULL;
        for (uint32_t i = 0; i < cfg->old_count; i++) {
            in = in || cfg->old_voters[i] == id;
        }
        if (in) {
            n->ever_member = true;
        } else if (n->ever_member && !n->delete_scheduled) {
            /* Removed by a committed configuration: shut it down later. */
            n->delete_scheduled = true;
            sim_push(sim,
                     sim->now + sim_rng_range(&sim->rng, 0,
                                              3 * sim->p.election_timeout),
                     SIM_EV_DELETE, id, 0, 0, NULL);
        }
    }
}
