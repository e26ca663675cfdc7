//go:build !linux

package supervisor

import (
	"os"
	"syscall"
)

// selfPath is this binary.
func selfPath() string {
	p, err := os.Executable()
	if err != nil {
		return os.Args[0]
	}
	return p
}

// supervisorAttr puts the supervisor in its own process group. There is no
// parent-death signal here: the control pipe's end tells of the worker's
// death.
func supervisorAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// taskAttr gives the command its own process group.
func taskAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// becomeSubreaper does nothing: there are no subreapers here, so orphans of
// the command's tree go to init.
func becomeSubreaper() {}

// descendants finds nothing beyond the command's process group, which
// signalTree and sweep reach by its id.
func descendants() []int { return nil }
