package testnet

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
)

// These tests need no root and no namespaces.

func TestConfigDefaults(t *testing.T) {
	cases := []struct {
		name    string
		cfg     Config
		wantErr string // substring; "" means success
		check   func(t *testing.T, got Config)
	}{
		{name: "zero hosts", cfg: Config{}, wantErr: "0 hosts"},
		{name: "too many hosts", cfg: Config{Hosts: 254}, wantErr: "254 hosts"},
		{name: "subnet too small", cfg: Config{Hosts: 3, Subnet: netip.MustParsePrefix("10.1.2.0/30")}, wantErr: "3 hosts"},
		{name: "subnet just big enough", cfg: Config{Hosts: 2, Subnet: netip.MustParsePrefix("10.1.2.4/30")}},
		{name: "IPv6 subnet", cfg: Config{Hosts: 2, Subnet: netip.MustParsePrefix("fd00::/64")}, wantErr: "IPv4"},
		{name: "prefix with dash", cfg: Config{Hosts: 2, Prefix: "a-b"}, wantErr: "prefix"},
		{name: "prefix uppercase", cfg: Config{Hosts: 2, Prefix: "Abc"}, wantErr: "prefix"},
		{
			name: "defaults", cfg: Config{Hosts: 3},
			check: func(t *testing.T, got Config) {
				if got.Prefix != DefaultPrefix {
					t.Errorf("Prefix = %q, want %q", got.Prefix, DefaultPrefix)
				}
				if got.Subnet.Bits() != 24 || got.Subnet.Addr().As4()[0] != 10 || got.Subnet.Masked() != got.Subnet {
					t.Errorf("Subnet = %s, want a 10.x.y.0/24", got.Subnet)
				}
			},
		},
		{
			name: "subnet is masked", cfg: Config{Hosts: 1, Subnet: netip.MustParsePrefix("10.9.8.77/24")},
			check: func(t *testing.T, got Config) {
				if want := netip.MustParsePrefix("10.9.8.0/24"); got.Subnet != want {
					t.Errorf("Subnet = %s, want %s", got.Subnet, want)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			orig := tc.cfg
			got, err := tc.cfg.withDefaults()
			if tc.cfg != orig {
				t.Errorf("withDefaults modified its receiver: %+v", tc.cfg)
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("got error %v, want none", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
			}
			if tc.check != nil {
				tc.check(t, got)
			}
		})
	}
}

func TestOwnerPID(t *testing.T) {
	cases := []struct {
		name, prefix, ns string
		wantPID          int
		wantOK           bool
	}{
		{"host", "rtn", "rtn-1234-beef-3", 1234, true},
		{"bridge", "rtn", "rtn-1234-beef-br", 1234, true},
		{"probe", "rtn", "rtn-99-probe0a0b", 99, true},
		{"other prefix", "rtn", "rtnx-1234-beef-1", 0, false},
		{"no pid", "rtn", "rtn-abc-beef-1", 0, false},
		{"nothing after pid", "rtn", "rtn-1234", 0, false},
		{"zero pid", "rtn", "rtn-0-beef-1", 0, false},
		{"unrelated", "rtn", "docker-1234-x", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pid, ok := ownerPID(tc.prefix, tc.ns)
			if pid != tc.wantPID || ok != tc.wantOK {
				t.Errorf("ownerPID(%q, %q) = %d, %v; want %d, %v", tc.prefix, tc.ns, pid, ok, tc.wantPID, tc.wantOK)
			}
		})
	}
}

func TestInCI(t *testing.T) {
	for v, want := range map[string]bool{"true": true, "1": true, "TRUE": true, "": false, "false": false, "0": false, "yes": false} {
		if got := inCI(v); got != want {
			t.Errorf("inCI(%q) = %v, want %v", v, got, want)
		}
	}
}

// recordingTB records Require's verdict instead of ending the test.
type recordingTB struct {
	testing.TB
	skipped, failed string
}

func (r *recordingTB) Helper()                        {}
func (r *recordingTB) Skipf(format string, a ...any)  { r.skipped = fmt.Sprintf(format, a...) }
func (r *recordingTB) Fatalf(format string, a ...any) { r.failed = fmt.Sprintf(format, a...) }

func TestRequireSkipsLocallyAndFailsInCI(t *testing.T) {
	const missing = "testnet-no-such-tool"
	cases := []struct {
		ci                   string
		wantSkip, wantFailed bool
	}{
		{"", true, false},
		{"false", true, false},
		{"true", false, true},
	}
	for _, tc := range cases {
		t.Run("CI="+tc.ci, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			r := &recordingTB{TB: t}
			Require(r, missing)
			if got := r.skipped != ""; got != tc.wantSkip {
				t.Errorf("skipped = %v (%q), want %v", got, r.skipped, tc.wantSkip)
			}
			if got := r.failed != ""; got != tc.wantFailed {
				t.Errorf("failed = %v (%q), want %v", got, r.failed, tc.wantFailed)
			}
			if msg := r.skipped + r.failed; !strings.Contains(msg, missing) {
				t.Errorf("reason %q does not name the missing tool %s", msg, missing)
			}
		})
	}
}

func TestTailBuffer(t *testing.T) {
	b := newTailBuffer(8)
	for _, s := range []string{"abc", "defgh", "ijk"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if got, want := b.String(), "defghijk"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// TestRaiseNeighLimits: limits too low for the testbed are raised, higher ones kept.
func TestRaiseNeighLimits(t *testing.T) {
	dir := t.TempDir() + "/"
	old := neighSysctl
	neighSysctl = dir
	t.Cleanup(func() { neighSysctl = old })
	write := func(name, v string) {
		if err := os.WriteFile(dir+name, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	read := func(name string) string {
		b, err := os.ReadFile(dir + name)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	write("gc_thresh2", "512")
	write("gc_thresh3", "1024")
	if err := raiseNeighLimits(50); err != nil {
		t.Fatal(err)
	}
	if got2, got3 := read("gc_thresh2"), read("gc_thresh3"); got2 != "3524" || got3 != "7048" {
		t.Errorf("after 50 hosts: gc_thresh2=%s gc_thresh3=%s, want 3524 and 7048", got2, got3)
	}
	write("gc_thresh2", "100000")
	write("gc_thresh3", "200000")
	if err := raiseNeighLimits(50); err != nil {
		t.Fatal(err)
	}
	if got2, got3 := read("gc_thresh2"), read("gc_thresh3"); got2 != "100000" || got3 != "200000" {
		t.Errorf("higher limits changed: gc_thresh2=%s gc_thresh3=%s", got2, got3)
	}
	write("gc_thresh3", "lots")
	if err := raiseNeighLimits(50); err == nil || !strings.Contains(err.Error(), "gc_thresh3") {
		t.Errorf("unreadable limit: %v, want an error naming gc_thresh3", err)
	}
}
