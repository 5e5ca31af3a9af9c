/* exporter_assert.h: the exporter module's assertion macro.
 *
 * EXPORTER_ASSERT checks programmer errors (broken invariants, misuse of
 * the API); operating errors (a store that is down, a malformed record)
 * are return codes, never assertions. It stays on in every build type
 * the project uses (b_ndebug=false).
 */
#ifndef TANDEM_EXPORTER_ASSERT_H
#define TANDEM_EXPORTER_ASSERT_H

#include <assert.h>

#define EXPORTER_ASSERT(cond) assert(cond)

#endif /* TANDEM_EXPORTER_ASSERT_H */
