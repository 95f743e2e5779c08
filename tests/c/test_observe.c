/*
 * test_observe.c: what a C host sees of the library and tunes in it (issue 13), against
 * a real server on loopback:
 *  - logs: wtd_set_log_callback delivers the library's records (level, target, message
 *    with fields) for a failed handshake (peer address, TLS reason) and a refused request
 *    (why), filtered by level, on the log thread, with library calls allowed inside the
 *    callback; replacing and removing run userdata_free exactly once; bad levels refused
 *  - connection statistics after an exchange: non-zero RTT and packets, the fields quinn
 *    cannot provide read UINT64_MAX, the size convention (a shorter struct is filled only
 *    as far as its size)
 *  - tuning: the congestion controller in use and the initial MTU (MTU discovery off)
 *    show in the statistics; out-of-range values are refused
 *  - TLS key log: SSLKEYLOGFILE gets the TLS secrets when enabled
 * No timed assertion: waits are on conditions, bounded by the watchdog.
 */
#include <stddef.h>

#include "harness.h"

/* ---- a log sink: the records the callback received --------------------------------- */

#define MAX_RECORDS 4096

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
    wtd_log_level level[MAX_RECORDS];
    char target[MAX_RECORDS][64];
    char message[MAX_RECORDS][384];
    uint64_t timestamp_us[MAX_RECORDS];
    int on_main_thread;     /* a callback ran on the thread that registered it */
    uint64_t failed_seen;   /* wtd_server_get_stats called inside the callback */
} sink_t;

static sink_t g_sink = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
static pthread_t g_main;
static wtd_server *g_stats_server; /* read from inside the callback */

static void on_log(const wtd_log_record *r, void *userdata) {
    sink_t *s = userdata;
    /* Library calls are allowed here: no library lock is held on the log thread. */
    uint64_t failed = 0;
    if (g_stats_server && strstr(r->message, "handshake failed")) {
        wtd_server_stats st;
        memset(&st, 0, sizeof st);
        st.size = sizeof st;
        if (wtd_server_get_stats(g_stats_server, &st) == WTD_OK) failed = st.handshakes_failed;
    }
    pthread_mutex_lock(&s->mu);
    if (pthread_equal(pthread_self(), g_main)) s->on_main_thread = 1;
    if (failed > s->failed_seen) s->failed_seen = failed;
    if (s->n < MAX_RECORDS && r->size >= sizeof(wtd_log_record)) {
        s->level[s->n] = r->level;
        snprintf(s->target[s->n], sizeof s->target[0], "%s", r->target);
        snprintf(s->message[s->n], sizeof s->message[0], "%s", r->message);
        s->timestamp_us[s->n] = r->timestamp_us;
        s->n++;
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Index of the first record from `from` on whose message has `a` and `b` (NULL: any),
 * waiting for it up to `ms`; -1 if none came. */
static int wait_record(int from, const char *a, const char *b, int ms) {
    int64_t end = now_ms() + ms;
    pthread_mutex_lock(&g_sink.mu);
    for (;;) {
        for (int i = from; i < g_sink.n; i++)
            if (strstr(g_sink.message[i], a) && (!b || strstr(g_sink.message[i], b))) {
                pthread_mutex_unlock(&g_sink.mu);
                return i;
            }
        if (now_ms() >= end) break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g_sink.cv, &g_sink.mu, &ts);
    }
    pthread_mutex_unlock(&g_sink.mu);
    return -1;
}

static int count_records(int from, const char *a) {
    int n = 0;
    pthread_mutex_lock(&g_sink.mu);
    for (int i = from; i < g_sink.n; i++)
        if (strstr(g_sink.message[i], a)) n++;
    pthread_mutex_unlock(&g_sink.mu);
    return n;
}

static int records_now(void) {
    pthread_mutex_lock(&g_sink.mu);
    int n = g_sink.n;
    pthread_mutex_unlock(&g_sink.mu);
    return n;
}

/* ---- userdata_free accounting ------------------------------------------------------- */

static atomic_int g_freed[4];
static void free_ud(void *ud) { atomic_fetch_add(&g_freed[(intptr_t)ud], 1); }
static void ignore_log(const wtd_log_record *r, void *ud) {
    (void)r;
    (void)ud;
}

/* ---- servers -------------------------------------------------------------------------- */

/* Callback-mode server events: accept every request, echo every datagram. Sessions are
 * kept until the runtime is freed. */
static wtd_session *g_kept[32];
static atomic_int g_nkept;

static void echo_server(const wtd_event *ev, void *ud) {
    (void)ud;
    if (ev->kind == WTD_EVENT_SESSION_REQUEST) {
        wtd_session *s = NULL;
        if (wtd_session_request_accept(ev->request, &s) == WTD_OK) {
            int i = atomic_fetch_add(&g_nkept, 1);
            if (i < 32) g_kept[i] = s;
            else wtd_session_free(s);
        }
    } else if (ev->kind == WTD_EVENT_DATAGRAM) {
        wtd_session_send_wait(ev->session, ev->data, ev->len, 5000);
    }
}

static void free_kept(void) {
    int n = atomic_exchange(&g_nkept, 0);
    for (int i = 0; i < n && i < 32; i++) wtd_session_free(g_kept[i]);
}

static wtd_runtime *callback_runtime(void) {
    wtd_runtime_config *rcfg = NULL;
    wtd_runtime *rt = NULL;
    CHECK_OK(wtd_runtime_config_new(&rcfg));
    CHECK_OK(wtd_runtime_config_set_event_callback(rcfg, echo_server, NULL, NULL));
    CHECK_OK(wtd_runtime_new(rcfg, &rt));
    wtd_runtime_config_free(rcfg);
    return rt;
}

/* A server on `rt` with transport `t` (may be NULL) and at most `max_sessions` (0:
 * default). */
static wtd_server *start_server(wtd_runtime *rt, const wtd_transport_config *t,
                                size_t max_sessions, uint8_t hash[32], uint16_t *port) {
    wtd_server_config *scfg = NULL;
    wtd_server *server = NULL;
    CHECK_OK(wtd_server_config_new(&scfg));
    if (t) CHECK_OK(wtd_server_config_set_transport(scfg, t));
    if (max_sessions) CHECK_OK(wtd_server_config_set_max_sessions(scfg, max_sessions));
    wtd_result r = wtd_server_new(rt, scfg, &server);
    wtd_server_config_free(scfg);
    if (!CHECK_OK(r) || !server) return NULL;
    CHECK_OK(wtd_server_cert_hash(server, hash, 32));
    *port = wtd_server_port(server);
    return server;
}

/* A client transport with datagrams queued for wtd_session_recv. */
static wtd_transport_config *queued_transport(void) {
    wtd_transport_config *t = NULL;
    CHECK_OK(wtd_transport_config_new(&t));
    CHECK_OK(wtd_transport_config_set_datagram_events(t, false));
    return t;
}

/* Send `n` datagrams of `size` bytes and receive each echo. 1 if all came back. */
static int exchange(wtd_session *s, int n, size_t size) {
    uint8_t buf[2048], back[2048];
    memset(buf, 'x', sizeof buf);
    int ok = 1;
    for (int i = 0; i < n && ok; i++) {
        memcpy(buf, &i, sizeof i);
        size_t got = 0;
        ok = wtd_session_send_wait(s, buf, size, 5000) == WTD_OK &&
             wtd_session_recv(s, back, sizeof back, &got, 5000) == WTD_OK && got == size &&
             memcmp(buf, back, size) == 0;
    }
    return CHECK(ok);
}

static wtd_connection_stats conn_stats(const wtd_session *s) {
    wtd_connection_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    CHECK_OK(wtd_session_connection_stats(s, &st));
    return st;
}

/* ---- logs ----------------------------------------------------------------------------- */

/* Wait until the server counted `n` failed handshakes (bounded by the watchdog). */
static void wait_handshakes_failed(const wtd_server *server, uint64_t n) {
    wtd_server_stats st;
    for (int i = 0; i < 4000; i++) {
        memset(&st, 0, sizeof st);
        st.size = sizeof st;
        CHECK_OK(wtd_server_get_stats(server, &st));
        if (st.handshakes_failed >= n) break;
        sleep_ms(5);
    }
    CHECK_U64(st.handshakes_failed, n);
}

static void test_log_arguments(void) {
    /* A level outside the enum is refused; nothing registered, nothing freed. */
    CHECK_RC(wtd_set_log_callback((wtd_log_level)99, ignore_log, (void *)(intptr_t)0, free_ud),
             WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_set_log_callback((wtd_log_level)-1, ignore_log, (void *)(intptr_t)0, free_ud),
             WTD_ERR_INVALID_ARGUMENT);
    CHECK(atomic_load(&g_freed[0]) == 0);
    CHECK_STR(wtd_log_level_name(WTD_LOG_INFO), "INFO");
    CHECK_STR(wtd_log_level_name(WTD_LOG_TRACE), "TRACE");
    CHECK_STR(wtd_log_level_name((wtd_log_level)42), "UNKNOWN");

    /* Register, replace, remove: each userdata freed exactly once. */
    CHECK_OK(wtd_set_log_callback(WTD_LOG_INFO, ignore_log, (void *)(intptr_t)1, free_ud));
    CHECK(atomic_load(&g_freed[1]) == 0);
    CHECK_OK(wtd_set_log_callback(WTD_LOG_DEBUG, ignore_log, (void *)(intptr_t)2, free_ud));
    CHECK(atomic_load(&g_freed[1]) == 1); /* the replaced one, once it cannot run again */
    CHECK_OK(wtd_set_log_callback(WTD_LOG_OFF, ignore_log, (void *)(intptr_t)3, free_ud));
    CHECK(atomic_load(&g_freed[2]) == 1); /* removed */
    CHECK(atomic_load(&g_freed[3]) == 1); /* given with OFF: never used, freed at once */
    CHECK_OK(wtd_set_log_callback(WTD_LOG_INFO, NULL, NULL, NULL)); /* removing nothing */
    CHECK(atomic_load(&g_freed[1]) == 1 && atomic_load(&g_freed[2]) == 1 &&
          atomic_load(&g_freed[3]) == 1);
}

static void test_logs_of_a_failed_handshake_and_a_refused_request(void) {
    wtd_runtime *srt = callback_runtime(), *crt = NULL;
    CHECK_OK(wtd_runtime_new(NULL, &crt));
    uint8_t hash[32], wrong[32];
    uint16_t port = 0;
    wtd_server *server = start_server(srt, NULL, 1, hash, &port);
    if (!server) return;
    g_stats_server = server;
    memset(wrong, 0x42, sizeof wrong);
    char u[128];
    url(u, sizeof u, port, "/observed");

    /* At WARN, a failed handshake (INFO) is not delivered. */
    CHECK_OK(wtd_set_log_callback(WTD_LOG_WARN, on_log, &g_sink, NULL));
    int start = records_now();
    wtd_client *bad = make_client_on(crt, NULL, wrong);
    wtd_session *s = NULL;
    CHECK_RC(wtd_client_open_session(bad, u, NULL, 0, 10000, &s), WTD_ERR_TLS);
    /* Counted after it was logged: once the count shows it, its record was emitted. */
    wait_handshakes_failed(server, 1);

    /* At INFO: the next failed handshake, with the peer's address and the TLS reason. */
    CHECK_OK(wtd_set_log_callback(WTD_LOG_INFO, on_log, &g_sink, NULL));
    CHECK_RC(wtd_client_open_session(bad, u, NULL, 0, 10000, &s), WTD_ERR_TLS);
    int i = wait_record(start, "handshake failed: the peer aborted", "remote=127.0.0.1:", 10000);
    if (CHECK(i >= 0)) {
        fprintf(stderr, "  log: %s %s: %s\n", wtd_log_level_name(g_sink.level[i]),
                g_sink.target[i], g_sink.message[i]);
        CHECK(g_sink.level[i] == WTD_LOG_INFO);
        CHECK(strncmp(g_sink.target[i], "wtdatagram::transport::", 23) == 0);
        CHECK(strstr(g_sink.message[i], "TLS alert") != NULL);
        CHECK(g_sink.timestamp_us[i] > 1700000000ull * 1000000ull);
    }
    wait_handshakes_failed(server, 2); /* both server records emitted (or filtered) */
    pthread_mutex_lock(&g_sink.mu);
    CHECK(g_sink.failed_seen >= 1); /* wtd_server_get_stats ran inside the callback */
    CHECK(!g_sink.on_main_thread);  /* the callback runs on the library's log thread */
    pthread_mutex_unlock(&g_sink.mu);
    wtd_client_free(bad);

    /* A refused request: the server holds 1 session at most, the second gets 503. */
    wtd_client *client = make_client_on(crt, NULL, hash);
    wtd_session *s1 = NULL, *s2 = NULL;
    CHECK_OK(wtd_client_open_session(client, u, NULL, 0, 10000, &s1));
    CHECK_RC(wtd_client_open_session(client, u, NULL, 0, 10000, &s2), WTD_ERR_REJECTED);
    i = wait_record(start, "request answered 503", "maximum of sessions", 10000);
    if (CHECK(i >= 0)) {
        fprintf(stderr, "  log: %s %s: %s\n", wtd_log_level_name(g_sink.level[i]),
                g_sink.target[i], g_sink.message[i]);
        CHECK(g_sink.level[i] == WTD_LOG_INFO);
        CHECK(strstr(g_sink.message[i], "remote=127.0.0.1:") != NULL);
    }
    /* Records arrive in emission order, and both handshake records were emitted before
     * this one: only the second handshake's server record came, the first was filtered
     * at WARN. */
    CHECK(count_records(start, "peer aborted the handshake") == 1);

    /* DEBUG adds the lifecycle: a session opened and closed. */
    CHECK_OK(wtd_set_log_callback(WTD_LOG_DEBUG, on_log, &g_sink, NULL));
    int mark = records_now();
    wtd_session_free(s1);
    CHECK(wait_record(mark, "session closed", "path=/observed", 10000) >= 0);

    CHECK_OK(wtd_set_log_callback(WTD_LOG_OFF, NULL, NULL, NULL));
    g_stats_server = NULL;
    wtd_client_free(client);
    wtd_server_free(server);
    CHECK_OK(wtd_runtime_free(crt));
    CHECK_OK(wtd_runtime_free(srt));
    free_kept();
}

/* ---- statistics and tuning ----------------------------------------------------------- */

static void test_connection_stats(void) {
    wtd_runtime *srt = callback_runtime(), *crt = NULL;
    CHECK_OK(wtd_runtime_new(NULL, &crt));
    uint8_t hash[32];
    uint16_t port = 0;
    wtd_server *server = start_server(srt, NULL, 0, hash, &port);
    if (!server) return;
    wtd_transport_config *t = queued_transport();
    wtd_client *client = make_client_on(crt, t, hash);
    wtd_transport_config_free(t);
    char u[128];
    url(u, sizeof u, port, "/stats");
    wtd_session *s = NULL;
    if (CHECK_OK(wtd_client_open_session(client, u, NULL, 0, 10000, &s)) && s) {
        exchange(s, 100, 1000);
        wtd_connection_stats st = conn_stats(s);
        fprintf(stderr,
                "  stats: rtt_us=%llu min_rtt_us=%llu cwnd=%llu packets_sent=%llu "
                "packets_received=%llu lost=%llu path_mtu=%llu datagrams_sent=%llu\n",
                (unsigned long long)st.rtt_us, (unsigned long long)st.min_rtt_us,
                (unsigned long long)st.congestion_window, (unsigned long long)st.packets_sent,
                (unsigned long long)st.packets_received, (unsigned long long)st.packets_lost,
                (unsigned long long)st.path_mtu, (unsigned long long)st.datagrams_sent);
        CHECK(st.size == sizeof st);
        CHECK(st.rtt_us > 0 && st.min_rtt_us <= 4 * st.rtt_us); /* min: 0 possible on loopback */
        CHECK(st.congestion_window > 0);
        CHECK(st.packets_sent >= 100 && st.packets_received >= 100);
        CHECK(st.bytes_sent >= 100 * 1000 && st.bytes_received >= 100 * 1000);
        CHECK(st.path_mtu >= 1200);
        CHECK_U64(st.datagrams_sent, 100);
        CHECK_U64(st.datagrams_received, 100);
        CHECK_U64(st.datagrams_dropped, 0);
        CHECK_U64(st.rtt_variance_us, UINT64_MAX); /* quinn 0.11 does not expose them */
        CHECK_U64(st.bytes_in_flight, UINT64_MAX);
        CHECK_U64(st.pacing_rate, UINT64_MAX); /* CUBIC sets none */
        CHECK(st.congestion_controller == WTD_CONGESTION_CUBIC);

        /* The size convention: a struct as short as the first version gets rtt_us only. */
        wtd_connection_stats shortst;
        memset(&shortst, 0xab, sizeof shortst);
        shortst.size = offsetof(wtd_connection_stats, rtt_us) + sizeof(uint64_t);
        CHECK_OK(wtd_session_connection_stats(s, &shortst));
        CHECK(shortst.rtt_us > 0 && shortst.rtt_us != 0xababababababababull);
        CHECK_U64(shortst.min_rtt_us, 0xababababababababull);
        shortst.size = offsetof(wtd_connection_stats, rtt_us);
        CHECK_RC(wtd_session_connection_stats(s, &shortst), WTD_ERR_INVALID_ARGUMENT);
        CHECK_RC(wtd_session_connection_stats(s, NULL), WTD_ERR_INVALID_ARGUMENT);
        CHECK_RC(wtd_session_connection_stats(NULL, &st), WTD_ERR_INVALID_ARGUMENT);

        /* The same figures through the connection handle. */
        wtd_connection *conn = NULL;
        if (CHECK_OK(wtd_client_connect(client, u, 10000, &conn)) && conn) {
            wtd_connection_stats cs;
            memset(&cs, 0, sizeof cs);
            cs.size = sizeof cs;
            CHECK_OK(wtd_connection_get_stats(conn, &cs));
            CHECK(cs.rtt_us > 0 && cs.packets_sent > 0);
            CHECK_U64(cs.datagrams_sent, 0); /* a new connection: no datagram yet */
            wtd_connection_free(conn);
        }
        wtd_session_free(s);
    }
    wtd_client_free(client);
    wtd_server_free(server);
    CHECK_OK(wtd_runtime_free(crt));
    CHECK_OK(wtd_runtime_free(srt));
    free_kept();
}

static void test_tuning_arguments(void) {
    wtd_transport_config *t = NULL;
    CHECK_OK(wtd_transport_config_new(&t));
    CHECK_RC(wtd_transport_config_set_congestion_controller(t, (wtd_congestion_controller)3),
             WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_transport_config_set_congestion_controller(t, (wtd_congestion_controller)-1),
             WTD_ERR_INVALID_ARGUMENT);
    CHECK_OK(wtd_transport_config_set_congestion_controller(t, WTD_CONGESTION_BBR));
    CHECK_RC(wtd_transport_config_set_congestion_controller(NULL, WTD_CONGESTION_CUBIC),
             WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_transport_config_set_initial_rtt_ms(t, 0), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_transport_config_set_initial_rtt_ms(t, 60001), WTD_ERR_INVALID_ARGUMENT);
    CHECK_OK(wtd_transport_config_set_initial_rtt_ms(t, 1));
    CHECK_OK(wtd_transport_config_set_initial_rtt_ms(t, 60000));
    CHECK_RC(wtd_transport_config_set_initial_mtu(t, 1199), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_transport_config_set_initial_mtu(t, 65528), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_transport_config_set_initial_mtu(t, 70000), WTD_ERR_INVALID_ARGUMENT);
    CHECK_OK(wtd_transport_config_set_initial_mtu(t, 1200));
    CHECK_OK(wtd_transport_config_set_initial_mtu(t, 65527));
    CHECK_OK(wtd_transport_config_set_mtu_discovery(t, false));
    CHECK_RC(wtd_transport_config_set_mtu_discovery(NULL, true), WTD_ERR_INVALID_ARGUMENT);
    CHECK_OK(wtd_transport_config_set_key_log(t, false));
    CHECK_RC(wtd_transport_config_set_key_log(NULL, true), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_transport_config_set_qlog_dir(t, "/nonexistent/wtd-qlog"), WTD_ERR_INVALID_ARGUMENT);
    CHECK_OK(wtd_transport_config_set_qlog_dir(t, "/tmp"));
    CHECK_OK(wtd_transport_config_set_qlog_dir(t, NULL)); /* off again */
    wtd_transport_config_free(t);
}

/* Tuning applied to a transport configuration. */
typedef struct {
    int controller; /* -1: default */
    int mtu_discovery; /* -1: default */
    uint32_t initial_mtu; /* 0: default */
    uint32_t initial_rtt_ms; /* 0: default */
    int key_log;
    const char *qlog_dir; /* NULL: none */
} tuning_t;

static void apply(wtd_transport_config *t, const tuning_t *k) {
    if (k->controller >= 0)
        CHECK_OK(wtd_transport_config_set_congestion_controller(t, (wtd_congestion_controller)k->controller));
    if (k->mtu_discovery >= 0) CHECK_OK(wtd_transport_config_set_mtu_discovery(t, k->mtu_discovery));
    if (k->initial_mtu) CHECK_OK(wtd_transport_config_set_initial_mtu(t, k->initial_mtu));
    if (k->initial_rtt_ms) CHECK_OK(wtd_transport_config_set_initial_rtt_ms(t, k->initial_rtt_ms));
    if (k->key_log) CHECK_OK(wtd_transport_config_set_key_log(t, true));
    if (k->qlog_dir) CHECK_OK(wtd_transport_config_set_qlog_dir(t, k->qlog_dir));
}

/* A server (datagrams as events, echoed) and a client (datagrams queued), both tuned
 * with `k`; `check` gets the client session. */
static void tuned_pair(const tuning_t *k, void (*check)(wtd_session *)) {
    wtd_runtime *srt = callback_runtime(), *crt = NULL;
    CHECK_OK(wtd_runtime_new(NULL, &crt));
    wtd_transport_config *st = NULL;
    CHECK_OK(wtd_transport_config_new(&st));
    apply(st, k);
    uint8_t hash[32];
    uint16_t port = 0;
    wtd_server *server = start_server(srt, st, 0, hash, &port);
    wtd_transport_config_free(st);
    if (!server) return;
    wtd_transport_config *ct = queued_transport();
    apply(ct, k);
    wtd_client *client = make_client_on(crt, ct, hash);
    wtd_transport_config_free(ct);
    char u[128];
    url(u, sizeof u, port, "/tuned");
    wtd_session *s = NULL;
    if (CHECK_OK(wtd_client_open_session(client, u, NULL, 0, 10000, &s)) && s) {
        check(s);
        wtd_session_free(s);
    }
    wtd_client_free(client);
    wtd_server_free(server);
    CHECK_OK(wtd_runtime_free(crt));
    CHECK_OK(wtd_runtime_free(srt));
    free_kept();
}

static void check_new_reno(wtd_session *s) {
    exchange(s, 20, 500);
    CHECK(conn_stats(s).congestion_controller == WTD_CONGESTION_NEW_RENO);
}

static void check_bbr(wtd_session *s) {
    exchange(s, 20, 500);
    wtd_connection_stats st = conn_stats(s);
    CHECK(st.congestion_controller == WTD_CONGESTION_BBR);
    CHECK(st.pacing_rate != UINT64_MAX); /* BBR sets a pacing rate (CUBIC does not) */
}

static void check_mtu_1400(wtd_session *s) {
    exchange(s, 20, 1300); /* larger than a 1200-byte path could carry */
    CHECK_U64(conn_stats(s).path_mtu, 1400);
    size_t max = 0;
    CHECK_OK(wtd_session_max_datagram_size(s, &max));
    CHECK(max > 1300 && max < 1400);
}

static void test_tuning_shows_in_stats(void) {
    tuning_t k = {.controller = WTD_CONGESTION_NEW_RENO, .mtu_discovery = -1};
    tuned_pair(&k, check_new_reno);
    k.controller = WTD_CONGESTION_BBR;
    tuned_pair(&k, check_bbr);
    tuning_t mtu = {.controller = -1, .mtu_discovery = 0, .initial_mtu = 1400, .initial_rtt_ms = 100};
    tuned_pair(&mtu, check_mtu_1400);
}

/* ---- TLS key log ---------------------------------------------------------------------- */

static void check_exchange(wtd_session *s) { exchange(s, 3, 100); }

static void test_key_log(void) {
    char path[256];
    snprintf(path, sizeof path, "/tmp/wtd-test-observe-keys-%d.log", (int)getpid());
    unlink(path);
    setenv("SSLKEYLOGFILE", path, 1);
    tuning_t k = {.controller = -1, .mtu_discovery = -1};
    tuned_pair(&k, check_exchange); /* off by default: nothing written */
    CHECK(access(path, F_OK) != 0);
    k.key_log = 1;
    tuned_pair(&k, check_exchange);
    FILE *f = fopen(path, "r");
    if (!CHECK(f != NULL)) return;
    char line[512];
    int chts = 0, shts = 0, cts = 0, sts = 0;
    while (fgets(line, sizeof line, f)) {
        chts += strncmp(line, "CLIENT_HANDSHAKE_TRAFFIC_SECRET ", 32) == 0;
        shts += strncmp(line, "SERVER_HANDSHAKE_TRAFFIC_SECRET ", 32) == 0;
        cts += strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24) == 0;
        sts += strncmp(line, "SERVER_TRAFFIC_SECRET_0 ", 24) == 0;
    }
    fclose(f);
    /* One connection, its secrets written by both ends. */
    CHECK(chts == 2 && shts == 2 && cts == 2 && sts == 2);
    unlink(path);
    unsetenv("SSLKEYLOGFILE");
}

/* ---- qlog ------------------------------------------------------------------------------ */

#include <dirent.h>
#include <sys/stat.h>

static void test_qlog(void) {
    char dir[256];
    snprintf(dir, sizeof dir, "/tmp/wtd-test-observe-qlog-%d", (int)getpid());
    mkdir(dir, 0700);
    tuning_t k = {.controller = -1, .mtu_discovery = -1, .qlog_dir = dir};
    tuned_pair(&k, check_exchange);
    DIR *d = opendir(dir);
    if (!CHECK(d != NULL)) return;
    int client = 0, server = 0, with_packets = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        client += strncmp(e->d_name, "client-", 7) == 0;
        server += strncmp(e->d_name, "server-", 7) == 0;
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "r");
        if (f) {
            static char text[1 << 16];
            size_t n = fread(text, 1, sizeof text - 1, f);
            text[n] = 0;
            with_packets += strstr(text, "qlog_version") && strstr(text, "packet_sent");
            fclose(f);
        }
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
    CHECK(client == 1 && server == 1); /* one trace per connection, per side */
    CHECK(with_packets == 2);
}

int main(void) {
    harness_begin("test_observe", 120);
    g_main = pthread_self();
    test_log_arguments();
    test_logs_of_a_failed_handshake_and_a_refused_request();
    test_connection_stats();
    test_tuning_arguments();
    test_tuning_shows_in_stats();
    test_key_log();
    test_qlog();
    return harness_finish();
}
