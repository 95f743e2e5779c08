// echo_server: a WebTransport datagram echo server in C++ (wtdatagram.hpp), in callback
// mode. Mirrors examples/c/echo_server.c: every event arrives on the library's
// dispatcher thread in a std::function; it accepts sessions (owning them in a map until
// they close), echoes datagrams and frees each session when its close event comes.
//
//   echo_server [--bind ADDR] [--port-file FILE] [--max-sessions N]
//
// Prints "listening ADDR" and "cert-sha256 HEX"; with --port-file also writes
// "PORT HEX" to FILE. With --max-sessions N it exits after N sessions have closed.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "wtdatagram.hpp"

int main(int argc, char **argv) {
    std::string bind = "127.0.0.1:0", port_file;
    int max_sessions = -1;
    for (int i = 1; i < argc; i++) {
        if (!std::strcmp(argv[i], "--bind") && i + 1 < argc) bind = argv[++i];
        else if (!std::strcmp(argv[i], "--port-file") && i + 1 < argc) port_file = argv[++i];
        else if (!std::strcmp(argv[i], "--max-sessions") && i + 1 < argc) max_sessions = std::atoi(argv[++i]);
        else {
            std::fprintf(stderr, "usage: %s [--bind ADDR] [--port-file FILE] [--max-sessions N]\n", argv[0]);
            return 2;
        }
    }

    // Sessions we accepted, owned until their SESSION_CLOSED event. Declared before the
    // runtime so that they outlive every callback.
    std::mutex mu;
    std::map<wtd_session *, wtd::Session> sessions;
    std::atomic<int> sessions_closed{0};

    auto on_event = [&](const wtd_event &ev) {
        switch (ev.kind) {
        case WTD_EVENT_SESSION_REQUEST: {
            auto req = wtd::SessionRequest::adopt(ev.request);  // we own it now
            std::printf("session request path=%s origin=%s\n", req.path().c_str(),
                        req.origin().value_or("-").c_str());
            try {
                wtd::Session s = req.accept();
                std::printf("session %llu path=%s\n", static_cast<unsigned long long>(s.id()), s.path().c_str());
                std::lock_guard<std::mutex> lock(mu);
                wtd_session *key = s.get();
                sessions.emplace(key, std::move(s));
            } catch (const wtd::Error &e) {
                std::fprintf(stderr, "accept failed: %s\n", e.what());
            }
            break;
        }
        case WTD_EVENT_DATAGRAM:
            // Echo with backpressure; a closed session just stops echoing.
            try {
                wtd::SessionRef(ev.session).send_wait(wtd::event_data(ev), 1000);
            } catch (const wtd::Error &e) {
                if (e.code() != WTD_ERR_CLOSED) std::fprintf(stderr, "echo failed: %s\n", e.what());
            }
            break;
        case WTD_EVENT_SESSION_CLOSED: {
            wtd::SessionRef s(ev.session);
            wtd_session_stats st{};
            try {
                st = s.stats();
            } catch (const wtd::Error &) {
            }
            std::string_view reason = wtd::event_text(ev);
            std::printf("closed %llu kind=%s code=%llu reason=%.*s received=%llu sent=%llu\n",
                        static_cast<unsigned long long>(s.id()), wtd::close_kind_name(ev.close_kind),
                        static_cast<unsigned long long>(ev.close_code), static_cast<int>(reason.size()),
                        reason.data(), static_cast<unsigned long long>(st.datagrams_received),
                        static_cast<unsigned long long>(st.datagrams_sent));
            std::fflush(stdout);
            {
                std::lock_guard<std::mutex> lock(mu);
                sessions.erase(ev.session);  // frees it; no events follow
            }
            sessions_closed++;
            break;
        }
        default:
            break;  // unknown kinds are ignorable
        }
        std::fflush(stdout);
    };

    try {
        wtd::Runtime rt(on_event);
        wtd::Server server(rt, wtd::ServerConfig().bind(bind));
        std::string hex = server.cert_hash_hex();
        std::printf("listening %s\ncert-sha256 %s\n", server.local_addr().c_str(), hex.c_str());
        std::fflush(stdout);
        if (!port_file.empty()) {
            std::string tmp = port_file + ".tmp";
            {
                std::ofstream f(tmp);
                f << server.port() << ' ' << hex << '\n';
                if (!f) {
                    std::perror("port file");
                    return 1;
                }
            }
            if (std::rename(tmp.c_str(), port_file.c_str()) != 0) {
                std::perror("port file");
                return 1;
            }
        }

        while (max_sessions < 0 || sessions_closed.load() < max_sessions)
            std::this_thread::sleep_for(std::chrono::milliseconds(20));

        server = wtd::Server();  // close and free the server
        {
            std::lock_guard<std::mutex> lock(mu);
            sessions.clear();
        }
        rt.close();
    } catch (const wtd::Error &e) {
        std::fprintf(stderr, "echo_server: %s\n", e.what());
        return 1;
    }
    return 0;
}
