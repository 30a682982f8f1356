package trust_test

import (
	"cmp"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/testmodel"
	"github.com/xcept/xcept/internal/trust"
)

var update = flag.Bool("update", false, "rewrite allowlist.txt from xcept's own models")

// TestAllowlistCoversXceptModels builds xcept's serving model at every
// precision and for every backbone (an export copies that graph unchanged;
// the backbones' models are the end-to-end test's, testmodel.ArchSpec) and
// fails when one needs an op the committed allowlist does not allow in its
// zone: a change to the builder that needs a new op must add it to
// allowlist.txt, where a reviewer sees it. -update rewrites the file from
// what the models hold.
func TestAllowlistCoversXceptModels(t *testing.T) {
	need := map[string]trust.Zone{}
	var specs []model.Spec
	for _, p := range model.Precisions {
		spec := testmodel.TinySpec()
		spec.Precision = p
		specs = append(specs, spec)
	}
	for _, a := range model.Archs() {
		if a.Name != model.DefaultArch { // Xception's is TinySpec, above
			specs = append(specs, testmodel.ArchSpec(a))
		}
	}
	for _, spec := range specs {
		p := spec.Precision + " " + cmp.Or(spec.Arch, model.DefaultArch)
		dir := filepath.Join(testmodel.Build(t, spec), model.ServingDir)
		uses, err := trust.Uses(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range uses {
			if z, ok := need[u.Op]; !ok || u.Zone < z {
				need[u.Op] = u.Zone
			}
		}
		if !*update {
			if err := trust.CheckUses(filepath.Join(dir, "saved_model.pb"), uses, trust.Builtin); err != nil {
				t.Errorf("%s: %v", p, err)
			}
		}
	}
	if *update {
		writeAllowlist(t, need)
	}
}

func writeAllowlist(t *testing.T, need map[string]trust.Zone) {
	var b strings.Builder
	b.WriteString(`# The ops xcept runs in a SavedModel without --allow-untrusted-model, by zone
# (see internal/trust): "serving" ops may run anywhere (signatures, the init
# op, restore and save), "restore" ops only in what the saver's restore op
# reaches, "save" ops only in the rest (the save op). Measured from xcept's
# serving model at every precision and for every backbone:
# go test ./internal/trust -run Allowlist -update
`)
	ops := make([]string, 0, len(need))
	for op := range need {
		ops = append(ops, op)
	}
	slices.SortFunc(ops, func(a, b string) int {
		if need[a] != need[b] {
			return int(need[a]) - int(need[b])
		}
		return strings.Compare(a, b)
	})
	for _, op := range ops {
		fmt.Fprintf(&b, "%s %s\n", need[op], op)
	}
	if err := os.WriteFile("allowlist.txt", []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
