package docker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/definition"
)

// inspectWorkers bounds the inspects in flight during a reconcile or a burst.
const inspectWorkers = 8

// reconcile lists every container and makes the registrations match, both ways:
// services of running containers that are missing or differ are registered, and
// services the watcher registered whose container is gone, or stopped for good,
// are deregistered; nothing it did not register is touched. full inspects every
// running container again (at connect); otherwise only those whose listing changed
// since their last inspect, so a periodic reconcile of an unchanged host costs one
// listing and writes nothing.
func (w *Watcher) reconcile(ctx context.Context, full bool) error {
	if full {
		w.fresh = time.Now()
	}
	lctx, cancel := context.WithTimeout(ctx, callTimeout)
	list, err := w.cli.ContainerList(lctx, client.ContainerListOptions{All: true})
	cancel()
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	next := make(map[string]spec, len(list.Items))
	var specs []spec
	var inspect []string
	for _, c := range list.Items {
		if old, ok := w.cache[c.ID]; ok && !full && old.listing == listing(c) {
			next[c.ID] = old
			specs = append(specs, old)
			continue
		}
		if !needsInspect(c) {
			s := spec{id: c.ID, short: shortID(c.ID), name: containerName(c), listing: listing(c)}
			next[c.ID] = s
			specs = append(specs, s)
			continue
		}
		inspect = append(inspect, c.ID)
	}
	found, err := w.inspectAll(ctx, inspect)
	if err != nil {
		return err
	}
	for _, s := range found {
		next[s.id] = s
		specs = append(specs, s)
	}
	for id := range w.reported {
		if _, ok := next[id]; !ok {
			delete(w.reported, id)
		}
	}
	w.cache = next
	// Renew the TTL of every container check; an unchanged status costs nothing.
	return w.apply(ctx, w.plan(specs, w.cfg.Registry.Owned(), true), true)
}

// listing is what a periodic reconcile compares to decide whether a container
// needs a new inspect: its state and name. Health and address changes come as
// events, which always inspect.
func listing(c container.Summary) string {
	return string(c.State) + "/" + strings.Join(c.Names, ",")
}

// needsInspect reports whether a listed container's services depend on more than
// the listing shows: a running one's always; a stopped one's only if its policy may
// keep its services (the exit code decides).
func needsInspect(c container.Summary) bool {
	switch c.State {
	case container.StateRunning, container.StatePaused, container.StateRestarting:
		return true
	}
	return policyOf(c.Labels) != always
}

func containerName(c container.Summary) string {
	if len(c.Names) == 0 {
		return shortID(c.ID)
	}
	return strings.TrimPrefix(c.Names[0], "/")
}

// inspectAll inspects the containers with these IDs, a few at a time, and returns
// their specs in the order of ids; a container that no longer exists gives a spec
// that is neither live nor kept, so its services go. Any other error fails it.
func (w *Watcher) inspectAll(ctx context.Context, ids []string) ([]spec, error) {
	out := make([]spec, len(ids))
	errs := make([]error, len(ids))
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(inspectWorkers, len(ids)) {
		wg.Go(func() {
			for i := range work {
				out[i], errs[i] = w.inspect(ctx, ids[i])
			}
		})
	}
	for i := range ids {
		work <- i
	}
	close(work)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, s := range out {
		w.cache[s.id] = s
	}
	return out, nil
}

// inspect inspects one container and builds its spec.
func (w *Watcher) inspect(ctx context.Context, id string) (spec, error) {
	ictx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	res, err := w.cli.ContainerInspect(ictx, id, client.ContainerInspectOptions{})
	switch {
	case cerrdefs.IsNotFound(err): // the client's way of saying 404

		return spec{id: id, short: shortID(id), name: shortID(id), listing: "removed"}, nil
	case err != nil:
		return spec{}, fmt.Errorf("inspect container %s: %w", shortID(id), err)
	}
	return w.b.build(&res.Container), nil
}

// statusUpdate is a container check's status to set.
type statusUpdate struct {
	id     string
	status catalog.Status
	output string
}

// plan is what a reconcile or a batch of events changes.
type plan struct {
	put   []definition.Service
	del   []string
	set   []statusUpdate // statuses that may differ from what the agent holds
	renew []statusUpdate // every container check of the plan's scope (renews TTLs)
}

// plan compares the specs of some containers (all of them when full) with the
// services the watcher owns: a live container's services are registered when
// missing or different; a kept container's stay as they are, critical; every other
// owned service of those containers (every one not wanted, when full) goes.
func (w *Watcher) plan(specs []spec, owned []definition.Service, full bool) plan {
	byID := make(map[string]*definition.Service, len(owned))
	byContainer := map[string][]string{}
	for i := range owned {
		s := &owned[i]
		byID[s.ID] = s
		byContainer[s.Meta[MetaContainer]] = append(byContainer[s.Meta[MetaContainer]], s.ID)
	}
	slices.SortStableFunc(specs, func(x, y spec) int { return cmp.Compare(x.name, y.name) })
	var p plan
	wanted := map[string]string{} // service ID → the container that has it
	inScope := map[string]bool{}  // containers the plan looks at
	for _, s := range specs {
		inScope[s.short] = true
		switch {
		case s.live:
			for _, svc := range s.services {
				if other, dup := wanted[svc.ID]; dup {
					s.problems = append(s.problems, fmt.Errorf("container %s: service ID %q is container %s's too: not registered (set SERVICE_ID apart)", s.name, svc.ID, other))
					continue
				}
				wanted[svc.ID] = s.name
				u := statusUpdate{ContainerCheckID(svc.ID), s.status, s.output}
				p.renew = append(p.renew, u)
				old := byID[svc.ID]
				switch {
				case old == nil:
					p.put = append(p.put, svc) // registered at its current status...
					if s.status != catalog.StatusPassing {
						p.set = append(p.set, u) // ...which the output explains
					}
				case !same(old, &svc):
					p.put = append(p.put, svc)
					p.set = append(p.set, u) // a replacement keeps the old status: correct it
				default:
					p.set = append(p.set, u)
				}
			}
		case s.keep:
			for _, id := range byContainer[s.short] {
				wanted[id] = s.name
				u := statusUpdate{ContainerCheckID(id), catalog.StatusCritical, s.output}
				p.set, p.renew = append(p.set, u), append(p.renew, u)
			}
		}
		w.report(s)
	}
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		if _, ok := wanted[id]; !ok && (full || inScope[byID[id].Meta[MetaContainer]]) {
			p.del = append(p.del, id)
		}
	}
	return p
}

// report logs a container's problems when they changed since last logged.
func (w *Watcher) report(s spec) {
	msg := errors.Join(s.problems...)
	text := ""
	if msg != nil {
		text = msg.Error()
	}
	if w.reported[s.id] == text {
		return
	}
	w.reported[s.id] = text
	if msg != nil {
		w.log.Warn("container settings not honoured", "container", s.name, "problems", text)
	}
}

// apply carries out a plan: one registration change, one deregistration change,
// then the statuses that may differ, or with renew every container check's status,
// which renews their TTLs.
func (w *Watcher) apply(ctx context.Context, p plan, renew bool) error {
	if len(p.put) > 0 {
		if err := w.cfg.Registry.Register(ctx, p.put); err != nil {
			// Retried at every reconcile: said once, until the reason changes.
			level := slog.LevelDebug
			if err.Error() != w.refused {
				level, w.refused = slog.LevelWarn, err.Error()
			}
			w.log.Log(ctx, level, "some container services were not registered", "error", err)
		} else {
			w.log.Debug("registered container services", "count", len(p.put))
		}
	}
	if len(p.del) > 0 {
		if err := w.cfg.Registry.Deregister(ctx, p.del); err != nil {
			w.log.Warn("deregister container services", "error", err)
		} else {
			w.log.Debug("deregistered container services", "count", len(p.del), "ids", p.del)
		}
	}
	set := p.set
	if renew {
		set = p.renew
	}
	for _, u := range set {
		w.setStatus(u.id, u.status, u.output)
	}
	return ctx.Err()
}

// same reports whether an owned service and a wanted one are defined alike,
// whatever their checks' statuses (the status is kept apart, by SetCheckStatus)
// and tagged addresses' ports (rumor keeps one port per service).
func same(owned, want *definition.Service) bool {
	x, y := owned.Clone(), want.Clone()
	for _, s := range []*definition.Service{&x, &y} {
		s.Normalize()
		for i := range s.Checks {
			s.Checks[i].Status = 0
		}
		for k, a := range s.TaggedAddresses {
			a.Port = 0
			s.TaggedAddresses[k] = a
		}
	}
	return x.Equal(&y)
}
