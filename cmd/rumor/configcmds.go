package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rumor-sd/rumor/config"
)

// validateJSON is the output of `rumor validate --json`.
type validateJSON struct {
	Valid    bool           `json:"valid"`
	Files    []string       `json:"files"`
	Services []string       `json:"services"`
	Errors   []config.Error `json:"errors"`
}

func newValidateCmd(c *cli) *cobra.Command {
	var asJSON, scripts, localScripts bool
	cmd := &cobra.Command{
		Use:   "validate <file|dir>...",
		Short: "Check config files without starting an agent",
		Long: `Check config files the way 'rumor agent --config-file/--config-dir' reads them:
JSON or HCL in Consul's schema, each directory's *.json and *.hcl files in name
order. Every problem is printed, one per line, as file: field: reason; the exit
code is 1 if there is any, 0 (with a short summary) if the files are valid.

Script checks are checked as allowed only if the files set enable_script_checks
or enable_local_script_checks (or --enable-script-checks or
--enable-local-script-checks is given, as it would be to the agent).`,
		Example: `  rumor validate /etc/rumor.d
  rumor validate web.json db.hcl
  rumor validate --json /etc/rumor.d | jq '.errors[]'`,
		Args: args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, paths []string) error {
			var opts config.Options
			if cmd.Flags().Changed("enable-script-checks") {
				opts.EnableScriptChecks = &scripts
			}
			if cmd.Flags().Changed("enable-local-script-checks") {
				opts.EnableLocalScriptChecks = &localScripts
			}
			fc, err := config.Load(paths, opts)
			out := validateJSON{Valid: err == nil, Files: []string{}, Services: []string{}, Errors: []config.Error{}}
			if fc != nil {
				out.Files = fc.Files
				for _, s := range fc.Services {
					id := s.Service.ID
					if id == "" {
						id = s.Service.Name
					}
					out.Services = append(out.Services, id)
				}
			}
			for _, e := range config.AsErrors(err) {
				out.Errors = append(out.Errors, *e)
			}
			if asJSON {
				if perr := printJSON(c.stdout, out); perr != nil {
					return perr
				}
			} else {
				printValidation(c.stdout, &out)
			}
			if err != nil {
				n := len(out.Errors)
				return exitError{code: exitFailed, err: fmt.Errorf("%d problem%s found: nothing would start or reload with these files", n, plural(n))}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON for scripts: {valid, files, services, errors: [{file, field, reason}]}")
	cmd.Flags().BoolVar(&scripts, "enable-script-checks", false, "validate as an agent started with --enable-script-checks would")
	cmd.Flags().BoolVar(&localScripts, "enable-local-script-checks", false, "validate as an agent started with --enable-local-script-checks would")
	return cmd
}

func printValidation(w io.Writer, out *validateJSON) {
	if !out.Valid {
		for _, e := range out.Errors {
			fmt.Fprintln(w, e.Error())
		}
		return
	}
	svcs := ""
	if len(out.Services) > 0 {
		svcs = " (" + strings.Join(out.Services, ", ") + ")"
	}
	fmt.Fprintf(w, "Configuration is valid: %d file%s, %d service%s%s.\n",
		len(out.Files), plural(len(out.Files)), len(out.Services), plural(len(out.Services)), svcs)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// reloadJSON is the agent's answer to PUT /v1/agent/reload.
type reloadJSON struct {
	Added, Changed, Removed, Unchanged []string
}

func newReloadCmd(c *cli) *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "Make the agent re-read its config files",
		Long: `Make the agent this CLI talks to re-read its config files (--config-file,
--config-dir), as SIGHUP does, and apply what changed: services added, changed
or removed in the files are registered, updated or deregistered; unchanged ones
keep their checks' state and are not re-announced; services registered through
the API are untouched.

If a file is invalid, nothing changes (the previous configuration stays in
force) and the problems are printed by file and field; the exit code is then 1.`,
		Example: `  rumor reload
  rumor reload --json`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var r reloadJSON
			err := newClient(&f).do(cmd.Context(), http.MethodPut, "/v1/agent/reload", nil, &r)
			var ae *apiError
			if errors.As(err, &ae) && ae.status == http.StatusBadRequest {
				return errors.New("the agent refused the new configuration:\n" + ae.msg)
			}
			if err != nil {
				return describe(err)
			}
			if f.json {
				return printJSON(c.stdout, r)
			}
			fmt.Fprintf(c.stdout, "Reloaded: %s added, %s changed, %s removed, %d unchanged.\n",
				listed(r.Added), listed(r.Changed), listed(r.Removed), len(r.Unchanged))
			return nil
		},
	}
	addClientFlags(c, cmd, &f)
	return cmd
}

// listed is "0", or "2 (web, db)".
func listed(ids []string) string {
	if len(ids) == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%s)", len(ids), strings.Join(ids, ", "))
}
