// Package run owns a run folder (runs/NAME): what it was trained from, and
// its checkpoints, written so that a crash or kill -9 never leaves a partial
// one behind.
//
//	runs/NAME/
//	  run.json                        dataset, model folder, classes
//	  config.yaml                     the resolved configuration
//	  checkpoints/{best,last}/        ckpt.index, ckpt.data-*, state.json
//	  history.csv, events.out.tfevents.*, report.*, predictions.csv, export/
package run

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/xcept/xcept/internal/atomicfile"
	"github.com/xcept/xcept/internal/calibrate"
	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/graph"
)

// File names inside a run folder.
const (
	InfoFile    = "run.json"
	ConfigFile  = "config.yaml"
	HistoryFile = "history.csv"
	StateFile   = "state.json"
	ckptDir     = "checkpoints"
	ckptPrefix  = "ckpt"
)

// Checkpoint names.
const (
	Best = "best"
	Last = "last"
)

const format = "xcept-run"

// Info is run.json.
type Info struct {
	Format    string   `json:"format"`
	Version   int      `json:"version"`
	Dataset   string   `json:"dataset"` // absolute path of the prepared dataset
	Model     string   `json:"model"`   // absolute path of the model folder the checkpoints belong to
	Classes   []string `json:"classes"`
	ImageSize int      `json:"image_size"`
	// Arch is the backbone the checkpoints hold (model.arch); "" for runs
	// made before architectures were recorded (Xception).
	Arch string `json:"arch,omitempty"`
	// Calibration is the temperature fitted on the validation split for the
	// best checkpoint (which holds it), nil before the first fit or for a
	// model built before temperatures.
	Calibration *calibrate.Fit `json:"calibration,omitempty"`
	// FeatureBlocks are the blocks the head reads, chosen on the validation
	// split among the model's feature_choices (nil: the model offers none,
	// or the run has not chosen yet). Every checkpoint holds the choice.
	FeatureBlocks []string `json:"feature_blocks,omitempty"`
}

// Fit describes the run's checkpoints for contract.CheckFit.
func (r *Run) Fit() contract.Fit {
	return contract.Fit{Name: "run " + r.Dir, Classes: r.Info.Classes, Arch: r.Info.Arch}
}

// Run is an open run folder.
type Run struct {
	Dir  string
	Info Info
}

// Create makes the run folder (and its parents) and writes run.json.
func Create(dir string, info Info) (*Run, error) {
	info.Format, info.Version = format, 1
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fault.About(fault.CannotWrite, fault.RunFolder, dir, "%v", err)
	}
	r := &Run{Dir: dir, Info: info}
	return r, r.SaveInfo()
}

// Open reads an existing run folder.
// A missing folder, one without run.json or with another program's is
// fault.NotARun, the same for every command.
func Open(dir string) (*Run, error) {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fault.About(fault.NotARun, fault.RunFolder, dir, "no such run folder (train one with `xcept train --run %s`)", dir)
	}
	data, err := os.ReadFile(filepath.Join(dir, InfoFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fault.About(fault.NotARun, fault.RunFolder, dir, "not an xcept run (no %s); train one with `xcept train --run %s`", InfoFile, dir)
	}
	if err != nil {
		return nil, fault.About(fault.NotARun, fault.RunFolder, dir, "%v", err)
	}
	r := &Run{Dir: dir}
	if err := json.Unmarshal(data, &r.Info); err != nil || r.Info.Format != format {
		return nil, fault.About(fault.NotARun, fault.RunFolder, dir, "%s is not an xcept run description", InfoFile)
	}
	if r.Info.Version != 1 {
		return nil, fault.About(fault.NotARun, fault.RunFolder, dir, "run version %d is not supported by this xcept", r.Info.Version)
	}
	return r, nil
}

// NeedCheckpoint is fault.NoCheckpoint unless the run has checkpoint name;
// doing says what it is needed for ("to export", "to fine-tune from").
func (r *Run) NeedCheckpoint(name, doing string) error {
	if r.HasCheckpoint(name) {
		return nil
	}
	return fault.About(fault.NoCheckpoint, fault.RunFolder, r.Dir, "has no %s checkpoint yet %s: train it first with `xcept train --run %s`", name, doing, r.Dir)
}

// RemoveStaleTemps deletes the temporary checkpoint folders of a process
// killed while saving (they never hold the only copy of anything). Only the
// process that trains the run may call it: another one's save in progress
// would look the same.
func (r *Run) RemoveStaleTemps() {
	stale, _ := filepath.Glob(filepath.Join(r.Dir, ckptDir, ".*.tmp-*"))
	for _, p := range stale {
		os.RemoveAll(p)
	}
}

// Exists reports whether dir holds a run.
func Exists(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, InfoFile))
	return err == nil
}

// SaveInfo rewrites run.json atomically.
func (r *Run) SaveInfo() error {
	return WriteJSON(filepath.Join(r.Dir, InfoFile), r.Info)
}

// Path joins name to the run folder.
func (r *Run) Path(name ...string) string {
	return filepath.Join(append([]string{r.Dir}, name...)...)
}

// CheckpointPrefix is the checkpoint prefix of name (best or last).
func (r *Run) CheckpointPrefix(name string) string {
	return filepath.Join(r.Dir, ckptDir, name, ckptPrefix)
}

// HasCheckpoint reports whether checkpoint name is complete on disk.
func (r *Run) HasCheckpoint(name string) bool {
	_, err := os.Stat(filepath.Join(r.Dir, ckptDir, name, StateFile))
	return err == nil
}

// Saver writes and reads every variable of a model to a checkpoint prefix;
// *graph.Session is one.
type Saver interface {
	Save(prefix string) error
	Restore(prefix string) error
}

var _ Saver = (*graph.Session)(nil)

// SaveCheckpoint writes every variable of s and state (JSON) as checkpoint
// name. It writes a temporary folder and swaps it in with renames, and
// state.json is written last, so a checkpoint folder without state.json is
// never used and a kill at any moment leaves the previous checkpoint whole.
func (r *Run) SaveCheckpoint(s Saver, name string, state any) error {
	if err := r.saveCheckpoint(s, name, state); err != nil {
		return fault.WriteFailed(filepath.Join(r.Dir, ckptDir), err)
	}
	return nil
}

func (r *Run) saveCheckpoint(s Saver, name string, state any) error {
	base := filepath.Join(r.Dir, ckptDir)
	if err := os.MkdirAll(base, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(base, "."+name+".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := s.Save(filepath.Join(tmp, ckptPrefix)); err != nil {
		return fmt.Errorf("saving checkpoint %s: %w", name, err)
	}
	if err := WriteJSON(filepath.Join(tmp, StateFile), state); err != nil {
		return err
	}
	if err := atomicfile.SyncDir(tmp); err != nil {
		return err
	}
	final := filepath.Join(base, name)
	old := filepath.Join(base, "."+name+".old")
	os.RemoveAll(old)
	if err := os.Rename(final, old); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		os.Rename(old, final) // put the previous one back
		return err
	}
	os.RemoveAll(old)
	return atomicfile.SyncDir(base)
}

// recover puts back a checkpoint whose swap was interrupted between the two
// renames of SaveCheckpoint.
func (r *Run) recover(name string) {
	base := filepath.Join(r.Dir, ckptDir)
	final, old := filepath.Join(base, name), filepath.Join(base, "."+name+".old")
	if _, err := os.Stat(final); errors.Is(err, os.ErrNotExist) {
		os.Rename(old, final)
	}
}

// LoadState reads the state.json of checkpoint name into state.
func (r *Run) LoadState(name string, state any) error {
	r.recover(name)
	data, err := os.ReadFile(filepath.Join(r.Dir, ckptDir, name, StateFile))
	if err != nil {
		return err
	}
	return json.Unmarshal(data, state)
}

// Restore loads checkpoint name into s.
func (r *Run) Restore(s Saver, name string) error {
	r.recover(name)
	if !r.HasCheckpoint(name) {
		return r.NeedCheckpoint(name, "to restore")
	}
	if err := s.Restore(r.CheckpointPrefix(name)); err != nil {
		return fault.New(fault.ToolFailed, "restoring %s: %v", r.CheckpointPrefix(name), err)
	}
	return nil
}

// WriteJSON writes v as indented JSON through a temporary file, synced and
// renamed into place.
func WriteJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return WriteFile(path, append(data, '\n'))
}

// WriteFile writes data to path atomically (atomicfile). A full disk,
// read-only folder or denied permission is a fault.CannotWrite error naming path.
func WriteFile(path string, data []byte) error {
	if err := atomicfile.WriteFile(path, data); err != nil {
		return fault.WriteFailed(path, err)
	}
	return nil
}
