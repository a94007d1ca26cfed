package main

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/rumor-sd/rumor/httpapi"
)

func newUpstreamsCmd(c *cli) *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "upstreams",
		Short: "List the local proxy's listeners and the instances they forward to",
		Long: `List the local proxy's upstreams (--upstream, "upstreams" in a config file or in a
service definition): the address each listens on, the service it forwards to and,
per instance, its address, weight, open connections, consecutive connect failures,
times ejected and state (ok, ejected until a time, or draining).`,
		Example: `  rumor agent --upstream web=127.0.0.1:9001 &
  rumor upstreams
  rumor upstreams --json | jq '.[].Instances[] | select(.Ejections > 0)'`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ups []httpapi.Upstream
			if err := newClient(&f).do(cmd.Context(), http.MethodGet, "/v1/rumor/upstreams", nil, &ups); err != nil {
				return describe(err)
			}
			if f.json {
				return printJSON(c.stdout, ups)
			}
			var rows [][]string
			for _, u := range ups {
				svc := u.Service
				if u.Tag != "" {
					svc += ":" + u.Tag
				}
				if len(u.Instances) == 0 {
					rows = append(rows, []string{u.Listen, svc, "-", "", "", "", "no instance"})
				}
				for _, in := range u.Instances {
					state := "ok"
					switch {
					case in.Draining:
						state = "draining"
					case in.EjectedUntil != "":
						state = "ejected until " + in.EjectedUntil
					}
					rows = append(rows, []string{u.Listen, svc, in.Node + "/" + in.ServiceID + " " + in.Address,
						strconv.FormatInt(in.Weight, 10), strconv.FormatInt(in.Active, 10),
						fmt.Sprintf("%d/%d", in.Failures, in.Ejections), state})
				}
			}
			return table(c.stdout, []string{"LISTEN", "SERVICE", "INSTANCE", "WEIGHT", "ACTIVE", "FAILS/EJECTED", "STATE"}, rows)
		},
	}
	addClientFlags(c, cmd, &f)
	return cmd
}
