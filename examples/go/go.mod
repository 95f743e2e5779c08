module github.com/libwtdatagram/libwtdatagram/examples/go

go 1.22

require github.com/libwtdatagram/libwtdatagram/bindings/go v0.0.0

require (
	github.com/vmihailenco/msgpack/v5 v5.4.1 // indirect
	github.com/vmihailenco/tagparser/v2 v2.0.0 // indirect
)

replace github.com/libwtdatagram/libwtdatagram/bindings/go => ../../bindings/go
