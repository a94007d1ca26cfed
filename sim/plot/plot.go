// Package plot draws the simulator's three charts as self-contained SVG files an
// operator can open in a browser: the fraction of nodes that know a registration
// against time, the CDF of crash-detection times, and bytes per second per node
// against cluster size. It uses the standard library only (no plotting dependency in
// the module), so it is cheap to link; `rumor-sim` calls it.
//
// # Concurrency
//
// Functions are pure: they write to the writer they are given and keep no state.
package plot

import (
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/rumor-sd/rumor/sim/scenario"
)

// Series is one line of a chart.
type Series struct {
	Name   string
	Points [][2]float64 // (x, y), in order of x
}

// Chart is a line chart with linear or logarithmic x.
type Chart struct {
	Title, XLabel, YLabel string
	LogX                  bool
	Series                []Series
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"}

const (
	width, height          = 720.0, 440.0
	left, right, top, bott = 80.0, 200.0, 40.0, 60.0
)

// WriteSVG draws c. Empty series are skipped; a chart with no points says so.
func (c Chart) WriteSVG(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="24" font-size="15" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(c.Title))
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), 0.0, math.Inf(-1)
	for _, s := range c.Series {
		for _, p := range s.Points {
			x := p[0]
			if c.LogX {
				if x <= 0 {
					continue
				}
				x = math.Log10(x)
			}
			xmin, xmax = min(xmin, x), max(xmax, x)
			ymin, ymax = min(ymin, p[1]), max(ymax, p[1])
		}
	}
	pw, ph := width-left-right, height-top-bott
	if math.IsInf(xmin, 1) {
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f">no data</text></svg>`+"\n", left, top+ph/2)
		_, err := io.WriteString(w, b.String())
		return err
	}
	if xmax == xmin {
		xmax = xmin + 1
	}
	ymax = niceCeil(ymax)
	if ymax == ymin {
		ymax = ymin + 1
	}
	px := func(x float64) float64 {
		if c.LogX {
			x = math.Log10(x)
		}
		return left + (x-xmin)/(xmax-xmin)*pw
	}
	py := func(y float64) float64 { return top + ph - (y-ymin)/(ymax-ymin)*ph }
	// Axes, grid and ticks.
	fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#333"/>`+"\n", left, top, pw, ph)
	for i := 0; i <= 5; i++ {
		y := ymin + (ymax-ymin)*float64(i)/5
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n",
			left, left+pw, py(y), py(y), left-6, py(y)+4, num(y))
	}
	for _, x := range xTicks(xmin, xmax, c.LogX) {
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n",
			px(x), px(x), top, top+ph, px(x), top+ph+16, num(x))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", left+pw/2, height-16, html.EscapeString(c.XLabel))
	fmt.Fprintf(&b, `<text transform="translate(18 %.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", top+ph/2, html.EscapeString(c.YLabel))
	// Lines and legend.
	for i, s := range c.Series {
		if len(s.Points) == 0 {
			continue
		}
		col := palette[i%len(palette)]
		var pts []string
		for _, p := range s.Points {
			if c.LogX && p[0] <= 0 {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(p[0]), py(p[1])))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", col, strings.Join(pts, " "))
		if len(pts) <= 12 {
			for _, p := range pts {
				xy := strings.Split(p, ",")
				fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`, xy[0], xy[1], col)
			}
			b.WriteString("\n")
		}
		ly := top + 10 + float64(i)*18
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.0f" y2="%.0f" stroke="%s" stroke-width="3"/><text x="%.0f" y="%.0f">%s</text>`+"\n",
			left+pw+12, left+pw+32, ly, ly, col, left+pw+38, ly+4, html.EscapeString(s.Name))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*e >= v {
			return m * e
		}
	}
	return 10 * e
}

func xTicks(lo, hi float64, logX bool) []float64 {
	var out []float64
	if logX {
		for e := math.Floor(lo); e <= math.Ceil(hi); e++ {
			if e >= lo-1e-9 && e <= hi+1e-9 {
				out = append(out, math.Pow(10, e))
			}
		}
		return out
	}
	for i := 0; i <= 6; i++ {
		out = append(out, lo+(hi-lo)*float64(i)/6)
	}
	return out
}

func num(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case a >= 1e4:
		return fmt.Sprintf("%.3gk", v/1e3)
	case a == math.Trunc(a):
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.2g", v)
	}
}

func label(r *scenario.Report) string { return fmt.Sprintf("%s N=%d", r.Tier, r.Nodes) }

// Spread is the fraction of live nodes that know the first registration, against
// seconds since it was made, one line per report.
func Spread(title string, reports []scenario.Report) Chart {
	c := Chart{Title: title, XLabel: "seconds after the registration", YLabel: "fraction of nodes that know"}
	for i := range reports {
		r := &reports[i]
		if len(r.Curve) == 0 {
			continue
		}
		want := max(len(r.Curve), r.Nodes) // the curve holds only nodes that got it
		pts := [][2]float64{{0, 0}}
		for k, d := range r.Curve {
			pts = append(pts, [2]float64{d.Seconds(), float64(k+1) / float64(want)})
		}
		c.Series = append(c.Series, Series{Name: label(r), Points: pts})
	}
	return c
}

// DetectionCDF is the share of crashes seen by every live node within t, one line
// per report.
func DetectionCDF(title string, reports []scenario.Report) Chart {
	c := Chart{Title: title, XLabel: "seconds from crash to failed on every node", YLabel: "fraction of crashes"}
	for i := range reports {
		r := &reports[i]
		ds := slices.Clone(r.Detections)
		if len(ds) == 0 {
			continue
		}
		slices.Sort(ds)
		total := len(ds) + r.Undetected
		pts := [][2]float64{{ds[0].Seconds(), 0}}
		for k, d := range ds {
			pts = append(pts, [2]float64{d.Seconds(), float64(k+1) / float64(total)})
		}
		c.Series = append(c.Series, Series{Name: label(r), Points: pts})
	}
	return c
}

// Bandwidth is bytes per second per node against N (log scale), one line per tier.
func Bandwidth(title string, reports []scenario.Report) Chart {
	c := Chart{Title: title, XLabel: "nodes (log scale)", YLabel: "bytes/s sent per node", LogX: true}
	byTier := map[string][][2]float64{}
	var tiers []string
	for _, r := range reports {
		if _, ok := byTier[r.Tier]; !ok {
			tiers = append(tiers, r.Tier)
		}
		byTier[r.Tier] = append(byTier[r.Tier], [2]float64{float64(r.Nodes), r.BytesPerNodeSec})
	}
	for _, t := range tiers {
		pts := byTier[t]
		slices.SortFunc(pts, func(a, b [2]float64) int { return int(a[0] - b[0]) })
		c.Series = append(c.Series, Series{Name: t, Points: pts})
	}
	return c
}

// WriteAll writes the three charts of reports into dir as spread.svg,
// detection.svg and bandwidth.svg, prefixed with prefix, and returns their paths.
func WriteAll(dir, prefix string, reports []scenario.Report) ([]string, error) {
	charts := map[string]Chart{
		"spread.svg":    Spread(prefix+"a registration reaching the cluster", reports),
		"detection.svg": DetectionCDF(prefix+"crash detection", reports),
		"bandwidth.svg": Bandwidth(prefix+"traffic per node", reports),
	}
	var paths []string
	for _, name := range []string{"spread.svg", "detection.svg", "bandwidth.svg"} {
		base := strings.ReplaceAll(strings.TrimSpace(prefix), " ", "-")
		if base != "" {
			base += "-"
		}
		p := filepath.Join(dir, base+name)
		f, err := os.Create(p)
		if err != nil {
			return paths, fmt.Errorf("plot: %w", err)
		}
		err = charts[name].WriteSVG(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return paths, fmt.Errorf("plot: %s: %w", p, err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}
