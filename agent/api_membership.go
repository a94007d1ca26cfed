package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/httpapi"
)

var _ httpapi.Membership = apiAgent{}

func (x apiAgent) Join(ctx context.Context, addrs []string) (int, error) {
	return x.a.Join(ctx, addrs)
}

// Leave leaves the pool for an API client; the agent's owner shuts it down after (see
// Agent.LeaveRequested).
func (x apiAgent) Leave(ctx context.Context) error { return x.a.RequestLeave(ctx) }

// ForceLeave forces a failed node out; a node that has not failed is a conflict for
// the API (409), not a bad request.
func (x apiAgent) ForceLeave(ctx context.Context, node string, prune bool) error {
	err := x.a.ForceLeave(ctx, node, prune)
	if errors.Is(err, catalog.ErrInvalid) {
		return fmt.Errorf("%w: %w", httpapi.ErrConflict, err)
	}
	return err
}
