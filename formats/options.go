package formats

import (
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"

	"github.com/vdiskio/vdisk/internal/qemuopt"
)

// OptionType is the type of a create option value.
type OptionType int

const (
	OptString OptionType = iota // free text, or one of Values
	OptSize                     // bytes with K/M/G/T/P/E suffixes (powers of 1024)
	OptBool                     // on/off
	OptInt                      // decimal integer
)

func (t OptionType) helpName() string {
	switch t {
	case OptSize:
		return "size"
	case OptBool:
		return "bool (on/off)"
	case OptInt:
		return "num"
	}
	return "str"
}

// OptionSpec describes one `-o key=value` create option of a driver.
type OptionSpec struct {
	Name    string
	Type    OptionType
	Help    string
	Default string   // textual default; "" means unset
	Values  []string // for OptString: the allowed values, when restricted
	// Min and Max bound an OptInt value when Max > Min (an explicit value
	// outside them is refused, so a zero field can mean "the default").
	Min, Max int64
}

// sizeOption is the "size" option every format accepts.
var sizeOption = OptionSpec{Name: "size", Type: OptSize, Help: "Virtual disk size"}

// Options are parsed, validated create options.
type Options struct {
	specs []OptionSpec
	set   map[string]string
}

// bind returns o with specs as its table when it has none (the zero value).
func (o Options) bind(specs []OptionSpec) Options {
	if o.specs == nil {
		o.specs = withSize(specs)
	}
	return o
}

func withSize(specs []OptionSpec) []OptionSpec {
	for _, s := range specs {
		if s.Name == "size" {
			return specs
		}
	}
	return append(slices.Clone(specs), sizeOption)
}

// ParseOptions parses qemu's `-o` syntax, "k=v,k2=v2" (",," is a literal
// comma), against specs. Several -o flags may be joined with commas. Unknown
// keys and bad values are ErrInvalidOption errors naming the key.
func ParseOptions(specs []OptionSpec, text string) (Options, error) {
	o := Options{specs: withSize(specs), set: map[string]string{}}
	for _, item := range SplitOptions(text) {
		value := item.Value
		if item.Bare {
			// qemu: a bare boolean key means key=on (-o force_size).
			if s, known := o.spec(item.Key); !known || s.Type != OptBool {
				return Options{}, fmt.Errorf("%w: %q: expected key=value", ErrInvalidOption, item.Key)
			}
		}
		if err := o.setValue(item.Key, value); err != nil {
			return Options{}, err
		}
	}
	return o, nil
}

// OptionItem is one item of qemu's `-o` syntax.
type OptionItem struct {
	Key, Value string
	Bare       bool // the key stood alone; Value is then "on"
}

// SplitOptions splits qemu's `-o` text "k=v,k2=v2" into its items, in
// order, without checking the keys (ParseOptions checks them against a
// driver's table; amend has its own): ",," is a comma inside a value, a
// bare key is key=on, empty items are skipped.
func SplitOptions(text string) []OptionItem {
	var items []OptionItem
	for _, item := range qemuopt.Split(text) {
		if item == "" {
			continue
		}
		key, value, ok := strings.Cut(item, "=")
		if !ok {
			value = "on"
		}
		items = append(items, OptionItem{Key: key, Value: value, Bare: !ok})
	}
	return items
}

func (o *Options) spec(key string) (OptionSpec, bool) {
	for _, s := range o.specs {
		if s.Name == key {
			return s, true
		}
	}
	return OptionSpec{}, false
}

// Set validates and stores one option value (used by the CLI for -b, -F and
// the positional size).
func (o *Options) Set(key, value string) error {
	if o.set == nil {
		o.set = map[string]string{}
	}
	return o.setValue(key, value)
}

func (o *Options) setValue(key, value string) error {
	s, ok := o.spec(key)
	if !ok {
		return fmt.Errorf("%w: unknown option %q (see -o help)", ErrInvalidOption, key)
	}
	if err := validate(s, value); err != nil {
		return err
	}
	o.set[key] = value
	return nil
}

func validate(s OptionSpec, value string) error {
	var err error
	switch s.Type {
	case OptSize:
		_, err = ParseSize(value)
	case OptBool:
		_, err = parseBool(value)
	case OptInt:
		var n int64
		n, err = strconv.ParseInt(value, 10, 64)
		if err == nil && s.Max > s.Min && (n < s.Min || n > s.Max) {
			err = fmt.Errorf("want %d to %d", s.Min, s.Max)
		}
	case OptString:
		if len(s.Values) > 0 && !slices.Contains(s.Values, value) {
			err = fmt.Errorf("want one of %s", strings.Join(s.Values, ", "))
		}
	}
	if err != nil {
		return fmt.Errorf("%w: %s=%q: %v", ErrInvalidOption, s.Name, value, err)
	}
	return nil
}

func parseBool(v string) (bool, error) {
	switch v {
	case "on", "yes", "true", "y":
		return true, nil
	case "off", "no", "false", "n":
		return false, nil
	}
	return false, fmt.Errorf("not on/off")
}

// IsSet reports whether the user gave key.
func (o Options) IsSet(key string) bool { _, ok := o.set[key]; return ok }

// String returns key's value, or its default.
func (o Options) String(key string) string {
	if v, ok := o.set[key]; ok {
		return v
	}
	s, _ := o.spec(key)
	return s.Default
}

// Size returns a size option in bytes (0 when unset with no default).
func (o Options) Size(key string) int64 {
	n, _ := ParseSize(o.String(key))
	return n
}

// Bool returns a bool option (false when unset with no default).
func (o Options) Bool(key string) bool {
	b, _ := parseBool(o.String(key))
	return b
}

// Int returns an integer option (0 when unset with no default).
func (o Options) Int(key string) int64 {
	n, _ := strconv.ParseInt(o.String(key), 10, 64)
	return n
}

// Keys lists the options the user set, in spec order.
func (o Options) Keys() []string {
	var keys []string
	for _, s := range o.specs {
		if _, ok := o.set[s.Name]; ok {
			keys = append(keys, s.Name)
		}
	}
	return keys
}

// OptionsHelp renders specs as `qemu-img create -f FMT -o help` does.
func OptionsHelp(format string, specs []OptionSpec) string {
	specs = slices.Clone(withSize(specs))
	slices.SortFunc(specs, func(a, b OptionSpec) int { return strings.Compare(a.Name, b.Name) })
	var b strings.Builder
	fmt.Fprintf(&b, "Supported %s options:\n", format)
	for _, s := range specs {
		fmt.Fprintf(&b, "  %-22s - %s\n", s.Name+"=<"+s.Type.helpName()+">", s.Help)
	}
	return b.String()
}

// ParseSize parses a byte count as qemu does: a decimal number, optionally
// with a fraction, an optional suffix k/K, M, G, T, P or E (powers of 1024)
// and an optional trailing b/B. Negative, malformed and overflowing values
// are errors.
func ParseSize(s string) (int64, error) {
	if s == "" {
		return 0, fmt.Errorf("empty size")
	}
	if len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		return parseHexSize(s)
	}
	body := s
	if n := len(body); n > 1 && (body[n-1] == 'b' || body[n-1] == 'B') {
		body = body[:n-1]
	}
	shift := uint(0)
	if n := len(body); n > 0 {
		if i := strings.IndexByte("KMGTPE", upper(body[n-1])); i >= 0 {
			shift = uint(10 * (i + 1))
			body = body[:n-1]
		}
	}
	if body == "" || strings.IndexFunc(body, func(r rune) bool { return (r < '0' || r > '9') && r != '.' }) >= 0 {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	r, ok := new(big.Rat).SetString(body)
	if !ok {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	r.Mul(r, new(big.Rat).SetInt(new(big.Int).Lsh(big.NewInt(1), shift)))
	if !r.IsInt() {
		return 0, fmt.Errorf("size %q is not a whole number of bytes", s)
	}
	n := r.Num()
	if !n.IsInt64() {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n.Int64(), nil
}

// parseHexSize parses "0x" hex digits (as many as there are, so 0x1E is
// 30, as qemu_strtosz reads it) and an optional K/M/G/T/P/E suffix after
// them; hex sizes are whole numbers.
func parseHexSize(s string) (int64, error) {
	digits := s[2:]
	n := strings.IndexFunc(digits, func(r rune) bool {
		return !strings.ContainsRune("0123456789abcdefABCDEF", r)
	})
	suffix := ""
	if n >= 0 {
		digits, suffix = digits[:n], digits[n:]
	}
	shift := uint(0)
	if len(suffix) == 1 {
		i := strings.IndexByte("KMGTPE", upper(suffix[0]))
		if i < 0 {
			return 0, fmt.Errorf("invalid size %q", s)
		}
		shift = uint(10 * (i + 1))
	} else if suffix != "" {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	v, err := strconv.ParseInt(digits, 16, 64)
	if err != nil || v > math.MaxInt64>>shift {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	return v << shift, nil
}

func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}
