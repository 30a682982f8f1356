// Package serve answers TF Serving's REST API from an exported model: the
// status, metadata and predict endpoints, with dynamic batching of
// concurrent requests, hot reload of new version folders, limits that
// protect the process, /healthz and Prometheus metrics on /metrics.
package serve

import (
	"context"
	"errors"
	"fmt"
	"github.com/xcept/xcept/internal/versions"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/xcept/xcept/internal/graph"
)

// Config is everything a Server needs.
type Config struct {
	Dir   string // the model directory: DIR/<version>/saved_model.pb
	Name  string // the model name in URLs
	Batch BatchConfig
	// Timeout bounds one request, from its arrival to its answer (504 after).
	Timeout time.Duration
	// MaxBodyBytes bounds a request body (413 above).
	MaxBodyBytes int64
	Limits       Limits
	// Poll is how often Dir is checked for a new version; 0 never.
	Poll time.Duration
	// Log receives load, reload and unload events (nil: discarded);
	// AccessLog, when set, one line per request.
	Log       io.Writer
	AccessLog io.Writer
	// Complete decides which version folders are complete versions (nil:
	// versions.Complete, SavedModels only; onnxruntime's loader takes
	// versions.CompleteAny, ONNX exports too).
	Complete func(dir string) (string, bool)
}

// Server is a loaded model and its HTTP API.
type Server struct {
	cfg     Config
	mgr     *manager
	met     *metrics
	handler http.Handler
	logMu   sync.Mutex

	watchStop context.CancelFunc
	watchDone chan struct{}
}

// New loads the newest version of cfg.Dir; a model that does not load is
// an error here, before anything listens.
func New(cfg Config, load Loader) (*Server, error) {
	if cfg.Limits.Decode == nil && cfg.Batch.MaxBatchPixels > 0 {
		cfg.Limits.Decode = NewBudget(cfg.Batch.MaxBatchPixels)
	}
	s := &Server{cfg: cfg, met: newMetrics(cfg.Name)}
	complete := cfg.Complete
	if complete == nil {
		complete = versions.Complete
	}
	s.mgr = &manager{dir: cfg.Dir, load: load, complete: complete, batch: cfg.Batch, met: s.met, logf: s.logf,
		states: map[int64]VersionState{}, failed: map[int64]string{}}
	if err := s.mgr.poll(); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", s.instrument(apiHealth, s.health))
	mux.HandleFunc("/metrics", s.serveMetrics)
	mux.HandleFunc("/", s.api)
	s.handler = mux
	return s, nil
}

func (s *Server) logf(format string, args ...any) {
	if s.cfg.Log == nil {
		return
	}
	s.logMu.Lock()
	defer s.logMu.Unlock()
	fmt.Fprintf(s.cfg.Log, "%s serve: %s\n", time.Now().Format("2006-01-02 15:04:05"), fmt.Sprintf(format, args...))
}

// Handler is the HTTP API.
func (s *Server) Handler() http.Handler { return s.handler }

// Version is the version being served.
func (s *Server) Version() int64 {
	cur := s.mgr.acquire()
	if cur == nil {
		return -1
	}
	defer cur.release()
	return cur.version
}

// Poll checks the model directory for a new version now.
func (s *Server) Poll() error { return s.mgr.poll() }

// Watch polls the model directory every cfg.Poll until Close.
func (s *Server) Watch() {
	if s.cfg.Poll <= 0 || s.watchStop != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.watchStop, s.watchDone = cancel, make(chan struct{})
	go func() {
		defer close(s.watchDone)
		s.mgr.watch(ctx, s.cfg.Poll)
	}()
}

// Close stops watching and unloads the model once its requests finish.
func (s *Server) Close() {
	if s.watchStop != nil {
		s.watchStop()
		<-s.watchDone
	}
	s.mgr.close()
}

// Serve answers on ln until ctx is done, then shuts down gracefully: it
// stops accepting, lets requests in flight finish (for at most grace), and
// unloads the model. A clean shutdown returns nil.
func (s *Server) Serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		// The body must arrive within the request timeout too: a client
		// trickling bytes must not hold a connection forever.
		ReadTimeout: s.cfg.Timeout + 10*time.Second,
		IdleTimeout: 2 * time.Minute,
	}
	s.Watch()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), grace)
		err = hs.Shutdown(sctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("requests still running after %v; stopped them", grace)
			hs.Close()
		}
		if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = serr
		}
	}
	s.Close()
	return err
}

// TF Serving's URL patterns (model_servers/http_rest_api_util.cc):
// case-insensitive, a version number or a version label.
var (
	predictPath = regexp.MustCompile(`(?i)^/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)$`)
	statusPath  = regexp.MustCompile(`(?i)^/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?$`)
)

// api routes /v1/ requests as TF Serving does; other paths are not found.
func (s *Server) api(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if !strings.HasPrefix(strings.ToLower(path), "/v1/") && !strings.EqualFold(path, "/v1") {
		s.instrument(apiOther, func(w http.ResponseWriter, r *http.Request) error {
			return notFoundf("no such path %s: the API is under /v1/models/%s (TF Serving's REST API), plus /healthz and /metrics", path, s.cfg.Name)
		})(w, r)
		return
	}
	if r.Method == http.MethodPost {
		if m := predictPath.FindStringSubmatch(path); m != nil {
			s.instrument(apiPredict, func(w http.ResponseWriter, r *http.Request) error {
				return s.predict(w, r, m[1], m[2], m[3], strings.ToLower(m[4]))
			})(w, r)
			return
		}
	}
	if r.Method == http.MethodGet {
		if m := statusPath.FindStringSubmatch(path); m != nil {
			api := apiStatus
			if m[4] != "" {
				api = apiMetadata
			}
			s.instrument(api, func(w http.ResponseWriter, r *http.Request) error {
				return s.status(w, m[1], m[2], m[3], m[4] != "")
			})(w, r)
			return
		}
	}
	s.instrument(apiOther, func(w http.ResponseWriter, r *http.Request) error {
		return invalidf("Malformed request: %s %s", r.Method, path)
	})(w, r)
}

// handlerFunc answers a request, or returns the error to answer with.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// instrument turns errors into {"error": ...} responses, counts and times
// requests, and keeps a panic from taking the server down.
func (s *Server) instrument(api string, h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		s.met.inFlight.Add(1)
		defer s.met.inFlight.Add(-1)
		rw := &recorder{ResponseWriter: w}
		err := func() (err error) {
			defer func() {
				if p := recover(); p != nil {
					err = errorf(graph.CodeInternal, "internal error: %v", p)
				}
			}()
			return h(rw, r)
		}()
		errCode := ""
		if err != nil {
			e := asError(err)
			errCode = statusName(e.Code)
			if !rw.wrote {
				writeError(rw, e)
			}
		}
		s.met.request(api, rw.status(), time.Since(start), errCode)
		if s.cfg.AccessLog != nil {
			s.logMu.Lock()
			fmt.Fprintf(s.cfg.AccessLog, "%s %s %s %d %.1fms\n", r.RemoteAddr, r.Method, r.URL.Path, rw.status(), float64(time.Since(start).Microseconds())/1000)
			s.logMu.Unlock()
		}
	}
}

type recorder struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (r *recorder) WriteHeader(code int) {
	r.code, r.wrote = code, true
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wrote {
		r.WriteHeader(http.StatusOK)
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}

func writeError(w http.ResponseWriter, e *Error) {
	body := appendString([]byte(`{ "error": `), oneLine(e.Message))
	body = append(body, " }\n"...)
	writeJSON(w, e.HTTPStatus(), body)
}

func writeJSON(w http.ResponseWriter, code int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	w.Write(body)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// servableFor resolves the model name and the version (or label) of a URL
// to the version being served, with TF Serving's errors.
func (s *Server) servableFor(name, version, label string) (*servable, error) {
	if label != "" {
		return nil, invalidf("Unrecognized servable version label: %s (xcept serve has no version labels; use /versions/N or no version)", label)
	}
	var want int64 = -1
	if version != "" {
		v, err := strconv.ParseInt(version, 10, 64)
		if err != nil {
			return nil, invalidf("Failed to convert version: %s to numeric.", version)
		}
		want = v
	}
	if name != s.cfg.Name {
		if want >= 0 {
			return nil, notFoundf("Servable not found for request: Specific(%s, %d) (this server has model %q)", name, want, s.cfg.Name)
		}
		return nil, notFoundf("Servable not found for request: Latest(%s) (this server has model %q)", name, s.cfg.Name)
	}
	cur := s.mgr.acquire()
	if cur == nil {
		return nil, errorf(graph.CodeUnavailable, "model %s is not loaded", name)
	}
	if want >= 0 && want != cur.version {
		cur.release()
		return nil, notFoundf("Servable not found for request: Specific(%s, %d) (version %d is being served)", name, want, cur.version)
	}
	return cur, nil
}

// status answers GET /v1/models/NAME[/versions/V][/metadata].
func (s *Server) status(w http.ResponseWriter, name, version, label string, meta bool) error {
	if name == "" {
		return invalidf("Missing model name in request.")
	}
	if meta {
		cur, err := s.servableFor(name, version, label)
		if err != nil {
			return err
		}
		defer cur.release()
		body, err := metadata(s.cfg.Name, cur.version, cur.model.Signatures())
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, body)
		return nil
	}
	if label != "" {
		return invalidf("Unrecognized servable version label: %s (xcept serve has no version labels)", label)
	}
	if name != s.cfg.Name {
		return notFoundf("Could not find any versions of model %s (this server has model %q)", name, s.cfg.Name)
	}
	var want int64 = -1
	if version != "" {
		v, err := strconv.ParseInt(version, 10, 64)
		if err != nil {
			return invalidf("Failed to convert version: %s to numeric.", version)
		}
		want = v
	}
	var out statusJSON
	for _, st := range s.mgr.statuses() {
		if want < 0 || st.Version == want {
			out.Versions = append(out.Versions, versionStatus(st))
		}
	}
	if len(out.Versions) == 0 {
		if version != "" {
			return notFoundf("Could not find version %s of model %s", version, name)
		}
		return notFoundf("Could not find any versions of model %s", name)
	}
	body, err := marshal(out)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

// predict answers POST /v1/models/NAME[/versions/V]:predict.
func (s *Server) predict(w http.ResponseWriter, r *http.Request, name, version, label, method string) error {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	cur, err := s.servableFor(name, version, label)
	if err != nil {
		return err
	}
	defer cur.release()
	if method != "predict" {
		return invalidf("%s needs a %s signature on tf.Example input, which xcept models do not have: use :predict", method, method)
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	req, err := ParsePredict(ctx, body, cur.model.Signatures(), s.cfg.Limits)
	if err != nil {
		return s.contextError(ctx, err)
	}
	out, err := cur.runner.Predict(ctx, req.Signature, req.Inputs, req.RowPixels)
	if err != nil {
		return s.contextError(ctx, err)
	}
	resp, err := AppendPredictions(make([]byte, 0, 256), out, req.Format)
	if err != nil {
		return err
	}
	w.Header().Set("X-Xcept-Model-Version", strconv.FormatInt(cur.version, 10))
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// readBody reads the whole body within the size limit.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return nil, tooLarge(r.ContentLength, s.cfg.MaxBodyBytes)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, tooLarge(-1, s.cfg.MaxBodyBytes)
	case err != nil:
		return nil, invalidf("reading the request body: %v", err)
	}
	return body, nil
}

func tooLarge(n, limit int64) *Error {
	size := "more"
	if n >= 0 {
		size = fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return &Error{Code: graph.CodeResourceExhausted, Status: http.StatusRequestEntityTooLarge,
		Message: fmt.Sprintf("the request body is %s, over the limit of %.1f MB (serve.max_body_mb): send fewer or smaller images per request", size, float64(limit)/1e6)}
}

// contextError turns a request that ran out of time, or whose client hung
// up, into TF Serving's codes.
func (s *Server) contextError(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return errorf(graph.CodeDeadlineExceeded, "no answer within the request timeout of %v (serve.timeout)", s.cfg.Timeout)
	case errors.Is(err, context.Canceled):
		return errorf(graph.CodeCancelled, "the client closed the request")
	}
	return err
}

// health is /healthz: 200 while a version is served.
func (s *Server) health(w http.ResponseWriter, r *http.Request) error {
	cur := s.mgr.acquire()
	if cur == nil {
		return errorf(graph.CodeUnavailable, "no model version is loaded")
	}
	defer cur.release()
	writeJSON(w, http.StatusOK, fmt.Appendf(nil, "{\"status\": \"ok\", \"model\": %s, \"version\": \"%d\"}\n", appendString(nil, s.cfg.Name), cur.version))
	return nil
}

// serveMetrics is /metrics, outside instrument so that scraping is not
// counted in the request latency of the API.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	s.met.write(w)
}
