package agent

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/rumor-sd/rumor/agent/localstate"
	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

// logged is a data dir's local state opened as the agent opens it: the log, and a
// core saving to it.
type logged struct {
	dir  *dataDir
	log  *stateLog
	core *localstate.Core
}

func openLogged(t *testing.T, path string) *logged {
	t.Helper()
	d, err := openDataDir(path)
	if err != nil {
		t.Fatal(err)
	}
	saved, err := d.openState(slog.New(slog.DiscardHandler), nil)
	if err != nil {
		_ = d.close()
		t.Fatal(err)
	}
	c, err := localstate.New(localstate.Config{Writer: catalog.NewWriter("n1", 1), Store: saved.log, State: saved.st})
	if err != nil {
		t.Fatal(err)
	}
	return &logged{d, saved.log, c}
}

func (lg *logged) close(t *testing.T) {
	t.Helper()
	if err := lg.log.close(); err != nil {
		t.Fatal(err)
	}
	if err := lg.dir.close(); err != nil {
		t.Fatal(err)
	}
}

// saved is the state a data dir holds, as the JSON of each entry: what a restart
// would find.
func saved(t *testing.T, path string) map[string]string {
	t.Helper()
	r, err := replayLog(filepath.Join(path, stateLogFile))
	if err != nil {
		t.Fatal(err)
	}
	return asStrings(r.entries)
}

func asStrings(m map[string][]byte) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = string(v)
	}
	return out
}

// inMemory is the JSON of each entry of the state the log was told of.
func (lg *logged) inMemory() map[string]string {
	lg.log.mu.Lock()
	defer lg.log.mu.Unlock()
	return asStrings(lg.log.entries)
}

// changes makes n changes of every kind, numbered from k: registrations, statuses,
// maintenance, node checks, deregistrations.
func (lg *logged) changes(t *testing.T, k, n int) {
	t.Helper()
	for i := k; i < k+n; i++ {
		var err error
		switch id := fmt.Sprintf("svc-%d", i%10); i % 5 {
		case 0, 1:
			_, err = lg.core.RegisterService(definition.Service{ID: id, Name: "svc", Port: i,
				Checks: []definition.Check{{ID: id + "-ttl", Name: "ttl", TTL: time.Hour}}})
		case 2:
			_, err = lg.core.SetCheckStatus(id+"-ttl", catalog.StatusPassing, fmt.Sprint(i))
		case 3:
			_, err = lg.core.SetMaintenance("", i%2 == 0, fmt.Sprint(i))
		default:
			if _, err = lg.core.DeregisterService(id); errors.Is(err, catalog.ErrNotFound) {
				_, err = lg.core.RegisterCheck(definition.Check{ID: fmt.Sprintf("node-%d", i%3), Name: "n", TTL: time.Duration(i) * time.Second})
			}
		}
		if err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
	}
}

// TestStateLogRoundTrip: every kind of change is in the log as it is in memory,
// after a restart too, and the node's own entry (node checks, maintenance) with it.
func TestStateLogRoundTrip(t *testing.T) {
	dir := t.TempDir()
	lg := openLogged(t, dir)
	lg.changes(t, 0, 200)
	want := lg.inMemory()
	if len(want) < 5 || want[""] == "" {
		t.Fatalf("the state holds %d entries (node's: %q): the changes did not do much", len(want), want[""])
	}
	lg.close(t)
	if got := saved(t, dir); !maps.Equal(got, want) {
		t.Errorf("after a restart the state is\n%v\nwant\n%v", got, want)
	}
	lg = openLogged(t, dir)
	defer lg.close(t)
	if got := lg.inMemory(); !maps.Equal(got, want) {
		t.Errorf("reopened, the log holds\n%v\nwant\n%v", got, want)
	}
	if svcs := lg.core.Services(); len(svcs) == 0 {
		t.Error("the core restored no service")
	}
}

// TestStateLogCompaction: the log is compacted once superseded bytes are twice the
// live ones, stays within about three times the live bytes, and what is appended while
// a compaction writes its new log is in the compacted one.
func TestStateLogCompaction(t *testing.T) {
	dir := t.TempDir()
	lg := openLogged(t, dir)
	defer lg.close(t)
	lg.log.minGarbage = 1
	lg.log.m = newStateMetrics(prometheus.NewRegistry())
	hold, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	lg.log.beforeInstall = func() {
		once.Do(func() {
			close(hold)
			<-release
		})
	}
	for i := 0; ; i++ {
		lg.changes(t, i, 1)
		select {
		case <-hold:
		default:
			if i > 10000 {
				t.Fatal("no compaction after 10,000 changes")
			}
			continue
		}
		break
	}
	lg.changes(t, 1000, 37) // while the first compaction waits to install
	close(release)
	lg.log.wg.Wait()
	lg.changes(t, 2000, 500)
	lg.log.wg.Wait()
	// Changes made during a compaction are not compacted by it; one more change
	// compacts them if they are past the threshold.
	lg.changes(t, 3000, 1)
	lg.log.wg.Wait()
	if n := counterValue(t, lg.log.m.compactions); n < 2 {
		t.Errorf("%v compactions, want several", n)
	}
	lg.log.mu.Lock()
	size, live := lg.log.size, lg.log.live
	lg.log.mu.Unlock()
	if size > 3*live+1024 { // the header, framing, and one record past the threshold
		t.Errorf("the log holds %d bytes for %d live ones", size, live)
	}
	if got, want := saved(t, dir), lg.inMemory(); !maps.Equal(got, want) {
		t.Errorf("after compactions the log holds\n%v\nwant\n%v", got, want)
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestStateLogGroupCommit: one fsync makes every change appended before it durable,
// whoever waits for it: ten changes waited for at once cost one fsync.
func TestStateLogGroupCommit(t *testing.T) {
	lg := openLogged(t, t.TempDir())
	defer lg.close(t)
	lg.log.m = newStateMetrics(nil)
	var seqs []uint64
	for i := range 10 {
		lg.changes(t, 5*i, 1) // registrations
		seqs = append(seqs, lg.log.last())
	}
	var wg sync.WaitGroup
	for _, seq := range seqs {
		wg.Go(func() {
			if err := lg.log.flush(seq); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := counterValue(t, lg.log.m.fsyncs); n != 1 {
		t.Errorf("%v fsyncs for 10 changes waited for together, want 1", n)
	}
	if err := lg.log.flush(lg.log.last()); err != nil || counterValue(t, lg.log.m.fsyncs) != 1 {
		t.Errorf("a flush with nothing new: %v, and it fsynced", err)
	}
}

// writtenLog makes 20 changes in a new data dir and returns it, its log's path and
// content, and the state it holds.
func writtenLog(t *testing.T) (dir, path string, content []byte, st map[string]string) {
	t.Helper()
	dir = t.TempDir()
	lg := openLogged(t, dir)
	lg.changes(t, 0, 20)
	st = lg.inMemory()
	lg.close(t)
	path = filepath.Join(dir, stateLogFile)
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return dir, path, content, st
}

// TestStateLogTornTail: a write a crash cut short leaves bytes without a newline at
// the end; a restart drops them (truncating the file) and loads the rest. The change
// was never acknowledged, since its write had not returned.
func TestStateLogTornTail(t *testing.T) {
	for _, tail := range []struct {
		name string
		b    func(record []byte) []byte
	}{
		{"half a record", func(r []byte) []byte { return r[:len(r)/2] }},
		{"a record without its newline", func(r []byte) []byte { return r[:len(r)-1] }},
		{"zeros (a file extended, not written)", func([]byte) []byte { return make([]byte, 4096) }},
	} {
		t.Run(tail.name, func(t *testing.T) {
			dir, path, good, want := writtenLog(t)
			lines := bytes.SplitAfter(good, []byte("\n"))
			record := lines[len(lines)-2] // a whole record to cut
			if err := os.WriteFile(path, append(bytes.Clone(good), tail.b(record)...), 0o600); err != nil {
				t.Fatal(err)
			}
			lg := openLogged(t, dir)
			defer lg.close(t)
			if got := lg.inMemory(); !maps.Equal(got, want) {
				t.Errorf("after a torn tail the state is\n%v\nwant\n%v", got, want)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, good) {
				t.Errorf("the torn tail was not cut off: %d bytes, want %d", len(after), len(good))
			}
		})
	}
}

// TestStateLogDamageRefused: what a crash cannot leave (a bad record with whole
// records after it, a line that is no record, a foreign or newer header, unknown
// fields) is refused at start, naming the file and the byte offset, and the file is
// left as it was.
func TestStateLogDamageRefused(t *testing.T) {
	dir, path, good, _ := writtenLog(t)
	lines := bytes.SplitAfter(good, []byte("\n"))
	third := len(lines[0]) + len(lines[1]) // where the third record starts
	reframe := func(payload string) []byte { return frame([]byte(payload)) }
	for _, c := range []struct {
		name, want string
		content    []byte
	}{
		{"a flipped byte", "checksum mismatch",
			bytes.Join([][]byte{good[:third+20], []byte("X"), good[third+21:]}, nil)},
		{"garbage line", "not a record",
			bytes.Join([][]byte{good[:third], []byte("garbage\n"), good[third:]}, nil)},
		{"unknown field", `unknown field "Extra"`,
			bytes.Join([][]byte{good[:third], reframe(`{"Put":[],"Extra":1}`), good[third:]}, nil)},
		{"a newer version", "format version 3", append(reframe(`{"Format":"rumor local state","Version":3}`), good[len(lines[0]):]...)},
		{"not a log", "not a rumor local state log", append(reframe(`{"Version":1,"Services":[]}`), good[len(lines[0]):]...)},
		{"empty", "no header", nil},
		// issue 11 item 13: never merged silently.
		{"data after a record's JSON", "data after the JSON value",
			bytes.Join([][]byte{good[:third], reframe(`{"Put":[],"Del":[]}]`), good[third:]}, nil)},
		{"a service twice in one record", `service ID "a" appears twice in one record`,
			bytes.Join([][]byte{good[:third], reframe(`{"Put":[{"Service":{"ID":"a","Name":"a"}},{"Service":{"ID":"a","Name":"b"}}]}`), good[third:]}, nil)},
		{"put and deleted in one record", `service ID "a" appears twice in one record`,
			bytes.Join([][]byte{good[:third], reframe(`{"Put":[{"Service":{"ID":"a","Name":"a"}}],"Del":["a"]}`), good[third:]}, nil)},
		{"the node's entry twice in one record", "the node's own entry appears twice",
			bytes.Join([][]byte{good[:third], reframe(`{"Put":[{"Service":{}},{"Service":{}}]}`), good[third:]}, nil)},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(path, c.content, 0o600); err != nil {
				t.Fatal(err)
			}
			err := startError(t, testConfig(t, "n1", dir, nil))
			wantAt := "byte 0"
			if c.name != "a newer version" && c.name != "not a log" && c.name != "empty" {
				wantAt = fmt.Sprintf("byte %d", third)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), wantAt) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Start: %v\nwant the file, %q and %q", err, wantAt, c.want)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, c.content) {
				t.Error("the refused log was changed")
			}
		})
	}
}

// TestStateLogGarbageTail: bytes after the last record that cannot be the start of
// a record's write (text appended to the file) are damage, refused naming the file
// and offset, not cut off as a torn write (issue 11 item 13).
func TestStateLogGarbageTail(t *testing.T) {
	for _, tail := range []string{"garbage", `{"Put":[]}`, "0123abcd{"} {
		t.Run(tail, func(t *testing.T) {
			dir, path, good, _ := writtenLog(t)
			content := append(bytes.Clone(good), tail...)
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			err := startError(t, testConfig(t, "n1", dir, nil))
			if want := fmt.Sprintf("byte %d", len(good)); !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), want) ||
				!strings.Contains(err.Error(), "not the start of one") {
				t.Errorf("Start: %v\nwant the file, %q and the reason", err, want)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, content) {
				t.Error("the refused log was changed")
			}
		})
	}
}

// TestStateLogWriteFailure: a change whose append fails is undone and refused; the
// log, which may then hold part of it, is rewritten whole by the next change.
func TestStateLogWriteFailure(t *testing.T) {
	dir := t.TempDir()
	lg := openLogged(t, dir)
	defer lg.close(t)
	lg.changes(t, 0, 10)
	before := lg.inMemory()
	_ = lg.log.f.Close() // every write and truncation fails from now on
	if _, err := lg.core.RegisterService(definition.Service{ID: "lost", Name: "lost"}); err == nil {
		t.Fatal("a change whose append failed was accepted")
	}
	if got := lg.inMemory(); !maps.Equal(got, before) {
		t.Error("the failed change is counted as saved")
	}
	if err := lg.log.flush(lg.log.last()); err == nil || !strings.Contains(err.Error(), "cut off a failed append") {
		t.Errorf("flush of a broken log: %v, want the reason", err)
	}
	if _, err := lg.core.RegisterService(definition.Service{ID: "kept", Name: "kept"}); err != nil {
		t.Fatalf("the change after a failure: %v, want the log rewritten", err)
	}
	got := saved(t, dir)
	if _, ok := got["kept"]; !ok || got["lost"] != "" || !maps.Equal(got, lg.inMemory()) {
		t.Errorf("after the rewrite the log holds %v", slices.Sorted(maps.Keys(got)))
	}
}
