/* sim_main.c: command line of raft-sim, the deterministic Raft simulator.
 *
 *   raft-sim [--seed S | --seeds A..B] [--nodes N] [--steps K]
 *            [--quiet] [--verbose]
 *
 * Runs one simulation per seed (sim_run() in sim_cluster.c), each from a
 * fresh struct sim. A run prints its randomized parameters on one line
 * (unless --quiet); a failing run prints the seed, the violated invariant
 * with details and the command that replays it. The last line is always
 * "N passed, N failed"; the exit status is non-zero if any run failed.
 * --expect-violation A,B,... (with --inject-bug) turns the run into a check
 * that the checkers can fail: it passes only if a run failed and the first
 * failure names one of the listed invariants.
 * --inject-bug NAME (lose-commit, forget-vote, corrupt-apply) breaks the
 * simulated storage or state machine on purpose, to show that the checkers
 * catch it; the run then stops at the first failing seed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define SIM_DEFAULT_STEPS 8000
#define SIM_DEFAULT_FIRST 1
#define SIM_DEFAULT_LAST 1000

static void usage(FILE *out)
{
    fprintf(out,
            "usage: raft-sim [--seed S | --seeds A..B] [--nodes N]"
            " [--steps K] [--quiet] [--verbose]\n"
            "  --seed S       run one seed\n"
            "  --seeds A..B   run seeds A through B (default %d..%d)\n"
            "  --nodes N      initial group size 1..%d (default: drawn"
            " from the seed)\n"
            "  --steps K      events in the safety phase (default %d)\n"
            "  --quiet        print only failures and the summary\n"
            "  --verbose      trace every event of every run\n",
            SIM_DEFAULT_FIRST, SIM_DEFAULT_LAST, SIM_VOTERS_MAX,
            SIM_DEFAULT_STEPS);
}

static bool parse_u64(const char *s, uint64_t *out)
{
    if (s == NULL || *s == '\0' || *s == '-') {
        return false;
    }
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') {
        return false;
    }
    *out = (uint64_t)v;
    return true;
}

static bool parse_range(const char *s, uint64_t *a, uint64_t *b)
{
    const char *dots = s ? strstr(s, "..") : NULL;
    if (dots == NULL || dots - s >= 32) {
        return false;
    }
    char left[32];
    memcpy(left, s, (size_t)(dots - s));
    left[dots - s] = '\0';
    return parse_u64(left, a) && parse_u64(dots + 2, b) && *a <= *b;
}

/* Whether name is one of the comma-separated names in list. */
static bool sim_name_listed(const char *list, const char *name)
{
    size_t n = strlen(name);
    const char *p = list;
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0) {
            return true;
        }
        if (comma == NULL) {
            break;
        }
        p = comma + 1;
    }
    return false;
}

static const char *bug_name(enum sim_bug bug)
{
    switch (bug) {
    case SIM_BUG_LOSE_COMMIT:
        return "lose-commit";
    case SIM_BUG_FORGET_VOTE:
        return "forget-vote";
    case SIM_BUG_CORRUPT_APPLY:
        return "corrupt-apply";
    default:
        return "none";
    }
}

int main(int argc, char **argv)
{
    struct sim_cli cli = {.steps = SIM_DEFAULT_STEPS};
    const char *expect = NULL; /* comma-separated invariant names */
    const char *first_violation = NULL;
    uint64_t first = SIM_DEFAULT_FIRST;
    uint64_t last = SIM_DEFAULT_LAST;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t x;
        if (strcmp(a, "--seed") == 0 && parse_u64(v, &x)) {
            first = last = x;
            i++;
        } else if (strcmp(a, "--seeds") == 0 && parse_range(v, &first, &last)) {
            i++;
        } else if (strcmp(a, "--nodes") == 0 && parse_u64(v, &x) && x >= 1 &&
                   x <= SIM_VOTERS_MAX) {
            cli.nodes = (uint32_t)x;
            i++;
        } else if (strcmp(a, "--steps") == 0 && parse_u64(v, &x) && x >= 1) {
            cli.steps = x;
            i++;
        } else if (strcmp(a, "--quiet") == 0) {
            cli.quiet = true;
        } else if (strcmp(a, "--verbose") == 0) {
            cli.verbose = true;
        } else if (strcmp(a, "--inject-bug") == 0 && v != NULL) {
            if (strcmp(v, "lose-commit") == 0) {
                cli.bug = SIM_BUG_LOSE_COMMIT;
            } else if (strcmp(v, "forget-vote") == 0) {
                cli.bug = SIM_BUG_FORGET_VOTE;
            } else if (strcmp(v, "corrupt-apply") == 0) {
                cli.bug = SIM_BUG_CORRUPT_APPLY;
            } else {
                fprintf(stderr, "raft-sim: unknown bug '%s'\n", v);
                return 2;
            }
            i++;
        } else if (strcmp(a, "--expect-violation") == 0 && v != NULL) {
            expect = v;
            i++;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "raft-sim: bad argument '%s'%s%s\n", a,
                    v ? " " : "", v ? v : "");
            usage(stderr);
            return 2;
        }
    }
    if (cli.verbose) {
        cli.quiet = false;
    }
    uint64_t passed = 0;
    uint64_t failed = 0;
    for (uint64_t seed = first;; seed++) {
        struct sim *sim = calloc(1, sizeof(*sim));
        if (sim == NULL) {
            fprintf(stderr, "raft-sim: out of memory\n");
            return 2;
        }
        sim->seed = seed;
        sim->cli = cli;
        if (sim_run(sim)) {
            passed++;
        } else {
            failed++;
            if (first_violation == NULL) {
                first_violation = sim->fail_invariant;
            }
            printf("FAIL seed=%" PRIu64 " invariant=%s at t=%" PRIu64
                   " step %" PRIu64 ": %s\n",
                   seed, sim->fail_invariant, sim->now, sim->steps,
                   sim->fail_detail);
            printf("  replay: build/tests/raft/raft-sim --seed %" PRIu64
                   " --nodes %u --steps %" PRIu64 "%s%s --verbose\n",
                   seed, sim->p.nodes, cli.steps,
                   cli.bug != SIM_BUG_NONE ? " --inject-bug " : "",
                   cli.bug != SIM_BUG_NONE ? bug_name(cli.bug) : "");
        }
        fflush(stdout);
        free(sim);
        /* With an injected bug one caught violation is the point. */
        if (seed == last || (failed > 0 && cli.bug != SIM_BUG_NONE)) {
            break;
        }
    }
    if (expect != NULL) {
        /* The checkers must be able to fail: pass only if a run failed,
         * and for one of the expected reasons (not a crash, not the sim). */
        bool ok = first_violation != NULL &&
                  sim_name_listed(expect, first_violation);
        printf("expected violation (%s): %s%s\n", expect,
               ok ? "caught as " : "NOT caught",
               first_violation != NULL ? first_violation : "");
        printf("%d passed, %d failed\n", ok ? 1 : 0, ok ? 0 : 1);
        return ok ? 0 : 1;
    }
    printf("%" PRIu64 " passed, %" PRIu64 " failed\n", passed, failed);
    return failed > 0 ? 1 : 0;
}
