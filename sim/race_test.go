//go:build race

package sim

// validateSize is the default size of TestModelValidation: none under the race
// detector, which slows tier 1 several times (a 100-node run would take many minutes
// of CI) and adds nothing to a numeric comparison; the model's error at small N
// (20–30 nodes: up to +38 % on detection) is outside what it is validated for.
const validateSize = ""
