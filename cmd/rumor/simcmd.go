package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rumor-sd/rumor/sim"
)

func newSimCmd(c *cli) *cobra.Command {
	var (
		sizes        string
		jsonOut      bool
		lossWindow   time.Duration
		steadyWindow time.Duration
		trials       int

		scenarioFile, scenarioNodes, scenarioPlots, scenarioSet string
		scenarioReal                                            bool
	)
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Benchmark gossip: spread, failure detection, bandwidth and false failures at N nodes",
		Long: `Run N real gossip nodes in this process over a simulated network (memberlist's
LAN defaults, 10 services per node) and measure, for each N:

  - the time from a registration on one node until 50%, 99% and 100% of nodes see it
    (median over the trials, and the 99th percentile of the 100% time);
  - the time from a crash (kill -9) until every other node sees it failed, next to
    memberlist's suspicion bound for that size;
  - the bytes per second each node sends while nothing changes;
  - how many healthy nodes were declared failed under 10% packet loss.

It runs in real time: about two minutes per size with the default windows.`,
		Example: `  rumor sim                         # N = 10, 25, 50
  rumor sim --nodes 10 --loss-window 10s --steady-window 5s   # a quick look
  rumor sim --json > gossip-bench.json
  rumor sim --scenario sim/testdata/failure.txt --scenario-nodes 1000,10000,100000
  rumor sim --scenario sim/testdata/convergence.txt --scenario-nodes 20 --real`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if scenarioFile != "" {
				return runScenario(cmd.Context(), c, scenarioOpts{file: scenarioFile, sizes: scenarioNodes,
					real: scenarioReal, plots: scenarioPlots, set: scenarioSet, json: jsonOut})
			}
			var ns []int
			for _, s := range strings.Split(sizes, ",") {
				n, err := strconv.Atoi(strings.TrimSpace(s))
				if err != nil || n < 3 {
					return usagef("--nodes %q: want a comma-separated list of sizes, each at least 3", sizes)
				}
				ns = append(ns, n)
			}
			var results []sim.Result
			for _, n := range ns {
				res, err := sim.Run(cmd.Context(), sim.Config{Nodes: n, Registrations: trials,
					LossWindow: lossWindow, SteadyWindow: steadyWindow, Progress: c.stderr})
				if err != nil {
					return fmt.Errorf("sim at %d nodes: %w", n, err)
				}
				results = append(results, res)
			}
			if jsonOut {
				return printJSON(c.stdout, results)
			}
			return sim.WriteTable(c.stdout, results)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&sizes, "nodes", "10,25,50", "cluster sizes to run, comma-separated")
	fl.IntVar(&trials, "trials", 20, "registrations timed per size")
	fl.DurationVar(&steadyWindow, "steady-window", 20*time.Second, "how long idle bandwidth is measured")
	fl.DurationVar(&lossWindow, "loss-window", 60*time.Second, "how long 10% loss is applied while counting false failures")
	fl.BoolVar(&jsonOut, "json", false, "print JSON for scripts instead of a table")
	// Scenario runs (issue 14): the model at any size, or real nodes in real time.
	fl.StringVar(&scenarioFile, "scenario", "", "run this scenario script with the model (see sim/testdata/*.txt) instead of the benchmark")
	fl.StringVar(&scenarioNodes, "scenario-nodes", "", "with --scenario: cluster sizes, comma-separated (default: the script's)")
	fl.BoolVar(&scenarioReal, "real", false, "with --scenario: run real gossip nodes in real time instead of the model (small N: it takes one push-pull interval, 10 s at up to 32 nodes, to start, and then the scenario's duration)")
	fl.StringVar(&scenarioPlots, "plots", "", "with --scenario: write SVG plots into this directory")
	fl.StringVar(&scenarioSet, "set", "", "with --scenario: model parameters, comma-separated Name=value (e.g. EagerAllBelow=64,EagerFanout=4)")
	return cmd
}
