// Package configs embeds the default configuration into the binary.
package configs

import _ "embed"

// Default is configs/default.yaml: the lowest layer of the configuration.
//
//go:embed default.yaml
var Default []byte
