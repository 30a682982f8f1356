package infer

import (
	"github.com/xcept/xcept/internal/calibrate"
	"github.com/xcept/xcept/internal/export"
	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/run"
)

// RunRejection is the "unknown" threshold of a run's best checkpoint (nil
// when its model holds no temperature or no fit chose one).
func RunRejection(r *run.Run, info *model.Info) *calibrate.Rejection {
	if r.Info.Calibration == nil || !info.Calibratable() {
		return nil
	}
	return r.Info.Calibration.Reject
}

// Rejection is the "unknown" threshold that goes with the opened model:
// run.json's for --run, the export manifest's for --model. A model without
// one is a model error naming where it was looked for and what to do.
func (s *Serving) Rejection() (*calibrate.Rejection, error) {
	if s.rejectErr != nil {
		return nil, s.rejectErr
	}
	if s.reject == nil {
		return nil, fault.New(fault.NotAModel, "%s %s has no \"unknown\" threshold: %s", s.rejectWhat, s.rejectFrom, s.rejectFix)
	}
	return s.reject, nil
}

// setRunRejection records the run's threshold.
func (s *Serving) setRunRejection(r *run.Run, info *model.Info) {
	s.reject = RunRejection(r, info)
	s.rejectWhat, s.rejectFrom = "run", r.Dir
	s.rejectFix = "train or finetune it again with a model that holds a temperature (prepare rebuilds the model)"
}

// setExportRejection records the threshold of an export's manifest.
func (s *Serving) setExportRejection(dir, versionDir string) {
	c, err := export.ReadCalibration(versionDir)
	if err != nil {
		s.rejectErr = fault.About(fault.ToolFailed, fault.ModelFolder, dir, "%v", err)
		return
	}
	if c != nil {
		s.reject = c.Reject
	}
	s.rejectWhat, s.rejectFrom = fault.Option("model"), versionDir
	s.rejectFix = "its " + export.SavedModelManifest + " records none (exported before thresholds, or not by xcept): export the run again"
}
