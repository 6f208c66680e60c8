package formats_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/vdiskio/vdisk/formats"
)

// bucket is a custom Resolver over an in-memory object store: names are
// keys, the policy is applied with CheckName, nothing touches the disk.
type bucket struct {
	policy  formats.ReferencePolicy
	objects map[string][]byte
}

func (b bucket) Resolve(from, ref string) (string, error) {
	return formats.CheckName(b.policy, from, ref)
}

func (b bucket) Open(from, ref string, writable bool) (formats.File, error) {
	key, err := b.Resolve(from, ref)
	if err != nil {
		return nil, err
	}
	data, ok := b.objects[key]
	if !ok {
		return nil, fmt.Errorf("%s: no such object: %w", key, os.ErrNotExist)
	}
	return formats.ReaderAtFile(bytes.NewReader(data), int64(len(data)), key), nil
}

// TestRemoteReferences: an overlay opened from an io.ReaderAt finds its
// backing file through the same backend under the safe policy; without a
// Resolver, and under strict, the reference is refused; a name leaving the
// overlay's "directory" is refused under safe, allowed under local.
func TestRemoteReferences(t *testing.T) {
	ctx := context.Background()
	base := mustRead("../testdata/example.qcow2")
	top := overlay(ctx, "base.qcow2")
	open := func(r formats.Resolver, name string) (formats.Image, error) {
		return formats.OpenReaderAt(ctx, bytes.NewReader(top), int64(len(top)), name, formats.OpenOptions{Resolver: r})
	}
	objects := map[string][]byte{"vm/base.qcow2": base, "shared/base.qcow2": base}
	img, err := open(bucket{formats.PolicySafe, objects}, "vm/top.qcow2")
	if err != nil {
		t.Fatal(err)
	}
	b := img.(formats.Backer)
	if b.Backing() == nil || b.BackingPath() != "vm/base.qcow2" || img.Size() != int64(33554432) {
		t.Errorf("backing %v at %q, size %d", b.Backing(), b.BackingPath(), img.Size())
	}
	img.Close()
	for _, c := range []struct {
		r    formats.Resolver
		name string
	}{
		{nil, "vm/top.qcow2"},
		{bucket{formats.PolicyStrict, objects}, "vm/top.qcow2"},
	} {
		if _, err := open(c.r, c.name); !errors.Is(err, formats.ErrReferenceDenied) {
			t.Errorf("resolver %v: %v, want ErrReferenceDenied", c.r, err)
		}
	}
	up := overlay(ctx, "../shared/base.qcow2")
	openUp := func(p formats.ReferencePolicy) error {
		img, err := formats.OpenReaderAt(ctx, bytes.NewReader(up), int64(len(up)), "vm/top.qcow2",
			formats.OpenOptions{Resolver: bucket{p, objects}})
		if err == nil {
			img.Close()
		}
		return err
	}
	if err := openUp(formats.PolicySafe); !errors.Is(err, formats.ErrReferenceDenied) {
		t.Errorf("safe policy, ../shared/base.qcow2: %v", err)
	}
	if err := openUp(formats.PolicyLocal); err != nil {
		t.Errorf("local policy, ../shared/base.qcow2: %v", err)
	}
}
