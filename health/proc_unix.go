//go:build unix

package health

import (
	"os/exec"
	"syscall"
)

// killGroupOnCancel starts cmd in its own process group and makes cancellation kill
// the whole group, children included.
func killGroupOnCancel(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
