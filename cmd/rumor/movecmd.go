package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/rumor-sd/rumor/httpapi"
)

// moves reads the forward pointers the agent knows, of one service or ("") all.
func (c *client) moves(ctx context.Context, service string) ([]httpapi.MoveEntry, error) {
	path := "/v1/rumor/moves"
	if service != "" {
		path += "?service=" + url.QueryEscape(service)
	}
	var out []httpapi.MoveEntry
	if err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, describe(err)
	}
	return out, nil
}

// printMoved writes a "moved" section under a listing: where instances went.
func printMoved(w io.Writer, ms []httpapi.MoveEntry) error {
	if len(ms) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	rows := make([][]string, 0, len(ms))
	for _, m := range ms {
		rows = append(rows, []string{m.Service, m.From + "/" + m.ServiceID, m.To + "/" + m.ToServiceID, m.At, m.Until})
	}
	return table(w, []string{"MOVED", "FROM", "TO", "AT", "UNTIL"}, rows)
}

func newServiceMoveCmd(c *cli) *cobra.Command {
	var f clientFlags
	var to, toID string
	cmd := &cobra.Command{
		Use:   "move <service-id> --to <node>",
		Short: "Move a service instance of this agent to another node, leaving a pointer",
		Long: `Tell the pool that the service instance <service-id> registered on the agent this
CLI talks to now runs on node --to (as --to-id, by default the same ID). The
agent deregisters the instance here (if it is still registered) and publishes a
forward pointer "moved to <node>", which every agent then shows:

  - 'rumor services', 'rumor service <name>' and 'rumor moves' list it;
  - GET /v1/rumor/moves lists it, and /v1/rumor/watch sends a "moved" event;
  - DNS answers the old instance name <service-id>-<this node>._<service>._tcp.consul
    with a CNAME to the new one, plus the new instance's SRV and TXT records;
  - local proxies send new connections to the new location at once.

Register the instance on the new node first (rumor register there), then move
it here, so clients never find it nowhere. A move is also detected without
this command: when an instance is deregistered and the same service ID and name
appears on another node within the agent's move window (10 minutes).

The pointer is kept for the agent's move retention (72 hours) and deleted when
the instance registers here again. If the instance moves on (B to C), this
node's pointer is rewritten to C: a chain is always one hop.

(A service named "move" is shown with 'rumor service -- move'.)`,
		Example: `  rumor register --id web-1 --name web --port 8080 --http-addr nodeB:8500
  rumor service move web-1 --to nodeB
  rumor service move web-1 --to nodeC --to-id web-c1 --json`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if to == "" {
				return usagef("--to is required: name the node the service moved to ('rumor members' lists them)")
			}
			id := a[0]
			q := url.Values{"to": {to}}
			if toID != "" {
				q.Set("to-id", toID)
			}
			var m httpapi.MoveEntry
			err := newClient(&f).do(cmd.Context(), http.MethodPut, "/v1/rumor/service/move/"+url.PathEscape(id)+"?"+q.Encode(), nil, &m)
			var ae *apiError
			if errors.As(err, &ae) && ae.status == http.StatusNotFound {
				return fmt.Errorf("no service with ID %q on the agent at %s, and no pointer for it: 'rumor services --local' lists the IDs", id, f.httpAddr)
			}
			if err != nil {
				return describe(err)
			}
			if f.json {
				return printJSON(c.stdout, m)
			}
			fmt.Fprintf(c.stdout, "Moved service %s (%s) from %s to %s/%s; the pointer is kept until %s.\n",
				id, m.Service, m.From, m.To, m.ToServiceID, m.Until)
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the node the instance now runs on (required)")
	cmd.Flags().StringVar(&toID, "to-id", "", "its service ID there (default: the same ID)")
	addClientFlags(c, cmd, &f)
	return cmd
}

func newMovesCmd(c *cli) *cobra.Command {
	var f clientFlags
	var service string
	cmd := &cobra.Command{
		Use:   "moves",
		Short: "List the service instances that moved to another node",
		Long: `List the forward pointers the agent knows: each service instance that moved
from one node to another (detected, or told with 'rumor service move'), where
it went, when, and until when the old node keeps the pointer. --service keeps
one service's.`,
		Example: `  rumor moves
  rumor moves --service web --json`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ms, err := newClient(&f).moves(cmd.Context(), service)
			if err != nil {
				return err
			}
			if f.json {
				if ms == nil {
					ms = []httpapi.MoveEntry{}
				}
				return printJSON(c.stdout, ms)
			}
			if len(ms) == 0 {
				fmt.Fprintln(c.stdout, "No service instance moved.")
				return nil
			}
			rows := make([][]string, 0, len(ms))
			for _, m := range ms {
				how := "detected"
				if m.Explicit {
					how = "explicit"
				}
				rows = append(rows, []string{m.Service, m.From + "/" + m.ServiceID, m.To + "/" + m.ToServiceID, how, m.At, m.Until})
			}
			return table(c.stdout, []string{"SERVICE", "FROM", "TO", "HOW", "AT", "UNTIL"}, rows)
		},
	}
	cmd.Flags().StringVar(&service, "service", "", "only this service's pointers")
	addClientFlags(c, cmd, &f)
	return cmd
}
