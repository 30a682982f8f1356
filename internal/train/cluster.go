package train

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/xcept/xcept/internal/cluster"
	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/dataset"
	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/filecopy"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/run"
	"github.com/xcept/xcept/internal/track"
)

// Worker is a Job's part in a data-parallel cluster (Job.Cluster; nil: one
// process). Every worker trains the same run in lockstep through the
// trainer's dp_* signatures, each on its shard of every global batch (see
// model.Group). The chief (task 0) trains the run folder as one process
// would; every other worker reads it (on --resume and for finetune) but
// writes nothing into it: it trains a copy in a scratch folder of its own,
// removed when it ends.
type Worker struct {
	Spec *cluster.Spec
	// Lost is called (from the watchdog's goroutine) when a peer cannot be
	// reached while this worker trains: the command layer prints one line
	// and exits, since a collective waiting for a dead peer cannot be
	// cancelled. Nil: no watchdog (a dead peer is then noticed when the
	// session's operation timeout passes).
	Lost func(err error)
	// WatchEvery is how often the watchdog dials the peers (default 2 s);
	// three misses in a row lose a peer.
	WatchEvery time.Duration
	// chiefRun is the chief's run folder, for a worker that trains a
	// scratch copy (set by follow).
	chiefRun string
}

const watchMisses = 3

// follow runs a non-chief worker: the same job on a scratch copy of the run.
func (j *Job) follow(runJob func(*Job) (*Result, error)) (*Result, error) {
	removeDeadScratch()
	scratch, err := os.MkdirTemp("", fmt.Sprintf("%s%d-p%d-", scratchPrefix, j.Cluster.Spec.Task, os.Getpid()))
	if err != nil {
		return nil, fault.New(fault.CannotWrite, "cannot make worker %d's scratch folder: %v", j.Cluster.Spec.Task, err)
	}
	defer os.RemoveAll(scratch)
	mine := *j
	mine.RunDir = filepath.Join(scratch, "run")
	mine.Track = track.Settings{} // the chief's run is the one tracked
	w := *j.Cluster
	w.chiefRun = j.RunDir
	mine.Cluster = &w
	// A new frozen phase starts from nothing (the chief may be creating the
	// run folder right now); resuming and fine-tuning start from the chief's.
	if (j.Resume || j.Cfg.Phase == PhaseFinetune) && run.Exists(j.RunDir) {
		if err := copyRun(j.RunDir, mine.RunDir); err != nil {
			return nil, fault.New(fault.BadData, "worker %d: reading run %s: %v", j.Cluster.Spec.Task, j.RunDir, err)
		}
	}
	res, err := runJob(&mine)
	if res != nil {
		res.Run, res.Checkpoint = j.RunDir, "" // the chief's; this worker's copy is gone
	}
	return res, err
}

const scratchPrefix = "xcept-worker"

// removeDeadScratch removes the scratch folders of workers that were killed
// (their process is gone), as a checkpoint's temporary folders are.
func removeDeadScratch() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), scratchPrefix+"*-p*-*"))
	for _, d := range dirs {
		var task, pid int
		if _, err := fmt.Sscanf(filepath.Base(d), scratchPrefix+"%d-p%d-", &task, &pid); err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(d)
		}
	}
}

// copyRun copies what a worker resumes or fine-tunes from: run.json and the
// complete checkpoints (hard links where it can: checkpoint files are only
// ever replaced, never changed in place).
func copyRun(src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	if err := filecopy.LinkOrFile(filepath.Join(src, run.InfoFile), filepath.Join(dst, run.InfoFile)); err != nil {
		return err
	}
	for _, name := range []string{run.Best, run.Last} {
		from := filepath.Join(src, "checkpoints", name)
		if _, err := os.Stat(filepath.Join(from, run.StateFile)); err != nil {
			continue // not there, or not complete
		}
		to := filepath.Join(dst, "checkpoints", name)
		if err := os.MkdirAll(to, 0o755); err != nil {
			return err
		}
		entries, err := os.ReadDir(from)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := filecopy.LinkOrFile(filepath.Join(from, e.Name()), filepath.Join(to, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// join makes m one task of the cluster and checks, by a collective, that
// every worker is about to train the same thing: the configuration, the
// dataset, the model's weights, the phase's start and the restored
// checkpoint. It returns the watchdog to stop before the last collective.
func (j *Job) join(m *model.Model, r *run.Run, st *start) (*cluster.Watchdog, error) {
	w := j.Cluster
	if !m.SupportsGroups() {
		return nil, fault.New(fault.NotAModel, "model %s has no data-parallel signatures (dp_check): rebuild it with this xcept (xcept build-model) to train in a cluster", m.Dir)
	}
	m.Group = &model.Group{Size: w.Spec.Size(), Task: w.Spec.Task, Name: w.Spec.Name}
	digest, err := j.digest(m, r, st)
	if err != nil {
		return nil, err
	}
	j.Out.Notef("%s of %d: waiting for every worker", w.Spec.Name(w.Spec.Task), w.Spec.Size())
	if err := m.Check(digest); err != nil {
		return nil, err
	}
	if w.Lost == nil {
		return nil, nil
	}
	every := w.WatchEvery
	if every <= 0 {
		every = 2 * time.Second
	}
	return w.Spec.Watch(every, watchMisses, func(task int, err error) {
		w.Lost(lostError(w.Spec, task, err))
	}), nil
}

// lostError is the watchdog's finding as a fault.PeerLost (exit 7).
func lostError(s *cluster.Spec, task int, err error) error {
	return fault.New(fault.PeerLost, "%s of the cluster: %s cannot be reached (%v); the last complete checkpoint is kept: restart every worker with %s",
		s.Name(s.Task), s.Name(task), fault.Bare(err), optResume)
}

// digest is what join compares across the workers.
func (j *Job) digest(m *model.Model, r *run.Run, st *start) ([sha256.Size]byte, error) {
	h := sha256.New()
	cfg := j.Cfg
	cfg.Workers = 0 // loader threads: each machine its own
	js, _ := json.Marshal(struct {
		Cfg                     Config
		Precision, UnfreezeFrom string
		Phase                   string
		Epoch, PhaseEpoch, Step int
		LearningRate            float64
		Restore                 string
		FeatureBlocks           []string
	}{cfg, j.Precision, j.UnfreezeFrom, st.state.Phase, st.state.Epoch, st.state.PhaseEpoch, st.state.Step,
		st.state.LearningRate, st.restore, r.Info.FeatureBlocks})
	h.Write(js)
	files := []string{
		filepath.Join(r.Info.Dataset, dataset.ManifestFile),
		filepath.Join(m.Dir, model.InfoFile),
		filepath.Join(m.Session.Dir, contract.VariablesIndex),
	}
	if st.restore != "" {
		files = append(files, r.CheckpointPrefix(st.restore)+".index")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return [sha256.Size]byte{}, err
		}
		h.Write(data)
	}
	var d [sha256.Size]byte
	copy(d[:], h.Sum(nil))
	return d, nil
}
