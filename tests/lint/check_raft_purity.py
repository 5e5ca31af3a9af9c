#!/usr/bin/env python3
"""check_raft_purity.py: keeps raft/ a pure, I/O-free state machine.

Usage: check_raft_purity.py DIR

Data flow: every *.c and *.h file directly in DIR is read -> comments are
blanked (line numbers kept) -> each #include is checked against the
allow-list below or against the headers that exist in DIR -> string and
character literals are blanked too -> the remaining code is searched for
calls that read clocks or randomness, print, touch files, sockets or
threads, or allocate outside heap.c. Each offending line is printed as
"path:line: reason: source". Exit status: 0 clean, 1 violations found,
2 usage error (DIR missing or holding no C files).

The rules follow the project's C style guide (Part 2, section 1: raft/ may
include only libc headers without side effects and its own headers; no
libuv, LMDB, clocks, rand(), sockets, files, printf or threads).
"""

import os
import re
import sys

# Headers without side effects that raft/ may include with <...>.
ALLOWED_SYSTEM_HEADERS = {
    "stdbool.h",
    "stddef.h",
    "stdint.h",
    "string.h",
    "stdlib.h",
    "limits.h",
    "assert.h",
}

# The only file that may call the libc allocator directly: it implements
# the injectable struct raft_heap on top of malloc/realloc/free.
HEAP_FILE = "heap.c"

# Calls that bring time, randomness, output, files, sockets, threads or the
# environment into the state machine, grouped by the reason printed.
FORBIDDEN_CALLS = {
    "randomness": ["rand", "srand", "rand_r", "random", "srandom",
                   "drand48", "lrand48", "arc4random", "getrandom"],
    "clock": ["time", "clock", "clock_gettime", "gettimeofday", "timespec_get",
              "sleep", "usleep", "nanosleep"],
    "output": ["printf", "fprintf", "vprintf", "vfprintf", "dprintf", "puts",
               "fputs", "putchar", "perror", "syslog", "fwrite"],
    "file": ["fopen", "fdopen", "freopen", "open", "openat", "creat", "fsync",
             "fread"],
    "socket": ["socket", "connect", "accept", "getaddrinfo"],
    "environment": ["getenv", "secure_getenv", "system", "fork", "execve"],
}
ALLOCATOR_CALLS = ["malloc", "realloc", "calloc", "free", "aligned_alloc",
                   "posix_memalign", "strdup", "strndup"]

INCLUDE_RE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*(.*)$', re.MULTILINE)


def call_pattern(names):
    """A regex matching a call of any of names that is not a member call
    (x.free(...), x->malloc(...)) and not part of a longer identifier."""
    alternatives = "|".join(sorted(names, key=len, reverse=True))
    return re.compile(r'(?<![\w.>])(?:' + alternatives + r')\s*\(')


FORBIDDEN_PATTERNS = [(reason, call_pattern(names))
                      for reason, names in FORBIDDEN_CALLS.items()]
THREAD_PATTERN = re.compile(r'(?<![\w.>])(pthread_\w+|thrd_\w+|mtx_\w+)\s*\(')
ALLOCATOR_PATTERN = call_pattern(ALLOCATOR_CALLS)


def blank(text, keep_strings):
    """Returns text with comments (and, unless keep_strings, the insides of
    string and character literals) replaced by spaces. Newlines survive so
    that offsets still map to the same line numbers."""
    out = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if c == "/" and nxt == "*":
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(re.sub(r"[^\n]", " ", text[i:end]))
            i = end
        elif c == "/" and nxt == "/":
            end = text.find("\n", i)
            end = n if end < 0 else end
            out.append(" " * (end - i))
            i = end
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            if keep_strings:
                out.append(text[i:j])
            else:
                out.append(c + " " * max(0, j - i - 2) + c)
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def line_of(text, offset):
    return text.count("\n", 0, offset) + 1


def check_include(target, directory):
    """Returns None if the #include target is allowed, else the reason."""
    target = target.strip()
    m = re.match(r'^<([^>]+)>', target)
    if m:
        if m.group(1) in ALLOWED_SYSTEM_HEADERS:
            return None
        return "system header <%s> is not on the allow-list" % m.group(1)
    m = re.match(r'^"([^"]+)"', target)
    if m:
        name = m.group(1)
        own_prefix = os.path.basename(os.path.normpath(directory)) + "/"
        candidates = [name]
        if name.startswith(own_prefix):
            candidates.append(name[len(own_prefix):])
        for candidate in candidates:
            if "/" in candidate or ".." in candidate:
                continue
            if os.path.isfile(os.path.join(directory, candidate)):
                return None
        return 'quoted header "%s" is not one of this directory\'s own' % name
    return "computed #include is not allowed"


def check_file(path, directory):
    """Returns a list of (line, reason) violations of one file."""
    with open(path, encoding="utf-8", errors="replace") as f:
        raw = f.read()
    violations = []

    no_comments = blank(raw, keep_strings=True)
    for m in INCLUDE_RE.finditer(no_comments):
        reason = check_include(m.group(1), directory)
        if reason:
            violations.append((line_of(no_comments, m.start()), reason))

    # Macro bodies are checked like code: a macro that prints is a
    # violation even if nothing uses it yet.
    code = blank(raw, keep_strings=False)
    for reason, pattern in FORBIDDEN_PATTERNS:
        for m in pattern.finditer(code):
            violations.append((line_of(code, m.start()),
                               "%s call %s" % (reason, m.group(0).strip())))
    for m in THREAD_PATTERN.finditer(code):
        violations.append((line_of(code, m.start()),
                           "thread call %s" % m.group(0).strip()))
    if os.path.basename(path) != HEAP_FILE:
        for m in ALLOCATOR_PATTERN.finditer(code):
            violations.append(
                (line_of(code, m.start()),
                 "allocator call %s outside %s (use the injected heap)"
                 % (m.group(0).strip(), HEAP_FILE)))
    return sorted(violations)


def main(argv):
    if len(argv) != 2 or not os.path.isdir(argv[1]):
        print("usage: check_raft_purity.py DIR", file=sys.stderr)
        return 2
    directory = argv[1]
    names = sorted(name for name in os.listdir(directory)
                   if name.endswith((".c", ".h")))
    if not names:
        print("check_raft_purity: no .c or .h files in %s" % directory,
              file=sys.stderr)
        return 2

    count = 0
    for name in names:
        path = os.path.join(directory, name)
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().split("\n")
        for line, reason in check_file(path, directory):
            source = lines[line - 1].strip() if line <= len(lines) else ""
            print("%s:%d: %s: %s" % (path, line, reason, source))
            count += 1

    if count:
        print("check_raft_purity: %d violation(s) in %d file(s) of %s"
              % (count, len(names), directory))
        return 1
    print("check_raft_purity: %d file(s) of %s are clean"
          % (len(names), directory))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
