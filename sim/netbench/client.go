package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rumor-sd/rumor/internal/testnet"
)

// agentHTTPAddr is where every agent serves its API: its own namespace's loopback,
// which only sockets opened inside that namespace can reach.
const agentHTTPAddr = "127.0.0.1:8500"

// client talks to one agent's HTTP API. Its connections are dialled inside the
// agent's namespace (testnet.Host.DialContext) and kept alive, so a request costs no dial.
type client struct {
	host string // the agent's host (namespace) or name, for errors
	addr string // its HTTP API, host:port
	http *http.Client
}

func newClient(h *testnet.Host) *client {
	tr := &http.Transport{
		DialContext:         h.DialContext,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     time.Minute,
	}
	return &client{host: h.String(), addr: agentHTTPAddr, http: &http.Client{Transport: tr}}
}

// newLocalClient talks to an agent listening at addr in this namespace (loopback runs).
func newLocalClient(name, addr string) *client {
	tr := &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: time.Minute}
	return &client{host: name, addr: addr, http: &http.Client{Transport: tr}}
}

func (c *client) close() { c.http.CloseIdleConnections() }

// get fetches path and returns the body and the X-Consul-Index header (0 if absent).
func (c *client) get(ctx context.Context, path string) ([]byte, uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.addr+path, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: GET %s: %w", c.host, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: GET %s: %w", c.host, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("%s: GET %s: %s: %s", c.host, path, resp.Status, strings.TrimSpace(string(body)))
	}
	idx, _ := strconv.ParseUint(resp.Header.Get("X-Consul-Index"), 10, 64)
	return body, idx, nil
}

// put sends body (JSON) to path.
func (c *client) put(ctx context.Context, path string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, "http://"+c.addr+path, strings.NewReader(string(b)))
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s: PUT %s: %w", c.host, path, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: PUT %s: %s: %s", c.host, path, resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

// waitUntil runs a blocking query on path until cond holds for its answer, and
// returns when it first saw it hold. Each answer's index is passed back, so the agent
// answers as soon as the topic changes; the first request does not block, so a state
// already reached is seen at once.
func (c *client) waitUntil(ctx context.Context, path string, cond func(body []byte) bool) (time.Time, error) {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	var idx uint64
	for {
		q := path
		if idx > 0 {
			q = fmt.Sprintf("%s%sindex=%d&wait=10s", path, sep, idx)
		}
		body, next, err := c.get(ctx, q)
		if err != nil {
			return time.Time{}, err
		}
		if cond(body) {
			return time.Now(), nil
		}
		idx = next
	}
}

// countEntries is a cond for waitUntil: the answer is a JSON array of n entries.
func countEntries(n int) func([]byte) bool {
	return func(body []byte) bool {
		var entries []json.RawMessage
		return json.Unmarshal(body, &entries) == nil && len(entries) == n
	}
}

// member is the part of /v1/agent/members the benchmark reads.
type member struct {
	Name   string
	Status int // serf's: 1 alive, 3 left, 4 failed
}

const (
	statusAlive  = 1
	statusFailed = 4
)

func (c *client) members(ctx context.Context) ([]member, error) {
	body, _, err := c.get(ctx, "/v1/agent/members")
	if err != nil {
		return nil, err
	}
	var ms []member
	if err := json.Unmarshal(body, &ms); err != nil {
		return nil, fmt.Errorf("%s: /v1/agent/members: %w", c.host, err)
	}
	return ms, nil
}
