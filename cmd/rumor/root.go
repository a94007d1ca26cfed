package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/rumor-sd/rumor/catalog"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "rumor",
		Short: "Decentralized service discovery: gossip, mDNS and a Consul-compatible API",
		Long: `rumor runs one agent per host. Agents find each other, announce the services of
their host by gossip and mDNS, and answer questions about every host's services
over HTTP (a Consul-compatible subset), DNS and this CLI. There is no central
server: every agent holds the whole catalog.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newAgentCmd(), newVersionCmd())
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print rumor's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), "rumor", version)
			return nil
		},
	}
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

func newAgentCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "agent",
		Short: "Run the rumor agent on this host",
		Long: `Run the rumor agent on this host until interrupted (Ctrl-C or SIGTERM).

Today the agent holds only its in-memory catalog: gossip, the HTTP API, DNS,
mDNS and health checks are not built yet, and it says so when it starts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			cat, err := catalog.New(catalog.Config{Clock: wallClock{}})
			if err != nil {
				return err
			}
			log.Info("rumor agent started", "version", version, "catalog_index", cat.Index())
			log.Warn("this agent has only the catalog core: no gossip, HTTP API, DNS, mDNS or health checks yet; it answers nothing")
			<-cmd.Context().Done()
			log.Info("rumor agent stopped")
			return nil
		},
	}
}
