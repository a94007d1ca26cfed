package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/rumor-sd/rumor/catalog"
)

// reloadingAgent is a fakeAgent with config files: Reload answers res, err.
type reloadingAgent struct {
	*fakeAgent
	res   ReloadResult
	err   error
	calls int
}

func (a *reloadingAgent) Reload(context.Context) (ReloadResult, error) {
	a.calls++
	return a.res, a.err
}

func TestAgentReload(t *testing.T) {
	for _, tc := range []struct {
		name     string
		method   string
		res      ReloadResult
		err      error
		wantCode int
		wantBody string
	}{
		{"applied", "PUT", ReloadResult{Added: []string{"db"}, Unchanged: []string{"web"}}, nil, 200,
			`{"Added":["db"],"Changed":[],"Removed":[],"Unchanged":["web"]}`},
		{"invalid file", "PUT", ReloadResult{}, fmt.Errorf("agent: config: %w", errors.Join(
			errors.New(`web.json: services[1].checks[0].interval: "10" is not a duration (use 10s)`), catalog.ErrInvalid)), 400,
			`web.json: services[1].checks[0].interval: "10" is not a duration (use 10s)`},
		{"save failed", "PUT", ReloadResult{}, errors.New("agent: save local state: disk full"), 500, "disk full"},
		{"wrong method", "GET", ReloadResult{}, nil, 405, "method GET not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			ra := &reloadingAgent{fakeAgent: f.ag, res: tc.res, err: tc.err}
			h, err := New(Config{Catalog: f.cat, Agent: ra})
			if err != nil {
				t.Fatal(err)
			}
			f.h = h
			rec := f.do(t, tc.method, "/v1/agent/reload", "")
			body := strings.TrimSpace(rec.Body.String())
			if rec.Code != tc.wantCode || !strings.Contains(body, tc.wantBody) {
				t.Fatalf("%s /v1/agent/reload = %d %q, want %d containing %q", tc.method, rec.Code, body, tc.wantCode, tc.wantBody)
			}
			if tc.wantCode == 200 {
				var got ReloadResult
				if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
					t.Fatal(err)
				}
			}
			if wantCalls := map[bool]int{true: 1, false: 0}[tc.method == "PUT"]; ra.calls != wantCalls {
				t.Errorf("Reload called %d times, want %d", ra.calls, wantCalls)
			}
		})
	}
}

func TestAgentReloadWithoutConfig(t *testing.T) {
	f := newFixture(t) // fakeAgent is no Reloader
	if rec := f.do(t, "PUT", "/v1/agent/reload", ""); rec.Code != http.StatusNotImplemented {
		t.Errorf("PUT /v1/agent/reload = %d %q, want 501", rec.Code, rec.Body)
	}
}
