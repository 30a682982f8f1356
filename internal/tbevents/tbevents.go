// Package tbevents writes TensorBoard event files: TFRecord files of
// tensorflow.Event protocol buffers (tensorflow/core/util/event.proto),
// encoded by hand with protowire.
//
// Scalars are written as Summary.Value.simple_value, the form both readers
// in use understand: the legacy EventAccumulator
// (tensorboard.backend.event_processing.event_accumulator) files only
// simple_value under Scalars(), and the loader behind the current TensorBoard
// UI (EventFileLoader) migrates simple_value to a "scalars"-plugin tensor on
// read (tensorboard/data_compat.py). A tensor value with "scalars" plugin
// metadata, which tf.summary.scalar writes, would show in the UI but not in
// EventAccumulator.Scalars(). simple_value is a float32, so values keep
// float32 precision.
package tbevents

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/xcept/xcept/internal/tfrecord"
)

// FileVersion is the file_version TensorBoard expects in a file's first event.
const FileVersion = "brain.Event:2"

// Field numbers from event.proto and summary.proto.
const (
	fieldEventWallTime    = 1
	fieldEventStep        = 2
	fieldEventFileVersion = 3
	fieldEventSummary     = 5
	fieldEventSource      = 10
	fieldSourceWriter     = 1
	fieldSummaryValue     = 1
	fieldValueTag         = 1
	fieldValueSimpleValue = 2
)

// ErrClosed is returned by writes to a closed Writer.
var ErrClosed = errors.New("TensorBoard event writer is closed")

// now is the clock events are stamped with; tests replace it.
var now = time.Now

// Writer appends events to one event file. Its methods are safe for
// concurrent use.
type Writer struct {
	mu     sync.Mutex
	path   string
	file   *os.File
	buf    *bufio.Writer
	rec    *tfrecord.Writer
	closed bool
}

// NewWriter creates dir if needed and a new event file in it, named as
// TensorBoard names them (events.out.tfevents.<unix seconds>.<hostname>),
// and writes the file_version event. A second writer started in the same
// second gets a ".2", ".3", ... suffix rather than clobbering the first.
func NewWriter(dir string) (*Writer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating TensorBoard log folder: %w", err)
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	start := now()
	base := filepath.Join(dir, fmt.Sprintf("events.out.tfevents.%010d.%s", start.Unix(), host))
	f, path, err := createUnique(base)
	if err != nil {
		return nil, err
	}
	w := &Writer{path: path, file: f, buf: bufio.NewWriter(f)}
	w.rec = tfrecord.NewWriter(w.buf)
	if err := w.write(fileVersionEvent(start)); err == nil {
		err = w.flush()
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	return w, nil
}

func createUnique(base string) (*os.File, string, error) {
	path := base
	for i := 2; ; i++ {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			return f, path, nil
		}
		if !errors.Is(err, os.ErrExist) || i > 1000 {
			return nil, "", fmt.Errorf("creating TensorBoard event file: %w", err)
		}
		path = fmt.Sprintf("%s.%d", base, i)
	}
}

// Path is the event file's path.
func (w *Writer) Path() string { return w.path }

// AddScalar writes one scalar for tag at step, stamped with the current time.
func (w *Writer) AddScalar(tag string, step int64, value float64) error {
	return w.AddScalars(step, map[string]float64{tag: value})
}

// AddScalars writes one event holding a scalar per tag (in sorted tag order)
// at step: the shape of a Keras epoch end, where loss, accuracy, val_loss and
// learning_rate arrive together.
func (w *Writer) AddScalars(step int64, values map[string]float64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	if err := w.write(scalarsEvent(now(), step, values)); err != nil {
		return fmt.Errorf("writing %s: %w", w.path, err)
	}
	return nil
}

// Flush writes buffered events to the file and syncs it to disk, so they
// survive a crash and a running TensorBoard sees them.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	if err := w.flush(); err != nil {
		return fmt.Errorf("flushing %s: %w", w.path, err)
	}
	return nil
}

// Close flushes and closes the file. Closing a closed Writer does nothing.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.flush()
	if cerr := w.file.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("closing %s: %w", w.path, err)
	}
	return nil
}

func (w *Writer) write(event []byte) error { return w.rec.Write(event) }

func (w *Writer) flush() error {
	if err := w.buf.Flush(); err != nil {
		return err
	}
	return w.file.Sync()
}

// fileVersionEvent is the event every TensorBoard file starts with.
func fileVersionEvent(t time.Time) []byte {
	b := appendEventHeader(nil, t, 0)
	b = protowire.AppendTag(b, fieldEventFileVersion, protowire.BytesType)
	b = protowire.AppendString(b, FileVersion)
	var src []byte
	src = protowire.AppendTag(src, fieldSourceWriter, protowire.BytesType)
	src = protowire.AppendString(src, "xcept")
	b = protowire.AppendTag(b, fieldEventSource, protowire.BytesType)
	return protowire.AppendBytes(b, src)
}

func scalarsEvent(t time.Time, step int64, values map[string]float64) []byte {
	tags := make([]string, 0, len(values))
	for tag := range values {
		tags = append(tags, tag)
	}
	slices.Sort(tags)
	var summary []byte
	for _, tag := range tags {
		var v []byte
		v = protowire.AppendTag(v, fieldValueTag, protowire.BytesType)
		v = protowire.AppendString(v, tag)
		v = protowire.AppendTag(v, fieldValueSimpleValue, protowire.Fixed32Type)
		v = protowire.AppendFixed32(v, math.Float32bits(float32(values[tag])))
		summary = protowire.AppendTag(summary, fieldSummaryValue, protowire.BytesType)
		summary = protowire.AppendBytes(summary, v)
	}
	b := appendEventHeader(nil, t, step)
	b = protowire.AppendTag(b, fieldEventSummary, protowire.BytesType)
	return protowire.AppendBytes(b, summary)
}

// appendEventHeader appends wall_time (seconds since the epoch, as a double)
// and step, which every event carries.
func appendEventHeader(b []byte, t time.Time, step int64) []byte {
	b = protowire.AppendTag(b, fieldEventWallTime, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, math.Float64bits(float64(t.Unix())+float64(t.Nanosecond())/1e9))
	if step != 0 {
		b = protowire.AppendTag(b, fieldEventStep, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(step))
	}
	return b
}
