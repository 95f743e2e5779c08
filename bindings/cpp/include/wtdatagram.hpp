/*
 * wtdatagram.hpp: a header-only C++17 wrapper of the libwtdatagram C ABI (wtdatagram.h).
 * Depends on nothing but that header and the C++17 standard library; link the program
 * to libwtdatagram as a C program would.
 *
 * Error model
 *  - Every C call that returns a wtd_result other than WTD_OK throws wtd::Error, whose
 *    code() is that wtd_result and whose what() is "<WTD_ERR_NAME>: <wtd_last_error()>".
 *    WTD_ERR_TIMEOUT throws wtd::TimeoutError (derived from wtd::Error), e.g. from
 *    send_wait, wait for a connection, or Reliability::send with a full window.
 *  - Exception: calls whose purpose is to *wait for something to arrive* (receive/recv,
 *    Runtime::next_event, Session::wait_closed, next_report, next_error, try_receive)
 *    return std::optional and give std::nullopt when nothing came in time
 *    (WTD_ERR_TIMEOUT, and WTD_ERR_WOULD_BLOCK for try_*); every other failure throws,
 *    WTD_ERR_CLOSED among them once the handle is closed and nothing is left to take.
 *  - Calling a method on a moved-from (empty) handle throws Error(WTD_ERR_INVALID_ARGUMENT)
 *    (the C ABI's answer for NULL handles).
 *  - Destructors never throw. Runtime::close() reports a failure of wtd_runtime_free
 *    (e.g. WTD_ERR_WOULD_DEADLOCK inside a callback); ~Runtime ignores it.
 *
 * Ownership
 *  - Owning classes (Runtime, *Config, Server, SessionRequest, Client, Connection,
 *    Session, Stream, Reliability, Broadcaster, Monitor, Structured, Event, Cluster,
 *    ClusterBroadcaster) are move-only
 *    RAII wrappers: the destructor calls the matching wtd_*_free exactly once; a
 *    moved-from object is empty and frees nothing. get() gives the raw handle,
 *    release() gives it up (the caller must then free it), adopt(raw) takes ownership.
 *  - SessionRef is a copyable, non-owning view of a wtd_session (what events carry:
 *    event.session is borrowed). Session derives from SessionRef and owns its handle.
 *  - As in C, free children before their runtime: declare the Runtime first so that it
 *    is destroyed last; a Stream/Reliability/Monitor/Structured must not outlive the
 *    Session/Stream it was made on.
 *  - Callbacks are std::function objects. The wrapper moves each into a heap object
 *    handed to the C ABI as userdata together with a userdata_free that deletes it, so
 *    the library destroys every std::function exactly once, after its last call.
 *    Exceptions escaping a callback are caught and discarded (they cannot cross C).
 *  - Data in is a wtd::bytes_view (pointer + size; implicit from std::string_view,
 *    std::string, std::vector<uint8_t>, std::array). Data out is owned (std::vector /
 *    std::string). Views from a wtd_event are valid only as long as the event.
 */
#ifndef WTDATAGRAM_HPP
#define WTDATAGRAM_HPP

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "wtdatagram.h"

namespace wtd {

// ------------------------------------------------------------------------------------
// Errors

class Error : public std::runtime_error {
public:
    Error(wtd_result code, const std::string &message)
        : std::runtime_error(std::string(wtd_result_name(code)) + ": " + message), code_(code) {}
    wtd_result code() const noexcept { return code_; }

private:
    wtd_result code_;
};

class TimeoutError : public Error {
public:
    explicit TimeoutError(const std::string &message) : Error(WTD_ERR_TIMEOUT, message) {}
};

namespace detail {

[[noreturn]] inline void throw_error(wtd_result r) {
    std::string msg = wtd_last_error();
    if (r == WTD_ERR_TIMEOUT) throw TimeoutError(msg);
    throw Error(r, msg);
}

inline void check(wtd_result r) {
    if (r != WTD_OK) throw_error(r);
}

template <class T>
T *need(T *p, const char *what) {
    if (!p) throw Error(WTD_ERR_INVALID_ARGUMENT, std::string(what) + " handle is empty");
    return p;
}

// A unique_ptr whose deleter is a plain C free function.
template <class T, void (*Free)(T *)>
struct Deleter {
    void operator()(T *p) const noexcept { Free(p); }
};
template <class T, void (*Free)(T *)>
using Owned = std::unique_ptr<T, Deleter<T, Free>>;

// std::function callbacks handed to C as userdata.
template <class Arg>
struct Callback {
    std::function<void(const Arg &)> fn;
    static void call(const Arg *arg, void *userdata) noexcept {
        try {
            auto *self = static_cast<Callback *>(userdata);
            if (self->fn && arg) self->fn(*arg);
        } catch (...) {
            // Exceptions cannot cross the C ABI; they are discarded.
        }
    }
    static void free(void *userdata) noexcept { delete static_cast<Callback *>(userdata); }
};

inline std::string str_or_empty(const char *s) { return s ? std::string(s) : std::string(); }

}  // namespace detail

// ------------------------------------------------------------------------------------
// Bytes

// A borrowed run of bytes (std::span<const uint8_t> stand-in for C++17).
class bytes_view {
public:
    constexpr bytes_view() noexcept = default;
    constexpr bytes_view(const uint8_t *data, size_t size) noexcept : data_(data), size_(size) {}
    bytes_view(const void *data, size_t size) noexcept
        : data_(static_cast<const uint8_t *>(data)), size_(size) {}
    bytes_view(std::string_view s) noexcept  // NOLINT: implicit on purpose
        : data_(reinterpret_cast<const uint8_t *>(s.data())), size_(s.size()) {}
    bytes_view(const std::string &s) noexcept : bytes_view(std::string_view(s)) {}
    bytes_view(const char *s) noexcept : bytes_view(std::string_view(s)) {}
    bytes_view(const std::vector<uint8_t> &v) noexcept : data_(v.data()), size_(v.size()) {}
    template <size_t N>
    bytes_view(const std::array<uint8_t, N> &a) noexcept : data_(a.data()), size_(N) {}

    constexpr const uint8_t *data() const noexcept { return data_; }
    constexpr size_t size() const noexcept { return size_; }
    constexpr bool empty() const noexcept { return size_ == 0; }
    constexpr const uint8_t *begin() const noexcept { return data_; }
    constexpr const uint8_t *end() const noexcept { return data_ + size_; }
    uint8_t operator[](size_t i) const noexcept { return data_[i]; }
    std::string_view as_string_view() const noexcept {
        return std::string_view(reinterpret_cast<const char *>(data_), size_);
    }
    std::vector<uint8_t> to_vector() const { return std::vector<uint8_t>(begin(), end()); }

private:
    const uint8_t *data_ = nullptr;
    size_t size_ = 0;
};

inline bool operator==(bytes_view a, bytes_view b) noexcept {
    return a.size() == b.size() && (a.size() == 0 || std::memcmp(a.data(), b.data(), a.size()) == 0);
}
inline bool operator!=(bytes_view a, bytes_view b) noexcept { return !(a == b); }

using Hash = std::array<uint8_t, 32>;

// ------------------------------------------------------------------------------------
// Free functions

inline const char *result_name(wtd_result r) noexcept { return wtd_result_name(r); }
inline std::string last_error() { return wtd_last_error(); }
inline const char *version() noexcept { return wtd_version(); }

inline Hash hash_from_hex(const std::string &hex) {
    Hash h{};
    detail::check(wtd_hash_from_hex(hex.c_str(), h.data(), h.size()));
    return h;
}

inline std::string hash_to_hex(const Hash &h) {
    static const char digits[] = "0123456789abcdef";
    std::string s;
    s.reserve(64);
    for (uint8_t b : h) {
        s.push_back(digits[b >> 4]);
        s.push_back(digits[b & 15]);
    }
    return s;
}

inline std::string heartbeat_create() {
    uint8_t buf[64];
    size_t len = 0;
    detail::check(wtd_heartbeat_create(buf, sizeof buf, &len));
    return std::string(reinterpret_cast<const char *>(buf), len);
}

inline bool is_heartbeat(bytes_view data) noexcept { return wtd_is_heartbeat(data.data(), data.size()); }

inline const char *close_kind_name(wtd_close_kind k) noexcept {
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

// Payload (DATAGRAM) or reason text (SESSION_CLOSED) of an event, borrowed from it.
inline bytes_view event_data(const wtd_event &ev) noexcept { return bytes_view(ev.data, ev.len); }
inline std::string_view event_text(const wtd_event &ev) noexcept { return event_data(ev).as_string_view(); }

// ------------------------------------------------------------------------------------
// Configuration builders (not thread-safe, like their C counterparts). Setters return
// *this for chaining.

class TransportConfig {
public:
    TransportConfig() {
        wtd_transport_config *c = nullptr;
        detail::check(wtd_transport_config_new(&c));
        h_.reset(c);
    }
    TransportConfig &idle_timeout_ms(uint32_t ms) { return chk(wtd_transport_config_set_idle_timeout_ms(raw(), ms)); }
    TransportConfig &keep_alive_ms(uint32_t ms) { return chk(wtd_transport_config_set_keep_alive_ms(raw(), ms)); }
    TransportConfig &socket_buffers(size_t send, size_t recv) {
        return chk(wtd_transport_config_set_socket_buffers(raw(), send, recv));
    }
    TransportConfig &datagram_buffers(size_t send, size_t recv) {
        return chk(wtd_transport_config_set_datagram_buffers(raw(), send, recv));
    }
    TransportConfig &recv_queue(size_t datagrams) { return chk(wtd_transport_config_set_recv_queue(raw(), datagrams)); }
    TransportConfig &recv_queue_bytes(size_t bytes) {
        return chk(wtd_transport_config_set_recv_queue_bytes(raw(), bytes));
    }
    TransportConfig &segmentation_offload(bool on) {
        return chk(wtd_transport_config_set_segmentation_offload(raw(), on));
    }
    TransportConfig &max_sessions(uint64_t n) { return chk(wtd_transport_config_set_max_sessions(raw(), n)); }
    TransportConfig &datagram_events(bool on) { return chk(wtd_transport_config_set_datagram_events(raw(), on)); }
    TransportConfig &max_field_section_size(uint64_t bytes) {
        return chk(wtd_transport_config_set_max_field_section_size(raw(), bytes));
    }
    TransportConfig &max_header_fields(size_t n) { return chk(wtd_transport_config_set_max_header_fields(raw(), n)); }
    // WTD_CONGESTION_CUBIC (default), _NEW_RENO, _BBR (experimental: see the header).
    TransportConfig &congestion_controller(wtd_congestion_controller c) {
        return chk(wtd_transport_config_set_congestion_controller(raw(), c));
    }
    // 1..=60000 ms; default 333.
    TransportConfig &initial_rtt_ms(uint32_t ms) { return chk(wtd_transport_config_set_initial_rtt_ms(raw(), ms)); }
    // Path MTU discovery, default on (up to 1452 bytes).
    TransportConfig &mtu_discovery(bool on) { return chk(wtd_transport_config_set_mtu_discovery(raw(), on)); }
    // 1200..=65527 bytes; default 1200.
    TransportConfig &initial_mtu(uint32_t bytes) { return chk(wtd_transport_config_set_initial_mtu(raw(), bytes)); }
    // TLS secrets to the file SSLKEYLOGFILE names (Wireshark); default off.
    TransportConfig &key_log(bool on) { return chk(wtd_transport_config_set_key_log(raw(), on)); }
    // A qlog trace per connection in this existing directory; empty turns it off.
    TransportConfig &qlog_dir(const std::string &dir) {
        return chk(wtd_transport_config_set_qlog_dir(raw(), dir.empty() ? nullptr : dir.c_str()));
    }
    const wtd_transport_config *get() const noexcept { return h_.get(); }

private:
    wtd_transport_config *raw() const { return detail::need(h_.get(), "transport config"); }
    TransportConfig &chk(wtd_result r) { detail::check(r); return *this; }
    detail::Owned<wtd_transport_config, wtd_transport_config_free> h_;
};

class ServerConfig {
public:
    ServerConfig() {
        wtd_server_config *c = nullptr;
        detail::check(wtd_server_config_new(&c));
        h_.reset(c);
    }
    ServerConfig &bind(const std::string &address) { return chk(wtd_server_config_set_bind(raw(), address.c_str())); }
    ServerConfig &cert_pem(bytes_view cert, bytes_view key) {
        return chk(wtd_server_config_set_cert_pem(raw(), cert.data(), cert.size(), key.data(), key.size()));
    }
    ServerConfig &cert_pem_files(const std::string &cert_path, const std::string &key_path) {
        return chk(wtd_server_config_set_cert_pem_files(raw(), cert_path.c_str(), key_path.c_str()));
    }
    ServerConfig &self_signed(const std::vector<std::string> &names) {
        std::vector<const char *> p;
        for (const auto &n : names) p.push_back(n.c_str());
        return chk(wtd_server_config_set_self_signed(raw(), p.data(), p.size()));
    }
    ServerConfig &transport(const TransportConfig &t) {
        return chk(wtd_server_config_set_transport(raw(), detail::need(t.get(), "transport config")));
    }
    ServerConfig &request_backlog(size_t n) { return chk(wtd_server_config_set_request_backlog(raw(), n)); }
    ServerConfig &max_connections(size_t n) { return chk(wtd_server_config_set_max_connections(raw(), n)); }
    ServerConfig &max_sessions(size_t n) { return chk(wtd_server_config_set_max_sessions(raw(), n)); }
    ServerConfig &request_timeout_ms(uint32_t ms) { return chk(wtd_server_config_set_request_timeout_ms(raw(), ms)); }
    const wtd_server_config *get() const noexcept { return h_.get(); }

private:
    wtd_server_config *raw() const { return detail::need(h_.get(), "server config"); }
    ServerConfig &chk(wtd_result r) { detail::check(r); return *this; }
    detail::Owned<wtd_server_config, wtd_server_config_free> h_;
};

class ClientConfig {
public:
    ClientConfig() {
        wtd_client_config *c = nullptr;
        detail::check(wtd_client_config_new(&c));
        h_.reset(c);
    }
    ClientConfig &bind(const std::string &address) { return chk(wtd_client_config_set_bind(raw(), address.c_str())); }
    ClientConfig &add_ca_pem(bytes_view pem) { return chk(wtd_client_config_add_ca_pem(raw(), pem.data(), pem.size())); }
    ClientConfig &add_cert_hash(bytes_view sha256) {
        return chk(wtd_client_config_add_cert_hash(raw(), sha256.data(), sha256.size()));
    }
    ClientConfig &add_cert_hash_hex(const std::string &hex) { return add_cert_hash(hash_from_hex(hex)); }
    ClientConfig &insecure(bool on) { return chk(wtd_client_config_set_insecure(raw(), on)); }
    ClientConfig &add_header(const std::string &name, const std::string &value) {
        return chk(wtd_client_config_add_header(raw(), name.c_str(), value.c_str()));
    }
    ClientConfig &transport(const TransportConfig &t) {
        return chk(wtd_client_config_set_transport(raw(), detail::need(t.get(), "transport config")));
    }
    const wtd_client_config *get() const noexcept { return h_.get(); }

private:
    wtd_client_config *raw() const { return detail::need(h_.get(), "client config"); }
    ClientConfig &chk(wtd_result r) { detail::check(r); return *this; }
    detail::Owned<wtd_client_config, wtd_client_config_free> h_;
};

using EventCallback = std::function<void(const wtd_event &)>;

class RuntimeConfig {
public:
    RuntimeConfig() {
        wtd_runtime_config *c = nullptr;
        detail::check(wtd_runtime_config_new(&c));
        h_.reset(c);
    }
    RuntimeConfig &worker_threads(uint32_t n) {
        detail::check(wtd_runtime_config_set_worker_threads(raw(), n));
        return *this;
    }
    // Callback mode: `cb` runs on the library's dispatcher thread for every event. The
    // std::function moves to the runtime created from this config and is destroyed
    // exactly once by the library (here, when replaced or never used, or at runtime free).
    RuntimeConfig &event_callback(EventCallback cb) {
        using CB = detail::Callback<wtd_event>;
        wtd_runtime_config *c = raw();
        auto *ud = new CB{std::move(cb)};
        wtd_result r = wtd_runtime_config_set_event_callback(c, &CB::call, ud, &CB::free);
        if (r != WTD_OK) {  // only a panic can get here: the library did not keep it
            delete ud;
            detail::throw_error(r);
        }
        return *this;
    }
    wtd_runtime_config *get() const noexcept { return h_.get(); }

private:
    wtd_runtime_config *raw() const { return detail::need(h_.get(), "runtime config"); }
    detail::Owned<wtd_runtime_config, wtd_runtime_config_free> h_;
};

// ------------------------------------------------------------------------------------
// Runtime and pull-mode events

// An event taken with Runtime::next_event; released (wtd_event_release) on destruction.
class Event {
public:
    Event() noexcept { std::memset(&ev_, 0, sizeof ev_); }
    Event(Event &&o) noexcept : ev_(o.ev_) { std::memset(&o.ev_, 0, sizeof o.ev_); }
    Event &operator=(Event &&o) noexcept {
        if (this != &o) {
            wtd_event_release(&ev_);
            ev_ = o.ev_;
            std::memset(&o.ev_, 0, sizeof o.ev_);
        }
        return *this;
    }
    Event(const Event &) = delete;
    Event &operator=(const Event &) = delete;
    ~Event() { wtd_event_release(&ev_); }

    wtd_event_kind kind() const noexcept { return ev_.kind; }
    bytes_view data() const noexcept { return event_data(ev_); }
    std::string_view text() const noexcept { return event_text(ev_); }
    const wtd_event &raw() const noexcept { return ev_; }
    wtd_event *out() noexcept { return &ev_; }  // for wtd_runtime_next_event

private:
    wtd_event ev_;
};

// Events taken together with Runtime::next_events (wtd_runtime_next_events): each is
// released (wtd_event_release) by clear(), by the next next_events into this batch, or
// on destruction. Keep one batch and reuse it: its array is allocated once.
class EventBatch {
public:
    explicit EventBatch(size_t capacity = 256) : evs_(capacity ? capacity : 1) {}
    EventBatch(EventBatch &&o) noexcept : evs_(std::move(o.evs_)), n_(std::exchange(o.n_, 0)) {}
    EventBatch &operator=(EventBatch &&o) noexcept {
        if (this != &o) {
            clear();
            evs_ = std::move(o.evs_);
            n_ = std::exchange(o.n_, 0);
        }
        return *this;
    }
    EventBatch(const EventBatch &) = delete;
    EventBatch &operator=(const EventBatch &) = delete;
    ~EventBatch() { clear(); }

    // Release every event of the batch.
    void clear() noexcept {
        for (size_t i = 0; i < n_; i++) wtd_event_release(&evs_[i]);
        n_ = 0;
    }
    size_t size() const noexcept { return n_; }
    bool empty() const noexcept { return n_ == 0; }
    size_t capacity() const noexcept { return evs_.size(); }
    const wtd_event &operator[](size_t i) const noexcept { return evs_[i]; }
    const wtd_event *begin() const noexcept { return evs_.data(); }
    const wtd_event *end() const noexcept { return evs_.data() + n_; }

    // For Runtime::next_events: the array to fill, after releasing what it held.
    wtd_event *refill() noexcept {
        clear();
        return evs_.data();
    }
    void filled(size_t n) noexcept { n_ = n; }

private:
    std::vector<wtd_event> evs_;
    size_t n_ = 0;
};

class Runtime {
public:
    // Pull mode with default options.
    Runtime() { init(nullptr); }
    explicit Runtime(RuntimeConfig &config) { init(detail::need(config.get(), "runtime config")); }
    // Callback mode with default options otherwise.
    explicit Runtime(EventCallback cb) {
        RuntimeConfig c;
        c.event_callback(std::move(cb));
        init(c.get());
    }
    Runtime(Runtime &&) noexcept = default;
    Runtime &operator=(Runtime &&o) noexcept {
        if (this != &o) {
            reset_quietly();
            h_ = std::move(o.h_);
        }
        return *this;
    }
    ~Runtime() { reset_quietly(); }

    // Free the runtime now (see wtd_runtime_free); throws on failure, e.g.
    // WTD_ERR_WOULD_DEADLOCK from inside a callback (the runtime then stays alive).
    void close() {
        if (!h_) return;
        wtd_result r = wtd_runtime_free(h_.get());
        if (r == WTD_ERR_WOULD_DEADLOCK) detail::throw_error(r);
        h_.release();
        detail::check(r);
    }

    // Pull mode: the next event, or nullopt after `timeout_ms` (0: poll, <0: forever).
    std::optional<Event> next_event(int32_t timeout_ms) const {
        Event ev;
        wtd_result r = wtd_runtime_next_event(raw(), ev.out(), timeout_ms);
        if (r == WTD_ERR_TIMEOUT) return std::nullopt;
        detail::check(r);
        return std::optional<Event>(std::move(ev));
    }
    // Pull mode, a batch at once: release what `batch` held, then wait up to
    // `timeout_ms` for the first event and take those queued behind it, up to the
    // batch's capacity, in one call. Returns how many (0 when none came in time).
    size_t next_events(EventBatch &batch, int32_t timeout_ms) const {
        wtd_event *out = batch.refill();
        size_t n = 0;
        wtd_result r = wtd_runtime_next_events(raw(), out, batch.capacity(), &n, timeout_ms);
        if (r == WTD_ERR_TIMEOUT) return 0;
        detail::check(r);
        batch.filled(n);
        return n;
    }
    int event_fd() const { return wtd_runtime_event_fd(raw()); }
    wtd_runtime *get() const noexcept { return h_.get(); }
    wtd_runtime *raw() const { return detail::need(h_.get(), "runtime"); }
    explicit operator bool() const noexcept { return h_ != nullptr; }

private:
    struct Free {
        void operator()(wtd_runtime *p) const noexcept { (void)wtd_runtime_free(p); }
    };
    void init(wtd_runtime_config *c) {
        wtd_runtime *rt = nullptr;
        detail::check(wtd_runtime_new(c, &rt));
        h_.reset(rt);
    }
    void reset_quietly() noexcept {
        if (h_ && wtd_runtime_free(h_.get()) == WTD_ERR_WOULD_DEADLOCK) {
            // Destroyed inside its own callback: cannot free here; leak rather than hang.
        }
        h_.release();
    }
    std::unique_ptr<wtd_runtime, Free> h_;
};

// ------------------------------------------------------------------------------------
// Sessions

struct CloseInfo {
    wtd_close_kind kind = WTD_CLOSE_NONE;
    uint64_t code = 0;
    std::string reason;
};

namespace detail {
inline CloseInfo to_close_info(const wtd_close_info &i) {
    return CloseInfo{i.kind, i.code, std::string(i.reason, i.reason_len)};
}

// Receives into a per-thread buffer (grown, never shrunk, when a message does not fit:
// WTD_ERR_BUFFER_TOO_SMALL leaves it queued and reports its size) and returns a copy
// of exactly the message's size: one allocation per message, no zero-filled buffer per
// call. nullopt on timeout/would-block. `call` is a C receive: it never re-enters here.
template <class F>
std::optional<std::vector<uint8_t>> receive_vec(size_t initial, F &&call) {
    thread_local std::vector<uint8_t> scratch;
    if (scratch.size() < initial) scratch.resize(initial);
    for (;;) {
        size_t len = 0;
        wtd_result r = call(scratch.data(), scratch.size(), &len);
        if (r == WTD_OK) return std::vector<uint8_t>(scratch.data(), scratch.data() + len);
        if (r == WTD_ERR_TIMEOUT || r == WTD_ERR_WOULD_BLOCK) return std::nullopt;
        if (r == WTD_ERR_BUFFER_TOO_SMALL && len > scratch.size()) {
            scratch.resize(len);
            continue;
        }
        throw_error(r);
    }
}
}  // namespace detail

// A non-owning view of a session (copyable). Events carry sessions as borrowed
// pointers: wrap them as SessionRef(ev.session).
class SessionRef {
public:
    SessionRef() noexcept = default;
    explicit SessionRef(wtd_session *s) noexcept : h_(s) {}

    // Send without waiting; throws (code WTD_ERR_WOULD_BLOCK) when the send buffer is full.
    void send(bytes_view data) const { detail::check(wtd_session_send(raw(), data.data(), data.size())); }
    // Send without waiting; false when the send buffer is full (other failures throw).
    bool try_send(bytes_view data) const {
        wtd_result r = wtd_session_send(raw(), data.data(), data.size());
        if (r == WTD_ERR_WOULD_BLOCK) return false;
        detail::check(r);
        return true;
    }
    // Send with backpressure; TimeoutError after `timeout_ms`.
    void send_wait(bytes_view data, int32_t timeout_ms) const {
        detail::check(wtd_session_send_wait(raw(), data.data(), data.size(), timeout_ms));
    }
    // Send `items` in order with backpressure, in one call, waiting up to `timeout_ms` in
    // all; returns how many were queued (all, or fewer when time ran out or a later one
    // failed). Throws when not even the first could be queued.
    size_t send_multiple(const std::vector<bytes_view> &items, int32_t timeout_ms) const {
        std::vector<wtd_buffer> b;
        b.reserve(items.size());
        for (const auto &i : items) b.push_back(wtd_buffer{i.data(), i.size()});
        size_t sent = 0;
        detail::check(wtd_session_send_multiple(raw(), b.data(), b.size(), timeout_ms, &sent));
        return sent;
    }
    // Only with datagram events off: up to `max_count` datagrams in one call, waiting up
    // to `timeout_ms` for the first; empty when none came in time. `cap` bounds the
    // bytes taken per call (a datagram that does not fit stays queued).
    std::vector<std::vector<uint8_t>> recv_multiple(size_t max_count, int32_t timeout_ms,
                                                    size_t cap = 64 * 1500) const {
        std::vector<std::vector<uint8_t>> out;
        if (max_count == 0) return out;
        std::vector<uint8_t> buf(cap);
        std::vector<size_t> lens(max_count);
        size_t n = 0;
        wtd_result r = wtd_session_recv_multiple(raw(), buf.data(), buf.size(), lens.data(), max_count, &n, timeout_ms);
        if (r == WTD_ERR_BUFFER_TOO_SMALL) {  // the first alone is larger than cap
            buf.resize(lens[0]);
            r = wtd_session_recv_multiple(raw(), buf.data(), buf.size(), lens.data(), max_count, &n, 0);
        }
        if (r == WTD_ERR_TIMEOUT) return out;
        detail::check(r);
        out.reserve(n);
        size_t off = 0;
        for (size_t i = 0; i < n; i++) {
            out.emplace_back(buf.begin() + static_cast<std::ptrdiff_t>(off),
                             buf.begin() + static_cast<std::ptrdiff_t>(off + lens[i]));
            off += lens[i];
        }
        return out;
    }
    // Only with datagram events off; nullopt when none came in time. One allocation per
    // datagram (recv_into reuses the caller's buffer instead).
    std::optional<std::vector<uint8_t>> recv(int32_t timeout_ms) const {
        wtd_session *s = raw();
        return detail::receive_vec(2048, [&](uint8_t *b, size_t c, size_t *n) {
            return wtd_session_recv(s, b, c, n, timeout_ms);
        });
    }
    // Only with datagram events off: receive into `buf` (`cap` bytes), without
    // allocating; the datagram's size, or nullopt when none came in time. One larger
    // than `cap` stays queued: throws WTD_ERR_BUFFER_TOO_SMALL after writing its size
    // to `*needed` (when not NULL).
    std::optional<size_t> recv_into(uint8_t *buf, size_t cap, int32_t timeout_ms,
                                    size_t *needed = nullptr) const {
        size_t len = 0;
        wtd_result r = wtd_session_recv(raw(), buf, cap, &len, timeout_ms);
        if (r == WTD_ERR_TIMEOUT) return std::nullopt;
        if (r == WTD_ERR_BUFFER_TOO_SMALL && needed) *needed = len;
        detail::check(r);
        return len;
    }
    // Only with datagram events off: ask for one WTD_EVENT_DATAGRAMS_READY event once a
    // datagram waits (at once if one does). Receive with a timeout of 0 until none is
    // left, then ask again: one event thread serves many sessions without a thread
    // blocked in recv for each. Returns false once the session closed and its queue is
    // empty (no event will come).
    bool notify_readable() const {
        wtd_result r = wtd_session_notify_readable(raw());
        if (r == WTD_ERR_CLOSED) return false;
        detail::check(r);
        return true;
    }
    size_t max_datagram_size() const {
        size_t n = 0;
        detail::check(wtd_session_max_datagram_size(raw(), &n));
        return n;
    }
    void close(uint32_t code = 0, std::string_view reason = {}) const {
        bytes_view r(reason);
        detail::check(wtd_session_close(raw(), code, r.data(), r.size()));
    }
    bool is_closed() const noexcept { return wtd_session_is_closed(h_); }
    CloseInfo close_info() const {
        wtd_close_info i;
        detail::check(wtd_session_close_info(raw(), &i));
        return detail::to_close_info(i);
    }
    // nullopt if still open after `timeout_ms`.
    std::optional<CloseInfo> wait_closed(int32_t timeout_ms) const {
        wtd_close_info i;
        wtd_result r = wtd_session_wait_closed(raw(), timeout_ms, &i);
        if (r == WTD_ERR_TIMEOUT) return std::nullopt;
        detail::check(r);
        return detail::to_close_info(i);
    }
    wtd_session_stats stats() const {
        wtd_session_stats st;
        detail::check(wtd_session_get_stats(raw(), &st));
        return st;
    }
    // Transport statistics of the session's QUIC connection (RTT, loss, cwnd, path MTU);
    // fields quinn cannot provide read UINT64_MAX (see wtd_connection_stats).
    wtd_connection_stats connection_stats() const {
        wtd_connection_stats st{};
        st.size = sizeof st;
        detail::check(wtd_session_connection_stats(raw(), &st));
        return st;
    }
    uint64_t id() const noexcept { return wtd_session_id(h_); }
    std::string path() const { return detail::str_or_empty(wtd_session_path(h_)); }
    wtd_dialect dialect() const noexcept { return wtd_session_dialect(h_); }
    void set_userdata(void *p) const { detail::check(wtd_session_set_userdata(raw(), p)); }
    void *userdata() const noexcept { return wtd_session_userdata(h_); }

    wtd_session *get() const noexcept { return h_; }
    wtd_session *raw() const { return detail::need(h_, "session"); }
    explicit operator bool() const noexcept { return h_ != nullptr; }

protected:
    wtd_session *h_ = nullptr;
};

inline bool operator==(const SessionRef &a, const SessionRef &b) noexcept { return a.get() == b.get(); }
inline bool operator!=(const SessionRef &a, const SessionRef &b) noexcept { return a.get() != b.get(); }

// An owned session: wtd_session_free (close with code 0 if open) on destruction.
class Session : public SessionRef {
public:
    Session() noexcept = default;
    static Session adopt(wtd_session *s) noexcept { return Session(s); }
    Session(Session &&o) noexcept : SessionRef(o.h_) { o.h_ = nullptr; }
    Session &operator=(Session &&o) noexcept {
        if (this != &o) {
            wtd_session_free(h_);
            h_ = o.h_;
            o.h_ = nullptr;
        }
        return *this;
    }
    Session(const Session &) = delete;
    Session &operator=(const Session &) = delete;
    ~Session() { wtd_session_free(h_); }

    wtd_session *release() noexcept { return std::exchange(h_, nullptr); }
    void reset() noexcept { wtd_session_free(std::exchange(h_, nullptr)); }

private:
    explicit Session(wtd_session *s) noexcept : SessionRef(s) {}
};

// A client's request to open a session: answer with accept() or reject(); destroying
// it unanswered refuses it with 503.
class SessionRequest {
public:
    SessionRequest() noexcept = default;
    static SessionRequest adopt(wtd_session_request *r) noexcept {
        SessionRequest q;
        q.h_.reset(r);
        return q;
    }
    std::string path() const { return detail::str_or_empty(wtd_session_request_path(raw())); }
    std::string authority() const { return detail::str_or_empty(wtd_session_request_authority(raw())); }
    std::optional<std::string> origin() const { return opt(wtd_session_request_origin(raw())); }
    std::string protocol() const { return detail::str_or_empty(wtd_session_request_protocol(raw())); }
    wtd_dialect dialect() const { return wtd_session_request_dialect(raw()); }
    std::optional<std::string> header(const std::string &name) const {
        return opt(wtd_session_request_header(raw(), name.c_str()));
    }
    std::vector<std::pair<std::string, std::string>> headers() const {
        std::vector<std::pair<std::string, std::string>> out;
        size_t n = wtd_session_request_header_count(raw());
        for (size_t i = 0; i < n; i++) {
            const char *k = nullptr, *v = nullptr;
            detail::check(wtd_session_request_header_at(raw(), i, &k, &v));
            out.emplace_back(detail::str_or_empty(k), detail::str_or_empty(v));
        }
        return out;
    }
    // Answer 200. The request is consumed whatever the result.
    Session accept() {
        wtd_session_request *r = detail::need(h_.release(), "session request");
        wtd_session *s = nullptr;
        detail::check(wtd_session_request_accept(r, &s));
        return Session::adopt(s);
    }
    // Answer with `status` (not 2xx). Consumed unless the status is invalid.
    void reject(uint16_t status) {
        wtd_result r = wtd_session_request_reject(raw(), status);
        if (r != WTD_ERR_INVALID_ARGUMENT) h_.release();
        detail::check(r);
    }
    wtd_session_request *get() const noexcept { return h_.get(); }
    wtd_session_request *release() noexcept { return h_.release(); }
    explicit operator bool() const noexcept { return h_ != nullptr; }

private:
    static std::optional<std::string> opt(const char *s) {
        if (!s) return std::nullopt;
        return std::string(s);
    }
    wtd_session_request *raw() const { return detail::need(h_.get(), "session request"); }
    detail::Owned<wtd_session_request, wtd_session_request_free> h_;
};

// ------------------------------------------------------------------------------------
// Server, client, connection

class Server {
public:
    Server() noexcept = default;
    explicit Server(const Runtime &rt) { init(rt, nullptr); }
    Server(const Runtime &rt, const ServerConfig &config) { init(rt, detail::need(config.get(), "server config")); }

    uint16_t port() const { return wtd_server_port(raw()); }
    std::string local_addr() const {
        char buf[128];
        detail::check(wtd_server_local_addr(raw(), buf, sizeof buf));
        return buf;
    }
    Hash cert_hash() const {
        Hash h{};
        detail::check(wtd_server_cert_hash(raw(), h.data(), h.size()));
        return h;
    }
    std::string cert_hash_hex() const { return hash_to_hex(cert_hash()); }
    void set_userdata(void *p) const { detail::check(wtd_server_set_userdata(raw(), p)); }
    // What the server holds and what it refused (see wtd_server_stats).
    wtd_server_stats stats() const {
        wtd_server_stats st{};
        st.size = sizeof st;
        detail::check(wtd_server_get_stats(raw(), &st));
        return st;
    }
    void close() const { detail::check(wtd_server_close(raw())); }
    wtd_server *get() const noexcept { return h_.get(); }
    wtd_server *release() noexcept { return h_.release(); }
    explicit operator bool() const noexcept { return h_ != nullptr; }

private:
    void init(const Runtime &rt, const wtd_server_config *c) {
        wtd_server *s = nullptr;
        detail::check(wtd_server_new(rt.raw(), c, &s));
        h_.reset(s);
    }
    wtd_server *raw() const { return detail::need(h_.get(), "server"); }
    detail::Owned<wtd_server, wtd_server_free> h_;
};

using Headers = std::vector<std::pair<std::string, std::string>>;

namespace detail {
inline std::vector<wtd_header> c_headers(const Headers &h) {
    std::vector<wtd_header> out;
    out.reserve(h.size());
    for (const auto &kv : h) out.push_back(wtd_header{kv.first.c_str(), kv.second.c_str()});
    return out;
}
}  // namespace detail

class Connection {
public:
    Connection() noexcept = default;
    static Connection adopt(wtd_connection *c) noexcept {
        Connection x;
        x.h_.reset(c);
        return x;
    }
    Session open_session(const std::string &target, const Headers &headers = {}, int32_t timeout_ms = 10000) const {
        auto hs = detail::c_headers(headers);
        wtd_session *s = nullptr;
        detail::check(wtd_connection_open_session(raw(), target.c_str(), hs.empty() ? nullptr : hs.data(),
                                                  hs.size(), timeout_ms, &s));
        return Session::adopt(s);
    }
    wtd_dialect dialect() const { return wtd_connection_dialect(raw()); }
    // The connection's transport statistics (see wtd_connection_stats).
    wtd_connection_stats stats() const {
        wtd_connection_stats st{};
        st.size = sizeof st;
        detail::check(wtd_connection_get_stats(raw(), &st));
        return st;
    }
    bool is_closed() const noexcept { return wtd_connection_is_closed(h_.get()); }
    void close(uint64_t code = 0x100, std::string_view reason = {}) const {
        bytes_view r(reason);
        detail::check(wtd_connection_close(raw(), code, r.data(), r.size()));
    }
    wtd_connection *get() const noexcept { return h_.get(); }
    wtd_connection *release() noexcept { return h_.release(); }
    explicit operator bool() const noexcept { return h_ != nullptr; }

private:
    wtd_connection *raw() const { return detail::need(h_.get(), "connection"); }
    detail::Owned<wtd_connection, wtd_connection_free> h_;
};

class Client {
public:
    Client() noexcept = default;
    explicit Client(const Runtime &rt) { init(rt, nullptr); }
    Client(const Runtime &rt, const ClientConfig &config) { init(rt, detail::need(config.get(), "client config")); }

    Connection connect(const std::string &url, int32_t timeout_ms = 10000) const {
        wtd_connection *c = nullptr;
        detail::check(wtd_client_connect(raw(), url.c_str(), timeout_ms, &c));
        return Connection::adopt(c);
    }
    Session open_session(const std::string &url, const Headers &headers = {}, int32_t timeout_ms = 10000) const {
        auto hs = detail::c_headers(headers);
        wtd_session *s = nullptr;
        detail::check(wtd_client_open_session(raw(), url.c_str(), hs.empty() ? nullptr : hs.data(), hs.size(),
                                              timeout_ms, &s));
        return Session::adopt(s);
    }
    void close() const { detail::check(wtd_client_close(raw())); }
    wtd_client *get() const noexcept { return h_.get(); }
    wtd_client *release() noexcept { return h_.release(); }
    explicit operator bool() const noexcept { return h_ != nullptr; }

private:
    void init(const Runtime &rt, const wtd_client_config *c) {
        wtd_client *x = nullptr;
        detail::check(wtd_client_new(rt.raw(), c, &x));
        h_.reset(x);
    }
    wtd_client *raw() const { return detail::need(h_.get(), "client"); }
    detail::Owned<wtd_client, wtd_client_free> h_;
};

// ------------------------------------------------------------------------------------
// Datagram stream

class StreamConfig {
public:
    StreamConfig() {
        wtd_stream_config *c = nullptr;
        detail::check(wtd_stream_config_new(&c));
        h_.reset(c);
    }
    StreamConfig &queues(size_t send, size_t receive) { return chk(wtd_stream_config_set_queues(raw(), send, receive)); }
    StreamConfig &recv_overflow(wtd_overflow o) { return chk(wtd_stream_config_set_recv_overflow(raw(), o)); }
    StreamConfig &thresholds(double min_send_success_rate, double max_drop_rate, double max_queue_fill,
                             uint32_t max_avg_send_time_ms) {
        return chk(wtd_stream_config_set_thresholds(raw(), min_send_success_rate, max_drop_rate, max_queue_fill,
                                                    max_avg_send_time_ms));
    }
    const wtd_stream_config *get() const noexcept { return h_.get(); }

private:
    wtd_stream_config *raw() const { return detail::need(h_.get(), "stream config"); }
    StreamConfig &chk(wtd_result r) { detail::check(r); return *this; }
    detail::Owned<wtd_stream_config, wtd_stream_config_free> h_;
};

struct ReceivedDatagram {
    std::vector<uint8_t> data;
    wtd_datagram_metadata meta;
};

struct StructuredDatagram {
    std::string type;
    std::vector<uint8_t> payload;
};

// The datagram stream of a session (takes over its datagrams). Must not outlive the
// session handle.
class Stream {
public:
    Stream() noexcept = default;
    explicit Stream(SessionRef session) { init(session, nullptr); }
    Stream(SessionRef session, const StreamConfig &config) { init(session, detail::need(config.get(), "stream config")); }

    SessionRef session() const noexcept { return SessionRef(wtd_stream_session(h_.get())); }

    // Priority 0 (low) .. 2 (highest); ttl_ms <= 0: none.
    void send(bytes_view d, uint8_t priority = 0, int32_t ttl_ms = 0) const {
        detail::check(wtd_stream_send(raw(), d.data(), d.size(), priority, ttl_ms));
    }
    bool try_send(bytes_view d, uint8_t priority = 0, int32_t ttl_ms = 0) const noexcept {
        return wtd_stream_try_send(h_.get(), d.data(), d.size(), priority, ttl_ms);
    }
    void send_wait(bytes_view d, int32_t timeout_ms, uint8_t priority = 0, int32_t ttl_ms = 0) const {
        detail::check(wtd_stream_send_wait(raw(), d.data(), d.size(), priority, ttl_ms, timeout_ms));
    }
    // Returns how many were queued.
    size_t send_multiple(const std::vector<bytes_view> &items, uint8_t priority = 0, int32_t ttl_ms = 0) const {
        std::vector<wtd_buffer> b;
        b.reserve(items.size());
        for (const auto &i : items) b.push_back(wtd_buffer{i.data(), i.size()});
        size_t queued = 0;
        detail::check(wtd_stream_send_multiple(raw(), b.data(), b.size(), priority, ttl_ms, &queued));
        return queued;
    }
    void send_json(std::string_view json, uint8_t priority = 0, int32_t ttl_ms = 0) const {
        detail::check(wtd_stream_send_json(raw(), json.data(), json.size(), priority, ttl_ms));
    }
    void send_structured(const std::string &type, bytes_view payload, uint8_t priority = 0, int32_t ttl_ms = 0) const {
        detail::check(wtd_stream_send_structured(raw(), type.c_str(), payload.data(), payload.size(), priority, ttl_ms));
    }

    // nullopt when none came within `timeout_ms`.
    std::optional<std::vector<uint8_t>> receive(int32_t timeout_ms) const {
        wtd_stream *s = raw();
        return detail::receive_vec(2048, [&](uint8_t *b, size_t c, size_t *n) {
            return wtd_stream_receive(s, b, c, n, timeout_ms);
        });
    }
    // nullopt when nothing is queued; throws (WTD_ERR_CLOSED) when nothing is queued and
    // the stream or its session is closed.
    std::optional<std::vector<uint8_t>> try_receive() const {
        wtd_stream *s = raw();
        return detail::receive_vec(2048, [&](uint8_t *b, size_t c, size_t *n) {
            return wtd_stream_try_receive(s, b, c, n);
        });
    }
    // Up to `max_count` datagrams (empty when none came in time).
    std::vector<std::vector<uint8_t>> receive_multiple(size_t max_count, int32_t timeout_ms) const {
        std::vector<std::vector<uint8_t>> out;
        if (max_count == 0) return out;
        std::vector<uint8_t> buf(64 * 1024);
        std::vector<size_t> lens(max_count);
        for (;;) {
            size_t count = 0;
            wtd_result r = wtd_stream_receive_multiple(raw(), buf.data(), buf.size(), lens.data(), max_count, &count,
                                                       timeout_ms);
            if (r == WTD_ERR_TIMEOUT) return out;
            if (r == WTD_ERR_BUFFER_TOO_SMALL && lens[0] > buf.size()) {
                buf.resize(lens[0]);
                continue;
            }
            detail::check(r);
            size_t off = 0;
            for (size_t i = 0; i < count; i++) {
                out.emplace_back(buf.begin() + static_cast<std::ptrdiff_t>(off),
                                 buf.begin() + static_cast<std::ptrdiff_t>(off + lens[i]));
                off += lens[i];
            }
            return out;
        }
    }
    std::optional<ReceivedDatagram> receive_with_metadata(int32_t timeout_ms) const {
        ReceivedDatagram d{};
        wtd_stream *s = raw();
        auto v = detail::receive_vec(2048, [&](uint8_t *b, size_t c, size_t *n) {
            return wtd_stream_receive_with_metadata(s, b, c, n, &d.meta, timeout_ms);
        });
        if (!v) return std::nullopt;
        d.data = std::move(*v);
        return d;
    }
    // JSON text; throws Error(WTD_ERR_INVALID_DATA) for a datagram that is not JSON.
    std::optional<std::string> receive_json(int32_t timeout_ms) const {
        std::string buf(2048, '\0');
        for (;;) {
            size_t len = 0;
            wtd_result r = wtd_stream_receive_json(raw(), &buf[0], buf.size(), &len, timeout_ms);
            if (r == WTD_OK) {
                buf.resize(len);
                return buf;
            }
            if (r == WTD_ERR_TIMEOUT) return std::nullopt;
            if (r == WTD_ERR_BUFFER_TOO_SMALL && len > buf.size()) {
                buf.resize(len);
                continue;
            }
            detail::throw_error(r);
        }
    }
    std::optional<StructuredDatagram> receive_structured(int32_t timeout_ms) const {
        char type[257];
        std::vector<uint8_t> payload(2048);
        for (;;) {
            size_t tlen = 0, plen = 0;
            wtd_result r = wtd_stream_receive_structured(raw(), type, sizeof type, &tlen, payload.data(),
                                                         payload.size(), &plen, timeout_ms);
            if (r == WTD_OK) {
                payload.resize(plen);
                return StructuredDatagram{std::string(type, tlen), std::move(payload)};
            }
            if (r == WTD_ERR_TIMEOUT) return std::nullopt;
            if (r == WTD_ERR_BUFFER_TOO_SMALL && plen > payload.size()) {
                payload.resize(plen);
                continue;
            }
            detail::throw_error(r);
        }
    }

    bool is_closed() const noexcept { return wtd_stream_is_closed(h_.get()); }
    void close() const { detail::check(wtd_stream_close(raw())); }
    size_t max_datagram_size() const {
        size_t n = 0;
        detail::check(wtd_stream_max_datagram_size(raw(), &n));
        return n;
    }
    wtd_stream_stats stats() const {
        wtd_stream_stats st;
        detail::check(wtd_stream_get_stats(raw(), &st));
        return st;
    }
    wtd_queue_stats queue_stats() const {
        wtd_queue_stats st;
        detail::check(wtd_stream_get_queue_stats(raw(), &st));
        return st;
    }
    size_t send_buffer_size() const noexcept { return wtd_stream_send_buffer_size(h_.get()); }
    size_t receive_buffer_size() const noexcept { return wtd_stream_receive_buffer_size(h_.get()); }
    std::string debug_state() const {
        return json_out([&](char *b, size_t c, size_t *n) { return wtd_stream_debug_state(raw(), b, c, n); });
    }
    // JSON array of findings (empty array: healthy).
    std::string diagnose() const {
        return json_out([&](char *b, size_t c, size_t *n) { return wtd_stream_diagnose(raw(), b, c, n, nullptr); });
    }
    void start_heartbeat(uint32_t interval_ms) const { detail::check(wtd_stream_start_heartbeat(raw(), interval_ms)); }
    void stop_heartbeat() const { detail::check(wtd_stream_stop_heartbeat(raw())); }
    wtd_throughput_result throughput_test(uint32_t duration_ms, size_t datagram_size) const {
        wtd_throughput_result res;
        detail::check(wtd_stream_throughput_test(raw(), duration_ms, datagram_size, &res));
        return res;
    }

    wtd_stream *get() const noexcept { return h_.get(); }
    wtd_stream *release() noexcept { return h_.release(); }
    explicit operator bool() const noexcept { return h_ != nullptr; }

private:
    template <class F>
    static std::string json_out(F &&call) {
        std::string buf(4096, '\0');
        for (;;) {
            size_t len = 0;
            wtd_result r = call(&buf[0], buf.size(), &len);
            if (r == WTD_ERR_BUFFER_TOO_SMALL && len + 1 > buf.size()) {
                buf.resize(len + 1);
                continue;
            }
            detail::check(r);
            buf.resize(len);
            return buf;
        }
    }
    void init(SessionRef session, const wtd_stream_config *c) {
        wtd_stream *s = nullptr;
        detail::check(wtd_stream_new(session.raw(), c, &s));
        h_.reset(s);
    }
    wtd_stream *raw() const { return detail::need(h_.get(), "stream"); }
    detail::Owned<wtd_stream, wtd_stream_free> h_;
};

// ------------------------------------------------------------------------------------
// Reliability layer

class ReliabilityConfig {
public:
    ReliabilityConfig() {
        wtd_reliability_config *c = nullptr;
        detail::check(wtd_reliability_config_new(&c));
        h_.reset(c);
    }
    ReliabilityConfig &ack_timeout(uint32_t ms) { return chk(wtd_reliability_config_set_ack_timeout(raw(), ms)); }
    ReliabilityConfig &max_retries(uint32_t n) { return chk(wtd_reliability_config_set_max_retries(raw(), n)); }
    ReliabilityConfig &window(size_t n) { return chk(wtd_reliability_config_set_window(raw(), n)); }
    ReliabilityConfig &queues(size_t recv_queue, size_t dedup_memory) {
        return chk(wtd_reliability_config_set_queues(raw(), recv_queue, dedup_memory));
    }
    ReliabilityConfig &initial_sequence(uint32_t s) { return chk(wtd_reliability_config_set_initial_sequence(raw(), s)); }
    const wtd_reliability_config *get() const noexcept { return h_.get(); }

private:
    wtd_reliability_config *raw() const { return detail::need(h_.get(), "reliability config"); }
    ReliabilityConfig &chk(wtd_result r) { detail::check(r); return *this; }
    detail::Owned<wtd_reliability_config, wtd_reliability_config_free> h_;
};

class Reliability {
public:
    Reliability() noexcept = default;
    explicit Reliability(SessionRef session) { init(session, nullptr); }
    Reliability(SessionRef session, const ReliabilityConfig &config) {
        init(session, detail::need(config.get(), "reliability config"));
    }
    // Returns the message id; TimeoutError if the window stayed full.
    uint64_t send(bytes_view d, int32_t timeout_ms = -1) const {
        uint64_t id = 0;
        detail::check(wtd_reliability_send(raw(), d.data(), d.size(), timeout_ms, &id));
        return id;
    }
    std::optional<std::vector<uint8_t>> receive(int32_t timeout_ms) const {
        wtd_reliability *r = raw();
        return detail::receive_vec(2048, [&](uint8_t *b, size_t c, size_t *n) {
            return wtd_reliability_receive(r, b, c, n, timeout_ms);
        });
    }
    std::optional<wtd_delivery_report> next_report(int32_t timeout_ms) const {
        wtd_delivery_report rep;
        wtd_result r = wtd_reliability_next_report(raw(), &rep, timeout_ms);
        if (r == WTD_ERR_TIMEOUT) return std::nullopt;
        detail::check(r);
        return rep;
    }
    // An empty std::function removes the callback.
    void set_report_callback(std::function<void(const wtd_delivery_report &)> cb) const {
        using CB = detail::Callback<wtd_delivery_report>;
        wtd_reliability *rel = raw();
        if (!cb) {
            detail::check(wtd_reliability_set_report_callback(rel, nullptr, nullptr, nullptr));
            return;
        }
        auto *ud = new CB{std::move(cb)};
        wtd_result r = wtd_reliability_set_report_callback(rel, &CB::call, ud, &CB::free);
        if (r != WTD_OK) {  // only a panic: the library did not keep it
            delete ud;
            detail::throw_error(r);
        }
    }
    wtd_reliability_stats stats() const {
        wtd_reliability_stats st;
        detail::check(wtd_reliability_get_stats(raw(), &st));
        return st;
    }
    void close() const { detail::check(wtd_reliability_close(raw())); }
    bool is_closed() const noexcept { return wtd_reliability_is_closed(h_.get()); }
    wtd_reliability *get() const noexcept { return h_.get(); }
    explicit operator bool() const noexcept { return h_ != nullptr; }

private:
    void init(SessionRef session, const wtd_reliability_config *c) {
        wtd_reliability *r = nullptr;
        detail::check(wtd_reliability_new(session.raw(), c, &r));
        h_.reset(r);
    }
    wtd_reliability *raw() const { return detail::need(h_.get(), "reliability"); }
    detail::Owned<wtd_reliability, wtd_reliability_free> h_;
};

// ------------------------------------------------------------------------------------
// Broadcaster

class Broadcaster {
public:
    Broadcaster() noexcept = default;
    explicit Broadcaster(const Runtime &rt) {
        wtd_broadcaster *b = nullptr;
        detail::check(wtd_broadcaster_new(rt.raw(), &b));
        h_.reset(b);
    }
    void add(SessionRef s) const { detail::check(wtd_broadcaster_add_session(raw(), s.raw())); }
    void remove(SessionRef s) const { detail::check(wtd_broadcaster_remove_session(raw(), s.raw())); }
    void add(const Stream &s) const {
        detail::check(wtd_broadcaster_add_stream(raw(), detail::need(s.get(), "stream")));
    }
    void remove(const Stream &s) const {
        detail::check(wtd_broadcaster_remove_stream(raw(), detail::need(s.get(), "stream")));
    }
    size_t session_count() const noexcept { return wtd_broadcaster_session_count(h_.get()); }
    size_t stream_count() const noexcept { return wtd_broadcaster_stream_count(h_.get()); }
    // Returns how many members accepted it.
    size_t broadcast(bytes_view d, uint8_t priority = 0, int32_t ttl_ms = 0) const {
        size_t n = 0;
        detail::check(wtd_broadcaster_broadcast(raw(), d.data(), d.size(), priority, ttl_ms, &n));
        return n;
    }
    void shutdown() const { detail::check(wtd_broadcaster_shutdown(raw())); }
    wtd_broadcaster *get() const noexcept { return h_.get(); }
    explicit operator bool() const noexcept { return h_ != nullptr; }

private:
    wtd_broadcaster *raw() const { return detail::need(h_.get(), "broadcaster"); }
    detail::Owned<wtd_broadcaster, wtd_broadcaster_free> h_;
};

// ------------------------------------------------------------------------------------
// Monitor

class MonitorConfig {
public:
    MonitorConfig() {
        wtd_monitor_config *c = nullptr;
        detail::check(wtd_monitor_config_new(&c));
        h_.reset(c);
    }
    MonitorConfig &interval(uint32_t ms) { return chk(wtd_monitor_config_set_interval(raw(), ms)); }
    MonitorConfig &capacities(size_t samples, size_t alerts) {
        return chk(wtd_monitor_config_set_capacities(raw(), samples, alerts));
    }
    MonitorConfig &thresholds(double high_queue_fill, double min_success_rate, size_t trend_window,
                              double trend_factor) {
        return chk(wtd_monitor_config_set_thresholds(raw(), high_queue_fill, min_success_rate, trend_window,
                                                     trend_factor));
    }
    const wtd_monitor_config *get() const noexcept { return h_.get(); }

private:
    wtd_monitor_config *raw() const { return detail::need(h_.get(), "monitor config"); }
    MonitorConfig &chk(wtd_result r) { detail::check(r); return *this; }
    detail::Owned<wtd_monitor_config, wtd_monitor_config_free> h_;
};

class Monitor {
public:
    Monitor() noexcept = default;
    explicit Monitor(const Stream &s) { init(s, nullptr); }
    Monitor(const Stream &s, const MonitorConfig &c) { init(s, detail::need(c.get(), "monitor config")); }

    void start() const { detail::check(wtd_monitor_start(raw())); }
    void stop() const { detail::check(wtd_monitor_stop(raw())); }
    bool is_monitoring() const noexcept { return wtd_monitor_is_monitoring(h_.get()); }
    wtd_monitor_sample sample_now() const {
        wtd_monitor_sample s;
        detail::check(wtd_monitor_sample_now(raw(), &s));
        return s;
    }
    // The newest `max` samples, oldest first.
    std::vector<wtd_monitor_sample> samples(size_t max = 1000) const {
        std::vector<wtd_monitor_sample> v(max);
        size_t n = 0;
        detail::check(wtd_monitor_get_samples(raw(), v.empty() ? nullptr : v.data(), v.size(), &n));
        v.resize(n);
        return v;
    }
    std::vector<wtd_monitor_alert> alerts(size_t max = 1000) const {
        std::vector<wtd_monitor_alert> v(max);
        size_t n = 0;
        detail::check(wtd_monitor_get_alerts(raw(), v.empty() ? nullptr : v.data(), v.size(), &n));
        v.resize(n);
        return v;
    }
    // An empty std::function removes the callback.
    void set_alert_callback(std::function<void(const wtd_monitor_alert &)> cb) const {
        using CB = detail::Callback<wtd_monitor_alert>;
        wtd_monitor *m = raw();
        if (!cb) {
            detail::check(wtd_monitor_set_alert_callback(m, nullptr, nullptr, nullptr));
            return;
        }
        // The library frees the userdata itself on every path, including errors.
        detail::check(wtd_monitor_set_alert_callback(m, &CB::call, new CB{std::move(cb)}, &CB::free));
    }
    wtd_monitor *get() const noexcept { return h_.get(); }
    explicit operator bool() const noexcept { return h_ != nullptr; }

private:
    void init(const Stream &s, const wtd_monitor_config *c) {
        wtd_monitor *m = nullptr;
        detail::check(wtd_monitor_new(detail::need(s.get(), "stream"), c, &m));
        h_.reset(m);
    }
    wtd_monitor *raw() const { return detail::need(h_.get(), "monitor"); }
    detail::Owned<wtd_monitor, wtd_monitor_free> h_;
};

// ------------------------------------------------------------------------------------
// Structured transport

// Convert one serialized value from one format to another (wtd_serializer_transcode):
// JSON as Python's json.dumps writes it, compact JSON, MessagePack as packb writes it.
// Throws wtd::Error with WTD_ERR_INVALID_DATA if `data` does not decode in `from`, with
// WTD_ERR_INVALID_ARGUMENT if the value cannot be written in `to`. Needs no runtime.
inline std::vector<uint8_t> transcode(wtd_serializer from, wtd_serializer to, bytes_view data) {
    std::vector<uint8_t> out(data.size() + data.size() / 2 + 16);
    size_t n = 0;
    wtd_result r = wtd_serializer_transcode(from, to, data.data(), data.size(), out.data(), out.size(), &n);
    if (r == WTD_ERR_BUFFER_TOO_SMALL) {
        out.resize(n);
        r = wtd_serializer_transcode(from, to, data.data(), data.size(), out.data(), out.size(), &n);
    }
    detail::check(r);
    out.resize(n);
    return out;
}

struct StructuredObject {
    uint16_t type_id = 0;
    std::vector<uint8_t> payload;
};

class Structured {
public:
    Structured() noexcept = default;
    Structured(SessionRef session, wtd_serializer serializer, size_t queue_size = 100) {
        wtd_structured *s = nullptr;
        detail::check(wtd_structured_new(session.raw(), serializer, queue_size, &s));
        h_.reset(s);
    }
    void register_type(uint16_t id) const { detail::check(wtd_structured_register_type(raw(), id)); }
    bool is_registered(uint16_t id) const noexcept { return wtd_structured_is_registered(h_.get(), id); }
    void send(uint16_t type_id, bytes_view payload) const {
        detail::check(wtd_structured_send(raw(), type_id, payload.data(), payload.size()));
    }
    std::optional<StructuredObject> receive(int32_t timeout_ms) const {
        StructuredObject o;
        wtd_structured *s = raw();
        auto v = detail::receive_vec(2048, [&](uint8_t *b, size_t c, size_t *n) {
            return wtd_structured_receive(s, &o.type_id, b, c, n, timeout_ms);
        });
        if (!v) return std::nullopt;
        o.payload = std::move(*v);
        return o;
    }
    std::optional<wtd_structured_error> next_error(int32_t timeout_ms) const {
        wtd_structured_error e;
        wtd_result r = wtd_structured_next_error(raw(), &e, timeout_ms);
        if (r == WTD_ERR_TIMEOUT) return std::nullopt;
        detail::check(r);
        return e;
    }
    // An empty std::function removes the callback.
    void set_error_callback(std::function<void(const wtd_structured_error &)> cb) const {
        using CB = detail::Callback<wtd_structured_error>;
        wtd_structured *s = raw();
        if (!cb) {
            detail::check(wtd_structured_set_error_callback(s, nullptr, nullptr, nullptr));
            return;
        }
        // The library frees the userdata itself on every path, including errors.
        detail::check(wtd_structured_set_error_callback(s, &CB::call, new CB{std::move(cb)}, &CB::free));
    }
    wtd_structured_stats stats() const {
        wtd_structured_stats st;
        detail::check(wtd_structured_get_stats(raw(), &st));
        return st;
    }
    void close() const { detail::check(wtd_structured_close(raw())); }
    bool is_closed() const noexcept { return wtd_structured_is_closed(h_.get()); }
    wtd_structured *get() const noexcept { return h_.get(); }
    explicit operator bool() const noexcept { return h_ != nullptr; }

private:
    wtd_structured *raw() const { return detail::need(h_.get(), "structured"); }
    detail::Owned<wtd_structured, wtd_structured_free> h_;
};

// ------------------------------------------------------------------------------------
// Cluster (issue 16): broadcasters on several nodes joined through a NATS bus.
// A Cluster is one NATS connection that reconnects by itself; Cluster::join ties a
// Broadcaster to a named channel and gives a ClusterBroadcaster, whose broadcast()
// delivers to the local members at once and publishes once for every other node's.
// Free (destroy) ClusterBroadcasters and Clusters before their Runtime.

class ClusterConfig {
public:
    ClusterConfig() {
        wtd_cluster_config *c = nullptr;
        detail::check(wtd_cluster_config_new(&c));
        h_.reset(c);
    }
    // Call once per NATS server ("nats://host:port", "tls://host:port").
    ClusterConfig &url(const std::string &u) { return chk(wtd_cluster_config_add_url(raw(), u.c_str())); }
    ClusterConfig &name(const std::string &n) { return chk(wtd_cluster_config_set_name(raw(), n.c_str())); }
    ClusterConfig &subject_prefix(const std::string &p) {
        return chk(wtd_cluster_config_set_subject_prefix(raw(), p.c_str()));
    }
    ClusterConfig &user_password(const std::string &user, const std::string &password) {
        return chk(wtd_cluster_config_set_user_password(raw(), user.c_str(), password.c_str()));
    }
    ClusterConfig &token(const std::string &t) { return chk(wtd_cluster_config_set_token(raw(), t.c_str())); }
    ClusterConfig &nkey_seed(const std::string &s) { return chk(wtd_cluster_config_set_nkey_seed(raw(), s.c_str())); }
    ClusterConfig &credentials_file(const std::string &path) {
        return chk(wtd_cluster_config_set_credentials_file(raw(), path.c_str()));
    }
    ClusterConfig &tls_required(bool on) { return chk(wtd_cluster_config_set_tls_required(raw(), on)); }
    ClusterConfig &tls_first(bool on) { return chk(wtd_cluster_config_set_tls_first(raw(), on)); }
    ClusterConfig &tls_root_certificates(const std::string &pem_path) {
        return chk(wtd_cluster_config_set_tls_root_certificates(raw(), pem_path.c_str()));
    }
    ClusterConfig &tls_client_certificate(const std::string &cert_path, const std::string &key_path) {
        return chk(wtd_cluster_config_set_tls_client_certificate(raw(), cert_path.c_str(), key_path.c_str()));
    }
    ClusterConfig &connect_timeout(uint32_t ms) { return chk(wtd_cluster_config_set_connect_timeout_ms(raw(), ms)); }
    ClusterConfig &reconnect_delay_max(uint32_t ms) {
        return chk(wtd_cluster_config_set_reconnect_delay_max_ms(raw(), ms));
    }
    ClusterConfig &ping_interval(uint32_t ms) { return chk(wtd_cluster_config_set_ping_interval_ms(raw(), ms)); }
    ClusterConfig &wait_for_connection(bool wait) {
        return chk(wtd_cluster_config_set_wait_for_connection(raw(), wait));
    }
    ClusterConfig &publish_capacity(size_t n) { return chk(wtd_cluster_config_set_publish_capacity(raw(), n)); }
    ClusterConfig &receive_capacity(size_t n) { return chk(wtd_cluster_config_set_receive_capacity(raw(), n)); }
    const wtd_cluster_config *get() const noexcept { return h_.get(); }

private:
    wtd_cluster_config *raw() const { return detail::need(h_.get(), "cluster config"); }
    ClusterConfig &chk(wtd_result r) { detail::check(r); return *this; }
    detail::Owned<wtd_cluster_config, wtd_cluster_config_free> h_;
};

class ClusterBroadcaster {
public:
    ClusterBroadcaster() noexcept = default;
    // Takes ownership of a handle from wtd_cluster_join.
    static ClusterBroadcaster adopt(wtd_cluster_broadcaster *raw) noexcept {
        ClusterBroadcaster b;
        b.h_.reset(raw);
        return b;
    }
    // Local members at once, other nodes through the bus; returns how many local
    // members accepted it. Never waits for the bus (failures are counted in stats()).
    size_t broadcast(bytes_view d, uint8_t priority = 1, int32_t ttl_ms = 0) const {
        size_t n = 0;
        detail::check(wtd_cluster_broadcaster_broadcast(raw(), d.data(), d.size(), priority, ttl_ms, &n));
        return n;
    }
    wtd_cluster_broadcaster_stats stats() const {
        wtd_cluster_broadcaster_stats st{};
        st.size = sizeof st;
        detail::check(wtd_cluster_broadcaster_get_stats(raw(), &st));
        return st;
    }
    bool is_bus_ready() const noexcept { return wtd_cluster_broadcaster_is_bus_ready(h_.get()); }
    // Throws TimeoutError if the subscription was not live within timeout_ms (<0: forever).
    void wait_bus_ready(int32_t timeout_ms) const {
        detail::check(wtd_cluster_broadcaster_wait_bus_ready(raw(), timeout_ms));
    }
    uint64_t origin() const noexcept { return wtd_cluster_broadcaster_origin(h_.get()); }
    wtd_cluster_broadcaster *get() const noexcept { return h_.get(); }
    wtd_cluster_broadcaster *release() noexcept { return h_.release(); }
    explicit operator bool() const noexcept { return h_ != nullptr; }

private:
    wtd_cluster_broadcaster *raw() const { return detail::need(h_.get(), "cluster broadcaster"); }
    detail::Owned<wtd_cluster_broadcaster, wtd_cluster_broadcaster_free> h_;
};

class Cluster {
public:
    Cluster() noexcept = default;
    // Connects (blocks until a server answered unless wait_for_connection(false)).
    Cluster(const Runtime &rt, const ClusterConfig &config) {
        wtd_cluster *c = nullptr;
        detail::check(wtd_cluster_new(rt.raw(), detail::need(config.get(), "cluster config"), &c));
        h_.reset(c);
    }
    // Join `b` to `channel` (dot-separated tokens of A-Z a-z 0-9 _ -).
    ClusterBroadcaster join(const std::string &channel, const Broadcaster &b) const {
        wtd_cluster_broadcaster *out = nullptr;
        detail::check(wtd_cluster_join(raw(), channel.c_str(), detail::need(b.get(), "broadcaster"), &out));
        return ClusterBroadcaster::adopt(out);
    }
    bool is_connected() const noexcept { return wtd_cluster_is_connected(h_.get()); }
    wtd_cluster_stats stats() const {
        wtd_cluster_stats st{};
        st.size = sizeof st;
        detail::check(wtd_cluster_get_stats(raw(), &st));
        return st;
    }
    wtd_cluster *get() const noexcept { return h_.get(); }
    explicit operator bool() const noexcept { return h_ != nullptr; }

private:
    wtd_cluster *raw() const { return detail::need(h_.get(), "cluster"); }
    detail::Owned<wtd_cluster, wtd_cluster_free> h_;
};
// Logs

// One log record, borrowed for the duration of the callback (copy what you keep).
struct LogRecord {
    wtd_log_level level;
    std::string_view target;   // e.g. "wtdatagram::transport::server"
    std::string_view message;  // the message with its fields (" key=value")
    uint64_t timestamp_us;     // when it was emitted, microseconds since the Unix epoch
};

using LogCallback = std::function<void(const LogRecord &)>;

namespace detail {
struct LogCB {
    LogCallback fn;
    static void call(const wtd_log_record *r, void *userdata) noexcept {
        try {
            auto *self = static_cast<LogCB *>(userdata);
            if (!self->fn || !r) return;
            LogRecord rec{r->level, r->target ? r->target : "", r->message ? r->message : "", r->timestamp_us};
            self->fn(rec);
        } catch (...) {
            // Exceptions cannot cross the C ABI; they are discarded.
        }
    }
    static void free(void *userdata) noexcept { delete static_cast<LogCB *>(userdata); }
};
}  // namespace detail

// Deliver the library's log records at `level` and more severe to `cb`, process-wide
// (wtd_set_log_callback): on the library's log thread, never under a library lock, so
// every wtd call is allowed inside. Replaces the previous callback, which is destroyed
// once it cannot run any more. An empty `cb` or WTD_LOG_OFF removes it.
inline void set_log_callback(wtd_log_level level, LogCallback cb) {
    if (!cb || level == WTD_LOG_OFF) {
        detail::check(wtd_set_log_callback(WTD_LOG_OFF, nullptr, nullptr, nullptr));
        return;
    }
    auto *ud = new detail::LogCB{std::move(cb)};
    wtd_result r = wtd_set_log_callback(level, &detail::LogCB::call, ud, &detail::LogCB::free);
    if (r != WTD_OK) {
        delete ud;  // not registered: the library did not take it
        detail::check(r);
    }
}

// Stop delivering log records (waits for a callback call in progress, unless called
// from inside the callback).
inline void clear_log_callback() { set_log_callback(WTD_LOG_OFF, nullptr); }

inline const char *log_level_name(wtd_log_level level) noexcept { return wtd_log_level_name(level); }

}  // namespace wtd

#endif  // WTDATAGRAM_HPP
