package serve

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

var (
	fuzzOnce sync.Once
	fuzzSrv  *Server
)

// fuzzServer is one fake-model server for every fuzz input (no TensorFlow:
// the fuzzing is of the request handling, which runs before any model).
func fuzzServer(t testing.TB) *Server {
	fuzzOnce.Do(func() {
		dir := fakeDir(t, 1)
		cfg := fakeConfig(dir)
		l := &fakeLoader{}
		s, err := New(cfg, l.load)
		if err != nil {
			t.Fatal(err)
		}
		fuzzSrv = s // lives for the test binary; its folder goes with the first test's TempDir
	})
	return fuzzSrv
}

// predictBodySeeds are well-formed requests of every layout, and a few broken ones.
func predictBodySeeds(t testing.TB) []string {
	img := pngBytes(t, testImage(5, 4, 1))
	return []string{
		imageBody(img),
		`{"signature_name": "serving_default", "instances": [{"image_bytes": {"b64": "` + b64(img) + `"}}]}`,
		`{"inputs": {"image_bytes": [{"b64": "` + b64(img) + `"}]}}`,
		`{"signature_name": "two_inputs", "instances": [{"a": [1, 2.5], "b": 3}, {"a": [NaN, -Infinity], "b": -5}]}`,
		`{"signature_name": "two_inputs", "inputs": {"a": [[1, 2.5], [3, 4]], "b": [3, -5]}}`,
		`{"signature_name": "predict_images", "instances": [` + nested(4, 4, 3, 0.5) + `]}`,
		`{"signature_name": "total", "inputs": [1, 2, 3]}`,
		`{"signature_name": "echo", "instances": [true, false]}`,
		`{"instances": [{"b64": "!!"}]}`,
		`{"instances": [[[[]]]]}`,
	}
}

// checkPredictBody sends body to the predict endpoint: whatever it is, the
// answer is 200 or a 4xx with {"error": "..."} on one line, never a panic
// or a 500.
func checkPredictBody(t testing.TB, s *Server, body []byte) {
	req := httptest.NewRequest("POST", "/v1/models/shapes:predict", strings.NewReader(string(body)))
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	var v map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		// The answer may hold NaN or Infinity tokens (TF Serving's JSON).
		if rec.Code != http.StatusOK {
			t.Fatalf("status %d with a body that is not JSON: %q", rec.Code, rec.Body.Bytes())
		}
		return
	}
	switch {
	case rec.Code == http.StatusOK:
		if v["predictions"] == nil && v["outputs"] == nil {
			t.Fatalf("200 without predictions or outputs: %s", rec.Body.Bytes())
		}
	case rec.Code >= 400 && rec.Code < 500:
		msg, ok := v["error"].(string)
		if !ok || msg == "" || strings.Contains(msg, "\n") {
			t.Fatalf("status %d without a one-line error: %s", rec.Code, rec.Body.Bytes())
		}
	default:
		t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body.Bytes())
	}
}

func FuzzPredictBody(f *testing.F) {
	for _, s := range predictBodySeeds(f) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkPredictBody(t, fuzzServer(t), body)
	})
}

// The fuzz target, briefly, in every test run: a few thousand seeded
// mutations of the seed bodies (go test -fuzz=FuzzPredictBody explores
// further).
func TestMalformedBodiesNeverCrash(t *testing.T) {
	s := fuzzServer(t)
	rng := rand.New(rand.NewPCG(7, 7))
	seeds := predictBodySeeds(t)
	tokens := []string{"{", "}", "[", "]", ",", ":", `"`, `\`, "NaN", "-Infinity", "1e999", "-0", "null", "true",
		`{"b64": "`, `"instances"`, `"inputs"`, `"signature_name"`, `"a"`, `"b"`, "\x00", "\xff", "99999999999999999999"}
	for i := range 3000 {
		b := []byte(seeds[i%len(seeds)])
		for range 1 + rng.IntN(5) {
			at := rng.IntN(len(b) + 1)
			switch rng.IntN(3) {
			case 0:
				tok := tokens[rng.IntN(len(tokens))]
				b = append(b[:at], append([]byte(tok), b[at:]...)...)
			case 1:
				if at < len(b) {
					b = append(b[:at], b[min(len(b), at+1+rng.IntN(8)):]...)
				}
			case 2:
				if at < len(b) {
					b[at] = byte(rng.IntN(256))
				}
			}
		}
		checkPredictBody(t, s, b)
	}
}
