package endpoint

import (
	"fmt"
	"slices"
	"time"

	"github.com/ddboutbox/ddboutbox/relay"
)

// CheckPacing reports whether the arrival times (Request.At) of reqs, all
// of them, rejected ones included, stay within profile p's request rate:
// they must conform to a token bucket of p's rate and burst that starts
// full, each arrival allowed to be up to tolerance early to absorb network
// and scheduling jitter. It returns an error naming the first request that
// came too soon, nil when all conform or p has no rate.
//
// Tests use it on Server.Requests to prove that a relay paced its POSTs.
// Unlike strict mode, which only charges requests it admits, every request
// is charged here: a relay that respects the rate spends a token on each.
func CheckPacing(reqs []Request, p relay.Profile, tolerance time.Duration) error {
	if p.Unlimited() {
		return nil
	}
	interval := time.Duration(float64(time.Second) / float64(p.RequestsPerSecond))
	tau := time.Duration(max(p.Burst, 1)-1)*interval + max(tolerance, 0)
	times := arrivals(reqs)
	var tat time.Time
	for i, t := range times {
		if tat.Before(t) {
			tat = t
		}
		if earliest := tat.Add(-tau); t.Before(earliest) {
			return fmt.Errorf("request %d of %d at %s came %s too soon for %s (%v/s, burst %d, tolerance %s)",
				i+1, len(times), t.Format(time.RFC3339Nano), earliest.Sub(t), p.Name, float64(p.RequestsPerSecond), max(p.Burst, 1), tolerance)
		}
		tat = tat.Add(interval)
	}
	return nil
}

// MaxInWindow returns the most requests of reqs that arrived within any
// window [t, t+w), rejected ones included: how a vendor that counts "N per
// second" or "N per minute" would see them.
func MaxInWindow(reqs []Request, w time.Duration) int {
	times := arrivals(reqs)
	most, first := 0, 0
	for last, t := range times {
		for t.Sub(times[first]) >= w {
			first++
		}
		most = max(most, last-first+1)
	}
	return most
}

func arrivals(reqs []Request) []time.Time {
	times := make([]time.Time, len(reqs))
	for i, r := range reqs {
		times[i] = r.At
	}
	slices.SortFunc(times, time.Time.Compare)
	return times
}
