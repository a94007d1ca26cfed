package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/spf13/cobra"
)

// cli is what every command shares: where output goes and the environment.
type cli struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// again receives the interrupts after the first (which cancels the command's
	// context) once a command sets handlesAgain; without it, main exits at the
	// second interrupt. nil when nothing delivers them (tests running in-process).
	again        <-chan os.Signal
	handlesAgain atomic.Bool
}

func newRootCmd(c *cli) *cobra.Command {
	root := &cobra.Command{
		Use:   "rumor",
		Short: "Decentralized service discovery: gossip, mDNS and a Consul-compatible API",
		Long: `rumor runs one agent per host. Agents find each other, announce the services of
their host by gossip, and answer questions about every host's services over HTTP
(a Consul-compatible subset) and this CLI. There is no central server: every
agent holds the whole catalog.

Start an agent with 'rumor agent'; the other commands talk to it over its HTTP
API at --http-addr (default: $RUMOR_HTTP_ADDR, else 127.0.0.1:8500; give
https://host:port for an agent serving TLS, and $RUMOR_HTTP_CACERT for the CA
of a certificate the system does not trust). When the agent requires a token
(rumor agent --http-token), set it in $RUMOR_HTTP_TOKEN: the commands send it.

Exit codes: 0 success, 1 the operation failed, 2 usage error, 3 no agent
answered.`,
		Example: `  rumor agent --dev                      # try it: one node, in memory
  rumor register --name web --port 80 --tag v1
  rumor services
  rumor members`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr(err) })
	root.AddCommand(newAgentCmd(c), newMembersCmd(c), newServicesCmd(c), newRegisterCmd(c),
		newDeregisterCmd(c), newKeygenCmd(c), newSimCmd(c), newVersionCmd(c))
	root.AddCommand(newKeyringCmd(c))
	root.AddCommand(newDNSCmd(c))
	root.AddCommand(newServiceCmd(c), newCheckCmd(c), newMaintCmd(c), newJoinCmd(c), newLeaveCmd(c),
		newForceLeaveCmd(c), newWatchCmd(c), newInfoCmd(c))
	root.SetOut(c.stdout) // before teachCompletion: cobra's completion commands keep the writer
	root.SetErr(c.stderr)
	teachCompletion(root)
	root.AddCommand(newValidateCmd(c), newReloadCmd(c))
	root.AddCommand(newUpstreamsCmd(c)) // the local proxy (issue 17)
	root.AddCommand(newBrowseCmd(c))
	root.AddCommand(newMovesCmd(c)) // moves (issue 17); 'rumor service move' is in newServiceCmd
	return root
}

// args wraps a cobra argument check so its failure is a usage error.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return usageErr(err)
		}
		return nil
	}
}

func newVersionCmd(c *cli) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print rumor's version",
		Args:  args(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintln(c.stdout, "rumor", version)
			return nil
		},
	}
}

func newKeygenCmd(c *cli) *cobra.Command {
	return &cobra.Command{
		Use:   "keygen",
		Short: "Print a new random gossip encryption key",
		Long: `Print a new random 32-byte gossip encryption key, base64-encoded (the same
format as 'consul keygen'). Give the same key to every agent of a pool with
--encrypt; agents with another key or none cannot join.`,
		Example: `  key=$(rumor keygen)
  rumor agent --encrypt "$key" --join 10.0.0.5`,
		Args: args(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			var k [32]byte
			if _, err := rand.Read(k[:]); err != nil {
				return err
			}
			fmt.Fprintln(c.stdout, base64.StdEncoding.EncodeToString(k[:]))
			return nil
		},
	}
}
