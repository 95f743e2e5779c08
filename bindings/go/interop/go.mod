module github.com/libwtdatagram/libwtdatagram/bindings/go/interop

go 1.23

replace github.com/libwtdatagram/libwtdatagram/bindings/go => ../

require (
	github.com/libwtdatagram/libwtdatagram/bindings/go v0.0.0-00010101000000-000000000000
	github.com/quic-go/quic-go v0.53.0
	github.com/quic-go/webtransport-go v0.9.0
)

require (
	github.com/quic-go/qpack v0.5.1 // indirect
	github.com/vmihailenco/msgpack/v5 v5.4.1 // indirect
	github.com/vmihailenco/tagparser/v2 v2.0.0 // indirect
	go.uber.org/mock v0.5.0 // indirect
	golang.org/x/crypto v0.26.0 // indirect
	golang.org/x/mod v0.18.0 // indirect
	golang.org/x/net v0.28.0 // indirect
	golang.org/x/sync v0.8.0 // indirect
	golang.org/x/sys v0.23.0 // indirect
	golang.org/x/text v0.17.0 // indirect
	golang.org/x/tools v0.22.0 // indirect
)
