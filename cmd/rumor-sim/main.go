// Command rumor-sim runs the simulator's model (package sim/model) over scenario
// scripts at any cluster size, prints the report table with the model's validation
// error against tier 1 (real gossip code, run by `go test ./sim -run TestReal`) at the
// sizes both can run, and draws the plots as SVG.
//
//	rumor-sim -nodes 1000,10000,100000 sim/testdata/failure.txt
//	rumor-sim -validate real.json -plots docs/sim sim/testdata/*.txt
//	rumor-sim -set EagerAllBelow=64,EagerFanout=4 sim/testdata/convergence.txt
//
// It is a separate command so that the plots stay out of the agent binary's code
// paths; `rumor sim --scenario F` runs the same model.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/rumor-sd/rumor/sim/model"
	"github.com/rumor-sd/rumor/sim/plot"
	"github.com/rumor-sd/rumor/sim/scenario"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "rumor-sim:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("rumor-sim", flag.ContinueOnError)
	fl.SetOutput(stderr)
	nodes := fl.String("nodes", "", "cluster sizes, comma-separated (default: each scenario's own)")
	seed := fl.Uint64("seed", 0, "override every scenario's seed")
	set := fl.String("set", "", "model parameters, comma-separated Name=value (fields of model.Params)")
	validate := fl.String("validate", "", "tier-1 reports as JSON (go test ./sim -run TestReal -sim.json FILE) to compare against")
	plots := fl.String("plots", "", "write SVG plots into this directory")
	jsonOut := fl.Bool("json", false, "print the reports as JSON instead of a table")
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: rumor-sim [flags] scenario.txt...")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() == 0 {
		fl.Usage()
		return fmt.Errorf("no scenario files given")
	}
	p := model.DefaultParams()
	if *set != "" {
		for _, kv := range strings.Split(*set, ",") {
			if err := p.Set(strings.TrimSpace(kv)); err != nil {
				return err
			}
		}
	}
	sizes, err := parseSizes(*nodes)
	if err != nil {
		return err
	}
	var real []scenario.Report
	if *validate != "" {
		data, err := os.ReadFile(*validate)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(data, &real); err != nil {
			return fmt.Errorf("%s: not a JSON list of reports: %w", *validate, err)
		}
	}
	var reports []scenario.Report
	var validation []string
	for _, f := range fl.Args() {
		sc, err := scenario.Load(f)
		if err != nil {
			return err
		}
		if *seed != 0 {
			sc.Seed = *seed
		}
		// The model's error against every tier-1 report of this scenario.
		var errs []string
		for _, rr := range real {
			if rr.Scenario != sc.Name {
				continue
			}
			at := sc
			at.Nodes, at.Seed = rr.Nodes, rr.Seed
			m, err := model.Run(at, p)
			if err != nil {
				return err
			}
			errs = append(errs, model.Compare(m, rr).String())
		}
		if len(real) > 0 {
			if len(errs) == 0 {
				errs = []string{"no tier-1 report"}
			}
			validation = append(validation, fmt.Sprintf("  %s: %s", sc.Name, strings.Join(errs, "; ")))
		}
		ns := sizes
		if len(ns) == 0 {
			ns = []int{sc.Nodes}
		}
		for _, n := range ns {
			if err := ctx.Err(); err != nil {
				return err
			}
			sc.Nodes = n
			fmt.Fprintf(stderr, "model: %s at N=%d ...", sc.Name, n)
			start := time.Now()
			rep, err := model.Run(sc, p)
			if err != nil {
				return err
			}
			rep.Wall = time.Since(start)
			fmt.Fprintf(stderr, " %s\n", rep.Wall.Round(time.Millisecond))
			reports = append(reports, rep)
		}
	}
	if *plots != "" {
		if err := os.MkdirAll(*plots, 0o755); err != nil {
			return err
		}
		byScenario := map[string][]scenario.Report{}
		var order []string
		for _, r := range append(append([]scenario.Report(nil), real...), reports...) {
			if _, ok := byScenario[r.Scenario]; !ok {
				order = append(order, r.Scenario)
			}
			byScenario[r.Scenario] = append(byScenario[r.Scenario], r)
		}
		for _, s := range order {
			paths, err := plot.WriteAll(*plots, s+" ", byScenario[s])
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr, "wrote %s\n", strings.Join(paths, ", "))
		}
	}
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(reports)
	}
	if err := scenario.WriteTable(stdout, reports); err != nil {
		return err
	}
	if len(validation) > 0 {
		fmt.Fprintf(stdout, "\nmodel error against tier 1, (model − real) / real at the same scenario and N:\n%s\n",
			strings.Join(validation, "\n"))
	}
	return nil
}

func parseSizes(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 3 {
			return nil, fmt.Errorf("-nodes %q: want comma-separated sizes, each at least 3", s)
		}
		out = append(out, n)
	}
	return out, nil
}
