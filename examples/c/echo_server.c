/*
 * echo_server: a WebTransport datagram echo server in C, in callback mode.
 *
 * Every event arrives on the library's dispatcher thread in on_event(); the callback
 * calls back into the library (accept, send, free), which the C ABI allows.
 *
 *   echo_server [--bind ADDR] [--port-file FILE] [--max-sessions N]
 *
 * Prints "listening ADDR" and "cert-sha256 HEX"; with --port-file also writes
 * "PORT HEX" to FILE. With --max-sessions N it exits after N sessions have closed.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wtdatagram.h"

static atomic_int sessions_closed;

static void die(const char *what, wtd_result r) {
    fprintf(stderr, "echo_server: %s: %s: %s\n", what, wtd_result_name(r), wtd_last_error());
    exit(1);
}

static const char *close_kind_name(wtd_close_kind k) {
    switch (k) {
    case WTD_CLOSE_LOCAL: return "local";
    case WTD_CLOSE_REMOTE: return "remote";
    case WTD_CLOSE_RESET: return "reset";
    case WTD_CLOSE_CONNECTION_LOST: return "connection-lost";
    case WTD_CLOSE_TIMED_OUT: return "timed-out";
    case WTD_CLOSE_PROTOCOL_ERROR: return "protocol-error";
    default: return "none";
    }
}

static void on_event(const wtd_event *ev, void *userdata) {
    (void)userdata;
    switch (ev->kind) {
    case WTD_EVENT_SESSION_REQUEST: {
        const char *origin = wtd_session_request_origin(ev->request);
        printf("session request path=%s origin=%s\n", wtd_session_request_path(ev->request),
               origin ? origin : "-");
        wtd_session *session = NULL;
        wtd_result r = wtd_session_request_accept(ev->request, &session);
        if (r != WTD_OK) {
            fprintf(stderr, "accept failed: %s: %s\n", wtd_result_name(r), wtd_last_error());
            break;
        }
        printf("session %llu path=%s\n", (unsigned long long)wtd_session_id(session),
               wtd_session_path(session));
        break;
    }
    case WTD_EVENT_DATAGRAM: {
        /* Echo with backpressure; a closed session just stops echoing. */
        wtd_result r = wtd_session_send_wait(ev->session, ev->data, ev->len, 1000);
        if (r != WTD_OK && r != WTD_ERR_CLOSED)
            fprintf(stderr, "echo failed: %s: %s\n", wtd_result_name(r), wtd_last_error());
        break;
    }
    case WTD_EVENT_SESSION_CLOSED: {
        wtd_session_stats st;
        if (wtd_session_get_stats(ev->session, &st) != WTD_OK)
            memset(&st, 0, sizeof st);
        printf("closed %llu kind=%s code=%llu reason=%.*s received=%llu sent=%llu\n",
               (unsigned long long)wtd_session_id(ev->session), close_kind_name(ev->close_kind),
               (unsigned long long)ev->close_code, (int)ev->len, (const char *)ev->data,
               (unsigned long long)st.datagrams_received, (unsigned long long)st.datagrams_sent);
        fflush(stdout);
        wtd_session_free(ev->session); /* we own it since accept; no events follow */
        atomic_fetch_add(&sessions_closed, 1);
        break;
    }
    default:
        break; /* unknown kinds are ignorable */
    }
    fflush(stdout);
}

int main(int argc, char **argv) {
    const char *bind = "127.0.0.1:0", *port_file = NULL;
    int max_sessions = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--bind") && i + 1 < argc) bind = argv[++i];
        else if (!strcmp(argv[i], "--port-file") && i + 1 < argc) port_file = argv[++i];
        else if (!strcmp(argv[i], "--max-sessions") && i + 1 < argc) max_sessions = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--bind ADDR] [--port-file FILE] [--max-sessions N]\n", argv[0]);
            return 2;
        }
    }

    wtd_runtime_config *rcfg = NULL;
    wtd_runtime *rt = NULL;
    wtd_result r;
    if ((r = wtd_runtime_config_new(&rcfg)) != WTD_OK) die("runtime config", r);
    if ((r = wtd_runtime_config_set_event_callback(rcfg, on_event, NULL, NULL)) != WTD_OK) die("callback", r);
    if ((r = wtd_runtime_new(rcfg, &rt)) != WTD_OK) die("runtime", r);
    wtd_runtime_config_free(rcfg);

    wtd_server_config *scfg = NULL;
    wtd_server *server = NULL;
    if ((r = wtd_server_config_new(&scfg)) != WTD_OK) die("server config", r);
    if ((r = wtd_server_config_set_bind(scfg, bind)) != WTD_OK) die("bind address", r);
    if ((r = wtd_server_new(rt, scfg, &server)) != WTD_OK) die("server", r);
    wtd_server_config_free(scfg);

    char addr[64];
    uint8_t hash[32];
    char hex[65];
    if ((r = wtd_server_local_addr(server, addr, sizeof addr)) != WTD_OK) die("address", r);
    if ((r = wtd_server_cert_hash(server, hash, sizeof hash)) != WTD_OK) die("hash", r);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", hash[i]);
    printf("listening %s\ncert-sha256 %s\n", addr, hex);
    fflush(stdout);
    if (port_file) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%u %s\n", (unsigned)wtd_server_port(server), hex) < 0 || fclose(f) != 0 ||
            rename(tmp, port_file) != 0) {
            perror("port file");
            return 1;
        }
    }

    struct timespec tick = {0, 20 * 1000 * 1000};
    while (max_sessions < 0 || atomic_load(&sessions_closed) < max_sessions)
        nanosleep(&tick, NULL);

    wtd_server_free(server);
    if ((r = wtd_runtime_free(rt)) != WTD_OK) die("runtime free", r);
    return 0;
}
