/* pure.c: lint fixture full of near misses that must NOT be reported.
 *
 * A comment may mention time(NULL), rand(), printf("x") or malloc(8);
 * a string may contain "fopen(" and member calls such as heap->free(p)
 * go through the injected allocator.
 */
#include <assert.h>
#include <limits.h>
#include <string.h>

#include "pure.h"
#include "good/pure.h" /* own header through the directory prefix */

// A line comment with socket(AF_INET) and pthread_create().

static const char *pure_text = "printf(\"time(NULL)\") open(";
static const char pure_quote = '\'';

static uint64_t raft_time(uint64_t now_time)
{
    return now_time + 1;
}

static void *pure_alloc(struct pure_heap *heap, size_t size)
{
    uint64_t time = raft_time(size);
    void *p = heap->malloc(heap->data, (size_t)time);
    heap->free(heap->data, p);
    return pure_heap_malloc(size);
}

static size_t pure_random_between(size_t lo, size_t hi)
{
    return lo + (hi - lo) / 2 + (size_t)pure_quote + strlen(pure_text);
}
