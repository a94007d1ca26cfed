//go:build !linux

package proxy_test

import "github.com/rumor-sd/rumor/proxy"

// testEngines are the engines the shared tests run against.
var testEngines = []proxy.Engine{proxy.EngineGoroutines}
