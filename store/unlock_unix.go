//go:build unix

package store

import (
	"os"
	"syscall"
)

// unlock drops the flock that bbolt took on f. Closing f alone is not
// enough while bbolt's memory map of it lives on, and after a panic in
// bbolt.Open nothing can unmap it.
func unlock(f *os.File) {
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}
