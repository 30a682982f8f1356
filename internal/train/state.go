package train

import "math"

// Logs are one epoch's metrics by name: loss, accuracy, val_loss,
// val_accuracy, learning_rate, seconds, images_per_second.
type Logs map[string]float64

// Monitored is the best value a callback has seen and how long ago.
type Monitored struct {
	Seen bool    `json:"seen"`
	Best float64 `json:"best"`
	Wait int     `json:"wait"` // epochs since the last improvement
}

// State is everything a resumed run needs to continue exactly where it
// stopped. It is saved with every checkpoint (state.json). Randomness is
// derived from (seed, epoch, step), so no generator state needs saving.
type State struct {
	Phase      string `json:"phase"`
	Epoch      int    `json:"epoch"`       // epochs completed over every phase: rows of history.csv
	PhaseEpoch int    `json:"phase_epoch"` // epochs completed in this phase
	// Step > 0: the checkpoint was taken mid-epoch (Ctrl-C); Partial holds
	// that epoch's running sums.
	Step         int       `json:"step"`
	Partial      Sums      `json:"partial"`
	LearningRate float64   `json:"learning_rate"`
	Best         Monitored `json:"best"` // checkpoint_monitor
	BestEpoch    int       `json:"best_epoch"`
	EarlyStop    Monitored `json:"early_stop"`
	Plateau      Monitored `json:"plateau"`
	Stopped      bool      `json:"stopped"`             // early stopping fired
	LastLogs     Logs      `json:"last_logs,omitempty"` // the last finished epoch's, to repair history after a kill

	replayed bool // TrainBegin re-recorded LastLogs (History tells TensorBoard)
}

// Sums accumulate an epoch's step results.
type Sums struct {
	Loss    float64 `json:"loss"`    // Σ loss × images
	Correct float64 `json:"correct"` // Σ accuracy × images
	Images  int     `json:"images"`
	Seconds float64 `json:"seconds"`
}

func (s *Sums) add(loss, acc float32, n int) {
	s.Loss += float64(loss) * float64(n)
	s.Correct += float64(acc) * float64(n)
	s.Images += n
}

func (s Sums) mean() (loss, acc float64) {
	if s.Images == 0 {
		return math.NaN(), math.NaN()
	}
	return s.Loss / float64(s.Images), s.Correct / float64(s.Images)
}

// improved reports whether v beats m.Best by more than minDelta.
func improved(monitor string, m Monitored, v, minDelta float64) bool {
	switch {
	case math.IsNaN(v):
		return false
	case !m.Seen:
		return true
	case higherIsBetter(monitor):
		return v > m.Best+minDelta
	}
	return v < m.Best-minDelta
}

// observe updates m with this epoch's value and reports whether it improved.
func (m *Monitored) observe(monitor string, v, minDelta float64) bool {
	if improved(monitor, *m, v, minDelta) {
		m.Seen, m.Best, m.Wait = true, v, 0
		return true
	}
	m.Wait++
	return false
}
