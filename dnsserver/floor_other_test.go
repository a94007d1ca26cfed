//go:build !linux

package dnsserver

import (
	"os/exec"
	"testing"
)

// bestFloor is the floor BenchmarkDNSPerf measures: off Linux, goroutines in the
// netpoller, as the server reads UDP there.
func bestFloor(b *testing.B, answer []byte) string { return floorServer(b, answer, nil) }

// loadgenRuns needs Linux (sendmmsg, recvmmsg).
func loadgenRuns(*testing.B, *Server, string, float64, int) {}

// startDNSPerf starts cmd (DNSPERF_SLICE and DNSPERF_TIMERSLACK need Linux).
func startDNSPerf(_ *testing.B, cmd *exec.Cmd) error { return cmd.Start() }
