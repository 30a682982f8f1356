package graph

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/xcept/xcept/internal/contract"
)

// Node is one NodeDef: what it runs and what it reads. Op is an op's name
// or, for a call, a function's; Funcs are the functions its attributes name
// (StatefulPartitionedCall's f, If's branches, While's cond and body, ...).
type Node struct {
	Name   string
	Op     string
	Inputs []string // node names, without ":output" or the "^" of a control input
	Funcs  []string
}

// GraphDef is the part of a GraphDef that says what the graph can run: its
// nodes and every function of its library, by name.
type GraphDef struct {
	Nodes     []Node
	Functions map[string][]Node
	// CollectionNodes are the node names of the MetaGraphDef's node-list
	// collections (a TensorFlow 1 main_op or legacy_init_op is run at load).
	CollectionNodes map[string][]string
}

// SavedModel (saved_model.proto), GraphDef, FunctionDef, NodeDef and
// AttrValue field numbers (tensorflow/core/framework/*.proto).
const (
	smMetaGraphs = 2
	mgGraphDef   = 2
	mgCollection = 4
	colNodeList  = 1
	nodeListVal  = 1

	gdNode    = 1
	gdLibrary = 2
	libFunc   = 1
	fnSig     = 1
	fnNode    = 3
	opDefName = 1

	ndName  = 1
	ndOp    = 2
	ndInput = 3
	ndAttr  = 5

	avList    = 1
	avFunc    = 10
	listFunc  = 9
	nalName   = 1
	nalAttr   = 2
	tagsServe = "serve"
)

// ReadSavedModelGraph reads dir/saved_model.pb without TensorFlow and
// returns the MetaGraphDef tagged serve (the one LoadSavedModel loads):
// its signatures and saver, and its graph with every library function.
func ReadSavedModelGraph(dir string) (*MetaGraph, *GraphDef, error) {
	path := dir + string(os.PathSeparator) + contract.SavedModelFile
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var found []byte
	err = eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num != smMetaGraphs || typ != protowire.BytesType || found != nil {
			return nil
		}
		mg, err := ParseMetaGraph(v)
		if err != nil {
			return err
		}
		if slices.Contains(mg.Tags, tagsServe) {
			found = v
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: not a SavedModel: %w", path, err)
	}
	if found == nil {
		return nil, nil, fmt.Errorf("%s has no MetaGraph tagged %q", path, tagsServe)
	}
	mg, _ := ParseMetaGraph(found)
	g := &GraphDef{Functions: map[string][]Node{}, CollectionNodes: map[string][]string{}}
	err = eachField(found, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch {
		case num == mgGraphDef && typ == protowire.BytesType:
			return g.parse(v)
		case num == mgCollection && typ == protowire.BytesType:
			key, val, err := parseMapEntry(v)
			if err != nil {
				return err
			}
			return eachField(val, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				if num != colNodeList || typ != protowire.BytesType {
					return nil
				}
				return eachField(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
					if num == nodeListVal && typ == protowire.BytesType {
						g.CollectionNodes[key] = append(g.CollectionNodes[key], string(v))
					}
					return nil
				})
			})
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: decoding its GraphDef: %w", path, err)
	}
	return mg, g, nil
}

func (g *GraphDef) parse(b []byte) error {
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case gdNode:
			n, err := parseNode(v)
			g.Nodes = append(g.Nodes, n)
			return err
		case gdLibrary:
			return eachField(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				if num == libFunc && typ == protowire.BytesType {
					return g.parseFunction(v)
				}
				return nil
			})
		}
		return nil
	})
}

func (g *GraphDef) parseFunction(b []byte) error {
	var name string
	var nodes []Node
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case fnSig:
			return eachField(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				if num == opDefName && typ == protowire.BytesType {
					name = string(v)
				}
				return nil
			})
		case fnNode:
			n, err := parseNode(v)
			nodes = append(nodes, n)
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	if _, dup := g.Functions[name]; dup {
		return fmt.Errorf("function %q is defined twice", name)
	}
	g.Functions[name] = nodes
	return nil
}

func parseNode(b []byte) (Node, error) {
	var n Node
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case ndName:
			n.Name = string(v)
		case ndOp:
			n.Op = string(v)
		case ndInput:
			in := strings.TrimPrefix(string(v), "^")
			if op, _, found := strings.Cut(in, ":"); found {
				in = op
			}
			n.Inputs = append(n.Inputs, in)
		case ndAttr:
			_, val, err := parseMapEntry(v)
			if err != nil {
				return err
			}
			return attrFuncs(val, &n.Funcs)
		}
		return nil
	})
	return n, err
}

// attrFuncs appends the functions an AttrValue names: a func, a list of
// them, and those named in their own attributes.
func attrFuncs(b []byte, out *[]string) error {
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case avFunc:
			return nameAttrList(v, out)
		case avList:
			return eachField(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				if num == listFunc && typ == protowire.BytesType {
					return nameAttrList(v, out)
				}
				return nil
			})
		}
		return nil
	})
}

func nameAttrList(b []byte, out *[]string) error {
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case nalName:
			*out = append(*out, string(v))
		case nalAttr:
			_, val, err := parseMapEntry(v)
			if err != nil {
				return err
			}
			return attrFuncs(val, out)
		}
		return nil
	})
}
