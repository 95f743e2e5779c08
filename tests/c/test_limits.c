/*
 * test_limits.c: the server limits through the C ABI (issue 11 §1): the request backlog
 * holds all the way to a host that is slow to pull its events (requests beyond it are
 * answered 503 and counted), server-wide connection and session limits, the field
 * section limit (431), the versioned wtd_server_stats struct, and argument checks of
 * every new setter. No timed assertion: waits are on counters, bounded by a watchdog.
 */
#include <stddef.h>

#include "harness.h"

static wtd_server_stats stats_of(const wtd_server *server) {
    wtd_server_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    CHECK_OK(wtd_server_get_stats(server, &st));
    return st;
}

/* Poll the server's stats until `field` reaches `want` (bounded by the watchdog). */
#define WAIT_STAT(server, field, want)                                                 \
    do {                                                                              \
        for (int i_ = 0; i_ < 4000 && stats_of(server).field != (uint64_t)(want); i_++) \
            sleep_ms(5);                                                              \
        CHECK_U64(stats_of(server).field, want);                                      \
    } while (0)

static wtd_server *start_server(wtd_runtime *rt, wtd_server_config *cfg, uint8_t hash[32],
                                uint16_t *port) {
    wtd_server *server = NULL;
    if (!CHECK_OK(wtd_server_new(rt, cfg, &server)) || !server) return NULL;
    CHECK_OK(wtd_server_cert_hash(server, hash, 32));
    *port = wtd_server_port(server);
    return server;
}

/* ---- the backlog reaches the host: a pull-mode server that does not pull ----------- */

struct opener {
    wtd_client *client;
    char url[128];
    wtd_result rc;
    wtd_session *session;
    pthread_t thread;
};

static void *open_one(void *arg) {
    struct opener *o = arg;
    o->rc = wtd_client_open_session(o->client, o->url, NULL, 0, 20000, &o->session);
    return NULL;
}

static void test_backlog_reaches_a_slow_host(void) {
    wtd_runtime *srt = NULL, *crt = NULL;
    CHECK_OK(wtd_runtime_new(NULL, &srt)); /* pull mode: nobody pulls for now */
    CHECK_OK(wtd_runtime_new(NULL, &crt));
    wtd_server_config *scfg = NULL;
    CHECK_OK(wtd_server_config_new(&scfg));
    CHECK_OK(wtd_server_config_set_request_backlog(scfg, 4));
    uint8_t hash[32];
    uint16_t port = 0;
    wtd_server *server = start_server(srt, scfg, hash, &port);
    wtd_server_config_free(scfg);
    if (!server) return;
    wtd_client *client = make_client_on(crt, NULL, hash);

    enum { N = 10 };
    struct opener op[N];
    for (int i = 0; i < N; i++) {
        op[i].client = client;
        op[i].session = NULL;
        op[i].rc = WTD_ERR_PANIC;
        url(op[i].url, sizeof op[i].url, port, "/slow-host");
        pthread_create(&op[i].thread, NULL, open_one, &op[i]);
    }
    /* 4 requests wait for the host, 6 are refused at once. */
    WAIT_STAT(server, requests_refused_backlog, 6);
    WAIT_STAT(server, pending_requests, 4);
    CHECK_U64(stats_of(server).requests_received, 4);

    /* Now the host pulls: exactly 4 session requests wait in its queue. */
    wtd_session *accepted[N] = {0};
    int n_accepted = 0;
    for (;;) {
        wtd_event ev;
        wtd_result r = wtd_runtime_next_event(srt, &ev, 0);
        if (r == WTD_ERR_TIMEOUT) break;
        if (!CHECK_OK(r)) break;
        if (ev.kind == WTD_EVENT_SESSION_REQUEST) {
            CHECK(n_accepted < N);
            if (n_accepted < N)
                CHECK_OK(wtd_session_request_accept(ev.request, &accepted[n_accepted++]));
        }
        wtd_event_release(&ev);
    }
    CHECK(n_accepted == 4);
    int ok = 0, rejected = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(op[i].thread, NULL);
        if (op[i].rc == WTD_OK) ok++;
        if (op[i].rc == WTD_ERR_REJECTED) rejected++;
        wtd_session_free(op[i].session);
    }
    CHECK(ok == 4);
    CHECK(rejected == 6);
    CHECK_U64(stats_of(server).pending_requests, 0);
    for (int i = 0; i < n_accepted; i++) wtd_session_free(accepted[i]);
    wtd_client_free(client);
    wtd_server_free(server);
    CHECK_OK(wtd_runtime_free(crt));
    CHECK_OK(wtd_runtime_free(srt));
}

/* ---- server-wide limits, the field section limit ------------------------------------ */

static wtd_runtime *g_events_rt;

/* Callback-mode server that accepts every request (sessions kept until the end). */
static wtd_session *g_kept[64];
static atomic_int g_nkept;

static void accept_all(const wtd_event *ev, void *ud) {
    (void)ud;
    if (ev->kind == WTD_EVENT_SESSION_REQUEST) {
        wtd_session *s = NULL;
        if (wtd_session_request_accept(ev->request, &s) == WTD_OK) {
            int i = atomic_fetch_add(&g_nkept, 1);
            if (i < 64) g_kept[i] = s;
            else wtd_session_free(s);
        }
    }
}

static void test_server_wide_limits(void) {
    wtd_runtime_config *rcfg = NULL;
    CHECK_OK(wtd_runtime_config_new(&rcfg));
    CHECK_OK(wtd_runtime_config_set_event_callback(rcfg, accept_all, NULL, NULL));
    CHECK_OK(wtd_runtime_new(rcfg, &g_events_rt));
    wtd_runtime_config_free(rcfg);
    wtd_runtime *crt = NULL;
    CHECK_OK(wtd_runtime_new(NULL, &crt));

    wtd_server_config *scfg = NULL;
    wtd_transport_config *t = NULL;
    CHECK_OK(wtd_server_config_new(&scfg));
    CHECK_OK(wtd_transport_config_new(&t));
    CHECK_OK(wtd_transport_config_set_max_field_section_size(t, 1024));
    CHECK_OK(wtd_server_config_set_transport(scfg, t));
    CHECK_OK(wtd_server_config_set_max_sessions(scfg, 2));
    CHECK_OK(wtd_server_config_set_max_connections(scfg, 3));
    CHECK_OK(wtd_server_config_set_request_timeout_ms(scfg, 3000));
    uint8_t hash[32];
    uint16_t port = 0;
    wtd_server *server = start_server(g_events_rt, scfg, hash, &port);
    wtd_server_config_free(scfg);
    wtd_transport_config_free(t);
    if (!server) return;
    wtd_client *client = make_client_on(crt, NULL, hash);
    char u[128];
    url(u, sizeof u, port, "/limit");

    /* Field section limit: a 2000-byte header value is answered 431. */
    char big[2001];
    memset(big, 'v', 2000);
    big[2000] = 0;
    wtd_header h = {"x-big", big};
    wtd_session *s = NULL;
    CHECK_RC(wtd_client_open_session(client, u, &h, 1, 10000, &s), WTD_ERR_REJECTED);
    CHECK(strstr(wtd_last_error(), "431") != NULL);
    CHECK_U64(stats_of(server).requests_too_large, 1);

    /* Two sessions over two connections fill the server; the third is answered 503. */
    wtd_connection *c1 = NULL, *c2 = NULL, *c3 = NULL, *c4 = NULL;
    CHECK_OK(wtd_client_connect(client, u, 10000, &c1));
    CHECK_OK(wtd_client_connect(client, u, 10000, &c2));
    wtd_session *s1 = NULL, *s2 = NULL, *s3 = NULL;
    CHECK_OK(wtd_connection_open_session(c1, "/one", NULL, 0, 10000, &s1));
    CHECK_OK(wtd_connection_open_session(c2, "/two", NULL, 0, 10000, &s2));
    CHECK_RC(wtd_connection_open_session(c2, "/three", NULL, 0, 10000, &s3), WTD_ERR_REJECTED);
    CHECK(strstr(wtd_last_error(), "503") != NULL);
    CHECK_U64(stats_of(server).requests_refused_server_full, 1);
    CHECK_U64(stats_of(server).sessions, 2);

    /* Three connections are held (the 431's own connection may still be closing, so
     * wait for the count): a fourth is refused during its handshake. */
    CHECK_OK(wtd_client_connect(client, u, 10000, &c3));
    WAIT_STAT(server, connections, 3);
    CHECK_RC(wtd_client_connect(client, u, 10000, &c4), WTD_ERR_CONNECT);
    CHECK(stats_of(server).connections_refused >= 1);

    wtd_session_free(s1);
    wtd_session_free(s2);
    wtd_connection_free(c1);
    wtd_connection_free(c2);
    wtd_connection_free(c3);
    wtd_client_free(client);
    for (int i = 0; i < atomic_load(&g_nkept) && i < 64; i++) wtd_session_free(g_kept[i]);
    wtd_server_free(server);
    CHECK_OK(wtd_runtime_free(crt));
    CHECK_OK(wtd_runtime_free(g_events_rt));
}

/* ---- arguments ---------------------------------------------------------------------- */

static void test_arguments(void) {
    wtd_server_config *scfg = NULL;
    wtd_transport_config *t = NULL;
    CHECK_OK(wtd_server_config_new(&scfg));
    CHECK_OK(wtd_transport_config_new(&t));
    CHECK_RC(wtd_server_config_set_max_connections(NULL, 5), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_server_config_set_max_connections(scfg, 0), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_server_config_set_max_connections(scfg, 1000001), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_server_config_set_max_sessions(NULL, 5), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_server_config_set_max_sessions(scfg, 0), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_server_config_set_request_timeout_ms(NULL, 5), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_server_config_set_request_timeout_ms(scfg, 0), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_server_config_set_request_timeout_ms(scfg, 600001), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_transport_config_set_max_field_section_size(NULL, 4096),
             WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_transport_config_set_max_field_section_size(t, 255), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_transport_config_set_max_field_section_size(t, (1u << 20) + 1),
             WTD_ERR_INVALID_ARGUMENT);
    CHECK_OK(wtd_transport_config_set_max_field_section_size(t, 256));
    CHECK_RC(wtd_transport_config_set_max_header_fields(NULL, 8), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_transport_config_set_max_header_fields(t, 0), WTD_ERR_INVALID_ARGUMENT);
    CHECK_OK(wtd_transport_config_set_max_header_fields(t, 8));
    CHECK_OK(wtd_server_config_set_max_connections(scfg, 1000000));
    CHECK_OK(wtd_server_config_set_max_sessions(scfg, 1));
    CHECK_OK(wtd_server_config_set_request_timeout_ms(scfg, 1));

    /* wtd_server_get_stats: NULLs, a size too small, and an older (shorter) version of
     * the struct, whose bytes past its size stay untouched. */
    wtd_runtime *rt = NULL;
    CHECK_OK(wtd_runtime_new(NULL, &rt));
    wtd_server *server = NULL;
    CHECK_OK(wtd_server_new(rt, NULL, &server));
    wtd_server_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    CHECK_RC(wtd_server_get_stats(NULL, &st), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_server_get_stats(server, NULL), WTD_ERR_INVALID_ARGUMENT);
    st.size = sizeof(size_t);
    CHECK_RC(wtd_server_get_stats(server, &st), WTD_ERR_INVALID_ARGUMENT);
    memset(&st, 0xab, sizeof st);
    st.size = offsetof(wtd_server_stats, connections_accepted);
    CHECK_OK(wtd_server_get_stats(server, &st));
    CHECK_U64(st.connections, 0);
    CHECK_U64(st.pending_requests, 0);
    CHECK_U64(st.connections_accepted, 0xababababababababull);
    CHECK_U64(st.requests_timed_out, 0xababababababababull);
    CHECK_U64(st.size, offsetof(wtd_server_stats, connections_accepted));
    wtd_server_free(server);
    CHECK_OK(wtd_runtime_free(rt));
    wtd_server_config_free(scfg);
    wtd_transport_config_free(t);
}

int main(void) {
    harness_begin("test_limits", 120);
    test_arguments();
    test_backlog_reaches_a_slow_host();
    test_server_wide_limits();
    return harness_finish();
}
