package plot

import (
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rumor-sd/rumor/sim/scenario"
)

// The charts are well-formed SVG with one line per report and a legend naming it.
func TestWriteAll(t *testing.T) {
	reps := []scenario.Report{
		{Scenario: "s", Tier: "real", Nodes: 3, Curve: []time.Duration{0, time.Second, 2 * time.Second},
			Detections: []time.Duration{5 * time.Second, 7 * time.Second}, BytesPerNodeSec: 500},
		{Scenario: "s", Tier: "model", Nodes: 1000, Curve: []time.Duration{0, time.Second}, BytesPerNodeSec: 5000},
	}
	dir := t.TempDir()
	paths, err := WriteAll(dir, "s ", reps)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 3 || filepath.Base(paths[0]) != "s-spread.svg" {
		t.Fatalf("paths = %v", paths)
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		d := xml.NewDecoder(strings.NewReader(string(data)))
		lines := 0
		for {
			tok, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: not XML: %v", p, err)
			}
			if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
				lines++
			}
		}
		if lines == 0 {
			t.Errorf("%s: no lines", p)
		}
	}
	spread, _ := os.ReadFile(paths[0])
	if !strings.Contains(string(spread), "real N=3") || !strings.Contains(string(spread), "model N=1000") {
		t.Errorf("spread chart lacks its legend")
	}
}

func TestNoData(t *testing.T) {
	var b strings.Builder
	if err := (Chart{Title: "empty"}).WriteSVG(&b); err != nil || !strings.Contains(b.String(), "no data") {
		t.Errorf("empty chart: %v %q", err, b.String())
	}
}
