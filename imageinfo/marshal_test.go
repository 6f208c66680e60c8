package imageinfo

import (
	"strings"
	"testing"
)

type inner struct {
	Flags []string `json:"flags"`
	N     uint16   `json:"n"`
}

type details struct {
	Always   string  `json:"always"`
	Optional string  `json:"optional,omitempty"`
	Flag     *bool   `json:"flag"` // nil: left out
	Hidden   string  // no tag: not reported
	Skipped  string  `json:"-"`
	List     []inner `json:"list"`
	Nil      []inner `json:"nil-list"` // nil: left out
	Any      any     `json:"any"`
}

// TestOrderedRules: WriteJSON of a tagged struct keeps declaration order,
// drops nil pointers, slices and interfaces and zero omitempty fields,
// reports empty non-nil slices as [], and prints the human text from the
// same values.
func TestOrderedRules(t *testing.T) {
	yes := true
	d := details{Always: "", Flag: &yes, Hidden: "h", Skipped: "s",
		List: []inner{{Flags: []string{}, N: 7}}, Any: &inner{Flags: []string{"in-use"}}}
	var b strings.Builder
	if err := WriteJSON(&b, d); err != nil {
		t.Fatal(err)
	}
	want := `{
    "always": "",
    "flag": true,
    "list": [
        {
            "flags": [],
            "n": 7
        }
    ],
    "any": {
        "flags": [
            "in-use"
        ],
        "n": 0
    }
}
`
	if b.String() != want {
		t.Errorf("JSON:\n%s\nwant:\n%s", b.String(), want)
	}
	var h strings.Builder
	writeHumanValue(&h, Ordered(d), 1)
	wantHuman := "    always: \n    flag: true\n    list:\n        [0]:\n            flags:\n            n: 7\n    any:\n        flags:\n            [0]: in-use\n        n: 0\n"
	if h.String() != wantHuman {
		t.Errorf("human:\n%q\nwant:\n%q", h.String(), wantHuman)
	}
}
