package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// keyringJSON is the pool's keyring as `rumor keyring --json` prints it.
type keyringJSON struct {
	Datacenter  string            `json:"datacenter"`
	NumNodes    int               `json:"num_nodes"`
	Keys        map[string]int    `json:"keys"`         // key → nodes that have it installed
	PrimaryKeys map[string]int    `json:"primary_keys"` // key → nodes that encrypt with it
	Errors      map[string]string `json:"errors"`       // node → why it failed or did not answer
}

// consulKeyring is Consul's KeyringResponse, as /v1/operator/keyring answers.
type consulKeyring struct {
	WAN         bool
	Datacenter  string
	Keys        map[string]int
	PrimaryKeys map[string]int
	NumNodes    int
	Messages    map[string]string
}

func newKeyringCmd(c *cli) *cobra.Command {
	var f clientFlags
	var install, use, remove string
	var list, localOnly bool
	cmd := &cobra.Command{
		Use:   "keyring (--list | --install KEY | --use KEY | --remove KEY)",
		Short: "List and rotate the gossip encryption keys of the whole pool",
		Long: `Manage the gossip encryption keys of every agent in the pool, without a restart.
The agent at --http-addr sends the operation to every live member (encrypted, like
all gossip), waits for their answers (at most 10 s) and reports per-node results.

Rotate a key in three steps, each run once from any agent:

  1. --install NEW   every agent accepts NEW, still encrypting with the old key
  2. --use NEW       every agent encrypts with NEW (and still accepts the old one)
  3. --remove OLD    every agent forgets OLD

Keys are base64, 16, 24 or 32 bytes, as 'rumor keygen' prints. The primary key
(the one in use) cannot be removed. Agents that did not answer in time are named;
the operation is then incomplete (exit 1): run it again once they are back.
Each agent saves its keyring in its data dir (local.keyring, mode 0600), so a
restarted agent keeps the rotated keys whatever its --encrypt says. New agents
(a fresh data dir) need the new key in --encrypt.

Without a flag, --list is assumed. With --list, --local-only shows this agent's
keys alone.`,
		Example: `  rumor keyring --list
  new=$(rumor keygen)
  rumor keyring --install "$new" && rumor keyring --use "$new"
  rumor keyring --remove "<old key>"
  rumor keyring --json | jq '.keys'`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			type op struct {
				flag, method, key string
			}
			var ops []op
			if list {
				ops = append(ops, op{"--list", http.MethodGet, ""})
			}
			for _, o := range []op{{"--install", http.MethodPost, install}, {"--use", http.MethodPut, use}, {"--remove", http.MethodDelete, remove}} {
				if cmd.Flags().Changed(strings.TrimPrefix(o.flag, "--")) {
					ops = append(ops, o)
				}
			}
			switch {
			case len(ops) == 0:
				ops = []op{{"--list", http.MethodGet, ""}}
			case len(ops) > 1:
				var names []string
				for _, o := range ops {
					names = append(names, o.flag)
				}
				return usagef("give one operation, not %s", strings.Join(names, " and "))
			}
			o := ops[0]
			if localOnly && o.method != http.MethodGet {
				return usagef("--local-only goes with --list only")
			}
			path := "/v1/operator/keyring"
			var body []byte
			if o.method == http.MethodGet {
				if localOnly {
					path += "?local-only=true"
				}
			} else {
				if err := checkKey(o.key); err != nil {
					return usagef("%s %q: %v", o.flag, o.key, err)
				}
				body, _ = json.Marshal(map[string]string{"Key": o.key})
			}
			var answer []consulKeyring
			if err := newClient(&f).do(cmd.Context(), o.method, path, body, &answer); err != nil {
				return describe(err)
			}
			if len(answer) == 0 {
				return fmt.Errorf("the agent at %s answered with no keyring", f.httpAddr)
			}
			k := answer[0]
			out := keyringJSON{Datacenter: k.Datacenter, NumNodes: k.NumNodes, Keys: nonNil(k.Keys),
				PrimaryKeys: nonNil(k.PrimaryKeys), Errors: nonNil(k.Messages)}
			var err error
			if f.json {
				err = printJSON(c.stdout, out)
			} else {
				if o.method != http.MethodGet {
					verb := map[string]string{http.MethodPost: "installed", http.MethodPut: "now using", http.MethodDelete: "removed"}[o.method]
					fmt.Fprintf(c.stdout, "%s key %s on all %d nodes\n\n", verb, o.key, out.NumNodes)
				}
				err = printKeyring(c.stdout, out)
			}
			if err == nil && len(out.Errors) > 0 {
				// A list that missed nodes is incomplete: scripts must notice.
				err = fmt.Errorf("%d of %d nodes did not answer or failed", len(out.Errors), out.NumNodes)
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&list, "list", false, "list the keys installed on every node (the default)")
	cmd.Flags().StringVar(&install, "install", "", "install `KEY` on every node, without using it yet")
	cmd.Flags().StringVar(&use, "use", "", "make the installed `KEY` the one every node encrypts with")
	cmd.Flags().StringVar(&remove, "remove", "", "remove `KEY`, which must not be the primary key, from every node")
	cmd.Flags().BoolVar(&localOnly, "local-only", false, "with --list: only this agent's keys")
	addClientFlags(c, cmd, &f)
	return cmd
}

// checkKey tells what is wrong with a key before the agent is asked.
func checkKey(s string) error {
	if s == "" {
		return fmt.Errorf("no key given: want a base64 key as 'rumor keygen' prints")
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return fmt.Errorf("not base64: %v", err)
	}
	if l := len(b); l != 16 && l != 24 && l != 32 {
		return fmt.Errorf("decodes to %d bytes: want 16, 24 or 32", l)
	}
	return nil
}

func nonNil[V any](m map[string]V) map[string]V {
	if m == nil {
		return map[string]V{}
	}
	return m
}

// printKeyring prints one row per key, primary keys marked, then the nodes that
// failed.
func printKeyring(w io.Writer, k keyringJSON) error {
	rows := [][]string{}
	for _, key := range sortedKeys(k.Keys) {
		primary := ""
		if n := k.PrimaryKeys[key]; n > 0 {
			primary = "primary on " + strconv.Itoa(n)
		}
		rows = append(rows, []string{key, fmt.Sprintf("%d/%d", k.Keys[key], k.NumNodes), primary})
	}
	if err := table(w, []string{"KEY", "NODES", "PRIMARY"}, rows); err != nil {
		return err
	}
	if len(k.Errors) > 0 {
		fmt.Fprintf(w, "\n%d node(s) did not answer or failed:\n", len(k.Errors))
		for _, n := range sortedKeys(k.Errors) {
			fmt.Fprintf(w, "  %s: %s\n", n, k.Errors[n])
		}
	}
	return nil
}
