module github.com/libwtdatagram/wtdatagram-go

go 1.22
