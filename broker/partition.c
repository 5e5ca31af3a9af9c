/* partition.c: a partition's state machine, client commands and
 * snapshots.
 *
 * Writing (leader): partition_publish() validates a PublishMessage,
 * assigns the next key and appends one entry holding the RecordBatch
 * [COMMAND MESSAGE PUBLISH, EVENT MESSAGE PUBLISHED]; the request waits in
 * a ring ordered by entry index. Processing at append time means the
 * committed log never holds a command without its outcome, so a new leader
 * has nothing to reprocess; it only skips past the keys its uncommitted
 * tail already handed out (partition_role_changed()).
 *
 * Applying (every replica): partition_apply() decodes each committed
 * entry's RecordBatch, checks it, folds every record into struct
 * partition_state and, for an entry that answers a request taken on this
 * broker (request_node is us), answers it with the key.
 *
 * Snapshot format (the state, then zstd-compressed as a whole, with zstd's
 * content checksum so damage is detected):
 *
 *    0        4        8                                          56
 *   +--------+--------+------------------------------------------+
 *   | "TSNP" | ver=1  | key_counter, records_applied,            |
 *   |        | (u32)  | messages_published, last_message_key,    |
 *   |        |        | last_position, hash   (6 x u64 LE)       |
 *   +--------+--------+------------------------------------------+
 */
#define _POSIX_C_SOURCE 200809L
#include "broker/partition.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <zstd.h>

#include "proto/proto.h"

#define PARTITION_SNAPSHOT_MAGIC "TSNP"
#define PARTITION_SNAPSHOT_VERSION 1u
#define PARTITION_SNAPSHOT_BYTES 56u
#define PARTITION_NAME_BYTES_MAX 4096u
#define PARTITION_VARIABLES_BYTES_MAX (1u << 20)

const char *partition_strerror(int rv)
{
    switch (rv) {
    case 0:
        return "success";
#define PARTITION__ERRNO_CASE(name, value, text)                               \
    case (value):                                                              \
        return (text);
        PARTITION_ERRNO_MAP(PARTITION__ERRNO_CASE)
#undef PARTITION__ERRNO_CASE
    default:
        return "unknown partition error";
    }
}

uint64_t partition_key(uint32_t partition_id, uint64_t counter)
{
    assert(counter < ((uint64_t)1 << PARTITION_KEY_BITS));
    return ((uint64_t)partition_id << PARTITION_KEY_BITS) | counter;
}

static uint64_t key_counter_of(uint64_t key)
{
    return key & (((uint64_t)1 << PARTITION_KEY_BITS) - 1);
}

uint32_t partition_for_correlation_key(const char *correlation_key,
                                       uint32_t partitions_count)
{
    /* Java String.hashCode-style over the signed UTF-8 bytes, with 32-bit
     * wrap-around; partition = |h % count| + 1 (Zeebe SubscriptionUtil). */
    uint32_t h = 0;
    int32_t sh;
    int32_t rem;

    assert(partitions_count > 0);
    for (const unsigned char *c = (const unsigned char *)correlation_key;
         *c != '\0'; c++) {
        int32_t b = (int8_t)*c;
        h = 31u * h + (uint32_t)b;
    }
    memcpy(&sh, &h, sizeof(sh));
    rem = sh % (int32_t)partitions_count;
    if (rem < 0) {
        rem = -rem;
    }
    return (uint32_t)rem + 1;
}

int partition_init(struct partition *p, const struct partition_options *opt,
                   struct raft_node *raft)
{
    if (opt->partition_id == 0 || opt->requests_max == 0 || raft == NULL ||
        opt->answer == NULL) {
        return PARTITION_E_INVALID;
    }
    memset(p, 0, sizeof(*p));
    p->opt = *opt;
    p->requests = calloc(opt->requests_max, sizeof(*p->requests));
    if (p->requests == NULL) {
        return PARTITION_E_NOMEM;
    }
    p->raft = raft;
    p->health = PARTITION_HEALTHY;
    return 0;
}

void partition_close(struct partition *p)
{
    raft_node_free(p->raft);
    p->raft = NULL;
    free(p->requests);
    p->requests = NULL;
}

/* ------------------------------------------------------------------------
 * Pending requests
 * --------------------------------------------------------------------- */

static struct partition_request *request_at(struct partition *p, uint32_t i)
{
    assert(i < p->requests_count);
    return &p->requests[(p->requests_head + i) % p->opt.requests_max];
}

static void request_pop(struct partition *p)
{
    assert(p->requests_count > 0);
    p->requests_head = (p->requests_head + 1) % p->opt.requests_max;
    p->requests_count--;
}

void partition_expire(struct partition *p, uint64_t now_ms)
{
    /* Requests are ordered by index, not deadline; expire from the front
     * while expired, and answer any expired ones behind a live one when
     * they reach the front. Deadlines are of similar length, so this is
     * close to exact. */
    while (p->requests_count > 0) {
        struct partition_request *r = request_at(p, 0);
        if (r->deadline > now_ms) {
            break;
        }
        p->opt.answer(p->opt.answer_data, r->request_id, PARTITION_E_BUSY, 0,
                      "request timed out before its entry was committed");
        request_pop(p);
    }
}

/* ------------------------------------------------------------------------
 * Writing
 * --------------------------------------------------------------------- */

static uint64_t partition_now_key_counter(const struct partition *p)
{
    return p->next_key_counter > p->state.key_counter ? p->next_key_counter
                                                      : p->state.key_counter;
}

static int partition_validate(const char *name, const char *correlation_key,
                              int64_t ttl_ms, const char *message_id,
                              const char *variables, char *message,
                              size_t message_len)
{
    json_error_t err;
    json_t *doc;

    if (name == NULL || name[0] == '\0') {
        snprintf(message, message_len, "message name must not be empty");
        return PARTITION_E_INVALID;
    }
    if (strlen(name) > PARTITION_NAME_BYTES_MAX ||
        (correlation_key != NULL &&
         strlen(correlation_key) > PARTITION_NAME_BYTES_MAX) ||
        (message_id != NULL && strlen(message_id) > PARTITION_NAME_BYTES_MAX)) {
        snprintf(message, message_len,
                 "message name, correlation key and message id must be at "
                 "most %u bytes",
                 PARTITION_NAME_BYTES_MAX);
        return PARTITION_E_INVALID;
    }
    if (ttl_ms < 0) {
        snprintf(message, message_len,
                 "timeToLive must not be negative, got %lld",
                 (long long)ttl_ms);
        return PARTITION_E_INVALID;
    }
    if (variables == NULL || variables[0] == '\0') {
        return 0;
    }
    if (strlen(variables) > PARTITION_VARIABLES_BYTES_MAX) {
        snprintf(message, message_len, "variables exceed %u bytes",
                 PARTITION_VARIABLES_BYTES_MAX);
        return PARTITION_E_INVALID;
    }
    doc = json_loads(variables, JSON_REJECT_DUPLICATES, &err);
    if (doc == NULL) {
        snprintf(message, message_len,
                 "variables must be a JSON document: %s (line %d, column %d)",
                 err.text, err.line, err.column);
        return PARTITION_E_INVALID;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        snprintf(message, message_len,
                 "variables must be a JSON object, not another JSON value");
        return PARTITION_E_INVALID;
    }
    json_decref(doc);
    return 0;
}

int partition_publish(struct partition *p, uint64_t now_ms,
                      uint64_t request_id, uint64_t deadline_ms,
                      const char *name, const char *correlation_key,
                      int64_t ttl_ms, const char *message_id,
                      const char *variables, char *message,
                      size_t message_len)
{
    Tandem__Record__MessageRecordValue value =
        TANDEM__RECORD__MESSAGE_RECORD_VALUE__INIT;
    Tandem__Record__Record command = TANDEM__RECORD__RECORD__INIT;
    Tandem__Record__Record event = TANDEM__RECORD__RECORD__INIT;
    Tandem__Record__Record *records[2] = {&command, &event};
    Tandem__Record__RecordBatch batch = TANDEM__RECORD__RECORD_BATCH__INIT;
    struct raft_event ev;
    struct raft_buf buf;
    raft_index first = 0;
    raft_index expected;
    uint8_t *value_bytes = NULL;
    uint8_t *bytes = NULL;
    size_t value_len;
    size_t len;
    uint64_t counter;
    uint64_t key;
    int rv;

    message[0] = '\0';
    if (p->health == PARTITION_DEAD) {
        snprintf(message, message_len, "partition %u is dead: %s",
                 p->opt.partition_id, p->health_reason);
        return PARTITION_E_DEAD;
    }
    if (raft_node_role(p->raft) != RAFT_LEADER) {
        snprintf(message, message_len, "broker %u is not the leader of "
                 "partition %u", p->opt.node_id, p->opt.partition_id);
        return PARTITION_E_NOT_LEADER;
    }
    rv = partition_validate(name, correlation_key, ttl_ms, message_id,
                            variables, message, message_len);
    if (rv != 0) {
        return rv;
    }
    if (p->requests_count >= p->opt.requests_max) {
        snprintf(message, message_len,
                 "partition %u has %u requests in flight (the limit)",
                 p->opt.partition_id, p->opt.requests_max);
        return PARTITION_E_BUSY;
    }
    counter = partition_now_key_counter(p) + 1;
    key = partition_key(p->opt.partition_id, counter);

    value.name = (char *)name;
    value.correlation_key = (char *)(correlation_key ? correlation_key : "");
    value.time_to_live = ttl_ms;
    value.message_id = (char *)(message_id ? message_id : "");
    value.variables = (char *)(variables ? variables : "");
    value.deadline = (int64_t)now_ms + ttl_ms;
    value_len = tandem__record__message_record_value__get_packed_size(&value);
    value_bytes = malloc(value_len > 0 ? value_len : 1);
    if (value_bytes == NULL) {
        return PARTITION_E_NOMEM;
    }
    tandem__record__message_record_value__pack(&value, value_bytes);

    expected = raft_node_last_index(p->raft) + 1;
    command.record_type = TANDEM__RECORD__RECORD_TYPE__COMMAND;
    command.value_type = TANDEM__RECORD__VALUE_TYPE__MESSAGE;
    command.intent = TANDEM__RECORD__MESSAGE_INTENT__PUBLISH;
    command.timestamp = (int64_t)now_ms;
    command.broker_version = (char *)p->opt.broker_version;
    command.value.data = value_bytes;
    command.value.len = value_len;
    command.request_node = p->opt.node_id;
    command.request_id = request_id;

    event = command;
    event.key = key;
    event.record_type = TANDEM__RECORD__RECORD_TYPE__EVENT;
    event.intent = TANDEM__RECORD__MESSAGE_INTENT__PUBLISHED;
    event.source_record_position = expected << PARTITION_POSITION_BITS;

    batch.n_records = 2;
    batch.records = records;
    len = tandem__record__record_batch__get_packed_size(&batch);
    bytes = malloc(len);
    if (bytes == NULL) {
        free(value_bytes);
        return PARTITION_E_NOMEM;
    }
    tandem__record__record_batch__pack(&batch, bytes);
    free(value_bytes);

    buf.base = bytes;
    buf.len = len;
    memset(&ev, 0, sizeof(ev));
    ev.type = RAFT_EVENT_PROPOSE;
    ev.now = now_ms;
    ev.propose.bufs = &buf;
    ev.propose.count = 1;
    ev.propose.first_index = &first;
    rv = raft_node_step(p->raft, &ev, NULL);
    free(bytes);
    if (rv == RAFT_E_NOT_LEADER) {
        snprintf(message, message_len, "not the leader of partition %u",
                 p->opt.partition_id);
        return PARTITION_E_NOT_LEADER;
    }
    if (rv == RAFT_E_BUSY || rv == RAFT_E_TOO_BIG) {
        snprintf(message, message_len, "partition %u: %s",
                 p->opt.partition_id, raft_strerror(rv));
        return rv == RAFT_E_BUSY ? PARTITION_E_BUSY : PARTITION_E_INVALID;
    }
    if (rv != 0) {
        snprintf(message, message_len, "partition %u: %s",
                 p->opt.partition_id, raft_strerror(rv));
        return PARTITION_E_NOMEM;
    }
    assert(first == expected);
    p->next_key_counter = counter;
    {
        struct partition_request *r;
        p->requests_count++;
        r = request_at(p, p->requests_count - 1);
        r->request_id = request_id;
        r->index = first;
        r->deadline = deadline_ms;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Applying
 * --------------------------------------------------------------------- */

static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
    const uint8_t *b = data;
    for (size_t i = 0; i < len; i++) {
        h ^= b[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

static void partition_mark_dead(struct partition *p, const char *reason)
{
    p->health = PARTITION_DEAD;
    snprintf(p->health_reason, sizeof(p->health_reason), "%s", reason);
}

/* Answers the requests whose entries were applied at or before index. */
static void partition_answer_upto(struct partition *p, raft_index index,
                                  const Tandem__Record__RecordBatch *batch)
{
    while (p->requests_count > 0) {
        struct partition_request *r = request_at(p, 0);
        bool ours = false;
        uint64_t key = 0;
        if (r->index > index) {
            break;
        }
        if (r->index == index && batch != NULL) {
            for (size_t i = 0; i < batch->n_records; i++) {
                const Tandem__Record__Record *rec = batch->records[i];
                if (rec->request_node == p->opt.node_id &&
                    rec->request_id == r->request_id &&
                    rec->record_type == TANDEM__RECORD__RECORD_TYPE__EVENT) {
                    ours = true;
                    key = rec->key;
                }
            }
        }
        if (ours) {
            p->opt.answer(p->opt.answer_data, r->request_id, 0, key, NULL);
        } else {
            /* Another leader's entry took this index: ours was lost with
             * the old term (never acknowledged); the client may retry. */
            p->opt.answer(p->opt.answer_data, r->request_id,
                          PARTITION_E_NOT_LEADER, 0,
                          "leadership changed before the request was "
                          "committed");
        }
        request_pop(p);
    }
}

static int partition_apply_batch(struct partition *p,
                                 const struct raft_entry *e,
                                 const Tandem__Record__RecordBatch *batch)
{
    if (batch->n_records == 0 ||
        batch->n_records >= PARTITION_RECORDS_PER_ENTRY_MAX) {
        return PARTITION_E_CORRUPT;
    }
    for (size_t i = 0; i < batch->n_records; i++) {
        const Tandem__Record__Record *rec = batch->records[i];
        uint64_t position = (e->index << PARTITION_POSITION_BITS) | i;
        if (rec->record_type == TANDEM__RECORD__RECORD_TYPE__EVENT &&
            rec->value_type == TANDEM__RECORD__VALUE_TYPE__MESSAGE &&
            rec->intent == TANDEM__RECORD__MESSAGE_INTENT__PUBLISHED) {
            uint64_t counter = key_counter_of(rec->key);
            if ((rec->key >> PARTITION_KEY_BITS) != p->opt.partition_id ||
                counter == 0) {
                return PARTITION_E_CORRUPT;
            }
            if (counter > p->state.key_counter) {
                p->state.key_counter = counter;
            }
            p->state.messages_published++;
            p->state.last_message_key = rec->key;
        }
        p->state.records_applied++;
        p->state.last_position = position;
        p->state.hash = fnv1a(p->state.hash, &position, sizeof(position));
        p->state.hash = fnv1a(p->state.hash, &rec->key, sizeof(rec->key));
        p->state.hash =
            fnv1a(p->state.hash, rec->value.data, rec->value.len);
    }
    return 0;
}

int partition_apply(struct partition *p, const struct raft_entry *entries,
                    size_t count)
{
    for (size_t i = 0; i < count; i++) {
        const struct raft_entry *e = &entries[i];
        Tandem__Record__RecordBatch *batch;
        int rv;

        if (p->health == PARTITION_DEAD) {
            return PARTITION_E_DEAD;
        }
        if (e->type != RAFT_ENTRY_NORMAL) {
            partition_answer_upto(p, e->index, NULL);
            continue;
        }
        batch = tandem__record__record_batch__unpack(NULL, e->buf.len,
                                                     e->buf.base);
        if (batch == NULL) {
            partition_mark_dead(p, "an entry does not decode as a record "
                                   "batch");
            return PARTITION_E_CORRUPT;
        }
        rv = partition_apply_batch(p, e, batch);
        if (rv != 0) {
            tandem__record__record_batch__free_unpacked(batch, NULL);
            partition_mark_dead(p, "an entry holds an invalid record");
            return rv;
        }
        partition_answer_upto(p, e->index, batch);
        tandem__record__record_batch__free_unpacked(batch, NULL);
    }
    return 0;
}

void partition_role_changed(struct partition *p)
{
    p->next_key_counter = 0;
    if (raft_node_role(p->raft) != RAFT_LEADER) {
        return;
    }
    /* Keys in entries after the applied index were handed out by earlier
     * leaders (or by us in an earlier term); the next key must be past
     * them, whether those entries end up committed or not. */
    for (raft_index i = raft_node_applied_index(p->raft) + 1;
         i <= raft_node_last_index(p->raft); i++) {
        const struct raft_entry *e = raft_node_entry_at(p->raft, i);
        Tandem__Record__RecordBatch *batch;
        if (e == NULL || e->type != RAFT_ENTRY_NORMAL) {
            continue;
        }
        batch = tandem__record__record_batch__unpack(NULL, e->buf.len,
                                                     e->buf.base);
        if (batch == NULL) {
            continue;
        }
        for (size_t k = 0; k < batch->n_records; k++) {
            uint64_t c = key_counter_of(batch->records[k]->key);
            if (c > p->next_key_counter) {
                p->next_key_counter = c;
            }
        }
        tandem__record__record_batch__free_unpacked(batch, NULL);
    }
}

/* ------------------------------------------------------------------------
 * Snapshots
 * --------------------------------------------------------------------- */

static void put_u64(uint8_t *b, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        b[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint64_t get_u64(const uint8_t *b)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)b[i] << (8 * i);
    }
    return v;
}

int partition_snapshot_encode(const struct partition *p, void **out,
                              size_t *len)
{
    uint8_t raw[PARTITION_SNAPSHOT_BYTES];
    size_t bound = ZSTD_compressBound(sizeof(raw));
    void *z = malloc(bound);
    size_t n;

    if (z == NULL) {
        return PARTITION_E_NOMEM;
    }
    memcpy(raw, PARTITION_SNAPSHOT_MAGIC, 4);
    raw[4] = PARTITION_SNAPSHOT_VERSION;
    raw[5] = raw[6] = raw[7] = 0;
    put_u64(raw + 8, p->state.key_counter);
    put_u64(raw + 16, p->state.records_applied);
    put_u64(raw + 24, p->state.messages_published);
    put_u64(raw + 32, p->state.last_message_key);
    put_u64(raw + 40, p->state.last_position);
    put_u64(raw + 48, p->state.hash);
    {
        /* With the content checksum, a damaged snapshot fails to
         * decompress instead of decoding into a wrong state. */
        ZSTD_CCtx *cctx = ZSTD_createCCtx();
        if (cctx == NULL) {
            free(z);
            return PARTITION_E_NOMEM;
        }
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 1);
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
        n = ZSTD_compress2(cctx, z, bound, raw, sizeof(raw));
        ZSTD_freeCCtx(cctx);
    }
    if (ZSTD_isError(n)) {
        free(z);
        return PARTITION_E_NOMEM;
    }
    *out = z;
    *len = n;
    return 0;
}

int partition_restore(struct partition *p, const void *data, size_t len)
{
    uint8_t raw[PARTITION_SNAPSHOT_BYTES + 1];
    unsigned long long size = ZSTD_getFrameContentSize(data, len);
    size_t n;

    if (size != PARTITION_SNAPSHOT_BYTES) {
        partition_mark_dead(p, "snapshot has an unexpected size");
        return PARTITION_E_CORRUPT;
    }
    n = ZSTD_decompress(raw, sizeof(raw), data, len);
    if (ZSTD_isError(n) || n != PARTITION_SNAPSHOT_BYTES ||
        memcmp(raw, PARTITION_SNAPSHOT_MAGIC, 4) != 0 ||
        raw[4] != PARTITION_SNAPSHOT_VERSION || raw[5] != 0 || raw[6] != 0 ||
        raw[7] != 0) {
        partition_mark_dead(p, "snapshot does not decode");
        return PARTITION_E_CORRUPT;
    }
    p->state.key_counter = get_u64(raw + 8);
    p->state.records_applied = get_u64(raw + 16);
    p->state.messages_published = get_u64(raw + 24);
    p->state.last_message_key = get_u64(raw + 32);
    p->state.last_position = get_u64(raw + 40);
    p->state.hash = get_u64(raw + 48);
    return 0;
}
