package plugin

import "syscall"

// sysProcAttr puts the plugin in its own process group (so it can be killed with everything it
// started) and kills it if easd dies first.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
