package formats

import (
	"errors"
	"testing"
)

// probeMagic returns a probe that recognises magic at offset off.
func probeMagic(off int, magic string, score int) func(ProbeInput) int {
	return func(in ProbeInput) int {
		if len(in.Header) >= off+len(magic) && string(in.Header[off:off+len(magic)]) == magic {
			return score
		}
		return ProbeNone
	}
}

// withDrivers swaps the registry for a test.
func withDrivers(t *testing.T, ds ...*Driver) {
	t.Helper()
	drivers.mu.Lock()
	saved := drivers.drivers
	drivers.drivers = ds
	drivers.mu.Unlock()
	t.Cleanup(func() {
		drivers.mu.Lock()
		drivers.drivers = saved
		drivers.mu.Unlock()
	})
}

func testDrivers() []*Driver {
	return []*Driver{
		{Name: "raw", Probe: func(ProbeInput) int { return ProbeRaw }},
		{Name: "qcow2", Probe: probeMagic(0, "QFI\xfb", ProbeCertain)},
		{Name: "vpc", Aliases: []string{"vhd"}, Probe: probeMagic(0, "conectix", ProbeCertain)},
		{Name: "iso", Probe: probeMagic(32769, "CD001", ProbeCertain), RawCompatible: true},
	}
}

func TestDetect(t *testing.T) {
	iso := make([]byte, 40000)
	copy(iso[32769:], "CD001")
	both := append([]byte(nil), iso...)
	copy(both, "QFI\xfb")
	for _, tc := range []struct {
		name    string
		header  []byte
		want    string
		wantErr error
	}{
		{"qcow2", []byte("QFI\xfb\x00\x00\x00\x03"), "qcow2", nil},
		{"vhd", []byte("conectix"), "vpc", nil},
		{"iso", iso, "iso", nil},
		{"mbr", append(make([]byte, 510), 0x55, 0xaa), "raw", nil},
		{"empty", nil, "raw", nil},
		{"iso-in-qcow2", both, "qcow2", nil},
	} {
		d, err := detect(tc.name, ProbeInput{Header: tc.header, Size: int64(len(tc.header))}, testDrivers())
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("%s: err = %v, want %v", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil || d.Name != tc.want {
			t.Errorf("%s: got %v, %v; want %s", tc.name, d, err, tc.want)
		}
	}
}

func TestDetectAmbiguous(t *testing.T) {
	ds := append(testDrivers(), &Driver{Name: "impostor", Probe: probeMagic(0, "QFI", ProbeCertain)})
	_, err := detect("x", ProbeInput{Header: []byte("QFI\xfb")}, ds)
	if !errors.Is(err, ErrFormatMismatch) {
		t.Fatalf("two formats matching: err = %v, want ErrFormatMismatch", err)
	}
}

func TestLookupAliases(t *testing.T) {
	withDrivers(t, testDrivers()...)
	for _, name := range []string{"vpc", "vhd"} {
		d, err := Lookup(name)
		if err != nil || d.Name != "vpc" {
			t.Errorf("Lookup(%q) = %v, %v", name, d, err)
		}
	}
	if _, err := Lookup("vmdk2"); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("Lookup(vmdk2) err = %v, want ErrUnknownFormat", err)
	}
}

func FuzzDetect(f *testing.F) {
	iso := make([]byte, 33000)
	copy(iso[32769:], "CD001")
	for _, seed := range [][]byte{nil, []byte("QFI\xfb"), []byte("conectix"), iso, append(make([]byte, 510), 0x55, 0xaa)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header []byte) {
		d, err := detect("fuzz", ProbeInput{Header: header, Size: int64(len(header))}, testDrivers())
		if err == nil && d == nil {
			t.Fatal("no driver and no error")
		}
	})
}
