// echo_client: sends datagrams to a WebTransport echo server and checks the echoes, in
// C++ (wtdatagram.hpp), in pull mode: the program drives everything from its own loop
// with poll() on the runtime's event fd and Runtime::next_event(). Mirrors
// examples/c/echo_client.c.
//
//   echo_client URL CERT_SHA256_HEX [COUNT]
//
// Prints "received N/COUNT ..." and exits 0 when every echo came back intact.
#include <poll.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "wtdatagram.hpp"

namespace {

constexpr unsigned kWindow = 64;

// Datagram i carries "dg <i> " followed by a pattern, sized 10..~900 bytes.
std::vector<uint8_t> make_datagram(unsigned i, size_t cap) {
    std::string head = "dg " + std::to_string(i) + " ";
    size_t len = 10 + (i * 37) % 890;
    if (len > cap) len = cap;
    std::vector<uint8_t> d(head.begin(), head.end());
    d.resize(len < d.size() ? d.size() : len);
    for (size_t k = head.size(); k < d.size(); k++) d[k] = static_cast<uint8_t>('a' + (i + k) % 26);
    if (d.size() > len) d.resize(len);
    return d;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s URL CERT_SHA256_HEX [COUNT]\n", argv[0]);
        return 2;
    }
    const std::string url = argv[1];
    const unsigned count = argc > 3 ? static_cast<unsigned>(std::strtoul(argv[3], nullptr, 10)) : 100;

    try {
        wtd::Runtime rt;  // pull mode
        wtd::Client client(rt, wtd::ClientConfig().add_cert_hash_hex(argv[2]).add_header("origin", "https://example.cpp"));
        wtd::Session session = client.open_session(url, {}, 10000);
        const size_t max = session.max_datagram_size();
        const size_t cap = max < 2048 ? max : 2048;
        std::printf("connected %s max-datagram=%zu\n", url.c_str(), max);

        std::vector<bool> seen(count, false);
        unsigned sent = 0, received = 0, bad = 0;
        pollfd pfd{rt.event_fd(), POLLIN, 0};

        while (received < count) {
            // Keep kWindow datagrams in flight (datagrams are unreliable: pace them).
            while (sent < count && sent - received < kWindow) {
                session.send_wait(make_datagram(sent, cap), 5000);
                sent++;
            }
            if (poll(&pfd, 1, 5000) <= 0) {
                std::fprintf(stderr, "no echo for 5 s\n");
                break;
            }
            while (auto ev = rt.next_event(0)) {
                if (ev->kind() == WTD_EVENT_DATAGRAM) {
                    std::string text(ev->text());
                    unsigned i = 0;
                    if (std::sscanf(text.c_str(), "dg %u ", &i) == 1 && i < count && !seen[i] &&
                        wtd::bytes_view(make_datagram(i, cap)) == ev->data()) {
                        seen[i] = true;
                        received++;
                    } else {
                        bad++;
                    }
                } else if (ev->kind() == WTD_EVENT_SESSION_CLOSED) {
                    std::string reason(ev->text());
                    std::fprintf(stderr, "session closed early: %s\n", reason.c_str());
                    return 1;
                }
            }
        }

        wtd_session_stats st = session.stats();
        std::printf("received %u/%u bad=%u recv_dropped=%llu\n", received, count, bad,
                    static_cast<unsigned long long>(st.recv_dropped));

        // Close with a code and reason the server sees, then wait for our own close.
        session.close(7, "done");
        if (!session.wait_closed(5000)) {
            std::fprintf(stderr, "echo_client: session did not close\n");
            return 1;
        }
        session.reset();
        client = wtd::Client();
        rt.close();
        return received == count && bad == 0 ? 0 : 1;
    } catch (const wtd::Error &e) {
        std::fprintf(stderr, "echo_client: %s\n", e.what());
        return 1;
    }
}
