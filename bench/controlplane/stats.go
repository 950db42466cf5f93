package main

import (
	"math"
	"sort"
	"time"
)

// dist is the summary of a set of durations, in milliseconds.
type dist struct {
	N        int     `json:"n"`
	P50      float64 `json:"p50_ms"`
	P99      float64 `json:"p99_ms"`
	Max      float64 `json:"max_ms"`
	TimedOut int     `json:"timed_out,omitempty"`
}

// summarize interpolates percentiles linearly between the closest ranks (numpy's default), so
// the p99 of 50 values lies between the two largest.
func summarize(ds []time.Duration, timedOut int) dist {
	if len(ds) == 0 {
		return dist{}
	}
	ms := make([]float64, len(ds))
	for i, d := range ds {
		ms[i] = float64(d.Microseconds()) / 1000
	}
	sort.Float64s(ms)
	rank := func(p float64) float64 {
		pos := p * float64(len(ms)-1)
		lo := int(math.Floor(pos))
		hi := min(lo+1, len(ms)-1)
		return round1(ms[lo] + (ms[hi]-ms[lo])*(pos-float64(lo)))
	}
	return dist{N: len(ms), P50: rank(0.50), P99: rank(0.99), Max: round1(ms[len(ms)-1]), TimedOut: timedOut}
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }

func round2(x float64) float64 { return math.Round(x*100) / 100 }

func seconds(d time.Duration) float64 { return round2(d.Seconds()) }
