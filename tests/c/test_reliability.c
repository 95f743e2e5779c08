/*
 * test_reliability: the reliability layer (wtd_reliability_*) through the C ABI, across a
 * real loopback session. The server runtime is in callback mode: its callback accepts
 * every session and creates a server-side reliability layer with a report callback on
 * it. The client runtime is in pull mode.
 *
 *  A. bad arguments (NULL handles/outputs, option ranges)
 *  B. 200 messages each way, each received exactly once with its content, every report
 *     Delivered, the report callback called once per report, consistent stats
 *  C. one owner per session (INVALID_STATE), BUFFER_TOO_SMALL keeps the message,
 *     timeouts, userdata_free exactly once on replace and on free, close
 *
 * Every wait has a bound; nothing asserts on elapsed time. A watchdog
 * (WTD_TEST_WATCHDOG seconds, default 60, 0 = off) aborts if something hangs anyway.
 * The last line is "N passed, M failed".
 */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"

#define N 200

/* ------------------------------------------------------------------------------------ */
/* Server side: callback mode                                                            */

typedef struct {
    atomic_int calls;       /* report callback calls */
    atomic_int delivered;   /* ... with WTD_DELIVERY_DELIVERED */
    atomic_int frees;       /* userdata_free calls */
    atomic_int bad;         /* calls with a bad report */
    unsigned char seen[N];  /* report ids seen by the callback (ids 0..N-1) */
} report_counter;

static report_counter g_cb1, g_cb2;

static void on_report(const wtd_delivery_report *r, void *userdata) {
    report_counter *c = userdata;
    if (!r) {
        atomic_fetch_add(&c->bad, 1);
        return;
    }
    if (r->id < N) c->seen[r->id]++;
    else atomic_fetch_add(&c->bad, 1);
    if (r->outcome == WTD_DELIVERY_DELIVERED && r->attempts >= 1) atomic_fetch_add(&c->delivered, 1);
    atomic_fetch_add(&c->calls, 1);
}

static void free_counter(void *userdata) {
    report_counter *c = userdata;
    atomic_fetch_add(&c->frees, 1);
}

static struct {
    pthread_mutex_t mu;
    wtd_session *session;
    wtd_reliability *layer;
    int second_layer_rc;
    int stream_rc;
} g_srv = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void on_server_event(const wtd_event *ev, void *userdata) {
    (void)userdata;
    if (ev->kind != WTD_EVENT_SESSION_REQUEST) return;
    wtd_session *s = NULL;
    if (!CHECK_OK(wtd_session_request_accept(ev->request, &s)) || !s) return;
    wtd_reliability_config *cfg = NULL;
    CHECK_OK(wtd_reliability_config_new(&cfg));
    CHECK_OK(wtd_reliability_config_set_ack_timeout(cfg, 200));
    CHECK_OK(wtd_reliability_config_set_max_retries(cfg, 20));
    CHECK_OK(wtd_reliability_config_set_window(cfg, 64));
    wtd_reliability *r = NULL;
    CHECK_OK(wtd_reliability_new(s, cfg, &r));
    wtd_reliability_config_free(cfg);
    /* One owner per session: neither a second layer nor a stream. */
    wtd_reliability *r2 = NULL;
    wtd_stream *st = NULL;
    int rc2 = wtd_reliability_new(s, NULL, &r2);
    int rcs = wtd_stream_new(s, NULL, &st);
    if (r) CHECK_OK(wtd_reliability_set_report_callback(r, on_report, &g_cb1, free_counter));
    pthread_mutex_lock(&g_srv.mu);
    g_srv.session = s;
    g_srv.layer = r;
    g_srv.second_layer_rc = rc2;
    g_srv.stream_rc = rcs;
    pthread_mutex_unlock(&g_srv.mu);
}

static wtd_reliability *wait_server_layer(int ms) {
    int64_t end = now_ms() + ms;
    do {
        pthread_mutex_lock(&g_srv.mu);
        wtd_reliability *r = g_srv.layer;
        pthread_mutex_unlock(&g_srv.mu);
        if (r) return r;
        sleep_ms(2);
    } while (now_ms() < end);
    return NULL;
}

/* ------------------------------------------------------------------------------------ */

static void case_a_arguments(void) {
    wtd_reliability_config *cfg = NULL;
    CHECK_RC(wtd_reliability_config_new(NULL), WTD_ERR_INVALID_ARGUMENT);
    CHECK_OK(wtd_reliability_config_new(&cfg));
    CHECK_RC(wtd_reliability_config_set_ack_timeout(NULL, 10), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_reliability_config_set_ack_timeout(cfg, 0), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_reliability_config_set_max_retries(NULL, 1), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_reliability_config_set_window(NULL, 1), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_reliability_config_set_window(cfg, 0), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_reliability_config_set_queues(cfg, 0, 10), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_reliability_config_set_queues(cfg, 10, 0), WTD_ERR_INVALID_ARGUMENT);
    CHECK_OK(wtd_reliability_config_set_queues(cfg, 1000, 4096));
    CHECK_OK(wtd_reliability_config_set_initial_sequence(cfg, 0));
    CHECK_RC(wtd_reliability_config_set_initial_sequence(NULL, 0), WTD_ERR_INVALID_ARGUMENT);
    wtd_reliability_config_free(cfg);
    wtd_reliability_config_free(NULL);

    wtd_reliability *r = NULL;
    wtd_delivery_report rep;
    wtd_reliability_stats st;
    uint8_t buf[8];
    size_t len = 0;
    uint64_t id = 0;
    CHECK_RC(wtd_reliability_new(NULL, NULL, &r), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_reliability_send(NULL, buf, 1, 0, &id), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_reliability_receive(NULL, buf, sizeof buf, &len, 0), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_reliability_next_report(NULL, &rep, 0), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_reliability_set_report_callback(NULL, on_report, NULL, NULL), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_reliability_get_stats(NULL, &st), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_reliability_close(NULL), WTD_ERR_INVALID_ARGUMENT);
    CHECK(!wtd_reliability_is_closed(NULL));
    wtd_reliability_free(NULL);
}

/* Send "{tag}-{i}" for i in 0..N; ids must be 0..N-1 in order. */
static void send_all(const wtd_reliability *r, const char *tag) {
    for (int i = 0; i < N; i++) {
        char msg[32];
        int n = snprintf(msg, sizeof msg, "%s-%d", tag, i);
        uint64_t id = UINT64_MAX;
        if (!CHECK_OK(wtd_reliability_send(r, (const uint8_t *)msg, (size_t)n, 10000, &id))) return;
        CHECK_U64(id, i);
    }
}

/* Receive N messages "{tag}-{i}", each index exactly once. */
static void receive_all(const wtd_reliability *r, const char *tag) {
    unsigned char seen[N];
    memset(seen, 0, sizeof seen);
    size_t tl = strlen(tag);
    int ok = 1;
    for (int k = 0; k < N; k++) {
        char buf[64];
        size_t len = 0;
        if (!CHECK_OK(wtd_reliability_receive(r, (uint8_t *)buf, sizeof buf - 1, &len, 10000))) return;
        buf[len] = 0;
        int i = -1;
        if (len > tl + 1 && memcmp(buf, tag, tl) == 0 && buf[tl] == '-') i = atoi(buf + tl + 1);
        if (i < 0 || i >= N || seen[i]) {
            fprintf(stderr, "unexpected or duplicate message \"%s\"\n", buf);
            ok = 0;
            continue;
        }
        seen[i] = 1;
    }
    CHECK(ok);
    /* Nothing more (no duplicate), even a little later. */
    char buf[64];
    size_t len = 0;
    CHECK_RC(wtd_reliability_receive(r, (uint8_t *)buf, sizeof buf, &len, 300), WTD_ERR_TIMEOUT);
}

/* Take N reports: ids 0..N-1 once each, all Delivered. */
static void reports_all(const wtd_reliability *r) {
    unsigned char seen[N];
    memset(seen, 0, sizeof seen);
    int ok = 1;
    for (int k = 0; k < N; k++) {
        wtd_delivery_report rep;
        if (!CHECK_OK(wtd_reliability_next_report(r, &rep, 10000))) return;
        if (rep.id >= N || seen[rep.id] || rep.outcome != WTD_DELIVERY_DELIVERED || rep.attempts < 1) {
            fprintf(stderr, "bad report id=%llu outcome=%d attempts=%u\n",
                    (unsigned long long)rep.id, (int)rep.outcome, rep.attempts);
            ok = 0;
            continue;
        }
        seen[rep.id] = 1;
    }
    CHECK(ok);
    wtd_delivery_report rep;
    CHECK_RC(wtd_reliability_next_report(r, &rep, 0), WTD_ERR_TIMEOUT);
}

static void check_stats(const wtd_reliability *r) {
    wtd_reliability_stats s;
    if (!CHECK_OK(wtd_reliability_get_stats(r, &s))) return;
    CHECK_U64(s.messages_sent, N);
    CHECK_U64(s.messages_delivered, N);
    CHECK_U64(s.messages_given_up, 0);
    CHECK_U64(s.messages_received, N);
    CHECK_U64(s.in_flight, 0);
    CHECK_U64(s.invalid_received, 0);
    CHECK(s.acks_received >= N);
    CHECK(s.acks_sent >= N);
    CHECK(s.acks_sent == N + s.duplicates_received);
}

int main(void) {
    harness_begin("test_reliability", 60);
    fprintf(stderr, "libwtdatagram %s\n", wtd_version());

    case_a_arguments();

    wtd_runtime *srt = NULL, *crt = NULL;
    wtd_server *server = NULL;
    wtd_client *client = NULL;
    wtd_session *cs = NULL;
    wtd_reliability *cl = NULL, *sl = NULL;
    uint8_t hash[32];

    wtd_runtime_config *rcfg = NULL;
    if (!CHECK_OK(wtd_runtime_config_new(&rcfg))) goto done;
    CHECK_OK(wtd_runtime_config_set_event_callback(rcfg, on_server_event, NULL, NULL));
    CHECK_OK(wtd_runtime_new(rcfg, &srt));
    wtd_runtime_config_free(rcfg);
    if (!srt) goto done;
    wtd_server_config *scfg = NULL;
    CHECK_OK(wtd_server_config_new(&scfg));
    CHECK_OK(wtd_server_config_set_bind(scfg, "127.0.0.1:0"));
    CHECK_OK(wtd_server_new(srt, scfg, &server));
    wtd_server_config_free(scfg);
    if (!server) goto free_srt;
    CHECK_OK(wtd_server_cert_hash(server, hash, sizeof hash));

    if (!CHECK_OK(wtd_runtime_new(NULL, &crt)) || !crt) goto free_server;
    wtd_client_config *ccfg = NULL;
    CHECK_OK(wtd_client_config_new(&ccfg));
    CHECK_OK(wtd_client_config_add_cert_hash(ccfg, hash, 32));
    CHECK_OK(wtd_client_new(crt, ccfg, &client));
    wtd_client_config_free(ccfg);
    if (!client) goto free_crt;
    char u[128];
    snprintf(u, sizeof u, "https://127.0.0.1:%u/reliable", (unsigned)wtd_server_port(server));
    if (!CHECK_OK(wtd_client_open_session(client, u, NULL, 0, 10000, &cs)) || !cs) goto free_client;
    sl = wait_server_layer(5000);
    if (!CHECK(sl != NULL)) goto free_client;
    pthread_mutex_lock(&g_srv.mu);
    CHECK(g_srv.second_layer_rc == WTD_ERR_INVALID_STATE);
    CHECK(g_srv.stream_rc == WTD_ERR_INVALID_STATE);
    pthread_mutex_unlock(&g_srv.mu);

    wtd_reliability_config *cfg = NULL;
    CHECK_OK(wtd_reliability_config_new(&cfg));
    CHECK_OK(wtd_reliability_config_set_ack_timeout(cfg, 200));
    CHECK_OK(wtd_reliability_config_set_max_retries(cfg, 20));
    CHECK_OK(wtd_reliability_config_set_window(cfg, 64));
    CHECK_RC(wtd_reliability_new(cs, cfg, NULL), WTD_ERR_INVALID_ARGUMENT);
    CHECK_OK(wtd_reliability_new(cs, cfg, &cl));
    wtd_reliability_config_free(cfg);
    if (!CHECK(cl != NULL)) goto free_session;
    {
        wtd_reliability *again = NULL;
        CHECK_RC(wtd_reliability_new(cs, NULL, &again), WTD_ERR_INVALID_STATE);
        CHECK(again == NULL);
        wtd_stream *st = NULL;
        CHECK_RC(wtd_stream_new(cs, NULL, &st), WTD_ERR_INVALID_STATE);
    }

    /* Null outputs on a live handle. */
    {
        size_t len = 0;
        uint8_t b[4];
        CHECK_RC(wtd_reliability_send(cl, NULL, 3, 0, NULL), WTD_ERR_INVALID_ARGUMENT);
        CHECK_RC(wtd_reliability_receive(cl, b, sizeof b, NULL, 0), WTD_ERR_INVALID_ARGUMENT);
        CHECK_RC(wtd_reliability_next_report(cl, NULL, 0), WTD_ERR_INVALID_ARGUMENT);
        CHECK_RC(wtd_reliability_get_stats(cl, NULL), WTD_ERR_INVALID_ARGUMENT);
        CHECK_RC(wtd_reliability_receive(cl, b, sizeof b, &len, 0), WTD_ERR_TIMEOUT);
        CHECK_RC(wtd_reliability_next_report(cl, &(wtd_delivery_report){0}, 20), WTD_ERR_TIMEOUT);
        CHECK(!wtd_reliability_is_closed(cl));
    }

    /* B. 200 messages each way (the layers acknowledge by themselves). */
    send_all(cl, "c2s");
    send_all(sl, "s2c");
    receive_all(sl, "c2s");
    receive_all(cl, "s2c");
    reports_all(cl);
    reports_all(sl);
    {
        int64_t end = now_ms() + 10000;
        while (atomic_load(&g_cb1.calls) < N && now_ms() < end) sleep_ms(2);
        CHECK(atomic_load(&g_cb1.calls) == N);
        CHECK(atomic_load(&g_cb1.delivered) == N);
        CHECK(atomic_load(&g_cb1.bad) == 0);
        int once = 1;
        for (int i = 0; i < N; i++) once &= g_cb1.seen[i] == 1;
        CHECK(once);
    }
    check_stats(cl);
    check_stats(sl);

    /* C. BUFFER_TOO_SMALL keeps the message. */
    {
        uint8_t big[100];
        for (int i = 0; i < 100; i++) big[i] = (uint8_t)i;
        uint64_t id = 0;
        CHECK_OK(wtd_reliability_send(cl, big, sizeof big, 5000, &id));
        CHECK_U64(id, N);
        uint8_t small[10];
        size_t len = 0;
        CHECK_RC(wtd_reliability_receive(sl, small, sizeof small, &len, 10000), WTD_ERR_BUFFER_TOO_SMALL);
        CHECK_U64(len, 100);
        CHECK_RC(wtd_reliability_receive(sl, NULL, 0, &len, 0), WTD_ERR_BUFFER_TOO_SMALL);
        uint8_t got[200];
        len = 0;
        CHECK_OK(wtd_reliability_receive(sl, got, sizeof got, &len, 0));
        CHECK(len == 100 && memcmp(got, big, 100) == 0);
        wtd_delivery_report rep;
        CHECK_OK(wtd_reliability_next_report(cl, &rep, 10000));
        CHECK_U64(rep.id, N);
        CHECK(rep.outcome == WTD_DELIVERY_DELIVERED);
        /* Empty messages are fine too. */
        CHECK_OK(wtd_reliability_send(cl, NULL, 0, 5000, NULL));
        CHECK_OK(wtd_reliability_receive(sl, NULL, 0, &len, 10000));
        CHECK_U64(len, 0);
    }

    /* Replacing the callback frees the first userdata once; the new one gets reports. */
    {
        int calls_before = atomic_load(&g_cb1.calls);
        CHECK_OK(wtd_reliability_set_report_callback(sl, on_report, &g_cb2, free_counter));
        int64_t end = now_ms() + 5000;
        while (atomic_load(&g_cb1.frees) < 1 && now_ms() < end) sleep_ms(2);
        CHECK(atomic_load(&g_cb1.frees) == 1);
        CHECK(atomic_load(&g_cb1.calls) >= calls_before);
        uint64_t id = 0;
        CHECK_OK(wtd_reliability_send(sl, (const uint8_t *)"x", 1, 5000, &id));
        CHECK_U64(id, N);
        size_t len = 0;
        uint8_t b[4];
        CHECK_OK(wtd_reliability_receive(cl, b, sizeof b, &len, 10000));
        end = now_ms() + 10000;
        while (atomic_load(&g_cb2.calls) < 1 && now_ms() < end) sleep_ms(2);
        CHECK(atomic_load(&g_cb2.calls) == 1);
        CHECK(g_cb2.seen[0] == 0); /* id N, outside the seen range */
        CHECK(atomic_load(&g_cb2.bad) == 1);
        CHECK(atomic_load(&g_cb2.frees) == 0);
        CHECK(atomic_load(&g_cb1.frees) == 1);
    }

    /* Close: waiting calls return CLOSED; the session stays open. */
    CHECK_OK(wtd_reliability_close(cl));
    CHECK(wtd_reliability_is_closed(cl));
    CHECK_RC(wtd_reliability_send(cl, (const uint8_t *)"x", 1, 1000, NULL), WTD_ERR_CLOSED);
    {
        size_t len = 0;
        uint8_t b[4];
        CHECK_RC(wtd_reliability_receive(cl, b, sizeof b, &len, 1000), WTD_ERR_CLOSED);
        CHECK_RC(wtd_reliability_receive(cl, b, sizeof b, &len, 0), WTD_ERR_CLOSED);
    }
    CHECK(!wtd_session_is_closed(cs));

free_session:
    wtd_reliability_free(cl);
    wtd_session_free(cs);
free_client:
    wtd_client_free(client);
free_crt:
    CHECK_OK(wtd_runtime_free(crt));
free_server:
    wtd_server_free(server);
    pthread_mutex_lock(&g_srv.mu);
    wtd_reliability *l = g_srv.layer;
    wtd_session *s = g_srv.session;
    g_srv.layer = NULL;
    g_srv.session = NULL;
    pthread_mutex_unlock(&g_srv.mu);
    if (l) {
        wtd_reliability_free(l);
        /* The second userdata is freed exactly once, on free (after any pending call). */
        int64_t end = now_ms() + 5000;
        while (atomic_load(&g_cb2.frees) < 1 && now_ms() < end) sleep_ms(2);
        CHECK(atomic_load(&g_cb2.frees) == 1);
    }
    wtd_session_free(s);
free_srt:
    CHECK_OK(wtd_runtime_free(srt));
    CHECK(atomic_load(&g_cb1.frees) == 1);
    CHECK(atomic_load(&g_cb2.frees) == (sl ? 1 : 0));
done:;
    return harness_finish();
}
