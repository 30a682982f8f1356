package testmodel

import (
	"slices"
	"testing"
)

// The test models' cache key covers the builder and the scripts beside it,
// not the Python tests: editing a test must not rebuild every model.
func TestKeyCoversTheBuilderNotTheTests(t *testing.T) {
	got := builderSources()
	for _, want := range []string{"build_model.py", "xcept_model.py"} {
		if !slices.Contains(got, want) {
			t.Errorf("%s not in the key's sources %v", want, got)
		}
	}
	for _, test := range []string{"test_build_model.py", "verify_export_test.py", "conftest.py"} {
		if slices.Contains(got, test) {
			t.Errorf("the test %s is in the key's sources %v", test, got)
		}
	}
}
