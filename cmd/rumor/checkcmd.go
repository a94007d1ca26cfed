package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
)

// consulCheck is the part of Consul's AgentCheck (GET /v1/agent/checks) the CLI reads.
type consulCheck struct {
	CheckID, Name, Status, ServiceID, ServiceName, Type, Output string
}

// localCheck is one check as `rumor check list --json` prints it.
type localCheck struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Status      string `json:"status"`
	ServiceID   string `json:"service_id"`
	ServiceName string `json:"service_name"`
	Type        string `json:"type"`
	Output      string `json:"output"`
}

func newCheckCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check",
		Short: "List this agent's checks, or report a TTL check's status",
		Long: `List the health checks of the agent this CLI talks to, or report the status of
a TTL check: a check with a "ttl" that the service itself (or a cron job, a
deploy script...) must report on before the TTL runs out, or it goes critical.

  rumor check pass <id>   the check passes
  rumor check warn <id>   the check warns
  rumor check fail <id>   the check is critical

--note becomes the check's output, shown by 'rumor service'.`,
		Example: `  rumor check list
  rumor register -f web.json        # with "checks": [{"id": "web-alive", "ttl": "30s"}]
  while sleep 10; do rumor check pass web-alive --note "ok at $(date)"; done
  rumor check fail web-alive --note "disk full"`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newCheckListCmd(c))
	for _, v := range []struct{ verb, status string }{{"pass", "passing"}, {"warn", "warning"}, {"fail", "critical"}} {
		cmd.AddCommand(newCheckUpdateCmd(c, v.verb, v.status))
	}
	return cmd
}

func newCheckUpdateCmd(c *cli, verb, status string) *cobra.Command {
	var f clientFlags
	var note string
	cmd := &cobra.Command{
		Use:   verb + " <check-id>",
		Short: "Set a TTL check to " + status,
		Long: `Set a TTL check of this agent to ` + status + ` and restart its TTL. The status
reaches the whole pool. Only TTL checks take reports: the agent runs the other
kinds itself. 'rumor check list' shows the IDs.`,
		Example: `  rumor check ` + verb + ` web-alive
  rumor check ` + verb + ` web-alive --note "reported by deploy.sh"`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			id := a[0]
			path := "/v1/agent/check/" + verb + "/" + url.PathEscape(id)
			if note != "" {
				path += "?" + url.Values{"note": {note}}.Encode()
			}
			err := newClient(&f).do(cmd.Context(), http.MethodPut, path, nil, nil)
			var ae *apiError
			switch {
			case errors.As(err, &ae) && ae.status == http.StatusNotFound:
				return fmt.Errorf("no check with ID %q on the agent at %s: 'rumor check list' lists the IDs", id, f.httpAddr)
			case errors.As(err, &ae) && ae.status == http.StatusBadRequest:
				return fmt.Errorf("the agent refused the update of check %q: %s", id, ae.msg)
			case err != nil:
				return describe(err)
			}
			if f.json {
				return printJSON(c.stdout, map[string]string{"check": id, "status": status})
			}
			fmt.Fprintf(c.stdout, "Check %s is %s.\n", id, status)
			return nil
		},
	}
	cmd.Flags().StringVar(&note, "note", "", "text to record as the check's output")
	addClientFlags(c, cmd, &f)
	return cmd
}

func newCheckListCmd(c *cli) *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the health checks of this agent",
		Long: `List the health checks of the agent this CLI talks to: ID, service, type,
status and output. Maintenance mode shows as a check too.`,
		Example: `  rumor check list
  rumor check list --json | jq -r '.[] | select(.status != "passing") | .id'`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var checks map[string]consulCheck
			if err := newClient(&f).do(cmd.Context(), http.MethodGet, "/v1/agent/checks", nil, &checks); err != nil {
				return describe(err)
			}
			out := make([]localCheck, 0, len(checks))
			for _, id := range sortedKeys(checks) {
				ch := checks[id]
				out = append(out, localCheck{ID: ch.CheckID, Name: ch.Name, Status: ch.Status, ServiceID: ch.ServiceID,
					ServiceName: ch.ServiceName, Type: ch.Type, Output: strings.TrimSpace(ch.Output)})
			}
			if f.json {
				return printJSON(c.stdout, out)
			}
			rows := make([][]string, 0, len(out))
			for _, ch := range out {
				rows = append(rows, []string{ch.ID, ch.ServiceID, ch.Type, ch.Status, firstLine(ch.Output, 60)})
			}
			return table(c.stdout, []string{"ID", "SERVICE", "TYPE", "STATUS", "OUTPUT"}, rows)
		},
	}
	addClientFlags(c, cmd, &f)
	return cmd
}

// firstLine returns s's first line, cut to n runes, for a table cell.
func firstLine(s string, n int) string {
	s, _, _ = strings.Cut(s, "\n")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func newMaintCmd(c *cli) *cobra.Command {
	var f clientFlags
	var service, reason string
	cmd := &cobra.Command{
		Use:   "maint enable|disable",
		Short: "Put this node or one of its services in maintenance mode, or take it out",
		Long: `Maintenance mode takes this node, or with --service one of its services, out of
rotation without deregistering anything: a critical "maintenance" check is
added, so queries for passing instances (and 'rumor service --passing') skip
it everywhere in the pool. 'disable' removes the check. The mode survives
agent restarts. --reason is shown as the check's notes.`,
		Example: `  rumor maint enable --reason "kernel upgrade"
  rumor maint disable
  rumor maint enable --service web-2 --reason "draining"`,
		ValidArgs: []string{"enable", "disable"},
		Args: args(func(_ *cobra.Command, a []string) error {
			if len(a) != 1 || (a[0] != "enable" && a[0] != "disable") {
				return errors.New("say 'maint enable' or 'maint disable'")
			}
			return nil
		}),
		RunE: func(cmd *cobra.Command, a []string) error {
			enable := a[0] == "enable"
			if !enable && reason != "" {
				return usagef("--reason applies to 'maint enable' only")
			}
			path := "/v1/agent/maintenance"
			if service != "" {
				path = "/v1/agent/service/maintenance/" + url.PathEscape(service)
			}
			q := url.Values{"enable": {fmt.Sprint(enable)}}
			if reason != "" {
				q.Set("reason", reason)
			}
			err := newClient(&f).do(cmd.Context(), http.MethodPut, path+"?"+q.Encode(), nil, nil)
			var ae *apiError
			switch {
			case errors.As(err, &ae) && ae.status == http.StatusNotFound && service != "":
				return fmt.Errorf("no service with ID %q on the agent at %s: 'rumor services --local' lists the IDs", service, f.httpAddr)
			case err != nil:
				return describe(err)
			}
			what := "node"
			if service != "" {
				what = "service " + service
			}
			state := "disabled"
			if enable {
				state = "enabled"
			}
			if f.json {
				out := map[string]any{"maintenance": enable}
				if service != "" {
					out["service"] = service
				}
				return printJSON(c.stdout, out)
			}
			fmt.Fprintf(c.stdout, "Maintenance mode %s for the %s.\n", state, what)
			return nil
		},
	}
	cmd.Flags().StringVar(&service, "service", "", "service ID to put in maintenance (default: the whole node)")
	cmd.Flags().StringVar(&reason, "reason", "", "why, shown in the maintenance check's notes")
	addClientFlags(c, cmd, &f)
	return cmd
}
