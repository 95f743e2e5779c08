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
#define HARNESS_ACCEPT_ALL_SERVER
#include "harness.h"

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
    harness_begin("test_monitor", 60);
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
    return harness_finish();
}
