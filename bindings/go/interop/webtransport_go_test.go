package interop

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"

	wtd "github.com/libwtdatagram/libwtdatagram/bindings/go"
	wtg "github.com/libwtdatagram/libwtdatagram/bindings/go/interop/wtgotest"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"
)

// peerQUIC is the QUIC configuration of the webtransport-go side. Path-MTU discovery
// is off so that its datagram limit stays at the 1280-byte packet size for the whole
// run (see wtgotest.PeerSizes for what quic-go v0.53.0 does at that limit).
func peerQUIC() *quic.Config {
	return &quic.Config{EnableDatagrams: true, DisablePathMTUDiscovery: true}
}

// webtransport-go v0.9.0's client against our server (issue 6 matrix, peer role
// "client"). Its SETTINGS carry only H3_DATAGRAM; its CONNECT has `:protocol
// webtransport` and `sec-webtransport-http3-draft02: 1`: draft-02.
func TestWebtransportGoClient(t *testing.T) {
	cell := wtg.StartCell(t, wtg.PeerName(t), "client", "draft-02")
	ctx, cancel := context.WithTimeout(context.Background(), wtg.Limit)
	defer cancel()

	rt, err := wtd.NewRuntime(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	srv, err := wtd.Listen(rt, &wtd.ServerConfig{Addr: "127.0.0.1:0", SelfSignedNames: []string{"localhost", "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	hash, err := srv.CertHash()
	if err != nil {
		t.Fatal(err)
	}
	d := &webtransport.Dialer{TLSClientConfig: wtg.Pinned(hash), QUICConfig: peerQUIC()}
	defer d.Close()

	type dialed struct {
		rsp *http.Response
		cs  *webtransport.Session
		err error
	}
	// dial opens one webtransport-go session and accepts it on our side.
	dial := func(path string) (*wtd.Session, *webtransport.Session) {
		t.Helper()
		ch := make(chan dialed, 1)
		go func() {
			rsp, cs, err := d.Dial(ctx, fmt.Sprintf("https://127.0.0.1:%d%s", srv.Port(), path), nil)
			ch <- dialed{rsp, cs, err}
		}()
		req, err := srv.Accept(ctx)
		if err != nil {
			t.Fatalf("no session request from webtransport-go: %v", err)
		}
		if req.Path() != path || req.Protocol() != "webtransport" || req.Header("sec-webtransport-http3-draft02") != "1" {
			t.Fatalf("request path %q protocol %q headers %q", req.Path(), req.Protocol(), req.Headers())
		}
		ss, err := req.Accept()
		if err != nil {
			t.Fatal("accept:", err)
		}
		t.Cleanup(func() { ss.Close() })
		r := <-ch
		if r.err != nil {
			t.Fatal("webtransport-go dial:", r.err)
		}
		t.Cleanup(func() { r.cs.CloseWithError(0, "") })
		if r.rsp.StatusCode != 200 || r.rsp.Header.Get("Sec-Webtransport-Http3-Draft") != "draft02" {
			t.Fatalf("response %d %v", r.rsp.StatusCode, r.rsp.Header)
		}
		if ss.Dialect() != wtd.DialectDraft02 {
			t.Fatalf("dialect %v, want draft-02", ss.Dialect())
		}
		return ss, r.cs
	}

	// Session established.
	ss, cs := dial("/wtgo?x=1")

	// 1,000 datagrams each way, content and count checked.
	up := wtg.CountFlow("webtransport-go -> wtd", 'U', wtg.Count)
	up.Send, up.Recv = cs.SendDatagram, wtg.OursRecv(ss)
	down := wtg.CountFlow("wtd -> webtransport-go", 'D', wtg.Count)
	down.Send, down.Recv = wtg.OursSend(ctx, ss), cs.ReceiveDatagram
	for _, f := range []wtg.Flow{up, down} {
		if err := f.Run(ctx); err != nil {
			t.Fatal(err)
		}
	}

	// Every size from 1 byte to each side's maximum.
	ourMax, err := ss.MaxDatagramSize()
	if err != nil {
		t.Fatal(err)
	}
	theirMax, err := wtg.PeerMaxDatagram(cs, ss.ID())
	if err != nil {
		t.Fatal(err)
	}
	safe, lost, err := wtg.PeerSizes(ctx, "webtransport-go -> wtd sizes", theirMax, cs.SendDatagram, wtg.OursRecv(ss))
	if err != nil {
		t.Fatal(err)
	}
	down = wtg.SizeFlow("wtd -> webtransport-go sizes", ourMax)
	down.Send, down.Recv = wtg.OursSend(ctx, ss), cs.ReceiveDatagram
	if err := down.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if err := wtg.NoDrops(ss); err != nil {
		t.Fatal(err)
	}

	// An oversize datagram is refused on our side with TooLarge.
	refusedAbove, err := wtg.TooLargeOnOurSide(ctx, ss)
	if err != nil {
		t.Fatal(err)
	}

	// Close from our side: webtransport-go sees code and reason.
	if err := ss.CloseWithError(7, "done here"); err != nil {
		t.Fatal(err)
	}
	if err := peerSawClose(ctx, cs, 7, "done here"); err != nil {
		t.Fatal(err)
	}
	// Close from webtransport-go's side: we see code and reason.
	ss2, cs2 := dial("/second")
	if err := cs2.CloseWithError(0xfeed, "bye from go"); err != nil {
		t.Fatal("webtransport-go CloseWithError:", err)
	}
	if err := wtg.WeSawClose(ctx, ss2, 0xfeed, "bye from go"); err != nil {
		t.Fatal(err)
	}

	// Several sessions: webtransport-go v0.9.0's Dialer opens a new QUIC connection
	// for every Dial (DialAddr, then http3 NewClientConn) and has no way to open a
	// second session on an existing connection. So: three sessions on three
	// connections at once, each with its own datagrams.
	const sessions = 3
	type pair struct {
		ss *wtd.Session
		cs *webtransport.Session
	}
	pairs := make([]pair, sessions)
	locals := map[string]bool{}
	for i := range pairs {
		pairs[i].ss, pairs[i].cs = dial(fmt.Sprintf("/many/%d", i))
		locals[pairs[i].cs.LocalAddr().String()] = true
	}
	if len(locals) != sessions {
		t.Fatalf("expected one connection per Dial (webtransport-go v0.9.0), local addresses %v", locals)
	}
	if err := wtg.Concurrently(ctx, sessions, func(i int) []wtg.Flow {
		up := wtg.CountFlow(fmt.Sprintf("session %d: webtransport-go -> wtd", i), byte('a'+i), 200)
		up.Send, up.Recv = pairs[i].cs.SendDatagram, wtg.OursRecv(pairs[i].ss)
		down := wtg.CountFlow(fmt.Sprintf("session %d: wtd -> webtransport-go", i), byte('A'+i), 200)
		down.Send, down.Recv = wtg.OursSend(ctx, pairs[i].ss), pairs[i].cs.ReceiveDatagram
		return []wtg.Flow{up, down}
	}); err != nil {
		t.Fatal(err)
	}

	cell.Pass(fmt.Sprintf("%d datagrams each way; sizes 1..%d ours, 1..%d theirs (quic-go dropped %d of %d..%d: its limit exceeds a packet);"+
		" TooLarge above %d on our side; close code+reason both ways;"+
		" %d sessions on %d connections (its client dials one per session)",
		wtg.Count, ourMax, theirMax, lost, safe+1, theirMax, refusedAbove, sessions, len(locals)))
}

// Our client against webtransport-go v0.9.0's server (issue 6 matrix, peer role
// "server"). It announces ENABLE_WEBTRANSPORT (draft-02), H3_DATAGRAM and extended
// CONNECT; our client speaks draft-02 to it.
func TestWebtransportGoServer(t *testing.T) {
	cell := wtg.StartCell(t, wtg.PeerName(t), "server", "draft-02")
	ctx, cancel := context.WithTimeout(context.Background(), wtg.Limit)
	defer cancel()

	cert, hash := wtg.SelfSigned(t)
	type upgraded struct {
		path, proto, offer string
		s                  *webtransport.Session
	}
	sessions := make(chan upgraded, 16)
	upgradeErrs := make(chan error, 16)
	ws := &webtransport.Server{
		H3: http3.Server{
			TLSConfig:  &tls.Config{Certificates: []tls.Certificate{cert}},
			QUICConfig: peerQUIC(),
		},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s, err := ws.Upgrade(w, r)
		if err != nil {
			upgradeErrs <- fmt.Errorf("webtransport-go Upgrade %s: %w", r.URL.Path, err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		sessions <- upgraded{r.URL.RequestURI(), r.Proto, r.Header.Get("Sec-Webtransport-Http3-Draft02"), s}
		<-s.Context().Done()
	})
	ws.H3.Handler = mux
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- ws.Serve(pc) }()
	defer func() {
		ws.Close()
		pc.Close()
		<-served
	}()
	url := fmt.Sprintf("https://127.0.0.1:%d", pc.LocalAddr().(*net.UDPAddr).Port)

	rt, err := wtd.NewRuntime(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	cli, err := wtd.NewClient(rt, &wtd.ClientConfig{CertHashes: [][32]byte{hash}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	conn, err := cli.Connect(ctx, url+"/")
	if err != nil {
		t.Fatal("connect to webtransport-go:", err)
	}
	defer conn.Close()
	if conn.Dialect() != wtd.DialectDraft02 {
		t.Fatalf("server dialect %v, want draft-02", conn.Dialect())
	}
	open := func(path string) (*wtd.Session, *webtransport.Session) {
		t.Helper()
		cs, err := conn.OpenSession(ctx, path, nil)
		if err != nil {
			select {
			case uerr := <-upgradeErrs:
				t.Fatalf("open session %s: %v (%v)", path, err, uerr)
			default:
			}
			t.Fatalf("open session %s: %v", path, err)
		}
		t.Cleanup(func() { cs.Close() })
		var u upgraded
		select {
		case u = <-sessions:
		case <-ctx.Done():
			t.Fatal("webtransport-go did not upgrade the request")
		}
		t.Cleanup(func() { u.s.CloseWithError(0, "") })
		if u.path != path || u.proto != "webtransport" || u.offer != "1" {
			t.Fatalf("webtransport-go saw path %q protocol %q draft02 offer %q", u.path, u.proto, u.offer)
		}
		if cs.Dialect() != wtd.DialectDraft02 {
			t.Fatalf("dialect %v, want draft-02", cs.Dialect())
		}
		return cs, u.s
	}

	// Session established.
	cs, ss := open("/wtd?y=2")

	// 1,000 datagrams each way, content and count checked.
	up := wtg.CountFlow("wtd -> webtransport-go", 'U', wtg.Count)
	up.Send, up.Recv = wtg.OursSend(ctx, cs), ss.ReceiveDatagram
	down := wtg.CountFlow("webtransport-go -> wtd", 'D', wtg.Count)
	down.Send, down.Recv = ss.SendDatagram, wtg.OursRecv(cs)
	for _, f := range []wtg.Flow{up, down} {
		if err := f.Run(ctx); err != nil {
			t.Fatal(err)
		}
	}

	// Every size from 1 byte to each side's maximum.
	ourMax, err := cs.MaxDatagramSize()
	if err != nil {
		t.Fatal(err)
	}
	theirMax, err := wtg.PeerMaxDatagram(ss, cs.ID())
	if err != nil {
		t.Fatal(err)
	}
	up = wtg.SizeFlow("wtd -> webtransport-go sizes", ourMax)
	up.Send, up.Recv = wtg.OursSend(ctx, cs), ss.ReceiveDatagram
	if err := up.Run(ctx); err != nil {
		t.Fatal(err)
	}
	safe, lost, err := wtg.PeerSizes(ctx, "webtransport-go -> wtd sizes", theirMax, ss.SendDatagram, wtg.OursRecv(cs))
	if err != nil {
		t.Fatal(err)
	}
	if err := wtg.NoDrops(cs); err != nil {
		t.Fatal(err)
	}

	// An oversize datagram is refused on our side with TooLarge.
	refusedAbove, err := wtg.TooLargeOnOurSide(ctx, cs)
	if err != nil {
		t.Fatal(err)
	}

	// Several sessions on this one connection, datagrams routed to each.
	const many = 3
	type pair struct {
		cs *wtd.Session
		ss *webtransport.Session
	}
	pairs := make([]pair, many)
	for i := range pairs {
		pairs[i].cs, pairs[i].ss = open(fmt.Sprintf("/many/%d", i))
	}
	if err := wtg.Concurrently(ctx, many, func(i int) []wtg.Flow {
		up := wtg.CountFlow(fmt.Sprintf("session %d: wtd -> webtransport-go", i), byte('a'+i), 200)
		up.Send, up.Recv = wtg.OursSend(ctx, pairs[i].cs), pairs[i].ss.ReceiveDatagram
		down := wtg.CountFlow(fmt.Sprintf("session %d: webtransport-go -> wtd", i), byte('A'+i), 200)
		down.Send, down.Recv = pairs[i].ss.SendDatagram, wtg.OursRecv(pairs[i].cs)
		return []wtg.Flow{up, down}
	}); err != nil {
		t.Fatal(err)
	}

	// Close from our side: webtransport-go sees code and reason.
	if err := cs.CloseWithError(42, "wtd says bye"); err != nil {
		t.Fatal(err)
	}
	if err := peerSawClose(ctx, ss, 42, "wtd says bye"); err != nil {
		t.Fatal(err)
	}
	// Close from webtransport-go's side: we see code and reason; the other sessions of
	// the connection live on.
	if err := pairs[0].ss.CloseWithError(0xbeef, "server closes one"); err != nil {
		t.Fatal("webtransport-go CloseWithError:", err)
	}
	if err := wtg.WeSawClose(ctx, pairs[0].cs, 0xbeef, "server closes one"); err != nil {
		t.Fatal(err)
	}
	last := wtg.CountFlow("after the closes: wtd -> webtransport-go", 'Z', 50)
	last.Send, last.Recv = wtg.OursSend(ctx, pairs[many-1].cs), pairs[many-1].ss.ReceiveDatagram
	if err := last.Run(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-upgradeErrs:
		t.Fatal(err)
	default:
	}

	cell.Pass(fmt.Sprintf("%d datagrams each way; sizes 1..%d ours, 1..%d theirs (quic-go dropped %d of %d..%d: its limit exceeds a packet);"+
		" TooLarge above %d on our side; close code+reason both ways; %d sessions on one connection",
		wtg.Count, ourMax, theirMax, lost, safe+1, theirMax, refusedAbove, many+1))
}

// peerSawClose waits for webtransport-go's session to end and checks the code and
// reason it reports: a remote *webtransport.SessionError, which AcceptStream returns
// once the session is closed.
func peerSawClose(ctx context.Context, s *webtransport.Session, code webtransport.SessionErrorCode, reason string) error {
	select {
	case <-s.Context().Done():
	case <-ctx.Done():
		return errors.New("webtransport-go's session did not close")
	}
	_, err := s.AcceptStream(ctx)
	var se *webtransport.SessionError
	if !errors.As(err, &se) || !se.Remote || se.ErrorCode != code || se.Message != reason {
		return fmt.Errorf("webtransport-go saw %#v (%v), want remote close %d %q", err, err, code, reason)
	}
	return nil
}
