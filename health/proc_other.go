//go:build !unix

package health

import "os/exec"

// killGroupOnCancel: without process groups, cancellation kills only the program
// itself (exec.CommandContext's default).
func killGroupOnCancel(*exec.Cmd) {}
