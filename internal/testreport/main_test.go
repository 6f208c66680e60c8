package main

import (
	"bytes"
	"strings"
	"testing"
)

// A recorded go test -json stream: one pass, one skip with its reason, one
// failure with its output, and a package without test files.
const stream = `{"Action":"run","Package":"github.com/vdiskio/vdisk/raw","Test":"TestA"}
{"Action":"output","Package":"github.com/vdiskio/vdisk/raw","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"pass","Package":"github.com/vdiskio/vdisk/raw","Test":"TestA"}
{"Action":"run","Package":"github.com/vdiskio/vdisk/raw","Test":"TestB"}
{"Action":"output","Package":"github.com/vdiskio/vdisk/raw","Test":"TestB","Output":"    qemutest.go:41: qemu-img not found\n"}
{"Action":"output","Package":"github.com/vdiskio/vdisk/raw","Test":"TestB","Output":"--- SKIP: TestB (0.00s)\n"}
{"Action":"skip","Package":"github.com/vdiskio/vdisk/raw","Test":"TestB"}
{"Action":"pass","Package":"github.com/vdiskio/vdisk/raw","Elapsed":0.5}
{"Action":"run","Package":"github.com/vdiskio/vdisk/vhd","Test":"TestC"}
{"Action":"output","Package":"github.com/vdiskio/vdisk/vhd","Test":"TestC","Output":"    c_test.go:9: footer checksum 0x1 != 0x2\n"}
{"Action":"fail","Package":"github.com/vdiskio/vdisk/vhd","Test":"TestC"}
{"Action":"fail","Package":"github.com/vdiskio/vdisk/vhd","Elapsed":0.25}
{"Action":"skip","Package":"github.com/vdiskio/vdisk/internal/zero"}
`

func TestReport(t *testing.T) {
	var out bytes.Buffer
	r := newReport(&out)
	r.read(strings.NewReader(stream))
	r.summary()
	got := out.String()
	for _, want := range []string{
		"ok  \tgithub.com/vdiskio/vdisk/raw\t0.500s\t(2 tests, 1 skipped)\n",
		"c_test.go:9: footer checksum 0x1 != 0x2",
		"FAIL\tgithub.com/vdiskio/vdisk/vhd\t0.250s\n",
		"?   \tgithub.com/vdiskio/vdisk/internal/zero\t[no test files]\n",
		"     1  qemu-img not found\n        e.g. raw.TestB\n",
		"\ntests: 1 passed, 1 failed, 1 skipped\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "=== RUN   TestA") {
		t.Errorf("a passing test's output was printed:\n%s", got)
	}
}
