package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rumor-sd/rumor/sim"
	"github.com/rumor-sd/rumor/sim/model"
	"github.com/rumor-sd/rumor/sim/plot"
	"github.com/rumor-sd/rumor/sim/scenario"
)

type scenarioOpts struct {
	file, sizes, plots, set string
	real, json              bool
}

// runScenario is `rumor sim --scenario F`: the model (or, with --real, real gossip
// nodes in real time) over a scenario script, with a progress bar on stderr, the
// report table (or JSON) on stdout and optional SVG plots.
func runScenario(ctx context.Context, c *cli, o scenarioOpts) error {
	sc, err := scenario.Load(o.file)
	if err != nil {
		return usagef("--scenario: %v", err)
	}
	p := model.DefaultParams()
	if o.set != "" {
		for _, kv := range strings.Split(o.set, ",") {
			if err := p.Set(strings.TrimSpace(kv)); err != nil {
				return usagef("--set: %v", err)
			}
		}
	}
	sizes := []int{sc.Nodes}
	if o.sizes != "" {
		sizes = nil
		for _, f := range strings.Split(o.sizes, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 3 {
				return usagef("--scenario-nodes %q: want comma-separated sizes, each at least 3", o.sizes)
			}
			sizes = append(sizes, n)
		}
	}
	var reports []scenario.Report
	for _, n := range sizes {
		sc.Nodes = n
		start := time.Now()
		var rep scenario.Report
		if o.real {
			fmt.Fprintf(c.stderr, "real nodes: %s at N=%d for %s (real time)\n", sc.Name, n, sc.Duration)
			rep, err = sim.RunReal(ctx, sc, sim.RealOptions{Progress: c.stderr})
		} else {
			rep, err = model.RunProgress(sc, p, func(done float64) {
				bar := int(done * 30)
				fmt.Fprintf(c.stderr, "\rmodel %s N=%d [%s%s] %3.0f%%", sc.Name, n,
					strings.Repeat("#", bar), strings.Repeat(" ", 30-bar), 100*done)
			})
			fmt.Fprintln(c.stderr)
		}
		if err != nil {
			return fmt.Errorf("sim %s at %d nodes: %w", sc.Name, n, err)
		}
		rep.Wall = time.Since(start)
		reports = append(reports, rep)
	}
	if o.plots != "" {
		paths, err := plot.WriteAll(o.plots, sc.Name+" ", reports)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stderr, "wrote %s\n", strings.Join(paths, ", "))
	}
	if o.json {
		return printJSON(c.stdout, reports)
	}
	return scenario.WriteTable(c.stdout, reports)
}
