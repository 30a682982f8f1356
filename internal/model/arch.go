package model

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/scripts"
)

// DefaultArch is the backbone of model.arch's default and of every model
// built before other architectures came (model.json without "arch").
const DefaultArch = "xception"

// Arch is one backbone of scripts/archs.json, the table the Python builder
// reads too: what Go needs before the builder runs (validation, the image
// size prepare stores, the default fine-tuning boundary).
type Arch struct {
	Name         string   `json:"name"`
	Display      string   `json:"display"`
	ImageSize    int      `json:"image_size"`
	MinImageSize int      `json:"min_image_size"`
	Blocks       []string `json:"blocks"`
	UnfreezeFrom string   `json:"unfreeze_from"`
	Taps         []string `json:"taps"`
	Middle       []string `json:"middle"`
}

var archs = sync.OnceValues(func() ([]Arch, error) {
	data, err := scripts.FS.ReadFile("archs.json")
	if err != nil {
		return nil, err
	}
	var table struct {
		Archs []Arch `json:"archs"`
	}
	if err := json.Unmarshal(data, &table); err != nil {
		return nil, fmt.Errorf("scripts/archs.json: %w", err)
	}
	return table.Archs, nil
})

// Archs lists the backbones in the table's order (xception first).
func Archs() []Arch {
	a, err := archs()
	if err != nil {
		panic(err) // embedded at build time: a broken table is a broken binary
	}
	return a
}

// ArchNames are the valid model.arch values.
func ArchNames() []string {
	var names []string
	for _, a := range Archs() {
		names = append(names, a.Name)
	}
	return names
}

// LookupArch is the backbone called name ("" is DefaultArch), or a usage
// error (exit 2) listing the valid names.
func LookupArch(name string) (Arch, error) {
	if name == "" {
		name = DefaultArch
	}
	for _, a := range Archs() {
		if a.Name == name {
			return a, nil
		}
	}
	return Arch{}, fault.BadSetting("model.arch", "%s: unknown architecture; use one of %s", name, strings.Join(ArchNames(), ", "))
}
