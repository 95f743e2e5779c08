// test_wrapper: the C++ wrapper (bindings/cpp/include/wtdatagram.hpp) against the real
// library on loopback. Server runtime in callback mode (accepts everything; echoes
// datagrams except on /sink), client runtime in pull mode.
//
//  1. errors: exceptions carry the right wtd_result (bad args, enum values outside their
//     enum, empty handles, wrong mode)
//  2. RAII: every std::function callback is destroyed exactly once
//  3. loopback exchange via events with content checks, close code/reason seen remotely
//  4. Stream round trip (raw, JSON, structured, metadata), Monitor, Broadcaster; a
//     closed stream discards what was queued and every receive throws WTD_ERR_CLOSED;
//     no stream or layer on a closed session
//  5. Structured transport round trip; Reliability TimeoutError when the window is full
//  6. move semantics
//  7. observe and tune: log records through wtd::set_log_callback (a refused request,
//     level filter), connection statistics after an exchange, tuning in the stats
// The last line is "N passed, M failed".
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "wtdatagram.hpp"

static int g_pass = 0, g_fail = 0;

#define CHECK(cond)                                                             \
    do {                                                                        \
        if (cond) {                                                             \
            g_pass++;                                                           \
        } else {                                                                \
            g_fail++;                                                           \
            std::fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                       \
    } while (0)

// Checks that `expr` throws wtd::Error with code `want`.
#define CHECK_THROWS(expr, want)                                                              \
    do {                                                                                      \
        wtd_result got_ = WTD_OK;                                                             \
        std::string msg_;                                                                     \
        try {                                                                                 \
            (void)(expr);                                                                     \
        } catch (const wtd::Error &e_) {                                                      \
            got_ = e_.code();                                                                 \
            msg_ = e_.what();                                                                 \
        }                                                                                     \
        if (got_ == (want) && msg_.find(wtd_result_name(want)) == 0) {                        \
            g_pass++;                                                                         \
        } else {                                                                              \
            g_fail++;                                                                         \
            std::fprintf(stderr, "%s:%d: FAILED: %s threw %s (\"%s\"), expected %s\n", __FILE__, \
                         __LINE__, #expr, wtd_result_name(got_), msg_.c_str(), wtd_result_name(want)); \
        }                                                                                     \
    } while (0)

static_assert(!std::is_copy_constructible<wtd::Session>::value, "Session is move-only");
static_assert(std::is_nothrow_move_constructible<wtd::Session>::value, "Session moves");
static_assert(!std::is_copy_constructible<wtd::Runtime>::value, "Runtime is move-only");
static_assert(!std::is_copy_constructible<wtd::Stream>::value, "Stream is move-only");
static_assert(!std::is_copy_constructible<wtd::Event>::value, "Event is move-only");
static_assert(std::is_copy_constructible<wtd::SessionRef>::value, "SessionRef is a view");
static_assert(std::is_base_of<wtd::Error, wtd::TimeoutError>::value, "TimeoutError is an Error");

// Server side: accepts every session, echoes datagrams except on /sink, records closes.
struct EchoServer {
    struct Closed {
        std::string path;
        wtd_close_kind kind;
        uint64_t code;
        std::string reason;
    };
    std::mutex mu;
    std::condition_variable cv;
    std::map<wtd_session *, wtd::Session> sessions;
    std::map<wtd_session *, std::string> paths;
    std::vector<std::pair<std::string, std::string>> origins;  // path, origin
    std::vector<Closed> closed;

    void on_event(const wtd_event &ev) {
        if (ev.kind == WTD_EVENT_SESSION_REQUEST) {
            auto req = wtd::SessionRequest::adopt(ev.request);
            std::string path = req.path(), origin = req.origin().value_or("-");
            if (path == "/reject") {
                req.reject(404);
                return;
            }
            wtd::Session s = req.accept();
            std::lock_guard<std::mutex> lock(mu);
            origins.emplace_back(path, origin);
            paths[s.get()] = path;
            sessions.emplace(s.get(), std::move(s));
        } else if (ev.kind == WTD_EVENT_DATAGRAM) {
            std::string path;
            {
                std::lock_guard<std::mutex> lock(mu);
                path = paths[ev.session];
            }
            if (path != "/sink") {
                try {
                    wtd::SessionRef(ev.session).send_wait(wtd::event_data(ev), 1000);
                } catch (const wtd::Error &) {
                }
            }
        } else if (ev.kind == WTD_EVENT_SESSION_CLOSED) {
            std::lock_guard<std::mutex> lock(mu);
            closed.push_back(Closed{paths[ev.session], ev.close_kind, ev.close_code, std::string(wtd::event_text(ev))});
            sessions.erase(ev.session);
            cv.notify_all();
        }
    }

    bool wait_closed(const std::string &path, Closed *out) {
        std::unique_lock<std::mutex> lock(mu);
        return cv.wait_for(lock, std::chrono::seconds(5), [&] {
            for (const auto &c : closed)
                if (c.path == path) {
                    *out = c;
                    return true;
                }
            return false;
        });
    }
};

static void test_errors() {
    CHECK_THROWS(wtd::ServerConfig().bind("not an address"), WTD_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(wtd::hash_from_hex("zz"), WTD_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(wtd::ClientConfig().add_cert_hash(wtd::bytes_view("abc")), WTD_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(wtd::ClientConfig().add_header("bad\nname", "v"), WTD_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(wtd::TransportConfig().recv_queue(0), WTD_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(wtd::RuntimeConfig().worker_threads(0), WTD_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(wtd::ServerConfig().cert_pem("not pem", "not pem"), WTD_ERR_TLS);
    CHECK_THROWS(wtd::StreamConfig().queues(0, 1), WTD_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(wtd::SessionRef().send("x"), WTD_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(wtd::Stream().receive(0), WTD_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(wtd::Server().port(), WTD_ERR_INVALID_ARGUMENT);
    // A value outside its C enum is refused, never undefined behaviour.
    CHECK_THROWS(wtd::StreamConfig().recv_overflow(static_cast<wtd_overflow>(9)), WTD_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(wtd::StreamConfig().recv_overflow(static_cast<wtd_overflow>(-1)), WTD_ERR_INVALID_ARGUMENT);
    CHECK(std::string(wtd::result_name(static_cast<wtd_result>(999))) == "WTD_ERR_UNKNOWN");
    CHECK(std::string(wtd::result_name(static_cast<wtd_result>(19))) == "WTD_ERR_UNKNOWN");
    CHECK(std::string(wtd::result_name(WTD_ERR_INVALID_DATA)) == "WTD_ERR_INVALID_DATA");

    wtd::Hash h = wtd::hash_from_hex(std::string(64, 'a'));
    CHECK(h[0] == 0xaa && h[31] == 0xaa);
    CHECK(wtd::hash_to_hex(h) == std::string(64, 'a'));
    CHECK(wtd::is_heartbeat(wtd::heartbeat_create()));
    CHECK(!wtd::is_heartbeat("hello"));
    CHECK(wtd::is_heartbeat("HEARTBEAT:"));  // pywebtransport: startswith(b"HEARTBEAT:")
    CHECK(std::string(wtd::version()).size() > 0);

    // Pull mode: nothing yet; callback mode: next_event is INVALID_STATE.
    wtd::Runtime pull;
    CHECK(!pull.next_event(0).has_value());
    CHECK(pull.event_fd() >= 0);
    wtd::Runtime cb([](const wtd_event &) {});
    CHECK_THROWS(cb.next_event(0), WTD_ERR_INVALID_STATE);

    // After close(), the handle is empty.
    cb.close();
    CHECK(!cb);
    CHECK_THROWS(cb.next_event(0), WTD_ERR_INVALID_ARGUMENT);

    // A TimeoutError is an Error with WTD_ERR_TIMEOUT.
    try {
        throw wtd::TimeoutError("x");
    } catch (const wtd::Error &e) {
        CHECK(e.code() == WTD_ERR_TIMEOUT);
    }
}

static void test_callback_ownership() {
    auto token = std::make_shared<int>(1);
    {
        // Never used to create a runtime: freed with the config.
        wtd::RuntimeConfig c;
        c.event_callback([token](const wtd_event &) {});
        CHECK(token.use_count() == 2);
        // Replacing frees the previous one.
        c.event_callback([token](const wtd_event &) {});
        CHECK(token.use_count() == 2);
    }
    CHECK(token.use_count() == 1);
    {
        wtd::RuntimeConfig c;
        c.event_callback([token](const wtd_event &) {});
        wtd::Runtime rt(c);
        CHECK(token.use_count() == 2);  // moved to the runtime, not copied
    }
    CHECK(token.use_count() == 1);
    {
        wtd::Runtime rt([token](const wtd_event &) {});
        CHECK(token.use_count() == 2);
        wtd::Runtime other = std::move(rt);
        CHECK(!rt && other);
        CHECK(token.use_count() == 2);
        other.close();
        CHECK(token.use_count() == 1);
    }
    CHECK(token.use_count() == 1);
}

// Session batches: send_multiple / recv_multiple with datagram events off.
static void test_session_batches() {
    EchoServer es;
    wtd::Runtime srt([&es](const wtd_event &ev) { es.on_event(ev); });
    wtd::Server server(srt, wtd::ServerConfig().bind("127.0.0.1:0"));
    const std::string base = "https://127.0.0.1:" + std::to_string(server.port());
    wtd::Runtime crt;
    wtd::Client client(crt, wtd::ClientConfig()
                                .add_cert_hash(server.cert_hash())
                                .transport(wtd::TransportConfig().datagram_events(false).recv_queue_bytes(1 << 20)));
    wtd::Session s = client.open_session(base + "/echo?batch", {}, 5000);
    std::vector<std::string> msgs;
    for (int i = 0; i < 40; i++) msgs.push_back("batch-" + std::to_string(i) + std::string(static_cast<size_t>(i), 'x'));
    std::vector<wtd::bytes_view> views(msgs.begin(), msgs.end());
    CHECK(s.send_multiple(views, 5000) == msgs.size());
    CHECK(s.send_multiple({}, 0) == 0);
    std::multiset<std::string> got;
    for (int round = 0; round < 100 && got.size() < msgs.size(); round++) {
        for (auto &d : s.recv_multiple(16, 1000)) got.emplace(d.begin(), d.end());
    }
    CHECK(got == std::multiset<std::string>(msgs.begin(), msgs.end()));
    CHECK(s.recv_multiple(16, 0).empty());
    CHECK(s.recv_multiple(0, 0).empty());
    // Readiness: one DATAGRAMS_READY event once the echo is back, then it is received.
    CHECK(s.notify_readable());
    s.send_wait(wtd::bytes_view(std::string_view("ready?")), 2000);
    bool ready = false;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!ready && std::chrono::steady_clock::now() < deadline) {
        if (auto ev = crt.next_event(200))
            ready = ev->kind() == WTD_EVENT_DATAGRAMS_READY && ev->raw().session == s.get();
    }
    CHECK(ready);
    auto echoed = s.recv_multiple(4, 0);
    CHECK(echoed.size() == 1 && std::string(echoed[0].begin(), echoed[0].end()) == "ready?");
    s.close(7, "done");
    EchoServer::Closed c;
    CHECK(es.wait_closed("/echo?batch", &c));
    CHECK(c.kind == WTD_CLOSE_REMOTE && c.code == 7);
}

// Pull mode in batches (Runtime::next_events / EventBatch) and single receives
// (recv, recv_into) with datagram events off (issue 14).
static void test_event_batches() {
    EchoServer es;
    wtd::Runtime srt([&es](const wtd_event &ev) { es.on_event(ev); });
    wtd::Server server(srt, wtd::ServerConfig().bind("127.0.0.1:0"));
    const std::string base = "https://127.0.0.1:" + std::to_string(server.port());
    wtd::Runtime crt;  // pull mode
    wtd::Client client(crt, wtd::ClientConfig().add_cert_hash(server.cert_hash()));
    wtd::Session s = client.open_session(base + "/echo?events", {}, 5000);
    const unsigned n = 40;
    for (unsigned i = 0; i < n; i++) s.send_wait("event " + std::to_string(i), 2000);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (s.stats().datagrams_received < n && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    CHECK(s.stats().datagrams_received == n);
    // All queued: batches of 16 take 16, 16, then 8, in the order of arrival; each
    // next_events releases the batch's previous events.
    wtd::EventBatch batch(16);
    CHECK(batch.capacity() == 16 && batch.empty());
    std::vector<std::string> got;
    std::vector<size_t> sizes;
    while (got.size() < n) {
        size_t k = crt.next_events(batch, 1000);
        if (k == 0) break;
        sizes.push_back(k);
        CHECK(batch.size() == k);
        for (const wtd_event &ev : batch) {
            CHECK(ev.kind == WTD_EVENT_DATAGRAM && ev.session == s.get());
            got.emplace_back(reinterpret_cast<const char *>(ev.data), ev.len);
        }
    }
    CHECK(sizes == (std::vector<size_t>{16, 16, 8}));
    bool in_order = got.size() == n;
    for (unsigned i = 0; in_order && i < n; i++) in_order = got[i] == "event " + std::to_string(i);
    CHECK(in_order);
    CHECK(crt.next_events(batch, 0) == 0 && batch.empty());  // timeout: released, empty
    wtd::EventBatch moved = std::move(batch);
    CHECK(moved.capacity() == 16);
    s.close(0, "");

    // recv / recv_into with datagram events off.
    wtd::Client direct(crt, wtd::ClientConfig().add_cert_hash(server.cert_hash())
                                .transport(wtd::TransportConfig().datagram_events(false)));
    wtd::Session d = direct.open_session(base + "/echo?direct", {}, 5000);
    d.send_wait("short", 2000);
    std::string big(3000, 'b');  // larger than recv's first buffer: it grows
    if (d.max_datagram_size() < big.size()) big.resize(d.max_datagram_size());
    d.send_wait(big, 2000);
    d.send_wait("into", 2000);
    auto a = d.recv(2000);
    CHECK(a && std::string(a->begin(), a->end()) == "short" && a->size() == 5);
    uint8_t small[8];
    size_t needed = 0;
    CHECK_THROWS(d.recv_into(small, sizeof small, 2000, &needed), WTD_ERR_BUFFER_TOO_SMALL);
    CHECK(needed == big.size());  // it stayed queued
    auto b = d.recv(0);
    CHECK(b && b->size() == big.size() && std::string(b->begin(), b->end()) == big);
    auto k = d.recv_into(small, sizeof small, 2000);
    CHECK(k && *k == 4 && std::string(reinterpret_cast<char *>(small), *k) == "into");
    CHECK(!d.recv_into(small, sizeof small, 0).has_value());
    CHECK(!d.recv(0).has_value());
}

static void test_loopback() {
    EchoServer es;
    wtd::Runtime srt([&es](const wtd_event &ev) { es.on_event(ev); });
    wtd::Server server(srt, wtd::ServerConfig().bind("127.0.0.1:0"));
    CHECK(server.port() != 0);
    CHECK(server.local_addr().find("127.0.0.1:") == 0);
    const std::string base = "https://127.0.0.1:" + std::to_string(server.port());

    wtd::Runtime crt;  // pull mode
    wtd::Client client(crt, wtd::ClientConfig().add_cert_hash(server.cert_hash()).add_header("origin", "https://cpp.test"));

    // Rejected and untrusted sessions.
    CHECK_THROWS(client.open_session(base + "/reject", {}, 5000), WTD_ERR_REJECTED);
    {
        wtd::Client untrusted(crt, wtd::ClientConfig().add_cert_hash(wtd::Hash{}));
        bool threw = false;
        try {
            untrusted.open_session(base + "/x", {}, 5000);
        } catch (const wtd::Error &e) {
            threw = e.code() == WTD_ERR_TLS || e.code() == WTD_ERR_CONNECT;
        }
        CHECK(threw);
    }

    // 3. Datagram exchange through events.
    {
        wtd::Connection conn = client.connect(base, 5000);
        CHECK(!conn.is_closed());
        wtd::Session s = conn.open_session("/echo?x=1", {{"x-extra", "1"}}, 5000);
        CHECK(s.path() == "/echo?x=1");
        CHECK(s.id() == wtd_session_id(s.get()));
        CHECK(s.max_datagram_size() >= 1000);
        const unsigned n = 50;
        std::set<std::string> want, got;
        for (unsigned i = 0; i < n; i++) {
            std::string d = "datagram " + std::to_string(i) + " " + std::string(i * 7, char('a' + i % 26));
            want.insert(d);
            s.send_wait(d, 2000);
        }
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (got.size() < n && std::chrono::steady_clock::now() < deadline) {
            if (auto ev = crt.next_event(200)) {
                if (ev->kind() == WTD_EVENT_DATAGRAM) {
                    CHECK(ev->raw().session == s.get());
                    got.insert(std::string(ev->text()));
                }
            }
        }
        CHECK(got == want);
        CHECK(s.stats().datagrams_sent == n);
        CHECK(s.stats().datagrams_received == n);
        CHECK(!s.wait_closed(0).has_value());
        CHECK_THROWS(s.close_info(), WTD_ERR_INVALID_STATE);
        CHECK_THROWS(s.send(std::string(s.max_datagram_size() + 1, 'x')), WTD_ERR_TOO_LARGE);
        CHECK_THROWS(s.recv(0), WTD_ERR_INVALID_STATE);  // datagram events are on

        s.close(7, "done");
        auto info = s.wait_closed(5000);
        CHECK(info && info->kind == WTD_CLOSE_LOCAL && info->code == 7 && info->reason == "done");
        CHECK(s.is_closed());
        EchoServer::Closed c{};
        CHECK(es.wait_closed("/echo?x=1", &c));
        CHECK(c.kind == WTD_CLOSE_REMOTE && c.code == 7 && c.reason == "done");
        CHECK_THROWS(s.send("late"), WTD_ERR_CLOSED);
        {
            std::lock_guard<std::mutex> lock(es.mu);
            bool seen = false;
            for (const auto &o : es.origins) seen |= o.first == "/echo?x=1" && o.second == "https://cpp.test";
            CHECK(seen);
        }
        // Our own close event arrives in pull mode too.
        bool closed_ev = false;
        while (auto ev = crt.next_event(500)) {
            if (ev->kind() == WTD_EVENT_SESSION_CLOSED && ev->raw().session == s.get()) {
                closed_ev = ev->text() == "done";
                break;
            }
        }
        CHECK(closed_ev);
    }

    // 4. Stream round trip on a session of its own (takes over its datagrams).
    {
        wtd::Session s = client.open_session(base + "/stream", {}, 5000);
        wtd::Stream st(s, wtd::StreamConfig().queues(64, 64));
        CHECK(st.session() == s);
        CHECK(st.max_datagram_size() > 0);
        st.send("hello stream", 2);
        auto r = st.receive(3000);
        CHECK(r && wtd::bytes_view(*r) == wtd::bytes_view("hello stream"));
        CHECK(!st.receive(0).has_value());
        CHECK(!st.try_receive().has_value());

        st.send_json("{ \"a\" : [1, 2] }");
        auto j = st.receive_json(3000);
        CHECK(j && *j == "{\"a\":[1,2]}");

        st.send_structured("chat", "payload!");
        auto sd = st.receive_structured(3000);
        CHECK(sd && sd->type == "chat" && wtd::bytes_view(sd->payload) == wtd::bytes_view("payload!"));

        std::string big(1000, 'z');
        CHECK(st.send_multiple({"one", "two", big}) == 3);
        std::vector<std::vector<uint8_t>> many;
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
        while (many.size() < 3 && std::chrono::steady_clock::now() < deadline) {
            auto part = st.receive_multiple(8, 500);
            for (auto &p : part) many.push_back(std::move(p));
        }
        CHECK(many.size() == 3);
        if (many.size() == 3) {
            std::set<std::string> ss;
            for (auto &m : many) ss.insert(std::string(m.begin(), m.end()));
            CHECK(ss == (std::set<std::string>{"one", "two", big}));
        }

        st.send("meta");
        auto md = st.receive_with_metadata(3000);
        CHECK(md && md->meta.size == 4 && wtd::bytes_view(md->data) == wtd::bytes_view("meta"));

        CHECK_THROWS(st.send("x", 9), WTD_ERR_INVALID_ARGUMENT);
        CHECK_THROWS(st.send_json("not json"), WTD_ERR_INVALID_ARGUMENT);
        CHECK_THROWS(wtd::Stream(s), WTD_ERR_INVALID_STATE);  // one stream per session

        wtd_stream_stats stats = st.stats();
        CHECK(stats.datagrams_sent >= 7);
        CHECK(stats.datagrams_received >= 7);
        CHECK(st.debug_state().find('{') == 0);
        CHECK(st.diagnose().find('[') == 0);
        CHECK(st.queue_stats().send_limit == 64);

        // Monitor on the stream; Broadcaster with the stream as member.
        {
            wtd::Monitor mon(st, wtd::MonitorConfig().interval(1000));
            wtd_monitor_sample smp = mon.sample_now();
            CHECK(smp.datagrams_sent == st.stats().datagrams_sent);
            CHECK(mon.samples().size() == 1);
            CHECK(mon.alerts().empty());
            auto token = std::make_shared<int>(0);
            mon.set_alert_callback([token](const wtd_monitor_alert &) {});
            CHECK(token.use_count() == 2);
            mon.set_alert_callback(nullptr);
            CHECK(token.use_count() == 1);
            mon.set_alert_callback([token](const wtd_monitor_alert &) {});
            CHECK(token.use_count() == 2);
            mon = wtd::Monitor();
            CHECK(token.use_count() == 1);
        }
        {
            wtd::Broadcaster b(crt);
            b.add(st);
            CHECK(b.stream_count() == 1);
            CHECK(b.broadcast("to all", 1) == 1);
            auto br = st.receive(3000);
            CHECK(br && wtd::bytes_view(*br) == wtd::bytes_view("to all"));
            b.remove(st);
            CHECK_THROWS(b.remove(st), WTD_ERR_NOT_FOUND);
            b.shutdown();
            CHECK_THROWS(b.add(st), WTD_ERR_INVALID_STATE);
        }

        // close() discards what is queued; every receive then throws WTD_ERR_CLOSED.
        st.send("left behind");
        auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (st.receive_buffer_size() < 1 && std::chrono::steady_clock::now() < until)
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        CHECK(st.receive_buffer_size() == 1);
        st.close();
        CHECK(st.is_closed());
        CHECK(st.receive_buffer_size() == 0);
        CHECK_THROWS(st.send("x"), WTD_ERR_CLOSED);
        CHECK_THROWS(st.try_receive(), WTD_ERR_CLOSED);
        CHECK_THROWS(st.receive(0), WTD_ERR_CLOSED);
        CHECK_THROWS(st.receive(100), WTD_ERR_CLOSED);
        CHECK_THROWS(st.receive_multiple(4, 100), WTD_ERR_CLOSED);
        CHECK_THROWS(st.receive_with_metadata(100), WTD_ERR_CLOSED);
        CHECK_THROWS(st.receive_json(100), WTD_ERR_CLOSED);
        CHECK_THROWS(st.receive_structured(100), WTD_ERR_CLOSED);
        CHECK(!s.is_closed());  // closing the stream leaves the session open
    }

    // 4b. A closed session: its stream's try_receive says CLOSED (not "nothing yet"),
    // and no stream or layer can be made on it.
    {
        wtd::Session s = client.open_session(base + "/stream-closed", {}, 5000);
        wtd::Stream st(s);
        CHECK(!st.try_receive().has_value());
        s.close(5, "bye");
        CHECK(st.is_closed());
        CHECK_THROWS(st.try_receive(), WTD_ERR_CLOSED);
        CHECK_THROWS(st.receive(100), WTD_ERR_CLOSED);
        st = wtd::Stream();
        wtd::Session s2 = client.open_session(base + "/layers-closed", {}, 5000);
        s2.close();
        CHECK_THROWS(wtd::Stream(s2), WTD_ERR_CLOSED);
        CHECK_THROWS(wtd::Reliability(s2), WTD_ERR_CLOSED);
        CHECK_THROWS(wtd::Structured(s2, WTD_SERIALIZER_JSON, 16), WTD_ERR_CLOSED);
    }

    // 5a'. transcode: MessagePack {"a": 1.0, "b": b"\xff"} as Python's json.dumps and
    // packb write it; a result larger than the first guess; bad input and bad enums.
    {
        const uint8_t mp[] = {0x82, 0xa1, 'a', 0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0,
                              0xa1, 'b', 0xc4, 0x01, 0xff};
        std::vector<uint8_t> j = wtd::transcode(WTD_SERIALIZER_MSGPACK, WTD_SERIALIZER_JSON,
                                                wtd::bytes_view(mp, sizeof mp));
        CHECK(wtd::bytes_view(j) == wtd::bytes_view("{\"a\": 1.0, \"b\": [255]}"));
        std::vector<uint8_t> c = wtd::transcode(WTD_SERIALIZER_JSON, WTD_SERIALIZER_JSON_COMPACT, j);
        CHECK(wtd::bytes_view(c) == wtd::bytes_view("{\"a\":1.0,\"b\":[255]}"));
        // MessagePack [1, 1, ..., 1] (103 bytes) is 300 bytes of JSON: more than the
        // wrapper's first guess, so it asks again with the size the library needs.
        std::vector<uint8_t> ones = {0xdc, 0x00, 100};
        ones.insert(ones.end(), 100, 0x01);
        std::vector<uint8_t> spaced = wtd::transcode(WTD_SERIALIZER_MSGPACK, WTD_SERIALIZER_JSON, ones);
        std::string want = "[";
        for (int i = 0; i < 100; i++) want += i ? ", 1" : "1";
        want += "]";
        CHECK(wtd::bytes_view(spaced) == wtd::bytes_view(want));
        CHECK_THROWS(wtd::transcode(WTD_SERIALIZER_JSON, WTD_SERIALIZER_MSGPACK, "{"), WTD_ERR_INVALID_DATA);
        CHECK_THROWS(wtd::transcode(static_cast<wtd_serializer>(9), WTD_SERIALIZER_JSON, "1"),
                     WTD_ERR_INVALID_ARGUMENT);
    }

    // 5a. Structured transport (JSON) through the echo.
    {
        wtd::Session s = client.open_session(base + "/structured", {}, 5000);
        CHECK_THROWS(wtd::Structured(s, static_cast<wtd_serializer>(7), 16), WTD_ERR_INVALID_ARGUMENT);
        wtd::Structured t(s, WTD_SERIALIZER_JSON, 16);  // the refusal claimed nothing
        t.register_type(5);
        CHECK(t.is_registered(5) && !t.is_registered(6));
        CHECK_THROWS(t.register_type(5), WTD_ERR_INVALID_ARGUMENT);
        CHECK_THROWS(t.send(6, "{}"), WTD_ERR_INVALID_ARGUMENT);
        auto token = std::make_shared<int>(0);
        t.set_error_callback([token](const wtd_structured_error &) {});
        t.send(5, "{\"k\": \"v\"}");
        auto o = t.receive(3000);
        // pywebtransport's JSONSerializer form: Python's default separators.
        CHECK(o && o->type_id == 5 && wtd::bytes_view(o->payload) == wtd::bytes_view("{\"k\": \"v\"}"));
        CHECK(!t.next_error(0).has_value());
        CHECK(t.stats().sent == 1 && t.stats().received == 1);
        CHECK(token.use_count() == 2);
        t = wtd::Structured();
        CHECK(token.use_count() == 1);
    }

    // 5b. Reliability: the /sink server never acknowledges, so a window of 1 fills up.
    {
        wtd::Session s = client.open_session(base + "/sink", {}, 5000);
        wtd::Reliability rel(s, wtd::ReliabilityConfig().window(1).ack_timeout(5000));
        auto token = std::make_shared<int>(0);
        rel.set_report_callback([token](const wtd_delivery_report &) {});
        CHECK(token.use_count() == 2);
        uint64_t id = rel.send("first", 0);
        CHECK(id == 0);
        bool timeout = false;
        try {
            rel.send("second", 100);
        } catch (const wtd::TimeoutError &e) {
            timeout = e.code() == WTD_ERR_TIMEOUT;
        }
        CHECK(timeout);
        CHECK(!rel.receive(0).has_value());
        CHECK(!rel.next_report(0).has_value());
        CHECK(rel.stats().messages_sent == 1);
        rel.set_report_callback(nullptr);
        CHECK(token.use_count() == 1);
        rel.close();
        CHECK(rel.is_closed());
        CHECK_THROWS(rel.send("x", 0), WTD_ERR_CLOSED);
    }

    // 6. Move semantics.
    {
        wtd::Session a = client.open_session(base + "/move", {}, 5000);
        wtd_session *raw = a.get();
        wtd::Session b = std::move(a);
        CHECK(!a && a.get() == nullptr && b.get() == raw);
        CHECK_THROWS(a.send("x"), WTD_ERR_INVALID_ARGUMENT);
        CHECK(!a.is_closed() && a.id() == 0);  // NULL answers of the C ABI
        wtd::SessionRef view = b;               // a non-owning view
        CHECK(view.get() == raw);
        wtd::Session c;
        c = std::move(b);
        CHECK(!b && c.get() == raw);
        view.send("via view");
        std::vector<wtd::Session> v;
        v.push_back(std::move(c));
        v.emplace_back(client.open_session(base + "/move2", {}, 5000));
        CHECK(v[0].get() == raw && v[1].get() != nullptr);
        wtd::Session released = std::move(v[1]);
        wtd_session *r2 = released.release();
        CHECK(!released && r2 != nullptr);
        wtd::Session readopted = wtd::Session::adopt(r2);
        CHECK(readopted.get() == r2);
        v.clear();  // frees /move: the server sees a close (code 0)
        EchoServer::Closed cl{};
        CHECK(es.wait_closed("/move", &cl));
        CHECK(cl.kind == WTD_CLOSE_REMOTE && cl.code == 0);

        wtd::Client moved = std::move(client);
        CHECK(!client && moved);
        CHECK_THROWS(client.connect(base, 100), WTD_ERR_INVALID_ARGUMENT);
        readopted.reset();
        CHECK(!readopted);
    }

    // Drop the server's sessions before its runtime goes.
    server = wtd::Server();
    {
        std::lock_guard<std::mutex> lock(es.mu);
        es.sessions.clear();
    }
}

// Server limits through the wrapper: the field section limit (431), a server-wide
// session limit (503), stats, and argument errors as exceptions.
static void test_limits() {
    EchoServer es;
    wtd::Runtime srt([&es](const wtd_event &ev) { es.on_event(ev); });
    wtd::Server server(srt, wtd::ServerConfig()
                                .bind("127.0.0.1:0")
                                .max_sessions(1)
                                .max_connections(8)
                                .request_timeout_ms(3000)
                                .transport(wtd::TransportConfig().max_field_section_size(1024).max_header_fields(16)));
    const std::string base = "https://127.0.0.1:" + std::to_string(server.port());
    wtd::Runtime crt;
    wtd::Client client(crt, wtd::ClientConfig().add_cert_hash(server.cert_hash()));
    CHECK_THROWS(client.open_session(base + "/big", {{"x-big", std::string(2000, 'v')}}, 5000), WTD_ERR_REJECTED);
    wtd::Session first = client.open_session(base + "/echo", {}, 5000);
    CHECK_THROWS(client.open_session(base + "/echo", {}, 5000), WTD_ERR_REJECTED);
    wtd_server_stats st = server.stats();
    CHECK(st.requests_too_large == 1);
    CHECK(st.requests_refused_server_full == 1);
    CHECK(st.sessions == 1);
    CHECK_THROWS(wtd::ServerConfig().max_connections(0), WTD_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(wtd::TransportConfig().max_field_section_size(10), WTD_ERR_INVALID_ARGUMENT);
}

// Log records kept by a wtd::set_log_callback callback.
struct LogSink {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::pair<wtd_log_level, std::string>> records;  // level, "target: message"

    bool wait_for(const std::string &needle, wtd_log_level *level) {
        std::unique_lock<std::mutex> lock(mu);
        return cv.wait_for(lock, std::chrono::seconds(10), [&] {
            for (const auto &r : records)
                if (r.second.find(needle) != std::string::npos) {
                    *level = r.first;
                    return true;
                }
            return false;
        });
    }
};

static void test_observe() {
    // Logs: a request refused by the server's session limit, seen at INFO.
    auto sink = std::make_shared<LogSink>();
    std::atomic<int> destroyed{0};
    struct Guard {
        std::atomic<int> *n;
        explicit Guard(std::atomic<int> *p) : n(p) {}
        ~Guard() { n->fetch_add(1); }
    };
    auto guard = std::make_shared<Guard>(&destroyed);
    wtd::set_log_callback(WTD_LOG_INFO, [sink, guard](const wtd::LogRecord &r) {
        std::lock_guard<std::mutex> lock(sink->mu);
        sink->records.emplace_back(r.level, std::string(r.target) + ": " + std::string(r.message));
        sink->cv.notify_all();
    });
    guard.reset();
    CHECK_THROWS(wtd::set_log_callback(static_cast<wtd_log_level>(9), [](const wtd::LogRecord &) {}),
                 WTD_ERR_INVALID_ARGUMENT);
    {
        EchoServer es;
        wtd::Runtime srt([&es](const wtd_event &ev) { es.on_event(ev); });
        wtd::Server server(srt, wtd::ServerConfig().bind("127.0.0.1:0").max_sessions(1));
        const std::string base = "https://127.0.0.1:" + std::to_string(server.port());
        wtd::Runtime crt;
        wtd::Client client(crt, wtd::ClientConfig().add_cert_hash(server.cert_hash()).transport(
                                    wtd::TransportConfig().datagram_events(false)));
        wtd::Session s = client.open_session(base + "/stats", {}, 5000);
        CHECK_THROWS(client.open_session(base + "/second", {}, 5000), WTD_ERR_REJECTED);
        wtd_log_level level = WTD_LOG_OFF;
        CHECK(sink->wait_for("request answered 503", &level));
        CHECK(level == WTD_LOG_INFO);

        // Statistics after an exchange.
        for (int i = 0; i < 50; i++) {
            s.send_wait(std::string(800, char('a' + i % 26)), 2000);
            CHECK(s.recv(5000).has_value());
        }
        wtd_connection_stats st = s.connection_stats();
        CHECK(st.size == sizeof st);
        CHECK(st.rtt_us > 0 && st.packets_sent >= 50 && st.packets_received >= 50);
        CHECK(st.datagrams_sent == 50 && st.datagrams_received == 50);
        CHECK(st.congestion_window > 0 && st.path_mtu >= 1200);
        CHECK(st.rtt_variance_us == UINT64_MAX && st.bytes_in_flight == UINT64_MAX);
        CHECK(st.congestion_controller == WTD_CONGESTION_CUBIC);
    }
    // DEBUG records (the sessions' ends above) were filtered out at INFO.
    {
        std::lock_guard<std::mutex> lock(sink->mu);
        for (const auto &r : sink->records) CHECK(r.first <= WTD_LOG_INFO);
    }
    wtd::clear_log_callback();
    CHECK(destroyed.load() == 1);  // the callback (and what it held) destroyed once, now

    // Tuning shows in the statistics: NewReno, initial MTU 1400 without discovery.
    {
        EchoServer es;
        wtd::Runtime srt([&es](const wtd_event &ev) { es.on_event(ev); });
        auto tuned = [] {
            wtd::TransportConfig t;
            t.congestion_controller(WTD_CONGESTION_NEW_RENO).mtu_discovery(false).initial_mtu(1400).initial_rtt_ms(100);
            return t;
        };
        wtd::Server server(srt, wtd::ServerConfig().bind("127.0.0.1:0").transport(tuned()));
        wtd::Runtime crt;
        wtd::Client client(crt, wtd::ClientConfig().add_cert_hash(server.cert_hash()).transport(tuned().datagram_events(false)));
        wtd::Session s = client.open_session("https://127.0.0.1:" + std::to_string(server.port()) + "/tuned", {}, 5000);
        s.send_wait(std::string(1300, 'm'), 2000);
        CHECK(s.recv(5000).has_value());
        wtd_connection_stats st = s.connection_stats();
        CHECK(st.congestion_controller == WTD_CONGESTION_NEW_RENO);
        CHECK(st.path_mtu == 1400);
    }
    CHECK_THROWS(wtd::TransportConfig().initial_mtu(1000), WTD_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(wtd::TransportConfig().initial_rtt_ms(0), WTD_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(wtd::TransportConfig().qlog_dir("/nonexistent/wtd-qlog"), WTD_ERR_INVALID_ARGUMENT);
    wtd::TransportConfig().qlog_dir("/tmp").qlog_dir("");  // set, then off again
    CHECK_THROWS(wtd::TransportConfig().congestion_controller(static_cast<wtd_congestion_controller>(7)),
                 WTD_ERR_INVALID_ARGUMENT);
}

int main() {
    try {
        test_observe();
        test_errors();
        test_limits();
        test_callback_ownership();
        test_loopback();
        test_session_batches();
        test_event_batches();
    } catch (const std::exception &e) {
        g_fail++;
        std::fprintf(stderr, "unexpected exception: %s\n", e.what());
    }
    std::printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail == 0 ? 0 : 1;
}
