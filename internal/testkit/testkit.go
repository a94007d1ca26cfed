package testkit

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// PollInterval is how often Eventually tries its condition.
const PollInterval = 10 * time.Millisecond

// Eventually polls cond every PollInterval until it holds and returns how long that
// took; if within passes first, it fails the test (Fatal) naming what was awaited.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	return Poll(t, within, PollInterval, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet{}
	})
}

// errNotYet is Eventually's "not yet": its condition says no more than that.
type errNotYet struct{}

func (errNotYet) Error() string { return "not yet" }

// Poll tries cond every `every` until it returns nil and returns how long that took;
// if within passes first, it fails the test (Fatal) naming what was awaited and
// cond's last error, which says why not.
func Poll(t testing.TB, within, every time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	for {
		err := cond()
		if err == nil {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			if _, plain := err.(errNotYet); plain {
				t.Fatalf("timed out after %s waiting for %s", within, what)
			}
			t.Fatalf("timed out after %s waiting for %s: %v", within, what, err)
		}
		time.Sleep(every) // the polling interval; the deadline bounds the wait
	}
}

// Runner is what Running starts: an agent, or anything started with Start and
// stopped with Shutdown.
type Runner interface {
	Start(ctx context.Context) error
	Shutdown() error
}

// Running starts r, which its constructor returned with err, and shuts it down when
// the test ends; it fails the test (Fatal) if err is set or Start fails, and reports
// an error from Shutdown:
//
//	a, err := agent.New(cfg)
//	a = testkit.Running(t, a, err)
func Running[R Runner](t testing.TB, r R, err error) R {
	t.Helper()
	if err != nil {
		t.Fatalf("new: %v", err)
	}
	if err := r.Start(t.Context()); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Shutdown(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return r
}

// Cert is a self-signed certificate for 127.0.0.1, valid for an hour either way.
type Cert struct {
	TLS     tls.Certificate // for a tls.Config of a test server
	CertPEM []byte          // the certificate, PEM
	KeyPEM  []byte          // its private key (ECDSA P-256), PEM
	Pool    *x509.CertPool  // trusts the certificate, for a client
}

// SelfSigned returns a new self-signed certificate for 127.0.0.1.
func SelfSigned(t testing.TB) Cert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rumor test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return Cert{
		TLS:     tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}),
		Pool:    pool,
	}
}

// Write writes the certificate and key as cert.pem and key.pem into dir and returns
// their paths.
func (c Cert) Write(t testing.TB, dir string) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for f, b := range map[string][]byte{certFile: c.CertPEM, keyFile: c.KeyPEM} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}

// LeakWait is how long NoLeaks waits for goroutines to end. memberlist's Shutdown
// does not wait for its in-flight probes: each ends by itself within a probe
// interval, which Lifeguard stretches up to 8× after failed probes.
const LeakWait = 20 * time.Second

// NoLeaks checks, once the test and the cleanups registered after it are done, that
// every goroutine started since NoLeaks was called has ended, retrying for up to
// LeakWait; else the test fails naming them (goleak).
func NoLeaks(t testing.TB) {
	t.Helper()
	noLeaks(t, LeakWait)
}

func noLeaks(t testing.TB, wait time.Duration) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		deadline := time.Now().Add(wait)
		for {
			err := goleak.Find(ignore) // retries for a moment itself
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Error(err)
				return
			}
		}
	})
}

// Buffer is a bytes.Buffer safe for concurrent use, for logs written by goroutines
// the test reads while they run.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// mdnsGuardEnv is mdns.GuardEnv (internal/ packages may not import mdns; mdns's
// tests check the two agree).
const mdnsGuardEnv = "RUMOR_MDNS_GUARD"

// GuardMDNS makes this test binary, and every process it starts, refuse to run mDNS
// in the root network namespace (see mdns.GuardRootNamespace): call it first in
// TestMain of every package whose tests run agents, so that no test multicasts on
// the machine's real interfaces, even by accident. Agents inside test namespaces
// (internal/testnet) are not affected.
// It panics if the namespace cannot be read: a guard that silently does nothing
// would be worse.
func GuardMDNS() {
	ns, err := os.Readlink("/proc/self/ns/net") // TestMain runs in the process's namespace
	if err != nil {
		panic("testkit: GuardMDNS: " + err.Error())
	}
	_ = os.Setenv(mdnsGuardEnv, ns)
}
