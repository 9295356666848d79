//go:build unix

package proxy

import (
	"os/exec"
	"syscall"
)

// setProcessGroup starts the upstream in a process group of its own, so
// that stopping it also stops what it started (npx starts node, say).
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

func killProcessGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
