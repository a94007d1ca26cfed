package httpapi

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/catalog/catalogtest"
)

// fakeKeyring is a pool of named members, each with a keyring, in memory.
type fakeKeyring struct {
	mu      sync.Mutex
	members map[string]*memberKeys
	silent  map[string]bool // members that do not answer
}

type memberKeys struct {
	primary string
	keys    []string
}

func newFakeKeyring(key string, members ...string) *fakeKeyring {
	k := &fakeKeyring{members: map[string]*memberKeys{}, silent: map[string]bool{}}
	for _, m := range members {
		k.members[m] = &memberKeys{primary: key, keys: []string{key}}
	}
	return k
}

func (k *fakeKeyring) KeyringOperation(_ context.Context, op KeyOp, key []byte) (KeyringResult, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	b := base64.StdEncoding.EncodeToString(key)
	if op == KeyRemove && k.members["n1"].primary == b {
		return KeyringResult{}, fmt.Errorf("remove key: it is the primary key: %w", catalog.ErrInvalid)
	}
	res := KeyringResult{NumNodes: len(k.members), Keys: map[string]int{}, PrimaryKeys: map[string]int{}, Errors: map[string]string{}}
	for name, m := range k.members {
		if k.silent[name] {
			res.Errors[name] = "no answer before the deadline"
			continue
		}
		switch op {
		case KeyInstall:
			m.keys = append(m.keys, b)
		case KeyUse:
			m.primary = b
		case KeyRemove:
			for i, have := range m.keys {
				if have == b {
					m.keys = append(m.keys[:i], m.keys[i+1:]...)
					break
				}
			}
		}
		for _, have := range m.keys {
			res.Keys[have]++
		}
		res.PrimaryKeys[m.primary]++
	}
	return res, nil
}

func (k *fakeKeyring) LocalKeys() (KeyringResult, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	m := k.members["n1"]
	res := KeyringResult{NumNodes: 1, Keys: map[string]int{}, PrimaryKeys: map[string]int{m.primary: 1}}
	for _, have := range m.keys {
		res.Keys[have] = 1
	}
	return res, nil
}

func TestKeyringEndpoints(t *testing.T) {
	cat, _ := catalogtest.New(t, catalog.Config{})
	key1 := base64.StdEncoding.EncodeToString(make([]byte, 32))
	key2 := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	kr := newFakeKeyring(key1, "n1", "n2", "n3")
	h, err := New(Config{Catalog: cat, Agent: newFakeAgent(cat), Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{h: h, cat: cat}
	list := func() keyringResponse {
		t.Helper()
		rec := f.do(t, "GET", "/v1/operator/keyring", "")
		if rec.Code != http.StatusOK {
			t.Fatalf("list: %d %s", rec.Code, rec.Body)
		}
		got := decode[[]keyringResponse](t, rec)
		if len(got) != 1 || got[0].WAN || got[0].Datacenter != "dc1" || got[0].NumNodes != 3 {
			t.Fatalf("list: %+v, want one LAN answer for dc1 with 3 nodes", got)
		}
		return got[0]
	}
	body := func(k string) string { return `{"Key": "` + k + `"}` }

	if got := list(); !reflect.DeepEqual(got.Keys, map[string]int{key1: 3}) || got.Messages != nil {
		t.Fatalf("initial keys %+v", got)
	}
	for _, step := range []struct{ method, key string }{{"POST", key2}, {"PUT", key2}, {"DELETE", key1}} {
		if rec := f.do(t, step.method, "/v1/operator/keyring", body(step.key)); rec.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", step.method, rec.Code, rec.Body)
		}
	}
	if got := list(); !reflect.DeepEqual(got.Keys, map[string]int{key2: 3}) || !reflect.DeepEqual(got.PrimaryKeys, map[string]int{key2: 3}) {
		t.Fatalf("after rotation: %+v", got)
	}
	rec := f.do(t, "GET", "/v1/operator/keyring?local-only=true", "")
	if got := decode[[]keyringResponse](t, rec); rec.Code != 200 || got[0].NumNodes != 1 {
		t.Errorf("local-only: %d %+v", rec.Code, got)
	}

	// A member that does not answer: named in Messages for a list (still 200), a 500
	// naming it for a change.
	kr.silent["n3"] = true
	if got := list(); got.Messages["n3"] == "" {
		t.Errorf("list with n3 silent: Messages %v", got.Messages)
	}
	rec = f.do(t, "POST", "/v1/operator/keyring", body(key1))
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "n3: no answer") {
		t.Errorf("install with n3 silent: %d %s", rec.Code, rec.Body)
	}
	kr.silent["n3"] = false
	before := list().Keys // key1 is back on the two members that answered

	for _, tc := range []struct {
		name, method, body string
		code               int
		want               string
	}{
		{"primary", "DELETE", body(key2), 400, "primary"},
		{"not base64", "POST", body("!!!"), 400, `Invalid Key "!!!": not base64`},
		{"wrong size", "PUT", body(base64.StdEncoding.EncodeToString([]byte("short"))), 400, "decodes to 5 bytes"},
		{"no key", "POST", `{}`, 400, "no key given"},
		{"empty body", "POST", ``, 400, "empty body"},
		{"unknown field", "POST", `{"Key": "` + key1 + `", "Extra": 1}`, 400, "Extra"},
		{"oversized", "POST", `{"Key": "` + strings.Repeat("A", MaxBodyBytes) + `"}`, 413, "too large"},
		{"wrong method", "PATCH", body(key1), 405, "not allowed"},
	} {
		rec := f.do(t, tc.method, "/v1/operator/keyring", tc.body)
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("%s: %d %q, want %d mentioning %q", tc.name, rec.Code, rec.Body, tc.code, tc.want)
		}
	}
	// Refused requests changed nothing.
	if got := list(); !reflect.DeepEqual(got.Keys, before) || before[key1] != 2 {
		t.Errorf("after refused requests: %v, want %v as before them", got.Keys, before)
	}
}

// Without a Keyring the operator endpoints stay out of scope.
func TestKeyringAbsent(t *testing.T) {
	f := newFixture(t)
	if rec := f.do(t, "GET", "/v1/operator/keyring", ""); rec.Code != http.StatusNotImplemented {
		t.Errorf("keyring without a Keyring: %d, want 501", rec.Code)
	}
}
