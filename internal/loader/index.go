package loader

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/tfrecord"
)

// TFRecord framing: uint64 length, uint32 masked CRC of the length, the
// data, uint32 masked CRC of the data (see internal/tfrecord).
const (
	headerSize = 8 + 4
	footerSize = 4
)

// index locates every record of a split, so that records can be read in
// any order with ReadAt. Global record i (shard order, then record order) is
// in shard[i] at byte off[i] with size[i] data bytes. Keeping flat arrays
// (16 bytes a record) rather than a slice per shard makes the lookup one
// step and the memory a few MB for a million images.
type index struct {
	paths []string
	files []*os.File
	first []int // global index of each shard's first record
	shard []int32
	off   []int64
	size  []int32
}

// openIndex opens every shard and scans its record headers. The scan reads
// only the 12 header bytes of each record and seeks over the data, so it
// costs one small read per record however large the images are; the data
// CRCs are checked later, when a record is read.
func openIndex(paths []string) (*index, error) {
	ix := &index{paths: paths}
	for s, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			ix.close()
			return nil, fault.New(fault.BadData, "%v; prepare the dataset again", err)
		}
		ix.files = append(ix.files, f)
		ix.first = append(ix.first, len(ix.off))
		if err := ix.scan(int32(s), f); err != nil {
			ix.close()
			return nil, err
		}
	}
	return ix, nil
}

// scan appends the records of shard s.
func (ix *index) scan(s int32, f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return fault.New(fault.BadData, "%s: %v", ix.paths[s], err)
	}
	end := st.Size()
	var hdr [headerSize]byte
	for off, rec := int64(0), 0; off < end; rec++ {
		if end-off < headerSize {
			return ix.corrupt(s, rec, off, fmt.Errorf("truncated header (%d of %d bytes)", end-off, headerSize))
		}
		if _, err := f.ReadAt(hdr[:], off); err != nil {
			return fault.New(fault.BadData, "%s: record %d (offset %d): %v", ix.paths[s], rec, off, err)
		}
		n, err := recordLength(hdr[:])
		if err != nil {
			return ix.corrupt(s, rec, off, err)
		}
		next := off + headerSize + int64(n) + footerSize
		if next > end {
			return ix.corrupt(s, rec, off, fmt.Errorf("truncated: the record needs %d bytes, the file has %d left", next-off, end-off))
		}
		ix.shard = append(ix.shard, s)
		ix.off = append(ix.off, off)
		ix.size = append(ix.size, int32(n))
		off = next
	}
	return nil
}

// recordLength checks a record header and returns its data length.
func recordLength(hdr []byte) (int, error) {
	length := binary.LittleEndian.Uint64(hdr[:8])
	if got, want := tfrecord.MaskedCRC(hdr[:8]), binary.LittleEndian.Uint32(hdr[8:headerSize]); got != want {
		return 0, fmt.Errorf("length CRC mismatch (stored %#08x, computed %#08x)", want, got)
	}
	// The index stores sizes as int32; no image record comes near the limit.
	if length > tfrecord.MaxRecordSize {
		return 0, fmt.Errorf("length %d exceeds the %d byte limit", length, tfrecord.MaxRecordSize)
	}
	return int(length), nil
}

// corrupt is the error for damaged framing of record rec of shard s.
func (ix *index) corrupt(s int32, rec int, off int64, err error) error {
	return fault.New(fault.BadData, "%s: record %d (offset %d): %w: %v; prepare the dataset again", ix.paths[s], rec, off, tfrecord.ErrCorrupt, err)
}

// len is the number of records in the split.
func (ix *index) len() int { return len(ix.off) }

// where names global record i as "PATH: record R (offset O)" for errors;
// R counts from 0 in the shard, as TFRecord readers do.
func (ix *index) where(i int) string {
	s := ix.shard[i]
	return fmt.Sprintf("%s: record %d (offset %d)", ix.paths[s], i-ix.first[s], ix.off[i])
}

// whereFile is where with the record's image/filename, when it has one.
func (ix *index) whereFile(i int, file string) string {
	if file == "" {
		return ix.where(i)
	}
	s := ix.shard[i]
	return fmt.Sprintf("%s: record %d (offset %d, %s)", ix.paths[s], i-ix.first[s], ix.off[i], file)
}

// read returns the data of global record i, read into buf (grown as
// needed), after checking both CRCs: the file may have changed, or rotted,
// since the scan.
func (ix *index) read(i int, buf []byte) ([]byte, []byte, error) {
	n := int(ix.size[i])
	total := headerSize + n + footerSize
	if cap(buf) < total {
		buf = make([]byte, total)
	}
	buf = buf[:total]
	if _, err := ix.files[ix.shard[i]].ReadAt(buf, ix.off[i]); err != nil {
		if errors.Is(err, io.EOF) {
			err = errors.New("the file is shorter than when it was opened")
		}
		return buf, nil, fault.New(fault.BadData, "%s: %v", ix.where(i), err)
	}
	if got, err := recordLength(buf[:headerSize]); err != nil || got != n {
		if err == nil {
			err = fmt.Errorf("length %d, was %d when the file was opened", got, n)
		}
		return buf, nil, fault.New(fault.BadData, "%s: %w: %v; prepare the dataset again", ix.where(i), tfrecord.ErrCorrupt, err)
	}
	data := buf[headerSize : headerSize+n]
	if got, want := tfrecord.MaskedCRC(data), binary.LittleEndian.Uint32(buf[headerSize+n:]); got != want {
		return buf, nil, fault.New(fault.BadData, "%s: %w: data CRC mismatch (stored %#08x, computed %#08x); prepare the dataset again",
			ix.where(i), tfrecord.ErrCorrupt, want, got)
	}
	return buf, data, nil
}

func (ix *index) close() {
	for _, f := range ix.files {
		f.Close()
	}
	ix.files = nil
}

// Count returns the number of records in shards without decoding images: it
// reads only the record headers. A caller holding the dataset's manifest
// should use its counts (dataset.SplitFiles.Records) instead, which cost
// nothing; Count is for shards without one, and for checking it.
func Count(shards []string) (int, error) {
	ix, err := openIndex(shards)
	if err != nil {
		return 0, err
	}
	defer ix.close()
	return ix.len(), nil
}
