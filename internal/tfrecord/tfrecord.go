// Package tfrecord reads and writes TFRecord files, the framing TensorFlow's
// tf.data.TFRecordDataset and tf.io.TFRecordWriter use. Each record is
//
//	uint64 length (little endian)
//	uint32 masked crc32c of the 8 length bytes
//	length bytes of data
//	uint32 masked crc32c of the data
//
// Files are uncompressed: xcept stores already-compressed JPEG/PNG bytes, so
// GZIP/ZLIB record compression would cost time for nothing.
package tfrecord

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

const (
	headerSize = 8 + 4 // length + its crc
	footerSize = 4     // data crc

	// MaxRecordSize bounds the length field a Reader accepts, so that a
	// corrupt length cannot make it allocate gigabytes. TensorFlow itself has
	// no such limit, but no image record comes near it.
	MaxRecordSize = 1 << 30

	maskDelta = 0xa282ead8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MaskedCRC returns the crc32c of b masked as TFRecord stores it. The mask
// exists because a CRC of data that itself contains CRCs is weak.
func MaskedCRC(b []byte) uint32 {
	crc := crc32.Checksum(b, castagnoli)
	return ((crc >> 15) | (crc << 17)) + maskDelta
}

// Writer writes records to an io.Writer. It does no buffering of its own:
// wrap a file in a bufio.Writer (and flush it) for speed.
type Writer struct {
	w   io.Writer
	hdr [headerSize]byte
	ftr [footerSize]byte
}

// NewWriter returns a Writer that frames records onto w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write writes one record.
func (w *Writer) Write(record []byte) error {
	binary.LittleEndian.PutUint64(w.hdr[:8], uint64(len(record)))
	binary.LittleEndian.PutUint32(w.hdr[8:], MaskedCRC(w.hdr[:8]))
	binary.LittleEndian.PutUint32(w.ftr[:], MaskedCRC(record))
	if _, err := w.w.Write(w.hdr[:]); err != nil {
		return err
	}
	if _, err := w.w.Write(record); err != nil {
		return err
	}
	_, err := w.w.Write(w.ftr[:])
	return err
}

// ErrCorrupt is wrapped by every error a Reader returns for bad data (as
// opposed to an error from the underlying io.Reader), so callers can tell a
// damaged file from an I/O failure with errors.Is.
var ErrCorrupt = errors.New("corrupt TFRecord")

// Reader reads records from an io.Reader.
type Reader struct {
	r      *bufio.Reader
	offset int64 // byte offset of the next record, for error messages
	hdr    [headerSize]byte
	ftr    [footerSize]byte
}

// NewReader returns a Reader of the records in r.
func NewReader(r io.Reader) *Reader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	return &Reader{r: br}
}

// Offset is the byte offset of the next record to be read.
func (r *Reader) Offset() int64 { return r.offset }

// Next returns the next record. It returns io.EOF at a clean end of input,
// and an error wrapping ErrCorrupt on truncation or a CRC mismatch, saying
// which and at what offset. The returned slice is the caller's to keep.
func (r *Reader) Next() ([]byte, error) {
	n, err := io.ReadFull(r.r, r.hdr[:])
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		return nil, r.readErr(err, "header", n, headerSize)
	}
	length := binary.LittleEndian.Uint64(r.hdr[:8])
	if got, want := MaskedCRC(r.hdr[:8]), binary.LittleEndian.Uint32(r.hdr[8:]); got != want {
		return nil, fmt.Errorf("%w: record at offset %d: length CRC mismatch (stored %#08x, computed %#08x)", ErrCorrupt, r.offset, want, got)
	}
	if length > MaxRecordSize {
		return nil, fmt.Errorf("%w: record at offset %d: length %d exceeds the %d byte limit", ErrCorrupt, r.offset, length, MaxRecordSize)
	}
	data, err := r.readData(int(length))
	if err != nil {
		return nil, err
	}
	if n, err := io.ReadFull(r.r, r.ftr[:]); err != nil {
		return nil, r.readErr(err, "data CRC", n, footerSize)
	}
	if got, want := MaskedCRC(data), binary.LittleEndian.Uint32(r.ftr[:]); got != want {
		return nil, fmt.Errorf("%w: record at offset %d: data CRC mismatch (stored %#08x, computed %#08x)", ErrCorrupt, r.offset, want, got)
	}
	r.offset += int64(headerSize + len(data) + footerSize)
	return data, nil
}

// readData reads a record body of n bytes into a new slice. Large bodies grow
// as bytes arrive rather than being allocated up front, so a corrupt (or
// hostile) length field on a short file costs no more memory than the file.
func (r *Reader) readData(n int) ([]byte, error) {
	const eager = 4 << 20
	if n <= eager {
		data := make([]byte, n)
		if got, err := io.ReadFull(r.r, data); err != nil {
			return nil, r.readErr(err, "data", got, n)
		}
		return data, nil
	}
	var buf bytes.Buffer
	buf.Grow(eager)
	got, err := buf.ReadFrom(io.LimitReader(r.r, int64(n)))
	if err != nil {
		return nil, r.readErr(err, "data", int(got), n)
	}
	if int(got) < n {
		return nil, r.readErr(io.ErrUnexpectedEOF, "data", int(got), n)
	}
	return buf.Bytes(), nil
}

// readErr turns a short read into a truncation error, and passes I/O errors on.
func (r *Reader) readErr(err error, part string, got, want int) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: record at offset %d: truncated %s (%d of %d bytes)", ErrCorrupt, r.offset, part, got, want)
	}
	return fmt.Errorf("reading record at offset %d: %w", r.offset, err)
}
