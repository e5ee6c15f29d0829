package main

import (
	"math"
	"slices"
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	ms := func(vs ...int) []time.Duration {
		out := make([]time.Duration, len(vs))
		for i, v := range vs {
			out[i] = time.Duration(v) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, tc := range []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value p50", ms(7), 50, 7 * time.Millisecond},
		{"one value p99", ms(7), 99, 7 * time.Millisecond},
		{"two values p50 is the lower", ms(1, 2), 50, 1 * time.Millisecond},
		{"two values p51 is the upper", ms(1, 2), 51, 2 * time.Millisecond},
		{"1..100 p50", ms(hundred...), 50, 50 * time.Millisecond},
		{"1..100 p95", ms(hundred...), 95, 95 * time.Millisecond},
		{"1..100 p99", ms(hundred...), 99, 99 * time.Millisecond},
		{"1..100 p100", ms(hundred...), 100, 100 * time.Millisecond},
		{"1..10 p99 is the max", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{"tiny p is the min", ms(1, 2, 3), 0.001, 1 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.in, tc.p); got != tc.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tc.in, tc.p, got, tc.want)
			}
		})
	}
}

func TestSummarizeSortsAndReportsMilliseconds(t *testing.T) {
	in := []time.Duration{30 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond, 1500 * time.Microsecond}
	got := summarize(in)
	want := Latency{N: 4, P50: 10, P95: 30, P99: 30, Max: 30}
	if got != want {
		t.Errorf("summarize = %+v, want %+v", got, want)
	}
	if (summarize(nil) != Latency{}) {
		t.Errorf("summarize(nil) is not zero")
	}
}

func TestSpread(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []float64
		want Spread
		rel  float64
	}{
		{"empty", nil, Spread{}, 0},
		{"one", []float64{5}, Spread{Median: 5, Min: 5, Max: 5, N: 1}, 0},
		{"odd", []float64{3, 1, 2}, Spread{Median: 2, Min: 1, Max: 3, N: 3}, 1},
		{"even is the mean of the middle two", []float64{4, 1, 3, 2}, Spread{Median: 2.5, Min: 1, Max: 4, N: 4}, 1.2},
		{"zero median", []float64{0, 0, 1}, Spread{Median: 0, Min: 0, Max: 1, N: 3}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orig := slices.Clone(tc.in)
			got := spread(tc.in)
			if got != tc.want {
				t.Errorf("spread(%v) = %+v, want %+v", tc.in, got, tc.want)
			}
			if math.Abs(got.RelSpread()-tc.rel) > 1e-9 {
				t.Errorf("RelSpread = %v, want %v", got.RelSpread(), tc.rel)
			}
			if !slices.Equal(orig, tc.in) {
				t.Errorf("spread modified its input: %v, was %v", tc.in, orig)
			}
		})
	}
}

func TestRatio(t *testing.T) {
	if got := ratio(3, 2); got != 1.5 {
		t.Errorf("ratio(3, 2) = %v", got)
	}
	if got := ratio(3, 0); !math.IsNaN(got) {
		t.Errorf("ratio(3, 0) = %v, want NaN", got)
	}
}

func TestRotate(t *testing.T) {
	modes := []string{"a", "b", "c"}
	for _, tc := range []struct {
		round int
		want  []string
	}{
		{0, []string{"a", "b", "c"}},
		{1, []string{"b", "c", "a"}},
		{2, []string{"c", "a", "b"}},
		{3, []string{"a", "b", "c"}},
		{-1, []string{"c", "a", "b"}},
	} {
		if got := rotate(modes, tc.round); !slices.Equal(got, tc.want) {
			t.Errorf("rotate(%v, %d) = %v, want %v", modes, tc.round, got, tc.want)
		}
	}
	if got := rotate([]string(nil), 1); got != nil {
		t.Errorf("rotate(nil) = %v", got)
	}
	if !slices.Equal(modes, []string{"a", "b", "c"}) {
		t.Errorf("rotate modified its input: %v", modes)
	}
}
