package sim

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// WriteTable prints results as the human table of `rumor sim` and `sim/netbench`, one
// row per cluster size.
func WriteTable(w io.Writer, results []Result) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "nodes\tconverge\tvisible 50%\t99%\t100%\t100% p99\tcrash → failed on all\tsuspicion bound\tidle B/s/node\tfalse failures (10% loss)")
	for _, r := range results {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%d\n", r.Nodes, ms(r.Converge), ms(r.Visible50), ms(r.Visible99),
			ms(r.Visible100), ms(r.Visible100P99), ms(r.Detect), ms(r.SuspicionBound), r.BytesPerNodePerSec, r.FalseFailures)
	}
	return tw.Flush()
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }
