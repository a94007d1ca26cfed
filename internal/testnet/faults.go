package testnet

import (
	"context"
	"fmt"
	"strings"
)

// Cut takes h off the network: its port on the bridge goes down, so eth0 loses carrier
// and h can reach no other host, nor they h, multicast included; this holds as soon as
// Cut returns. Loopback inside h still works. Restore undoes it.
func (tb *Testbed) Cut(ctx context.Context, h *Host) error {
	return tb.setPort(ctx, h, "down")
}

// Restore puts a host that Cut took off back on the bridge and returns once its link is
// up again. The first packets may still wait for ARP, so callers that need a reply
// should poll for it with a deadline.
func (tb *Testbed) Restore(ctx context.Context, h *Host) error {
	return tb.setPort(ctx, h, "up")
}

func (tb *Testbed) setPort(ctx context.Context, h *Host, state string) error {
	if _, err := tb.hostIndex(h); err != nil {
		return err
	}
	if err := tb.checkOpen(); err != nil {
		return err
	}
	if err := run(ctx, "", "ip", "-n", tb.bridgeNS, "link", "set", h.port(), state); err != nil {
		return fmt.Errorf("testnet: set %s's bridge port %s: %w", h.name, state, err)
	}
	if state == "up" {
		return h.waitLinkUp(ctx)
	}
	return nil
}

// CutPair makes the bridge drop every frame between a and b, both ways, ARP and
// multicast included, while both still reach every other host. Cutting a pair that is
// already cut does nothing. RestorePair or Heal undoes it.
func (tb *Testbed) CutPair(ctx context.Context, a, b *Host) error {
	return tb.addCuts(ctx, "cut pair", [][2]*Host{{a, b}})
}

// RestorePair lets frames between a and b through again after CutPair or Split.
// Restoring a pair that is not cut does nothing.
func (tb *Testbed) RestorePair(ctx context.Context, a, b *Host) error {
	key, err := tb.pairKey(a, b)
	if err != nil {
		return err
	}
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.closed {
		return ErrClosed
	}
	if !tb.cutPairs[key] {
		return nil
	}
	script := fmt.Sprintf("delete element bridge testnet cut { %s }\n", pairElements(a, b))
	if err := nft(ctx, tb.bridgeNS, script); err != nil {
		return fmt.Errorf("testnet: restore pair %s, %s: %w", a.name, b.name, err)
	}
	delete(tb.cutPairs, key)
	return nil
}

// Split partitions the network: every host of groupA loses contact with every host of
// groupB, while hosts within a group, and hosts in neither, are unaffected. A host may
// not be in both groups. Heal undoes it.
func (tb *Testbed) Split(ctx context.Context, groupA, groupB []*Host) error {
	var pairs [][2]*Host
	for _, a := range groupA {
		for _, b := range groupB {
			pairs = append(pairs, [2]*Host{a, b})
		}
	}
	return tb.addCuts(ctx, "split", pairs)
}

// Heal lets every pair cut by Split or CutPair talk again. It does not undo Cut or
// Loss.
func (tb *Testbed) Heal(ctx context.Context) error {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.closed {
		return ErrClosed
	}
	if err := nft(ctx, tb.bridgeNS, "flush set bridge testnet cut\n"); err != nil {
		return fmt.Errorf("testnet: heal: %w", err)
	}
	clear(tb.cutPairs)
	return nil
}

// addCuts adds the pairs not yet cut to the bridge's drop set in one transaction.
func (tb *Testbed) addCuts(ctx context.Context, what string, pairs [][2]*Host) error {
	keys := make([][2]int, len(pairs))
	for i, p := range pairs {
		k, err := tb.pairKey(p[0], p[1])
		if err != nil {
			return fmt.Errorf("testnet: %s: %w", what, err)
		}
		keys[i] = k
	}
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.closed {
		return ErrClosed
	}
	var elems []string
	for i, p := range pairs {
		if !tb.cutPairs[keys[i]] {
			elems = append(elems, pairElements(p[0], p[1]))
		}
	}
	if len(elems) == 0 {
		return nil
	}
	script := fmt.Sprintf("add element bridge testnet cut { %s }\n", strings.Join(elems, ", "))
	if err := nft(ctx, tb.bridgeNS, script); err != nil {
		return fmt.Errorf("testnet: %s: %w", what, err)
	}
	for _, k := range keys {
		tb.cutPairs[k] = true
	}
	return nil
}

// pairKey checks a pair of distinct hosts of tb and returns it in canonical order.
func (tb *Testbed) pairKey(a, b *Host) ([2]int, error) {
	i, err := tb.hostIndex(a)
	if err != nil {
		return [2]int{}, err
	}
	j, err := tb.hostIndex(b)
	if err != nil {
		return [2]int{}, err
	}
	if i == j {
		return [2]int{}, fmt.Errorf("testnet: cannot cut %s from itself", a.name)
	}
	return [2]int{min(i, j), max(i, j)}, nil
}

// pairElements is the nft set elements for both directions between a and b.
func pairElements(a, b *Host) string {
	return fmt.Sprintf("%q . %q, %q . %q", a.port(), b.port(), b.port(), a.port())
}

// Loss makes h drop each IP packet arriving on eth0 with probability percent/100
// (0 to 100), independently, with an nftables rule inside h; ARP is not affected.
// Each call replaces the previous rate; 0 removes the rule (see ClearLoss).
func (tb *Testbed) Loss(ctx context.Context, h *Host, percent int) error {
	if _, err := tb.hostIndex(h); err != nil {
		return err
	}
	if percent < 0 || percent > 100 {
		return fmt.Errorf("testnet: loss %d%% on %s: want 0 to 100", percent, h.name)
	}
	if err := tb.checkOpen(); err != nil {
		return err
	}
	// Declaring the table first makes the delete succeed when it does not exist yet;
	// the whole script is one transaction, so no packet sees a half-made state.
	script := "table inet testnet\ndelete table inet testnet\n"
	if percent > 0 {
		match := fmt.Sprintf("numgen random mod 100 < %d", percent)
		if percent == 100 {
			match = "" // nft rejects "< 100" for a value mod 100
		}
		script += fmt.Sprintf(`table inet testnet {
	chain input {
		type filter hook input priority filter; policy accept;
		iifname "eth0" %s drop
	}
}
`, match)
	}
	if err := nft(ctx, h.name, script); err != nil {
		return fmt.Errorf("testnet: set loss %d%% on %s: %w", percent, h.name, err)
	}
	return nil
}

// ClearLoss removes the packet loss that Loss set on h.
func (tb *Testbed) ClearLoss(ctx context.Context, h *Host) error {
	return tb.Loss(ctx, h, 0)
}

// checkOpen returns ErrClosed once Close has started.
func (tb *Testbed) checkOpen() error {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.closed {
		return ErrClosed
	}
	return nil
}
