package graph

import "fmt"

var fmtSscan = fmt.Sscan
