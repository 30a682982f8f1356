package main

import (
	"os"
	"testing"
)

// TestMain lets tests run this test binary as the xcept command itself
// (XCEPT_TEST_AS_MAIN=1), for what needs a real process: kill -9.
func TestMain(m *testing.M) {
	if os.Getenv("XCEPT_TEST_AS_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}
