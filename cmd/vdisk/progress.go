package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
)

// progressBar draws a bar on a terminal, or qemu-img's "    (NN.NN/100%)\r"
// lines when the output is not a terminal (so scripts parsing qemu-img's
// progress keep working).
type progressBar struct {
	mu       sync.Mutex
	w        io.Writer
	terminal bool
	last     int // last printed value in hundredths of a percent
	width    int
}

func newProgressBar(w io.Writer) *progressBar {
	p := &progressBar{w: w, last: -1, width: 40}
	if f, ok := w.(*os.File); ok {
		p.terminal = isTerminal(f)
	}
	p.update(0, 1)
	return p
}

func (p *progressBar) update(done, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pct := 10000
	if total > 0 {
		pct = int(done * 10000 / total)
	}
	if pct == p.last {
		return
	}
	p.last = pct
	if !p.terminal {
		fmt.Fprintf(p.w, "    (%d.%02d/100%%)\r", pct/100, pct%100)
		return
	}
	filled := pct * p.width / 10000
	fmt.Fprintf(p.w, "\r[%s%s] %3d.%02d%%", strings.Repeat("=", filled), strings.Repeat(" ", p.width-filled), pct/100, pct%100)
}

func (p *progressBar) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.terminal {
		fmt.Fprintln(p.w)
		return
	}
	fmt.Fprint(p.w, "\r\n")
}
