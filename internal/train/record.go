package train

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/tbevents"
	"github.com/xcept/xcept/internal/track"
)

// HistoryColumns are the columns of history.csv, after epoch and phase.
var HistoryColumns = []string{"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds", "images_per_second"}

// History appends one row per epoch to history.csv. On TrainBegin it
// repairs the file against the State: rows of epochs the checkpoint does not
// know are dropped (a kill after the row, before the checkpoint cannot happen
// since the checkpoint is written first, but a copied run folder can hold
// them), and the last finished epoch's row is re-added if a kill came between
// the checkpoint and the row.
type History struct {
	NoOp
	Path string
}

func (h *History) TrainBegin(s *State) error {
	rows, err := readHistory(h.Path)
	if err != nil {
		return err
	}
	if len(rows) > s.Epoch {
		rows = rows[:s.Epoch]
	}
	if len(rows) == s.Epoch-1 && s.LastLogs != nil {
		rows = append(rows, historyRow(s.Epoch, s.Phase, s.LastLogs))
		s.replayed = true
	}
	return writeHistory(h.Path, rows)
}

func (h *History) EpochEnd(s *State, logs Logs) error {
	f, err := os.OpenFile(h.Path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write(historyRow(s.Epoch, s.Phase, logs))
	w.Flush()
	err = w.Error()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func historyRow(epoch int, phase string, logs Logs) []string {
	row := []string{strconv.Itoa(epoch), phase}
	for _, c := range HistoryColumns {
		row = append(row, strconv.FormatFloat(logs[c], 'g', -1, 64))
	}
	return row
}

// readHistory returns the data rows of history.csv (none if it is missing).
func readHistory(path string) ([][]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rows, err := csv.NewReader(bufio.NewReader(f)).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(rows) > 0 {
		rows = rows[1:]
	}
	return rows, nil
}

func writeHistory(path string, rows [][]string) error {
	var b strings.Builder
	w := csv.NewWriter(&b)
	w.Write(append([]string{"epoch", "phase"}, HistoryColumns...))
	w.WriteAll(rows)
	if err := w.Error(); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// Tracking mirrors the run folder into MLflow when training starts and
// after every epoch, in the background (History has written the epoch's row
// by then: it comes first in the list).
type Tracking struct {
	NoOp
	Live *track.Live
}

func (t *Tracking) TrainBegin(*State) error     { t.Live.Kick(); return nil }
func (t *Tracking) EpochEnd(*State, Logs) error { t.Live.Kick(); return nil }
func (t *Tracking) Interrupted(*State) error    { t.Live.Kick(); return nil }

// TensorBoard writes each epoch's logs as scalars (step = epoch) to an
// event file in Dir, flushed so that a running TensorBoard shows them.
type TensorBoard struct {
	NoOp
	Dir string
	w   *tbevents.Writer
}

func (t *TensorBoard) TrainBegin(s *State) error {
	w, err := tbevents.NewWriter(t.Dir)
	if err != nil {
		return err
	}
	t.w = w
	if s.replayed {
		return t.EpochEnd(s, s.LastLogs)
	}
	return nil
}

func (t *TensorBoard) EpochEnd(s *State, logs Logs) error {
	vals := map[string]float64{}
	for _, c := range HistoryColumns {
		if v, ok := logs[c]; ok && !math.IsNaN(v) {
			vals[c] = v
		}
	}
	if err := t.w.AddScalars(int64(s.Epoch), vals); err != nil {
		return err
	}
	return t.w.Flush()
}

func (t *TensorBoard) Interrupted(*State) error { return t.w.Flush() }
func (t *TensorBoard) TrainEnd(*State) error    { return t.w.Close() }

// Progress shows a live bar per epoch on a terminal (loss, accuracy,
// images/s), a summary line per epoch on stderr, and with JSON one JSON
// object per epoch on stdout.
type Progress struct {
	NoOp
	Out    cli.Output // the bar when Out.Bar(); the summary unless Quiet; the JSON line with JSON
	Epochs int        // of this phase, for "epoch 3/50"

	bar   *progressbar.ProgressBar
	start time.Time
}

func (p *Progress) BatchEnd(s *State, step, steps int, sums Sums) error {
	if !p.Out.Bar() {
		return nil
	}
	if p.bar == nil {
		p.start = time.Now()
		p.bar = progressbar.NewOptions(steps,
			progressbar.OptionSetWriter(p.Out.Stderr),
			progressbar.OptionSetDescription(fmt.Sprintf("epoch %d/%d", s.PhaseEpoch+1, p.Epochs)),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(24),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish())
	}
	loss, acc := sums.mean()
	ips := float64(sums.Images) / math.Max(time.Since(p.start).Seconds(), 1e-9)
	p.bar.Describe(fmt.Sprintf("epoch %d/%d loss %.4f acc %.3f %.0f img/s", s.PhaseEpoch+1, p.Epochs, loss, acc, ips))
	return p.bar.Set(step)
}

func (p *Progress) endBar() {
	if p.bar != nil {
		p.bar.Finish()
		p.bar = nil
	}
}

func (p *Progress) EpochEnd(s *State, logs Logs) error {
	p.endBar()
	if p.Out.JSON {
		line := map[string]any{"epoch": s.Epoch, "phase": s.Phase, "phase_epoch": s.PhaseEpoch}
		for k, v := range logs {
			if !math.IsNaN(v) {
				line[k] = v
			}
		}
		if err := p.Out.Line(line); err != nil {
			return err
		}
	}
	if !p.Out.Quiet {
		fmt.Fprintf(p.Out.Stderr, "epoch %d/%d (%s) loss %.4f accuracy %.4f val_loss %.4f val_accuracy %.4f lr %.3g %.1fs %.1f img/s\n",
			s.PhaseEpoch, p.Epochs, s.Phase, logs["loss"], logs["accuracy"], logs["val_loss"], logs["val_accuracy"],
			logs["learning_rate"], logs["seconds"], logs["images_per_second"])
	}
	return nil
}

func (p *Progress) Interrupted(*State) error { p.endBar(); return nil }
