/*
 * test_ffi: behaviour of the libwtdatagram C ABI, linked statically, server and client
 * in one process on 127.0.0.1 (port 0).
 *
 *  1. bad arguments: error codes + readable messages, _free(NULL), result names
 *  2. callback-mode server (accept/echo from the callback, runtime_free deadlock guard,
 *     userdata_free), pull-mode client: request getters, 500 windowed datagrams, exact
 *     stats, oversize, close code/reason both ways, three sessions on one connection
 *  3. server-initiated close seen by the client
 *  4. rejection with 403
 *  5. datagram events off: wtd_session_recv, INVALID_STATE in the wrong mode, event fd
 *  6. non-blocking send until WTD_ERR_WOULD_BLOCK, counted in stats
 *  7. connection loss when the server goes away
 *  8. sessions closed with distinct codes right before wtd_server_free (from the main
 *     thread, and from inside a callback, with one session freed open): every client
 *     sees its session's code and reason, not the connection's close
 *  9. the contract at the boundary: every enum parameter refuses a value outside its
 *     enum (wtd_result_name names it WTD_ERR_UNKNOWN), every NULL output buffer with a
 *     capacity is WTD_ERR_INVALID_ARGUMENT (and consumes nothing), wtd_stream_close
 *     discards what was queued and receives then say WTD_ERR_CLOSED (also on a stream
 *     whose session closed), no stream or layer on a closed session
 *
 * Every wait has a timeout; a watchdog (WTD_TEST_WATCHDOG seconds, default 90, 0 = off)
 * aborts the program if something hangs anyway. The last line is "N passed, M failed".
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE 1 /* syscall(SYS_gettid) */
#define HARNESS_STRICT_LAST_ERROR 1
#include <poll.h>
#include <sys/syscall.h>

#include "harness.h"

/* ------------------------------------------------------------------------------------ */
/* Helpers                                                                               */

static int fd_readable(int fd, int timeout_ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, timeout_ms);
    return n > 0 && (p.revents & POLLIN);
}

static int ieq(const char *a, const char *b) {
    if (!a || !b) return 0;
    for (; *a && *b; a++, b++) {
        char x = *a, y = *b;
        if (x >= 'A' && x <= 'Z') x = (char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = (char)(y - 'A' + 'a');
        if (x != y) return 0;
    }
    return *a == *b;
}

static int reason_is(const uint8_t *data, size_t len, const char *want) {
    size_t n = strlen(want);
    return len == n && (n == 0 || (data != NULL && memcmp(data, want, n) == 0));
}

/* Datagram `i` of stream `tag`: "<tag><i>:" then a pattern, 16..~915 bytes, <= cap. */
static size_t make_dg(char tag, unsigned i, uint8_t *buf, size_t cap) {
    int n = snprintf((char *)buf, cap, "%c%u:", tag, i);
    size_t len = 16 + (i * 37u) % 900u;
    if (len > cap) len = cap;
    for (size_t k = (size_t)n; k < len; k++) buf[k] = (uint8_t)('a' + (i + k) % 26);
    return len;
}

/* Parse and verify a datagram made by make_dg; writes its tag and index. */
static int parse_dg(const uint8_t *data, size_t len, size_t cap, char *tag, unsigned *idx) {
    if (!data || len < 3 || len > 4096) return 0;
    unsigned i = 0;
    size_t k = 1;
    if (data[k] < '0' || data[k] > '9') return 0;
    while (k < len && data[k] >= '0' && data[k] <= '9') i = i * 10 + (unsigned)(data[k++] - '0');
    if (k >= len || data[k] != ':') return 0;
    uint8_t want[4096];
    if (make_dg((char)data[0], i, want, cap) != len || memcmp(want, data, len) != 0) return 0;
    *tag = (char)data[0];
    *idx = i;
    return 1;
}

/* ------------------------------------------------------------------------------------ */
/* Server side: callback mode                                                            */

#define MAX_RECS 48

typedef struct {
    int used;
    wtd_session *s; /* NULL once the callback freed it */
    char path[256];
    uint64_t id;
    int closed;
    wtd_close_kind kind;
    uint64_t code;
    char reason[1100];
    size_t reason_len;
    int info_agrees;
    uint64_t dgrams, bytes, echoed, echo_failed;
    wtd_session_stats stats;
    int stats_ok;
} srv_rec;

typedef struct {
    pthread_mutex_t mu;
    wtd_runtime *rt;
    srv_rec recs[MAX_RECS];
    int requests;
    int rejected;
    int deadlock_checked;
    int accept_null_checked;
    int bad_userdata;
    /* What the case-2 request looked like (copied before accept). */
    int req2_seen;
    char req2_path[256], req2_authority[256], req2_origin[256], req2_protocol[64];
    char req2_hdr_upper[256], req2_hdr_lower[256];
    int req2_hdr_missing_null;
    size_t req2_hdr_count;
    int req2_iter_origin, req2_iter_x, req2_iter_past_end;
    wtd_dialect req2_dialect;
} srv_state;

static srv_state g_srv = {.mu = PTHREAD_MUTEX_INITIALIZER};
static int g_server1_marker, g_server2_marker, g_server3_marker;
/* Case 8, round B: the server the callback closes its sessions on and frees. */
static wtd_server *g_server_b;
static atomic_int g_in_callback, g_ud_free_calls, g_callbacks_after_free;

static void srv_userdata_free(void *ud) {
    CHECK(ud == &g_srv);
    CHECK(atomic_load(&g_in_callback) == 0);
    atomic_fetch_add(&g_ud_free_calls, 1);
}

static void copy_str(char *dst, size_t cap, const char *src) {
    snprintf(dst, cap, "%s", src ? src : "(NULL)");
}

static void on_request(const wtd_event *ev, srv_state *st) {
    wtd_session_request *req = ev->request;
    CHECK(req != NULL);
    CHECK(ev->server != NULL);
    CHECK(ev->userdata == &g_server1_marker || ev->userdata == &g_server2_marker ||
          ev->userdata == &g_server3_marker);
    CHECK(ev->session == NULL && ev->data == NULL && ev->len == 0);

    if (!st->deadlock_checked) {
        /* Freeing the runtime from its own callback must refuse and change nothing. */
        st->deadlock_checked = 1;
        CHECK_RC(wtd_runtime_free(st->rt), WTD_ERR_WOULD_DEADLOCK);
    }
    const char *path = wtd_session_request_path(req);
    CHECK(path != NULL);
    if (!path) {
        wtd_session_request_free(req);
        return;
    }
    pthread_mutex_lock(&st->mu);
    st->requests++;
    pthread_mutex_unlock(&st->mu);

    if (strcmp(path, "/reject") == 0) {
        /* 2xx is not a rejection: refused, and the request is not consumed. */
        CHECK_RC(wtd_session_request_reject(req, 200), WTD_ERR_INVALID_ARGUMENT);
        CHECK_RC(wtd_session_request_reject(req, 99), WTD_ERR_INVALID_ARGUMENT);
        CHECK_RC(wtd_session_request_reject(req, 600), WTD_ERR_INVALID_ARGUMENT);
        CHECK_STR(wtd_session_request_path(req), "/reject"); /* still alive */
        CHECK_OK(wtd_session_request_reject(req, 403));
        pthread_mutex_lock(&st->mu);
        st->rejected++;
        pthread_mutex_unlock(&st->mu);
        return;
    }

    if (strncmp(path, "/echo?case=2", 12) == 0) {
        pthread_mutex_lock(&st->mu);
        st->req2_seen++;
        copy_str(st->req2_path, sizeof st->req2_path, path);
        copy_str(st->req2_authority, sizeof st->req2_authority, wtd_session_request_authority(req));
        copy_str(st->req2_origin, sizeof st->req2_origin, wtd_session_request_origin(req));
        copy_str(st->req2_protocol, sizeof st->req2_protocol, wtd_session_request_protocol(req));
        copy_str(st->req2_hdr_upper, sizeof st->req2_hdr_upper,
                 wtd_session_request_header(req, "X-TEST-HEADER"));
        copy_str(st->req2_hdr_lower, sizeof st->req2_hdr_lower,
                 wtd_session_request_header(req, "x-test-header"));
        st->req2_hdr_missing_null = wtd_session_request_header(req, "x-not-sent") == NULL &&
                                    wtd_session_request_header(req, NULL) == NULL;
        st->req2_dialect = wtd_session_request_dialect(req);
        st->req2_hdr_count = wtd_session_request_header_count(req);
        for (size_t i = 0; i < st->req2_hdr_count; i++) {
            const char *n = NULL, *v = NULL;
            if (wtd_session_request_header_at(req, i, &n, &v) != WTD_OK || !n || !v) continue;
            if (strcmp(n, "origin") == 0 && strcmp(v, "https://origin.example") == 0)
                st->req2_iter_origin++;
            if (ieq(n, "x-test-header") && strcmp(v, "hello-c") == 0) st->req2_iter_x++;
        }
        const char *n = NULL, *v = NULL;
        st->req2_iter_past_end =
            wtd_session_request_header_at(req, st->req2_hdr_count, &n, &v) == WTD_ERR_NOT_FOUND &&
            wtd_last_error()[0] != '\0';
        pthread_mutex_unlock(&st->mu);
    }

    if (!st->accept_null_checked) {
        /* NULL out pointer: refused, request not consumed. */
        st->accept_null_checked = 1;
        CHECK_RC(wtd_session_request_accept(req, NULL), WTD_ERR_INVALID_ARGUMENT);
        CHECK(wtd_session_request_path(req) != NULL);
    }

    char saved_path[256];
    copy_str(saved_path, sizeof saved_path, path);
    wtd_session *s = NULL;
    if (!CHECK_OK(wtd_session_request_accept(req, &s)) || !s) return;
    CHECK_STR(wtd_session_path(s), saved_path);

    pthread_mutex_lock(&st->mu);
    srv_rec *rec = NULL;
    for (int i = 0; i < MAX_RECS; i++)
        if (!st->recs[i].used) {
            rec = &st->recs[i];
            break;
        }
    if (rec) {
        memset(rec, 0, sizeof *rec);
        rec->used = 1;
        rec->s = s;
        rec->id = wtd_session_id(s);
        copy_str(rec->path, sizeof rec->path, saved_path);
    }
    pthread_mutex_unlock(&st->mu);
    CHECK(rec != NULL);
    CHECK_OK(wtd_session_set_userdata(s, rec));
    CHECK(wtd_session_userdata(s) == rec);

    if (strcmp(saved_path, "/kick") == 0)
        CHECK_OK(wtd_session_close(s, 77, (const uint8_t *)"kick", 4));
}

static void case8_close_from_callback(srv_state *st);

static void on_datagram(const wtd_event *ev, srv_state *st) {
    srv_rec *rec = ev->userdata;
    if (!CHECK(rec != NULL && rec->s == ev->session)) {
        st->bad_userdata++;
        return;
    }
    if (strncmp(rec->path, "/byeB/", 6) == 0) {
        if (reason_is(ev->data, ev->len, "bye")) case8_close_from_callback(st);
        return;
    }
    CHECK(ev->data != NULL || ev->len == 0);
    int sink = strcmp(rec->path, "/sink") == 0;
    wtd_result r = WTD_OK;
    if (!sink) r = wtd_session_send_wait(ev->session, ev->data, ev->len, 2000);
    if (r != WTD_OK && r != WTD_ERR_CLOSED) CHECK_OK(r);
    pthread_mutex_lock(&st->mu);
    rec->dgrams++;
    rec->bytes += ev->len;
    if (!sink) {
        if (r == WTD_OK) rec->echoed++;
        else rec->echo_failed++;
    }
    pthread_mutex_unlock(&st->mu);
}

static void on_closed(const wtd_event *ev, srv_state *st) {
    srv_rec *rec = ev->userdata;
    if (!CHECK(rec != NULL && rec->s == ev->session)) {
        st->bad_userdata++;
        return;
    }
    CHECK(wtd_session_is_closed(ev->session));
    wtd_close_info info;
    memset(&info, 0, sizeof info);
    int info_ok = wtd_session_close_info(ev->session, &info) == WTD_OK;
    wtd_session_stats stats;
    int stats_ok = wtd_session_get_stats(ev->session, &stats) == WTD_OK;
    pthread_mutex_lock(&st->mu);
    rec->closed = 1;
    rec->kind = ev->close_kind;
    rec->code = ev->close_code;
    rec->reason_len = ev->len < sizeof rec->reason - 1 ? ev->len : sizeof rec->reason - 1;
    if (ev->len) memcpy(rec->reason, ev->data, rec->reason_len);
    rec->reason[rec->reason_len] = 0;
    rec->info_agrees = info_ok && info.kind == ev->close_kind && info.code == ev->close_code &&
                       info.reason_len == rec->reason_len &&
                       memcmp(info.reason, rec->reason, rec->reason_len + 1) == 0;
    rec->stats = stats;
    rec->stats_ok = stats_ok;
    rec->s = NULL;
    pthread_mutex_unlock(&st->mu);
    /* We own it since accept; no events of it follow. */
    wtd_session_free(ev->session);
}

static void on_server_event(const wtd_event *ev, void *userdata) {
    srv_state *st = userdata;
    atomic_fetch_add(&g_in_callback, 1);
    if (atomic_load(&g_ud_free_calls) != 0) atomic_fetch_add(&g_callbacks_after_free, 1);
    CHECK(st == &g_srv);
    CHECK(ev != NULL);
    switch (ev->kind) {
    case WTD_EVENT_SESSION_REQUEST: on_request(ev, st); break;
    case WTD_EVENT_DATAGRAM: on_datagram(ev, st); break;
    case WTD_EVENT_SESSION_CLOSED: on_closed(ev, st); break;
    default: break; /* unknown kinds are ignorable */
    }
    atomic_fetch_sub(&g_in_callback, 1);
}

/* Copy the newest record for `path`; 1 if found. */
static int get_rec(const char *path, srv_rec *out) {
    int found = 0;
    pthread_mutex_lock(&g_srv.mu);
    for (int i = 0; i < MAX_RECS; i++)
        if (g_srv.recs[i].used && strcmp(g_srv.recs[i].path, path) == 0) {
            *out = g_srv.recs[i];
            found = 1;
        }
    pthread_mutex_unlock(&g_srv.mu);
    return found;
}

/* Wait (bounded) until the server saw `path` close; copy its record. */
static int wait_rec_closed(const char *path, int ms, srv_rec *out) {
    int64_t end = now_ms() + ms;
    do {
        if (get_rec(path, out) && out->closed) return 1;
        sleep_ms(5);
    } while (now_ms() < end);
    return 0;
}

/* Pull mode: wait (bounded) for `session`'s SESSION_CLOSED event, skipping others. */
static int wait_closed_event(wtd_runtime *rt, wtd_session *session, int ms, wtd_close_kind *kind,
                             uint64_t *code, char *reason, size_t cap) {
    int64_t end = now_ms() + ms;
    while (now_ms() < end) {
        wtd_event ev;
        wtd_result r = wtd_runtime_next_event(rt, &ev, (int32_t)(end - now_ms() > 0 ? end - now_ms() : 0));
        if (r == WTD_ERR_TIMEOUT) break;
        if (!CHECK_OK(r)) return 0;
        int mine = ev.kind == WTD_EVENT_SESSION_CLOSED && ev.session == session;
        if (mine) {
            *kind = ev.close_kind;
            *code = ev.close_code;
            size_t n = ev.len < cap - 1 ? ev.len : cap - 1;
            if (n) memcpy(reason, ev.data, n);
            reason[n] = 0;
        } else if (ev.session == session) {
            fprintf(stderr, "note: skipped event kind %d of the awaited session\n", (int)ev.kind);
        }
        wtd_event_release(&ev);
        if (mine) return 1;
    }
    return 0;
}

/* Read `s`'s stats once its receive counter reached `want` (bounded wait). The counter is
 * bumped just after the datagram is handed to the event queue, so right after the
 * application took the last DATAGRAM event it can still lag by one for a moment. */
static int stats_settled(const wtd_session *s, uint64_t want, wtd_session_stats *st) {
    int64_t end = now_ms() + 2000;
    wtd_result r;
    while ((r = wtd_session_get_stats(s, st)) == WTD_OK && st->datagrams_received < want && now_ms() < end)
        sleep_ms(2);
    return CHECK_OK(r);
}

/* ------------------------------------------------------------------------------------ */
/* Case 1: bad arguments                                                                 */

static int g_cfg_free_a, g_cfg_free_b;
static void count_free(void *ud) { (*(int *)ud)++; }
static void noop_cb(const wtd_event *ev, void *ud) {
    (void)ev;
    (void)ud;
}

static void case1_bad_arguments(void) {
    fprintf(stderr, "case 1: bad arguments\n");

    /* Result names, version, last error. */
    for (int c = WTD_OK; c <= WTD_ERR_NOT_FOUND; c++) {
        const char *n = wtd_result_name((wtd_result)c);
        CHECK(n != NULL && strncmp(n, "WTD_", 4) == 0);
    }
    CHECK_STR(wtd_result_name(WTD_ERR_TIMEOUT), "WTD_ERR_TIMEOUT");
    CHECK_STR(wtd_result_name(WTD_OK), "WTD_OK");
    CHECK(wtd_version() != NULL && wtd_version()[0] != '\0');
    CHECK(wtd_last_error() != NULL);

    /* wtd_last_error_message: length like snprintf, truncation, NUL. */
    CHECK_RC(wtd_hash_from_hex("xyz", (uint8_t[32]){0}, 32), WTD_ERR_INVALID_ARGUMENT);
    {
        const char *msg = wtd_last_error();
        size_t full = strlen(msg);
        CHECK(full > 5);
        CHECK(wtd_last_error_message(NULL, 0) == full);
        char small[6];
        memset(small, 'X', sizeof small);
        CHECK(wtd_last_error_message(small, sizeof small) == full);
        CHECK(small[5] == '\0' && strncmp(small, msg, 5) == 0);
        char one[1] = {'X'};
        CHECK(wtd_last_error_message(one, 1) == full && one[0] == '\0');
        char big[1024];
        CHECK(wtd_last_error_message(big, sizeof big) == full);
        CHECK(strcmp(big, msg) == 0);
        char untouched[4] = {'Q', 'Q', 'Q', 'Q'};
        CHECK(wtd_last_error_message(untouched, 0) == full && untouched[0] == 'Q');
    }

    /* _free(NULL) of every type is a no-op: it returns (a crash ends the program), and
     * reports nothing: the last error message, set by a known failure just before,
     * stays as it was. */
    CHECK_RC(wtd_client_config_new(NULL), WTD_ERR_INVALID_ARGUMENT);
    char before[256];
    wtd_last_error_message(before, sizeof before);
    wtd_client_free(NULL);
    wtd_client_config_free(NULL);
    wtd_connection_free(NULL);
    wtd_transport_config_free(NULL);
    wtd_server_config_free(NULL);
    wtd_server_free(NULL);
    wtd_runtime_config_free(NULL);
    wtd_session_request_free(NULL);
    wtd_session_free(NULL);
    wtd_event_release(NULL);
    CHECK_OK(wtd_runtime_free(NULL));
    CHECK(before[0] != '\0' && strcmp(wtd_last_error(), before) == 0);

    /* Getters on NULL. */
    CHECK(wtd_runtime_event_fd(NULL) == -1);
    CHECK(wtd_server_port(NULL) == 0);
    CHECK(wtd_connection_dialect(NULL) == WTD_DIALECT_DRAFT02);
    CHECK(!wtd_connection_is_closed(NULL));
    CHECK(wtd_session_request_path(NULL) == NULL);
    CHECK(wtd_session_request_authority(NULL) == NULL);
    CHECK(wtd_session_request_origin(NULL) == NULL);
    CHECK(wtd_session_request_protocol(NULL) == NULL);
    CHECK(wtd_session_request_dialect(NULL) == WTD_DIALECT_DRAFT02);
    CHECK(wtd_session_request_header(NULL, "origin") == NULL);
    CHECK(wtd_session_request_header_count(NULL) == 0);
    CHECK(!wtd_session_is_closed(NULL));
    CHECK(wtd_session_id(NULL) == 0);
    CHECK(wtd_session_path(NULL) == NULL);
    CHECK(wtd_session_dialect(NULL) == WTD_DIALECT_DRAFT02);
    CHECK(wtd_session_userdata(NULL) == NULL);

    /* Fallible calls with NULL handles / out pointers. */
    const char *n = NULL, *v = NULL;
    uint8_t buf[64];
    size_t len = 0;
    wtd_close_info info;
    wtd_session_stats stats;
    wtd_event ev;
    wtd_session *s = NULL;
    wtd_connection *conn = NULL;
    wtd_client *client = NULL;
    wtd_server *server = NULL;
    wtd_runtime *rt = NULL;
    const wtd_result INV = WTD_ERR_INVALID_ARGUMENT;

    CHECK_RC(wtd_session_request_header_at(NULL, 0, &n, &v), INV);
    CHECK_RC(wtd_session_request_accept(NULL, &s), INV);
    CHECK_RC(wtd_session_request_reject(NULL, 403), INV);
    CHECK_RC(wtd_session_send(NULL, (const uint8_t *)"x", 1), INV);
    CHECK_RC(wtd_session_send_wait(NULL, (const uint8_t *)"x", 1, 0), INV);
    CHECK_RC(wtd_session_recv(NULL, buf, sizeof buf, &len, 0), INV);
    CHECK_RC(wtd_session_max_datagram_size(NULL, &len), INV);
    CHECK_RC(wtd_session_close(NULL, 0, NULL, 0), INV);
    CHECK_RC(wtd_session_close_info(NULL, &info), INV);
    CHECK_RC(wtd_session_wait_closed(NULL, 0, &info), INV);
    CHECK_RC(wtd_session_get_stats(NULL, &stats), INV);
    CHECK_RC(wtd_session_set_userdata(NULL, buf), INV);
    CHECK_RC(wtd_runtime_next_event(NULL, &ev, 0), INV);
    CHECK_RC(wtd_runtime_new(NULL, NULL), INV);
    CHECK_RC(wtd_runtime_config_new(NULL), INV);
    CHECK_RC(wtd_runtime_config_set_worker_threads(NULL, 2), INV);
    CHECK_RC(wtd_runtime_config_set_event_callback(NULL, noop_cb, NULL, NULL), INV);
    CHECK_RC(wtd_transport_config_new(NULL), INV);
    CHECK_RC(wtd_transport_config_set_idle_timeout_ms(NULL, 1000), INV);
    CHECK_RC(wtd_transport_config_set_keep_alive_ms(NULL, 0), INV);
    CHECK_RC(wtd_transport_config_set_socket_buffers(NULL, 0, 0), INV);
    CHECK_RC(wtd_transport_config_set_datagram_buffers(NULL, 1, 1), INV);
    CHECK_RC(wtd_transport_config_set_recv_queue(NULL, 1), INV);
    CHECK_RC(wtd_transport_config_set_segmentation_offload(NULL, false), INV);
    CHECK_RC(wtd_transport_config_set_max_sessions(NULL, 1), INV);
    CHECK_RC(wtd_transport_config_set_datagram_events(NULL, false), INV);
    CHECK_RC(wtd_server_config_new(NULL), INV);
    CHECK_RC(wtd_server_config_set_bind(NULL, "127.0.0.1:0"), INV);
    CHECK_RC(wtd_server_config_set_cert_pem(NULL, (const uint8_t *)"x", 1, (const uint8_t *)"y", 1), INV);
    CHECK_RC(wtd_server_config_set_cert_pem_files(NULL, "/a", "/b"), INV);
    CHECK_RC(wtd_server_config_set_self_signed(NULL, NULL, 0), INV);
    CHECK_RC(wtd_server_config_set_transport(NULL, NULL), INV);
    CHECK_RC(wtd_server_config_set_request_backlog(NULL, 1), INV);
    CHECK_RC(wtd_client_config_new(NULL), INV);
    CHECK_RC(wtd_client_config_set_bind(NULL, "0.0.0.0:0"), INV);
    CHECK_RC(wtd_client_config_add_ca_pem(NULL, (const uint8_t *)"x", 1), INV);
    CHECK_RC(wtd_client_config_add_cert_hash(NULL, buf, 32), INV);
    CHECK_RC(wtd_client_config_set_insecure(NULL, true), INV);
    CHECK_RC(wtd_client_config_add_header(NULL, "a", "b"), INV);
    CHECK_RC(wtd_client_config_set_transport(NULL, NULL), INV);
    CHECK_RC(wtd_server_new(NULL, NULL, &server), INV);
    CHECK(server == NULL);
    CHECK_RC(wtd_server_local_addr(NULL, (char *)buf, sizeof buf), INV);
    CHECK_RC(wtd_server_cert_hash(NULL, buf, 32), INV);
    CHECK_RC(wtd_server_set_userdata(NULL, buf), INV);
    CHECK_RC(wtd_server_close(NULL), INV);
    CHECK_RC(wtd_client_new(NULL, NULL, &client), INV);
    CHECK(client == NULL);
    CHECK_RC(wtd_client_close(NULL), INV);
    CHECK_RC(wtd_client_connect(NULL, "https://127.0.0.1:1/", 0, &conn), INV);
    CHECK_RC(wtd_client_open_session(NULL, "https://127.0.0.1:1/", NULL, 0, 0, &s), INV);
    CHECK_RC(wtd_connection_open_session(NULL, "/", NULL, 0, 0, &s), INV);
    CHECK_RC(wtd_connection_close(NULL, 0x100, NULL, 0), INV);
    CHECK(s == NULL && conn == NULL);

    /* wtd_hash_from_hex. */
    uint8_t hash[32];
    const char *good = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
    CHECK_OK(wtd_hash_from_hex(good, hash, sizeof hash));
    CHECK(hash[0] == 0x00 && hash[1] == 0x11 && hash[15] == 0xff && hash[31] == 0xff);
    memset(hash, 0xA5, sizeof hash);
    CHECK_RC(wtd_hash_from_hex(NULL, hash, 32), INV);
    CHECK_RC(wtd_hash_from_hex("0011", hash, 32), INV);
    CHECK_RC(wtd_hash_from_hex("zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", hash, 32), INV);
    CHECK_RC(wtd_hash_from_hex("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff00", hash, 32), INV);
    CHECK_RC(wtd_hash_from_hex(good, hash, 31), INV);
    CHECK_RC(wtd_hash_from_hex(good, NULL, 32), INV);
    CHECK_RC(wtd_hash_from_hex("\xff\xfe", hash, 32), INV);
    CHECK(hash[0] == 0xA5 && hash[31] == 0xA5); /* outputs written only on success */

    /* Runtime options. */
    wtd_runtime_config *rcfg = NULL;
    if (CHECK_OK(wtd_runtime_config_new(&rcfg)) && rcfg) {
        CHECK_RC(wtd_runtime_config_set_worker_threads(rcfg, 0), INV);
        CHECK_RC(wtd_runtime_config_set_worker_threads(rcfg, 257), INV);
        CHECK_OK(wtd_runtime_config_set_worker_threads(rcfg, 1));
        CHECK_RC(wtd_runtime_config_set_event_callback(rcfg, NULL, &g_cfg_free_a, count_free), INV);
        CHECK_OK(wtd_runtime_config_set_event_callback(rcfg, noop_cb, &g_cfg_free_a, count_free));
        CHECK(g_cfg_free_a == 0);
        /* Replacing the callback frees the previous userdata once. */
        CHECK_OK(wtd_runtime_config_set_event_callback(rcfg, noop_cb, &g_cfg_free_b, count_free));
        CHECK(g_cfg_free_a == 1 && g_cfg_free_b == 0);
        /* Options never used for a runtime free their callback's userdata. */
        wtd_runtime_config_free(rcfg);
        CHECK(g_cfg_free_a == 1 && g_cfg_free_b == 1);
    }

    /* Transport options. */
    wtd_transport_config *tcfg = NULL;
    if (CHECK_OK(wtd_transport_config_new(&tcfg)) && tcfg) {
        CHECK_RC(wtd_transport_config_set_idle_timeout_ms(tcfg, 0), INV);
        CHECK_RC(wtd_transport_config_set_idle_timeout_ms(tcfg, 600001), INV);
        CHECK_OK(wtd_transport_config_set_idle_timeout_ms(tcfg, 600000));
        CHECK_RC(wtd_transport_config_set_datagram_buffers(tcfg, 0, 1024), INV);
        CHECK_RC(wtd_transport_config_set_datagram_buffers(tcfg, 1024, 0), INV);
        CHECK_RC(wtd_transport_config_set_recv_queue(tcfg, 0), INV);
        CHECK_RC(wtd_transport_config_set_max_sessions(tcfg, 0), INV);
        CHECK_OK(wtd_transport_config_set_keep_alive_ms(tcfg, 0));
        wtd_transport_config_free(tcfg);
    }

    /* Server options. */
    wtd_server_config *scfg = NULL;
    if (CHECK_OK(wtd_server_config_new(&scfg)) && scfg) {
        CHECK_RC(wtd_server_config_set_bind(scfg, NULL), INV);
        CHECK_RC(wtd_server_config_set_bind(scfg, "not an address"), INV);
        CHECK_RC(wtd_server_config_set_bind(scfg, "127.0.0.1:99999"), INV);
        CHECK_RC(wtd_server_config_set_bind(scfg, "127.0.0.1"), INV);
        CHECK_RC(wtd_server_config_set_bind(scfg, "\xff\xfe:1"), INV);
        static const char bad_pem[] = "-----BEGIN CERTIFICATE-----\nnot base64 at all!!\n-----END CERTIFICATE-----\n";
        static const char bad_key[] = "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n";
        CHECK_RC(wtd_server_config_set_cert_pem(scfg, (const uint8_t *)bad_pem, strlen(bad_pem),
                                                (const uint8_t *)bad_key, strlen(bad_key)), WTD_ERR_TLS);
        CHECK_RC(wtd_server_config_set_cert_pem(scfg, (const uint8_t *)"garbage", 7,
                                                (const uint8_t *)"garbage", 7), WTD_ERR_TLS);
        CHECK_RC(wtd_server_config_set_cert_pem(scfg, NULL, 5, (const uint8_t *)"x", 1), INV);
        CHECK_RC(wtd_server_config_set_cert_pem_files(scfg, "/nonexistent-wtd-test/cert.pem",
                                                      "/nonexistent-wtd-test/key.pem"), WTD_ERR_IO);
        CHECK(strstr(wtd_last_error(), "/nonexistent-wtd-test/cert.pem") != NULL);
        CHECK_RC(wtd_server_config_set_cert_pem_files(scfg, NULL, "/x"), INV);
        CHECK_RC(wtd_server_config_set_self_signed(scfg, NULL, 1), INV);
        CHECK_RC(wtd_server_config_set_transport(scfg, NULL), INV);
        CHECK_RC(wtd_server_config_set_request_backlog(scfg, 0), INV);
        wtd_server_config_free(scfg);
    }

    /* Client options. */
    wtd_client_config *ccfg = NULL;
    if (CHECK_OK(wtd_client_config_new(&ccfg)) && ccfg) {
        CHECK_RC(wtd_client_config_set_bind(ccfg, "garbage"), INV);
        CHECK_RC(wtd_client_config_set_bind(ccfg, NULL), INV);
        CHECK_RC(wtd_client_config_add_ca_pem(ccfg, (const uint8_t *)"garbage", 7), WTD_ERR_TLS);
        static const char bad_ca[] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        CHECK_RC(wtd_client_config_add_ca_pem(ccfg, (const uint8_t *)bad_ca, strlen(bad_ca)), WTD_ERR_TLS);
        CHECK_RC(wtd_client_config_add_ca_pem(ccfg, NULL, 4), INV);
        uint8_t h[33] = {0};
        CHECK_RC(wtd_client_config_add_cert_hash(ccfg, h, 31), INV);
        CHECK_RC(wtd_client_config_add_cert_hash(ccfg, h, 33), INV);
        CHECK_RC(wtd_client_config_add_cert_hash(ccfg, h, 0), INV);
        CHECK_RC(wtd_client_config_add_cert_hash(ccfg, NULL, 32), INV);
        CHECK_OK(wtd_client_config_add_cert_hash(ccfg, h, 32));
        CHECK_RC(wtd_client_config_add_header(ccfg, "bad\nname", "v"), INV);
        CHECK_RC(wtd_client_config_add_header(ccfg, ":path", "/x"), INV);
        CHECK_RC(wtd_client_config_add_header(ccfg, "x-ok", "bad\r\nvalue"), INV);
        CHECK_RC(wtd_client_config_add_header(ccfg, NULL, "v"), INV);
        CHECK_RC(wtd_client_config_add_header(ccfg, "x-ok", NULL), INV);
        CHECK_RC(wtd_client_config_set_transport(ccfg, NULL), INV);
        wtd_client_config_free(ccfg);
    }

    /* Things that need live handles: a pull-mode runtime, a server and a client. */
    if (!CHECK_OK(wtd_runtime_new(NULL, &rt)) || !rt) return;
    CHECK(wtd_runtime_event_fd(rt) >= 0);
    CHECK_RC(wtd_runtime_next_event(rt, NULL, 0), INV);
    memset(&ev, 0x5A, sizeof ev);
    CHECK_RC(wtd_runtime_next_event(rt, &ev, 0), WTD_ERR_TIMEOUT);
    CHECK_RC(wtd_runtime_next_event(rt, &ev, 20), WTD_ERR_TIMEOUT);
    CHECK_RC(wtd_server_new(rt, NULL, NULL), INV);
    CHECK_RC(wtd_client_new(rt, NULL, NULL), INV);

    if (CHECK_OK(wtd_server_new(rt, NULL, &server)) && server) {
        char addr[64];
        CHECK_OK(wtd_server_local_addr(server, addr, sizeof addr));
        size_t alen = strlen(addr);
        CHECK(wtd_server_port(server) != 0);
        CHECK_RC(wtd_server_local_addr(server, addr, 3), WTD_ERR_BUFFER_TOO_SMALL);
        CHECK_RC(wtd_server_local_addr(server, addr, alen), WTD_ERR_BUFFER_TOO_SMALL);
        CHECK_OK(wtd_server_local_addr(server, addr, alen + 1));
        CHECK(strlen(addr) == alen);
        CHECK_RC(wtd_server_cert_hash(server, buf, 31), INV);
        CHECK_RC(wtd_server_cert_hash(server, NULL, 32), INV);

        /* The address is in use: an OS error. */
        wtd_server_config *dup = NULL;
        wtd_server *server2 = NULL;
        if (CHECK_OK(wtd_server_config_new(&dup)) && dup) {
            CHECK_OK(wtd_server_config_set_bind(dup, addr));
            CHECK_RC(wtd_server_new(rt, dup, &server2), WTD_ERR_IO);
            CHECK(server2 == NULL);
            wtd_server_free(server2);
            /* A well-formed address this host does not have. */
            CHECK_OK(wtd_server_config_set_bind(dup, "192.0.2.1:0"));
            CHECK_RC(wtd_server_new(rt, dup, &server2), WTD_ERR_IO);
            CHECK(server2 == NULL);
            wtd_server_config_free(dup);
        }
        CHECK_OK(wtd_server_close(server));
        wtd_server_free(server);
        server = NULL;
    }

    if (CHECK_OK(wtd_client_new(rt, NULL, &client)) && client) {
        s = NULL;
        CHECK_RC(wtd_client_open_session(client, "https://\xff\xfe/", NULL, 0, 2000, &s), INV);
        CHECK_RC(wtd_client_open_session(client, "http://127.0.0.1:4433/", NULL, 0, 2000, &s), INV);
        CHECK_RC(wtd_client_open_session(client, "not a url", NULL, 0, 2000, &s), INV);
        CHECK_RC(wtd_client_open_session(client, NULL, NULL, 0, 2000, &s), INV);
        CHECK_RC(wtd_client_open_session(client, "https://127.0.0.1:4433/", NULL, 1, 2000, &s), INV);
        wtd_header bad_hdr = {NULL, "v"};
        CHECK_RC(wtd_client_open_session(client, "https://127.0.0.1:4433/", &bad_hdr, 1, 2000, &s), INV);
        CHECK_RC(wtd_client_open_session(client, "https://127.0.0.1:4433/", NULL, 0, 2000, NULL), INV);
        CHECK(s == NULL);
        conn = NULL;
        CHECK_RC(wtd_client_connect(client, NULL, 2000, &conn), INV);
        CHECK_RC(wtd_client_connect(client, "https://\xff\xfe/", 2000, &conn), INV);
        CHECK_RC(wtd_client_connect(client, "ftp://127.0.0.1:4433/", 2000, &conn), INV);
        CHECK_RC(wtd_client_connect(client, "https://127.0.0.1:4433/", 2000, NULL), INV);
        CHECK(conn == NULL);
        wtd_client_free(client);
        client = NULL;
    }
    CHECK_OK(wtd_runtime_free(rt));
}

/* ------------------------------------------------------------------------------------ */
/* The shared fixture                                                                    */

/* ------------------------------------------------------------------------------------ */
/* Case 2: callback server, pull client, 500 datagrams, stats, closes, 3 sessions        */

#define N_DGRAMS 500
#define WINDOW 50
#define N_ROUTE 20

static void case2_echo(wtd_client *client) {
    fprintf(stderr, "case 2: callback server / pull client echo\n");
    char u[128];
    url(u, sizeof u, g_port, "/");
    wtd_connection *conn = NULL;
    if (!CHECK_OK(wtd_client_connect(client, u, 10000, &conn)) || !conn) return;
    CHECK(!wtd_connection_is_closed(conn));
    wtd_dialect d = wtd_connection_dialect(conn);
    CHECK(d == WTD_DIALECT_DRAFT02 || d == WTD_DIALECT_DRAFT07 || d == WTD_DIALECT_DRAFT15);

    CHECK_RC(wtd_connection_open_session(conn, NULL, NULL, 0, 1000, NULL), WTD_ERR_INVALID_ARGUMENT);
    wtd_session *bad = NULL;
    CHECK_RC(wtd_connection_open_session(conn, "/x", NULL, 2, 1000, &bad), WTD_ERR_INVALID_ARGUMENT);
    CHECK(bad == NULL);

    wtd_header hdrs[] = {{"Origin", "https://origin.example"}, {"X-Test-Header", "hello-c"}};
    wtd_session *a = NULL;
    if (!CHECK_OK(wtd_connection_open_session(conn, "/echo?case=2", hdrs, 2, 10000, &a)) || !a) {
        wtd_connection_free(conn);
        return;
    }
    static int tag_a = 'A', tag_b = 'B', tag_c = 'C';
    CHECK_OK(wtd_session_set_userdata(a, &tag_a));
    CHECK(wtd_session_userdata(a) == &tag_a);
    CHECK_STR(wtd_session_path(a), "/echo?case=2");
    CHECK(!wtd_session_is_closed(a));
    CHECK(wtd_session_dialect(a) == d);

    /* What the server saw. */
    pthread_mutex_lock(&g_srv.mu);
    char authority[64];
    snprintf(authority, sizeof authority, "127.0.0.1:%u", (unsigned)g_port);
    CHECK(g_srv.req2_seen == 1);
    CHECK_STR(g_srv.req2_path, "/echo?case=2");
    CHECK(strcmp(g_srv.req2_authority, authority) == 0);
    CHECK_STR(g_srv.req2_origin, "https://origin.example");
    CHECK(strcmp(g_srv.req2_protocol, "webtransport") == 0 || strcmp(g_srv.req2_protocol, "webtransport-h3") == 0);
    CHECK_STR(g_srv.req2_hdr_upper, "hello-c");
    CHECK_STR(g_srv.req2_hdr_lower, "hello-c");
    CHECK(g_srv.req2_hdr_missing_null);
    CHECK(g_srv.req2_hdr_count >= 2);
    CHECK(g_srv.req2_iter_origin == 1);
    CHECK(g_srv.req2_iter_x == 1);
    CHECK(g_srv.req2_iter_past_end);
    CHECK(g_srv.req2_dialect == d);
    CHECK(g_srv.deadlock_checked == 1);
    pthread_mutex_unlock(&g_srv.mu);

    /* Bad arguments on a live session. */
    uint8_t buf[4096];
    size_t len = 0, max = 0;
    CHECK_RC(wtd_session_send(a, NULL, 5), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_session_send_wait(a, NULL, 5, 100), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_session_max_datagram_size(a, NULL), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_session_get_stats(a, NULL), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_session_close_info(a, NULL), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_session_close(a, 1, NULL, 3), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_session_close(a, 1, (const uint8_t *)"\xff\xfe", 2), WTD_ERR_INVALID_ARGUMENT);
    CHECK(!wtd_session_is_closed(a)); /* refused closes change nothing */
    wtd_close_info info;
    CHECK_RC(wtd_session_close_info(a, &info), WTD_ERR_INVALID_STATE);
    CHECK_RC(wtd_session_wait_closed(a, 0, &info), WTD_ERR_TIMEOUT);
    CHECK_RC(wtd_session_wait_closed(a, 30, NULL), WTD_ERR_TIMEOUT);
    /* Datagrams are events on this session: recv is the wrong mode. */
    CHECK_RC(wtd_session_recv(a, buf, sizeof buf, &len, 0), WTD_ERR_INVALID_STATE);
    CHECK_RC(wtd_session_recv(a, buf, sizeof buf, NULL, 0), WTD_ERR_INVALID_ARGUMENT);

    if (!CHECK_OK(wtd_session_max_datagram_size(a, &max))) max = 1000;
    CHECK(max >= 1000 && max < 65536);
    size_t cap = max < sizeof buf ? max : sizeof buf;

    /* 500 datagrams, at most WINDOW in flight, each echo checked. */
    static uint8_t seen[N_DGRAMS];
    memset(seen, 0, sizeof seen);
    unsigned sent = 0, got = 0, bad_dg = 0, other = 0;
    uint64_t bytes = 0;
    int64_t end = now_ms() + 20000;
    while (got < N_DGRAMS && now_ms() < end) {
        int send_failed = 0;
        while (sent < N_DGRAMS && sent - got < WINDOW) {
            size_t l = make_dg('A', sent, buf, cap);
            if (!CHECK_OK(wtd_session_send_wait(a, buf, l, 5000))) {
                send_failed = 1;
                break;
            }
            bytes += l;
            sent++;
        }
        if (send_failed) break;
        wtd_event ev;
        wtd_result r = wtd_runtime_next_event(g_crt, &ev, 5000);
        if (!CHECK_OK(r)) {
            fprintf(stderr, "  no echo: sent %u, got %u\n", sent, got);
            break;
        }
        char tag = 0;
        unsigned idx = 0;
        if (ev.kind == WTD_EVENT_DATAGRAM && ev.session == a && ev.userdata == &tag_a &&
            parse_dg(ev.data, ev.len, cap, &tag, &idx) && tag == 'A' && idx < N_DGRAMS && !seen[idx]) {
            seen[idx] = 1;
            got++;
        } else if (ev.kind == WTD_EVENT_DATAGRAM) {
            bad_dg++;
        } else {
            other++;
            fprintf(stderr, "  unexpected event kind %d\n", (int)ev.kind);
        }
        wtd_event_release(&ev);
        CHECK(ev.kind == WTD_EVENT_NONE && ev.data == NULL && ev.internal == NULL);
        wtd_event_release(&ev); /* already released: no-op */
    }
    CHECK(sent == N_DGRAMS);
    CHECK(got == N_DGRAMS);
    CHECK(bad_dg == 0);
    CHECK(other == 0);

    wtd_session_stats st;
    if (stats_settled(a, N_DGRAMS, &st)) {
        CHECK(st.datagrams_sent == N_DGRAMS);
        CHECK(st.datagrams_received == N_DGRAMS);
        CHECK(st.bytes_sent == bytes);
        CHECK(st.bytes_received == bytes);
        CHECK(st.recv_dropped == 0);
        CHECK(st.send_too_large == 0);
        CHECK(st.send_would_block == 0);
    }

    /* Too large. Path MTU discovery may still raise the limit (1161 -> 1413 on
     * loopback), so use a size no path allows rather than max + 1. */
    static uint8_t big[65536];
    memset(big, 'z', sizeof big);
    CHECK_RC(wtd_session_send(a, big, sizeof big), WTD_ERR_TOO_LARGE);
    CHECK_RC(wtd_session_send_wait(a, big, sizeof big, 1000), WTD_ERR_TOO_LARGE);
    if (CHECK_OK(wtd_session_get_stats(a, &st))) {
        CHECK(st.send_too_large == 2);
        CHECK(st.datagrams_sent == N_DGRAMS);
        CHECK(st.bytes_sent == bytes);
    }

    /* Three sessions on one connection: datagrams go to the right one. */
    uint64_t route_bytes_a = 0;
    wtd_session *b = NULL, *c = NULL;
    CHECK_OK(wtd_connection_open_session(conn, "/echo/b", NULL, 0, 10000, &b));
    CHECK_OK(wtd_connection_open_session(conn, "/echo/c", NULL, 0, 10000, &c));
    if (b && c) {
        CHECK_OK(wtd_session_set_userdata(b, &tag_b));
        CHECK_OK(wtd_session_set_userdata(c, &tag_c));
        CHECK_STR(wtd_session_path(b), "/echo/b");
        CHECK_STR(wtd_session_path(c), "/echo/c");
        uint64_t ia = wtd_session_id(a), ib = wtd_session_id(b), ic = wtd_session_id(c);
        CHECK(ia != ib && ib != ic && ia != ic);
        wtd_session *ss[3] = {a, b, c};
        void *tags[3] = {&tag_a, &tag_b, &tag_c};
        const char letters[3] = {'a', 'b', 'c'};
        unsigned count[3] = {0, 0, 0}, misrouted = 0, dup = 0;
        static uint8_t rseen[3][N_ROUTE];
        memset(rseen, 0, sizeof rseen);
        for (unsigned i = 0; i < N_ROUTE; i++)
            for (int k = 0; k < 3; k++) {
                size_t l = make_dg(letters[k], i, buf, 200);
                CHECK_OK(wtd_session_send_wait(ss[k], buf, l, 5000));
                if (k == 0) route_bytes_a += l;
            }
        unsigned total = 0;
        end = now_ms() + 10000;
        while (total < 3 * N_ROUTE && now_ms() < end) {
            wtd_event ev;
            if (!CHECK_OK(wtd_runtime_next_event(g_crt, &ev, 5000))) break;
            if (ev.kind == WTD_EVENT_DATAGRAM) {
                char tag = 0;
                unsigned idx = 0;
                int k = -1;
                for (int j = 0; j < 3; j++)
                    if (ev.session == ss[j]) k = j;
                if (k < 0 || ev.userdata != tags[k] || !parse_dg(ev.data, ev.len, 200, &tag, &idx) ||
                    tag != letters[k] || idx >= N_ROUTE) {
                    misrouted++;
                } else if (rseen[k][idx]++) {
                    dup++;
                } else {
                    count[k]++;
                }
                total++;
            } else {
                fprintf(stderr, "  unexpected event kind %d\n", (int)ev.kind);
                CHECK(!"unexpected event during routing");
            }
            wtd_event_release(&ev);
        }
        CHECK(misrouted == 0);
        CHECK(dup == 0);
        CHECK(count[0] == N_ROUTE && count[1] == N_ROUTE && count[2] == N_ROUTE);
        for (int k = 0; k < 3; k++) {
            uint64_t base = k == 0 ? N_DGRAMS : 0;
            if (stats_settled(ss[k], base + N_ROUTE, &st)) {
                CHECK(st.datagrams_sent == base + N_ROUTE);
                CHECK(st.datagrams_received == base + N_ROUTE);
            }
        }
    }

    /* The client closes A with a code and reason. */
    CHECK_OK(wtd_session_close(a, 4242, (const uint8_t *)"bye from C", 10));
    CHECK(wtd_session_is_closed(a));
    CHECK_OK(wtd_session_close(a, 1, (const uint8_t *)"again", 5)); /* no-op */
    wtd_close_kind kind = WTD_CLOSE_NONE;
    uint64_t code = 0;
    char reason[1100];
    CHECK(wait_closed_event(g_crt, a, 5000, &kind, &code, reason, sizeof reason));
    CHECK(kind == WTD_CLOSE_LOCAL);
    CHECK(code == 4242);
    CHECK_STR(reason, "bye from C");
    memset(&info, 0, sizeof info);
    if (CHECK_OK(wtd_session_close_info(a, &info))) {
        CHECK(info.kind == WTD_CLOSE_LOCAL && info.code == 4242);
        CHECK(info.reason_len == 10 && strcmp(info.reason, "bye from C") == 0);
    }
    memset(&info, 0, sizeof info);
    CHECK_OK(wtd_session_wait_closed(a, 0, &info));
    CHECK(info.kind == WTD_CLOSE_LOCAL && info.code == 4242 && strcmp(info.reason, "bye from C") == 0);
    CHECK_OK(wtd_session_wait_closed(a, 0, NULL));
    CHECK_RC(wtd_session_send(a, (const uint8_t *)"late", 4), WTD_ERR_CLOSED);
    CHECK_RC(wtd_session_send_wait(a, (const uint8_t *)"late", 4, 100), WTD_ERR_CLOSED);

    srv_rec rec;
    if (CHECK(wait_rec_closed("/echo?case=2", 10000, &rec))) {
        CHECK(rec.kind == WTD_CLOSE_REMOTE);
        CHECK(rec.code == 4242);
        CHECK_STR(rec.reason, "bye from C");
        CHECK(rec.info_agrees);
        CHECK(rec.dgrams == N_DGRAMS + N_ROUTE);
        CHECK(rec.echoed == N_DGRAMS + N_ROUTE);
        CHECK(rec.bytes == bytes + route_bytes_a);
        CHECK(rec.stats_ok);
        CHECK(rec.stats.datagrams_received == rec.dgrams);
        CHECK(rec.stats.datagrams_sent == rec.echoed);
        CHECK(rec.stats.bytes_received == rec.bytes);
        CHECK(rec.stats.recv_dropped == 0);
    }

    /* B and C: wtd_session_free closes them with code 0; their queued events vanish. */
    wtd_session_free(b);
    wtd_session_free(c);
    if (b && CHECK(wait_rec_closed("/echo/b", 10000, &rec))) {
        CHECK(rec.kind == WTD_CLOSE_REMOTE && rec.code == 0);
        CHECK(rec.dgrams == N_ROUTE && rec.echoed == N_ROUTE);
    }
    if (c && CHECK(wait_rec_closed("/echo/c", 10000, &rec))) {
        CHECK(rec.kind == WTD_CLOSE_REMOTE && rec.code == 0);
    }
    wtd_session_free(a);
    wtd_connection_free(conn);

    /* Nothing of the freed sessions is delivered any more. */
    wtd_event ev;
    while (wtd_runtime_next_event(g_crt, &ev, 100) == WTD_OK) {
        CHECK(ev.session != a && ev.session != b && ev.session != c);
        wtd_event_release(&ev);
    }
}

/* ------------------------------------------------------------------------------------ */
/* Case 3: server-initiated close                                                        */

static void case3_server_close(wtd_client *client) {
    fprintf(stderr, "case 3: server closes with 77 \"kick\"\n");
    char u[128];
    url(u, sizeof u, g_port, "/kick");
    wtd_session *s = NULL;
    if (!CHECK_OK(wtd_client_open_session(client, u, NULL, 0, 10000, &s)) || !s) return;
    wtd_close_info info;
    memset(&info, 0, sizeof info);
    if (CHECK_OK(wtd_session_wait_closed(s, 10000, &info))) {
        CHECK(info.kind == WTD_CLOSE_REMOTE);
        CHECK(info.code == 77);
        CHECK(info.reason_len == 4 && strcmp(info.reason, "kick") == 0);
    }
    wtd_close_info info2;
    memset(&info2, 0, sizeof info2);
    if (CHECK_OK(wtd_session_close_info(s, &info2)))
        CHECK(info2.kind == info.kind && info2.code == info.code && strcmp(info2.reason, info.reason) == 0);
    CHECK(wtd_session_is_closed(s));
    wtd_close_kind kind = WTD_CLOSE_NONE;
    uint64_t code = 0;
    char reason[1100];
    if (CHECK(wait_closed_event(g_crt, s, 5000, &kind, &code, reason, sizeof reason))) {
        CHECK(kind == WTD_CLOSE_REMOTE && code == 77);
        CHECK_STR(reason, "kick");
    }
    CHECK_RC(wtd_session_send(s, (const uint8_t *)"x", 1), WTD_ERR_CLOSED);
    srv_rec rec;
    if (CHECK(wait_rec_closed("/kick", 5000, &rec))) {
        CHECK(rec.kind == WTD_CLOSE_LOCAL && rec.code == 77);
        CHECK_STR(rec.reason, "kick");
        CHECK(rec.info_agrees);
    }
    wtd_session_free(s);
}

/* ------------------------------------------------------------------------------------ */
/* Case 4: rejection                                                                     */

static void case4_reject(wtd_client *client) {
    fprintf(stderr, "case 4: rejection with 403\n");
    char u[128];
    url(u, sizeof u, g_port, "/reject");
    wtd_session *s = NULL;
    if (CHECK_RC(wtd_client_open_session(client, u, NULL, 0, 10000, &s), WTD_ERR_REJECTED))
        CHECK(strstr(wtd_last_error(), "403") != NULL);
    char msg[256];
    size_t n = wtd_last_error_message(msg, sizeof msg);
    CHECK(n > 0 && n < sizeof msg && strstr(msg, "403") != NULL);
    CHECK(s == NULL);
    wtd_session_free(s);
    /* The callback counts after wtd_session_request_reject returned: wait for it. */
    int rejected = 0;
    for (int64_t end = now_ms() + 5000; now_ms() < end; sleep_ms(5)) {
        pthread_mutex_lock(&g_srv.mu);
        rejected = g_srv.rejected;
        pthread_mutex_unlock(&g_srv.mu);
        if (rejected) break;
    }
    CHECK(rejected == 1);
}

/* ------------------------------------------------------------------------------------ */
/* Case 5: datagram events off, wtd_session_recv, modes, event fd                        */

static void case5_recv(void) {
    fprintf(stderr, "case 5: pull mode with datagram events off\n");
    /* Callback mode has no pull. */
    wtd_event ev;
    CHECK_RC(wtd_runtime_next_event(g_srt, &ev, 0), WTD_ERR_INVALID_STATE);
    CHECK_RC(wtd_runtime_next_event(g_srt, &ev, 10), WTD_ERR_INVALID_STATE);

    wtd_runtime *prt = NULL;
    if (!CHECK_OK(wtd_runtime_new(NULL, &prt)) || !prt) return;
    int fd = wtd_runtime_event_fd(prt);
    CHECK(fd >= 0);
    wtd_transport_config *t = NULL;
    CHECK_OK(wtd_transport_config_new(&t));
    CHECK_OK(wtd_transport_config_set_datagram_events(t, false));
    CHECK_OK(wtd_transport_config_set_recv_queue(t, 64));
    wtd_client *client = make_client_on(prt, t, g_hash);
    wtd_transport_config_free(t);
    if (!CHECK(client != NULL)) {
        wtd_runtime_free(prt);
        return;
    }
    char u1[128], u2[128];
    url(u1, sizeof u1, g_port, "/echo5a");
    url(u2, sizeof u2, g_port, "/echo5b");
    wtd_session *s = NULL, *s2 = NULL;
    CHECK_OK(wtd_client_open_session(client, u1, NULL, 0, 10000, &s));
    CHECK_OK(wtd_client_open_session(client, u2, NULL, 0, 10000, &s2));
    if (!s || !s2) goto out;

    CHECK(!fd_readable(fd, 0)); /* nothing waits */

    uint8_t buf[2048];
    size_t len = 12345;
    CHECK_RC(wtd_session_recv(s, buf, sizeof buf, &len, 0), WTD_ERR_TIMEOUT);
    CHECK_RC(wtd_session_recv(s, buf, sizeof buf, &len, 50), WTD_ERR_TIMEOUT);
    CHECK(len == 12345); /* not written on failure */
    CHECK_RC(wtd_session_recv(s, NULL, 10, &len, 0), WTD_ERR_INVALID_ARGUMENT);

    static const char msg[] = "hello-recv-test";
    const size_t mlen = sizeof msg - 1;
    CHECK_OK(wtd_session_send_wait(s, (const uint8_t *)msg, mlen, 5000));
    /* Too small: size reported, datagram stays queued. */
    len = 0;
    CHECK_RC(wtd_session_recv(s, buf, 4, &len, 5000), WTD_ERR_BUFFER_TOO_SMALL);
    CHECK(len == mlen);
    len = 0;
    CHECK_RC(wtd_session_recv(s, NULL, 0, &len, 0), WTD_ERR_BUFFER_TOO_SMALL);
    CHECK(len == mlen);
    len = 0;
    CHECK_RC(wtd_session_recv(s, buf, mlen - 1, &len, 0), WTD_ERR_BUFFER_TOO_SMALL);
    CHECK(len == mlen);
    memset(buf, 0, sizeof buf);
    len = 0;
    if (CHECK_OK(wtd_session_recv(s, buf, mlen, &len, 0)))
        CHECK(len == mlen && memcmp(buf, msg, mlen) == 0);
    CHECK_RC(wtd_session_recv(s, buf, sizeof buf, &len, 0), WTD_ERR_TIMEOUT);
    /* Datagrams of one session do not show up on the other. */
    CHECK_RC(wtd_session_recv(s2, buf, sizeof buf, &len, 0), WTD_ERR_TIMEOUT);
    CHECK(!fd_readable(fd, 0)); /* datagrams are not events here */

    /* A queued datagram is still returned after the session closed; then CLOSED. */
    CHECK_OK(wtd_session_send_wait(s, (const uint8_t *)"after", 5, 5000));
    int64_t end = now_ms() + 5000;
    wtd_session_stats st;
    memset(&st, 0, sizeof st);
    while (now_ms() < end && wtd_session_get_stats(s, &st) == WTD_OK && st.datagrams_received < 2)
        sleep_ms(5);
    CHECK(st.datagrams_received == 2);
    CHECK(st.datagrams_sent == 2);
    CHECK_OK(wtd_session_close(s, 5, (const uint8_t *)"five", 4));
    CHECK_OK(wtd_session_close(s2, 6, (const uint8_t *)"six", 3));
    len = 0;
    if (CHECK_OK(wtd_session_recv(s, buf, sizeof buf, &len, 0)))
        CHECK(len == 5 && memcmp(buf, "after", 5) == 0);
    CHECK_RC(wtd_session_recv(s, buf, sizeof buf, &len, 0), WTD_ERR_CLOSED);
    CHECK_RC(wtd_session_recv(s, buf, sizeof buf, &len, 100), WTD_ERR_CLOSED);

    /* Two SESSION_CLOSED events wait: the fd is readable until both are taken. */
    CHECK(fd_readable(fd, 2000));
    wtd_event e1, e2;
    if (CHECK_OK(wtd_runtime_next_event(prt, &e1, 2000))) {
        CHECK(e1.kind == WTD_EVENT_SESSION_CLOSED && e1.session == s);
        CHECK(e1.close_kind == WTD_CLOSE_LOCAL && e1.close_code == 5 && reason_is(e1.data, e1.len, "five"));
        CHECK(fd_readable(fd, 0)); /* one more waits */
        if (CHECK_OK(wtd_runtime_next_event(prt, &e2, 2000))) {
            CHECK(e2.kind == WTD_EVENT_SESSION_CLOSED && e2.session == s2);
            CHECK(e2.close_kind == WTD_CLOSE_LOCAL && e2.close_code == 6 && reason_is(e2.data, e2.len, "six"));
            /* Both taken: not readable, even while they are not released yet. */
            CHECK(!fd_readable(fd, 0));
            /* e1 still valid after taking e2. */
            CHECK(e1.session == s && reason_is(e1.data, e1.len, "five"));
            wtd_event_release(&e2);
        }
        wtd_event_release(&e1);
    }
    CHECK(!fd_readable(fd, 0));
    CHECK_RC(wtd_runtime_next_event(prt, &ev, 0), WTD_ERR_TIMEOUT);
    CHECK(!fd_readable(fd, 0));

    srv_rec rec;
    if (CHECK(wait_rec_closed("/echo5a", 5000, &rec))) {
        CHECK(rec.kind == WTD_CLOSE_REMOTE && rec.code == 5);
        CHECK_STR(rec.reason, "five");
        CHECK(rec.dgrams == 2);
    }
out:
    wtd_session_free(s);
    wtd_session_free(s2);
    wtd_client_free(client);
    CHECK_OK(wtd_runtime_free(prt));
}

/* ------------------------------------------------------------------------------------ */
/* Case 5b: batches: wtd_session_send_multiple / wtd_session_recv_multiple               */

typedef struct {
    wtd_session *s;
    wtd_result rc;
    atomic_int tid;  /* the receiving thread's id, set right before the call */
    atomic_int done; /* set when the call returned */
} blocked_recv_t;

static void *blocked_recv(void *arg) {
    blocked_recv_t *b = arg;
    uint8_t buf[64];
    size_t lens[4], n = 0;
    atomic_store(&b->tid, (int)syscall(SYS_gettid));
    b->rc = wtd_session_recv_multiple(b->s, buf, sizeof buf, lens, 4, &n, -1);
    atomic_store(&b->done, 1);
    return NULL;
}

/* 1 once the receiving thread is asleep in the kernel (state S in
 * /proc/self/task/<tid>/stat) and its call has not returned: it is blocked inside the
 * receive, which nothing but the close can end. 0 if that was not seen within `ms`. */
static int wait_blocked(blocked_recv_t *b, int ms) {
    int64_t end = now_ms() + ms;
    while (now_ms() < end && !atomic_load(&b->done)) {
        int tid = atomic_load(&b->tid);
        char path[64], stat[512] = "";
        snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
        FILE *f = tid ? fopen(path, "r") : NULL;
        if (f) {
            size_t n = fread(stat, 1, sizeof stat - 1, f);
            stat[n] = '\0';
            fclose(f);
            const char *p = strrchr(stat, ')'); /* "tid (comm) S ..." */
            if (p && p[1] == ' ' && p[2] == 'S' && !atomic_load(&b->done)) return 1;
        }
        sleep_ms(1);
    }
    return 0;
}

static void case5b_batches(void) {
    fprintf(stderr, "case 5b: batch send and receive\n");
    const wtd_result INV = WTD_ERR_INVALID_ARGUMENT;
    wtd_runtime *prt = NULL;
    if (!CHECK_OK(wtd_runtime_new(NULL, &prt)) || !prt) return;
    wtd_transport_config *t = NULL;
    CHECK_OK(wtd_transport_config_new(&t));
    CHECK_OK(wtd_transport_config_set_datagram_events(t, false));
    CHECK_RC(wtd_transport_config_set_recv_queue_bytes(NULL, 1024), INV);
    CHECK_RC(wtd_transport_config_set_recv_queue_bytes(t, 0), INV);
    CHECK_OK(wtd_transport_config_set_recv_queue_bytes(t, 1 << 20));
    wtd_client *client = make_client_on(prt, t, g_hash);
    wtd_transport_config_free(t);
    char u[128];
    url(u, sizeof u, g_port, "/echo5c");
    wtd_session *s = NULL;
    if (!CHECK(client != NULL) || !CHECK_OK(wtd_client_open_session(client, u, NULL, 0, 10000, &s)))
        goto out;

    enum { N = 20, L = 12 };
    char data[N][L + 1];
    wtd_buffer items[N];
    for (int i = 0; i < N; i++) {
        snprintf(data[i], sizeof data[i], "batch-%06d", i);
        items[i].data = (const uint8_t *)data[i];
        items[i].len = L;
    }
    size_t sent = 99;
    CHECK_RC(wtd_session_send_multiple(NULL, items, 1, 0, &sent), INV);
    CHECK_RC(wtd_session_send_multiple(s, NULL, 2, 0, &sent), INV);
    CHECK_RC(wtd_session_send_multiple(s, items, 1, 0, NULL), INV);
    wtd_buffer bad[2] = {items[0], {NULL, 3}};
    CHECK_RC(wtd_session_send_multiple(s, bad, 2, 0, &sent), INV);
    CHECK(strstr(wtd_last_error(), "items[1].data") != NULL); /* names the bad one */
    CHECK(sent == 99); /* not written on failure; nothing was sent (checked first) */
    CHECK_OK(wtd_session_send_multiple(s, items, 0, 0, &sent));
    CHECK(sent == 0);
    CHECK_OK(wtd_session_send_multiple(s, items, N, 5000, &sent));
    CHECK(sent == N);
    /* A too large one first: the error, and nothing sent. */
    static uint8_t huge[70000];
    wtd_buffer too_large[2] = {{huge, sizeof huge}, items[0]};
    CHECK_RC(wtd_session_send_multiple(s, too_large, 2, 100, &sent), WTD_ERR_TOO_LARGE);
    /* A too large one later: the ones before it are sent. */
    wtd_buffer later[2] = {items[0], {huge, sizeof huge}};
    CHECK_OK(wtd_session_send_multiple(s, later, 2, 100, &sent));
    CHECK(sent == 1);

    wtd_session_stats st;
    memset(&st, 0, sizeof st);
    int64_t end = now_ms() + 5000;
    while (now_ms() < end && wtd_session_get_stats(s, &st) == WTD_OK && st.datagrams_received < N + 1)
        sleep_ms(5);
    CHECK_U64(st.datagrams_sent, N + 1);
    CHECK_U64(st.datagrams_received, N + 1);

    uint8_t buf[64 * L];
    size_t lens[64], n = 77;
    CHECK_RC(wtd_session_recv_multiple(NULL, buf, sizeof buf, lens, 4, &n, 0), INV);
    CHECK_RC(wtd_session_recv_multiple(s, buf, sizeof buf, NULL, 4, &n, 0), INV);
    CHECK_RC(wtd_session_recv_multiple(s, NULL, 10, lens, 4, &n, 0), INV);
    CHECK_RC(wtd_session_recv_multiple(s, buf, sizeof buf, lens, 4, NULL, 0), INV);
    CHECK(n == 77);
    CHECK_OK(wtd_session_recv_multiple(s, buf, sizeof buf, lens, 0, &n, 0));
    CHECK(n == 0);
    /* Not even the first fits: its size, and it stays queued. */
    lens[0] = 0;
    CHECK_RC(wtd_session_recv_multiple(s, buf, L - 1, lens, 8, &n, 0), WTD_ERR_BUFFER_TOO_SMALL);
    CHECK(lens[0] == L);
    /* Bounded by count, then by bytes (the one that does not fit stays queued). */
    int seen[N];
    memset(seen, 0, sizeof seen);
    size_t total = 0;
    if (CHECK_OK(wtd_session_recv_multiple(s, buf, sizeof buf, lens, 3, &n, 1000))) CHECK(n == 3);
    for (size_t i = 0; i < n && i < 3; i++) {
        unsigned k = 0;
        CHECK(lens[i] == L && sscanf((const char *)buf + i * L, "batch-%06u", &k) == 1 && k < N);
        if (k < N) seen[k]++;
    }
    total += n;
    if (CHECK_OK(wtd_session_recv_multiple(s, buf, 2 * L + 5, lens, 8, &n, 1000))) CHECK(n == 2);
    for (size_t i = 0; i < n && i < 2; i++) {
        unsigned k = 0;
        CHECK(lens[i] == L && sscanf((const char *)buf + i * L, "batch-%06u", &k) == 1 && k < N);
        if (k < N) seen[k]++;
    }
    total += n;
    /* The rest in one call: packed back to back. */
    if (CHECK_OK(wtd_session_recv_multiple(s, buf, sizeof buf, lens, 64, &n, 1000)))
        CHECK(n == N + 1 - total);
    for (size_t i = 0; i < n && i < 64; i++) {
        unsigned k = 0;
        CHECK(lens[i] == L && sscanf((const char *)buf + i * L, "batch-%06u", &k) == 1 && k < N);
        if (k < N) seen[k]++;
    }
    total += n;
    CHECK(total == N + 1);
    CHECK(seen[0] == 2); /* items[0] was sent twice */
    for (int i = 1; i < N; i++) CHECK(seen[i] == 1);
    CHECK_RC(wtd_session_recv_multiple(s, buf, sizeof buf, lens, 64, &n, 0), WTD_ERR_TIMEOUT);
    CHECK_RC(wtd_session_recv_multiple(s, buf, sizeof buf, lens, 64, &n, 20), WTD_ERR_TIMEOUT);

    /* The byte bound of the receive queue: 300 bytes keep three 100-byte datagrams. */
    {
        wtd_transport_config *t2 = NULL;
        CHECK_OK(wtd_transport_config_new(&t2));
        CHECK_OK(wtd_transport_config_set_datagram_events(t2, false));
        CHECK_OK(wtd_transport_config_set_recv_queue_bytes(t2, 300));
        wtd_client *c2 = make_client_on(prt, t2, g_hash);
        wtd_transport_config_free(t2);
        wtd_session *s2 = NULL;
        char u2[128];
        url(u2, sizeof u2, g_port, "/echo5d");
        if (CHECK(c2 != NULL) && CHECK_OK(wtd_client_open_session(c2, u2, NULL, 0, 10000, &s2))) {
            uint8_t hundred[100];
            memset(hundred, 'h', sizeof hundred);
            wtd_buffer ten[10];
            for (int i = 0; i < 10; i++) ten[i] = (wtd_buffer){hundred, sizeof hundred};
            CHECK_OK(wtd_session_send_multiple(s2, ten, 10, 5000, &sent));
            CHECK(sent == 10);
            wtd_session_stats st2;
            memset(&st2, 0, sizeof st2);
            end = now_ms() + 5000;
            while (now_ms() < end && wtd_session_get_stats(s2, &st2) == WTD_OK &&
                   st2.datagrams_received + st2.recv_dropped < 10)
                sleep_ms(5);
            CHECK_U64(st2.datagrams_received, 3);
            CHECK_U64(st2.recv_dropped, 7);
            if (CHECK_OK(wtd_session_recv_multiple(s2, buf, sizeof buf, lens, 64, &n, 1000)))
                CHECK(n == 3 && lens[0] == 100 && lens[2] == 100);
        }
        wtd_session_free(s2);
        wtd_client_free(c2);
    }

    /* A thread blocked without a timeout returns WTD_ERR_CLOSED when the runtime is freed. */
    blocked_recv_t b = {s, WTD_OK, 0, 0};
    pthread_t th;
    if (CHECK(pthread_create(&th, NULL, blocked_recv, &b) == 0)) {
        CHECK(wait_blocked(&b, 5000));
        CHECK_OK(wtd_runtime_free(prt));
        prt = NULL;
        pthread_join(th, NULL);
        CHECK_RC(b.rc, WTD_ERR_CLOSED);
    }
out:
    wtd_session_free(s);
    wtd_client_free(client);
    if (prt) CHECK_OK(wtd_runtime_free(prt));
}

/* ------------------------------------------------------------------------------------ */
/* Case 6: non-blocking send fills the send buffer                                       */

static void case6_would_block(void) {
    fprintf(stderr, "case 6: non-blocking send until WTD_ERR_WOULD_BLOCK\n");
    wtd_transport_config *t = NULL;
    CHECK_OK(wtd_transport_config_new(&t));
    CHECK_OK(wtd_transport_config_set_datagram_buffers(t, 4096, 1 << 20));
    wtd_client *client = make_client_on(g_crt, t, g_hash);
    wtd_transport_config_free(t);
    if (!CHECK(client != NULL)) return;
    char u[128];
    url(u, sizeof u, g_port, "/sink");
    wtd_session *s = NULL;
    if (CHECK_OK(wtd_client_open_session(client, u, NULL, 0, 10000, &s)) && s) {
        size_t max = 0;
        CHECK_OK(wtd_session_max_datagram_size(s, &max));
        size_t len = max < 1200 ? max : 1200;
        static uint8_t payload[1200];
        memset(payload, 'w', sizeof payload);
        uint64_t ok = 0, wb = 0, other = 0;
        for (int i = 0; i < 100000 && wb < 10; i++) {
            wtd_result r = wtd_session_send(s, payload, len);
            if (r == WTD_OK) ok++;
            else if (r == WTD_ERR_WOULD_BLOCK) wb++;
            else {
                other++;
                CHECK_OK(r);
                break;
            }
        }
        fprintf(stderr, "  %llu sent, %llu would-block\n", (unsigned long long)ok, (unsigned long long)wb);
        CHECK(wb > 0);
        CHECK(other == 0);
        wtd_session_stats st;
        if (CHECK_OK(wtd_session_get_stats(s, &st))) {
            CHECK(st.send_would_block == wb);
            CHECK(st.datagrams_sent == ok);
            CHECK(st.bytes_sent == ok * len);
        }
        /* The blocking variant waits for room instead; it is not a non-blocking send that
         * returned WTD_ERR_WOULD_BLOCK, so send_would_block must not move. Fill the buffer
         * again first so that it really has to wait. */
        for (int i = 0; i < 100000; i++) {
            wtd_result r = wtd_session_send(s, payload, len);
            if (r == WTD_OK) ok++;
            else if (r == WTD_ERR_WOULD_BLOCK) {
                wb++;
                break;
            } else {
                CHECK_OK(r);
                break;
            }
        }
        CHECK_OK(wtd_session_send_wait(s, payload, len, 5000));
        if (CHECK_OK(wtd_session_get_stats(s, &st))) {
            CHECK(st.send_would_block == wb);
            CHECK(st.datagrams_sent == ok + 1);
        }
        CHECK_OK(wtd_session_close(s, 0, NULL, 0));
        wtd_close_kind kind;
        uint64_t code;
        char reason[64];
        CHECK(wait_closed_event(g_crt, s, 5000, &kind, &code, reason, sizeof reason));
        CHECK(kind == WTD_CLOSE_LOCAL && code == 0 && reason[0] == 0);
        srv_rec rec;
        if (CHECK(wait_rec_closed("/sink", 10000, &rec))) {
            CHECK(rec.kind == WTD_CLOSE_REMOTE && rec.code == 0);
            CHECK(rec.dgrams <= ok + 1);
            CHECK(rec.stats.datagrams_received + rec.stats.recv_dropped <= ok + 1);
        }
    }
    wtd_session_free(s);
    wtd_client_free(client);
}

/* ------------------------------------------------------------------------------------ */
/* Case 7: connection loss                                                               */

static void case7_connection_loss(void) {
    fprintf(stderr, "case 7: connection loss\n");
    wtd_server *server2 = NULL;
    if (!CHECK_OK(wtd_server_new(g_srt, NULL, &server2)) || !server2) return;
    CHECK_OK(wtd_server_set_userdata(server2, &g_server2_marker));
    uint8_t hash2[32];
    CHECK_OK(wtd_server_cert_hash(server2, hash2, sizeof hash2));
    wtd_transport_config *t = NULL;
    CHECK_OK(wtd_transport_config_new(&t));
    CHECK_OK(wtd_transport_config_set_idle_timeout_ms(t, 500));
    CHECK_OK(wtd_transport_config_set_keep_alive_ms(t, 0));
    wtd_client *client = make_client_on(g_crt, t, hash2);
    wtd_transport_config_free(t);
    char u[128];
    url(u, sizeof u, wtd_server_port(server2), "/echo7");
    wtd_session *s = NULL;
    if (client && CHECK_OK(wtd_client_open_session(client, u, NULL, 0, 10000, &s)) && s) {
        CHECK(!wtd_session_is_closed(s));
        wtd_server_free(server2);
        server2 = NULL;
        wtd_close_info info;
        memset(&info, 0, sizeof info);
        if (CHECK_OK(wtd_session_wait_closed(s, 10000, &info))) {
            fprintf(stderr, "  client saw kind %d code %llu reason \"%s\"\n", (int)info.kind,
                    (unsigned long long)info.code, info.reason);
            CHECK(info.kind == WTD_CLOSE_CONNECTION_LOST || info.kind == WTD_CLOSE_TIMED_OUT);
            CHECK(info.reason_len == strlen(info.reason));
        }
        CHECK(wtd_session_is_closed(s));
        wtd_close_kind kind = WTD_CLOSE_NONE;
        uint64_t code = 0;
        char reason[1100];
        if (CHECK(wait_closed_event(g_crt, s, 5000, &kind, &code, reason, sizeof reason)))
            CHECK(kind == info.kind && code == info.code && strcmp(reason, info.reason) == 0);
        CHECK_RC(wtd_session_send(s, (const uint8_t *)"x", 1), WTD_ERR_CLOSED);
        srv_rec rec;
        if (CHECK(wait_rec_closed("/echo7", 10000, &rec)))
            CHECK(rec.kind == WTD_CLOSE_CONNECTION_LOST || rec.kind == WTD_CLOSE_LOCAL ||
                  rec.kind == WTD_CLOSE_TIMED_OUT);
    }
    wtd_server_free(server2);
    wtd_session_free(s);
    wtd_client_free(client);
}

/* ------------------------------------------------------------------------------------ */
/* Case 9: the contract at the boundary: enum values outside their enum, NULL output     */
/* buffers with a capacity, a closed stream, layers on a closed session                 */

/* Wait (bounded) until `st` has at least `n` datagrams queued. */
static int wait_stream_queued(const wtd_stream *st, size_t n) {
    int64_t end = now_ms() + 10000;
    while (wtd_stream_receive_buffer_size(st) < n) {
        if (now_ms() > end) return 0;
        sleep_ms(2);
    }
    return 1;
}

/* Open a client session at `path` (the server echoes its datagrams). */
static wtd_session *case9_open(wtd_client *client, const char *path) {
    char u[128];
    url(u, sizeof u, g_port, path);
    wtd_session *s = NULL;
    if (!CHECK_OK(wtd_client_open_session(client, u, NULL, 0, 10000, &s))) return NULL;
    return s;
}

static int last_error_has(const char *a, const char *b) {
    const char *m = wtd_last_error();
    return strstr(m, a) != NULL && (b == NULL || strstr(m, b) != NULL);
}

static void case9_enums(wtd_client *client) {
    const wtd_result INV = WTD_ERR_INVALID_ARGUMENT;

    /* wtd_result_name: every code its own name, anything else one fixed string. */
    for (int c = WTD_OK; c <= WTD_ERR_INVALID_DATA; c++) {
        const char *n = wtd_result_name((wtd_result)c);
        CHECK(n != NULL && strncmp(n, "WTD_", 4) == 0 && strcmp(n, "WTD_ERR_UNKNOWN") != 0);
    }
    CHECK_STR(wtd_result_name(WTD_ERR_INVALID_DATA), "WTD_ERR_INVALID_DATA");
    const int unknown[] = {19, 20, 25, 100, 999, -1, 0x7fffffff};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        CHECK_STR(wtd_result_name((wtd_result)unknown[i]), "WTD_ERR_UNKNOWN");

    /* wtd_overflow: refused with a message naming the parameter and the value; the
     * options keep what was set before. */
    wtd_stream_config *scfg = NULL;
    if (!CHECK_OK(wtd_stream_config_new(&scfg)) || !scfg) return;
    CHECK_OK(wtd_stream_config_set_recv_overflow(scfg, WTD_OVERFLOW_DROP_NEWEST));
    CHECK_OK(wtd_stream_config_set_recv_overflow(scfg, WTD_OVERFLOW_DROP_OLDEST));
    const int bad_overflow[] = {2, 9, -1, 1000};
    for (size_t i = 0; i < sizeof bad_overflow / sizeof bad_overflow[0]; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", bad_overflow[i]);
        CHECK_RC(wtd_stream_config_set_recv_overflow(scfg, (wtd_overflow)bad_overflow[i]), INV);
        CHECK(last_error_has("overflow", v));
    }
    wtd_session *s = case9_open(client, "/echo/c9-enum");
    if (s) {
        wtd_stream *st = NULL;
        if (CHECK_OK(wtd_stream_new(s, scfg, &st)) && st) {
            char state[4096];
            size_t len = 0;
            if (CHECK_OK(wtd_stream_debug_state(st, state, sizeof state, &len)))
                CHECK(strstr(state, "\"recv_overflow\":\"DropOldest\"") != NULL);
            wtd_stream_free(st);
        }
        wtd_session_free(s);
    }
    wtd_stream_config_free(scfg);

    /* wtd_serializer: refused before the transport claims the session's datagrams. */
    s = case9_open(client, "/echo/c9-serializer");
    if (s) {
        const int bad_serializer[] = {3, 7, -1, 1000};
        for (size_t i = 0; i < sizeof bad_serializer / sizeof bad_serializer[0]; i++) {
            char v[16];
            snprintf(v, sizeof v, "%d", bad_serializer[i]);
            wtd_structured *t = NULL;
            CHECK_RC(wtd_structured_new(s, (wtd_serializer)bad_serializer[i], 10, &t), INV);
            CHECK(t == NULL);
            CHECK(last_error_has("serializer", v));
        }
        wtd_structured *t = NULL;
        CHECK_OK(wtd_structured_new(s, WTD_SERIALIZER_MSGPACK, 10, &t)); /* nothing claimed */
        wtd_structured_free(t);
        wtd_session_free(s);
    }

    /* An event the application scribbled over (enum fields out of range): released
     * without looking at them, and zeroed. */
    wtd_event ev;
    memset(&ev, 0x5A, sizeof ev);
    ev.internal = NULL;
    wtd_event_release(&ev);
    CHECK(ev.kind == WTD_EVENT_NONE && ev.close_kind == WTD_CLOSE_NONE);
    CHECK(ev.session == NULL && ev.data == NULL && ev.len == 0 && ev.internal == NULL);
}

static void case9_null_buffers(wtd_client *client) {
    const wtd_result INV = WTD_ERR_INVALID_ARGUMENT;
    uint8_t buf[512];
    char type[256];
    size_t len = 0, tlen = 0, count = 0, lens[4];
    wtd_datagram_metadata meta;

    /* Session calls (in event mode: the argument check comes first). */
    wtd_session *s = case9_open(client, "/echo/c9-buffers");
    if (!s) return;
    CHECK_RC(wtd_session_recv(s, NULL, 16, &len, 0), INV);
    CHECK_RC(wtd_session_recv_multiple(s, NULL, 16, lens, 4, &count, 0), INV);
    CHECK_RC(wtd_session_recv_multiple(s, buf, sizeof buf, NULL, 4, &count, 0), INV);

    /* Stream calls, with a datagram queued: it stays queued through every refusal. */
    wtd_stream *st = NULL;
    if (!CHECK_OK(wtd_stream_new(s, NULL, &st)) || !st) {
        wtd_session_free(s);
        return;
    }
    static const char msg[] = "{\"c9\":1}";
    CHECK_OK(wtd_stream_send(st, (const uint8_t *)msg, sizeof msg - 1, 1, 0));
    CHECK(wait_stream_queued(st, 1)); /* echoed */
    CHECK_RC(wtd_stream_receive(st, NULL, 16, &len, 0), INV);
    CHECK(last_error_has("buf", "NULL"));
    CHECK_RC(wtd_stream_receive(st, NULL, 16, &len, 100), INV);
    CHECK_RC(wtd_stream_try_receive(st, NULL, 16, &len), INV);
    CHECK_RC(wtd_stream_receive_multiple(st, NULL, 16, lens, 4, &count, 0), INV);
    CHECK_RC(wtd_stream_receive_multiple(st, buf, sizeof buf, NULL, 4, &count, 0), INV);
    CHECK_RC(wtd_stream_receive_with_metadata(st, NULL, 16, &len, &meta, 0), INV);
    CHECK_RC(wtd_stream_receive_json(st, NULL, 16, &len, 0), INV);
    CHECK_RC(wtd_stream_receive_structured(st, NULL, 256, &tlen, buf, sizeof buf, &len, 0), INV);
    CHECK_RC(wtd_stream_receive_structured(st, type, sizeof type, &tlen, NULL, 16, &len, 0), INV);
    CHECK(wtd_stream_receive_buffer_size(st) == 1);
    /* NULL with capacity 0 is still a size query. */
    len = 0;
    CHECK_RC(wtd_stream_receive(st, NULL, 0, &len, 0), WTD_ERR_BUFFER_TOO_SMALL);
    CHECK(len == sizeof msg - 1);
    len = 0;
    if (CHECK_OK(wtd_stream_receive_json(st, (char *)buf, sizeof buf, &len, 0)))
        CHECK(len == sizeof msg - 1 && memcmp(buf, msg, len) == 0);

    CHECK_RC(wtd_stream_debug_state(st, NULL, 16, &len), INV);
    len = 0;
    CHECK_RC(wtd_stream_debug_state(st, NULL, 0, &len), WTD_ERR_BUFFER_TOO_SMALL);
    CHECK(len > 0);
    CHECK_RC(wtd_stream_diagnose(st, NULL, 16, &len, NULL), INV);
    len = 0;
    CHECK_RC(wtd_stream_diagnose(st, NULL, 0, &len, NULL), WTD_ERR_BUFFER_TOO_SMALL);
    CHECK(len > 0);
    wtd_monitor *m = NULL;
    if (CHECK_OK(wtd_monitor_new(st, NULL, &m)) && m) {
        CHECK_RC(wtd_monitor_get_samples(m, NULL, 4, &count), INV);
        CHECK_RC(wtd_monitor_get_alerts(m, NULL, 4, &count), INV);
        CHECK_OK(wtd_monitor_get_samples(m, NULL, 0, &count));
        CHECK(count == 0);
        wtd_monitor_free(m);
    }
    wtd_stream_free(st);
    wtd_session_free(s);

    CHECK_RC(wtd_heartbeat_create(NULL, 32, &len), INV);
    len = 0;
    CHECK_RC(wtd_heartbeat_create(NULL, 0, &len), WTD_ERR_BUFFER_TOO_SMALL);
    CHECK(len > 10);
    CHECK_RC(wtd_server_local_addr(g_server, NULL, 64), INV);
    CHECK_RC(wtd_server_local_addr(g_server, NULL, 0), WTD_ERR_BUFFER_TOO_SMALL);
    CHECK_RC(wtd_server_cert_hash(g_server, NULL, 32), INV);
    CHECK_RC(wtd_hash_from_hex("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
                               NULL, 32), INV);

    /* Reliability and structured layers. */
    s = case9_open(client, "/echo/c9-reliability");
    if (s) {
        wtd_reliability *r = NULL;
        if (CHECK_OK(wtd_reliability_new(s, NULL, &r)) && r) {
            CHECK_RC(wtd_reliability_receive(r, NULL, 16, &len, 0), INV);
            CHECK_RC(wtd_reliability_receive(r, NULL, 16, &len, 100), INV);
            wtd_reliability_free(r);
        }
        wtd_session_free(s);
    }
    s = case9_open(client, "/echo/c9-structured");
    if (s) {
        wtd_structured *t = NULL;
        if (CHECK_OK(wtd_structured_new(s, WTD_SERIALIZER_MSGPACK, 10, &t)) && t) {
            CHECK_OK(wtd_structured_register_type(t, 7));
            static const uint8_t one[] = {0x01}; /* MessagePack 1 */
            CHECK_OK(wtd_structured_send(t, 7, one, sizeof one));
            wtd_structured_stats ss;
            int64_t end = now_ms() + 10000;
            while (wtd_structured_get_stats(t, &ss) == WTD_OK && ss.received < 1 && now_ms() < end)
                sleep_ms(2);
            CHECK(ss.received == 1); /* echoed */
            uint16_t id = 0;
            CHECK_RC(wtd_structured_receive(t, &id, NULL, 16, &len, 0), INV);
            CHECK_RC(wtd_structured_receive(t, &id, NULL, 16, &len, 100), INV);
            len = 0;
            if (CHECK_OK(wtd_structured_receive(t, &id, buf, sizeof buf, &len, 0))) /* kept */
                CHECK(id == 7 && len == 1 && buf[0] == 0x01);
            wtd_structured_free(t);
        }
        wtd_session_free(s);
    }
}

static void case9_closed(wtd_client *client) {
    uint8_t buf[256];
    char type[256];
    size_t len = 0, tlen = 0, count = 0, lens[4];
    wtd_datagram_metadata meta;

    /* wtd_stream_close discards what was queued; every receive then says CLOSED. */
    wtd_session *s = case9_open(client, "/echo/c9-close");
    if (!s) return;
    wtd_stream *st = NULL;
    if (CHECK_OK(wtd_stream_new(s, NULL, &st)) && st) {
        CHECK_OK(wtd_stream_send(st, (const uint8_t *)"a", 1, 1, 0));
        CHECK_OK(wtd_stream_send(st, (const uint8_t *)"b", 1, 1, 0));
        CHECK(wait_stream_queued(st, 2));
        CHECK_OK(wtd_stream_close(st));
        CHECK(wtd_stream_is_closed(st));
        CHECK(!wtd_session_is_closed(s)); /* the session stays open */
        CHECK(wtd_stream_receive_buffer_size(st) == 0);
        wtd_queue_stats q;
        if (CHECK_OK(wtd_stream_get_queue_stats(st, &q))) CHECK(q.receive == 0);
        CHECK_RC(wtd_stream_try_receive(st, buf, sizeof buf, &len), WTD_ERR_CLOSED);
        CHECK_RC(wtd_stream_receive(st, buf, sizeof buf, &len, 0), WTD_ERR_CLOSED);
        CHECK_RC(wtd_stream_receive(st, buf, sizeof buf, &len, 100), WTD_ERR_CLOSED);
        CHECK_RC(wtd_stream_receive_multiple(st, buf, sizeof buf, lens, 4, &count, 0), WTD_ERR_CLOSED);
        CHECK_RC(wtd_stream_receive_with_metadata(st, buf, sizeof buf, &len, &meta, 100), WTD_ERR_CLOSED);
        CHECK_RC(wtd_stream_receive_json(st, (char *)buf, sizeof buf, &len, 0), WTD_ERR_CLOSED);
        CHECK_RC(wtd_stream_receive_structured(st, type, sizeof type, &tlen, buf, sizeof buf, &len, 100),
                 WTD_ERR_CLOSED);
        wtd_stream_free(st);
    }
    wtd_session_free(s);

    /* A stream whose session closed, with nothing queued: CLOSED, not WOULD_BLOCK, so a
     * polling loop learns of it. Then no stream or layer on that closed session. */
    s = case9_open(client, "/echo/c9-session-close");
    if (!s) return;
    st = NULL;
    if (CHECK_OK(wtd_stream_new(s, NULL, &st)) && st) {
        CHECK_RC(wtd_stream_try_receive(st, buf, sizeof buf, &len), WTD_ERR_WOULD_BLOCK);
        CHECK_OK(wtd_session_close(s, 9, (const uint8_t *)"c9", 2));
        CHECK(wtd_stream_is_closed(st));
        CHECK_RC(wtd_stream_try_receive(st, buf, sizeof buf, &len), WTD_ERR_CLOSED);
        CHECK_RC(wtd_stream_receive(st, buf, sizeof buf, &len, 0), WTD_ERR_CLOSED);
        CHECK_RC(wtd_stream_receive_multiple(st, buf, sizeof buf, lens, 4, &count, 100), WTD_ERR_CLOSED);
        wtd_stream_free(st);
    }
    wtd_session_free(s);

    s = case9_open(client, "/echo/c9-closed-layers");
    if (!s) return;
    CHECK_OK(wtd_session_close(s, 0, NULL, 0));
    st = NULL;
    wtd_reliability *r = NULL;
    wtd_structured *t = NULL;
    CHECK_RC(wtd_stream_new(s, NULL, &st), WTD_ERR_CLOSED);
    CHECK_RC(wtd_reliability_new(s, NULL, &r), WTD_ERR_CLOSED);
    CHECK_RC(wtd_structured_new(s, WTD_SERIALIZER_JSON, 10, &t), WTD_ERR_CLOSED);
    CHECK(st == NULL && r == NULL && t == NULL);
    wtd_session_free(s);
}

static void case9_contract(wtd_client *client) {
    fprintf(stderr, "case 9: enums out of range, NULL buffers, closed streams and sessions\n");
    case9_enums(client);
    case9_null_buffers(client);
    case9_closed(client);
}

/* ------------------------------------------------------------------------------------ */
/* Case 8: sessions closed right before the server is freed                              */

#define BYE_N 4 /* sessions per round: 0 and 1 share a connection, 2 and 3 have their own */

/* Round B, on the dispatcher thread (the DATAGRAM "bye" of /byeB/0): close sessions 0..2
 * with 400+i "bye B i", free session 3 open (an implicit close, code 0), then free the
 * server at once. None of it may block or fail inside the callback. */
static void case8_close_from_callback(srv_state *st) {
    pthread_mutex_lock(&st->mu);
    wtd_server *server = g_server_b;
    g_server_b = NULL;
    for (int i = 0; i < MAX_RECS && server; i++) {
        srv_rec *r = &st->recs[i];
        unsigned k = 0;
        if (!r->used || !r->s || sscanf(r->path, "/byeB/%u", &k) != 1) continue;
        if (k == BYE_N - 1) {
            /* Freed: no event of it follows, so record its end here. */
            wtd_session_free(r->s);
            r->s = NULL;
            r->closed = 1;
            r->kind = WTD_CLOSE_LOCAL;
            continue;
        }
        char reason[32];
        snprintf(reason, sizeof reason, "bye B %u", k);
        CHECK_OK(wtd_session_close(r->s, 400 + k, (const uint8_t *)reason, strlen(reason)));
    }
    pthread_mutex_unlock(&st->mu);
    if (CHECK(server != NULL)) wtd_server_free(server);
}

/* Open the round's sessions ("/<round>/<i>") on a new server; 1 when all are accepted. */
static int case8_open(wtd_client *client, uint16_t port, const char *round, wtd_connection **conn,
                      wtd_session *cs[BYE_N]) {
    char u[128], path[64];
    url(u, sizeof u, port, "/");
    if (!CHECK_OK(wtd_client_connect(client, u, 10000, conn)) || !*conn) return 0;
    for (int i = 0; i < BYE_N; i++) {
        snprintf(path, sizeof path, "/%s/%d", round, i);
        url(u, sizeof u, port, path);
        wtd_result r = i < 2 ? wtd_connection_open_session(*conn, path, NULL, 0, 10000, &cs[i])
                             : wtd_client_open_session(client, u, NULL, 0, 10000, &cs[i]);
        if (!CHECK_OK(r) || !cs[i]) return 0;
        /* Accepted on the server's side once its callback recorded it (bounded wait). */
        srv_rec rec;
        int seen = 0;
        for (int64_t end = now_ms() + 5000; !seen && now_ms() < end; sleep_ms(2))
            seen = get_rec(path, &rec) && rec.s != NULL;
        if (!CHECK(seen)) return 0;
    }
    return 1;
}

/* The client sessions of a round saw code `base`+i and "bye <round> i" (session 3 of
 * round B: code 0, no reason); the server's own records agree. */
static void case8_check(const char *round, uint64_t base, int last_freed, wtd_session *cs[BYE_N]) {
    for (int i = 0; i < BYE_N; i++) {
        char want[32], path[64];
        snprintf(want, sizeof want, "bye %c %d", round[3], i);
        snprintf(path, sizeof path, "/%s/%d", round, i);
        int freed = last_freed && i == BYE_N - 1;
        uint64_t want_code = freed ? 0 : base + (uint64_t)i;
        const char *want_reason = freed ? "" : want;
        wtd_close_info info;
        memset(&info, 0, sizeof info);
        if (CHECK_OK(wtd_session_wait_closed(cs[i], 10000, &info))) {
            if (info.kind != WTD_CLOSE_REMOTE || info.code != want_code || strcmp(info.reason, want_reason) != 0)
                fprintf(stderr, "  %s: client saw kind %d code %llu reason \"%s\"\n", path, (int)info.kind,
                        (unsigned long long)info.code, info.reason);
            CHECK(info.kind == WTD_CLOSE_REMOTE);
            CHECK_U64(info.code, want_code);
            CHECK_STR(info.reason, want_reason);
        }
        srv_rec rec;
        if (CHECK(wait_rec_closed(path, 5000, &rec))) {
            CHECK(rec.kind == WTD_CLOSE_LOCAL);
            if (!freed) {
                CHECK_U64(rec.code, want_code);
                CHECK_STR(rec.reason, want_reason);
            }
        }
    }
}

static void case8_close_then_free_server(void) {
    fprintf(stderr, "case 8: sessions closed right before wtd_server_free\n");
    uint8_t hash[32];
    wtd_client *client = NULL;
    wtd_connection *conn = NULL;
    wtd_session *cs[BYE_N] = {0};

    /* Round A: the main thread closes the sessions and frees the server right away. */
    wtd_server *server = NULL;
    if (CHECK_OK(wtd_server_new(g_srt, NULL, &server)) && server) {
        CHECK_OK(wtd_server_set_userdata(server, &g_server3_marker));
        CHECK_OK(wtd_server_cert_hash(server, hash, sizeof hash));
        client = make_client_on(g_crt, NULL, hash);
        if (client && case8_open(client, wtd_server_port(server), "byeA", &conn, cs)) {
            /* Held: the callback frees a server session only after its close, and only
             * once we let go of the lock. */
            pthread_mutex_lock(&g_srv.mu);
            for (int i = 0; i < MAX_RECS; i++) {
                srv_rec *r = &g_srv.recs[i];
                unsigned k = 0;
                if (!r->used || !r->s || sscanf(r->path, "/byeA/%u", &k) != 1) continue;
                char reason[32];
                snprintf(reason, sizeof reason, "bye A %u", k);
                CHECK_OK(wtd_session_close(r->s, 300 + k, (const uint8_t *)reason, strlen(reason)));
            }
            pthread_mutex_unlock(&g_srv.mu);
            int64_t t = now_ms();
            wtd_server_free(server);
            server = NULL;
            fprintf(stderr, "  round A: wtd_server_free returned in %lld ms\n", (long long)(now_ms() - t));
            case8_check("byeA", 300, 0, cs);
        }
        wtd_server_free(server);
    }
    for (int i = 0; i < BYE_N; i++) {
        wtd_session_free(cs[i]);
        cs[i] = NULL;
    }
    wtd_connection_free(conn);
    conn = NULL;
    wtd_client_free(client);
    client = NULL;

    /* Round B: the same from inside the server's callback, plus a session freed open. */
    if (CHECK_OK(wtd_server_new(g_srt, NULL, &server)) && server) {
        CHECK_OK(wtd_server_set_userdata(server, &g_server3_marker));
        CHECK_OK(wtd_server_cert_hash(server, hash, sizeof hash));
        pthread_mutex_lock(&g_srv.mu);
        g_server_b = server;
        pthread_mutex_unlock(&g_srv.mu);
        client = make_client_on(g_crt, NULL, hash);
        if (client && case8_open(client, wtd_server_port(server), "byeB", &conn, cs)) {
            CHECK_OK(wtd_session_send_wait(cs[0], (const uint8_t *)"bye", 3, 2000));
            case8_check("byeB", 400, 1, cs);
        }
        /* Freed by the callback unless the round failed before. */
        pthread_mutex_lock(&g_srv.mu);
        server = g_server_b;
        g_server_b = NULL;
        pthread_mutex_unlock(&g_srv.mu);
        CHECK(server == NULL);
        wtd_server_free(server);
    }
    for (int i = 0; i < BYE_N; i++) wtd_session_free(cs[i]);
    wtd_connection_free(conn);
    wtd_client_free(client);
}

/* ------------------------------------------------------------------------------------ */

int main(void) {
    harness_begin("test_ffi", 90);
    int64_t t0 = now_ms();
    fprintf(stderr, "libwtdatagram %s\n", wtd_version());

    case1_bad_arguments();

    /* Server runtime in callback mode. */
    wtd_runtime_config *rcfg = NULL;
    if (!CHECK_OK(wtd_runtime_config_new(&rcfg)) || !rcfg) goto done;
    CHECK_OK(wtd_runtime_config_set_event_callback(rcfg, on_server_event, &g_srv, srv_userdata_free));
    if (!CHECK_OK(wtd_runtime_new(rcfg, &g_srt)) || !g_srt) {
        wtd_runtime_config_free(rcfg);
        goto done;
    }
    wtd_runtime_config_free(rcfg); /* the callback moved to the runtime */
    CHECK(atomic_load(&g_ud_free_calls) == 0);
    pthread_mutex_lock(&g_srv.mu);
    g_srv.rt = g_srt;
    pthread_mutex_unlock(&g_srv.mu);

    wtd_server_config *scfg = NULL;
    CHECK_OK(wtd_server_config_new(&scfg));
    CHECK_OK(wtd_server_config_set_bind(scfg, "127.0.0.1:0"));
    const char *names[] = {"localhost", "127.0.0.1"};
    CHECK_OK(wtd_server_config_set_self_signed(scfg, names, 2));
    if (!CHECK_OK(wtd_server_new(g_srt, scfg, &g_server)) || !g_server) {
        wtd_server_config_free(scfg);
        goto free_srt;
    }
    wtd_server_config_free(scfg);
    CHECK_OK(wtd_server_set_userdata(g_server, &g_server1_marker));
    g_port = wtd_server_port(g_server);
    CHECK(g_port != 0);
    {
        char addr[64], want[64];
        snprintf(want, sizeof want, "127.0.0.1:%u", (unsigned)g_port);
        CHECK_OK(wtd_server_local_addr(g_server, addr, sizeof addr));
        CHECK(strcmp(addr, want) == 0);
    }
    CHECK_OK(wtd_server_cert_hash(g_server, g_hash, sizeof g_hash));

    /* Client runtime in pull mode. */
    if (!CHECK_OK(wtd_runtime_new(NULL, &g_crt)) || !g_crt) goto free_server;
    wtd_client *client = make_client_on(g_crt, NULL, g_hash);
    if (CHECK(client != NULL)) {
        case2_echo(client);
        case3_server_close(client);
        case4_reject(client);
        case9_contract(client);
    }
    case5_recv();
    case5b_batches();
    case6_would_block();
    case7_connection_loss();
    case8_close_then_free_server();

    /* A session still open when its runtime is freed answers WTD_ERR_CLOSED. */
    wtd_session *late = NULL;
    if (client) {
        char u[128];
        url(u, sizeof u, g_port, "/echo/late");
        CHECK_OK(wtd_client_open_session(client, u, NULL, 0, 10000, &late));
    }
    int64_t t1 = now_ms();
    CHECK_OK(wtd_runtime_free(g_crt));
    fprintf(stderr, "client runtime freed in %lld ms\n", (long long)(now_ms() - t1));
    g_crt = NULL;
    if (late) {
        CHECK_RC(wtd_session_send(late, (const uint8_t *)"x", 1), WTD_ERR_CLOSED);
        CHECK_RC(wtd_session_send_wait(late, (const uint8_t *)"x", 1, 100), WTD_ERR_CLOSED);
    }
    if (client) {
        wtd_connection *conn = NULL;
        char u[128];
        url(u, sizeof u, g_port, "/");
        CHECK_RC(wtd_client_connect(client, u, 1000, &conn), WTD_ERR_CLOSED);
        CHECK(conn == NULL);
    }
    wtd_session_free(late);
    wtd_client_free(client);

free_server:
    CHECK(atomic_load(&g_ud_free_calls) == 0);
    wtd_server_free(g_server);
    g_server = NULL;
free_srt:
    CHECK(atomic_load(&g_ud_free_calls) == 0);
    t1 = now_ms();
    CHECK_OK(wtd_runtime_free(g_srt));
    fprintf(stderr, "server runtime freed in %lld ms\n", (long long)(now_ms() - t1));
    CHECK(atomic_load(&g_ud_free_calls) == 1);
    CHECK(atomic_load(&g_callbacks_after_free) == 0);
    pthread_mutex_lock(&g_srv.mu);
    CHECK(g_srv.bad_userdata == 0);
    for (int i = 0; i < MAX_RECS; i++)
        if (g_srv.recs[i].used && g_srv.recs[i].s) {
            fprintf(stderr, "note: server session %s never closed; freeing it\n", g_srv.recs[i].path);
            wtd_session_free(g_srv.recs[i].s);
            g_srv.recs[i].s = NULL;
        }
    pthread_mutex_unlock(&g_srv.mu);

done:
    fprintf(stderr, "total %lld ms\n", (long long)(now_ms() - t0));
    return harness_finish();
}
