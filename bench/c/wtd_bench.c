/*
 * wtd_bench: the C ABI benchmark driver of scripts/bench.sh. Client and server run in
 * this one process on loopback (except `sessions`, whose server is a forked child so
 * its memory can be measured alone), with the library's default settings.
 *
 *   wtd_bench oneway SIZE SECS [single|batch]   one-way delivered datagrams/s, MB/s,
 *                                               loss %, CPU time per datagram
 *   wtd_bench rtt SIZE COUNT                    echo round trips, p50/p99
 *   wtd_bench fanout SESSIONS ROUNDS            one broadcast to SESSIONS sessions
 *   wtd_bench sessions COUNT PER_CONNECTION     idle sessions on one server: memory
 *   wtd_bench cluster SESSIONS ROUNDS NATS_URL  one broadcast to SESSIONS sessions over
 *                                               3 nodes joined through NATS
 *
 * `single`: wtd_session_send_wait / wtd_session_recv, one datagram per call.
 * `batch`: wtd_session_send_multiple / wtd_session_recv_multiple, up to 64 per call.
 * Receivers use pull mode (datagram events off) on a thread of their own; the sender is
 * backpressured (it waits for room in the send buffer, never drops).
 *
 * Prints one JSON line per result on stdout (fields: bench/README.md). Every loop is
 * bounded by a count and a deadline. Exit status 0 on success, 1 on failure.
 *
 * Built with -DWTD_BENCH_BEFORE_BATCH_API it also links against a library from before
 * wtd_session_send_multiple / _recv_multiple / _set_recv_queue_bytes (single mode only),
 * for before/after comparisons.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "wtdatagram.h"

#define BATCH 64
#define MAX_DGRAM 1500

static void die(const char *what, wtd_result rc) {
    fprintf(stderr, "wtd_bench: %s: %s (%s)\n", what, wtd_result_name(rc), wtd_last_error());
    exit(1);
}

#define TRY(call)                                                                            \
    do {                                                                                     \
        wtd_result rc_ = (call);                                                             \
        if (rc_ != WTD_OK) die(#call, rc_);                                                  \
    } while (0)

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------------------------ */
/* A loopback pair: one runtime in callback mode whose callback accepts every session
 * request; the server's sessions land in a small array. */

#define MAX_ACCEPTED 20000

typedef struct {
    wtd_runtime *rt;
    wtd_server *srv;
    uint8_t hash[32];
    char url[128];
    wtd_session *accepted[MAX_ACCEPTED];
    atomic_size_t n_accepted;
    atomic_uint_fast64_t datagram_events; /* DATAGRAM events seen (fan-out clients) */
} pair_t;

static void on_event(const wtd_event *ev, void *ud) {
    pair_t *p = ud;
    switch (ev->kind) {
    case WTD_EVENT_SESSION_REQUEST: {
        wtd_session *s = NULL;
        if (wtd_session_request_accept(ev->request, &s) != WTD_OK) {
            fprintf(stderr, "wtd_bench: accept: %s\n", wtd_last_error());
            break;
        }
        size_t i = atomic_fetch_add(&p->n_accepted, 1);
        if (i < MAX_ACCEPTED)
            p->accepted[i] = s;
        else
            wtd_session_free(s);
        break;
    }
    case WTD_EVENT_DATAGRAM:
        atomic_fetch_add_explicit(&p->datagram_events, 1, memory_order_relaxed);
        break;
    default:
        break;
    }
}

static wtd_transport_config *transport(bool datagram_events) {
    wtd_transport_config *t;
    TRY(wtd_transport_config_new(&t));
    TRY(wtd_transport_config_set_datagram_events(t, datagram_events));
    const char *q = getenv("WTD_BENCH_RECV_QUEUE"); /* experiments only */
    if (q) TRY(wtd_transport_config_set_recv_queue(t, (size_t)atol(q)));
#ifndef WTD_BENCH_BEFORE_BATCH_API
    const char *b = getenv("WTD_BENCH_RECV_BYTES"); /* experiments only */
    if (b) TRY(wtd_transport_config_set_recv_queue_bytes(t, (size_t)atol(b)));
#endif
    const char *qb = getenv("WTD_BENCH_QUINN_RECV"); /* experiments only */
    if (qb) TRY(wtd_transport_config_set_datagram_buffers(t, 1 << 20, (size_t)atol(qb)));
    return t;
}

static void start_server(pair_t *p, bool datagram_events, uint64_t max_sessions) {
    wtd_runtime_config *rc;
    TRY(wtd_runtime_config_new(&rc));
    TRY(wtd_runtime_config_set_event_callback(rc, on_event, p, NULL));
    TRY(wtd_runtime_new(rc, &p->rt));
    wtd_runtime_config_free(rc);
    wtd_server_config *sc;
    TRY(wtd_server_config_new(&sc));
    wtd_transport_config *t = transport(datagram_events);
    if (max_sessions) TRY(wtd_transport_config_set_max_sessions(t, max_sessions));
    TRY(wtd_server_config_set_transport(sc, t));
    TRY(wtd_server_config_set_request_backlog(sc, 4096));
    wtd_transport_config_free(t);
    TRY(wtd_server_new(p->rt, sc, &p->srv));
    wtd_server_config_free(sc);
    TRY(wtd_server_cert_hash(p->srv, p->hash, sizeof p->hash));
    snprintf(p->url, sizeof p->url, "https://127.0.0.1:%u/bench", wtd_server_port(p->srv));
}

static wtd_client *make_client(const wtd_runtime *rt, const uint8_t hash[32],
                               bool datagram_events) {
    wtd_client_config *cc;
    TRY(wtd_client_config_new(&cc));
    TRY(wtd_client_config_add_cert_hash(cc, hash, 32));
    TRY(wtd_client_config_set_bind(cc, "127.0.0.1:0"));
    wtd_transport_config *t = transport(datagram_events);
    TRY(wtd_client_config_set_transport(cc, t));
    wtd_transport_config_free(t);
    wtd_client *c;
    TRY(wtd_client_new(rt, cc, &c));
    wtd_client_config_free(cc);
    return c;
}

/* Wait (bounded) until the server accepted `n` sessions in total. */
static void wait_accepted(pair_t *p, size_t n) {
    double deadline = now_s() + 30;
    while (atomic_load(&p->n_accepted) < n && now_s() < deadline) sleep_ms(1);
    if (atomic_load(&p->n_accepted) < n) {
        fprintf(stderr, "wtd_bench: server accepted %zu of %zu sessions\n",
                atomic_load(&p->n_accepted), n);
        exit(1);
    }
}

/* Path MTU discovery must allow `size`-byte payloads before a run (bounded: 5 s). */
static void wait_max_size(const wtd_session *s, size_t size) {
    double deadline = now_s() + 5;
    size_t max = 0;
    while (now_s() < deadline) {
        TRY(wtd_session_max_datagram_size(s, &max));
        if (max >= size) return;
        sleep_ms(10);
    }
    fprintf(stderr, "wtd_bench: max datagram size stayed %zu < %zu\n", max, size);
    exit(1);
}

/* ------------------------------------------------------------------------------------ */
/* oneway */

typedef struct {
    wtd_session *s;
    bool batch;
    atomic_bool stop;
    atomic_uint_fast64_t received;
    _Atomic double last; /* arrival time of the last datagram */
} sink_t;

static void *sink_thread(void *arg) {
    sink_t *k = arg;
    static uint8_t buf[BATCH * MAX_DGRAM];
    size_t lens[BATCH];
    while (!atomic_load_explicit(&k->stop, memory_order_relaxed)) {
        size_t got = 0;
        wtd_result rc;
        if (k->batch) {
#ifndef WTD_BENCH_BEFORE_BATCH_API
            rc = wtd_session_recv_multiple(k->s, buf, sizeof buf, lens, BATCH, &got, 50);
#else
            rc = WTD_ERR_INVALID_STATE;
#endif
        } else {
            rc = wtd_session_recv(k->s, buf, MAX_DGRAM, &lens[0], 50);
            got = rc == WTD_OK;
        }
        if (rc == WTD_OK) {
            atomic_fetch_add_explicit(&k->received, got, memory_order_relaxed);
            atomic_store_explicit(&k->last, now_s(), memory_order_relaxed);
        } else if (rc != WTD_ERR_TIMEOUT) {
            die("receive", rc);
        }
    }
    return NULL;
}

/* Send for `secs` (backpressured), then let the receiver drain. */
static void oneway_run(wtd_session *tx, sink_t *k, size_t size, double secs, bool batch,
                       uint64_t *out_sent, uint64_t *out_got, double *out_wall,
                       double *out_cpu) {
    static uint8_t payload[BATCH][MAX_DGRAM];
    wtd_buffer items[BATCH];
    for (int i = 0; i < BATCH; i++) {
        memset(payload[i], 0x5a, size);
        items[i].data = payload[i];
        items[i].len = size;
    }
    uint64_t base = atomic_load(&k->received);
    double cpu0 = cpu_s(), t0 = now_s(), stop = t0 + secs;
    uint64_t sent = 0;
    for (uint64_t iter = 0;; iter++) {
        if (batch) {
            size_t n = 0;
#ifndef WTD_BENCH_BEFORE_BATCH_API
            TRY(wtd_session_send_multiple(tx, items, BATCH, 1000, &n));
#else
            (void)items;
            die("batch mode needs wtd_session_send_multiple", WTD_ERR_INVALID_STATE);
#endif
            sent += n;
        } else {
            TRY(wtd_session_send_wait(tx, payload[0], size, 1000));
            sent++;
        }
        if ((iter & 63) == 0 && now_s() >= stop) break;
    }
    /* Drain: until all arrived or nothing new for 300 ms (at most 5 s). */
    double hard = now_s() + 5;
    for (;;) {
        uint64_t before = atomic_load(&k->received) - base;
        if (before >= sent || now_s() >= hard) break;
        sleep_ms(300);
        if (atomic_load(&k->received) - base == before) break;
    }
    *out_sent = sent;
    *out_got = atomic_load(&k->received) - base;
    *out_wall = atomic_load(&k->last) - t0;
    *out_cpu = cpu_s() - cpu0;
}

static int cmd_oneway(size_t size, double secs, bool batch) {
    pair_t *p = calloc(1, sizeof *p);
    start_server(p, false, 0);
    wtd_client *c = make_client(p->rt, p->hash, false);
    wtd_session *cs;
    TRY(wtd_client_open_session(c, p->url, NULL, 0, 10000, &cs));
    wait_accepted(p, 1);
    wait_max_size(cs, size);
    sink_t k = {.s = p->accepted[0], .batch = batch};
    pthread_t th;
    pthread_create(&th, NULL, sink_thread, &k);
    pthread_setname_np(th, "bench-sink");
    uint64_t sent, got;
    double wall, cpu;
    oneway_run(cs, &k, size, 0.3, batch, &sent, &got, &wall, &cpu); /* warm-up */
    oneway_run(cs, &k, size, secs, batch, &sent, &got, &wall, &cpu);
    atomic_store(&k.stop, true);
    pthread_join(th, NULL);
    wtd_session_stats st;
    TRY(wtd_session_get_stats(p->accepted[0], &st));
    if (wall <= 0) wall = 1e-9;
    printf("{\"impl\":\"c-abi%s\",\"case\":\"oneway\",\"size\":%zu,\"sent\":%" PRIu64
           ",\"received\":%" PRIu64 ",\"secs\":%.6f,\"rate\":%.1f,\"mb_per_s\":%.3f,"
           "\"loss_pct\":%.5f,\"cpu_us_per_dgram\":%.4f,\"recv_dropped\":%" PRIu64 "}\n",
           batch ? "-batch" : "", size, sent, got, wall, (double)got / wall,
           (double)got * (double)size / wall / 1e6,
           sent ? 100.0 * (double)(sent - (got < sent ? got : sent)) / (double)sent : 0.0,
           got ? cpu * 1e6 / (double)got : 0.0, st.recv_dropped);
    wtd_session_free(cs);
    wtd_client_free(c);
    wtd_server_free(p->srv);
    TRY(wtd_runtime_free(p->rt));
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* rtt */

typedef struct {
    wtd_session *s;
    atomic_bool stop;
} echo_t;

static void *echo_thread(void *arg) {
    echo_t *e = arg;
    static uint8_t buf[MAX_DGRAM];
    while (!atomic_load_explicit(&e->stop, memory_order_relaxed)) {
        size_t n;
        wtd_result rc = wtd_session_recv(e->s, buf, sizeof buf, &n, 50);
        if (rc == WTD_OK) {
            rc = wtd_session_send_wait(e->s, buf, n, 1000);
            if (rc != WTD_OK && rc != WTD_ERR_CLOSED) die("echo send", rc);
        } else if (rc != WTD_ERR_TIMEOUT) {
            break;
        }
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static size_t ping(wtd_session *cs, size_t size, size_t count, double *samples) {
    uint8_t payload[MAX_DGRAM], buf[MAX_DGRAM];
    memset(payload, 0x5a, sizeof payload);
    size_t answered = 0;
    double deadline = now_s() + 60;
    for (uint64_t i = 0; i < count && now_s() < deadline; i++) {
        memcpy(payload, &i, sizeof i);
        double t = now_s();
        TRY(wtd_session_send_wait(cs, payload, size, 1000));
        for (;;) {
            size_t n;
            wtd_result rc = wtd_session_recv(cs, buf, sizeof buf, &n, 1000);
            if (rc != WTD_OK) break; /* lost: no sample */
            if (n >= 8 && memcmp(buf, &i, sizeof i) == 0) {
                samples[answered++] = now_s() - t;
                break;
            }
        }
    }
    return answered;
}

static int cmd_rtt(size_t size, size_t count) {
    if (size < 8) size = 8;
    pair_t *p = calloc(1, sizeof *p);
    start_server(p, false, 0);
    wtd_client *c = make_client(p->rt, p->hash, false);
    wtd_session *cs;
    TRY(wtd_client_open_session(c, p->url, NULL, 0, 10000, &cs));
    wait_accepted(p, 1);
    wait_max_size(cs, size);
    echo_t e = {.s = p->accepted[0]};
    pthread_t th;
    pthread_create(&th, NULL, echo_thread, &e);
    pthread_setname_np(th, "bench-echo");
    double *samples = calloc(count, sizeof *samples);
    ping(cs, size, count < 200 ? count : 200, samples); /* warm-up */
    size_t answered = ping(cs, size, count, samples);
    atomic_store(&e.stop, true);
    pthread_join(th, NULL);
    qsort(samples, answered, sizeof *samples, cmp_double);
    double p50 = answered ? samples[(size_t)((double)(answered - 1) * 0.50 + 0.5)] : 0;
    double p99 = answered ? samples[(size_t)((double)(answered - 1) * 0.99 + 0.5)] : 0;
    printf("{\"impl\":\"c-abi\",\"case\":\"rtt\",\"size\":%zu,\"pings\":%zu,\"answered\":%zu,"
           "\"p50_us\":%.3f,\"p99_us\":%.3f}\n",
           size, count, answered, p50 * 1e6, p99 * 1e6);
    free(samples);
    wtd_session_free(cs);
    wtd_client_free(c);
    wtd_server_free(p->srv);
    TRY(wtd_runtime_free(p->rt));
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* fanout: one broadcast to N sessions, each on its own connection (N browsers) */

static int cmd_fanout(size_t n, size_t rounds) {
    pair_t *sp = calloc(1, sizeof *sp), *cp = calloc(1, sizeof *cp);
    start_server(sp, true, 0);
    /* Client side: its own runtime, counting DATAGRAM events in its callback. */
    wtd_runtime_config *rc;
    TRY(wtd_runtime_config_new(&rc));
    TRY(wtd_runtime_config_set_event_callback(rc, on_event, cp, NULL));
    TRY(wtd_runtime_new(rc, &cp->rt));
    wtd_runtime_config_free(rc);
    wtd_client *c = make_client(cp->rt, sp->hash, true);
    wtd_session **cs = calloc(n, sizeof *cs);
    for (size_t i = 0; i < n; i++)
        TRY(wtd_client_open_session(c, sp->url, NULL, 0, 10000, &cs[i]));
    wait_accepted(sp, n);
    wtd_broadcaster *b;
    TRY(wtd_broadcaster_new(sp->rt, &b));
    for (size_t i = 0; i < n; i++) TRY(wtd_broadcaster_add_session(b, sp->accepted[i]));
    uint8_t payload[64];
    memset(payload, 0x42, sizeof payload);
    double *call = calloc(rounds, sizeof *call), *deliver = calloc(rounds, sizeof *deliver);
    size_t done = 0;
    uint64_t lost = 0, expected = 0;
    for (size_t r = 0; r < rounds + 5; r++) { /* 5 warm-up rounds */
        uint64_t before = atomic_load(&cp->datagram_events);
        size_t accepted = 0;
        double t0 = now_s();
        TRY(wtd_broadcaster_broadcast(b, payload, sizeof payload, 0, 0, &accepted));
        double t1 = now_s();
        double deadline = t1 + 2;
        while (atomic_load(&cp->datagram_events) - before < accepted && now_s() < deadline) {
            struct timespec ts = {0, 20000}; /* 20 us: do not take the CPU from delivery */
            nanosleep(&ts, NULL);
        }
        double t2 = now_s();
        uint64_t got = atomic_load(&cp->datagram_events) - before;
        if (r >= 5) {
            call[done] = t1 - t0;
            deliver[done] = t2 - t0;
            done++;
            expected += n;
            lost += n - (got < n ? got : n);
        }
        sleep_ms(2);
    }
    qsort(call, done, sizeof *call, cmp_double);
    qsort(deliver, done, sizeof *deliver, cmp_double);
    printf("{\"impl\":\"c-abi\",\"case\":\"fanout\",\"sessions\":%zu,\"rounds\":%zu,"
           "\"call_p50_ms\":%.4f,\"call_p99_ms\":%.4f,\"deliver_p50_ms\":%.4f,"
           "\"deliver_p99_ms\":%.4f,\"loss_pct\":%.4f}\n",
           n, done, call[done / 2] * 1e3, call[(size_t)((double)(done - 1) * 0.99 + 0.5)] * 1e3,
           deliver[done / 2] * 1e3, deliver[(size_t)((double)(done - 1) * 0.99 + 0.5)] * 1e3,
           expected ? 100.0 * (double)lost / (double)expected : 0.0);
    wtd_broadcaster_free(b);
    for (size_t i = 0; i < n; i++) wtd_session_free(cs[i]);
    wtd_client_free(c);
    wtd_server_free(sp->srv);
    TRY(wtd_runtime_free(cp->rt));
    TRY(wtd_runtime_free(sp->rt));
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* sessions: COUNT idle sessions on one server (a forked child), PER_CONNECTION each */

static long rss_kib(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
    fclose(f);
    return kib;
}

static void server_child(int to_parent, int from_parent, uint64_t per_conn) {
    pair_t *p = calloc(1, sizeof *p);
    start_server(p, true, per_conn > 256 ? per_conn : 0);
    char line[256];
    int len = snprintf(line, sizeof line, "%u ", wtd_server_port(p->srv));
    for (int i = 0; i < 32; i++) len += snprintf(line + len, sizeof line - (size_t)len, "%02x", p->hash[i]);
    line[len++] = '\n';
    if (write(to_parent, line, (size_t)len) != len) exit(1);
    /* Answer "<accepted count> <heap bytes in use>" on every byte from the parent; exit
     * on EOF. */
    char cmd;
    while (read(from_parent, &cmd, 1) == 1) {
        struct mallinfo2 mi = mallinfo2();
        len = snprintf(line, sizeof line, "%zu %zu\n", atomic_load(&p->n_accepted),
                       mi.uordblks + mi.hblkhd);
        if (write(to_parent, line, (size_t)len) != len) break;
    }
    _exit(0);
}

typedef struct {
    wtd_client *client;
    const char *url;
    size_t first, count, per_conn;
    wtd_connection **conns;
    wtd_session **sessions;
} opener_t;

static void *opener(void *arg) {
    opener_t *o = arg;
    for (size_t i = o->first; i < o->first + o->count; i++) {
        if (o->per_conn <= 1) {
            TRY(wtd_client_open_session(o->client, o->url, NULL, 0, 30000, &o->sessions[i]));
        } else {
            size_t ci = i / o->per_conn;
            if (i % o->per_conn == 0) TRY(wtd_client_connect(o->client, o->url, 30000, &o->conns[ci]));
            TRY(wtd_connection_open_session(o->conns[ci], "/bench", NULL, 0, 30000, &o->sessions[i]));
        }
    }
    return NULL;
}

static size_t ask(int to_child, FILE *from_child, size_t *heap) {
    char line[64];
    if (write(to_child, "?", 1) != 1 || !fgets(line, sizeof line, from_child)) {
        fprintf(stderr, "wtd_bench: server child is gone\n");
        exit(1);
    }
    char *end;
    size_t n = (size_t)strtoull(line, &end, 10);
    *heap = (size_t)strtoull(end, NULL, 10);
    return n;
}

static int cmd_sessions(size_t count, size_t per_conn) {
    int up[2], down[2];
    if (pipe(up) || pipe(down)) return 1;
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        close(up[0]);
        close(down[1]);
        server_child(up[1], down[0], per_conn);
    }
    close(up[1]);
    close(down[0]);
    FILE *from_child = fdopen(up[0], "r");
    char line[256];
    if (!fgets(line, sizeof line, from_child)) return 1;
    unsigned port;
    char hex[65];
    if (sscanf(line, "%u %64s", &port, hex) != 2) return 1;
    uint8_t hash[32];
    TRY(wtd_hash_from_hex(hex, hash, sizeof hash));
    char url[128];
    snprintf(url, sizeof url, "https://127.0.0.1:%u/bench", port);

    wtd_runtime_config *rc;
    TRY(wtd_runtime_config_new(&rc));
    wtd_runtime *rt;
    TRY(wtd_runtime_new(rc, &rt)); /* pull mode: nothing to pull, sessions are idle */
    wtd_runtime_config_free(rc);
    wtd_client *c = make_client(rt, hash, true);
    if (per_conn > 1) {
        /* The client's transport must allow that many sessions on one connection too. */
        wtd_client_free(c);
        wtd_client_config *cc;
        TRY(wtd_client_config_new(&cc));
        TRY(wtd_client_config_add_cert_hash(cc, hash, 32));
        TRY(wtd_client_config_set_bind(cc, "127.0.0.1:0"));
        TRY(wtd_client_new(rt, cc, &c));
        wtd_client_config_free(cc);
    }
    sleep_ms(200);
    size_t heap_before, heap_after;
    ask(down[1], from_child, &heap_before);
    long before = rss_kib(pid);
    wtd_session **sessions = calloc(count, sizeof *sessions);
    wtd_connection **conns = calloc(count, sizeof *conns);
    double t0 = now_s();
    enum { THREADS = 4 };
    opener_t o[THREADS];
    pthread_t th[THREADS];
    size_t per_thread = (count + THREADS - 1) / THREADS;
    if (per_conn > 1) per_thread = ((per_thread + per_conn - 1) / per_conn) * per_conn;
    for (int i = 0; i < THREADS; i++) {
        size_t first = (size_t)i * per_thread;
        size_t n = first >= count ? 0 : (count - first < per_thread ? count - first : per_thread);
        o[i] = (opener_t){c, url, first, n, per_conn, conns, sessions};
        pthread_create(&th[i], NULL, opener, &o[i]);
    }
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    double opened = now_s() - t0;
    sleep_ms(1000); /* idle: let handshake leftovers go */
    size_t accepted = ask(down[1], from_child, &heap_after);
    long after = rss_kib(pid);
    long client_rss = rss_kib(getpid());
    printf("{\"impl\":\"c-abi\",\"case\":\"sessions\",\"sessions\":%zu,\"per_connection\":%zu,"
           "\"connections\":%zu,\"accepted\":%zu,\"open_secs\":%.3f,\"server_rss_before_kib\":%ld,"
           "\"server_rss_after_kib\":%ld,\"kib_per_session\":%.3f,"
           "\"heap_kib_per_session\":%.3f,\"client_rss_kib\":%ld}\n",
           count, per_conn, per_conn <= 1 ? count : (count + per_conn - 1) / per_conn, accepted,
           opened, before, after, (double)(after - before) / (double)count,
           ((double)heap_after - (double)heap_before) / 1024.0 / (double)count, client_rss);
    fflush(stdout);
    close(down[1]); /* the child exits on EOF; at most 5 s */
    for (int i = 0; i < 500 && waitpid(pid, NULL, WNOHANG) == 0; i++) sleep_ms(10);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    _exit(0); /* skip tearing down 10,000 sessions one by one */
}

/* ------------------------------------------------------------------------------------ */
/* cluster: one broadcast to N sessions spread over 3 nodes joined through NATS (issue
 * 16). Node 0 (the broadcaster) and every client live in this process; nodes 1 and 2
 * are forked children, each a server with its own runtime, NATS connection and
 * broadcaster joined to the channel, adding every session it accepts. Per round: the
 * time until all N clients had the datagram, until node 0's own clients had it (the
 * local fan-out), and until the other nodes' clients had it (through the bus). */

#define CLUSTER_NODES 3

typedef struct {
    wtd_runtime *rt;
    wtd_server *srv;
    wtd_broadcaster *_Atomic b;
    wtd_cluster *cluster;
    wtd_cluster_broadcaster *cb;
} node_t;

static void on_node_event(const wtd_event *ev, void *ud) {
    node_t *nd = ud;
    if (ev->kind != WTD_EVENT_SESSION_REQUEST) return;
    wtd_session *s = NULL;
    if (wtd_session_request_accept(ev->request, &s) != WTD_OK) {
        fprintf(stderr, "wtd_bench: accept: %s\n", wtd_last_error());
        return;
    }
    wtd_broadcaster *b = atomic_load(&nd->b);
    if (!b || wtd_broadcaster_add_session(b, s) != WTD_OK)
        fprintf(stderr, "wtd_bench: add_session: %s\n", wtd_last_error());
    /* Kept until the process ends (wtd_session_free would close the session). */
}

/* A node: server on 127.0.0.1:0, broadcaster joined to "bench" and live on the bus. */
static void node_start(node_t *nd, const char *nats_url) {
    wtd_runtime_config *rc;
    TRY(wtd_runtime_config_new(&rc));
    TRY(wtd_runtime_config_set_event_callback(rc, on_node_event, nd, NULL));
    TRY(wtd_runtime_new(rc, &nd->rt));
    wtd_runtime_config_free(rc);
    wtd_broadcaster *b;
    TRY(wtd_broadcaster_new(nd->rt, &b));
    atomic_store(&nd->b, b);
    wtd_server_config *sc;
    TRY(wtd_server_config_new(&sc));
    TRY(wtd_server_config_set_bind(sc, "127.0.0.1:0"));
    TRY(wtd_server_config_set_request_backlog(sc, 4096));
    wtd_transport_config *t = transport(false);
    TRY(wtd_server_config_set_transport(sc, t));
    wtd_transport_config_free(t);
    TRY(wtd_server_new(nd->rt, sc, &nd->srv));
    wtd_server_config_free(sc);
    wtd_cluster_config *cc;
    TRY(wtd_cluster_config_new(&cc));
    TRY(wtd_cluster_config_add_url(cc, nats_url));
    TRY(wtd_cluster_new(nd->rt, cc, &nd->cluster));
    wtd_cluster_config_free(cc);
    TRY(wtd_cluster_join(nd->cluster, "bench", b, &nd->cb));
    TRY(wtd_cluster_broadcaster_wait_bus_ready(nd->cb, 20000));
}

static void on_cluster_client_event(const wtd_event *ev, void *ud) {
    (void)ud;
    if (ev->kind == WTD_EVENT_DATAGRAM && ev->userdata)
        atomic_fetch_add_explicit((atomic_uint_fast64_t *)ev->userdata, 1, memory_order_relaxed);
}

static double pct(double *v, size_t n, double q) {
    qsort(v, n, sizeof *v, cmp_double);
    return v[(size_t)((double)(n - 1) * q + 0.5)];
}

static int cmd_cluster(size_t n, size_t rounds, const char *nats_url) {
    /* Children first: nothing may run threads in this process before fork(). */
    int up[CLUSTER_NODES][2], down[CLUSTER_NODES][2];
    pid_t pids[CLUSTER_NODES] = {0};
    for (int k = 1; k < CLUSTER_NODES; k++) {
        if (pipe(up[k]) || pipe(down[k])) return 1;
        pid_t pid = fork();
        if (pid < 0) return 1;
        if (pid == 0) {
            close(up[k][0]);
            close(down[k][1]);
            for (int j = 1; j < k; j++) { /* the earlier children's ends: theirs alone */
                close(up[j][0]);
                close(down[j][1]);
            }
            node_t *nd = calloc(1, sizeof *nd);
            node_start(nd, nats_url);
            uint8_t h[32];
            TRY(wtd_server_cert_hash(nd->srv, h, sizeof h));
            char line[128];
            int len = snprintf(line, sizeof line, "%u ", (unsigned)wtd_server_port(nd->srv));
            for (int i = 0; i < 32; i++) len += snprintf(line + len, sizeof line - (size_t)len, "%02x", h[i]);
            line[len++] = '\n';
            if (write(up[k][1], line, (size_t)len) != len) _exit(1);
            /* Until the parent goes; 's' asks for this node's bus latency counters. */
            char c;
            while (read(down[k][0], &c, 1) > 0) {
                if (c != 's') continue;
                wtd_cluster_broadcaster_stats st;
                TRY(wtd_cluster_broadcaster_get_stats(nd->cb, &st, sizeof st));
                len = snprintf(line, sizeof line, "%" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n",
                               st.latency_samples, st.latency_avg_us, st.latency_min_us,
                               st.latency_max_us);
                if (write(up[k][1], line, (size_t)len) != len) _exit(1);
            }
            _exit(0);
        }
        pids[k] = pid;
        close(up[k][1]);
        close(down[k][0]);
    }
    node_t *n0 = calloc(1, sizeof *n0);
    node_start(n0, nats_url);
    uint16_t port[CLUSTER_NODES];
    uint8_t hash[CLUSTER_NODES][32];
    port[0] = wtd_server_port(n0->srv);
    TRY(wtd_server_cert_hash(n0->srv, hash[0], 32));
    for (int k = 1; k < CLUSTER_NODES; k++) {
        char line[128] = {0};
        size_t got = 0;
        double deadline = now_s() + 30;
        while (got < sizeof line - 1 && now_s() < deadline) {
            ssize_t r = read(up[k][0], line + got, 1);
            if (r <= 0) break;
            if (line[got++] == '\n') break;
        }
        unsigned p = 0;
        char hex[65] = {0};
        if (sscanf(line, "%u %64s", &p, hex) != 2 || strlen(hex) != 64) {
            fprintf(stderr, "wtd_bench: node %d did not start\n", k);
            return 1;
        }
        port[k] = (uint16_t)p;
        for (int i = 0; i < 32; i++) {
            unsigned v;
            sscanf(hex + 2 * i, "%2x", &v);
            hash[k][i] = (uint8_t)v;
        }
    }

    /* Clients: one runtime, every session counting into its node's counter. */
    static atomic_uint_fast64_t got_by[CLUSTER_NODES];
    wtd_runtime *crt;
    wtd_runtime_config *rc;
    TRY(wtd_runtime_config_new(&rc));
    TRY(wtd_runtime_config_set_event_callback(rc, on_cluster_client_event, NULL, NULL));
    TRY(wtd_runtime_new(rc, &crt));
    wtd_runtime_config_free(rc);
    size_t per[CLUSTER_NODES];
    wtd_client *clients[CLUSTER_NODES];
    wtd_session **cs = calloc(n, sizeof *cs);
    size_t idx = 0;
    for (int k = 0; k < CLUSTER_NODES; k++) {
        per[k] = n / CLUSTER_NODES + ((size_t)k < n % CLUSTER_NODES ? 1 : 0);
        clients[k] = make_client(crt, hash[k], true);
        char url[128];
        snprintf(url, sizeof url, "https://127.0.0.1:%u/bench", (unsigned)port[k]);
        for (size_t i = 0; i < per[k]; i++, idx++) {
            TRY(wtd_client_open_session(clients[k], url, NULL, 0, 10000, &cs[idx]));
            TRY(wtd_session_set_userdata(cs[idx], (void *)&got_by[k]));
        }
    }
    double deadline = now_s() + 30;
    while (wtd_broadcaster_session_count(atomic_load(&n0->b)) < per[0] && now_s() < deadline) sleep_ms(1);

    uint8_t payload[64];
    memset(payload, 0x43, sizeof payload);
    double *all = calloc(rounds, sizeof *all), *local = calloc(rounds, sizeof *local),
           *remote = calloc(rounds, sizeof *remote), *added = calloc(rounds, sizeof *added),
           *hop = calloc(rounds, sizeof *hop);
    size_t done = 0;
    uint64_t lost = 0, expected = 0;
    for (size_t r = 0; r < rounds + 5; r++) { /* 5 warm-up rounds (members joining) */
        uint64_t before[CLUSTER_NODES];
        for (int k = 0; k < CLUSTER_NODES; k++) before[k] = atomic_load(&got_by[k]);
        double t_node[CLUSTER_NODES] = {0}, t_first[CLUSTER_NODES] = {0};
        int have = 0, first = 0;
        double t0 = now_s();
        TRY(wtd_cluster_broadcaster_broadcast(n0->cb, payload, sizeof payload, 0, 0, NULL));
        double end = t0 + 2;
        while (have != (1 << CLUSTER_NODES) - 1 && now_s() < end) {
            for (int k = 0; k < CLUSTER_NODES; k++) {
                uint64_t g = atomic_load(&got_by[k]) - before[k];
                if (!(first >> k & 1) && g >= 1) {
                    t_first[k] = now_s() - t0;
                    first |= 1 << k;
                }
                if (!(have >> k & 1) && g >= per[k]) {
                    t_node[k] = now_s() - t0;
                    have |= 1 << k;
                }
            }
            struct timespec ts = {0, 20000}; /* 20 us: do not take the CPU from delivery */
            nanosleep(&ts, NULL);
        }
        if (r >= 5) {
            uint64_t got = 0;
            for (int k = 0; k < CLUSTER_NODES; k++) {
                uint64_t g = atomic_load(&got_by[k]) - before[k];
                got += g < per[k] ? g : per[k];
                if (!(have >> k & 1)) t_node[k] = end - t0;
            }
            double rem = 0, rem_first = end - t0;
            for (int k = 1; k < CLUSTER_NODES; k++) {
                rem = t_node[k] > rem ? t_node[k] : rem;
                if (first >> k & 1) rem_first = t_first[k] < rem_first ? t_first[k] : rem_first;
            }
            hop[done] = rem_first - t_first[0];
            local[done] = t_node[0];
            remote[done] = rem;
            all[done] = rem > t_node[0] ? rem : t_node[0];
            added[done] = rem - t_node[0];
            done++;
            expected += n;
            lost += n - got;
        }
        sleep_ms(2);
    }
    wtd_cluster_broadcaster_stats st;
    TRY(wtd_cluster_broadcaster_get_stats(n0->cb, &st, sizeof st));
    /* The other nodes' one-way bus latency (same machine, same clock: exact). */
    uint64_t lat_n = 0, lat_sum = 0, lat_min = UINT64_MAX, lat_max = 0;
    for (int k = 1; k < CLUSTER_NODES; k++) {
        char line[128] = {0};
        size_t got = 0;
        if (write(down[k][1], "s", 1) != 1) continue;
        while (got < sizeof line - 1) {
            ssize_t r = read(up[k][0], line + got, 1);
            if (r <= 0 || line[got++] == '\n') break;
        }
        uint64_t n_, avg, mn, mx;
        if (sscanf(line, "%" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64, &n_, &avg, &mn, &mx) == 4 && n_) {
            lat_n += n_;
            lat_sum += avg * n_;
            lat_min = mn < lat_min ? mn : lat_min;
            lat_max = mx > lat_max ? mx : lat_max;
        }
    }
    printf("{\"impl\":\"c-abi\",\"case\":\"cluster\",\"nodes\":%d,\"sessions\":%zu,\"rounds\":%zu,"
           "\"deliver_p50_ms\":%.4f,\"deliver_p99_ms\":%.4f,\"local_p50_ms\":%.4f,"
           "\"local_p99_ms\":%.4f,\"remote_p50_ms\":%.4f,\"remote_p99_ms\":%.4f,"
           "\"bus_added_p50_ms\":%.4f,\"bus_added_p99_ms\":%.4f,\"bus_hop_p50_ms\":%.4f,"
           "\"bus_hop_p99_ms\":%.4f,\"bus_latency_avg_us\":%" PRIu64 ",\"bus_latency_min_us\":%" PRIu64
           ",\"bus_latency_max_us\":%" PRIu64 ",\"bus_rtt_avg_us\":%" PRIu64
           ",\"bus_rtt_min_us\":%" PRIu64 ",\"bus_failures\":%" PRIu64 ",\"loss_pct\":%.4f}\n",
           CLUSTER_NODES, n, done, pct(all, done, 0.5) * 1e3, pct(all, done, 0.99) * 1e3,
           pct(local, done, 0.5) * 1e3, pct(local, done, 0.99) * 1e3, pct(remote, done, 0.5) * 1e3,
           pct(remote, done, 0.99) * 1e3, pct(added, done, 0.5) * 1e3, pct(added, done, 0.99) * 1e3,
           pct(hop, done, 0.5) * 1e3, pct(hop, done, 0.99) * 1e3, lat_n ? lat_sum / lat_n : 0,
           lat_n ? lat_min : 0, lat_max,
           st.rtt_avg_us, st.rtt_min_us, st.bus_failures,
           expected ? 100.0 * (double)lost / (double)expected : 0.0);
    for (int k = 1; k < CLUSTER_NODES; k++) {
        close(down[k][1]);
        close(up[k][0]);
        waitpid(pids[k], NULL, 0);
    }
    _exit(0); /* skip tearing down 1,000 sessions one by one */
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 4 && strcmp(argv[1], "oneway") == 0)
        return cmd_oneway((size_t)atoi(argv[2]), atof(argv[3]),
                          argc >= 5 && strcmp(argv[4], "batch") == 0);
    if (argc >= 4 && strcmp(argv[1], "rtt") == 0)
        return cmd_rtt((size_t)atoi(argv[2]), (size_t)atoi(argv[3]));
    if (argc >= 4 && strcmp(argv[1], "fanout") == 0)
        return cmd_fanout((size_t)atoi(argv[2]), (size_t)atoi(argv[3]));
    if (argc >= 5 && strcmp(argv[1], "cluster") == 0)
        return cmd_cluster((size_t)atoi(argv[2]), (size_t)atoi(argv[3]), argv[4]);
    if (argc >= 4 && strcmp(argv[1], "sessions") == 0)
        return cmd_sessions((size_t)atoi(argv[2]), (size_t)atoi(argv[3]));
    fprintf(stderr,
            "usage: wtd_bench oneway SIZE SECS [single|batch] | rtt SIZE COUNT |\n"
            "                 fanout SESSIONS ROUNDS | sessions COUNT PER_CONNECTION |\n"
            "                 cluster SESSIONS ROUNDS NATS_URL\n");
    return 2;
}
