package serve

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/imageio"
)

// DefaultSignature is the signature a request without signature_name runs:
// TF Serving's default, the serving model's encoded-image signature.
const DefaultSignature = contract.SigServing

// Format is the layout of a predict request; the response uses the same.
type Format int

// The two layouts of TF Serving's predict API.
const (
	Row      Format = iota + 1 // {"instances": [...]} → {"predictions": [...]}
	Columnar                   // {"inputs": ...} → {"outputs": ...}
)

// PredictRequest is a parsed predict body.
type PredictRequest struct {
	Signature string
	Format    Format
	Inputs    map[string]*Column
	// RowPixels are the decoded pixels of each row's images (from their
	// headers; zero for rows without images): what batches are budgeted by.
	RowPixels []int64
}

// Limits protect the process from what a request carries.
type Limits struct {
	// MaxPixels is the most pixels (width × height, read from the header)
	// an encoded image may have; 0: no limit.
	MaxPixels int64
	// MaxRequestPixels bounds the pixels of all a request's images
	// together, read from their headers before any is decoded; 0: no limit.
	MaxRequestPixels int64
	// Decode, when set, bounds the pixels decoded in Go at once across all
	// requests: each image holds its pixels from it while it is decoded.
	Decode *Budget
}

// tooManyPixels is a request over MaxRequestPixels: 413, as for a body over
// its limit (the request can never be served as it is).
func tooManyPixels(n, limit int64) *Error {
	return &Error{Code: graph.CodeResourceExhausted, Status: http.StatusRequestEntityTooLarge,
		Message: fmt.Sprintf("the request's images have %d pixels together (width × height, from their headers), over the limit of %d per request (serve.max_request_pixels): send fewer or smaller images per request", n, limit)}
}

// ParsePredict reads a predict body against the model's signatures, with
// TF Serving's rules (tensorflow_serving/util/json_tensor.cc): row or
// columnar layout, named or unnamed inputs, {"b64": ...} strings. Every
// string input is an encoded image, replaced here by what the model is fed
// (see FeedImage): nothing unchecked or oversized reaches TensorFlow.
//
// Images are checked in two passes: every header first (each against
// MaxPixels, all together against MaxRequestPixels), so that a request over
// a limit is refused before one pixel is decoded; then each is decoded,
// holding its pixels of lim.Decode, until ctx is done.
func ParsePredict(ctx context.Context, body []byte, sigs map[string]*graph.Signature, lim Limits) (*PredictRequest, error) {
	d, err := parseJSON(body)
	if err != nil {
		return nil, invalidf("%v", err)
	}
	if d.nodes[0].kind != jObject {
		return nil, invalidf("the request body is %s, not a JSON object", d.describe(0))
	}
	req := &PredictRequest{Signature: DefaultSignature}
	if i := d.field(0, "signature_name"); i >= 0 {
		if d.nodes[i].kind != jString {
			return nil, invalidf("'signature_name' key must be a string value, not %s", d.describe(i))
		}
		if name := string(d.str(i)); name != "" {
			req.Signature = name
		}
	}
	sig, ok := sigs[req.Signature]
	if !ok {
		return nil, invalidf("Serving signature name: %q not found in signature def (this model has %s)",
			req.Signature, strings.Join(servingSignatures(sigs), ", "))
	}
	if len(sig.Inputs) == 0 {
		return nil, invalidf("signature %q has no inputs", req.Signature)
	}
	instances, inputs := d.field(0, "instances"), d.field(0, "inputs")
	switch {
	case instances >= 0 && inputs >= 0:
		return nil, invalidf("the request has both 'instances' and 'inputs': send only one")
	case instances >= 0:
		req.Format = Row
		req.Inputs, err = rowInputs(d, instances, sig)
	case inputs >= 0:
		req.Format = Columnar
		req.Inputs, err = columnarInputs(d, inputs, sig)
	default:
		return nil, invalidf("Missing 'inputs' or 'instances' key")
	}
	if err != nil {
		return nil, err
	}
	if err := req.checkImages(ctx, sig, lim); err != nil {
		return nil, err
	}
	return req, nil
}

// checkImages checks every input against the signature and replaces each
// encoded image by what the model is fed, within the limits: the rule that
// REST and gRPC requests share once their inputs are read.
func (req *PredictRequest) checkImages(ctx context.Context, sig *graph.Signature, lim Limits) error {
	var images []imageRef
	for _, key := range sig.InputKeys() {
		refs, err := checkInput(key, req.Inputs[key], sig.Inputs[key], req.Format, lim)
		if err != nil {
			return err
		}
		images = append(images, refs...)
	}
	if len(images) == 0 {
		return nil
	}
	var total int64
	rows, _ := batchRows(sig, req.Inputs)
	if rows > 0 {
		req.RowPixels = make([]int64, rows)
	}
	for _, im := range images {
		total += im.pixels
		if req.RowPixels != nil && im.row < rows {
			req.RowPixels[im.row] += im.pixels
		}
	}
	if lim.MaxRequestPixels > 0 && total > lim.MaxRequestPixels {
		return tooManyPixels(total, lim.MaxRequestPixels)
	}
	for _, im := range images {
		if err := im.feed(ctx, lim.Decode); err != nil {
			return err
		}
	}
	return nil
}

// imageRef is one encoded image of a request whose header was checked.
type imageRef struct {
	imgs   [][]byte // the column's data: feed replaces imgs[n]
	n      int
	row    int // the row it belongs to, when the input is batched by rows
	pixels int64
	where  string
}

// feed replaces the image by what the model is fed (imageio.ServingFeed),
// decoding it while it holds its pixels of budget (nil: no budget).
func (im imageRef) feed(ctx context.Context, budget *Budget) error {
	if err := budget.acquire(ctx, im.pixels); err != nil {
		return err
	}
	defer budget.release(im.pixels)
	if err := ctx.Err(); err != nil {
		return err
	}
	feed, _, err := imageio.ServingFeed(im.imgs[im.n], imageio.Limits{})
	if err != nil {
		return invalidf("%s: %v", im.where, err)
	}
	im.imgs[im.n] = feed
	return nil
}

// servingSignatures lists the signatures a client can call (not the
// SavedModel's internal __saved_model_init_op).
func servingSignatures(sigs map[string]*graph.Signature) []string {
	var keys []string
	for k := range sigs {
		if !strings.HasPrefix(k, "__") {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// rowInputs reads "instances": a list with one element per row, each the
// value of the only input, or an object naming every input.
func rowInputs(d *jdoc, list int, sig *graph.Signature) (map[string]*Column, error) {
	if d.nodes[list].kind != jArray {
		return nil, invalidf("'instances' must be a list, not %s", d.describe(list))
	}
	elems := d.elems(list)
	if len(elems) == 0 {
		return nil, invalidf("No values in 'instances' list")
	}
	isNamed := func(i int) bool { return d.nodes[i].kind == jObject && !d.isB64(i) }
	named := isNamed(elems[0])
	if !named && len(sig.Inputs) > 1 {
		return nil, invalidf("'instances' is a plain list, but signature %q has %d inputs (%s): send a list of objects naming each",
			sig.Key, len(sig.Inputs), strings.Join(sig.InputKeys(), ", "))
	}
	cols := map[string]*tensorBuilder{}
	builder := func(key string) *tensorBuilder {
		if cols[key] == nil {
			cols[key] = newTensorBuilder(key, sig.Inputs[key].DType)
		}
		return cols[key]
	}
	only := sig.InputKeys()[0]
	for n, e := range elems {
		if isNamed(e) != named {
			if named {
				return nil, invalidf("instances[%d] is %s, but instances[0] is an object naming the inputs: use one form", n, d.describe(e))
			}
			return nil, invalidf("instances[%d] is an object, but instances[0] is a value: use one form", n)
		}
		if !named {
			if err := builder(only).addInstance(d, e); err != nil {
				return nil, invalidf("instances[%d]: %v", n, err)
			}
			continue
		}
		seen := map[string]bool{}
		for _, m := range d.members(e) {
			if _, ok := sig.Inputs[m.key]; !ok {
				return nil, invalidf("instances[%d] names input %q, but signature %q has inputs %s",
					n, m.key, sig.Key, strings.Join(sig.InputKeys(), ", "))
			}
			if seen[m.key] {
				continue // rapidjson's FindMember sees only the first
			}
			seen[m.key] = true
			if err := builder(m.key).addInstance(d, m.value); err != nil {
				return nil, invalidf("instances[%d] input %q: %v", n, m.key, err)
			}
		}
		if len(seen) != len(sig.Inputs) {
			return nil, invalidf("instances[%d] must name every input of signature %q: %s",
				n, sig.Key, strings.Join(sig.InputKeys(), ", "))
		}
	}
	out := map[string]*Column{}
	for key, b := range cols {
		out[key] = b.column(len(elems))
	}
	return out, nil
}

// columnarInputs reads "inputs": the only input's whole tensor, or an
// object with one tensor per input. Keys naming no input are ignored, as
// TF Serving ignores them.
func columnarInputs(d *jdoc, v int, sig *graph.Signature) (map[string]*Column, error) {
	out := map[string]*Column{}
	if d.nodes[v].kind != jObject || d.isB64(v) {
		if len(sig.Inputs) > 1 {
			return nil, invalidf("'inputs' is a plain value or list, but signature %q has %d inputs (%s): send an object naming each",
				sig.Key, len(sig.Inputs), strings.Join(sig.InputKeys(), ", "))
		}
		key := sig.InputKeys()[0]
		c, err := wholeTensor(d, v, key, sig.Inputs[key].DType)
		if err != nil {
			return nil, invalidf("inputs: %v", err)
		}
		out[key] = c
		return out, nil
	}
	for _, key := range sig.InputKeys() {
		i := d.field(v, key)
		if i < 0 {
			return nil, invalidf("Missing named input: %s in 'inputs' object", key)
		}
		c, err := wholeTensor(d, i, key, sig.Inputs[key].DType)
		if err != nil {
			return nil, invalidf("inputs %q: %v", key, err)
		}
		out[key] = c
	}
	return out, nil
}

func wholeTensor(d *jdoc, v int, key string, dt graph.DType) (*Column, error) {
	b := newTensorBuilder(key, dt)
	if err := b.addInstance(d, v); err != nil {
		return nil, err
	}
	return &Column{DType: dt, Shape: b.shape, Data: b.vals.data()}, nil
}

// checkInput compares a request's tensor with the signature's declared
// dtype and shape, and probes images' headers, before anything is batched: a
// misfit would otherwise fail every request batched with it. It returns
// the images, to be decoded once every header of the request passed.
func checkInput(key string, c *Column, ti graph.TensorInfo, f Format, lim Limits) ([]imageRef, error) {
	if ti.Shape != nil {
		if len(c.Shape) != len(ti.Shape) {
			return nil, invalidf("input %q has shape %s, but the signature takes %s (rank %d)%s",
				key, shapeString(c.Shape), shapeString(ti.Shape), len(ti.Shape), rankHint(f, len(c.Shape), len(ti.Shape)))
		}
		for i, want := range ti.Shape {
			if want >= 0 && c.Shape[i] != want {
				return nil, invalidf("input %q has shape %s, but the signature takes %s", key, shapeString(c.Shape), shapeString(ti.Shape))
			}
		}
	}
	if c.DType != graph.String {
		return nil, nil
	}
	imgs := c.Data.([][]byte)
	perRow := 1
	if len(c.Shape) > 0 && c.Shape[0] > 0 {
		perRow = len(imgs) / int(c.Shape[0])
	}
	refs := make([]imageRef, len(imgs))
	for n, img := range imgs {
		where := fmt.Sprintf("input %q element %d", key, n)
		if f == Row && len(c.Shape) == 1 {
			where = fmt.Sprintf("instances[%d] %q", n, key)
		}
		h, err := probeImage(img, lim)
		if err != nil {
			return nil, invalidf("%s: %v", where, err)
		}
		refs[n] = imageRef{imgs: imgs, n: n, row: n / max(1, perRow), pixels: h.Pixels(), where: where}
	}
	return refs, nil
}

func rankHint(f Format, got, want int) string {
	if f == Row && got == want-1 {
		return "; in 'instances' each element is one row, without the batch dimension, so send a list of rows"
	}
	if f == Row && got == want+1 {
		return "; in 'instances' each element is one row: drop one level of nesting"
	}
	return ""
}

// probeImage reads an encoded image's header and checks it against the
// per-image pixel limit, before any pixel is decoded.
func probeImage(data []byte, lim Limits) (imageio.Header, error) {
	h, err := imageio.Probe(data, imageio.Limits{})
	var ie *imageio.Error
	if errors.As(err, &ie) && ie.Reason == imageio.ReasonNotImage {
		return h, fmt.Errorf("%s: the bytes are not a JPEG, PNG, GIF, BMP, WebP or TIFF image", ie.Reason)
	}
	if err != nil {
		return h, err
	}
	if lim.MaxPixels > 0 && h.Pixels() > lim.MaxPixels {
		return h, fmt.Errorf("%s: %d×%d is %d pixels, over the server's limit of %d (serve.max_pixels)",
			imageio.ReasonTooLarge, h.Width, h.Height, h.Pixels(), lim.MaxPixels)
	}
	return h, nil
}

// FeedImage returns the bytes serving_default is fed for an encoded image:
// the pixel limit checked on the header before any pixel is decoded, then
// imageio.ServingFeed, the rule xcept predict follows too, so that both
// answer alike and the model sees the pixels prepare trained it on.
func FeedImage(data []byte, lim Limits) ([]byte, error) {
	if _, err := probeImage(data, lim); err != nil {
		return nil, err
	}
	feed, _, err := imageio.ServingFeed(data, imageio.Limits{})
	return feed, err
}

func shapeString(s []int64) string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = strconv.FormatInt(d, 10)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// tensorBuilder gathers one input's elements from instances (rows) or a
// whole tensor, checking that every part has the same dense shape.
type tensorBuilder struct {
	key   string
	dtype graph.DType
	vals  leafAppender
	shape []int64 // the shape of the first part added
	parts int
}

func newTensorBuilder(key string, dt graph.DType) *tensorBuilder {
	return &tensorBuilder{key: key, dtype: dt, vals: newLeafAppender(dt)}
}

// addInstance adds the tensor at node v: its shape follows the first
// element of each nested list, and every list must match it.
func (b *tensorBuilder) addInstance(d *jdoc, v int) error {
	if b.vals == nil {
		return errorf(graph.CodeUnimplemented, "input %q is %s, which cannot be sent as JSON", b.key, b.dtype)
	}
	shape := denseShape(d, v)
	if b.parts > 0 && !slices.Equal(shape, b.shape) {
		return fmt.Errorf("shape %s differs from the first instance's %s", shapeString(shape), shapeString(b.shape))
	}
	if err := b.fill(d, v, 0, shape); err != nil {
		return err
	}
	if b.parts == 0 {
		b.shape = shape
	}
	b.parts++
	return nil
}

func denseShape(d *jdoc, v int) []int64 {
	var shape []int64
	for d.nodes[v].kind == jArray {
		n := d.nodes[v].a
		shape = append(shape, int64(n))
		if n == 0 {
			break
		}
		v++
	}
	return shape
}

func (b *tensorBuilder) fill(d *jdoc, v, level int, shape []int64) error {
	n := d.nodes[v]
	if n.kind != jArray {
		if level != len(shape) {
			return fmt.Errorf("%s found at nesting level %d, expected at level %d (lists must be regular, like a tensor)",
				d.describe(v), level+1, len(shape))
		}
		return b.vals.add(d, v)
	}
	if level >= len(shape) {
		return fmt.Errorf("a list found at nesting level %d, expected a value (lists must be regular, like a tensor)", level+1)
	}
	if int64(n.a) != shape[level] {
		return fmt.Errorf("a list of %d at nesting level %d, expected %d like the first one (lists must be regular, like a tensor)",
			n.a, level+1, shape[level])
	}
	for c, k := v+1, 0; k < int(n.a); c, k = d.next(c), k+1 {
		if err := b.fill(d, c, level+1, shape); err != nil {
			return err
		}
	}
	return nil
}

// column is the tensor of all rows added: [rows] + the instance shape.
func (b *tensorBuilder) column(rows int) *Column {
	shape := append([]int64{int64(rows)}, b.shape...)
	return &Column{DType: b.dtype, Shape: shape, Data: b.vals.data()}
}

// leafAppender converts JSON leaves to one dtype.
type leafAppender interface {
	add(d *jdoc, v int) error
	data() any
}

type appender[T any] struct {
	vals  []T
	parse func(d *jdoc, v int) (T, error)
}

func (a *appender[T]) add(d *jdoc, v int) error {
	x, err := a.parse(d, v)
	if err != nil {
		return err
	}
	a.vals = append(a.vals, x)
	return nil
}

func (a *appender[T]) data() any {
	if a.vals == nil {
		return []T{}
	}
	return a.vals
}

func newLeafAppender(dt graph.DType) leafAppender {
	switch dt {
	case graph.Float, graph.Half, graph.BFloat16:
		return &appender[float32]{parse: parseFloat32}
	case graph.Double:
		return &appender[float64]{parse: parseFloat64}
	case graph.Int8:
		return &appender[int8]{parse: intParser[int8](8)}
	case graph.Int16:
		return &appender[int16]{parse: intParser[int16](16)}
	case graph.Int32:
		return &appender[int32]{parse: intParser[int32](32)}
	case graph.Int64:
		return &appender[int64]{parse: intParser[int64](64)}
	case graph.Uint8:
		return &appender[uint8]{parse: uintParser[uint8](8)}
	case graph.Uint16:
		return &appender[uint16]{parse: uintParser[uint16](16)}
	case graph.Bool:
		return &appender[bool]{parse: parseBool}
	case graph.String:
		return &appender[[]byte]{parse: parseBytes}
	}
	return nil
}

func typeError(d *jdoc, v int, want string) error {
	return fmt.Errorf("JSON value %s (%s) is not of expected type: %s", d.describe(v), d.nodes[v].kind, want)
}

// numberText returns a number's text and whether it is an integer literal.
func numberText(d *jdoc, v int) (string, bool) {
	s := string(d.text(v))
	return s, !strings.ContainsAny(s, ".eEaNI")
}

// parseDecimal reads a number for a float type whose mantissa has bits
// bits, refusing what the type cannot hold: TF Serving's rule is that an
// integer must be below 2^bits and any other value within the type's range
// (NaN and ±Infinity are allowed).
func parseDecimal(d *jdoc, v int, bits int, name string, max float64) (float64, error) {
	if d.nodes[v].kind != jNumber {
		return 0, typeError(d, v, name)
	}
	s, integer := numberText(d, v)
	if integer {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			if n > 1<<bits-1 || n < -(1<<bits-1) {
				return 0, fmt.Errorf("cannot convert JSON value %s to %s without loss of precision", s, name)
			}
			return float64(n), nil
		}
	}
	f, err := strconv.ParseFloat(s, 64) // takes NaN, Infinity and -Infinity too
	if err != nil && !math.IsInf(f, 0) {
		return 0, fmt.Errorf("cannot read JSON number %s", s)
	}
	if !strings.Contains(s, "Inf") && !math.IsNaN(f) && (math.IsInf(f, 0) || math.Abs(f) > max) {
		return 0, fmt.Errorf("cannot convert JSON value %s to %s without loss of precision", s, name)
	}
	return f, nil
}

func parseFloat32(d *jdoc, v int) (float32, error) {
	f, err := parseDecimal(d, v, 24, "float", math.MaxFloat32)
	return float32(f), err
}

func parseFloat64(d *jdoc, v int) (float64, error) {
	return parseDecimal(d, v, 53, "double", math.MaxFloat64)
}

func intParser[T int8 | int16 | int32 | int64](bits int) func(d *jdoc, v int) (T, error) {
	name := fmt.Sprintf("int%d", bits)
	return func(d *jdoc, v int) (T, error) {
		s, integer := numberText(d, v)
		if d.nodes[v].kind != jNumber || !integer {
			return 0, typeError(d, v, name)
		}
		n, err := strconv.ParseInt(s, 10, bits)
		if err != nil {
			return 0, fmt.Errorf("JSON value %s is out of range for %s", s, name)
		}
		return T(n), nil
	}
}

func uintParser[T uint8 | uint16](bits int) func(d *jdoc, v int) (T, error) {
	name := fmt.Sprintf("uint%d", bits)
	return func(d *jdoc, v int) (T, error) {
		s, integer := numberText(d, v)
		if d.nodes[v].kind != jNumber || !integer {
			return 0, typeError(d, v, name)
		}
		n, err := strconv.ParseUint(s, 10, bits)
		if err != nil {
			return 0, fmt.Errorf("JSON value %s is out of range for %s", s, name)
		}
		return T(n), nil
	}
}

func parseBool(d *jdoc, v int) (bool, error) {
	switch d.nodes[v].kind {
	case jTrue:
		return true, nil
	case jFalse:
		return false, nil
	}
	return false, typeError(d, v, "bool")
}

// parseBytes reads a string, or binary data as {"b64": "..."}. Standard and
// URL-safe alphabets are accepted, padded or not.
func parseBytes(d *jdoc, v int) ([]byte, error) {
	switch d.nodes[v].kind {
	case jString:
		return d.str(v), nil
	case jObject:
		if !d.isB64(v) {
			return nil, fmt.Errorf("JSON value %s is not formatted correctly for base64 data: send {\"b64\": \"...\"}", d.describe(v))
		}
		return decodeBase64(d.str(d.field(v, "b64")))
	}
	return nil, typeError(d, v, "string")
}

func decodeBase64(s []byte) ([]byte, error) {
	enc := base64.StdEncoding
	if slices.ContainsFunc(s, func(c byte) bool { return c == '-' || c == '_' }) {
		enc = base64.URLEncoding
	}
	if len(s)%4 != 0 {
		enc = enc.WithPadding(base64.NoPadding)
	}
	out := make([]byte, enc.DecodedLen(len(s)))
	n, err := enc.Decode(out, s)
	if err != nil {
		return nil, fmt.Errorf("unable to base64 decode: %v", err)
	}
	return out[:n], nil
}
