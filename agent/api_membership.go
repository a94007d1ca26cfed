package agent

import (
	"context"

	"github.com/rumor-sd/rumor/httpapi"
)

var _ httpapi.Membership = apiAgent{}

func (x apiAgent) Join(ctx context.Context, addrs []string) (int, error) {
	return x.a.Join(ctx, addrs)
}

// Leave leaves the pool for an API client; the agent's owner shuts it down after (see
// Agent.LeaveRequested).
func (x apiAgent) Leave(ctx context.Context) error { return x.a.RequestLeave(ctx) }

func (x apiAgent) ForceLeave(ctx context.Context, node string, prune bool) error {
	return x.a.ForceLeave(ctx, node, prune)
}
