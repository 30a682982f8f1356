package dataset

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/xcept/xcept/internal/fault"
)

// Split names. Folder layouts may say "validation"; it is read as val.
const (
	Train = "train"
	Val   = "val"
	Test  = "test"
)

// Splits lists the splits in the order they are written and reported.
var Splits = []string{Train, Val, Test}

// source is one regular file found under a class folder.
type source struct {
	rel    string // display path relative to the data folder, for reports and file names
	abs    string // path to open
	class  string // display name of its class folder
	folder string // the split its train/ val/ test/ folder names, "" when prepare draws the split
}

// scanned is what the walk found before any file was read.
type scanned struct {
	files       []source
	classDirs   map[string][]string // class -> display paths of its folders
	fromFolders bool                // DIR holds train/ val/ test/ folders
	problems    []Problem
}

// dirID identifies a directory across symlinks, to follow each one once.
type dirID struct{ dev, ino uint64 }

type scanner struct {
	root          string
	realRoot      string // root with symlinks resolved
	followOutside bool   // follow links that lead out of root
	visited       map[dirID]bool
	out           *scanned
}

// scan walks the data folder: one sub-folder per class (files may sit deeper
// inside it), or train/, val/ (or validation/) and test/ folders each holding
// the class folders. Hidden folders are reported and skipped, hidden files
// (.DS_Store, ._*) ignored. Symlinks are followed once; a link back into a
// folder already scanned is a loop; a link leading outside root is reported
// and not followed unless followOutside.
func scan(root string, followOutside bool) (*scanned, error) {
	s := &scanner{root: root, followOutside: followOutside, visited: map[dirID]bool{}, out: &scanned{classDirs: map[string][]string{}}}
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, fault.About(fault.BadData, fault.DataFolder, root, "%v", err)
	}
	s.realRoot = real
	top, err := s.listDir(root, "")
	if err != nil {
		return nil, fault.About(fault.BadData, fault.DataFolder, root, "%v", err)
	}
	s.markVisited(root)
	layout, err := splitLayout(top)
	if err != nil {
		return nil, fault.About(fault.BadData, fault.DataFolder, root, "%v", err)
	}
	if layout == nil {
		s.claim(top)
		for _, e := range top {
			if e.isDir {
				s.walkClass(e, e.display, "")
			} else {
				s.outside(e)
			}
		}
		return s.out, nil
	}
	s.out.fromFolders = true
	s.claim(top)
	inner := map[string][]entry{}
	for _, e := range top {
		if !e.isDir {
			s.outside(e)
			continue
		}
		classes, err := s.listDir(e.abs, e.rel)
		if err != nil {
			s.problem(e.rel, ReasonUnreadable, err.Error())
			continue
		}
		inner[e.name] = classes
		s.claim(classes)
	}
	for _, e := range top {
		for _, c := range inner[e.name] {
			if c.isDir {
				s.walkClass(c, c.display, layout[e.name])
			} else {
				s.outside(c)
			}
		}
	}
	return s.out, nil
}

// splitLayout maps split folder names to splits when the top level is made
// of split folders only, nil when it holds class folders. A mix is an error:
// guessing would either lose a split or invent a class named "train".
func splitLayout(top []entry) (map[string]string, error) {
	known := map[string]string{"train": Train, "val": Val, "validation": Val, "test": Test}
	layout := map[string]string{}
	var classes []string
	for _, e := range top {
		if !e.isDir {
			continue
		}
		if split, ok := known[e.name]; ok {
			layout[e.name] = split
		} else {
			classes = append(classes, e.display)
		}
	}
	if len(layout) == 0 {
		return nil, nil
	}
	if _, ok := layout["train"]; !ok || len(classes) > 0 {
		return nil, fmt.Errorf("mixes split folders (train/, val/, test/) with class folders (%s): use one layout", strings.Join(classes, ", "))
	}
	if _, v := layout["val"]; v {
		if _, vv := layout["validation"]; vv {
			return nil, errors.New("has both val/ and validation/: keep one")
		}
	}
	return layout, nil
}

// entry is one directory entry with symlinks resolved.
type entry struct {
	name, display string // raw name, and its escaped form
	rel, abs      string
	isDir         bool
	id            dirID
}

// listDir reads one folder, sorted by name, resolving symlinks and reporting
// what cannot be used. Hidden files are left out without a report.
func (s *scanner) listDir(abs, rel string) ([]entry, error) {
	des, err := os.ReadDir(abs)
	if err != nil {
		return nil, err
	}
	var out []entry
	for _, de := range des {
		name := de.Name()
		display, odd := displayName(name)
		e := entry{name: name, display: display, rel: joinRel(rel, display), abs: filepath.Join(abs, name)}
		if de.Type()&fs.ModeSymlink != 0 && !s.followOutside {
			target, err := filepath.EvalSymlinks(e.abs)
			if err == nil && !within(target, s.realRoot) {
				s.problem(e.rel, ReasonLinkOutside, "symbolic link to "+target+", outside --data: not followed (prepare.follow_outside_links allows it)")
				continue
			}
		}
		hidden := strings.HasPrefix(name, ".")
		if hidden && !de.IsDir() && de.Type()&fs.ModeSymlink == 0 {
			continue
		}
		info, err := os.Stat(e.abs) // follows symlinks
		if err != nil {
			if !hidden {
				s.statProblem(e.rel, err)
			}
			continue
		}
		if hidden {
			if info.IsDir() {
				s.problem(e.rel, ReasonHiddenFolder, "folder name starts with a dot (hidden): skipped; rename it to use its images")
			}
			continue
		}
		if odd {
			s.problem(e.rel, ReasonOddName, "name is not printable UTF-8; reported here with \\x escapes")
		}
		switch {
		case info.IsDir():
			e.isDir = true
			e.id = idOf(info)
		case !info.Mode().IsRegular():
			s.problem(e.rel, ReasonNotRegular, "a "+fileKind(info.Mode())+", not a file")
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

// statProblem reports a name that cannot be followed.
func (s *scanner) statProblem(rel string, err error) {
	switch {
	case errors.Is(err, syscall.ELOOP):
		s.problem(rel, ReasonSymlinkLoop, "symbolic links point at each other in a circle")
	case errors.Is(err, fs.ErrNotExist):
		s.problem(rel, ReasonBrokenSymlink, "symbolic link to a missing file")
	default:
		s.problem(rel, ReasonUnreadable, err.Error())
	}
}

// walkClass adds every file under a class folder, descending into
// sub-folders (including linked ones, once each).
func (s *scanner) walkClass(dir entry, class, split string) {
	s.out.classDirs[class] = append(s.out.classDirs[class], dir.rel)
	var walk func(d entry)
	walk = func(d entry) {
		if d.rel != dir.rel && s.visited[d.id] {
			s.problem(d.rel, ReasonSymlinkLoop, "leads to a folder already scanned; followed once only")
			return
		}
		s.visited[d.id] = true
		entries, err := s.listDir(d.abs, d.rel)
		if err != nil {
			s.problem(d.rel, ReasonUnreadable, err.Error())
			return
		}
		for _, e := range entries {
			if e.isDir {
				walk(e)
				continue
			}
			s.out.files = append(s.out.files, source{rel: e.rel, abs: e.abs, class: class, folder: split})
		}
	}
	walk(dir)
}

// claim marks the class (and split) folders as visited before any is
// walked, so that a link from one class folder into another is reported
// instead of filing the other class's images under the wrong label.
func (s *scanner) claim(entries []entry) {
	for _, e := range entries {
		if e.isDir {
			s.visited[e.id] = true
		}
	}
}

func (s *scanner) outside(e entry) {
	if e.isDir {
		return
	}
	s.problem(e.rel, ReasonOutsideClass, "files must sit inside a class folder; ignored")
}

func (s *scanner) problem(rel, reason, detail string) {
	action := ActionSkipped
	if reason == ReasonOddName {
		action = ActionKept
	}
	s.out.problems = append(s.out.problems, Problem{Path: rel, Reason: reason, Detail: detail, Action: action})
}

func (s *scanner) markVisited(abs string) {
	if info, err := os.Stat(abs); err == nil {
		s.visited[idOf(info)] = true
	}
}

func idOf(info fs.FileInfo) dirID {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return dirID{dev: uint64(st.Dev), ino: uint64(st.Ino)}
	}
	return dirID{}
}

func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

func joinRel(rel, name string) string {
	if rel == "" {
		return name
	}
	return rel + "/" + name
}

// sortedClasses returns the class names in label order: byte order of their
// display names, the order Keras' folder loaders use too.
func (s *scanned) sortedClasses() []string {
	var cs []string
	for c := range s.classDirs {
		cs = append(cs, c)
	}
	slices.Sort(cs)
	return cs
}
