package export

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// The Python converters and verifiers exchange arrays with Go as NumPy .npy
// files (format version 1.0): numpy reads and writes them natively, so the
// scripts need no parsing code, and the header says dtype and shape.

const npyMagic = "\x93NUMPY"

// writeNpyUint8 writes a uint8 array of the given shape.
func writeNpyUint8(path string, shape []int, data []uint8) error {
	if n := product(shape); n != len(data) {
		return fmt.Errorf("npy %s: shape %v holds %d values, got %d", path, shape, n, len(data))
	}
	var b bytes.Buffer
	b.Write(npyHeader("|u1", shape))
	b.Write(data)
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// npyHeader is the magic, version 1.0 and the header dict padded so that the
// data starts on a 64-byte boundary, as numpy itself writes it.
func npyHeader(descr string, shape []int) []byte {
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = strconv.Itoa(d)
	}
	tuple := strings.Join(dims, ", ")
	if len(shape) == 1 {
		tuple += ","
	}
	dict := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, tuple)
	total := len(npyMagic) + 2 + 2 + len(dict) + 1
	pad := (64 - total%64) % 64
	dict += strings.Repeat(" ", pad) + "\n"
	h := []byte(npyMagic + "\x01\x00")
	h = binary.LittleEndian.AppendUint16(h, uint16(len(dict)))
	return append(h, dict...)
}

var (
	npyDescr = regexp.MustCompile(`'descr':\s*'([^']*)'`)
	npyOrder = regexp.MustCompile(`'fortran_order':\s*(True|False)`)
	npyShape = regexp.MustCompile(`'shape':\s*\(([^)]*)\)`)
)

// readNpyFloat32 reads a little-endian float32 array in C order, as the
// verify scripts write their probabilities.
func readNpyFloat32(path string) ([]float32, []int, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	data, descr, shape, err := parseNpy(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if descr != "<f4" {
		return nil, nil, fmt.Errorf("%s: dtype %s, want float32 (<f4)", path, descr)
	}
	n := product(shape)
	if len(data) != 4*n {
		return nil, nil, fmt.Errorf("%s: %d data bytes for shape %v", path, len(data), shape)
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
	}
	return out, shape, nil
}

// parseNpy splits a version 1.0, 2.0 or 3.0 .npy file into its data, dtype
// descriptor and shape; Fortran order is refused.
func parseNpy(raw []byte) (data []byte, descr string, shape []int, err error) {
	if len(raw) < 10 || string(raw[:6]) != npyMagic {
		return nil, "", nil, fmt.Errorf("not a .npy file")
	}
	var hlen, start int
	switch raw[6] {
	case 1:
		hlen, start = int(binary.LittleEndian.Uint16(raw[8:10])), 10
	case 2, 3:
		if len(raw) < 12 {
			return nil, "", nil, fmt.Errorf("truncated .npy header")
		}
		hlen, start = int(binary.LittleEndian.Uint32(raw[8:12])), 12
	default:
		return nil, "", nil, fmt.Errorf(".npy version %d.%d is not supported", raw[6], raw[7])
	}
	if start+hlen > len(raw) {
		return nil, "", nil, fmt.Errorf("truncated .npy header")
	}
	header := string(raw[start : start+hlen])
	d, o, s := npyDescr.FindStringSubmatch(header), npyOrder.FindStringSubmatch(header), npyShape.FindStringSubmatch(header)
	if d == nil || o == nil || s == nil {
		return nil, "", nil, fmt.Errorf("unreadable .npy header %q", header)
	}
	if o[1] == "True" {
		return nil, "", nil, fmt.Errorf(".npy in Fortran order is not supported")
	}
	for _, f := range strings.Split(s[1], ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 {
			return nil, "", nil, fmt.Errorf("bad .npy shape (%s)", s[1])
		}
		shape = append(shape, n)
	}
	return raw[start+hlen:], d[1], shape, nil
}

func product(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}
