package examples_test

// Builds the example programs and runs them as real processes on loopback, checking
// what they print (counts included). Every wait is bounded.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var bin string // directory of the built examples

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wtd-go-examples")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gocmd, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintln(os.Stderr, "go command not found:", err)
		os.Exit(1)
	}
	build := exec.Command(gocmd, "build", "-o", dir+string(filepath.Separator), "./...")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the examples failed (run `cargo build --lib` first):", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	// The C echo pair (examples/c), for the cross-language runs.
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	lib := filepath.Join(root, "target", "debug")
	for _, name := range []string{"echo_server", "echo_client"} {
		c := exec.Command(cc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic",
			"-I", filepath.Join(root, "include"), filepath.Join(root, "examples", "c", name+".c"),
			"-o", filepath.Join(dir, "c_"+name), "-L", lib, "-lwtdatagram", "-Wl,-rpath,"+lib)
		c.Stdout, c.Stderr = os.Stderr, os.Stderr
		if err := c.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "building examples/c/%s.c with %s failed: %v\n", name, cc, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	bin = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer collects a process's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// server is a running example server.
type server struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
	port int
	hash string
}

// startServer starts an example server with --port-file and waits (10 s at most)
// for its port and certificate hash.
func startServer(t *testing.T, name string, args ...string) *server {
	t.Helper()
	portFile := filepath.Join(t.TempDir(), "port")
	s := &server{out: &syncBuffer{}, done: make(chan error, 1)}
	s.cmd = exec.Command(filepath.Join(bin, name), append(args, "--port-file", portFile)...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			s.cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, s.out.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(portFile)
		if err == nil && len(b) > 0 {
			if _, err := fmt.Sscanf(string(b), "%d %s", &s.port, &s.hash); err != nil {
				t.Fatalf("port file %q: %v", b, err)
			}
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not start:\n%s", name, s.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wait waits (30 s at most) for the server to exit by itself, successfully.
func (s *server) wait(t *testing.T) string {
	t.Helper()
	select {
	case err := <-s.done:
		s.done <- err
		if err != nil {
			t.Fatalf("server: %v\n%s", err, s.out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("server still running:\n%s", s.out.String())
	}
	return s.out.String()
}

// run runs an example program to completion (60 s at most) and returns its output.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(bin, name), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func mustMatch(t *testing.T, out, pattern string) []string {
	t.Helper()
	m := regexp.MustCompile("(?m)" + pattern).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no line matching %q in:\n%s", pattern, out)
	}
	return m
}

func TestEchoPair(t *testing.T) {
	srv := startServer(t, "echo_server", "--max-sessions", "1")
	url := fmt.Sprintf("https://127.0.0.1:%d/echo", srv.port)
	out := run(t, "echo_client", url, srv.hash, "1000")
	mustMatch(t, out, `^connected `+regexp.QuoteMeta(url)+` max-datagram=\d+$`)
	mustMatch(t, out, `^received 1000/1000 bad=0 `)
	log := srv.wait(t)
	mustMatch(t, log, `^listening 127\.0\.0\.1:`+strconv.Itoa(srv.port)+`$`)
	mustMatch(t, log, `^cert-sha256 `+srv.hash+`$`)
	mustMatch(t, log, `^session request path=/echo origin=https://example\.go$`)
	mustMatch(t, log, `^session \d+ path=/echo$`)
	mustMatch(t, log, `^closed \d+ kind=remote code=7 reason=done received=1000 sent=1000$`)
}

// The Go and C echo programs talk to each other: Go client with the C server, C
// client with the Go server.
func TestEchoCrossLanguage(t *testing.T) {
	for _, pair := range [][2]string{{"c_echo_server", "echo_client"}, {"echo_server", "c_echo_client"}} {
		t.Run(pair[0]+"+"+pair[1], func(t *testing.T) {
			srv := startServer(t, pair[0], "--max-sessions", "1")
			out := run(t, pair[1], fmt.Sprintf("https://127.0.0.1:%d/echo", srv.port), srv.hash, "500")
			mustMatch(t, out, `^received 500/500 bad=0 `)
			log := srv.wait(t)
			mustMatch(t, log, `^session \d+ path=/echo$`)
			mustMatch(t, log, `^closed \d+ kind=remote code=7 reason=done received=500 sent=500$`)
		})
	}
}

func TestReliable(t *testing.T) {
	srv := startServer(t, "reliable", "serve", "--max-sessions", "2")
	url := fmt.Sprintf("https://127.0.0.1:%d/orders", srv.port)
	out := run(t, "reliable", "send", "--count", "200", url, srv.hash)
	mustMatch(t, out, `^sent 200 delivered 200 gave-up 0 retransmissions \d+$`)
	// Through a relay that drops 20% of the packets each way: still every message
	// exactly once, thanks to retransmissions.
	out = run(t, "reliable", "send", "--count", "150", "--loss", "200", url, srv.hash)
	m := mustMatch(t, out, `^sent 150 delivered 150 gave-up 0 retransmissions (\d+)$`)
	if m[1] == "0" {
		t.Fatalf("20%% loss but no retransmission:\n%s", out)
	}
	d := mustMatch(t, out, `^relay dropped (\d+) forwarded \d+$`)
	if d[1] == "0" {
		t.Fatalf("the relay dropped nothing:\n%s", out)
	}
	log := srv.wait(t)
	mustMatch(t, log, `^session \d+ received=200 unique=200 duplicates=0$`)
	mustMatch(t, log, `^session \d+ received=150 unique=150 duplicates=0$`)
}

func TestChat(t *testing.T) {
	const players, lines = 3, 5
	srv := startServer(t, "chat", "serve", "--players", strconv.Itoa(players))
	url := fmt.Sprintf("https://127.0.0.1:%d", srv.port)
	names := []string{"alice", "bob", "carol"}
	outs := make([]string, players)
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, filepath.Join(bin, "chat"), "join", "--name", name,
				"--lines", strconv.Itoa(lines), "--players", strconv.Itoa(players), url, srv.hash).CombinedOutput()
			outs[i] = string(out)
			if err != nil {
				t.Errorf("%s: %v\n%s", name, err, out)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for i, name := range names {
		mustMatch(t, outs[i], fmt.Sprintf(`^%s got %d/%d lines from %d players$`, name, players*lines, players*lines, players))
	}
	log := srv.wait(t)
	for _, name := range names {
		if !strings.Contains(log, "joined (/room?name="+name+")") {
			t.Fatalf("%s did not join:\n%s", name, log)
		}
	}
	mustMatch(t, log, fmt.Sprintf(`^relayed %d lines to %d players \(%d deliveries\)$`,
		players*lines, players, players*players*lines))
}
