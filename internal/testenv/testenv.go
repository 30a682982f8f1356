// Package testenv gives tests the heavy things they share: the project's
// Python and (later) tiny models built once per run.
package testenv

import (
	"os"
	"testing"

	"github.com/xcept/xcept/internal/pyenv"
)

// Strict reports whether missing prerequisites fail tests instead of
// skipping them. `make test` sets XCEPT_TEST_STRICT=1 so that CI can never
// pass by skipping.
func Strict() bool { return os.Getenv("XCEPT_TEST_STRICT") == "1" }

// Python returns the project's Python interpreter, or skips the test (fails
// it under XCEPT_TEST_STRICT=1) when there is none.
func Python(t testing.TB) string {
	t.Helper()
	py, err := pyenv.Python()
	if err != nil {
		Unavailable(t, err.Error())
	}
	return py
}

// Unavailable skips t, or fails it in strict mode, because a prerequisite is missing.
func Unavailable(t testing.TB, why string) {
	t.Helper()
	if Strict() {
		t.Fatalf("prerequisite missing (XCEPT_TEST_STRICT=1): %s", why)
	}
	t.Skipf("prerequisite missing: %s", why)
}
