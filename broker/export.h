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

/* Pauses (hard or soft) or resumes every director of this broker. */
void broker_export_set_phase(struct broker_export *x,
                             enum broker_export_phase phase);
enum broker_export_phase broker_export_phase(const struct broker_export *x);
const char *broker_export_phase_name(enum broker_export_phase phase);

/* For /actuator/partitions: the lowest acknowledged position of the
 * partition's exporters (the state's), and the phase. */
int64_t broker_export_position(struct broker_export_partition *xp);

#endif /* TANDEM_BROKER_EXPORT_H */
