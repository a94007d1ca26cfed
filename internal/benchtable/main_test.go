package main

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	in := `goos: linux
BenchmarkMerge1M-2   	       3	1425055914 ns/op	    701727 records/s	610703608 B/op	  729596 allocs/op
BenchmarkQueryPassing/nodes=10000-2        	   45541	     22328 ns/op
BenchmarkHealthServicePassing/accept=gzip-2   	   60000	     41000 ns/op	    24390 req/s
PASS
`
	got, err := parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []result{
		{"BenchmarkMerge1M", "ns/op", 1425055914}, {"BenchmarkMerge1M", "records/s", 701727},
		{"BenchmarkMerge1M", "B/op", 610703608}, {"BenchmarkMerge1M", "allocs/op", 729596},
		{"BenchmarkQueryPassing/nodes=10000", "ns/op", 22328},
		{"BenchmarkHealthServicePassing/accept=gzip", "ns/op", 41000}, {"BenchmarkHealthServicePassing/accept=gzip", "req/s", 24390},
	}
	if len(got) != len(want) {
		t.Fatalf("parse = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("result %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if _, err := parse(strings.NewReader("BenchmarkX-2 1 abc ns/op\n")); err == nil {
		t.Error("parse accepted a non-numeric value")
	}
}

func TestHuman(t *testing.T) {
	for _, tt := range []struct {
		v    float64
		unit string
		want string
	}{
		{1.5e9, "ns/op", "1.50 s"}, {2.5e6, "ns/op", "2.50 ms"}, {22328, "ns/op", "22.3 µs"},
		{800, "ns/op", "800 ns"}, {916, "B/instance", "916 B/instance"},
	} {
		if got := human(tt.v, tt.unit); got != tt.want {
			t.Errorf("human(%v, %s) = %q, want %q", tt.v, tt.unit, got, tt.want)
		}
	}
}

func TestTargetMet(t *testing.T) {
	for _, tt := range []struct {
		t    target
		v    float64
		want bool
	}{
		{target{limit: 5}, 4.9, true}, {target{limit: 5}, 5, false},
		{target{limit: 20000, atLeast: true}, 20000, true}, {target{limit: 20000, atLeast: true}, 19999, false},
	} {
		if got := tt.t.met(tt.v); got != tt.want {
			t.Errorf("target{limit %v, atLeast %v}.met(%v) = %v, want %v", tt.t.limit, tt.t.atLeast, tt.v, got, tt.want)
		}
	}
}
