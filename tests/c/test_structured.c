/*
 * test_structured: structured objects over datagrams (wtd_structured_*) through the C
 * ABI, across real loopback sessions. The server runtime is in callback mode: its
 * callback accepts every session and creates the server-side transport on it (JSON for
 * paths under /json/, compact JSON under /jsonc/, MessagePack under /msgpack/),
 * registers type ids 1 and 2 and an
 * error callback; the main thread then reads those transports. The client runtime is in
 * pull mode.
 *
 *  A. NULL handles/outputs and bad values -> WTD_ERR_INVALID_ARGUMENT
 *  B. JSON round trip (re-emitted as pywebtransport's JSONSerializer writes it: Python's
 *     default separators, ensure_ascii), BUFFER_TOO_SMALL keeps the object, invalid
 *     JSON and unregistered ids rejected, one owner per session; B2: the compact
 *     separators of WTD_SERIALIZER_JSON_COMPACT
 *  C. MessagePack round trip (sent unchanged), invalid MessagePack rejected
 *  D. malformed datagrams from a raw peer session: counted, reported by next_error and
 *     by the error callback, and the next valid object still arrives; userdata_free
 *     runs exactly once
 *
 * Every wait has a bound; nothing asserts on elapsed time. A watchdog
 * (WTD_TEST_WATCHDOG seconds, default 60, 0 = off) aborts if something hangs anyway.
 * The last line is "N passed, M failed".
 */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"

#define CHECK_BYTES(buf, len, lit) \
    check_impl((len) == sizeof(lit) - 1 && memcmp((buf), (lit), sizeof(lit) - 1) == 0, \
               #buf " == " #lit, __FILE__, __LINE__)

/* ------------------------------------------------------------------------------------ */
/* Server side: callback mode                                                            */

#define MAX_SLOTS 16

typedef struct {
    atomic_int calls;     /* error callbacks */
    atomic_int frees;     /* userdata_free calls */
    atomic_int last_kind; /* kind of the last reported error */
} errcb_t;

typedef struct {
    int used;
    char path[128];
    wtd_session *session;
    wtd_structured *st;
    errcb_t cb;
    int closed;
} slot_t;

static struct {
    pthread_mutex_t mu;
    slot_t slots[MAX_SLOTS];
} g_srv = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void on_struct_error(const wtd_structured_error *e, void *userdata) {
    errcb_t *cb = userdata;
    atomic_store(&cb->last_kind, (int)e->kind);
    atomic_fetch_add(&cb->calls, 1);
}

static void free_errcb(void *userdata) {
    errcb_t *cb = userdata;
    atomic_fetch_add(&cb->frees, 1);
}

static void on_request(const wtd_event *ev) {
    wtd_session_request *req = ev->request;
    const char *p = wtd_session_request_path(req);
    if (!CHECK(p != NULL)) {
        wtd_session_request_free(req);
        return;
    }
    char path[128];
    snprintf(path, sizeof path, "%s", p);
    wtd_session *s = NULL;
    if (!CHECK_OK(wtd_session_request_accept(req, &s)) || !s) return;
    pthread_mutex_lock(&g_srv.mu);
    slot_t *slot = NULL;
    for (int i = 0; i < MAX_SLOTS; i++)
        if (!g_srv.slots[i].used) {
            slot = &g_srv.slots[i];
            break;
        }
    pthread_mutex_unlock(&g_srv.mu);
    if (!CHECK(slot != NULL)) return;
    memset(slot, 0, sizeof *slot);
    wtd_structured *st = NULL;
    wtd_serializer kind = strncmp(path, "/msgpack/", 9) == 0  ? WTD_SERIALIZER_MSGPACK
                          : strncmp(path, "/jsonc/", 7) == 0 ? WTD_SERIALIZER_JSON_COMPACT
                                                             : WTD_SERIALIZER_JSON;
    /* Created inside the callback, before the session's first datagram can arrive. */
    if (CHECK_OK(wtd_structured_new(s, kind, 100, &st)) && CHECK(st != NULL)) {
        CHECK_OK(wtd_structured_register_type(st, 1));
        CHECK_OK(wtd_structured_register_type(st, 2));
        CHECK_OK(wtd_structured_set_error_callback(st, on_struct_error, &slot->cb, free_errcb));
    }
    pthread_mutex_lock(&g_srv.mu);
    snprintf(slot->path, sizeof slot->path, "%s", path);
    slot->session = s;
    slot->st = st;
    slot->used = 1; /* published last */
    pthread_mutex_unlock(&g_srv.mu);
    CHECK_OK(wtd_session_set_userdata(s, slot));
}

static void on_closed(const wtd_event *ev) {
    slot_t *slot = ev->userdata;
    if (!slot) return;
    pthread_mutex_lock(&g_srv.mu);
    slot->closed = 1;
    pthread_mutex_unlock(&g_srv.mu);
}

static void on_server_event(const wtd_event *ev, void *userdata) {
    (void)userdata;
    switch (ev->kind) {
    case WTD_EVENT_SESSION_REQUEST: on_request(ev); break;
    case WTD_EVENT_SESSION_CLOSED: on_closed(ev); break;
    default: break; /* no DATAGRAM events: every session has a transport */
    }
}

static slot_t *wait_slot(const char *path, int ms) {
    int64_t end = now_ms() + ms;
    do {
        slot_t *found = NULL;
        pthread_mutex_lock(&g_srv.mu);
        for (int i = 0; i < MAX_SLOTS; i++)
            if (g_srv.slots[i].used && strcmp(g_srv.slots[i].path, path) == 0) found = &g_srv.slots[i];
        pthread_mutex_unlock(&g_srv.mu);
        if (found) return found;
        sleep_ms(2);
    } while (now_ms() < end);
    return NULL;
}

/* ------------------------------------------------------------------------------------ */
/* Client side                                                                           */

/* A client session at `path` and the server's slot for it (with its transport). */
static int open_session(wtd_client *client, const char *path, wtd_session **out_s,
                        slot_t **out_slot) {
    char u[160];
    snprintf(u, sizeof u, "https://127.0.0.1:%u%s", (unsigned)g_port, path);
    *out_s = NULL;
    *out_slot = NULL;
    if (!CHECK_OK(wtd_client_open_session(client, u, NULL, 0, 10000, out_s)) || !*out_s) return 0;
    *out_slot = wait_slot(path, 5000);
    if (!CHECK(*out_slot != NULL)) return 0;
    return CHECK((*out_slot)->st != NULL);
}

/* ------------------------------------------------------------------------------------ */
/* A. arguments                                                                          */

static void case_a_arguments(void) {
    wtd_structured *st = (wtd_structured *)0x1;
    uint16_t id = 0;
    uint8_t buf[8];
    size_t len = 0;
    wtd_structured_error err;
    wtd_structured_stats stats;
    errcb_t cb = {0};

    CHECK_RC(wtd_structured_new(NULL, WTD_SERIALIZER_JSON, 100, &st), WTD_ERR_INVALID_ARGUMENT);
    CHECK(st == (wtd_structured *)0x1);
    CHECK_RC(wtd_structured_send(NULL, 1, U("{}"), 2), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_structured_receive(NULL, &id, buf, sizeof buf, &len, 0), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_structured_next_error(NULL, &err, 0), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_structured_register_type(NULL, 1), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_structured_get_stats(NULL, &stats), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_structured_close(NULL), WTD_ERR_INVALID_ARGUMENT);
    /* Refused: the userdata is freed at once (exactly once). */
    CHECK_RC(wtd_structured_set_error_callback(NULL, on_struct_error, &cb, free_errcb),
             WTD_ERR_INVALID_ARGUMENT);
    CHECK(atomic_load(&cb.frees) == 1);
    CHECK(!wtd_structured_is_closed(NULL));
    CHECK(!wtd_structured_is_registered(NULL, 1));
    wtd_structured_free(NULL);
}

/* Arguments that need a live transport. */
static void case_a_live_arguments(wtd_session *s, wtd_structured *st) {
    uint16_t id = 0;
    uint8_t buf[8];
    size_t len = 0;
    wtd_structured *other = NULL;
    CHECK_RC(wtd_structured_new(s, WTD_SERIALIZER_JSON, 100, NULL), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_structured_new(s, WTD_SERIALIZER_JSON, 0, &other), WTD_ERR_INVALID_ARGUMENT);
    CHECK(other == NULL);
    CHECK_RC(wtd_structured_send(st, 1, NULL, 2), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_structured_receive(st, NULL, buf, sizeof buf, &len, 0), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_structured_receive(st, &id, buf, sizeof buf, NULL, 0), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_structured_next_error(st, NULL, 0), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_structured_get_stats(st, NULL), WTD_ERR_INVALID_ARGUMENT);
}

/* ------------------------------------------------------------------------------------ */
/* B. JSON                                                                               */

static void case_b_json(wtd_client *client) {
    wtd_session *s = NULL;
    slot_t *slot = NULL;
    if (!open_session(client, "/json/1", &s, &slot)) goto out;
    wtd_structured *st = NULL;
    if (!CHECK_OK(wtd_structured_new(s, WTD_SERIALIZER_JSON, 100, &st)) || !st) goto out;
    case_a_live_arguments(s, st);

    /* One owner per session. */
    wtd_structured *second = NULL;
    CHECK_RC(wtd_structured_new(s, WTD_SERIALIZER_MSGPACK, 100, &second), WTD_ERR_INVALID_STATE);
    CHECK(second == NULL);
    wtd_stream *stream = NULL;
    CHECK_RC(wtd_stream_new(s, NULL, &stream), WTD_ERR_INVALID_STATE);

    /* Unregistered ids and invalid JSON. */
    CHECK_RC(wtd_structured_send(st, 1, U("{}"), 2), WTD_ERR_INVALID_ARGUMENT);
    CHECK_OK(wtd_structured_register_type(st, 1));
    CHECK_OK(wtd_structured_register_type(st, 2));
    CHECK_RC(wtd_structured_register_type(st, 2), WTD_ERR_INVALID_ARGUMENT);
    CHECK(wtd_structured_is_registered(st, 2));
    CHECK(!wtd_structured_is_registered(st, 7));
    CHECK_RC(wtd_structured_send(st, 7, U("{}"), 2), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_structured_send(st, 1, U("{nope"), 5), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_structured_send(st, 1, U("{} x"), 4), WTD_ERR_INVALID_ARGUMENT);

    /* Round trip: re-emitted as pywebtransport's JSONSerializer writes it, Python's
     * json.dumps(obj) with its default separators (", ", ": "), members in order. */
    const char *obj = "{ \"name\" : \"\xc3\xa9\", \"x\" : 1, \"f\": [1.0, 1e16] }";
    CHECK_OK(wtd_structured_send(st, 1, U(obj), strlen(obj)));
    uint16_t id = 0;
    uint8_t buf[256];
    size_t len = 0;
    /* Too small: stays queued, sizes reported. */
    CHECK_RC(wtd_structured_receive(slot->st, &id, buf, 4, &len, 5000), WTD_ERR_BUFFER_TOO_SMALL);
    static const char want[] = "{\"name\": \"\\u00e9\", \"x\": 1, \"f\": [1.0, 1e+16]}";
    CHECK_U64(len, sizeof want - 1);
    CHECK_U64(id, 1);
    id = 0;
    if (CHECK_OK(wtd_structured_receive(slot->st, &id, buf, sizeof buf, &len, 5000))) {
        CHECK_U64(id, 1);
        CHECK_BYTES(buf, len, want);
    }
    /* And back. */
    const char *back = "[1, \"\xe2\x82\xac\", null]";
    CHECK_OK(wtd_structured_send(slot->st, 2, U(back), strlen(back)));
    if (CHECK_OK(wtd_structured_receive(st, &id, buf, sizeof buf, &len, 5000))) {
        CHECK_U64(id, 2);
        CHECK_BYTES(buf, len, "[1, \"\\u20ac\", null]");
    }
    CHECK_RC(wtd_structured_receive(st, &id, buf, sizeof buf, &len, 0), WTD_ERR_TIMEOUT);
    CHECK_RC(wtd_structured_receive(st, &id, buf, sizeof buf, &len, 20), WTD_ERR_TIMEOUT);

    wtd_structured_stats a, b;
    CHECK_OK(wtd_structured_get_stats(st, &a));
    CHECK_OK(wtd_structured_get_stats(slot->st, &b));
    CHECK_U64(a.sent, 1);
    CHECK_U64(a.received, 1);
    CHECK_U64(b.sent, 1);
    CHECK_U64(b.received, 1);
    CHECK_U64(b.unknown_type + b.too_short + b.decode_errors + b.queue_drops, 0);

    /* Close. */
    CHECK(!wtd_structured_is_closed(st));
    CHECK_OK(wtd_structured_close(st));
    CHECK(wtd_structured_is_closed(st));
    CHECK_RC(wtd_structured_send(st, 1, U("{}"), 2), WTD_ERR_CLOSED);
    CHECK_RC(wtd_structured_receive(st, &id, buf, sizeof buf, &len, 100), WTD_ERR_CLOSED);
    wtd_structured_free(st);
out:
    wtd_session_free(s);
}

/* B2. WTD_SERIALIZER_JSON_COMPACT: separators (",", ":") both ways. */
static void case_b2_json_compact(wtd_client *client) {
    wtd_session *s = NULL;
    slot_t *slot = NULL;
    if (!open_session(client, "/jsonc/1", &s, &slot)) goto out;
    wtd_structured *st = NULL;
    if (!CHECK_OK(wtd_structured_new(s, WTD_SERIALIZER_JSON_COMPACT, 100, &st)) || !st) goto out;
    CHECK_OK(wtd_structured_register_type(st, 1));
    /* json.dumps(json.loads(obj), separators=(",", ":")) */
    const char *obj = "{\"zeta\": 0.00001, \"alpha\": [NaN, Infinity], \"k\": \"\xc3\xa9\", \"zeta\": 2}";
    CHECK_OK(wtd_structured_send(st, 1, U(obj), strlen(obj)));
    uint16_t id = 0;
    uint8_t buf[256];
    size_t len = 0;
    if (CHECK_OK(wtd_structured_receive(slot->st, &id, buf, sizeof buf, &len, 5000))) {
        CHECK_U64(id, 1);
        CHECK_BYTES(buf, len, "{\"zeta\":2,\"alpha\":[NaN,Infinity],\"k\":\"\\u00e9\"}");
    }
    const char *back = "[1.5, {\"b\": null, \"a\": true}]";
    CHECK_OK(wtd_structured_send(slot->st, 1, U(back), strlen(back)));
    if (CHECK_OK(wtd_structured_receive(st, &id, buf, sizeof buf, &len, 5000)))
        CHECK_BYTES(buf, len, "[1.5,{\"b\":null,\"a\":true}]");
    wtd_structured_free(st);
out:
    wtd_session_free(s);
}

/* ------------------------------------------------------------------------------------ */
/* C. MessagePack                                                                        */

static void case_c_msgpack(wtd_client *client) {
    wtd_session *s = NULL;
    slot_t *slot = NULL;
    if (!open_session(client, "/msgpack/1", &s, &slot)) goto out;
    wtd_structured *st = NULL;
    if (!CHECK_OK(wtd_structured_new(s, WTD_SERIALIZER_MSGPACK, 100, &st)) || !st) goto out;
    CHECK_OK(wtd_structured_register_type(st, 1));
    CHECK_OK(wtd_structured_register_type(st, 2));
    /* msgpack.packb({"name": "é", "x": 1}) */
    static const uint8_t obj[] = {0x82, 0xa4, 'n', 'a', 'm', 'e', 0xa2, 0xc3, 0xa9, 0xa1, 'x', 0x01};
    CHECK_OK(wtd_structured_send(st, 1, obj, sizeof obj));
    uint16_t id = 0;
    uint8_t buf[64];
    size_t len = 0;
    if (CHECK_OK(wtd_structured_receive(slot->st, &id, buf, sizeof buf, &len, 5000))) {
        CHECK_U64(id, 1);
        CHECK(len == sizeof obj && memcmp(buf, obj, len) == 0);
    }
    /* A float32 is sent unchanged (not widened). */
    static const uint8_t f32[] = {0x81, 0xa2, 't', 's', 0xca, 0x3f, 0xc0, 0x00, 0x00};
    CHECK_OK(wtd_structured_send(slot->st, 2, f32, sizeof f32));
    if (CHECK_OK(wtd_structured_receive(st, &id, buf, sizeof buf, &len, 5000))) {
        CHECK_U64(id, 2);
        CHECK(len == sizeof f32 && memcmp(buf, f32, len) == 0);
    }
    static const uint8_t bad[] = {0xc1};
    static const uint8_t truncated[] = {0x92, 0x01};
    static const uint8_t trailing[] = {0x01, 0x02};
    CHECK_RC(wtd_structured_send(st, 1, bad, sizeof bad), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_structured_send(st, 1, truncated, sizeof truncated), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_structured_send(st, 1, trailing, sizeof trailing), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_structured_send(st, 3, obj, sizeof obj), WTD_ERR_INVALID_ARGUMENT);
    wtd_structured_stats a;
    CHECK_OK(wtd_structured_get_stats(st, &a));
    CHECK_U64(a.sent, 1);
    CHECK_U64(a.received, 1);
    wtd_structured_free(st);
out:
    wtd_session_free(s);
}

/* ------------------------------------------------------------------------------------ */
/* D. malformed input from a raw peer                                                    */

static int wait_calls(errcb_t *cb, int n, int ms) {
    int64_t end = now_ms() + ms;
    while (atomic_load(&cb->calls) < n && now_ms() < end) sleep_ms(2);
    return atomic_load(&cb->calls);
}

static void case_d_malformed(wtd_client *client) {
    wtd_session *s = NULL; /* raw: no transport on the client side */
    slot_t *slot = NULL;
    if (!open_session(client, "/json/raw", &s, &slot)) goto out;
    wtd_structured *st = slot->st;
    CHECK_OK(wtd_session_send_wait(s, U("\x04\x44zz"), 4, 2000));     /* unknown id 0x0444 */
    CHECK_OK(wtd_session_send_wait(s, U("\x01"), 1, 2000));           /* too short */
    CHECK_OK(wtd_session_send_wait(s, U("\x00\x01{bad"), 6, 2000));   /* undecodable */
    CHECK_OK(wtd_session_send_wait(s, U("\x00\x01{\"a\":1}"), 9, 2000)); /* valid */

    uint16_t id = 0;
    uint8_t buf[64];
    size_t len = 0;
    if (CHECK_OK(wtd_structured_receive(st, &id, buf, sizeof buf, &len, 5000))) {
        CHECK_U64(id, 1);
        CHECK_BYTES(buf, len, "{\"a\":1}");
    }
    wtd_structured_error e;
    memset(&e, 0xff, sizeof e);
    if (CHECK_OK(wtd_structured_next_error(st, &e, 5000))) {
        CHECK(e.kind == WTD_STRUCTURED_UNKNOWN_TYPE);
        CHECK(e.has_type_id);
        CHECK_U64(e.type_id, 0x0444);
        CHECK_U64(e.size, 4);
        CHECK(memchr(e.message, 0, sizeof e.message) != NULL && e.message[0] != 0);
    }
    if (CHECK_OK(wtd_structured_next_error(st, &e, 5000))) {
        CHECK(e.kind == WTD_STRUCTURED_TOO_SHORT);
        CHECK(!e.has_type_id);
        CHECK_U64(e.type_id, 0);
        CHECK_U64(e.size, 1);
    }
    if (CHECK_OK(wtd_structured_next_error(st, &e, 5000))) {
        CHECK(e.kind == WTD_STRUCTURED_DECODE_ERROR);
        CHECK_U64(e.type_id, 1);
        CHECK_U64(e.size, 6);
    }
    CHECK_RC(wtd_structured_next_error(st, &e, 0), WTD_ERR_TIMEOUT);
    CHECK_RC(wtd_structured_next_error(st, &e, 20), WTD_ERR_TIMEOUT);
    CHECK_U64(wait_calls(&slot->cb, 3, 5000), 3);
    CHECK(atomic_load(&slot->cb.last_kind) == (int)WTD_STRUCTURED_DECODE_ERROR);

    wtd_structured_stats stats;
    CHECK_OK(wtd_structured_get_stats(st, &stats));
    CHECK_U64(stats.received, 1);
    CHECK_U64(stats.unknown_type, 1);
    CHECK_U64(stats.too_short, 1);
    CHECK_U64(stats.decode_errors, 1);

    /* Still working. */
    CHECK_OK(wtd_session_send_wait(s, U("\x00\x02[]"), 4, 2000));
    if (CHECK_OK(wtd_structured_receive(st, &id, buf, sizeof buf, &len, 5000))) {
        CHECK_U64(id, 2);
        CHECK_BYTES(buf, len, "[]");
    }
    CHECK(!wtd_structured_is_closed(st));

    /* Replacing the callback frees the old userdata once; the new one gets reports. */
    errcb_t cb2 = {0};
    CHECK_OK(wtd_structured_set_error_callback(st, on_struct_error, &cb2, free_errcb));
    CHECK(atomic_load(&slot->cb.frees) == 1);
    CHECK_OK(wtd_session_send_wait(s, U("\x09\x09{}"), 4, 2000));
    CHECK_U64(wait_calls(&cb2, 1, 5000), 1);
    CHECK(atomic_load(&cb2.last_kind) == (int)WTD_STRUCTURED_UNKNOWN_TYPE);
    CHECK_U64(atomic_load(&slot->cb.calls), 3);
    /* Freeing the transport frees the callback's userdata exactly once. */
    pthread_mutex_lock(&g_srv.mu);
    slot->st = NULL;
    pthread_mutex_unlock(&g_srv.mu);
    wtd_structured_free(st);
    int64_t end = now_ms() + 5000;
    while (atomic_load(&cb2.frees) < 1 && now_ms() < end) sleep_ms(2);
    sleep_ms(20);
    CHECK(atomic_load(&cb2.frees) == 1);
    CHECK(atomic_load(&slot->cb.frees) == 1);
out:
    wtd_session_free(s);
}

/* ------------------------------------------------------------------------------------ */

int main(void) {
    harness_begin("test_structured", 60);
    fprintf(stderr, "libwtdatagram %s\n", wtd_version());

    case_a_arguments();

    wtd_client *client = NULL;
    switch (harness_start_fixture(on_server_event)) {
    case 0: goto done;
    case 1: goto free_srt;
    case 2: goto free_server;
    default: break;
    }
    client = make_client(NULL);
    if (CHECK(client != NULL)) {
        case_b_json(client);
        case_b2_json_compact(client);
        case_c_msgpack(client);
        case_d_malformed(client);
    }
    wtd_client_free(client);
    CHECK_OK(wtd_runtime_free(g_crt));
    g_crt = NULL;

free_server:
    wtd_server_free(g_server);
    g_server = NULL;
    /* Server-side transports first (each frees its callback userdata), then sessions. */
    for (int i = 0; i < MAX_SLOTS; i++) {
        slot_t *sl = &g_srv.slots[i];
        if (!sl->used) continue;
        wtd_structured_free(sl->st);
        sl->st = NULL;
    }
free_srt:
    CHECK_OK(wtd_runtime_free(g_srt));
    g_srt = NULL;
    for (int i = 0; i < MAX_SLOTS; i++) {
        slot_t *sl = &g_srv.slots[i];
        if (!sl->used) continue;
        CHECK_U64(atomic_load(&sl->cb.frees), 1); /* userdata_free exactly once */
        wtd_session_free(sl->session);
        sl->session = NULL;
    }

done:;
    return harness_finish();
}
