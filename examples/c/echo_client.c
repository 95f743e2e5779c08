/*
 * echo_client: sends datagrams to a WebTransport echo server and checks the echoes,
 * in pull mode: the program drives everything from its own loop with poll() on the
 * runtime's event fd and wtd_runtime_next_event().
 *
 *   echo_client URL CERT_SHA256_HEX [COUNT]
 *
 * Prints "received N/COUNT ..." and exits 0 when every echo came back intact.
 */
#define _POSIX_C_SOURCE 200809L
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wtdatagram.h"

#define WINDOW 64

static void die(const char *what, wtd_result r) {
    fprintf(stderr, "echo_client: %s: %s: %s\n", what, wtd_result_name(r), wtd_last_error());
    exit(1);
}

/* Datagram i carries "dg <i> " followed by a pattern, sized 10..~900 bytes. */
static size_t make_datagram(unsigned i, uint8_t *buf, size_t cap) {
    int n = snprintf((char *)buf, cap, "dg %u ", i);
    size_t len = 10 + (i * 37) % 890;
    if (len > cap) len = cap;
    for (size_t k = (size_t)n; k < len; k++) buf[k] = (uint8_t)('a' + (i + k) % 26);
    return len;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s URL CERT_SHA256_HEX [COUNT]\n", argv[0]);
        return 2;
    }
    const char *url = argv[1];
    unsigned count = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 10) : 100;
    wtd_result r;

    wtd_runtime *rt = NULL;
    if ((r = wtd_runtime_new(NULL, &rt)) != WTD_OK) die("runtime", r); /* pull mode */

    uint8_t hash[32];
    wtd_client_config *ccfg = NULL;
    wtd_client *client = NULL;
    if ((r = wtd_hash_from_hex(argv[2], hash, sizeof hash)) != WTD_OK) die("hash", r);
    if ((r = wtd_client_config_new(&ccfg)) != WTD_OK) die("client config", r);
    if ((r = wtd_client_config_add_cert_hash(ccfg, hash, sizeof hash)) != WTD_OK) die("pin hash", r);
    if ((r = wtd_client_config_add_header(ccfg, "origin", "https://example.c")) != WTD_OK) die("header", r);
    if ((r = wtd_client_new(rt, ccfg, &client)) != WTD_OK) die("client", r);
    wtd_client_config_free(ccfg);

    wtd_session *session = NULL;
    if ((r = wtd_client_open_session(client, url, NULL, 0, 10000, &session)) != WTD_OK) die("open session", r);
    size_t max = 0;
    if ((r = wtd_session_max_datagram_size(session, &max)) != WTD_OK) die("max datagram size", r);
    printf("connected %s max-datagram=%zu\n", url, max);

    uint8_t *seen = calloc(count ? count : 1, 1);
    uint8_t buf[2048];
    unsigned sent = 0, received = 0, bad = 0;
    struct pollfd pfd = {.fd = wtd_runtime_event_fd(rt), .events = POLLIN};

    while (received < count) {
        /* Keep WINDOW datagrams in flight (datagrams are unreliable: pace them). */
        while (sent < count && sent - received < WINDOW) {
            size_t len = make_datagram(sent, buf, max < sizeof buf ? max : sizeof buf);
            if ((r = wtd_session_send_wait(session, buf, len, 5000)) != WTD_OK) die("send", r);
            sent++;
        }
        int ready = poll(&pfd, 1, 5000);
        if (ready <= 0) {
            fprintf(stderr, "no echo for 5 s\n");
            break;
        }
        wtd_event ev;
        while (wtd_runtime_next_event(rt, &ev, 0) == WTD_OK) {
            if (ev.kind == WTD_EVENT_DATAGRAM) {
                unsigned i;
                uint8_t want[2048];
                if (sscanf((const char *)ev.data, "dg %u ", &i) == 1 && i < count && !seen[i] &&
                    make_datagram(i, want, max < sizeof want ? max : sizeof want) == ev.len &&
                    memcmp(want, ev.data, ev.len) == 0) {
                    seen[i] = 1;
                    received++;
                } else {
                    bad++;
                }
            } else if (ev.kind == WTD_EVENT_SESSION_CLOSED) {
                fprintf(stderr, "session closed early: %.*s\n", (int)ev.len, (const char *)ev.data);
                wtd_event_release(&ev);
                return 1;
            }
            wtd_event_release(&ev);
        }
    }

    wtd_session_stats st;
    if ((r = wtd_session_get_stats(session, &st)) != WTD_OK) die("stats", r);
    printf("received %u/%u bad=%u recv_dropped=%llu\n", received, count, bad,
           (unsigned long long)st.recv_dropped);

    /* Close with a code and reason the server sees, then wait for our own close event. */
    if ((r = wtd_session_close(session, 7, (const uint8_t *)"done", 4)) != WTD_OK) die("close", r);
    wtd_close_info info;
    if ((r = wtd_session_wait_closed(session, 5000, &info)) != WTD_OK) die("wait closed", r);
    wtd_session_free(session);
    wtd_client_free(client);
    if ((r = wtd_runtime_free(rt)) != WTD_OK) die("runtime free", r);
    free(seen);
    return received == count && bad == 0 ? 0 : 1;
}
