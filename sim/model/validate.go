package model

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/rumor-sd/rumor/sim/scenario"
)

// Errors is the model's relative error against tier 1 on one scenario and size:
// (model − real) / real for each measurement both have (NaN where either lacks it).
type Errors struct {
	Scenario string
	Nodes    int
	Reg50    float64
	Reg99    float64
	Reg100   float64
	Detect   float64 // median detection time
	Bytes    float64 // bytes per second per node
}

// Worst is the largest absolute error of the medians — time to reach half the
// nodes, and crash detection by all — or NaN if there is none. The tails (99 %,
// 100 %), which move in 5 ms steps of the eager path's coalescing window, and bytes
// are bounded separately (sim's TestModelValidation).
func (e Errors) Worst() float64 {
	w := math.NaN()
	for _, v := range []float64{e.Reg50, e.Detect} {
		if !math.IsNaN(v) && (math.IsNaN(w) || math.Abs(v) > w) {
			w = math.Abs(v)
		}
	}
	return w
}

// String is e.g. "N=100: reg 99% +4%, detect -7%, bytes +12%".
func (e Errors) String() string {
	var parts []string
	add := func(name string, v float64) {
		if !math.IsNaN(v) {
			parts = append(parts, fmt.Sprintf("%s %+.0f%%", name, 100*v))
		}
	}
	add("reg 50%", e.Reg50)
	add("reg 99%", e.Reg99)
	add("reg 100%", e.Reg100)
	add("detect", e.Detect)
	add("bytes", e.Bytes)
	if len(parts) == 0 {
		return fmt.Sprintf("N=%d: nothing to compare", e.Nodes)
	}
	return fmt.Sprintf("N=%d: %s", e.Nodes, strings.Join(parts, ", "))
}

// Compare computes the model's errors against a tier-1 report of the same scenario.
func Compare(model, real scenario.Report) Errors {
	rel := func(m, r float64) float64 {
		if m == 0 || r == 0 {
			return math.NaN()
		}
		return (m - r) / r
	}
	m50, m99, m100 := model.Reg()
	r50, r99, r100 := real.Reg()
	d := func(x time.Duration) float64 { return float64(x) }
	return Errors{Scenario: model.Scenario, Nodes: model.Nodes,
		Reg50: rel(d(m50), d(r50)), Reg99: rel(d(m99), d(r99)), Reg100: rel(d(m100), d(r100)),
		Detect: rel(d(scenario.Percentile(model.Detections, 50)), d(scenario.Percentile(real.Detections, 50))),
		Bytes:  rel(model.BytesPerNodeSec, real.BytesPerNodeSec)}
}

// Set assigns one parameter from "Name=value" (a field of Params: durations like
// 200ms, integers, floats, true/false).
func (p *Params) Set(kv string) error {
	name, val, ok := strings.Cut(kv, "=")
	if !ok {
		return fmt.Errorf("model: parameter %q: want Name=value", kv)
	}
	f := reflect.ValueOf(p).Elem().FieldByName(name)
	if !f.IsValid() {
		return fmt.Errorf("model: no parameter %q (see model.Params)", name)
	}
	var err error
	switch f.Interface().(type) {
	case time.Duration:
		var d time.Duration
		if d, err = time.ParseDuration(val); err == nil && d >= 0 {
			f.SetInt(int64(d))
		}
	case int:
		var n int
		if n, err = strconv.Atoi(val); err == nil && n >= 0 {
			f.SetInt(int64(n))
		}
	case float64:
		var x float64
		if x, err = strconv.ParseFloat(val, 64); err == nil && x >= 0 {
			f.SetFloat(x)
		}
	case bool:
		var b bool
		if b, err = strconv.ParseBool(val); err == nil {
			f.SetBool(b)
		}
	}
	if err != nil || strings.HasPrefix(val, "-") {
		return fmt.Errorf("model: parameter %s: %q is not a valid non-negative %s", name, val, f.Type())
	}
	return nil
}
