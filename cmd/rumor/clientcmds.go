package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
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

// localService is the part of Consul's AgentService the CLI reads.
type localService struct {
	ID      string            `json:"id"`
	Service string            `json:"name"`
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
				var svcs map[string]localService
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
						out = append(out, s)
					}
				}
				if f.json {
					return printJSON(c.stdout, out)
				}
				rows := make([][]string, 0, len(out))
				for _, s := range out {
					rows = append(rows, []string{s.ID, s.Service, s.Address, strconv.Itoa(s.Port), strings.Join(s.Tags, ",")})
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
			return table(c.stdout, []string{"SERVICE", "TAGS"}, rows)
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

// registered is one registration as `rumor register --json` reports it.
type registered struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

func newRegisterCmd(c *cli) *cobra.Command {
	var f clientFlags
	var (
		name, id, address, file string
		port                    int
		tags, meta              []string
	)
	cmd := &cobra.Command{
		Use:   "register",
		Short: "Register a service on the agent",
		Long: `Register a service on the agent this CLI talks to. The agent saves it (it
survives restarts) and announces it to the whole pool. Registering an existing
ID replaces it.

Give the service with flags, or with -f a JSON file in Consul's service
definition format: {"service": {...}}, {"services": [...]}, or one bare
registration object as PUT /v1/agent/service/register takes ("-" reads stdin).
Check definitions in the file are stored and run by the agent (http, tcp, grpc,
ttl, and script checks if the agent runs with --enable-script-checks); a check
starts at its initial status, critical by default.`,
		Example: `  rumor register --name web --port 80 --tag v1
  rumor register --name web --id web-2 --port 8080 --address 10.0.0.7 --meta version=2
  rumor register -f web.json
  echo '{"service": {"name": "db", "port": 5432}}' | rumor register -f -`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var bodies [][]byte
			switch {
			case file != "" && (name != "" || id != "" || address != "" || port != 0 || len(tags) > 0 || len(meta) > 0):
				return usagef("give the service either with -f or with flags, not both")
			case file != "":
				b, err := readFile(c, cmd, file)
				if err != nil {
					return err
				}
				if bodies, err = splitDefinitions(b); err != nil {
					return usagef("%s: %v", file, err)
				}
			case name == "":
				return usagef("--name is required (or give a definition file with -f)")
			default:
				reg := map[string]any{"Name": name}
				if id != "" {
					reg["ID"] = id
				}
				if address != "" {
					reg["Address"] = address
				}
				if port != 0 {
					reg["Port"] = port
				}
				if len(tags) > 0 {
					reg["Tags"] = tags
				}
				if len(meta) > 0 {
					m := map[string]string{}
					for _, kv := range meta {
						k, v, ok := strings.Cut(kv, "=")
						if !ok || k == "" {
							return usagef("--meta %q: want key=value", kv)
						}
						m[k] = v
					}
					reg["Meta"] = m
				}
				b, err := json.Marshal(reg)
				if err != nil {
					return err
				}
				bodies = [][]byte{b}
			}
			cl := newClient(&f)
			var done []registered
			for _, b := range bodies {
				r := identify(b)
				if err := cl.do(cmd.Context(), http.MethodPut, "/v1/agent/service/register", b, nil); err != nil {
					var ae *apiError
					if errors.As(err, &ae) && ae.status == http.StatusBadRequest {
						return fmt.Errorf("the agent refused service %q: %s", r.Name, ae.msg)
					}
					return describe(err)
				}
				done = append(done, r)
			}
			if f.json {
				return printJSON(c.stdout, done)
			}
			for _, r := range done {
				fmt.Fprintf(c.stdout, "Registered service %s (ID %s).\n", r.Name, r.ID)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&name, "name", "", "service name, what consumers look up")
	fl.StringVar(&id, "id", "", "instance ID, unique on this node (default: the name)")
	fl.IntVar(&port, "port", 0, "service port")
	fl.StringVar(&address, "address", "", "service address (default: the node's address)")
	fl.StringArrayVar(&tags, "tag", nil, "tag (repeatable)")
	fl.StringArrayVar(&meta, "meta", nil, "metadata key=value (repeatable)")
	fl.StringVarP(&file, "file", "f", "", "JSON service definition file, or - for stdin")
	addClientFlags(c, cmd, &f)
	return cmd
}

// readFile reads a definition file, "-" meaning stdin.
func readFile(c *cli, cmd *cobra.Command, path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(cmd.InOrStdin())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usageErr(err)
	}
	return b, nil
}

// splitDefinitions turns a definition file into one registration body per service:
// {"service": {...}}, {"services": [...]} or a bare registration object.
func splitDefinitions(b []byte) ([][]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	var svc, svcs json.RawMessage
	for k, v := range top {
		switch strings.ToLower(k) {
		case "service":
			svc = v
		case "services":
			svcs = v
		}
	}
	switch {
	case svc != nil && svcs != nil:
		return nil, errors.New(`give "service" or "services", not both`)
	case svc != nil:
		return [][]byte{svc}, nil
	case svcs != nil:
		var list []json.RawMessage
		if err := json.Unmarshal(svcs, &list); err != nil {
			return nil, fmt.Errorf(`"services" must be a list of service objects: %w`, err)
		}
		if len(list) == 0 {
			return nil, errors.New(`"services" is empty`)
		}
		return slicesOf(list), nil
	}
	return [][]byte{bytes.TrimSpace(b)}, nil
}

func slicesOf(list []json.RawMessage) [][]byte {
	out := make([][]byte, len(list))
	for i, r := range list {
		out[i] = r
	}
	return out
}

// identify finds a registration's name and ID (the name if no ID) for messages.
func identify(b []byte) registered {
	var m map[string]json.RawMessage
	_ = json.Unmarshal(b, &m) // a malformed body is reported by the agent
	var r registered
	for k, v := range m {
		var s string
		if json.Unmarshal(v, &s) != nil {
			continue
		}
		switch strings.ToLower(k) {
		case "name":
			r.Name = s
		case "id":
			r.ID = s
		}
	}
	if r.ID == "" {
		r.ID = r.Name
	}
	return r
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
