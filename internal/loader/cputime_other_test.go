//go:build !unix

package loader

import "time"

// cpuTime is unknown here: the benchmark's cpu-ms/image then reads 0.
func cpuTime() time.Duration { return 0 }
