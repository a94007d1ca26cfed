package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// memberJSON is a member as `rumor members --json` prints it.
type memberJSON struct {
	Name       string `json:"name"`
	Address    string `json:"address"`
	Status     string `json:"status"`
	Datacenter string `json:"datacenter,omitempty"`
}

// consulMember is the part of Consul's AgentMember the CLI reads.
type consulMember struct {
	Name   string
	Addr   string
	Port   uint16
	Tags   map[string]string
	Status int
}

var memberStatusNames = map[int]string{1: "alive", 2: "leaving", 3: "left", 4: "failed"}

func newMembersCmd(c *cli) *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "members",
		Short: "List the nodes of the gossip pool",
		Long: `List the nodes of the gossip pool as the agent sees them: name, gossip address,
status (alive, left or failed; a suspect node shows as alive, as in Consul) and
datacenter.`,
		Example: `  rumor members
  rumor members --json | jq -r '.[] | select(.status == "failed") | .name'`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ms []consulMember
			if err := newClient(&f).do(cmd.Context(), http.MethodGet, "/v1/agent/members", nil, &ms); err != nil {
				return describe(err)
			}
			out := make([]memberJSON, 0, len(ms))
			for _, m := range ms {
				st := memberStatusNames[m.Status]
				if st == "" {
					st = "unknown(" + strconv.Itoa(m.Status) + ")"
				}
				out = append(out, memberJSON{Name: m.Name, Address: hostPort(m.Addr, m.Port), Status: st, Datacenter: m.Tags["dc"]})
			}
			if f.json {
				return printJSON(c.stdout, out)
			}
			rows := make([][]string, 0, len(out))
			for _, m := range out {
				rows = append(rows, []string{m.Name, m.Address, m.Status, m.Datacenter})
			}
			return table(c.stdout, []string{"NODE", "ADDRESS", "STATUS", "DC"}, rows)
		},
	}
	addClientFlags(c, cmd, &f)
	return cmd
}

func hostPort(addr string, port uint16) string {
	if strings.Contains(addr, ":") {
		return "[" + addr + "]:" + strconv.Itoa(int(port))
	}
	return addr + ":" + strconv.Itoa(int(port))
}

// agentService is the part of Consul's AgentService (GET /v1/agent/services) the
// CLI reads, in the API's field names.
type agentService struct {
	ID      string
	Service string // the name
	Address string
	Port    int
	Tags    []string
	Meta    map[string]string
}

// localService is one line of `rumor services --local --json`. It is a type of its
// own: decoding the API's "Service" into a field tagged "name" left it empty.
type localService struct {
	ID      string            `json:"id"`
	Name    string            `json:"name"`
	Address string            `json:"address,omitempty"`
	Port    int               `json:"port"`
	Tags    []string          `json:"tags"`
	Meta    map[string]string `json:"meta,omitempty"`
}

func newServicesCmd(c *cli) *cobra.Command {
	var f clientFlags
	var tags []string
	var local, passing bool
	cmd := &cobra.Command{
		Use:   "services",
		Short: "List the services in the catalog",
		Long: `List every service name in the catalog with the tags its instances carry, or,
with --local, the services registered on this agent with their IDs and ports.
--tag keeps the services (or local instances) that carry every tag given;
--passing keeps the services with at least one instance (carrying those tags)
whose every check passes.`,
		Example: `  rumor services
  rumor services --tag v1 --tag primary
  rumor services --passing          # services a client can use now
  rumor services --local            # IDs to pass to 'rumor deregister'
  rumor services --json | jq -r 'keys[]'`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl := newClient(&f)
			if local && passing {
				return usagef("--passing applies to the catalog listing, not to --local")
			}
			if local {
				var svcs map[string]agentService
				if err := cl.do(cmd.Context(), http.MethodGet, "/v1/agent/services", nil, &svcs); err != nil {
					return describe(err)
				}
				out := []localService{}
				for _, id := range sortedKeys(svcs) {
					s := svcs[id]
					if s.Tags == nil {
						s.Tags = []string{}
					}
					if hasAll(s.Tags, tags) {
						out = append(out, localService{ID: s.ID, Name: s.Service, Address: s.Address, Port: s.Port, Tags: s.Tags, Meta: s.Meta})
					}
				}
				if f.json {
					return printJSON(c.stdout, out)
				}
				rows := make([][]string, 0, len(out))
				for _, s := range out {
					rows = append(rows, []string{s.ID, s.Name, s.Address, strconv.Itoa(s.Port), strings.Join(s.Tags, ",")})
				}
				return table(c.stdout, []string{"ID", "SERVICE", "ADDRESS", "PORT", "TAGS"}, rows)
			}
			var svcs map[string][]string
			if err := cl.do(cmd.Context(), http.MethodGet, "/v1/catalog/services", nil, &svcs); err != nil {
				return describe(err)
			}
			out := map[string][]string{}
			for name, t := range svcs {
				if t == nil {
					t = []string{}
				}
				if hasAll(t, tags) {
					out[name] = t
				}
			}
			if passing {
				if err := keepPassing(cmd.Context(), cl, out, tags); err != nil {
					return err
				}
			}
			if f.json {
				return printJSON(c.stdout, out)
			}
			rows := make([][]string, 0, len(out))
			for _, name := range sortedKeys(out) {
				rows = append(rows, []string{name, strings.Join(out[name], ",")})
			}
			if err := table(c.stdout, []string{"SERVICE", "TAGS"}, rows); err != nil {
				return err
			}
			// Where instances went (forward pointers, 'rumor moves'); --json keeps its
			// shape, and an agent without moves prints none.
			ms, err := cl.moves(cmd.Context(), "")
			if err != nil {
				return nil
			}
			return printMoved(c.stdout, ms)
		},
	}
	cmd.Flags().StringArrayVar(&tags, "tag", nil, "keep services carrying this tag (repeatable: all must match)")
	cmd.Flags().BoolVar(&local, "local", false, "list the services registered on this agent, with IDs")
	cmd.Flags().BoolVar(&passing, "passing", false, "keep services with at least one instance whose every check passes")
	addClientFlags(c, cmd, &f)
	return cmd
}

func hasAll(have, want []string) bool {
	for _, t := range want {
		if !slices.Contains(have, t) {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func newDeregisterCmd(c *cli) *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "deregister <service-id>",
		Short: "Remove a service from the agent",
		Long: `Remove a service registered on the agent this CLI talks to, by ID (the name,
unless it was registered with --id). The removal reaches the whole pool.`,
		Example: `  rumor deregister web
  rumor services --local    # to find IDs`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			id := a[0]
			err := newClient(&f).do(cmd.Context(), http.MethodPut, "/v1/agent/service/deregister/"+url.PathEscape(id), nil, nil)
			var ae *apiError
			if errors.As(err, &ae) && ae.status == http.StatusNotFound {
				return fmt.Errorf("no service with ID %q on the agent at %s: 'rumor services --local' lists the IDs", id, f.httpAddr)
			}
			if err != nil {
				return describe(err)
			}
			if f.json {
				return printJSON(c.stdout, map[string]string{"deregistered": id})
			}
			fmt.Fprintf(c.stdout, "Deregistered service %s.\n", id)
			return nil
		},
	}
	addClientFlags(c, cmd, &f)
	return cmd
}

// describe words an agent's error answer for the terminal.
func describe(err error) error {
	var ae *apiError
	if errors.As(err, &ae) {
		return fmt.Errorf("the agent answered %d %s: %s", ae.status, http.StatusText(ae.status), ae.msg)
	}
	return err
}
