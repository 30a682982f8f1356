// Package scripts embeds the Python helpers (the Keras model builder and the
// converters) so that the xcept binary can run them without a source tree.
package scripts

import "embed"

// FS holds every Python script xcept runs with the project's virtual
// environment, and archs.json, the table of backbones the builder and Go
// share (model.arch).
//
//go:embed *.py archs.json
var FS embed.FS

// Data are the non-Python files of FS that the scripts read beside them.
var Data = []string{"archs.json"}
