// Package v013 holds the interoperability tests of libwtdatagram against the current
// webtransport-go, v0.13.0 (quic-go v0.62.0), which speaks draft-15. It is its own
// module because Go builds one version of a module per build: the parent module pins
// v0.9.0, the newest whose client accepts a QUIC stack without RESET_STREAM_AT.
package v013
