/* errors.c: the strings behind raft's negative error codes.
 *
 * The codes and their texts come from one X-macro list, RAFT_ERRNO_MAP in
 * raft.h, so the enum and this table cannot drift apart. */
#include "raft/raft.h"

const char *raft_strerror(int rv)
{
    switch (rv) {
    case 0:
        return "success";
#define RAFT__ERRNO_CASE(name, value, text) \
    case (value):                           \
        return (text);
        RAFT_ERRNO_MAP(RAFT__ERRNO_CASE)
#undef RAFT__ERRNO_CASE
    default:
        return "unknown raft error";
    }
}
