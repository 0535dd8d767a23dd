//go:build !unix

package store

// freeBytes is unknown on this platform: Check relies on its write alone.
func freeBytes(string) (uint64, bool) { return 0, false }
