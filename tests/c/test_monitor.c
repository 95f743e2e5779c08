/*
 * test_monitor: the stream monitor (wtd_monitor_*) through the C ABI, on a client-side
 * stream of a real loopback session. The server runtime (callback mode) accepts the
 * session; the client runtime is in pull mode, so alert callbacks run inside
 * wtd_runtime_next_event on this thread.
 *
 *  A. bad arguments and options (NULL handles/outputs, ranges, userdata_free on error)
 *  B. sample_now on a quiet stream: the sample's fields, no alerts
 *  C. a low send success rate (oversize sends are TOO_LARGE drops): the alert is
 *     recorded and the callback invoked; replacing the callback and freeing the monitor
 *     run each userdata_free exactly once
 *  D. rings bounded (custom and default capacities, oldest dropped)
 *  E. start / stop / is_monitoring with a 10 ms interval
 *
 * (The queue-fill and send-time-trend rules are covered deterministically by the Rust
 * tests; a C program cannot stall the stream's sender task without a packet relay.)
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
/* Alert callbacks                                                                       */

typedef struct {
    atomic_int calls, frees;
    wtd_alert_kind last_kind;
    double last_value;
    char last_message[256];
} sink_t;

static void on_alert(const wtd_monitor_alert *a, void *userdata) {
    sink_t *s = userdata;
    s->last_kind = a->kind;
    s->last_value = a->value;
    memcpy(s->last_message, a->message, sizeof s->last_message);
    atomic_fetch_add(&s->calls, 1);
}

static void free_sink(void *userdata) {
    sink_t *s = userdata;
    atomic_fetch_add(&s->frees, 1);
}

/* Pull client events (which runs queued alert callbacks) until `cond` or `ms`. */
static int pump_until(atomic_int *counter, int want, int ms) {
    int64_t end = now_ms() + ms;
    while (atomic_load(counter) < want) {
        int64_t left = end - now_ms();
        if (left <= 0) return 0;
        wtd_event ev;
        wtd_result r = wtd_runtime_next_event(g_crt, &ev, (int32_t)(left < 20 ? left : 20));
        if (r == WTD_OK) wtd_event_release(&ev);
        else if (r != WTD_ERR_TIMEOUT) return 0;
    }
    return 1;
}

/* Pull whatever is queued for `ms` (runs or drops queued callbacks). */
static void pump(int ms) {
    atomic_int never = 0;
    pump_until(&never, 1, ms);
}

/* ------------------------------------------------------------------------------------ */
/* Cases                                                                                 */

static void case_a_arguments(wtd_stream *st) {
    wtd_monitor_config *c = NULL;
    CHECK_RC(wtd_monitor_config_new(NULL), WTD_ERR_INVALID_ARGUMENT);
    if (!CHECK_OK(wtd_monitor_config_new(&c)) || !c) return;
    CHECK_RC(wtd_monitor_config_set_interval(NULL, 10), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_monitor_config_set_interval(c, 0), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_monitor_config_set_capacities(c, 0, 5), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_monitor_config_set_capacities(c, 5, 0), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_monitor_config_set_thresholds(c, 1.5, 0.8, 10, 1.25), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_monitor_config_set_thresholds(c, 0.9, -0.1, 10, 1.25), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_monitor_config_set_thresholds(c, 0.9, 0.8, 1, 1.25), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_monitor_config_set_thresholds(c, 0.9, 0.8, 10, -1.0), WTD_ERR_INVALID_ARGUMENT);
    CHECK_OK(wtd_monitor_config_set_thresholds(c, 0.9, 0.8, 10, 1.25));

    wtd_monitor *m = NULL;
    CHECK_RC(wtd_monitor_new(NULL, c, &m), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_monitor_new(st, c, NULL), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_monitor_start(NULL), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_monitor_stop(NULL), WTD_ERR_INVALID_ARGUMENT);
    CHECK(!wtd_monitor_is_monitoring(NULL));
    CHECK_RC(wtd_monitor_sample_now(NULL, NULL), WTD_ERR_INVALID_ARGUMENT);
    size_t n = 99;
    CHECK_RC(wtd_monitor_get_samples(NULL, NULL, 0, &n), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_monitor_get_alerts(NULL, NULL, 0, &n), WTD_ERR_INVALID_ARGUMENT);
    sink_t sink;
    memset(&sink, 0, sizeof sink);
    CHECK_RC(wtd_monitor_set_alert_callback(NULL, on_alert, &sink, free_sink), WTD_ERR_INVALID_ARGUMENT);
    CHECK_U64(atomic_load(&sink.frees), 1); /* freed even on error */
    if (CHECK_OK(wtd_monitor_new(st, c, &m)) && m) {
        CHECK_RC(wtd_monitor_get_samples(m, NULL, 5, &n), WTD_ERR_INVALID_ARGUMENT);
        CHECK_RC(wtd_monitor_get_samples(m, NULL, 0, NULL), WTD_ERR_INVALID_ARGUMENT);
        CHECK_OK(wtd_monitor_get_samples(m, NULL, 0, &n));
        CHECK_U64(n, 0);
        CHECK_RC(wtd_monitor_get_alerts(m, NULL, 5, &n), WTD_ERR_INVALID_ARGUMENT);
        /* NULL callback: removes, and frees the given userdata at once. */
        CHECK_OK(wtd_monitor_set_alert_callback(m, NULL, &sink, free_sink));
        CHECK_U64(atomic_load(&sink.frees), 2);
        wtd_monitor_free(m);
    }
    wtd_monitor_free(NULL);
    wtd_monitor_config_free(c);
    wtd_monitor_config_free(NULL);
}

static void case_b_quiet(wtd_stream *st) {
    wtd_monitor *m = NULL;
    if (!CHECK_OK(wtd_monitor_new(st, NULL, &m)) || !m) return;
    CHECK(!wtd_monitor_is_monitoring(m));
    wtd_monitor_sample s;
    memset(&s, 0xff, sizeof s);
    CHECK_OK(wtd_monitor_sample_now(m, &s));
    CHECK(s.timestamp > 1.6e9);
    CHECK_U64(s.queue_size, 0);
    CHECK_U64(s.queue_limit, 10);
    CHECK(s.send_success_rate == 1.0);
    CHECK_U64(s.datagrams_sent, 0);
    CHECK_U64(s.send_attempts, 0);
    CHECK_OK(wtd_monitor_sample_now(m, NULL));
    wtd_monitor_sample out[4];
    size_t n = 0;
    CHECK_OK(wtd_monitor_get_samples(m, out, 4, &n));
    CHECK_U64(n, 2);
    CHECK(out[0].timestamp == s.timestamp);
    CHECK_OK(wtd_monitor_get_alerts(m, NULL, 0, &n));
    CHECK_U64(n, 0);
    wtd_monitor_alert a[2];
    CHECK_OK(wtd_monitor_get_alerts(m, a, 2, &n));
    CHECK_U64(n, 0);
    wtd_monitor_free(m);
}

static void case_c_low_success(wtd_stream *st) {
    wtd_monitor *m = NULL;
    if (!CHECK_OK(wtd_monitor_new(st, NULL, &m)) || !m) return;
    sink_t s1, s2;
    memset(&s1, 0, sizeof s1);
    memset(&s2, 0, sizeof s2);
    CHECK_OK(wtd_monitor_set_alert_callback(m, on_alert, &s1, free_sink));

    /* No path allows 65536 bytes (max + 1 could race path MTU discovery). */
    size_t max = 65536;
    uint8_t *big = calloc(max, 1);
    if (!CHECK(big != NULL)) return;
    CHECK_RC(wtd_stream_send(st, big, max, 0, 0), WTD_ERR_TOO_LARGE);

    wtd_monitor_sample smp;
    CHECK_OK(wtd_monitor_sample_now(m, &smp));
    CHECK(smp.send_success_rate == 0.0);
    CHECK_U64(smp.send_attempts, 1);
    wtd_monitor_alert a[4];
    size_t n = 0;
    CHECK_OK(wtd_monitor_get_alerts(m, a, 4, &n));
    CHECK_U64(n, 1);
    CHECK(a[0].kind == WTD_ALERT_LOW_SUCCESS_RATE);
    CHECK(a[0].value == 0.0);
    CHECK(a[0].timestamp == smp.timestamp);
    CHECK(strlen(a[0].message) > 0 && strlen(a[0].message) < sizeof a[0].message);
    CHECK(strstr(a[0].message, "success rate") != NULL);

    /* The callback runs where events are delivered: here, in wtd_runtime_next_event. */
    CHECK(pump_until(&s1.calls, 1, 5000));
    CHECK(s1.last_kind == WTD_ALERT_LOW_SUCCESS_RATE);
    CHECK(s1.last_value == 0.0);
    CHECK(strcmp(s1.last_message, a[0].message) == 0);

    /* Replace: the old userdata is freed exactly once, the new callback gets alerts. */
    CHECK_OK(wtd_monitor_set_alert_callback(m, on_alert, &s2, free_sink));
    pump(50);
    CHECK_U64(atomic_load(&s1.frees), 1);
    CHECK_OK(wtd_monitor_sample_now(m, NULL));
    CHECK(pump_until(&s2.calls, 1, 5000));
    CHECK_U64(atomic_load(&s1.calls), 1);
    /* A queued call for a freed monitor is skipped; userdata_free still runs once. */
    CHECK_OK(wtd_monitor_sample_now(m, NULL));
    wtd_monitor_free(m);
    pump(100);
    CHECK_U64(atomic_load(&s2.calls), 1);
    CHECK_U64(atomic_load(&s2.frees), 1);
    CHECK_U64(atomic_load(&s1.frees), 1);
    free(big);
}

static void case_d_rings(wtd_stream *st) {
    /* The stream has a failed send (case C): every sample raises one alert. */
    wtd_monitor_config *c = NULL;
    wtd_monitor *m = NULL;
    if (!CHECK_OK(wtd_monitor_config_new(&c)) || !c) return;
    CHECK_OK(wtd_monitor_config_set_capacities(c, 5, 3));
    if (CHECK_OK(wtd_monitor_new(st, c, &m)) && m) {
        wtd_monitor_sample taken[8];
        for (int i = 0; i < 8; i++) CHECK_OK(wtd_monitor_sample_now(m, &taken[i]));
        wtd_monitor_sample out[10];
        size_t n = 0;
        CHECK_OK(wtd_monitor_get_samples(m, out, 10, &n));
        CHECK_U64(n, 5);
        for (size_t i = 0; i < n; i++) CHECK(out[i].timestamp == taken[3 + i].timestamp);
        CHECK_OK(wtd_monitor_get_samples(m, out, 2, &n)); /* the newest 2 */
        CHECK_U64(n, 2);
        CHECK(out[0].timestamp == taken[6].timestamp && out[1].timestamp == taken[7].timestamp);
        wtd_monitor_alert a[10];
        CHECK_OK(wtd_monitor_get_alerts(m, a, 10, &n));
        CHECK_U64(n, 3);
        for (size_t i = 0; i < n; i++) CHECK(a[i].timestamp == taken[5 + i].timestamp);
        wtd_monitor_free(m);
    }
    wtd_monitor_config_free(c);

    /* Defaults: 100 samples, 50 alerts. */
    m = NULL;
    if (CHECK_OK(wtd_monitor_new(st, NULL, &m)) && m) {
        for (int i = 0; i < 130; i++) wtd_monitor_sample_now(m, NULL);
        static wtd_monitor_sample out[200];
        static wtd_monitor_alert a[200];
        size_t n = 0;
        CHECK_OK(wtd_monitor_get_samples(m, out, 200, &n));
        CHECK_U64(n, 100);
        CHECK_OK(wtd_monitor_get_alerts(m, a, 200, &n));
        CHECK_U64(n, 50);
        int ordered = 1;
        for (size_t i = 1; i < 100; i++) ordered &= out[i].timestamp >= out[i - 1].timestamp;
        CHECK(ordered);
        wtd_monitor_free(m);
    }
}

static void case_e_start_stop(wtd_stream *st) {
    wtd_monitor_config *c = NULL;
    wtd_monitor *m = NULL;
    if (!CHECK_OK(wtd_monitor_config_new(&c)) || !c) return;
    CHECK_OK(wtd_monitor_config_set_interval(c, 10));
    if (CHECK_OK(wtd_monitor_new(st, c, &m)) && m) {
        CHECK(!wtd_monitor_is_monitoring(m));
        CHECK_OK(wtd_monitor_start(m));
        CHECK_OK(wtd_monitor_start(m)); /* no-op */
        CHECK(wtd_monitor_is_monitoring(m));
        size_t n = 0;
        int64_t end = now_ms() + 5000;
        do {
            sleep_ms(5);
            wtd_monitor_get_samples(m, NULL, 0, &n);
            static wtd_monitor_sample buf[100];
            CHECK_OK(wtd_monitor_get_samples(m, buf, 100, &n));
        } while (n < 3 && now_ms() < end);
        CHECK(n >= 3);
        CHECK_OK(wtd_monitor_stop(m));
        CHECK(!wtd_monitor_is_monitoring(m));
        CHECK_OK(wtd_monitor_stop(m));
        wtd_monitor_free(m); /* while stopped */
        m = NULL;
        /* Freed while running: the task stops with it. */
        if (CHECK_OK(wtd_monitor_new(st, c, &m)) && m) {
            CHECK_OK(wtd_monitor_start(m));
            CHECK(wtd_monitor_is_monitoring(m));
            wtd_monitor_free(m);
        }
    }
    wtd_monitor_config_free(c);
    pump(50); /* drop any queued callbacks (none are set here) */
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
    wtd_session *cs = NULL;
    wtd_stream *st = NULL;
    if (start_endpoints()) {
        client = make_client(NULL);
        slot_t *slot = NULL;
        if (CHECK(client != NULL)) cs = open_session(client, "/monitor", &slot);
        wtd_stream_config *sc = NULL;
        CHECK_OK(wtd_stream_config_new(&sc));
        CHECK_OK(wtd_stream_config_set_queues(sc, 10, 100));
        if (cs && CHECK_OK(wtd_stream_new(cs, sc, &st)) && st) {
            case_a_arguments(st);
            case_b_quiet(st);
            case_c_low_success(st);
            case_d_rings(st);
            case_e_start_stop(st);
        }
        wtd_stream_config_free(sc);
    }
    wtd_stream_free(st);
    wtd_session_free(cs);
    stop_endpoints(client);
    int pass = atomic_load(&g_pass), fail = atomic_load(&g_fail);
    printf("%d passed, %d failed\n", pass, fail);
    fflush(stdout);
    return fail == 0 && pass > 0 ? 0 : 1;
}
