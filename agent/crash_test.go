package agent

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/agent/localstate"
	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

// crashChildEnv makes the test binary, re-executed by TestStateFileSurvivesKill,
// rewrite the state file in a loop instead of running tests.
const crashChildEnv = "RUMOR_TEST_CRASH_CHILD_DIR"

// crashStates returns the two state files the child alternates between: big enough
// (a few hundred KB) that a write takes many system calls, different in every
// service so a mix of the two would show.
func crashStates(t testing.TB) [2][]byte {
	var out [2][]byte
	for v := range out {
		st := &localstate.State{Services: map[string]*localstate.Service{}}
		for i := range 500 {
			id := fmt.Sprintf("svc-%03d", i)
			st.Services[id] = &localstate.Service{Source: localstate.SourceConfig, File: fmt.Sprintf("/etc/rumor.d/%s.json", id),
				Service: catalog.Service{ID: id, Name: "svc", Port: 1000*v + i, Tags: []string{fmt.Sprintf("gen-%d", v)},
					Meta: map[string]string{"padding": strings.Repeat("x", 200)}, Weights: catalog.DefaultWeights},
				Checks: []definition.Check{{ID: id + "-ttl", Name: "ttl", ServiceID: id, TTL: 30 * time.Second}}}
		}
		b, err := encodeState(st)
		if err != nil {
			t.Fatal(err)
		}
		out[v] = b
	}
	return out
}

// TestStateFileCrashChild is the child's body; it does nothing in a normal run.
func TestStateFileCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("run by TestStateFileSurvivesKill as a child process")
	}
	d, err := openDataDir(dir)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	// The parent prepared both contents beside the data dir: building them here
	// would slow every round down.
	var states [2][]byte
	for i := range states {
		if states[i], err = os.ReadFile(filepath.Join(filepath.Dir(dir), fmt.Sprintf("state-%d", i))); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
	}
	for i := 0; ; i++ {
		if err := writeFileAtomic(d.file(servicesFile), states[i%2]); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		if i == 0 {
			fmt.Println("writing") // the parent may kill from now on
		}
	}
}

// TestStateFileSurvivesKill kills (SIGKILL) a process at random moments while it
// rewrites the state file in a loop, then loads the state as a restarting agent
// does: it must always be exactly the old or the new content, never a mix, a
// truncation or nothing. Bounded: at most 50 rounds, at least 10.
func TestStateFileSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 50 processes")
	}
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("in the child")
	}
	states := crashStates(t)
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for i, b := range states {
		if err := os.WriteFile(filepath.Join(filepath.Dir(dir), fmt.Sprintf("state-%d", i)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, servicesFile), states[0], 0o600); err != nil {
		t.Fatal(err)
	}
	// 50 rounds, or as many as fit in 20 s once 10 are done: a loaded machine
	// (the race detector makes each child slow to start) still runs a bounded test.
	deadline := time.Now().Add(20 * time.Second)
	rounds, leftovers := 0, 0
	for ; rounds < 50 && (rounds < 10 || time.Now().Before(deadline)); rounds++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestStateFileCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ready := make(chan string, 1)
		go func() {
			line, _ := bufio.NewReader(out).ReadString('\n')
			ready <- line
		}()
		select {
		case line := <-ready:
			if strings.TrimSpace(line) != "writing" {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("child said %q", line)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatal("child did not start writing within 30s")
		}
		// The random moment of the crash: somewhere within a few writes.
		time.Sleep(time.Duration(rand.Int64N(int64(20 * time.Millisecond))))
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait() // "signal: killed"

		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if strings.Contains(e.Name(), tmpSuffix) {
				leftovers++ // killed mid-write: openDataDir must clean it up
			}
		}
		// What a restarting agent does: lock and clean the dir, load the state.
		d, err := openDataDir(dir)
		if err != nil {
			t.Fatalf("round %d: open data dir: %v", rounds, err)
		}
		st, err := d.loadState()
		if err != nil {
			t.Fatalf("round %d: load state: %v", rounds, err)
		}
		b, err := os.ReadFile(d.file(servicesFile))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, states[0]) && !bytes.Equal(b, states[1]) {
			t.Fatalf("round %d: the state file is neither the old nor the new content (%d bytes)", rounds, len(b))
		}
		if st == nil || len(st.Services) != 500 {
			t.Fatalf("round %d: %v services loaded, want 500", rounds, st)
		}
		if err := d.close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d kills, %d of them left a temp file behind (killed mid-write)", rounds, leftovers)
}
