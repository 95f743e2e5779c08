/*
 * harness.h: the shared harness of the C ABI test programs (tests/c/test_*.c).
 *
 *  - assertions: CHECK, CHECK_RC, CHECK_OK, CHECK_STR, CHECK_U64 with pass/fail counters;
 *    harness_finish() prints the final "N passed, M failed" line and gives the exit code
 *  - harness_begin(): the watchdog (WTD_TEST_WATCHDOG seconds, 0 = off) and unbuffered
 *    stderr
 *  - time: now_ms, sleep_ms
 *  - loopback: the fixture globals (g_srt, g_crt, g_server, g_hash, g_port), url, U,
 *    make_client_on / make_client, harness_start_fixture
 *  - with HARNESS_ACCEPT_ALL_SERVER defined before the include: a callback-mode server
 *    that accepts and keeps every session in a slot (slot_t, wait_slot, start_endpoints,
 *    open_session, stop_endpoints)
 *
 * Define HARNESS_STRICT_LAST_ERROR to 1 before the include to make CHECK_RC also require,
 * for an error code, that wtd_last_error_message() reports the length of wtd_last_error().
 *
 * Header-only: everything is static (inline), so each program gets its own copy.
 */
#ifndef WTD_TESTS_C_HARNESS_H
#define WTD_TESTS_C_HARNESS_H

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

#ifndef HARNESS_STRICT_LAST_ERROR
#define HARNESS_STRICT_LAST_ERROR 0
#endif

#define HARNESS_UNUSED __attribute__((unused))

/* ------------------------------------------------------------------------------------ */
/* Assertions                                                                            */

static atomic_int g_pass, g_fail;

static inline int check_impl(int ok, const char *expr, const char *file, int line) {
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

/* Checks `want == got`; for an error code also that wtd_last_error() is non-empty (and,
 * with HARNESS_STRICT_LAST_ERROR, that wtd_last_error_message() reports the same length). */
static inline int check_rc_impl(wtd_result got, wtd_result want, const char *expr,
                                const char *file, int line) {
    const char *msg = wtd_last_error();
    int ok = got == want;
#if HARNESS_STRICT_LAST_ERROR
    if (ok && want != WTD_OK)
        ok = msg != NULL && msg[0] != '\0' && wtd_last_error_message(NULL, 0) == strlen(msg);
#else
    if (ok && want != WTD_OK) ok = msg != NULL && msg[0] != '\0';
#endif
    if (ok) {
        atomic_fetch_add(&g_pass, 1);
    } else {
        atomic_fetch_add(&g_fail, 1);
        if (HARNESS_STRICT_LAST_ERROR && got == WTD_OK) /* the last error is stale then */
            fprintf(stderr, "%s:%d: FAILED: %s returned WTD_OK, expected %s\n", file, line, expr,
                    wtd_result_name(want));
        else
            fprintf(stderr, "%s:%d: FAILED: %s returned %s, expected %s (wtd_last_error: \"%s\")\n",
                    file, line, expr, wtd_result_name(got), wtd_result_name(want), msg ? msg : "(NULL)");
        fflush(stderr);
    }
    return ok;
}

static inline int check_u64_impl(uint64_t a, uint64_t b, const char *expr, const char *file,
                                 int line) {
    if (a != b)
        fprintf(stderr, "%s:%d: values: %llu vs %llu\n", file, line, (unsigned long long)a,
                (unsigned long long)b);
    return check_impl(a == b, expr, file, line);
}

#define CHECK(expr) check_impl(!!(expr), #expr, __FILE__, __LINE__)
#define CHECK_RC(call, want) check_rc_impl((call), (want), #call, __FILE__, __LINE__)
#define CHECK_OK(call) CHECK_RC(call, WTD_OK)
#define CHECK_STR(a, b) check_impl((a) != NULL && strcmp((a), (b)) == 0, #a " == " #b, __FILE__, __LINE__)
#define CHECK_U64(a, b) check_u64_impl((uint64_t)(a), (uint64_t)(b), #a " == " #b, __FILE__, __LINE__)

/* Prints "N passed, M failed"; the exit code: 0 when nothing failed and something passed. */
static inline int harness_finish(void) {
    int pass = atomic_load(&g_pass), fail = atomic_load(&g_fail);
    printf("%d passed, %d failed\n", pass, fail);
    fflush(stdout);
    return fail == 0 && pass > 0 ? 0 : 1;
}

/* ------------------------------------------------------------------------------------ */
/* Time                                                                                  */

static inline int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------------------------ */
/* Watchdog                                                                              */

static const char *g_harness_name HARNESS_UNUSED;

static inline void harness_watchdog(int sig) {
    (void)sig;
    static const char msg[] = "watchdog expired, aborting\n";
    ssize_t w;
    if (g_harness_name) {
        w = write(2, g_harness_name, strlen(g_harness_name));
        w = write(2, ": ", 2);
    }
    w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit(3);
}

/* Arms the watchdog (WTD_TEST_WATCHDOG seconds, `default_s` when unset, 0 = off); its
 * message is prefixed by `name` (may be NULL). Makes stderr unbuffered. */
static inline void harness_begin(const char *name, int default_s) {
    g_harness_name = name;
    const char *wd = getenv("WTD_TEST_WATCHDOG");
    int watchdog_s = wd ? atoi(wd) : default_s;
    if (watchdog_s > 0) {
        signal(SIGALRM, harness_watchdog);
        alarm((unsigned)watchdog_s);
    }
    setvbuf(stderr, NULL, _IONBF, 0);
}

/* ------------------------------------------------------------------------------------ */
/* Loopback                                                                              */

static wtd_runtime *g_srt HARNESS_UNUSED;   /* server runtime, callback mode */
static wtd_runtime *g_crt HARNESS_UNUSED;   /* client runtime, pull mode */
static wtd_server *g_server HARNESS_UNUSED; /* the test server */
static uint8_t g_hash[32] HARNESS_UNUSED;   /* its certificate hash */
static uint16_t g_port HARNESS_UNUSED;      /* its port */

static inline int url(char *buf, size_t cap, uint16_t port, const char *path) {
    return snprintf(buf, cap, "https://127.0.0.1:%u%s", (unsigned)port, path);
}

static inline const uint8_t *U(const char *s) { return (const uint8_t *)s; }

/* A client on `rt` that pins certificate `hash`, with optional transport `t`. */
static inline wtd_client *make_client_on(wtd_runtime *rt, const wtd_transport_config *t,
                                         const uint8_t *hash) {
    wtd_client_config *cfg = NULL;
    wtd_client *c = NULL;
    if (!CHECK_OK(wtd_client_config_new(&cfg)) || !cfg) return NULL;
    CHECK_OK(wtd_client_config_add_cert_hash(cfg, hash, 32));
    if (t) CHECK_OK(wtd_client_config_set_transport(cfg, t));
    CHECK_OK(wtd_client_new(rt, cfg, &c));
    wtd_client_config_free(cfg);
    return c;
}

/* A client on g_crt pinning g_hash; `t` may be NULL. */
static inline wtd_client *make_client(const wtd_transport_config *t) {
    return make_client_on(g_crt, t, g_hash);
}

/* Brings up the loopback fixture: g_srt (callback mode, events to `cb`), g_server on
 * 127.0.0.1:0 (g_port, g_hash), g_crt (pull mode). Returns how far it got: 0 nothing,
 * 1 g_srt only, 2 g_srt and g_server, 3 everything. */
static inline int harness_start_fixture(wtd_event_callback cb) {
    wtd_runtime_config *rcfg = NULL;
    if (!CHECK_OK(wtd_runtime_config_new(&rcfg)) || !rcfg) return 0;
    CHECK_OK(wtd_runtime_config_set_event_callback(rcfg, cb, NULL, NULL));
    if (!CHECK_OK(wtd_runtime_new(rcfg, &g_srt)) || !g_srt) {
        wtd_runtime_config_free(rcfg);
        return 0;
    }
    wtd_runtime_config_free(rcfg);
    wtd_server_config *scfg = NULL;
    CHECK_OK(wtd_server_config_new(&scfg));
    CHECK_OK(wtd_server_config_set_bind(scfg, "127.0.0.1:0"));
    if (!CHECK_OK(wtd_server_new(g_srt, scfg, &g_server)) || !g_server) {
        wtd_server_config_free(scfg);
        return 1;
    }
    wtd_server_config_free(scfg);
    g_port = wtd_server_port(g_server);
    CHECK(g_port != 0);
    CHECK_OK(wtd_server_cert_hash(g_server, g_hash, sizeof g_hash));
    if (!CHECK_OK(wtd_runtime_new(NULL, &g_crt)) || !g_crt) return 2;
    return 3;
}

#ifdef HARNESS_ACCEPT_ALL_SERVER
/* ------------------------------------------------------------------------------------ */
/* Server: callback mode, accepts every session and keeps it                             */

#ifndef MAX_SLOTS /* a program may ask for more before the include */
#define MAX_SLOTS 16
#endif

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

static inline void on_server_event(const wtd_event *ev, void *userdata) {
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

static inline slot_t *wait_slot(const char *path, int ms) {
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
static inline int start_endpoints(void) {
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

/* Open a client session at `path` and wait for the server's slot. */
static inline wtd_session *open_session(wtd_client *client, const char *path, slot_t **out_slot) {
    char u[128];
    url(u, sizeof u, g_port, path);
    wtd_session *s = NULL;
    *out_slot = NULL;
    if (!CHECK_OK(wtd_client_open_session(client, u, NULL, 0, 10000, &s)) || !s) return NULL;
    *out_slot = wait_slot(path, 5000);
    CHECK(*out_slot != NULL);
    return s;
}

/* Free everything start_endpoints made, after the test freed its client sessions. */
static inline void stop_endpoints(wtd_client *client) {
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
#endif /* HARNESS_ACCEPT_ALL_SERVER */

#endif /* WTD_TESTS_C_HARNESS_H */
