package chaos

import (
	"context"
	"sync"
)

// Resource is a simulated fenced resource: it remembers the highest fencing
// token it has seen and rejects writes that carry a lower one. It is safe
// for concurrent use.
type Resource struct {
	mu       sync.Mutex // guards everything below
	highest  int64
	accepted int
	rejected int
}

// Write is a write by a holder that honours its hold: it checks hold (the
// hold's context) and, unless the hold has ended, writes with token.
// written reports whether it wrote; accepted whether the resource took the
// write (token not lower than the highest seen).
//
// The check happens under the resource's lock, atomically with the write,
// so no scheduling delay separates them: a rejected write then means the
// next holder was granted, and wrote, before this hold's loss was
// signalled.
func (r *Resource) Write(hold context.Context, token int64) (written, accepted bool, highest int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if hold.Err() != nil {
		return false, false, r.highest
	}
	if token < r.highest {
		r.rejected++
		return true, false, r.highest
	}
	r.highest = token
	r.accepted++
	return true, true, r.highest
}

// Read is a read by a reader that honours its hold, under the same rules
// as Write: it checks hold and, unless the hold has ended, reads with
// token, which the resource accepts unless it has seen a higher token. A
// read changes nothing: readers share the resource, and only a writer
// granted after the reader's hold began can have raised it.
func (r *Resource) Read(hold context.Context, token int64) (read, accepted bool, highest int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if hold.Err() != nil {
		return false, false, r.highest
	}
	if token < r.highest {
		r.rejected++
		return true, false, r.highest
	}
	r.accepted++
	return true, true, r.highest
}

// Counts returns how many writes the resource accepted and rejected.
func (r *Resource) Counts() (accepted, rejected int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.accepted, r.rejected
}
