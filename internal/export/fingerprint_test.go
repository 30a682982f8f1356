package export

import (
	"os"
	"path/filepath"
	"testing"

	farm "github.com/dgryski/go-farm"
	"google.golang.org/protobuf/encoding/protowire"
)

// fingerprintFields decodes a FingerprintDef's varint and string fields.
func fingerprintFields(t *testing.T, b []byte) (map[protowire.Number]uint64, map[protowire.Number][]byte) {
	t.Helper()
	nums, strs := map[protowire.Number]uint64{}, map[protowire.Number][]byte{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		b = b[n:]
		switch typ {
		case protowire.VarintType:
			v, m := protowire.ConsumeVarint(b)
			nums[num], b = v, b[m:]
		case protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			strs[num], b = v, b[m:]
		default:
			t.Fatalf("unexpected wire type %v", typ)
		}
	}
	return nums, strs
}

func TestRewriteFingerprint(t *testing.T) {
	var old []byte
	for num, v := range []uint64{0, 11, 22, 33, 44, 55} {
		if num == 0 {
			continue
		}
		old = protowire.AppendTag(old, protowire.Number(num), protowire.VarintType)
		old = protowire.AppendVarint(old, v)
	}
	version := []byte{0x08, 0x04} // VersionDef{producer: 4}
	old = protowire.AppendTag(old, 6, protowire.BytesType)
	old = protowire.AppendBytes(old, version)
	old = protowire.AppendTag(old, fpUUID, protowire.BytesType)
	old = protowire.AppendString(old, "1234")

	got, err := rewriteFingerprint(old, 999, "5678")
	if err != nil {
		t.Fatal(err)
	}
	nums, strs := fingerprintFields(t, got)
	want := map[protowire.Number]uint64{1: 11, 2: 22, 3: 33, 4: 44, fpCheckpointHash: 999}
	for k, v := range want {
		if nums[k] != v {
			t.Errorf("field %d = %d, want %d", k, nums[k], v)
		}
	}
	if string(strs[6]) != string(version) || string(strs[fpUUID]) != "5678" {
		t.Errorf("version %v, uuid %q", strs[6], strs[fpUUID])
	}
	if _, err := rewriteFingerprint([]byte{0xff}, 1, "x"); err == nil {
		t.Error("garbage was accepted as a FingerprintDef")
	}
}

func TestRefreshFingerprint(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "variables"), 0o755)
	index := []byte("pretend checkpoint index")
	os.WriteFile(filepath.Join(dir, "variables", "variables.index"), index, 0o644)
	if err := refreshFingerprint(dir); err != nil {
		t.Fatalf("no fingerprint.pb must be fine (TensorFlow before 2.12): %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, FingerprintFile)); err == nil {
		t.Fatal("a fingerprint was made up")
	}
	old := protowire.AppendVarint(protowire.AppendTag(nil, fpCheckpointHash, protowire.VarintType), 1)
	os.WriteFile(filepath.Join(dir, FingerprintFile), old, 0o644)
	if err := refreshFingerprint(dir); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, FingerprintFile))
	nums, strs := fingerprintFields(t, data)
	if nums[fpCheckpointHash] != farm.Fingerprint64(index) {
		t.Errorf("checkpoint_hash %d, want Fingerprint64 of the index %d", nums[fpCheckpointHash], farm.Fingerprint64(index))
	}
	uuid := string(strs[fpUUID])
	if len(uuid) < 30 || len(uuid) > 39 {
		t.Errorf("uuid %q is not a 128-bit decimal number", uuid)
	}
	refreshFingerprint(dir)
	data, _ = os.ReadFile(filepath.Join(dir, FingerprintFile))
	if _, strs2 := fingerprintFields(t, data); string(strs2[fpUUID]) == uuid {
		t.Error("two refreshes gave the same uuid")
	}
}
