/*
 * test_events.c: wtd_runtime_next_events, the batch form of the pull API (issue 14).
 *
 *  - arguments: NULL runtime / out_count / out_events are errors with a message;
 *    max_events 0 answers at once; nothing is written on a timeout; callback mode
 *    refuses
 *  - a batch is the queue in order: datagrams of two sessions interleaved come out in
 *    order per session, `max_events` at a time, and mixing batches with
 *    wtd_runtime_next_event keeps the sequence
 *  - each event is released once (an event copied before its release stays valid
 *    until the copy is released), and the rest of the array is left as it was
 *  - until released, a DATAGRAM event counts against its session's receive queue bound:
 *    the library drops (and counts) what does not fit, and taking events in a batch
 *    does not free their room before their release
 *  - readiness (datagram events off): wtd_session_notify_readable gives one
 *    DATAGRAMS_READY event once a datagram waits (at once if one does, one event for
 *    several calls), datagrams stay in the session's queue for wtd_session_recv*, and
 *    its errors (NULL, events on, closed and drained)
 */
#define HARNESS_ACCEPT_ALL_SERVER
#include "harness.h"

#define INV WTD_ERR_INVALID_ARGUMENT

/* Send `n` datagrams "<tag><i>" from the server's side of `slot`. */
static void send_tagged(slot_t *slot, char tag, int from, int n) {
    for (int i = from; i < from + n; i++) {
        char m[16];
        int len = snprintf(m, sizeof m, "%c%d", tag, i);
        CHECK_OK(wtd_session_send_wait(slot->session, U(m), (size_t)len, 5000));
    }
}

/* Wait (bounded) until `s` has received or dropped `want` datagrams in all. */
static wtd_session_stats wait_arrived(const wtd_session *s, uint64_t want) {
    wtd_session_stats st;
    memset(&st, 0, sizeof st);
    int64_t end = now_ms() + 5000;
    while (now_ms() < end && wtd_session_get_stats(s, &st) == WTD_OK &&
           st.datagrams_received + st.recv_dropped < want)
        sleep_ms(2);
    CHECK_U64(st.datagrams_received + st.recv_dropped, want);
    return st;
}

static int is_datagram(const wtd_event *ev, const wtd_session *s, char tag, int i) {
    char m[16];
    int len = snprintf(m, sizeof m, "%c%d", tag, i);
    return ev->kind == WTD_EVENT_DATAGRAM && ev->session == s && ev->len == (size_t)len &&
           memcmp(ev->data, m, (size_t)len) == 0;
}

static void test_arguments(void) {
    wtd_event evs[4];
    size_t n = 777;
    CHECK_RC(wtd_runtime_next_events(NULL, evs, 4, &n, 0), INV);
    CHECK_RC(wtd_runtime_next_events(g_crt, evs, 4, NULL, 0), INV);
    CHECK_RC(wtd_runtime_next_events(g_crt, NULL, 4, &n, 0), INV);
    CHECK(n == 777); /* outputs are written only on success */
    /* max_events 0: at once, nothing taken, out_events may be NULL. */
    CHECK_OK(wtd_runtime_next_events(g_crt, NULL, 0, &n, -1));
    CHECK(n == 0);
    /* Nothing queued: a timeout, and neither the count nor the array is written. */
    n = 777;
    memset(evs, 0x5A, sizeof evs);
    CHECK_RC(wtd_runtime_next_events(g_crt, evs, 4, &n, 0), WTD_ERR_TIMEOUT);
    CHECK_RC(wtd_runtime_next_events(g_crt, evs, 4, &n, 20), WTD_ERR_TIMEOUT);
    CHECK(n == 777);
    const unsigned char *raw = (const unsigned char *)evs;
    int untouched = 1;
    for (size_t i = 0; i < sizeof evs; i++) untouched &= raw[i] == 0x5A;
    CHECK(untouched);
    /* Callback mode: events go to the callback. */
    CHECK_RC(wtd_runtime_next_events(g_srt, evs, 4, &n, 0), WTD_ERR_INVALID_STATE);
}

/* Interleaved datagrams of two sessions: batches keep the queue order. */
static void test_order(wtd_client *client) {
    enum { N = 20 };
    slot_t *sa = NULL, *sb = NULL;
    wtd_session *a = open_session(client, "/order-a", &sa);
    wtd_session *b = open_session(client, "/order-b", &sb);
    if (!a || !b || !sa || !sb) goto out;
    for (int i = 0; i < N; i++) {
        send_tagged(sa, 'a', i, 1);
        send_tagged(sb, 'b', i, 1);
    }
    wait_arrived(a, N);
    wait_arrived(b, N);

    /* All 2N wait: a batch of 16 takes 16, in order; the rest comes in later calls. */
    wtd_event evs[2 * N + 4];
    memset(evs, 0, sizeof evs);
    wtd_event sentinel;
    memset(&sentinel, 0x3C, sizeof sentinel);
    evs[16] = sentinel;
    size_t got = 0, n = 0;
    if (CHECK_OK(wtd_runtime_next_events(g_crt, evs, 16, &n, 1000))) {
        CHECK(n == 16);
        CHECK(memcmp(&evs[16], &sentinel, sizeof sentinel) == 0); /* beyond max: untouched */
        got = n;
    }
    while (got < 2 * N) {
        if (!CHECK_OK(wtd_runtime_next_events(g_crt, evs + got, 2 * N + 4 - got, &n, 1000))) break;
        CHECK(n >= 1);
        got += n;
    }
    CHECK_U64(got, 2 * N);
    int ia = 0, ib = 0, in_order = 1;
    for (size_t k = 0; k < got; k++) {
        if (evs[k].session == a) {
            in_order &= is_datagram(&evs[k], a, 'a', ia++);
            in_order &= evs[k].userdata == NULL;
        } else {
            in_order &= is_datagram(&evs[k], b, 'b', ib++);
        }
    }
    CHECK(in_order);
    CHECK(ia == N && ib == N);

    /* An event copied before its release: the copy is released, once; its pointers were
     * valid until then.
     * (The two sessions' datagrams may arrive in either order: a's first is looked up.) */
    size_t fa = 0;
    while (fa + 1 < got && evs[fa].session != a) fa++;
    wtd_event copy = evs[fa];
    memset(&evs[fa], 0, sizeof evs[fa]); /* the original is no longer an event */
    CHECK(is_datagram(&copy, a, 'a', 0));
    wtd_event_release(&copy);
    CHECK(copy.kind == WTD_EVENT_NONE && copy.data == NULL && copy.internal == NULL);
    wtd_event_release(&copy); /* a released event: no-op */
    for (size_t k = 0; k < got; k++)
        if (k != fa) wtd_event_release(&evs[k]);
    CHECK(evs[fa == 0 ? 1 : 0].kind == WTD_EVENT_NONE);
    CHECK_RC(wtd_runtime_next_events(g_crt, evs, 4, &n, 0), WTD_ERR_TIMEOUT);

    /* The same datagrams through next_events(max 1) and next_event: the same sequence. */
    send_tagged(sa, 'a', 0, 3);
    wait_arrived(a, N + 3);
    wtd_event one;
    if (CHECK_OK(wtd_runtime_next_events(g_crt, &one, 1, &n, 1000))) {
        CHECK(n == 1 && is_datagram(&one, a, 'a', 0));
        wtd_event_release(&one);
    }
    for (int i = 1; i < 3; i++)
        if (CHECK_OK(wtd_runtime_next_event(g_crt, &one, 1000))) {
            CHECK(is_datagram(&one, a, 'a', i));
            wtd_event_release(&one);
        }
out:
    wtd_session_free(a);
    wtd_session_free(b);
}

/* A small receive queue (8): events taken in a batch keep their room until released. */
static void test_bound(void) {
    wtd_transport_config *t = NULL;
    CHECK_OK(wtd_transport_config_new(&t));
    CHECK_OK(wtd_transport_config_set_recv_queue(t, 8));
    wtd_client *client = make_client_on(g_crt, t, g_hash);
    wtd_transport_config_free(t);
    slot_t *slot = NULL;
    wtd_session *s = client ? open_session(client, "/bound", &slot) : NULL;
    if (!s || !slot) goto out;

    /* 20 sent while nobody pulls: 8 kept, 12 dropped and counted. */
    send_tagged(slot, 'x', 0, 20);
    wtd_session_stats st = wait_arrived(s, 20);
    CHECK_U64(st.datagrams_received, 8);
    CHECK_U64(st.recv_dropped, 12);
    wtd_event evs[32];
    size_t got = 0, n = 0;
    while (got < 8 && CHECK_OK(wtd_runtime_next_events(g_crt, evs + got, 32 - got, &n, 1000)))
        got += n;
    CHECK_U64(got, 8);
    int in_order = 1;
    for (size_t k = 0; k < got; k++) in_order &= is_datagram(&evs[k], s, 'x', (int)k);
    CHECK(in_order);

    /* Taken but not released: they still fill the queue, so 5 more are dropped. */
    send_tagged(slot, 'y', 0, 5);
    st = wait_arrived(s, 25);
    CHECK_U64(st.datagrams_received, 8);
    CHECK_U64(st.recv_dropped, 17);
    CHECK_RC(wtd_runtime_next_events(g_crt, evs + got, 32 - got, &n, 0), WTD_ERR_TIMEOUT);

    /* Released: room again. */
    for (size_t k = 0; k < got; k++) wtd_event_release(&evs[k]);
    send_tagged(slot, 'z', 0, 3);
    st = wait_arrived(s, 28);
    CHECK_U64(st.datagrams_received, 11);
    got = 0;
    while (got < 3 && CHECK_OK(wtd_runtime_next_events(g_crt, evs + got, 32 - got, &n, 1000)))
        got += n;
    CHECK_U64(got, 3);
    in_order = 1;
    for (size_t k = 0; k < got; k++) in_order &= is_datagram(&evs[k], s, 'z', (int)k);
    CHECK(in_order);
    for (size_t k = 0; k < got; k++) wtd_event_release(&evs[k]);
out:
    wtd_session_free(s);
    wtd_client_free(client);
}

/* The kind of the next event of g_crt within `ms` (NONE on a timeout) and its session; the event is released. */
static wtd_event_kind next_kind(int ms, wtd_session **session) {
    wtd_event ev;
    *session = NULL;
    if (wtd_runtime_next_event(g_crt, &ev, ms) != WTD_OK) return WTD_EVENT_NONE;
    wtd_event_kind k = ev.kind;
    *session = ev.session;
    wtd_event_release(&ev);
    return k;
}

/* Datagram events off: one DATAGRAMS_READY per wtd_session_notify_readable. */
static void test_readable(wtd_client *events_client) {
    wtd_transport_config *t = NULL;
    CHECK_OK(wtd_transport_config_new(&t));
    CHECK_OK(wtd_transport_config_set_datagram_events(t, false));
    wtd_client *client = make_client_on(g_crt, t, g_hash);
    wtd_transport_config_free(t);
    slot_t *slot = NULL, *eslot = NULL;
    wtd_session *s = client ? open_session(client, "/readable", &slot) : NULL;
    wtd_session *es = events_client ? open_session(events_client, "/readable-ev", &eslot) : NULL;
    wtd_session *who = NULL;
    if (!s || !slot || !es) goto out;

    CHECK_RC(wtd_session_notify_readable(NULL), INV);
    CHECK(strstr(wtd_last_error(), "session") != NULL);
    /* Datagram events on: the datagrams are events already. */
    CHECK_RC(wtd_session_notify_readable(es), WTD_ERR_INVALID_STATE);

    /* Nothing waits: no event until a datagram comes; two calls, one event. */
    CHECK_OK(wtd_session_notify_readable(s));
    CHECK_OK(wtd_session_notify_readable(s));
    CHECK(next_kind(50, &who) == WTD_EVENT_NONE);
    send_tagged(slot, 'r', 0, 3);
    CHECK(next_kind(5000, &who) == WTD_EVENT_DATAGRAMS_READY);
    CHECK(who == s);
    wait_arrived(s, 3);
    CHECK(next_kind(50, &who) == WTD_EVENT_NONE); /* one event, not one per datagram */
    /* The datagrams wait in the session's queue, in order. */
    uint8_t buf[32];
    size_t len = 0;
    CHECK_OK(wtd_session_recv(s, buf, sizeof buf, &len, 0));
    CHECK(len == 2 && memcmp(buf, "r0", 2) == 0);
    /* One waits now: the event comes at once. */
    CHECK_OK(wtd_session_notify_readable(s));
    CHECK(next_kind(1000, &who) == WTD_EVENT_DATAGRAMS_READY && who == s);
    size_t lens[4], n = 0;
    CHECK_OK(wtd_session_recv_multiple(s, buf, sizeof buf, lens, 4, &n, 0));
    CHECK(n == 2 && lens[0] == 2 && memcmp(buf, "r1r2", 4) == 0);
    CHECK_RC(wtd_session_recv(s, buf, sizeof buf, &len, 0), WTD_ERR_TIMEOUT);

    /* Closed by the peer with a datagram still queued: it is still announced and
     * received; once drained, CLOSED (and an event asked for before is dropped). */
    send_tagged(slot, 'q', 0, 1);
    wait_arrived(s, 4);
    CHECK_OK(wtd_session_close(slot->session, 7, U("bye"), 3));
    wtd_close_kind kind = WTD_CLOSE_NONE;
    int64_t end = now_ms() + 5000;
    while (now_ms() < end && kind == WTD_CLOSE_NONE) {
        wtd_event ev;
        if (wtd_runtime_next_event(g_crt, &ev, 100) != WTD_OK) continue;
        if (ev.kind == WTD_EVENT_SESSION_CLOSED && ev.session == s) kind = ev.close_kind;
        wtd_event_release(&ev);
    }
    CHECK(kind == WTD_CLOSE_REMOTE);
    CHECK_OK(wtd_session_notify_readable(s));
    CHECK(next_kind(1000, &who) == WTD_EVENT_DATAGRAMS_READY && who == s);
    CHECK_OK(wtd_session_recv(s, buf, sizeof buf, &len, 0));
    CHECK(len == 2 && memcmp(buf, "q0", 2) == 0);
    CHECK_RC(wtd_session_notify_readable(s), WTD_ERR_CLOSED);
    CHECK_RC(wtd_session_recv(s, buf, sizeof buf, &len, 0), WTD_ERR_CLOSED);
out:
    wtd_session_free(es);
    wtd_session_free(s);
    wtd_client_free(client);
}

int main(void) {
    harness_begin("test_events", 120);
    if (!start_endpoints()) return harness_finish();
    test_arguments();
    wtd_client *client = make_client(NULL);
    if (CHECK(client != NULL)) test_order(client);
    test_bound();
    test_readable(client);
    stop_endpoints(client);
    return harness_finish();
}
