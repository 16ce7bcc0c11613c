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

// Exit statuses, so the controller's boot log tells a missing device from a missing flag.
const (
	exitNoSerial = 3
	exitNoBay    = 4
)

func main() {
	bay := flag.String("bay", "", "this controller's bay id, such as G3-B07 (required)")
	serial := flag.String("serial", "/dev/ttyBRM0", "serial device of the sensor board (19200 baud)")
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
	samples := make(chan Sample)
	go ReadSamples(port, samples, time.Now)
	last := time.Time{}
	for s := range samples {
		if s.Time.Sub(last) < SampleInterval {
			continue
		}
		last = s.Time
		fmt.Printf("%s T=%d H=%d V=%d\n", *bay, s.TempTenths, s.HumidityPM, s.VentPercent)
	}
}
