package trust_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/testmodel"
	"github.com/xcept/xcept/internal/trust"
)

// copyServing copies the tiny model's serving SavedModel (graph and mark;
// the variables are not read by Check).
func copyServing(t *testing.T) string {
	t.Helper()
	src := filepath.Join(testmodel.Tiny(t), model.ServingDir)
	dst := t.TempDir()
	for _, f := range []string{"saved_model.pb", trust.MarkFile} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func TestCheck(t *testing.T) {
	dir := copyServing(t)
	if err := trust.Check(dir); err != nil {
		t.Fatalf("xcept's own model refused: %v", err)
	}
	mark := filepath.Join(dir, trust.MarkFile)
	b, _ := os.ReadFile(mark)
	os.WriteFile(mark, []byte(regexp.MustCompile(`[0-9a-f]{64}`).ReplaceAllString(string(b), strings.Repeat("0", 64))), 0o644)
	wantRefusal(t, dir, "changed since xcept wrote it")
	os.WriteFile(mark, []byte("{"), 0o644)
	wantRefusal(t, dir, "is not readable")
	os.Remove(mark)
	wantRefusal(t, dir, "was not exported by xcept")

	hostile, _ := testmodel.FileWritingExport(t, "serve")
	wantRefusal(t, filepath.Join(hostile, "1"), "holds op WriteFile")
	trust.WriteMark(filepath.Join(hostile, "1")) // a forged mark does not help
	wantRefusal(t, filepath.Join(hostile, "1"), "holds op WriteFile")
}

func wantRefusal(t *testing.T, dir, want string) {
	t.Helper()
	err := trust.Check(dir)
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), trust.Flag) || strings.Contains(err.Error(), "\n") {
		t.Errorf("Check = %v, want one line saying %q and naming %s", err, want, trust.Flag)
	}
}

// An op measured only in the restore or save path is refused where
// signatures reach it.
func TestCheckUsesZones(t *testing.T) {
	allow := trust.Allowlist{"Const": trust.Serving, "RestoreV2": trust.Restore, "SaveV2": trust.Save}
	ok := []trust.Use{{Op: "Const", Zone: trust.Serving}, {Op: "RestoreV2", Zone: trust.Restore}, {Op: "RestoreV2", Zone: trust.Save}, {Op: "SaveV2", Zone: trust.Save}}
	if err := trust.CheckUses("m.pb", ok, allow); err != nil {
		t.Error(err)
	}
	for _, u := range []trust.Use{{Op: "RestoreV2", Zone: trust.Serving, Node: "r"}, {Op: "SaveV2", Zone: trust.Restore, Node: "s", Function: "f"}, {Op: "ReadFile", Zone: trust.Save}} {
		err := trust.CheckUses("m.pb", []trust.Use{u}, allow)
		if err == nil || !strings.Contains(err.Error(), "op "+u.Op) || !strings.Contains(err.Error(), "m.pb") {
			t.Errorf("%+v: %v, want a refusal naming the op and the file", u, err)
		}
	}
}

// The committed allowlist never lets a signature reach an op that touches
// files, processes, the network or Python, however it was measured; file
// ops are allowed only as the saver's checkpoint ops in their own paths.
func TestAllowlistHasNoDangerousOps(t *testing.T) {
	danger := regexp.MustCompile(`File|Reader|Writer|Save|Restore|Checkpoint|Py|Print|Dataset|Iterator|Socket|Rpc|Summary|Sharded|Regex`)
	checkpoint := map[string]trust.Zone{"RestoreV2": trust.Restore, "SaveV2": trust.Save, "MergeV2Checkpoints": trust.Save, "ShardedFilename": trust.Save, "StaticRegexFullMatch": trust.Save}
	for op, z := range trust.Builtin {
		if !danger.MatchString(op) {
			continue
		}
		if want, ok := checkpoint[op]; !ok || z != want {
			t.Errorf("allowlist.txt allows %s from the %s path on: file, process and Python ops must not be listed", op, z)
		}
	}
	for _, op := range []string{"WriteFile", "ReadFile", "MatchingFiles", "DeleteFile", "PyFunc", "EagerPyFunc", "PrintV2", "ImmutableConst"} {
		if _, ok := trust.Builtin[op]; ok {
			t.Errorf("allowlist.txt lists %s", op)
		}
	}
}
