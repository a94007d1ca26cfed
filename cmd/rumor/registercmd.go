package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rumor-sd/rumor/config"
)

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

Give the service with flags, or with -f a file in Consul's service definition
format: JSON ({"service": {...}}, {"services": [...]}, or one bare registration
object as PUT /v1/agent/service/register takes), or HCL (a *.hcl file, or stdin
not starting with "{"), as in the agent's config dir. "-" reads stdin.
Check definitions in the file are stored and run by the agent (http, tcp, grpc,
ttl, and script checks if the agent runs with --enable-script-checks); a check
starts at its initial status, critical by default.`,
		Example: `  rumor register --name web --port 80 --tag v1
  rumor register --name web --id web-2 --port 8080 --address 10.0.0.7 --meta version=2
  rumor register -f web.json
  rumor register -f web.hcl
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
				if isHCL(file, b) {
					if bodies, err = hclDefinitions(file, b); err != nil {
						return usageErr(err)
					}
				} else if bodies, err = splitDefinitions(b); err != nil {
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
	fl.StringVarP(&file, "file", "f", "", "service definition file (JSON, or HCL if *.hcl), or - for stdin")
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

// isHCL reports whether a definition file is HCL: named *.hcl, or read from stdin
// and not a JSON object.
func isHCL(path string, b []byte) bool {
	if path == "-" {
		t := bytes.TrimSpace(b)
		return len(t) > 0 && t[0] != '{'
	}
	return strings.HasSuffix(path, ".hcl")
}

// hclDefinitions parses an HCL definition file with the agent's config reader (so it
// reads as a config dir file does, errors naming file and field) into definitions,
// each sent as a registration body.
func hclDefinitions(path string, b []byte) ([][]byte, error) {
	name := path
	if path == "-" {
		name = "<stdin>"
	}
	defs, err := config.ServiceFile(name, b, true)
	if err != nil {
		return nil, err
	}
	var bodies [][]byte
	for _, d := range defs {
		// A definition encodes as the registration body the agent decodes.
		body, err := json.Marshal(d.Service)
		if err != nil {
			return nil, fmt.Errorf("%s: encode service %q: %w", name, d.Service.Name, err)
		}
		bodies = append(bodies, body)
	}
	return bodies, nil
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
