/* engine_internal.h: what the files of the engine share (private to
 * broker/engine/engine*.c): the engine object, the state tables in LMDB,
 * the processing/applying context, and the helpers each file exports.
 *
 * Files and data flow:
 *
 *   engine.c          public API: open/close, requests -> COMMAND records,
 *                     answering records -> responses, apply entry points,
 *                     distribution helpers
 *   engine_state.c    LMDB tables (named sub-databases), key encodings,
 *                     typed get/put helpers, snapshots, state hash, stats
 *   engine_process.c  one processing round: commands in, records out
 *                     (each event applied at once inside the rolled-back
 *                     transaction); processors of deployments, jobs,
 *                     messages, incidents, variables, distributions
 *   engine_bpmn.c     BPMN execution: element lifecycle processors, the
 *                     per-definition model cache, variables and FEEL
 *   engine_apply.c    the event appliers, shared by processing and apply
 *
 * Every state change goes through an applier (eng_apply_record), during
 * processing (rolled back) and during apply (committed), so both paths
 * reach the same state. Processors read the state, never write it.
 */
#ifndef TANDEM_ENGINE_ENGINE_INTERNAL_H
#define TANDEM_ENGINE_ENGINE_INTERNAL_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <lmdb.h>

#include "broker/engine/bpmn.h"
#include "broker/engine/engine.h"
#include "broker/engine/feel.h"
#include "proto/proto.h"

#define ENGINE_ASSERT(cond) assert(cond)

/* Short names for the generated enums. */
#define RT_COMMAND TANDEM__RECORD__RECORD_TYPE__COMMAND
#define RT_EVENT TANDEM__RECORD__RECORD_TYPE__EVENT
#define RT_REJECTION TANDEM__RECORD__RECORD_TYPE__COMMAND_REJECTION

#define VT_MESSAGE TANDEM__RECORD__VALUE_TYPE__MESSAGE
#define VT_JOB TANDEM__RECORD__VALUE_TYPE__JOB
#define VT_DEPLOYMENT TANDEM__RECORD__VALUE_TYPE__DEPLOYMENT
#define VT_PI TANDEM__RECORD__VALUE_TYPE__PROCESS_INSTANCE
#define VT_INCIDENT TANDEM__RECORD__VALUE_TYPE__INCIDENT
#define VT_JOB_BATCH TANDEM__RECORD__VALUE_TYPE__JOB_BATCH
#define VT_VARIABLE TANDEM__RECORD__VALUE_TYPE__VARIABLE
#define VT_VARDOC TANDEM__RECORD__VALUE_TYPE__VARIABLE_DOCUMENT
#define VT_PIC TANDEM__RECORD__VALUE_TYPE__PROCESS_INSTANCE_CREATION
#define VT_PIR TANDEM__RECORD__VALUE_TYPE__PROCESS_INSTANCE_RESULT
#define VT_PROCESS TANDEM__RECORD__VALUE_TYPE__PROCESS
#define VT_CD TANDEM__RECORD__VALUE_TYPE__COMMAND_DISTRIBUTION
#define VT_EXPORTER TANDEM__RECORD__VALUE_TYPE__EXPORTER
#define EXP_UPDATE TANDEM__RECORD__EXPORTER_INTENT__EXPORTER_UPDATE
#define EXP_UPDATED TANDEM__RECORD__EXPORTER_INTENT__EXPORTER_UPDATED
#define EXP_DELETE TANDEM__RECORD__EXPORTER_INTENT__EXPORTER_DELETE
#define EXP_DELETED TANDEM__RECORD__EXPORTER_INTENT__EXPORTER_DELETED

#define MSG_PUBLISH TANDEM__RECORD__MESSAGE_INTENT__PUBLISH
#define MSG_PUBLISHED TANDEM__RECORD__MESSAGE_INTENT__PUBLISHED
#define MSG_EXPIRE TANDEM__RECORD__MESSAGE_INTENT__EXPIRE
#define MSG_EXPIRED TANDEM__RECORD__MESSAGE_INTENT__EXPIRED

#define JOB_CREATED TANDEM__RECORD__JOB_INTENT__JOB_CREATED
#define JOB_COMPLETE TANDEM__RECORD__JOB_INTENT__JOB_COMPLETE
#define JOB_COMPLETED TANDEM__RECORD__JOB_INTENT__JOB_COMPLETED
#define JOB_TIME_OUT TANDEM__RECORD__JOB_INTENT__JOB_TIME_OUT
#define JOB_TIMED_OUT TANDEM__RECORD__JOB_INTENT__JOB_TIMED_OUT
#define JOB_FAIL TANDEM__RECORD__JOB_INTENT__JOB_FAIL
#define JOB_FAILED TANDEM__RECORD__JOB_INTENT__JOB_FAILED
#define JOB_UPDATE_RETRIES TANDEM__RECORD__JOB_INTENT__JOB_UPDATE_RETRIES
#define JOB_RETRIES_UPDATED TANDEM__RECORD__JOB_INTENT__JOB_RETRIES_UPDATED
#define JOB_CANCELED TANDEM__RECORD__JOB_INTENT__JOB_CANCELED
#define JOB_THROW_ERROR TANDEM__RECORD__JOB_INTENT__JOB_THROW_ERROR
#define JOB_ERROR_THROWN TANDEM__RECORD__JOB_INTENT__JOB_ERROR_THROWN
#define JOB_RECUR TANDEM__RECORD__JOB_INTENT__JOB_RECUR_AFTER_BACKOFF
#define JOB_RECURRED TANDEM__RECORD__JOB_INTENT__JOB_RECURRED_AFTER_BACKOFF
#define JOB_UPDATE_TIMEOUT TANDEM__RECORD__JOB_INTENT__JOB_UPDATE_TIMEOUT
#define JOB_TIMEOUT_UPDATED TANDEM__RECORD__JOB_INTENT__JOB_TIMEOUT_UPDATED

#define DEP_CREATE TANDEM__RECORD__DEPLOYMENT_INTENT__DEPLOYMENT_CREATE
#define DEP_CREATED TANDEM__RECORD__DEPLOYMENT_INTENT__DEPLOYMENT_CREATED

#define PI_CANCEL TANDEM__RECORD__PROCESS_INSTANCE_INTENT__PI_CANCEL
#define PI_FLOW_TAKEN                                                          \
    TANDEM__RECORD__PROCESS_INSTANCE_INTENT__PI_SEQUENCE_FLOW_TAKEN
#define PI_ACTIVATING                                                          \
    TANDEM__RECORD__PROCESS_INSTANCE_INTENT__PI_ELEMENT_ACTIVATING
#define PI_ACTIVATED                                                           \
    TANDEM__RECORD__PROCESS_INSTANCE_INTENT__PI_ELEMENT_ACTIVATED
#define PI_COMPLETING                                                          \
    TANDEM__RECORD__PROCESS_INSTANCE_INTENT__PI_ELEMENT_COMPLETING
#define PI_COMPLETED                                                           \
    TANDEM__RECORD__PROCESS_INSTANCE_INTENT__PI_ELEMENT_COMPLETED
#define PI_TERMINATING                                                         \
    TANDEM__RECORD__PROCESS_INSTANCE_INTENT__PI_ELEMENT_TERMINATING
#define PI_TERMINATED                                                          \
    TANDEM__RECORD__PROCESS_INSTANCE_INTENT__PI_ELEMENT_TERMINATED
#define PI_ACTIVATE TANDEM__RECORD__PROCESS_INSTANCE_INTENT__PI_ACTIVATE_ELEMENT
#define PI_COMPLETE TANDEM__RECORD__PROCESS_INSTANCE_INTENT__PI_COMPLETE_ELEMENT
#define PI_TERMINATE                                                           \
    TANDEM__RECORD__PROCESS_INSTANCE_INTENT__PI_TERMINATE_ELEMENT

#define INC_CREATED TANDEM__RECORD__INCIDENT_INTENT__INCIDENT_CREATED
#define INC_RESOLVE TANDEM__RECORD__INCIDENT_INTENT__INCIDENT_RESOLVE
#define INC_RESOLVED TANDEM__RECORD__INCIDENT_INTENT__INCIDENT_RESOLVED

#define JB_ACTIVATE TANDEM__RECORD__JOB_BATCH_INTENT__JOB_BATCH_ACTIVATE
#define JB_ACTIVATED TANDEM__RECORD__JOB_BATCH_INTENT__JOB_BATCH_ACTIVATED

#define VAR_CREATED TANDEM__RECORD__VARIABLE_INTENT__VARIABLE_CREATED
#define VAR_UPDATED TANDEM__RECORD__VARIABLE_INTENT__VARIABLE_UPDATED

#define VD_UPDATE                                                              \
    TANDEM__RECORD__VARIABLE_DOCUMENT_INTENT__VARIABLE_DOCUMENT_UPDATE
#define VD_UPDATED                                                             \
    TANDEM__RECORD__VARIABLE_DOCUMENT_INTENT__VARIABLE_DOCUMENT_UPDATED

#define PIC_CREATE TANDEM__RECORD__PROCESS_INSTANCE_CREATION_INTENT__PIC_CREATE
#define PIC_CREATED                                                            \
    TANDEM__RECORD__PROCESS_INSTANCE_CREATION_INTENT__PIC_CREATED
#define PIR_COMPLETED                                                          \
    TANDEM__RECORD__PROCESS_INSTANCE_RESULT_INTENT__PIR_COMPLETED
#define PROC_CREATED TANDEM__RECORD__PROCESS_INTENT__PROCESS_CREATED

#define CD_STARTED TANDEM__RECORD__COMMAND_DISTRIBUTION_INTENT__CD_STARTED
#define CD_DISTRIBUTING                                                        \
    TANDEM__RECORD__COMMAND_DISTRIBUTION_INTENT__CD_DISTRIBUTING
#define CD_ACKNOWLEDGE                                                         \
    TANDEM__RECORD__COMMAND_DISTRIBUTION_INTENT__CD_ACKNOWLEDGE
#define CD_ACKNOWLEDGED                                                        \
    TANDEM__RECORD__COMMAND_DISTRIBUTION_INTENT__CD_ACKNOWLEDGED
#define CD_FINISHED TANDEM__RECORD__COMMAND_DISTRIBUTION_INTENT__CD_FINISHED

#define REJ_INVALID_ARGUMENT TANDEM__RECORD__REJECTION_TYPE__INVALID_ARGUMENT
#define REJ_NOT_FOUND TANDEM__RECORD__REJECTION_TYPE__NOT_FOUND
#define REJ_ALREADY_EXISTS TANDEM__RECORD__REJECTION_TYPE__ALREADY_EXISTS
#define REJ_INVALID_STATE TANDEM__RECORD__REJECTION_TYPE__INVALID_STATE
#define REJ_PROCESSING_ERROR TANDEM__RECORD__REJECTION_TYPE__PROCESSING_ERROR
#define REJ_EXCEEDED TANDEM__RECORD__REJECTION_TYPE__EXCEEDED_BATCH_RECORD_SIZE

/* ------------------------------------------------------------------------
 * Limits
 * --------------------------------------------------------------------- */

#define ENG_NAME_BYTES_MAX 255u       /* ids, variable names in keys */
#define ENG_JSON_BYTES_MAX (1u << 20) /* one JSON document in a request */
#define ENG_MODELS_MAX 256u           /* parsed definitions cached */
#define ENG_TIMERS_PER_ROUND_MAX 256u /* timer commands of one kind */
#define ENG_JOBS_BYTES_MAX (2u << 20) /* job values in one JOB_BATCH */
#define ENG_SCOPE_DEPTH_MAX 64u       /* flow scope chain walked */
#define ENG_SNAPSHOT_BYTES_MAX (1ull << 32)
#define ENG_ERR_BYTES 512u

/* ------------------------------------------------------------------------
 * Tables: one LMDB named database each. Keys are big-endian so that LMDB's
 * byte order is numeric order. Layouts (|| = concatenation):
 *
 *   meta          "applied" -> u64 index; "keys" -> u64 key counter
 *   proc          key -> sha256[32] || packed ProcessRecordValue
 *   proc_ver      id || 0 || u32 version -> u64 key
 *   proc_latest   id -> u32 version || u64 key
 *   elem          key -> struct eng_elem_hdr || packed
 * ProcessInstanceRecordValue elem_child    scope key || child key -> "" join
 * scope key || flow id -> u32 tokens arrived var           scope key || name ->
 * u64 variable key || JSON text tmpvar        element key -> JSON (job
 * variables awaiting completion) job           key -> u32 state || packed
 * JobRecordValue (no variables) job_act       sha256(type)[16] || key -> ""
 * (activatable, key order) job_deadline  u64 deadline || key -> "" (activated)
 *   job_backoff   u64 recurring time || key -> ""  (failed with backoff)
 *   incident      key -> packed IncidentRecordValue
 *   incident_elem element key || incident key -> ""
 *   msg           key -> packed MessageRecordValue
 *   msg_id        sha256(name 0 correlation key 0 message id) -> u64 key
 *   msg_deadline  u64 deadline || key -> ""
 *   dist          key -> u32 request node || u64 request id || u32 value
 *                 type || u32 intent || command value bytes
 *   dist_pending  key || u32 partition -> ""
 *   await         process instance key -> u32 request node || u64
 *                 request id || packed ProcessInstanceCreationRecordValue
 *   exporter      exporter id -> packed ExporterRecordValue
 * --------------------------------------------------------------------- */

enum eng_table {
    ENG_T_META,
    ENG_T_PROC,
    ENG_T_PROC_VER,
    ENG_T_PROC_LATEST,
    ENG_T_ELEM,
    ENG_T_ELEM_CHILD,
    ENG_T_JOIN,
    ENG_T_VAR,
    ENG_T_TMPVAR,
    ENG_T_JOB,
    ENG_T_JOB_ACT,
    ENG_T_JOB_DEADLINE,
    ENG_T_JOB_BACKOFF,
    ENG_T_INCIDENT,
    ENG_T_INCIDENT_ELEM,
    ENG_T_MSG,
    ENG_T_MSG_ID,
    ENG_T_MSG_DEADLINE,
    ENG_T_DIST,
    ENG_T_DIST_PENDING,
    ENG_T_AWAIT,
    ENG_T_EXPORTER,
    ENG_T_COUNT
};

extern const char *const eng_table_names[ENG_T_COUNT];

/* Job states (Zeebe's JobState.State names, see eng_job_state_name). */
enum eng_job_state {
    ENG_JOB_ACTIVATABLE = 1,
    ENG_JOB_ACTIVATED = 2,
    ENG_JOB_FAILED = 3,
    ENG_JOB_ERROR_THROWN = 4,
};

/* Element instance header, stored big-endian before the value. */
struct eng_elem_hdr {
    uint32_t state;    /* PI_ACTIVATING, PI_ACTIVATED, PI_COMPLETING,
                          PI_TERMINATING */
    uint32_t children; /* active child element instances */
    uint32_t flows;    /* taken sequence flows whose target is not active
                          yet (tokens in flight or waiting at a join) */
    uint32_t type;     /* enum bpmn_element_type */
    uint64_t job_key;  /* service tasks: the job, 0 = none */
};
#define ENG_ELEM_HDR_BYTES 24u

/* One cached parsed process definition. */
struct eng_model {
    uint64_t key;          /* process definition key, 0 = free slot */
    unsigned char sum[32]; /* checksum of the resource it came from */
    struct bpmn_definitions *defs;
    const struct bpmn_process *proc;
    uint64_t used; /* use tick, for eviction */
};

struct engine {
    MDB_env *env;
    MDB_dbi dbi[ENG_T_COUNT];
    uint32_t partition_id;
    uint32_t partitions_count;
    char *broker_version;
    uint64_t applied_index; /* committed */
    uint64_t key_counter;   /* committed */
    uint64_t next_due;      /* cached earliest timer */
    MDB_txn *apply_txn;     /* open between apply_begin and apply_end */
    uint64_t apply_index;   /* applied index inside apply_txn */
    uint64_t apply_counter; /* key counter inside apply_txn */
    struct eng_model models[ENG_MODELS_MAX];
    uint64_t model_tick;
};

/* What a processor or applier works in: one LMDB write transaction plus,
 * when processing, the records written so far. */
struct eng_ctx {
    struct engine *e;
    MDB_txn *txn;
    bool processing;
    int64_t now;           /* processing: now_ms; apply: record time */
    uint64_t *key_counter; /* the counter appliers advance */
    /* Processing output. */
    Tandem__Record__Record **recs;
    size_t n, cap;
    size_t bytes;            /* packed size of the batch so far */
    uint64_t first_position; /* position of recs[0] */
    size_t cur;              /* index of the command being processed */
    /* The records of the entry being applied (source look-ups). */
    Tandem__Record__Record *const *view;
    size_t view_n;
    uint64_t view_first;
    const struct engine_apply_hooks *hooks;
    int fail; /* sticky: ENGINE_E_NOMEM/IO/FULL/CORRUPT */
};

/* ------------------------------------------------------------------------
 * engine_state.c
 * --------------------------------------------------------------------- */

void eng_put_u32(unsigned char *p, uint32_t v); /* big-endian */
void eng_put_u64(unsigned char *p, uint64_t v);
uint32_t eng_get_u32(const unsigned char *p);
uint64_t eng_get_u64(const unsigned char *p);

int eng_state_open(struct engine *e, const char *dir, size_t map_size,
                   char *err, size_t errlen);
void eng_state_close(struct engine *e);
/* Loads applied index and key counter from meta, and the next due time. */
int eng_state_load_meta(struct engine *e);
int eng_state_save_meta(struct engine *e, MDB_txn *txn, uint64_t applied,
                        uint64_t counter);
uint64_t eng_state_next_due(struct engine *e, MDB_txn *txn);

/* "No such entry" from the helpers below: positive, unlike LMDB's
 * MDB_NOTFOUND, so that `rc < 0` always means a real error. */
#define ENG_NOTFOUND 1

/* Raw access; 0, ENG_NOTFOUND (get/del) or a negative engine errno. */
int eng_get(struct eng_ctx *c, enum eng_table t, const void *k, size_t klen,
            MDB_val *out);
int eng_put(struct eng_ctx *c, enum eng_table t, const void *k, size_t klen,
            const void *v, size_t vlen);
int eng_del(struct eng_ctx *c, enum eng_table t, const void *k, size_t klen);
/* Deletes every entry whose key starts with prefix. */
int eng_del_prefix(struct eng_ctx *c, enum eng_table t, const void *prefix,
                   size_t plen);
/* Calls fn for each entry whose key starts with prefix (in key order)
 * until fn returns non-zero (returned) or max entries were visited. */
typedef int (*eng_each_fn)(void *arg, const MDB_val *k, const MDB_val *v);
int eng_each_prefix(struct eng_ctx *c, enum eng_table t, const void *prefix,
                    size_t plen, size_t max, eng_each_fn fn, void *arg);
/* Puts a packed protobuf message (optionally after a header). */
int eng_put_msg(struct eng_ctx *c, enum eng_table t, const void *k, size_t klen,
                const void *hdr, size_t hlen, const ProtobufCMessage *m);

/* Typed helpers (keys are u64 big-endian). */
void eng_key8(unsigned char out[8], uint64_t key);
void eng_key16(unsigned char out[16], uint64_t a, uint64_t b);
void eng_sha256(const void *data, size_t len, unsigned char out[32]);

/* Element instances. *out is unpacked (free with
 * tandem__record__process_instance_record_value__free_unpacked). Returns
 * 0, ENG_NOTFOUND, or negative. */
int eng_elem_get(struct eng_ctx *c, uint64_t key, struct eng_elem_hdr *hdr,
                 Tandem__Record__ProcessInstanceRecordValue **out);
int eng_elem_put(struct eng_ctx *c, uint64_t key,
                 const struct eng_elem_hdr *hdr,
                 const Tandem__Record__ProcessInstanceRecordValue *v);
int eng_elem_put_hdr(struct eng_ctx *c, uint64_t key,
                     const struct eng_elem_hdr *hdr);

/* Jobs (value without variables). */
int eng_job_get(struct eng_ctx *c, uint64_t key, uint32_t *state,
                Tandem__Record__JobRecordValue **out);
int eng_job_put(struct eng_ctx *c, uint64_t key, uint32_t state,
                Tandem__Record__JobRecordValue *v);
const char *eng_job_state_name(uint32_t state);

/* Processes. */
int eng_proc_get(struct eng_ctx *c, uint64_t key,
                 Tandem__Record__ProcessRecordValue **out);
int eng_proc_latest(struct eng_ctx *c, const char *id, uint32_t *version,
                    uint64_t *key);
int eng_proc_by_version(struct eng_ctx *c, const char *id, uint32_t version,
                        uint64_t *key);

/* Snapshot/hash/stats helpers live in engine_state.c too (public API). */

/* ------------------------------------------------------------------------
 * engine_apply.c
 * --------------------------------------------------------------------- */

/* Applies one record (advances the key counter for every record; runs the
 * applier for events). Returns 0 or a negative engine errno. */
int eng_apply_record(struct eng_ctx *c, const Tandem__Record__Record *rec,
                     uint64_t position);

/* msg_id table key of a message: sha256(name 0 correlation key 0 id). */
void eng_msg_id_key(const Tandem__Record__MessageRecordValue *m,
                    unsigned char out[32]);

/* The command record at position pos in the current entry/batch, or
 * NULL. */
const Tandem__Record__Record *eng_record_at(const struct eng_ctx *c,
                                            uint64_t pos);

/* ------------------------------------------------------------------------
 * engine_process.c
 * --------------------------------------------------------------------- */

struct eng_answer {
    uint32_t node;
    uint64_t id;
};

uint64_t eng_key_next(struct eng_ctx *c);
/* Appends a record to the round (and applies it). value may be NULL (empty
 * value). ans: request ids to carry, or NULL. Returns 0 or negative (also
 * stored in c->fail). */
int eng_emit(struct eng_ctx *c, Tandem__Record__RecordType rt,
             Tandem__Record__ValueType vt, uint32_t intent, uint64_t key,
             const ProtobufCMessage *value, const struct eng_answer *ans);
/* Appends a COMMAND_REJECTION that answers a request without a command
 * in this round (e.g. the awaited result of a terminated instance). */
int eng_emit_rejection(struct eng_ctx *c, Tandem__Record__ValueType vt,
                       uint32_t intent, uint64_t key,
                       Tandem__Record__RejectionType type, const char *reason,
                       const struct eng_answer *ans);
/* Rejects the command being processed with a formatted reason. */
int eng_reject(struct eng_ctx *c, Tandem__Record__RejectionType type,
               const char *fmt, ...) __attribute__((format(printf, 3, 4)));
const Tandem__Record__Record *eng_cur(const struct eng_ctx *c);
struct eng_answer eng_answer_of(const Tandem__Record__Record *rec);

/* Validation shared by engine_command_from_request and the processors. */
int eng_json_object_check(const char *what, const char *text, char *err,
                          size_t errlen);
int eng_deploy_validate(const Tandem__Record__DeploymentRecordValue *v,
                        char *err, size_t errlen);

/* ------------------------------------------------------------------------
 * engine_bpmn.c
 * --------------------------------------------------------------------- */

/* The parsed model of a definition (cached); NULL when it cannot be
 * loaded (err says why). Valid until the next eng_model_get. */
const struct eng_model *eng_model_get(struct eng_ctx *c, uint64_t def_key,
                                      char *err, size_t errlen);
void eng_models_clear(struct engine *e);

int eng_proc_pi_activate(struct eng_ctx *c);
int eng_proc_pi_complete(struct eng_ctx *c);
int eng_proc_pi_terminate(struct eng_ctx *c);
int eng_proc_pi_cancel(struct eng_ctx *c);
int eng_proc_pic_create(struct eng_ctx *c);
int eng_proc_vardoc_update(struct eng_ctx *c);
/* After a job of a task completed: continue the task (COMPLETE_ELEMENT). */
int eng_bpmn_job_completed(struct eng_ctx *c,
                           const Tandem__Record__JobRecordValue *job);
/* A thrown error: catch it with a boundary event or raise an incident. */
int eng_bpmn_error_thrown(struct eng_ctx *c, uint64_t job_key,
                          const Tandem__Record__JobRecordValue *job);
/* Continue an element whose incident was resolved. */
int eng_bpmn_retry_element(struct eng_ctx *c, uint64_t elem_key);
/* Raise an incident on an element instance. */
int eng_incident_raise(struct eng_ctx *c, const char *error_type,
                       const char *message, uint64_t elem_key,
                       const Tandem__Record__ProcessInstanceRecordValue *pv,
                       int64_t job_key);

/* Variables. */
int eng_vars_visible(struct eng_ctx *c, uint64_t scope, json_t **out);
int eng_vars_local(struct eng_ctx *c, uint64_t scope, json_t **out);
int eng_vars_merge(struct eng_ctx *c, uint64_t scope, const json_t *doc,
                   bool local);
char *eng_json_dump(const json_t *v); /* compact; free() */

#endif /* TANDEM_ENGINE_ENGINE_INTERNAL_H */
