/* fuzz_management.c: fuzz target of the management HTTP server
 * (broker/management.c): h2o's request parsing under our routing, path
 * segments, query flags and JSON bodies, end to end over a real loopback
 * socket.
 *
 * Data flow: the first input starts the server (127.0.0.1, ephemeral port)
 * with a fake provider on a libuv loop run by a background thread for the
 * rest of the process. Each input becomes one request on a new blocking
 * client socket:
 *   byte 0, high bit clear: a structured request. Bits 0..2 pick the method
 *     (GET, POST, DELETE, PUT, PATCH, HEAD, OPTIONS, POST); the bytes up to
 *     the first NUL are appended to "/actuator/" (or, with bit 3 set, to
 *     "/") as the path and query; the rest is the body (sent with
 *     Content-Type: application/json and Connection: close). Bytes that
 *     cannot appear in a request line are replaced by '_'.
 *   byte 0, high bit set: the rest is sent as raw bytes, then the write
 *     side is shut down.
 * The response is read until the server closes (bounded by a 5 s receive
 * timeout: a hang fails).
 *
 * Checked on every input: the server never crashes (ASan in the test
 * command) and always answers or closes; a structured request always gets
 * a status line "HTTP/1.x NNN" with NNN in 100..599; a JSON body parses;
 * every request the fake provider sees has a known kind and in-bounds,
 * NUL-terminated fields.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "broker/management.h"
#include "fuzz.h"

#define FUZZ_IO_TIMEOUT_S 5
#define FUZZ_PATH_MAX 2048
#define FUZZ_REQUEST_MAX (64 * 1024)
#define FUZZ_RESPONSE_MAX (256 * 1024)

static struct {
    uv_loop_t loop;
    struct management m;
    uint16_t port;
    pthread_t thread;
    bool started;
} server;

static int fake_status(void *data, struct management_status *out)
{
    (void)data;
    out->node_id = 1;
    out->started = true;
    out->ready = true;
    snprintf(out->version, sizeof(out->version), "0.1.0");
    out->partition_count = 2;
    for (uint32_t i = 0; i < 2; i++) {
        out->partitions[i].partition_id = i + 1;
        out->partitions[i].role = MANAGEMENT_ROLE_LEADER;
        out->partitions[i].health = MANAGEMENT_HEALTH_HEALTHY;
        out->partitions[i].term = 2;
        out->partitions[i].exported_position = -1;
    }
    return 0;
}

static int fake_cluster(void *data, void **out)
{
    (void)data;
    *out = json_pack("{s:i, s:[]}", "version", 1, "brokers");
    return *out != NULL ? 0 : -1;
}

static int fake_change(void *data, const struct management_change_request *req,
                       struct management_reply *out)
{
    (void)data;
    assert(req->kind >= MANAGEMENT_REQUEST_SCALE &&
           req->kind <= MANAGEMENT_REQUEST_EXPORTERS_GET);
    assert(req->broker_count <= MANAGEMENT_BROKERS_MAX);
    assert(memchr(req->exporter, '\0', sizeof(req->exporter)) != NULL);
    assert(memchr(req->initialize_from, '\0',
                  sizeof(req->initialize_from)) != NULL);
    /* An empty SCALE list reaches the provider (its planner answers 400
     * "Expected a non-empty list of broker ids"). */
    switch (req->kind % 3) {
    case 0:
        out->status = 202;
        out->body = json_pack("{s:i, s:[], s:[], s:[]}", "changeId", 2,
                              "currentTopology", "plannedChanges",
                              "expectedTopology");
        break;
    case 1:
        out->status = 400;
        snprintf(out->message, sizeof(out->message), "refused by the fake");
        break;
    default:
        out->status = req->kind >= MANAGEMENT_REQUEST_EXPORTING_PAUSE ? 204
                                                                       : 409;
        break;
    }
    return 0;
}

static void *server_thread(void *arg)
{
    (void)arg;
    uv_run(&server.loop, UV_RUN_DEFAULT);
    return NULL;
}

static void server_start(void)
{
    struct management_options opts = {.host = "127.0.0.1", .port = 0};
    struct management_provider p = {.status = fake_status,
                                    .cluster = fake_cluster,
                                    .change = fake_change};
    int rv;

    rv = uv_loop_init(&server.loop);
    assert(rv == 0);
    rv = management_init(&server.loop, &server.m, &opts, &p);
    assert(rv == 0);
    rv = management_start(&server.m);
    assert(rv == 0);
    server.port = management_bound_port(&server.m);
    assert(server.port > 0);
    rv = pthread_create(&server.thread, NULL, server_thread, NULL);
    assert(rv == 0);
    server.started = true;
    (void)rv;
}

/* Connects, sends req, optionally half-closes, reads until EOF. Returns
 * the number of bytes read into resp (NUL-terminated), or -1 on a
 * timeout. */
static ssize_t exchange(const char *req, size_t len, bool half_close,
                        char *resp, size_t cap)
{
    struct sockaddr_in sa;
    struct timeval tv = {.tv_sec = FUZZ_IO_TIMEOUT_S, .tv_usec = 0};
    size_t got = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int rv;

    assert(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(server.port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    rv = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    assert(rv == 0);
    (void)rv;
    for (size_t off = 0; off < len;) {
        ssize_t n = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (n <= 0) {
            break; /* the server may close early on a bad request */
        }
        off += (size_t)n;
    }
    if (half_close) {
        shutdown(fd, SHUT_WR);
    }
    for (;;) {
        ssize_t n = recv(fd, resp + got, cap - 1 - got, 0);
        if (n == 0) {
            break;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == ECONNRESET) {
                break;
            }
            close(fd);
            return -1; /* EAGAIN: the receive timeout passed */
        }
        got += (size_t)n;
        if (got == cap - 1) {
            break;
        }
    }
    resp[got] = '\0';
    close(fd);
    return (ssize_t)got;
}

static void check_response(const char *resp, size_t len)
{
    const char *body;
    int status = 0;
    int minor = 0;

    assert(len > 0);
    if (getenv("FUZZ_VERBOSE") != NULL) {
        fprintf(stderr, "%.*s\n", (int)(len > 300 ? 300 : len), resp);
    }
    assert(sscanf(resp, "HTTP/1.%d %d", &minor, &status) == 2);
    assert(status >= 100 && status <= 599);
    body = strstr(resp, "\r\n\r\n");
    assert(body != NULL);
    body += 4;
    if (strstr(resp, "application/json") != NULL && *body != '\0') {
        json_error_t error;
        json_t *doc =
            json_loads(body, JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
        assert(doc != NULL);
        json_decref(doc);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const methods[] = {"GET",   "POST", "DELETE",
                                          "PUT",   "PATCH", "HEAD",
                                          "OPTIONS", "POST"};
    static char req[FUZZ_REQUEST_MAX + FUZZ_PATH_MAX + 512];
    static char resp[FUZZ_RESPONSE_MAX];
    ssize_t got;

    if (!server.started) {
        server_start();
    }
    if (size == 0) {
        return 0;
    }
    if ((data[0] & 0x80) != 0) {
        size_t n = size - 1 > FUZZ_REQUEST_MAX ? FUZZ_REQUEST_MAX : size - 1;
        memcpy(req, data + 1, n);
        got = exchange(req, n, true, resp, sizeof(resp));
        assert(got >= 0); /* answered or closed, never hung */
        if (got > 0 && strncmp(resp, "HTTP/", 5) == 0) {
            check_response(resp, (size_t)got);
        }
        return 0;
    }
    {
        const char *method = methods[data[0] & 7];
        const uint8_t *nul = memchr(data + 1, 0, size - 1);
        size_t path_len = nul != NULL ? (size_t)(nul - (data + 1)) : size - 1;
        const uint8_t *body = nul != NULL ? nul + 1 : data + size;
        size_t body_len = (size_t)(data + size - body);
        char path[FUZZ_PATH_MAX + 1];
        int head;

        if (path_len > FUZZ_PATH_MAX) {
            path_len = FUZZ_PATH_MAX;
        }
        for (size_t i = 0; i < path_len; i++) {
            uint8_t c = data[1 + i];
            path[i] = c > 0x20 && c < 0x7f ? (char)c : '_';
        }
        path[path_len] = '\0';
        if (body_len > FUZZ_REQUEST_MAX) {
            body_len = FUZZ_REQUEST_MAX;
        }
        head = snprintf(req, sizeof(req),
                        "%s %s%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        "Connection: close\r\n"
                        "Content-Type: application/json\r\n"
                        "Content-Length: %zu\r\n\r\n",
                        method, (data[0] & 8) != 0 ? "/" : "/actuator/", path,
                        body_len);
        assert(head > 0 && (size_t)head + body_len <= sizeof(req));
        memcpy(req + head, body, body_len);
        got = exchange(req, (size_t)head + body_len, false, resp,
                       sizeof(resp));
        assert(got > 0);
        check_response(resp, (size_t)got);
    }
    return 0;
}
