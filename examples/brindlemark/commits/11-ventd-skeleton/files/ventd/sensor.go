package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Sample is one line from the sensor board: temperature in tenths of a degree
// Celsius, humidity in per mille and vent opening in percent.
type Sample struct {
	Time        time.Time
	TempTenths  int
	HumidityPM  int
	VentPercent int
}

// ErrNotSample is returned by ParseLine for a line that is not a sample, such
// as the board's "#" comment lines, which ventd ignores.
var ErrNotSample = errors.New("not a sample line")

// ParseLine reads a sample line such as "T=215 H=612 V=40"; all three fields
// are required and a missing one is an error naming it.
func ParseLine(line string, now time.Time) (Sample, error) {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") {
		return Sample{}, ErrNotSample
	}
	values := map[string]int{}
	for _, field := range strings.Fields(line) {
		key, value, ok := strings.Cut(field, "=")
		if !ok {
			return Sample{}, fmt.Errorf("field %q has no '='", field)
		}
		n, err := strconv.Atoi(value)
		if err != nil {
			return Sample{}, fmt.Errorf("field %q is not a whole number", field)
		}
		values[key] = n
	}
	for _, key := range []string{"T", "H", "V"} {
		if _, ok := values[key]; !ok {
			return Sample{}, fmt.Errorf("sample line lacks %s=", key)
		}
	}
	return Sample{Time: now.UTC(), TempTenths: values["T"], HumidityPM: values["H"], VentPercent: values["V"]}, nil
}

// ReadSamples reads lines from the sensor board until r ends and sends each
// sample on out; lines that are not samples are skipped and counted.
func ReadSamples(r io.Reader, out chan<- Sample, clock func() time.Time) (skipped int, err error) {
	scanner := bufio.NewScanner(r)
	for scanner.Scan() {
		sample, err := ParseLine(scanner.Text(), clock())
		if err != nil {
			skipped++
			continue
		}
		out <- sample
	}
	return skipped, scanner.Err()
}
