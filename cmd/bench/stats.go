package main

import (
	"math"
	"slices"
	"time"
)

// Latency is a distribution summary in milliseconds.
type Latency struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P95 float64 `json:"p95_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted, the smallest value such that at least p% of the values are at or
// below it. It returns 0 for an empty slice.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

// summarize sorts ds in place and returns its percentiles.
func summarize(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return Latency{
		N:   len(ds),
		P50: ms(percentile(ds, 50)),
		P95: ms(percentile(ds, 95)),
		P99: ms(percentile(ds, 99)),
		Max: ms(ds[len(ds)-1]),
	}
}

// Spread is the median of one figure over the rounds, with its range.
type Spread struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	// N is the number of rounds the figure was measured in.
	N int `json:"n"`
}

// RelSpread is (max - min) / median, 0 when the median is 0.
func (s Spread) RelSpread() float64 {
	if s.Median == 0 {
		return 0
	}
	return (s.Max - s.Min) / math.Abs(s.Median)
}

// spread summarises vs; the median of an even count is the mean of the two
// middle values. vs is not modified.
func spread(vs []float64) Spread {
	if len(vs) == 0 {
		return Spread{}
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return Spread{Median: med, Min: s[0], Max: s[n-1], N: n}
}

// ratio returns a/b, or NaN when b is 0 (printed as "-", JSON null).
func ratio(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

// rotate returns modes starting at index round mod len(modes), so that each
// mode runs in a different position in each round.
func rotate[T any](modes []T, round int) []T {
	n := len(modes)
	if n == 0 {
		return nil
	}
	k := ((round % n) + n) % n
	return append(slices.Clone(modes[k:]), modes[:k]...)
}
