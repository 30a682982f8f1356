package cli

import (
	"fmt"

	"github.com/xcept/xcept/internal/fault"
)

// AsWriteFailure is the command layer's safety net: an error not classified
// as a data error that is a full disk, exceeded quota or read-only file
// system (which only a write can cause) becomes a KindData error, its
// message (which names the path) kept. Other errors are returned as they are.
func AsWriteFailure(err error) error {
	if k := KindOf(err); k == KindData || k == KindUsage || k == KindInterrupted || k == KindBusy {
		return err
	}
	reason, advice, ok := fault.WriteReason(err, false)
	if !ok {
		return err
	}
	return &Error{Kind: KindData, Err: fmt.Errorf("cannot write (%s: %s): %w", reason, advice, err)}
}
