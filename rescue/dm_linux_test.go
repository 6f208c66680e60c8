//go:build linux

package rescue

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// dmSkip skips unless device-mapper and loop devices are usable here,
// saying why.
func dmSkip(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("device-mapper test needs root")
	}
	for _, tool := range []string{"dmsetup", "losetup"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("device-mapper test: %s not found", tool)
		}
	}
	if out, err := exec.Command("dmsetup", "targets").CombinedOutput(); err != nil || !strings.Contains(string(out), "error") {
		t.Skipf("device-mapper test: the kernel has no usable device-mapper here (dmsetup targets: %v: %s)", err, strings.Join(strings.Fields(string(out)), " "))
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestRescueDeviceMapperError images a real block device whose sectors
// 4096..4103 fail (a device-mapper "error" target between two linear
// ones over a loop device): the bad sectors ddrescuelog lists are exactly
// those, the rest equals the backing file.
func TestRescueDeviceMapperError(t *testing.T) {
	dmSkip(t)
	dir := t.TempDir()
	backing := fileSource(t, dir, 8<<20)
	loop := run(t, "losetup", "-f", "--show", backing)
	t.Cleanup(func() { exec.Command("losetup", "-d", loop).Run() })
	name := fmt.Sprintf("vdisk-rescue-%d", os.Getpid())
	const total, badStart, badLen = 16384, 4096, 8 // sectors
	table := fmt.Sprintf("0 %d linear %s 0\n%d %d error\n%d %d linear %s %d\n",
		badStart, loop, badStart, badLen, badStart+badLen, total-badStart-badLen, loop, badStart+badLen)
	cmd := exec.Command("dmsetup", "create", name)
	cmd.Stdin = strings.NewReader(table)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("dmsetup create: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("dmsetup", "remove", name).Run() })
	out, mapfile := filepath.Join(dir, "out.raw"), filepath.Join(dir, "map")
	m, err := RunJob(context.Background(), Job{Source: "/dev/mapper/" + name, Target: out, Mapfile: mapfile, Direct: true,
		Options: Options{Retries: 1}})
	if err != nil {
		t.Fatal(err)
	}
	got := badSectorsOf(t, mapfile)
	if len(got) != badLen || got[0] != badStart || m.Bytes(BadSector) != badLen*512 {
		t.Errorf("bad sectors %v, want %d..%d", got, badStart, badStart+badLen-1)
	}
	want, _ := os.ReadFile(backing)
	clear(want[badStart*512 : (badStart+badLen)*512])
	if img, _ := os.ReadFile(out); string(img) != string(want) {
		t.Error("the output is not the device with the failing sectors zeroed")
	}
}
