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
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wtdatagram.h"

/* ------------------------------------------------------------------------------------ */
/* Assertions                                                                            */

static atomic_int g_pass, g_fail;

static int check_impl(int ok, const char *expr, const char *file, int line) {
    if (ok) {
        atomic_fetch_add(&g_pass, 1);
    } else {
        atomic_fetch_add(&g_fail, 1);
        fprintf(stderr, "%s:%d: FAILED: %s (wtd_last_error: \"%s\")\n", file, line, expr,
                wtd_last_error());
        fflush(stderr);
    }
    return ok;
}

/* Checks `want == got`; for an error code also that wtd_last_error() is non-empty. */
static int check_rc_impl(wtd_result got, wtd_result want, const char *expr, const char *file,
                         int line) {
    const char *msg = wtd_last_error();
    int ok = got == want;
    if (ok && want != WTD_OK) ok = msg != NULL && msg[0] != '\0';
    if (ok) {
        atomic_fetch_add(&g_pass, 1);
    } else {
        atomic_fetch_add(&g_fail, 1);
        fprintf(stderr, "%s:%d: FAILED: %s returned %s, expected %s (wtd_last_error: \"%s\")\n",
                file, line, expr, wtd_result_name(got), wtd_result_name(want), msg ? msg : "(NULL)");
        fflush(stderr);
    }
    return ok;
}

#define CHECK(expr) check_impl(!!(expr), #expr, __FILE__, __LINE__)
#define CHECK_RC(call, want) check_rc_impl((call), (want), #call, __FILE__, __LINE__)
#define CHECK_OK(call) CHECK_RC(call, WTD_OK)
#define CHECK_U64(a, b) check_u64_impl((uint64_t)(a), (uint64_t)(b), #a " == " #b, __FILE__, __LINE__)

static int check_u64_impl(uint64_t a, uint64_t b, const char *expr, const char *file, int line) {
    if (a != b)
        fprintf(stderr, "%s:%d: values: %llu vs %llu\n", file, line, (unsigned long long)a,
                (unsigned long long)b);
    return check_impl(a == b, expr, file, line);
}

/* ------------------------------------------------------------------------------------ */
/* Helpers                                                                               */

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void watchdog(int sig) {
    (void)sig;
    static const char msg[] = "watchdog expired, aborting\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit(3);
}

/* ------------------------------------------------------------------------------------ */
/* Server: callback mode, accepts every session and keeps it                             */

#define MAX_SLOTS 16

typedef struct {
    int used;
    char path[64];
    wtd_session *session;
    int closed;
} slot_t;

static struct {
    pthread_mutex_t mu;
    slot_t slots[MAX_SLOTS];
} g_srv = {.mu = PTHREAD_MUTEX_INITIALIZER};

static wtd_runtime *g_srt; /* server runtime, callback mode */
static wtd_runtime *g_crt; /* client runtime, pull mode */
static wtd_server *g_server;
static uint8_t g_hash[32];
static uint16_t g_port;

static void on_server_event(const wtd_event *ev, void *userdata) {
    (void)userdata;
    if (ev->kind == WTD_EVENT_SESSION_REQUEST) {
        wtd_session_request *req = ev->request;
        const char *p = wtd_session_request_path(req);
        char path[64];
        snprintf(path, sizeof path, "%s", p ? p : "?");
        wtd_session *s = NULL;
        if (!CHECK_OK(wtd_session_request_accept(req, &s)) || !s) return;
        pthread_mutex_lock(&g_srv.mu);
        slot_t *slot = NULL;
        for (int i = 0; i < MAX_SLOTS; i++)
            if (!g_srv.slots[i].used) {
                slot = &g_srv.slots[i];
                break;
            }
        if (slot) {
            memset(slot, 0, sizeof *slot);
            snprintf(slot->path, sizeof slot->path, "%s", path);
            slot->session = s;
            slot->used = 1;
        }
        pthread_mutex_unlock(&g_srv.mu);
        if (!CHECK(slot != NULL)) {
            wtd_session_free(s);
            return;
        }
        CHECK_OK(wtd_session_set_userdata(s, slot));
    } else if (ev->kind == WTD_EVENT_SESSION_CLOSED) {
        slot_t *slot = ev->userdata;
        if (!slot) return;
        pthread_mutex_lock(&g_srv.mu);
        slot->closed = 1;
        pthread_mutex_unlock(&g_srv.mu);
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

/* Server runtime + server; client runtime (pull mode). 1 on success. */
static int start_endpoints(void) {
    wtd_runtime_config *rcfg = NULL;
    if (!CHECK_OK(wtd_runtime_config_new(&rcfg)) || !rcfg) return 0;
    CHECK_OK(wtd_runtime_config_set_event_callback(rcfg, on_server_event, NULL, NULL));
    wtd_result r = wtd_runtime_new(rcfg, &g_srt);
    wtd_runtime_config_free(rcfg);
    if (!CHECK_OK(r) || !g_srt) return 0;
    wtd_server_config *scfg = NULL;
    CHECK_OK(wtd_server_config_new(&scfg));
    CHECK_OK(wtd_server_config_set_bind(scfg, "127.0.0.1:0"));
    r = wtd_server_new(g_srt, scfg, &g_server);
    wtd_server_config_free(scfg);
    if (!CHECK_OK(r) || !g_server) return 0;
    g_port = wtd_server_port(g_server);
    CHECK_OK(wtd_server_cert_hash(g_server, g_hash, sizeof g_hash));
    return CHECK_OK(wtd_runtime_new(NULL, &g_crt)) && g_crt;
}

/* A client; `t` may be NULL. */
static wtd_client *make_client(const wtd_transport_config *t) {
    wtd_client_config *cfg = NULL;
    wtd_client *c = NULL;
    if (!CHECK_OK(wtd_client_config_new(&cfg)) || !cfg) return NULL;
    CHECK_OK(wtd_client_config_add_cert_hash(cfg, g_hash, 32));
    if (t) CHECK_OK(wtd_client_config_set_transport(cfg, t));
    CHECK_OK(wtd_client_new(g_crt, cfg, &c));
    wtd_client_config_free(cfg);
    return c;
}

/* Open a client session at `path` and wait for the server's slot. */
static wtd_session *open_session(wtd_client *client, const char *path, slot_t **out_slot) {
    char u[128];
    snprintf(u, sizeof u, "https://127.0.0.1:%u%s", (unsigned)g_port, path);
    wtd_session *s = NULL;
    *out_slot = NULL;
    if (!CHECK_OK(wtd_client_open_session(client, u, NULL, 0, 10000, &s)) || !s) return NULL;
    *out_slot = wait_slot(path, 5000);
    CHECK(*out_slot != NULL);
    return s;
}

/* Free everything start_endpoints made, after the test freed its client sessions. */
static void stop_endpoints(wtd_client *client) {
    wtd_client_free(client);
    if (g_crt) CHECK_OK(wtd_runtime_free(g_crt));
    g_crt = NULL;
    wtd_server_free(g_server);
    g_server = NULL;
    if (g_srt) CHECK_OK(wtd_runtime_free(g_srt));
    g_srt = NULL;
    for (int i = 0; i < MAX_SLOTS; i++)
        if (g_srv.slots[i].used && g_srv.slots[i].session) {
            wtd_session_free(g_srv.slots[i].session);
            g_srv.slots[i].session = NULL;
        }
}

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
    const char *wd = getenv("WTD_TEST_WATCHDOG");
    int watchdog_s = wd ? atoi(wd) : 60;
    if (watchdog_s > 0) {
        signal(SIGALRM, watchdog);
        alarm((unsigned)watchdog_s);
    }
    setvbuf(stderr, NULL, _IONBF, 0);
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
    int pass = atomic_load(&g_pass), fail = atomic_load(&g_fail);
    printf("%d passed, %d failed\n", pass, fail);
    fflush(stdout);
    return fail == 0 && pass > 0 ? 0 : 1;
}
