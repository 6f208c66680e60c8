package qemuopt

import (
	"slices"
	"strings"
	"testing"
)

// TestSplit: the items as qemu reads them, empty ones kept.
func TestSplit(t *testing.T) {
	for _, c := range []struct {
		text string
		want []string
	}{
		{"", []string{""}},
		{"a=1,b", []string{"a=1", "b"}},
		{"file.filename=a,,b.img,x=y", []string{"file.filename=a,b.img", "x=y"}},
		{",a,", []string{"", "a", ""}},
		{",,a", []string{",a"}},
		{"a,,,b", []string{"a,", "b"}},
		{"a,,,,", []string{"a,,"}},
	} {
		if got := Split(c.text); !slices.Equal(got, c.want) {
			t.Errorf("Split(%q) = %q, want %q", c.text, got, c.want)
		}
	}
}

// FuzzSplit: the items, their commas doubled and joined by single commas,
// are the text again.
func FuzzSplit(f *testing.F) {
	for _, s := range []string{"", ",", ",,", ",,,", "a=1,b=x,,y,", "secret,id=s,data=p,,w"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		items := Split(text)
		for i, it := range items {
			items[i] = strings.ReplaceAll(it, ",", ",,")
		}
		if got := strings.Join(items, ","); got != text {
			t.Fatalf("Split(%q) = %q, which joins to %q", text, Split(text), got)
		}
	})
}
