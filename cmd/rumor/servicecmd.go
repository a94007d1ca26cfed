package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// healthEntry is the part of Consul's ServiceEntry (GET /v1/health/service) the CLI reads.
type healthEntry struct {
	Node struct {
		Node    string
		Address string
	}
	Service struct {
		ID      string
		Service string
		Tags    []string
		Address string
		Port    int
	}
	Checks []struct {
		CheckID string
		Name    string
		Status  string
		Output  string
	}
}

// instanceJSON is one instance as `rumor service --json` prints it.
type instanceJSON struct {
	Node    string      `json:"node"`
	ID      string      `json:"id"`
	Address string      `json:"address"`
	Port    int         `json:"port"`
	Tags    []string    `json:"tags"`
	Status  string      `json:"status"`
	Checks  []checkJSON `json:"checks"`
}

// checkJSON is one check of an instance.
type checkJSON struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
	Output string `json:"output,omitempty"`
}

// aggregateStatus is the worst status among checks, as Consul's AggregatedStatus
// ranks them: maintenance, critical, warning, passing.
func aggregateStatus(statuses []string) string {
	rank := map[string]int{"passing": 0, "warning": 1, "critical": 2, "maintenance": 3}
	worst := "passing"
	for _, s := range statuses {
		r, ok := rank[s]
		if !ok {
			return "critical" // an unknown status is not a healthy one
		}
		if r > rank[worst] {
			worst = s
		}
	}
	return worst
}

func (e *healthEntry) toJSON() instanceJSON {
	addr := e.Service.Address
	if addr == "" {
		addr = e.Node.Address
	}
	out := instanceJSON{Node: e.Node.Node, ID: e.Service.ID, Address: addr, Port: e.Service.Port,
		Tags: e.Service.Tags, Checks: []checkJSON{}}
	if out.Tags == nil {
		out.Tags = []string{}
	}
	var statuses []string
	for _, c := range e.Checks {
		out.Checks = append(out.Checks, checkJSON{ID: c.CheckID, Name: c.Name, Status: c.Status, Output: strings.TrimSpace(c.Output)})
		statuses = append(statuses, c.Status)
	}
	out.Status = aggregateStatus(statuses)
	return out
}

// healthQuery is the query string of a health read with the given filters.
func healthQuery(tags []string, passing bool) url.Values {
	q := url.Values{}
	for _, t := range tags {
		q.Add("tag", t)
	}
	if passing {
		q.Set("passing", "")
	}
	return q
}

// instances reads the instances of a service with their health.
func (c *client) instances(ctx context.Context, name string, tags []string, passing bool) ([]instanceJSON, error) {
	path := "/v1/health/service/" + url.PathEscape(name)
	if q := healthQuery(tags, passing).Encode(); q != "" {
		path += "?" + q
	}
	var entries []healthEntry
	if err := c.do(ctx, http.MethodGet, path, nil, &entries); err != nil {
		return nil, describe(err)
	}
	out := make([]instanceJSON, 0, len(entries))
	for i := range entries {
		out = append(out, entries[i].toJSON())
	}
	return out, nil
}

func newServiceCmd(c *cli) *cobra.Command {
	var f clientFlags
	var tags []string
	var passing bool
	cmd := &cobra.Command{
		Use:   "service <name>",
		Short: "Show the instances of a service with their health",
		Long: `Show every instance of a service in the catalog, on any node: the node, the
address and port to connect to, its tags, its status (the worst of its checks:
maintenance, critical, warning or passing) and each check.

--passing keeps the instances whose every check passes (the ones a client
should use); --tag keeps those carrying every tag given. The command exits 1
when no instance matches, so scripts can test for one:

  rumor service db --passing >/dev/null || echo "no healthy db"`,
		Example: `  rumor service web
  rumor service web --passing --tag v1
  rumor service web --json | jq -r '.[] | "\(.address):\(.port)"'`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			insts, err := newClient(&f).instances(cmd.Context(), a[0], tags, passing)
			if err != nil {
				return err
			}
			if f.json {
				if err := printJSON(c.stdout, insts); err != nil {
					return err
				}
			} else if len(insts) > 0 {
				rows := make([][]string, 0, len(insts))
				for _, in := range insts {
					var checks []string
					for _, ch := range in.Checks {
						checks = append(checks, ch.ID+"="+ch.Status)
					}
					rows = append(rows, []string{in.Node, in.ID, hostPortInt(in.Address, in.Port),
						strings.Join(in.Tags, ","), in.Status, strings.Join(checks, ",")})
				}
				if err := table(c.stdout, []string{"NODE", "ID", "ADDRESS", "TAGS", "STATUS", "CHECKS"}, rows); err != nil {
					return err
				}
				// Where instances of it went (forward pointers); --json keeps its shape.
				if ms, err := newClient(&f).moves(cmd.Context(), a[0]); err == nil {
					if err := printMoved(c.stdout, ms); err != nil {
						return err
					}
				}
			}
			if len(insts) == 0 {
				what := "instances"
				if passing {
					what = "passing instances"
				}
				if len(tags) > 0 {
					what += " tagged " + strings.Join(tags, ",")
				}
				return fmt.Errorf("no %s of service %q ('rumor services' lists the services)", what, a[0])
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&tags, "tag", nil, "keep instances carrying this tag (repeatable: all must match)")
	cmd.Flags().BoolVar(&passing, "passing", false, "keep instances whose every check passes")
	addClientFlags(c, cmd, &f)
	cmd.AddCommand(newServiceMoveCmd(c))
	return cmd
}

// hostPortInt formats an address and port; IPv6 addresses get brackets.
func hostPortInt(addr string, port int) string {
	if port == 0 {
		return addr
	}
	if strings.Contains(addr, ":") {
		return "[" + addr + "]:" + strconv.Itoa(port)
	}
	return addr + ":" + strconv.Itoa(port)
}

// keepPassing removes from svcs the services without a passing instance carrying
// tags, asking the agent about each (the catalog listing carries no health).
func keepPassing(ctx context.Context, cl *client, svcs map[string][]string, tags []string) error {
	for name := range svcs {
		insts, err := cl.instances(ctx, name, tags, true)
		if err != nil {
			return err
		}
		if len(insts) == 0 {
			delete(svcs, name)
		}
	}
	return nil
}
