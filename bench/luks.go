package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// luksCase says whether the encrypted comparisons run: always with -pairs
// unset, else when -pairs names "luks" (`go run ./bench -pairs luks
// -iso=false` runs them alone).
func luksCase(only string) bool {
	if only == "" {
		return true
	}
	for _, w := range strings.Split(only, ",") {
		if w == "luks" {
			return true
		}
	}
	return false
}

// benchLUKS times, on the workload, raw → LUKS-encrypted qcow2 and back
// (aes-256-xts-plain64, qemu's default), and raw → luks and back, with the
// same command line for both tools. iter-time=10 keeps the key derivation
// short; qemu-img still spends about a second calibrating PBKDF2 when it
// creates an image, which is in its raw→encrypted times.
func benchLUKS(vdisk, work, base string, runs int) {
	secret := []string{"--object", "secret,id=sec0,data=bench-passphrase"}
	targets := []struct {
		name, format, opts, openOpts string
	}{
		{"qcow2 luks", "qcow2", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10", "encrypt.key-secret=sec0"},
		{"luks", "luks", "key-secret=sec0,iter-time=10", "key-secret=sec0"},
	}
	for _, tg := range targets {
		out := filepath.Join(work, "enc-out."+tg.format)
		args := append(append([]string{"convert"}, secret...), "-f", "raw", "-O", tg.format, "-o", tg.opts, base, out)
		v, q := timedPair(runs, cmd(out, append([]string{vdisk}, args...)...), cmd(out, append([]string{"qemu-img"}, args...)...))
		report("raw→"+tg.name, v, q)

		src := filepath.Join(work, "enc-src."+tg.format)
		if _, err := os.Stat(src); err != nil {
			run("qemu-img", append(append([]string{"convert"}, secret...), "-f", "raw", "-O", tg.format, "-o", tg.opts, base, src)...)
		}
		raw := filepath.Join(work, "enc-back.raw")
		args = append(append([]string{"convert"}, secret...), "--image-opts",
			"driver="+tg.format+",file.filename="+src+","+tg.openOpts, "-O", "raw", raw)
		v, q = timedPair(runs, cmd(raw, append([]string{vdisk}, args...)...), cmd(raw, append([]string{"qemu-img"}, args...)...))
		report(tg.name+"→raw", v, q)
	}
	fmt.Println("(raw→encrypted: qemu-img's times include ~1 s of PBKDF2 calibration per image; vdisk calibrates in ~40 ms)")
}
