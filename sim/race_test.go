//go:build race

package sim

// validateSize is the default size of TestModelValidation: smaller under the race
// detector, which slows tier 1 several times.
const validateSize = "30"
