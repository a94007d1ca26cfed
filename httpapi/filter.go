package httpapi

import (
	"errors"
	"maps"
	"slices"

	"github.com/hashicorp/go-bexpr"
	"github.com/mitchellh/pointerstructure"
)

// ?filter= is evaluated by go-bexpr on the structs this package sends, so its
// selectors are Consul's JSON field names ("Service.Port", "ServiceMeta.version",
// "Node.Meta.rack", "Checks.Status"), as on a Consul agent. The expression is parsed
// by parseQuery (a syntax error is a 400) and its selectors are tried on a zero value
// of the answer's element type by checkFilter (an unknown field is a 400) before the
// request blocks or reads anything.

// checkFilter checks expr's selectors against sample, a zero value of the struct the
// endpoint filters. Missing map keys are fine (Meta.anything); unknown struct fields,
// values of the wrong type and index expressions past an empty slice's end are
// not, except the last, which only real data can decide.
func checkFilter(expr *bexpr.Evaluator, path string, sample any) error {
	if sample == nil {
		return badf("?filter= is not supported on %s: remove it and filter on the client", path)
	}
	if _, err := expr.Evaluate(sample); err != nil && !errors.Is(err, pointerstructure.ErrOutOfRange) {
		return badf("invalid filter %q: %v", expr.Expression(), err)
	}
	return nil
}

// filterSlice keeps the items expr accepts (all of them when expr is nil). An error
// evaluating an item is the expression's fault, so it is a 400.
func filterSlice[T any](expr *bexpr.Evaluator, items []T) ([]T, error) {
	if expr == nil {
		return items, nil
	}
	out := items[:0:0]
	for i := range items {
		ok, err := expr.Evaluate(items[i])
		if err != nil {
			return nil, badf("invalid filter %q: %v", expr.Expression(), err)
		}
		if ok {
			out = append(out, items[i])
		}
	}
	return out, nil
}

// filterMap keeps the values of m that expr accepts, in place.
func filterMap[T any](expr *bexpr.Evaluator, m map[string]T) error {
	if expr == nil {
		return nil
	}
	for _, k := range slices.Collect(maps.Keys(m)) {
		ok, err := expr.Evaluate(m[k])
		if err != nil {
			return badf("invalid filter %q: %v", expr.Expression(), err)
		}
		if !ok {
			delete(m, k)
		}
	}
	return nil
}
