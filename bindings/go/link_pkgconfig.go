//go:build !wtd_dev

package wtd

// By default the package links the installed libwtdatagram (README "Install"): the
// compiler and linker flags come from pkg-config's wtdatagram.pc, so the package builds
// from the module cache or a vendor folder, wherever the library was installed (set
// PKG_CONFIG_PATH to PREFIX/lib/pkgconfig for a prefix pkg-config does not search).
// Inside the repository, build with -tags wtd_dev instead (link_dev.go).

// #cgo pkg-config: wtdatagram
import "C"
