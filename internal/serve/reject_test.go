package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/xcept/xcept/internal/calibrate"
	evalmetrics "github.com/xcept/xcept/internal/metrics" // serve has its own metrics
	"github.com/xcept/xcept/internal/serve/grpcapi/pb"
)

// rejectServer serves fake models through Rejecting at threshold.
func rejectServer(t *testing.T, threshold float64) *Server {
	t.Helper()
	l := &fakeLoader{}
	load := Rejecting(l.load, func(string) (*calibrate.Rejection, error) {
		return &calibrate.Rejection{Score: calibrate.ScoreConfidence, Accept: 0.95, Threshold: threshold}, nil
	})
	s, err := New(fakeConfig(fakeDir(t, 1)), load)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// wantAnswer is the fake model's top class for an image, or "unknown".
func wantAnswer(img []byte, threshold float64) (string, bool) {
	p := fakeProbs(img, 1)
	top := evalmetrics.Argmax(p)
	if float64(p[top]) < threshold {
		return "unknown", true
	}
	return fakeClasses[top], false
}

// TestRejectingAddsOutputs: with serve.reject, serving_default answers
// "unknown" and "class" beside unchanged probabilities and classes, in
// REST's rows and columns and in gRPC's outputs; predict_images and the
// metadata of the other signatures are unchanged.
func TestRejectingAddsOutputs(t *testing.T) {
	const threshold = 0.45
	s := rejectServer(t, threshold)
	ts := startServer(t, s)
	var imgs [][]byte
	var instances []string
	unknowns := 0
	for i := range 12 {
		img := pngBytes(t, testImage(4, 4, i))
		imgs = append(imgs, img)
		instances = append(instances, fmt.Sprintf(`{"b64": %q}`, b64(img)))
		if _, u := wantAnswer(img, threshold); u {
			unknowns++
		}
	}
	if unknowns == 0 || unknowns == len(imgs) {
		t.Fatalf("%d of %d images below %v: the test needs both answers", unknowns, len(imgs), threshold)
	}
	url := ts.URL + "/v1/models/shapes:predict"
	resp := do(t, ts.Client(), "POST", url, `{"instances": [`+strings.Join(instances, ", ")+`]}`)
	var rows struct {
		Predictions []struct {
			Probabilities []float32 `json:"probabilities"`
			Classes       []string  `json:"classes"`
			Unknown       *bool     `json:"unknown"`
			Class         string    `json:"class"`
		} `json:"predictions"`
	}
	if resp.code != 200 || json.Unmarshal(resp.body, &rows) != nil || len(rows.Predictions) != len(imgs) {
		t.Fatalf("rows: %d %s", resp.code, resp.body)
	}
	for i, p := range rows.Predictions {
		class, unknown := wantAnswer(imgs[i], threshold)
		if p.Unknown == nil || *p.Unknown != unknown || p.Class != class || len(p.Probabilities) != 3 || p.Probabilities[0] != fakeProbs(imgs[i], 1)[0] ||
			strings.Join(p.Classes, ",") != "circle,square,triangle" {
			t.Errorf("row %d: %+v, want class %q unknown %v", i, p, class, unknown)
		}
	}
	if !strings.Contains(string(resp.body), `"unknown": true`) || !strings.Contains(string(resp.body), `"class": "unknown"`) {
		t.Errorf("the answer's text: %s", resp.body)
	}

	resp = do(t, ts.Client(), "POST", url, `{"inputs": {"image_bytes": [`+strings.Join(instances[:2], ", ")+`]}}`)
	var cols struct {
		Outputs struct {
			Unknown []bool   `json:"unknown"`
			Class   []string `json:"class"`
		} `json:"outputs"`
	}
	if resp.code != 200 || json.Unmarshal(resp.body, &cols) != nil || len(cols.Outputs.Unknown) != 2 || len(cols.Outputs.Class) != 2 {
		t.Errorf("columns: %d %s", resp.code, resp.body)
	}

	pixel := "[0.5, 0.5, 0.5]"
	row := "[" + strings.TrimSuffix(strings.Repeat(pixel+", ", 4), ", ") + "]"
	image := "[" + strings.TrimSuffix(strings.Repeat(row+", ", 4), ", ") + "]"
	resp = do(t, ts.Client(), "POST", ts.URL+"/v1/models/shapes:predict", `{"signature_name": "predict_images", "instances": [`+image+`]}`)
	if resp.code != 200 || strings.Contains(string(resp.body), "unknown") || !strings.HasPrefix(strings.TrimSpace(string(resp.body)), `{
    "predictions": [
        [`) {
		t.Errorf("predict_images must answer as before: %d %s", resp.code, resp.body)
	}

	meta := do(t, ts.Client(), "GET", ts.URL+"/v1/models/shapes/metadata", "")
	if !strings.Contains(string(meta.body), `"unknown"`) || !strings.Contains(string(meta.body), `"DT_BOOL"`) {
		t.Errorf("metadata does not list the unknown output: %s", meta.body)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.ServeGRPC(ctx, ln, 0) }()
	defer func() { cancel(); <-done }()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := &pb.PredictRequest{ModelSpec: &pb.ModelSpec{Name: "shapes"}, Inputs: map[string]*pb.TensorProto{
		"image_bytes": {Dtype: pb.DataType_DT_STRING, TensorShape: shapeProto([]int64{int64(len(imgs))}), StringVal: imgs}}}
	out, err := pb.NewPredictionServiceClient(conn).Predict(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	u, c := out.Outputs["unknown"], out.Outputs["class"]
	if u == nil || c == nil || u.Dtype != pb.DataType_DT_BOOL || len(u.BoolVal) != len(imgs) || len(c.StringVal) != len(imgs) || len(out.Outputs["probabilities"].GetFloatVal()) != 3*len(imgs) {
		t.Fatalf("gRPC outputs %v", out.Outputs)
	}
	for i := range imgs {
		class, unknown := wantAnswer(imgs[i], threshold)
		if u.BoolVal[i] != unknown || string(c.StringVal[i]) != class {
			t.Errorf("gRPC row %d: unknown %v class %q, want %v %q", i, u.BoolVal[i], c.StringVal[i], unknown, class)
		}
	}
}

// TestRejectingNeedsAThreshold: a version without a threshold is not loaded.
func TestRejectingNeedsAThreshold(t *testing.T) {
	l := &fakeLoader{}
	load := Rejecting(l.load, func(dir string) (*calibrate.Rejection, error) {
		return nil, errors.New(dir + ": no threshold")
	})
	if _, err := New(fakeConfig(fakeDir(t, 1)), load); err == nil || !strings.Contains(err.Error(), "no threshold") {
		t.Errorf("New: %v", err)
	}
	if l.model(1) != nil {
		t.Error("the version was loaded although it has no threshold")
	}
}
