package gossip

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rumor-sd/rumor/catalog/catalogtest"
)

func TestKeyMessagesRoundTrip(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 24)
	dl := time.UnixMilli(1_800_000_000_123)
	sender, id, gotDL, op, gotKey, err := decodeKeyQuery(encodeKeyQuery("n1", 42, dl, KeyUse, key))
	if err != nil || sender != "n1" || id != 42 || !gotDL.Equal(dl) || op != KeyUse || !bytes.Equal(gotKey, key) {
		t.Fatalf("keyquery: %s %d %s %s %x %v", sender, id, gotDL, op, gotKey, err)
	}
	a := keyAnswer{node: "n2", keys: [][]byte{bytes.Repeat([]byte{1}, 32), key}, primary: key}
	id, got, err := decodeKeyResponse(encodeKeyResponse("n2", 9, a))
	if err != nil || id != 9 || !reflect.DeepEqual(got, a) {
		t.Fatalf("keyresponse: %d %+v %v", id, got, err)
	}
	a = keyAnswer{node: "n3", err: "boom"}
	if _, got, err := decodeKeyResponse(encodeKeyResponse("n3", 1, a)); err != nil || got.err != "boom" || got.keys != nil || got.primary != nil {
		t.Fatalf("error keyresponse: %+v %v", got, err)
	}
}

func TestKeyMessagesRejectGarbage(t *testing.T) {
	good := encodeKeyQuery("n1", 1, time.Now(), KeyInstall, bytes.Repeat([]byte{1}, 16))
	for name, b := range map[string][]byte{
		"empty":          nil,
		"wrong type":     {msgKeys, 1, 'a'},
		"truncated":      good[:len(good)-3],
		"trailing bytes": append(bytes.Clone(good), 0),
		"bad op":         encodeKeyQuery("n1", 1, time.Now(), KeyOp(9), nil),
		"key too long":   encodeKeyQuery("n1", 1, time.Now(), KeyInstall, make([]byte, 33)),
	} {
		if _, _, _, _, _, err := decodeKeyQuery(b); !errors.Is(err, errMalformed) {
			t.Errorf("keyquery %s: error %v, want errMalformed", name, err)
		}
	}
	resp := encodeKeyResponse("n1", 1, keyAnswer{keys: [][]byte{make([]byte, 16)}, primary: make([]byte, 16)})
	for name, b := range map[string][]byte{
		"truncated":     resp[:len(resp)-2],
		"bad key size":  encodeKeyResponse("n1", 1, keyAnswer{keys: [][]byte{make([]byte, 5)}}),
		"primary range": append(bytes.Clone(resp[:len(resp)-1]), 5),
	} {
		if _, _, err := decodeKeyResponse(b); !errors.Is(err, errMalformed) {
			t.Errorf("keyresponse %s: error %v, want errMalformed", name, err)
		}
	}
}

func b64(k []byte) string { return base64.StdEncoding.EncodeToString(k) }

// A pool-wide rotation driven from one node — install the new key everywhere, make it
// primary everywhere, remove the old one everywhere — while records keep flowing.
func TestKeyringQueryRotatesThePool(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		key1 := bytes.Repeat([]byte{1}, 32)
		key2 := bytes.Repeat([]byte{2}, 32)
		c := newKeyedCluster(t, 3, 4, [][]byte{key1}, nil)
		defer c.shutdown()
		within(t, 30*time.Second, "converged", converged(c.nodes))
		driver := c.nodes[0]
		query := func(op KeyOp, key []byte) KeyringResult {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			res, err := driver.g.KeyringQuery(ctx, op, key)
			if err != nil {
				t.Fatalf("%s: %v", op, err)
			}
			if res.NumNodes != 3 || len(res.Errors) != 0 {
				t.Fatalf("%s: %+v, want 3 nodes and no errors", op, res)
			}
			return res
		}
		spread := func(step int) {
			t.Helper()
			src := c.nodes[step%3]
			id := fmt.Sprintf("svc-%d", step)
			src.publish(src.w.PutService(catalogtest.Service(id, id, 1000+step)))
			within(t, 5*time.Second, "records still flow after step "+id, allSee(c.nodes, id, src.name+"/"+id+"=passing"))
		}

		res := query(KeyList, nil)
		if want := map[string]int{b64(key1): 3}; !reflect.DeepEqual(res.Keys, want) || !reflect.DeepEqual(res.PrimaryKeys, want) {
			t.Fatalf("list before: %+v", res)
		}
		spread(0)
		res = query(KeyInstall, key2)
		if want := map[string]int{b64(key1): 3, b64(key2): 3}; !reflect.DeepEqual(res.Keys, want) {
			t.Fatalf("after install: keys %v, want %v", res.Keys, want)
		}
		spread(1)
		res = query(KeyUse, key2)
		if want := map[string]int{b64(key2): 3}; !reflect.DeepEqual(res.PrimaryKeys, want) {
			t.Fatalf("after use: primary %v, want %v", res.PrimaryKeys, want)
		}
		spread(2)
		res = query(KeyRemove, key1)
		if want := map[string]int{b64(key2): 3}; !reflect.DeepEqual(res.Keys, want) || !reflect.DeepEqual(res.PrimaryKeys, want) {
			t.Fatalf("after remove: %+v", res)
		}
		spread(3)
		for _, nd := range c.nodes {
			if p, all, err := nd.g.Keys(); err != nil || !bytes.Equal(p, key2) || len(all) != 1 {
				t.Errorf("%s holds primary %x and %d keys (%v), want key2 alone", nd.name, p, len(all), err)
			}
		}
		// Only the new key opens the pool now.
		old := c.start("old", [][]byte{key1})
		c.nodes = append(c.nodes, old)
		if _, err := old.g.Join(context.Background(), []string{driver.tr.Addr()}); err == nil {
			t.Error("a node with the removed key joined")
		}
		c.nodes = c.nodes[:3]
		_ = old.g.Shutdown()
	})
}

func TestKeyringQueryErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		key1 := bytes.Repeat([]byte{1}, 32)
		key2 := bytes.Repeat([]byte{2}, 16)
		c := newKeyedCluster(t, 3, 5, [][]byte{key1}, nil)
		defer c.shutdown()
		within(t, 30*time.Second, "converged", converged(c.nodes))
		g := c.nodes[0].g
		ctx := context.Background()

		// Refused before anything is sent.
		if _, err := g.KeyringQuery(ctx, KeyRemove, key1); !errors.Is(err, ErrPrimaryKey) {
			t.Errorf("removing the primary key: %v", err)
		}
		if _, err := g.KeyringQuery(ctx, KeyInstall, []byte("short")); err == nil || !strings.Contains(err.Error(), "want 16, 24 or 32") {
			t.Errorf("installing a 5-byte key: %v", err)
		}
		if _, err := g.KeyringQuery(ctx, KeyUse, key2); !errors.Is(err, ErrKeyringPartial) {
			t.Errorf("using a key nobody has: %v, want ErrKeyringPartial", err)
		}

		// A member that does not answer is reported once the deadline passes.
		c.net.SetDown("n02", true)
		c.nodes[2].dead = true
		dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		start := time.Now()
		res, err := g.KeyringQuery(dctx, KeyInstall, key2)
		if !errors.Is(err, ErrKeyringPartial) || !strings.Contains(err.Error(), "n02") {
			t.Fatalf("install with n02 down: %v", err)
		}
		if took := time.Since(start); took > 3*time.Second+time.Millisecond {
			t.Errorf("query outlived its deadline: %s", took)
		}
		if res.NumNodes != 3 || res.Keys[b64(key2)] != 2 || res.Errors["n02"] == "" {
			t.Errorf("result %+v, want key2 on 2 of 3 and an error for n02", res)
		}

		// A recorded query sent again is not applied again.
		n1 := c.nodes[1]
		msg := encodeKeyQuery("n00", 12345, time.Now().Add(time.Minute), KeyRemove, key2)
		n1.g.handle(inboxMsg{data: msg})
		if _, all, _ := n1.g.Keys(); len(all) != 1 {
			t.Fatalf("n01 holds %d keys after the remove query, want 1", len(all))
		}
		if err := n1.g.InstallKey(key2); err != nil {
			t.Fatal(err)
		}
		n1.g.handle(inboxMsg{data: msg})
		if _, all, _ := n1.g.Keys(); len(all) != 2 {
			t.Errorf("a replayed remove query was applied again")
		}
		if got := testutil.ToFloat64(n1.g.metrics.dropped.WithLabelValues("replayed_keyquery")); got != 1 {
			t.Errorf("replayed_keyquery drops = %v, want 1", got)
		}
		// So is one past its deadline.
		expired := encodeKeyQuery("n00", 777, time.Now().Add(-2*MaxKeyQuerySkew), KeyRemove, key2)
		n1.g.handle(inboxMsg{data: expired})
		if _, all, _ := n1.g.Keys(); len(all) != 2 {
			t.Errorf("an expired remove query was applied")
		}
		pass(time.Second) // let the answers sent above finish
	})
}
