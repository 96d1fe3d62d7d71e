//go:build unix && !linux

package plugin

import "syscall"

// sysProcAttr puts the plugin in its own process group, so it can be killed with everything it started.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
