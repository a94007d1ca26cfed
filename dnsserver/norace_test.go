//go:build !race

package dnsserver

// raceEnabled: the race detector allocates on its own account (TestServeUDPAllocs).
const raceEnabled = false
