// reliable_log: ships telemetry/log lines over WebTransport datagrams with
// acknowledgements, in C++ (wtdatagram.hpp). Both sides wrap their session in a
// wtd::Reliability layer: every message gets a sequence number, the receiver
// acknowledges it, the sender retransmits what stays unacknowledged and gets one
// delivery report per message (delivered, or given up after max_retries); the receiver
// suppresses duplicates. Both roles run in pull mode without any callback.
//
//   reliable_log serve [--bind ADDR] [--port-file FILE] [--messages N]
//   reliable_log send URL CERT_SHA256_HEX N
//
// serve: prints "listening ADDR" and "cert-sha256 HEX" (with --port-file also writes
//   "PORT HEX" to FILE), accepts one session, prints every message as "log TEXT", then
//   "received N/N duplicates D". It stays until the sender closes the session (so that
//   a retransmission whose first ACK was lost is still acknowledged), prints
//   "closed ID kind=K code=C reason=R" and exits: after N messages with --messages N,
//   else when the session closes.
// send: sends N numbered log lines with Reliability::send, takes a delivery report for
//   each with next_report, prints "delivered D/N given_up G retransmissions R", closes
//   the session with code 200 and reason "log shipped", and exits 0 when all N were
//   delivered.
// Usage errors exit 2, other errors print to stderr and exit 1.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "wtdatagram.hpp"

namespace {

constexpr uint32_t kCloseCode = 200;
constexpr const char *kCloseReason = "log shipped";

void usage(const char *argv0) {
    std::fprintf(stderr,
                 "usage: %s serve [--bind ADDR] [--port-file FILE] [--messages N]\n"
                 "       %s send URL CERT_SHA256_HEX N\n"
                 "\n"
                 "serve  accept one session, print the log lines it delivers reliably; exit after N\n"
                 "       messages (and the sender's close), or when the session closes\n"
                 "send   ship N numbered log lines with acknowledgements and print the delivery report\n",
                 argv0, argv0);
}

// A whole non-negative decimal number, or false.
bool parse_count(const char *s, unsigned long &out) {
    if (!s || !*s) return false;
    char *end = nullptr;
    errno = 0;
    unsigned long v = std::strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || s[0] == '-') return false;
    out = v;
    return true;
}

// Log line number i: what a sensor would ship.
std::string log_line(unsigned long i) {
    static const char *levels[] = {"info", "info", "info", "warn", "info", "debug", "error"};
    return "seq=" + std::to_string(i) + " level=" + levels[i % 7] + " host=sensor-" + std::to_string(i % 4) +
           " temp=" + std::to_string(180 + (i * 37) % 90) + "dC msg=\"reading ok\"";
}

// "PORT HEX" into `path`, atomically (the test waits for the file to appear).
bool write_port_file(const std::string &path, uint16_t port, const std::string &hex) {
    std::string tmp = path + ".tmp";
    {
        std::ofstream f(tmp);
        f << port << ' ' << hex << '\n';
        if (!f) return false;
    }
    return std::rename(tmp.c_str(), path.c_str()) == 0;
}

int run_serve(int argc, char **argv) {
    std::string bind = "127.0.0.1:0", port_file;
    unsigned long expected = 0;  // 0: until the session closes
    for (int i = 2; i < argc; i++) {
        if (!std::strcmp(argv[i], "--bind") && i + 1 < argc) bind = argv[++i];
        else if (!std::strcmp(argv[i], "--port-file") && i + 1 < argc) port_file = argv[++i];
        else if (!std::strcmp(argv[i], "--messages") && i + 1 < argc && parse_count(argv[i + 1], expected)) i++;
        else {
            usage(argv[0]);
            return 2;
        }
    }

    // Datagram events off: a session's datagrams wait in its own queue until the
    // reliability layer takes them over (it gets the queued ones first), so the
    // sender's first messages, which may arrive between accept() and the layer's
    // creation, are not lost to DATAGRAM events nobody reads.
    wtd::TransportConfig transport;
    transport.datagram_events(false);
    wtd::Runtime rt;  // pull mode: declared first, destroyed last
    wtd::Server server(rt, wtd::ServerConfig().bind(bind).transport(transport));
    std::string hex = server.cert_hash_hex();
    std::printf("listening %s\ncert-sha256 %s\n", server.local_addr().c_str(), hex.c_str());
    std::fflush(stdout);
    if (!port_file.empty() && !write_port_file(port_file, server.port(), hex)) {
        std::perror("port file");
        return 1;
    }

    // Wait for one session (a server waits for its client as long as it takes).
    wtd::Session session;
    while (!session) {
        auto ev = rt.next_event(-1);
        if (!ev || ev->kind() != WTD_EVENT_SESSION_REQUEST) continue;  // others: ignorable
        auto req = wtd::SessionRequest::adopt(ev->raw().request);      // we own it now
        std::printf("session request path=%s origin=%s\n", req.path().c_str(), req.origin().value_or("-").c_str());
        try {
            session = req.accept();
        } catch (const wtd::Error &e) {
            std::fprintf(stderr, "accept failed: %s\n", e.what());
        }
    }
    std::printf("session %llu path=%s\n", static_cast<unsigned long long>(session.id()), session.path().c_str());
    std::fflush(stdout);

    // The layer takes over the session's datagrams (declared after the session: it must
    // not outlive it). Receive queue 1000 messages; 65536 sequences remembered for
    // duplicate detection. A retransmission older than what the receiver remembers is
    // taken for a duplicate (acknowledged, not delivered again), so this memory must
    // cover every sequence the sender may still retransmit: its window, but also what
    // it sends past a lost message before retransmitting it (here ~12k messages per
    // 500 ms ACK timeout at full loopback speed).
    wtd::ReliabilityConfig cfg;
    cfg.queues(1000, 65536);
    wtd::Reliability rel(session, cfg);
    unsigned long received = 0;
    while (expected == 0 || received < expected) {
        std::optional<std::vector<uint8_t>> msg;
        try {
            msg = rel.receive(1000);
        } catch (const wtd::Error &e) {
            if (e.code() == WTD_ERR_CLOSED) break;  // session closed and queue drained
            throw;
        }
        if (!msg) continue;  // nothing for a second: keep waiting
        std::printf("log %.*s\n", static_cast<int>(msg->size()), reinterpret_cast<const char *>(msg->data()));
        received++;
    }
    wtd_reliability_stats st = rel.stats();
    if (expected) std::printf("received %lu/%lu", received, expected);
    else std::printf("received %lu", received);
    std::printf(" duplicates %llu\n", static_cast<unsigned long long>(st.duplicates_received));
    std::fflush(stdout);

    // Keep acknowledging until the sender, who has all its reports, closes.
    auto info = session.wait_closed(10000);
    if (!info) {
        std::fprintf(stderr, "reliable_log: the sender did not close the session within 10 s\n");
        return 1;
    }
    std::printf("closed %llu kind=%s code=%llu reason=%s\n", static_cast<unsigned long long>(session.id()),
                wtd::close_kind_name(info->kind), static_cast<unsigned long long>(info->code), info->reason.c_str());
    std::fflush(stdout);

    rel = wtd::Reliability();  // free the layer before its session
    session.reset();
    server = wtd::Server();
    rt.close();
    return expected == 0 || received == expected ? 0 : 1;
}

int run_send(int argc, char **argv) {
    unsigned long count = 0;
    if (argc != 5 || !parse_count(argv[4], count)) {
        usage(argv[0]);
        return 2;
    }
    const std::string url = argv[2];

    wtd::Runtime rt;  // pull mode; nothing here needs events
    wtd::Client client(rt, wtd::ClientConfig().add_cert_hash_hex(argv[3]));
    wtd::Session session = client.open_session(url, {}, 10000);
    std::printf("connected %s max-datagram=%zu\n", url.c_str(), session.max_datagram_size());

    // Retransmit after 500 ms without an ACK, at most 10 times (~5.5 s before giving
    // up), with up to 128 messages unacknowledged: send() waits for room beyond.
    wtd::ReliabilityConfig cfg;
    cfg.ack_timeout(500).max_retries(10).window(128);
    wtd::Reliability rel(session, cfg);

    // Ids count from 0 (initial sequence 0): one flag per message for its report.
    std::vector<bool> reported(count, false);
    unsigned long reports = 0, delivered = 0, given_up = 0, bad = 0;
    auto take = [&](const wtd_delivery_report &r) {
        if (r.id >= count || reported[r.id]) {
            bad++;
            return;
        }
        reported[r.id] = true;
        reports++;
        if (r.outcome == WTD_DELIVERY_DELIVERED) delivered++;
        else given_up++;
    };

    for (unsigned long i = 0; i < count; i++) {
        rel.send(log_line(i), 10000);  // TimeoutError if the window stayed full for 10 s
        while (auto r = rel.next_report(0)) take(*r);  // collect reports as they come
    }
    // Every message ends in a report: delivered, or given up after the last retry.
    while (reports < count) {
        auto r = rel.next_report(15000);
        if (!r) {
            std::fprintf(stderr, "reliable_log: no delivery report for 15 s (%lu/%lu)\n", reports, count);
            return 1;
        }
        take(*r);
    }

    wtd_reliability_stats st = rel.stats();
    std::printf("delivered %lu/%lu given_up %lu retransmissions %llu\n", delivered, count, given_up,
                static_cast<unsigned long long>(st.retransmissions));
    if (bad) std::fprintf(stderr, "reliable_log: %lu unexpected reports\n", bad);

    // Close with a code and reason the server sees, then wait for our own close.
    rel = wtd::Reliability();
    session.close(kCloseCode, kCloseReason);
    if (!session.wait_closed(5000)) {
        std::fprintf(stderr, "reliable_log: session did not close\n");
        return 1;
    }
    session.reset();
    client = wtd::Client();
    rt.close();
    return delivered == count && given_up == 0 && bad == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(argv[0]);
        return 2;
    }
    try {
        if (!std::strcmp(argv[1], "serve")) return run_serve(argc, argv);
        if (!std::strcmp(argv[1], "send")) return run_send(argc, argv);
        usage(argv[0]);
        return 2;
    } catch (const wtd::Error &e) {
        std::fprintf(stderr, "reliable_log: %s\n", e.what());
        return 1;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "reliable_log: %s\n", e.what());
        return 1;
    }
}
