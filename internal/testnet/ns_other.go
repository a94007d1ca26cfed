//go:build !linux

package testnet

import (
	"errors"
	"syscall"
)

// errNotLinux is what the namespace operations return elsewhere; Available reports it
// first, so tests skip before reaching them.
var errNotLinux = errors.New("testnet: network namespaces need Linux")

func enterNamespace(string) (func() error, error) { return nil, errNotLinux }
func sysProcAttr(bool) *syscall.SysProcAttr       { return nil }
func killGroup(int) error                         { return errNotLinux }
func killPID(int) error                           { return errNotLinux }
func processAlive(int) bool                       { return true } // never sweep blindly
