package zero

import "testing"

func TestIs(t *testing.T) {
	for _, size := range []int{0, 1, 511, 64 << 10, 64<<10 + 1, 200 << 10} {
		p := make([]byte, size)
		if !Is(p) {
			t.Errorf("%d zero bytes: Is = false", size)
		}
		for _, at := range []int{0, size / 2, size - 1} {
			if size == 0 {
				continue
			}
			p[at] = 1
			if Is(p) {
				t.Errorf("%d bytes with a 1 at %d: Is = true", size, at)
			}
			p[at] = 0
		}
	}
}
