//go:build !race

package sim

// validateSize is the default size of TestModelValidation.
const validateSize = "100"
