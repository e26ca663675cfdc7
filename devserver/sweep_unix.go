//go:build unix

package devserver

import (
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// stateLockFree reports whether no process holds the bolt lock of the
// state file at path: bolt takes an exclusive flock on it for as long as
// the file is open, so a free lock means its endpoint is gone.
func stateLockFree(path string) bool {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return false
	}
	// Held until f is closed, after the caller has removed the directory.
	return true
}

// leftoverAge is how long a state file must have been left untouched before
// a sweep may take it for a leftover: an endpoint creates its file a moment
// before it locks it, and that moment must never look like a dead one.
const leftoverAge = time.Minute

// sweepLeftovers removes the temporary state directories of endpoints that
// were killed (SIGKILL, a test binary's timeout) before Close could remove
// them: those of this user in dir whose state file has not changed for
// leftoverAge and is locked by no process. A directory without a state
// file is left alone.
func sweepLeftovers(dir string) {
	matches, _ := filepath.Glob(filepath.Join(dir, tempStatePrefix+"*"))
	for _, p := range matches {
		if !isTempStateName(filepath.Base(p)) {
			continue
		}
		fi, err := os.Lstat(p)
		if err != nil || !fi.IsDir() || !ownedByUs(fi) {
			continue
		}
		state := filepath.Join(p, stateFile)
		sfi, err := os.Stat(state)
		if err != nil || time.Since(sfi.ModTime()) < leftoverAge || time.Since(fi.ModTime()) < leftoverAge {
			continue
		}
		if stateLockFree(state) {
			_ = os.RemoveAll(p)
		}
	}
}

func ownedByUs(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Getuid()
}
