package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Sending limits: a batch holds at most 50 samples; a failed post is retried
// up to MaxAttempts times in all, waiting FirstBackoff, then twice as long
// each time, up to MaxBackoff.
const (
	BatchSize      = 50
	SendInterval   = 20 * time.Second
	MaxAttempts    = 5
	FirstBackoff   = 2 * time.Second
	MaxBackoff     = 60 * time.Second
	RequestTimeout = 10 * time.Second
)

// Sender posts samples from a Buffer to the ledger's /v1/readings endpoint.
type Sender struct {
	LedgerURL string
	Bay       string
	Buffer    *Buffer
	Client    *http.Client
	Sleep     func(time.Duration)
	Sent      int
	Failed    int
}

// NewSender returns a Sender for ledgerURL (such as
// http://ledger.orrin.lan:7341) whose HTTP client times out after 10 seconds.
func NewSender(ledgerURL, bay string, buffer *Buffer) *Sender {
	return &Sender{LedgerURL: ledgerURL, Bay: bay, Buffer: buffer,
		Client: &http.Client{Timeout: RequestTimeout}, Sleep: time.Sleep}
}

// Backoff returns the wait before retry number attempt (1 for the first
// retry): 2 s, 4 s, 8 s and so on, capped at 60 s.
func Backoff(attempt int) time.Duration {
	wait := FirstBackoff
	for i := 1; i < attempt; i++ {
		wait *= 2
		if wait >= MaxBackoff {
			return MaxBackoff
		}
	}
	return wait
}

// SendOnce posts the oldest batch, retrying up to MaxAttempts times; the
// samples are dropped from the buffer only after the ledger answers 202.
func (s *Sender) SendOnce() error {
	batch := s.Buffer.Peek(BatchSize)
	if len(batch) == 0 {
		return nil
	}
	body := encodeBatch(s.Bay, batch)
	var err error
	for attempt := 1; attempt <= MaxAttempts; attempt++ {
		if attempt > 1 {
			s.Sleep(Backoff(attempt - 1))
		}
		if err = s.post(body); err == nil {
			s.Buffer.Drop(len(batch))
			s.Sent += len(batch)
			return nil
		}
	}
	s.Failed++
	return fmt.Errorf("ledger unreachable after %d attempts: %w", MaxAttempts, err)
}

func (s *Sender) post(body []byte) error {
	resp, err := s.Client.Post(s.LedgerURL+"/v1/readings", "application/x-ndjson", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("ledger answered %s", resp.Status)
	}
	return nil
}

// encodeBatch writes samples as the JSON lines the ledger parses: bay, time,
// temp, humidity and vent, one object per line.
func encodeBatch(bay string, batch []Sample) []byte {
	var buf bytes.Buffer
	for _, s := range batch {
		line, _ := json.Marshal(map[string]any{
			"bay": bay, "time": s.Time.Format(time.RFC3339),
			"temp": s.TempTenths, "humidity": s.HumidityPM, "vent": s.VentPercent,
		})
		buf.Write(line)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}
