// Package trust decides whether xcept runs a SavedModel. A SavedModel is a
// program: loading it runs its restore and init ops, and every request runs
// its signatures' graphs, which may call any op TensorFlow has (write or
// delete files, read any path, call Python). xcept runs, by default, only
// models it exported itself (a mark beside saved_model.pb that records the
// graph's hash) whose graphs hold only the ops xcept's own exports need
// (allowlist.txt, measured from them). --allow-untrusted-model skips both.
package trust

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/graph"
)

// Zone is where in a SavedModel a node runs, strictest first: the serving
// zone is what signatures (and the init op) reach, run at load and on every
// request; the restore zone is what the saver's restore op reaches, run at
// load with the variables' path; the save zone is everything else (the
// saver's save op, which only ever runs on demand).
type Zone int

// The zones, strictest first.
const (
	Serving Zone = iota
	Restore
	Save
)

var zoneNames = []string{"serving", "restore", "save"}

func (z Zone) String() string { return zoneNames[z] }

//go:embed allowlist.txt
var allowlistText []byte

// Allowlist maps an op to the least strict zone it is measured in: an op
// listed for the serving zone is allowed anywhere, one listed for restore
// in the restore and save zones, one listed for save only there.
type Allowlist map[string]Zone

// Allows says whether op may run in zone z.
func (a Allowlist) Allows(op string, z Zone) bool {
	least, ok := a[op]
	return ok && z >= least
}

// ParseAllowlist reads lines "zone op"; # starts a comment.
func ParseAllowlist(b []byte) (Allowlist, error) {
	a := Allowlist{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		z := slices.Index(zoneNames, f[0])
		if len(f) != 2 || z < 0 {
			return nil, fmt.Errorf("allowlist line %d: want \"zone op\" with zone serving, restore or save: %q", n, sc.Text())
		}
		if old, dup := a[f[1]]; dup {
			return nil, fmt.Errorf("allowlist line %d: op %s is listed twice (%s and %s)", n, f[1], old, Zone(z))
		}
		a[f[1]] = Zone(z)
	}
	return a, sc.Err()
}

// Builtin is the committed allowlist.
var Builtin = func() Allowlist {
	a, err := ParseAllowlist(allowlistText)
	if err != nil {
		panic(err)
	}
	return a
}()

// Use is one op a SavedModel holds and the strictest zone it runs in.
type Use struct {
	Op       string
	Zone     Zone
	Node     string
	Function string // "" for the main graph
}

// Uses lists every op of dir's serving MetaGraph (main graph and every
// library function), each node in the strictest zone that reaches it.
// Calls of library functions are not listed themselves: their nodes are.
func Uses(dir string) ([]Use, error) {
	mg, g, err := graph.ReadSavedModelGraph(dir)
	if err != nil {
		return nil, err
	}
	byName := make(map[string]int, len(g.Nodes))
	for i, n := range g.Nodes {
		byName[n.Name] = i
	}
	nodeZone := make([]Zone, len(g.Nodes))
	nodeSeen := make([]bool, len(g.Nodes))
	funcZone := map[string]Zone{}
	var reachFunc func(name string, z Zone)
	reachFunc = func(name string, z Zone) {
		nodes, ok := g.Functions[name]
		if _, seen := funcZone[name]; seen || !ok {
			return
		}
		funcZone[name] = z
		for _, n := range nodes {
			reachFunc(n.Op, z)
			for _, f := range n.Funcs {
				reachFunc(f, z)
			}
		}
	}
	reach := func(roots []string, z Zone) {
		stack := slices.Clone(roots)
		for len(stack) > 0 {
			name := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			name, _, _ = strings.Cut(strings.TrimPrefix(name, "^"), ":")
			i, ok := byName[name]
			if !ok || nodeSeen[i] {
				continue
			}
			nodeSeen[i], nodeZone[i] = true, z
			n := g.Nodes[i]
			reachFunc(n.Op, z)
			for _, f := range n.Funcs {
				reachFunc(f, z)
			}
			stack = append(stack, n.Inputs...)
		}
	}
	var serving, restore []string
	for _, sig := range mg.Signatures {
		for _, ti := range sig.Inputs {
			serving = append(serving, ti.Name)
		}
		for _, ti := range sig.Outputs {
			serving = append(serving, ti.Name)
		}
	}
	for _, nodes := range g.CollectionNodes {
		serving = append(serving, nodes...)
	}
	reach(serving, Serving)
	if mg.Saver != nil {
		restore = append(restore, mg.Saver.RestoreOp, mg.Saver.FilenameTensor)
	}
	reach(restore, Restore)
	for i := range g.Nodes {
		if !nodeSeen[i] {
			reach([]string{g.Nodes[i].Name}, Save)
		}
	}
	for name := range g.Functions {
		reachFunc(name, Save)
	}

	var uses []Use
	add := func(n graph.Node, z Zone, fn string) {
		if _, call := g.Functions[n.Op]; !call {
			uses = append(uses, Use{Op: n.Op, Zone: z, Node: n.Name, Function: fn})
		}
	}
	for i, n := range g.Nodes {
		add(n, nodeZone[i], "")
	}
	for name, nodes := range g.Functions {
		for _, n := range nodes {
			add(n, funcZone[name], name)
		}
	}
	slices.SortFunc(uses, func(a, b Use) int {
		return strings.Compare(a.Function+"\x00"+a.Node, b.Function+"\x00"+b.Node)
	})
	return uses, nil
}

// MarkFile is the mark xcept writes beside saved_model.pb of every serving
// SavedModel it builds or exports. TF Serving ignores it.
const MarkFile = "xcept-model.json"

type mark struct {
	Note             string `json:"note"`
	SavedModelSHA256 string `json:"saved_model_sha256"`
}

// WriteMark marks the SavedModel in dir as xcept's, with the hash of its
// saved_model.pb as it is now.
func WriteMark(dir string) error {
	sum, err := fileSHA256(filepath.Join(dir, contract.SavedModelFile))
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(mark{Note: "written by xcept: the SavedModel whose graph has this hash was built by xcept", SavedModelSHA256: sum}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, MarkFile), append(b, '\n'), 0o644)
}

func fileSHA256(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// Flag is the option that skips the check.
const Flag = "--allow-untrusted-model"

// UntrustedError is a model Check refused.
type UntrustedError struct{ Msg string }

func (e *UntrustedError) Error() string { return e.Msg }

// Check refuses the SavedModel in dir unless xcept marked it and its graph
// is unchanged since, and every op it holds is on the allowlist for its
// zone. The error is one line naming the file and the op.
func Check(dir string) error {
	pb := filepath.Join(dir, contract.SavedModelFile)
	refuse := func(format string, args ...any) error {
		return &UntrustedError{Msg: fmt.Sprintf(format, args...) +
			"; models are programs: pass " + Flag + " only for a model you trust (see README, Serving: trusted models)"}
	}
	uses, err := Uses(dir)
	if err != nil {
		return refuse("%v", err)
	}
	if err := CheckUses(pb, uses, Builtin); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(dir, MarkFile))
	if errors.Is(err, os.ErrNotExist) {
		return refuse("%s was not exported by xcept (no %s beside it)", pb, MarkFile)
	}
	if err != nil {
		return err
	}
	var m mark
	if err := json.Unmarshal(b, &m); err != nil || m.SavedModelSHA256 == "" {
		return refuse("%s is not readable as xcept's mark", filepath.Join(dir, MarkFile))
	}
	sum, err := fileSHA256(pb)
	if err != nil {
		return err
	}
	if sum != m.SavedModelSHA256 {
		return refuse("%s changed since xcept wrote it (its hash differs from %s)", pb, MarkFile)
	}
	return nil
}

// CheckUses refuses the first op of uses that allow does not allow in its
// zone; pb names the file in the message.
func CheckUses(pb string, uses []Use, allow Allowlist) error {
	for _, u := range uses {
		if allow.Allows(u.Op, u.Zone) {
			continue
		}
		where := fmt.Sprintf("node %q", u.Node)
		if u.Function != "" {
			where += fmt.Sprintf(" of function %q", u.Function)
		}
		why := "not an op xcept's models need"
		if least, ok := allow[u.Op]; ok {
			why = fmt.Sprintf("allowed only in the %s path, but %s reaches it", least, u.Zone)
		}
		return &UntrustedError{Msg: fmt.Sprintf("%s holds op %s (%s): %s; models are programs: pass %s only for a model you trust (see README, Serving: trusted models)",
			pb, u.Op, where, why, Flag)}
	}
	return nil
}
