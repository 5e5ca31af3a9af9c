/* director.h: runs the exporters of one partition without blocking the
 * broker loop: one worker thread and one bounded queue per exporter.
 *
 * Contract with the host (the partition leader, on its libuv loop):
 *
 *   exporter_director_init(loop, d, options, host)
 *   exporter_director_add(d, exporter) * N   (configured instances, each
 *        with the position + metadata the partition state holds for it,
 *        -1/none for a new exporter)
 *   exporter_director_start(d)               spawns the workers
 *   ... every committed record, in position order:
 *   exporter_director_offer(d, position, record bytes)   (never blocks)
 *   ... host->read(d, after, max) called by the director on the loop:
 *        the host calls exporter_director_feed(d, position, bytes) for
 *        the committed records with position > after, in order, until it
 *        has fed max records, feed returns EXPORTER_E_BUSY, or it runs out
 *        of committed records; it returns EXPORTER_DIRECTOR_READ_END when
 *        it fed (or there was) nothing beyond its last committed record,
 *        EXPORTER_DIRECTOR_READ_MORE when it stopped early, or a negative
 *        code (retried after backoff_ms_min).
 *   ... host->acknowledged(id, position, metadata) on the loop: persist it
 *        in the partition state (it is what the exporter resumes from).
 *   exporter_director_close(d, close_cb)     stops workers (each closes
 *        its exporter on its own thread), then calls close_cb on the loop.
 *
 * Flow of records:
 *
 *   offer --(exporter in sync, queue has room)--> queue --> worker -->
 *     filter --> export_record() --(ok)--> next record
 *                               --(error)--> backoff 100 ms .. 10 s, retry
 *   offer --(queue full)--> that exporter is "lagging" from its last
 *     queued position; live offers skip it. When its queue drains to half
 *     (or on start, resume, enable) the director asks the host to re-read
 *     from there (host->read) and feeds it until it reaches the end of the
 *     committed log, then it is in sync again. A slow or failing exporter
 *     thus holds back only itself, with at most queue_records_max records
 *     and queue_bytes_max bytes in memory.
 *
 * Acknowledgements travel from the worker (controller->acknowledge) to the
 * loop through a uv_async handle; host->acknowledged runs on the loop.
 *
 * Pause (Zeebe semantics, /actuator/exporting):
 *   - hard pause: nothing is exported (workers hold their queues, offers
 *     are not queued); acknowledgements of work done before still arrive;
 *     positions stay where they are, so they hold back compaction.
 *   - soft pause: exporting continues, but acknowledgements are only kept
 *     in memory and not passed to host->acknowledged, so the persisted
 *     positions (and compaction) do not advance; resume passes the latest
 *     acknowledgement of each exporter to the host.
 *   - resume clears either; soft <-> hard switch directly.
 * The director does not persist the pause; the host does (Zeebe's
 * .exporterPaused file) and calls pause again after a restart.
 *
 * Compaction: exporter_director_position() is the lowest position the
 * host has been told (acknowledged and persisted) over enabled exporters
 * (-1 when one has none, INT64_MAX with no enabled exporter). The host
 * must keep every record above it.
 *
 * Threading: every function here is called on the loop thread, except
 * that exporters' own calls reach the controller on their worker thread.
 * The host's callbacks run on the loop thread, except host->log, which
 * may run on any thread.
 */
#ifndef TANDEM_EXPORTER_DIRECTOR_H
#define TANDEM_EXPORTER_DIRECTOR_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "exporter/exporter.h"

/* Exporters per director (per partition). */
#define EXPORTER_DIRECTOR_EXPORTERS_MAX 16
/* Length of an exporter id, NUL included. */
#define EXPORTER_DIRECTOR_ID_MAX 64

/* Return values of host->read. */
#define EXPORTER_DIRECTOR_READ_END 0
#define EXPORTER_DIRECTOR_READ_MORE 1

struct exporter_director;

struct exporter_director_host {
    void *data;
    /* See the contract above. Must not call director functions other
     * than exporter_director_feed(). */
    int (*read)(void *data, struct exporter_director *d, int64_t after_position,
                size_t records_max);
    /* An exporter's acknowledged position and metadata, to persist; the
     * metadata is borrowed during the call. */
    void (*acknowledged)(void *data, const char *exporter_id, int64_t position,
                         const void *metadata, size_t metadata_len);
    /* One log line (any thread); NULL: stderr. */
    void (*log)(void *data, int level, const char *exporter_id,
                const char *message);
};

struct exporter_director_options {
    uint32_t partition_id;
    size_t queue_records_max; /* per exporter; 0: 4096 */
    size_t queue_bytes_max;   /* per exporter; 0: 16 MiB */
    size_t read_records_max;  /* per host->read; 0: 1024 */
    uint64_t backoff_ms_min;  /* 0: 100 */
    uint64_t backoff_ms_max;  /* 0: 10000 */
};

/* One exporter to run. */
struct exporter_director_exporter {
    const char *id;                 /* copied */
    const struct exporter_def *def; /* must outlive the director */
    void *instance;                 /* configured; ownership passes to
                                       the director on success */
    struct exporter_filter filter;  /* from configure */
    int64_t position;               /* last acknowledged, -1 if none */
    const void *metadata;           /* copied; NULL if none */
    size_t metadata_len;
};

enum exporter_director_phase {
    EXPORTER_DIRECTOR_EXPORTING,
    EXPORTER_DIRECTOR_PAUSED,
    EXPORTER_DIRECTOR_SOFT_PAUSED,
    EXPORTER_DIRECTOR_CLOSED,
};

/* Introspection of one exporter (for /actuator/partitions and tests). */
struct exporter_director_info {
    char id[EXPORTER_DIRECTOR_ID_MAX];
    bool enabled;
    bool lagging;            /* waiting for re-reads */
    bool failing;            /* in backoff after an error */
    int64_t position;        /* last passed to host->acknowledged */
    int64_t position_memory; /* last acknowledged (soft pause: ahead) */
    int64_t position_queued; /* last handed to its queue */
    size_t queued_records;
    size_t queued_bytes;
    uint64_t failures;   /* failed export/open calls so far */
    uint64_t exported;   /* records done with (exported/filtered) */
    uint64_t backoff_ms; /* current backoff (0 when healthy) */
};

typedef void (*exporter_director_close_cb)(struct exporter_director *d);

struct director_item;
struct director_slot;

/* Opaque to the host apart from data; allocated by the host. */
struct exporter_director {
    void *data; /* free for the host */
    /* private */
    uv_loop_t *loop;
    uv_async_t async;
    uv_timer_t read_timer;
    struct exporter_director_options options;
    struct exporter_director_host host;
    pthread_mutex_t build_lock; /* serialises building an item's view */
    struct director_slot *slots[EXPORTER_DIRECTOR_EXPORTERS_MAX];
    enum exporter_director_phase phase;
    bool started;
    bool closing;
    bool in_read;      /* inside host->read */
    bool read_pending; /* a read should run at the next chance */
    int handles_open;
    int64_t last_offered; /* last position offered live, -1 if none */
    exporter_director_close_cb close_cb;
};

/* Initialises d on loop. Copies options and host (host.read and
 * host.acknowledged are required). Returns 0, EXPORTER_E_INVALID or
 * EXPORTER_E_NOMEM; on error nothing needs closing. */
int exporter_director_init(uv_loop_t *loop, struct exporter_director *d,
                           const struct exporter_director_options *options,
                           const struct exporter_director_host *host);

/* Adds (enables) an exporter, before or after start; after start its
 * worker starts at once. Returns 0, EXPORTER_E_LIMIT (too many),
 * EXPORTER_E_INVALID (bad id or metadata too large), EXPORTER_E_BUSY (an
 * exporter with that id is enabled or still being disabled),
 * EXPORTER_E_STATE (closing), EXPORTER_E_NOMEM or EXPORTER_E_THREAD. On
 * error the instance stays the caller's. */
int exporter_director_add(struct exporter_director *d,
                          const struct exporter_director_exporter *e);

/* Disables an exporter: its worker closes it and exits, its queue is
 * dropped, and it no longer holds back exporter_director_position().
 * Returns 0 or EXPORTER_E_NOTFOUND. */
int exporter_director_disable(struct exporter_director *d, const char *id);

/* Spawns the workers and asks the host to read for every exporter behind.
 * Returns 0, EXPORTER_E_STATE (already started) or EXPORTER_E_THREAD. */
int exporter_director_start(struct exporter_director *d);

/* Offers the next committed record (bytes of one packed
 * tandem.record.Record, copied when queued). position must increase.
 * Never blocks. Returns 0 or EXPORTER_E_NOMEM (then every exporter that
 * did not get it is lagging and will re-read it). */
int exporter_director_offer(struct exporter_director *d, int64_t position,
                            const uint8_t *bytes, size_t len);

/* Inside host->read only: the next record after the read's position.
 * Returns 0, or EXPORTER_E_BUSY when no exporter of this read can take
 * more (the host should stop and return READ_MORE). */
int exporter_director_feed(struct exporter_director *d, int64_t position,
                           const uint8_t *bytes, size_t len);

/* Pause (soft or hard) and resume, see above. */
void exporter_director_pause(struct exporter_director *d, bool soft);
void exporter_director_resume(struct exporter_director *d);

enum exporter_director_phase
exporter_director_phase(const struct exporter_director *d);
/* "EXPORTING", "PAUSED", "SOFT_PAUSED", "CLOSED" (Zeebe's names). */
const char *exporter_director_phase_name(enum exporter_director_phase p);

/* The compaction bound, see above. */
int64_t exporter_director_position(const struct exporter_director *d);

/* Fills info for the exporter in slot i (0 <= i <
 * EXPORTER_DIRECTOR_EXPORTERS_MAX); returns false for an empty slot. */
bool exporter_director_info(struct exporter_director *d, size_t i,
                            struct exporter_director_info *info);

/* Stops everything: workers finish the call they are in, close their
 * exporters and exit; queued records are dropped (they are re-read after
 * a restart, from the acknowledged positions). close_cb runs on the loop
 * once every worker has exited and the handles are closed; then d may be
 * freed. */
void exporter_director_close(struct exporter_director *d,
                             exporter_director_close_cb close_cb);

#endif /* TANDEM_EXPORTER_DIRECTOR_H */
