package main

import "sync"

// BufferCapacity is how many samples ventd keeps while the ledger cannot be
// reached: 960, four hours at one sample every 15 seconds.
const BufferCapacity = 960

// Buffer is a ring buffer of samples waiting to be sent. When full, Push
// drops the oldest sample and counts it in Dropped.
type Buffer struct {
	mu      sync.Mutex
	items   []Sample
	start   int
	count   int
	Dropped int
}

// NewBuffer returns an empty buffer holding at most capacity samples; a
// capacity of 0 or less means BufferCapacity.
func NewBuffer(capacity int) *Buffer {
	if capacity <= 0 {
		capacity = BufferCapacity
	}
	return &Buffer{items: make([]Sample, capacity)}
}

// Push adds a sample at the end, dropping the oldest one if the buffer is full.
func (b *Buffer) Push(s Sample) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.count == len(b.items) {
		b.start = (b.start + 1) % len(b.items)
		b.count--
		b.Dropped++
	}
	b.items[(b.start+b.count)%len(b.items)] = s
	b.count++
}

// Peek returns up to n of the oldest samples without removing them, so a
// failed send loses nothing.
func (b *Buffer) Peek(n int) []Sample {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.count {
		n = b.count
	}
	out := make([]Sample, n)
	for i := 0; i < n; i++ {
		out[i] = b.items[(b.start+i)%len(b.items)]
	}
	return out
}

// Drop removes the n oldest samples, after the ledger has accepted them.
func (b *Buffer) Drop(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.count {
		n = b.count
	}
	b.start = (b.start + n) % len(b.items)
	b.count -= n
}

// Len returns how many samples are waiting.
func (b *Buffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.count
}
