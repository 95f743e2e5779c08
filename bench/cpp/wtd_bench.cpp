// wtd_bench_cpp: the C++ wrapper's benchmark driver for scripts/bench.sh
// (bindings/cpp/include/wtdatagram.hpp, the same loopback pair as bench/c/wtd_bench.c:
// one runtime in callback mode accepts every session, client and server in this one
// process, the library's default settings).
//
//   wtd_bench_cpp oneway SIZE SECS [recv|callback]
//       backpressured SessionRef::send_wait; the receiver counts delivered datagrams.
//       recv: SessionRef::recv on a thread of its own (datagram events off);
//       callback: datagram events on, counted in the runtime's std::function callback
//   wtd_bench_cpp rtt SIZE COUNT [recv|callback]
//       sequential echo round trips, p50/p99; the pinger uses SessionRef::recv.
//       recv: the echo thread uses SessionRef::recv + send_wait;
//       callback: the server echoes in its event callback (send_wait there)
//
// One JSON line per result (fields of bench/README.md); impl "cpp" (recv) or
// "cpp-callback". Every loop is bounded by a count and a deadline.
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "wtdatagram.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double now_s() { return std::chrono::duration<double>(Clock::now().time_since_epoch()).count(); }

double cpu_s() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return double(ru.ru_utime.tv_sec) + double(ru.ru_utime.tv_usec) / 1e6 + double(ru.ru_stime.tv_sec) +
           double(ru.ru_stime.tv_usec) / 1e6;
}

[[noreturn]] void die(const std::string &what) {
    std::fprintf(stderr, "wtd_bench_cpp: %s\n", what.c_str());
    std::exit(1);
}

enum class Mode { recv, callback };

// The server side of the pair: its callback accepts sessions and, in callback mode,
// counts (oneway) or echoes (rtt) their datagrams.
struct Pair {
    Pair(Mode m, bool e) : mode(m), echo(e) {}
    Mode mode;
    bool echo;
    std::mutex mu;
    std::vector<wtd::Session> accepted;
    std::atomic<uint64_t> events{0};
    std::atomic<double> last{0};

    void on_event(const wtd_event &ev) {
        switch (ev.kind) {
        case WTD_EVENT_SESSION_REQUEST: {
            wtd::Session s = wtd::SessionRequest::adopt(ev.request).accept();
            std::lock_guard<std::mutex> g(mu);
            accepted.push_back(std::move(s));
            break;
        }
        case WTD_EVENT_DATAGRAM:
            if (echo) {
                wtd::SessionRef(ev.session).send_wait(wtd::bytes_view(ev.data, ev.len), 1000);
            } else {
                events.fetch_add(1, std::memory_order_relaxed);
                last.store(now_s(), std::memory_order_relaxed);
            }
            break;
        default:
            break;
        }
    }
};

struct Setup {
    Pair pair;
    wtd::Runtime rt;
    wtd::Server server;
    wtd::Client client;
    wtd::Session cs;  // client side
    wtd::SessionRef ss;  // server side

    Setup(Mode mode, bool echo, size_t size)
        : pair{mode, echo},
          rt([this](const wtd_event &ev) { pair.on_event(ev); }),
          server(rt, wtd::ServerConfig().bind("127.0.0.1:0").transport(
                         wtd::TransportConfig().datagram_events(mode == Mode::callback))),
          client(rt, wtd::ClientConfig()
                         .add_cert_hash(server.cert_hash())
                         .bind("127.0.0.1:0")
                         .transport(wtd::TransportConfig().datagram_events(false))),
          cs(client.open_session("https://127.0.0.1:" + std::to_string(server.port()) + "/bench", {}, 10000)) {
        double deadline = now_s() + 10;
        for (;;) {
            {
                std::lock_guard<std::mutex> g(pair.mu);
                if (!pair.accepted.empty()) {
                    ss = pair.accepted[0];
                    break;
                }
            }
            if (now_s() > deadline) die("the server accepted no session");
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        deadline = now_s() + 5;
        while (cs.max_datagram_size() < size) {
            if (now_s() > deadline) die("max datagram size stayed below " + std::to_string(size));
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }
};

struct Sink {
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> received{0};
    std::atomic<double> last{0};
};

// Send for `secs` (backpressured), then let the receiver drain; returns sent, received,
// wall (first send to last arrival) and CPU seconds.
void oneway_run(Setup &s, Sink &k, size_t size, double secs, uint64_t &sent, uint64_t &got, double &wall,
                double &cpu) {
    std::vector<uint8_t> payload(size, 0x5a);
    auto received = [&] {
        return s.pair.mode == Mode::callback ? s.pair.events.load() : k.received.load();
    };
    auto last = [&] { return s.pair.mode == Mode::callback ? s.pair.last.load() : k.last.load(); };
    uint64_t base = received();
    double cpu0 = cpu_s(), t0 = now_s(), stop = t0 + secs;
    sent = 0;
    for (uint64_t i = 0;; i++) {
        s.cs.send_wait(wtd::bytes_view(payload.data(), payload.size()), 1000);
        sent++;
        if ((i & 63) == 0 && now_s() >= stop) break;
    }
    double hard = now_s() + 5;
    for (;;) {
        uint64_t before = received() - base;
        if (before >= sent || now_s() >= hard) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        if (received() - base == before) break;
    }
    got = received() - base;
    wall = last() - t0;
    cpu = cpu_s() - cpu0;
}

int cmd_oneway(size_t size, double secs, Mode mode) {
    Setup s(mode, false, size);
    Sink k;
    std::thread sink;
    if (mode == Mode::recv) {
        sink = std::thread([&] {
            while (!k.stop.load(std::memory_order_relaxed)) {
                if (s.ss.recv(50)) {
                    k.received.fetch_add(1, std::memory_order_relaxed);
                    k.last.store(now_s(), std::memory_order_relaxed);
                }
            }
        });
    }
    uint64_t sent = 0, got = 0;
    double wall = 0, cpu = 0;
    oneway_run(s, k, size, 0.3, sent, got, wall, cpu);  // warm-up
    oneway_run(s, k, size, secs, sent, got, wall, cpu);
    k.stop = true;
    if (sink.joinable()) sink.join();
    wtd_session_stats st = s.ss.stats();
    if (wall <= 0) wall = 1e-9;
    std::printf("{\"impl\":\"%s\",\"case\":\"oneway\",\"size\":%zu,\"sent\":%" PRIu64 ",\"received\":%" PRIu64
                ",\"secs\":%.6f,\"rate\":%.1f,\"mb_per_s\":%.3f,\"loss_pct\":%.5f,\"cpu_us_per_dgram\":%.4f,"
                "\"recv_dropped\":%" PRIu64 "}\n",
                mode == Mode::callback ? "cpp-callback" : "cpp", size, sent, got, wall, double(got) / wall,
                double(got) * double(size) / wall / 1e6,
                sent ? 100.0 * double(sent - std::min(got, sent)) / double(sent) : 0.0,
                got ? cpu * 1e6 / double(got) : 0.0, st.recv_dropped);
    std::fflush(stdout);
    return 0;
}

std::vector<double> ping(Setup &s, size_t size, size_t count) {
    std::vector<uint8_t> payload(size, 0x5a), buf(2048);
    std::vector<double> samples;
    samples.reserve(count);
    double deadline = now_s() + 60;
    for (uint64_t i = 0; i < count && now_s() < deadline; i++) {
        std::memcpy(payload.data(), &i, sizeof i);
        double t = now_s();
        s.cs.send_wait(wtd::bytes_view(payload.data(), payload.size()), 1000);
        for (;;) {
            auto d = s.cs.recv(1000);
            if (!d) break;  // lost: no sample
            if (d->size() >= 8 && std::memcmp(d->data(), &i, sizeof i) == 0) {
                samples.push_back(now_s() - t);
                break;
            }
        }
    }
    return samples;
}

int cmd_rtt(size_t size, size_t count, Mode mode) {
    size = std::max<size_t>(size, 8);
    Setup s(mode, mode == Mode::callback, size);
    std::atomic<bool> stop{false};
    std::thread echo;
    if (mode == Mode::recv) {
        echo = std::thread([&] {
            while (!stop.load(std::memory_order_relaxed)) {
                if (auto d = s.ss.recv(50)) s.ss.send_wait(wtd::bytes_view(d->data(), d->size()), 1000);
            }
        });
    }
    ping(s, size, std::min<size_t>(count, 200));  // warm-up
    std::vector<double> v = ping(s, size, count);
    stop = true;
    if (echo.joinable()) echo.join();
    std::sort(v.begin(), v.end());
    auto pct = [&](double q) { return v.empty() ? 0.0 : v[size_t(double(v.size() - 1) * q + 0.5)] * 1e6; };
    std::printf("{\"impl\":\"%s\",\"case\":\"rtt\",\"size\":%zu,\"pings\":%zu,\"answered\":%zu,\"p50_us\":%.3f,"
                "\"p99_us\":%.3f}\n",
                mode == Mode::callback ? "cpp-callback" : "cpp", size, count, v.size(), pct(0.5), pct(0.99));
    std::fflush(stdout);
    return 0;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 4) {
        std::fprintf(stderr, "usage: wtd_bench_cpp oneway SIZE SECS [recv|callback] | rtt SIZE COUNT [recv|callback]\n");
        return 2;
    }
    std::string cmd = argv[1];
    size_t size = std::strtoul(argv[2], nullptr, 10);
    Mode mode = argc > 4 && std::string(argv[4]) == "callback" ? Mode::callback : Mode::recv;
    try {
        if (cmd == "oneway") return cmd_oneway(size, std::atof(argv[3]), mode);
        if (cmd == "rtt") return cmd_rtt(size, std::strtoul(argv[3], nullptr, 10), mode);
    } catch (const std::exception &e) {
        die(e.what());
    }
    return 2;
}
