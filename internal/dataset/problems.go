package dataset

import (
	"cmp"
	"slices"

	"github.com/xcept/xcept/internal/imageio"
)

// Problem is one entry of problems.json: something about an input file or
// folder that a person should know, and what prepare did about it.
type Problem struct {
	Path   string `json:"path"`   // relative to the data folder, '/'-separated, escaped if odd
	Reason string `json:"reason"` // stable machine-readable code, one of the Reason constants
	Detail string `json:"detail"` // one line for people
	Action string `json:"action"` // one of the Action constants
}

// Actions: what prepare did with the file.
const (
	ActionSkipped  = "skipped"  // not in the dataset
	ActionKept     = "kept"     // in the dataset as it is
	ActionFixed    = "fixed"    // in the dataset after a repair
	ActionExcluded = "excluded" // usable, but left out on purpose (label conflict, empty class)
)

// Reasons, stable codes that scripts match on: never rename one. The image
// decoding reasons come from imageio.
const (
	ReasonEmptyFile        = imageio.ReasonEmpty        // skipped
	ReasonNotImage         = imageio.ReasonNotImage     // skipped
	ReasonUnsupported      = imageio.ReasonUnsupported  // skipped
	ReasonTruncated        = imageio.ReasonTruncated    // skipped
	ReasonCorrupt          = imageio.ReasonCorrupt      // skipped
	ReasonTooLarge         = imageio.ReasonTooLarge     // skipped: pixels or bytes over the limit
	ReasonTooSmall         = "too-small"                // skipped: a side under prepare.min_side
	ReasonExtension        = "extension-mismatch"       // kept: the name promises another format
	ReasonCMYK             = "cmyk-jpeg"                // fixed: converted to RGB
	ReasonAnimated         = "animated"                 // fixed: first frame kept
	ReasonDupInClass       = "duplicate-in-class"       // skipped: an identical file is kept
	ReasonDupAcrossClasses = "duplicate-across-classes" // excluded: one picture, two labels
	ReasonDupAcrossSplits  = "duplicate-across-splits"  // skipped: the copy in the earlier split is kept
	ReasonSymlinkLoop      = "symlink-loop"             // skipped: the link leads back to a scanned folder
	ReasonBrokenSymlink    = "broken-symlink"           // skipped
	ReasonLinkOutside      = "symlink-outside-data"     // skipped: the link leads out of --data (not followed)
	ReasonHiddenFolder     = "hidden-folder"            // skipped: a folder whose name starts with a dot
	ReasonUnreadable       = "unreadable"               // skipped: permission or I/O error
	ReasonNotRegular       = "not-a-regular-file"       // skipped: FIFO, socket or device
	ReasonOddName          = "odd-file-name"            // kept: reported with escapes
	ReasonOutsideClass     = "not-in-class-folder"      // skipped: a file beside the class folders
	ReasonEmptyClass       = "empty-class"              // excluded: a class folder with no usable image
	ReasonClassTooSmall    = "class-too-small"          // kept: a drawn split left a class without images
	ReasonClassSplitEmpty  = "class-split-empty"        // kept: a split folder lacks the class
)

// sortProblems orders problems by path, then reason, so that the report is
// the same whatever order the workers finished in.
func sortProblems(ps []Problem) {
	slices.SortFunc(ps, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.Reason, b.Reason), cmp.Compare(a.Detail, b.Detail))
	})
}
