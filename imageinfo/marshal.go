package imageinfo

import (
	"reflect"
	"strings"
)

// One marshaller prints every format's details. A driver describes itself
// with a Details struct whose fields carry json tags in qemu's key order:
//
//	type Details struct {
//		Compat        string `json:"compat"`
//		LazyRefcounts *bool  `json:"lazy-refcounts"`  // nil: not reported (compat 0.10)
//		DataFile      string `json:"data-file,omitempty"`
//	}
//
// Ordered turns such a value into the ordered objects WriteJSON prints as
// qemu's JSON and WriteHuman prints as qemu's human text, so both come from
// the same struct. A nil pointer, interface or slice is left out, as is a
// zero field tagged omitempty; a field without a json tag (or tagged "-")
// is not reported.

// Field is one key of an ordered object. Value is a string, bool, number,
// Object, []any of those, or anything Ordered converts.
type Field struct {
	Key   string
	Value any
}

// Object is an ordered JSON object, printed in its order.
type Object []Field

// Ordered returns v as ordered values: a struct (or a pointer to one) as a
// Object of its tagged fields in declaration order, a slice as a
// []any, a Object with its values converted, a scalar as itself.
func Ordered(v any) any {
	out, _ := ordered(reflect.ValueOf(v))
	return out
}

// ordered converts rv; ok is false for a value that is left out (nil).
func ordered(rv reflect.Value) (any, bool) {
	if !rv.IsValid() {
		return nil, false
	}
	switch x := rv.Interface().(type) {
	case Object:
		return orderedObject(x), true
	case []any:
		return orderedList(rv), true
	}
	switch rv.Kind() {
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return nil, false
		}
		return ordered(rv.Elem())
	case reflect.Struct:
		return orderedStruct(rv), true
	case reflect.Slice:
		if rv.IsNil() {
			return nil, false
		}
		return orderedList(rv), true
	}
	return rv.Interface(), true
}

func orderedObject(obj Object) Object {
	out := make(Object, 0, len(obj))
	for _, f := range obj {
		if v, ok := ordered(reflect.ValueOf(f.Value)); ok {
			out = append(out, Field{Key: f.Key, Value: v})
		}
	}
	return out
}

func orderedList(rv reflect.Value) []any {
	out := make([]any, 0, rv.Len())
	for i := range rv.Len() {
		if v, ok := ordered(rv.Index(i)); ok {
			out = append(out, v)
		}
	}
	return out
}

func orderedStruct(rv reflect.Value) Object {
	t := rv.Type()
	obj := Object{}
	for i := range t.NumField() {
		tag, ok := t.Field(i).Tag.Lookup("json")
		if !ok || tag == "-" || !t.Field(i).IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		fv := rv.Field(i)
		if opts == "omitempty" && fv.IsZero() {
			continue
		}
		if v, ok := ordered(fv); ok {
			obj = append(obj, Field{Key: name, Value: v})
		}
	}
	return obj
}
