package agent

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/agent/localstate"
	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

// The crash tests re-execute the test binary as a child that writes to a data dir
// in a loop, kill it (SIGKILL) at a random moment, and check what a restarting agent
// finds. crashChildEnv names the data dir, crashModeEnv what to write ("atomic" or
// "log"), crashFromEnv the first change the log child makes.
const (
	crashChildEnv = "RUMOR_TEST_CRASH_CHILD_DIR"
	crashModeEnv  = "RUMOR_TEST_CRASH_MODE"
	crashFromEnv  = "RUMOR_TEST_CRASH_FROM"
)

// TestCrashChild is the child's body; it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("run by the crash tests as a child process")
	}
	fail := func(err error) {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	d, err := openDataDir(dir)
	if err != nil {
		fail(err)
	}
	if os.Getenv(crashModeEnv) == "atomic" {
		// The parent prepared both contents beside the data dir: building them here
		// would slow every round down.
		var contents [2][]byte
		for i := range contents {
			if contents[i], err = os.ReadFile(filepath.Join(filepath.Dir(dir), fmt.Sprintf("content-%d", i))); err != nil {
				fail(err)
			}
		}
		for i := 0; ; i++ {
			if err := writeFileAtomic(d.file(peersFile), contents[i%2]); err != nil {
				fail(err)
			}
			if i == 0 {
				fmt.Println("writing") // the parent may kill from now on
			}
		}
	}
	saved, err := d.openState(slog.New(slog.DiscardHandler), nil)
	if err != nil {
		fail(err)
	}
	l := saved.log
	l.minGarbage = 1 // compact as soon as superseded bytes outweigh live ones twice: kills land in compactions too
	core, err := localstate.New(localstate.Config{Writer: catalog.NewWriter("n1", 1), Store: l, State: saved.st})
	if err != nil {
		fail(err)
	}
	from, err := strconv.Atoi(os.Getenv(crashFromEnv))
	if err != nil {
		fail(err)
	}
	fmt.Println("writing")
	for k := from; ; k++ {
		if err := crashChange(core, k); err != nil {
			fail(err)
		}
		if err := l.flush(l.last()); err != nil {
			fail(err)
		}
		fmt.Println("ack", k) // acknowledged: durable
	}
}

// The log child's changes: change k touches service k mod crashServices, registering
// it with port k, reporting output k for its TTL check, or deregistering it.
const crashServices = 20

func crashOp(k int) (op string, svc int) {
	switch svc = k % crashServices; {
	case k%7 == 6:
		return "deregister", svc
	case k%3 == 2:
		return "status", svc
	}
	return "register", svc
}

func crashID(svc int) string { return fmt.Sprintf("svc-%02d", svc) }

func crashChange(c *localstate.Core, k int) error {
	op, svc := crashOp(k)
	id := crashID(svc)
	var err error
	switch op {
	case "register":
		_, err = c.RegisterService(definition.Service{ID: id, Name: "svc", Port: k,
			Meta:   map[string]string{"padding": strings.Repeat("x", 200)},
			Checks: []definition.Check{{ID: id + "-ttl", Name: "ttl", TTL: time.Hour}}})
	case "status":
		_, err = c.SetCheckStatus(id+"-ttl", catalog.StatusPassing, strconv.Itoa(k))
	default:
		if _, err = c.DeregisterService(id); errors.Is(err, catalog.ErrNotFound) {
			err = nil
		}
	}
	return err
}

// crashModel is what changes 0…n leave: each service's port and check output ("" for
// none), by ID.
func crashModel(n int) map[string][2]string {
	m := map[string][2]string{}
	for k := 0; k <= n; k++ {
		op, svc := crashOp(k)
		id := crashID(svc)
		switch e, ok := m[id]; op {
		case "register":
			m[id] = [2]string{strconv.Itoa(k), e[1]}
		case "status":
			if ok {
				m[id] = [2]string{e[0], strconv.Itoa(k)}
			}
		default:
			delete(m, id)
		}
	}
	return m
}

func stateModel(st *localstate.State) map[string][2]string {
	m := map[string][2]string{}
	for id, e := range st.Services {
		m[id] = [2]string{strconv.Itoa(e.Service.Port), e.Status[id+"-ttl"].Output}
	}
	return m
}

// crashRound starts a child with env, lets it work for a random moment and kills it
// (SIGKILL), returning the lines it printed.
func crashRound(t *testing.T, env ...string) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	select {
	case line := <-lines:
		if line != "writing" {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("child said %q", line)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal("child did not start writing within 30s")
	}
	// The random moment of the crash (not a synchronisation): within a few writes.
	time.Sleep(time.Duration(rand.Int64N(int64(40 * time.Millisecond))))
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for line := range lines { // until the pipe closes with the child
		got = append(got, line)
	}
	_ = cmd.Wait() // "signal: killed"
	return got
}

// skipCrashParent skips a crash test with -short (it starts 50 processes) and in
// the child.
func skipCrashParent(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts 50 processes")
	}
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("in the child")
	}
}

// rounds runs f for 50 rounds, or as many as fit in 20 s once 10 are done: a loaded
// machine (the race detector makes each child slow to start) still runs a bounded
// test.
func rounds(f func(round int)) int {
	deadline := time.Now().Add(20 * time.Second)
	n := 0
	for ; n < 50 && (n < 10 || time.Now().Before(deadline)); n++ {
		f(n)
	}
	return n
}

// TestStateLogSurvivesKill kills (SIGKILL) a process at random moments while it
// changes the local state in a loop (registrations, check statuses,
// deregistrations, with compactions every few changes), then opens the data dir as a
// restarting agent does: every change the child acknowledged is there, and nothing
// else but the one it was making (issue 11, item 12: an acknowledged write survives
// kill -9). A torn last record is cut off, never refused.
func TestStateLogSurvivesKill(t *testing.T) {
	skipCrashParent(t)
	dir := filepath.Join(t.TempDir(), "data")
	done := 0 // changes 0…done-1 are in the state
	torn, leftovers := 0, 0
	n := rounds(func(round int) {
		lines := crashRound(t, crashChildEnv+"="+dir, crashModeEnv+"=log", crashFromEnv+"="+strconv.Itoa(done))
		acked := done - 1
		for _, line := range lines {
			if v, ok := strings.CutPrefix(line, "ack "); ok {
				acked, _ = strconv.Atoi(v)
			} else {
				t.Fatalf("round %d: child said %q", round, line)
			}
		}
		leftovers += countTemp(t, dir)
		before, _ := os.Stat(filepath.Join(dir, stateLogFile))
		d, err := openDataDir(dir)
		if err != nil {
			t.Fatalf("round %d: open data dir: %v", round, err)
		}
		saved, err := d.openState(slog.New(slog.DiscardHandler), nil)
		if err != nil {
			t.Fatalf("round %d: open the state after a kill: %v", round, err)
		}
		if after, _ := os.Stat(filepath.Join(dir, stateLogFile)); before != nil && after.Size() < before.Size() {
			torn++
		}
		if _, err := localstate.New(localstate.Config{Writer: catalog.NewWriter("n1", 1), State: saved.st}); err != nil {
			t.Fatalf("round %d: the state does not load: %v", round, err)
		}
		got := stateModel(saved.st)
		switch {
		case maps.Equal(got, crashModel(acked)):
			done = acked + 1
		case maps.Equal(got, crashModel(acked+1)): // the change in flight made it too
			done = acked + 2
		default:
			t.Fatalf("round %d: after %d acknowledged changes the state is\n%v\nwant\n%v\n(or with change %d)", round, acked+1, got, crashModel(acked), acked+1)
		}
		if err := saved.log.close(); err != nil {
			t.Fatal(err)
		}
		if err := d.close(); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%d kills after %d changes; %d cut a record short, %d a compaction", n, done, torn, leftovers)
}

// countTemp counts temp files in dir: writes (or compactions) a kill interrupted,
// which openDataDir removes.
func countTemp(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if strings.Contains(e.Name(), tmpSuffix) {
			n++
		}
	}
	return n
}

// TestAtomicFileSurvivesKill kills (SIGKILL) a process at random moments while it
// replaces a file (as node-id, generation and peers.json are written) in a loop: it
// must always hold exactly the old or the new content, never a mix, a truncation or
// nothing, and openDataDir removes the temp file a kill left.
func TestAtomicFileSurvivesKill(t *testing.T) {
	skipCrashParent(t)
	// Big enough (a few hundred KB) that a write takes many system calls, and
	// different throughout so that a mix of the two would show.
	var contents [2][]byte
	for v := range contents {
		var b bytes.Buffer
		for i := range 5000 {
			fmt.Fprintf(&b, "line %d of content %d %s\n", i, v, strings.Repeat(strconv.Itoa(v), 40))
		}
		contents[v] = b.Bytes()
	}
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for i, b := range contents {
		if err := os.WriteFile(filepath.Join(filepath.Dir(dir), fmt.Sprintf("content-%d", i)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	leftovers := 0
	n := rounds(func(round int) {
		crashRound(t, crashChildEnv+"="+dir, crashModeEnv+"=atomic")
		leftovers += countTemp(t, dir)
		d, err := openDataDir(dir)
		if err != nil {
			t.Fatalf("round %d: open data dir: %v", round, err)
		}
		b, err := os.ReadFile(d.file(peersFile))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, contents[0]) && !bytes.Equal(b, contents[1]) {
			t.Fatalf("round %d: the file is neither the old nor the new content (%d bytes)", round, len(b))
		}
		if n := countTemp(t, dir); n != 0 {
			t.Fatalf("round %d: openDataDir left %d temp files", round, n)
		}
		if err := d.close(); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%d kills, %d of them left a temp file behind (killed mid-write)", n, leftovers)
}
