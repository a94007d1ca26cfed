package catalog

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// Limits on what a record may hold. They bound memory and gossip packet sizes and catch
// mistakes early; they match or undercut Consul's so definitions written for Consul fit.
const (
	MaxNameLen      = 255  // node names, service names and IDs, check IDs and names
	MaxTagLen       = 255  // one tag
	MaxTags         = 64   // tags per service
	MaxMetaKeys     = 64   // meta entries per node or service
	MaxMetaKeyLen   = 128  // one meta key
	MaxMetaValueLen = 512  // one meta value
	MaxAddressLen   = 255  // an address (IP or host name)
	MaxOutputLen    = 4096 // check output; longer output is truncated by the check runner
	MaxNotesLen     = 1024 // check notes
	MaxKindLen      = 64   // service kind
)

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid")

// FieldError names the field that is wrong and why. Validation returns every field
// error it finds, joined, so a user fixes a definition in one go.
type FieldError struct {
	Field  string // dotted path, e.g. "service.meta[\"x\"]"
	Reason string // what is wrong, in words a user understands
}

// Error implements error.
func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Unwrap lets errors.Is(err, ErrInvalid) hold.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// validator collects field errors.
type validator struct{ errs []error }

func (v *validator) addf(field, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
}

func (v *validator) err() error { return errors.Join(v.errs...) }

// name checks a required identifier: non-empty, bounded, printable, no whitespace.
func (v *validator) name(field, s string) {
	switch {
	case s == "":
		v.addf(field, "must not be empty")
	case len(s) > MaxNameLen:
		v.addf(field, "is %d bytes, more than the %d allowed", len(s), MaxNameLen)
	default:
		v.printable(field, s, false)
	}
}

// printable rejects control characters (and spaces unless allowed): they break logs,
// DNS answers and shell use of names.
func (v *validator) printable(field, s string, spaceOK bool) {
	if i := badChar(s, spaceOK); i >= 0 {
		r, _ := utf8.DecodeRuneInString(s[i:])
		v.addf(field, "has an invalid character %q at byte %d", r, i)
	}
}

// badChar returns the byte offset of the first control character, invalid UTF-8 or
// (unless spaceOK) space in s, or -1.
func badChar(s string, spaceOK bool) int {
	for i, r := range s {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError || (!spaceOK && r == ' ') {
			return i
		}
	}
	return -1
}

func (v *validator) maxLen(field, s string, max int) {
	if len(s) > max {
		v.addf(field, "is %d bytes, more than the %d allowed", len(s), max)
	}
}

// address accepts an empty string, an IP address or a DNS host name.
func (v *validator) address(field, s string) {
	if s == "" {
		return
	}
	if len(s) > MaxAddressLen {
		v.addf(field, "is %d bytes, more than the %d allowed", len(s), MaxAddressLen)
		return
	}
	if !addressOK(s) {
		v.addf(field, "%q is neither an IP address nor a host name", s)
	}
}

func addressOK(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	return isHostName(s)
}

// isHostName reports whether s is a plausible DNS host name (RFC 1123 labels, a trailing
// dot allowed; underscores tolerated as many private networks use them).
func isHostName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// meta checks a metadata map: bounded size, keys of letters, digits, '-' and '_'
// (Consul's rule, so keys survive DNS TXT records and HTTP filters).
func (v *validator) meta(field string, m map[string]string) {
	if len(m) > MaxMetaKeys {
		v.addf(field, "has %d keys, more than the %d allowed", len(m), MaxMetaKeys)
	}
	for k, val := range m {
		if k != "" && len(k) <= MaxMetaKeyLen && isMetaKey(k) && len(val) <= MaxMetaValueLen {
			continue // the common case, without formatting a field name
		}
		kf := fmt.Sprintf("%s[%q]", field, k)
		switch {
		case k == "":
			v.addf(kf, "key must not be empty")
		case len(k) > MaxMetaKeyLen:
			v.addf(kf, "key is %d bytes, more than the %d allowed", len(k), MaxMetaKeyLen)
		case !isMetaKey(k):
			v.addf(kf, "key may hold only letters, digits, '-' and '_'")
		}
		if len(val) > MaxMetaValueLen {
			v.addf(kf, "value is %d bytes, more than the %d allowed", len(val), MaxMetaValueLen)
		}
	}
}

func isMetaKey(k string) bool {
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// taggedAddresses checks named alternative addresses.
func (v *validator) taggedAddresses(field string, m map[string]string) {
	if len(m) > MaxMetaKeys {
		v.addf(field, "has %d entries, more than the %d allowed", len(m), MaxMetaKeys)
	}
	for k, a := range m {
		if k != "" && len(k) <= MaxMetaKeyLen && isMetaKey(k) && a != "" && addressOK(a) {
			continue
		}
		kf := fmt.Sprintf("%s[%q]", field, k)
		if k == "" || len(k) > MaxMetaKeyLen || !isMetaKey(k) {
			v.addf(kf, "name must be 1–%d letters, digits, '-' or '_'", MaxMetaKeyLen)
		}
		if a == "" {
			v.addf(kf, "address must not be empty")
		}
		v.address(kf, a)
	}
}

// IsUUID reports whether s is a UUID in canonical 8-4-4-4-12 hex form, as node IDs
// must be.
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// Validate reports every problem with n, joined; each wraps ErrInvalid.
func (n *Node) Validate() error {
	var v validator
	if !IsUUID(n.ID) {
		v.addf("node.id", "%q is not a UUID (8-4-4-4-12 hex digits)", n.ID)
	}
	v.name("node.name", n.Name)
	v.address("node.address", n.Address)
	if n.Datacenter == "" {
		v.addf("node.datacenter", "must not be empty")
	} else if len(n.Datacenter) > 64 || !isMetaKey(n.Datacenter) {
		v.addf("node.datacenter", "%q must be 1–64 letters, digits, '-' or '_'", n.Datacenter)
	}
	v.meta("node.meta", n.Meta)
	v.taggedAddresses("node.tagged_addresses", n.TaggedAddresses)
	return v.err()
}

// Validate reports every problem with s, joined; each wraps ErrInvalid.
func (s *Service) Validate() error {
	var v validator
	v.name("service.id", s.ID)
	v.name("service.name", s.Name)
	if len(s.Tags) > MaxTags {
		v.addf("service.tags", "has %d tags, more than the %d allowed", len(s.Tags), MaxTags)
	}
	for i, t := range s.Tags {
		if t != "" && len(t) <= MaxTagLen && badChar(t, false) < 0 {
			continue
		}
		f := fmt.Sprintf("service.tags[%d]", i)
		if t == "" {
			v.addf(f, "must not be empty")
		}
		v.maxLen(f, t, MaxTagLen)
		v.printable(f, t, false)
	}
	v.address("service.address", s.Address)
	if s.Port < 0 || s.Port > 65535 {
		v.addf("service.port", "%d is outside 0–65535", s.Port)
	}
	v.meta("service.meta", s.Meta)
	if s.Weights.Passing < 1 {
		v.addf("service.weights.passing", "%d must be at least 1", s.Weights.Passing)
	}
	if s.Weights.Warning < 0 {
		v.addf("service.weights.warning", "%d must not be negative", s.Weights.Warning)
	}
	v.taggedAddresses("service.tagged_addresses", s.TaggedAddresses)
	v.maxLen("service.kind", s.Kind, MaxKindLen)
	v.printable("service.kind", s.Kind, false)
	return v.err()
}

// Validate reports every problem with c, joined; each wraps ErrInvalid.
func (c *Check) Validate() error {
	var v validator
	v.name("check.id", c.ID)
	if c.Name != "" {
		v.maxLen("check.name", c.Name, MaxNameLen)
		v.printable("check.name", c.Name, true)
	}
	if c.ServiceID != "" {
		v.name("check.service_id", c.ServiceID)
	}
	if !c.Status.Valid() {
		v.addf("check.status", "%s: want passing, warning, critical or maintenance", c.Status)
	}
	v.maxLen("check.output", c.Output, MaxOutputLen)
	v.maxLen("check.notes", c.Notes, MaxNotesLen)
	v.maxLen("check.type", c.Type, MaxKindLen)
	if c.Interval < 0 {
		v.addf("check.interval", "%s must not be negative", c.Interval)
	}
	if c.Timeout < 0 {
		v.addf("check.timeout", "%s must not be negative", c.Timeout)
	}
	return v.err()
}
