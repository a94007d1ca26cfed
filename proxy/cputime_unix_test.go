//go:build unix

package proxy

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time (user and system) the process has used so far: on a
// shared machine it moves with the work done, where the wall clock moves with the
// load.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
