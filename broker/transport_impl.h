/* transport_impl.h: private view of broker/transport_tcp.c for tests.
 *
 * Counters and connection facts that the public API does not expose but
 * that tests assert on (one uv_write per peer per flush, duplicate
 * connection resolution, hostile peers being hung up on). Not for use
 * outside broker/transport_*.c and tests/broker/. */
#ifndef TANDEM_BROKER_TRANSPORT_IMPL_H
#define TANDEM_BROKER_TRANSPORT_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "broker/transport.h"

/* Monotonic counters since transport_init(). */
struct transport_stats {
    uint64_t flush_count;         /* transport_flush() runs (incl. auto) */
    uint64_t batch_write_count;   /* uv_write calls for peer queues */
    uint64_t frame_sent_count;    /* frames handed to those writes */
    uint64_t raft_received_count; /* frames delivered through on_raft */
    uint64_t gossip_sent_count;   /* gossip frames queued */
    uint64_t gossip_received_count;
    uint64_t conn_accepted_count;
    uint64_t conn_dialled_count;
    uint64_t conn_closed_count;
    uint64_t duplicate_closed_count; /* closed by duplicate resolution */
    uint64_t protocol_error_count;   /* closed for undecodable input */
    uint64_t hello_rejected_count;   /* wrong version or cluster name */
    uint64_t config_sent_count;      /* gossip frames carrying the config */
    uint64_t config_offered_count;   /* on_cluster_config calls */
    uint64_t config_adopted_count;   /* offers the callback accepted */
    uint64_t config_refused_count;   /* offers the callback refused */
};

/* The counters of t; valid while t is. */
const struct transport_stats *transport__stats_get(const struct transport *t);

/* Established connections to node_id (1 once duplicates are resolved). */
size_t transport__conns_count(const struct transport *t, uint32_t node_id);

/* 1 if the connection used to send to node_id was dialled by t, 0 if it
 * was accepted, -1 if there is none. */
int transport__conn_outbound(const struct transport *t, uint32_t node_id);

/* Peer writes currently in flight. */
size_t transport__writes_inflight(const struct transport *t);

/* Bytes queued for node_id (waiting and in flight), 0 if unknown. */
size_t transport__queue_bytes(const struct transport *t, uint32_t node_id);

#endif /* TANDEM_BROKER_TRANSPORT_IMPL_H */
