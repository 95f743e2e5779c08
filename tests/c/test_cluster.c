/*
 * test_cluster: the clustered broadcaster (wtd_cluster_*, wtd_cluster_broadcaster_*)
 * through the C ABI, against the nats-server that tests/c/run_with_nats.sh started
 * (WTD_NATS_URL). Two "nodes" in one process: two cluster connections, each with a
 * broadcaster whose member is one server-side session; the client runtime (pull mode)
 * counts the DATAGRAM events of each client session.
 *
 *  A. bad arguments (NULL handles and outputs, out-of-range options, no or bad URL,
 *     bad channel, bad priority) and NULL no-ops
 *  B. a broadcast from either node reaches both clients exactly once; exact counters
 *  C. stats written only up to the size the caller passes
 *  D. a cluster that does not wait for an absent bus: local delivery, counted failure
 *  E. after wtd_runtime_free: WTD_ERR_CLOSED, and the handles still free
 *
 * Every wait has a bound; a watchdog (WTD_TEST_WATCHDOG seconds, default 60) aborts if
 * something hangs anyway. The last line is "N passed, M failed".
 */
#define _POSIX_C_SOURCE 200809L
#define HARNESS_ACCEPT_ALL_SERVER
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

static wtd_session *g_cs[2];
static int g_got[2];
static char g_last[2][64];

/* Pull client events until the sessions have `want0` and `want1` datagrams (bounded by
 * `ms`). */
static int pull_until(int want0, int want1, int ms) {
    int64_t end = now_ms() + ms;
    for (;;) {
        if (g_got[0] >= want0 && g_got[1] >= want1) return 1;
        int64_t left = end - now_ms();
        if (left <= 0) return 0;
        wtd_event ev;
        wtd_result r = wtd_runtime_next_event(g_crt, &ev, (int32_t)left);
        if (r == WTD_ERR_TIMEOUT) return 0;
        if (!CHECK_OK(r)) return 0;
        if (ev.kind == WTD_EVENT_DATAGRAM)
            for (int i = 0; i < 2; i++)
                if (ev.session == g_cs[i]) {
                    g_got[i]++;
                    size_t n = ev.len < sizeof g_last[i] - 1 ? ev.len : sizeof g_last[i] - 1;
                    memcpy(g_last[i], ev.data, n);
                    g_last[i][n] = 0;
                }
        wtd_event_release(&ev);
    }
}

static wtd_cluster *connect_cluster(const char *nats_url) {
    wtd_cluster_config *cfg = NULL;
    wtd_cluster *c = NULL;
    if (!CHECK_OK(wtd_cluster_config_new(&cfg)) || !cfg) return NULL;
    CHECK_OK(wtd_cluster_config_add_url(cfg, nats_url));
    CHECK_OK(wtd_cluster_config_set_name(cfg, "test_cluster"));
    CHECK_OK(wtd_cluster_config_set_reconnect_delay_max_ms(cfg, 200));
    CHECK_OK(wtd_cluster_new(g_srt, cfg, &c));
    wtd_cluster_config_free(cfg);
    return c;
}

static void case_a_arguments(wtd_cluster *c, wtd_broadcaster *b) {
    wtd_cluster_config *cfg = NULL;
    wtd_cluster *x = NULL;
    wtd_cluster_broadcaster *j = NULL;
    CHECK_RC(wtd_cluster_config_new(NULL), WTD_ERR_INVALID_ARGUMENT);
    if (!CHECK_OK(wtd_cluster_config_new(&cfg)) || !cfg) return;
    CHECK_RC(wtd_cluster_config_add_url(NULL, "nats://127.0.0.1:1"), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_cluster_config_add_url(cfg, NULL), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_cluster_config_add_url(cfg, " "), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_cluster_config_set_connect_timeout_ms(cfg, 0), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_cluster_config_set_reconnect_delay_max_ms(cfg, 600001), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_cluster_config_set_ping_interval_ms(cfg, 0), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_cluster_config_set_publish_capacity(cfg, 0), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_cluster_config_set_receive_capacity(cfg, (size_t)1 << 21), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_cluster_config_set_user_password(cfg, "u", NULL), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_cluster_config_set_token(cfg, NULL), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_cluster_config_set_tls_client_certificate(cfg, "c.pem", NULL), WTD_ERR_INVALID_ARGUMENT);
    /* No URL yet. */
    CHECK_RC(wtd_cluster_new(g_srt, cfg, &x), WTD_ERR_INVALID_ARGUMENT);
    CHECK(x == NULL);
    CHECK_OK(wtd_cluster_config_add_url(cfg, "nats://[::1"));
    CHECK_RC(wtd_cluster_new(g_srt, cfg, &x), WTD_ERR_INVALID_ARGUMENT);
    wtd_cluster_config_free(cfg);
    cfg = NULL;
    CHECK_OK(wtd_cluster_config_new(&cfg));
    CHECK_OK(wtd_cluster_config_add_url(cfg, "nats://127.0.0.1:1"));
    CHECK_OK(wtd_cluster_config_set_subject_prefix(cfg, "bad prefix"));
    CHECK_RC(wtd_cluster_new(g_srt, cfg, &x), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_cluster_new(NULL, cfg, &x), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_cluster_new(g_srt, NULL, &x), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_cluster_new(g_srt, cfg, NULL), WTD_ERR_INVALID_ARGUMENT);
    wtd_cluster_config_free(cfg);

    CHECK_RC(wtd_cluster_join(NULL, "ch", b, &j), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_cluster_join(c, NULL, b, &j), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_cluster_join(c, "ch", NULL, &j), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_cluster_join(c, "ch", b, NULL), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_cluster_join(c, "a b", b, &j), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_cluster_join(c, "a.>", b, &j), WTD_ERR_INVALID_ARGUMENT);
    CHECK(j == NULL);
    size_t n = 7;
    CHECK_RC(wtd_cluster_broadcaster_broadcast(NULL, U("x"), 1, 0, 0, &n), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_cluster_broadcaster_get_stats(NULL, NULL, 0), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_cluster_broadcaster_wait_bus_ready(NULL, 0), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_cluster_get_stats(NULL, NULL, 0), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_cluster_get_stats(c, NULL, sizeof(wtd_cluster_stats)), WTD_ERR_INVALID_ARGUMENT);
    CHECK(!wtd_cluster_is_connected(NULL));
    CHECK(!wtd_cluster_broadcaster_is_bus_ready(NULL));
    CHECK_U64(wtd_cluster_broadcaster_origin(NULL), 0);
    wtd_cluster_free(NULL);
    wtd_cluster_broadcaster_free(NULL);
    wtd_cluster_config_free(NULL);
}

/* A TCP port on 127.0.0.1 that nothing listens on (bound, then released). */
static uint16_t closed_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    uint16_t port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

static void run(const char *nats_url, wtd_client *client) {
    slot_t *slot[2];
    g_cs[0] = open_session(client, "/node-a", &slot[0]);
    g_cs[1] = open_session(client, "/node-b", &slot[1]);
    if (!g_cs[0] || !g_cs[1] || !slot[0] || !slot[1]) return;

    wtd_broadcaster *ba = NULL, *bb = NULL;
    CHECK_OK(wtd_broadcaster_new(g_srt, &ba));
    CHECK_OK(wtd_broadcaster_new(g_srt, &bb));
    if (!ba || !bb) return;
    CHECK_OK(wtd_broadcaster_add_session(ba, slot[0]->session));
    CHECK_OK(wtd_broadcaster_add_session(bb, slot[1]->session));

    wtd_cluster *ca = connect_cluster(nats_url), *cb = connect_cluster(nats_url);
    if (!ca || !cb) return;
    CHECK(wtd_cluster_is_connected(ca));
    case_a_arguments(ca, ba);

    /* B: one channel, two nodes. */
    wtd_cluster_broadcaster *ja = NULL, *jb = NULL;
    CHECK_OK(wtd_cluster_join(ca, "c.room", ba, &ja));
    CHECK_OK(wtd_cluster_join(cb, "c.room", bb, &jb));
    if (!ja || !jb) return;
    CHECK(wtd_cluster_broadcaster_origin(ja) != wtd_cluster_broadcaster_origin(jb));
    CHECK_OK(wtd_cluster_broadcaster_wait_bus_ready(ja, 20000));
    CHECK_OK(wtd_cluster_broadcaster_wait_bus_ready(jb, 20000));
    CHECK(wtd_cluster_broadcaster_is_bus_ready(ja));
    size_t n = 99;
    CHECK_RC(wtd_cluster_broadcaster_broadcast(ja, U("x"), 1, 3, 0, &n), WTD_ERR_INVALID_ARGUMENT);
    CHECK_U64(n, 99);
    CHECK_RC(wtd_cluster_broadcaster_broadcast(ja, NULL, 3, 1, 0, &n), WTD_ERR_INVALID_ARGUMENT);
    CHECK_OK(wtd_cluster_broadcaster_broadcast(ja, U("from-a"), 6, 1, 0, &n));
    CHECK_U64(n, 1);
    CHECK(pull_until(1, 1, 20000));
    CHECK_STR(g_last[0], "from-a");
    CHECK_STR(g_last[1], "from-a");
    CHECK_OK(wtd_cluster_broadcaster_broadcast(jb, U("from-b"), 6, 2, 500, NULL));
    CHECK(pull_until(2, 2, 20000));
    CHECK_U64(g_got[0], 2);
    CHECK_U64(g_got[1], 2);
    CHECK_STR(g_last[0], "from-b");
    CHECK_STR(g_last[1], "from-b");

    wtd_cluster_broadcaster_stats st;
    /* The receiving side counts before it delivers; wait (bounded) for the last count. */
    int64_t end = now_ms() + 20000;
    do {
        memset(&st, 0xab, sizeof st);
        CHECK_OK(wtd_cluster_broadcaster_get_stats(ja, &st, sizeof st));
    } while (st.delivered_local < 2 && now_ms() < end && (sleep_ms(2), 1));
    CHECK_U64(st.broadcasts, 1);
    CHECK_U64(st.published, 1);
    CHECK_U64(st.bus_failures, 0);
    CHECK_U64(st.received, 1);
    CHECK_U64(st.received_invalid, 0);
    CHECK_U64(st.received_gaps, 0);
    CHECK_U64(st.delivered_local, 2);
    CHECK_U64(st.delivered_from_bus, 1);
    CHECK_U64(st.reconnects, 0);
    CHECK(st.bus_connected && st.bus_ready);
    CHECK(st.rtt_samples >= 1);
    CHECK(st.rtt_min_us <= st.rtt_avg_us && st.rtt_avg_us <= st.rtt_max_us);
    CHECK_U64(st.latency_samples, 1);
    CHECK(st.latency_min_us <= st.latency_avg_us && st.latency_avg_us <= st.latency_max_us);

    wtd_cluster_stats cs;
    CHECK_OK(wtd_cluster_get_stats(ca, &cs, sizeof cs));
    CHECK_U64(cs.connects, 1);
    CHECK_U64(cs.reconnects, 0);
    CHECK_U64(cs.disconnects, 0);
    CHECK_U64(cs.max_payload, 1024 * 1024);
    CHECK(cs.connected);

    /* C: a caller with a shorter struct gets only what it asked for. */
    unsigned char buf[sizeof(wtd_cluster_broadcaster_stats) + 8];
    memset(buf, 0xee, sizeof buf);
    CHECK_OK(wtd_cluster_broadcaster_get_stats(ja, (wtd_cluster_broadcaster_stats *)(void *)buf, 8));
    uint64_t first;
    memcpy(&first, buf, 8);
    CHECK_U64(first, 1); /* broadcasts */
    int untouched = 1;
    for (size_t i = 8; i < sizeof buf; i++) untouched &= buf[i] == 0xee;
    CHECK(untouched);

    /* D: a bus that is not there, not waited for: local delivery, counted failure. */
    wtd_cluster_config *cfg = NULL;
    wtd_cluster *absent = NULL;
    wtd_cluster_broadcaster *jx = NULL;
    char u[64];
    snprintf(u, sizeof u, "nats://127.0.0.1:%u", (unsigned)closed_port());
    CHECK_OK(wtd_cluster_config_new(&cfg));
    CHECK_OK(wtd_cluster_config_add_url(cfg, u));
    CHECK_OK(wtd_cluster_config_set_connect_timeout_ms(cfg, 1000));
    CHECK_RC(wtd_cluster_new(g_srt, cfg, &absent), WTD_ERR_CONNECT);
    CHECK_OK(wtd_cluster_config_set_wait_for_connection(cfg, false));
    CHECK_OK(wtd_cluster_new(g_srt, cfg, &absent));
    wtd_cluster_config_free(cfg);
    if (absent) {
        CHECK(!wtd_cluster_is_connected(absent));
        CHECK_OK(wtd_cluster_join(absent, "c.room", ba, &jx));
        CHECK_OK(wtd_cluster_broadcaster_broadcast(jx, U("alone"), 5, 1, 0, &n));
        CHECK_U64(n, 1);
        CHECK(pull_until(3, 2, 20000)); /* client 0 only: the bus is not there */
        CHECK_U64(g_got[0], 3);
        CHECK_STR(g_last[0], "alone");
        CHECK_OK(wtd_cluster_broadcaster_get_stats(jx, &st, sizeof st));
        CHECK_U64(st.published, 0);
        CHECK_U64(st.bus_failures, 1);
        CHECK(!st.bus_ready);
        CHECK_RC(wtd_cluster_broadcaster_wait_bus_ready(jx, 0), WTD_ERR_TIMEOUT);
    }

    /* E: the runtime goes; the handles answer CLOSED and still free. */
    wtd_client_free(client);
    CHECK_OK(wtd_runtime_free(g_crt));
    g_crt = NULL;
    wtd_server_free(g_server);
    g_server = NULL;
    CHECK_OK(wtd_runtime_free(g_srt));
    CHECK_RC(wtd_cluster_broadcaster_broadcast(ja, U("late"), 4, 1, 0, &n), WTD_ERR_CLOSED);
    CHECK_RC(wtd_cluster_broadcaster_wait_bus_ready(ja, 0), WTD_ERR_CLOSED);
    CHECK(!wtd_cluster_is_connected(ca));
    CHECK(!wtd_cluster_broadcaster_is_bus_ready(ja));
    wtd_cluster_broadcaster_free(jx);
    wtd_cluster_broadcaster_free(ja);
    wtd_cluster_broadcaster_free(jb);
    wtd_cluster_free(absent);
    wtd_cluster_free(ca);
    wtd_cluster_free(cb);
    wtd_broadcaster_free(ba);
    wtd_broadcaster_free(bb);
    g_srt = NULL;
    for (int i = 0; i < 2; i++) wtd_session_free(g_cs[i]);
}

int main(void) {
    harness_begin("test_cluster", 60);
    const char *nats_url = getenv("WTD_NATS_URL");
    if (!CHECK(nats_url != NULL && nats_url[0] != '\0')) {
        fprintf(stderr, "test_cluster: WTD_NATS_URL is not set (run through tests/c/run_with_nats.sh)\n");
        return harness_finish();
    }
    if (start_endpoints()) {
        wtd_client *client = make_client(NULL);
        if (client) run(nats_url, client);
    }
    stop_endpoints(NULL);
    return harness_finish();
}
