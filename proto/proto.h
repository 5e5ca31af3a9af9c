/* proto.h: the public header of the proto module, the wire schemas.
 *
 * The module is two .proto files and the protobuf-c code generated from
 * them at build time (proto/meson.build):
 *
 *   proto/gateway.proto -> proto/gateway.pb-c.h  GatewayProtocol__*
 *       the client-facing gRPC API, identical to Zeebe 8.4's gateway
 *       protocol; used by gateway/.
 *   proto/raft.proto    -> proto/raft.pb-c.h     Tandem__Raft__*
 *       the broker-to-broker frames (Hello, RaftMessage); converted to and
 *       from raft/raft.h structs by broker/codec.c.
 *   proto/record.proto  -> proto/record.pb-c.h   Tandem__Record__*
 *       the records in a partition's log (RecordBatch per Raft entry).
 *   proto/command.proto -> proto/command.pb-c.h  Tandem__Command__*
 *       the brokers' command API (gateway -> partition leaders).
 *
 * proto/frame.h (included here) frames packed messages on a stream: a
 * 4-byte big-endian length prefix, a splitter, and pack/unpack helpers
 * for command Requests and Responses.
 *
 * Data flow: a producer fills generated structs and packs them with
 * <type>__pack(); a consumer unpacks bytes with <type>__unpack(allocator,
 * ...) and frees the result with <type>__free_unpacked(), or passes an
 * arena allocator and drops the arena. protobuf-c does not validate enum
 * values or cross-field rules: every consumer must check what it unpacked.
 *
 * This module depends on protobuf-c only.
 */
#ifndef TANDEM_PROTO_H
#define TANDEM_PROTO_H

#include <protobuf-c/protobuf-c.h>

#include "proto/gateway.pb-c.h"
#include "proto/raft.pb-c.h"
#include "proto/record.pb-c.h"
#include "proto/command.pb-c.h"
#include "proto/frame.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The broker-to-broker protocol version sent in Hello.protocol_version.
 * Bump it for any change an older peer cannot safely ignore. */
#define PROTO_RAFT_VERSION 1u

/* The package of gateway.proto; gRPC paths are
 * "/" PROTO_GATEWAY_SERVICE "/<Rpc>". */
#define PROTO_GATEWAY_SERVICE "gateway_protocol.Gateway"

/* The number of RPCs of the Gateway service (Zeebe 8.4). */
#define PROTO_GATEWAY_RPC_COUNT 21u

#ifdef __cplusplus
}
#endif

#endif /* TANDEM_PROTO_H */
