package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// requestTimeout bounds one CLI request to the agent.
const requestTimeout = 30 * time.Second

// clientFlags are the flags every client command has.
type clientFlags struct {
	httpAddr string
	token    string
	caCert   string // PEM file of the CA that signed an HTTPS agent's certificate
	json     bool
}

// addClientFlags adds --http-addr and --json to cmd.
func addClientFlags(c *cli, cmd *cobra.Command, f *clientFlags) {
	def := c.getenv("RUMOR_HTTP_ADDR")
	if def == "" {
		def = "127.0.0.1:8500"
	}
	cmd.Flags().StringVar(&f.httpAddr, "http-addr", def, "address of the agent's HTTP API (env RUMOR_HTTP_ADDR)")
	cmd.Flags().BoolVar(&f.json, "json", false, "print JSON for scripts instead of a table")
	f.token = c.getenv("RUMOR_HTTP_TOKEN") // from the environment only: flags show in ps
	f.caCert = c.getenv("RUMOR_HTTP_CACERT")
}

// client talks to an agent's HTTP API.
type client struct {
	addr  string // as the user gave it, for messages
	base  string // http://host:port
	token string // sent as X-Consul-Token when set
	hc    *http.Client
	err   error // a setup error (unreadable CA file), returned by every request
}

func newClient(f *clientFlags) *client {
	base := strings.TrimSuffix(f.httpAddr, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	c := &client{addr: f.httpAddr, base: base, token: f.token, hc: &http.Client{Timeout: requestTimeout}}
	if err := checkHTTPAddr(base); err != nil {
		c.err = usagef("--http-addr %q: %v", f.httpAddr, err)
		return c
	}
	if f.caCert != "" {
		pem, err := os.ReadFile(f.caCert)
		pool := x509.NewCertPool()
		if err == nil && !pool.AppendCertsFromPEM(pem) {
			err = errors.New("no PEM certificate in it")
		}
		if err != nil {
			c.err = usagef("RUMOR_HTTP_CACERT %s: %v", f.caCert, err)
			return c
		}
		c.hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}
	return c
}

// apiError is a non-2xx answer from the agent.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

// do sends a request and decodes a JSON answer into out (if not nil). A connection
// failure becomes exit code 3 with advice; an error answer becomes an *apiError.
// newRequest builds a request to the agent, with the token when there is one.
func (c *client) newRequest(ctx context.Context, method, target string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, usagef("--http-addr %q: %v", c.addr, err)
	}
	if c.token != "" {
		req.Header.Set("X-Consul-Token", c.token)
	}
	return req, nil
}

func (c *client) do(ctx context.Context, method, path string, body []byte, out any) error {
	if c.err != nil {
		return c.err
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := c.newRequest(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return c.connError(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read the answer of %s: %w", c.addr, err)
	}
	if resp.StatusCode/100 != 2 {
		return c.answerError(resp.StatusCode, b)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("the answer from %s is not what rumor expects (is it a rumor or Consul agent?): %w", c.addr, err)
	}
	return nil
}

// checkHTTPAddr checks --http-addr once made a URL (scheme://host:port): a bad
// address is the user's mistake (exit 2), not an agent that is not there.
func checkHTTPAddr(base string) error {
	u, err := url.Parse(base)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme %q: want http:// or https://", u.Scheme)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %q: want 1–65535", p)
		}
	}
	if u.Hostname() == "" {
		return errors.New("no host: want host:port such as 127.0.0.1:8500")
	}
	return nil
}

// connError explains a request that got no answer: a TLS problem says what failed
// and how to fix it (exit 1: an agent is there); anything else is no agent (exit 3).
func (c *client) connError(err error) error {
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
		record    tls.RecordHeaderError
		alert     tls.AlertError
		ne        net.Error
	)
	const caHint = "set RUMOR_HTTP_CACERT to the PEM file of the CA that signed the agent's certificate (--http-tls-cert)"
	failed := func(format string, args ...any) error {
		return exitError{code: exitFailed, err: fmt.Errorf(format, args...)}
	}
	// net/http replaces the tls.RecordHeaderError of an HTTP answer by this text.
	plainHTTP := errors.As(err, &record) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client")
	switch {
	case errors.As(err, &unknownCA):
		return failed("TLS: the agent at %s has a certificate signed by an authority this client does not trust: %s", c.addr, caHint)
	case errors.As(err, &hostname):
		return failed("TLS: the agent's certificate is not valid for %s (%v): address the agent by a name or IP its certificate holds", c.addr, hostname)
	case errors.As(err, &invalid), errors.As(err, &verify):
		return failed("TLS: the agent at %s has a certificate this client cannot verify (%v): %s", c.addr, err, caHint)
	case plainHTTP:
		return failed("TLS: the agent at %s serves plain HTTP, not HTTPS: use http:// in --http-addr (RUMOR_HTTP_ADDR)", c.addr)
	case errors.As(err, &alert):
		return failed("TLS: the agent at %s refused the handshake (%v)", c.addr, alert)
	case errors.As(err, &ne) && ne.Timeout():
		return exitError{code: exitNoAgent, err: fmt.Errorf("the agent at %s did not answer within %s", c.addr, requestTimeout)}
	}
	return exitError{code: exitNoAgent, err: fmt.Errorf("no agent at %s: is `rumor agent` running? (point --http-addr or RUMOR_HTTP_ADDR at it)", c.addr)}
}

// answerError is an error answer; a plain HTTP request to an HTTPS agent (which
// Go's server answers with a 400 saying so) says how to fix it.
func (c *client) answerError(status int, body []byte) error {
	if status == http.StatusBadRequest && bytes.Contains(body, []byte("Client sent an HTTP request to an HTTPS server")) {
		return exitError{code: exitFailed, err: fmt.Errorf("TLS: the agent at %s serves HTTPS: use https:// in --http-addr (RUMOR_HTTP_ADDR), and RUMOR_HTTP_CACERT if its certificate is not signed by a CA this system trusts", c.addr)}
	}
	return &apiError{status: status, msg: strings.TrimSpace(string(body))}
}

// printJSON prints v indented.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table prints rows under a header, aligned.
func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}
