// Package graph is xcept's own binding to the TensorFlow C API, and the only
// package that imports "C". It opens libtensorflow at run time (capi.go says
// why), turns every TF_Status into a Go error (status.go), owns tensors with
// an explicit Close (tensor.go), and loads SavedModels with their
// MetaGraphDef decoded in Go (metagraph.go), so that sessions run signatures
// by name and input/output key (session.go) and no tensor name such as
// StatefulPartitionedCall:0 is ever hard-coded. The names the signatures
// have are the model contract's (internal/contract). It also reads a
// SavedModel's graph without TensorFlow, to see what it would run
// (graphdef.go), says how the loaded library was built and where it looks
// for CUDA (buildinfo.go), and starts in-process TensorFlow servers for
// training across processes (server.go).
package graph
