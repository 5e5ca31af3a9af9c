/* broker.h: the broker, the public header of the broker module.
 *
 * A broker hosts the partitions placement assigns to its node id, each a
 * Raft group (raft/) whose log and state live in one LMDB environment
 * (broker/storage). It talks to the other brokers over the cluster
 * transport (port 26502), serves gateways on the command API (26501) and
 * operators on the management port (9600), and may embed a gateway (gRPC
 * 26500, REST 8080).
 *
 * Threads: everything runs on the caller's libuv loop except the storage
 * commit, which runs on libuv's thread pool, one at a time. See
 * docs/architecture.md for the data flow of a write.
 *
 * Lifecycle (libuv style): broker_init(), broker_start(), broker_close()
 * with a callback after which the broker's memory is released.
 */
#ifndef TANDEM_BROKER_BROKER_H
#define TANDEM_BROKER_BROKER_H

#include <stddef.h>

#include <uv.h>

#include "broker/config.h"

#define TANDEM_VERSION "8.4.0"

struct broker;

/* Creates a broker for cfg (copied) on loop: opens the storage, loads or
 * bootstraps every hosted partition. Returns 0, or a negative value with a
 * message in errmsg (errmsg_len bytes). */
int broker_init(uv_loop_t *loop, const struct broker_config *cfg,
                struct broker **out, char *errmsg, size_t errmsg_len);

/* Starts listening and talking to the cluster. Returns 0 or a negative
 * value with a message. */
int broker_start(struct broker *b, char *errmsg, size_t errmsg_len);

/* Stops everything; cb runs once every handle is closed and the broker's
 * memory is released. */
void broker_close(struct broker *b, void (*cb)(void *data), void *data);

#endif /* TANDEM_BROKER_BROKER_H */
