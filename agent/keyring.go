package agent

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/rumor-sd/rumor/catalog"
	"github.com/rumor-sd/rumor/gossip"
	"github.com/rumor-sd/rumor/httpapi"
)

// keyringCluster is what key rotation needs of gossip. *gossip.Gossip implements it;
// the unit tests' fake cluster does not, and its agents answer that there is no
// keyring. KeyringQuery blocks until every member answered or ctx ends.
type keyringCluster interface {
	KeyringQuery(ctx context.Context, op gossip.KeyOp, key []byte) (gossip.KeyringResult, error)
	Keys() (primary []byte, all [][]byte, err error)
}

var _ keyringCluster = (*gossip.Gossip)(nil)

// apiKeyring adapts the agent's gossip to httpapi.Keyring.
type apiKeyring struct{ a *Agent }

var _ httpapi.Keyring = apiKeyring{}

var keyOps = map[httpapi.KeyOp]gossip.KeyOp{
	httpapi.KeyList: gossip.KeyList, httpapi.KeyInstall: gossip.KeyInstall,
	httpapi.KeyUse: gossip.KeyUse, httpapi.KeyRemove: gossip.KeyRemove,
}

func (x apiKeyring) cluster() (keyringCluster, error) {
	x.a.mu.Lock()
	cl := x.a.cl
	x.a.mu.Unlock()
	kc, ok := cl.(keyringCluster)
	if !ok {
		return nil, ErrNotRunning
	}
	return kc, nil
}

// KeyringOperation runs op on every live member. Members that failed are in the
// result, not the error; refusals (no encryption, removing the primary key) wrap
// catalog.ErrInvalid.
func (x apiKeyring) KeyringOperation(ctx context.Context, op httpapi.KeyOp, key []byte) (httpapi.KeyringResult, error) {
	kc, err := x.cluster()
	if err != nil {
		return httpapi.KeyringResult{}, err
	}
	gop, ok := keyOps[op]
	if !ok {
		return httpapi.KeyringResult{}, fmt.Errorf("agent: keyring: %w: unknown operation %d", catalog.ErrInvalid, op)
	}
	res, err := kc.KeyringQuery(ctx, gop, key)
	switch {
	case err == nil, errors.Is(err, gossip.ErrKeyringPartial):
		// The two types have the same fields by design; this conversion stops
		// compiling if they drift apart.
		return httpapi.KeyringResult(res), nil
	case errors.Is(err, gossip.ErrNoEncryption), errors.Is(err, gossip.ErrPrimaryKey):
		return httpapi.KeyringResult{}, fmt.Errorf("%w: %w", catalog.ErrInvalid, err)
	}
	return httpapi.KeyringResult{}, fmt.Errorf("agent: keyring %s: %w", op, err)
}

// LocalKeys describes this node's keyring alone.
func (x apiKeyring) LocalKeys() (httpapi.KeyringResult, error) {
	kc, err := x.cluster()
	if err != nil {
		return httpapi.KeyringResult{}, err
	}
	primary, all, err := kc.Keys()
	if errors.Is(err, gossip.ErrNoEncryption) {
		return httpapi.KeyringResult{}, fmt.Errorf("%w: %w", catalog.ErrInvalid, err)
	} else if err != nil {
		return httpapi.KeyringResult{}, fmt.Errorf("agent: keyring: %w", err)
	}
	res := httpapi.KeyringResult{NumNodes: 1, Keys: map[string]int{},
		PrimaryKeys: map[string]int{base64.StdEncoding.EncodeToString(primary): 1}}
	for _, k := range all {
		res.Keys[base64.StdEncoding.EncodeToString(k)] = 1
	}
	return res, nil
}
