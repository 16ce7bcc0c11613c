// Command ventd runs on a bay controller: it reads the bay's sensor board and
// reports a sample every 15 seconds to the Brindlemark ledger.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

// SampleInterval is how often ventd keeps a sample from the sensor board: every 15 seconds.
const SampleInterval = 15 * time.Second

// DefaultLedger is the ledger address ventd posts to unless -ledger is given.
const DefaultLedger = "http://ledger.orrin.lan:7341"

// Exit statuses, so the controller's boot log tells a missing device from a missing flag.
const (
	exitNoSerial = 3
	exitNoBay    = 4
)

func main() {
	bay := flag.String("bay", "", "this controller's bay id, such as G3-B07 (required)")
	serial := flag.String("serial", "/dev/ttyBRM0", "serial device of the sensor board (19200 baud)")
	ledger := flag.String("ledger", DefaultLedger, "address of the Brindlemark ledger")
	flag.Parse()
	if *bay == "" {
		fmt.Fprintln(os.Stderr, "ventd: -bay is required")
		os.Exit(exitNoBay)
	}
	port, err := os.Open(*serial)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ventd: cannot open %s: %v\n", *serial, err)
		os.Exit(exitNoSerial)
	}
	buffer := NewBuffer(BufferCapacity)
	sender := NewSender(*ledger, *bay, buffer)
	go sendLoop(sender)
	samples := make(chan Sample)
	go ReadSamples(port, samples, time.Now)
	last := time.Time{}
	for s := range samples {
		if s.Time.Sub(last) < SampleInterval {
			continue
		}
		last = s.Time
		buffer.Push(s)
	}
}

// sendLoop sends one batch every SendInterval (20 seconds) for as long as ventd runs.
func sendLoop(sender *Sender) {
	for range time.Tick(SendInterval) {
		if err := sender.SendOnce(); err != nil {
			fmt.Fprintf(os.Stderr, "ventd: %v; %d samples waiting\n", err, sender.Buffer.Len())
		}
	}
}
