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
	"os"
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
func (c *client) do(ctx context.Context, method, path string, body []byte, out any) error {
	if c.err != nil {
		return c.err
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return usagef("--http-addr %q: %v", c.addr, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("X-Consul-Token", c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ne net.Error
		msg := fmt.Sprintf("no agent at %s: is `rumor agent` running? (point --http-addr or RUMOR_HTTP_ADDR at it)", c.addr)
		if errors.As(err, &ne) && ne.Timeout() {
			msg = fmt.Sprintf("the agent at %s did not answer within %s", c.addr, requestTimeout)
		}
		return exitError{code: exitNoAgent, err: errors.New(msg)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read the answer of %s: %w", c.addr, err)
	}
	if resp.StatusCode/100 != 2 {
		return &apiError{status: resp.StatusCode, msg: strings.TrimSpace(string(b))}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("the answer from %s is not what rumor expects (is it a rumor or Consul agent?): %w", c.addr, err)
	}
	return nil
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
