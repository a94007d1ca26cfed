package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rumor-sd/rumor/httpapi"
)

// Timing of `rumor watch`.
const (
	// watchWait is the ?wait of each blocking query: the agent answers when something
	// changed or after this long.
	watchWait = 5 * time.Minute
	// watchRetryFirst and watchRetryMax bound the backoff while the agent is away.
	watchRetryFirst = time.Second
	watchRetryMax   = 30 * time.Second
)

// watchItem is one thing a watch follows: a service name, an instance or a node.
type watchItem struct {
	desc   string // what a line shows after the key
	status string // compared to say "was <status>"; may be ""
	value  any    // what a JSON line carries
}

// watchEvent is one line of `rumor watch --json`.
type watchEvent struct {
	Time     string `json:"time"`
	Index    uint64 `json:"index"`
	Event    string `json:"event"` // current, added, changed, removed
	Key      string `json:"key"`
	Value    any    `json:"value,omitempty"`
	Previous any    `json:"previous,omitempty"`
}

// watchTarget says what to read and how to turn an answer into items by key.
type watchTarget struct {
	path  string
	parse func(ctx context.Context, cl *client, body []byte) (map[string]watchItem, error)
	// added names the event of a new item; "" means "added" (moves: "moved").
	added string
}

func newWatchCmd(c *cli) *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "watch services | service <name> | nodes | moves",
		Short: "Print changes to services, a service's instances or nodes as they happen",
		Long: `Follow the catalog and print one line per change as it happens: first the
current state ("current" lines), then "added", "changed" and "removed" lines.

  rumor watch services         service names and their tags
  rumor watch service <name>   instances of one service, with address and health
  rumor watch nodes            nodes, with address and membership status
  rumor watch moves            service instances that moved to another node:
                               a "moved" line per new or rewritten pointer

It uses the agent's blocking queries, so a change shows within moments and an
idle watch costs nothing. With --json every line is a JSON object (time, index,
event, key, value, previous) for scripts. If the agent goes away (a restart),
the watch says so on stderr, retries with backoff up to 30s, and on reconnect
prints what changed meanwhile. It runs until interrupted (Ctrl-C: exit 0); it
exits 3 if no agent answers at the start.`,
		Example: `  rumor watch service web
  rumor watch nodes --json | jq -c 'select(.event == "changed")'
  rumor watch services --http-addr 10.0.0.5:8500`,
		ValidArgs: []string{"services", "service", "nodes", "moves"},
		Args: args(func(_ *cobra.Command, a []string) error {
			switch {
			case len(a) == 0:
				return errors.New("say what to watch: services, service <name> or nodes")
			case a[0] == "service" && len(a) != 2:
				return errors.New("'watch service' takes one service name")
			case (a[0] == "services" || a[0] == "nodes" || a[0] == "moves") && len(a) != 1:
				return fmt.Errorf("'watch %s' takes no further argument", a[0])
			case a[0] != "services" && a[0] != "service" && a[0] != "nodes" && a[0] != "moves":
				return fmt.Errorf("cannot watch %q: want services, service <name>, nodes or moves", a[0])
			}
			return nil
		}),
		RunE: func(cmd *cobra.Command, a []string) error {
			var t watchTarget
			switch a[0] {
			case "services":
				t = watchTarget{path: "/v1/catalog/services", parse: parseServicesWatch}
			case "service":
				t = watchTarget{path: "/v1/health/service/" + url.PathEscape(a[1]), parse: parseServiceWatch}
			case "nodes":
				t = watchTarget{path: "/v1/catalog/nodes", parse: parseNodesWatch}
			case "moves":
				t = watchTarget{path: "/v1/rumor/moves", parse: parseMovesWatch, added: "moved"}
			}
			return runWatch(cmd.Context(), c, &f, t)
		},
	}
	addClientFlags(c, cmd, &f)
	return cmd
}

// runWatch follows t until ctx ends (exit 0), printing changes.
func runWatch(ctx context.Context, c *cli, f *clientFlags, t watchTarget) error {
	cl := newClient(f)
	blocking := &client{addr: cl.addr, base: cl.base, token: cl.token, err: cl.err, hc: &http.Client{Transport: cl.hc.Transport}}
	var (
		index     uint64
		prev      map[string]watchItem
		connected bool // an answer came since the start
		lost      bool // the agent went away and has not answered since
		retry     = watchRetryFirst
	)
	for {
		body, idx, err := blocking.getIndexed(ctx, t.path, index, watchWait)
		var items map[string]watchItem
		if err == nil {
			items, err = t.parse(ctx, cl, body)
		}
		if ctx.Err() != nil {
			return nil // interrupted: a watch ends this way
		}
		var ee exitError
		if err != nil && connected && errors.As(err, &ee) && ee.code == exitNoAgent {
			if !lost {
				fmt.Fprintf(c.stderr, "rumor: lost the agent at %s; retrying (is it restarting?)\n", f.httpAddr)
			}
			// It may come back as a new process whose indexes start again: ask for
			// its current state first rather than block on an index it never had.
			lost, index = true, 0
			fmt.Fprintf(c.stderr, "rumor: no agent at %s; next try in %s\n", f.httpAddr, retry)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(retry):
			}
			retry = min(2*retry, watchRetryMax)
			continue
		}
		if err != nil {
			return err
		}
		if lost {
			fmt.Fprintf(c.stderr, "rumor: reconnected to the agent at %s\n", f.httpAddr)
			lost, retry = false, watchRetryFirst
		}
		if err := printChanges(c.stdout, f.json, idx, prev, items, !connected, t.added); err != nil {
			return err
		}
		connected = true
		prev = items
		// An index that went backwards means the agent restarted: its indexes began
		// again, and blocking on the old one would return at once, forever.
		index = max(idx, 1)
	}
}

// printChanges prints a line per difference between prev and cur, or per item of cur
// as "current" on the first answer.
func printChanges(w io.Writer, asJSON bool, idx uint64, prev, cur map[string]watchItem, first bool, added string) error {
	if added == "" {
		added = "added"
	}
	now := time.Now().UTC().Format(time.RFC3339)
	var events []watchEvent
	var lines []string
	add := func(event, key string, it, was *watchItem) {
		ev := watchEvent{Time: now, Index: idx, Event: event, Key: key}
		line := fmt.Sprintf("%s  %-8s %s", now, event, key)
		if it != nil {
			ev.Value = it.value
			line += "  " + it.desc
		}
		if was != nil {
			ev.Previous = was.value
			if it != nil && was.status != it.status {
				line += "  (was " + was.status + ")"
			}
		}
		events = append(events, ev)
		lines = append(lines, line)
	}
	for _, k := range sortedKeys(cur) {
		it := cur[k]
		old, seen := prev[k]
		switch {
		case first:
			add("current", k, &it, nil)
		case !seen:
			add(added, k, &it, nil)
		case old.desc != it.desc || old.status != it.status:
			add("changed", k, &it, &old)
		}
	}
	for _, k := range sortedKeys(prev) {
		if _, ok := cur[k]; !ok {
			old := prev[k]
			add("removed", k, nil, &old)
		}
	}
	for i := range events {
		if asJSON {
			b, err := json.Marshal(events[i])
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(w, "%s\n", b); err != nil {
				return err
			}
			continue
		}
		if _, err := fmt.Fprintln(w, lines[i]); err != nil {
			return err
		}
	}
	return nil
}

func parseServicesWatch(_ context.Context, _ *client, body []byte) (map[string]watchItem, error) {
	var svcs map[string][]string
	if err := json.Unmarshal(body, &svcs); err != nil {
		return nil, fmt.Errorf("the answer is not a service list: %w", err)
	}
	out := make(map[string]watchItem, len(svcs))
	for name, tags := range svcs {
		if tags == nil {
			tags = []string{}
		}
		out[name] = watchItem{desc: tagsDesc(tags),
			value: map[string]any{"name": name, "tags": tags}}
	}
	return out, nil
}

func parseServiceWatch(_ context.Context, _ *client, body []byte) (map[string]watchItem, error) {
	var entries []healthEntry
	if err := json.Unmarshal(body, &entries); err != nil {
		return nil, fmt.Errorf("the answer is not a list of instances: %w", err)
	}
	out := make(map[string]watchItem, len(entries))
	for i := range entries {
		in := entries[i].toJSON()
		var checks []string
		for _, ch := range in.Checks {
			checks = append(checks, ch.ID+"="+ch.Status)
		}
		out[in.Node+"/"+in.ID] = watchItem{
			desc: strings.Join([]string{hostPortInt(in.Address, in.Port), tagsDesc(in.Tags), in.Status,
				"checks=" + strings.Join(checks, ",")}, " "),
			status: in.Status, value: in,
		}
	}
	return out, nil
}

// parseNodesWatch reads the catalog's nodes and, since liveness moves the same
// index, the members' status.
func parseNodesWatch(ctx context.Context, cl *client, body []byte) (map[string]watchItem, error) {
	var nodes []struct{ Node, Address string }
	if err := json.Unmarshal(body, &nodes); err != nil {
		return nil, fmt.Errorf("the answer is not a node list: %w", err)
	}
	var members []consulMember
	if err := cl.do(ctx, http.MethodGet, "/v1/agent/members", nil, &members); err != nil {
		return nil, describe(err)
	}
	status := map[string]string{}
	for _, m := range members {
		status[m.Name] = memberStatusNames[m.Status]
	}
	out := make(map[string]watchItem, len(nodes))
	for _, n := range nodes {
		st := status[n.Node]
		if st == "" {
			st = "unknown"
		}
		out[n.Node] = watchItem{desc: n.Address + " " + st, status: st,
			value: map[string]string{"name": n.Node, "address": n.Address, "status": st}}
	}
	return out, nil
}

// getIndexed is a blocking GET: it returns the body and X-Consul-Index once the
// index passes index or wait ends. Errors are worded as client.do words them.
func (c *client) getIndexed(ctx context.Context, path string, index uint64, wait time.Duration) ([]byte, uint64, error) {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	if c.err != nil {
		return nil, 0, c.err
	}
	target := c.base + path + sep + url.Values{"index": {strconv.FormatUint(index, 10)}, "wait": {wait.String()}}.Encode()
	// The agent adds up to wait/16 of jitter; allow that and a margin.
	ctx, cancel := context.WithTimeout(ctx, wait+wait/16+requestTimeout)
	defer cancel()
	req, err := c.newRequest(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		return nil, 0, c.connError(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		// The agent went away mid-answer, as when it restarts.
		return nil, 0, exitError{code: exitNoAgent, err: fmt.Errorf("read the answer of %s: %w", c.addr, err)}
	}
	if resp.StatusCode/100 != 2 {
		return nil, 0, describe(c.answerError(resp.StatusCode, b))
	}
	idx, err := strconv.ParseUint(resp.Header.Get("X-Consul-Index"), 10, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("the answer from %s has no X-Consul-Index (is it a rumor or Consul agent?)", c.addr)
	}
	return b, idx, nil
}

// tagsDesc shows tags on a watch line.
func tagsDesc(tags []string) string {
	if len(tags) == 0 {
		return "no-tags"
	}
	return "tags=" + strings.Join(tags, ",")
}

// parseMovesWatch reads the forward pointers, keyed by old node and service ID; a
// rewritten pointer (a chain collapsed, a new target) is a change.
func parseMovesWatch(_ context.Context, _ *client, body []byte) (map[string]watchItem, error) {
	var ms []httpapi.MoveEntry
	if err := json.Unmarshal(body, &ms); err != nil {
		return nil, fmt.Errorf("the answer is not a list of moves: %w", err)
	}
	out := make(map[string]watchItem, len(ms))
	for _, m := range ms {
		out[m.From+"/"+m.ServiceID] = watchItem{desc: fmt.Sprintf("%s to %s/%s (until %s)", m.Service, m.To, m.ToServiceID, m.Until),
			value: m}
	}
	return out, nil
}
