// Package tfexample encodes and decodes the tf.Example protocol buffer
// (tensorflow/core/example/example.proto and feature.proto) by hand with
// protowire, so xcept needs no generated code and no TensorFlow to read or
// write the records tf.data parses:
//
//	message Example   { Features features = 1; }
//	message Features  { map<string, Feature> feature = 1; }
//	message Feature   { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2; Int64List int64_list = 3; } }
//	message BytesList { repeated bytes value = 1; }
//	message FloatList { repeated float value = 1 [packed = true]; }
//	message Int64List { repeated int64 value = 1 [packed = true]; }
package tfexample

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers from example.proto and feature.proto.
const (
	fieldExampleFeatures = 1
	fieldFeaturesFeature = 1
	fieldEntryKey        = 1
	fieldEntryValue      = 2
	fieldBytesList       = 1
	fieldFloatList       = 2
	fieldInt64List       = 3
	fieldListValue       = 1
)

// Feature is one tf.train.Feature. Exactly one of its slices is non-nil: that
// slice's kind is the feature's kind, even when it is empty (FloatFeature()
// is an empty float list, which tf.io.parse_single_example treats
// differently from a missing key). A Feature with all three nil has no kind.
type Feature struct {
	Bytes [][]byte
	Float []float32
	Int64 []int64
}

// Example is one tf.train.Example.
type Example struct {
	Features map[string]Feature
}

// BytesFeature returns a bytes_list feature holding v.
func BytesFeature(v ...[]byte) Feature {
	if v == nil {
		v = [][]byte{}
	}
	return Feature{Bytes: v}
}

// Int64Feature returns an int64_list feature holding v.
func Int64Feature(v ...int64) Feature {
	if v == nil {
		v = []int64{}
	}
	return Feature{Int64: v}
}

// FloatFeature returns a float_list feature holding v.
func FloatFeature(v ...float32) Feature {
	if v == nil {
		v = []float32{}
	}
	return Feature{Float: v}
}

// Kind names the feature's kind as tf.train.Feature.WhichOneof("kind") does:
// "bytes_list", "float_list", "int64_list", or "" when none is set.
func (f Feature) Kind() string {
	switch {
	case f.Bytes != nil:
		return "bytes_list"
	case f.Float != nil:
		return "float_list"
	case f.Int64 != nil:
		return "int64_list"
	}
	return ""
}

func (f Feature) kinds() int {
	n := 0
	for _, set := range []bool{f.Bytes != nil, f.Float != nil, f.Int64 != nil} {
		if set {
			n++
		}
	}
	return n
}

// Validate reports a feature with more than one kind set, naming its key.
func (e *Example) Validate() error {
	for _, k := range e.sortedKeys() {
		if e.Features[k].kinds() > 1 {
			return fmt.Errorf("tf.Example feature %q has more than one kind set", k)
		}
	}
	return nil
}

func (e *Example) sortedKeys() []string {
	keys := make([]string, 0, len(e.Features))
	for k := range e.Features {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Bytes returns the single value of the bytes_list feature key, with an
// error naming the key when it is missing, of another kind, or not of length 1.
func (e *Example) Bytes(key string) ([]byte, error) {
	f, err := e.single(key, "bytes_list", len(e.Features[key].Bytes))
	if err != nil {
		return nil, err
	}
	return f.Bytes[0], nil
}

// Int64 returns the single value of the int64_list feature key (see Bytes).
func (e *Example) Int64(key string) (int64, error) {
	f, err := e.single(key, "int64_list", len(e.Features[key].Int64))
	if err != nil {
		return 0, err
	}
	return f.Int64[0], nil
}

// Float returns the single value of the float_list feature key (see Bytes).
func (e *Example) Float(key string) (float32, error) {
	f, err := e.single(key, "float_list", len(e.Features[key].Float))
	if err != nil {
		return 0, err
	}
	return f.Float[0], nil
}

func (e *Example) single(key, kind string, n int) (Feature, error) {
	f, ok := e.Features[key]
	switch {
	case !ok:
		return f, fmt.Errorf("tf.Example has no feature %q", key)
	case f.Kind() == "":
		return f, fmt.Errorf("tf.Example feature %q has no kind set, want a %s", key, kind)
	case f.Kind() != kind:
		return f, fmt.Errorf("tf.Example feature %q is a %s, want a %s", key, f.Kind(), kind)
	case n != 1:
		return f, fmt.Errorf("tf.Example feature %q has %d values, want 1", key, n)
	}
	return f, nil
}

// Marshal encodes e. Keys are written in sorted order, as protobuf's
// deterministic serialization does, so equal examples give equal bytes
// (the same bytes as Python's SerializeToString(deterministic=True) as long
// as no key is a prefix of another, where Python's upb runtime departs from
// byte order).
// It panics if a feature has more than one kind set (see Validate): that is
// a bug in the caller, and no encoding of it would mean what was meant.
func (e *Example) Marshal() []byte {
	keys := e.sortedKeys()
	featuresSize := 0
	for _, k := range keys {
		f := e.Features[k]
		if f.kinds() > 1 {
			panic(fmt.Sprintf("tfexample: feature %q has more than one kind set", k))
		}
		featuresSize += sizeField(fieldFeaturesFeature, entrySize(k, f))
	}
	b := make([]byte, 0, sizeField(fieldExampleFeatures, featuresSize))
	b = appendLenTag(b, fieldExampleFeatures, featuresSize)
	for _, k := range keys {
		f := e.Features[k]
		b = appendLenTag(b, fieldFeaturesFeature, entrySize(k, f))
		b = appendLenTag(b, fieldEntryKey, len(k))
		b = append(b, k...)
		b = appendLenTag(b, fieldEntryValue, featureSize(f))
		b = appendFeature(b, f)
	}
	return b
}

// sizeField is the encoded size of a length-delimited field whose body is n bytes.
func sizeField(num protowire.Number, n int) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(n)
}

func appendLenTag(b []byte, num protowire.Number, n int) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendVarint(b, uint64(n))
}

func entrySize(key string, f Feature) int {
	return sizeField(fieldEntryKey, len(key)) + sizeField(fieldEntryValue, featureSize(f))
}

func featureSize(f Feature) int {
	switch {
	case f.Bytes != nil:
		return sizeField(fieldBytesList, bytesListSize(f.Bytes))
	case f.Float != nil:
		return sizeField(fieldFloatList, packedSize(4*len(f.Float)))
	case f.Int64 != nil:
		return sizeField(fieldInt64List, packedSize(int64sSize(f.Int64)))
	}
	return 0
}

func bytesListSize(v [][]byte) int {
	n := 0
	for _, x := range v {
		n += sizeField(fieldListValue, len(x))
	}
	return n
}

// packedSize is the size of a list message holding one packed field whose
// payload is n bytes. An empty packed field is not written at all.
func packedSize(n int) int {
	if n == 0 {
		return 0
	}
	return sizeField(fieldListValue, n)
}

func int64sSize(v []int64) int {
	n := 0
	for _, x := range v {
		n += protowire.SizeVarint(uint64(x))
	}
	return n
}

func appendFeature(b []byte, f Feature) []byte {
	switch {
	case f.Bytes != nil:
		b = appendLenTag(b, fieldBytesList, bytesListSize(f.Bytes))
		for _, x := range f.Bytes {
			b = appendLenTag(b, fieldListValue, len(x))
			b = append(b, x...)
		}
	case f.Float != nil:
		b = appendLenTag(b, fieldFloatList, packedSize(4*len(f.Float)))
		if len(f.Float) > 0 {
			b = appendLenTag(b, fieldListValue, 4*len(f.Float))
			for _, x := range f.Float {
				b = protowire.AppendFixed32(b, math.Float32bits(x))
			}
		}
	case f.Int64 != nil:
		n := int64sSize(f.Int64)
		b = appendLenTag(b, fieldInt64List, packedSize(n))
		if n > 0 {
			b = appendLenTag(b, fieldListValue, n)
			for _, x := range f.Int64 {
				b = protowire.AppendVarint(b, uint64(x))
			}
		}
	}
	return b
}

// Unmarshal decodes a serialized tf.Example. It follows protobuf's parsing
// rules, so it reads what any writer produces: packed or unpacked repeated
// numbers, unknown fields (skipped), repeated messages (merged), duplicate
// map keys and oneof members (the last wins). Bytes values are copied, so the
// result does not alias b.
func Unmarshal(b []byte) (*Example, error) {
	e := &Example{Features: map[string]Feature{}}
	err := walk(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num == fieldExampleFeatures && typ == protowire.BytesType {
			return e.mergeFeatures(v)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("tf.Example: %w", err)
	}
	return e, nil
}

func (e *Example) mergeFeatures(b []byte) error {
	return walk(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num != fieldFeaturesFeature || typ != protowire.BytesType {
			return nil
		}
		key, f, err := parseEntry(v)
		if err != nil {
			return err
		}
		e.Features[key] = f
		return nil
	})
}

func parseEntry(b []byte) (string, Feature, error) {
	var key string
	var f Feature
	err := walk(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case fieldEntryKey:
			key = string(v)
		case fieldEntryValue:
			// A repeated value field merges into the one before it.
			return f.merge(v)
		}
		return nil
	})
	if err != nil {
		return "", Feature{}, err
	}
	return key, f, nil
}

// merge parses a Feature message into f. A oneof member replaces any other
// member that is set, and merges into itself (lists concatenate).
func (f *Feature) merge(b []byte) error {
	return walk(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if typ != protowire.BytesType {
			return nil
		}
		var err error
		switch num {
		case fieldBytesList:
			list := f.Bytes
			if list == nil {
				list = [][]byte{}
			}
			*f = Feature{}
			f.Bytes, err = appendBytesList(list, v)
		case fieldFloatList:
			list := f.Float
			if list == nil {
				list = []float32{}
			}
			*f = Feature{}
			f.Float, err = appendFloatList(list, v)
		case fieldInt64List:
			list := f.Int64
			if list == nil {
				list = []int64{}
			}
			*f = Feature{}
			f.Int64, err = appendInt64List(list, v)
		}
		return err
	})
}

func appendBytesList(list [][]byte, b []byte) ([][]byte, error) {
	err := walk(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num == fieldListValue && typ == protowire.BytesType {
			list = append(list, append([]byte{}, v...))
		}
		return nil
	})
	return list, err
}

func appendFloatList(list []float32, b []byte) ([]float32, error) {
	err := walkValues(b, protowire.Fixed32Type, func(x uint64) {
		list = append(list, math.Float32frombits(uint32(x)))
	})
	return list, err
}

func appendInt64List(list []int64, b []byte) ([]int64, error) {
	err := walkValues(b, protowire.VarintType, func(x uint64) {
		list = append(list, int64(x))
	})
	return list, err
}

var errBadPacked = errors.New("malformed packed repeated field")

// walkValues calls fn for each value of list field 1 in b, whether encoded
// one per tag (wire type typ) or packed into a length-delimited field.
func walkValues(b []byte, typ protowire.Type, fn func(uint64)) error {
	return walk(b, func(num protowire.Number, t protowire.Type, v []byte) error {
		if num != fieldListValue {
			return nil
		}
		if t == typ {
			fn(scalar(t, v))
			return nil
		}
		if t != protowire.BytesType {
			return nil
		}
		for len(v) > 0 {
			x, n := consumeScalar(typ, v)
			if n < 0 {
				return errBadPacked
			}
			fn(x)
			v = v[n:]
		}
		return nil
	})
}

// scalar decodes the raw bytes walk handed over for a fixed32 or varint
// field (walk has already checked them).
func scalar(t protowire.Type, v []byte) uint64 {
	x, _ := consumeScalar(t, v)
	return x
}

func consumeScalar(t protowire.Type, b []byte) (uint64, int) {
	if t == protowire.Fixed32Type {
		x, n := protowire.ConsumeFixed32(b)
		return uint64(x), n
	}
	return protowire.ConsumeVarint(b)
}

// walk calls fn for each field of the message b. For length-delimited
// fields v is the body; for the other wire types v is the raw value bytes.
// Group wire types are skipped as unknown fields.
func walk(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		if typ == protowire.BytesType {
			body, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return protowire.ParseError(m)
			}
			v, n = body, m
		} else {
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return protowire.ParseError(m)
			}
			v, n = b[:m], m
		}
		if err := fn(num, typ, v); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}
