// Package interop holds the interoperability tests of the wtd binding (and so of
// libwtdatagram) against github.com/quic-go/webtransport-go, in both roles, recorded in
// the interop matrix (target/interop-matrix). It is a separate module so that the
// binding does not depend on quic-go; see README.md.
package interop
