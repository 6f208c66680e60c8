package formats

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// Typed create options: a driver declares its -o options once, as a struct
// whose fields carry tags, and derives from it the OptionSpec table (what
// ParseOptions checks and OptionsHelp prints) with OptionSpecsOf; library
// callers fill the struct and turn it into Options with OptionsOf, a zero
// field meaning the option's default; the driver reads any Options back
// into the struct with Decode, once.
//
//	type CreateOptions struct {
//		ClusterSize int64  `opt:"cluster_size,size" default:"65536" help:"qcow2 cluster size"`
//		Compat      string `opt:"compat" default:"1.1" values:"0.10,1.1" help:"Compatibility level"`
//		LazyRefcounts bool `opt:"lazy_refcounts" default:"off" help:"Postpone refcount updates"`
//		Level       int    `opt:"compression_level" min:"1" max:"9" help:"Effort; 0 is the default"`
//		Encrypt     EncryptOptions `opt:"encrypt."` // encrypt.format, encrypt.key-secret, ...
//	}
//
// Field types: string (OptString), bool (OptBool), *bool (OptBool, for an
// option whose unset state differs from off: nil when the user set nothing
// and there is no default), int and int64 (OptInt, or OptSize with ",size"
// after the name; min and max bound an OptInt so that 0 can stand for
// "unset"), and a struct whose fields are options named with the tag as a
// prefix.

// OptionSpecsOf returns the option table of the tagged struct v (a value
// or a pointer); it panics on a field type it cannot map, which is a
// programming error found by the driver's first test.
func OptionSpecsOf(v any) []OptionSpec {
	t := reflect.TypeOf(v)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return specsOf(t, "")
}

func specsOf(t reflect.Type, prefix string) []OptionSpec {
	var specs []OptionSpec
	for i := range t.NumField() {
		f := t.Field(i)
		tag, ok := f.Tag.Lookup("opt")
		if !ok {
			continue
		}
		name, kind, _ := strings.Cut(tag, ",")
		name = prefix + name
		if f.Type.Kind() == reflect.Struct {
			specs = append(specs, specsOf(f.Type, name)...)
			continue
		}
		s := OptionSpec{Name: name, Help: f.Tag.Get("help"), Default: f.Tag.Get("default")}
		if vals := f.Tag.Get("values"); vals != "" {
			s.Values = strings.Split(vals, ",")
		}
		switch f.Type.Kind() {
		case reflect.String:
			s.Type = OptString
		case reflect.Bool:
			s.Type = OptBool
		case reflect.Pointer:
			if f.Type.Elem().Kind() != reflect.Bool {
				panic(fmt.Sprintf("formats: option %s: only *bool pointers are options", name))
			}
			s.Type = OptBool
		case reflect.Int, reflect.Int64:
			s.Type = OptInt
			if kind == "size" {
				s.Type = OptSize
			}
			s.Min, s.Max = tagInt(f, "min"), tagInt(f, "max")
		default:
			panic(fmt.Sprintf("formats: option %s: field type %v has no option type", name, f.Type))
		}
		specs = append(specs, s)
	}
	return specs
}

func tagInt(f reflect.StructField, key string) int64 {
	text, ok := f.Tag.Lookup(key)
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		panic(fmt.Sprintf("formats: option field %s: %s:%q is not an integer", f.Name, key, text))
	}
	return n
}

// OptionsOf turns the tagged struct v into Options checked against specs
// (a driver's CreateOptions): every non-zero field is set, zero fields keep
// their defaults.
func OptionsOf(specs []OptionSpec, v any) (Options, error) {
	o, err := ParseOptions(specs, "")
	if err != nil {
		return o, err
	}
	return o, o.setFields(reflect.Indirect(reflect.ValueOf(v)), "")
}

func (o *Options) setFields(rv reflect.Value, prefix string) error {
	t := rv.Type()
	for i := range t.NumField() {
		tag, ok := t.Field(i).Tag.Lookup("opt")
		if !ok || rv.Field(i).IsZero() {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		name = prefix + name
		var text string
		switch fv := rv.Field(i); fv.Kind() {
		case reflect.Struct:
			if err := o.setFields(fv, name); err != nil {
				return err
			}
			continue
		case reflect.String:
			text = fv.String()
		case reflect.Bool:
			text = "on"
		case reflect.Pointer: // *bool: nil is the default, else explicit
			text = "off"
			if fv.Elem().Bool() {
				text = "on"
			}
		case reflect.Int, reflect.Int64:
			text = strconv.FormatInt(fv.Int(), 10)
		}
		if err := o.Set(name, text); err != nil {
			return err
		}
	}
	return nil
}

// Decode fills the tagged struct pointed to by v from o: set options and
// defaults alike (a *bool stays nil when its option is unset and has no
// default). The zero Options decode to every field's default.
func (o Options) Decode(v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("formats: Decode needs a pointer to a struct, not %T", v)
	}
	o = o.bind(specsOf(rv.Elem().Type(), ""))
	o.decodeFields(rv.Elem(), "")
	return nil
}

func (o Options) decodeFields(rv reflect.Value, prefix string) {
	t := rv.Type()
	for i := range t.NumField() {
		tag, ok := t.Field(i).Tag.Lookup("opt")
		if !ok {
			continue
		}
		name, kind, _ := strings.Cut(tag, ",")
		name = prefix + name
		switch fv := rv.Field(i); fv.Kind() {
		case reflect.Struct:
			o.decodeFields(fv, name)
		case reflect.String:
			fv.SetString(o.String(name))
		case reflect.Bool:
			fv.SetBool(o.Bool(name))
		case reflect.Pointer:
			if o.String(name) == "" {
				fv.SetZero()
				continue
			}
			b := o.Bool(name)
			fv.Set(reflect.ValueOf(&b))
		case reflect.Int, reflect.Int64:
			if kind == "size" {
				fv.SetInt(o.Size(name))
			} else {
				fv.SetInt(o.Int(name))
			}
		}
	}
}
