// game_fanout: a game server fanning out state ticks to its players over WebTransport
// datagrams with a wtd::Broadcaster, in C++ (wtdatagram.hpp). Both roles run in pull
// mode: the server's game loop handles events between ticks with
// Runtime::next_event(time until the next tick).
//
//   game_fanout serve --clients K --ticks T [--bind ADDR] [--port-file FILE] [--interval-ms MS]
//   game_fanout join URL CERT_SHA256_HEX
//
// serve: prints "listening ADDR" and "cert-sha256 HEX" (with --port-file also writes
//   "PORT HEX" to FILE), waits (up to 60 s) until K players joined, adds their sessions
//   to a broadcaster and broadcasts T ticks, one every MS ms (default 20, i.e. 50 Hz).
//   Prints "broadcast T ticks to K players dropped D", then "player I session ID
//   got N/T" for the count each player reported, closes every session with code 4 and
//   reason "game over", and exits 0 when nothing was dropped and every player got
//   every tick. Late joiners get 503.
// join: opens a session, receives ticks until the server closes it, answers the final
//   tick with "got N", prints "ticks N last T" (N ticks received, T the number of the
//   last one) and "closed kind=K code=C reason=R"; exits 0 when the server closed it.
// Usage errors exit 2, other errors print to stderr and exit 1.
//
// Tick datagram: "tick t/T ball=(x,y) score=a:b" (t counts from 1), the same bytes for
// every player. Answer to tick T/T: "got N".
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "wtdatagram.hpp"

namespace {

using Clock = std::chrono::steady_clock;

constexpr uint32_t kGameOverCode = 4;
constexpr const char *kGameOverReason = "game over";
constexpr int32_t kJoinTimeoutMs = 60000;   // serve: wait for the players
constexpr int32_t kAnswerTimeoutMs = 5000;  // serve: wait for the "got N" answers
constexpr int32_t kIdleTimeoutMs = 30000;   // join: longest silence (lobby included)

void usage(const char *argv0) {
    std::fprintf(stderr,
                 "usage: %s serve --clients K --ticks T [--bind ADDR] [--port-file FILE] [--interval-ms MS]\n"
                 "       %s join URL CERT_SHA256_HEX\n"
                 "\n"
                 "serve  wait for K players, broadcast T state ticks (one every MS ms, default 20),\n"
                 "       then close every session with code %u \"%s\"\n"
                 "join   receive ticks until the server closes the session; print the counts\n",
                 argv0, argv0, kGameOverCode, kGameOverReason);
}

bool parse_count(const char *s, unsigned long &out) {
    if (!s || !*s) return false;
    char *end = nullptr;
    errno = 0;
    unsigned long v = std::strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || s[0] == '-') return false;
    out = v;
    return true;
}

// The game state at tick t of T: a ball bouncing around a 640x480 field.
std::string make_tick(unsigned long t, unsigned long total) {
    unsigned long x = (t * 7) % 640, y = (t * 13) % 480;
    return "tick " + std::to_string(t) + "/" + std::to_string(total) + " ball=(" + std::to_string(x) + "," +
           std::to_string(y) + ") score=" + std::to_string(t / 50) + ":" + std::to_string(t / 70);
}

bool write_port_file(const std::string &path, uint16_t port, const std::string &hex) {
    std::string tmp = path + ".tmp";
    {
        std::ofstream f(tmp);
        f << port << ' ' << hex << '\n';
        if (!f) return false;
    }
    return std::rename(tmp.c_str(), path.c_str()) == 0;
}

int32_t ms_until(Clock::time_point t) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - Clock::now()).count();
    return ms < 0 ? 0 : static_cast<int32_t>(ms);
}

struct Player {
    wtd::Session session;
    long got = -1;  // the count it answered to the final tick; -1: no answer yet
    bool left = false;
};

// The server's side of the game: its players and what their events tell.
class Game {
public:
    explicit Game(unsigned long capacity) : capacity_(capacity) {}

    // Handle one event: a join (while the lobby is open), an answer, a leave.
    void handle(const wtd_event &ev, bool lobby_open) {
        switch (ev.kind) {
        case WTD_EVENT_SESSION_REQUEST: {
            auto req = wtd::SessionRequest::adopt(ev.request);  // we own it now
            try {
                if (!lobby_open || present() >= capacity_) {
                    std::printf("late join refused path=%s\n", req.path().c_str());
                    req.reject(503);
                    break;
                }
                players_.push_back(Player{req.accept(), -1, false});
                const Player &p = players_.back();
                std::printf("player %zu joined session %llu path=%s (%zu/%lu)\n", players_.size() - 1,
                            static_cast<unsigned long long>(p.session.id()), p.session.path().c_str(), present(),
                            capacity_);
            } catch (const wtd::Error &e) {
                std::fprintf(stderr, "join failed: %s\n", e.what());
            }
            break;
        }
        case WTD_EVENT_DATAGRAM: {
            Player *p = find(ev.session);
            long n = 0;
            std::string text(wtd::event_text(ev));
            if (p && std::sscanf(text.c_str(), "got %ld", &n) == 1) p->got = n;
            break;
        }
        case WTD_EVENT_SESSION_CLOSED: {
            // The broadcaster drops a closed session from its set by itself.
            Player *p = find(ev.session);
            if (p && !p->left) {
                p->left = true;
                std::string_view reason = wtd::event_text(ev);
                std::printf("player %zu left kind=%s code=%llu reason=%.*s\n", index(*p),
                            wtd::close_kind_name(ev.close_kind), static_cast<unsigned long long>(ev.close_code),
                            static_cast<int>(reason.size()), reason.data());
            }
            break;
        }
        default:
            break;  // unknown kinds are ignorable
        }
        std::fflush(stdout);
    }

    size_t present() const {
        size_t n = 0;
        for (const auto &p : players_) n += p.left ? 0 : 1;
        return n;
    }
    bool all_answered() const {
        for (const auto &p : players_)
            if (!p.left && p.got < 0) return false;
        return true;
    }
    std::vector<Player> &players() { return players_; }
    size_t index(const Player &p) const { return static_cast<size_t>(&p - players_.data()); }

private:
    Player *find(wtd_session *s) {
        for (auto &p : players_)
            if (p.session.get() == s) return &p;
        return nullptr;
    }
    unsigned long capacity_;
    std::vector<Player> players_;
};

int run_serve(int argc, char **argv) {
    std::string bind = "127.0.0.1:0", port_file;
    unsigned long clients = 0, ticks = 0, interval_ms = 20;
    for (int i = 2; i < argc; i++) {
        if (!std::strcmp(argv[i], "--bind") && i + 1 < argc) bind = argv[++i];
        else if (!std::strcmp(argv[i], "--port-file") && i + 1 < argc) port_file = argv[++i];
        else if (!std::strcmp(argv[i], "--clients") && i + 1 < argc && parse_count(argv[i + 1], clients)) i++;
        else if (!std::strcmp(argv[i], "--ticks") && i + 1 < argc && parse_count(argv[i + 1], ticks)) i++;
        else if (!std::strcmp(argv[i], "--interval-ms") && i + 1 < argc && parse_count(argv[i + 1], interval_ms) &&
                 interval_ms <= 60000)
            i++;
        else {
            usage(argv[0]);
            return 2;
        }
    }
    if (clients == 0 || ticks == 0) {
        usage(argv[0]);
        return 2;
    }

    wtd::Runtime rt;  // pull mode: declared first, destroyed last
    wtd::Server server(rt, wtd::ServerConfig().bind(bind));
    std::string hex = server.cert_hash_hex();
    std::printf("listening %s\ncert-sha256 %s\n", server.local_addr().c_str(), hex.c_str());
    std::fflush(stdout);
    if (!port_file.empty() && !write_port_file(port_file, server.port(), hex)) {
        std::perror("port file");
        return 1;
    }

    // Lobby: wait until K players are present (one who leaves before the start does
    // not count).
    Game game(clients);
    auto deadline = Clock::now() + std::chrono::milliseconds(kJoinTimeoutMs);
    while (game.present() < clients) {
        if (Clock::now() >= deadline) {
            std::fprintf(stderr, "game_fanout: only %zu/%lu players joined within %d s\n", game.present(), clients,
                         kJoinTimeoutMs / 1000);
            return 1;
        }
        if (auto ev = rt.next_event(ms_until(deadline))) game.handle(ev->raw(), true);
    }

    wtd::Broadcaster fanout(rt);
    for (auto &p : game.players())
        if (!p.left) fanout.add(p.session);
    std::printf("start %zu players %lu ticks every %lu ms\n", fanout.session_count(), ticks, interval_ms);
    std::fflush(stdout);

    // The game loop. Broadcaster::broadcast never blocks: a player whose connection's
    // datagram send buffer is full just does not accept the tick (it is dropped for that
    // player; the returned count tells, and we count the difference). So the pace comes
    // from the clock: one small tick (< 60 bytes) per interval is far below what the
    // send buffer and the congestion window of each connection hold, and the receivers
    // drain their queues between ticks, so on loopback nothing is dropped. A server
    // pushing bursts would size each burst to the send buffer instead.
    unsigned long dropped = 0;
    auto next_tick = Clock::now();
    for (unsigned long t = 1; t <= ticks; t++) {
        size_t members = fanout.session_count();
        size_t accepted = fanout.broadcast(make_tick(t, ticks));
        dropped += members - accepted;
        next_tick += std::chrono::milliseconds(interval_ms);
        // Between ticks: handle events until the next tick is due.
        do {
            if (auto ev = rt.next_event(ms_until(next_tick))) game.handle(ev->raw(), false);
        } while (t < ticks && Clock::now() < next_tick);
    }
    std::printf("broadcast %lu ticks to %lu players dropped %lu\n", ticks, clients, dropped);
    std::fflush(stdout);

    // Datagrams and the session close travel apart (DATAGRAM frames vs the CONNECT
    // stream), and a receiver drops datagrams that arrive after its session closed:
    // closing right after the last broadcast could cut the last ticks off. So each
    // player answers the final tick with "got N", and we close once every player
    // present answered (or after kAnswerTimeoutMs).
    deadline = Clock::now() + std::chrono::milliseconds(kAnswerTimeoutMs);
    while (!game.all_answered() && Clock::now() < deadline)
        if (auto ev = rt.next_event(ms_until(deadline))) game.handle(ev->raw(), false);

    bool ok = dropped == 0;
    for (auto &p : game.players()) {
        size_t i = game.index(p);
        std::string got = p.got < 0 ? "-" : std::to_string(p.got);
        std::printf("player %zu session %llu got %s/%lu\n", i, static_cast<unsigned long long>(p.session.id()),
                    got.c_str(), ticks);
        ok = ok && !p.left && p.got == static_cast<long>(ticks);
        if (!p.left) p.session.close(kGameOverCode, kGameOverReason);
    }
    std::fflush(stdout);

    // Scope exit frees the broadcaster, the sessions, the server, then the runtime.
    // Freeing the server returns at once; its connections close in the background once
    // the "game over" capsules reached the players (at most 2 s), and freeing the
    // runtime waits for that.
    return ok ? 0 : 1;
}

int run_join(int argc, char **argv) {
    if (argc != 4) {
        usage(argv[0]);
        return 2;
    }
    const std::string url = argv[2];

    wtd::Runtime rt;  // pull mode: ticks arrive as DATAGRAM events
    wtd::Client client(rt, wtd::ClientConfig().add_cert_hash_hex(argv[3]));
    wtd::Session session = client.open_session(url, {}, 10000);
    std::printf("joined %s session %llu\n", url.c_str(), static_cast<unsigned long long>(session.id()));
    std::fflush(stdout);

    unsigned long received = 0, last = 0, bad = 0;
    for (;;) {
        auto ev = rt.next_event(kIdleTimeoutMs);
        if (!ev) {
            std::fprintf(stderr, "game_fanout: nothing from the server for %d s (ticks %lu)\n", kIdleTimeoutMs / 1000,
                         received);
            return 1;
        }
        if (ev->kind() == WTD_EVENT_DATAGRAM) {
            std::string text(ev->text());
            unsigned long t = 0, total = 0;
            if (std::sscanf(text.c_str(), "tick %lu/%lu ", &t, &total) != 2 || t == 0 || t > total ||
                text != make_tick(t, total)) {
                bad++;
                continue;
            }
            received++;
            last = t;
            if (t == total) {
                // Tell the server we have seen the end (a lost answer only delays the
                // close until the server's timeout).
                try {
                    session.send_wait("got " + std::to_string(received), 1000);
                } catch (const wtd::Error &e) {
                    std::fprintf(stderr, "game_fanout: answer not sent: %s\n", e.what());
                }
            }
        } else if (ev->kind() == WTD_EVENT_SESSION_CLOSED) {
            const wtd_event &raw = ev->raw();
            std::string_view reason = ev->text();
            std::printf("ticks %lu last %lu\n", received, last);
            if (bad) std::printf("bad %lu\n", bad);
            std::printf("closed kind=%s code=%llu reason=%.*s\n", wtd::close_kind_name(raw.close_kind),
                        static_cast<unsigned long long>(raw.close_code), static_cast<int>(reason.size()),
                        reason.data());
            std::fflush(stdout);
            bool by_server = raw.close_kind == WTD_CLOSE_REMOTE;
            ev.reset();
            session.reset();
            client = wtd::Client();
            rt.close();
            return by_server && bad == 0 ? 0 : 1;
        }
    }
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(argv[0]);
        return 2;
    }
    try {
        if (!std::strcmp(argv[1], "serve")) return run_serve(argc, argv);
        if (!std::strcmp(argv[1], "join")) return run_join(argc, argv);
        usage(argv[0]);
        return 2;
    } catch (const wtd::Error &e) {
        std::fprintf(stderr, "game_fanout: %s\n", e.what());
        return 1;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "game_fanout: %s\n", e.what());
        return 1;
    }
}
