package export

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"os"
	"path/filepath"

	farm "github.com/dgryski/go-farm"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/xcept/xcept/internal/contract"
)

// A SavedModel's fingerprint.pb (FingerprintDef, TF ≥ 2.12) identifies it
// in TensorFlow's and TF Serving's logs and telemetry. The export copies the
// serving model's graph unchanged but writes new variables, so two fields
// would go stale if the file were copied as is: checkpoint_hash, TensorFlow's
// Fingerprint64 (FarmHash) of variables/variables.index, and uuid, random
// per saved model. The graph hashes (fields 1-4) stay true and are kept.
const (
	fpCheckpointHash = 5
	fpUUID           = 7
)

// FingerprintFile is the SavedModel fingerprint's file name.
const FingerprintFile = "fingerprint.pb"

// refreshFingerprint rewrites dir/fingerprint.pb, if there is one, for the
// variables now in dir/variables.
func refreshFingerprint(dir string) error {
	path := filepath.Join(dir, FingerprintFile)
	old, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil // written by a TensorFlow without fingerprints: nothing to keep true
	}
	if err != nil {
		return err
	}
	index, err := os.ReadFile(filepath.Join(dir, contract.VariablesIndex))
	if err != nil {
		return err
	}
	uuid, err := randomUUID()
	if err != nil {
		return err
	}
	fresh, err := rewriteFingerprint(old, farm.Fingerprint64(index), uuid)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, fresh, 0o644)
}

// rewriteFingerprint replaces checkpoint_hash and uuid in a serialized
// FingerprintDef and keeps every other field as it was, in its order.
func rewriteFingerprint(b []byte, checkpointHash uint64, uuid string) ([]byte, error) {
	var out []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, fmt.Errorf("not a FingerprintDef: %w", protowire.ParseError(n))
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return nil, fmt.Errorf("not a FingerprintDef: %w", protowire.ParseError(m))
		}
		if num != fpCheckpointHash && num != fpUUID {
			out = append(out, b[:n+m]...)
		}
		b = b[n+m:]
	}
	out = protowire.AppendTag(out, fpCheckpointHash, protowire.VarintType)
	out = protowire.AppendVarint(out, checkpointHash)
	out = protowire.AppendTag(out, fpUUID, protowire.BytesType)
	return protowire.AppendString(out, uuid), nil
}

// randomUUID is a random 128-bit number in decimal, the form TensorFlow
// writes in FingerprintDef.uuid.
func randomUUID() (string, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return "", err
	}
	return n.String(), nil
}
