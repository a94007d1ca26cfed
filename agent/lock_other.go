//go:build !unix

package agent

// lockDir does nothing where flock is missing: two agents must not share a data dir.
func lockDir(string) (func() error, error) { return func() error { return nil }, nil }
