package compat

import (
	"fmt"
	"io"
	"net/http"
	"testing"

	consulapi "github.com/hashicorp/consul/api"
)

// TestLargeAnswersGzipped reads an answer large enough for the agent to gzip it
// (over 1 KiB) with consul/api, whose transport asks for gzip and decompresses, and
// checks on the wire that it was sent compressed, and plain to a client that does not
// ask for gzip.
func TestLargeAnswersGzipped(t *testing.T) {
	a := startAgent(t, "alpha")
	const n = 20
	for i := range n {
		reg := webRegistration(fmt.Sprint("web-", i))
		reg.Check = nil
		if err := a.client.Agent().ServiceRegister(reg); err != nil {
			t.Fatalf("ServiceRegister: %v", err)
		}
	}
	entries, meta, err := a.client.Health().Service("web", "", false, nil)
	if err != nil || len(entries) != n || meta.LastIndex == 0 {
		t.Fatalf("Health().Service(web) = %d entries (index %d), %v; want %d", len(entries), meta.LastIndex, err, n)
	}
	services, _, err := a.client.Catalog().Service("web", "", &consulapi.QueryOptions{WaitIndex: 1})
	if err != nil || len(services) != n {
		t.Fatalf("Catalog().Service(web) = %d, %v; want %d", len(services), err, n)
	}

	for _, tc := range []struct {
		acceptEncoding, wantEncoding string
	}{{"gzip", "gzip"}, {"", ""}} {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+a.http+"/v1/health/service/web", nil)
		if tc.acceptEncoding != "" {
			req.Header.Set("Accept-Encoding", tc.acceptEncoding) // set by hand: the transport leaves the body compressed
		}
		tr := &http.Transport{DisableCompression: true}
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tr.CloseIdleConnections()
		if got := resp.Header.Get("Content-Encoding"); resp.StatusCode != http.StatusOK || got != tc.wantEncoding || resp.Header.Get("Vary") != "Accept-Encoding" {
			t.Errorf("GET with Accept-Encoding %q: status %d, Content-Encoding %q, Vary %q, %d bytes; want 200, %q, Accept-Encoding",
				tc.acceptEncoding, resp.StatusCode, got, resp.Header.Get("Vary"), len(body), tc.wantEncoding)
		}
	}
}
