module github.com/libwtdatagram/wtdatagram-bench

go 1.22

require github.com/libwtdatagram/wtdatagram-go v0.0.0

require (
	github.com/vmihailenco/msgpack/v5 v5.4.1 // indirect
	github.com/vmihailenco/tagparser/v2 v2.0.0 // indirect
)

replace github.com/libwtdatagram/wtdatagram-go => ../../bindings/go
