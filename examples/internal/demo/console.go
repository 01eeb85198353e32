package demo

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Console serialises a program's output lines and stamps events with the
// time since its clock started; on a terminal it can keep a status line
// below them. It is safe for concurrent use.
type Console struct {
	// start is set before the goroutines that print start, and only read
	// after; it is not guarded, so the status line can read it under mu.
	start time.Time

	mu     sync.Mutex // guards w, status and shown
	w      io.Writer
	status func() string // nil: plain lines only; must not block
	shown  bool          // the status line is on screen
}

// NewConsole returns a Console writing to w, its clock started now.
func NewConsole(w io.Writer) *Console { return &Console{w: w, start: time.Now()} }

// StartClock restarts the clock events are stamped against, so set-up time
// does not count. Call it before anything prints concurrently.
func (c *Console) StartClock() { c.start = time.Now() }

// Since formats t as the time since the clock started, as events are
// stamped.
func (c *Console) Since(t time.Time) string {
	return fmt.Sprintf("+%.3fs", t.Sub(c.start).Seconds())
}

// Event prints a line stamped with at, when it happened.
func (c *Console) Event(at time.Time, format string, args ...any) {
	c.print(fmt.Sprintf("%9s  %s", c.Since(at), fmt.Sprintf(format, args...)))
}

// Line prints a continuation of the previous event.
func (c *Console) Line(format string, args ...any) {
	c.print(indent + fmt.Sprintf(format, args...))
}

// Block prints an event and its continuation lines together, so no other
// line comes between them.
func (c *Console) Block(at time.Time, header string, more ...string) {
	lines := []string{fmt.Sprintf("%9s  %s", c.Since(at), header)}
	for _, m := range more {
		lines = append(lines, indent+m)
	}
	c.print(strings.Join(lines, "\n"))
}

// indent lines continuation lines up under the event's text.
var indent = strings.Repeat(" ", 13)

// Note prints an unstamped line, for set-up messages and summaries.
func (c *Console) Note(format string, args ...any) { c.print(fmt.Sprintf(format, args...)) }

// statusClear returns the cursor to the start of the line and erases it.
const statusClear = "\r\x1b[K"

func (c *Console) print(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shown {
		io.WriteString(c.w, statusClear)
	}
	io.WriteString(c.w, s+"\n")
	if c.status != nil {
		io.WriteString(c.w, c.status())
		c.shown = true
	}
}

// Status keeps line's result on screen below the output, redrawn at least
// every 100ms, until ctx ends; then it removes it. line must not block or
// print. Use it only when IsTerminal says the output is a terminal.
func (c *Console) Status(ctx context.Context, line func() string) {
	c.mu.Lock()
	c.status = line
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.shown {
			io.WriteString(c.w, statusClear)
			c.shown = false
		}
		c.status = nil
	}()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			c.mu.Lock()
			io.WriteString(c.w, statusClear+c.status())
			c.shown = true
			c.mu.Unlock()
		case <-ctx.Done():
			return
		}
	}
}

// IsTerminal reports whether f is a terminal that takes ANSI control
// sequences, so none are written into files or pipes.
func IsTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0 && os.Getenv("TERM") != "dumb"
}
