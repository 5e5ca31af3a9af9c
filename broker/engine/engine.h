/* engine.h: a partition's stream processing engine: BPMN processes, jobs,
 * incidents, variables and messages, with its state in LMDB (private to
 * broker/; the partition drives it, nothing else includes it).
 *
 * The model (docs/engine.md):
 *
 *   Every record on the log is a tandem.record.Record (proto/record.proto).
 *   Each Raft entry holds one RecordBatch; record i of the entry at index n
 *   has position n << 16 | i.
 *
 *   Processing (leader only), stop-and-wait:
 *
 *     client request --engine_command_from_request()--> COMMAND record
 *       (validated; request_node/request_id set) --> the partition's queue
 *     queue + due timers --engine_process()--> one RecordBatch:
 *       [cmd1, its events and follow-up commands (processed inline),
 *        cmd2, ..., timer commands (JOB TIME_OUT, JOB RECUR_AFTER_BACKOFF,
 *        MESSAGE EXPIRE) and their events]
 *       computed in an LMDB write transaction that is rolled back: the
 *       processors read the state, emit records, and the event appliers
 *       update the state inside the transaction so later commands of the
 *       round see earlier ones' effects. Nothing is kept.
 *     the partition proposes the batch as one entry and processes the next
 *     round only after that entry was applied (one round in flight), so
 *     processing always starts from committed state and a new leader needs
 *     no reprocessing: the log never holds an unprocessed command.
 *
 *   Applying (every replica, leader included):
 *
 *     committed entry --engine_apply_entry()--> the event appliers (the
 *       same functions processing ran) update the state for real, in one
 *       LMDB transaction per engine_apply_begin()/engine_apply_end() pair;
 *       hooks report the records that answer client requests and the job
 *       types that became activatable.
 *
 *   Deterministic: processing reads time only from now_ms (stored in the
 *   records' timestamps) and appliers read only the records, so every
 *   replica reaches the same state.
 *
 * State: one LMDB environment per partition (opt.dir/data.mdb), written
 * without fsync (MDB_NOSYNC): it is derived from the log and carries the
 * index it was applied up to; after a crash the partition re-applies the
 * log from there (engine_apply_entry() skips entries at or below
 * engine_applied_index()). Snapshots serialize every table (zstd).
 *
 * Errors are negative enum engine_errno values; messages go to err.
 */
#ifndef TANDEM_ENGINE_ENGINE_H
#define TANDEM_ENGINE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

#define ENGINE_POSITION_BITS 16
#define ENGINE_KEY_BITS 51
#define ENGINE_RECORDS_PER_BATCH_MAX 4096   /* records in one round */
#define ENGINE_BATCH_BYTES_MAX (4u << 20)   /* packed bytes in one round */
#define ENGINE_DEFAULT_TENANT "<default>"

enum engine_errno {
    ENGINE_E_INVALID = -1, /* bad request / argument (message says why) */
    ENGINE_E_NOMEM = -2,
    ENGINE_E_IO = -3,      /* LMDB failed (message names the call) */
    ENGINE_E_CORRUPT = -4, /* a record or snapshot that does not decode */
    ENGINE_E_FULL = -5,    /* the round is full; process the rest later */
};

struct engine;

struct engine_options {
    const char *dir;           /* created if missing; holds data.mdb */
    uint32_t partition_id;     /* >= 1 */
    uint32_t partitions_count; /* >= partition_id */
    const char *broker_version;
    size_t map_size;           /* LMDB map size; 0 = 1 GiB */
};

/* Opens (creating if needed) the partition's state. Returns 0,
 * ENGINE_E_INVALID, ENGINE_E_IO (err says which call failed),
 * ENGINE_E_NOMEM. */
int engine_open(struct engine **out, const struct engine_options *opt,
                char *err, size_t errlen);

void engine_close(struct engine *e);

/* The log index whose records the state includes last (0 = none). */
uint64_t engine_applied_index(const struct engine *e);

/* ------------------------------------------------------------------------
 * Requests and responses (leader side of the command API)
 * --------------------------------------------------------------------- */

/* Builds the COMMAND record for a client request addressed to this
 * partition (any body of proto/command.proto except topology, await_jobs
 * and distribute-with-a-bad-record), validating what can be validated
 * without state (JSON variables are objects, job keys belong to this
 * partition, required fields present, timeouts >= 0, BPMN resources parse).
 * request_node/request_id go into the record. *out is a heap record to
 * free with engine_record_free(). Returns 0 or ENGINE_E_INVALID with the
 * message the client should see (Zeebe's wording where Zeebe has one). */
int engine_command_from_request(struct engine *e,
                                const Tandem__Command__Request *req,
                                uint32_t request_node, uint64_t request_id,
                                Tandem__Record__Record **out, char *err,
                                size_t errlen);

/* True for commands exempt from backpressure (JOB COMPLETE, JOB FAIL,
 * PROCESS_INSTANCE CANCEL, DEPLOYMENT CREATE, distributed commands). */
bool engine_command_is_exempt(const Tandem__Record__Record *command);

void engine_record_free(Tandem__Record__Record *rec);

/* Builds the response to a client request from the record that answers it
 * (an EVENT or COMMAND_REJECTION whose request_id is set, as handed to the
 * answer hook): the gateway_protocol response for events, or Error{code,
 * message} for rejections, with Zeebe's message form "Command '<intent>'
 * rejected with code '<type>': <reason>" and code mapping (INVALID_STATE
 * -> FAILED_PRECONDITION, NOT_FOUND -> NOT_FOUND, ...). *out is
 * heap-allocated with id = response_id; free with engine_response_free().
 * Returns 0, ENGINE_E_CORRUPT, ENGINE_E_NOMEM. */
int engine_response_build(const Tandem__Record__Record *answer,
                          uint64_t response_id,
                          Tandem__Command__Response **out);

void engine_response_free(Tandem__Command__Response *resp);

/* ------------------------------------------------------------------------
 * Processing (leader)
 * --------------------------------------------------------------------- */

struct engine_round {
    void *batch;          /* packed RecordBatch to propose; NULL = nothing */
    size_t batch_len;
    size_t consumed;      /* commands[0..consumed) are in the batch */
};

/* Runs one processing round as described at the top: processes
 * commands[0..n) in order (stopping early when ENGINE_RECORDS_PER_BATCH_MAX
 * or ENGINE_BATCH_BYTES_MAX would be exceeded; always consumes at least
 * one when n > 0), then every timer due at now_ms (job deadlines, retry
 * backoffs, message TTLs) and every pending distribution acknowledgement
 * (see engine_distribution_*). first_position is the position the batch's
 * first record will have (next index << 16). The state is unchanged
 * afterwards. A command that cannot be processed gets a
 * COMMAND_REJECTION; a failing expression raises an incident: the round
 * itself fails only with ENGINE_E_NOMEM / ENGINE_E_IO. */
int engine_process(struct engine *e, uint64_t now_ms, uint64_t first_position,
                   Tandem__Record__Record *const *commands, size_t n,
                   struct engine_round *out);

void engine_round_free(struct engine_round *round);

/* The earliest time (ms, same clock as now_ms) at which a timer is due,
 * or UINT64_MAX when none is pending. Cheap (cached, updated by apply). */
uint64_t engine_next_due(const struct engine *e);

/* ------------------------------------------------------------------------
 * Applying (every replica)
 * --------------------------------------------------------------------- */

struct engine_apply_hooks {
    /* A record that answers a client request (request_id != 0, not a
     * COMMAND) was applied. rec is borrowed for the call. */
    void (*answer)(void *data, const Tandem__Record__Record *rec,
                   uint64_t position);
    /* A job of this type became activatable (created, timed out, failed
     * with retries, recurred after backoff, retries updated, yielded). */
    void (*jobs_available)(void *data, const char *type);
    void *data;
};

/* Opens the write transaction the following entries are applied in. */
int engine_apply_begin(struct engine *e);

/* Applies the records of the entry at index (already decoded). Entries at
 * or below engine_applied_index() are skipped (return 0). Returns 0 or
 * ENGINE_E_CORRUPT (an impossible record: the caller marks the partition
 * dead). Non-NORMAL raft entries are passed with batch NULL (only the
 * applied index advances). */
int engine_apply_entry(struct engine *e, uint64_t index,
                       const Tandem__Record__RecordBatch *batch,
                       const struct engine_apply_hooks *hooks);

/* Commits the transaction (no fsync, see top). Hooks fire during
 * engine_apply_entry(); callers act on them after this returns 0. */
int engine_apply_end(struct engine *e);

/* ------------------------------------------------------------------------
 * Jobs available (long polling)
 * --------------------------------------------------------------------- */

/* True when a job of this type is activatable now. */
bool engine_jobs_activatable(struct engine *e, const char *type);

/* ------------------------------------------------------------------------
 * Distribution (deployments from partition 1 to the others)
 * --------------------------------------------------------------------- */

struct engine_distribution {
    uint64_t distribution_key;  /* COMMAND_DISTRIBUTION key */
    uint32_t partition_id;      /* target */
    void *record;               /* packed Record COMMAND to send */
    size_t record_len;
};

/* Lists up to max distributions this partition still has to deliver
 * (state; the leader sends each with a DistributeRequest and retries until
 * it is acknowledged). Returns the number filled; free each .record with
 * free(). */
size_t engine_distributions_pending(struct engine *e,
                                    struct engine_distribution *out,
                                    size_t max);

/* The target partition confirmed distribution_key: builds the
 * COMMAND_DISTRIBUTION ACKNOWLEDGE command to process in the next round
 * (free with engine_record_free()). */
int engine_distribution_ack_command(struct engine *e,
                                    uint64_t distribution_key,
                                    uint32_t partition_id,
                                    Tandem__Record__Record **out);

/* Builds the command record a target partition processes for a received
 * DistributeRequest (validating the packed record: a DEPLOYMENT CREATE
 * COMMAND with a key of the source partition). The caller sets
 * request_node/request_id on *out: the DEPLOYMENT CREATED event that the
 * command yields carries them, and engine_response_build() turns it into
 * the DistributeResponse. */
int engine_command_from_distribute(struct engine *e,
                                   const Tandem__Command__DistributeRequest *d,
                                   Tandem__Record__Record **out, char *err,
                                   size_t errlen);

/* ------------------------------------------------------------------------
 * Exporter positions (the partition state's EXPORTER table)
 * --------------------------------------------------------------------- */

/* Builds the EXPORTER UPDATE (or, with delete_row, DELETE) command the
 * leader processes to record an exporter's acknowledged position and
 * metadata (metadata copied; free with engine_record_free()). Exempt from
 * backpressure. Returns 0 or ENGINE_E_INVALID. */
int engine_exporter_command(struct engine *e, bool delete_row, const char *id,
                            int64_t position, const void *metadata,
                            size_t metadata_len, uint32_t metadata_version,
                            Tandem__Record__Record **out);

/* The committed row of exporter id: *position (-1 when none), and when
 * metadata is non-NULL a malloc'd copy of its metadata (free()). Returns 0,
 * 1 (no row; *position -1), ENGINE_E_IO, ENGINE_E_CORRUPT, ENGINE_E_NOMEM. */
int engine_exporter_get(struct engine *e, const char *id, int64_t *position,
                        void **metadata, size_t *metadata_len,
                        uint32_t *metadata_version);

/* ------------------------------------------------------------------------
 * Snapshots
 * --------------------------------------------------------------------- */

/* Serializes the whole state as of the last engine_apply_end() into a
 * zstd-compressed buffer (*out, *len; free()). */
int engine_snapshot_encode(struct engine *e, void **out, size_t *len);

/* Replaces the whole state with a snapshot's. Returns 0 or
 * ENGINE_E_CORRUPT (state unchanged). */
int engine_snapshot_restore(struct engine *e, const void *data, size_t len);

/* A digest of the whole state (for tests comparing replicas). */
uint64_t engine_state_hash(struct engine *e);

/* ------------------------------------------------------------------------
 * Introspection (management, tests)
 * --------------------------------------------------------------------- */

struct engine_stats {
    uint64_t applied_index;
    uint64_t key_counter;
    uint64_t processes;        /* deployed process versions */
    uint64_t instances_active; /* process instances not yet completed */
    uint64_t jobs_activatable;
    uint64_t jobs_activated;
    uint64_t incidents_open;
    uint64_t messages_alive;
};

void engine_stats_get(struct engine *e, struct engine_stats *out);

#endif /* TANDEM_ENGINE_ENGINE_H */
