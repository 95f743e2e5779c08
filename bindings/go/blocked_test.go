package wtd

import (
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

// waitBlockedIn waits until a goroutine started by the calling test sits inside the
// blocking C call cfunc (e.g. "wtd_stream_receive"): proof that a receive has entered
// its wait and has not returned, read from the goroutine dumps (runtime.Stack), not
// guessed from a sleep. done is the channel the receiving goroutine reports on; a
// report before the goroutine was seen blocked fails the test. Bounded (10 s).
func waitBlockedIn(t *testing.T, cfunc string, done <-chan error) {
	t.Helper()
	test := regexp.QuoteMeta(strings.SplitN(t.Name(), "/", 2)[0])
	creator := regexp.MustCompile(`(?m)^created by \S*\.` + test + `(\.func[0-9.]+)? in goroutine `)
	call := "._Cfunc_" + cfunc + "("
	buf := make([]byte, 1<<20)
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-done:
			t.Fatalf("the receive returned before anything closed it: %v", err)
		default:
		}
		n := runtime.Stack(buf, true)
		if n == len(buf) {
			buf = make([]byte, 2*len(buf))
			continue
		}
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			if strings.Contains(g, call) && creator.MatchString(g) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no goroutine of %s ever blocked in %s", t.Name(), cfunc)
		}
		time.Sleep(time.Millisecond)
	}
}
