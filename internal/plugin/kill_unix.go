//go:build unix

package plugin

import (
	"errors"
	"syscall"
)

// killGroup sends SIGKILL to the process group pgid (the plugin and every process it started
// that stayed in its group). A group that is already gone is not an error.
func killGroup(pgid int) error {
	err := syscall.Kill(-pgid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}
