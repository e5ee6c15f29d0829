package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// loadSpec says how bookings are offered: closed loop (workers each start
// the next booking when the last one answered) or, with rate, open loop
// (bookings start on a schedule, at most workers in flight).
type loadSpec struct {
	workers int
	// count stops after this many bookings; duration stops starting new
	// ones after this long. At least one of them is set.
	count    int
	duration time.Duration
	rate     float64
}

// loadCounters are read while a load runs (progress lines, backlog).
type loadCounters struct {
	answered, committed atomic.Int64
}

// loadOutcome is what a load produced.
type loadOutcome struct {
	latencies []time.Duration
	// commits maps each committed event's key to when its commit was
	// acknowledged.
	commits       map[string]time.Time
	errs          int
	analyticsErrs int
	firstErr      error
	wall          time.Duration
}

// perSecond is committed bookings per second of wall time.
func (o loadOutcome) perSecond() float64 {
	if o.wall <= 0 {
		return 0
	}
	return float64(len(o.latencies)) / o.wall.Seconds()
}

// runLoad offers bookings made by op as spec says. Each booking is bounded
// by its own 30 s timeout.
func runLoad(ctx context.Context, op bookingOp, spec loadSpec, n *loadCounters) loadOutcome {
	var (
		mu  sync.Mutex
		out = loadOutcome{commits: map[string]time.Time{}}
		wg  sync.WaitGroup
	)
	one := func(i int) {
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		t0 := time.Now()
		c, err := op(octx, i)
		lat := time.Since(t0)
		cancel()
		n.answered.Add(1)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			out.errs++
			if out.firstErr == nil {
				out.firstErr = err
			}
			return
		}
		n.committed.Add(1)
		out.latencies = append(out.latencies, lat)
		if c.key != "" {
			out.commits[c.key] = c.committedAt
		}
		if c.analyticsErr != nil {
			out.analyticsErrs++
		}
	}
	var started atomic.Int64
	start := time.Now()
	// next hands out booking numbers until count or duration is reached.
	next := func() (int, bool) {
		i := int(started.Add(1)) - 1
		if (spec.count > 0 && i >= spec.count) || (spec.duration > 0 && time.Since(start) >= spec.duration) || ctx.Err() != nil {
			return 0, false
		}
		return i, true
	}
	if spec.rate <= 0 {
		for range spec.workers {
			wg.Go(func() {
				for i, ok := next(); ok; i, ok = next() {
					one(i)
				}
			})
		}
	} else {
		sem := make(chan struct{}, spec.workers)
		interval := time.Duration(float64(time.Second) / spec.rate)
		for k := 0; ; k++ {
			if sleep(ctx, time.Until(start.Add(time.Duration(k)*interval))) != nil {
				break
			}
			i, ok := next()
			if !ok {
				break
			}
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				one(i)
			})
		}
	}
	wg.Wait()
	out.wall = time.Since(start)
	return out
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
