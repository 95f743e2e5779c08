/*
 * test_config: configuration setters and close calls of the C ABI, each checked by the
 * effect its name promises, observed from outside the library where possible:
 *
 *  1. wtd_runtime_config_set_worker_threads: the runtime has exactly that many threads
 *     named "wtd-worker" (/proc/self/task/N/comm), 2 by default, none after
 *     wtd_runtime_free
 *  2. wtd_client_config_set_bind: the client's UDP socket is bound to that address
 *     (found among this process's sockets), and its packets reach the server side from
 *     it (seen by a UDP relay standing in front of the server)
 *  3. wtd_transport_config_set_socket_buffers: SO_SNDBUF / SO_RCVBUF of the server's
 *     and the client's sockets (getsockopt on the library's own sockets); 0 keeps the
 *     system default
 *  4. wtd_transport_config_set_max_sessions: N sessions on one connection, the N+1th is
 *     refused with 429 (and never reaches the application), a closed one makes room;
 *     without the setter the N+1th is accepted
 *  5. wtd_server_config_set_cert_pem_files: the server presents the certificate from
 *     the files (its hash), a client trusting their CA or the hash connects, a client
 *     trusting another CA is refused
 *  6. wtd_client_close: every session of the client ends on both sides (kind, code,
 *     reason), later opens and connects fail with WTD_ERR_CLOSED
 *  7. wtd_connection_close: that connection's sessions end on both sides with the code
 *     and reason; another connection of the same client carries on
 *  8. the idle timeout (wtd_transport_config_set_idle_timeout_ms, keep-alive off): a
 *     relay that goes silent both ways ends the session with WTD_CLOSE_TIMED_OUT on
 *     both sides
 *
 * Every wait has a bound; nothing asserts on elapsed time. A watchdog (WTD_TEST_WATCHDOG
 * seconds, default 120, 0 = off) aborts if something hangs anyway. The last line is
 * "N passed, M failed".
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE 1
#define HARNESS_STRICT_LAST_ERROR 1
#define HARNESS_ACCEPT_ALL_SERVER 1
#define MAX_SLOTS 32
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "harness.h"

/* ------------------------------------------------------------------------------------ */
/* Helpers                                                                               */

/* Threads of this process whose name (comm) is `name`. */
static int count_threads(const char *name) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char path[300], comm[64] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue; /* the thread ended meanwhile */
        if (fgets(comm, sizeof comm, f)) {
            comm[strcspn(comm, "\n")] = '\0';
            if (strcmp(comm, name) == 0) n++;
        }
        fclose(f);
    }
    closedir(d);
    return n;
}

/* Wait (bounded) until exactly `want` threads are named `name`; returns the last count.
 * A thread is named by itself right after it starts, so the count can lag a moment. */
static int wait_threads(const char *name, int want, int ms) {
    int64_t end = now_ms() + ms;
    int n;
    while ((n = count_threads(name)) != want && now_ms() < end) sleep_ms(2);
    return n;
}

/* The fd of this process's UDP socket bound to 127.0.0.1:port, or -1. */
static int find_udp_socket(uint16_t port) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int found = -1;
    struct dirent *e;
    while (found < 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        int fd = atoi(e->d_name);
        struct stat st;
        if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
        int type = 0;
        socklen_t tl = sizeof type;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 || type != SOCK_DGRAM) continue;
        struct sockaddr_in a;
        socklen_t al = sizeof a;
        memset(&a, 0, sizeof a);
        if (getsockname(fd, (struct sockaddr *)&a, &al) != 0 || a.sin_family != AF_INET) continue;
        if (ntohs(a.sin_port) == port && ntohl(a.sin_addr.s_addr) == INADDR_LOOPBACK) found = fd;
    }
    closedir(d);
    return found;
}

static int sockopt_int(int fd, int opt) {
    int v = -1;
    socklen_t l = sizeof v;
    if (getsockopt(fd, SOL_SOCKET, opt, &v, &l) != 0) return -1;
    return v;
}

/* What the kernel reports for a UDP socket that asked for `req` bytes the way the
 * library does (SO_*BUFFORCE, which needs CAP_NET_ADMIN, else the plain option when it
 * raises the size), measured on a fresh socket; req 0 = untouched (the system default).
 * As root this is exactly 2 * req (Linux doubles the request for its bookkeeping). */
static int granted(int opt, int force_opt, int req) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) return -1;
    if (req > 0 && setsockopt(fd, SOL_SOCKET, force_opt, &req, sizeof req) != 0 && sockopt_int(fd, opt) < req)
        setsockopt(fd, SOL_SOCKET, opt, &req, sizeof req);
    int v = sockopt_int(fd, opt);
    close(fd);
    return v;
}

/* A free UDP port on 127.0.0.1 (free when asked; a race with other programs is
 * possible, so callers retry). */
static uint16_t free_udp_port(void) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) return 0;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    uint16_t port = 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &al) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static uint16_t server_port_of(const wtd_server *s) { return wtd_server_port(s); }

/* A server on g_srt (events to the harness's accept-all callback) with transport `t`
 * (may be NULL); `cfg` may be a prepared config (consumed). */
static wtd_server *make_server(wtd_server_config *cfg, const wtd_transport_config *t) {
    wtd_server *s = NULL;
    if (!cfg && !CHECK_OK(wtd_server_config_new(&cfg))) return NULL;
    CHECK_OK(wtd_server_config_set_bind(cfg, "127.0.0.1:0"));
    if (t) CHECK_OK(wtd_server_config_set_transport(cfg, t));
    CHECK_OK(wtd_server_new(g_srt, cfg, &s));
    wtd_server_config_free(cfg);
    return s;
}

/* The harness slot of `path`, with its session closed (bounded wait). */
static slot_t *wait_slot_closed(const char *path, int ms) {
    slot_t *slot = wait_slot(path, ms);
    if (!slot) return NULL;
    int64_t end = now_ms() + ms;
    int closed = 0;
    while (now_ms() < end) {
        pthread_mutex_lock(&g_srv.mu);
        closed = slot->closed;
        pthread_mutex_unlock(&g_srv.mu);
        if (closed) break;
        sleep_ms(2);
    }
    return closed ? slot : NULL;
}

static int slot_exists(const char *path) {
    int found = 0;
    pthread_mutex_lock(&g_srv.mu);
    for (int i = 0; i < MAX_SLOTS; i++)
        if (g_srv.slots[i].used && strcmp(g_srv.slots[i].path, path) == 0) found = 1;
    pthread_mutex_unlock(&g_srv.mu);
    return found;
}

/* How `s` ended (bounded wait); kind WTD_CLOSE_NONE if it did not. */
static wtd_close_info closed_info(const wtd_session *s, int ms) {
    wtd_close_info info;
    memset(&info, 0, sizeof info);
    if (s && wtd_session_wait_closed(s, ms, &info) != WTD_OK) info.kind = WTD_CLOSE_NONE;
    return info;
}

/* ------------------------------------------------------------------------------------ */
/* A UDP relay in front of a server: records the client's address, can go silent         */

typedef struct {
    int fd_c, fd_s; /* faces the client / connected to the server */
    uint16_t port;
    pthread_t th;
    atomic_int silent, stop, have_client;
    atomic_long forwarded, dropped;
    struct sockaddr_in client; /* written once before have_client is set */
} relay_t;

static void *relay_main(void *arg) {
    relay_t *p = arg;
    uint8_t buf[65536];
    while (!atomic_load(&p->stop)) {
        struct pollfd fds[2] = {{.fd = p->fd_c, .events = POLLIN}, {.fd = p->fd_s, .events = POLLIN}};
        if (poll(fds, 2, 5) <= 0) continue;
        for (;;) {
            struct sockaddr_in from;
            socklen_t fl = sizeof from;
            ssize_t n = recvfrom(p->fd_c, buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
            if (n < 0) break;
            if (!atomic_load(&p->have_client)) {
                p->client = from;
                atomic_store(&p->have_client, 1);
            }
            if (atomic_load(&p->silent)) {
                atomic_fetch_add(&p->dropped, 1);
            } else if (send(p->fd_s, buf, (size_t)n, 0) >= 0) {
                atomic_fetch_add(&p->forwarded, 1);
            }
        }
        for (;;) {
            ssize_t n = recv(p->fd_s, buf, sizeof buf, MSG_DONTWAIT);
            if (n < 0) break;
            if (atomic_load(&p->silent) || !atomic_load(&p->have_client)) {
                atomic_fetch_add(&p->dropped, 1);
            } else if (sendto(p->fd_c, buf, (size_t)n, 0, (struct sockaddr *)&p->client, sizeof p->client) >= 0) {
                atomic_fetch_add(&p->forwarded, 1);
            }
        }
    }
    return NULL;
}

static int relay_start(relay_t *p, uint16_t server_port) {
    memset(p, 0, sizeof *p);
    p->fd_c = socket(AF_INET, SOCK_DGRAM, 0);
    p->fd_s = socket(AF_INET, SOCK_DGRAM, 0);
    if (p->fd_c < 0 || p->fd_s < 0) return 0;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(p->fd_c, (struct sockaddr *)&a, sizeof a) != 0) return 0;
    if (bind(p->fd_s, (struct sockaddr *)&a, sizeof a) != 0) return 0;
    socklen_t al = sizeof a;
    if (getsockname(p->fd_c, (struct sockaddr *)&a, &al) != 0) return 0;
    p->port = ntohs(a.sin_port);
    a.sin_port = htons(server_port);
    if (connect(p->fd_s, (struct sockaddr *)&a, sizeof a) != 0) return 0;
    return pthread_create(&p->th, NULL, relay_main, p) == 0;
}

static void relay_stop(relay_t *p) {
    atomic_store(&p->stop, 1);
    pthread_join(p->th, NULL);
    close(p->fd_c);
    close(p->fd_s);
}

/* ------------------------------------------------------------------------------------ */
/* 1. Worker threads                                                                     */

static void case1_worker_threads(void) {
    fprintf(stderr, "case 1: wtd_runtime_config_set_worker_threads\n");
    /* No runtime exists yet in this process. */
    if (!CHECK(count_threads("wtd-worker") == 0)) return;
    static const uint32_t counts[] = {1, 3, 5};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        wtd_runtime_config *c = NULL;
        wtd_runtime *rt = NULL;
        if (!CHECK_OK(wtd_runtime_config_new(&c))) return;
        CHECK_OK(wtd_runtime_config_set_worker_threads(c, counts[i]));
        CHECK_OK(wtd_runtime_new(c, &rt));
        wtd_runtime_config_free(c);
        int n = wait_threads("wtd-worker", (int)counts[i], 5000);
        fprintf(stderr, "  %u requested: %d threads named wtd-worker\n", counts[i], n);
        CHECK(n == (int)counts[i]);
        CHECK_OK(wtd_runtime_free(rt));
        CHECK(wait_threads("wtd-worker", 0, 5000) == 0); /* they stop with the runtime */
    }
    /* Refused counts change nothing; the default is 2. */
    wtd_runtime_config *c = NULL;
    wtd_runtime *rt = NULL;
    CHECK_OK(wtd_runtime_config_new(&c));
    CHECK_RC(wtd_runtime_config_set_worker_threads(c, 0), WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(wtd_runtime_config_set_worker_threads(c, 257), WTD_ERR_INVALID_ARGUMENT);
    CHECK_OK(wtd_runtime_new(c, &rt));
    wtd_runtime_config_free(c);
    CHECK(wait_threads("wtd-worker", 2, 5000) == 2);
    CHECK_OK(wtd_runtime_free(rt));
    CHECK(wait_threads("wtd-worker", 0, 5000) == 0);
    rt = NULL;
    CHECK_OK(wtd_runtime_new(NULL, &rt));
    CHECK(wait_threads("wtd-worker", 2, 5000) == 2);
    CHECK_OK(wtd_runtime_free(rt));
    CHECK(wait_threads("wtd-worker", 0, 5000) == 0);
}

/* ------------------------------------------------------------------------------------ */
/* 2 and 3. Client bind address; socket buffers                                          */

/* A client on g_crt bound to 127.0.0.1:<a free port>, pinning `hash`, with transport
 * `t` (may be NULL). Retries a few ports (another program may take one meanwhile). */
static wtd_client *bound_client(const wtd_transport_config *t, const uint8_t *hash, uint16_t *out_port) {
    for (int attempt = 0; attempt < 5; attempt++) {
        uint16_t port = free_udp_port();
        if (!CHECK(port != 0)) return NULL;
        char addr[32];
        snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)port);
        wtd_client_config *cfg = NULL;
        wtd_client *c = NULL;
        if (!CHECK_OK(wtd_client_config_new(&cfg))) return NULL;
        CHECK_OK(wtd_client_config_set_bind(cfg, addr));
        CHECK_OK(wtd_client_config_add_cert_hash(cfg, hash, 32));
        if (t) CHECK_OK(wtd_client_config_set_transport(cfg, t));
        wtd_result r = wtd_client_new(g_crt, cfg, &c);
        wtd_client_config_free(cfg);
        if (r == WTD_OK) {
            *out_port = port;
            return c;
        }
        fprintf(stderr, "  binding %s: %s (%s), trying another port\n", addr, wtd_result_name(r), wtd_last_error());
        if (!CHECK(r == WTD_ERR_IO)) return NULL;
    }
    CHECK(!"no free port to bind the client to");
    return NULL;
}

static void case2_client_bind(void) {
    fprintf(stderr, "case 2: wtd_client_config_set_bind\n");
    relay_t *relay = calloc(1, sizeof *relay);
    if (!CHECK(relay != NULL) || !CHECK(relay_start(relay, g_port))) {
        free(relay);
        return;
    }
    uint16_t port = 0;
    wtd_client *client = bound_client(NULL, g_hash, &port);
    wtd_session *s = NULL;
    if (client) {
        /* The library's socket is bound where we asked. */
        CHECK(find_udp_socket(port) >= 0);
        char u[128];
        url(u, sizeof u, relay->port, "/bind");
        if (CHECK_OK(wtd_client_open_session(client, u, NULL, 0, 10000, &s))) {
            CHECK(wait_slot("/bind", 5000) != NULL);
            /* What the server side sees: the packets came from that address. */
            CHECK(atomic_load(&relay->have_client));
            char seen[64] = "?";
            inet_ntop(AF_INET, &relay->client.sin_addr, seen, sizeof seen);
            fprintf(stderr, "  bound to 127.0.0.1:%u, the server side saw %s:%u\n", (unsigned)port, seen,
                    (unsigned)ntohs(relay->client.sin_port));
            CHECK(ntohs(relay->client.sin_port) == port);
            CHECK(ntohl(relay->client.sin_addr.s_addr) == INADDR_LOOPBACK);
        }
        /* A second client cannot take the same address while the first holds it. */
        wtd_client_config *cfg = NULL;
        wtd_client *c2 = NULL;
        char addr[32];
        snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)port);
        CHECK_OK(wtd_client_config_new(&cfg));
        CHECK_OK(wtd_client_config_set_bind(cfg, addr));
        CHECK_RC(wtd_client_new(g_crt, cfg, &c2), WTD_ERR_IO);
        CHECK(c2 == NULL);
        wtd_client_config_free(cfg);
    }
    wtd_session_free(s);
    wtd_client_free(client);
    relay_stop(relay);
    free(relay);
}

static void case3_socket_buffers(void) {
    fprintf(stderr, "case 3: wtd_transport_config_set_socket_buffers\n");
    const int snd = 96 * 1024, rcv = 160 * 1024;
    const int want_snd = granted(SO_SNDBUF, SO_SNDBUFFORCE, snd);
    const int want_rcv = granted(SO_RCVBUF, SO_RCVBUFFORCE, rcv);
    const int def_snd = granted(SO_SNDBUF, SO_SNDBUFFORCE, 0), def_rcv = granted(SO_RCVBUF, SO_RCVBUFFORCE, 0);
    if (geteuid() == 0) {
        /* Privileged: the request is honoured exactly (doubled by Linux). */
        CHECK(want_snd == 2 * snd && want_rcv == 2 * rcv);
    } else {
        fprintf(stderr, "  not root: expecting what the kernel grants an unprivileged request\n");
    }
    fprintf(stderr, "  expecting send %d / recv %d (system defaults %d / %d)\n", want_snd, want_rcv, def_snd,
            def_rcv);
    CHECK(want_snd != def_snd || want_rcv != def_rcv); /* the check below can tell them apart */

    wtd_transport_config *t = NULL;
    if (!CHECK_OK(wtd_transport_config_new(&t))) return;
    CHECK_OK(wtd_transport_config_set_socket_buffers(t, (size_t)snd, (size_t)rcv));
    wtd_server *srv = make_server(NULL, t);
    if (CHECK(srv != NULL)) {
        int fd = find_udp_socket(server_port_of(srv));
        if (CHECK(fd >= 0)) {
            CHECK(sockopt_int(fd, SO_SNDBUF) == want_snd);
            CHECK(sockopt_int(fd, SO_RCVBUF) == want_rcv);
        }
    }
    /* The client's socket, found by the address it was bound to. */
    uint8_t hash[32];
    if (srv) CHECK_OK(wtd_server_cert_hash(srv, hash, sizeof hash));
    uint16_t port = 0;
    wtd_client *client = srv ? bound_client(t, hash, &port) : NULL;
    if (client) {
        int fd = find_udp_socket(port);
        if (CHECK(fd >= 0)) {
            CHECK(sockopt_int(fd, SO_SNDBUF) == want_snd);
            CHECK(sockopt_int(fd, SO_RCVBUF) == want_rcv);
        }
        /* And it works with them. */
        char u[128];
        url(u, sizeof u, server_port_of(srv), "/buffers");
        wtd_session *s = NULL;
        CHECK_OK(wtd_client_open_session(client, u, NULL, 0, 10000, &s));
        CHECK(wait_slot("/buffers", 5000) != NULL);
        wtd_session_free(s);
    }
    wtd_client_free(client);
    wtd_server_free(srv);

    /* 0 and 0: the system defaults, untouched. */
    CHECK_OK(wtd_transport_config_set_socket_buffers(t, 0, 0));
    srv = make_server(NULL, t);
    if (CHECK(srv != NULL)) {
        int fd = find_udp_socket(server_port_of(srv));
        if (CHECK(fd >= 0)) {
            int s = sockopt_int(fd, SO_SNDBUF), r = sockopt_int(fd, SO_RCVBUF);
            fprintf(stderr, "  0/0 requested: send %d, recv %d\n", s, r);
            CHECK(s == def_snd);
            CHECK(r == def_rcv);
        }
    }
    wtd_server_free(srv);
    wtd_transport_config_free(t);
}

/* ------------------------------------------------------------------------------------ */
/* 4. Sessions per connection                                                            */

static void case4_max_sessions(wtd_client *client) {
    fprintf(stderr, "case 4: wtd_transport_config_set_max_sessions\n");
    const int N = 2;
    wtd_transport_config *t = NULL;
    if (!CHECK_OK(wtd_transport_config_new(&t))) return;
    CHECK_RC(wtd_transport_config_set_max_sessions(t, 0), WTD_ERR_INVALID_ARGUMENT);
    CHECK_OK(wtd_transport_config_set_max_sessions(t, (uint64_t)N));
    wtd_server *srv = make_server(NULL, t);
    wtd_transport_config_free(t);
    if (!CHECK(srv != NULL)) return;
    uint8_t hash[32];
    CHECK_OK(wtd_server_cert_hash(srv, hash, sizeof hash));
    wtd_client *c = make_client_on(g_crt, NULL, hash);
    char u[128];
    url(u, sizeof u, server_port_of(srv), "/");
    wtd_connection *conn = NULL;
    wtd_session *s[3] = {NULL, NULL, NULL};
    if (!c || !CHECK_OK(wtd_client_connect(c, u, 10000, &conn))) goto out;
    for (int i = 0; i < N; i++) {
        char p[32];
        snprintf(p, sizeof p, "/max/%d", i);
        CHECK_OK(wtd_connection_open_session(conn, p, NULL, 0, 10000, &s[i]));
        CHECK(wait_slot(p, 5000) != NULL);
    }
    /* One more on the same connection: refused by the server with 429, which never
     * offered it to the application. */
    wtd_session *extra = NULL;
    CHECK_RC(wtd_connection_open_session(conn, "/max/extra", NULL, 0, 10000, &extra), WTD_ERR_REJECTED);
    CHECK(extra == NULL);
    CHECK(strstr(wtd_last_error(), "429") != NULL);
    CHECK(!slot_exists("/max/extra"));
    CHECK(!wtd_connection_is_closed(conn)); /* only that request was refused */
    /* A closed session makes room for one more. */
    CHECK_OK(wtd_session_close(s[0], 0, NULL, 0));
    CHECK(wait_slot_closed("/max/0", 5000) != NULL);
    CHECK_OK(wtd_connection_open_session(conn, "/max/again", NULL, 0, 10000, &s[2]));
    CHECK(wait_slot("/max/again", 5000) != NULL);
out:
    for (int i = 0; i < 3; i++) wtd_session_free(s[i]);
    wtd_connection_free(conn);
    wtd_client_free(c);
    wtd_server_free(srv);

    /* The control: a server with the default limit accepts N+1 on one connection. */
    wtd_connection *conn2 = NULL;
    wtd_session *d[3] = {NULL, NULL, NULL};
    url(u, sizeof u, g_port, "/");
    if (CHECK_OK(wtd_client_connect(client, u, 10000, &conn2))) {
        for (int i = 0; i <= N; i++) {
            char p[32];
            snprintf(p, sizeof p, "/nomax/%d", i);
            CHECK_OK(wtd_connection_open_session(conn2, p, NULL, 0, 10000, &d[i]));
        }
    }
    for (int i = 0; i <= N; i++) wtd_session_free(d[i]);
    wtd_connection_free(conn2);
}

/* ------------------------------------------------------------------------------------ */
/* 5. Certificate from PEM files                                                         */

/* An ECDSA P-256 CA, a leaf it signed for 127.0.0.1 and localhost (valid until 2126),
 * its key, and another CA. Made with openssl for this test. */
static const char TEST_CA[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBkjCCATmgAwIBAgIUDeSHuc9mdfc1fb4qgtwJKfMvfIYwCgYIKoZIzj0EAwIw\n"
    "FjEUMBIGA1UEAwwLd3RkIHRlc3QgQ0EwIBcNMjYxMjA3MDEwNDI1WhgPMjEyNjEx\n"
    "MTMwMTA0MjVaMBYxFDASBgNVBAMMC3d0ZCB0ZXN0IENBMFkwEwYHKoZIzj0CAQYI\n"
    "KoZIzj0DAQcDQgAE3p3siL9vgW4Zlw9QvMUWJHA8v3k1j+GDc2ZcKv5JmMYTb145\n"
    "Y6mibtAJ4/g/4sWR/rL4zxlPL6mJjzv2t7BKh6NjMGEwHQYDVR0OBBYEFAULvA6y\n"
    "3Ab6Sm98FFMRnshqhhIlMB8GA1UdIwQYMBaAFAULvA6y3Ab6Sm98FFMRnshqhhIl\n"
    "MA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQDAgEGMAoGCCqGSM49BAMCA0cA\n"
    "MEQCID1oi4aN3CI2PoMpDhYkVyalZ3Ihr7hD5xDksalJ/DzHAiAGRpfINK7BCy8u\n"
    "toPQzLjdJ+yKCqFzXpSVf8dvADu7zA==\n"
    "-----END CERTIFICATE-----\n";
static const char OTHER_CA[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBlTCCATugAwIBAgIUIY+slVfxpEPhouC/nH3JAY87MNkwCgYIKoZIzj0EAwIw\n"
    "FzEVMBMGA1UEAwwMd3RkIG90aGVyIENBMCAXDTI2MTIwNzAxMDQyNVoYDzIxMjYx\n"
    "MTEzMDEwNDI1WjAXMRUwEwYDVQQDDAx3dGQgb3RoZXIgQ0EwWTATBgcqhkjOPQIB\n"
    "BggqhkjOPQMBBwNCAASTlvZVb5XQYC/rYlCQevao4a/Hym/gCO8+MfktQUyiJflB\n"
    "vF35IPG8EGumCMs+mi8CNb/FjKl3My5/WGzCVIzqo2MwYTAdBgNVHQ4EFgQUEKKJ\n"
    "jEzi49q4vU+knnWF4kkyhDYwHwYDVR0jBBgwFoAUEKKJjEzi49q4vU+knnWF4kky\n"
    "hDYwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAQYwCgYIKoZIzj0EAwID\n"
    "SAAwRQIgHOHzy83sK3e3pxKJDlIVo/1nvKEleTl47kElSO1fPegCIQD0CJe42rbh\n"
    "qnvWdEOxzJf4dI64JbEE96NQKZaus4I2sg==\n"
    "-----END CERTIFICATE-----\n";
static const char LEAF_CERT[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBwDCCAWegAwIBAgIUFa9Dw0tdOofR/HaBpm8DVOCubKAwCgYIKoZIzj0EAwIw\n"
    "FjEUMBIGA1UEAwwLd3RkIHRlc3QgQ0EwIBcNMjYxMjA3MDEwNDI1WhgPMjEyNjEx\n"
    "MTMwMTA0MjVaMBQxEjAQBgNVBAMMCTEyNy4wLjAuMTBZMBMGByqGSM49AgEGCCqG\n"
    "SM49AwEHA0IABDCgBewTJvD/4HwEpjxCF7bjjaCbMJfThUeY8GVguR6JNYQuwYjq\n"
    "b4N89BXGKS65WaEB0BGlJq75MepX+KP2MTCjgZIwgY8wDAYDVR0TAQH/BAIwADAO\n"
    "BgNVHQ8BAf8EBAMCB4AwEwYDVR0lBAwwCgYIKwYBBQUHAwEwGgYDVR0RBBMwEYcE\n"
    "fwAAAYIJbG9jYWxob3N0MB0GA1UdDgQWBBSDlAtAMPX1V4CWZo9SoL+8upw/hzAf\n"
    "BgNVHSMEGDAWgBQFC7wOstwG+kpvfBRTEZ7IaoYSJTAKBggqhkjOPQQDAgNHADBE\n"
    "AiBZ9OaezrtLxBoIu/Nnh067I0mqR7FWqKw6umk4LrWeCQIgP5EADV0angoUBeg2\n"
    "jNiAYv2RH8VAz5btpahq5PHGGGs=\n"
    "-----END CERTIFICATE-----\n";
static const char LEAF_KEY[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgupsDJ/5e9h6B1zbH\n"
    "zu5POeY+nOlX3NJH38Y/Q/xWYw2hRANCAAQwoAXsEybw/+B8BKY8Qhe2442gmzCX\n"
    "04VHmPBlYLkeiTWELsGI6m+DfPQVxikuuVmhAdARpSau+THqV/ij9jEw\n"
    "-----END PRIVATE KEY-----\n";
/* SHA-256 of the leaf's DER (openssl x509 -outform der | sha256sum). */
static const char LEAF_SHA256[] = "efb5edb742fec6735bc75af8663424186e6ddc097d3b177f315f2bf7603d18ce";

static int write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return 0;
    int ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok;
}

/* Open a session at `port` with a client trusting `ca` (PEM) or `hash` (32 bytes). */
static wtd_result open_trusting(uint16_t port, const char *ca, const uint8_t *hash, const char *path) {
    wtd_client_config *cfg = NULL;
    wtd_client *c = NULL;
    wtd_session *s = NULL;
    if (!CHECK_OK(wtd_client_config_new(&cfg))) return WTD_ERR_INVALID_STATE;
    if (ca) CHECK_OK(wtd_client_config_add_ca_pem(cfg, (const uint8_t *)ca, strlen(ca)));
    if (hash) CHECK_OK(wtd_client_config_add_cert_hash(cfg, hash, 32));
    CHECK_OK(wtd_client_new(g_crt, cfg, &c));
    wtd_client_config_free(cfg);
    char u[128];
    url(u, sizeof u, port, path);
    wtd_result r = c ? wtd_client_open_session(c, u, NULL, 0, 10000, &s) : WTD_ERR_INVALID_STATE;
    wtd_session_free(s);
    wtd_client_free(c);
    return r;
}

static void case5_cert_pem_files(void) {
    fprintf(stderr, "case 5: wtd_server_config_set_cert_pem_files\n");
    char dir[] = "/tmp/wtd-test-config-XXXXXX";
    if (!CHECK(mkdtemp(dir) != NULL)) return;
    char cert[128], key[128];
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    if (!CHECK(write_file(cert, LEAF_CERT) && write_file(key, LEAF_KEY))) goto cleanup;

    wtd_server_config *cfg = NULL;
    CHECK_OK(wtd_server_config_new(&cfg));
    /* Swapped files are refused when set, not at the first handshake. */
    CHECK_RC(wtd_server_config_set_cert_pem_files(cfg, key, cert), WTD_ERR_TLS);
    CHECK_OK(wtd_server_config_set_cert_pem_files(cfg, cert, key));
    wtd_server *srv = make_server(cfg, NULL);
    if (!CHECK(srv != NULL)) goto cleanup;
    /* The server presents the file's certificate. */
    uint8_t hash[32], want[32];
    CHECK_OK(wtd_server_cert_hash(srv, hash, sizeof hash));
    CHECK_OK(wtd_hash_from_hex(LEAF_SHA256, want, sizeof want));
    CHECK(memcmp(hash, want, 32) == 0);
    uint16_t port = server_port_of(srv);
    /* Trusted through its CA, and through its hash; not through another CA. */
    CHECK_OK(open_trusting(port, TEST_CA, NULL, "/pem/ca"));
    CHECK(wait_slot("/pem/ca", 5000) != NULL);
    CHECK_OK(open_trusting(port, NULL, want, "/pem/hash"));
    CHECK(wait_slot("/pem/hash", 5000) != NULL);
    CHECK_RC(open_trusting(port, OTHER_CA, NULL, "/pem/other"), WTD_ERR_TLS);
    CHECK(!slot_exists("/pem/other"));
    wtd_server_free(srv);
cleanup:
    unlink(cert);
    unlink(key);
    rmdir(dir);
}

/* ------------------------------------------------------------------------------------ */
/* 6. wtd_client_close                                                                   */

static void case6_client_close(void) {
    fprintf(stderr, "case 6: wtd_client_close\n");
    wtd_client *c = make_client_on(g_crt, NULL, g_hash);
    if (!c) return;
    char u[128];
    url(u, sizeof u, g_port, "/");
    wtd_connection *conn = NULL;
    wtd_session *a = NULL, *b = NULL;
    /* Two connections: one made explicitly, one by wtd_client_open_session. */
    CHECK_OK(wtd_client_connect(c, u, 10000, &conn));
    if (conn) CHECK_OK(wtd_connection_open_session(conn, "/cc/a", NULL, 0, 10000, &a));
    url(u, sizeof u, g_port, "/cc/b");
    CHECK_OK(wtd_client_open_session(c, u, NULL, 0, 10000, &b));
    slot_t *sa = wait_slot("/cc/a", 5000), *sb = wait_slot("/cc/b", 5000);
    CHECK(sa && sb);

    CHECK_RC(wtd_client_close(NULL), WTD_ERR_INVALID_ARGUMENT);
    CHECK_OK(wtd_client_close(c));
    /* Here: both sessions end, their connection closed on this side. */
    wtd_session *mine[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        wtd_close_info info = closed_info(mine[i], 5000);
        fprintf(stderr, "  client side %d: kind %d code %llu \"%s\"\n", i, (int)info.kind,
                (unsigned long long)info.code, info.reason);
        CHECK(info.kind == WTD_CLOSE_CONNECTION_LOST);
        CHECK_RC(wtd_session_send(mine[i], U("x"), 1), WTD_ERR_CLOSED);
    }
    /* There: both sessions see the client's connection close, H3_NO_ERROR. */
    slot_t *theirs[2] = {wait_slot_closed("/cc/a", 5000), wait_slot_closed("/cc/b", 5000)};
    for (int i = 0; i < 2; i++) {
        if (!CHECK(theirs[i] != NULL)) continue;
        wtd_close_info info;
        memset(&info, 0, sizeof info);
        if (CHECK_OK(wtd_session_close_info(theirs[i]->session, &info))) {
            fprintf(stderr, "  server side %d: kind %d code %#llx \"%s\"\n", i, (int)info.kind,
                    (unsigned long long)info.code, info.reason);
            CHECK(info.kind == WTD_CLOSE_CONNECTION_LOST);
            CHECK(info.code == 0x100);
            CHECK(strstr(info.reason, "client closed") != NULL);
        }
    }
    /* Nothing new opens on a closed client. */
    wtd_session *late = NULL;
    wtd_connection *conn2 = NULL;
    if (conn) CHECK_RC(wtd_connection_open_session(conn, "/cc/late", NULL, 0, 5000, &late), WTD_ERR_CLOSED);
    CHECK_RC(wtd_client_open_session(c, u, NULL, 0, 5000, &late), WTD_ERR_CLOSED);
    url(u, sizeof u, g_port, "/");
    CHECK_RC(wtd_client_connect(c, u, 5000, &conn2), WTD_ERR_CLOSED);
    CHECK(late == NULL && conn2 == NULL);
    CHECK_OK(wtd_client_close(c)); /* again: no-op */
    wtd_session_free(a);
    wtd_session_free(b);
    wtd_connection_free(conn);
    wtd_client_free(c);
}

/* ------------------------------------------------------------------------------------ */
/* 7. wtd_connection_close                                                               */

static void case7_connection_close(void) {
    fprintf(stderr, "case 7: wtd_connection_close\n");
    wtd_transport_config *t = NULL;
    CHECK_OK(wtd_transport_config_new(&t));
    CHECK_OK(wtd_transport_config_set_datagram_events(t, false)); /* receive with wtd_session_recv */
    wtd_client *c = make_client_on(g_crt, t, g_hash);
    wtd_transport_config_free(t);
    if (!c) return;
    char u[128];
    url(u, sizeof u, g_port, "/");
    wtd_connection *closing = NULL, *other = NULL;
    wtd_session *s[3] = {NULL, NULL, NULL};
    if (!CHECK_OK(wtd_client_connect(c, u, 10000, &closing)) || !CHECK_OK(wtd_client_connect(c, u, 10000, &other)))
        goto out;
    CHECK_OK(wtd_connection_open_session(closing, "/conn/a", NULL, 0, 10000, &s[0]));
    CHECK_OK(wtd_connection_open_session(closing, "/conn/b", NULL, 0, 10000, &s[1]));
    CHECK_OK(wtd_connection_open_session(other, "/conn/other", NULL, 0, 10000, &s[2]));
    slot_t *so = wait_slot("/conn/other", 5000);
    CHECK(wait_slot("/conn/a", 5000) && wait_slot("/conn/b", 5000) && so);

    CHECK_RC(wtd_connection_close(closing, 0x42, NULL, 3), WTD_ERR_INVALID_ARGUMENT);
    CHECK(!wtd_connection_is_closed(closing));
    CHECK_OK(wtd_connection_close(closing, 0x42, U("maintenance"), 11));
    CHECK(wtd_connection_is_closed(closing));
    for (int i = 0; i < 2; i++) {
        /* Here: closed on this side. */
        wtd_close_info info = closed_info(s[i], 5000);
        CHECK(info.kind == WTD_CLOSE_CONNECTION_LOST);
        CHECK_RC(wtd_session_send(s[i], U("x"), 1), WTD_ERR_CLOSED);
        /* There: the code and reason we gave. */
        slot_t *slot = wait_slot_closed(i == 0 ? "/conn/a" : "/conn/b", 5000);
        if (!CHECK(slot != NULL)) continue;
        memset(&info, 0, sizeof info);
        if (CHECK_OK(wtd_session_close_info(slot->session, &info))) {
            fprintf(stderr, "  server side %d: kind %d code %#llx \"%s\"\n", i, (int)info.kind,
                    (unsigned long long)info.code, info.reason);
            CHECK(info.kind == WTD_CLOSE_CONNECTION_LOST);
            CHECK(info.code == 0x42);
            CHECK(strstr(info.reason, "maintenance") != NULL);
        }
    }
    wtd_session *late = NULL;
    CHECK_RC(wtd_connection_open_session(closing, "/conn/late", NULL, 0, 5000, &late), WTD_ERR_CLOSED);
    CHECK(late == NULL);
    CHECK(!slot_exists("/conn/late"));

    /* The other connection of the same client carries on, both ways. */
    CHECK(!wtd_connection_is_closed(other));
    CHECK(!wtd_session_is_closed(s[2]));
    if (so) {
        CHECK_OK(wtd_session_send_wait(so->session, U("still here"), 10, 5000));
        uint8_t buf[64];
        size_t len = 0;
        if (CHECK_OK(wtd_session_recv(s[2], buf, sizeof buf, &len, 5000)))
            CHECK(len == 10 && memcmp(buf, "still here", 10) == 0);
    }
    CHECK_OK(wtd_connection_open_session(other, "/conn/after", NULL, 0, 10000, &late));
    CHECK(wait_slot("/conn/after", 5000) != NULL);
    wtd_session_free(late);
out:
    for (int i = 0; i < 3; i++) wtd_session_free(s[i]);
    wtd_connection_free(closing);
    wtd_connection_free(other);
    wtd_client_free(c);
}

/* ------------------------------------------------------------------------------------ */
/* 8. Idle timeout                                                                       */

static void case8_idle_timeout(void) {
    fprintf(stderr, "case 8: idle timeout (wtd_transport_config_set_idle_timeout_ms)\n");
    wtd_transport_config *t = NULL;
    if (!CHECK_OK(wtd_transport_config_new(&t))) return;
    CHECK_OK(wtd_transport_config_set_idle_timeout_ms(t, 400));
    CHECK_OK(wtd_transport_config_set_keep_alive_ms(t, 0));
    CHECK_OK(wtd_transport_config_set_datagram_events(t, false));
    wtd_server *srv = make_server(NULL, t);
    relay_t *relay = calloc(1, sizeof *relay);
    uint8_t hash[32];
    wtd_client *c = NULL;
    wtd_session *s = NULL;
    if (!CHECK(srv != NULL) || !CHECK(relay != NULL) || !CHECK(relay_start(relay, server_port_of(srv)))) {
        free(relay);
        relay = NULL;
        goto out;
    }
    CHECK_OK(wtd_server_cert_hash(srv, hash, sizeof hash));
    c = make_client_on(g_crt, t, hash);
    char u[128];
    url(u, sizeof u, relay->port, "/idle");
    if (!c || !CHECK_OK(wtd_client_open_session(c, u, NULL, 0, 10000, &s))) goto out;
    slot_t *slot = wait_slot("/idle", 5000);
    if (!CHECK(slot != NULL)) goto out;
    /* The path works while the relay forwards. */
    CHECK_OK(wtd_session_send_wait(slot->session, U("ping"), 4, 5000));
    uint8_t buf[16];
    size_t len = 0;
    if (CHECK_OK(wtd_session_recv(s, buf, sizeof buf, &len, 5000))) CHECK(len == 4 && memcmp(buf, "ping", 4) == 0);

    /* Silence both ways: only the idle timer can end it, on each side. */
    atomic_store(&relay->silent, 1);
    wtd_close_info info = closed_info(s, 10000);
    fprintf(stderr, "  client side: kind %d \"%s\"; relay dropped %ld packets\n", (int)info.kind, info.reason,
            atomic_load(&relay->dropped));
    CHECK(info.kind == WTD_CLOSE_TIMED_OUT);
    CHECK(wait_slot_closed("/idle", 10000) != NULL);
    memset(&info, 0, sizeof info);
    if (CHECK_OK(wtd_session_close_info(slot->session, &info))) CHECK(info.kind == WTD_CLOSE_TIMED_OUT);
    CHECK_RC(wtd_session_send(s, U("x"), 1), WTD_ERR_CLOSED);
out:
    wtd_session_free(s);
    wtd_client_free(c);
    wtd_server_free(srv);
    if (relay) {
        relay_stop(relay);
        free(relay);
    }
    wtd_transport_config_free(t);
}

int main(void) {
    harness_begin("test_config", 120);
    case1_worker_threads(); /* first: no other runtime may exist while threads are counted */
    if (!start_endpoints()) {
        stop_endpoints(NULL);
        return harness_finish();
    }
    wtd_client *client = make_client(NULL);
    case2_client_bind();
    case3_socket_buffers();
    if (client) case4_max_sessions(client);
    case5_cert_pem_files();
    case6_client_close();
    case7_connection_close();
    case8_idle_timeout();
    stop_endpoints(client);
    return harness_finish();
}
