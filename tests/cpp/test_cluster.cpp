// test_cluster: the C++ wrapper's Cluster / ClusterBroadcaster (issue 16) against the
// nats-server that tests/c/run_with_nats.sh started (WTD_NATS_URL). Two nodes in one
// process (two cluster connections, one broadcaster each, one member session each); a
// broadcast from either reaches both clients exactly once and the counters are exact;
// errors are exceptions with the right code. The last line is "N passed, M failed".
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>

#include "wtdatagram.hpp"

static int g_pass = 0, g_fail = 0;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (cond) {                                                                  \
            g_pass++;                                                                \
        } else {                                                                     \
            g_fail++;                                                                \
            std::fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

#define CHECK_THROWS(expr, want)                                                               \
    do {                                                                                       \
        wtd_result got_ = WTD_OK;                                                              \
        try {                                                                                  \
            (void)(expr);                                                                      \
        } catch (const wtd::Error &e_) {                                                       \
            got_ = e_.code();                                                                  \
        }                                                                                      \
        if (got_ == (want)) {                                                                  \
            g_pass++;                                                                          \
        } else {                                                                               \
            g_fail++;                                                                          \
            std::fprintf(stderr, "%s:%d: FAILED: %s threw %s, expected %s\n", __FILE__, __LINE__, \
                         #expr, wtd_result_name(got_), wtd_result_name(want));                 \
        }                                                                                      \
    } while (0)

static_assert(!std::is_copy_constructible<wtd::Cluster>::value, "Cluster is move-only");
static_assert(!std::is_copy_constructible<wtd::ClusterBroadcaster>::value, "ClusterBroadcaster is move-only");

// Server side: accepts every session and keeps it, by path.
struct Sessions {
    std::mutex mu;
    std::map<std::string, wtd::Session> by_path;
    void on_event(const wtd_event &ev) {
        if (ev.kind != WTD_EVENT_SESSION_REQUEST) return;
        auto req = wtd::SessionRequest::adopt(ev.request);
        std::string path = req.path();
        wtd::Session s = req.accept();
        std::lock_guard<std::mutex> lock(mu);
        by_path.emplace(path, std::move(s));
    }
    wtd::SessionRef wait(const std::string &path) {
        for (int i = 0; i < 5000; i++) {
            {
                std::lock_guard<std::mutex> lock(mu);
                auto it = by_path.find(path);
                if (it != by_path.end()) return it->second;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        return wtd::SessionRef();
    }
};

static void run(const std::string &nats_url) {
    Sessions srv;
    wtd::Runtime srt([&srv](const wtd_event &ev) { srv.on_event(ev); });
    wtd::Server server(srt, wtd::ServerConfig().bind("127.0.0.1:0"));
    const std::string base = "https://127.0.0.1:" + std::to_string(server.port());
    wtd::Runtime crt;  // pull mode
    wtd::Client client(crt, wtd::ClientConfig().add_cert_hash(server.cert_hash()));
    wtd::Session ca = client.open_session(base + "/a", {}, 5000);
    wtd::Session cb = client.open_session(base + "/b", {}, 5000);
    wtd::Broadcaster ba(srt), bb(srt);
    ba.add(srv.wait("/a"));
    bb.add(srv.wait("/b"));

    // Errors.
    CHECK_THROWS(wtd::Cluster(srt, wtd::ClusterConfig()), WTD_ERR_INVALID_ARGUMENT);  // no URL
    CHECK_THROWS(wtd::ClusterConfig().connect_timeout(0), WTD_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(wtd::Cluster(srt, wtd::ClusterConfig().url(nats_url).subject_prefix("a.*")),
                 WTD_ERR_INVALID_ARGUMENT);
    wtd::Cluster empty;
    CHECK_THROWS(empty.stats(), WTD_ERR_INVALID_ARGUMENT);
    CHECK(!empty.is_connected());

    wtd::Cluster na(srt, wtd::ClusterConfig().url(nats_url).name("cpp-a").reconnect_delay_max(200));
    wtd::Cluster nb(srt, wtd::ClusterConfig().url(nats_url).name("cpp-b"));
    CHECK(na.is_connected() && nb.is_connected());
    CHECK_THROWS(na.join("no spaces", ba), WTD_ERR_INVALID_ARGUMENT);
    wtd::ClusterBroadcaster ja = na.join("cpp.room", ba);
    wtd::ClusterBroadcaster jb = nb.join("cpp.room", bb);
    ja.wait_bus_ready(20000);
    jb.wait_bus_ready(20000);
    CHECK(ja.is_bus_ready() && ja.origin() != jb.origin());
    CHECK_THROWS(ja.broadcast("x", 3), WTD_ERR_INVALID_ARGUMENT);

    CHECK(ja.broadcast("from-a") == 1);
    CHECK(jb.broadcast(std::string("from-b"), 2, 1000) == 1);
    std::map<wtd_session *, std::map<std::string, int>> got;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    auto total = [&] {
        int n = 0;
        for (auto &s : got)
            for (auto &d : s.second) n += d.second;
        return n;
    };
    while (total() < 4 && std::chrono::steady_clock::now() < deadline)
        if (auto ev = crt.next_event(200))
            if (ev->kind() == WTD_EVENT_DATAGRAM) got[ev->raw().session][std::string(ev->text())]++;
    for (wtd_session *s : {ca.get(), cb.get()}) {
        CHECK(got[s]["from-a"] == 1);
        CHECK(got[s]["from-b"] == 1);
        CHECK(got[s].size() == 2);
    }

    // Receivers count before they deliver: wait (bounded) for B's broadcast to be counted.
    wtd_cluster_broadcaster_stats st = ja.stats();
    for (int i = 0; i < 5000 && st.delivered_local < 2; i++) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        st = ja.stats();
    }
    CHECK(st.broadcasts == 1 && st.published == 1 && st.bus_failures == 0);
    CHECK(st.received == 1 && st.delivered_local == 2 && st.delivered_from_bus == 1);
    CHECK(st.received_invalid == 0 && st.received_gaps == 0 && st.reconnects == 0);
    CHECK(st.bus_connected && st.bus_ready && st.rtt_samples >= 1);
    wtd_cluster_stats cs = na.stats();
    CHECK(cs.connected && cs.connects == 1 && cs.reconnects == 0 && cs.max_payload == 1024 * 1024);

    // Moves leave an empty handle behind.
    wtd::ClusterBroadcaster moved = std::move(ja);
    CHECK(!ja && moved);
    CHECK_THROWS(ja.broadcast("x"), WTD_ERR_INVALID_ARGUMENT);
    CHECK(moved.broadcast("again") == 1);
}

int main() {
    const char *url = std::getenv("WTD_NATS_URL");
    if (!url || !*url) {
        std::fprintf(stderr, "test_cluster: WTD_NATS_URL is not set (run through tests/c/run_with_nats.sh)\n");
        g_fail++;
    } else {
        try {
            run(url);
        } catch (const std::exception &e) {
            g_fail++;
            std::fprintf(stderr, "unexpected exception: %s\n", e.what());
        }
    }
    std::printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail == 0 && g_pass > 0 ? 0 : 1;
}
