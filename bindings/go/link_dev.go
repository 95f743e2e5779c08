//go:build wtd_dev

package wtd

// Development inside the repository (go build/test -tags wtd_dev): the header from
// include/ and the library cargo builds in target/debug (`cargo build -p
// wtdatagram-ffi`), found at run time through the rpath. scripts/test.sh, the
// examples (examples/go), bench/go and the interop modules build this way.

// #cgo CFLAGS: -I${SRCDIR}/../../include
// #cgo LDFLAGS: -L${SRCDIR}/../../target/debug -lwtdatagram -Wl,-rpath,${SRCDIR}/../../target/debug
import "C"
