package rumor_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeSetup: the README's setup tells a new user how to get the rumor command
// before using it, that agents sharing a machine need distinct --node names, and its
// opening paragraph claims nothing the README lists as not built (issue 11 item 19).
func TestReadmeSetup(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	install := strings.Index(readme, "go install ./cmd/rumor")
	firstUse := regexp.MustCompile("(?m)^rumor agent").FindStringIndex(readme)
	if install < 0 || firstUse == nil || install > firstUse[0] {
		t.Errorf("README: the install step (go install ./cmd/rumor) must come before the first `rumor agent` (at %d, first use %v)", install, firstUse)
	}
	if !regexp.MustCompile(`on one machine[^.]*need[^.]*own .--node. name`).MatchString(readme) {
		t.Error("README does not say that agents on one machine need their own --node names")
	}

	opening := readme[:strings.Index(readme, "\n## ")]
	m := regexp.MustCompile(`Not built yet: ([^.]*)\.`).FindStringSubmatch(readme)
	if m == nil {
		return // everything is built
	}
	words := regexp.MustCompile(`[A-Za-z][A-Za-z0-9-]*`)
	said := map[string]bool{}
	for _, w := range words.FindAllString(opening, -1) {
		said[w] = true
	}
	for _, w := range words.FindAllString(m[1], -1) {
		if w == strings.ToUpper(w) || strings.ContainsAny(w, "-") || w == "mDNS" { // names of features: DNS, mDNS, DNS-SD
			if said[w] {
				t.Errorf("the opening paragraph mentions %s, which the README lists as not built (%q)", w, m[1])
			}
		}
	}
}
