//go:build !unix

package devserver

// sweepLeftovers does nothing where bolt's file lock cannot be probed.
func sweepLeftovers(string) {}
