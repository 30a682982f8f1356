package model

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/xcept/xcept/internal/fault"
)

// optimizerDefaults are each optimizer's parameters and their defaults, as
// scripts/xcept_model.py's OPTIMIZERS states them (nesterov: 0 false, 1 true).
var optimizerDefaults = map[string]map[string]float64{
	"adam":  {},
	"adamw": {"weight_decay": 0.004},
	"sgd":   {"momentum": 0.9, "nesterov": 0},
}

// Optimizer is a parsed optimizer value: its name and every parameter.
type Optimizer struct {
	Name   string
	Params map[string]float64
}

// Equal reports whether o and p are the same optimizer with the same parameters.
func (o Optimizer) Equal(p Optimizer) bool { return o.Name == p.Name && maps.Equal(o.Params, p.Params) }

// ParseOptimizer reads an optimizer value ("" is adam) for the
// configuration key key: adam, adamw[:weight_decay=W], sgd[:momentum=M,nesterov=true|false].
// A bad value is a usage error naming what is valid.
func ParseOptimizer(key, value string) (Optimizer, error) {
	if value == "" {
		value = "adam"
	}
	name, rest, _ := strings.Cut(value, ":")
	name = strings.TrimSpace(name)
	defaults, ok := optimizerDefaults[name]
	if !ok {
		return Optimizer{}, fault.New(fault.BadValue, "%s %s: unknown optimizer; use one of %s", key, value, strings.Join(Optimizers, ", "))
	}
	o := Optimizer{Name: name, Params: maps.Clone(defaults)}
	for _, item := range strings.Split(rest, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		k, v, eq := strings.Cut(item, "=")
		k = strings.TrimSpace(k)
		if _, known := defaults[k]; !eq || !known {
			params := slices.Sorted(maps.Keys(defaults))
			valid := strings.Join(params, ", ")
			if valid == "" {
				valid = "none"
			}
			return Optimizer{}, fault.New(fault.BadValue, "%s %s: %s has no parameter %s; its parameters: %s", key, value, name, k, valid)
		}
		v = strings.ToLower(strings.TrimSpace(v))
		var f float64
		var err error
		if k == "nesterov" {
			switch v {
			case "true", "1":
				f = 1
			case "false", "0":
			default:
				err = strconv.ErrSyntax
			}
		} else {
			f, err = strconv.ParseFloat(v, 64)
		}
		if err != nil || f < 0 || (k == "momentum" && f >= 1) {
			return Optimizer{}, fault.New(fault.BadValue, "%s %s: %s=%s is not valid (weight_decay >= 0, momentum in [0, 1), nesterov true or false)", key, value, k, v)
		}
		o.Params[k] = f
	}
	return o, nil
}
