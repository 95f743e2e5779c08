/*
 * test_broadcast: the broadcaster (wtd_broadcaster_*) through the C ABI, across real
 * loopback sessions. The server runtime (callback mode) accepts every session; the
 * broadcaster sends to the server-side sessions (and one server-side stream); the client
 * runtime is in pull mode and counts the DATAGRAM events of each client session.
 *
 *  A. bad arguments (NULL handles/outputs, bad priority, NOT_FOUND)
 *  B. broadcast to several sessions: every accepted datagram reaches every peer
 *  C. a stream member: accepted, leaves after wtd_stream_free
 *  D. sessions leave by themselves when closed here or by the peer
 *  E. remove, shutdown (empties the set, refuses new members)
 *
 * Every wait has a bound; a watchdog (WTD_TEST_WATCHDOG seconds, default 60, 0 = off)
 * aborts if something hangs anyway. The last line is "N passed, M failed".
 */
#define _POSIX_C_SOURCE 200809L
#define HARNESS_ACCEPT_ALL_SERVER
#include "harness.h"

/* ------------------------------------------------------------------------------------ */
/* Cases                                                                                 */

#define K 4

static wtd_session *g_cs[K + 1]; /* client sessions; [K] carries the server-side stream */
static int g_got[K + 1];         /* DATAGRAM events per client session */

/* Pull client events until every open session in `want_mask` has `want` datagrams
 * (bounded by `ms`). */
static int pull_until(unsigned want_mask, int want, int ms) {
    int64_t end = now_ms() + ms;
    for (;;) {
        int done = 1;
        for (int i = 0; i <= K; i++)
            if ((want_mask >> i & 1u) && g_got[i] < want) done = 0;
        if (done) return 1;
        int64_t left = end - now_ms();
        if (left <= 0) return 0;
        wtd_event ev;
        wtd_result r = wtd_runtime_next_event(g_crt, &ev, (int32_t)left);
        if (r == WTD_ERR_TIMEOUT) return 0;
        if (!CHECK_OK(r)) return 0;
        if (ev.kind == WTD_EVENT_DATAGRAM)
            for (int i = 0; i <= K; i++)
                if (ev.session == g_cs[i]) g_got[i]++;
        wtd_event_release(&ev);
    }
}

static void case_a_arguments(wtd_broadcaster *b, wtd_session *member, wtd_session *other) {
    wtd_broadcaster *x = NULL;
    size_t n = 99;
    CHECK_RC(wtd_broadcaster_new(NULL, &x), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_broadcaster_new(g_srt, NULL), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_broadcaster_add_session(NULL, member), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_broadcaster_add_session(b, NULL), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_broadcaster_remove_session(b, NULL), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_broadcaster_remove_session(b, other), WTD_ERR_NOT_FOUND);
    CHECK_RC(wtd_broadcaster_add_stream(b, NULL), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_broadcaster_remove_stream(NULL, NULL), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_broadcaster_broadcast(NULL, (const uint8_t *)"x", 1, 0, 0, &n), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_broadcaster_broadcast(b, NULL, 5, 0, 0, &n), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_broadcaster_broadcast(b, (const uint8_t *)"x", 1, 3, 0, &n), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_broadcaster_shutdown(NULL), WTD_ERR_INVALID_ARGUMENT);
    CHECK_U64(wtd_broadcaster_session_count(NULL), 0);
    CHECK_U64(wtd_broadcaster_stream_count(NULL), 0);
    wtd_broadcaster_free(NULL);
}

static void run(wtd_client *client) {
    slot_t *slot[K + 1];
    char path[32];
    for (int i = 0; i <= K; i++) {
        snprintf(path, sizeof path, "/b/%d", i);
        g_cs[i] = open_session(client, path, &slot[i]);
        if (!g_cs[i] || !slot[i]) return;
    }
    wtd_broadcaster *b = NULL;
    if (!CHECK_OK(wtd_broadcaster_new(g_srt, &b)) || !b) return;
    CHECK_U64(wtd_broadcaster_session_count(b), 0);

    /* B. K sessions. */
    for (int i = 0; i < K; i++) CHECK_OK(wtd_broadcaster_add_session(b, slot[i]->session));
    CHECK_OK(wtd_broadcaster_add_session(b, slot[0]->session)); /* again: no-op */
    CHECK_U64(wtd_broadcaster_session_count(b), K);
    case_a_arguments(b, slot[0]->session, slot[K]->session);

    unsigned all = (1u << K) - 1;
    for (int i = 0; i < 5; i++) {
        char d[32];
        int len = snprintf(d, sizeof d, "broadcast %d", i);
        size_t n = 0;
        CHECK_OK(wtd_broadcaster_broadcast(b, (const uint8_t *)d, (size_t)len, 1, 0, &n));
        CHECK_U64(n, K);
    }
    CHECK(pull_until(all, 5, 5000));
    for (int i = 0; i < K; i++) CHECK_U64(g_got[i], 5);
    CHECK_U64(g_got[K], 0);
    CHECK_OK(wtd_broadcaster_broadcast(b, NULL, 0, 0, 0, NULL)); /* empty, no output */
    CHECK(pull_until(all, 6, 5000));

    /* C. A stream member on the fifth server session. */
    wtd_stream *st = NULL;
    if (CHECK_OK(wtd_stream_new(slot[K]->session, NULL, &st)) && st) {
        CHECK_OK(wtd_broadcaster_add_stream(b, st));
        CHECK_U64(wtd_broadcaster_stream_count(b), 1);
        size_t n = 0;
        CHECK_OK(wtd_broadcaster_broadcast(b, (const uint8_t *)"with stream", 11, 2, 5000, &n));
        CHECK_U64(n, K + 1);
        CHECK(pull_until(all, 7, 5000));
        CHECK(pull_until(1u << K, 1, 5000));
        CHECK_RC(wtd_broadcaster_remove_stream(b, st), WTD_OK);
        CHECK_RC(wtd_broadcaster_remove_stream(b, st), WTD_ERR_NOT_FOUND);
        CHECK_OK(wtd_broadcaster_add_stream(b, st));
        wtd_stream_free(st); /* closes it: it leaves at the next broadcast */
        CHECK_OK(wtd_broadcaster_broadcast(b, (const uint8_t *)"no stream", 9, 0, 0, &n));
        CHECK_U64(n, K);
        CHECK_U64(wtd_broadcaster_stream_count(b), 0);
        CHECK(pull_until(all, 8, 5000));
    }

    /* D. Closed here: leaves at once. Closed by the peer: leaves when the close arrives. */
    CHECK_OK(wtd_session_close(slot[1]->session, 0, NULL, 0));
    CHECK_U64(wtd_broadcaster_session_count(b), K - 1);
    size_t n = 0;
    CHECK_OK(wtd_broadcaster_broadcast(b, (const uint8_t *)"three", 5, 0, 0, &n));
    CHECK_U64(n, K - 1);
    CHECK_RC(wtd_broadcaster_add_session(b, slot[1]->session), WTD_ERR_CLOSED);
    CHECK_OK(wtd_session_close(g_cs[2], 0, (const uint8_t *)"bye", 3));
    int64_t end = now_ms() + 5000;
    while (wtd_broadcaster_session_count(b) != K - 2 && now_ms() < end) sleep_ms(2);
    CHECK_U64(wtd_broadcaster_session_count(b), K - 2);
    CHECK_OK(wtd_broadcaster_broadcast(b, (const uint8_t *)"two", 3, 0, 0, &n));
    CHECK_U64(n, K - 2);
    CHECK(pull_until(1u << 0 | 1u << 3, 10, 5000));

    /* E. Remove, shutdown. */
    CHECK_OK(wtd_broadcaster_remove_session(b, slot[3]->session));
    CHECK_RC(wtd_broadcaster_remove_session(b, slot[3]->session), WTD_ERR_NOT_FOUND);
    CHECK_U64(wtd_broadcaster_session_count(b), 1);
    CHECK_OK(wtd_broadcaster_shutdown(b));
    CHECK_U64(wtd_broadcaster_session_count(b), 0);
    n = 99;
    CHECK_OK(wtd_broadcaster_broadcast(b, (const uint8_t *)"none", 4, 0, 0, &n));
    CHECK_U64(n, 0);
    CHECK_RC(wtd_broadcaster_add_session(b, slot[0]->session), WTD_ERR_INVALID_STATE);
    CHECK(!wtd_session_is_closed(slot[0]->session));
    wtd_broadcaster_free(b);
}

int main(void) {
    harness_begin("test_broadcast", 60);
    wtd_client *client = NULL;
    if (start_endpoints()) {
        client = make_client(NULL);
        if (CHECK(client != NULL)) run(client);
    }
    for (int i = 0; i <= K; i++) {
        wtd_session_free(g_cs[i]);
        g_cs[i] = NULL;
    }
    stop_endpoints(client);
    return harness_finish();
}
