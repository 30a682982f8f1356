// Package scripts embeds the Python helpers (the Keras model builder and the
// converters) so that the xcept binary can run them without a source tree.
package scripts

import "embed"

// FS holds every Python script xcept runs with the project's virtual environment.
//
//go:embed *.py
var FS embed.FS
