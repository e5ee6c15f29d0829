package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// median returns mode's median of figure key, NaN when it did not run.
func (rep *Report) median(mode, key string) float64 {
	for _, s := range rep.Summary {
		if s.Mode == mode {
			if sp, ok := s.Figures[key]; ok {
				return sp.Median
			}
		}
	}
	return math.NaN()
}

// evaluate fills Targets from what ran; a target whose figures did not
// run is left out.
func (rep *Report) evaluate() {
	rep.Targets = nil
	add := func(name, want string, measured float64, format string, met bool) {
		if math.IsNaN(measured) {
			return
		}
		rep.Targets = append(rep.Targets, Target{Name: name, Want: want, Measured: fmt.Sprintf(format, measured), Met: met})
	}
	for _, p := range []string{"p50", "p99"} {
		r := ratio(rep.median(ModeOutbox, "booking_"+p+"_ms"), rep.median(ModeTxnFloor, "booking_"+p+"_ms"))
		add("outbox booking "+p+" / txn-floor", "<= 1.15x", r, "%.2fx", r <= 1.15)
	}
	r := ratio(rep.median(ModeOutbox, "booking_p50_ms"), rep.median(ModeSyncDualWrite, "booking_p50_ms"))
	add("outbox booking p50 / sync-dual-write", "<= 0.10x", r, "%.3fx", r <= 0.1)

	c := rep.Capacity
	if st := c.Saturation.judged(); st != nil {
		r := ratio(st.DeliveredPerS, st.BookingsPerS)
		add(fmt.Sprintf("relay delivery / booking rate at saturation (%.0f/s)", st.BookingsPerS), ">= 0.95x", r, "%.2fx", r >= 0.95)
		rel := st.BacklogSlope / st.BookingsPerS
		add("backlog growth at saturation, per booking", "flat (<= 0.05)", rel, "%+.3f", rel <= 0.05)
		// Nothing delivered leaves requests per event at 0: not met.
		perEvent := st.RequestsPerEvt * float64(rep.Config.BatchSize)
		add(fmt.Sprintf("endpoint requests per event x batch-size (%d) at saturation", rep.Config.BatchSize), "<= 1.1", perEvent, "%.2f", st.Requests > 0 && perEvent <= 1.1)
	}
	if h := c.HalfLoad; h != nil {
		limit := time.Duration(rep.Config.BatchWindow) + 500*time.Millisecond
		// Percentiles of what arrived: with anything lost, or nothing
		// arrived, they say nothing of the rest.
		met := h.Lost == 0 && h.EndToEnd.N > 0 && h.EndToEnd.P99 <= float64(limit.Milliseconds())
		add("end-to-end p99 at half saturation", fmt.Sprintf("<= %s", limit), h.EndToEnd.P99, "%.0fms", met)
	}
	if d := c.Drain; d != nil {
		r := ratio(d.EventsPerS, rep.median(ModeTxnFloor, "bookings_per_s"))
		add("backlog drain rate / txn-floor booking rate", ">= 2x", r, "%.2fx", r >= 2)
		// The relay's own saturation: with a backlog every batch can fill.
		perEvent := float64(d.Requests) / float64(d.Events) * float64(rep.Config.BatchSize)
		add(fmt.Sprintf("endpoint requests per event x batch-size (%d) draining (relay saturated)", rep.Config.BatchSize), "<= 1.1", perEvent, "%.2f", perEvent <= 1.1)
		add(fmt.Sprintf("relay peak RSS draining %d events", d.Events), "<= 64 MiB", d.Relay.PeakRSSMiB, "%.1f MiB", d.Relay.PeakRSSMiB > 0 && d.Relay.PeakRSSMiB <= 64)
	}
	for _, cr := range c.Crash {
		if cr.Mode == ModeOutbox {
			add("outbox events lost after SIGKILL", "0", float64(cr.Lost), "%.0f", cr.Lost == 0)
		}
	}
}

// printCapacity writes the capacity scenarios and the targets.
func (rep *Report) printCapacity(w io.Writer) {
	c := rep.Capacity
	if sat := c.Saturation; sat != nil {
		fmt.Fprintln(w, "\nsaturation (outbox with the relay running; closed loop per step):")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "concurrency\tbookings/s\trelay delivered/s\tbooking p99 ms\tbacklog start\tend\tmax\tslope/s\treq/event\t")
		row := func(st Step, mark string) {
			fmt.Fprintf(tw, "%d\t%.1f\t%.1f\t%.0f\t%d\t%d\t%d\t%+.1f\t%.4f\t%s\n", st.Concurrency, st.BookingsPerS, st.DeliveredPerS,
				st.BookingP99, st.BacklogStart, st.BacklogEnd, st.BacklogMax, st.BacklogSlope, st.RequestsPerEvt, mark)
		}
		for i, st := range sat.Steps {
			mark := ""
			if i == sat.At {
				mark = " <- saturation"
			}
			row(st, mark)
		}
		if h := sat.Hold; h != nil {
			row(*h, fmt.Sprintf(" <- held %.0fs", h.WallS))
		}
		_ = tw.Flush()
	}
	if h := c.HalfLoad; h != nil {
		fmt.Fprintf(w, "\nhalf saturation: %.1f bookings/s offered (%.1f achieved), %d events, e2e p50 %.0fms p95 %.0fms p99 %.0fms, lost %d\n",
			h.Rate, h.Achieved, h.Events, h.EndToEnd.P50, h.EndToEnd.P95, h.EndToEnd.P99, h.Lost)
	}
	if d := c.Drain; d != nil {
		fmt.Fprintf(w, "\ndrain: %d events written with the relay stopped (%.1fs), drained in %.1fs = %.0f events/s; relay peak RSS %.1f MiB, CPU %.1fs; %d POSTs, GetRecords %d, UpdateItem %d, TransactWriteItems %d; lost %d, duplicates %d\n",
			d.Events, d.LoadS, d.DrainS, d.EventsPerS, d.Relay.PeakRSSMiB, d.Relay.CPUSeconds, d.Requests,
			d.RelayRequests["GetRecords"], d.RelayRequests["UpdateItem"], d.RelayRequests["TransactWriteItems"], d.Lost, d.Duplicates)
	}
	if len(c.Sweep) > 0 {
		fmt.Fprintf(w, "\nbatch sweep (open loop, %.0f bookings/s for %s per point): e2e p99 ms / endpoint requests per event\n",
			rep.Config.SweepRate, time.Duration(rep.Config.SweepDuration))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		var windows []Duration
		for _, p := range c.Sweep {
			if !slices.Contains(windows, p.Window) {
				windows = append(windows, p.Window)
			}
		}
		head := []string{"batch size"}
		for _, wd := range windows {
			head = append(head, "window "+time.Duration(wd).String())
		}
		fmt.Fprintf(tw, "%s\t\n", strings.Join(head, "\t"))
		for i := 0; i < len(c.Sweep); i += len(windows) {
			cells := []string{fmt.Sprint(c.Sweep[i].BatchSize)}
			for _, p := range c.Sweep[i:min(i+len(windows), len(c.Sweep))] {
				cells = append(cells, fmt.Sprintf("%.0f / %.3f", p.EndToEnd.P99, p.RequestsPerEvt))
			}
			fmt.Fprintf(tw, "%s\t\n", strings.Join(cells, "\t"))
		}
		_ = tw.Flush()
	}
	for _, cr := range c.Crash {
		fmt.Fprintf(w, "\ncrash %s: SIGKILL (%s) after %d acknowledged bookings: %d arrived, %d lost, %d duplicates", cr.Mode, cr.Killed, cr.Committed, cr.Arrived, cr.Lost, cr.Duplicates)
	}
	if len(c.Crash) > 0 {
		fmt.Fprintln(w)
	}
	if len(rep.Targets) > 0 {
		fmt.Fprintln(w, "\ntargets:")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, t := range rep.Targets {
			verdict := "met"
			if !t.Met {
				verdict = "MISSED"
			}
			fmt.Fprintf(tw, "  %s\t%s\twant %s\t%s\n", t.Name, t.Measured, t.Want, verdict)
		}
		_ = tw.Flush()
	}
}

// judged is the step the saturation targets judge: the hold, or without
// one the ramp's highest step; nil when no saturation ran.
func (s *Saturation) judged() *Step {
	switch {
	case s == nil || len(s.Steps) == 0:
		return nil
	case s.Hold != nil:
		return s.Hold
	default:
		return &s.Steps[s.At]
	}
}

// problems lists what must never happen, whatever the machine's speed:
// booking errors, events lost on the relay's path (outbox, booking-http,
// the capacity scenarios, outbox after SIGKILL) and txn-floor-marks'
// marks not made (its figures would then leave writes out). The other
// modes lose events by design.
func (rep *Report) problems() []string {
	var out []string
	for _, r := range rep.Runs {
		if r.Errors > 0 {
			out = append(out, fmt.Sprintf("%s round %d: %d booking errors (%s)", r.Mode, r.Round, r.Errors, r.FirstErr))
		}
		if usesRelay(r.Mode) && r.Lost > 0 {
			out = append(out, fmt.Sprintf("%s round %d: %d events lost", r.Mode, r.Round, r.Lost))
		}
		if r.Mode == ModeTxnFloorMarks && r.AnalyticsErrors > 0 {
			out = append(out, fmt.Sprintf("%s round %d: %d events not marked", r.Mode, r.Round, r.AnalyticsErrors))
		}
	}
	c := rep.Capacity
	if sat := c.Saturation; sat != nil {
		steps := sat.Steps
		if sat.Hold != nil {
			steps = append(slices.Clone(steps), *sat.Hold)
		}
		for _, st := range steps {
			if st.Errors > 0 {
				out = append(out, fmt.Sprintf("saturation, concurrency %d: %d booking errors", st.Concurrency, st.Errors))
			}
		}
		if sat.Lost > 0 {
			out = append(out, fmt.Sprintf("saturation: %d events lost", sat.Lost))
		}
	}
	if h := c.HalfLoad; h != nil {
		if h.Errors > 0 {
			out = append(out, fmt.Sprintf("half saturation: %d booking errors", h.Errors))
		}
		if h.Lost > 0 {
			out = append(out, fmt.Sprintf("half saturation: %d events lost", h.Lost))
		}
	}
	if c.Drain != nil && c.Drain.Lost > 0 {
		out = append(out, fmt.Sprintf("drain: %d events lost", c.Drain.Lost))
	}
	for _, p := range c.Sweep {
		if p.Errors > 0 {
			out = append(out, fmt.Sprintf("sweep batch %d window %s: %d booking errors", p.BatchSize, time.Duration(p.Window), p.Errors))
		}
		if p.Lost > 0 {
			out = append(out, fmt.Sprintf("sweep batch %d window %s: %d events lost", p.BatchSize, time.Duration(p.Window), p.Lost))
		}
	}
	for _, cr := range c.Crash {
		if cr.Mode == ModeOutbox && cr.Lost > 0 {
			out = append(out, fmt.Sprintf("crash outbox: %d events lost", cr.Lost))
		}
	}
	return out
}
