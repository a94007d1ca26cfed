package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"
)

// joinJSON is what `rumor join --json` prints.
type joinJSON struct {
	Joined []string          `json:"joined"`
	Failed map[string]string `json:"failed"`
}

func newJoinCmd(c *cli) *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "join <address>...",
		Short: "Tell the agent to join the pool another agent is in",
		Long: `Tell the running agent to join the gossip pool of the agents at the given
addresses: "ip", "ip:port" or "host:port" of their gossip port (default 7946).
One reachable address is enough: the pool spreads the rest. Joining merges the
two pools' catalogs. The command exits 0 if at least one address answered, and
lists those that did not.

To join at start, and keep retrying, use 'rumor agent --retry-join' instead.`,
		Example: `  rumor join 10.0.0.5
  rumor join 10.0.0.5:7946 10.0.0.6 --json`,
		Args: args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, addrs []string) error {
			cl := newClient(&f)
			out := joinJSON{Joined: []string{}, Failed: map[string]string{}}
			for _, addr := range addrs {
				err := cl.do(cmd.Context(), http.MethodPut, "/v1/agent/join/"+url.PathEscape(addr), nil, nil)
				var ae *apiError
				switch {
				case err == nil:
					out.Joined = append(out.Joined, addr)
				case errors.As(err, &ae):
					out.Failed[addr] = ae.msg
				default:
					return err // no agent: the other addresses would fail the same way
				}
			}
			if f.json {
				if err := printJSON(c.stdout, out); err != nil {
					return err
				}
			} else {
				for _, addr := range out.Joined {
					fmt.Fprintf(c.stdout, "Joined the pool via %s.\n", addr)
				}
			}
			for _, addr := range sortedKeys(out.Failed) {
				fmt.Fprintf(c.stderr, "rumor: could not join via %s: %s\n", addr, out.Failed[addr])
			}
			if len(out.Joined) == 0 {
				return errors.New("no address answered: check each is an agent's gossip address (not its HTTP port) and that TCP and UDP reach it")
			}
			return nil
		},
	}
	addClientFlags(c, cmd, &f)
	return cmd
}

func newLeaveCmd(c *cli) *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "leave",
		Short: "Make the agent leave the pool gracefully and shut down",
		Long: `Make the agent this CLI talks to leave the gossip pool gracefully, then shut
down: its peers see it "left" (not "failed") and drop its services at once.
'rumor agent' exits 0 afterwards, as after Ctrl-C. Its registered services stay
in its data dir and come back when it starts again.`,
		Example: `  rumor leave
  rumor leave --http-addr 10.0.0.5:8500`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := newClient(&f).do(cmd.Context(), http.MethodPut, "/v1/agent/leave", nil, nil); err != nil {
				return describe(err)
			}
			if f.json {
				return printJSON(c.stdout, map[string]bool{"left": true})
			}
			fmt.Fprintf(c.stdout, "The agent at %s left the pool and is shutting down.\n", f.httpAddr)
			return nil
		},
	}
	addClientFlags(c, cmd, &f)
	return cmd
}

func newForceLeaveCmd(c *cli) *cobra.Command {
	var f clientFlags
	var prune bool
	cmd := &cobra.Command{
		Use:   "force-leave <node>",
		Short: "Remove a failed node from the pool now",
		Long: `Mark a failed node as left, as if it had left gracefully: its services are
dropped now, on this agent and on every member it reaches, instead of staying
(critical) until the reap timeout (--reap-after, 72h by default). Use it for a
host that is gone for good. Only failed nodes can be forced out: a live one
would refute it; run 'rumor leave' on its host instead. If the node comes back
later, it rejoins like any node.

--prune also forgets the node here, so 'rumor members' no longer lists it.`,
		Example: `  rumor members          # find nodes with status "failed"
  rumor force-leave node7
  rumor force-leave node7 --prune`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			node := a[0]
			path := "/v1/agent/force-leave/" + url.PathEscape(node)
			if prune {
				path += "?prune=true"
			}
			err := newClient(&f).do(cmd.Context(), http.MethodPut, path, nil, nil)
			var ae *apiError
			switch {
			case errors.As(err, &ae) && ae.status == http.StatusNotFound:
				return fmt.Errorf("no node %q in the pool seen by the agent at %s: 'rumor members' lists the nodes", node, f.httpAddr)
			case errors.As(err, &ae) && ae.status == http.StatusConflict:
				return fmt.Errorf("%s", ae.msg)
			case err != nil:
				return describe(err)
			}
			if f.json {
				return printJSON(c.stdout, map[string]any{"node": node, "left": true, "pruned": prune})
			}
			fmt.Fprintf(c.stdout, "Node %s is now marked left; its services are dropped.\n", node)
			return nil
		},
	}
	cmd.Flags().BoolVar(&prune, "prune", false, "also remove the node from the member list")
	addClientFlags(c, cmd, &f)
	return cmd
}
