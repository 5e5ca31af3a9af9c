/* record_json.h: tandem.record.Record -> the record exporters see, and
 * Zeebe 8.4's record JSON.
 *
 * Data flow: the packed bytes of one tandem.record.Record (a slice of a
 * log entry's RecordBatch, see record_json_batch_split()) plus its
 * partition and position -> record_json_view_init() unpacks it, checks
 * its enums, builds the JSON
 *
 *   {"partitionId":1,"value":{...},"key":..,"position":..,"timestamp":..,
 *    "valueType":"JOB","intent":"CREATED","recordType":"EVENT",
 *    "rejectionType":"NULL_VAL","rejectionReason":"","brokerVersion":"..",
 *    "sourceRecordPosition":-1,"authorizations":{"authorized_tenants":
 *    ["<default>"]},"recordVersion":1}
 *
 * and fills a struct exporter_record pointing into the view. The value
 * object uses Zeebe's field names per value type (see record_json.c).
 * Conversions: key 0 (a command without a key) and source position 0
 * (none) become -1; JSON documents held as strings (variables, custom
 * headers) become JSON objects; bytes become base64; an empty tenant id
 * becomes "<default>".
 *
 * Pure functions, no shared state: views may be built on any thread.
 */
#ifndef TANDEM_EXPORTER_RECORD_JSON_H
#define TANDEM_EXPORTER_RECORD_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "exporter/exporter.h"
#include "proto/record.pb-c.h"

/* Highest tandem.record.ValueType number this build knows. */
#define RECORD_JSON_VALUE_TYPE_LAST 13
_Static_assert(RECORD_JSON_VALUE_TYPE_LAST < EXPORTER_VALUE_TYPES_MAX,
               "the filter table must cover every value type");

/* A decoded record: what exporters receive, and the memory behind it. */
struct record_json_view {
    struct exporter_record record; /* points into msg and json */
    Tandem__Record__Record *msg;   /* owned */
    char *json;                    /* owned, compact, NUL-terminated */
};

/* Decodes bytes (borrowed) and builds the view. Returns 0, or
 * EXPORTER_E_DECODE (malformed bytes, unknown value/record type, a value
 * that does not unpack) or EXPORTER_E_NOMEM, with err naming the position
 * and the problem; on error nothing needs closing. */
int record_json_view_init(struct record_json_view *v, uint32_t partition_id,
                          int64_t position, const uint8_t *bytes, size_t len,
                          char *err, size_t err_len);
void record_json_view_close(struct record_json_view *v);

/* Builds the record JSON object of an unpacked record; *out is a new
 * reference. Same errors as above. */
int record_json_build(uint32_t partition_id, int64_t position,
                      const Tandem__Record__Record *r, json_t **out, char *err,
                      size_t err_len);

/* Builds the "value" object of a packed value of value_type; *out is a
 * new reference. Returns 0 or EXPORTER_E_DECODE/EXPORTER_E_NOMEM. */
int record_json_value(int value_type, const uint8_t *bytes, size_t len,
                      json_t **out, char *err, size_t err_len);

/* Zeebe's names; NULL for numbers this build does not know. */
const char *record_json_value_type_name(int value_type);
const char *record_json_record_type_name(int record_type);
const char *record_json_rejection_type_name(int rejection_type);
const char *record_json_intent_name(int value_type, uint32_t intent);

/* One record's packed bytes inside a RecordBatch's bytes. */
struct record_json_slice {
    const uint8_t *bytes;
    size_t len;
};

/* Finds the records of a packed tandem.record.RecordBatch without
 * unpacking them (the slices point into batch). Returns the number of
 * records, EXPORTER_E_DECODE for malformed bytes, or EXPORTER_E_LIMIT
 * when more than slices_max records are present. */
int record_json_batch_split(const uint8_t *batch, size_t len,
                            struct record_json_slice *slices,
                            size_t slices_max);

#endif /* TANDEM_EXPORTER_RECORD_JSON_H */
