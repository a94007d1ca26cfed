package health

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"time"

	"github.com/rumor-sd/rumor/catalog"
)

// scriptWaitDelay bounds how long a run waits, after its script was killed or has
// exited, for descendants that still hold the output pipe (a daemon it started).
const scriptWaitDelay = time.Second

// scriptProber runs a program directly (no shell): exit 0 is passing, 1 warning,
// anything else critical, like a Nagios plugin. Stdout and stderr are captured
// together, up to catalog.MaxOutputLen. On timeout or cancellation the program's
// whole process group is killed, so a shell script's children die with it.
type scriptProber struct {
	args    []string
	timeout time.Duration // only for the output; the context enforces it
}

func (p *scriptProber) probe(ctx context.Context) (catalog.Status, string) {
	cmd := exec.CommandContext(ctx, p.args[0], p.args[1:]...)
	killGroupOnCancel(cmd)
	cmd.WaitDelay = scriptWaitDelay
	out := &headBuffer{max: catalog.MaxOutputLen}
	cmd.Stdout = out
	cmd.Stderr = out // the same writer: exec serialises the writes
	err := cmd.Run()
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return catalog.StatusCritical, fmt.Sprintf("Timed out (%s) running check; output so far: %s", p.timeout, out.String())
		}
		return catalog.StatusCritical, "check cancelled"
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
		return catalog.StatusPassing, out.String()
	case errors.As(err, &exit) && exit.ExitCode() == 1:
		return catalog.StatusWarning, out.String()
	case errors.As(err, &exit):
		return catalog.StatusCritical, out.String()
	default: // could not start, or the output pipe was held open too long
		return catalog.StatusCritical, fmt.Sprintf("script %s: %v; output: %s", p.args[0], err, out.String())
	}
}

// headBuffer keeps the first max bytes written to it and counts the rest: a Nagios
// plugin's first line is its verdict. Writes never fail, so a chatty script is not
// killed by a broken pipe.
type headBuffer struct {
	mu      sync.Mutex
	max     int
	buf     []byte
	dropped int
}

// Write implements io.Writer.
func (b *headBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	room := max(b.max-len(b.buf), 0)
	n := min(room, len(p))
	b.buf = append(b.buf, p[:n]...)
	b.dropped += len(p) - n
	return len(p), nil
}

// String returns what was kept; clampOutput marks the truncation.
func (b *headBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dropped > 0 {
		// One byte more than fits makes clampOutput cut and mark it.
		return string(b.buf) + "…"
	}
	return string(b.buf)
}
