/* export.h: the broker's side of exporting (private to broker/): the
 * configured exporters, one exporter director (exporter/director.h) per
 * partition this broker leads, and the exporters' positions in the
 * partition state.
 *
 * Data flow:
 *
 *   start: every exporters.<id> of the configuration is found (built-in
 *     type or shared object) and its arguments validated; a bad one fails
 *     the broker's start with the exporter's message (broker_export_init)
 *   a partition becomes leader --broker_export_lead()--> a director with
 *     one instance per exporter, starting from the position and metadata
 *     the partition state holds for it (EXPORTER table of the engine)
 *   committed entries --broker_export_committed()--> each record but the
 *     EXPORTER bookkeeping records is offered to the director; a lagging
 *     exporter re-reads committed entries from the raft log (the log keeps
 *     everything after the lowest acknowledged position, see
 *     broker_export_bound())
 *   an exporter acknowledges (director, on the loop) --> remembered; every
 *     flush interval the leader queues an EXPORTER UPDATE command with the
 *     newest position and metadata, so every replica's state, every
 *     snapshot and the next leader have it
 *   the partition loses leadership --broker_export_follow()--> the
 *     director is closed (its exporters flush what they can and close)
 *
 * Enable and disable (cluster changes, broker.c): the broker tells each
 * partition what its exporters should be (broker_export_want_set(), from
 * its replica's exporter states in the cluster configuration and the
 * operation in progress). A follower only remembers it. The leader moves
 * toward it: a disabled exporter leaves the director and its row in the
 * partition state is deleted (EXPORTER DELETE), so it no longer holds back
 * compaction; an enabled one whose row carries an older metadata version
 * than wanted is (re)initialised first (EXPORTER UPDATE with the copied
 * position and metadata of the initializeFrom exporter, or -1 and none)
 * and joins the director once that row is committed. A partition that
 * becomes leader later does the same from what it was told.
 *
 * Pause: broker_export_set_phase() pauses (hard or soft) or resumes every
 * director of this broker; the broker calls it from its configuration
 * (persisted) at start and whenever the phase changes.
 */
#ifndef TANDEM_BROKER_EXPORT_H
#define TANDEM_BROKER_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "broker/config.h"
#include "broker/partition.h"

enum broker_export_phase {
    BROKER_EXPORT_EXPORTING = 0,
    BROKER_EXPORT_PAUSED = 1,
    BROKER_EXPORT_SOFT_PAUSED = 2,
};

struct broker_export;          /* one per broker */
struct broker_export_partition; /* one per hosted partition */

/* Loads and validates every configured exporter. Returns 0 or a negative
 * error with err naming the exporter and the problem. */
int broker_export_init(struct broker_export **out, uv_loop_t *loop,
                       const struct broker_config *cfg, char *err,
                       size_t errlen);

/* Closes every director (asynchronously: cb runs on the loop when the
 * last one closed, possibly at once) and then frees x. */
void broker_export_close(struct broker_export *x, void (*cb)(void *data),
                         void *data);

/* Number of configured exporters. */
uint32_t broker_export_count(const struct broker_export *x);

/* Per partition: creates the bookkeeping (no director yet). */
int broker_export_partition_new(struct broker_export *x, struct partition *p,
                                struct broker_export_partition **out);

/* The partition became leader: starts its director. */
void broker_export_lead(struct broker_export_partition *xp);

/* The partition is no longer leader: closes its director. */
void broker_export_follow(struct broker_export_partition *xp);

/* Entries were applied: offers their records to the director. */
void broker_export_committed(struct broker_export_partition *xp,
                             const struct raft_entry *entries, size_t count);

/* Leader: queues the EXPORTER UPDATE commands of positions acknowledged
 * since the last call (call every flush interval). Returns true when a
 * command was queued (the caller marks the partition dirty). */
bool broker_export_flush(struct broker_export_partition *xp);

/* The lowest position any configured exporter has acknowledged according
 * to the partition state: INT64_MAX without exporters, -1 when one has
 * acknowledged nothing yet. Log entries after it must be kept. */
int64_t broker_export_bound(struct broker_export_partition *xp);

/* What one exporter of a partition replica should be (index i of the
 * broker configuration's exporters). */
struct broker_export_want {
    bool enabled;              /* false: out of the director, no row */
    uint32_t metadata_version; /* enabled: the row must carry at least this
                                  version, else it is (re)initialised */
    int32_t initialize_from;   /* enabled: the exporter (index) whose row
                                  a (re)initialisation copies; -1: none
                                  (position -1, no metadata) */
};

/* The index of exporter id in the broker configuration, or -1. */
int broker_export_find(const struct broker_export *x, const char *id);

/* Whether exporters a and b (indexes) have the same type (an exporter may
 * only be initialised from one of its own type). */
bool broker_export_same_type(const struct broker_export *x, uint32_t a,
                             uint32_t b);

/* Sets what the partition's exporters should be: want[0..count), count ==
 * broker_export_count(). A follower remembers it and returns 1. The
 * leader brings its director and the partition state toward it (see
 * above), queueing at most one state command per exporter and raft term
 * (*queued then true: the caller marks the partition dirty), and returns
 * 1 once the committed state and the director match, 0 while they do not
 * yet. Returns -EINVAL for a bad count or initialize_from. */
int broker_export_want_set(struct broker_export_partition *xp,
                           const struct broker_export_want *want,
                           uint32_t count, bool *queued);

/* Pauses (hard or soft) or resumes every director of this broker. */
void broker_export_set_phase(struct broker_export *x,
                             enum broker_export_phase phase);
enum broker_export_phase broker_export_phase(const struct broker_export *x);
const char *broker_export_phase_name(enum broker_export_phase phase);

/* For /actuator/partitions: the lowest acknowledged position of the
 * partition's exporters (the state's), and the phase. */
int64_t broker_export_position(struct broker_export_partition *xp);

#endif /* TANDEM_BROKER_EXPORT_H */
