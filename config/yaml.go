package config

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

var (
	errEOF       = io.EOF
	typeOfConfig = reflect.TypeOf(Config{})
	yamlLineRE   = regexp.MustCompile(`line (\d+): `)
)

// checkNode walks node against the Go type t before anything is decoded,
// so that every error can name its key path: it refuses keys the type does
// not have, a list or a mapping where a single value belongs (and the
// reverse), and scalars the decoder cannot turn into t (a duration, a
// boolean, a number). line is the line of the key the node is the value
// of. Problems are appended to errs, in the order of the file.
func checkNode(name string, node *yaml.Node, t reflect.Type, path string, line int, errs *[]error) {
	if node.Kind == yaml.AliasNode && node.Alias != nil {
		// The walk is bounded by the depth of the Go types, so aliases
		// cannot make it loop.
		node = node.Alias
	}
	if isNull(node) {
		// An empty value leaves the default's zero; validation judges it.
		return
	}
	fail := func(format string, args ...any) {
		*errs = append(*errs, fmt.Errorf("config: %s:%d: %s: %s", name, line, path, fmt.Sprintf(format, args...)))
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if node.Kind != yaml.MappingNode {
			fail("must be a mapping of keys, got %s", describe(node))
			return
		}
		fields := yamlFields(t)
		seen := map[string]int{}
		for i := 0; i+1 < len(node.Content); i += 2 {
			key, val := node.Content[i], node.Content[i+1]
			if dupKey(name, key, path, seen, errs) {
				continue
			}
			f, ok := fields[key.Value]
			if !ok {
				known := make([]string, 0, len(fields))
				for k := range fields {
					known = append(known, k)
				}
				sort.Strings(known)
				*errs = append(*errs, fmt.Errorf("config: %s:%d: unknown key %q (known keys here: %s)",
					name, key.Line, join(path, key.Value), strings.Join(known, ", ")))
				continue
			}
			checkNode(name, val, f.Type, join(path, key.Value), key.Line, errs)
		}
	case reflect.Slice:
		if node.Kind != yaml.SequenceNode {
			fail("must be a list, got %s", describe(node))
			return
		}
		for i, item := range node.Content {
			checkNode(name, item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), item.Line, errs)
		}
	case reflect.Map:
		if node.Kind != yaml.MappingNode {
			fail("must be a mapping, got %s", describe(node))
			return
		}
		seen := map[string]int{}
		for i := 0; i+1 < len(node.Content); i += 2 {
			key := node.Content[i]
			if dupKey(name, key, path, seen, errs) {
				continue
			}
			checkNode(name, node.Content[i+1], t.Elem(), join(path, key.Value), key.Line, errs)
		}
	default:
		if node.Kind != yaml.ScalarNode {
			fail("must be a single value, got %s", describe(node))
			return
		}
		if tag := node.ShortTag(); !strings.HasPrefix(tag, "!!") {
			fail("unknown tag %s", tag)
			return
		}
		// The decoder itself says whether the scalar fits, so that the
		// check and the decoding cannot disagree.
		if err := node.Decode(reflect.New(t).Interface()); err != nil {
			fail("must be %s, got %q", expected(t), node.Value)
		}
	}
}

// dupKey reports a key given twice in one mapping (the decoder would refuse
// it without naming the key path).
func dupKey(name string, key *yaml.Node, path string, seen map[string]int, errs *[]error) bool {
	if first, ok := seen[key.Value]; ok {
		*errs = append(*errs, fmt.Errorf("config: %s:%d: %s: given twice (first at line %d)", name, key.Line, join(path, key.Value), first))
		return true
	}
	seen[key.Value] = key.Line
	return false
}

var typeOfDuration = reflect.TypeOf(time.Duration(0))

// expected names what a scalar of type t must look like.
func expected(t reflect.Type) string {
	switch {
	case t == typeOfDuration:
		return "a duration like 250ms, 30s or 5m"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "a whole number"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "a number"
	case t.Kind() == reflect.String:
		return "text"
	}
	return "a " + t.String()
}

// describe names the shape of a node for an error message.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	}
	return fmt.Sprintf("%q", n.Value)
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "-" || !f.IsExported() {
			continue
		}
		if tag == "" {
			tag = strings.ToLower(f.Name)
		}
		out[tag] = f
	}
	return out
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// lookup returns the value node of key in a mapping node, or nil.
func lookup(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// lineOf returns the line of the key at path (dotted, with [i] for list
// items), or of the deepest part of it that exists.
func lineOf(root *yaml.Node, path string) int {
	line := root.Line
	n := root
	for _, part := range strings.Split(path, ".") {
		idx := -1
		if j := strings.IndexByte(part, '['); j >= 0 {
			fmt.Sscanf(part[j:], "[%d]", &idx)
			part = part[:j]
		}
		if n == nil || n.Kind != yaml.MappingNode {
			return line
		}
		found := false
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == part {
				line, n, found = n.Content[i].Line, n.Content[i+1], true
				break
			}
		}
		if !found {
			return line
		}
		if idx >= 0 && n.Kind == yaml.SequenceNode && idx < len(n.Content) {
			n = n.Content[idx]
			line = n.Line
		}
	}
	return line
}

// withoutKey returns a shallow copy of mapping m without key.
func withoutKey(m *yaml.Node, key string) *yaml.Node {
	c := *m
	c.Content = nil
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != key {
			c.Content = append(c.Content, m.Content[i], m.Content[i+1])
		}
	}
	return &c
}

// yamlError rewrites the decoder's errors as "config: FILE:LINE: message".
func yamlError(name string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		// One line per error, as -check promises.
		errs := make([]error, len(te.Errors))
		for i, e := range te.Errors {
			errs[i] = fmt.Errorf("config: %s", rewriteLine(name, e))
		}
		return errors.Join(errs...)
	}
	return fmt.Errorf("config: %s", rewriteLine(name, strings.TrimPrefix(err.Error(), "yaml: ")))
}

func rewriteLine(name, msg string) string {
	msg = strings.ReplaceAll(msg, "config.", "")
	if m := yamlLineRE.FindStringSubmatchIndex(msg); m != nil {
		return name + ":" + msg[m[2]:m[3]] + ": " + msg[:m[0]] + msg[m[1]:]
	}
	return name + ": " + msg
}
