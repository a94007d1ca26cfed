package agent

import (
	"crypto/tls"
	"fmt"
	"net"
)

// httpTLS wraps the HTTP API's listener in TLS when HTTPTLSCert and HTTPTLSKey are
// set, so the API serves HTTPS only; otherwise it returns ln as it is. On error it
// closes ln. The pair is read once, at start: replacing the files needs a restart.
func (c *Config) httpTLS(ln net.Listener) (net.Listener, error) {
	if c.HTTPTLSCert == "" {
		return ln, nil
	}
	cert, err := tls.LoadX509KeyPair(c.HTTPTLSCert, c.HTTPTLSKey)
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("agent: HTTP TLS: load certificate %s and key %s: %w", c.HTTPTLSCert, c.HTTPTLSKey, err)
	}
	return tls.NewListener(ln, &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	}), nil
}
