// Package uitest drives a real headless Chromium for the web UI's browser tests
// (github.com/chromedp/chromedp v0.23). It is test support: the rumor binary never
// links it (layering_test.go's TestShippedBinary checks).
//
// Chromium is Debian's `chromium`, which scripts/test.sh installs. Without it a test
// skips on a developer machine and fails in CI (CI=true). It runs headless, as root
// without the sandbox (chromedp.NoSandbox) and with background networking off, so the
// browser talks to nothing but the agent on loopback the test points it at.
//
// # Concurrency
//
// A Browser serves one test; each Tab is one browser tab, driven from one goroutine.
//
// # Testing
//
// Its own use is its test: every browser test of package ui goes through it.
package uitest

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ExecPath finds the Chromium binary: $RUMOR_CHROMIUM, else chromium or
// chromium-browser on PATH; "" if none.
func ExecPath() string {
	if p := os.Getenv("RUMOR_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Browser is a headless Chromium started for one test.
type Browser struct {
	ctx context.Context // the allocator's
}

// Start starts Chromium, stopped when the test ends. Without Chromium it skips the
// test, or fails it in CI.
func Start(t testing.TB) *Browser {
	t.Helper()
	path := ExecPath()
	if path == "" {
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			t.Fatal("uitest: chromium not found (CI=true: scripts/test.sh installs it; browser tests must run, not skip)")
		}
		t.Skip("uitest: chromium not found: apt-get install chromium (or set RUMOR_CHROMIUM)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.WindowSize(1280, 900),
	)
	ctx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	return &Browser{ctx: ctx}
}

// Tab opens a new tab, closed when the test ends. Every action in it is bounded by
// within.
func (b *Browser) Tab(t testing.TB, within time.Duration) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	t.Cleanup(cancel)
	// The first Do starts the browser (for the first tab) and the tab.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("uitest: start chromium: %v", err)
	}
	tctx, tcancel := context.WithTimeout(ctx, within)
	t.Cleanup(tcancel)
	return tctx
}
