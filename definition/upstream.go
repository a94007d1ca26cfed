package definition

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/rumor-sd/rumor/catalog"
)

// Upstream asks the agent's local proxy to listen on LocalBindAddress:LocalBindPort
// and forward each connection to a healthy instance of Service, like Consul's
// upstreams (without mTLS). It appears in a service definition's "upstreams" (the
// service's consumers' view: the proxy listens as long as the service is
// registered), in a config file's top-level "upstreams" and as --upstream.
type Upstream struct {
	// Service is the name of the service to forward to. Required.
	Service string
	// Tag, when set, keeps only the instances carrying it.
	Tag string `json:",omitempty"`
	// Near is "" or "_agent"; either prefers the instances nearest to this agent by
	// network coordinates when two are otherwise equal.
	Near string `json:",omitempty"`
	// LocalBindAddress is the IP address to listen on. Default 127.0.0.1.
	LocalBindAddress string `json:",omitempty"`
	// LocalBindPort is the port to listen on, 1–65535 (0 picks a free one: tests).
	LocalBindPort int
}

// Addr is the address the upstream listens on, "ip:port".
func (u *Upstream) Addr() string {
	ip := u.LocalBindAddress
	if ip == "" {
		ip = "127.0.0.1"
	}
	return net.JoinHostPort(ip, strconv.Itoa(u.LocalBindPort))
}

// Validate reports every problem of u, each a *catalog.FieldError under field (such
// as "upstreams[0]").
func (u *Upstream) Validate(field string) error {
	var errs []error
	bad := func(f, format string, args ...any) {
		errs = append(errs, &catalog.FieldError{Field: field + "." + f, Reason: fmt.Sprintf(format, args...)})
	}
	if u.Service == "" {
		bad("service", "required: the name of the service to forward to")
	} else if err := (&catalog.Service{ID: u.Service, Name: u.Service, Weights: catalog.DefaultWeights}).Validate(); err != nil {
		bad("service", "%q is not a valid service name", u.Service)
	}
	if u.Tag != "" {
		if err := (&catalog.Service{ID: "x", Name: "x", Tags: []string{u.Tag}, Weights: catalog.DefaultWeights}).Validate(); err != nil {
			bad("tag", "%q is not a valid tag", u.Tag)
		}
	}
	if u.LocalBindAddress != "" {
		if _, err := netip.ParseAddr(u.LocalBindAddress); err != nil {
			bad("local_bind_address", "%q is not an IP address", u.LocalBindAddress)
		}
	}
	if u.LocalBindPort < 0 || u.LocalBindPort > 65535 {
		bad("local_bind_port", "%d is outside 1–65535", u.LocalBindPort)
	}
	if u.Near != "" && u.Near != "_agent" {
		bad("near", "%q: only \"_agent\" is supported", u.Near)
	}
	return errors.Join(errs...)
}

// ValidateUpstreams validates a list of upstreams under field ("service.upstreams"),
// including that no two listen on the same address.
func ValidateUpstreams(field string, ups []Upstream) error {
	var errs []error
	seen := make(map[string]int, len(ups))
	for i := range ups {
		f := fmt.Sprintf("%s[%d]", field, i)
		if err := ups[i].Validate(f); err != nil {
			errs = append(errs, err)
			continue
		}
		if ups[i].LocalBindPort == 0 {
			continue
		}
		if j, dup := seen[ups[i].Addr()]; dup {
			errs = append(errs, &catalog.FieldError{Field: f + ".local_bind_port",
				Reason: fmt.Sprintf("%s is already the address of %s[%d]", ups[i].Addr(), field, j)})
		}
		seen[ups[i].Addr()] = i
	}
	return errors.Join(errs...)
}
