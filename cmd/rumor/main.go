// Command rumor is the rumor CLI: `rumor agent` runs the agent on this host; the other
// commands talk to a running agent over its HTTP API.
//
// Exit codes, for scripts: 0 success; 1 the operation failed (the agent refused it,
// or the agent could not start); 2 a usage error (unknown command or flag, bad
// arguments or configuration); 3 no agent answered at the HTTP address.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes.
const (
	exitOK      = 0
	exitFailed  = 1
	exitUsage   = 2
	exitNoAgent = 3
)

func main() {
	// The first SIGINT or SIGTERM cancels the context (the agent leaves gracefully,
	// a watch ends). A later one goes to the agent, which exits at once, or, for any
	// other command, exits here.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	again := make(chan os.Signal, 1)
	c := &cli{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, again: again}
	go func() {
		<-sigs
		cancel()
		for s := range sigs {
			if !c.handlesAgain.Load() {
				fmt.Fprintln(os.Stderr, "rumor: interrupted again: exiting at once")
				os.Exit(exitFailed)
			}
			select {
			case again <- s:
			default:
			}
		}
	}()
	os.Exit(execute(ctx, c, os.Args[1:], os.Stdin))
}

// run executes the CLI with args and returns the exit code. Tests call it directly.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	return execute(ctx, &cli{stdout: stdout, stderr: stderr, getenv: getenv}, args, stdin)
}

// execute runs the CLI as c and returns the exit code.
func execute(ctx context.Context, c *cli, args []string, stdin io.Reader) int {
	stderr := c.stderr
	root := newRootCmd(c)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(c.stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	code := exitFailed
	var ee exitError
	switch {
	case errors.As(err, &ee):
		code = ee.code
	case strings.HasPrefix(err.Error(), "unknown command"), strings.HasPrefix(err.Error(), "unknown flag"):
		code = exitUsage
	}
	fmt.Fprintln(stderr, "rumor:", err)
	if code == exitUsage {
		fmt.Fprintln(stderr, "Run 'rumor --help' for usage.")
	}
	return code
}

// exitError carries an exit code other than 1 through cobra.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// usageErr marks err as a usage error (exit 2).
func usageErr(err error) error { return exitError{code: exitUsage, err: err} }

// usagef formats a usage error.
func usagef(format string, args ...any) error { return usageErr(fmt.Errorf(format, args...)) }
