// Package wtgotest holds what the webtransport-go interop tests of every pinned
// webtransport-go version share: interop matrix cells, windowed datagram flows with
// content and count checks, size sweeps, certificates.
package wtgotest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	wtd "github.com/libwtdatagram/libwtdatagram/bindings/go"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/quicvarint"
)

// Limit bounds every wait of a test; it is a safety net, never an assertion.
const Limit = 60 * time.Second

// Window is the number of datagrams a flow keeps in flight. webtransport-go (v0.9.0
// to v0.13.0) queues at most 32 received datagrams per session (quic-go http3
// streamDatagramQueueLen) and silently drops the rest, so a sender that ran ahead of
// the reader would lose datagrams on loopback; 16 in flight never overflows it.
const Window = 16

// Count is the number of datagrams each flow of the matrix sends each way.
const Count = 1000

// PeerName is webtransport-go and the version this module requires in go.mod
// ("webtransport-go v0.9.0"), as the interop matrix names the peer. (Test binaries
// carry no module dependencies in their build info, so go.mod is read.)
func PeerName(t *testing.T) string {
	t.Helper()
	mod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mod), "\n") {
		f := strings.Fields(line)
		if f = append(f, "", ""); f[0] == "require" {
			f = f[1:]
		}
		if f[0] == "github.com/quic-go/webtransport-go" && strings.HasPrefix(f[1], "v") {
			return "webtransport-go " + f[1]
		}
	}
	t.Fatal("go.mod does not require github.com/quic-go/webtransport-go")
	return ""
}

// Cell is one cell of the interoperability matrix, written exactly like
// tests/common.rs MatrixCell: "fail" when the test starts, rewritten "pass" only by
// Pass after every check held. scripts/interop-matrix.sh prints the cells.
type Cell struct {
	t      *testing.T
	path   string
	cols   string
	passed bool
}

// StartCell records peer × role × dialect as failed until Pass is called; role is the
// PEER's role ("client": webtransport-go is the client and we are the server).
func StartCell(t *testing.T, peer, role, dialect string) *Cell {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "target", "interop-matrix")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			return r
		}
		return '-'
	}, peer+"__"+role+"__"+dialect)
	c := &Cell{t: t, path: filepath.Join(dir, file), cols: peer + "\t" + role + "\t" + dialect}
	c.write("fail", "started, did not finish")
	t.Cleanup(func() {
		if c.passed {
			return
		}
		why := "ended without reaching its last check"
		if t.Failed() {
			why = "assertion failed (see the test output)"
		}
		c.write("fail", why)
	})
	return c
}

// repoRoot is the nearest directory above the working directory (the test's package)
// that holds Cargo.toml and bindings/go: the repository root.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		_, e1 := os.Stat(filepath.Join(dir, "Cargo.toml"))
		_, e2 := os.Stat(filepath.Join(dir, "bindings", "go"))
		if e1 == nil && e2 == nil {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("repository root (Cargo.toml and bindings/go) not found above the test's directory")
		}
		dir = up
	}
}

func (c *Cell) write(outcome, detail string) {
	line := c.cols + "\t" + outcome + "\t" + detail + "\n"
	if err := os.WriteFile(c.path, []byte(line), 0o644); err != nil {
		c.t.Errorf("writing interop matrix cell %s: %v", c.path, err)
	}
}

// Pass records that every check of the pair held, with what was measured.
func (c *Cell) Pass(detail string) {
	if c.t.Failed() {
		return
	}
	c.write("pass", detail)
	c.passed = true
}

// Unsupported records, once the test has proven it, that the pair cannot work at all and
// why: a "skip" cell with the reason, never a pass.
func (c *Cell) Unsupported(reason string) {
	if c.t.Failed() {
		return
	}
	c.write("skip", reason)
	c.passed = true
}

// Flow sends n datagrams from one side to the other with at most `window` in flight
// and checks that each of them arrives exactly once with the right content.
type Flow struct {
	Name    string
	N       int
	Payload func(i int) []byte
	// Ident tells which datagram b is (false: not one of this flow's).
	Ident func(b []byte) (int, bool)
	Send  func(b []byte) error
	Recv  func(ctx context.Context) ([]byte, error)
}

func (f Flow) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	credits := make(chan struct{}, Window)
	for i := 0; i < Window; i++ {
		credits <- struct{}{}
	}
	var received int
	var mu sync.Mutex
	done := make(chan error, 1)
	go func() {
		seen := make([]bool, f.N)
		for got := 0; got < f.N; got++ {
			b, err := f.Recv(ctx)
			if err != nil {
				done <- fmt.Errorf("%s: received %d of %d: %w", f.Name, got, f.N, err)
				return
			}
			i, ok := f.Ident(b)
			switch {
			case !ok || i < 0 || i >= f.N:
				done <- fmt.Errorf("%s: unexpected datagram of %d bytes (%x...)", f.Name, len(b), b[:min(len(b), 16)])
				return
			case seen[i]:
				done <- fmt.Errorf("%s: datagram %d received twice", f.Name, i)
				return
			case !bytes.Equal(b, f.Payload(i)):
				done <- fmt.Errorf("%s: datagram %d (%d bytes) has the wrong content", f.Name, i, len(b))
				return
			}
			seen[i] = true
			mu.Lock()
			received = got + 1
			mu.Unlock()
			credits <- struct{}{}
		}
		done <- nil
	}()
	for i := 0; i < f.N; i++ {
		select {
		case <-credits:
		case err := <-done:
			if err == nil {
				err = fmt.Errorf("%s: receiver finished before datagram %d was sent", f.Name, i)
			}
			return err
		case <-ctx.Done():
			mu.Lock()
			got := received
			mu.Unlock()
			return fmt.Errorf("%s: sent %d of %d, received %d: %d in flight never arrived (lost): %w",
				f.Name, i, f.N, got, i-got, ctx.Err())
		}
		if err := f.Send(f.Payload(i)); err != nil {
			return fmt.Errorf("%s: sending datagram %d (%d bytes): %w", f.Name, i, len(f.Payload(i)), err)
		}
	}
	return <-done
}

// CountFlow: n datagrams of 8..207 bytes, each carrying its index and a tag (so a
// datagram routed to the wrong session or echoed back is caught).
func CountFlow(name string, tag byte, n int) Flow {
	payload := func(i int) []byte {
		b := make([]byte, 8+i%200)
		binary.BigEndian.PutUint32(b, uint32(i))
		b[4] = tag
		for j := 5; j < len(b); j++ {
			b[j] = byte(i*131 + j*7)
		}
		return b
	}
	return Flow{
		Name:    name,
		N:       n,
		Payload: payload,
		Ident: func(b []byte) (int, bool) {
			if len(b) < 8 || b[4] != tag {
				return 0, false
			}
			return int(binary.BigEndian.Uint32(b)), true
		},
	}
}

// SizeFlow: one datagram of every size from 1 to max bytes (datagram i has i+1 bytes).
func SizeFlow(name string, max int) Flow {
	payload := func(i int) []byte {
		b := make([]byte, i+1)
		for j := range b {
			b[j] = byte((i+1)*31 + j)
		}
		return b
	}
	return Flow{
		Name:    name,
		N:       max,
		Payload: payload,
		Ident:   func(b []byte) (int, bool) { return len(b) - 1, len(b) > 0 },
	}
}

// OursSend and OursRecv wire a flow's send or receive side to one of our sessions.
func OursSend(ctx context.Context, s *wtd.Session) func([]byte) error {
	return func(b []byte) error { return s.SendWait(ctx, b) }
}

func OursRecv(s *wtd.Session) func(context.Context) ([]byte, error) { return s.Receive }

// PeerDatagrams is what webtransport-go's Session offers for datagrams.
type PeerDatagrams interface {
	SendDatagram([]byte) error
	ReceiveDatagram(context.Context) ([]byte, error)
}

// PeerMaxDatagram asks webtransport-go for the largest datagram payload it accepts
// right now: it has no getter, but SendDatagram refuses an oversize payload with
// quic-go's DatagramTooLargeError, which carries the QUIC-level maximum; the HTTP
// datagram's quarter-stream-id prefix takes its share of that.
func PeerMaxDatagram(s PeerDatagrams, sessionID uint64) (int, error) {
	err := s.SendDatagram(make([]byte, 1<<16))
	var tl *quic.DatagramTooLargeError
	if !errors.As(err, &tl) {
		return 0, fmt.Errorf("webtransport-go accepted (or failed otherwise on) a 64 KiB datagram: %v", err)
	}
	return int(tl.MaxDatagramPayloadSize) - quicvarint.Len(sessionID/4), nil
}

// TooLargeOnOurSide checks that our session refuses a datagram one byte above its
// maximum with ErrTooLarge (Send and SendWait), and returns that maximum. The maximum
// can grow between reading it and sending (path-MTU discovery), so a send that went
// through is retried with the new maximum, a bounded number of times.
func TooLargeOnOurSide(ctx context.Context, s *wtd.Session) (int, error) {
	before, err := s.Stats()
	if err != nil {
		return 0, err
	}
	for attempt := 0; attempt < 10; attempt++ {
		max, err := s.MaxDatagramSize()
		if err != nil {
			return 0, err
		}
		err = s.Send(make([]byte, max+1))
		if err == nil {
			continue
		}
		if !errors.Is(err, wtd.ErrTooLarge) {
			return 0, fmt.Errorf("Send(%d bytes) = %v, want ErrTooLarge", max+1, err)
		}
		if err := s.SendWait(ctx, make([]byte, 1<<16)); !errors.Is(err, wtd.ErrTooLarge) {
			return 0, fmt.Errorf("SendWait(64 KiB) = %v, want ErrTooLarge", err)
		}
		after, err := s.Stats()
		if err != nil {
			return 0, err
		}
		if after.SendTooLarge < before.SendTooLarge+2 {
			return 0, fmt.Errorf("SendTooLarge counter %d -> %d, want +2", before.SendTooLarge, after.SendTooLarge)
		}
		return max, nil
	}
	return 0, errors.New("MaxDatagramSize kept growing: no oversize send was refused in 10 attempts")
}

// NoDrops checks that our session dropped nothing it received.
func NoDrops(s *wtd.Session) error {
	st, err := s.Stats()
	if err != nil {
		return err
	}
	if st.RecvDropped != 0 || st.GoRecvDropped != 0 {
		return fmt.Errorf("our session dropped received datagrams: library %d, Go channel %d", st.RecvDropped, st.GoRecvDropped)
	}
	return nil
}

// SelfSigned makes an ECDSA P-256 certificate for 127.0.0.1/localhost valid 13 days
// (what browsers accept through serverCertificateHashes) and its DER SHA-256.
func SelfSigned(t *testing.T) (tls.Certificate, [32]byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: "webtransport-go interop"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(13 * 24 * time.Hour),
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, sha256.Sum256(der)
}

// Pinned is a TLS client config that trusts exactly the certificate with this hash,
// as a browser's serverCertificateHashes would.
func Pinned(hash [32]byte) *tls.Config {
	return &tls.Config{
		InsecureSkipVerify: true, // replaced by VerifyConnection's pin check
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || sha256.Sum256(cs.PeerCertificates[0].Raw) != hash {
				return errors.New("certificate hash mismatch")
			}
			return nil
		},
	}
}

// QuicGoOverhead is what quic-go reserves in a packet before it knows the connection
// ID length (estimateMaxPayloadSize: type byte, 20-byte connection ID, 16-byte AEAD
// tag) plus a DATAGRAM frame's type byte and 2-byte length: a DATAGRAM payload this
// much below the packet size always fits.
const QuicGoOverhead = 1 + 20 + 16 + 1 + 2

// PeerSizes sends one datagram of every size from 1 to max from webtransport-go to
// us. quic-go v0.53.0 bounds SendDatagram by the whole packet size (1280) once the
// first ACK arrived (connection.go: currentMTUEstimate is set to the MTU discoverer's
// packet size, not the payload room estimateMaxPayloadSize gives), so it accepts
// payloads up to max that do not fit in a packet, and its packet packer silently
// discards them. Sizes up to max-QuicGoOverhead must all arrive (windowed flow); the
// band above is sent one by one, each followed by a 3-byte marker, and whatever of the
// band does arrive must be intact. It returns how many of the band quic-go dropped.
// (When the packet being built also carries an ACK, quic-go keeps such a datagram at
// the head of its queue instead, which holds the marker behind it until our side next
// sends an ack-eliciting packet, e.g. a keep-alive: up to 5 s with our defaults; the
// wait is bounded by the test's limit.)
func PeerSizes(ctx context.Context, name string, max int, send func([]byte) error, recv func(context.Context) ([]byte, error)) (safe, lost int, err error) {
	safe = max - QuicGoOverhead
	f := SizeFlow(name, safe)
	f.Send, f.Recv = send, recv
	if err := f.Run(ctx); err != nil {
		return 0, 0, err
	}
	payload := SizeFlow(name, max).Payload // datagram of size k is payload(k-1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	markers := make(chan int, 1)
	failed := make(chan error, 1)
	var mu sync.Mutex
	got := map[int]bool{}
	go func() {
		for {
			b, err := recv(ctx)
			if err != nil {
				if ctx.Err() == nil {
					failed <- fmt.Errorf("%s band: %w", name, err)
				}
				return
			}
			if len(b) == 3 && b[0] == 0xfe {
				markers <- int(binary.BigEndian.Uint16(b[1:]))
				continue
			}
			k := len(b)
			mu.Lock()
			dup := got[k]
			got[k] = true
			mu.Unlock()
			if k <= safe || k > max || dup || !bytes.Equal(b, payload(k-1)) {
				failed <- fmt.Errorf("%s band: unexpected, repeated or corrupt datagram of %d bytes", name, k)
				return
			}
		}
	}()
	for k := safe + 1; k <= max; k++ {
		if err := send(payload(k - 1)); err != nil {
			return 0, 0, fmt.Errorf("%s band: sending %d bytes: %w", name, k, err)
		}
		if err := send([]byte{0xfe, byte(k >> 8), byte(k)}); err != nil {
			return 0, 0, fmt.Errorf("%s band: sending marker %d: %w", name, k, err)
		}
		select {
		case m := <-markers:
			if m != k {
				return 0, 0, fmt.Errorf("%s band: marker %d arrived, want %d", name, m, k)
			}
		case err := <-failed:
			return 0, 0, err
		case <-ctx.Done():
			return 0, 0, fmt.Errorf("%s band: marker after %d bytes lost: %w", name, k, ctx.Err())
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return safe, max - safe - len(got), nil
}

// WeSawClose waits for our session to end and checks that the peer closed it with
// this code and reason.
func WeSawClose(ctx context.Context, s *wtd.Session, code uint64, reason string) error {
	info, err := s.Wait(ctx)
	if err != nil {
		return fmt.Errorf("our session did not close: %w", err)
	}
	if info.Kind != wtd.CloseRemote || info.Code != code || info.Reason != reason {
		return fmt.Errorf("we saw %v %d %q, want remote %d %q", info.Kind, info.Code, info.Reason, code, reason)
	}
	return nil
}

// Concurrently runs, for each of n sessions at the same time, the flows flows(i)
// returns (one after the other within a session).
func Concurrently(ctx context.Context, n int, flows func(i int) []Flow) error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for _, f := range flows(i) {
				if err := f.Run(ctx); err != nil {
					errs[i] = err
					return
				}
			}
		}(i)
	}
	wg.Wait()
	return errors.Join(errs...)
}
